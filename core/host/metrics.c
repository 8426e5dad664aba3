/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics: labelled counters and histograms kept in one table, rendered in
 * the Prometheus text format. A label set is at most four strings. Series
 * are found through a hash index (they are looked up on every plugin call
 * and HTTP request, and sync series grow with connections), bounded by
 * AH_METRICS_MAX.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conns.h"
#include "core.h"
#include "isolate.h"
#include "metrics.h"

/* Past this many series, new label sets are counted under one overflow
 * series per kind rather than growing without bound. */
#define AH_METRICS_MAX 4096
#define NLABELS 4

static const double bucket_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof bucket_le / sizeof bucket_le[0])

enum kind {
    M_HTTP_COUNT, /* listener, method, route, status */
    M_HTTP_TIME,  /* listener, method, route */
    M_CALL_COUNT, /* plugin, topic, result */
    M_CALL_TIME,  /* plugin, topic */
    M_SWAP,       /* plugin, result */
    M_SYNC_RUNS,  /* tenant, connection, type, result */
    M_SYNC_RECS,  /* tenant, connection, type */
    M_SYNC_LAST,  /* tenant, connection: time of the last good end */
    M_KINDS
};

typedef struct series {
    enum kind kind;
    char *label[NLABELS];
    unsigned long long count;
    double sum;
    unsigned long long bucket[NBUCKETS];
    double value;
} series;

/* The last hour, a minute per slot: slot (minute % AH_RECENT_MINUTES)
 * holds the counts of `minute` (minutes since the epoch); a slot whose
 * minute is older is stale and reads as zero. */
typedef struct recent_slot {
    int64_t minute;
    unsigned long requests, errors;
} recent_slot;

typedef struct recent_tenant {
    char name[72];
    recent_slot slot[AH_RECENT_MINUTES];
} recent_tenant;

struct ah_metrics {
    pthread_mutex_t mu;
    series *v;
    size_t n, cap;
    size_t *index;    /* open addressing: position in v + 1, 0 = empty */
    size_t index_cap; /* power of two, kept at least twice n */
    recent_tenant *tenants; /* AH_RECENT_TENANTS at most; the rest count as "(other)" */
    size_t ntenants;
    recent_slot records[AH_RECENT_MINUTES]; /* requests = records synced */
};

typedef struct kind_info {
    const char *name;
    const char *type;
    const char *help;
    const char *labels[NLABELS];
} kind_info;

static const kind_info kinds[M_KINDS] = {
    [M_HTTP_COUNT] = {"atshub_http_requests_total", "counter", "HTTP requests answered",
                      {"listener", "method", "route", "status"}},
    [M_HTTP_TIME] = {"atshub_http_request_seconds", "histogram",
                     "HTTP request latency, request line to response sent",
                     {"listener", "method", "route", NULL}},
    [M_CALL_COUNT] = {"atshub_plugin_calls_total", "counter", "Bus requests handled by plugins",
                      {"plugin", "topic", "result", NULL}},
    [M_CALL_TIME] = {"atshub_plugin_call_seconds", "histogram", "Plugin call latency",
                     {"plugin", "topic", NULL, NULL}},
    [M_SWAP] = {"atshub_plugin_swaps_total", "counter",
                "Plugin loads that add or replace a generation", {"plugin", "result", NULL, NULL}},
    [M_SYNC_RUNS] = {"atshub_sync_runs_total", "counter", "Scheduled sync runs",
                     {"tenant", "connection", "type", "result"}},
    [M_SYNC_RECS] = {"atshub_sync_records_total", "counter", "Records fetched by sync runs",
                     {"tenant", "connection", "type", NULL}},
    [M_SYNC_LAST] = {"atshub_sync_lag_seconds", "gauge",
                     "Seconds since the last successful sync of the connection ended",
                     {"tenant", "connection", NULL, NULL}},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

ah_metrics *ah_metrics_new(void)
{
    ah_metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

void ah_metrics_free(ah_metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++)
        for (int j = 0; j < NLABELS; j++)
            free(m->v[i].label[j]);
    free(m->v);
    free(m->index);
    free(m->tenants);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static bool labels_eq(const series *s, const char *const *l)
{
    for (int j = 0; j < NLABELS; j++) {
        const char *a = s->label[j], *b = l[j];
        if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
            return false;
    }
    return true;
}

static uint64_t labels_hash(enum kind k, const char *const *l)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)k;
    for (int j = 0; j < NLABELS; j++) {
        for (const char *p = l[j]; p != NULL && *p != '\0'; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL; /* separates ("ab","") from ("a","b") */
    }
    return h;
}

/* Index position of kind+labels: the slot holding it, or the empty slot
 * where it would go. Caller holds m->mu; index_cap > 0. */
static size_t index_slot(const ah_metrics *m, enum kind k, const char *const *l)
{
    size_t mask = m->index_cap - 1, i = (size_t)labels_hash(k, l) & mask;
    while (m->index[i] != 0) {
        const series *s = &m->v[m->index[i] - 1];
        if (s->kind == k && labels_eq(s, l))
            break;
        i = (i + 1) & mask;
    }
    return i;
}

static int index_grow(ah_metrics *m)
{
    size_t cap = m->index_cap ? m->index_cap * 2 : 64;
    size_t *old = m->index, ocap = m->index_cap;
    m->index = calloc(cap, sizeof *m->index);
    if (m->index == NULL) {
        m->index = old;
        return -1;
    }
    m->index_cap = cap;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i] == 0)
            continue;
        const series *s = &m->v[old[i] - 1];
        m->index[index_slot(m, s->kind, (const char *const *)s->label)] = old[i];
    }
    free(old);
    return 0;
}

static series *find(ah_metrics *m, enum kind k, const char *const *l)
{
    if (m->index_cap == 0)
        return NULL;
    size_t i = index_slot(m, k, l);
    return m->index[i] != 0 ? &m->v[m->index[i] - 1] : NULL;
}

/* The series for kind+labels, created when missing; NULL when out of
 * memory. Caller holds m->mu. */
static series *get(ah_metrics *m, enum kind k, const char *l0, const char *l1, const char *l2,
                   const char *l3)
{
    const char *l[NLABELS] = {l0, l1, l2, l3};
    static const char *const overflow[NLABELS] = {"(overflow)", "(overflow)", "(overflow)",
                                                  "(overflow)"};
    series *hit = find(m, k, l);
    if (hit != NULL)
        return hit;
    if (m->n >= AH_METRICS_MAX) {
        for (int j = 0; j < NLABELS; j++)
            l[j] = kinds[k].labels[j] != NULL ? overflow[j] : NULL;
        if ((hit = find(m, k, l)) != NULL)
            return hit;
    }
    if (2 * (m->n + 1) > m->index_cap && index_grow(m) != 0)
        return NULL;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        series *v = realloc(m->v, cap * sizeof *v);
        if (v == NULL)
            return NULL;
        m->v = v;
        m->cap = cap;
    }
    series *s = &m->v[m->n];
    memset(s, 0, sizeof *s);
    s->kind = k;
    for (int j = 0; j < NLABELS; j++) {
        if (l[j] == NULL)
            continue;
        s->label[j] = strdup(l[j]);
        if (s->label[j] == NULL) {
            for (int i = 0; i < j; i++)
                free(s->label[i]);
            return NULL;
        }
    }
    m->n++;
    m->index[index_slot(m, k, l)] = m->n;
    return s;
}

static void observe(series *s, double seconds)
{
    if (s == NULL)
        return;
    s->count++;
    s->sum += seconds;
    for (size_t b = 0; b < NBUCKETS; b++)
        if (seconds <= bucket_le[b])
            s->bucket[b]++;
}

static void recent_request(ah_metrics *m, const char *tenant, int status);

/* The method as a label: HTTP's own, or OTHER. A client may send any
 * token of up to 23 characters as its method; each was a series of its
 * own, and a few thousand filled the table for every later series. */
static const char *method_label(const char *method)
{
    static const char *const known[] = {"GET",    "HEAD",    "POST",  "PUT",
                                        "DELETE", "OPTIONS", "PATCH", "TRACE"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(method, known[i]) == 0)
            return known[i];
    return "OTHER";
}

static void http_done(ah_metrics *m, const char *listener, const ah_http_exchange *ex)
{
    /* Labelled by the route's pattern, never the request's path: paths
     * carry ids and webhook tokens, which would leak into the metrics and
     * make a series per id until the table is full. A request no route
     * took gets a fixed label: none matched (404, 405), or it was answered
     * before the lookup (413, 414, 431, a malformed path). */
    const char *route = ah_ex_route(ex);
    int status = ah_ex_status(ex);
    char st[8];
    if (route[0] == '\0')
        route = status == 404 || status == 405 ? "(unmatched)" : "(unrouted)";
    snprintf(st, sizeof st, "%d", status);
    double secs = ah_ex_elapsed_s(ex);
    pthread_mutex_lock(&m->mu);
    const char *method = method_label(ah_ex_method(ex));
    series *c = get(m, M_HTTP_COUNT, listener, method, route, st);
    if (c != NULL)
        c->count++;
    observe(get(m, M_HTTP_TIME, listener, method, route, NULL), secs);
    if (ah_ex_tag(ex)[0] != '\0')
        recent_request(m, ah_ex_tag(ex), status);
    pthread_mutex_unlock(&m->mu);
}

static int64_t minute_now(void)
{
    return (int64_t)(now_s() / 60.0);
}

static recent_slot *recent_at(recent_slot *ring, int64_t minute)
{
    recent_slot *s = &ring[minute % AH_RECENT_MINUTES];
    if (s->minute != minute) {
        s->minute = minute;
        s->requests = 0;
        s->errors = 0;
    }
    return s;
}

/* Under m->mu. The tenant's ring, made on first use; NULL when out of memory. */
static recent_tenant *recent_tenant_get(ah_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->ntenants; i++)
        if (strcmp(m->tenants[i].name, name) == 0)
            return &m->tenants[i];
    if (m->ntenants == AH_RECENT_TENANTS) {
        /* Bounded memory: later tenants share the last ring. */
        recent_tenant *t = &m->tenants[AH_RECENT_TENANTS - 1];
        snprintf(t->name, sizeof t->name, "(other)");
        return t;
    }
    if (m->tenants == NULL) {
        m->tenants = calloc(AH_RECENT_TENANTS, sizeof *m->tenants);
        if (m->tenants == NULL)
            return NULL;
    }
    recent_tenant *t = &m->tenants[m->ntenants++];
    snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

static void recent_request(ah_metrics *m, const char *tenant, int status)
{
    recent_tenant *t = recent_tenant_get(m, tenant);
    if (t == NULL)
        return;
    recent_slot *s = recent_at(t->slot, minute_now());
    s->requests++;
    if (status >= 400)
        s->errors++;
}

void ah_metrics_records(ah_metrics *m, long records)
{
    if (m == NULL || records <= 0)
        return;
    pthread_mutex_lock(&m->mu);
    recent_at(m->records, minute_now())->requests += (unsigned long)records;
    pthread_mutex_unlock(&m->mu);
}

/* The ring as an array of AH_RECENT_MINUTES numbers, oldest minute first,
 * ending with `now`; `errors` picks the error counts. */
static cJSON *recent_array(const recent_slot *ring, int64_t now, bool errors)
{
    cJSON *a = cJSON_CreateArray();
    for (int64_t mi = now - AH_RECENT_MINUTES + 1; mi <= now; mi++) {
        const recent_slot *s = &ring[mi % AH_RECENT_MINUTES];
        unsigned long v = s->minute == mi ? (errors ? s->errors : s->requests) : 0;
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v));
    }
    return a;
}

cJSON *ah_metrics_recent_json(ah_metrics *m)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || m == NULL)
        return o;
    pthread_mutex_lock(&m->mu);
    int64_t now = minute_now();
    cJSON_AddNumberToObject(o, "minutes", AH_RECENT_MINUTES);
    cJSON_AddNumberToObject(o, "last_minute", (double)(now * 60));
    cJSON *ts = cJSON_AddArrayToObject(o, "tenants");
    for (size_t i = 0; i < m->ntenants; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "tenant", m->tenants[i].name);
        cJSON_AddItemToObject(t, "requests", recent_array(m->tenants[i].slot, now, false));
        cJSON_AddItemToObject(t, "errors", recent_array(m->tenants[i].slot, now, true));
        cJSON_AddItemToArray(ts, t);
    }
    cJSON_AddItemToObject(o, "sync_records", recent_array(m->records, now, false));
    pthread_mutex_unlock(&m->mu);
    return o;
}

void ah_metrics_http_done(void *arg, const ah_http_exchange *ex)
{
    if (arg != NULL)
        http_done(arg, "api", ex);
}

void ah_metrics_admin_http_done(void *arg, const ah_http_exchange *ex)
{
    if (arg != NULL)
        http_done(arg, "admin", ex);
}

void ah_metrics_call(ah_metrics *m, const char *plugin, const char *topic, bool ok,
                     double seconds)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    series *c = get(m, M_CALL_COUNT, plugin, topic, ok ? "ok" : "error", NULL);
    if (c != NULL)
        c->count++;
    observe(get(m, M_CALL_TIME, plugin, topic, NULL, NULL), seconds);
    pthread_mutex_unlock(&m->mu);
}

void ah_metrics_swap(ah_metrics *m, const char *plugin, bool ok)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    series *c = get(m, M_SWAP, plugin, ok ? "ok" : "failed", NULL, NULL);
    if (c != NULL)
        c->count++;
    pthread_mutex_unlock(&m->mu);
}

void ah_metrics_sync(ah_metrics *m, const char *tenant, const char *connection,
                     const char *type, long records, bool ok)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    series *c = get(m, M_SYNC_RUNS, tenant, connection, type, ok ? "ok" : "failed");
    if (c != NULL)
        c->count++;
    c = get(m, M_SYNC_RECS, tenant, connection, type, NULL);
    if (c != NULL && records > 0)
        c->count += (unsigned long long)records;
    if (ok) {
        c = get(m, M_SYNC_LAST, tenant, connection, NULL, NULL);
        if (c != NULL)
            c->value = now_s();
    }
    pthread_mutex_unlock(&m->mu);
}

/* --- rendering --------------------------------------------------------- */

/* A label value with \, " and newline escaped as the format requires. */
static void put_value(FILE *f, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', f), fputc(*v, f);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

/* {a="x",b="y"[,le="..."]} */
static void put_labels(FILE *f, const kind_info *k, const series *s, const char *le)
{
    bool any = false;
    fputc('{', f);
    for (int j = 0; j < NLABELS; j++) {
        if (k->labels[j] == NULL || s->label[j] == NULL)
            continue;
        fprintf(f, "%s%s=\"", any ? "," : "", k->labels[j]);
        put_value(f, s->label[j]);
        fputc('"', f);
        any = true;
    }
    if (le != NULL)
        fprintf(f, "%sle=\"%s\"", any ? "," : "", le);
    fputc('}', f);
}

static void render_kind(FILE *f, const ah_metrics *m, enum kind kd, double now)
{
    const kind_info *k = &kinds[kd];
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", k->name, k->help, k->name, k->type);
    for (size_t i = 0; i < m->n; i++) {
        const series *s = &m->v[i];
        if (s->kind != kd)
            continue;
        if (kd == M_SYNC_LAST) {
            fputs(k->name, f);
            put_labels(f, k, s, NULL);
            fprintf(f, " %.3f\n", now - s->value);
        } else if (strcmp(k->type, "histogram") == 0) {
            for (size_t b = 0; b < NBUCKETS; b++) {
                char le[32];
                snprintf(le, sizeof le, "%g", bucket_le[b]);
                fprintf(f, "%s_bucket", k->name);
                put_labels(f, k, s, le);
                fprintf(f, " %llu\n", s->bucket[b]);
            }
            fprintf(f, "%s_bucket", k->name);
            put_labels(f, k, s, "+Inf");
            fprintf(f, " %llu\n%s_sum", s->count, k->name);
            put_labels(f, k, s, NULL);
            fprintf(f, " %.6f\n%s_count", s->sum, k->name);
            put_labels(f, k, s, NULL);
            fprintf(f, " %llu\n", s->count);
        } else {
            fputs(k->name, f);
            put_labels(f, k, s, NULL);
            fprintf(f, " %llu\n", s->count);
        }
    }
}

static void render_generation(void *arg, const ah_generation *gen)
{
    FILE *f = arg;
    fputs("atshub_plugin_generation{plugin=\"", f);
    put_value(f, gen->name);
    fputs("\",version=\"", f);
    put_value(f, gen->desc->version != NULL ? gen->desc->version : "");
    fprintf(f, "\"} %u\n", gen->number);
}

static void render_inflight(void *arg, const ah_generation *gen)
{
    FILE *f = arg;
    fputs("atshub_plugin_inflight{plugin=\"", f);
    put_value(f, gen->name);
    fprintf(f, "\"} %ld\n", atomic_load(&gen->inflight));
}

/* Crashes and restarts of isolated plugins (issue 15): counters that live
 * with the plugin's process supervisor and restart from 0 with a new
 * generation. */
static void render_crashes(void *arg, const ah_generation *gen)
{
    if (gen->iso == NULL)
        return;
    FILE *f = arg;
    unsigned long crashes, restarts;
    ah_isolate_counts(gen->iso, &crashes, &restarts);
    fputs("atshub_plugin_crashes_total{plugin=\"", f);
    put_value(f, gen->name);
    fprintf(f, "\"} %lu\n", crashes);
    fputs("atshub_plugin_restarts_total{plugin=\"", f);
    put_value(f, gen->name);
    fprintf(f, "\"} %lu\n", restarts);
}

char *ah_metrics_render(ah_core *core)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return NULL;
    ah_metrics *m = core->metrics;
    if (m != NULL) {
        double now = now_s();
        pthread_mutex_lock(&m->mu);
        for (enum kind k = 0; k < M_KINDS; k++)
            render_kind(f, m, k, now);
        pthread_mutex_unlock(&m->mu);
    }
    fputs("# HELP atshub_plugin_generation Current generation of each loaded plugin\n"
          "# TYPE atshub_plugin_generation gauge\n", f);
    ah_registry_each(core->registry, render_generation, f);
    fputs("# HELP atshub_plugin_inflight Calls running on the current generation\n"
          "# TYPE atshub_plugin_inflight gauge\n", f);
    ah_registry_each(core->registry, render_inflight, f);
    fputs("# HELP atshub_plugin_crashes_total Crashes of an isolated plugin's process "
          "(signal, exit, timeout, memory)\n"
          "# TYPE atshub_plugin_crashes_total counter\n"
          "# HELP atshub_plugin_restarts_total Restarts of an isolated plugin's process after "
          "a crash\n"
          "# TYPE atshub_plugin_restarts_total counter\n", f);
    ah_registry_each(core->registry, render_crashes, f);
    fprintf(f, "# HELP atshub_plugins_loaded Plugins with a current generation\n"
               "# TYPE atshub_plugins_loaded gauge\natshub_plugins_loaded %zu\n",
            ah_registry_count(core->registry));
    fprintf(f, "# HELP atshub_bus_queue_depth Bus messages queued or running\n"
               "# TYPE atshub_bus_queue_depth gauge\natshub_bus_queue_depth %zu\n",
            core->bus != NULL ? (size_t)ah_bus_depth(core->bus) : (size_t)0);
    int blocked = 0, threads = 0;
    ah_bus_stats(core->bus, &blocked, &threads);
    fprintf(f, "# HELP atshub_bus_calls_waiting Bus calls waiting for a provider's answer or "
               "before a retry (they hold no share of their tenant's workers)\n"
               "# TYPE atshub_bus_calls_waiting gauge\natshub_bus_calls_waiting %d\n"
               "# HELP atshub_bus_threads Bus threads started: the workers, and the spares "
               "started while calls wait\n"
               "# TYPE atshub_bus_threads gauge\natshub_bus_threads %d\n"
               "# HELP atshub_bus_waits_refused_total Calls answered at once rather than "
               "wait on a provider [core] provider_threads others already waited on\n"
               "# TYPE atshub_bus_waits_refused_total counter\natshub_bus_waits_refused_total %lu\n",
            blocked, threads, ah_bus_waits_refused(core->bus));
    fprintf(f, "# HELP atshub_http_inflight Requests being handled on the API listener\n"
               "# TYPE atshub_http_inflight gauge\natshub_http_inflight %ld\n",
            ah_httpd_inflight(core->httpd));
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
