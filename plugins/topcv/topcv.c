/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TopCV plugin: descriptor, settings and the connection's life cycle
 * (Not configured -> Configured by postings.configure, which checks the
 * pair against TopCV first; back by postings.disconnect). README.md has the
 * protocol.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topcv.h"

#define TC_CRED_MAX 512

static const ah_setting_spec settings[] = {
    {"base_url", AH_SET_URL, "https://api.topcv.vn", 0, "TopCV API address"},
    {"api_key", AH_SET_STRING, NULL, AH_SETTING_SECRET,
     "Employer API Key (TopCV's Access Token); saved by postings.configure after TopCV accepts it"},
    {"secret_key", AH_SET_STRING, NULL, AH_SETTING_SECRET,
     "Secret Key from TopCV's API Connection page; signs requests and webhooks"},
    {"webhook_token", AH_SET_STRING, NULL, AH_SETTING_GENERATED,
     "unguessable last segment of this connection's webhook URL (shown by postings.status)"},
    {"public_url", AH_SET_URL, NULL, 0,
     "atshub's address as TopCV reaches it (https://atshub.example.com); builds the webhook URL"},
    {"first_stage", AH_SET_STRING, "Applied", 0,
     "stage of new applications when the job record names no stages"},
    {NULL, 0, NULL, 0, NULL},
};

/* The webhook URL of this connection, or NULL without public_url. */
static char *webhook_url(const ah_call *call)
{
    const char *base = call->host->setting(call, "public_url");
    const char *tok = call->host->setting(call, "webhook_token");
    if (base == NULL || tok == NULL)
        return NULL;
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    size_t n = bl + strlen(TC_WEBHOOK_PATH) + strlen(tok) + 1;
    char *u = malloc(n);
    if (u != NULL)
        snprintf(u, n, "%.*s%s%s", (int)bl, base, TC_WEBHOOK_PATH, tok);
    return u;
}

static cJSON *status_json(const ah_call *call, bool configured)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "state", configured ? "configured" : "not_configured");
    cJSON_AddStringToObject(o, "label", configured ? "Configured" : "Not configured");
    const char *tok = call->host->setting(call, "webhook_token");
    char *url = webhook_url(call);
    if (url != NULL)
        cJSON_AddStringToObject(o, "webhook_url", url);
    else
        cJSON_AddNullToObject(o, "webhook_url");
    free(url);
    if (tok != NULL) {
        char path[512];
        snprintf(path, sizeof path, "%s%s", TC_WEBHOOK_PATH, tok);
        cJSON_AddStringToObject(o, "webhook_path", path);
    }
    cJSON_AddBoolToObject(o, "webhook_enabled", configured);
    return o;
}

static ah_result op_status(ah_call *call, const cJSON *body, cJSON **reply)
{
    (void)body;
    *reply = status_json(call, tc_configured(call));
    return *reply != NULL ? AH_OK : call->host->fail(call, AH_E_INTERNAL, 500, "out of memory");
}

static const char *credential(ah_call *call, const cJSON *body, const char *key, const char *label)
{
    const char *v = NULL;
    if (ah_arg_string(call, body, key, AH_ARG_REQUIRED | AH_ARG_NONEMPTY, TC_CRED_MAX, &v) !=
        AH_OK)
        return NULL;
    if (strpbrk(v, " \t\r\n") != NULL) {
        char what[96];
        snprintf(what, sizeof what, "the %s: one word of at most %d bytes", label, TC_CRED_MAX);
        ah_arg_fail(call, key, what);
        return NULL;
    }
    return v;
}

/* Save (or Update) in the seed's "Enter access code" form. */
static ah_result op_configure(ah_call *call, const cJSON *body, cJSON **reply)
{
    const ah_host_api *h = call->host;
    const char *key = credential(call, body, "api_key", "Employer API Key");
    if (key == NULL)
        return AH_ERR;
    const char *secret = credential(call, body, "secret_key", "Secret Key");
    if (secret == NULL)
        return AH_ERR;
    long status = 0;
    cJSON *ans = NULL;
    if (tc_api_with(call, key, secret, "GET", "/api/employer/me", NULL, 0, &status, &ans, NULL) !=
        AH_OK)
        return AH_ERR;
    if (status == 401 || status == 403) {
        const char *msg = tc_str(ans, "message");
        h->fail(call, "invalid_credentials", 400,
                "TopCV refused this Employer API Key and Secret Key%s%s: copy both from TopCV "
                "(Account Settings > API Connection); nothing was saved",
                msg ? ": " : "", msg ? msg : "");
        cJSON_Delete(ans);
        return AH_ERR;
    }
    if (status != 200) {
        tc_api_error(call, "checking the credentials", status, ans);
        cJSON_Delete(ans);
        return AH_ERR;
    }
    cJSON *changes = cJSON_CreateObject();
    cJSON_AddStringToObject(changes, "api_key", key);
    cJSON_AddStringToObject(changes, "secret_key", secret);
    ah_result r = h->settings_update(call, changes);
    cJSON_Delete(changes);
    if (r != AH_OK) {
        cJSON_Delete(ans);
        return AH_ERR;
    }
    cJSON *o = status_json(call, true);
    const cJSON *emp = cJSON_GetObjectItemCaseSensitive(ans, "employer");
    if (o != NULL && cJSON_IsObject(emp))
        cJSON_AddItemToObject(o, "employer", cJSON_Duplicate(emp, 1));
    cJSON_Delete(ans);
    h->log(call, AH_LOG_INFO, "TopCV credentials checked and saved");
    *reply = o;
    return AH_OK;
}

/* Forgets the credentials and replaces the webhook token, so that the old
 * webhook URL stops resolving; every stored record stays. */
static ah_result op_disconnect(ah_call *call, const cJSON *body, cJSON **reply)
{
    (void)body;
    cJSON *changes = cJSON_CreateObject();
    if (changes == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 500, "out of memory");
    cJSON_AddNullToObject(changes, "api_key");
    cJSON_AddNullToObject(changes, "secret_key");
    cJSON_AddNullToObject(changes, "webhook_token");
    ah_result r = call->host->settings_update(call, changes);
    cJSON_Delete(changes);
    if (r != AH_OK)
        return AH_ERR;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "state", "not_configured");
    cJSON_AddStringToObject(o, "label", "Not configured");
    cJSON_AddBoolToObject(o, "webhook_enabled", 0);
    call->host->log(call, AH_LOG_INFO, "TopCV disconnected: credentials forgotten, webhook URL retired");
    *reply = o;
    return AH_OK;
}

static const ah_postings_ops postings = {
    .struct_size = sizeof(ah_postings_ops),
    .publish = tc_op_publish,
    .update = tc_op_update,
    .link = tc_op_link,
    .list = tc_op_list,
    .configure = op_configure,
    .disconnect = op_disconnect,
    .status = op_status,
    .notices = tc_op_notices,
    .pending = tc_op_pending,
    .assign = tc_op_assign,
};

/* --- the fields each operation takes (SDK @since 1.1) ----------------------------
 * The host checks names and types before the operation runs; the override
 * names and values stay the posting form's to check (tc_overrides_check). */
#define TC_F_ID(n, flags_, h)                                                  \
    {.name = n, .type = AH_FIELD_STRING, .flags = flags_, .min_size = 1, .max_size = 128,  \
     .help = h}

static const ah_field_spec f_none[] = {{.name = NULL}};

static const ah_field_spec f_publish[] = {
    TC_F_ID("job_id", AH_FIELD_REQUIRED, "the atshub job to post"),
    {.name = "overrides", .type = AH_FIELD_OBJECT,
     .help = "posting form fields that replace what the job gives (title, salary, ...)"},
    {.name = "preview", .type = AH_FIELD_BOOLEAN,
     .help = "true: answer the form and what is missing, post nothing"},
    {.name = NULL},
};

static const ah_field_spec f_update[] = {
    {.name = "topcv_id", .type = AH_FIELD_ID, .flags = AH_FIELD_REQUIRED, .max_size = 128,
     .help = "the TopCV job id of the posting"},
    {.name = "overrides", .type = AH_FIELD_OBJECT,
     .help = "posting form fields to change (merged with the saved ones)"},
    {.name = NULL},
};

static const ah_field_spec f_link[] = {
    {.name = "topcv_id", .type = AH_FIELD_ID, .flags = AH_FIELD_REQUIRED, .max_size = 128,
     .help = "a job already on TopCV"},
    TC_F_ID("job_id", AH_FIELD_REQUIRED, "the atshub job it is"),
    {.name = NULL},
};

static const ah_field_spec f_list[] = {
    TC_F_ID("job_id", 0, "only this job's postings"),
    {.name = NULL},
};

static const ah_field_spec f_notices[] = {
    {.name = "kind", .type = AH_FIELD_STRING, .max_size = 64,
     .help = "only notices of this kind (posting.rejected, application.created, ...)"},
    {.name = NULL},
};

static const ah_field_spec f_configure[] = {
    {.name = "api_key", .type = AH_FIELD_STRING, .flags = AH_FIELD_REQUIRED, .min_size = 1,
     .max_size = TC_CRED_MAX, .help = "the Employer API Key (TopCV: Account Settings)"},
    {.name = "secret_key", .type = AH_FIELD_STRING, .flags = AH_FIELD_REQUIRED, .min_size = 1,
     .max_size = TC_CRED_MAX, .help = "the Secret Key"},
    {.name = NULL},
};

static const ah_field_spec f_assign[] = {
    TC_F_ID("pending_id", AH_FIELD_REQUIRED, "the Pending pool entry (postings.pending)"),
    TC_F_ID("job_id", AH_FIELD_REQUIRED, "the atshub job to assign the candidate to"),
    {.name = NULL},
};

static const ah_op_fields op_fields[] = {
    {"postings.assign", f_assign},
    {"postings.configure", f_configure},
    {"postings.disconnect", f_none},
    {"postings.link", f_link},
    {"postings.list", f_list},
    {"postings.notices", f_notices},
    {"postings.pending", f_none},
    {"postings.publish", f_publish},
    {"postings.status", f_none},
    {"postings.update", f_update},
    {NULL, NULL},
};

/* How each write settles a lost answer without posting again (SDK 1.1). */
static const ah_op_write op_writes[] = {
    {"postings.assign", AH_RECONCILE_LOCAL, "atshub's store only", NULL},
    {"postings.configure", AH_RECONCILE_LOCAL,
     "reads TopCV (the credentials' employer) and saves the settings", NULL},
    {"postings.disconnect", AH_RECONCILE_LOCAL, "forgets the settings", NULL},
    {"postings.link", AH_RECONCILE_LOCAL, "reads the TopCV job and stores the link", NULL},
    {"postings.publish", AH_RECONCILE_MARKER,
     "the TopCV job whose reference atshub sent (GET /api/jobs?reference=)",
     tc_settle_publish},
    {"postings.update", AH_RECONCILE_READ_BACK,
     "the job read back and compared with the form sent (GET /api/jobs/{id})",
     tc_settle_update},
    {NULL, AH_RECONCILE_UNDECLARED, NULL, NULL},
};

static const ah_route routes[] = {
    {"POST", TC_WEBHOOK_PATH "{token}", tc_route_webhook, AH_ROUTE_CONN_TOKEN, "topcv_webhook"},
    {NULL, NULL, NULL, 0, NULL},
};

static const ah_plugin_descriptor descriptor = {
    .struct_size = sizeof(ah_plugin_descriptor),
    .abi_major = AH_ABI_MAJOR,
    .abi_minor = AH_ABI_MINOR,
    .name = "topcv",
    .version = "1.0.0",
    .description = "TopCV job board: post jobs, receive approvals and CVs by webhook",
    .settings = settings,
    .postings = &postings,
    .routes = routes,
    .op_fields = op_fields,
    .op_writes = op_writes,
    /* HMAC, constant-time compare, settings_update, record_by_id and the
     * record store are 1.1: the loader refuses this plugin on an older
     * host instead of each call probing the table. */
    .needs_abi_minor = 1,
};

AH_PLUGIN_ENTRY
{
    (void)host;
    return &descriptor;
}
