/* SPDX-License-Identifier: Apache-2.0 */
/* Bulk jobs: many writes as one job, run item by item within the connection's rate budget (bulk.c). */
#ifndef AH_BULK_H
#define AH_BULK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

/* --- the worker ---------------------------------------------------------- */

/** The bulk worker's state, kept in the host context (core->bulk). */
typedef struct ah_bulk ah_bulk;

/** Creates / frees the state (ah_daemon_open / ah_daemon_close); NULL when
 *  out of memory. Free after ah_bulk_stop. */
ah_bulk *ah_bulk_new(void);
void ah_bulk_free(ah_bulk *b);
/** Starts the worker thread (ah_daemon_start), which resumes jobs left
 *  queued or running by a previous process; a no-op without a bus. 0, or
 *  -1 with err. */
int ah_bulk_start(ah_core *core, char *err, size_t errlen);
/** Stops the worker after the item it is running (ah_daemon_stop). */
void ah_bulk_stop(ah_core *core);

/* --- jobs ----------------------------------------------------------------- */


/** Validates a bulk request's body on `ex` (application_ids and reason_id
 *  for action "reject", stage_id for "stage"), stores the job and its items
 *  and answers 202 {"data":{"id":"bulk_...","status":"queued"}} (or an
 *  error). The caller authenticated tenant_id. */
void ah_bulk_submit(ah_core *core, ah_http_exchange *ex, int64_t tenant_id, const char *action);
/** What ah_bulk_submit does before it answers: validates the body, stores
 *  the job (queued) and wakes the worker. 0 with the job's id in `id` and
 *  its item count in *total, or -1 after answering the error on ex. */
int ah_bulk_create(ah_core *core, ah_http_exchange *ex, int64_t tenant_id, const char *action,
                   char id[32], int *total);
/** Waits until the job reaches a final status ("done" or "failed"), the
 *  worker stops (or is not running), or timeout_ms passes, and returns the
 *  job's report (ah_bulk_report) as it was then; *finished tells whether
 *  the status was final. NULL when the tenant has no such job or the store
 *  cannot be read. Blocks the calling thread (a server thread). */
cJSON *ah_bulk_wait(ah_core *core, int64_t tenant_id, const char *job_id, long timeout_ms,
                    bool *finished);
/** Called once with a job's report (transferred; NULL when the tenant has
 *  no such job or the store cannot be read) and whether its status was
 *  final. */
typedef void (*ah_bulk_waited_fn)(void *arg, cJSON *report, bool finished);
/** As ah_bulk_wait without blocking anyone: done(arg, ...) is called once,
 *  at once on this thread when the job is final already, unknown, or no
 *  worker runs, else by the bulk module's waiters' thread once the job is
 *  final, timeout_ms passed or the worker stops (it must not block long).
 *  0, or -1 (done not called) when out of memory or job_id is malformed. */
int ah_bulk_wait_async(ah_core *core, int64_t tenant_id, const char *job_id, long timeout_ms,
                       ah_bulk_waited_fn done, void *arg);
/** A job's report as JSON ({"id","action","status","total","succeeded",
 *  "failed","items":[{"id","status","error"?,"operation"?,"settled"?}]});
 *  an item whose write's outcome stayed unknown names its "operation" and,
 *  once the connection's sync settled it, shows the settled outcome with
 *  "settled": true. NULL when the tenant has no such job. */
cJSON *ah_bulk_report(ah_core *core, int64_t tenant_id, const char *job_id);
/** Reports built so far to answer waiting requests (ah_bulk_wait,
 *  ah_bulk_wait_async): one each, when its job is final, its wait ends or
 *  the worker stops; a look at a job that is not final reads its status
 *  alone. For tests and metrics; any thread. */
unsigned long ah_bulk_wait_reports(ah_core *core);

#endif
