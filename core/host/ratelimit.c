/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-connection request budgets: one token bucket per connection, taken
 * by every outbound request a plugin makes through the host's http
 * function (so syncs, bulk jobs and single writes share it).
 *
 * The rate is what the plugin declares (ah_plugin_descriptor's
 * rate_limit_rps: the provider's documented limit); an operator lowers it
 * per connection with the setting rate_limit_rps (plugins that declare a
 * rate list that setting); a value above the declaration is ignored. The
 * bucket holds one token (no bursts): requests are spaced 1/rate apart, so
 * the provider never sees more than its limit in any second. A 429 halves
 * the rate (down to 1/16 of it) for 30 seconds from the last 429.
 *
 * A 429 also pauses the connection, paced or not, for the answer's
 * Retry-After (1 s without one; at most [outbound] backoff_max_ms): the
 * provider asked the client to wait, not just the refused request (which
 * the HTTP client sends again after Retry-After by itself), so the
 * connection's other requests (a sync's next page asked again by the
 * engine, a bulk job, a write) wait too. This is what a plugin that
 * declares no rate (its provider documents none) relies on.
 *
 * Waiters reserve their slot under the lock (the balance may go negative)
 * and sleep outside it, so concurrent callers are served in order.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "block.h"
#include "conns.h"
#include "ratelimit.h"

#define RL_PENALTY_S 30.0
#define RL_MIN_FACTOR (1.0 / 16)

typedef struct ah_bucket {
    int64_t conn_id;
    double rate;          /* current tokens per second (after penalties) */
    double factor;        /* 1, halved per 429 */
    double penalty_until; /* monotonic seconds */
    double tokens;        /* balance; negative: reserved by waiters */
    double last;          /* monotonic seconds of the last refill */
    double pause_until;   /* monotonic seconds: Retry-After of the last 429 */
    unsigned long taken;  /* tokens taken (ah_ratelimit_taken) */
} ah_bucket;

struct ah_ratelimit {
    pthread_mutex_t mu; /* guards the buckets */
    ah_bucket *buckets;
    size_t nbuckets, capbuckets;
};

ah_ratelimit *ah_ratelimit_new(void)
{
    ah_ratelimit *t = calloc(1, sizeof *t);
    if (t != NULL && pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        t = NULL;
    }
    return t;
}

void ah_ratelimit_free(ah_ratelimit *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->buckets);
    free(t);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The bucket of conn_id (created on demand); lock held. */
static ah_bucket *bucket_for(ah_ratelimit *t, int64_t conn_id)
{
    for (size_t i = 0; i < t->nbuckets; i++)
        if (t->buckets[i].conn_id == conn_id)
            return &t->buckets[i];
    if (t->nbuckets == t->capbuckets) {
        size_t nc = t->capbuckets ? t->capbuckets * 2 : 8;
        ah_bucket *nb = realloc(t->buckets, nc * sizeof *nb);
        if (nb == NULL)
            return NULL;
        t->buckets = nb;
        t->capbuckets = nc;
    }
    ah_bucket *b = &t->buckets[t->nbuckets++];
    memset(b, 0, sizeof *b);
    b->conn_id = conn_id;
    b->factor = 1.0;
    b->tokens = 1.0;
    b->last = mono_s();
    return b;
}

static double configured_rate(const ah_conn *c, const ah_plugin_descriptor *desc)
{
    double declared = desc != NULL && AH_HAS(desc, rate_limit_rps) ? desc->rate_limit_rps : 0;
    const char *s = ah_conn_setting(c, "rate_limit_rps");
    double op = 0;
    if (s != NULL && *s != '\0') {
        char *end = NULL;
        errno = 0;
        op = strtod(s, &end);
        if (errno != 0 || end == s || *end != '\0' || !(op > 0) || !isfinite(op))
            op = 0;
    }
    if (declared > 0 && op > 0)
        return op < declared ? op : declared;
    return declared > 0 ? declared : op;
}

/* The existing bucket of conn_id, or NULL; lock held. */
static ah_bucket *bucket_find(ah_ratelimit *t, int64_t conn_id)
{
    for (size_t i = 0; i < t->nbuckets; i++)
        if (t->buckets[i].conn_id == conn_id)
            return &t->buckets[i];
    return NULL;
}

void ah_ratelimit_take(ah_core *core, const ah_conn *c, const ah_plugin_descriptor *desc)
{
    ah_ratelimit *t = core->ratelimit;
    if (t == NULL || c == NULL)
        return;
    double rate = configured_rate(c, desc);
    double wait = 0;
    pthread_mutex_lock(&t->mu);
    /* An unpaced connection has a bucket only once a 429 paused it. */
    ah_bucket *b = rate > 0 ? bucket_for(t, c->id) : bucket_find(t, c->id);
    if (b != NULL && !(rate > 0)) {
        double now = mono_s();
        if (b->pause_until > now)
            wait = b->pause_until - now;
    } else if (b != NULL) {
        double now = mono_s();
        if (b->factor < 1.0 && now >= b->penalty_until)
            b->factor = 1.0;
        b->rate = rate * b->factor;
        b->tokens += (now - b->last) * b->rate;
        if (b->tokens > 1.0)
            b->tokens = 1.0;
        b->last = now;
        b->tokens -= 1.0;
        b->taken++;
        if (b->tokens < 0)
            wait = -b->tokens / b->rate;
        if (b->pause_until - now > wait)
            wait = b->pause_until - now;
    }
    pthread_mutex_unlock(&t->mu);
    /* A 429 answered while this request slept pauses it too: its slot was
     * given before the pause began. */
    while (wait > 0) {
        struct timespec ts = {(time_t)wait, (long)((wait - floor(wait)) * 1e9)};
        ah_block_begin(); /* the connection's turn may be far (block.h) */
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        ah_block_end();
        pthread_mutex_lock(&t->mu);
        b = bucket_find(t, c->id);
        double now = mono_s();
        wait = b != NULL && b->pause_until > now ? b->pause_until - now : 0;
        pthread_mutex_unlock(&t->mu);
    }
}

unsigned long ah_ratelimit_taken(ah_core *core, int64_t conn_id)
{
    ah_ratelimit *t = core->ratelimit;
    if (t == NULL)
        return 0;
    pthread_mutex_lock(&t->mu);
    ah_bucket *b = bucket_find(t, conn_id);
    unsigned long n = b != NULL ? b->taken : 0;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void ah_ratelimit_throttled(ah_core *core, int64_t conn_id, long retry_after_ms)
{
    ah_ratelimit *t = core->ratelimit;
    if (t == NULL)
        return;
    long cap = core->cfg.http_backoff_max_ms > 0 ? core->cfg.http_backoff_max_ms : 10000;
    long ms = retry_after_ms >= 0 ? retry_after_ms : 1000;
    if (ms > cap)
        ms = cap;
    pthread_mutex_lock(&t->mu);
    /* A paced connection (one that took a token) has its bucket already. */
    bool paced = bucket_find(t, conn_id) != NULL;
    ah_bucket *b = bucket_for(t, conn_id);
    if (b != NULL) {
        double now = mono_s();
        if (now + (double)ms / 1000 > b->pause_until)
            b->pause_until = now + (double)ms / 1000;
        if (paced && b->rate > 0) {
            b->factor = b->factor / 2 < RL_MIN_FACTOR ? RL_MIN_FACTOR : b->factor / 2;
            b->penalty_until = now + RL_PENALTY_S;
            ah_log(&core->log, AH_LOG_WARN, "ratelimit",
                   "connection %lld: the provider answered 429; requests wait %ld ms, "
                   "rate lowered to %.0f%% for %.0f s",
                   (long long)conn_id, ms, b->factor * 100, RL_PENALTY_S);
        } else {
            ah_log(&core->log, AH_LOG_WARN, "ratelimit",
                   "connection %lld: the provider answered 429; requests wait %ld ms",
                   (long long)conn_id, ms);
        }
    }
    pthread_mutex_unlock(&t->mu);
}

double ah_ratelimit_rate(ah_core *core, int64_t conn_id)
{
    ah_ratelimit *t = core->ratelimit;
    double r = 0;
    if (t == NULL)
        return 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->nbuckets; i++)
        if (t->buckets[i].conn_id == conn_id)
            r = t->buckets[i].rate;
    pthread_mutex_unlock(&t->mu);
    return r;
}
