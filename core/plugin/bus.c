/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Design: each lane key with messages has a lane (a FIFO) in a hash table.
 * A lane that becomes non-empty while no worker holds it goes on the run
 * queue; a worker takes the lane off the run queue, detaches up to
 * BUS_BATCH of its messages, handles them without the lock, then puts the
 * lane back at the tail of the run queue if more arrived (so one busy lane
 * cannot starve the others) or recycles it. A lane is thus held by at most
 * one worker at a time, which is what keeps per-lane order.
 *
 * Fairness across tenants: every lane belongs to a group, the tenant its
 * messages name (or, for untagged messages, the lane alone). Runnable lanes
 * queue on their group, and the run queue holds groups, round-robin: a
 * worker takes the head group's first lane, and a group goes back on the
 * run queue only while it holds fewer than `share` workers. So one tenant's
 * slow provider or flood holds at most `share` workers, and other tenants'
 * lanes keep running on the rest.
 *
 * A handler that blocks for long (waiting for a provider's answer, or
 * before a retry) says so through block.h: meanwhile it counts neither
 * toward its group's share nor toward the `workers` handlers that run at
 * once, and when no worker is idle a spare thread is started (at most
 * BUS_SPARES_MAX in all) to take the work that may now run. Its lane stays
 * held (per-lane order holds). A tenant's handlers in flight, blocked or
 * not, are at most BUS_BLOCKED_SHARES times its share, so one tenant's
 * hung provider cannot take every spare thread.
 *
 * One mutex guards the scheduler, and only workers take it (once per
 * batch): a sender pushes its message onto the intake, a lock-free stack,
 * and the next worker to look for work moves the whole intake into the
 * lanes, in the order it was pushed (intake_drain). On this VM every cache
 * line that passes between the two CPUs costs ~225 ns, and a sender that
 * took the lock pulled the lock, a recycled node and the counters across
 * for every message, and slept on the lock's futex when a worker held it.
 * So the global max_queue is an atomic count that senders add to, and the
 * per-tenant max_queue_tenant is checked by the worker that takes a request
 * in (the sender has been told 0; its callback or waiting caller gets the
 * refusal). Senders wake a worker only when the intake was empty and one
 * sleeps (intake_wake). While a worker sleeps (a light load) a sender
 * takes the lock and puts its message on its lane itself, as before the
 * intake: it wakes a worker only for a lane that may run (a tenant at its
 * share wakes nobody), and refuses synchronously. Message nodes go back to senders through a
 * lock-free stack they take whole into their stash; lanes and groups are
 * recycled through bounded free lists.
 */
#include "bus.h"

#include "block.h"
#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

enum {
    BUS_BATCH = 64,
    BUS_TOPIC_INLINE = 72, /* a message node fills three cache lines */
    BUS_FREE_MSGS_MAX = 4096,
    BUS_FREE_LANES_MAX = 1024,
    BUS_BUCKETS_MIN = 256,
    BUS_WORKERS_MAX = 1024,
    BUS_DEFAULT_TIMEOUT_MS = 30000,
    BUS_CORR_LEN = 8 + 1 + 16,
    /* Threads started beside the workers while handlers block (block.h). */
    BUS_SPARES_MAX = 64,
    /* A tenant's handlers in flight, blocked ones included: this many shares. */
    BUS_BLOCKED_SHARES = 4,
};

/* bus_enqueue's refusal when a tenant's requests fill its share of the
 * queue: answered "overloaded" as a full bus is, with its own message. */
static const char BUS_TENANT_FULL[] = "overloaded";

/* BUS_RUN_ADMITTED is queued as BUS_RUN, past max_queue (ah_bus_run_admitted). */
typedef enum bus_kind { BUS_ASYNC, BUS_SYNC, BUS_EVENT, BUS_RUN, BUS_RUN_ADMITTED } bus_kind;

/* Shared by a synchronous caller and the worker that answers it; the last
 * of the two to let go frees it, so a reply arriving after the caller gave
 * up is dropped safely. */
/* Iterations a worker, or a synchronous caller, spins before it sleeps. */
#define BUS_SPIN 2000

static inline void bus_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef struct bus_completion {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    bool done;
    bool started;   /* a worker began its handler: the caller waits it out */
    bool abandoned; /* the caller gave up first: the handler never starts */
    int timeout_ms; /* how long the caller waits */
    atomic_bool done_hint; /* done, readable without mu (for spinning) */
    ah_reply reply;
} bus_completion;

/* Laid out in two cache lines (the inline topic runs into a third when
 * long): the first holds what a worker needs to put the message on its
 * lane (bus_place), the second what its handler needs besides. A sender
 * writes both and a worker reads both, so both are prefetched. */
typedef struct bus_msg {
    _Alignas(64) struct bus_msg *next; /* the intake (newest first), then its lane */
    bus_kind kind;
    uint64_t tenant;
    uint64_t lane;
    uint64_t seq; /* given when a worker takes it off the intake */
    cJSON *body;
    ah_reply_cb cb;
    void *cb_arg;
    /* second line */
    void *target;
    void (*run)(void *arg); /* BUS_RUN: the work, with cb_arg */
    bus_completion *comp;
    ah_bus_gate *gate;    /* BUS_ASYNC: the caller's, or NULL */
    const char *refused;  /* refused off the intake: why (bus_place) */
    char *topic;          /* topic_buf, or malloc'd when longer */
    int64_t deadline_ms;  /* its caller's (ah_mono_ms's clock, to a tick) */
    char topic_buf[BUS_TOPIC_INLINE];
} bus_msg;

_Static_assert(sizeof(bus_msg) == 192 && offsetof(bus_msg, target) == 64,
               "bus_msg: what bus_place reads in its first cache line");

/* Prefetches a message node's first two lines (for writing: a sender). */
static inline void msg_prefetch(const bus_msg *m, int write)
{
    if (write) {
        __builtin_prefetch(m, 1);
        __builtin_prefetch((const char *)m + 64, 1);
    } else {
        __builtin_prefetch(m, 0);
        __builtin_prefetch((const char *)m + 64, 0);
    }
}

struct bus_group;

typedef struct bus_lane {
    uint64_t key;
    struct bus_lane *hnext; /* hash chain */
    struct bus_lane *rnext; /* its group's runnable lanes, or free list */
    struct bus_group *group;
    bus_msg *head, *tail;
    unsigned long n; /* messages from head to tail */
} bus_lane;

/* A tenant (tenant = true), or an untagged lane on its own. */
typedef struct bus_group {
    uint64_t key;
    bool tenant;
    bool queued;             /* on the run queue */
    struct bus_group *hnext; /* hash chain, or free list */
    struct bus_group *rnext; /* run queue */
    bus_lane *lhead, *ltail; /* runnable lanes not held by a worker */
    int held;                /* workers holding one of its lanes, not blocked */
    int blocked;             /* handlers of its lanes blocked (block.h) */
    size_t nlanes;           /* lanes that point to it */
    unsigned long nreq;      /* its requests queued or in a batch (max_queue_tenant) */
} bus_group;

typedef struct bus_sub {
    /* Appended while workers may read the list: published with release. */
    _Atomic(struct bus_sub *) next;
    ah_event_handler fn;
    void *arg;
    bool prefix;
    size_t match_len; /* prefix: bytes of the pattern that must match */
    char pattern[];
} bus_sub;

struct ah_bus {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers wait for lanes */
    pthread_cond_t idle_cv; /* ah_bus_drain waits for an empty bus */

    ah_bus_handler handler;
    void *handler_arg;
    int default_timeout_ms;
    unsigned long max_queue;
    unsigned long max_queue_tenant;

    /* Senders do not take mu: they push onto `intake` (a lock-free stack,
     * newest first), and a worker holding mu moves what it holds into the
     * lanes (intake_drain) before it looks at the run queue. The atomics a
     * sender touches are each on a cache line of their own. */
    _Alignas(64) _Atomic(bus_msg *) intake;
    /* Messages sent and not finished: in transit, on the intake, in lanes
     * or in a batch (max_queue, ah_bus_depth, ah_bus_drain). A sender adds
     * its message before it looks at `stopping`; workers subtract under mu. */
    _Alignas(64) atomic_ulong admitted;
    /* Nodes handled, given back by workers (a stack a sender empties whole
     * into `stash`), and the senders' own nodes (send_mu). */
    _Alignas(64) _Atomic(bus_msg *) returned;
    atomic_long nnodes; /* message nodes allocated */
    _Alignas(64) pthread_mutex_t send_mu;
    bus_msg *stash;
    /* Read by senders, written seldom (under mu). */
    _Alignas(64) atomic_bool stopping;
    atomic_int idle;    /* workers blocked on work_cv */
    atomic_int blocked; /* handlers blocked (block.h) */
    atomic_int wakeups; /* signals sent and not yet consumed by a worker */
    atomic_int drain_waiters; /* ah_bus_drain callers (changed under mu) */

    /* Everything below is guarded by mu. */
    _Alignas(64) unsigned long queued; /* in lanes, not yet taken by a worker */
    unsigned long active; /* taken by a worker (or refused off the intake), not finished */

    bus_lane **buckets;
    size_t nbuckets; /* a power of two */
    size_t nlanes;
    bus_group *runq_head, *runq_tail; /* groups with a lane a worker may take */
    bus_group **gbuckets;
    size_t ngbuckets; /* a power of two */
    size_t ngroups;
    bus_group *free_groups;
    size_t nfree_groups;
    int share; /* workers one tenant may hold at once */
    /* Groups on the run queue, readable without mu: a worker about to sleep
     * spins on it briefly first, since on a busy bus a futex sleep and
     * wake-up cost more than the work (see BUS_SPIN). */
    atomic_long runnable;
    bus_lane *free_lanes;
    size_t nfree_lanes;
    uint64_t next_seq;

    _Atomic(bus_sub *) subs;
    bus_sub *subs_tail; /* guarded by mu */

    char corr_prefix[9];
    int nworkers; /* handlers that run at once, blocked ones not counted */
    int running;  /* handlers running and not blocked (mu) */
    int inbatch;  /* threads handling a batch, blocked or not (mu) */
    /* Workers, then spares: nworkers + BUS_SPARES_MAX slots, nthreads used
     * (written under mu, read by on_worker without it). */
    pthread_t *threads;
    atomic_int nthreads;
    ah_block_hooks block_hooks;
    /* What blocked handlers wait on (block.h), one slot per thread there
     * may be (a thread waits on one at a time); a slot is free when n is
     * 0. Guarded by mu. */
    struct bus_waited {
        char *on; /* malloc'd; NULL when free */
        int n;
    } *waited;
    int provider_threads; /* 0: no limit */
    unsigned long waits_refused; /* (mu) */
};

/* ------------------------------------------------------------------------ */
/* Replies                                                                  */
/* ------------------------------------------------------------------------ */

void ah_reply_free(ah_reply *r)
{
    if (r == NULL)
        return;
    cJSON_Delete(r->body);
    free(r->message);
    if (r->attachment != NULL && r->attachment_free != NULL)
        r->attachment_free(r->attachment);
    memset(r, 0, sizeof *r);
}

void ah_reply_error(ah_reply *r, const char *code, int http_status,
                    const char *fmt, ...)
{
    if (r == NULL)
        return;
    /* r is treated as output only: callers often pass an uninitialised
     * struct, so its previous contents are not freed. */
    memset(r, 0, sizeof *r);
    r->ok = false;
    snprintf(r->code, sizeof r->code, "%s", code != NULL ? code : "internal_error");
    r->http_status = http_status;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
            msg = NULL;
        va_end(ap);
        r->message = msg;
    }
}

/* ------------------------------------------------------------------------ */
/* Lanes                                                                    */
/* ------------------------------------------------------------------------ */

static size_t lane_hash(uint64_t k)
{
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ULL;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebULL;
    k ^= k >> 31;
    return (size_t)k;
}

/* Growth is best effort: a failed calloc leaves longer chains, not errors. */
static void lanes_grow(ah_bus *b)
{
    size_t n = b->nbuckets * 2;
    bus_lane **nb = calloc(n, sizeof *nb);
    if (nb == NULL)
        return;
    for (size_t i = 0; i < b->nbuckets; i++) {
        bus_lane *l = b->buckets[i];
        while (l != NULL) {
            bus_lane *next = l->hnext;
            size_t h = lane_hash(l->key) & (n - 1);
            l->hnext = nb[h];
            nb[h] = l;
            l = next;
        }
    }
    free(b->buckets);
    b->buckets = nb;
    b->nbuckets = n;
}

/* The lane for `key`, made if absent; NULL when out of memory. */
static bus_lane *lane_get(ah_bus *b, uint64_t key, bool *fresh)
{
    size_t h = lane_hash(key) & (b->nbuckets - 1);
    for (bus_lane *l = b->buckets[h]; l != NULL; l = l->hnext) {
        if (l->key == key) {
            *fresh = false;
            return l;
        }
    }
    bus_lane *l = b->free_lanes;
    if (l != NULL) {
        b->free_lanes = l->rnext;
        b->nfree_lanes--;
    } else {
        l = malloc(sizeof *l);
        if (l == NULL)
            return NULL;
    }
    memset(l, 0, sizeof *l);
    l->key = key;
    l->hnext = b->buckets[h];
    b->buckets[h] = l;
    b->nlanes++;
    if (b->nlanes > b->nbuckets)
        lanes_grow(b);
    *fresh = true;
    return l;
}

/* Groups: the same hash scheme as lanes, keyed by (key, tenant). */
static size_t group_hash(uint64_t key, bool tenant)
{
    return lane_hash(key ^ (tenant ? 0x9e3779b97f4a7c15ULL : 0));
}

static void groups_grow(ah_bus *b)
{
    size_t n = b->ngbuckets * 2;
    bus_group **nb = calloc(n, sizeof *nb);
    if (nb == NULL)
        return;
    for (size_t i = 0; i < b->ngbuckets; i++) {
        bus_group *g = b->gbuckets[i];
        while (g != NULL) {
            bus_group *next = g->hnext;
            size_t h = group_hash(g->key, g->tenant) & (n - 1);
            g->hnext = nb[h];
            nb[h] = g;
            g = next;
        }
    }
    free(b->gbuckets);
    b->gbuckets = nb;
    b->ngbuckets = n;
}

/* The group for (key, tenant), made if absent; NULL when out of memory. */
static bus_group *group_get(ah_bus *b, uint64_t key, bool tenant)
{
    size_t h = group_hash(key, tenant) & (b->ngbuckets - 1);
    for (bus_group *g = b->gbuckets[h]; g != NULL; g = g->hnext)
        if (g->key == key && g->tenant == tenant)
            return g;
    bus_group *g = b->free_groups;
    if (g != NULL) {
        b->free_groups = g->hnext;
        b->nfree_groups--;
    } else if ((g = malloc(sizeof *g)) == NULL) {
        return NULL;
    }
    memset(g, 0, sizeof *g);
    g->key = key;
    g->tenant = tenant;
    g->hnext = b->gbuckets[h];
    b->gbuckets[h] = g;
    b->ngroups++;
    if (b->ngroups > b->ngbuckets)
        groups_grow(b);
    return g;
}

/* Drops a lane's reference on its group; the group goes with its last
 * lane (a held lane still exists, so held is 0 then). */
static void group_unref(ah_bus *b, bus_group *g)
{
    if (g == NULL || --g->nlanes > 0)
        return;
    bus_group **pp = &b->gbuckets[group_hash(g->key, g->tenant) & (b->ngbuckets - 1)];
    while (*pp != g)
        pp = &(*pp)->hnext;
    *pp = g->hnext;
    b->ngroups--;
    if (b->nfree_groups < BUS_FREE_LANES_MAX) {
        g->hnext = b->free_groups;
        b->free_groups = g;
        b->nfree_groups++;
    } else {
        free(g);
    }
}

static void lane_remove(ah_bus *b, bus_lane *l)
{
    bus_lane **pp = &b->buckets[lane_hash(l->key) & (b->nbuckets - 1)];
    while (*pp != l)
        pp = &(*pp)->hnext;
    *pp = l->hnext;
    b->nlanes--;
    group_unref(b, l->group);
    l->group = NULL;
    if (b->nfree_lanes < BUS_FREE_LANES_MAX) {
        l->rnext = b->free_lanes;
        b->free_lanes = l;
        b->nfree_lanes++;
    } else {
        free(l);
    }
}

/* Puts g on the run queue when it has a runnable lane and room under its
 * share. Returns true when it went on. */
static bool group_offer(ah_bus *b, bus_group *g)
{
    if (g->queued || g->lhead == NULL ||
        (g->tenant && (g->held >= b->share ||
                       g->held + g->blocked >= BUS_BLOCKED_SHARES * b->share)))
        return false;
    g->queued = true;
    g->rnext = NULL;
    if (b->runq_tail != NULL)
        b->runq_tail->rnext = g;
    else
        b->runq_head = g;
    b->runq_tail = g;
    atomic_fetch_add_explicit(&b->runnable, 1, memory_order_relaxed);
    return true;
}

/* Makes a lane with messages runnable (not held by a worker). Returns true
 * when a worker may take it now (its group is not at its share). */
static bool runq_push(ah_bus *b, bus_lane *l)
{
    bus_group *g = l->group;
    l->rnext = NULL;
    if (g->ltail != NULL)
        g->ltail->rnext = l;
    else
        g->lhead = l;
    g->ltail = l;
    (void)group_offer(b, g);
    return g->queued;
}

/* Takes the next lane a worker may run, or NULL: the head group's first
 * lane; the group goes to the tail while it stays under its share. */
static bus_lane *runq_take(ah_bus *b)
{
    bus_group *g = b->runq_head;
    if (g == NULL)
        return NULL;
    b->runq_head = g->rnext;
    if (b->runq_head == NULL)
        b->runq_tail = NULL;
    g->queued = false;
    atomic_fetch_sub_explicit(&b->runnable, 1, memory_order_relaxed);
    bus_lane *l = g->lhead;
    g->lhead = l->rnext;
    if (g->lhead == NULL)
        g->ltail = NULL;
    l->rnext = NULL;
    g->held++;
    (void)group_offer(b, g);
    return l;
}

/* ------------------------------------------------------------------------ */
/* Handling                                                                 */
/* ------------------------------------------------------------------------ */

static void corr_format(const ah_bus *b, uint64_t seq, char out[BUS_CORR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, b->corr_prefix, 8);
    out[8] = '-';
    for (int i = 0; i < 16; i++)
        out[9 + i] = hex[(seq >> (60 - 4 * i)) & 0xf];
    out[BUS_CORR_LEN] = '\0';
}

static bool sub_matches(const bus_sub *s, const char *topic)
{
    if (s->prefix)
        return strncmp(topic, s->pattern, s->match_len) == 0;
    return strcmp(topic, s->pattern) == 0;
}

static void completion_release(bus_completion *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Hands *r to the waiting caller, or frees it when the caller gave up. */
static void completion_finish(bus_completion *c, ah_reply *r)
{
    pthread_mutex_lock(&c->mu);
    if (c->refs == 2)
        c->reply = *r;
    else
        ah_reply_free(r);
    c->done = true;
    atomic_store_explicit(&c->done_hint, true, memory_order_release);
    pthread_cond_signal(&c->cv);
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (last)
        completion_release(c);
}

/* The answer of a request whose caller gave up before a worker took it:
 * the plugin was not asked, so sending it again is safe. */
static void not_sent_reply(ah_reply *r, const char *topic, int timeout_ms)
{
    if (timeout_ms > 0)
        ah_reply_error(r, "overloaded", 503,
                       "no worker took the request to %s within %d ms (earlier requests of its "
                       "connection or tenant held them): it was not sent to the plugin; retry "
                       "later",
                       topic, timeout_ms);
    else
        ah_reply_error(r, "overloaded", 503,
                       "no worker took the request to %s before its caller gave up: it was not "
                       "sent to the plugin; retry later",
                       topic);
}

/* A worker is about to run a request's handler: false when its caller gave
 * up already (then it must not run). */
static bool request_start(bus_msg *m)
{
    if (m->kind == BUS_SYNC) {
        bus_completion *c = m->comp;
        pthread_mutex_lock(&c->mu);
        bool go = !c->abandoned;
        c->started = go;
        pthread_mutex_unlock(&c->mu);
        return go;
    }
    if (m->gate != NULL) {
        int queued = AH_BUS_GATE_QUEUED;
        return atomic_compare_exchange_strong(&m->gate->state, &queued, AH_BUS_GATE_STARTED);
    }
    return true;
}

bool ah_bus_gate_abandon(ah_bus_gate *g)
{
    int queued = AH_BUS_GATE_QUEUED;
    return g != NULL &&
           atomic_compare_exchange_strong(&g->state, &queued, AH_BUS_GATE_ABANDONED);
}

static void bus_handle(ah_bus *b, bus_msg *m)
{
    /* Handlers get {} for a missing body; a zeroed cJSON of type object is
     * a valid empty object and costs no allocation. */
    cJSON empty;
    memset(&empty, 0, sizeof empty);
    empty.type = cJSON_Object;
    const cJSON *body = m->body != NULL ? m->body : &empty;

    if (m->kind == BUS_RUN) {
        m->run(m->cb_arg);
        return;
    }
    if (m->kind == BUS_EVENT) {
        for (bus_sub *s = atomic_load_explicit(&b->subs, memory_order_acquire);
             s != NULL; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
            if (sub_matches(s, m->topic))
                s->fn(s->arg, m->lane, m->topic, body);
        }
        return;
    }

    char corr[BUS_CORR_LEN + 1];
    corr_format(b, m->seq, corr);
    ah_msg msg = {
        .topic = m->topic,
        .tenant = m->tenant,
        .lane = m->lane,
        .target = m->target,
        .correlation_id = corr,
        .body = body,
    };
    ah_reply reply;
    memset(&reply, 0, sizeof reply);
    if (!request_start(m))
        not_sent_reply(&reply, m->topic, 0); /* nobody waits for it: dropped */
    else if (b->handler != NULL)
        b->handler(b->handler_arg, &msg, &reply);
    else
        ah_reply_error(&reply, "unsupported_capability", 501,
                       "this bus serves no requests (topic %s)", m->topic);
    if (!reply.ok && reply.code[0] == '\0') {
        ah_reply_free(&reply);
        ah_reply_error(&reply, "internal_error", 500,
                       "the handler of %s gave no reply", m->topic);
    }
    if (m->kind == BUS_SYNC)
        completion_finish(m->comp, &reply);
    else if (m->cb != NULL)
        m->cb(m->cb_arg, &reply);
    else
        ah_reply_free(&reply);
}

/* Frees what a message node owns, keeping the node. */
static void msg_clear(bus_msg *m)
{
    cJSON_Delete(m->body);
    m->body = NULL;
    if (m->topic != m->topic_buf)
        free(m->topic);
    m->topic = NULL;
    m->comp = NULL;
}

/* The group whose lane this thread's worker handles now (NULL between
 * batches, and on every other thread), and whether its handler is blocked
 * (block.h). */
static _Thread_local bus_group *tl_group;
/* The deadline of the message this worker handles (block.h). */
static _Thread_local int64_t tl_deadline_ms;
static _Thread_local bool tl_blocked;
/* The slot of b->waited that this thread's blocked handler counts in; -1:
 * none. */
static _Thread_local int tl_waited = -1;

static void *bus_worker(void *arg);

/* Something on the intake (seq_cst: the Dekker pairs of intake_wake and of
 * a worker about to sleep, and of bus_block_begin). */
static bool intake_nonempty(ah_bus *b)
{
    return atomic_load(&b->intake) != NULL;
}

/* A worker sleeps that no signal sent is on its way to; under mu (both
 * change only under it). */
static bool worker_asleep(ah_bus *b)
{
    return atomic_load_explicit(&b->idle, memory_order_relaxed) >
           atomic_load_explicit(&b->wakeups, memory_order_relaxed);
}

/* Starts a spare thread for work that may run while handlers block; under
 * mu. None while stopping (bus_stop joins the threads there are) or past
 * BUS_SPARES_MAX; a failed start leaves the work to the threads there are. */
static void spare_start(ah_bus *b)
{
    int n = atomic_load_explicit(&b->nthreads, memory_order_relaxed);
    if (atomic_load_explicit(&b->stopping, memory_order_relaxed) ||
        n >= b->nworkers + BUS_SPARES_MAX)
        return;
    if (pthread_create(&b->threads[n], NULL, bus_worker, b) == 0)
        atomic_store_explicit(&b->nthreads, n + 1, memory_order_release);
}

/* Work that may run now (on the run queue, or on the intake for a worker
 * to sort) and no thread to take it (every one is in a handler, and fewer
 * than `workers` of those run): a spare. Under mu. */
static void spare_if_needed(ah_bus *b)
{
    if ((b->runq_head != NULL || intake_nonempty(b)) && b->running < b->nworkers &&
        b->inbatch >= atomic_load_explicit(&b->nthreads, memory_order_relaxed))
        spare_start(b);
}

/* block.h's hooks of a worker thread: its handler blocks, and goes on. */
/* The slot counting the handlers that wait on `on`, or a free one to
 * count them in (every thread waits on one thing at most, and there are
 * as many slots as threads may be); -1 when out of memory. Under mu. */
static int waited_slot(ah_bus *b, const char *on)
{
    int n = b->nworkers + BUS_SPARES_MAX, free_at = -1;
    for (int i = 0; i < n; i++) {
        if (b->waited[i].on == NULL) {
            if (free_at < 0)
                free_at = i;
        } else if (strcmp(b->waited[i].on, on) == 0) {
            return i;
        }
    }
    if (free_at >= 0 && (b->waited[free_at].on = strdup(on)) == NULL)
        return -1;
    return free_at;
}

static int64_t bus_deadline(void *arg)
{
    (void)arg;
    return tl_deadline_ms;
}

static bool bus_block_begin(void *arg, const char *on)
{
    ah_bus *b = arg;
    bus_group *g = tl_group;
    if (g == NULL)
        return true;
    pthread_mutex_lock(&b->mu);
    int w = -1;
    if (on != NULL && b->provider_threads > 0 && (w = waited_slot(b, on)) >= 0) {
        if (b->waited[w].n >= b->provider_threads) {
            b->waits_refused++;
            pthread_mutex_unlock(&b->mu);
            return false; /* goes on running: it gives up what it waited for */
        }
        b->waited[w].n++;
    }
    tl_waited = w;
    tl_blocked = true;
    /* seq_cst, before the intake is looked at: a sender that pushed onto
     * an empty intake and saw no blocked handler is seen here. */
    atomic_fetch_add(&b->blocked, 1);
    b->running--;
    g->held--;
    g->blocked++;
    (void)group_offer(b, g); /* its other lanes, under its share again */
    if (b->runq_head != NULL || intake_nonempty(b)) {
        if (worker_asleep(b)) {
            atomic_fetch_add_explicit(&b->wakeups, 1, memory_order_relaxed);
            pthread_cond_signal(&b->work_cv);
        } else {
            spare_if_needed(b);
        }
    }
    pthread_mutex_unlock(&b->mu);
    return true;
}

static void bus_block_end(void *arg)
{
    ah_bus *b = arg;
    bus_group *g = tl_group;
    if (g == NULL || !tl_blocked)
        return;
    pthread_mutex_lock(&b->mu);
    tl_blocked = false;
    if (tl_waited >= 0 && --b->waited[tl_waited].n == 0) {
        free(b->waited[tl_waited].on);
        b->waited[tl_waited].on = NULL;
    }
    tl_waited = -1;
    atomic_fetch_sub(&b->blocked, 1);
    /* Back among the running: for a while more than `workers` may run, and
     * the group may hold more than its share; neither takes more work
     * until it is under its limit again. */
    b->running++;
    g->blocked--;
    g->held++;
    pthread_mutex_unlock(&b->mu);
}

/* bus_enqueue's refusal when a tenant's requests fill its share of the
 * queue is BUS_TENANT_FULL; these are the replies of every refusal. */
static void refusal_reply(ah_reply *r, const char *why)
{
    if (why == BUS_TENANT_FULL)
        ah_reply_error(r, "overloaded", 503, "too many of this tenant's requests wait for its "
                       "providers, try again later");
    else if (strcmp(why, "overloaded") == 0)
        ah_reply_error(r, why, 503, "the message bus is full, try again later");
    else if (strcmp(why, "shutting_down") == 0)
        ah_reply_error(r, why, 503, "the message bus is shutting down");
    else
        ah_reply_error(r, why, 500, "out of memory queueing a message");
}

/* ------------------------------------------------------------------------ */
/* Message nodes and the intake                                             */
/* ------------------------------------------------------------------------ */

/* A node for a sender: from the senders' stash, refilled whole from the
 * nodes workers gave back (one exchange), else malloc'd. NULL when out of
 * memory. */
static bus_msg *msg_alloc(ah_bus *b)
{
    pthread_mutex_lock(&b->send_mu);
    bus_msg *m = b->stash;
    if (m == NULL)
        m = atomic_exchange_explicit(&b->returned, NULL, memory_order_acquire);
    if (m != NULL) {
        b->stash = m->next;
        /* The next send's node was last written by a worker: fetched
         * meanwhile. */
        if (m->next != NULL)
            msg_prefetch(m->next, 1);
        pthread_mutex_unlock(&b->send_mu);
        return m;
    }
    pthread_mutex_unlock(&b->send_mu);
    m = aligned_alloc(_Alignof(bus_msg), sizeof *m);
    if (m != NULL)
        atomic_fetch_add_explicit(&b->nnodes, 1, memory_order_relaxed);
    return m;
}

/* Gives back n cleared nodes first..last (linked): to the senders, or to
 * malloc when more than BUS_FREE_MSGS_MAX would then sit unused. */
static void msgs_return(ah_bus *b, bus_msg *first, bus_msg *last, unsigned long n)
{
    long unused = atomic_load_explicit(&b->nnodes, memory_order_relaxed) -
                  (long)atomic_load_explicit(&b->admitted, memory_order_relaxed);
    if (unused > BUS_FREE_MSGS_MAX) {
        while (first != NULL) {
            bus_msg *next = first == last ? NULL : first->next;
            free(first);
            first = next;
        }
        atomic_fetch_sub_explicit(&b->nnodes, (long)n, memory_order_relaxed);
        return;
    }
    bus_msg *head = atomic_load_explicit(&b->returned, memory_order_relaxed);
    do
        last->next = head;
    while (!atomic_compare_exchange_weak_explicit(&b->returned, &head, first,
                                                  memory_order_release, memory_order_relaxed));
}

/* Puts a message on its lane (taken off the intake, or from a sender
 * while workers are idle); under mu. NULL when placed, else why it is
 * refused (the caller answers it without mu). *runnable: its lane went on
 * the run queue. */
static const char *bus_place(ah_bus *b, bus_msg *m, bool *runnable)
{
    *runnable = false;
    uint64_t tenant = m->tenant, lane = m->lane;
    bool fresh;
    bus_lane *l = lane_get(b, lane, &fresh);
    if (l != NULL && fresh) {
        /* A lane keeps the group it was made for until it empties. */
        l->group = group_get(b, tenant != AH_BUS_NO_TENANT ? tenant : lane,
                             tenant != AH_BUS_NO_TENANT);
        if (l->group != NULL) {
            l->group->nlanes++;
        } else {
            lane_remove(b, l);
            l = NULL;
        }
    }
    if (l == NULL)
        return "internal_error";
    bool request = m->kind == BUS_ASYNC || m->kind == BUS_SYNC;
    if (request && l->group->tenant && l->group->nreq >= b->max_queue_tenant) {
        if (fresh)
            lane_remove(b, l);
        return BUS_TENANT_FULL;
    }
    if (request)
        l->group->nreq++;
    m->next = NULL;
    m->seq = b->next_seq++;
    if (l->tail != NULL)
        l->tail->next = m;
    else
        l->head = m;
    l->tail = m;
    l->n++;
    b->queued++;
    /* A fresh lane is neither queued nor held by a worker; an existing one
     * is, and whoever holds it will see the new message. The worker that
     * drains the intake takes work next, and wakes others for the rest. */
    if (fresh)
        *runnable = runq_push(b, l);
    return NULL;
}

/* Moves everything on the intake into the lanes, in the order it was
 * pushed; under mu. Returns the messages refused meanwhile (linked, in
 * order; counted in `active` until refused_answer). */
static bus_msg *intake_drain(ah_bus *b)
{
    if (atomic_load_explicit(&b->intake, memory_order_relaxed) == NULL)
        return NULL;
    bus_msg *s = atomic_exchange_explicit(&b->intake, NULL, memory_order_acquire);
    bus_msg *fifo = NULL;
    while (s != NULL) {
        bus_msg *next = s->next;
        __builtin_prefetch((const char *)s + 64, 0); /* for its handler */
        s->next = fifo;
        fifo = s;
        s = next;
    }
    bus_msg *refused = NULL, **rtail = &refused;
    while (fifo != NULL) {
        bus_msg *m = fifo;
        fifo = m->next;
        bool runnable;
        const char *why = bus_place(b, m, &runnable);
        if (why != NULL) {
            m->refused = why;
            m->next = NULL;
            *rtail = m;
            rtail = &m->next;
            b->active++;
        }
    }
    return refused;
}

/* No message is counted and not finished any more: wakes ah_bus_drain.
 * Under mu. */
static void drain_wake(ah_bus *b)
{
    if (atomic_load(&b->drain_waiters) > 0 && atomic_load(&b->admitted) == 0)
        pthread_cond_broadcast(&b->idle_cv);
}

/* Answers the messages intake_drain refused, without mu (held on entry
 * and on return): a request as a refused send is answered (its callback or
 * its waiting caller, "overloaded" for its tenant's share of the queue);
 * out of memory for its lane, a run is run all the same (its sender was
 * told it was queued) and an event is dropped. */
static void refused_answer(ah_bus *b, bus_msg *list)
{
    pthread_mutex_unlock(&b->mu);
    unsigned long n = 0;
    bus_msg *last = NULL;
    for (bus_msg *m = list; m != NULL; m = m->next) {
        if (m->kind == BUS_RUN) {
            m->run(m->cb_arg);
        } else if (m->kind == BUS_ASYNC || m->kind == BUS_SYNC) {
            ah_reply r;
            refusal_reply(&r, m->refused);
            if (m->kind == BUS_SYNC)
                completion_finish(m->comp, &r);
            else if (m->cb != NULL)
                m->cb(m->cb_arg, &r);
            else
                ah_reply_free(&r);
        }
        msg_clear(m);
        last = m;
        n++;
    }
    msgs_return(b, list, last, n);
    pthread_mutex_lock(&b->mu);
    b->active -= n;
    atomic_fetch_sub(&b->admitted, n);
    drain_wake(b);
}

static void *bus_worker(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-bus"); /* top -H, perf */
    ah_bus *b = arg;
    ah_block_install(&b->block_hooks);
    pthread_mutex_lock(&b->mu);
    for (;;) {
        bus_msg *refused = intake_drain(b);
        if (refused != NULL) {
            refused_answer(b, refused);
            continue;
        }
        if (b->runq_head == NULL || b->running >= b->nworkers) {
            /* Lanes of groups at their share may still wait: the workers
             * that hold those groups take them when they come back. */
            bool stopping = atomic_load(&b->stopping);
            if (stopping && b->runq_head == NULL) {
                /* A message counted by its sender before it saw `stopping`
                 * is on its way to the intake: wait for it. */
                if (atomic_load(&b->admitted) > b->queued + b->active) {
                    pthread_mutex_unlock(&b->mu);
                    sched_yield();
                    pthread_mutex_lock(&b->mu);
                    continue;
                }
                /* Threads asleep because `workers` handlers ran look again. */
                pthread_cond_broadcast(&b->work_cv);
                break;
            }
            if (b->runq_head == NULL) {
                /* Spin a little before sleeping: work usually arrives
                 * within microseconds on a busy bus. Spinning workers are
                 * not counted as idle, so senders do not signal them. */
                pthread_mutex_unlock(&b->mu);
                for (int i = 0;
                     i < BUS_SPIN &&
                     atomic_load_explicit(&b->runnable, memory_order_relaxed) == 0 &&
                     atomic_load_explicit(&b->intake, memory_order_relaxed) == NULL;
                     i++)
                    bus_cpu_relax();
                pthread_mutex_lock(&b->mu);
                if (atomic_load_explicit(&b->intake, memory_order_relaxed) != NULL ||
                    (b->runq_head != NULL && b->running < b->nworkers) ||
                    atomic_load(&b->stopping))
                    continue;
            }
            /* Idle first, then the intake once more (both seq_cst): a sender
             * pushing onto an empty intake either is seen here or sees this
             * worker idle and signals it (intake_wake). */
            atomic_fetch_add(&b->idle, 1);
            if (intake_nonempty(b)) {
                atomic_fetch_sub(&b->idle, 1);
                continue;
            }
            pthread_cond_wait(&b->work_cv, &b->mu);
            atomic_fetch_sub(&b->idle, 1);
            if (atomic_load_explicit(&b->wakeups, memory_order_relaxed) > 0)
                atomic_fetch_sub_explicit(&b->wakeups, 1, memory_order_relaxed);
            continue;
        }
        bus_lane *l = runq_take(b);
        b->running++;
        b->inbatch++;
        /* Work left on the run queue needs a worker of its own: a group
         * that a finishing worker put back under its share woke nobody, and
         * an idle worker must not sleep through it while every busy one
         * may be stuck on a slow provider. */
        if (b->runq_head != NULL && b->running < b->nworkers && worker_asleep(b)) {
            atomic_fetch_add_explicit(&b->wakeups, 1, memory_order_relaxed);
            pthread_cond_signal(&b->work_cv);
        }

        /* The lane's messages all: at most BUS_BATCH are handled and the
         * rest go back to its head, so that finding the batch's end is no
         * walk over nodes a sender wrote last (cache misses one after the
         * other); the handling loop fetches each node ahead instead. */
        bus_msg *first = l->head, *rest_last = l->tail;
        unsigned long ntaken = l->n;
        l->head = l->tail = NULL;
        l->n = 0;
        b->queued -= ntaken;
        b->active += ntaken;
        pthread_mutex_unlock(&b->mu);

        tl_group = l->group;
        unsigned long nreq = 0, n = 0;
        bus_msg *m = first, *last = NULL;
        while (m != NULL && n < BUS_BATCH) {
            if (m->next != NULL)
                msg_prefetch(m->next, 0);
            nreq += m->kind == BUS_ASYNC || m->kind == BUS_SYNC;
            tl_deadline_ms = m->deadline_ms;
            bus_handle(b, m);
            tl_deadline_ms = 0;
            msg_clear(m);
            last = m;
            m = m->next;
            n++;
        }
        tl_group = NULL;
        last->next = NULL;
        msgs_return(b, first, last, n);

        pthread_mutex_lock(&b->mu);
        if (m != NULL) {
            /* Not handled: back in front of what came meanwhile. */
            rest_last->next = l->head;
            l->head = m;
            if (l->tail == NULL)
                l->tail = rest_last;
            l->n += ntaken - n;
            b->queued += ntaken - n;
        }
        b->running--;
        b->inbatch--;
        b->active -= ntaken;
        atomic_fetch_sub(&b->admitted, n);
        bus_group *g = l->group;
        g->held--;
        g->nreq -= nreq;
        if (l->head != NULL) {
            (void)runq_push(b, l); /* offers g too */
        } else {
            bool others = g->nlanes > 1;
            lane_remove(b, l); /* frees g with its last lane */
            if (others)
                (void)group_offer(b, g); /* back under its share */
        }
        drain_wake(b);
    }
    pthread_mutex_unlock(&b->mu);
    ah_block_install(NULL);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                  */
/* ------------------------------------------------------------------------ */

static bool on_worker(const ah_bus *b)
{
    pthread_t self = pthread_self();
    int n = atomic_load_explicit(&((ah_bus *)b)->nthreads, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (pthread_equal(self, b->threads[i]))
            return true;
    return false;
}

/* A sender pushed onto an empty intake: a worker must come for it. Awake
 * workers look at the intake before they sleep; a sleeping one is
 * signalled, and when every thread is in a handler and some are blocked a
 * spare is started (spare_if_needed). The loads are seq_cst, after the
 * push (see bus_worker and bus_block_begin): no wake-up is lost. */
static void intake_wake(ah_bus *b)
{
    if (atomic_load(&b->idle) == 0 && atomic_load(&b->blocked) == 0)
        return;
    bool wake = false;
    pthread_mutex_lock(&b->mu);
    if (worker_asleep(b)) {
        atomic_fetch_add_explicit(&b->wakeups, 1, memory_order_relaxed);
        wake = true;
    } else {
        spare_if_needed(b);
    }
    pthread_mutex_unlock(&b->mu);
    if (wake)
        pthread_cond_signal(&b->work_cv);
}

/* Takes back a sender's count of a message it did not queue. */
static void admitted_undo(ah_bus *b)
{
    if (atomic_fetch_sub(&b->admitted, 1) == 1 && atomic_load(&b->drain_waiters) > 0) {
        pthread_mutex_lock(&b->mu);
        pthread_cond_broadcast(&b->idle_cv);
        pthread_mutex_unlock(&b->mu);
    }
}

/* Queues a message: onto the intake, without mu (a worker puts it on its
 * lane). Returns NULL when queued, else the error code of the refusal:
 * while stopping, past max_queue, out of memory. A tenant's request past
 * max_queue_tenant is accepted here and refused when a worker takes it off
 * the intake (bus_place, refused_answer). `body` is consumed either way. */
static const char *bus_enqueue(ah_bus *b, bus_kind kind, uint64_t tenant, uint64_t lane,
                               void *target, const char *topic, cJSON *body,
                               ah_reply_cb cb, void (*run)(void *arg), void *cb_arg,
                               bus_completion *comp, ah_bus_gate *gate)
{
    size_t tlen = strlen(topic);
    char *long_topic = NULL;
    if (tlen >= BUS_TOPIC_INLINE) {
        long_topic = strdup(topic);
        if (long_topic == NULL) {
            cJSON_Delete(body);
            return "internal_error";
        }
    }

    const char *why = NULL;
    /* Counted before `stopping` is read (both seq_cst): a worker that sees
     * `stopping` waits for what was counted (bus_worker). */
    unsigned long before = atomic_fetch_add(&b->admitted, 1);
    /* While shutting down, the handlers being drained may still publish
     * and send asynchronously; a synchronous send could never be answered
     * in time, and nobody else may send at all. */
    if (atomic_load(&b->stopping) && (kind == BUS_SYNC || !on_worker(b))) {
        why = "shutting_down";
        goto refuse;
    }
    if (kind != BUS_RUN_ADMITTED && before >= b->max_queue) {
        why = "overloaded";
        goto refuse;
    }
    if (kind == BUS_RUN_ADMITTED)
        kind = BUS_RUN;
    bus_msg *m = msg_alloc(b);
    if (m == NULL) {
        why = "internal_error";
        goto refuse;
    }
    m->kind = kind;
    m->tenant = tenant;
    m->lane = lane;
    m->target = target;
    m->body = body;
    if (long_topic != NULL) {
        m->topic = long_topic;
    } else {
        memcpy(m->topic_buf, topic, tlen + 1);
        m->topic = m->topic_buf;
    }
    m->cb = cb;
    m->cb_arg = cb_arg;
    m->run = run;
    m->comp = comp;
    m->gate = gate;
    m->refused = NULL;
    /* The caller's deadline, for a handler that would wait before its work
     * starts (block.h): a synchronous caller's own, else the bus's. The
     * coarse clock: a message costs no more than a few ns for it. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    m->deadline_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 +
                     (comp != NULL ? comp->timeout_ms : b->default_timeout_ms);

    /* A worker sleeps (a light load): as before the intake, the sender puts
     * its message on its lane itself, and wakes a worker only when the
     * lane may run now (its tenant is under its share), instead of waking
     * one to sort the intake for nothing; a refusal is then synchronous.
     * Not while the intake holds messages: they were sent first. */
    if (atomic_load_explicit(&b->idle, memory_order_relaxed) > 0) {
        pthread_mutex_lock(&b->mu);
        if (atomic_load_explicit(&b->intake, memory_order_relaxed) == NULL) {
            bool runnable, wake = false;
            why = bus_place(b, m, &runnable);
            if (why == NULL && runnable) {
                if (worker_asleep(b)) {
                    atomic_fetch_add_explicit(&b->wakeups, 1, memory_order_relaxed);
                    wake = true;
                } else {
                    spare_if_needed(b); /* the workers' handlers are blocked */
                }
            }
            pthread_mutex_unlock(&b->mu);
            if (wake)
                pthread_cond_signal(&b->work_cv);
            if (why != NULL) {
                msg_clear(m); /* the body and a long topic */
                m->next = NULL;
                msgs_return(b, m, m, 1);
                admitted_undo(b);
            }
            return why;
        }
        pthread_mutex_unlock(&b->mu);
    }

    bus_msg *head = atomic_load_explicit(&b->intake, memory_order_relaxed);
    do
        m->next = head;
    while (!atomic_compare_exchange_weak_explicit(&b->intake, &head, m, memory_order_seq_cst,
                                                  memory_order_relaxed));
    if (head == NULL)
        intake_wake(b);
    return NULL;

refuse:
    admitted_undo(b);
    free(long_topic);
    cJSON_Delete(body);
    return why;
}

int ah_bus_request(ah_bus *bus, uint64_t lane, void *target, const char *topic,
                   cJSON *body, int timeout_ms, ah_reply *reply)
{
    return ah_bus_request_tenant(bus, AH_BUS_NO_TENANT, lane, target, topic, body, timeout_ms,
                                 reply);
}

int ah_bus_request_tenant(ah_bus *bus, uint64_t tenant, uint64_t lane, void *target,
                          const char *topic, cJSON *body, int timeout_ms, ah_reply *reply)
{
    memset(reply, 0, sizeof *reply);
    if (bus == NULL || topic == NULL) {
        cJSON_Delete(body);
        ah_reply_error(reply, "invalid_request", 400, "a request needs a bus and a topic");
        return -1;
    }
    if (timeout_ms <= 0)
        timeout_ms = bus->default_timeout_ms;

    bus_completion *c = calloc(1, sizeof *c);
    if (c == NULL) {
        cJSON_Delete(body);
        refusal_reply(reply, "internal_error");
        return -1;
    }
    c->timeout_ms = timeout_ms;
    atomic_init(&c->done_hint, false);
    bool ok = ah_cond_init_mono(&c->cv) == 0;
    if (ok && pthread_mutex_init(&c->mu, NULL) != 0) {
        pthread_cond_destroy(&c->cv);
        ok = false;
    }
    if (!ok) {
        free(c);
        cJSON_Delete(body);
        refusal_reply(reply, "internal_error");
        return -1;
    }
    c->refs = 2;

    const char *why = bus_enqueue(bus, BUS_SYNC, tenant, lane, target, topic, body,
                                  NULL, NULL, NULL, c, NULL);
    if (why != NULL) {
        completion_release(c);
        refusal_reply(reply, why);
        return -1;
    }

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    for (int i = 0; i < BUS_SPIN && !atomic_load_explicit(&c->done_hint, memory_order_acquire);
         i++)
        bus_cpu_relax();
    pthread_mutex_lock(&c->mu);
    while (!c->done) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT)
            break;
    }
    if (c->done) {
        *reply = c->reply;
    } else if (!c->started) {
        /* No worker took it yet: it never will (request_start), so the
         * caller's answer can say that the plugin was not asked. */
        c->abandoned = true;
        not_sent_reply(reply, topic, timeout_ms);
    } else {
        /* Its handler runs: it may act, whatever the caller hears. */
        ah_reply_error(reply, "timeout", 504, "no reply to %s within %d ms",
                       topic, timeout_ms);
    }
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (last)
        completion_release(c);
    return reply->ok ? 0 : -1;
}

int ah_bus_request_async(ah_bus *bus, uint64_t lane, void *target, const char *topic,
                         cJSON *body, ah_reply_cb cb, void *cb_arg)
{
    return ah_bus_request_async_tenant(bus, AH_BUS_NO_TENANT, lane, target, topic, body, cb,
                                       cb_arg);
}

int ah_bus_request_async_tenant(ah_bus *bus, uint64_t tenant, uint64_t lane, void *target,
                                const char *topic, cJSON *body, ah_reply_cb cb, void *cb_arg)
{
    return ah_bus_request_async_gated(bus, tenant, lane, target, topic, body, cb, cb_arg, NULL);
}

int ah_bus_request_async_gated(ah_bus *bus, uint64_t tenant, uint64_t lane, void *target,
                               const char *topic, cJSON *body, ah_reply_cb cb, void *cb_arg,
                               ah_bus_gate *gate)
{
    const char *why;
    if (bus == NULL || topic == NULL) {
        cJSON_Delete(body);
        why = "invalid_request";
    } else {
        why = bus_enqueue(bus, BUS_ASYNC, tenant, lane, target, topic, body, cb, NULL, cb_arg,
                          NULL, gate);
        if (why == NULL)
            return 0;
    }
    ah_reply r;
    if (strcmp(why, "invalid_request") == 0)
        ah_reply_error(&r, why, 400, "a request needs a bus and a topic");
    else
        refusal_reply(&r, why);
    if (cb != NULL)
        cb(cb_arg, &r);
    else
        ah_reply_free(&r);
    return -1;
}

int ah_bus_run_tenant(ah_bus *bus, uint64_t tenant, uint64_t lane, const char *what,
                      void (*fn)(void *arg), void *arg)
{
    if (bus == NULL || fn == NULL)
        return -1;
    /* The worker calls fn instead of the handler (bus_handle). */
    return bus_enqueue(bus, BUS_RUN, tenant, lane, NULL, what != NULL ? what : "run", NULL, NULL,
                       fn, arg, NULL, NULL) == NULL
               ? 0
               : -1;
}

int ah_bus_run_admitted(ah_bus *bus, uint64_t tenant, uint64_t lane, const char *what,
                        void (*fn)(void *arg), void *arg)
{
    if (bus == NULL || fn == NULL)
        return -1;
    return bus_enqueue(bus, BUS_RUN_ADMITTED, tenant, lane, NULL, what != NULL ? what : "run",
                       NULL, NULL, fn, arg, NULL, NULL) == NULL
               ? 0
               : -1;
}

int ah_bus_publish(ah_bus *bus, uint64_t lane, const char *topic, cJSON *body)
{
    return ah_bus_publish_tenant(bus, AH_BUS_NO_TENANT, lane, topic, body);
}

int ah_bus_publish_tenant(ah_bus *bus, uint64_t tenant, uint64_t lane, const char *topic,
                          cJSON *body)
{
    if (bus == NULL || topic == NULL) {
        cJSON_Delete(body);
        return -1;
    }
    return bus_enqueue(bus, BUS_EVENT, tenant, lane, NULL, topic, body, NULL, NULL, NULL, NULL,
                       NULL) == NULL
               ? 0
               : -1;
}

int ah_bus_subscribe(ah_bus *bus, const char *pattern, ah_event_handler fn, void *arg)
{
    if (bus == NULL || pattern == NULL || fn == NULL)
        return -1;
    size_t len = strlen(pattern);
    bus_sub *s = malloc(sizeof *s + len + 1);
    if (s == NULL)
        return -1;
    atomic_init(&s->next, NULL);
    s->fn = fn;
    s->arg = arg;
    memcpy(s->pattern, pattern, len + 1);
    if (strcmp(pattern, "*") == 0) {
        s->prefix = true;
        s->match_len = 0;
    } else if (len >= 2 && pattern[len - 2] == '.' && pattern[len - 1] == '*') {
        s->prefix = true;
        s->match_len = len - 1; /* keep the dot: "a.*" must not match "ab" */
    } else {
        s->prefix = false;
        s->match_len = len;
    }
    pthread_mutex_lock(&bus->mu);
    if (bus->subs_tail != NULL)
        atomic_store_explicit(&bus->subs_tail->next, s, memory_order_release);
    else
        atomic_store_explicit(&bus->subs, s, memory_order_release);
    bus->subs_tail = s;
    pthread_mutex_unlock(&bus->mu);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */
/* ------------------------------------------------------------------------ */

void ah_bus_drain(ah_bus *bus)
{
    if (bus == NULL)
        return;
    pthread_mutex_lock(&bus->mu);
    /* seq_cst, before `admitted` is read: a sender taking back its count
     * (admitted_undo) sees this waiter. */
    atomic_fetch_add(&bus->drain_waiters, 1);
    while (atomic_load(&bus->admitted) > 0)
        pthread_cond_wait(&bus->idle_cv, &bus->mu);
    atomic_fetch_sub(&bus->drain_waiters, 1);
    pthread_mutex_unlock(&bus->mu);
}

unsigned long ah_bus_depth(ah_bus *bus)
{
    if (bus == NULL)
        return 0;
    return atomic_load_explicit(&bus->admitted, memory_order_relaxed);
}

void ah_bus_stats(ah_bus *bus, int *blocked, int *threads)
{
    *blocked = *threads = 0;
    if (bus == NULL)
        return;
    pthread_mutex_lock(&bus->mu);
    *blocked = atomic_load_explicit(&bus->blocked, memory_order_relaxed);
    *threads = atomic_load_explicit(&bus->nthreads, memory_order_relaxed);
    pthread_mutex_unlock(&bus->mu);
}

unsigned long ah_bus_waits_refused(ah_bus *bus)
{
    if (bus == NULL)
        return 0;
    pthread_mutex_lock(&bus->mu);
    unsigned long n = bus->waits_refused;
    pthread_mutex_unlock(&bus->mu);
    return n;
}

static void corr_prefix_init(ah_bus *b)
{
    uint32_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec ^ (uint32_t)(uintptr_t)b;
    }
    snprintf(b->corr_prefix, sizeof b->corr_prefix, "%08x", (unsigned)r);
}

static void bus_destroy(ah_bus *b)
{
    for (size_t i = 0; i < b->nbuckets; i++) {
        bus_lane *l = b->buckets[i];
        while (l != NULL) {
            bus_lane *next = l->hnext;
            free(l);
            l = next;
        }
    }
    free(b->buckets);
    for (size_t i = 0; i < b->ngbuckets; i++) {
        bus_group *g = b->gbuckets[i];
        while (g != NULL) {
            bus_group *next = g->hnext;
            free(g);
            g = next;
        }
    }
    free(b->gbuckets);
    while (b->free_groups != NULL) {
        bus_group *next = b->free_groups->hnext;
        free(b->free_groups);
        b->free_groups = next;
    }
    while (b->free_lanes != NULL) {
        bus_lane *next = b->free_lanes->rnext;
        free(b->free_lanes);
        b->free_lanes = next;
    }
    bus_msg *lists[3] = {atomic_load(&b->intake), atomic_load(&b->returned), b->stash};
    for (int i = 0; i < 3; i++) {
        while (lists[i] != NULL) {
            bus_msg *next = lists[i]->next;
            free(lists[i]);
            lists[i] = next;
        }
    }
    bus_sub *s = atomic_load(&b->subs);
    while (s != NULL) {
        bus_sub *next = atomic_load(&s->next);
        free(s);
        s = next;
    }
    free(b->threads);
    for (int i = 0; b->waited != NULL && i < b->nworkers + BUS_SPARES_MAX; i++)
        free(b->waited[i].on); /* all NULL once every handler ended */
    free(b->waited);
    pthread_cond_destroy(&b->idle_cv);
    pthread_cond_destroy(&b->work_cv);
    pthread_mutex_destroy(&b->send_mu);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static void bus_stop(ah_bus *b)
{
    pthread_mutex_lock(&b->mu);
    atomic_store(&b->stopping, true); /* no spare starts from now on */
    pthread_cond_broadcast(&b->work_cv);
    int n = atomic_load_explicit(&b->nthreads, memory_order_relaxed);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < n; i++)
        pthread_join(b->threads[i], NULL);
}

ah_bus *ah_bus_new(const ah_bus_opts *opts)
{
    if (opts == NULL || opts->workers < 1 || opts->workers > BUS_WORKERS_MAX)
        return NULL;
    /* Aligned: the members senders touch are on cache lines of their own. */
    ah_bus *b = aligned_alloc(_Alignof(ah_bus), sizeof *b);
    if (b == NULL)
        return NULL;
    memset(b, 0, sizeof *b);
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b);
        return NULL;
    }
    if (pthread_cond_init(&b->work_cv, NULL) != 0) {
        pthread_mutex_destroy(&b->mu);
        free(b);
        return NULL;
    }
    if (pthread_cond_init(&b->idle_cv, NULL) != 0) {
        pthread_cond_destroy(&b->work_cv);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return NULL;
    }
    if (pthread_mutex_init(&b->send_mu, NULL) != 0) {
        pthread_cond_destroy(&b->idle_cv);
        pthread_cond_destroy(&b->work_cv);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return NULL;
    }
    atomic_init(&b->intake, NULL);
    atomic_init(&b->returned, NULL);
    atomic_init(&b->admitted, 0);
    atomic_init(&b->nnodes, 0);
    atomic_init(&b->stopping, false);
    atomic_init(&b->idle, 0);
    atomic_init(&b->blocked, 0);
    atomic_init(&b->drain_waiters, 0);
    atomic_init(&b->subs, NULL);
    atomic_init(&b->runnable, 0);
    b->handler = opts->handler;
    b->handler_arg = opts->handler_arg;
    b->default_timeout_ms =
        opts->default_timeout_ms > 0 ? opts->default_timeout_ms : BUS_DEFAULT_TIMEOUT_MS;
    b->max_queue = opts->max_queue != 0 ? opts->max_queue : 1UL << 20;
    b->max_queue_tenant = opts->max_queue_tenant != 0 ? opts->max_queue_tenant : 4096;
    corr_prefix_init(b);
    b->share = opts->tenant_share > 0 ? opts->tenant_share
                                      : (opts->workers / 2 > 1 ? opts->workers / 2 : 1);
    b->nbuckets = BUS_BUCKETS_MIN;
    b->buckets = calloc(b->nbuckets, sizeof *b->buckets);
    b->ngbuckets = BUS_BUCKETS_MIN;
    b->gbuckets = calloc(b->ngbuckets, sizeof *b->gbuckets);
    b->threads = calloc((size_t)opts->workers + BUS_SPARES_MAX, sizeof *b->threads);
    b->waited = calloc((size_t)opts->workers + BUS_SPARES_MAX, sizeof *b->waited);
    b->provider_threads = opts->provider_threads > 0 ? opts->provider_threads : 0;
    b->block_hooks = (ah_block_hooks){bus_block_begin, bus_block_end, b, bus_deadline};
    atomic_init(&b->nthreads, 0);
    if (b->buckets == NULL || b->gbuckets == NULL || b->threads == NULL || b->waited == NULL) {
        bus_destroy(b);
        return NULL;
    }
    b->nworkers = opts->workers;
    for (int i = 0; i < opts->workers; i++) {
        if (pthread_create(&b->threads[i], NULL, bus_worker, b) != 0) {
            bus_stop(b);
            bus_destroy(b);
            return NULL;
        }
        atomic_store_explicit(&b->nthreads, i + 1, memory_order_release);
    }
    return b;
}

void ah_bus_free(ah_bus *bus)
{
    if (bus == NULL)
        return;
    /* Workers leave only once the run queue is empty, so joining them
     * drains everything queued; synchronous callers who send from now on
     * get "shutting_down". */
    bus_stop(bus);
    bus_destroy(bus);
}
