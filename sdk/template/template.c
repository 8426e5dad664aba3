/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The template plugin: the smallest complete atshub plugin. Copy this
 * folder to start a provider plugin. It declares its settings as data, keeps
 * per-connection state made by open(), serves two capability operations and
 * one event subscription, and uses nothing but the SDK: <atshub/plugin.h>
 * (the contract) and <atshub/util.h> (header-only helpers: request readers,
 * buffers and escaping, the UTC clock).
 */
#include <stdlib.h>
#include <string.h>

#include <atshub/plugin.h>
#include <atshub/util.h>

#ifndef TEMPLATE_VERSION
#define TEMPLATE_VERSION "1.0.0"
#endif

/* Per-connection context: everything a connection needs between calls. */
typedef struct tpl_conn {
    char greeting[64];
    unsigned long calls; /* calls served on this connection, this generation */
} tpl_conn;

static const ah_setting_spec tpl_settings[] = {
    {"greeting", AH_SET_STRING, "hello", 0, "Word the template puts in its replies"},
    {"api_key", AH_SET_STRING, NULL, AH_SETTING_SECRET, "Example of a secret setting"},
    {NULL, 0, NULL, 0, NULL},
};

static ah_result tpl_open(ah_call *call, void **conn_ctx)
{
    const char *greeting = call->host->setting(call, "greeting");
    tpl_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
    if (greeting != NULL && strlen(greeting) >= sizeof(c->greeting))
        return free(c), call->host->fail(call, AH_E_INVALID, 0,
                                         "greeting is longer than %zu bytes",
                                         sizeof(c->greeting) - 1);
    strcpy(c->greeting, greeting != NULL ? greeting : "hello");
    *conn_ctx = c;
    return AH_OK;
}

static void tpl_close(void *plugin_state, void *conn_ctx)
{
    free(conn_ctx);
}

/* jobs.get: {"job_id": "..."} -> {"job_id", "greeting", "version", "calls",
 * "url", "served_at"}: where a provider would be asked, and when. */
static ah_result tpl_job_get(ah_call *call, const cJSON *body, cJSON **reply)
{
    tpl_conn *c = call->conn_ctx;
    const char *id = NULL;
    char now[AH_UTC_LEN];
    /* A refusal reads "field 'job_id' must be a non-empty string of ...". */
    if (ah_arg_string(call, body, "job_id", AH_ARG_REQUIRED | AH_ARG_NONEMPTY, 256, &id) !=
        AH_OK)
        return AH_ERR;
    if (!ah_utc_now(now, sizeof now))
        return call->host->fail(call, AH_E_INTERNAL, 0, "the clock is out of range");
    ah_buf url = {0};
    ah_buf_puts(&url, "/jobs/");
    ah_buf_url(&url, call->host, id); /* "a/b" -> "a%2Fb" */
    cJSON *r = ah_buf_ok(&url) ? cJSON_CreateObject() : NULL;
    if (r == NULL) {
        ah_buf_free(&url);
        return call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
    }
    c->calls++;
    cJSON_AddStringToObject(r, "job_id", id);
    cJSON_AddStringToObject(r, "greeting", c->greeting);
    cJSON_AddStringToObject(r, "version", TEMPLATE_VERSION);
    cJSON_AddNumberToObject(r, "calls", (double)c->calls);
    cJSON_AddStringToObject(r, "url", url.s);
    cJSON_AddStringToObject(r, "served_at", now);
    ah_buf_free(&url);
    *reply = r;
    return AH_OK;
}

/* dispositions.list: a fixed list, as a provider without an API would. */
static ah_result tpl_dispositions(ah_call *call, const cJSON *body, cJSON **reply)
{
    static const char *const reasons[] = {"Not qualified", "Withdrew", "Hired elsewhere"};
    cJSON *list = cJSON_CreateArray();
    if (list == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)(i + 1));
        cJSON_AddStringToObject(o, "name", reasons[i]);
        cJSON_AddItemToArray(list, o);
    }
    *reply = list;
    return AH_OK;
}

/* Echoes every job event back as a template event, so tests can see that
 * plugins receive events. */
static ah_result tpl_on_job_event(ah_call *call, const char *topic, const cJSON *body)
{
    cJSON *e = cJSON_CreateObject();
    if (e == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
    cJSON_AddStringToObject(e, "seen", topic);
    return call->host->publish(call, "event.template.seen", e);
}

static const ah_jobs_ops tpl_jobs = {
    .struct_size = sizeof(ah_jobs_ops),
    .get = tpl_job_get,
};

static const ah_dispositions_ops tpl_dispositions_ops = {
    .struct_size = sizeof(ah_dispositions_ops),
    .list = tpl_dispositions,
};

/* The fields each operation takes (SDK @since 1.1): the host refuses a
 * request with an unknown, missing or mistyped field, naming it, before the
 * operation runs. Declare every field an operation reads. */
static const ah_field_spec tpl_f_job_get[] = {
    {.name = "job_id", .type = AH_FIELD_STRING, .flags = AH_FIELD_REQUIRED, .max_size = 256,
     .help = "the job to read"},
    {.name = NULL},
};

static const ah_field_spec tpl_f_none[] = {{.name = NULL}};

static const ah_op_fields tpl_op_fields[] = {
    {"dispositions.list", tpl_f_none},
    {"jobs.get", tpl_f_job_get},
    {NULL, NULL},
};

static const ah_subscription tpl_subscriptions[] = {
    {"event.job.*", tpl_on_job_event},
    {NULL, NULL},
};

static const ah_plugin_descriptor tpl_descriptor = {
    .struct_size = sizeof(ah_plugin_descriptor),
    .abi_major = AH_ABI_MAJOR,
    .abi_minor = AH_ABI_MINOR,
    .name = "template",
    .version = TEMPLATE_VERSION,
    .description = "Template plugin: copy it to start a provider",
    .settings = tpl_settings,
    .open = tpl_open,
    .close = tpl_close,
    .jobs = &tpl_jobs,
    .dispositions = &tpl_dispositions_ops,
    .subscriptions = tpl_subscriptions,
    .op_fields = tpl_op_fields,
};

AH_PLUGIN_ENTRY
{
    (void)host;
    return &tpl_descriptor;
}
