/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TopCV's answers as the plugin reads them (plugins/topcv/, compiled in on
 * the fake host): the input is the provider's answers (fuzz_net.h: "STATUS
 * BODY" separated by 0x1e), taken in turn by the requests of the postings
 * operations that call TopCV: configure (the employer read with the
 * credentials), link (the TopCV job read), publish (another job) and the
 * settle that looks the job up by its reference, update and its read-back
 * settle, then list. Whatever TopCV
 * answers, an operation must succeed or fail with a code, never both,
 * never crash.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ah_plugin_descriptor *desc;
    const ah_host_api *h = ah_fake_host_api();
    if (desc == NULL)
        desc = atshub_plugin_entry_v1(h);
    fuzz_net net = {.data = data, .size = size};
    ah_fake_host *fh = fuzz_net_host(&net);
    ah_fake_conn *conn = ah_fake_conn_new(fh, "acme", "tcv");
    ah_fake_conn *ats = ah_fake_conn_new(fh, "acme", "ats");
    if (conn == NULL || ats == NULL || ah_fake_conn_set(conn, "base_url", "http://127.0.0.1:9") ||
        ah_fake_conn_set(conn, "api_key", "key") || ah_fake_conn_set(conn, "secret_key", "sec") ||
        ah_fake_conn_set(conn, "webhook_token", "tok") ||
        ah_fake_conn_set(conn, "public_url", "https://ats.example.com") ||
        ah_fake_conn_set(conn, "first_stage", "Applied"))
        abort();

    /* an atshub job to post */
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
    char arg[256];
    fuzz_net_op(fh, conn, ctx, &net, "postings.configure", po->configure,
                "{\"api_key\":\"key\",\"secret_key\":\"sec\"}");
    snprintf(arg, sizeof arg, "{\"topcv_id\":\"42\",\"job_id\":\"%s\"}", jid);
    fuzz_net_op(fh, conn, ctx, &net, "postings.link", po->link, arg);
    snprintf(arg, sizeof arg, "{\"job_id\":\"%s\",\"overrides\":{\"salary\":\"15M\"}}", jid2);
    fuzz_net_op(fh, conn, ctx, &net, "postings.publish", po->publish, arg);
    fuzz_net_op(fh, conn, ctx, &net, "postings.publish", tc_settle_publish, arg);
    fuzz_net_op(fh, conn, ctx, &net, "postings.update", po->update,
                "{\"topcv_id\":\"42\",\"overrides\":{\"title\":\"Senior Backend Engineer\"}}");
    fuzz_net_op(fh, conn, ctx, &net, "postings.update", tc_settle_update,
                "{\"topcv_id\":\"42\",\"overrides\":{\"title\":\"Senior Backend Engineer\"}}");
    fuzz_net_op(fh, conn, ctx, &net, "postings.list", po->list, "{}");
    fuzz_net_op(fh, conn, ctx, &net, "postings.status", po->status, "{}");

    if (desc->close != NULL)
        desc->close(NULL, ctx);
    ah_fake_conn_free(ats);
    ah_fake_conn_free(conn);
    ah_fake_host_free(fh);
    return 0;
}
