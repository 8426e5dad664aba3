/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hot swap under load: client threads call jobs.get on fixture_good through
 * the bus while the plugin is swapped 20 times between good_v1.so and
 * good_v2.so; the same load without swaps first. Prints requests, failures
 * and latency p50/p99 for both phases.
 * Usage: bench_swap [THREADS] (default 4). Needs the test fixtures
 * (AH_FIXTURE_DIR, default the build tree's).
 */
#include <pthread.h>
#include <stdatomic.h>
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
#include "ops.h"

#define SWAPS 20
#define SWAP_GAP_US (75 * 1000)
#define MAX_SAMPLES 4000000

typedef struct phase {
    double *lat; /* seconds */
    atomic_long n;
    atomic_long failed;
    atomic_long v1, v2;
} phase;

typedef struct client {
    ah_core *core;
    phase *ph;
    atomic_bool *stop;
    char conn[16];
} client;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *client_main(void *arg)
{
    client *c = arg;
    while (!atomic_load(c->stop)) {
        ah_reply r;
        memset(&r, 0, sizeof r);
        double t0 = now_s();
        ah_core_request(c->core, "bench", c->conn, "jobs.get", cJSON_CreateObject(), &r);
        double dt = now_s() - t0;
        long i = atomic_fetch_add(&c->ph->n, 1);
        if (i < MAX_SAMPLES)
            c->ph->lat[i] = dt;
        const cJSON *v = r.ok ? cJSON_GetObjectItem(r.body, "version") : NULL;
        if (!r.ok)
            atomic_fetch_add(&c->ph->failed, 1);
        else if (cJSON_IsString(v) && strcmp(v->valuestring, "2.0.0") == 0)
            atomic_fetch_add(&c->ph->v2, 1);
        else
            atomic_fetch_add(&c->ph->v1, 1);
        ah_reply_free(&r);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, phase *ph, double secs)
{
    long n = atomic_load(&ph->n);
    long m = n < MAX_SAMPLES ? n : MAX_SAMPLES;
    qsort(ph->lat, (size_t)m, sizeof(double), cmp_double);
    double p50 = m > 0 ? ph->lat[m / 2] : 0, p99 = m > 0 ? ph->lat[(m * 99) / 100] : 0;
    printf("%-14s %10ld %9ld %10.0f %10.3f %10.3f %8ld %8ld\n", name, n, atomic_load(&ph->failed),
           n / secs, p50 * 1e3, p99 * 1e3, atomic_load(&ph->v1), atomic_load(&ph->v2));
}

/* Runs the load for `secs` seconds, swapping SWAPS times when swap. */
static double run_phase(ah_core *core, int threads, phase *ph, bool swap, const char *v1,
                        const char *v2, double secs)
{
    atomic_bool stop = false;
    client *cl = calloc((size_t)threads, sizeof *cl);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    if (cl == NULL || th == NULL) {
        free(cl);
        free(th);
        return 0;
    }
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        cl[i] = (client){.core = core, .ph = ph, .stop = &stop};
        snprintf(cl[i].conn, sizeof cl[i].conn, "c%d", i);
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    if (swap) {
        for (int i = 0; i < SWAPS; i++) {
            usleep(SWAP_GAP_US);
            ah_ops_err e;
            if (ah_ops_plugin_reload(core, "fixture_good", i % 2 == 0 ? v2 : v1, NULL, &e) != 0)
                fprintf(stderr, "swap %d failed: %s\n", i, e.msg);
        }
        usleep(SWAP_GAP_US);
    } else {
        usleep((useconds_t)(secs * 1e6));
    }
    atomic_store(&stop, true);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    free(cl);
    free(th);
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    if (threads < 1 || threads > 64)
        threads = 4;
    const char *fx = getenv("AH_FIXTURE_DIR");
    if (fx == NULL)
        fx = AH_BENCH_FIXTURE_DIR;
    char dir[] = "/tmp/atshub-bench-XXXXXX", ini[256], text[1024], err[1024], v1[512], v2[512];
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(v1, sizeof v1, "%s/good_v1.so", fx);
    snprintf(v2, sizeof v2, "%s/good_v2.so", fx);
    snprintf(ini, sizeof ini, "%s/atshub.ini", dir);
    snprintf(text, sizeof text,
             "[core]\nworkers = %d\nkey_file = host.key\nlog_level = warn\n[store]\nurl = sqlite:b.db\n"
             "[admin]\nsocket = off\n[plugins]\nfixture_good = %s\n"
             /* As measured before plugins ran isolated by default (issue 15). */
             "[plugin.fixture_good]\nisolation = in_process\n", threads, v1);
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
        ah_config_free(&cfg);
        return 1;
    }
    int64_t tid, cid;
    core->store->ops->tenant_add(core->store, "bench", "0000", &tid);
    for (int i = 0; i < threads; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", i);
        core->store->ops->connection_add(core->store, tid, "fixture_good", name, "{}", &cid);
    }
    ah_conns_reload(core);

    phase steady = {.lat = malloc(MAX_SAMPLES * sizeof(double))};
    phase swapping = {.lat = malloc(MAX_SAMPLES * sizeof(double))};
    if (steady.lat == NULL || swapping.lat == NULL)
        return 1;
    double swap_secs = (SWAPS + 1) * SWAP_GAP_US / 1e6;
    double s1 = run_phase(core, threads, &steady, false, v1, v2, swap_secs);
    double s2 = run_phase(core, threads, &swapping, true, v1, v2, swap_secs);
    printf("hot swap under load: %d client threads, %d swaps between good_v1.so and good_v2.so\n",
           threads, SWAPS);
    printf("%-14s %10s %9s %10s %10s %10s %8s %8s\n", "phase", "requests", "failures", "req/s",
           "p50 ms", "p99 ms", "v1", "v2");
    report("without swaps", &steady, s1);
    report("with swaps", &swapping, s2);
    free(steady.lat);
    free(swapping.lat);
    ah_daemon_close(core);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return 0;
}
