/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sync engine: streams a connection's records from its plugin into the
 * store, one page and its cursor per transaction, and publishes change
 * events for what really changed. Runs on demand (ah_sync_run: `atshub
 * sync`, the admin API) and on a schedule (a thread of the core).
 *
 * Cursor: one store cursor per (connection, type), key "sync.<type>"
 * ("sync.jobs"), whose value is the JSON text
 *   {"updated_after": T|null, "page_cursor": S|null, "run_max": T|null}
 * where T are provider times exactly as the provider writes them. A run
 * starts from updated_after (and page_cursor when a previous run stopped
 * mid-way), commits each page with the cursor that follows it, and at its
 * end sets updated_after to the newest updated_at it saw minus the plugin's
 * streaming->backfill_hours (never moving it backwards).
 *
 * Faults: a page whose reply is upstream_unavailable, upstream_error,
 * timeout, overloaded, connection_unavailable, plugin_crashed or
 * plugin_unavailable (an isolated plugin's process crashed mid-run and
 * restarts) is asked again (exponential
 * backoff from [outbound] backoff_ms, capped at backoff_max_ms, at most
 * AH_SYNC_PAGE_ATTEMPTS attempts); any other error, a store failure or the
 * core stopping ends the run, leaving the cursor where the last committed
 * page put it.
 */
#ifndef AH_SYNC_H
#define AH_SYNC_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ah_core ah_core;

/** Attempts per page before a retryable failure ends the run. */
#define AH_SYNC_PAGE_ATTEMPTS 8

/** Results of ah_sync_run (negative: failure). */
#define AH_SYNC_OK 0
#define AH_SYNC_FAILED (-1)      /* provider, plugin or store failure; cursor kept */
#define AH_SYNC_NOT_FOUND (-2)   /* no such tenant/connection */
#define AH_SYNC_RUNNING (-3)     /* a run of that connection (any type) is under way */
#define AH_SYNC_INVALID (-4)     /* unknown type, or the plugin does not stream it */
#define AH_SYNC_STOPPED (-5)     /* the core is stopping (ah_core_stop) */

/** Counters of one run of one type (or summed over types). */
typedef struct ah_sync_stats {
    long pages;     /* pages committed */
    long records;   /* records in those pages */
    long created;
    long updated;
    long unchanged;
    long retries;   /* page requests asked again after a retryable failure */
    double seconds; /* wall time so far */
    bool done;      /* the type's run ended (ok or not): the last callback */
    bool failed;    /* with done: it ended in failure */
    char last_cursor[256]; /* page cursor committed last ("" when none) */
} ah_sync_stats;

/** Progress callback: runs on the syncing thread after each committed page
 *  of `type` ("jobs", ...) with that type's counters, and once more with
 *  s->done set when the type's run ends. `s` is borrowed. It may call
 *  ah_sync_run (another run, or the same one: that one answers
 *  AH_SYNC_RUNNING) but must be quick. */
typedef void (*ah_sync_progress)(void *arg, const char *type, const ah_sync_stats *s);

/** Engine state kept in ah_core (running keys, scheduler). Opaque. */
typedef struct ah_sync ah_sync;

/** Creates the engine state (ah_core_open). NULL on out of memory. */
ah_sync *ah_sync_new(void);
/** Frees it; the scheduler must be stopped. NULL is fine. */
void ah_sync_free(ah_sync *s);

/**
 * Syncs `type` ("jobs", "applications", "candidates"; NULL: every type the
 * connection's plugin streams, in that order, stopping at the first
 * failure) of tenant/connection. Blocks until done; needs the core's bus.
 * Any thread but a bus worker may call it. `cb` (may be NULL) reports
 * progress; `total` (may be NULL) receives the counters summed over types.
 * Returns AH_SYNC_OK or a negative AH_SYNC_* with err filled ("jobs:
 * upstream_error: ...; the cursor was kept at the last committed page").
 */
int ah_sync_run(ah_core *core, const char *tenant, const char *connection,
                const char *type, ah_sync_progress cb, void *arg,
                ah_sync_stats *total, char *err, size_t errlen);

/** A stable error code for an ah_sync_run result ("ok", "sync_failed",
 *  "not_found", "sync_running", "invalid_request", "shutting_down"). */
const char *ah_sync_code(int rc);
/** This instance's name as the owner of sync leases (host:pid:random). */
const char *ah_sync_owner(const ah_sync *s);

/** The store lease that the schedule leader holds: scheduled passes run
 *  only on the instance that holds it (runs asked for by the API or the
 *  CLI run wherever they are asked). */
#define AH_SCHED_LEASE "schedule-leader"

/** Whether this instance leads the schedule now (its scheduler holds
 *  AH_SCHED_LEASE). */
bool ah_sync_is_leader(ah_sync *s);

/** When this instance's scheduler starts its next pass over every enabled
 *  connection (ISO-8601 UTC into out; a pass under way or due: now). -1
 *  when there is none to tell: no schedule, not the leader, stopping. */
int ah_sync_next_pass(ah_sync *s, char out[32]);

/** Watches the scheduler's runs (the admin API's sync table): called as
 *  ah_sync_progress is, on the pass thread, with the connection named.
 *  Set it before ah_sync_scheduler_start and clear it (NULL) only after
 *  ah_sync_scheduler_stop: it is read without a lock. */
typedef void (*ah_sync_observer)(void *arg, const char *tenant, const char *connection,
                                 const char *type, const ah_sync_stats *s);
void ah_sync_set_observer(ah_sync *s, ah_sync_observer fn, void *arg);

/** True for the three type names ah_sync_run takes. */
bool ah_sync_type_valid(const char *type);

/** Starts the scheduler thread when cfg.sync_interval_s > 0 (else does
 *  nothing): a pass right away, then one every interval, syncing every
 *  type of every enabled connection whose plugin streams, one at a time.
 *  Called by ah_core_start. 0, or -1 with err. */
int ah_sync_scheduler_start(ah_core *core, char *err, size_t errlen);
/** Stops the scheduler promptly (a run under way ends after its current
 *  page request with AH_SYNC_STOPPED, cursor kept) and joins it; runs on
 *  other threads end the same way. Idempotent. Called by ah_core_stop. */
void ah_sync_scheduler_stop(ah_core *core);

/* Provider times (exposed for tests). A provider time is
 * "YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm|-hh:mm]" ('T' or ' '). */

/** Compares two provider times by the instant they name (a time without an
 *  offset counts as UTC). Sets *cmp to <0, 0 or >0; -1 when either is not
 *  a provider time. */
int ah_sync_time_cmp(const char *a, const char *b, int *cmp);
/** Writes `t` minus `hours` in t's own style (same separator, fraction
 *  digits and offset; none when t has none) into out. 0, or -1 when t is
 *  not a provider time or out is too small. */
int ah_sync_time_minus_hours(const char *t, unsigned hours, char *out, size_t outlen);

#endif
