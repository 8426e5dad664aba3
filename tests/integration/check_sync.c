/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sync engine end to end: the streamer fixture plugin against a test
 * provider served by the simulator framework (keyset paging, provider-local
 * times, updated_after, seeded faults), in process and through the real
 * `atshub sync` binary (crash and resume).
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "rest.h"
#include "ops.h"
#include "sync.h"
#include "tracking.h"
#include "events.h"
#include "sim/sim.h"
#include "support/harness.h"

/* ------------------------------------------------------------------------ */
/* The test provider                                                         */
/* ------------------------------------------------------------------------ */

typedef struct item {
    long id;
    time_t ts; /* provider-local wall clock, written without an offset */
    int version;
} item;

typedef struct list {
    item *v;
    size_t n;
} list;

typedef struct prov {
    pthread_mutex_t mu;
    list items;  /* /items (jobs), kept sorted by (ts, id) */
    list people; /* /people (candidates) */
    int delay_ms;
    int status; /* 0: normal; else every list answers this status */
    /* Pages from the third on point back to the second (a cursor cycle,
     * as a buggy provider or plugin may give). */
    bool cycle;
    /* The updated_after of every /items request, in arrival order ("" when
     * absent): shows where a run started. */
    char ua_log[256][32];
    int n_ua;
} prov;

#define BASE_TS 1759276800L /* 2025-10-01T00:00:00 */

static void fmt_ts(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
}

static int cmp_item(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

static void list_fill(list *l, size_t n)
{
    l->v = calloc(n ? n : 1, sizeof(item));
    ck_assert_ptr_nonnull(l->v);
    l->n = n;
    for (size_t i = 0; i < n; i++)
        l->v[i] = (item){(long)i + 1, BASE_TS + (time_t)i * 60, 1};
}

static void bad_request(ah_sim_resp *resp, const char *why)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "error", "bad_request");
    cJSON_AddStringToObject(e, "message", why);
    ah_sim_json(resp, 400, e);
}

static void serve_list(prov *p, list *l, const ah_sim_req *req, ah_sim_resp *resp)
{
    const char *pp = ah_sim_query(req, "per_page");
    const char *cur = ah_sim_query(req, "cursor");
    const char *ua = ah_sim_query(req, "updated_after");
    if (l == &p->items) {
        pthread_mutex_lock(&p->mu);
        if (p->n_ua < 256)
            snprintf(p->ua_log[p->n_ua++], sizeof p->ua_log[0], "%s", ua != NULL ? ua : "");
        pthread_mutex_unlock(&p->mu);
    }
    long per_page = pp != NULL ? strtol(pp, NULL, 10) : 100;
    if (per_page < 1 || per_page > 1000)
        return bad_request(resp, "per_page");
    long cts = 0, cid = 0;
    if (cur != NULL && sscanf(cur, "%ld:%ld", &cts, &cid) != 2)
        return bad_request(resp, "cursor");
    time_t after = 0;
    if (ua != NULL) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(ua, "%Y-%m-%dT%H:%M:%S", &tm);
        if (end == NULL || *end != '\0')
            return bad_request(resp, "updated_after");
        after = timegm(&tm);
    }
    pthread_mutex_lock(&p->mu);
    int delay = p->delay_ms;
    pthread_mutex_unlock(&p->mu);
    if (delay > 0)
        usleep((useconds_t)delay * 1000);
    pthread_mutex_lock(&p->mu);
    if (p->status != 0) {
        int st = p->status;
        pthread_mutex_unlock(&p->mu);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "error", "refused");
        ah_sim_json(resp, st, e);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    size_t i = 0;
    while (i < l->n && ((ua != NULL && l->v[i].ts <= after) ||
                        (cur != NULL && (l->v[i].ts < cts || (l->v[i].ts == cts && l->v[i].id <= cid)))))
        i++;
    long taken = 0;
    const item *last = NULL;
    for (; i < l->n && taken < per_page; i++, taken++) {
        const item *it = &l->v[i];
        char ts[32], title[64];
        fmt_ts(it->ts, ts);
        snprintf(title, sizeof title, "Item %ld v%d", it->id, it->version);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)it->id);
        cJSON_AddStringToObject(o, "title", title);
        cJSON_AddStringToObject(o, "updated_at", ts);
        cJSON_AddItemToArray(data, o);
        last = it;
    }
    if (i < l->n && last != NULL) {
        char next[64], second[64] = "";
        snprintf(next, sizeof next, "%ld:%ld", (long)last->ts, last->id);
        if (p->cycle && (size_t)per_page <= l->n) {
            const item *f = &l->v[per_page - 1];
            snprintf(second, sizeof second, "%ld:%ld", (long)f->ts, f->id);
        }
        if (second[0] != '\0' && cur != NULL && strcmp(cur, second) != 0)
            snprintf(next, sizeof next, "%s", second);
        cJSON_AddStringToObject(root, "next_cursor", next);
    } else {
        cJSON_AddNullToObject(root, "next_cursor");
    }
    pthread_mutex_unlock(&p->mu);
    ah_sim_json(resp, 200, root);
}

static void on_items(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    prov *p = arg;
    serve_list(p, &p->items, req, resp);
}

static void on_people(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    prov *p = arg;
    serve_list(p, &p->people, req, resp);
}

/* Gives item `id` a new version stamped `ts`. */
static void prov_touch(prov *p, long id, time_t ts)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->items.n; i++)
        if (p->items.v[i].id == id) {
            p->items.v[i].ts = ts;
            p->items.v[i].version++;
        }
    qsort(p->items.v, p->items.n, sizeof(item), cmp_item);
    pthread_mutex_unlock(&p->mu);
}

static void prov_set(prov *p, int *field, int v)
{
    pthread_mutex_lock(&p->mu);
    *field = v;
    pthread_mutex_unlock(&p->mu);
}

static void prov_set_cycle(prov *p, bool on)
{
    pthread_mutex_lock(&p->mu);
    p->cycle = on;
    pthread_mutex_unlock(&p->mu);
}

static time_t prov_newest(prov *p)
{
    pthread_mutex_lock(&p->mu);
    time_t t = p->items.n ? p->items.v[p->items.n - 1].ts : 0;
    pthread_mutex_unlock(&p->mu);
    return t;
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct fixture {
    char *dir;
    char *ini;
    ah_core *core;
    ah_sim *sim;
    prov p;
    int64_t tenant_id;
} fixture;

static void sim_up(fixture *f, size_t nitems, size_t npeople, const ah_sim_opts *o)
{
    memset(&f->p, 0, sizeof f->p);
    pthread_mutex_init(&f->p.mu, NULL);
    list_fill(&f->p.items, nitems);
    list_fill(&f->p.people, npeople);
    ah_sim_opts def = {.seed = 1};
    f->sim = ah_sim_new(o != NULL ? o : &def);
    ck_assert_ptr_nonnull(f->sim);
    ck_assert_int_eq(ah_sim_route(f->sim, "GET", "/items", on_items, &f->p), 0);
    ck_assert_int_eq(ah_sim_route(f->sim, "GET", "/people", on_people, &f->p), 0);
    ck_assert_int_eq(ah_sim_start(f->sim), 0);
}

static ah_core *core_open(fixture *f)
{
    ah_config cfg;
    char err[1024];
    ck_assert_msg(ah_config_load(f->ini, &cfg, err, sizeof err) == 0, "%s", err);
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    ah_core *core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ck_assert_msg(core != NULL, "%s", err);
    return core;
}

static int64_t add_conn(fixture *f, const char *name, const char *base_url, const char *per_page)
{
    ah_generation *gen = ah_registry_acquire(f->core->registry, "streamer");
    ck_assert_ptr_nonnull(gen);
    cJSON *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "base_url", base_url);
    cJSON_AddStringToObject(in, "per_page", per_page);
    char *text = NULL, err[512];
    ck_assert_msg(ah_settings_build(f->core, gen->desc->settings, "streamer", NULL, in, true, NULL,
                                    &text, err, sizeof err) == 0, "%s", err);
    int64_t cid;
    ck_assert_int_eq(f->core->store->ops->connection_add(f->core->store, f->tenant_id, "streamer",
                                                         name, text, &cid), 0);
    free(text);
    cJSON_Delete(in);
    ah_generation_release(gen);
    ck_assert_int_eq(ah_conns_reload(f->core), 0);
    return cid;
}

/* Provider with nitems jobs and npeople candidates, a core, tenant "acme"
 * and connection "main" (per_page records a page). */
static int64_t setup_ini(fixture *f, size_t nitems, size_t npeople, const char *per_page,
                         const ah_sim_opts *o, const char *sections)
{
    memset(f, 0, sizeof *f);
    f->dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(f->dir);
    char extra[1024];
    snprintf(extra, sizeof extra, "streamer = %s/streamer.so\n%s", ah_t_env("AH_FIXTURE_DIR"),
             sections);
    f->ini = ah_t_write_ini(f->dir, extra);
    ck_assert_ptr_nonnull(f->ini);
    sim_up(f, nitems, npeople, o);
    f->core = core_open(f);
    ck_assert_int_eq(f->core->store->ops->tenant_add(f->core->store, "acme", "00", &f->tenant_id), 0);
    return add_conn(f, "main", ah_sim_url(f->sim), per_page);
}

static int64_t setup(fixture *f, size_t nitems, size_t npeople, const char *per_page,
                     const ah_sim_opts *o)
{
    return setup_ini(f, nitems, npeople, per_page, o, "");
}

static void teardown(fixture *f)
{
    ah_daemon_close(f->core);
    if (f->sim != NULL)
        ah_sim_stop(f->sim);
    free(f->p.items.v);
    free(f->p.people.v);
    pthread_mutex_destroy(&f->p.mu);
    ah_t_rmrf(f->dir);
    free(f->dir);
    free(f->ini);
}

typedef struct ev_count {
    long created, updated;
} ev_count;

static void count_ev(void *arg, const ah_outbox_row *row)
{
    ev_count *c = arg;
    if (strcmp(row->topic, "event.job.created") == 0)
        c->created++;
    else if (strcmp(row->topic, "event.job.updated") == 0)
        c->updated++;
}

static ev_count events(ah_core *core)
{
    ah_bus_drain(core->bus);
    ev_count c = {0, 0};
    ck_assert_int_eq(core->store->ops->outbox_pending(core->store, 1000000, count_ev, &c), 0);
    return c;
}

static cJSON *cursor_of(ah_core *core, int64_t cid, const char *key)
{
    char *text = NULL;
    ck_assert_int_eq(core->store->ops->cursor_get(core->store, cid, key, &text), 0);
    if (text == NULL)
        return NULL;
    cJSON *o = cJSON_Parse(text);
    free(text);
    ck_assert_ptr_nonnull(o);
    return o;
}

static int sync_jobs(fixture *f, ah_sync_stats *st, char *err, size_t errlen)
{
    return ah_sync_run(f->core, "acme", "main", "jobs", NULL, NULL, st, err, errlen);
}

/* ------------------------------------------------------------------------ */
/* Provider times                                                            */
/* ------------------------------------------------------------------------ */

START_TEST(test_provider_times)
{
    char out[64];
    int cmp = 9;
    ck_assert_int_eq(ah_sync_time_minus_hours("2025-10-06T16:30:00", 2, out, sizeof out), 0);
    ck_assert_str_eq(out, "2025-10-06T14:30:00");
    ck_assert_int_eq(ah_sync_time_minus_hours("2025-10-01T01:00:00.250Z", 2, out, sizeof out), 0);
    ck_assert_str_eq(out, "2025-09-30T23:00:00.250Z");
    ck_assert_int_eq(ah_sync_time_minus_hours("2024-03-01 01:00:00+03:00", 2, out, sizeof out), 0);
    ck_assert_str_eq(out, "2024-02-29 23:00:00+03:00");
    /* Years below 1000 keep four digits (found by tests/fuzz/fuzz_times). */
    ck_assert_int_eq(ah_sync_time_minus_hours("0242-03-01T23:53:59+14:00", 48, out, sizeof out), 0);
    ck_assert_str_eq(out, "0242-02-27T23:53:59+14:00");
    ck_assert_int_eq(ah_sync_time_minus_hours("0000-01-01T00:00:00", 1, out, sizeof out), -1);
    ck_assert_int_eq(ah_sync_time_minus_hours("2025-10-06", 2, out, sizeof out), -1);
    ck_assert_int_eq(ah_sync_time_minus_hours("2025-13-06T00:00:00", 2, out, sizeof out), -1);
    ck_assert_int_eq(ah_sync_time_minus_hours("2025-10-06T00:00:00+3", 2, out, sizeof out), -1);
    ck_assert_int_eq(ah_sync_time_minus_hours("2025-10-06T00:00:00", 2, out, 10), -1);

    ck_assert_int_eq(ah_sync_time_cmp("2025-10-06T16:30:00", "2025-10-06T16:30:01", &cmp), 0);
    ck_assert_int_lt(cmp, 0);
    ck_assert_int_eq(ah_sync_time_cmp("2025-10-06T16:30:00.5", "2025-10-06T16:30:00.25", &cmp), 0);
    ck_assert_int_gt(cmp, 0);
    /* Same instant written in two zones. */
    ck_assert_int_eq(ah_sync_time_cmp("2025-10-06T16:30:00+03:00", "2025-10-06T13:30:00Z", &cmp), 0);
    ck_assert_int_eq(cmp, 0);
    ck_assert_int_eq(ah_sync_time_cmp("yesterday", "2025-10-06T13:30:00Z", &cmp), -1);
    ck_assert_int_eq(ah_sync_time_cmp(NULL, "2025-10-06T13:30:00Z", &cmp), -1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Full, incremental and backfill                                            */
/* ------------------------------------------------------------------------ */

START_TEST(test_full_then_incremental)
{
    fixture f;
    const size_t n = 2000;
    int64_t cid = setup(&f, n, 0, "100", NULL);
    ah_sync_stats st;
    char err[1024];
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(st.pages, 20);
    ck_assert_int_eq(st.records, (long)n);
    ck_assert_int_eq(st.created, (long)n);
    ck_assert_int_eq(st.updated, 0);
    ck_assert_int_eq(st.retries, 0);
    ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), (int64_t)n);
    ev_count ev = events(f.core);
    ck_assert_int_eq(ev.created, (long)n);
    ck_assert_int_eq(ev.updated, 0);

    /* The cursor: the newest provider time minus 2 hours, in the
     * provider's own style; no page in progress. */
    char newest[32], want[32];
    fmt_ts(prov_newest(&f.p), newest);
    fmt_ts(prov_newest(&f.p) - 2 * 3600, want);
    cJSON *c = cursor_of(f.core, cid, "sync.jobs");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(cJSON_GetObjectItem(c, "updated_after")->valuestring, want);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(c, "page_cursor")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(c, "run_max")));
    cJSON_Delete(c);

    /* Nothing changed: the backfill window is read again, nothing stored,
     * no event. */
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(st.created, 0);
    ck_assert_int_eq(st.updated, 0);
    ck_assert_int_eq(st.unchanged, 120); /* one item a minute, 2 hours */
    ev = events(f.core);
    ck_assert_int_eq(ev.created, (long)n);
    ck_assert_int_eq(ev.updated, 0);

    /* A record stamped 1 hour before the newest one (a writer whose clock
     * is behind): inside the window, picked up. */
    time_t top = prov_newest(&f.p);
    prov_touch(&f.p, 5, top - 3600);
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(st.created, 0);
    ck_assert_int_eq(st.updated, 1);
    ev = events(f.core);
    ck_assert_int_eq(ev.updated, 1);
    ah_record_row row;
    ck_assert_int_eq(f.core->store->ops->record_get(f.core->store, cid, "job", "5", &row), 0);
    ck_assert_ptr_nonnull(strstr(row.raw, "Item 5 v2"));
    ah_record_row_free(&row);

    /* 3 hours before: outside the window, not read again (the window's
     * documented limit). */
    prov_touch(&f.p, 6, top - 3 * 3600);
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(st.updated, 0);
    ck_assert_int_eq(f.core->store->ops->record_get(f.core->store, cid, "job", "6", &row), 0);
    ck_assert_ptr_nonnull(strstr(row.raw, "Item 6 v1"));
    ah_record_row_free(&row);
    ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), (int64_t)n);
    teardown(&f);
}
END_TEST

/* A record stamped far ahead of any clock (a provider's "never" sentinel)
 * is stored, but does not move where the next sync starts: before, the
 * window jumped to it and every later change was skipped for good. */
START_TEST(test_future_time_does_not_move_window)
{
    fixture f;
    int64_t cid = setup(&f, 200, 0, "100", NULL);
    ah_sync_stats st;
    char err[1024];
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    time_t top = prov_newest(&f.p);
    prov_touch(&f.p, 7, time(NULL) + 50L * 365 * 86400);
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(st.updated, 1);
    char want[32];
    fmt_ts(top - 2 * 3600, want);
    cJSON *c = cursor_of(f.core, cid, "sync.jobs");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(cJSON_GetObjectItem(c, "updated_after")->valuestring, want);
    cJSON_Delete(c);
    /* A later change inside the window is still picked up. */
    prov_touch(&f.p, 8, top - 1800);
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(st.updated, 1);
    ah_record_row row;
    ck_assert_int_eq(f.core->store->ops->record_get(f.core->store, cid, "job", "8", &row), 0);
    ck_assert_ptr_nonnull(strstr(row.raw, "Item 8 v2"));
    ah_record_row_free(&row);
    /* A cursor saved far ahead (by a build before this check) is dropped:
     * the run reads the whole list, and a change outside any window is
     * picked up. */
    ck_assert_int_eq(f.core->store->ops->cursor_set(
                         f.core->store, cid, "sync.jobs",
                         "{\"updated_after\":\"2090-01-01T00:00:00\",\"page_cursor\":null,"
                         "\"run_max\":null}"),
                     0);
    prov_touch(&f.p, 9, top - 5 * 3600);
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(st.records, 200);
    ck_assert_int_eq(f.core->store->ops->record_get(f.core->store, cid, "job", "9", &row), 0);
    ck_assert_ptr_nonnull(strstr(row.raw, "Item 9 v2"));
    ah_record_row_free(&row);
    /* With a page cursor beside it: that cursor was made for the window's
     * listing, not the whole one, and goes too (kept, it skipped every
     * record here: it points past the last). */
    ck_assert_int_eq(f.core->store->ops->cursor_set(
                         f.core->store, cid, "sync.jobs",
                         "{\"updated_after\":\"2090-01-01T00:00:00\","
                         "\"page_cursor\":\"4102444800:1000000\",\"run_max\":null}"),
                     0);
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(st.records, 200);
    teardown(&f);
}
END_TEST

/* Every type the plugin streams (type NULL), and the errors for types it
 * does not stream or that do not exist. */
START_TEST(test_all_types_and_bad_requests)
{
    fixture f;
    int64_t cid = setup(&f, 150, 30, "50", NULL);
    ah_sync_stats st;
    char err[1024];
    ck_assert_msg(ah_sync_run(f.core, "acme", "main", NULL, NULL, NULL, &st, err, sizeof err) ==
                  AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(st.created, 180);
    ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), 150);
    ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "candidate"), 30);
    cJSON *c = cursor_of(f.core, cid, "sync.candidates");
    ck_assert_ptr_nonnull(c);
    cJSON_Delete(c);

    ck_assert_int_eq(ah_sync_run(f.core, "acme", "main", "applications", NULL, NULL, &st, err,
                                 sizeof err), AH_SYNC_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "does not stream applications"));
    ck_assert_int_eq(ah_sync_run(f.core, "acme", "main", "widgets", NULL, NULL, &st, err,
                                 sizeof err), AH_SYNC_INVALID);
    ck_assert_int_eq(ah_sync_run(f.core, "acme", "nope", "jobs", NULL, NULL, &st, err, sizeof err),
                     AH_SYNC_NOT_FOUND);
    ck_assert_str_eq(ah_sync_code(AH_SYNC_NOT_FOUND), "not_found");
    ck_assert_str_eq(ah_sync_code(AH_SYNC_RUNNING), "sync_running");
    teardown(&f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Faults                                                                    */
/* ------------------------------------------------------------------------ */

START_TEST(test_faults_lose_nothing)
{
    fixture f;
    const size_t n = 20000;
    ah_sim_opts o = {
        .seed = 42,
        .p_429 = 0.02,
        .retry_after_s = 1,
        .p_5xx = 0.03,
        .p_drop = 0.02,
        .p_slow = 0.02,
        .slow_ms = 50,
        .p_truncate = 0.03,
        .threads = 2,
    };
    int64_t cid = setup(&f, n, 0, "200", &o);
    ah_sync_stats st;
    char err[1024];
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), (int64_t)n);
    ck_assert_int_eq(st.created, (long)n);
    ah_sim_stats ss;
    ah_sim_get_stats(f.sim, &ss);
    ck_assert_uint_gt(ss.f429 + ss.f5xx + ss.fdrop + ss.ftrunc, 0);
    /* A truncated page reaches the plugin as a parse failure: the engine
     * asks for that page again. */
    if (ss.ftrunc > 0)
        ck_assert_int_gt(st.retries, 0);
    ev_count ev = events(f.core);
    ck_assert_int_eq(ev.created, (long)n);
    teardown(&f);
}
END_TEST

/* The plugin's process crashes in the middle of a run (issue 15): the page
 * it was serving is asked again once the process is back, and the run ends
 * with every record, once. */
START_TEST(test_plugin_crash_mid_run_retried)
{
    fixture f;
    const size_t n = 1000;
    ah_sim_opts o = {.seed = 7};
    char *dir = ah_t_tmpdir(), *marker = NULL;
    ck_assert_int_ge(asprintf(&marker, "%s/crash-once", dir), 0);
    ck_assert_int_eq(ah_t_write_file(marker, "x"), 0);
    /* Inherited by the plugin's process, started by setup. */
    ck_assert_int_eq(setenv("AH_STREAMER_CRASH_FILE", marker, 1), 0);
    int64_t cid = setup_ini(&f, n, 0, "100", &o,
                            "[plugin.streamer]\nisolation = process\nrestart_backoff_ms = 10\n"
                            "env = AH_STREAMER_CRASH_FILE\n");
    ah_sync_stats st;
    char err[1024];
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(access(marker, F_OK), -1); /* it did crash */
    ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), (int64_t)n);
    ck_assert_int_eq(st.created, (long)n);
    ck_assert_int_ge(st.retries, 1);
    ev_count ev = events(f.core);
    ck_assert_int_eq(ev.created, (long)n);
    ck_assert_int_eq(ev.updated, 0);
    cJSON *pl = ah_core_plugins_json(f.core, "streamer");
    const cJSON *proc = cJSON_GetObjectItem(cJSON_GetArrayItem(pl, 0), "process");
    ck_assert_int_eq(cJSON_GetObjectItem(proc, "crashes")->valueint, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(proc, "last_crash"), "signal")
                         ->valuestring,
                     "SIGSEGV");
    cJSON_Delete(pl);
    unsetenv("AH_STREAMER_CRASH_FILE");
    teardown(&f);
    ah_t_rmrf(dir);
    free(dir);
    free(marker);
}
END_TEST

/* A streamer run in `mode` (n records) while the file `name`, in a folder
 * of its own, exists and the environment variable `var` names it (passed
 * on to the plugin's process by its section's env). */
typedef struct marked {
    char *dir, *marker;
    const char *var;
} marked;

static int64_t setup_marked(fixture *f, marked *m, const char *mode, int n, const char *var,
                            const char *name)
{
    char sections[256];
    m->dir = ah_t_tmpdir();
    m->var = var;
    ck_assert_int_ge(asprintf(&m->marker, "%s/%s", m->dir, name), 0);
    ck_assert_int_eq(ah_t_write_file(m->marker, "x"), 0);
    ck_assert_int_eq(setenv(var, m->marker, 1), 0);
    snprintf(sections, sizeof sections, "[plugin.streamer]\nisolation = %s\nenv = %s\n", mode,
             var);
    return setup_ini(f, n, 0, "100", NULL, sections);
}

static void teardown_marked(fixture *f, marked *m)
{
    unsetenv(m->var);
    teardown(f);
    ah_t_rmrf(m->dir);
    free(m->dir);
    free(m->marker);
}

/* A record the host refuses fails its page, whether the plugin runs in
 * process (the emit fails at once) or isolated (records go to the daemon in
 * batches: the refusal comes with a later batch, and fails the call even
 * though the plugin answered it as done). Nothing of the page is stored. */
START_TEST(test_refused_record_fails_page)
{
    static const char *const modes[] = {"in_process", "process"};
    for (int i = 0; i < 2; i++) {
        fixture f;
        marked m;
        int64_t cid = setup_marked(&f, &m, modes[i], 300, "AH_STREAMER_BAD_RAW_FILE", "bad-raw");
        ah_sync_stats st;
        char err[1024];
        ck_assert_int_eq(sync_jobs(&f, &st, err, sizeof err), AH_SYNC_FAILED);
        ck_assert_msg(strstr(err, "not one JSON value") != NULL, "%s: %s", modes[i], err);
        ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), 0);
        /* Without the bad record the same run stores every record. */
        ck_assert_int_eq(unlink(m.marker), 0);
        ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s: %s", modes[i], err);
        ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), 300);
        teardown_marked(&f, &m);
    }
}
END_TEST

/* What one streaming call may hand the daemon is bounded: a plugin that
 * emits records without end (here until refused, at most 200,000), or one
 * record of 17 MiB, fails its page with plugin_error, in process and
 * isolated alike; nothing of the page is stored. (Before, every record was
 * held in the daemon until the page committed: a runaway plugin filled the
 * daemon's memory for every tenant.) */
START_TEST(test_emitted_page_bounded)
{
    static const char *const modes[] = {"in_process", "process"};
    static const char *const markers[][2] = {{"AH_STREAMER_FLOOD_FILE", "100000 records"},
                                             {"AH_STREAMER_BIG_FILE", "16 MiB"}};
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 2; k++) {
            fixture f;
            marked m;
            int64_t cid = setup_marked(&f, &m, modes[i], 300, markers[k][0], "x");
            ah_sync_stats st;
            char err[1024];
            ck_assert_int_eq(sync_jobs(&f, &st, err, sizeof err), AH_SYNC_FAILED);
            ck_assert_msg(strstr(err, markers[k][1]) != NULL, "%s: %s", modes[i], err);
            ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), 0);
            teardown_marked(&f, &m);
        }
    }
}
END_TEST

/* A stream whose cursors go round (page 3 points back to page 2) ran for
 * good: every page committed, its lease renewed, the scheduler's other
 * connections waiting behind it. A cursor given before in the same run
 * fails it. */
START_TEST(test_cursor_cycle_fails_run)
{
    fixture f;
    int64_t cid = setup(&f, 500, 0, "100", NULL);
    prov_set_cycle(&f.p, true);
    ah_sync_stats st;
    char err[1024];
    ck_assert_int_eq(sync_jobs(&f, &st, err, sizeof err), AH_SYNC_FAILED);
    ck_assert_msg(strstr(err, "gave before in this run") != NULL, "%s", err);
    /* Two pages committed; the third, whose next cursor is the second's
     * again, refused (its records come with the next run). */
    ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), 200);
    prov_set_cycle(&f.p, false);
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), 500);
    teardown(&f);
}
END_TEST

/* A plugin may not store records of the host's own type write_outcome (the
 * answers of writes kept for settling): one that did could make the host
 * replay a forged answer for an operation. Refused, in process and
 * isolated: the page fails and nothing of it is stored. */
START_TEST(test_reserved_record_type_refused)
{
    static const char *const modes[] = {"in_process", "process"};
    for (int i = 0; i < 2; i++) {
        fixture f;
        marked m;
        int64_t cid = setup_marked(&f, &m, modes[i], 50, "AH_STREAMER_FORGE_FILE", "forge");
        ah_sync_stats st;
        char err[1024];
        ck_assert_int_eq(sync_jobs(&f, &st, err, sizeof err), AH_SYNC_FAILED);
        ck_assert_msg(strstr(err, "is the host's own") != NULL, "%s: %s", modes[i], err);
        ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), 0);
        ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "write_outcome"),
                         0);
        teardown_marked(&f, &m);
    }
}
END_TEST

/* A record whose text holds a byte that is no UTF-8 (a provider's page
 * passed on as it came) is stored with U+FFFD in its place, in process and
 * isolated: PostgreSQL refused the byte, and with it the page, on every
 * run (the sync stuck there); SQLite stored it as it came. */
START_TEST(test_record_text_not_utf8_repaired)
{
    static const char *const modes[] = {"in_process", "process"};
    for (int i = 0; i < 2; i++) {
        fixture f;
        marked m;
        int64_t cid = setup_marked(&f, &m, modes[i], 150, "AH_STREAMER_LATIN1_FILE", "latin1");
        ah_sync_stats st;
        char err[1024];
        ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s: %s", modes[i], err);
        ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), 151);
        ah_record_row row;
        ck_assert_int_eq(f.core->store->ops->record_get(f.core->store, cid, "job", "latin1", &row),
                         0);
        ck_assert_msg(strstr(row.raw, "Ing\xef\xbf\xbdnieur") != NULL, "%s: %s", modes[i], row.raw);
        ck_assert_msg(strstr(row.fields, "Ing\xef\xbf\xbdnieur") != NULL, "%s: %s", modes[i],
                      row.fields);
        ah_record_row_free(&row);
        teardown_marked(&f, &m);
    }
}
END_TEST

START_TEST(test_non_retryable_error_keeps_cursor)
{
    fixture f;
    int64_t cid = setup(&f, 300, 0, "100", NULL);
    ah_sync_stats st;
    char err[1024];
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    cJSON *before = cursor_of(f.core, cid, "sync.jobs");
    prov_set(&f.p, &f.p.status, 401);
    ck_assert_int_eq(sync_jobs(&f, &st, err, sizeof err), AH_SYNC_FAILED);
    ck_assert_ptr_nonnull(strstr(err, "jobs: auth_failed"));
    ck_assert_ptr_nonnull(strstr(err, "cursor was kept"));
    ck_assert_int_eq(st.retries, 0);
    cJSON *after = cursor_of(f.core, cid, "sync.jobs");
    ck_assert(cJSON_Compare(before, after, true));
    cJSON_Delete(before);
    cJSON_Delete(after);
    teardown(&f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A run's pages do not wait for the WAL's sync; the run ends durable        */
/* ------------------------------------------------------------------------ */

typedef struct durable_ctx {
    fixture *f;
    atomic_long pages;
    atomic_bool returned;
    int rc;
    ah_sync_stats st;
    char err[1024];
} durable_ctx;

static void count_pages(void *arg, const char *type, const ah_sync_stats *s)
{
    (void)type;
    durable_ctx *x = arg;
    if (s->done)
        return;
    /* From the first page on, syncs are held. */
    if (s->pages == 1)
        ck_assert_int_eq(ah_store_sqlite_sync_hold(x->f->core->store, true), AH_STORE_OK);
    atomic_store(&x->pages, s->pages);
}

static void *run_jobs_thread(void *arg)
{
    durable_ctx *x = arg;
    x->rc = ah_sync_run(x->f->core, "acme", "main", "jobs", count_pages, x, &x->st, x->err,
                        sizeof x->err);
    atomic_store(&x->returned, true);
    return NULL;
}

START_TEST(test_run_ends_durable)
{
    fixture f;
    setup(&f, 500, 200, "100", NULL);
    ah_store *s = f.core->store;
    ah_store_sqlite_sync ss;
    if (ah_store_sqlite_sync_stats(s, &ss) != AH_STORE_OK) {
        teardown(&f); /* PostgreSQL: a commit is durable when it returns */
        return;
    }
    /* Syncs held after the first page: the four others commit all the
     * same (were a page to wait for its sync, the run would stop at the
     * second); the run does not return before its pages are synced. */
    durable_ctx x = {.f = &f};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, run_jobs_thread, &x), 0);
    for (int i = 0; i < 30000; i++) {
        ck_assert_int_eq(ah_store_sqlite_sync_stats(s, &ss), AH_STORE_OK);
        if (atomic_load(&x.pages) == 5 && ss.waiting >= 1)
            break;
        usleep(1000);
    }
    ck_assert_int_eq(atomic_load(&x.pages), 5);
    ck_assert_uint_ge(ss.waiting, 1);
    ck_assert(!atomic_load(&x.returned));
    uint64_t pages_written = ss.written; /* the five pages are in the WAL */
    ck_assert_uint_lt(ss.synced, pages_written);
    ck_assert_int_eq(ah_store_sqlite_sync_hold(s, false), AH_STORE_OK);
    pthread_join(th, NULL);
    ck_assert_msg(x.rc == AH_SYNC_OK, "%s", x.err);
    ck_assert_int_eq(x.st.records, 500);
    ck_assert_int_eq(ah_store_sqlite_sync_stats(s, &ss), AH_STORE_OK);
    ck_assert_uint_ge(ss.synced, pages_written); /* the run returned after their sync */
    teardown(&f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Store failure mid-run, one run at a time                                  */
/* ------------------------------------------------------------------------ */

typedef struct fail_ctx {
    fixture *f;
    int64_t cid;
    char *cursor_after_2; /* cursor text after page 2 */
    int nested_rc;
    void (*on_third)(ah_store *s); /* makes page 3's store fail */
} fail_ctx;

static void fail_on_third(void *arg, const char *type, const ah_sync_stats *s)
{
    fail_ctx *x = arg;
    if (s->done || s->pages != 2)
        return;
    ck_assert_int_eq(x->f->core->store->ops->cursor_get(x->f->core->store, x->cid, "sync.jobs",
                                                        &x->cursor_after_2), 0);
    x->on_third(x->f->core->store);
}

/* Page 3 fails half way through its records. */
static void fail_half_way(ah_store *s)
{
    ah_store_sqlite_fail_after(s, 50);
    ah_store_pg_fail_after(s, 50);
}

/* A run of 500 records, 100 a page, whose page 3 fails as on_third makes
 * it: the run fails there with store_error, 200 records and their events
 * stored, the cursor after page 2; the next run goes on from there,
 * nothing twice. */
static void third_page_fails(void (*on_third)(ah_store *s))
{
    fixture f;
    const size_t n = 500;
    int64_t cid = setup(&f, n, 0, "100", NULL);
    fail_ctx x = {&f, cid, NULL, 0, on_third};
    ah_sync_stats st;
    char err[1024];
    ck_assert_int_eq(ah_sync_run(f.core, "acme", "main", "jobs", fail_on_third, &x, &st, err,
                                 sizeof err), AH_SYNC_FAILED);
    ck_assert_msg(strstr(err, "store_error") != NULL, "%s", err);
    ck_assert_int_eq(st.pages, 2);
    ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), 200);
    char *now = NULL;
    ck_assert_int_eq(f.core->store->ops->cursor_get(f.core->store, cid, "sync.jobs", &now), 0);
    ck_assert_ptr_nonnull(x.cursor_after_2);
    ck_assert_str_eq(now, x.cursor_after_2);
    free(now);
    free(x.cursor_after_2);
    ck_assert_int_eq(events(f.core).created, 200);

    /* Resumes from page 3: nothing twice. */
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(st.created, (long)n - 200);
    ck_assert_int_eq(st.records, (long)n - 200);
    ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), (int64_t)n);
    ck_assert_int_eq(events(f.core).created, (long)n);
    teardown(&f);
}

START_TEST(test_store_failure_mid_run)
{
    third_page_fails(fail_half_way);
}
END_TEST

/* A page whose transaction cannot be opened (SQLite busy past its timeout;
 * a test hook here) fails the run there, nothing of it written. (Before,
 * the page was written without its transaction: its records and cursor
 * committed apart from the lease's check and from its events.) */
START_TEST(test_page_without_transaction_fails)
{
    if (ah_t_pg())
        return; /* the hook is SQLite's */
    third_page_fails(ah_store_sqlite_fail_scope);
}
END_TEST

static void nested_run(void *arg, const char *type, const ah_sync_stats *s)
{
    fail_ctx *x = arg;
    if (s->done || s->pages != 1)
        return;
    char err[256];
    x->nested_rc = ah_sync_run(x->f->core, "acme", "main", "jobs", NULL, NULL, NULL, err, sizeof err);
}

START_TEST(test_one_run_at_a_time)
{
    fixture f;
    int64_t cid = setup(&f, 300, 0, "100", NULL);
    fail_ctx x = {&f, cid, NULL, 0, NULL};
    char err[1024];
    ck_assert_msg(ah_sync_run(f.core, "acme", "main", "jobs", nested_run, &x, NULL, err,
                              sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(x.nested_rc, AH_SYNC_RUNNING);
    /* The key is free again once the run ended. */
    ck_assert_msg(sync_jobs(&f, NULL, err, sizeof err) == AH_SYNC_OK, "%s", err);
    teardown(&f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Leases: several instances on one store                                    */
/* ------------------------------------------------------------------------ */

/* Another instance holds the run's lease: the run is refused, nothing is
 * stored, a run of another type of the connection too; once it is
 * released, the run goes ahead. */
START_TEST(test_lease_held_elsewhere)
{
    fixture f;
    int64_t cid = setup(&f, 300, 0, "100", NULL);
    ah_store *s = f.core->store;
    char lease[64], err[1024];
    snprintf(lease, sizeof lease, "sync:%lld", (long long)cid);
    int64_t tok = 0;
    ck_assert_int_eq(s->ops->lease_acquire(s, lease, "another-instance", 600000, &tok, NULL),
                     AH_STORE_OK);
    ck_assert_int_eq(sync_jobs(&f, NULL, err, sizeof err), AH_SYNC_RUNNING);
    ck_assert_msg(strstr(err, "another instance") != NULL, "%s", err);
    ck_assert_int_eq(s->ops->record_count(s, cid, "job"), 0);
    /* Another type of the same connection too: one sync of a connection at
     * a time, whatever its type (the lease was per type: both ran). */
    ck_assert_int_eq(ah_sync_run(f.core, "acme", "main", "candidates", NULL, NULL, NULL, err,
                                 sizeof err),
                     AH_SYNC_RUNNING);
    ck_assert_int_eq(s->ops->lease_release(s, lease, tok), AH_STORE_OK);
    ah_sync_stats st;
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(st.created, 300);
    /* The run gave its lease up: another instance may take it at once. */
    ck_assert_int_eq(s->ops->lease_acquire(s, lease, "another-instance", 600000, &tok, NULL),
                     AH_STORE_OK);
    ck_assert_int_eq(s->ops->lease_release(s, lease, tok), AH_STORE_OK);
    teardown(&f);
}
END_TEST

typedef struct takeover_ctx {
    fixture *f;
    int64_t cid;
    int64_t other_token;
    char *cursor_after_1;
} takeover_ctx;

/* After page 1, this run's lease expires (as if the instance had stalled
 * past it) and another instance takes the sync over. */
static void take_over_after_first(void *arg, const char *type, const ah_sync_stats *st)
{
    takeover_ctx *x = arg;
    if (st->done || st->pages != 1)
        return;
    ah_store *s = x->f->core->store;
    char lease[64];
    snprintf(lease, sizeof lease, "sync:%lld", (long long)x->cid);
    ck_assert_int_eq(s->ops->cursor_get(s, x->cid, "sync.jobs", &x->cursor_after_1), 0);
    ck_assert_int_eq(s->ops->lease_acquire(s, lease, ah_sync_owner(x->f->core->sync), 0, NULL, NULL),
                     AH_STORE_OK);
    ck_assert_int_eq(s->ops->lease_acquire(s, lease, "another-instance", 600000,
                                           &x->other_token, NULL),
                     AH_STORE_OK);
}

/* The fence: a run whose lease was taken over commits no further page. */
START_TEST(test_lease_lost_mid_run)
{
    fixture f;
    int64_t cid = setup(&f, 300, 0, "100", NULL);
    takeover_ctx x = {&f, cid, 0, NULL};
    ah_sync_stats st;
    char err[1024];
    ck_assert_int_eq(ah_sync_run(f.core, "acme", "main", "jobs", take_over_after_first, &x, &st,
                                 err, sizeof err),
                     AH_SYNC_FAILED);
    ck_assert_msg(strstr(err, "lease_lost") != NULL, "%s", err);
    ck_assert_int_eq(st.pages, 1);
    ah_store *s = f.core->store;
    ck_assert_int_eq(s->ops->record_count(s, cid, "job"), 100);
    char *now = NULL;
    ck_assert_int_eq(s->ops->cursor_get(s, cid, "sync.jobs", &now), 0);
    ck_assert_ptr_nonnull(x.cursor_after_1);
    ck_assert_str_eq(now, x.cursor_after_1);
    free(now);
    free(x.cursor_after_1);
    /* While the other instance holds it, no run here... */
    ck_assert_int_eq(sync_jobs(&f, NULL, err, sizeof err), AH_SYNC_RUNNING);
    /* ...and once it lets go, the run resumes from page 2: nothing twice. */
    char lease[64];
    snprintf(lease, sizeof lease, "sync:%lld", (long long)cid);
    ck_assert_int_eq(s->ops->lease_release(s, lease, x.other_token), AH_STORE_OK);
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(st.created, 200);
    ck_assert_int_eq(s->ops->record_count(s, cid, "job"), 300);
    ck_assert_int_eq(events(f.core).created, 300);
    teardown(&f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Scheduler                                                                 */
/* ------------------------------------------------------------------------ */

static bool wait_count(ah_core *core, int64_t cid, int64_t want, int timeout_s)
{
    for (int i = 0; i < timeout_s * 20; i++) {
        if (core->store->ops->record_count(core->store, cid, "job") == want)
            return true;
        usleep(50 * 1000);
    }
    return false;
}

START_TEST(test_scheduler)
{
    fixture f;
    int64_t cid = setup(&f, 300, 0, "100", NULL);
    int64_t off = add_conn(&f, "off", ah_sim_url(f.sim), "100");
    ck_assert_int_eq(f.core->store->ops->connection_set_enabled(f.core->store, off, false), 0);
    ck_assert_int_eq(ah_conns_reload(f.core), 0);
    f.core->cfg.sync_interval_s = 1;
    char err[512];
    ck_assert_msg(ah_daemon_start(f.core, err, sizeof err) == 0, "%s", err);
    ck_assert(wait_count(f.core, cid, 300, 10));
    /* A scheduled pass has synced main: off was skipped in it. */
    ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, off, "job"), 0);
    /* Enabled again: the scheduler picks it up by itself. */
    ck_assert_int_eq(f.core->store->ops->connection_set_enabled(f.core->store, off, true), 0);
    ck_assert_int_eq(ah_conns_reload(f.core), 0);
    ck_assert(wait_count(f.core, off, 300, 10));
    ah_daemon_stop(f.core);
    teardown(&f);
}
END_TEST

/* Issue 14: two instances on one store, one schedule leader. Only the
 * instance holding the lease "schedule-leader" schedules the syncs; when
 * it stops, it gives the lease back and the other takes it. */
START_TEST(test_schedule_leader)
{
    fixture f;
    int64_t cid = setup(&f, 300, 0, "100", NULL);
    ah_core *other = core_open(&f);
    ck_assert_int_eq(ah_conns_reload(other), 0);
    /* Its own operators' socket, as a second instance on another host has. */
    free(other->cfg.admin_socket);
    ck_assert_int_ge(asprintf(&other->cfg.admin_socket, "%s/other.sock", f.dir), 0);
    ah_core *cores[2] = {f.core, other};
    char err[512];
    for (int i = 0; i < 2; i++) {
        cores[i]->cfg.sync_interval_s = 1;
        cores[i]->cfg.claim_ms = 3000;
        ck_assert_str_ne(cores[i]->instance, "");
        ck_assert_msg(ah_daemon_start(cores[i], err, sizeof err) == 0, "%s", err);
    }
    ck_assert_str_ne(cores[0]->instance, cores[1]->instance);
    int lead = -1;
    for (int i = 0; i < 200 && lead < 0; i++) {
        bool a = ah_sync_is_leader(cores[0]->sync), b = ah_sync_is_leader(cores[1]->sync);
        ck_assert_msg(!(a && b), "both instances lead the schedule");
        lead = a ? 0 : b ? 1 : -1;
        if (lead < 0)
            usleep(50 * 1000);
    }
    ck_assert_int_ge(lead, 0);
    ck_assert(wait_count(f.core, cid, 300, 10));
    for (int i = 0; i < 20; i++) {
        ck_assert(ah_sync_is_leader(cores[lead]->sync));
        ck_assert(!ah_sync_is_leader(cores[1 - lead]->sync));
        usleep(50 * 1000);
    }
    char *holder = NULL;
    ah_store *st = f.core->store;
    ck_assert_int_eq(st->ops->lease_acquire(st, AH_SCHED_LEASE, "probe", 1000, NULL, &holder),
                     AH_STORE_EXISTS);
    ck_assert_str_eq(holder, cores[lead]->instance);
    free(holder);
    /* The leader stops: the other leads. */
    ah_daemon_stop(cores[lead]);
    ck_assert(!ah_sync_is_leader(cores[lead]->sync));
    bool took = false;
    for (int i = 0; i < 200 && !took; i++) {
        took = ah_sync_is_leader(cores[1 - lead]->sync);
        if (!took)
            usleep(50 * 1000);
    }
    ck_assert(took);
    ck_assert_int_eq(st->ops->lease_acquire(st, AH_SCHED_LEASE, "probe", 1000, NULL, &holder),
                     AH_STORE_EXISTS);
    ck_assert_str_eq(holder, cores[1 - lead]->instance);
    free(holder);
    ah_daemon_close(other);
    teardown(&f);
}
END_TEST

static unsigned gen_number(ah_core *core, const char *plugin)
{
    ah_generation *g = ah_registry_acquire(core->registry, plugin);
    ck_assert_ptr_nonnull(g);
    unsigned n = g->number;
    ah_generation_release(g);
    return n;
}

/* Issue 14: what one instance changes reaches the other through the
 * change log that the ticker follows every second: a plugin reload (the
 * other reloads it too, once), and a connection added. */
START_TEST(test_changes_reach_other_instance)
{
    fixture f;
    setup(&f, 10, 0, "100", NULL);
    ah_core *other = core_open(&f);
    ck_assert_int_eq(ah_conns_reload(other), 0);
    free(other->cfg.admin_socket);
    ck_assert_int_ge(asprintf(&other->cfg.admin_socket, "%s/other.sock", f.dir), 0);
    char err[512];
    ck_assert_msg(ah_daemon_start(f.core, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(ah_daemon_start(other, err, sizeof err) == 0, "%s", err);
    unsigned here = gen_number(f.core, "streamer"), there = gen_number(other, "streamer");
    ah_ops_err e = {0};
    ck_assert_msg(ah_ops_plugin_reload(f.core, "streamer", NULL, NULL, &e) == 0, "%s", e.msg);
    ck_assert_uint_eq(gen_number(f.core, "streamer"), here + 1);
    bool seen = false;
    for (int i = 0; i < 200 && !seen; i++) {
        seen = gen_number(other, "streamer") == there + 1;
        if (!seen)
            usleep(50 * 1000);
    }
    ck_assert_msg(seen, "the other instance did not reload the plugin");
    /* A connection added through one instance is served by the other. */
    add_conn(&f, "second", ah_sim_url(f.sim), "100");
    ah_conn *c = NULL;
    for (int i = 0; i < 200 && c == NULL; i++) {
        c = ah_conn_find(other, "acme", "second");
        if (c == NULL)
            usleep(50 * 1000);
    }
    ck_assert_ptr_nonnull(c);
    ah_conn_release(c);
    /* Meanwhile both tickers followed the log again: the reload was
     * applied once, neither reloaded it again on the other's account. */
    ck_assert_uint_eq(gen_number(other, "streamer"), there + 1);
    ck_assert_uint_eq(gen_number(f.core, "streamer"), here + 1);

    /* A third instance reloads it from a file this host does not have yet
     * (a rolling deploy): both fail, keep it, and try again; once the file
     * is there, both load it. */
    char later[1200], cmd[2600];
    snprintf(later, sizeof later, "%s/later/streamer.so", f.dir);
    ck_assert_int_eq(f.core->store->ops->change_add(f.core->store, "plugin.reload", "streamer",
                                                    later, "a-third-instance"),
                     0);
    usleep(2500 * 1000); /* two ticks: both have read it and failed (else this proves less) */
    ck_assert_uint_eq(gen_number(f.core, "streamer"), here + 1);
    ah_generation *g = ah_registry_acquire(f.core->registry, "streamer");
    ck_assert_ptr_nonnull(g);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/later' && cp '%s' '%s'", f.dir, g->path, later);
    ah_generation_release(g);
    ck_assert_int_eq(system(cmd), 0);
    for (int i = 0; i < 600 && (gen_number(f.core, "streamer") != here + 2 ||
                                gen_number(other, "streamer") != there + 2); i++)
        usleep(50 * 1000);
    ck_assert_uint_eq(gen_number(f.core, "streamer"), here + 2);
    ck_assert_uint_eq(gen_number(other, "streamer"), there + 2);
    ah_daemon_close(other);
    teardown(&f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The CLI                                                                   */
/* ------------------------------------------------------------------------ */

static bool stored_title_is(ah_core *core, int64_t cid, const char *remote_id, const char *title)
{
    ah_record_row row;
    memset(&row, 0, sizeof row);
    if (core->store->ops->record_get(core->store, cid, "job", remote_id, &row) != 0)
        return false;
    bool same = row.raw != NULL && strstr(row.raw, title) != NULL;
    ah_record_row_free(&row);
    return same;
}

/* Disabling a connection takes effect on the next scheduled sync; enabling
 * it again resumes from the cursor it had saved, not from scratch. */
START_TEST(test_disable_then_resume_from_cursor)
{
    fixture f;
    int64_t cid = setup(&f, 300, 0, "100", NULL);
    ah_sync_stats st;
    char err[512];
    ck_assert_int_eq(sync_jobs(&f, &st, err, sizeof err), 0);
    ck_assert_int_eq(st.created, 300);
    cJSON *cur = cursor_of(f.core, cid, "sync.jobs");
    char saved[32];
    snprintf(saved, sizeof saved, "%s", cJSON_GetObjectItem(cur, "updated_after")->valuestring);
    cJSON_Delete(cur);

    ck_assert_int_eq(f.core->store->ops->connection_set_enabled(f.core->store, cid, false), 0);
    ck_assert_int_eq(ah_conns_reload(f.core), 0);
    prov_touch(&f.p, 10, prov_newest(&f.p) + 60); /* item 10 becomes v2 */
    /* A witness connection shows that a scheduled pass did run. */
    int64_t witness = add_conn(&f, "witness", ah_sim_url(f.sim), "100");
    f.core->cfg.sync_interval_s = 1;
    ck_assert_msg(ah_daemon_start(f.core, err, sizeof err) == 0, "%s", err);
    ck_assert(wait_count(f.core, witness, 300, 10));
    ck_assert(stored_title_is(f.core, cid, "10", "Item 10 v1"));
    cur = cursor_of(f.core, cid, "sync.jobs");
    ck_assert_str_eq(cJSON_GetObjectItem(cur, "updated_after")->valuestring, saved);
    cJSON_Delete(cur);

    pthread_mutex_lock(&f.p.mu);
    int mark = f.p.n_ua;
    pthread_mutex_unlock(&f.p.mu);
    ck_assert_int_eq(f.core->store->ops->connection_set_enabled(f.core->store, cid, true), 0);
    ck_assert_int_eq(ah_conns_reload(f.core), 0);
    bool updated = false;
    for (int i = 0; i < 200 && !updated; i++) {
        updated = stored_title_is(f.core, cid, "10", "Item 10 v2");
        if (!updated)
            usleep(50 * 1000);
    }
    ck_assert(updated);
    ah_daemon_stop(f.core);
    /* The resumed run asked for what changed after the saved cursor; no run
     * after the enable started from scratch. */
    bool from_saved = false;
    pthread_mutex_lock(&f.p.mu);
    for (int i = mark; i < f.p.n_ua; i++) {
        from_saved |= strcmp(f.p.ua_log[i], saved) == 0;
        ck_assert_msg(f.p.ua_log[i][0] != '\0', "a run after the enable started from scratch");
    }
    pthread_mutex_unlock(&f.p.mu);
    ck_assert(from_saved);
    ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), 300);
    teardown(&f);
}
END_TEST

static char *atshub_path(void)
{
    char *p = NULL;
    ck_assert_int_ge(asprintf(&p, "%s/atshub", ah_t_env("AH_BUILD_DIR")), 0);
    return p;
}

START_TEST(test_cli_json_and_exit_codes)
{
    fixture f;
    int64_t cid = setup(&f, 250, 20, "100", NULL);
    ah_daemon_close(f.core);
    f.core = NULL;
    char *bin = atshub_path();
    char *out = NULL, *errs = NULL;

    const char *a1[] = {bin, "-c", f.ini, "--json", "sync", "acme", "main", NULL};
    ck_assert_int_eq(ah_t_run(a1, NULL, &out, &errs), 0);
    cJSON *doc = cJSON_Parse(out);
    ck_assert_msg(doc != NULL, "%s", out);
    ck_assert_str_eq(cJSON_GetObjectItem(doc, "connection")->valuestring, "main");
    cJSON *types = cJSON_GetObjectItem(doc, "types");
    ck_assert_int_eq(cJSON_GetArraySize(types), 2);
    cJSON *jobs = cJSON_GetArrayItem(types, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(jobs, "type")->valuestring, "jobs");
    ck_assert_int_eq(cJSON_GetObjectItem(jobs, "pages")->valueint, 3);
    ck_assert_int_eq(cJSON_GetObjectItem(jobs, "records")->valueint, 250);
    ck_assert_int_eq(cJSON_GetObjectItem(jobs, "created")->valueint, 250);
    ck_assert_int_eq(cJSON_GetObjectItem(jobs, "updated")->valueint, 0);
    ck_assert_int_eq(cJSON_GetObjectItem(jobs, "unchanged")->valueint, 0);
    ck_assert_int_eq(cJSON_GetObjectItem(jobs, "retries")->valueint, 0);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(jobs, "seconds")));
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(types, 1), "type")->valuestring,
                     "candidates");
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(types, 1), "created")->valueint, 20);
    ck_assert_ptr_nonnull(strstr(errs, "jobs: 1 pages")); /* progress, not a TTY */
    cJSON_Delete(doc);
    free(out);
    free(errs);

    /* Human summary, one type. */
    const char *a2[] = {bin, "-c", f.ini, "sync", "acme", "main", "--type", "jobs", NULL};
    ck_assert_int_eq(ah_t_run(a2, NULL, &out, &errs), 0);
    ck_assert_ptr_nonnull(strstr(out, "acme/main jobs: 2 pages, 120 records (0 new, 0 updated, 120 unchanged)"));
    ck_assert_ptr_null(strstr(out, "candidates"));
    free(out);
    free(errs);

    const char *a3[] = {bin, "-c", f.ini, "sync", "acme", "nope", NULL};
    ck_assert_int_eq(ah_t_run(a3, NULL, &out, &errs), 1);
    ck_assert_ptr_nonnull(strstr(errs, "no connection 'nope'"));
    free(out);
    free(errs);
    const char *a4[] = {bin, "-c", f.ini, "sync", "acme", "main", "--type", "widgets", NULL};
    ck_assert_int_eq(ah_t_run(a4, NULL, &out, &errs), 2);
    free(out);
    free(errs);
    const char *a5[] = {bin, "-c", f.ini, "sync", "acme", NULL};
    ck_assert_int_eq(ah_t_run(a5, NULL, &out, &errs), 2);
    free(out);
    free(errs);

    /* The provider goes away: exit 1, saying which type, why, and that the
     * cursor was kept. Its port is held meanwhile, so that nothing answers
     * there (a failure in CI said something else). */
    int hold = ah_sim_stop_holding_port(f.sim);
    f.sim = NULL;
    ck_assert_msg(hold >= 0, "the simulator's port could not be kept");
    const char *a6[] = {bin, "-c", f.ini, "--json", "sync", "acme", "main", "--type", "jobs", NULL};
    ck_assert_int_eq(ah_t_run(a6, NULL, &out, &errs), 1);
    doc = cJSON_Parse(out);
    ck_assert_msg(doc != NULL, "%s", out);
    const char *msg = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "error"), "message")->valuestring;
    ck_assert_msg(strstr(msg, "jobs: upstream_unavailable") != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, "cursor was kept") != NULL, "%s", msg);
    close(hold);
    cJSON_Delete(doc);
    free(out);
    free(errs);
    (void)cid;
    free(bin);
    f.core = core_open(&f); /* teardown closes one */
    teardown(&f);
}
END_TEST

/* `atshub sync` loads only the plugins of the tenant's connections (each
 * isolated plugin is a process to start and stop, a fixed cost of every
 * one-shot sync): another plugin of [plugins], here one that cannot even
 * load, does not stop it, while `atshub plugins`, which loads them all,
 * still fails on it. */
START_TEST(test_cli_sync_loads_the_tenants_plugins_only)
{
    fixture f;
    setup(&f, 30, 5, "100", NULL);
    ah_daemon_close(f.core);
    f.core = NULL;
    char *text = ah_t_read_file(f.ini, NULL), *more = NULL;
    ck_assert_ptr_nonnull(text);
    ck_assert_int_ge(asprintf(&more, "%sbroken = %s/no_entry.so\n", text,
                              ah_t_env("AH_FIXTURE_DIR")), 0);
    ck_assert_int_eq(ah_t_write_file(f.ini, more), 0);
    char *bin = atshub_path();
    char *out = NULL, *errs = NULL;

    const char *a1[] = {bin, "-c", f.ini, "--json", "sync", "acme", "main", NULL};
    ck_assert_msg(ah_t_run(a1, NULL, &out, &errs) == 0, "%s", errs);
    cJSON *doc = cJSON_Parse(out);
    ck_assert_msg(doc != NULL, "%s", out);
    cJSON *jobs = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "types"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(jobs, "type")->valuestring, "jobs");
    ck_assert_int_eq(cJSON_GetObjectItem(jobs, "created")->valueint, 30);
    cJSON_Delete(doc);
    free(out);
    free(errs);

    const char *a2[] = {bin, "-c", f.ini, "plugins", NULL};
    ck_assert_int_ne(ah_t_run(a2, NULL, &out, &errs), 0);
    ck_assert_msg(strstr(errs, "broken") != NULL, "%s", errs);
    free(out);
    free(errs);

    free(bin);
    ck_assert_int_eq(ah_t_write_file(f.ini, text), 0);
    free(text);
    free(more);
    f.core = core_open(&f); /* teardown closes one */
    teardown(&f);
}
END_TEST

START_TEST(test_cli_crash_resume)
{
    fixture f;
    const size_t n = 2000;
    int64_t cid = setup(&f, n, 0, "100", NULL);
    prov_set(&f.p, &f.p.delay_ms, 150); /* 20 pages, ~3 s: time to kill it mid-run */
    ah_daemon_close(f.core);
    f.core = NULL;
    char *bin = atshub_path();
    const char *a[] = {bin, "-c", f.ini, "sync", "acme", "main", "--type", "jobs", NULL};
    int efd = -1;
    pid_t pid = ah_t_spawn(a, NULL, &efd);
    ck_assert_int_gt(pid, 0);
    long pages = 0;
    for (int i = 0; i < 10 && pages < 2; i++) {
        char *line = ah_t_wait_line(efd, "jobs: ", 20);
        if (line == NULL)
            ck_abort_msg("no progress line from atshub sync; it wrote: %s", ah_t_seen(efd));
        const char *p = strstr(line, "jobs: ");
        pages = strtol(p + 6, NULL, 10);
        free(line);
    }
    ck_assert_int_ge(pages, 2);
    ck_assert_int_eq(ah_t_stop(pid, SIGKILL), 128 + SIGKILL);
    close(efd);

    f.core = core_open(&f);
    int64_t committed = f.core->store->ops->record_count(f.core->store, cid, "job");
    ck_assert_int_ge(committed, 200);
    ck_assert_int_lt(committed, (int64_t)n);
    ck_assert_int_eq(committed % 100, 0); /* whole pages only */
    ah_daemon_close(f.core);
    f.core = NULL;

    prov_set(&f.p, &f.p.delay_ms, 0);
    const char *b[] = {bin, "-c", f.ini, "--json", "sync", "acme", "main", "--type", "jobs", NULL};
    char *out = NULL, *errs = NULL;
    ck_assert_int_eq(ah_t_run(b, NULL, &out, &errs), 0);
    cJSON *doc = cJSON_Parse(out);
    ck_assert_msg(doc != NULL, "%s", out);
    cJSON *jobs = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "types"), 0);
    ck_assert_int_eq(cJSON_GetObjectItem(jobs, "created")->valueint, (int)(n - (size_t)committed));
    ck_assert_int_eq(cJSON_GetObjectItem(jobs, "records")->valueint, (int)(n - (size_t)committed));
    cJSON_Delete(doc);
    free(out);
    free(errs);

    f.core = core_open(&f);
    ck_assert_int_eq(f.core->store->ops->record_count(f.core->store, cid, "job"), (int64_t)n);
    free(bin);
    teardown(&f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Remote deletions                                                          */
/* ------------------------------------------------------------------------ */

/* Removes item `id` from the provider's list. */
static void prov_remove(prov *p, long id)
{
    pthread_mutex_lock(&p->mu);
    size_t k = 0;
    for (size_t i = 0; i < p->items.n; i++)
        if (p->items.v[i].id != id)
            p->items.v[k++] = p->items.v[i];
    p->items.n = k;
    pthread_mutex_unlock(&p->mu);
}

typedef struct put_ctx {
    fixture *f;
    int64_t cid;
    int puts;
} put_ctx;

/* After the run's first page, a job the provider's list does not hold is
 * stored, as a plugin's record_put (an inbound write) stores it: the
 * store's records_upsert of one record. */
static void put_after_first_page(void *arg, const char *type, const ah_sync_stats *s)
{
    (void)type;
    put_ctx *x = arg;
    if (s->done || s->pages != 1 || x->puts > 0)
        return;
    ah_record_in in = {"job", "pushed-1", NULL, "{\"id\":\"pushed-1\"}",
                       "{\"title\":\"pushed\"}"};
    ah_upsert_result res = AH_REC_UNCHANGED;
    ck_assert_int_eq(x->f->core->store->ops->records_upsert(x->f->core->store, x->cid, &in, 1,
                                                            NULL, NULL, &res, NULL),
                     0);
    ck_assert_int_eq(res, AH_REC_CREATED);
    x->puts++;
}

static bool job_deleted(fixture *f, int64_t cid, const char *remote_id)
{
    ah_record_row row;
    ck_assert_int_eq(f->core->store->ops->record_get(f->core->store, cid, "job", remote_id, &row),
                     0);
    bool del = ah_record_deleted(f->core, row.id);
    ah_record_row_free(&row);
    return del;
}

/* A full sync flags the stored records of its type the provider no longer
 * lists, but not one stored while it ran (by record_put or an inbound
 * write): the provider's pages, read before it existed, could not hold
 * it. Only records stored before the run began are flagged. */
START_TEST(test_full_sync_spares_records_stored_meanwhile)
{
    fixture f;
    int64_t cid = setup(&f, 300, 0, "100", NULL);
    ah_sync_stats st;
    char err[1024];
    ck_assert_msg(sync_jobs(&f, &st, err, sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_eq(st.created, 300);

    /* Item 1 disappears from the provider. The next run begins after the
     * millisecond its record was stored in (the clock stored_at is read
     * from: it is only flagged when stored before the run began). */
    prov_remove(&f.p, 1);
    ah_record_row row;
    ck_assert_int_eq(f.core->store->ops->record_get(f.core->store, cid, "job", "1", &row), 0);
    char now[32];
    do
        ah_now_iso(now);
    while (strcmp(now, row.stored_at) <= 0);
    ah_record_row_free(&row);

    ck_assert_int_eq(ah_sync_reset_cursor(f.core, cid, "jobs"), 0);
    put_ctx x = {&f, cid, 0};
    ck_assert_msg(ah_sync_run(f.core, "acme", "main", "jobs", put_after_first_page, &x, &st, err,
                              sizeof err) == AH_SYNC_OK,
                  "%s", err);
    ck_assert_int_eq(st.pages, 3);
    ck_assert_int_eq(x.puts, 1);
    ck_assert(job_deleted(&f, cid, "1"));
    ck_assert(!job_deleted(&f, cid, "pushed-1"));
    ck_assert(!job_deleted(&f, cid, "2"));
    teardown(&f);
}
END_TEST

static Suite *sync_suite(void)
{
    Suite *s = suite_create("sync");
    TCase *t = tcase_create("engine");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_provider_times);
    tcase_add_test(t, test_full_then_incremental);
    tcase_add_test(t, test_future_time_does_not_move_window);
    tcase_add_test(t, test_all_types_and_bad_requests);
    tcase_add_test(t, test_faults_lose_nothing);
    tcase_add_test(t, test_plugin_crash_mid_run_retried);
    tcase_add_test(t, test_refused_record_fails_page);
    tcase_add_test(t, test_emitted_page_bounded);
    tcase_add_test(t, test_reserved_record_type_refused);
    tcase_add_test(t, test_cursor_cycle_fails_run);
    tcase_add_test(t, test_record_text_not_utf8_repaired);
    tcase_add_test(t, test_non_retryable_error_keeps_cursor);
    tcase_add_test(t, test_store_failure_mid_run);
    tcase_add_test(t, test_page_without_transaction_fails);
    tcase_add_test(t, test_full_sync_spares_records_stored_meanwhile);
    tcase_add_test(t, test_run_ends_durable);
    tcase_add_test(t, test_one_run_at_a_time);
    tcase_add_test(t, test_lease_held_elsewhere);
    tcase_add_test(t, test_lease_lost_mid_run);
    tcase_add_test(t, test_scheduler);
    tcase_add_test(t, test_schedule_leader);
    tcase_add_test(t, test_changes_reach_other_instance);
    tcase_add_test(t, test_disable_then_resume_from_cursor);
    suite_add_tcase(s, t);
    TCase *c = tcase_create("cli");
    tcase_set_timeout(c, 60);
    tcase_add_test(c, test_cli_json_and_exit_codes);
    tcase_add_test(c, test_cli_sync_loads_the_tenants_plugins_only);
    tcase_add_test(c, test_cli_crash_resume);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(sync_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
