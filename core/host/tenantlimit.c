/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-tenant request budgets for the /v1 API: a token bucket per tenant
 * (rate and burst from [http] tenant_rate and tenant_burst), taken once per
 * authenticated request by ah_rest_tenant.
 *
 * Every /v1 request passes here, on the HTTP server threads, so the table
 * is sharded: a tenant's bucket lives in one of AH_TL_SHARDS shards chosen
 * by a hash of its id, each with its own mutex held only for a lookup and a
 * few arithmetic operations. Two tenants contend only when they share a
 * shard, and then for nanoseconds; nothing here ever sleeps (a refused
 * request is answered 429 with Retry-After, never delayed).
 *
 * Buckets are never removed: there is one per tenant that ever made a
 * request (a few dozen bytes each), and a removed tenant's key no longer
 * authenticates, so its bucket is merely idle.
 */
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tenantlimit.h"

#define AH_TL_SHARDS 64

typedef struct tl_bucket {
    int64_t tenant_id;
    double tokens; /* 0..burst */
    double last;   /* monotonic seconds of the last refill */
} tl_bucket;

/* Aligned to a cache line each, so that two server threads working on
 * different shards do not share one. */
typedef struct tl_shard {
    alignas(64) pthread_mutex_t mu; /* guards the buckets */
    tl_bucket *buckets;
    size_t n, cap;
} tl_shard;

struct ah_tenantlimit {
    double rate, burst;
    tl_shard shards[AH_TL_SHARDS];
};

ah_tenantlimit *ah_tenantlimit_new(unsigned rate, unsigned burst)
{
    ah_tenantlimit *t = aligned_alloc(64, (sizeof *t + 63) / 64 * 64);
    if (t == NULL)
        return NULL;
    memset(t, 0, sizeof *t);
    t->rate = rate;
    t->burst = burst > 0 ? burst : 1;
    for (size_t i = 0; i < AH_TL_SHARDS; i++) {
        if (pthread_mutex_init(&t->shards[i].mu, NULL) != 0) {
            while (i-- > 0)
                pthread_mutex_destroy(&t->shards[i].mu);
            free(t);
            return NULL;
        }
    }
    return t;
}

void ah_tenantlimit_free(ah_tenantlimit *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < AH_TL_SHARDS; i++) {
        pthread_mutex_destroy(&t->shards[i].mu);
        free(t->shards[i].buckets);
    }
    free(t);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Tenant ids are small consecutive integers: mix them so that they spread
 * over the shards whatever their pattern. */
static size_t shard_of(int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 58) % AH_TL_SHARDS;
}

/* The bucket of tenant_id in s (created full on demand); s->mu held. NULL
 * when out of memory. A shard holds 1/64 of the tenants, so a linear
 * scan stays short for thousands of tenants. */
static tl_bucket *bucket_for(const ah_tenantlimit *t, tl_shard *s, int64_t tenant_id, double now)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->buckets[i].tenant_id == tenant_id)
            return &s->buckets[i];
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 8;
        tl_bucket *nb = realloc(s->buckets, nc * sizeof *nb);
        if (nb == NULL)
            return NULL;
        s->buckets = nb;
        s->cap = nc;
    }
    tl_bucket *b = &s->buckets[s->n++];
    b->tenant_id = tenant_id;
    b->tokens = t->burst;
    b->last = now;
    return b;
}

/* Takes (take) or looks for one token of tenant_id's bucket. */
static bool spend(ah_tenantlimit *t, int64_t tenant_id, unsigned *retry_after_s, bool take)
{
    if (t == NULL || !(t->rate > 0))
        return true;
    tl_shard *s = &t->shards[shard_of(tenant_id)];
    bool ok = true;
    double wait = 0;
    double now = mono_s();
    pthread_mutex_lock(&s->mu);
    tl_bucket *b = bucket_for(t, s, tenant_id, now);
    if (b != NULL) {
        if (now > b->last) {
            b->tokens += (now - b->last) * t->rate;
            if (b->tokens > t->burst)
                b->tokens = t->burst;
            b->last = now;
        }
        if (b->tokens >= 1.0) {
            if (take)
                b->tokens -= 1.0;
        } else {
            /* Refused requests take nothing: a client that keeps knocking
             * is served again as soon as a token is there. */
            ok = false;
            wait = (1.0 - b->tokens) / t->rate;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!ok && retry_after_s != NULL) {
        /* Retry-After is whole seconds: round up, so that a client that
         * waits exactly that long finds a token. */
        double w = ceil(wait);
        *retry_after_s = w < 1 ? 1 : w > 86400 ? 86400 : (unsigned)w;
    }
    return ok;
}

bool ah_tenantlimit_take(ah_tenantlimit *t, int64_t tenant_id, unsigned *retry_after_s)
{
    return spend(t, tenant_id, retry_after_s, true);
}

bool ah_tenantlimit_check(ah_tenantlimit *t, int64_t tenant_id, unsigned *retry_after_s)
{
    return spend(t, tenant_id, retry_after_s, false);
}
