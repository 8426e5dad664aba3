/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Many tenants: TENANTS tenants with CONNS template connections each are
 * written to a fresh store, then a host is opened on it as `atshub serve`
 * would (plugins loaded, connection table built, bus started) and its start
 * time and resident memory are measured; then one request per connection
 * checks that every connection answers; then every connection is listed
 * as the admin API lists it (pages of AH_OPS_PAGE_MAX rows, printed as the
 * answer would be) and the resident memory measured again.
 *
 *   bench_tenants [TENANTS] [CONNS]      (default 10000, 5)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "rest.h"
#include "sync.h"
#include "tracking.h"
#include "events.h"
#include "ops.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Resident set size in MiB, from /proc/self/status. */
static double rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kb / 1024.0;
}

static ah_core *open_host(const char *ini)
{
    ah_config cfg;
    char err[1024];
    if (ah_config_load(ini, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    ah_core *core = ah_daemon_open(&cfg, &o, err, sizeof err);
    if (core == NULL)
        fprintf(stderr, "%s\n", err);
    return core;
}

int main(int argc, char **argv)
{
    long nt = argc > 1 ? atol(argv[1]) : 10000;
    long nc = argc > 2 ? atol(argv[2]) : 5;
    const char *plugdir = getenv("AH_PLUGIN_DIR");
    char dir[] = "/tmp/atshub-bench-XXXXXX", ini[256], text[1024];
    if (nt <= 0 || nc <= 0 || mkdtemp(dir) == NULL)
        return 2;
    snprintf(ini, sizeof ini, "%s/atshub.ini", dir);
    snprintf(text, sizeof text,
             "[core]\nworkers = 2\nkey_file = host.key\nlog_level = warn\n[store]\nurl = sqlite:t.db\n"
             "[sync]\ninterval_s = 0\n[admin]\nsocket = off\n[plugins]\ntemplate = %s/template.so\n"
             /* As measured before plugins ran isolated by default (issue 15). */
             "[plugin.template]\nisolation = in_process\n",
             plugdir != NULL ? plugdir : AH_BENCH_PLUGIN_DIR);
    FILE *f = fopen(ini, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        return 1;

    /* Setup (not measured): tenants and connections in the store. */
    ah_core *core = open_host(ini);
    if (core == NULL)
        return 1;
    double t0 = now_s();
    for (long t = 0; t < nt; t++) {
        char name[32], hash[AH_SHA256_HEX_LEN + 1];
        int64_t tid, cid;
        snprintf(name, sizeof name, "tenant%06ld", t);
        ah_sha256_hex(name, strlen(name), hash);
        if (core->store->ops->tenant_add(core->store, name, hash, &tid) != 0)
            return 1;
        for (long c = 0; c < nc; c++) {
            char cname[24];
            snprintf(cname, sizeof cname, "c%ld", c);
            if (core->store->ops->connection_add(core->store, tid, "template", cname,
                                                 "{\"greeting\":\"hi\"}", &cid) != 0)
                return 1;
        }
    }
    double setup = now_s() - t0;
    ah_daemon_close(core);

    /* Measured: a host starting on that store. */
    double rss0 = rss_mib();
    t0 = now_s();
    core = open_host(ini);
    double start = now_s() - t0;
    if (core == NULL)
        return 1;
    double rss1 = rss_mib();

    /* Every connection answers. */
    long ok = 0;
    t0 = now_s();
    for (long t = 0; t < nt; t++) {
        for (long c = 0; c < nc; c++) {
            char name[32], cname[24];
            snprintf(name, sizeof name, "tenant%06ld", t);
            snprintf(cname, sizeof cname, "c%ld", c);
            ah_reply r;
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "job_id", "1");
            if (ah_core_request(core, name, cname, "jobs.get", b, &r) == 0)
                ok++;
            ah_reply_free(&r);
        }
    }
    double calls = now_s() - t0;
    double rss2 = rss_mib();

    printf("%-10s %-6s %10s %10s %12s %14s %12s\n", "tenants", "conns", "setup s", "start s",
           "RSS start MiB", "RSS all open MiB", "answered");
    printf("%-10ld %-6ld %10.2f %10.3f %12.1f %14.1f %9ld/%ld\n", nt, nt * nc, setup, start,
           rss1, rss2, ok, nt * nc);
    printf("(one request per connection took %.2f s; RSS before opening the host: %.1f MiB)\n",
           calls, rss0);

    /* Every connection as GET /admin/connections gives it, page by page. */
    t0 = now_s();
    char cursor[sizeof ((ah_ops_page *)0)->next] = "";
    long listed = 0, pages = 0;
    size_t bytes = 0;
    for (;;) {
        ah_ops_page pg = {.after = cursor, .limit = AH_OPS_PAGE_MAX};
        cJSON *list = NULL;
        ah_ops_err e;
        if (ah_ops_connection_list(core, NULL, &pg, &list, &e) != 0) {
            fprintf(stderr, "%s: %s\n", e.code, e.msg);
            return 1;
        }
        char *json = cJSON_PrintUnformatted(list);
        bytes += json != NULL ? strlen(json) : 0;
        listed += cJSON_GetArraySize(list);
        pages++;
        free(json);
        cJSON_Delete(list);
        if (pg.next[0] == '\0')
            break;
        snprintf(cursor, sizeof cursor, "%s", pg.next);
    }
    printf("every connection listed as the admin API pages it: %ld in %ld pages (%.1f MB of "
           "JSON), %.2f s; RSS after: %.1f MiB\n",
           listed, pages, bytes / 1e6, now_s() - t0, rss_mib());
    ah_daemon_close(core);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
