/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ERecruit -> atshub -> CareerBuilder, in process and on the real path: the
 * ERecruit simulator is synced by the sync engine (ah_sync_run), whose
 * event.application.* events reach the careerbuilder connection's
 * subscription through the core's outbox, which PUTs statuses to the
 * CareerBuilder simulator. A stage changed in ERecruit shows up mapped in
 * CareerBuilder; with CareerBuilder down while 50 submissions change, every
 * key ends on its newest status and none went back in time.
 *
 * The two providers run on separate simulators so that CareerBuilder's
 * injected outage does not touch ERecruit.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "rest.h"
#include "sync.h"
#include "tracking.h"
#include "events.h"
#include "sim/careerbuilder.h"
#include "sim/erecruit.h"
#include "sim/sim.h"
#include "support/harness.h"

#define API_KEY "ahk_cb_erecruit_0123456789"
#define ACCOUNT "AAAA_1234"
#define VENDOR "atshub"
/* 2025-10-06T12:00:00Z: a fixed ERecruit clock (local 15:00 at +180), so the
 * generated data and every stamp repeat. */
#define FIXED_CLOCK ((time_t)1759752000)
#define STATUS_MAP "{\"stage:3\":\"Interviewing\",\"stage:*\":\"In Process\"}"

typedef struct fixture {
    char *dir;
    ah_sim *er_sim;
    ah_erecruit_sim *er;
    ah_sim *cb_sim;
    ah_cb_sim *cb;
    ah_core *core;
    int64_t tenant_id;
    int64_t er_conn_id;
    int64_t cb_conn_id;
} fixture;

static int64_t add_conn(fixture *f, const char *plugin, const char *name, cJSON *settings)
{
    ah_generation *gen = ah_registry_acquire(f->core->registry, plugin);
    ck_assert_msg(gen != NULL, "the %s plugin is not loaded", plugin);
    char *text = NULL, err[512];
    ck_assert_msg(ah_settings_build(f->core, gen->desc->settings, plugin, NULL, settings, true,
                                    NULL, &text, err, sizeof err) == 0,
                  "%s", err);
    int64_t cid;
    ck_assert_int_eq(f->core->store->ops->connection_add(f->core->store, f->tenant_id, plugin,
                                                         name, text, &cid),
                     0);
    free(text);
    cJSON_Delete(settings);
    ah_generation_release(gen);
    ck_assert_int_eq(ah_conns_reload(f->core), 0);
    return cid;
}

/* Every generated submission gets a contact of its own, so that each one is
 * a CareerBuilder key of its own (the key holds the email, not the
 * submission id). */
static void distinct_contacts(fixture *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"id\":%ld,\"contact_id\":%ld,\"rejected\":false}",
                 5000001L + (long)i, 2000001L + (long)i);
        ck_assert_int_eq(ah_erecruit_sim_put(f->er, "submission", body), 5000001L + (long)i);
    }
}

/* ERecruit with n submissions, n contacts and a few positions; the core
 * with both plugins; tenant "acme" with connections "er" and "cb". */
static void setup(fixture *f, size_t n)
{
    memset(f, 0, sizeof *f);
    ah_sim_opts eso = {.seed = 3, .no_fault_prefix = "/t/"};
    f->er_sim = ah_sim_new(&eso);
    ck_assert_ptr_nonnull(f->er_sim);
    ah_erecruit_opts eo = {.seed = 21, .positions = 8, .contacts = n, .submissions = n,
                           .clock_utc = FIXED_CLOCK};
    f->er = ah_erecruit_sim_attach(f->er_sim, &eo);
    ck_assert_ptr_nonnull(f->er);
    ck_assert_int_eq(ah_sim_start(f->er_sim), 0);
    distinct_contacts(f, n);

    ah_sim_opts cso = {.seed = 5};
    f->cb_sim = ah_sim_new(&cso);
    ck_assert_ptr_nonnull(f->cb_sim);
    f->cb = ah_cb_sim_attach(f->cb_sim, NULL);
    ck_assert_ptr_nonnull(f->cb);
    ck_assert_int_eq(ah_sim_start(f->cb_sim), 0);

    f->dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(f->dir);
    char extra[1200];
    /* AH_TEST_ISOLATION=in_process (ctest check_cb_erecruit_in_process): both
     * plugins in the daemon's process (by default each runs in its own:
     * issue 15). */
    const char *iso = getenv("AH_TEST_ISOLATION");
    snprintf(extra, sizeof extra,
             "erecruit = %s/erecruit.so\ncareerbuilder = %s/careerbuilder.so\n"
             "%s%s%s%s%s%s",
             ah_t_env("AH_PLUGIN_DIR"), ah_t_env("AH_PLUGIN_DIR"),
             iso != NULL ? "[plugin.erecruit]\nisolation = " : "", iso != NULL ? iso : "",
             iso != NULL ? "\n" : "", iso != NULL ? "[plugin.careerbuilder]\nisolation = " : "",
             iso != NULL ? iso : "", iso != NULL ? "\n" : "");
    char *ini = ah_t_write_ini(f->dir, extra);
    ck_assert_ptr_nonnull(ini);
    ah_config cfg;
    char err[1024];
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    free(ini);
    /* Short delivery backoff, so a recovered CareerBuilder is retried soon. */
    cfg.http_backoff_ms = 10;
    cfg.http_backoff_max_ms = 300;
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    f->core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ck_assert_msg(f->core != NULL, "%s", err);
    ck_assert_msg(ah_daemon_start(f->core, err, sizeof err) == 0, "%s", err);

    char hash[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex(API_KEY, strlen(API_KEY), hash);
    ck_assert_int_eq(f->core->store->ops->tenant_add(f->core->store, "acme", hash, &f->tenant_id),
                     0);
    cJSON *s = cJSON_CreateObject();
    ck_assert_ptr_nonnull(s);
    cJSON_AddStringToObject(s, "base_url", ah_sim_url(f->er_sim));
    cJSON_AddStringToObject(s, "client_id", "atshub");
    cJSON_AddStringToObject(s, "client_secret", "s3cret");
    f->er_conn_id = add_conn(f, "erecruit", "er", s);
    s = cJSON_CreateObject();
    ck_assert_ptr_nonnull(s);
    cJSON_AddStringToObject(s, "base_url", ah_sim_url(f->cb_sim));
    cJSON_AddStringToObject(s, "client_id", "atshub");
    cJSON_AddStringToObject(s, "client_secret", "s3cret");
    cJSON_AddStringToObject(s, "account", ACCOUNT);
    cJSON_AddStringToObject(s, "status_map", STATUS_MAP);
    f->cb_conn_id = add_conn(f, "careerbuilder", "cb", s);
}

static void teardown(fixture *f)
{
    ah_daemon_close(f->core);
    ah_sim_stop(f->er_sim);
    ah_erecruit_sim_free(f->er);
    ah_sim_stop(f->cb_sim);
    ah_cb_sim_free(f->cb);
    ah_t_rmrf(f->dir);
    free(f->dir);
}

/* ---- helpers --------------------------------------------------------------- */

static void sync_type(fixture *f, const char *type, ah_sync_stats *st)
{
    char err[1024];
    ck_assert_msg(ah_sync_run(f->core, "acme", "er", type, NULL, NULL, st, err, sizeof err) ==
                      AH_SYNC_OK,
                  "%s: %s", type, err);
}

/* True when the cb connection has no delivery pending. */
static bool cb_idle(fixture *f)
{
    ah_delivery_row d;
    memset(&d, 0, sizeof d);
    int rc = f->core->store->ops->delivery_next(f->core->store, f->cb_conn_id, &d);
    if (rc == 0)
        ah_delivery_row_free(&d);
    return rc == AH_STORE_NOT_FOUND;
}

/* Drives deliveries until the cb connection has none left (bounded). */
static bool drain_deliveries(fixture *f)
{
    for (int i = 0; i < 400; i++) {
        ah_events_tick(f->core);
        ah_bus_drain(f->core->bus);
        if (cb_idle(f))
            return true;
        usleep(50 * 1000);
    }
    return false;
}

/* A few delivery rounds that are expected to fail (CareerBuilder down). */
static void tick_a_little(fixture *f)
{
    for (int i = 0; i < 4; i++) {
        ah_events_tick(f->core);
        ah_bus_drain(f->core->bus);
        usleep(20 * 1000);
    }
}

/* A record of the ERecruit simulator, parsed. */
static cJSON *er_get(fixture *f, const char *kind, long id)
{
    char *text = ah_erecruit_sim_get(f->er, kind, id);
    ck_assert_msg(text != NULL, "no %s %ld in the sim", kind, id);
    cJSON *o = cJSON_Parse(text);
    free(text);
    ck_assert_ptr_nonnull(o);
    return o;
}

static long jlong(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(v))
        return (long)v->valuedouble;
    if (cJSON_IsString(v))
        return strtol(v->valuestring, NULL, 10);
    return -1;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* jstr, with "" for a missing member (for comparisons). */
static const char *jstr0(const cJSON *o, const char *key)
{
    const char *s = jstr(o, key);
    return s != NULL ? s : "";
}

/* What CareerBuilder should hold for a submission, from the sim's state. */
typedef struct expect {
    char email[256];
    char req[32];
    char status[64];
    char detail[64];
    char date[32];
    long stage;
} expect;

static void expected_for(fixture *f, long sub_id, expect *x)
{
    cJSON *s = er_get(f, "submission", sub_id);
    cJSON *c = er_get(f, "contact", jlong(s, "contact_id"));
    ck_assert_ptr_nonnull(jstr(c, "email"));
    snprintf(x->email, sizeof x->email, "%s", jstr(c, "email"));
    snprintf(x->req, sizeof x->req, "%ld", jlong(s, "position_id"));
    x->stage = jlong(s, "stage_id");
    snprintf(x->status, sizeof x->status, "%s", x->stage == 3 ? "Interviewing" : "In Process");
    /* The raw step and state, as the plugin keeps them in status_detail. */
    bool rejected = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "rejected"));
    snprintf(x->detail, sizeof x->detail, "%ld: %s", x->stage, rejected ? "rejected" : "active");
    /* ERecruit's provider-local time, taken as UTC (README: a known limitation). */
    ck_assert_ptr_nonnull(jstr(s, "updated_at"));
    snprintf(x->date, sizeof x->date, "%sZ", jstr(s, "updated_at"));
    cJSON_Delete(c);
    cJSON_Delete(s);
}

/* CareerBuilder holds exactly the expected status for that key. */
static void check_cb_holds(fixture *f, long sub_id, const expect *x)
{
    cJSON *st = ah_cb_sim_find(f->cb, ACCOUNT, x->email, VENDOR, x->req, "application");
    ck_assert_msg(st != NULL, "submission %ld: no status for %s / %s", sub_id, x->email, x->req);
    ck_assert_msg(strcmp(jstr0(st, "status"), x->status) == 0, "submission %ld: status %s != %s",
                  sub_id, jstr0(st, "status"), x->status);
    ck_assert_msg(strcmp(jstr0(st, "status_detail"), x->detail) == 0,
                  "submission %ld: status_detail %s != %s", sub_id, jstr0(st, "status_detail"),
                  x->detail);
    ck_assert_msg(strcmp(jstr0(st, "status_date"), x->date) == 0,
                  "submission %ld: status_date %s != %s", sub_id, jstr0(st, "status_date"),
                  x->date);
    char lid[32];
    snprintf(lid, sizeof lid, "%ld", sub_id);
    ck_assert_str_eq(jstr0(st, "level_id"), lid);
    ck_assert_str_eq(jstr0(st, "status_level"), "application");
    cJSON_Delete(st);
}

/* Full syncs of jobs, candidates and then applications (candidates first,
 * so that no application waits for its candidate), then every initial
 * status delivered. */
static void initial_sync(fixture *f, size_t n)
{
    ah_sync_stats st;
    sync_type(f, "jobs", &st);
    sync_type(f, "candidates", &st);
    ck_assert_int_eq(st.created, (long)n);
    sync_type(f, "applications", &st);
    ck_assert_int_eq(st.created, (long)n);
    ck_assert(drain_deliveries(f));
    /* One application status and one candidate status per contact. */
    ck_assert_uint_eq(ah_cb_sim_count(f->cb), 2 * n);
}

/* A bearer token of the ERecruit simulator, as any API client gets one. */
static char *er_token(fixture *f)
{
    char url[256], *body = NULL;
    snprintf(url, sizeof url, "%s/t/token", ah_sim_url(f->er_sim));
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    ck_assert_int_eq(
        ah_t_http("POST", url, h,
                  "grant_type=client_credentials&client_id=atshub&client_secret=s3cret", &body),
        200);
    cJSON *o = cJSON_Parse(body);
    free(body);
    ck_assert_ptr_nonnull(jstr(o, "access_token"));
    char *tok = strdup(jstr(o, "access_token"));
    cJSON_Delete(o);
    ck_assert_ptr_nonnull(tok);
    return tok;
}

/* POST /api/v2/submissions/{id}/stage on the ERecruit simulator. */
static void er_move(fixture *f, const char *token, long sub_id, long stage)
{
    char url[256], auth[128], body[64], *reply = NULL;
    snprintf(url, sizeof url, "%s/api/v2/submissions/%ld/stage", ah_sim_url(f->er_sim), sub_id);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    snprintf(body, sizeof body, "{\"stage_id\":%ld}", stage);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    long rc = ah_t_http("POST", url, h, body, &reply);
    ck_assert_msg(rc == 200, "stage of %ld: %ld %s", sub_id, rc, reply ? reply : "");
    free(reply);
}

/* ---- 1: a stage change reaches CareerBuilder ---------------------------------- */

START_TEST(test_stage_change_reaches_careerbuilder)
{
    fixture f;
    setup(&f, 20);
    initial_sync(&f, 20);
    /* Every application key holds its mapped status. */
    for (long id = 5000001; id <= 5000020; id++) {
        expect x;
        expected_for(&f, id, &x);
        check_cb_holds(&f, id, &x);
    }
    /* A submission not yet in Interview (stage 3) moves there, ten minutes later. */
    long sub = -1;
    expect before;
    for (long id = 5000001; id <= 5000020 && sub < 0; id++) {
        expected_for(&f, id, &before);
        if (before.stage != 3)
            sub = id;
    }
    ck_assert_int_gt(sub, 0);
    ck_assert_str_eq(before.status, "In Process");
    ah_erecruit_sim_now(f.er, FIXED_CLOCK + 600);
    char *token = er_token(&f);
    er_move(&f, token, sub, 3);
    free(token);

    cJSON *arr = ah_cb_sim_arrivals(f.cb);
    int arrivals_before = cJSON_GetArraySize(arr);
    cJSON_Delete(arr);
    ah_sync_stats st;
    sync_type(&f, "applications", &st);
    ck_assert_int_eq(st.created, 0);
    ck_assert_int_eq(st.updated, 1);
    ck_assert(drain_deliveries(&f));

    expect after;
    expected_for(&f, sub, &after);
    ck_assert_int_eq(after.stage, 3);
    ck_assert_str_eq(after.status, "Interviewing");
    ck_assert_str_eq(after.date, "2025-10-06T15:10:00Z"); /* local 15:10, sent as is */
    ck_assert_str_eq(after.req, before.req);
    check_cb_holds(&f, sub, &after);
    cJSON *st_obj = ah_cb_sim_find(f.cb, ACCOUNT, after.email, VENDOR, after.req, "application");
    ck_assert_ptr_nonnull(st_obj);
    /* The job was synced too: its title rides along. */
    cJSON *pos = er_get(&f, "position", atol(after.req));
    ck_assert_ptr_nonnull(jstr(st_obj, "requisition_title"));
    ck_assert_str_eq(jstr(st_obj, "requisition_title"), jstr(pos, "title"));
    cJSON_Delete(pos);
    cJSON_Delete(st_obj);
    /* Exactly one more PUT: the unchanged records in the backfill window
     * were not sent again. */
    arr = ah_cb_sim_arrivals(f.cb);
    ck_assert_int_eq(cJSON_GetArraySize(arr), arrivals_before + 1);
    cJSON *last = cJSON_GetArrayItem(arr, arrivals_before);
    char lid[32];
    snprintf(lid, sizeof lid, "%ld", sub);
    ck_assert_str_eq(jstr(last, "level_id"), lid);
    ck_assert_str_eq(jstr(last, "status"), "Interviewing");
    cJSON_Delete(arr);
    /* Every other key is as it was. */
    for (long id = 5000001; id <= 5000020; id++) {
        if (id == sub)
            continue;
        expect x;
        expected_for(&f, id, &x);
        check_cb_holds(&f, id, &x);
    }
    ck_assert_uint_eq(ah_cb_sim_count(f.cb), 40);
    teardown(&f);
}
END_TEST

/* ---- 2: 50 changes during a CareerBuilder outage ---------------------------------- */

#define NSUB 60
#define NCHANGED 50
#define NTWICE 20

/* Moves a submission to another stage with the given ERecruit-local stamp. */
static void er_put_stage(fixture *f, long sub_id, long stage, const char *stamp)
{
    char body[160];
    snprintf(body, sizeof body, "{\"id\":%ld,\"stage_id\":%ld,\"updated_at\":\"%s\"}", sub_id,
             stage, stamp);
    ck_assert_int_eq(ah_erecruit_sim_put(f->er, "submission", body), sub_id);
}

START_TEST(test_outage_50_changes_in_order)
{
    fixture f;
    setup(&f, NSUB);
    initial_sync(&f, NSUB);
    cJSON *arr = ah_cb_sim_arrivals(f.cb);
    int arrivals_before = cJSON_GetArraySize(arr);
    cJSON_Delete(arr);

    ah_sim_set_faults(f.cb_sim, 0, 1.0, 0, 0, 0); /* CareerBuilder down: every request 5xx */
    ah_sync_stats st;
    /* 50 submissions change, ten at a time, each batch followed by a sync. */
    for (int b = 0; b < NCHANGED / 10; b++) {
        for (int i = b * 10; i < b * 10 + 10; i++) {
            long id = 5000001 + i;
            expect x;
            expected_for(&f, id, &x);
            char stamp[32];
            snprintf(stamp, sizeof stamp, "2025-10-06T15:10:%02d", i);
            /* Every third one lands on Interview, the rest move one stage on. */
            long stage = i % 3 == 0 ? (x.stage == 3 ? 4 : 3) : x.stage % 5 + 1;
            er_put_stage(&f, id, stage, stamp);
        }
        sync_type(&f, "applications", &st);
        ck_assert_int_eq(st.updated, 10);
        tick_a_little(&f);
    }
    /* Twenty of them change once more, later, still during the outage. */
    for (int i = 0; i < NTWICE; i++) {
        long id = 5000001 + i * 2;
        expect x;
        expected_for(&f, id, &x);
        char stamp[32];
        snprintf(stamp, sizeof stamp, "2025-10-06T15:20:%02d", i);
        er_put_stage(&f, id, x.stage == 3 ? 5 : 3, stamp);
    }
    sync_type(&f, "applications", &st);
    ck_assert_int_eq(st.updated, NTWICE);
    tick_a_little(&f);

    /* Nothing got through, and it was tried. */
    ck_assert(!cb_idle(&f));
    arr = ah_cb_sim_arrivals(f.cb);
    ck_assert_int_eq(cJSON_GetArraySize(arr), arrivals_before);
    cJSON_Delete(arr);
    ah_sim_stats ss;
    ah_sim_get_stats(f.cb_sim, &ss);
    ck_assert_uint_gt(ss.f5xx, 0);

    ah_sim_set_faults(f.cb_sim, 0, 0, 0, 0, 0); /* back */
    ck_assert(drain_deliveries(&f));

    /* Every changed key holds its newest status; the others are untouched. */
    for (long id = 5000001; id < 5000001 + NSUB; id++) {
        expect x;
        expected_for(&f, id, &x);
        if (id - 5000001 < NCHANGED)
            ck_assert_msg(strcmp(x.date, "2025-10-06T15:10:00Z") >= 0,
                          "submission %ld was not changed (%s)", id, x.date);
        check_cb_holds(&f, id, &x);
    }
    ck_assert_uint_eq(ah_cb_sim_count(f.cb), 2 * NSUB);

    /* Per key, arrivals never went back in time; each changed key got at
     * least its newest status after the outage. */
    arr = ah_cb_sim_arrivals(f.cb);
    ck_assert_int_ge(cJSON_GetArraySize(arr), arrivals_before + NCHANGED);
    typedef struct seen {
        char email[256];
        char req[32];
        char last[32];
    } seen;
    seen *keys = calloc(2 * NSUB + 1, sizeof *keys);
    ck_assert_ptr_nonnull(keys);
    size_t nkeys = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, arr)
    {
        const char *email = jstr(a, "candidate_email");
        const char *req = jstr(a, "requisition_id");
        const char *date = jstr(a, "status_date");
        ck_assert_ptr_nonnull(email);
        ck_assert_ptr_nonnull(date);
        size_t k = 0;
        while (k < nkeys && !(strcasecmp(keys[k].email, email) == 0 &&
                              strcmp(keys[k].req, req != NULL ? req : "") == 0))
            k++;
        if (k == nkeys) {
            ck_assert_uint_lt(nkeys, 2 * NSUB);
            snprintf(keys[k].email, sizeof keys[k].email, "%s", email);
            snprintf(keys[k].req, sizeof keys[k].req, "%s", req != NULL ? req : "");
            nkeys++;
        }
        ck_assert_msg(strcmp(date, keys[k].last) >= 0, "%s / %s: %s arrived after %s", email,
                      keys[k].req, date, keys[k].last);
        snprintf(keys[k].last, sizeof keys[k].last, "%s", date);
    }
    ck_assert_uint_eq(nkeys, 2 * NSUB);
    free(keys);
    cJSON_Delete(arr);
    teardown(&f);
}
END_TEST

/* ---- 3: CareerBuilder stores a pushed status and its answer is lost ------------ */

/* The push (an event handler) sends the status not idempotent: the host
 * does not send it again; the plugin reads the candidate's statuses back,
 * finds it stored and the event is done. One PUT reaches CareerBuilder,
 * whether the connection was dropped (run 0) or the answer cut short
 * (run 1). */
START_TEST(test_push_answer_lost)
{
    fixture f;
    setup(&f, 5);
    initial_sync(&f, 5);
    long sub = -1;
    expect before;
    for (long id = 5000001; id <= 5000005 && sub < 0; id++) {
        expected_for(&f, id, &before);
        if (before.stage != 3)
            sub = id;
    }
    ck_assert_int_gt(sub, 0);
    ah_erecruit_sim_now(f.er, FIXED_CLOCK + 600);
    char *token = er_token(&f);
    er_move(&f, token, sub, 3);
    free(token);
    cJSON *arr = ah_cb_sim_arrivals(f.cb);
    int arrivals_before = cJSON_GetArraySize(arr);
    cJSON_Delete(arr);
    ah_sim_stats s0, s1;
    ah_sim_get_stats(f.cb_sim, &s0);
    ah_sim_fault_after(f.cb_sim, "PUT", "/corporate/CandidateStatus",
                       _i == 0 ? AH_SIM_AFTER_DROP : AH_SIM_AFTER_TRUNCATE, 1);
    ah_sync_stats st;
    sync_type(&f, "applications", &st);
    ck_assert_int_eq(st.updated, 1);
    ck_assert(drain_deliveries(&f));
    ah_sim_fault_after(f.cb_sim, "*", "/", AH_SIM_AFTER_NONE, 0);
    ah_sim_get_stats(f.cb_sim, &s1);
    ck_assert_uint_eq(s1.fafter - s0.fafter, 1);
    arr = ah_cb_sim_arrivals(f.cb);
    ck_assert_int_eq(cJSON_GetArraySize(arr), arrivals_before + 1);
    cJSON_Delete(arr);
    expect after;
    expected_for(&f, sub, &after);
    ck_assert_str_eq(after.status, "Interviewing");
    check_cb_holds(&f, sub, &after);
    teardown(&f);
}
END_TEST

/* ---- 4: a pushed status whose outcome stays unknown is never sent again ------- */

/* Makes the cb connection's waiting delivery due now (skips its backoff). */
static void make_due(fixture *f)
{
    ah_delivery_row d;
    memset(&d, 0, sizeof d);
    ck_assert_int_eq(f->core->store->ops->delivery_next(f->core->store, f->cb_conn_id, &d), 0);
    ck_assert_int_eq(f->core->store->ops->delivery_retry(f->core->store, f->cb_conn_id,
                                                         d.outbox_id, "2000-01-01T00:00:00.000Z",
                                                         "test: due now"),
                     0);
    ah_delivery_row_free(&d);
}

/* CareerBuilder stores the pushed status, and every answer under its path
 * is lost meanwhile (the PUT's and the reads that would settle it): the
 * outcome is unknown, the event is kept and retried, and every retry asks
 * CareerBuilder instead of sending (still unreadable: nothing sent). Once
 * CareerBuilder answers again, the next delivery finds the status stored and
 * the event is done. One PUT reached CareerBuilder in all. */
START_TEST(test_push_outcome_unknown_not_resent)
{
    fixture f;
    setup(&f, 5);
    initial_sync(&f, 5);
    long sub = -1;
    expect before;
    for (long id = 5000001; id <= 5000005 && sub < 0; id++) {
        expected_for(&f, id, &before);
        if (before.stage != 3)
            sub = id;
    }
    ck_assert_int_gt(sub, 0);
    ah_erecruit_sim_now(f.er, FIXED_CLOCK + 600);
    char *token = er_token(&f);
    er_move(&f, token, sub, 3);
    free(token);
    cJSON *arr = ah_cb_sim_arrivals(f.cb);
    int arrivals_before = cJSON_GetArraySize(arr);
    cJSON_Delete(arr);
    ah_cb_sim_stats c0, c1;
    ah_cb_sim_get_stats(f.cb, &c0);
    ah_sim_fault_after(f.cb_sim, "*", "/corporate/CandidateStatus", AH_SIM_AFTER_DROP, 100000);
    ah_sync_stats st;
    sync_type(&f, "applications", &st);
    ck_assert_int_eq(st.updated, 1);
    tick_a_little(&f);
    ck_assert(!cb_idle(&f)); /* the event waits */
    for (int i = 0; i < 3; i++) {
        /* Retries while CareerBuilder is still unreadable (the backoff is
         * skipped: every delivery is made due now). */
        make_due(&f);
        tick_a_little(&f);
    }
    ah_sim_fault_after(f.cb_sim, "*", "/", AH_SIM_AFTER_NONE, 0);
    ah_cb_sim_get_stats(f.cb, &c1);
    ck_assert_uint_eq(c1.puts - c0.puts, 1);
    ck_assert(!cb_idle(&f));
    make_due(&f);
    ck_assert(drain_deliveries(&f));
    ah_cb_sim_get_stats(f.cb, &c1);
    ck_assert_uint_eq(c1.puts - c0.puts, 1);
    arr = ah_cb_sim_arrivals(f.cb);
    ck_assert_int_eq(cJSON_GetArraySize(arr), arrivals_before + 1);
    cJSON_Delete(arr);
    expect after;
    expected_for(&f, sub, &after);
    check_cb_holds(&f, sub, &after);
    teardown(&f);
}
END_TEST

static Suite *cbe_suite(void)
{
    Suite *s = suite_create("cb_erecruit");
    TCase *tc = tcase_create("push");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stage_change_reaches_careerbuilder);
    tcase_add_test(tc, test_outage_50_changes_in_order);
    tcase_add_loop_test(tc, test_push_answer_lost, 0, 2);
    tcase_add_test(tc, test_push_outcome_unknown_not_resent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cbe_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
