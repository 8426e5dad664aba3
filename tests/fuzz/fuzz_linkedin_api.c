/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LinkedIn's answers as the plugin reads them (plugins/linkedin/li_api.c
 * and li_errors.c, compiled in on the fake host): the input's first byte
 * chooses one of these onboarding operations (fuzz_net.h), the rest is
 * LinkedIn's answers ("STATUS BODY" separated by 0x1e), taken in turn by
 * its requests. Not provisioned yet: 0 provision (a new customer
 * application), 1 the settle that finds it by its uniqueForeignId.
 * Provisioned: 2 provision again (domains), 3 request; and, after a
 * request for two integrations (no network), 4 enable them, 5 the settle
 * that reads them back, 6 enable the requested ones, 7 verify the
 * requested ones, 8 verify the two named, 9 disable. Each of the three
 * states is a fake host set up once; what an input wrote to it (records,
 * sequences, settings) is undone after it (fuzz_net_restore). Whatever
 * LinkedIn answers, an operation must succeed or fail with a code, never
 * both, never crash.
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

enum { OP_PROVISION, OP_SETTLE_PROVISION, OP_PROVISION_DOMAINS, OP_REQUEST, OP_ENABLE,
       OP_SETTLE_ENABLE, OP_ENABLE_REQUESTED, OP_VERIFY_REQUESTED, OP_VERIFY, OP_DISABLE,
       N_OPS };

#define ENABLE_ARG "{\"integrationName\":\"Acme jobs\"," LI_INTEGRATIONS "}"

static const ah_plugin_descriptor *desc;

/* A fake host and the LinkedIn connection in one state, set up once. */
typedef struct rig {
    ah_fake_host *fh;
    ah_fake_conn *conn;
    void *ctx;
    bool provisioned;
    unsigned settings_updates;
    fuzz_net_saved saved;
} rig;

static void conn_up(rig *r)
{
    ah_fake_conn *c = r->conn = ah_fake_conn_new(r->fh, "acme", "li");
    if (c == NULL || ah_fake_conn_set(c, "base_url", "http://127.0.0.1:9") ||
        ah_fake_conn_set(c, "token_url", "http://127.0.0.1:9/oauth/v2/accessToken") ||
        ah_fake_conn_set(c, "partner_client_id", "partner") ||
        ah_fake_conn_set(c, "partner_client_secret", "psecret") ||
        ah_fake_conn_set(c, "public_url", "https://ats.example.com") ||
        ah_fake_conn_set(c, "webhook_token", "tok") ||
        ah_fake_conn_set(c, "customer_name", "Acme") ||
        ah_fake_conn_set(c, "ats_name", "atshub") ||
        ah_fake_conn_set(c, "integration_types",
                         "APPLY_WITH_LINKEDIN,RECRUITER_SYSTEM_CONNECT_COMPANY"))
        abort();
    if (r->provisioned && (ah_fake_conn_set(c, "client_id", "cid-1") ||
                           ah_fake_conn_set(c, "client_secret", "csecret") ||
                           ah_fake_conn_set(c, "app_urn", "urn:li:developerApplication:1")))
        abort();
    ah_call_ext ox;
    ah_fake_call_init(r->fh, &ox, c);
    r->ctx = NULL;
    if (desc->open(&ox.call, &r->ctx) != AH_OK)
        abort();
    r->settings_updates = r->fh->settings_update_count;
}

static void rig_init(rig *r, bool provisioned, bool requested)
{
    r->fh = fuzz_net_host(NULL);
    r->provisioned = provisioned;
    conn_up(r);
    if (requested) {
        /* the integrations the tenant asked for (stored, no request) */
        fuzz_net pre = fuzz_net_fixed("");
        if (fuzz_net_op(r->fh, r->conn, r->ctx, &pre, "onboarding.request",
                        desc->onboarding->request, "{" LI_INTEGRATIONS "}") != AH_OK)
            abort();
    }
    fuzz_net_save(r->fh, &r->saved);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rig rigs[3];
    if (desc == NULL) {
        desc = atshub_plugin_entry_v1(ah_fake_host_api());
        rig_init(&rigs[0], false, false);
        rig_init(&rigs[1], true, false);
        rig_init(&rigs[2], true, true);
    }
    fuzz_net net;
    unsigned op = fuzz_net_begin(&net, data, size, N_OPS);
    rig *r = &rigs[op >= OP_ENABLE ? 2 : op >= OP_PROVISION_DOMAINS ? 1 : 0];
    ah_fake_host *fh = r->fh;
    ah_fake_conn *conn = r->conn;
    void *ctx = r->ctx;
    const ah_onboarding_ops *ob = desc->onboarding;

    switch (op) {
    case OP_PROVISION:
        fuzz_net_op(fh, conn, ctx, &net, "onboarding.provision", ob->provision, "{}");
        break;
    case OP_SETTLE_PROVISION:
        fuzz_net_op(fh, conn, ctx, &net, "onboarding.provision", li_settle_provision, "{}");
        break;
    case OP_PROVISION_DOMAINS:
        fuzz_net_op(fh, conn, ctx, &net, "onboarding.provision", ob->provision,
                    "{\"validJsSdkDomains\":[\"https://ats.example.com\"]}");
        break;
    case OP_REQUEST:
        fuzz_net_op(fh, conn, ctx, &net, "onboarding.request", ob->request,
                    "{" LI_INTEGRATIONS "}");
        break;
    case OP_ENABLE:
        fuzz_net_op(fh, conn, ctx, &net, "onboarding.enable", ob->enable, ENABLE_ARG);
        break;
    case OP_SETTLE_ENABLE:
        fuzz_net_op(fh, conn, ctx, &net, "onboarding.enable", li_settle_enable, ENABLE_ARG);
        break;
    case OP_ENABLE_REQUESTED:
        fuzz_net_op(fh, conn, ctx, &net, "onboarding.enable", ob->enable,
                    "{\"integrationName\":\"Acme jobs\"}");
        break;
    case OP_VERIFY_REQUESTED:
        fuzz_net_op(fh, conn, ctx, &net, "onboarding.verify", ob->verify, "{}");
        break;
    case OP_VERIFY:
        fuzz_net_op(fh, conn, ctx, &net, "onboarding.verify", ob->verify,
                    "{" LI_INTEGRATIONS "}");
        break;
    default:
        fuzz_net_op(fh, conn, ctx, &net, "onboarding.disable", ob->disable,
                    "{" LI_INTEGRATIONS "}");
        break;
    }

    /* undo what the input wrote, for the next one */
    fuzz_net_restore(fh, &r->saved);
    if (fh->settings_update_count != r->settings_updates) {
        desc->close(NULL, r->ctx);
        ah_fake_conn_free(r->conn);
        conn_up(r);
    }
    return 0;
}
