/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bulk jobs shared between tenants (core/api/bulk.c), through the host's
 * REST API, the ERecruit plugin and the ERecruit simulator: two tenants,
 * acme and globex, each with a connection "main" to one simulator and
 * applications stored for its submissions. The worker serves the tenants
 * in turn (the order the simulator was acted on tells), a tenant's items
 * waiting to run are capped (429 rate_limited), finished jobs are pruned
 * after their retention (then 404), and requests waiting for their jobs
 * get their reports built once each.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bulk.h"
#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "sim/erecruit.h"
#include "sim/sim.h"
#include "support/harness.h"

#define KEY_ACME "ahk_acme_bulk_0123456789"
#define KEY_GLOBEX "ahk_globex_bulk_987654321"
#define FIXED_CLOCK ((time_t)1759752000)
/* Submissions the simulator makes (about 15% of them rejected already). */
#define SUBS 400

typedef struct fixture {
    char *dir;
    char *ini;
    ah_core *core;
    ah_sim *sim;
    ah_erecruit_sim *er;
    char base[64];
    int64_t acme, globex;       /* tenant ids */
    int64_t acme_main, gx_main; /* their connections "main" */
    long *subs;                 /* the simulator's submission ids */
    size_t nsubs;
} fixture;

static fixture F;

/* ---- setup ----------------------------------------------------------------- */

static int64_t add_tenant(const char *name, const char *key)
{
    char hash[AH_SHA256_HEX_LEN + 1];
    int64_t id;
    ah_sha256_hex(key, strlen(key), hash);
    ck_assert_int_eq(F.core->store->ops->tenant_add(F.core->store, name, hash, &id), 0);
    return id;
}

static int64_t add_conn(int64_t tenant)
{
    ah_generation *gen = ah_registry_acquire(F.core->registry, "erecruit");
    ck_assert_msg(gen != NULL, "the erecruit plugin is not loaded");
    cJSON *in = cJSON_CreateObject();
    ck_assert_ptr_nonnull(in);
    cJSON_AddStringToObject(in, "base_url", ah_sim_url(F.sim));
    cJSON_AddStringToObject(in, "client_id", "atshub");
    cJSON_AddStringToObject(in, "client_secret", "s3cret");
    char *text = NULL, err[512];
    ck_assert_msg(ah_settings_build(F.core, gen->desc->settings, "erecruit", NULL, in, true,
                                    NULL, &text, err, sizeof err) == 0, "%s", err);
    int64_t cid;
    ck_assert_int_eq(F.core->store->ops->connection_add(F.core->store, tenant, "erecruit",
                                                        "main", text, &cid), 0);
    free(text);
    cJSON_Delete(in);
    ah_generation_release(gen);
    return cid;
}

/* The application of submission `remote` as connection `conn` stores it;
 * its atshub id into out. */
static void put_app(int64_t conn, long remote, char out[64])
{
    char rid[32], raw[128];
    snprintf(rid, sizeof rid, "%ld", remote);
    snprintf(raw, sizeof raw, "{\"id\":%ld}", remote);
    ah_record_in in = {"application", rid, "2025-10-01T00:00:00Z", raw, "{}"};
    char *id = NULL;
    ck_assert_int_eq(F.core->store->ops->records_upsert(F.core->store, conn, &in, 1, NULL, NULL,
                                                        NULL, &id), 0);
    ck_assert_ptr_nonnull(id);
    snprintf(out, 64, "%s", id);
    free(id);
}

/* extra: more of the INI ([core] bulk_... keys), or "". */
static void setup_with(const char *extra)
{
    memset(&F, 0, sizeof F);
    F.dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(F.dir);
    char ini[1024];
    snprintf(ini, sizeof ini, "erecruit = %s/erecruit.so\n%s", ah_t_env("AH_PLUGIN_DIR"), extra);
    F.ini = ah_t_write_ini(F.dir, ini);
    ck_assert_ptr_nonnull(F.ini);
    ah_sim_opts so = {.seed = 7, .no_fault_prefix = "/t/", .threads = 4};
    ah_erecruit_opts eo = {.seed = 11, .positions = 5, .contacts = 20, .submissions = SUBS,
                           .clock_utc = FIXED_CLOCK};
    F.sim = ah_sim_new(&so);
    ck_assert_ptr_nonnull(F.sim);
    F.er = ah_erecruit_sim_attach(F.sim, &eo);
    ck_assert_ptr_nonnull(F.er);
    ck_assert_int_eq(ah_sim_start(F.sim), 0);
    /* The ones not rejected yet: each test rejects its own. */
    long *all = NULL;
    size_t n = ah_erecruit_sim_ids(F.er, "submission", &all);
    ck_assert_int_eq(n, SUBS);
    F.subs = calloc(n, sizeof *F.subs);
    ck_assert_ptr_nonnull(F.subs);
    for (size_t i = 0; i < n; i++) {
        char *text = ah_erecruit_sim_get(F.er, "submission", all[i]);
        cJSON *o = cJSON_Parse(text);
        ck_assert_ptr_nonnull(o);
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "rejected")))
            F.subs[F.nsubs++] = all[i];
        cJSON_Delete(o);
        free(text);
    }
    free(all);
    ck_assert_uint_ge(F.nsubs, 250);

    ah_config cfg;
    char err[1024];
    ck_assert_msg(ah_config_load(F.ini, &cfg, err, sizeof err) == 0, "%s", err);
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    F.core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ck_assert_msg(F.core != NULL, "%s", err);
    ck_assert_msg(ah_daemon_start(F.core, err, sizeof err) == 0, "%s", err);
    snprintf(F.base, sizeof F.base, "http://127.0.0.1:%u",
             (unsigned)ah_httpd_port(F.core->httpd));
    F.acme = add_tenant("acme", KEY_ACME);
    F.globex = add_tenant("globex", KEY_GLOBEX);
    F.acme_main = add_conn(F.acme);
    F.gx_main = add_conn(F.globex);
    ck_assert_int_eq(ah_conns_reload(F.core), 0);
}

static void setup(void)
{
    setup_with("");
}

static void teardown(void)
{
    ah_daemon_close(F.core);
    ah_sim_stop(F.sim);
    ah_erecruit_sim_free(F.er);
    ah_t_rmrf(F.dir);
    free(F.dir);
    free(F.ini);
    free(F.subs);
}

/* ---- helpers --------------------------------------------------------------- */

/* One REST request with `key`; *out (may be NULL) the parsed answer, *head
 * (may be NULL) its header lines. The status. */
static long req(const char *key, const char *method, const char *path, const char *body,
                cJSON **out, char **head)
{
    char url[512], auth[128];
    snprintf(url, sizeof url, "%s%s", F.base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    char *text = NULL;
    long st = ah_t_http_head(method, url, h, body, &text, head);
    if (out != NULL) {
        *out = cJSON_Parse(text);
        ck_assert_msg(*out != NULL, "%s %s -> %ld: not JSON: %s", method, path, st,
                      text ? text : "(none)");
    }
    free(text);
    return st;
}

static const cJSON *jget(const cJSON *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = o;
    for (char *save = NULL, *seg = strtok_r(buf, ".", &save); seg && cur;
         seg = strtok_r(NULL, ".", &save)) {
        char *end;
        long i = strtol(seg, &end, 10);
        cur = *end == '\0' ? cJSON_GetArrayItem(cur, (int)i)
                           : cJSON_GetObjectItemCaseSensitive(cur, seg);
    }
    return cur;
}

static const char *jstr(const cJSON *o, const char *path)
{
    return cJSON_GetStringValue(jget(o, path));
}

static double jnum(const cJSON *o, const char *path)
{
    const cJSON *v = jget(o, path);
    ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", path);
    return v->valuedouble;
}

/* A bulk reject body of the applications of subs[first .. first+n-1] as
 * connection `conn` stores them (malloc'd). */
static char *reject_body(int64_t conn, size_t first, size_t n, int reason)
{
    size_t cap = 64 + n * 72;
    char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    size_t len = (size_t)snprintf(b, cap, "{\"reason_id\":%d,\"application_ids\":[", reason);
    for (size_t i = 0; i < n; i++) {
        char id[64];
        put_app(conn, F.subs[first + i], id);
        len += (size_t)snprintf(b + len, cap - len, "%s\"%s\"", i ? "," : "", id);
    }
    snprintf(b + len, cap - len, "]}");
    return b;
}

/* A bulk reject of ids that no application has (they fail not_found when
 * run, without a provider call): for the cap, where nothing runs. */
static char *bogus_body(size_t n)
{
    size_t cap = 64 + n * 24;
    char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    size_t len = (size_t)snprintf(b, cap, "{\"reason_id\":11,\"application_ids\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(b + len, cap - len, "%s\"nope-%zu\"", i ? "," : "", i);
    snprintf(b + len, cap - len, "]}");
    return b;
}

/* POSTs a bulk reject as `key`, expecting 202; the job's id into id. */
static void post_job(const char *key, const char *body, char id[64])
{
    cJSON *o = NULL;
    ck_assert_int_eq(req(key, "POST", "/v1/applications/bulk-reject", body, &o, NULL), 202);
    ck_assert_ptr_nonnull(jstr(o, "data.id"));
    snprintf(id, 64, "%s", jstr(o, "data.id"));
    cJSON_Delete(o);
}

/* Waits (60 s at most) for job `id` of `tenant` to be done; its report. */
static cJSON *wait_done(int64_t tenant, const char *id)
{
    bool finished = false;
    cJSON *r = ah_bulk_wait(F.core, tenant, id, 60000, &finished);
    ck_assert_msg(r != NULL && finished, "bulk job %s did not finish", id);
    ck_assert_str_eq(jstr(r, "status"), "done");
    return r;
}

/* ---- 1. the worker serves the tenants in turn ------------------------------ */

/* acme queues three jobs of 40 applications (120 provider calls); globex
 * then one of one. Both queued while the worker was stopped, then the
 * worker starts: it serves acme's first item, then globex's (one item per
 * other tenant with work), while before it ran acme's jobs whole, in the
 * order they came, and globex's item only after all 120 (with slow
 * providers: hours). Counted in provider calls, by the order in which the
 * simulator was acted on. */
START_TEST(test_tenants_served_in_turn)
{
    enum { JOBS = 3, PER = 40 };
    ah_bulk_stop(F.core);
    char ajob[JOBS][64], gjob[64];
    for (int j = 0; j < JOBS; j++) {
        char *b = reject_body(F.acme_main, (size_t)j * PER, PER, 11);
        post_job(KEY_ACME, b, ajob[j]);
        free(b);
    }
    char *b = reject_body(F.gx_main, JOBS * PER, 1, 12);
    post_job(KEY_GLOBEX, b, gjob);
    free(b);
    char err[256];
    ck_assert_msg(ah_bulk_start(F.core, err, sizeof err) == 0, "%s", err);

    cJSON *r = wait_done(F.globex, gjob);
    ck_assert_int_eq((int)jnum(r, "succeeded"), 1);
    cJSON_Delete(r);
    for (int j = 0; j < JOBS; j++) {
        r = wait_done(F.acme, ajob[j]);
        ck_assert_int_eq((int)jnum(r, "succeeded"), PER);
        cJSON_Delete(r);
    }
    unsigned long g = ah_erecruit_sim_acted(F.er, F.subs[JOBS * PER]);
    ck_assert_uint_gt(g, 0);
    int before = 0;
    for (size_t i = 0; i < JOBS * PER; i++) {
        unsigned long a = ah_erecruit_sim_acted(F.er, F.subs[i]);
        ck_assert_uint_gt(a, 0);
        if (a < g)
            before++;
    }
    ck_assert_msg(before <= 1, "%d of acme's items ran before globex's first", before);
    /* Each tenant's jobs still ran in the order they came. */
    ck_assert_uint_lt(ah_erecruit_sim_acted(F.er, F.subs[PER - 1]),
                      ah_erecruit_sim_acted(F.er, F.subs[PER]));
    ck_assert_uint_lt(ah_erecruit_sim_acted(F.er, F.subs[2 * PER - 1]),
                      ah_erecruit_sim_acted(F.er, F.subs[2 * PER]));
}
END_TEST

/* ---- 2. a tenant's items waiting to run are capped ------------------------- */

static void setup_cap(void)
{
    setup_with("[core]\nbulk_max_queued_items = 1000\n");
}

/* Expects the create to be refused for the backlog: 429 rate_limited with
 * Retry-After, and nothing stored (the tenant's count is unchanged). */
static void expect_capped(const char *key, int64_t tenant, const char *body)
{
    int64_t before = 0, after = 0;
    ck_assert_int_eq(F.core->store->ops->bulk_queued_count(F.core->store, tenant, &before), 0);
    cJSON *o = NULL;
    char *head = NULL;
    ck_assert_int_eq(req(key, "POST", "/v1/applications/bulk-reject", body, &o, &head), 429);
    ck_assert_str_eq(jstr(o, "error.code"), "rate_limited");
    ck_assert_ptr_nonnull(strstr(jstr(o, "error.message"), "limit of 1000"));
    ck_assert_msg(head != NULL && strcasestr(head, "\nRetry-After: ") != NULL,
                  "no Retry-After: %s", head ? head : "(none)");
    cJSON_Delete(o);
    free(head);
    ck_assert_int_eq(F.core->store->ops->bulk_queued_count(F.core->store, tenant, &after), 0);
    ck_assert_int_eq(after, before);
}

START_TEST(test_queued_items_capped)
{
    ah_bulk_stop(F.core); /* nothing runs: every item stays queued */
    char id[64];
    char *b600 = bogus_body(600), *b400 = bogus_body(400), *b1 = bogus_body(1);
    post_job(KEY_ACME, b600, id);
    expect_capped(KEY_ACME, F.acme, b600); /* 1200 > 1000 */
    /* ?wait=true is refused the same way, before any wait. */
    cJSON *o = NULL;
    ck_assert_int_eq(req(KEY_ACME, "POST", "/v1/applications/bulk-reject?wait=true", b600, &o,
                         NULL), 429);
    ck_assert_str_eq(jstr(o, "error.code"), "rate_limited");
    cJSON_Delete(o);
    /* Another tenant's backlog is its own. */
    char gid[64];
    post_job(KEY_GLOBEX, b600, gid);
    post_job(KEY_ACME, b400, id); /* 1000: at the cap, not past it */
    expect_capped(KEY_ACME, F.acme, b1);
    int64_t q = 0;
    ck_assert_int_eq(F.core->store->ops->bulk_queued_count(F.core->store, F.acme, &q), 0);
    ck_assert_int_eq(q, 1000);
    /* Once the items ran, there is room again. */
    char err[256];
    ck_assert_msg(ah_bulk_start(F.core, err, sizeof err) == 0, "%s", err);
    cJSON *r = wait_done(F.acme, id);
    ck_assert_int_eq((int)jnum(r, "failed"), 400);
    ck_assert_str_eq(jstr(r, "items.0.error.code"), "not_found");
    cJSON_Delete(r);
    ck_assert_int_eq(F.core->store->ops->bulk_queued_count(F.core->store, F.acme, &q), 0);
    ck_assert_int_eq(q, 0);
    post_job(KEY_ACME, b600, id);
    free(b600);
    free(b400);
    free(b1);
}
END_TEST

/* ---- 3. finished jobs are pruned after their retention ---------------------- */

static void setup_retention(void)
{
    setup_with("[core]\nbulk_retention_s = 1\n");
}

static void count_item(void *arg, const ah_bulk_item_row *it)
{
    (void)it;
    (*(int *)arg)++;
}

START_TEST(test_finished_jobs_pruned)
{
    char id[64], path[128];
    char *b = reject_body(F.acme_main, 0, 3, 11);
    post_job(KEY_ACME, b, id);
    free(b);
    cJSON *r = wait_done(F.acme, id);
    ck_assert_int_eq((int)jnum(r, "succeeded"), 3);
    cJSON_Delete(r);
    /* The worker prunes every retention (1 s here): within a minute the
     * job is gone, answered as one that never was. */
    snprintf(path, sizeof path, "/v1/bulk/%s", id);
    cJSON *o = NULL;
    long st = 0;
    for (int i = 0; i < 600; i++) {
        st = req(KEY_ACME, "GET", path, NULL, &o, NULL);
        if (st == 404)
            break;
        ck_assert_int_eq(st, 200);
        cJSON_Delete(o);
        o = NULL;
        usleep(100 * 1000);
    }
    ck_assert_int_eq(st, 404);
    cJSON *u = NULL;
    ck_assert_int_eq(req(KEY_ACME, "GET", "/v1/bulk/bulk_000000000000000000000000", NULL, &u,
                         NULL), 404);
    ck_assert_str_eq(jstr(o, "error.code"), jstr(u, "error.code"));
    cJSON_Delete(o);
    cJSON_Delete(u);
    /* Its items went with it. */
    int n = 0;
    ck_assert_int_eq(F.core->store->ops->bulk_items(F.core->store, id, false, count_item, &n), 0);
    ck_assert_int_eq(n, 0);
}
END_TEST

/* ---- 4. waiting requests: one report each ---------------------------------- */

typedef struct waiter {
    pthread_t th;
    char *body;
    long status;
    cJSON *answer;
} waiter;

static void *wait_main(void *arg)
{
    waiter *w = arg;
    w->status = req(KEY_ACME, "POST", "/v1/applications/bulk-reject?wait=true", w->body,
                    &w->answer, NULL);
    return NULL;
}

/* globex's job of 150 keeps the worker busy while 12 of acme's requests
 * wait for jobs of 5 each, at once. Every one is answered 200 with its
 * job's final report; the waiting requests' thread built 12 reports, one
 * per answer: a look at a job that had not finished read its status alone
 * (it rebuilt every waiting request's report at every wake: each new
 * waiter, each job finished, each worker round). */
START_TEST(test_waiters_report_once)
{
    enum { WAITERS = 12, PER = 5, BACKLOG = 150 };
    char gid[64];
    char *gb = reject_body(F.gx_main, 0, BACKLOG, 12);
    waiter w[WAITERS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < WAITERS; i++)
        w[i].body = reject_body(F.acme_main, BACKLOG + (size_t)i * PER, PER, 11);
    unsigned long reports = ah_bulk_wait_reports(F.core);
    post_job(KEY_GLOBEX, gb, gid);
    for (int i = 0; i < WAITERS; i++)
        ck_assert_int_eq(pthread_create(&w[i].th, NULL, wait_main, &w[i]), 0);
    for (int i = 0; i < WAITERS; i++)
        pthread_join(w[i].th, NULL);
    for (int i = 0; i < WAITERS; i++) {
        ck_assert_int_eq(w[i].status, 200);
        ck_assert_int_eq((int)jnum(w[i].answer, "data.succeeded"), PER);
        ck_assert_int_eq((int)jnum(w[i].answer, "data.failed"), 0);
        ck_assert_int_eq(cJSON_GetArraySize(jget(w[i].answer, "data.results")), PER);
        for (int k = 0; k < PER; k++) {
            char p[32];
            snprintf(p, sizeof p, "data.results.%d.ok", k);
            ck_assert(cJSON_IsTrue(jget(w[i].answer, p)));
            ck_assert_uint_gt(ah_erecruit_sim_acted(F.er, F.subs[BACKLOG + (size_t)i * PER +
                                                                (size_t)k]), 0);
        }
        cJSON_Delete(w[i].answer);
        free(w[i].body);
    }
    ck_assert_uint_eq(ah_bulk_wait_reports(F.core) - reports, WAITERS);
    cJSON *r = wait_done(F.globex, gid);
    ck_assert_int_eq((int)jnum(r, "succeeded"), BACKLOG);
    cJSON_Delete(r);
    free(gb);
}
END_TEST

static Suite *bulk_suite(void)
{
    Suite *s = suite_create("bulk");
    TCase *tc = tcase_create("bulk");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_tenants_served_in_turn);
    tcase_add_test(tc, test_waiters_report_once);
    suite_add_tcase(s, tc);
    TCase *cap = tcase_create("cap");
    tcase_add_checked_fixture(cap, setup_cap, teardown);
    tcase_set_timeout(cap, 120);
    tcase_add_test(cap, test_queued_items_capped);
    suite_add_tcase(s, cap);
    TCase *ret = tcase_create("retention");
    tcase_add_checked_fixture(ret, setup_retention, teardown);
    tcase_set_timeout(ret, 120);
    tcase_add_test(ret, test_finished_jobs_pruned);
    suite_add_tcase(s, ret);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(bulk_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
