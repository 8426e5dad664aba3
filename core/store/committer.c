/* SPDX-License-Identifier: Apache-2.0 */
/* Group commit: the committer thread (committer.h). */
#include "committer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "log.h"

/* The first room for failed group ids (struct ah_store_committer, failed):
 * failures are rare; the record grows when they are not. */
#define FAILED_FIRST 64

/* Before it commits, the committer lets the group grow: it waits while a
 * request that entered (ah_store_committer_enter) has not yet handed over
 * its callback, at most MAX_WAIT_US after the first one waiting, and then
 * until none arrived for QUIET_US. A commit costs about the same for one
 * request as for fifty (the pages every request touches: index right
 * edges, the log's and the outbox's last pages), so under load a group
 * holds many requests. Not every request in flight, though: with a cap of
 * 2 ms, 32 clients of one source moved in lock-step (each group waited for
 * the last of them to pass the source's lock, ~28 x 42 us, while the
 * requests answered first sat idle), the store's lock held 47% of the
 * time; 1 ms overlaps one group's commit and answers with the next one's
 * requests: +11% ERP creates a second, a lower p99 (bench/README.md). An
 * engine may ask for a longer MAX_WAIT_US (ah_store_ops.group_max_wait_us). */
#define QUIET_US 50L
#define MAX_WAIT_US 1000L
/* Under steady load a group is cut by MAX_WAIT_US, not by a quiet moment:
 * requests keep coming. Watching for the quiet moment costs a wake-up each
 * time the count of requests on their way falls to 0, and one source's
 * creates pass its call lock one at a time, so it fell to 0 after every
 * create: 0.65 wake-ups and 19 us of the committer's CPU a create under the
 * shared wrk script. After a group cut by its deadline the next one sleeps
 * to its deadline instead ("busy"), looking once, BUSY_LOOK_US before it,
 * at the arrivals so far: when none came after that look and no request is
 * on its way, or when no callback waits at all, the load has ended and the
 * next group watches for quiet again (bench/README.md, "Morning of
 * 2026-12-05"). */
#define BUSY_LOOK_US 250L

typedef struct item {
    struct item *next;
    uint64_t group;
    bool ok; /* set when taken off the list: how its group ended */
    uint64_t mark; /* the engine's commit mark once it ended (answerer) */
    ah_store_committed_fn fn;
    void *arg;
} item;

struct ah_store_committer {
    ah_store *store;
    /* The store's group functions, read once at the start: the thread
     * never reads store->ops (a test swaps it for failing calls while the
     * daemon runs). */
    int (*group_commit)(ah_store *s);
    void (*group_answered)(ah_store *s);
    /* An engine whose commits are made durable after they return
     * (store.h, commit_mark): the answerer thread makes each ended group's
     * mark durable, then answers it, while this thread commits the next
     * group. NULL: answered here, as soon as the group ended. */
    uint64_t (*commit_mark)(ah_store *s);
    bool (*durable)(ah_store *s, uint64_t mark);
    void (*defer_durable)(ah_store *s, bool defer);
    pthread_t answerer;
    pthread_cond_t acv;     /* the answerer's: work, or its stop */
    item *ahead, *atail;    /* ended groups' callbacks, to answer in order */
    bool answerer_idle, answerer_stop, answerer_on;
    long max_wait_us;
    const struct ah_logger *lg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    item *head, *tail; /* waiting callbacks, in the order they came */
    uint64_t ended_upto; /* every group <= this one has ended */
    /* The groups that failed, for as long as a request may still ask how
     * its group ended: one on its way (entered) holds a group id it has
     * not handed over yet, a callback on the list one not looked up yet.
     * Forgotten once neither is left (forget_failed_locked); kept in
     * full until then, however many fail meanwhile (a failing disk under
     * load), so that no late request takes a failed group for a committed
     * one. */
    uint64_t *failed;
    size_t nfailed, capfailed;
    bool failed_lost; /* out of memory for the record: see on_ended */
    bool stopping, stopped;
    uint64_t groups, requests;
    uint64_t arrivals; /* callbacks added, ever */
    long entered;      /* requests on their way (enter, not yet leave) */
    bool idle;         /* the thread waits for a first callback */
    bool growing;      /* the thread waits for `entered` to reach 0 */
    bool busy;         /* the last group was cut by its deadline: see BUSY_LOOK_US */
};

static bool failed_locked(const ah_store_committer *c, uint64_t group)
{
    /* Ids are appended in the order groups end, which is their order. */
    size_t lo = 0, hi = c->nfailed;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->failed[mid] < group)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < c->nfailed && c->failed[lo] == group)
        return true;
    /* A failure the record could not hold: every group not known to
     * have committed is then taken as failed ("retry"), never the other
     * way round. */
    return c->failed_lost;
}

/* Nobody can ask about an ended group any more (caller holds mu). */
static void forget_failed_locked(ah_store_committer *c)
{
    if (c->entered <= 0 && c->head == NULL) {
        c->nfailed = 0;
        c->failed_lost = false;
    }
}

/* The store's listener: runs with the engine's lock held, on whichever
 * thread ended the group (the committer, or a store call that had to
 * commit it first). */
static void on_ended(void *arg, uint64_t group, bool ok)
{
    ah_store_committer *c = arg;
    pthread_mutex_lock(&c->mu);
    if (group > c->ended_upto)
        c->ended_upto = group;
    forget_failed_locked(c);
    if (!ok && c->nfailed == c->capfailed) {
        size_t ncap = c->capfailed != 0 ? c->capfailed * 2 : FAILED_FIRST;
        uint64_t *nf = realloc(c->failed, ncap * sizeof *nf);
        if (nf != NULL) {
            c->failed = nf;
            c->capfailed = ncap;
        }
    }
    if (!ok && c->nfailed < c->capfailed)
        c->failed[c->nfailed++] = group;
    else if (!ok)
        c->failed_lost = true;
    c->groups++;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (!ok)
        ah_log(c->lg, AH_LOG_ERROR, "store",
               "a group transaction could not be committed: its requests are answered as failed");
}

/* Takes the callbacks whose group has ended off the list (caller holds mu). */
static item *take_ready_locked(ah_store_committer *c, bool *more)
{
    item *ready = NULL, **rt = &ready, *keep = NULL, **kt = &keep, *last = NULL;
    for (item *it = c->head, *next; it != NULL; it = next) {
        next = it->next;
        it->next = NULL;
        if (it->group <= c->ended_upto) {
            it->ok = !failed_locked(c, it->group);
            *rt = it;
            rt = &it->next;
        } else {
            *kt = it;
            kt = &it->next;
            last = it;
        }
    }
    c->head = keep;
    c->tail = last;
    *more = keep != NULL;
    return ready;
}

static void run_ready(ah_store_committer *c, item *ready)
{
    /* Counted before they run (a stats reader that sees a callback's
     * effect sees it counted), in one take of mu, not one a request: mu
     * is what every request's enter, add and leave take too. */
    uint64_t n = 0;
    for (item *it = ready; it != NULL; it = it->next)
        n++;
    if (n > 0) {
        pthread_mutex_lock(&c->mu);
        c->requests += n;
        pthread_mutex_unlock(&c->mu);
    }
    while (ready != NULL) {
        item *it = ready;
        ready = it->next;
        it->fn(it->arg, it->ok);
        free(it);
    }
}

/* Answers the callbacks of ended groups, then lets the engine do what it
 * held back so that the answers did not wait for it. */
static void answer(ah_store_committer *c, item *ready)
{
    run_ready(c, ready);
    if (c->group_answered != NULL)
        c->group_answered(c->store);
}

/* Queues ended groups' callbacks for the answerer (caller holds mu). */
static void to_answerer_locked(ah_store_committer *c, item *ready, uint64_t mark)
{
    item *last = ready;
    for (item *it = ready; it != NULL; it = it->next) {
        it->mark = mark;
        last = it;
    }
    if (c->atail != NULL)
        c->atail->next = ready;
    else
        c->ahead = ready;
    c->atail = last;
    if (c->answerer_idle)
        pthread_cond_signal(&c->acv);
}

/* The answerer: makes each ended group's commit durable (one sync for all
 * that ended meanwhile), then answers its requests, in order. */
static void *answerer_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-answer"); /* top -H, perf */
    ah_store_committer *c = arg;
    /* Not a deferring thread: a callback may reach the store (an
     * idempotency key's outcome written inline), and what it writes
     * must be durable before it is answered, as on any thread. */
    pthread_mutex_lock(&c->mu);
    for (;;) {
        c->answerer_idle = true;
        while (c->ahead == NULL && !c->answerer_stop)
            pthread_cond_wait(&c->acv, &c->mu);
        c->answerer_idle = false;
        if (c->ahead == NULL)
            break; /* stopped, and nothing is left to answer */
        item *ready = c->ahead;
        c->ahead = c->atail = NULL;
        pthread_mutex_unlock(&c->mu);
        uint64_t mark = 0;
        for (item *it = ready; it != NULL; it = it->next)
            if (it->mark > mark)
                mark = it->mark;
        /* Not durable (a failed sync): committed, but never acknowledged. */
        if (!c->durable(c->store, mark))
            for (item *it = ready; it != NULL; it = it->next)
                it->ok = false;
        answer(c, ready);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* now + us on CLOCK_MONOTONIC (the condition variable's clock). */
static struct timespec mono_after(long us)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += us / 1000000L;
    t.tv_nsec += (us % 1000000L) * 1000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static bool before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Sleeps until `until`, a stop, or the end of group `ended` elsewhere
 * (caller holds mu). false when it returned for one of the last two. */
static bool sleep_until(ah_store_committer *c, const struct timespec *until, uint64_t ended)
{
    int rc = 0;
    while (rc == 0 && !c->stopping && c->ended_upto == ended)
        rc = pthread_cond_timedwait(&c->cv, &c->mu, until);
    return !c->stopping && c->ended_upto == ended;
}

/* Lets the open group grow (caller holds mu): waits until every request
 * that entered has handed over its callback and none arrived for QUIET_US,
 * at most MAX_WAIT_US, or until the group ended elsewhere. Arrivals do not
 * wake the thread meanwhile (a wake-up per request cost more CPU than the
 * commit it shares); the last request to leave does, once. Busy (see
 * BUSY_LOOK_US), it waits out MAX_WAIT_US instead. Returns whether the
 * group grew until its deadline with requests still coming. */
static bool let_group_grow(ah_store_committer *c)
{
    long max_wait = c->max_wait_us;
    if (max_wait <= 0)
        max_wait = MAX_WAIT_US;
    struct timespec deadline = mono_after(max_wait);
    uint64_t ended = c->ended_upto;
    if (c->busy) {
        struct timespec look = mono_after(max_wait > BUSY_LOOK_US ? max_wait - BUSY_LOOK_US : 0);
        if (!sleep_until(c, &look, ended))
            return false;
        uint64_t seen = c->arrivals;
        if (!sleep_until(c, &deadline, ended))
            return false;
        return c->arrivals != seen || c->entered > 0;
    }
    for (;;) {
        c->growing = true;
        int rc = 0;
        while (c->entered > 0 && !c->stopping && c->ended_upto == ended && rc == 0)
            rc = pthread_cond_timedwait(&c->cv, &c->mu, &deadline);
        c->growing = false;
        if (c->stopping || c->ended_upto != ended)
            return false; /* a stop, or the group ended elsewhere */
        if (rc != 0)
            return true; /* the deadline, requests still on their way */
        /* Everyone who entered has handed over: a quiet moment for the
         * next to come, unless the deadline is nearer. */
        uint64_t seen = c->arrivals;
        struct timespec quiet = mono_after(QUIET_US);
        if (before(&deadline, &quiet))
            quiet = deadline;
        while (!c->stopping && pthread_cond_timedwait(&c->cv, &c->mu, &quiet) == 0)
            ;
        if (c->arrivals == seen && c->entered <= 0)
            return false; /* quiet: nobody else is coming soon */
        struct timespec now = mono_after(0);
        if (!before(&now, &deadline))
            return true;
        if (c->stopping)
            return false;
    }
}

static void *committer_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-commit"); /* top -H, perf */
    ah_store_committer *c = arg;
    if (c->answerer_on)
        c->defer_durable(c->store, true); /* the answerer makes its commits durable */
    pthread_mutex_lock(&c->mu);
    for (;;) {
        c->idle = true;
        if (c->head == NULL)
            c->busy = false; /* nothing waits: the load has paused */
        while (c->head == NULL && !c->stopping)
            pthread_cond_wait(&c->cv, &c->mu);
        c->idle = false;
        if (c->head == NULL && c->stopping)
            break;
        bool more = false;
        item *ready = take_ready_locked(c, &more);
        if (ready == NULL && more) {
            /* Someone waits for the open group: let it grow while requests
             * keep arriving, then commit it. While this COMMIT is written,
             * new requests gather in the next group. */
            uint64_t ended = c->ended_upto;
            c->busy = let_group_grow(c);
            if (c->ended_upto == ended) {
                pthread_mutex_unlock(&c->mu);
                (void)c->group_commit(c->store);
                pthread_mutex_lock(&c->mu);
            }
            /* Else a store call ended the group meanwhile (ah_pg_group_begin
             * before waiting for a tenant, a call outside a scope): its
             * answers go out now, not after whatever that call does next
             * with the store's lock held (group_commit would wait for it). */
            ready = take_ready_locked(c, &more);
        }
        if (c->answerer_on) {
            /* Their answers wait for the commit's sync; the next group
             * need not. */
            if (ready != NULL)
                to_answerer_locked(c, ready, c->commit_mark(c->store));
            continue;
        }
        pthread_mutex_unlock(&c->mu);
        answer(c, ready);
        pthread_mutex_lock(&c->mu);
    }
    c->stopped = true;
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Answers what is queued and stops the answerer, if it runs. */
static void stop_answerer(ah_store_committer *c)
{
    if (!c->answerer_on)
        return;
    pthread_mutex_lock(&c->mu);
    c->answerer_stop = true;
    pthread_cond_signal(&c->acv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->answerer, NULL);
    pthread_cond_destroy(&c->acv);
    c->answerer_on = false;
}

ah_store_committer *ah_store_committer_start(ah_store *s, const struct ah_logger *lg, char *err,
                                             size_t errlen)
{
    if (s == NULL || s->ops->group_begin == NULL || s->ops->group_commit == NULL ||
        s->ops->group_listen == NULL) {
        snprintf(err, errlen, "the %s store has no group commit", s != NULL ? s->ops->name : "?");
        return NULL;
    }
    ah_store_committer *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->store = s;
    c->group_commit = s->ops->group_commit;
    c->group_answered = s->ops->group_answered;
    c->max_wait_us = s->ops->group_max_wait_us;
    c->commit_mark = s->ops->commit_mark;
    c->durable = s->ops->durable;
    c->defer_durable = s->ops->defer_durable;
    c->lg = lg;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        snprintf(err, errlen, "cannot create a mutex");
        return NULL;
    }
    bool cv_ok = ah_cond_init_mono(&c->cv) == 0;
    if (!cv_ok) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        snprintf(err, errlen, "cannot create a condition variable");
        return NULL;
    }
    bool deferred = c->commit_mark != NULL && c->durable != NULL && c->defer_durable != NULL;
    if (deferred && ah_cond_init_mono(&c->acv) != 0) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        free(c);
        snprintf(err, errlen, "cannot create a condition variable");
        return NULL;
    }
    if (deferred && pthread_create(&c->answerer, NULL, answerer_main, c) != 0) {
        pthread_cond_destroy(&c->acv);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        free(c);
        snprintf(err, errlen, "cannot start the committer's answerer thread");
        return NULL;
    }
    c->answerer_on = deferred;
    s->ops->group_listen(s, on_ended, c);
    if (pthread_create(&c->thread, NULL, committer_main, c) != 0) {
        s->ops->group_listen(s, NULL, NULL);
        stop_answerer(c);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        free(c);
        snprintf(err, errlen, "cannot start the committer thread");
        return NULL;
    }
    return c;
}

int ah_store_committer_add(ah_store_committer *c, uint64_t group, ah_store_committed_fn fn,
                           void *arg)
{
    if (c == NULL || fn == NULL)
        return -1;
    pthread_mutex_lock(&c->mu);
    if (c->stopped) {
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    bool ended = group <= c->ended_upto;
    if (ended && !c->answerer_on) {
        /* Ended already (a store call committed it first). */
        bool ok = !failed_locked(c, group);
        c->requests++;
        pthread_mutex_unlock(&c->mu);
        fn(arg, ok);
        return 0;
    }
    item *it = malloc(sizeof *it);
    if (it == NULL) {
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    *it = (item){.group = group, .fn = fn, .arg = arg};
    if (ended) {
        /* Ended already, maybe not yet durable: answered by the answerer
         * after the sync, in its turn. */
        it->ok = !failed_locked(c, group);
        to_answerer_locked(c, it, c->commit_mark(c->store));
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    if (c->tail != NULL)
        c->tail->next = it;
    else
        c->head = it;
    c->tail = it;
    c->arrivals++;
    if (c->idle)
        pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int ah_store_committer_outcome(ah_store_committer *c, uint64_t group)
{
    if (c == NULL)
        return -1;
    pthread_mutex_lock(&c->mu);
    int rc = group > c->ended_upto ? -1 : failed_locked(c, group) ? 0 : 1;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void ah_store_committer_enter(ah_store_committer *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->entered++;
    pthread_mutex_unlock(&c->mu);
}

void ah_store_committer_leave(ah_store_committer *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    if (--c->entered <= 0 && c->growing)
        pthread_cond_signal(&c->cv);
    forget_failed_locked(c);
    pthread_mutex_unlock(&c->mu);
}

void ah_store_committer_stop(ah_store_committer *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    /* The answers still queued go out (after their sync). */
    stop_answerer(c);
    /* Whatever was still open (nobody waits for it) is committed now. */
    (void)c->store->ops->group_commit(c->store);
    if (c->store->ops->group_answered != NULL)
        c->store->ops->group_answered(c->store);
    c->store->ops->group_listen(c->store, NULL, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c->failed);
    free(c);
}

void ah_store_committer_stats(ah_store_committer *c, uint64_t *groups, uint64_t *requests)
{
    uint64_t g = 0, r = 0;
    if (c != NULL) {
        pthread_mutex_lock(&c->mu);
        g = c->groups;
        r = c->requests;
        pthread_mutex_unlock(&c->mu);
    }
    if (groups != NULL)
        *groups = g;
    if (requests != NULL)
        *requests = r;
}
