/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operators' listener and its client (admin.h). The listener is an
 * ah_httpd of its own so that the product's API and the operators' API
 * never share a port, a thread pool or a body limit; on the Unix socket,
 * file permissions (0600) are the authentication.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "admin.h"
#include "console.h"
#include "core.h"
#include "eventlog.h"
#include "intlog.h"
#include "metrics.h"
#include "ops.h"
#include "rest.h"
#include "syncs.h"
#include "webhooks.h"

#define AH_ADMIN_TOKEN_MAX 256

/* What each listener's handlers get: the core, and the token its requests
 * must carry ("" on the Unix socket); on the TCP listener, the console
 * whose session cookie stands in for the token. */
typedef struct admin_ctx {
    ah_core *core;
    char token[AH_ADMIN_TOKEN_MAX];
    ah_console *console; /* NULL on the Unix socket */
} admin_ctx;

struct ah_admin {
    ah_httpd *unix_h;
    ah_httpd *tcp_h;
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    admin_ctx unix_ctx;
    admin_ctx tcp_ctx;
    ah_console *console;
    ah_syncs *syncs;
};

int ah_admin_socket_path(const ah_config *cfg, char *out, size_t outlen)
{
    if (cfg->admin_socket_off)
        return -1;
    int n;
    if (cfg->admin_socket != NULL) {
        n = snprintf(out, outlen, "%s", cfg->admin_socket);
    } else {
        const char *kf = cfg->key_file != NULL ? cfg->key_file : "var/host.key";
        const char *slash = strrchr(kf, '/');
        if (slash == NULL)
            n = snprintf(out, outlen, "atshub.sock");
        else
            n = snprintf(out, outlen, "%.*s/atshub.sock", (int)(slash - kf), kf);
    }
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
    return n < 0 || (size_t)n >= outlen || (size_t)n >= max ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Handlers                                                                  */
/* ------------------------------------------------------------------------ */

static int status_for(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {{"not_found", 404},       {"conflict", 409},       {"invalid_request", 400},
               {"invalid_settings", 400}, {"plugin_refused", 422}, {"config_error", 422},
               {"sync_running", 409},     {"connection_disabled", 409}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].code, code) == 0)
            return map[i].status;
    return ah_http_status_for_code(code);
}

static void answer_err(ah_http_exchange *ex, const ah_ops_err *e)
{
    ah_ex_error(ex, status_for(e->code), e->code, "%s", e->msg);
}

/* {"data": data} with 200 (data transferred). */
static void answer_data(ah_http_exchange *ex, int status, cJSON *data)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "data", data != NULL ? data : cJSON_CreateObject());
    ah_ex_respond_json(ex, status, o);
}

static bool bearer_ok(const admin_ctx *ctx, ah_http_exchange *ex)
{
    const char *auth = ah_ex_header(ex, "Authorization");
    if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0) {
        char a[AH_SHA256_HEX_LEN + 1], b[AH_SHA256_HEX_LEN + 1];
        ah_sha256_hex(auth + 7, strlen(auth + 7), a);
        ah_sha256_hex(ctx->token, strlen(ctx->token), b);
        if (CRYPTO_memcmp(a, b, AH_SHA256_HEX_LEN) == 0)
            return true;
    }
    return false;
}

/* Answers 401 itself when the listener needs a token and the request does
 * not carry it. A console session (cookie, and the CSRF token for a state
 * change: console.h) stands in for the token unless `token_only`. */
static bool authorized_ex(const admin_ctx *ctx, ah_http_exchange *ex, bool token_only)
{
    if (ctx->token[0] == '\0')
        return true;
    if (bearer_ok(ctx, ex))
        return true;
    if (ctx->console != NULL && !token_only) {
        ah_console_auth a = ah_console_check(ctx->console, ex);
        if (a == AH_CONSOLE_OK)
            return true;
        if (a == AH_CONSOLE_REFUSED)
            return false;
    }
    ah_ex_add_header(ex, "WWW-Authenticate", "Bearer");
    ah_ex_error(ex, 401, "unauthorized", "send the admin token as 'Authorization: Bearer <token>'");
    return false;
}

static bool authorized(const admin_ctx *ctx, ah_http_exchange *ex)
{
    return authorized_ex(ctx, ex, false);
}

/* The request body as a JSON object (an empty body is {}); NULL when it
 * was answered with 400. Owned by the exchange, or `*empty` (freed by the
 * caller) for an empty body. */
static const cJSON *body_object(ah_http_exchange *ex, cJSON **empty)
{
    size_t len = 0;
    ah_ex_body(ex, &len);
    *empty = NULL;
    if (len == 0) {
        *empty = cJSON_CreateObject();
        return *empty;
    }
    const cJSON *j = ah_ex_json(ex);
    if (j == NULL)
        return NULL;
    if (!cJSON_IsObject(j)) {
        ah_ex_error(ex, 400, "invalid_request", "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

static const char *str_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The ops call's error, or its data `out` with `status`. */
static void answer_ops(ah_http_exchange *ex, int rc, const ah_ops_err *e, int status, cJSON *out)
{
    if (rc != 0)
        answer_err(ex, e);
    else
        answer_data(ex, status, out);
}

/* The page a list route's query asks for: ?limit= (1 to AH_OPS_PAGE_MAX,
 * that many when absent) and ?cursor= (the next_cursor of the page before).
 * False when the request was answered 400. */
static bool list_page(ah_http_exchange *ex, ah_ops_page *page)
{
    *page = (ah_ops_page){.limit = AH_OPS_PAGE_MAX, .after = ah_ex_query(ex, "cursor")};
    const char *lim = ah_ex_query(ex, "limit");
    if (lim != NULL && *lim != '\0') {
        char *end;
        long v = strtol(lim, &end, 10);
        if (*end != '\0' || v < 1 || v > AH_OPS_PAGE_MAX) {
            ah_ex_error(ex, 400, "invalid_request", "limit must be between 1 and %d",
                        AH_OPS_PAGE_MAX);
            return false;
        }
        page->limit = (int)v;
    }
    return true;
}

/* A list's page: {"data": out, "next_cursor": the cursor of the page that
 * follows, or null after the last}, or the ops call's error. */
static void answer_page(ah_http_exchange *ex, int rc, const ah_ops_err *e, cJSON *out,
                        const ah_ops_page *page)
{
    if (rc != 0) {
        answer_err(ex, e);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "data", out);
    if (page->next[0] != '\0')
        cJSON_AddStringToObject(o, "next_cursor", page->next);
    else
        cJSON_AddNullToObject(o, "next_cursor");
    ah_ex_respond_json(ex, 200, o);
}

static void h_plugins(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    /* ?settings=NAME: that plugin alone, with its settings table (the
     * console's connection form is generated from it). */
    const char *only = ah_ex_query(ex, "settings");
    cJSON *list = ah_core_plugins_json(ctx->core, only);
    if (list == NULL && only != NULL) {
        ah_ex_error(ex, 404, "not_found", "no plugin '%s' is loaded", only);
        return;
    }
    answer_data(ex, 200, list);
}

/* GET /admin/instances: the instances on the store and their leases. */
static void h_instances(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    ah_ops_err e;
    cJSON *out = NULL;
    int rc = ah_ops_instances(ctx->core, &out, &e);
    answer_ops(ex, rc, &e, 200, out);
}

/* POST /admin/plugins/{name}/reload */
static void h_plugin_action(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    const char *sub = ah_ex_subpath(ex);
    const char *slash = strchr(sub, '/');
    char name[128];
    if (slash == NULL || strcmp(slash, "/reload") != 0 || slash == sub ||
        (size_t)(slash - sub) >= sizeof name) {
        ah_ex_error(ex, 404, "not_found", "no admin route %s %s", ah_ex_method(ex), ah_ex_path(ex));
        return;
    }
    snprintf(name, sizeof name, "%.*s", (int)(slash - sub), sub);
    cJSON *empty;
    const cJSON *body = body_object(ex, &empty);
    if (body == NULL)
        return;
    const cJSON *pv = cJSON_GetObjectItemCaseSensitive(body, "path");
    if (pv != NULL && !cJSON_IsString(pv)) {
        cJSON_Delete(empty);
        ah_ex_error(ex, 400, "invalid_request", "path must be a string");
        return;
    }
    ah_ops_err e;
    cJSON *out = NULL;
    int rc = ah_ops_plugin_reload(ctx->core, name, pv != NULL ? pv->valuestring : NULL, &out, &e);
    answer_ops(ex, rc, &e, 200, out);
    cJSON_Delete(empty);
}

static void h_reconcile(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    ah_ops_err e;
    cJSON *out = NULL;
    int rc = ah_ops_reconcile(ctx->core, &out, &e);
    if (rc == 0) {
        answer_data(ex, 200, out);
    } else if (out != NULL) {
        /* Some plugins were reconciled: say which failed and why. */
        cJSON *o = cJSON_CreateObject();
        cJSON *err = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(err, "code", e.code);
        cJSON_AddStringToObject(err, "message", e.msg);
        cJSON_AddItemToObject(o, "data", out);
        ah_ex_respond_json(ex, 422, o);
    } else {
        answer_err(ex, &e);
    }
}

/* A request the handler refuses before calling ops, described like an ops
 * error (answer_err makes it a 400). */
static int invalid_request(ah_ops_err *e, const char *msg)
{
    snprintf(e->code, sizeof e->code, "invalid_request");
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    return -1;
}

/* What a collection route lists on GET and adds (from the JSON body) on
 * POST: 0, or -1 with *e. */
typedef int (*list_fn)(ah_core *core, ah_http_exchange *ex, ah_ops_page *page, cJSON **out,
                       ah_ops_err *e);
typedef int (*add_fn)(ah_core *core, const cJSON *body, cJSON **out, ah_ops_err *e);

/* /admin/tenants and /admin/connections: GET lists, POST adds (201). */
static void collection(admin_ctx *ctx, ah_http_exchange *ex, list_fn list, add_fn add)
{
    if (!authorized(ctx, ex))
        return;
    ah_ops_err e;
    cJSON *out = NULL;
    if (strcmp(ah_ex_method(ex), "GET") == 0) {
        ah_ops_page page;
        if (!list_page(ex, &page))
            return;
        int rc = list(ctx->core, ex, &page, &out, &e);
        answer_page(ex, rc, &e, out, &page);
        return;
    }
    cJSON *empty;
    const cJSON *body = body_object(ex, &empty);
    if (body == NULL)
        return;
    int rc = add(ctx->core, body, &out, &e);
    if (rc == 0) /* immediate effect: the next request and scheduled sync see it */
        ah_ops_refresh(ctx->core);
    answer_ops(ex, rc, &e, 201, out);
    cJSON_Delete(empty);
}

static int tenant_list(ah_core *core, ah_http_exchange *ex, ah_ops_page *page, cJSON **out,
                       ah_ops_err *e)
{
    (void)ex;
    return ah_ops_tenant_list(core, page, out, e);
}

static int tenant_add(ah_core *core, const cJSON *body, cJSON **out, ah_ops_err *e)
{
    const char *name = str_field(body, "name");
    if (name == NULL)
        return invalid_request(e, "name the tenant: {\"name\":\"...\"}");
    return ah_ops_tenant_add(core, name, out, e);
}

static void h_tenants(void *arg, ah_http_exchange *ex)
{
    collection(arg, ex, tenant_list, tenant_add);
}

static void h_tenant_delete(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    ah_ops_err e;
    if (ah_ops_tenant_remove(ctx->core, ah_ex_subpath(ex), &e) != 0) {
        answer_err(ex, &e);
        return;
    }
    ah_syncs_forget(ctx->core->admin->syncs, ah_ex_subpath(ex), NULL);
    ah_ops_refresh(ctx->core);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "removed", ah_ex_subpath(ex));
    answer_data(ex, 200, o);
}

static int connection_list(ah_core *core, ah_http_exchange *ex, ah_ops_page *page,
                           cJSON **out, ah_ops_err *e)
{
    /* No or an empty tenant: every tenant's; an unknown one: not_found. */
    const char *tenant = ah_ex_query(ex, "tenant");
    return ah_ops_connection_list(core, tenant != NULL && *tenant != '\0' ? tenant : NULL, page,
                                  out, e);
}

static int connection_add(ah_core *core, const cJSON *body, cJSON **out, ah_ops_err *e)
{
    const char *tenant = str_field(body, "tenant"), *plugin = str_field(body, "plugin"),
               *name = str_field(body, "name");
    if (tenant == NULL || plugin == NULL || name == NULL)
        return invalid_request(e, "give tenant, plugin and name (strings)");
    return ah_ops_connection_add(core, tenant, plugin, name,
                                 cJSON_GetObjectItemCaseSensitive(body, "settings"), out, e);
}

static void h_connections(void *arg, ah_http_exchange *ex)
{
    collection(arg, ex, connection_list, connection_add);
}

/* /admin/connections/{tenant}/{name}[/{action}] */
static void h_connection(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    char tenant[128] = "", name[128] = "", action[32] = "";
    const char *sub = ah_ex_subpath(ex), *method = ah_ex_method(ex);
    int n = sscanf(sub, "%127[^/]/%127[^/]/%31[^/]", tenant, name, action);
    if (n < 2) {
        ah_ex_error(ex, 404, "not_found", "expected /admin/connections/TENANT/NAME[/ACTION]");
        return;
    }
    cJSON *empty;
    const cJSON *body = body_object(ex, &empty);
    if (body == NULL)
        return;
    if (n == 3 && strcmp(method, "POST") == 0 && strcmp(action, "call") == 0) {
        /* /admin/connections/TENANT/NAME/call/TOPIC: one bus request, the
         * operator's form of `atshub call` (LinkedIn provisioning, the TopCV
         * webhook URL, ...). */
        const char *topic = sub;
        for (int slashes = 0; *topic != '\0' && slashes < 3; topic++)
            slashes += *topic == '/';
        if (ah_router_topic(topic) == NULL) {
            cJSON_Delete(empty);
            ah_ex_error(ex, 404, "unknown_topic", "no such topic '%s'", topic);
            return;
        }
        /* The request waits for the plugin suspended, holding no thread of
         * the admin listener. */
        ah_rest_forward(ctx->core, ex, tenant, name, topic, cJSON_Duplicate(body, 1), 0);
        cJSON_Delete(empty);
        return;
    }
    ah_ops_err e;
    cJSON *out = NULL;
    int rc;
    if (n == 2 && strcmp(method, "DELETE") == 0) {
        rc = ah_ops_connection_remove(ctx->core, tenant, name, &e);
        if (rc == 0)
            ah_syncs_forget(ctx->core->admin->syncs, tenant, name);
    } else if (n == 2 && strcmp(method, "PATCH") == 0) {
        rc = ah_ops_connection_set(ctx->core, tenant, name,
                                   cJSON_GetObjectItemCaseSensitive(body, "settings"), &e);
    } else if (n == 3 && strcmp(method, "POST") == 0 &&
               (strcmp(action, "enable") == 0 || strcmp(action, "disable") == 0)) {
        rc = ah_ops_connection_enable(ctx->core, tenant, name, strcmp(action, "enable") == 0, &e);
    } else if (n == 3 && strcmp(method, "POST") == 0 && strcmp(action, "rotate") == 0) {
        const char *key = str_field(body, "key");
        if (key == NULL) {
            cJSON_Delete(empty);
            ah_ex_error(ex, 400, "invalid_request", "name the setting: {\"key\":\"...\"}");
            return;
        }
        rc = ah_ops_connection_rotate(ctx->core, tenant, name, key, &out, &e);
    } else {
        cJSON_Delete(empty);
        ah_ex_error(ex, 404, "not_found", "no admin route %s %s", method, ah_ex_path(ex));
        return;
    }
    cJSON_Delete(empty);
    if (rc != 0) {
        answer_err(ex, &e);
        return;
    }
    /* Immediate effect: the next request and the next scheduled sync see it. */
    ah_ops_refresh(ctx->core);
    if (out == NULL) {
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "tenant", tenant);
        cJSON_AddStringToObject(out, "connection", name);
        if (n == 3)
            cJSON_AddBoolToObject(out, "enabled", strcmp(action, "enable") == 0);
    }
    answer_data(ex, 200, out);
}

/* POST /admin/console/codes: a one-time login link for the console
 * (`atshub console`). Only with the token or on the Unix socket: a console
 * session cannot make more sessions. */
static void h_console_code(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized_ex(ctx, ex, true))
        return;
    ah_admin *a = ctx->core->admin;
    if (a->tcp_h == NULL) {
        ah_ex_error(ex, 409, "console_off", "the console is served on the admin TCP listener: "
                    "set [admin] listen (and token_file) in %s",
                    ctx->core->cfg.path != NULL ? ctx->core->cfg.path : "the configuration");
        return;
    }
    char code[33];
    if (ah_console_issue_code(a->console, code) != 0) {
        ah_ex_error(ex, 500, "internal_error", "no random bytes for a login code");
        return;
    }
    /* A wildcard address is not one a browser can open: the loopback one is. */
    const char *host = ctx->core->cfg.admin_host;
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    bool v6 = strchr(host, ':') != NULL;
    char url[320];
    snprintf(url, sizeof url, "http://%s%s%s:%u/console/login?code=%s", v6 ? "[" : "", host,
             v6 ? "]" : "", (unsigned)ah_httpd_port(a->tcp_h), code);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "url", url);
    cJSON_AddNumberToObject(o, "expires_in_s", AH_CONSOLE_CODE_TTL_S);
    explicit_bzero(code, sizeof code);
    explicit_bzero(url, sizeof url);
    answer_data(ex, 201, o);
}

/* GET /admin/syncs[?tenant=T][&limit=&cursor=] */
static void h_syncs(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    ah_ops_err e;
    ah_ops_page page;
    if (!list_page(ex, &page))
        return;
    cJSON *out = NULL;
    const char *tenant = ah_ex_query(ex, "tenant"); /* an unknown one: not_found */
    int rc = ah_syncs_list(ctx->core->admin->syncs, ctx->core,
                           tenant != NULL && *tenant != '\0' ? tenant : NULL, &page, &out, &e);
    answer_page(ex, rc, &e, out, &page);
}

/* POST /admin/syncs/{tenant}/{name} {"type"?}: sync now, on a thread; the
 * progress shows in GET /admin/syncs. */
static void h_sync_start(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    char tenant[128] = "", name[128] = "", extra[8] = "";
    if (sscanf(ah_ex_subpath(ex), "%127[^/]/%127[^/]%7s", tenant, name, extra) != 2) {
        ah_ex_error(ex, 404, "not_found", "expected /admin/syncs/TENANT/NAME");
        return;
    }
    cJSON *empty;
    const cJSON *body = body_object(ex, &empty);
    if (body == NULL)
        return;
    const cJSON *tv = cJSON_GetObjectItemCaseSensitive(body, "type");
    ah_ops_err e;
    int rc;
    if (tv != NULL && !cJSON_IsString(tv)) {
        snprintf(e.code, sizeof e.code, "invalid_request");
        snprintf(e.msg, sizeof e.msg, "type must be a string");
        rc = -1;
    } else {
        rc = ah_syncs_start(ctx->core->admin->syncs, ctx->core, tenant, name,
                            tv != NULL ? tv->valuestring : NULL, &e);
    }
    cJSON_Delete(empty);
    if (rc != 0) {
        ah_ex_error(ex, status_for(e.code), e.code, "%s", e.msg);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "tenant", tenant);
    cJSON_AddStringToObject(o, "connection", name);
    cJSON_AddBoolToObject(o, "started", true);
    answer_data(ex, 202, o);
}

/* GET /admin/log?tenant=&source=&action=&status=&since=&until=&limit=:
 * the integration log as `atshub log` filters it, newest first. */
static void h_log(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    ah_log_filter f = {
        .tenant = ah_ex_query(ex, "tenant"),
        .source = ah_ex_query(ex, "source"),
        .action = ah_ex_query(ex, "action"),
        .since = ah_ex_query(ex, "since"),
        .until = ah_ex_query(ex, "until"),
        .limit = 100,
    };
    const char *st = ah_ex_query(ex, "status"), *lim = ah_ex_query(ex, "limit");
    char *end;
    if (st != NULL && *st != '\0') {
        long v = strtol(st, &end, 10);
        if (*end != '\0' || v < 100 || v > 599) {
            ah_ex_error(ex, 400, "invalid_request", "status must be an HTTP status code");
            return;
        }
        f.status = (int)v;
    }
    if (lim != NULL && *lim != '\0') {
        long v = strtol(lim, &end, 10);
        if (*end != '\0' || v < 1 || v > 1000) {
            ah_ex_error(ex, 400, "invalid_request", "limit must be between 1 and 1000");
            return;
        }
        f.limit = (int)v;
    }
    /* An empty filter field (the console's blank inputs) means any. */
    if (f.tenant != NULL && *f.tenant == '\0')
        f.tenant = NULL;
    if (f.source != NULL && *f.source == '\0')
        f.source = NULL;
    if (f.action != NULL && *f.action == '\0')
        f.action = NULL;
    if (f.since != NULL && *f.since == '\0')
        f.since = NULL;
    if (f.until != NULL && *f.until == '\0')
        f.until = NULL;
    /* An action no entry has would answer [] as if none had happened. */
    if (f.action != NULL && !ah_intlog_action_valid(f.action)) {
        ah_ex_error(ex, 400, "invalid_request", "action must be one of " AH_INTLOG_ACTIONS);
        return;
    }
    /* A bound that is no time is the caller's mistake, as on /v1/log: the
     * store would refuse it as its own failure (a 500 store_error). */
    char norm[32];
    if (f.since != NULL && ah_iso_normalize(f.since, norm) != 0) {
        ah_ex_error(ex, 400, "invalid_request", "since must be an ISO-8601 date or date-time");
        return;
    }
    if (f.until != NULL && ah_iso_normalize(f.until, norm) != 0) {
        ah_ex_error(ex, 400, "invalid_request", "until must be an ISO-8601 date or date-time");
        return;
    }
    cJSON *list = cJSON_CreateArray();
    if (ctx->core->store->ops->log_query(ctx->core->store, &f, ah_intlog_entry_json, list) != 0) {
        cJSON_Delete(list);
        ah_ex_error(ex, 500, "store_error", "cannot read the integration log");
        return;
    }
    answer_data(ex, 200, list);
}

/* The id of tenant `name` (answers 404 itself), or -1. */
static int64_t tenant_id_of(ah_core *core, ah_http_exchange *ex, const char *name)
{
    ah_tenant_row t = {0};
    if (name == NULL || core->store->ops->tenant_get(core->store, name, &t) != 0) {
        ah_ex_error(ex, 404, "not_found", "no tenant '%s'", name != NULL ? name : "");
        return -1;
    }
    int64_t id = t.id;
    ah_tenant_row_free(&t);
    return id;
}

/* GET /admin/webhooks[?tenant=T][&limit=&cursor=]: the product's webhook
 * endpoints (no secrets), as `atshub webhook list` shows them, a page at a
 * time as the other lists (list_page), in id order: an endpoint's cursor is
 * its id, the next_cursor of the page before. */
static void h_webhooks(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    ah_ops_page page;
    if (!list_page(ex, &page))
        return;
    int64_t after = 0;
    if (page.after != NULL && *page.after != '\0') {
        char *end;
        errno = 0;
        long long v = strtoll(page.after, &end, 10);
        if (*page.after < '0' || *page.after > '9' || *end != '\0' || errno != 0 || v < 1) {
            ah_ex_error(ex, 400, "invalid_request", "cursor: not a cursor of this list (give "
                        "a page's next_cursor)");
            return;
        }
        after = (int64_t)v;
    }
    const char *tn = ah_ex_query(ex, "tenant");
    int64_t tid = 0;
    if (tn != NULL && *tn != '\0' && (tid = tenant_id_of(ctx->core, ex, tn)) < 0)
        return;
    /* One row more than the page: it says whether a page follows. */
    cJSON *l = ah_webhook_list_page(ctx->core, tid, after, page.limit + 1);
    if (l == NULL) {
        ah_ex_error(ex, 500, "store_error", "cannot list the webhook endpoints");
        return;
    }
    if (cJSON_GetArraySize(l) > page.limit) {
        cJSON_DeleteItemFromArray(l, page.limit);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(l, page.limit - 1),
                                                           "id");
        snprintf(page.next, sizeof page.next, "%lld",
                 cJSON_IsNumber(id) ? (long long)id->valuedouble : 0LL);
    }
    answer_page(ex, 0, NULL, l, &page);
}

/* GET /admin/webhooks/{id}/deliveries, POST /admin/webhooks/{id}/enable |
 * /disable (enable resumes an endpoint where it stopped: its failed
 * delivery is tried again first, as `atshub webhook enable ID` does). */
static void h_webhook(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    long long id = 0;
    char action[16] = "", extra[4] = "";
    const char *method = ah_ex_method(ex);
    if (sscanf(ah_ex_subpath(ex), "%lld/%15[a-z]%3s", &id, action, extra) != 2 || id <= 0) {
        ah_ex_error(ex, 404, "not_found", "no admin route %s %s", method, ah_ex_path(ex));
        return;
    }
    if (strcmp(method, "GET") == 0 && strcmp(action, "deliveries") == 0) {
        int rc = 0;
        cJSON *d = ah_webhook_deliveries_rc(ctx->core, 0, (int64_t)id, 100, &rc);
        if (d == NULL && rc == AH_STORE_NOT_FOUND) {
            ah_ex_error(ex, 404, "not_found", "no webhook endpoint %lld", id);
            return;
        }
        if (d == NULL) {
            ah_ex_error(ex, 500, "internal_error", "cannot read the store");
            return;
        }
        answer_data(ex, 200, d);
        return;
    }
    bool en = strcmp(action, "enable") == 0;
    if (strcmp(method, "POST") != 0 || (!en && strcmp(action, "disable") != 0)) {
        ah_ex_error(ex, 404, "not_found", "no admin route %s %s", method, ah_ex_path(ex));
        return;
    }
    int rc = ah_webhook_set_enabled(ctx->core, 0, (int64_t)id, en);
    if (rc == AH_STORE_NOT_FOUND) {
        ah_ex_error(ex, 404, "not_found", "no webhook endpoint %lld", id);
        return;
    }
    if (rc != AH_STORE_OK) {
        ah_ex_error(ex, 500, "store_error", "cannot change webhook endpoint %lld", id);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddBoolToObject(o, "enabled", en);
    answer_data(ex, 200, o);
}

/* GET /admin/events?tenant=T[&after=&limit=&types=]: a tenant's event log,
 * as GET /v1/events gives it to the tenant. */
static void h_events(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    const char *tn = ah_ex_query(ex, "tenant");
    if (tn == NULL || *tn == '\0') {
        /* Events are a tenant's: one must be named (as ?tenant=T). */
        ah_ex_error(ex, 400, "invalid_request", "tenant is required: /admin/events?tenant=T");
        return;
    }
    int64_t tid = tenant_id_of(ctx->core, ex, tn);
    if (tid < 0)
        return;
    ah_events_api(ctx->core, ex, tid);
}

/* GET /admin/recent: the last hour per minute (metrics.h), for the
 * console's charts. */
static void h_recent(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    answer_data(ex, 200, ah_metrics_recent_json(ctx->core->metrics));
}

static void h_metrics(void *arg, ah_http_exchange *ex)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    char *text = ah_metrics_render(ctx->core);
    if (text == NULL) {
        ah_ex_error(ex, 500, "internal_error", "cannot render the metrics");
        return;
    }
    ah_ex_respond(ex, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
    free(text);
}

/* An admin request waiting for a bus worker (admin_offload). */
typedef struct admin_job {
    admin_ctx *ctx;
    ah_http_exchange *ex;
    ah_ex_pending *p;
    ah_http_handler fn;
} admin_job;

static void admin_job_run(void *arg)
{
    admin_job *j = arg;
    j->fn(j->ctx, j->ex);
    ah_ex_detach_finish(j->ex, j->p); /* the answer goes out */
    free(j);
}

/* Serves an operator request whose handler fn uses the store (or waits on
 * plugins' calls): the token or session is checked here, on the listener's
 * thread (401 at once), then fn runs on a bus worker, the request detached,
 * so that a busy store (its writer held by a long write) never holds the
 * listener's one thread: other operator requests, /metrics among them, are
 * answered meanwhile (issue 13). Each call is a lane of its own outside
 * every tenant's share (AH_BUS_NO_TENANT). Runs fn here without a bus or
 * with [http] plugin_routes = inline; 503 overloaded when the bus refuses.
 * fn checks the token again (cheap, in memory). */
static void admin_offload(void *arg, ah_http_exchange *ex, ah_http_handler fn)
{
    admin_ctx *ctx = arg;
    if (!authorized(ctx, ex))
        return;
    ah_core *core = ctx->core;
    admin_job *j = NULL;
    if (core->bus == NULL || !core->cfg.http_routes_on_bus ||
        (j = calloc(1, sizeof *j)) == NULL || (j->p = ah_ex_detach(ex)) == NULL) {
        free(j);
        fn(arg, ex);
        return;
    }
    j->ctx = ctx;
    j->ex = ex;
    j->fn = fn;
    ah_ex_pending *p = j->p;
    if (ah_rest_run(core, (int64_t)AH_BUS_NO_TENANT, ah_ex_path(ex), admin_job_run, j) != 0) {
        free(j);
        (void)ah_ex_release_error(p, 503, "overloaded",
                                  "the host cannot take more work now; retry later");
        ah_ex_detach_end(p);
    }
}

#define ADMIN_OFFLOADED(X)                                                                 \
    X(h_plugin_action) X(h_reconcile) X(h_instances) X(h_tenants) X(h_tenant_delete)       \
    X(h_connections) X(h_connection) X(h_syncs) X(h_sync_start) X(h_log) X(h_webhooks)    \
    X(h_webhook) X(h_events)
#define ADMIN_OFFLOAD_WRAP(fn)                                                             \
    static void o_##fn(void *arg, ah_http_exchange *ex)                                    \
    {                                                                                      \
        admin_offload(arg, ex, fn);                                                        \
    }
ADMIN_OFFLOADED(ADMIN_OFFLOAD_WRAP)

static int register_routes(ah_httpd *h, admin_ctx *ctx)
{
    /* o_: runs on a bus worker (admin_offload); the others answer from
     * memory on the listener's thread. */
    static const struct {
        const char *method, *path;
        unsigned flags;
        ah_http_handler fn;
    } routes[] = {
        {"GET", "/admin/plugins", 0, h_plugins},
        {"POST", "/admin/plugins/", AH_HTTPD_PREFIX, o_h_plugin_action},
        {"POST", "/admin/reconcile", 0, o_h_reconcile},
        {"GET", "/admin/instances", 0, o_h_instances},
        {"GET", "/admin/tenants", 0, o_h_tenants},
        {"POST", "/admin/tenants", 0, o_h_tenants},
        {"DELETE", "/admin/tenants/", AH_HTTPD_PREFIX, o_h_tenant_delete},
        {"GET", "/admin/connections", 0, o_h_connections},
        {"POST", "/admin/connections", 0, o_h_connections},
        {"*", "/admin/connections/", AH_HTTPD_PREFIX, o_h_connection},
        {"GET", "/metrics", 0, h_metrics},
        {"POST", "/admin/console/codes", 0, h_console_code},
        {"GET", "/admin/syncs", 0, o_h_syncs},
        {"POST", "/admin/syncs/", AH_HTTPD_PREFIX, o_h_sync_start},
        {"GET", "/admin/log", 0, o_h_log},
        {"GET", "/admin/recent", 0, h_recent},
        {"GET", "/admin/webhooks", 0, o_h_webhooks},
        {"*", "/admin/webhooks/", AH_HTTPD_PREFIX, o_h_webhook},
        {"GET", "/admin/events", 0, o_h_events},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (ah_httpd_route(h, routes[i].method, routes[i].path, routes[i].flags, routes[i].fn,
                           ctx) != 0)
            return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Listeners                                                                 */
/* ------------------------------------------------------------------------ */

/* A bound, listening AF_UNIX socket at path (mode 0600), or -1 with err. */
static int unix_listen(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "[admin] socket %s exists and is not a socket", path);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            snprintf(err, errlen, "[admin] socket %s: another atshub daemon is running there "
                     "(stop it first, or set [admin] socket)", path);
            return -1;
        }
        unlink(path); /* left by a daemon that did not stop cleanly */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "[admin] socket: %s", strerror(errno));
        return -1;
    }
    /* chmod before listen: nobody can connect in between. */
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || chmod(path, 0600) != 0 ||
        listen(fd, 64) != 0) {
        snprintf(err, errlen, "[admin] socket %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

/* The token grants everything (a plugin reload loads any .so): like the
 * host key (crypto.c), its file must be a regular one no one else may read
 * or write, and it is compared as a C string, so every byte is visible
 * ASCII (a binary token's NUL would leave a few bytes to guess). */
static int read_token(const char *file, char *out, size_t outlen, char *err, size_t errlen)
{
    size_t len = 0;
    const char *why = NULL;
    struct stat st;
    FILE *f = fopen(file, "re");
    if (f == NULL)
        why = strerror(errno);
    else if (fstat(fileno(f), &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if ((st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "[admin] token_file %s is readable or writable by group/others (mode %03o); "
                 "run: chmod 600 %s",
                 file, (unsigned)(st.st_mode & 0777), file);
        fclose(f);
        return -1;
    } else
        len = fread(out, 1, outlen - 1, f);
    if (f != NULL)
        fclose(f);
    out[len] = '\0';
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r' || out[len - 1] == ' '))
        out[--len] = '\0';
    for (size_t i = 0; why == NULL && i < len; i++)
        if ((unsigned char)out[i] <= 0x20 || (unsigned char)out[i] >= 0x7f)
            why = "the token must be visible ASCII characters only";
    if (why == NULL && len < 16)
        why = "the token must be at least 16 characters";
    if (why != NULL) {
        snprintf(err, errlen, "[admin] token_file %s: %s", file, why);
        explicit_bzero(out, outlen);
        return -1;
    }
    return 0;
}

/* The daemon's side: a missing token file is made, random and mode 0600
 * (O_EXCL: two daemons starting at once agree on one). */
static int load_or_make_token(const char *file, char *out, size_t outlen, char *err,
                              size_t errlen)
{
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        char tok[65];
        if (ah_random_hex(tok, 32) != 0) {
            close(fd);
            unlink(file);
            snprintf(err, errlen, "[admin] token_file %s: no random bytes", file);
            return -1;
        }
        tok[64] = '\n';
        ssize_t w = write(fd, tok, sizeof tok);
        explicit_bzero(tok, sizeof tok);
        if (w != (ssize_t)sizeof tok || fsync(fd) != 0) {
            snprintf(err, errlen, "[admin] token_file %s: %s", file, strerror(errno));
            close(fd);
            unlink(file);
            return -1;
        }
        close(fd);
    } else if (errno != EEXIST) {
        snprintf(err, errlen, "[admin] token_file %s: cannot create it: %s", file,
                 strerror(errno));
        return -1;
    }
    return read_token(file, out, outlen, err, errlen);
}

int ah_admin_start(ah_core *core, char *err, size_t errlen)
{
    ah_admin *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    core->admin = a;
    a->unix_ctx.core = core;
    a->tcp_ctx.core = core;
    a->console = ah_console_new();
    a->syncs = ah_syncs_new();
    if (a->console == NULL || a->syncs == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->tcp_ctx.console = a->console;
    /* Before the scheduler starts (ah_daemon_start starts it after us). */
    if (core->sync != NULL)
        ah_sync_set_observer(core->sync, ah_syncs_observe, a->syncs);
    if (ah_admin_socket_path(&core->cfg, a->sock_path, sizeof a->sock_path) == 0) {
        int fd = unix_listen(a->sock_path, err, errlen);
        if (fd < 0) {
            a->sock_path[0] = '\0';
            return -1;
        }
        ah_httpd_opts o = {.threads = 1, .use_listen_fd = true, .listen_fd = fd,
                           .on_done = ah_metrics_admin_http_done, .on_done_arg = core->metrics};
        a->unix_h = ah_httpd_new(&o, err, errlen); /* owns fd from here on */
        if (a->unix_h == NULL || register_routes(a->unix_h, &a->unix_ctx) != 0) {
            if (a->unix_h != NULL && err[0] == '\0')
                snprintf(err, errlen, "cannot register the admin routes");
            return -1;
        }
    } else if (!core->cfg.admin_socket_off) {
        snprintf(err, errlen, "[admin] socket: the path is too long for a Unix socket");
        return -1;
    }
    if (core->cfg.admin_host != NULL) {
        if (load_or_make_token(core->cfg.admin_token_file, a->tcp_ctx.token,
                               sizeof a->tcp_ctx.token, err, errlen) != 0)
            return -1;
        ah_httpd_opts o = {.host = core->cfg.admin_host, .port = core->cfg.admin_port,
                           .threads = 1, .on_done = ah_metrics_admin_http_done,
                           .on_done_arg = core->metrics};
        a->tcp_h = ah_httpd_new(&o, err, errlen);
        if (a->tcp_h == NULL || register_routes(a->tcp_h, &a->tcp_ctx) != 0 ||
            ah_console_register(a->tcp_h, a->console) != 0 ||
            ah_httpd_start(a->tcp_h, err, errlen) != 0) {
            if (a->tcp_h != NULL && err[0] == '\0')
                snprintf(err, errlen, "cannot register the admin routes");
            return -1;
        }
        ah_log(&core->log, AH_LOG_INFO, "admin", "admin API on http://%s:%u (token required); "
               "console at /console/ (atshub console prints a login link)",
               core->cfg.admin_host, (unsigned)ah_httpd_port(a->tcp_h));
    }
    /* The socket serves last: its handlers read a->tcp_h (the console's
     * login link), which must be complete before any of them runs. */
    if (a->unix_h != NULL) {
        if (ah_httpd_start(a->unix_h, err, errlen) != 0)
            return -1;
        ah_log(&core->log, AH_LOG_INFO, "admin", "admin API on unix:%s", a->sock_path);
    }
    return 0;
}

void ah_admin_quiesce(ah_core *core)
{
    if (core->admin == NULL)
        return;
    ah_httpd_quiesce(core->admin->unix_h);
    ah_httpd_quiesce(core->admin->tcp_h);
}

long ah_admin_inflight(ah_core *core)
{
    ah_admin *a = core->admin;
    if (a == NULL)
        return 0;
    return (a->unix_h != NULL ? ah_httpd_inflight(a->unix_h) : 0) +
           (a->tcp_h != NULL ? ah_httpd_inflight(a->tcp_h) : 0);
}

void ah_admin_set_syncs_max(ah_core *core, size_t max)
{
    if (core->admin != NULL)
        ah_syncs_set_max(core->admin->syncs, max);
}

void ah_admin_stop(ah_core *core)
{
    ah_admin *a = core->admin;
    if (a == NULL)
        return;
    ah_httpd_free(a->unix_h);
    ah_httpd_free(a->tcp_h);
    /* After the listeners: no request starts a sync any more. */
    ah_syncs_free(a->syncs, core);
    ah_console_free(a->console);
    if (a->sock_path[0] != '\0')
        unlink(a->sock_path);
    explicit_bzero(a->tcp_ctx.token, sizeof a->tcp_ctx.token);
    free(a);
    core->admin = NULL;
}

/* ------------------------------------------------------------------------ */
/* Client                                                                    */
/* ------------------------------------------------------------------------ */

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    FILE *f = arg;
    return fwrite(data, size, n, f);
}

int ah_admin_call(const ah_config *cfg, const char *method, const char *path,
                  const char *body, long *status, char **resp, char *err, size_t errlen)
{
    char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
    bool use_sock = ah_admin_socket_path(cfg, sock, sizeof sock) == 0;
    /* The URL is sized to the path: a long query (`atshub events --types`)
     * is sent whole, never cut (a cut one asked for another page). */
    char *url = NULL, token[AH_ADMIN_TOKEN_MAX] = "", auth[AH_ADMIN_TOKEN_MAX + 32] = "";
    int ul;
    if (use_sock) {
        ul = asprintf(&url, "http://localhost%s", path);
    } else if (cfg->admin_host != NULL) {
        if (read_token(cfg->admin_token_file, token, sizeof token, err, errlen) != 0)
            return -1;
        bool v6 = strchr(cfg->admin_host, ':') != NULL;
        ul = asprintf(&url, "http://%s%s%s:%u%s", v6 ? "[" : "", cfg->admin_host, v6 ? "]" : "",
                      (unsigned)cfg->admin_port, path);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    } else {
        snprintf(err, errlen, "the admin listener is off ([admin] socket = off and no listen): "
                 "cannot reach a running daemon");
        return -1;
    }
    if (ul < 0) {
        url = NULL;
        snprintf(err, errlen, "out of memory");
        explicit_bzero(token, sizeof token);
        explicit_bzero(auth, sizeof auth);
        return -1;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (auth[0] != '\0' && hdrs != NULL) {
        struct curl_slist *h2 = curl_slist_append(hdrs, auth);
        hdrs = h2 != NULL ? h2 : hdrs;
    }
    int rc = -1;
    if (f == NULL || c == NULL || hdrs == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (use_sock)
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    /* A reload runs init and may wait for a file copy: be generous. */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
    CURLcode cr = curl_easy_perform(c);
    if (cr == CURLE_COULDNT_CONNECT) {
        snprintf(err, errlen, "no atshub daemon is running (nothing answers on %s%s): start "
                 "one with 'atshub serve -c %s'", use_sock ? "unix:" : "", use_sock ? sock : url,
                 cfg->path != NULL ? cfg->path : "FILE");
    } else if (cr != CURLE_OK) {
        snprintf(err, errlen, "the daemon did not answer (%s%s): %s", use_sock ? "unix:" : "",
                 use_sock ? sock : url, curl_easy_strerror(cr));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        rc = 0;
    }
done:
    if (f != NULL)
        fclose(f);
    if (rc == 0)
        *resp = text;
    else
        free(text);
    curl_slist_free_all(hdrs);
    if (c != NULL)
        curl_easy_cleanup(c);
    free(url);
    explicit_bzero(token, sizeof token);
    explicit_bzero(auth, sizeof auth);
    return rc;
}

void ah_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || (path[0] != '/' && path[0] != '@') || strlen(path) >= 108)
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    (void)sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, sl);
    close(fd);
}
