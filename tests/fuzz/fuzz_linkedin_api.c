/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LinkedIn's answers as the plugin reads them (plugins/linkedin/li_api.c
 * and li_errors.c, compiled in on the fake host): the input is the
 * provider's answers (fuzz_net.h: "STATUS BODY" separated by 0x1e), taken
 * in turn by the requests of these onboarding operations: provision (a new customer
 * application, and the settle that finds it by its uniqueForeignId), then,
 * provisioned, provision again (domains), enable and its settle, verify and
 * disable. Whatever LinkedIn answers, an operation must succeed or fail
 * with a code, never both, never crash.
 */
#include <stdio.h>

#include "fake_host.h"
#include "fuzz.h"
#include "fuzz_net.h"
#include "li.h"

const ah_plugin_descriptor *atshub_plugin_entry_v1(const ah_host_api *host);

#define LI_INTEGRATIONS                                                                  \
    "\"integrations\":[{\"integrationContext\":\"urn:li:organization:1\","                \
    "\"integrationType\":\"APPLY_WITH_LINKEDIN\",\"tenantType\":\"JOBS\"},"                \
    "{\"integrationContext\":\"urn:li:organization:1\","                                  \
    "\"integrationType\":\"RECRUITER_SYSTEM_CONNECT_COMPANY\",\"tenantType\":\"RECRUITER\"}]"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ah_plugin_descriptor *desc;
    if (desc == NULL)
        desc = atshub_plugin_entry_v1(ah_fake_host_api());
    fuzz_net net = {.data = data, .size = size};
    ah_fake_host *fh = fuzz_net_host(&net);
    ah_fake_conn *conn = ah_fake_conn_new(fh, "acme", "li");
    if (conn == NULL || ah_fake_conn_set(conn, "base_url", "http://127.0.0.1:9") ||
        ah_fake_conn_set(conn, "token_url", "http://127.0.0.1:9/oauth/v2/accessToken") ||
        ah_fake_conn_set(conn, "partner_client_id", "partner") ||
        ah_fake_conn_set(conn, "partner_client_secret", "psecret") ||
        ah_fake_conn_set(conn, "public_url", "https://ats.example.com") ||
        ah_fake_conn_set(conn, "webhook_token", "tok") ||
        ah_fake_conn_set(conn, "customer_name", "Acme") ||
        ah_fake_conn_set(conn, "ats_name", "atshub") ||
        ah_fake_conn_set(conn, "integration_types",
                         "APPLY_WITH_LINKEDIN,RECRUITER_SYSTEM_CONNECT_COMPANY"))
        abort();
    ah_call_ext ox;
    ah_fake_call_init(fh, &ox, conn);
    void *ctx = NULL;
    if (desc->open(&ox.call, &ctx) != AH_OK)
        abort();
    const ah_onboarding_ops *ob = desc->onboarding;

    /* not provisioned yet */
    fuzz_net_op(fh, conn, ctx, &net, "onboarding.provision", ob->provision, "{}");
    fuzz_net_op(fh, conn, ctx, &net, "onboarding.provision", li_settle_provision, "{}");

    /* provisioned */
    if (ah_fake_conn_set(conn, "client_id", "cid-1") ||
        ah_fake_conn_set(conn, "client_secret", "csecret") ||
        ah_fake_conn_set(conn, "app_urn", "urn:li:developerApplication:1"))
        abort();
    fuzz_net_op(fh, conn, ctx, &net, "onboarding.provision", ob->provision,
                "{\"validJsSdkDomains\":[\"https://ats.example.com\"]}");
    fuzz_net_op(fh, conn, ctx, &net, "onboarding.request", ob->request, "{" LI_INTEGRATIONS "}");
    fuzz_net_op(fh, conn, ctx, &net, "onboarding.enable", ob->enable,
                "{\"integrationName\":\"Acme jobs\"," LI_INTEGRATIONS "}");
    fuzz_net_op(fh, conn, ctx, &net, "onboarding.enable", li_settle_enable,
                "{\"integrationName\":\"Acme jobs\"," LI_INTEGRATIONS "}");
    fuzz_net_op(fh, conn, ctx, &net, "onboarding.enable", ob->enable,
                "{\"integrationName\":\"Acme jobs\"}");
    fuzz_net_op(fh, conn, ctx, &net, "onboarding.verify", ob->verify, "{}");
    fuzz_net_op(fh, conn, ctx, &net, "onboarding.verify", ob->verify, "{" LI_INTEGRATIONS "}");
    fuzz_net_op(fh, conn, ctx, &net, "onboarding.disable", ob->disable, "{" LI_INTEGRATIONS "}");

    desc->close(NULL, ctx);
    ah_fake_conn_free(conn);
    ah_fake_host_free(fh);
    return 0;
}
