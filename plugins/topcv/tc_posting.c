/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TopCV's job form, filled from a tenant's job record, and the postings
 * made with it: publish (POST /api/jobs), update (PUT), link an existing
 * TopCV job ("Add posted job"), list; and the notices list.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topcv.h"

/* TopCV's form: name, required, and where a unified job keeps it. */
static const struct {
    const char *name;
    bool required;
    const char *from[4];
} form_fields[] = {
    {"title", true, {"title"}},
    {"description", true, {"description"}},
    {"requirements", true, {"requirements"}},
    {"benefits", false, {"benefits"}},
    {"city", true, {"city", "location_city"}},
    {"address", false, {"address", "location_address"}},
    {"salary", true, {"salary"}},
    {"job_type", true, {"job_type", "employment_type"}},
    {"category", false, {"category", "department"}},
    {"level", false, {"level"}},
    {"experience", false, {"experience"}},
    {"deadline", true, {"deadline", "closing_date", "expires_at"}},
    {"quantity", true, {"quantity", "openings", "headcount"}},
    {"contact_email", false, {"contact_email"}},
};
#define N_FORM (sizeof form_fields / sizeof form_fields[0])

static bool blank(const char *s)
{
    while (s != NULL && isspace((unsigned char)*s))
        s++;
    return s == NULL || *s == '\0';
}

static bool is_date(const char *s)
{
    if (s == NULL || strlen(s) < 10)
        return false;
    for (int i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? s[i] != '-' : !isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static void set_form(cJSON *form, const char *name, const char *value)
{
    if (blank(value))
        return;
    cJSON_DeleteItemFromObjectCaseSensitive(form, name);
    if (strcmp(name, "quantity") == 0) {
        char *end;
        long q = strtol(value, &end, 10);
        if (*end == '\0' && q > 0 && q <= 1000)
            cJSON_AddNumberToObject(form, name, (double)q);
        return;
    }
    if (strcmp(name, "deadline") == 0) {
        char d[11];
        if (!is_date(value))
            return;
        snprintf(d, sizeof d, "%.10s", value); /* TopCV takes a date */
        cJSON_AddStringToObject(form, name, d);
        return;
    }
    if (strcmp(name, "job_type") == 0) {
        char t[64];
        size_t i = 0;
        for (; value[i] != '\0' && i + 1 < sizeof t; i++)
            t[i] = value[i] == '-' || value[i] == ' ' ? '_' : (char)tolower((unsigned char)value[i]);
        t[i] = '\0';
        cJSON_AddStringToObject(form, name, t);
        return;
    }
    cJSON_AddStringToObject(form, name, value);
}

cJSON *tc_form_fill(const cJSON *job, const cJSON *overrides)
{
    cJSON *form = cJSON_CreateObject();
    if (form == NULL)
        return NULL;
    const cJSON *loc = cJSON_GetObjectItemCaseSensitive(job, "location");
    for (size_t i = 0; i < N_FORM; i++) {
        char buf[64];
        const char *v = NULL;
        for (size_t k = 0; k < 4 && form_fields[i].from[k] != NULL && v == NULL; k++)
            v = tc_text(job, form_fields[i].from[k], buf, sizeof buf);
        /* Unified jobs keep the place as {"location": {"city": ..}} or a string. */
        if (v == NULL && strcmp(form_fields[i].name, "city") == 0)
            v = cJSON_IsString(loc) ? loc->valuestring : tc_str(loc, "city");
        char range[128];
        if (v == NULL && strcmp(form_fields[i].name, "salary") == 0) {
            char a[32], b[32];
            const char *lo = tc_text(job, "salary_min", a, sizeof a);
            const char *hi = tc_text(job, "salary_max", b, sizeof b);
            if (lo != NULL && hi != NULL) {
                snprintf(range, sizeof range, "%s-%s", lo, hi);
                v = range;
            }
        }
        set_form(form, form_fields[i].name, v);
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, overrides) {
        char buf[64];
        set_form(form, it->string, tc_text(overrides, it->string, buf, sizeof buf));
    }
    return form;
}

cJSON *tc_form_missing(const cJSON *form)
{
    cJSON *m = cJSON_CreateArray();
    for (size_t i = 0; m != NULL && i < N_FORM; i++)
        if (form_fields[i].required && cJSON_GetObjectItemCaseSensitive(form, form_fields[i].name) == NULL)
            cJSON_AddItemToArray(m, cJSON_CreateString(form_fields[i].name));
    return m;
}

int tc_overrides_check(const cJSON *ov, char *err, size_t len)
{
    if (ov == NULL)
        return 0;
    if (!cJSON_IsObject(ov)) {
        snprintf(err, len, "'overrides' must be an object of TopCV form fields");
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, ov) {
        size_t i = 0;
        while (i < N_FORM && strcmp(form_fields[i].name, it->string) != 0)
            i++;
        if (i == N_FORM) {
            snprintf(err, len, "'%s' is not a TopCV form field (title, description, requirements, "
                     "benefits, city, address, salary, job_type, category, level, experience, "
                     "deadline, quantity, contact_email)", it->string);
            return -1;
        }
        if (!cJSON_IsString(it) && !cJSON_IsNumber(it)) {
            snprintf(err, len, "overrides.%s must be a string", it->string);
            return -1;
        }
        char buf[64];
        const char *v = tc_text(ov, it->string, buf, sizeof buf);
        if (strlen(v) > 20000) {
            snprintf(err, len, "overrides.%s is longer than 20000 bytes", it->string);
            return -1;
        }
        if (strcmp(it->string, "deadline") == 0 && !is_date(v)) {
            snprintf(err, len, "overrides.deadline must be a date YYYY-MM-DD");
            return -1;
        }
        if (strcmp(it->string, "quantity") == 0) {
            char *end;
            long q = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || q < 1 || q > 1000) {
                snprintf(err, len, "overrides.quantity must be a whole number from 1 to 1000");
                return -1;
            }
        }
    }
    return 0;
}

/* "a, b, c" from an array of names. */
static void join(const cJSON *names, char *out, size_t len)
{
    out[0] = '\0';
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, names) {
        if (!cJSON_IsString(it))
            continue;
        int w = snprintf(out + n, len - n, "%s%s", n ? ", " : "", it->valuestring);
        if (w < 0 || (size_t)w >= len - n)
            break;
        n += (size_t)w;
    }
}

static ah_result fail_missing(ah_call *call, const cJSON *missing)
{
    char names[512];
    join(missing, names, sizeof names);
    return call->host->fail(call, "missing_fields", 422,
                            "TopCV requires fields the job does not have: %s; fill them in "
                            "\"overrides\" (postings.publish with \"preview\": true shows the form)",
                            names);
}

/* What the product sees of a posting record. */
static cJSON *posting_view(const cJSON *rec)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(rec, "fields");
    cJSON *v = cJSON_CreateObject();
    if (v == NULL)
        return NULL;
    cJSON_AddStringToObject(v, "id", tc_str(rec, "id"));
    cJSON_AddStringToObject(v, "topcv_id", tc_str(rec, "remote_id"));
    static const char *const keys[] = {"job_id", "title", "state", "reason", "posted_at",
                                       "updated_at", "approved_at", "rejected_at", "linked_at"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(f, keys[i]);
        if (x != NULL)
            cJSON_AddItemToObject(v, keys[i], cJSON_Duplicate(x, 1));
    }
    cJSON_AddBoolToObject(v, "linked", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "linked")));
    return v;
}

static const char *topcv_state(const cJSON *job)
{
    const char *s = tc_str(job, "state");
    if (s != NULL && (strcmp(s, "approved") == 0 || strcmp(s, "rejected") == 0))
        return s;
    return "pending";
}

/* Stores the posting for TopCV job `tj` (TopCV's answer) and replies with it. */
static ah_result save_posting(ah_call *call, const cJSON *tj, const cJSON *old_fields,
                              const char *job_id, const cJSON *overrides, bool linked,
                              cJSON **reply)
{
    char now[AH_UTC_LEN], idbuf[32];
    if (!ah_utc_now(now, sizeof now))
        return call->host->fail(call, AH_E_INTERNAL, 500, "the clock is outside 0001..9999");
    const char *tid = tc_text(tj, "id", idbuf, sizeof idbuf);
    if (tid == NULL || *tid == '\0' || strlen(tid) > 128)
        return call->host->fail(call, AH_E_UPSTREAM, 502, "TopCV answered without a job id");
    cJSON *f = old_fields != NULL ? cJSON_Duplicate(old_fields, 1) : cJSON_CreateObject();
    if (f == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 500, "out of memory");
#define SET(k, v)                                                                                  \
    do {                                                                                           \
        cJSON_DeleteItemFromObjectCaseSensitive(f, k);                                             \
        cJSON_AddItemToObject(f, k, v);                                                            \
    } while (0)
    SET("connection", cJSON_CreateString(call->connection));
    SET("job_id", cJSON_CreateString(job_id));
    SET("topcv_id", cJSON_CreateString(tid));
    const char *title = tc_str(tj, "title");
    if (title != NULL)
        SET("title", cJSON_CreateString(title));
    const char *state = topcv_state(tj);
    SET("state", cJSON_CreateString(state));
    if (tc_str(tj, "reason") != NULL)
        SET("reason", cJSON_CreateString(tc_str(tj, "reason")));
    if (old_fields == NULL)
        SET("posted_at", cJSON_CreateString(tc_str(tj, "created_at") ? tc_str(tj, "created_at") : now));
    SET("updated_at", cJSON_CreateString(now));
    if (linked) {
        SET("linked", cJSON_CreateTrue());
        SET("linked_at", cJSON_CreateString(now));
    }
    if (overrides != NULL)
        SET("overrides", cJSON_Duplicate(overrides, 1));
#undef SET
    char id[TC_ID_LEN];
    ah_result r = tc_put(call, TC_POSTING, tid, tj, f, id, NULL);
    cJSON_Delete(f);
    if (r != AH_OK)
        return AH_ERR;
    cJSON *rec = call->host->record_get(call, TC_POSTING, tid);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "posting", rec != NULL ? posting_view(rec) : cJSON_CreateNull());
    cJSON_Delete(rec);
    *reply = o;
    return AH_OK;
}

/* The job, its form and the merged overrides for a publish or update. */
static ah_result prepare(ah_call *call, const char *job_id, const cJSON *saved_ov,
                         const cJSON *body, cJSON **job_out, cJSON **form_out, cJSON **ov_out)
{
    char err[512];
    const cJSON *ov = cJSON_GetObjectItemCaseSensitive(body, "overrides");
    if (tc_overrides_check(ov, err, sizeof err) != 0)
        return call->host->fail(call, AH_E_INVALID, 400, "%s", err);
    cJSON *job = tc_job(call, job_id);
    if (job == NULL)
        return call->host->fail(call, AH_E_NOT_FOUND, 404, "the tenant has no job '%s'", job_id);
    cJSON *merged = saved_ov != NULL ? cJSON_Duplicate(saved_ov, 1) : cJSON_CreateObject();
    const cJSON *it;
    cJSON_ArrayForEach(it, ov) {
        cJSON_DeleteItemFromObjectCaseSensitive(merged, it->string);
        cJSON_AddItemToObject(merged, it->string, cJSON_Duplicate(it, 1));
    }
    *form_out = tc_form_fill(cJSON_GetObjectItemCaseSensitive(job, "fields"), merged);
    *job_out = job;
    *ov_out = merged;
    return AH_OK;
}

/* The TopCV job posted with reference `ref`: *found (transferred) or NULL
 * when TopCV has none. AH_ERR (described) when TopCV cannot be asked: a
 * read, so the host's retries apply. */
static ah_result find_by_reference(ah_call *call, const char *ref, cJSON **found)
{
    *found = NULL;
    ah_buf path = {0};
    ah_buf_puts(&path, "/api/jobs?reference=");
    ah_buf_url(&path, call->host, ref);
    ah_result r = ah_buf_check(call, &path);
    long status = 0;
    cJSON *ans = NULL;
    if (r == AH_OK)
        r = tc_api(call, "GET", path.s, NULL, 0, &status, &ans);
    ah_buf_free(&path);
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(ans, "jobs");
    if (r == AH_OK && (status != 200 || !cJSON_IsArray(jobs)))
        r = tc_api_error(call, "looking the posting up by its reference", status, ans);
    /* Only the job with our very reference: a TopCV that lists others too
     * (a filter ignored or matched loosely) would have another job saved
     * as this posting. */
    cJSON *list = r == AH_OK ? (cJSON *)jobs : NULL, *j;
    cJSON_ArrayForEach(j, list) {
        const cJSON *jr = cJSON_GetObjectItemCaseSensitive(j, "reference");
        if (cJSON_IsObject(j) && cJSON_IsString(jr) && strcmp(jr->valuestring, ref) == 0) {
            *found = cJSON_DetachItemViaPointer(list, j);
            break;
        }
    }
    cJSON_Delete(ans);
    return r;
}

/* A publish whose answer did not tell what TopCV did (lost, cut short,
 * unreadable, a 5xx): TopCV is asked for the job by the reference it was
 * posted with, never sent the job again. Found: the posting is saved and
 * the publish succeeds with TopCV's id. Not found: TopCV did not post it
 * (safe to send once more). TopCV unreachable: the outcome stays unknown. */
static ah_result reconcile_publish(ah_call *call, const char *jid, const char *ref,
                                   ah_http_outcome oc, const cJSON *ov, cJSON **reply)
{
    const ah_host_api *h = call->host;
    h->log(call, AH_LOG_WARN,
           "posting job %s: TopCV's answer did not say what happened; looking it up by its "
           "reference %s",
           jid, ref);
    cJSON *found = NULL;
    if (find_by_reference(call, ref, &found) != AH_OK)
        return h->fail(call, AH_E_OUTCOME_UNKNOWN, 502,
                       "posting job %s: TopCV may have posted it (reference %s) and cannot be "
                       "asked now; it was not sent again",
                       jid, ref);
    if (found == NULL) {
        /* A 2xx says TopCV acted: not finding it then is no proof. */
        if (oc == AH_OUTCOME_DONE)
            return h->fail(call, AH_E_OUTCOME_UNKNOWN, 502,
                           "posting job %s: TopCV accepted it but lists no job with reference "
                           "%s yet; it was not sent again",
                           jid, ref);
        return h->fail(call, AH_E_UNAVAILABLE, 503,
                       "posting job %s: TopCV did not receive it (no job with reference %s); "
                       "safe to send again",
                       jid, ref);
    }
    ah_result r = save_posting(call, found, NULL, jid, ov, false, reply);
    if (r == AH_OK)
        h->log(call, AH_LOG_INFO, "job %s found on TopCV by its reference %s", jid, ref);
    cJSON_Delete(found);
    return r;
}

static ah_result publish(ah_call *call, const cJSON *body, bool settle, cJSON **reply)
{
    const ah_host_api *h = call->host;
    const char *job_id = NULL;
    bool preview = false;
    if (ah_arg_string(call, body, "job_id", AH_ARG_REQUIRED | AH_ARG_NONEMPTY, 128, &job_id) != AH_OK ||
        ah_arg_bool(call, body, "preview", AH_ARG_OPTIONAL, &preview) != AH_OK)
        return AH_ERR;
    cJSON *job = NULL, *form = NULL, *ov = NULL;
    if (prepare(call, job_id, NULL, body, &job, &form, &ov) != AH_OK)
        return AH_ERR;
    const char *jid = tc_str(job, "id");
    cJSON *missing = tc_form_missing(form);
    ah_result r = AH_OK;
    if (preview && !settle) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "job_id", jid);
        cJSON_AddItemToObject(o, "form", form);
        cJSON_AddItemToObject(o, "missing", missing);
        form = missing = NULL;
        *reply = o;
        goto done;
    }
    if (cJSON_GetArraySize(missing) > 0 && !settle) {
        r = fail_missing(call, missing);
        goto done;
    }
    /* Each publish carries a reference of its own, so that a lost answer
     * can be settled by asking TopCV rather than by posting again. It comes
     * from the call's correlation id, which the host gives the settle call
     * of a publish whose outcome stayed unknown too. */
    char ref[TC_REF_LEN];
    const char *corr = call->correlation_id;
    if (corr != NULL && corr[0] != '\0' && strlen(corr) <= 25) {
        snprintf(ref, sizeof ref, "atshub-%.25s-%.60s", corr, jid);
    } else {
        int64_t seq = 0;
        if (h->sequence_next(call, "topcv.reference", &seq) != AH_OK) {
            r = AH_ERR;
            goto done;
        }
        snprintf(ref, sizeof ref, "atshub-%lld-%.64s", (long long)seq, jid);
    }
    if (settle) {
        /* Never posted again: only looked up by its reference. */
        r = reconcile_publish(call, jid, ref, AH_OUTCOME_UNKNOWN, ov, reply);
        goto done;
    }
    /* One live posting per job: a rejected one may be posted again. */
    cJSON *mine = tc_list(call, TC_POSTING);
    if (mine == NULL) {
        r = AH_ERR;
        goto done;
    }
    const cJSON *p;
    cJSON_ArrayForEach(p, mine) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(p, "fields");
        const char *pj = tc_str(f, "job_id"), *st = tc_str(f, "state");
        if (pj != NULL && strcmp(pj, jid) == 0 && (st == NULL || strcmp(st, "rejected") != 0)) {
            r = h->fail(call, AH_E_CONFLICT, 409,
                        "job '%s' is already posted on TopCV as %s (%s): use postings.update",
                        jid, tc_str(p, "remote_id"), st ? st : "pending");
            break;
        }
    }
    cJSON_Delete(mine);
    if (r != AH_OK)
        goto done;
    cJSON_DeleteItemFromObjectCaseSensitive(form, "reference");
    cJSON_AddStringToObject(form, "reference", ref);
    long status = 0;
    cJSON *ans = NULL;
    ah_http_outcome oc = AH_OUTCOME_NONE;
    /* Not retried (and flagged not idempotent by tc_api): a POST that
     * reached TopCV but lost its answer would post twice. */
    ah_result sent = tc_api_outcome(call, "POST", "/api/jobs", form, 1, &status, &ans, &oc);
    const cJSON *tj = cJSON_GetObjectItemCaseSensitive(ans, "job");
    bool answered = sent == AH_OK && (status == 200 || status == 201) && cJSON_IsObject(tj);
    if (!answered && (oc == AH_OUTCOME_UNKNOWN || oc == AH_OUTCOME_DONE))
        r = reconcile_publish(call, jid, ref, oc, ov, reply);
    else if (sent != AH_OK)
        r = AH_ERR; /* described by the host: TopCV did not get it */
    else if (status == 422 && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(ans, "missing")))
        r = fail_missing(call, cJSON_GetObjectItemCaseSensitive(ans, "missing"));
    else if (!answered)
        r = tc_api_error(call, "posting the job", status, ans);
    else
        r = save_posting(call, tj, NULL, jid, ov, false, reply);
    if (r == AH_OK)
        h->log(call, AH_LOG_INFO, "job %s posted on TopCV", jid);
    cJSON_Delete(ans);
done:
    cJSON_Delete(missing);
    cJSON_Delete(form);
    cJSON_Delete(ov);
    cJSON_Delete(job);
    return r;
}

ah_result tc_op_publish(ah_call *call, const cJSON *body, cJSON **reply)
{
    return publish(call, body, false, reply);
}

ah_result tc_settle_publish(ah_call *call, const cJSON *body, cJSON **reply)
{
    return publish(call, body, true, reply);
}

static cJSON *posting_of(ah_call *call, const cJSON *body)
{
    char buf[32];
    const char *tid = tc_text(body, "topcv_id", buf, sizeof buf);
    if (tid == NULL || *tid == '\0' || strlen(tid) > 128) {
        ah_arg_fail(call, "topcv_id", "a TopCV job id (a string or a number)");
        return NULL;
    }
    cJSON *rec = call->host->record_get(call, TC_POSTING, tid);
    if (rec == NULL)
        call->host->fail(call, AH_E_NOT_FOUND, 404, "no posting with TopCV id '%s'", tid);
    return rec;
}

/* Every field of `form` reads the same in TopCV's job `job`. */
static bool form_applied(const cJSON *form, const cJSON *job)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, form) {
        char a[64], b[64];
        const char *want = tc_text(form, f->string, a, sizeof a);
        const char *have = tc_text(job, f->string, b, sizeof b);
        if (want == NULL ? !cJSON_Compare(f, cJSON_GetObjectItemCaseSensitive(job, f->string), true)
                         : have == NULL || strcmp(want, have) != 0)
            return false;
    }
    return true;
}

static ah_result update(ah_call *call, const cJSON *body, bool settle, cJSON **reply)
{
    cJSON *rec = posting_of(call, body);
    if (rec == NULL)
        return AH_ERR;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(rec, "fields");
    const char *job_id = tc_str(f, "job_id");
    cJSON *job = NULL, *form = NULL, *ov = NULL, *missing = NULL, *ans = NULL;
    ah_result r = job_id != NULL ? prepare(call, job_id, cJSON_GetObjectItemCaseSensitive(f, "overrides"),
                                          body, &job, &form, &ov)
                                 : call->host->fail(call, AH_E_CONFLICT, 409, "the posting has no job");
    if (r == AH_OK) {
        missing = tc_form_missing(form);
        if (cJSON_GetArraySize(missing) > 0)
            r = fail_missing(call, missing);
    }
    long status = 0;
    if (r == AH_OK) {
        ah_buf path = {0};
        ah_buf_puts(&path, "/api/jobs/");
        ah_buf_url(&path, call->host, tc_str(rec, "remote_id"));
        r = ah_buf_check(call, &path);
        ah_http_outcome oc = AH_OUTCOME_NONE;
        if (r == AH_OK && settle)
            oc = AH_OUTCOME_UNKNOWN; /* settling: read back, never sent again */
        else if (r == AH_OK)
            r = tc_api_outcome(call, "PUT", path.s, form, 0, &status, &ans, &oc);
        /* A 2xx whose body was lost: TopCV updated the job; read it back
         * rather than report a failure the product would retry. */
        if (r == AH_OK && oc == AH_OUTCOME_DONE &&
            !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(ans, "job"))) {
            cJSON_Delete(ans);
            ans = NULL;
            ah_buf_free(&path);
            path = (ah_buf){0};
            ah_buf_puts(&path, "/api/jobs/");
            ah_buf_url(&path, call->host, tc_str(rec, "remote_id"));
            r = ah_buf_check(call, &path);
            if (r == AH_OK)
                r = tc_api(call, "GET", path.s, NULL, 0, &status, &ans);
            if (r != AH_OK)
                r = call->host->fail(call, AH_E_OUTCOME_UNKNOWN, 502,
                                     "updating the posting: TopCV accepted the update but its "
                                     "answer was lost and the job cannot be read back now");
        } else if (oc == AH_OUTCOME_UNKNOWN) {
            /* Sent and then lost, or a 500/502/504: a PUT of the whole
             * form, so reading the job back is enough to tell. */
            cJSON_Delete(ans);
            ans = NULL;
            r = ah_buf_check(call, &path);
            long gst = 0;
            if (r == AH_OK)
                r = tc_api(call, "GET", path.s, NULL, 0, &gst, &ans);
            const cJSON *tj = cJSON_GetObjectItemCaseSensitive(ans, "job");
            if (r != AH_OK || gst != 200 || !cJSON_IsObject(tj))
                r = call->host->fail(call, AH_E_OUTCOME_UNKNOWN, 502,
                                     "updating the posting: TopCV may have carried the update "
                                     "out and cannot be read back now; it was not sent again");
            else if (!form_applied(form, tj))
                r = call->host->fail(call, AH_E_UNAVAILABLE, 503,
                                     "updating the posting: TopCV did not update it (its answer "
                                     "was lost; the job reads as before); safe to send again");
            else
                status = 200;
        }
        ah_buf_free(&path);
    }
    if (r == AH_OK) {
        const cJSON *tj = cJSON_GetObjectItemCaseSensitive(ans, "job");
        if (status == 422 && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(ans, "missing")))
            r = fail_missing(call, cJSON_GetObjectItemCaseSensitive(ans, "missing"));
        else if (status != 200 || !cJSON_IsObject(tj))
            r = tc_api_error(call, "updating the posting", status, ans);
        else
            r = save_posting(call, tj, f, job_id, ov, false, reply);
    }
    cJSON_Delete(ans);
    cJSON_Delete(missing);
    cJSON_Delete(form);
    cJSON_Delete(ov);
    cJSON_Delete(job);
    cJSON_Delete(rec);
    return r;
}

ah_result tc_op_update(ah_call *call, const cJSON *body, cJSON **reply)
{
    return update(call, body, false, reply);
}

ah_result tc_settle_update(ah_call *call, const cJSON *body, cJSON **reply)
{
    return update(call, body, true, reply);
}

/* "Add posted job": a job already on TopCV becomes this job's posting. */
ah_result tc_op_link(ah_call *call, const cJSON *body, cJSON **reply)
{
    const ah_host_api *h = call->host;
    char buf[32];
    const char *tid = tc_text(body, "topcv_id", buf, sizeof buf);
    const char *job_id = NULL;
    if (tid == NULL || *tid == '\0' || strlen(tid) > 128)
        return ah_arg_fail(call, "topcv_id", "a TopCV job id (a string or a number)");
    if (ah_arg_string(call, body, "job_id", AH_ARG_REQUIRED | AH_ARG_NONEMPTY, 128, &job_id) !=
        AH_OK)
        return AH_ERR;
    cJSON *job = tc_job(call, job_id);
    if (job == NULL)
        return h->fail(call, AH_E_NOT_FOUND, 404, "the tenant has no job '%s'", job_id);
    ah_buf path = {0};
    ah_buf_puts(&path, "/api/jobs/");
    ah_buf_url(&path, call->host, tid);
    long status = 0;
    cJSON *ans = NULL;
    ah_result r = ah_buf_check(call, &path);
    if (r == AH_OK)
        r = tc_api(call, "GET", path.s, NULL, 0, &status, &ans);
    ah_buf_free(&path);
    if (r == AH_OK) {
        const cJSON *tj = cJSON_GetObjectItemCaseSensitive(ans, "job");
        if (status == 404)
            r = h->fail(call, AH_E_NOT_FOUND, 404, "TopCV has no job '%s' for this employer", tid);
        else if (status != 200 || !cJSON_IsObject(tj))
            r = tc_api_error(call, "reading the TopCV job", status, ans);
        else {
            cJSON *old = h->record_get(call, TC_POSTING, tid);
            r = save_posting(call, tj, cJSON_GetObjectItemCaseSensitive(old, "fields"),
                             tc_str(job, "id"), NULL, true, reply);
            cJSON_Delete(old);
        }
    }
    cJSON_Delete(ans);
    cJSON_Delete(job);
    return r;
}

ah_result tc_op_list(ah_call *call, const cJSON *body, cJSON **reply)
{
    const char *job = NULL;
    if (ah_arg_string(call, body, "job_id", AH_ARG_OPTIONAL, 128, &job) != AH_OK)
        return AH_ERR;
    cJSON *recs = tc_list(call, TC_POSTING);
    if (recs == NULL)
        return AH_ERR;
    cJSON *out = cJSON_CreateArray();
    const cJSON *rec;
    cJSON_ArrayForEach(rec, recs) {
        const char *pj = tc_str(cJSON_GetObjectItemCaseSensitive(rec, "fields"), "job_id");
        if (job == NULL || (pj != NULL && strcmp(pj, job) == 0))
            cJSON_AddItemToArray(out, posting_view(rec));
    }
    cJSON_Delete(recs);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "postings", out);
    *reply = o;
    return AH_OK;
}

ah_result tc_op_notices(ah_call *call, const cJSON *body, cJSON **reply)
{
    const char *kind = NULL;
    if (ah_arg_string(call, body, "kind", AH_ARG_OPTIONAL, 64, &kind) != AH_OK)
        return AH_ERR;
    cJSON *recs = tc_list(call, TC_NOTICE);
    if (recs == NULL)
        return AH_ERR;
    cJSON *out = cJSON_CreateArray();
    /* Newest first, as a notification list shows them. */
    for (int i = cJSON_GetArraySize(recs) - 1; i >= 0; i--) {
        const cJSON *rec = cJSON_GetArrayItem(recs, i);
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(rec, "fields");
        const char *k = tc_str(f, "kind");
        if (kind != NULL && (k == NULL || strcmp(k, kind) != 0))
            continue;
        cJSON *n = cJSON_Duplicate(f, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(n, "connection");
        cJSON_AddStringToObject(n, "id", tc_str(rec, "id"));
        cJSON_AddStringToObject(n, "event_id", tc_str(rec, "remote_id"));
        cJSON_AddItemToArray(out, n);
    }
    cJSON_Delete(recs);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "notices", out);
    *reply = o;
    return AH_OK;
}
