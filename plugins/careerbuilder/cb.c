/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CareerBuilder plugin: candidate and application statuses of a tenant,
 * put, read back and queried through the Candidate Status API, and pushed
 * automatically when the tenant's other connections report a change
 * (README.md: wire choices, settings, mapping, events).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cb.h"

#ifndef CB_VERSION
#define CB_VERSION "1.0.0"
#endif

static const ah_setting_spec cb_settings[] = {
    {"base_url", AH_SET_URL, NULL, AH_SETTING_REQUIRED,
     "CareerBuilder API address, e.g. https://api.careerbuilder.com"},
    {"token_url", AH_SET_STRING, "/oauth/token", 0,
     "OAuth2 token endpoint (client credentials): absolute, or a path under base_url"},
    {"client_id", AH_SET_STRING, NULL, AH_SETTING_REQUIRED, "OAuth2 client id"},
    {"client_secret", AH_SET_STRING, NULL, AH_SETTING_REQUIRED | AH_SETTING_SECRET,
     "OAuth2 client secret"},
    {"account", AH_SET_STRING, NULL, AH_SETTING_REQUIRED,
     "The tenant's CareerBuilder account DID (at most 20 characters)"},
    {"vendor_key", AH_SET_STRING, "atshub", 0,
     "vendor_key sent with every status (at most 20 characters)"},
    {"client", AH_SET_STRING, "atshub", 0, "client sent with every status (at most 20 characters)"},
    {"status_map", AH_SET_STRING, "{}", 0,
     "JSON object: source status key (stage:NAME, status:NAME, application.created, "
     "candidate.created, ...) -> CareerBuilder status"},
    {"push", AH_SET_BOOL, "true", 0,
     "Push status changes of the tenant's other connections to CareerBuilder"},
    {"candidate_wait_s", AH_SET_INT, "900", 0,
     "How long an application event waits for its candidate record (seconds) before it is "
     "dropped"},
    {NULL, 0, NULL, 0, NULL},
};

static bool truthy(const char *v)
{
    return v != NULL && (strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
                         strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0);
}

/* Copies a short identifying setting into dst, refusing what does not fit
 * the seed's String(max). */
static ah_result short_setting(ah_call *call, const char *key, const char *def, char *dst,
                               size_t max_chars)
{
    const char *v = call->host->setting(call, key);
    if (v == NULL || *v == '\0')
        v = def;
    if (v == NULL || *v == '\0')
        return call->host->fail(call, "configuration_error", 400, "%s is required", key);
    if (ah_utf8_len(v) > max_chars || strlen(v) > 4 * max_chars)
        return call->host->fail(call, "configuration_error", 400,
                                "%s is longer than %zu characters", key, max_chars);
    snprintf(dst, 4 * max_chars + 1, "%s", v);
    return AH_OK;
}

static void cb_close(void *plugin_state, void *conn_ctx)
{
    cb_conn *c = conn_ctx;
    if (c == NULL)
        return;
    cJSON_Delete(c->status_map);
    free(c);
}

static ah_result cb_open(ah_call *call, void **conn_ctx)
{
    cb_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
    /* account etc. are copied with room for 4 bytes per character. */
    char account[4 * CB_MAX_ACCOUNT + 1], vendor[4 * CB_MAX_VENDOR_KEY + 1],
        client[4 * CB_MAX_CLIENT + 1];
    if (short_setting(call, "account", NULL, account, CB_MAX_ACCOUNT) != AH_OK ||
        short_setting(call, "vendor_key", "atshub", vendor, CB_MAX_VENDOR_KEY) != AH_OK ||
        short_setting(call, "client", "atshub", client, CB_MAX_CLIENT) != AH_OK) {
        cb_close(NULL, c);
        return AH_ERR;
    }
    if (strlen(account) >= sizeof c->account || strlen(vendor) >= sizeof c->vendor_key ||
        strlen(client) >= sizeof c->client) {
        cb_close(NULL, c);
        return call->host->fail(call, "configuration_error", 400,
                                "account, vendor_key and client must be plain ASCII of at most "
                                "20 characters");
    }
    snprintf(c->account, sizeof c->account, "%s", account);
    snprintf(c->vendor_key, sizeof c->vendor_key, "%s", vendor);
    snprintf(c->client, sizeof c->client, "%s", client);
    char err[256];
    c->status_map = cb_parse_status_map(call->host->setting(call, "status_map"), err, sizeof err);
    if (c->status_map == NULL) {
        cb_close(NULL, c);
        return call->host->fail(call, "configuration_error", 400, "%s", err);
    }
    const char *push = call->host->setting(call, "push");
    c->push = push == NULL || truthy(push);
    const char *wait = call->host->setting(call, "candidate_wait_s");
    char *end = NULL;
    c->candidate_wait_s = wait != NULL ? strtol(wait, &end, 10) : 900;
    if (wait != NULL && (*wait == '\0' || *end != '\0' || c->candidate_wait_s < 0)) {
        cb_close(NULL, c);
        return call->host->fail(call, "configuration_error", 400,
                                "candidate_wait_s must be a number of seconds");
    }
    *conn_ctx = c;
    return AH_OK;
}

static const ah_statuses_ops cb_statuses = {
    .struct_size = sizeof(ah_statuses_ops),
    .put = cb_op_put,
    .get = cb_op_get,
    .query = cb_op_query,
};

/* --- the fields each operation takes (SDK @since 1.1) --------------------------
 * The host checks names, types and lengths before the operation runs; the
 * seed's rules between fields (status_level, dates) stay in cb_validate.c.
 * Lengths are CareerBuilder's, in characters. */
#define CB_F_STR(n, flags_, max, h)                                            \
    {.name = n, .type = AH_FIELD_STRING, .flags = flags_, .max_size = max, .help = h}
/* An empty list is left to cb_validate_query, which names the rule. */
#define CB_F_LIST(n, max, h)                                                   \
    {.name = n, .type = AH_FIELD_STRINGS, .max_size = CB_MAX_QUERY_ITEMS, .max_item = max,  \
     .help = h}

static const ah_field_spec cb_f_put[] = {
    CB_F_STR("account", 0, CB_MAX_ACCOUNT, "default: the connection's account"),
    CB_F_STR("candidate_email", AH_FIELD_REQUIRED, CB_MAX_EMAIL, NULL),
    CB_F_STR("vendor_key", 0, CB_MAX_VENDOR_KEY, "default: the vendor_key setting"),
    CB_F_STR("client", 0, CB_MAX_CLIENT, "default: the client setting"),
    CB_F_STR("requisition_id", 0, CB_MAX_REQUISITION_ID, "application level only"),
    CB_F_STR("requisition_title", 0, CB_MAX_REQUISITION_TITLE, "application level only"),
    CB_F_STR("level_id", 0, CB_MAX_LEVEL_ID, NULL),
    CB_F_STR("status", AH_FIELD_REQUIRED, CB_MAX_STATUS, NULL),
    CB_F_STR("status_date", AH_FIELD_REQUIRED, 0, "UTC, YYYY-MM-DDTHH:MM:SSZ"),
    CB_F_STR("status_level", AH_FIELD_REQUIRED, CB_MAX_STATUS_LEVEL, "application or candidate"),
    CB_F_STR("status_detail", 0, CB_MAX_STATUS_DETAIL, NULL),
    {.name = NULL},
};

static const ah_field_spec cb_f_get[] = {
    {.name = "candidate_email", .type = AH_FIELD_STRING, .flags = AH_FIELD_REQUIRED,
     .min_size = 1, .max_size = CB_MAX_EMAIL, .help = NULL},
    CB_F_STR("account", 0, CB_MAX_ACCOUNT, "must be the connection's account"),
    {.name = "results_per_page", .type = AH_FIELD_ID,
     .help = "1 to 100 (default 10), a number or its text"},
    CB_F_STR("status_date", 0, 0, "UTC, YYYY-MM-DDTHH:MM:SSZ: statuses since"),
    {.name = NULL},
};

static const ah_field_spec cb_f_query[] = {
    CB_F_STR("account", 0, CB_MAX_ACCOUNT, "must be the connection's account"),
    CB_F_LIST("candidate_email", CB_MAX_EMAIL, "emails (or requisition_id, not both)"),
    CB_F_LIST("emails", CB_MAX_EMAIL, "another name for candidate_email"),
    CB_F_LIST("requisition_id", CB_MAX_REQUISITION_ID, "requisition ids"),
    CB_F_LIST("requisition_ids", CB_MAX_REQUISITION_ID, "another name for requisition_id"),
    CB_F_STR("status_date", 0, 0, "UTC, YYYY-MM-DDTHH:MM:SSZ: statuses since"),
    {.name = NULL},
};

static const ah_op_fields cb_op_fields[] = {
    {"statuses.get", cb_f_get},
    {"statuses.put", cb_f_put},
    {"statuses.query", cb_f_query},
    {NULL, NULL},
};

/* A status PUT is an upsert by its unique key, but CareerBuilder records
 * each one it accepts: it is flagged not idempotent and a lost answer is
 * settled by reading the candidate's statuses back (SDK 1.1). */
#define CB_READ_BACK "the stored status with the same key, status and date (GET " \
                     "/corporate/CandidateStatus/{account}/{email})"
static const ah_op_write cb_op_writes[] = {
    {"statuses.put", AH_RECONCILE_READ_BACK, CB_READ_BACK, cb_settle_put},
    {"event.application.created", AH_RECONCILE_READ_BACK, CB_READ_BACK, NULL},
    {"event.application.updated", AH_RECONCILE_READ_BACK, CB_READ_BACK, NULL},
    {"event.application.stage_changed", AH_RECONCILE_READ_BACK, CB_READ_BACK, NULL},
    {"event.candidate.created", AH_RECONCILE_READ_BACK, CB_READ_BACK, NULL},
    {"event.candidate.updated", AH_RECONCILE_READ_BACK, CB_READ_BACK, NULL},
    {NULL, AH_RECONCILE_UNDECLARED, NULL, NULL},
};

static const ah_plugin_descriptor cb_descriptor = {
    .struct_size = sizeof(ah_plugin_descriptor),
    .abi_major = AH_ABI_MAJOR,
    .abi_minor = AH_ABI_MINOR,
    .name = "careerbuilder",
    .version = CB_VERSION,
    .description = "CareerBuilder Candidate Status API: statuses put, read back, queried and "
                   "pushed as they change",
    .settings = cb_settings,
    .open = cb_open,
    .close = cb_close,
    .statuses = &cb_statuses,
    .subscriptions = cb_subscriptions,
    .op_fields = cb_op_fields,
    .op_writes = cb_op_writes,
    /* OAuth2 in the request (and the other 1.1 members it uses) need
     * ABI 1.1: an older host refuses the plugin at load time. */
    .needs_abi_minor = 1,
};

AH_PLUGIN_ENTRY
{
    (void)host;
    return &cb_descriptor;
}
