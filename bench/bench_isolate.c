/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An isolated plugin's call beside the same call in process (issue 15):
 * fixture_faulty's jobs.get {"do":"ok"} (a context read, a small reply)
 * through the bus, once with the plugin in the daemon and once in its own
 * process (atshub-plugin-host over a socket pair): called directly as the
 * router calls it (no bus) from one thread (p50, p99, calls/s) and from
 * four at once on four connections (calls/s: with one process, four calls
 * in flight in it), synchronous bus round trips one at a time (p50,
 * p99, calls/s) and pipelined async bus requests over 8 connections; the
 * last row with processes = 2 (connections spread over two processes).
 * Usage: bench_isolate [REQUESTS] (default 100000). Prints one table.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "handoff.h"

typedef struct counter {
    atomic_long done;
    atomic_long failed;
} counter;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_reply(void *arg, ah_reply *r)
{
    counter *c = arg;
    if (!r->ok)
        atomic_fetch_add(&c->failed, 1);
    ah_reply_free(r);
    atomic_fetch_add(&c->done, 1);
}

static cJSON *body(void)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "do", "ok");
    return b;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One of DIRECT_THREADS threads calling the operation directly (as the
 * router does) on its own connection: with one plugin process, the calls
 * of all of them are in flight in it at once. */
enum { DIRECT_THREADS = 4 };

typedef struct direct_arg {
    ah_core *core;
    char conn[16];
    long n;
    atomic_long *failed;
} direct_arg;

static void *direct_main(void *arg)
{
    direct_arg *d = arg;
    ah_conn *c = ah_conn_find(d->core, "bench", d->conn);
    ah_generation *gen = ah_registry_acquire(d->core->registry, "fixture_faulty");
    ah_op_fn fn = ah_router_resolve(gen->desc, ah_router_topic("jobs.get"));
    ah_core_call cc;
    ah_core_call_init(&cc, d->core, gen, c, "jobs.get", NULL);
    ah_conn_ensure_open(d->core, c, gen, &cc.ext);
    cc.ext.call.conn_ctx = c->ctx;
    for (long i = 0; i < d->n; i++) {
        cJSON *b = body(), *reply = NULL;
        if (ah_generation_call(gen, fn, &cc.ext.call, b, &reply) != AH_OK)
            atomic_fetch_add(d->failed, 1);
        cJSON_Delete(reply);
        cJSON_Delete(b);
    }
    ah_core_call_done(&cc);
    ah_generation_release(gen);
    ah_conn_release(c);
    return NULL;
}

static int run(const char *mode, int processes, long n)
{
    const char *fx = getenv("AH_FIXTURE_DIR");
    char dir[] = "/tmp/atshub-bench-XXXXXX", ini[256], text[2048], err[1024];
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(ini, sizeof ini, "%s/atshub.ini", dir);
    snprintf(text, sizeof text,
             "[core]\nworkers = 2\nkey_file = host.key\nlog_level = warn\n[store]\nurl = sqlite:b.db\n"
             "[admin]\nsocket = off\n[plugins]\nfixture_faulty = %s/faulty.so\n"
             "[plugin.fixture_faulty]\nisolation = %s\nprocesses = %d\n",
             fx != NULL ? fx : AH_BENCH_FIXTURE_DIR, mode, processes);
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
    enum { NCONN = 8 };
    int64_t tid, lanes[NCONN], cid;
    core->store->ops->tenant_add(core->store, "bench", "0000", &tid);
    for (int i = 0; i < NCONN; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", i);
        core->store->ops->connection_add(core->store, tid, "fixture_faulty", name, "{}", &lanes[i]);
    }
    core->store->ops->connection_add(core->store, tid, "fixture_faulty", "main", "{}", &cid);
    ah_conns_reload(core);

    /* warm up: open the contexts */
    for (int i = 0; i < NCONN; i++) {
        ah_reply r;
        ah_bus_request(core->bus, (uint64_t)lanes[i], NULL, "jobs.get", body(), 0, &r);
        ah_reply_free(&r);
    }
    long failed = 0;
    double *lat = malloc((size_t)n * sizeof *lat);
    /* The operation called as the router calls it, without the bus (whose
     * spinning waiters compete with the plugin process for the 2 cores). */
    ah_conn *c = ah_conn_find(core, "bench", "main");
    ah_generation *gen = ah_registry_acquire(core->registry, "fixture_faulty");
    ah_op_fn fn = ah_router_resolve(gen->desc, ah_router_topic("jobs.get"));
    ah_core_call cc;
    ah_core_call_init(&cc, core, gen, c, "jobs.get", NULL);
    ah_conn_ensure_open(core, c, gen, &cc.ext);
    cc.ext.call.conn_ctx = c->ctx;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        cJSON *b = body(), *reply = NULL;
        double a = now_s();
        failed += ah_generation_call(gen, fn, &cc.ext.call, b, &reply) != AH_OK;
        lat[i] = now_s() - a;
        cJSON_Delete(reply);
        cJSON_Delete(b);
    }
    double direct = now_s() - t0;
    ah_core_call_done(&cc);
    ah_generation_release(gen);
    ah_conn_release(c);
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    double d50 = lat[n / 2], d99 = lat[n * 99 / 100];
    /* The same from DIRECT_THREADS threads at once. */
    pthread_t th[DIRECT_THREADS];
    direct_arg da[DIRECT_THREADS];
    atomic_long dfailed = 0;
    t0 = now_s();
    for (int i = 0; i < DIRECT_THREADS; i++) {
        da[i] = (direct_arg){.core = core, .n = n / DIRECT_THREADS, .failed = &dfailed};
        snprintf(da[i].conn, sizeof da[i].conn, "c%d", i);
        pthread_create(&th[i], NULL, direct_main, &da[i]);
    }
    for (int i = 0; i < DIRECT_THREADS; i++)
        pthread_join(th[i], NULL);
    double directx = now_s() - t0;
    failed += atomic_load(&dfailed);
    t0 = now_s();
    for (long i = 0; i < n; i++) {
        ah_reply r;
        double a = now_s();
        ah_bus_request(core->bus, (uint64_t)cid, NULL, "jobs.get", body(), 0, &r);
        lat[i] = now_s() - a;
        failed += !r.ok;
        ah_reply_free(&r);
    }
    double sync = now_s() - t0;
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);

    counter ctr = {0};
    t0 = now_s();
    for (long i = 0; i < n; i++) {
        while (i - atomic_load(&ctr.done) > 4096)
            sched_yield();
        ah_bus_request_async(core->bus, (uint64_t)lanes[i % NCONN], NULL, "jobs.get", body(),
                             on_reply, &ctr);
    }
    while (atomic_load(&ctr.done) < n)
        sched_yield();
    double async = now_s() - t0;
    failed += atomic_load(&ctr.failed);

    char label[32];
    snprintf(label, sizeof label, "%s%s", mode,
             processes > 1 ? (processes == 2 ? " x2" : " xN") : "");
    printf("%-13s %9ld %8.1f %8.1f %10.0f %10.0f %8.1f %8.1f %10.0f %12.0f %6ld\n", label, n,
           d50 * 1e6, d99 * 1e6, n / direct,
           (double)(n / DIRECT_THREADS * DIRECT_THREADS) / directx, lat[n / 2] * 1e6,
           lat[n * 99 / 100] * 1e6, n / sync, n / async, failed);
    free(lat);
    ah_daemon_close(core);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 && failed == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    if (n < 100)
        n = 100;
    printf("%-13s %9s %8s %8s %10s %10s %8s %8s %10s %12s %6s\n", "", "", "direct", "", "",
           "direct x4", "bus sync", "", "", "bus async 8", "");
    printf("%-13s %9s %8s %8s %10s %10s %8s %8s %10s %12s %6s\n", "isolation", "requests",
           "p50 us", "p99 us", "calls/s", "calls/s", "p50 us", "p99 us", "calls/s", "calls/s",
           "failed");
    double h0 = ah_bench_handoff_ns();
    int rc = run("in_process", 1, n);
    rc |= run("process", 1, n);
    rc |= run("process", 2, n);
    /* What the VM's CPUs gave meanwhile (handoff.h): the figures that cross
     * threads and processes follow it. */
    printf("hand-off (a cache line's round trip between two threads): %.0f ns before, %.0f ns "
           "after\n",
           h0, ah_bench_handoff_ns());
    return rc;
}
