/* SPDX-License-Identifier: Apache-2.0 */
/*
 * No thread waits on another tenant (issue 13): in process, tenant acme has
 * 50 REST bus calls hanging on the tarpit fixture (a provider that answers
 * only when the test releases it), spread over four connections; meanwhile
 * tenant globex's store reads, bus calls and writes are all answered, with
 * two HTTP threads and four bus workers. Then the tarpit is released and
 * every one of acme's calls is answered. Plugin routes too: half of acme's
 * 50 hanging calls are on the tarpit's inbound route, which runs on a bus
 * worker (not on one of the two HTTP threads), while globex's reads and ERP
 * creates (the erp plugin's route, in its own process) are answered. And
 * the store: with its writer held, one tenant's /v1 writes that need it
 * (Idempotency-Key reservations included) wait on bus workers, not on the
 * HTTP threads, while another tenant's reads (beside the writer) and
 * /v1/health are answered; an operator's store call waits off the admin
 * listener's one thread; bulk-reject?wait=true waits holding no thread; on
 * PostgreSQL, a store held by another client's lock holds no HTTP or admin
 * thread either. The test waits for states, never for times.
 */
#include <check.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "frame.h"
#include "isolate.h"
#include "registry.h"
#include "metrics.h"
#include "sim/sim.h"
#include "support/harness.h"

#define KEY_ACME "ahk_acme_key_0123456789"
#define KEY_GLOBEX "ahk_globex_key_987654321"
#define HANGING 50
#define TARPITS 4
#define WORKERS 4

typedef struct fixture {
    char *dir;
    char *release; /* the file that releases the tarpit */
    ah_core *core;
    char base[64];
    int64_t acme, globex, gx;
    char *gjob, *gapp;
    char *tokens[4]; /* the tarpit connections' webhook_token */
    char *erp_key;   /* globex's ERP source's API key */
} fixture;

/* [core] tenant_workers for the next setup (0: the default). */
static int tenant_workers;
/* [store] claim_ms for the next setup (0: the default). */
static int claim_ms;
/* [core] request_timeout_ms for the next setup (0: 600000). */
static int request_timeout_ms;
/* [core] provider_threads for the next setup (-1: the default). */
static int provider_threads = -1;
/* [plugin.fixture_faulty] call_timeout_ms for the next setup (0: the
 * default). */
static int faulty_timeout_ms;
/* [http] plugin_routes = inline for the next setup. */
static bool routes_inline;

static ah_core *open_core(const char *dir)
{
    const char *plugins = ah_t_env("AH_PLUGIN_DIR"), *fixtures = ah_t_env("AH_FIXTURE_DIR");
    ck_assert_ptr_nonnull(plugins);
    ck_assert_ptr_nonnull(fixtures);
    char *path = NULL, *text = NULL, extra[128] = "", faulty[64] = "";
    if (provider_threads >= 0)
        snprintf(extra, sizeof extra, "provider_threads = %d\n", provider_threads);
    if (faulty_timeout_ms > 0)
        snprintf(faulty, sizeof faulty, "call_timeout_ms = %d\n", faulty_timeout_ms);
    const char *iso = getenv("AH_TEST_ISOLATION");
    bool in_process = iso != NULL && strcmp(iso, "in_process") == 0;
    char *store = ah_t_store_url(dir);
    ck_assert_ptr_nonnull(store);
    ck_assert_int_ge(asprintf(&path, "%s/atshub.ini", dir), 0);
    /* request_timeout_ms at its maximum: the hanging calls must still be
     * hanging when the test releases them, however slow the machine. */
    ck_assert_int_ge(
        asprintf(&text,
                 "[core]\nworkers = %d\ntenant_workers = %d\nkey_file = host.key\n"
                 "request_timeout_ms = %d\nlog_level = error\n%s"
                 "[http]\nlisten = 127.0.0.1:0\nthreads = 2\n%s"
                 "[store]\nurl = %s\nclaim_ms = %d\n"
                 "[sync]\ninterval_s = 0\n"
                 "[plugins]\ntemplate = %s/template.so\nfakeats = %s/fakeats.so\n"
                 "tarpit = %s/tarpit.so\nerp = %s/erp.so\nfixture_faulty = %s/faulty.so\n%s"
                 "[plugin.fixture_faulty]\n%s%s",
                 WORKERS, tenant_workers, request_timeout_ms > 0 ? request_timeout_ms : 600000,
                 extra, routes_inline ? "plugin_routes = inline\n" : "", store, claim_ms > 0 ? claim_ms : 15000, plugins, fixtures, fixtures, plugins, fixtures,
                 /* ctest check_fairness_in_process: every plugin in the daemon. */
                 in_process ? "[plugin.template]\nisolation = in_process\n"
                              "[plugin.fakeats]\nisolation = in_process\n"
                              "[plugin.tarpit]\nisolation = in_process\n"
                              "[plugin.erp]\nisolation = in_process\n"
                              /* Its process gets only the variables named. */
                            : "[plugin.tarpit]\nenv = AH_TARPIT_RELEASE\n",
                 in_process ? "isolation = in_process\n" : "", faulty),
        0);
    ck_assert_int_eq(ah_t_write_file(path, text), 0);
    free(text);
    free(store);
    ah_config cfg;
    char err[1024];
    ck_assert_msg(ah_config_load(path, &cfg, err, sizeof err) == 0, "%s", err);
    free(path);
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    ah_core *core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ck_assert_msg(core != NULL, "%s", err);
    ck_assert_msg(ah_daemon_start(core, err, sizeof err) == 0, "%s", err);
    return core;
}

static int64_t add_tenant(fixture *f, const char *name, const char *key)
{
    char hash[AH_SHA256_HEX_LEN + 1];
    int64_t id;
    ah_sha256_hex(key, strlen(key), hash);
    ck_assert_int_eq(f->core->store->ops->tenant_add(f->core->store, name, hash, &id), 0);
    return id;
}

static int64_t add_conn(fixture *f, int64_t tenant, const char *plugin, const char *name)
{
    int64_t id;
    ck_assert_int_eq(f->core->store->ops->connection_add(f->core->store, tenant, plugin, name,
                                                         "{}", &id), 0);
    return id;
}

/* A connection whose settings are built from the plugin's table (generated
 * secrets included); *secret gets the plaintext of `key` when asked. */
static int64_t add_conn_settings(fixture *f, int64_t tenant, const char *plugin,
                                 const char *name, const char *input, const char *key,
                                 char **secret)
{
    ah_generation *gen = ah_registry_acquire(f->core->registry, plugin);
    ck_assert_ptr_nonnull(gen);
    cJSON *in = cJSON_Parse(input), *out = cJSON_CreateObject();
    char *text = NULL, err[512];
    ck_assert_msg(ah_settings_build(f->core, gen->desc->settings, plugin, NULL, in, true, out,
                                    &text, err, sizeof err) == 0, "%s", err);
    int64_t id;
    ck_assert_int_eq(f->core->store->ops->connection_add(f->core->store, tenant, plugin, name,
                                                         text, &id), 0);
    if (secret != NULL) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(out, key);
        ck_assert(cJSON_IsString(k));
        *secret = strdup(k->valuestring);
    }
    free(text);
    cJSON_Delete(in);
    cJSON_Delete(out);
    ah_generation_release(gen);
    return id;
}

static fixture F;

static void setup(void)
{
    memset(&F, 0, sizeof F);
    F.dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(F.dir);
    ck_assert_int_ge(asprintf(&F.release, "%s/release", F.dir), 0);
    /* Read by the tarpit fixture in this process. */
    ck_assert_int_eq(setenv("AH_TARPIT_RELEASE", F.release, 1), 0);
    F.core = open_core(F.dir);
    snprintf(F.base, sizeof F.base, "http://127.0.0.1:%u", (unsigned)ah_httpd_port(F.core->httpd));
    F.acme = add_tenant(&F, "acme", KEY_ACME);
    F.globex = add_tenant(&F, "globex", KEY_GLOBEX);
    for (int i = 1; i <= TARPITS; i++) {
        char name[16];
        snprintf(name, sizeof name, "pit%d", i);
        add_conn_settings(&F, F.acme, "tarpit", name, "{}", "webhook_token", &F.tokens[i - 1]);
    }
    F.gx = add_conn(&F, F.globex, "fakeats", "ats1");
    add_conn_settings(&F, F.globex, "erp", "Globex_ERP",
                      "{\"trusted_ips\":\"127.0.0.1,::1\",\"job_id_prefix\":\"GX\"}", "api_key",
                      &F.erp_key);
    ck_assert_int_eq(ah_conns_reload(F.core), 0);
    ah_record_in in = {"job", "G-1", "2024-03-01T00:00:00Z", "{\"provider_id\":\"G-1\"}",
                       "{\"name\":\"job G-1\"}"};
    ck_assert_int_eq(F.core->store->ops->records_upsert(F.core->store, F.gx, &in, 1, NULL, NULL,
                                                        NULL, &F.gjob), 0);
    ck_assert_ptr_nonnull(F.gjob);
    ah_record_in app = {"application", "GA-1", "2024-03-01T00:00:00Z",
                        "{\"provider_id\":\"GA-1\"}", "{\"name\":\"application GA-1\"}"};
    ck_assert_int_eq(F.core->store->ops->records_upsert(F.core->store, F.gx, &app, 1, NULL, NULL,
                                                        NULL, &F.gapp), 0);
    ck_assert_ptr_nonnull(F.gapp);
}

static void setup_share1(void)
{
    tenant_workers = 1;
    setup();
    tenant_workers = 0;
}

/* No [core] provider_threads limit, and fixture_faulty's calls answered
 * (or taken for a hang) within 2 s. */
static void setup_room(void)
{
    provider_threads = 0;
    faulty_timeout_ms = 2000;
    setup();
    provider_threads = -1;
    faulty_timeout_ms = 0;
}

/* As setup_room, with callers' deadlines of 1 s. */
static void setup_room_short(void)
{
    request_timeout_ms = 1000;
    setup_room();
    request_timeout_ms = 0;
}

static void setup_short_claims(void)
{
    claim_ms = 2000;
    setup();
    claim_ms = 0;
}

static void setup_inline(void)
{
    routes_inline = true;
    setup();
    routes_inline = false;
}

/* Deadlines of 1 s: a call hanging on the tarpit outlives its caller. */
static void setup_short_timeout(void)
{
    request_timeout_ms = 1000;
    setup();
    request_timeout_ms = 0;
}

static void teardown(void)
{
    /* Whatever happened, nothing may stay hanging. */
    (void)ah_t_write_file(F.release, "go");
    ah_daemon_close(F.core);
    ah_t_rmrf(F.dir);
    free(F.dir);
    free(F.release);
    free(F.gjob);
    free(F.gapp);
    for (int i = 0; i < TARPITS; i++)
        free(F.tokens[i]);
    free(F.erp_key);
    unsetenv("AH_TARPIT_RELEASE");
}

/* ---- a client without a deadline ----------------------------------------- */

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t collect(char *p, size_t s, size_t n, void *arg)
{
    buf *b = arg;
    char *q = realloc(b->p, b->n + s * n + 1);
    if (q == NULL)
        return 0;
    memcpy(q + b->n, p, s * n);
    b->n += s * n;
    q[b->n] = '\0';
    b->p = q;
    return s * n;
}

/* One request; the status (0: none) and the body (malloc'd) in *out. No
 * client timeout: the hanging calls must wait as long as the tarpit. */
static long http_h(const char *method, const char *path, const char *header, const char *conn,
                   const char *idem, const char *body, char **out)
{
    char url[256], xc[128], ik[128];
    snprintf(url, sizeof url, "%s%s", F.base, path);
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    struct curl_slist *h = NULL;
    if (header != NULL)
        h = curl_slist_append(h, header);
    if (conn != NULL) {
        snprintf(xc, sizeof xc, "X-Connection: %s", conn);
        h = curl_slist_append(h, xc);
    }
    if (idem != NULL) {
        snprintf(ik, sizeof ik, "Idempotency-Key: %s", idem);
        h = curl_slist_append(h, ik);
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    buf b = {0}, hb = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    /* Validated against docs/openapi.yaml in check_openapi_traffic. */
    ah_t_record_exchange(method, url, status, hb.p != NULL ? hb.p : "", b.p);
    free(hb.p);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out != NULL)
        *out = b.p;
    else
        free(b.p);
    return status;
}

static long http(const char *method, const char *path, const char *key, const char *conn,
                 const char *idem, const char *body, char **out)
{
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    return http_h(method, path, auth, conn, idem, body, out);
}

typedef struct hanger {
    int i;
    long status;
    char *body;
} hanger;

static atomic_int answered;

static void *hang_main(void *arg)
{
    hanger *hg = arg;
    char conn[16];
    snprintf(conn, sizeof conn, "pit%d", hg->i % TARPITS + 1);
    hg->status = http("POST", "/v1/bus/jobs.get", KEY_ACME, conn, NULL, "{\"job_id\":\"x\"}",
                      &hg->body);
    atomic_fetch_add(&answered, 1);
    return NULL;
}

static void *hang_keyed_main(void *arg)
{
    hanger *hg = arg;
    hg->status = http("POST", "/v1/bus/jobs.get", KEY_ACME, "pit1", "stop-key-1",
                      "{\"job_id\":\"x\"}", &hg->body);
    atomic_fetch_add(&answered, 1);
    return NULL;
}

static void *hang_orphan_main(void *arg)
{
    hanger *hg = arg;
    hg->status = http("POST", "/v1/bus/jobs.get", KEY_ACME, "pit1", "orphan-key-1",
                      "{\"job_id\":\"x\"}", &hg->body);
    atomic_fetch_add(&answered, 1);
    return NULL;
}

static long tarpit_inflight(void)
{
    ah_generation *gen = ah_registry_acquire(F.core->registry, "tarpit");
    ck_assert_ptr_nonnull(gen);
    long n = (long)atomic_load(&gen->inflight);
    ah_generation_release(gen);
    return n;
}

/* Waits for a state (polling), failing after a minute: a hang must fail the
 * test rather than the suite's timeout. */
#define WAIT_FOR(cond, what)                                                                \
    do {                                                                                    \
        int waited_ = 0;                                                                    \
        while (!(cond)) {                                                                   \
            ck_assert_msg(waited_++ < 60000, "never: %s", what);                           \
            usleep(1000);                                                                   \
        }                                                                                   \
    } while (0)

START_TEST(test_other_tenant_served_while_one_hangs)
{
    atomic_store(&answered, 0);
    hanger hg[HANGING];
    pthread_t th[HANGING];
    for (int i = 0; i < HANGING; i++) {
        hg[i] = (hanger){.i = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, hang_main, &hg[i]), 0);
    }
    /* Every one of acme's calls has reached the server and waits there;
     * acme's lanes hold their share of the workers (half of them), no more. */
    WAIT_FOR(ah_httpd_inflight(F.core->httpd) >= HANGING, "50 requests in flight");
    WAIT_FOR(tarpit_inflight() == WORKERS / 2, "the tarpit holding its share of workers");

    /* globex: a store read, bus calls, a write with an Idempotency-Key and
     * its replay; all answered while acme's calls hang. */
    char *out = NULL, path[128];
    ck_assert_int_eq(http("GET", "/v1/jobs", KEY_GLOBEX, NULL, NULL, NULL, &out), 200);
    ck_assert_ptr_nonnull(strstr(out, "G-1"));
    free(out);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_GLOBEX, "ats1", NULL,
                              "{\"job_id\":\"G-1\"}", &out), 200);
        ck_assert_ptr_nonnull(strstr(out, "\"topic\":\"jobs.get\""));
        free(out);
    }
    snprintf(path, sizeof path, "/v1/jobs/%s/enhanced", F.gjob);
    ck_assert_int_eq(http("GET", path, KEY_GLOBEX, NULL, NULL, NULL, &out), 200);
    ck_assert_ptr_nonnull(strstr(out, "jobs.get_enhanced"));
    free(out);
    snprintf(path, sizeof path, "/v1/applications/%s/stage", F.gapp);
    ck_assert_int_eq(http("POST", path, KEY_GLOBEX, NULL, "k-stage", "{\"stage_id\":\"s2\"}",
                          &out), 200);
    ck_assert_ptr_nonnull(strstr(out, "\"topic\":\"applications.move_to_stage\""));
    ck_assert_ptr_nonnull(strstr(out, "\"application_id\":\"GA-1\""));
    free(out);
    char *first = NULL, *again = NULL;
    ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_GLOBEX, "ats1", "k-1",
                          "{\"job_id\":\"G-2\"}", &first), 200);
    ck_assert_ptr_nonnull(strstr(first, "G-2"));
    ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_GLOBEX, "ats1", "k-1",
                          "{\"job_id\":\"G-2\"}", &again), 200);
    ck_assert_str_eq(again, first); /* the stored answer is the final one */
    free(first);
    free(again);
    /* An error from the plugin side keeps its status and code. */
    ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_GLOBEX, "nope", NULL, "{}", &out), 404);
    ck_assert_ptr_nonnull(strstr(out, "\"code\":\"not_found\""));
    free(out);

    /* acme's calls are all still hanging. */
    ck_assert_int_eq(atomic_load(&answered), 0);
    ck_assert_int_eq(tarpit_inflight(), WORKERS / 2);

    ck_assert_int_eq(ah_t_write_file(F.release, "go"), 0);
    for (int i = 0; i < HANGING; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(hg[i].status, 200);
        ck_assert_ptr_nonnull(hg[i].body);
        ck_assert_str_eq(hg[i].body, "{\"data\":{\"released\":true}}");
        free(hg[i].body);
    }
    ck_assert_int_eq(atomic_load(&answered), HANGING);
}
END_TEST

/* Every other hanger calls the tarpit's inbound route instead of the bus. */
static void *hang_mixed_main(void *arg)
{
    hanger *hg = arg;
    if (hg->i % 2 == 0)
        return hang_main(arg);
    char path[256];
    snprintf(path, sizeof path, "/tarpit/hook/%s", F.tokens[hg->i / 2 % TARPITS]);
    hg->status = http_h("POST", path, NULL, NULL, NULL, "{}", &hg->body);
    atomic_fetch_add(&answered, 1);
    return NULL;
}

/* Issue 13: no HTTP thread waits on a plugin. acme has 50 calls hanging,
 * half of them on a plugin route, with 2 HTTP threads: every one is
 * suspended off the HTTP threads (the route ones on bus workers, acme's
 * share of them); globex's store read and ERP creates, which are another
 * plugin's route, are all answered, correctly, meanwhile. */
START_TEST(test_routes_hang_off_http_threads)
{
    ck_assert_int_eq(F.core->cfg.http_threads, 2);
    atomic_store(&answered, 0);
    hanger hg[HANGING];
    pthread_t th[HANGING];
    for (int i = 0; i < HANGING; i++) {
        hg[i] = (hanger){.i = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, hang_mixed_main, &hg[i]), 0);
    }
    WAIT_FOR(ah_httpd_inflight(F.core->httpd) >= HANGING, "50 requests in flight");
    WAIT_FOR(tarpit_inflight() >= 1, "the tarpit holding a worker");

    char *out = NULL, hdr[160], body[512];
    ck_assert_int_eq(http("GET", "/v1/jobs", KEY_GLOBEX, NULL, NULL, NULL, &out), 200);
    ck_assert_ptr_nonnull(strstr(out, "G-1"));
    free(out);
    snprintf(hdr, sizeof hdr, "X-API-Key: %s", F.erp_key);
    for (int i = 1; i <= 5; i++) {
        snprintf(body, sizeof body,
                 "{\"action\":\"create_job\",\"source_name\":\"Globex_ERP\","
                 "\"title\":\"Fair job %d\",\"application_url\":"
                 "\"https://careers.example.com/job/%d\"}",
                 i, i);
        ck_assert_int_eq(http_h("POST", "/recruitment/integration/erp/create-job/", hdr, NULL,
                                NULL, body, &out), 200);
        ck_assert_msg(strstr(out, "\"Job created successfully\"") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "\"job_id\":\"GX-") != NULL, "%s", out);
        free(out);
    }
    /* The same open title again: the ERP's own answer, through the route. */
    snprintf(body, sizeof body,
             "{\"action\":\"create_job\",\"source_name\":\"Globex_ERP\",\"title\":\"Fair job 1\","
             "\"application_url\":\"https://careers.example.com/job/1\"}");
    ck_assert_int_eq(http_h("POST", "/recruitment/integration/erp/create-job/", hdr, NULL, NULL,
                            body, &out), 409);
    ck_assert_ptr_nonnull(strstr(out, "JOB_EXISTS"));
    free(out);

    /* acme's calls all still hang, within its share of the workers. */
    ck_assert_int_eq(atomic_load(&answered), 0);
    ck_assert_int_le(tarpit_inflight(), WORKERS / 2);
    ck_assert_int_ge(ah_httpd_inflight(F.core->httpd), HANGING);

    ck_assert_int_eq(ah_t_write_file(F.release, "go"), 0);
    for (int i = 0; i < HANGING; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(hg[i].status, 200);
        ck_assert_ptr_nonnull(hg[i].body);
        ck_assert_str_eq(hg[i].body, i % 2 == 0 ? "{\"data\":{\"released\":true}}"
                                                : "{\"released\":true,\"route\":true}");
        free(hg[i].body);
    }
    ck_assert_int_eq(atomic_load(&answered), HANGING);
}
END_TEST

typedef struct slow_caller {
    long status;
    char *body;
} slow_caller;

static void *slow_main(void *arg)
{
    slow_caller *sc = arg;
    sc->status = http_h("POST", "/tarpit/slow", NULL, NULL, NULL, "{}", &sc->body);
    atomic_fetch_add(&answered, 1);
    return NULL;
}

/* A route that names no connection (its caller unknown until the plugin
 * resolves it, like the ERP API): one client address's hanging calls hold
 * at most a tenant's share of the bus workers, so another tenant's bus
 * calls still find one. */
START_TEST(test_unnamed_route_calls_held_to_a_share)
{
    enum { SLOW = 10 };
    atomic_store(&answered, 0);
    slow_caller sc[SLOW];
    pthread_t th[SLOW];
    for (int i = 0; i < SLOW; i++) {
        sc[i] = (slow_caller){0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, slow_main, &sc[i]), 0);
    }
    WAIT_FOR(ah_httpd_inflight(F.core->httpd) >= SLOW, "10 requests in flight");
    WAIT_FOR(tarpit_inflight() == WORKERS / 2, "the slow calls holding a share of workers");
    char *out = NULL;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_GLOBEX, "ats1", NULL,
                              "{\"job_id\":\"G-1\"}", &out), 200);
        free(out);
    }
    ck_assert_int_eq(tarpit_inflight(), WORKERS / 2);
    ck_assert_int_eq(atomic_load(&answered), 0);
    ck_assert_int_eq(ah_t_write_file(F.release, "go"), 0);
    for (int i = 0; i < SLOW; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(sc[i].status, 200);
        ck_assert_str_eq(sc[i].body, "{\"released\":true,\"route\":true}");
        free(sc[i].body);
    }
}
END_TEST

/* A server stopped while calls hang answers them 503 shutting_down rather
 * than leaving them suspended (MHD must never stop with one). */
START_TEST(test_stop_answers_hanging_calls)
{
    atomic_store(&answered, 0);
    hanger hg[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        hg[i] = (hanger){.i = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, hang_main, &hg[i]), 0);
    }
    WAIT_FOR(ah_httpd_inflight(F.core->httpd) >= 4, "4 requests in flight");
    ah_daemon_stop(F.core);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(hg[i].status, 503);
        ck_assert_ptr_nonnull(strstr(hg[i].body, "\"code\":\"shutting_down\""));
        free(hg[i].body);
    }
}
END_TEST


/* A write with an Idempotency-Key whose call hangs when the server stops:
 * the client is answered 503 shutting_down, but the call may still act
 * (it runs on; queued bus work is drained), so the key keeps 502
 * outcome_unknown, which a retry after the restart is answered with,
 * instead of being released to a retry that would write again. */
START_TEST(test_stop_keeps_key_of_running_write)
{
    atomic_store(&answered, 0);
    hanger hg = {.i = 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, hang_keyed_main, &hg), 0);
    WAIT_FOR(tarpit_inflight() == 1, "the keyed write hanging on the tarpit");
    ah_daemon_stop(F.core);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(hg.status, 503);
    ck_assert_ptr_nonnull(strstr(hg.body, "\"code\":\"shutting_down\""));
    free(hg.body);
    ah_idem_row row;
    memset(&row, 0, sizeof row);
    ck_assert_int_eq(F.core->store->ops->idem_reserve(F.core->store, F.acme, "stop-key-1",
                                                      "another-hash", "1970-01-01T00:00:00.000Z",
                                                      &row),
                     AH_STORE_EXISTS);
    ck_assert_int_eq(row.status, 502); /* the answer itself is stored sealed */
    ah_idem_row_free(&row);
}
END_TEST

/* Runs one statement on the daemon's store with a connection of its own. */
static void store_exec(const char *sql)
{
    char *url = ah_t_store_url(F.dir);
    ck_assert_ptr_nonnull(url);
    if (strncmp(url, "sqlite:", 7) == 0) {
        /* Relative to the configuration's folder. */
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", F.dir, url + 7);
        sqlite3 *db = NULL;
        ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        sqlite3_busy_timeout(db, 10000);
        ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "%s",
                      sqlite3_errmsg(db));
        sqlite3_close(db);
    } else {
        PGconn *pg = PQconnectdb(url);
        ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "%s", PQerrorMessage(pg));
        PGresult *r = PQexec(pg, sql);
        ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
        PQclear(r);
        PQfinish(pg);
    }
    free(url);
}

/* A key reserved by a request whose instance ended before storing an
 * outcome (kill -9: here its reservation made to look 23 hours old while
 * the request hangs) was answered 409 idempotency_in_progress for 24
 * hours. Past ten request deadlines (at least ten minutes) it is taken
 * for what it is: the retry is answered 502 outcome_unknown, stored, and
 * never run; another body under the key is still 422. */
START_TEST(test_orphaned_reservation_answers_unknown)
{
    atomic_store(&answered, 0);
    hanger hg = {.i = 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, hang_orphan_main, &hg), 0);
    WAIT_FOR(tarpit_inflight() == 1, "the keyed write hanging on the tarpit");
    char *out = NULL;
    /* Still young: in progress. */
    ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_ACME, "pit1", "orphan-key-1",
                          "{\"job_id\":\"x\"}", &out), 409);
    free(out);
    /* 23 hours ago: past ten deadlines (this daemon's are 600 s), within
     * the key's 24 hours. */
    time_t then = time(NULL) - 23 * 3600;
    struct tm tm;
    gmtime_r(&then, &tm);
    char sql[200], ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    snprintf(sql, sizeof sql,
             "UPDATE idempotency SET created_at = '%s' WHERE key = 'orphan-key-1'", ts);
    store_exec(sql);
    for (int i = 0; i < 2; i++) {
        long st = http("POST", "/v1/bus/jobs.get", KEY_ACME, "pit1", "orphan-key-1",
                       "{\"job_id\":\"x\"}", &out);
        ck_assert_msg(st == 502 && strstr(out, "\"code\":\"outcome_unknown\"") != NULL,
                      "%ld %s", st, out);
        free(out);
    }
    ck_assert_int_eq(tarpit_inflight(), 1); /* not run again */
    ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_ACME, "pit1", "orphan-key-1",
                          "{\"job_id\":\"y\"}", &out), 422);
    free(out);
    ck_assert_int_eq(ah_t_write_file(F.release, "go"), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    free(hg.body);
}
END_TEST

/* Calls of the tarpit that ran (jobs.get, applications.reject). */
static size_t tarpit_calls(void)
{
    char path[1200];
    snprintf(path, sizeof path, "%s.calls", F.release);
    size_t n = 0;
    char *text = ah_t_read_file(path, &n);
    free(text);
    return text != NULL ? n : 0;
}

static void *hang_timed_main(void *arg)
{
    hanger *hg = arg;
    hg->status = http("POST", "/v1/bus/jobs.get", KEY_ACME, "pit1", NULL, "{\"job_id\":\"a\"}",
                      &hg->body);
    atomic_fetch_add(&answered, 1);
    return NULL;
}

/* A caller's deadline (request_timeout_ms) passes (exactly once): for a
 * call whose handler had started, the answer stays 504 timeout (the plugin
 * may act); a call still queued behind it on its connection's lane is
 * never sent to the plugin, and its answer says so (503 overloaded): its
 * Idempotency-Key is released, so the retry runs, once. */
START_TEST(test_deadline_before_start_never_runs)
{
    atomic_store(&answered, 0);
    hanger first = {.i = 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, hang_timed_main, &first), 0);
    /* Counted by the plugin itself (in its process, when isolated). */
    WAIT_FOR(tarpit_calls() == 1, "the first call hanging on the tarpit");
    ck_assert_int_eq(tarpit_inflight(), 1);
    /* Queued behind it (one lane per connection), past its own deadline. */
    char *out = NULL;
    long st = http("POST", "/v1/bus/jobs.get", KEY_ACME, "pit1", "queued-key-1",
                   "{\"job_id\":\"b\"}", &out);
    ck_assert_msg(st == 503 && strstr(out, "\"code\":\"overloaded\"") != NULL &&
                      strstr(out, "not sent to the plugin") != NULL,
                  "%ld %s", st, out);
    free(out);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(first.status == 504 && strstr(first.body, "\"code\":\"timeout\"") != NULL,
                  "%ld %s", first.status, first.body);
    free(first.body);
    /* Released: the lane runs on. A call sent now runs after the queued one
     * was taken off the lane, and the queued one never reached the tarpit. */
    ck_assert_int_eq(ah_t_write_file(F.release, "go"), 0);
    ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_ACME, "pit1", NULL,
                          "{\"job_id\":\"c\"}", &out), 200);
    free(out);
    ck_assert_uint_eq(tarpit_calls(), 2);
    /* Its key was released: the retry runs (not a replayed answer). */
    st = http("POST", "/v1/bus/jobs.get", KEY_ACME, "pit1", "queued-key-1",
              "{\"job_id\":\"b\"}", &out);
    ck_assert_msg(st == 200 && strstr(out, "\"released\":true") != NULL, "%ld %s", st, out);
    free(out);
    ck_assert_uint_eq(tarpit_calls(), 3);
}
END_TEST

typedef struct reader {
    const char *path;
    long status;
    char *body;
    const char *conn, *idem, *req; /* a write with an Idempotency-Key: POST req */
    const char *method;            /* else GET (POST with req) */
} reader;

static void *read_main(void *arg)
{
    reader *rd = arg;
    rd->status = http(rd->method != NULL ? rd->method : rd->req != NULL ? "POST" : "GET",
                      rd->path, KEY_ACME, rd->conn, rd->idem, rd->req, &rd->body);
    atomic_fetch_add(&answered, 1);
    return NULL;
}

/* Issue 13: no HTTP thread waits on the store. The test holds the store's
 * writer (a scope left open, as a long write would) while acme sends 8
 * /v1 writes that need it (DELETE /v1/webhooks/{id}) and 8 writes with an
 * Idempotency-Key (POST /v1/bus/jobs.get), whose key is reserved in the
 * store before the write runs. They wait on bus workers, within acme's
 * share, not on the 2 HTTP threads: every one of them has its request line
 * read, and globex's /v1 reads (record lists and gets, events, webhook
 * endpoints and their deliveries, a bulk job's report: all read beside the
 * writer) and GET /v1/health are answered meanwhile. Once the store is let
 * go, acme's requests are answered too, and the keys' outcomes were stored
 * before the answers went out: a retry replays, another body with the same
 * key is refused. */
START_TEST(test_store_reads_off_http_threads)
{
    enum { READS = 8, HELD = 16 };
    /* Reads beside a held writer are SQLite's (reader connections); the
     * PostgreSQL engine's open scope holds every store call (store.h):
     * test_store_busy_pg holds its store with another client's lock. */
    if (ah_t_pg())
        return;
    ck_assert_int_eq(F.core->cfg.http_threads, 2);
    ah_store *st = F.core->store;
    ck_assert_ptr_nonnull(st->ops->scope_begin);
    /* globex's webhook endpoint (disabled, on a closed loopback port: it
     * delivers nothing) and bulk job, for its reads below. */
    int64_t wh = 0;
    ck_assert_int_eq(st->ops->webhook_add(st, F.globex, "http://127.0.0.1:9/hook", "*",
                                          "not-a-secret", &wh), 0);
    ck_assert_int_eq(st->ops->webhook_set_enabled(st, F.globex, wh, false), 0);
    const char *ids[] = {F.gapp};
    ck_assert_int_eq(st->ops->bulk_add(st, "bulk_fair", F.globex, "reject",
                                       "{\"reason_id\":\"r1\"}", ids, 1), 0);
    /* The tarpit answers at once: the writes wait on the store only. */
    ck_assert_int_eq(ah_t_write_file(F.release, "go"), 0);
    ck_assert_int_eq(st->ops->scope_begin(st), 0); /* holds the writer until scope_end */
    atomic_store(&answered, 0);
    reader rd[HELD];
    pthread_t th[HELD];
    char keys[HELD][16], conns[HELD][16];
    for (int i = 0; i < HELD; i++) {
        rd[i] = (reader){.path = "/v1/webhooks/99999", .method = "DELETE"};
        if (i >= READS) {
            snprintf(keys[i], sizeof keys[i], "held-%d", i);
            snprintf(conns[i], sizeof conns[i], "pit%d", i % TARPITS + 1);
            rd[i] = (reader){.path = "/v1/bus/jobs.get", .conn = conns[i], .idem = keys[i],
                             .req = "{\"job_id\":\"x\"}"};
        }
        ck_assert_int_eq(pthread_create(&th[i], NULL, read_main, &rd[i]), 0);
    }
    /* On HTTP threads, two of them would hold both threads and the others
     * would never have their request line read. */
    WAIT_FOR(ah_httpd_inflight(F.core->httpd) >= HELD, "16 store reads and writes in flight");

    char *out = NULL;
    ck_assert_int_eq(http("GET", "/v1/jobs", KEY_GLOBEX, NULL, NULL, NULL, &out), 200);
    ck_assert_ptr_nonnull(strstr(out, "G-1"));
    free(out);
    ck_assert_int_eq(http("GET", "/v1/applications?limit=5", KEY_GLOBEX, NULL, NULL, NULL, &out),
                     200);
    ck_assert_ptr_nonnull(strstr(out, "GA-1"));
    free(out);
    ck_assert_int_eq(http("GET", "/v1/jobs?limit=0", KEY_GLOBEX, NULL, NULL, NULL, &out), 400);
    ck_assert_ptr_nonnull(strstr(out, "\"code\":\"invalid_request\""));
    free(out);
    ck_assert_int_eq(http("GET", "/v1/events", KEY_GLOBEX, NULL, NULL, NULL, &out), 200);
    ck_assert_ptr_nonnull(strstr(out, "\"data\""));
    free(out);
    ck_assert_int_eq(http_h("GET", "/v1/health", NULL, NULL, NULL, NULL, &out), 200);
    ck_assert_ptr_nonnull(strstr(out, "\"store\":\"connected\""));
    free(out);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", F.gjob); /* the record, and is it deleted */
    ck_assert_int_eq(http("GET", path, KEY_GLOBEX, NULL, NULL, NULL, &out), 200);
    ck_assert_ptr_nonnull(strstr(out, "G-1"));
    free(out);
    ck_assert_int_eq(http("GET", "/v1/webhooks", KEY_GLOBEX, NULL, NULL, NULL, &out), 200);
    ck_assert_ptr_nonnull(strstr(out, "127.0.0.1:9/hook"));
    free(out);
    snprintf(path, sizeof path, "/v1/webhooks/%lld/deliveries", (long long)wh);
    ck_assert_int_eq(http("GET", path, KEY_GLOBEX, NULL, NULL, NULL, &out), 200);
    ck_assert_ptr_nonnull(strstr(out, "\"data\""));
    free(out);
    ck_assert_int_eq(http("GET", "/v1/bulk/bulk_fair", KEY_GLOBEX, NULL, NULL, NULL, &out), 200);
    ck_assert_ptr_nonnull(strstr(out, "\"id\":\"bulk_fair\""));
    ck_assert_ptr_nonnull(strstr(out, F.gapp));
    free(out);
    /* A wrong key is still refused at once, on the HTTP thread. */
    ck_assert_int_eq(http("GET", "/v1/jobs", "ahk_wrong", NULL, NULL, NULL, &out), 401);
    free(out);

    /* acme's reads all still wait for the store. */
    ck_assert_int_eq(atomic_load(&answered), 0);
    ck_assert_int_ge(ah_httpd_inflight(F.core->httpd), HELD);

    ck_assert_int_eq(st->ops->scope_end(st, true), 0);
    for (int i = 0; i < HELD; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_ptr_nonnull(rd[i].body);
        ck_assert_int_eq(rd[i].status, i < READS ? 404 : 200);
        if (i < READS) {
            ck_assert_ptr_nonnull(strstr(rd[i].body, "\"code\":\"not_found\""));
        } else {
            ck_assert_str_eq(rd[i].body, "{\"data\":{\"released\":true}}");
        }
        free(rd[i].body);
    }
    ck_assert_int_eq(atomic_load(&answered), HELD);
    /* The outcomes were stored with the keys: a retry replays it, the key
     * with another body is refused. */
    ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_ACME, conns[READS], keys[READS],
                          "{\"job_id\":\"x\"}", &out), 200);
    ck_assert_str_eq(out, "{\"data\":{\"released\":true}}");
    free(out);
    ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_ACME, conns[READS], keys[READS],
                          "{\"job_id\":\"y\"}", &out), 422);
    ck_assert_ptr_nonnull(strstr(out, "\"code\":\"idempotency_key_reused\""));
    free(out);
}
END_TEST

/* An operator request over the admin socket (as the CLI sends it). */
typedef struct admin_req {
    const char *method, *path, *body;
    long status;
    char *resp;
    atomic_bool done;
} admin_req;

static void *admin_main(void *arg)
{
    admin_req *a = arg;
    char err[256];
    if (ah_admin_call(&F.core->cfg, a->method, a->path, a->body, &a->status, &a->resp, err,
                      sizeof err) != 0)
        a->status = -1;
    atomic_store(&a->done, true);
    return NULL;
}

/* Issue 13, the operators' API: the admin listener has one thread; an
 * operator request that waits for the store's writer (POST /admin/tenants)
 * waits on a bus worker, so that the listener still answers another
 * operator request meanwhile (GET /admin/recent, the console's charts).
 * Once the writer is let go, the tenant is added. */
START_TEST(test_admin_store_off_listener_thread)
{
    if (ah_t_pg()) /* a held writer is SQLite's (see the test above) */
        return;
    ah_store *st = F.core->store;
    ck_assert_int_eq(st->ops->scope_begin(st), 0); /* holds the writer until scope_end */
    admin_req w = {.method = "POST", .path = "/admin/tenants", .body = "{\"name\":\"initech\"}"};
    admin_req r = {.method = "GET", .path = "/admin/recent"};
    pthread_t tw, tr;
    ck_assert_int_eq(pthread_create(&tw, NULL, admin_main, &w), 0);
    WAIT_FOR(ah_admin_inflight(F.core) >= 1, "the tenant add in flight");
    ck_assert_int_eq(pthread_create(&tr, NULL, admin_main, &r), 0);
    /* On the listener's thread, the add would hold it: never answered. */
    WAIT_FOR(atomic_load(&r.done), "GET /admin/recent answered while the writer is held");
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(r.resp);
    ck_assert_ptr_nonnull(strstr(r.resp, "\"data\""));
    ck_assert(!atomic_load(&w.done));
    ck_assert_int_eq(st->ops->scope_end(st, true), 0);
    ck_assert_int_eq(pthread_join(tw, NULL), 0);
    ck_assert_int_eq(pthread_join(tr, NULL), 0);
    ck_assert_msg(w.status == 201, "%ld %s", w.status, w.resp != NULL ? w.resp : "");
    ck_assert_ptr_nonnull(strstr(w.resp, "initech"));
    free(w.resp);
    free(r.resp);
    ah_tenant_row t = {0};
    ck_assert_int_eq(st->ops->tenant_get(st, "initech", &t), 0);
    ah_tenant_row_free(&t);
}
END_TEST

/* The store id of a connection the fixture made. */
static int64_t conn_id(const char *tenant, const char *name)
{
    ah_conn *c = ah_conn_find(F.core, tenant, name);
    ck_assert_ptr_nonnull(c);
    int64_t id = c->id;
    ah_conn_release(c);
    return id;
}

/* Issue 13: bulk-reject?wait=true waits for its bulk job without holding a
 * thread. acme sends 4 of them (one with an Idempotency-Key) for an
 * application on a tarpit connection, whose reject hangs: the bulk worker
 * holds the first job's item there, and every request waits suspended,
 * none of them on the 2 HTTP threads nor on a bus worker: all 4 have their
 * request line read, and globex's reads and bus calls are answered
 * meanwhile. Once the tarpit is released, the jobs finish and each request
 * is answered by its job's completion. */
START_TEST(test_bulk_wait_holds_no_thread)
{
    enum { WAITS = 4 };
    ah_store *st = F.core->store;
    int64_t cid = conn_id("acme", "pit1");
    ah_record_in app = {"application", "PA-1", "2024-03-01T00:00:00Z",
                        "{\"provider_id\":\"PA-1\"}", "{\"name\":\"application PA-1\"}"};
    char *aid = NULL;
    ck_assert_int_eq(st->ops->records_upsert(st, cid, &app, 1, NULL, NULL, NULL, &aid), 0);
    ck_assert_ptr_nonnull(aid);
    char body[256];
    snprintf(body, sizeof body, "{\"application_ids\":[\"%s\"],\"reason_id\":\"r1\"}", aid);
    atomic_store(&answered, 0);
    reader rd[WAITS];
    pthread_t th[WAITS];
    for (int i = 0; i < WAITS; i++) {
        rd[i] = (reader){.path = "/v1/applications/bulk-reject?wait=true", .req = body,
                         .idem = i == 0 ? "bulk-wait-0" : NULL};
        ck_assert_int_eq(pthread_create(&th[i], NULL, read_main, &rd[i]), 0);
    }
    /* Waiting on a server thread, two of them would hold both threads and
     * the others would never have their request line read. */
    WAIT_FOR(ah_httpd_inflight(F.core->httpd) >= WAITS, "4 waiting bulk rejects in flight");
    WAIT_FOR(tarpit_inflight() == 1, "the first job's item hanging on the tarpit");

    char *out = NULL;
    ck_assert_int_eq(http("GET", "/v1/jobs", KEY_GLOBEX, NULL, NULL, NULL, &out), 200);
    ck_assert_ptr_nonnull(strstr(out, "G-1"));
    free(out);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_GLOBEX, "ats1", NULL,
                              "{\"job_id\":\"G-1\"}", &out), 200);
        free(out);
    }
    ck_assert_int_eq(atomic_load(&answered), 0);

    ck_assert_int_eq(ah_t_write_file(F.release, "go"), 0);
    for (int i = 0; i < WAITS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_ptr_nonnull(rd[i].body);
        /* 200 with the results when the job was done within the wait
         * (30 s), else 202 with its state: either names the job. */
        ck_assert_msg(rd[i].status == 200 || rd[i].status == 202, "%ld %s", rd[i].status,
                      rd[i].body);
        ck_assert_ptr_nonnull(strstr(rd[i].body, "\"id\":\"bulk_"));
        if (rd[i].status == 200)
            ck_assert_ptr_nonnull(strstr(rd[i].body, "\"succeeded\":1"));
    }
    /* The answer was stored with the key before it went out. */
    ck_assert_int_eq(http("POST", "/v1/applications/bulk-reject?wait=true", KEY_ACME, NULL,
                          "bulk-wait-0", body, &out), rd[0].status);
    ck_assert_str_eq(out, rd[0].body);
    free(out);
    for (int i = 0; i < WAITS; i++)
        free(rd[i].body);
    free(aid);
}
END_TEST

/* A bulk reject of `items` applications PB-0.. of acme's pit1 (made
 * here), started: its job id into job. */
static void bulk_reject_start(int items, char *job, size_t joblen)
{
    ah_store *st = F.core->store;
    int64_t cid = conn_id("acme", "pit1");
    size_t cap = (size_t)items * 48 + 64, n;
    char *body = malloc(cap);
    ck_assert_ptr_nonnull(body);
    n = (size_t)snprintf(body, cap, "{\"reason_id\":\"r1\",\"application_ids\":[");
    for (int i = 0; i < items; i++) {
        char rid[16], remote[64], fields[64];
        snprintf(rid, sizeof rid, "PB-%d", i);
        snprintf(remote, sizeof remote, "{\"provider_id\":\"%s\"}", rid);
        snprintf(fields, sizeof fields, "{\"name\":\"application %s\"}", rid);
        ah_record_in app = {"application", rid, "2024-03-01T00:00:00Z", remote, fields};
        char *aid = NULL;
        ck_assert_int_eq(st->ops->records_upsert(st, cid, &app, 1, NULL, NULL, NULL, &aid), 0);
        ck_assert_ptr_nonnull(aid);
        n += (size_t)snprintf(body + n, cap - n, "%s\"%s\"", i ? "," : "", aid);
        free(aid);
    }
    snprintf(body + n, cap - n, "]}");
    char *out = NULL;
    ck_assert_int_eq(http("POST", "/v1/applications/bulk-reject", KEY_ACME, NULL, NULL, body,
                          &out), 202);
    free(body);
    cJSON *j = cJSON_Parse(out);
    free(out);
    const cJSON *id = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "id");
    ck_assert(cJSON_IsString(id));
    snprintf(job, joblen, "%s", id->valuestring);
    cJSON_Delete(j);
}

/* Until bulk job `job` is done (30 s at most). */
static void bulk_wait_done(const char *job)
{
    char path[160], *out = NULL;
    snprintf(path, sizeof path, "/v1/bulk/%s", job);
    bool done = false;
    for (int waited = 0; !done; waited++) {
        ck_assert_msg(waited < 3000, "the bulk job never ended");
        ck_assert_int_eq(http("GET", path, KEY_ACME, NULL, NULL, NULL, &out), 200);
        done = strstr(out, "\"status\":\"done\"") != NULL;
        free(out);
        if (!done)
            usleep(10000);
    }
}

/* Issue 14: a bulk job's chunk that another instance ran while this one
 * was still on an earlier chunk is not run again. The job has 51 items:
 * chunk 0 (items 0-49) and chunk 1 (item 50). This instance's pass reads
 * the queued items, takes chunk 0 and hangs on item 0 (the tarpit);
 * meanwhile "another instance" claims chunk 1, runs item 50 and gives
 * the claim back (the test stores its outcome and takes no claim: none is
 * held by then). Released, the pass reaches chunk 1 with item 50 still
 * queued in its list; it must see the stored outcome and leave it, not
 * call the provider again and overwrite it. */
START_TEST(test_bulk_chunk_run_elsewhere_not_rerun)
{
    enum { ITEMS = 51 };
    ah_store *st = F.core->store;
    char job[96];
    bulk_reject_start(ITEMS, job, sizeof job);
    WAIT_FOR(tarpit_inflight() == 1, "item 0 hanging on the tarpit");
    /* Another instance ran chunk 1 meanwhile. */
    ck_assert_int_eq(st->ops->bulk_item_set(st, job, 50, "failed", "ran_elsewhere",
                                            "another instance's outcome"),
                     AH_STORE_OK);
    ck_assert_int_eq(ah_t_write_file(F.release, "go"), 0);
    bulk_wait_done(job);
    ah_bulk_item_row it;
    ck_assert_int_eq(st->ops->bulk_item_get(st, job, 50, &it), AH_STORE_OK);
    ck_assert_str_eq(it.status, "failed");
    ck_assert_str_eq(it.error_code, "ran_elsewhere");
    ah_bulk_item_row_free(&it);
    ck_assert_int_eq(st->ops->bulk_item_get(st, job, 49, &it), AH_STORE_OK);
    ck_assert_str_eq(it.status, "succeeded");
    ah_bulk_item_row_free(&it);
    ck_assert_int_eq(st->ops->bulk_item_get(st, job, ITEMS, &it), AH_STORE_NOT_FOUND);
}
END_TEST

/* Issue 14: a provider call slower than the claim's lifetime (2 s here;
 * the tarpit holds it 3 s and more) keeps its claim while it is under
 * way: another instance asking for the chunk meanwhile is refused, so it
 * cannot send the item to the provider a second time. (Before the claims'
 * keeper the claim expired 2 s into the call and was granted.) Released,
 * the call's outcome is stored under the claim it kept. */
START_TEST(test_bulk_claim_kept_through_slow_call)
{
    ah_store *st = F.core->store;
    char job[96], lease[128];
    bulk_reject_start(1, job, sizeof job);
    snprintf(lease, sizeof lease, "bulk:%s:0", job);
    WAIT_FOR(tarpit_inflight() == 1, "the item hanging on the tarpit");
    /* Two and a half lifetimes of the claim, asked every 100 ms. */
    const char *names[] = {lease};
    for (int i = 0; i < 50; i++) {
        int64_t tok = -1;
        ck_assert_int_eq(st->ops->lease_claim(st, names, 1, "another-instance", 2000, &tok),
                         AH_STORE_OK);
        ck_assert_msg(tok == 0, "%s granted to another instance %.1f s into the call", lease,
                      i / 10.0);
        usleep(100000);
    }
    ck_assert_int_eq(tarpit_inflight(), 1);
    ck_assert_int_eq(ah_t_write_file(F.release, "go"), 0);
    bulk_wait_done(job);
    ah_bulk_item_row it;
    ck_assert_int_eq(st->ops->bulk_item_get(st, job, 0, &it), AH_STORE_OK);
    ck_assert_str_eq(it.status, "succeeded");
    ah_bulk_item_row_free(&it);
}
END_TEST

/* One statement on the test's own PostgreSQL connection. */
static void pg_exec(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
}

/* Backends of the daemon's database waiting on a lock. */
static long pg_lock_waiters(PGconn *pg)
{
    PGresult *r = PQexec(pg, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                             "current_database() AND wait_event_type = 'Lock'");
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* Issue 13 on PostgreSQL, where the engine's one connection serves every
 * store call (so a busy store holds them all, globex's reads included):
 * another client holds a lock on webhook_endpoints (as a long transaction
 * or a migration of another instance would) and acme's DELETE
 * /v1/webhooks/{id} waits on it inside the server, holding the store.
 * acme's 8 writes with an Idempotency-Key (reserved in the store) and an
 * operator's POST /admin/tenants then wait too, on bus workers: the 2 HTTP
 * threads and the admin listener's one thread still answer what needs no
 * store (a wrong key, a malformed Idempotency-Key, GET /v1/plugins, GET
 * /admin/recent). Once the lock goes, every one of them is answered. */
START_TEST(test_store_busy_pg)
{
    enum { HELD = 9 };
    if (!ah_t_pg())
        return;
    char *url = ah_t_store_url(F.dir);
    ck_assert_ptr_nonnull(url);
    PGconn *pg = PQconnectdb(url);
    free(url);
    ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "%s", PQerrorMessage(pg));
    pg_exec(pg, "BEGIN");
    pg_exec(pg, "LOCK TABLE webhook_endpoints IN ACCESS EXCLUSIVE MODE");
    ck_assert_int_eq(ah_t_write_file(F.release, "go"), 0); /* the tarpit answers at once */
    atomic_store(&answered, 0);
    reader rd[HELD];
    pthread_t th[HELD];
    char keys[HELD][16], conns[HELD][16];
    rd[0] = (reader){.path = "/v1/webhooks/99999", .method = "DELETE"};
    ck_assert_int_eq(pthread_create(&th[0], NULL, read_main, &rd[0]), 0);
    /* The store is held once a call waits on the lock in the server. */
    WAIT_FOR(pg_lock_waiters(pg) >= 1, "a store call waiting on the lock");
    for (int i = 1; i < HELD; i++) {
        snprintf(keys[i], sizeof keys[i], "pg-held-%d", i);
        snprintf(conns[i], sizeof conns[i], "pit%d", i % TARPITS + 1);
        rd[i] = (reader){.path = "/v1/bus/jobs.get", .conn = conns[i], .idem = keys[i],
                         .req = "{\"job_id\":\"x\"}"};
        ck_assert_int_eq(pthread_create(&th[i], NULL, read_main, &rd[i]), 0);
    }
    admin_req w = {.method = "POST", .path = "/admin/tenants", .body = "{\"name\":\"initech\"}"};
    pthread_t tw;
    ck_assert_int_eq(pthread_create(&tw, NULL, admin_main, &w), 0);
    WAIT_FOR(ah_httpd_inflight(F.core->httpd) >= HELD, "9 store calls in flight");
    WAIT_FOR(ah_admin_inflight(F.core) >= 1, "the tenant add in flight");

    char *out = NULL;
    ck_assert_int_eq(http("GET", "/v1/plugins", KEY_GLOBEX, NULL, NULL, NULL, &out), 200);
    ck_assert_ptr_nonnull(strstr(out, "tarpit"));
    free(out);
    ck_assert_int_eq(http("GET", "/v1/jobs", "ahk_wrong", NULL, NULL, NULL, &out), 401);
    free(out);
    ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_GLOBEX, "ats1", "not valid",
                          "{\"job_id\":\"G-1\"}", &out), 400);
    ck_assert_ptr_nonnull(strstr(out, "Idempotency-Key"));
    free(out);
    admin_req r = {.method = "GET", .path = "/admin/recent"};
    pthread_t tr;
    ck_assert_int_eq(pthread_create(&tr, NULL, admin_main, &r), 0);
    WAIT_FOR(atomic_load(&r.done), "GET /admin/recent answered while the store is held");
    ck_assert_int_eq(pthread_join(tr, NULL), 0);
    ck_assert_int_eq(r.status, 200);
    free(r.resp);
    ck_assert_int_eq(atomic_load(&answered), 0);
    ck_assert(!atomic_load(&w.done));

    pg_exec(pg, "COMMIT");
    PQfinish(pg);
    for (int i = 0; i < HELD; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_ptr_nonnull(rd[i].body);
        ck_assert_int_eq(rd[i].status, i == 0 ? 404 : 200);
        if (i > 0)
            ck_assert_str_eq(rd[i].body, "{\"data\":{\"released\":true}}");
        free(rd[i].body);
    }
    ck_assert_int_eq(pthread_join(tw, NULL), 0);
    ck_assert_msg(w.status == 201, "%ld %s", w.status, w.resp != NULL ? w.resp : "");
    free(w.resp);
    /* The keys' requests were stored with them: another body is refused. */
    ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_ACME, conns[1], keys[1],
                          "{\"job_id\":\"y\"}", &out), 422);
    free(out);
}
END_TEST

/* [core] tenant_workers sets the share: one worker for acme here. */
START_TEST(test_configured_share)
{
    atomic_store(&answered, 0);
    hanger hg[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        hg[i] = (hanger){.i = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, hang_main, &hg[i]), 0);
    }
    WAIT_FOR(ah_httpd_inflight(F.core->httpd) >= 6, "6 requests in flight");
    WAIT_FOR(tarpit_inflight() == 1, "the tarpit holding one worker");
    char *out = NULL;
    ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_GLOBEX, "ats1", NULL,
                          "{\"job_id\":\"G-1\"}", &out), 200);
    free(out);
    ck_assert_int_eq(tarpit_inflight(), 1);
    ck_assert_int_eq(atomic_load(&answered), 0);
    ck_assert_int_eq(ah_t_write_file(F.release, "go"), 0);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(hg[i].status, 200);
        free(hg[i].body);
    }
}
END_TEST

/* A provider that holds its answer until the test lets it go (GET /hold
 * of a simulator with a thread per connection). */
static atomic_int hold_arrived, hold_go;

static void hold_handler(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    (void)arg;
    (void)req;
    atomic_fetch_add(&hold_arrived, 1);
    for (int i = 0; i < 120000 && !atomic_load(&hold_go); i++)
        usleep(1000);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddBoolToObject(b, "held", 1);
    ah_sim_json(resp, 200, b);
}

/* A call of `key`'s tenant on connection `conn` whose body asks the
 * provider at /hold for its answer. */
typedef struct holder {
    char key[64];
    char conn[16];
    char body[256];
    long status;
    char *out;
} holder;

static void *hold_main(void *arg)
{
    holder *h = arg;
    h->status = http("POST", "/v1/bus/jobs.get", h->key, h->conn, NULL, h->body, &h->out);
    atomic_fetch_add(&answered, 1);
    return NULL;
}

static void holder_init(holder *h, const char *key, const char *conn, const ah_sim *sim)
{
    memset(h, 0, sizeof *h);
    snprintf(h->key, sizeof h->key, "%s", key);
    snprintf(h->conn, sizeof h->conn, "%s", conn);
    snprintf(h->body, sizeof h->body,
             "{\"do\":\"http\",\"url\":\"%s/hold\",\"timeout_ms\":600000}", ah_sim_url(sim));
}

/* A provider whose /hold holds every request until hold_go; the counters
 * reset. */
static ah_sim *hold_sim_start(void)
{
    atomic_store(&answered, 0);
    atomic_store(&hold_arrived, 0);
    atomic_store(&hold_go, 0);
    ah_sim_opts so = {.thread_per_connection = true};
    ah_sim *sim = ah_sim_new(&so);
    ck_assert_ptr_nonnull(sim);
    ck_assert_int_eq(ah_sim_route(sim, "GET", "/hold", hold_handler, NULL), 0);
    ck_assert_int_eq(ah_sim_start(sim), 0);
    return sim;
}

/* `tenants` tenants (PREFIX0, ...), each with `per` connections of
 * fixture_faulty (slow1, ...), and one call on each connection, started,
 * that holds at sim's /hold: tenants * per calls, calls[i] of tenant
 * i % tenants. The connections are loaded (with any added before). */
static void hold_calls_start(const char *prefix, int tenants, int per, const ah_sim *sim,
                             holder *calls, pthread_t *th)
{
    for (int t = 0; t < tenants; t++) {
        char name[32], key[64];
        snprintf(name, sizeof name, "%s%d", prefix, t);
        snprintf(key, sizeof key, "ahk_%s_key_%02d_0123456789", prefix, t);
        int64_t tid = add_tenant(&F, name, key);
        for (int k = 1; k <= per; k++) {
            snprintf(name, sizeof name, "slow%d", k);
            add_conn(&F, tid, "fixture_faulty", name);
        }
    }
    ck_assert_int_eq(ah_conns_reload(F.core), 0);
    for (int i = 0; i < tenants * per; i++) {
        char key[64], conn[16];
        snprintf(key, sizeof key, "ahk_%s_key_%02d_0123456789", prefix, i % tenants);
        snprintf(conn, sizeof conn, "slow%d", i / tenants + 1);
        holder_init(&calls[i], key, conn, sim);
        ck_assert_int_eq(pthread_create(&th[i], NULL, hold_main, &calls[i]), 0);
    }
}

/* A call waiting for its provider's answer (the host's HTTP client: a slow
 * provider, or a retry's sleep) holds no share of its tenant's workers:
 * with acme's share at one worker, acme's call hangs on a provider that
 * holds its answer, and meanwhile acme's own store reads and its other
 * connection's calls are answered; then the provider answers and so does
 * the call. (Before, acme's one share was the hanging call's until it
 * ended.) */
START_TEST(test_provider_wait_holds_no_share)
{
    ah_sim *sim = hold_sim_start();
    add_conn(&F, F.acme, "fixture_faulty", "slow");
    add_conn(&F, F.acme, "fixture_faulty", "other");
    ck_assert_int_eq(ah_conns_reload(F.core), 0);

    holder h;
    holder_init(&h, KEY_ACME, "slow", sim);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, hold_main, &h), 0);
    WAIT_FOR(atomic_load(&hold_arrived) == 1, "the call waiting for its provider");
    char *out = NULL;
    ck_assert_int_eq(http("GET", "/v1/jobs", KEY_ACME, NULL, NULL, NULL, &out), 200);
    free(out);
    out = NULL;
    ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_ACME, "other", NULL,
                          "{\"do\":\"ok\"}", &out), 200);
    free(out);
    /* Both answered while the provider still held its answer. */
    ck_assert_int_eq(atomic_load(&answered), 0);
    ck_assert_int_eq(atomic_load(&hold_arrived), 1);
    /* Operators see the waiting call (/metrics). */
    char *m = ah_metrics_render(F.core);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(strstr(m, "\natshub_bus_calls_waiting 1\n"));
    ck_assert_ptr_nonnull(strstr(m, "\natshub_bus_threads "));
    free(m);
    atomic_store(&hold_go, 1);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(h.status, 200);
    ck_assert_ptr_nonnull(h.out);
    ck_assert_ptr_nonnull(strstr(h.out, "held"));
    free(h.out);
    ah_sim_stop(sim);
}
END_TEST

/* A provider's outage: every tenant's calls to it wait. Ten tenants hang
 * eight calls each on one provider, each call on a connection of its own
 * (a connection's calls run one at a time): 80, more than the bus's 4
 * workers and 64 spare threads together; [core] provider_threads (16 by
 * default) of them wait for it, the others are answered at once, 503
 * upstream_unavailable, nothing sent; another tenant's call to another
 * provider is answered meanwhile, and once the provider answers, so are
 * the 16. */
#define OUTAGE_TENANTS 10
#define OUTAGE_CALLS (OUTAGE_TENANTS * 8)
#define OUTAGE_WAITING 16

START_TEST(test_provider_outage_holds_part_of_the_threads)
{
    ah_sim *sim = hold_sim_start();
    static holder calls[OUTAGE_CALLS];
    pthread_t th[OUTAGE_CALLS];
    add_conn(&F, F.globex, "fixture_faulty", "fine");
    hold_calls_start("outage", OUTAGE_TENANTS, OUTAGE_CALLS / OUTAGE_TENANTS, sim, calls, th);
    /* Every call either waits for the provider or was answered. */
    WAIT_FOR(atomic_load(&hold_arrived) + atomic_load(&answered) == OUTAGE_CALLS,
             "every call of the outage waiting or answered");
    ck_assert_int_eq(atomic_load(&hold_arrived), OUTAGE_WAITING);
    /* Another tenant, another provider: answered while all that waits. */
    char *out = NULL;
    ck_assert_int_eq(http("POST", "/v1/bus/jobs.get", KEY_GLOBEX, "fine", NULL, "{\"do\":\"ok\"}",
                          &out), 200);
    free(out);
    ck_assert_int_eq(atomic_load(&hold_arrived), OUTAGE_WAITING);
    char *m = ah_metrics_render(F.core);
    ck_assert_ptr_nonnull(m);
    char line[64];
    snprintf(line, sizeof line, "\natshub_bus_calls_waiting %d\n", OUTAGE_WAITING);
    ck_assert_msg(strstr(m, line) != NULL, "%s", m);
    free(m);
    atomic_store(&hold_go, 1);
    int held = 0, refused = 0;
    for (int i = 0; i < OUTAGE_CALLS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        holder *c = &calls[i];
        ck_assert_ptr_nonnull(c->out);
        if (c->status == 200) {
            ck_assert_ptr_nonnull(strstr(c->out, "held"));
            held++;
        } else {
            ck_assert_int_eq(c->status, 503);
            ck_assert_msg(strstr(c->out, "\"upstream_unavailable\"") != NULL &&
                              strstr(c->out, "wait for") != NULL,
                          "%s", c->out);
            refused++;
        }
        free(c->out);
    }
    ck_assert_int_eq(held, OUTAGE_WAITING);
    ck_assert_int_eq(refused, OUTAGE_CALLS - OUTAGE_WAITING);
    /* Nothing more reached the provider than waited for it. */
    ck_assert_int_eq(atomic_load(&hold_arrived), OUTAGE_WAITING);
    ah_sim_stop(sim);
}
END_TEST

/* A plugin process serves 32 calls at once, one thread each. With no
 * [core] provider_threads limit, five tenants' 40 calls (eight each, their
 * most in flight) hang on one provider through the isolated plugin
 * (call_timeout_ms 2 s; the time a call waits for its provider does not
 * count): 32 are sent to the process and 8 wait in the daemon, unsent,
 * telling the bus (all 40 count as waiting). Before, the 8 waited in the
 * process for a thread while their deadlines ran out, and the process was
 * killed as hung, every call in flight answered plugin_crashed. Past
 * those deadlines nothing crashed, and once the provider answers all 40
 * are answered 200. In process, the 40 wait on the bus's threads. */
#define ROOM_TENANTS 5
#define ROOM_CALLS (ROOM_TENANTS * 8)
/* ROOM_CALLS calls of ROOM_TENANTS tenants hanging on sim's provider
 * through fixture_faulty: started, and waited for until those the plugin
 * has room for reached the provider (all in process, AH_FRAME_CALLS_MAX
 * isolated): how many. */
static int room_calls_start(const char *prefix, ah_sim *sim, holder *calls, pthread_t *th)
{
    hold_calls_start(prefix, ROOM_TENANTS, ROOM_CALLS / ROOM_TENANTS, sim, calls, th);
    const char *iso = getenv("AH_TEST_ISOLATION");
    bool in_process = iso != NULL && strcmp(iso, "in_process") == 0;
    int sent = in_process ? ROOM_CALLS : AH_FRAME_CALLS_MAX;
    WAIT_FOR(atomic_load(&hold_arrived) == sent, "the calls the process has room for");
    return sent;
}

START_TEST(test_process_room_not_taken_for_a_hang)
{
    ah_sim *sim = hold_sim_start();
    static holder calls[ROOM_CALLS];
    pthread_t th[ROOM_CALLS];
    int sent = room_calls_start("room", sim, calls, th);
    int blocked = 0, threads = 0;
    WAIT_FOR((ah_bus_stats(F.core->bus, &blocked, &threads), blocked == ROOM_CALLS),
             "every call waiting, at the provider or for the process");
    /* Past the calls' deadline (2 s): a call waiting for a thread in the
     * process would have been taken for a hang by now. */
    sleep(3);
    ck_assert_int_eq(atomic_load(&answered), 0);
    ck_assert_int_eq(atomic_load(&hold_arrived), sent);
    atomic_store(&hold_go, 1);
    for (int i = 0; i < ROOM_CALLS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_msg(calls[i].status == 200, "%ld %s", calls[i].status,
                      calls[i].out != NULL ? calls[i].out : "");
        free(calls[i].out);
    }
    ck_assert_int_eq(atomic_load(&hold_arrived), ROOM_CALLS);
    ah_generation *gen = ah_registry_acquire(F.core->registry, "fixture_faulty");
    ck_assert_ptr_nonnull(gen);
    if (gen->iso != NULL) {
        unsigned long crashes = 1, restarts = 1;
        ah_isolate_counts(gen->iso, &crashes, &restarts);
        ck_assert_uint_eq(crashes, 0);
    }
    ah_generation_release(gen);
    ah_sim_stop(sim);
}
END_TEST

/* The calls waiting in the daemon for room in the plugin's process wait
 * no longer than their callers ([core] request_timeout_ms, 1 s here): past
 * it they leave, never sent, though room comes later. Before, once the
 * provider answered the 32 calls in the process, the 8 that had waited
 * were sent, their callers long answered 504. */
START_TEST(test_process_room_wait_ends_with_its_caller)
{
    /* A plugin process's room: nothing to wait for in process (where the
     * 40 calls wait on the bus's threads, and under valgrind some pass
     * their 1 s deadline waiting for a worker, never sent: the test of
     * that is test_deadline_before_start_never_runs). */
    const char *mode = getenv("AH_TEST_ISOLATION");
    if (mode != NULL && strcmp(mode, "in_process") == 0)
        return;
    ah_sim *sim = hold_sim_start();
    static holder calls[ROOM_CALLS];
    pthread_t th[ROOM_CALLS];
    int sent = room_calls_start("late", sim, calls, th);
    /* Every caller answered at its deadline (504, or 503 not sent). */
    WAIT_FOR(atomic_load(&answered) == ROOM_CALLS, "every caller answered");
    int blocked = 0, threads = 0;
    WAIT_FOR((ah_bus_stats(F.core->bus, &blocked, &threads), blocked == sent),
             "the calls waiting for room gone");
    atomic_store(&hold_go, 1);
    WAIT_FOR((ah_bus_stats(F.core->bus, &blocked, &threads), blocked == 0),
             "the calls in the process done");
    ck_assert_int_eq(atomic_load(&hold_arrived), sent);
    for (int i = 0; i < ROOM_CALLS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_msg(calls[i].status == 504 || calls[i].status == 503, "%ld %s",
                      calls[i].status, calls[i].out != NULL ? calls[i].out : "");
        free(calls[i].out);
    }
    ah_sim_stop(sim);
}
END_TEST

static Suite *fairness_suite(void)
{
    Suite *s = suite_create("fairness");
    TCase *tc = tcase_create("tenants");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_other_tenant_served_while_one_hangs);
    tcase_add_test(tc, test_stop_answers_hanging_calls);
    tcase_add_test(tc, test_stop_keeps_key_of_running_write);
    tcase_add_test(tc, test_orphaned_reservation_answers_unknown);
    tcase_add_test(tc, test_routes_hang_off_http_threads);
    tcase_add_test(tc, test_unnamed_route_calls_held_to_a_share);
    tcase_add_test(tc, test_store_reads_off_http_threads);
    tcase_add_test(tc, test_admin_store_off_listener_thread);
    tcase_add_test(tc, test_bulk_wait_holds_no_thread);
    tcase_add_test(tc, test_bulk_chunk_run_elsewhere_not_rerun);
    tcase_add_test(tc, test_store_busy_pg);
    tcase_add_test(tc, test_provider_outage_holds_part_of_the_threads);
    suite_add_tcase(s, tc);
    TCase *tc1 = tcase_create("configured");
    tcase_add_checked_fixture(tc1, setup_share1, teardown);
    tcase_set_timeout(tc1, 240);
    tcase_add_test(tc1, test_configured_share);
    tcase_add_test(tc1, test_provider_wait_holds_no_share);
    suite_add_tcase(s, tc1);
    TCase *tct = tcase_create("short deadlines");
    tcase_add_checked_fixture(tct, setup_short_timeout, teardown);
    tcase_set_timeout(tct, 240);
    tcase_add_test(tct, test_deadline_before_start_never_runs);
    suite_add_tcase(s, tct);
    TCase *tcr = tcase_create("process room");
    tcase_add_checked_fixture(tcr, setup_room, teardown);
    tcase_set_timeout(tcr, 240);
    tcase_add_test(tcr, test_process_room_not_taken_for_a_hang);
    suite_add_tcase(s, tcr);
    TCase *tcrs = tcase_create("process room, deadlines");
    tcase_add_checked_fixture(tcrs, setup_room_short, teardown);
    tcase_set_timeout(tcrs, 240);
    tcase_add_test(tcrs, test_process_room_wait_ends_with_its_caller);
    suite_add_tcase(s, tcrs);
    /* The same stop with handlers on the HTTP threads: the key's outcome
     * is stored by the after hook there (before, a 503 released it). */
    TCase *tci = tcase_create("inline routes");
    tcase_add_checked_fixture(tci, setup_inline, teardown);
    tcase_set_timeout(tci, 60);
    tcase_add_test(tci, test_stop_keeps_key_of_running_write);
    suite_add_tcase(s, tci);

    TCase *tc2 = tcase_create("short claims");
    tcase_add_checked_fixture(tc2, setup_short_claims, teardown);
    tcase_set_timeout(tc2, 240);
    tcase_add_test(tc2, test_bulk_claim_kept_through_slow_call);
    suite_add_tcase(s, tc2);
    return s;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(fairness_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
