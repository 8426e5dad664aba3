/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CareerBuilder plugin on the fake host: every rule of the seed's field
 * table refuses the status before anything leaves atshub (no token asked
 * for, no HTTP request made), valid statuses go out as the seed shows them,
 * and the push turns a source record into the mapped status.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb.h"
#include "support/fake_host.h"

const ah_plugin_descriptor *AH_ENTRY_NAME(const ah_host_api *host);

/* --- fixture --------------------------------------------------------------- */

typedef struct canned {
    int status;
    const char *body;
    int calls;
    char method[16];
    char url[2048];
    char sent[8192];
} canned;

static ah_result canned_http(void *arg, const ah_http_request *req, ah_http_response *resp)
{
    canned *c = arg;
    c->calls++;
    snprintf(c->method, sizeof c->method, "%s", req->method);
    snprintf(c->url, sizeof c->url, "%s", req->url);
    snprintf(c->sent, sizeof c->sent, "%.*s", (int)req->body_len, req->body ? req->body : "");
    if (c->status == 0)
        return AH_ERR;
    resp->status = c->status;
    resp->body = strdup(c->body);
    resp->body_len = strlen(c->body);
    return AH_OK;
}

typedef struct fx {
    ah_fake_host *fh;
    ah_fake_conn *conn;
    const ah_plugin_descriptor *desc;
    void *ctx;
    ah_call_ext x;
    canned net;
} fx;

static void fx_open(fx *f, const char *status_map, const char *wait_s)
{
    memset(f, 0, sizeof *f);
    f->fh = ah_fake_host_new();
    ck_assert_ptr_nonnull(f->fh);
    f->fh->quiet = true;
    f->fh->http_cb = canned_http;
    f->fh->http_arg = &f->net;
    f->net.status = 200;
    f->net.body = "\"Created/updated status.\"";
    f->conn = ah_fake_conn_new(f->fh, "acme", "cb");
    ah_fake_conn_set(f->conn, "base_url", "http://127.0.0.1:9");
    ah_fake_conn_set(f->conn, "client_id", "atshub");
    ah_fake_conn_set(f->conn, "client_secret", "s3cret");
    ah_fake_conn_set(f->conn, "account", "AAAA_1234");
    if (status_map != NULL)
        ah_fake_conn_set(f->conn, "status_map", status_map);
    if (wait_s != NULL)
        ah_fake_conn_set(f->conn, "candidate_wait_s", wait_s);
    f->desc = AH_ENTRY_NAME(ah_fake_host_api());
    ah_fake_call_init(f->fh, &f->x, f->conn);
    ck_assert_int_eq(f->desc->open(&f->x.call, &f->ctx), AH_OK);
}

static void fx_call(fx *f)
{
    ah_fake_call_init(f->fh, &f->x, f->conn);
    f->x.call.conn_ctx = f->ctx;
    f->x.call.topic = "statuses.put";
}

static void fx_close(fx *f)
{
    f->desc->close(NULL, f->ctx);
    ah_fake_conn_free(f->conn);
    ah_fake_host_free(f->fh);
}

static const char *sample1 =
    "{\"account\":\"AAAA_1234\",\"candidate_email\":\"testEmail@123.com\","
    "\"vendor_key\":\"test_vendor_key\",\"client\":\"test_client\",\"requisition_id\":\"123\","
    "\"level_id\":\"test_level_id\",\"status\":\"test_status\","
    "\"status_date\":\"2017-03-19T19:04:01Z\",\"status_level\":\"application\","
    "\"status_detail\":\"Test status detail\"}";

/* sample1 with `key` set to the JSON value `json` (NULL: removed). */
static cJSON *variant(const char *key, const char *json)
{
    cJSON *o = cJSON_Parse(sample1);
    ck_assert_ptr_nonnull(o);
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    if (json != NULL)
        cJSON_AddItemToObject(o, key, cJSON_Parse(json));
    return o;
}

static cJSON *string_of(size_t n, const char *unit)
{
    size_t ul = strlen(unit);
    char *s = malloc(n * ul + 1);
    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * ul, unit, ul);
    s[n * ul] = '\0';
    cJSON *v = cJSON_CreateString(s);
    free(s);
    return v;
}

/* Puts `st` (taken) and checks it is refused before any outbound call with
 * a message containing `want`. */
static void assert_refused(cJSON *st, const char *want)
{
    fx f;
    fx_open(&f, NULL, NULL);
    fx_call(&f);
    cJSON *reply = NULL;
    ck_assert_int_eq(f.desc->statuses->put(&f.x.call, st, &reply), AH_ERR);
    ck_assert_ptr_null(reply);
    ck_assert_str_eq(f.x.err_code, "invalid_request");
    ck_assert_int_eq(f.x.err_status, 400);
    ck_assert_msg(strstr(f.x.err_msg, want) != NULL, "'%s' does not say '%s'", f.x.err_msg,
                  want);
    ck_assert_uint_eq(f.fh->http_count, 0);
    ck_assert_uint_eq(f.fh->oauth2_count, 0);
    ck_assert_int_eq(f.net.calls, 0);
    cJSON_Delete(st);
    fx_close(&f);
}

/* Puts `st` (taken) and checks it went out once. */
static void assert_sent(cJSON *st)
{
    fx f;
    fx_open(&f, NULL, NULL);
    fx_call(&f);
    cJSON *reply = NULL;
    ck_assert_msg(f.desc->statuses->put(&f.x.call, st, &reply) == AH_OK, "%s", f.x.err_msg);
    ck_assert_int_eq(f.net.calls, 1);
    ck_assert_str_eq(f.net.method, "PUT");
    ck_assert_str_eq(f.net.url, "/corporate/CandidateStatus");
    ck_assert_str_eq(cJSON_GetObjectItem(reply, "message")->valuestring,
                     "Created/updated status.");
    cJSON_Delete(reply);
    cJSON_Delete(st);
    fx_close(&f);
}

/* --- required fields --------------------------------------------------------- */

START_TEST(test_required_fields)
{
    /* account, vendor_key and client come from the connection when absent,
     * so a missing account is checked on the validator itself. */
    static const char *const required[] = {"candidate_email", "status", "status_date",
                                           "status_level"};
    for (size_t i = 0; i < 4; i++) {
        char want[64];
        snprintf(want, sizeof want, "%s is required", required[i]);
        assert_refused(variant(required[i], NULL), want);
        assert_refused(variant(required[i], "\"\""), want);
        assert_refused(variant(required[i], "null"), want);
    }
    cJSON *st = variant("account", NULL);
    char err[512];
    ck_assert_int_eq(cb_validate_status(st, err, sizeof err), 1);
    ck_assert_str_eq(err, "account is required");
    cJSON_Delete(st);
}
END_TEST

START_TEST(test_wrong_types_and_unknown_fields)
{
    assert_refused(variant("status", "42"), "status must be a string");
    assert_refused(variant("level_id", "[\"x\"]"), "level_id must be a string");
    assert_refused(variant("email", "\"a@b.c\""), "unknown field 'email'");
    cJSON *arr = cJSON_Parse("[1]");
    assert_refused(arr, "JSON object");
}
END_TEST

/* --- every maximum length ------------------------------------------------------------ */

START_TEST(test_max_lengths)
{
    static const struct {
        const char *key;
        size_t max;
    } limits[] = {{"account", 20},          {"candidate_email", 255}, {"vendor_key", 20},
                  {"client", 20},           {"requisition_id", 1024}, {"requisition_title", 256},
                  {"level_id", 64},         {"status", 100},          {"status_level", 20},
                  {"status_detail", 4096}};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        cJSON *st = cJSON_Parse(sample1);
        cJSON_DeleteItemFromObjectCaseSensitive(st, limits[i].key);
        cJSON_AddItemToObject(st, limits[i].key, string_of(limits[i].max + 1, "x"));
        char want[96];
        snprintf(want, sizeof want, "%s is longer than %zu characters", limits[i].key,
                 limits[i].max);
        assert_refused(st, want);
    }
    /* Exactly at the limit passes the length rule (characters, not bytes). */
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        if (strcmp(limits[i].key, "status_level") == 0 || strcmp(limits[i].key, "account") == 0)
            continue;
        cJSON *st = cJSON_Parse(sample1);
        cJSON_DeleteItemFromObjectCaseSensitive(st, limits[i].key);
        cJSON_AddItemToObject(st, limits[i].key, string_of(limits[i].max, "\xc3\xa9"));
        char err[512];
        ck_assert_msg(cb_validate_status(st, err, sizeof err) == 0, "%s: %s", limits[i].key, err);
        cJSON_Delete(st);
    }
    cJSON *st = variant("account", NULL);
    cJSON_AddItemToObject(st, "account", string_of(20, "A"));
    char err[512];
    ck_assert_int_eq(cb_validate_status(st, err, sizeof err), 0);
    cJSON_Delete(st);
}
END_TEST

/* --- the UTC date ------------------------------------------------------------------------ */

START_TEST(test_date_format)
{
    static const char *const bad[] = {
        "\"2017-03-19T19:04:01\"",       /* no Z */
        "\"2017-13-19T19:04:01Z\"",      /* month 13 */
        "\"2017-00-19T19:04:01Z\"",      /* month 0 */
        "\"2017-02-30T19:04:01Z\"",      /* no such day */
        "\"2017-02-29T00:00:00Z\"",      /* not a leap year */
        "\"2017-03-19 19:04:01Z\"",      /* space instead of T */
        "\"2017-03-19 T19:04:01Z\"",     /* the seed's typo */
        "\"2017-03-19T24:00:00Z\"",      /* hour 24 */
        "\"2017-03-19T19:60:01Z\"",      /* minute 60 */
        "\"2017-03-19T19:04:61Z\"",      /* second 61 */
        "\"2017-03-19T19:04:01+00:00\"", /* an offset, not Z */
        "\"2017-03-19T19:04:01.000Z\"",  /* a fraction */
        "\"17-03-19T19:04:01Z\"",        /* two-digit year */
        "\"2017-3-19T19:04:01Z\"",       /* one-digit month */
        "\"2017-03-19\"",                /* date only */
        "\"yesterday\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_refused(variant("status_date", bad[i]), "status_date must be a UTC date");
    cJSON *st = variant("status_date", "\"2016-02-29T23:59:59Z\"");
    char err[512];
    ck_assert_msg(cb_validate_status(st, err, sizeof err) == 0, "%s", err);
    cJSON_Delete(st);
    st = variant("status_date", "\"1776-07-04T19:04:01Z\"");
    ck_assert_msg(cb_validate_status(st, err, sizeof err) == 0, "%s", err);
    cJSON_Delete(st);
}
END_TEST

START_TEST(test_date_conversion)
{
    char out[32];
    ck_assert(cb_date_to_utc("2024-05-01T10:00:00+02:00", out, sizeof out));
    ck_assert_str_eq(out, "2024-05-01T08:00:00Z");
    ck_assert(cb_date_to_utc("2024-05-01T23:30:00-0100", out, sizeof out));
    ck_assert_str_eq(out, "2024-05-02T00:30:00Z");
    ck_assert(cb_date_to_utc("2024-05-01 10:00:00.123Z", out, sizeof out));
    ck_assert_str_eq(out, "2024-05-01T10:00:00Z");
    ck_assert(cb_date_to_utc("2024-05-01T10:00:00", out, sizeof out)); /* no offset: UTC */
    ck_assert_str_eq(out, "2024-05-01T10:00:00Z");
    ck_assert(!cb_date_to_utc("2024-05-01T10:00", out, sizeof out));
    ck_assert(!cb_date_to_utc("2024-05-01T10:00:00+2", out, sizeof out));
}
END_TEST

/* --- status_level rules ------------------------------------------------------------------- */

START_TEST(test_status_level_values)
{
    assert_refused(variant("status_level", "\"job\""),
                   "status_level must be candidate or application");
    /* The seed's table writes Application and Candidate capitalised. */
    assert_sent(variant("status_level", "\"Application\""));
}
END_TEST

START_TEST(test_application_requires_requisition_id)
{
    assert_refused(variant("requisition_id", NULL),
                   "requisition_id is required when status_level is application");
    assert_refused(variant("requisition_id", "\"\""),
                   "requisition_id is required when status_level is application");
}
END_TEST

START_TEST(test_candidate_without_requisition)
{
    /* The seed's "Sample request 2 (candidate)", labelled as it says. */
    assert_refused(variant("status_level", "\"candidate\""),
                   "requisition_id must be left off when status_level is candidate");
    cJSON *st = variant("status_level", "\"candidate\"");
    cJSON_DeleteItemFromObjectCaseSensitive(st, "requisition_id");
    cJSON_AddStringToObject(st, "requisition_title", "Nurse");
    assert_refused(st, "requisition_title must be left off when status_level is candidate");
    /* Without both it is a valid candidate status. */
    st = variant("status_level", "\"candidate\"");
    cJSON_DeleteItemFromObjectCaseSensitive(st, "requisition_id");
    assert_sent(st);
}
END_TEST

START_TEST(test_every_violation_named)
{
    cJSON *st = cJSON_Parse("{\"status_level\":\"candidate\",\"requisition_id\":\"1\","
                            "\"status_date\":\"2017-03-19\"}");
    char err[1024];
    int n = cb_validate_status(st, err, sizeof err);
    ck_assert_int_eq(n, 5);
    ck_assert_ptr_nonnull(strstr(err, "account is required"));
    ck_assert_ptr_nonnull(strstr(err, "candidate_email is required"));
    ck_assert_ptr_nonnull(strstr(err, "status is required"));
    ck_assert_ptr_nonnull(strstr(err, "status_date must be a UTC date"));
    ck_assert_ptr_nonnull(strstr(err, "requisition_id must be left off"));
    cJSON_Delete(st);
}
END_TEST

START_TEST(test_valid_statuses_sent)
{
    assert_sent(cJSON_Parse(sample1));
    /* Defaults from the connection fill account, vendor_key and client. */
    fx f;
    fx_open(&f, NULL, NULL);
    fx_call(&f);
    cJSON *st = cJSON_Parse("{\"candidate_email\":\"a@b.c\",\"status\":\"New\","
                            "\"status_date\":\"2020-01-01T00:00:00Z\","
                            "\"status_level\":\"candidate\",\"requisition_id\":null}");
    cJSON *reply = NULL;
    ck_assert_int_eq(f.desc->statuses->put(&f.x.call, st, &reply), AH_OK);
    cJSON *sent = cJSON_Parse(f.net.sent);
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "account")->valuestring, "AAAA_1234");
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "vendor_key")->valuestring, "atshub");
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "client")->valuestring, "atshub");
    ck_assert_ptr_null(cJSON_GetObjectItem(sent, "requisition_id"));
    cJSON_Delete(sent);
    cJSON_Delete(reply);
    cJSON_Delete(st);
    /* Another account than the connection's is refused. */
    st = variant("account", "\"BBBB_1\"");
    ck_assert_int_eq(f.desc->statuses->put(&f.x.call, st, &reply), AH_ERR);
    ck_assert_ptr_nonnull(strstr(f.x.err_msg, "account"));
    ck_assert_int_eq(f.net.calls, 1);
    cJSON_Delete(st);
    fx_close(&f);
}
END_TEST

/* --- get and query arguments ----------------------------------------------------------- */

static void assert_op_refused(int which, const char *body, const char *want)
{
    fx f;
    fx_open(&f, NULL, NULL);
    fx_call(&f);
    cJSON *b = cJSON_Parse(body), *reply = NULL;
    ah_op_fn op = which == 0 ? f.desc->statuses->get : f.desc->statuses->query;
    ck_assert_int_eq(op(&f.x.call, b, &reply), AH_ERR);
    ck_assert_str_eq(f.x.err_code, "invalid_request");
    ck_assert_msg(strstr(f.x.err_msg, want) != NULL, "'%s' does not say '%s'", f.x.err_msg,
                  want);
    ck_assert_uint_eq(f.fh->http_count, 0);
    ck_assert_uint_eq(f.fh->oauth2_count, 0);
    cJSON_Delete(b);
    fx_close(&f);
}

START_TEST(test_get_and_query_arguments)
{
    assert_op_refused(0, "{}", "field 'candidate_email' must be a non-empty string");
    assert_op_refused(0, "{\"candidate_email\":\"a@b.c\",\"results_per_page\":0}",
                      "results_per_page");
    assert_op_refused(0, "{\"candidate_email\":\"a@b.c\",\"results_per_page\":\"101\"}",
                      "results_per_page");
    /* Numbers no long holds (converting them was undefined behaviour, which
     * the sanitizer build aborts on) and fractions. */
    assert_op_refused(0, "{\"candidate_email\":\"a@b.c\",\"results_per_page\":1e300}",
                      "results_per_page");
    assert_op_refused(0, "{\"candidate_email\":\"a@b.c\",\"results_per_page\":-1e300}",
                      "results_per_page");
    assert_op_refused(0, "{\"candidate_email\":\"a@b.c\",\"results_per_page\":2.5}",
                      "results_per_page");
    assert_op_refused(0, "{\"candidate_email\":\"a@b.c\",\"status_date\":\"2017-03-19\"}",
                      "status_date");
    assert_op_refused(1, "{}", "candidate_email (a list of emails) or requisition_id");
    assert_op_refused(1, "{\"candidate_email\":[\"a@b.c\"],\"requisition_id\":[\"1\"]}",
                      "not both");
    assert_op_refused(1, "{\"emails\":[]}", "emails must not be empty");
    assert_op_refused(1, "{\"requisition_id\":\"1\"}", "requisition_id must be a list");
    assert_op_refused(1, "{\"candidate_email\":[\"a@b.c\",7]}", "candidate_email[1]");
    assert_op_refused(1, "{\"emails\":[\"a@b.c\"],\"status_date\":\"2017-03-19T19:04:01\"}",
                      "status_date");
    assert_op_refused(1, "{\"emails\":[\"a@b.c\"],\"account\":\"123456789012345678901\"}",
                      "account is longer than 20 characters");
}
END_TEST

START_TEST(test_get_is_one_request)
{
    fx f;
    fx_open(&f, NULL, NULL);
    fx_call(&f);
    f.net.body = "[{\"status\":\"a\"},{\"status\":\"b\"}]";
    cJSON *b = cJSON_Parse("{\"candidate_email\":\"x y@b.c\",\"results_per_page\":2,"
                           "\"status_date\":\"2017-01-01T00:00:00Z\"}");
    cJSON *reply = NULL;
    /* The seed's GET has no paging: a server that always answers a full
     * page is asked once, and the reply says it may not be all. */
    ck_assert_int_eq(f.desc->statuses->get(&f.x.call, b, &reply), AH_OK);
    ck_assert_int_eq(f.net.calls, 1);
    ck_assert_ptr_nonnull(strstr(f.net.url, "/corporate/CandidateStatus/AAAA_1234/x%20y%40b.c?"));
    ck_assert_ptr_nonnull(strstr(f.net.url, "results_per_page=2"));
    ck_assert_ptr_nonnull(strstr(f.net.url, "status_date=2017-01-01T00%3A00%3A00Z"));
    ck_assert_ptr_null(strstr(f.net.url, "&page="));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(reply, "data")), 2);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(reply, "complete")));
    cJSON_Delete(reply);
    f.net.calls = 0;
    f.net.body = "[{\"status\":\"a\"}]";
    fx_call(&f);
    ck_assert_int_eq(f.desc->statuses->get(&f.x.call, b, &reply), AH_OK);
    ck_assert_int_eq(f.net.calls, 1);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(reply, "data")), 1);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(reply, "complete")));
    cJSON_Delete(reply);
    cJSON_Delete(b);
    fx_close(&f);
}
END_TEST

/* --- the push ------------------------------------------------------------------------------ */

/* Puts a record on a source connection of the fake host; returns its id. */
static void put_record(fx *f, ah_fake_conn *src, const char *type, const char *rid,
                       const char *updated, const char *fields_json, char id[64])
{
    ah_call_ext sx;
    ah_fake_call_init(f->fh, &sx, src);
    sx.call.topic = "test";
    cJSON *fields = cJSON_Parse(fields_json);
    ah_record r = {.struct_size = sizeof r, .type = type, .remote_id = rid,
                   .updated_at = updated, .fields = fields};
    ck_assert_int_eq(ah_fake_host_api()->record_put(&sx.call, &r, id, 64, NULL), AH_OK);
    cJSON_Delete(fields);
}

static ah_result deliver(fx *f, const char *topic, const char *id)
{
    fx_call(f);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "id", id);
    cJSON_AddStringToObject(ev, "connection", "er");
    const ah_subscription *s = f->desc->subscriptions;
    while (s->pattern != NULL && strcmp(s->pattern, topic) != 0)
        s++;
    ck_assert_ptr_nonnull(s->pattern);
    ah_result rc = s->handler(&f->x.call, topic, ev);
    cJSON_Delete(ev);
    return rc;
}

START_TEST(test_push_maps_application)
{
    fx f;
    fx_open(&f, "{\"stage:2\":\"Interviewing\",\"er/status:rejected\":\"Rejected\","
                "\"candidate.created\":\"New\"}",
            NULL);
    ah_fake_conn *src = ah_fake_conn_new(f.fh, "acme", "er");
    char cid[64], jid[64], aid[64];
    put_record(&f, src, "candidate", "77", "2024-05-01T10:00:00",
               "{\"remote_id\":\"77\",\"email\":\"ann@example.com\"}", cid);
    put_record(&f, src, "job", "123", "2024-05-01T10:00:00",
               "{\"remote_id\":\"123\",\"title\":\"Nurse\"}", jid);
    put_record(&f, src, "application", "5001", "2024-05-02T11:00:00+02:00",
               "{\"remote_id\":\"5001\",\"job_remote_id\":\"123\",\"candidate_remote_id\":\"77\","
               "\"stage_id\":\"2\",\"status\":\"active\",\"rejected\":false}",
               aid);
    ck_assert_int_eq(deliver(&f, "event.application.updated", aid), AH_OK);
    ck_assert_int_eq(f.net.calls, 1);
    cJSON *sent = cJSON_Parse(f.net.sent);
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "candidate_email")->valuestring, "ann@example.com");
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "status_level")->valuestring, "application");
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "requisition_id")->valuestring, "123");
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "requisition_title")->valuestring, "Nurse");
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "level_id")->valuestring, "5001");
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "status")->valuestring, "Interviewing");
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "status_detail")->valuestring, "2: active");
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "status_date")->valuestring,
                     "2024-05-02T09:00:00Z");
    cJSON_Delete(sent);
    /* Rejected: the connection-qualified status key wins over the stage. */
    put_record(&f, src, "application", "5001", "2024-05-03T11:00:00Z",
               "{\"remote_id\":\"5001\",\"job_remote_id\":\"123\",\"candidate_remote_id\":\"77\","
               "\"stage_id\":\"2\",\"status\":\"rejected\",\"rejected\":true}",
               aid);
    ck_assert_int_eq(deliver(&f, "event.application.updated", aid), AH_OK);
    sent = cJSON_Parse(f.net.sent);
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "status")->valuestring, "Rejected");
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "status_detail")->valuestring, "2: rejected");
    cJSON_Delete(sent);
    /* No mapping: the raw stage goes out as the status. */
    put_record(&f, src, "application", "5001", "2024-05-04T11:00:00Z",
               "{\"remote_id\":\"5001\",\"job_remote_id\":\"123\",\"candidate_remote_id\":\"77\","
               "\"stage_id\":3,\"status\":\"active\"}",
               aid);
    ck_assert_int_eq(deliver(&f, "event.application.updated", aid), AH_OK);
    sent = cJSON_Parse(f.net.sent);
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "status")->valuestring, "3");
    cJSON_Delete(sent);
    /* A candidate: candidate level, no requisition. */
    ck_assert_int_eq(deliver(&f, "event.candidate.created", cid), AH_OK);
    sent = cJSON_Parse(f.net.sent);
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "status_level")->valuestring, "candidate");
    ck_assert_str_eq(cJSON_GetObjectItem(sent, "status")->valuestring, "New");
    ck_assert_ptr_null(cJSON_GetObjectItem(sent, "requisition_id"));
    cJSON_Delete(sent);
    ck_assert_int_eq(f.net.calls, 4);
    ah_fake_conn_free(src);
    fx_close(&f);
}
END_TEST

START_TEST(test_push_failures)
{
    fx f;
    fx_open(&f, NULL, "900");
    ah_fake_conn *src = ah_fake_conn_new(f.fh, "acme", "er");
    char cid[64], aid[64], orphan[64];
    put_record(&f, src, "candidate", "77", "2024-05-01T10:00:00",
               "{\"remote_id\":\"77\",\"email\":\"ann@example.com\"}", cid);
    put_record(&f, src, "application", "5001", "2024-05-02T11:00:00Z",
               "{\"remote_id\":\"5001\",\"job_remote_id\":\"123\",\"candidate_remote_id\":\"77\","
               "\"stage_id\":\"2\",\"status\":\"active\"}",
               aid);
    /* CareerBuilder down: kept for a retry. */
    f.net.status = 503;
    f.net.body = "{}";
    ck_assert_int_eq(deliver(&f, "event.application.updated", aid), AH_ERR);
    ck_assert_str_eq(f.x.err_code, "upstream_unavailable");
    f.net.status = 0; /* no answer at all */
    ck_assert_int_eq(deliver(&f, "event.application.updated", aid), AH_ERR);
    /* Refused by CareerBuilder: dropped, or it would block the queue. */
    f.net.status = 400;
    f.net.body = "{\"errors\":[{\"field\":\"status\",\"message\":\"bad\"}]}";
    ck_assert_int_eq(deliver(&f, "event.application.updated", aid), AH_OK);
    /* The candidate has not arrived yet: wait (the record is new). */
    f.net.status = 200;
    f.net.body = "\"Created/updated status.\"";
    int calls = f.net.calls;
    put_record(&f, src, "application", "5002", "2024-05-02T11:00:00Z",
               "{\"remote_id\":\"5002\",\"job_remote_id\":\"123\",\"candidate_remote_id\":\"99\"}",
               orphan);
    ck_assert_int_eq(deliver(&f, "event.application.created", orphan), AH_ERR);
    ck_assert_str_eq(f.x.err_code, "candidate_pending");
    /* Not valid for CareerBuilder (email too long): dropped before sending. */
    char longmail[400];
    memset(longmail, 'a', 300);
    snprintf(longmail + 300, sizeof longmail - 300, "@example.com");
    char fields[600];
    snprintf(fields, sizeof fields, "{\"remote_id\":\"78\",\"email\":\"%s\"}", longmail);
    put_record(&f, src, "candidate", "78", "2024-05-01T10:00:00", fields, cid);
    ck_assert_int_eq(deliver(&f, "event.candidate.created", cid), AH_OK);
    /* A record that is gone: nothing to send. */
    ck_assert_int_eq(deliver(&f, "event.candidate.created", "rec_999"), AH_OK);
    ck_assert_int_eq(f.net.calls, calls);
    ah_fake_conn_free(src);
    fx_close(&f);
    /* With no wait configured, the orphan is dropped. */
    fx_open(&f, NULL, "0");
    src = ah_fake_conn_new(f.fh, "acme", "er");
    put_record(&f, src, "application", "5002", "2024-05-02T11:00:00Z",
               "{\"remote_id\":\"5002\",\"job_remote_id\":\"123\",\"candidate_remote_id\":\"99\"}",
               orphan);
    ck_assert_int_eq(deliver(&f, "event.application.created", orphan), AH_OK);
    ck_assert_int_eq(f.net.calls, 0);
    ah_fake_conn_free(src);
    fx_close(&f);
}
END_TEST

START_TEST(test_bad_settings_refused)
{
    ah_fake_host *fh = ah_fake_host_new();
    fh->quiet = true;
    ah_fake_conn *conn = ah_fake_conn_new(fh, "acme", "cb");
    const ah_plugin_descriptor *d = AH_ENTRY_NAME(ah_fake_host_api());
    ah_call_ext x;
    void *ctx = NULL;
    ah_fake_call_init(fh, &x, conn);
    ck_assert_int_eq(d->open(&x.call, &ctx), AH_ERR); /* no account */
    ck_assert_ptr_nonnull(strstr(x.err_msg, "account is required"));
    ah_fake_conn_set(conn, "account", "123456789012345678901");
    ah_fake_call_init(fh, &x, conn);
    ck_assert_int_eq(d->open(&x.call, &ctx), AH_ERR);
    ck_assert_ptr_nonnull(strstr(x.err_msg, "account is longer than 20"));
    ah_fake_conn_set(conn, "account", "A1");
    ah_fake_conn_set(conn, "status_map", "[1]");
    ah_fake_call_init(fh, &x, conn);
    ck_assert_int_eq(d->open(&x.call, &ctx), AH_ERR);
    ck_assert_ptr_nonnull(strstr(x.err_msg, "status_map"));
    ah_fake_conn_set(conn, "status_map", "{\"stage:*\":7}");
    ah_fake_call_init(fh, &x, conn);
    ck_assert_int_eq(d->open(&x.call, &ctx), AH_ERR);
    ah_fake_conn_set(conn, "status_map", NULL);
    ah_fake_call_init(fh, &x, conn);
    ck_assert_int_eq(d->open(&x.call, &ctx), AH_OK);
    d->close(NULL, ctx);
    ah_fake_conn_free(conn);
    ah_fake_host_free(fh);
}
END_TEST

static Suite *cb_suite(void)
{
    Suite *s = suite_create("cb_validate");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, test_required_fields);
    tcase_add_test(tc, test_wrong_types_and_unknown_fields);
    tcase_add_test(tc, test_max_lengths);
    tcase_add_test(tc, test_date_format);
    tcase_add_test(tc, test_date_conversion);
    tcase_add_test(tc, test_status_level_values);
    tcase_add_test(tc, test_application_requires_requisition_id);
    tcase_add_test(tc, test_candidate_without_requisition);
    tcase_add_test(tc, test_every_violation_named);
    tcase_add_test(tc, test_valid_statuses_sent);
    tcase_add_test(tc, test_get_and_query_arguments);
    tcase_add_test(tc, test_get_is_one_request);
    tcase_add_test(tc, test_bad_settings_refused);
    suite_add_tcase(s, tc);
    TCase *push = tcase_create("push");
    tcase_add_test(push, test_push_maps_application);
    tcase_add_test(push, test_push_failures);
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
