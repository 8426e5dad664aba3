/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host context. Every piece of mutable state the daemon has lives in
 * one ah_core: configuration, store, plugin registry, bus, HTTP server and
 * client, token cache, the connection table. Nothing is global.
 */
#ifndef AH_CORE_H
#define AH_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <atshub/plugin.h>
#include <cjson/cJSON.h>

#include "bus.h"
#include "config.h"
#include "crypto.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"
#include "oauth2.h"
#include "registry.h"
#include "router.h"
#include "store.h"

typedef struct ah_core ah_core;
typedef struct ah_conns ah_conns;

/** A connection: one provider enabled for one tenant (the SDK's opaque
 *  ah_conn). Immutable after it is published in the connection table,
 *  except for the plugin context, which is guarded by call_lock. Reference
 *  counted: a reload replaces changed connections with new objects and the
 *  old ones are freed when their last call returns. */
struct ah_conn {
    ah_core *core;
    int64_t id;
    int64_t tenant_id;
    char *tenant;
    char *name;
    char *plugin;
    bool enabled;
    char *settings_text; /* as stored (secrets sealed), to detect changes */
    cJSON *settings;     /* plaintext view: secrets opened, hashed ones "sha256:<hex>" */
    atomic_long refs;

    /* Serialises every plugin callback on this connection and guards the
     * plugin context below. */
    pthread_mutex_t call_lock;
    ah_generation *ctx_gen; /* generation whose open() made ctx (ref held) */
    void *ctx;
    bool ctx_failed;        /* open() failed for ctx_gen (not for a reason of the
                             * moment: core.c): retried on settings change */
    char ctx_error[512];
};

/** The full call context the host hands to plugins; ah_call_ext (and so
 *  ah_call) is its first member, so host API functions can get back to it.
 *  Every call the core makes has topic != NULL ("route:<action>" for
 *  inbound routes); only the loader's init call has topic == NULL. */
typedef struct ah_core_call {
    ah_call_ext ext;
    ah_core *core;
    ah_generation *gen;
    struct ah_recbuf *records; /* streaming ops: what emit_record collected, as text */
    ah_http_exchange *ex;    /* inbound routes */
    /* Call contexts made by conn_by_secret inside a route handler; each
     * holds its connection's call_lock until ah_core_call_done. */
    struct ah_core_call *extra[4];
    int n_extra;
    char *response_log; /* redacted copy of what a route answered */
    /* What the route's first conn_by_secret matched (an API key, a token):
     * scrubbed from the route's log entries wherever it appears. */
    char *route_secret;
    /* A request flagged AH_HTTP_NOT_IDEMPOTENT went out on this call and
     * may have acted (answered other than 429 or 503, or its answer lost):
     * a crash of its plugin process after it (503 plugin_crashed, "not
     * done, retry") is then answered outcome_unknown (core_dispatch). */
    bool wrote;
    bool atomic_route; /* the route has AH_ROUTE_ATOMIC */
    bool scoped;       /* its group scope is open (ah_core_call_scope) */
    uint64_t group;    /* the group transaction holding its writes, once scoped */
    /* The route call an extra call (conn_by_secret) belongs to: the scope
     * is the route's. NULL for the route call itself and other calls. */
    struct ah_core_call *route;
    /* Why the route's conn_by_secret could not give it the connection its
     * secret names (busy past the wait, or its open() failed): the handler
     * was told "no such connection", so what it answers is refused and the
     * route is answered with this instead (hostapi.c, rest.c). */
    struct {
        char code[64];
        char msg[512]; /* as ah_call_ext's */
        int status;
    } conn_refused;
    char topic_buf[96];
} ah_core_call;

/** The bus `target` of a request for a streaming topic (jobs.stream, ...)
 *  whose requester wants the page's records as text: the reply then
 *  carries them as its attachment (an ah_recbuf, recbuf.h) and its body
 *  has no "records" array. Other requesters get the array. */
extern const char ah_records_as_text[];
#define AH_RECORDS_AS_TEXT ((void *)ah_records_as_text)

struct ah_core {
    ah_config cfg;
    ah_logger log;
    unsigned char host_key[AH_KEY_LEN];
    ah_host_api host; /* the table plugins get; container_of leads back here */

    ah_store *store;
    ah_registry *registry;
    ah_bus *bus;
    ah_httpc *httpc;
    ah_oauth2 *oauth2;
    ah_httpd *httpd; /* NULL unless serving */
    /* Commits the store's group transactions and answers the atomic
     * routes whose writes they hold (store/committer.h). NULL unless
     * serving: atomic routes then commit on their own. */
    struct ah_store_committer *committer;
    ah_conns *conns;

    struct ah_route_binding **bindings; /* plugin routes registered in httpd */
    size_t nbindings;

    pthread_t ticker;     /* reloads connections when the store changes */
    bool ticker_running;
    pthread_t pruner;     /* prunes past retention, off the ticker (daemon.c) */
    bool pruner_running;
    pthread_mutex_t tick_lock;
    pthread_cond_t tick_cond;
    bool stopping;
    /* Written by whoever reloads (under the reload lock), read by the
     * ticker without it. */
    _Atomic int64_t seen_data_version;

    struct ah_metrics *metrics;     /* counters for /metrics (metrics.c) */
    struct ah_ratelimit *ratelimit; /* outbound rate budgets per connection (ratelimit.c) */
    struct ah_tenantlimit *tenantlimit; /* /v1 request budgets per tenant (tenantlimit.c) */
    struct ah_intlog_guard *intlog_guard; /* unauthenticated entries per address (intlog.c) */
    pthread_mutex_t ops_lock;       /* one plugin reload / reconcile at a time (admin/ops.c) */

    /* State of the layers above, opaque here: made and freed by the daemon
     * (daemon.c), used only by those layers. */
    struct ah_sync *sync;   /* sync engine: running syncs, scheduler (engine/sync.c) */
    struct ah_bulk *bulk;   /* the bulk jobs' worker (api/bulk.c) */
    struct ah_webhooks *webhooks; /* deliveries' client and allowed networks (api/webhooks.c) */
    struct ah_admin *admin; /* the operators' listener (admin/admin.c); NULL unless serving */

    /* This instance among those sharing the store, as the owner of its
     * claims and leases (host/claims.h): set by the daemon; empty in
     * one-shot commands, which claim nothing. */
    char instance[200];
    /* Renews claims whose owners wait on a long call (host/claims.h
     * ah_claim_keep); NULL unless serving with an instance id. */
    struct ah_claims_keeper *keeper;
    /* The change log (admin/ops.c ah_ops_follow_changes): the newest
     * change applied; valid once change_ready. Ticker thread only. */
    int64_t change_seen;
    bool change_ready;
    /* Plugin reloads read from the change log that failed here (the file
     * another instance loaded not yet on this host, say): tried again by
     * the ticker with a growing pause until one succeeds or a newer reload
     * of the plugin comes (ops.c). Ticker thread only. */
    struct ah_reload_retry {
        char *name, *path; /* path NULL: the plugin's own */
        int tries;
        int64_t next_ms;   /* CLOCK_MONOTONIC */
    } reload_retry[8];
    int nreload_retry;
    /* When this instance started serving (registered in instances);
     * empty when not serving. */
    char started_at[32];
};

/** Options for ah_core_open. */
typedef struct ah_core_opts {
    bool load_plugins; /* load [plugins] (CLI commands that need them) */
    bool start_bus;    /* start the worker pool */
    /* With load_plugins: only the plugins some connection of this tenant
     * uses (NULL: every plugin). For one-shot commands about one tenant
     * (`atshub sync`): each isolated plugin is a process to start and
     * stop. The tenant's event subscribers are among them: a plugin no
     * connection of the tenant uses receives none of its events. */
    const char *only_tenant;
} ah_core_opts;

/** Opens the store (migrating it), the host key, and optionally loads the
 *  plugins and starts the bus. The layers above keep their state in the
 *  context too: open through ah_daemon_open (daemon.h) to get it. On
 *  failure returns NULL with err filled. Takes ownership of cfg (zeroes the
 *  caller's copy). */
ah_core *ah_core_open(ah_config *cfg, const ah_core_opts *opts, char *err, size_t errlen);
void ah_core_close(ah_core *core);

/** Sends one bus request to a connection and waits for the reply. `body`
 *  transferred. Always fills *reply; 0 when reply->ok. */
int ah_core_request(ah_core *core, const char *tenant, const char *connection,
                    const char *topic, cJSON *body, ah_reply *reply);
/** The same without waiting: cb runs once with the reply (it owns it), on a
 *  bus worker, or on the caller's thread when the connection is unknown or
 *  the bus refuses. The request is the tenant's for the bus's fair share.
 *  0 when queued. */
int ah_core_request_async(ah_core *core, const char *tenant, const char *connection,
                          const char *topic, cJSON *body, ah_reply_cb cb, void *cb_arg);
/** The same with the caller's gate (ah_bus_request_async_gated), so that a
 *  caller that gives up before a worker took the request can make sure it
 *  never runs (ah_bus_gate_abandon). */
int ah_core_request_async_gated(ah_core *core, const char *tenant, const char *connection,
                                const char *topic, cJSON *body, ah_reply_cb cb, void *cb_arg,
                                ah_bus_gate *gate);

/* --- writes whose outcome stayed unknown (core.c) ------------------------ */
/** The record type, on the write's connection, of a write that answered
 *  outcome_unknown and that its plugin can settle later (ah_op_write.settle):
 *  remote id the call's correlation id ("the operation"), raw
 *  {"topic","request"} (the body without data_base64), fields {"state":
 *  "unknown" | "done" | "not_done", "topic", "operation", "settled_at"?,
 *  "status"?, "answer"?}. The next sync settles it (engine/settle.c). */
#define AH_WRITE_OUTCOME_TYPE "write_outcome"
/** How an outcome_unknown answer's message names its operation, for people:
 *  it ends in "(operation <id>: ...)". Code reads the operation from
 *  ah_reply.operation (the REST answer's error.operation), never from the
 *  message. */
#define AH_OPERATION_TAG "(operation "

/** Calls the settle function that `topic`'s write declaration (op_writes)
 *  of c's plugin names, as the original call `correlation_id` with `body`,
 *  under the connection's call lock. Always fills *r; 0 when r->ok. */
int ah_core_settle(ah_core *core, ah_conn *c, const char *topic, const char *correlation_id,
                   const cJSON *body, ah_reply *r);

/* --- plugin calls (core.c) --------------------------------------------- */
/** Makes sure c has a context opened by gen (call_lock held by caller).
 *  0, or -1 with the failure in ext. */
int ah_conn_ensure_open(ah_core *core, ah_conn *c, ah_generation *gen, ah_call_ext *ext);
/** Fills a core call context for conn (which may be NULL) and gen. */
void ah_core_call_init(ah_core_call *cc, ah_core *core, ah_generation *gen, ah_conn *c,
                       const char *topic, const char *correlation_id);
/** Opens the store scope of an atomic route call (its connection locked),
 *  at its first store call: a group scope when the daemon runs a
 *  committer (the route's answer then waits for the group's commit), a
 *  plain scope otherwise. For an extra call, the route's scope. */
void ah_core_call_scope(ah_core_call *cc);
/** Releases what a core call acquired (extra connections). */
void ah_core_call_done(ah_core_call *cc);

struct ah_isolate_opts;
/** The options of an isolated plugin as its [plugin.NAME] section says,
 *  with what the host lends its routes (isolate.h: conn_hooks). */
void ah_core_isolate_opts(const ah_config *cfg, const ah_plugin_iso_conf *pi,
                          struct ah_isolate_opts *io);

/** Plugins, versions, generations and capability coverage as JSON (for
 *  `atshub plugins` and GET /v1/plugins). With `settings_of`, only that
 *  plugin, with its settings table. NULL when settings_of is unknown. */
cJSON *ah_core_plugins_json(ah_core *core, const char *settings_of);
/** The operation field tables of the loaded plugin `name`:
 *  {"name","version","description","ops":{"topic":[fields...]},
 *  "unchecked":["topic"...]} (unchecked: topics it serves without a table),
 *  or NULL when no such plugin is loaded. Transferred. */
cJSON *ah_core_plugin_ops_json(ah_core *core, const char *name);
/** The generated part of docs/openapi.yaml: the begin comment, one schema
 *  per topic of every loaded plugin (or only `only`, when not NULL) in the
 *  order of plugin names, and the end comment. malloc'd; NULL when `only`
 *  is not loaded or memory runs out. */
char *ah_core_openapi_bus(ah_core *core, const char *only);

#endif
