/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TopCV's answers as the plugin reads them (plugins/topcv/, compiled in on
 * the fake host): the input's first byte chooses one of the postings
 * operations (fuzz_net.h), the rest is TopCV's answers ("STATUS BODY"
 * separated by 0x1e), taken in turn by its requests: 0 configure (the
 * employer read with the credentials), 1 link (the TopCV job read),
 * 2 publish (another job), 3 the settle that looks a publish up by its
 * reference, 4 update and 5 its read-back settle, 6 list, 7 status. Before
 * 4 to 7 the harness links TopCV job 42 on an answer of its own, as a
 * tenant would have. Whatever TopCV answers, an operation must succeed or
 * fail with a code, never both, never crash.
 */
#include <stdio.h>

#include "fake_host.h"
#include "fuzz.h"
#include "fuzz_net.h"
#include "topcv.h"

const ah_plugin_descriptor *atshub_plugin_entry_v1(const ah_host_api *host);

static const char job_fields[] =
    "{\"title\":\"Backend Engineer\",\"status\":\"open\",\"description\":\"Build APIs\","
    "\"requirements\":\"C, SQL\",\"salary\":\"20-30M VND\",\"location\":{\"city\":\"Ha Noi\"},"
    "\"job_type\":\"FULL_TIME\",\"deadline\":\"2026-12-31\",\"quantity\":2}";

enum { OP_CONFIGURE, OP_LINK, OP_PUBLISH, OP_SETTLE_PUBLISH, OP_UPDATE, OP_SETTLE_UPDATE,
       OP_LIST, OP_STATUS, N_OPS };

/* TopCV's job 42 as its simulator (tests/sim/topcv.c) gives it. */
static const char job42[] =
    "200 {\"job\":{\"id\":\"42\",\"state\":\"approved\",\"created_at\":\"2026-01-01T00:00:00Z\","
    "\"updated_at\":\"2026-01-01T00:00:00Z\",\"reference\":\"x\",\"title\":\"Backend Engineer\","
    "\"description\":\"Build APIs\",\"requirements\":\"C, SQL\",\"salary\":\"15M\","
    "\"location\":\"Ha Noi\",\"job_type\":\"full_time\",\"deadline\":\"2026-12-31\","
    "\"quantity\":2}}";

#define UPDATE_ARG "{\"topcv_id\":\"42\",\"overrides\":{\"title\":\"Senior Backend Engineer\"}}"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ah_plugin_descriptor *desc;
    const ah_host_api *h = ah_fake_host_api();
    if (desc == NULL)
        desc = atshub_plugin_entry_v1(h);
    fuzz_net net;
    unsigned op = fuzz_net_begin(&net, data, size, N_OPS);
    ah_fake_host *fh = fuzz_net_host(&net);
    ah_fake_conn *conn = ah_fake_conn_new(fh, "acme", "tcv");
    ah_fake_conn *ats = ah_fake_conn_new(fh, "acme", "ats");
    if (conn == NULL || ats == NULL || ah_fake_conn_set(conn, "base_url", "http://127.0.0.1:9") ||
        ah_fake_conn_set(conn, "api_key", "key") || ah_fake_conn_set(conn, "secret_key", "sec") ||
        ah_fake_conn_set(conn, "webhook_token", "tok") ||
        ah_fake_conn_set(conn, "public_url", "https://ats.example.com") ||
        ah_fake_conn_set(conn, "first_stage", "Applied"))
        abort();

    /* atshub jobs to post */
    ah_call_ext sx;
    ah_fake_call_init(fh, &sx, ats);
    sx.call.topic = "test";
    cJSON *fields = cJSON_Parse(job_fields);
    ah_record rec = {.struct_size = sizeof rec, .type = "job", .remote_id = "J-1",
                     .updated_at = "2026-01-01T00:00:00Z", .fields = fields};
    char jid[64], jid2[64];
    if (fields == NULL || h->record_put(&sx.call, &rec, jid, sizeof jid, NULL) != AH_OK)
        abort();
    rec.remote_id = "J-2";
    if (h->record_put(&sx.call, &rec, jid2, sizeof jid2, NULL) != AH_OK)
        abort();
    cJSON_Delete(fields);

    void *ctx = NULL;
    if (desc->open != NULL) {
        ah_call_ext ox;
        ah_fake_call_init(fh, &ox, conn);
        if (desc->open(&ox.call, &ctx) != AH_OK)
            abort();
    }
    const ah_postings_ops *po = desc->postings;
    char link_arg[256], publish_arg[256];
    snprintf(link_arg, sizeof link_arg, "{\"topcv_id\":\"42\",\"job_id\":\"%s\"}", jid);
    snprintf(publish_arg, sizeof publish_arg,
             "{\"job_id\":\"%s\",\"overrides\":{\"salary\":\"15M\"}}", jid2);
    if (op >= OP_UPDATE) {
        /* a linked posting to update, list and report on */
        fuzz_net pre = fuzz_net_fixed(job42);
        if (fuzz_net_op(fh, conn, ctx, &pre, "postings.link", po->link, link_arg) != AH_OK)
            abort();
    }
    switch (op) {
    case OP_CONFIGURE:
        fuzz_net_op(fh, conn, ctx, &net, "postings.configure", po->configure,
                    "{\"api_key\":\"key\",\"secret_key\":\"sec\"}");
        break;
    case OP_LINK:
        fuzz_net_op(fh, conn, ctx, &net, "postings.link", po->link, link_arg);
        break;
    case OP_PUBLISH:
        fuzz_net_op(fh, conn, ctx, &net, "postings.publish", po->publish, publish_arg);
        break;
    case OP_SETTLE_PUBLISH:
        fuzz_net_op(fh, conn, ctx, &net, "postings.publish", tc_settle_publish, publish_arg);
        break;
    case OP_UPDATE:
        fuzz_net_op(fh, conn, ctx, &net, "postings.update", po->update, UPDATE_ARG);
        break;
    case OP_SETTLE_UPDATE:
        fuzz_net_op(fh, conn, ctx, &net, "postings.update", tc_settle_update, UPDATE_ARG);
        break;
    case OP_LIST:
        fuzz_net_op(fh, conn, ctx, &net, "postings.list", po->list, "{}");
        break;
    default:
        fuzz_net_op(fh, conn, ctx, &net, "postings.status", po->status, "{}");
        break;
    }

    if (desc->close != NULL)
        desc->close(NULL, ctx);
    ah_fake_conn_free(ats);
    ah_fake_conn_free(conn);
    ah_fake_host_free(fh);
    return 0;
}
