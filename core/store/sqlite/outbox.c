/* SPDX-License-Identifier: Apache-2.0 */
/* The events outbox: adding events with their per-connection deliveries,
 * delivering them, and reading and pruning it as the event log. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The events a prune may take: below the bound, older than the cutoff, and
 * with no delivery pending, checked per event on deliveries' outbox_id
 * index (schema v15) rather than by reading every pending delivery. */
#define OUT_PRUNABLE                                                                    \
    "SELECT o.id FROM outbox o WHERE o.id < ?2 AND o.created_at < ?1 AND NOT EXISTS "   \
    "(SELECT 1 FROM deliveries d WHERE d.outbox_id = o.id) AND NOT EXISTS "             \
    "(SELECT 1 FROM webhook_endpoints e WHERE e.tenant_id = o.tenant_id "               \
    "AND e.enabled <> 0 AND e.cursor < o.id) ORDER BY o.id LIMIT ?3"

/* This file's statements, by cache slot (sqlite_int.h). */
static const char *const q_sql[Q_COUNT] = {
    [Q_OUT_ADD] = "INSERT INTO outbox(tenant_id, topic, body, created_at) "
                  "VALUES(?1, ?2, ?3, ?4)",
    [Q_OUT_PENDING] = "SELECT id, tenant_id, topic, body, created_at FROM outbox "
                      "WHERE delivered_at IS NULL ORDER BY id LIMIT ?1",
    [Q_OUT_DONE] = "UPDATE outbox SET delivered_at = ?2 WHERE id = ?1 "
                   "AND delivered_at IS NULL",
    /* A subscriber another process removed since this one loaded its
     * connections gets no delivery (its foreign key would fail the event,
     * and the page or request adding it). */
    [Q_DEL_ADD] = "INSERT OR IGNORE INTO deliveries(connection_id, outbox_id, attempts, next_at) "
                  "SELECT ?1, ?2, 0, ?3 WHERE EXISTS (SELECT 1 FROM connections WHERE id = ?1)",
    [Q_DEL_NEXT] = "SELECT d.connection_id, d.outbox_id, o.tenant_id, o.topic, o.body, "
                   "d.attempts, d.next_at FROM deliveries d JOIN outbox o ON o.id = d.outbox_id "
                   "WHERE d.connection_id = ?1 ORDER BY d.outbox_id LIMIT 1",
    [Q_DEL_DONE] = "DELETE FROM deliveries WHERE connection_id = ?1 AND outbox_id = ?2",
    [Q_DEL_RETRY] = "UPDATE deliveries SET attempts = attempts + 1, next_at = ?3, last_error = ?4 "
                    "WHERE connection_id = ?1 AND outbox_id = ?2",
    /* A disabled connection's deliveries wait for it to be enabled again
     * (events.c) without moving: left out, or they would fill the due
     * list at every tick and keep enabled connections' retries out. */
    [Q_DEL_DUE] = "SELECT DISTINCT d.connection_id FROM deliveries d JOIN connections c "
                  "ON c.id = d.connection_id WHERE d.next_at <= ?1 AND c.enabled <> 0 LIMIT ?2",
    [Q_OUT_AFTER] = "SELECT id, tenant_id, topic, body, created_at FROM outbox "
                    "WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    /* Pruning (ah_sq_outbox_prune): the oldest events below a bound, a
     * batch at a time, except those a connection or an enabled webhook
     * endpoint still has to receive (a failing endpoint is disabled after
     * max_failures, so that keeps them for a bounded time); their webhook
     * delivery lines go with them. */
    [Q_OUT_PRUNE] = "DELETE FROM outbox WHERE id IN (" OUT_PRUNABLE ")",
    [Q_OUT_PRUNE_WH] = "DELETE FROM webhook_deliveries WHERE outbox_id IN (" OUT_PRUNABLE ")",
    [Q_OUT_SEEK] = "SELECT id, created_at FROM outbox WHERE id >= ?1 ORDER BY id LIMIT 1",
    [Q_OUT_ENDS] = "SELECT min(id), max(id) FROM outbox",
};

/* Event bodies are stored packed (schema v5): coded (fieldpack.c) as
 * copies from this constant dictionary of what change events repeat, when that
 * is smaller; a BLOB then, else the TEXT as given (as every body before
 * v5). A record change event's ~129 bytes take ~61. Changing this text
 * makes stored bodies unreadable: never edit it, add a new form instead. */
static const char k_body_dict[] =
    "\"type\":\"application\",\"type\":\"candidate\",\"type\":\"job\",\"connection\":\"main\","
    "\"updated_at\":\"2026-{\"id\":\"rec_0\",\"remote_id\":\"";

static void bind_body(ah_sq_store *s, sqlite3_stmt *q, int i, const char *body)
{
    size_t bl = strlen(body);
    const void *z = NULL;
    size_t zl = 0;
    /* Both stay valid until the statement has run (the packer is used
     * again only for the next body): bound without a copy. */
    if (ah_sq_fields_pack_const(s->packer, k_body_dict, sizeof k_body_dict - 1, body, bl, &z,
                                &zl) == 0 &&
        zl < bl)
        sqlite3_bind_blob(q, i, z, (int)zl, SQLITE_STATIC);
    else
        sqlite3_bind_text(q, i, body, (int)bl, SQLITE_STATIC);
}

static char *body_text(sqlite3_stmt *st, int col, bool *oom)
{
    if (sqlite3_column_type(st, col) != SQLITE_BLOB)
        return ah_sq_col_dup(st, col, oom);
    char *t = ah_sq_fields_unpack(k_body_dict, sizeof k_body_dict - 1,
                                  sqlite3_column_blob(st, col),
                                  (size_t)sqlite3_column_bytes(st, col));
    if (t == NULL)
        *oom = true;
    return t;
}

static bool fill_outbox(sqlite3_stmt *st, ah_outbox_row *r)
{
    bool oom = false;
    r->id = sqlite3_column_int64(st, 0);
    r->tenant_id = sqlite3_column_int64(st, 1);
    r->topic = ah_sq_col_dup(st, 2, &oom);
    r->body = body_text(st, 3, &oom);
    r->created_at = ah_sq_col_dup(st, 4, &oom);
    return !oom;
}

static void outbox_free_v(void *r)
{
    ah_outbox_row_free(r);
}

static bool fill_outbox_v(sqlite3_stmt *st, void *r)
{
    return fill_outbox(st, r);
}

int ah_sq_outbox_add(ah_store *st, int64_t tenant_id, const char *topic, const char *body,
                     int64_t *id_out)
{
    ah_sq_store *s = ah_sq(st);
    if (topic == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_OUT_ADD);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, tenant_id);
        ah_sq_bind_text(q, 2, topic);
        bind_body(s, q, 3, body != NULL ? body : "{}");
        ah_sq_bind_text(q, 4, now);
        rc = ah_sq_run(s, q, "outbox_add");
        if (rc == AH_STORE_OK && id_out != NULL)
            *id_out = sqlite3_last_insert_rowid(s->db);
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_outbox_pending(ah_store *st, int limit, ah_outbox_cb cb, void *arg)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_rowvec v = {.elem = sizeof(ah_outbox_row)};
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_OUT_PENDING);
    if (q != NULL) {
        sqlite3_bind_int(q, 1, limit > 0 ? limit : 100);
        rc = ah_sq_collect(s, q, &v, fill_outbox_v, outbox_free_v, "outbox_pending");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_outbox_row *)v.items + i);
    ah_sq_rowvec_free(&v, outbox_free_v);
    return rc;
}

int ah_sq_outbox_done(ah_store *st, int64_t id)
{
    ah_sq_store *s = ah_sq(st);
    char now[32];
    ah_now_iso(now);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_OUT_DONE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        ah_sq_bind_text(q, 2, now);
        rc = ah_sq_change_by_id(s, q, "outbox_done");
    }
    ah_sq_unlock(s);
    return rc;
}

/* ---- events with their deliveries to plugins ----------------------------- */

/* Binds body as bind_body does, at param i, with its packed form copied to
 * *mem (advanced): a multi-row statement holds several bodies at once,
 * while the packer's output lasts only until its next use. The caller
 * sized *mem for the texts: a packed body is shorter than its text. */
static void bind_body_kept(ah_sq_store *s, sqlite3_stmt *q, int i, const char *body,
                           unsigned char **mem)
{
    size_t bl = strlen(body);
    const void *z = NULL;
    size_t zl = 0;
    if (ah_sq_fields_pack_const(s->packer, k_body_dict, sizeof k_body_dict - 1, body, bl, &z,
                                &zl) == 0 &&
        zl < bl) {
        memcpy(*mem, z, zl);
        sqlite3_bind_blob(q, i, *mem, (int)zl, SQLITE_STATIC);
        *mem += zl;
    } else {
        sqlite3_bind_text(q, i, body, (int)bl, SQLITE_STATIC);
    }
}

/* Inserts events[0..k) (k from ah_sq_rows_chunk, > 1) in one statement and
 * sets their ids. The outbox's ids are AUTOINCREMENT: under the write
 * lock a statement's rows take consecutive ids in the order given, so the
 * last insert's rowid gives them all. OR IGNORE: no row can be skipped
 * (every column is bound a value, the id is the table's), and unlike a
 * plain INSERT of several rows it needs no statement journal (the pages
 * the statement touches copied aside, in case it failed halfway). */
static int outbox_add_rows(ah_sq_store *s, int64_t tenant_id, ah_outbox_in *events, size_t k,
                           const char *now)
{
    sqlite3_stmt *q =
        ah_sq_prep_rows(s, k == AH_SQ_ROWS_BIG ? MQ_OUT_BIG : MQ_OUT_SMALL,
                        "INSERT OR IGNORE INTO outbox(tenant_id, topic, body, created_at) VALUES",
                        "(?,?,?,?)", (int)k, "");
    if (q == NULL)
        return AH_STORE_ERR;
    size_t cap = 1;
    for (size_t j = 0; j < k; j++)
        cap += events[j].body != NULL ? strlen(events[j].body) : 2;
    unsigned char *mem = ah_sq_scratch(s, cap);
    if (mem == NULL) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "outbox_add_batch: out of memory");
        return AH_STORE_ERR;
    }
    for (size_t j = 0; j < k; j++) {
        int b = (int)j * 4;
        sqlite3_bind_int64(q, b + 1, tenant_id);
        ah_sq_bind_text(q, b + 2, events[j].topic);
        bind_body_kept(s, q, b + 3, events[j].body != NULL ? events[j].body : "{}", &mem);
        ah_sq_bind_text(q, b + 4, now);
    }
    int rc = ah_sq_run(s, q, "outbox_add_batch");
    if (rc == AH_STORE_OK) {
        if (sqlite3_changes(s->db) != (int)k) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store", "outbox_add_batch: %d of %zu events added",
                   sqlite3_changes(s->db), k);
            rc = AH_STORE_ERR;
        } else {
            int64_t last = sqlite3_last_insert_rowid(s->db);
            for (size_t j = 0; j < k; j++)
                events[j].id = last - (int64_t)(k - 1 - j);
        }
    }
    ah_sq_done(q);
    return rc;
}

int ah_sq_outbox_add_batch(ah_store *st, int64_t tenant_id, ah_outbox_in *events, size_t n)
{
    ah_sq_store *s = ah_sq(st);
    if (events == NULL && n > 0)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_sq_lock(s);
    /* One event for no subscribed connection (an ERP create's) is one
     * write. */
    bool one = n == 1 && events[0].nconn == 0;
    int rc = one ? ah_sq_tx_begin_one(s) : ah_sq_tx_begin(s);
    for (size_t e = 0; rc == AH_STORE_OK && e < n;) {
        size_t k = ah_sq_rows_chunk(n - e);
        for (size_t j = e; j < e + k; j++)
            if (events[j].topic == NULL || (events[j].nconn > 0 && events[j].conn_ids == NULL))
                rc = AH_STORE_ERR;
        if (rc != AH_STORE_OK)
            break;
        if (k > 1) {
            rc = outbox_add_rows(s, tenant_id, events + e, k, now);
        } else {
            ah_outbox_in *ev = &events[e];
            sqlite3_stmt *q = AH_SQ_GET(s, Q_OUT_ADD);
            if (q == NULL) {
                rc = AH_STORE_ERR;
                break;
            }
            sqlite3_bind_int64(q, 1, tenant_id);
            ah_sq_bind_text(q, 2, ev->topic);
            bind_body(s, q, 3, ev->body != NULL ? ev->body : "{}");
            ah_sq_bind_text(q, 4, now);
            rc = ah_sq_run(s, q, "outbox_add_batch");
            ev->id = sqlite3_last_insert_rowid(s->db);
            ah_sq_done(q);
        }
        for (size_t j = e; rc == AH_STORE_OK && j < e + k; j++) {
            ah_outbox_in *ev = &events[j];
            for (size_t i = 0; rc == AH_STORE_OK && i < ev->nconn; i++) {
                sqlite3_stmt *q = AH_SQ_GET(s, Q_DEL_ADD);
                if (q == NULL) {
                    rc = AH_STORE_ERR;
                    break;
                }
                sqlite3_bind_int64(q, 1, ev->conn_ids[i]);
                sqlite3_bind_int64(q, 2, ev->id);
                ah_sq_bind_text(q, 3, now);
                rc = ah_sq_run(s, q, "outbox_add_batch");
                ah_sq_done(q);
            }
        }
        e += k;
    }
    if (rc == AH_STORE_OK)
        rc = ah_sq_tx_commit(s);
    else if (!sqlite3_get_autocommit(s->db))
        ah_sq_tx_rollback(s);
    ah_sq_unlock(s);
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
    r->topic = ah_sq_col_dup(st, 3, &oom);
    r->body = body_text(st, 4, &oom);
    r->attempts = sqlite3_column_int(st, 5);
    r->next_at = ah_sq_col_dup(st, 6, &oom);
    return !oom;
}

static void delivery_free_v(void *row)
{
    ah_delivery_row_free(row);
}

int ah_sq_delivery_next(ah_store *st, int64_t conn_id, ah_delivery_row *out)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_DEL_NEXT);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, conn_id);
        rc = ah_sq_get_one(s, q, out, fill_delivery, delivery_free_v, "delivery_next");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_delivery_done(ah_store *st, int64_t conn_id, int64_t outbox_id)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_DEL_DONE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, conn_id);
        sqlite3_bind_int64(q, 2, outbox_id);
        rc = ah_sq_change_by_id(s, q, "delivery_done");
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_delivery_retry(ah_store *st, int64_t conn_id, int64_t outbox_id, const char *next_at,
                         const char *error)
{
    ah_sq_store *s = ah_sq(st);
    if (next_at == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_DEL_RETRY);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, conn_id);
        sqlite3_bind_int64(q, 2, outbox_id);
        ah_sq_bind_text(q, 3, next_at);
        ah_sq_bind_text(q, 4, error);
        rc = ah_sq_change_by_id(s, q, "delivery_retry");
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_delivery_due(ah_store *st, const char *now, int64_t *conn_ids, size_t max, size_t *n)
{
    ah_sq_store *s = ah_sq(st);
    *n = 0;
    if (now == NULL || conn_ids == NULL || max == 0)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_DEL_DUE);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, now);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)max);
        int r;
        while ((r = sqlite3_step(q)) == SQLITE_ROW && *n < max)
            conn_ids[(*n)++] = sqlite3_column_int64(q, 0);
        rc = r == SQLITE_DONE || r == SQLITE_ROW ? AH_STORE_OK
                                                 : ah_sq_step_error(s, r, "delivery_due");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

/* ---- the outbox read as the event log -------------------------------------- */

int ah_sq_outbox_after(ah_store *st, int64_t tenant_id, int64_t after_id, int limit,
                       ah_outbox_cb cb, void *arg)
{
    ah_sq_store *w = ah_sq(st);
    ah_sq_rowvec v = {.elem = sizeof(ah_outbox_row)};
    ah_sq_store *s = ah_sq_read_lock(w);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_OUT_AFTER);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, tenant_id);
        sqlite3_bind_int64(q, 2, after_id);
        sqlite3_bind_int(q, 3, ah_sq_page_limit(limit));
        rc = ah_sq_collect(s, q, &v, fill_outbox_v, outbox_free_v, "outbox_after");
        ah_sq_done(q);
    }
    ah_sq_read_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_outbox_row *)v.items + i);
    ah_sq_rowvec_free(&v, outbox_free_v);
    return rc;
}

static int seek_event(void *arg, int64_t from, int64_t *id, char at[32])
{
    ah_sq_store *s = arg;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_OUT_SEEK);
    if (q == NULL)
        return AH_STORE_ERR;
    sqlite3_bind_int64(q, 1, from);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(q, 1);
        *id = sqlite3_column_int64(q, 0);
        snprintf(at, 32, "%s", t != NULL ? t : "");
    }
    ah_sq_done(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? AH_STORE_OK
                                                 : ah_sq_step_error(s, rc, "outbox_prune");
}

/* The first event id at or past cutoff (0: no events), by bisection: events
 * are written in time order, so finding it reads a few b-tree pages however
 * many are due. A clock stepped back only makes some old events wait for a
 * later prune: the deletes check created_at too. */
static int prune_bound(ah_sq_store *s, const char *cutoff, int64_t *bound)
{
    *bound = 0;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_OUT_ENDS);
    if (q == NULL)
        return AH_STORE_ERR;
    int rc = sqlite3_step(q);
    bool empty = rc != SQLITE_ROW || sqlite3_column_type(q, 0) == SQLITE_NULL;
    int64_t lo = empty ? 0 : sqlite3_column_int64(q, 0);
    int64_t hi = empty ? 0 : sqlite3_column_int64(q, 1) + 1;
    ah_sq_done(q);
    if (rc != SQLITE_ROW)
        return ah_sq_step_error(s, rc, "outbox_prune");
    return empty ? AH_STORE_OK : ah_store_time_bound(lo, hi, cutoff, seek_event, s, bound);
}

int ah_sq_outbox_prune(ah_store *st, const char *before, int64_t *n_out)
{
    ah_sq_store *s = ah_sq(st);
    if (n_out != NULL)
        *n_out = 0;
    char cutoff[32];
    if (before == NULL || ah_iso_normalize(before, cutoff) != 0)
        return AH_STORE_ERR;
    int64_t bound = 0, total = 0, n = 0;
    ah_sq_lock(s);
    int rc = prune_bound(s, cutoff, &bound);
    ah_sq_unlock(s);
    /* A batch at a time, each its own transaction, the lock let go in
     * between (ah_sq_delete_batched). */
    while (rc == AH_STORE_OK && bound > 0) {
        n = 0;
        ah_sq_lock(s);
        sqlite3_stmt *wh = NULL, *ev = NULL;
        rc = ah_sq_tx_begin(s);
        if (rc == AH_STORE_OK) {
            wh = AH_SQ_GET(s, Q_OUT_PRUNE_WH);
            ev = AH_SQ_GET(s, Q_OUT_PRUNE);
            rc = wh != NULL && ev != NULL ? AH_STORE_OK : AH_STORE_ERR;
        }
        for (int i = 0; rc == AH_STORE_OK && i < 2; i++) {
            sqlite3_stmt *q = i == 0 ? wh : ev;
            ah_sq_bind_text(q, 1, cutoff);
            sqlite3_bind_int64(q, 2, bound);
            sqlite3_bind_int(q, 3, AH_SQ_PRUNE_BATCH);
            rc = ah_sq_exec_changes(s, q, "outbox_prune", i == 0 ? NULL : &n);
        }
        if (rc == AH_STORE_OK)
            rc = ah_sq_tx_commit(s);
        else
            ah_sq_tx_rollback(s);
        ah_sq_unlock(s);
        if (rc == AH_STORE_OK)
            total += n;
        if (n < AH_SQ_PRUNE_BATCH)
            break;
    }
    if (n_out != NULL)
        *n_out = total;
    return rc;
}
