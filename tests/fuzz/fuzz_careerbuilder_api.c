/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CareerBuilder's answers as the plugin reads them (plugins/careerbuilder/,
 * compiled in on the fake host as tests/unit/check_cb_validate.c does): the
 * input's first byte chooses one of these operations (fuzz_net.h), the
 * rest is the provider's answers ("STATUS BODY" separated by 0x1e), taken
 * in turn by its requests: 0 statuses.put, 1 the read-back a lost put
 * settles with, 2 statuses.get (paging), 3 statuses.get since a date,
 * 4 statuses.query by emails, 5 by requisition, 6 the push of an
 * application event. Whatever CareerBuilder answers, an operation must
 * succeed or fail with a code, never both, never crash.
 */
#include <stdio.h>

#include "cb.h"
#include "fake_host.h"
#include "fuzz.h"
#include "fuzz_net.h"

const ah_plugin_descriptor *atshub_plugin_entry_v1(const ah_host_api *host);

static const ah_plugin_descriptor *desc;

static const char status_json[] =
    "{\"account\":\"AAAA_1234\",\"candidate_email\":\"ann@example.com\","
    "\"vendor_key\":\"vk\",\"client\":\"cl\",\"requisition_id\":\"123\","
    "\"level_id\":\"5001\",\"status\":\"Interviewing\","
    "\"status_date\":\"2024-05-02T09:00:00Z\",\"status_level\":\"application\","
    "\"status_detail\":\"2: active\"}";

static void put_record(ah_fake_host *fh, ah_fake_conn *src, const char *type, const char *rid,
                       const char *fields_json, char id[64])
{
    ah_call_ext sx;
    ah_fake_call_init(fh, &sx, src);
    sx.call.topic = "test";
    cJSON *fields = cJSON_Parse(fields_json);
    ah_record r = {.struct_size = sizeof r, .type = type, .remote_id = rid,
                   .updated_at = "2024-05-02T11:00:00Z", .fields = fields};
    if (fields == NULL || ah_fake_host_api()->record_put(&sx.call, &r, id, 64, NULL) != AH_OK)
        abort();
    cJSON_Delete(fields);
}

enum { OP_PUT, OP_SETTLE, OP_GET, OP_GET_SINCE, OP_QUERY_EMAILS, OP_QUERY_REQ, OP_PUSH, N_OPS };

/* The push of an application event: the ATS records it names first. */
static void push(ah_fake_host *fh, ah_fake_conn *conn, ah_fake_conn *src, void *ctx,
                 fuzz_net *net)
{
    char cid[64], jid[64], aid[64];
    put_record(fh, src, "candidate", "77", "{\"remote_id\":\"77\",\"email\":\"ann@example.com\"}",
               cid);
    put_record(fh, src, "job", "123", "{\"remote_id\":\"123\",\"title\":\"Nurse\"}", jid);
    put_record(fh, src, "application", "5001",
               "{\"remote_id\":\"5001\",\"job_remote_id\":\"123\",\"candidate_remote_id\":\"77\","
               "\"stage_id\":\"2\",\"status\":\"active\",\"rejected\":false}",
               aid);
    const ah_subscription *s = desc->subscriptions;
    while (s->pattern != NULL && strcmp(s->pattern, "event.application.updated") != 0)
        s++;
    if (s->pattern == NULL)
        abort();
    fuzz_net_next_op(net);
    fh->http_arg = net;
    ah_call_ext ex;
    ah_fake_call_init(fh, &ex, conn);
    ex.call.conn_ctx = ctx;
    ex.call.topic = "event.application.updated";
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "id", aid);
    cJSON_AddStringToObject(ev, "connection", "er");
    ah_result r = s->handler(&ex.call, "event.application.updated", ev);
    if (fuzz_net_show())
        fprintf(stderr, "push: %s (%u requests) %s %s\n", r == AH_OK ? "ok" : "failed",
                fh->http_count, ex.err_code, ex.err_msg);
    if (r != AH_OK && ex.err_code[0] == '\0')
        abort(); /* a failure that does not say why */
    cJSON_Delete(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (desc == NULL)
        desc = atshub_plugin_entry_v1(ah_fake_host_api());
    fuzz_net net;
    unsigned op = fuzz_net_begin(&net, data, size, N_OPS);
    ah_fake_host *fh = fuzz_net_host(&net);
    ah_fake_conn *conn = ah_fake_conn_new(fh, "acme", "cb");
    ah_fake_conn *src = ah_fake_conn_new(fh, "acme", "er");
    if (conn == NULL || src == NULL || ah_fake_conn_set(conn, "base_url", "http://127.0.0.1:9") ||
        ah_fake_conn_set(conn, "client_id", "atshub") ||
        ah_fake_conn_set(conn, "client_secret", "s3cret") ||
        ah_fake_conn_set(conn, "account", "AAAA_1234") ||
        ah_fake_conn_set(conn, "candidate_wait_s", "0") ||
        ah_fake_conn_set(conn, "status_map", "{\"stage:2\":\"Interviewing\"}"))
        abort();
    ah_call_ext ox;
    ah_fake_call_init(fh, &ox, conn);
    void *ctx = NULL;
    if (desc->open(&ox.call, &ctx) != AH_OK)
        abort();

    const ah_statuses_ops *so = desc->statuses;
    switch (op) {
    case OP_PUT:
        fuzz_net_op(fh, conn, ctx, &net, "statuses.put", so->put, status_json);
        break;
    case OP_SETTLE:
        fuzz_net_op(fh, conn, ctx, &net, "statuses.put", cb_settle_put, status_json);
        break;
    case OP_GET:
        fuzz_net_op(fh, conn, ctx, &net, "statuses.get", so->get,
                    "{\"candidate_email\":\"ann@example.com\",\"results_per_page\":2}");
        break;
    case OP_GET_SINCE:
        fuzz_net_op(fh, conn, ctx, &net, "statuses.get", so->get,
                    "{\"candidate_email\":\"ann@example.com\","
                    "\"status_date\":\"2024-01-01T00:00:00Z\"}");
        break;
    case OP_QUERY_EMAILS:
        fuzz_net_op(fh, conn, ctx, &net, "statuses.query", so->query,
                    "{\"candidate_email\":[\"ann@example.com\",\"bob@example.com\"]}");
        break;
    case OP_QUERY_REQ:
        fuzz_net_op(fh, conn, ctx, &net, "statuses.query", so->query,
                    "{\"requisition_id\":[\"123\"],\"status_date\":\"2024-01-01T00:00:00Z\"}");
        break;
    default:
        push(fh, conn, src, ctx, &net);
        break;
    }

    desc->close(NULL, ctx);
    ah_fake_conn_free(src);
    ah_fake_conn_free(conn);
    ah_fake_host_free(fh);
    return 0;
}
