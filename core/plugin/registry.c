/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plugin registry: plugin name -> current generation.
 *
 * acquire runs once per request, so it holds the lock only for a binary
 * search and an atomic increment. Loading (dlopen, checks, init) happens
 * outside that lock, serialised by a second one, and the new generation is
 * published with one pointer swap: a request sees either the old generation
 * or the new one, never neither. A replaced generation lives on until its
 * last reference is dropped; then its fini runs and it is dlclose()d.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "isolate.h"
#include "mirror.h"
#include "registry.h"

typedef struct reg_entry {
    char *name;
    ah_generation *gen;   /* NULL after unload: the entry keeps the counter */
    unsigned last_number; /* so numbers keep growing across unload/load */
    ah_isolate_opts *iso; /* run isolated from the next load on; NULL: in process */
} reg_entry;

struct ah_registry {
    const ah_host_api *host;
    void *host_ctx;
    pthread_rwlock_t mu;     /* guards entries: read for lookups, write for swaps */
    pthread_mutex_t load_mu; /* one load at a time: numbers, private copies */
    reg_entry *entries;      /* sorted by name */
    size_t n, cap;
};

ah_registry *ah_registry_new_ctx(const ah_host_api *host, void *host_ctx)
{
    if (host == NULL)
        return NULL;
    ah_registry *reg = calloc(1, sizeof(*reg));
    if (reg == NULL)
        return NULL;
    reg->host = host;
    reg->host_ctx = host_ctx;
    if (pthread_rwlock_init(&reg->mu, NULL) != 0) {
        free(reg);
        return NULL;
    }
    if (pthread_mutex_init(&reg->load_mu, NULL) != 0) {
        pthread_rwlock_destroy(&reg->mu);
        free(reg);
        return NULL;
    }
    return reg;
}

ah_registry *ah_registry_new(const ah_host_api *host)
{
    return ah_registry_new_ctx(host, NULL);
}

void ah_registry_free(ah_registry *reg)
{
    if (reg == NULL)
        return;
    for (size_t i = 0; i < reg->n; i++) {
        ah_generation_release(reg->entries[i].gen);
        free(reg->entries[i].name);
        free(reg->entries[i].iso);
    }
    free(reg->entries);
    pthread_mutex_destroy(&reg->load_mu);
    pthread_rwlock_destroy(&reg->mu);
    free(reg);
}

/* Index of `name`, or of where it would go; *found tells which. Caller
 * holds reg->mu. */
static size_t find(const ah_registry *reg, const char *name, bool *found)
{
    size_t lo = 0, hi = reg->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(reg->entries[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* The entry for `name`, inserted when missing; NULL on allocation failure.
 * Caller holds reg->mu. */
static reg_entry *entry_for(ah_registry *reg, const char *name)
{
    bool found;
    size_t i = find(reg, name, &found);
    if (found)
        return &reg->entries[i];
    if (reg->n == reg->cap) {
        size_t cap = reg->cap != 0 ? reg->cap * 2 : 8;
        reg_entry *e = realloc(reg->entries, cap * sizeof(*e));
        if (e == NULL)
            return NULL;
        reg->entries = e;
        reg->cap = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL)
        return NULL;
    memmove(&reg->entries[i + 1], &reg->entries[i], (reg->n - i) * sizeof(reg->entries[0]));
    reg->entries[i] = (reg_entry){.name = copy};
    reg->n++;
    return &reg->entries[i];
}

/* A route of `gen` that another plugin's current generation serves: its
 * message in err, -1. Caller holds reg->mu. The server keeps one handler
 * per method and path, so the second would silently replace the first
 * (and unloading it would take the first's away). */
static int route_clash(const ah_registry *reg, const ah_generation *gen, const char *path,
                       char *err, size_t errlen)
{
    for (const ah_route *r = gen->desc->routes; r != NULL && r->method != NULL; r++) {
        char mine[1024];
        bool mprefix;
        if (ah_route_served(r, mine, sizeof mine, &mprefix) != 0)
            continue;
        for (size_t i = 0; i < reg->n; i++) {
            const ah_generation *o = reg->entries[i].gen;
            if (o == NULL || strcmp(reg->entries[i].name, gen->name) == 0)
                continue;
            for (const ah_route *q = o->desc->routes; q != NULL && q->method != NULL; q++) {
                char theirs[1024];
                bool tprefix;
                if (ah_route_served(q, theirs, sizeof theirs, &tprefix) == 0 &&
                    ah_route_same(r->method, mine, mprefix, q->method, theirs, tprefix)) {
                    if (err != NULL && errlen > 0)
                        snprintf(err, errlen,
                                 "%s: route %s %s is already served by plugin '%s' (%s %s); "
                                 "two plugins cannot share a route",
                                 path, r->method, r->path, o->name, q->method, q->path);
                    return -1;
                }
            }
        }
    }
    return 0;
}

int ah_registry_load(ah_registry *reg, const char *expect_name, const char *path,
                     char *err, size_t errlen)
{
    if (reg == NULL || path == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: no registry or no path", path != NULL ? path : "(null)");
        return -1;
    }
    pthread_mutex_lock(&reg->load_mu);
    ah_isolate_opts iso, *isop = NULL;
    if (expect_name != NULL) {
        pthread_rwlock_rdlock(&reg->mu);
        bool found;
        size_t i = find(reg, expect_name, &found);
        if (found && reg->entries[i].iso != NULL) {
            iso = *reg->entries[i].iso;
            isop = &iso;
        }
        pthread_rwlock_unlock(&reg->mu);
    }
    ah_generation *gen = isop != NULL
                             ? ah_plugin_load_isolated(path, reg->host, isop, err, errlen)
                             : ah_plugin_load_ctx(path, reg->host, reg->host_ctx, err, errlen);
    if (gen == NULL) {
        pthread_mutex_unlock(&reg->load_mu);
        return -1;
    }
    if (expect_name != NULL && strcmp(gen->name, expect_name) != 0) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: plugin is named '%s', expected '%s'", path,
                     gen->name, expect_name);
        pthread_mutex_unlock(&reg->load_mu);
        ah_generation_release(gen);
        return -1;
    }
    pthread_rwlock_wrlock(&reg->mu);
    if (route_clash(reg, gen, path, err, errlen) != 0) {
        pthread_rwlock_unlock(&reg->mu);
        pthread_mutex_unlock(&reg->load_mu);
        ah_generation_release(gen);
        return -1;
    }
    reg_entry *e = entry_for(reg, gen->name);
    if (e == NULL) {
        pthread_rwlock_unlock(&reg->mu);
        pthread_mutex_unlock(&reg->load_mu);
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: out of memory", path);
        ah_generation_release(gen);
        return -1;
    }
    gen->number = ++e->last_number;
    gen->reg = reg;
    ah_generation *old = e->gen;
    e->gen = gen; /* the registry's reference is the one the loader gave us */
    int number = (int)gen->number;
    pthread_rwlock_unlock(&reg->mu);
    pthread_mutex_unlock(&reg->load_mu);
    /* Outside the locks: this may run the old generation's fini. */
    ah_generation_release(old);
    return number;
}

int ah_registry_unload(ah_registry *reg, const char *name)
{
    if (reg == NULL || name == NULL)
        return -1;
    pthread_rwlock_wrlock(&reg->mu);
    bool found;
    size_t i = find(reg, name, &found);
    ah_generation *old = found ? reg->entries[i].gen : NULL;
    if (old != NULL)
        reg->entries[i].gen = NULL;
    pthread_rwlock_unlock(&reg->mu);
    if (old == NULL)
        return -1;
    ah_generation_release(old);
    return 0;
}

ah_generation *ah_registry_acquire(ah_registry *reg, const char *name)
{
    if (reg == NULL || name == NULL)
        return NULL;
    pthread_rwlock_rdlock(&reg->mu);
    bool found;
    size_t i = find(reg, name, &found);
    ah_generation *gen = found ? reg->entries[i].gen : NULL;
    if (gen != NULL)
        atomic_fetch_add(&gen->refs, 1);
    pthread_rwlock_unlock(&reg->mu);
    return gen;
}

void ah_generation_release(ah_generation *gen)
{
    if (gen == NULL || atomic_fetch_sub(&gen->refs, 1) != 1)
        return;
    /* Last reference: nothing can call into the .so any more. An isolated
     * plugin's fini runs in its process, which ends here. */
    if (gen->iso != NULL) {
        ah_isolate_free(gen->iso);
        ah_mirror_free(gen->desc); /* described by its process, never dlopen()ed here */
    } else if (gen->desc != NULL && gen->desc->fini != NULL) {
        gen->desc->fini(gen->plugin_state);
    }
    if (gen->dl != NULL)
        dlclose(gen->dl);
    free(gen->name);
    free(gen->path);
    free(gen->loaded_path);
    free(gen);
}

/* The first current generation named after `after` (or the first of all),
 * with a reference taken. */
static ah_generation *acquire_next(ah_registry *reg, const char *after)
{
    ah_generation *gen = NULL;
    pthread_rwlock_rdlock(&reg->mu);
    size_t i = 0;
    if (after != NULL) {
        bool found;
        i = find(reg, after, &found);
        if (found)
            i++;
    }
    for (; i < reg->n && gen == NULL; i++)
        gen = reg->entries[i].gen;
    if (gen != NULL)
        atomic_fetch_add(&gen->refs, 1);
    pthread_rwlock_unlock(&reg->mu);
    return gen;
}

/* Walks by name rather than by index and calls cb without the lock, so
 * that cb may itself acquire, load or unload. */
void ah_registry_each(ah_registry *reg, ah_generation_cb cb, void *arg)
{
    if (reg == NULL || cb == NULL)
        return;
    ah_generation *prev = NULL;
    for (;;) {
        ah_generation *gen = acquire_next(reg, prev != NULL ? prev->name : NULL);
        ah_generation_release(prev);
        if (gen == NULL)
            return;
        cb(arg, gen);
        prev = gen;
    }
}

static void watch_one(void *arg, const ah_generation *gen)
{
    (void)arg;
    if (gen->iso != NULL)
        ah_isolate_watch(gen->iso);
}

void ah_registry_watch(ah_registry *reg)
{
    ah_registry_each(reg, watch_one, NULL);
}

size_t ah_registry_count(ah_registry *reg)
{
    if (reg == NULL)
        return 0;
    size_t n = 0;
    pthread_rwlock_rdlock(&reg->mu);
    for (size_t i = 0; i < reg->n; i++)
        n += reg->entries[i].gen != NULL;
    pthread_rwlock_unlock(&reg->mu);
    return n;
}

int ah_registry_set_isolation(ah_registry *reg, const char *name, const ah_isolate_opts *opts)
{
    if (reg == NULL || name == NULL)
        return -1;
    ah_isolate_opts *copy = NULL;
    if (opts != NULL) {
        copy = malloc(sizeof *copy);
        if (copy == NULL)
            return -1;
        *copy = *opts;
    }
    pthread_rwlock_wrlock(&reg->mu);
    reg_entry *e = entry_for(reg, name);
    if (e == NULL) {
        pthread_rwlock_unlock(&reg->mu);
        free(copy);
        return -1;
    }
    free(e->iso);
    e->iso = copy;
    pthread_rwlock_unlock(&reg->mu);
    return 0;
}

bool ah_registry_isolation(ah_registry *reg, const char *name, ah_isolate_opts *out)
{
    bool isolated = false;
    if (reg == NULL || name == NULL)
        return false;
    pthread_rwlock_rdlock(&reg->mu);
    bool found;
    size_t i = find(reg, name, &found);
    if (found && reg->entries[i].iso != NULL) {
        isolated = true;
        if (out != NULL)
            *out = *reg->entries[i].iso;
    }
    pthread_rwlock_unlock(&reg->mu);
    return isolated;
}

ah_result ah_generation_open(ah_generation *gen, ah_call *call, void **ctx)
{
    if (gen->iso != NULL)
        return ah_isolate_open(gen->iso, call, ctx);
    return gen->desc->open(call, ctx);
}

void ah_generation_close(ah_generation *gen, void *ctx)
{
    if (gen->iso != NULL)
        ah_isolate_close(gen->iso, ctx);
    else if (gen->desc->close != NULL)
        gen->desc->close(gen->plugin_state, ctx);
}

ah_result ah_generation_event(ah_generation *gen, const ah_subscription *s, ah_call *call,
                              const char *topic, const cJSON *body)
{
    if (gen->iso != NULL)
        return ah_isolate_event(gen->iso, call, (int)(s - gen->desc->subscriptions), topic,
                                body);
    return s->handler(call, topic, body);
}

ah_result ah_generation_settle(ah_generation *gen, const ah_op_write *w, ah_call *call,
                               const cJSON *body, cJSON **reply)
{
    if (gen->iso != NULL)
        return ah_isolate_settle(gen->iso, call, (int)(w - gen->desc->op_writes), body, reply);
    return w->settle(call, body, reply);
}

ah_result ah_generation_route(ah_generation *gen, const ah_route *r, ah_call *call,
                              ah_http_exchange *ex)
{
    if (gen->iso != NULL)
        return ah_isolate_route(gen->iso, call, (int)(r - gen->desc->routes), ex);
    return r->handler(call, ex);
}

ah_result ah_generation_call(ah_generation *gen, ah_op_fn fn, ah_call *call,
                             const cJSON *body, cJSON **reply)
{
    if (gen->iso != NULL)
        return ah_isolate_op(gen->iso, call, body, reply);
    return fn(call, body, reply);
}
