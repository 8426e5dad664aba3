/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Security review, finding 3 (issue 16): one tenant's webhooks stalled the
 * ticker. Deliveries ran on the ticker thread, up to timeout_ms each, and
 * the same ticker reloads tenants and connections when the store changes:
 * a tenant with six endpoints on a tarpit delayed a new tenant's key and
 * kept a removed tenant's key working for most of a minute.
 *
 * Here a tarpit receiver (a simulator route on 127.0.0.1) holds every
 * request until the test releases it. While it holds the slow tenant's
 * deliveries: another tenant's webhooks are delivered, a tenant added
 * through another store handle (as the CLI does) is served, a removed
 * tenant's key is refused and a disabled connection refuses calls. Nothing is timed: each step waits for the
 * behaviour, and the tarpit still holding is asserted after it. Then the
 * tarpit lets go and every event arrives once, in order, per endpoint,
 * with never more than one request per endpoint and never more than
 * [webhooks] max_per_tenant requests of the tenant at once.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "events.h"
#include "sim/sim.h"
#include "support/harness.h"
#include "webhooks.h"

#define KEY_SLOW "ahk_slow_pool_0123456789abcdef"
#define KEY_ACME "ahk_acme_pool_0123456789abcdef"
#define KEY_GONE "ahk_gone_pool_0123456789abcdef"
#define KEY_NEW "ahk_newco_pool_0123456789abcdef"
#define N_SLOW 6     /* the slow tenant's endpoints, all on the tarpit */
#define N_EVENTS 3   /* events published for the slow tenant */
#define WORKERS 4
#define PER_TENANT 2
#define MAX_SEEN 64
#define WAIT_STEPS 1200 /* x 50 ms: an upper bound for a step, not a timing */

typedef struct tarpit {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool released;
    int held;                 /* requests being held now */
    int max_held;             /* most held at once */
    int inflight[N_SLOW];     /* per endpoint, now */
    int max_inflight[N_SLOW]; /* per endpoint, most at once */
    long long seen[N_SLOW][MAX_SEEN]; /* event ids, in arrival order */
    int nseen[N_SLOW];
    int ok_calls; /* the other tenant's receiver */
    long long ok_seen[MAX_SEEN];
} tarpit;

typedef struct fixture {
    char *dir;
    char *ini;
    ah_core *core;
    ah_sim *sim;
    tarpit tp;
    char base[64];
    int64_t slow_id, acme_id, gone_id;
    int64_t tpl_id; /* acme's template connection */
} fixture;

static long long event_id(const ah_sim_req *req)
{
    const char *id = ah_sim_header(req, "webhook-id");
    return id != NULL && strncmp(id, "evt_", 4) == 0 ? strtoll(id + 4, NULL, 10) : -1;
}

/* /tarpit/N: endpoint N of the slow tenant. Holds until released. */
static void on_tarpit(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    tarpit *t = arg;
    int n = atoi(req->path + strlen("/tarpit/"));
    if (n < 0 || n >= N_SLOW) {
        resp->status = 404;
        resp->body = strdup("{}");
        return;
    }
    pthread_mutex_lock(&t->mu);
    if (t->nseen[n] < MAX_SEEN)
        t->seen[n][t->nseen[n]++] = event_id(req);
    t->held++;
    if (t->held > t->max_held)
        t->max_held = t->held;
    t->inflight[n]++;
    if (t->inflight[n] > t->max_inflight[n])
        t->max_inflight[n] = t->inflight[n];
    while (!t->released)
        pthread_cond_wait(&t->cv, &t->mu);
    t->inflight[n]--;
    t->held--;
    pthread_mutex_unlock(&t->mu);
    resp->status = 200;
    resp->body = strdup("{}");
}

static void on_ok(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    tarpit *t = arg;
    pthread_mutex_lock(&t->mu);
    if (t->ok_calls < MAX_SEEN)
        t->ok_seen[t->ok_calls] = event_id(req);
    t->ok_calls++;
    pthread_mutex_unlock(&t->mu);
    resp->status = 200;
    resp->body = strdup("{}");
}

static void release(tarpit *t)
{
    pthread_mutex_lock(&t->mu);
    t->released = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static int held(tarpit *t)
{
    pthread_mutex_lock(&t->mu);
    int n = t->released ? -1 : t->held;
    pthread_mutex_unlock(&t->mu);
    return n;
}

static int64_t add_tenant(ah_store *st, const char *name, const char *key)
{
    char hash[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex(key, strlen(key), hash);
    int64_t id = 0;
    ck_assert_int_eq(st->ops->tenant_add(st, name, hash, &id), 0);
    return id;
}

static void setup(fixture *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->tp.mu, NULL);
    pthread_cond_init(&f->tp.cv, NULL);
    f->dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(f->dir);
    char extra[512];
    /* timeout_ms at its maximum: the tarpit is released by the test, never
     * by a timeout. */
    snprintf(extra, sizeof extra,
             "[webhooks]\nbackoff_ms = 0\ntimeout_ms = 600000\nworkers = %d\n"
             "max_per_tenant = %d\nallow_networks = 127.0.0.0/8\n",
             WORKERS, PER_TENANT);
    f->ini = ah_t_write_ini(f->dir, extra);
    ck_assert_ptr_nonnull(f->ini);
    /* A held request blocks its server thread: one per connection, so
     * that it blocks nothing else. */
    ah_sim_opts so = {.thread_per_connection = true};
    f->sim = ah_sim_new(&so);
    ck_assert_ptr_nonnull(f->sim);
    ck_assert_int_eq(ah_sim_route(f->sim, "POST", "/tarpit/", on_tarpit, &f->tp), 0);
    ck_assert_int_eq(ah_sim_route(f->sim, "POST", "/ok", on_ok, &f->tp), 0);
    ck_assert_int_eq(ah_sim_start(f->sim), 0);

    ah_config cfg;
    char err[1024];
    ck_assert_msg(ah_config_load(f->ini, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(cfg.webhook_workers, WORKERS);
    ck_assert_int_eq(cfg.webhook_max_per_tenant, PER_TENANT);
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    f->core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ck_assert_msg(f->core != NULL, "%s", err);
    ck_assert_msg(ah_daemon_start(f->core, err, sizeof err) == 0, "%s", err);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u",
             (unsigned)ah_httpd_port(f->core->httpd));
    f->slow_id = add_tenant(f->core->store, "slow", KEY_SLOW);
    f->acme_id = add_tenant(f->core->store, "acme", KEY_ACME);
    f->gone_id = add_tenant(f->core->store, "gone", KEY_GONE);
    ck_assert_int_eq(f->core->store->ops->connection_add(f->core->store, f->acme_id, "template",
                                                         "tpl", "{}", &f->tpl_id), 0);
    /* This process wrote them: its data version does not move, so reload
     * now, serialised with the ticker's reloads as the daemon does. */
    pthread_mutex_lock(&f->core->tick_lock);
    ck_assert_int_eq(ah_conns_reload(f->core), 0);
    pthread_mutex_unlock(&f->core->tick_lock);
}

static void teardown(fixture *f)
{
    release(&f->tp); /* a failed assertion must not leave a worker held */
    ah_daemon_close(f->core);
    ah_sim_stop(f->sim);
    ah_t_rmrf(f->dir);
    free(f->dir);
    free(f->ini);
    pthread_cond_destroy(&f->tp.cv);
    pthread_mutex_destroy(&f->tp.mu);
}

/* GET /v1/events with `key`: the status. */
static long events_status(fixture *f, const char *key)
{
    char url[256], auth[128];
    snprintf(url, sizeof url, "%s/v1/events?limit=1000", f->base);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *h[] = {auth, NULL};
    return ah_t_http("GET", url, h, NULL, NULL);
}

/* GET /v1/stages as acme on its template connection: 501 (the template
 * has no stages) while enabled, 409 connection_disabled once disabled. */
static long stages_status(fixture *f)
{
    char url[256];
    snprintf(url, sizeof url, "%s/v1/stages", f->base);
    const char *h[] = {"Authorization: Bearer " KEY_ACME, "X-Connection: tpl", NULL};
    return ah_t_http("GET", url, h, NULL, NULL);
}

/* The tenant's event ids, oldest first, from the event log. */
static int event_ids(fixture *f, const char *key, long long *out, int max)
{
    char url[256], auth[128];
    snprintf(url, sizeof url, "%s/v1/events?limit=1000", f->base);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *h[] = {auth, NULL};
    char *text = NULL;
    ck_assert_int_eq(ah_t_http("GET", url, h, NULL, &text), 200);
    cJSON *o = cJSON_Parse(text);
    free(text);
    ck_assert_ptr_nonnull(o);
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "data")) {
        ck_assert_int_lt(n, max);
        out[n++] = (long long)cJSON_GetObjectItemCaseSensitive(e, "cursor")->valuedouble;
    }
    cJSON_Delete(o);
    return n;
}

static void add_endpoint(fixture *f, int64_t tenant_id, const char *path)
{
    char url[256], secret[96], err[512];
    int64_t id = 0;
    snprintf(url, sizeof url, "%s%s", ah_sim_url(f->sim), path);
    ck_assert_msg(ah_webhook_add(f->core, tenant_id, url, NULL, &id, secret, sizeof secret, err,
                                 sizeof err) == 0, "%s", err);
}

START_TEST(test_tarpit_does_not_stall_the_ticker)
{
    fixture f;
    setup(&f);
    ck_assert_int_eq(events_status(&f, KEY_GONE), 200);
    ck_assert_int_eq(events_status(&f, KEY_NEW), 401);
    ck_assert_int_eq(stages_status(&f), 501);
    for (int i = 0; i < N_SLOW; i++) {
        char path[32];
        snprintf(path, sizeof path, "/tarpit/%d", i);
        add_endpoint(&f, f.slow_id, path);
    }
    add_endpoint(&f, f.acme_id, "/ok");
    for (int i = 0; i < N_EVENTS; i++) {
        cJSON *b = cJSON_CreateObject();
        ck_assert_ptr_nonnull(b);
        cJSON_AddNumberToObject(b, "n", i);
        ck_assert_int_eq(ah_core_publish(f.core, f.slow_id, "event.test.slow", b), 0);
    }
    long long slow_ids[MAX_SEEN];
    ck_assert_int_eq(event_ids(&f, KEY_SLOW, slow_ids, MAX_SEEN), N_EVENTS);

    /* The tarpit holds the slow tenant's first deliveries. */
    for (int i = 0; i < WAIT_STEPS && held(&f.tp) < 1; i++)
        usleep(50 * 1000);
    ck_assert_int_ge(held(&f.tp), 1);

    /* (a) A tenant added through another store handle (as `atshub tenant
     * add` does) is served while the tarpit holds. */
    char err[512];
    ah_store *cli = ah_store_open(f.core->cfg.store_url, NULL, err, sizeof err);
    ck_assert_msg(cli != NULL, "%s", err);
    (void)add_tenant(cli, "newco", KEY_NEW);
    long st = 401;
    for (int i = 0; i < WAIT_STEPS && st != 200; i++) {
        st = events_status(&f, KEY_NEW);
        if (st != 200)
            usleep(50 * 1000);
    }
    ck_assert_int_eq(st, 200);
    ck_assert_int_ge(held(&f.tp), 1); /* still holding */

    /* (b) A removed tenant's key is refused while the tarpit holds. */
    ck_assert_int_eq(cli->ops->tenant_remove(cli, "gone"), 0);
    st = 200;
    for (int i = 0; i < WAIT_STEPS && st != 401; i++) {
        st = events_status(&f, KEY_GONE);
        if (st != 401)
            usleep(50 * 1000);
    }
    ck_assert_int_eq(st, 401);
    ck_assert_int_ge(held(&f.tp), 1); /* still holding */

    /* (c) A disabled connection refuses calls while the tarpit holds. */
    ck_assert_int_eq(cli->ops->connection_set_enabled(cli, f.tpl_id, false), 0);
    st = 501;
    for (int i = 0; i < WAIT_STEPS && st != 409; i++) {
        st = stages_status(&f);
        if (st != 409)
            usleep(50 * 1000);
    }
    ck_assert_int_eq(st, 409);
    ck_assert_int_ge(held(&f.tp), 1); /* still holding */
    cli->ops->close(cli);

    /* The tarpit fills up to the tenant's share of the workers. */
    for (int i = 0; i < WAIT_STEPS && held(&f.tp) < PER_TENANT; i++)
        usleep(50 * 1000);
    ck_assert_int_eq(held(&f.tp), PER_TENANT);

    /* Another tenant's webhooks still go out. */
    ck_assert_int_eq(ah_core_publish(f.core, f.acme_id, "event.test.acme", NULL), 0);
    ck_assert_int_eq(ah_core_publish(f.core, f.acme_id, "event.test.acme", NULL), 0);
    long long acme_ids[MAX_SEEN];
    ck_assert_int_eq(event_ids(&f, KEY_ACME, acme_ids, MAX_SEEN), 2);
    int ok = 0;
    for (int i = 0; i < WAIT_STEPS && ok < 2; i++) {
        usleep(50 * 1000);
        pthread_mutex_lock(&f.tp.mu);
        ok = f.tp.ok_calls;
        pthread_mutex_unlock(&f.tp.mu);
    }
    ck_assert_int_eq(ok, 2);
    ck_assert_int_eq(held(&f.tp), PER_TENANT);

    /* Released: every event once, in order, per endpoint. */
    release(&f.tp);
    bool all = false;
    for (int i = 0; i < WAIT_STEPS && !all; i++) {
        usleep(50 * 1000);
        pthread_mutex_lock(&f.tp.mu);
        all = true;
        for (int e = 0; e < N_SLOW; e++)
            all = all && f.tp.nseen[e] >= N_EVENTS;
        pthread_mutex_unlock(&f.tp.mu);
    }
    pthread_mutex_lock(&f.tp.mu);
    ck_assert_msg(all, "seen per endpoint: %d %d %d %d %d %d", f.tp.nseen[0], f.tp.nseen[1],
                  f.tp.nseen[2], f.tp.nseen[3], f.tp.nseen[4], f.tp.nseen[5]);
    for (int e = 0; e < N_SLOW; e++) {
        ck_assert_int_eq(f.tp.nseen[e], N_EVENTS);
        for (int i = 0; i < N_EVENTS; i++)
            ck_assert_int_eq(f.tp.seen[e][i], slow_ids[i]);
        ck_assert_int_eq(f.tp.max_inflight[e], 1);
    }
    ck_assert_int_eq(f.tp.max_held, PER_TENANT);
    ck_assert_int_eq(f.tp.ok_calls, 2);
    ck_assert_int_eq(f.tp.ok_seen[0], acme_ids[0]);
    ck_assert_int_eq(f.tp.ok_seen[1], acme_ids[1]);
    pthread_mutex_unlock(&f.tp.mu);

    /* The delivery log says the same. */
    cJSON *l = ah_webhook_list(f.core, f.slow_id);
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(cJSON_GetArraySize(l), N_SLOW);
    const cJSON *ep;
    cJSON_ArrayForEach(ep, l) {
        int64_t id = (int64_t)cJSON_GetObjectItemCaseSensitive(ep, "id")->valuedouble;
        bool settled = false;
        for (int i = 0; i < WAIT_STEPS && !settled; i++) {
            cJSON *d = ah_webhook_deliveries(f.core, f.slow_id, id, 100);
            ck_assert_ptr_nonnull(d);
            int delivered = 0;
            const cJSON *line;
            cJSON_ArrayForEach(line, d) {
                const cJSON *s = cJSON_GetObjectItemCaseSensitive(line, "status");
                delivered += cJSON_IsString(s) && strcmp(s->valuestring, "delivered") == 0;
                ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(line, "attempts")->valueint, 1);
            }
            settled = cJSON_GetArraySize(d) == N_EVENTS && delivered == N_EVENTS;
            cJSON_Delete(d);
            if (!settled)
                usleep(50 * 1000);
        }
        ck_assert_msg(settled, "endpoint %lld: delivery log incomplete", (long long)id);
    }
    cJSON_Delete(l);
    teardown(&f);
}
END_TEST

/* The delivery log keeps lines while their events are in the log. */
START_TEST(test_delivery_log_pruned)
{
    fixture f;
    setup(&f);
    release(&f.tp); /* nothing is held here */
    add_endpoint(&f, f.acme_id, "/ok");
    ck_assert_int_eq(ah_core_publish(f.core, f.acme_id, "event.test.acme", NULL), 0);
    int ok = 0;
    for (int i = 0; i < WAIT_STEPS && ok < 1; i++) {
        usleep(50 * 1000);
        pthread_mutex_lock(&f.tp.mu);
        ok = f.tp.ok_calls;
        pthread_mutex_unlock(&f.tp.mu);
    }
    ck_assert_int_eq(ok, 1);
    cJSON *l = ah_webhook_list(f.core, f.acme_id);
    int64_t id = (int64_t)cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(l, 0),
                                                           "id")->valuedouble;
    cJSON_Delete(l);
    int lines = 0;
    for (int i = 0; i < WAIT_STEPS && lines < 1; i++) {
        cJSON *d = ah_webhook_deliveries(f.core, 0, id, 100);
        lines = cJSON_GetArraySize(d);
        cJSON_Delete(d);
        if (lines < 1)
            usleep(50 * 1000);
    }
    ck_assert_int_eq(lines, 1);
    ah_store *st = f.core->store;
    int64_t n = -1;
    /* Within the retention: kept. */
    ck_assert_int_eq(st->ops->webhook_prune(st, "2000-01-01T00:00:00.000Z", &n), 0);
    ck_assert_int_eq(n, 0);
    /* Delivered before the cutoff: pruned. */
    ck_assert_int_eq(st->ops->webhook_prune(st, "2999-01-01T00:00:00.000Z", &n), 0);
    ck_assert_int_eq(n, 1);
    cJSON *d = ah_webhook_deliveries(f.core, 0, id, 100);
    ck_assert_int_eq(cJSON_GetArraySize(d), 0);
    cJSON_Delete(d);
    teardown(&f);
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("webhook_pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_tarpit_does_not_stall_the_ticker);
    tcase_add_test(tc, test_delivery_log_pruned);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pool_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
