/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Group commit: one writer per store that commits the store's open group
 * transaction (store.h, group_begin) and tells each waiting request how its
 * writes ended.
 *
 * A request opens a group scope, writes, ends the scope (its writes now sit
 * in the group transaction, not yet durable), and hands the committer a
 * callback with the group id it got. The committer lets the open group grow
 * (committer.c): until the requests on their way (enter .. leave) have
 * handed over their callbacks and a short quiet moment passed, at most a
 * cap of about a millisecond (an engine may ask for more); under steady
 * load, to the cap. While one COMMIT is written, the requests that arrive
 * meanwhile gather in the next group, so the cost of a commit is shared by
 * as many requests as arrived around the previous one. Each callback
 * runs once, after the transaction holding its writes committed (ok) or
 * rolled back (not ok), on the committer's thread. Nothing is acknowledged
 * before it is committed. An engine whose commits reach the disk after they
 * return (store.h, commit_mark: SQLite's WAL, synced apart) has them
 * answered by a second thread, the answerer, once durable (ok false when
 * the sync failed): the committer commits the next group meanwhile.
 */
#ifndef AH_STORE_COMMITTER_H
#define AH_STORE_COMMITTER_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

struct ah_logger;
typedef struct ah_store_committer ah_store_committer;

/** Called once the group transaction holding a request's writes ended:
 *  committed (ok; and durable, where the engine syncs apart) or rolled back
 *  (or its sync failed). Runs on the committer's thread, or its answerer's;
 *  must not block for long. */
typedef void (*ah_store_committed_fn)(void *arg, bool ok);

/** Starts the committer of `s` (which must have group_begin; NULL and err
 *  filled otherwise, or when out of resources). It becomes the store's
 *  group listener. */
ah_store_committer *ah_store_committer_start(ah_store *s, const struct ah_logger *lg, char *err,
                                             size_t errlen);
/** Arranges fn(arg, ok) for when the group transaction `group` ends (at
 *  once, on the caller's thread, when it already has). 0, or -1 when out of
 *  memory or stopped: then nothing is called and the caller decides. */
int ah_store_committer_add(ah_store_committer *c, uint64_t group, ah_store_committed_fn fn,
                           void *arg);
/** How group `group` ended: 1 committed, 0 rolled back, -1 not ended yet.
 *  Exact while the asking request is between enter and leave (the
 *  committer keeps failures that long). */
int ah_store_committer_outcome(ah_store_committer *c, uint64_t group);
/** A request that will hand over a callback soon (it is writing): the
 *  committer lets the open group wait for it (briefly) rather than commit
 *  without it. Pair with ah_store_committer_leave, after the add. */
void ah_store_committer_enter(ah_store_committer *c);
void ah_store_committer_leave(ah_store_committer *c);
/** Commits what is open, runs every callback still waiting, stops the
 *  thread and frees. NULL is a no-op. */
void ah_store_committer_stop(ah_store_committer *c);

/** Counters for benchmarks and /metrics: group transactions ended and the
 *  requests they held. */
void ah_store_committer_stats(ah_store_committer *c, uint64_t *groups, uint64_t *requests);

#endif
