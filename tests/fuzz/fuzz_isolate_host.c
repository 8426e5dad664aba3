/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host calls a plugin process sends the daemon (core/plugin/isolate.c):
 * the daemon rebuilds each call's arguments from the frame's members and its
 * tail (a store batch's operations and records, an emit_records batch's
 * length-prefixed fields, an HTTP request's headers, body and OAuth2
 * parameters, ...) and makes the call on the plugin's behalf. A plugin
 * process is a third party's code: what it sends is as hostile as a client's
 * request. The input is one frame as the reader gives it: a JSON text, then
 * (after the first NUL, when there is one) the frame's tail.
 *
 * The calls land on the fake host (tests/support/fake_host.c), a new one per
 * input, whose http() answers from memory and never reaches a network.
 * Asserted, besides what AddressSanitizer and UBSan check: every frame that
 * is a JSON object gets a "host_reply" frame that prints; a reply's tail
 * comes with "body_tail" and only then; a frame that names no function, or
 * names a call "c" other than its own (a route's connection, and there is
 * no route here), makes no call and is refused (the fake host counts what
 * it was asked).
 * Route host calls (the exchange's http_*, conn_by_secret) need a route in
 * flight and are driven by check_isolate instead.
 */

#include <cjson/cJSON.h>

#include "fake_host.h"
#include "fuzz.h"
#include "isolate.h"

static void fail(const char *what)
{
    fuzz_fail("fuzz_isolate_host", what);
}

/* An answer from memory: status 200 and the request's body echoed back, so
 * that a reply's tail is exercised with what the frame sent. */
static ah_result canned_http(void *arg, const ah_http_request *req, ah_http_response *resp)
{
    (void)arg;
    memset(resp, 0, sizeof *resp);
    resp->struct_size = sizeof *resp;
    resp->status = 200;
    resp->attempts = 1;
    resp->content_type = strdup("application/json");
    size_t n = req->body != NULL ? req->body_len : 2;
    resp->body = malloc(n + 1);
    if (resp->body == NULL || resp->content_type == NULL)
        fail("out of memory");
    if (req->body != NULL)
        memcpy(resp->body, req->body, n);
    else
        memcpy(resp->body, "{}", 2);
    resp->body[n] = '\0';
    resp->body_len = n;
    return AH_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t text_len = nul != NULL ? (size_t)(nul - data) : size;
    cJSON *m = cJSON_ParseWithLength((const char *)data, text_len);
    if (!cJSON_IsObject(m)) {
        cJSON_Delete(m);
        return 0;
    }
    /* The tail as the reader hands it over: its own allocation. */
    unsigned char *tail = NULL;
    size_t tail_len = 0;
    if (nul != NULL) {
        tail_len = size - text_len - 1;
        tail = malloc(tail_len > 0 ? tail_len : 1);
        if (tail == NULL)
            fail("out of memory");
        if (tail_len > 0)
            memcpy(tail, nul + 1, tail_len);
    }

    ah_fake_host *fh = ah_fake_host_new();
    if (fh == NULL)
        fail("out of memory");
    fh->quiet = true;
    fh->http_cb = canned_http;
    ah_fake_conn *conn = ah_fake_conn_new(fh, "acme", "main");
    if (conn == NULL || ah_fake_conn_set(conn, "base_url", "http://127.0.0.1:1") != 0 ||
        ah_fake_conn_set(conn, "api_key", "k") != 0)
        fail("out of memory");
    ah_call_ext x;
    ah_fake_call_init(fh, &x, conn);

    unsigned char *out_tail = NULL;
    size_t out_tail_len = 0;
    cJSON *resp = ah_isolate_serve_host_call(&x.call, m, tail, tail_len, &out_tail,
                                             &out_tail_len);
    if (resp == NULL)
        fail("no reply");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(resp, "t");
    if (!cJSON_IsString(t) || strcmp(t->valuestring, "host_reply") != 0)
        fail("a reply that is not a host_reply");
    if ((out_tail != NULL) != cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "body_tail")))
        fail("a reply's tail without body_tail, or body_tail without a tail");
    if (out_tail != NULL && out_tail_len == 0)
        fail("an empty tail");
    /* A frame without a function, or for a call other than its own (as
     * the daemon reads "c": a number clamped to -1.., whole part), names
     * nothing to call: nothing may be made. */
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(m, "fn");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "c");
    double cv = cJSON_IsNumber(c) ? c->valuedouble : 0;
    bool other_call = cv <= -1 || cv >= 1;
    if ((!cJSON_IsString(fn) || other_call) &&
        (fh->http_count != 0 || fh->publish_count != 0 || fh->record_count != 0 ||
         fh->record_put_count != 0 || fh->oauth2_count != 0 ||
         fh->settings_update_count != 0 || fh->fail_count == 0))
        fail("a frame without \"fn\", or for another call, made a call or was not refused");
    /* The reply goes back to the plugin process as a frame. */
    char *text = cJSON_PrintUnformatted(resp);
    if (text == NULL)
        fail("a reply that cannot be printed");
    free(text);

    cJSON_Delete(resp);
    free(out_tail);
    ah_fake_conn_free(conn);
    ah_fake_host_free(fh);
    free(tail);
    cJSON_Delete(m);
    return 0;
}
