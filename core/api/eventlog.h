/* SPDX-License-Identifier: Apache-2.0 */
/* The replayable event log: GET /v1/events and its retention (eventlog.c). */
#ifndef AH_EVENTLOG_H
#define AH_EVENTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

/* --- event log (eventlog.c) ---------------------------------------------- */

/** Events one GET /v1/events reads at most, matching its types or not: a
 *  page that stops there has has_more and a next_cursor past them. */
#define AH_EVENTS_SCAN_MAX 5000
/** The largest limit of GET /v1/events and /admin/events (atshub events
 *  --limit refuses more as a usage error). */
#define AH_EVENTS_LIMIT_MAX 1000

/** Answers GET /v1/events for an authenticated tenant. */
void ah_events_api(ah_core *core, ah_http_exchange *ex, int64_t tenant_id);
/** Prunes events older than [events] retention_days that no plugin
 *  delivery and no enabled webhook endpoint still needs (the ticker, at
 *  most once a minute). A disabled endpoint skips those of its tenant,
 *  reported as event.webhook.events_pruned. */
void ah_eventlog_prune(ah_core *core);

#endif
