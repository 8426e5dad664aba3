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

typedef struct ah_config {
    char *path; /* the INI file as given */
    char *dir;  /* its folder, absolute */

    /* [core] */
    int workers;            /* bus worker threads (default 2) */
    int request_timeout_ms; /* bus request timeout (default 30000) */
    char *key_file;         /* host encryption key (default var/host.key) */
    int log_level;          /* ah_log_level (default info) */
    bool log_json;

    /* [http] */
    char *listen_host; /* default 127.0.0.1 */
    uint16_t listen_port; /* default 8080; 0 = any free port */
    size_t max_body;   /* bytes (default 1 MiB) */
    int http_threads;  /* default 2 */
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

    /* [plugins] name = path.so */
    ah_plugin_conf *plugins;
    size_t nplugins;
} ah_config;

/** Parses `path`. On failure returns -1 and writes "file:line: why" (or
 *  "file: why" for errors without a line) into err. Applies the environment
 *  overrides ATSHUB_LISTEN (host:port) and ATSHUB_STORE. */
int ah_config_load(const char *path, ah_config *out, char *err, size_t errlen);
/** Fills defaults only (used by tests and by a missing file). */
void ah_config_defaults(ah_config *cfg);
void ah_config_free(ah_config *cfg);
/** Resolves `rel` against the config folder; malloc'd. */
char *ah_config_resolve(const ah_config *cfg, const char *rel);

#endif
