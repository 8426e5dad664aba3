/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The REST surface and life cycle of trust.h's modules: GET /v1/events,
 * POST/GET /v1/webhooks, POST /v1/webhooks/{id}/enable|disable, GET
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

/* POST /v1/webhooks {"url","types":[...]|"a,b"} and GET /v1/webhooks */
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
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(in, "url");
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(in, "types");
    if (!cJSON_IsString(url)) {
        ah_ex_error(ex, 400, AH_E_INVALID, "url is required (a string)");
        return;
    }
    char tl[1100] = "";
    if (cJSON_IsArray(types)) {
        const cJSON *t;
        cJSON_ArrayForEach(t, types) {
            size_t n = strlen(tl);
            if (!cJSON_IsString(t) || strchr(t->valuestring, ',') != NULL ||
                n + strlen(t->valuestring) + 2 > 1024) {
                ah_ex_error(ex, 400, AH_E_INVALID, "types must be a list of event types");
                return;
            }
            snprintf(tl + n, sizeof tl - n, "%s%s", n ? "," : "", t->valuestring);
        }
    } else if (cJSON_IsString(types)) {
        snprintf(tl, sizeof tl, "%s", types->valuestring);
    } else if (types != NULL && !cJSON_IsNull(types)) {
        ah_ex_error(ex, 400, AH_E_INVALID, "types must be a list of event types");
        return;
    }
    int64_t id = 0;
    char secret[96], err[256];
    if (ah_webhook_add(core, tid, url->valuestring, tl, &id, secret, sizeof secret, err,
                       sizeof err) != 0) {
        ah_ex_error(ex, 400, AH_E_INVALID, "%s", err);
        return;
    }
    cJSON *d = cJSON_CreateObject();
    if (d != NULL) {
        cJSON_AddNumberToObject(d, "id", (double)id);
        cJSON_AddStringToObject(d, "url", url->valuestring);
        cJSON_AddStringToObject(d, "types", tl[0] ? tl : "*");
        cJSON_AddBoolToObject(d, "enabled", true);
        cJSON_AddStringToObject(d, "secret", secret);
    }
    explicit_bzero(secret, sizeof secret);
    respond_data(ex, 201, d);
}

/* The endpoint id of /v1/webhooks/{id}/...: a positive integer, else 0
 * after answering 404. */
static long long webhook_id(ah_http_exchange *ex)
{
    const char *s = ah_ex_param(ex, "id");
    char *end = NULL;
    long long id = s != NULL ? strtoll(s, &end, 10) : 0;
    if (s == NULL || end == s || *end != '\0' || id <= 0) {
        ah_ex_error(ex, 404, AH_E_NOT_FOUND, "no webhook endpoint '%s'", s != NULL ? s : "");
        return 0;
    }
    return id;
}

/* POST /v1/webhooks/{id}/enable and /v1/webhooks/{id}/disable */
static void webhook_set_enabled(ah_core *core, ah_http_exchange *ex, bool enable)
{
    char tenant[128];
    int64_t tid = ah_rest_tenant(core, ex, tenant, sizeof tenant);
    if (tid < 0)
        return;
    long long id = webhook_id(ex);
    if (id == 0)
        return;
    int rc = ah_webhook_set_enabled(core, tid, id, enable);
    if (rc == AH_STORE_NOT_FOUND) {
        ah_ex_error(ex, 404, AH_E_NOT_FOUND, "no webhook endpoint %lld", id);
        return;
    }
    if (rc != 0) {
        ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot update the store");
        return;
    }
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

/* GET /v1/webhooks/{id}/deliveries */
static void rest_webhook_deliveries(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    char tenant[128];
    int64_t tid = ah_rest_tenant(core, ex, tenant, sizeof tenant);
    if (tid < 0)
        return;
    long long id = webhook_id(ex);
    if (id == 0)
        return;
    const char *l = ah_ex_query(ex, "limit");
    cJSON *d = ah_webhook_deliveries(core, tid, id, l != NULL ? atoi(l) : 100);
    if (d == NULL) {
        ah_ex_error(ex, 404, AH_E_NOT_FOUND, "no webhook endpoint %lld", id);
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

int ah_trust_register(ah_core *core)
{
    ah_httpd *h = core->httpd;
    if (ah_httpd_route(h, "GET", "/v1/events", 0, rest_events, core) != 0 ||
        ah_httpd_route(h, "GET", "/v1/webhooks", 0, rest_webhooks, core) != 0 ||
        ah_httpd_route(h, "POST", "/v1/webhooks", 0, rest_webhooks, core) != 0 ||
        ah_httpd_route(h, "POST", "/v1/webhooks/{id}/enable", 0, rest_webhook_enable, core) != 0 ||
        ah_httpd_route(h, "POST", "/v1/webhooks/{id}/disable", 0, rest_webhook_disable, core) !=
            0 ||
        ah_httpd_route(h, "GET", "/v1/webhooks/{id}/deliveries", 0, rest_webhook_deliveries,
                       core) != 0 ||
        ah_httpd_route(h, "GET", "/v1/bulk/{id}", 0, rest_bulk, core) != 0)
        return -1;
    ah_httpd_set_hooks(h, ah_idem_before, ah_idem_after, core);
    return 0;
}
