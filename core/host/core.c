/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host context: opens the modules below it in order and routes bus
 * requests to plugins. Starting and stopping the surfaces above (HTTP,
 * admin, sync, ticker) is the daemon's (daemon.c).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conns.h"
#include "core.h"
#include "events.h"
#include "hostapi.h"
#include "intlog.h"
#include "metrics.h"
#include "ratelimit.h"
#include "tenantlimit.h"
#include "opfields.h"
#include "recbuf.h"
#include "isolate.h"

const char ah_records_as_text[] = "records as text";

/* ------------------------------------------------------------------------ */
/* Calls into plugins                                                        */
/* ------------------------------------------------------------------------ */

void ah_core_call_init(ah_core_call *cc, ah_core *core, ah_generation *gen, ah_conn *c,
                       const char *topic, const char *correlation_id)
{
    memset(cc, 0, sizeof(*cc));
    cc->core = core;
    cc->gen = gen;
    ah_call *call = &cc->ext.call;
    call->struct_size = sizeof(ah_call);
    call->host = &core->host;
    call->plugin_state = gen != NULL ? gen->plugin_state : NULL;
    call->conn = c;
    call->conn_ctx = c != NULL ? c->ctx : NULL;
    call->tenant = c != NULL ? c->tenant : NULL;
    call->connection = c != NULL ? c->name : NULL;
    snprintf(cc->topic_buf, sizeof cc->topic_buf, "%s", topic != NULL ? topic : "call");
    call->topic = cc->topic_buf;
    call->correlation_id = correlation_id;
}

void ah_core_isolate_opts(const ah_config *cfg, const ah_plugin_iso_conf *pi,
                          ah_isolate_opts *io)
{
    *io = (ah_isolate_opts){
        .conn_hooks = &ah_host_conn_hooks,
        .memory_max = pi->memory_max,
        .call_timeout_ms = pi->call_timeout_ms,
        .max_calls = pi->max_calls,
        .restart_backoff_ms = pi->restart_backoff_ms,
        .processes = pi->processes,
        .room_wait_ms = cfg->request_timeout_ms,
    };
    snprintf(io->env, sizeof io->env, "%s", pi->env);
}

/* The tenant an atomic route writes for: its connection's, or that of the
 * first connection its handler took by secret; 0 when it has none. */
static int64_t call_tenant(const ah_core_call *cc)
{
    const ah_conn *c = cc->ext.call.conn;
    if (c == NULL && cc->n_extra > 0)
        c = cc->extra[0]->ext.call.conn;
    return c != NULL ? c->tenant_id : 0;
}

void ah_core_call_scope(ah_core_call *cc)
{
    if (cc->route != NULL)
        cc = cc->route;
    ah_store *st = cc->core->store;
    if (!cc->atomic_route || cc->scoped)
        return;
    if (cc->core->committer != NULL && st->ops->group_begin != NULL) {
        if (st->ops->group_begin(st, call_tenant(cc), &cc->group) == 0)
            cc->scoped = true;
    } else if (st->ops->scope_begin != NULL && st->ops->scope_begin(st) == 0) {
        cc->scoped = true;
    }
}

void ah_core_call_done(ah_core_call *cc)
{
    for (int i = 0; i < cc->n_extra; i++) {
        ah_core_call *x = cc->extra[i];
        ah_conn *c = x->ext.call.conn;
        ah_core_call_done(x);
        pthread_mutex_unlock(&c->call_lock);
        ah_conn_release(c);
        free(x);
    }
    cc->n_extra = 0;
    ah_recbuf_free(cc->records);
    cc->records = NULL;
    free(cc->response_log);
    cc->response_log = NULL;
    if (cc->route_secret != NULL) {
        explicit_bzero(cc->route_secret, strlen(cc->route_secret));
        free(cc->route_secret);
        cc->route_secret = NULL;
    }
}

/* Failures of the moment rather than of the connection's settings: an
 * isolated plugin's process crashed, restarting or too slow; no room for
 * the call (overloaded: an isolated plugin's process full and as many
 * calls waiting for it as [core] provider_threads allows); the provider
 * did not answer, or the request was not sent because too many calls
 * wait on it. The open is tried again at the next call, not remembered
 * as failed until the settings change. */
static bool open_failure_transient(const char *code)
{
    return strcmp(code, AH_E_PLUGIN_CRASHED) == 0 || strcmp(code, AH_E_PLUGIN_UNAVAILABLE) == 0 ||
           strcmp(code, AH_E_TIMEOUT) == 0 || strcmp(code, "overloaded") == 0 ||
           strcmp(code, AH_E_UNAVAILABLE) == 0;
}

int ah_conn_ensure_open(ah_core *core, ah_conn *c, ah_generation *gen, ah_call_ext *ext)
{
    if (c->ctx_gen == gen) {
        if (!c->ctx_failed)
            return 0;
        snprintf(ext->err_code, sizeof ext->err_code, "connection_unavailable");
        snprintf(ext->err_msg, sizeof ext->err_msg, "%s", c->ctx_error);
        ext->err_status = 503;
        return -1;
    }
    /* A new generation took over (or first use): close the old context on
     * the generation that made it, then open on the new one. */
    if (c->ctx_gen != NULL) {
        if (c->ctx != NULL)
            ah_generation_close(c->ctx_gen, c->ctx);
        ah_generation_release(c->ctx_gen);
        c->ctx_gen = NULL;
        c->ctx = NULL;
    }
    atomic_fetch_add(&gen->refs, 1);
    c->ctx_gen = gen;
    c->ctx_failed = false;
    if (gen->desc->open == NULL)
        return 0;
    ah_core_call cc;
    ah_core_call_init(&cc, core, gen, c, "connection.open", NULL);
    void *ctx = NULL;
    ah_result r = ah_generation_open(gen, &cc.ext.call, &ctx);
    ah_core_call_done(&cc);
    if (r != AH_OK && open_failure_transient(cc.ext.err_code)) {
        /* Not the connection's failure: open again at the next call
         * rather than remember it. */
        snprintf(ext->err_code, sizeof ext->err_code, "%s", cc.ext.err_code);
        snprintf(ext->err_msg, sizeof ext->err_msg, "%s", cc.ext.err_msg);
        ext->err_status = cc.ext.err_status;
        c->ctx_gen = NULL;
        ah_generation_release(gen);
        return -1;
    }
    if (r != AH_OK) {
        c->ctx_failed = true;
        snprintf(c->ctx_error, sizeof c->ctx_error, "%.40s: cannot open connection %.64s/%.64s: %.300s",
                 gen->name, c->tenant, c->name,
                 cc.ext.err_msg[0] ? cc.ext.err_msg : "open() failed without a reason");
        ah_log(&core->log, AH_LOG_WARN, "core", "%s", c->ctx_error);
        snprintf(ext->err_code, sizeof ext->err_code, "%s",
                 cc.ext.err_code[0] ? cc.ext.err_code : "connection_unavailable");
        snprintf(ext->err_msg, sizeof ext->err_msg, "%s", c->ctx_error);
        ext->err_status = cc.ext.err_status ? cc.ext.err_status : 503;
        return -1;
    }
    c->ctx = ctx;
    return 0;
}

static void reply_from_ext(ah_reply *r, const ah_call_ext *ext)
{
    const char *code = ext->err_code[0] ? ext->err_code : AH_E_PLUGIN;
    int status = ext->err_status ? ext->err_status : ah_http_status_for_code(code);
    ah_reply_error(r, code, status, "%s",
                   ext->err_msg[0] ? ext->err_msg : "the plugin failed without a reason");
}

static bool topic_is_stream(const ah_topic *t)
{
    return strcmp(t->capability, "streaming") == 0;
}

/* Keeps write `operation` of `topic` on c, whose outcome is unknown, for
 * the connection's next sync to settle (AH_WRITE_OUTCOME_TYPE): raw
 * {"topic","request"} (the request without data_base64). 0 when kept. */
static int keep_write(ah_core *core, ah_conn *c, const char *topic, const char *operation,
                      const cJSON *body)
{
    cJSON *raw = cJSON_CreateObject(), *fields = cJSON_CreateObject();
    cJSON *req = body != NULL ? cJSON_Duplicate(body, 1) : cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(req, "data_base64");
    bool ok = raw != NULL && fields != NULL && req != NULL &&
              cJSON_AddStringToObject(raw, "topic", topic) != NULL &&
              cJSON_AddItemToObject(raw, "request", req) &&
              cJSON_AddStringToObject(fields, "state", "unknown") != NULL &&
              cJSON_AddStringToObject(fields, "topic", topic) != NULL &&
              cJSON_AddStringToObject(fields, "operation", operation) != NULL;
    if (!ok && (raw == NULL || !cJSON_HasObjectItem(raw, "request")))
        cJSON_Delete(req);
    char *rt = ok ? cJSON_PrintUnformatted(raw) : NULL;
    char *ft = ok ? cJSON_PrintUnformatted(fields) : NULL;
    cJSON_Delete(raw);
    cJSON_Delete(fields);
    char now[32];
    ah_iso_in(0, now);
    ah_record_in in = {AH_WRITE_OUTCOME_TYPE, operation, now, rt, ft};
    int rc = rt != NULL && ft != NULL &&
                     core->store->ops->records_upsert(core->store, c->id, &in, 1, NULL, NULL,
                                                      NULL, NULL) == AH_STORE_OK
                 ? 0
                 : -1;
    if (rc != 0)
        ah_log(&core->log, AH_LOG_WARN, "core",
               "%s/%s: cannot keep %s (operation %s) for the next sync to settle", c->tenant,
               c->name, topic, operation);
    free(rt);
    free(ft);
    return rc;
}

/* A write that answered outcome_unknown and whose plugin declares how to
 * settle it later: kept as a record of its connection for the next sync
 * (keep_write), and the reply carries the operation (r->operation; the
 * REST answer's error.operation, the Idempotency-Key's and the bulk item's
 * stored operation) so that whoever holds the answer can find how it
 * ended. The message names it too, for people. */
static void keep_unknown(ah_core *core, ah_conn *c, ah_generation *gen, const ah_msg *m,
                         ah_reply *r)
{
    if (strcmp(r->code, AH_E_OUTCOME_UNKNOWN) != 0 || m->correlation_id == NULL ||
        m->correlation_id[0] == '\0' || strlen(m->correlation_id) >= sizeof r->operation)
        return;
    const ah_op_write *w = ah_router_write_decl(gen->desc, m->topic);
    if (w == NULL || w->settle == NULL)
        return;
    if (keep_write(core, c, m->topic, m->correlation_id, m->body) != 0)
        return;
    snprintf(r->operation, sizeof r->operation, "%s", m->correlation_id);
    char *msg = NULL;
    if (asprintf(&msg, "%s " AH_OPERATION_TAG "%s: the connection's next sync settles it)",
                 r->message != NULL ? r->message : "the outcome is unknown",
                 m->correlation_id) >= 0) {
        free(r->message);
        r->message = msg;
    }
}

/* A call that sent a write which may have reached its provider (cc->wrote)
 * and then ended with its plugin process's crash (503 plugin_crashed, "not
 * done, retry") did not leave the provider untouched: the answer becomes
 * 502 outcome_unknown, which no caller retries blindly and an
 * Idempotency-Key keeps (a 503 releases it: the retry would have written
 * again). keep_unknown then keeps it for settling when the plugin can. A
 * 503 or 429 of the plugin's own is its word (it may have read the
 * provider back and found the write not done) and stays. */
static void unknown_after_write(const ah_core_call *cc, const ah_msg *m, ah_reply *r)
{
    if (!cc->wrote || strcmp(r->code, AH_E_PLUGIN_CRASHED) != 0)
        return;
    char code[sizeof r->code];
    snprintf(code, sizeof code, "%s", r->code);
    char *msg = NULL;
    if (asprintf(&msg, "%s: %s; a write of this call had reached the provider (request %s): "
                 "its outcome is unknown, not sent again", code,
                 r->message != NULL ? r->message : "",
                 m->correlation_id != NULL ? m->correlation_id : "-") < 0)
        msg = NULL;
    free(r->message);
    r->message = msg;
    snprintf(r->code, sizeof r->code, "%s", AH_E_OUTCOME_UNKNOWN);
    r->http_status = 502;
}

/* applications.bulk_reject answers item by item ({"results":
 * [{"application_id","ok","error"?}]}), so one of its items can end
 * outcome_unknown inside a successful reply. Such an item is kept as the
 * applications.reject it was ({"application_id","reason_id"}), when the
 * plugin settles those, under operation "<correlation id>.<index>"; its
 * result then names the operation ("operation", and in its message). */
static void keep_unknown_items(ah_core *core, ah_conn *c, ah_generation *gen, const ah_msg *m,
                               ah_reply *r)
{
    if (strcmp(m->topic, "applications.bulk_reject") != 0 || m->correlation_id == NULL ||
        m->correlation_id[0] == '\0' || !cJSON_IsObject(r->body))
        return;
    const ah_op_write *w = ah_router_write_decl(gen->desc, "applications.reject");
    if (w == NULL || w->settle == NULL)
        return;
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(m->body, "reason_id");
    cJSON *results = cJSON_GetObjectItemCaseSensitive(r->body, "results");
    cJSON *it;
    int idx = -1;
    cJSON_ArrayForEach(it, results)
    {
        idx++;
        cJSON *e = cJSON_GetObjectItemCaseSensitive(it, "error");
        const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "code"));
        const cJSON *app = cJSON_GetObjectItemCaseSensitive(it, "application_id");
        if (code == NULL || strcmp(code, AH_E_OUTCOME_UNKNOWN) != 0 || app == NULL ||
            reason == NULL || cJSON_HasObjectItem(it, "operation"))
            continue;
        char op[96];
        snprintf(op, sizeof op, "%s.%d", m->correlation_id, idx);
        cJSON *req = cJSON_CreateObject();
        bool ok = req != NULL &&
                  cJSON_AddItemToObject(req, "application_id", cJSON_Duplicate(app, 1)) &&
                  cJSON_AddItemToObject(req, "reason_id", cJSON_Duplicate(reason, 1));
        if (ok && keep_write(core, c, "applications.reject", op, req) == 0 &&
            cJSON_AddStringToObject(it, "operation", op) != NULL) {
            const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message"));
            char *nm = NULL;
            if (asprintf(&nm, "%s " AH_OPERATION_TAG "%s: the connection's next sync settles it)",
                         msg != NULL ? msg : "the outcome is unknown", op) >= 0) {
                cJSON_ReplaceItemInObjectCaseSensitive(e, "message", cJSON_CreateString(nm));
                free(nm);
            }
        }
        cJSON_Delete(req);
    }
}

int ah_core_settle(ah_core *core, ah_conn *c, const char *topic, const char *correlation_id,
                   const cJSON *body, ah_reply *r)
{
    memset(r, 0, sizeof *r);
    if (!c->enabled) {
        ah_reply_error(r, "connection_disabled", 409, "connection %s/%s is disabled", c->tenant,
                       c->name);
        return -1;
    }
    ah_generation *gen = ah_registry_acquire(core->registry, c->plugin);
    if (gen == NULL) {
        ah_reply_error(r, "plugin_not_loaded", 503, "plugin '%s' is not loaded", c->plugin);
        return -1;
    }
    const ah_op_write *w = ah_router_write_decl(gen->desc, topic);
    if (w == NULL || w->settle == NULL) {
        ah_reply_error(r, AH_E_UNSUPPORTED, 501, "plugin '%s' cannot settle %s", c->plugin,
                       topic);
        ah_generation_release(gen);
        return -1;
    }
    pthread_mutex_lock(&c->call_lock);
    ah_core_call cc;
    ah_core_call_init(&cc, core, gen, c, topic, correlation_id);
    if (ah_conn_ensure_open(core, c, gen, &cc.ext) != 0) {
        reply_from_ext(r, &cc.ext);
    } else {
        cc.ext.call.conn_ctx = c->ctx;
        cJSON *out = NULL;
        atomic_fetch_add(&gen->inflight, 1);
        ah_result res = ah_generation_settle(gen, w, &cc.ext.call, body, &out);
        atomic_fetch_sub(&gen->inflight, 1);
        if (res == AH_OK) {
            r->ok = true;
            r->body = out != NULL ? out : cJSON_CreateObject();
        } else {
            cJSON_Delete(out);
            reply_from_ext(r, &cc.ext);
        }
    }
    ah_core_call_done(&cc);
    pthread_mutex_unlock(&c->call_lock);
    ah_generation_release(gen);
    return r->ok ? 0 : -1;
}

/* The bus handler: the router. Runs on a worker; the lane is the
 * connection id, so calls for one connection arrive in order. */
static void core_dispatch(void *arg, const ah_msg *m, ah_reply *r)
{
    ah_core *core = arg;
    const ah_topic *t = ah_router_topic(m->topic);
    if (t == NULL) {
        ah_reply_error(r, "unknown_topic", 404, "no such topic '%s'", m->topic);
        return;
    }
    ah_conn *c = ah_conn_by_id(core, (int64_t)m->lane);
    if (c == NULL) {
        ah_reply_error(r, AH_E_NOT_FOUND, 404, "connection no longer exists");
        return;
    }
    if (!c->enabled) {
        ah_reply_error(r, "connection_disabled", 409, "connection %s/%s is disabled",
                       c->tenant, c->name);
        ah_conn_release(c);
        return;
    }
    ah_generation *gen = ah_registry_acquire(core->registry, c->plugin);
    if (gen == NULL) {
        ah_reply_error(r, "plugin_not_loaded", 503, "plugin '%s' is not loaded", c->plugin);
        ah_conn_release(c);
        return;
    }
    ah_op_fn fn = ah_router_resolve(gen->desc, t);
    if (fn == NULL) {
        ah_reply_error(r, AH_E_UNSUPPORTED, 501, "plugin '%s' does not support %s",
                       c->plugin, m->topic);
        ah_generation_release(gen);
        ah_conn_release(c);
        return;
    }
    /* The one place every producer (REST, CLI, admin API, inbound routes,
     * syncs) passes through: a body of the wrong shape never reaches the
     * plugin. Without a table for the topic the plugin checks alone. */
    const ah_field_spec *fields = ah_opfields_find(gen->desc, m->topic);
    char why[512];
    if (fields != NULL && ah_opfields_validate(fields, m->topic, m->body, why, sizeof why) != 0) {
        ah_reply_error(r, AH_E_INVALID, 400, "%s", why);
        ah_generation_release(gen);
        ah_conn_release(c);
        return;
    }
    pthread_mutex_lock(&c->call_lock);
    ah_core_call cc;
    ah_core_call_init(&cc, core, gen, c, m->topic, m->correlation_id);
    if (ah_conn_ensure_open(core, c, gen, &cc.ext) != 0) {
        reply_from_ext(r, &cc.ext);
    } else {
        cc.ext.call.conn_ctx = c->ctx;
        if (topic_is_stream(t))
            cc.records = ah_recbuf_new();
        cJSON *out = NULL;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        atomic_fetch_add(&gen->inflight, 1);
        ah_result res = ah_generation_call(gen, fn, &cc.ext.call, m->body, &out);
        atomic_fetch_sub(&gen->inflight, 1);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ah_metrics_call(core->metrics, gen->name, m->topic, res == AH_OK,
                        (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
        if (res == AH_OK) {
            r->ok = true;
            r->body = out != NULL ? out : cJSON_CreateObject();
            keep_unknown_items(core, c, gen, m, r);
            if (cc.records != NULL && m->target == AH_RECORDS_AS_TEXT) {
                r->attachment = cc.records;
                r->attachment_free = ah_recbuf_free_v;
                cc.records = NULL;
            } else if (cc.records != NULL && cJSON_IsObject(r->body)) {
                cJSON *arr = ah_recbuf_to_json(cc.records);
                if (arr == NULL || !cJSON_AddItemToObject(r->body, "records", arr)) {
                    cJSON_Delete(arr);
                    ah_reply_free(r);
                    ah_reply_error(r, AH_E_INTERNAL, 500, "out of memory");
                }
            }
        } else {
            cJSON_Delete(out);
            reply_from_ext(r, &cc.ext);
            unknown_after_write(&cc, m, r);
            keep_unknown(core, c, gen, m, r);
        }
    }
    ah_core_call_done(&cc);
    pthread_mutex_unlock(&c->call_lock);
    ah_generation_release(gen);
    ah_conn_release(c);
}

int ah_core_request(ah_core *core, const char *tenant, const char *connection,
                    const char *topic, cJSON *body, ah_reply *reply)
{
    ah_conn *c = ah_conn_find(core, tenant, connection);
    if (c == NULL) {
        cJSON_Delete(body);
        memset(reply, 0, sizeof(*reply));
        ah_reply_error(reply, AH_E_NOT_FOUND, 404, "tenant '%s' has no connection '%s'",
                       tenant, connection);
        return -1;
    }
    uint64_t lane = (uint64_t)c->id, t = (uint64_t)c->tenant_id;
    ah_conn_release(c);
    return ah_bus_request_tenant(core->bus, t, lane, NULL, topic, body, 0, reply);
}

int ah_core_request_async(ah_core *core, const char *tenant, const char *connection,
                          const char *topic, cJSON *body, ah_reply_cb cb, void *cb_arg)
{
    return ah_core_request_async_gated(core, tenant, connection, topic, body, cb, cb_arg, NULL);
}

int ah_core_request_async_gated(ah_core *core, const char *tenant, const char *connection,
                                const char *topic, cJSON *body, ah_reply_cb cb, void *cb_arg,
                                ah_bus_gate *gate)
{
    ah_conn *c = ah_conn_find(core, tenant, connection);
    if (c == NULL) {
        cJSON_Delete(body);
        ah_reply r;
        ah_reply_error(&r, AH_E_NOT_FOUND, 404, "tenant '%s' has no connection '%s'", tenant,
                       connection);
        cb(cb_arg, &r);
        return -1;
    }
    uint64_t lane = (uint64_t)c->id, t = (uint64_t)c->tenant_id;
    ah_conn_release(c);
    return ah_bus_request_async_gated(core->bus, t, lane, NULL, topic, body, cb, cb_arg, gate);
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */
/* ------------------------------------------------------------------------ */

ah_core *ah_core_of_host(const ah_host_api *host)
{
    return (ah_core *)((char *)host - offsetof(ah_core, host));
}

/* The plugins the connections of one tenant use (ah_core_opts.only_tenant). */
typedef struct tenant_plugins {
    const char *tenant; /* NULL: every plugin */
    char **names;
    size_t n, cap;
    bool oom;
} tenant_plugins;

static bool tenant_plugins_has(const tenant_plugins *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->names[i], name) == 0)
            return true;
    return false;
}

static void collect_tenant_plugin(void *arg, ah_conn *c)
{
    tenant_plugins *t = arg;
    if (t->oom || strcmp(c->tenant, t->tenant) != 0 || tenant_plugins_has(t, c->plugin))
        return;
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 4;
        char **nn = realloc(t->names, nc * sizeof *nn);
        if (nn == NULL) {
            t->oom = true;
            return;
        }
        t->names = nn;
        t->cap = nc;
    }
    if ((t->names[t->n] = strdup(c->plugin)) == NULL) {
        t->oom = true;
        return;
    }
    t->n++;
}

static void tenant_plugins_free(tenant_plugins *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->names[i]);
    free(t->names);
    t->names = NULL;
    t->n = t->cap = 0;
}

ah_core *ah_core_open(ah_config *cfg, const ah_core_opts *opts, char *err, size_t errlen)
{
    ah_core *core = calloc(1, sizeof(*core));
    if (core == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    core->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    core->log.level = (ah_log_level)core->cfg.log_level;
    core->log.json = core->cfg.log_json;
    pthread_mutex_init(&core->tick_lock, NULL);
    pthread_cond_init(&core->tick_cond, NULL);
    pthread_mutex_init(&core->ops_lock, NULL);
    ah_host_api_init(&core->host);
    core->metrics = ah_metrics_new();

    if (ah_host_key_load(core->cfg.key_file, core->host_key, err, errlen) != 0)
        goto fail;
    core->store = ah_store_open(core->cfg.store_url, &core->log, err, errlen);
    if (core->store == NULL)
        goto fail;
    if (core->store->ops->migrate(core->store) != 0) {
        char safe[512]; /* a postgresql:// URL may carry a password */
        ah_store_url_scrub(core->cfg.store_url, safe, sizeof safe);
        /* A newer atshub migrated it (another instance already upgraded):
         * this one must not run on tables it does not know. */
        int have = core->store->ops->schema_version(core->store);
        int known = strcmp(core->store->ops->name, "sqlite") == 0
                        ? ah_store_sqlite_latest_version()
                        : ah_store_pg_latest_version();
        if (have > known)
            snprintf(err, errlen, "%s: the database's schema is version %d, newer than this "
                     "atshub (%s) knows (%d): upgrade atshub to run it on this database",
                     safe, have, AH_VERSION, known);
        else
            snprintf(err, errlen, "%s: schema migration failed (see the log above)", safe);
        goto fail;
    }
    core->conns = ah_conns_new();
    core->registry = ah_registry_new(&core->host);
    ah_httpc_opts ho = {
        .timeout_ms = core->cfg.http_timeout_ms,
        .max_attempts = core->cfg.http_max_attempts,
        .backoff_ms = core->cfg.http_backoff_ms,
        .backoff_max_ms = core->cfg.http_backoff_max_ms,
    };
    core->httpc = ah_httpc_new(&ho);
    core->oauth2 = core->httpc != NULL ? ah_oauth2_new(core->httpc, NULL, NULL) : NULL;
    core->ratelimit = ah_ratelimit_new();
    core->tenantlimit = ah_tenantlimit_new(core->cfg.http_tenant_rate, core->cfg.http_tenant_burst);
    core->intlog_guard = ah_intlog_guard_new();
    if (core->conns == NULL || core->registry == NULL || core->httpc == NULL ||
        core->oauth2 == NULL || core->metrics == NULL || core->ratelimit == NULL ||
        core->tenantlimit == NULL || core->intlog_guard == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    tenant_plugins only = {.tenant = opts->only_tenant};
    if (opts->load_plugins && opts->only_tenant != NULL) {
        /* The connections first (they need no plugin), for their plugins. */
        if (ah_conns_reload(core) != 0) {
            snprintf(err, errlen, "cannot load tenants and connections from the store");
            goto fail;
        }
        ah_conns_each(core, NULL, collect_tenant_plugin, &only);
        if (only.oom) {
            snprintf(err, errlen, "out of memory");
            tenant_plugins_free(&only);
            goto fail;
        }
    }
    if (opts->load_plugins) {
        for (size_t i = 0; i < core->cfg.nplugins; i++) {
            const ah_plugin_conf *p = &core->cfg.plugins[i];
            if (only.tenant != NULL && !tenant_plugins_has(&only, p->name))
                continue;
            char lerr[1024];
            ah_plugin_iso_conf pic;
            ah_config_plugin_iso_resolve(&core->cfg, p->name, &pic);
            const ah_plugin_iso_conf *pi = &pic;
            if (pi->isolation == AH_ISOLATION_PROCESS) {
                ah_isolate_opts io;
                ah_core_isolate_opts(&core->cfg, pi, &io);
                if (ah_registry_set_isolation(core->registry, p->name, &io) != 0) {
                    snprintf(err, errlen, "out of memory");
                    goto fail;
                }
            }
            if (ah_registry_load(core->registry, p->name, p->path, lerr, sizeof lerr) < 0) {
                snprintf(err, errlen, "%s:%d: plugin '%s': %s", core->cfg.path ? core->cfg.path : "config",
                         p->line, p->name, lerr);
                tenant_plugins_free(&only);
                goto fail;
            }
        }
    }
    tenant_plugins_free(&only);
    /* Loaded already for only_tenant (no plugin was needed for it). */
    if (!(opts->load_plugins && opts->only_tenant != NULL) && ah_conns_reload(core) != 0) {
        snprintf(err, errlen, "cannot load tenants and connections from the store");
        goto fail;
    }
    if (opts->start_bus) {
        ah_bus_opts bo = {
            .workers = core->cfg.workers,
            .handler = core_dispatch,
            .handler_arg = core,
            .default_timeout_ms = core->cfg.request_timeout_ms,
            .tenant_share = core->cfg.tenant_workers,
            .provider_threads = core->cfg.provider_threads,
        };
        core->bus = ah_bus_new(&bo);
        if (core->bus == NULL || ah_events_init(core) != 0) {
            snprintf(err, errlen, "cannot start the message bus");
            goto fail;
        }
    }
    return core;
fail:
    ah_core_close(core);
    return NULL;
}

void ah_core_close(ah_core *core)
{
    if (core == NULL)
        return;
    if (core->bus != NULL)
        ah_bus_free(core->bus);
    /* Connections hold plugin contexts: close them before the plugins go. */
    ah_conns_free(core->conns);
    ah_registry_free(core->registry);
    ah_oauth2_free(core->oauth2);
    ah_httpc_free(core->httpc);
    if (core->store != NULL)
        core->store->ops->close(core->store);
    explicit_bzero(core->host_key, sizeof core->host_key);
    pthread_mutex_destroy(&core->tick_lock);
    pthread_cond_destroy(&core->tick_cond);
    ah_metrics_free(core->metrics);
    ah_ratelimit_free(core->ratelimit);
    ah_tenantlimit_free(core->tenantlimit);
    ah_intlog_guard_free(core->intlog_guard);
    pthread_mutex_destroy(&core->ops_lock);
    ah_config_free(&core->cfg);
    free(core);
}

/* ------------------------------------------------------------------------ */
/* Plugin listing                                                            */
/* ------------------------------------------------------------------------ */

static const char *setting_type_name(ah_setting_type t)
{
    switch (t) {
    case AH_SET_STRING: return "string";
    case AH_SET_INT: return "int";
    case AH_SET_BOOL: return "bool";
    case AH_SET_URL: return "url";
    case AH_SET_LIST: return "list";
    }
    return "?";
}

typedef struct plugins_walk {
    cJSON *list;
    const char *only;
} plugins_walk;

static void plugin_json(void *arg, const ah_generation *gen)
{
    plugins_walk *w = arg;
    const ah_plugin_descriptor *d = gen->desc;
    if (w->only != NULL && strcmp(w->only, gen->name) != 0)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", d->name);
    cJSON_AddStringToObject(o, "version", d->version);
    char abi[32];
    snprintf(abi, sizeof abi, "%u.%u", (unsigned)d->abi_major, (unsigned)d->abi_minor);
    cJSON_AddStringToObject(o, "abi", abi);
    cJSON_AddNumberToObject(o, "generation", gen->number);
    cJSON_AddNumberToObject(o, "inflight", (double)atomic_load(&gen->inflight));
    cJSON_AddStringToObject(o, "path", gen->path);
    cJSON_AddStringToObject(o, "description", d->description ? d->description : "");
    cJSON_AddStringToObject(o, "isolation", gen->iso != NULL ? "process" : "in_process");
    if (gen->iso != NULL)
        cJSON_AddItemToObject(o, "process", ah_isolate_json(gen->iso));
    cJSON *cov = cJSON_AddObjectToObject(o, "coverage");
    size_t ncap;
    const char *const *caps = ah_router_capabilities(&ncap);
    for (size_t i = 0; i < ncap; i++) {
        int served, total;
        ah_router_coverage(d, caps[i], &served, &total);
        char v[16];
        snprintf(v, sizeof v, "%d/%d", served, total);
        cJSON_AddStringToObject(cov, caps[i], v);
    }
    cJSON *routes = cJSON_AddArrayToObject(o, "routes");
    for (const ah_route *r = d->routes; r != NULL && r->method != NULL; r++) {
        char v[600];
        snprintf(v, sizeof v, "%s %s", r->method, r->path);
        cJSON_AddItemToArray(routes, cJSON_CreateString(v));
    }
    cJSON *subs = cJSON_AddArrayToObject(o, "subscriptions");
    for (const ah_subscription *s = d->subscriptions; s != NULL && s->pattern != NULL; s++)
        cJSON_AddItemToArray(subs, cJSON_CreateString(s->pattern));
    if (w->only != NULL) {
        cJSON *set = cJSON_AddArrayToObject(o, "settings");
        for (const ah_setting_spec *s = d->settings; s != NULL && s->key != NULL; s++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "key", s->key);
            cJSON_AddStringToObject(e, "type", setting_type_name(s->type));
            if (s->default_value != NULL)
                cJSON_AddStringToObject(e, "default", s->default_value);
            else
                cJSON_AddNullToObject(e, "default");
            cJSON_AddBoolToObject(e, "required", (s->flags & AH_SETTING_REQUIRED) != 0);
            cJSON_AddBoolToObject(e, "secret", (s->flags & (AH_SETTING_SECRET | AH_SETTING_GENERATED |
                                                            AH_SETTING_HASHED)) != 0);
            cJSON_AddBoolToObject(e, "generated", (s->flags & AH_SETTING_GENERATED) != 0);
            cJSON_AddStringToObject(e, "help", s->help ? s->help : "");
            cJSON_AddItemToArray(set, e);
        }
    }
    cJSON_AddItemToArray(w->list, o);
}

cJSON *ah_core_plugins_json(ah_core *core, const char *settings_of)
{
    plugins_walk w = {cJSON_CreateArray(), settings_of};
    if (w.list == NULL)
        return NULL;
    ah_registry_each(core->registry, plugin_json, &w);
    if (settings_of != NULL && cJSON_GetArraySize(w.list) == 0) {
        cJSON_Delete(w.list);
        return NULL;
    }
    return w.list;
}

/* ------------------------------------------------------------------------ */
/* Operation field tables                                                    */
/* ------------------------------------------------------------------------ */

cJSON *ah_core_plugin_ops_json(ah_core *core, const char *name)
{
    ah_generation *gen = name != NULL ? ah_registry_acquire(core->registry, name) : NULL;
    if (gen == NULL)
        return NULL;
    const ah_plugin_descriptor *d = gen->desc;
    cJSON *o = cJSON_CreateObject();
    cJSON *ops = ah_opfields_json(d);
    cJSON *unchecked = cJSON_CreateArray();
    bool ok = o != NULL && ops != NULL && unchecked != NULL &&
              cJSON_AddStringToObject(o, "name", d->name) != NULL &&
              cJSON_AddStringToObject(o, "version", d->version) != NULL &&
              cJSON_AddStringToObject(o, "description",
                                      d->description ? d->description : "") != NULL;
    size_t n = 0;
    const ah_topic *t = ah_router_topics(&n);
    for (size_t i = 0; ok && i < n; i++)
        if (ah_router_resolve(d, &t[i]) != NULL && ah_opfields_find(d, t[i].topic) == NULL)
            ok = cJSON_AddItemToArray(unchecked, cJSON_CreateString(t[i].topic));
    if (ok && cJSON_AddItemToObject(o, "ops", ops)) {
        ops = NULL;
        if (cJSON_AddItemToObject(o, "unchecked", unchecked))
            unchecked = NULL;
        else
            ok = false;
    } else {
        ok = false;
    }
    cJSON_Delete(ops);
    cJSON_Delete(unchecked);
    ah_generation_release(gen);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void collect_name(void *arg, const ah_generation *gen)
{
    cJSON_AddItemToArray(arg, cJSON_CreateString(gen->name));
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *ah_core_openapi_bus(ah_core *core, const char *only)
{
    /* Plugin names sorted, so that the section does not depend on the
     * configuration's order. */
    cJSON *names = cJSON_CreateArray();
    if (names == NULL)
        return NULL;
    if (only != NULL)
        cJSON_AddItemToArray(names, cJSON_CreateString(only));
    else
        ah_registry_each(core->registry, collect_name, names);
    int n = cJSON_GetArraySize(names);
    const char **sorted = calloc((size_t)n + 1, sizeof *sorted);
    char *buf = NULL;
    size_t len = 0;
    bool ok = sorted != NULL;
    for (int i = 0; ok && i < n; i++) {
        sorted[i] = cJSON_GetStringValue(cJSON_GetArrayItem(names, i));
        ok = sorted[i] != NULL;
    }
    if (ok)
        qsort(sorted, (size_t)n, sizeof *sorted, by_name);
    char *head = NULL;
    ok = ok && asprintf(&head, "%s\n", AH_OPFIELDS_BEGIN) > 0;
    if (ok) {
        buf = head;
        len = strlen(head);
    }
    for (int i = 0; ok && i < n; i++) {
        ah_generation *gen = ah_registry_acquire(core->registry, sorted[i]);
        if (gen == NULL) {
            ok = false;
            break;
        }
        ok = ah_opfields_openapi(gen->desc, &buf, &len) == 0;
        ah_generation_release(gen);
    }
    char *out = NULL;
    if (ok && buf != NULL && asprintf(&out, "%s%s\n", buf, AH_OPFIELDS_END) < 0)
        out = NULL;
    free(buf);
    free(sorted);
    cJSON_Delete(names);
    return out;
}
