/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The unified REST resources under /v1 (core/api.c), in process: records
 * put in the store directly for the reads, and the fakeats fixture plugin,
 * which echoes every request, for the writes (so that the test sees the
 * topic and the REMOTE ids the plugin received).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "rest.h"
#include "sync.h"
#include "tracking.h"
#include "events.h"
#include "support/harness.h"
#include "bulk.h"
#include "webhooks.h"
#include "metrics.h"

#define KEY_ACME "ahk_acme_key_0123456789"
#define KEY_GLOBEX "ahk_globex_key_987654321"

typedef struct fixture {
    char *dir;
    ah_core *core;
    char base[64];
    int64_t acme, globex;         /* tenant ids */
    int64_t ats1, ats2, gx;       /* connection ids */
    char *job[5], *job9, *gjob;   /* atshub ids */
    char *cand[2], *cand9;
    char *app[3], *app9, *gapp;   /* app[2] has the remote id "bad" */
} fixture;

/* ---- setup ----------------------------------------------------------------- */

static ah_core *open_core(const char *dir)
{
    const char *plugins = ah_t_env("AH_PLUGIN_DIR"), *fixtures = ah_t_env("AH_FIXTURE_DIR");
    ck_assert_ptr_nonnull(plugins);
    ck_assert_ptr_nonnull(fixtures);
    char *path = NULL, *text = NULL;
    char *store = ah_t_store_url(dir);
    ck_assert_ptr_nonnull(store);
    ck_assert_int_ge(asprintf(&path, "%s/atshub.ini", dir), 0);
    /* Like ah_t_write_ini, with a body limit above the 100 KB note limit. */
    ck_assert_int_ge(
        asprintf(&text,
                 "[core]\nworkers = 2\nkey_file = host.key\nrequest_timeout_ms = 5000\n"
                 "log_level = error\n"
                 "[http]\nlisten = 127.0.0.1:0\nmax_body = 512K\n"
                 "[store]\nurl = %s\n"
                 "[sync]\ninterval_s = 0\n"
                 "[plugins]\ntemplate = %s/template.so\nfakeats = %s/fakeats.so\n",
                 store, plugins, fixtures),
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

/* Puts one record in the store; returns its atshub id (malloc'd). */
static char *put(fixture *f, int64_t conn, const char *type, const char *remote,
                 const char *updated_at)
{
    char fields[256], raw[256];
    snprintf(fields, sizeof fields, "{\"name\":\"%s %s\"}", type, remote);
    snprintf(raw, sizeof raw, "{\"provider_id\":\"%s\",\"x\":1}", remote);
    ah_record_in in = {type, remote, updated_at, raw, fields};
    char *id = NULL;
    ck_assert_int_eq(f->core->store->ops->records_upsert(f->core->store, conn, &in, 1, NULL, NULL,
                                                         NULL, &id), 0);
    ck_assert_ptr_nonnull(id);
    return id;
}

static void setup(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(f->dir);
    f->core = open_core(f->dir);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u",
             (unsigned)ah_httpd_port(f->core->httpd));
    f->acme = add_tenant(f, "acme", KEY_ACME);
    f->globex = add_tenant(f, "globex", KEY_GLOBEX);
    f->ats1 = add_conn(f, f->acme, "fakeats", "ats1");
    f->ats2 = add_conn(f, f->acme, "fakeats", "ats2");
    add_conn(f, f->acme, "template", "tpl");
    f->gx = add_conn(f, f->globex, "fakeats", "ats1"); /* same name, other tenant */
    ck_assert_int_eq(ah_conns_reload(f->core), 0);

    for (int i = 0; i < 5; i++) {
        char remote[16], at[32];
        snprintf(remote, sizeof remote, "J-%d", i + 1);
        snprintf(at, sizeof at, "2024-01-0%dT00:00:00Z", i + 1);
        f->job[i] = put(f, f->ats1, "job", remote, at);
    }
    f->job9 = put(f, f->ats2, "job", "J-9", "2024-02-01T00:00:00Z");
    f->gjob = put(f, f->gx, "job", "G-1", "2024-03-01T00:00:00Z");
    f->cand[0] = put(f, f->ats1, "candidate", "C-1", "2024-01-01T00:00:00Z");
    f->cand[1] = put(f, f->ats1, "candidate", "C-2", "2024-01-02T00:00:00Z");
    f->cand9 = put(f, f->ats2, "candidate", "C-9", "2024-01-02T00:00:00Z");
    f->app[0] = put(f, f->ats1, "application", "A-1", "2024-01-01T00:00:00Z");
    f->app[1] = put(f, f->ats1, "application", "A-2", "2024-01-01T00:00:00Z");
    f->app[2] = put(f, f->ats1, "application", "bad", "2024-01-01T00:00:00Z");
    f->app9 = put(f, f->ats2, "application", "A-9", "2024-01-01T00:00:00Z");
    f->gapp = put(f, f->gx, "application", "GA-1", "2024-01-01T00:00:00Z");
}

static void teardown(fixture *f)
{
    ah_daemon_close(f->core);
    ah_t_rmrf(f->dir);
    free(f->dir);
    char **all[] = {&f->job[0], &f->job[1], &f->job[2], &f->job[3], &f->job[4], &f->job9,
                    &f->gjob, &f->cand[0], &f->cand[1], &f->cand9, &f->app[0], &f->app[1],
                    &f->app[2], &f->app9, &f->gapp};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(*all[i]);
}

/* ---- HTTP helpers ---------------------------------------------------------- */

/* One request with a tenant key (NULL: none) and an X-Connection header (NULL:
 * none). *out (may be NULL) receives the parsed reply. Returns the status. */
static long req_as(fixture *f, const char *key, const char *method, const char *path,
                   const char *xconn, const char *body, cJSON **out)
{
    char url[512], auth[128], xc[128];
    const char *h[4];
    int n = 0;
    snprintf(url, sizeof url, "%s%s", f->base, path);
    if (key != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h[n++] = auth;
    }
    if (xconn != NULL) {
        snprintf(xc, sizeof xc, "X-Connection: %s", xconn);
        h[n++] = xc;
    }
    if (body != NULL)
        h[n++] = "Content-Type: application/json";
    h[n] = NULL;
    char *text = NULL;
    long st = ah_t_http(method, url, h, body, &text);
    if (out != NULL) {
        *out = cJSON_Parse(text);
        ck_assert_msg(*out != NULL, "%s %s -> %ld: not JSON: %s", method, path, st, text);
    }
    free(text);
    return st;
}

static long req(fixture *f, const char *method, const char *path, const char *xconn,
                const char *body, cJSON **out)
{
    return req_as(f, KEY_ACME, method, path, xconn, body, out);
}

/* The value at a dotted path ("data.body.application_id", "data.0.id"). */
static const cJSON *jget(const cJSON *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *t = strtok_r(buf, ".", &save); o != NULL && t != NULL;
         t = strtok_r(NULL, ".", &save)) {
        if (cJSON_IsArray(o))
            o = cJSON_GetArrayItem(o, atoi(t));
        else
            o = cJSON_GetObjectItemCaseSensitive(o, t);
    }
    return o;
}

static const char *jstr(const cJSON *o, const char *path)
{
    const cJSON *v = jget(o, path);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

#define ck_jstr(o, path, want)                                                          \
    do {                                                                                \
        const char *got_ = jstr((o), (path));                                           \
        ck_assert_msg(got_ != NULL && strcmp(got_, (want)) == 0, "%s: '%s' != '%s'",    \
                      (path), got_ ? got_ : "(none)", (want));                          \
    } while (0)

/* Expects an error answer with `code` whose message mentions `needle`. */
static void expect_error(fixture *f, const char *method, const char *path, const char *xconn,
                         const char *body, long status, const char *code, const char *needle)
{
    cJSON *o = NULL;
    long st = req(f, method, path, xconn, body, &o);
    char *txt = cJSON_PrintUnformatted(o);
    ck_assert_msg(st == status, "%s %s: status %ld, want %ld: %s", method, path, st, status, txt);
    ck_jstr(o, "error.code", code);
    const char *msg = jstr(o, "error.message");
    ck_assert_msg(needle == NULL || (msg != NULL && strstr(msg, needle) != NULL),
                  "%s %s: message '%s' lacks '%s'", method, path, msg ? msg : "", needle);
    free(txt);
    cJSON_Delete(o);
}

/* Expects 200 and the plugin's echo of `topic`; returns the reply. */
static cJSON *expect_echo(fixture *f, const char *method, const char *path, const char *xconn,
                          const char *body, const char *topic)
{
    cJSON *o = NULL;
    long st = req(f, method, path, xconn, body, &o);
    char *txt = cJSON_PrintUnformatted(o);
    ck_assert_msg(st == 200, "%s %s: %ld %s", method, path, st, txt);
    free(txt);
    ck_jstr(o, "data.fake", "fakeats");
    ck_jstr(o, "data.topic", topic);
    return o;
}

/* ---- reads ----------------------------------------------------------------- */

static bool in_list(char *const *ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return true;
    return false;
}

START_TEST(test_list_cursor_walk)
{
    fixture f;
    setup(&f);
    /* Six jobs of acme in pages of two: each exactly once, then null. */
    char *seen[16];
    size_t nseen = 0;
    char path[256] = "/v1/jobs?limit=2";
    int pages = 0;
    for (;;) {
        cJSON *o = NULL;
        ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &o), 200);
        const cJSON *data = jget(o, "data");
        ck_assert(cJSON_IsArray(data));
        ck_assert_int_le(cJSON_GetArraySize(data), 2);
        const cJSON *r;
        cJSON_ArrayForEach(r, data) {
            const char *id = jstr(r, "id");
            ck_assert_ptr_nonnull(id);
            ck_assert_msg(!in_list(seen, nseen, id), "%s twice", id);
            ck_assert_uint_lt(nseen, 16);
            seen[nseen++] = strdup(id);
            ck_jstr(r, "type", "job");
            ck_assert_ptr_nonnull(jstr(r, "remote_id"));
            ck_assert_ptr_nonnull(jstr(r, "updated_at"));
            ck_assert_ptr_nonnull(jstr(r, "fields.name"));
            ck_assert_ptr_null(jget(r, "raw"));
            const char *conn = jstr(r, "connection");
            ck_assert_ptr_nonnull(conn);
            ck_assert(strcmp(conn, "ats1") == 0 || strcmp(conn, "ats2") == 0);
        }
        pages++;
        const cJSON *next = jget(o, "next_cursor");
        ck_assert_ptr_nonnull(next);
        if (cJSON_IsNull(next)) {
            cJSON_Delete(o);
            break;
        }
        ck_assert(cJSON_IsString(next));
        snprintf(path, sizeof path, "/v1/jobs?limit=2&cursor=%s", next->valuestring);
        cJSON_Delete(o);
        ck_assert_int_lt(pages, 10);
    }
    ck_assert_int_eq(pages, 3);
    ck_assert_uint_eq(nseen, 6);
    for (int i = 0; i < 5; i++)
        ck_assert(in_list(seen, nseen, f.job[i]));
    ck_assert(in_list(seen, nseen, f.job9));
    ck_assert(!in_list(seen, nseen, f.gjob));
    for (size_t i = 0; i < nseen; i++)
        free(seen[i]);

    /* Default limit: everything in one page. */
    cJSON *o = NULL;
    ck_assert_int_eq(req(&f, "GET", "/v1/applications", NULL, NULL, &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 4);
    ck_assert(cJSON_IsNull(jget(o, "next_cursor")));
    cJSON_Delete(o);
    teardown(&f);
}
END_TEST

START_TEST(test_list_filters)
{
    fixture f;
    setup(&f);
    cJSON *o = NULL;
    /* updated_after is exclusive and normalised (date only = midnight UTC). */
    ck_assert_int_eq(req(&f, "GET", "/v1/jobs?updated_after=2024-01-03", NULL, NULL, &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 3);
    {
        /* ids order by creation, and these were created in one millisecond */
        char *got[3];
        for (int i = 0; i < 3; i++)
            got[i] = (char *)jstr(o, i == 0 ? "data.0.remote_id" : i == 1 ? "data.1.remote_id"
                                                                          : "data.2.remote_id");
        for (int i = 0; i < 3; i++)
            ck_assert_ptr_nonnull(got[i]);
        ck_assert(in_list(got, 3, "J-4") && in_list(got, 3, "J-5") && in_list(got, 3, "J-9"));
    }
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "GET", "/v1/jobs?updated_after=2024-01-04T00:00:00%2B02:00", NULL,
                         NULL, &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 3); /* 2024-01-03T22:00Z */
    cJSON_Delete(o);

    /* Connection by query or header. */
    ck_assert_int_eq(req(&f, "GET", "/v1/jobs?connection=ats2", NULL, NULL, &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 1);
    ck_jstr(o, "data.0.remote_id", "J-9");
    ck_jstr(o, "data.0.connection", "ats2");
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "GET", "/v1/jobs", "ats1", NULL, &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 5);
    cJSON_Delete(o);
    expect_error(&f, "GET", "/v1/jobs?connection=nope", NULL, NULL, 404, "not_found", "nope");
    expect_error(&f, "GET", "/v1/jobs?connection=ats1", "ats2", NULL, 400, "invalid_request",
                 "connection");

    /* include=raw */
    ck_assert_int_eq(req(&f, "GET", "/v1/candidates?include=raw&connection=ats2", NULL, NULL, &o),
                     200);
    ck_jstr(o, "data.0.raw.provider_id", "C-9");
    ck_jstr(o, "data.0.fields.name", "candidate C-9");
    cJSON_Delete(o);

    /* Tenant isolation: globex sees only its own, under its own names. */
    ck_assert_int_eq(req_as(&f, KEY_GLOBEX, "GET", "/v1/jobs", NULL, NULL, &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(jget(o, "data")), 1);
    ck_jstr(o, "data.0.id", f.gjob);
    ck_jstr(o, "data.0.connection", "ats1");
    cJSON_Delete(o);
    ck_assert_int_eq(req_as(&f, KEY_GLOBEX, "GET", "/v1/jobs?connection=ats2", NULL, NULL, &o),
                     404);
    cJSON_Delete(o);
    /* A cursor from another tenant's id space reveals nothing either: the
     * page holds globex's own job or nothing (ids that start in the same
     * millisecond may sort either side of the cursor), never acme's. */
    char path[256];
    snprintf(path, sizeof path, "/v1/jobs?cursor=%s", f.job[0]);
    ck_assert_int_eq(req_as(&f, KEY_GLOBEX, "GET", path, NULL, NULL, &o), 200);
    ck_assert_int_le(cJSON_GetArraySize(jget(o, "data")), 1);
    const cJSON *only;
    cJSON_ArrayForEach(only, jget(o, "data"))
        ck_assert_str_eq(cJSON_GetObjectItem(only, "id")->valuestring, f.gjob);
    cJSON_Delete(o);

    /* Bad parameters. */
    expect_error(&f, "GET", "/v1/jobs?limit=0", NULL, NULL, 400, "invalid_request", "limit");
    expect_error(&f, "GET", "/v1/jobs?limit=501", NULL, NULL, 400, "invalid_request", "limit");
    expect_error(&f, "GET", "/v1/jobs?limit=2x", NULL, NULL, 400, "invalid_request", "limit");
    expect_error(&f, "GET", "/v1/jobs?cursor=abc", NULL, NULL, 400, "invalid_request", "cursor");
    expect_error(&f, "GET", "/v1/jobs?cursor=rec_XYZ", NULL, NULL, 400, "invalid_request",
                 "cursor");
    expect_error(&f, "GET", "/v1/jobs?updated_after=yesterday", NULL, NULL, 400,
                 "invalid_request", "updated_after");
    expect_error(&f, "GET", "/v1/jobs?include=everything", NULL, NULL, 400, "invalid_request",
                 "include");
    teardown(&f);
}
END_TEST

START_TEST(test_get_by_id)
{
    fixture f;
    setup(&f);
    char path[256];
    cJSON *o = NULL;
    snprintf(path, sizeof path, "/v1/jobs/%s", f.job[1]);
    ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &o), 200);
    ck_jstr(o, "data.id", f.job[1]);
    ck_jstr(o, "data.remote_id", "J-2");
    ck_jstr(o, "data.connection", "ats1");
    ck_jstr(o, "data.updated_at", "2024-01-02T00:00:00Z");
    ck_assert_ptr_null(jget(o, "data.raw"));
    cJSON_Delete(o);
    snprintf(path, sizeof path, "/v1/applications/%s?include=raw", f.app9);
    ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &o), 200);
    ck_jstr(o, "data.raw.provider_id", "A-9");
    cJSON_Delete(o);

    /* Type mismatch, unknown, malformed, another tenant's: all 404. */
    snprintf(path, sizeof path, "/v1/candidates/%s", f.job[1]);
    expect_error(&f, "GET", path, NULL, NULL, 404, "not_found", NULL);
    expect_error(&f, "GET", "/v1/jobs/rec_000000000000000000000000", NULL, NULL, 404,
                 "not_found", NULL);
    expect_error(&f, "GET", "/v1/jobs/nonsense", NULL, NULL, 404, "not_found", NULL);
    snprintf(path, sizeof path, "/v1/jobs/%s", f.gjob);
    expect_error(&f, "GET", path, NULL, NULL, 404, "not_found", NULL);
    ck_assert_int_eq(req_as(&f, KEY_GLOBEX, "GET", path, NULL, NULL, &o), 200);
    cJSON_Delete(o);
    /* An X-Connection that is not the record's own. */
    snprintf(path, sizeof path, "/v1/jobs/%s", f.job[1]);
    expect_error(&f, "GET", path, "ats2", NULL, 404, "not_found", NULL);
    snprintf(path, sizeof path, "/v1/jobs/%s?connection=ats2", f.job[1]);
    expect_error(&f, "GET", path, NULL, NULL, 404, "not_found", NULL);
    snprintf(path, sizeof path, "/v1/jobs/%s?connection=ats1", f.job[1]);
    ck_assert_int_eq(req(&f, "GET", path, "ats1", NULL, &o), 200);
    cJSON_Delete(o);

    /* Strict paths, methods, auth. */
    snprintf(path, sizeof path, "/v1/jobs/%s/custom-fields/extra", f.job[1]);
    expect_error(&f, "GET", path, NULL, NULL, 404, "not_found", NULL);
    snprintf(path, sizeof path, "/v1/jobs/%s/", f.job[1]);
    expect_error(&f, "GET", path, NULL, NULL, 404, "not_found", NULL);
    expect_error(&f, "GET", "/v1/jobsx", NULL, NULL, 404, "not_found", NULL);
    snprintf(path, sizeof path, "/v1/jobs/%s", f.job[1]);
    expect_error(&f, "DELETE", path, NULL, NULL, 405, "method_not_allowed", "GET");
    ck_assert_int_eq(req_as(&f, NULL, "GET", path, NULL, NULL, &o), 401);
    ck_jstr(o, "error.code", "unauthorized");
    cJSON_Delete(o);
    ck_assert_int_eq(req_as(&f, "ahk_wrong", "GET", "/v1/jobs", NULL, NULL, &o), 401);
    cJSON_Delete(o);
    teardown(&f);
}
END_TEST

/* GET /metrics labels requests by route pattern, never by the path they
 * came with: a template keeps its placeholder (one series for every id),
 * and a request answered before its route was looked up (413, 414) gets a
 * fixed label, so that neither a token in a path nor a stream of random
 * ids reaches the metrics (or fills their table). */
/* The line of text that holds needle (for a failure's message), or "". */
static const char *line_with(const char *text, const char *needle)
{
    static char line[512];
    const char *p = strstr(text, needle);
    line[0] = '\0';
    if (p != NULL) {
        while (p > text && p[-1] != '\n')
            p--;
        snprintf(line, sizeof line, "%.*s", (int)strcspn(p, "\n"), p);
    }
    return line;
}

/* The atshub_http_requests_total lines (a failure's message), at most 2K. */
static const char *http_lines(const char *text)
{
    static char out[2048];
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = text; (p = strstr(p, "\natshub_http_requests_total{")) != NULL; p++) {
        int w = snprintf(out + n, sizeof out - n, "%.*s\n", (int)strcspn(p + 1, "\n"), p + 1);
        if (w < 0 || (size_t)w >= sizeof out - n)
            break;
        n += (size_t)w;
    }
    return out;
}

START_TEST(test_metrics_route_labels)
{
    fixture f;
    setup(&f);
    char path[256], url[10240];
    cJSON *o = NULL;
    snprintf(path, sizeof path, "/v1/jobs/%s", f.job[1]);
    ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &o), 200);
    cJSON_Delete(o);
    /* Unauthenticated, each with an id of its own. */
    for (int i = 0; i < 20; i++) {
        snprintf(path, sizeof path, "/v1/jobs/rnd_id_%d_xyzzy", i);
        ck_assert_int_eq(req_as(&f, NULL, "GET", path, NULL, NULL, NULL), 401);
    }
    /* Over the body limit (512K) and over the target limit (8K), on a
     * path that carries a token. */
    size_t blen = 600u << 10;
    char *big = malloc(blen + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', blen);
    big[blen] = '\0';
    snprintf(url, sizeof url, "%s/hooks/topcv/tok_SECRET_one", f.base);
    ck_assert_int_eq(ah_t_http("POST", url, NULL, big, NULL), 413);
    free(big);
    int n = snprintf(url, sizeof url, "%s/hooks/topcv/tok_SECRET_two/", f.base);
    memset(url + n, 'a', 9000);
    url[n + 9000] = '\0';
    ck_assert_int_eq(ah_t_http("GET", url, NULL, NULL, NULL), 414);
    /* Methods of the client's invention, each a series of its own before:
     * a few thousand filled the table, and every later series (syncs,
     * swaps) went to "(overflow)". */
    for (int i = 0; i < 5; i++) {
        char m[16];
        snprintf(m, sizeof m, "ZZMETHOD%d", i);
        snprintf(url, sizeof url, "%s/v1/jobs", f.base);
        long st = ah_t_http(m, url, NULL, NULL, NULL);
        ck_assert_msg(st >= 400, "%s: %ld", m, st);
    }

    /* on_done runs once the answer is sent: the last one may trail the
     * client's read by a moment. */
    char *text = NULL;
    for (int tries = 0; tries < 500; tries++) {
        free(text);
        text = ah_metrics_render(f.core);
        ck_assert_ptr_nonnull(text);
        if (strstr(text, "status=\"414\"") != NULL && strstr(text, "method=\"OTHER\"") != NULL)
            break;
        usleep(10 * 1000);
    }
    ck_assert_msg(strstr(text, "tok_SECRET") == NULL, "a token in the metrics: %s",
                  line_with(text, "tok_SECRET"));
    ck_assert_msg(strstr(text, "rnd_id_") == NULL, "an id in the metrics: %s",
                  line_with(text, "rnd_id_"));
    ck_assert_msg(strstr(text, f.job[1]) == NULL, "an id in the metrics: %s",
                  line_with(text, f.job[1]));
    ck_assert_msg(strstr(text, "method=\"GET\",route=\"/v1/jobs/{id}\",status=\"200\"} 1") !=
                      NULL,
                  "%s", http_lines(text));
    ck_assert_msg(strstr(text, "method=\"GET\",route=\"/v1/jobs/{id}\",status=\"401\"} 20") !=
                      NULL,
                  "%s", http_lines(text));
    ck_assert_msg(strstr(text, "method=\"POST\",route=\"(unrouted)\",status=\"413\"} 1") != NULL,
                  "%s", http_lines(text));
    ck_assert_msg(strstr(text, "method=\"GET\",route=\"(unrouted)\",status=\"414\"} 1") != NULL,
                  "%s", http_lines(text));
    ck_assert_msg(strstr(text, "ZZMETHOD") == NULL, "a client's method in the metrics: %s",
                  line_with(text, "ZZMETHOD"));
    ck_assert_msg(strstr(text, "method=\"OTHER\"") != NULL, "%s", http_lines(text));
    free(text);
    teardown(&f);
}
END_TEST

/* Calls counted from several threads at once (the bus workers do) add up
 * to one series in the text, its histogram's count, buckets and sum with
 * them. */
enum { METRIC_THREADS = 4, METRIC_CALLS = 2000 };

static void *count_calls(void *arg)
{
    ah_metrics *m = arg;
    for (int i = 0; i < METRIC_CALLS; i++)
        ah_metrics_call(m, "stripe_p", "jobs.get", i % 4 != 0, 0.002);
    return NULL;
}

START_TEST(test_metrics_threads_add_up)
{
    fixture f;
    setup(&f);
    pthread_t th[METRIC_THREADS];
    for (int i = 0; i < METRIC_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, count_calls, f.core->metrics), 0);
    for (int i = 0; i < METRIC_THREADS; i++)
        pthread_join(th[i], NULL);
    char *text = ah_metrics_render(f.core);
    ck_assert_ptr_nonnull(text);
    char want[256];
    int calls = METRIC_THREADS * METRIC_CALLS;
    snprintf(want, sizeof want,
             "atshub_plugin_calls_total{plugin=\"stripe_p\",topic=\"jobs.get\",result=\"ok\"} %d\n",
             calls * 3 / 4);
    ck_assert_msg(strstr(text, want) != NULL, "no %s in %s", want, text);
    snprintf(want, sizeof want,
             "atshub_plugin_calls_total{plugin=\"stripe_p\",topic=\"jobs.get\",result=\"error\"} "
             "%d\n",
             calls / 4);
    ck_assert_msg(strstr(text, want) != NULL, "no %s in %s", want, text);
    snprintf(want, sizeof want,
             "atshub_plugin_call_seconds_count{plugin=\"stripe_p\",topic=\"jobs.get\"} %d\n", calls);
    ck_assert_msg(strstr(text, want) != NULL, "no %s", want);
    snprintf(want, sizeof want,
             "atshub_plugin_call_seconds_bucket{plugin=\"stripe_p\",topic=\"jobs.get\",le=\"0.005\"} "
             "%d\n",
             calls);
    ck_assert_msg(strstr(text, want) != NULL, "no %s", want);
    snprintf(want, sizeof want,
             "atshub_plugin_call_seconds_sum{plugin=\"stripe_p\",topic=\"jobs.get\"} %.6f\n",
             calls * 0.002);
    ck_assert_msg(strstr(text, want) != NULL, "no %s", want);
    /* One series a label set, however many threads counted it. */
    const char *first = strstr(text, "atshub_plugin_call_seconds_count{plugin=\"stripe_p\"");
    ck_assert_ptr_null(strstr(first + 1, "atshub_plugin_call_seconds_count{plugin=\"stripe_p\""));
    free(text);
    teardown(&f);
}
END_TEST

/* GET /v1/log with a since or until that is not a time: 400, not the
 * store's failure (500 internal_error). */
START_TEST(test_log_bad_bounds)
{
    fixture f;
    setup(&f);
    cJSON *o = NULL;
    expect_error(&f, "GET", "/v1/log?since=garbage", NULL, NULL, 400, "invalid_request", "since");
    /* An action no entry can have is refused, not answered [] (was 200). */
    expect_error(&f, "GET", "/v1/log?action=BOGUS", NULL, NULL, 400, "invalid_request",
                 "action must be one of");
    ck_assert_int_eq(req(&f, "GET", "/v1/log?action=OUTBOUND", NULL, NULL, NULL), 200);
    ck_assert_int_eq(req(&f, "GET", "/v1/log?action=", NULL, NULL, NULL), 200);
    expect_error(&f, "GET", "/v1/log?until=2024-13-45", NULL, NULL, 400, "invalid_request",
                 "until");
    expect_error(&f, "GET", "/v1/log?since=2024-01-01&until=", NULL, NULL, 400,
                 "invalid_request", "until");
    ck_assert_int_eq(req(&f, "GET", "/v1/log?since=2024-01-01&until=2030-01-01T00:00:00Z", NULL,
                         NULL, &o),
                     200);
    ck_assert(cJSON_IsArray(jget(o, "data")));
    cJSON_Delete(o);
    teardown(&f);
}
END_TEST

/* ---- writes ---------------------------------------------------------------- */

START_TEST(test_application_writes)
{
    fixture f;
    setup(&f);
    char path[256], body[512];
    cJSON *o;

    snprintf(path, sizeof path, "/v1/applications/%s/stage", f.app[0]);
    o = expect_echo(&f, "POST", path, NULL, "{\"stage_id\":3}", "applications.move_to_stage");
    ck_jstr(o, "data.body.application_id", "A-1");
    ck_assert_int_eq(jget(o, "data.body.stage_id")->valueint, 3);
    cJSON_Delete(o);

    snprintf(path, sizeof path, "/v1/applications/%s/reject", f.app[1]);
    o = expect_echo(&f, "POST", path, NULL, "{\"reason_id\":\"R-7\"}", "applications.reject");
    ck_jstr(o, "data.body.application_id", "A-2");
    ck_jstr(o, "data.body.reason_id", "R-7");
    cJSON_Delete(o);

    snprintf(body, sizeof body, "{\"candidate_id\":\"%s\",\"job_id\":\"%s\",\"stage_id\":\"s1\"}",
             f.cand[1], f.job[2]);
    o = expect_echo(&f, "POST", "/v1/applications", NULL, body, "applications.create");
    ck_jstr(o, "data.body.candidate_id", "C-2");
    ck_jstr(o, "data.body.job_id", "J-3");
    ck_jstr(o, "data.body.stage_id", "s1");
    cJSON_Delete(o);
    /* candidate and job of different connections */
    snprintf(body, sizeof body, "{\"candidate_id\":\"%s\",\"job_id\":\"%s\"}", f.cand[0], f.job9);
    expect_error(&f, "POST", "/v1/applications", NULL, body, 400, "invalid_request",
                 "different connections");
    snprintf(body, sizeof body, "{\"candidate_id\":\"%s\",\"job_id\":\"%s\"}", f.cand[0], f.gjob);
    expect_error(&f, "POST", "/v1/applications", NULL, body, 404, "not_found", "job_id");

    snprintf(path, sizeof path, "/v1/applications/%s/notes", f.app[0]);
    o = expect_echo(&f, "POST", path, NULL, "{\"note\":\"<p>hi</p>\",\"note_action_type\":496}",
                    "notes.add_to_application");
    ck_jstr(o, "data.body.application_id", "A-1");
    ck_jstr(o, "data.body.note", "<p>hi</p>");
    ck_assert_int_eq(jget(o, "data.body.note_action_type")->valueint, 496);
    cJSON_Delete(o);

    snprintf(path, sizeof path, "/v1/applications/%s/attachments", f.app9);
    o = expect_echo(&f, "POST", path, NULL,
                    "{\"filename\":\"cv.pdf\",\"data_base64\":\"aGVsbG8=\",\"kind\":\"resume\"}",
                    "attachments.add_to_application");
    ck_jstr(o, "data.body.application_id", "A-9");
    ck_jstr(o, "data.body.filename", "cv.pdf");
    ck_jstr(o, "data.body.data_base64", "aGVsbG8=");
    ck_jstr(o, "data.body.kind", "resume");
    cJSON_Delete(o);

    snprintf(path, sizeof path, "/v1/applications/%s/custom-fields", f.app[0]);
    o = expect_echo(&f, "GET", path, NULL, NULL, "custom_fields.values");
    ck_jstr(o, "data.body.entity", "application");
    ck_jstr(o, "data.body.id", "A-1");
    cJSON_Delete(o);

    o = expect_echo(&f, "GET", "/v1/stages", "ats1", NULL, "applications.list_stages");
    cJSON_Delete(o);
    o = expect_echo(&f, "GET", "/v1/disposition-reasons?connection=ats2", NULL, NULL,
                    "dispositions.list");
    cJSON_Delete(o);
    /* A connection not named: one code wherever one is needed (the
     * resources here, /v1/bus, /v1/statuses in check_careerbuilder). */
    expect_error(&f, "GET", "/v1/stages", NULL, NULL, 400, "missing_connection", "connection");
    expect_error(&f, "GET", "/v1/stages?connection=", NULL, NULL, 400, "missing_connection",
                 "connection");
    expect_error(&f, "POST", "/v1/bus/applications.list_stages", NULL, "{}", 400,
                 "missing_connection", "X-Connection");
    expect_error(&f, "POST", "/v1/stages", "ats1", "{}", 405, "method_not_allowed", NULL);
    /* The template plugin has no applications table. */
    expect_error(&f, "GET", "/v1/stages", "tpl", NULL, 501, "unsupported_capability", NULL);
    teardown(&f);
}
END_TEST

START_TEST(test_candidate_and_job_writes)
{
    fixture f;
    setup(&f);
    char path[256];
    cJSON *o;

    snprintf(path, sizeof path, "/v1/candidates/%s/attachments", f.cand[0]);
    o = expect_echo(&f, "POST", path, NULL,
                    "{\"filename\":\"a b.txt\",\"data_base64\":\"aGk=\",\"content_type\":\"text/plain\"}",
                    "attachments.add_to_candidate");
    ck_jstr(o, "data.body.candidate_id", "C-1");
    ck_jstr(o, "data.body.filename", "a b.txt");
    ck_jstr(o, "data.body.content_type", "text/plain");
    ck_assert_ptr_null(jget(o, "data.body.kind"));
    cJSON_Delete(o);

    /* notes.add_to_candidate is a NULL slot in fakeats: 501 through REST. */
    snprintf(path, sizeof path, "/v1/candidates/%s/notes", f.cand[0]);
    expect_error(&f, "POST", path, NULL, "{\"note\":\"hello\"}", 501, "unsupported_capability",
                 "notes.add_to_candidate");

    snprintf(path, sizeof path, "/v1/candidates/%s/resume", f.cand9);
    o = expect_echo(&f, "GET", path, NULL, NULL, "candidates.resume");
    ck_jstr(o, "data.body.candidate_id", "C-9");
    cJSON_Delete(o);

    snprintf(path, sizeof path, "/v1/candidates/%s/custom-fields", f.cand[1]);
    o = expect_echo(&f, "PATCH", path, NULL, "{\"values\":{\"level\":\"senior\",\"years\":7}}",
                    "custom_fields.update");
    ck_jstr(o, "data.body.entity", "candidate");
    ck_jstr(o, "data.body.id", "C-2");
    ck_jstr(o, "data.body.values.level", "senior");
    ck_assert_int_eq(jget(o, "data.body.values.years")->valueint, 7);
    cJSON_Delete(o);

    o = expect_echo(&f, "GET",
                    "/v1/candidates/search?first_name=Amal&email=amal%40example.com&phone=",
                    "ats1", NULL, "candidates.find");
    ck_jstr(o, "data.body.first_name", "Amal");
    ck_jstr(o, "data.body.email", "amal@example.com");
    ck_assert_ptr_null(jget(o, "data.body.phone"));
    ck_assert_ptr_null(jget(o, "data.body.last_name"));
    cJSON_Delete(o);
    expect_error(&f, "GET", "/v1/candidates/search?email=a%40b.c", NULL, NULL, 400,
                 "missing_connection", "connection");
    expect_error(&f, "GET", "/v1/candidates/search", "ats1", NULL, 400, "invalid_request",
                 "first_name");

    snprintf(path, sizeof path, "/v1/jobs/%s/enhanced", f.job[4]);
    o = expect_echo(&f, "GET", path, NULL, NULL, "jobs.get_enhanced");
    ck_jstr(o, "data.body.job_id", "J-5");
    cJSON_Delete(o);
    o = expect_echo(&f, "GET", "/v1/jobs/enhanced?limit=5&cursor=page-2", "ats2", NULL,
                    "jobs.enhanced_batch");
    ck_assert_int_eq(jget(o, "data.body.limit")->valueint, 5);
    ck_jstr(o, "data.body.cursor", "page-2");
    cJSON_Delete(o);
    o = expect_echo(&f, "GET", "/v1/jobs/enhanced", "ats2", NULL, "jobs.enhanced_batch");
    ck_assert_int_eq(jget(o, "data.body.limit")->valueint, 100);
    cJSON_Delete(o);

    snprintf(path, sizeof path, "/v1/jobs/%s/custom-fields", f.job[0]);
    o = expect_echo(&f, "GET", path, NULL, NULL, "custom_fields.values");
    ck_jstr(o, "data.body.entity", "job");
    ck_jstr(o, "data.body.id", "J-1");
    cJSON_Delete(o);
    o = expect_echo(&f, "GET", "/v1/custom-fields/application", "ats1", NULL,
                    "custom_fields.list");
    ck_jstr(o, "data.body.entity", "application");
    cJSON_Delete(o);
    expect_error(&f, "GET", "/v1/custom-fields/widget", "ats1", NULL, 404, "not_found", NULL);
    /* Only jobs have /enhanced, only candidates /resume and /search. */
    snprintf(path, sizeof path, "/v1/candidates/%s/enhanced", f.cand[0]);
    expect_error(&f, "GET", path, NULL, NULL, 404, "not_found", NULL);
    snprintf(path, sizeof path, "/v1/jobs/%s/resume", f.job[0]);
    expect_error(&f, "GET", path, NULL, NULL, 404, "not_found", NULL);
    teardown(&f);
}
END_TEST

/* Every validation error is 400 invalid_request naming the field, and
 * nothing reaches the plugin (a reply would be the echo). */
START_TEST(test_validation)
{
    fixture f;
    setup(&f);
    char stage[256], reject[256], notes[256], att[256], cnotes[256], cf[256];
    snprintf(stage, sizeof stage, "/v1/applications/%s/stage", f.app[0]);
    snprintf(reject, sizeof reject, "/v1/applications/%s/reject", f.app[0]);
    snprintf(notes, sizeof notes, "/v1/applications/%s/notes", f.app[0]);
    snprintf(cnotes, sizeof cnotes, "/v1/candidates/%s/notes", f.cand[0]);
    snprintf(att, sizeof att, "/v1/applications/%s/attachments", f.app[0]);
    snprintf(cf, sizeof cf, "/v1/jobs/%s/custom-fields", f.job[0]);
    struct {
        const char *path, *body, *needle;
    } cases[] = {
        {stage, NULL, "stage_id is required"},
        {stage, "{}", "stage_id is required"},
        {stage, "{\"stage_id\":[1]}", "stage_id"},
        {stage, "{\"stage_id\":1.5}", "stage_id"},
        {stage, "{\"stage_id\":\"\"}", "stage_id"},
        {stage, "{\"stage_id\":1,\"extra\":2}", "extra"},
        {stage, "[1]", "JSON object"},
        {reject, "{\"reason\":1}", "reason"},
        {reject, "{\"reason_id\":true}", "reason_id"},
        {notes, "{}", "note is required"},
        {notes, "{\"note\":5}", "note must be a string"},
        {notes, "{\"note\":\"\"}", "note"},
        {notes, "{\"note\":\"x\",\"note_action_type\":{}}", "note_action_type"},
        {cnotes, "{\"note\":7}", "note"},
        {att, "{\"data_base64\":\"aGk=\"}", "filename is required"},
        {att, "{\"filename\":\"../etc/passwd\",\"data_base64\":\"aGk=\"}", "filename"},
        {att, "{\"filename\":\"a/b\",\"data_base64\":\"aGk=\"}", "filename"},
        {att, "{\"filename\":\"cv.pdf\"}", "data_base64 is required"},
        {att, "{\"filename\":\"cv.pdf\",\"data_base64\":\"abc\"}", "data_base64"},
        {att, "{\"filename\":\"cv.pdf\",\"data_base64\":\"@@@@\"}", "data_base64"},
        {att, "{\"filename\":\"cv.pdf\",\"data_base64\":\"\"}", "data_base64"},
        {att, "{\"filename\":\"cv.pdf\",\"data_base64\":\"aGk=\",\"kind\":3}", "kind"},
        {"/v1/applications", "{\"job_id\":\"rec_1\"}", "candidate_id is required"},
        {"/v1/applications", "{\"candidate_id\":1,\"job_id\":\"rec_1\"}", "candidate_id"},
        {"/v1/applications/bulk-reject", "{\"reason_id\":1}", "application_ids is required"},
        {"/v1/applications/bulk-reject", "{\"application_ids\":[],\"reason_id\":1}",
         "application_ids"},
        {"/v1/applications/bulk-reject", "{\"application_ids\":\"x\",\"reason_id\":1}",
         "application_ids"},
        {"/v1/applications/bulk-reject", "{\"application_ids\":[\"a\",2],\"reason_id\":1}",
         "application_ids[1]"},
        {"/v1/applications/bulk-reject", "{\"application_ids\":[\"a\"]}", "reason_id"},
        /* No long long holds it: refused, not converted (undefined behaviour). */
        {"/v1/applications/bulk-reject", "{\"application_ids\":[\"a\"],\"reason_id\":1e300}",
         "reason_id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(&f, "POST", cases[i].path, NULL, cases[i].body, 400, "invalid_request",
                     cases[i].needle);
    expect_error(&f, "PATCH", cf, NULL, "{}", 400, "invalid_request", "values");
    expect_error(&f, "PATCH", cf, NULL, "{\"values\":[1]}", 400, "invalid_request", "values");
    expect_error(&f, "PATCH", cf, NULL, "{\"values\":{}}", 400, "invalid_request", "values");
    expect_error(&f, "GET", "/v1/jobs/enhanced?limit=0", "ats1", NULL, 400, "invalid_request",
                 "limit");
    expect_error(&f, "POST", stage, NULL, "{\"stage_id\":", 400, "invalid_json", NULL);

    /* A long filename and a note over 100 KB. */
    char *big = malloc(110 * 1024);
    ck_assert_ptr_nonnull(big);
    int n = snprintf(big, 110 * 1024, "{\"filename\":\"");
    memset(big + n, 'a', 256);
    snprintf(big + n + 256, 110 * 1024 - (size_t)n - 256, ".pdf\",\"data_base64\":\"aGk=\"}");
    expect_error(&f, "POST", att, NULL, big, 400, "invalid_request", "filename");
    n = snprintf(big, 110 * 1024, "{\"note\":\"");
    memset(big + n, 'x', 100 * 1024 + 1);
    snprintf(big + n + 100 * 1024 + 1, 64, "\"}");
    expect_error(&f, "POST", notes, NULL, big, 400, "invalid_request", "note");
    /* exactly 100 KB is fine */
    snprintf(big + n + 100 * 1024, 64, "\"}");
    cJSON *o = expect_echo(&f, "POST", notes, NULL, big, "notes.add_to_application");
    cJSON_Delete(o);
    free(big);

    /* A body refers to ids; unknown ones are 404 after validation. */
    char path[256];
    snprintf(path, sizeof path, "/v1/applications/%s/stage", f.job[0]);
    expect_error(&f, "POST", path, NULL, "{\"stage_id\":1}", 404, "not_found", NULL);
    teardown(&f);
}
END_TEST

START_TEST(test_disabled_connection)
{
    fixture f;
    setup(&f);
    ck_assert_int_eq(f.core->store->ops->connection_set_enabled(f.core->store, f.ats2, false), 0);
    ck_assert_int_eq(ah_conns_reload(f.core), 0);
    char path[256];
    snprintf(path, sizeof path, "/v1/applications/%s/stage", f.app9);
    expect_error(&f, "POST", path, NULL, "{\"stage_id\":1}", 409, "connection_disabled", "ats2");
    expect_error(&f, "GET", "/v1/stages", "ats2", NULL, 409, "connection_disabled", NULL);
    /* Stored data stays readable; the other connection still works. */
    cJSON *o = NULL;
    snprintf(path, sizeof path, "/v1/applications/%s", f.app9);
    ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &o), 200);
    cJSON_Delete(o);
    snprintf(path, sizeof path, "/v1/applications/%s/stage", f.app[0]);
    o = expect_echo(&f, "POST", path, NULL, "{\"stage_id\":1}", "applications.move_to_stage");
    cJSON_Delete(o);
    teardown(&f);
}
END_TEST

START_TEST(test_bulk_reject)
{
    fixture f;
    setup(&f);
    /* ats1: A-1 ok, "bad" refused by the plugin; unknown id; globex's id;
     * ats2: A-9 ok (its own bus request); A-1 again (sent once). */
    char body[1024];
    snprintf(body, sizeof body,
             "{\"application_ids\":[\"%s\",\"rec_000000000000000000000000\",\"%s\",\"%s\","
             "\"%s\",\"%s\",\"%s\"],\"reason_id\":42}",
             f.app[0], f.app[2], f.app9, f.gapp, f.app[0], f.job[0]);
    cJSON *o = NULL;
    ck_assert_int_eq(req(&f, "POST", "/v1/applications/bulk-reject?wait=true", NULL, body, &o), 200);
    const cJSON *res = jget(o, "data.results");
    ck_assert_int_eq(cJSON_GetArraySize(res), 7);
    const char *want_id[] = {f.app[0], "rec_000000000000000000000000", f.app[2], f.app9,
                             f.gapp, f.app[0], f.job[0]};
    const bool want_ok[] = {true, false, false, true, false, true, false};
    const char *want_code[] = {NULL, "not_found", "conflict", NULL, "not_found", NULL,
                               "not_found"};
    for (int i = 0; i < 7; i++) {
        const cJSON *r = cJSON_GetArrayItem(res, i);
        ck_jstr(r, "id", want_id[i]);
        ck_assert_msg(cJSON_IsTrue(jget(r, "ok")) == want_ok[i], "item %d", i);
        if (want_code[i] != NULL)
            ck_jstr(r, "error.code", want_code[i]);
        else
            ck_assert_ptr_null(jget(r, "error"));
    }
    ck_assert_int_eq(jget(o, "data.succeeded")->valueint, 3);
    ck_assert_int_eq(jget(o, "data.failed")->valueint, 4);
    cJSON_Delete(o);

    /* A connection whose plugin call fails: its items fail, others don't. */
    ck_assert_int_eq(f.core->store->ops->connection_set_enabled(f.core->store, f.ats2, false), 0);
    ck_assert_int_eq(ah_conns_reload(f.core), 0);
    snprintf(body, sizeof body, "{\"application_ids\":[\"%s\",\"%s\"],\"reason_id\":\"r\"}",
             f.app9, f.app[1]);
    ck_assert_int_eq(req(&f, "POST", "/v1/applications/bulk-reject?wait=true", NULL, body, &o), 200);
    ck_jstr(o, "data.results.0.error.code", "connection_disabled");
    ck_assert(cJSON_IsTrue(jget(o, "data.results.1.ok")));
    ck_assert_int_eq(jget(o, "data.succeeded")->valueint, 1);
    ck_assert_int_eq(jget(o, "data.failed")->valueint, 1);
    cJSON_Delete(o);
    teardown(&f);
}
END_TEST


/* ?wait=true is the bulk job, waited for: the answer names the job, and
 * GET /v1/bulk/{id} reports it done with the same result per item. */
START_TEST(test_bulk_reject_wait_is_a_job)
{
    fixture f;
    setup(&f);
    char body[512], path[128];
    snprintf(body, sizeof body,
             "{\"application_ids\":[\"%s\",\"%s\",\"rec_0123\",\"%s\"],\"reason_id\":7}",
             f.app[1], f.app[2], f.app[1]);
    cJSON *o = NULL;
    ck_assert_int_eq(req(&f, "POST", "/v1/applications/bulk-reject?wait=true", NULL, body, &o),
                     200);
    const char *job = jstr(o, "data.id");
    ck_assert_msg(job != NULL && strncmp(job, "bulk_", 5) == 0, "no job id");
    ck_assert_int_eq(jget(o, "data.succeeded")->valueint, 2);
    ck_assert_int_eq(jget(o, "data.failed")->valueint, 2);
    snprintf(path, sizeof path, "/v1/bulk/%s", job);
    cJSON *g = NULL;
    ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &g), 200);
    ck_jstr(g, "data.status", "done");
    ck_jstr(g, "data.action", "reject");
    ck_assert_int_eq(jget(g, "data.total")->valueint, 4);
    ck_assert_int_eq(jget(g, "data.pending")->valueint, 0);
    ck_assert_ptr_nonnull(jstr(g, "data.finished_at"));
    const cJSON *res = jget(o, "data.results"), *items = jget(g, "data.items");
    ck_assert_int_eq(cJSON_GetArraySize(res), 4);
    ck_assert_int_eq(cJSON_GetArraySize(items), 4);
    for (int i = 0; i < 4; i++) {
        const cJSON *r = cJSON_GetArrayItem(res, i), *it = cJSON_GetArrayItem(items, i);
        ck_assert_str_eq(jstr(r, "id"), jstr(it, "id"));
        bool ok = cJSON_IsTrue(jget(r, "ok"));
        ck_assert_str_eq(jstr(it, "status"), ok ? "succeeded" : "failed");
        if (!ok) {
            ck_assert_str_eq(jstr(r, "error.code"), jstr(it, "error.code"));
            ck_assert_str_eq(jstr(r, "error.message"), jstr(it, "error.message"));
        }
    }
    ck_jstr(o, "data.results.1.error.code", "conflict");
    ck_jstr(o, "data.results.2.error.code", "not_found");
    ck_assert(cJSON_IsTrue(jget(o, "data.results.3.ok")));
    cJSON_Delete(g);
    cJSON_Delete(o);

    /* A job that cannot finish (the worker is stopped) is answered at once
     * with its state: 202, as GET /v1/bulk/{id} has it. */
    ah_bulk_stop(f.core);
    snprintf(body, sizeof body, "{\"application_ids\":[\"%s\"],\"reason_id\":7}", f.app[0]);
    ck_assert_int_eq(req(&f, "POST", "/v1/applications/bulk-reject?wait=true", NULL, body, &o),
                     202);
    ck_jstr(o, "data.status", "queued");
    ck_assert_int_eq(jget(o, "data.pending")->valueint, 1);
    ck_jstr(o, "data.items.0.id", f.app[0]);
    ck_jstr(o, "data.items.0.status", "queued");
    snprintf(path, sizeof path, "/v1/bulk/%s", jstr(o, "data.id"));
    cJSON_Delete(o);
    ck_assert_int_eq(req(&f, "GET", path, NULL, NULL, &o), 200);
    ck_jstr(o, "data.status", "queued");
    cJSON_Delete(o);
    /* Validation is the bulk job's, with or without wait. */
    expect_error(&f, "POST", "/v1/applications/bulk-reject?wait=true", NULL,
                 "{\"application_ids\":[\"a\"],\"stage_id\":1}", 400, "invalid_request",
                 "stage_id");
    teardown(&f);
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("reads");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_list_cursor_walk);
    tcase_add_test(tc, test_list_filters);
    tcase_add_test(tc, test_get_by_id);
    tcase_add_test(tc, test_metrics_route_labels);
    tcase_add_test(tc, test_metrics_threads_add_up);
    tcase_add_test(tc, test_log_bad_bounds);
    suite_add_tcase(s, tc);
    TCase *w = tcase_create("writes");
    tcase_set_timeout(w, 60);
    tcase_add_test(w, test_application_writes);
    tcase_add_test(w, test_candidate_and_job_writes);
    tcase_add_test(w, test_validation);
    tcase_add_test(w, test_disabled_connection);
    tcase_add_test(w, test_bulk_reject);
    tcase_add_test(w, test_bulk_reject_wait_is_a_job);
    suite_add_tcase(s, w);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(api_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
