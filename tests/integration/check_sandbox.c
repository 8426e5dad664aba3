/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The atshub-sim command as operators and scripts/sandbox use it: its help
 * and exit codes, and an ERecruit simulator on port 0 that the CLI syncs
 * from, found through the "listening on" line the command prints.
 */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "support/harness.h"

/* Like ah_t_spawn, but pipes stdout: atshub-sim announces its port there. */
static pid_t spawn_out(const char *const *argv, int *out_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        if (dup2(p[1], STDOUT_FILENO) < 0)
            _exit(127);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    ah_t_seen_reset(p[0]);
    return pid;
}

static void sim_path(char *buf, size_t size)
{
    snprintf(buf, size, "%s/tests/atshub-sim", ah_t_env("AH_BUILD_DIR"));
}

START_TEST(help_lists_providers)
{
    char sim[1024];
    sim_path(sim, sizeof sim);
    const char *argv[] = {sim, "--help", NULL};
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(ah_t_run(argv, NULL, &out, &err), 0);
    ck_assert_ptr_nonnull(out);
    static const char *const names[] = {"echo", "erecruit", "careerbuilder", "linkedin", "topcv"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %s ", names[i]);
        ck_assert_msg(strstr(out, line) != NULL, "help does not list %s", names[i]);
    }
    ck_assert_ptr_nonnull(strstr(out, "--tz-offset-minutes"));
    ck_assert_ptr_nonnull(strstr(out, "\"s3cret\""));
    free(out);
    free(err);
}
END_TEST

START_TEST(unknown_provider_is_usage_error)
{
    char sim[1024];
    sim_path(sim, sizeof sim);
    const char *argv[] = {sim, "--provider", "nosuch", "--port", "0", NULL};
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(ah_t_run(argv, NULL, &out, &err), 2);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, "unknown provider"));
    free(out);
    free(err);

    const char *bad_tz[] = {sim, "--provider", "erecruit", "--tz-offset-minutes", "900", NULL};
    ck_assert_int_eq(ah_t_run(bad_tz, NULL, &out, &err), 2);
    free(out);
    free(err);
}
END_TEST

/* Runs the CLI with -c ini --json; returns its exit status, stdout in *out. */
static int cli(const char *ini, const char *const *args, char **out)
{
    char atshub[1024];
    snprintf(atshub, sizeof atshub, "%s/atshub", ah_t_env("AH_BUILD_DIR"));
    const char *argv[16] = {atshub, "-c", ini, "--json"};
    size_t n = 4;
    for (size_t i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char *err = NULL;
    int rc = ah_t_run(argv, NULL, out, &err);
    if (rc != 0)
        fprintf(stderr, "atshub %s: exit %d: %s\n", args[0], rc, err ? err : "");
    free(err);
    return rc;
}

START_TEST(erecruit_sim_sync)
{
    char sim[1024];
    sim_path(sim, sizeof sim);
    const char *argv[] = {sim,    "--provider",    "erecruit", "--port", "0", "--data-size",
                          "50",   "--max-seconds", "120",      NULL};
    int out_fd = -1;
    pid_t pid = spawn_out(argv, &out_fd);
    ck_assert_int_gt(pid, 0);
    char *line = ah_t_wait_line(out_fd, "listening on ", 20);
    if (line == NULL)
        ck_abort_msg("atshub-sim did not announce its port; it wrote: %s", ah_t_seen(out_fd));
    char *url_start = strstr(line, "http://127.0.0.1:");
    ck_assert_ptr_nonnull(url_start);
    char url[128];
    snprintf(url, sizeof url, "%s", url_start);
    url[strcspn(url, " \r\n")] = '\0';
    free(line);

    char *dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(dir);
    char extra[1200];
    snprintf(extra, sizeof extra, "erecruit = %s/erecruit.so\n", ah_t_env("AH_PLUGIN_DIR"));
    char *ini = ah_t_write_ini(dir, extra);
    ck_assert_ptr_nonnull(ini);

    char *out = NULL;
    const char *tenant[] = {"tenant", "add", "demo", NULL};
    ck_assert_int_eq(cli(ini, tenant, &out), 0);
    free(out);
    char base_url[160];
    snprintf(base_url, sizeof base_url, "base_url=%s", url);
    const char *conn[] = {"connection", "add", "demo", "erecruit", "er",
                          "--set", base_url, "--set", "client_id=atshub",
                          "--set", "client_secret=s3cret", NULL};
    ck_assert_int_eq(cli(ini, conn, &out), 0);
    free(out);

    const char *sync[] = {"sync", "demo", "er", "--type", "jobs", NULL};
    ck_assert_int_eq(cli(ini, sync, &out), 0);
    ck_assert_ptr_nonnull(out);
    cJSON *report = cJSON_Parse(out);
    ck_assert_msg(report != NULL, "sync --json printed no JSON: %s", out);
    const cJSON *types = cJSON_GetObjectItem(report, "types");
    ck_assert_int_eq(cJSON_GetArraySize(types), 1);
    const cJSON *jobs = cJSON_GetArrayItem(types, 0);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(jobs, "type")), "jobs");
    ck_assert_int_eq(cJSON_GetObjectItem(jobs, "records")->valueint, 50);
    ck_assert_int_eq(cJSON_GetObjectItem(jobs, "created")->valueint, 50);
    cJSON_Delete(report);
    free(out);

    close(out_fd);
    ck_assert_int_eq(ah_t_stop(pid, SIGTERM), 0);
    free(ini);
    ah_t_rmrf(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sandbox");
    TCase *tc = tcase_create("atshub-sim");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, help_lists_providers);
    tcase_add_test(tc, unknown_provider_is_usage_error);
    tcase_add_test(tc, erecruit_sim_sync);
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
