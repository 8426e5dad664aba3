/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Settling writes whose outcome stayed unknown (issue 19, exactly once).
 *
 * A write that answered 502 outcome_unknown because its provider could not
 * be read back is kept by the core as a record of its connection
 * (AH_WRITE_OUTCOME_TYPE, core.h) when its plugin declares a settle
 * function (ah_op_write.settle). ah_settle_unknown, which the sync engine
 * calls once at the start of every sync of a connection, asks the plugin
 * to settle each one (it reads the provider back; it never sends the
 * write), records how it ended and publishes `event.write.settled` once:
 *
 *   {"operation", "topic", "connection", "outcome": "done" | "not_done",
 *    "status": 200 | 503, "answer": {...}}
 *
 * The Idempotency-Key the write was sent with then replays the settled
 * answer (api/idempotency.c). One still unknown stays for the next sync.
 */
#ifndef AH_SETTLE_H
#define AH_SETTLE_H

#include <stdint.h>

typedef struct ah_core ah_core;
typedef struct ah_conn ah_conn;

/** Settles what can be of connection c's writes whose outcome is unknown.
 *  Returns how many were settled (0 when none, or the provider still
 *  cannot tell), -1 when the store cannot be read. */
int ah_settle_unknown(ah_core *core, ah_conn *c);

/** How write `operation` of tenant tid (on any of its connections: a
 *  resource route names its connection by the record) was settled: 1 with
 *  *status (200 done, 503 not done) and *answer (malloc'd JSON text: what
 *  the write replied, {"data": ...}, or the error) when it was; 0 when it
 *  is still unknown or was never kept; -1 when the store cannot be read. */
int ah_settled_outcome(ah_core *core, int64_t tid, const char *operation, int *status,
                       char **answer);

/** Deletes the writes settled more than [core] settled_retention_days ago
 *  (7 by default); writes still unknown are kept however old. Part of the
 *  daemon's prune pass (ah_daemon_prune). */
void ah_settle_prune(ah_core *core);

#endif
