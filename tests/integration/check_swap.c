/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Operators and hot swapping: a plugin swapped 20 times under load without
 * a failed request, broken versions refused while the old one serves,
 * SIGHUP reconciling [plugins] on a running daemon, connections disabled
 * and re-enabled through the admin API with immediate effect, SIGTERM
 * draining a loaded daemon, and the SDK installed into a prefix, a plugin
 * built from it out of the tree, checked and hot-loaded.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sqlite3.h>

#include "admin.h"
#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "rest.h"
#include "sync.h"
#include "tracking.h"
#include "events.h"
#include "ops.h"
#include "support/harness.h"

typedef struct env {
    char *dir;
    char *ini;
    ah_core *core;
} env;

static void fixture(char *out, size_t len, const char *file)
{
    snprintf(out, len, "%s/%s", ah_t_env("AH_FIXTURE_DIR"), file);
}

/* An in-process host with fixture_good (v1) and one connection acme/main. */
static void env_open(env *e, bool start)
{
    char extra[1024], v1[512];
    fixture(v1, sizeof v1, "good_v1.so");
    /* In process: these tests watch the daemon map and unmap the plugin's
     * files (check_isolate swaps isolated plugins). */
    snprintf(extra, sizeof extra, "fixture_good = %s\n[plugin.fixture_good]\nisolation = in_process\n",
             v1);
    e->dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(e->dir);
    e->ini = ah_t_write_ini(e->dir, extra);
    ck_assert_ptr_nonnull(e->ini);
    ah_config cfg;
    char err[1024];
    ck_assert_msg(ah_config_load(e->ini, &cfg, err, sizeof err) == 0, "%s", err);
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    e->core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ck_assert_msg(e->core != NULL, "%s", err);
    ah_ops_err oe;
    cJSON *out = NULL;
    ck_assert_msg(ah_ops_tenant_add(e->core, "acme", &out, &oe) == 0, "%s", oe.msg);
    cJSON_Delete(out);
    out = NULL;
    ck_assert_msg(ah_ops_connection_add(e->core, "acme", "fixture_good", "main", NULL, &out, &oe) == 0,
                  "%s", oe.msg);
    cJSON_Delete(out);
    ck_assert_int_eq(ah_conns_reload(e->core), 0);
    if (start)
        ck_assert_msg(ah_daemon_start(e->core, err, sizeof err) == 0, "%s", err);
}

static void env_close(env *e)
{
    ah_daemon_close(e->core);
    ah_t_rmrf(e->dir);
    free(e->dir);
    free(e->ini);
}

/* jobs.get on acme/main: the version that answered, or "" on failure. */
static int version_of(ah_core *core, char *out, size_t len)
{
    ah_reply r;
    memset(&r, 0, sizeof r);
    ah_core_request(core, "acme", "main", "jobs.get", cJSON_CreateObject(), &r);
    const cJSON *v = r.ok ? cJSON_GetObjectItem(r.body, "version") : NULL;
    snprintf(out, len, "%s", cJSON_IsString(v) ? v->valuestring : "");
    int status = r.ok ? 200 : r.http_status;
    if (!r.ok)
        snprintf(out, len, "%s", r.code[0] ? r.code : "error");
    ah_reply_free(&r);
    return status;
}

/* Mappings of fixture_good files (the originals or private copies). */
static int good_mappings(char names[][256], int max)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        char *p = strchr(line, '/');
        if (p == NULL || (strstr(p, "good_v") == NULL))
            continue;
        p[strcspn(p, "\n")] = '\0';
        bool seen = false;
        for (int i = 0; i < n; i++)
            seen |= strcmp(names[i], p) == 0;
        if (!seen && n < max)
            snprintf(names[n++], 256, "%s", p);
    }
    fclose(f);
    return n;
}

/* --- load + 20 swaps ------------------------------------------------------ */

typedef struct load {
    ah_core *core;
    atomic_bool stop;
    atomic_long requests, failures, v1, v2;
    char last_failure[256];
} load;

static void *load_main(void *arg)
{
    load *l = arg;
    while (!atomic_load(&l->stop)) {
        char v[64];
        int st = version_of(l->core, v, sizeof v);
        atomic_fetch_add(&l->requests, 1);
        if (st != 200) {
            atomic_fetch_add(&l->failures, 1);
            snprintf(l->last_failure, sizeof l->last_failure, "%d %s", st, v);
        } else if (strcmp(v, "1.0.0") == 0) {
            atomic_fetch_add(&l->v1, 1);
        } else if (strcmp(v, "2.0.0") == 0) {
            atomic_fetch_add(&l->v2, 1);
        }
    }
    return NULL;
}

START_TEST(test_swap_under_load)
{
    env e;
    env_open(&e, false);
    load l = {.core = e.core};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, load_main, &l), 0);
    char v1[512], v2[512];
    fixture(v1, sizeof v1, "good_v1.so");
    fixture(v2, sizeof v2, "good_v2.so");
    for (int i = 0; i < 20; i++) {
        usleep(20 * 1000);
        ah_ops_err oe;
        cJSON *out = NULL;
        ck_assert_msg(ah_ops_plugin_reload(e.core, "fixture_good", i % 2 == 0 ? v2 : v1, &out, &oe) == 0,
                      "swap %d: %s", i, oe.msg);
        ck_assert_int_eq(cJSON_GetObjectItem(out, "generation")->valueint, i + 2);
        cJSON_Delete(out);
    }
    usleep(20 * 1000);
    atomic_store(&l.stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ck_assert_msg(atomic_load(&l.failures) == 0, "%ld of %ld requests failed (last: %s)",
                  atomic_load(&l.failures), atomic_load(&l.requests), l.last_failure);
    ck_assert_int_gt(atomic_load(&l.v1), 0);
    ck_assert_int_gt(atomic_load(&l.v2), 0);

    /* Old generations are released: only the current one is still mapped. */
    ah_ops_retire_contexts(e.core);
    char names[8][256];
    int n = good_mappings(names, 8);
    ck_assert_msg(n == 1, "%d fixture_good files still mapped (first: %s)", n, n > 0 ? names[0] : "");
    cJSON *list = ah_core_plugins_json(e.core, "fixture_good");
    const cJSON *p = cJSON_GetArrayItem(list, 0);
    ck_assert_int_eq(cJSON_GetObjectItem(p, "generation")->valueint, 21);
    ck_assert_str_eq(cJSON_GetObjectItem(p, "version")->valuestring, "1.0.0");
    ck_assert_int_eq(cJSON_GetObjectItem(p, "inflight")->valueint, 0);
    cJSON_Delete(list);
    env_close(&e);
}
END_TEST

START_TEST(test_broken_swap_keeps_old_version)
{
    env e;
    env_open(&e, false);
    char path[512], v[64];
    ck_assert_int_eq(version_of(e.core, v, sizeof v), 200);
    ck_assert_str_eq(v, "1.0.0");
    static const struct {
        const char *file, *why;
    } broken[] = {{"abi_major.so", "ABI"}, {"init_fails_good.so", "init failed"},
                  {"no_such_file.so", "cannot open"}};
    for (size_t i = 0; i < 3; i++) {
        fixture(path, sizeof path, broken[i].file);
        ah_ops_err oe;
        cJSON *out = NULL;
        ck_assert_int_eq(ah_ops_plugin_reload(e.core, "fixture_good", path, &out, &oe), -1);
        ck_assert_ptr_null(out);
        ck_assert_msg(strstr(oe.msg, broken[i].why) != NULL, "%s", oe.msg);
        ck_assert_msg(strstr(oe.msg, "keeps serving") != NULL, "%s", oe.msg);
        ck_assert_int_eq(version_of(e.core, v, sizeof v), 200);
        ck_assert_str_eq(v, "1.0.0");
    }
    cJSON *list = ah_core_plugins_json(e.core, "fixture_good");
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "generation")->valueint, 1);
    cJSON_Delete(list);
    env_close(&e);
}
END_TEST

/* --- the admin API in process: enable / disable ----------------------- */

static long admin(env *e, const char *method, const char *path, const char *body, cJSON **reply)
{
    char err[1024], *text = NULL;
    long status = 0;
    int rc = ah_admin_call(&e->core->cfg, method, path, body, &status, &text, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    if (reply != NULL)
        *reply = cJSON_Parse(text);
    free(text);
    return status;
}

/* A plugin's routes share the public listener with the REST API: one on
 * the host's own paths (/v1/health, a prefix over /v1/bus/) or on a path
 * another plugin serves is refused at load, saying why, and the route it
 * would have taken keeps its owner. The same plugin's next generation
 * keeps its own routes. */
static long get_public(env *e, const char *method, const char *path, char **body)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)ah_httpd_port(e->core->httpd),
             path);
    return ah_t_http(method, url, NULL, NULL, body);
}

START_TEST(test_plugin_routes_stay_theirs)
{
    env e;
    env_open(&e, true);
    char path[512];
    cJSON *out = NULL;
    ah_ops_err oe;
    fixture(path, sizeof path, "bad_descriptor_ok.so");
    ck_assert_msg(ah_ops_plugin_reload(e.core, "fixture_bad_descriptor", path, &out, &oe) == 0,
                  "%s", oe.msg);
    cJSON_Delete(out);
    out = NULL;
    long mine = get_public(&e, "GET", "/fixture/ok", NULL);
    ck_assert_int_ne(mine, 404);
    char *health = NULL;
    ck_assert_int_eq(get_public(&e, "GET", "/v1/health", &health), 200);

    /* Another plugin on the same path. */
    fixture(path, sizeof path, "route_twin.so");
    ck_assert_int_eq(ah_ops_plugin_reload(e.core, "fixture_twin", path, &out, &oe), -1);
    ck_assert_msg(strstr(oe.msg, "route GET /fixture/ok is already served by plugin "
                                 "'fixture_bad_descriptor'") != NULL,
                  "%s", oe.msg);
    /* The host's own paths, as a new generation of a loaded plugin. */
    static const char *const host[] = {"route_host_exact.so", "route_host_prefix.so",
                                       "route_host_root.so", "route_host_tmpl.so"};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) {
        fixture(path, sizeof path, host[i]);
        ck_assert_int_eq(ah_ops_plugin_reload(e.core, "fixture_bad_descriptor", path, &out, &oe),
                         -1);
        ck_assert_msg(strstr(oe.msg, "host's own /v1 paths") != NULL, "%s: %s", host[i], oe.msg);
    }
    /* Nothing moved: the host answers its paths, the first plugin its own. */
    char *again = NULL;
    ck_assert_int_eq(get_public(&e, "GET", "/v1/health", &again), 200);
    ck_assert_str_eq(again, health);
    free(again);
    again = NULL;
    ck_assert_int_eq(get_public(&e, "POST", "/v1/bus/jobs.get", &again), 401);
    free(again);
    ck_assert_int_eq(get_public(&e, "GET", "/fixture/ok", NULL), mine);
    /* Its own next generation keeps the route. */
    fixture(path, sizeof path, "bad_descriptor_ok.so");
    ck_assert_msg(ah_ops_plugin_reload(e.core, "fixture_bad_descriptor", path, &out, &oe) == 0,
                  "%s", oe.msg);
    cJSON_Delete(out);
    ck_assert_int_eq(get_public(&e, "GET", "/fixture/ok", NULL), mine);
    free(health);
    env_close(&e);
}
END_TEST

START_TEST(test_admin_disable_enable)
{
    env e;
    env_open(&e, true);
    char v[64];
    ck_assert_int_eq(version_of(e.core, v, sizeof v), 200);
    ck_assert_int_eq(admin(&e, "POST", "/admin/connections/acme/main/disable", NULL, NULL), 200);
    /* The next request: no waiting for the ticker. */
    ck_assert_int_eq(version_of(e.core, v, sizeof v), 409);
    ck_assert_str_eq(v, "connection_disabled");
    ck_assert_int_eq(admin(&e, "POST", "/admin/connections/acme/main/enable", NULL, NULL), 200);
    ck_assert_int_eq(version_of(e.core, v, sizeof v), 200);

    cJSON *reply = NULL;
    ck_assert_int_eq(admin(&e, "GET", "/admin/connections?tenant=acme", NULL, &reply), 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(reply, "data")), 1);
    cJSON_Delete(reply);
    ck_assert_int_eq(admin(&e, "POST", "/admin/connections/acme/nope/disable", NULL, &reply), 404);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(reply, "error"), "code")->valuestring,
                     "not_found");
    cJSON_Delete(reply);
    ck_assert_int_eq(admin(&e, "POST", "/admin/tenants", "{\"name\":\"beta\"}", &reply), 201);
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(reply, "data"), "api_key"));
    cJSON_Delete(reply);

    /* The instances on the store (issue 14): this one, registered. */
    ck_assert_int_eq(admin(&e, "GET", "/admin/instances", NULL, &reply), 200);
    const cJSON *insts = cJSON_GetObjectItem(reply, "data");
    ck_assert_int_eq(cJSON_GetArraySize(insts), 1);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(insts, 0), "id")->valuestring,
                     e.core->instance);
    ck_assert(cJSON_IsArray(cJSON_GetObjectItem(cJSON_GetArrayItem(insts, 0), "leases")));
    cJSON_Delete(reply);

    /* Any bus request through the admin API (the operator's `atshub call`). */
    ck_assert_int_eq(admin(&e, "POST", "/admin/connections/acme/main/call/jobs.get",
                           "{\"job_id\":\"A-1\"}", &reply), 200);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(reply, "data"), "version")->valuestring,
                     "1.0.0");
    cJSON_Delete(reply);
    ck_assert_int_eq(admin(&e, "POST", "/admin/connections/acme/main/call/no.such", "{}", &reply),
                     404);
    cJSON_Delete(reply);
    ck_assert_int_eq(admin(&e, "POST", "/admin/connections/acme/main/call/applications.reject",
                           "{}", &reply), 501);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(reply, "error"), "code")->valuestring,
                     "unsupported_capability");
    cJSON_Delete(reply);

    /* A swap through the admin API; a broken one answers why. */
    char path[512], body[700];
    fixture(path, sizeof path, "good_v2.so");
    snprintf(body, sizeof body, "{\"path\":\"%s\"}", path);
    ck_assert_int_eq(admin(&e, "POST", "/admin/plugins/fixture_good/reload", body, NULL), 200);
    ck_assert_int_eq(version_of(e.core, v, sizeof v), 200);
    ck_assert_str_eq(v, "2.0.0");
    fixture(path, sizeof path, "abi_major.so");
    snprintf(body, sizeof body, "{\"path\":\"%s\"}", path);
    ck_assert_int_eq(admin(&e, "POST", "/admin/plugins/fixture_good/reload", body, &reply), 422);
    const char *msg = cJSON_GetObjectItem(cJSON_GetObjectItem(reply, "error"), "message")->valuestring;
    ck_assert_msg(strstr(msg, "ABI") != NULL, "%s", msg);
    cJSON_Delete(reply);

    /* Metrics in Prometheus text. */
    char err[1024], *text = NULL;
    long status = 0;
    ck_assert_int_eq(ah_admin_call(&e.core->cfg, "GET", "/metrics", NULL, &status, &text, err,
                                   sizeof err), 0);
    ck_assert_int_eq(status, 200);
    ck_assert_ptr_nonnull(strstr(text, "atshub_plugin_calls_total{plugin=\"fixture_good\",topic=\"jobs.get\",result=\"ok\"}"));
    ck_assert_ptr_nonnull(strstr(text, "atshub_plugin_swaps_total{plugin=\"fixture_good\",result=\"failed\"} 1"));
    ck_assert_ptr_nonnull(strstr(text, "atshub_plugin_generation{plugin=\"fixture_good\",version=\"2.0.0\"} 2"));
    ck_assert_ptr_nonnull(strstr(text, "atshub_bus_queue_depth "));
    free(text);
    env_close(&e);
}
END_TEST

/* --- the daemon as a child process ---------------------------------------- */

typedef struct daemon_env {
    char *dir;
    char *ini;
    char atshub[512];
    pid_t pid;
    int errfd;
    int port;
} daemon_env;

static void daemon_start(daemon_env *d, const char *extra)
{
    d->dir = ah_t_tmpdir();
    d->ini = ah_t_write_ini(d->dir, extra);
    ck_assert_ptr_nonnull(d->ini);
    char *text = ah_t_read_file(d->ini, NULL);
    char *lvl = strstr(text, "log_level = warn");
    memcpy(lvl, "log_level = info", 16);
    ck_assert_int_eq(ah_t_write_file(d->ini, text), 0);
    free(text);
    snprintf(d->atshub, sizeof d->atshub, "%s/atshub", ah_t_env("AH_BUILD_DIR"));
    const char *argv[] = {d->atshub, "serve", "-c", d->ini, NULL};
    d->pid = ah_t_spawn(argv, NULL, &d->errfd);
    ck_assert_int_gt(d->pid, 0);
    char *line = ah_t_wait_line(d->errfd, "listening on", 30);
    if (line == NULL)
        ck_abort_msg("the daemon did not start; it wrote: %s", ah_t_seen(d->errfd));
    d->port = atoi(strstr(line, "127.0.0.1:") + strlen("127.0.0.1:"));
    free(line);
}

static void daemon_done(daemon_env *d)
{
    close(d->errfd);
    ah_t_rmrf(d->dir);
    free(d->dir);
    free(d->ini);
}

/* The daemon's plugins (GET /admin/plugins), as "name@generation " text. */
static void daemon_plugins(daemon_env *d, char *out, size_t len)
{
    ah_config cfg;
    char err[1024], *text = NULL;
    ck_assert_msg(ah_config_load(d->ini, &cfg, err, sizeof err) == 0, "%s", err);
    long status = 0;
    int rc = ah_admin_call(&cfg, "GET", "/admin/plugins", NULL, &status, &text, err, sizeof err);
    ah_config_free(&cfg);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_int_eq(status, 200);
    cJSON *j = cJSON_Parse(text);
    free(text);
    out[0] = '\0';
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(j, "data")) {
        size_t n = strlen(out);
        snprintf(out + n, len - n, "%s@%d ", cJSON_GetObjectItem(p, "name")->valuestring,
                 cJSON_GetObjectItem(p, "generation")->valueint);
    }
    cJSON_Delete(j);
}

START_TEST(test_sighup_reconciles_plugins)
{
    daemon_env d;
    daemon_start(&d, NULL);
    char list[1024];
    daemon_plugins(&d, list, sizeof list);
    ck_assert_str_eq(list, "template@1 ");
    /* Edit: add fixture_good, remove template (and the harness's section
     * for it, which would then name no plugin). */
    char *text = ah_t_read_file(d.ini, NULL);
    char *tpl = strstr(text, "template = ");
    ck_assert_ptr_nonnull(tpl);
    *tpl = '\0';
    static const char sect[] = "[plugin.template]\nisolation = in_process\n";
    char *at = strstr(text, sect);
    if (at != NULL)
        memmove(at, at + strlen(sect), strlen(at + strlen(sect)) + 1);
    char v1[512], *edited = NULL;
    fixture(v1, sizeof v1, "good_v1.so");
    ck_assert_int_ge(asprintf(&edited, "%sfixture_good = %s\n", text, v1), 0);
    ck_assert_int_eq(ah_t_write_file(d.ini, edited), 0);
    free(text);
    free(edited);
    ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
    char *line = ah_t_wait_line(d.errfd, "reconciled", 30);
    if (line == NULL) {
        int st = ah_t_stop(d.pid, SIGKILL);
        ck_abort_msg("no reconcile logged (the daemon ended with status %d); it wrote: %s", st,
                     ah_t_seen(d.errfd));
    }
    free(line);
    daemon_plugins(&d, list, sizeof list);
    ck_assert_str_eq(list, "fixture_good@1 ");
    /* The CLI's live view goes to the daemon too. */
    const char *argv[] = {d.atshub, "-c", d.ini, "plugins", NULL};
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(ah_t_run(argv, NULL, &out, &err), 0);
    ck_assert_msg(strstr(out, "IN-FLIGHT") != NULL && strstr(out, "fixture_good") != NULL, "%s", out);
    free(out);
    free(err);
    ck_assert_int_eq(ah_t_stop(d.pid, SIGTERM), 0);
    daemon_done(&d);
}
END_TEST

/* SIGHUPs that arrive while a reconcile runs wait for the next sigwait: no
 * other thread may take them (a bus worker that did took SIGHUP's default
 * action and ended the daemon, one run in ten). */
START_TEST(test_sighup_burst)
{
    daemon_env d;
    daemon_start(&d, NULL);
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(kill(d.pid, SIGHUP), 0);
        usleep(500);
    }
    char *line = ah_t_wait_line(d.errfd, "reconciled", 30);
    if (line == NULL) {
        int st = ah_t_stop(d.pid, SIGKILL);
        ck_abort_msg("no reconcile logged (the daemon ended with status %d); it wrote: %s", st,
                     ah_t_seen(d.errfd));
    }
    free(line);
    char list[1024];
    daemon_plugins(&d, list, sizeof list);
    ck_assert_str_eq(list, "template@1 ");
    ck_assert_int_eq(ah_t_stop(d.pid, SIGTERM), 0);
    daemon_done(&d);
}
END_TEST

/* --- SIGTERM under load ---------------------------------------------------- */

typedef struct hload {
    int port;
    bool keep_alive; /* one connection for every request, as long as it lasts */
    atomic_bool stop;
    atomic_long answered, refused, broken;
    char last[256];
} hload;

static size_t sink(char *p, size_t s, size_t n, void *a)
{
    (void)p, (void)a;
    return s * n;
}

/* With AH_TEST_TRAFFIC_LOG set (check_openapi_traffic), the answers are kept
 * and recorded: every one that is not a plain 200 (the drain's), and the
 * first few 200s of each loader (the rest are the same answer). */
typedef struct keep {
    char *p;
    size_t n;
} keep;

static size_t keep_data(char *p, size_t s, size_t n, void *a)
{
    keep *k = a;
    char *q = realloc(k->p, k->n + s * n + 1);
    if (q == NULL)
        return 0;
    memcpy(q + k->n, p, s * n);
    k->n += s * n;
    q[k->n] = '\0';
    k->p = q;
    return s * n;
}

static void *hload_main(void *arg)
{
    hload *l = arg;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/health", l->port);
    CURL *kept = NULL;
    const char *traffic = getenv("AH_TEST_TRAFFIC_LOG");
    bool record = traffic != NULL && *traffic != '\0';
    int recorded_ok = 0;
    while (!atomic_load(&l->stop)) {
        CURL *c = kept != NULL ? kept : curl_easy_init();
        keep body = {0}, head = {0};
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, record ? keep_data : sink);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
        if (record) {
            curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, keep_data);
            curl_easy_setopt(c, CURLOPT_HEADERDATA, &head);
        }
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
        CURLcode rc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (record && rc == CURLE_OK && (status != 200 || recorded_ok++ < 20))
            ah_t_record_exchange("GET", url, status, head.p != NULL ? head.p : "", body.p);
        free(body.p);
        free(head.p);
        if (l->keep_alive) {
            kept = c;
        } else {
            curl_easy_cleanup(c);
        }
        if (rc == CURLE_OK && status > 0) {
            atomic_fetch_add(&l->answered, 1);
        } else if (rc == CURLE_COULDNT_CONNECT) {
            /* Not accepted: the listener is closed. The load is over. */
            atomic_fetch_add(&l->refused, 1);
            break;
        } else {
            atomic_fetch_add(&l->broken, 1);
            snprintf(l->last, sizeof l->last, "%s", curl_easy_strerror(rc));
        }
    }
    if (kept != NULL)
        curl_easy_cleanup(kept);
    return NULL;
}

START_TEST(test_sigterm_drains)
{
    daemon_env d;
    daemon_start(&d, NULL);
    /* Two clients open a connection per request, two keep theirs alive. */
    hload fresh = {.port = d.port}, kept = {.port = d.port, .keep_alive = true};
    hload *loads[4] = {&fresh, &fresh, &kept, &kept};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, hload_main, loads[i]), 0);
    while (atomic_load(&fresh.answered) < 200 || atomic_load(&kept.answered) < 200)
        usleep(5 * 1000);
    /* Requests under way when SIGTERM arrives must all be answered; the
     * clients start no new ones (those could meet a closed listener). */
    atomic_store(&fresh.stop, true);
    atomic_store(&kept.stop, true);
    ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    int status = ah_t_stop(d.pid, 0);
    char *rest = status != 0 ? ah_t_read_rest(d.errfd) : NULL;
    ck_assert_msg(status == 0, "the daemon ended with status %d: %s", status, rest);
    free(rest);
    ck_assert_msg(atomic_load(&fresh.broken) == 0, "%ld accepted requests got no answer (%s)",
                  atomic_load(&fresh.broken), fresh.last);
    ck_assert_msg(atomic_load(&kept.broken) == 0,
                  "%ld requests on kept-alive connections got no answer (%s)",
                  atomic_load(&kept.broken), kept.last);
    /* The store is consistent. */
    if (ah_t_pg()) {
        /* PostgreSQL keeps itself consistent; the store still answers and
         * is at the newest schema. */
        char *url = ah_t_store_url(d.dir);
        ck_assert_ptr_nonnull(url);
        char err[512] = "";
        ah_store *s = ah_store_open(url, NULL, err, sizeof err);
        free(url);
        ck_assert_msg(s != NULL, "%s", err);
        ck_assert_int_eq(s->ops->ping(s), AH_STORE_OK);
        ck_assert_int_eq(s->ops->schema_version(s), ah_store_pg_latest_version());
        s->ops->close(s);
    }
    char db[600];
    snprintf(db, sizeof db, "%s/atshub.db", d.dir);
    if (!ah_t_pg()) {
        sqlite3 *h = NULL;
        ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        sqlite3_stmt *st = NULL;
        ck_assert_int_eq(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL),
                         SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
        sqlite3_finalize(st);
        sqlite3_close(h);
    }
    /* The admin socket is gone with the daemon. */
    char sock[600];
    snprintf(sock, sizeof sock, "%s/atshub.sock", d.dir);
    ck_assert_int_ne(access(sock, F_OK), 0);
    daemon_done(&d);
}
END_TEST

/* --- the SDK as a product ------------------------------------------------- */

START_TEST(test_sdk_install_and_hot_load)
{
    daemon_env d;
    daemon_start(&d, NULL);
    const char *bld = ah_t_env("AH_BUILD_DIR"), *src = ah_t_env("AH_SOURCE_DIR");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cmake --install '%s' --prefix '%s/prefix' >'%s/sdk.log' 2>&1 && "
             "cp -r '%s/sdk/template' '%s/tpl' && "
             "env -u CFLAGS -u LDFLAGS PKG_CONFIG_PATH='%s/prefix/lib/pkgconfig' "
             "cmake -S '%s/tpl' -B '%s/tplbuild' >>'%s/sdk.log' 2>&1 && "
             "cmake --build '%s/tplbuild' >>'%s/sdk.log' 2>&1 && "
             "test -f '%s/prefix/include/atshub/plugin.h' && "
             "test -f '%s/prefix/lib/cmake/atshub-sdk/atshub-sdkConfig.cmake' && "
             "PKG_CONFIG_PATH='%s/prefix/lib/pkgconfig' pkg-config --cflags atshub-sdk >>'%s/sdk.log'",
             bld, d.dir, d.dir, src, d.dir, d.dir, d.dir, d.dir, d.dir, d.dir, d.dir, d.dir, d.dir,
             d.dir, d.dir);
    ck_assert_msg(system(cmd) == 0, "SDK install or out-of-tree build failed, see %s/sdk.log", d.dir);
    char so[600];
    snprintf(so, sizeof so, "%s/tplbuild/template.so", d.dir);
    const char *check[] = {d.atshub, "plugin", "check", so, NULL};
    char *out = NULL, *err = NULL;
    ck_assert_msg(ah_t_run(check, NULL, &out, &err) == 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(out, "100 load/open/close/unload cycles"));
    free(out), free(err);
    const char *reload[] = {d.atshub, "-c", d.ini, "plugin", "reload", "template", "--path", so, NULL};
    ck_assert_msg(ah_t_run(reload, NULL, &out, &err) == 0, "%s", err);
    ck_assert_msg(strstr(out, "generation 2") != NULL, "%s", out);
    free(out), free(err);
    char list[1024];
    daemon_plugins(&d, list, sizeof list);
    ck_assert_str_eq(list, "template@2 ");
    ck_assert_int_eq(ah_t_stop(d.pid, SIGTERM), 0);
    /* Without a daemon, reload says so. */
    ck_assert_int_eq(ah_t_run(reload, NULL, &out, &err), 1);
    ck_assert_msg(strstr(err, "no atshub daemon is running") != NULL, "%s", err);
    free(out), free(err);
    daemon_done(&d);
}
END_TEST

static Suite *swap_suite(void)
{
    Suite *s = suite_create("swap");
    TCase *tc = tcase_create("swap");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_swap_under_load);
    tcase_add_test(tc, test_broken_swap_keeps_old_version);
    tcase_add_test(tc, test_admin_disable_enable);
    tcase_add_test(tc, test_plugin_routes_stay_theirs);
    tcase_add_test(tc, test_sighup_reconciles_plugins);
    tcase_add_test(tc, test_sighup_burst);
    tcase_add_test(tc, test_sdk_install_and_hot_load);
    suite_add_tcase(s, tc);
    /* A case of its own, so that it can be repeated alone:
     * CK_RUN_CASE=drain build/tests/check_swap */
    TCase *drain = tcase_create("drain");
    tcase_set_timeout(drain, 120);
    tcase_add_test(drain, test_sigterm_drains);
    suite_add_tcase(s, drain);
    return s;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(swap_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
