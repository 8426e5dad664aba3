/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sync throughput: N ERecruit positions streamed from the simulator through
 * the erecruit plugin into the SQLite store by the sync engine, beside the
 * floor of fetching and parsing the same pages (the same bus requests to
 * jobs.stream, records handed over as text as the engine gets them, one
 * page after the other, nothing stored).
 *
 *   bench_sync [RECORDS] [PER_PAGE]      (default 100000, 500)
 *
 * Prints one table. The erecruit plugin declares no request rate since
 * issue 13 (until then 200/s, which paced both rows: the floor was that
 * cap, 100,000 records/s at 500 a page); neither row is paced now.
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
#include "erecruit.h"
#include "recbuf.h"
#include "sim.h"
#include "sync.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    int per_page = argc > 2 ? atoi(argv[2]) : 500;
    const char *plugdir = getenv("AH_PLUGIN_DIR");
    char dir[] = "/tmp/atshub-bench-XXXXXX", ini[256], text[1024], err[1024];
    if (n <= 0 || per_page < 1 || per_page > 500 || mkdtemp(dir) == NULL) {
        fprintf(stderr, "usage: bench_sync [RECORDS] [PER_PAGE 1..500]\n");
        return 2;
    }

    ah_sim_opts so = {.port = 0, .seed = 1, .threads = 2};
    ah_sim *sim = ah_sim_new(&so);
    ah_erecruit_opts eo = {.seed = 7, .positions = (size_t)n, .max_per_page = 500};
    ah_erecruit_sim *er = sim != NULL ? ah_erecruit_sim_attach(sim, &eo) : NULL;
    if (er == NULL || ah_sim_start(sim) != 0) {
        fprintf(stderr, "cannot start the ERecruit simulator\n");
        return 1;
    }

    snprintf(ini, sizeof ini, "%s/atshub.ini", dir);
    snprintf(text, sizeof text,
             "[core]\nworkers = 2\nkey_file = host.key\nlog_level = warn\n[store]\nurl = sqlite:b.db\n"
             "[sync]\ninterval_s = 0\n[admin]\nsocket = off\n[plugins]\nerecruit = %s/erecruit.so\n"
             /* As measured before plugins ran isolated by default (issue 15). */
             "[plugin.erecruit]\nisolation = in_process\n",
             plugdir != NULL ? plugdir : AH_BENCH_PLUGIN_DIR);
    FILE *f = fopen(ini, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        return 1;
    ah_config cfg;
    if (ah_config_load(ini, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    ah_core *core = ah_daemon_open(&cfg, &o, err, sizeof err);
    if (core == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int64_t tid, cid;
    char settings[512], pp[16];
    snprintf(pp, sizeof pp, "%d", per_page);
    cJSON *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "base_url", ah_sim_url(sim));
    cJSON_AddStringToObject(in, "client_id", "atshub");
    cJSON_AddStringToObject(in, "client_secret", "s3cret");
    cJSON_AddStringToObject(in, "per_page", pp);
    ah_generation *gen = ah_registry_acquire(core->registry, "erecruit");
    char *stext = NULL;
    if (gen == NULL || ah_settings_build(core, gen->desc->settings, "erecruit", NULL, in, true, NULL,
                                         &stext, err, sizeof err) != 0) {
        fprintf(stderr, "settings: %s\n", err);
        return 1;
    }
    ah_generation_release(gen);
    cJSON_Delete(in);
    snprintf(settings, sizeof settings, "%s", stext);
    free(stext);
    core->store->ops->tenant_add(core->store, "bench", "00", &tid);
    core->store->ops->connection_add(core->store, tid, "erecruit", "er", settings, &cid);
    ah_conns_reload(core);

    /* 1. the floor: fetch and parse every page, store nothing. The same
     * bus requests as the engine's, records handed over as text as the
     * engine gets them (recbuf.h), one page after the other. */
    ah_conn *conn = ah_conn_find(core, "bench", "er");
    if (conn == NULL) {
        fprintf(stderr, "floor: no connection\n");
        return 1;
    }
    uint64_t lane = (uint64_t)conn->id, tenant = (uint64_t)conn->tenant_id;
    ah_conn_release(conn);
    double t0 = now_s();
    long fetched = 0, pages = 0;
    char *cursor = NULL;
    for (;;) {
        cJSON *body = cJSON_CreateObject();
        if (cursor != NULL)
            cJSON_AddStringToObject(body, "cursor", cursor);
        ah_reply r;
        if (ah_bus_request_tenant(core->bus, tenant, lane, AH_RECORDS_AS_TEXT, "jobs.stream",
                                  body, 0, &r) != 0) {
            fprintf(stderr, "floor: %s: %s\n", r.code, r.message ? r.message : "");
            ah_reply_free(&r);
            return 1;
        }
        fetched += (long)ah_recbuf_count(r.attachment);
        pages++;
        const cJSON *next = cJSON_GetObjectItem(r.body, "next_cursor");
        free(cursor);
        cursor = cJSON_IsString(next) ? strdup(next->valuestring) : NULL;
        ah_reply_free(&r);
        if (cursor == NULL)
            break;
    }
    double floor_s = now_s() - t0;

    /* 2. the sync engine: the same pages, upserted with their cursors */
    ah_sync_stats st;
    t0 = now_s();
    if (ah_sync_run(core, "bench", "er", "jobs", NULL, NULL, &st, err, sizeof err) != 0) {
        fprintf(stderr, "sync: %s\n", err);
        return 1;
    }
    double sync_s = now_s() - t0;

    printf("%-40s %10s %8s %10s %12s\n", "path", "records", "pages", "seconds", "records/s");
    printf("%-40s %10ld %8ld %10.3f %12.0f\n", "fetch + parse only (floor)", fetched, pages,
           floor_s, fetched / floor_s);
    printf("%-40s %10ld %8ld %10.3f %12.0f\n", "sync into SQLite (engine)", st.records, st.pages,
           sync_s, st.records / sync_s);
    printf("sync / floor time: %.2fx\n", sync_s / floor_s);

    ah_daemon_close(core);
    ah_sim_stop(sim);
    ah_erecruit_sim_free(er);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
