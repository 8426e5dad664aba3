/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TopCV's answers as the plugin reads them (plugins/topcv/, compiled in on
 * the fake host): the input's first byte chooses one of the postings
 * operations (fuzz_net.h), the rest is TopCV's answers ("STATUS BODY"
 * separated by 0x1e), taken in turn by its requests: 0 configure (the
 * employer read with the credentials), 1 link (the TopCV job read),
 * 2 publish (another job), 3 the settle that looks a publish up by its
 * reference, 4 update and 5 its read-back settle, 6 list, 7 status. 4 to 7
 * run on a host where TopCV job 42 was linked (on an answer of the
 * harness's own, as a tenant would have), 0 to 3 on one where it was not.
 * Both hosts are set up once; what an input wrote to one (records,
 * sequences, settings) is undone after it (fuzz_net_restore). Whatever
 * TopCV answers, an operation must succeed or fail with a code, never
 * both, never crash.
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

static const ah_plugin_descriptor *desc;

/* A fake host with the tenant's jobs and the TopCV connection, set up once. */
typedef struct rig {
    ah_fake_host *fh;
    ah_fake_conn *conn, *ats;
    void *ctx;
    char jid[64], jid2[64];
    unsigned settings_updates;
    fuzz_net_saved saved;
} rig;

static void conn_up(rig *r)
{
    r->conn = ah_fake_conn_new(r->fh, "acme", "tcv");
    if (r->conn == NULL || ah_fake_conn_set(r->conn, "base_url", "http://127.0.0.1:9") ||
        ah_fake_conn_set(r->conn, "api_key", "key") ||
        ah_fake_conn_set(r->conn, "secret_key", "sec") ||
        ah_fake_conn_set(r->conn, "webhook_token", "tok") ||
        ah_fake_conn_set(r->conn, "public_url", "https://ats.example.com") ||
        ah_fake_conn_set(r->conn, "first_stage", "Applied"))
        abort();
    r->ctx = NULL;
    if (desc->open != NULL) {
        ah_call_ext ox;
        ah_fake_call_init(r->fh, &ox, r->conn);
        if (desc->open(&ox.call, &r->ctx) != AH_OK)
            abort();
    }
    r->settings_updates = r->fh->settings_update_count;
}

static void conn_down(rig *r)
{
    if (desc->close != NULL)
        desc->close(NULL, r->ctx);
    ah_fake_conn_free(r->conn);
}

static void link_arg(const rig *r, char *arg, size_t len)
{
    snprintf(arg, len, "{\"topcv_id\":\"42\",\"job_id\":\"%s\"}", r->jid);
}

static void rig_init(rig *r, bool linked)
{
    const ah_host_api *h = ah_fake_host_api();
    r->fh = fuzz_net_host(NULL);
    r->ats = ah_fake_conn_new(r->fh, "acme", "ats");
    if (r->ats == NULL)
        abort();
    /* atshub jobs to post */
    ah_call_ext sx;
    ah_fake_call_init(r->fh, &sx, r->ats);
    sx.call.topic = "test";
    cJSON *fields = cJSON_Parse(job_fields);
    ah_record rec = {.struct_size = sizeof rec, .type = "job", .remote_id = "J-1",
                     .updated_at = "2026-01-01T00:00:00Z", .fields = fields};
    if (fields == NULL || h->record_put(&sx.call, &rec, r->jid, sizeof r->jid, NULL) != AH_OK)
        abort();
    rec.remote_id = "J-2";
    if (h->record_put(&sx.call, &rec, r->jid2, sizeof r->jid2, NULL) != AH_OK)
        abort();
    cJSON_Delete(fields);
    conn_up(r);
    if (linked) {
        /* a linked posting to update, list and report on */
        char arg[256];
        link_arg(r, arg, sizeof arg);
        fuzz_net pre = fuzz_net_fixed(job42);
        if (fuzz_net_op(r->fh, r->conn, r->ctx, &pre, "postings.link", desc->postings->link,
                        arg) != AH_OK)
            abort();
    }
    fuzz_net_save(r->fh, &r->saved);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rig rigs[2];
    if (desc == NULL) {
        desc = atshub_plugin_entry_v1(ah_fake_host_api());
        rig_init(&rigs[0], false);
        rig_init(&rigs[1], true);
    }
    fuzz_net net;
    unsigned op = fuzz_net_begin(&net, data, size, N_OPS);
    rig *r = &rigs[op >= OP_UPDATE];
    ah_fake_host *fh = r->fh;
    ah_fake_conn *conn = r->conn;
    void *ctx = r->ctx;
    const ah_postings_ops *po = desc->postings;
    char larg[256], publish_arg[256];
    link_arg(r, larg, sizeof larg);
    snprintf(publish_arg, sizeof publish_arg,
             "{\"job_id\":\"%s\",\"overrides\":{\"salary\":\"15M\"}}", r->jid2);
    switch (op) {
    case OP_CONFIGURE:
        fuzz_net_op(fh, conn, ctx, &net, "postings.configure", po->configure,
                    "{\"api_key\":\"key\",\"secret_key\":\"sec\"}");
        break;
    case OP_LINK:
        fuzz_net_op(fh, conn, ctx, &net, "postings.link", po->link, larg);
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

    /* undo what the input wrote, for the next one */
    fuzz_net_restore(fh, &r->saved);
    if (fh->settings_update_count != r->settings_updates) {
        conn_down(r);
        conn_up(r);
    }
    return 0;
}
