/* SPDX-License-Identifier: Apache-2.0 */
/* atshub.ini, parsed with inih. Every error names file:line. */
#ifndef AH_CONFIG_H
#define AH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ah_plugin_conf {
    char *name;
    char *path; /* absolute (resolved against the INI's folder) */
    int line;   /* where it was declared */
} ah_plugin_conf;

/** How a plugin runs: in the daemon's process, or in a process of its own
 *  (core/plugin/isolate.h). */
typedef enum ah_isolation {
    AH_ISOLATION_IN_PROCESS = 0,
    AH_ISOLATION_PROCESS = 1,
} ah_isolation;

/** A [plugin.NAME] section: how that plugin runs. A plugin without one, and
 *  a section without `isolation`, runs in a process of its own with the
 *  defaults below (ah_config_plugin_iso_resolve). */
typedef struct ah_plugin_iso_conf {
    char *name;            /* NAME of [plugin.NAME]; declared in [plugins] */
    ah_isolation isolation; /* isolation = process | in_process */
    uint64_t memory_max;   /* memory_max = 256M: address space of the plugin
                              process, bytes (16M..64G); 0: no limit */
    long call_timeout_ms;  /* call_timeout_ms: one call's deadline (10..600000,
                              default 30000) */
    long max_calls;        /* max_calls: recycle the process after so many
                              calls (0: never; default 0) */
    long restart_backoff_ms; /* first restart delay after a crash, doubled per
                                crash up to 60 s (10..60000, default 1000) */
    int processes;         /* processes serving the plugin, each one call at a
                              time; a connection stays with one (1..64,
                              default 1) */
    /* env = NAME,NAME: variables of the daemon's environment its plugin
     * processes get besides the few every one gets (isolate.c); "" none. */
    char env[256];
    int line;              /* of the section header */
} ah_plugin_iso_conf;

typedef struct ah_config {
    char *path; /* the INI file as given */
    char *dir;  /* its folder, absolute */

    /* [core] */
    int workers;            /* bus worker threads (default 2) */
    int tenant_workers;     /* workers one tenant may hold at once; 0: max(1, workers / 2) */
    int provider_threads;   /* bus threads that may wait on one provider at once; 0: no limit */
    int request_timeout_ms; /* bus request timeout (default 30000) */
    char *key_file;         /* host encryption key, absolute (default
                               ../var/host.key from the INI's folder) */
    int log_level;          /* ah_log_level (default info) */
    bool log_json;
    int log_retention_days; /* integration log entries older than this are pruned (30) */
    int settled_retention_days; /* settled writes (whose outcome was unknown) are
                                   forgotten this many days after they were
                                   settled (7); unknown ones are kept */
    long bulk_max_queued_items; /* items of one tenant's bulk jobs still to run
                                   past which a new job is refused 429 (10000) */
    long bulk_retention_s;      /* seconds a finished bulk job is kept (7 days) */

    /* [http] */
    char *listen_host; /* default 127.0.0.1 */
    uint16_t listen_port; /* default 8080; 0 = any free port */
    size_t max_body;   /* bytes (default 1 MiB) */
    int http_threads;  /* default 2 */
    /* The connection guard (net/conntrack.h). */
    unsigned http_max_connections;            /* default 4096 */
    unsigned http_max_connections_per_client; /* default 256 */
    long http_header_timeout_ms;              /* default 10000 */
    unsigned http_min_body_rate;              /* bytes/s, default 1024 */
    /* Per-tenant request budget of /v1 (host/tenantlimit.h): a token bucket
     * refilled at tenant_rate requests/s holding at most tenant_burst. */
    unsigned http_tenant_rate;  /* requests/s; 0: unlimited (default 100) */
    unsigned http_tenant_burst; /* default 200 */
    /* plugin_routes = workers (default): a plugin's inbound route runs on a
     * bus worker and the HTTP thread serves other requests meanwhile;
     * inline: on the HTTP thread (cheaper for quick handlers, but a slow
     * one holds the thread). */
    bool http_routes_on_bus;
    char *tls_cert;    /* PEM paths, both or neither */
    char *tls_key;

    /* [store] */
    char *store_url; /* "sqlite:/abs/path.db" or "postgresql://..." */

    /* [outbound] */
    long http_timeout_ms; /* default 10000 */
    int http_max_attempts; /* default 4 */
    long http_backoff_ms;  /* first backoff, doubled per attempt (default 200) */
    long http_backoff_max_ms; /* cap (default 10000) */

    /* [sync] */
    int sync_interval_s; /* 0 = no schedule (default 300) */

    /* [admin]: the operators' listener (core/admin.c) */
    char *admin_socket;     /* Unix socket path, absolute; NULL: the default,
                               atshub.sock in key_file's folder */
    bool admin_socket_off;  /* socket = off */
    char *admin_host;       /* listen = host:port (TCP; NULL: none) */
    uint16_t admin_port;
    char *admin_token_file; /* required with listen: the bearer token */

    /* [webhooks]: outbound webhooks to the product (core/webhooks.c) */
    int webhook_max_failures;    /* consecutive failures that disable an endpoint (20) */
    long webhook_backoff_ms;     /* first retry delay, doubled per failure (1000) */
    long webhook_backoff_max_ms; /* cap (3600000) */
    long webhook_timeout_ms;     /* one delivery attempt (10000) */
    int webhook_workers;         /* delivery threads (4) */
    int webhook_max_per_tenant;  /* endpoints of one tenant delivering at once (2);
                                  * at most webhook_workers is used */
    char *webhook_allow_networks; /* networks webhooks may reach although not
                                   * public ("127.0.0.0/8, ::1"); NULL: none */

    /* [events]: the replayable event log (core/eventlog.c) */
    int events_retention_days; /* events older than this are pruned (30) */

    /* [store] claim_ms: how long a claim of shared work, the schedule
     * leader's lease and an instance's registration last without renewal
     * when several instances share the store (host/claims.h) (15000) */
    long claim_ms;

    /* [plugins] name = path.so */
    ah_plugin_conf *plugins;
    size_t nplugins;

    /* [plugin.NAME] sections, in file order */
    ah_plugin_iso_conf *plugin_isos;
    size_t nplugin_isos;
} ah_config;

/** Parses `path`. On failure returns -1 and writes "file:line: why" (or
 *  "file: why" for errors without a line) into err. Applies the environment
 *  overrides ATSHUB_LISTEN (host:port) and ATSHUB_STORE.
 *
 *  Details: the first problem in the file is reported (inih's own syntax
 *  errors as "file:line: syntax error"); env errors start with the variable's
 *  name. An empty env variable counts as unset; a relative sqlite: PATH in
 *  ATSHUB_STORE is resolved against the working directory. A line may hold
 *  at most 198 characters (libinih's fixed line buffer). Plugin, tls_cert and
 *  tls_key files must exist (checked while parsing). On failure *out holds
 *  nothing (zeroed; ah_config_free on it is harmless); on success the caller
 *  owns *out and frees it with ah_config_free. err may be NULL. */
int ah_config_load(const char *path, ah_config *out, char *err, size_t errlen);
/** Fills defaults only (used by tests and by a missing file): dir is the
 *  working directory, path NULL, key_file "<cwd>/var/host.key", store_url
 *  "sqlite:<cwd>/var/atshub.db". Overwrites *cfg without freeing it. On out
 *  of memory the string fields may be NULL. */
void ah_config_defaults(ah_config *cfg);
/** Frees every member and zeroes *cfg (safe to call twice). */
void ah_config_free(ah_config *cfg);
/** The [plugin.NAME] section of `name`, or NULL when it has none. */
const ah_plugin_iso_conf *ah_config_plugin_iso(const ah_config *cfg, const char *name);
/** How `name` runs: its section, or the defaults when it has none
 *  (isolation = process, no memory_max, call_timeout_ms 30000, max_calls 0,
 *  restart_backoff_ms 1000, processes 1). out->name is borrowed. */
void ah_config_plugin_iso_resolve(const ah_config *cfg, const char *name,
                                  ah_plugin_iso_conf *out);
/** Resolves `rel` against the config folder (the working directory when cfg
 *  or cfg->dir is NULL) unless it is absolute, then normalises ".", ".." and
 *  "//" textually (no realpath: the file may not exist yet). malloc'd; NULL
 *  when rel is NULL or out of memory. */
char *ah_config_resolve(const ah_config *cfg, const char *rel);

#endif
