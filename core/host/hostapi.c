/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host API table handed to plugins: every service a plugin may use,
 * each a thin, checked bridge to a core module. A plugin's ah_call is always
 * the first member of the core's ah_core_call (see core.h), except for the
 * loader's init call (topic == NULL), which is a bare ah_call_ext.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core.h"
#include "ratelimit.h"
#include "conns.h"
#include "events.h"
#include "hostapi.h"
#include "intlog.h"
#include "json.h"
#include "netaddr.h"
#include "recbuf.h"

static ah_core *core_of(const ah_call *call)
{
    return ah_core_of_host(call->host);
}

/* NULL for the loader's init call, which is not a core call. */
static ah_core_call *core_call(const ah_call *call)
{
    return call->topic != NULL ? (ah_core_call *)call : NULL;
}

static const char *plugin_name(const ah_call *call)
{
    ah_core_call *cc = core_call(call);
    return cc != NULL && cc->gen != NULL ? cc->gen->name : "plugin";
}

static const ah_setting_spec *setting_spec(const ah_call *call, const char *key)
{
    ah_core_call *cc = core_call(call);
    if (cc == NULL || cc->gen == NULL)
        return NULL;
    for (const ah_setting_spec *s = cc->gen->desc->settings; s != NULL && s->key != NULL; s++)
        if (strcmp(s->key, key) == 0)
            return s;
    return NULL;
}

/* The secret values a call's connection holds, for redaction. */
static size_t call_secrets(const ah_call *call, const char **out, size_t max)
{
    ah_core_call *cc = core_call(call);
    size_t n = 0;
    out[0] = NULL; /* none, also when there is no connection */
    if (cc == NULL || cc->gen == NULL || call->conn == NULL)
        return 0;
    for (const ah_setting_spec *s = cc->gen->desc->settings; s && s->key && n + 1 < max; s++) {
        if (!(s->flags & (AH_SETTING_SECRET | AH_SETTING_GENERATED)))
            continue;
        const char *v = ah_conn_setting(call->conn, s->key);
        if (v != NULL && *v != '\0')
            out[n++] = v;
    }
    out[n] = NULL;
    return n;
}

static void host_log(const ah_call *call, ah_log_level level, const char *fmt, ...)
{
    ah_core *core = core_of(call);
    if (level > core->log.level)
        return;
    char msg[2048], scope[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *secrets[17];
    call_secrets(call, secrets, 17);
    char *clean = ah_redact(msg, secrets);
    snprintf(scope, sizeof scope, "%s%s%s%s%s", plugin_name(call),
             call->tenant ? " tenant=" : "", call->tenant ? call->tenant : "",
             call->connection ? " conn=" : "", call->connection ? call->connection : "");
    ah_log(&core->log, level, scope, "%s", clean != NULL ? clean : msg);
    free(clean);
}

static ah_result host_fail(ah_call *call, const char *code, int http_status, const char *fmt,
                           ...)
{
    ah_call_ext *ext = (ah_call_ext *)call;
    snprintf(ext->err_code, sizeof ext->err_code, "%s", code != NULL ? code : AH_E_PLUGIN);
    ext->err_status = http_status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ext->err_msg, sizeof ext->err_msg, fmt, ap);
    va_end(ap);
    return AH_ERR;
}

static const char *host_setting(const ah_call *call, const char *key)
{
    if (call->conn == NULL || key == NULL)
        return NULL;
    const char *v = ah_conn_setting(call->conn, key);
    if (v != NULL)
        return v;
    const ah_setting_spec *s = setting_spec(call, key);
    return s != NULL && !(s->flags & AH_SETTING_HASHED) ? s->default_value : NULL;
}

typedef struct outbound_ctx {
    ah_core *core;
    const ah_call *call;
    bool paced; /* its first attempt took a token of the connection's budget */
} outbound_ctx;

/* Records each outbound attempt in the integration log. The HTTP client
 * took out the secrets it knows (the connection's, the bearer); a
 * provider's answer may carry others under their own names (a new
 * application's client_secret, a token), which go as inbound bodies do
 * (ah_intlog_redact). */
static void observe_outbound(void *arg, const ah_httpc_attempt *a)
{
    outbound_ctx *o = arg;
    char path[1024];
    snprintf(path, sizeof path, "%s", a->url);
    /* A page a streaming operation fetched is stored as records: keeping
     * its bytes here too stored every synced payload twice (25 MB of the
     * 124 MB a 90,000-record first sync wrote). Its size is the note;
     * errors and every other call keep their bodies. */
    const ah_core_call *cc = core_call(o->call);
    const char *body = a->error != NULL ? a->error : a->response_body;
    char note[96], *redacted = NULL;
    if (a->error == NULL && body != NULL && cc != NULL && cc->records != NULL &&
        a->status >= 200 && a->status < 300) {
        snprintf(note, sizeof note, "(%zu bytes: a streamed page, stored as records)",
                 strlen(body));
        body = note;
    } else if (a->error == NULL && body != NULL && body[0] != '\0') {
        redacted = ah_intlog_redact(body, strlen(body));
        body = redacted != NULL ? redacted : "(not kept: out of memory)";
    }
    ah_intlog_rec r = {
        .tenant = o->call->tenant,
        .source = o->call->connection,
        .plugin = plugin_name(o->call),
        .action = a->status >= 200 && a->status < 400 ? "OUTBOUND" : "OUTBOUND_ERROR",
        .method = a->method,
        .path = path,
        .status = (int)a->status,
        .duration_s = a->duration_s,
        .body = body,
        .correlation_id = o->call->correlation_id,
    };
    ah_intlog_write(o->core, &r);
    free(redacted);
    if (a->status == 429 && o->call->conn != NULL)
        ah_ratelimit_throttled(o->core, o->call->conn->id, a->retry_after_ms);
    /* The client's own retry is a request to the provider like any: it
     * takes its token of the connection's budget before the client's
     * backoff, not only the first attempt. (After a 429 the client's
     * backoff is the Retry-After the pause above waits for: taken there,
     * the token would make it wait twice.) */
    if (o->paced && a->retry_in_ms > 0 && a->status != 429 && o->call->conn != NULL)
        ah_ratelimit_take(o->core, o->call->conn,
                          cc != NULL && cc->gen != NULL ? cc->gen->desc : NULL);
}

static ah_result host_oauth2_token(ah_call *call, const ah_oauth2_params *p, char *out,
                                   size_t out_len);

/* One request as it stands. `p` (may be NULL) is the OAuth2 client the
 * bearer came from: its secrets are redacted too, being no setting of the
 * connection when a plugin computed them. */
static ah_result http_perform(ah_call *call, const ah_http_request *req,
                              const ah_oauth2_params *p, ah_http_response *resp)
{
    ah_core *core = core_of(call);
    memset(resp, 0, sizeof(*resp));
    resp->struct_size = sizeof(*resp);
    const char *base = host_setting(call, "base_url");
    if (req->url[0] == '/' && base == NULL)
        return host_fail(call, "configuration_error", 500,
                         "http: relative url '%s' but the connection has no base_url", req->url);
    const char *secrets[21];
    size_t n = call_secrets(call, secrets, 17);
    if (req->bearer != NULL)
        secrets[n++] = req->bearer;
    if (p != NULL && p->client_secret != NULL && p->client_secret[0] != '\0')
        secrets[n++] = p->client_secret;
    if (p != NULL && p->refresh_token != NULL && p->refresh_token[0] != '\0')
        secrets[n++] = p->refresh_token;
    secrets[n] = NULL;
    outbound_ctx o = {core, call, true};
    char err[512];
    /* The connection's request budget, shared by syncs, bulk jobs and writes. */
    const ah_core_call *cc = core_call(call); /* NULL in init: no connection either */
    ah_ratelimit_take(core, call->conn, cc != NULL && cc->gen != NULL ? cc->gen->desc : NULL);
    bool unsafe = AH_HAS(req, flags) && (req->flags & AH_HTTP_NOT_IDEMPOTENT) != 0;
    int prc = ah_httpc_perform(core->httpc, req, base, secrets, observe_outbound, &o, resp, err,
                               sizeof err);
    /* Reached the provider, and not refused by an answer that says it did
     * nothing (429, 503: what the client itself retries a write after). */
    if (unsafe && cc != NULL &&
        (resp->outcome == AH_OUTCOME_UNKNOWN ||
         (prc == 0 && resp->status != 429 && resp->status != 503)))
        ((ah_core_call *)cc)->wrote = true;
    if (prc != 0) {
        /* A write that went out and was lost may have been carried out: it
         * must not read as "unavailable", which callers may retry. */
        if (unsafe && resp->outcome == AH_OUTCOME_UNKNOWN)
            return host_fail(call, AH_E_OUTCOME_UNKNOWN, 502,
                             "%s; the provider may have carried it out (request %s): "
                             "not sent again",
                             err, call->correlation_id != NULL ? call->correlation_id : "-");
        return host_fail(call, AH_E_UNAVAILABLE, 503, "%s", err);
    }
    return AH_OK;
}

/* Room for any JWT providers send; the cache refuses a longer token. */
#define HOST_TOKEN_MAX 16384

/* A request that names its OAuth2 client (ABI 1.1): the host takes the
 * token from its cache, sends it, and after a 401 forgets it and tries
 * once more with a fresh one, so that no plugin keeps its own loop. */
static ah_result http_oauth2(ah_call *call, const ah_http_request *req,
                             ah_http_response *resp)
{
    const ah_oauth2_params *p = req->oauth2;
    /* A full-size copy: members the plugin's (older) struct lacks read 0. */
    ah_http_request r;
    memset(&r, 0, sizeof r);
    memcpy(&r, req, req->struct_size < sizeof r ? req->struct_size : sizeof r);
    r.struct_size = sizeof r;
    r.oauth2 = NULL;
    char *tok = malloc(HOST_TOKEN_MAX);
    if (tok == NULL)
        return host_fail(call, AH_E_INTERNAL, 500, "http: out of memory");
    r.bearer = tok;
    ah_result rc = AH_ERR;
    for (int round = 0; round < 2; round++) {
        if (host_oauth2_token(call, p, tok, HOST_TOKEN_MAX) != AH_OK)
            break; /* described: auth_failed, or upstream_unavailable */
        rc = http_perform(call, &r, p, resp);
        if (rc != AH_OK || resp->status != 401 || round == 1)
            break;
        host_log(call, AH_LOG_INFO,
                 "%s %s: the provider refused the access token (HTTP 401); renewing it "
                 "and retrying once",
                 r.method, r.url);
        if (call->conn != NULL)
            ah_oauth2_invalidate_token(core_of(call)->oauth2, call->conn->id, p, tok);
        ah_http_response_free(resp);
        rc = AH_ERR;
    }
    explicit_bzero(tok, HOST_TOKEN_MAX);
    free(tok);
    return rc;
}

/* The size of the response the plugin handed us: what its request says
 * (ABI 1.1 response_size), else the response as it was before `outcome`. */
static size_t plugin_response_size(const ah_http_request *req)
{
    size_t v10 = offsetof(ah_http_response, outcome);
    if (req == NULL || !AH_HAS(req, response_size) || req->response_size < v10)
        return v10;
    return req->response_size < sizeof(ah_http_response) ? req->response_size
                                                         : sizeof(ah_http_response);
}

static ah_result host_http(ah_call *call, const ah_http_request *req, ah_http_response *resp)
{
    /* Filled in full here, then copied out only as far as the plugin's
     * struct reaches: a plugin built with an older SDK passes less. */
    size_t rsz = plugin_response_size(req);
    ah_http_response full;
    memset(&full, 0, sizeof full);
    full.struct_size = sizeof full;
    ah_result rc;
    if (req == NULL || req->url == NULL || req->method == NULL)
        rc = host_fail(call, AH_E_INTERNAL, 500, "http: method and url are required");
    else if (AH_HAS(req, oauth2) && req->oauth2 != NULL)
        rc = http_oauth2(call, req, &full);
    else
        rc = http_perform(call, req, NULL, &full);
    full.struct_size = (uint32_t)rsz;
    memcpy(resp, &full, rsz);
    return rc;
}

static void host_http_response_free(ah_http_response *resp)
{
    ah_http_response_free(resp);
}

static ah_result host_oauth2_token(ah_call *call, const ah_oauth2_params *p, char *out,
                                   size_t out_len)
{
    ah_core *core = core_of(call);
    if (call->conn == NULL)
        return host_fail(call, AH_E_INTERNAL, 500, "oauth2: no connection in this call");
    outbound_ctx o = {core, call, false}; /* token requests are not paced */
    char err[512];
    int rc = ah_oauth2_token(core->oauth2, call->conn->id, p, host_setting(call, "base_url"),
                             observe_outbound, &o, out, out_len, err, sizeof err);
    /* No answer from the token endpoint is the provider's unavailability
     * (retry later), not refused credentials. */
    if (rc == -2)
        return host_fail(call, AH_E_UNAVAILABLE, 503, "oauth2: %s", err);
    if (rc != 0)
        return host_fail(call, "auth_failed", 502, "%s", err);
    return AH_OK;
}

static void host_oauth2_invalidate(ah_call *call, const ah_oauth2_params *p)
{
    if (call->conn != NULL)
        ah_oauth2_invalidate(core_of(call)->oauth2, call->conn->id, p);
}

/* A request body's tree parsed already on this thread (the log's
 * redaction of an atomic route's request parses it before the handler
 * runs), handed to the handler's json_parse of that same text instead of a
 * second parse of it. */
static _Thread_local struct {
    const char *text;
    size_t len;
    cJSON *tree;
} tl_lent;

void ah_host_json_lend(const char *text, size_t len, cJSON *tree)
{
    ah_host_json_unlend();
    tl_lent.text = text;
    tl_lent.len = len;
    tl_lent.tree = tree;
}

void ah_host_json_unlend(void)
{
    cJSON_Delete(tl_lent.tree);
    tl_lent.text = NULL;
    tl_lent.len = 0;
    tl_lent.tree = NULL;
}

static cJSON *host_json_parse(const char *text, size_t len)
{
    if (text == NULL)
        return NULL;
    if (tl_lent.tree != NULL && text == tl_lent.text && len == tl_lent.len) {
        /* The same bytes (the exchange's body, which never changes while
         * its handler runs), parsed by the same function: the tree is the
         * caller's now, as a parse's would be. Once only. */
        cJSON *t = tl_lent.tree;
        tl_lent.tree = NULL;
        return t;
    }
    return ah_json_parse_limited(text, len);
}

static const char *host_json_string(const cJSON *obj, const char *key, size_t max_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v) || v->valuestring == NULL || strlen(v->valuestring) > max_len)
        return NULL;
    return v->valuestring;
}

/* An atomic route's store scope opens at its first store call, so that
 * what the handler does before (reading, validating) runs outside it. */
static void route_scope(ah_call *call)
{
    ah_core_call *cc = core_call(call);
    if (cc != NULL)
        ah_core_call_scope(cc);
}

static ah_result host_publish(ah_call *call, const char *topic, cJSON *body)
{
    ah_core *core = core_of(call);
    route_scope(call);
    if (topic == NULL || strncmp(topic, "event.", 6) != 0 || strlen(topic) > 128) {
        cJSON_Delete(body);
        return host_fail(call, AH_E_INVALID, 500, "event topics start with 'event.'");
    }
    if (call->conn == NULL) {
        cJSON_Delete(body);
        return host_fail(call, AH_E_INTERNAL, 500, "publish needs a connection (tenant)");
    }
    if (ah_core_publish(core, call->conn->tenant_id, topic, body) != 0)
        return host_fail(call, AH_E_INTERNAL, 500, "cannot publish %s", topic);
    return AH_OK;
}

/* One of a record's two values as text: the plugin's text when it gave
 * one (checked, not parsed; bytes in it that are no UTF-8, a provider's
 * page passed on as it came, written as U+FFFD: PostgreSQL refuses them,
 * and with them the page), else its cJSON printed once. *tmp receives
 * what to free. NULL: refused (described) or out of memory. */
static const char *record_text(ah_call *call, const char *what, const char *text, size_t len,
                               const cJSON *tree, const char *absent, size_t *out_len,
                               char **tmp)
{
    *tmp = NULL;
    if (text != NULL) {
        if (len == 0)
            len = strlen(text);
        if (!ah_json_valid(text, len)) {
            host_fail(call, AH_E_PLUGIN, 500, "emit_record: %s is not one JSON value", what);
            return NULL;
        }
        if (!ah_utf8_valid(text, len)) {
            *tmp = len <= SIZE_MAX / 3 ? malloc(len * 3) : NULL;
            if (*tmp == NULL) {
                host_fail(call, AH_E_INTERNAL, 500, "out of memory");
                return NULL;
            }
            *out_len = ah_utf8_repair(text, len, *tmp);
            return *tmp;
        }
        *out_len = len;
        return text;
    }
    if (tree == NULL) {
        *out_len = strlen(absent);
        return absent;
    }
    *tmp = cJSON_PrintUnformatted(tree);
    if (*tmp == NULL) {
        host_fail(call, AH_E_INTERNAL, 500, "out of memory");
        return NULL;
    }
    *out_len = strlen(*tmp);
    return *tmp;
}

/* A provider's id as a streamed record's remote id (as always), and the
 * keys plugins compose for record_put (CareerBuilder's push keys join an
 * e-mail address, a requisition id and more: over 1 KiB). */
#define AH_EMIT_REMOTE_MAX 256
#define AH_PUT_REMOTE_MAX 4096
/* What one streaming call may hand the daemon, all held until its page
 * commits: a page of records (a provider page of the largest answer the
 * HTTP client takes, 64 MiB, with its fields), not a plugin's runaway
 * loop filling the daemon's memory for every tenant. */
#define AH_EMIT_RECORD_BYTES ((size_t)16 << 20)
#define AH_EMIT_CALL_BYTES ((size_t)256 << 20)
#define AH_EMIT_CALL_RECORDS 100000

/* What a plugin may name a record by: a type of 1 to 40 letters, digits,
 * '_', '.' or '-' (the length event topics keep), other than the host's own
 * AH_WRITE_OUTCOME_TYPE (a plugin storing those could forge a settled
 * write's answer); a remote id of UTF-8, 1 to max_remote bytes; an
 * updated_at, when given, of at most 64 bytes of UTF-8. Else the call fails as `what` says, with why. (A name
 * the store refuses, such as bytes PostgreSQL takes for no UTF-8, failed
 * its page on every run, the sync stuck there for good.) */
static ah_result record_names_ok(ah_call *call, const char *what, const ah_record *rec,
                                 size_t max_remote)
{
    const char *why = NULL;
    size_t tl = rec != NULL && rec->type != NULL ? strlen(rec->type) : 0;
    size_t rl = rec != NULL && rec->remote_id != NULL ? strlen(rec->remote_id) : 0;
    if (tl == 0 || rl == 0)
        why = "type and remote_id are required";
    else if (tl > 40 || strspn(rec->type, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789_.-") != tl)
        why = "a type is 1 to 40 letters, digits, '_', '.' or '-' (it names event topics)";
    else if (strcmp(rec->type, AH_WRITE_OUTCOME_TYPE) == 0)
        why = "the type " AH_WRITE_OUTCOME_TYPE " is the host's own";
    else if (rl > max_remote || !ah_utf8_valid(rec->remote_id, rl))
        why = max_remote == AH_EMIT_REMOTE_MAX ? "a remote_id is 1 to 256 bytes of UTF-8"
                                               : "a remote_id is 1 to 4096 bytes of UTF-8";
    else if (rec->updated_at != NULL &&
             (strlen(rec->updated_at) > 64 ||
              !ah_utf8_valid(rec->updated_at, strlen(rec->updated_at))))
        why = "an updated_at is at most 64 bytes of UTF-8";
    if (why == NULL)
        return AH_OK;
    return host_fail(call, AH_E_PLUGIN, 500, "%s: %s", what, why);
}

static ah_result host_emit_record(ah_call *call, const ah_record *rec)
{
    ah_core_call *cc = core_call(call);
    if (cc == NULL || cc->records == NULL)
        return host_fail(call, AH_E_INTERNAL, 500, "emit_record outside a streaming operation");
    if (record_names_ok(call, "emit_record", rec, AH_EMIT_REMOTE_MAX) != AH_OK)
        return AH_ERR;
    bool has_text = AH_HAS(rec, fields_json_len);
    char *rtmp = NULL, *ftmp = NULL;
    size_t rl = 0, fl = 0;
    const char *raw = record_text(call, "raw_json", has_text ? rec->raw_json : NULL,
                                  has_text ? rec->raw_json_len : 0, rec->raw, "null", &rl, &rtmp);
    if (raw == NULL)
        return AH_ERR;
    const char *fields = record_text(call, "fields_json", has_text ? rec->fields_json : NULL,
                                     has_text ? rec->fields_json_len : 0, rec->fields, "{}", &fl,
                                     &ftmp);
    if (fields == NULL) {
        free(rtmp);
        return AH_ERR;
    }
    const char *why = NULL;
    if (rl + fl > AH_EMIT_RECORD_BYTES)
        why = "a record's raw and fields are at most 16 MiB together";
    else if (ah_recbuf_count(cc->records) >= AH_EMIT_CALL_RECORDS)
        why = "a call emits at most 100000 records (a page)";
    else if (ah_recbuf_bytes(cc->records) + rl + fl > AH_EMIT_CALL_BYTES)
        why = "a call's records are at most 256 MiB together (a page)";
    if (why != NULL) {
        free(rtmp);
        free(ftmp);
        return host_fail(call, AH_E_PLUGIN, 500, "emit_record: %s", why);
    }
    int rc = ah_recbuf_add(cc->records, rec->type, rec->remote_id, rec->updated_at, raw, rl,
                           fields, fl);
    free(rtmp);
    free(ftmp);
    return rc == 0 ? AH_OK : host_fail(call, AH_E_INTERNAL, 500, "out of memory");
}

static void host_free(void *p)
{
    free(p);
}

static const char *host_http_method(ah_http_exchange *ex) { return ah_ex_method(ex); }
static const char *host_http_path(ah_http_exchange *ex) { return ah_ex_path(ex); }
static const char *host_http_header(ah_http_exchange *ex, const char *n) { return ah_ex_header(ex, n); }
static const char *host_http_query(ah_http_exchange *ex, const char *n) { return ah_ex_query(ex, n); }
static const char *host_http_client_ip(ah_http_exchange *ex) { return ah_ex_client_ip(ex); }
static const char *host_http_body(ah_http_exchange *ex, size_t *len) { return ah_ex_body(ex, len); }

/* Whether the route's answer is the host's (conn_refused): the handler's
 * is refused. */
static bool answer_refused(const ah_core_call *cc)
{
    return cc != NULL && cc->conn_refused.code[0] != '\0';
}

static ah_result host_http_respond_json(ah_http_exchange *ex, int status, cJSON *body)
{
    ah_core_call *cc = ah_ex_user(ex);
    if (answer_refused(cc)) {
        cJSON_Delete(body);
        return AH_ERR;
    }
    if (cc == NULL || body == NULL || cc->response_log != NULL)
        return ah_ex_respond_json(ex, status, body) == 0 ? AH_OK : AH_ERR;
    /* Printed once, for the answer and (when nothing in it is secret) the
     * integration log. */
    char *text = cJSON_PrintUnformatted(body);
    if (text == NULL) {
        cJSON_Delete(body);
        return AH_ERR;
    }
    cc->response_log = ah_intlog_redact_json_text(body, text);
    cJSON_Delete(body);
    int rc = ah_ex_respond(ex, status, "application/json", text, strlen(text));
    free(text);
    return rc == 0 ? AH_OK : AH_ERR;
}

/* The integration log keeps a note of a raw answer, not the bytes: pages
 * can be large and are not JSON. */
static ah_result host_http_respond(ah_http_exchange *ex, int status, const char *content_type,
                                   const char *body, size_t len)
{
    ah_core_call *cc = ah_ex_user(ex);
    if (answer_refused(cc))
        return AH_ERR;
    if (cc != NULL && cc->response_log == NULL &&
        asprintf(&cc->response_log, "(%s, %zu bytes)",
                 content_type != NULL ? content_type : "no content type", len) < 0)
        cc->response_log = NULL;
    /* A page a plugin serves (LinkedIn's configuration page) is opened by a
     * person, never framed: no other site may frame it to trick clicks, and
     * a browser must not guess another type for it. */
    if (content_type != NULL && strncasecmp(content_type, "text/html", 9) == 0 &&
        (ah_ex_add_header(ex, "Content-Security-Policy", "frame-ancestors 'none'") != 0 ||
         ah_ex_add_header(ex, "X-Frame-Options", "DENY") != 0 ||
         ah_ex_add_header(ex, "X-Content-Type-Options", "nosniff") != 0))
        return AH_ERR;
    return ah_ex_respond(ex, status, content_type, body != NULL ? body : "", body != NULL ? len : 0) == 0
               ? AH_OK
               : AH_ERR;
}

/* The route's conn_by_secret found the connection its secret names but
 * cannot give it (the error just recorded on the route's call says why):
 * the handler sees NULL, as for no connection at all, and would answer as
 * for a wrong secret (401). The route is answered with this error instead
 * (503, retryable), as an isolated route whose connection, sent ahead,
 * cannot be taken is (isolate.c, conn_take). */
static void conn_refused(ah_core_call *rc)
{
    snprintf(rc->conn_refused.code, sizeof rc->conn_refused.code, "%s",
             rc->ext.err_code[0] ? rc->ext.err_code : "connection_unavailable");
    snprintf(rc->conn_refused.msg, sizeof rc->conn_refused.msg, "%s", rc->ext.err_msg);
    rc->conn_refused.status = rc->ext.err_status ? rc->ext.err_status : 503;
}

/* How long an isolated route's conn_by_secret waits for the connection. */
#define CONN_BY_SECRET_WAIT_S 2

static ah_call *host_conn_by_secret(ah_call *route_call, const char *key, const char *presented)
{
    ah_core_call *rc = core_call(route_call);
    if (rc == NULL || rc->ex == NULL || rc->gen == NULL || key == NULL || presented == NULL)
        return NULL;
    if (rc->n_extra >= (int)(sizeof rc->extra / sizeof rc->extra[0]))
        return NULL;
    ah_core *core = rc->core;
    if (rc->atomic_route && rc->scoped) {
        /* A second connection locked inside a store scope could deadlock
         * with a call that holds that connection and waits for the store. */
        host_fail(route_call, AH_E_PLUGIN, 500,
                  "an AH_ROUTE_ATOMIC route may look up one connection only");
        return NULL;
    }
    ah_conn *c = ah_conns_by_secret(core, rc->gen->name, key, presented);
    if (c == NULL)
        return NULL;
    /* Kept so the route's log entries can leave it out (a body may echo it
     * under a harmless-looking key). Out of memory: nothing to scrub with,
     * the entries are still redacted by key. */
    if (rc->route_secret == NULL && *presented != '\0')
        rc->route_secret = strdup(presented);
    ah_core_call *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        ah_conn_release(c);
        return NULL;
    }
    if (rc->gen->iso != NULL) {
        /* An isolated route runs on one of its plugin process's threads
         * (AH_FRAME_CALLS_MAX of them); when all are taken, a call of this
         * connection may wait for one while it holds the connection
         * (connection first, then process, everywhere else): wait a
         * bounded time for the connection, then give up (503), rather
         * than wait for each other for ever. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += CONN_BY_SECRET_WAIT_S;
        if (pthread_mutex_timedlock(&c->call_lock, &until) != 0) {
            host_fail(route_call, "overloaded", 503,
                      "the connection is busy with another call; retry later");
            conn_refused(rc);
            ah_conn_release(c);
            free(x);
            return NULL;
        }
    } else {
        pthread_mutex_lock(&c->call_lock);
    }
    ah_core_call_init(x, core, rc->gen, c, rc->ext.call.topic, rc->ext.call.correlation_id);
    x->ex = rc->ex;
    if (ah_conn_ensure_open(core, c, rc->gen, &x->ext) != 0) {
        /* Say why in the route's own context, so the handler can report it. */
        rc->ext = (ah_call_ext){.call = rc->ext.call};
        memcpy(rc->ext.err_code, x->ext.err_code, sizeof rc->ext.err_code);
        memcpy(rc->ext.err_msg, x->ext.err_msg, sizeof rc->ext.err_msg);
        rc->ext.err_status = x->ext.err_status;
        conn_refused(rc);
        pthread_mutex_unlock(&c->call_lock);
        ah_conn_release(c);
        free(x);
        return NULL;
    }
    x->ext.call.conn_ctx = c->ctx;
    x->route = rc;
    rc->extra[rc->n_extra++] = x;
    return &x->ext.call;
}

/* For an isolated route (isolate.h): the connection `presented` names,
 * looked up as above but neither locked nor opened: a call context whose
 * settings the daemon sends with the route, so that the handler's
 * conn_by_secret needs no round trip. The route's own conn_by_secret
 * (above, one-way from the plugin's process) then locks it, and must find
 * this very connection. */
static ah_call *host_conn_peek(ah_call *route_call, const char *key, const char *presented)
{
    ah_core_call *rc = core_call(route_call);
    if (rc == NULL || rc->gen == NULL || key == NULL || presented == NULL)
        return NULL;
    ah_conn *c = ah_conns_by_secret(rc->core, rc->gen->name, key, presented);
    if (c == NULL)
        return NULL;
    ah_core_call *x = malloc(sizeof *x);
    if (x == NULL) {
        ah_conn_release(c);
        return NULL;
    }
    ah_core_call_init(x, rc->core, rc->gen, c, rc->ext.call.topic, rc->ext.call.correlation_id);
    return &x->ext.call;
}

static void host_conn_unpeek(ah_call *peeked)
{
    if (peeked == NULL)
        return;
    ah_core_call *x = (ah_core_call *)peeked;
    ah_conn *c = x->ext.call.conn;
    ah_core_call_done(x);
    ah_conn_release(c);
    free(x);
}

const ah_isolate_conn_hooks ah_host_conn_hooks = {
    .peek = host_conn_peek,
    .unpeek = host_conn_unpeek,
};

/* --- records ------------------------------------------------------------- */

static cJSON *record_json(const ah_record_row *r)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "type", r->type);
    cJSON_AddStringToObject(o, "remote_id", r->remote_id);
    if (r->updated_at != NULL)
        cJSON_AddStringToObject(o, "updated_at", r->updated_at);
    else
        cJSON_AddNullToObject(o, "updated_at");
    cJSON *raw = r->raw != NULL ? cJSON_Parse(r->raw) : NULL;
    cJSON *fields = r->fields != NULL ? cJSON_Parse(r->fields) : NULL;
    cJSON_AddItemToObject(o, "raw", raw != NULL ? raw : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "fields", fields != NULL ? fields : cJSON_CreateObject());
    if (r->created_at != NULL)
        cJSON_AddStringToObject(o, "created_at", r->created_at);
    if (r->stored_at != NULL)
        cJSON_AddStringToObject(o, "stored_at", r->stored_at);
    return o;
}

/* A record_put's record as the store takes it: *raw and *fields are
 * malloc'd NUL-terminated texts (a plugin's may not be terminated). AH_ERR
 * when it is malformed or memory ran out (said on the call). */
static ah_result record_in_of(ah_call *call, const ah_record *rec, ah_record_in *in, char **raw,
                              char **fields)
{
    *raw = *fields = NULL;
    if (record_names_ok(call, "record_put", rec, AH_PUT_REMOTE_MAX) != AH_OK)
        return AH_ERR;
    bool has_text = AH_HAS(rec, fields_json_len);
    char *rtmp = NULL, *ftmp = NULL;
    size_t rl = 0, fl = 0;
    const char *rt = record_text(call, "raw_json", has_text ? rec->raw_json : NULL,
                                 has_text ? rec->raw_json_len : 0, rec->raw, "null", &rl, &rtmp);
    if (rt == NULL)
        return AH_ERR;
    const char *ft = record_text(call, "fields_json", has_text ? rec->fields_json : NULL,
                                 has_text ? rec->fields_json_len : 0, rec->fields, "{}", &fl,
                                 &ftmp);
    if (ft == NULL) {
        free(rtmp);
        return AH_ERR;
    }
    *raw = rtmp != NULL ? rtmp : strndup(rt, rl);
    *fields = ftmp != NULL ? ftmp : strndup(ft, fl);
    if (*raw == NULL || *fields == NULL) {
        free(*raw);
        free(*fields);
        *raw = *fields = NULL;
        return host_fail(call, AH_E_INTERNAL, 500, "out of memory");
    }
    *in = (ah_record_in){rec->type, rec->remote_id, rec->updated_at, *raw, *fields};
    return AH_OK;
}

/* What record_put answers of a stored record: its id and whether it changed. */
static void record_put_answer(const char *id, ah_upsert_result res, char *id_out, size_t id_len,
                              int *changed_out)
{
    if (id_out != NULL && id_len > 0)
        snprintf(id_out, id_len, "%s", id != NULL ? id : "");
    if (changed_out != NULL)
        *changed_out = (int)res;
}

static ah_result host_record_put(ah_call *call, const ah_record *rec, char *id_out, size_t id_len,
                                 int *changed_out)
{
    ah_core *core = core_of(call);
    route_scope(call);
    if (call->conn == NULL)
        return host_fail(call, AH_E_INTERNAL, 500, "record_put needs a connection");
    ah_record_in in;
    char *raw, *fields;
    if (record_in_of(call, rec, &in, &raw, &fields) != AH_OK)
        return AH_ERR;
    ah_upsert_result res = AH_REC_UNCHANGED;
    char *id = NULL;
    int rc = core->store->ops->records_upsert(core->store, call->conn->id, &in, 1, NULL, NULL,
                                              &res, &id);
    free(raw);
    free(fields);
    if (rc != 0) {
        free(id);
        return host_fail(call, "store_unavailable", 500, "the store could not save the record");
    }
    record_put_answer(id, res, id_out, id_len, changed_out);
    free(id);
    return AH_OK;
}

static cJSON *host_record_get(ah_call *call, const char *type, const char *remote_id)
{
    ah_core *core = core_of(call);
    route_scope(call);
    if (call->conn == NULL || type == NULL || remote_id == NULL)
        return NULL;
    ah_record_row row;
    memset(&row, 0, sizeof row);
    if (core->store->ops->record_get(core->store, call->conn->id, type, remote_id, &row) != 0)
        return NULL;
    cJSON *o = record_json(&row);
    ah_record_row_free(&row);
    return o;
}

static void collect_record(void *arg, const ah_record_row *row)
{
    cJSON *o = record_json(row);
    if (o != NULL)
        cJSON_AddItemToArray(arg, o);
}

static cJSON *host_record_find(ah_call *call, const char *type, const char *field,
                               const char *value, int nocase, int limit)
{
    ah_core *core = core_of(call);
    route_scope(call);
    if (call->conn == NULL || type == NULL || field == NULL || value == NULL)
        return NULL;
    cJSON *list = cJSON_CreateArray();
    ah_record_query q = {
        .tenant_id = call->conn->tenant_id,
        .type = type,
        .limit = limit < 1 ? 1 : (limit > 1000 ? 1000 : limit),
        .field_key = field,
        .field_value = value,
        .field_nocase = nocase != 0,
    };
    if (list == NULL || core->store->ops->record_query(core->store, &q, collect_record, list) != 0) {
        cJSON_Delete(list);
        return NULL;
    }
    return list;
}

static ah_result host_sequence_next(ah_call *call, const char *name, int64_t *out)
{
    ah_core *core = core_of(call);
    route_scope(call);
    if (call->conn == NULL || name == NULL)
        return host_fail(call, AH_E_INTERNAL, 500, "sequence_next needs a connection");
    if (core->store->ops->sequence_next(core->store, call->conn->tenant_id, name, out) != 0)
        return host_fail(call, "store_unavailable", 500, "the store could not allocate from '%s'", name);
    return AH_OK;
}

static ah_result host_store_ping(ah_call *call)
{
    ah_core *core = core_of(call);
    return core->store->ops->ping(core->store) == 0 ? AH_OK : AH_ERR;
}

static cJSON *host_record_by_id(ah_call *call, const char *id)
{
    ah_core *core = core_of(call);
    route_scope(call);
    if (call->conn == NULL || id == NULL || *id == '\0')
        return NULL;
    ah_record_row row;
    memset(&row, 0, sizeof row);
    if (core->store->ops->record_get_by_id(core->store, call->conn->tenant_id, id, &row) != 0)
        return NULL;
    cJSON *o = record_json(&row);
    ah_record_row_free(&row);
    return o;
}

/* --- crypto and settings (appended to the ABI) ------------------------- */

static ah_result host_hmac_sha256_hex(const void *key, size_t key_len, const void *data,
                                      size_t len, char out[65])
{
    return ah_hmac_sha256_hex(key, key_len, data, len, out) == 0 ? AH_OK : AH_ERR;
}

static int host_ct_equal(const char *a, const char *b)
{
    return a != NULL && b != NULL && ah_ct_streq(a, b) ? 1 : 0;
}

/* One try of host_settings_update on the stored row: 0 stored, 1 the
 * stored settings changed since they were read (try again), -1 invalid
 * (err filled), -2 the store failed. */
static int settings_update_once(ah_call *call, ah_core_call *cc, const cJSON *changes, char *err,
                                size_t errlen)
{
    ah_core *core = cc->core;
    const ah_conn *c = call->conn;
    ah_connection_row row;
    memset(&row, 0, sizeof row);
    if (core->store->ops->connection_get(core->store, c->tenant, c->name, &row) != 0) {
        snprintf(err, errlen, "cannot read connection %s", c->name);
        return -2;
    }
    cJSON *existing = cJSON_Parse(row.settings != NULL ? row.settings : "{}");
    cJSON *input = cJSON_CreateObject();
    char *text = NULL;
    int rc = existing != NULL && input != NULL ? 0 : -1;
    if (rc != 0)
        snprintf(err, errlen, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, changes) {
        if (rc != 0)
            break;
        const ah_setting_spec *sp = setting_spec(call, it->string);
        if (sp == NULL) {
            snprintf(err, errlen, "plugin '%s' has no setting '%s'", cc->gen->name, it->string);
            rc = -1;
        } else if (cJSON_IsNull(it)) {
            cJSON_DeleteItemFromObjectCaseSensitive(existing, it->string);
        } else if (cJSON_IsString(it)) {
            cJSON_AddItemToObject(input, it->string, cJSON_CreateString(it->valuestring));
        } else {
            snprintf(err, errlen, "setting '%s' must be a string or null", it->string);
            rc = -1;
        }
    }
    /* "creating" regenerates the generated settings that are absent: only
     * the ones removed above. */
    if (rc == 0)
        rc = ah_settings_build(core, cc->gen->desc->settings, cc->gen->name, existing, input,
                               true, NULL, &text, err, errlen);
    if (rc == 0) {
        int urc = core->store->ops->connection_update(core->store, row.id, text,
                                                      row.settings != NULL ? row.settings : "{}");
        if (urc == AH_STORE_EXISTS) {
            rc = 1;
        } else if (urc != AH_STORE_OK) {
            snprintf(err, errlen, "the store could not save the settings");
            rc = -2;
        }
    }
    free(text);
    cJSON_Delete(existing);
    ah_json_wipe_delete(input); /* plaintext secrets (a new client secret, keys) */
    ah_connection_row_free(&row);
    return rc;
}

/* Like `atshub connection set` (and `rotate` for null on a generated key),
 * from inside a plugin call: the stored row is read, changed and stored
 * only if still as read, so that a change an operator (or another
 * instance) stored meanwhile is kept, not overwritten with this call's
 * older view; it is read and applied again then. */
static ah_result host_settings_update(ah_call *call, const cJSON *changes)
{
    ah_core_call *cc = core_call(call);
    if (cc == NULL || cc->gen == NULL || call->conn == NULL || cc->ex != NULL)
        return host_fail(call, AH_E_INTERNAL, 500, "settings_update needs a bus call on a connection");
    if (!cJSON_IsObject(changes))
        return host_fail(call, AH_E_INTERNAL, 500, "settings_update: changes must be an object");
    ah_core *core = cc->core;
    char err[512] = "";
    int rc = 1;
    for (int i = 0; i < 5 && rc == 1; i++)
        rc = settings_update_once(call, cc, changes, err, sizeof err);
    if (rc == 1)
        return host_fail(call, AH_E_CONFLICT, 409,
                         "the connection's settings kept changing meanwhile; try again");
    if (rc != 0)
        return host_fail(call, rc == -2 ? "store_unavailable" : AH_E_INVALID, rc == -2 ? 500 : 400,
                         "%s", err);
    /* This process made the change, so the store's data version does not
     * move for it: reload now (conns.c serialises it with the ticker's). */
    int rl = ah_conns_reload(core);
    if (rl != 0)
        host_log(call, AH_LOG_WARN, "settings saved; the connection table reloads on the next tick");
    return AH_OK;
}

/* What setting_lists looks for in each connection's list. */
typedef struct listed_probe {
    unsigned kind; /* AH_LISTED_EXACT or AH_LISTED_NETWORK */
    const char *value;
    size_t vlen;
    struct sockaddr_storage addr; /* AH_LISTED_NETWORK */
} listed_probe;

static bool listed_match(void *arg, const char *list)
{
    const listed_probe *p = arg;
    if (p->kind == AH_LISTED_NETWORK)
        return ah_netlist_text_contains(list, (const struct sockaddr *)&p->addr);
    for (const char *s = list;;) {
        const char *e = strchr(s, ',');
        if (e == NULL)
            e = s + strlen(s);
        const char *a = s, *b = e;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if ((size_t)(b - a) == p->vlen && memcmp(a, p->value, p->vlen) == 0)
            return true;
        if (*e == '\0')
            return false;
        s = e + 1;
    }
}

static int host_setting_lists(ah_call *call, const char *key, const char *value, unsigned how)
{
    ah_core_call *cc = core_call(call);
    const ah_setting_spec *sp = key != NULL ? setting_spec(call, key) : NULL;
    unsigned kind = how & ~(unsigned)AH_LISTED_WITH_DISABLED;
    /* Secrets are never answered about, not even yes or no: the answer
     * would let a plugin guess another tenant's secret one value at a
     * time. */
    if (cc == NULL || sp == NULL || value == NULL || sp->type != AH_SET_LIST ||
        (sp->flags & (AH_SETTING_SECRET | AH_SETTING_GENERATED | AH_SETTING_HASHED)) ||
        (kind != AH_LISTED_EXACT && kind != AH_LISTED_NETWORK))
        return -1;
    listed_probe p = {.kind = kind, .value = value, .vlen = strlen(value)};
    if (kind == AH_LISTED_NETWORK && !ah_addr_parse(value, &p.addr))
        return 0; /* no address is in any network */
    return ah_conns_setting_match(cc->core, cc->gen->name, key,
                                  (how & AH_LISTED_WITH_DISABLED) == 0, listed_match, &p);
}

/* The i-th of a plugin's ops: elements have the first one's size, which
 * may be larger than this host's ah_store_op (a newer SDK's). */
static ah_store_op *store_op_at(ah_store_op *ops, size_t i)
{
    return (ah_store_op *)(void *)((char *)ops + i * ops[0].struct_size);
}

/* An AH_STORE_NUMBERED record_put's record for a number: the record as
 * given, its remote id the prefix and the number, and (number_field) its
 * fields with that member set to the same text, on a copy of the fields
 * (the plugin's are borrowed, const). Free with numbered_free. */
typedef struct numbered_rec {
    ah_record r;
    char *rid;
    cJSON *fields;
} numbered_rec;

static void numbered_free(numbered_rec *nb)
{
    cJSON_Delete(nb->fields);
    free(nb->rid);
    memset(nb, 0, sizeof *nb);
}

static ah_result numbered_make(ah_call *call, const ah_store_op *op, int64_t number,
                               numbered_rec *nb)
{
    memset(nb, 0, sizeof *nb);
    const ah_record *rec = op->rec;
    if (asprintf(&nb->rid, "%s%0*lld", rec->remote_id, (int)op->number_width,
                 (long long)number) < 0) {
        nb->rid = NULL;
        return host_fail(call, AH_E_INTERNAL, 500, "out of memory");
    }
    ah_record *r = &nb->r;
    *r = (ah_record){.struct_size = sizeof *r, .type = rec->type, .remote_id = nb->rid,
                     .updated_at = rec->updated_at, .raw = rec->raw, .fields = rec->fields};
    bool has_text = AH_HAS(rec, fields_json_len);
    if (has_text) {
        r->raw_json = rec->raw_json;
        r->raw_json_len = rec->raw_json_len;
        r->fields_json = rec->fields_json;
        r->fields_json_len = rec->fields_json_len;
    }
    if (op->number_field != NULL) {
        cJSON *fields;
        if (has_text && rec->fields_json != NULL)
            fields = cJSON_ParseWithLength(rec->fields_json, rec->fields_json_len > 0
                                                                 ? rec->fields_json_len
                                                                 : strlen(rec->fields_json));
        else
            fields = rec->fields != NULL ? cJSON_Duplicate(rec->fields, 1) : cJSON_CreateObject();
        nb->fields = fields;
        cJSON *v = cJSON_CreateString(nb->rid);
        if (!cJSON_IsObject(fields) || v == NULL) {
            cJSON_Delete(v);
            numbered_free(nb);
            return host_fail(call, AH_E_PLUGIN, 500,
                             "record_put: the fields of a numbered record must be an object");
        }
        if (cJSON_GetObjectItemCaseSensitive(fields, op->number_field) != NULL)
            cJSON_ReplaceItemInObjectCaseSensitive(fields, op->number_field, v);
        else
            cJSON_AddItemToObject(fields, op->number_field, v);
        r->fields = fields;
        r->fields_json = NULL;
        r->fields_json_len = 0;
    }
    return AH_OK;
}

static ah_result numbered_put(ah_call *call, const ah_store_op *op, int64_t number,
                              int *changed)
{
    numbered_rec nb;
    if (numbered_make(call, op, number, &nb) != AH_OK)
        return AH_ERR;
    ah_result res = host_record_put(call, &nb.r, op->id_out, op->id_len, changed);
    numbered_free(&nb);
    return res;
}

/* The record of a numbered put for the store's expected number (the
 * store's make callback of sequence_next_then_put). */
typedef struct pair_put_arg {
    ah_call *call;
    const ah_store_op *op;
    numbered_rec nb;
    char *raw, *fields;
} pair_put_arg;

static int pair_put_make(void *arg, int64_t n, ah_record_in *in)
{
    pair_put_arg *a = arg;
    numbered_free(&a->nb);
    free(a->raw);
    free(a->fields);
    a->raw = a->fields = NULL;
    if (numbered_make(a->call, a->op, n, &a->nb) != AH_OK)
        return -1;
    return record_in_of(a->call, &a->nb.r, in, &a->raw, &a->fields) == AH_OK ? 0 : -1;
}

/* store_batch's sequence op and the IF_NEW sequence after it, as
 * host_sequence_next twice would answer them; with put (a numbered
 * record_put after them, or NULL) that record in the same exchange with
 * the store when it can (store.h, sequence_next_then_put): then put->done
 * is 1 on return, else put is left to the caller. */
static ah_result host_sequence_pair(ah_call *call, ah_store_op *op, ah_store_op *next,
                                    ah_store_op *put)
{
    ah_core *core = core_of(call);
    route_scope(call);
    if (call->conn == NULL) {
        op->done = -1;
        return host_fail(call, AH_E_INTERNAL, 500, "sequence_next needs a connection");
    }
    pair_put_arg a = {.call = call, .op = put};
    int64_t v = 0, w = 0;
    bool stored = false;
    ah_upsert_result res = AH_REC_UNCHANGED;
    char *id = NULL;
    int rc = put != NULL ? core->store->ops->sequence_next_then_put(
                               core->store, call->conn->tenant_id, op->name, next->name,
                               call->conn->id, pair_put_make, &a, &v, &w, &stored, &res, &id)
                         : core->store->ops->sequence_next_then(core->store, call->conn->tenant_id,
                                                                op->name, next->name, &v, &w);
    numbered_free(&a.nb);
    free(a.raw);
    free(a.fields);
    if (rc != 0) {
        free(id);
        op->done = -1;
        return host_fail(call, "store_unavailable", 500, "the store could not allocate from '%s'",
                         op->name);
    }
    op->value = v;
    op->done = 1;
    if (v == 1) {
        next->value = w;
        next->done = 1;
    }
    if (stored) {
        int changed = 0;
        record_put_answer(id, res, put->id_out, put->id_len, &changed);
        put->value = changed;
        put->done = 1;
    }
    free(id);
    return AH_OK;
}

static ah_result host_store_batch(ah_call *call, ah_store_op *ops, size_t n)
{
    if (ops == NULL || n < 1 || n > AH_STORE_BATCH_MAX ||
        ops[0].struct_size < offsetof(ah_store_op, value) + sizeof ops[0].value)
        return host_fail(call, AH_E_PLUGIN, 500, "store_batch: 1 to %d operations of "
                         "sizeof(ah_store_op) each", AH_STORE_BATCH_MAX);
    /* Nothing runs unless every operation is well formed. */
    for (size_t i = 0; i < n; i++) {
        ah_store_op *op = store_op_at(ops, i);
        op->done = 0;
        op->value = 0;
        bool numbered = (op->flags & AH_STORE_NUMBERED) != 0;
        bool ok = op->struct_size == ops[0].struct_size &&
                  (op->flags & ~(uint32_t)(AH_STORE_IF_NEW | AH_STORE_NUMBERED)) == 0 &&
                  ((op->kind == AH_STORE_SEQUENCE_NEXT && op->name != NULL && !numbered) ||
                   (op->kind == AH_STORE_RECORD_PUT && op->rec != NULL)) &&
                  (!numbered || (AH_HAS(op, number_width) && op->number_width <= 20 &&
                                 op->rec->remote_id != NULL));
        if (!ok)
            return host_fail(call, AH_E_PLUGIN, 500, "store_batch: operation %zu is malformed "
                             "(kind, flags, its name or record)", i);
    }
    for (size_t i = 0; i < n; i++) {
        ah_store_op *op = store_op_at(ops, i);
        if (op->flags & AH_STORE_IF_NEW) {
            const ah_store_op *prev = i > 0 ? store_op_at(ops, i - 1) : NULL;
            if (prev == NULL || prev->done != 1 || prev->kind != AH_STORE_SEQUENCE_NEXT ||
                prev->value != 1)
                continue;
        }
        ah_result r;
        ah_store_op *next = i + 1 < n ? store_op_at(ops, i + 1) : NULL;
        if (op->kind == AH_STORE_SEQUENCE_NEXT && next != NULL &&
            next->kind == AH_STORE_SEQUENCE_NEXT && (next->flags & AH_STORE_IF_NEW) &&
            core_of(call)->store->ops->sequence_next_then != NULL) {
            /* A sequence and the next one if it drew 1: one exchange with
             * the store (store.h, sequence_next_then); and the numbered
             * record after them in the same one when the store can. */
            ah_store_op *put = i + 2 < n ? store_op_at(ops, i + 2) : NULL;
            bool with_put = put != NULL && (put->flags & AH_STORE_NUMBERED) &&
                            core_of(call)->store->ops->sequence_next_then_put != NULL;
            r = host_sequence_pair(call, op, next, with_put ? put : NULL);
            if (r != AH_OK)
                return AH_ERR;
            i++;
            if (with_put && put->done == 1)
                i++; /* stored with the pair */
            continue;
        }
        if (op->flags & AH_STORE_NUMBERED) {
            const ah_store_op *prev = i > 0 ? store_op_at(ops, i - 1) : NULL;
            if (prev == NULL || prev->done != 1 || prev->kind != AH_STORE_SEQUENCE_NEXT)
                continue;
            int changed = 0;
            r = numbered_put(call, op, prev->value, &changed);
            op->value = changed;
        } else if (op->kind == AH_STORE_SEQUENCE_NEXT) {
            r = host_sequence_next(call, op->name, &op->value);
        } else {
            int changed = 0;
            r = host_record_put(call, op->rec, op->id_out, op->id_len, &changed);
            op->value = changed;
        }
        op->done = r == AH_OK ? 1 : -1;
        if (r != AH_OK)
            return AH_ERR; /* described by the operation */
    }
    return AH_OK;
}

void ah_host_api_init(ah_host_api *api)
{
    *api = (ah_host_api){
        .struct_size = sizeof(ah_host_api),
        .abi_major = AH_ABI_MAJOR,
        .abi_minor = AH_ABI_MINOR,
        .log = host_log,
        .fail = host_fail,
        .setting = host_setting,
        .http = host_http,
        .http_response_free = host_http_response_free,
        .url_escape = ah_url_escape, /* libcurl's (httpc.h) */
        .oauth2_token = host_oauth2_token,
        .oauth2_invalidate = host_oauth2_invalidate,
        .json_parse = host_json_parse,
        .json_string = host_json_string,
        .publish = host_publish,
        .emit_record = host_emit_record,
        .free = host_free,
        .http_method = host_http_method,
        .http_path = host_http_path,
        .http_header = host_http_header,
        .http_query = host_http_query,
        .http_client_ip = host_http_client_ip,
        .http_body = host_http_body,
        .http_respond_json = host_http_respond_json,
        .conn_by_secret = host_conn_by_secret,
        .record_put = host_record_put,
        .record_get = host_record_get,
        .record_find = host_record_find,
        .sequence_next = host_sequence_next,
        .store_ping = host_store_ping,
        .record_by_id = host_record_by_id,
        .hmac_sha256_hex = host_hmac_sha256_hex,
        .ct_equal = host_ct_equal,
        .settings_update = host_settings_update,
        .http_respond = host_http_respond,
        .setting_lists = host_setting_lists,
        .store_batch = host_store_batch,
    };
}
