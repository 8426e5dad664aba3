/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The LinkedIn plugin: onboards a tenant onto LinkedIn's ATS integrations
 * (Apply with LinkedIn, Apply Connect, Recruiter System Connect) the way the
 * Middleware Platform guide prescribes: a customer application per tenant,
 * the configuration widget on a page atshub serves, enable and verify from
 * the server (README.md).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "li.h"

#ifndef LI_VERSION
#define LI_VERSION "1.0.0"
#endif

static const ah_setting_spec li_settings[] = {
    {"base_url", AH_SET_URL, NULL, AH_SETTING_REQUIRED,
     "LinkedIn API address, https://api.linkedin.com"},
    {"token_url", AH_SET_STRING, "https://www.linkedin.com/oauth/v2/accessToken", 0,
     "OAuth2 token endpoint (client credentials): absolute, or a path under base_url"},
    {"partner_client_id", AH_SET_STRING, NULL, AH_SETTING_REQUIRED,
     "Client id of the partner (parent) application allowed to use the Provisioning API"},
    {"partner_client_secret", AH_SET_STRING, NULL, AH_SETTING_REQUIRED | AH_SETTING_SECRET,
     "Client secret of the partner (parent) application"},
    {"customer_name", AH_SET_STRING, NULL, 0,
     "The customer's proper name: LinkedIn shows it on the consent screen (required to "
     "provision)"},
    {"ats_name", AH_SET_STRING, "atshub", 0,
     "The ATS name: the customer application is named \"{ats_name} - {customer_name}\""},
    {"unique_foreign_id", AH_SET_STRING, NULL, 0,
     "uniqueForeignId of the customer application (default: the tenant name)"},
    {"js_sdk_domains", AH_SET_LIST, NULL, 0,
     "validJsSdkDomains: origins allowed to show the widget, full URLs without a trailing "
     "slash (default: the origin of public_url)"},
    {"public_url", AH_SET_URL, NULL, 0,
     "atshub's public address, to print the configuration page URL"},
    {"integration_types", AH_SET_LIST, LI_TYPE_AWLI, 0,
     "Integration types the widget offers: APPLY_WITH_LINKEDIN (always), APPLY_CONNECT, "
     "RECRUITER_SYSTEM_CONNECT_COMPANY, RECRUITER_SYSTEM_CONNECT_CONTRACT"},
    {"sdk_url", AH_SET_URL, "https://www.linkedin.com/uas/in.js", 0,
     "The LinkedIn JavaScript SDK (in.js) the configuration page loads"},
    {"widget_url", AH_SET_URL, "https://platform.linkedin.com/rsc/extensions/onboarding-widget", 0,
     "The ATSIntegrationWidget extension script"},
    {"widget_width", AH_SET_INT, "600", 0, "data-width of the widget, in pixels"},
    {"client_id", AH_SET_STRING, NULL, 0,
     "The customer application's client id (stored by onboarding.provision)"},
    {"client_secret", AH_SET_STRING, NULL, AH_SETTING_SECRET,
     "The customer application's client secret (stored, sealed, by onboarding.provision)"},
    {"app_urn", AH_SET_STRING, NULL, 0,
     "urn:li:developerApplication of the customer application (stored by onboarding.provision)"},
    {"webhook_token", AH_SET_STRING, NULL, AH_SETTING_GENERATED,
     "Secret part of the configuration page's URL (generated)"},
    {NULL, 0, NULL, 0, NULL},
};

/* --- open/close ---------------------------------------------------------------- */

static bool list_has(const char *list, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; p != NULL && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if ((size_t)(e - p) == n && strncmp(p, item, n) == 0)
            return true;
        p = e;
    }
    return false;
}

static ah_result li_open(ah_call *call, void **conn_ctx)
{
    li_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
    const char *types = call->host->setting(call, "integration_types");
    /* APPLY_WITH_LINKEDIN is the one type the guide marks required. */
    snprintf(c->types, sizeof c->types, "%s", LI_TYPE_AWLI);
    for (const char *p = types; p != NULL && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        char t[64];
        snprintf(t, sizeof t, "%.*s", (int)(e - p < 63 ? e - p : 63), p);
        p = e;
        if (t[0] == '\0' || list_has(c->types, t))
            continue;
        if (!li_known_type(t)) {
            free(c);
            return call->host->fail(call, "configuration_error", 400,
                                    "integration_types: unknown type '%s' (APPLY_WITH_LINKEDIN, "
                                    "APPLY_CONNECT, RECRUITER_SYSTEM_CONNECT_COMPANY, "
                                    "RECRUITER_SYSTEM_CONNECT_CONTRACT)",
                                    t);
        }
        size_t used = strlen(c->types);
        snprintf(c->types + used, sizeof c->types - used, ",%s", t);
    }
    const char *w = call->host->setting(call, "widget_width");
    c->widget_width = w != NULL ? atoi(w) : 600;
    if (c->widget_width < 100 || c->widget_width > 4000)
        c->widget_width = 600;
    *conn_ctx = c;
    return AH_OK;
}

static void li_close(void *plugin_state, void *conn_ctx)
{
    free(conn_ctx);
}

/* --- stored widget requests ------------------------------------------------------ */

static char *request_id(const char *ctx, const char *type, const char *tenant_type)
{
    char *id = NULL;
    if (asprintf(&id, "%s|%s|%s", ctx, type, tenant_type) < 0)
        return NULL;
    return id;
}

static ah_result put_request(ah_call *call, const cJSON *fields)
{
    const ah_host_api *h = call->host;
    char *id = request_id(h->json_string(fields, "integrationContext", 256),
                          h->json_string(fields, "integrationType", 64),
                          h->json_string(fields, "tenantType", 64));
    if (id == NULL)
        return h->fail(call, AH_E_INTERNAL, 0, "out of memory");
    ah_record rec = {.struct_size = sizeof rec, .type = LI_REC_REQUEST, .remote_id = id,
                     .updated_at = h->json_string(fields, "updated_at", 32), .raw = fields,
                     .fields = fields};
    ah_result r = h->record_put(call, &rec, NULL, 0, NULL);
    free(id);
    return r;
}

/* The guide's format of integrationContext, urn:li:organization:{id} (its
 * sample id is "4gX03uw"): anything else is refused before it is stored,
 * for LinkedIn would refuse it, and a stored one rides along in every
 * enable and verify without "integrations". */
static bool context_ok(const char *ctx)
{
    static const char prefix[] = "urn:li:organization:";
    if (strncmp(ctx, prefix, sizeof prefix - 1) != 0 || ctx[sizeof prefix - 1] == '\0')
        return false;
    for (const char *p = ctx + sizeof prefix - 1; *p; p++)
        if (!isalnum((unsigned char)*p))
            return false;
    return true;
}

/* tenantType: the guide lists no values, only its sample's JOBS; an enum
 * name of LinkedIn's (JOBS, RECRUITER) is upper-case letters, digits, '_'. */
static bool tenant_type_ok(const char *tt)
{
    if (*tt == '\0')
        return false;
    for (; *tt; tt++)
        if (!isupper((unsigned char)*tt) && !isdigit((unsigned char)*tt) && *tt != '_')
            return false;
    return true;
}

/* Whether storing `integrations` keeps the connection within
 * LI_MAX_REQUESTS: those already stored (a repeated click) count once. */
static ah_result check_room(ah_call *call, const cJSON *integrations)
{
    const ah_host_api *h = call->host;
    cJSON *rows = h->record_find(call, LI_REC_REQUEST, "connection",
                                 call->connection != NULL ? call->connection : "", 0, 1000);
    if (rows == NULL)
        return h->fail(call, "store_unavailable", 500, "cannot read the stored requests");
    int count = cJSON_GetArraySize(rows);
    const cJSON *it;
    cJSON_ArrayForEach(it, integrations) {
        char *id = request_id(h->json_string(it, "integrationContext", 256),
                              h->json_string(it, "integrationType", 64),
                              h->json_string(it, "tenantType", 64));
        bool known = false;
        const cJSON *r;
        cJSON_ArrayForEach(r, rows) {
            const char *rid = h->json_string(r, "remote_id", 512);
            if (id != NULL && rid != NULL && strcmp(rid, id) == 0)
                known = true;
        }
        /* Also an earlier item of this same list. */
        for (const cJSON *p = integrations->child; !known && p != it; p = p->next) {
            char *pid = request_id(h->json_string(p, "integrationContext", 256),
                                   h->json_string(p, "integrationType", 64),
                                   h->json_string(p, "tenantType", 64));
            known = id != NULL && pid != NULL && strcmp(pid, id) == 0;
            free(pid);
        }
        free(id);
        if (!known)
            count++;
    }
    cJSON_Delete(rows);
    if (count > LI_MAX_REQUESTS)
        return h->fail(call, AH_E_CONFLICT, 409,
                       "atshub keeps at most %d integration requests per connection (what one "
                       "enable or verify sends to LinkedIn); these would make %d",
                       LI_MAX_REQUESTS, count);
    return AH_OK;
}

ah_result li_store_requests(ah_call *call, const cJSON *integrations, cJSON **stored)
{
    const ah_host_api *h = call->host;
    const li_conn *c = call->conn_ctx;
    if (stored != NULL)
        *stored = NULL;
    if (!cJSON_IsArray(integrations) || cJSON_GetArraySize(integrations) == 0)
        return h->fail(call, AH_E_INVALID, 400,
                       "integrations must be a non-empty list of {integrationContext, "
                       "integrationType, tenantType}");
    if (cJSON_GetArraySize(integrations) > 20)
        return h->fail(call, AH_E_INVALID, 400, "at most 20 integrations at once");
    /* Check them all before storing any: a bad one stores nothing. */
    const cJSON *it;
    cJSON_ArrayForEach(it, integrations) {
        const char *ctx = h->json_string(it, "integrationContext", 256);
        const char *type = h->json_string(it, "integrationType", 64);
        const char *tt = h->json_string(it, "tenantType", 64);
        if (ctx == NULL || *ctx == '\0' || type == NULL || tt == NULL || *tt == '\0')
            return li_fail_row(call, li_error_by_code(LI_API_ENABLE, "li_key_parts_incomplete"),
                               "each integration needs integrationContext, integrationType and "
                               "tenantType (strings)");
        if (!context_ok(ctx))
            return li_fail_row(call,
                               li_error_by_code(LI_API_VERIFY, "li_invalid_integration_context"),
                               "integrationContext must be urn:li:organization:{id} (letters and "
                               "digits)");
        if (!tenant_type_ok(tt))
            return li_fail_row(call, li_error_by_code(LI_API_VERIFY, "li_key_parts_incomplete"),
                               "tenantType must be LinkedIn's value, such as JOBS or RECRUITER "
                               "(upper-case letters, digits, '_')");
        if (!li_known_type(type) || (c != NULL && !list_has(c->types, type)))
            return h->fail(call, AH_E_INVALID, 400,
                           "integrationType '%s' is not offered to this tenant (integration_types: "
                           "%s)",
                           type, c != NULL ? c->types : LI_TYPE_AWLI);
    }
    if (check_room(call, integrations) != AH_OK)
        return AH_ERR;
    char now[AH_UTC_LEN];
    if (!ah_utc_now(now, sizeof now))
        return h->fail(call, AH_E_INTERNAL, 0, "the clock is outside 0001..9999");
    cJSON *list = cJSON_CreateArray();
    if (list == NULL)
        return h->fail(call, AH_E_INTERNAL, 0, "out of memory");
    cJSON_ArrayForEach(it, integrations) {
        const char *ctx = h->json_string(it, "integrationContext", 256);
        const char *type = h->json_string(it, "integrationType", 64);
        const char *tt = h->json_string(it, "tenantType", 64);
        char *id = request_id(ctx, type, tt);
        cJSON *old = id != NULL ? h->record_get(call, LI_REC_REQUEST, id) : NULL;
        free(id);
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(old, "fields");
        cJSON *f = cJSON_IsObject(of) ? cJSON_Duplicate(of, 1) : cJSON_CreateObject();
        cJSON_Delete(old);
        if (f == NULL) {
            cJSON_Delete(list);
            return h->fail(call, AH_E_INTERNAL, 0, "out of memory");
        }
        /* A repeated click keeps what verify learnt about the status. */
        cJSON_DeleteItemFromObjectCaseSensitive(f, "connection");
        cJSON_AddStringToObject(f, "connection", call->connection != NULL ? call->connection : "");
        cJSON_DeleteItemFromObjectCaseSensitive(f, "integrationContext");
        cJSON_AddStringToObject(f, "integrationContext", ctx);
        cJSON_DeleteItemFromObjectCaseSensitive(f, "integrationType");
        cJSON_AddStringToObject(f, "integrationType", type);
        cJSON_DeleteItemFromObjectCaseSensitive(f, "tenantType");
        cJSON_AddStringToObject(f, "tenantType", tt);
        if (!cJSON_HasObjectItem(f, "onboardingStatus"))
            cJSON_AddStringToObject(f, "onboardingStatus", "REQUESTED");
        cJSON_DeleteItemFromObjectCaseSensitive(f, "requested_at");
        cJSON_AddStringToObject(f, "requested_at", now);
        cJSON_DeleteItemFromObjectCaseSensitive(f, "updated_at");
        cJSON_AddStringToObject(f, "updated_at", now);
        if (put_request(call, f) != AH_OK) {
            cJSON_Delete(f);
            cJSON_Delete(list);
            return AH_ERR;
        }
        /* The reply shows what onboarding.request lists. */
        cJSON_DeleteItemFromObjectCaseSensitive(f, "connection");
        cJSON_DeleteItemFromObjectCaseSensitive(f, "updated_at");
        cJSON_AddItemToArray(list, f);
    }
    if (stored != NULL)
        *stored = list;
    else
        cJSON_Delete(list);
    return AH_OK;
}

cJSON *li_list_requests(ah_call *call)
{
    cJSON *rows = call->host->record_find(call, LI_REC_REQUEST, "connection",
                                          call->connection != NULL ? call->connection : "", 0, 1000);
    if (rows == NULL) {
        call->host->fail(call, "store_unavailable", 500, "cannot read the stored requests");
        return NULL;
    }
    cJSON *out = cJSON_CreateArray();
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "fields");
        if (!cJSON_IsObject(f))
            continue;
        cJSON *o = cJSON_Duplicate(f, 1);
        if (o != NULL) {
            cJSON_DeleteItemFromObjectCaseSensitive(o, "connection");
            cJSON_DeleteItemFromObjectCaseSensitive(o, "updated_at");
            cJSON_AddItemToArray(out, o);
        }
    }
    cJSON_Delete(rows);
    return out;
}

void li_note_status(ah_call *call, const char *context, const char *type, const char *tenant_type,
                    const char *status, const char *name)
{
    const ah_host_api *h = call->host;
    char *id = request_id(context, type, tenant_type);
    cJSON *old = id != NULL ? h->record_get(call, LI_REC_REQUEST, id) : NULL;
    free(id);
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(old, "fields");
    cJSON *f = cJSON_IsObject(of) ? cJSON_Duplicate(of, 1) : NULL;
    cJSON_Delete(old);
    if (f == NULL) {
        /* Verified without a stored request (an operator named it): keep it. */
        f = cJSON_CreateObject();
        if (f == NULL)
            return;
        cJSON_AddStringToObject(f, "connection", call->connection != NULL ? call->connection : "");
        cJSON_AddStringToObject(f, "integrationContext", context);
        cJSON_AddStringToObject(f, "integrationType", type);
        cJSON_AddStringToObject(f, "tenantType", tenant_type);
    }
    char now[AH_UTC_LEN];
    if (!ah_utc_now(now, sizeof now)) {
        h->log(call, AH_LOG_WARN, "the clock is outside 0001..9999: status of %s %s not stored",
               context, type);
        cJSON_Delete(f);
        return;
    }
    if (status != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(f, "onboardingStatus");
        cJSON_AddStringToObject(f, "onboardingStatus", status);
    }
    if (name != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(f, "integrationName");
        cJSON_AddStringToObject(f, "integrationName", name);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(f, "updated_at");
    cJSON_AddStringToObject(f, "updated_at", now);
    if (put_request(call, f) != AH_OK)
        h->log(call, AH_LOG_WARN, "could not store the status of %s %s", context, type);
    cJSON_Delete(f);
}

/* onboarding.request: with "integrations", stores what a widget returned
 * (for products that embed the widget themselves); without, lists the
 * stored requests. */
ah_result li_op_request(ah_call *call, const cJSON *body, cJSON **reply)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(body, "integrations");
    cJSON *out = cJSON_CreateObject();
    if (out == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
    cJSON *list = NULL;
    if (in != NULL) {
        if (li_store_requests(call, in, &list) != AH_OK) {
            cJSON_Delete(out);
            return AH_ERR;
        }
    } else if ((list = li_list_requests(call)) == NULL) {
        cJSON_Delete(out);
        return AH_ERR;
    }
    cJSON_AddItemToObject(out, "integrations", list);
    *reply = out;
    return AH_OK;
}

/* --- the descriptor ------------------------------------------------------------- */

static const ah_onboarding_ops li_onboarding = {
    .struct_size = sizeof(ah_onboarding_ops),
    .provision = li_op_provision,
    .request = li_op_request,
    .enable = li_op_enable,
    .verify = li_op_verify,
    .disable = li_op_disable,
};

/* --- the fields each operation takes (SDK @since 1.1) ----------------------------
 * The host checks a request against these before the operation runs. An
 * integration's three key parts are optional here on purpose: a missing one
 * is LinkedIn's own li_key_parts_incomplete, which the operations answer. */
static const ah_field_spec li_f_integration[] = {
    {.name = "integrationContext", .type = AH_FIELD_STRING, .max_size = 256,
     .help = "the customer's organization URN, as the widget returned it"},
    {.name = "integrationType", .type = AH_FIELD_STRING, .max_size = 64,
     .help = "APPLY_WITH_LINKEDIN, RECRUITER_SYSTEM_CONNECT_COMPANY, ..."},
    {.name = "tenantType", .type = AH_FIELD_STRING, .max_size = 64,
     .help = "JOBS, RECRUITER, ..."},
    {.name = NULL},
};

static const ah_field_spec li_f_request[] = {
    {.name = "integrations", .type = AH_FIELD_OBJECTS, .min_size = 1, .max_size = 20,
     .fields = li_f_integration,
     .help = "integration requests to store (as the widget returned them); absent: list the "
             "stored ones"},
    {.name = NULL},
};

static const ah_field_spec li_f_enable[] = {
    {.name = "integrationName", .type = AH_FIELD_STRING, .flags = AH_FIELD_REQUIRED,
     .min_size = 1, .max_size = 200, .help = "the customer-facing name of the integration"},
    {.name = "integrations", .type = AH_FIELD_OBJECTS, .min_size = 1, .max_size = 20,
     .fields = li_f_integration,
     .help = "which integrations (absent: every stored request still REQUESTED)"},
    {.name = NULL},
};

/* integrationName is read by enable only; verify and disable accept it so
 * that a product may send them the body it sent to enable. */
static const ah_field_spec li_f_verify[] = {
    {.name = "integrationName", .type = AH_FIELD_STRING, .max_size = 200,
     .help = "ignored (accepted so that enable's body verifies as is)"},
    {.name = "integrations", .type = AH_FIELD_OBJECTS, .min_size = 1, .max_size = 20,
     .fields = li_f_integration,
     .help = "which integrations (absent: every stored request)"},
    {.name = NULL},
};

static const ah_field_spec li_f_provision[] = {
    {.name = "name", .type = AH_FIELD_STRING, .max_size = 200,
     .help = "the app's name on LinkedIn (default: ats_name - customer_name)"},
    {.name = "uniqueForeignId", .type = AH_FIELD_STRING, .max_size = 200,
     .help = "default: the unique_foreign_id setting, else the tenant"},
    {.name = "description", .type = AH_FIELD_STRING, .max_size = 500, .help = NULL},
    {.name = "validJsSdkDomains", .type = AH_FIELD_STRINGS,
     .help = "origins allowed to show the widget (default: js_sdk_domains, else public_url)"},
    {.name = NULL},
};

static const ah_op_fields li_op_fields[] = {
    {"onboarding.disable", li_f_verify},
    {"onboarding.enable", li_f_enable},
    {"onboarding.provision", li_f_provision},
    {"onboarding.request", li_f_request},
    {"onboarding.verify", li_f_verify},
    {NULL, NULL},
};

/* How each write settles a lost answer without sending it again (SDK 1.1). */
static const ah_op_write li_op_writes[] = {
    {"onboarding.disable", AH_RECONCILE_LOCAL,
     "always refused after a live verify (a read): LinkedIn has no disable", NULL},
    {"onboarding.enable", AH_RECONCILE_READ_BACK,
     "the integrations' integrationName and status (batch GET /v2/atsIntegrations)",
     li_settle_enable},
    {"onboarding.provision", AH_RECONCILE_MARKER,
     "the customer application by its uniqueForeignId "
     "(GET /v2/provisionedApplications?q=credentialsByUniqueForeignId); its domains read back",
     li_settle_provision},
    {"onboarding.request", AH_RECONCILE_LOCAL, "atshub's store only", NULL},
    {NULL, AH_RECONCILE_UNDECLARED, NULL, NULL},
};

static const ah_route li_routes[] = {
    {"GET", LI_PAGE_PATH "{token}", li_route_page, AH_ROUTE_CONN_TOKEN, "linkedin_configure"},
    {"POST", LI_CALLBACK_PATH "{token}", li_route_callback, AH_ROUTE_CONN_TOKEN,
     "linkedin_integrate"},
    {NULL, NULL, NULL, 0, NULL},
};

static const ah_plugin_descriptor li_descriptor = {
    .struct_size = sizeof(ah_plugin_descriptor),
    .abi_major = AH_ABI_MAJOR,
    .abi_minor = AH_ABI_MINOR,
    .name = "linkedin",
    .version = LI_VERSION,
    .description = "LinkedIn ATS integrations: customer apps, configuration widget, enable, "
                   "verify",
    .settings = li_settings,
    .open = li_open,
    .close = li_close,
    .onboarding = &li_onboarding,
    .routes = li_routes,
    .op_fields = li_op_fields,
    .op_writes = li_op_writes,
    /* OAuth2 in the request (and the other 1.1 members it uses) need
     * ABI 1.1: an older host refuses the plugin at load time. */
    .needs_abi_minor = 1,
};

AH_PLUGIN_ENTRY
{
    (void)host;
    return &li_descriptor;
}
