/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SQLite engine of the store.
 *
 * Concurrency: one sqlite3 connection per store, opened SQLITE_OPEN_NOMUTEX
 * and guarded by one mutex in the store struct. Every operation holds the
 * mutex for its whole duration, so the cached prepared statements and the
 * connection's error message are never shared between threads. A single
 * connection is enough because SQLite serialises writers anyway; readers
 * are short. Other processes (the CLI next to a running daemon) share the
 * file through WAL mode and a 5 s busy timeout; writes start with BEGIN
 * IMMEDIATE so that two writers queue on the lock instead of failing with
 * SQLITE_BUSY half-way through a transaction.
 *
 * Callbacks of the *_list and *_query operations run AFTER the mutex is
 * released, on copies of the rows, so a callback may call the store again.
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "crypto.h"
#include "log.h"

#define AH_SQ_BUSY_TIMEOUT_MS 5000
#define AH_REC_ID_PREFIX "rec_"
#define AH_REC_ID_RANDOM_BYTES 6 /* 12 hex chars after 12 of time */

/* ---- schema ------------------------------------------------------------ */

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
};

#define AH_SQ_LATEST ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- cached statements --------------------------------------------------- */

typedef enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_SAVEPOINT,
    Q_RELEASE,
    Q_ROLLBACK_TO,
    Q_PING,
    Q_DATA_VERSION,
    Q_TENANT_ADD,
    Q_TENANT_GET,
    Q_TENANT_BY_HASH,
    Q_TENANT_LIST,
    Q_TENANT_DEL_SEQ,
    Q_TENANT_DEL_OUTBOX,
    Q_TENANT_DEL,
    Q_CONN_ADD,
    Q_CONN_GET,
    Q_CONN_LIST_ALL,
    Q_CONN_LIST_TENANT,
    Q_CONN_UPDATE,
    Q_CONN_ENABLE,
    Q_CONN_DEL,
    Q_REC_LOOKUP,
    Q_REC_INSERT,
    Q_REC_UPDATE,
    Q_REC_GET,
    Q_REC_GET_BY_ID,
    Q_REC_COUNT,
    Q_REC_COUNT_ALL,
    Q_CUR_GET,
    Q_CUR_SET,
    Q_SEQ_NEXT,
    Q_OUT_ADD,
    Q_OUT_PENDING,
    Q_OUT_DONE,
    Q_LOG_ADD,
    Q_DEL_ADD,
    Q_DEL_NEXT,
    Q_DEL_DONE,
    Q_DEL_RETRY,
    Q_DEL_DUE,
    Q_OUT_AFTER,
    Q_OUT_PRUNE,
    Q_WH_ADD,
    Q_WH_LIST,
    Q_WH_DUE,
    Q_WH_ENABLE,
    Q_WH_DISABLE,
    Q_WH_GET,
    Q_WH_DELIVERIES,
    Q_WH_ATTEMPT,
    Q_WH_ADVANCE,
    Q_WH_FAILED,
    Q_IDEM_EXPIRE,
    Q_IDEM_RESERVE,
    Q_IDEM_GET,
    Q_IDEM_COMPLETE,
    Q_IDEM_RELEASE,
    Q_BULK_ADD,
    Q_BULK_ITEM_ADD,
    Q_BULK_GET,
    Q_BULK_NEXT,
    Q_BULK_STATUS,
    Q_BULK_ITEMS,
    Q_BULK_ITEMS_QUEUED,
    Q_BULK_PRIOR,
    Q_BULK_ITEM_SET,
    Q_REC_MARKS,
    Q_REC_MARK_DEL,
    Q_REC_IS_DEL,
    Q_STAGE_ADD,
    Q_STAGE_SINCE,
    Q_STAGE_HISTORY,
    Q_COUNT
} qid;

#define CONN_COLS                                                              \
    "c.id, c.tenant_id, t.name, c.plugin, c.name, c.enabled, c.settings, "     \
    "c.created_at, c.updated_at"
#define REC_COLS                                                               \
    "r.id, r.connection_id, r.type, r.remote_id, r.updated_at, r.raw, "        \
    "r.fields, r.created_at, r.stored_at"
#define LOG_COLS                                                               \
    "id, at, tenant, source, plugin, action, method, path, status, "           \
    "duration_s, body, correlation_id"

/* The sealed secret is read only by webhook_due, which delivers. */
#define WH_COLS(secret)                                                        \
    "id, tenant_id, url, event_types, " #secret ", enabled, failures, "         \
    "disabled_at, cursor, created_at"
#define BULK_COLS                                                              \
    "id, tenant_id, action, params, status, total, created_at, finished_at"
#define ITEM_COLS "idx, record_id, status, error_code, error_message"

static const char *const q_sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SAVEPOINT] = "SAVEPOINT ah_op",
    [Q_RELEASE] = "RELEASE ah_op",
    [Q_ROLLBACK_TO] = "ROLLBACK TO ah_op",
    [Q_PING] = "SELECT 1",
    [Q_DATA_VERSION] = "PRAGMA data_version",
    [Q_TENANT_ADD] = "INSERT INTO tenants(name, key_hash, created_at) VALUES(?1, ?2, ?3)",
    [Q_TENANT_GET] = "SELECT id, name, key_hash, created_at FROM tenants WHERE name = ?1",
    [Q_TENANT_BY_HASH] =
        "SELECT id, name, key_hash, created_at FROM tenants WHERE key_hash = ?1",
    [Q_TENANT_LIST] = "SELECT id, name, key_hash, created_at FROM tenants ORDER BY name",
    [Q_TENANT_DEL_SEQ] =
        "DELETE FROM sequences WHERE tenant_id = (SELECT id FROM tenants WHERE name = ?1)",
    [Q_TENANT_DEL_OUTBOX] =
        "DELETE FROM outbox WHERE tenant_id = (SELECT id FROM tenants WHERE name = ?1)",
    [Q_TENANT_DEL] = "DELETE FROM tenants WHERE name = ?1",
    [Q_CONN_ADD] = "INSERT INTO connections(tenant_id, plugin, name, enabled, settings, "
                   "created_at, updated_at) VALUES(?1, ?2, ?3, 1, ?4, ?5, ?5)",
    [Q_CONN_GET] = "SELECT " CONN_COLS " FROM connections c JOIN tenants t "
                   "ON t.id = c.tenant_id WHERE t.name = ?1 AND c.name = ?2",
    [Q_CONN_LIST_ALL] = "SELECT " CONN_COLS " FROM connections c JOIN tenants t "
                        "ON t.id = c.tenant_id ORDER BY t.name, c.name",
    [Q_CONN_LIST_TENANT] = "SELECT " CONN_COLS " FROM connections c JOIN tenants t "
                           "ON t.id = c.tenant_id WHERE t.name = ?1 ORDER BY c.name",
    [Q_CONN_UPDATE] = "UPDATE connections SET settings = ?2, updated_at = ?3 WHERE id = ?1",
    [Q_CONN_ENABLE] = "UPDATE connections SET enabled = ?2, updated_at = ?3 WHERE id = ?1",
    [Q_CONN_DEL] = "DELETE FROM connections WHERE id = ?1",
    [Q_REC_LOOKUP] = "SELECT id, content_hash FROM records "
                     "WHERE connection_id = ?1 AND type = ?2 AND remote_id = ?3",
    [Q_REC_INSERT] = "INSERT INTO records(id, connection_id, type, remote_id, updated_at, "
                     "raw, fields, content_hash, created_at, stored_at) "
                     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) "
                     "ON CONFLICT(connection_id, type, remote_id) DO NOTHING",
    [Q_REC_UPDATE] = "UPDATE records SET updated_at = ?2, raw = ?3, fields = ?4, "
                     "content_hash = ?5, stored_at = ?6 WHERE id = ?1",
    [Q_REC_GET] = "SELECT " REC_COLS " FROM records r "
                  "WHERE r.connection_id = ?1 AND r.type = ?2 AND r.remote_id = ?3",
    [Q_REC_GET_BY_ID] = "SELECT " REC_COLS " FROM records r JOIN connections c "
                        "ON c.id = r.connection_id WHERE r.id = ?1 AND c.tenant_id = ?2",
    [Q_REC_COUNT] = "SELECT count(*) FROM records WHERE connection_id = ?1 AND type = ?2",
    [Q_REC_COUNT_ALL] = "SELECT count(*) FROM records WHERE connection_id = ?1",
    [Q_CUR_GET] = "SELECT value FROM cursors WHERE connection_id = ?1 AND key = ?2",
    [Q_CUR_SET] = "INSERT INTO cursors(connection_id, key, value) VALUES(?1, ?2, ?3) "
                  "ON CONFLICT(connection_id, key) DO UPDATE SET value = excluded.value",
    [Q_SEQ_NEXT] = "INSERT INTO sequences(tenant_id, name, value) VALUES(?1, ?2, 1) "
                   "ON CONFLICT(tenant_id, name) DO UPDATE SET value = value + 1 "
                   "RETURNING value",
    [Q_OUT_ADD] = "INSERT INTO outbox(tenant_id, topic, body, created_at) "
                  "VALUES(?1, ?2, ?3, ?4)",
    [Q_OUT_PENDING] = "SELECT id, tenant_id, topic, body, created_at FROM outbox "
                      "WHERE delivered_at IS NULL ORDER BY id LIMIT ?1",
    [Q_OUT_DONE] = "UPDATE outbox SET delivered_at = ?2 WHERE id = ?1 "
                   "AND delivered_at IS NULL",
    [Q_LOG_ADD] = "INSERT INTO integration_log(at, tenant, source, plugin, action, method, "
                  "path, status, duration_s, body, correlation_id) "
                  "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [Q_DEL_ADD] = "INSERT OR IGNORE INTO deliveries(connection_id, outbox_id, attempts, next_at) "
                  "VALUES(?1, ?2, 0, ?3)",
    [Q_DEL_NEXT] = "SELECT d.connection_id, d.outbox_id, o.tenant_id, o.topic, o.body, "
                   "d.attempts, d.next_at FROM deliveries d JOIN outbox o ON o.id = d.outbox_id "
                   "WHERE d.connection_id = ?1 ORDER BY d.outbox_id LIMIT 1",
    [Q_DEL_DONE] = "DELETE FROM deliveries WHERE connection_id = ?1 AND outbox_id = ?2",
    [Q_DEL_RETRY] = "UPDATE deliveries SET attempts = attempts + 1, next_at = ?3, last_error = ?4 "
                    "WHERE connection_id = ?1 AND outbox_id = ?2",
    [Q_DEL_DUE] = "SELECT DISTINCT connection_id FROM deliveries WHERE next_at <= ?1 LIMIT ?2",
    [Q_OUT_AFTER] = "SELECT id, tenant_id, topic, body, created_at FROM outbox "
                    "WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    [Q_OUT_PRUNE] = "DELETE FROM outbox WHERE created_at < ?1 AND id NOT IN "
                    "(SELECT outbox_id FROM deliveries)",
    [Q_WH_ADD] = "INSERT INTO webhook_endpoints(tenant_id, url, event_types, secret, next_at, "
                 "created_at, cursor) VALUES(?1, ?2, ?3, ?4, ?5, ?5, "
                 "(SELECT coalesce(max(id), 0) FROM outbox))",
    [Q_WH_LIST] = "SELECT " WH_COLS(NULL) " FROM webhook_endpoints "
                  "WHERE ?1 = 0 OR tenant_id = ?1 ORDER BY id",
    [Q_WH_DUE] = "SELECT " WH_COLS(secret) " FROM webhook_endpoints "
                 "WHERE enabled = 1 AND next_at <= ?1 ORDER BY id",
    [Q_WH_ENABLE] = "UPDATE webhook_endpoints SET enabled = 1, failures = 0, "
                    "disabled_at = NULL, next_at = ?3 WHERE id = ?1 AND (?2 = 0 OR tenant_id = ?2)",
    [Q_WH_DISABLE] = "UPDATE webhook_endpoints SET enabled = 0, disabled_at = ?3 "
                     "WHERE id = ?1 AND (?2 = 0 OR tenant_id = ?2)",
    [Q_WH_GET] = "SELECT id FROM webhook_endpoints WHERE id = ?1 AND (?2 = 0 OR tenant_id = ?2)",
    [Q_WH_DELIVERIES] = "SELECT d.outbox_id, o.topic, d.attempts, d.status, d.last_status, "
                        "d.last_error, d.next_at, d.delivered_at FROM webhook_deliveries d "
                        "LEFT JOIN outbox o ON o.id = d.outbox_id WHERE d.endpoint_id = ?1 "
                        "ORDER BY d.outbox_id DESC LIMIT ?2",
    [Q_WH_ATTEMPT] = "INSERT INTO webhook_deliveries(endpoint_id, outbox_id, attempts, status, "
                     "last_status, last_error, next_at, delivered_at) "
                     "VALUES(?1, ?2, 1, ?3, ?4, ?5, ?6, ?7) "
                     "ON CONFLICT(endpoint_id, outbox_id) DO UPDATE SET "
                     "attempts = webhook_deliveries.attempts + 1, status = excluded.status, "
                     "last_status = excluded.last_status, last_error = excluded.last_error, "
                     "next_at = excluded.next_at, delivered_at = excluded.delivered_at",
    [Q_WH_ADVANCE] = "UPDATE webhook_endpoints SET cursor = ?2, failures = 0 WHERE id = ?1",
    [Q_WH_FAILED] = "UPDATE webhook_endpoints SET failures = ?2, next_at = ?3, "
                    "enabled = CASE WHEN ?4 IS NULL THEN enabled ELSE 0 END, "
                    "disabled_at = coalesce(?4, disabled_at) WHERE id = ?1",
    [Q_IDEM_EXPIRE] = "DELETE FROM idempotency WHERE tenant_id = ?1 AND key = ?2 "
                      "AND created_at < ?3",
    [Q_IDEM_RESERVE] = "INSERT INTO idempotency(tenant_id, key, body_hash, status, created_at) "
                       "VALUES(?1, ?2, ?3, 0, ?4) ON CONFLICT DO NOTHING",
    [Q_IDEM_GET] = "SELECT body_hash, status, response FROM idempotency "
                   "WHERE tenant_id = ?1 AND key = ?2",
    [Q_IDEM_COMPLETE] = "UPDATE idempotency SET status = ?3, response = ?4 "
                        "WHERE tenant_id = ?1 AND key = ?2 AND status = 0",
    [Q_IDEM_RELEASE] = "DELETE FROM idempotency WHERE tenant_id = ?1 AND key = ?2 "
                       "AND status = 0",
    [Q_BULK_ADD] = "INSERT INTO bulk_jobs(id, tenant_id, action, params, status, total, "
                   "created_at) VALUES(?1, ?2, ?3, ?4, 'queued', ?5, ?6)",
    [Q_BULK_ITEM_ADD] = "INSERT INTO bulk_items(job_id, idx, record_id) VALUES(?1, ?2, ?3)",
    [Q_BULK_GET] = "SELECT " BULK_COLS " FROM bulk_jobs WHERE id = ?1 AND tenant_id = ?2",
    [Q_BULK_NEXT] = "SELECT " BULK_COLS " FROM bulk_jobs WHERE status IN ('queued', 'running') "
                    "ORDER BY created_at, id LIMIT 1",
    [Q_BULK_STATUS] = "UPDATE bulk_jobs SET status = ?2, finished_at = coalesce(?3, finished_at) "
                      "WHERE id = ?1",
    [Q_BULK_ITEMS] = "SELECT " ITEM_COLS " FROM bulk_items WHERE job_id = ?1 ORDER BY idx",
    [Q_BULK_ITEMS_QUEUED] = "SELECT " ITEM_COLS " FROM bulk_items WHERE job_id = ?1 "
                            "AND status = 'queued' ORDER BY idx",
    [Q_BULK_PRIOR] = "SELECT " ITEM_COLS " FROM bulk_items WHERE job_id = ?1 AND record_id = ?2 "
                     "AND idx < ?3 AND status <> 'queued' ORDER BY idx LIMIT 1",
    [Q_BULK_ITEM_SET] = "UPDATE bulk_items SET status = ?3, error_code = ?4, error_message = ?5 "
                        "WHERE job_id = ?1 AND idx = ?2",
    [Q_REC_MARKS] = "SELECT id, remote_id, remote_deleted_at FROM records "
                    "WHERE connection_id = ?1 AND type = ?2",
    [Q_REC_MARK_DEL] = "UPDATE records SET remote_deleted_at = ?2 WHERE id = ?1",
    [Q_REC_IS_DEL] = "SELECT remote_deleted_at FROM records WHERE id = ?1",
    [Q_STAGE_ADD] = "INSERT INTO stage_history(record_id, tenant_id, from_stage, to_stage, "
                    "changed_at) VALUES(?1, ?2, ?3, ?4, ?5)",
    [Q_STAGE_SINCE] = "SELECT h.record_id, NULL, NULL, max(h.changed_at) AS last "
                      "FROM stage_history h WHERE h.tenant_id = ?1 AND h.changed_at > ?2 "
                      "GROUP BY h.record_id ORDER BY last, h.record_id LIMIT ?3",
    [Q_STAGE_HISTORY] = "SELECT record_id, from_stage, to_stage, changed_at FROM stage_history "
                        "WHERE record_id = ?1 ORDER BY id",
};

/* record_query and log_query compose their WHERE clause from constant
 * fragments chosen by which filters are set; each combination is prepared
 * once and cached under its bit mask. */
enum { RQ_CONN = 1, RQ_UPDATED = 2, RQ_AFTER = 4, RQ_FIELD = 8, RQ_NOCASE = 16, RQ_DELETED = 32 };
#define RQ_VARIANTS 64
enum { LQ_TENANT = 1, LQ_SOURCE = 2, LQ_ACTION = 4, LQ_STATUS = 8, LQ_SINCE = 16,
       LQ_UNTIL = 32 };
#define LQ_VARIANTS 64

typedef struct sq_store {
    ah_store base; /* first: ah_store * <-> sq_store * */
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *q[Q_COUNT];
    sqlite3_stmt *rq[RQ_VARIANTS];
    sqlite3_stmt *lq[LQ_VARIANTS];
    int fail_after; /* test hook: < 0 off */
    int scope_depth; /* scope_begin nesting; mu is held while > 0 */
    bool sp_active;  /* an operation's savepoint is open inside the scope */
    char *scratch;  /* content-hash input buffer, reused across rows */
    size_t scratch_cap;
} sq_store;

static const ah_store_ops sq_ops;

static sq_store *SQ(ah_store *s)
{
    return (sq_store *)s;
}

/* ---- helpers (all called with s->mu held) ------------------------------ */

static void sq_log_db(sq_store *s, const char *what)
{
    ah_log(s->base.lg, AH_LOG_ERROR, "store", "sqlite: %s: %s (code %d)", what,
           sqlite3_errmsg(s->db), sqlite3_extended_errcode(s->db));
}

static sqlite3_stmt *prep(sq_store *s, sqlite3_stmt **slot, const char *sql)
{
    if (*slot != NULL)
        return *slot;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) !=
        SQLITE_OK) {
        sq_log_db(s, "prepare");
        *slot = NULL;
        return NULL;
    }
    return *slot;
}

static sqlite3_stmt *get(sq_store *s, qid id)
{
    return prep(s, &s->q[id], q_sql[id]);
}

/* Strings are bound SQLITE_STATIC: every caller keeps them alive until it
 * resets the statement with done(), which also drops the bindings. */
static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v == NULL)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

static void done(sqlite3_stmt *st)
{
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

/* Maps a failed step to a store result; expected constraint outcomes are
 * returned quietly, everything else is logged. */
static int step_error(sq_store *s, int rc, const char *what)
{
    /* Extended result codes are on: rc already carries the detail. */
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return AH_STORE_EXISTS;
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return AH_STORE_NOT_FOUND;
    sq_log_db(s, what);
    return AH_STORE_ERR;
}

/* Runs a statement that returns no rows; done() is left to the caller. */
static int run(sq_store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return AH_STORE_OK;
    return step_error(s, rc, what);
}

static int exec_q(sq_store *s, qid id, const char *what)
{
    sqlite3_stmt *st = get(s, id);
    if (st == NULL)
        return AH_STORE_ERR;
    int rc = run(s, st, what);
    done(st);
    return rc;
}

/* Inside a scope (scope_begin .. scope_end) an operation's transaction is a
 * savepoint of the scope's transaction: its failure undoes only its own
 * writes, and everything commits together at scope_end. */
static int tx_begin(sq_store *s)
{
    if (s->scope_depth > 0) {
        if (exec_q(s, Q_SAVEPOINT, "savepoint") != AH_STORE_OK)
            return AH_STORE_ERR;
        s->sp_active = true;
        return AH_STORE_OK;
    }
    return exec_q(s, Q_BEGIN, "begin") == AH_STORE_OK ? AH_STORE_OK : AH_STORE_ERR;
}

static void tx_rollback(sq_store *s)
{
    if (s->scope_depth > 0) {
        if (s->sp_active) {
            exec_q(s, Q_ROLLBACK_TO, "rollback to savepoint");
            exec_q(s, Q_RELEASE, "release savepoint");
            s->sp_active = false;
        }
        return;
    }
    /* SQLite may already have rolled back by itself (e.g. after SQLITE_FULL). */
    if (!sqlite3_get_autocommit(s->db))
        exec_q(s, Q_ROLLBACK, "rollback");
}

static int tx_commit(sq_store *s)
{
    if (s->scope_depth > 0) {
        if (exec_q(s, Q_RELEASE, "release savepoint") == AH_STORE_OK) {
            s->sp_active = false;
            return AH_STORE_OK;
        }
        tx_rollback(s);
        return AH_STORE_ERR;
    }
    if (exec_q(s, Q_COMMIT, "commit") == AH_STORE_OK)
        return AH_STORE_OK;
    if (!sqlite3_get_autocommit(s->db))
        exec_q(s, Q_ROLLBACK, "rollback");
    return AH_STORE_ERR;
}

static char *col_dup(sqlite3_stmt *st, int i, bool *oom)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (t == NULL)
        return NULL;
    char *d = strdup((const char *)t);
    if (d == NULL)
        *oom = true;
    return d;
}

static void lock(sq_store *s)
{
    pthread_mutex_lock(&s->mu);
}

static void unlock(sq_store *s)
{
    pthread_mutex_unlock(&s->mu);
}

/* Growable array of rows for the collect-then-callback pattern. */
typedef struct rowvec {
    void *items;
    size_t n, cap, elem;
} rowvec;

static void *rowvec_push(rowvec *v)
{
    if (v->n == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 16;
        void *ni = realloc(v->items, ncap * v->elem);
        if (ni == NULL)
            return NULL;
        v->items = ni;
        v->cap = ncap;
    }
    void *slot = (char *)v->items + v->n * v->elem;
    memset(slot, 0, v->elem);
    v->n++;
    return slot;
}

static int mkdir_parents(const char *path)
{
    char *dup = strdup(path);
    if (dup == NULL)
        return -1;
    char *slash = strrchr(dup, '/');
    if (slash == NULL || slash == dup) {
        free(dup);
        return 0;
    }
    *slash = '\0';
    for (char *p = dup + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(dup, 0750) != 0 && errno != EEXIST) {
                free(dup);
                return -1;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    free(dup);
    return 0;
}

/* ---- row fillers --------------------------------------------------------- */

static bool fill_tenant(sqlite3_stmt *st, ah_tenant_row *r)
{
    bool oom = false;
    r->id = sqlite3_column_int64(st, 0);
    r->name = col_dup(st, 1, &oom);
    r->key_hash = col_dup(st, 2, &oom);
    r->created_at = col_dup(st, 3, &oom);
    return !oom;
}

static bool fill_conn(sqlite3_stmt *st, ah_connection_row *r)
{
    bool oom = false;
    r->id = sqlite3_column_int64(st, 0);
    r->tenant_id = sqlite3_column_int64(st, 1);
    r->tenant = col_dup(st, 2, &oom);
    r->plugin = col_dup(st, 3, &oom);
    r->name = col_dup(st, 4, &oom);
    r->enabled = sqlite3_column_int(st, 5) != 0;
    r->settings = col_dup(st, 6, &oom);
    r->created_at = col_dup(st, 7, &oom);
    r->updated_at = col_dup(st, 8, &oom);
    return !oom;
}

static bool fill_record(sqlite3_stmt *st, ah_record_row *r)
{
    bool oom = false;
    r->id = col_dup(st, 0, &oom);
    r->connection_id = sqlite3_column_int64(st, 1);
    r->type = col_dup(st, 2, &oom);
    r->remote_id = col_dup(st, 3, &oom);
    r->updated_at = col_dup(st, 4, &oom);
    r->raw = col_dup(st, 5, &oom);
    r->fields = col_dup(st, 6, &oom);
    r->created_at = col_dup(st, 7, &oom);
    r->stored_at = col_dup(st, 8, &oom);
    return !oom;
}

static bool fill_log(sqlite3_stmt *st, ah_log_entry *e)
{
    bool oom = false;
    e->id = sqlite3_column_int64(st, 0);
    e->at = col_dup(st, 1, &oom);
    e->tenant = col_dup(st, 2, &oom);
    e->source = col_dup(st, 3, &oom);
    e->plugin = col_dup(st, 4, &oom);
    e->action = col_dup(st, 5, &oom);
    e->method = col_dup(st, 6, &oom);
    e->path = col_dup(st, 7, &oom);
    e->status = sqlite3_column_int(st, 8);
    e->duration_s = sqlite3_column_double(st, 9);
    e->body = col_dup(st, 10, &oom);
    e->correlation_id = col_dup(st, 11, &oom);
    return !oom;
}

static void log_entry_free(ah_log_entry *e)
{
    free(e->at);
    free(e->tenant);
    free(e->source);
    free(e->plugin);
    free(e->action);
    free(e->method);
    free(e->path);
    free(e->body);
    free(e->correlation_id);
}

static bool fill_outbox(sqlite3_stmt *st, ah_outbox_row *r)
{
    bool oom = false;
    r->id = sqlite3_column_int64(st, 0);
    r->tenant_id = sqlite3_column_int64(st, 1);
    r->topic = col_dup(st, 2, &oom);
    r->body = col_dup(st, 3, &oom);
    r->created_at = col_dup(st, 4, &oom);
    return !oom;
}

static void outbox_row_free(ah_outbox_row *r)
{
    free(r->topic);
    free(r->body);
    free(r->created_at);
}

typedef bool (*fill_fn)(sqlite3_stmt *st, void *row);
typedef void (*free_fn)(void *row);

/* Steps a bound statement to the end, copying every row into v. */
static int collect(sq_store *s, sqlite3_stmt *st, rowvec *v, fill_fn fill, free_fn fr,
                   const char *what)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        void *row = rowvec_push(v);
        if (row == NULL) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store", "%s: out of memory", what);
            return AH_STORE_ERR;
        }
        if (!fill(st, row)) {
            fr(row);
            v->n--;
            ah_log(s->base.lg, AH_LOG_ERROR, "store", "%s: out of memory", what);
            return AH_STORE_ERR;
        }
    }
    if (rc != SQLITE_DONE)
        return step_error(s, rc, what);
    return AH_STORE_OK;
}

static void tenant_free_v(void *r)
{
    ah_tenant_row_free(r);
}
static void conn_free_v(void *r)
{
    ah_connection_row_free(r);
}
static void record_free_v(void *r)
{
    ah_record_row_free(r);
}
static void log_free_v(void *r)
{
    log_entry_free(r);
}
static void outbox_free_v(void *r)
{
    outbox_row_free(r);
}
static bool fill_tenant_v(sqlite3_stmt *st, void *r)
{
    return fill_tenant(st, r);
}
static bool fill_conn_v(sqlite3_stmt *st, void *r)
{
    return fill_conn(st, r);
}
static bool fill_record_v(sqlite3_stmt *st, void *r)
{
    return fill_record(st, r);
}
static bool fill_log_v(sqlite3_stmt *st, void *r)
{
    return fill_log(st, r);
}
static bool fill_outbox_v(sqlite3_stmt *st, void *r)
{
    return fill_outbox(st, r);
}

static void rowvec_free(rowvec *v, free_fn fr)
{
    for (size_t i = 0; i < v->n; i++)
        fr((char *)v->items + i * v->elem);
    free(v->items);
    v->items = NULL;
    v->n = v->cap = 0;
}

/* Runs a statement expected to return at most one row into *out. */
static int get_one(sq_store *s, sqlite3_stmt *st, void *out, fill_fn fill, free_fn fr,
                   const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return AH_STORE_NOT_FOUND;
    if (rc != SQLITE_ROW)
        return step_error(s, rc, what);
    if (!fill(st, out)) {
        fr(out);
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "%s: out of memory", what);
        return AH_STORE_ERR;
    }
    return AH_STORE_OK;
}

/* ---- lifecycle and schema ------------------------------------------------- */

static void sq_close(ah_store *st)
{
    if (st == NULL)
        return;
    sq_store *s = SQ(st);
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->q[i]);
    for (int i = 0; i < RQ_VARIANTS; i++)
        sqlite3_finalize(s->rq[i]);
    for (int i = 0; i < LQ_VARIANTS; i++)
        sqlite3_finalize(s->lq[i]);
    if (sqlite3_close(s->db) != SQLITE_OK)
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "sqlite: close: %s", sqlite3_errmsg(s->db));
    pthread_mutex_destroy(&s->mu);
    free(s->scratch);
    free(s);
}

/* Current schema version; 0 for an empty database, -1 on error. */
static int schema_version_locked(sq_store *s)
{
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT coalesce(max(version), 0) FROM schema_migrations";
    int exists = 0;
    sqlite3_stmt *chk = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                           "AND name = 'schema_migrations'",
                           -1, &chk, NULL) != SQLITE_OK) {
        sq_log_db(s, "schema version");
        return -1;
    }
    if (sqlite3_step(chk) == SQLITE_ROW)
        exists = sqlite3_column_int(chk, 0);
    else
        exists = -1;
    sqlite3_finalize(chk);
    if (exists < 0) {
        sq_log_db(s, "schema version");
        return -1;
    }
    if (exists == 0)
        return 0;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        sq_log_db(s, "schema version");
        return -1;
    }
    int v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    else
        sq_log_db(s, "schema version");
    sqlite3_finalize(st);
    return v;
}

static int exec_sql(sq_store *s, const char *sql, const char *what)
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
static int apply_step(sq_store *s, int v)
{
    if (tx_begin(s) != AH_STORE_OK)
        return AH_STORE_ERR;
    int cur = schema_version_locked(s);
    if (cur < 0)
        goto fail;
    if (cur >= v) {
        tx_rollback(s);
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
    if (tx_commit(s) != AH_STORE_OK)
        return AH_STORE_ERR;
    ah_log(s->base.lg, AH_LOG_INFO, "store", "applied schema migration %d", v);
    return AH_STORE_OK;
fail:
    tx_rollback(s);
    return AH_STORE_ERR;
}

static int migrate_to_locked(sq_store *s, int target)
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

static int sq_migrate(ah_store *st)
{
    sq_store *s = SQ(st);
    lock(s);
    int rc = migrate_to_locked(s, AH_SQ_LATEST);
    unlock(s);
    return rc;
}

static int sq_schema_version(ah_store *st)
{
    sq_store *s = SQ(st);
    lock(s);
    int v = schema_version_locked(s);
    unlock(s);
    return v < 0 ? AH_STORE_ERR : v;
}

static int sq_ping(ah_store *st)
{
    sq_store *s = SQ(st);
    lock(s);
    int rc = exec_q(s, Q_PING, "ping");
    unlock(s);
    return rc;
}

static int64_t sq_data_version(ah_store *st)
{
    sq_store *s = SQ(st);
    int64_t v = -1;
    lock(s);
    sqlite3_stmt *q = get(s, Q_DATA_VERSION);
    if (q != NULL) {
        if (sqlite3_step(q) == SQLITE_ROW)
            v = sqlite3_column_int64(q, 0);
        else
            sq_log_db(s, "data_version");
        done(q);
    }
    unlock(s);
    return v;
}

/* ---- tenants ---------------------------------------------------------------- */

static int sq_tenant_add(ah_store *st, const char *name, const char *key_hash,
                         int64_t *id_out)
{
    sq_store *s = SQ(st);
    if (name == NULL || key_hash == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_TENANT_ADD);
    if (q != NULL) {
        bind_text(q, 1, name);
        bind_text(q, 2, key_hash);
        bind_text(q, 3, now);
        rc = run(s, q, "tenant_add");
        if (rc == AH_STORE_OK && id_out != NULL)
            *id_out = sqlite3_last_insert_rowid(s->db);
        done(q);
    }
    unlock(s);
    return rc;
}

static int tenant_get_by(ah_store *st, qid id, const char *key, ah_tenant_row *out)
{
    sq_store *s = SQ(st);
    if (key == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, id);
    if (q != NULL) {
        bind_text(q, 1, key);
        rc = get_one(s, q, out, fill_tenant_v, tenant_free_v, "tenant_get");
        done(q);
    }
    unlock(s);
    return rc;
}

static int sq_tenant_get(ah_store *st, const char *name, ah_tenant_row *out)
{
    return tenant_get_by(st, Q_TENANT_GET, name, out);
}

static int sq_tenant_by_key_hash(ah_store *st, const char *key_hash, ah_tenant_row *out)
{
    return tenant_get_by(st, Q_TENANT_BY_HASH, key_hash, out);
}

static int sq_tenant_list(ah_store *st, ah_tenant_cb cb, void *arg)
{
    sq_store *s = SQ(st);
    rowvec v = {.elem = sizeof(ah_tenant_row)};
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_TENANT_LIST);
    if (q != NULL) {
        rc = collect(s, q, &v, fill_tenant_v, tenant_free_v, "tenant_list");
        done(q);
    }
    unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_tenant_row *)v.items + i);
    rowvec_free(&v, tenant_free_v);
    return rc;
}

static int sq_tenant_remove(ah_store *st, const char *name)
{
    sq_store *s = SQ(st);
    if (name == NULL)
        return AH_STORE_ERR;
    static const qid steps[] = {Q_TENANT_DEL_SEQ, Q_TENANT_DEL_OUTBOX, Q_TENANT_DEL};
    lock(s);
    int rc = tx_begin(s);
    for (size_t i = 0; rc == AH_STORE_OK && i < sizeof steps / sizeof steps[0]; i++) {
        sqlite3_stmt *q = get(s, steps[i]);
        if (q == NULL) {
            rc = AH_STORE_ERR;
            break;
        }
        bind_text(q, 1, name);
        rc = run(s, q, "tenant_remove");
        if (rc == AH_STORE_OK && steps[i] == Q_TENANT_DEL && sqlite3_changes(s->db) == 0)
            rc = AH_STORE_NOT_FOUND;
        done(q);
    }
    if (rc == AH_STORE_OK)
        rc = tx_commit(s);
    else if (!sqlite3_get_autocommit(s->db))
        tx_rollback(s);
    unlock(s);
    return rc;
}

/* ---- connections ------------------------------------------------------------- */

static int sq_connection_add(ah_store *st, int64_t tenant_id, const char *plugin,
                             const char *name, const char *settings_json, int64_t *id_out)
{
    sq_store *s = SQ(st);
    if (plugin == NULL || name == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_CONN_ADD);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, tenant_id);
        bind_text(q, 2, plugin);
        bind_text(q, 3, name);
        bind_text(q, 4, settings_json != NULL ? settings_json : "{}");
        bind_text(q, 5, now);
        rc = run(s, q, "connection_add");
        if (rc == AH_STORE_OK && id_out != NULL)
            *id_out = sqlite3_last_insert_rowid(s->db);
        done(q);
    }
    unlock(s);
    return rc;
}

static int sq_connection_get(ah_store *st, const char *tenant, const char *name,
                             ah_connection_row *out)
{
    sq_store *s = SQ(st);
    if (tenant == NULL || name == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_CONN_GET);
    if (q != NULL) {
        bind_text(q, 1, tenant);
        bind_text(q, 2, name);
        rc = get_one(s, q, out, fill_conn_v, conn_free_v, "connection_get");
        done(q);
    }
    unlock(s);
    return rc;
}

static int sq_connection_list(ah_store *st, const char *tenant, ah_connection_cb cb,
                              void *arg)
{
    sq_store *s = SQ(st);
    rowvec v = {.elem = sizeof(ah_connection_row)};
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, tenant != NULL ? Q_CONN_LIST_TENANT : Q_CONN_LIST_ALL);
    if (q != NULL) {
        if (tenant != NULL)
            bind_text(q, 1, tenant);
        rc = collect(s, q, &v, fill_conn_v, conn_free_v, "connection_list");
        done(q);
    }
    unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_connection_row *)v.items + i);
    rowvec_free(&v, conn_free_v);
    return rc;
}

/* UPDATE/DELETE by id: NOT_FOUND when no row matched. */
static int change_by_id(sq_store *s, sqlite3_stmt *q, const char *what)
{
    int rc = run(s, q, what);
    if (rc == AH_STORE_OK && sqlite3_changes(s->db) == 0)
        rc = AH_STORE_NOT_FOUND;
    done(q);
    return rc;
}

static int sq_connection_update(ah_store *st, int64_t id, const char *settings_json)
{
    sq_store *s = SQ(st);
    char now[32];
    ah_now_iso(now);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_CONN_UPDATE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        bind_text(q, 2, settings_json != NULL ? settings_json : "{}");
        bind_text(q, 3, now);
        rc = change_by_id(s, q, "connection_update");
    }
    unlock(s);
    return rc;
}

static int sq_connection_set_enabled(ah_store *st, int64_t id, bool enabled)
{
    sq_store *s = SQ(st);
    char now[32];
    ah_now_iso(now);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_CONN_ENABLE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int(q, 2, enabled ? 1 : 0);
        bind_text(q, 3, now);
        rc = change_by_id(s, q, "connection_set_enabled");
    }
    unlock(s);
    return rc;
}

static int sq_connection_remove(ah_store *st, int64_t id)
{
    sq_store *s = SQ(st);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_CONN_DEL);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        rc = change_by_id(s, q, "connection_remove");
    }
    unlock(s);
    return rc;
}

/* ---- records ----------------------------------------------------------------- */

/* SHA-256 of raw "\n" fields, the unchanged-detection key. */
static int content_hash(sq_store *s, const char *raw, const char *fields,
                        char out[AH_SHA256_HEX_LEN + 1])
{
    size_t rl = strlen(raw), fl = strlen(fields), need = rl + 1 + fl;
    if (need > s->scratch_cap) {
        size_t ncap = s->scratch_cap ? s->scratch_cap : 4096;
        while (ncap < need)
            ncap *= 2;
        char *nb = realloc(s->scratch, ncap);
        if (nb == NULL)
            return -1;
        s->scratch = nb;
        s->scratch_cap = ncap;
    }
    memcpy(s->scratch, raw, rl);
    s->scratch[rl] = '\n';
    memcpy(s->scratch + rl + 1, fields, fl);
    ah_sha256_hex(s->scratch, need, out);
    return out[0] != '\0' ? 0 : -1;
}

/* Record ids: "rec_" + 12 hex digits of the creation time in milliseconds
 * + 12 random hex digits (24 in all). Time first so that new ids land at
 * the right edge of the primary-key b-tree: with purely random ids every
 * insert of a large sync dirties a different index page and the WAL
 * traffic grows with the table (measured: ~6k records/s at 200k rows).
 * Keyset paging by id then also follows creation order. Random bytes are
 * drawn for many ids at once: RAND_bytes has a fixed cost per call. */
#define AH_IDGEN_BATCH 64

typedef struct idgen {
    unsigned char rnd[AH_IDGEN_BATCH * AH_REC_ID_RANDOM_BYTES];
    size_t pos; /* next unused byte; sizeof rnd: empty */
} idgen;

static const char hexd[] = "0123456789abcdef";

static int new_record_id(idgen *g, char id[64])
{
    if (g->pos + AH_REC_ID_RANDOM_BYTES > sizeof g->rnd) {
        if (ah_random_bytes(g->rnd, sizeof g->rnd) != 0)
            return -1;
        g->pos = 0;
    }
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return -1;
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    size_t n = strlen(AH_REC_ID_PREFIX);
    memcpy(id, AH_REC_ID_PREFIX, n);
    for (int i = 11; i >= 0; i--) {
        id[n + (size_t)i] = hexd[ms & 0xf];
        ms >>= 4;
    }
    n += 12;
    for (int i = 0; i < AH_REC_ID_RANDOM_BYTES; i++) {
        unsigned char b = g->rnd[g->pos++];
        id[n++] = hexd[b >> 4];
        id[n++] = hexd[b & 0xf];
    }
    id[n] = '\0';
    return 0;
}

/* Inserts the record unless (connection, type, remote id) exists; *created
 * tells which. */
static int rec_insert(sq_store *s, const char *id, int64_t cid, const ah_record_in *r,
                      const char *raw, const char *fields, const char *hash,
                      const char *now, bool *created)
{
    sqlite3_stmt *ins = get(s, Q_REC_INSERT);
    if (ins == NULL)
        return AH_STORE_ERR;
    bind_text(ins, 1, id);
    sqlite3_bind_int64(ins, 2, cid);
    bind_text(ins, 3, r->type);
    bind_text(ins, 4, r->remote_id);
    bind_text(ins, 5, r->updated_at);
    bind_text(ins, 6, raw);
    bind_text(ins, 7, fields);
    bind_text(ins, 8, hash);
    bind_text(ins, 9, now);
    int rc = run(s, ins, "records_upsert insert");
    done(ins);
    *created = rc == AH_STORE_OK && sqlite3_changes(s->db) == 1;
    return rc;
}

/* Looks the record up: *found, its id into id and whether its content hash
 * equals `hash` into *same. */
static int rec_lookup(sq_store *s, int64_t cid, const ah_record_in *r, const char *hash,
                      char id[64], bool *found, bool *same)
{
    sqlite3_stmt *look = get(s, Q_REC_LOOKUP);
    if (look == NULL)
        return AH_STORE_ERR;
    sqlite3_bind_int64(look, 1, cid);
    bind_text(look, 2, r->type);
    bind_text(look, 3, r->remote_id);
    int rc = AH_STORE_OK;
    int st = sqlite3_step(look);
    *found = *same = false;
    if (st == SQLITE_ROW) {
        const char *oid = (const char *)sqlite3_column_text(look, 0);
        const char *ohash = (const char *)sqlite3_column_text(look, 1);
        if (oid == NULL || strlen(oid) >= 64) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: bad stored id");
            rc = AH_STORE_ERR;
        } else {
            memcpy(id, oid, strlen(oid) + 1);
            *found = true;
            *same = ohash != NULL && strcmp(ohash, hash) == 0;
        }
    } else if (st != SQLITE_DONE) {
        rc = step_error(s, st, "records_upsert lookup");
    }
    done(look);
    return rc;
}

/* One record inside the page transaction. Pages tend to be all new (a
 * first sync) or all known (a re-sync): *known_hint, the previous record's
 * fate, picks which statement to try first, so that either case costs one
 * index descent per record rather than two. An existing record is
 * rewritten only when its content hash differs. */
static int upsert_one(sq_store *s, idgen *g, int64_t cid, const ah_record_in *r,
                      const char *now, bool *known_hint, ah_upsert_result *result,
                      char **id_out)
{
    if (r->type == NULL || r->remote_id == NULL) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store",
               "records_upsert: a record without type or remote_id");
        return AH_STORE_ERR;
    }
    const char *raw = r->raw != NULL ? r->raw : "null";
    const char *fields = r->fields != NULL ? r->fields : "{}";
    char hash[AH_SHA256_HEX_LEN + 1];
    if (content_hash(s, raw, fields, hash) != 0) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: out of memory");
        return AH_STORE_ERR;
    }
    char id[64], newid[64];
    bool created = false, found = false, same = false;
    int rc;
    if (!*known_hint) {
        if (new_record_id(g, newid) != 0)
            goto no_random;
        rc = rec_insert(s, newid, cid, r, raw, fields, hash, now, &created);
        if (rc != AH_STORE_OK)
            return rc;
    }
    if (!created) {
        rc = rec_lookup(s, cid, r, hash, id, &found, &same);
        if (rc != AH_STORE_OK)
            return rc;
        if (!found && *known_hint) {
            if (new_record_id(g, newid) != 0)
                goto no_random;
            rc = rec_insert(s, newid, cid, r, raw, fields, hash, now, &created);
            if (rc != AH_STORE_OK)
                return rc;
        }
        if (!found && !created) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store",
                   "records_upsert: record neither inserted nor found");
            return AH_STORE_ERR;
        }
    }
    *known_hint = found;
    if (created) {
        memcpy(id, newid, strlen(newid) + 1);
        *result = AH_REC_CREATED;
    } else if (same) {
        *result = AH_REC_UNCHANGED;
    } else {
        sqlite3_stmt *up = get(s, Q_REC_UPDATE);
        if (up == NULL)
            return AH_STORE_ERR;
        bind_text(up, 1, id);
        bind_text(up, 2, r->updated_at);
        bind_text(up, 3, raw);
        bind_text(up, 4, fields);
        bind_text(up, 5, hash);
        bind_text(up, 6, now);
        rc = run(s, up, "records_upsert update");
        done(up);
        if (rc != AH_STORE_OK)
            return rc;
        *result = AH_REC_UPDATED;
    }
    if (id_out != NULL) {
        *id_out = strdup(id);
        if (*id_out == NULL) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: out of memory");
            return AH_STORE_ERR;
        }
    }
    return AH_STORE_OK;
no_random:
    ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: no randomness");
    return AH_STORE_ERR;
}

static int sq_records_upsert(ah_store *st, int64_t connection_id, const ah_record_in *in,
                             size_t n, const char *cursor_key, const char *cursor_value,
                             ah_upsert_result *results, char **ids_out)
{
    sq_store *s = SQ(st);
    if (n > 0 && in == NULL)
        return AH_STORE_ERR;
    if (cursor_key != NULL && cursor_value == NULL)
        return AH_STORE_ERR;
    if (ids_out != NULL)
        for (size_t i = 0; i < n; i++)
            ids_out[i] = NULL;
    char now[32];
    ah_now_iso(now);

    idgen gen;
    gen.pos = sizeof gen.rnd;
    bool known = false;

    lock(s);
    int fail_after = s->fail_after;
    s->fail_after = -1;
    int rc = tx_begin(s);
    if (rc != AH_STORE_OK) {
        unlock(s);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (fail_after >= 0 && (size_t)fail_after == i) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store",
                   "records_upsert: failing after %d records (test hook)", fail_after);
            rc = AH_STORE_ERR;
            goto rollback;
        }
        ah_upsert_result res = AH_REC_UNCHANGED;
        rc = upsert_one(s, &gen, connection_id, &in[i], now, &known, &res,
                        ids_out != NULL ? &ids_out[i] : NULL);
        if (rc != AH_STORE_OK)
            goto rollback;
        if (results != NULL)
            results[i] = res;
    }
    if (fail_after >= 0 && (size_t)fail_after == n) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store",
               "records_upsert: failing before the cursor (test hook)");
        rc = AH_STORE_ERR;
        goto rollback;
    }
    if (cursor_key != NULL) {
        sqlite3_stmt *q = get(s, Q_CUR_SET);
        if (q == NULL) {
            rc = AH_STORE_ERR;
            goto rollback;
        }
        sqlite3_bind_int64(q, 1, connection_id);
        bind_text(q, 2, cursor_key);
        bind_text(q, 3, cursor_value);
        rc = run(s, q, "records_upsert cursor");
        done(q);
        if (rc != AH_STORE_OK)
            goto rollback;
    }
    rc = tx_commit(s);
    if (rc != AH_STORE_OK)
        goto failed;
    unlock(s);
    return AH_STORE_OK;

rollback:
    tx_rollback(s);
failed:
    unlock(s);
    if (ids_out != NULL)
        for (size_t i = 0; i < n; i++) {
            free(ids_out[i]);
            ids_out[i] = NULL;
        }
    return rc;
}

static int sq_record_get(ah_store *st, int64_t connection_id, const char *type,
                         const char *remote_id, ah_record_row *out)
{
    sq_store *s = SQ(st);
    if (type == NULL || remote_id == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_REC_GET);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, connection_id);
        bind_text(q, 2, type);
        bind_text(q, 3, remote_id);
        rc = get_one(s, q, out, fill_record_v, record_free_v, "record_get");
        done(q);
    }
    unlock(s);
    return rc;
}

static int sq_record_get_by_id(ah_store *st, int64_t tenant_id, const char *id,
                               ah_record_row *out)
{
    sq_store *s = SQ(st);
    if (id == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_REC_GET_BY_ID);
    if (q != NULL) {
        bind_text(q, 1, id);
        sqlite3_bind_int64(q, 2, tenant_id);
        rc = get_one(s, q, out, fill_record_v, record_free_v, "record_get_by_id");
        done(q);
    }
    unlock(s);
    return rc;
}

static bool valid_field_key(const char *k)
{
    if (k == NULL || *k == '\0' || strlen(k) > 128)
        return false;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
              (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

static sqlite3_stmt *record_query_stmt(sq_store *s, unsigned mask)
{
    if (s->rq[mask] != NULL)
        return s->rq[mask];
    char sql[1024];
    /* Only constant fragments go into the text; every value is bound.
     * JSON values are compared as text so that a field holding the number
     * 5 matches the filter "5". */
    snprintf(sql, sizeof sql,
             "SELECT " REC_COLS " FROM records r JOIN connections c "
             "ON c.id = r.connection_id WHERE c.tenant_id = ?1 AND r.type = ?2%s%s%s%s%s "
             "ORDER BY r.id LIMIT ?8",
             (mask & RQ_DELETED) ? "" : " AND r.remote_deleted_at IS NULL",
             (mask & RQ_CONN) ? " AND r.connection_id = ?3" : "",
             (mask & RQ_UPDATED) ? " AND julianday(r.updated_at) > julianday(?4)" : "",
             (mask & RQ_AFTER) ? " AND r.id > ?5" : "",
             !(mask & RQ_FIELD) ? ""
             : (mask & RQ_NOCASE)
                 ? " AND lower(trim(CAST(json_extract(r.fields, '$.' || ?6) AS TEXT)))"
                   " = lower(trim(?7))"
                 : " AND CAST(json_extract(r.fields, '$.' || ?6) AS TEXT) = ?7");
    return prep(s, &s->rq[mask], sql);
}

static int sq_record_query(ah_store *st, const ah_record_query *qy, ah_record_cb cb,
                           void *arg)
{
    sq_store *s = SQ(st);
    if (qy == NULL || qy->type == NULL)
        return AH_STORE_ERR;
    unsigned mask = 0;
    char updated_after[32];
    if (qy->connection_id != 0)
        mask |= RQ_CONN;
    if (qy->updated_after != NULL) {
        if (ah_iso_normalize(qy->updated_after, updated_after) != 0) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store",
                   "record_query: updated_after is not an ISO-8601 time");
            return AH_STORE_ERR;
        }
        mask |= RQ_UPDATED;
    }
    if (qy->after_id != NULL)
        mask |= RQ_AFTER;
    if (qy->include_deleted)
        mask |= RQ_DELETED;
    if (qy->field_key != NULL) {
        if (!valid_field_key(qy->field_key) || qy->field_value == NULL) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store",
                   "record_query: field filter key must match [A-Za-z0-9_]+ and have a "
                   "value");
            return AH_STORE_ERR;
        }
        mask |= RQ_FIELD;
        if (qy->field_nocase)
            mask |= RQ_NOCASE;
    }
    int limit = qy->limit <= 0 ? 100 : qy->limit > 1000 ? 1000 : qy->limit;

    rowvec v = {.elem = sizeof(ah_record_row)};
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = record_query_stmt(s, mask);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, qy->tenant_id);
        bind_text(q, 2, qy->type);
        if (mask & RQ_CONN)
            sqlite3_bind_int64(q, 3, qy->connection_id);
        if (mask & RQ_UPDATED)
            bind_text(q, 4, updated_after);
        if (mask & RQ_AFTER)
            bind_text(q, 5, qy->after_id);
        if (mask & RQ_FIELD) {
            bind_text(q, 6, qy->field_key);
            bind_text(q, 7, qy->field_value);
        }
        sqlite3_bind_int(q, 8, limit);
        rc = collect(s, q, &v, fill_record_v, record_free_v, "record_query");
        done(q);
    }
    unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_record_row *)v.items + i);
    rowvec_free(&v, record_free_v);
    return rc;
}

static int64_t sq_record_count(ah_store *st, int64_t connection_id, const char *type)
{
    sq_store *s = SQ(st);
    int64_t n = AH_STORE_ERR;
    lock(s);
    sqlite3_stmt *q = get(s, type != NULL ? Q_REC_COUNT : Q_REC_COUNT_ALL);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, connection_id);
        if (type != NULL)
            bind_text(q, 2, type);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            n = sqlite3_column_int64(q, 0);
        else
            n = step_error(s, rc, "record_count");
        done(q);
    }
    unlock(s);
    return n;
}

static int sq_cursor_get(ah_store *st, int64_t connection_id, const char *key,
                         char **value_out)
{
    sq_store *s = SQ(st);
    if (key == NULL || value_out == NULL)
        return AH_STORE_ERR;
    *value_out = NULL;
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_CUR_GET);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, connection_id);
        bind_text(q, 2, key);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            bool oom = false;
            *value_out = col_dup(q, 0, &oom);
            rc = oom ? AH_STORE_ERR : AH_STORE_OK;
        } else if (r == SQLITE_DONE) {
            rc = AH_STORE_OK;
        } else {
            rc = step_error(s, r, "cursor_get");
        }
        done(q);
    }
    unlock(s);
    return rc;
}

static int sq_cursor_set(ah_store *st, int64_t connection_id, const char *key,
                         const char *value)
{
    sq_store *s = SQ(st);
    if (key == NULL || value == NULL)
        return AH_STORE_ERR;
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_CUR_SET);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, connection_id);
        bind_text(q, 2, key);
        bind_text(q, 3, value);
        rc = run(s, q, "cursor_set");
        done(q);
    }
    unlock(s);
    return rc;
}

/* ---- sequences, outbox --------------------------------------------------------- */

static int sq_sequence_next(ah_store *st, int64_t tenant_id, const char *name, int64_t *out)
{
    sq_store *s = SQ(st);
    if (name == NULL || out == NULL)
        return AH_STORE_ERR;
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_SEQ_NEXT);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, tenant_id);
        bind_text(q, 2, name);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            *out = sqlite3_column_int64(q, 0);
            /* Step to completion so the statement's write is finished
             * before reset (RETURNING rows are produced before commit). */
            r = sqlite3_step(q);
            rc = r == SQLITE_DONE ? AH_STORE_OK : step_error(s, r, "sequence_next");
        } else {
            rc = step_error(s, r, "sequence_next");
        }
        done(q);
    }
    unlock(s);
    return rc;
}

static int sq_outbox_add(ah_store *st, int64_t tenant_id, const char *topic,
                         const char *body, int64_t *id_out)
{
    sq_store *s = SQ(st);
    if (topic == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_OUT_ADD);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, tenant_id);
        bind_text(q, 2, topic);
        bind_text(q, 3, body != NULL ? body : "{}");
        bind_text(q, 4, now);
        rc = run(s, q, "outbox_add");
        if (rc == AH_STORE_OK && id_out != NULL)
            *id_out = sqlite3_last_insert_rowid(s->db);
        done(q);
    }
    unlock(s);
    return rc;
}

static int sq_outbox_pending(ah_store *st, int limit, ah_outbox_cb cb, void *arg)
{
    sq_store *s = SQ(st);
    rowvec v = {.elem = sizeof(ah_outbox_row)};
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_OUT_PENDING);
    if (q != NULL) {
        sqlite3_bind_int(q, 1, limit > 0 ? limit : 100);
        rc = collect(s, q, &v, fill_outbox_v, outbox_free_v, "outbox_pending");
        done(q);
    }
    unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_outbox_row *)v.items + i);
    rowvec_free(&v, outbox_free_v);
    return rc;
}

static int sq_outbox_done(ah_store *st, int64_t id)
{
    sq_store *s = SQ(st);
    char now[32];
    ah_now_iso(now);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_OUT_DONE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        bind_text(q, 2, now);
        rc = change_by_id(s, q, "outbox_done");
    }
    unlock(s);
    return rc;
}

/* ---- integration log ----------------------------------------------------------- */

static int sq_log_add(ah_store *st, const ah_log_entry *e)
{
    sq_store *s = SQ(st);
    if (e == NULL)
        return AH_STORE_ERR;
    char at[32];
    if (e->at == NULL) {
        ah_now_iso(at);
    } else if (ah_iso_normalize(e->at, at) != 0) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "log_add: 'at' is not an ISO-8601 time");
        return AH_STORE_ERR;
    }
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_LOG_ADD);
    if (q != NULL) {
        bind_text(q, 1, at);
        bind_text(q, 2, e->tenant);
        bind_text(q, 3, e->source != NULL ? e->source : "core");
        bind_text(q, 4, e->plugin);
        bind_text(q, 5, e->action != NULL ? e->action : "");
        bind_text(q, 6, e->method);
        bind_text(q, 7, e->path);
        sqlite3_bind_int(q, 8, e->status);
        sqlite3_bind_double(q, 9, e->duration_s);
        bind_text(q, 10, e->body);
        bind_text(q, 11, e->correlation_id);
        rc = run(s, q, "log_add");
        done(q);
    }
    unlock(s);
    return rc;
}

static sqlite3_stmt *log_query_stmt(sq_store *s, unsigned mask)
{
    if (s->lq[mask] != NULL)
        return s->lq[mask];
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT " LOG_COLS " FROM integration_log WHERE 1 = 1%s%s%s%s%s%s "
             "ORDER BY at DESC, id DESC LIMIT ?7",
             (mask & LQ_TENANT) ? " AND tenant = ?1" : "",
             (mask & LQ_SOURCE) ? " AND source = ?2" : "",
             (mask & LQ_ACTION) ? " AND action = ?3" : "",
             (mask & LQ_STATUS) ? " AND status = ?4" : "",
             (mask & LQ_SINCE) ? " AND at >= ?5" : "",
             (mask & LQ_UNTIL) ? " AND at < ?6" : "");
    return prep(s, &s->lq[mask], sql);
}

static int sq_log_query(ah_store *st, const ah_log_filter *f, ah_log_cb cb, void *arg)
{
    sq_store *s = SQ(st);
    ah_log_filter none = {0};
    if (f == NULL)
        f = &none;
    unsigned mask = 0;
    char since[32], until[32];
    if (f->tenant != NULL)
        mask |= LQ_TENANT;
    if (f->source != NULL)
        mask |= LQ_SOURCE;
    if (f->action != NULL)
        mask |= LQ_ACTION;
    if (f->status != 0)
        mask |= LQ_STATUS;
    /* Stored times are all canonical, so a normalised bound compares
     * correctly as a string (and uses the index on at). */
    if (f->since != NULL) {
        if (ah_iso_normalize(f->since, since) != 0) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store",
                   "log_query: since is not an ISO-8601 date or time");
            return AH_STORE_ERR;
        }
        mask |= LQ_SINCE;
    }
    if (f->until != NULL) {
        if (ah_iso_normalize(f->until, until) != 0) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store",
                   "log_query: until is not an ISO-8601 date or time");
            return AH_STORE_ERR;
        }
        mask |= LQ_UNTIL;
    }
    int limit = f->limit > 0 ? f->limit : 100;

    rowvec v = {.elem = sizeof(ah_log_entry)};
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = log_query_stmt(s, mask);
    if (q != NULL) {
        if (mask & LQ_TENANT)
            bind_text(q, 1, f->tenant);
        if (mask & LQ_SOURCE)
            bind_text(q, 2, f->source);
        if (mask & LQ_ACTION)
            bind_text(q, 3, f->action);
        if (mask & LQ_STATUS)
            sqlite3_bind_int(q, 4, f->status);
        if (mask & LQ_SINCE)
            bind_text(q, 5, since);
        if (mask & LQ_UNTIL)
            bind_text(q, 6, until);
        sqlite3_bind_int(q, 7, limit);
        rc = collect(s, q, &v, fill_log_v, log_free_v, "log_query");
        done(q);
    }
    unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_log_entry *)v.items + i);
    rowvec_free(&v, log_free_v);
    return rc;
}

/* ---- the vtable and the opener -------------------------------------------------- */

/* ---- event deliveries -------------------------------------------------------- */

static int sq_outbox_add_batch(ah_store *st, int64_t tenant_id, ah_outbox_in *events, size_t n)
{
    sq_store *s = SQ(st);
    if (events == NULL && n > 0)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    lock(s);
    int rc = tx_begin(s);
    for (size_t e = 0; rc == AH_STORE_OK && e < n; e++) {
        ah_outbox_in *ev = &events[e];
        sqlite3_stmt *q = ev->topic != NULL && (ev->nconn == 0 || ev->conn_ids != NULL)
                              ? get(s, Q_OUT_ADD)
                              : NULL;
        if (q == NULL) {
            rc = AH_STORE_ERR;
            break;
        }
        sqlite3_bind_int64(q, 1, tenant_id);
        bind_text(q, 2, ev->topic);
        bind_text(q, 3, ev->body != NULL ? ev->body : "{}");
        bind_text(q, 4, now);
        rc = run(s, q, "outbox_add_batch");
        ev->id = sqlite3_last_insert_rowid(s->db);
        done(q);
        for (size_t i = 0; rc == AH_STORE_OK && i < ev->nconn; i++) {
            q = get(s, Q_DEL_ADD);
            if (q == NULL) {
                rc = AH_STORE_ERR;
                break;
            }
            sqlite3_bind_int64(q, 1, ev->conn_ids[i]);
            sqlite3_bind_int64(q, 2, ev->id);
            bind_text(q, 3, now);
            rc = run(s, q, "outbox_add_batch");
            done(q);
        }
    }
    if (rc == AH_STORE_OK)
        rc = tx_commit(s);
    else if (!sqlite3_get_autocommit(s->db))
        tx_rollback(s);
    unlock(s);
    return rc;
}

static bool fill_delivery(sqlite3_stmt *st, void *row)
{
    ah_delivery_row *r = row;
    bool oom = false;
    memset(r, 0, sizeof *r);
    r->connection_id = sqlite3_column_int64(st, 0);
    r->outbox_id = sqlite3_column_int64(st, 1);
    r->tenant_id = sqlite3_column_int64(st, 2);
    r->topic = col_dup(st, 3, &oom);
    r->body = col_dup(st, 4, &oom);
    r->attempts = sqlite3_column_int(st, 5);
    r->next_at = col_dup(st, 6, &oom);
    return !oom;
}

static void delivery_free_v(void *row)
{
    ah_delivery_row_free(row);
}

static int sq_delivery_next(ah_store *st, int64_t conn_id, ah_delivery_row *out)
{
    sq_store *s = SQ(st);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_DEL_NEXT);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, conn_id);
        rc = get_one(s, q, out, fill_delivery, delivery_free_v, "delivery_next");
        done(q);
    }
    unlock(s);
    return rc;
}

static int sq_delivery_done(ah_store *st, int64_t conn_id, int64_t outbox_id)
{
    sq_store *s = SQ(st);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_DEL_DONE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, conn_id);
        sqlite3_bind_int64(q, 2, outbox_id);
        rc = change_by_id(s, q, "delivery_done");
    }
    unlock(s);
    return rc;
}

static int sq_delivery_retry(ah_store *st, int64_t conn_id, int64_t outbox_id,
                             const char *next_at, const char *error)
{
    sq_store *s = SQ(st);
    if (next_at == NULL)
        return AH_STORE_ERR;
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_DEL_RETRY);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, conn_id);
        sqlite3_bind_int64(q, 2, outbox_id);
        bind_text(q, 3, next_at);
        bind_text(q, 4, error);
        rc = change_by_id(s, q, "delivery_retry");
    }
    unlock(s);
    return rc;
}

static int sq_delivery_due(ah_store *st, const char *now, int64_t *conn_ids, size_t max,
                           size_t *n)
{
    sq_store *s = SQ(st);
    *n = 0;
    if (now == NULL || conn_ids == NULL || max == 0)
        return AH_STORE_ERR;
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_DEL_DUE);
    if (q != NULL) {
        bind_text(q, 1, now);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)max);
        int r;
        while ((r = sqlite3_step(q)) == SQLITE_ROW && *n < max)
            conn_ids[(*n)++] = sqlite3_column_int64(q, 0);
        rc = r == SQLITE_DONE || r == SQLITE_ROW ? AH_STORE_OK : step_error(s, r, "delivery_due");
        done(q);
    }
    unlock(s);
    return rc;
}

/* ---- the trust tables (store.h: appended ops) ------------------------------ */

/* Rows for the callbacks are collected under the lock and handed out after
 * it is released, as for the other *_list operations. */

static bool fill_webhook(sqlite3_stmt *st, void *row)
{
    ah_webhook_row *r = row;
    bool oom = false;
    r->id = sqlite3_column_int64(st, 0);
    r->tenant_id = sqlite3_column_int64(st, 1);
    r->url = col_dup(st, 2, &oom);
    r->event_types = col_dup(st, 3, &oom);
    r->secret = col_dup(st, 4, &oom);
    r->enabled = sqlite3_column_int(st, 5) != 0;
    r->failures = sqlite3_column_int64(st, 6);
    r->disabled_at = col_dup(st, 7, &oom);
    r->cursor = sqlite3_column_int64(st, 8);
    r->created_at = col_dup(st, 9, &oom);
    return !oom;
}

static void webhook_free_v(void *row)
{
    ah_webhook_row *r = row;
    free(r->url);
    free(r->event_types);
    if (r->secret != NULL)
        explicit_bzero(r->secret, strlen(r->secret));
    free(r->secret);
    free(r->disabled_at);
    free(r->created_at);
}

static bool fill_wh_delivery(sqlite3_stmt *st, void *row)
{
    ah_webhook_delivery_row *r = row;
    bool oom = false;
    r->outbox_id = sqlite3_column_int64(st, 0);
    r->topic = col_dup(st, 1, &oom);
    r->attempts = sqlite3_column_int64(st, 2);
    r->status = col_dup(st, 3, &oom);
    r->last_status = sqlite3_column_int64(st, 4);
    r->last_error = col_dup(st, 5, &oom);
    r->next_at = col_dup(st, 6, &oom);
    r->delivered_at = col_dup(st, 7, &oom);
    return !oom;
}

static void wh_delivery_free_v(void *row)
{
    ah_webhook_delivery_row *r = row;
    free(r->topic);
    free(r->status);
    free(r->last_error);
    free(r->next_at);
    free(r->delivered_at);
}

static bool fill_bulk_job(sqlite3_stmt *st, void *row)
{
    ah_bulk_job_row *r = row;
    bool oom = false;
    r->id = col_dup(st, 0, &oom);
    r->tenant_id = sqlite3_column_int64(st, 1);
    r->action = col_dup(st, 2, &oom);
    r->params = col_dup(st, 3, &oom);
    r->status = col_dup(st, 4, &oom);
    r->total = sqlite3_column_int64(st, 5);
    r->created_at = col_dup(st, 6, &oom);
    r->finished_at = col_dup(st, 7, &oom);
    return !oom;
}

static void bulk_job_free_v(void *row)
{
    ah_bulk_job_row_free(row);
}

static bool fill_bulk_item(sqlite3_stmt *st, void *row)
{
    ah_bulk_item_row *r = row;
    bool oom = false;
    r->idx = sqlite3_column_int(st, 0);
    r->record_id = col_dup(st, 1, &oom);
    r->status = col_dup(st, 2, &oom);
    r->error_code = col_dup(st, 3, &oom);
    r->error_message = col_dup(st, 4, &oom);
    return !oom;
}

static void bulk_item_free_v(void *row)
{
    ah_bulk_item_row_free(row);
}

static bool fill_idem(sqlite3_stmt *st, void *row)
{
    ah_idem_row *r = row;
    bool oom = false;
    r->body_hash = col_dup(st, 0, &oom);
    r->status = sqlite3_column_int(st, 1);
    r->response = col_dup(st, 2, &oom);
    return !oom;
}

static void idem_free_v(void *row)
{
    ah_idem_row_free(row);
}

static bool fill_mark(sqlite3_stmt *st, void *row)
{
    ah_record_mark *r = row;
    bool oom = false;
    r->id = col_dup(st, 0, &oom);
    r->remote_id = col_dup(st, 1, &oom);
    r->remote_deleted_at = col_dup(st, 2, &oom);
    return !oom;
}

static void mark_free_v(void *row)
{
    ah_record_mark *r = row;
    free(r->id);
    free(r->remote_id);
    free(r->remote_deleted_at);
}

static bool fill_stage(sqlite3_stmt *st, void *row)
{
    ah_stage_row *r = row;
    bool oom = false;
    r->record_id = col_dup(st, 0, &oom);
    r->from_stage = col_dup(st, 1, &oom);
    r->to_stage = col_dup(st, 2, &oom);
    r->changed_at = col_dup(st, 3, &oom);
    return !oom;
}

static void stage_free_v(void *row)
{
    ah_stage_row *r = row;
    free(r->record_id);
    free(r->from_stage);
    free(r->to_stage);
    free(r->changed_at);
}

static int page_limit(int limit)
{
    return limit > 0 && limit <= 1000 ? limit : 100;
}

/* Runs a statement without rows that must be prepared first; *changes (may
 * be NULL) receives the rows it changed. Called with the lock held. */
static int exec_changes(sq_store *s, sqlite3_stmt *q, const char *what, int64_t *changes)
{
    int rc = run(s, q, what);
    if (rc == AH_STORE_OK && changes != NULL)
        *changes = sqlite3_changes(s->db);
    done(q);
    return rc;
}

/* --- outbox as the event log --- */

static int sq_outbox_after(ah_store *st, int64_t tenant_id, int64_t after_id, int limit,
                           ah_outbox_cb cb, void *arg)
{
    sq_store *s = SQ(st);
    rowvec v = {.elem = sizeof(ah_outbox_row)};
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_OUT_AFTER);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, tenant_id);
        sqlite3_bind_int64(q, 2, after_id);
        sqlite3_bind_int(q, 3, page_limit(limit));
        rc = collect(s, q, &v, fill_outbox_v, outbox_free_v, "outbox_after");
        done(q);
    }
    unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_outbox_row *)v.items + i);
    rowvec_free(&v, outbox_free_v);
    return rc;
}

static int sq_outbox_prune(ah_store *st, const char *before, int64_t *n_out)
{
    sq_store *s = SQ(st);
    if (n_out != NULL)
        *n_out = 0;
    if (before == NULL)
        return AH_STORE_ERR;
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_OUT_PRUNE);
    if (q != NULL) {
        bind_text(q, 1, before);
        rc = exec_changes(s, q, "outbox_prune", n_out);
    }
    unlock(s);
    return rc;
}

/* --- webhooks --- */

static int sq_webhook_add(ah_store *st, int64_t tenant_id, const char *url,
                          const char *event_types, const char *secret_sealed, int64_t *id_out)
{
    sq_store *s = SQ(st);
    if (url == NULL || secret_sealed == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_WH_ADD);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, tenant_id);
        bind_text(q, 2, url);
        bind_text(q, 3, event_types != NULL && *event_types ? event_types : "*");
        bind_text(q, 4, secret_sealed);
        bind_text(q, 5, now);
        rc = run(s, q, "webhook_add");
        if (rc == AH_STORE_OK && id_out != NULL)
            *id_out = sqlite3_last_insert_rowid(s->db);
        done(q);
    }
    unlock(s);
    return rc;
}

static int webhook_rows(ah_store *st, qid id, int64_t tenant_id, const char *now,
                        ah_webhook_cb cb, void *arg, const char *what)
{
    sq_store *s = SQ(st);
    rowvec v = {.elem = sizeof(ah_webhook_row)};
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, id);
    if (q != NULL) {
        if (now != NULL)
            bind_text(q, 1, now);
        else
            sqlite3_bind_int64(q, 1, tenant_id);
        rc = collect(s, q, &v, fill_webhook, webhook_free_v, what);
        done(q);
    }
    unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_webhook_row *)v.items + i);
    rowvec_free(&v, webhook_free_v);
    return rc;
}

static int sq_webhook_list(ah_store *st, int64_t tenant_id, ah_webhook_cb cb, void *arg)
{
    return webhook_rows(st, Q_WH_LIST, tenant_id, NULL, cb, arg, "webhook_list");
}

static int sq_webhook_due(ah_store *st, const char *now, ah_webhook_cb cb, void *arg)
{
    if (now == NULL)
        return AH_STORE_ERR;
    return webhook_rows(st, Q_WH_DUE, 0, now, cb, arg, "webhook_due");
}

static int sq_webhook_set_enabled(ah_store *st, int64_t tenant_id, int64_t id, bool enabled)
{
    sq_store *s = SQ(st);
    char now[32];
    ah_now_iso(now);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, enabled ? Q_WH_ENABLE : Q_WH_DISABLE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, tenant_id);
        bind_text(q, 3, now);
        rc = change_by_id(s, q, "webhook_set_enabled");
    }
    unlock(s);
    return rc;
}

static int sq_webhook_deliveries(ah_store *st, int64_t tenant_id, int64_t id, int limit,
                                 ah_webhook_delivery_cb cb, void *arg)
{
    sq_store *s = SQ(st);
    rowvec v = {.elem = sizeof(ah_webhook_delivery_row)};
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_WH_GET);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, tenant_id);
        int r = sqlite3_step(q);
        rc = r == SQLITE_ROW    ? AH_STORE_OK
             : r == SQLITE_DONE ? AH_STORE_NOT_FOUND
                                : step_error(s, r, "webhook_deliveries");
        done(q);
    }
    if (rc == AH_STORE_OK) {
        q = get(s, Q_WH_DELIVERIES);
        rc = AH_STORE_ERR;
        if (q != NULL) {
            sqlite3_bind_int64(q, 1, id);
            sqlite3_bind_int(q, 2, page_limit(limit));
            rc = collect(s, q, &v, fill_wh_delivery, wh_delivery_free_v, "webhook_deliveries");
            done(q);
        }
    }
    unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_webhook_delivery_row *)v.items + i);
    rowvec_free(&v, wh_delivery_free_v);
    return rc;
}

static int sq_webhook_attempt(ah_store *st, int64_t id, int64_t outbox_id, bool ok,
                              int http_status, const char *error, const char *next_at)
{
    sq_store *s = SQ(st);
    char now[32];
    ah_now_iso(now);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_WH_ATTEMPT);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, outbox_id);
        bind_text(q, 3, ok ? "delivered" : "failed");
        sqlite3_bind_int(q, 4, http_status);
        bind_text(q, 5, ok ? NULL : error);
        bind_text(q, 6, ok ? NULL : next_at);
        bind_text(q, 7, ok ? now : NULL);
        rc = run(s, q, "webhook_attempt");
        done(q);
    }
    unlock(s);
    return rc;
}

static int sq_webhook_advance(ah_store *st, int64_t id, int64_t outbox_id)
{
    sq_store *s = SQ(st);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_WH_ADVANCE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, outbox_id);
        rc = change_by_id(s, q, "webhook_advance");
    }
    unlock(s);
    return rc;
}

static int sq_webhook_failed(ah_store *st, int64_t id, int64_t failures, const char *next_at,
                             const char *disabled_at)
{
    sq_store *s = SQ(st);
    if (next_at == NULL)
        return AH_STORE_ERR;
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_WH_FAILED);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, failures);
        bind_text(q, 3, next_at);
        bind_text(q, 4, disabled_at);
        rc = change_by_id(s, q, "webhook_failed");
    }
    unlock(s);
    return rc;
}

/* --- idempotency keys --- */

static int bind_key(sqlite3_stmt *q, int64_t tenant_id, const char *key)
{
    sqlite3_bind_int64(q, 1, tenant_id);
    return bind_text(q, 2, key);
}

static int sq_idem_reserve(ah_store *st, int64_t tenant_id, const char *key,
                           const char *body_hash, const char *expired_before, ah_idem_row *out)
{
    sq_store *s = SQ(st);
    if (key == NULL || body_hash == NULL || expired_before == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    lock(s);
    int rc = tx_begin(s);
    /* A key older than its time to live is forgotten: the request is new. */
    sqlite3_stmt *q = rc == AH_STORE_OK ? get(s, Q_IDEM_EXPIRE) : NULL;
    rc = AH_STORE_ERR;
    if (q != NULL) {
        bind_key(q, tenant_id, key);
        bind_text(q, 3, expired_before);
        rc = exec_changes(s, q, "idem_reserve", NULL);
    }
    int64_t reserved = 0;
    if (rc == AH_STORE_OK) {
        q = get(s, Q_IDEM_RESERVE);
        rc = AH_STORE_ERR;
        if (q != NULL) {
            bind_key(q, tenant_id, key);
            bind_text(q, 3, body_hash);
            bind_text(q, 4, now);
            rc = exec_changes(s, q, "idem_reserve", &reserved);
        }
    }
    if (rc == AH_STORE_OK && reserved == 0) {
        ah_idem_row tmp;
        memset(&tmp, 0, sizeof tmp);
        q = get(s, Q_IDEM_GET);
        rc = AH_STORE_ERR;
        if (q != NULL) {
            bind_key(q, tenant_id, key);
            rc = get_one(s, q, &tmp, fill_idem, idem_free_v, "idem_reserve");
            done(q);
        }
        if (rc == AH_STORE_OK) {
            rc = AH_STORE_EXISTS;
            if (out != NULL)
                *out = tmp;
            else
                ah_idem_row_free(&tmp);
        }
    }
    if (rc == AH_STORE_OK || rc == AH_STORE_EXISTS) {
        int c = tx_commit(s);
        if (c != AH_STORE_OK) {
            if (rc == AH_STORE_EXISTS && out != NULL)
                ah_idem_row_free(out);
            rc = c;
        }
    } else {
        tx_rollback(s);
    }
    unlock(s);
    return rc;
}

static int idem_finish(ah_store *st, qid id, int64_t tenant_id, const char *key, int status,
                       const char *response, const char *what)
{
    sq_store *s = SQ(st);
    if (key == NULL)
        return AH_STORE_ERR;
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, id);
    if (q != NULL) {
        bind_key(q, tenant_id, key);
        if (id == Q_IDEM_COMPLETE) {
            sqlite3_bind_int(q, 3, status);
            bind_text(q, 4, response);
        }
        rc = exec_changes(s, q, what, NULL);
    }
    unlock(s);
    return rc;
}

static int sq_idem_complete(ah_store *st, int64_t tenant_id, const char *key, int status,
                            const char *response)
{
    if (status <= 0)
        return AH_STORE_ERR;
    return idem_finish(st, Q_IDEM_COMPLETE, tenant_id, key, status, response, "idem_complete");
}

static int sq_idem_release(ah_store *st, int64_t tenant_id, const char *key)
{
    return idem_finish(st, Q_IDEM_RELEASE, tenant_id, key, 0, NULL, "idem_release");
}

/* --- bulk jobs --- */

static int sq_bulk_add(ah_store *st, const char *id, int64_t tenant_id, const char *action,
                       const char *params_json, const char *const *record_ids, size_t n)
{
    sq_store *s = SQ(st);
    if (id == NULL || action == NULL || params_json == NULL || (n > 0 && record_ids == NULL))
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    lock(s);
    int rc = tx_begin(s);
    sqlite3_stmt *q = rc == AH_STORE_OK ? get(s, Q_BULK_ADD) : NULL;
    rc = AH_STORE_ERR;
    if (q != NULL) {
        bind_text(q, 1, id);
        sqlite3_bind_int64(q, 2, tenant_id);
        bind_text(q, 3, action);
        bind_text(q, 4, params_json);
        sqlite3_bind_int64(q, 5, (sqlite3_int64)n);
        bind_text(q, 6, now);
        rc = exec_changes(s, q, "bulk_add", NULL);
    }
    for (size_t i = 0; rc == AH_STORE_OK && i < n; i++) {
        q = get(s, Q_BULK_ITEM_ADD);
        if (q == NULL || record_ids[i] == NULL) {
            rc = AH_STORE_ERR;
            break;
        }
        bind_text(q, 1, id);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)i);
        bind_text(q, 3, record_ids[i]);
        rc = exec_changes(s, q, "bulk_add", NULL);
    }
    if (rc == AH_STORE_OK)
        rc = tx_commit(s);
    else
        tx_rollback(s);
    unlock(s);
    return rc;
}

static int bulk_job_one(ah_store *st, qid id, const char *job_id, int64_t tenant_id,
                        ah_bulk_job_row *out, const char *what)
{
    sq_store *s = SQ(st);
    if (out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, id);
    if (q != NULL) {
        if (job_id != NULL) {
            bind_text(q, 1, job_id);
            sqlite3_bind_int64(q, 2, tenant_id);
        }
        rc = get_one(s, q, out, fill_bulk_job, bulk_job_free_v, what);
        done(q);
    }
    unlock(s);
    return rc;
}

static int sq_bulk_get(ah_store *st, int64_t tenant_id, const char *id, ah_bulk_job_row *out)
{
    if (id == NULL)
        return AH_STORE_ERR;
    return bulk_job_one(st, Q_BULK_GET, id, tenant_id, out, "bulk_get");
}

static int sq_bulk_next(ah_store *st, ah_bulk_job_row *out)
{
    return bulk_job_one(st, Q_BULK_NEXT, NULL, 0, out, "bulk_next");
}

static int sq_bulk_set_status(ah_store *st, const char *id, const char *status,
                              const char *finished_at)
{
    sq_store *s = SQ(st);
    if (id == NULL || status == NULL)
        return AH_STORE_ERR;
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_BULK_STATUS);
    if (q != NULL) {
        bind_text(q, 1, id);
        bind_text(q, 2, status);
        bind_text(q, 3, finished_at);
        rc = change_by_id(s, q, "bulk_set_status");
    }
    unlock(s);
    return rc;
}

static int sq_bulk_items(ah_store *st, const char *id, bool queued_only, ah_bulk_item_cb cb,
                         void *arg)
{
    sq_store *s = SQ(st);
    if (id == NULL)
        return AH_STORE_ERR;
    rowvec v = {.elem = sizeof(ah_bulk_item_row)};
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, queued_only ? Q_BULK_ITEMS_QUEUED : Q_BULK_ITEMS);
    if (q != NULL) {
        bind_text(q, 1, id);
        rc = collect(s, q, &v, fill_bulk_item, bulk_item_free_v, "bulk_items");
        done(q);
    }
    unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_bulk_item_row *)v.items + i);
    rowvec_free(&v, bulk_item_free_v);
    return rc;
}

static int sq_bulk_item_prior(ah_store *st, const char *id, const char *record_id,
                              int before_idx, ah_bulk_item_row *out)
{
    sq_store *s = SQ(st);
    if (id == NULL || record_id == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_BULK_PRIOR);
    if (q != NULL) {
        bind_text(q, 1, id);
        bind_text(q, 2, record_id);
        sqlite3_bind_int(q, 3, before_idx);
        rc = get_one(s, q, out, fill_bulk_item, bulk_item_free_v, "bulk_item_prior");
        done(q);
    }
    unlock(s);
    return rc;
}

static int sq_bulk_item_set(ah_store *st, const char *id, int idx, const char *status,
                            const char *error_code, const char *error_message)
{
    sq_store *s = SQ(st);
    if (id == NULL || status == NULL)
        return AH_STORE_ERR;
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_BULK_ITEM_SET);
    if (q != NULL) {
        bind_text(q, 1, id);
        sqlite3_bind_int(q, 2, idx);
        bind_text(q, 3, status);
        bind_text(q, 4, error_code);
        bind_text(q, 5, error_message);
        rc = change_by_id(s, q, "bulk_item_set");
    }
    unlock(s);
    return rc;
}

/* --- remote deletions and stage history --- */

static int sq_record_marks(ah_store *st, int64_t connection_id, const char *type,
                           ah_record_mark_cb cb, void *arg)
{
    sq_store *s = SQ(st);
    if (type == NULL)
        return AH_STORE_ERR;
    rowvec v = {.elem = sizeof(ah_record_mark)};
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_REC_MARKS);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, connection_id);
        bind_text(q, 2, type);
        rc = collect(s, q, &v, fill_mark, mark_free_v, "record_marks");
        done(q);
    }
    unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_record_mark *)v.items + i);
    rowvec_free(&v, mark_free_v);
    return rc;
}

static int sq_record_mark_deleted(ah_store *st, const char *id, const char *deleted_at)
{
    sq_store *s = SQ(st);
    if (id == NULL)
        return AH_STORE_ERR;
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_REC_MARK_DEL);
    if (q != NULL) {
        bind_text(q, 1, id);
        bind_text(q, 2, deleted_at);
        rc = change_by_id(s, q, "record_mark_deleted");
    }
    unlock(s);
    return rc;
}

static int sq_record_is_deleted(ah_store *st, const char *id, bool *deleted)
{
    sq_store *s = SQ(st);
    if (id == NULL || deleted == NULL)
        return AH_STORE_ERR;
    *deleted = false;
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_REC_IS_DEL);
    if (q != NULL) {
        bind_text(q, 1, id);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            *deleted = sqlite3_column_type(q, 0) != SQLITE_NULL;
            rc = AH_STORE_OK;
        } else {
            rc = r == SQLITE_DONE ? AH_STORE_NOT_FOUND : step_error(s, r, "record_is_deleted");
        }
        done(q);
    }
    unlock(s);
    return rc;
}

static int sq_stage_add(ah_store *st, const char *record_id, int64_t tenant_id,
                        const char *from_stage, const char *to_stage)
{
    sq_store *s = SQ(st);
    if (record_id == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, Q_STAGE_ADD);
    if (q != NULL) {
        bind_text(q, 1, record_id);
        sqlite3_bind_int64(q, 2, tenant_id);
        bind_text(q, 3, from_stage);
        bind_text(q, 4, to_stage);
        bind_text(q, 5, now);
        rc = exec_changes(s, q, "stage_add", NULL);
    }
    unlock(s);
    return rc;
}

static int stage_rows(ah_store *st, qid id, int64_t tenant_id, const char *text, int limit,
                      ah_stage_cb cb, void *arg, const char *what)
{
    sq_store *s = SQ(st);
    if (text == NULL)
        return AH_STORE_ERR;
    rowvec v = {.elem = sizeof(ah_stage_row)};
    lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = get(s, id);
    if (q != NULL) {
        if (id == Q_STAGE_SINCE) {
            sqlite3_bind_int64(q, 1, tenant_id);
            bind_text(q, 2, text);
            sqlite3_bind_int(q, 3, limit);
        } else {
            bind_text(q, 1, text);
        }
        rc = collect(s, q, &v, fill_stage, stage_free_v, what);
        done(q);
    }
    unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_stage_row *)v.items + i);
    rowvec_free(&v, stage_free_v);
    return rc;
}

static int sq_stage_changed_since(ah_store *st, int64_t tenant_id, const char *after,
                                  int limit, ah_stage_cb cb, void *arg)
{
    return stage_rows(st, Q_STAGE_SINCE, tenant_id, after, limit, cb, arg,
                      "stage_changed_since");
}

static int sq_stage_history(ah_store *st, const char *record_id, ah_stage_cb cb, void *arg)
{
    return stage_rows(st, Q_STAGE_HISTORY, 0, record_id, 0, cb, arg, "stage_history");
}

/* ---- scopes ---------------------------------------------------------------- */

static int sq_scope_begin(ah_store *st)
{
    sq_store *s = SQ(st);
    lock(s);
    if (s->scope_depth == 0 && exec_q(s, Q_BEGIN, "scope begin") != AH_STORE_OK) {
        unlock(s);
        return AH_STORE_ERR;
    }
    s->scope_depth++;
    return AH_STORE_OK;
}

static int sq_scope_end(ah_store *st, bool commit)
{
    sq_store *s = SQ(st);
    int rc = AH_STORE_OK;
    if (s->scope_depth <= 0)
        return AH_STORE_ERR;
    if (--s->scope_depth == 0) {
        if (commit && exec_q(s, Q_COMMIT, "scope commit") != AH_STORE_OK)
            rc = AH_STORE_ERR;
        if ((!commit || rc != AH_STORE_OK) && !sqlite3_get_autocommit(s->db))
            exec_q(s, Q_ROLLBACK, "scope rollback");
    }
    unlock(s);
    return rc;
}

static const ah_store_ops sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .migrate = sq_migrate,
    .schema_version = sq_schema_version,
    .ping = sq_ping,
    .data_version = sq_data_version,
    .tenant_add = sq_tenant_add,
    .tenant_get = sq_tenant_get,
    .tenant_by_key_hash = sq_tenant_by_key_hash,
    .tenant_list = sq_tenant_list,
    .tenant_remove = sq_tenant_remove,
    .connection_add = sq_connection_add,
    .connection_get = sq_connection_get,
    .connection_list = sq_connection_list,
    .connection_update = sq_connection_update,
    .connection_set_enabled = sq_connection_set_enabled,
    .connection_remove = sq_connection_remove,
    .records_upsert = sq_records_upsert,
    .record_get = sq_record_get,
    .record_get_by_id = sq_record_get_by_id,
    .record_query = sq_record_query,
    .record_count = sq_record_count,
    .cursor_get = sq_cursor_get,
    .cursor_set = sq_cursor_set,
    .sequence_next = sq_sequence_next,
    .outbox_add = sq_outbox_add,
    .outbox_pending = sq_outbox_pending,
    .outbox_done = sq_outbox_done,
    .log_add = sq_log_add,
    .log_query = sq_log_query,
    .outbox_add_batch = sq_outbox_add_batch,
    .delivery_next = sq_delivery_next,
    .delivery_done = sq_delivery_done,
    .delivery_retry = sq_delivery_retry,
    .delivery_due = sq_delivery_due,
    .scope_begin = sq_scope_begin,
    .scope_end = sq_scope_end,
    .outbox_after = sq_outbox_after,
    .outbox_prune = sq_outbox_prune,
    .webhook_add = sq_webhook_add,
    .webhook_list = sq_webhook_list,
    .webhook_set_enabled = sq_webhook_set_enabled,
    .webhook_deliveries = sq_webhook_deliveries,
    .webhook_due = sq_webhook_due,
    .webhook_attempt = sq_webhook_attempt,
    .webhook_advance = sq_webhook_advance,
    .webhook_failed = sq_webhook_failed,
    .idem_reserve = sq_idem_reserve,
    .idem_complete = sq_idem_complete,
    .idem_release = sq_idem_release,
    .bulk_add = sq_bulk_add,
    .bulk_get = sq_bulk_get,
    .bulk_next = sq_bulk_next,
    .bulk_set_status = sq_bulk_set_status,
    .bulk_items = sq_bulk_items,
    .bulk_item_prior = sq_bulk_item_prior,
    .bulk_item_set = sq_bulk_item_set,
    .record_marks = sq_record_marks,
    .record_mark_deleted = sq_record_mark_deleted,
    .record_is_deleted = sq_record_is_deleted,
    .stage_add = sq_stage_add,
    .stage_changed_since = sq_stage_changed_since,
    .stage_history = sq_stage_history,
};

static int journal_mode_cb(void *arg, int ncol, char **vals, char **names)
{
    char *mode = arg;
    if (ncol > 0 && vals[0] != NULL)
        snprintf(mode, 16, "%s", vals[0]);
    return 0;
}

ah_store *ah_store_sqlite_open(const char *path, const struct ah_logger *lg, char *err,
                               size_t errlen)
{
    char dummy[1];
    if (err == NULL) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (path == NULL || *path == '\0') {
        snprintf(err, errlen, "no SQLite database path given");
        return NULL;
    }
    if (strcmp(path, ":memory:") != 0 && mkdir_parents(path) != 0) {
        snprintf(err, errlen, "cannot create the folder of %s: %s", path, strerror(errno));
        return NULL;
    }
    sq_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &sq_ops;
    s->base.lg = lg;
    s->fail_after = -1;
    /* Recursive: a scope (scope_begin) holds mu while the operations inside
     * it take it again. */
    pthread_mutexattr_t ma;
    bool mu_ok = pthread_mutexattr_init(&ma) == 0 &&
                 pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE) == 0 &&
                 pthread_mutex_init(&s->mu, &ma) == 0;
    pthread_mutexattr_destroy(&ma);
    if (!mu_ok) {
        snprintf(err, errlen, "cannot create a mutex");
        free(s);
        return NULL;
    }
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open SQLite database %s: %s", path,
                 s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, AH_SQ_BUSY_TIMEOUT_MS);
    char mode[16] = "";
    char *msg = NULL;
    /* page_size only applies to a database not created yet: 8 KiB pages
     * hold more records each and measured ~1.5x faster bulk syncs than the
     * 4 KiB default. The cache (64 MiB at most, allocated as used) and the
     * memory map keep a large sync's index pages out of read(2). A 64 MiB
     * WAL between checkpoints (instead of 8) writes the pages that every
     * page of a sync touches (index right edges) to the database less
     * often: measured ~1.3x on a 200k-record sync. */
    if (sqlite3_exec(s->db, "PRAGMA page_size=8192", NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", journal_mode_cb, mode, &msg) !=
            SQLITE_OK ||
        sqlite3_exec(s->db,
                     "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                     "PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456; "
                     "PRAGMA wal_autocheckpoint=8192; PRAGMA journal_size_limit=67108864",
                     NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot set up SQLite database %s: %s", path,
                 msg != NULL ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        goto fail;
    }
    if (strcmp(mode, "wal") != 0 && strcmp(path, ":memory:") != 0)
        ah_log(lg, AH_LOG_WARN, "store",
               "SQLite database %s is not in WAL mode (%s): the CLI and the daemon may "
               "block each other",
               path, mode);
    return &s->base;
fail:
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return NULL;
}

/* ---- test hooks -------------------------------------------------------------------- */

int ah_store_sqlite_latest_version(void)
{
    return AH_SQ_LATEST;
}

int ah_store_sqlite_migrate_to(ah_store *st, int version)
{
    if (st == NULL || st->ops != &sq_ops || version < 1 || version > AH_SQ_LATEST)
        return AH_STORE_ERR;
    sq_store *s = SQ(st);
    lock(s);
    int rc = migrate_to_locked(s, version);
    unlock(s);
    return rc;
}

void ah_store_sqlite_fail_after(ah_store *st, int n)
{
    if (st == NULL || st->ops != &sq_ops)
        return;
    sq_store *s = SQ(st);
    lock(s);
    s->fail_after = n < 0 ? -1 : n;
    unlock(s);
}
