/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ERecruit plugin without a network: its field mapping, and the request
 * each topic builds, driven through the fake host with a canned responder
 * that records every outbound request and answers from a queue.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "er.h"
#include "support/fake_host.h"

/* ---------------------------------------------------------------------- */
/* canned responder                                                        */
/* ---------------------------------------------------------------------- */

#define MAX_REQ 16

typedef struct canned {
    long status;
    const char *body; /* NULL: no response at all (connection failure) */
} canned;

typedef struct recorder {
    canned queue[MAX_REQ];
    int queued, next;
    int n;
    char *method[MAX_REQ];
    char *url[MAX_REQ];
    char *body[MAX_REQ];
    char *bearer[MAX_REQ];
    bool json_header[MAX_REQ];
} recorder;

static char *dup_or_null(const char *s, size_t n)
{
    if (s == NULL)
        return NULL;
    char *d = malloc(n + 1);
    ck_assert_ptr_nonnull(d);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static ah_result responder(void *arg, const ah_http_request *req, ah_http_response *resp)
{
    recorder *r = arg;
    ck_assert_int_lt(r->n, MAX_REQ);
    int i = r->n++;
    r->method[i] = strdup(req->method);
    r->url[i] = strdup(req->url);
    r->body[i] = dup_or_null(req->body, req->body_len);
    r->bearer[i] = req->bearer != NULL ? strdup(req->bearer) : NULL;
    for (size_t h = 0; req->headers != NULL && req->headers[h] != NULL; h++)
        if (strcmp(req->headers[h], "Content-Type: application/json") == 0)
            r->json_header[i] = true;
    if (r->next >= r->queued)
        return AH_ERR;
    canned c = r->queue[r->next++];
    if (c.body == NULL)
        return AH_ERR;
    resp->status = c.status;
    resp->body = strdup(c.body);
    resp->body_len = strlen(c.body);
    resp->attempts = c.status == 429 || c.status >= 500 ? 4 : 1;
    return AH_OK;
}

static void reply_with(recorder *r, long status, const char *body)
{
    ck_assert_int_lt(r->queued, MAX_REQ);
    r->queue[r->queued++] = (canned){status, body};
}

static void recorder_clear(recorder *r)
{
    for (int i = 0; i < r->n; i++) {
        free(r->method[i]);
        free(r->url[i]);
        free(r->body[i]);
        free(r->bearer[i]);
    }
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------------- */
/* environment: a fake host, a connection, an open plugin context          */
/* ---------------------------------------------------------------------- */

typedef struct env {
    ah_fake_host *fh;
    ah_fake_conn *conn;
    const ah_plugin_descriptor *d;
    void *ctx;
    recorder rec;
    ah_call_ext x;
} env;

const ah_plugin_descriptor *atshub_plugin_entry_v1(const ah_host_api *host);

static void env_settings(env *e)
{
    ck_assert_int_eq(ah_fake_conn_set(e->conn, "base_url", "https://acme.erecruit.test"), 0);
    ck_assert_int_eq(ah_fake_conn_set(e->conn, "client_id", "atshub"), 0);
    ck_assert_int_eq(ah_fake_conn_set(e->conn, "client_secret", "s3cret"), 0);
}

static env *env_new_bare(void)
{
    env *e = calloc(1, sizeof *e);
    ck_assert_ptr_nonnull(e);
    e->fh = ah_fake_host_new();
    ck_assert_ptr_nonnull(e->fh);
    e->fh->quiet = true;
    e->fh->http_cb = responder;
    e->fh->http_arg = &e->rec;
    e->conn = ah_fake_conn_new(e->fh, "acme", "er");
    ck_assert_ptr_nonnull(e->conn);
    e->d = atshub_plugin_entry_v1(ah_fake_host_api());
    return e;
}

/* Opens the connection; AH_OK or the open error (in e->x). */
static ah_result env_open(env *e)
{
    ah_fake_call_init(e->fh, &e->x, e->conn);
    return e->d->open(&e->x.call, &e->ctx);
}

static env *env_new(void)
{
    env *e = env_new_bare();
    env_settings(e);
    ck_assert_int_eq(env_open(e), AH_OK);
    return e;
}

static void env_free(env *e)
{
    if (e->ctx != NULL)
        e->d->close(NULL, e->ctx);
    recorder_clear(&e->rec);
    ah_fake_conn_free(e->conn);
    ah_fake_host_free(e->fh);
    free(e);
}

/* Runs one operation with a JSON body; the reply (or NULL) into *reply. */
static ah_result run(env *e, ah_op_fn fn, const char *body_json, cJSON **reply)
{
    cJSON *body = cJSON_Parse(body_json);
    ck_assert_msg(body != NULL, "bad test JSON: %s", body_json);
    ah_fake_call_init(e->fh, &e->x, e->conn);
    e->x.call.conn_ctx = e->ctx;
    *reply = NULL;
    ah_result rc = fn(&e->x.call, body, reply);
    cJSON_Delete(body);
    if (rc != AH_OK)
        ck_assert_ptr_null(*reply);
    return rc;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(cJSON_IsString(v), "member %s is not a string", key);
    return v->valuestring;
}

static bool is_null(const cJSON *o, const char *key)
{
    return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, key));
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(cJSON_IsNumber(v), "member %s is not a number", key);
    return v->valuedouble;
}

/* The i-th request's body must equal `json` (compared as JSON). A write
 * that creates something carries an external_ref atshub chose ("atshub-N",
 * WIRE.md "Exactly once"): checked here, then left out of the comparison
 * unless `json` names one. */
static void assert_body(env *e, int i, const char *json)
{
    ck_assert_ptr_nonnull(e->rec.body[i]);
    cJSON *got = cJSON_Parse(e->rec.body[i]);
    cJSON *want = cJSON_Parse(json);
    ck_assert_ptr_nonnull(want);
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(got, "external_ref");
    if (ref != NULL && !cJSON_HasObjectItem(want, "external_ref")) {
        ck_assert_msg(cJSON_IsString(ref) && strncmp(ref->valuestring, "atshub-", 7) == 0,
                      "body %d: external_ref is not atshub-N: %s", i, e->rec.body[i]);
        cJSON_DeleteItemFromObjectCaseSensitive(got, "external_ref");
    }
    ck_assert_msg(got != NULL && cJSON_Compare(got, want, 1), "body %d: %s, want %s", i,
                  e->rec.body[i], json);
    ck_assert(e->rec.json_header[i]);
    cJSON_Delete(got);
    cJSON_Delete(want);
}

static void assert_req(env *e, int i, const char *method, const char *url)
{
    ck_assert_int_gt(e->rec.n, i);
    ck_assert_str_eq(e->rec.method[i], method);
    ck_assert_str_eq(e->rec.url[i], url);
    ck_assert_str_eq(e->rec.bearer[i], AH_FAKE_TOKEN);
}

static const char POSITION[] =
    "{\"id\": 123, \"title\": \"Nurse\", \"status\": \"open\", \"department\": \"Care\","
    " \"location\": {\"city\": \"Riyadh\", \"state\": \"Riyadh\", \"country\": \"Saudi Arabia\"},"
    " \"employment_type\": \"full_time\", \"description\": \"<p>Night shifts</p>\","
    " \"created_at\": \"2025-10-01T09:00:00\", \"updated_at\": \"2025-10-06T16:30:00\","
    " \"custom_fields\": {\"cost_center\": \"CC-7\"},"
    " \"hiring_team\": [{\"name\": \"Huda\", \"role\": \"recruiter\"}]}";

static const char SUBMISSION[] =
    "{\"id\": 5001, \"position_id\": 123, \"contact_id\": 77, \"stage_id\": 2,"
    " \"status_id\": null, \"rejected\": false, \"disposition_reason_id\": null,"
    " \"created_at\": \"2025-10-02T10:00:00\", \"updated_at\": \"2025-10-06T17:00:00\"}";

static const char CONTACT[] =
    "{\"id\": 77, \"first_name\": \"Amal\", \"last_name\": \"Saleh\","
    " \"email\": \"amal@example.com\", \"phone\": \"+966500000000\", \"tags\": [12, 65880],"
    " \"created_at\": \"2025-10-01T08:00:00\", \"updated_at\": \"2025-10-05T12:00:00\"}";

/* ---------------------------------------------------------------------- */
/* descriptor and settings                                                 */
/* ---------------------------------------------------------------------- */

START_TEST(test_descriptor_fills_the_seed_tables)
{
    const ah_plugin_descriptor *d = atshub_plugin_entry_v1(ah_fake_host_api());
    ck_assert_str_eq(d->name, "erecruit");
    ck_assert_int_eq(d->abi_major, AH_ABI_MAJOR);
    ck_assert_uint_eq(d->streaming->backfill_hours, 2);
    ck_assert(d->streaming->jobs && d->streaming->applications && d->streaming->candidates);
    ck_assert(d->applications->move_to_stage && d->applications->reject &&
              d->applications->bulk_reject && d->applications->create &&
              d->applications->list_stages);
    ck_assert(d->dispositions->list);
    ck_assert(d->jobs->get && d->jobs->get_enhanced && d->jobs->enhanced_batch);
    ck_assert(d->candidates->get && d->candidates->find && d->candidates->resume);
    ck_assert(d->notes->add_to_application && d->notes->add_to_candidate);
    ck_assert(d->attachments->add_to_application && d->attachments->add_to_candidate);
    ck_assert(d->custom_fields->list && d->custom_fields->values && d->custom_fields->update);
    const char *want[] = {"base_url", "token_url", "client_id", "client_secret", "per_page",
                          "job_statuses", "note_action_id", "screened_tag_id",
                          "screened_status_id"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        bool found = false;
        for (const ah_setting_spec *s = d->settings; s->key != NULL; s++)
            if (strcmp(s->key, want[i]) == 0) {
                found = true;
                if (strcmp(s->key, "client_secret") == 0)
                    ck_assert(s->flags & AH_SETTING_SECRET);
                if (strcmp(s->key, "screened_tag_id") == 0)
                    ck_assert_str_eq(s->default_value, "65880");
                if (strcmp(s->key, "note_action_id") == 0)
                    ck_assert_str_eq(s->default_value, "496");
            }
        ck_assert_msg(found, "setting %s missing", want[i]);
    }
}
END_TEST

START_TEST(test_open_defaults_and_bad_settings)
{
    env *e = env_new();
    const er_conn *c = e->ctx;
    ck_assert_int_eq(c->per_page, 500);
    ck_assert_str_eq(c->token_url, "/t/token");
    ck_assert_str_eq(c->job_statuses, "open,closed,draft,filled");
    ck_assert_int_eq(c->note_action_id, 496);
    ck_assert_int_eq(c->screened_tag_id, 65880);
    ck_assert_int_eq(c->screened_status_id, 101);
    env_free(e);

    static const char *const bad[][2] = {
        {"base_url", NULL},     {"base_url", "ftp://x"},     {"client_id", NULL},
        {"client_secret", NULL}, {"per_page", "0"},          {"per_page", "501"},
        {"per_page", "ten"},    {"job_statuses", "open,gone"}, {"job_statuses", ""},
        {"token_url", "t/token"}, {"note_action_id", "-1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        e = env_new_bare();
        env_settings(e);
        ck_assert_int_eq(ah_fake_conn_set(e->conn, bad[i][0], bad[i][1]), 0);
        ck_assert_msg(env_open(e) == AH_ERR, "%s=%s accepted", bad[i][0],
                      bad[i][1] ? bad[i][1] : "(unset)");
        ck_assert_str_eq(e->x.err_code, "configuration_error");
        ck_assert_ptr_nonnull(strstr(e->x.err_msg, bad[i][0]));
        ck_assert_ptr_null(e->ctx);
        env_free(e);
    }

    e = env_new_bare();
    env_settings(e);
    ck_assert_int_eq(ah_fake_conn_set(e->conn, "job_statuses", " open , filled"), 0);
    ck_assert_int_eq(ah_fake_conn_set(e->conn, "per_page", "500"), 0);
    ck_assert_int_eq(env_open(e), AH_OK);
    ck_assert_str_eq(((er_conn *)e->ctx)->job_statuses, "open,filled");
    env_free(e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* mapping                                                                  */
/* ---------------------------------------------------------------------- */

START_TEST(test_map_position)
{
    cJSON *p = cJSON_Parse(POSITION);
    cJSON *j = er_map_job(p, false);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(str(j, "remote_id"), "123");
    ck_assert_str_eq(str(j, "title"), "Nurse");
    ck_assert_str_eq(str(j, "status"), "open");
    ck_assert_str_eq(str(j, "remote_status"), "open");
    ck_assert_str_eq(str(j, "department"), "Care");
    ck_assert_str_eq(str(j, "job_type"), "FULL_TIME");
    const cJSON *loc = cJSON_GetObjectItem(j, "location");
    ck_assert_str_eq(str(loc, "city"), "Riyadh");
    ck_assert_str_eq(str(loc, "country"), "Saudi Arabia");
    ck_assert_str_eq(str(j, "description"), "<p>Night shifts</p>");
    /* provider-local times, not converted */
    ck_assert_str_eq(str(j, "created_at"), "2025-10-01T09:00:00");
    ck_assert_str_eq(str(j, "updated_at"), "2025-10-06T16:30:00");
    ck_assert_ptr_null(cJSON_GetObjectItem(j, "custom_fields"));
    cJSON_Delete(j);

    j = er_map_job(p, true);
    ck_assert_str_eq(str(cJSON_GetObjectItem(j, "custom_fields"), "cost_center"), "CC-7");
    const cJSON *team = cJSON_GetObjectItem(j, "hiring_team");
    ck_assert_int_eq(cJSON_GetArraySize(team), 1);
    ck_assert_str_eq(str(cJSON_GetArrayItem(team, 0), "role"), "recruiter");
    cJSON_Delete(j);

    /* every status, an unknown one, and missing optional members */
    ck_assert_str_eq(er_map_job_status("filled"), "filled");
    ck_assert_str_eq(er_map_job_status("draft"), "draft");
    ck_assert_str_eq(er_map_job_status("closed"), "closed");
    ck_assert_str_eq(er_map_job_status("archived"), "other");
    ck_assert_str_eq(er_map_job_type("part_time"), "PART_TIME");
    ck_assert_str_eq(er_map_job_type("gig"), "OTHER");
    cJSON_Delete(p);
    p = cJSON_Parse("{\"id\": \"P-9\", \"status\": \"archived\"}");
    j = er_map_job(p, false);
    ck_assert_str_eq(str(j, "remote_id"), "P-9");
    ck_assert_str_eq(str(j, "status"), "other");
    ck_assert(is_null(j, "title") && is_null(j, "job_type") && is_null(j, "updated_at"));
    ck_assert(is_null(cJSON_GetObjectItem(j, "location"), "city"));
    cJSON_Delete(j);
    cJSON_Delete(p);
    p = cJSON_Parse("{\"title\": \"no id\"}");
    ck_assert_ptr_null(er_map_job(p, false));
    cJSON_Delete(p);
}
END_TEST

START_TEST(test_map_submission)
{
    er_map_opts o = {65880, 101};
    cJSON *s = cJSON_Parse(SUBMISSION);
    cJSON *a = er_map_application(s, &o);
    ck_assert_str_eq(str(a, "remote_id"), "5001");
    ck_assert_str_eq(str(a, "job_remote_id"), "123");
    ck_assert_str_eq(str(a, "candidate_remote_id"), "77");
    ck_assert_str_eq(str(a, "stage_id"), "2");
    ck_assert(is_null(a, "status_id") && is_null(a, "reject_reason_id"));
    ck_assert_str_eq(str(a, "status"), "active");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(a, "rejected")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(a, "screened")));
    ck_assert_str_eq(str(a, "updated_at"), "2025-10-06T17:00:00");
    cJSON_Delete(a);

    cJSON_ReplaceItemInObject(s, "status_id", cJSON_CreateNumber(101));
    a = er_map_application(s, &o);
    ck_assert_str_eq(str(a, "status"), "screened");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(a, "screened")));
    cJSON_Delete(a);

    cJSON_ReplaceItemInObject(s, "rejected", cJSON_CreateTrue());
    cJSON_ReplaceItemInObject(s, "disposition_reason_id", cJSON_CreateNumber(7));
    a = er_map_application(s, &o);
    ck_assert_str_eq(str(a, "status"), "rejected");
    ck_assert_str_eq(str(a, "reject_reason_id"), "7");
    cJSON_Delete(a);
    cJSON_Delete(s);
}
END_TEST

START_TEST(test_map_contact)
{
    er_map_opts o = {65880, 101};
    cJSON *s = cJSON_Parse(CONTACT);
    cJSON *c = er_map_candidate(s, &o);
    ck_assert_str_eq(str(c, "remote_id"), "77");
    ck_assert_str_eq(str(c, "name"), "Amal Saleh");
    ck_assert_str_eq(str(c, "email"), "amal@example.com");
    ck_assert_str_eq(str(c, "phone"), "+966500000000");
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "tags"), 1)->valuestring, "65880");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(c, "screened")));
    ck_assert_str_eq(str(c, "updated_at"), "2025-10-05T12:00:00");
    cJSON_Delete(c);
    o.screened_tag_id = 1;
    c = er_map_candidate(s, &o);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(c, "screened")));
    cJSON_Delete(c);
    cJSON_Delete(s);

    s = cJSON_Parse("{\"id\": 8, \"last_name\": \"Only\"}");
    c = er_map_candidate(s, &o);
    ck_assert_str_eq(str(c, "name"), "Only");
    ck_assert(is_null(c, "email"));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c, "tags")), 0);
    cJSON_Delete(c);
    cJSON_Delete(s);
}
END_TEST

START_TEST(test_note_html)
{
    char *h = er_note_html("Score: 4 < 5 & \"good\"\nnext line");
    ck_assert_str_eq(h, "<p>Score: 4 &lt; 5 &amp; &quot;good&quot;<br>next line</p>");
    free(h);
    ck_assert(er_note_is_html("  <p>Hi</p>\n"));
    ck_assert(!er_note_is_html("Hi <b>there</b>"));
    ck_assert(!er_note_is_html("<3"));
}
END_TEST

START_TEST(test_error_mapping)
{
    static const struct {
        long status;
        const char *body, *code, *in_message;
        int http;
    } cases[] = {
        {400, "{\"error\":\"bad_request\",\"message\":\"bad per_page\"}", "invalid_request",
         "bad per_page", 400},
        {401, "{\"error\":\"invalid_token\"}", "auth_failed", "invalid_token", 502},
        {404, "{\"error\":\"not_found\",\"message\":\"no submission 9\"}", "not_found",
         "no submission 9", 404},
        {409, "{\"error\":\"conflict\",\"message\":\"already rejected\"}", "conflict",
         "already rejected", 409},
        {422, "{\"error\":\"validation_failed\",\"message\":\"unknown stage 99\"}",
         "invalid_request", "unknown stage 99", 422},
        {429, "{\"error\":\"rate_limited\"}", "upstream_unavailable", "429", 503},
        {503, "", "upstream_unavailable", "503", 503},
        {418, NULL, "upstream_error", "418", 502},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *b = cases[i].body != NULL ? cJSON_Parse(cases[i].body) : NULL;
        er_error err;
        memset(&err, 0, sizeof err);
        er_map_error(cases[i].status, b, 4, &err);
        ck_assert_str_eq(err.code, cases[i].code);
        ck_assert_int_eq(err.http_status, cases[i].http);
        ck_assert_msg(strstr(err.message, cases[i].in_message) != NULL, "%ld: %s",
                      cases[i].status, err.message);
        cJSON_Delete(b);
    }
}
END_TEST

/* ---------------------------------------------------------------------- */
/* HTTP behaviour                                                           */
/* ---------------------------------------------------------------------- */

START_TEST(test_401_invalidates_and_retries_once)
{
    env *e = env_new();
    cJSON *r;
    reply_with(&e->rec, 401, "{\"error\":\"invalid_token\"}");
    reply_with(&e->rec, 200, POSITION);
    ck_assert_int_eq(run(e, e->d->jobs->get, "{\"job_id\": 123}", &r), AH_OK);
    ck_assert_int_eq(e->rec.n, 2);
    ck_assert_uint_eq(e->fh->oauth2_invalidate_count, 1);
    ck_assert_uint_eq(e->fh->oauth2_count, 2);
    ck_assert_str_eq(str(r, "remote_id"), "123");
    cJSON_Delete(r);
    recorder_clear(&e->rec);

    /* refused twice: auth_failed, and no third attempt */
    reply_with(&e->rec, 401, "{\"error\":\"invalid_token\"}");
    reply_with(&e->rec, 401, "{\"error\":\"invalid_token\"}");
    reply_with(&e->rec, 200, POSITION);
    ck_assert_int_eq(run(e, e->d->jobs->get, "{\"job_id\": 123}", &r), AH_ERR);
    ck_assert_int_eq(e->rec.n, 2);
    ck_assert_str_eq(e->x.err_code, "auth_failed");
    ck_assert_uint_eq(e->fh->oauth2_invalidate_count, 2);
    recorder_clear(&e->rec);

    /* invalid_client: the host does not read provider bodies, so it is a
     * 401 like any other (one renewal; a real token endpoint then refuses
     * the client), and still auth_failed. */
    reply_with(&e->rec, 401, "{\"error\":\"invalid_client\"}");
    reply_with(&e->rec, 401, "{\"error\":\"invalid_client\"}");
    ck_assert_int_eq(run(e, e->d->jobs->get, "{\"job_id\": 123}", &r), AH_ERR);
    ck_assert_int_eq(e->rec.n, 2);
    ck_assert_str_eq(e->x.err_code, "auth_failed");
    env_free(e);
}
END_TEST

START_TEST(test_malformed_and_unavailable)
{
    env *e = env_new();
    cJSON *r;
    reply_with(&e->rec, 200, "{\"data\": [{\"id\": 1, \"title\": \"Nur");
    ck_assert_int_eq(run(e, e->d->streaming->jobs, "{}", &r), AH_ERR);
    ck_assert_str_eq(e->x.err_code, "upstream_error");
    ck_assert_uint_eq(e->fh->record_count, 0);
    recorder_clear(&e->rec);

    reply_with(&e->rec, 200, "{\"items\": []}");
    ck_assert_int_eq(run(e, e->d->streaming->jobs, "{}", &r), AH_ERR);
    ck_assert_str_eq(e->x.err_code, "upstream_error");
    recorder_clear(&e->rec);

    reply_with(&e->rec, 503, "{\"error\":\"unavailable\"}");
    ck_assert_int_eq(run(e, e->d->dispositions->list, "{}", &r), AH_ERR);
    ck_assert_str_eq(e->x.err_code, "upstream_unavailable");
    ck_assert_int_eq(e->x.err_status, 503);
    recorder_clear(&e->rec);

    reply_with(&e->rec, 429, "{\"error\":\"rate_limited\"}");
    ck_assert_int_eq(run(e, e->d->dispositions->list, "{}", &r), AH_ERR);
    ck_assert_str_eq(e->x.err_code, "upstream_unavailable");
    recorder_clear(&e->rec);

    reply_with(&e->rec, 0, NULL); /* no response: the host's own failure stands */
    ck_assert_int_eq(run(e, e->d->dispositions->list, "{}", &r), AH_ERR);
    ck_assert_str_eq(e->x.err_code, "upstream_unavailable");
    ck_assert_str_eq(e->x.err_msg, "canned response: no response");
    env_free(e);
}
END_TEST

START_TEST(test_missing_and_bad_fields)
{
    env *e = env_new();
    cJSON *r;
    static const struct {
        size_t table, slot;
        const char *body, *message;
    } cases[] = {
#define OP(t, T, s) offsetof(ah_plugin_descriptor, t), offsetof(T, s)
        {OP(applications, ah_applications_ops, move_to_stage), "{\"stage_id\": 3}",
         "field 'application_id' must be"},
        {OP(applications, ah_applications_ops, move_to_stage),
         "{\"application_id\": true, \"stage_id\": 3}", "field 'application_id' must be"},
        {OP(applications, ah_applications_ops, move_to_stage),
         "{\"application_id\": 1.5, \"stage_id\": 3}", "field 'application_id' must be"},
        {OP(applications, ah_applications_ops, move_to_stage),
         "{\"application_id\": \"\", \"stage_id\": 3}", "field 'application_id' must be"},
        {OP(applications, ah_applications_ops, move_to_stage), "{\"application_id\": 1}",
         "field 'stage_id' must be"},
        {OP(applications, ah_applications_ops, reject), "{\"application_id\": 1}",
         "field 'reason_id' must be"},
        {OP(applications, ah_applications_ops, bulk_reject), "{\"reason_id\": 1}",
         "field 'application_ids' must be"},
        {OP(applications, ah_applications_ops, bulk_reject),
         "{\"application_ids\": [], \"reason_id\": 1}", "field 'application_ids' must be"},
        {OP(applications, ah_applications_ops, bulk_reject),
         "{\"application_ids\": [1, {}], \"reason_id\": 1}", "application_ids[1]"},
        {OP(applications, ah_applications_ops, create), "{\"job_id\": 1}",
         "field 'candidate_id' must be"},
        {OP(jobs, ah_jobs_ops, get), "{}", "field 'job_id' must be"},
        {OP(jobs, ah_jobs_ops, enhanced_batch), "{\"limit\": 0}", "field 'limit' must be"},
        {OP(candidates, ah_candidates_ops, find), "{\"email\": \"\"}", "one of first_name"},
        {OP(candidates, ah_candidates_ops, resume), "{}", "field 'candidate_id' must be"},
        {OP(notes, ah_notes_ops, add_to_application), "{\"application_id\": 1}",
         "field 'note' must be"},
        {OP(notes, ah_notes_ops, add_to_candidate), "{\"candidate_id\": 1, \"note\": 5}",
         "field 'note' must be"},
        {OP(notes, ah_notes_ops, add_to_candidate),
         "{\"candidate_id\": 1, \"note\": \"x\", \"screened\": \"yes\"}", "field 'screened' must be"},
        {OP(attachments, ah_attachments_ops, add_to_application),
         "{\"application_id\": 1, \"filename\": \"../cv.pdf\", \"data_base64\": \"QQ==\"}",
         "field 'filename' must be"},
        {OP(attachments, ah_attachments_ops, add_to_application),
         "{\"application_id\": 1, \"data_base64\": \"QQ==\"}", "field 'filename' must be"},
        {OP(attachments, ah_attachments_ops, add_to_candidate),
         "{\"candidate_id\": 1, \"filename\": \"cv.pdf\", \"data_base64\": \"\"}",
         "field 'data_base64' must be"},
        {OP(attachments, ah_attachments_ops, add_to_candidate),
         "{\"candidate_id\": 1, \"filename\": \"cv.pdf\", \"data_base64\": \"%%%\"}",
         "data_base64 is not base64"},
        {OP(custom_fields, ah_custom_fields_ops, list), "{\"entity\": \"invoice\"}",
         "field 'entity' must be"},
        {OP(custom_fields, ah_custom_fields_ops, values), "{\"entity\": \"job\"}",
         "field 'id' must be"},
        {OP(custom_fields, ah_custom_fields_ops, update),
         "{\"entity\": \"job\", \"id\": 1, \"values\": {\"a\": {\"b\": 1}}}", "field 'values.a' must be"},
        {OP(streaming, ah_streaming_ops, jobs), "{\"statuses\": [\"gone\"]}", "statuses"},
        {OP(streaming, ah_streaming_ops, jobs), "{\"updated_after\": \"yesterday\"}",
         "field 'updated_after' must be"},
        {OP(streaming, ah_streaming_ops, applications), "{\"job_ids\": \"1,2\"}",
         "field 'job_ids' must be"},
#undef OP
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const void *table = *(const void *const *)((const char *)e->d + cases[i].table);
        ah_op_fn fn = *(const ah_op_fn *)((const char *)table + cases[i].slot);
        ck_assert_int_eq(run(e, fn, cases[i].body, &r), AH_ERR);
        ck_assert_msg(strcmp(e->x.err_code, "invalid_request") == 0, "%s: %s", cases[i].body,
                      e->x.err_code);
        ck_assert_int_eq(e->x.err_status, 400);
        ck_assert_msg(strstr(e->x.err_msg, cases[i].message) != NULL, "%s: %s", cases[i].body,
                      e->x.err_msg);
    }
    ck_assert_int_eq(e->rec.n, 0); /* nothing reached ERecruit */
    env_free(e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* streaming                                                                */
/* ---------------------------------------------------------------------- */

START_TEST(test_stream_jobs)
{
    env *e = env_new();
    cJSON *r;
    char page[4096];
    snprintf(page, sizeof page, "{\"data\": [%s, {\"title\": \"no id\"}, {\"id\": 124}],"
                                " \"next_cursor\": \"c2\"}", POSITION);
    reply_with(&e->rec, 200, page);
    ck_assert_int_eq(run(e, e->d->streaming->jobs,
                         "{\"updated_after\": \"2025-10-06T14:30:00\"}", &r), AH_OK);
    assert_req(e, 0, "GET",
               "/api/v2/positions?per_page=500&updated_after=2025-10-06T14%3A30%3A00"
               "&status=open,closed,draft,filled");
    ck_assert_uint_eq(e->fh->record_count, 2); /* the record without an id is skipped */
    ck_assert_str_eq(e->fh->last_record_type, "job");
    ck_assert_str_eq(e->fh->last_record_id, "124");
    ck_assert_str_eq(str(r, "next_cursor"), "c2");
    cJSON_Delete(r);
    recorder_clear(&e->rec);

    reply_with(&e->rec, 200, "{\"data\": [], \"next_cursor\": null}");
    ck_assert_int_eq(run(e, e->d->streaming->jobs,
                         "{\"cursor\": \"a b/c\", \"statuses\": [\"open\", \"filled\"],"
                         " \"per_page\": 5}", &r), AH_OK);
    assert_req(e, 0, "GET", "/api/v2/positions?per_page=5&cursor=a%20b%2Fc&status=open,filled");
    ck_assert(is_null(r, "next_cursor"));
    cJSON_Delete(r);
    env_free(e);
}
END_TEST

/* A record's raw is the provider's bytes when "data" comes first and the
 * item is compact (numbers as written, not printed again); an item with
 * blanks inside, or a page whose "data" is not its first member, is
 * printed compactly from its tree. */
START_TEST(test_stream_raw_as_sent)
{
    env *e = env_new();
    cJSON *r;
    static const char a[] = "{\"id\":7,\"title\":\"a \\\"],{\",\"pay\":1.50,\"tags\":[1,{\"x\":[]}],"
                            "\"updated_at\":\"2025-10-06T14:30:00\"}";
    char page[1024];
    snprintf(page, sizeof page, "{\"data\":[ %s ,%s],\"next_cursor\":null}", a, a);
    reply_with(&e->rec, 200, page);
    ck_assert_int_eq(run(e, e->d->streaming->jobs, "{}", &r), AH_OK);
    ck_assert_uint_eq(e->fh->record_count, 2);
    ck_assert_str_eq(e->fh->last_record_raw, a);
    cJSON_Delete(r);
    recorder_clear(&e->rec);

    reply_with(&e->rec, 200, "{\"data\":[{\"id\": 8, \"pay\":1.50}]}");
    ck_assert_int_eq(run(e, e->d->streaming->jobs, "{}", &r), AH_OK);
    ck_assert_str_eq(e->fh->last_record_raw, "{\"id\":8,\"pay\":1.5}");
    cJSON_Delete(r);
    recorder_clear(&e->rec);

    reply_with(&e->rec, 200, "{\"next_cursor\":null,\"data\":[{\"id\":9,\"pay\":1.50}]}");
    ck_assert_int_eq(run(e, e->d->streaming->jobs, "{}", &r), AH_OK);
    ck_assert_str_eq(e->fh->last_record_raw, "{\"id\":9,\"pay\":1.5}");
    cJSON_Delete(r);
    env_free(e);
}
END_TEST

START_TEST(test_stream_applications_and_candidates)
{
    env *e = env_new();
    cJSON *r;
    char page[2048];
    snprintf(page, sizeof page, "{\"data\": [%s], \"next_cursor\": null}", SUBMISSION);
    reply_with(&e->rec, 200, page);
    ck_assert_int_eq(run(e, e->d->streaming->applications,
                         "{\"job_ids\": [123, \"P 9\"]}", &r), AH_OK);
    assert_req(e, 0, "GET", "/api/v2/submissions?per_page=500&position_id=123,P%209");
    ck_assert_str_eq(e->fh->last_record_type, "application");
    ck_assert_str_eq(e->fh->last_record_id, "5001");
    ck_assert(is_null(r, "next_cursor"));
    cJSON_Delete(r);

    snprintf(page, sizeof page, "{\"data\": [%s], \"next_cursor\": \"n1\"}", CONTACT);
    reply_with(&e->rec, 200, page);
    ck_assert_int_eq(run(e, e->d->streaming->candidates, "{}", &r), AH_OK);
    assert_req(e, 1, "GET", "/api/v2/contacts?per_page=500");
    ck_assert_str_eq(e->fh->last_record_type, "candidate");
    ck_assert_str_eq(e->fh->last_record_id, "77");
    ck_assert_str_eq(str(r, "next_cursor"), "n1");
    cJSON_Delete(r);
    env_free(e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* applications                                                             */
/* ---------------------------------------------------------------------- */

START_TEST(test_move_and_reject)
{
    env *e = env_new();
    cJSON *r;
    reply_with(&e->rec, 200, SUBMISSION);
    ck_assert_int_eq(run(e, e->d->applications->move_to_stage,
                         "{\"application_id\": \"50/01\", \"stage_id\": \"3\"}", &r), AH_OK);
    assert_req(e, 0, "POST", "/api/v2/submissions/50%2F01/stage");
    assert_body(e, 0, "{\"stage_id\": 3}");
    ck_assert_str_eq(str(r, "remote_id"), "5001");
    ck_assert_str_eq(str(r, "status"), "active");
    cJSON_Delete(r);

    reply_with(&e->rec, 200, "");
    ck_assert_int_eq(run(e, e->d->applications->reject,
                         "{\"application_id\": 5001, \"reason_id\": 7}", &r), AH_OK);
    assert_req(e, 1, "POST", "/api/v2/submissions/5001/reject");
    assert_body(e, 1, "{\"reason_id\": 7}");
    ck_assert_str_eq(str(r, "remote_id"), "5001");
    ck_assert_str_eq(str(r, "status"), "rejected");
    ck_assert_str_eq(str(r, "reject_reason_id"), "7");
    cJSON_Delete(r);

    reply_with(&e->rec, 409, "{\"error\":\"conflict\",\"message\":\"already rejected\"}");
    ck_assert_int_eq(run(e, e->d->applications->reject,
                         "{\"application_id\": 5001, \"reason_id\": 7}", &r), AH_ERR);
    ck_assert_str_eq(e->x.err_code, "conflict");
    ck_assert_int_eq(e->x.err_status, 409);

    reply_with(&e->rec, 422, "{\"error\":\"validation_failed\",\"message\":\"unknown stage 99\"}");
    ck_assert_int_eq(run(e, e->d->applications->move_to_stage,
                         "{\"application_id\": 5001, \"stage_id\": 99}", &r), AH_ERR);
    ck_assert_str_eq(e->x.err_code, "invalid_request");
    ck_assert_ptr_nonnull(strstr(e->x.err_msg, "unknown stage 99"));
    env_free(e);
}
END_TEST

START_TEST(test_bulk_reject_per_item)
{
    env *e = env_new();
    cJSON *r;
    reply_with(&e->rec, 200, "{}");
    reply_with(&e->rec, 404, "{\"error\":\"not_found\",\"message\":\"no submission 2\"}");
    reply_with(&e->rec, 200, "{}");
    ck_assert_int_eq(run(e, e->d->applications->bulk_reject,
                         "{\"application_ids\": [1, \"2\", 3], \"reason_id\": 7}", &r), AH_OK);
    ck_assert_int_eq(e->rec.n, 3);
    assert_req(e, 0, "POST", "/api/v2/submissions/1/reject");
    assert_req(e, 1, "POST", "/api/v2/submissions/2/reject");
    assert_req(e, 2, "POST", "/api/v2/submissions/3/reject");
    assert_body(e, 2, "{\"reason_id\": 7}");
    ck_assert_int_eq((int)num(r, "succeeded"), 2);
    ck_assert_int_eq((int)num(r, "failed"), 1);
    const cJSON *res = cJSON_GetObjectItem(r, "results");
    ck_assert_int_eq(cJSON_GetArraySize(res), 3);
    const cJSON *bad = cJSON_GetArrayItem(res, 1);
    ck_assert_str_eq(str(bad, "application_id"), "2");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(bad, "ok")));
    ck_assert_str_eq(str(cJSON_GetObjectItem(bad, "error"), "code"), "not_found");
    ck_assert_ptr_nonnull(strstr(str(cJSON_GetObjectItem(bad, "error"), "message"),
                                 "no submission 2"));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 2), "ok")));
    ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "error"));
    cJSON_Delete(r);
    env_free(e);
}
END_TEST

START_TEST(test_create_and_lists)
{
    env *e = env_new();
    cJSON *r;
    reply_with(&e->rec, 201, SUBMISSION);
    ck_assert_int_eq(run(e, e->d->applications->create,
                         "{\"candidate_id\": \"77\", \"job_id\": 123}", &r), AH_OK);
    assert_req(e, 0, "POST", "/api/v2/submissions");
    assert_body(e, 0, "{\"contact_id\": 77, \"position_id\": 123}");
    ck_assert_str_eq(str(r, "remote_id"), "5001");
    ck_assert_str_eq(str(r, "candidate_remote_id"), "77");
    cJSON_Delete(r);

    reply_with(&e->rec, 201, SUBMISSION);
    ck_assert_int_eq(run(e, e->d->applications->create,
                         "{\"candidate_id\": \"C-1\", \"job_id\": 123, \"stage_id\": 2}", &r),
                     AH_OK);
    assert_body(e, 1, "{\"contact_id\": \"C-1\", \"position_id\": 123, \"stage_id\": 2}");
    cJSON_Delete(r);

    reply_with(&e->rec, 200,
               "{\"data\": [{\"id\": 1, \"name\": \"New\", \"order\": 1},"
               " {\"id\": 2, \"name\": \"Screen\", \"order\": 2}]}");
    ck_assert_int_eq(run(e, e->d->applications->list_stages, "{}", &r), AH_OK);
    assert_req(e, 2, "GET", "/api/v2/stages");
    const cJSON *st = cJSON_GetObjectItem(r, "stages");
    ck_assert_int_eq(cJSON_GetArraySize(st), 2);
    ck_assert_str_eq(str(cJSON_GetArrayItem(st, 1), "id"), "2");
    ck_assert_str_eq(str(cJSON_GetArrayItem(st, 1), "name"), "Screen");
    ck_assert_int_eq((int)num(cJSON_GetArrayItem(st, 1), "order"), 2);
    cJSON_Delete(r);

    reply_with(&e->rec, 200, "{\"data\": [{\"id\": 7, \"name\": \"Not qualified\"}]}");
    ck_assert_int_eq(run(e, e->d->dispositions->list, "{}", &r), AH_OK);
    assert_req(e, 3, "GET", "/api/v2/disposition-reasons");
    const cJSON *rs = cJSON_GetObjectItem(r, "reasons");
    ck_assert_str_eq(str(cJSON_GetArrayItem(rs, 0), "id"), "7");
    ck_assert_str_eq(str(cJSON_GetArrayItem(rs, 0), "name"), "Not qualified");
    cJSON_Delete(r);
    env_free(e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* jobs and candidates                                                      */
/* ---------------------------------------------------------------------- */

START_TEST(test_jobs)
{
    env *e = env_new();
    cJSON *r;
    reply_with(&e->rec, 200, POSITION);
    ck_assert_int_eq(run(e, e->d->jobs->get, "{\"job_id\": \"12 3\"}", &r), AH_OK);
    assert_req(e, 0, "GET", "/api/v2/positions/12%203");
    ck_assert_str_eq(str(r, "title"), "Nurse");
    ck_assert_ptr_null(cJSON_GetObjectItem(r, "hiring_team"));
    cJSON_Delete(r);

    reply_with(&e->rec, 200, POSITION);
    ck_assert_int_eq(run(e, e->d->jobs->get_enhanced, "{\"job_id\": 123}", &r), AH_OK);
    assert_req(e, 1, "GET", "/api/v2/positions/123?expand=custom_fields,hiring_team");
    ck_assert_str_eq(str(cJSON_GetObjectItem(r, "custom_fields"), "cost_center"), "CC-7");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "hiring_team")), 1);
    cJSON_Delete(r);

    char page[4096];
    snprintf(page, sizeof page, "{\"data\": [%s], \"next_cursor\": \"k\"}", POSITION);
    reply_with(&e->rec, 200, page);
    ck_assert_int_eq(run(e, e->d->jobs->enhanced_batch, "{\"limit\": 10, \"cursor\": \"x=1\"}",
                         &r), AH_OK);
    assert_req(e, 2, "GET",
               "/api/v2/positions?expand=custom_fields,hiring_team&per_page=10&cursor=x%3D1");
    const cJSON *jobs = cJSON_GetObjectItem(r, "jobs");
    ck_assert_int_eq(cJSON_GetArraySize(jobs), 1);
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetArrayItem(jobs, 0), "custom_fields"));
    ck_assert_str_eq(str(r, "next_cursor"), "k");
    cJSON_Delete(r);

    reply_with(&e->rec, 404, "{\"error\":\"not_found\"}");
    ck_assert_int_eq(run(e, e->d->jobs->get, "{\"job_id\": 9}", &r), AH_ERR);
    ck_assert_str_eq(e->x.err_code, "not_found");
    env_free(e);
}
END_TEST

START_TEST(test_candidates)
{
    env *e = env_new();
    cJSON *r;
    reply_with(&e->rec, 200, CONTACT);
    ck_assert_int_eq(run(e, e->d->candidates->get, "{\"candidate_id\": 77}", &r), AH_OK);
    assert_req(e, 0, "GET", "/api/v2/contacts/77");
    ck_assert_str_eq(str(r, "name"), "Amal Saleh");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "screened")));
    cJSON_Delete(r);

    char page[2048];
    snprintf(page, sizeof page, "{\"data\": [%s]}", CONTACT);
    reply_with(&e->rec, 200, page);
    ck_assert_int_eq(run(e, e->d->candidates->find,
                         "{\"email\": \"a+b@x.com\", \"last_name\": \"Al Saleh\"}", &r), AH_OK);
    assert_req(e, 1, "GET", "/api/v2/contacts/search?last_name=Al%20Saleh&email=a%2Bb%40x.com");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "candidates")), 1);
    cJSON_Delete(r);

    reply_with(&e->rec, 200,
               "{\"filename\": \"cv.pdf\", \"content_type\": \"application/pdf\","
               " \"data_base64\": \"JVBERi0=\"}");
    ck_assert_int_eq(run(e, e->d->candidates->resume, "{\"candidate_id\": 77}", &r), AH_OK);
    assert_req(e, 2, "GET", "/api/v2/contacts/77/resume");
    ck_assert_str_eq(str(r, "filename"), "cv.pdf");
    ck_assert_str_eq(str(r, "data_base64"), "JVBERi0=");
    cJSON_Delete(r);

    reply_with(&e->rec, 404, "{\"error\":\"not_found\",\"message\":\"no resume\"}");
    ck_assert_int_eq(run(e, e->d->candidates->resume, "{\"candidate_id\": 78}", &r), AH_ERR);
    ck_assert_str_eq(e->x.err_code, "not_found");
    env_free(e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* notes and attachments                                                    */
/* ---------------------------------------------------------------------- */

static const char NOTE[] = "{\"id\": 900, \"body_html\": \"<p>x</p>\", \"action_id\": 496,"
                           " \"created_at\": \"2025-10-06T18:00:00\"}";

START_TEST(test_notes)
{
    env *e = env_new();
    cJSON *r;
    reply_with(&e->rec, 201, NOTE);
    ck_assert_int_eq(run(e, e->d->notes->add_to_application,
                         "{\"application_id\": 5001, \"note\": \"Fit: 4 < 5 & ok\"}", &r),
                     AH_OK);
    assert_req(e, 0, "POST", "/api/v2/submissions/5001/notes");
    assert_body(e, 0, "{\"body_html\": \"<p>Fit: 4 &lt; 5 &amp; ok</p>\", \"action_id\": 496}");
    ck_assert_str_eq(str(r, "id"), "900");
    ck_assert_str_eq(str(r, "note_action_type"), "496");
    ck_assert_str_eq(str(r, "application_id"), "5001");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "screened")));
    cJSON_Delete(r);

    /* HTML goes as is; an explicit action type wins over the setting */
    reply_with(&e->rec, 201, NOTE);
    ck_assert_int_eq(run(e, e->d->notes->add_to_candidate,
                         "{\"candidate_id\": \"77\", \"note\": \"<p><b>Called</b></p>\","
                         " \"note_action_type\": \"12\"}", &r), AH_OK);
    assert_req(e, 1, "POST", "/api/v2/contacts/77/notes");
    assert_body(e, 1, "{\"body_html\": \"<p><b>Called</b></p>\", \"action_id\": 12}");
    cJSON_Delete(r);

    /* format text forces escaping even of what looks like HTML */
    reply_with(&e->rec, 201, NOTE);
    ck_assert_int_eq(run(e, e->d->notes->add_to_candidate,
                         "{\"candidate_id\": 77, \"note\": \"<b>\", \"format\": \"text\"}", &r),
                     AH_OK);
    assert_body(e, 2, "{\"body_html\": \"<p>&lt;b&gt;</p>\", \"action_id\": 496}");
    cJSON_Delete(r);
    env_free(e);
}
END_TEST

START_TEST(test_screened_note)
{
    env *e = env_new();
    cJSON *r;
    reply_with(&e->rec, 200, SUBMISSION); /* GET submission: contact 77 */
    reply_with(&e->rec, 200, SUBMISSION); /* status */
    reply_with(&e->rec, 200, "{}");       /* tag */
    reply_with(&e->rec, 201, NOTE);
    ck_assert_int_eq(run(e, e->d->notes->add_to_application,
                         "{\"application_id\": 5001, \"note\": \"<p>Passed</p>\","
                         " \"screened\": true}", &r), AH_OK);
    ck_assert_int_eq(e->rec.n, 4);
    assert_req(e, 0, "GET", "/api/v2/submissions/5001");
    assert_req(e, 1, "POST", "/api/v2/submissions/5001/status");
    assert_body(e, 1, "{\"status_id\": 101}");
    assert_req(e, 2, "POST", "/api/v2/contacts/77/tags");
    assert_body(e, 2, "{\"tag_id\": 65880}");
    assert_req(e, 3, "POST", "/api/v2/submissions/5001/notes");
    assert_body(e, 3, "{\"body_html\": \"<p>Passed</p>\", \"action_id\": 496}");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "screened")));
    ck_assert_str_eq(str(r, "candidate_id"), "77");
    cJSON_Delete(r);
    recorder_clear(&e->rec);

    /* a failed marker means no note (the caller retries the whole thing) */
    reply_with(&e->rec, 404, "{\"error\":\"not_found\"}");
    ck_assert_int_eq(run(e, e->d->notes->add_to_application,
                         "{\"application_id\": 9, \"note\": \"x\", \"screened\": true}", &r),
                     AH_ERR);
    ck_assert_str_eq(e->x.err_code, "not_found");
    ck_assert_int_eq(e->rec.n, 1);
    recorder_clear(&e->rec);

    reply_with(&e->rec, 200, "{}");
    reply_with(&e->rec, 201, NOTE);
    ck_assert_int_eq(run(e, e->d->notes->add_to_candidate,
                         "{\"candidate_id\": 77, \"note\": \"x\", \"screened\": true}", &r),
                     AH_OK);
    assert_req(e, 0, "POST", "/api/v2/contacts/77/tags");
    assert_req(e, 1, "POST", "/api/v2/contacts/77/notes");
    cJSON_Delete(r);
    env_free(e);
}
END_TEST

START_TEST(test_attachments)
{
    env *e = env_new();
    cJSON *r;
    reply_with(&e->rec, 201, "{\"id\": 31, \"filename\": \"cv.pdf\", \"size\": 4}");
    ck_assert_int_eq(run(e, e->d->attachments->add_to_application,
                         "{\"application_id\": 5001, \"filename\": \"cv.pdf\","
                         " \"data_base64\": \"JVBERi0=\"}", &r), AH_OK);
    assert_req(e, 0, "POST", "/api/v2/submissions/5001/documents");
    assert_body(e, 0, "{\"filename\": \"cv.pdf\", \"content_type\": \"application/pdf\","
                      " \"data_base64\": \"JVBERi0=\"}");
    ck_assert_str_eq(str(r, "id"), "31");
    ck_assert_int_eq((int)num(r, "size"), 4);
    ck_assert_str_eq(str(r, "application_id"), "5001");
    cJSON_Delete(r);

    reply_with(&e->rec, 201, "{\"id\": 32, \"filename\": \"cv.pdf\", \"size\": 4}");
    ck_assert_int_eq(run(e, e->d->attachments->add_to_candidate,
                         "{\"candidate_id\": 77, \"filename\": \"cv.pdf\","
                         " \"data_base64\": \"JVBERi0=\", \"kind\": \"resume\"}", &r), AH_OK);
    assert_req(e, 1, "POST", "/api/v2/contacts/77/documents");
    assert_body(e, 1, "{\"filename\": \"cv.pdf\", \"content_type\": \"application/pdf\","
                      " \"data_base64\": \"JVBERi0=\", \"kind\": \"resume\"}");
    cJSON_Delete(r);

    char body[400];
    char longname[300];
    memset(longname, 'a', 256);
    longname[256] = '\0';
    snprintf(body, sizeof body,
             "{\"candidate_id\": 1, \"filename\": \"%s\", \"data_base64\": \"QQ==\"}", longname);
    ck_assert_int_eq(run(e, e->d->attachments->add_to_candidate, body, &r), AH_ERR);
    ck_assert_str_eq(e->x.err_code, "invalid_request");
    ck_assert_int_eq(e->rec.n, 2);
    env_free(e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* custom fields                                                            */
/* ---------------------------------------------------------------------- */

START_TEST(test_custom_fields)
{
    env *e = env_new();
    cJSON *r;
    reply_with(&e->rec, 200,
               "{\"data\": [{\"key\": \"cost_center\", \"label\": \"Cost center\","
               " \"type\": \"select\", \"options\": [\"CC-7\"]}, {\"label\": \"no key\"}]}");
    ck_assert_int_eq(run(e, e->d->custom_fields->list, "{\"entity\": \"application\"}", &r),
                     AH_OK);
    assert_req(e, 0, "GET", "/api/v2/custom-fields?entity=submission");
    ck_assert_str_eq(str(r, "entity"), "application");
    const cJSON *f = cJSON_GetObjectItem(r, "fields");
    ck_assert_int_eq(cJSON_GetArraySize(f), 1);
    ck_assert_str_eq(str(cJSON_GetArrayItem(f, 0), "type"), "select");
    cJSON_Delete(r);

    reply_with(&e->rec, 200, "{\"data\": {\"cost_center\": \"CC-7\"}}");
    ck_assert_int_eq(run(e, e->d->custom_fields->values, "{\"entity\": \"job\", \"id\": 123}", &r),
                     AH_OK);
    assert_req(e, 1, "GET", "/api/v2/positions/123/custom-fields");
    ck_assert_str_eq(str(r, "id"), "123");
    ck_assert_str_eq(str(cJSON_GetObjectItem(r, "values"), "cost_center"), "CC-7");
    cJSON_Delete(r);

    reply_with(&e->rec, 200, "{\"data\": {\"score\": 4, \"langs\": [\"ar\", \"en\"]}}");
    ck_assert_int_eq(run(e, e->d->custom_fields->update,
                         "{\"entity\": \"candidate\", \"id\": 77,"
                         " \"values\": {\"score\": 4, \"langs\": [\"ar\", \"en\"]}}", &r),
                     AH_OK);
    assert_req(e, 2, "PATCH", "/api/v2/contacts/77/custom-fields");
    assert_body(e, 2, "{\"values\": {\"score\": 4, \"langs\": [\"ar\", \"en\"]}}");
    ck_assert_str_eq(str(r, "entity"), "candidate");
    ck_assert_int_eq((int)num(cJSON_GetObjectItem(r, "values"), "score"), 4);
    cJSON_Delete(r);

    reply_with(&e->rec, 422,
               "{\"error\":\"validation_failed\",\"message\":\"unknown custom field nope\"}");
    ck_assert_int_eq(run(e, e->d->custom_fields->update,
                         "{\"entity\": \"application\", \"id\": 1, \"values\": {\"nope\": 1}}",
                         &r), AH_ERR);
    ck_assert_str_eq(e->x.err_code, "invalid_request");
    ck_assert_ptr_nonnull(strstr(e->x.err_msg, "unknown custom field nope"));
    env_free(e);
}
END_TEST

/* Ids as ERecruit sends them: integers (written as digits, whole within
 * 2^53 only) or non-empty strings. */
START_TEST(test_id_values)
{
    struct {
        const char *json;
        er_id_rc rc;
        const char *id;
    } cases[] = {
        {"0", ER_ID_OK, "0"},
        {"7", ER_ID_OK, "7"},
        {"-0", ER_ID_OK, "0"},
        {"-42", ER_ID_OK, "-42"},
        {"1000000", ER_ID_OK, "1000000"},
        {"9007199254740992", ER_ID_OK, "9007199254740992"},
        {"-9007199254740992", ER_ID_OK, "-9007199254740992"},
        {"9007199254740994", ER_ID_BAD, ""},
        {"1.5", ER_ID_BAD, ""},
        {"1e300", ER_ID_BAD, ""},
        {"\"P-9\"", ER_ID_OK, "P-9"},
        {"\"\"", ER_ID_BAD, ""},
        {"null", ER_ID_ABSENT, ""},
        {"true", ER_ID_BAD, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *v = cJSON_Parse(cases[i].json);
        ck_assert_ptr_nonnull(v);
        char out[ER_ID_MAX];
        ck_assert_msg(er_id_value(v, out) == cases[i].rc, "%s", cases[i].json);
        ck_assert_str_eq(out, cases[i].id);
        cJSON_Delete(v);
    }
}
END_TEST

static Suite *erecruit_suite(void)
{
    Suite *s = suite_create("erecruit_map");
    TCase *tc = tcase_create("plugin");
    tcase_add_test(tc, test_descriptor_fills_the_seed_tables);
    tcase_add_test(tc, test_open_defaults_and_bad_settings);
    tcase_add_test(tc, test_map_position);
    tcase_add_test(tc, test_map_submission);
    tcase_add_test(tc, test_map_contact);
    tcase_add_test(tc, test_note_html);
    tcase_add_test(tc, test_error_mapping);
    tcase_add_test(tc, test_401_invalidates_and_retries_once);
    tcase_add_test(tc, test_malformed_and_unavailable);
    tcase_add_test(tc, test_missing_and_bad_fields);
    tcase_add_test(tc, test_stream_jobs);
    tcase_add_test(tc, test_stream_raw_as_sent);
    tcase_add_test(tc, test_stream_applications_and_candidates);
    tcase_add_test(tc, test_move_and_reject);
    tcase_add_test(tc, test_bulk_reject_per_item);
    tcase_add_test(tc, test_create_and_lists);
    tcase_add_test(tc, test_jobs);
    tcase_add_test(tc, test_candidates);
    tcase_add_test(tc, test_notes);
    tcase_add_test(tc, test_screened_note);
    tcase_add_test(tc, test_attachments);
    tcase_add_test(tc, test_custom_fields);
    tcase_add_test(tc, test_id_values);
    suite_add_tcase(s, tc);
    return s;
}


int main(void)
{
    SRunner *sr = srunner_create(erecruit_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
