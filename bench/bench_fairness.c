/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Issue 13 point 2 as a figure: tenant acme has 50 calls hanging on the
 * tarpit fixture (a provider that answers only when released), half through
 * the bus (POST /v1/bus/jobs.get) and half on the tarpit's inbound route,
 * with 2 HTTP threads and 4 bus workers; meanwhile tenant globex's reads
 * (GET /v1/jobs) and ERP creates (POST /create-job/, the erp plugin's route)
 * are timed, one after another from -c client threads. The same load is
 * timed first with nothing hanging. Prints p50 / p99 of both, per kind.
 *
 *   bench_fairness [-n REQUESTS] [-c CONCURRENCY] [-i in_process|process]
 *
 * -i: how the erp and tarpit plugins run (default: process, the default
 * isolation). The tarpit answers every hanging call once released, and the
 * bench fails unless all 50 were answered 200.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <limits.h>
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

#define HANGING 50
#define PITS 4
#define KEY_ACME "ahk_acme_bench_0123456789"
#define KEY_GLOBEX "ahk_globex_bench_987654321"

typedef struct bench {
    char base[96];
    char erp_key[128];
    char tokens[PITS][128];
    long total;
    atomic_long next;
    atomic_long failures;
    double *read_ms, *create_ms; /* per request; < 0: not that kind */
    const char *phase;
} bench;

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

/* Even requests read, odd ones create a job. */
static void *drive(void *arg)
{
    bench *b = arg;
    CURL *c = curl_easy_init();
    if (c == NULL)
        return NULL;
    char url_r[160], url_c[160], auth[128], key[160], body[512];
    snprintf(url_r, sizeof url_r, "%s/v1/jobs?limit=5", b->base);
    snprintf(url_c, sizeof url_c, "%s/recruitment/integration/erp/create-job/", b->base);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", KEY_GLOBEX);
    snprintf(key, sizeof key, "X-API-Key: %s", b->erp_key);
    struct curl_slist *hr = curl_slist_append(NULL, auth);
    struct curl_slist *hc = curl_slist_append(NULL, "Content-Type: application/json");
    hc = curl_slist_append(hc, key);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    for (;;) {
        long i = atomic_fetch_add(&b->next, 1);
        if (i >= b->total)
            break;
        bool create = i % 2 == 1;
        if (create) {
            int n = snprintf(body, sizeof body,
                             "{\"action\":\"create_job\",\"source_name\":\"Globex_ERP\","
                             "\"title\":\"%s job %ld\",\"application_url\":"
                             "\"https://careers.example.com/job/%ld\"}",
                             b->phase, i, i);
            curl_easy_setopt(c, CURLOPT_URL, url_c);
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, hc);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)n);
        } else {
            curl_easy_setopt(c, CURLOPT_URL, url_r);
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, hr);
            curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        }
        double t0 = now_s();
        long status = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        double ms = (now_s() - t0) * 1e3;
        if (status != 200)
            atomic_fetch_add(&b->failures, 1);
        b->read_ms[i] = create ? -1 : ms;
        b->create_ms[i] = create ? ms : -1;
    }
    curl_slist_free_all(hr);
    curl_slist_free_all(hc);
    curl_easy_cleanup(c);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p50 and p99 of the non-negative entries of v[n] (sorted in place). */
static void pct(double *v, long n, double *p50, double *p99, long *count)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    long first = 0;
    while (first < n && v[first] < 0)
        first++;
    long k = n - first;
    *count = k;
    *p50 = k > 0 ? v[first + k / 2] : 0;
    *p99 = k > 0 ? v[first + (long)((double)k * 0.99 >= (double)k ? k - 1 : (double)k * 0.99)] : 0;
}

static int run_phase(bench *b, int conc, const char *phase)
{
    pthread_t th[64];
    atomic_store(&b->next, 0);
    atomic_store(&b->failures, 0);
    b->phase = phase;
    int started = 0;
    for (int i = 0; i < conc; i++) {
        if (pthread_create(&th[i], NULL, drive, b) != 0)
            break;
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double r50, r99, c50, c99;
    long nr, nc;
    pct(b->read_ms, b->total, &r50, &r99, &nr);
    pct(b->create_ms, b->total, &c50, &c99, &nc);
    printf("%-28s %-8ld %-8ld %-10.3f %-10.3f %-8ld %-10.3f %-10.3f\n", phase, nr, nc, r50, r99,
           atomic_load(&b->failures), c50, c99);
    return started == conc ? 0 : -1;
}

typedef struct hanger {
    bench *b;
    int i;
    long status;
} hanger;

static void *hang_main(void *arg)
{
    hanger *hg = arg;
    CURL *c = curl_easy_init();
    if (c == NULL)
        return NULL;
    char url[384], auth[128], xc[64];
    struct curl_slist *h = NULL;
    if (hg->i % 2 == 0) {
        snprintf(url, sizeof url, "%s/v1/bus/jobs.get", hg->b->base);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", KEY_ACME);
        snprintf(xc, sizeof xc, "X-Connection: pit%d", hg->i / 2 % PITS + 1);
        h = curl_slist_append(h, auth);
        h = curl_slist_append(h, xc);
    } else {
        snprintf(url, sizeof url, "%s/tarpit/hook/%s", hg->b->base,
                 hg->b->tokens[hg->i / 2 % PITS]);
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"job_id\":\"x\"}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &hg->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static int add_conn(ah_core *core, int64_t tid, const char *plugin, const char *name,
                    const char *input, const char *key, char *out, size_t outlen)
{
    ah_generation *gen = ah_registry_acquire(core->registry, plugin);
    if (gen == NULL)
        return -1;
    cJSON *in = cJSON_Parse(input), *gen_out = cJSON_CreateObject();
    char *text = NULL, err[512];
    int64_t cid;
    int rc = -1;
    if (ah_settings_build(core, gen->desc->settings, plugin, NULL, in, true, gen_out, &text, err,
                          sizeof err) == 0 &&
        core->store->ops->connection_add(core->store, tid, plugin, name, text, &cid) == 0) {
        const cJSON *k = cJSON_GetObjectItem(gen_out, key);
        if (cJSON_IsString(k)) {
            snprintf(out, outlen, "%s", k->valuestring);
            rc = 0;
        }
    } else {
        fprintf(stderr, "bench_fairness: cannot add %s: %s\n", name, err);
    }
    free(text);
    cJSON_Delete(in);
    cJSON_Delete(gen_out);
    ah_generation_release(gen);
    return rc;
}

int main(int argc, char **argv)
{
    long total = 4000;
    int conc = 4;
    const char *isolation = "process";
    int opt;
    while ((opt = getopt(argc, argv, "n:c:i:")) != -1) {
        switch (opt) {
        case 'n': total = atol(optarg); break;
        case 'c': conc = atoi(optarg); break;
        case 'i': isolation = optarg; break;
        default:
            fprintf(stderr, "usage: bench_fairness [-n N] [-c N] [-i in_process|process]\n");
            return 2;
        }
    }
    if (total < 2 || conc < 1 || conc > 64 ||
        (strcmp(isolation, "in_process") != 0 && strcmp(isolation, "process") != 0)) {
        fprintf(stderr, "bench_fairness: out-of-range option\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char dir[] = "/tmp/atshub-bench-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char ini[PATH_MAX], release[PATH_MAX], cmd[PATH_MAX + 32];
    snprintf(ini, sizeof ini, "%s/atshub.ini", dir);
    snprintf(release, sizeof release, "%s/release", dir);
    /* Read by the tarpit fixture, also in its own process (inherited). */
    setenv("AH_TARPIT_RELEASE", release, 1);
    FILE *f = fopen(ini, "w");
    if (f == NULL) {
        perror(ini);
        return 1;
    }
    fprintf(f,
            "[core]\nworkers = 4\nkey_file = host.key\nlog_level = error\n"
            "request_timeout_ms = 600000\n"
            "[http]\nlisten = 127.0.0.1:0\nthreads = 2\ntenant_rate = 0\n"
            "[store]\nurl = sqlite:atshub.db\n"
            "[sync]\ninterval_s = 0\n"
            "[plugins]\nerp = %s/erp.so\ntarpit = %s/tarpit.so\n"
            "[plugin.erp]\nisolation = %s\n[plugin.tarpit]\nisolation = %s\n",
            AH_BENCH_PLUGIN_DIR, AH_BENCH_FIXTURE_DIR, isolation, isolation);
    fclose(f);

    int rc = 1;
    ah_config cfg;
    memset(&cfg, 0, sizeof cfg);
    char err[1024];
    ah_core *core = NULL;
    bench b = {.total = total};
    hanger hg[HANGING];
    pthread_t th[HANGING];
    int nhang = 0;
    b.read_ms = calloc((size_t)total, sizeof *b.read_ms);
    b.create_ms = calloc((size_t)total, sizeof *b.create_ms);
    if (b.read_ms == NULL || b.create_ms == NULL)
        goto out;
    if (ah_config_load(ini, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "bench_fairness: %s\n", err);
        goto out;
    }
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ah_config_free(&cfg);
    if (core == NULL || ah_daemon_start(core, err, sizeof err) != 0) {
        fprintf(stderr, "bench_fairness: %s\n", err);
        goto out;
    }
    int64_t acme, globex;
    char h1[AH_SHA256_HEX_LEN + 1], h2[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex(KEY_ACME, strlen(KEY_ACME), h1);
    ah_sha256_hex(KEY_GLOBEX, strlen(KEY_GLOBEX), h2);
    if (core->store->ops->tenant_add(core->store, "acme", h1, &acme) != 0 ||
        core->store->ops->tenant_add(core->store, "globex", h2, &globex) != 0)
        goto out;
    for (int i = 0; i < PITS; i++) {
        char name[16];
        snprintf(name, sizeof name, "pit%d", i + 1);
        if (add_conn(core, acme, "tarpit", name, "{}", "webhook_token", b.tokens[i],
                     sizeof b.tokens[i]) != 0)
            goto out;
    }
    if (add_conn(core, globex, "erp", "Globex_ERP",
                 "{\"trusted_ips\":\"127.0.0.1,::1\",\"job_id_prefix\":\"GX\"}", "api_key",
                 b.erp_key, sizeof b.erp_key) != 0 ||
        ah_conns_reload(core) != 0)
        goto out;
    snprintf(b.base, sizeof b.base, "http://127.0.0.1:%u", (unsigned)ah_httpd_port(core->httpd));

    printf("%-28s %-8s %-8s %-10s %-10s %-8s %-10s %-10s (erp and tarpit %s, conc %d, "
           "http threads 2, bus workers 4)\n",
           "phase (tenant globex)", "reads", "creates", "read_p50", "read_p99", "failures",
           "create_p50", "create_p99", isolation, conc);
    if (run_phase(&b, conc, "warm-up") != 0 || run_phase(&b, conc, "alone") != 0)
        goto out;
    for (; nhang < HANGING; nhang++) {
        hg[nhang] = (hanger){.b = &b, .i = nhang};
        if (pthread_create(&th[nhang], NULL, hang_main, &hg[nhang]) != 0)
            goto out;
    }
    for (int waited = 0; ah_httpd_inflight(core->httpd) < HANGING; waited++) {
        if (waited > 60000) {
            fprintf(stderr, "bench_fairness: the 50 calls never were all in flight\n");
            goto out;
        }
        usleep(1000);
    }
    if (run_phase(&b, conc, "acme: 50 calls hanging") != 0)
        goto out;
    long still = ah_httpd_inflight(core->httpd);
    FILE *rf = fopen(release, "w");
    if (rf != NULL)
        fclose(rf);
    long ok = 0;
    for (int i = 0; i < nhang; i++) {
        pthread_join(th[i], NULL);
        ok += hg[i].status == 200;
    }
    nhang = 0;
    printf("acme's calls: %ld of %d still in flight after the timed phase; %ld answered 200 "
           "once released\n",
           still, HANGING, ok);
    rc = atomic_load(&b.failures) == 0 && ok == HANGING ? 0 : 1;
out:
    if (nhang > 0) {
        FILE *rf2 = fopen(release, "w");
        if (rf2 != NULL)
            fclose(rf2);
        for (int i = 0; i < nhang; i++)
            pthread_join(th[i], NULL);
    }
    ah_daemon_close(core);
    free(b.read_ms);
    free(b.create_ms);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_fairness: could not remove %s\n", dir);
    curl_global_cleanup();
    return rc;
}
