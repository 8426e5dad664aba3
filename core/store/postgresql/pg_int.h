/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the PostgreSQL engine (core/store/postgresql/): the store
 * struct, the prepared statements' slots and the helpers its files share.
 * Nothing outside this folder includes it; the rest of atshub sees only
 * store.h. The layout mirrors the SQLite engine (core/store/sqlite/): one
 * file per group of tables, each keeping the SQL of its own slots in a
 * sparse table named q_sql.
 *
 * Every ah_pg_* helper below is called with the store's lock held unless it
 * says otherwise; the ah_pg_<op> functions are the vtable's entries (store.h
 * documents them) and take the lock themselves.
 */
#ifndef AH_PG_INT_H
#define AH_PG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "log.h"
#include "look.h"
#include "store.h"

/* Slots of the prepared statements (PQprepare once per connection, named
 * "ah_q<slot>"). */
typedef enum {
    P_BEGIN,
    P_COMMIT,
    P_ROLLBACK,
    P_SAVEPOINT,
    P_RELEASE,
    P_ROLLBACK_TO,
    P_PING,
    P_DATA_VERSION,
    P_TENANT_TRY,
    P_TENANT_ADD,
    P_TENANT_GET,
    P_TENANT_BY_HASH,
    P_TENANT_LIST,
    P_TENANT_DEL_SEQ,
    P_TENANT_DEL_OUTBOX,
    P_TENANT_DEL_LOG,
    P_TENANT_DEL_IDEM,
    P_TENANT_DEL_BULK,
    P_TENANT_DEL,
    P_CONN_ADD,
    P_CONN_GET,
    P_CONN_LIST_ALL,
    P_CONN_LIST_TENANT,
    P_CONN_UPDATE,
    P_CONN_EXISTS,
    P_CONN_ENABLE,
    P_CONN_DEL,
    P_REC_LOOKUP,
    P_REC_INSERT,
    P_REC_UPDATE,
    P_REC_GET,
    P_REC_GET_BY_ID,
    P_REC_COUNT,
    P_REC_COUNT_ALL,
    P_CUR_GET,
    P_CUR_SET,
    P_SEQ_NEXT,
    P_OUT_ADD,
    P_OUT_PENDING,
    P_OUT_DONE,
    P_LOG_ADD,
    P_LOG_PRUNE,
    P_DEL_NEXT,
    P_DEL_DONE,
    P_DEL_RETRY,
    P_DEL_DUE,
    P_OUT_AFTER,
    P_OUT_PRUNE,
    P_OUT_SEEK,
    P_OUT_ENDS,
    P_WH_ADD,
    P_WH_LIST,
    P_WH_DUE,
    P_WH_ENABLE,
    P_WH_DISABLE,
    P_WH_GET,
    P_WH_DELIVERIES,
    P_WH_ATTEMPT,
    P_WH_ADVANCE,
    P_WH_FAILED,
    P_WH_DUE_ONE,
    P_WH_PRUNE,
    P_WH_UPDATE,
    P_WH_DELETE,
    P_WH_ROTATE,
    P_IDEM_EXPIRE,
    P_IDEM_RESERVE,
    P_IDEM_GET,
    P_IDEM_COMPLETE,
    P_IDEM_RELEASE,
    P_IDEM_PRUNE,
    P_IDEM_REOPEN,
    P_BULK_ADD,
    P_BULK_ITEM_ADD,
    P_BULK_GET,
    P_BULK_NEXT,
    P_BULK_STATUS,
    P_BULK_ITEMS,
    P_BULK_ITEMS_QUEUED,
    P_BULK_PRIOR,
    P_BULK_ITEM_GET,
    P_BULK_ITEM_SET,
    P_REC_MARKS,
    P_REC_MARK_DEL,
    P_REC_IS_DEL,
    P_STAGE_ADD,
    P_STAGE_SINCE,
    P_STAGE_HISTORY,
    P_LEASE_ACQUIRE,
    P_LEASE_HOLD,
    P_LEASE_RELEASE,
    P_LEASE_OWNER,
    P_LEASE_TAKE,
    P_REC_PRUNE,
    P_BULK_SETTLE,
    P_BULK_NEXT_AFTER,
    P_BULK_ITEMS_FROM,
    P_BULK_QUEUED_COUNT,
    P_BULK_PRUNE,
    P_LEASE_SEED,
    P_LEASE_CLAIM,
    P_CHANGE_ADD,
    P_CHANGE_AFTER,
    P_CHANGE_LAST,
    P_CHANGE_PRUNE,
    P_INSTANCE_BEAT,
    P_INSTANCE_LIST,
    P_INSTANCE_REMOVE,
    P_LEASE_LIST,
    P_LEASE_PRUNE,
    P_OUT_ADD_SUBS,
    P_SEQ_NEXT_THEN,
    P_SEQ_PAIR_PUT,
    P_COUNT
} ah_pg_qid;

/* record_query and log_query prepare one statement per combination of
 * filters (a bit mask), in their own ranges of statement names. */
#define PG_RQ_VARIANTS AH_RQ_VARIANTS
#define PG_LQ_VARIANTS 64

/* What every session of the engine runs once connected (or reconnected):
 * times in UTC, and two bounds, each only where the server, the role, the
 * database or the URL's options left it unset (0): a statement waits at
 * most 5 s for a lock (a stalled instance, SIGSTOPped or cut off, holds its
 * group's row locks: another's writer would wait for good with its store
 * lock held, its leases unrenewed), and a session idle inside a
 * transaction for 60 s is ended by the server (such a stalled instance's
 * locks freed; its group then fails, nothing of it acknowledged). */
#define AH_PG_SESSION_SETUP                                                               \
    "SET TimeZone = 'UTC'; "                                                              \
    "SELECT set_config('lock_timeout', '5s', false) "                                     \
    "WHERE current_setting('lock_timeout') = '0'; "                                       \
    "SELECT set_config('idle_in_transaction_session_timeout', '60s', false) "             \
    "WHERE current_setting('idle_in_transaction_session_timeout') = '0'"

/** Connects to url (a PostgreSQL URL or connection string) with TCP
 *  keepalives and a user timeout (a peer gone without a word is noticed in
 *  about 30 s, not the kernel's ~15 minutes of retransmissions) and a 10 s
 *  connect timeout, unless url sets its own. As PQconnectdb. */
PGconn *ah_pg_connect(const char *url);

#define AH_PG_MAXPEND 32

/* The transaction-control commands a pipeline sends (conn.c, ctl_sql):
 * prepared once per session like the data statements, named "ah_c<slot>",
 * so that the server parses none of them per request. */
#define AH_PG_NCTL 11

/* The name a statement slot is prepared under on a session (the macros
 * below). */
#define AH_PG_QNAME(id) ("ah_q" #id)

/* The two sequences of sequence_next_then ($1 the tenant, $2 the name, $3
 * then_name), as the common table expressions a (name's next value) and b
 * (then_name's, only when a drew 1): name's row is written first (b reads
 * a's). Shared by P_SEQ_NEXT_THEN (tenants.c) and P_SEQ_PAIR_PUT
 * (records.c), which go on from here. */
#define AH_PG_SEQ_PAIR_CTES                                                              \
    "WITH a AS (INSERT INTO sequences(tenant_id, name, value) VALUES($1, $2, 1) "           \
    "ON CONFLICT(tenant_id, name) DO UPDATE SET value = sequences.value + 1 "              \
    "RETURNING value), "                                                                   \
    "b AS (INSERT INTO sequences(tenant_id, name, value) "                                 \
    "SELECT $1::bigint, $3::text, 1 FROM a WHERE a.value = 1 "                             \
    "ON CONFLICT(tenant_id, name) DO UPDATE SET value = sequences.value + 1 "              \
    "RETURNING value) "

/* Parameters of one statement, all sent as text. Integers are formatted
 * into the struct's own buffers; strings are borrowed. */
#define AH_PG_MAXP 16
typedef struct ah_pg_params {
    int n;
    const char *v[AH_PG_MAXP];
    char ibuf[AH_PG_MAXP][24];
} ah_pg_params;

/* One entry of the deferred queue (ah_pg_defer, ah_pg_defer_exec): a
 * command without parameters (name NULL; sql a static string or one the
 * store keeps until the queue is sent: a group's tenant lock), or a
 * prepared data statement whose result nobody reads (name and sql static;
 * its parameters copied into buf, which the queue owns). */
typedef struct ah_pg_pend {
    const char *sql;
    const char *name;
    bool *prepared;
    const char *what;
    char *buf;
    int n;
    const char *v[AH_PG_MAXP];
} ah_pg_pend;

#define AH_PG_GROUP_TENANTS 16
/* The advisory lock class of a tenant's writes (its second key: the
 * tenant's id modulo 2^31 - 1): held by whatever adds the tenant's events
 * (outbox.c), and by a group from its first scope of the tenant (engine.c). */
#define AH_PG_TENANT_LOCK_CLASS "1096037665"

typedef struct ah_pg_store {
    ah_store base; /* first: ah_store * <-> ah_pg_store * */
    PGconn *db;
    char *conninfo;  /* the URL as given (may hold a password: never logged) */
    char *safe_url;  /* the URL with any password replaced: for messages */
    pthread_mutex_t mu; /* recursive: a scope holds it across operations */
    /* Random bytes for new record ids (records.c), drawn many ids at a
     * time and kept across calls (under mu): a route's write makes one id.
     * id_rnd_avail 0: empty. */
    unsigned char id_rnd[384];
    size_t id_rnd_avail;
    bool prepared[P_COUNT];
    bool rq_prepared[PG_RQ_VARIANTS];
    bool lq_prepared[PG_LQ_VARIANTS];
    bool ctl_prepared[AH_PG_NCTL];
    int fail_after;  /* test hook: < 0 off */
    int scope_depth; /* scope_begin nesting; mu is held while > 0 */
    bool sp_active;  /* an operation's savepoint is open inside the scope */
    bool in_tx;      /* a transaction (an operation's or a scope's) is open */
    /* Group commit (engine.c), as in the SQLite engine: the open group
     * transaction holds the writes of scopes opened with group_begin. */
    bool group_open;
    bool group_scope;
    uint64_t group_id;
    /* The tenants whose lock the open group holds (ah_pg_group_begin); a
     * group of more tenants than this remembers asks the server again
     * for the others (a lock held already is granted at once). */
    int64_t group_tenants[AH_PG_GROUP_TENANTS];
    int ngroup_tenants;
    /* A new group's wait for its first tenant's lock, sent with its BEGIN
     * (a command: the queue that starts with BEGIN holds no parameters). */
    char group_lock_sql[96];
    void (*group_ended)(void *arg, uint64_t group, bool ok);
    void *group_arg;
    /* Transaction control inside an open transaction (SAVEPOINT, RELEASE,
     * ROLLBACK TO, a group's BEGIN) is not sent on its own: it waits here
     * and goes ahead of the next statement or COMMIT in one pipeline (one
     * round trip instead of one each; conn.c, ah_pg_defer), and so do the
     * data statements of a scope whose results nobody reads
     * (ah_pg_defer_exec: integration-log rows, events). */
    ah_pg_pend pend[AH_PG_MAXPEND];
    int npend;
    /* Exchanges with the server on the hot path's helpers (conn.c): a
     * statement, a pipeline, a prepare, a COMMIT, a command. Read by the
     * test hook ah_store_pg_round_trips. */
    int64_t round_trips;
    /* The look for a pipeline's results before libpq sleeps on the socket
     * (pipeline_k, under mu): a create's round trips under the lock come
     * back in 100-200 us, a wake-up of an idle CPU is much of that. */
    ah_look look;
    char *scratch;   /* content-hash input buffer, reused across rows */
    size_t scratch_cap;
    /* Readers: sessions of their own for the reads a client waits on
     * (ah_pg_read_lock), as the SQLite engine has, so that those reads
     * neither queue behind the writer's lock (its round trips, a group's
     * COMMIT waiting for the disk) nor end its open group transaction
     * early. AH_PG_READERS of them, each connected on its first use (a
     * store that never reads opens none); a reader's `writer` points back,
     * and it never writes. */
    struct ah_pg_store **readers;
    int nreaders;
    struct ah_pg_store *writer;
    /* On a reader whose session could not be had: when to try again
     * (CLOCK_MONOTONIC ms; 0: it has not failed). */
    int64_t reader_retry_ms;
    /* The last group transaction that ended (committed or not), for the
     * threads that wrote into it: until it ends they read through the
     * writer, to see their own writes. */
    _Atomic uint64_t group_ended_id;
    /* ah_pg_seq_seen: the last values drawn, a slot per (tenant, name)
     * hash, overwritten on collision (a lost expectation costs a round
     * trip, nothing else). */
    struct {
        int64_t tenant_id;
        int64_t value;
        char name[48];
    } seq_last[16];
} ah_pg_store;

extern const ah_store_ops ah_pg_ops;

static inline ah_pg_store *ah_pg(ah_store *s)
{
    return (ah_pg_store *)s;
}


void ah_pg_p_text(ah_pg_params *p, const char *v);
void ah_pg_p_int(ah_pg_params *p, int64_t v);
void ah_pg_p_bool(ah_pg_params *p, bool v);

/* Growable array of rows for the collect-then-callback pattern. */
typedef struct ah_pg_rowvec {
    void *items;
    size_t n, cap, elem;
} ah_pg_rowvec;

/* Fills one row from row i of a result. */
typedef bool (*ah_pg_fill_fn)(const PGresult *r, int i, void *row);
typedef void (*ah_pg_free_fn)(void *row);

/* ---- conn.c ------------------------------------------------------------ */

void ah_pg_lock(ah_pg_store *s);
/** For a read a client waits on: a reader, locked, that sees what is
 *  committed; the writer, locked (ah_pg_lock), when the calling thread has
 *  written something not yet committed (inside a scope, or in a group
 *  transaction that has not ended), or when no reader can be had. Release
 *  with ah_pg_read_unlock. */
ah_pg_store *ah_pg_read_lock(ah_pg_store *s);
void ah_pg_read_unlock(ah_pg_store *r);
/** The calling thread's writes: a scope of s begun (its lock held), its
 *  scope ended (group: the group transaction it wrote into), a group
 *  transaction of s ended (engine.c). */
void ah_pg_note_scope(ah_pg_store *s, bool begun, bool in_group);
void ah_pg_note_group_ended(ah_pg_store *s);
/** Closes and frees s's readers (ah_pg_close). */
void ah_pg_readers_close(ah_pg_store *s);
/** Makes s's reader slots (not yet connected); false when out of memory
 *  (then s serves the reads itself). */
bool ah_pg_readers_make(ah_pg_store *s);
void ah_pg_unlock(ah_pg_store *s);
void ah_pg_log_res(ah_pg_store *s, const PGresult *r, const char *what);
/** Runs statement slot id (prepared on first use from sql) with p; returns
 *  the result (PGRES_COMMAND_OK or PGRES_TUPLES_OK) or NULL with *rc set:
 *  AH_STORE_EXISTS (unique violation), AH_STORE_NOT_FOUND (foreign key
 *  violation), else AH_STORE_ERR (logged). Inside a scope without an
 *  operation's savepoint, the statement runs in a savepoint of its own so
 *  that its failure does not abort the scope's transaction. */
PGresult *ah_pg_run(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
                    const ah_pg_params *p, const char *what, int *rc);
#define AH_PG_RUN(s, id, p, what, rc)                                                   \
    ah_pg_run((s), AH_PG_QNAME(id), &(s)->prepared[(id)], q_sql[(id)], (p), (what), (rc))
/** As ah_pg_run, without the savepoint of its own inside a scope: for a
 *  single-statement operation that cannot fail on a constraint or on its
 *  input (a sequence bump), whose failure therefore means the transaction
 *  or the connection failed. Should it fail all the same, the scope's
 *  transaction is aborted: its COMMIT fails, and in a group every request
 *  of the group is answered as failed (as for ah_pg_defer_exec). A
 *  savepoint costs no round trip (it is queued) but server CPU, and
 *  PostgreSQL caches at most 64 subtransactions per backend: past that,
 *  every snapshot of every session gets slower. Outside a scope it is
 *  ah_pg_run. */
PGresult *ah_pg_run_bare(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
                         const ah_pg_params *p, const char *what, int *rc);
#define AH_PG_RUN_BARE(s, id, p, what, rc)                                              \
    ah_pg_run_bare((s), AH_PG_QNAME(id), &(s)->prepared[(id)], q_sql[(id)], (p), (what), (rc))
/** As ah_pg_run for a statement without rows; *changes (may be NULL)
 *  receives the rows it changed. */
int ah_pg_exec(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
               const ah_pg_params *p, const char *what, int64_t *changes);
#define AH_PG_EXEC(s, id, p, what, ch)                                                  \
    ah_pg_exec((s), AH_PG_QNAME(id), &(s)->prepared[(id)], q_sql[(id)], (p), (what), (ch))
/** Runs a DELETE of at most AH_PG_PRUNE_BATCH rows (parameters: the texts
 *  as $1..$ntexts, the batch size last) until a run deletes fewer, each
 *  run its own statement with the lock let go in between: a prune holds
 *  the instance's other store calls up for one batch at a time. */
#define AH_PG_PRUNE_BATCH 1000
int ah_pg_delete_batched(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
                         const char *const *texts, int ntexts, const char *what,
                         int64_t *n_out);
#define AH_PG_DELETE_BATCHED(s, id, texts, ntexts, what, n_out)                          \
    ah_pg_delete_batched((s), AH_PG_QNAME(id), &(s)->prepared[(id)], q_sql[(id)], (texts), \
                         (ntexts), (what), (n_out))
/** As ah_pg_exec: AH_STORE_NOT_FOUND when no row changed. */
int ah_pg_exec_change(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
                      const ah_pg_params *p, const char *what);
#define AH_PG_CHANGE(s, id, p, what)                                                    \
    ah_pg_exec_change((s), AH_PG_QNAME(id), &(s)->prepared[(id)], q_sql[(id)], (p), (what))
int ah_pg_tx_begin(ah_pg_store *s);
void ah_pg_tx_rollback(ah_pg_store *s);
int ah_pg_tx_commit(ah_pg_store *s);
/** Queues a transaction-control command (a static string: SAVEPOINT,
 *  RELEASE, ROLLBACK TO, BEGIN) of the open transaction: it is sent ahead of
 *  the next statement, COMMIT or command, in the same round trip (libpq's
 *  pipeline mode). Its failure (only when the transaction already failed,
 *  or the connection is lost) fails that next statement, and so the
 *  transaction: nothing is committed on the strength of it. */
void ah_pg_defer(ah_pg_store *s, const char *sql);
/** Inside a transaction (an operation's, a scope's or a group's) whose
 *  BEGIN the server already has, queues a data statement whose result the
 *  caller does not read (prepared from sql on first use, the parameters
 *  copied): it goes with the next statement or the COMMIT, in the same
 *  round trip.
 *  It has no savepoint of its own: should it fail, the transaction fails
 *  and its COMMIT with it (nothing is committed, every request of a group
 *  is answered as failed). Elsewhere it runs at once as ah_pg_exec does.
 *  Returns AH_STORE_OK when queued. */
int ah_pg_defer_exec(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
                     const ah_pg_params *p, const char *what);
#define AH_PG_DEFER(s, id, p, what)                                                     \
    ah_pg_defer_exec((s), AH_PG_QNAME(id), &(s)->prepared[(id)], q_sql[(id)], (p), (what))
/** Runs statement slot name k times, with ps[0..k-1], in pipelines of at
 *  most AH_PG_BATCH statements (with what was deferred ahead of the first):
 *  one round trip per pipeline instead of one per statement. out[i]
 *  receives the i-th result (to PQclear), or everything is NULL and the
 *  return is the first failure (mapped as ah_pg_run maps it). No savepoint
 *  of its own and no retry: call it inside a transaction (ah_pg_tx_begin),
 *  which a failure fails. */
#define AH_PG_BATCH 256
int ah_pg_run_many(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
                   const ah_pg_params *ps, int k, PGresult **out, const char *what);
#define AH_PG_RUN_MANY(s, id, ps, k, out, what)                                         \
    ah_pg_run_many((s), AH_PG_QNAME(id), &(s)->prepared[(id)], q_sql[(id)], (ps), (k), (out), \
                   (what))
/** Sends what ah_pg_defer queued, alone; AH_STORE_ERR when one failed. */
int ah_pg_flush(ah_pg_store *s);
/** Ends the scope's transaction: COMMIT (commit true) or ROLLBACK. */
int ah_pg_scope_commit(ah_pg_store *s, bool commit);
/** Runs a plain command (no parameters, not prepared): transaction
 *  control, migrations. */
int ah_pg_command(ah_pg_store *s, const char *sql, const char *what);
char *ah_pg_dup(const PGresult *r, int i, int col, bool *oom);
int64_t ah_pg_int(const PGresult *r, int i, int col);
bool ah_pg_bool(const PGresult *r, int i, int col);
void *ah_pg_rowvec_push(ah_pg_rowvec *v);
/** Copies every row of r into v (r is cleared by the caller). */
int ah_pg_collect(ah_pg_store *s, const PGresult *r, ah_pg_rowvec *v, ah_pg_fill_fn fill,
                  ah_pg_free_fn fr, const char *what);
void ah_pg_rowvec_free(ah_pg_rowvec *v, ah_pg_free_fn fr);
/** Row 0 of r into *out: AH_STORE_NOT_FOUND when r has no row. */
int ah_pg_one(ah_pg_store *s, const PGresult *r, void *out, ah_pg_fill_fn fill,
              ah_pg_free_fn fr, const char *what);
int ah_pg_page_limit(int limit);

/* ---- schema.c ---------------------------------------------------------- */

int ah_pg_migrate(ah_store *st);
int ah_pg_schema_version(ah_store *st);

/* ---- engine.c ---------------------------------------------------------- */

void ah_pg_close(ah_store *st);
int ah_pg_ping(ah_store *st);
int64_t ah_pg_data_version(ah_store *st);
int ah_pg_scope_begin(ah_store *st);
int ah_pg_scope_end(ah_store *st, bool commit);
int ah_pg_group_begin(ah_store *st, int64_t tenant_id, uint64_t *group_out);
int ah_pg_group_commit(ah_store *st);
void ah_pg_group_listen(ah_store *st, void (*ended)(void *arg, uint64_t group, bool ok),
                        void *arg);
/** Ends the open group transaction and tells the listener (lock held, no
 *  scope open). */
int ah_pg_group_end_locked(ah_pg_store *s, bool commit);

/* ---- tenants.c --------------------------------------------------------- */

int ah_pg_tenant_add(ah_store *st, const char *name, const char *key_hash, int64_t *id_out);
int ah_pg_tenant_get(ah_store *st, const char *name, ah_tenant_row *out);
int ah_pg_tenant_by_key_hash(ah_store *st, const char *key_hash, ah_tenant_row *out);
int ah_pg_tenant_list(ah_store *st, const ah_store_page *page, ah_tenant_cb cb, void *arg);
int ah_pg_tenant_remove(ah_store *st, const char *name);
int ah_pg_connection_add(ah_store *st, int64_t tenant_id, const char *plugin, const char *name,
                         const char *settings_json, int64_t *id_out);
int ah_pg_connection_get(ah_store *st, const char *tenant, const char *name,
                         ah_connection_row *out);
int ah_pg_connection_list(ah_store *st, const char *tenant, const ah_store_page *page,
                          ah_connection_cb cb, void *arg);
int ah_pg_connection_update(ah_store *st, int64_t id, const char *settings_json,
                            const char *expected_json);
int ah_pg_connection_set_enabled(ah_store *st, int64_t id, bool enabled);
int ah_pg_connection_remove(ah_store *st, int64_t id);
int ah_pg_sequence_next(ah_store *st, int64_t tenant_id, const char *name, int64_t *out);
int ah_pg_sequence_next_then_put(ah_store *st, int64_t tenant_id, const char *name,
                                 const char *then_name, int64_t connection_id,
                                 int (*make)(void *arg, int64_t n, ah_record_in *in), void *arg,
                                 int64_t *out, int64_t *then_out, bool *put,
                                 ah_upsert_result *res, char **id_out);
/* The last value this store drew of a tenant's sequence (tenants.c), as
 * far as it knows: an expectation, never a fact (another instance may
 * draw, a group may roll back). Under s->mu. */
void ah_pg_seq_seen(ah_pg_store *s, int64_t tenant_id, const char *name, int64_t value);
bool ah_pg_seq_last(ah_pg_store *s, int64_t tenant_id, const char *name, int64_t *value);
/* Whether a pair of names can go in sequence_next_then's statement
 * (tenants.c): not the same name twice, plain ASCII. */
bool ah_pg_seq_pair_fits(const char *name, const char *then_name);
int ah_pg_sequence_next_then(ah_store *st, int64_t tenant_id, const char *name,
                             const char *then_name, int64_t *out, int64_t *then_out);

/* ---- records.c --------------------------------------------------------- */

int ah_pg_records_upsert(ah_store *st, int64_t connection_id, const ah_record_in *in, size_t n,
                         const char *cursor_key, const char *cursor_value,
                         ah_upsert_result *results, char **ids_out);
int ah_pg_record_get(ah_store *st, int64_t connection_id, const char *type, const char *remote_id,
                     ah_record_row *out);
int ah_pg_record_get_by_id(ah_store *st, int64_t tenant_id, const char *id, ah_record_row *out);
int ah_pg_record_query(ah_store *st, const ah_record_query *qy, ah_record_cb cb, void *arg);
int64_t ah_pg_record_count(ah_store *st, int64_t connection_id, const char *type);
int ah_pg_cursor_get(ah_store *st, int64_t connection_id, const char *key, char **value_out);
int ah_pg_cursor_set(ah_store *st, int64_t connection_id, const char *key, const char *value);

/* ---- outbox.c ---------------------------------------------------------- */

int ah_pg_outbox_add(ah_store *st, int64_t tenant_id, const char *topic, const char *body,
                     int64_t *id_out);
int ah_pg_outbox_pending(ah_store *st, int limit, ah_outbox_cb cb, void *arg);
int ah_pg_outbox_done(ah_store *st, int64_t id);
int ah_pg_outbox_add_batch(ah_store *st, int64_t tenant_id, ah_outbox_in *events, size_t n);
int ah_pg_delivery_next(ah_store *st, int64_t conn_id, ah_delivery_row *out);
int ah_pg_delivery_done(ah_store *st, int64_t conn_id, int64_t outbox_id);
int ah_pg_delivery_retry(ah_store *st, int64_t conn_id, int64_t outbox_id, const char *next_at,
                         const char *error);
int ah_pg_delivery_due(ah_store *st, const char *now, int64_t *conn_ids, size_t max, size_t *n);
int ah_pg_outbox_after(ah_store *st, int64_t tenant_id, int64_t after_id, int limit,
                       ah_outbox_cb cb, void *arg);
int ah_pg_outbox_prune(ah_store *st, const char *before, int64_t *n_out);

/* ---- intlog.c ---------------------------------------------------------- */

int ah_pg_log_add(ah_store *st, const ah_log_entry *e);
int ah_pg_log_prune(ah_store *st, const char *before, int64_t *n_out);
int ah_pg_log_query(ah_store *st, const ah_log_filter *f, ah_log_cb cb, void *arg);

/* ---- webhooks.c -------------------------------------------------------- */

int ah_pg_webhook_add(ah_store *st, int64_t tenant_id, const char *url, const char *event_types,
                      const char *secret_sealed, int64_t *id_out);
int ah_pg_webhook_list(ah_store *st, int64_t tenant_id, int64_t after_id, int limit,
                       ah_webhook_cb cb, void *arg);
int ah_pg_webhook_due(ah_store *st, const char *now, ah_webhook_cb cb, void *arg);
int ah_pg_webhook_set_enabled(ah_store *st, int64_t tenant_id, int64_t id, bool enabled);
int ah_pg_webhook_deliveries(ah_store *st, int64_t tenant_id, int64_t id, int limit,
                             ah_webhook_delivery_cb cb, void *arg);
int ah_pg_webhook_attempt(ah_store *st, int64_t id, int64_t outbox_id, bool ok, int http_status,
                          const char *error, const char *next_at);
int ah_pg_webhook_advance(ah_store *st, int64_t id, int64_t outbox_id);
int ah_pg_webhook_failed(ah_store *st, int64_t id, int64_t failures, const char *next_at,
                         const char *disabled_at);
int ah_pg_webhook_due_one(ah_store *st, int64_t id, const char *now, ah_webhook_cb cb,
                          void *arg);
int ah_pg_webhook_prune(ah_store *st, const char *before, int64_t *n_out);
int ah_pg_webhook_update(ah_store *st, int64_t tenant_id, int64_t id, const char *url,
                         const char *event_types, const char *description);
int ah_pg_webhook_delete(ah_store *st, int64_t tenant_id, int64_t id);
int ah_pg_webhook_rotate(ah_store *st, int64_t tenant_id, int64_t id, const char *secret_sealed,
                         const char *previous_until);

/* ---- idempotency.c ----------------------------------------------------- */

int ah_pg_idem_reserve(ah_store *st, int64_t tenant_id, const char *key, const char *body_hash,
                       const char *expired_before, ah_idem_row *out);
int ah_pg_idem_complete(ah_store *st, int64_t tenant_id, const char *key, int status,
                        const char *response);
int ah_pg_idem_release(ah_store *st, int64_t tenant_id, const char *key);
int ah_pg_idem_prune(ah_store *st, const char *before, int64_t *n_out);
int ah_pg_idem_reopen(ah_store *st, int64_t tenant_id, const char *key, const char *body_hash);
int ah_pg_idem_complete_op(ah_store *st, int64_t tenant_id, const char *key, int status,
                           const char *response, const char *operation);
int ah_pg_bulk_item_set_op(ah_store *st, const char *id, int idx, const char *status,
                           const char *error_code, const char *error_message,
                           const char *operation);
int ah_pg_bulk_item_settle(ah_store *st, const char *operation, const char *status,
                           const char *error_code, const char *error_message, int64_t *n_out);
int ah_pg_record_prune(ah_store *st, const char *type, const char *before, const char *keep_key,
                       const char *keep_value, int64_t *n_out);

/* ---- bulk.c ------------------------------------------------------------ */

int ah_pg_bulk_add(ah_store *st, const char *id, int64_t tenant_id, const char *action,
                   const char *params_json, const char *const *record_ids, size_t n);
int ah_pg_bulk_get(ah_store *st, int64_t tenant_id, const char *id, ah_bulk_job_row *out);
int ah_pg_bulk_next(ah_store *st, ah_bulk_job_row *out);
int ah_pg_bulk_set_status(ah_store *st, const char *id, const char *status,
                          const char *finished_at);
int ah_pg_bulk_items(ah_store *st, const char *id, bool queued_only, ah_bulk_item_cb cb, void *arg);
int ah_pg_bulk_item_get(ah_store *st, const char *id, int idx, ah_bulk_item_row *out);
int ah_pg_bulk_next_after(ah_store *st, int64_t after_tenant_id, ah_bulk_job_row *out);
int ah_pg_bulk_items_queued_from(ah_store *st, const char *id, int from_idx, int limit,
                                 ah_bulk_item_cb cb, void *arg);
int ah_pg_bulk_queued_count(ah_store *st, int64_t tenant_id, int64_t *out);
int ah_pg_bulk_prune(ah_store *st, const char *before, int limit, int64_t *n_out);
int ah_pg_bulk_item_prior(ah_store *st, const char *id, const char *record_id, int before_idx,
                          ah_bulk_item_row *out);
int ah_pg_bulk_item_set(ah_store *st, const char *id, int idx, const char *status,
                        const char *error_code, const char *error_message);

/* ---- tracking.c -------------------------------------------------------- */

int ah_pg_record_marks(ah_store *st, int64_t connection_id, const char *type, ah_record_mark_cb cb,
                       void *arg);
int ah_pg_record_mark_deleted(ah_store *st, const char *id, const char *deleted_at);
int ah_pg_record_is_deleted(ah_store *st, const char *id, bool *deleted);
int ah_pg_stage_add(ah_store *st, const char *record_id, int64_t tenant_id, const char *from_stage,
                    const char *to_stage);
int ah_pg_stage_changed_since(ah_store *st, int64_t tenant_id, const char *after, int limit,
                              ah_stage_cb cb, void *arg);
int ah_pg_stage_history(ah_store *st, const char *record_id, ah_stage_cb cb, void *arg);

/* ---- leases.c ---------------------------------------------------------- */

int ah_pg_lease_acquire(ah_store *st, const char *name, const char *owner, int64_t ttl_ms,
                        int64_t *token, char **holder);
int ah_pg_lease_take_over(ah_store *st, const char *name, const char *from_owner,
                          const char *owner, int64_t ttl_ms, int64_t *token);
int ah_pg_lease_hold(ah_store *st, const char *name, int64_t token, int64_t ttl_ms);
int ah_pg_lease_release(ah_store *st, const char *name, int64_t token);
int ah_pg_lease_claim(ah_store *st, const char *const *names, size_t n, const char *owner,
                      int64_t ttl_ms, int64_t *tokens);

/* ---- cluster.c --------------------------------------------------------- */

int ah_pg_change_add(ah_store *st, const char *kind, const char *subject, const char *detail,
                     const char *origin);
int ah_pg_change_after(ah_store *st, int64_t after_id, int limit, ah_change_cb cb, void *arg);
int ah_pg_change_last(ah_store *st, int64_t *id_out);
int ah_pg_change_prune(ah_store *st, const char *before, int64_t *n_out);
int ah_pg_instance_beat(ah_store *st, const char *id, const char *version, const char *host,
                        int64_t pid, const char *started_at);
int ah_pg_instance_list(ah_store *st, int64_t max_age_ms, ah_instance_cb cb, void *arg);
int ah_pg_instance_remove(ah_store *st, const char *id, int64_t stale_ms);
int ah_pg_lease_list(ah_store *st, ah_lease_cb cb, void *arg);
int ah_pg_lease_prune(ah_store *st, const char *prefix, int64_t expired_ms, int64_t *n_out);

#endif
