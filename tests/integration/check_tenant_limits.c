/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-tenant request budgets on /v1 (host/tenantlimit.c, applied in
 * ah_rest_tenant), through a host serving on 127.0.0.1: a tenant over its
 * rate is answered 429 rate_limited with Retry-After while another
 * tenant's requests keep succeeding, and is served again once it waited
 * what Retry-After said. Nothing here measures time: the test only waits
 * as long as the server tells it to.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "support/harness.h"
#include "tenantlimit.h"

#define KEY_A "ahk_tenant_a_key_0123456789"
#define KEY_B "ahk_tenant_b_key_9876543210"

typedef struct fixture {
    char *dir, *ini;
    ah_core *core;
    char base[64];
} fixture;

static void add_tenant(fixture *f, const char *name, const char *key)
{
    char hash[AH_SHA256_HEX_LEN + 1];
    int64_t id;
    ah_sha256_hex(key, strlen(key), hash);
    ck_assert_int_eq(f->core->store->ops->tenant_add(f->core->store, name, hash, &id), 0);
}

/* A host whose tenants may make `rate` requests per second in bursts of
 * `burst`. */
static void setup(fixture *f, unsigned rate, unsigned burst)
{
    memset(f, 0, sizeof *f);
    f->dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(f->dir);
    char extra[128];
    /* A second [http] section adds to the first. */
    snprintf(extra, sizeof extra, "[http]\ntenant_rate = %u\ntenant_burst = %u\n", rate, burst);
    f->ini = ah_t_write_ini(f->dir, extra);
    ck_assert_ptr_nonnull(f->ini);
    ah_config cfg;
    char err[1024];
    ck_assert_msg(ah_config_load(f->ini, &cfg, err, sizeof err) == 0, "%s", err);
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    f->core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ck_assert_msg(f->core != NULL, "%s", err);
    ck_assert_msg(ah_daemon_start(f->core, err, sizeof err) == 0, "%s", err);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u",
             (unsigned)ah_httpd_port(f->core->httpd));
    add_tenant(f, "tenant_a", KEY_A);
    add_tenant(f, "tenant_b", KEY_B);
    ck_assert_int_eq(ah_conns_reload(f->core), 0);
}

static void teardown(fixture *f)
{
    ah_daemon_close(f->core);
    ah_t_rmrf(f->dir);
    free(f->dir);
    free(f->ini);
}

/* GET /v1/plugins as the tenant with `key`. Returns the status; the body
 * (parsed) and the Retry-After value (0: none) when asked for. */
static long get_plugins(const fixture *f, const char *key, cJSON **body, unsigned *retry_after)
{
    char url[128], auth[128], *resp = NULL, *head = NULL;
    snprintf(url, sizeof url, "%s/v1/plugins", f->base);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *h[] = {auth, NULL};
    long st = ah_t_http_head("GET", url, h, NULL, &resp, &head);
    if (retry_after != NULL) {
        *retry_after = 0;
        for (const char *l = head; l != NULL && *l != '\0';) {
            if (strncasecmp(l, "Retry-After:", 12) == 0)
                *retry_after = (unsigned)strtoul(l + 12, NULL, 10);
            const char *nl = strchr(l, '\n');
            l = nl != NULL ? nl + 1 : NULL;
        }
    }
    if (body != NULL) {
        *body = cJSON_Parse(resp);
        ck_assert_msg(*body != NULL, "not JSON: %s", resp);
    }
    free(resp);
    free(head);
    return st;
}

static const char *err_code(const cJSON *o)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "error"), "code");
    return cJSON_IsString(c) ? c->valuestring : "";
}

static const char *err_message(const cJSON *o)
{
    const cJSON *m =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "error"), "message");
    return cJSON_IsString(m) ? m->valuestring : "";
}

START_TEST(test_flood_is_refused_for_its_tenant_only)
{
    fixture f;
    setup(&f, 1, 6);
    /* Tenant A floods; tenant B makes one request for every two of A's, so
     * B spends its (equal) budget at half A's pace and stays within it
     * however fast or slow the requests go. */
    long st = 0;
    unsigned retry = 0;
    cJSON *o = NULL;
    int sent = 0;
    for (; sent < 200; sent++) {
        st = get_plugins(&f, KEY_A, &o, &retry);
        if (st != 200)
            break;
        cJSON_Delete(o);
        if (sent % 2 == 1)
            ck_assert_int_eq(get_plugins(&f, KEY_B, NULL, NULL), 200);
    }
    ck_assert_msg(st == 429, "tenant A got %ld after %d requests", st, sent);
    ck_assert_int_ge(sent, 6); /* the burst was served */
    ck_assert_str_eq(err_code(o), "rate_limited");
    ck_assert_ptr_nonnull(strstr(err_message(o), "tenant_a"));
    ck_assert_uint_ge(retry, 1);
    cJSON_Delete(o);
    /* While A is refused, B is served. */
    ck_assert_int_eq(get_plugins(&f, KEY_B, NULL, NULL), 200);
    /* A refused request took nothing: after waiting what Retry-After
     * said, A is served again. */
    sleep(retry);
    ck_assert_int_eq(get_plugins(&f, KEY_A, NULL, NULL), 200);
    /* A wrong key is 401, never 429: it spends no one's budget. */
    ck_assert_int_eq(get_plugins(&f, "ahk_not_a_key", &o, NULL), 401);
    ck_assert_str_eq(err_code(o), "unauthorized");
    cJSON_Delete(o);
    teardown(&f);
}
END_TEST

/* POST /v1/webhooks as tenant A with Idempotency-Key `key`: the status,
 * the Retry-After value (0: none) and whether it was a replay. */
static long post_keyed(const fixture *f, const char *key, unsigned *retry_after, bool *replayed)
{
    char url[128], idem[128], *resp = NULL, *head = NULL;
    snprintf(url, sizeof url, "%s/v1/webhooks", f->base);
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", key);
    const char *h[] = {"Authorization: Bearer " KEY_A, "Content-Type: application/json", idem,
                       NULL};
    long st = ah_t_http_head("POST", url, h, "{\"url\":\"http://127.0.0.1:1/x\"}", &resp, &head);
    *retry_after = 0;
    *replayed = false;
    for (const char *l = head; l != NULL && *l != '\0';) {
        if (strncasecmp(l, "Retry-After:", 12) == 0)
            *retry_after = (unsigned)strtoul(l + 12, NULL, 10);
        if (strncasecmp(l, "Idempotent-Replayed: true", 25) == 0)
            *replayed = true;
        const char *nl = strchr(l, '\n');
        l = nl != NULL ? nl + 1 : NULL;
    }
    free(resp);
    free(head);
    return st;
}

/* Requests answered from a stored Idempotency-Key (replays) spend the
 * tenant's budget as any other request: a flood of one key's replays is
 * refused 429, and the key keeps its answer. (Before, every replay was
 * served: a stored answer of up to a megabyte read, opened and sent at
 * any rate.) */
START_TEST(test_idempotent_replays_budgeted)
{
    fixture f;
    setup(&f, 1, 6);
    unsigned retry = 0;
    bool replayed = false;
    long first = post_keyed(&f, "k-1", &retry, &replayed);
    ck_assert_msg(first != 429 && first != 503 && !replayed, "%ld", first);
    long st = 0;
    int sent = 0;
    for (; sent < 200; sent++) {
        st = post_keyed(&f, "k-1", &retry, &replayed);
        if (st == 429)
            break;
        ck_assert_int_eq(st, first);
        ck_assert(replayed);
    }
    ck_assert_msg(st == 429, "replays still served after %d", sent);
    ck_assert_uint_ge(retry, 1);
    /* Refused, not released: after the wait the same answer, replayed. */
    sleep(retry);
    ck_assert_int_eq(post_keyed(&f, "k-1", &retry, &replayed), first);
    ck_assert(replayed);
    teardown(&f);
}
END_TEST

START_TEST(test_rate_zero_is_unlimited)
{
    fixture f;
    setup(&f, 0, 1);
    /* With bursts of 1 at any positive rate the second of these would be
     * refused at once; rate 0 means no limit. */
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(get_plugins(&f, KEY_A, NULL, NULL), 200);
    teardown(&f);
}
END_TEST

/* The buckets themselves, without HTTP: a burst is served, the next
 * request is refused with a Retry-After of at least a second, tenants are
 * independent, and refused requests take nothing. */
START_TEST(test_buckets)
{
    ah_tenantlimit *t = ah_tenantlimit_new(1, 3);
    ck_assert_ptr_nonnull(t);
    unsigned retry = 0;
    for (int i = 0; i < 3; i++)
        ck_assert(ah_tenantlimit_take(t, 7, &retry));
    /* A refill of a whole token between these takes would need a second
     * to pass; if one did, the loop below still finds the refusal. */
    bool refused = false;
    for (int i = 0; i < 100 && !refused; i++)
        refused = !ah_tenantlimit_take(t, 7, &retry);
    ck_assert(refused);
    ck_assert_uint_ge(retry, 1);
    for (int64_t other = 8; other < 200; other++) /* many shards, all full */
        ck_assert(ah_tenantlimit_take(t, other, NULL));
    ah_tenantlimit_free(t);
    ah_tenantlimit_free(NULL);
    t = ah_tenantlimit_new(0, 0);
    ck_assert_ptr_nonnull(t);
    for (int i = 0; i < 1000; i++)
        ck_assert(ah_tenantlimit_take(t, 1, NULL));
    ah_tenantlimit_free(t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tenant_limits");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_flood_is_refused_for_its_tenant_only);
    tcase_add_test(tc, test_idempotent_replays_budgeted);
    tcase_add_test(tc, test_rate_zero_is_unlimited);
    tcase_add_test(tc, test_buckets);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
