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
/** A job's report as JSON ({"id","action","status","total","succeeded",
 *  "failed","items":[{"id","status","error"}]}); NULL when the tenant has
 *  no such job. */
cJSON *ah_bulk_report(ah_core *core, int64_t tenant_id, const char *job_id);

/* --- rate budgets (ratelimit.c) ------------------------------------------- */

/** Takes one request token of connection c (its plugin desc), sleeping
 *  until one is available. The rate is the plugin's declared
 *  rate_limit_rps, lowered (never raised) by the connection's setting
 *  rate_limit_rps, halved for 30 s after each 429. No-op without either. */
void ah_ratelimit_take(ah_core *core, const ah_conn *c, const ah_plugin_descriptor *desc);
/** The provider answered 429 for connection conn_id: slow its bucket. */
void ah_ratelimit_throttled(ah_core *core, int64_t conn_id);
/** The current rate of a connection's bucket (0: none yet). */
double ah_ratelimit_rate(ah_core *core, int64_t conn_id);

/* --- deletions and stage history (tracking.c) ----------------------------- */

/** A set of record ids seen during a full sync. */
typedef struct ah_seen ah_seen;
ah_seen *ah_seen_new(void);
void ah_seen_free(ah_seen *s);
/** Adds an atshub record id (copied). */
void ah_seen_add(ah_seen *s, const char *id);
/** After a complete full sync of `type` ("application", ...) on c: flags
 *  the connection's records of that type not in seen with
 *  remote_deleted_at (publishing event.<type>.deleted for each) and clears
 *  the flag of seen ones that had it. Returns how many were flagged. */
long ah_tracking_sweep(ah_core *core, const ah_conn *c, const char *type, const ah_seen *seen);
/** Records stage changes of a page of records before it is upserted:
 *  for each application whose stored fields.stage_id differs from the
 *  incoming one, a stage_history row. in/n as for records_upsert. */
void ah_tracking_stage_changes(ah_core *core, const ah_conn *c, const ah_record_in *in,
                               size_t n);
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

/* --- CLI (cli_webhooks.c) ---------------------------------------------- */

/** `atshub webhook ...` (argv[0] is the subcommand); types from --types.
 *  Returns the exit code. */
int ah_cli_webhook(const char *config, bool json, int argc, char **argv, const char *types);

#endif
