/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plugin loader and registry, driven with the fake host API against the
 * template plugin and the fixtures in tests/fixtures/plugins.
 */
#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dlfcn.h>

#include "isolate.h"
#include "mirror.h"
#include "registry.h"
#include "router.h"
#include "support/fake_host.h"

/* ---------------------------------------------------------------------- */
/* helpers                                                                */
/* ---------------------------------------------------------------------- */

static void env_path(char *out, size_t n, const char *var, const char *file)
{
    const char *dir = getenv(var);
    ck_assert_msg(dir != NULL, "%s is not set (run through ctest)", var);
    int w = snprintf(out, n, "%s/%s", dir, file);
    ck_assert(w > 0 && (size_t)w < n);
}

static void fixture(char *out, size_t n, const char *file)
{
    env_path(out, n, "AH_FIXTURE_DIR", file);
}

/* Whether this process has `path` mapped: a refused or released plugin
 * must leave no mapping behind. Compares canonical paths, as the kernel
 * prints them. */
static bool mapped(const char *path)
{
    char real[PATH_MAX];
    const char *want = realpath(path, real) != NULL ? real : path;
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_msg(f != NULL, "cannot read /proc/self/maps");
    char line[PATH_MAX + 256];
    bool found = false;
    size_t wlen = strlen(want);
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        const char *p = strchr(line, '/');
        if (p == NULL || strncmp(p, want, wlen) != 0)
            continue;
        found = p[wlen] == '\n' || p[wlen] == ' ' || p[wlen] == '\0';
    }
    fclose(f);
    return found;
}

typedef struct fixture_env {
    ah_fake_host *fh;
    const ah_host_api *api;
} fixture_env;

/* Entries of directory dir whose name starts with prefix. */
static int files_named(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot read %s", dir);
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* A fresh, empty TMPDIR for the test (a private copy once went there). */
static void fresh_tmpdir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/atshub-loader-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(setenv("TMPDIR", dir, 1), 0);
}

static fixture_env env_new(void)
{
    fixture_env e = {ah_fake_host_new(), ah_fake_host_api()};
    ck_assert_ptr_nonnull(e.fh);
    e.fh->quiet = true;
    return e;
}

/* jobs.get on generation g; returns the "version" of the reply (static
 * storage of the caller's buffer). */
static void job_version(const ah_generation *g, ah_fake_host *fh, const char *body_text,
                        char *out, size_t n)
{
    ah_call_ext x;
    ah_fake_call_init(fh, &x, NULL);
    x.call.plugin_state = g->plugin_state;
    cJSON *body = cJSON_Parse(body_text != NULL ? body_text : "{}");
    ck_assert_ptr_nonnull(body);
    cJSON *reply = NULL;
    ck_assert_ptr_nonnull(g->desc->jobs);
    ck_assert_int_eq(g->desc->jobs->get(&x.call, body, &reply), AH_OK);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(reply, "version");
    ck_assert(cJSON_IsString(v));
    snprintf(out, n, "%s", v->valuestring);
    cJSON_Delete(reply);
    cJSON_Delete(body);
}

/* Hands the fixture a pointer to `counter`; its fini increments it. */
static void arm_fini_counter(const ah_generation *g, ah_fake_host *fh, int *counter)
{
    char body[128], version[32];
    snprintf(body, sizeof(body), "{\"fini_counter\":\"%p\"}", (void *)counter);
    job_version(g, fh, body, version, sizeof(version));
}

/* ---------------------------------------------------------------------- */
/* the loader                                                             */
/* ---------------------------------------------------------------------- */

START_TEST(test_template_loads)
{
    fixture_env e = env_new();
    char path[PATH_MAX], err[1024] = "";
    env_path(path, sizeof(path), "AH_PLUGIN_DIR", "template.so");
    ah_generation *g = ah_plugin_load_ctx(path, e.api, e.fh, err, sizeof(err));
    ck_assert_msg(g != NULL, "template refused: %s", err);
    ck_assert_str_eq(g->name, "template");
    ck_assert_str_eq(g->desc->name, "template");
    ck_assert_str_eq(g->desc->version, "1.0.0");
    ck_assert_str_eq(g->path, path);
    ck_assert_str_eq(g->loaded_path, path);
    ck_assert_int_eq(atomic_load(&g->refs), 1);
    ck_assert(mapped(path));

    /* The descriptor works through the fake host: open reads a setting. */
    ah_fake_conn *conn = ah_fake_conn_new(e.fh, "acme", "main");
    ck_assert_ptr_nonnull(conn);
    ck_assert_int_eq(ah_fake_conn_set(conn, "greeting", "bonjour"), 0);
    ah_call_ext x;
    ah_fake_call_init(e.fh, &x, conn);
    void *ctx = NULL;
    ck_assert_int_eq(g->desc->open(&x.call, &ctx), AH_OK);
    x.call.conn_ctx = ctx;
    cJSON *body = cJSON_Parse("{\"job_id\":\"j1\"}"), *reply = NULL;
    ck_assert_int_eq(g->desc->jobs->get(&x.call, body, &reply), AH_OK);
    ck_assert_str_eq(cJSON_GetObjectItem(reply, "greeting")->valuestring, "bonjour");
    ck_assert_str_eq(cJSON_GetObjectItem(reply, "job_id")->valuestring, "j1");
    cJSON_Delete(reply);
    cJSON_Delete(body);
    /* A refused request is described through fail(). */
    body = cJSON_Parse("{\"job_id\":7}");
    reply = NULL;
    ck_assert_int_eq(g->desc->jobs->get(&x.call, body, &reply), AH_ERR);
    ck_assert_str_eq(x.err_code, AH_E_INVALID);
    ck_assert_int_eq(x.err_status, 400);
    ck_assert_ptr_nonnull(strstr(x.err_msg, "job_id"));
    cJSON_Delete(body);
    g->desc->close(g->plugin_state, ctx);
    ah_fake_conn_free(conn);

    ah_generation_release(g);
    ck_assert(!mapped(path));
    ah_fake_host_free(e.fh);
}
END_TEST

START_TEST(test_check_template)
{
    fixture_env e = env_new();
    char path[PATH_MAX], err[1024] = "";
    env_path(path, sizeof(path), "AH_PLUGIN_DIR", "template.so");
    ck_assert_msg(ah_plugin_check(path, e.api, err, sizeof(err)) == 0, "%s", err);
    ck_assert(!mapped(path));
    /* check does not run init: a plugin whose init fails passes the check. */
    fixture(path, sizeof(path), "init_fails.so");
    ck_assert_msg(ah_plugin_check(path, e.api, err, sizeof(err)) == 0, "%s", err);
    ck_assert(!mapped(path));
    /* The base the bad_descriptor fixtures are mutated from is valid. */
    fixture(path, sizeof(path), "bad_descriptor_ok.so");
    ck_assert_msg(ah_plugin_check(path, e.api, err, sizeof(err)) == 0, "%s", err);
    fixture(path, sizeof(path), "abi_major.so");
    ck_assert_int_eq(ah_plugin_check(path, e.api, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "ABI 2."));
    ck_assert(!mapped(path));
    ah_fake_host_free(e.fh);
}
END_TEST

typedef struct refusal {
    const char *file;
    const char *expect[3]; /* substrings the message must contain */
} refusal;

static const refusal refusals[] = {
    {"abi_major.so", {"built for ABI 2.0", "this host speaks ABI 1.4"}},
    {"abi_minor.so", {"plugin needs ABI 1.99", "upgrade atshub"}},
    {"abi_needs_1_5.so", {"plugin needs ABI 1.5, this host speaks ABI 1.4"}},
    {"no_entry.so", {"no entry symbol atshub_plugin_entry_v1", "not an atshub plugin"}},
    {"abi_v2_symbol.so", {"ABI major 2", "atshub_plugin_entry_v2", "speaks ABI 1.4"}},
    {"missing_callback.so", {"subscription 'event.x'", "has no handler"}},
    {"init_fails.so", {"init failed: simulated init failure"}},
    {"bad_table_size.so", {"table 'applications'", "struct_size 3", "different SDK"}},
    {"dup_setting.so", {"setting 'base_url' is declared twice"}},
    {"route_no_handler.so", {"route POST /x has no handler"}},
    {"close_without_open.so", {"sets close but not open"}},
    {"empty_table.so", {"table 'jobs'", "no operation"}},
    {"bad_name.so", {"'Bad-Name'", "[a-z0-9_]+"}},
    {"ops_unserved.so", {"op_fields: 'jobs.get' has fields but the plugin does not serve it"}},
    {"ops_dup_field.so", {"op_fields: jobs.get: field 'job_id' is declared twice"}},
    {"route_host_exact.so", {"route GET /v1/health", "host's own /v1 paths"}},
    {"route_host_prefix.so", {"route POST /v1/bus/ (a prefix)", "host's own /v1 paths"}},
    {"route_host_root.so", {"route GET /v (a prefix)", "host's own /v1 paths"}},
    {"route_host_tmpl.so", {"route GET /{x}/health", "host's own /v1 paths"}},
    {"route_dup.so", {"route GET /fixture/ok is declared twice"}},
    {"route_tmpl_bad.so", {"route GET /fixture/x{id}", "a whole segment {name}"}},
    {"route_token_tmpl.so", {"route POST /hooks/{tenant}/{token} (a prefix)", "has none"}},
    {"writes_bad.so", {"op_writes 'postings.configure' has unknown reconcile 99"}},
    {"not_a_plugin.so", {"cannot open", "ldd(1)"}},
    {"does_not_exist.so", {"cannot open", "check the path"}},
};

START_TEST(test_refused)
{
    const refusal *r = &refusals[_i];
    fixture_env e = env_new();
    char path[PATH_MAX], err[1024] = "";
    fixture(path, sizeof(path), r->file);
    ah_generation *g = ah_plugin_load_ctx(path, e.api, e.fh, err, sizeof(err));
    ck_assert_msg(g == NULL, "%s was loaded", r->file);
    /* Every message starts with the path, then says what is wrong. */
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':',
                  "no path prefix: %s", err);
    for (size_t i = 0; i < 3 && r->expect[i] != NULL; i++)
        ck_assert_msg(strstr(err, r->expect[i]) != NULL, "%s: expected '%s' in: %s",
                      r->file, r->expect[i], err);
    ck_assert_msg(!mapped(path), "%s is still mapped after the refusal", r->file);
    ah_fake_host_free(e.fh);
}
END_TEST

/* The same refusals with the plugin isolated: the daemon never opens the
 * file, its process describes the descriptor, and the loader's checks on
 * that description say the same. */
START_TEST(test_refused_isolated)
{
    const refusal *r = &refusals[_i];
    fixture_env e = env_new();
    char path[PATH_MAX], err[1024] = "";
    fixture(path, sizeof(path), r->file);
    ah_isolate_opts o = {.call_timeout_ms = 10000, .restart_backoff_ms = 10};
    ah_generation *g = ah_plugin_load_isolated(path, e.api, &o, err, sizeof(err));
    ck_assert_msg(g == NULL, "%s was loaded", r->file);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':',
                  "no path prefix: %s", err);
    for (size_t i = 0; i < 3 && r->expect[i] != NULL; i++)
        ck_assert_msg(strstr(err, r->expect[i]) != NULL, "%s: expected '%s' in: %s",
                      r->file, r->expect[i], err);
    ck_assert_msg(!mapped(path), "%s is mapped in the daemon", r->file);
    ah_fake_host_free(e.fh);
}
END_TEST

/* A plugin that crashes in its constructor or its entry function costs
 * only its process: the load is refused, saying so, and the daemon (this
 * process) carries on; without the crash the same file loads, never
 * mapped here. */
START_TEST(test_crash_while_loading_isolated)
{
    fixture_env e = env_new();
    char path[PATH_MAX], err[1024];
    fixture(path, sizeof(path), "crash_load.so");
    /* The plugin process gets the variable only when named (env). */
    ah_isolate_opts o = {.call_timeout_ms = 10000, .restart_backoff_ms = 10,
                         .env = "AH_FIXTURE_CRASH"};
    const char *when[] = {"ctor", "entry"};
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(setenv("AH_FIXTURE_CRASH", when[i], 1), 0);
        err[0] = '\0';
        ck_assert_ptr_null(ah_plugin_load_isolated(path, e.api, &o, err, sizeof(err)));
        ck_assert_msg(strncmp(err, path, strlen(path)) == 0, "%s", err);
        ck_assert_msg(strstr(err, "died while loading the plugin") != NULL &&
                          strstr(err, "SIGSEGV") != NULL,
                      "%s: %s", when[i], err);
    }
    ck_assert_int_eq(unsetenv("AH_FIXTURE_CRASH"), 0);
    char tmp[64];
    fresh_tmpdir(tmp, sizeof tmp);
    ah_generation *g = ah_plugin_load_isolated(path, e.api, &o, err, sizeof(err));
    ck_assert_msg(g != NULL, "%s", err);
    ck_assert_str_eq(g->desc->name, "fixture_crash_load");
    ck_assert_ptr_null(g->dl);
    ck_assert_msg(!mapped(path) && !mapped(g->loaded_path), "the plugin is mapped in the daemon");
    /* Its process loads a copy in memory, which no kill of the daemon can
     * leave behind as a file. */
    ck_assert_msg(strncmp(g->loaded_path, "/memfd:atshub-", 14) == 0, "%s", g->loaded_path);
    ck_assert_int_eq(files_named(tmp, "atshub-"), 0);
    ah_generation_release(g);
    ck_assert_int_eq(rmdir(tmp), 0);
    ck_assert_int_eq(unsetenv("TMPDIR"), 0);
    ah_fake_host_free(e.fh);
}
END_TEST

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void same_fields(const char *file, const ah_field_spec *a, const ah_field_spec *b)
{
    ck_assert_msg((a == NULL) == (b == NULL), "%s: field table presence", file);
    for (; a != NULL && a->name != NULL; a++, b++) {
        ck_assert_msg(same_str(a->name, b->name) && a->type == b->type && a->flags == b->flags &&
                          a->min_size == b->min_size && a->max_size == b->max_size &&
                          a->max_item == b->max_item && a->min == b->min && a->max == b->max &&
                          same_str(a->one_of, b->one_of) && same_str(a->help, b->help),
                      "%s: field %s", file, a->name);
        same_fields(file, a->fields, b->fields);
    }
    ck_assert_msg(b == NULL || b->name == NULL, "%s: extra fields", file);
}

/* What a plugin host process describes, rebuilt, says what the descriptor
 * says: every bundled plugin and the fixtures with routes, streams, field
 * tables and write declarations. */
START_TEST(test_mirror_matches)
{
    static const struct {
        const char *var, *file;
    } files[] = {
        {"AH_PLUGIN_DIR", "erp.so"},          {"AH_PLUGIN_DIR", "erecruit.so"},
        {"AH_PLUGIN_DIR", "linkedin.so"},     {"AH_PLUGIN_DIR", "topcv.so"},
        {"AH_PLUGIN_DIR", "careerbuilder.so"}, {"AH_PLUGIN_DIR", "template.so"},
        {"AH_FIXTURE_DIR", "faulty.so"},      {"AH_FIXTURE_DIR", "streamer.so"},
        {"AH_FIXTURE_DIR", "writes_declared.so"}, {"AH_FIXTURE_DIR", "abi_1_0.so"},
        {"AH_FIXTURE_DIR", "flaky.so"},
    };
    fixture_env e = env_new();
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[PATH_MAX], err[512] = "";
        env_path(path, sizeof path, files[f].var, files[f].file);
        void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        ck_assert_msg(dl != NULL, "%s", dlerror());
        ah_entry_fn entry = (ah_entry_fn)dlsym(dl, AH_ENTRY_SYMBOL);
        ck_assert_ptr_nonnull(entry);
        const ah_plugin_descriptor *a = entry(e.api);
        cJSON *j = ah_mirror_describe(a);
        ck_assert_ptr_nonnull(j);
        /* Through text, as over the socket. */
        char *text = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        j = cJSON_Parse(text);
        free(text);
        const ah_plugin_descriptor *b = ah_mirror_build(j, err, sizeof err);
        cJSON_Delete(j);
        const char *fn = files[f].file;
        ck_assert_msg(b != NULL, "%s: %s", fn, err);
        ck_assert_int_eq(a->struct_size, b->struct_size);
        ck_assert(a->abi_major == b->abi_major && a->abi_minor == b->abi_minor);
        ck_assert(same_str(a->name, b->name) && same_str(a->version, b->version) &&
                  same_str(a->description, b->description));
        ck_assert((a->init != NULL) == (b->init != NULL) &&
                  (a->fini != NULL) == (b->fini != NULL) &&
                  (a->open != NULL) == (b->open != NULL) &&
                  (a->close != NULL) == (b->close != NULL));
        ck_assert((a->settings == NULL) == (b->settings == NULL));
        for (size_t i = 0; a->settings != NULL && a->settings[i].key != NULL; i++) {
            const ah_setting_spec *x = &a->settings[i], *y = &b->settings[i];
            ck_assert_msg(same_str(x->key, y->key) && x->type == y->type &&
                              same_str(x->default_value, y->default_value) &&
                              x->flags == y->flags && same_str(x->help, y->help),
                          "%s: setting %s", fn, x->key);
        }
        size_t nt = 0;
        const ah_topic *t = ah_router_topics(&nt);
        for (size_t i = 0; i < nt; i++)
            ck_assert_msg((ah_router_resolve(a, &t[i]) != NULL) ==
                              (ah_router_resolve(b, &t[i]) != NULL),
                          "%s: %s", fn, t[i].topic);
        if (a->streaming != NULL)
            ck_assert_int_eq(a->streaming->backfill_hours, b->streaming->backfill_hours);
        for (size_t i = 0; a->routes != NULL && a->routes[i].method != NULL; i++)
            ck_assert_msg(same_str(a->routes[i].method, b->routes[i].method) &&
                              same_str(a->routes[i].path, b->routes[i].path) &&
                              a->routes[i].flags == b->routes[i].flags &&
                              same_str(a->routes[i].action, b->routes[i].action) &&
                              b->routes[i].handler != NULL,
                          "%s: route %s", fn, a->routes[i].path);
        for (size_t i = 0; a->subscriptions != NULL && a->subscriptions[i].pattern != NULL; i++)
            ck_assert(same_str(a->subscriptions[i].pattern, b->subscriptions[i].pattern));
        if (AH_HAS(a, rate_limit_rps))
            ck_assert_int_eq(a->rate_limit_rps, b->rate_limit_rps);
        if (AH_HAS(a, needs_abi_minor))
            ck_assert_int_eq(a->needs_abi_minor, b->needs_abi_minor);
        if (AH_HAS(a, op_fields)) {
            ck_assert((a->op_fields == NULL) == (b->op_fields == NULL));
            for (size_t i = 0; a->op_fields != NULL && a->op_fields[i].topic != NULL; i++) {
                ck_assert(same_str(a->op_fields[i].topic, b->op_fields[i].topic));
                same_fields(fn, a->op_fields[i].fields, b->op_fields[i].fields);
            }
        }
        if (AH_HAS(a, op_writes))
            for (size_t i = 0; a->op_writes != NULL && a->op_writes[i].topic != NULL; i++) {
                const ah_op_write *x = &a->op_writes[i], *y = &b->op_writes[i];
                ck_assert_msg(same_str(x->topic, y->topic) && x->reconcile == y->reconcile &&
                                  same_str(x->how, y->how) &&
                                  (x->settle != NULL) == (y->settle != NULL),
                              "%s: write %s", fn, x->topic);
            }
        ah_mirror_free(b);
        dlclose(dl);
    }
    ah_fake_host_free(e.fh);
}
END_TEST

/* The description comes from a process the daemon does not trust: it may
 * not point the daemon at bytes of its choosing, and numbers out of range
 * are clamped, never cast. */
START_TEST(test_mirror_hostile)
{
    char text[512], err[256];
    /* A "table" at the offset of the settings pointer. */
    snprintf(text, sizeof text,
             "{\"struct_size\":%zu,\"abi_major\":1,\"name\":\"x\",\"version\":\"1\","
             "\"tables\":[{\"off\":%zu,\"size\":16,\"bytes\":\"10000000000000000100000000000000\"}]}",
             sizeof(ah_plugin_descriptor), offsetof(ah_plugin_descriptor, settings));
    cJSON *j = cJSON_Parse(text);
    ck_assert_ptr_nonnull(j);
    ck_assert_ptr_null(ah_mirror_build(j, err, sizeof err));
    cJSON_Delete(j);
    /* The same table twice. */
    snprintf(text, sizeof text,
             "{\"struct_size\":%zu,\"tables\":[{\"off\":%zu,\"size\":4},{\"off\":%zu,\"size\":4}]}",
             sizeof(ah_plugin_descriptor), offsetof(ah_plugin_descriptor, jobs),
             offsetof(ah_plugin_descriptor, jobs));
    j = cJSON_Parse(text);
    ck_assert_ptr_null(ah_mirror_build(j, err, sizeof err));
    cJSON_Delete(j);
    /* Numbers out of range. */
    j = cJSON_Parse("{\"struct_size\":-5,\"abi_major\":1e300,\"abi_minor\":-1e300,"
                    "\"settings\":[{\"key\":\"a\",\"type\":1e30,\"flags\":-3}],"
                    "\"tables\":[{\"off\":1e300,\"size\":-1}]}");
    ck_assert_ptr_nonnull(j);
    ck_assert_ptr_null(ah_mirror_build(j, err, sizeof err)); /* the table */
    cJSON_DeleteItemFromObject(j, "tables");
    const ah_plugin_descriptor *d = ah_mirror_build(j, err, sizeof err);
    ck_assert_msg(d != NULL, "%s", err);
    ck_assert_uint_eq(d->struct_size, 0);
    ck_assert_uint_eq(d->abi_major, UINT16_MAX);
    ck_assert_uint_eq(d->abi_minor, 0);
    ck_assert_int_eq((int)d->settings[0].type, INT_MAX);
    ck_assert_uint_eq(d->settings[0].flags, 0);
    ck_assert_ptr_null(d->settings[1].key);
    ah_mirror_free(d);
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_distinct_messages)
{
    /* Each fixture must be refused for its own reason, not a shared one. */
    fixture_env e = env_new();
    size_t n = sizeof(refusals) / sizeof(refusals[0]);
    char msgs[sizeof(refusals) / sizeof(refusals[0])][1024];
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        fixture(path, sizeof(path), refusals[i].file);
        ck_assert_ptr_null(ah_plugin_load_ctx(path, e.api, e.fh, msgs[i], sizeof(msgs[i])));
        /* Compare without the path prefix. */
        memmove(msgs[i], msgs[i] + strlen(path), strlen(msgs[i] + strlen(path)) + 1);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            if (strstr(refusals[i].file, "not_a_plugin") != NULL ||
                strstr(refusals[j].file, "not_a_plugin") != NULL)
                continue; /* both "cannot open", with different dlerror()s */
            ck_assert_msg(strcmp(msgs[i], msgs[j]) != 0, "%s and %s share: %s",
                          refusals[i].file, refusals[j].file, msgs[i]);
        }
    ah_fake_host_free(e.fh);
}
END_TEST

START_TEST(test_init_sees_host_ctx)
{
    fixture_env e = env_new();
    char path[PATH_MAX], err[1024] = "";
    fixture(path, sizeof(path), "good_v1.so");
    ah_generation *g = ah_plugin_load_ctx(path, e.api, e.fh, err, sizeof(err));
    ck_assert_msg(g != NULL, "%s", err);
    ck_assert_uint_ge(e.fh->log_count, 1);
    ck_assert_ptr_nonnull(strstr(e.fh->last_log, "init"));
    ck_assert_ptr_nonnull(g->plugin_state);
    int fini = 0;
    arm_fini_counter(g, e.fh, &fini);
    ah_generation_release(g);
    ck_assert_int_eq(fini, 1);
    ck_assert(!mapped(path));
    ah_fake_host_free(e.fh);
}
END_TEST

START_TEST(test_same_path_twice)
{
    fixture_env e = env_new();
    char path[PATH_MAX], err[1024] = "", v[32], tmp[64];
    fresh_tmpdir(tmp, sizeof tmp);
    fixture(path, sizeof(path), "good_v1.so");
    ah_generation *g1 = ah_plugin_load_ctx(path, e.api, e.fh, err, sizeof(err));
    ck_assert_msg(g1 != NULL, "%s", err);
    ah_generation *g2 = ah_plugin_load_ctx(path, e.api, e.fh, err, sizeof(err));
    ck_assert_msg(g2 != NULL, "%s", err);
    ck_assert_str_eq(g2->path, path);
    /* The second comes from a copy in memory: no file in any directory. */
    ck_assert_msg(strncmp(g2->loaded_path, "/memfd:atshub-good_v1-", 22) == 0, "%s",
                  g2->loaded_path);
    ck_assert(g1->dl != g2->dl);
    ck_assert(g1->desc != g2->desc);
    ck_assert(mapped(g2->loaded_path));
    ck_assert_int_eq(files_named(tmp, "atshub-"), 0);

    int fini1 = 0, fini2 = 0;
    arm_fini_counter(g1, e.fh, &fini1);
    arm_fini_counter(g2, e.fh, &fini2);
    char copy[PATH_MAX];
    snprintf(copy, sizeof(copy), "%s", g2->loaded_path);
    ah_generation_release(g2);
    ck_assert_int_eq(fini2, 1);
    ck_assert_int_eq(fini1, 0);
    ck_assert(!mapped(copy)); /* the private copy is gone */
    job_version(g1, e.fh, NULL, v, sizeof(v)); /* the first still serves */
    ck_assert_str_eq(v, "1.0.0");
    ah_generation_release(g1);
    ck_assert_int_eq(fini1, 1);
    ck_assert(!mapped(path));
    ck_assert_int_eq(rmdir(tmp), 0);
    ck_assert_int_eq(unsetenv("TMPDIR"), 0);
    ah_fake_host_free(e.fh);
}
END_TEST

/* ABI minors: what a plugin needs decides, and older layouts still load. */
START_TEST(test_abi_minor_compat)
{
    fixture_env e = env_new();
    char path[PATH_MAX], err[1024] = "";

    /* Built with a 1.2 SDK but needing only 1.0: loads on this 1.1 host. */
    fixture(path, sizeof(path), "abi_newer_sdk.so");
    ah_generation *g = ah_plugin_load_ctx(path, e.api, e.fh, err, sizeof(err));
    ck_assert_msg(g != NULL, "%s", err);
    ck_assert_uint_eq(g->desc->abi_minor, 2);
    ah_generation_release(g);

    /* Laid out as ABI 1.0: loads although what lies past its descriptor
     * says "needs 1.99", serves jobs.get, and the 1.1 postings slot past
     * its table's end is absent while the 1.0 slot is there. */
    fixture(path, sizeof(path), "abi_1_0.so");
    g = ah_plugin_load_ctx(path, e.api, e.fh, err, sizeof(err));
    ck_assert_msg(g != NULL, "%s", err);
    ck_assert(!AH_HAS(g->desc, needs_abi_minor));
    ck_assert(!AH_HAS(g->desc, rate_limit_rps));
    char v[32];
    job_version(g, e.fh, NULL, v, sizeof(v));
    ck_assert_str_eq(v, "1.0-layout");
    ck_assert_ptr_null(ah_router_resolve(g->desc, ah_router_topic("postings.configure")));
    ck_assert_ptr_nonnull(ah_router_resolve(g->desc, ah_router_topic("postings.list")));
    ck_assert_int_eq(ah_plugin_check(path, e.api, err, sizeof(err)), 0);
    ah_generation_release(g);

    /* The SDK guide's whole-plugin example (sdk/examples/myats.c). */
    fixture(path, sizeof(path), "sdk_example.so");
    ck_assert_msg(ah_plugin_check(path, e.api, err, sizeof(err)) == 0, "%s", err);
    ah_fake_host_free(e.fh);
}
END_TEST

START_TEST(test_bad_arguments)
{
    fixture_env e = env_new();
    char err[256] = "";
    ck_assert_ptr_null(ah_plugin_load(NULL, e.api, err, sizeof(err)));
    ck_assert_ptr_null(ah_plugin_load("x.so", NULL, err, sizeof(err)));
    ck_assert_ptr_null(ah_plugin_load("x.so", e.api, NULL, 0)); /* no err buffer */
    ck_assert_ptr_null(ah_plugin_load("x.so", e.api, err, 8)); /* truncated */
    ck_assert_uint_lt(strlen(err), 8);
    ah_generation_release(NULL);
    ah_fake_host_free(e.fh);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* the registry                                                           */
/* ---------------------------------------------------------------------- */

typedef struct names {
    char list[256];
} names;

static void collect(void *arg, const ah_generation *g)
{
    names *n = arg;
    size_t len = strlen(n->list);
    snprintf(n->list + len, sizeof(n->list) - len, "%s%s#%u", len ? "," : "", g->name,
             g->number);
}

START_TEST(test_registry_basic)
{
    fixture_env e = env_new();
    ah_registry *reg = ah_registry_new_ctx(e.api, e.fh);
    ck_assert_ptr_nonnull(reg);
    char path[PATH_MAX], tpl[PATH_MAX], err[1024] = "", v[32];
    fixture(path, sizeof(path), "good_v1.so");
    env_path(tpl, sizeof(tpl), "AH_PLUGIN_DIR", "template.so");

    ck_assert_int_eq(ah_registry_count(reg), 0);
    ck_assert_ptr_null(ah_registry_acquire(reg, "fixture_good"));
    ck_assert_int_eq(ah_registry_load(reg, "template", tpl, err, sizeof(err)), 1);
    ck_assert_msg(ah_registry_load(reg, NULL, path, err, sizeof(err)) == 1, "%s", err);
    ck_assert_int_eq(ah_registry_count(reg), 2);

    ah_generation *g = ah_registry_acquire(reg, "fixture_good");
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(g->number, 1);
    ck_assert_ptr_eq(g->reg, reg);
    ck_assert_int_eq(atomic_load(&g->refs), 2);
    job_version(g, e.fh, NULL, v, sizeof(v));
    ck_assert_str_eq(v, "1.0.0");
    ah_generation_release(g);
    ck_assert_ptr_null(ah_registry_acquire(reg, "nope"));

    names n = {""};
    ah_registry_each(reg, collect, &n);
    ck_assert_str_eq(n.list, "fixture_good#1,template#1"); /* name order */

    ck_assert_int_eq(ah_registry_unload(reg, "fixture_good"), 0);
    ck_assert_ptr_null(ah_registry_acquire(reg, "fixture_good"));
    ck_assert_int_eq(ah_registry_unload(reg, "fixture_good"), -1);
    ck_assert_int_eq(ah_registry_unload(reg, "nope"), -1);
    ck_assert_int_eq(ah_registry_count(reg), 1);
    ck_assert(!mapped(path));
    /* Numbers keep growing across unload and load. */
    ck_assert_int_eq(ah_registry_load(reg, "fixture_good", path, err, sizeof(err)), 2);
    n.list[0] = '\0';
    ah_registry_each(reg, collect, &n);
    ck_assert_str_eq(n.list, "fixture_good#2,template#1");

    ah_registry_free(reg);
    ck_assert(!mapped(path));
    ck_assert(!mapped(tpl));
    ah_fake_host_free(e.fh);
}
END_TEST

START_TEST(test_registry_replace)
{
    fixture_env e = env_new();
    ah_registry *reg = ah_registry_new_ctx(e.api, e.fh);
    ck_assert_ptr_nonnull(reg);
    char p1[PATH_MAX], p2[PATH_MAX], err[1024] = "", v[32];
    fixture(p1, sizeof(p1), "good_v1.so");
    fixture(p2, sizeof(p2), "good_v2.so");
    ck_assert_msg(ah_registry_load(reg, "fixture_good", p1, err, sizeof(err)) == 1, "%s", err);
    ah_generation *held = ah_registry_acquire(reg, "fixture_good");
    ck_assert_ptr_nonnull(held);
    int fini1 = 0;
    arm_fini_counter(held, e.fh, &fini1);

    ck_assert_msg(ah_registry_load(reg, "fixture_good", p2, err, sizeof(err)) == 2, "%s", err);
    ck_assert_int_eq(ah_registry_count(reg), 1);
    ah_generation *cur = ah_registry_acquire(reg, "fixture_good");
    ck_assert_ptr_nonnull(cur);
    ck_assert_uint_eq(cur->number, 2);
    job_version(cur, e.fh, NULL, v, sizeof(v));
    ck_assert_str_eq(v, "2.0.0");
    ah_generation_release(cur);

    /* The held old generation keeps working until it is released. */
    ck_assert_int_eq(fini1, 0);
    ck_assert(mapped(p1));
    job_version(held, e.fh, NULL, v, sizeof(v));
    ck_assert_str_eq(v, "1.0.0");
    ah_generation_release(held);
    ck_assert_int_eq(fini1, 1);
    ck_assert(!mapped(p1));
    ck_assert(mapped(p2));

    ah_registry_free(reg);
    ck_assert(!mapped(p2));
    ah_fake_host_free(e.fh);
}
END_TEST

START_TEST(test_registry_failed_replace)
{
    fixture_env e = env_new();
    ah_registry *reg = ah_registry_new_ctx(e.api, e.fh);
    ck_assert_ptr_nonnull(reg);
    char p1[PATH_MAX], bad[PATH_MAX], p2[PATH_MAX], abi[PATH_MAX], err[1024] = "", v[32];
    fixture(p1, sizeof(p1), "good_v1.so");
    fixture(bad, sizeof(bad), "init_fails_good.so");
    fixture(p2, sizeof(p2), "good_v2.so");
    fixture(abi, sizeof(abi), "abi_major.so");
    ck_assert_int_eq(ah_registry_load(reg, "fixture_good", p1, err, sizeof(err)), 1);

    ck_assert_int_eq(ah_registry_load(reg, "fixture_good", bad, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "init failed: simulated init failure"));
    ck_assert(!mapped(bad));
    ck_assert_int_eq(ah_registry_load(reg, "fixture_good", abi, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "ABI 2."));
    /* A plugin under another name than the one asked for is refused. */
    ck_assert_int_eq(ah_registry_load(reg, "other", p2, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "named 'fixture_good', expected 'other'"));
    ck_assert(!mapped(p2));

    ah_generation *g = ah_registry_acquire(reg, "fixture_good");
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(g->number, 1);
    job_version(g, e.fh, NULL, v, sizeof(v));
    ck_assert_str_eq(v, "1.0.0");
    ah_generation_release(g);
    ck_assert_int_eq(ah_registry_count(reg), 1);
    /* A failure takes no number. */
    ck_assert_int_eq(ah_registry_load(reg, "fixture_good", p2, err, sizeof(err)), 2);
    ah_registry_free(reg);
    ah_fake_host_free(e.fh);
}
END_TEST

START_TEST(test_registry_same_path_reload)
{
    fixture_env e = env_new();
    ah_registry *reg = ah_registry_new_ctx(e.api, e.fh);
    ck_assert_ptr_nonnull(reg);
    char p1[PATH_MAX], err[1024] = "", v[32];
    fixture(p1, sizeof(p1), "good_v1.so");
    ck_assert_int_eq(ah_registry_load(reg, NULL, p1, err, sizeof(err)), 1);
    ah_generation *held = ah_registry_acquire(reg, "fixture_good");
    ck_assert_msg(ah_registry_load(reg, NULL, p1, err, sizeof(err)) == 2, "%s", err);
    ah_generation *cur = ah_registry_acquire(reg, "fixture_good");
    ck_assert_ptr_ne(cur, held);
    ck_assert_str_ne(cur->loaded_path, p1);
    char copy[PATH_MAX];
    snprintf(copy, sizeof(copy), "%s", cur->loaded_path);
    ck_assert(mapped(copy));
    job_version(cur, e.fh, NULL, v, sizeof(v));
    ck_assert_str_eq(v, "1.0.0");
    ah_generation_release(held);
    ck_assert(!mapped(p1));
    ah_generation_release(cur);
    ck_assert_int_eq(ah_registry_unload(reg, "fixture_good"), 0);
    ck_assert(!mapped(copy));
    ah_registry_free(reg);
    ah_fake_host_free(e.fh);
}
END_TEST

/* Two plugins cannot hold one route: the server keeps one handler per
 * method and path, so the second would take the first's requests and its
 * unload would take the route away. A new generation of the same plugin
 * replaces its own routes. */
START_TEST(test_registry_route_clash)
{
    fixture_env e = env_new();
    ah_registry *reg = ah_registry_new_ctx(e.api, e.fh);
    ck_assert_ptr_nonnull(reg);
    char ok[PATH_MAX], twin[PATH_MAX], err[1024] = "";
    fixture(ok, sizeof(ok), "bad_descriptor_ok.so");
    fixture(twin, sizeof(twin), "route_twin.so");
    /* Alone, the twin is a good plugin. */
    ck_assert_msg(ah_plugin_check(twin, e.api, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(ah_registry_load(reg, NULL, ok, err, sizeof(err)) == 1, "%s", err);
    ck_assert_int_eq(ah_registry_load(reg, NULL, twin, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "route GET /fixture/ok is already served by plugin "
                              "'fixture_bad_descriptor'") != NULL,
                  "%s", err);
    ck_assert_ptr_null(ah_registry_acquire(reg, "fixture_twin"));
    ck_assert(!mapped(twin));
    /* The same plugin's next generation keeps its route. */
    ck_assert_msg(ah_registry_load(reg, "fixture_bad_descriptor", ok, err, sizeof(err)) == 2,
                  "%s", err);
    /* Once the holder is gone, the route is free. */
    ck_assert_int_eq(ah_registry_unload(reg, "fixture_bad_descriptor"), 0);
    ck_assert_msg(ah_registry_load(reg, NULL, twin, err, sizeof(err)) == 1, "%s", err);
    ck_assert_int_eq(ah_registry_load(reg, NULL, ok, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "already served by plugin 'fixture_twin'"));
    ah_registry_free(reg);
    ah_fake_host_free(e.fh);
}
END_TEST

/* A postings table with only its ABI 1.1 slots is a table with operations. */
START_TEST(test_postings_1_1_slots)
{
    fixture_env e = env_new();
    char path[PATH_MAX], err[1024] = "";
    fixture(path, sizeof(path), "postings_1_1.so");
    ck_assert_msg(ah_plugin_check(path, e.api, err, sizeof(err)) == 0, "%s", err);
    ah_generation *g = ah_plugin_load_ctx(path, e.api, e.fh, err, sizeof(err));
    ck_assert_msg(g != NULL, "%s", err);
    ck_assert_ptr_nonnull(g->desc->postings->configure);
    ah_generation_release(g);
    ah_fake_host_free(e.fh);
}
END_TEST

START_TEST(test_registry_bad_arguments)
{
    fixture_env e = env_new();
    char err[256];
    ck_assert_ptr_null(ah_registry_new(NULL));
    ah_registry *reg = ah_registry_new(e.api);
    ck_assert_ptr_nonnull(reg);
    ck_assert_int_eq(ah_registry_load(reg, NULL, NULL, err, sizeof(err)), -1);
    ck_assert_int_eq(ah_registry_load(NULL, NULL, "x.so", err, sizeof(err)), -1);
    ck_assert_ptr_null(ah_registry_acquire(reg, NULL));
    ck_assert_ptr_null(ah_registry_acquire(NULL, "x"));
    ck_assert_int_eq(ah_registry_unload(reg, NULL), -1);
    ck_assert_uint_eq(ah_registry_count(NULL), 0);
    ah_registry_each(reg, collect, NULL); /* empty: cb never called */
    ah_registry_free(reg);
    ah_registry_free(NULL);
    ah_fake_host_free(e.fh);
}
END_TEST

typedef struct reader {
    ah_registry *reg;
    ah_fake_host *fh;
    atomic_bool *stop;
    unsigned served;
    unsigned missing;
} reader;

static void *reader_main(void *arg)
{
    reader *r = arg;
    while (!atomic_load(r->stop) || r->served < 100) {
        ah_generation *g = ah_registry_acquire(r->reg, "fixture_good");
        if (g == NULL) {
            r->missing++;
            continue;
        }
        char v[32];
        ah_call_ext x;
        ah_fake_call_init(r->fh, &x, NULL);
        x.call.plugin_state = g->plugin_state;
        cJSON *body = cJSON_CreateObject(), *reply = NULL;
        if (body != NULL && g->desc->jobs->get(&x.call, body, &reply) == AH_OK) {
            const cJSON *ver = cJSON_GetObjectItemCaseSensitive(reply, "version");
            if (cJSON_IsString(ver)) {
                snprintf(v, sizeof(v), "%s", ver->valuestring);
                if (strcmp(v, "1.0.0") == 0 || strcmp(v, "2.0.0") == 0)
                    r->served++;
            }
        }
        cJSON_Delete(reply);
        cJSON_Delete(body);
        ah_generation_release(g);
    }
    return NULL;
}

START_TEST(test_registry_swap_under_load)
{
    fixture_env e = env_new();
    ah_registry *reg = ah_registry_new_ctx(e.api, e.fh);
    ck_assert_ptr_nonnull(reg);
    char p1[PATH_MAX], p2[PATH_MAX], err[1024] = "";
    fixture(p1, sizeof(p1), "good_v1.so");
    fixture(p2, sizeof(p2), "good_v2.so");
    ck_assert_int_eq(ah_registry_load(reg, NULL, p1, err, sizeof(err)), 1);

    atomic_bool stop;
    atomic_init(&stop, false);
    enum { NREADERS = 4, NSWAPS = 20 };
    reader readers[NREADERS];
    pthread_t th[NREADERS];
    for (int i = 0; i < NREADERS; i++) {
        readers[i] = (reader){reg, e.fh, &stop, 0, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader_main, &readers[i]), 0);
    }
    for (int i = 0; i < NSWAPS; i++)
        ck_assert_msg(ah_registry_load(reg, "fixture_good", i % 2 ? p1 : p2, err,
                                       sizeof(err)) == i + 2,
                      "swap %d: %s", i, err);
    atomic_store(&stop, true);
    for (int i = 0; i < NREADERS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_uint_eq(readers[i].missing, 0); /* no request saw no plugin */
        ck_assert_uint_ge(readers[i].served, 100);
    }
    ah_generation *g = ah_registry_acquire(reg, "fixture_good");
    ck_assert_uint_eq(g->number, NSWAPS + 1);
    ah_generation_release(g);
    ah_registry_free(reg);
    ck_assert(!mapped(p1));
    ck_assert(!mapped(p2));
    ah_fake_host_free(e.fh);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* the fake host itself                                                   */
/* ---------------------------------------------------------------------- */

static ah_result canned(void *arg, const ah_http_request *req, ah_http_response *resp)
{
    int *hits = arg;
    (*hits)++;
    resp->status = 201;
    resp->body = strdup("{\"ok\":true}");
    resp->body_len = resp->body != NULL ? strlen(resp->body) : 0;
    return resp->body != NULL ? AH_OK : AH_ERR;
}

START_TEST(test_fake_host)
{
    ah_fake_host *fh = ah_fake_host_new();
    ck_assert_ptr_nonnull(fh);
    fh->quiet = true;
    const ah_host_api *h = ah_fake_host_api();
    /* Every member is set. */
    void (*const *fns)(void) = (void (*const *)(void))(const void *)&h->log;
    size_t nfns = (sizeof(*h) - offsetof(ah_host_api, log)) / sizeof(void (*)(void));
    for (size_t i = 0; i < nfns; i++)
        ck_assert_msg(fns[i] != NULL, "host API member %zu is NULL", i);

    ah_fake_conn *conn = ah_fake_conn_new(fh, "acme", "main");
    ck_assert_ptr_nonnull(conn);
    ck_assert_int_eq(ah_fake_conn_set(conn, "base_url", "http://a"), 0);
    ck_assert_int_eq(ah_fake_conn_set(conn, "base_url", "http://b"), 0);
    ck_assert_int_eq(ah_fake_conn_set(conn, "token", "s3cret"), 0);
    ah_call_ext x;
    ah_fake_call_init(fh, &x, conn);
    ck_assert_str_eq(h->setting(&x.call, "base_url"), "http://b");
    ck_assert_ptr_null(h->setting(&x.call, "nope"));
    ck_assert_str_eq(x.call.tenant, "acme");

    ck_assert_int_eq((h->fail)(&x.call, "bad_thing", 418, "oops %d", 7), AH_ERR);
    ck_assert_str_eq(x.err_code, "bad_thing");
    ck_assert_str_eq(x.err_msg, "oops 7");
    ck_assert_int_eq(x.err_status, 418);
    ck_assert_uint_eq(fh->fail_count, 1);

    h->log(&x.call, AH_LOG_INFO, "hello %s", "log");
    ck_assert_str_eq(fh->last_log, "hello log");

    cJSON *j = h->json_parse("{\"a\":\"xyz\"} ", 11);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(h->json_string(j, "a", 3), "xyz");
    ck_assert_ptr_null(h->json_string(j, "a", 2));
    ck_assert_ptr_null(h->json_string(j, "b", 10));
    cJSON_Delete(j);
    ck_assert_ptr_null(h->json_parse("{} x", 4));
    ck_assert_ptr_null(h->json_parse("{}\0x", 4));
    ck_assert_ptr_null(h->json_parse("{\"a\":", 5));
    j = h->json_parse("[1]garbage", 3); /* only len bytes count */
    ck_assert_ptr_nonnull(j);
    cJSON_Delete(j);

    ah_http_request req = {.struct_size = sizeof(req), .method = "GET", .url = "/x"};
    ah_http_response resp;
    ck_assert_int_eq(h->http(&x.call, &req, &resp), AH_ERR);
    ck_assert_ptr_nonnull(strstr(x.err_msg, "no network in fake host"));
    h->http_response_free(&resp);
    int hits = 0;
    fh->http_cb = canned;
    fh->http_arg = &hits;
    ck_assert_int_eq(h->http(&x.call, &req, &resp), AH_OK);
    ck_assert_int_eq(resp.status, 201);
    ck_assert_int_eq(hits, 1);
    h->http_response_free(&resp);

    char tok[64];
    ah_oauth2_params p = {.struct_size = sizeof(p), .token_url = "/t"};
    ck_assert_int_eq(h->oauth2_token(&x.call, &p, tok, sizeof(tok)), AH_OK);
    ck_assert_str_eq(tok, AH_FAKE_TOKEN);
    ck_assert_int_eq(h->oauth2_token(&x.call, &p, tok, 4), AH_ERR);
    h->oauth2_invalidate(&x.call, &p);
    ck_assert_uint_eq(fh->oauth2_invalidate_count, 1);

    char *esc = h->url_escape("a b&c");
    ck_assert_str_eq(esc, "a%20b%26c");
    h->free(esc);

    ck_assert_int_eq(h->publish(&x.call, "event.job.created", cJSON_CreateObject()), AH_OK);
    ck_assert_int_eq(h->publish(&x.call, "event.job.updated", cJSON_CreateObject()), AH_OK);
    ck_assert_uint_eq(fh->publish_count, 2);
    ck_assert_str_eq(fh->last_topic, "event.job.updated");
    ah_record rec = {.struct_size = sizeof(rec), .type = "job", .remote_id = "42"};
    ck_assert_int_eq(h->emit_record(&x.call, &rec), AH_OK);
    ck_assert_uint_eq(fh->record_count, 1);
    ck_assert_str_eq(fh->last_record_id, "42");

    const char *headers[] = {"Content-Type: application/json", "X-Token:abc", NULL};
    const char *query[] = {"page=2", NULL};
    ah_fake_exchange fx = {.method = "POST", .path = "/hook", .headers = headers,
                           .query = query, .body = "{}", .body_len = 2};
    ah_http_exchange *ex = AH_FAKE_EXCHANGE(&fx);
    ck_assert_str_eq(h->http_method(ex), "POST");
    ck_assert_str_eq(h->http_path(ex), "/hook");
    ck_assert_str_eq(h->http_header(ex, "content-type"), "application/json");
    ck_assert_str_eq(h->http_header(ex, "x-token"), "abc");
    ck_assert_ptr_null(h->http_header(ex, "x-tok"));
    ck_assert_str_eq(h->http_query(ex, "page"), "2");
    ck_assert_str_eq(h->http_client_ip(ex), "127.0.0.1");
    size_t blen;
    ck_assert_str_eq(h->http_body(ex, &blen), "{}");
    ck_assert_uint_eq(blen, 2);
    ck_assert_int_eq(h->http_respond_json(ex, 202, cJSON_CreateObject()), AH_OK);
    ck_assert_int_eq(h->http_respond_json(ex, 500, cJSON_CreateObject()), AH_ERR);
    ck_assert_uint_eq(fx.responses, 2);
    ah_fake_exchange_clear(&fx);

    ah_call_ext route;
    ah_fake_call_init(fh, &route, NULL);
    ck_assert_ptr_null(h->conn_by_secret(&route.call, "token", "s3cret"));
    fh->secret_conn = conn;
    ck_assert_ptr_null(h->conn_by_secret(&route.call, "token", "wrong"));
    ah_call *out = h->conn_by_secret(&route.call, "token", "s3cret");
    ck_assert_ptr_nonnull(out);
    ck_assert_str_eq(out->connection, "main");
    ck_assert_str_eq(h->setting(out, "base_url"), "http://b");
    /* A context the host made: fail() may record into it. */
    ck_assert_int_eq((h->fail)(out, "x", 0, "y"), AH_ERR);
    ck_assert_str_eq(((ah_call_ext *)(void *)out)->err_msg, "y");

    /* The in-memory record store. */
    cJSON *fields = cJSON_Parse("{\"email\":\"Ann@Example.com \"}");
    ah_record r1 = {.struct_size = sizeof(r1), .type = "candidate", .remote_id = "c1",
                    .updated_at = "2024-01-01T00:00:00Z", .fields = fields};
    char id[64], id2[64];
    int changed = -1;
    ck_assert_int_eq(h->record_put(&x.call, &r1, id, sizeof(id), &changed), AH_OK);
    ck_assert_int_eq(changed, 1);
    ck_assert_int_eq(h->record_put(&x.call, &r1, id2, sizeof(id2), &changed), AH_OK);
    ck_assert_int_eq(changed, 0);
    ck_assert_str_eq(id, id2);
    r1.updated_at = "2024-01-02T00:00:00Z";
    ck_assert_int_eq(h->record_put(&x.call, &r1, NULL, 0, &changed), AH_OK);
    ck_assert_int_eq(changed, 2);
    cJSON *got = h->record_get(&x.call, "candidate", "c1");
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(cJSON_GetObjectItem(got, "id")->valuestring, id);
    ck_assert_str_eq(cJSON_GetObjectItem(got, "updated_at")->valuestring,
                     "2024-01-02T00:00:00Z");
    ck_assert_ptr_null(cJSON_GetObjectItem(got, "tenant"));
    cJSON_Delete(got);
    ck_assert_ptr_null(h->record_get(&x.call, "candidate", "c2"));
    cJSON *found = h->record_find(&x.call, "candidate", "email", "ann@example.com", 1, 10);
    ck_assert_int_eq(cJSON_GetArraySize(found), 1);
    cJSON_Delete(found);
    found = h->record_find(&x.call, "candidate", "email", "ann@example.com", 0, 10);
    ck_assert_int_eq(cJSON_GetArraySize(found), 0);
    cJSON_Delete(found);
    ck_assert_ptr_null(h->record_find(&x.call, "candidate", "email", "x", 0, 0));
    cJSON_Delete(fields);
    int64_t seq = 0;
    ck_assert_int_eq(h->sequence_next(&x.call, "jobs", &seq), AH_OK);
    ck_assert_int_eq(seq, 1);
    ck_assert_int_eq(h->sequence_next(&x.call, "jobs", &seq), AH_OK);
    ck_assert_int_eq(seq, 2);
    ck_assert_int_eq(h->store_ping(&x.call), AH_OK);

    ck_assert_int_eq(ah_fake_conn_set(conn, "token", NULL), 0);
    ck_assert_ptr_null(h->setting(&x.call, "token"));
    ah_fake_conn_free(conn);
    ah_fake_host_free(fh);
}
END_TEST

static Suite *loader_suite(void)
{
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("loader");
    tcase_add_test(tc, test_template_loads);
    tcase_add_test(tc, test_check_template);
    tcase_add_loop_test(tc, test_refused, 0, (int)(sizeof(refusals) / sizeof(refusals[0])));
    tcase_add_test(tc, test_distinct_messages);
    tcase_add_loop_test(tc, test_refused_isolated, 0,
                        (int)(sizeof(refusals) / sizeof(refusals[0])));
    tcase_add_test(tc, test_crash_while_loading_isolated);
    tcase_add_test(tc, test_mirror_matches);
    tcase_add_test(tc, test_mirror_hostile);
    tcase_add_test(tc, test_init_sees_host_ctx);
    tcase_add_test(tc, test_same_path_twice);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_abi_minor_compat);
    suite_add_tcase(s, tc);

    tc = tcase_create("registry");
    tcase_add_test(tc, test_registry_basic);
    tcase_add_test(tc, test_registry_replace);
    tcase_add_test(tc, test_registry_failed_replace);
    tcase_add_test(tc, test_registry_same_path_reload);
    tcase_add_test(tc, test_registry_bad_arguments);
    tcase_add_test(tc, test_registry_route_clash);
    tcase_add_test(tc, test_postings_1_1_slots);
    tcase_add_test(tc, test_registry_swap_under_load);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("fake_host");
    tcase_add_test(tc, test_fake_host);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(loader_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
