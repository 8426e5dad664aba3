/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP surfaces of the host: the unified REST API under /v1 (tenant
 * authentication by bearer API key) and the inbound routes plugins declare,
 * each call recorded in the integration log.
 */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "committer.h"
#include "conns.h"
#include "rest.h"
#include "core.h"
#include "hostapi.h"
#include "intlog.h"
#include "tenantlimit.h"

/* ------------------------------------------------------------------------ */
/* /v1                                                                       */
/* ------------------------------------------------------------------------ */

/* The tenant ah_rest_offload authenticated, for the handler it runs (on
 * this thread, for that exchange only): its ah_rest_tenant takes no second
 * token of the tenant's budget. */
typedef struct rest_authed {
    const ah_http_exchange *ex;
    int64_t id;
    char name[128];
} rest_authed;
static _Thread_local const rest_authed *rest_auth;

int64_t ah_rest_tenant(ah_core *core, ah_http_exchange *ex, char *name, size_t len)
{
    if (rest_auth != NULL && rest_auth->ex == ex) {
        if (name != NULL && len > 0)
            snprintf(name, len, "%s", rest_auth->name);
        return rest_auth->id;
    }
    const char *auth = ah_ex_header(ex, "Authorization");
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0') {
        ah_ex_add_header(ex, "WWW-Authenticate", "Bearer");
        ah_ex_error(ex, 401, "unauthorized", "send the tenant API key as 'Authorization: Bearer <key>'");
        return -1;
    }
    int64_t id = ah_conns_tenant_by_key(core, auth + 7, name, len);
    if (id < 0) {
        ah_ex_add_header(ex, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
        ah_ex_error(ex, 401, "unauthorized", "the API key is not valid");
        return -1;
    }
    /* The per-tenant counters of the console's charts (metrics.h). */
    if (name != NULL && len > 0)
        ah_ex_set_tag(ex, name);
    /* Every /v1 handler authenticates here, so this one check budgets them
     * all; only a valid key takes a token, so nobody can spend another
     * tenant's budget. Refused at once, never delayed: a waiting request
     * would hold a server thread that other tenants need. */
    if (!ah_rest_budget(core, ex, id, name != NULL && len > 0 ? name : NULL, true))
        return -1;
    return id;
}

bool ah_rest_budget(ah_core *core, ah_http_exchange *ex, int64_t id, const char *name, bool take)
{
    unsigned retry = 0;
    if (take ? ah_tenantlimit_take(core->tenantlimit, id, &retry)
             : ah_tenantlimit_check(core->tenantlimit, id, &retry))
        return true;
    char secs[16];
    snprintf(secs, sizeof secs, "%u", retry);
    if (ah_ex_add_header(ex, "Retry-After", secs) != 0)
        ah_log(&core->log, AH_LOG_WARN, "rest", "cannot add Retry-After to a 429");
    ah_ex_error(ex, 429, "rate_limited",
                "tenant '%s' is over its request rate (%u/s, bursts of %u); retry after %u s",
                name != NULL ? name : "?", core->cfg.http_tenant_rate,
                core->cfg.http_tenant_burst, retry);
    return false;
}

/* A /v1 request waiting for a bus worker (ah_rest_offload). */
typedef struct rest_job {
    ah_core *core;
    ah_http_exchange *ex;
    ah_ex_pending *p;
    ah_http_handler fn;
    rest_authed auth;
} rest_job;

static void rest_job_run(void *arg)
{
    rest_job *j = arg;
    rest_auth = &j->auth;
    j->fn(j->core, j->ex);
    rest_auth = NULL;
    ah_ex_detach_finish(j->ex, j->p); /* the answer goes out */
    free(j);
}

/* Bus lanes of route calls and /v1 requests (see plugin_route). */
#define ROUTE_LANE_CONN (UINT64_C(1) << 62)
#define ROUTE_LANE_CALL (UINT64_C(3) << 62)
#define ROUTE_GROUP_ADDR (UINT64_C(2) << 62)
static atomic_uint_fast64_t route_calls;

/* A lane of its own for one call. */
static uint64_t call_lane(void)
{
    return ROUTE_LANE_CALL | (atomic_fetch_add(&route_calls, 1) & ~ROUTE_LANE_CALL);
}

int ah_rest_run(ah_core *core, int64_t tenant, const char *what, void (*fn)(void *arg),
                void *arg)
{
    if (core->bus == NULL || !core->cfg.http_routes_on_bus)
        return -1;
    return ah_bus_run_tenant(core->bus, (uint64_t)tenant, call_lane(), what, fn, arg);
}

int ah_rest_run_admitted(ah_core *core, int64_t tenant, const char *what,
                         void (*fn)(void *arg), void *arg)
{
    if (core->bus == NULL || !core->cfg.http_routes_on_bus)
        return -1;
    return ah_bus_run_admitted(core->bus, (uint64_t)tenant, call_lane(), what, fn, arg);
}

void ah_rest_offload(ah_core *core, ah_http_exchange *ex, ah_http_handler fn)
{
    rest_job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        ah_ex_error(ex, 503, "overloaded", "out of memory");
        return;
    }
    j->core = core;
    j->ex = ex;
    j->fn = fn;
    j->auth.ex = ex;
    j->auth.id = ah_rest_tenant(core, ex, j->auth.name, sizeof j->auth.name);
    if (j->auth.id < 0) { /* answered 401 or 429 */
        free(j);
        return;
    }
    /* The store query and the printing of its answer run on a bus worker,
     * within the tenant's share of the workers: a busy store or a tenant's
     * many long queries hold no server thread (issue 13). Without a bus
     * (tests, tools), with [http] plugin_routes = inline, or when the
     * request cannot be detached, they run here. */
    if (core->bus != NULL && core->cfg.http_routes_on_bus)
        j->p = ah_ex_detach(ex);
    if (j->p == NULL) {
        rest_auth = &j->auth;
        fn(core, ex);
        rest_auth = NULL;
        free(j);
        return;
    }
    ah_ex_pending *p = j->p;
    if (ah_bus_run_tenant(core->bus, (uint64_t)j->auth.id, call_lane(), ah_ex_path(ex),
                          rest_job_run, j) != 0) {
        free(j);
        (void)ah_ex_release_error(p, 503, "overloaded",
                                  "the host cannot take more work now; retry later");
        ah_ex_detach_end(p);
    }
}

/* GET /v1/health, on the server thread (a load balancer's probe must not
 * queue behind tenants' work). The store is probed with a read, the way
 * /v1 reads it (a reader connection beside the writer, or a pool
 * connection): a long write or group commit holding the writer does not
 * hold the probe, whereas the engine's ping goes through the writer. */
static void rest_health(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    ah_record_row row;
    int rc = core->store->ops->record_get_by_id(core->store, 0, "health-probe", &row);
    if (rc == AH_STORE_OK)
        ah_record_row_free(&row);
    bool store_ok = rc == AH_STORE_OK || rc == AH_STORE_NOT_FOUND;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", store_ok ? "ok" : "degraded");
    cJSON_AddStringToObject(o, "version", AH_VERSION);
    cJSON_AddStringToObject(o, "store", store_ok ? "connected" : "unreachable");
    cJSON_AddNumberToObject(o, "plugins", (double)ah_registry_count(core->registry));
    cJSON_AddNumberToObject(o, "bus_depth", core->bus ? (double)ah_bus_depth(core->bus) : 0);
    ah_ex_respond_json(ex, store_ok ? 200 : 503, o);
}

static void rest_plugins(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    char tenant[128];
    if (ah_rest_tenant(core, ex, tenant, sizeof tenant) < 0)
        return;
    cJSON *list = ah_core_plugins_json(core, NULL);
    /* Where a plugin lives on the host's disk is the operator's business
     * (atshub plugins, /admin/plugins), not a tenant's. */
    cJSON *p;
    cJSON_ArrayForEach(p, list)
        cJSON_DeleteItemFromObjectCaseSensitive(p, "path");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "data", list);
    ah_ex_respond_json(ex, 200, o);
}

/* GET /v1/log?source=&action=&status=&since=&until=&limit=: the calling
 * tenant's integration log, newest first. */
static void rest_log(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    char tenant[128];
    if (ah_rest_tenant(core, ex, tenant, sizeof tenant) < 0)
        return;
    ah_log_filter f = {
        .tenant = tenant,
        .source = ah_ex_query(ex, "source"),
        .action = ah_ex_query(ex, "action"),
        .since = ah_ex_query(ex, "since"),
        .until = ah_ex_query(ex, "until"),
        .limit = 100,
    };
    const char *st = ah_ex_query(ex, "status"), *lim = ah_ex_query(ex, "limit");
    char *end;
    if (st != NULL) {
        long v = strtol(st, &end, 10);
        if (*st == '\0' || *end != '\0' || v < 100 || v > 599) {
            ah_ex_error(ex, 400, AH_E_INVALID, "status must be an HTTP status code");
            return;
        }
        f.status = (int)v;
    }
    if (lim != NULL) {
        long v = strtol(lim, &end, 10);
        if (*lim == '\0' || *end != '\0' || v < 1 || v > 1000) {
            ah_ex_error(ex, 400, AH_E_INVALID, "limit must be between 1 and 1000");
            return;
        }
        f.limit = (int)v;
    }
    /* An action no entry has would answer [] as if none had happened;
     * an empty one means any, as on /admin/log. */
    if (f.action != NULL && *f.action == '\0')
        f.action = NULL;
    if (f.action != NULL && !ah_intlog_action_valid(f.action)) {
        ah_ex_error(ex, 400, AH_E_INVALID, "action must be one of " AH_INTLOG_ACTIONS);
        return;
    }
    /* The store refuses a bound that is not a time as its own failure (a
     * 500 and an error in the log): it is the caller's mistake. */
    char norm[32];
    if (f.since != NULL && ah_iso_normalize(f.since, norm) != 0) {
        ah_ex_error(ex, 400, AH_E_INVALID, "since must be an ISO-8601 date or date-time");
        return;
    }
    if (f.until != NULL && ah_iso_normalize(f.until, norm) != 0) {
        ah_ex_error(ex, 400, AH_E_INVALID, "until must be an ISO-8601 date or date-time");
        return;
    }
    cJSON *list = cJSON_CreateArray();
    if (core->store->ops->log_query(core->store, &f, ah_intlog_entry_json, list) != 0) {
        cJSON_Delete(list);
        ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot read the integration log");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "data", list);
    ah_ex_respond_json(ex, 200, o);
}

static void rest_log_route(void *arg, ah_http_exchange *ex)
{
    ah_rest_offload(arg, ex, rest_log);
}

/* An HTTP request waiting for its bus reply (ah_rest_forward). */
typedef struct rest_fwd {
    ah_ex_pending *pending;
    unsigned flags;
    ah_bus_gate gate; /* lives until rest_fwd_done, which the bus always calls */
} rest_fwd;

/* At the deadline (server thread): whether the bus request never started
 * and now never will. */
static bool rest_fwd_abandon(void *arg)
{
    rest_fwd *f = arg;
    return ah_bus_gate_abandon(&f->gate);
}

/* The bus reply's answer: 200 {"data": reply body} (the body as it is when
 * AH_REST_KEEP_DATA and it has "data"), or the error with its status. On a
 * bus worker, or in the handler when the bus refused. */
static void rest_fwd_done(void *arg, ah_reply *r)
{
    rest_fwd *f = arg;
    if (!r->ok && r->operation[0] != '\0') {
        /* A write kept for settling: the answer names its operation as a
         * field of its own (error.operation), which the Idempotency-Key
         * stores with the answer (idempotency.c). */
        int status = r->http_status ? r->http_status : ah_http_status_for_code(r->code);
        cJSON *o = cJSON_CreateObject();
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        if (e == NULL || cJSON_AddStringToObject(e, "code", r->code) == NULL ||
            cJSON_AddStringToObject(e, "message", r->message != NULL ? r->message : r->code) ==
                NULL ||
            cJSON_AddStringToObject(e, "operation", r->operation) == NULL) {
            cJSON_Delete(o);
            (void)ah_ex_resume_error(f->pending, 500, AH_E_INTERNAL, "out of memory");
        } else {
            (void)ah_ex_resume_json(f->pending, status, o);
        }
    } else if (!r->ok) {
        int status = r->http_status ? r->http_status : ah_http_status_for_code(r->code);
        (void)ah_ex_resume_error(f->pending, status, r->code[0] ? r->code : AH_E_INTERNAL, "%s",
                                 r->message != NULL ? r->message : r->code);
    } else {
        cJSON *data = r->body != NULL ? r->body : cJSON_CreateObject();
        r->body = NULL;
        cJSON *o = NULL;
        if (data != NULL && (f->flags & AH_REST_KEEP_DATA) &&
            cJSON_GetObjectItemCaseSensitive(data, "data") != NULL) {
            o = data;
        } else {
            o = cJSON_CreateObject();
            if (o == NULL || data == NULL || !cJSON_AddItemToObject(o, "data", data)) {
                cJSON_Delete(o);
                cJSON_Delete(data);
                o = NULL;
            }
        }
        if (o == NULL)
            (void)ah_ex_resume_error(f->pending, 500, AH_E_INTERNAL, "out of memory");
        else
            (void)ah_ex_resume_json(f->pending, 200, o);
    }
    ah_reply_free(r);
    free(f);
}

void ah_rest_forward(ah_core *core, ah_http_exchange *ex, const char *tenant,
                     const char *connection, const char *topic, cJSON *body, unsigned flags)
{
    if (body == NULL) {
        ah_ex_error(ex, 500, AH_E_INTERNAL, "out of memory");
        return;
    }
    /* The answer a synchronous request gave when the bus did not reply in
     * time: the same code and words. */
    int timeout_ms = core->cfg.request_timeout_ms > 0 ? core->cfg.request_timeout_ms : 30000;
    char msg[256];
    snprintf(msg, sizeof msg, "no reply to %s within %d ms", topic, timeout_ms);
    rest_fwd *f = calloc(1, sizeof *f);
    if (f == NULL) {
        cJSON_Delete(body);
        ah_ex_error(ex, 500, AH_E_INTERNAL, "out of memory");
        return;
    }
    f->flags = flags;
    /* A request still queued at the deadline (its connection's earlier
     * calls, or its tenant's share, held the workers) is never sent: its
     * answer says so (503 overloaded, retry safe), not 504. */
    char amsg[256];
    snprintf(amsg, sizeof amsg,
             "no worker took the request to %s within %d ms (earlier requests of its "
             "connection or tenant held them): it was not sent to the plugin; retry later",
             topic, timeout_ms);
    f->pending = ah_ex_suspend_abandon(ex, timeout_ms, msg, rest_fwd_abandon, f, amsg);
    if (f->pending == NULL) {
        free(f);
        cJSON_Delete(body);
        ah_ex_error(ex, 500, AH_E_INTERNAL, "out of memory");
        return;
    }
    /* From here ex is the completion's: rest_fwd_done answers, also when
     * the request is refused at once. */
    (void)ah_core_request_async_gated(core, tenant, connection, topic, body, rest_fwd_done, f,
                                      &f->gate);
}

/* POST /v1/bus/{topic}: one bus request to the connection named by the
 * X-Connection header, body as the request body. */
static void rest_bus(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    char tenant[128];
    if (ah_rest_tenant(core, ex, tenant, sizeof tenant) < 0)
        return;
    const char *topic = ah_ex_subpath(ex);
    if (topic == NULL || *topic == '\0' || ah_router_topic(topic) == NULL) {
        ah_ex_error(ex, 404, "unknown_topic", "no such topic '%s'", topic ? topic : "");
        return;
    }
    const char *cname = ah_ex_header(ex, "X-Connection");
    if (cname == NULL || *cname == '\0') {
        ah_ex_error(ex, 400, "missing_connection", "name the connection in the X-Connection header");
        return;
    }
    cJSON *body;
    size_t len = 0;
    ah_ex_body(ex, &len);
    if (len == 0) {
        body = cJSON_CreateObject();
    } else {
        const cJSON *j = ah_ex_json(ex);
        if (j == NULL)
            return; /* answered 400 */
        if (!cJSON_IsObject(j)) {
            ah_ex_error(ex, 400, AH_E_INVALID, "the request body must be a JSON object");
            return;
        }
        body = cJSON_Duplicate(j, 1);
    }
    /* The plugin may take long: the request waits suspended, not on this
     * thread. */
    ah_rest_forward(core, ex, tenant, cname, topic, body, 0);
}

/* ------------------------------------------------------------------------ */
/* Plugin routes                                                             */
/* ------------------------------------------------------------------------ */

typedef struct ah_route_binding {
    ah_core *core;
    char *plugin;
    char *method;
    char *path; /* as declared */
} ah_route_binding;

static const ah_route *find_route(const ah_generation *gen, const ah_route_binding *b)
{
    for (const ah_route *r = gen->desc->routes; r != NULL && r->method != NULL; r++)
        if (strcmp(r->method, b->method) == 0 && strcmp(r->path, b->path) == 0)
            return r;
    return NULL;
}

/* The path as logged: a token route's token (everything after the declared
 * prefix, which is how the host resolved the connection) becomes "***", so
 * that no log entry ever holds what opens the route. malloc'd. */
static char *logged_path(ah_http_exchange *ex, const ah_route *r)
{
    const char *path = ah_ex_path(ex), *sub = ah_ex_subpath(ex);
    size_t plen = strlen(path), slen = sub != NULL ? strlen(sub) : 0;
    char *out = NULL;
    if ((r->flags & AH_ROUTE_CONN_TOKEN) && slen > 0 && slen <= plen) {
        if (asprintf(&out, "%.*s***", (int)(plen - slen), path) < 0)
            out = NULL;
    } else {
        out = strdup(path);
    }
    return out;
}

/* text with every occurrence of secret replaced by "***" (a plugin may echo
 * the token under a key that does not look secret, e.g. a callback URL).
 * malloc'd; NULL when text is NULL or out of memory. */
static char *scrub(const char *text, const char *secret)
{
    if (text == NULL)
        return NULL;
    size_t sl = secret != NULL ? strlen(secret) : 0;
    if (sl == 0)
        return strdup(text);
    size_t n = 0;
    for (const char *p = strstr(text, secret); p != NULL; p = strstr(p + sl, secret))
        n++;
    char *out = malloc(strlen(text) + n * 3 + 1), *o = out;
    if (out == NULL)
        return NULL;
    const char *p = text, *hit;
    while ((hit = strstr(p, secret)) != NULL) {
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        memcpy(o, "***", 3);
        o += 3;
        p = hit + sl;
    }
    strcpy(o, p);
    return out;
}

/* Writes the route's log entries. For an atomic route they join its store
 * scope (opened here if the handler wrote nothing), after the redaction,
 * which runs outside it. */
static void log_route_call(ah_core *core, ah_core_call *cc, ah_http_exchange *ex,
                           const ah_route *r, const ah_conn *c, char *redacted)
{
    int status = ah_ex_status(ex);
    const char *action = r->action != NULL ? r->action : r->path;
    const char *token = (r->flags & AH_ROUTE_CONN_TOKEN) ? ah_ex_subpath(ex) : NULL;
    char *declared = logged_path(ex, r);
    /* The secret a handler matched a connection with (conn_by_secret) is
     * left out of the path too: a plugin may carry its key in a segment. */
    char *path = scrub(declared, cc->route_secret);
    free(declared);
    ah_intlog_rec rec = {
        .tenant = c != NULL ? c->tenant : NULL,
        .source = c != NULL ? c->name : "unauthenticated",
        .plugin = cc->gen->name,
        .action = "REQUEST",
        .method = ah_ex_method(ex),
        .path = path != NULL ? path : "(out of memory)",
        .status = 0,
        .duration_s = 0,
        .body = NULL,
        .correlation_id = action,
    };
    if (c == NULL && status >= 400) {
        /* Failed before any connection accepted it: anyone can send these,
         * so one entry without the request body, and only a few per client
         * address per minute (intlog.h). */
        rec.action = "ERROR";
        rec.status = status;
        rec.duration_s = ah_ex_elapsed_s(ex);
        ah_core_call_scope(cc);
        switch (ah_intlog_unauth_admit(core, ah_ex_client_ip(ex))) {
        case AH_INTLOG_UNAUTH_LOG:
            rec.body = cc->response_log != NULL && cc->route_secret == NULL &&
                               strlen(cc->response_log) <= 1024
                           ? cc->response_log
                           : NULL;
            ah_intlog_write(core, &rec);
            break;
        case AH_INTLOG_UNAUTH_SUMMARY:
            rec.action = "ERROR_SUPPRESSED";
            rec.body = "too many failed unauthenticated requests from this address, or from "
                       "all addresses: the rest of this minute's are not logged";
            ah_intlog_write(core, &rec);
            break;
        case AH_INTLOG_UNAUTH_DROP:
            break;
        }
        free(redacted);
        free(path);
        return;
    }
    if (redacted == NULL) {
        size_t len = 0;
        const char *body = ah_ex_body(ex, &len);
        redacted = ah_intlog_redact(body, len);
    }
    char *req1 = scrub(redacted, token), *resp1 = scrub(cc->response_log, token);
    char *req = scrub(req1, cc->route_secret), *resp = scrub(resp1, cc->route_secret);
    free(req1);
    free(resp1);
    /* The REQUEST and its answer (RESPONSE or ERROR): one row. */
    rec.action = status >= 400 ? "ERROR" : "RESPONSE";
    rec.status = status;
    rec.duration_s = ah_ex_elapsed_s(ex);
    rec.body = resp;
    rec.with_request = true;
    rec.request_body = req;
    ah_core_call_scope(cc);
    ah_intlog_write(core, &rec);
    free(redacted);
    free(req);
    free(resp);
    free(path);
}

/* The group transaction holding an atomic route's writes has ended: its
 * held answer goes out, or, when the writes were lost, an error saying so. */
static void route_committed(void *arg, bool ok)
{
    if (ok)
        ah_ex_release(arg);
    else
        ah_ex_release_error(arg, 503, "store_unavailable",
                            "the request's writes could not be saved; retry later");
}

/* Runs a plugin's route for ex: the connection (token routes: c, locked
 * here) and the generation are the caller's references, released here.
 * detached: ex was detached (ah_ex_detach) into p and this runs on a bus
 * worker; the answer is held in p, released here (or by the group commit),
 * and ah_ex_detach_end(p) ends this thread's use of ex. Otherwise this runs
 * in the handler on the server thread (p NULL). */
static void route_run(ah_core *core, ah_generation *gen, const ah_route *r, ah_conn *c,
                      ah_http_exchange *ex, ah_ex_pending *p)
{
    if (c != NULL)
        pthread_mutex_lock(&c->call_lock);
    char topic[96];
    snprintf(topic, sizeof topic, "route:%s", r->action != NULL ? r->action : r->path);
    ah_core_call cc;
    ah_core_call_init(&cc, core, gen, c, topic, NULL);
    cc.ex = ex;
    /* An atomic route's writes and its log entries commit together. The
     * scope opens at the handler's first store call (hostapi.c), once the
     * route's connection is locked (here for token routes, in
     * conn_by_secret otherwise), so locks are always taken connection
     * first, then store. With a committer, the scope is a group scope: the
     * answer is held until the group transaction holding its writes has
     * committed (group commit), and the thread moves on. A detached
     * exchange's answer is held already. */
    cc.atomic_route = (r->flags & AH_ROUTE_ATOMIC) != 0;
    ah_ex_pending *held = p;
    if (cc.atomic_route && core->committer != NULL) {
        if (held == NULL)
            held = ah_ex_hold(ex);
        if (held != NULL)
            ah_store_committer_enter(core->committer);
        if (held == NULL) {
            ah_ex_error(ex, 503, "overloaded", "out of memory");
            if (c != NULL) {
                pthread_mutex_unlock(&c->call_lock);
                ah_conn_release(c);
            }
            ah_generation_release(gen);
            return;
        }
    }
    ah_ex_set_user(ex, &cc);
    /* An atomic route's log entries are written inside its store scope,
     * where every microsecond holds up the other writers: the request's
     * redacted copy is made before. */
    char *pre_redacted = NULL;
    if (cc.atomic_route) {
        size_t len = 0;
        const char *body = ah_ex_body(ex, &len);
        /* The redaction parses the body: the handler's parse of it takes
         * that tree rather than parsing it again (hostapi.h). */
        cJSON *tree = NULL;
        pre_redacted = ah_intlog_redact_parsed(body, len, &tree);
        ah_host_json_lend(body, len, tree);
    }
    ah_result res = AH_OK;
    if (c != NULL && ah_conn_ensure_open(core, c, gen, &cc.ext) != 0) {
        ah_ex_error(ex, cc.ext.err_status ? cc.ext.err_status : 503, cc.ext.err_code, "%s",
                    cc.ext.err_msg);
    } else {
        if (c != NULL)
            cc.ext.call.conn_ctx = c->ctx;
        atomic_fetch_add(&gen->inflight, 1);
        res = ah_generation_route(gen, r, &cc.ext.call, ex);
        atomic_fetch_sub(&gen->inflight, 1);
    }
    if (ah_ex_status(ex) == 0) {
        if (cc.conn_refused.code[0]) /* hostapi.c, conn_refused */
            ah_ex_error(ex, cc.conn_refused.status, cc.conn_refused.code, "%s",
                        cc.conn_refused.msg);
        else if (res != AH_OK && cc.ext.err_code[0])
            ah_ex_error(ex, cc.ext.err_status ? cc.ext.err_status : ah_http_status_for_code(cc.ext.err_code),
                        cc.ext.err_code, "%s", cc.ext.err_msg);
        else
            ah_ex_error(ex, 500, AH_E_PLUGIN, "the plugin did not answer");
    }
    ah_host_json_unlend(); /* a tree the handler did not take */
    const ah_conn *who = c != NULL ? c : (cc.n_extra > 0 ? cc.extra[0]->ext.call.conn : NULL);
    log_route_call(core, &cc, ex, r, who, pre_redacted); /* with the writes, if atomic */
    bool ended = !cc.scoped || core->store->ops->scope_end(core->store, true) == 0;
    if (!ended)
        ah_log(&core->log, AH_LOG_ERROR, "rest", "%s %s: the call's writes could not be committed",
               ah_ex_method(ex), r->path); /* as declared: never a token */
    ah_ex_set_user(ex, NULL);
    bool grouped = held != NULL && core->committer != NULL && cc.atomic_route;
    if (held != NULL) {
        if (!ended)
            route_committed(held, false);
        else if (!grouped || !cc.scoped || cc.group == 0)
            route_committed(held, true); /* nothing waits in a group */
        else if (ah_store_committer_add(core->committer, cc.group, route_committed, held) != 0) {
            /* Stopped or out of memory: commit here. What is open now may
             * be a later group than this request's, which may have ended
             * (and failed) already: its own outcome is the answer. */
            int gc = core->store->ops->group_commit(core->store);
            int out = ah_store_committer_outcome(core->committer, cc.group);
            route_committed(held, out >= 0 ? out == 1 : gc == 0);
            if (core->store->ops->group_answered != NULL)
                core->store->ops->group_answered(core->store);
        }
        if (grouped)
            ah_store_committer_leave(core->committer);
    }
    ah_core_call_done(&cc);
    /* Nothing here touches ex any more: the server may send the answer. */
    ah_ex_detach_end(p);
    if (c != NULL) {
        pthread_mutex_unlock(&c->call_lock);
        ah_conn_release(c);
    }
    ah_generation_release(gen);
}

/* A route call waiting for a bus worker. */
typedef struct route_job {
    ah_core *core;
    ah_generation *gen;
    const ah_route *r;
    ah_conn *c;
    ah_http_exchange *ex;
    ah_ex_pending *p;
} route_job;

static void route_job_run(void *arg)
{
    route_job *j = arg;
    route_job jj = *j;
    free(j);
    route_run(jj.core, jj.gen, jj.r, jj.c, jj.ex, jj.p);
}

/* Bus lanes and groups of route calls, apart from the connections' lanes
 * (ids) and tenants' groups (ids), which are positive int64 values: a
 * token route's calls run in order per connection and count against its
 * tenant's share of the workers. The others' tenant is not known before
 * the plugin resolves it (the ERP API, from its key): each call is a lane
 * of its own, and the calls from one client address share a group, so one
 * caller's slow or flooding calls hold at most a tenant's share of the
 * workers. */

/* The group of a client address: IPv4 as it is, IPv6 its /64 (whoever
 * holds one picks the low half at will: each call a group of its own). */
static uint64_t addr_group(const char *ip)
{
    unsigned char a[16];
    uint64_t k = 0;
    if (inet_pton(AF_INET, ip, a) == 1) {
        k = (uint64_t)a[0] << 24 | (uint64_t)a[1] << 16 | (uint64_t)a[2] << 8 | a[3];
    } else if (inet_pton(AF_INET6, ip, a) == 1) {
        memcpy(&k, a, 8);
    }
    return ROUTE_GROUP_ADDR | (k & ~ROUTE_LANE_CALL);
}

static void plugin_route(void *arg, ah_http_exchange *ex)
{
    ah_route_binding *b = arg;
    ah_core *core = b->core;
    ah_generation *gen = ah_registry_acquire(core->registry, b->plugin);
    const ah_route *r = gen != NULL ? find_route(gen, b) : NULL;
    if (r == NULL) {
        ah_ex_error(ex, 404, AH_E_NOT_FOUND, "no route %s %s", ah_ex_method(ex), ah_ex_path(ex));
        if (gen != NULL)
            ah_generation_release(gen);
        return;
    }
    ah_conn *c = NULL;
    if (r->flags & AH_ROUTE_CONN_TOKEN) {
        c = ah_conns_by_secret(core, gen->name, "webhook_token", ah_ex_subpath(ex));
        if (c == NULL) {
            ah_ex_error(ex, 404, AH_E_NOT_FOUND, "unknown or disabled endpoint");
            ah_generation_release(gen);
            return;
        }
    }
    /* The handler may call providers, the store, or an isolated plugin
     * process: it runs on a bus worker, and this thread serves other
     * requests meanwhile (issue 13). Without a bus (tests, tools), or
     * when the request cannot be detached, it runs here. */
    ah_ex_pending *p = NULL;
    route_job *j = NULL;
    if (core->bus != NULL && core->cfg.http_routes_on_bus && (j = malloc(sizeof *j)) != NULL &&
        (p = ah_ex_detach(ex)) == NULL) {
        free(j);
        j = NULL;
    }
    if (p == NULL) {
        route_run(core, gen, r, c, ex, NULL);
        return;
    }
    *j = (route_job){core, gen, r, c, ex, p};
    uint64_t tenant = c != NULL ? (uint64_t)c->tenant_id : addr_group(ah_ex_client_ip(ex));
    uint64_t lane = c != NULL ? ROUTE_LANE_CONN | (uint64_t)c->id : call_lane();
    if (ah_bus_run_tenant(core->bus, tenant, lane, r->path, route_job_run, j) != 0) {
        free(j);
        (void)ah_ex_release_error(p, 503, "overloaded",
                                  "the host cannot take more work now; retry later");
        ah_ex_detach_end(p);
        if (c != NULL)
            ah_conn_release(c);
        ah_generation_release(gen);
    }
}

typedef struct route_walk {
    ah_core *core;
    int rc;
} route_walk;

static void register_plugin_routes(void *arg, const ah_generation *gen)
{
    route_walk *w = arg;
    ah_core *core = w->core;
    for (const ah_route *r = gen->desc->routes; r != NULL && r->method != NULL; r++) {
        ah_route_binding *b = calloc(1, sizeof(*b));
        ah_route_binding **nb = realloc(core->bindings, (core->nbindings + 1) * sizeof(*nb));
        if (b == NULL || nb == NULL) {
            free(b);
            if (nb != NULL)
                core->bindings = nb;
            w->rc = -1;
            return;
        }
        core->bindings = nb;
        b->core = core;
        b->plugin = strdup(gen->name);
        b->method = strdup(r->method);
        b->path = strdup(r->path);
        core->bindings[core->nbindings++] = b;
        /* As the loader checked it (outside the host's paths, no other
         * plugin's): a token route serves everything under its prefix. */
        char path[1024];
        bool prefix = false;
        if (ah_route_served(r, path, sizeof path, &prefix) != 0 ||
            ah_httpd_route(core->httpd, r->method, path, prefix ? AH_HTTPD_PREFIX : 0u,
                           plugin_route, b) != 0)
            w->rc = -1;
    }
}

void ah_rest_unregister(ah_core *core)
{
    for (size_t i = 0; i < core->nbindings; i++) {
        ah_route_binding *b = core->bindings[i];
        if (core->httpd != NULL)
            ah_httpd_unroute_arg(core->httpd, b);
        free(b->plugin);
        free(b->method);
        free(b->path);
        free(b);
    }
    free(core->bindings);
    core->bindings = NULL;
    core->nbindings = 0;
}

int ah_rest_plugin_routes(ah_core *core, const char *plugin)
{
    size_t nold = 0, keep = 0;
    ah_route_binding **old = malloc((core->nbindings ? core->nbindings : 1) * sizeof(*old));
    if (old == NULL)
        return -1;
    for (size_t i = 0; i < core->nbindings; i++) {
        ah_route_binding *b = core->bindings[i];
        if (strcmp(b->plugin, plugin) == 0)
            old[nold++] = b;
        else
            core->bindings[keep++] = b;
    }
    core->nbindings = keep;
    /* New routes first: one that both versions declare is replaced in
     * place, so no request in between gets a 404. */
    route_walk w = {core, 0};
    ah_generation *gen = ah_registry_acquire(core->registry, plugin);
    if (gen != NULL) {
        register_plugin_routes(&w, gen);
        ah_generation_release(gen);
    }
    for (size_t i = 0; i < nold; i++) {
        ah_httpd_unroute_arg(core->httpd, old[i]); /* waits for its running calls */
        free(old[i]->plugin);
        free(old[i]->method);
        free(old[i]->path);
        free(old[i]);
    }
    free(old);
    return w.rc;
}

int ah_rest_register(ah_core *core)
{
    ah_httpd *h = core->httpd;
    if (ah_httpd_route(h, "GET", "/v1/health", 0, rest_health, core) != 0 ||
        ah_httpd_route(h, "GET", "/v1/plugins", 0, rest_plugins, core) != 0 ||
        ah_httpd_route(h, "GET", "/v1/log", 0, rest_log_route, core) != 0 ||
        ah_httpd_route(h, "POST", "/v1/bus/", AH_HTTPD_PREFIX, rest_bus, core) != 0 ||
        ah_api_register(core) != 0 || ah_api_statuses_register(core) != 0)
        return -1;
    route_walk w = {core, 0};
    ah_registry_each(core->registry, register_plugin_routes, &w);
    return w.rc;
}
