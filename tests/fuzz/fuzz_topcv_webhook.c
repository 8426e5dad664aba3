/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TopCV webhook (plugins/topcv/tc_webhook.c and what it calls, compiled
 * in on the fake host): the input is the body, signed by the harness with
 * the connection's Secret Key and the current time so that the body parsing
 * and the event handlers are reached; the same input split as
 * "timestamp\nsignature\nbody" goes through the signature check (tc_verify)
 * as sent, which must refuse it unless the signature is right.
 */
#include <stdio.h>
#include <time.h>

#include "fake_host.h"
#include "fuzz.h"
#include "topcv.h"

const ah_plugin_descriptor *atshub_plugin_entry_v1(const ah_host_api *host);

#define SECRET "tc-secret"

static const ah_plugin_descriptor *desc;

static void post(ah_fake_host *fh, ah_fake_conn *conn, void *ctx, const char *ts, const char *sig,
                 const char *body, size_t len)
{
    char hts[64], hsig[128];
    snprintf(hts, sizeof hts, "X-TopCV-Timestamp: %s", ts);
    snprintf(hsig, sizeof hsig, "X-TopCV-Signature: %s", sig);
    const char *headers[] = {hts, hsig, "Content-Type: application/json", NULL};
    ah_fake_exchange fx = {
        .method = "POST",
        .path = "/integrations/topcv/webhook/tok",
        .client_ip = "203.0.113.9",
        .headers = headers,
        .body = body,
        .body_len = len,
    };
    ah_call_ext x;
    ah_fake_call_init(fh, &x, conn);
    x.call.conn_ctx = ctx;
    (void)tc_route_webhook(&x.call, AH_FAKE_EXCHANGE(&fx));
    if (fx.responses > 1)
        abort(); /* answered twice */
    ah_fake_exchange_clear(&fx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ah_host_api *h = ah_fake_host_api();
    static bool ready;
    if (!ready) {
        desc = atshub_plugin_entry_v1(h);
        ready = true;
    }
    ah_fake_host *fh = ah_fake_host_new();
    if (fh == NULL)
        abort();
    fh->quiet = true;
    ah_fake_conn *conn = ah_fake_conn_new(fh, "acme", "topcv");
    if (fh == NULL || conn == NULL || ah_fake_conn_set(conn, "secret_key", SECRET) != 0)
        abort();
    ah_call_ext ox;
    ah_fake_call_init(fh, &ox, conn);
    void *ctx = NULL;
    if (desc->open != NULL && desc->open(&ox.call, &ctx) != AH_OK)
        abort();

    /* signed as TopCV would */
    long long now = (long long)time(NULL);
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", now);
    size_t tl = strlen(ts);
    char *text = malloc(tl + 1 + size + 1);
    if (text == NULL)
        abort();
    memcpy(text, ts, tl);
    text[tl] = '.';
    if (size > 0)
        memcpy(text + tl + 1, data, size);
    char mac[65], sig[80];
    if (h->hmac_sha256_hex(SECRET, strlen(SECRET), text, tl + 1 + size, mac) != AH_OK)
        abort();
    free(text);
    snprintf(sig, sizeof sig, "sha256=%s", mac);
    const char *code = NULL;
    if (tc_verify(h, SECRET, ts, sig, (const char *)data, size, now, &code) != 0) {
        fprintf(stderr, "tc_verify refused a right signature: %s\n", code);
        abort();
    }
    post(fh, conn, ctx, ts, sig, (const char *)data, size);

    /* as sent: "ts\nsig\nbody" */
    char *s = fuzz_strndup(data, size);
    char *fsig = fuzz_split(s);
    char *body = fuzz_split(fsig);
    size_t blen = strlen(body);
    code = NULL;
    if (tc_verify(h, SECRET, s, fsig, body, blen, now, &code) != 0 && code == NULL)
        abort();
    if (strlen(s) < 40 && strlen(fsig) < 100)
        post(fh, conn, ctx, s, fsig, body, blen);
    free(s);

    if (desc->close != NULL)
        desc->close(NULL, ctx);
    ah_fake_conn_free(conn);
    ah_fake_host_free(fh);
    return 0;
}
