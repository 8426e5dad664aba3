/* SPDX-License-Identifier: Apache-2.0 */
/* A whole plugin: jobs.get is GET /v3/jobs/{job_id}, the host does OAuth2. */
#include <atshub/plugin.h>
#include <atshub/util.h>

static ah_result job_get(ah_call *call, const cJSON *body, cJSON **reply)
{
    const ah_host_api *h = call->host;
    const char *id = NULL;
    if (ah_arg_string(call, body, "job_id", AH_ARG_REQUIRED | AH_ARG_NONEMPTY, 64, &id) != AH_OK)
        return AH_ERR;
    ah_buf url = {0};
    ah_buf_puts(&url, "/v3/jobs/");
    ah_buf_url(&url, h, id);
    ah_oauth2_params p = {.struct_size = sizeof p, .token_url = "/oauth/token",
                          .client_id = h->setting(call, "client_id"),
                          .client_secret = h->setting(call, "client_secret")};
    ah_http_request req = {.struct_size = sizeof req, .method = "GET", .url = url.s, .oauth2 = &p};
    ah_http_response resp = {0};
    ah_result rc = ah_buf_check(call, &url) == AH_OK ? h->http(call, &req, &resp) : AH_ERR;
    if (rc == AH_OK && resp.status != 200)
        rc = h->fail(call, AH_E_UPSTREAM, 502, "MyATS answered HTTP %ld", resp.status);
    if (rc == AH_OK && (*reply = h->json_parse(resp.body, resp.body_len)) == NULL)
        rc = h->fail(call, AH_E_UPSTREAM, 502, "MyATS sent no JSON");
    h->http_response_free(&resp);
    ah_buf_free(&url);
    return rc;
}

static const ah_setting_spec settings[] = {
    {"base_url", AH_SET_URL, NULL, AH_SETTING_REQUIRED, "MyATS address"},
    {"client_id", AH_SET_STRING, NULL, AH_SETTING_REQUIRED, "OAuth2 client id"},
    {"client_secret", AH_SET_STRING, NULL, AH_SETTING_REQUIRED | AH_SETTING_SECRET, "secret"},
    {NULL, 0, NULL, 0, NULL}};
static const ah_jobs_ops jobs = {.struct_size = sizeof jobs, .get = job_get};
static const ah_plugin_descriptor desc = {
    .struct_size = sizeof desc, .abi_major = AH_ABI_MAJOR, .abi_minor = AH_ABI_MINOR,
    .name = "myats", .version = "0.1.0", .settings = settings, .jobs = &jobs, .needs_abi_minor = 1};
AH_PLUGIN_ENTRY { (void)host; return &desc; }
