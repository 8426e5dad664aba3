/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Events and writes the product can trust, built on the core so that every
 * plugin gets them: outbound webhooks (webhooks.c), the replayable event
 * log (eventlog.c), idempotency keys on write routes (idempotency.c), bulk
 * jobs (bulk.c) paced by per-connection rate budgets (ratelimit.c), and
 * remote deletions and stage history (tracking.c).
 *
 * Their tables are created by the store's v4 migration and reached through
 * the store's generic `sql` op (store.h), in SQL both engines speak.
 */
#ifndef AH_TRUST_H
#define AH_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

/** The mutable state of these modules (rate buckets, the bulk worker);
 *  kept in ah_core.trust. */
typedef struct ah_trust ah_trust;

/** Creates / frees the state (ah_core_open / ah_core_close). NULL on OOM. */
ah_trust *ah_trust_new(void);
void ah_trust_free(ah_trust *t);

/** Registers the routes of these modules on core->httpd (webhooks, events,
 *  bulk jobs) and installs the idempotency hooks. Called by ah_core_start
 *  after ah_rest_register. 0 or -1. */
int ah_trust_register(ah_core *core);
/** Starts / stops the bulk worker thread (ah_core_start / ah_core_stop).
 *  Start resumes jobs left queued or running by a previous process. */
int ah_trust_start(ah_core *core, char *err, size_t errlen);
void ah_trust_stop(ah_core *core);
/** The ticker's share (every second, on the ticker thread): webhook
 *  deliveries and the event log's pruning. */
void ah_trust_tick(ah_core *core);

/* --- shared helpers (webhooks.c) ---------------------------------------- */

/** core->store->ops->sql for one statement (see store.h). */
int ah_trust_sql(ah_core *core, const char *sql, const char *const *params, size_t n,
                 ah_sql_row_cb cb, void *arg, int64_t *changes);
/** An ah_sql_row_cb that appends each row to `arg`, a cJSON array, as an
 *  array of strings (null for SQL NULL). */
void ah_trust_rows_json(void *arg, int ncol, const char *const *vals);
/** Runs one query and returns its rows as ah_trust_rows_json makes them
 *  (a new array, the caller frees it); NULL on a store error or ENOMEM. */
cJSON *ah_trust_rows(ah_core *core, const char *sql, const char *const *params, size_t n);
/** Column i of a row made by ah_trust_rows_json; NULL for SQL NULL or when
 *  the row has no such column. */
const char *ah_trust_col(const cJSON *row, int i);
/** Like ah_trust_rows, but each row becomes fn(row) in the returned array
 *  (a row fn gives NULL for, out of memory, is left out). */
cJSON *ah_trust_map_rows(ah_core *core, const char *sql, const char *const *params, size_t n,
                         cJSON *(*fn)(const cJSON *row));
/** A time `ms` from now in the store's canonical form. */
void ah_trust_iso_in(long ms, char out[32]);

/* --- webhooks (webhooks.c) ---------------------------------------------- */

/** Adds an endpoint for tenant_id. types: comma-separated topics or
 *  "prefix.*" patterns (NULL or "": every event). The secret ("whsec_" +
 *  base64 of 24 random bytes) is stored sealed with the host key and
 *  copied into secret_out (>= 64 bytes) to print once. New endpoints get
 *  the events published after they were added. 0 or -1 with err. */
int ah_webhook_add(ah_core *core, int64_t tenant_id, const char *url, const char *types,
                   int64_t *id_out, char *secret_out, size_t secret_len, char *err,
                   size_t errlen);
/** Endpoints as a JSON array (tenant_id 0: all tenants). Secrets are never
 *  included. NULL on error. */
cJSON *ah_webhook_list(ah_core *core, int64_t tenant_id);
/** Enables (clearing the failure count: deliveries resume where they
 *  stopped) or disables endpoint id; tenant_id 0: any tenant.
 *  AH_STORE_NOT_FOUND when no such endpoint. */
int ah_webhook_set_enabled(ah_core *core, int64_t tenant_id, int64_t id, bool enabled);
/** The delivery log of endpoint id, newest first (at most limit). NULL when
 *  there is no such endpoint (of tenant_id, unless 0). */
cJSON *ah_webhook_deliveries(ah_core *core, int64_t tenant_id, int64_t id, int limit);
/** Signs like Standard Webhooks: "v1," + base64(HMAC-SHA256(key, id + "." +
 *  ts + "." + body)), key being the base64-decoded part after "whsec_".
 *  out >= 64 bytes. 0 or -1. */
int ah_webhook_sign(const char *secret, const char *msg_id, const char *ts, const char *body,
                    size_t body_len, char *out, size_t outlen);
/** Delivers what is due for every enabled endpoint (the ticker). */
void ah_webhooks_tick(ah_core *core);
/** True when topic matches the comma-separated patterns (exact, "p.*", "*";
 *  NULL or "": everything). */
bool ah_topic_matches_list(const char *patterns, const char *topic);

/* --- event log (eventlog.c) ---------------------------------------------- */

/** The envelope an event travels in, for webhooks and the event log alike:
 *  {"id":"evt_<outbox id>","cursor":<outbox id>,"type","timestamp","data"}.
 *  malloc'd JSON text, or NULL. */
char *ah_event_envelope(int64_t outbox_id, const char *topic, const char *body,
                        const char *created_at);
/** Answers GET /v1/events for an authenticated tenant. */
void ah_events_api(ah_core *core, ah_http_exchange *ex, int64_t tenant_id);
/** Prunes events older than [events] retention_days that no plugin
 *  delivery still needs (the ticker, at most once a minute). */
void ah_eventlog_prune(ah_core *core);

/* --- idempotency keys (idempotency.c) ------------------------------------ */

/** The httpd hooks (installed by ah_trust_register). Exposed for tests. */
bool ah_idem_before(void *core, ah_http_exchange *ex);
void ah_idem_after(void *core, ah_http_exchange *ex);

/* --- bulk jobs (bulk.c) --------------------------------------------------- */

/** Validates a bulk request's body on `ex` (application_ids and reason_id
 *  for action "reject", stage_id for "stage"), stores the job and its items
 *  and answers 202 {"data":{"id":"bulk_...","status":"queued"}} (or an
 *  error). The caller authenticated tenant_id. */
void ah_bulk_submit(ah_core *core, ah_http_exchange *ex, int64_t tenant_id, const char *action);
/** A job's report as JSON ({"id","action","status","total","succeeded",
 *  "failed","items":[{"id","status","error"}]}); NULL when the tenant has
 *  no such job. */
cJSON *ah_bulk_report(ah_core *core, int64_t tenant_id, const char *job_id);

/* --- CLI (cli_webhooks.c) ---------------------------------------------- */

/** `atshub webhook ...` (argv[0] is the subcommand); types from --types.
 *  Returns the exit code. */
int ah_cli_webhook(const char *config, bool json, int argc, char **argv, const char *types);

#endif
