/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Operator-started syncs and what they did (syncs.h). One entry per
 * connection synced from here or seen synced by the scheduler; the run's
 * thread writes its progress into the entry under the mutex after each
 * committed page. The table holds at most `max` entries: when it is full,
 * the least recently used entry without a run under way makes room (its
 * connection's last run is then shown as none). Runs' threads are
 * detached (each frees its stack when it ends) and counted, so that
 * ah_syncs_free waits for them.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "core.h"
#include "sync.h"
#include "syncs.h"

#define MAX_TYPES 3
#define MAX_ENTRIES 4096

typedef struct type_stat {
    char type[16];
    ah_sync_stats st;
} type_stat;

typedef struct entry {
    char tenant[72], name[72];
    bool running;  /* a run started here is under way (its thread uses the entry) */
    uint64_t used; /* when last started or observed (ah_syncs.tick): the oldest goes first */
    char started_at[32], finished_at[32];
    bool ok;
    char error[512];
    char code[48];
    type_stat types[MAX_TYPES];
    int ntypes;
    /* the scheduler's runs of this connection (ah_syncs_observe) */
    type_stat sched[MAX_TYPES];
    int nsched;
    bool sched_running;
    char sched_at[32];
    /* the run's arguments, owned while it runs */
    ah_core *core;
    char type_arg[16];
    struct ah_syncs *owner;
} entry;

struct ah_syncs {
    pthread_mutex_t mu;
    pthread_cond_t idle; /* signalled when nrunning drops to 0 */
    entry **v;
    size_t n, cap;
    size_t max;      /* entries at most (MAX_ENTRIES; ah_syncs_set_max) */
    size_t nrunning; /* runs' threads not yet done with the table */
    uint64_t tick;
};

ah_syncs *ah_syncs_new(void)
{
    ah_syncs *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return NULL;
    }
    if (pthread_cond_init(&s->idle, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    s->max = MAX_ENTRIES;
    return s;
}

void ah_syncs_set_max(ah_syncs *s, size_t max)
{
    pthread_mutex_lock(&s->mu);
    s->max = max > 0 ? max : 1;
    pthread_mutex_unlock(&s->mu);
}

void ah_syncs_free(ah_syncs *s, ah_core *core)
{
    if (s == NULL)
        return;
    /* The engine's stop joins the scheduler (no observer call is under way
     * after it) and ends runs on other threads (sync.h): ours. */
    if (core->sync != NULL) {
        ah_sync_scheduler_stop(core);
        ah_sync_set_observer(core->sync, NULL, NULL);
    }
    /* Wait for the runs' (detached) threads: each is done with the table
     * once it has counted itself out, under mu. */
    pthread_mutex_lock(&s->mu);
    while (s->nrunning > 0)
        pthread_cond_wait(&s->idle, &s->mu);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Under s->mu. */
static entry *find(ah_syncs *s, const char *tenant, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i]->tenant, tenant) == 0 && strcmp(s->v[i]->name, name) == 0)
            return s->v[i];
    return NULL;
}

/* Under s->mu: drops the entries of connections that are gone (not
 * running: a run ends by itself and keeps its entry until then), so that
 * the table does not fill up with removed connections and a connection
 * added again under an old name does not show the old one's runs. keep:
 * whether the entry's connection still exists. */
static void prune(ah_syncs *s, bool (*keep)(const entry *en, const void *arg), const void *arg)
{
    size_t w = 0;
    for (size_t i = 0; i < s->n; i++) {
        entry *en = s->v[i];
        if (en->running || keep(en, arg)) {
            s->v[w++] = en;
            continue;
        }
        free(en);
    }
    s->n = w;
}

/* What a page of the connection list spans: the connections after `after`
 * (NULL: from the first) up to `last` (NULL: to the end), of `tenant` only
 * when it is not NULL, and the page's rows. */
typedef struct span {
    const char *tenant;
    const char *after_t, *after_n; /* after_t NULL: from the first */
    const char *last_t, *last_n;   /* last_t NULL: to the end */
    const cJSON *rows;
} span;

/* tenant/name against t/n in the lists' order (names' bytes, tenant first). */
static int key_cmp(const char *tenant, const char *name, const char *t, const char *n)
{
    int c = strcmp(tenant, t);
    return c != 0 ? c : strcmp(name, n);
}

/* keep for prune: the entry's connection is in the page's rows, or outside
 * what the page spans (a connection the page cannot say is gone). */
static bool in_span(const entry *en, const void *arg)
{
    const span *sp = arg;
    if ((sp->tenant != NULL && strcmp(en->tenant, sp->tenant) != 0) ||
        (sp->after_t != NULL && key_cmp(en->tenant, en->name, sp->after_t, sp->after_n) <= 0) ||
        (sp->last_t != NULL && key_cmp(en->tenant, en->name, sp->last_t, sp->last_n) > 0))
        return true;
    const cJSON *c;
    cJSON_ArrayForEach(c, sp->rows) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "tenant"),
                    *n = cJSON_GetObjectItemCaseSensitive(c, "name");
        if (cJSON_IsString(t) && cJSON_IsString(n) && strcmp(t->valuestring, en->tenant) == 0 &&
            strcmp(n->valuestring, en->name) == 0)
            return true;
    }
    return false;
}

typedef struct forget_arg {
    const char *tenant, *name;
} forget_arg;

/* keep for prune: not the forgotten connection (or tenant). */
static bool not_forgotten(const entry *en, const void *arg)
{
    const forget_arg *f = arg;
    return strcmp(en->tenant, f->tenant) != 0 || (f->name != NULL && strcmp(en->name, f->name) != 0);
}

void ah_syncs_forget(ah_syncs *s, const char *tenant, const char *name)
{
    if (s == NULL || tenant == NULL)
        return;
    forget_arg f = {tenant, name};
    pthread_mutex_lock(&s->mu);
    prune(s, not_forgotten, &f);
    pthread_mutex_unlock(&s->mu);
}

/* Under s->mu: the least recently used entry with no run under way, one
 * the scheduler is not running preferred; NULL when every entry has a run
 * of its own under way. */
static size_t oldest_idle(ah_syncs *s)
{
    size_t best = s->n;
    bool best_sched = true;
    for (size_t i = 0; i < s->n; i++) {
        const entry *en = s->v[i];
        if (en->running)
            continue;
        if (best == s->n || (best_sched && !en->sched_running) ||
            (best_sched == en->sched_running && en->used < s->v[best]->used)) {
            best = i;
            best_sched = en->sched_running;
        }
    }
    return best;
}

/* Under s->mu: the entry of tenant/name, made when missing (when the table
 * is full, in place of the oldest one without a run under way), marked as
 * just used; NULL when out of memory, or full of runs under way. */
static entry *get(ah_syncs *s, const char *tenant, const char *name)
{
    entry *en = find(s, tenant, name);
    if (en != NULL) {
        en->used = ++s->tick;
        return en;
    }
    if (s->n >= s->max) {
        size_t i = oldest_idle(s);
        if (i == s->n)
            return NULL;
        memset(s->v[i], 0, sizeof *s->v[i]);
        en = s->v[i];
        snprintf(en->tenant, sizeof en->tenant, "%s", tenant);
        snprintf(en->name, sizeof en->name, "%s", name);
        en->owner = s;
        en->used = ++s->tick;
        return en;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        entry **nv = realloc(s->v, cap * sizeof *nv);
        if (nv == NULL)
            return NULL;
        s->v = nv;
        s->cap = cap;
    }
    en = calloc(1, sizeof *en);
    if (en == NULL)
        return NULL;
    snprintf(en->tenant, sizeof en->tenant, "%s", tenant);
    snprintf(en->name, sizeof en->name, "%s", name);
    en->owner = s;
    en->used = ++s->tick;
    s->v[s->n++] = en;
    return en;
}

/* Under s->mu: the stats slot of `type` in v (n of them), added when missing. */
static type_stat *slot(type_stat *v, int *n, const char *type)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(v[i].type, type) == 0)
            return &v[i];
    if (*n == MAX_TYPES)
        return NULL;
    type_stat *t = &v[(*n)++];
    snprintf(t->type, sizeof t->type, "%s", type);
    return t;
}

void ah_syncs_observe(void *arg, const char *tenant, const char *connection, const char *type,
                      const ah_sync_stats *st)
{
    ah_syncs *s = arg;
    pthread_mutex_lock(&s->mu);
    entry *en = get(s, tenant, connection);
    type_stat *t = en != NULL ? slot(en->sched, &en->nsched, type) : NULL;
    if (t != NULL) {
        t->st = *st;
        en->sched_running = !st->done;
        ah_now_iso(en->sched_at);
    }
    pthread_mutex_unlock(&s->mu);
}

static void on_progress(void *arg, const char *type, const ah_sync_stats *st)
{
    entry *en = arg;
    pthread_mutex_lock(&en->owner->mu);
    type_stat *t = slot(en->types, &en->ntypes, type);
    if (t != NULL)
        t->st = *st;
    pthread_mutex_unlock(&en->owner->mu);
}

static void *run_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-sync-run"); /* top -H, perf */
    entry *en = arg;
    char err[512] = "";
    int rc = ah_sync_run(en->core, en->tenant, en->name,
                         en->type_arg[0] != '\0' ? en->type_arg : NULL, on_progress, en, NULL,
                         err, sizeof err);
    pthread_mutex_lock(&en->owner->mu);
    en->running = false;
    en->ok = rc == AH_SYNC_OK;
    snprintf(en->code, sizeof en->code, "%s", ah_sync_code(rc));
    snprintf(en->error, sizeof en->error, "%s", rc == AH_SYNC_OK ? "" : err);
    ah_now_iso(en->finished_at);
    /* The last use of the table (en may be reused once running is false
     * and mu let go): ah_syncs_free waits for this. */
    ah_syncs *s = en->owner;
    if (--s->nrunning == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int fail(ah_ops_err *e, const char *code, const char *msg)
{
    snprintf(e->code, sizeof e->code, "%s", code);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    return -1;
}

/* Whether tenant/name is a connection in the store, and enabled: a run of
 * a disabled one would only end in connection_disabled, after a 202. */
static int exists(ah_core *core, const char *tenant, const char *name, ah_ops_err *e)
{
    ah_connection_row r = {0};
    int rc = core->store->ops->connection_get(core->store, tenant, name, &r);
    bool enabled = r.enabled;
    ah_connection_row_free(&r);
    if (rc != AH_STORE_OK && rc != AH_STORE_NOT_FOUND)
        return fail(e, "store_error", "cannot read the connection");
    if (rc == AH_STORE_NOT_FOUND) {
        snprintf(e->code, sizeof e->code, "not_found");
        snprintf(e->msg, sizeof e->msg, "no connection '%s' of tenant '%s'", name, tenant);
        return -1;
    }
    if (!enabled) {
        snprintf(e->code, sizeof e->code, "connection_disabled");
        snprintf(e->msg, sizeof e->msg, "connection %s/%s is disabled", tenant, name);
        return -1;
    }
    return 0;
}

int ah_syncs_start(ah_syncs *s, ah_core *core, const char *tenant, const char *name,
                   const char *type, ah_ops_err *e)
{
    if (!ah_ops_valid_name(tenant) || !ah_ops_valid_name(name))
        return fail(e, "invalid_request", "tenant and connection names are 1-64 characters "
                    "of letters, digits, '_', '-', '.'");
    if (type != NULL && !ah_sync_type_valid(type))
        return fail(e, "invalid_request", "type is jobs, applications or candidates");
    if (exists(core, tenant, name, e) != 0)
        return -1;
    pthread_mutex_lock(&s->mu);
    entry *en = find(s, tenant, name);
    if (en != NULL && en->running) {
        pthread_mutex_unlock(&s->mu);
        return fail(e, "sync_running", "a sync of this connection started here is under way");
    }
    /* When the table is full, the oldest entry without a run under way
     * makes room. */
    if ((en = get(s, tenant, name)) == NULL) {
        pthread_mutex_unlock(&s->mu);
        return fail(e, "overloaded", "out of memory, or as many syncs under way as can be tracked");
    }
    en->core = core;
    snprintf(en->type_arg, sizeof en->type_arg, "%s", type != NULL ? type : "");
    en->running = true;
    en->ok = false;
    en->error[0] = en->code[0] = en->finished_at[0] = '\0';
    en->ntypes = 0;
    memset(en->types, 0, sizeof en->types);
    ah_now_iso(en->started_at);
    /* Detached: the thread's stack goes when the run ends, not when the
     * connection is synced again (an ended, unjoined thread keeps it). */
    pthread_attr_t attr;
    pthread_t th;
    bool ok = pthread_attr_init(&attr) == 0;
    if (ok) {
        ok = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
             pthread_create(&th, &attr, run_main, en) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!ok) {
        en->running = false;
        pthread_mutex_unlock(&s->mu);
        return fail(e, "internal_error", "cannot start a thread for the sync");
    }
    s->nrunning++;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void add_stats(cJSON *o, const ah_sync_stats *st)
{
    cJSON_AddNumberToObject(o, "pages", (double)st->pages);
    cJSON_AddNumberToObject(o, "records", (double)st->records);
    cJSON_AddNumberToObject(o, "created", (double)st->created);
    cJSON_AddNumberToObject(o, "updated", (double)st->updated);
    cJSON_AddNumberToObject(o, "unchanged", (double)st->unchanged);
    cJSON_AddNumberToObject(o, "retries", (double)st->retries);
    cJSON_AddNumberToObject(o, "seconds", st->seconds);
}

/* Totals and "types" of n type stats into o; whether any failed. */
static bool add_types(cJSON *o, const type_stat *v, int n)
{
    ah_sync_stats total = {0};
    bool failed = false;
    cJSON *types = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const ah_sync_stats *st = &v[i].st;
        failed = failed || st->failed;
        total.pages += st->pages;
        total.records += st->records;
        total.created += st->created;
        total.updated += st->updated;
        total.unchanged += st->unchanged;
        total.retries += st->retries;
        total.seconds += st->seconds;
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "type", v[i].type);
        add_stats(t, st);
        cJSON_AddBoolToObject(t, "done", st->done);
        cJSON_AddBoolToObject(t, "failed", st->failed);
        cJSON_AddItemToArray(types, t);
    }
    add_stats(o, &total);
    cJSON_AddItemToObject(o, "types", types);
    return failed;
}

/* Under s->mu: the run started here, or null. */
static cJSON *entry_json(const entry *en)
{
    if (en == NULL || en->started_at[0] == '\0')
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "started_at", en->started_at);
    if (!en->running) {
        cJSON_AddStringToObject(o, "finished_at", en->finished_at);
        cJSON_AddBoolToObject(o, "ok", en->ok);
        if (!en->ok) {
            cJSON_AddStringToObject(o, "code", en->code);
            cJSON_AddStringToObject(o, "error", en->error);
        }
    }
    add_types(o, en->types, en->ntypes);
    return o;
}

/* Under s->mu: the scheduler's latest run of each type, or null. */
static cJSON *sched_json(const entry *en)
{
    if (en == NULL || en->nsched == 0)
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "updated_at", en->sched_at);
    cJSON_AddBoolToObject(o, "running", en->sched_running);
    bool failed = add_types(o, en->sched, en->nsched);
    cJSON_AddBoolToObject(o, "ok", !failed);
    return o;
}

int ah_syncs_list(ah_syncs *s, ah_core *core, const char *tenant, ah_ops_page *page,
                  cJSON **out, ah_ops_err *e)
{
    cJSON *list = NULL;
    if (ah_ops_connection_list(core, tenant, page, &list, e) != 0)
        return -1;
    /* What the page spans, for dropping the entries of connections gone. */
    char after[160], last[160];
    span sp = {.tenant = tenant, .rows = list};
    if (page != NULL && page->after != NULL && page->after[0] != '\0') {
        snprintf(after, sizeof after, "%s", page->after); /* checked by the list */
        char *slash = strchr(after, '/');
        sp.after_t = tenant != NULL ? tenant : after;
        sp.after_n = tenant != NULL ? after : slash + 1;
        if (slash != NULL)
            *slash = '\0';
    }
    if (page != NULL && page->next[0] != '\0') {
        snprintf(last, sizeof last, "%s", page->next);
        char *slash = strchr(last, '/');
        sp.last_t = tenant != NULL ? tenant : last;
        sp.last_n = tenant != NULL ? last : slash + 1;
        if (slash != NULL)
            *slash = '\0';
    }
    cJSON *res = cJSON_CreateArray();
    char next[32];
    bool has_next = ah_sync_next_pass(core->sync, next) == 0;
    const cJSON *c;
    pthread_mutex_lock(&s->mu);
    /* The entries of connections the page spans but does not list are of
     * connections removed (by another process too: `atshub connection
     * remove`). */
    prune(s, in_span, &sp);
    cJSON_ArrayForEach(c, list) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "tenant"),
                    *n = cJSON_GetObjectItemCaseSensitive(c, "name");
        if (!cJSON_IsString(t) || !cJSON_IsString(n))
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tenant", t->valuestring);
        cJSON_AddStringToObject(o, "connection", n->valuestring);
        cJSON_AddItemToObject(o, "plugin",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "plugin"), 1));
        cJSON_AddItemToObject(o, "enabled",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "enabled"), 1));
        cJSON_AddNumberToObject(o, "schedule_interval_s", core->cfg.sync_interval_s);
        /* The scheduler's next pass syncs every enabled connection in turn. */
        if (has_next && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "enabled")))
            cJSON_AddStringToObject(o, "next_pass", next);
        else
            cJSON_AddNullToObject(o, "next_pass");
        const entry *en = find(s, t->valuestring, n->valuestring);
        cJSON_AddBoolToObject(o, "running", en != NULL && en->running);
        cJSON_AddItemToObject(o, "last", entry_json(en));
        cJSON_AddItemToObject(o, "scheduled", sched_json(en));
        cJSON_AddItemToArray(res, o);
    }
    pthread_mutex_unlock(&s->mu);
    cJSON_Delete(list);
    *out = res;
    return 0;
}
