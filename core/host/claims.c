/* SPDX-License-Identifier: Apache-2.0 */
/* Claims of shared work as store leases (claims.h). */
#include "claims.h"

#include "clock.h"
#include "core.h"
#include "log.h"
#include "store.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t ah_claim_ttl(const ah_core *core)
{
    return core->cfg.claim_ms > 0 ? core->cfg.claim_ms : AH_CLAIM_MS;
}

static bool claiming(const ah_core *core)
{
    return core->instance[0] != '\0' && core->store->ops->lease_claim != NULL;
}

int ah_claims_take(ah_core *core, ah_claim *c, size_t n)
{
    if (n == 0)
        return 0;
    if (!claiming(core)) {
        for (size_t i = 0; i < n; i++) {
            c[i].token = 0;
            c[i].held = true;
        }
        return 0;
    }
    const char **names = calloc(n, sizeof *names);
    int64_t *tok = calloc(n, sizeof *tok);
    int rc = -1;
    if (names != NULL && tok != NULL) {
        for (size_t i = 0; i < n; i++)
            names[i] = c[i].name;
        rc = core->store->ops->lease_claim(core->store, names, n, core->instance,
                                           ah_claim_ttl(core), tok) == AH_STORE_OK
                 ? 0
                 : -1;
    }
    for (size_t i = 0; i < n; i++) {
        c[i].token = rc == 0 ? tok[i] : 0;
        c[i].held = rc == 0 && tok[i] > 0;
    }
    free(names);
    free(tok);
    return rc;
}

bool ah_claim_take(ah_core *core, ah_claim *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->name, sizeof c->name, fmt, ap);
    va_end(ap);
    return ah_claims_take(core, c, 1) == 0 && c->held;
}

int ah_claim_begin(ah_core *core, ah_claim *c)
{
    if (!c->held)
        return -1;
    if (c->token == 0)
        return 0;
    ah_store *s = core->store;
    if (s->ops->scope_begin(s) != AH_STORE_OK)
        return -1;
    int rc = s->ops->lease_hold(s, c->name, c->token, ah_claim_ttl(core));
    if (rc == AH_STORE_OK)
        return 0;
    s->ops->scope_end(s, false);
    if (rc == AH_STORE_NOT_FOUND) {
        c->held = false;
        ah_log(&core->log, AH_LOG_WARN, "claims",
               "%s: this instance's claim expired and may have been taken over; "
               "its work stops here uncommitted", c->name);
    }
    return -1;
}

int ah_claim_end(ah_core *core, ah_claim *c, bool commit)
{
    if (c->token == 0)
        return 0;
    return core->store->ops->scope_end(core->store, commit) == AH_STORE_OK ? 0 : -1;
}

bool ah_claim_renew(ah_core *core, ah_claim *c)
{
    if (!c->held || c->token == 0)
        return c->held;
    int rc = core->store->ops->lease_hold(core->store, c->name, c->token, ah_claim_ttl(core));
    if (rc == AH_STORE_NOT_FOUND)
        c->held = false;
    return c->held;
}

void ah_claim_give_back(ah_core *core, ah_claim *c)
{
    if (c->held && c->token != 0)
        (void)core->store->ops->lease_release(core->store, c->name, c->token);
    c->held = false;
}

/* The keeper: one thread renewing the claims whose owners wait on a call
 * (ah_claim_keep). It renews outside `mu` (a store call may take long: a
 * slow database, the writer held by an atomic route), marking the claims it
 * renews; an owner's unkeep waits until its claim is no longer marked. */
struct ah_claims_keeper {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* CLOCK_MONOTONIC: a claim kept into an empty list, or the stop */
    pthread_cond_t done; /* a renewal pass ended */
    ah_claim *kept;      /* a list through kept_next */
    pthread_t thread;
    bool running, stopping;
};

/* At most this many claims renewed in one pass (the rest in the next). */
#define KEEPER_BATCH 32

void ah_claim_keep(ah_core *core, ah_claim *c)
{
    struct ah_claims_keeper *k = core->keeper;
    if (k == NULL || !c->held || c->token == 0)
        return;
    pthread_mutex_lock(&k->mu);
    c->kept_ms = ah_mono_ms();
    c->renewing = false;
    c->kept_next = k->kept;
    /* Claims already kept are due sooner: the keeper's wait stands unless
     * it waits for a first one. */
    if (k->kept == NULL)
        pthread_cond_signal(&k->cv);
    k->kept = c;
    pthread_mutex_unlock(&k->mu);
}

void ah_claim_unkeep(ah_core *core, ah_claim *c)
{
    struct ah_claims_keeper *k = core->keeper;
    if (k == NULL)
        return;
    pthread_mutex_lock(&k->mu);
    for (ah_claim **p = &k->kept; *p != NULL; p = &(*p)->kept_next)
        if (*p == c) {
            *p = c->kept_next;
            break;
        }
    c->kept_next = NULL;
    while (c->renewing)
        pthread_cond_wait(&k->done, &k->mu);
    pthread_mutex_unlock(&k->mu);
}

/* Waits on k->cv until `until` (CLOCK_MONOTONIC ms) or a signal; mu held. */
static void keeper_wait(struct ah_claims_keeper *k, int64_t until)
{
    int64_t wait = until - ah_mono_ms();
    if (wait < 1)
        wait = 1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(wait / 1000);
    ts.tv_nsec += (long)(wait % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    (void)pthread_cond_timedwait(&k->cv, &k->mu, &ts);
}

static void *keeper_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-claims"); /* top -H, perf */
    ah_core *core = arg;
    struct ah_claims_keeper *k = core->keeper;
    int64_t every = ah_claim_ttl(core) / 3;
    pthread_mutex_lock(&k->mu);
    while (!k->stopping) {
        if (k->kept == NULL) {
            pthread_cond_wait(&k->cv, &k->mu);
            continue;
        }
        int64_t now = ah_mono_ms(), next = now + every;
        ah_claim *due[KEEPER_BATCH];
        size_t n = 0;
        for (ah_claim *c = k->kept; c != NULL; c = c->kept_next) {
            if (!c->held)
                continue;
            if (now - c->kept_ms >= every && n < KEEPER_BATCH) {
                c->renewing = true;
                due[n++] = c;
            } else if (c->kept_ms + every < next) {
                next = c->kept_ms + every;
            }
        }
        if (n == 0) {
            keeper_wait(k, next);
            continue;
        }
        pthread_mutex_unlock(&k->mu);
        /* Their owners leave them alone until unkeep, which waits for
         * this pass: name, token and held are the keeper's meanwhile. */
        for (size_t i = 0; i < n; i++)
            if (!ah_claim_renew(core, due[i]))
                /* Lost: its owner finds held false after unkeep and
                 * commits nothing (the fence would refuse it anyway). */
                ah_log(&core->log, AH_LOG_WARN, "claims",
                       "%s: lost while its call was under way (the store refused the "
                       "renewal); its outcome will not be stored here", due[i]->name);
        pthread_mutex_lock(&k->mu);
        now = ah_mono_ms();
        for (size_t i = 0; i < n; i++) {
            due[i]->kept_ms = now;
            due[i]->renewing = false;
        }
        pthread_cond_broadcast(&k->done);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int ah_claims_keeper_start(ah_core *core, char *err, size_t errlen)
{
    if (core->keeper != NULL || !claiming(core))
        return 0;
    struct ah_claims_keeper *k = calloc(1, sizeof *k);
    bool cv = false;
    if (k != NULL && pthread_mutex_init(&k->mu, NULL) == 0) {
        cv = ah_cond_init_mono(&k->cv) == 0;
        if (cv && pthread_cond_init(&k->done, NULL) != 0) {
            pthread_cond_destroy(&k->cv);
            cv = false;
        }
        if (!cv)
            pthread_mutex_destroy(&k->mu);
    }
    if (!cv) {
        free(k);
        snprintf(err, errlen, "cannot start the claims' keeper (out of memory)");
        return -1;
    }
    core->keeper = k;
    if (pthread_create(&k->thread, NULL, keeper_main, core) != 0) {
        ah_claims_keeper_free(core);
        snprintf(err, errlen, "cannot start the claims' keeper thread");
        return -1;
    }
    k->running = true;
    return 0;
}

void ah_claims_keeper_stop(ah_core *core)
{
    struct ah_claims_keeper *k = core->keeper;
    if (k == NULL || !k->running)
        return;
    pthread_mutex_lock(&k->mu);
    k->stopping = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    k->running = false;
}

void ah_claims_keeper_free(ah_core *core)
{
    struct ah_claims_keeper *k = core->keeper;
    if (k == NULL)
        return;
    ah_claims_keeper_stop(core);
    core->keeper = NULL;
    pthread_cond_destroy(&k->done);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}
