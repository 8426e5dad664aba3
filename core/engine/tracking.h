/* SPDX-License-Identifier: Apache-2.0 */
/* Deletions flagged by full syncs and the stage history of applications
 * (tracking.c). */
#ifndef AH_TRACKING_H
#define AH_TRACKING_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"

/* --- deletions and stage history (tracking.c) ----------------------------- */

/** A set of record ids seen during a full sync, and when it began. */
typedef struct ah_seen ah_seen;
/** Made when the run begins, before its first page is asked for: it
 *  notes the time (ah_now_iso). NULL when out of memory. */
ah_seen *ah_seen_new(void);
void ah_seen_free(ah_seen *s);
/** Adds an atshub record id (copied). */
void ah_seen_add(ah_seen *s, const char *id);
/** After a complete full sync of `type` ("application", ...) on c: flags
 *  the connection's records of that type not in seen and stored before
 *  seen began (a record stored meanwhile, by record_put or an inbound
 *  write, is not one the run could have read) with remote_deleted_at
 *  (publishing event.<type>.deleted for each) and clears the flag of seen
 *  ones that had it. Returns how many were flagged. */
long ah_tracking_sweep(ah_core *core, const ah_conn *c, const char *type, const ah_seen *seen);
/** The remote ids a sync run has committed so far, in a filter of fixed
 *  size (a Bloom filter, 256 KiB): "maybe" for every id added, seldom for
 *  another (then a look-up finds nothing); its memory does not grow with
 *  the run. */
typedef struct ah_run_ids ah_run_ids;
/** NULL when out of memory. */
ah_run_ids *ah_run_ids_new(void);
void ah_run_ids_free(ah_run_ids *f);
void ah_run_ids_add(ah_run_ids *f, const char *remote_id);
/** Whether remote_id may have been added: false means it was not. */
bool ah_run_ids_maybe(const ah_run_ids *f, const char *remote_id);
/** Whether ah_tracking_stage_changes looks at records of `type` ("application"). */
bool ah_tracking_tracks(const char *type);
/** Records stage changes of a page of records before it is upserted:
 *  for each application whose stored fields.stage_id differs from the
 *  incoming one, a stage_history row. in/n as for records_upsert. `fresh`:
 *  NULL, or (a run that began with none of the page's type stored) the
 *  ids the run has committed: only those can be stored, the others are not
 *  looked up (a first sync of applications looked up each, and found none:
 *  a tenth of its commits' time). */
void ah_tracking_stage_changes(ah_core *core, const ah_conn *c, const ah_record_in *in,
                               size_t n, const ah_run_ids *fresh);
/** True when the record is flagged remote_deleted_at. */
bool ah_record_deleted(ah_core *core, const char *record_id);
/** Application record ids whose stage changed after `after` (canonical
 *  ISO time), as a JSON array of [record_id, last_changed_at] rows, oldest
 *  change first, at most limit. NULL on error. */
cJSON *ah_stage_changed_since(ah_core *core, int64_t tenant_id, const char *after, int limit);
/** A record's stage transitions, oldest first: [{"from_stage","to_stage",
 *  "changed_at"}]. NULL on error. */
cJSON *ah_stage_history(ah_core *core, const char *record_id);
/** Forgets a connection's sync cursor for type ("jobs", ...; NULL: all),
 *  so the next run is a full sync. 0 or -1. */
int ah_sync_reset_cursor(ah_core *core, int64_t conn_id, const char *type);

#endif
