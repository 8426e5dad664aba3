/* SPDX-License-Identifier: Apache-2.0 */
/* The fake host API: see fake_host.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>


#include "crypto.h"
#include "fake_host.h"
#include "httpc.h"
#include "json.h"

/* Large enough for any test, small enough to catch a runaway plugin. */
#define FAKE_JSON_MAX (16u * 1024u * 1024u)

typedef struct fake_kv {
    char *key;
    char *value;
} fake_kv;

struct ah_fake_conn {
    ah_fake_host *fh;
    char *tenant;
    char *name;
    fake_kv *kv;
    size_t n;
};

/* The connection first: a call made for a connection finds its host even
 * when it is a bare ah_call (e.g. the `out` of conn_by_secret). */
static ah_fake_host *fake_of(const ah_call *call)
{
    if (call == NULL)
        return NULL;
    if (call->conn != NULL)
        return ((const ah_fake_conn *)(const void *)call->conn)->fh;
    return ((const ah_call_ext *)(const void *)call)->host_ctx;
}

static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src != NULL ? src : "");
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

AH_PRINTF(3, 4)
static void fake_log(const ah_call *call, ah_log_level level, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    ah_fake_host *fh = fake_of(call);
    bool quiet = false;
    if (fh != NULL) {
        pthread_mutex_lock(&fh->mu);
        fh->log_count++;
        copy_str(fh->last_log, sizeof(fh->last_log), line);
        quiet = fh->quiet;
        pthread_mutex_unlock(&fh->mu);
    }
    if (!quiet)
        fprintf(stderr, "[fake host] %s %s/%s: %s\n",
                (unsigned)level < 4 ? level_names[level] : "?",
                call != NULL && call->tenant != NULL ? call->tenant : "-",
                call != NULL && call->connection != NULL ? call->connection : "-", line);
}

AH_PRINTF(4, 5)
static ah_result fake_fail(ah_call *call, const char *code, int http_status,
                           const char *fmt, ...)
{
    if (call == NULL)
        return AH_ERR;
    ah_call_ext *x = (ah_call_ext *)(void *)call;
    copy_str(x->err_code, sizeof(x->err_code), code != NULL ? code : AH_E_PLUGIN);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err_msg, sizeof(x->err_msg), fmt, ap);
    va_end(ap);
    x->err_status = http_status;
    ah_fake_host *fh = fake_of(call);
    if (fh != NULL) {
        pthread_mutex_lock(&fh->mu);
        fh->fail_count++;
        copy_str(fh->last_fail_code, sizeof(fh->last_fail_code), x->err_code);
        pthread_mutex_unlock(&fh->mu);
    }
    return AH_ERR;
}

static const char *fake_setting(const ah_call *call, const char *key)
{
    if (call == NULL || call->conn == NULL || key == NULL)
        return NULL;
    const ah_fake_conn *c = (const ah_fake_conn *)(const void *)call->conn;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->kv[i].key, key) == 0)
            return c->kv[i].value;
    return NULL;
}

static ah_result fake_oauth2_token(ah_call *call, const ah_oauth2_params *p, char *out,
                                   size_t out_len);
static void fake_oauth2_invalidate(ah_call *call, const ah_oauth2_params *p);
static ah_result fake_http_once(ah_call *call, const ah_http_request *req,
                                ah_http_response *resp);
static void fake_http_response_free(ah_http_response *resp);

/* The host's contract for a request that names its OAuth2 client (ABI
 * 1.1), on the fake's canned token: bearer from oauth2_token, and after a
 * 401 one invalidate and one more attempt. */
static ah_result fake_http(ah_call *call, const ah_http_request *req, ah_http_response *resp)
{
    if (req == NULL || resp == NULL || !AH_HAS(req, oauth2) || req->oauth2 == NULL)
        return fake_http_once(call, req, resp);
    ah_http_request r;
    memset(&r, 0, sizeof r);
    memcpy(&r, req, req->struct_size < sizeof r ? req->struct_size : sizeof r);
    r.struct_size = sizeof r;
    r.oauth2 = NULL;
    char tok[sizeof(AH_FAKE_TOKEN)];
    r.bearer = tok;
    memset(resp, 0, sizeof(*resp));
    resp->struct_size = sizeof(*resp);
    for (int round = 0;; round++) {
        if (fake_oauth2_token(call, req->oauth2, tok, sizeof tok) != AH_OK)
            return AH_ERR;
        ah_result rc = fake_http_once(call, &r, resp);
        if (rc != AH_OK || resp->status != 401 || round == 1)
            return rc;
        fake_oauth2_invalidate(call, req->oauth2);
        fake_http_response_free(resp);
    }
}

static ah_result fake_http_once(ah_call *call, const ah_http_request *req,
                                ah_http_response *resp)
{
    if (resp == NULL)
        return fake_fail(call, AH_E_INTERNAL, 0, "http: no response struct");
    memset(resp, 0, sizeof(*resp));
    resp->struct_size = sizeof(*resp);
    ah_fake_host *fh = fake_of(call);
    ah_fake_http_fn cb = NULL;
    void *arg = NULL;
    if (fh != NULL) {
        pthread_mutex_lock(&fh->mu);
        fh->http_count++;
        cb = fh->http_cb;
        arg = fh->http_arg;
        pthread_mutex_unlock(&fh->mu);
    }
    if (req == NULL)
        return fake_fail(call, AH_E_INVALID, 0, "http: no request");
    if (cb == NULL)
        return fake_fail(call, AH_E_UNAVAILABLE, 503, "no network in fake host");
    ah_result rc = cb(arg, req, resp);
    resp->struct_size = sizeof(*resp);
    if (rc == AH_OK && resp->attempts == 0)
        resp->attempts = 1;
    if (rc != AH_OK)
        return fake_fail(call, AH_E_UNAVAILABLE, 503, "canned response: no response");
    return AH_OK;
}

static void fake_http_response_free(ah_http_response *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    free(resp->content_type);
    resp->body = NULL;
    resp->content_type = NULL;
    resp->body_len = 0;
}

static ah_result fake_oauth2_token(ah_call *call, const ah_oauth2_params *p, char *out,
                                   size_t out_len)
{
    ah_fake_host *fh = fake_of(call);
    if (fh != NULL) {
        pthread_mutex_lock(&fh->mu);
        fh->oauth2_count++;
        pthread_mutex_unlock(&fh->mu);
    }
    if (p == NULL || out == NULL)
        return fake_fail(call, AH_E_INVALID, 0, "oauth2_token: no parameters");
    if (out_len < sizeof(AH_FAKE_TOKEN))
        return fake_fail(call, AH_E_INTERNAL, 0, "oauth2_token: token does not fit %zu bytes",
                         out_len);
    memcpy(out, AH_FAKE_TOKEN, sizeof(AH_FAKE_TOKEN));
    return AH_OK;
}

static void fake_oauth2_invalidate(ah_call *call, const ah_oauth2_params *p)
{
    ah_fake_host *fh = fake_of(call);
    if (fh == NULL)
        return;
    pthread_mutex_lock(&fh->mu);
    fh->oauth2_invalidate_count++;
    pthread_mutex_unlock(&fh->mu);
}

/* The hosts' own parse and limits (core/base/json.c), as plugins get them
 * in the daemon's process and in their own. */
static cJSON *fake_json_parse(const char *text, size_t len)
{
    if (text == NULL || len > FAKE_JSON_MAX)
        return NULL;
    return ah_json_parse_limited(text, len);
}

static const char *fake_json_string(const cJSON *obj, const char *key, size_t max_len)
{
    if (obj == NULL || key == NULL)
        return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v) || v->valuestring == NULL ||
        strnlen(v->valuestring, max_len + 1) > max_len)
        return NULL;
    return v->valuestring;
}

static ah_result fake_publish(ah_call *call, const char *topic, cJSON *body)
{
    if (topic == NULL) {
        cJSON_Delete(body);
        return fake_fail(call, AH_E_INVALID, 0, "publish: no topic");
    }
    ah_fake_host *fh = fake_of(call);
    if (fh == NULL) {
        cJSON_Delete(body);
        return fake_fail(call, AH_E_INTERNAL, 0, "publish: call is not a fake host call");
    }
    pthread_mutex_lock(&fh->mu);
    fh->publish_count++;
    copy_str(fh->last_topic, sizeof(fh->last_topic), topic);
    cJSON *old = fh->last_event;
    fh->last_event = body;
    pthread_mutex_unlock(&fh->mu);
    cJSON_Delete(old);
    return AH_OK;
}

static ah_result fake_emit_record(ah_call *call, const ah_record *rec)
{
    if (rec == NULL || rec->type == NULL || rec->remote_id == NULL)
        return fake_fail(call, AH_E_INVALID, 0, "emit_record: record without type or id");
    ah_fake_host *fh = fake_of(call);
    if (fh == NULL)
        return fake_fail(call, AH_E_INTERNAL, 0, "emit_record: call is not a fake host call");
    pthread_mutex_lock(&fh->mu);
    fh->record_count++;
    copy_str(fh->last_record_type, sizeof(fh->last_record_type), rec->type);
    copy_str(fh->last_record_id, sizeof(fh->last_record_id), rec->remote_id);
    fh->last_record_raw[0] = '\0';
    if (AH_HAS(rec, fields_json_len) && rec->raw_json != NULL) {
        size_t n = rec->raw_json_len ? rec->raw_json_len : strlen(rec->raw_json);
        if (n >= sizeof fh->last_record_raw)
            n = sizeof fh->last_record_raw - 1;
        memcpy(fh->last_record_raw, rec->raw_json, n);
        fh->last_record_raw[n] = '\0';
    } else if (rec->raw != NULL) {
        char *t = cJSON_PrintUnformatted(rec->raw);
        copy_str(fh->last_record_raw, sizeof(fh->last_record_raw), t != NULL ? t : "");
        free(t);
    }
    pthread_mutex_unlock(&fh->mu);
    return AH_OK;
}

static void fake_free(void *p)
{
    free(p);
}

static ah_fake_exchange *fx_of(ah_http_exchange *ex)
{
    return (ah_fake_exchange *)(void *)ex;
}

static const char *fake_http_method(ah_http_exchange *ex)
{
    return ex != NULL ? fx_of(ex)->method : NULL;
}

static const char *fake_http_path(ah_http_exchange *ex)
{
    return ex != NULL ? fx_of(ex)->path : NULL;
}

/* "Name: value" / "name=value" lists: the value of `name`, or NULL. */
static const char *list_lookup(const char *const *list, const char *name, char sep,
                               bool nocase)
{
    if (list == NULL || name == NULL)
        return NULL;
    size_t n = strlen(name);
    for (size_t i = 0; list[i] != NULL; i++) {
        const char *s = list[i];
        int c = nocase ? strncasecmp(s, name, n) : strncmp(s, name, n);
        if (c != 0 || s[n] != sep)
            continue;
        s += n + 1;
        while (sep == ':' && (*s == ' ' || *s == '\t'))
            s++;
        return s;
    }
    return NULL;
}

static const char *fake_http_header(ah_http_exchange *ex, const char *name)
{
    return ex != NULL ? list_lookup(fx_of(ex)->headers, name, ':', true) : NULL;
}

static const char *fake_http_query(ah_http_exchange *ex, const char *name)
{
    return ex != NULL ? list_lookup(fx_of(ex)->query, name, '=', false) : NULL;
}

static const char *fake_http_client_ip(ah_http_exchange *ex)
{
    if (ex == NULL)
        return NULL;
    return fx_of(ex)->client_ip != NULL ? fx_of(ex)->client_ip : "127.0.0.1";
}

static const char *fake_http_body(ah_http_exchange *ex, size_t *len)
{
    if (ex == NULL) {
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    if (len != NULL)
        *len = fx_of(ex)->body != NULL ? fx_of(ex)->body_len : 0;
    return fx_of(ex)->body;
}

static ah_result fake_http_respond_json(ah_http_exchange *ex, int status, cJSON *body)
{
    if (ex == NULL) {
        cJSON_Delete(body);
        return AH_ERR;
    }
    ah_fake_exchange *fx = fx_of(ex);
    fx->responses++;
    fx->status = status;
    cJSON_Delete(fx->response);
    fx->response = body;
    /* A second answer is a plugin bug the test should see. */
    return fx->responses == 1 ? AH_OK : AH_ERR;
}

/* A raw answer is kept as a JSON string, so tests read it like the rest. */
static ah_result fake_http_respond(ah_http_exchange *ex, int status, const char *content_type,
                                   const char *body, size_t len)
{
    char *copy = body != NULL ? strndup(body, len) : strdup("");
    cJSON *s = copy != NULL ? cJSON_CreateString(copy) : NULL;
    free(copy);
    return fake_http_respond_json(ex, status, s);
}

/* A call context conn_by_secret() handed out; freed with the fake host (the
 * real host frees it when the route handler returns, which the fake cannot
 * see). */
struct ah_fake_owned_call {
    ah_call_ext ext;
    struct ah_fake_owned_call *next;
};

static ah_call *fake_conn_by_secret(ah_call *route_call, const char *key,
                                    const char *presented)
{
    ah_fake_host *fh = fake_of(route_call);
    if (fh == NULL || key == NULL || presented == NULL)
        return NULL;
    pthread_mutex_lock(&fh->mu);
    ah_fake_conn *c = fh->secret_conn;
    pthread_mutex_unlock(&fh->mu);
    const char *value = NULL;
    for (size_t i = 0; c != NULL && i < c->n && value == NULL; i++)
        if (strcmp(c->kv[i].key, key) == 0)
            value = c->kv[i].value;
    if (value == NULL || strcmp(value, presented) != 0)
        return NULL;
    struct ah_fake_owned_call *oc = calloc(1, sizeof(*oc));
    if (oc == NULL)
        return NULL;
    ah_fake_call_init(fh, &oc->ext, c);
    oc->ext.call.plugin_state = route_call->plugin_state;
    oc->ext.call.correlation_id = route_call->correlation_id;
    pthread_mutex_lock(&fh->mu);
    oc->next = fh->owned_calls;
    fh->owned_calls = oc;
    pthread_mutex_unlock(&fh->mu);
    return &oc->ext.call;
}

/* The fake knows one connection besides the call's (secret_conn) and no
 * networks: entries are compared with the value as text, for either kind. */
static int fake_setting_lists(ah_call *call, const char *key, const char *value, unsigned how)
{
    ah_fake_host *fh = fake_of(call);
    (void)how;
    if (fh == NULL || key == NULL || value == NULL)
        return -1;
    pthread_mutex_lock(&fh->mu);
    ah_fake_conn *c = fh->secret_conn;
    pthread_mutex_unlock(&fh->mu);
    const char *list = NULL;
    for (size_t i = 0; c != NULL && i < c->n && list == NULL; i++)
        if (strcmp(c->kv[i].key, key) == 0)
            list = c->kv[i].value;
    size_t vlen = strlen(value);
    for (const char *s = list; s != NULL;) {
        const char *e = strchr(s, ',');
        if (e == NULL)
            e = s + strlen(s);
        const char *a = s, *b = e;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if ((size_t)(b - a) == vlen && memcmp(a, value, vlen) == 0)
            return 1;
        s = *e == ',' ? e + 1 : NULL;
    }
    return 0;
}

/* --- the in-memory record store ---------------------------------------- */

static const char *str_or_empty(const char *s)
{
    return s != NULL ? s : "";
}

static bool member_is(const cJSON *o, const char *key, const char *value)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && strcmp(v->valuestring, str_or_empty(value)) == 0;
}

/* The stored record of the call's connection; caller holds fh->mu. */
static cJSON *record_lookup(ah_fake_host *fh, const ah_call *call, const char *type,
                            const char *remote_id)
{
    cJSON *r;
    cJSON_ArrayForEach(r, fh->records)
    {
        if (member_is(r, "tenant", call->tenant) &&
            member_is(r, "connection", call->connection) && member_is(r, "type", type) &&
            member_is(r, "remote_id", remote_id))
            return r;
    }
    return NULL;
}

/* What record_get shows of a stored record: all but the keys the fake adds. */
static cJSON *record_view(const cJSON *stored)
{
    cJSON *v = cJSON_Duplicate(stored, 1);
    if (v == NULL)
        return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(v, "tenant");
    cJSON_DeleteItemFromObjectCaseSensitive(v, "connection");
    return v;
}

static bool same_member(const cJSON *a, const cJSON *b, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, key);
    const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, key);
    if (x == NULL || y == NULL)
        return x == y;
    return cJSON_Compare(x, y, 1);
}

static cJSON *json_or_null(const cJSON *j)
{
    return j != NULL ? cJSON_Duplicate(j, 1) : cJSON_CreateNull();
}

static ah_result fake_record_put(ah_call *call, const ah_record *rec, char *id_out,
                                 size_t id_len, int *changed_out)
{
    if (rec == NULL || rec->type == NULL || rec->remote_id == NULL)
        return fake_fail(call, AH_E_INVALID, 0, "record_put: record without type or id");
    ah_fake_host *fh = fake_of(call);
    if (fh == NULL)
        return fake_fail(call, AH_E_INTERNAL, 0, "record_put: call is not a fake host call");
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(now, sizeof(now), "1970-01-01T00:00:00Z");
    cJSON *n = cJSON_CreateObject();
    if (n == NULL ||
        cJSON_AddStringToObject(n, "tenant", str_or_empty(call->tenant)) == NULL ||
        cJSON_AddStringToObject(n, "connection", str_or_empty(call->connection)) == NULL ||
        cJSON_AddStringToObject(n, "type", rec->type) == NULL ||
        cJSON_AddStringToObject(n, "remote_id", rec->remote_id) == NULL ||
        !cJSON_AddItemToObject(n, "updated_at", rec->updated_at != NULL
                                                    ? cJSON_CreateString(rec->updated_at)
                                                    : cJSON_CreateNull()) ||
        !cJSON_AddItemToObject(n, "raw", json_or_null(rec->raw)) ||
        !cJSON_AddItemToObject(n, "fields", json_or_null(rec->fields))) {
        cJSON_Delete(n);
        return fake_fail(call, AH_E_INTERNAL, 0, "record_put: out of memory");
    }
    pthread_mutex_lock(&fh->mu);
    if (fh->records == NULL && (fh->records = cJSON_CreateArray()) == NULL) {
        pthread_mutex_unlock(&fh->mu);
        cJSON_Delete(n);
        return fake_fail(call, AH_E_INTERNAL, 0, "record_put: out of memory");
    }
    cJSON *old = record_lookup(fh, call, rec->type, rec->remote_id);
    int changed = 1;
    char id[64], created[32];
    if (old != NULL) {
        changed = same_member(old, n, "raw") && same_member(old, n, "fields") &&
                          same_member(old, n, "updated_at")
                      ? 0
                      : 2;
        snprintf(id, sizeof(id), "%s", cJSON_GetObjectItem(old, "id")->valuestring);
        snprintf(created, sizeof(created), "%s",
                 cJSON_GetObjectItem(old, "created_at")->valuestring);
    } else {
        snprintf(id, sizeof(id), "rec_%lu", ++fh->next_record_id);
        snprintf(created, sizeof(created), "%s", now);
    }
    bool ok = cJSON_AddStringToObject(n, "id", id) != NULL &&
              cJSON_AddStringToObject(n, "created_at", created) != NULL;
    if (ok && changed != 0)
        ok = old != NULL ? cJSON_ReplaceItemViaPointer(fh->records, old, n)
                         : cJSON_AddItemToArray(fh->records, n);
    if (ok && changed == 0)
        cJSON_Delete(n);
    if (ok)
        fh->record_put_count++;
    pthread_mutex_unlock(&fh->mu);
    if (!ok) {
        cJSON_Delete(n);
        return fake_fail(call, AH_E_INTERNAL, 0, "record_put: out of memory");
    }
    if (id_out != NULL && id_len > 0)
        snprintf(id_out, id_len, "%s", id);
    if (changed_out != NULL)
        *changed_out = changed;
    return AH_OK;
}

static cJSON *fake_record_get(ah_call *call, const char *type, const char *remote_id)
{
    ah_fake_host *fh = fake_of(call);
    if (fh == NULL || type == NULL || remote_id == NULL)
        return NULL;
    pthread_mutex_lock(&fh->mu);
    cJSON *r = record_lookup(fh, call, type, remote_id);
    cJSON *v = r != NULL ? record_view(r) : NULL;
    pthread_mutex_unlock(&fh->mu);
    return v;
}

/* `s` without leading and trailing blanks, into buf. */
static const char *trimmed(const char *s, char *buf, size_t n)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' ||
                       s[len - 1] == '\r'))
        len--;
    snprintf(buf, n, "%.*s", (int)len, s);
    return buf;
}

static bool field_matches(const cJSON *stored, const char *field, const char *value,
                          int nocase)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(stored, "fields"), field);
    if (!cJSON_IsString(f))
        return false;
    if (!nocase)
        return strcmp(f->valuestring, value) == 0;
    char a[1024], b[1024];
    return strcasecmp(trimmed(f->valuestring, a, sizeof(a)), trimmed(value, b, sizeof(b))) == 0;
}

static cJSON *fake_record_find(ah_call *call, const char *type, const char *field,
                               const char *value, int nocase, int limit)
{
    ah_fake_host *fh = fake_of(call);
    if (fh == NULL || type == NULL || field == NULL || value == NULL || limit < 1 ||
        limit > 1000) {
        fake_fail(call, AH_E_INVALID, 0, "record_find: bad arguments");
        return NULL;
    }
    cJSON *out = cJSON_CreateArray();
    if (out == NULL)
        return NULL;
    pthread_mutex_lock(&fh->mu);
    const cJSON *r;
    cJSON_ArrayForEach(r, fh->records)
    {
        if (cJSON_GetArraySize(out) >= limit)
            break;
        if (!member_is(r, "tenant", call->tenant) || !member_is(r, "type", type) ||
            !field_matches(r, field, value, nocase))
            continue;
        cJSON *v = record_view(r);
        if (v == NULL || !cJSON_AddItemToArray(out, v)) {
            cJSON_Delete(v);
            cJSON_Delete(out);
            out = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&fh->mu);
    return out;
}

static ah_result fake_sequence_next(ah_call *call, const char *name, int64_t *out)
{
    ah_fake_host *fh = fake_of(call);
    if (fh == NULL || name == NULL || out == NULL)
        return fake_fail(call, AH_E_INVALID, 0, "sequence_next: bad arguments");
    char key[512];
    snprintf(key, sizeof(key), "%s/%s", str_or_empty(call->tenant), name);
    ah_result rc = AH_OK;
    pthread_mutex_lock(&fh->mu);
    if (fh->sequences == NULL)
        fh->sequences = cJSON_CreateObject();
    cJSON *v = cJSON_GetObjectItemCaseSensitive(fh->sequences, key);
    if (v != NULL) {
        cJSON_SetNumberValue(v, v->valuedouble + 1);
        *out = (int64_t)v->valuedouble;
    } else if (fh->sequences != NULL &&
               cJSON_AddNumberToObject(fh->sequences, key, 1) != NULL) {
        *out = 1;
    } else {
        rc = AH_ERR;
    }
    pthread_mutex_unlock(&fh->mu);
    if (rc != AH_OK)
        return fake_fail(call, AH_E_INTERNAL, 0, "sequence_next: out of memory");
    return AH_OK;
}

static ah_result fake_store_ping(ah_call *call)
{
    return AH_OK;
}

static cJSON *fake_record_by_id(ah_call *call, const char *id)
{
    ah_fake_host *fh = fake_of(call);
    if (fh == NULL || id == NULL)
        return NULL;
    pthread_mutex_lock(&fh->mu);
    cJSON *v = NULL;
    const cJSON *r;
    cJSON_ArrayForEach(r, fh->records)
    {
        if (member_is(r, "tenant", call->tenant) && member_is(r, "id", id)) {
            v = record_view(r);
            break;
        }
    }
    pthread_mutex_unlock(&fh->mu);
    return v;
}

/* The real HMAC and comparison (core/crypto.c): plugins' signature code
 * is tested against the same primitives the host gives them. */
static ah_result fake_hmac_sha256_hex(const void *key, size_t key_len, const void *data,
                                      size_t len, char out[65])
{
    return ah_hmac_sha256_hex(key, key_len, data, len, out) == 0 ? AH_OK : AH_ERR;
}

static int fake_ct_equal(const char *a, const char *b)
{
    return a != NULL && b != NULL && ah_ct_streq(a, b);
}

/* Applies {"key": "value" | null} to the fake connection's settings; null
 * removes a value (the fake does not regenerate generated secrets). */
static ah_result fake_settings_update(ah_call *call, const cJSON *changes)
{
    if (call == NULL || call->conn == NULL || !cJSON_IsObject(changes))
        return fake_fail(call, AH_E_INTERNAL, 0, "settings_update: no connection or changes");
    ah_fake_conn *c = (ah_fake_conn *)(void *)call->conn;
    const cJSON *it;
    cJSON_ArrayForEach(it, changes) {
        if (!cJSON_IsString(it) && !cJSON_IsNull(it))
            return fake_fail(call, AH_E_INVALID, 0, "settings_update: '%s' must be a string or null",
                             it->string);
        if (ah_fake_conn_set(c, it->string, cJSON_IsString(it) ? it->valuestring : NULL) != 0)
            return fake_fail(call, AH_E_INTERNAL, 0, "settings_update: out of memory");
        if (c->fh != NULL) {
            pthread_mutex_lock(&c->fh->mu);
            c->fh->settings_update_count++;
            pthread_mutex_unlock(&c->fh->mu);
        }
    }
    return AH_OK;
}

/* As the daemon's: the operations in order, stopping at the first failure. */
static ah_result fake_store_batch(ah_call *call, ah_store_op *ops, size_t n)
{
    if (ops == NULL || n < 1 || n > AH_STORE_BATCH_MAX || ops[0].struct_size < sizeof(ah_store_op))
        return fake_fail(call, AH_E_PLUGIN, 500, "store_batch: malformed");
    for (size_t i = 0; i < n; i++) {
        ah_store_op *op = (ah_store_op *)(void *)((char *)ops + i * ops[0].struct_size);
        op->done = 0;
        op->value = 0;
        if ((op->kind != AH_STORE_SEQUENCE_NEXT || op->name == NULL) &&
            (op->kind != AH_STORE_RECORD_PUT || op->rec == NULL))
            return fake_fail(call, AH_E_PLUGIN, 500, "store_batch: operation %zu malformed", i);
    }
    for (size_t i = 0; i < n; i++) {
        ah_store_op *op = (ah_store_op *)(void *)((char *)ops + i * ops[0].struct_size);
        const ah_store_op *prev =
            i > 0 ? (const ah_store_op *)(const void *)((char *)ops + (i - 1) * ops[0].struct_size)
                  : NULL;
        if ((op->flags & AH_STORE_IF_NEW) &&
            (prev == NULL || prev->done != 1 || prev->kind != AH_STORE_SEQUENCE_NEXT ||
             prev->value != 1))
            continue;
        int changed = 0;
        ah_result r = op->kind == AH_STORE_SEQUENCE_NEXT
                          ? fake_sequence_next(call, op->name, &op->value)
                          : fake_record_put(call, op->rec, op->id_out, op->id_len, &changed);
        if (op->kind == AH_STORE_RECORD_PUT)
            op->value = changed;
        op->done = r == AH_OK ? 1 : -1;
        if (r != AH_OK)
            return AH_ERR;
    }
    return AH_OK;
}

static const ah_host_api fake_api = {
    .struct_size = sizeof(ah_host_api),
    .abi_major = AH_ABI_MAJOR,
    .abi_minor = AH_ABI_MINOR,
    .log = fake_log,
    .fail = fake_fail,
    .setting = fake_setting,
    .http = fake_http,
    .http_response_free = fake_http_response_free,
    .url_escape = ah_url_escape, /* the daemon's own (host->free() is free()) */
    .oauth2_token = fake_oauth2_token,
    .oauth2_invalidate = fake_oauth2_invalidate,
    .json_parse = fake_json_parse,
    .json_string = fake_json_string,
    .publish = fake_publish,
    .emit_record = fake_emit_record,
    .free = fake_free,
    .http_method = fake_http_method,
    .http_path = fake_http_path,
    .http_header = fake_http_header,
    .http_query = fake_http_query,
    .http_client_ip = fake_http_client_ip,
    .http_body = fake_http_body,
    .http_respond_json = fake_http_respond_json,
    .conn_by_secret = fake_conn_by_secret,
    .record_put = fake_record_put,
    .record_get = fake_record_get,
    .record_find = fake_record_find,
    .sequence_next = fake_sequence_next,
    .store_ping = fake_store_ping,
    .record_by_id = fake_record_by_id,
    .http_respond = fake_http_respond,
    .hmac_sha256_hex = fake_hmac_sha256_hex,
    .ct_equal = fake_ct_equal,
    .settings_update = fake_settings_update,
    .setting_lists = fake_setting_lists,
    .store_batch = fake_store_batch,
};

const ah_host_api *ah_fake_host_api(void)
{
    return &fake_api;
}

ah_fake_host *ah_fake_host_new(void)
{
    ah_fake_host *fh = calloc(1, sizeof(*fh));
    if (fh == NULL)
        return NULL;
    if (pthread_mutex_init(&fh->mu, NULL) != 0) {
        free(fh);
        return NULL;
    }
    return fh;
}

void ah_fake_host_free(ah_fake_host *fh)
{
    if (fh == NULL)
        return;
    cJSON_Delete(fh->last_event);
    cJSON_Delete(fh->records);
    cJSON_Delete(fh->sequences);
    while (fh->owned_calls != NULL) {
        struct ah_fake_owned_call *next = fh->owned_calls->next;
        free(fh->owned_calls);
        fh->owned_calls = next;
    }
    pthread_mutex_destroy(&fh->mu);
    free(fh);
}

ah_fake_conn *ah_fake_conn_new(ah_fake_host *fh, const char *tenant, const char *name)
{
    ah_fake_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->fh = fh;
    c->tenant = strdup(tenant != NULL ? tenant : "tenant");
    c->name = strdup(name != NULL ? name : "conn");
    if (c->tenant == NULL || c->name == NULL) {
        ah_fake_conn_free(c);
        return NULL;
    }
    return c;
}

int ah_fake_conn_set(ah_fake_conn *c, const char *key, const char *value)
{
    if (c == NULL || key == NULL)
        return -1;
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->kv[i].key, key) != 0)
            continue;
        if (value == NULL) {
            free(c->kv[i].key);
            free(c->kv[i].value);
            c->kv[i] = c->kv[--c->n];
            return 0;
        }
        char *v = strdup(value);
        if (v == NULL)
            return -1;
        free(c->kv[i].value);
        c->kv[i].value = v;
        return 0;
    }
    if (value == NULL)
        return 0;
    fake_kv *kv = realloc(c->kv, (c->n + 1) * sizeof(*kv));
    if (kv == NULL)
        return -1;
    c->kv = kv;
    char *k = strdup(key), *v = strdup(value);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return -1;
    }
    c->kv[c->n++] = (fake_kv){k, v};
    return 0;
}

void ah_fake_conn_free(ah_fake_conn *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->kv[i].key);
        free(c->kv[i].value);
    }
    free(c->kv);
    free(c->tenant);
    free(c->name);
    free(c);
}

void ah_fake_call_init(ah_fake_host *fh, ah_call_ext *x, ah_fake_conn *conn)
{
    memset(x, 0, sizeof(*x));
    x->call.struct_size = sizeof(x->call);
    x->call.host = &fake_api;
    x->host_ctx = fh;
    if (conn != NULL) {
        x->call.conn = (ah_conn *)(void *)conn;
        x->call.tenant = conn->tenant;
        x->call.connection = conn->name;
    }
}

void ah_fake_exchange_clear(ah_fake_exchange *fx)
{
    if (fx == NULL)
        return;
    cJSON_Delete(fx->response);
    fx->response = NULL;
    fx->responses = 0;
    fx->status = 0;
}
