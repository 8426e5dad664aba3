/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The atshub command line, run as a child process the way operators run
 * it: exit codes, --json output, tenants, connections, calls, plugin
 * listing and checks, a daemon that picks up CLI changes, and the template
 * plugin built out of the tree against sdk/include alone.
 */
#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "support/harness.h"

typedef struct env {
    char *dir;
    char *ini;
    char atshub[512];
} env;

static void env_setup(env *e, const char *extra)
{
    e->dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(e->dir);
    e->ini = ah_t_write_ini(e->dir, extra);
    ck_assert_ptr_nonnull(e->ini);
    snprintf(e->atshub, sizeof e->atshub, "%s/atshub", ah_t_env("AH_BUILD_DIR"));
}

static void env_teardown(env *e)
{
    ah_t_rmrf(e->dir);
    free(e->dir);
    free(e->ini);
}

/* Runs atshub -c INI ARGS...; returns the exit code. */
static int run(env *e, char **out, char **err, const char *const *args)
{
    const char *argv[24] = {e->atshub, "-c", e->ini};
    int n = 3;
    for (size_t i = 0; args[i] != NULL && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return ah_t_run(argv, NULL, out, err);
}

#define RUN(e, out, err, ...) run(e, out, err, (const char *const[]){__VA_ARGS__, NULL})

static char *add_tenant(env *e, const char *name)
{
    char *out, *err;
    ck_assert_int_eq(RUN(e, &out, &err, "--json", "tenant", "add", name), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "not JSON: %s", out);
    const cJSON *k = cJSON_GetObjectItem(j, "api_key");
    ck_assert(cJSON_IsString(k));
    ck_assert_int_eq(strncmp(k->valuestring, "ahk_", 4), 0);
    char *key = strdup(k->valuestring);
    cJSON_Delete(j);
    free(out);
    free(err);
    return key;
}

/* out is one JSON document, {"error":{"code":code,...}}, and nothing else. */
static void assert_json_error(const char *out, const char *code)
{
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "stdout is not one JSON document: %s", out);
    const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code");
    ck_assert_msg(cJSON_IsString(c) && strcmp(c->valuestring, code) == 0, "want %s: %s", code, out);
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")));
    cJSON_Delete(j);
}

START_TEST(test_usage_and_help)
{
    env e;
    env_setup(&e, NULL);
    char *out, *err;
    ck_assert_int_eq(RUN(&e, &out, &err, "--help"), 0);
    ck_assert_ptr_nonnull(strstr(out, "atshub connection add"));
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "tenant", "--help"), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: atshub tenant"));
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "frobnicate"), 2);
    ck_assert_ptr_nonnull(strstr(err, "no command 'frobnicate'"));
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "tenant"), 2);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "call", "acme"), 2);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "call", "acme", "main", "no.such.topic"), 2);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "tenant", "add", "bad name!"), 2);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--bogus-option"), 2);
    free(out), free(err);
    /* A number past int is refused, not wrapped ((int)4294967297 is 1). */
    ck_assert_int_eq(RUN(&e, &out, &err, "log", "--limit", "4294967297"), 2);
    ck_assert_ptr_nonnull(strstr(err, "--limit takes a number"));
    free(out), free(err);
    /* A long option without its value is named as given, not as the
     * control character its code is. */
    ck_assert_int_eq(RUN(&e, &out, &err, "log", "--limit"), 2);
    ck_assert_msg(strstr(err, "'--limit' needs a value") != NULL, "%s", err);
    free(out), free(err);
    /* An option the command does not take is refused, not ignored:
     * `connection list --tenant acme` listed every tenant's connections. */
    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "list", "--tenant", "acme"), 2);
    ck_assert_msg(strstr(err, "'atshub connection' takes no --tenant option") != NULL, "%s", err);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "sync", "acme", "main", "--types", "jobs"), 1);
    ck_assert_msg(strstr(err, "takes no") == NULL, "%s", err);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "tenant", "list", "--set", "a=b"), 2);
    ck_assert_msg(strstr(err, "takes no --set option") != NULL, "%s", err);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "log", "--limit", "5", "--tenant", "acme"), 0);
    free(out), free(err);

    /* --json: a usage error is also the one JSON document on stdout (code
     * "usage"), wherever --json stands; without it stdout stays empty. */
    ck_assert_int_eq(RUN(&e, &out, &err, "frobnicate"), 2);
    ck_assert_str_eq(out, "");
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "frobnicate"), 2);
    assert_json_error(out, "usage");
    ck_assert_ptr_nonnull(strstr(err, "no command 'frobnicate'"));
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "log", "--status", "abc", "--json"), 2);
    assert_json_error(out, "usage");
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json"), 2);
    assert_json_error(out, "usage");
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "webhook", "frob", "--json"), 2);
    assert_json_error(out, "usage");
    free(out), free(err);
    /* --openapi prints YAML: with --json it is refused, not mixed. */
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "plugins", "--openapi"), 2);
    assert_json_error(out, "usage");
    free(out), free(err);

    /* A --since/--until that is no time is a usage error, as /v1/log and
     * /admin/log answer it 400 (the store's own failure was exit 1). */
    ck_assert_int_eq(RUN(&e, &out, &err, "log", "--since", "yesterday"), 2);
    ck_assert_msg(strstr(err, "--since takes an ISO-8601") != NULL, "%s", err);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "log", "--until", "2026-13-45"), 2);
    assert_json_error(out, "usage");
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "log", "--since", "2026-01-02", "--until",
                         "2026-01-03T10:00:00Z"), 0);
    free(out), free(err);
    /* An --action no entry has is a usage error (it printed nothing, exit
     * 0, as if the log had no such entries); a documented one is read. */
    ck_assert_int_eq(RUN(&e, &out, &err, "log", "--action", "BOGUS"), 2);
    ck_assert_msg(strstr(err, "--action is REQUEST") != NULL && strstr(err, "'BOGUS'") != NULL,
                  "%s", err);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "log", "--action", "outbound"), 2);
    assert_json_error(out, "usage");
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "log", "--action", "OUTBOUND_ERROR"), 0);
    free(out), free(err);

    /* events --limit: the daemon's page holds at most 1000; log keeps its
     * larger range (the check is shared). */
    ck_assert_int_eq(RUN(&e, &out, &err, "events", "acme", "--limit", "1001"), 2);
    ck_assert_msg(strstr(err, "from 1 to 1000") != NULL, "%s", err);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "log", "--limit", "5000"), 0);
    free(out), free(err);
    env_teardown(&e);
}
END_TEST

START_TEST(test_config_error_names_file_and_line)
{
    env e;
    env_setup(&e, NULL);
    ck_assert_int_eq(ah_t_write_file(e.ini, "[core]\nworkers = many\n"), 0);
    char *out, *err;
    ck_assert_int_eq(RUN(&e, &out, &err, "tenant", "list"), 1);
    char want[600];
    snprintf(want, sizeof want, "%s:2:", e.ini);
    ck_assert_msg(strstr(err, want) != NULL, "stderr: %s", err);
    free(out), free(err);
    /* --json: the error is the one JSON document on stdout. */
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "tenant", "list"), 1);
    cJSON *j = cJSON_Parse(out);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")->valuestring,
                     "config_error");
    cJSON_Delete(j);
    free(out), free(err);
    env_teardown(&e);
}
END_TEST

START_TEST(test_tenants)
{
    env e;
    env_setup(&e, NULL);
    char *key = add_tenant(&e, "acme");
    char *out, *err;
    ck_assert_int_eq(RUN(&e, &out, &err, "tenant", "add", "acme"), 1);
    ck_assert_ptr_nonnull(strstr(err, "already exists"));
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "tenant", "list"), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"acme\""));
    ck_assert_ptr_null(strstr(out, key)); /* the key is printed once only */
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "tenant", "remove", "acme"), 0);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "tenant", "remove", "acme"), 1);
    free(out), free(err);
    free(key);
    env_teardown(&e);
}
END_TEST

START_TEST(test_connections_and_call)
{
    env e;
    env_setup(&e, NULL);
    free(add_tenant(&e, "acme"));
    char *out, *err;
    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "add", "acme", "template", "main",
                         "--set", "greeting=howdy", "--set=api_key=VERY-SECRET-123"), 0);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "add", "acme", "template", "x", "--set",
                         "colour=blue"), 1);
    ck_assert_ptr_nonnull(strstr(err, "no setting 'colour'"));
    free(out), free(err);
    /* A plain value in the form of a stored secret would be read back as
     * one: a sealed value (the connection unusable) or a hash (a
     * credential). Refused; a secret setting may hold it. */
    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "add", "acme", "template", "y", "--set",
                         "greeting=v1:abc"), 1);
    ck_assert_msg(strstr(err, "may not start with 'v1:'") != NULL, "%s", err);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "add", "acme", "template", "y", "--set",
                         "greeting=sha256:abc"), 1);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "add", "acme", "template", "y", "--set",
                         "api_key=v1:abc"), 0);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "call", "acme", "y", "jobs.get",
                         "{\"job_id\":\"J9\"}"), 0);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "add", "nobody", "template", "x"), 1);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "connection", "list"), 0);
    ck_assert_ptr_nonnull(strstr(out, "howdy"));
    ck_assert_ptr_null(strstr(out, "VERY-SECRET-123"));
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "list", "acme"), 0);
    ck_assert_ptr_nonnull(strstr(out, "howdy"));
    free(out), free(err);
    /* A tenant that does not exist is an error, not an empty table. */
    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "list", "acmee"), 1);
    ck_assert_msg(strstr(err, "no tenant 'acmee'") != NULL && strstr(out, "TENANT") == NULL,
                  "out: %s err: %s", out, err);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "connection", "list", "acmee"), 1);
    assert_json_error(out, "not_found");
    free(out), free(err);

    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "call", "acme", "main", "jobs.get",
                         "{\"job_id\":\"J9\"}"), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "%s", out);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "greeting")->valuestring, "howdy");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "job_id")->valuestring, "J9");
    cJSON_Delete(j);
    free(out), free(err);

    /* The host checks the body against the template's field table before
     * the plugin runs, and names the field. */
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "call", "acme", "main", "jobs.get",
                         "{\"job\":\"J9\"}"), 1);
    ck_assert_ptr_nonnull(strstr(out, "\"invalid_request\""));
    ck_assert_msg(strstr(out, "field 'job' is not a field of jobs.get (it takes: job_id)") != NULL,
                  "%s", out);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "call", "acme", "main", "jobs.get", "{\"job_id\":42}"), 1);
    ck_assert_msg(strstr(err, "field 'job_id' must be a string") != NULL, "%s", err);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "call", "acme", "main", "jobs.get"), 1);
    ck_assert_msg(strstr(err, "field 'job_id' is required") != NULL, "%s", err);
    free(out), free(err);

    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "call", "acme", "main", "applications.reject"), 1);
    ck_assert_ptr_nonnull(strstr(out, "unsupported_capability"));
    free(out), free(err);

    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "set", "acme", "main", "greeting=hey"), 0);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "call", "acme", "main", "jobs.get",
                         "{\"job_id\":\"1\"}"), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"hey\""));
    free(out), free(err);

    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "disable", "acme", "main"), 0);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "call", "acme", "main", "jobs.get", "{\"job_id\":\"1\"}"), 1);
    ck_assert_ptr_nonnull(strstr(err, "connection_disabled"));
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "enable", "acme", "main"), 0);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "call", "acme", "main", "jobs.get", "{\"job_id\":\"1\"}"), 0);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "remove", "acme", "main"), 0);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "call", "acme", "main", "jobs.get", "{\"job_id\":\"1\"}"), 1);
    free(out), free(err);
    env_teardown(&e);
}
END_TEST

START_TEST(test_plugins_listing)
{
    env e;
    env_setup(&e, NULL);
    char *out, *err;
    ck_assert_int_eq(RUN(&e, &out, &err, "plugins"), 0);
    ck_assert_ptr_nonnull(strstr(out, "template"));
    ck_assert_ptr_nonnull(strstr(out, "COVERAGE"));
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "plugins"), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_ptr_nonnull(j);
    const cJSON *p = cJSON_GetArrayItem(j, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(p, "name")->valuestring, "template");
    ck_assert_str_eq(cJSON_GetObjectItem(p, "abi")->valuestring, "1.4");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "coverage"), "jobs")->valuestring, "1/5");
    cJSON_Delete(j);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "plugins", "--settings", "template"), 0);
    ck_assert_ptr_nonnull(strstr(out, "greeting"));
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "plugins", "--settings", "nope"), 1);
    free(out), free(err);
    env_teardown(&e);
}
END_TEST

/* The bundled plugins, as scripts/openapi-bus configures them. */
static void env_all_plugins(env *e)
{
    const char *dir = ah_t_env("AH_PLUGIN_DIR");
    char extra[2048];
    snprintf(extra, sizeof extra,
             "careerbuilder = %s/careerbuilder.so\nerecruit = %s/erecruit.so\nerp = %s/erp.so\n"
             "linkedin = %s/linkedin.so\ntopcv = %s/topcv.so\n",
             dir, dir, dir, dir, dir);
    env_setup(e, extra);
}

START_TEST(test_plugins_ops)
{
    env e;
    env_all_plugins(&e);
    char *out, *err;
    ck_assert_int_eq(RUN(&e, &out, &err, "plugins", "--ops", "linkedin"), 0);
    ck_assert_ptr_nonnull(strstr(out, "onboarding.enable"));
    ck_assert_ptr_nonnull(strstr(out, "integrationName"));
    ck_assert_ptr_nonnull(strstr(out, "array of objects"));
    ck_assert_ptr_nonnull(strstr(out, "    integrationContext")); /* a sub-field, indented */
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "plugins", "--ops", "linkedin"), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "%s", out);
    const cJSON *en = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "ops"), "onboarding.enable");
    ck_assert_int_eq(cJSON_GetArraySize(en), 2);
    const cJSON *name = cJSON_GetArrayItem(en, 0), *list = cJSON_GetArrayItem(en, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(name, "name")->valuestring, "integrationName");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(name, "required")));
    ck_assert_str_eq(cJSON_GetObjectItem(list, "name")->valuestring, "integrations");
    ck_assert_str_eq(cJSON_GetObjectItem(list, "type")->valuestring, "array of objects");
    const cJSON *sub = cJSON_GetObjectItem(list, "fields");
    ck_assert_int_eq(cJSON_GetArraySize(sub), 3);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(sub, 2), "name")->valuestring,
                     "tenantType");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "unchecked")), 0);
    cJSON_Delete(j);
    free(out), free(err);
    /* A plugin with no bus operation has no table, and says so. */
    ck_assert_int_eq(RUN(&e, &out, &err, "plugins", "--ops", "erp"), 0);
    ck_assert_ptr_nonnull(strstr(out, "no operation declares its fields"));
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "plugins", "--ops", "nope"), 1);
    ck_assert_ptr_nonnull(strstr(err, "no plugin named 'nope'"));
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "plugins", "--ops", "linkedin", "--settings", "linkedin"), 2);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "plugins", "--help"), 0);
    ck_assert_ptr_nonnull(strstr(out, "--ops NAME"));
    free(out), free(err);
    env_teardown(&e);
}
END_TEST

/* docs/openapi.yaml's bus request schemas are generated from the tables:
 * the file must hold exactly what `atshub plugins --openapi` prints. */
START_TEST(test_openapi_bus_section_is_generated)
{
    env e;
    env_all_plugins(&e);
    char *out, *err;
    ck_assert_int_eq(RUN(&e, &out, &err, "plugins", "--openapi"), 0);
    ck_assert_ptr_nonnull(strstr(out, "bus.linkedin.onboarding.request:"));
    ck_assert_ptr_nonnull(strstr(out, "bus.erecruit.applications.move_to_stage:"));
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/openapi.yaml", ah_t_env("AH_SOURCE_DIR"));
    size_t len = 0;
    char *doc = ah_t_read_file(path, &len);
    ck_assert_ptr_nonnull(doc);
    const char *begin = strstr(doc, "    # BEGIN GENERATED: bus request bodies");
    ck_assert_msg(begin != NULL, "%s has no BEGIN GENERATED line", path);
    const char *end = strstr(begin, "    # END GENERATED: bus request bodies\n");
    ck_assert_msg(end != NULL, "%s has no END GENERATED line", path);
    end += strlen("    # END GENERATED: bus request bodies\n");
    size_t n = (size_t)(end - begin);
    ck_assert_msg(strlen(out) == n && memcmp(out, begin, n) == 0,
                  "docs/openapi.yaml's bus request schemas differ from the plugins' field "
                  "tables: run scripts/openapi-bus");
    free(doc);
    free(out), free(err);
    env_teardown(&e);
}
END_TEST

START_TEST(test_plugin_check_and_broken_plugins)
{
    env e;
    char extra[1024];
    snprintf(extra, sizeof extra, "broken = %s/init_fails.so\n", ah_t_env("AH_FIXTURE_DIR"));
    env_setup(&e, extra);
    char *out, *err, path[600];
    ck_assert_int_eq(RUN(&e, &out, &err, "plugins"), 1);
    ck_assert_msg(strstr(err, "init failed") != NULL, "%s", err);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/template.so", ah_t_env("AH_PLUGIN_DIR"));
    ck_assert_int_eq(RUN(&e, &out, &err, "plugin", "check", path), 0);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/abi_major.so", ah_t_env("AH_FIXTURE_DIR"));
    ck_assert_int_eq(RUN(&e, &out, &err, "plugin", "check", path), 1);
    ck_assert_msg(strstr(err, "ABI") != NULL, "%s", err);
    free(out), free(err);
    /* A leak in chunks glibc maps on its own (256 KiB a load) is a leak.
     * (The sanitizers' allocators replace glibc's: mallinfo2 counts
     * nothing there, so only the plain build can see it.) */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    snprintf(path, sizeof path, "%s/leak_big.so", ah_t_env("AH_FIXTURE_DIR"));
    ck_assert_int_eq(RUN(&e, &out, &err, "plugin", "check", path), 1);
    ck_assert_msg(strstr(err, "the heap grew by") != NULL, "%s", err);
    free(out), free(err);
#endif
    /* A plugin that crashes is refused with the reason, as JSON too; the
     * command itself does not die with it. */
    snprintf(path, sizeof path, "%s/crash_load.so", ah_t_env("AH_FIXTURE_DIR"));
    ck_assert_int_eq(RUN(&e, &out, &err, "plugin", "check", path), 0);
    free(out), free(err);
    setenv("AH_FIXTURE_CRASH", "entry", 1);
    int rc = RUN(&e, &out, &err, "--json", "plugin", "check", path);
    unsetenv("AH_FIXTURE_CRASH");
    ck_assert_msg(rc == 1, "rc %d: %s", rc, err);
    ck_assert_msg(strstr(out, "\"plugin_refused\"") != NULL && strstr(out, "crashed") != NULL,
                  "%s", out);
    free(out), free(err);
    env_teardown(&e);
}
END_TEST

/* Exactly once: a plugin (built from sdk/include alone) that serves a
 * write without saying how an unknown outcome is reconciled is refused by
 * `plugin check`; the same plugin with the declaration passes, and so
 * does every bundled plugin, each of whose writes is listed. */
START_TEST(test_plugin_check_write_declarations)
{
    env e;
    env_setup(&e, NULL);
    char *out, *err, path[600];
    snprintf(path, sizeof path, "%s/writes_undeclared.so", ah_t_env("AH_FIXTURE_DIR"));
    int rc = RUN(&e, &out, &err, "plugin", "check", path);
    ck_assert_msg(rc == 1, "rc %d: %s%s", rc, out, err);
    ck_assert_msg(strstr(err, "declare no reconciliation: notes.add_to_application") != NULL,
                  "%s", err);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/writes_declared.so", ah_t_env("AH_FIXTURE_DIR"));
    rc = RUN(&e, &out, &err, "plugin", "check", path);
    ck_assert_msg(rc == 0, "rc %d: %s%s", rc, out, err);
    ck_assert_msg(strstr(out, "notes.add_to_application (marker)") != NULL, "%s", out);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/writes_unserved.so", ah_t_env("AH_FIXTURE_DIR"));
    rc = RUN(&e, &out, &err, "plugin", "check", path);
    ck_assert_msg(rc == 1, "rc %d: %s%s", rc, out, err);
    ck_assert_msg(strstr(err, "'notes.add_to_candidate', which is neither a write topic the "
                              "plugin serves") != NULL, "%s", err);
    free(out), free(err);
    static const struct {
        const char *plugin, *topic, *how;
    } bundled[] = {
        {"erecruit", "applications.move_to_stage", "read_back"},
        {"erecruit", "applications.reject", "read_back"},
        {"erecruit", "notes.add_to_candidate", "marker"},
        {"erecruit", "attachments.add_to_application", "marker"},
        {"careerbuilder", "statuses.put", "read_back"},
        {"careerbuilder", "event.application.created", "read_back"},
        {"linkedin", "onboarding.enable", "read_back"},
        {"linkedin", "onboarding.provision", "marker"},
        {"topcv", "postings.publish", "marker"},
        {"erp", NULL, NULL}, /* no outbound write at all */
    };
    for (size_t i = 0; i < sizeof bundled / sizeof bundled[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.so", ah_t_env("AH_PLUGIN_DIR"), bundled[i].plugin);
        /* With --json the refusal is the JSON on stdout. */
        ck_assert_msg(RUN(&e, &out, &err, "--json", "plugin", "check", path) == 0, "%s: %s%s",
                      bundled[i].plugin, out, err);
        cJSON *j = cJSON_Parse(out);
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "writes");
        ck_assert_msg(cJSON_IsObject(w), "%s: %s", bundled[i].plugin, out);
        if (bundled[i].topic == NULL) {
            ck_assert_int_eq(cJSON_GetArraySize(w), 0);
        } else {
            const cJSON *how = cJSON_GetObjectItemCaseSensitive(w, bundled[i].topic);
            ck_assert_msg(cJSON_IsString(how) && strcmp(how->valuestring, bundled[i].how) == 0,
                          "%s: %s is not %s in %s", bundled[i].plugin, bundled[i].topic,
                          bundled[i].how, out);
        }
        cJSON_Delete(j);
        free(out), free(err);
    }
    env_teardown(&e);
}
END_TEST

/* The template built out of the tree with nothing but sdk/include. */
START_TEST(test_template_out_of_tree)
{
    env e;
    env_setup(&e, NULL);
    char cmd[4096];
    const char *src = ah_t_env("AH_SOURCE_DIR");
    snprintf(cmd, sizeof cmd,
             "cp -r '%s/sdk/template' '%s/tpl' && cp -r '%s/sdk/include' '%s/sdkinc' && "
             "env -u CFLAGS -u LDFLAGS cmake -S '%s/tpl' -B '%s/tplbuild' "
             "-DATSHUB_SDK_INCLUDE_DIR='%s/sdkinc' >'%s/cmake.log' 2>&1 && "
             "cmake --build '%s/tplbuild' >>'%s/cmake.log' 2>&1",
             src, e.dir, src, e.dir, e.dir, e.dir, e.dir, e.dir, e.dir, e.dir);
    ck_assert_msg(system(cmd) == 0, "out-of-tree build failed, see %s/cmake.log", e.dir);
    char ini[2048];
    char *store = ah_t_store_url(e.dir);
    ck_assert_ptr_nonnull(store);
    snprintf(ini, sizeof ini,
             "[core]\nkey_file = host.key\n[http]\nlisten = 127.0.0.1:0\n[store]\nurl = %s\n"
             "[plugins]\ntemplate = tplbuild/template.so\n",
             store);
    free(store);
    ck_assert_int_eq(ah_t_write_file(e.ini, ini), 0);
    free(add_tenant(&e, "acme"));
    char *out, *err;
    ck_assert_int_eq(RUN(&e, &out, &err, "connection", "add", "acme", "template", "main"), 0);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "call", "acme", "main", "jobs.get",
                         "{\"job_id\":\"OOT-1\"}"), 0);
    ck_assert_msg(strstr(out, "\"job_id\":\"OOT-1\"") != NULL, "%s", out);
    free(out), free(err);
    /* Only the entry symbol is exported. */
    snprintf(cmd, sizeof cmd,
             "test \"$(nm -D --defined-only '%s/tplbuild/template.so' | awk '$2 ~ /[TD]/ {print $3}' "
             "| grep -v '^_' | tr '\\n' ' ')\" = 'atshub_plugin_entry_v1 '", e.dir);
    ck_assert_msg(system(cmd) == 0, "the template exports more than its entry symbol");
    env_teardown(&e);
}
END_TEST

/* `atshub serve` as operators run it: picks up CLI changes without a
 * restart and stops cleanly on SIGTERM. */
/* The daemon logs at info: its "listening on" line is one. */
static void log_info(env *e)
{
    char *text = ah_t_read_file(e->ini, NULL);
    ck_assert_ptr_nonnull(text);
    char *lvl = strstr(text, "log_level = warn");
    ck_assert_ptr_nonnull(lvl);
    memcpy(lvl, "log_level = info", 16);
    ck_assert_int_eq(ah_t_write_file(e->ini, text), 0);
    free(text);
}

/* Starts argv (atshub serve, at info) on a port of its choosing and waits
 * until it listens: its pid, its stderr in *errfd, the port in *port. */
static pid_t serve(const char *const *argv, int *errfd, int *port)
{
    const char *envv[] = {"ATSHUB_LISTEN=127.0.0.1:0", NULL};
    pid_t pid = ah_t_spawn(argv, envv, errfd);
    ck_assert_int_gt(pid, 0);
    char *line = ah_t_wait_line(*errfd, "listening on", 30);
    if (line == NULL)
        ck_abort_msg("the daemon did not start; it wrote: %s", ah_t_seen(*errfd));
    const char *p = strstr(line, "127.0.0.1:");
    ck_assert_ptr_nonnull(p);
    *port = atoi(p + strlen("127.0.0.1:"));
    free(line);
    ck_assert_int_gt(*port, 0);
    return pid;
}

START_TEST(test_serve_daemon)
{
    env e;
    env_setup(&e, NULL);
    log_info(&e);
    const char *argv[] = {e.atshub, "serve", "-c", e.ini, NULL};
    int errfd, port;
    pid_t pid = serve(argv, &errfd, &port);
    char url[256], *body;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/health", port);
    ck_assert_int_eq(ah_t_http("GET", url, NULL, NULL, &body), 200);
    free(body);

    /* A tenant added by the CLI works against the running daemon. */
    char *key = add_tenant(&e, "acme");
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *h[] = {auth, NULL};
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/plugins", port);
    long status = 0;
    for (int i = 0; i < 100 && status != 200; i++) {
        status = ah_t_http("GET", url, h, NULL, &body);
        free(body);
        if (status != 200)
            usleep(100 * 1000);
    }
    ck_assert_int_eq(status, 200);
    free(key);
    ck_assert_int_eq(ah_t_stop(pid, SIGTERM), 0);
    close(errfd);
    env_teardown(&e);
}
END_TEST

/* Core files in dir: "core", "core.PID", valgrind's "vgcore.PID". */
static int cores_in(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "core", 4) == 0 || strncmp(e->d_name, "vgcore", 6) == 0;
    closedir(d);
    return n;
}

/* A crash of the daemon or of a plugin process leaves no core file, even
 * where core files are allowed: the daemon holds every tenant's keys and
 * tokens, a plugin process the settings of the connections it serves. The
 * control first: a shell killed the same way in the same folder leaves
 * one, or this machine writes none there and there is nothing to tell. */
START_TEST(test_no_core_dump)
{
    env e;
    env_setup(&e, "[plugin.template]\nisolation = process\n");
    log_info(&e);
    char dumps[1024], script[4096];
    snprintf(dumps, sizeof dumps, "%s/dumps", e.dir);
    ck_assert_int_eq(mkdir(dumps, 0700), 0);

    snprintf(script, sizeof script, "cd '%s' && ulimit -c unlimited && kill -SEGV $$", dumps);
    const char *control[] = {"/bin/sh", "-c", script, NULL};
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(ah_t_run(control, NULL, &out, &err), 128 + SIGSEGV);
    free(out);
    free(err);
    if (cores_in(dumps) == 0) {
        fprintf(stderr, "test_no_core_dump: this machine writes no core file to a crashing "
                        "process's folder (core_pattern, or a hard limit of 0): skipped\n");
        env_teardown(&e);
        return;
    }
    char rm[1200];
    snprintf(rm, sizeof rm, "rm -f '%s'/core*", dumps);
    ck_assert_int_eq(ah_t_run((const char *const[]){"/bin/sh", "-c", rm, NULL}, NULL, NULL, NULL), 0);
    ck_assert_int_eq(cores_in(dumps), 0);

    snprintf(script, sizeof script, "cd '%s' && ulimit -c unlimited && exec '%s' serve -c '%s'",
             dumps, e.atshub, e.ini);
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    int errfd, port;
    pid_t pid = serve(argv, &errfd, &port);
    /* The template plugin runs in a process of its own. */
    pid_t child = 0;
    for (int i = 0; i < 500 && child == 0; i++)
        if (ah_t_children(pid, "atshub-plugin-h", &child, 1, NULL) < 1 || child == 0)
            usleep(10 * 1000);
    ck_assert_msg(child > 0, "no plugin process under the daemon");
    ck_assert_int_eq(kill(child, SIGSEGV), 0);
    /* Its core, if any, is written before it is a zombie. */
    for (int i = 0; i < 500; i++) {
        char st = ah_t_proc_state(child);
        if (st == 0 || st == 'Z')
            break;
        usleep(10 * 1000);
    }
    ck_assert_msg(cores_in(dumps) == 0, "the plugin process left a core file");
    ck_assert_int_eq(kill(pid, SIGSEGV), 0);
    int st = ah_t_stop(pid, 0);
    ck_assert_msg(st != 0, "the daemon ended with 0 after SIGSEGV");
    ck_assert_msg(cores_in(dumps) == 0, "the daemon left a core file");
    close(errfd);
    env_teardown(&e);
}
END_TEST

/* Raw SQL on the test's store (SQLite file or PostgreSQL database). */
static void store_sql(env *e, const char *sql)
{
    char *url = ah_t_store_url(e->dir);
    ck_assert_ptr_nonnull(url);
    if (strncmp(url, "postgres", 8) == 0) {
        PGconn *c = PQconnectdb(url);
        ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
        PGresult *r = PQexec(c, sql);
        ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql,
                      PQresultErrorMessage(r));
        PQclear(r);
        PQfinish(c);
    } else {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", e->dir, url + strlen("sqlite:"));
        sqlite3 *db = NULL;
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
    }
    free(url);
}

/* `atshub webhook ... --json`: an error is one JSON document whatever its
 * message holds (a config path with a quote and a backslash), and
 * `deliveries` of an endpoint whose log cannot be read is internal_error,
 * not not_found (an unknown id still is). */
START_TEST(test_webhook_cli_errors)
{
    env e;
    env_setup(&e, "[webhooks]\nallow_networks = 127.0.0.0/8\n");
    char *out, *err;
    char bad[1024];
    snprintf(bad, sizeof bad, "%s/no\"such\\file.ini", e.dir);
    const char *argv[] = {e.atshub, "-c", bad, "--json", "webhook", "list", NULL};
    ck_assert_int_eq(ah_t_run(argv, NULL, &out, &err), 1);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "not JSON: %s", out);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")->valuestring,
                     "config_error");
    ck_assert_ptr_nonnull(strstr(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring, bad));
    cJSON_Delete(j);
    free(out), free(err);

    free(add_tenant(&e, "acme"));
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "webhook", "add", "acme",
                         "http://127.0.0.1:9/hook"), 0);
    j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "not JSON: %s", out);
    char id[32];
    snprintf(id, sizeof id, "%d", cJSON_GetObjectItem(j, "id")->valueint);
    cJSON_Delete(j);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "webhook", "deliveries", id), 0);
    free(out), free(err);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "webhook", "deliveries", "999"), 1);
    j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "not JSON: %s", out);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")->valuestring,
                     "not_found");
    cJSON_Delete(j);
    free(out), free(err);
    /* The delivery log cannot be read (its table gone). */
    store_sql(&e, "ALTER TABLE webhook_deliveries RENAME TO webhook_deliveries_gone");
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "webhook", "deliveries", id), 1);
    j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "not JSON: %s", out);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")->valuestring,
                     "internal_error");
    cJSON_Delete(j);
    free(out), free(err);
    store_sql(&e, "ALTER TABLE webhook_deliveries_gone RENAME TO webhook_deliveries");
    env_teardown(&e);
}
END_TEST

/* Issue 14: `atshub instances` lists the serving instances (id, version,
 * pid, heartbeat, leases held); a clean stop removes the registration;
 * a daemon refuses a store whose schema is newer than it knows, naming
 * both versions. */
START_TEST(test_instances_and_newer_schema)
{
    env e;
    env_setup(&e, NULL);
    /* A scheduler, so that the instance holds the schedule-leader lease. */
    char *text = ah_t_read_file(e.ini, NULL);
    ck_assert_ptr_nonnull(text);
    char *iv = strstr(text, "interval_s = 0\n");
    ck_assert_ptr_nonnull(iv);
    char *fixed = NULL;
    ck_assert_int_ge(asprintf(&fixed, "%.*sinterval_s = 3600\n%s", (int)(iv - text), text,
                              iv + strlen("interval_s = 0\n")),
                     0);
    ck_assert_int_eq(ah_t_write_file(e.ini, fixed), 0);
    free(text);
    free(fixed);
    char *out, *err;
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "instances"), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 0, "%s", out);
    cJSON_Delete(j);
    free(out), free(err);

    const char *argv[] = {e.atshub, "serve", "-c", e.ini, NULL};
    const char *envv[] = {"ATSHUB_LISTEN=127.0.0.1:0", NULL};
    int errfd;
    pid_t pid = ah_t_spawn(argv, envv, &errfd);
    ck_assert_int_gt(pid, 0);
    /* Registered before it serves; the scheduler takes its lease soon. */
    bool leader = false;
    for (int i = 0; i < 100 && !leader; i++) {
        ck_assert_int_eq(RUN(&e, &out, &err, "--json", "instances"), 0);
        j = cJSON_Parse(out);
        ck_assert_msg(cJSON_IsArray(j), "%s", out);
        const cJSON *o = cJSON_GetArrayItem(j, 0);
        if (o != NULL) {
            ck_assert_int_eq(cJSON_GetArraySize(j), 1);
            ck_assert_int_eq((int)cJSON_GetObjectItem(o, "pid")->valuedouble, (int)pid);
            ck_assert_str_eq(cJSON_GetObjectItem(o, "version")->valuestring, AH_VERSION);
            ck_assert_int_ge(cJSON_GetObjectItem(o, "heartbeat_age_ms")->valuedouble, 0);
            ck_assert_int_eq((int)strlen(cJSON_GetObjectItem(o, "heartbeat")->valuestring), 24);
            const cJSON *l;
            cJSON_ArrayForEach(l, cJSON_GetObjectItem(o, "leases"))
                leader = leader ||
                         strcmp(cJSON_GetObjectItem(l, "name")->valuestring, "schedule-leader") == 0;
        }
        cJSON_Delete(j);
        free(out), free(err);
        if (!leader)
            usleep(100 * 1000);
    }
    ck_assert_msg(leader, "the instance is not listed holding schedule-leader");
    ck_assert_int_eq(RUN(&e, &out, &err, "instances"), 0);
    ck_assert_ptr_nonnull(strstr(out, "holds schedule-leader"));
    ck_assert_ptr_nonnull(strstr(out, "version " AH_VERSION));
    free(out), free(err);
    ck_assert_int_eq(ah_t_stop(pid, SIGTERM), 0);
    close(errfd);
    ck_assert_int_eq(RUN(&e, &out, &err, "--json", "instances"), 0);
    j = cJSON_Parse(out);
    ck_assert_msg(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 0, "after stop: %s", out);
    cJSON_Delete(j);
    free(out), free(err);

    /* A newer atshub migrated the store: this one refuses it. */
    store_sql(&e, "INSERT INTO schema_migrations(version, applied_at) VALUES (999, 'x')");
    int errfd2;
    pid = ah_t_spawn(argv, envv, &errfd2);
    ck_assert_int_gt(pid, 0);
    char *rest = ah_t_read_rest(errfd2);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    ck_assert_ptr_nonnull(rest);
    char want[160];
    snprintf(want, sizeof want, "schema is version 999, newer than this atshub (%s) knows (",
             AH_VERSION);
    ck_assert_msg(strstr(rest, want) != NULL, "%s", rest);
    free(rest);
    close(errfd2);
    env_teardown(&e);
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_usage_and_help);
    tcase_add_test(tc, test_config_error_names_file_and_line);
    tcase_add_test(tc, test_tenants);
    tcase_add_test(tc, test_connections_and_call);
    tcase_add_test(tc, test_plugins_listing);
    tcase_add_test(tc, test_plugins_ops);
    tcase_add_test(tc, test_openapi_bus_section_is_generated);
    tcase_add_test(tc, test_plugin_check_and_broken_plugins);
    tcase_add_test(tc, test_plugin_check_write_declarations);
    tcase_add_test(tc, test_template_out_of_tree);
    tcase_add_test(tc, test_serve_daemon);
    tcase_add_test(tc, test_no_core_dump);
    tcase_add_test(tc, test_instances_and_newer_schema);
    suite_add_tcase(s, tc);
    TCase *tw = tcase_create("webhook");
    tcase_set_timeout(tw, 60);
    tcase_add_test(tw, test_webhook_cli_errors);
    suite_add_tcase(s, tw);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cli_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
