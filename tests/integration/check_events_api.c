/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Events and writes the product can trust, end to end against the ERecruit
 * simulator: signed webhooks delivered exactly once in order to a receiver
 * that fails 5 times first, the event log replaying the same events from
 * any cursor, idempotency keys, a rate-limited bulk reject of 1,000
 * applications, remote deletions, stage history, and the OpenAPI document
 * against the routes the server registers.
 */
#include <check.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "rest.h"
#include "sync.h"
#include "tracking.h"
#include "events.h"
#include "sim/erecruit.h"
#include "sim/sim.h"
#include "support/harness.h"
#include "bulk.h"
#include "eventlog.h"
#include "idempotency.h"
#include "webhooks.h"

#define KEY_ACME "ahk_acme_events_0123456789"
#define RATE 200
#define MAX_EVENTS 4096

typedef struct receiver {
    pthread_mutex_t mu;
    int calls;
    int fail_first;
    char secret[96];
    bool bad_signature;
    int duplicates;
    long long ids[MAX_EVENTS]; /* first-seen order */
    int n;
    /* Claims: at the takeover_at-th good call, another instance ("other")
     * takes the endpoint's claim over from this one while it sends. */
    ah_core *core;
    int64_t eid;
    int takeover_at;
    int good;
    int64_t other_token; /* > 0 once taken over */
} receiver;

typedef struct fixture {
    char *dir;
    char *ini;
    ah_core *core;
    ah_sim *sim;
    ah_erecruit_sim *er;
    ah_sim *hook_sim;
    receiver rcv;
    int64_t tenant_id;
    int64_t cid;
    char base[64];
} fixture;

/* ---- the webhook receiver ------------------------------------------------- */

static bool verify(const char *secret, const char *id, const char *ts, const char *body,
                   size_t len, const char *sig)
{
    const char *b64 = secret + 6; /* after "whsec_" */
    unsigned char key[64];
    int klen = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)strlen(b64));
    if (klen < 0)
        return false;
    size_t pad = strlen(b64) > 0 && b64[strlen(b64) - 1] == '=' ? 1 : 0;
    pad += strlen(b64) > 1 && b64[strlen(b64) - 2] == '=' ? 1 : 0;
    klen -= (int)pad;
    char *msg = NULL;
    int mlen = asprintf(&msg, "%s.%s.%.*s", id, ts, (int)len, body);
    if (mlen < 0)
        return false;
    unsigned char mac[32];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), key, klen, (unsigned char *)msg, (size_t)mlen, mac, &maclen);
    free(msg);
    unsigned char enc[64];
    EVP_EncodeBlock(enc, mac, (int)maclen);
    char want[80];
    snprintf(want, sizeof want, "v1,%s", enc);
    return strcmp(want, sig) == 0;
}

static void on_hook(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    receiver *r = arg;
    pthread_mutex_lock(&r->mu);
    r->calls++;
    if (r->calls <= r->fail_first) {
        pthread_mutex_unlock(&r->mu);
        resp->status = 500;
        resp->body = strdup("{\"error\":\"down\"}");
        return;
    }
    const char *id = ah_sim_header(req, "webhook-id");
    const char *ts = ah_sim_header(req, "webhook-timestamp");
    const char *sig = ah_sim_header(req, "webhook-signature");
    if (id == NULL || ts == NULL || sig == NULL ||
        !verify(r->secret, id, ts, req->body, req->body_len, sig)) {
        r->bad_signature = true;
    } else {
        if (r->takeover_at > 0 && ++r->good == r->takeover_at) {
            char name[64];
            snprintf(name, sizeof name, "webhook:%lld", (long long)r->eid);
            ah_store *st = r->core->store;
            ck_assert_int_eq(st->ops->lease_take_over(st, name, r->core->instance, "other",
                                                      600000, &r->other_token),
                             AH_STORE_OK);
        }
        long long n = strtoll(id + 4, NULL, 10);
        bool seen = false;
        for (int i = 0; i < r->n && !seen; i++)
            seen = r->ids[i] == n;
        if (seen)
            r->duplicates++;
        else if (r->n < MAX_EVENTS)
            r->ids[r->n++] = n;
    }
    pthread_mutex_unlock(&r->mu);
    resp->status = 200;
    resp->body = strdup("{}");
}

/* ---- setup ------------------------------------------------------------------ */

/* An erecruit connection of tenant acme named `name`, `per_page` records a
 * streamed page. */
static int64_t add_conn_named(fixture *f, const char *name, const char *per_page)
{
    ah_generation *gen = ah_registry_acquire(f->core->registry, "erecruit");
    ck_assert_ptr_nonnull(gen);
    cJSON *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "base_url", ah_sim_url(f->sim));
    cJSON_AddStringToObject(in, "client_id", "atshub");
    cJSON_AddStringToObject(in, "client_secret", "s3cret");
    cJSON_AddStringToObject(in, "per_page", per_page);
    /* The simulated tenant's limit (RATE), known to its operator: the plugin
     * declares none (ERecruit documents none), the connection's setting
     * paces it. */
    char rate[16];
    snprintf(rate, sizeof rate, "%d", RATE);
    cJSON_AddStringToObject(in, "rate_limit_rps", rate);
    char *text = NULL, err[512];
    ck_assert_msg(ah_settings_build(f->core, gen->desc->settings, "erecruit", NULL, in, true,
                                    NULL, &text, err, sizeof err) == 0, "%s", err);
    int64_t cid;
    ck_assert_int_eq(f->core->store->ops->connection_add(f->core->store, f->tenant_id,
                                                         "erecruit", name, text, &cid), 0);
    free(text);
    cJSON_Delete(in);
    ah_generation_release(gen);
    ck_assert_int_eq(ah_conns_reload(f->core), 0);
    return cid;
}

static int64_t add_conn(fixture *f)
{
    return add_conn_named(f, "main", "500");
}

/* allow: [webhooks] allow_networks, or NULL for none (the default). */
static void setup_allow(fixture *f, size_t submissions, const char *allow)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->rcv.mu, NULL);
    f->dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(f->dir);
    char extra[1024];
    snprintf(extra, sizeof extra,
             "erecruit = %s/erecruit.so\n[webhooks]\nbackoff_ms = 0\nmax_failures = 20\n"
             "timeout_ms = 2000\n%s%s%s",
             ah_t_env("AH_PLUGIN_DIR"), allow != NULL ? "allow_networks = " : "",
             allow != NULL ? allow : "", allow != NULL ? "\n" : "");
    f->ini = ah_t_write_ini(f->dir, extra);
    ck_assert_ptr_nonnull(f->ini);
    ah_sim_opts so = {0};
    f->sim = ah_sim_new(&so);
    ck_assert_ptr_nonnull(f->sim);
    ah_erecruit_opts eo = {.seed = 7, .positions = 5, .contacts = 20,
                           .submissions = submissions, .rate_limit_rps = RATE};
    f->er = ah_erecruit_sim_attach(f->sim, &eo);
    ck_assert_ptr_nonnull(f->er);
    ck_assert_int_eq(ah_sim_start(f->sim), 0);
    f->hook_sim = ah_sim_new(&so);
    ck_assert_ptr_nonnull(f->hook_sim);
    f->rcv.fail_first = 5;
    ck_assert_int_eq(ah_sim_route(f->hook_sim, "POST", "/hook", on_hook, &f->rcv), 0);
    ck_assert_int_eq(ah_sim_start(f->hook_sim), 0);

    ah_config cfg;
    char err[1024];
    ck_assert_msg(ah_config_load(f->ini, &cfg, err, sizeof err) == 0, "%s", err);
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    f->core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ck_assert_msg(f->core != NULL, "%s", err);
    ck_assert_msg(ah_daemon_start(f->core, err, sizeof err) == 0, "%s", err);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u",
             (unsigned)ah_httpd_port(f->core->httpd));
    char hash[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex(KEY_ACME, strlen(KEY_ACME), hash);
    ck_assert_int_eq(f->core->store->ops->tenant_add(f->core->store, "acme", hash,
                                                     &f->tenant_id), 0);
    f->cid = add_conn(f);
}

/* The receivers run on loopback: allowed here, refused by default. */
static void setup(fixture *f, size_t submissions)
{
    setup_allow(f, submissions, "127.0.0.0/8");
}

static void teardown(fixture *f)
{
    ah_daemon_close(f->core);
    ah_sim_stop(f->sim);
    ah_sim_stop(f->hook_sim);
    ah_erecruit_sim_free(f->er);
    ah_t_rmrf(f->dir);
    free(f->dir);
    free(f->ini);
    pthread_mutex_destroy(&f->rcv.mu);
}

/* One REST request as acme; extra: one more header or NULL. */
static long req(fixture *f, const char *method, const char *path, const char *extra,
                const char *body, cJSON **out)
{
    char url[2048];
    const char *h[5];
    int n = 0;
    snprintf(url, sizeof url, "%s%s", f->base, path);
    h[n++] = "Authorization: Bearer " KEY_ACME;
    if (extra != NULL)
        h[n++] = extra;
    if (body != NULL)
        h[n++] = "Content-Type: application/json";
    h[n] = NULL;
    char *text = NULL;
    long st = ah_t_http(method, url, h, body, &text);
    if (out != NULL) {
        *out = text != NULL ? cJSON_Parse(text) : NULL;
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
    for (char *tok = strtok(buf, "."); tok != NULL && cur != NULL; tok = strtok(NULL, ".")) {
        if (cJSON_IsArray(cur))
            cur = cJSON_GetArrayItem(cur, atoi(tok));
        else
            cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    }
    return cur;
}

static void sync_all(fixture *f)
{
    char err[1024];
    ck_assert_msg(ah_sync_run(f->core, "acme", "main", NULL, NULL, NULL, NULL, err,
                              sizeof err) == AH_SYNC_OK, "%s", err);
}

static char *rec_id(fixture *f, const char *type, long remote)
{
    char rid[32];
    snprintf(rid, sizeof rid, "%ld", remote);
    ah_record_row row;
    ck_assert_int_eq(f->core->store->ops->record_get(f->core->store, f->cid, type, rid, &row), 0);
    char *id = strdup(row.id);
    ah_record_row_free(&row);
    return id;
}

/* Every event of the log after `after` (paging by `page`), as cursors. */
static int replay(fixture *f, long long after, int page, long long *out, int max)
{
    int n = 0;
    for (;;) {
        char path[256];
        snprintf(path, sizeof path, "/v1/events?after=%lld&limit=%d", after, page);
        cJSON *o = NULL;
        ck_assert_int_eq(req(f, "GET", path, NULL, NULL, &o), 200);
        const cJSON *e;
        int got = 0;
        cJSON_ArrayForEach(e, jget(o, "data")) {
            ck_assert_int_lt(n, max);
            out[n++] = (long long)jget(e, "cursor")->valuedouble;
            got++;
        }
        const cJSON *nc = jget(o, "next_cursor");
        ck_assert(cJSON_IsString(nc));
        after = strtoll(nc->valuestring, NULL, 10);
        bool more = cJSON_IsTrue(jget(o, "has_more"));
        cJSON_Delete(o);
        if (!more || got == 0)
            break;
    }
    return n;
}

/* GET path (an endpoint's delivery log) into *o, once it lists `want`
 * deliveries (asserted, within 10 s): the receiver counts an event when it
 * arrives, the daemon stores its outcome after the answer, so the last may
 * still be on its way (seen under ThreadSanitizer: 54 of 55). */
static void deliveries(fixture *f, const char *path, int want, cJSON **o)
{
    for (int i = 0;; i++) {
        ck_assert_int_eq(req(f, "GET", path, NULL, NULL, o), 200);
        if (cJSON_GetArraySize(jget(*o, "data")) >= want || i == 200)
            break;
        cJSON_Delete(*o);
        usleep(50 * 1000);
    }
    ck_assert_int_eq(cJSON_GetArraySize(jget(*o, "data")), want);
}

/* ---- webhooks and the event log -------------------------------------------------- */

START_TEST(test_webhooks_and_replay)
{
    fixture f;
    setup(&f, 30);
    char body[512];
    snprintf(body, sizeof body, "{\"url\":\"%s/hook\"}", ah_sim_url(f.hook_sim));
    cJSON *o = NULL;
    ck_assert_int_eq(req(&f, "POST", "/v1/webhooks", NULL, body, &o), 201);
    const cJSON *sec = jget(o, "data.secret");
    ck_assert(cJSON_IsString(sec));
    ck_assert(strncmp(sec->valuestring, "whsec_", 6) == 0);
    pthread_mutex_lock(&f.rcv.mu);
    snprintf(f.rcv.secret, sizeof f.rcv.secret, "%s", sec->valuestring);
    pthread_mutex_unlock(&f.rcv.mu);
    int64_t eid = (int64_t)jget(o, "data.id")->valuedouble;
    cJSON_Delete(o);

    sync_all(&f); /* 5 jobs, 20 candidates, 30 applications: created events */
    long long *log_ids = calloc(MAX_EVENTS, sizeof *log_ids);
    ck_assert_ptr_nonnull(log_ids);
    int nlog = replay(&f, 0, 1000, log_ids, MAX_EVENTS);
    ck_assert_int_ge(nlog, 55);
    for (int i = 1; i < nlog; i++)
        ck_assert_int_gt(log_ids[i], log_ids[i - 1]);

    /* The receiver fails 5 times, then gets everything. */
    int got = 0;
    for (int i = 0; i < 600 && got < nlog; i++) {
        usleep(100 * 1000);
        pthread_mutex_lock(&f.rcv.mu);
        got = f.rcv.n;
        pthread_mutex_unlock(&f.rcv.mu);
    }
    pthread_mutex_lock(&f.rcv.mu);
    ck_assert_int_eq(f.rcv.n, nlog);
    ck_assert_int_ge(f.rcv.calls, nlog + 5);
    ck_assert(!f.rcv.bad_signature);
    ck_assert_int_eq(f.rcv.duplicates, 0);
    for (int i = 0; i < nlog; i++)
        ck_assert_int_eq(f.rcv.ids[i], log_ids[i]);
    pthread_mutex_unlock(&f.rcv.mu);

    /* Replays from several cursors and page sizes match the webhook sequence. */
    long long *part = calloc(MAX_EVENTS, sizeof *part);
    ck_assert_ptr_nonnull(part);
    const int starts[] = {0, 1, 17, nlog - 1};
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
        long long after = starts[s] == 0 ? 0 : log_ids[starts[s] - 1];
        int n = replay(&f, after, 7, part, MAX_EVENTS);
        ck_assert_int_eq(n, nlog - starts[s]);
        for (int i = 0; i < n; i++)
            ck_assert_int_eq(part[i], log_ids[starts[s] + i]);
    }
    /* types filter: exact and prefix patterns. */
    ck_assert_int_eq(req(&f, "GET", "/v1/events?types=event.job.*&limit=1000", NULL, NULL, &o),
                     200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 5);
    ck_assert_str_eq(jget(o, "data.0.type")->valuestring, "event.job.created");
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "GET", "/v1/events?after=x", NULL, NULL, &o), 400);
    cJSON_Delete(o);

    /* The delivery log and disabling / enabling. */
    char path[128];
    snprintf(path, sizeof path, "/v1/webhooks/%lld/deliveries?limit=1000", (long long)eid);
    deliveries(&f, path, nlog, &o);
    const cJSON *first = cJSON_GetArrayItem(jget(o, "data"), nlog - 1);
    ck_assert_int_eq(jget(first, "attempts")->valueint, 6);
    ck_assert_str_eq(jget(first, "status")->valuestring, "delivered");
    cJSON_Delete(o);
    snprintf(path, sizeof path, "/v1/webhooks/%lld/disable", (long long)eid);
    ck_assert_int_eq(req(&f, "POST", path, NULL, "{}", &o), 200);
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "GET", "/v1/webhooks", NULL, NULL, &o), 200);
    ck_assert(cJSON_IsFalse(jget(o, "data.0.enabled")));
    ck_assert_ptr_null(jget(o, "data.0.secret"));
    cJSON_Delete(o);
    free(part);
    free(log_ids);
    teardown(&f);
}
END_TEST

/* Claims (issue 14): an instance whose claim on an endpoint is taken over
 * while it sends stores nothing of that event (the fence), and sends
 * nothing more while the other instance holds it; once given back, the
 * event is sent again with the same webhook-id: at least once, one stable
 * id, and the endpoint's log holds each event once. */
START_TEST(test_webhook_claim_taken_over)
{
    fixture f;
    setup(&f, 30);
    char body[512];
    snprintf(body, sizeof body, "{\"url\":\"%s/hook\"}", ah_sim_url(f.hook_sim));
    cJSON *o = NULL;
    ck_assert_int_eq(req(&f, "POST", "/v1/webhooks", NULL, body, &o), 201);
    int64_t eid = (int64_t)jget(o, "data.id")->valuedouble;
    pthread_mutex_lock(&f.rcv.mu);
    snprintf(f.rcv.secret, sizeof f.rcv.secret, "%s", jget(o, "data.secret")->valuestring);
    f.rcv.fail_first = 0;
    f.rcv.core = f.core;
    f.rcv.eid = eid;
    f.rcv.takeover_at = 10;
    pthread_mutex_unlock(&f.rcv.mu);
    cJSON_Delete(o);
    ck_assert_str_ne(f.core->instance, "");

    sync_all(&f);
    long long *log_ids = calloc(MAX_EVENTS, sizeof *log_ids);
    ck_assert_ptr_nonnull(log_ids);
    int nlog = replay(&f, 0, 1000, log_ids, MAX_EVENTS);
    ck_assert_int_ge(nlog, 55);
    int64_t other = 0;
    for (int i = 0; i < 600 && other == 0; i++) {
        usleep(50 * 1000);
        pthread_mutex_lock(&f.rcv.mu);
        other = f.rcv.other_token;
        pthread_mutex_unlock(&f.rcv.mu);
    }
    ck_assert_int_gt(other, 0);
    /* The other instance gives the endpoint back; this one resumes. */
    char name[64];
    snprintf(name, sizeof name, "webhook:%lld", (long long)eid);
    ck_assert_int_eq(f.core->store->ops->lease_release(f.core->store, name, other),
                     AH_STORE_OK);
    int got = 0;
    for (int i = 0; i < 600 && got < nlog; i++) {
        usleep(100 * 1000);
        pthread_mutex_lock(&f.rcv.mu);
        got = f.rcv.n;
        pthread_mutex_unlock(&f.rcv.mu);
    }
    pthread_mutex_lock(&f.rcv.mu);
    ck_assert_int_eq(f.rcv.n, nlog);
    ck_assert(!f.rcv.bad_signature);
    /* The event sent while the claim was taken over, sent again. */
    ck_assert_int_eq(f.rcv.duplicates, 1);
    for (int i = 0; i < nlog; i++)
        ck_assert_int_eq(f.rcv.ids[i], log_ids[i]);
    pthread_mutex_unlock(&f.rcv.mu);
    /* Its first outcome was never stored: one line per event, each
     * delivered at its (single) stored attempt. */
    char path[128];
    snprintf(path, sizeof path, "/v1/webhooks/%lld/deliveries?limit=1000", (long long)eid);
    deliveries(&f, path, nlog, &o);
    const cJSON *d;
    cJSON_ArrayForEach(d, jget(o, "data")) {
        ck_assert_int_eq(jget(d, "attempts")->valueint, 1);
        ck_assert_str_eq(jget(d, "status")->valuestring, "delivered");
    }
    cJSON_Delete(o);
    free(log_ids);
    teardown(&f);
}
END_TEST

/* Security review, finding 2: a tenant could point a webhook at loopback,
 * the private network or the cloud metadata service. Every spelling is
 * refused when the webhook is registered (no traffic is sent: the hosts are
 * numeric or resolve from /etc/hosts); deliveries check the address again
 * at each connect (check_httpc address_guard_at_connect). */
START_TEST(test_webhook_destinations_refused)
{
    fixture f;
    setup_allow(&f, 1, NULL);
    static const char *const urls[] = {
        "http://127.0.0.1:8080/x", "http://0x7f000001/x", "http://2130706433/x",
        "http://0177.0.0.1/x", "http://127.1/x", "http://[::1]:8080/x", "http://localhost/x",
        "https://10.1.2.3/x", "http://172.16.0.1/x", "http://192.168.0.10/x",
        "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x",
        "http://[::ffff:127.0.0.1]/x", "http://[::ffff:10.0.0.1]/x", "http://100.64.0.1/x",
        "http://0.0.0.0/x", "http://[fd00:ec2::254]/x",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"url\":\"%s\"}", urls[i]);
        cJSON *o = NULL;
        long st = req(&f, "POST", "/v1/webhooks", NULL, body, &o);
        ck_assert_msg(st == 400, "%s: %ld", urls[i], st);
        ck_assert_str_eq(jget(o, "error.code")->valuestring, "invalid_request");
        ck_assert_msg(strstr(jget(o, "error.message")->valuestring, "not a public address") != NULL,
                      "%s: %s", urls[i], jget(o, "error.message")->valuestring);
        cJSON_Delete(o);
    }
    cJSON *o = NULL;
    ck_assert_int_eq(req(&f, "GET", "/v1/webhooks", NULL, NULL, &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 0);
    cJSON_Delete(o);
    teardown(&f);
}
END_TEST

/* A store that fails when an endpoint is added is the host's fault (500
 * internal_error), not the request's (it was 400 invalid_request). */
START_TEST(test_webhook_store_failure_is_500)
{
    if (ah_t_pg())
        return; /* the failure is made with an SQLite trigger */
    fixture f;
    setup(&f, 1);
    cJSON *o = NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/atshub.db", f.dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    ck_assert_int_eq(sqlite3_exec(db,
                                  "CREATE TRIGGER no_hooks BEFORE INSERT ON webhook_endpoints "
                                  "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    long st = req(&f, "POST", "/v1/webhooks", NULL,
                  "{\"url\":\"http://127.0.0.1:1/x\"}", &o);
    ck_assert_msg(st == 500, "%ld", st);
    ck_assert_str_eq(jget(o, "error.code")->valuestring, "internal_error");
    cJSON_Delete(o);
    teardown(&f);
}
END_TEST

/* A tenant's endpoints are bounded (each is a delivery pass of its own
 * and a row of every listing): the 101st is refused 400 invalid_request,
 * and once one is deleted another may be added. (Before, a tenant could
 * add any number.) */
START_TEST(test_webhook_endpoints_bounded)
{
    fixture f;
    setup(&f, 1);
    char secret[96], err[256];
    int64_t first = 0, id = 0;
    for (int i = 0; i < AH_WEBHOOK_MAX_PER_TENANT; i++) {
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:1/h%d", i);
        ck_assert_msg(ah_webhook_add(f.core, f.tenant_id, url, NULL, &id, secret, sizeof secret,
                                     err, sizeof err) == 0,
                      "%d: %s", i, err);
        if (i == 0)
            first = id;
    }
    cJSON *o = NULL;
    ck_assert_int_eq(req(&f, "POST", "/v1/webhooks", NULL, "{\"url\":\"http://127.0.0.1:1/x\"}",
                         &o),
                     400);
    ck_assert_str_eq(jget(o, "error.code")->valuestring, "invalid_request");
    ck_assert_ptr_nonnull(strstr(jget(o, "error.message")->valuestring, "at most 100"));
    cJSON_Delete(o);
    ck_assert_int_eq(ah_webhook_delete(f.core, f.tenant_id, first), 0);
    ck_assert_int_eq(req(&f, "POST", "/v1/webhooks", NULL, "{\"url\":\"http://127.0.0.1:1/x\"}",
                         &o),
                     201);
    cJSON_Delete(o);
    teardown(&f);
}
END_TEST

/* The credentials an endpoint's URL carries (user information, a token in
 * its path) reach neither the operators' log nor the delivery log: both
 * say why a delivery failed without the URL. (Before, both held
 * "POST http://alice:Sup3rS3cretPw@...".) */
START_TEST(test_webhook_disabled_after_failures)
{
    fixture f;
    setup(&f, 3);
    f.rcv.fail_first = 1000000;
    int64_t id = 0;
    char secret[96], err[256];
    /* Two failures disable it in this test ([webhooks] max_failures). */
    f.core->cfg.webhook_max_failures = 2;
    ck_assert_int_eq(ah_webhook_add(f.core, f.tenant_id,
                                    "http://alice:Sup3rS3cretPw@127.0.0.1:1/x/HookT0ken",
                                    "event.job.*", &id, secret, sizeof secret, err, sizeof err),
                     0);
    /* The daemon's log (stderr) into a file while it fails. */
    FILE *logf = tmpfile();
    ck_assert_ptr_nonnull(logf);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(dup2(fileno(logf), STDERR_FILENO), 0);
    ck_assert_int_eq(ah_core_publish(f.core, f.tenant_id, "event.job.created", NULL), 0);
    bool disabled = false;
    for (int i = 0; i < 100 && !disabled; i++) {
        usleep(100 * 1000);
        cJSON *l = ah_webhook_list(f.core, f.tenant_id);
        disabled = cJSON_IsFalse(jget(l, "0.enabled"));
        cJSON_Delete(l);
    }
    fflush(stderr);
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    ck_assert(disabled);
    char logged[8192];
    rewind(logf);
    size_t ln = fread(logged, 1, sizeof logged - 1, logf);
    logged[ln] = '\0';
    fclose(logf);
    ck_assert_msg(strstr(logged, "disabled after 2 consecutive failures") != NULL, "%s", logged);
    ck_assert_msg(strstr(logged, "Sup3rS3cretPw") == NULL && strstr(logged, "HookT0ken") == NULL,
                  "%s", logged);
    cJSON *o = NULL;
    char path[128];
    snprintf(path, sizeof path, "/v1/webhooks/%lld/deliveries", (long long)id);
    ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &o), 200);
    const char *why = jget(o, "data.0.last_error")->valuestring;
    ck_assert_msg(why[0] != '\0' && strstr(why, "Sup3rS3cretPw") == NULL &&
                      strstr(why, "HookT0ken") == NULL && strstr(why, "127.0.0.1:1/") == NULL,
                  "%s", why);
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "GET", "/v1/events?types=event.webhook.disabled", NULL, NULL, &o),
                     200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 1);
    ck_assert_int_eq(jget(o, "data.0.data.endpoint_id")->valueint, (int)id);
    why = jget(o, "data.0.data.last_error")->valuestring;
    ck_assert_msg(strstr(why, "Sup3rS3cretPw") == NULL && strstr(why, "HookT0ken") == NULL,
                  "%s", why);
    cJSON_Delete(o);
    ck_assert_int_eq(ah_webhook_set_enabled(f.core, 0, id, true), 0);
    cJSON *l = ah_webhook_list(f.core, f.tenant_id);
    ck_assert(cJSON_IsTrue(jget(l, "0.enabled")));
    ck_assert_int_eq(jget(l, "0.failures")->valueint, 0);
    cJSON_Delete(l);
    teardown(&f);
}
END_TEST

/* An endpoint whose secret cannot be opened (sealed under another host
 * key) sends nothing; each pass is a failed attempt like any other: it
 * backs off, the delivery log says why (never a secret), and after
 * max_failures the endpoint is disabled with event.webhook.disabled. A
 * new secret (rotate-secret) and enable: the event arrives, signed. */
START_TEST(test_webhook_secret_unopenable)
{
    fixture f;
    setup(&f, 3);
    f.rcv.fail_first = 0;
    f.core->cfg.webhook_max_failures = 2;
    char body[512], path[128];
    snprintf(body, sizeof body, "{\"url\":\"%s/hook\",\"types\":[\"event.probe.*\"]}",
             ah_sim_url(f.hook_sim));
    cJSON *o = NULL;
    ck_assert_int_eq(req(&f, "POST", "/v1/webhooks", NULL, body, &o), 201);
    int64_t eid = (int64_t)jget(o, "data.id")->valuedouble;
    cJSON_Delete(o);
    unsigned char other_key[AH_KEY_LEN];
    memset(other_key, 7, sizeof other_key);
    const char *plain = "whsec_c2VhbGVkIHVuZGVyIGFub3RoZXIga2V5IQ==";
    char *sealed = ah_seal(other_key, plain, "webhook_endpoint");
    ck_assert_ptr_nonnull(sealed);
    ck_assert_int_eq(f.core->store->ops->webhook_rotate(f.core->store, f.tenant_id, eid, sealed,
                                                        NULL), 0);
    free(sealed);
    ck_assert_int_eq(ah_core_publish(f.core, f.tenant_id, "event.probe.hit", NULL), 0);
    bool disabled = false;
    for (int i = 0; i < 100 && !disabled; i++) {
        usleep(100 * 1000);
        cJSON *l = ah_webhook_list(f.core, f.tenant_id);
        disabled = cJSON_IsFalse(jget(l, "0.enabled"));
        cJSON_Delete(l);
    }
    ck_assert(disabled);
    pthread_mutex_lock(&f.rcv.mu);
    ck_assert_int_eq(f.rcv.calls, 0);
    pthread_mutex_unlock(&f.rcv.mu);
    ck_assert_int_eq(req(&f, "GET", "/v1/events?types=event.webhook.disabled", NULL, NULL, &o),
                     200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 1);
    ck_assert_int_eq(jget(o, "data.0.data.failures")->valueint, 2);
    ck_assert_ptr_nonnull(strstr(jget(o, "data.0.data.last_error")->valuestring, "secret"));
    cJSON_Delete(o);
    snprintf(path, sizeof path, "/v1/webhooks/%lld/deliveries", (long long)eid);
    ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 1);
    ck_assert_str_eq(jget(o, "data.0.status")->valuestring, "failed");
    ck_assert_int_eq(jget(o, "data.0.attempts")->valueint, 2);
    const char *why = jget(o, "data.0.last_error")->valuestring;
    ck_assert_ptr_nonnull(strstr(why, "cannot open the endpoint's signing secret"));
    ck_assert_ptr_null(strstr(why, "whsec_"));
    cJSON_Delete(o);

    snprintf(path, sizeof path, "/v1/webhooks/%lld/rotate-secret", (long long)eid);
    ck_assert_int_eq(req(&f, "POST", path, NULL, "{\"overlap_seconds\":0}", &o), 200);
    pthread_mutex_lock(&f.rcv.mu);
    snprintf(f.rcv.secret, sizeof f.rcv.secret, "%s", jget(o, "data.secret")->valuestring);
    pthread_mutex_unlock(&f.rcv.mu);
    cJSON_Delete(o);
    snprintf(path, sizeof path, "/v1/webhooks/%lld/enable", (long long)eid);
    ck_assert_int_eq(req(&f, "POST", path, NULL, "{}", &o), 200);
    cJSON_Delete(o);
    int got = 0;
    for (int i = 0; i < 100 && got < 1; i++) {
        usleep(100 * 1000);
        pthread_mutex_lock(&f.rcv.mu);
        got = f.rcv.n;
        pthread_mutex_unlock(&f.rcv.mu);
    }
    pthread_mutex_lock(&f.rcv.mu);
    ck_assert_int_eq(f.rcv.n, 1);
    ck_assert(!f.rcv.bad_signature);
    pthread_mutex_unlock(&f.rcv.mu);
    teardown(&f);
}
END_TEST

/* Retention and webhook endpoints: an enabled endpoint (failing, not yet
 * disabled) keeps the events it has not received from pruning; a disabled
 * one keeps none, and the events of its tenant that pass the retention
 * are skipped, reported as event.webhook.events_pruned (how many its
 * types matched). Enabled again, it resumes after them: the next event is
 * the first it gets. */
static int count_events(fixture *f, const char *types, cJSON **out)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/events?types=%s&limit=100", types);
    cJSON *o = NULL;
    ck_assert_int_eq(req(f, "GET", path, NULL, NULL, &o), 200);
    int n = cJSON_GetArraySize(jget(o, "data"));
    if (out != NULL)
        *out = o;
    else
        cJSON_Delete(o);
    return n;
}

static int64_t add_hook(fixture *f, char *secret, size_t cap)
{
    char body[512];
    snprintf(body, sizeof body, "{\"url\":\"%s/hook\",\"types\":[\"event.probe.*\"]}",
             ah_sim_url(f->hook_sim));
    cJSON *o = NULL;
    ck_assert_int_eq(req(f, "POST", "/v1/webhooks", NULL, body, &o), 201);
    int64_t id = (int64_t)jget(o, "data.id")->valuedouble;
    snprintf(secret, cap, "%s", jget(o, "data.secret")->valuestring);
    cJSON_Delete(o);
    return id;
}

static void hook_switch(fixture *f, int64_t id, const char *what)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/webhooks/%lld/%s", (long long)id, what);
    cJSON *o = NULL;
    ck_assert_int_eq(req(f, "POST", path, NULL, "{}", &o), 200);
    cJSON_Delete(o);
}

START_TEST(test_retention_and_webhook_cursors)
{
    fixture f;
    setup(&f, 3);
    f.rcv.fail_first = 1000000; /* every POST fails */
    f.core->cfg.webhook_max_failures = 1000000;
    char s1[96], s2[96];
    int64_t on = add_hook(&f, s1, sizeof s1), off = add_hook(&f, s2, sizeof s2);
    hook_switch(&f, off, "disable");
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ah_core_publish(f.core, f.tenant_id, "event.probe.hit", NULL), 0);
    ck_assert_int_eq(ah_core_publish(f.core, f.tenant_id, "event.other.thing", NULL), 0);
    usleep(5000); /* the cutoff below is after every event's time */
    int keep = f.core->cfg.events_retention_days;
    f.core->cfg.events_retention_days = 0; /* everything so far is past retention */
    ah_daemon_prune(f.core);
    f.core->cfg.events_retention_days = keep;

    /* Kept for the enabled endpoint; the disabled one skipped them, said. */
    ck_assert_int_eq(count_events(&f, "event.probe.*", NULL), 3);
    cJSON *o = NULL;
    ck_assert_int_eq(count_events(&f, "event.webhook.events_pruned", &o), 1);
    ck_assert_int_eq((int64_t)jget(o, "data.0.data.endpoint_id")->valuedouble, off);
    ck_assert_int_eq(jget(o, "data.0.data.count")->valueint, 3);
    cJSON_Delete(o);

    /* Disabled too: nothing keeps them any more; its skip is reported. */
    hook_switch(&f, on, "disable");
    usleep(5000);
    f.core->cfg.events_retention_days = 0;
    ah_daemon_prune(f.core);
    f.core->cfg.events_retention_days = keep;
    ck_assert_int_eq(count_events(&f, "event.probe.*", NULL), 0);
    ck_assert_int_eq(count_events(&f, "event.webhook.events_pruned", &o), 1);
    ck_assert_int_eq((int64_t)jget(o, "data.0.data.endpoint_id")->valuedouble, on);
    ck_assert_int_eq(jget(o, "data.0.data.count")->valueint, 3);
    cJSON_Delete(o);

    /* Enabled again, the second resumes after what it skipped. */
    pthread_mutex_lock(&f.rcv.mu);
    f.rcv.fail_first = 0;
    f.rcv.calls = 0;
    snprintf(f.rcv.secret, sizeof f.rcv.secret, "%s", s2);
    pthread_mutex_unlock(&f.rcv.mu);
    hook_switch(&f, off, "enable");
    int64_t next = 0;
    ck_assert_int_eq(f.core->store->ops->outbox_add(f.core->store, f.tenant_id,
                                                    "event.probe.next", "{}", &next), 0);
    int got = 0;
    for (int i = 0; i < 100 && got < 1; i++) {
        usleep(100 * 1000);
        pthread_mutex_lock(&f.rcv.mu);
        got = f.rcv.n;
        pthread_mutex_unlock(&f.rcv.mu);
    }
    pthread_mutex_lock(&f.rcv.mu);
    ck_assert_int_eq(f.rcv.n, 1);
    ck_assert_int_eq(f.rcv.ids[0], next);
    ck_assert(!f.rcv.bad_signature);
    pthread_mutex_unlock(&f.rcv.mu);
    teardown(&f);
}
END_TEST

/* ---- idempotency --------------------------------------------------------------- */

START_TEST(test_idempotency)
{
    fixture f;
    setup(&f, 5);
    sync_all(&f);
    long *cids = NULL, *jids = NULL;
    ck_assert_uint_gt(ah_erecruit_sim_ids(f.er, "contact", &cids), 0);
    ck_assert_uint_gt(ah_erecruit_sim_ids(f.er, "position", &jids), 0);
    char *cand = rec_id(&f, "candidate", cids[0]), *job = rec_id(&f, "job", jids[0]);
    free(cids);
    free(jids);
    char body[256], body2[256];
    snprintf(body, sizeof body, "{\"candidate_id\":\"%s\",\"job_id\":\"%s\"}", cand, job);
    snprintf(body2, sizeof body2, "{\"candidate_id\":\"%s\",\"job_id\":\"%s\",\"stage_id\":1}",
             cand, job);
    unsigned long before = ah_erecruit_sim_requests(f.er, "POST", "/api/v2/submissions");
    char *first = NULL;
    for (int i = 0; i < 3; i++) {
        cJSON *o = NULL;
        long st = req(&f, "POST", "/v1/applications", "Idempotency-Key: create-1", body, &o);
        ck_assert_msg(st == 200 || st == 201, "status %ld", st);
        char *t = cJSON_PrintUnformatted(o);
        if (first == NULL)
            first = t;
        else {
            ck_assert_str_eq(t, first);
            free(t);
        }
        cJSON_Delete(o);
    }
    free(first);
    ck_assert_uint_eq(ah_erecruit_sim_requests(f.er, "POST", "/api/v2/submissions") - before, 1);
    cJSON *o = NULL;
    ck_assert_int_eq(req(&f, "POST", "/v1/applications", "Idempotency-Key: create-1", body2, &o),
                     422);
    ck_assert_str_eq(jget(o, "error.code")->valuestring, "idempotency_key_reused");
    cJSON_Delete(o);
    ck_assert_uint_eq(ah_erecruit_sim_requests(f.er, "POST", "/api/v2/submissions") - before, 1);
    /* Another key is another write. */
    ck_assert_int_lt(req(&f, "POST", "/v1/applications", "Idempotency-Key: create-2", body, &o),
                     300);
    cJSON_Delete(o);
    ck_assert_uint_eq(ah_erecruit_sim_requests(f.er, "POST", "/api/v2/submissions") - before, 2);
    free(cand);
    free(job);
    teardown(&f);
}
END_TEST

/* The idempotency rows as the store holds them (sqlite3 on the db file):
 * the count, and how many hold `needle` in their stored answer or hash. */
static int idem_rows(fixture *f, const char *needle, int *holding, int *sealed)
{
    *holding = *sealed = 0;
    if (ah_t_pg()) {
        char *url = ah_t_store_url(f->dir);
        ck_assert_ptr_nonnull(url);
        PGconn *c = PQconnectdb(url);
        free(url);
        ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
        PGresult *r = PQexec(c, "SELECT key, body_hash, response FROM idempotency");
        ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            for (int col = 0; col < 3; col++)
                if (!PQgetisnull(r, i, col) && strstr(PQgetvalue(r, i, col), needle) != NULL)
                    (*holding)++;
            if (!PQgetisnull(r, i, 2) && ah_is_sealed(PQgetvalue(r, i, 2)))
                (*sealed)++;
        }
        PQclear(r);
        PQfinish(c);
        return n;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/atshub.db", f->dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT key, body_hash, response FROM idempotency",
                                        -1, &q, NULL),
                     SQLITE_OK);
    int n = 0;
    *holding = *sealed = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        n++;
        for (int c = 0; c < 3; c++) {
            const char *v = (const char *)sqlite3_column_text(q, c);
            if (v != NULL && strstr(v, needle) != NULL)
                (*holding)++;
        }
        const char *resp = (const char *)sqlite3_column_text(q, 2);
        if (resp != NULL && ah_is_sealed(resp))
            (*sealed)++;
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

/* A replayed answer carries the Location header the first one had (a bulk
 * job's), besides Idempotent-Replayed: the answer is the same, headers
 * included. */
START_TEST(test_idempotent_replay_keeps_location)
{
    fixture f;
    setup(&f, 0);
    char url[2048];
    snprintf(url, sizeof url, "%s/v1/applications/bulk-reject", f.base);
    const char *h[] = {"Authorization: Bearer " KEY_ACME, "Idempotency-Key: bulk-loc-1",
                       "Content-Type: application/json", NULL};
    const char *body = "{\"application_ids\":[\"no-such-application\"],\"reason_id\":\"r1\"}";
    char *first = NULL, *head1 = NULL, *again = NULL, *head2 = NULL;
    ck_assert_int_eq(ah_t_http_head("POST", url, h, body, &first, &head1), 202);
    ck_assert_int_eq(ah_t_http_head("POST", url, h, body, &again, &head2), 202);
    ck_assert_str_eq(again, first);
    cJSON *o = cJSON_Parse(first);
    char want[160];
    snprintf(want, sizeof want, "Location: /v1/bulk/%s",
             cJSON_GetStringValue(jget(o, "data.id")));
    cJSON_Delete(o);
    ck_assert_msg(strcasestr(head1, want) != NULL, "%s", head1);
    ck_assert_msg(strcasestr(head2, "Idempotent-Replayed: true") != NULL, "%s", head2);
    ck_assert_msg(strcasestr(head2, want) != NULL, "replayed without %s: %s", want, head2);
    free(first);
    free(head1);
    free(again);
    free(head2);
    teardown(&f);
}
END_TEST

/* Issue 16, finding 6: POST /v1/webhooks with an Idempotency-Key stored its
 * answer, with the signing secret shown once, in clear. The answer is now
 * stored sealed with the host key; a retry with the key still gets the
 * same answer (the secret included: the client that lost the first answer
 * needs it), and the keys are pruned after 24 hours. */
START_TEST(test_idempotency_secret_sealed)
{
    fixture f;
    setup(&f, 0);
    char body[512];
    snprintf(body, sizeof body, "{\"url\":\"%s/hook\"}", ah_sim_url(f.hook_sim));
    cJSON *o = NULL;
    ck_assert_int_eq(req(&f, "POST", "/v1/webhooks", "Idempotency-Key: wh-1", body, &o), 201);
    const cJSON *sec = jget(o, "data.secret");
    ck_assert(cJSON_IsString(sec));
    char secret[256];
    snprintf(secret, sizeof secret, "%s", sec->valuestring);
    char *first = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);

    int holding = 0, sealed = 0;
    ck_assert_int_eq(idem_rows(&f, secret, &holding, &sealed), 1);
    ck_assert_int_eq(holding, 0);
    ck_assert_int_eq(sealed, 1);
    /* Nor anywhere else in the store, in clear (the endpoint's own copy is
     * sealed too). */
    {
        size_t len = 0;
        char *data = ah_t_store_dump(f.dir, &len);
        ck_assert_ptr_nonnull(data);
        ck_assert_msg(memmem(data, len, secret, strlen(secret)) == NULL, "secret in the store");
        free(data);
    }

    /* Replayed: the same answer, one endpoint. */
    ck_assert_int_eq(req(&f, "POST", "/v1/webhooks", "Idempotency-Key: wh-1", body, &o), 201);
    char *again = cJSON_PrintUnformatted(o);
    ck_assert_str_eq(again, first);
    free(again);
    cJSON_Delete(o);
    free(first);
    ck_assert_int_eq(req(&f, "GET", "/v1/webhooks", NULL, NULL, &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 1);
    cJSON_Delete(o);

    /* Pruning keeps keys younger than 24 hours... */
    ah_idem_prune(f.core);
    ck_assert_int_eq(idem_rows(&f, secret, &holding, &sealed), 1);
    /* ...and the store forgets those created before the cutoff. */
    char future[32];
    ah_iso_in(3600L * 1000, future);
    int64_t n = 0;
    ck_assert_int_eq(f.core->store->ops->idem_prune(f.core->store, future, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(idem_rows(&f, secret, &holding, &sealed), 0);
    teardown(&f);
}
END_TEST

/* Issue 16, finding 8: the fingerprint ignored the query string, so the
 * same key with another query replayed the first answer. */
START_TEST(test_idempotency_query_string)
{
    fixture f;
    setup(&f, 0);
    char body[512];
    snprintf(body, sizeof body, "{\"url\":\"%s/hook\"}", ah_sim_url(f.hook_sim));
    cJSON *o = NULL;
    ck_assert_int_eq(req(&f, "POST", "/v1/webhooks?mode=a", "Idempotency-Key: q-1", body, &o),
                     201);
    char *first = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    /* The same query: replayed. */
    ck_assert_int_eq(req(&f, "POST", "/v1/webhooks?mode=a", "Idempotency-Key: q-1", body, &o),
                     201);
    char *again = cJSON_PrintUnformatted(o);
    ck_assert_str_eq(again, first);
    free(again);
    free(first);
    cJSON_Delete(o);
    /* Another query, no query, or a name without a value: another request. */
    const char *others[] = {"/v1/webhooks?mode=b", "/v1/webhooks", "/v1/webhooks?mode",
                            "/v1/webhooks?mode=a&x=1"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        ck_assert_int_eq(req(&f, "POST", others[i], "Idempotency-Key: q-1", body, &o), 422);
        ck_assert_str_eq(jget(o, "error.code")->valuestring, "idempotency_key_reused");
        cJSON_Delete(o);
    }
    ck_assert_int_eq(req(&f, "GET", "/v1/webhooks", NULL, NULL, &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 1);
    cJSON_Delete(o);
    teardown(&f);
}
END_TEST

/* ---- deletions and stage history ------------------------------------------------- */

static bool list_has(fixture *f, const char *path, const char *id)
{
    cJSON *o = NULL;
    ck_assert_int_eq(req(f, "GET", path, NULL, NULL, &o), 200);
    bool found = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, jget(o, "data"))
        found = found || strcmp(jget(e, "id")->valuestring, id) == 0;
    cJSON_Delete(o);
    return found;
}

START_TEST(test_deletions_and_stage_history)
{
    fixture f;
    setup(&f, 10);
    sync_all(&f);
    long *ids = NULL;
    size_t n = ah_erecruit_sim_ids(f.er, "submission", &ids);
    ck_assert_uint_ge(n, 3);
    char *gone = rec_id(&f, "application", ids[0]);
    char *moved = rec_id(&f, "application", ids[1]);
    ck_assert_int_eq(ah_erecruit_sim_delete(f.er, "submission", ids[0]), 0);

    /* An incremental sync cannot tell; a full one flags it. */
    sync_all(&f);
    ck_assert(list_has(&f, "/v1/applications?limit=500", gone));
    ck_assert_int_eq(ah_sync_reset_cursor(f.core, f.cid, "applications"), 0);
    sync_all(&f);
    ck_assert(!list_has(&f, "/v1/applications?limit=500", gone));
    ck_assert(list_has(&f, "/v1/applications?limit=500&include_deleted=true", gone));
    ck_assert(list_has(&f, "/v1/applications?limit=500", moved));
    char path[256];
    cJSON *o = NULL;
    snprintf(path, sizeof path, "/v1/applications/%s", gone);
    ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &o), 404);
    cJSON_Delete(o);
    snprintf(path, sizeof path, "/v1/applications/%s?include_deleted=true", gone);
    ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &o), 200);
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "GET", "/v1/events?types=event.application.deleted", NULL, NULL,
                         &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 1);
    ck_assert_str_eq(jget(o, "data.0.data.id")->valuestring, gone);
    cJSON_Delete(o);

    /* A stage move seen by the next sync is recorded. */
    char before[32];
    ah_now_iso(before);
    char *cur = ah_erecruit_sim_get(f.er, "submission", ids[1]);
    cJSON *sub = cJSON_Parse(cur);
    free(cur);
    long stage = (long)jget(sub, "stage_id")->valuedouble;
    cJSON_Delete(sub);
    char put[128];
    snprintf(put, sizeof put, "{\"id\":%ld,\"stage_id\":%ld}", ids[1], stage == 2 ? 3L : 2L);
    ck_assert_int_eq(ah_erecruit_sim_put(f.er, "submission", put), ids[1]);
    sync_all(&f);
    snprintf(path, sizeof path, "/v1/applications?stage_changed_after=%s", before);
    ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 1);
    ck_assert_str_eq(jget(o, "data.0.id")->valuestring, moved);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data.0.stage_history")), 1);
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "GET", "/v1/applications?stage_changed_after=2999-01-01", NULL, NULL,
                         &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 0);
    cJSON_Delete(o);
    free(ids);
    free(gone);
    free(moved);
    teardown(&f);
}
END_TEST

/* A first sync keeps the stage history of a record it is given twice: an
 * application changed after its first page comes again at the end of the
 * list (the provider pages by update time), and its move is recorded. The
 * first sync looks up only the applications it committed itself
 * (tracking.h, ah_run_ids): none was stored when it began. */
typedef struct twice {
    fixture *f;
    int64_t cid;
    long moved; /* the remote id changed after the first page, 0 before */
} twice;

static void first_stored(void *arg, const ah_record_row *row)
{
    long *id = arg;
    if (*id == 0)
        *id = atol(row->remote_id);
}

static void move_after_first_page(void *arg, const char *type, const ah_sync_stats *st)
{
    twice *t = arg;
    if (strcmp(type, "applications") != 0 || st->done || st->pages != 1 || t->moved != 0)
        return;
    ah_record_query q = {.tenant_id = t->f->tenant_id, .connection_id = t->cid,
                         .type = "application", .limit = 10};
    long id = 0;
    ck_assert_int_eq(t->f->core->store->ops->record_query(t->f->core->store, &q, first_stored,
                                                          &id), 0);
    ck_assert_int_ne(id, 0);
    char *cur = ah_erecruit_sim_get(t->f->er, "submission", id);
    cJSON *sub = cJSON_Parse(cur);
    free(cur);
    long stage = (long)jget(sub, "stage_id")->valuedouble;
    cJSON_Delete(sub);
    char put[128];
    snprintf(put, sizeof put, "{\"id\":%ld,\"stage_id\":%ld}", id, stage == 2 ? 3L : 2L);
    ck_assert_int_eq(ah_erecruit_sim_put(t->f->er, "submission", put), id);
    t->moved = id;
}

/* Runs a first sync of applications on a new connection of two records a
 * page, cb called after each page, and checks that cb moved one record
 * (t->moved) and that it alone has a stage change since the run began:
 * returns that record's entry of GET /v1/applications?stage_changed_after
 * (the caller frees *o). */
static const cJSON *paged_first_sync(fixture *f, twice *t, ah_sync_progress cb, cJSON **o)
{
    *t = (twice){f, add_conn_named(f, "paged", "2"), 0};
    char before[32], err[1024];
    ah_now_iso(before);
    ck_assert_msg(ah_sync_run(f->core, "acme", "paged", "applications", cb, t, NULL, err,
                              sizeof err) == AH_SYNC_OK, "%s", err);
    ck_assert_int_ne(t->moved, 0);
    char rid[32], path[256];
    snprintf(rid, sizeof rid, "%ld", t->moved);
    ah_record_row row;
    ck_assert_int_eq(f->core->store->ops->record_get(f->core->store, t->cid, "application", rid,
                                                     &row), 0);
    snprintf(path, sizeof path, "/v1/applications?stage_changed_after=%s", before);
    ck_assert_int_eq(req(f, "GET", path, NULL, NULL, o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(*o, "data")), 1);
    ck_assert_str_eq(jget(*o, "data.0.id")->valuestring, row.id);
    ah_record_row_free(&row);
    return jget(*o, "data.0");
}

START_TEST(test_first_sync_stage_of_record_given_twice)
{
    fixture f;
    setup(&f, 10);
    twice t;
    cJSON *o = NULL;
    const cJSON *e = paged_first_sync(&f, &t, move_after_first_page, &o);
    ck_assert_int_eq(cJSON_GetArraySize(jget(e, "stage_history")), 1);
    cJSON_Delete(o);
    teardown(&f);
}
END_TEST

/* A first sync during which an application is stored by someone else (a
 * write through atshub) still compares that record's stage: the run that
 * looked up only its own records takes the page back and looks up every
 * one from then on. */
static void store_one_after_first_page(void *arg, const char *type, const ah_sync_stats *st)
{
    twice *t = arg;
    if (strcmp(type, "applications") != 0 || st->done || st->pages != 1 || t->moved != 0)
        return;
    long *ids = NULL;
    size_t n = ah_erecruit_sim_ids(t->f->er, "submission", &ids);
    ah_store *store = t->f->core->store;
    for (size_t i = 0; i < n && t->moved == 0; i++) {
        char rid[32];
        snprintf(rid, sizeof rid, "%ld", ids[i]);
        ah_record_row row;
        if (store->ops->record_get(store, t->cid, "application", rid, &row) == AH_STORE_OK) {
            ah_record_row_free(&row);
            continue; /* committed by the run already */
        }
        ah_record_in in = {.type = "application", .remote_id = rid,
                           .updated_at = "2000-01-01T00:00:00Z", .raw = "{}",
                           .fields = "{\"stage_id\":999}"};
        ah_upsert_result res;
        char *id = NULL;
        ck_assert_int_eq(store->ops->records_upsert(store, t->cid, &in, 1, NULL, NULL, &res, &id),
                         0);
        free(id);
        t->moved = ids[i];
    }
    free(ids);
}

START_TEST(test_first_sync_stage_of_record_stored_meanwhile)
{
    fixture f;
    setup(&f, 10);
    twice t;
    cJSON *o = NULL;
    const cJSON *e = paged_first_sync(&f, &t, store_one_after_first_page, &o);
    ck_assert_str_eq(jget(e, "stage_history.0.from_stage")->valuestring, "999");
    cJSON_Delete(o);
    teardown(&f);
}
END_TEST

/* ---- bulk reject under a rate limit ----------------------------------------------- */

START_TEST(test_bulk_reject_paced)
{
    fixture f;
    setup(&f, 1000);
    sync_all(&f);
    long *ids = NULL;
    size_t n = ah_erecruit_sim_ids(f.er, "submission", &ids);
    ck_assert_uint_eq(n, 1000);
    size_t cap = 64 + 1000 * 48;
    char *body = malloc(cap);
    ck_assert_ptr_nonnull(body);
    size_t len = (size_t)snprintf(body, cap, "{\"reason_id\":12,\"application_ids\":[");
    bool *was_rejected = calloc(1000, sizeof *was_rejected);
    ck_assert_ptr_nonnull(was_rejected);
    int already = 0;
    for (size_t i = 0; i < 999; i++) {
        char *t = ah_erecruit_sim_get(f.er, "submission", ids[i]);
        cJSON *sj = cJSON_Parse(t);
        free(t);
        was_rejected[i] = cJSON_IsTrue(cJSON_GetObjectItem(sj, "rejected"));
        already += was_rejected[i];
        cJSON_Delete(sj);
        char *id = rec_id(&f, "application", ids[i]);
        len += (size_t)snprintf(body + len, cap - len, "\"%s\",", id);
        free(id);
    }
    len += (size_t)snprintf(body + len, cap - len, "\"rec_bad\"]}");
    ah_erecruit_stats st0;
    ah_erecruit_sim_stats(f.er, &st0);
    cJSON *o = NULL;
    ck_assert_int_eq(req(&f, "POST", "/v1/applications/bulk-reject", NULL, body, &o), 202);
    char job[64];
    snprintf(job, sizeof job, "%s", jget(o, "data.id")->valuestring);
    cJSON_Delete(o);
    char path[128];
    snprintf(path, sizeof path, "/v1/bulk/%s", job);
    bool done = false;
    for (int i = 0; i < 600 && !done; i++) {
        usleep(100 * 1000);
        ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &o), 200);
        done = strcmp(jget(o, "data.status")->valuestring, "done") == 0;
        if (!done)
            cJSON_Delete(o);
    }
    ck_assert(done);
    ck_assert_int_eq(jget(o, "data.total")->valueint, 1000);
    /* Submissions the generator made rejected already fail alone (conflict). */
    ck_assert_int_eq(jget(o, "data.succeeded")->valueint, 999 - already);
    ck_assert_int_eq(jget(o, "data.failed")->valueint, 1 + already);
    for (int i = 0; i < 999; i++) {
        const cJSON *it = cJSON_GetArrayItem(jget(o, "data.items"), i);
        ck_assert_str_eq(jget(it, "status")->valuestring,
                         was_rejected[i] ? "failed" : "succeeded");
        if (was_rejected[i])
            ck_assert_str_eq(jget(it, "error.code")->valuestring, "conflict");
    }
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data.items")), 1000);
    ck_assert_str_eq(jget(o, "data.items.999.status")->valuestring, "failed");
    ck_assert_str_eq(jget(o, "data.items.999.error.code")->valuestring, "not_found");
    cJSON_Delete(o);
    /* The provider never saw more than its limit: its own bucket never refused. */
    ah_erecruit_stats st1;
    ah_erecruit_sim_stats(f.er, &st1);
    ck_assert_uint_eq(st1.rate_limited, st0.rate_limited);
    ck_assert_uint_eq(st0.rate_limited, 0);
    ck_assert_uint_ge(ah_erecruit_sim_requests(f.er, "POST", "/api/v2/submissions/{id}/reject"),
                      999);
    char *t500 = ah_erecruit_sim_get(f.er, "submission", ids[500]);
    cJSON *s = cJSON_Parse(t500);
    free(t500);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(s, "rejected")));
    cJSON_Delete(s);
    /* A bad body is refused before any job exists. */
    ck_assert_int_eq(req(&f, "POST", "/v1/applications/bulk-stage", NULL,
                         "{\"application_ids\":[\"a\"]}", &o), 400);
    cJSON_Delete(o);
    free(body);
    free(ids);
    free(was_rejected);
    teardown(&f);
}
END_TEST

/* ---- webhook endpoints whole: PATCH, DELETE, secret rotation ------------------- */

/* A receiver that keeps the last delivery as it came. */
typedef struct keeper {
    pthread_mutex_t mu;
    int calls;
    char id[64], ts[32], sig[400];
    char *body;
} keeper;

static void on_keep(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    keeper *k = arg;
    const char *id = ah_sim_header(req, "webhook-id");
    const char *ts = ah_sim_header(req, "webhook-timestamp");
    const char *sig = ah_sim_header(req, "webhook-signature");
    pthread_mutex_lock(&k->mu);
    k->calls++;
    snprintf(k->id, sizeof k->id, "%s", id ? id : "");
    snprintf(k->ts, sizeof k->ts, "%s", ts ? ts : "");
    snprintf(k->sig, sizeof k->sig, "%s", sig ? sig : "");
    free(k->body);
    k->body = strndup(req->body, req->body_len);
    pthread_mutex_unlock(&k->mu);
    resp->status = 200;
    resp->body = strdup("{}");
}

/* Runs tests/support/verify_webhook.js (the standardwebhooks npm library) on
 * the kept delivery with `secret`: 0 accepted, 1 refused, 77 not installed. */
static int reference_verify(fixture *f, keeper *k, const char *secret)
{
    char dir[1024], p[1100], cmd[3300];
    snprintf(dir, sizeof dir, "%s/delivery", f->dir);
    ck_assert(mkdir(dir, 0700) == 0 || errno == EEXIST);
    const char *names[] = {"body", "webhook-id", "webhook-timestamp", "webhook-signature"};
    pthread_mutex_lock(&k->mu);
    const char *vals[] = {k->body, k->id, k->ts, k->sig};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        ck_assert_int_eq(ah_t_write_file(p, vals[i]), 0);
    }
    pthread_mutex_unlock(&k->mu);
    if (system("command -v node >/dev/null 2>&1") != 0)
        return 77;
    snprintf(cmd, sizeof cmd, "node %s/tests/support/verify_webhook.js '%s' '%s'",
             ah_t_env("AH_SOURCE_DIR"), secret, dir);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Waits for the keeper's call number `n`. */
static void wait_calls(keeper *k, int n)
{
    int got = 0;
    for (int i = 0; i < 300 && got < n; i++) {
        pthread_mutex_lock(&k->mu);
        got = k->calls;
        pthread_mutex_unlock(&k->mu);
        if (got < n)
            usleep(100 * 1000);
    }
    ck_assert_int_ge(got, n);
}

START_TEST(test_webhook_patch_rotate_delete)
{
    fixture f;
    setup(&f, 3);
    keeper k = {0};
    pthread_mutex_init(&k.mu, NULL);
    ah_sim_opts so = {0};
    ah_sim *ksim = ah_sim_new(&so);
    ck_assert_ptr_nonnull(ksim);
    ck_assert_int_eq(ah_sim_route(ksim, "POST", "/keep", on_keep, &k), 0);
    ck_assert_int_eq(ah_sim_start(ksim), 0);
    char body[1024];
    snprintf(body, sizeof body, "{\"url\":\"%s/nowhere\",\"description\":\"first\"}",
             ah_sim_url(ksim));
    cJSON *o = NULL;
    ck_assert_int_eq(req(&f, "POST", "/v1/webhooks", NULL, body, &o), 201);
    ck_assert_str_eq(jget(o, "data.description")->valuestring, "first");
    char old_secret[96];
    snprintf(old_secret, sizeof old_secret, "%s", jget(o, "data.secret")->valuestring);
    long long eid = (long long)jget(o, "data.id")->valuedouble;
    cJSON_Delete(o);
    char path[256];
    snprintf(path, sizeof path, "/v1/webhooks/%lld", eid);

    /* PATCH refuses what create refuses, and unknown or no members. */
    const char *bad[] = {"{\"url\":\"http://169.254.169.254/latest\"}", "{\"url\":\"ftp://x/\"}",
                         "{\"url\":\"http://10.0.0.1/hook\"}", "{\"bogus\":1}", "{}",
                         "{\"types\":3}", "{\"description\":\"a\\nb\"}", "{\"url\":7}",
                         /* No object: an array's items were taken for members
                          * (the daemon crashed), a string or a number. */
                         "[1]", "[{\"url\":1}]", "\"x\"", "7"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(req(&f, "PATCH", path, NULL, bad[i], &o) == 400, "%s", bad[i]);
        ck_assert_str_eq(jget(o, "error.code")->valuestring, "invalid_request");
        cJSON_Delete(o);
    }
    ck_assert_int_eq(req(&f, "POST", "/v1/webhooks", NULL, "[1]", &o), 400);
    ck_assert_str_eq(jget(o, "error.code")->valuestring, "invalid_request");
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "PATCH", "/v1/webhooks/999999", NULL, "{\"description\":\"x\"}",
                         &o), 404);
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "PATCH", "/v1/webhooks/abc", NULL, "{\"description\":\"x\"}", &o),
                     404);
    cJSON_Delete(o);
    /* Every other route of one endpoint: 404 for an unknown id or one
     * that is no positive integer, with the stable code. */
    const struct {
        const char *method, *tail, *body;
    } others[] = {{"POST", "/enable", "{}"},          {"POST", "/disable", "{}"},
                  {"DELETE", "", NULL},                {"POST", "/rotate-secret", "{}"},
                  {"GET", "/deliveries", NULL}};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        for (int bad_id = 0; bad_id < 2; bad_id++) {
            char p2[128];
            snprintf(p2, sizeof p2, "/v1/webhooks/%s%s", bad_id == 0 ? "999999" : "-3",
                     others[i].tail);
            ck_assert_msg(req(&f, others[i].method, p2, NULL, others[i].body, &o) == 404, "%s %s",
                          others[i].method, p2);
            ck_assert_str_eq(jget(o, "error.code")->valuestring, "not_found");
            cJSON_Delete(o);
        }
    }
    /* Now point it at the receiver, with a filter and a new description. */
    snprintf(body, sizeof body,
             "{\"url\":\"%s/keep\",\"types\":[\"event.job.*\"],\"description\":\"second\"}",
             ah_sim_url(ksim));
    ck_assert_int_eq(req(&f, "PATCH", path, NULL, body, &o), 200);
    ck_assert_int_eq((long long)jget(o, "data.id")->valuedouble, eid);
    ck_assert_str_eq(jget(o, "data.types")->valuestring, "event.job.*");
    ck_assert_str_eq(jget(o, "data.description")->valuestring, "second");
    ck_assert(strstr(jget(o, "data.url")->valuestring, "/keep") != NULL);
    ck_assert(cJSON_IsNull(jget(o, "data.previous_secret_expires_at")));
    ck_assert_ptr_null(jget(o, "data.secret"));
    cJSON_Delete(o);

    /* Rotate with an hour of overlap: deliveries carry both signatures. */
    snprintf(path, sizeof path, "/v1/webhooks/%lld/rotate-secret", eid);
    ck_assert_int_eq(req(&f, "POST", path, NULL, "{\"overlap_seconds\":-1}", &o), 400);
    cJSON_Delete(o);
    /* Out of a long's range (undefined to convert): 400 all the same. */
    ck_assert_int_eq(req(&f, "POST", path, NULL, "{\"overlap_seconds\":1e300}", &o), 400);
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "POST", path, NULL, "{\"overlap_seconds\":1.5}", &o), 400);
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "POST", path, NULL, "{\"overlap_seconds\":3600}", &o), 200);
    char new_secret[96];
    snprintf(new_secret, sizeof new_secret, "%s", jget(o, "data.secret")->valuestring);
    ck_assert(strncmp(new_secret, "whsec_", 6) == 0);
    ck_assert_str_ne(new_secret, old_secret);
    ck_assert(cJSON_IsString(jget(o, "data.previous_secret_expires_at")));
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "GET", "/v1/webhooks", NULL, NULL, &o), 200);
    ck_assert(cJSON_IsString(jget(o, "data.0.previous_secret_expires_at")));
    char *listed = cJSON_PrintUnformatted(o);
    ck_assert_ptr_null(strstr(listed, "whsec_")); /* never listed */
    free(listed);
    cJSON_Delete(o);

    sync_all(&f); /* 5 jobs created: event.job.* */
    wait_calls(&k, 1);
    pthread_mutex_lock(&k.mu);
    char sig[400];
    snprintf(sig, sizeof sig, "%s", k.sig);
    char *space = strchr(sig, ' ');
    ck_assert_msg(space != NULL, "one signature only during the overlap: %s", sig);
    *space = '\0';
    ck_assert_msg(verify(new_secret, k.id, k.ts, k.body, strlen(k.body), sig),
                  "the first signature is not the new secret's");
    ck_assert_msg(verify(old_secret, k.id, k.ts, k.body, strlen(k.body), space + 1),
                  "the second signature is not the old secret's");
    ck_assert(strstr(k.body, "\"event.job.") != NULL); /* the filter holds */
    pthread_mutex_unlock(&k.mu);
    /* The reference library accepts the delivery with either secret and
     * refuses it with another. */
    int rc = reference_verify(&f, &k, new_secret);
    if (rc == 77) {
        fprintf(stderr, "standardwebhooks (npm) not installed: reference check skipped\n");
    } else {
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(reference_verify(&f, &k, old_secret), 0);
        ck_assert_int_eq(reference_verify(&f, &k, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), 1);
    }

    /* No body is {} (the default overlap); a body that is no object 400. */
    ck_assert_int_eq(req(&f, "POST", path, NULL, NULL, &o), 200);
    ck_assert(cJSON_IsString(jget(o, "data.previous_secret_expires_at")));
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "POST", path, NULL, "[1]", &o), 400);
    ck_assert_str_eq(jget(o, "error.code")->valuestring, "invalid_request");
    cJSON_Delete(o);
    /* The delivery log's limit: 1..1000, anything else 400. */
    {
        static const char *const limits[] = {"abc", "0", "-5", "1001", "99999999999", ""};
        for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
            char p2[160];
            snprintf(p2, sizeof p2, "/v1/webhooks/%lld/deliveries?limit=%s", eid, limits[i]);
            ck_assert_msg(req(&f, "GET", p2, NULL, NULL, &o) == 400, "%s", p2);
            ck_assert_str_eq(jget(o, "error.code")->valuestring, "invalid_request");
            cJSON_Delete(o);
        }
        char p2[160];
        snprintf(p2, sizeof p2, "/v1/webhooks/%lld/deliveries?limit=2", eid);
        ck_assert_int_eq(req(&f, "GET", p2, NULL, NULL, &o), 200);
        ck_assert_int_le(cJSON_GetArraySize(jget(o, "data")), 2);
        cJSON_Delete(o);
    }

    /* Rotate without overlap: the old secret is gone at once. */
    ck_assert_int_eq(req(&f, "POST", path, NULL, "{\"overlap_seconds\":0}", &o), 200);
    ck_assert(cJSON_IsNull(jget(o, "data.previous_secret_expires_at")));
    cJSON_Delete(o);

    /* DELETE: gone, with its delivery log; a second time 404. */
    snprintf(path, sizeof path, "/v1/webhooks/%lld", eid);
    ck_assert_int_eq(req(&f, "DELETE", path, NULL, NULL, &o), 200);
    ck_assert(cJSON_IsTrue(jget(o, "data.deleted")));
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "DELETE", path, NULL, NULL, &o), 404);
    cJSON_Delete(o);
    snprintf(path, sizeof path, "/v1/webhooks/%lld/deliveries", eid);
    ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &o), 404);
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "GET", "/v1/webhooks", NULL, NULL, &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 0);
    cJSON_Delete(o);
    teardown(&f);
    ah_sim_stop(ksim);
    free(k.body);
    pthread_mutex_destroy(&k.mu);
}
END_TEST

/* ---- the TypeScript example (examples/typescript) ------------------------------ */

/* Runs the example's compiled program (AH_TS_EXAMPLE: its dist/main.js, built
 * from the client that openapi-typescript generated from docs/openapi.yaml)
 * against the daemon and the ERecruit simulator: it adds a webhook endpoint,
 * the test syncs, the program pages through the jobs, moves an application
 * with an Idempotency-Key, verifies a delivery with standardwebhooks and
 * deletes the endpoint. Only in the check_typescript_example entry. */
START_TEST(test_typescript_example)
{
    fixture f;
    setup(&f, 3);
    const char *main_js = getenv("AH_TS_EXAMPLE");
    ck_assert_ptr_nonnull(main_js);
    char cmd[2048], e_url[128], e_key[128];
    snprintf(cmd, sizeof cmd, "exec node '%s' 1>&2", main_js);
    snprintf(e_url, sizeof e_url, "ATSHUB_URL=%s", f.base);
    snprintf(e_key, sizeof e_key, "ATSHUB_KEY=%s", KEY_ACME);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    const char *env[] = {e_url, e_key, "ATSHUB_STAGE_ID=4", NULL};
    int fd = -1;
    pid_t pid = ah_t_spawn(argv, env, &fd);
    ck_assert_int_gt(pid, 0);
    char *line = ah_t_wait_line(fd, "webhook ready", 60);
    if (line == NULL) {
        ah_t_stop(pid, SIGTERM);
        ck_abort_msg("the example did not add its webhook endpoint; it wrote: %s", ah_t_seen(fd));
    }
    free(line);
    sync_all(&f); /* jobs for it to page through, events for its receiver */
    /* Its last line: "typescript example: ok", or what failed. */
    line = ah_t_wait_line(fd, "typescript example: ", 120);
    bool ok = line != NULL && strstr(line, "typescript example: ok") != NULL;
    int rc = ah_t_stop(pid, ok ? 0 : SIGTERM);
    if (!ok)
        ck_abort_msg("the example failed; it wrote: %s", ah_t_seen(fd));
    ck_assert_int_eq(rc, 0);
    free(line);
    close(fd);
    teardown(&f);
}
END_TEST

/* ---- OpenAPI coverage --------------------------------------------------------------- */

/* One operation: a method and a path ("{id}" templates as registered). */
typedef struct route_op {
    char method[16];
    char path[256];
    unsigned flags;
} route_op;

typedef struct route_set {
    route_op op[256];
    int n;
} route_set;

static void route_add(route_set *r, const char *method, const char *path, unsigned flags)
{
    ck_assert_int_lt(r->n, 256);
    snprintf(r->op[r->n].method, sizeof r->op[r->n].method, "%s", method);
    snprintf(r->op[r->n].path, sizeof r->op[r->n].path, "%s", path);
    r->op[r->n].flags = flags;
    r->n++;
}

static void collect_route(void *arg, const char *method, const char *path, unsigned flags)
{
    if (strncmp(path, "/v1", 3) == 0)
        route_add(arg, method, path, flags);
}

/* docs/openapi.yaml's operations: our own layout, "paths:" then two-space
 * indented "  /v1/...:" keys with four-space indented method keys. */
static void openapi_ops(route_set *doc)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/openapi.yaml", ah_t_env("AH_SOURCE_DIR"));
    size_t len = 0;
    char *yaml = ah_t_read_file(path, &len);
    ck_assert_msg(yaml != NULL, "cannot read %s", path);
    static const char *const methods[] = {"get", "put", "post", "delete", "patch"};
    bool in_paths = false;
    char cur[256] = "";
    char *save = NULL;
    for (char *line = strtok_r(yaml, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] != ' ' && line[0] != '#') {
            in_paths = strncmp(line, "paths:", 6) == 0;
        } else if (in_paths && strncmp(line, "  /", 3) == 0) {
            char *colon = strrchr(line, ':');
            ck_assert_ptr_nonnull(colon);
            snprintf(cur, sizeof cur, "%.*s", (int)(colon - line - 2), line + 2);
        } else if (in_paths && cur[0] && strncmp(line, "    ", 4) == 0 && line[4] != ' ') {
            for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
                size_t ml = strlen(methods[m]);
                if (strncmp(line + 4, methods[m], ml) == 0 && strcmp(line + 4 + ml, ":") == 0) {
                    char up[16];
                    for (size_t k = 0; k <= ml; k++)
                        up[k] = (char)(methods[m][k] >= 'a' ? methods[m][k] - 32 : methods[m][k]);
                    route_add(doc, up, cur, 0);
                }
            }
        }
    }
    free(yaml);
}

/* docs/api.md's route index: the rows "| `METHOD /v1/...` | ..." of its
 * section "## Every route". */
static void api_md_ops(route_set *md)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/api.md", ah_t_env("AH_SOURCE_DIR"));
    size_t len = 0;
    char *text = ah_t_read_file(path, &len);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    bool in_index = false;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "## ", 3) == 0)
            in_index = strcmp(line, "## Every route") == 0;
        else if (in_index && strncmp(line, "| `", 3) == 0) {
            char method[16], p[256];
            ck_assert_msg(sscanf(line, "| `%15[A-Z] %255[^`]`", method, p) == 2,
                          "docs/api.md: malformed route index row: %s", line);
            route_add(md, method, p, 0);
        }
    }
    free(text);
}

/* Does route r serve the documented operation d? */
static bool serves(const route_op *r, const route_op *d)
{
    bool method = strcmp(r->method, "*") == 0 || strcmp(r->method, d->method) == 0;
    if (r->flags & AH_HTTPD_PREFIX)
        return method && strncmp(d->path, r->path, strlen(r->path)) == 0;
    return method && strcmp(d->path, r->path) == 0;
}

static bool same_op(const route_op *a, const route_op *b)
{
    return strcmp(a->method, b->method) == 0 && strcmp(a->path, b->path) == 0;
}

/* The router's table, docs/openapi.yaml and docs/api.md's route index name
 * the same operations: a route the document lacks, a documented operation
 * no route serves (path or method), or an index that differs fails. */
START_TEST(test_openapi_routes)
{
    fixture f;
    setup(&f, 1);
    route_set *routes = calloc(1, sizeof *routes), *doc = calloc(1, sizeof *doc),
              *md = calloc(1, sizeof *md);
    ck_assert(routes != NULL && doc != NULL && md != NULL);
    ah_httpd_each_route(f.core->httpd, collect_route, routes);
    ck_assert_int_gt(routes->n, 30);
    openapi_ops(doc);
    ck_assert_int_gt(doc->n, 30);
    api_md_ops(md);
    /* Every registered route is documented, with its method... */
    for (int i = 0; i < routes->n; i++) {
        bool found = false;
        for (int j = 0; j < doc->n && !found; j++)
            found = serves(&routes->op[i], &doc->op[j]);
        ck_assert_msg(found, "route %s %s is not in docs/openapi.yaml", routes->op[i].method,
                      routes->op[i].path);
    }
    /* ...every documented operation is served... */
    for (int j = 0; j < doc->n; j++) {
        bool found = false;
        for (int i = 0; i < routes->n && !found; i++)
            found = serves(&routes->op[i], &doc->op[j]);
        ck_assert_msg(found, "docs/openapi.yaml has %s %s, which no route serves",
                      doc->op[j].method, doc->op[j].path);
    }
    /* ...and docs/api.md's index lists exactly the document's operations. */
    for (int j = 0; j < doc->n; j++) {
        bool found = false;
        for (int k = 0; k < md->n && !found; k++)
            found = same_op(&doc->op[j], &md->op[k]);
        ck_assert_msg(found, "docs/api.md's route index lacks %s %s", doc->op[j].method,
                      doc->op[j].path);
    }
    for (int k = 0; k < md->n; k++) {
        bool found = false;
        for (int j = 0; j < doc->n && !found; j++)
            found = same_op(&doc->op[j], &md->op[k]);
        ck_assert_msg(found, "docs/api.md lists %s %s, which docs/openapi.yaml lacks",
                      md->op[k].method, md->op[k].path);
    }
    free(routes);
    free(doc);
    free(md);
    teardown(&f);
}
END_TEST

/* GET /v1/events?types=... reads at most AH_EVENTS_SCAN_MAX events a
 * request: past that many events the filter leaves out, the page ends
 * empty with has_more and a next_cursor past them, so polling moves on
 * (and no poll reads the whole log). Walking next_cursor finds the one
 * matching event; the cursor then moves past the events after it that
 * do not match, and an event added later is found: nothing is skipped. */
static int64_t add_event(fixture *f, const char *topic)
{
    int64_t id = 0;
    ck_assert_int_eq(f->core->store->ops->outbox_add(f->core->store, f->tenant_id, topic,
                                                     "{}", &id), 0);
    return id;
}

static long long page_of(fixture *f, long long after, int *n, bool *more, long long *first)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/events?types=event.probe.*&limit=10&after=%lld", after);
    cJSON *o = NULL;
    ck_assert_int_eq(req(f, "GET", path, NULL, NULL, &o), 200);
    *n = cJSON_GetArraySize(jget(o, "data"));
    *more = cJSON_IsTrue(jget(o, "has_more"));
    *first = *n > 0 ? (long long)jget(o, "data.0.cursor")->valuedouble : 0;
    const cJSON *nc = jget(o, "next_cursor");
    ck_assert(cJSON_IsString(nc));
    long long next = strtoll(nc->valuestring, NULL, 10);
    cJSON_Delete(o);
    return next;
}

START_TEST(test_event_filter_bounded)
{
    fixture f;
    setup(&f, 5);
    int64_t before = add_event(&f, "event.noise.start");
    for (int i = 0; i < AH_EVENTS_SCAN_MAX + 100; i++)
        add_event(&f, "event.noise.tick");
    int64_t hit = add_event(&f, "event.probe.hit");
    int64_t tail = 0;
    for (int i = 0; i < 3; i++)
        tail = add_event(&f, "event.noise.tail");

    int n;
    bool more;
    long long first;
    long long next = page_of(&f, before, &n, &more, &first);
    ck_assert_int_eq(n, 0);
    ck_assert(more);
    ck_assert_int_gt(next, before); /* moved on past what it read */
    ck_assert_int_lt(next, hit);
    next = page_of(&f, next, &n, &more, &first);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(first, hit);
    ck_assert(!more);
    ck_assert_int_eq(next, tail); /* past the events after it that do not match */
    long long again = page_of(&f, next, &n, &more, &first);
    ck_assert_int_eq(n, 0);
    ck_assert(!more);
    ck_assert_int_eq(again, next);
    int64_t late = add_event(&f, "event.probe.late");
    next = page_of(&f, next, &n, &more, &first);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(first, late);
    teardown(&f);
}
END_TEST

static Suite *events_suite(void)
{
    Suite *s = suite_create("events_api");
    TCase *tc = tcase_create("trust");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_webhooks_and_replay);
    tcase_add_test(tc, test_webhook_claim_taken_over);
    tcase_add_test(tc, test_webhook_disabled_after_failures);
    tcase_add_test(tc, test_webhook_destinations_refused);
    tcase_add_test(tc, test_webhook_store_failure_is_500);
    tcase_add_test(tc, test_webhook_endpoints_bounded);
    tcase_add_test(tc, test_idempotency);
    tcase_add_test(tc, test_idempotency_secret_sealed);
tcase_add_test(tc, test_idempotent_replay_keeps_location);
    tcase_add_test(tc, test_idempotency_query_string);
    tcase_add_test(tc, test_deletions_and_stage_history);
    tcase_add_test(tc, test_first_sync_stage_of_record_given_twice);
    tcase_add_test(tc, test_first_sync_stage_of_record_stored_meanwhile);
    tcase_add_test(tc, test_bulk_reject_paced);
    tcase_add_test(tc, test_webhook_patch_rotate_delete);
    tcase_add_test(tc, test_openapi_routes);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("log");
    tcase_set_timeout(tl, 120);
    tcase_add_test(tl, test_event_filter_bounded);
    tcase_add_test(tl, test_webhook_secret_unopenable);
    tcase_add_test(tl, test_retention_and_webhook_cursors);
    suite_add_tcase(s, tl);
    /* The TypeScript example: only where it was built (check_typescript_example). */
    if (getenv("AH_TS_EXAMPLE") != NULL) {
        TCase *ts = tcase_create("typescript");
        tcase_set_timeout(ts, 240);
        tcase_add_test(ts, test_typescript_example);
        suite_add_tcase(s, ts);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(events_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
