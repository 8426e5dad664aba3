/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The automatic push: status events of the tenant's other connections
 * (event.application.*, event.candidate.*) become CareerBuilder statuses.
 *
 * Delivery is the core's: events wait in its outbox and reach this
 * connection oldest first. A handler that returns AH_ERR keeps its event
 * (and everything behind it) for a later retry, so only failures that a
 * retry can cure return AH_ERR: CareerBuilder unreachable, 429/5xx, no
 * token, a candidate record that has not arrived yet. A status that can
 * never be sent (no email, refused by validation or by CareerBuilder with
 * a 4xx) is logged and dropped, or it would block the queue for good.
 *
 * The record is read from the store when the event is delivered, so a
 * backlog sends each record's newest state (README.md: event handling).
 *
 * A push whose outcome stayed unknown (sent, its answer lost, and
 * CareerBuilder unreadable) keeps its event, and is remembered in the
 * connection's store as a record of type CB_PUSH_TYPE keyed by the status
 * (push_key). Every later delivery of that status reads CareerBuilder back
 * before anything is sent: stored, the event is done without sending;
 * absent, it is sent; still unreadable, the event waits and nothing is
 * sent. So a push reaches CareerBuilder at most once per status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cb.h"

typedef enum build_rc {
    BUILD_OK = 0,
    BUILD_SKIP = 1, /* nothing to send; logged */
    BUILD_WAIT = 2, /* retry later; described with fail */
} build_rc;

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring[0] != '\0' ? v->valuestring : NULL;
}

/* A string or whole-number member as text (ids come both ways). */
static const char *id_of(const cJSON *o, const char *key, char *buf, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsString(v) && v->valuestring[0] != '\0')
        return v->valuestring;
    long long whole;
    if (cJSON_IsNumber(v) && ah_whole(v->valuedouble, &whole)) {
        snprintf(buf, len, "%lld", whole);
        return buf;
    }
    return NULL;
}

static const cJSON *fields_of(const cJSON *rec)
{
    return cJSON_GetObjectItemCaseSensitive(rec, "fields");
}

/* The first record of the tenant of `type` whose field remote_id is `rid`. */
static cJSON *find_by_remote(ah_call *call, const char *type, const char *rid)
{
    if (rid == NULL)
        return NULL;
    cJSON *list = call->host->record_find(call, type, "remote_id", rid, 0, 1);
    cJSON *first = list != NULL ? cJSON_DetachItemFromArray(list, 0) : NULL;
    cJSON_Delete(list);
    return first;
}

/* The event's record: by atshub id, else by remote id. */
static cJSON *load_record(ah_call *call, const char *type, const cJSON *body)
{
    const char *id = call->host->json_string(body, "id", 128);
    if (id != NULL && *id != '\0') {
        cJSON *r = call->host->record_by_id(call, id);
        if (r != NULL)
            return r;
    }
    return find_by_remote(call, type, call->host->json_string(body, "remote_id", 256));
}

static bool add_str(cJSON *o, const char *key, const char *v, size_t max_chars)
{
    char *copy = strdup(v);
    if (copy == NULL)
        return false;
    if (max_chars > 0)
        cb_utf8_truncate(copy, max_chars);
    bool ok = cJSON_AddStringToObject(o, key, copy) != NULL;
    free(copy);
    return ok;
}

/* --- the status ------------------------------------------------------------------- */

/* Looks `key` up in the map, first qualified by the source connection
 * ("src/stage:Interview"), then bare. */
static const char *map_lookup(const cJSON *map, const char *src, const char *key)
{
    char q[512];
    if (src != NULL) {
        snprintf(q, sizeof q, "%s/%s", src, key);
        const char *v = str_of(map, q);
        if (v != NULL)
            return v;
    }
    return str_of(map, key);
}

/* status (mapped or raw), status_detail (raw, "Step: Status" when both). */
static bool add_status(cJSON *st, const cb_conn *c, const char *src, const char *const *keys,
                       size_t nkeys, const char *step, const char *state, const char *raw)
{
    const char *mapped = NULL;
    for (size_t i = 0; mapped == NULL && i < nkeys; i++)
        if (keys[i] != NULL)
            mapped = map_lookup(c->status_map, src, keys[i]);
    char detail[1024];
    if (step != NULL && state != NULL)
        snprintf(detail, sizeof detail, "%s: %s", step, state);
    else
        snprintf(detail, sizeof detail, "%s", raw);
    return add_str(st, "status", mapped != NULL ? mapped : raw, CB_MAX_STATUS) &&
           add_str(st, "status_detail", detail, CB_MAX_STATUS_DETAIL);
}

static bool add_date(ah_call *call, cJSON *st, const cJSON *rec, const cJSON *body)
{
    const char *cands[] = {str_of(rec, "updated_at"), str_of(fields_of(rec), "updated_at"),
                           str_of(body, "updated_at")};
    char out[32];
    for (size_t i = 0; i < 3; i++)
        if (cands[i] != NULL && cb_date_to_utc(cands[i], out, sizeof out))
            return cJSON_AddStringToObject(st, "status_date", out) != NULL;
    if (!ah_utc_now(out, sizeof out))
        return false;
    call->host->log(call, AH_LOG_DEBUG, "record without a usable updated_at: status_date is now");
    return cJSON_AddStringToObject(st, "status_date", out) != NULL;
}

static cJSON *new_status(const cb_conn *c, const char *email, const char *level)
{
    cJSON *st = cJSON_CreateObject();
    if (st == NULL)
        return NULL;
    if (cJSON_AddStringToObject(st, "account", c->account) == NULL ||
        !add_str(st, "candidate_email", email, 0) ||
        cJSON_AddStringToObject(st, "vendor_key", c->vendor_key) == NULL ||
        cJSON_AddStringToObject(st, "client", c->client) == NULL ||
        cJSON_AddStringToObject(st, "status_level", level) == NULL) {
        cJSON_Delete(st);
        return NULL;
    }
    return st;
}

/* Seconds since the record was first stored, or -1 when unknown. */
static long record_age_s(const cJSON *rec)
{
    const char *at = str_of(rec, "stored_at");
    if (at == NULL)
        at = str_of(rec, "created_at");
    char utc[32];
    time_t t;
    if (at == NULL || !cb_date_to_utc(at, utc, sizeof utc) || !cb_date_parse(utc, &t))
        return -1;
    return (long)(time(NULL) - t);
}

/* The candidate's email for an application record. */
static build_rc application_email(ah_call *call, const cb_conn *c, const cJSON *app,
                                  char *email, size_t len)
{
    const cJSON *f = fields_of(app);
    const char *e = str_of(f, "candidate_email");
    if (e == NULL)
        e = str_of(f, "email");
    if (e != NULL) {
        snprintf(email, len, "%s", e);
        return BUILD_OK;
    }
    char b1[64], b2[64];
    const char *cand_id = id_of(f, "candidate_id", b1, sizeof b1);
    const char *cand_rid = id_of(f, "candidate_remote_id", b2, sizeof b2);
    cJSON *cand = NULL;
    if (cand_id != NULL)
        cand = call->host->record_by_id(call, cand_id);
    if (cand == NULL)
        cand = find_by_remote(call, "candidate", cand_rid);
    if (cand == NULL && cand_id == NULL && cand_rid == NULL) {
        call->host->log(call, AH_LOG_WARN, "application %s names no candidate: not sent",
                        str_of(app, "remote_id") ? str_of(app, "remote_id") : "?");
        return BUILD_SKIP;
    }
    if (cand == NULL) {
        long age = record_age_s(app);
        if (age >= 0 && age < c->candidate_wait_s) {
            call->host->fail(call, "candidate_pending", 503,
                             "the candidate of application %s is not in the store yet",
                             str_of(app, "remote_id") ? str_of(app, "remote_id") : "?");
            return BUILD_WAIT;
        }
        call->host->log(call, AH_LOG_WARN,
                        "the candidate of application %s never arrived: status not sent",
                        str_of(app, "remote_id") ? str_of(app, "remote_id") : "?");
        return BUILD_SKIP;
    }
    e = str_of(fields_of(cand), "email");
    if (e != NULL)
        snprintf(email, len, "%s", e);
    cJSON_Delete(cand);
    if (e == NULL) {
        call->host->log(call, AH_LOG_INFO, "the candidate of application %s has no email: "
                        "status not sent",
                        str_of(app, "remote_id") ? str_of(app, "remote_id") : "?");
        return BUILD_SKIP;
    }
    return BUILD_OK;
}

static build_rc build_application(ah_call *call, const cb_conn *c, const char *topic,
                                  const cJSON *body, const cJSON *app, cJSON **out)
{
    const cJSON *f = fields_of(app);
    char email[1024];
    build_rc rc = application_email(call, c, app, email, sizeof email);
    if (rc != BUILD_OK)
        return rc;
    char b1[64], b2[64];
    const char *req = id_of(f, "job_remote_id", b1, sizeof b1);
    if (req == NULL)
        req = id_of(f, "requisition_id", b1, sizeof b1);
    if (req == NULL) {
        call->host->log(call, AH_LOG_WARN, "application %s names no job: status not sent",
                        str_of(app, "remote_id") ? str_of(app, "remote_id") : "?");
        return BUILD_SKIP;
    }
    const char *title = str_of(f, "job_title");
    cJSON *job = title == NULL ? find_by_remote(call, "job", req) : NULL;
    if (title == NULL)
        title = str_of(fields_of(job), "title");
    const char *step = str_of(f, "stage_name");
    if (step == NULL)
        step = str_of(f, "stage");
    if (step == NULL)
        step = id_of(f, "stage_id", b2, sizeof b2);
    const char *state = str_of(f, "status");
    const char *raw = step != NULL ? step : state != NULL ? state : "created";
    char k_state[160], k_step[160];
    snprintf(k_state, sizeof k_state, "status:%s", state ? state : "");
    snprintf(k_step, sizeof k_step, "stage:%s", step ? step : "");
    bool created = strstr(topic, ".created") != NULL;
    const char *keys[] = {created ? "application.created" : NULL, state ? k_state : NULL,
                          step ? k_step : NULL, step ? "stage:*" : NULL};
    const char *src = call->host->json_string(body, "connection", 128);
    cJSON *st = new_status(c, email, "application");
    bool ok = st != NULL && add_str(st, "requisition_id", req, 0) &&
              (title == NULL || add_str(st, "requisition_title", title, CB_MAX_REQUISITION_TITLE)) &&
              (str_of(app, "remote_id") == NULL ||
               add_str(st, "level_id", str_of(app, "remote_id"), CB_MAX_LEVEL_ID)) &&
              add_status(st, c, src, keys, 4, step && state ? step : NULL, state, raw) &&
              add_date(call, st, app, body);
    cJSON_Delete(job);
    if (!ok) {
        cJSON_Delete(st);
        call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
        return BUILD_WAIT;
    }
    *out = st;
    return BUILD_OK;
}

static build_rc build_candidate(ah_call *call, const cb_conn *c, const char *topic,
                                const cJSON *body, const cJSON *cand, cJSON **out)
{
    const cJSON *f = fields_of(cand);
    const char *email = str_of(f, "email");
    bool created = strstr(topic, ".created") != NULL;
    const char *raw = str_of(f, "status");
    if (raw == NULL && !created)
        return BUILD_SKIP; /* an update of a source without candidate statuses */
    if (email == NULL) {
        call->host->log(call, AH_LOG_INFO, "candidate %s has no email: status not sent",
                        str_of(cand, "remote_id") ? str_of(cand, "remote_id") : "?");
        return BUILD_SKIP;
    }
    if (raw == NULL)
        raw = "created";
    char k_raw[160];
    snprintf(k_raw, sizeof k_raw, "candidate:%s", raw);
    const char *keys[] = {created ? "candidate.created" : NULL, k_raw, "candidate:*"};
    const char *src = call->host->json_string(body, "connection", 128);
    cJSON *st = new_status(c, email, "candidate");
    bool ok = st != NULL &&
              (str_of(cand, "remote_id") == NULL ||
               add_str(st, "level_id", str_of(cand, "remote_id"), CB_MAX_LEVEL_ID)) &&
              add_status(st, c, src, keys, 3, NULL, NULL, raw) && add_date(call, st, cand, body);
    if (!ok) {
        cJSON_Delete(st);
        call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
        return BUILD_WAIT;
    }
    *out = st;
    return BUILD_OK;
}

/* --- pushes whose outcome stayed unknown --------------------------------------- */

/* The record type that remembers a push whose outcome stayed unknown. */
#define CB_PUSH_TYPE "careerbuilder_push"

/* The key of a status, as CareerBuilder's read back compares them (cb_api.c,
 * same_status): account, email and level in lower case, vendor key,
 * requisition, status and date as they are. malloc'd, NULL on OOM. */
static char *push_key(const cJSON *st)
{
    static const char *const parts[] = {"account",        "candidate_email", "status_level",
                                        "vendor_key",     "requisition_id",  "status",
                                        "status_date"};
    size_t n = 1;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, parts[i]));
        n += (v != NULL ? strlen(v) : 0) + 1;
    }
    char *k = malloc(n), *p = k;
    if (k == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, parts[i]));
        for (; v != NULL && *v != '\0'; v++)
            *p++ = i < 3 && *v >= 'A' && *v <= 'Z' ? (char)(*v - 'A' + 'a') : *v;
        *p++ = '|';
    }
    *p = '\0';
    return k;
}

/* Whether the status of key was pushed before with an outcome that stayed
 * unknown (and is not known to be settled since). */
static bool push_unknown(ah_call *call, const char *key)
{
    cJSON *r = call->host->record_get(call, CB_PUSH_TYPE, key);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "fields");
    const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "state"));
    bool unknown = state != NULL && strcmp(state, "unknown") == 0;
    cJSON_Delete(r);
    return unknown;
}

/* Remembers how the push of key ended: "unknown" (read CareerBuilder back
 * before sending it again) or "sent". */
static void push_mark(ah_call *call, const char *key, const cJSON *st, const char *state)
{
    cJSON *fields = cJSON_CreateObject();
    if (fields == NULL || cJSON_AddStringToObject(fields, "state", state) == NULL) {
        cJSON_Delete(fields);
        return;
    }
    ah_record rec = {
        .struct_size = sizeof rec,
        .type = CB_PUSH_TYPE,
        .remote_id = key,
        .updated_at = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "status_date")),
        .raw = st,
        .fields = fields,
    };
    if (call->host->record_put(call, &rec, NULL, 0, NULL) != AH_OK)
        call->host->log(call, AH_LOG_WARN, "cannot remember how a push ended (%s)", state);
    cJSON_Delete(fields);
}

/* --- the handler ----------------------------------------------------------------- */

static ah_result on_status_event(ah_call *call, const char *topic, const cJSON *body)
{
    cb_conn *c = call->conn_ctx;
    if (c == NULL || !c->push)
        return AH_OK;
    bool app = strncmp(topic, "event.application.", 18) == 0;
    const char *type = app ? "application" : "candidate";
    cJSON *rec = load_record(call, type, body);
    if (rec == NULL) {
        call->host->log(call, AH_LOG_WARN, "%s: no %s record for id %s: nothing sent", topic,
                        type, call->host->json_string(body, "id", 128) != NULL
                            ? call->host->json_string(body, "id", 128)
                            : "?");
        return AH_OK;
    }
    cJSON *st = NULL;
    build_rc b = app ? build_application(call, c, topic, body, rec, &st)
                     : build_candidate(call, c, topic, body, rec, &st);
    cJSON_Delete(rec);
    if (b == BUILD_WAIT)
        return AH_ERR;
    if (b == BUILD_SKIP)
        return AH_OK;
    char err[1024];
    if (cb_validate_status(st, err, sizeof err) != 0) {
        call->host->log(call, AH_LOG_WARN, "%s: status not valid for CareerBuilder, dropped: %s",
                        topic, err);
        cJSON_Delete(st);
        return AH_OK;
    }
    char *key = push_key(st);
    if (key == NULL) {
        cJSON_Delete(st);
        call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
        return AH_ERR;
    }
    /* Pushed before and its outcome stayed unknown: asked, never re-sent. */
    bool was_unknown = push_unknown(call, key);
    if (was_unknown) {
        int stored = cb_status_stored(call, st);
        if (stored != 0) {
            if (stored == 1) {
                call->host->log(call, AH_LOG_INFO, "%s: the status pushed before (its answer "
                                "was lost) is stored at CareerBuilder; not sent again", topic);
                push_mark(call, key, st, "sent");
            } else {
                call->host->fail(call, AH_E_OUTCOME_UNKNOWN, 502,
                                 "CareerBuilder may have stored the status pushed before and "
                                 "still cannot be read back; it was not sent again");
            }
            cJSON_Delete(st);
            free(key);
            return stored == 1 ? AH_OK : AH_ERR;
        }
        /* Not there: it certainly was not stored; send it. */
    }
    /* One attempt: the core's outbox is the retry, with its own backoff,
     * so a lane is not held by the HTTP client's retries. */
    cb_send_result r = cb_send_status(call, st, 1, NULL);
    /* CB_UNKNOWN keeps the event too, and is remembered: its next delivery
     * reads CareerBuilder back before it sends anything. */
    if (r == CB_UNKNOWN)
        push_mark(call, key, st, "unknown");
    else if (r == CB_SENT && was_unknown)
        push_mark(call, key, st, "sent");
    cJSON_Delete(st);
    free(key);
    if (r == CB_TRANSIENT || r == CB_UNKNOWN)
        return AH_ERR;
    if (r == CB_REFUSED)
        call->host->log(call, AH_LOG_WARN, "%s: CareerBuilder refused the status, dropped", topic);
    return AH_OK;
}

const ah_subscription cb_subscriptions[] = {
    {"event.application.created", on_status_event},
    {"event.application.updated", on_status_event},
    {"event.application.stage_changed", on_status_event},
    {"event.candidate.created", on_status_event},
    {"event.candidate.updated", on_status_event},
    {NULL, NULL},
};
