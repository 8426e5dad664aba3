/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CareerBuilder plugin end to end, in process: the core with the
 * careerbuilder plugin against the CareerBuilder simulator. Statuses put,
 * read back, queried by emails and requisition ids with
 * status_date filters, through the bus and through /v1; and pushed from
 * another connection's events, also across an outage.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "careerbuilder.h"
#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "rest.h"
#include "sync.h"
#include "tracking.h"
#include "events.h"
#include "support/harness.h"

#define ACCOUNT "AAAA_1234"
#define API_KEY "ahk_cb_test_key_0123456789"

typedef struct fixture {
    char *dir;
    ah_sim *sim;
    ah_cb_sim *cb;
    ah_core *core;
    int64_t tenant_id;
    int64_t cb_conn_id;
    int64_t src_conn_id;
    char base[64];
    char auth[96];
} fixture;

static int64_t add_conn(fixture *f, const char *plugin, const char *name, cJSON *settings)
{
    ah_generation *gen = ah_registry_acquire(f->core->registry, plugin);
    ck_assert_ptr_nonnull(gen);
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

static void setup(fixture *f)
{
    memset(f, 0, sizeof *f);
    ah_sim_opts so = {.seed = 7};
    f->sim = ah_sim_new(&so);
    ck_assert_ptr_nonnull(f->sim);
    f->cb = ah_cb_sim_attach(f->sim, NULL);
    ck_assert_ptr_nonnull(f->cb);
    ck_assert_int_eq(ah_sim_start(f->sim), 0);

    f->dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(f->dir);
    char extra[600];
    /* AH_TEST_ISOLATION=in_process (ctest check_careerbuilder_in_process): the
     * same suite with the plugin in the daemon's process (by default it runs
     * in its own: issue 15). */
    const char *iso = getenv("AH_TEST_ISOLATION");
    snprintf(extra, sizeof extra, "careerbuilder = %s/careerbuilder.so\n%s%s%s",
             ah_t_env("AH_PLUGIN_DIR"), iso != NULL ? "[plugin.careerbuilder]\nisolation = " : "",
             iso != NULL ? iso : "", iso != NULL ? "\n" : "");
    char *ini = ah_t_write_ini(f->dir, extra);
    ck_assert_ptr_nonnull(ini);
    ah_config cfg;
    char err[1024];
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    free(ini);
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    f->core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ck_assert_msg(f->core != NULL, "%s", err);
    ck_assert_msg(ah_daemon_start(f->core, err, sizeof err) == 0, "%s", err);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u",
             (unsigned)ah_httpd_port(f->core->httpd));
    snprintf(f->auth, sizeof f->auth, "Authorization: Bearer %s", API_KEY);

    char hash[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex(API_KEY, strlen(API_KEY), hash);
    ck_assert_int_eq(f->core->store->ops->tenant_add(f->core->store, "acme", hash, &f->tenant_id),
                     0);
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "base_url", ah_sim_url(f->sim));
    cJSON_AddStringToObject(s, "client_id", "atshub");
    cJSON_AddStringToObject(s, "client_secret", "s3cret");
    cJSON_AddStringToObject(s, "account", ACCOUNT);
    cJSON_AddStringToObject(s, "status_map",
                            "{\"stage:Interview\":\"Interviewing\",\"stage:*\":\"In Process\","
                            "\"status:rejected\":\"Rejected\",\"candidate.created\":\"New\"}");
    f->cb_conn_id = add_conn(f, "careerbuilder", "cb", s);
    f->src_conn_id = add_conn(f, "template", "er", cJSON_CreateObject());
}

static void teardown(fixture *f)
{
    ah_daemon_close(f->core);
    ah_sim_stop(f->sim);
    ah_cb_sim_free(f->cb);
    ah_t_rmrf(f->dir);
    free(f->dir);
}

static cJSON *status_obj(const char *email, const char *req, const char *status,
                         const char *date)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "candidate_email", email);
    if (req != NULL)
        cJSON_AddStringToObject(o, "requisition_id", req);
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddStringToObject(o, "status_date", date);
    cJSON_AddStringToObject(o, "status_level", req != NULL ? "application" : "candidate");
    return o;
}

static void put_ok(fixture *f, cJSON *st)
{
    ah_reply r;
    ck_assert_msg(ah_core_request(f->core, "acme", "cb", "statuses.put", st, &r) == 0, "%s: %s",
                  r.code, r.message ? r.message : "");
    ah_reply_free(&r);
}

/* The reply's data list (the reply is kept in *r). */
static const cJSON *request_data(fixture *f, const char *topic, const char *body, ah_reply *r)
{
    ck_assert_msg(ah_core_request(f->core, "acme", "cb", topic, cJSON_Parse(body), r) == 0,
                  "%s: %s", r->code, r->message ? r->message : "");
    const cJSON *d = cJSON_GetObjectItem(r->body, "data");
    ck_assert(cJSON_IsArray(d));
    return d;
}

/* --- bus: put, get, query ---------------------------------------------------------- */

/* The seed's GET has results_per_page and status_date, no paging (the
 * simulator, like CareerBuilder, ignores any other parameter): statuses.get
 * is one request, and says whether its answer can be the whole list. */
START_TEST(test_put_and_read_back)
{
    fixture f;
    setup(&f);
    for (int i = 1; i <= 25; i++) {
        char req[16], date[32];
        snprintf(req, sizeof req, "R-%d", i);
        snprintf(date, sizeof date, "2024-01-%02dT10:00:00Z", i);
        put_ok(&f, status_obj("ann@example.com", req, "Applied", date));
    }
    /* The same unique key again updates instead of adding. */
    put_ok(&f, status_obj("ann@example.com", "R-1", "Interviewing", "2024-02-01T10:00:00Z"));
    ck_assert_uint_eq(ah_cb_sim_count(f.cb), 25);
    ah_reply r;
    const cJSON *d = request_data(&f, "statuses.get",
                                  "{\"candidate_email\":\"ann@example.com\"}", &r);
    ck_assert_int_eq(cJSON_GetArraySize(d), 25);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r.body, "complete")));
    int seen[26] = {0};
    const cJSON *it;
    cJSON_ArrayForEach(it, d)
    {
        int n = atoi(cJSON_GetObjectItem(it, "requisition_id")->valuestring + 2);
        ck_assert(n >= 1 && n <= 25);
        seen[n]++;
        ck_assert_str_eq(cJSON_GetObjectItem(it, "account")->valuestring, ACCOUNT);
        ck_assert_str_eq(cJSON_GetObjectItem(it, "vendor_key")->valuestring, "atshub");
        if (n == 1)
            ck_assert_str_eq(cJSON_GetObjectItem(it, "status")->valuestring, "Interviewing");
    }
    for (int i = 1; i <= 25; i++)
        ck_assert_int_eq(seen[i], 1);
    ah_reply_free(&r);
    ah_cb_sim_stats st;
    ah_cb_sim_get_stats(f.cb, &st);
    ck_assert_uint_eq(st.gets, 1);
    ck_assert_uint_eq(st.puts, 26);
    ck_assert_uint_eq(st.refused, 0);

    /* A smaller results_per_page: one GET, that many, each once, and the
     * answer says it may not be all. */
    d = request_data(&f, "statuses.get",
                     "{\"candidate_email\":\"ann@example.com\",\"results_per_page\":10}", &r);
    ck_assert_int_eq(cJSON_GetArraySize(d), 10);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r.body, "complete")));
    memset(seen, 0, sizeof seen);
    cJSON_ArrayForEach(it, d)
    {
        int n = atoi(cJSON_GetObjectItem(it, "requisition_id")->valuestring + 2);
        ck_assert(n >= 1 && n <= 25);
        ck_assert_int_eq(++seen[n], 1);
    }
    ah_reply_free(&r);
    ah_cb_sim_get_stats(f.cb, &st);
    ck_assert_uint_eq(st.gets, 2);

    /* status_date: strictly after. */
    d = request_data(&f, "statuses.get",
                     "{\"candidate_email\":\"ANN@example.com\",\"results_per_page\":10,"
                     "\"status_date\":\"2024-01-20T10:00:00Z\"}",
                     &r);
    ck_assert_int_eq(cJSON_GetArraySize(d), 6); /* R-21..R-25 and R-1 (updated) */
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r.body, "complete")));
    ah_reply_free(&r);
    teardown(&f);
}
END_TEST

/* The reply's "message" of one statuses.put (malloc'd). */
static char *put_message(fixture *f, cJSON *st)
{
    ah_reply r;
    ck_assert_msg(ah_core_request(f->core, "acme", "cb", "statuses.put", st, &r) == 0, "%s: %s",
                  r.code, r.message ? r.message : "");
    const cJSON *m = cJSON_GetObjectItem(r.body, "message");
    ck_assert(cJSON_IsString(m));
    char *out = strdup(m->valuestring);
    ah_reply_free(&r);
    return out;
}

/* A 2xx answer goes into the reply only as a JSON string of at most 1 KiB
 * (cut at a character boundary): any other body was copied whole, and a
 * string of any length. */
START_TEST(test_put_answer_bounded)
{
    fixture f;
    setup(&f);
    ah_cb_sim_put_answer(f.cb, "{\"echo\":{\"client_secret\":\"zzz\"}}");
    char *m = put_message(&f, status_obj("ann@example.com", "R-1", "Applied",
                                         "2024-01-01T10:00:00Z"));
    ck_assert_msg(strstr(m, "zzz") == NULL && strncmp(m, "Created/updated status", 22) == 0,
                  "%s", m);
    free(m);

    /* "a" and 1000 two-byte characters: 2001 bytes, byte 1024 inside one. */
    char big[2100] = "\"a";
    for (int i = 0; i < 1000; i++)
        strcat(big, "\xc3\xa9");
    strcat(big, "\"");
    ah_cb_sim_put_answer(f.cb, big);
    m = put_message(&f, status_obj("ann@example.com", "R-2", "Applied", "2024-01-01T10:00:00Z"));
    ck_assert_uint_eq(strlen(m), 1023);
    ck_assert_int_eq(memcmp(m, big + 1, 1023), 0);
    free(m);

    /* The seed's own answer is kept as it is. */
    m = put_message(&f, status_obj("ann@example.com", "R-3", "Applied", "2024-01-01T10:00:00Z"));
    ck_assert_str_eq(m, "Created/updated status.");
    free(m);
    teardown(&f);
}
END_TEST

START_TEST(test_query_by_emails_and_requisitions)
{
    fixture f;
    setup(&f);
    put_ok(&f, status_obj("a@example.com", "1", "Applied", "2024-03-01T00:00:00Z"));
    put_ok(&f, status_obj("a@example.com", "2", "Applied", "2024-03-02T00:00:00Z"));
    put_ok(&f, status_obj("b@example.com", "2", "Hired", "2024-03-03T00:00:00Z"));
    put_ok(&f, status_obj("c@example.com", "123", "Applied", "2024-03-04T00:00:00Z"));
    put_ok(&f, status_obj("b@example.com", NULL, "Active", "2024-03-05T00:00:00Z"));
    ah_reply r;
    const cJSON *d = request_data(
        &f, "statuses.query", "{\"candidate_email\":[\"a@example.com\",\"B@example.com\"]}", &r);
    ck_assert_int_eq(cJSON_GetArraySize(d), 4);
    ah_reply_free(&r);
    d = request_data(&f, "statuses.query", "{\"requisition_id\":[\"1\",\"2\",\"123\"]}", &r);
    ck_assert_int_eq(cJSON_GetArraySize(d), 4);
    ah_reply_free(&r);
    d = request_data(&f, "statuses.query",
                     "{\"requisition_ids\":[\"2\"],\"status_date\":\"2024-03-02T00:00:00Z\"}", &r);
    ck_assert_int_eq(cJSON_GetArraySize(d), 1);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 0), "candidate_email")->valuestring,
                     "b@example.com");
    ah_reply_free(&r);
    d = request_data(&f, "statuses.query",
                     "{\"emails\":[\"b@example.com\"],\"status_date\":\"2024-03-04T00:00:00Z\"}",
                     &r);
    ck_assert_int_eq(cJSON_GetArraySize(d), 1);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(d, 0), "status_level")->valuestring,
                     "candidate");
    ah_reply_free(&r);
    /* Refused before it leaves atshub. */
    ah_sim_stats before, after;
    ah_sim_get_stats(f.sim, &before);
    ck_assert_int_ne(ah_core_request(f.core, "acme", "cb", "statuses.put",
                                     status_obj("x@example.com", NULL, "Active", "2024-03-05"),
                                     &r),
                     0);
    ck_assert_str_eq(r.code, "invalid_request");
    ck_assert_int_eq(r.http_status, 400);
    ck_assert_ptr_nonnull(strstr(r.message, "status_date"));
    ah_reply_free(&r);
    ah_sim_get_stats(f.sim, &after);
    ck_assert_uint_eq(after.requests, before.requests);
    teardown(&f);
}
END_TEST

/* --- REST ------------------------------------------------------------------------------- */

START_TEST(test_rest_routes)
{
    fixture f;
    setup(&f);
    char url[512], *body = NULL;
    const char *h[] = {f.auth, "X-Connection: cb", "Content-Type: application/json", NULL};
    snprintf(url, sizeof url, "%s/v1/statuses", f.base);
    ck_assert_int_eq(ah_t_http("PUT", url, h,
                               "{\"candidate_email\":\"rest@example.com\",\"requisition_id\":\"9\","
                               "\"status\":\"Applied\",\"status_date\":\"2024-04-01T00:00:00Z\","
                               "\"status_level\":\"application\"}",
                               &body),
                     200);
    ck_assert_ptr_nonnull(strstr(body, "Created/updated status."));
    free(body);
    /* Each rule refused with the field named, in the standard envelope. */
    ck_assert_int_eq(ah_t_http("PUT", url, h,
                               "{\"candidate_email\":\"rest@example.com\",\"requisition_id\":\"9\","
                               "\"status\":\"Applied\",\"status_date\":\"2024-04-01T00:00:00Z\","
                               "\"status_level\":\"candidate\"}",
                               &body),
                     400);
    ck_assert_ptr_nonnull(strstr(body, "\"code\":\"invalid_request\""));
    ck_assert_ptr_nonnull(strstr(body, "requisition_id must be left off"));
    free(body);
    ck_assert_int_eq(ah_t_http("PUT", url, h, "{\"candidate_email\":", &body), 400);
    free(body);
    /* Auth and connection. */
    const char *noauth[] = {"X-Connection: cb", NULL};
    ck_assert_int_eq(ah_t_http("PUT", url, noauth, "{}", &body), 401);
    free(body);
    const char *noconn[] = {f.auth, NULL};
    ck_assert_int_eq(ah_t_http("PUT", url, noconn, "{}", &body), 400);
    ck_assert_ptr_nonnull(strstr(body, "missing_connection"));
    free(body);
    const char *other[] = {f.auth, "X-Connection: er", NULL};
    ck_assert_int_eq(ah_t_http("PUT", url, other, "{}", &body), 501);
    free(body);

    for (int i = 0; i < 6; i++) {
        char st[256];
        snprintf(st, sizeof st,
                 "{\"candidate_email\":\"rest@example.com\",\"requisition_id\":\"J%d\","
                 "\"status\":\"Applied\",\"status_date\":\"2024-04-0%dT00:00:00Z\","
                 "\"status_level\":\"application\"}",
                 i, i + 2);
        ck_assert_int_eq(ah_t_http("PUT", url, h, st, &body), 200);
        free(body);
    }
    snprintf(url, sizeof url, "%s/v1/statuses/rest%%40example.com", f.base);
    ck_assert_int_eq(ah_t_http("GET", url, h, NULL, &body), 200);
    cJSON *j = cJSON_Parse(body);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "data")), 7);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "complete")));
    cJSON_Delete(j);
    free(body);
    snprintf(url, sizeof url, "%s/v1/statuses/rest%%40example.com?results_per_page=2", f.base);
    ck_assert_int_eq(ah_t_http("GET", url, h, NULL, &body), 200);
    j = cJSON_Parse(body);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "data")), 2);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "complete")));
    cJSON_Delete(j);
    free(body);
    snprintf(url, sizeof url,
             "%s/v1/statuses/rest@example.com?status_date=2024-04-05T00:00:00Z", f.base);
    ck_assert_int_eq(ah_t_http("GET", url, h, NULL, &body), 200);
    j = cJSON_Parse(body);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "data")), 2);
    cJSON_Delete(j);
    free(body);
    snprintf(url, sizeof url, "%s/v1/statuses/rest@example.com?results_per_page=0", f.base);
    ck_assert_int_eq(ah_t_http("GET", url, h, NULL, &body), 400);
    ck_assert_ptr_nonnull(strstr(body, "results_per_page"));
    free(body);

    snprintf(url, sizeof url, "%s/v1/statuses/query", f.base);
    ck_assert_int_eq(ah_t_http("POST", url, h, "{\"requisition_ids\":[\"9\",\"J1\"]}", &body), 200);
    j = cJSON_Parse(body);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "data")), 2);
    cJSON_Delete(j);
    free(body);
    ck_assert_int_eq(ah_t_http("POST", url, h, "{\"emails\":[\"rest@example.com\"],"
                                               "\"status_date\":\"2024-04-06T00:00:00Z\"}",
                               &body),
                     200);
    j = cJSON_Parse(body);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "data")), 1);
    cJSON_Delete(j);
    free(body);
    ck_assert_int_eq(ah_t_http("POST", url, h, "{\"emails\":[]}", &body), 400);
    ck_assert_ptr_nonnull(strstr(body, "emails must not be empty"));
    free(body);
    teardown(&f);
}
END_TEST

/* --- the push --------------------------------------------------------------------------- */

static char *upsert(fixture *f, const char *type, const char *rid, const char *updated,
                    const char *fields)
{
    ah_record_in in = {type, rid, updated, "{}", fields};
    ah_upsert_result res;
    char *id = NULL;
    ck_assert_int_eq(f->core->store->ops->records_upsert(f->core->store, f->src_conn_id, &in, 1,
                                                         NULL, NULL, &res, &id),
                     0);
    ck_assert_ptr_nonnull(id);
    return id;
}

static void publish(fixture *f, const char *topic, const char *id, const char *type,
                    const char *rid, const char *updated)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "id", id);
    cJSON_AddStringToObject(b, "remote_id", rid);
    cJSON_AddStringToObject(b, "type", type);
    cJSON_AddStringToObject(b, "connection", "er");
    cJSON_AddStringToObject(b, "updated_at", updated);
    ck_assert_int_eq(ah_core_publish(f->core, f->tenant_id, topic, b), 0);
}

static char *application(fixture *f, int n, const char *stage, const char *status,
                         const char *updated)
{
    char rid[16], fields[512];
    snprintf(rid, sizeof rid, "%d", 5000 + n);
    snprintf(fields, sizeof fields,
             "{\"remote_id\":\"%d\",\"job_remote_id\":\"%d\",\"candidate_remote_id\":\"77\","
             "\"stage_name\":\"%s\",\"status\":\"%s\",\"rejected\":%s,\"updated_at\":\"%s\"}",
             5000 + n, 100 + n, stage, status, strcmp(status, "rejected") == 0 ? "true" : "false",
             updated);
    return upsert(f, "application", rid, updated, fields);
}

/* Drives deliveries until the connection has none left (bounded). */
static bool drain_deliveries(fixture *f)
{
    for (int i = 0; i < 300; i++) {
        ah_events_tick(f->core);
        ah_bus_drain(f->core->bus);
        ah_delivery_row d;
        memset(&d, 0, sizeof d);
        int rc = f->core->store->ops->delivery_next(f->core->store, f->cb_conn_id, &d);
        if (rc == AH_STORE_NOT_FOUND)
            return true;
        if (rc == 0)
            ah_delivery_row_free(&d);
        usleep(50 * 1000);
    }
    return false;
}

START_TEST(test_push_from_events)
{
    fixture f;
    setup(&f);
    char *cid = upsert(&f, "candidate", "77", "2024-05-01T08:00:00",
                       "{\"remote_id\":\"77\",\"email\":\"ann@example.com\"}");
    char *jid = upsert(&f, "job", "101", "2024-05-01T08:00:00",
                       "{\"remote_id\":\"101\",\"title\":\"Staff Nurse\"}");
    char *aid = application(&f, 1, "Interview", "active", "2024-05-02T09:30:00");
    publish(&f, "event.application.updated", aid, "application", "5001", "2024-05-02T09:30:00");
    publish(&f, "event.candidate.created", cid, "candidate", "77", "2024-05-01T08:00:00");
    ck_assert(drain_deliveries(&f));
    cJSON *st = ah_cb_sim_find(f.cb, ACCOUNT, "ann@example.com", "atshub", "101", "application");
    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(cJSON_GetObjectItem(st, "status")->valuestring, "Interviewing");
    ck_assert_str_eq(cJSON_GetObjectItem(st, "status_detail")->valuestring, "Interview: active");
    ck_assert_str_eq(cJSON_GetObjectItem(st, "requisition_title")->valuestring, "Staff Nurse");
    ck_assert_str_eq(cJSON_GetObjectItem(st, "status_date")->valuestring, "2024-05-02T09:30:00Z");
    ck_assert_str_eq(cJSON_GetObjectItem(st, "level_id")->valuestring, "5001");
    cJSON_Delete(st);
    st = ah_cb_sim_find(f.cb, ACCOUNT, "ann@example.com", "atshub", NULL, "candidate");
    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(cJSON_GetObjectItem(st, "status")->valuestring, "New");
    cJSON_Delete(st);
    free(cid);
    free(jid);
    free(aid);
    teardown(&f);
}
END_TEST

START_TEST(test_push_survives_outage_in_order)
{
    fixture f;
    setup(&f);
    char *cid = upsert(&f, "candidate", "77", "2024-05-01T08:00:00",
                       "{\"remote_id\":\"77\",\"email\":\"ann@example.com\"}");
    free(cid);
    ah_sim_set_faults(f.sim, 0, 1.0, 0, 0, 0); /* CareerBuilder down */
    char upd[32];
    for (int i = 1; i <= 50; i++) {
        snprintf(upd, sizeof upd, "2024-06-01T10:%02d:00", i);
        char *id = application(&f, i, "Screening", "active", upd);
        char rid[16];
        snprintf(rid, sizeof rid, "%d", 5000 + i);
        publish(&f, "event.application.updated", id, "application", rid, upd);
        free(id);
    }
    ah_bus_drain(f.core->bus);
    /* Ten keys change again, later, while it is still down. */
    for (int i = 1; i <= 10; i++) {
        snprintf(upd, sizeof upd, "2024-06-02T10:%02d:00", i);
        char *id = application(&f, i, i % 2 ? "Interview" : "Offer",
                               i == 10 ? "rejected" : "active", upd);
        char rid[16];
        snprintf(rid, sizeof rid, "%d", 5000 + i);
        publish(&f, "event.application.updated", id, "application", rid, upd);
        free(id);
    }
    for (int i = 0; i < 5; i++) {
        ah_events_tick(f.core);
        ah_bus_drain(f.core->bus);
    }
    ck_assert_uint_eq(ah_cb_sim_count(f.cb), 0);
    ah_sim_stats ss;
    ah_sim_get_stats(f.sim, &ss);
    ck_assert_uint_gt(ss.f5xx, 0);

    ah_sim_set_faults(f.sim, 0, 0, 0, 0, 0); /* back */
    ck_assert(drain_deliveries(&f));
    ck_assert_uint_eq(ah_cb_sim_count(f.cb), 50);
    for (int i = 1; i <= 50; i++) {
        char req[16];
        snprintf(req, sizeof req, "%d", 100 + i);
        cJSON *st = ah_cb_sim_find(f.cb, ACCOUNT, "ann@example.com", "atshub", req, "application");
        ck_assert_ptr_nonnull(st);
        const char *status = cJSON_GetObjectItem(st, "status")->valuestring;
        const char *date = cJSON_GetObjectItem(st, "status_date")->valuestring;
        if (i > 10) {
            ck_assert_str_eq(status, "In Process");
            snprintf(upd, sizeof upd, "2024-06-01T10:%02d:00Z", i);
        } else {
            ck_assert_str_eq(status, i == 10 ? "Rejected" : i % 2 ? "Interviewing" : "In Process");
            snprintf(upd, sizeof upd, "2024-06-02T10:%02d:00Z", i);
        }
        ck_assert_str_eq(date, upd);
        cJSON_Delete(st);
    }
    /* Per key, arrivals never went back in time. */
    cJSON *arr = ah_cb_sim_arrivals(f.cb);
    char last[51][32];
    memset(last, 0, sizeof last);
    const cJSON *a;
    cJSON_ArrayForEach(a, arr)
    {
        int k = atoi(cJSON_GetObjectItem(a, "requisition_id")->valuestring) - 100;
        ck_assert(k >= 1 && k <= 50);
        const char *d = cJSON_GetObjectItem(a, "status_date")->valuestring;
        ck_assert_msg(strcmp(d, last[k]) >= 0, "key %d: %s arrived after %s", k, d, last[k]);
        snprintf(last[k], sizeof last[k], "%s", d);
    }
    ck_assert_int_ge(cJSON_GetArraySize(arr), 50);
    cJSON_Delete(arr);
    teardown(&f);
}
END_TEST

static Suite *cb_suite(void)
{
    Suite *s = suite_create("careerbuilder");
    TCase *tc = tcase_create("statuses");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_put_and_read_back);
    tcase_add_test(tc, test_put_answer_bounded);
    tcase_add_test(tc, test_query_by_emails_and_requisitions);
    tcase_add_test(tc, test_rest_routes);
    suite_add_tcase(s, tc);
    TCase *push = tcase_create("push");
    tcase_set_timeout(push, 60);
    tcase_add_test(push, test_push_from_events);
    tcase_add_test(push, test_push_survives_outage_in_order);
    suite_add_tcase(s, push);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cb_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
