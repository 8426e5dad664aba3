/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CVs from TopCV: an application.created webhook becomes a candidate, its
 * CV (an attachment record) and an application at the first stage of the
 * job: the job the TopCV posting is linked to, else the tenant's open job
 * with the same title (trimmed, case-insensitive), else the Pending pool.
 * Deduplicated by TopCV's application id.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "topcv.h"

#define TC_CV_MAX (8u * 1024 * 1024) /* base64 characters */

bool tc_job_open(const char *status)
{
    static const char *const open[] = {"open", "published", "active"};
    if (status == NULL)
        return true; /* a job that states nothing is taken as open */
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++)
        if (strcasecmp(status, open[i]) == 0)
            return true;
    return false;
}

/* Decoded size of standard base64 text, or -1 when it is not base64. */
static long b64_size(const char *s)
{
    size_t n = 0, pad = 0;
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad > 0 || !(isalnum(c) || c == '+' || c == '/'))
            return -1;
        n++;
    }
    if (pad > 2 || (n + pad) % 4 != 0)
        return -1;
    return (long)((n + pad) / 4 * 3 - pad);
}

/* The first stage of a job: its own first stage when it lists them. */
static const char *first_stage(ah_call *call, const cJSON *job_fields)
{
    const cJSON *st = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(job_fields, "stages"), 0);
    if (cJSON_IsString(st) && st->valuestring[0] != '\0')
        return st->valuestring;
    if (tc_str(st, "name") != NULL)
        return tc_str(st, "name");
    const char *s = call->host->setting(call, "first_stage");
    return s != NULL ? s : "Applied";
}

/* The tenant's open job titled like `title`, or NULL. */
static cJSON *job_by_title(ah_call *call, const char *title)
{
    char t[512];
    while (isspace((unsigned char)*title))
        title++;
    snprintf(t, sizeof t, "%s", title);
    size_t n = strlen(t);
    while (n > 0 && isspace((unsigned char)t[n - 1]))
        t[--n] = '\0';
    if (n == 0)
        return NULL;
    cJSON *l = call->host->record_find(call, "job", "title", t, 1, 1000);
    cJSON *hit = NULL;
    for (int i = 0; hit == NULL && i < cJSON_GetArraySize(l); i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(l, i), "fields");
        if (tc_job_open(tc_str(f, "status")))
            hit = cJSON_DetachItemFromArray(l, i);
    }
    cJSON_Delete(l);
    return hit;
}

/* Creates the application of candidate `cand_id` to `job` (a job record). */
static ah_result make_application(ah_call *call, const char *app_remote, const char *cand_id,
                                  const cJSON *job, const char *cv_id, const char *matched_by,
                                  const cJSON *data, char *app_id)
{
    const cJSON *jf = cJSON_GetObjectItemCaseSensitive(job, "fields");
    char now[AH_UTC_LEN], buf[32];
    if (!ah_utc_now(now, sizeof now))
        return call->host->fail(call, AH_E_INTERNAL, 500, "the clock is outside 0001..9999");
    cJSON *f = cJSON_CreateObject();
    if (f == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 500, "out of memory");
    const char *stage = first_stage(call, jf);
    cJSON_AddStringToObject(f, "connection", call->connection);
    cJSON_AddStringToObject(f, "candidate_id", cand_id);
    cJSON_AddStringToObject(f, "job_id", tc_str(job, "id"));
    if (tc_str(jf, "title") != NULL)
        cJSON_AddStringToObject(f, "job_title", tc_str(jf, "title"));
    cJSON_AddStringToObject(f, "stage", stage);
    cJSON_AddNumberToObject(f, "stage_order", 1);
    cJSON_AddStringToObject(f, "status", "active");
    cJSON_AddStringToObject(f, "source", "TopCV");
    cJSON_AddStringToObject(f, "matched_by", matched_by);
    cJSON_AddStringToObject(f, "topcv_application_id", app_remote);
    const char *tj = tc_text(data, "job_id", buf, sizeof buf);
    if (tj != NULL)
        cJSON_AddStringToObject(f, "topcv_job_id", tj);
    if (cv_id != NULL)
        cJSON_AddStringToObject(f, "cv_attachment_id", cv_id);
    cJSON_AddStringToObject(f, "applied_at", tc_str(data, "applied_at") ? tc_str(data, "applied_at") : now);
    int changed = 0;
    ah_result r = tc_put(call, "application", app_remote, data, f, app_id, &changed);
    cJSON_Delete(f);
    if (r != AH_OK)
        return AH_ERR;
    if (changed == 1) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "candidate_id", cand_id);
        cJSON_AddStringToObject(x, "job_id", tc_str(job, "id"));
        cJSON_AddStringToObject(x, "stage", stage);
        cJSON_AddStringToObject(x, "matched_by", matched_by);
        tc_publish(call, "event.application.created", app_id, app_remote, "application", x);
    }
    return AH_OK;
}

static ah_result duplicate(ah_call *call, const char *app, cJSON **out)
{
    cJSON *a = call->host->record_get(call, "application", app);
    cJSON *p = a == NULL ? call->host->record_get(call, TC_PENDING, app) : NULL;
    if (a == NULL && p == NULL)
        return AH_ERR;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "duplicate");
    if (a != NULL)
        cJSON_AddStringToObject(o, "application_id", tc_str(a, "id"));
    else
        cJSON_AddStringToObject(o, "pending_id", tc_str(p, "id"));
    cJSON_Delete(a);
    cJSON_Delete(p);
    *out = o;
    return AH_OK;
}

ah_result tc_cv_received(ah_call *call, const char *event_id, const cJSON *data, cJSON **out)
{
    const ah_host_api *h = call->host;
    char abuf[32], cbuf[32], jbuf[32];
    const char *app = tc_text(data, "application_id", abuf, sizeof abuf);
    const cJSON *cand = cJSON_GetObjectItemCaseSensitive(data, "candidate");
    const cJSON *cv = cJSON_GetObjectItemCaseSensitive(data, "cv");
    if (app == NULL || *app == '\0' || strlen(app) > 128)
        return h->fail(call, AH_E_INVALID, 400, "data.application_id is required");
    if (!cJSON_IsObject(cand) || tc_str(cand, "name") == NULL)
        return h->fail(call, AH_E_INVALID, 400, "data.candidate.name is required");
    const char *b64 = tc_str(cv, "content_base64");
    long cv_size = b64 != NULL && strlen(b64) <= TC_CV_MAX ? b64_size(b64) : -1;
    if (cv != NULL && (cv_size < 0 || tc_str(cv, "file_name") == NULL))
        return h->fail(call, AH_E_INVALID, 400,
                       "data.cv needs file_name and content_base64 (base64, at most %u characters)",
                       TC_CV_MAX);
    /* candidate.id keys the candidate record ("topcv-<id>"): bounded like
     * the other ids, so that no two ids ever share one record. */
    const char *cid = tc_text(cand, "id", cbuf, sizeof cbuf);
    if (cid != NULL && (*cid == '\0' || strlen(cid) > 128))
        return h->fail(call, AH_E_INVALID, 400,
                       "data.candidate.id must be 1..128 characters when given");
    /* The same application delivered again: already here, nothing more. */
    if (duplicate(call, app, out) == AH_OK)
        return AH_OK;

    /* Where it goes: the linked posting's job, else an open job by title. */
    const char *tj = tc_text(data, "job_id", jbuf, sizeof jbuf);
    const char *title = tc_str(data, "job_title");
    cJSON *job = NULL;
    const char *matched_by = "posting";
    cJSON *posting = tj != NULL ? h->record_get(call, TC_POSTING, tj) : NULL;
    if (posting != NULL)
        job = tc_job(call, tc_str(cJSON_GetObjectItemCaseSensitive(posting, "fields"), "job_id"));
    if (title == NULL)
        title = tc_str(cJSON_GetObjectItemCaseSensitive(posting, "fields"), "title");
    cJSON_Delete(posting);
    if (job == NULL && title != NULL) {
        job = job_by_title(call, title);
        matched_by = "title";
    }

    /* The candidate, by TopCV's candidate id (one person, many applications). */
    const char *tc_cand = cid;
    char cand_remote[160], cand_id[TC_ID_LEN], cv_id[TC_ID_LEN] = "", app_id[TC_ID_LEN] = "";
    snprintf(cand_remote, sizeof cand_remote, "topcv-%s", tc_cand != NULL ? tc_cand : app);
    cJSON *cf = cJSON_CreateObject();
    cJSON_AddStringToObject(cf, "connection", call->connection);
    cJSON_AddStringToObject(cf, "name", tc_str(cand, "name"));
    static const char *const copy[] = {"email", "phone", "address", "birthday", "gender"};
    for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++)
        if (tc_str(cand, copy[i]) != NULL)
            cJSON_AddStringToObject(cf, copy[i], tc_str(cand, copy[i]));
    cJSON_AddStringToObject(cf, "source", "TopCV");
    if (tc_cand != NULL)
        cJSON_AddStringToObject(cf, "topcv_candidate_id", tc_cand);
    int cand_changed = 0;
    ah_result r = tc_put(call, "candidate", cand_remote, cand, cf, cand_id, &cand_changed);
    cJSON_Delete(cf);

    /* The CV: an attachment record of the candidate, content kept as sent. */
    if (r == AH_OK && cv != NULL) {
        char cv_remote[160];
        snprintf(cv_remote, sizeof cv_remote, "cv-%s", app);
        cJSON *af = cJSON_CreateObject();
        cJSON_AddStringToObject(af, "connection", call->connection);
        cJSON_AddStringToObject(af, "kind", "cv");
        cJSON_AddStringToObject(af, "candidate_id", cand_id);
        cJSON_AddStringToObject(af, "file_name", tc_str(cv, "file_name"));
        cJSON_AddStringToObject(af, "content_type", tc_str(cv, "content_type") ? tc_str(cv, "content_type")
                                                                              : "application/octet-stream");
        cJSON_AddNumberToObject(af, "size", (double)cv_size);
        cJSON_AddStringToObject(af, "content_base64", b64);
        r = tc_put(call, "attachment", cv_remote, NULL, af, cv_id, NULL);
        cJSON_Delete(af);
    }
    if (r == AH_OK && cand_changed == 1) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", tc_str(cand, "name"));
        if (tc_str(cand, "email") != NULL)
            cJSON_AddStringToObject(x, "email", tc_str(cand, "email"));
        tc_publish(call, "event.candidate.created", cand_id, cand_remote, "candidate", x);
    }

    char pending_id[TC_ID_LEN] = "";
    if (r == AH_OK && job != NULL) {
        r = make_application(call, app, cand_id, job, cv_id[0] ? cv_id : NULL, matched_by, data, app_id);
    } else if (r == AH_OK) {
        char now[AH_UTC_LEN];
        if (!ah_utc_now(now, sizeof now))
            call->host->log(call, AH_LOG_WARN, "the clock is outside 0001..9999: no time stamp");
        cJSON *pf = cJSON_CreateObject();
        cJSON_AddStringToObject(pf, "connection", call->connection);
        cJSON_AddStringToObject(pf, "state", "pending");
        cJSON_AddStringToObject(pf, "candidate_id", cand_id);
        cJSON_AddStringToObject(pf, "name", tc_str(cand, "name"));
        if (tc_str(cand, "email") != NULL)
            cJSON_AddStringToObject(pf, "email", tc_str(cand, "email"));
        if (tj != NULL)
            cJSON_AddStringToObject(pf, "topcv_job_id", tj);
        if (title != NULL)
            cJSON_AddStringToObject(pf, "job_title", title);
        if (cv_id[0])
            cJSON_AddStringToObject(pf, "cv_attachment_id", cv_id);
        cJSON_AddStringToObject(pf, "applied_at", tc_str(data, "applied_at") ? tc_str(data, "applied_at") : now);
        r = tc_put(call, TC_PENDING, app, data, pf, pending_id, NULL);
        cJSON_Delete(pf);
    }
    if (r == AH_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%.120s applied for \"%.200s\" on TopCV%s", tc_str(cand, "name"),
                 title != NULL ? title : "?", job == NULL ? " (no matching job: Pending pool)" : "");
        r = tc_notice(call, event_id, "application.created", msg, tj, job != NULL ? app_id : pending_id);
    }
    if (r == AH_OK) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "created");
        cJSON_AddStringToObject(o, "candidate_id", cand_id);
        if (job != NULL) {
            cJSON_AddStringToObject(o, "application_id", app_id);
            cJSON_AddStringToObject(o, "job_id", tc_str(job, "id"));
            cJSON_AddStringToObject(o, "matched_by", matched_by);
        } else {
            cJSON_AddStringToObject(o, "pending_id", pending_id);
        }
        *out = o;
    }
    cJSON_Delete(job);
    return r;
}

ah_result tc_op_pending(ah_call *call, const cJSON *body, cJSON **reply)
{
    (void)body;
    cJSON *recs = tc_list(call, TC_PENDING);
    if (recs == NULL)
        return AH_ERR;
    cJSON *out = cJSON_CreateArray();
    const cJSON *rec;
    cJSON_ArrayForEach(rec, recs) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(rec, "fields");
        const char *st = tc_str(f, "state");
        if (st == NULL || strcmp(st, "pending") != 0)
            continue;
        cJSON *v = cJSON_Duplicate(f, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(v, "connection");
        cJSON_AddStringToObject(v, "id", tc_str(rec, "id"));
        cJSON_AddStringToObject(v, "application_id", tc_str(rec, "remote_id"));
        cJSON_AddItemToArray(out, v);
    }
    cJSON_Delete(recs);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "pending", out);
    *reply = o;
    return AH_OK;
}

/* Moves a candidate from the Pending pool to a job's first stage. */
ah_result tc_op_assign(ah_call *call, const cJSON *body, cJSON **reply)
{
    const ah_host_api *h = call->host;
    const char *pid = NULL, *job_id = NULL;
    if (ah_arg_string(call, body, "pending_id", AH_ARG_REQUIRED | AH_ARG_NONEMPTY, 128, &pid) != AH_OK ||
        ah_arg_string(call, body, "job_id", AH_ARG_REQUIRED | AH_ARG_NONEMPTY, 128, &job_id) != AH_OK)
        return AH_ERR;
    cJSON *p = tc_by_id(call, TC_PENDING, pid);
    if (p == NULL)
        return h->fail(call, AH_E_NOT_FOUND, 404, "no Pending pool entry '%s'", pid);
    const cJSON *pf = cJSON_GetObjectItemCaseSensitive(p, "fields");
    const char *st = tc_str(pf, "state");
    if (st == NULL || strcmp(st, "pending") != 0) {
        cJSON_Delete(p);
        return h->fail(call, AH_E_CONFLICT, 409, "'%s' was already assigned to a job", pid);
    }
    cJSON *job = tc_job(call, job_id);
    if (job == NULL) {
        cJSON_Delete(p);
        return h->fail(call, AH_E_NOT_FOUND, 404, "the tenant has no job '%s'", job_id);
    }
    char app_id[TC_ID_LEN] = "";
    const char *app = tc_str(p, "remote_id");
    const cJSON *raw = cJSON_GetObjectItemCaseSensitive(p, "raw");
    ah_result r = make_application(call, app, tc_str(pf, "candidate_id"), job,
                                   tc_str(pf, "cv_attachment_id"), "assigned", raw, app_id);
    if (r == AH_OK) {
        cJSON *nf = cJSON_Duplicate(pf, 1);
        char now[AH_UTC_LEN];
        if (!ah_utc_now(now, sizeof now))
            call->host->log(call, AH_LOG_WARN, "the clock is outside 0001..9999: no time stamp");
        cJSON_DeleteItemFromObjectCaseSensitive(nf, "state");
        cJSON_AddStringToObject(nf, "state", "assigned");
        cJSON_AddStringToObject(nf, "application_id", app_id);
        cJSON_AddStringToObject(nf, "job_id", tc_str(job, "id"));
        cJSON_AddStringToObject(nf, "assigned_at", now);
        r = tc_put(call, TC_PENDING, app, raw, nf, NULL, NULL);
        cJSON_Delete(nf);
    }
    if (r == AH_OK) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "application_id", app_id);
        cJSON_AddStringToObject(o, "candidate_id", tc_str(pf, "candidate_id"));
        cJSON_AddStringToObject(o, "job_id", tc_str(job, "id"));
        cJSON_AddStringToObject(o, "stage", first_stage(call, cJSON_GetObjectItemCaseSensitive(job, "fields")));
        *reply = o;
    }
    cJSON_Delete(job);
    cJSON_Delete(p);
    return r;
}
