/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "netaddr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "log.h"

#define AH_MAX_BODY_MIN 1024L
#define AH_MAX_BODY_MAX (64L * 1024 * 1024)

enum section { SEC_CORE, SEC_HTTP, SEC_STORE, SEC_OUTBOUND, SEC_SYNC, SEC_PLUGINS, SEC_ADMIN,
               SEC_WEBHOOKS, SEC_EVENTS, SEC_N };

static const char *const section_names[SEC_N] = {"core", "http", "store",
                                                 "outbound", "sync", "plugins", "admin",
                                                 "webhooks", "events"};

enum key {
    K_WORKERS,
    K_TENANT_WORKERS,
    K_PROVIDER_THREADS,
    K_REQUEST_TIMEOUT,
    K_KEY_FILE,
    K_LOG_LEVEL,
    K_LOG_FORMAT,
    K_LISTEN,
    K_MAX_BODY,
    K_HTTP_THREADS,
    K_HTTP_MAX_CONNS,
    K_HTTP_MAX_CONNS_CLIENT,
    K_HTTP_HEADER_TIMEOUT,
    K_HTTP_MIN_BODY_RATE,
    K_HTTP_TENANT_RATE,
    K_HTTP_TENANT_BURST,
    K_HTTP_PLUGIN_ROUTES,
    K_TLS_CERT,
    K_TLS_KEY,
    K_STORE_URL,
    K_OUT_TIMEOUT,
    K_OUT_ATTEMPTS,
    K_OUT_BACKOFF,
    K_OUT_BACKOFF_MAX,
    K_SYNC_INTERVAL,
    K_ADMIN_SOCKET,
    K_ADMIN_LISTEN,
    K_ADMIN_TOKEN_FILE,
    K_WH_MAX_FAILURES,
    K_WH_BACKOFF,
    K_WH_BACKOFF_MAX,
    K_WH_TIMEOUT,
    K_WH_ALLOW_NETWORKS,
    K_WH_WORKERS,
    K_WH_MAX_PER_TENANT,
    K_EV_RETENTION,
    K_LOG_RETENTION,
    K_SETTLED_RETENTION,
    K_STORE_CLAIM_MS,
    K_BULK_MAX_QUEUED,
    K_BULK_RETENTION,
    K_N
};

/* Integer keys carry their range; min > max marks a non-integer key. */
typedef struct key_def {
    enum section section;
    const char *name;
    long min, max;
} key_def;

static const key_def keys[K_N] = {
    [K_WORKERS] = {SEC_CORE, "workers", 1, 64},
    [K_TENANT_WORKERS] = {SEC_CORE, "tenant_workers", 0, 64},
    [K_PROVIDER_THREADS] = {SEC_CORE, "provider_threads", 0, 128},
    [K_REQUEST_TIMEOUT] = {SEC_CORE, "request_timeout_ms", 100, 600000},
    [K_KEY_FILE] = {SEC_CORE, "key_file", 1, 0},
    [K_LOG_LEVEL] = {SEC_CORE, "log_level", 1, 0},
    [K_LOG_FORMAT] = {SEC_CORE, "log_format", 1, 0},
    [K_LISTEN] = {SEC_HTTP, "listen", 1, 0},
    [K_MAX_BODY] = {SEC_HTTP, "max_body", 1, 0},
    [K_HTTP_THREADS] = {SEC_HTTP, "threads", 1, 64},
    [K_HTTP_MAX_CONNS] = {SEC_HTTP, "max_connections", 16, 1000000},
    [K_HTTP_MAX_CONNS_CLIENT] = {SEC_HTTP, "max_connections_per_client", 1, 1000000},
    [K_HTTP_HEADER_TIMEOUT] = {SEC_HTTP, "header_timeout_ms", 100, 600000},
    [K_HTTP_MIN_BODY_RATE] = {SEC_HTTP, "min_body_rate", 1, 1073741824},
    [K_HTTP_TENANT_RATE] = {SEC_HTTP, "tenant_rate", 0, 1000000},
    [K_HTTP_TENANT_BURST] = {SEC_HTTP, "tenant_burst", 1, 1000000},
    [K_HTTP_PLUGIN_ROUTES] = {SEC_HTTP, "plugin_routes", 1, 0},
    [K_TLS_CERT] = {SEC_HTTP, "tls_cert", 1, 0},
    [K_TLS_KEY] = {SEC_HTTP, "tls_key", 1, 0},
    [K_STORE_URL] = {SEC_STORE, "url", 1, 0},
    [K_OUT_TIMEOUT] = {SEC_OUTBOUND, "timeout_ms", 100, 600000},
    [K_OUT_ATTEMPTS] = {SEC_OUTBOUND, "max_attempts", 1, 10},
    [K_OUT_BACKOFF] = {SEC_OUTBOUND, "backoff_ms", 1, 60000},
    [K_OUT_BACKOFF_MAX] = {SEC_OUTBOUND, "backoff_max_ms", 1, 600000},
    [K_SYNC_INTERVAL] = {SEC_SYNC, "interval_s", 0, 86400},
    [K_ADMIN_SOCKET] = {SEC_ADMIN, "socket", 1, 0},
    [K_ADMIN_LISTEN] = {SEC_ADMIN, "listen", 1, 0},
    [K_WH_MAX_FAILURES] = {SEC_WEBHOOKS, "max_failures", 1, 1000},
    [K_WH_BACKOFF] = {SEC_WEBHOOKS, "backoff_ms", 0, 3600000},
    [K_WH_BACKOFF_MAX] = {SEC_WEBHOOKS, "backoff_max_ms", 0, 86400000},
    [K_WH_TIMEOUT] = {SEC_WEBHOOKS, "timeout_ms", 100, 600000},
    [K_WH_ALLOW_NETWORKS] = {SEC_WEBHOOKS, "allow_networks", 1, 0},
    [K_WH_WORKERS] = {SEC_WEBHOOKS, "workers", 1, 64},
    [K_WH_MAX_PER_TENANT] = {SEC_WEBHOOKS, "max_per_tenant", 1, 64},
    [K_EV_RETENTION] = {SEC_EVENTS, "retention_days", 1, 3650},
    [K_ADMIN_TOKEN_FILE] = {SEC_ADMIN, "token_file", 1, 0},
    [K_LOG_RETENTION] = {SEC_CORE, "log_retention_days", 1, 3650},
    [K_SETTLED_RETENTION] = {SEC_CORE, "settled_retention_days", 1, 3650},
    [K_STORE_CLAIM_MS] = {SEC_STORE, "claim_ms", 1000, 600000},
    [K_BULK_MAX_QUEUED] = {SEC_CORE, "bulk_max_queued_items", 1000, 100000000},
    [K_BULK_RETENTION] = {SEC_CORE, "bulk_retention_s", 1, 315360000},
};

#define AH_LISTEN_HINT "expected host:port (e.g. 127.0.0.1:8080 or [::1]:8080)"

/* Everything the inih callbacks need; lives on ah_config_load's stack. */
typedef struct parse_state {
    ah_config *cfg;
    FILE *fp;
    const char *file; /* as given, for messages */
    int line;         /* line of the text last handed to inih */
    bool at_line_start;
    bool indented;       /* that line starts with blanks */
    char last_name[64];  /* key of the previous name = value */
    int last_line;       /* and its line */
    int key_line[K_N]; /* where each key was set, 0 = not set */
    int section_line;  /* line of the last section header */
    /* "plugin.NAME/key" set in [plugin.NAME] sections so far, and where
     * (grown as needed: past a fixed 64, a repeated key went unnoticed
     * and silently replaced the first) */
    struct iso_seen {
        char key[96];
        int line;
    } *iso_seen;
    int niso_seen, iso_seen_cap;
    bool failed;
    int err_line;
    char err[2 * PATH_MAX];
} parse_state;

/* ---- paths --------------------------------------------------------------- */

/* Collapses "//", "." and ".." of an absolute path textually: the files may
 * not exist yet, so realpath(3) is no option. */
static char *normalize_abs(const char *p)
{
    size_t o = 0;
    char *out = malloc(strlen(p) + 2);

    if (out == NULL)
        return NULL;
    while (*p != '\0') {
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        const char *e = strchrnul(p, '/');
        size_t len = (size_t)(e - p);
        if (len == 1 && p[0] == '.') {
            /* nothing */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else {
            out[o++] = '/';
            memcpy(out + o, p, len);
            o += len;
        }
        p = e;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return out;
}

/* Joins rel onto base (or onto the working directory when base is NULL). */
static char *resolve_against(const char *base, const char *rel)
{
    char *cwd = NULL, *joined = NULL, *res;

    if (rel == NULL)
        return NULL;
    if (rel[0] == '/')
        return normalize_abs(rel);
    if (base == NULL) {
        cwd = getcwd(NULL, 0);
        if (cwd == NULL)
            return NULL;
        base = cwd;
    }
    if (asprintf(&joined, "%s/%s", base, rel) < 0) {
        free(cwd);
        return NULL;
    }
    res = normalize_abs(joined);
    free(joined);
    free(cwd);
    return res;
}

char *ah_config_resolve(const ah_config *cfg, const char *rel)
{
    return resolve_against(cfg != NULL ? cfg->dir : NULL, rel);
}

/* The absolute folder of the INI file `path`. */
static char *ini_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *folder, *res;

    if (slash == NULL)
        return resolve_against(NULL, ".");
    folder = strndup(path, slash == path ? 1 : (size_t)(slash - path));
    if (folder == NULL)
        return NULL;
    res = resolve_against(NULL, folder);
    free(folder);
    return res;
}

static char *sqlite_url(const char *base, const char *rel)
{
    char *abs = resolve_against(base, rel), *url = NULL;

    if (abs == NULL)
        return NULL;
    if (asprintf(&url, "sqlite:%s", abs) < 0)
        url = NULL;
    free(abs);
    return url;
}

/* ---- defaults ------------------------------------------------------------ */

/* key_rel and db_rel are relative to cfg->dir (the INI's folder, or the
 * working directory when there is no file). */
static int fill_defaults(ah_config *cfg, const char *key_rel, const char *db_rel)
{
    cfg->workers = 2;
    cfg->provider_threads = 16;
    cfg->request_timeout_ms = 30000;
    cfg->log_level = AH_LOG_INFO;
    cfg->log_json = false;
    cfg->listen_port = 8080;
    cfg->max_body = 1024 * 1024;
    cfg->http_threads = 2;
    cfg->http_routes_on_bus = true;
    cfg->http_max_connections = 4096;
    cfg->http_max_connections_per_client = 256;
    cfg->http_header_timeout_ms = 10000;
    cfg->http_min_body_rate = 1024;
    cfg->http_tenant_rate = 100;
    cfg->http_tenant_burst = 200;
    cfg->http_timeout_ms = 10000;
    cfg->http_max_attempts = 4;
    cfg->http_backoff_ms = 200;
    cfg->http_backoff_max_ms = 10000;
    cfg->sync_interval_s = 300;
    cfg->webhook_max_failures = 20;
    cfg->webhook_backoff_ms = 1000;
    cfg->webhook_backoff_max_ms = 3600000;
    cfg->webhook_timeout_ms = 10000;
    cfg->webhook_workers = 4;
    cfg->claim_ms = 15000;
    cfg->webhook_max_per_tenant = 2;
    cfg->events_retention_days = 30;
    cfg->log_retention_days = 30;
    cfg->settled_retention_days = 7;
    cfg->bulk_max_queued_items = 10000;
    cfg->bulk_retention_s = 7L * 86400L;
    cfg->key_file = ah_config_resolve(cfg, key_rel);
    cfg->listen_host = strdup("127.0.0.1");
    cfg->store_url = sqlite_url(cfg->dir, db_rel);
    return cfg->key_file != NULL && cfg->listen_host != NULL && cfg->store_url != NULL ? 0
                                                                                      : -1;
}

void ah_config_defaults(ah_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->dir = getcwd(NULL, 0);
    (void)fill_defaults(cfg, "var/host.key", "var/atshub.db");
}

void ah_config_free(ah_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->path);
    free(cfg->dir);
    free(cfg->key_file);
    free(cfg->webhook_allow_networks);
    free(cfg->listen_host);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->store_url);
    free(cfg->admin_socket);
    free(cfg->admin_host);
    free(cfg->admin_token_file);
    for (size_t i = 0; i < cfg->nplugins; i++) {
        free(cfg->plugins[i].name);
        free(cfg->plugins[i].path);
    }
    free(cfg->plugins);
    for (size_t i = 0; i < cfg->nplugin_isos; i++)
        free(cfg->plugin_isos[i].name);
    free(cfg->plugin_isos);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- value parsers ------------------------------------------------------- */

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* "1048576", "512K", "1M" (K = 1024). */
static bool parse_size(const char *s, long *out)
{
    char *end;
    long v, mult = 1;

    if (s == NULL || !isdigit((unsigned char)*s))
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0)
        return false;
    if (*end == 'K' || *end == 'k')
        mult = 1024, end++;
    else if (*end == 'M' || *end == 'm')
        mult = 1024 * 1024, end++;
    if (*end != '\0' || v > AH_MAX_BODY_MAX / mult)
        return false;
    v *= mult;
    if (v < AH_MAX_BODY_MIN)
        return false;
    *out = v;
    return true;
}

/* "host:port" or "[v6]:port". *host is malloc'd, without brackets. */
static bool parse_listen(const char *s, char **host, uint16_t *port)
{
    const char *colon, *h = s;
    size_t hlen;
    long p;
    char *dup;

    if (s == NULL)
        return false;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return false;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strchr(s, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL)
            return false;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || !isdigit((unsigned char)colon[1]) || strlen(colon + 1) > 5 ||
        !parse_long(colon + 1, 0, 65535, &p))
        return false;
    dup = strndup(h, hlen);
    if (dup == NULL)
        return false;
    if (*s == '[') {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, dup, &a6) != 1)
            goto bad;
    } else {
        for (const char *c = dup; *c != '\0'; c++) {
            if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-' && *c != '_')
                goto bad;
        }
    }
    *host = dup;
    *port = (uint16_t)p;
    return true;
bad:
    free(dup);
    return false;
}

/* ---- inih callbacks ------------------------------------------------------ */

static int fail(parse_state *st, const char *fmt, ...) AH_PRINTF(2, 3);
static int fail(parse_state *st, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (st->failed)
        return 0;
    st->failed = true;
    st->err_line = st->line;
    n = snprintf(st->err, sizeof st->err, "%s:%d: ", st->file, st->line);
    if (n < 0 || (size_t)n >= sizeof st->err)
        return 0;
    va_start(ap, fmt);
    vsnprintf(st->err + n, sizeof st->err - (size_t)n, fmt, ap);
    va_end(ap);
    return 0;
}

static int oom(parse_state *st)
{
    return fail(st, "out of memory");
}

static int find_section(const char *name)
{
    for (int i = 0; i < SEC_N; i++) {
        if (strcmp(name, section_names[i]) == 0)
            return i;
    }
    return -1;
}

/* inih reads through this so that the handler knows its line number (libinih
 * 55 has no line in the handler) and so that unknown sections are reported
 * at their header even when they hold no key. */
static char *read_line(char *str, int num, void *stream)
{
    parse_state *st = stream;
    size_t n;
    char *p;

    if (fgets(str, num, st->fp) == NULL)
        return NULL;
    if (st->at_line_start)
        st->line++;
    n = strlen(str);
    st->at_line_start = n > 0 && str[n - 1] == '\n';
    if (!st->at_line_start && !feof(st->fp)) {
        /* inih would cut the line and parse the rest as a line of its own. */
        fail(st, "line too long (at most %d characters)", num - 2);
        return NULL;
    }
    st->indented = *str == ' ' || *str == '\t';
    p = str;
    if (st->line == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '[') {
        char *close = strchr(p, ']');
        if (close != NULL) {
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(close - p - 1), p + 1);
            st->section_line = st->line;
            if (find_section(name) < 0 && strncmp(name, "plugin.", 7) != 0)
                fail(st, "unknown section [%s]", name);
        }
    }
    return str;
}

static int set_int(parse_state *st, enum key k, const char *value, long *out)
{
    const key_def *d = &keys[k];

    if (!parse_long(value, d->min, d->max, out))
        return fail(st, "[%s] %s: expected an integer between %ld and %ld, got '%s'",
                    section_names[d->section], d->name, d->min, d->max, value);
    return 1;
}

/* A file the host reads at start (key, certificate): must be given. */
static int set_path(parse_state *st, enum key k, const char *value, char **out)
{
    char *abs;

    if (*value == '\0')
        return fail(st, "[%s] %s: expected a file path, got ''",
                    section_names[keys[k].section], keys[k].name);
    abs = ah_config_resolve(st->cfg, value);
    if (abs == NULL)
        return oom(st);
    free(*out);
    *out = abs;
    return 1;
}

static int check_readable_file(parse_state *st, enum key k, const char *path)
{
    struct stat sb;

    if (stat(path, &sb) != 0)
        return fail(st, "[%s] %s: %s: %s", section_names[keys[k].section], keys[k].name, path,
                    strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return fail(st, "[%s] %s: %s is not a regular file", section_names[keys[k].section],
                    keys[k].name, path);
    if (access(path, R_OK) != 0)
        return fail(st, "[%s] %s: cannot read %s: %s", section_names[keys[k].section],
                    keys[k].name, path, strerror(errno));
    return 1;
}

static int set_store(parse_state *st, const char *value)
{
    char *url;

    if (strncmp(value, "sqlite:", 7) == 0 && value[7] != '\0') {
        url = sqlite_url(st->cfg->dir, value + 7);
    } else if (strncmp(value, "postgresql://", 13) == 0 ||
               strncmp(value, "postgres://", 11) == 0) {
        url = strdup(value);
    } else {
        /* The value is not echoed: a mistyped URL may carry a password. */
        return fail(st, "[store] url: expected 'sqlite:PATH' or a 'postgresql://' URL");
    }
    if (url == NULL)
        return oom(st);
    free(st->cfg->store_url);
    st->cfg->store_url = url;
    return 1;
}

static int set_value(parse_state *st, enum key k, const char *value)
{
    ah_config *cfg = st->cfg;
    long v;
    int lvl;

    switch (k) {
    case K_WORKERS:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->workers = (int)v;
        return 1;
    case K_TENANT_WORKERS:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->tenant_workers = (int)v;
        return 1;
    case K_PROVIDER_THREADS:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->provider_threads = (int)v;
        return 1;
    case K_REQUEST_TIMEOUT:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->request_timeout_ms = (int)v;
        return 1;
    case K_KEY_FILE:
        return set_path(st, k, value, &cfg->key_file);
    case K_LOG_LEVEL:
        lvl = ah_log_level_parse(value);
        if (lvl < 0)
            return fail(st, "[core] log_level: expected error, warn, info or debug, got '%s'",
                        value);
        cfg->log_level = lvl;
        return 1;
    case K_LOG_FORMAT:
        if (strcmp(value, "plain") == 0)
            cfg->log_json = false;
        else if (strcmp(value, "json") == 0)
            cfg->log_json = true;
        else
            return fail(st, "[core] log_format: expected plain or json, got '%s'", value);
        return 1;
    case K_LISTEN: {
        char *host = NULL;
        uint16_t port;
        if (!parse_listen(value, &host, &port))
            return fail(st, "[http] listen: " AH_LISTEN_HINT ", got '%s'", value);
        free(cfg->listen_host);
        cfg->listen_host = host;
        cfg->listen_port = port;
        return 1;
    }
    case K_MAX_BODY:
        if (!parse_size(value, &v))
            return fail(st,
                        "[http] max_body: expected a size between 1K and 64M "
                        "(bytes, or with suffix K or M), got '%s'",
                        value);
        cfg->max_body = (size_t)v;
        return 1;
    case K_HTTP_THREADS:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->http_threads = (int)v;
        return 1;
    case K_HTTP_MAX_CONNS:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->http_max_connections = (unsigned)v;
        return 1;
    case K_HTTP_MAX_CONNS_CLIENT:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->http_max_connections_per_client = (unsigned)v;
        return 1;
    case K_HTTP_HEADER_TIMEOUT:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->http_header_timeout_ms = v;
        return 1;
    case K_HTTP_MIN_BODY_RATE:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->http_min_body_rate = (unsigned)v;
        return 1;
    case K_HTTP_TENANT_RATE:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->http_tenant_rate = (unsigned)v;
        return 1;
    case K_HTTP_TENANT_BURST:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->http_tenant_burst = (unsigned)v;
        return 1;
    case K_HTTP_PLUGIN_ROUTES:
        if (strcmp(value, "workers") == 0)
            cfg->http_routes_on_bus = true;
        else if (strcmp(value, "inline") == 0)
            cfg->http_routes_on_bus = false;
        else
            return fail(st, "[http] plugin_routes: expected workers or inline, got '%s'", value);
        return 1;
    case K_TLS_CERT:
    case K_TLS_KEY: {
        char **slot = k == K_TLS_CERT ? &cfg->tls_cert : &cfg->tls_key;
        if (!set_path(st, k, value, slot))
            return 0;
        return check_readable_file(st, k, *slot);
    }
    case K_STORE_URL:
        return set_store(st, value);
    case K_OUT_TIMEOUT:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->http_timeout_ms = v;
        return 1;
    case K_OUT_ATTEMPTS:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->http_max_attempts = (int)v;
        return 1;
    case K_OUT_BACKOFF:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->http_backoff_ms = v;
        return 1;
    case K_OUT_BACKOFF_MAX:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->http_backoff_max_ms = v;
        return 1;
    case K_SYNC_INTERVAL:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->sync_interval_s = (int)v;
        return 1;
    case K_WH_MAX_FAILURES:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->webhook_max_failures = (int)v;
        return 1;
    case K_WH_BACKOFF:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->webhook_backoff_ms = v;
        return 1;
    case K_WH_BACKOFF_MAX:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->webhook_backoff_max_ms = v;
        return 1;
    case K_WH_TIMEOUT:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->webhook_timeout_ms = v;
        return 1;
    case K_STORE_CLAIM_MS:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->claim_ms = v;
        return 1;
    case K_WH_WORKERS:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->webhook_workers = (int)v;
        return 1;
    case K_WH_MAX_PER_TENANT:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->webhook_max_per_tenant = (int)v;
        return 1;
    case K_WH_ALLOW_NETWORKS: {
        char why[160];
        ah_netlist *l = ah_netlist_parse(value, why, sizeof why);
        if (l == NULL)
            return fail(st, "[webhooks] allow_networks: %s", why);
        ah_netlist_free(l);
        free(cfg->webhook_allow_networks);
        cfg->webhook_allow_networks = strdup(value);
        if (cfg->webhook_allow_networks == NULL)
            return fail(st, "out of memory");
        return 1;
    }
    case K_EV_RETENTION:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->events_retention_days = (int)v;
        return 1;
    case K_LOG_RETENTION:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->log_retention_days = (int)v;
        return 1;
    case K_SETTLED_RETENTION:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->settled_retention_days = (int)v;
        return 1;
    case K_BULK_MAX_QUEUED:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->bulk_max_queued_items = v;
        return 1;
    case K_BULK_RETENTION:
        if (!set_int(st, k, value, &v))
            return 0;
        cfg->bulk_retention_s = v;
        return 1;
    case K_ADMIN_SOCKET:
        /* "off" (or empty) turns the Unix socket off. */
        if (*value == '\0' || strcmp(value, "off") == 0) {
            free(cfg->admin_socket);
            cfg->admin_socket = NULL;
            cfg->admin_socket_off = true;
            return 1;
        }
        cfg->admin_socket_off = false;
        if (!set_path(st, k, value, &cfg->admin_socket))
            return 0;
        if (strlen(cfg->admin_socket) >= 108)
            return fail(st, "[admin] socket: the path '%s' is longer than a Unix socket "
                        "path may be (107 bytes)", cfg->admin_socket);
        return 1;
    case K_ADMIN_LISTEN: {
        char *host = NULL;
        uint16_t port;
        if (!parse_listen(value, &host, &port))
            return fail(st, "[admin] listen: " AH_LISTEN_HINT ", got '%s'", value);
        free(cfg->admin_host);
        cfg->admin_host = host;
        cfg->admin_port = port;
        return 1;
    }
    case K_ADMIN_TOKEN_FILE:
        if (!set_path(st, k, value, &cfg->admin_token_file))
            return 0;
        /* A missing file is made (random, mode 0600) when the daemon starts. */
        if (access(cfg->admin_token_file, F_OK) != 0 && errno == ENOENT)
            return 1;
        return check_readable_file(st, k, cfg->admin_token_file);
    case K_N:
        break;
    }
    return fail(st, "internal error: unhandled key");
}

static bool valid_plugin_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (!(*s >= 'a' && *s <= 'z') && !(*s >= '0' && *s <= '9') && *s != '_')
            return false;
    }
    return true;
}

static int add_plugin(parse_state *st, const char *name, const char *value)
{
    ah_config *cfg = st->cfg;
    ah_plugin_conf *grown, *pc;
    struct stat sb;
    char *path;

    if (!valid_plugin_name(name))
        return fail(st, "[plugins] '%s': a plugin name is made of a-z, 0-9 and _", name);
    for (size_t i = 0; i < cfg->nplugins; i++) {
        if (strcmp(cfg->plugins[i].name, name) == 0)
            return fail(st, "plugin '%s' declared twice (first at line %d)", name,
                        cfg->plugins[i].line);
    }
    if (*value == '\0')
        return fail(st, "plugin '%s': expected the path of a .so file, got ''", name);
    path = ah_config_resolve(cfg, value);
    if (path == NULL)
        return oom(st);
    if (stat(path, &sb) != 0) {
        int e = errno;
        if (e == ENOENT)
            fail(st, "plugin '%s': no such file %s (build first: cmake --build build)", name,
                 path);
        else
            fail(st, "plugin '%s': cannot stat %s: %s", name, path, strerror(e));
        free(path);
        return 0;
    }
    if (!S_ISREG(sb.st_mode)) {
        fail(st, "plugin '%s': %s is not a regular file", name, path);
        free(path);
        return 0;
    }
    if (access(path, R_OK) != 0) {
        fail(st, "plugin '%s': cannot read %s: %s", name, path, strerror(errno));
        free(path);
        return 0;
    }
    grown = realloc(cfg->plugins, (cfg->nplugins + 1) * sizeof *grown);
    if (grown == NULL) {
        free(path);
        return oom(st);
    }
    cfg->plugins = grown;
    pc = &cfg->plugins[cfg->nplugins];
    pc->name = strdup(name);
    if (pc->name == NULL) {
        free(path);
        return oom(st);
    }
    pc->path = path;
    pc->line = st->line;
    cfg->nplugins++;
    return 1;
}

/* ---- [plugin.NAME]: how one plugin runs ------------------------------- */

/* "268435456", "512K", "256M", "2G" (K = 1024), between 16M and 64G. */
static bool parse_mem(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v, mult = 1;

    if (s == NULL || !isdigit((unsigned char)*s))
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0)
        return false;
    if (*end == 'K' || *end == 'k')
        mult = 1024ULL, end++;
    else if (*end == 'M' || *end == 'm')
        mult = 1024ULL * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mult = 1024ULL * 1024 * 1024, end++;
    if (*end != '\0' || v > (64ULL << 30) / mult)
        return false;
    v *= mult;
    if (v < (16ULL << 20))
        return false;
    *out = v;
    return true;
}

const ah_plugin_iso_conf *ah_config_plugin_iso(const ah_config *cfg, const char *name)
{
    for (size_t i = 0; cfg != NULL && name != NULL && i < cfg->nplugin_isos; i++)
        if (strcmp(cfg->plugin_isos[i].name, name) == 0)
            return &cfg->plugin_isos[i];
    return NULL;
}

void ah_config_plugin_iso_resolve(const ah_config *cfg, const char *name,
                                  ah_plugin_iso_conf *out)
{
    const ah_plugin_iso_conf *pi = ah_config_plugin_iso(cfg, name);
    if (pi != NULL) {
        *out = *pi;
        return;
    }
    *out = (ah_plugin_iso_conf){
        .name = (char *)name,
        .isolation = AH_ISOLATION_PROCESS,
        .call_timeout_ms = 30000,
        .restart_backoff_ms = 1000,
        .processes = 1,
    };
}

static ah_plugin_iso_conf *plugin_iso(parse_state *st, const char *pname)
{
    ah_config *cfg = st->cfg;
    ah_plugin_iso_conf *grown, *pi;

    for (size_t i = 0; i < cfg->nplugin_isos; i++)
        if (strcmp(cfg->plugin_isos[i].name, pname) == 0)
            return &cfg->plugin_isos[i];
    grown = realloc(cfg->plugin_isos, (cfg->nplugin_isos + 1) * sizeof *grown);
    if (grown == NULL)
        return NULL;
    cfg->plugin_isos = grown;
    pi = &cfg->plugin_isos[cfg->nplugin_isos];
    memset(pi, 0, sizeof *pi);
    pi->name = strdup(pname);
    if (pi->name == NULL)
        return NULL;
    pi->isolation = AH_ISOLATION_PROCESS;
    pi->call_timeout_ms = 30000;
    pi->restart_backoff_ms = 1000;
    pi->processes = 1;
    pi->line = st->section_line;
    cfg->nplugin_isos++;
    return pi;
}

static int set_plugin_iso(parse_state *st, const char *section, const char *name,
                          const char *value)
{
    const char *pname = section + 7;
    ah_plugin_iso_conf *pi;
    long v;

    if (!valid_plugin_name(pname))
        return fail(st, "[%s]: a plugin name is made of a-z, 0-9 and _", section);
    char seen[96];
    snprintf(seen, sizeof seen, "%.64s/%.24s", pname, name);
    for (int i = 0; i < st->niso_seen; i++)
        if (strcmp(st->iso_seen[i].key, seen) == 0)
            return fail(st, "duplicate key '%s' in [%s] (first at line %d)", name, section,
                        st->iso_seen[i].line);
    if (st->niso_seen == st->iso_seen_cap) {
        int cap = st->iso_seen_cap > 0 ? 2 * st->iso_seen_cap : 32;
        struct iso_seen *grown = realloc(st->iso_seen, (size_t)cap * sizeof *grown);
        if (grown == NULL)
            return oom(st);
        st->iso_seen = grown;
        st->iso_seen_cap = cap;
    }
    memcpy(st->iso_seen[st->niso_seen].key, seen, sizeof seen);
    st->iso_seen[st->niso_seen++].line = st->line;
    pi = plugin_iso(st, pname);
    if (pi == NULL)
        return oom(st);
    if (strcmp(name, "isolation") == 0) {
        if (strcmp(value, "process") == 0)
            pi->isolation = AH_ISOLATION_PROCESS;
        else if (strcmp(value, "in_process") == 0)
            pi->isolation = AH_ISOLATION_IN_PROCESS;
        else
            return fail(st, "[%s] isolation: expected process or in_process, got '%s'",
                        section, value);
    } else if (strcmp(name, "memory_max") == 0) {
        if (strcmp(value, "0") == 0 || strcmp(value, "off") == 0)
            pi->memory_max = 0;
        else if (!parse_mem(value, &pi->memory_max))
            return fail(st, "[%s] memory_max: expected a size between 16M and 64G "
                            "(suffix K, M or G) or off, got '%s'",
                        section, value);
    } else if (strcmp(name, "call_timeout_ms") == 0) {
        if (!parse_long(value, 10, 600000, &v))
            return fail(st, "[%s] call_timeout_ms: expected an integer between 10 and "
                            "600000, got '%s'",
                        section, value);
        pi->call_timeout_ms = v;
    } else if (strcmp(name, "max_calls") == 0) {
        if (!parse_long(value, 0, 1000000000L, &v))
            return fail(st, "[%s] max_calls: expected an integer between 0 (never "
                            "recycle) and 1000000000, got '%s'",
                        section, value);
        pi->max_calls = v;
    } else if (strcmp(name, "restart_backoff_ms") == 0) {
        if (!parse_long(value, 10, 60000, &v))
            return fail(st, "[%s] restart_backoff_ms: expected an integer between 10 "
                            "and 60000, got '%s'",
                        section, value);
        pi->restart_backoff_ms = v;
    } else if (strcmp(name, "processes") == 0) {
        if (!parse_long(value, 1, 64, &v))
            return fail(st, "[%s] processes: expected an integer between 1 and 64, got '%s'",
                        section, value);
        pi->processes = (int)v;
    } else if (strcmp(name, "env") == 0) {
        /* Names of [A-Za-z_][A-Za-z0-9_]*, comma-separated, blanks around
         * them ignored; kept as "A,B". */
        char out[sizeof pi->env];
        size_t o = 0;
        const char *p = value;
        for (;;) {
            while (*p == ' ' || *p == '\t')
                p++;
            const char *b = p;
            while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_' ||
                   (p > b && *p >= '0' && *p <= '9'))
                p++;
            size_t n = (size_t)(p - b);
            while (*p == ' ' || *p == '\t')
                p++;
            if (n == 0 || (*p != ',' && *p != '\0') || o + n + 2 > sizeof out)
                return fail(st, "[%s] env: expected names of environment variables "
                                "(letters, digits, _), comma-separated, at most %zu "
                                "characters, got '%s'",
                            section, sizeof out - 1, value);
            if (o > 0)
                out[o++] = ',';
            memcpy(out + o, b, n);
            o += n;
            if (*p == '\0')
                break;
            p++;
        }
        out[o] = '\0';
        memcpy(pi->env, out, o + 1);
    } else {
        return fail(st, "unknown key '%s' in [%s] (expected isolation, memory_max, "
                        "call_timeout_ms, max_calls, restart_backoff_ms, processes or env)",
                    name, section);
    }
    return 1;
}

static int on_value(void *user, const char *section, const char *name, const char *value)
{
    parse_state *st = user;
    int sec;

    if (st->failed)
        return 0; /* report the first problem only */
    /* inih joins an indented line to the value before it and hands it over
     * as the same key again; say so rather than "duplicate key". */
    if (st->indented && st->last_line != 0 && strcmp(name, st->last_name) == 0)
        return fail(st, "indented line continues '%s' of line %d: multi-line values are "
                        "not supported",
                    name, st->last_line);
    snprintf(st->last_name, sizeof st->last_name, "%s", name);
    st->last_line = st->line;
    if (*section == '\0')
        return fail(st, "key '%s' outside any section", name);
    if (strncmp(section, "plugin.", 7) == 0)
        return set_plugin_iso(st, section, name, value);
    sec = find_section(section);
    if (sec < 0)
        return fail(st, "unknown section [%s]", section);
    if (sec == SEC_PLUGINS)
        return add_plugin(st, name, value);
    for (int k = 0; k < K_N; k++) {
        if ((int)keys[k].section != sec || strcmp(keys[k].name, name) != 0)
            continue;
        if (st->key_line[k] != 0)
            return fail(st, "duplicate key '%s' in [%s] (first at line %d)", name, section,
                        st->key_line[k]);
        st->key_line[k] = st->line;
        return set_value(st, (enum key)k, value);
    }
    return fail(st, "unknown key '%s' in [%s]", name, section);
}

/* ---- load ---------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...) AH_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Checks that need the whole file. */
static int check_after_parse(parse_state *st, char *err, size_t errlen)
{
    ah_config *cfg = st->cfg;

    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        set_err(err, errlen, "%s: tls_cert and tls_key must be given together", st->file);
        return -1;
    }
    if (cfg->admin_host != NULL && cfg->admin_token_file == NULL) {
        set_err(err, errlen, "%s:%d: [admin] listen needs token_file (the admin API is "
                "refused without a token on a TCP port)", st->file, st->key_line[K_ADMIN_LISTEN]);
        return -1;
    }
    for (size_t i = 0; i < cfg->nplugin_isos; i++) {
        const ah_plugin_iso_conf *pi = &cfg->plugin_isos[i];
        bool declared = false;
        for (size_t j = 0; j < cfg->nplugins && !declared; j++)
            declared = strcmp(cfg->plugins[j].name, pi->name) == 0;
        if (!declared) {
            set_err(err, errlen, "%s:%d: [plugin.%s]: no plugin '%s' in [plugins]", st->file,
                    pi->line, pi->name, pi->name);
            return -1;
        }
    }
    if (cfg->http_backoff_max_ms < cfg->http_backoff_ms) {
        int a = st->key_line[K_OUT_BACKOFF], b = st->key_line[K_OUT_BACKOFF_MAX];
        set_err(err, errlen,
                "%s:%d: [outbound] backoff_max_ms (%ld) must be >= backoff_ms (%ld)", st->file,
                a > b ? a : b, cfg->http_backoff_max_ms, cfg->http_backoff_ms);
        return -1;
    }
    if (cfg->webhook_backoff_max_ms < cfg->webhook_backoff_ms) {
        int a = st->key_line[K_WH_BACKOFF], b = st->key_line[K_WH_BACKOFF_MAX];
        set_err(err, errlen,
                "%s:%d: [webhooks] backoff_max_ms (%ld) must be >= backoff_ms (%ld)", st->file,
                a > b ? a : b, cfg->webhook_backoff_max_ms, cfg->webhook_backoff_ms);
        return -1;
    }
    return 0;
}

static int apply_env(ah_config *cfg, char *err, size_t errlen)
{
    const char *listen = getenv("ATSHUB_LISTEN");
    const char *store = getenv("ATSHUB_STORE");

    if (listen != NULL && *listen != '\0') {
        char *host = NULL;
        uint16_t port;
        if (!parse_listen(listen, &host, &port)) {
            set_err(err, errlen, "ATSHUB_LISTEN: " AH_LISTEN_HINT ", got '%s'", listen);
            return -1;
        }
        free(cfg->listen_host);
        cfg->listen_host = host;
        cfg->listen_port = port;
    }
    if (store != NULL && *store != '\0') {
        char *url;
        if (strncmp(store, "sqlite:", 7) == 0 && store[7] != '\0') {
            url = sqlite_url(NULL, store + 7); /* the operator's working directory */
        } else if (strncmp(store, "postgresql://", 13) == 0 ||
                   strncmp(store, "postgres://", 11) == 0) {
            url = strdup(store);
        } else {
            set_err(err, errlen, "ATSHUB_STORE: expected 'sqlite:PATH' or a 'postgresql://' URL");
            return -1;
        }
        if (url == NULL) {
            set_err(err, errlen, "ATSHUB_STORE: out of memory");
            return -1;
        }
        free(cfg->store_url);
        cfg->store_url = url;
    }
    return 0;
}

int ah_config_load(const char *path, ah_config *out, char *err, size_t errlen)
{
    parse_state st;
    struct stat sb;
    FILE *fp;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    memset(out, 0, sizeof *out);
    if (path == NULL || *path == '\0') {
        set_err(err, errlen, "no configuration file given");
        return -1;
    }
    fp = fopen(path, "re");
    if (fp == NULL) {
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        set_err(err, errlen, "%s: cannot open: not a regular file", path);
        fclose(fp);
        return -1;
    }
    out->path = strdup(path);
    out->dir = ini_dir(path);
    if (out->path == NULL || out->dir == NULL ||
        fill_defaults(out, "../var/host.key", "../var/atshub.db") != 0) {
        set_err(err, errlen, "%s: out of memory", path);
        fclose(fp);
        goto fail;
    }

    memset(&st, 0, sizeof st);
    st.cfg = out;
    st.fp = fp;
    st.file = path;
    st.at_line_start = true;
    rc = ini_parse_stream(read_line, &st, on_value, &st);
    free(st.iso_seen); /* only the parse checks it */
    st.iso_seen = NULL;
    if (ferror(fp) && !st.failed) {
        set_err(err, errlen, "%s: read error", path);
        fclose(fp);
        goto fail;
    }
    fclose(fp);
    /* inih reports the first failing line, be it its own syntax error or a
     * value we refused; ours carries a message, its own does not. */
    if (st.failed && (rc == 0 || rc >= st.err_line)) {
        set_err(err, errlen, "%s", st.err);
        goto fail;
    }
    if (rc > 0) {
        set_err(err, errlen, "%s:%d: syntax error", path, rc);
        goto fail;
    }
    if (rc < 0) {
        set_err(err, errlen, "%s: cannot parse (%d)", path, rc);
        goto fail;
    }
    if (check_after_parse(&st, err, errlen) != 0 || apply_env(out, err, errlen) != 0)
        goto fail;
    return 0;
fail:
    ah_config_free(out);
    return -1;
}
