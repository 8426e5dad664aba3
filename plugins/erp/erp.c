/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ERP plugin: the inbound endpoints of the "ERP Integration Guide for
 * ATS" under /recruitment/integration/erp/, served exactly as the guide
 * describes them (paths, authentication, request fields, the response
 * envelope and its error codes). An ERP source is a connection of this
 * plugin; its settings table below is the guide's "Source" form.
 *
 * Every route answers through answer()/answer_error(), which wrap the
 * guide's envelope; the host writes the integration log (REQUEST and
 * RESPONSE/ERROR) for each call, attributed to the source found by
 * conn_by_secret(), so the source is resolved before any other check of
 * the request, except one: a caller whose address no source trusts is
 * refused before its key is looked at (logged as unauthenticated).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atshub/plugin.h>
#include <atshub/util.h>

#include "erp.h"

#ifndef ERP_VERSION
#define ERP_VERSION "1.0.0"
#endif

#define ERP_BASE "/recruitment/integration/erp/"
#define ERP_DEFAULT_MAX_BODY 262144L

static const ah_setting_spec erp_settings[] = {
    {"source_type", AH_SET_STRING, "ERP", 0, "Source type (the guide's \"ERP\")"},
    {"description", AH_SET_STRING, NULL, 0, "Brief description of the integration"},
    {"ip_address", AH_SET_STRING, NULL, 0,
     "The ERP system's IP address, for operators (not used for access control)"},
    {"api_key", AH_SET_STRING, NULL, AH_SETTING_GENERATED | AH_SETTING_HASHED,
     "API key the ERP sends as X-API-Key or ?api_key= (generated, shown once)"},
    {"api_secret", AH_SET_STRING, NULL, AH_SETTING_GENERATED | AH_SETTING_SECRET,
     "API secret (generated, shown once; kept for the ERP's records, not checked)"},
    {"trusted_ips", AH_SET_LIST, NULL, AH_SETTING_REQUIRED,
     "Comma-separated IPv4/IPv6 addresses or CIDR blocks allowed to call; empty: none"},
    {"integration_version", AH_SET_STRING, "1.0", 0, "The ERP's integration version"},
    {"sync_status", AH_SET_STRING, "IDLE", 0, "Sync status shown to operators"},
    {"job_id_prefix", AH_SET_STRING, "JOB", 0,
     "Prefix of job ids, as in KAAUH-2025-0001 (1-16 of A-Z a-z 0-9 _ -)"},
    {"max_body_bytes", AH_SET_INT, "262144", 0,
     "Largest request body this source may send; larger gets 413 PAYLOAD_TOO_LARGE"},
    {NULL, 0, NULL, 0, NULL},
};

/* ------------------------------------------------------------------------ */
/* One request                                                               */
/* ------------------------------------------------------------------------ */

typedef struct erp_req {
    ah_call *route; /* the route handler's own call (no connection) */
    ah_http_exchange *ex;
    const ah_host_api *h;
    ah_call *src;   /* the authenticated source, once known */
    double t0;
} erp_req;

static double elapsed(const erp_req *r)
{
    return erp_monotonic_s() - r->t0;
}

static ah_result answer(erp_req *r, int status, cJSON *body)
{
    if (body == NULL) /* out of memory building the envelope */
        return r->h->http_respond_json(r->ex, 500, NULL);
    return r->h->http_respond_json(r->ex, status, body);
}

static ah_result answer_error(erp_req *r, const erp_error *e)
{
    return answer(r, e->status, erp_env_error(e->message, e->code, e->field, elapsed(r)));
}

static ah_result answer_fail(erp_req *r, int status, const char *code, const char *field,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static ah_result answer_fail(erp_req *r, int status, const char *code, const char *field,
                             const char *fmt, ...)
{
    erp_error e = {.status = status, .code = code};
    snprintf(e.field, sizeof e.field, "%s", field != NULL ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    return answer_error(r, &e);
}

static void req_init(erp_req *r, ah_call *call, ah_http_exchange *ex)
{
    r->route = call;
    r->ex = ex;
    r->h = call->host;
    r->src = NULL;
    r->t0 = erp_monotonic_s();
}

/* 1 when some source trusts the caller's address (or the host has no setting_lists),
 * 0 when answered 403. Looks at no key, so that a caller no source trusts
 * gets the same answer whatever key it sends: checking the key first told
 * an outsider which keys are valid (401 for a wrong one, 403 for a right
 * one from the wrong address).
 *
 * Disabled sources count: their ERPs are known to the operator, not
 * outsiders, and the guide answers an inactive key 401 ("verify API key is
 * correct and active"), which the key check below still does for them. */
static int caller_trusted_anywhere(erp_req *r, const char *ip)
{
    const ah_host_api *h = r->h;
    /* A host without setting_lists (older 1.1): the key-first order of the
     * source's own check below still refuses untrusted callers. */
    if (!AH_HAS(h, setting_lists) || h->setting_lists == NULL)
        return 1;
    int listed = ip != NULL ? h->setting_lists(r->route, "trusted_ips", ip,
                                               AH_LISTED_NETWORK | AH_LISTED_WITH_DISABLED)
                            : 0;
    if (listed < 0) /* trusted_ips is a plain list setting: cannot happen */
        h->log(r->route, AH_LOG_ERROR, "the host cannot look up trusted_ips; refusing the caller");
    if (listed == 1)
        return 1;
    /* One message whatever the caller sent: no source named, no key judged. */
    answer_fail(r, 403, ERP_E_IP_NOT_ALLOWED, NULL, "IP %s is not trusted by any ERP source",
                ip != NULL ? ip : "?");
    return 0;
}

/* Refuses a caller that no source trusts, then resolves the source from the
 * API key, then checks the caller's IP and the body size against that
 * source's settings. 0, or -1 when answered. */
static int authenticate(erp_req *r)
{
    const ah_host_api *h = r->h;
    const char *ip = h->http_client_ip(r->ex);
    if (!caller_trusted_anywhere(r, ip))
        return -1;
    const char *key = h->http_header(r->ex, "X-API-Key");
    if (key == NULL || *key == '\0')
        key = h->http_query(r->ex, "api_key");
    if (key == NULL || *key == '\0') {
        answer_fail(r, 401, ERP_E_INVALID_API_KEY, NULL,
                    "send the source's API key in the X-API-Key header or the api_key query parameter");
        return -1;
    }
    r->src = h->conn_by_secret(r->route, "api_key", key);
    if (r->src == NULL) {
        answer_fail(r, 401, ERP_E_INVALID_API_KEY, NULL, "invalid or inactive API key");
        return -1;
    }
    const char *list = h->setting(r->src, "trusted_ips");
    int bad = 0;
    bool ok = erp_ip_allowed(list, ip, &bad);
    if (bad > 0)
        h->log(r->src, AH_LOG_WARN,
               "trusted_ips has %d malformed entr%s (ignored): fix with 'atshub connection set'",
               bad, bad == 1 ? "y" : "ies");
    if (!ok) {
        if (list == NULL || strspn(list, " \t,") == strlen(list))
            answer_fail(r, 403, ERP_E_IP_NOT_ALLOWED, NULL,
                        "IP %s is not trusted: source '%s' has no trusted IPs configured",
                        ip != NULL ? ip : "?", r->src->connection);
        else
            answer_fail(r, 403, ERP_E_IP_NOT_ALLOWED, NULL,
                        "IP %s is not in the trusted IPs of source '%s'", ip != NULL ? ip : "?",
                        r->src->connection);
        return -1;
    }
    const char *mb = h->setting(r->src, "max_body_bytes");
    long max = mb != NULL ? strtol(mb, NULL, 10) : ERP_DEFAULT_MAX_BODY;
    size_t len = 0;
    h->http_body(r->ex, &len);
    if (max > 0 && len > (size_t)max) {
        answer_fail(r, 413, ERP_E_TOO_LARGE, NULL, "the request body exceeds %ld bytes", max);
        return -1;
    }
    return 0;
}

/* The request body, parsed: a JSON object (owned by the caller), or NULL
 * with *why saying what is wrong with it. No answer is sent: the body is
 * read before the caller is authenticated, whose answer comes first. */
static cJSON *parse_body(erp_req *r, const char **why)
{
    size_t len = 0;
    const char *text = r->h->http_body(r->ex, &len);
    *why = NULL;
    if (text == NULL || len == 0) {
        *why = "the request body is empty";
        return NULL;
    }
    cJSON *body = r->h->json_parse(text, len);
    if (!cJSON_IsObject(body)) {
        *why = body == NULL ? "the request body is not valid JSON (or nests too deeply)"
                            : "the request body must be a JSON object";
        cJSON_Delete(body);
        return NULL;
    }
    return body;
}

/* A source_name that is a string must name the authenticated source; a
 * missing or mistyped one is reported by the field validation. */
static int check_source(erp_req *r, const cJSON *body)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "source_name");
    if (!cJSON_IsString(s) || s->valuestring == NULL)
        return 0;
    /* Trimmed as the validation trims it ("Main_ERP\r\n" names Main_ERP). */
    size_t n;
    const char *v = erp_trim(s->valuestring, &n);
    if (n == 0)
        return 0; /* empty: MISSING_FIELD from the validation */
    if (strlen(r->src->connection) == n && strncmp(v, r->src->connection, n) == 0)
        return 0;
    answer_fail(r, 404, ERP_E_INVALID_SOURCE, "source_name",
                "source '%.*s' not found: the API key belongs to another source", (int)(n > 128 ? 128 : n), v);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Jobs                                                                      */
/* ------------------------------------------------------------------------ */

/* Copies the request body for the record's raw payload, without a key that
 * a client may have put in it. */
static cJSON *raw_copy(const cJSON *body)
{
    cJSON *raw = cJSON_Duplicate(body, 1);
    if (raw != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(raw, "api_key");
        cJSON_DeleteItemFromObjectCaseSensitive(raw, "api_secret");
    }
    return raw;
}

static void set_item(cJSON *obj, const char *key, cJSON *value)
{
    if (value == NULL)
        return;
    if (cJSON_GetObjectItemCaseSensitive(obj, key) != NULL)
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, value);
    else
        cJSON_AddItemToObject(obj, key, value);
}

static void set_str(cJSON *obj, const char *key, const char *value)
{
    set_item(obj, key, value != NULL ? cJSON_CreateString(value) : cJSON_CreateNull());
}

static const char *str_of(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Applies validated request fields (erp_validate_job's output) to the
 * unified job fields: the location_* fields go into "location". */
static void apply_fields(cJSON *job, const cJSON *norm)
{
    static const char *const loc[][2] = {
        {"location_city", "city"}, {"location_state", "state"}, {"location_country", "country"}};
    cJSON *location = cJSON_GetObjectItemCaseSensitive(job, "location");
    if (!cJSON_IsObject(location)) {
        cJSON_DeleteItemFromObjectCaseSensitive(job, "location");
        location = cJSON_AddObjectToObject(job, "location");
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, norm) {
        bool done = false;
        for (size_t i = 0; i < 3 && location != NULL; i++)
            if (strcmp(it->string, loc[i][0]) == 0) {
                set_item(location, loc[i][1], cJSON_Duplicate(it, 1));
                done = true;
            }
        if (!done && strcmp(it->string, "auto_publish") != 0)
            set_item(job, it->string, cJSON_Duplicate(it, 1));
    }
    const char *title = str_of(job, "title");
    if (title != NULL) {
        char key[1024];
        erp_title_key(title, key, sizeof key);
        set_str(job, "title_key", key);
    }
}

/* Looks for another open job of the tenant with this title key. 0 none, 1
 * found (its id in other), -1 when the store could not answer.
 *
 * record_find filters on a JSON field without an index (a scan of the
 * tenant's jobs), so a per-tenant sequence named after a hash of the title
 * key comes first: every title a job ever takes bumps it, and the value 1
 * means no job of this tenant ever had this title, so there is nothing to
 * scan for. Any other value (the title was seen before, or a hash
 * collision) takes the exact path.
 *
 * That sequence is also what makes the check hold across instances on one
 * database: sequence_next writes the title's row first, in the atomic
 * route's transaction, so a second create of the same title (on any
 * instance) waits on that row until the first commits, then reads its
 * job (check_write_path test_job_exists_across_instances; without the
 * write first, two instances create the title twice). Keep it first.
 *
 * A create gives number_seq, the sequence of its job number: on a host
 * with store_batch (ABI 1.3) the title's sequence and, when it drew 1,
 * the job number are drawn in one batch (an isolated plugin's create keeps
 * the store's writer for one round trip fewer); *number is the number
 * drawn, or 0 when the title was seen before or the host is older (the
 * caller draws it then, after this check, as before). Either way the
 * title's row is written first and a seen title draws no number. */
static int find_open_title(erp_req *r, const char *title_key, const char *exclude, char *other,
                           size_t olen, const char *number_seq, int64_t *number,
                           const ah_store_op *put, bool *put_done)
{
    const ah_host_api *h = r->h;
    char seq[48];
    int64_t seen = 0;
    snprintf(seq, sizeof seq, "erp_title_%016llx", (unsigned long long)erp_fnv1a64(title_key));
    if (number != NULL)
        *number = 0;
    if (number_seq != NULL && number != NULL && AH_HAS(h, store_batch) && h->store_batch != NULL) {
        ah_store_op ops[3] = {
            {.struct_size = sizeof(ah_store_op), .kind = AH_STORE_SEQUENCE_NEXT, .name = seq},
            {.struct_size = sizeof(ah_store_op), .kind = AH_STORE_SEQUENCE_NEXT,
             .flags = AH_STORE_IF_NEW, .name = number_seq},
        };
        /* A 1.4 host also stores the job, named after its number, in the
         * same batch (AH_STORE_NUMBERED): the whole create is one round
         * trip for an isolated plugin. */
        size_t n = 2;
        if (put != NULL && h->abi_minor >= 4)
            ops[n++] = *put;
        ah_result res = h->store_batch(r->src, ops, n);
        if (n == 3 && ops[2].done != 0) {
            *put_done = true;
            *number = ops[1].value;
            if (ops[2].done < 0) /* the number drawn, the job not stored */
                return -2;
        }
        if (res != AH_OK)
            return -1;
        seen = ops[0].value;
        if (ops[1].done == 1)
            *number = ops[1].value;
    } else if (h->sequence_next(r->src, seq, &seen) != AH_OK) {
        return -1;
    }
    if (seen == 1)
        return 0;
    cJSON *list = r->h->record_find(r->src, "job", "title_key", title_key, 1, 1000);
    if (list == NULL)
        return -1;
    int found = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, list) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(rec, "fields");
        const char *id = str_of(f, "job_id");
        if (!erp_status_open(str_of(f, "status")) || (exclude != NULL && id != NULL && strcmp(id, exclude) == 0))
            continue;
        snprintf(other, olen, "%s", id != NULL ? id : "?");
        found = 1;
        break;
    }
    cJSON_Delete(list);
    return found;
}

static void publish_job(erp_req *r, const char *topic, const cJSON *job, const char *id)
{
    cJSON *ev = cJSON_CreateObject();
    if (ev == NULL)
        return;
    cJSON_AddStringToObject(ev, "job_id", str_of(job, "job_id"));
    cJSON_AddStringToObject(ev, "id", id);
    cJSON_AddStringToObject(ev, "title", str_of(job, "title"));
    cJSON_AddStringToObject(ev, "status", str_of(job, "status"));
    cJSON_AddStringToObject(ev, "source", r->src->connection);
    /* The job is committed: a lost event is logged, not reported as a
     * failed request (the ERP would retry and hit JOB_EXISTS). */
    if (r->h->publish(r->src, topic, ev) != AH_OK)
        r->h->log(r->src, AH_LOG_WARN, "cannot publish %s for %s", topic, str_of(job, "job_id"));
}

/* raw is given as a tree, or as its text (raw_text, then raw is NULL). */
static ah_result store_job(erp_req *r, const cJSON *job, const cJSON *raw, const char *raw_text,
                           const char *now, char *id, size_t idlen)
{
    ah_record rec = {
        .struct_size = sizeof(ah_record),
        .type = "job",
        .remote_id = str_of(job, "job_id"),
        .updated_at = now,
        .raw = raw,
        .fields = job,
        .raw_json = raw_text,
    };
    return r->h->record_put(r->src, &rec, id, idlen, NULL);
}

/* The response's data: job_id, title, status and one timestamp. */
static cJSON *job_data(const cJSON *job, const char *stamp_key)
{
    cJSON *d = cJSON_CreateObject();
    if (d == NULL)
        return NULL;
    cJSON_AddStringToObject(d, "job_id", str_of(job, "job_id"));
    cJSON_AddStringToObject(d, "title", str_of(job, "title"));
    cJSON_AddStringToObject(d, "status", str_of(job, "status"));
    cJSON_AddStringToObject(d, stamp_key, str_of(job, stamp_key));
    return d;
}

/* What a create-job needs that depends on the body alone: validated,
 * normalised and laid out as the job's fields. Made before the caller is
 * authenticated (see job_route); its error is answered after. */
typedef struct erp_create {
    /* valid false: e holds the validation's error. The normalised body is
     * laid out into job and freed here: the caller frees the body before
     * create_job too, so that no tree but the job is freed inside the
     * store's scope (the serialised section, from the first store call to
     * the end of the route). */
    bool valid, auto_publish;
    cJSON *job;
    /* The record's raw payload, printed here, before the source's call lock
     * and the store's scope (the host stores the text as given): the body
     * itself, or a copy without its key when it carries one. */
    char *raw_text;
    erp_error e;
    char title_key[1024];
} erp_create;

static void create_prepare(const cJSON *body, erp_create *c)
{
    memset(c, 0, sizeof *c);
    cJSON *norm = NULL;
    if (erp_validate_job(body, ERP_OP_CREATE, &norm, &c->e) != 0)
        return;
    c->valid = true;
    c->auto_publish = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(norm, "auto_publish"));
    c->job = cJSON_CreateObject();
    bool keyed = cJSON_GetObjectItemCaseSensitive(body, "api_key") != NULL ||
                 cJSON_GetObjectItemCaseSensitive(body, "api_secret") != NULL;
    cJSON *copy = keyed ? raw_copy(body) : NULL;
    c->raw_text = !keyed || copy != NULL ? cJSON_PrintUnformatted(keyed ? copy : body) : NULL;
    cJSON_Delete(copy);
    if (c->job != NULL && c->raw_text != NULL) {
        apply_fields(c->job, norm);
        erp_title_key(str_of(c->job, "title"), c->title_key, sizeof c->title_key);
    }
    cJSON_Delete(norm);
}

static void create_free(erp_create *c)
{
    cJSON_Delete(c->job);
    free(c->raw_text);
}

static ah_result create_job(erp_req *r, erp_create *c)
{
    const ah_host_api *h = r->h;
    if (!c->valid)
        return answer_error(r, &c->e);
    const char *prefix = h->setting(r->src, "job_id_prefix");
    if (!erp_prefix_valid(prefix)) {
        h->log(r->src, AH_LOG_ERROR, "job_id_prefix is not 1-16 of A-Z a-z 0-9 _ -");
        return answer_fail(r, 500, ERP_E_INTERNAL, NULL,
                           "source '%s' is misconfigured (job_id_prefix); contact ATS support",
                           r->src->connection);
    }
    cJSON *job = c->job;
    char now[32], job_id[96], id[80], other[96], seqname[32];
    int year = 0;
    int64_t seq = 0;
    if (job == NULL || c->raw_text == NULL)
        return answer_fail(r, 500, ERP_E_INTERNAL, NULL, "out of memory");
    /* Job ids carry the year the job was created in: "<prefix>-2026-0001". */
    if (!ah_utc_now(now, sizeof now))
        return answer_fail(r, 500, ERP_E_INTERNAL, NULL, "the host clock is out of range");
    year = atoi(now);
    snprintf(seqname, sizeof seqname, "erp_job_%d", year);
    /* The job's fields but its number, so that a new title's job is stored
     * with the batch that draws the number ("job_id" set there, in place). */
    char id_prefix[48];
    snprintf(id_prefix, sizeof id_prefix, "%s-%d-", prefix, year);
    set_str(job, "job_id", "");
    set_str(job, "status", c->auto_publish ? "PUBLISHED" : "DRAFT");
    set_str(job, "source_name", r->src->connection);
    set_str(job, "created_at", now);
    set_str(job, "updated_at", now);
    ah_record rec = {.struct_size = sizeof(ah_record), .type = "job", .remote_id = id_prefix,
                     .updated_at = now, .fields = job, .raw_json = c->raw_text};
    ah_store_op put = {.struct_size = sizeof(ah_store_op), .kind = AH_STORE_RECORD_PUT,
                       .flags = AH_STORE_NUMBERED, .rec = &rec, .id_out = id, .id_len = sizeof id,
                       .number_field = "job_id", .number_width = 4};
    bool stored = false;
    int dup = find_open_title(r, c->title_key, NULL, other, sizeof other, seqname, &seq, &put,
                              &stored);
    if (dup == -2 || dup == -1) {
        if (dup == -2)
            h->log(r->src, AH_LOG_ERROR, "cannot store job %s%04lld", id_prefix, (long long)seq);
        return dup == -2 ? answer_fail(r, 500, ERP_E_INTERNAL, NULL,
                                       "the job could not be saved; retry later")
                         : answer_fail(r, 500, ERP_E_INTERNAL, NULL, "the job store is unavailable");
    }
    if (dup != 0)
        return answer_fail(r, 409, ERP_E_JOB_EXISTS, "title",
                           "an open job with this title already exists (%s); use update_job",
                           other);
    if (seq == 0 && h->sequence_next(r->src, seqname, &seq) != AH_OK)
        return answer_fail(r, 500, ERP_E_INTERNAL, NULL, "the job store is unavailable");
    snprintf(job_id, sizeof job_id, "%s%04lld", id_prefix, (long long)seq);
    set_str(job, "job_id", job_id);
    if (!stored && store_job(r, job, NULL, c->raw_text, now, id, sizeof id) != AH_OK) {
        h->log(r->src, AH_LOG_ERROR, "cannot store job %s", job_id);
        return answer_fail(r, 500, ERP_E_INTERNAL, NULL, "the job could not be saved; retry later");
    }
    publish_job(r, "event.job.created", job, id);
    return answer(r, 200, erp_env_success("Job created successfully", job_data(job, "created_at"),
                                          elapsed(r)));
}

static ah_result update_job(erp_req *r, const cJSON *body)
{
    const ah_host_api *h = r->h;
    cJSON *norm = NULL, *rec = NULL, *job = NULL, *raw = NULL;
    erp_error e;
    if (erp_validate_job(body, ERP_OP_UPDATE, &norm, &e) != 0)
        return answer_error(r, &e);
    ah_result res;
    char now[32], id[80], other[96], title_key[1024];
    const char *job_id = str_of(norm, "job_id");
    rec = h->record_get(r->src, "job", job_id);
    if (rec == NULL) {
        cJSON *list = h->record_find(r->src, "job", "job_id", job_id, 0, 1);
        const cJSON *first = cJSON_GetArrayItem(list, 0);
        if (list == NULL)
            res = answer_fail(r, 500, ERP_E_INTERNAL, NULL, "the job store is unavailable");
        else if (first == NULL)
            res = answer_fail(r, 404, ERP_E_JOB_NOT_FOUND, "job_id", "no job '%s' for this tenant",
                              job_id);
        else {
            const char *owner = str_of(cJSON_GetObjectItemCaseSensitive(first, "fields"), "source_name");
            res = answer_fail(r, 409, ERP_E_JOB_NOT_OWNED, "job_id",
                              "job '%s' was created by source '%s'; update it through that source",
                              job_id, owner != NULL ? owner : "?");
        }
        cJSON_Delete(list);
        goto out;
    }
    job = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(rec, "fields"), 1);
    const cJSON *old_raw = cJSON_GetObjectItemCaseSensitive(rec, "raw");
    raw = cJSON_IsObject(old_raw) ? cJSON_Duplicate(old_raw, 1) : cJSON_CreateObject();
    if (!cJSON_IsObject(job) || raw == NULL) {
        res = answer_fail(r, 500, ERP_E_INTERNAL, NULL, "the stored job '%s' is unreadable", job_id);
        goto out;
    }
    char old_key[1024];
    bool was_open = erp_status_open(str_of(job, "status"));
    snprintf(old_key, sizeof old_key, "%s", str_of(job, "title_key") ? str_of(job, "title_key") : "");
    apply_fields(job, norm);
    erp_title_key(str_of(job, "title") ? str_of(job, "title") : "", title_key, sizeof title_key);
    /* Only a job that becomes open, or an open job that changes its title,
     * can collide with another open job. */
    if (erp_status_open(str_of(job, "status")) && (!was_open || strcmp(old_key, title_key) != 0)) {
        int dup = find_open_title(r, title_key, job_id, other, sizeof other, NULL, NULL, NULL,
                                  NULL);
        if (dup != 0) {
            res = dup < 0 ? answer_fail(r, 500, ERP_E_INTERNAL, NULL, "the job store is unavailable")
                          : answer_fail(r, 409, ERP_E_JOB_EXISTS, "title",
                                        "another open job has this title (%s)", other);
            goto out;
        }
    }
    /* raw: what the ERP has told us so far, newest values winning. */
    cJSON *upd = raw_copy(body);
    const cJSON *it;
    cJSON_ArrayForEach(it, upd)
        set_item(raw, it->string, cJSON_Duplicate(it, 1));
    cJSON_Delete(upd);
    if (!ah_utc_now(now, sizeof now)) {
        res = answer_fail(r, 500, ERP_E_INTERNAL, NULL, "the host clock is out of range");
        goto out;
    }
    set_str(job, "updated_at", now);
    if (store_job(r, job, raw, NULL, now, id, sizeof id) != AH_OK) {
        h->log(r->src, AH_LOG_ERROR, "cannot store job %s", job_id);
        res = answer_fail(r, 500, ERP_E_INTERNAL, NULL, "the job could not be saved; retry later");
        goto out;
    }
    publish_job(r, "event.job.updated", job, id);
    res = answer(r, 200, erp_env_success("Job updated successfully", job_data(job, "updated_at"),
                                         elapsed(r)));
out:
    cJSON_Delete(norm);
    cJSON_Delete(rec);
    cJSON_Delete(job);
    cJSON_Delete(raw);
    return res;
}

/* Authentication resolves the source (conn_by_secret), which holds the
 * source's call lock until the route returns: one request of a source at a
 * time. What depends on the body alone (parsing; for a create the
 * validation and the job's fields) is done before, outside that lock, for
 * a body within the default size limit; its errors are answered after the
 * authentication's, in the guide's order. */
static ah_result job_route(ah_call *call, ah_http_exchange *ex, erp_op op)
{
    erp_req r;
    req_init(&r, call, ex);
    size_t len = 0;
    r.h->http_body(ex, &len);
    bool early = len <= (size_t)ERP_DEFAULT_MAX_BODY;
    const char *why = NULL;
    cJSON *body = early ? parse_body(&r, &why) : NULL;
    erp_create c;
    bool prepared = early && body != NULL && op == ERP_OP_CREATE;
    if (prepared)
        create_prepare(body, &c);
    ah_result res = AH_OK;
    if (authenticate(&r) != 0)
        goto out;
    if (!early)
        body = parse_body(&r, &why);
    if (body == NULL) {
        answer_fail(&r, 400, ERP_E_INVALID_JSON, NULL, "%s", why);
        goto out;
    }
    if (check_source(&r, body) != 0)
        goto out;
    if (op == ERP_OP_CREATE) {
        if (!prepared) {
            create_prepare(body, &c);
            prepared = true;
        }
        cJSON_Delete(body); /* before the store's scope (erp_create) */
        body = NULL;
        res = create_job(&r, &c);
    } else {
        res = update_job(&r, body);
    }
out:
    if (prepared)
        create_free(&c);
    cJSON_Delete(body);
    return res;
}

static ah_result route_create(ah_call *call, ah_http_exchange *ex)
{
    return job_route(call, ex, ERP_OP_CREATE);
}

static ah_result route_update(ah_call *call, ah_http_exchange *ex)
{
    return job_route(call, ex, ERP_OP_UPDATE);
}

/* ------------------------------------------------------------------------ */
/* Health and API info (no authentication)                                   */
/* ------------------------------------------------------------------------ */

/* The guide's health body; *ok tells whether the store answered. */
static cJSON *health_body(ah_call *call, bool *ok)
{
    char now[AH_UTC_LEN];
    /* A clock out of range is itself unhealthy. */
    *ok = ah_utc_now(now, sizeof now) && call->host->store_ping(call) == AH_OK;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "status", *ok ? "healthy" : "unhealthy");
    cJSON_AddStringToObject(o, "timestamp", now);
    cJSON *s = cJSON_AddObjectToObject(o, "services");
    if (s != NULL) {
        cJSON_AddStringToObject(s, "erp_integration", "available");
        cJSON_AddStringToObject(s, "database", *ok ? "connected" : "disconnected");
    }
    return o;
}

static ah_result route_health(ah_call *call, ah_http_exchange *ex)
{
    bool ok;
    cJSON *o = health_body(call, &ok);
    return call->host->http_respond_json(ex, o == NULL ? 500 : ok ? 200 : 503, o);
}

static ah_result route_info(ah_call *call, ah_http_exchange *ex)
{
    static const char *const eps[][3] = {
        {"GET", ERP_BASE, "Health check and API info"},
        {"POST", ERP_BASE "create-job/", "Create a new job posting"},
        {"POST", ERP_BASE "update-job/", "Update an existing job posting"},
        {"GET", ERP_BASE "health/", "Health check"},
    };
    erp_req r;
    req_init(&r, call, ex);
    bool ok;
    cJSON *health = health_body(call, &ok);
    cJSON *d = cJSON_CreateObject();
    if (d == NULL || health == NULL) {
        cJSON_Delete(d);
        cJSON_Delete(health);
        return answer(&r, 500, NULL);
    }
    cJSON_AddStringToObject(d, "name", "atshub ERP integration");
    cJSON_AddStringToObject(d, "version", ERP_VERSION);
    cJSON_AddStringToObject(d, "authentication", "X-API-Key header or api_key query parameter");
    cJSON *list = cJSON_AddArrayToObject(d, "endpoints");
    for (size_t i = 0; list != NULL && i < sizeof eps / sizeof eps[0]; i++) {
        cJSON *e = cJSON_CreateObject();
        if (e == NULL)
            break;
        cJSON_AddStringToObject(e, "method", eps[i][0]);
        cJSON_AddStringToObject(e, "path", eps[i][1]);
        cJSON_AddStringToObject(e, "description", eps[i][2]);
        cJSON_AddItemToArray(list, e);
    }
    cJSON_AddItemToObject(d, "health", health);
    if (!ok) {
        cJSON *o = erp_env_error("ERP integration is unhealthy: the database is not reachable",
                                 ERP_E_UNAVAILABLE, NULL, elapsed(&r));
        if (o != NULL)
            cJSON_AddItemToObject(o, "data", d);
        else
            cJSON_Delete(d);
        return answer(&r, 503, o);
    }
    return answer(&r, 200, erp_env_success("ERP integration API", d, elapsed(&r)));
}

/* Each endpoint is also served without its trailing slash, as ERP clients
 * that build URLs by string concatenation often drop it. */
static const ah_route erp_routes[] = {
    {"GET", ERP_BASE, route_info, 0, "erp.info"},
    {"GET", "/recruitment/integration/erp", route_info, 0, "erp.info"},
    {"GET", ERP_BASE "health/", route_health, 0, "erp.health"},
    {"GET", ERP_BASE "health", route_health, 0, "erp.health"},
    {"POST", ERP_BASE "create-job/", route_create, AH_ROUTE_ATOMIC, "erp.create_job"},
    {"POST", ERP_BASE "create-job", route_create, AH_ROUTE_ATOMIC, "erp.create_job"},
    {"POST", ERP_BASE "update-job/", route_update, AH_ROUTE_ATOMIC, "erp.update_job"},
    {"POST", ERP_BASE "update-job", route_update, AH_ROUTE_ATOMIC, "erp.update_job"},
    {NULL, NULL, NULL, 0, NULL},
};

static const ah_plugin_descriptor erp_descriptor = {
    .struct_size = sizeof(ah_plugin_descriptor),
    .abi_major = AH_ABI_MAJOR,
    .abi_minor = AH_ABI_MINOR,
    .name = "erp",
    .version = ERP_VERSION,
    .description = "ERP systems push job postings (the ERP Integration Guide's endpoints)",
    .settings = erp_settings,
    .routes = erp_routes,
    /* No op_writes: the plugin serves no bus write and never calls the ERP
     * (the ERP calls atshub), so there is no provider write to reconcile. */
    /* The record store, sequences and atomic routes are ABI 1.1; a
     * record's raw given as text (ah_record.raw_json) 1.2. */
    .needs_abi_minor = 2,
};

AH_PLUGIN_ENTRY
{
    (void)host;
    return &erp_descriptor;
}
