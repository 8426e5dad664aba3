/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The unified REST resources under /v1 (docs/api.md): jobs, candidates and
 * applications read from the store, and the write actions, which become bus
 * requests to the plugin of the connection the record belongs to.
 *
 * Records are addressed by their atshub id; the plugin only ever sees the
 * provider's remote ids. Every body is validated before anything is sent,
 * and a validation error names the offending field.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "conns.h"
#include "rest.h"
#include "tracking.h"
#include "core.h"
#include "bulk.h"
#include "eventlog.h"
#include "idempotency.h"
#include "webhooks.h"

#define API_LIMIT_DEFAULT 100
#define API_LIMIT_MAX 500
/* How long POST /v1/applications/bulk-reject?wait=true holds its server
 * thread waiting for the bulk job: long enough for a batch of a provider
 * at a normal pace, short of the usual client and proxy timeouts. */
#define API_BULK_WAIT_MS 30000L
#define API_NOTE_MAX (100 * 1024)
#define API_FILENAME_MAX 255
#define API_REF_MAX 128     /* stage, reason, action ids */
#define API_SHORT_MAX 255   /* kind, content_type */
#define API_SEARCH_MAX 256  /* candidate search terms */
#define API_PCURSOR_MAX 1024 /* a provider's opaque cursor */
#define API_ID_MAX 64       /* an atshub record id */

enum {
    K_JOB = 1u << 0,
    K_CANDIDATE = 1u << 1,
    K_APPLICATION = 1u << 2,
};

/* A record collection: its store type and the key its id goes under in a
 * plugin body. The store type doubles as the custom-fields entity. */
typedef struct api_kind {
    unsigned bit;
    const char *type;
    const char *id_key;
} api_kind;

/* In this order: KJ, KC and KA (the route table) index it. */
static const api_kind api_kinds[] = {
    {K_JOB, "job", "job_id"},
    {K_CANDIDATE, "candidate", "candidate_id"},
    {K_APPLICATION, "application", "application_id"},
};
#define API_NKINDS (sizeof api_kinds / sizeof api_kinds[0])

/* One request being served. */
typedef struct api_req {
    ah_core *core;
    ah_http_exchange *ex;
    char tenant[128];
    int64_t tenant_id;
    const api_kind *kind;
    const char *id; /* the {id} segment, when the route has one */
    cJSON *empty; /* stands for an empty request body */
} api_req;

/* ------------------------------------------------------------------------ */
/* Helpers: authentication, answers, parameters                              */
/* ------------------------------------------------------------------------ */

/* Authenticates the bearer key; answers 401 itself. */
static int api_auth(api_req *rq)
{
    rq->tenant_id = ah_rest_tenant(rq->core, rq->ex, rq->tenant, sizeof rq->tenant);
    return rq->tenant_id < 0 ? -1 : 0;
}

static void api_oom(api_req *rq)
{
    ah_ex_error(rq->ex, 500, AH_E_INTERNAL, "out of memory");
}

/* Answers 200 {"data": data} (data transferred). */
static void respond_data(api_req *rq, cJSON *data)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || data == NULL || !cJSON_AddItemToObject(o, "data", data)) {
        cJSON_Delete(o);
        cJSON_Delete(data);
        api_oom(rq);
        return;
    }
    ah_ex_respond_json(rq->ex, 200, o);
}

/* Sends one bus request to the tenant's connection `conn` and answers with
 * its reply, or its error mapped to HTTP, from the bus worker that gets it
 * (the request waits suspended, holding no server thread). `body`
 * transferred (NULL: out of memory while building it). The last thing a
 * handler does: rq->ex is not the handler's afterwards. */
static void api_send(api_req *rq, const char *conn, const char *topic, cJSON *body)
{
    ah_rest_forward(rq->core, rq->ex, rq->tenant, conn, topic, body, 0);
}

static bool is_integral(double d)
{
    return d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(long long)d;
}

/* A query parameter as an integer in lo..hi; absent: def. Answers 400. */
static int query_int(api_req *rq, const char *key, long lo, long hi, long def, long *out)
{
    const char *s = ah_ex_query(rq->ex, key);
    *out = def;
    if (s == NULL)
        return 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "%s must be an integer between %ld and %ld",
                    key, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static bool has_control(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* "rec_" and lower-case hex digits: the form of every atshub record id. */
static bool valid_record_id(const char *s)
{
    size_t n = strlen(s);
    if (n <= 4 || n >= API_ID_MAX || strncmp(s, "rec_", 4) != 0)
        return false;
    for (size_t i = 4; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Bodies                                                                    */
/* ------------------------------------------------------------------------ */

/* The request body as a JSON object whose members are all in `allowed`
 * (NULL-terminated); an empty body is {}. Answers 400 itself (NULL). */
static const cJSON *body_object(api_req *rq, const char *const *allowed)
{
    size_t len = 0;
    ah_ex_body(rq->ex, &len);
    if (len == 0) {
        if (rq->empty == NULL)
            rq->empty = cJSON_CreateObject();
        if (rq->empty == NULL)
            api_oom(rq);
        return rq->empty;
    }
    const cJSON *j = ah_ex_json(rq->ex);
    if (j == NULL)
        return NULL; /* answered */
    if (!cJSON_IsObject(j)) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "the request body must be a JSON object");
        return NULL;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, j) {
        bool known = false;
        for (size_t i = 0; !known && allowed[i] != NULL; i++)
            known = m->string != NULL && strcmp(m->string, allowed[i]) == 0;
        if (!known) {
            ah_ex_error(rq->ex, 400, AH_E_INVALID, "unknown field '%s'",
                        m->string != NULL ? m->string : "");
            return NULL;
        }
    }
    return j;
}

static const cJSON *member(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v != NULL && !cJSON_IsNull(v) ? v : NULL;
}

/* A provider reference (stage, reason, action id): a non-empty string of at
 * most API_REF_MAX bytes without control characters, or an integer. *out is
 * NULL when absent and optional. Answers 400 itself. */
static int body_ref(api_req *rq, const cJSON *o, const char *key, bool required,
                    const cJSON **out)
{
    const cJSON *v = member(o, key);
    *out = v;
    if (v == NULL) {
        if (!required)
            return 0;
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "%s is required", key);
        return -1;
    }
    bool ok = cJSON_IsNumber(v) ? is_integral(v->valuedouble)
              : cJSON_IsString(v) && v->valuestring[0] != '\0' &&
                    strlen(v->valuestring) <= API_REF_MAX && !has_control(v->valuestring);
    if (!ok) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID,
                    "%s must be an integer or a non-empty string of at most %d bytes", key,
                    API_REF_MAX);
        return -1;
    }
    return 0;
}

/* A string member of 1..max bytes. *out is NULL when absent and optional.
 * Answers 400 itself. */
static int body_string(api_req *rq, const cJSON *o, const char *key, bool required,
                       size_t max, const char **out)
{
    const cJSON *v = member(o, key);
    *out = NULL;
    if (v == NULL) {
        if (!required)
            return 0;
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "%s is required", key);
        return -1;
    }
    if (!cJSON_IsString(v)) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "%s must be a string", key);
        return -1;
    }
    size_t n = strlen(v->valuestring);
    if (n == 0 || n > max) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "%s must be between 1 and %zu bytes long", key,
                    max);
        return -1;
    }
    *out = v->valuestring;
    return 0;
}

static bool add_str(cJSON *o, const char *key, const char *v)
{
    return cJSON_AddStringToObject(o, key, v) != NULL;
}

/* Adds a copy of v (when not NULL). */
static bool add_copy(cJSON *o, const char *key, const cJSON *v)
{
    if (v == NULL)
        return true;
    cJSON *c = cJSON_Duplicate(v, 1);
    if (c == NULL || !cJSON_AddItemToObject(o, key, c)) {
        cJSON_Delete(c);
        return false;
    }
    return true;
}

/* {key: value} or NULL on OOM. */
static cJSON *obj1(const char *key, const char *value)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !add_str(o, key, value)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ------------------------------------------------------------------------ */
/* Records and connections                                                   */
/* ------------------------------------------------------------------------ */

/* The connection a request names, by ?connection= or X-Connection (they
 * must agree when both are sent). Returns 1 with *out NULL when none is
 * named, 0 with *out set (ref taken), -1 when answered (400/404). */
static int named_conn(api_req *rq, bool required, ah_conn **out)
{
    const char *q = ah_ex_query(rq->ex, "connection");
    const char *h = ah_ex_header(rq->ex, "X-Connection");
    *out = NULL;
    if (q != NULL && *q == '\0')
        q = NULL;
    if (h != NULL && *h == '\0')
        h = NULL;
    if (q != NULL && h != NULL && strcmp(q, h) != 0) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID,
                    "connection: the query parameter and the X-Connection header disagree");
        return -1;
    }
    const char *name = q != NULL ? q : h;
    if (name == NULL) {
        if (!required)
            return 1;
        /* The same code as /v1/bus and /v1/statuses (docs/openapi.yaml). */
        ah_ex_error(rq->ex, 400, "missing_connection",
                    "connection is required: send the X-Connection header or ?connection=");
        return -1;
    }
    *out = ah_conn_find(rq->core, rq->tenant, name);
    if (*out == NULL) {
        ah_ex_error(rq->ex, 404, AH_E_NOT_FOUND, "no connection '%s'", name);
        return -1;
    }
    return 0;
}

/* The tenant's record `id` of `type` and its connection (ref taken).
 * AH_STORE_NOT_FOUND also when the id is malformed, the record has another
 * type, its connection is gone, or X-Connection / ?connection= names
 * another connection. */
static int find_record(api_req *rq, const char *id, const char *type, ah_record_row *row,
                       ah_conn **conn)
{
    memset(row, 0, sizeof *row);
    *conn = NULL;
    if (!valid_record_id(id))
        return AH_STORE_NOT_FOUND;
    int rc = rq->core->store->ops->record_get_by_id(rq->core->store, rq->tenant_id, id, row);
    if (rc != AH_STORE_OK)
        return rc == AH_STORE_NOT_FOUND ? rc : AH_STORE_ERR;
    const char *h = ah_ex_header(rq->ex, "X-Connection");
    const char *q = ah_ex_query(rq->ex, "connection");
    ah_conn *c = NULL;
    if (strcmp(row->type, type) == 0)
        c = ah_conn_by_id(rq->core, row->connection_id);
    if (c != NULL && (c->tenant_id != rq->tenant_id ||
                      (h != NULL && *h != '\0' && strcmp(h, c->name) != 0) ||
                      (q != NULL && *q != '\0' && strcmp(q, c->name) != 0))) {
        ah_conn_release(c);
        c = NULL;
    }
    if (c == NULL) {
        ah_record_row_free(row);
        memset(row, 0, sizeof *row);
        return AH_STORE_NOT_FOUND;
    }
    *conn = c;
    return AH_STORE_OK;
}

/* find_record, answering 404/500 itself (-1). `what` names the id. */
static int load_record(api_req *rq, const char *id, const char *type, const char *what,
                       ah_record_row *row, ah_conn **conn)
{
    int rc = find_record(rq, id, type, row, conn);
    if (rc == AH_STORE_NOT_FOUND) {
        ah_ex_error(rq->ex, 404, AH_E_NOT_FOUND, "%s: no %s '%s'", what, type, id);
        return -1;
    }
    if (rc != AH_STORE_OK) {
        ah_ex_error(rq->ex, 500, AH_E_INTERNAL, "cannot read the store");
        return -1;
    }
    return 0;
}

static cJSON *parse_stored(const char *text)
{
    cJSON *j = text != NULL ? cJSON_ParseWithLength(text, strlen(text)) : NULL;
    return j != NULL ? j : cJSON_CreateNull();
}

/* {"id","type","connection","remote_id","updated_at","fields",("raw")} */
static cJSON *record_json(api_req *rq, const ah_record_row *row, bool raw)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    ah_conn *c = ah_conn_by_id(rq->core, row->connection_id);
    bool ok = add_str(o, "id", row->id) && add_str(o, "type", row->type) &&
              (c != NULL ? add_str(o, "connection", c->name)
                         : cJSON_AddNullToObject(o, "connection") != NULL) &&
              add_str(o, "remote_id", row->remote_id) &&
              (row->updated_at != NULL ? add_str(o, "updated_at", row->updated_at)
                                       : cJSON_AddNullToObject(o, "updated_at") != NULL);
    if (c != NULL)
        ah_conn_release(c);
    cJSON *f = ok ? parse_stored(row->fields) : NULL;
    ok = f != NULL && cJSON_AddItemToObject(o, "fields", f);
    if (!ok)
        cJSON_Delete(f);
    if (ok && raw) {
        cJSON *r = parse_stored(row->raw);
        ok = r != NULL && cJSON_AddItemToObject(o, "raw", r);
        if (!ok)
            cJSON_Delete(r);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* include=raw (a comma-separated list; "raw" is the only member). */
static int include_raw(api_req *rq, bool *raw)
{
    const char *inc = ah_ex_query(rq->ex, "include");
    *raw = false;
    if (inc == NULL || *inc == '\0')
        return 0;
    const char *p = inc;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        if (n == 3 && strncmp(p, "raw", 3) == 0) {
            *raw = true;
        } else if (n != 0) {
            ah_ex_error(rq->ex, 400, AH_E_INVALID, "include: only 'raw' is supported");
            return -1;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Reads from the store                                                      */
/* ------------------------------------------------------------------------ */

/* include_deleted=true|false (default false): also records the provider no
 * longer returns (remote_deleted_at). Answers 400. */
static int include_deleted(api_req *rq, bool *out)
{
    const char *v = ah_ex_query(rq->ex, "include_deleted");
    *out = v != NULL && strcmp(v, "true") == 0;
    if (v != NULL && strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "include_deleted must be true or false");
        return -1;
    }
    return 0;
}

/* GET /v1/applications?stage_changed_after=T: applications whose stage
 * changed after T, oldest change first, each with its stage_history. */
static void op_list_stage_changed(api_req *rq, const char *after, bool raw, long limit)
{
    char norm[32];
    if (ah_iso_normalize(after, norm) != 0) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID,
                    "stage_changed_after must be an ISO-8601 date or date-time");
        return;
    }
    cJSON *ids = ah_stage_changed_since(rq->core, rq->tenant_id, norm, (int)limit);
    cJSON *data = cJSON_CreateArray();
    if (ids == NULL || data == NULL) {
        cJSON_Delete(ids);
        cJSON_Delete(data);
        ah_ex_error(rq->ex, 500, AH_E_INTERNAL, "cannot read the store");
        return;
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, ids) {
        const cJSON *id = cJSON_GetArrayItem(r, 0), *at = cJSON_GetArrayItem(r, 1);
        ah_record_row row;
        if (!cJSON_IsString(id) ||
            rq->core->store->ops->record_get_by_id(rq->core->store, rq->tenant_id,
                                                   id->valuestring, &row) != AH_STORE_OK)
            continue;
        cJSON *o = record_json(rq, &row, raw);
        ah_record_row_free(&row);
        if (o == NULL)
            continue;
        if (cJSON_IsString(at))
            cJSON_AddStringToObject(o, "stage_changed_at", at->valuestring);
        cJSON *h = ah_stage_history(rq->core, id->valuestring);
        if (h != NULL)
            cJSON_AddItemToObject(o, "stage_history", h);
        cJSON_AddItemToArray(data, o);
    }
    cJSON_Delete(ids);
    respond_data(rq, data);
}

typedef struct list_walk {
    api_req *rq;
    cJSON *data;
    int limit;
    int n;
    bool raw;
    bool more;
    bool oom;
    char last[API_ID_MAX];
} list_walk;

static void list_row(void *arg, const ah_record_row *row)
{
    list_walk *w = arg;
    if (w->oom || w->more)
        return;
    if (w->n == w->limit) {
        w->more = true; /* the extra row only tells that a next page exists */
        return;
    }
    cJSON *o = record_json(w->rq, row, w->raw);
    if (o == NULL || !cJSON_AddItemToArray(w->data, o)) {
        cJSON_Delete(o);
        w->oom = true;
        return;
    }
    snprintf(w->last, sizeof w->last, "%s", row->id);
    w->n++;
}

/* GET /v1/{jobs|candidates|applications} */
static void op_list(api_req *rq)
{
    ah_conn *c = NULL;
    bool raw = false;
    long limit = 0;
    bool deleted = false;
    if (include_raw(rq, &raw) != 0 || include_deleted(rq, &deleted) != 0 ||
        query_int(rq, "limit", 1, API_LIMIT_MAX, API_LIMIT_DEFAULT, &limit) != 0)
        return;
    const char *sca = ah_ex_query(rq->ex, "stage_changed_after");
    if (sca != NULL && rq->kind->bit == K_APPLICATION) {
        op_list_stage_changed(rq, sca, raw, limit);
        return;
    }
    const char *ua = ah_ex_query(rq->ex, "updated_after");
    char norm[32];
    if (ua != NULL && ah_iso_normalize(ua, norm) != 0) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID,
                    "updated_after must be an ISO-8601 date or date-time");
        return;
    }
    const char *cursor = ah_ex_query(rq->ex, "cursor");
    if (cursor != NULL && !valid_record_id(cursor)) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID,
                    "cursor is not valid: pass next_cursor of the previous page unchanged");
        return;
    }
    if (named_conn(rq, false, &c) < 0)
        return;
    ah_record_query q = {
        .tenant_id = rq->tenant_id,
        .connection_id = c != NULL ? c->id : 0,
        .type = rq->kind->type,
        .updated_after = ua != NULL ? norm : NULL,
        .after_id = cursor,
        .limit = (int)limit + 1,
        .include_deleted = deleted,
    };
    if (c != NULL)
        ah_conn_release(c);
    list_walk w = {.rq = rq, .data = cJSON_CreateArray(), .limit = (int)limit, .raw = raw};
    if (w.data == NULL) {
        api_oom(rq);
        return;
    }
    if (rq->core->store->ops->record_query(rq->core->store, &q, list_row, &w) != 0) {
        cJSON_Delete(w.data);
        ah_ex_error(rq->ex, 500, AH_E_INTERNAL, "cannot read the store");
        return;
    }
    cJSON *o = w.oom ? NULL : cJSON_CreateObject();
    if (o == NULL || !cJSON_AddItemToObject(o, "data", w.data)) {
        cJSON_Delete(o);
        cJSON_Delete(w.data);
        api_oom(rq);
        return;
    }
    if ((w.more ? cJSON_AddStringToObject(o, "next_cursor", w.last)
                : cJSON_AddNullToObject(o, "next_cursor")) == NULL) {
        cJSON_Delete(o);
        api_oom(rq);
        return;
    }
    ah_ex_respond_json(rq->ex, 200, o);
}

/* GET /v1/{kind}/{id} */
static void op_get(api_req *rq)
{
    bool raw = false, deleted = false;
    if (include_raw(rq, &raw) != 0 || include_deleted(rq, &deleted) != 0)
        return;
    ah_record_row row;
    ah_conn *c = NULL;
    if (load_record(rq, rq->id, rq->kind->type, "id", &row, &c) != 0)
        return;
    ah_conn_release(c);
    if (!deleted && ah_record_deleted(rq->core, row.id)) {
        ah_record_row_free(&row);
        ah_ex_error(rq->ex, 404, AH_E_NOT_FOUND, "id: the provider no longer has this record "
                    "(add include_deleted=true to read it)");
        return;
    }
    cJSON *o = record_json(rq, &row, raw);
    ah_record_row_free(&row);
    if (o == NULL)
        api_oom(rq);
    else
        respond_data(rq, o);
}

/* ------------------------------------------------------------------------ */
/* Writes and live reads on one record                                       */
/* ------------------------------------------------------------------------ */

/* Loads the path's record, makes {id_key: remote_id} and hands it to
 * `fill` (may be NULL) to complete, then sends it. */
typedef bool (*body_fill)(cJSON *out, const cJSON *in);

static void send_for_record(api_req *rq, const char *topic, body_fill fill, const cJSON *in,
                            bool entity)
{
    ah_record_row row;
    ah_conn *c = NULL;
    if (load_record(rq, rq->id, rq->kind->type, "id", &row, &c) != 0)
        return;
    cJSON *b = cJSON_CreateObject();
    bool ok = b != NULL;
    if (ok && entity)
        ok = add_str(b, "entity", rq->kind->type) && add_str(b, "id", row.remote_id);
    else if (ok)
        ok = add_str(b, rq->kind->id_key, row.remote_id);
    if (ok && fill != NULL)
        ok = fill(b, in);
    if (!ok) {
        cJSON_Delete(b);
        b = NULL;
    }
    api_send(rq, c->name, topic, b);
    ah_record_row_free(&row);
    ah_conn_release(c);
}

static bool fill_stage(cJSON *out, const cJSON *in)
{
    return add_copy(out, "stage_id", member(in, "stage_id"));
}

/* POST /v1/applications/{id}/stage {"stage_id"} */
static void op_app_stage(api_req *rq)
{
    static const char *const allowed[] = {"stage_id", NULL};
    const cJSON *in = body_object(rq, allowed), *v;
    if (in == NULL || body_ref(rq, in, "stage_id", true, &v) != 0)
        return;
    send_for_record(rq, "applications.move_to_stage", fill_stage, in, false);
}

static bool fill_reason(cJSON *out, const cJSON *in)
{
    return add_copy(out, "reason_id", member(in, "reason_id"));
}

/* POST /v1/applications/{id}/reject {"reason_id"} */
static void op_app_reject(api_req *rq)
{
    static const char *const allowed[] = {"reason_id", NULL};
    const cJSON *in = body_object(rq, allowed), *v;
    if (in == NULL || body_ref(rq, in, "reason_id", true, &v) != 0)
        return;
    send_for_record(rq, "applications.reject", fill_reason, in, false);
}

static bool fill_note(cJSON *out, const cJSON *in)
{
    return add_copy(out, "note", member(in, "note")) &&
           add_copy(out, "note_action_type", member(in, "note_action_type")) &&
           add_copy(out, "format", member(in, "format")) &&
           add_copy(out, "screened", member(in, "screened"));
}

/* POST /v1/{applications|candidates}/{id}/notes {"note","note_action_type"?} */
static void op_notes(api_req *rq)
{
    static const char *const allowed[] = {"note", "note_action_type", "format", "screened",
                                          NULL};
    const cJSON *in = body_object(rq, allowed), *v;
    const char *s, *fmt = NULL;
    if (in == NULL || body_string(rq, in, "note", true, API_NOTE_MAX, &s) != 0 ||
        body_ref(rq, in, "note_action_type", false, &v) != 0 ||
        body_string(rq, in, "format", false, API_SHORT_MAX, &fmt) != 0)
        return;
    if (fmt != NULL && strcmp(fmt, "html") != 0 && strcmp(fmt, "text") != 0) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "format must be \"html\" or \"text\"");
        return;
    }
    v = member(in, "screened");
    if (v != NULL && !cJSON_IsBool(v)) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "screened must be a boolean");
        return;
    }
    send_for_record(rq,
                    rq->kind->bit == K_APPLICATION ? "notes.add_to_application"
                                                   : "notes.add_to_candidate",
                    fill_note, in, false);
}

static bool fill_attachment(cJSON *out, const cJSON *in)
{
    return add_copy(out, "filename", member(in, "filename")) &&
           add_copy(out, "data_base64", member(in, "data_base64")) &&
           add_copy(out, "kind", member(in, "kind")) &&
           add_copy(out, "content_type", member(in, "content_type"));
}

/* POST /v1/{applications|candidates}/{id}/attachments
 * {"filename","data_base64","kind"?,"content_type"?} */
static void op_attachments(api_req *rq)
{
    static const char *const allowed[] = {"filename", "data_base64", "kind", "content_type",
                                          NULL};
    const cJSON *in = body_object(rq, allowed);
    const char *name, *data, *kind, *ctype;
    if (in == NULL || body_string(rq, in, "filename", true, API_FILENAME_MAX, &name) != 0)
        return;
    if (strchr(name, '/') != NULL || strchr(name, '\\') != NULL || has_control(name) ||
        strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID,
                    "filename must be a plain file name (no '/', '\\' or control characters)");
        return;
    }
    if (body_string(rq, in, "data_base64", true, rq->core->cfg.max_body, &data) != 0 ||
        body_string(rq, in, "kind", false, API_SHORT_MAX, &kind) != 0 ||
        body_string(rq, in, "content_type", false, API_SHORT_MAX, &ctype) != 0)
        return;
    size_t n = 0;
    unsigned char *bytes = ah_base64_decode(data, &n);
    if (bytes == NULL) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "data_base64 is not valid base64");
        return;
    }
    free(bytes);
    if (n > rq->core->cfg.max_body) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "data_base64 decodes to more than %zu bytes",
                    rq->core->cfg.max_body);
        return;
    }
    send_for_record(rq,
                    rq->kind->bit == K_APPLICATION ? "attachments.add_to_application"
                                                   : "attachments.add_to_candidate",
                    fill_attachment, in, false);
}

/* GET /v1/candidates/{id}/resume */
static void op_resume(api_req *rq)
{
    send_for_record(rq, "candidates.resume", NULL, NULL, false);
}

/* GET /v1/jobs/{id}/enhanced */
static void op_job_enhanced(api_req *rq)
{
    send_for_record(rq, "jobs.get_enhanced", NULL, NULL, false);
}

/* GET /v1/{kind}/{id}/custom-fields */
static void op_cf_values(api_req *rq)
{
    send_for_record(rq, "custom_fields.values", NULL, NULL, true);
}

static bool fill_values(cJSON *out, const cJSON *in)
{
    return add_copy(out, "values", member(in, "values"));
}

/* PATCH /v1/{kind}/{id}/custom-fields {"values":{...}} */
static void op_cf_update(api_req *rq)
{
    static const char *const allowed[] = {"values", NULL};
    const cJSON *in = body_object(rq, allowed);
    if (in == NULL)
        return;
    const cJSON *v = member(in, "values");
    if (v == NULL) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "values is required");
        return;
    }
    if (!cJSON_IsObject(v) || v->child == NULL) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "values must be a non-empty object");
        return;
    }
    send_for_record(rq, "custom_fields.update", fill_values, in, true);
}

/* POST /v1/applications {"candidate_id","job_id","stage_id"?} */
static void op_app_create(api_req *rq)
{
    static const char *const allowed[] = {"candidate_id", "job_id", "stage_id", NULL};
    const cJSON *in = body_object(rq, allowed), *stage;
    const char *cand_id, *job_id;
    if (in == NULL || body_string(rq, in, "candidate_id", true, API_ID_MAX, &cand_id) != 0 ||
        body_string(rq, in, "job_id", true, API_ID_MAX, &job_id) != 0 ||
        body_ref(rq, in, "stage_id", false, &stage) != 0)
        return;
    ah_record_row cand, job;
    ah_conn *cc = NULL, *jc = NULL;
    if (load_record(rq, cand_id, "candidate", "candidate_id", &cand, &cc) != 0)
        return;
    if (load_record(rq, job_id, "job", "job_id", &job, &jc) != 0) {
        ah_record_row_free(&cand);
        ah_conn_release(cc);
        return;
    }
    if (cc->id != jc->id) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID,
                    "candidate_id and job_id belong to different connections ('%s' and '%s')",
                    cc->name, jc->name);
    } else {
        cJSON *b = cJSON_CreateObject();
        if (b == NULL || !add_str(b, "candidate_id", cand.remote_id) ||
            !add_str(b, "job_id", job.remote_id) || !add_copy(b, "stage_id", stage)) {
            cJSON_Delete(b);
            b = NULL;
        }
        api_send(rq, cc->name, "applications.create", b);
    }
    ah_record_row_free(&cand);
    ah_record_row_free(&job);
    ah_conn_release(cc);
    ah_conn_release(jc);
}

/* ------------------------------------------------------------------------ */
/* Bulk reject                                                               */
/* ------------------------------------------------------------------------ */

/* A finished bulk job's report as the answer of a waited-for bulk reject:
 * {"id": <job>, "results":[{"id","ok","error"?,"operation"?}], "succeeded","failed"},
 * one result per input item, in input order. NULL on OOM. */
static cJSON *bulk_results(const char *job_id, const cJSON *report)
{
    cJSON *d = cJSON_CreateObject();
    cJSON *res = d != NULL && add_str(d, "id", job_id) ? cJSON_AddArrayToObject(d, "results")
                                                        : NULL;
    if (res == NULL) {
        cJSON_Delete(d);
        return NULL;
    }
    int ok = 0, failed = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(report, "items")) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "status");
        bool good = cJSON_IsString(st) && strcmp(st->valuestring, "succeeded") == 0;
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(res, o)) {
            cJSON_Delete(o);
            cJSON_Delete(d);
            return NULL;
        }
        /* o belongs to d from here on. */
        if (!add_str(o, "id", cJSON_IsString(id) ? id->valuestring : "") ||
            cJSON_AddBoolToObject(o, "ok", good) == NULL ||
            (!good && !add_copy(o, "error", cJSON_GetObjectItemCaseSensitive(it, "error")))) {
            cJSON_Delete(d);
            return NULL;
        }
        /* An item whose outcome was unknown names its operation. */
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(it, "operation");
        if (op != NULL && !add_copy(o, "operation", op)) {
            cJSON_Delete(d);
            return NULL;
        }
        if (good)
            ok++;
        else
            failed++;
    }
    if (cJSON_AddNumberToObject(d, "succeeded", ok) == NULL ||
        cJSON_AddNumberToObject(d, "failed", failed) == NULL) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

/* The answer of a waited bulk job (bulk-reject?wait=true): 200 with every
 * item's result when it is done, else 202 with the job's state. rep
 * transferred; NULL (with *status 500) when out of memory. */
static cJSON *bulk_waited_answer(const char *id, cJSON *rep, bool finished, int *status)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(rep, "status");
    cJSON *d = rep;
    *status = 202;
    if (finished && cJSON_IsString(st) && strcmp(st->valuestring, "done") == 0) {
        d = bulk_results(id, rep);
        cJSON_Delete(rep);
        *status = 200;
    }
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || d == NULL || !cJSON_AddItemToObject(o, "data", d)) {
        cJSON_Delete(o);
        cJSON_Delete(d);
        *status = 500;
        return NULL;
    }
    return o;
}

/* A bulk-reject?wait=true suspended until its job is final (or its wait
 * ends): the bulk module's waiters' thread answers it (bulk_waited). */
typedef struct bulk_wait_req {
    ah_ex_pending *p;
    char id[32];
} bulk_wait_req;

static void bulk_waited(void *arg, cJSON *rep, bool finished)
{
    bulk_wait_req *w = arg;
    if (rep == NULL) {
        (void)ah_ex_resume_error(w->p, 500, AH_E_INTERNAL, "cannot read bulk job '%s'", w->id);
    } else {
        int status;
        cJSON *o = bulk_waited_answer(w->id, rep, finished, &status);
        if (o == NULL)
            (void)ah_ex_resume_error(w->p, 500, AH_E_INTERNAL, "out of memory");
        else
            (void)ah_ex_resume_json(w->p, status, o);
    }
    free(w);
}

/* POST /v1/applications/bulk-reject {"application_ids":[...],"reason_id"}:
 * always a bulk job (202, GET /v1/bulk/{id}). With ?wait=true the request
 * waits for that job, up to API_BULK_WAIT_MS: 200 with every item's result
 * when it is done, else 202 with the job's state as GET /v1/bulk/{id}
 * reports it. It waits suspended (ah_ex_suspend): no thread is held. */
static void op_app_bulk_reject(api_req *rq)
{
    const char *wait = ah_ex_query(rq->ex, "wait");
    if (wait == NULL || strcmp(wait, "true") != 0) {
        ah_bulk_submit(rq->core, rq->ex, rq->tenant_id, "reject");
        return;
    }
    char id[32], loc[64];
    int total = 0;
    if (ah_bulk_create(rq->core, rq->ex, rq->tenant_id, "reject", id, &total) != 0)
        return;
    /* Both answers carry it: added before the suspend, it goes with the
     * completion's answer. */
    snprintf(loc, sizeof loc, "/v1/bulk/%s", id);
    if (ah_ex_add_header(rq->ex, "Location", loc) != 0) {
        api_oom(rq);
        return;
    }
    bulk_wait_req *w = calloc(1, sizeof *w);
    if (w != NULL && (w->p = ah_ex_suspend(rq->ex, 0, NULL)) != NULL) {
        snprintf(w->id, sizeof w->id, "%s", id);
        /* From here the exchange is the completion's. */
        if (ah_bulk_wait_async(rq->core, rq->tenant_id, id, API_BULK_WAIT_MS, bulk_waited, w) !=
            0) {
            (void)ah_ex_resume_error(w->p, 500, AH_E_INTERNAL, "out of memory");
            free(w);
        }
        return;
    }
    free(w);
    /* Cannot suspend (out of memory): wait here, on this thread. */
    bool finished = false;
    cJSON *rep = ah_bulk_wait(rq->core, rq->tenant_id, id, API_BULK_WAIT_MS, &finished);
    if (rep == NULL) {
        ah_ex_error(rq->ex, 500, AH_E_INTERNAL, "cannot read bulk job '%s'", id);
        return;
    }
    int status;
    cJSON *o = bulk_waited_answer(id, rep, finished, &status);
    if (o == NULL)
        api_oom(rq);
    else
        ah_ex_respond_json(rq->ex, status, o);
}

/* POST /v1/applications/bulk-stage {"application_ids":[...],"stage_id"}: a job. */
static void op_app_bulk_stage(api_req *rq)
{
    ah_bulk_submit(rq->core, rq->ex, rq->tenant_id, "stage");
}

/* ------------------------------------------------------------------------ */
/* Live reads on one connection                                              */
/* ------------------------------------------------------------------------ */

/* Sends `body` (transferred) to the connection the request names. */
static void send_named(api_req *rq, const char *topic, cJSON *body)
{
    ah_conn *c = NULL;
    if (named_conn(rq, true, &c) != 0) {
        cJSON_Delete(body);
        return;
    }
    api_send(rq, c->name, topic, body);
    ah_conn_release(c);
}

/* GET /v1/candidates/search?first_name&last_name&email&phone */
static void op_cand_search(api_req *rq)
{
    static const char *const keys[] = {"first_name", "last_name", "email", "phone"};
    cJSON *b = cJSON_CreateObject();
    if (b == NULL) {
        api_oom(rq);
        return;
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = ah_ex_query(rq->ex, keys[i]);
        if (v == NULL || *v == '\0')
            continue;
        if (strlen(v) > API_SEARCH_MAX || has_control(v)) {
            cJSON_Delete(b);
            ah_ex_error(rq->ex, 400, AH_E_INVALID, "%s must be at most %d bytes of text",
                        keys[i], API_SEARCH_MAX);
            return;
        }
        if (!add_str(b, keys[i], v)) {
            cJSON_Delete(b);
            api_oom(rq);
            return;
        }
    }
    if (b->child == NULL) {
        cJSON_Delete(b);
        ah_ex_error(rq->ex, 400, AH_E_INVALID,
                    "first_name, last_name, email or phone: give at least one");
        return;
    }
    send_named(rq, "candidates.find", b);
}

/* GET /v1/jobs/enhanced?limit&cursor: the provider's own paging. */
static void op_jobs_enhanced_batch(api_req *rq)
{
    long limit;
    if (query_int(rq, "limit", 1, API_LIMIT_MAX, API_LIMIT_DEFAULT, &limit) != 0)
        return;
    const char *cursor = ah_ex_query(rq->ex, "cursor");
    if (cursor != NULL && (*cursor == '\0' || strlen(cursor) > API_PCURSOR_MAX ||
                           has_control(cursor))) {
        ah_ex_error(rq->ex, 400, AH_E_INVALID, "cursor must be 1 to %d bytes of text",
                    API_PCURSOR_MAX);
        return;
    }
    cJSON *b = cJSON_CreateObject();
    if (b == NULL || cJSON_AddNumberToObject(b, "limit", (double)limit) == NULL ||
        (cursor != NULL && !add_str(b, "cursor", cursor))) {
        cJSON_Delete(b);
        b = NULL;
    }
    if (b == NULL) {
        api_oom(rq);
        return;
    }
    send_named(rq, "jobs.enhanced_batch", b);
}

/* ------------------------------------------------------------------------ */
/* Connection resources                                                      */
/* ------------------------------------------------------------------------ */

/* GET /v1/stages */
static void op_stages(api_req *rq)
{
    send_named(rq, "applications.list_stages", cJSON_CreateObject());
}

/* GET /v1/disposition-reasons */
static void op_reasons(api_req *rq)
{
    send_named(rq, "dispositions.list", cJSON_CreateObject());
}

/* GET /v1/custom-fields/{entity}: entity is a record type. */
static void op_cf_defs(api_req *rq)
{
    const char *want = ah_ex_param(rq->ex, "entity"), *entity = NULL;
    for (size_t i = 0; want != NULL && i < API_NKINDS; i++)
        if (strcmp(want, api_kinds[i].type) == 0)
            entity = api_kinds[i].type;
    if (entity == NULL) {
        ah_ex_error(rq->ex, 404, AH_E_NOT_FOUND, "no route for %s", ah_ex_path(rq->ex));
        return;
    }
    send_named(rq, "custom_fields.list", obj1("entity", entity));
}

/* ------------------------------------------------------------------------ */
/* Routes                                                                    */
/* ------------------------------------------------------------------------ */

typedef void (*api_fn)(api_req *rq);

/* Serves one route: authenticates, then runs fn on the collection `kind`
 * (NULL for the connection resources) with the path's {id}, if any. */
static void api_serve(void *core, ah_http_exchange *ex, const api_kind *kind, api_fn fn)
{
    api_req rq;
    memset(&rq, 0, sizeof rq);
    rq.core = core;
    rq.ex = ex;
    rq.kind = kind;
    rq.id = ah_ex_param(ex, "id");
    if (api_auth(&rq) == 0)
        fn(&rq);
    cJSON_Delete(rq.empty);
}

#define KJ (&api_kinds[0])
#define KC (&api_kinds[1])
#define KA (&api_kinds[2])

/* Every route of this file: handler name, method, path, collection and
 * operation. httpd matches them (an exact path such as
 * /v1/applications/bulk-reject before the template /v1/applications/{id});
 * each gets a handler of its own, so nothing is looked up per request. */
#define API_ROUTES(X)                                                                      \
    X(jobs, "GET", "/v1/jobs", KJ, op_list)                                                \
    X(jobs_enhanced, "GET", "/v1/jobs/enhanced", KJ, op_jobs_enhanced_batch)               \
    X(job, "GET", "/v1/jobs/{id}", KJ, op_get)                                             \
    X(job_cf, "GET", "/v1/jobs/{id}/custom-fields", KJ, op_cf_values)                      \
    X(job_cf_set, "PATCH", "/v1/jobs/{id}/custom-fields", KJ, op_cf_update)                \
    X(job_enhanced, "GET", "/v1/jobs/{id}/enhanced", KJ, op_job_enhanced)                  \
    X(cands, "GET", "/v1/candidates", KC, op_list)                                         \
    X(cand_search, "GET", "/v1/candidates/search", KC, op_cand_search)                     \
    X(cand, "GET", "/v1/candidates/{id}", KC, op_get)                                      \
    X(cand_notes, "POST", "/v1/candidates/{id}/notes", KC, op_notes)                       \
    X(cand_att, "POST", "/v1/candidates/{id}/attachments", KC, op_attachments)             \
    X(cand_resume, "GET", "/v1/candidates/{id}/resume", KC, op_resume)                     \
    X(cand_cf, "GET", "/v1/candidates/{id}/custom-fields", KC, op_cf_values)               \
    X(cand_cf_set, "PATCH", "/v1/candidates/{id}/custom-fields", KC, op_cf_update)         \
    X(apps, "GET", "/v1/applications", KA, op_list)                                        \
    X(app_create, "POST", "/v1/applications", KA, op_app_create)                           \
    X(app_bulk_reject, "POST", "/v1/applications/bulk-reject", KA, op_app_bulk_reject)     \
    X(app_bulk_stage, "POST", "/v1/applications/bulk-stage", KA, op_app_bulk_stage)        \
    X(app, "GET", "/v1/applications/{id}", KA, op_get)                                     \
    X(app_stage, "POST", "/v1/applications/{id}/stage", KA, op_app_stage)                  \
    X(app_reject, "POST", "/v1/applications/{id}/reject", KA, op_app_reject)               \
    X(app_notes, "POST", "/v1/applications/{id}/notes", KA, op_notes)                      \
    X(app_att, "POST", "/v1/applications/{id}/attachments", KA, op_attachments)            \
    X(app_cf, "GET", "/v1/applications/{id}/custom-fields", KA, op_cf_values)              \
    X(app_cf_set, "PATCH", "/v1/applications/{id}/custom-fields", KA, op_cf_update)        \
    X(stages, "GET", "/v1/stages", NULL, op_stages)                                        \
    X(reasons, "GET", "/v1/disposition-reasons", NULL, op_reasons)                         \
    X(cf_defs, "GET", "/v1/custom-fields/{entity}", NULL, op_cf_defs)

/* Runs a route's work w(core, ex) on a bus worker (ah_rest_offload): every
 * route here reads the store (a record, a list, a connection's record
 * before a bus request) or writes it (bulk jobs). bulk-reject?wait=true
 * then waits for its job suspended, holding no thread. */
static void api_route(void *core, ah_http_exchange *ex, api_fn fn, ah_http_handler w)
{
    (void)fn;
    ah_rest_offload(core, ex, w);
}

#define API_HANDLER(name, method, path, kind, fn)                                          \
    static void w_##name(void *core, ah_http_exchange *ex)                                 \
    {                                                                                      \
        api_serve(core, ex, kind, fn);                                                     \
    }                                                                                      \
    static void h_##name(void *core, ah_http_exchange *ex)                                 \
    {                                                                                      \
        api_route(core, ex, fn, w_##name);                                                 \
    }
API_ROUTES(API_HANDLER)

static const struct {
    const char *method;
    const char *path;
    ah_http_handler fn;
} api_routes[] = {
#define API_ENTRY(name, method, path, kind, fn) {method, path, h_##name},
    API_ROUTES(API_ENTRY)
};

int ah_api_register(ah_core *core)
{
    for (size_t i = 0; i < sizeof api_routes / sizeof api_routes[0]; i++)
        if (ah_httpd_route(core->httpd, api_routes[i].method, api_routes[i].path, 0,
                           api_routes[i].fn, core) != 0)
            return -1;
    return 0;
}
