/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the SQLite engine (core/store/sqlite/): the store struct, the
 * statement cache's slots and the helpers its files share. Nothing outside
 * this folder includes it; the rest of atshub sees only store.h.
 *
 * Every ah_sq_* helper below is called with the store's lock held unless
 * it says otherwise; the ah_sq_<op> functions are the vtable's entries
 * (store.h documents them) and take the lock themselves.
 */
#ifndef AH_SQLITE_INT_H
#define AH_SQLITE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "log.h"
#include "store.h"

/* Cache slots of the prepared statements. Each file keeps the SQL of its
 * own slots in a sparse table named q_sql and gets them with AH_SQ_GET. */
typedef enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_SAVEPOINT,
    Q_RELEASE,
    Q_ROLLBACK_TO,
    Q_GROUP_SAVEPOINT,
    Q_GROUP_RELEASE,
    Q_GROUP_ROLLBACK_TO,
    Q_SCOPE_SAVEPOINT,
    Q_SCOPE_RELEASE,
    Q_SCOPE_ROLLBACK_TO,
    Q_PING,
    Q_DATA_VERSION,
    Q_TENANT_ADD,
    Q_TENANT_GET,
    Q_TENANT_BY_HASH,
    Q_TENANT_LIST,
    Q_TENANT_DEL_SEQ,
    Q_TENANT_DEL_OUTBOX,
    Q_TENANT_DEL_LOG,
    Q_TENANT_DEL_IDEM,
    Q_TENANT_DEL_BULK,
    Q_TENANT_DEL,
    Q_CONN_ADD,
    Q_CONN_GET,
    Q_CONN_LIST_ALL,
    Q_CONN_LIST_TENANT,
    Q_CONN_UPDATE,
    Q_CONN_EXISTS,
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
    Q_SEQ_GET,
    Q_SEQ_SET,
    Q_SEQ_INIT,
    Q_OUT_ADD,
    Q_OUT_PENDING,
    Q_OUT_DONE,
    Q_LOG_ADD,
    Q_LOG_PRUNE,
    Q_DEL_ADD,
    Q_DEL_NEXT,
    Q_DEL_DONE,
    Q_DEL_RETRY,
    Q_DEL_DUE,
    Q_OUT_AFTER,
    Q_OUT_PRUNE,
    Q_OUT_PRUNE_WH,
    Q_OUT_SEEK,
    Q_OUT_ENDS,
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
    Q_WH_DUE_ONE,
    Q_WH_PRUNE,
    Q_WH_UPDATE,
    Q_WH_DELETE,
    Q_WH_ROTATE,
    Q_IDEM_EXPIRE,
    Q_IDEM_RESERVE,
    Q_IDEM_GET,
    Q_IDEM_COMPLETE,
    Q_IDEM_RELEASE,
    Q_IDEM_PRUNE,
    Q_IDEM_REOPEN,
    Q_BULK_ADD,
    Q_BULK_ITEM_ADD,
    Q_BULK_GET,
    Q_BULK_NEXT,
    Q_BULK_STATUS,
    Q_BULK_ITEMS,
    Q_BULK_ITEMS_QUEUED,
    Q_BULK_PRIOR,
    Q_BULK_ITEM_GET,
    Q_BULK_ITEM_SET,
    Q_REC_MARKS,
    Q_REC_MARK_DEL,
    Q_REC_IS_DEL,
    Q_STAGE_ADD,
    Q_STAGE_SINCE,
    Q_STAGE_HISTORY,
    Q_REC_MARKS_AFTER,
    Q_LEASE_ACQUIRE,
    Q_LEASE_HOLD,
    Q_LEASE_RELEASE,
    Q_LEASE_OWNER,
    Q_LEASE_TAKE,
    Q_REC_PRUNE,
    Q_BULK_SETTLE,
    Q_BULK_NEXT_AFTER,
    Q_BULK_ITEMS_FROM,
    Q_BULK_QUEUED_COUNT,
    Q_BULK_PRUNE,
    Q_LEASE_SEED,
    Q_LEASE_CLAIM,
    Q_CHANGE_ADD,
    Q_CHANGE_AFTER,
    Q_CHANGE_LAST,
    Q_CHANGE_PRUNE,
    Q_INSTANCE_BEAT,
    Q_INSTANCE_LIST,
    Q_INSTANCE_REMOVE,
    Q_LEASE_LIST,
    Q_LEASE_PRUNE,
    Q_COUNT
} ah_sq_qid;

/* record_query and log_query cache one statement per combination of
 * filters (a bit mask). */
#define RQ_VARIANTS AH_RQ_VARIANTS
#define LQ_VARIANTS 64

/* Multi-row INSERTs (records.c, outbox.c): a page's new records and its
 * change events go in statements of AH_SQ_ROWS_BIG rows, then
 * AH_SQ_ROWS_SMALL, then one: SQLite's fixed cost per statement (cursors
 * opened and closed on the table and each index, the outbox's
 * AUTOINCREMENT row read and written back) is paid once per chunk rather
 * than once per row. */
#define AH_SQ_ROWS_BIG 128
#define AH_SQ_ROWS_SMALL 16
typedef enum { MQ_REC_BIG, MQ_REC_SMALL, MQ_OUT_BIG, MQ_OUT_SMALL, MQ_COUNT } ah_sq_mqid;

typedef struct ah_sq_store {
    ah_store base; /* first: ah_store * <-> ah_sq_store * */
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *q[Q_COUNT];
    sqlite3_stmt *rq[RQ_VARIANTS];
    sqlite3_stmt *lq[LQ_VARIANTS];
    sqlite3_stmt *mq[MQ_COUNT];
    int fail_after; /* test hook: < 0 off */
    bool fail_scope; /* test hook: the next scope_begin fails */
    int scope_depth; /* scope_begin nesting; mu is held while > 0 */
    /* Group commit (engine.c): the open group transaction, if any, holds
     * the writes of scopes opened with group_begin until group_commit. */
    bool group_open;    /* BEGIN done, COMMIT not yet */
    bool group_scope;   /* the open scope is a group scope (savepoint ah_grp) */
    uint64_t group_id;  /* id of the open (or last) group transaction */
    void (*group_ended)(void *arg, uint64_t group, bool ok);
    void *group_arg;
    /* The checkpointer (engine.c): a thread with its own connection that
     * copies the WAL into the database, so that no commit ever waits for
     * a checkpoint. Not for ":memory:". */
    struct ah_sq_ckpt *ckpt;
    bool sp_active;  /* an operation's savepoint is open inside the scope */
    bool sp_skipped; /* an operation of one write runs inside the scope
                      * without a savepoint (ah_sq_tx_begin_one) */
    char *scratch;  /* spare buffer, reused across rows (ah_sq_scratch) */
    size_t scratch_cap;
    struct ah_sq_packer *packer; /* fields deltas (fieldpack.c) */
    /* Random bytes for new record ids (records.c), drawn many ids at a
     * time and kept across calls (under the lock): a route's write makes
     * one id, and drawing a batch per call cost ~7k instructions inside
     * the group scope. id_rnd_avail 0: empty. (Like the connection
     * itself, not for a forked child: SQLite's connections must not cross
     * a fork.) */
    unsigned char id_rnd[384];
    size_t id_rnd_avail;
    /* Readers (engine.c): connections of their own for the reads a client
     * waits on (lists and look-ups of records, events, the log), so that
     * they neither queue behind the writer's lock nor commit its open
     * group early. Empty for ":memory:" and when not in WAL mode. A
     * reader is an ah_sq_store itself (its own lock, statements and
     * packer) whose `writer` points back; it never writes. */
    struct ah_sq_store **readers;
    int nreaders;
    struct ah_sq_store *writer; /* set on a reader */
    /* A reader's set-up (engine.c, reader_ready), under its lock: 0 not
     * yet (its first read does it), 1 done, -1 failed (it serves no read). */
    int reader_state;
    /* Id of the last group transaction that ended (committed or not),
     * readable without mu: a thread whose own group writes are still
     * uncommitted reads through the writer, to see them. */
    _Atomic uint64_t group_ended_id;
    /* How many times the holder of mu has taken it (it is recursive): the
     * outermost release is where deferred log rows are written. Read and
     * written by the holder only. */
    unsigned mu_depth;
    /* Set by group_commit for its release of mu: the deferred log rows are
     * left for group_answered, after the group's answers. Holder only. */
    bool log_hold;
    /* Integration-log rows that came while another thread held mu
     * (intlog.c): an outbound call's row must not wait for a page of a
     * sync or a group to commit (the call's thread is the one that fetches
     * the next page). The holder writes them when it lets go of mu, in the
     * open group or a transaction of their own; log_pending_mu guards the
     * list, log_npending is readable without it. Bounded: past
     * AH_SQ_LOG_PENDING_MAX a row waits for mu as before. */
    pthread_mutex_t log_pending_mu;
    struct ah_sq_log_pending *log_head, *log_tail;
    _Atomic size_t log_npending;
    /* Commits made durable after they return (walsync.c): the writer
     * connection's commits so far (counted by its WAL hook, for the
     * figures) and, when the WAL's sync is taken off its COMMITs, the
     * syncs' state (marks are counts of the WAL's writes, walbuf.c).
     * dur NULL: synchronous=FULL, a commit is durable when it returns. */
    _Atomic uint64_t commits;
    struct ah_sq_dur *dur;
    /* Set by a group scope's end for its release of mu: the scope's writes
     * are answered through the committer, after their sync; this release
     * does not wait for it. Holder only. */
    bool dur_skip;
} ah_sq_store;

/** The engine's vtable (engine.c). */
extern const ah_store_ops ah_sq_ops;

static inline ah_sq_store *ah_sq(ah_store *s)
{
    return (ah_sq_store *)s;
}

/** The cached statement of slot id, prepared on first use from the calling
 *  file's q_sql table; NULL (logged) when it cannot be prepared. */
#define AH_SQ_GET(s, id) ah_sq_prep((s), &(s)->q[(id)], q_sql[(id)])

/* Growable array of rows for the collect-then-callback pattern. */
typedef struct ah_sq_rowvec {
    void *items;
    size_t n, cap, elem;
} ah_sq_rowvec;

typedef bool (*ah_sq_fill_fn)(sqlite3_stmt *st, void *row);
typedef void (*ah_sq_free_fn)(void *row);

/* ---- stmt.c ------------------------------------------------------------ */

void ah_sq_log_db(ah_sq_store *s, const char *what);
sqlite3_stmt *ah_sq_prep(ah_sq_store *s, sqlite3_stmt **slot, const char *sql);
/** The cached statement head, then `rows` copies of `row` separated by
 *  commas, then tail (a multi-row INSERT: its placeholders are plain "?",
 *  numbered across the rows in order); prepared on first use. */
sqlite3_stmt *ah_sq_prep_rows(ah_sq_store *s, ah_sq_mqid id, const char *head, const char *row,
                              int rows, const char *tail);
/** How many rows of the n left the next multi-row statement takes:
 *  AH_SQ_ROWS_BIG, AH_SQ_ROWS_SMALL or 1. */
size_t ah_sq_rows_chunk(size_t n);
/** s->scratch grown to at least n bytes (its contents are not kept);
 *  NULL when out of memory. */
void *ah_sq_scratch(ah_sq_store *s, size_t n);
int ah_sq_bind_text(sqlite3_stmt *st, int i, const char *v);
void ah_sq_done(sqlite3_stmt *st);
int ah_sq_step_error(ah_sq_store *s, int rc, const char *what);
int ah_sq_run(ah_sq_store *s, sqlite3_stmt *st, const char *what);
int ah_sq_exec_q(ah_sq_store *s, ah_sq_qid id, const char *what);
int ah_sq_tx_begin(ah_sq_store *s);
/* As ah_sq_tx_begin, for an operation that makes one write at most: inside
 * a scope it opens no savepoint (a statement that fails undoes itself, and
 * the scope's savepoint holds the rest); ah_sq_tx_commit and
 * ah_sq_tx_rollback end it as any other. */
int ah_sq_tx_begin_one(ah_sq_store *s);
void ah_sq_tx_rollback(ah_sq_store *s);
int ah_sq_tx_commit(ah_sq_store *s);
char *ah_sq_col_dup(sqlite3_stmt *st, int i, bool *oom);
void ah_sq_lock(ah_sq_store *s);
void ah_sq_unlock(ah_sq_store *s);
/* mu itself, counting its depth (ah_sq_lock also commits an open group
 * outside a scope; these do not). ah_sq_mu_unlock writes the deferred log
 * rows when it lets go of mu for good (ah_sq_log_flush_locked). */
void ah_sq_mu_lock(ah_sq_store *s);
bool ah_sq_mu_trylock(ah_sq_store *s);
void ah_sq_mu_unlock(ah_sq_store *s);
/** For a read-only operation: a reader of s, locked, or s itself locked
 *  with ah_sq_lock when this thread must see what it wrote and has not
 *  committed (inside a scope, or its group not ended yet), or when s has
 *  no readers. Release with ah_sq_read_unlock. */
ah_sq_store *ah_sq_read_lock(ah_sq_store *s);
void ah_sq_read_unlock(ah_sq_store *r);
void *ah_sq_rowvec_push(ah_sq_rowvec *v);
int ah_sq_collect(ah_sq_store *s, sqlite3_stmt *st, ah_sq_rowvec *v, ah_sq_fill_fn fill,
                  ah_sq_free_fn fr, const char *what);
void ah_sq_rowvec_free(ah_sq_rowvec *v, ah_sq_free_fn fr);
int ah_sq_get_one(ah_sq_store *s, sqlite3_stmt *st, void *out, ah_sq_fill_fn fill, ah_sq_free_fn fr,
                  const char *what);
int ah_sq_change_by_id(ah_sq_store *s, sqlite3_stmt *q, const char *what);
int ah_sq_page_limit(int limit);
int ah_sq_exec_changes(ah_sq_store *s, sqlite3_stmt *q, const char *what, int64_t *changes);
/* Rows a prune deletes per transaction (ah_sq_delete_batched). */
#define AH_SQ_PRUNE_BATCH 1000
int ah_sq_delete_batched(ah_sq_store *s, ah_sq_qid id, const char *sql, const char *const *texts,
                         int ntexts, const char *what, int64_t *n_out);

/* ---- fieldpack.c ------------------------------------------------------- */

typedef struct ah_sq_packer ah_sq_packer;
ah_sq_packer *ah_sq_packer_new(void);
void ah_sq_packer_free(ah_sq_packer *p);
/** The delta that stores `fields` against `raw`: *out points into the
 *  packer (valid until its next use). 0, or -1. */
int ah_sq_fields_pack(ah_sq_packer *p, const char *raw, size_t raw_len, const char *fields,
                      size_t fields_len, const void **out, size_t *out_len);
/** ah_sq_fields_pack against a dictionary that is a constant (the same
 *  pointer always holds the same bytes, for the packer's life): its
 *  4-grams are hashed on first use and copied back on the next; the
 *  delta is byte for byte ah_sq_fields_pack's. */
int ah_sq_fields_pack_const(ah_sq_packer *p, const char *dict, size_t dict_len,
                            const char *text, size_t text_len, const void **out,
                            size_t *out_len);
/** The fields text back from raw and a delta; malloc'd, NULL on failure. */
char *ah_sq_fields_unpack(const char *raw, size_t raw_len, const void *delta, size_t delta_len);
/** Column fields_col of the current row as text (unpacked against column
 *  raw_col when it is a delta); malloc'd; NULL with *oom set on failure,
 *  NULL alone for SQL NULL. */
char *ah_sq_fields_text(sqlite3_stmt *st, int raw_col, int fields_col, bool *oom);
/* The creation time a record id carries (records.c, new_record_id), as
 * canonical ISO text, malloc'd; NULL when the id is not of that form or
 * out of memory. A row's created_at, and its stored_at, stored as '' (v5)
 * read as it. */
char *ah_sq_id_time(const char *id);
/** Registers ah_fields(raw, fields) and ah_fields_pack(raw, fields). */
int ah_sq_fields_register(sqlite3 *db, ah_sq_packer *p);

/* ---- walbuf.c ---------------------------------------------------------- */

#define AH_SQ_WALBUF_VFS "ah-walbuf"
/** The name of the VFS that writes a transaction's WAL frames in one
 *  pwrite() (walbuf.c), registered on first call; NULL (SQLite's default
 *  then serves) when it could not be. For the writer connection only. */
const char *ah_sq_walbuf_vfs(void);
/** WAL writes SQLite made through it, and the writes they became. */
void ah_sq_walbuf_stats(unsigned long long *writes, unsigned long long *flushes);
/** How many writes were made to `wal` (a WAL file this VFS opened: the
 *  writer's, SQLITE_FCNTL_JOURNAL_POINTER) so far, each counted once it
 *  returned: 0, or -1 for a file this VFS did not open. */
int ah_sq_walbuf_written(sqlite3_file *wal, uint64_t *out);
/** TEST HOOK, never used by the daemon: the next n writes the VFS makes to
 *  any WAL file fail as a full disk makes them fail (SQLITE_FULL, nothing
 *  written); 0 cancels. Process-wide. */
void ah_sq_walbuf_fail_writes(int n);

/* ---- walsync.c --------------------------------------------------------- */

/** Takes the WAL's sync off the writer's COMMITs (synchronous=NORMAL, the
 *  sync made by ah_sq_durable) when the WAL file can be opened; else
 *  nothing changes (FULL). For a file database in WAL mode whose WAL hook
 *  counts its commits (the checkpointer's). */
void ah_sq_walsync_start(ah_sq_store *w);
/** Makes the last commits durable and lets the WAL go (before close). */
void ah_sq_walsync_stop(ah_sq_store *w);
/** Blocks until every write of w's WAL up to `mark` (a count of them,
 *  ah_sq_commit_mark) is on disk: syncs the WAL, or waits for the sync
 *  under way. A failed sync stops the process (walsync.c). */
bool ah_sq_durable(ah_sq_store *w, uint64_t mark);
/** For a thread letting go of w or one of its readers: waits until what is
 *  committed by now is durable, unless the thread deferred (below). */
void ah_sq_durable_after(ah_sq_store *w);
/* The vtable's commit_mark, durable and defer_durable (store.h). */
uint64_t ah_sq_commit_mark(ah_store *st);
bool ah_sq_durable_op(ah_store *st, uint64_t mark);
void ah_sq_defer_durable(ah_store *st, bool defer);

/* ---- schema.c ---------------------------------------------------------- */

int ah_sq_migrate(ah_store *st);
int ah_sq_schema_version(ah_store *st);

/* ---- engine.c ---------------------------------------------------------- */

void ah_sq_close(ah_store *st);
int ah_sq_ping(ah_store *st);
int64_t ah_sq_data_version(ah_store *st);
int ah_sq_scope_begin(ah_store *st);
int ah_sq_scope_end(ah_store *st, bool commit);
int ah_sq_group_begin(ah_store *st, int64_t tenant_id, uint64_t *group_out);
int ah_sq_group_commit(ah_store *st);
void ah_sq_group_answered(ah_store *st);
void ah_sq_group_listen(ah_store *st, void (*ended)(void *arg, uint64_t group, bool ok),
                        void *arg);
/** Ends the open group transaction (commit true: COMMIT, else ROLLBACK)
 *  and tells the listener. Lock held, no scope open. */
int ah_sq_group_end_locked(ah_sq_store *s, bool commit);

/* ---- tenants.c --------------------------------------------------------- */

int ah_sq_tenant_add(ah_store *st, const char *name, const char *key_hash, int64_t *id_out);
int ah_sq_tenant_get(ah_store *st, const char *name, ah_tenant_row *out);
int ah_sq_tenant_by_key_hash(ah_store *st, const char *key_hash, ah_tenant_row *out);
int ah_sq_tenant_list(ah_store *st, const ah_store_page *page, ah_tenant_cb cb, void *arg);
int ah_sq_tenant_remove(ah_store *st, const char *name);
int ah_sq_connection_add(ah_store *st, int64_t tenant_id, const char *plugin, const char *name,
                         const char *settings_json, int64_t *id_out);
int ah_sq_connection_get(ah_store *st, const char *tenant, const char *name,
                         ah_connection_row *out);
int ah_sq_connection_list(ah_store *st, const char *tenant, const ah_store_page *page,
                          ah_connection_cb cb, void *arg);
int ah_sq_connection_update(ah_store *st, int64_t id, const char *settings_json,
                            const char *expected_json);
int ah_sq_connection_set_enabled(ah_store *st, int64_t id, bool enabled);
int ah_sq_connection_remove(ah_store *st, int64_t id);
int ah_sq_sequence_next(ah_store *st, int64_t tenant_id, const char *name, int64_t *out);

/* ---- records.c --------------------------------------------------------- */

void *ah_sq_fields_prepare(ah_store *st, const ah_record_in *in, size_t n, ah_fields_kept *kept);
int ah_sq_records_upsert_kept(ah_store *st, int64_t connection_id, const ah_record_in *in,
                              const ah_fields_kept *kept, size_t n, const char *cursor_key,
                              const char *cursor_value, ah_upsert_result *results,
                              char **ids_out);
int ah_sq_records_upsert(ah_store *st, int64_t connection_id, const ah_record_in *in, size_t n,
                         const char *cursor_key, const char *cursor_value,
                         ah_upsert_result *results, char **ids_out);
int ah_sq_record_get(ah_store *st, int64_t connection_id, const char *type, const char *remote_id,
                     ah_record_row *out);
int ah_sq_record_get_by_id(ah_store *st, int64_t tenant_id, const char *id, ah_record_row *out);
int ah_sq_record_query(ah_store *st, const ah_record_query *qy, ah_record_cb cb, void *arg);
int64_t ah_sq_record_count(ah_store *st, int64_t connection_id, const char *type);
int ah_sq_cursor_get(ah_store *st, int64_t connection_id, const char *key, char **value_out);
int ah_sq_cursor_set(ah_store *st, int64_t connection_id, const char *key, const char *value);

/* ---- outbox.c ---------------------------------------------------------- */

int ah_sq_outbox_add(ah_store *st, int64_t tenant_id, const char *topic, const char *body,
                     int64_t *id_out);
int ah_sq_outbox_pending(ah_store *st, int limit, ah_outbox_cb cb, void *arg);
int ah_sq_outbox_done(ah_store *st, int64_t id);
int ah_sq_outbox_add_batch(ah_store *st, int64_t tenant_id, ah_outbox_in *events, size_t n);
int ah_sq_delivery_next(ah_store *st, int64_t conn_id, ah_delivery_row *out);
int ah_sq_delivery_done(ah_store *st, int64_t conn_id, int64_t outbox_id);
int ah_sq_delivery_retry(ah_store *st, int64_t conn_id, int64_t outbox_id, const char *next_at,
                         const char *error);
int ah_sq_delivery_due(ah_store *st, const char *now, int64_t *conn_ids, size_t max, size_t *n);
int ah_sq_outbox_after(ah_store *st, int64_t tenant_id, int64_t after_id, int limit,
                       ah_outbox_cb cb, void *arg);
int ah_sq_outbox_prune(ah_store *st, const char *before, int64_t *n_out);

/* ---- intlog.c ---------------------------------------------------------- */

int ah_sq_log_add(ah_store *st, const ah_log_entry *e);
/** Writes the log rows deferred while another thread held mu: mu held at
 *  depth 1, outside any scope (into the open group, or a transaction of
 *  their own). Rows it cannot write are dropped with a warning. false,
 *  leaving them, only when a transaction other than the group is open. */
bool ah_sq_log_flush_locked(ah_sq_store *s);
/** Drops the deferred rows (the store's close, after its last flush). */
void ah_sq_log_pending_free(ah_sq_store *s);
int ah_sq_log_prune(ah_store *st, const char *before, int64_t *n_out);
int ah_sq_log_query(ah_store *st, const ah_log_filter *f, ah_log_cb cb, void *arg);

/* ---- webhooks.c -------------------------------------------------------- */

int ah_sq_webhook_add(ah_store *st, int64_t tenant_id, const char *url, const char *event_types,
                      const char *secret_sealed, int64_t *id_out);
int ah_sq_webhook_list(ah_store *st, int64_t tenant_id, int64_t after_id, int limit,
                       ah_webhook_cb cb, void *arg);
int ah_sq_webhook_due(ah_store *st, const char *now, ah_webhook_cb cb, void *arg);
int ah_sq_webhook_set_enabled(ah_store *st, int64_t tenant_id, int64_t id, bool enabled);
int ah_sq_webhook_deliveries(ah_store *st, int64_t tenant_id, int64_t id, int limit,
                             ah_webhook_delivery_cb cb, void *arg);
int ah_sq_webhook_attempt(ah_store *st, int64_t id, int64_t outbox_id, bool ok, int http_status,
                          const char *error, const char *next_at);
int ah_sq_webhook_advance(ah_store *st, int64_t id, int64_t outbox_id);
int ah_sq_webhook_failed(ah_store *st, int64_t id, int64_t failures, const char *next_at,
                         const char *disabled_at);
int ah_sq_webhook_due_one(ah_store *st, int64_t id, const char *now, ah_webhook_cb cb,
                          void *arg);
int ah_sq_webhook_prune(ah_store *st, const char *before, int64_t *n_out);
int ah_sq_webhook_update(ah_store *st, int64_t tenant_id, int64_t id, const char *url,
                         const char *event_types, const char *description);
int ah_sq_webhook_delete(ah_store *st, int64_t tenant_id, int64_t id);
int ah_sq_webhook_rotate(ah_store *st, int64_t tenant_id, int64_t id, const char *secret_sealed,
                         const char *previous_until);

/* ---- idempotency.c ----------------------------------------------------- */

int ah_sq_idem_reserve(ah_store *st, int64_t tenant_id, const char *key, const char *body_hash,
                       const char *expired_before, ah_idem_row *out);
int ah_sq_idem_complete(ah_store *st, int64_t tenant_id, const char *key, int status,
                        const char *response);
int ah_sq_idem_release(ah_store *st, int64_t tenant_id, const char *key);
int ah_sq_idem_prune(ah_store *st, const char *before, int64_t *n_out);
int ah_sq_idem_reopen(ah_store *st, int64_t tenant_id, const char *key, const char *body_hash);
int ah_sq_idem_complete_op(ah_store *st, int64_t tenant_id, const char *key, int status,
                           const char *response, const char *operation);
int ah_sq_bulk_item_set_op(ah_store *st, const char *id, int idx, const char *status,
                           const char *error_code, const char *error_message,
                           const char *operation);
int ah_sq_bulk_item_settle(ah_store *st, const char *operation, const char *status,
                           const char *error_code, const char *error_message, int64_t *n_out);
int ah_sq_record_prune(ah_store *st, const char *type, const char *before, const char *keep_key,
                       const char *keep_value, int64_t *n_out);

/* ---- bulk.c ------------------------------------------------------------ */

int ah_sq_bulk_add(ah_store *st, const char *id, int64_t tenant_id, const char *action,
                   const char *params_json, const char *const *record_ids, size_t n);
int ah_sq_bulk_get(ah_store *st, int64_t tenant_id, const char *id, ah_bulk_job_row *out);
int ah_sq_bulk_next(ah_store *st, ah_bulk_job_row *out);
int ah_sq_bulk_set_status(ah_store *st, const char *id, const char *status,
                          const char *finished_at);
int ah_sq_bulk_items(ah_store *st, const char *id, bool queued_only, ah_bulk_item_cb cb, void *arg);
int ah_sq_bulk_item_get(ah_store *st, const char *id, int idx, ah_bulk_item_row *out);
int ah_sq_bulk_next_after(ah_store *st, int64_t after_tenant_id, ah_bulk_job_row *out);
int ah_sq_bulk_items_queued_from(ah_store *st, const char *id, int from_idx, int limit,
                                 ah_bulk_item_cb cb, void *arg);
int ah_sq_bulk_queued_count(ah_store *st, int64_t tenant_id, int64_t *out);
int ah_sq_bulk_prune(ah_store *st, const char *before, int limit, int64_t *n_out);
int ah_sq_bulk_item_prior(ah_store *st, const char *id, const char *record_id, int before_idx,
                          ah_bulk_item_row *out);
int ah_sq_bulk_item_set(ah_store *st, const char *id, int idx, const char *status,
                        const char *error_code, const char *error_message);

/* ---- tracking.c -------------------------------------------------------- */

int ah_sq_record_marks(ah_store *st, int64_t connection_id, const char *type, ah_record_mark_cb cb,
                       void *arg);
int ah_sq_record_marks_after(ah_store *st, int64_t connection_id, const char *type,
                             const char *after_id, int limit, ah_record_mark_cb cb, void *arg);
int ah_sq_record_mark_deleted(ah_store *st, const char *id, const char *deleted_at);
int ah_sq_record_is_deleted(ah_store *st, const char *id, bool *deleted);
int ah_sq_stage_add(ah_store *st, const char *record_id, int64_t tenant_id, const char *from_stage,
                    const char *to_stage);
int ah_sq_stage_changed_since(ah_store *st, int64_t tenant_id, const char *after, int limit,
                              ah_stage_cb cb, void *arg);
int ah_sq_stage_history(ah_store *st, const char *record_id, ah_stage_cb cb, void *arg);

/* ---- leases.c ---------------------------------------------------------- */

int ah_sq_lease_acquire(ah_store *st, const char *name, const char *owner, int64_t ttl_ms,
                        int64_t *token, char **holder);
int ah_sq_lease_take_over(ah_store *st, const char *name, const char *from_owner,
                          const char *owner, int64_t ttl_ms, int64_t *token);
int ah_sq_lease_hold(ah_store *st, const char *name, int64_t token, int64_t ttl_ms);
int ah_sq_lease_release(ah_store *st, const char *name, int64_t token);
int ah_sq_lease_claim(ah_store *st, const char *const *names, size_t n, const char *owner,
                      int64_t ttl_ms, int64_t *tokens);

/* ---- cluster.c --------------------------------------------------------- */

int ah_sq_change_add(ah_store *st, const char *kind, const char *subject, const char *detail,
                     const char *origin);
int ah_sq_change_after(ah_store *st, int64_t after_id, int limit, ah_change_cb cb, void *arg);
int ah_sq_change_last(ah_store *st, int64_t *id_out);
int ah_sq_change_prune(ah_store *st, const char *before, int64_t *n_out);
int ah_sq_instance_beat(ah_store *st, const char *id, const char *version, const char *host,
                        int64_t pid, const char *started_at);
int ah_sq_instance_list(ah_store *st, int64_t max_age_ms, ah_instance_cb cb, void *arg);
int ah_sq_instance_remove(ah_store *st, const char *id, int64_t stale_ms);
int ah_sq_lease_list(ah_store *st, ah_lease_cb cb, void *arg);
int ah_sq_lease_prune(ah_store *st, const char *prefix, int64_t expired_ms, int64_t *n_out);

#endif
