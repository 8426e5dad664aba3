/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inbound ERP create-job throughput and latency: an in-process core with the
 * erp plugin, SQLite persistence and the integration log on, one tenant and
 * one (or -s N) ERP sources, driven with POST /create-job/ over keep-alive
 * connections by -c threads (one libcurl easy handle each). Every title is
 * unique, so every request creates a job (a JOB_EXISTS would count as a
 * failure). Prints one table row.
 *
 *   bench_erp [-n REQUESTS] [-w WARMUP] [-c CONCURRENCY] [-s SOURCES]
 *             [-t HTTP_THREADS] [-p PLUGIN.so] [-i in_process|process] [-P PROCESSES]
 *             [-r workers|inline] [-W BUS_WORKERS] [-T TENANT_WORKERS]
 *
 * -i: how the erp plugin runs (issue 15): in the daemon's process (the
 * default, as every figure before it was measured and as etc/atshub.ini
 * runs it), or in a process of its own, every route call and every host
 * call it makes a round trip over the socket. Run both to compare. -P: the
 * plugin's processes when isolated (default 1; each serves several route
 * calls at a time).
 * -r: [http] plugin_routes: the route runs on a bus worker (the default) or
 * on the HTTP thread. -W: [core] workers (default 2). -T: [core]
 * tenant_workers, the workers one tenant (here: the client's address, as
 * the ERP routes authenticate in the plugin) may hold at once (default 0:
 * half of the workers).
 */
#include <curl/curl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "committer.h"
#include "rest.h"
#include "sync.h"
#include "tracking.h"
#include "events.h"

typedef struct bench {
    char base[96];
    char (*keys)[80];
    char (*names)[32];
    int nsources;
    long total;   /* requests to time */
    long warmup;  /* requests before timing */
    atomic_long next;
    atomic_long failures;
    double *lat_ms; /* per timed request */
    const char *phase; /* title prefix, so warm-up and timed titles differ */
} bench;

typedef struct worker {
    bench *b;
    int index;
    long limit;
} worker;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t discard(char *d, size_t sz, size_t nm, void *arg)
{
    (void)d;
    (void)arg;
    return sz * nm;
}

static void *drive(void *arg)
{
    worker *w = arg;
    bench *b = w->b;
    CURL *c = curl_easy_init();
    if (c == NULL)
        return NULL;
    int src = w->index % b->nsources;
    char url[160], hdr[128], body[512];
    snprintf(url, sizeof url, "%s/recruitment/integration/erp/create-job/", b->base);
    snprintf(hdr, sizeof hdr, "X-API-Key: %s", b->keys[src]);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, hdr);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    for (;;) {
        long i = atomic_fetch_add(&b->next, 1);
        if (i >= w->limit)
            break;
        int n = snprintf(body, sizeof body,
                         "{\"action\":\"create_job\",\"source_name\":\"%s\",\"title\":\"%s job %ld\","
                         "\"department\":\"Information Technology\",\"job_type\":\"full-time\","
                         "\"workplace_type\":\"hybrid\",\"location_city\":\"Riyadh\","
                         "\"location_country\":\"Saudi Arabia\",\"description\":\"Benchmark job\","
                         "\"application_url\":\"https://careers.example.com/job/%ld\",\"auto_publish\":true}",
                         b->names[src], b->phase, i, i);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)n);
        double t0 = now_s();
        long status = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        double ms = (now_s() - t0) * 1e3;
        if (status != 200)
            atomic_fetch_add(&b->failures, 1);
        if (b->lat_ms != NULL)
            b->lat_ms[i] = ms;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static int run_phase(bench *b, int conc, long limit, const char *phase, double *lat)
{
    pthread_t *th = calloc((size_t)conc, sizeof *th);
    worker *w = calloc((size_t)conc, sizeof *w);
    if (th == NULL || w == NULL) {
        free(th);
        free(w);
        return -1;
    }
    atomic_store(&b->next, 0);
    atomic_store(&b->failures, 0);
    b->phase = phase;
    b->lat_ms = lat;
    int started = 0;
    for (int i = 0; i < conc; i++) {
        w[i] = (worker){b, i, limit};
        if (pthread_create(&th[i], NULL, drive, &w[i]) != 0)
            break;
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
    free(w);
    return started == conc ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int add_source(ah_core *core, int64_t tid, const char *name, char *key, size_t keylen)
{
    ah_generation *gen = ah_registry_acquire(core->registry, "erp");
    if (gen == NULL)
        return -1;
    cJSON *in = cJSON_Parse("{\"trusted_ips\":\"127.0.0.1,::1\",\"job_id_prefix\":\"BENCH\"}");
    cJSON *gen_out = cJSON_CreateObject();
    char *text = NULL, err[512];
    int64_t cid;
    int rc = -1;
    if (ah_settings_build(core, gen->desc->settings, "erp", NULL, in, true, gen_out, &text, err,
                          sizeof err) == 0 &&
        core->store->ops->connection_add(core->store, tid, "erp", name, text, &cid) == 0) {
        const cJSON *k = cJSON_GetObjectItem(gen_out, "api_key");
        if (cJSON_IsString(k)) {
            snprintf(key, keylen, "%s", k->valuestring);
            rc = 0;
        }
    } else {
        fprintf(stderr, "bench_erp: cannot add source %s: %s\n", name, err);
    }
    free(text);
    cJSON_Delete(in);
    cJSON_Delete(gen_out);
    ah_generation_release(gen);
    return rc;
}

int main(int argc, char **argv)
{
    /* The malloc tuning `atshub serve` runs with (its plugin processes
     * inherit it): the figures are serve's. */
    ah_cli_exec_with_tcache(argv);
    long total = 20000, warmup = 1000;
    int conc = 32, nsources = 1, http_threads = 4;
    char plugin[PATH_MAX] = "";
    const char *isolation = "in_process";
    int processes = 1;
    const char *routes = "workers";
    int bus_workers = 2, tenant_workers = 0;
    int opt;
    while ((opt = getopt(argc, argv, "n:w:c:s:t:p:i:P:r:W:T:")) != -1) {
        switch (opt) {
        case 'n': total = atol(optarg); break;
        case 'w': warmup = atol(optarg); break;
        case 'c': conc = atoi(optarg); break;
        case 's': nsources = atoi(optarg); break;
        case 't': http_threads = atoi(optarg); break;
        case 'p': snprintf(plugin, sizeof plugin, "%s", optarg); break;
        case 'i': isolation = optarg; break;
        case 'P': processes = atoi(optarg); break;
        case 'r': routes = optarg; break;
        case 'W': bus_workers = atoi(optarg); break;
        case 'T': tenant_workers = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: bench_erp [-n N] [-w N] [-c N] [-s N] [-t N] [-p erp.so] "
                            "[-i in_process|process] [-P PROCESSES] [-r workers|inline] "
                            "[-W BUS_WORKERS] [-T TENANT_WORKERS]\n");
            return 2;
        }
    }
    if (total < 1 || warmup < 0 || conc < 1 || conc > 1024 || nsources < 1 || nsources > 64 ||
        http_threads < 1 || http_threads > 64 || processes < 1 || processes > 64 ||
        bus_workers < 1 || bus_workers > 64 || tenant_workers < 0 || tenant_workers > 64 ||
        (strcmp(routes, "workers") != 0 && strcmp(routes, "inline") != 0) ||
        (strcmp(isolation, "in_process") != 0 && strcmp(isolation, "process") != 0)) {
        fprintf(stderr, "bench_erp: out-of-range option\n");
        return 2;
    }
#ifdef AH_BENCH_PLUGIN_DIR
    if (plugin[0] == '\0')
        snprintf(plugin, sizeof plugin, "%s/erp.so", AH_BENCH_PLUGIN_DIR);
#endif
    if (plugin[0] == '\0') {
        /* build/bench/bench_erp -> build/plugins/erp.so */
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) {
            fprintf(stderr, "bench_erp: give the plugin with -p\n");
            return 2;
        }
        self[n] = '\0';
        snprintf(plugin, sizeof plugin, "%s/../plugins/erp.so", dirname(self));
    }
    if (access(plugin, R_OK) != 0) {
        fprintf(stderr, "bench_erp: %s not found (build the erp target, or use -p)\n", plugin);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char dir[] = "/tmp/atshub-bench-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char ini[PATH_MAX + 64], cmd[PATH_MAX + 32];
    snprintf(ini, sizeof ini, "%s/atshub.ini", dir);
    FILE *f = fopen(ini, "w");
    if (f == NULL) {
        perror(ini);
        return 1;
    }
    fprintf(f,
            "[core]\nworkers = %d\ntenant_workers = %d\nkey_file = host.key\nlog_level = warn\n"
            "[http]\nlisten = 127.0.0.1:0\nthreads = %d\nplugin_routes = %s\n"
            "[store]\nurl = sqlite:atshub.db\n"
            "[sync]\ninterval_s = 0\n"
            "[plugins]\nerp = %s\n[plugin.erp]\nisolation = %s\nprocesses = %d\n",
            bus_workers, tenant_workers, http_threads, routes, plugin, isolation, processes);
    fclose(f);

    int rc = 1;
    ah_config cfg;
    memset(&cfg, 0, sizeof cfg);
    char err[1024];
    ah_core *core = NULL;
    bench b = {.total = total, .warmup = warmup, .nsources = nsources};
    double *lat = calloc((size_t)total, sizeof *lat);
    b.keys = calloc((size_t)nsources, sizeof *b.keys);
    b.names = calloc((size_t)nsources, sizeof *b.names);
    if (lat == NULL || b.keys == NULL || b.names == NULL)
        goto out;
    if (ah_config_load(ini, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "bench_erp: %s\n", err);
        goto out;
    }
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ah_config_free(&cfg); /* zeroed when the core took it */
    if (core == NULL || ah_daemon_start(core, err, sizeof err) != 0) {
        fprintf(stderr, "bench_erp: %s\n", err);
        goto out;
    }
    int64_t tid;
    if (core->store->ops->tenant_add(core->store, "bench", "0000", &tid) != 0)
        goto out;
    for (int i = 0; i < nsources; i++) {
        snprintf(b.names[i], sizeof b.names[i], "Bench_ERP_%d", i);
        if (add_source(core, tid, b.names[i], b.keys[i], sizeof b.keys[i]) != 0)
            goto out;
    }
    if (ah_conns_reload(core) != 0)
        goto out;
    snprintf(b.base, sizeof b.base, "http://127.0.0.1:%u", (unsigned)ah_httpd_port(core->httpd));

    if (warmup > 0 && run_phase(&b, conc, warmup, "Warmup", NULL) != 0)
        goto out;
    long warm_fail = atomic_load(&b.failures);
    double t0 = now_s();
    if (run_phase(&b, conc, total, "Timed", lat) != 0)
        goto out;
    double secs = now_s() - t0;
    long failures = atomic_load(&b.failures);
    qsort(lat, (size_t)total, sizeof *lat, cmp_double);
    double p50 = lat[(size_t)((double)total * 0.50)];
    double p99 = lat[(size_t)((double)total * 0.99 >= (double)total ? total - 1 : (double)total * 0.99)];
    printf("%-10s %-10s %-12s %-10s %-10s (erp %s, %d process(es), routes on %s, conc %d, "
           "sources %d, http threads %d, bus workers %d, tenant share %d, warm-up %ld, "
           "warm-up failures %ld)\n",
           "requests", "failures", "req/s", "p50_ms", "p99_ms", isolation,
           strcmp(isolation, "process") == 0 ? processes : 0, routes, conc, nsources,
           http_threads, bus_workers, tenant_workers, warmup, warm_fail);
    printf("%-10ld %-10ld %-12.0f %-10.3f %-10.3f\n", total, failures, (double)total / secs, p50,
           p99);
    uint64_t groups = 0, held = 0;
    ah_store_committer_stats(core->committer, &groups, &held);
    printf("group commit: %llu requests in %llu transactions (%.1f per commit)\n",
           (unsigned long long)held, (unsigned long long)groups,
           groups > 0 ? (double)held / (double)groups : 0.0);
    /* A failed request is answered fast: a rate with failures in it is not
     * a figure (a build that spawned another build's plugin host once
     * measured 30% faster while failing every request). */
    if (failures > 0 || warm_fail > 0)
        fprintf(stderr, "bench_erp: %ld of %ld requests failed (%ld in the warm-up): the rate "
                "above is not a figure\n", failures, total, warm_fail);
    rc = failures == 0 && warm_fail == 0 ? 0 : 1;
out:
    ah_daemon_close(core);
    free(lat);
    free(b.keys);
    free(b.names);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_erp: could not remove %s\n", dir);
    curl_global_cleanup();
    return rc;
}
