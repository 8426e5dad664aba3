/* SPDX-License-Identifier: Apache-2.0 */
/* Shared plumbing of the SQLite engine: the statement cache, binding and
 * stepping, errors, transactions (savepoints inside a scope), the lock and
 * the collect-then-callback row vectors. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* This file's statements, by cache slot (sqlite_int.h). */
static const char *const q_sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SAVEPOINT] = "SAVEPOINT ah_op",
    [Q_RELEASE] = "RELEASE ah_op",
    [Q_ROLLBACK_TO] = "ROLLBACK TO ah_op",
    [Q_GROUP_SAVEPOINT] = "SAVEPOINT ah_grp",
    [Q_GROUP_RELEASE] = "RELEASE ah_grp",
    [Q_GROUP_ROLLBACK_TO] = "ROLLBACK TO ah_grp",
    [Q_SCOPE_SAVEPOINT] = "SAVEPOINT ah_scope",
    [Q_SCOPE_RELEASE] = "RELEASE ah_scope",
    [Q_SCOPE_ROLLBACK_TO] = "ROLLBACK TO ah_scope",
    [Q_PING] = "SELECT 1",
};

void ah_sq_log_db(ah_sq_store *s, const char *what)
{
    ah_log(s->base.lg, AH_LOG_ERROR, "store", "sqlite: %s: %s (code %d)", what,
           sqlite3_errmsg(s->db), sqlite3_extended_errcode(s->db));
}

sqlite3_stmt *ah_sq_prep(ah_sq_store *s, sqlite3_stmt **slot, const char *sql)
{
    /* Inside a scope its transaction must still be open. SQLite rolls a
     * transaction back by itself on some errors (SQLITE_FULL, SQLITE_IOERR,
     * SQLITE_NOMEM); a statement then would run on its own and commit (a
     * savepoint begins a transaction of its own, its release commits it)
     * while the scope, or the group it is part of, fails and its requests
     * are answered failed. Every statement comes through here: none runs. */
    if (s->scope_depth > 0 && sqlite3_get_autocommit(s->db)) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store",
               "sqlite: the transaction was rolled back under its scope (by SQLite, after an "
               "error such as a full disk); nothing more is written in it");
        return NULL;
    }
    if (*slot != NULL)
        return *slot;
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) !=
        SQLITE_OK) {
        ah_sq_log_db(s, "prepare");
        *slot = NULL;
        return NULL;
    }
    return *slot;
}

sqlite3_stmt *ah_sq_prep_rows(ah_sq_store *s, ah_sq_mqid id, const char *head, const char *row,
                              int rows, const char *tail)
{
    if (s->mq[id] != NULL)
        return s->mq[id];
    sqlite3_str *q = sqlite3_str_new(s->db);
    sqlite3_str_appendall(q, head);
    for (int i = 0; i < rows; i++) {
        if (i > 0)
            sqlite3_str_appendchar(q, 1, ',');
        sqlite3_str_appendall(q, row);
    }
    sqlite3_str_appendall(q, tail);
    char *sql = sqlite3_str_finish(q);
    if (sql == NULL) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "sqlite: prepare: out of memory");
        return NULL;
    }
    sqlite3_stmt *st = ah_sq_prep(s, &s->mq[id], sql);
    sqlite3_free(sql);
    return st;
}

size_t ah_sq_rows_chunk(size_t n)
{
    return n >= AH_SQ_ROWS_BIG ? AH_SQ_ROWS_BIG : n >= AH_SQ_ROWS_SMALL ? AH_SQ_ROWS_SMALL : 1;
}

void *ah_sq_scratch(ah_sq_store *s, size_t n)
{
    if (n > s->scratch_cap) {
        size_t c = s->scratch_cap ? s->scratch_cap : 4096;
        while (c < n)
            c *= 2;
        char *b = realloc(s->scratch, c);
        if (b == NULL)
            return NULL;
        s->scratch = b;
        s->scratch_cap = c;
    }
    return s->scratch;
}

/* Strings are bound SQLITE_STATIC: every caller keeps them alive until it
 * resets the statement with ah_sq_done(), which also drops the bindings. */
int ah_sq_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v == NULL)
        return sqlite3_bind_null(st, i);
    return sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

void ah_sq_done(sqlite3_stmt *st)
{
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

/* Maps a failed step to a store result; expected constraint outcomes are
 * returned quietly, everything else is logged. */
int ah_sq_step_error(ah_sq_store *s, int rc, const char *what)
{
    /* Extended result codes are on: rc already carries the detail. */
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return AH_STORE_EXISTS;
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return AH_STORE_NOT_FOUND;
    ah_sq_log_db(s, what);
    return AH_STORE_ERR;
}

/* Runs a statement that returns no rows; ah_sq_done() is left to the caller. */
int ah_sq_run(ah_sq_store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return AH_STORE_OK;
    return ah_sq_step_error(s, rc, what);
}

int ah_sq_exec_q(ah_sq_store *s, ah_sq_qid id, const char *what)
{
    sqlite3_stmt *st = AH_SQ_GET(s, id);
    if (st == NULL)
        return AH_STORE_ERR;
    int rc = ah_sq_run(s, st, what);
    ah_sq_done(st);
    return rc;
}

/* Inside a scope (scope_begin .. scope_end) an operation's transaction is a
 * savepoint of the scope's transaction: its failure undoes only its own
 * writes, and everything commits together at scope_end. */
int ah_sq_tx_begin(ah_sq_store *s)
{
    s->sp_skipped = false; /* whatever an ended operation left */
    if (s->scope_depth > 0) {
        if (ah_sq_exec_q(s, Q_SAVEPOINT, "savepoint") != AH_STORE_OK)
            return AH_STORE_ERR;
        s->sp_active = true;
        return AH_STORE_OK;
    }
    return ah_sq_exec_q(s, Q_BEGIN, "begin") == AH_STORE_OK ? AH_STORE_OK : AH_STORE_ERR;
}

int ah_sq_tx_begin_one(ah_sq_store *s)
{
    if (s->scope_depth > 0) {
        /* The savepoint's SAVEPOINT and RELEASE, and the pages it copies to
         * the sub-journal, cost more than the write (two per ERP create). */
        s->sp_skipped = true;
        return AH_STORE_OK;
    }
    return ah_sq_tx_begin(s);
}

void ah_sq_tx_rollback(ah_sq_store *s)
{
    if (s->scope_depth > 0 && s->sp_skipped) {
        s->sp_skipped = false;
        return;
    }
    if (s->scope_depth > 0) {
        if (s->sp_active) {
            ah_sq_exec_q(s, Q_ROLLBACK_TO, "rollback to savepoint");
            ah_sq_exec_q(s, Q_RELEASE, "release savepoint");
            s->sp_active = false;
        }
        return;
    }
    /* SQLite may already have rolled back by itself (e.g. after SQLITE_FULL). */
    if (!sqlite3_get_autocommit(s->db))
        ah_sq_exec_q(s, Q_ROLLBACK, "rollback");
}

int ah_sq_tx_commit(ah_sq_store *s)
{
    if (s->scope_depth > 0 && s->sp_skipped) {
        s->sp_skipped = false;
        return AH_STORE_OK;
    }
    if (s->scope_depth > 0) {
        if (ah_sq_exec_q(s, Q_RELEASE, "release savepoint") == AH_STORE_OK) {
            s->sp_active = false;
            return AH_STORE_OK;
        }
        ah_sq_tx_rollback(s);
        return AH_STORE_ERR;
    }
    if (ah_sq_exec_q(s, Q_COMMIT, "commit") == AH_STORE_OK)
        return AH_STORE_OK;
    if (!sqlite3_get_autocommit(s->db))
        ah_sq_exec_q(s, Q_ROLLBACK, "rollback");
    return AH_STORE_ERR;
}

char *ah_sq_col_dup(sqlite3_stmt *st, int i, bool *oom)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (t == NULL)
        return NULL;
    char *d = strdup((const char *)t);
    if (d == NULL)
        *oom = true;
    return d;
}

void ah_sq_mu_lock(ah_sq_store *s)
{
    pthread_mutex_lock(&s->mu);
    s->mu_depth++;
}

bool ah_sq_mu_trylock(ah_sq_store *s)
{
    if (pthread_mutex_trylock(&s->mu) != 0)
        return false;
    s->mu_depth++;
    return true;
}

void ah_sq_mu_unlock(ah_sq_store *s)
{
    /* Held (ah_sq_group_commit): its caller calls group_answered after
     * answering the group, which takes mu back and writes them. */
    bool hold = s->log_hold;
    s->log_hold = false;
    bool dur_skip = s->dur_skip; /* for the outermost release only */
    s->dur_skip = false;
    if (!hold && s->mu_depth == 1 && s->scope_depth == 0 &&
        atomic_load_explicit(&s->log_npending, memory_order_acquire) > 0)
        ah_sq_log_flush_locked(s);
    bool last = --s->mu_depth == 0;
    pthread_mutex_unlock(&s->mu);
    /* Pairs with the fence in log_add between queueing and its second try
     * (a release, then a load, may otherwise pass each other). */
    atomic_thread_fence(memory_order_seq_cst);
    /* A row deferred after the flush above, by a thread whose own try for
     * mu came before this release, would wait for the next holder: take
     * mu back and write it (its deferrer tries mu once more after
     * queueing, so one of the two always sees it). */
    while (last && !hold && atomic_load_explicit(&s->log_npending, memory_order_acquire) > 0 &&
           pthread_mutex_trylock(&s->mu) == 0) {
        s->mu_depth = 1; /* mu was free: no scope is open */
        bool flushed = ah_sq_log_flush_locked(s);
        s->mu_depth = 0;
        pthread_mutex_unlock(&s->mu);
        if (!flushed)
            break;
    }
    /* What this thread wrote or read is committed: it leaves once it is on
     * disk too (walsync.c), unless the committer answers for it. */
    if (last && !dur_skip)
        ah_sq_durable_after(s);
}

void ah_sq_lock(ah_sq_store *s)
{
    ah_sq_mu_lock(s);
    /* Outside any scope, nobody works inside the open group transaction:
     * it is committed first (its listener answers its requests). */
    if (s->group_open && s->scope_depth == 0)
        (void)ah_sq_group_end_locked(s, true);
}

void ah_sq_unlock(ah_sq_store *s)
{
    ah_sq_mu_unlock(s);
}

void *ah_sq_rowvec_push(ah_sq_rowvec *v)
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

/* Steps a bound statement to the end, copying every row into v. */
int ah_sq_collect(ah_sq_store *s, sqlite3_stmt *st, ah_sq_rowvec *v, ah_sq_fill_fn fill,
                  ah_sq_free_fn fr, const char *what)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        void *row = ah_sq_rowvec_push(v);
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
        return ah_sq_step_error(s, rc, what);
    return AH_STORE_OK;
}

void ah_sq_rowvec_free(ah_sq_rowvec *v, ah_sq_free_fn fr)
{
    for (size_t i = 0; i < v->n; i++)
        fr((char *)v->items + i * v->elem);
    free(v->items);
    v->items = NULL;
    v->n = v->cap = 0;
}

/* Runs a statement expected to return at most one row into *out. */
int ah_sq_get_one(ah_sq_store *s, sqlite3_stmt *st, void *out, ah_sq_fill_fn fill, ah_sq_free_fn fr,
                  const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return AH_STORE_NOT_FOUND;
    if (rc != SQLITE_ROW)
        return ah_sq_step_error(s, rc, what);
    if (!fill(st, out)) {
        fr(out);
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "%s: out of memory", what);
        return AH_STORE_ERR;
    }
    return AH_STORE_OK;
}

/* UPDATE/DELETE by id: NOT_FOUND when no row matched. */
int ah_sq_change_by_id(ah_sq_store *s, sqlite3_stmt *q, const char *what)
{
    int rc = ah_sq_run(s, q, what);
    if (rc == AH_STORE_OK && sqlite3_changes(s->db) == 0)
        rc = AH_STORE_NOT_FOUND;
    ah_sq_done(q);
    return rc;
}

int ah_sq_page_limit(int limit)
{
    return limit > 0 && limit <= 1000 ? limit : 100;
}

/* Runs a statement without rows that must be prepared first; *changes (may
 * be NULL) receives the rows it changed. Called with the lock held. */
int ah_sq_exec_changes(ah_sq_store *s, sqlite3_stmt *q, const char *what, int64_t *changes)
{
    int rc = ah_sq_run(s, q, what);
    if (rc == AH_STORE_OK && changes != NULL)
        *changes = sqlite3_changes(s->db);
    ah_sq_done(q);
    return rc;
}

/* Runs a DELETE of at most AH_SQ_PRUNE_BATCH rows (its parameters: the
 * texts as ?1..?ntexts, the batch size last) until a run deletes fewer,
 * each run its own transaction with the lock let go in between: a prune
 * holds the writers up for one batch at a time, never for a table scan or
 * a day's backlog at once. */
int ah_sq_delete_batched(ah_sq_store *s, ah_sq_qid id, const char *sql, const char *const *texts,
                         int ntexts, const char *what, int64_t *n_out)
{
    int64_t total = 0, n;
    int rc;
    do {
        n = 0;
        ah_sq_lock(s);
        sqlite3_stmt *q = ah_sq_prep(s, &s->q[id], sql);
        rc = AH_STORE_ERR;
        if (q != NULL) {
            for (int i = 0; i < ntexts; i++)
                ah_sq_bind_text(q, i + 1, texts[i]);
            sqlite3_bind_int(q, ntexts + 1, AH_SQ_PRUNE_BATCH);
            rc = ah_sq_exec_changes(s, q, what, &n);
        }
        ah_sq_unlock(s);
        total += n;
    } while (rc == AH_STORE_OK && n >= AH_SQ_PRUNE_BATCH);
    if (n_out != NULL)
        *n_out = total;
    return rc;
}
