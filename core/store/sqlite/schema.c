/* SPDX-License-Identifier: Apache-2.0 */
/* The schema of the SQLite engine: its migration steps and how they are
 * applied, one transaction per step. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each step runs in its own transaction together with its row in
 * schema_migrations. Append new steps; never edit a released one. */
static const char *const migrations[] = {
    /* v1: base schema */
    "CREATE TABLE tenants ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  key_hash TEXT NOT NULL UNIQUE,"
    "  created_at TEXT NOT NULL);"
    "CREATE TABLE connections ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  plugin TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  enabled INTEGER NOT NULL DEFAULT 1,"
    "  settings TEXT NOT NULL DEFAULT '{}',"
    "  created_at TEXT NOT NULL,"
    "  updated_at TEXT NOT NULL,"
    "  UNIQUE (tenant_id, name));"
    "CREATE TABLE records ("
    "  id TEXT PRIMARY KEY,"
    "  connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,"
    "  type TEXT NOT NULL,"
    "  remote_id TEXT NOT NULL,"
    "  updated_at TEXT,"
    "  raw TEXT NOT NULL,"
    "  fields TEXT NOT NULL,"
    "  content_hash TEXT NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  stored_at TEXT NOT NULL,"
    "  UNIQUE (connection_id, type, remote_id));"
    "CREATE TABLE cursors ("
    "  connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (connection_id, key));"
    /* No foreign key on sequences and outbox: callers may use them for
     * host-wide purposes; tenant_remove deletes a tenant's rows itself. */
    "CREATE TABLE sequences ("
    "  tenant_id INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  value INTEGER NOT NULL,"
    "  PRIMARY KEY (tenant_id, name));"
    "CREATE TABLE outbox ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  tenant_id INTEGER NOT NULL,"
    "  topic TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  delivered_at TEXT);"
    "CREATE TABLE integration_log ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  at TEXT NOT NULL,"
    "  tenant TEXT,"
    "  source TEXT NOT NULL,"
    "  plugin TEXT,"
    "  action TEXT NOT NULL,"
    "  method TEXT,"
    "  path TEXT,"
    "  status INTEGER NOT NULL DEFAULT 0,"
    "  duration_s REAL NOT NULL DEFAULT 0,"
    "  body TEXT,"
    "  correlation_id TEXT);"
    "CREATE INDEX integration_log_at ON integration_log(at);"
    "CREATE INDEX integration_log_source ON integration_log(source);"
    "CREATE INDEX integration_log_action ON integration_log(action);"
    "CREATE INDEX integration_log_status ON integration_log(status);",

    /* v2: keyset paging of records by id within a connection and type, the
     * outbox's pending scan, and the log's tenant filter. */
    "CREATE INDEX records_paging ON records(connection_id, type, id);"
    "CREATE INDEX outbox_pending ON outbox(id) WHERE delivered_at IS NULL;"
    "CREATE INDEX integration_log_tenant ON integration_log(tenant);",

    /* v3: per-connection deliveries of events to subscribed plugins, kept
     * until the plugin handled them (at least once, in outbox order). */
    "CREATE TABLE deliveries ("
    "  connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,"
    "  outbox_id INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_at TEXT NOT NULL,"
    "  last_error TEXT,"
    "  PRIMARY KEY (connection_id, outbox_id));"
    "CREATE INDEX deliveries_due ON deliveries(next_at);",

    /* v4: events and writes the product can trust: records the provider no
     * longer returns, stage history, the replayable event log's scan,
     * outbound webhooks and their delivery log, idempotency keys, bulk jobs. */
    "ALTER TABLE records ADD COLUMN remote_deleted_at TEXT;"
    "CREATE TABLE stage_history ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  record_id TEXT NOT NULL REFERENCES records(id) ON DELETE CASCADE,"
    "  tenant_id INTEGER NOT NULL,"
    "  from_stage TEXT,"
    "  to_stage TEXT,"
    "  changed_at TEXT NOT NULL);"
    "CREATE INDEX stage_history_changed ON stage_history(tenant_id, changed_at);"
    "CREATE INDEX stage_history_record ON stage_history(record_id, id);"
    "CREATE INDEX outbox_tenant ON outbox(tenant_id, id);"
    "CREATE TABLE webhook_endpoints ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    "  url TEXT NOT NULL,"
    "  secret TEXT NOT NULL,"
    "  event_types TEXT NOT NULL DEFAULT '*',"
    "  enabled INTEGER NOT NULL DEFAULT 1,"
    "  failures INTEGER NOT NULL DEFAULT 0,"
    "  disabled_at TEXT,"
    "  cursor INTEGER NOT NULL DEFAULT 0,"
    "  next_at TEXT NOT NULL,"
    "  created_at TEXT NOT NULL);"
    "CREATE TABLE webhook_deliveries ("
    "  endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,"
    "  outbox_id INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_at TEXT,"
    "  status TEXT NOT NULL,"
    "  last_status INTEGER,"
    "  last_error TEXT,"
    "  delivered_at TEXT,"
    "  PRIMARY KEY (endpoint_id, outbox_id));"
    "CREATE TABLE idempotency ("
    "  tenant_id INTEGER NOT NULL,"
    "  key TEXT NOT NULL,"
    "  body_hash TEXT NOT NULL,"
    "  status INTEGER NOT NULL DEFAULT 0,"
    "  response TEXT,"
    "  created_at TEXT NOT NULL,"
    "  PRIMARY KEY (tenant_id, key));"
    "CREATE TABLE bulk_jobs ("
    "  id TEXT PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL,"
    "  action TEXT NOT NULL,"
    "  params TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  total INTEGER NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  finished_at TEXT);"
    "CREATE TABLE bulk_items ("
    "  job_id TEXT NOT NULL REFERENCES bulk_jobs(id) ON DELETE CASCADE,"
    "  idx INTEGER NOT NULL,"
    "  record_id TEXT NOT NULL,"
    "  status TEXT NOT NULL DEFAULT 'queued',"
    "  error_code TEXT,"
    "  error_message TEXT,"
    "  PRIMARY KEY (job_id, idx));",

    /* v5: the raw payload stored once. A record's fields become what they
     * add to its raw payload (fieldpack.c: a BLOB, copies from raw and the
     * bytes raw lacks; TEXT where that would not be smaller), and the
     * content hash goes: an upsert compares raw and fields themselves. */
    "ALTER TABLE records DROP COLUMN content_hash;"
    "UPDATE records SET fields = ah_fields_pack(raw, fields) WHERE typeof(fields) = 'text';"
    /* and stored_at '' for a record never rewritten (it reads as its
     * created_at). New records also store created_at '' (it reads as the
     * time their id carries); older ones keep theirs. */
    "UPDATE records SET stored_at = '' WHERE stored_at = created_at;",
    /* v6: the integration log is written twice per request on the write
     * path: three indexes instead of six. Queries are per tenant (or all
     * tenants) in time order; the source, action and status filters scan
     * within that order. The others were inserts at scattered places that
     * every group commit wrote out again. */
    "DROP INDEX integration_log_source;"
    "DROP INDEX integration_log_action;"
    "DROP INDEX integration_log_status;"
    "DROP INDEX integration_log_tenant;"
    "CREATE INDEX integration_log_tenant_at ON integration_log(tenant, at);",
    /* v7: leases (leases.c): expires_ms is milliseconds since the epoch on
     * the database's clock. */
    "CREATE TABLE leases ("
    "  name TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  token INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL);",
    /* v8: pruning reads only what it deletes. Every minute the retention
     * pass ran DELETEs that scanned whole tables (the outbox by created_at,
     * idempotency keys by created_at, webhook lines for a missing event)
     * under the store's lock: 0.7 s with 700,000 events, every writer
     * waiting. The outbox finds its bound by bisection over ids; the
     * others get the index their prune walks; a pruned event's webhook
     * lines go with it (found by outbox_id), so none is left orphaned. */
    "CREATE INDEX idempotency_created ON idempotency(created_at);"
    "CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries(delivered_at) "
    "  WHERE delivered_at IS NOT NULL;"
    "CREATE INDEX webhook_deliveries_outbox ON webhook_deliveries(outbox_id);"
    "DELETE FROM webhook_deliveries WHERE NOT EXISTS "
    "  (SELECT 1 FROM outbox o WHERE o.id = webhook_deliveries.outbox_id);",
    /* v9 (issue 19): a
     * write whose outcome stayed unknown keeps its operation id as a column:
     * the idempotency key that answered 502 outcome_unknown, and the bulk
     * item whose write it was, so that both find how it was settled
     * without reading it out of a message. */
    "ALTER TABLE idempotency ADD COLUMN operation TEXT;"
    "ALTER TABLE bulk_items ADD COLUMN operation TEXT;"
    "CREATE INDEX bulk_items_operation ON bulk_items(operation) WHERE operation IS NOT NULL;",
    /* v10: webhook endpoints whole (issue 20): a description, and the
     * previous secret kept through a rotation's overlap. */
    "ALTER TABLE webhook_endpoints ADD COLUMN description TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE webhook_endpoints ADD COLUMN previous_secret TEXT;"
    "ALTER TABLE webhook_endpoints ADD COLUMN previous_until TEXT;",
    /* v11 (issue 14): several instances on one store. change_log: what
     * changed that other instances cache or must act on (plugin reloads;
     * on SQLite, tenants and connections are seen through PRAGMA
     * data_version), polled by every instance; instances: each live
     * instance's registration and heartbeat (ms since the epoch). */
    "CREATE TABLE change_log ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  kind TEXT NOT NULL,"
    "  subject TEXT,"
    "  detail TEXT,"
    "  origin TEXT,"
    "  at TEXT NOT NULL);"
    "CREATE TABLE instances ("
    "  id TEXT PRIMARY KEY,"
    "  version TEXT NOT NULL,"
    "  host TEXT,"
    "  pid INTEGER,"
    "  started_at TEXT NOT NULL,"
    "  heartbeat_ms INTEGER NOT NULL);",
    /* v12: sequences in one b-tree (WITHOUT ROWID, keyed by their primary
     * key) rather than a rowid table plus its key's index: ERP's create-job
     * bumps two per request, one of them a new row per title (the
     * JOB_EXISTS check), so each was two b-tree writes, the index's at a
     * scattered place. */
    "CREATE TABLE sequences_v12 ("
    "  tenant_id INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  value INTEGER NOT NULL,"
    "  PRIMARY KEY (tenant_id, name)) WITHOUT ROWID;"
    "INSERT INTO sequences_v12(tenant_id, name, value) SELECT tenant_id, name, value FROM sequences;"
    "DROP TABLE sequences;"
    "ALTER TABLE sequences_v12 RENAME TO sequences;",
    /* v13: one integration-log row per inbound exchange. A provider route
     * wrote two rows, REQUEST then RESPONSE (or ERROR), in every write
     * path transaction; the answer's row now carries the request too
     * (with_request, request_body) and the read side gives it as its two
     * entries (intlog.c). Existing pairs are merged the same way: a
     * REQUEST row and the RESPONSE/ERROR row written right after it (the
     * next id) for the same exchange. */
    "ALTER TABLE integration_log ADD COLUMN with_request INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE integration_log ADD COLUMN request_body TEXT;"
    "UPDATE integration_log SET with_request = 1, request_body = "
    "  (SELECT q.body FROM integration_log q WHERE q.id = integration_log.id - 1) "
    "WHERE action IN ('RESPONSE', 'ERROR') AND EXISTS (SELECT 1 FROM integration_log q "
    "  WHERE q.id = integration_log.id - 1 AND q.action = 'REQUEST' AND q.with_request = 0"
    "  AND q.source = integration_log.source AND q.tenant IS integration_log.tenant"
    "  AND q.plugin IS integration_log.plugin AND q.method IS integration_log.method"
    "  AND q.path IS integration_log.path"
    "  AND q.correlation_id IS integration_log.correlation_id);"
    "DELETE FROM integration_log WHERE action = 'REQUEST' AND with_request = 0 AND "
    "  id + 1 IN (SELECT id FROM integration_log WHERE with_request = 1);",
    /* v14: no index for outbox_pending. Every event (one per ERP create)
     * was also an insert into this partial index, and its prune a delete
     * from it, while the daemon never asks for undelivered events that way
     * (events reach plugins through deliveries and webhooks and readers
     * through outbox_after, by tenant and id; nothing sets delivered_at):
     * only tests call outbox_pending, which now scans the outbox in id
     * order. */
    "DROP INDEX outbox_pending;",
    /* v15: deliveries by event, for the outbox prune's NOT EXISTS (the
     * primary key leads with the connection): without it each prune batch
     * read every pending delivery. PostgreSQL has had it since its v3. */
    "CREATE INDEX deliveries_outbox ON deliveries(outbox_id);",
    /* v16: bulk jobs shared fairly, capped and pruned. The worker takes
     * tenants' unfinished jobs in turn (bulk_next_after) and counts a
     * tenant's queued items (bulk_queued_count) through bulk_jobs_active;
     * finished jobs past their retention are found through
     * bulk_jobs_finished (a failed job may have no finished_at). */
    "CREATE INDEX bulk_jobs_active ON bulk_jobs(tenant_id, created_at, id) "
    "  WHERE status IN ('queued', 'running');"
    "CREATE INDEX bulk_jobs_finished ON bulk_jobs(coalesce(finished_at, created_at)) "
    "  WHERE status IN ('done', 'failed');",
};

#define AH_SQ_LATEST ((int)(sizeof migrations / sizeof migrations[0]))

/* Current schema version; 0 for an empty database, -1 on error. */
static int schema_version_locked(ah_sq_store *s)
{
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT coalesce(max(version), 0) FROM schema_migrations";
    int exists = 0;
    sqlite3_stmt *chk = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                           "AND name = 'schema_migrations'",
                           -1, &chk, NULL) != SQLITE_OK) {
        ah_sq_log_db(s, "schema version");
        return -1;
    }
    if (sqlite3_step(chk) == SQLITE_ROW)
        exists = sqlite3_column_int(chk, 0);
    else
        exists = -1;
    sqlite3_finalize(chk);
    if (exists < 0) {
        ah_sq_log_db(s, "schema version");
        return -1;
    }
    if (exists == 0)
        return 0;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        ah_sq_log_db(s, "schema version");
        return -1;
    }
    int v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    else
        ah_sq_log_db(s, "schema version");
    sqlite3_finalize(st);
    return v;
}

static int exec_sql(ah_sq_store *s, const char *sql, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "sqlite: %s: %s", what,
               msg != NULL ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return AH_STORE_ERR;
    }
    return AH_STORE_OK;
}

/* Applies one step in its own transaction. The version is re-checked
 * inside the transaction because another process may have applied it
 * between our check and our lock. */
static int apply_step(ah_sq_store *s, int v)
{
    if (ah_sq_tx_begin(s) != AH_STORE_OK)
        return AH_STORE_ERR;
    int cur = schema_version_locked(s);
    if (cur < 0)
        goto fail;
    if (cur >= v) {
        ah_sq_tx_rollback(s);
        return AH_STORE_OK;
    }
    char what[48];
    snprintf(what, sizeof what, "migration %d", v);
    if (exec_sql(s, migrations[v - 1], what) != AH_STORE_OK)
        goto fail;
    char now[32];
    ah_now_iso(now);
    char ins[128];
    snprintf(ins, sizeof ins,
             "INSERT INTO schema_migrations(version, applied_at) VALUES(%d, '%s')", v, now);
    if (exec_sql(s, ins, what) != AH_STORE_OK)
        goto fail;
    if (ah_sq_tx_commit(s) != AH_STORE_OK)
        return AH_STORE_ERR;
    ah_log(s->base.lg, AH_LOG_INFO, "store", "applied schema migration %d", v);
    return AH_STORE_OK;
fail:
    ah_sq_tx_rollback(s);
    return AH_STORE_ERR;
}

static int migrate_to_locked(ah_sq_store *s, int target)
{
    if (exec_sql(s,
                 "CREATE TABLE IF NOT EXISTS schema_migrations("
                 "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
                 "schema_migrations") != AH_STORE_OK)
        return AH_STORE_ERR;
    int cur = schema_version_locked(s);
    if (cur < 0)
        return AH_STORE_ERR;
    if (cur > AH_SQ_LATEST) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store",
               "database schema version %d is newer than this atshub knows (%d): "
               "upgrade atshub",
               cur, AH_SQ_LATEST);
        return AH_STORE_ERR;
    }
    for (int v = cur + 1; v <= target; v++)
        if (apply_step(s, v) != AH_STORE_OK)
            return AH_STORE_ERR;
    return AH_STORE_OK;
}

int ah_sq_migrate(ah_store *st)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    int rc = migrate_to_locked(s, AH_SQ_LATEST);
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_schema_version(ah_store *st)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    int v = schema_version_locked(s);
    ah_sq_unlock(s);
    return v < 0 ? AH_STORE_ERR : v;
}

int ah_store_sqlite_latest_version(void)
{
    return AH_SQ_LATEST;
}

int ah_store_sqlite_migrate_to(ah_store *st, int version)
{
    if (st == NULL || st->ops != &ah_sq_ops || version < 1 || version > AH_SQ_LATEST)
        return AH_STORE_ERR;
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    int rc = migrate_to_locked(s, version);
    ah_sq_unlock(s);
    return rc;
}
