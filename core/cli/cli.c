/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The atshub command line. Every command takes -c FILE and --json anywhere
 * on the line. Exit codes: 0 ok, 1 runtime error, 2 usage error.
 * State-changing commands write the store directly; a running daemon picks
 * the change up within a second (it watches the store's data version).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli.h"
#include "daemon.h"
#include "sync.h"
#include "admin.h"
#include "core.h"
#include "eventlog.h"
#include "ops.h"
#include "intlog.h"
#include "json.h"

#define EXIT_USAGE 2

typedef struct cli {
    const char *config;
    bool json;
    bool help;
    int argc;    /* positional arguments after global options are removed */
    char **argv;
    /* command options */
    const char *settings_of;
    const char *ops_of;  /* plugins --ops NAME */
    bool openapi;        /* plugins --openapi */
    const char *sets[64];
    int nsets;
    ah_log_filter filter;
    const char *type; /* sync --type */
    const char *path; /* plugin reload --path */
    const char *after; /* events --after */
} cli;

/* The command options: getopt_long's codes, each a bit of cmd.opts (the
 * global ones, -c, --json, --help and --version, go with every command). */
enum {
    O_TENANT = 1, O_SOURCE, O_ACTION, O_STATUS, O_SINCE, O_UNTIL, O_LIMIT, O_TYPE,
    O_PATH, O_OPS, O_OPENAPI, O_AFTER, O_SETTINGS, O_SET, O_COUNT
};
#define OPT(o) (1u << (o))

typedef struct cmd {
    const char *name;
    int (*run)(cli *c);
    const char *usage;
    const char *help;
    unsigned opts; /* OPT() of each command option it takes */
} cmd;

/* ------------------------------------------------------------------------ */

/* An option's whole number within [lo, hi]: "4294967297" is no 1, as
 * (int)strtol had it. */
static bool int_opt(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

/* --json anywhere on the line, even after the mistake (ah_cli_main looks
 * before parsing): a usage error is then also the one JSON document on
 * stdout, as every other error is. */
static bool usage_json;

/* A usage error (exit 2): on stderr, and under --json also on stdout as
 * {"error":{"code":"usage","message":...}}. */
static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void usage_error(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "atshub: %s (see: atshub --help)\n", msg);
    if (usage_json)
        ah_cli_print_error("usage", msg);
}

static int fail(cli *c, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(cli *c, const char *code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->json) {
        ah_cli_print_error(code, msg);
    } else {
        fprintf(stderr, "atshub: %s\n", msg);
    }
    return 1;
}

void ah_cli_print_error(const char *code, const char *msg)
{
    /* Built, not printed into a format: msg may hold quotes or
     * backslashes (a path, a URL). */
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    char *t = e != NULL && cJSON_AddStringToObject(e, "code", code) != NULL &&
                      cJSON_AddStringToObject(e, "message", msg) != NULL
                  ? cJSON_PrintUnformatted(o)
                  : NULL;
    puts(t != NULL ? t : "{\"error\":{\"code\":\"internal_error\",\"message\":\"out of memory\"}}");
    free(t);
    cJSON_Delete(o);
}

static void print_json(cJSON *o)
{
    char *t = cJSON_Print(o);
    if (t != NULL)
        puts(t);
    free(t);
}

static const char *default_config(void)
{
    static const char *const candidates[] = {AH_SOURCE_DIR "/etc/atshub.ini",
                                             "/etc/atshub/atshub.ini"};
    for (size_t i = 0; i < 2; i++)
        if (access(candidates[i], R_OK) == 0)
            return candidates[i];
    return candidates[0];
}

/* only_tenant (may be NULL): load only the plugins of that tenant's
 * connections (ah_core_opts). */
static ah_core *open_core_for(cli *c, bool plugins, bool bus, const char *only_tenant)
{
    ah_config cfg;
    char err[1024];
    if (ah_config_load(c->config, &cfg, err, sizeof err) != 0) {
        fail(c, "config_error", "%s", err);
        return NULL;
    }
    ah_core_opts o = {.load_plugins = plugins, .start_bus = bus, .only_tenant = only_tenant};
    ah_core *core = ah_daemon_open(&cfg, &o, err, sizeof err);
    if (core == NULL) {
        ah_config_free(&cfg);
        fail(c, "startup_error", "%s", err);
    }
    return core;
}

static ah_core *open_core(cli *c, bool plugins, bool bus)
{
    return open_core_for(c, plugins, bus, NULL);
}

/* ------------------------------------------------------------------------ */
/* serve                                                                     */
/* ------------------------------------------------------------------------ */

static int cmd_serve(cli *c)
{
    if (c->argc != 0) {
        usage_error("serve takes no arguments");
        return EXIT_USAGE;
    }
    /* Before the first thread (the bus starts its workers on open): a
     * signal must never reach a thread that does not sigwait for it. */
    ah_daemon_block_signals();
    ah_core *core = open_core(c, true, true);
    if (core == NULL)
        return 1;
    int rc = ah_daemon_serve(core);
    ah_daemon_close(core);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* plugins, plugin check                                                     */
/* ------------------------------------------------------------------------ */

/* One admin API request to the daemon the configuration names. 0 with the
 * parsed reply (status in *status), or -1 with err when no daemon answers
 * or the configuration cannot be read. */
static int daemon_call(cli *c, const char *method, const char *path, const char *body,
                       long *status, cJSON **reply, char *err, size_t errlen)
{
    ah_config cfg;
    if (ah_config_load(c->config, &cfg, err, errlen) != 0)
        return -1;
    char *text = NULL;
    int rc = ah_admin_call(&cfg, method, path, body, status, &text, err, errlen);
    ah_config_free(&cfg);
    if (rc != 0)
        return -1;
    *reply = cJSON_Parse(text != NULL ? text : "");
    free(text);
    if (*reply == NULL) {
        snprintf(err, errlen, "the daemon answered %ld without a JSON body", *status);
        return -1;
    }
    return 0;
}

/* The running daemon's plugin list, or NULL when none answers. */
static cJSON *daemon_plugins(cli *c)
{
    char err[1024];
    long status = 0;
    cJSON *reply = NULL;
    if (daemon_call(c, "GET", "/admin/plugins", NULL, &status, &reply, err, sizeof err) != 0)
        return NULL;
    cJSON *data = status == 200 ? cJSON_DetachItemFromObject(reply, "data") : NULL;
    cJSON_Delete(reply);
    if (!cJSON_IsArray(data)) {
        cJSON_Delete(data);
        return NULL;
    }
    return data;
}

/* "1..200 chars", "<= 20 items", "1 to 500", "html|text": one column. */
static void field_limits(const cJSON *f, char *out, size_t n)
{
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(f, "type"));
    bool array = type != NULL && strncmp(type, "array", 5) == 0;
    bool object = type != NULL && strcmp(type, "object") == 0;
    const char *unit = array ? "items" : object ? "members" : "chars";
    const cJSON *lo = cJSON_GetObjectItem(f, "min_size"), *hi = cJSON_GetObjectItem(f, "max_size");
    const cJSON *item = cJSON_GetObjectItem(f, "max_item");
    const cJSON *min = cJSON_GetObjectItem(f, "min"), *max = cJSON_GetObjectItem(f, "max");
    const char *one_of = cJSON_GetStringValue(cJSON_GetObjectItem(f, "one_of"));
    size_t w = 0;
    out[0] = '\0';
#define LIM(...)                                                               \
    do {                                                                       \
        int k_ = snprintf(out + w, n - w, __VA_ARGS__);                        \
        if (k_ > 0 && (size_t)k_ < n - w)                                      \
            w += (size_t)k_;                                                   \
    } while (0)
    if (lo != NULL && hi != NULL)
        LIM("%d..%d %s", lo->valueint, hi->valueint, unit);
    else if (hi != NULL)
        LIM("<= %d %s", hi->valueint, unit);
    else if (lo != NULL)
        LIM(">= %d %s", lo->valueint, unit);
    if (item != NULL)
        LIM("%s<= %d chars each", w ? ", " : "", item->valueint);
    if (min != NULL && max != NULL)
        LIM("%s%.15g to %.15g", w ? ", " : "", min->valuedouble, max->valuedouble);
    if (one_of != NULL)
        LIM("%s%s", w ? ", " : "", one_of);
#undef LIM
    if (w == 0)
        snprintf(out, n, "-");
}

static void print_fields(const cJSON *fields, int depth)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, fields) {
        char name[96], lim[160];
        snprintf(name, sizeof name, "%*s%s", 2 + 2 * depth, "",
                 cJSON_GetStringValue(cJSON_GetObjectItem(f, "name")));
        field_limits(f, lim, sizeof lim);
        printf("%-28s %-17s %-8s %-26s %s\n", name,
               cJSON_GetStringValue(cJSON_GetObjectItem(f, "type")),
               cJSON_IsTrue(cJSON_GetObjectItem(f, "required")) ? "yes" : "no", lim,
               cJSON_GetStringValue(cJSON_GetObjectItem(f, "help")));
        const cJSON *sub = cJSON_GetObjectItem(f, "fields");
        if (sub != NULL)
            print_fields(sub, depth + 1);
    }
}

/* plugins --ops NAME and plugins --openapi: the operation field tables of
 * the plugins this configuration loads (read from the files themselves). */
static int cmd_plugin_ops(cli *c)
{
    ah_core *core = open_core(c, true, false);
    if (core == NULL)
        return 1;
    if (c->openapi) {
        char *text = ah_core_openapi_bus(core, c->ops_of);
        ah_daemon_close(core);
        if (text == NULL)
            return fail(c, "not_found", "no plugin named '%s' is loaded",
                        c->ops_of != NULL ? c->ops_of : "");
        fputs(text, stdout);
        free(text);
        return 0;
    }
    cJSON *o = ah_core_plugin_ops_json(core, c->ops_of);
    ah_daemon_close(core);
    if (o == NULL)
        return fail(c, "not_found", "no plugin named '%s' is loaded", c->ops_of);
    if (c->json) {
        print_json(o);
        cJSON_Delete(o);
        return 0;
    }
    printf("%s %s: %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(o, "name")),
           cJSON_GetStringValue(cJSON_GetObjectItem(o, "version")),
           cJSON_GetStringValue(cJSON_GetObjectItem(o, "description")));
    const cJSON *ops = cJSON_GetObjectItem(o, "ops");
    if (ops->child == NULL)
        printf("\nno operation declares its fields: the plugin checks every body itself\n");
    const cJSON *t;
    cJSON_ArrayForEach(t, ops) {
        printf("\n%s\n", t->string);
        if (t->child == NULL) {
            printf("  (no fields: the body must be {})\n");
            continue;
        }
        printf("%-28s %-17s %-8s %-26s %s\n", "  FIELD", "TYPE", "REQUIRED", "LIMITS", "HELP");
        print_fields(t, 0);
    }
    const cJSON *u;
    cJSON_ArrayForEach(u, cJSON_GetObjectItem(o, "unchecked"))
        printf("\n%s\n  (no field table: the plugin checks its body)\n", u->valuestring);
    cJSON_Delete(o);
    return 0;
}

static int cmd_plugins(cli *c)
{
    if (c->argc != 0) {
        usage_error("plugins takes no arguments besides --settings NAME, --ops NAME, --openapi");
        return EXIT_USAGE;
    }
    if ((c->ops_of != NULL || c->openapi) && c->settings_of != NULL) {
        usage_error("plugins: --settings and --ops/--openapi do not go together");
        return EXIT_USAGE;
    }
    /* --openapi prints YAML (docs/openapi.yaml's section); --json promises
     * one JSON document: the two cannot both hold. */
    if (c->openapi && c->json) {
        usage_error("plugins: --openapi prints YAML, not JSON: leave out --json "
                    "(--ops NAME --json prints the same tables as JSON)");
        return EXIT_USAGE;
    }
    if (c->ops_of != NULL || c->openapi)
        return cmd_plugin_ops(c);
    /* A running daemon's live view first (generations, in-flight calls);
     * without one, what this process loads from the configuration. */
    ah_core *core = NULL;
    cJSON *list = c->settings_of == NULL ? daemon_plugins(c) : NULL;
    if (list == NULL) {
        core = open_core(c, true, false);
        if (core == NULL)
            return 1;
        list = ah_core_plugins_json(core, c->settings_of);
    }
    if (list == NULL) {
        ah_daemon_close(core);
        return fail(c, "not_found", "no plugin named '%s' is loaded", c->settings_of);
    }
    if (c->json) {
        print_json(list);
    } else if (c->settings_of != NULL) {
        const cJSON *p = cJSON_GetArrayItem(list, 0);
        printf("%s %s: %s\n\n", cJSON_GetObjectItem(p, "name")->valuestring,
               cJSON_GetObjectItem(p, "version")->valuestring,
               cJSON_GetObjectItem(p, "description")->valuestring);
        printf("%-22s %-7s %-10s %-9s %-7s %s\n", "SETTING", "TYPE", "DEFAULT", "REQUIRED",
               "SECRET", "HELP");
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(p, "settings")) {
            const cJSON *d = cJSON_GetObjectItem(s, "default");
            printf("%-22s %-7s %-10s %-9s %-7s %s\n", cJSON_GetObjectItem(s, "key")->valuestring,
                   cJSON_GetObjectItem(s, "type")->valuestring,
                   cJSON_IsString(d) ? d->valuestring : "-",
                   cJSON_IsTrue(cJSON_GetObjectItem(s, "required")) ? "yes" : "no",
                   cJSON_IsTrue(cJSON_GetObjectItem(s, "generated"))
                       ? "generated"
                       : (cJSON_IsTrue(cJSON_GetObjectItem(s, "secret")) ? "yes" : "no"),
                   cJSON_GetObjectItem(s, "help")->valuestring);
        }
    } else {
        size_t ncap;
        const char *const *caps = ah_router_capabilities(&ncap);
        printf("%-14s %-9s %-5s %-4s %-9s %s\n", "NAME", "VERSION", "ABI", "GEN", "IN-FLIGHT",
               "PATH");
        const cJSON *p;
        cJSON_ArrayForEach(p, list) {
            printf("%-14s %-9s %-5s %-4d %-9d %s\n", cJSON_GetObjectItem(p, "name")->valuestring,
                   cJSON_GetObjectItem(p, "version")->valuestring,
                   cJSON_GetObjectItem(p, "abi")->valuestring,
                   cJSON_GetObjectItem(p, "generation")->valueint,
                   cJSON_GetObjectItem(p, "inflight")->valueint,
                   cJSON_GetObjectItem(p, "path")->valuestring);
        }
        /* How each plugin runs, and what its process went through. */
        printf("\n%-14s %-10s %-8s %-13s %-8s %-7s %s\n", "PLUGIN", "ISOLATION", "PID", "STATE",
               "RESTARTS", "CRASHES", "LAST CRASH");
        cJSON_ArrayForEach(p, list) {
            const cJSON *iso = cJSON_GetObjectItem(p, "isolation");
            const cJSON *proc = cJSON_GetObjectItem(p, "process");
            if (!cJSON_IsObject(proc)) {
                printf("%-14s %-10s\n", cJSON_GetObjectItem(p, "name")->valuestring,
                       cJSON_IsString(iso) ? iso->valuestring : "in_process");
                continue;
            }
            const cJSON *pid = cJSON_GetObjectItem(proc, "pid");
            const cJSON *last = cJSON_GetObjectItem(proc, "last_crash");
            const cJSON *cause = cJSON_GetObjectItem(last, "cause");
            char pidbuf[16];
            snprintf(pidbuf, sizeof pidbuf, "%d", cJSON_IsNumber(pid) ? pid->valueint : 0);
            printf("%-14s %-10s %-8s %-13s %-8d %-7d %s\n",
                   cJSON_GetObjectItem(p, "name")->valuestring, iso->valuestring,
                   cJSON_IsNumber(pid) ? pidbuf : "-",
                   cJSON_GetObjectItem(proc, "state")->valuestring,
                   cJSON_GetObjectItem(proc, "restarts")->valueint,
                   cJSON_GetObjectItem(proc, "crashes")->valueint,
                   cJSON_IsString(cause) ? cause->valuestring : "-");
        }
        printf("\nCOVERAGE (operations served / operations in the capability)\n%-14s", "PLUGIN");
        for (size_t i = 0; i < ncap; i++)
            printf(" %-*s", (int)(strlen(caps[i]) > 5 ? strlen(caps[i]) : 5), caps[i]);
        putchar('\n');
        cJSON_ArrayForEach(p, list) {
            printf("%-14s", cJSON_GetObjectItem(p, "name")->valuestring);
            const cJSON *cov = cJSON_GetObjectItem(p, "coverage");
            for (size_t i = 0; i < ncap; i++) {
                const char *v = cJSON_GetObjectItem(cov, caps[i])->valuestring;
                printf(" %-*s", (int)(strlen(caps[i]) > 5 ? strlen(caps[i]) : 5),
                       v[0] == '0' ? "-" : v);
            }
            putchar('\n');
        }
    }
    cJSON_Delete(list);
    ah_daemon_close(core);
    return 0;
}

/* The error envelope of an admin API reply, as fail() prints it. */
static int fail_reply(cli *c, const cJSON *reply, long status)
{
    const cJSON *e = cJSON_GetObjectItem(reply, "error");
    const cJSON *code = cJSON_GetObjectItem(e, "code"), *msg = cJSON_GetObjectItem(e, "message");
    return fail(c, cJSON_IsString(code) ? code->valuestring : "daemon_error", "%s",
                cJSON_IsString(msg) ? msg->valuestring : "the daemon refused the request");
    (void)status;
}

static int plugin_reload(cli *c, const char *name)
{
    cJSON *body = cJSON_CreateObject();
    char *path = c->path != NULL ? realpath(c->path, NULL) : NULL;
    if (c->path != NULL && path == NULL) {
        cJSON_Delete(body);
        return fail(c, "not_found", "%s: %m", c->path);
    }
    if (path != NULL)
        cJSON_AddStringToObject(body, "path", path);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    free(path);
    char escaped[256], url[320], err[1024];
    snprintf(escaped, sizeof escaped, "%s", name);
    snprintf(url, sizeof url, "/admin/plugins/%s/reload", escaped);
    long status = 0;
    cJSON *reply = NULL;
    int rc = daemon_call(c, "POST", url, text, &status, &reply, err, sizeof err);
    free(text);
    if (rc != 0)
        return fail(c, "no_daemon", "plugin reload acts on the running daemon: %s", err);
    if (status != 200) {
        rc = fail_reply(c, reply, status);
        cJSON_Delete(reply);
        return rc;
    }
    const cJSON *d = cJSON_GetObjectItem(reply, "data");
    if (c->json)
        print_json((cJSON *)d);
    else
        printf("%s %s now serves as generation %d (generation %d retires when its last call "
               "returns)\n", name, cJSON_GetObjectItem(d, "version")->valuestring,
               cJSON_GetObjectItem(d, "generation")->valueint,
               cJSON_GetObjectItem(d, "previous_generation")->valueint);
    cJSON_Delete(reply);
    return 0;
}

#define AH_CHECK_CYCLES 100

static int plugin_check(cli *c, const char *path)
{
    char err[1024];
    cJSON *report = cJSON_CreateObject();
    if (report == NULL)
        return fail(c, "internal_error", "out of memory");
    cJSON_AddStringToObject(report, "path", path);
    int rc = 0;
    if (ah_plugin_check_full(path, AH_CHECK_CYCLES, report, err, sizeof err) != 0) {
        rc = fail(c, "plugin_refused", "%s", err);
    } else if (c->json) {
        cJSON_AddBoolToObject(report, "ok", true);
        print_json(report);
    } else {
        printf("%s: ok\n  %s %s, ABI %s; %d settings, %d routes, %d subscriptions\n"
               "  %d load/open/close/unload cycles: no file descriptor, mapping or heap left "
               "behind\n", path, cJSON_GetObjectItem(report, "name")->valuestring,
               cJSON_GetObjectItem(report, "version")->valuestring,
               cJSON_GetObjectItem(report, "abi")->valuestring,
               cJSON_GetObjectItem(report, "settings")->valueint,
               cJSON_GetObjectItem(report, "routes")->valueint,
               cJSON_GetObjectItem(report, "subscriptions")->valueint,
               cJSON_GetObjectItem(report, "cycles")->valueint);
        const cJSON *unchecked = cJSON_GetObjectItem(report, "unchecked_topics");
        const cJSON *ntables = cJSON_GetObjectItem(report, "field_tables");
        printf("  %d operations declare their fields", ntables != NULL ? ntables->valueint : 0);
        if (cJSON_GetArraySize(unchecked) > 0) {
            printf("; without a field table (not checked by the host):");
            const cJSON *u;
            cJSON_ArrayForEach(u, unchecked)
                printf(" %s", u->valuestring);
        }
        putchar('\n');
        const cJSON *writes = cJSON_GetObjectItem(report, "writes");
        if (cJSON_GetArraySize(writes) > 0) {
            printf("  writes and how they reconcile:");
            const cJSON *w;
            cJSON_ArrayForEach(w, writes)
                printf(" %s (%s)", w->string, w->valuestring);
            putchar('\n');
        }
    }
    cJSON_Delete(report);
    return rc;
}

static int cmd_plugin(cli *c)
{
    if (c->argc == 2 && strcmp(c->argv[0], "check") == 0)
        return plugin_check(c, c->argv[1]);
    if (c->argc == 2 && strcmp(c->argv[0], "reload") == 0) {
        if (!ah_ops_valid_name(c->argv[1])) {
            usage_error("'%s' is not a plugin name", c->argv[1]);
            return EXIT_USAGE;
        }
        return plugin_reload(c, c->argv[1]);
    }
    usage_error("usage: atshub plugin check FILE.so | plugin reload NAME [--path FILE.so]");
    return EXIT_USAGE;
}

/* ------------------------------------------------------------------------ */
/* tenant                                                                    */
/* ------------------------------------------------------------------------ */

/* An ops error, as fail() prints it. */
static int fail_ops(cli *c, const ah_ops_err *e)
{
    return fail(c, e->code, "%s", e->msg);
}

static int cmd_tenant(cli *c)
{
    if (c->argc < 1) {
        usage_error("usage: atshub tenant add NAME | list | remove NAME");
        return EXIT_USAGE;
    }
    const char *sub = c->argv[0];
    bool add = strcmp(sub, "add") == 0, rm = strcmp(sub, "remove") == 0;
    if ((add || rm) && c->argc != 2) {
        usage_error("usage: atshub tenant %s NAME", sub);
        return EXIT_USAGE;
    }
    if (!add && !rm && !(strcmp(sub, "list") == 0 && c->argc == 1)) {
        usage_error("usage: atshub tenant add NAME | list | remove NAME");
        return EXIT_USAGE;
    }
    if ((add || rm) && !ah_ops_valid_name(c->argv[1])) {
        usage_error("tenant names are 1-64 characters of letters, digits, '_', '-', '.'");
        return EXIT_USAGE;
    }
    ah_core *core = open_core(c, false, false);
    if (core == NULL)
        return 1;
    int rc = 0;
    ah_ops_err e;
    cJSON *out = NULL;
    if (add) {
        if (ah_ops_tenant_add(core, c->argv[1], &out, &e) != 0) {
            rc = fail_ops(c, &e);
        } else if (c->json) {
            print_json(out);
        } else {
            printf("tenant '%s' added\napi_key: %s\n", c->argv[1],
                   cJSON_GetObjectItem(out, "api_key")->valuestring);
            fprintf(stderr, "The API key is shown once: store it now. atshub keeps only its hash.\n");
        }
    } else if (rm) {
        if (ah_ops_tenant_remove(core, c->argv[1], &e) != 0)
            rc = fail_ops(c, &e);
        else if (c->json)
            printf("{\"removed\":\"%s\"}\n", c->argv[1]);
        else
            printf("tenant '%s' removed, with its connections and records\n", c->argv[1]);
    } else {
        if (ah_ops_tenant_list(core, NULL, &out, &e) != 0) {
            rc = fail_ops(c, &e);
        } else if (c->json) {
            print_json(out);
        } else {
            printf("%-6s %-32s %s\n", "ID", "TENANT", "CREATED");
            const cJSON *t;
            cJSON_ArrayForEach(t, out)
                printf("%-6d %-32s %s\n", cJSON_GetObjectItem(t, "id")->valueint,
                       cJSON_GetObjectItem(t, "name")->valuestring,
                       cJSON_GetObjectItem(t, "created_at")->valuestring);
        }
    }
    if (out != NULL) {
        cJSON *k = cJSON_GetObjectItem(out, "api_key");
        if (cJSON_IsString(k))
            explicit_bzero(k->valuestring, strlen(k->valuestring));
    }
    cJSON_Delete(out);
    ah_daemon_close(core);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* connection                                                                */
/* ------------------------------------------------------------------------ */

/* KEY=VALUE pairs into a JSON object of strings; -1 on a malformed one. */
static int parse_sets(const char *const *sets, int n, cJSON *out)
{
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(sets[i], '=');
        if (eq == NULL || eq == sets[i]) {
            usage_error("'%s' is not KEY=VALUE", sets[i]);
            return -1;
        }
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - sets[i]), sets[i]);
        cJSON_DeleteItemFromObjectCaseSensitive(out, key);
        cJSON_AddStringToObject(out, key, eq + 1);
    }
    return 0;
}

/* Prints an add/rotate result: generated secrets, once. */
static void print_generated(cli *c, const cJSON *out, const char *skip_keys, const char *note)
{
    if (c->json) {
        print_json((cJSON *)out);
        return;
    }
    int n = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, out) {
        char k[80];
        snprintf(k, sizeof k, ",%s,", g->string);
        if (strstr(skip_keys, k) != NULL || !cJSON_IsString(g))
            continue;
        printf("%s: %s\n", g->string, g->valuestring);
        n++;
    }
    if (n > 0)
        fprintf(stderr, "%s\n", note);
}

static int connection_list(cli *c, ah_core *core)
{
    ah_ops_err e;
    cJSON *list = NULL;
    if (ah_ops_connection_list(core, c->argc == 2 ? c->argv[1] : NULL, NULL, &list, &e) != 0)
        return fail_ops(c, &e);
    if (c->json) {
        print_json(list);
    } else {
        printf("%-20s %-20s %-14s %-8s %s\n", "TENANT", "CONNECTION", "PLUGIN", "ENABLED", "SETTINGS");
        const cJSON *o;
        cJSON_ArrayForEach(o, list) {
            char *set = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "settings"));
            printf("%-20s %-20s %-14s %-8s %s\n", cJSON_GetObjectItem(o, "tenant")->valuestring,
                   cJSON_GetObjectItem(o, "name")->valuestring,
                   cJSON_GetObjectItem(o, "plugin")->valuestring,
                   cJSON_IsTrue(cJSON_GetObjectItem(o, "enabled")) ? "yes" : "no", set ? set : "");
            free(set);
        }
    }
    cJSON_Delete(list);
    return 0;
}

static int cmd_connection(cli *c)
{
    static const char *const usage =
        "usage: atshub connection add TENANT PLUGIN NAME [--set KEY=VALUE]... | list [TENANT] |\n"
        "       set TENANT NAME KEY=VALUE... | rotate TENANT NAME KEY | enable TENANT NAME |\n"
        "       disable TENANT NAME | remove TENANT NAME";
    if (c->argc < 1) {
        usage_error("%s", usage);
        return EXIT_USAGE;
    }
    const char *sub = c->argv[0];
    bool ok = (strcmp(sub, "add") == 0 && c->argc == 4) || (strcmp(sub, "list") == 0 && c->argc <= 2) ||
              (strcmp(sub, "set") == 0 && c->argc >= 4) || (strcmp(sub, "rotate") == 0 && c->argc == 4) ||
              ((strcmp(sub, "enable") == 0 || strcmp(sub, "disable") == 0 ||
                strcmp(sub, "remove") == 0) && c->argc == 3);
    if (!ok) {
        usage_error("%s", usage);
        return EXIT_USAGE;
    }
    if (strcmp(sub, "add") == 0 && !ah_ops_valid_name(c->argv[3])) {
        usage_error("connection names are 1-64 characters of letters, digits, '_', '-', '.'");
        return EXIT_USAGE;
    }
    if (strcmp(sub, "add") != 0 && c->nsets > 0) {
        usage_error("--set goes with 'connection add'; use 'connection set TENANT NAME KEY=VALUE'");
        return EXIT_USAGE;
    }
    cJSON *input = cJSON_CreateObject();
    if (input == NULL)
        return fail(c, "internal_error", "out of memory");
    if ((strcmp(sub, "add") == 0 && parse_sets(c->sets, c->nsets, input) != 0) ||
        (strcmp(sub, "set") == 0 &&
         parse_sets((const char *const *)c->argv + 3, c->argc - 3, input) != 0)) {
        cJSON_Delete(input);
        return EXIT_USAGE;
    }
    bool needs_plugins = strcmp(sub, "add") == 0 || strcmp(sub, "set") == 0 || strcmp(sub, "rotate") == 0;
    ah_core *core = open_core(c, needs_plugins, false);
    if (core == NULL) {
        cJSON_Delete(input);
        return 1;
    }
    const char *t = c->argc > 1 ? c->argv[1] : NULL, *n = c->argc > 2 ? c->argv[2] : NULL;
    ah_ops_err e;
    cJSON *out = NULL;
    int rc = 0;
    if (strcmp(sub, "add") == 0) {
        if (ah_ops_connection_add(core, t, n, c->argv[3], input, &out, &e) != 0) {
            rc = fail_ops(c, &e);
        } else {
            if (!c->json)
                printf("connection '%s' (%s) added to tenant '%s'\n", c->argv[3], n, t);
            print_generated(c, out, ",tenant,connection,plugin,id,",
                            "Generated secrets are shown once: store them now.");
        }
    } else if (strcmp(sub, "list") == 0) {
        rc = connection_list(c, core);
    } else if (strcmp(sub, "set") == 0) {
        if (ah_ops_connection_set(core, t, n, input, &e) != 0)
            rc = fail_ops(c, &e);
        else if (c->json)
            printf("{\"updated\":\"%s\"}\n", n);
        else
            printf("connection '%s' of tenant '%s' updated\n", n, t);
    } else if (strcmp(sub, "rotate") == 0) {
        if (ah_ops_connection_rotate(core, t, n, c->argv[3], &out, &e) != 0)
            rc = fail_ops(c, &e);
        else
            print_generated(c, out, ",tenant,connection,",
                            "The new value is shown once: store it now. The old one no longer works.");
    } else if (strcmp(sub, "remove") == 0) {
        if (ah_ops_connection_remove(core, t, n, &e) != 0)
            rc = fail_ops(c, &e);
        else if (c->json)
            printf("{\"removed\":\"%s\"}\n", n);
        else
            printf("connection '%s' of tenant '%s' removed\n", n, t);
    } else {
        bool en = strcmp(sub, "enable") == 0;
        if (ah_ops_connection_enable(core, t, n, en, &e) != 0)
            rc = fail_ops(c, &e);
        else if (c->json)
            printf("{\"connection\":\"%s\",\"enabled\":%s}\n", n, en ? "true" : "false");
        else
            printf("connection '%s' of tenant '%s' %sd\n", n, t, sub);
    }
    cJSON_Delete(out);
    cJSON_Delete(input);
    ah_daemon_close(core);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* call                                                                      */
/* ------------------------------------------------------------------------ */

static int cmd_call(cli *c)
{
    if (c->argc != 3 && c->argc != 4) {
        usage_error("usage: atshub call TENANT CONNECTION TOPIC [JSON]");
        return EXIT_USAGE;
    }
    cJSON *body = NULL;
    if (c->argc == 4) {
        body = ah_json_parse_limited(c->argv[3], strlen(c->argv[3]));
        if (!cJSON_IsObject(body)) {
            cJSON_Delete(body);
            usage_error("the request body must be a JSON object");
            return EXIT_USAGE;
        }
    }
    if (ah_router_topic(c->argv[2]) == NULL) {
        cJSON_Delete(body);
        usage_error("unknown topic '%s'", c->argv[2]);
        return EXIT_USAGE;
    }
    ah_core *core = open_core(c, true, true);
    if (core == NULL) {
        cJSON_Delete(body);
        return 1;
    }
    ah_reply r;
    memset(&r, 0, sizeof r);
    int rc = 0;
    ah_core_request(core, c->argv[0], c->argv[1], c->argv[2], body, &r);
    if (r.ok) {
        if (c->json) {
            char *t = cJSON_PrintUnformatted(r.body);
            if (t != NULL)
                puts(t);
            free(t);
        } else {
            print_json(r.body);
        }
    } else {
        rc = fail(c, r.code, "%s: %s", r.code, r.message ? r.message : "");
    }
    ah_reply_free(&r);
    ah_daemon_close(core);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* sync                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct sync_view {
    bool tty;
    double last_print; /* monotonic seconds; 0: never */
    const char *tenant, *connection;
    cJSON *types; /* finished types, for the summary */
} sync_view;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sync_on_progress(void *arg, const char *type, const ah_sync_stats *s)
{
    sync_view *v = arg;
    double now = mono_s();
    if (s->done) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", type);
        cJSON_AddNumberToObject(o, "pages", (double)s->pages);
        cJSON_AddNumberToObject(o, "records", (double)s->records);
        cJSON_AddNumberToObject(o, "created", (double)s->created);
        cJSON_AddNumberToObject(o, "updated", (double)s->updated);
        cJSON_AddNumberToObject(o, "unchanged", (double)s->unchanged);
        cJSON_AddNumberToObject(o, "retries", (double)s->retries);
        cJSON_AddNumberToObject(o, "seconds", s->seconds);
        if (s->failed)
            cJSON_AddBoolToObject(o, "failed", true);
        cJSON_AddItemToArray(v->types, o);
        if (v->tty && v->last_print != 0)
            fputc('\n', stderr);
        v->last_print = 0;
        return;
    }
    /* A terminal gets one line redrawn; a log or pipe a line per page, at
     * most one a second. */
    if (v->last_print != 0 && now - v->last_print < (v->tty ? 0.1 : 1.0))
        return;
    v->last_print = now;
    double rate = s->seconds > 0 ? (double)s->records / s->seconds : 0;
    fprintf(stderr, "%s %s: %ld pages, %ld records (%ld new, %ld updated), %.0f rec/s%s",
            v->tty ? "\r" : "sync", type, s->pages, s->records, s->created, s->updated, rate,
            v->tty ? "\033[K" : "\n");
    fflush(stderr);
}

static int cmd_sync(cli *c)
{
    if (c->argc != 2) {
        usage_error("usage: atshub sync TENANT CONNECTION [--type jobs|applications|candidates]");
        return EXIT_USAGE;
    }
    if (c->type != NULL && !ah_sync_type_valid(c->type)) {
        usage_error("--type takes jobs, applications or candidates, not '%s'", c->type);
        return EXIT_USAGE;
    }
    /* Only the tenant's plugins: each isolated one is a process to start
     * and stop, a fixed cost of every one-shot sync. */
    ah_core *core = open_core_for(c, true, true, c->argv[0]);
    if (core == NULL)
        return 1;
    sync_view v = {.tty = isatty(2) == 1, .tenant = c->argv[0], .connection = c->argv[1],
                   .types = cJSON_CreateArray()};
    if (v.types == NULL) {
        ah_daemon_close(core);
        return fail(c, "internal_error", "out of memory");
    }
    char err[2048];
    ah_sync_stats total;
    int rc = ah_sync_run(core, c->argv[0], c->argv[1], c->type, sync_on_progress, &v, &total,
                         err, sizeof err);
    int exit_code = 0;
    if (rc != AH_SYNC_OK) {
        exit_code = fail(c, ah_sync_code(rc), "sync %s/%s: %s", c->argv[0], c->argv[1], err);
    } else if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tenant", c->argv[0]);
        cJSON_AddStringToObject(o, "connection", c->argv[1]);
        cJSON_AddItemToObject(o, "types", v.types);
        v.types = NULL;
        print_json(o);
        cJSON_Delete(o);
    } else {
        const cJSON *t;
        cJSON_ArrayForEach(t, v.types) {
            printf("%s/%s %s: %d pages, %d records (%d new, %d updated, %d unchanged), "
                   "%d retries, %.2f s\n", c->argv[0], c->argv[1],
                   cJSON_GetObjectItem(t, "type")->valuestring,
                   cJSON_GetObjectItem(t, "pages")->valueint,
                   cJSON_GetObjectItem(t, "records")->valueint,
                   cJSON_GetObjectItem(t, "created")->valueint,
                   cJSON_GetObjectItem(t, "updated")->valueint,
                   cJSON_GetObjectItem(t, "unchanged")->valueint,
                   cJSON_GetObjectItem(t, "retries")->valueint,
                   cJSON_GetObjectItem(t, "seconds")->valuedouble);
        }
    }
    cJSON_Delete(v.types);
    ah_daemon_close(core);
    return exit_code;
}

/* ------------------------------------------------------------------------ */
/* log                                                                       */
/* ------------------------------------------------------------------------ */

static int cmd_log(cli *c)
{
    if (c->argc != 0) {
        usage_error("usage: atshub log [--tenant T] [--source S] [--action A] [--status N] [--since T] [--until T] [--limit N]");
        return EXIT_USAGE;
    }
    /* As /admin/log checks it: an action no entry has would print
     * nothing, as if the log had no such entries. */
    if (c->filter.action != NULL && !ah_intlog_action_valid(c->filter.action)) {
        usage_error("--action is " AH_INTLOG_ACTIONS ", not '%s'", c->filter.action);
        return EXIT_USAGE;
    }
    /* As /v1/log and /admin/log check them: a bound that is no time is
     * the caller's mistake, not the store's failure. */
    char norm[32];
    if (c->filter.since != NULL && ah_iso_normalize(c->filter.since, norm) != 0) {
        usage_error("--since takes an ISO-8601 date (YYYY-MM-DD) or date-time, not '%s'",
                    c->filter.since);
        return EXIT_USAGE;
    }
    if (c->filter.until != NULL && ah_iso_normalize(c->filter.until, norm) != 0) {
        usage_error("--until takes an ISO-8601 date (YYYY-MM-DD) or date-time, not '%s'",
                    c->filter.until);
        return EXIT_USAGE;
    }
    ah_core *core = open_core(c, false, false);
    if (core == NULL)
        return 1;
    cJSON *list = cJSON_CreateArray();
    int rc = 0;
    if (core->store->ops->log_query(core->store, &c->filter, ah_intlog_entry_json, list) != 0) {
        rc = fail(c, "store_error", "cannot read the integration log");
    } else if (c->json) {
        print_json(list);
    } else {
        const cJSON *o;
        cJSON_ArrayForEach(o, list) {
            const cJSON *m = cJSON_GetObjectItem(o, "method"), *p = cJSON_GetObjectItem(o, "path");
            printf("%s %-8s %-16s %3d %8.4fs %s %s\n", cJSON_GetObjectItem(o, "at")->valuestring,
                   cJSON_GetObjectItem(o, "action")->valuestring,
                   cJSON_GetObjectItem(o, "source")->valuestring,
                   cJSON_GetObjectItem(o, "status")->valueint,
                   cJSON_GetObjectItem(o, "processing_time")->valuedouble,
                   m ? m->valuestring : "", p ? p->valuestring : "");
        }
    }
    cJSON_Delete(list);
    ah_daemon_close(core);
    return rc;
}

/* The instances on the store (issue 14). */
static int cmd_instances(cli *c)
{
    if (c->argc != 0) {
        usage_error("usage: atshub instances [--json]");
        return EXIT_USAGE;
    }
    ah_core *core = open_core(c, false, false);
    if (core == NULL)
        return 1;
    int rc = 0;
    ah_ops_err e;
    cJSON *list = NULL;
    if (ah_ops_instances(core, &list, &e) != 0) {
        rc = fail_ops(c, &e);
    } else if (c->json) {
        print_json(list);
    } else {
        const cJSON *o;
        if (cJSON_GetArraySize(list) == 0)
            printf("no live instance on this store\n");
        cJSON_ArrayForEach(o, list) {
            printf("%s\n  version %s, host %s, pid %.0f, started %s, last heartbeat %s "
                   "(%.1f s ago)\n",
                   cJSON_GetObjectItem(o, "id")->valuestring,
                   cJSON_GetObjectItem(o, "version")->valuestring,
                   cJSON_GetObjectItem(o, "host")->valuestring,
                   cJSON_GetObjectItem(o, "pid")->valuedouble,
                   cJSON_GetObjectItem(o, "started_at")->valuestring,
                   cJSON_GetObjectItem(o, "heartbeat")->valuestring,
                   cJSON_GetObjectItem(o, "heartbeat_age_ms")->valuedouble / 1000.0);
            const cJSON *l;
            cJSON_ArrayForEach(l, cJSON_GetObjectItem(o, "leases"))
                printf("  holds %s (token %.0f, %.1f s left)\n",
                       cJSON_GetObjectItem(l, "name")->valuestring,
                       cJSON_GetObjectItem(l, "token")->valuedouble,
                       cJSON_GetObjectItem(l, "expires_in_ms")->valuedouble / 1000.0);
        }
    }
    cJSON_Delete(list);
    ah_daemon_close(core);
    return rc;
}

/* The operator console (issue 17): a one-time login link from the running
 * daemon. */
static int cmd_console(cli *c)
{
    if (c->argc != 0) {
        usage_error("usage: atshub console [--json]");
        return EXIT_USAGE;
    }
    char err[1024];
    long status = 0;
    cJSON *reply = NULL;
    if (daemon_call(c, "POST", "/admin/console/codes", NULL, &status, &reply, err, sizeof err) != 0)
        return fail(c, "no_daemon", "the console is served by the running daemon: %s", err);
    if (status != 201) {
        int rc = fail_reply(c, reply, status);
        cJSON_Delete(reply);
        return rc;
    }
    const cJSON *d = cJSON_GetObjectItem(reply, "data");
    const cJSON *url = cJSON_GetObjectItem(d, "url"), *ttl = cJSON_GetObjectItem(d, "expires_in_s");
    if (!cJSON_IsString(url) || !cJSON_IsNumber(ttl)) {
        cJSON_Delete(reply);
        return fail(c, "internal_error", "the daemon's answer has no login link");
    }
    if (c->json)
        print_json((cJSON *)d);
    else
        printf("Open this link in a browser on this machine (it works once, within %d s):\n%s\n",
               ttl->valueint, url->valuestring);
    cJSON_Delete(reply);
    return 0;
}

/* A tenant's event log from the running daemon (GET /admin/events), as
 * the console's events page and GET /v1/events show it. */
static int cmd_events(cli *c)
{
    if (c->argc != 1) {
        usage_error("usage: atshub events TENANT [--after CURSOR] [--types a,b] [--limit N]");
        return EXIT_USAGE;
    }
    /* The daemon reads at most AH_EVENTS_LIMIT_MAX events a page (as GET
     * /v1/events); --limit's shared check allows log's larger range. */
    if (c->filter.limit > AH_EVENTS_LIMIT_MAX) {
        usage_error("events: --limit takes a number from 1 to %d", AH_EVENTS_LIMIT_MAX);
        return EXIT_USAGE;
    }
    char *t = curl_easy_escape(NULL, c->argv[0], 0);
    char *ty = c->type != NULL ? curl_easy_escape(NULL, c->type, 0) : NULL;
    char *af = c->after != NULL ? curl_easy_escape(NULL, c->after, 0) : NULL;
    /* Sized to what it holds: a cut path would ask for another page. */
    char *path = NULL;
    int pl = asprintf(&path, "/admin/events?tenant=%s&limit=%d%s%s%s%s", t ? t : "",
                      c->filter.limit > 0 ? c->filter.limit : 100, ty ? "&types=" : "",
                      ty ? ty : "", af ? "&after=" : "", af ? af : "");
    curl_free(t);
    curl_free(ty);
    curl_free(af);
    if (pl < 0)
        return fail(c, "internal_error", "out of memory");
    char err[1024];
    long status = 0;
    cJSON *reply = NULL;
    int dc = daemon_call(c, "GET", path, NULL, &status, &reply, err, sizeof err);
    free(path);
    if (dc != 0)
        return fail(c, "no_daemon", "events are read from the running daemon: %s", err);
    if (status != 200) {
        int rc = fail_reply(c, reply, status);
        cJSON_Delete(reply);
        return rc;
    }
    if (c->json) {
        print_json(reply);
    } else {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(reply, "data")) {
            char *d = cJSON_PrintUnformatted(cJSON_GetObjectItem(e, "data"));
            printf("%.0f %s %s %s\n", cJSON_GetNumberValue(cJSON_GetObjectItem(e, "cursor")),
                   cJSON_GetStringValue(cJSON_GetObjectItem(e, "timestamp")),
                   cJSON_GetStringValue(cJSON_GetObjectItem(e, "type")), d ? d : "");
            free(d);
        }
        const cJSON *nc = cJSON_GetObjectItem(reply, "next_cursor");
        if (cJSON_IsTrue(cJSON_GetObjectItem(reply, "has_more")) && cJSON_IsString(nc))
            printf("more: atshub events %s --after %s\n", c->argv[0], nc->valuestring);
    }
    cJSON_Delete(reply);
    return 0;
}

/* ------------------------------------------------------------------------ */

static int cmd_help(cli *c);

/* webhook: core/cli_webhooks.c */
int ah_cli_webhook(const char *config, bool json, int argc, char **argv, const char *types);
static int cmd_webhook(cli *c)
{
    return ah_cli_webhook(c->config, c->json, c->argc, c->argv, c->type);
}

static const cmd commands[] = {
    {"serve", cmd_serve, "atshub serve [-c FILE]",
     "Runs the daemon: the REST API, plugin routes, the bus and its workers.\n"
     "Stops cleanly on SIGINT or SIGTERM.", 0},
    {"plugins", cmd_plugins, "atshub plugins [--settings NAME | --ops NAME | --openapi [--ops NAME]]",
     "Lists the plugins the configuration loads: version, ABI, generation, path and\n"
     "capability coverage. With --settings NAME, prints that plugin's connection settings.\n"
     "With --ops NAME, prints the fields each of its bus operations takes (name, type,\n"
     "required, limits, sub-fields): the host refuses a request with an unknown, missing or\n"
     "mistyped field (invalid_request, naming it) before the plugin runs.\n"
     "With --openapi, prints those tables as OpenAPI schemas, in YAML: the generated part\n"
     "of docs/openapi.yaml (scripts/openapi-bus rewrites it); it does not go with --json.",
     OPT(O_SETTINGS) | OPT(O_OPS) | OPT(O_OPENAPI)},
    {"plugin", cmd_plugin, "atshub plugin check FILE.so | plugin reload NAME [--path FILE.so]",
     "check: checks a plugin file before deploying it: its ABI (both ways), descriptor,\n"
     "settings table, tables' sizes and callbacks, its init, then 100 load/open/close/unload\n"
     "cycles on a scratch host and connection (default settings) without a file\n"
     "descriptor, mapping or heap left behind, nor a crash (the check runs in a child\n"
     "process). Exit 0 when the host would accept it.\n"
     "reload: hot swap on the running daemon (through its admin API: the Unix socket, else\n"
     "the [admin] listen TCP listener with the token_file's token): loads FILE.so (default:\n"
     "the configured path) as the plugin's next generation; calls already running finish on\n"
     "the old one. A file that fails to load leaves the old version serving; the error says\n"
     "why. Needs a running daemon (atshub serve).",
     OPT(O_PATH)},
    {"tenant", cmd_tenant, "atshub tenant add NAME | list | remove NAME",
     "Manages tenants. 'add' prints the tenant's API key once (JSON: api_key); atshub\n"
     "keeps only its hash. 'remove' deletes the tenant with its connections and records.", 0},
    {"connection", cmd_connection,
     "atshub connection add TENANT PLUGIN NAME [--set KEY=VALUE]...\n"
     "       atshub connection list [TENANT] | set TENANT NAME KEY=VALUE... |\n"
     "       rotate TENANT NAME KEY | enable TENANT NAME | disable TENANT NAME | remove TENANT NAME",
     "Manages connections (one provider enabled for one tenant). Settings are checked\n"
     "against the plugin's settings table (atshub plugins --settings PLUGIN); secrets are\n"
     "encrypted at rest and never printed; generated secrets are printed once, and\n"
     "'rotate' replaces one with a new value (printed once).\n"
     "A running daemon applies changes within a second.",
     OPT(O_SET)},
    {"call", cmd_call, "atshub call TENANT CONNECTION TOPIC [JSON]",
     "Sends one bus request to a connection's plugin and prints the reply.\n"
     "Example: atshub call acme main jobs.get '{\"job_id\":\"42\"}'", 0},
    {"sync", cmd_sync, "atshub sync TENANT CONNECTION [--type jobs|applications|candidates]",
     "Syncs a connection now, in this process: streams the records its plugin offers\n"
     "(every type it streams, or only --type) into the store, from the saved cursor on,\n"
     "and publishes event.<type>.created/updated for records that changed. Progress goes\n"
     "to stderr; a summary per type to stdout (--json: {\"connection\", \"types\": [...]}).\n"
     "Provider faults are retried; when a page keeps failing the sync stops with exit 1\n"
     "and the cursor stays at the last committed page, so running it again resumes there.\n"
     "A running daemon's scheduler ([sync] interval_s) does the same for every enabled\n"
     "connection.",
     OPT(O_TYPE)},
    {"log", cmd_log,
     "atshub log [--tenant T] [--source S] [--action A] [--status N] [--since T] [--until T] [--limit N]",
     "Prints the integration log, newest first. --since/--until take ISO-8601 times or\n"
     "dates (YYYY-MM-DD); --action is REQUEST, RESPONSE, ERROR, ERROR_SUPPRESSED,\n"
     "OUTBOUND or OUTBOUND_ERROR (another is a usage error).",
     OPT(O_TENANT) | OPT(O_SOURCE) | OPT(O_ACTION) | OPT(O_STATUS) | OPT(O_SINCE) | OPT(O_UNTIL) |
         OPT(O_LIMIT)},
    {"webhook", cmd_webhook,
     "atshub webhook add TENANT URL [--types a,b] | list [TENANT] | enable ID | disable ID |\n"
     "       deliveries ID",
     "Outbound webhooks to the product. 'add' prints the signing secret once (whsec_...);\n"
     "deliveries are signed as Standard Webhooks do, in order, retried with backoff; an\n"
     "endpoint failing [webhooks] max_failures times in a row is disabled ('enable' resumes\n"
     "it where it stopped). 'deliveries' prints an endpoint's delivery log.",
     OPT(O_TYPE)},
    {"instances", cmd_instances, "atshub instances [--json]",
     "Lists the atshub instances serving on this store (several may share one\n"
     "PostgreSQL database; docs/scaling.md): id, version, host, pid, start, last\n"
     "heartbeat, and the leases each holds (schedule-leader, sync:..., deliver:...,\n"
     "webhook:..., bulk:...). An instance is listed while its heartbeat is at most three\n"
     "[store] claim_ms old; a clean stop removes it at once.", 0},
    {"events", cmd_events, "atshub events TENANT [--after CURSOR] [--types a,b] [--limit N]",
     "Prints a tenant's event log, oldest first from --after (a cursor; default: the\n"
     "start), as the tenant reads it at GET /v1/events: cursor, time, type, data.\n"
     "--types filters by event types or prefix.* patterns; --limit (1 to 1000, default 100)\n"
     "is the most events printed. Needs a running daemon.",
     OPT(O_AFTER) | OPT(O_TYPE) | OPT(O_LIMIT)},
    {"console", cmd_console, "atshub console [--json]",
     "Prints a login link to the operator console of the running daemon: a web page\n"
     "served under /console/ on the admin TCP listener ([admin] listen; 127.0.0.1:8081\n"
     "in etc/atshub.ini). The link holds a one-time code that lasts two minutes; opening\n"
     "it starts a session (a cookie, HttpOnly, SameSite=Strict, 8 hours). The console\n"
     "shows tenants, connections, plugins, syncs, the integration log and the last\n"
     "hour's traffic; everything it does is also a command here.", 0},
    {"help", cmd_help, "atshub help [COMMAND]", "Shows help.", 0},
};

static const cmd *find_cmd(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_main_help(FILE *f)
{
    fprintf(f, "atshub %s: integration host for recruiting software\n\n"
               "usage: atshub [-c FILE] [--json] COMMAND [ARGS]\n\n"
               "commands:\n", AH_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %s\n", commands[i].usage);
    fprintf(f, "\noptions (anywhere on the line):\n"
               "  -c, --config FILE  configuration (default: %s)\n"
               "  --json             one JSON document on stdout, nothing else (an error too:\n"
               "                     {\"error\":{\"code\",\"message\"}}, code \"usage\" for a usage error)\n"
               "  -h, --help         help; 'atshub COMMAND --help' for one command\n"
               "  --version          print the version\n\n"
               "environment: ATSHUB_LISTEN=host:port, ATSHUB_STORE=sqlite:PATH | postgresql://...\n"
               "exit codes: 0 ok, 1 runtime error, 2 usage error\n", default_config());
}

static int cmd_help(cli *c)
{
    if (c->argc == 1) {
        const cmd *k = find_cmd(c->argv[0]);
        if (k == NULL) {
            usage_error("no command '%s'", c->argv[0]);
            return EXIT_USAGE;
        }
        printf("usage: %s\n\n%s\n", k->usage, k->help);
        return 0;
    }
    print_main_help(stdout);
    return 0;
}

/* glibc keeps at most 7 freed blocks of a size per thread (its tcache);
 * the rest go back to the arena, and the next malloc of that size takes
 * its slow path. A request on the daemon's write path frees far more than
 * 7 blocks of the same few sizes at its end (its cJSON trees, SQLite's
 * statement and journal buffers), and many blocks one thread allocates
 * another frees (the HTTP thread, the bus worker): at 7 per size about
 * 50,000 of the ~600,000 instructions of an ERP create were malloc's and
 * free's slow paths (bench/README.md, "wt-erp4"). 64 takes them to the
 * fast path; more did not count fewer. */
#define TCACHE_TUNABLE "glibc.malloc.tcache_count=64"

/* The tcache's size is read from the environment once, when the process
 * starts (GLIBC_TUNABLES; mallopt has no setting for it): `atshub serve`
 * (and bench_erp, to measure what serve runs) sets it and starts itself
 * again, the same process (execv keeps the pid, the open files and the
 * arguments). An operator's own tcache_count is kept; if the exec fails,
 * the daemon runs with glibc's default. */
void ah_cli_exec_with_tcache(char **argv)
{
    const char *env = getenv("GLIBC_TUNABLES");
    if (env != NULL && strstr(env, "glibc.malloc.tcache_count=") != NULL)
        return;
    char *have = env != NULL ? strdup(env) : NULL, *value = NULL;
    if ((env != NULL && have == NULL) ||
        asprintf(&value, "%s%s%s", have != NULL ? have : "", have != NULL && *have ? ":" : "",
                 TCACHE_TUNABLE) < 0) {
        free(have);
        return;
    }
    /* The executable's own path (under valgrind, the program's, not the
     * tool's, which /proc/self/exe itself would start). */
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0 && setenv("GLIBC_TUNABLES", value, 1) == 0) {
        self[len] = '\0';
        execv(self, argv);
    }
    free(value);
    /* Not started again: as it was. */
    if (have != NULL)
        setenv("GLIBC_TUNABLES", have, 1);
    else
        unsetenv("GLIBC_TUNABLES");
    free(have);
}

int ah_cli_main(int argc, char **argv)
{
    cli c = {.config = NULL};
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {"settings", required_argument, NULL, O_SETTINGS}, {"set", required_argument, NULL, O_SET},
        {"tenant", required_argument, NULL, O_TENANT},  {"source", required_argument, NULL, O_SOURCE},
        {"action", required_argument, NULL, O_ACTION},  {"status", required_argument, NULL, O_STATUS},
        {"since", required_argument, NULL, O_SINCE},    {"until", required_argument, NULL, O_UNTIL},
        {"limit", required_argument, NULL, O_LIMIT},    {"type", required_argument, NULL, O_TYPE},
        {"path", required_argument, NULL, O_PATH},      {"types", required_argument, NULL, O_TYPE},
        {"ops", required_argument, NULL, O_OPS},        {"openapi", no_argument, NULL, O_OPENAPI},
        {"after", required_argument, NULL, O_AFTER},
        {NULL, 0, NULL, 0},
    };
    /* Which command options were given, and each one's name as spelled
     * (--type or --types), for the command to refuse those it does not
     * take: `connection list --tenant acme` listing every tenant's would
     * say something it does not do. */
    unsigned given = 0;
    const char *given_name[O_COUNT] = {NULL};
    int o, li;
    opterr = 0;
    optind = 1;
    /* --json (or an abbreviation getopt_long takes, --j...) before "--". */
    usage_json = false;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        size_t n = strlen(argv[i]);
        if (n >= 3 && strncmp(argv[i], "--json", n) == 0)
            usage_json = true;
    }
    while ((li = -1, o = getopt_long(argc, argv, "+c:h", opts, &li)) != -1 || optind < argc) {
        if (o == -1) {
            /* A positional argument: keep it and go on parsing options that
             * follow it ("atshub tenant list --json"). */
            argv[c.argc++] = argv[optind++];
            continue;
        }
        if (o > 0 && o < O_COUNT && li >= 0) {
            given |= OPT(o);
            given_name[o] = opts[li].name;
        }
        switch (o) {
        case 'c': c.config = optarg; break;
        case 'j': c.json = true; break;
        case 'h': c.help = true; break;
        case 'V': printf("atshub %s (plugin ABI %d.%d)\n", AH_VERSION, AH_ABI_MAJOR, AH_ABI_MINOR); return 0;
        case O_SETTINGS: c.settings_of = optarg; break;
        case O_SET:
            if (c.nsets == (int)(sizeof c.sets / sizeof c.sets[0])) {
                usage_error("too many --set options");
                return EXIT_USAGE;
            }
            c.sets[c.nsets++] = optarg;
            break;
        case O_TENANT: c.filter.tenant = optarg; break;
        case O_SOURCE: c.filter.source = optarg; break;
        case O_ACTION: c.filter.action = optarg; break;
        case O_STATUS:
            if (!int_opt(optarg, 100, 599, &c.filter.status)) {
                usage_error("--status takes an HTTP status code");
                return EXIT_USAGE;
            }
            break;
        case O_SINCE: c.filter.since = optarg; break;
        case O_UNTIL: c.filter.until = optarg; break;
        case O_LIMIT:
            if (!int_opt(optarg, 1, 100000, &c.filter.limit)) {
                usage_error("--limit takes a number from 1 to 100000");
                return EXIT_USAGE;
            }
            break;
        case O_TYPE: c.type = optarg; break;
        case O_PATH: c.path = optarg; break;
        case O_OPS: c.ops_of = optarg; break;
        case O_OPENAPI: c.openapi = true; break;
        case O_AFTER: c.after = optarg; break;
        case '?':
        default:
            /* optopt is the short option's letter; a long option's is its
             * code (O_*), no character to print: name it as given. */
            if (optopt != 0 && isalpha(optopt))
                usage_error("option -%c needs a value or is unknown", optopt);
            else
                usage_error("option '%s' needs a value or is unknown", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (c.argc == 0) {
        if (c.help) {
            print_main_help(stdout);
            return 0;
        }
        print_main_help(stderr);
        if (usage_json)
            ah_cli_print_error("usage", "name a command (see: atshub --help)");
        return EXIT_USAGE;
    }
    const cmd *k = find_cmd(argv[0]);
    if (k == NULL) {
        usage_error("no command '%s'", argv[0]);
        return EXIT_USAGE;
    }
    if (c.help) {
        printf("usage: %s\n\n%s\n", k->usage, k->help);
        return 0;
    }
    for (int i = 1; i < O_COUNT; i++)
        if ((given & OPT(i)) && !(k->opts & OPT(i))) {
            usage_error("'atshub %s' takes no --%s option", k->name, given_name[i]);
            return EXIT_USAGE;
        }
    if (c.config == NULL)
        c.config = default_config();
    c.argv = argv + 1;
    c.argc -= 1;
    return k->run(&c);
}
