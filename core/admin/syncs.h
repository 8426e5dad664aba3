/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Syncs the operators start from the admin API (the console's "sync now"):
 * each runs ah_sync_run on a thread of its own, and its progress (pages,
 * records, retries per type, as each page commits), its end and its error
 * are kept per connection for GET /admin/syncs.
 *
 *   GET  /admin/syncs[?tenant=T]          every connection with its last and
 *                                         running sync as this daemon saw them
 *   POST /admin/syncs/{tenant}/{name}     {"type"?}: start one now (202)
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef AH_SYNCS_H
#define AH_SYNCS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "ops.h"
#include "sync.h"

typedef struct ah_core ah_core;
typedef struct ah_syncs ah_syncs;

/** NULL when out of memory. */
ah_syncs *ah_syncs_new(void);
/** The table's size (default 4096 connections): when it is full, the
 *  least recently started or observed entry without a run under way makes
 *  room. For tests. */
void ah_syncs_set_max(ah_syncs *s, size_t max);
/** Ends the runs under way (the sync engine stops them after their current
 *  page: ah_sync_scheduler_stop), joins their threads and frees s. NULL-safe. */
void ah_syncs_free(ah_syncs *s, ah_core *core);

/** The scheduler's observer (ah_sync_set_observer; arg: the ah_syncs): keeps
 *  the latest scheduled run of each type per connection. */
void ah_syncs_observe(void *arg, const char *tenant, const char *connection, const char *type,
                      const ah_sync_stats *st);

/** Starts a sync of tenant/name (type NULL: every type its plugin streams)
 *  on a new (detached) thread. 0, or -1 with e: not_found (no such connection),
 *  connection_disabled (it is disabled: as the REST API answers it),
 *  sync_running (this daemon runs one for it already), invalid_request. */
int ah_syncs_start(ah_syncs *s, ah_core *core, const char *tenant, const char *name,
                   const char *type, ah_ops_err *e);

/** Forgets what this daemon keeps of tenant/name's runs (name NULL: of
 *  every connection of the tenant), once removed; a run still under way
 *  keeps its entry. ah_syncs_list drops the entries of connections removed
 *  elsewhere that its page spans. */
void ah_syncs_forget(ah_syncs *s, const char *tenant, const char *name);

/** *out = [{"tenant","connection","plugin","enabled","schedule_interval_s",
 *  "next_pass" (when this instance's scheduler next passes over the enabled
 *  connections; null without a schedule or when another instance leads it),
 *  "running", "last": {"started_at","finished_at"?,"ok"?,"error"?,"pages",
 *  "records","created","updated","unchanged","retries","seconds",
 *  "types":[{"type","pages","records",...,"done","failed"}]} | null,
 *  "scheduled": {"updated_at","running","ok", the same counters and
 *  "types"} | null (the scheduler's latest run of each type)}].
 *  tenant NULL: every tenant. page: as ah_ops_connection_list's (NULL:
 *  every connection). 0, or -1 with e. */
int ah_syncs_list(ah_syncs *s, ah_core *core, const char *tenant, ah_ops_page *page,
                  cJSON **out, ah_ops_err *e);

#endif
