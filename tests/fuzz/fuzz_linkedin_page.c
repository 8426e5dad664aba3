/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The LinkedIn configuration page's callback (plugins/linkedin/li_page.c
 * and the request store of linkedin.c, compiled in on the fake host): the
 * input is the JSON body the widget posts ({"integrations":[...]} or the
 * array), then the page is rendered from what was stored; the input as text
 * is also the integration_types setting that open() parses.
 */
#include <stdio.h>

#include "fake_host.h"
#include "fuzz.h"
#include "li.h"

const ah_plugin_descriptor *atshub_plugin_entry_v1(const ah_host_api *host);

static const ah_plugin_descriptor *desc;

static void request(ah_fake_host *fh, ah_fake_conn *conn, void *ctx, const char *method,
                    const char *path, const char *body, size_t len,
                    ah_result (*route)(ah_call *, ah_http_exchange *))
{
    const char *headers[] = {"Content-Type: application/json; charset=utf-8", NULL};
    ah_fake_exchange fx = {
        .method = method,
        .path = path,
        .client_ip = "203.0.113.9",
        .headers = headers,
        .body = body,
        .body_len = len,
    };
    ah_call_ext x;
    ah_fake_call_init(fh, &x, conn);
    x.call.conn_ctx = ctx;
    (void)route(&x.call, AH_FAKE_EXCHANGE(&fx));
    if (fx.responses > 1)
        abort(); /* answered twice */
    ah_fake_exchange_clear(&fx);
}

static ah_fake_host *fh;
static ah_fake_conn *conn;
static void *ctx;

#define TYPES "APPLY_WITH_LINKEDIN,APPLY_CONNECT"

/* One fake host and one opened connection for every input (building them
 * per input cost more than the input itself). */
static void setup(void)
{
    desc = atshub_plugin_entry_v1(ah_fake_host_api());
    fh = ah_fake_host_new();
    if (fh == NULL)
        abort();
    fh->quiet = true;
    conn = ah_fake_conn_new(fh, "acme", "li");
    if (conn == NULL || ah_fake_conn_set(conn, "integration_types", TYPES) != 0 ||
        ah_fake_conn_set(conn, "client_id", "cid-1") != 0 ||
        ah_fake_conn_set(conn, "webhook_token", "tok") != 0)
        abort();
    ah_call_ext ox;
    ah_fake_call_init(fh, &ox, conn);
    if (desc->open(&ox.call, &ctx) != AH_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (desc == NULL)
        setup();
    /* every input starts from an empty request store */
    pthread_mutex_lock(&fh->mu);
    cJSON_Delete(fh->records);
    fh->records = NULL;
    pthread_mutex_unlock(&fh->mu);

    request(fh, conn, ctx, "POST", "/integrations/linkedin/integrate/tok", (const char *)data,
            size, li_route_callback);
    request(fh, conn, ctx, "GET", "/integrations/linkedin/configure/tok", NULL, 0, li_route_page);

    /* the setting open() parses */
    char *s = fuzz_strndup(data, size);
    if (ah_fake_conn_set(conn, "integration_types", s) != 0)
        abort();
    ah_call_ext ox;
    ah_fake_call_init(fh, &ox, conn);
    void *c2 = NULL;
    if (desc->open(&ox.call, &c2) == AH_OK)
        desc->close(NULL, c2);
    free(s);
    if (ah_fake_conn_set(conn, "integration_types", TYPES) != 0)
        abort();
    return 0;
}
