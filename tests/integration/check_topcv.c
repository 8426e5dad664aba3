/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TopCV plugin end to end, in process: the core with its HTTP server,
 * the topcv plugin, and the TopCV simulator (tests/sim/topcv.h) delivering
 * signed webhooks to the connection's webhook URL.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "rest.h"
#include "sync.h"
#include "tracking.h"
#include "events.h"
#include "sim/topcv.h"
#include "support/harness.h"

#define TOKEN "tcv-access-token"
#define SECRET "tcv-secret-key"

typedef struct fx {
    char *dir;
    ah_core *core;
    ah_sim *sim;
    ah_topcv_sim *tc;
    char base[64];
    int64_t tenant_id, ats_id, tcv_id;
    char job[4][64]; /* atshub ids: backend, analyst, sales, closed */
} fx;

static int64_t add_conn(fx *f, const char *plugin, const char *name, const char *settings)
{
    ah_generation *gen = ah_registry_acquire(f->core->registry, plugin);
    ck_assert_ptr_nonnull(gen);
    cJSON *in = cJSON_Parse(settings);
    char *text = NULL, err[512];
    int64_t id = 0;
    ck_assert_msg(ah_settings_build(f->core, gen->desc->settings, plugin, NULL, in, true, NULL,
                                    &text, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(f->core->store->ops->connection_add(f->core->store, f->tenant_id, plugin, name,
                                                         text, &id), 0);
    free(text);
    cJSON_Delete(in);
    ah_generation_release(gen);
    ck_assert_int_eq(ah_conns_reload(f->core), 0);
    return id;
}

static void add_job(fx *f, int i, const char *remote, const char *fields)
{
    ah_record_in in = {"job", remote, "2026-01-01T00:00:00.000Z", "{}", fields};
    char *id = NULL;
    ck_assert_int_eq(f->core->store->ops->records_upsert(f->core->store, f->ats_id, &in, 1, NULL,
                                                         NULL, NULL, &id), 0);
    snprintf(f->job[i], sizeof f->job[i], "%s", id);
    free(id);
}

/* The plugin runs as AH_TEST_ISOLATION says, by default in a process of
 * its own. */
static void assert_isolation(ah_core *core, const char *plugin)
{
    const char *iso = getenv("AH_TEST_ISOLATION");
    if (iso == NULL)
        iso = "process";
    cJSON *pl = ah_core_plugins_json(core, plugin);
    ck_assert_ptr_nonnull(pl);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(pl, 0), "isolation")->valuestring,
                     iso);
    cJSON_Delete(pl);
}

static void setup(fx *f)
{
    memset(f, 0, sizeof *f);
    f->dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(f->dir);
    char extra[512];
    /* AH_TEST_ISOLATION=in_process (ctest check_topcv_in_process): the same
     * suite with the plugin, and its webhook route, in the daemon's process
     * (by default in a process of its own). */
    const char *iso = getenv("AH_TEST_ISOLATION");
    snprintf(extra, sizeof extra, "topcv = %s/topcv.so\n%s%s%s", ah_t_env("AH_PLUGIN_DIR"),
             iso != NULL ? "[plugin.topcv]\nisolation = " : "", iso != NULL ? iso : "",
             iso != NULL ? "\n" : "");
    char *ini = ah_t_write_ini(f->dir, extra);
    ah_config cfg;
    char err[1024];
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    free(ini);
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    f->core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ck_assert_msg(f->core != NULL, "%s", err);
    ck_assert_msg(ah_daemon_start(f->core, err, sizeof err) == 0, "%s", err);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u", (unsigned)ah_httpd_port(f->core->httpd));
    assert_isolation(f->core, "topcv");

    ah_sim_opts so = {.seed = 7};
    f->sim = ah_sim_new(&so);
    ck_assert_ptr_nonnull(f->sim);
    f->tc = ah_topcv_sim_attach(f->sim, NULL);
    ck_assert_ptr_nonnull(f->tc);
    ck_assert_int_eq(ah_sim_start(f->sim), 0);

    char hash[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex("ahk_topcv_tenant_key", 20, hash);
    ck_assert_int_eq(f->core->store->ops->tenant_add(f->core->store, "acme", hash, &f->tenant_id), 0);
    f->ats_id = add_conn(f, "template", "ats", "{}");
    char settings[512];
    snprintf(settings, sizeof settings, "{\"base_url\":\"%s\",\"public_url\":\"%s\"}",
             ah_sim_url(f->sim), f->base);
    f->tcv_id = add_conn(f, "topcv", "tcv", settings);
    add_job(f, 0, "J-1",
            "{\"title\":\"Backend Engineer\",\"status\":\"open\",\"description\":\"Build APIs\","
            "\"requirements\":\"C, SQL\",\"salary\":\"20-30M VND\",\"location\":{\"city\":\"Ha Noi\"},"
            "\"job_type\":\"FULL_TIME\",\"deadline\":\"2026-12-31\",\"quantity\":2}");
    add_job(f, 1, "J-2",
            "{\"title\":\"Data Analyst\",\"status\":\"PUBLISHED\",\"description\":\"Dashboards\","
            "\"requirements\":\"SQL\",\"location\":{\"city\":\"Da Nang\"},\"job_type\":\"part-time\","
            "\"quantity\":1}");
    add_job(f, 2, "J-3",
            "{\"title\":\"Sales Manager\",\"status\":\"open\",\"stages\":[\"Screening\",\"Interview\"]}");
    add_job(f, 3, "J-4", "{\"title\":\"Closed Role\",\"status\":\"closed\"}");
}

static void teardown(fx *f)
{
    ah_daemon_close(f->core);
    ah_sim_stop(f->sim);
    ah_topcv_sim_free(f->tc);
    ah_t_rmrf(f->dir);
    free(f->dir);
}

/* One bus request; the reply body (owned by the caller) or NULL with the
 * error code in code. */
static cJSON *call(fx *f, const char *topic, const char *json, char code[64])
{
    ah_reply r;
    memset(&r, 0, sizeof r);
    ah_core_request(f->core, "acme", "tcv", topic, cJSON_Parse(json != NULL ? json : "{}"), &r);
    cJSON *body = NULL;
    if (code != NULL)
        code[0] = '\0';
    if (r.ok) {
        body = r.body;
        r.body = NULL;
    } else if (code != NULL) {
        snprintf(code, 64, "%s", r.code);
    }
    if (!r.ok)
        fprintf(stderr, "%s -> %s: %s\n", topic, r.code, r.message ? r.message : "");
    ah_reply_free(&r);
    return body;
}

static cJSON *ok(fx *f, const char *topic, const char *json)
{
    char code[64];
    cJSON *b = call(f, topic, json, code);
    ck_assert_msg(b != NULL, "%s failed: %s", topic, code);
    return b;
}

static void refused(fx *f, const char *topic, const char *json, const char *want)
{
    char code[64];
    cJSON *b = call(f, topic, json, code);
    ck_assert_msg(b == NULL, "%s should fail", topic);
    ck_assert_str_eq(code, want);
}

static const char *s_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void configure(fx *f)
{
    cJSON *r = ok(f, "postings.configure", "{\"api_key\":\"" TOKEN "\",\"secret_key\":\"" SECRET "\"}");
    ck_assert_str_eq(s_of(r, "state"), "configured");
    ah_topcv_sim_set_webhook(f->tc, s_of(r, "webhook_url"));
    cJSON_Delete(r);
}

typedef struct topic_count {
    const char *topic;
    int n;
} topic_count;

static void count_cb(void *arg, const ah_outbox_row *row)
{
    topic_count *c = arg;
    if (strcmp(row->topic, c->topic) == 0)
        c->n++;
}

static int events(fx *f, const char *topic)
{
    topic_count c = {topic, 0};
    ck_assert_int_eq(f->core->store->ops->outbox_pending(f->core->store, 1000, count_cb, &c), 0);
    return c.n;
}

static int64_t records(fx *f, const char *type)
{
    return f->core->store->ops->record_count(f->core->store, f->tcv_id, type);
}

static const cJSON *first(const cJSON *reply, const char *list)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(reply, list), 0);
}

/* ------------------------------------------------------------------------ */

START_TEST(test_configure)
{
    fx f;
    setup(&f);
    cJSON *st = ok(&f, "postings.status", NULL);
    ck_assert_str_eq(s_of(st, "state"), "not_configured");
    ck_assert_str_eq(s_of(st, "label"), "Not configured");
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s/integrations/topcv/webhook/", f.base);
    ck_assert_ptr_nonnull(s_of(st, "webhook_url"));
    ck_assert_int_eq(strncmp(s_of(st, "webhook_url"), prefix, strlen(prefix)), 0);
    ck_assert_uint_ge(strlen(s_of(st, "webhook_url")), strlen(prefix) + 32);

    refused(&f, "postings.configure", "{\"api_key\":\"wrong\",\"secret_key\":\"" SECRET "\"}",
            "invalid_credentials");
    refused(&f, "postings.configure", "{\"api_key\":\"" TOKEN "\",\"secret_key\":\"wrong\"}",
            "invalid_credentials");
    refused(&f, "postings.configure", "{\"api_key\":\"" TOKEN "\"}", "invalid_request");
    cJSON *st2 = ok(&f, "postings.status", NULL);
    ck_assert_str_eq(s_of(st2, "state"), "not_configured");
    cJSON_Delete(st2);
    /* Posting needs a configured connection. */
    char body[128];
    snprintf(body, sizeof body, "{\"job_id\":\"%s\"}", f.job[0]);
    refused(&f, "postings.publish", body, "not_configured");

    cJSON *r = ok(&f, "postings.configure", "{\"api_key\":\"" TOKEN "\",\"secret_key\":\"" SECRET "\"}");
    ck_assert_str_eq(s_of(r, "state"), "configured");
    ck_assert_str_eq(s_of(cJSON_GetObjectItemCaseSensitive(r, "employer"), "company_name"), "ACME Vietnam");
    ck_assert_str_eq(s_of(r, "webhook_url"), s_of(st, "webhook_url"));
    cJSON_Delete(r);
    st2 = ok(&f, "postings.status", NULL);
    ck_assert_str_eq(s_of(st2, "label"), "Configured");
    ck_assert_str_eq(s_of(st2, "webhook_url"), s_of(st, "webhook_url"));
    cJSON_Delete(st2);
    /* Update with the same pair works too. */
    cJSON_Delete(ok(&f, "postings.configure", "{\"api_key\":\"" TOKEN "\",\"secret_key\":\"" SECRET "\"}"));
    cJSON_Delete(st);
    teardown(&f);
}
END_TEST

START_TEST(test_post_approve_reject_update)
{
    fx f;
    setup(&f);
    configure(&f);
    char body[512];
    /* The analyst job lacks salary and deadline: named before posting. */
    snprintf(body, sizeof body, "{\"job_id\":\"%s\",\"preview\":true}", f.job[1]);
    cJSON *pv = ok(&f, "postings.publish", body);
    const cJSON *miss = cJSON_GetObjectItemCaseSensitive(pv, "missing");
    ck_assert_int_eq(cJSON_GetArraySize(miss), 2);
    ck_assert_str_eq(cJSON_GetArrayItem(miss, 0)->valuestring, "salary");
    ck_assert_str_eq(cJSON_GetArrayItem(miss, 1)->valuestring, "deadline");
    const cJSON *form = cJSON_GetObjectItemCaseSensitive(pv, "form");
    ck_assert_str_eq(s_of(form, "city"), "Da Nang");
    ck_assert_str_eq(s_of(form, "job_type"), "part_time");
    cJSON_Delete(pv);
    snprintf(body, sizeof body, "{\"job_id\":\"%s\"}", f.job[1]);
    refused(&f, "postings.publish", body, "missing_fields");
    ah_topcv_sim_stats ss;
    ah_topcv_sim_get_stats(f.tc, &ss);
    ck_assert_uint_eq(ss.jobs_posted, 0);
    snprintf(body, sizeof body,
             "{\"job_id\":\"%s\",\"overrides\":{\"bogus\":\"x\"}}", f.job[1]);
    refused(&f, "postings.publish", body, "invalid_request");
    snprintf(body, sizeof body,
             "{\"job_id\":\"%s\",\"overrides\":{\"salary\":\"15M\",\"deadline\":\"2026-10-01\"}}",
             f.job[1]);
    cJSON *p = ok(&f, "postings.publish", body);
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(p, "posting");
    char tid[64];
    snprintf(tid, sizeof tid, "%s", s_of(post, "topcv_id"));
    ck_assert_str_eq(s_of(post, "state"), "pending");
    ck_assert_str_eq(s_of(post, "job_id"), f.job[1]);
    ck_assert_ptr_nonnull(s_of(post, "posted_at"));
    cJSON_Delete(p);
    cJSON *sj = ah_topcv_sim_job(f.tc, tid);
    ck_assert_str_eq(s_of(sj, "salary"), "15M");
    ck_assert_str_eq(s_of(sj, "title"), "Data Analyst");
    cJSON_Delete(sj);
    refused(&f, "postings.publish", body, "conflict");
    refused(&f, "postings.publish", "{\"job_id\":\"nope\"}", "not_found");

    /* Approval arrives by webhook. */
    ck_assert_int_eq(ah_topcv_sim_approve(f.tc, tid), 200);
    cJSON *l = ok(&f, "postings.list", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(l, "postings")), 1);
    ck_assert_str_eq(s_of(first(l, "postings"), "state"), "approved");
    ck_assert_ptr_nonnull(s_of(first(l, "postings"), "approved_at"));
    cJSON_Delete(l);
    ck_assert_int_eq(events(&f, "event.posting.approved"), 1);
    ck_assert_int_eq(ah_topcv_sim_redeliver(f.tc), 200);
    ck_assert_int_eq(events(&f, "event.posting.approved"), 1);
    cJSON *n = ok(&f, "postings.notices", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(n, "notices")), 1);
    ck_assert_str_eq(s_of(first(n, "notices"), "kind"), "posting.approved");
    ck_assert_ptr_nonnull(strstr(s_of(first(n, "notices"), "message"), "Data Analyst"));
    cJSON_Delete(n);

    /* The backend job is complete: posted as is, then rejected. */
    snprintf(body, sizeof body, "{\"job_id\":\"%s\"}", f.job[0]);
    p = ok(&f, "postings.publish", body);
    char tid2[64];
    snprintf(tid2, sizeof tid2, "%s", s_of(cJSON_GetObjectItemCaseSensitive(p, "posting"), "topcv_id"));
    cJSON_Delete(p);
    ck_assert_int_eq(ah_topcv_sim_reject(f.tc, tid2, "salary range required"), 200);
    snprintf(body, sizeof body, "{\"job_id\":\"%s\"}", f.job[0]);
    l = ok(&f, "postings.list", body);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(l, "postings")), 1);
    ck_assert_str_eq(s_of(first(l, "postings"), "state"), "rejected");
    ck_assert_str_eq(s_of(first(l, "postings"), "reason"), "salary range required");
    cJSON_Delete(l);
    ck_assert_int_eq(events(&f, "event.posting.rejected"), 1);
    n = ok(&f, "postings.notices", "{\"kind\":\"posting.rejected\"}");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(n, "notices")), 1);
    cJSON_Delete(n);

    /* Update pushes the form again, with new overrides. */
    snprintf(body, sizeof body, "{\"topcv_id\":\"%s\",\"overrides\":{\"title\":\"Senior Backend Engineer\"}}", tid2);
    p = ok(&f, "postings.update", body);
    ck_assert_str_eq(s_of(cJSON_GetObjectItemCaseSensitive(p, "posting"), "title"), "Senior Backend Engineer");
    cJSON_Delete(p);
    sj = ah_topcv_sim_job(f.tc, tid2);
    ck_assert_str_eq(s_of(sj, "title"), "Senior Backend Engineer");
    cJSON_Delete(sj);
    ah_topcv_sim_get_stats(f.tc, &ss);
    ck_assert_uint_eq(ss.jobs_posted, 2);
    ck_assert_uint_eq(ss.jobs_updated, 1);
    refused(&f, "postings.update", "{\"topcv_id\":\"424242\"}", "not_found");
    teardown(&f);
}
END_TEST

/* The state of a posting of `job` (atshub job id). */
static char *posting_state(fx *f, const char *job)
{
    char body[128];
    snprintf(body, sizeof body, "{\"job_id\":\"%s\"}", job);
    cJSON *l = ok(f, "postings.list", body);
    char *st = strdup(s_of(first(l, "postings"), "state"));
    cJSON_Delete(l);
    return st;
}

static void publish_job(fx *f, const char *job, const char *overrides, char tid[64])
{
    char body[512];
    snprintf(body, sizeof body, "{\"job_id\":\"%s\"%s%s}", job, overrides ? ",\"overrides\":" : "",
             overrides ? overrides : "");
    cJSON *p = ok(f, "postings.publish", body);
    snprintf(tid, 64, "%s", s_of(cJSON_GetObjectItemCaseSensitive(p, "posting"), "topcv_id"));
    cJSON_Delete(p);
}

/* TopCV sends an event again when our 200 was lost, possibly after later
 * events, and may deliver an older event late: a redelivered event id
 * changes nothing, and an event made before the one that set the stored
 * state (created_at) does not overwrite it. The simulator numbers its
 * events evt-1, evt-2, ... in the order it makes them. */
START_TEST(test_job_events_redelivered_and_out_of_order)
{
    fx f;
    setup(&f);
    configure(&f);
    cJSON *st = ok(&f, "postings.status", NULL);
    char url[256];
    snprintf(url, sizeof url, "%s", s_of(st, "webhook_url"));
    cJSON_Delete(st);
    char tid[64], tid2[64];
    publish_job(&f, f.job[0], NULL, tid);
    /* evt-1 rejected (its 200 lost, say), evt-2 approved, then evt-1 again. */
    ck_assert_int_eq(ah_topcv_sim_reject(f.tc, tid, "salary range required"), 200);
    ck_assert_int_eq(ah_topcv_sim_approve(f.tc, tid), 200);
    char *s = posting_state(&f, f.job[0]);
    ck_assert_str_eq(s, "approved");
    free(s);
    ck_assert_int_eq(ah_topcv_sim_redeliver_id(f.tc, "evt-1"), 200);
    s = posting_state(&f, f.job[0]);
    ck_assert_str_eq(s, "approved");
    free(s);
    ck_assert_int_eq(events(&f, "event.posting.rejected"), 1);
    ck_assert_int_eq(events(&f, "event.posting.approved"), 1);
    ck_assert_int_eq(records(&f, "notice"), 2);

    /* evt-3 rejected cannot be delivered (no URL at TopCV), evt-4 approved
     * is; evt-3 arrives last: kept as a notice, the posting stays approved. */
    publish_job(&f, f.job[1], "{\"salary\":\"15M\",\"deadline\":\"2026-10-01\"}", tid2);
    ah_topcv_sim_set_webhook(f.tc, NULL);
    ck_assert_int_eq(ah_topcv_sim_reject(f.tc, tid2, "too late"), -1);
    ah_topcv_sim_set_webhook(f.tc, url);
    ck_assert_int_eq(ah_topcv_sim_approve(f.tc, tid2), 200);
    ck_assert_int_eq(ah_topcv_sim_redeliver_id(f.tc, "evt-3"), 200);
    s = posting_state(&f, f.job[1]);
    ck_assert_str_eq(s, "approved");
    free(s);
    ck_assert_int_eq(events(&f, "event.posting.rejected"), 1);
    ck_assert_int_eq(events(&f, "event.posting.approved"), 2);
    ck_assert_int_eq(records(&f, "notice"), 4);
    ck_assert_int_eq(ah_topcv_sim_redeliver_id(f.tc, "evt-3"), 200);
    ck_assert_int_eq(records(&f, "notice"), 4);
    s = posting_state(&f, f.job[1]);
    ck_assert_str_eq(s, "approved");
    free(s);
    teardown(&f);
}
END_TEST

static cJSON *application_of(fx *f, const char *app)
{
    ah_record_row row;
    memset(&row, 0, sizeof row);
    if (f->core->store->ops->record_get(f->core->store, f->tcv_id, "application", app, &row) != 0)
        return NULL;
    cJSON *fields = cJSON_Parse(row.fields);
    ah_record_row_free(&row);
    return fields;
}

/* TopCV's candidate id keys the candidate record: one that cannot be kept
 * whole (over 128 characters) is refused with nothing stored, so two
 * long ids sharing a prefix never become one candidate; ids that fit stay
 * apart however alike. */
START_TEST(test_candidate_id_bounded)
{
    fx f;
    setup(&f);
    configure(&f);
    char a[200], b[200], app[64];
    memset(a, 'C', 154);
    memcpy(b, a, 154);
    a[154] = 'A';
    b[154] = 'B';
    a[155] = b[155] = '\0';
    ck_assert_int_eq(ah_topcv_sim_apply_as(f.tc, "9001", "Sales Manager", a, "Long A", NULL, "cv",
                                           app),
                     400);
    ck_assert_int_eq(ah_topcv_sim_apply_as(f.tc, "9001", "Sales Manager", b, "Long B", NULL, "cv",
                                           app),
                     400);
    ck_assert_int_eq(records(&f, "candidate"), 0);
    ck_assert_int_eq(records(&f, "application"), 0);
    ck_assert_int_eq(records(&f, "attachment"), 0);
    a[127] = 'A';
    b[127] = 'B';
    a[128] = b[128] = '\0';
    ck_assert_int_eq(ah_topcv_sim_apply_as(f.tc, "9001", "Sales Manager", a, "Fits A", NULL, "cv",
                                           app),
                     200);
    ck_assert_int_eq(ah_topcv_sim_apply_as(f.tc, "9001", "Sales Manager", b, "Fits B", NULL, "cv",
                                           app),
                     200);
    ck_assert_int_eq(records(&f, "candidate"), 2);
    ck_assert_int_eq(records(&f, "application"), 2);
    teardown(&f);
}
END_TEST

START_TEST(test_link_and_cvs)
{
    fx f;
    setup(&f);
    configure(&f);
    /* "Add posted job": a job made on TopCV, linked to the backend job. */
    char *tj = ah_topcv_sim_create_job(f.tc, "Backend Dev (HN)");
    char body[512], app[64];
    snprintf(body, sizeof body, "{\"topcv_id\":\"%s\",\"job_id\":\"%s\"}", tj, f.job[0]);
    cJSON *p = ok(&f, "postings.link", body);
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(p, "posting");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(post, "linked")));
    ck_assert_str_eq(s_of(post, "state"), "approved");
    cJSON_Delete(p);
    snprintf(body, sizeof body, "{\"topcv_id\":\"777777\",\"job_id\":\"%s\"}", f.job[0]);
    refused(&f, "postings.link", body, "not_found");

    /* A CV for the linked posting lands in the linked job's first stage. */
    ck_assert_int_eq(ah_topcv_sim_apply(f.tc, tj, NULL, "Nguyen Van A", "a@example.vn",
                                        "CV of A", app), 200);
    cJSON *a = application_of(&f, app);
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(s_of(a, "job_id"), f.job[0]);
    ck_assert_str_eq(s_of(a, "stage"), "Applied");
    ck_assert_str_eq(s_of(a, "matched_by"), "posting");
    ck_assert_ptr_nonnull(s_of(a, "cv_attachment_id"));
    cJSON_Delete(a);
    ck_assert_int_eq(events(&f, "event.candidate.created"), 1);
    ck_assert_int_eq(events(&f, "event.application.created"), 1);
    ck_assert_int_eq(records(&f, "attachment"), 1);
    ah_record_row row;
    memset(&row, 0, sizeof row);
    char cvr[80];
    snprintf(cvr, sizeof cvr, "cv-%s", app);
    ck_assert_int_eq(f.core->store->ops->record_get(f.core->store, f.tcv_id, "attachment", cvr, &row), 0);
    ck_assert_ptr_nonnull(strstr(row.fields, "\"content_base64\":\"Q1Ygb2YgQQ==\""));
    ck_assert_ptr_nonnull(strstr(row.fields, "\"size\":7"));
    ah_record_row_free(&row);

    /* Delivered twice: one candidate, one application. */
    ck_assert_int_eq(ah_topcv_sim_redeliver(f.tc), 200);
    ah_topcv_sim_set_fault(f.tc, AH_TOPCV_FAULT_DUPLICATE);
    ck_assert_int_eq(ah_topcv_sim_apply(f.tc, tj, NULL, "Tran Thi B", NULL, "CV of B", app), 200);
    ah_topcv_sim_set_fault(f.tc, AH_TOPCV_FAULT_NONE);
    ck_assert_int_eq(records(&f, "application"), 2);
    ck_assert_int_eq(records(&f, "candidate"), 2);
    ck_assert_int_eq(events(&f, "event.application.created"), 2);
    ck_assert_int_eq(events(&f, "event.candidate.created"), 2);

    /* Not linked: matched by title, trimmed and case-insensitive. */
    ck_assert_int_eq(ah_topcv_sim_apply(f.tc, "9001", "  sales MANAGER ", "Le C", NULL, "CV C", app), 200);
    a = application_of(&f, app);
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(s_of(a, "job_id"), f.job[2]);
    ck_assert_str_eq(s_of(a, "stage"), "Screening");
    ck_assert_str_eq(s_of(a, "matched_by"), "title");
    cJSON_Delete(a);

    /* No open job with that title: the Pending pool. */
    ck_assert_int_eq(ah_topcv_sim_apply(f.tc, "9002", "Closed Role", "Pham D", NULL, "CV D", app), 200);
    ck_assert_ptr_null(application_of(&f, app));
    ck_assert_int_eq(ah_topcv_sim_apply(f.tc, "9003", "Astronaut", "Vo E", NULL, "CV E", app), 200);
    ck_assert_ptr_null(application_of(&f, app));
    cJSON *pend = ok(&f, "postings.pending", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(pend, "pending")), 2);
    /* Listed in atshub-id order, which two arrivals in one millisecond do
     * not fix: find Vo E by name. */
    const cJSON *e = NULL, *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pend, "pending"))
        if (s_of(it, "name") != NULL && strcmp(s_of(it, "name"), "Vo E") == 0)
            e = it;
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(s_of(e, "job_title"), "Astronaut");
    char pid[64];
    snprintf(pid, sizeof pid, "%s", s_of(e, "id"));
    cJSON_Delete(pend);
    int apps_before = events(&f, "event.application.created");
    ck_assert_int_eq(ah_topcv_sim_redeliver(f.tc), 200); /* still one entry */
    snprintf(body, sizeof body, "{\"pending_id\":\"%s\",\"job_id\":\"%s\"}", pid, f.job[2]);
    cJSON *as = ok(&f, "postings.assign", body);
    ck_assert_str_eq(s_of(as, "stage"), "Screening");
    cJSON_Delete(as);
    a = application_of(&f, app);
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(s_of(a, "job_id"), f.job[2]);
    ck_assert_str_eq(s_of(a, "matched_by"), "assigned");
    cJSON_Delete(a);
    ck_assert_int_eq(events(&f, "event.application.created"), apps_before + 1);
    refused(&f, "postings.assign", body, "conflict");
    pend = ok(&f, "postings.pending", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(pend, "pending")), 1);
    cJSON_Delete(pend);
    cJSON *n = ok(&f, "postings.notices", "{\"kind\":\"application.created\"}");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(n, "notices")), 5);
    cJSON_Delete(n);
    free(tj);
    teardown(&f);
}
END_TEST

START_TEST(test_webhook_refusals_and_disconnect)
{
    fx f;
    setup(&f);
    configure(&f);
    cJSON *st = ok(&f, "postings.status", NULL);
    char url[256];
    snprintf(url, sizeof url, "%s", s_of(st, "webhook_url"));
    cJSON_Delete(st);
    char app[64];
    ah_topcv_sim_set_fault(f.tc, AH_TOPCV_FAULT_BAD_SIGNATURE);
    ck_assert_int_eq(ah_topcv_sim_apply(f.tc, "9001", "Sales Manager", "X", NULL, "cv", app), 401);
    ah_topcv_sim_set_fault(f.tc, AH_TOPCV_FAULT_STALE);
    ck_assert_int_eq(ah_topcv_sim_apply(f.tc, "9001", "Sales Manager", "X", NULL, "cv", app), 401);
    ah_topcv_sim_set_fault(f.tc, AH_TOPCV_FAULT_NONE);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    ck_assert_int_eq(ah_t_http("POST", url, hdr, "{\"id\":\"e\",\"event\":\"job.approved\",\"data\":{}}", NULL), 401);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/integrations/topcv/webhook/not-a-token", f.base);
    ck_assert_int_eq(ah_t_http("POST", bad, hdr, "{}", NULL), 404);
    ck_assert_int_eq(records(&f, "candidate"), 0);
    ck_assert_int_eq(records(&f, "notice"), 0);
    ck_assert_int_eq(records(&f, "pending_candidate"), 0);
    ah_topcv_sim_stats ss;
    ah_topcv_sim_get_stats(f.tc, &ss);
    ck_assert_uint_eq(ss.failed_attempts, 6); /* 2 deliveries x 3 attempts */

    /* One good CV, then disconnect: data kept, the old URL refused. */
    ck_assert_int_eq(ah_topcv_sim_apply(f.tc, "9001", "Sales Manager", "Y", NULL, "cv", app), 200);
    ck_assert_int_eq(records(&f, "application"), 1);
    cJSON *d = ok(&f, "postings.disconnect", NULL);
    ck_assert_str_eq(s_of(d, "state"), "not_configured");
    cJSON_Delete(d);
    st = ok(&f, "postings.status", NULL);
    ck_assert_str_eq(s_of(st, "label"), "Not configured");
    ck_assert_str_ne(s_of(st, "webhook_url"), url);
    ck_assert_int_eq(ah_topcv_sim_apply(f.tc, "9001", "Sales Manager", "Z", NULL, "cv", app), 404);
    /* Even at the new URL nothing is taken without credentials. */
    ah_topcv_sim_set_webhook(f.tc, s_of(st, "webhook_url"));
    cJSON_Delete(st);
    ck_assert_int_eq(ah_topcv_sim_apply(f.tc, "9001", "Sales Manager", "Z", NULL, "cv", app), 401);
    ck_assert_int_eq(records(&f, "application"), 1);
    ck_assert_int_eq(records(&f, "candidate"), 1);
    cJSON *l = ok(&f, "postings.notices", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(l, "notices")), 1);
    cJSON_Delete(l);
    /* Connected again: the new URL works. */
    configure(&f);
    ck_assert_int_eq(ah_topcv_sim_apply(f.tc, "9001", "Sales Manager", "Z", NULL, "cv", app), 200);
    ck_assert_int_eq(records(&f, "application"), 2);
    teardown(&f);
}
END_TEST

/* Every integration log row, checked for `secret` in any text column. */
typedef struct log_scan {
    const char *secret;
    int rows, leaks, redacted;
} log_scan;

static bool holds(const char *text, const char *secret)
{
    return text != NULL && strstr(text, secret) != NULL;
}

static void scan_cb(void *arg, const ah_log_entry *e)
{
    log_scan *s = arg;
    s->rows++;
    if (holds(e->path, s->secret) || holds(e->body, s->secret) ||
        holds(e->correlation_id, s->secret) || holds(e->source, s->secret))
        s->leaks++;
    if (e->path != NULL && strcmp(e->path, "/integrations/topcv/webhook/***") == 0)
        s->redacted++;
}

/* Issue 16, finding 5: the webhook's path carries the connection's token;
 * the integration log must not. */
START_TEST(test_webhook_token_not_logged)
{
    fx f;
    setup(&f);
    configure(&f);
    cJSON *st = ok(&f, "postings.status", NULL);
    const char *url = s_of(st, "webhook_url");
    const char *tok = strstr(url, "/webhook/");
    ck_assert_ptr_nonnull(tok);
    tok += strlen("/webhook/");
    ck_assert_uint_gt(strlen(tok), 8);
    char app[64];
    /* Accepted, refused by the plugin (bad signature) and a body that
     * names the token: none of them may log it. */
    ck_assert_int_eq(ah_topcv_sim_apply(f.tc, "9001", "Sales Manager", "Y", NULL, "cv", app), 200);
    ah_topcv_sim_set_fault(f.tc, AH_TOPCV_FAULT_BAD_SIGNATURE);
    ck_assert_int_eq(ah_topcv_sim_apply(f.tc, "9001", "Sales Manager", "X", NULL, "cv", app), 401);
    ah_topcv_sim_set_fault(f.tc, AH_TOPCV_FAULT_NONE);
    const char *hdr[] = {"Content-Type: application/json", NULL};
    char body[512];
    snprintf(body, sizeof body, "{\"id\":\"e\",\"event\":\"job.approved\",\"data\":{\"url\":\"%s\"}}",
             url);
    ck_assert_int_eq(ah_t_http("POST", url, hdr, body, NULL), 401);

    log_scan sc = {.secret = tok};
    ah_log_filter all = {.limit = 1000};
    ck_assert_int_eq(f.core->store->ops->log_query(f.core->store, &all, scan_cb, &sc), 0);
    ck_assert_int_gt(sc.rows, 0);
    ck_assert_int_ge(sc.redacted, 6); /* 3 calls at least, REQUEST + answer each */
    ck_assert_int_eq(sc.leaks, 0);
    /* The same through GET /v1/log, as a tenant reads it. */
    char logurl[128], *resp = NULL;
    snprintf(logurl, sizeof logurl, "%s/v1/log?limit=1000", f.base);
    const char *auth[] = {"Authorization: Bearer ahk_topcv_tenant_key", NULL};
    ck_assert_int_eq(ah_t_http("GET", logurl, auth, NULL, &resp), 200);
    ck_assert_ptr_nonnull(resp);
    ck_assert_ptr_nonnull(strstr(resp, "/integrations/topcv/webhook/***"));
    ck_assert_ptr_null(strstr(resp, tok));
    free(resp);
    cJSON_Delete(st);
    teardown(&f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("topcv");
    TCase *tc = tcase_create("e2e");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_configure);
    tcase_add_test(tc, test_post_approve_reject_update);
    tcase_add_test(tc, test_job_events_redelivered_and_out_of_order);
    tcase_add_test(tc, test_link_and_cvs);
    tcase_add_test(tc, test_candidate_id_bounded);
    tcase_add_test(tc, test_webhook_refusals_and_disconnect);
    tcase_add_test(tc, test_webhook_token_not_logged);
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
