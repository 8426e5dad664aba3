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
#include "sync.h"

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
    bool ctx_failed;        /* open() failed for ctx_gen: retried on settings change */
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
    cJSON *records;          /* streaming ops: what emit_record collected */
    ah_http_exchange *ex;    /* inbound routes */
    /* Call contexts made by conn_by_secret inside a route handler; each
     * holds its connection's call_lock until ah_core_call_done. */
    struct ah_core_call *extra[4];
    int n_extra;
    char *response_log; /* redacted copy of what a route answered */
    bool atomic_route; /* the route has AH_ROUTE_ATOMIC */
    bool scoped;       /* a store scope is open for it (ah_core_call_scope) */
    char topic_buf[96];
} ah_core_call;

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
    ah_conns *conns;

    struct ah_route_binding **bindings; /* plugin routes registered in httpd */
    size_t nbindings;

    pthread_t ticker;     /* reloads connections when the store changes */
    bool ticker_running;
    pthread_mutex_t tick_lock;
    pthread_cond_t tick_cond;
    bool stopping;
    int64_t seen_data_version;

    ah_sync *sync; /* sync engine: running syncs, scheduler thread (sync.c) */

    struct ah_metrics *metrics; /* counters for /metrics (metrics.c) */
    struct ah_admin *admin;     /* the operators' listener (admin.c); NULL unless serving */
    pthread_mutex_t ops_lock;   /* one plugin reload / reconcile at a time (ops.c) */
    struct ah_trust *trust;     /* webhooks, rate budgets, bulk jobs (trust.h) */
};

/** Options for ah_core_open. */
typedef struct ah_core_opts {
    bool load_plugins; /* load [plugins] (CLI commands that need them) */
    bool start_bus;    /* start the worker pool */
} ah_core_opts;

/** Opens the store (migrating it), the host key, and optionally loads the
 *  plugins and starts the bus. On failure returns NULL with err filled.
 *  Takes ownership of cfg (zeroes the caller's copy). */
ah_core *ah_core_open(ah_config *cfg, const ah_core_opts *opts, char *err, size_t errlen);
void ah_core_close(ah_core *core);

/** Serves: HTTP listener, ticker, sync scheduler; blocks until SIGINT/SIGTERM. */
int ah_core_serve(ah_core *core);
/** Starts the HTTP server, ticker and sync scheduler (when
 *  [sync] interval_s > 0) without blocking (tests). */
int ah_core_start(ah_core *core, char *err, size_t errlen);
/** Stops what ah_core_start started. */
void ah_core_stop(ah_core *core);

/** Sends one bus request to a connection and waits for the reply. `body`
 *  transferred. Always fills *reply; 0 when reply->ok. */
int ah_core_request(ah_core *core, const char *tenant, const char *connection,
                    const char *topic, cJSON *body, ah_reply *reply);

/* --- events (events.c) --------------------------------------------------- */
/** Publishes an event for a tenant: stored in the outbox with a pending
 *  delivery for every enabled connection whose plugin subscribes to it, in
 *  one transaction; deliveries then run on each connection's bus lane, in
 *  order, retried with backoff until the plugin handles them. `body`
 *  transferred. 0 when stored. */
int ah_core_publish(ah_core *core, int64_t tenant_id, const char *topic, cJSON *body);
/** Publishes n events of one tenant in one store transaction (all or
 *  nothing). Every bodies[i] is transferred (and set to NULL). */
int ah_core_publish_batch(ah_core *core, int64_t tenant_id, const char *const *topics,
                          cJSON **bodies, size_t n);
/** Subscribes the delivery handler on the bus (at open). */
int ah_events_init(ah_core *core);
/** Kicks connections whose deliveries are due (the ticker, every second). */
void ah_events_tick(ah_core *core);

/* --- connections (conns.c) ------------------------------------------- */
ah_conns *ah_conns_new(void);
void ah_conns_free(ah_conns *cs);
/** Reloads every tenant and connection from the store, keeping the objects
 *  of unchanged connections (and their plugin contexts). */
int ah_conns_reload(ah_core *core);
ah_conn *ah_conn_by_id(ah_core *core, int64_t id);             /* ref taken */
ah_conn *ah_conn_find(ah_core *core, const char *tenant, const char *name); /* ref taken */
void ah_conn_release(ah_conn *c);
/** Tenant id for an API key (hash compared in constant time); -1 if none.
 *  Copies the tenant name into name_out when not NULL. */
int64_t ah_conns_tenant_by_key(ah_core *core, const char *api_key, char *name_out,
                               size_t name_len);
/** Calls cb for each enabled connection of `plugin` in `tenant_id`, each
 *  with a reference held for the duration of the callback. */
void ah_conns_each_in_tenant(ah_core *core, int64_t tenant_id, const char *plugin,
                             void (*cb)(void *arg, ah_conn *c), void *arg);
/** Calls cb for every connection (enabled or not) of `plugin` (NULL: of
 *  every plugin), each with a reference held for the duration of the
 *  callback; cb runs without the table's lock. */
void ah_conns_each(ah_core *core, const char *plugin, void (*cb)(void *arg, ah_conn *c),
                   void *arg);
/** Finds an enabled connection of `plugin` whose HASHED setting `key` is
 *  the hash of `presented` (constant-time compare). A sealed (not hashed)
 *  `webhook_token` setting is matched the same way, by the hash of its
 *  plaintext. Ref taken. */
ah_conn *ah_conns_by_secret(ah_core *core, const char *plugin, const char *key,
                            const char *presented);
/** The plaintext value of a setting, or NULL. Borrowed from the conn. */
const char *ah_conn_setting(const ah_conn *c, const char *key);

/* --- settings against a plugin's table (conns.c) ----------------------- */
/** Validates `input` (key -> string) against `spec` and builds the stored
 *  settings text (secrets sealed, hashed ones hashed, defaults not stored).
 *  `existing` (may be NULL) is the stored text being updated. Generated
 *  secrets are added to `generated` (key -> plaintext) to print once.
 *  0 or -1 with err. */
int ah_settings_build(ah_core *core, const ah_setting_spec *spec, const char *plugin,
                      const cJSON *existing_text_obj, const cJSON *input,
                      bool creating, cJSON *generated, char **out_text,
                      char *err, size_t errlen);

/* --- plugin calls (core.c) --------------------------------------------- */
/** Makes sure c has a context opened by gen (call_lock held by caller).
 *  0, or -1 with the failure in ext. */
int ah_conn_ensure_open(ah_core *core, ah_conn *c, ah_generation *gen, ah_call_ext *ext);
/** Fills a core call context for conn (which may be NULL) and gen. */
void ah_core_call_init(ah_core_call *cc, ah_core *core, ah_generation *gen, ah_conn *c,
                       const char *topic, const char *correlation_id);
/** Opens the store scope of an atomic route call (its connection locked). */
void ah_core_call_scope(ah_core_call *cc);
/** Releases what a core call acquired (extra connections). */
void ah_core_call_done(ah_core_call *cc);

/* --- host API (hostapi.c) ----------------------------------------------- */
void ah_host_api_init(ah_host_api *api);
/** The core a host table belongs to. */
ah_core *ah_core_of_host(const ah_host_api *host);

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

/* --- REST (rest.c) ------------------------------------------------------- */
/** Authenticates a request's bearer tenant key (the hash compared in
 *  constant time). Returns the tenant id and copies its name, or answers
 *  401 itself and returns -1. */
int64_t ah_rest_tenant(ah_core *core, ah_http_exchange *ex, char *name, size_t len);
/** Registers /v1 routes and the plugins' inbound routes. */
int ah_rest_register(ah_core *core);
/** Frees the plugin route bindings (after the server stopped). */
void ah_rest_unregister(ah_core *core);
/** Makes `plugin`'s inbound routes on the running server follow its current
 *  generation (after a load, swap or unload): registers the routes it
 *  declares now, then removes the ones only the previous version declared
 *  (waiting for their running calls). One caller at a time (ops_lock).
 *  0, or -1 when a route cannot be added. */
int ah_rest_plugin_routes(ah_core *core, const char *plugin);

/* --- unified resources (api.c) ------------------------------------------ */
/** Registers the unified REST resources under /v1 (jobs, candidates,
 *  applications, stages, disposition reasons, custom fields; docs/api.md)
 *  on core->httpd, with core as the handlers' argument. Called by
 *  ah_rest_register. 0, or -1 when a route cannot be added. */
int ah_api_register(ah_core *core);
/** Registers the CareerBuilder status routes (api_statuses.c): PUT
 *  /v1/statuses, GET /v1/statuses/{email}, POST /v1/statuses/query. 0 or -1. */
int ah_api_statuses_register(ah_core *core);

/* --- CLI (cli.c) --------------------------------------------------------- */
int ah_cli_main(int argc, char **argv);

#endif
