/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The REST surface and life cycle of trust.h's modules: GET /v1/events,
 * POST/GET /v1/webhooks, PATCH/DELETE /v1/webhooks/{id}, POST
 * /v1/webhooks/{id}/enable|disable|rotate-secret, GET
 * /v1/webhooks/{id}/deliveries, GET /v1/bulk/{id}; the idempotency hooks;
 * the ticker's share.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rest.h"
#include "api.h"
#include "bulk.h"
#include "eventlog.h"
#include "idempotency.h"
#include "webhooks.h"

static void respond_data(ah_http_exchange *ex, int status, cJSON *data)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || data == NULL || !cJSON_AddItemToObject(o, "data", data)) {
        cJSON_Delete(o);
        cJSON_Delete(data);
        ah_ex_error(ex, 500, AH_E_INTERNAL, "out of memory");
        return;
    }
    ah_ex_respond_json(ex, status, o);
}

static void rest_events(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    char tenant[128];
    int64_t tid = ah_rest_tenant(core, ex, tenant, sizeof tenant);
    if (tid < 0)
        return;
    ah_events_api(core, ex, tid);
}

/* "types": a list of event types or one comma-separated string, into tl
 * (cap >= 1100); absent or null: "". false after answering 400. */
static bool parse_types(ah_http_exchange *ex, const cJSON *types, char *tl, size_t cap)
{
    tl[0] = '\0';
    if (cJSON_IsArray(types)) {
        const cJSON *t;
        cJSON_ArrayForEach(t, types) {
            size_t n = strlen(tl);
            if (!cJSON_IsString(t) || strchr(t->valuestring, ',') != NULL ||
                n + strlen(t->valuestring) + 2 > 1024) {
                ah_ex_error(ex, 400, AH_E_INVALID, "types must be a list of event types");
                return false;
            }
            snprintf(tl + n, cap - n, "%s%s", n ? "," : "", t->valuestring);
        }
    } else if (cJSON_IsString(types)) {
        snprintf(tl, cap, "%s", types->valuestring);
    } else if (types != NULL && !cJSON_IsNull(types)) {
        ah_ex_error(ex, 400, AH_E_INVALID, "types must be a list of event types");
        return false;
    }
    return true;
}

/* Refuses a body that is no object, or a member not in `allowed`
 * (NULL-terminated): 400. (An array's items have no names: taken for
 * members, one authenticated request with the body [1] crashed the
 * daemon.) */
static bool only_members(ah_http_exchange *ex, const cJSON *in, const char *const *allowed)
{
    if (!cJSON_IsObject(in)) {
        ah_ex_error(ex, 400, AH_E_INVALID, "the request body must be a JSON object");
        return false;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, in) {
        bool ok = false;
        for (const char *const *a = allowed; *a != NULL && !ok; a++)
            ok = strcmp(m->string, *a) == 0;
        if (!ok) {
            ah_ex_error(ex, 400, AH_E_INVALID, "unknown field '%s'", m->string);
            return false;
        }
    }
    return true;
}

/* An optional string member: true with *out (NULL when absent or null),
 * false after answering 400. */
static bool opt_string(ah_http_exchange *ex, const cJSON *in, const char *name, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);
    *out = NULL;
    if (v == NULL || cJSON_IsNull(v))
        return true;
    if (!cJSON_IsString(v)) {
        ah_ex_error(ex, 400, AH_E_INVALID, "%s must be a string", name);
        return false;
    }
    *out = v->valuestring;
    return true;
}

/* Endpoint id of tenant tid as the list shows it, or NULL. */
static cJSON *endpoint_of(ah_core *core, int64_t tid, long long id)
{
    cJSON *list = ah_webhook_list(core, tid), *found = NULL, *e;
    cJSON_ArrayForEach(e, list) {
        const cJSON *eid = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsNumber(eid) && (long long)eid->valuedouble == id) {
            found = cJSON_DetachItemViaPointer(list, e);
            break;
        }
    }
    cJSON_Delete(list);
    return found;
}

/* POST /v1/webhooks {"url","types":[...]|"a,b","description"} and GET /v1/webhooks */
static void rest_webhooks(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    char tenant[128];
    int64_t tid = ah_rest_tenant(core, ex, tenant, sizeof tenant);
    if (tid < 0)
        return;
    if (strcmp(ah_ex_method(ex), "GET") == 0) {
        respond_data(ex, 200, ah_webhook_list(core, tid));
        return;
    }
    if (strcmp(ah_ex_method(ex), "POST") != 0) {
        ah_ex_add_header(ex, "Allow", "GET, POST");
        ah_ex_error(ex, 405, "method_not_allowed", "use GET or POST");
        return;
    }
    const cJSON *in = ah_ex_json(ex);
    if (in == NULL)
        return;
    static const char *const allowed[] = {"url", "types", "description", NULL};
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(in, "url");
    const char *desc = NULL;
    if (!only_members(ex, in, allowed) || !opt_string(ex, in, "description", &desc))
        return;
    if (!cJSON_IsString(url)) {
        ah_ex_error(ex, 400, AH_E_INVALID, "url is required (a string)");
        return;
    }
    char tl[1100];
    if (!parse_types(ex, cJSON_GetObjectItemCaseSensitive(in, "types"), tl, sizeof tl))
        return;
    char err[256];
    /* Checked before anything is stored: a bad description adds nothing. */
    if (desc != NULL &&
        ah_webhook_update(core, tid, 0, NULL, NULL, desc, err, sizeof err) ==
            AH_WEBHOOK_INVALID) {
        ah_ex_error(ex, 400, AH_E_INVALID, "%s", err);
        return;
    }
    int64_t id = 0;
    char secret[96];
    int rc = ah_webhook_add(core, tid, url->valuestring, tl, &id, secret, sizeof secret, err,
                            sizeof err);
    if (rc != 0) {
        if (rc == AH_WEBHOOK_INVALID)
            ah_ex_error(ex, 400, AH_E_INVALID, "%s", err);
        else
            ah_ex_error(ex, 500, AH_E_INTERNAL, "%s", err);
        return;
    }
    if (desc != NULL && ah_webhook_update(core, tid, id, NULL, NULL, desc, err, sizeof err) != 0) {
        explicit_bzero(secret, sizeof secret);
        ah_ex_error(ex, 500, AH_E_INTERNAL, "%s", err);
        return;
    }
    cJSON *d = cJSON_CreateObject();
    if (d != NULL) {
        cJSON_AddNumberToObject(d, "id", (double)id);
        cJSON_AddStringToObject(d, "url", url->valuestring);
        cJSON_AddStringToObject(d, "types", tl[0] ? tl : "*");
        cJSON_AddStringToObject(d, "description", desc != NULL ? desc : "");
        cJSON_AddBoolToObject(d, "enabled", true);
        cJSON_AddStringToObject(d, "secret", secret);
    }
    explicit_bzero(secret, sizeof secret);
    respond_data(ex, 201, d);
}

/* The tenant and the endpoint id of /v1/webhooks/{id}/... (a positive
 * integer); false after answering (401, 404). */
static bool webhook_target(ah_core *core, ah_http_exchange *ex, int64_t *tid, long long *id)
{
    char tenant[128];
    *tid = ah_rest_tenant(core, ex, tenant, sizeof tenant);
    if (*tid < 0)
        return false;
    const char *s = ah_ex_param(ex, "id");
    char *end = NULL;
    *id = s != NULL ? strtoll(s, &end, 10) : 0;
    if (s == NULL || end == s || *end != '\0' || *id <= 0) {
        ah_ex_error(ex, 404, AH_E_NOT_FOUND, "no webhook endpoint '%s'", s != NULL ? s : "");
        return false;
    }
    return true;
}

/* A webhook change's result: true for 0, else false after answering 404,
 * or with err (the change's own words: what was wrong with the request, or
 * that the store failed) 400 for AH_WEBHOOK_INVALID and 500 for the rest;
 * without err (a change that only touches the store), 500. */
static bool webhook_changed(ah_http_exchange *ex, int rc, long long id, const char *err)
{
    if (rc == 0)
        return true;
    if (rc == AH_STORE_NOT_FOUND)
        ah_ex_error(ex, 404, AH_E_NOT_FOUND, "no webhook endpoint %lld", id);
    else if (err == NULL)
        ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot update the store");
    else if (rc == AH_WEBHOOK_INVALID)
        ah_ex_error(ex, 400, AH_E_INVALID, "%s", err);
    else
        ah_ex_error(ex, 500, AH_E_INTERNAL, "%s", err);
    return false;
}

/* POST /v1/webhooks/{id}/enable and /v1/webhooks/{id}/disable */
static void webhook_set_enabled(ah_core *core, ah_http_exchange *ex, bool enable)
{
    int64_t tid;
    long long id;
    if (!webhook_target(core, ex, &tid, &id))
        return;
    if (!webhook_changed(ex, ah_webhook_set_enabled(core, tid, id, enable), id, NULL))
        return;
    cJSON *d = cJSON_CreateObject();
    if (d != NULL) {
        cJSON_AddNumberToObject(d, "id", (double)id);
        cJSON_AddBoolToObject(d, "enabled", enable);
    }
    respond_data(ex, 200, d);
}

static void rest_webhook_enable(void *arg, ah_http_exchange *ex)
{
    webhook_set_enabled(arg, ex, true);
}

static void rest_webhook_disable(void *arg, ah_http_exchange *ex)
{
    webhook_set_enabled(arg, ex, false);
}

/* PATCH /v1/webhooks/{id} {"url"?, "types"?, "description"?} */
static void rest_webhook_patch(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    int64_t tid;
    long long id;
    if (!webhook_target(core, ex, &tid, &id))
        return;
    const cJSON *in = ah_ex_json(ex);
    if (in == NULL)
        return;
    static const char *const allowed[] = {"url", "types", "description", NULL};
    const char *url = NULL, *desc = NULL;
    if (!only_members(ex, in, allowed) || !opt_string(ex, in, "url", &url) ||
        !opt_string(ex, in, "description", &desc))
        return;
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(in, "types");
    char tl[1100];
    if (!parse_types(ex, types, tl, sizeof tl))
        return;
    bool has_types = types != NULL && !cJSON_IsNull(types);
    if (url == NULL && desc == NULL && !has_types) {
        ah_ex_error(ex, 400, AH_E_INVALID, "give at least one of url, types, description");
        return;
    }
    char err[256];
    int rc = ah_webhook_update(core, tid, id, url, has_types ? tl : NULL, desc, err, sizeof err);
    if (!webhook_changed(ex, rc, id, err))
        return;
    respond_data(ex, 200, endpoint_of(core, tid, id));
}

/* DELETE /v1/webhooks/{id} */
static void rest_webhook_delete(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    int64_t tid;
    long long id;
    if (!webhook_target(core, ex, &tid, &id))
        return;
    if (!webhook_changed(ex, ah_webhook_delete(core, tid, id), id, NULL))
        return;
    cJSON *d = cJSON_CreateObject();
    if (d != NULL) {
        cJSON_AddNumberToObject(d, "id", (double)id);
        cJSON_AddBoolToObject(d, "deleted", true);
    }
    respond_data(ex, 200, d);
}

/* POST /v1/webhooks/{id}/rotate-secret {"overlap_seconds"?} */
static void rest_webhook_rotate(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    int64_t tid;
    long long id;
    if (!webhook_target(core, ex, &tid, &id))
        return;
    /* No body is {} (every member is optional). */
    size_t body_len = 0;
    ah_ex_body(ex, &body_len);
    static const cJSON none = {.type = cJSON_Object};
    const cJSON *in = body_len == 0 ? &none : ah_ex_json(ex);
    if (in == NULL)
        return;
    static const char *const allowed[] = {"overlap_seconds", NULL};
    if (!only_members(ex, in, allowed))
        return;
    const cJSON *ov = cJSON_GetObjectItemCaseSensitive(in, "overlap_seconds");
    long overlap = 86400;
    if (ov != NULL && !cJSON_IsNull(ov)) {
        /* The range first: converting a double a long cannot hold (1e300,
         * an infinity) is undefined. */
        if (!cJSON_IsNumber(ov) || !(ov->valuedouble >= 0 && ov->valuedouble <= 604800) ||
            ov->valuedouble != (double)(long)ov->valuedouble) {
            ah_ex_error(ex, 400, AH_E_INVALID,
                        "overlap_seconds must be an integer between 0 and 604800");
            return;
        }
        overlap = (long)ov->valuedouble;
    }
    char secret[96], until[32], err[256];
    int rc = ah_webhook_rotate(core, tid, id, overlap, secret, sizeof secret, until, err,
                               sizeof err);
    if (!webhook_changed(ex, rc, id, err))
        return;
    cJSON *d = cJSON_CreateObject();
    if (d != NULL) {
        cJSON_AddNumberToObject(d, "id", (double)id);
        cJSON_AddStringToObject(d, "secret", secret);
        if (until[0])
            cJSON_AddStringToObject(d, "previous_secret_expires_at", until);
        else
            cJSON_AddNullToObject(d, "previous_secret_expires_at");
    }
    explicit_bzero(secret, sizeof secret);
    respond_data(ex, 200, d);
}

/* GET /v1/webhooks/{id}/deliveries */
static void rest_webhook_deliveries(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    int64_t tid;
    long long id;
    if (!webhook_target(core, ex, &tid, &id))
        return;
    const char *l = ah_ex_query(ex, "limit");
    long limit = 100;
    if (l != NULL) {
        char *end = NULL;
        limit = strtol(l, &end, 10);
        if (*l == '\0' || *end != '\0' || limit < 1 || limit > 1000) {
            ah_ex_error(ex, 400, AH_E_INVALID, "limit must be an integer between 1 and 1000");
            return;
        }
    }
    int rc = 0;
    cJSON *d = ah_webhook_deliveries_rc(core, tid, id, (int)limit, &rc);
    if (d == NULL && rc == AH_STORE_NOT_FOUND) {
        ah_ex_error(ex, 404, AH_E_NOT_FOUND, "no webhook endpoint %lld", id);
        return;
    }
    if (d == NULL) {
        ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot read the store");
        return;
    }
    respond_data(ex, 200, d);
}

/* GET /v1/bulk/{id} */
static void rest_bulk(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    char tenant[128];
    int64_t tid = ah_rest_tenant(core, ex, tenant, sizeof tenant);
    if (tid < 0)
        return;
    const char *id = ah_ex_param(ex, "id");
    if (id == NULL || strlen(id) > 64) {
        ah_ex_error(ex, 404, AH_E_NOT_FOUND, "no bulk job '%s'", id != NULL ? id : "");
        return;
    }
    cJSON *r = ah_bulk_report(core, tid, id);
    if (r == NULL) {
        ah_ex_error(ex, 404, AH_E_NOT_FOUND, "no bulk job '%s'", id);
        return;
    }
    respond_data(ex, 200, r);
}

/* Every route here reads or writes the store: each runs on a bus worker,
 * within its tenant's share (ah_rest_offload). */
#define TRUST_OFFLOAD(fn)                                                                  \
    static void fn##_route(void *core, ah_http_exchange *ex)                               \
    {                                                                                      \
        ah_rest_offload(core, ex, fn);                                                     \
    }
TRUST_OFFLOAD(rest_events)
TRUST_OFFLOAD(rest_webhooks)
TRUST_OFFLOAD(rest_webhook_patch)
TRUST_OFFLOAD(rest_webhook_delete)
TRUST_OFFLOAD(rest_webhook_rotate)
TRUST_OFFLOAD(rest_webhook_enable)
TRUST_OFFLOAD(rest_webhook_disable)
TRUST_OFFLOAD(rest_webhook_deliveries)
TRUST_OFFLOAD(rest_bulk)

int ah_trust_register(ah_core *core)
{
    ah_httpd *h = core->httpd;
    if (ah_httpd_route(h, "GET", "/v1/events", 0, rest_events_route, core) != 0 ||
        ah_httpd_route(h, "GET", "/v1/webhooks", 0, rest_webhooks_route, core) != 0 ||
        ah_httpd_route(h, "POST", "/v1/webhooks", 0, rest_webhooks_route, core) != 0 ||
        ah_httpd_route(h, "PATCH", "/v1/webhooks/{id}", 0, rest_webhook_patch_route, core) !=
            0 ||
        ah_httpd_route(h, "DELETE", "/v1/webhooks/{id}", 0, rest_webhook_delete_route, core) !=
            0 ||
        ah_httpd_route(h, "POST", "/v1/webhooks/{id}/rotate-secret", 0,
                       rest_webhook_rotate_route, core) != 0 ||
        ah_httpd_route(h, "POST", "/v1/webhooks/{id}/enable", 0, rest_webhook_enable_route,
                       core) != 0 ||
        ah_httpd_route(h, "POST", "/v1/webhooks/{id}/disable", 0, rest_webhook_disable_route,
                       core) != 0 ||
        ah_httpd_route(h, "GET", "/v1/webhooks/{id}/deliveries", 0,
                       rest_webhook_deliveries_route, core) != 0 ||
        ah_httpd_route(h, "GET", "/v1/bulk/{id}", 0, rest_bulk_route, core) != 0)
        return -1;
    ah_httpd_set_hooks(h, ah_idem_before, ah_idem_after, core);
    return 0;
}
