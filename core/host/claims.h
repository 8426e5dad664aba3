/* SPDX-License-Identifier: Apache-2.0 */
/* Claims: work that several instances on one store share (a connection's
 * event deliveries, a webhook endpoint's pass, a bulk job) is claimed as a
 * store lease named after it (store.h lease_claim), owned by this instance
 * (core->instance), expiring on the database's clock. Each piece of the
 * work commits in a fenced scope (ah_claim_begin/ah_claim_end): the
 * claim's token is checked and the claim renewed in the same transaction,
 * so an instance whose claim expired and was taken over cannot commit.
 * Expired claims are reaped by being claimed again by whoever comes next.
 *
 * A core without an instance id (core->instance empty: the CLI's one-shot
 * commands) claims nothing: its claims are granted with token 0 and its
 * scopes are plain calls. */
#ifndef AH_CLAIMS_H
#define AH_CLAIMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ah_core;

/** How long a claim lasts without renewal (milliseconds), unless
 *  [cluster] claim_ms says otherwise (core->cfg). */
#define AH_CLAIM_MS 15000

typedef struct ah_claim {
    char name[64];
    int64_t token; /* 0: nothing claimed (no instance id) */
    bool held;     /* granted and not lost since */
    /* While kept (ah_claim_keep): the keeper's list and last renewal
     * (CLOCK_MONOTONIC ms). Only the keeper touches the claim then. */
    struct ah_claim *kept_next;
    int64_t kept_ms;
    bool renewing; /* the keeper renews it now (outside its lock) */
} ah_claim;

/** The claim lifetime this instance uses (ms). */
int64_t ah_claim_ttl(const struct ah_core *core);

/** Claims n pieces of work at once (one store call, never waiting for a
 *  claim another instance is committing under): c[i].held tells which
 *  were granted. Names must be set. 0, or -1 when the store failed (then
 *  nothing is held). */
int ah_claims_take(struct ah_core *core, ah_claim *c, size_t n);

/** Claims one (name from fmt): true when granted. */
bool ah_claim_take(struct ah_core *core, ah_claim *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Opens the fenced scope of one piece of work: a store scope in which the
 *  claim is checked and renewed. 0: go on, write, then ah_claim_end; -1:
 *  the claim is lost (c->held false; nothing is open: stop the work) or
 *  the store failed (nothing open either). */
int ah_claim_begin(struct ah_core *core, ah_claim *c);
/** Ends the scope: commits (commit true) or rolls back. 0 on success. */
int ah_claim_end(struct ah_core *core, ah_claim *c, bool commit);

/** Renews the claim outside any scope (long work between commits).
 *  false when it is lost. */
bool ah_claim_renew(struct ah_core *core, ah_claim *c);

/** Keeps the claim renewed while its owner waits on one call that can
 *  outlast it (a provider's answer, a webhook's POST): a keeper thread
 *  renews every kept claim each third of its lifetime, so another
 *  instance takes the work over only when this one stops (killed, stopped
 *  past the claim, cut off from the store), not because a call was slow.
 *  The owner leaves the claim alone until ah_claim_unkeep, which returns
 *  once no renewal of it is under way; then c->held says whether it was
 *  lost meanwhile. Without a keeper (not serving, or nothing claimed)
 *  both do nothing. */
void ah_claim_keep(struct ah_core *core, ah_claim *c);
void ah_claim_unkeep(struct ah_core *core, ah_claim *c);

/** The keeper's thread: started by the daemon (when it claims, i.e. has
 *  an instance id), stopped by it; free after the last claim user (the
 *  bus's delivery lanes) is gone. Kept claims are not renewed once the
 *  keeper stops. 0, or -1 with err filled. */
int ah_claims_keeper_start(struct ah_core *core, char *err, size_t errlen);
void ah_claims_keeper_stop(struct ah_core *core);
void ah_claims_keeper_free(struct ah_core *core);

/** Gives the claim back (others may take the work at once). */
void ah_claim_give_back(struct ah_core *core, ah_claim *c);

#endif
