/* SPDX-License-Identifier: Apache-2.0 */
/* The integration log. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_COLS                                                               \
    "id, at, tenant, source, plugin, action, method, path, status, "           \
    "duration_s, body, correlation_id, with_request, request_body"

/* This file's statements, by cache slot (sqlite_int.h). */
static const char *const q_sql[Q_COUNT] = {
    [Q_LOG_ADD] = "INSERT INTO integration_log(at, tenant, source, plugin, action, method, "
                  "path, status, duration_s, body, correlation_id, with_request, "
                  "request_body) "
                  "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [Q_LOG_PRUNE] = "DELETE FROM integration_log WHERE id IN (SELECT id FROM integration_log "
                    "WHERE at < ?1 ORDER BY at LIMIT ?2)",
};

enum { LQ_TENANT = 1, LQ_SOURCE = 2, LQ_ACTION = 4, LQ_STATUS = 8, LQ_SINCE = 16,
       LQ_UNTIL = 32 };

static bool fill_log(sqlite3_stmt *st, ah_log_entry *e)
{
    bool oom = false;
    e->id = sqlite3_column_int64(st, 0);
    e->at = ah_sq_col_dup(st, 1, &oom);
    e->tenant = ah_sq_col_dup(st, 2, &oom);
    e->source = ah_sq_col_dup(st, 3, &oom);
    e->plugin = ah_sq_col_dup(st, 4, &oom);
    e->action = ah_sq_col_dup(st, 5, &oom);
    e->method = ah_sq_col_dup(st, 6, &oom);
    e->path = ah_sq_col_dup(st, 7, &oom);
    e->status = sqlite3_column_int(st, 8);
    e->duration_s = sqlite3_column_double(st, 9);
    e->body = ah_sq_col_dup(st, 10, &oom);
    e->correlation_id = ah_sq_col_dup(st, 11, &oom);
    e->with_request = sqlite3_column_int(st, 12) != 0;
    e->request_body = ah_sq_col_dup(st, 13, &oom);
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
    free(e->request_body);
}

static void log_free_v(void *r)
{
    log_entry_free(r);
}

static bool fill_log_v(sqlite3_stmt *st, void *r)
{
    return fill_log(st, r);
}

int ah_sq_log_add(ah_store *st, const ah_log_entry *e)
{
    ah_sq_store *s = ah_sq(st);
    if (e == NULL)
        return AH_STORE_ERR;
    char at[32];
    if (e->at == NULL) {
        ah_now_iso(at);
    } else if (ah_iso_normalize(e->at, at) != 0) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "log_add: 'at' is not an ISO-8601 time");
        return AH_STORE_ERR;
    }
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_LOG_ADD);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, at);
        ah_sq_bind_text(q, 2, e->tenant);
        ah_sq_bind_text(q, 3, e->source != NULL ? e->source : "core");
        ah_sq_bind_text(q, 4, e->plugin);
        ah_sq_bind_text(q, 5, e->action != NULL ? e->action : "");
        ah_sq_bind_text(q, 6, e->method);
        ah_sq_bind_text(q, 7, e->path);
        sqlite3_bind_int(q, 8, e->status);
        sqlite3_bind_double(q, 9, e->duration_s);
        ah_sq_bind_text(q, 10, e->body);
        ah_sq_bind_text(q, 11, e->correlation_id);
        sqlite3_bind_int(q, 12, e->with_request ? 1 : 0);
        ah_sq_bind_text(q, 13, e->with_request ? e->request_body : NULL);
        rc = ah_sq_run(s, q, "log_add");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

/* The query reads rows, which ah_log_rows_expand turns into entries: each
 * row it selects gives at least one entry the filter selects, so `limit`
 * rows are enough for `limit` entries. */
static sqlite3_stmt *log_query_stmt(ah_sq_store *s, unsigned mask)
{
    if (s->lq[mask] != NULL)
        return s->lq[mask];
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT " LOG_COLS " FROM integration_log WHERE 1 = 1%s%s%s%s%s%s "
             "ORDER BY at DESC, id DESC LIMIT ?7",
             (mask & LQ_TENANT) ? " AND tenant = ?1" : "",
             (mask & LQ_SOURCE) ? " AND source = ?2" : "",
             /* A row's REQUEST entry has status 0: no status filter
              * selects it. */
             !(mask & LQ_ACTION) ? ""
             : (mask & LQ_STATUS) ? " AND action = ?3"
                                  : " AND (action = ?3 OR (with_request = 1 AND ?3 = 'REQUEST'))",
             (mask & LQ_STATUS) ? " AND status = ?4" : "",
             (mask & LQ_SINCE) ? " AND at >= ?5" : "",
             (mask & LQ_UNTIL) ? " AND at < ?6" : "");
    return ah_sq_prep(s, &s->lq[mask], sql);
}

int ah_sq_log_query(ah_store *st, const ah_log_filter *f, ah_log_cb cb, void *arg)
{
    ah_sq_store *w = ah_sq(st);
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
            ah_log(w->base.lg, AH_LOG_ERROR, "store",
                   "log_query: since is not an ISO-8601 date or time");
            return AH_STORE_ERR;
        }
        mask |= LQ_SINCE;
    }
    if (f->until != NULL) {
        if (ah_iso_normalize(f->until, until) != 0) {
            ah_log(w->base.lg, AH_LOG_ERROR, "store",
                   "log_query: until is not an ISO-8601 date or time");
            return AH_STORE_ERR;
        }
        mask |= LQ_UNTIL;
    }
    int limit = f->limit > 0 ? f->limit : 100;

    ah_sq_rowvec v = {.elem = sizeof(ah_log_entry)};
    ah_sq_store *s = ah_sq_read_lock(w);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = log_query_stmt(s, mask);
    if (q != NULL) {
        if (mask & LQ_TENANT)
            ah_sq_bind_text(q, 1, f->tenant);
        if (mask & LQ_SOURCE)
            ah_sq_bind_text(q, 2, f->source);
        if (mask & LQ_ACTION)
            ah_sq_bind_text(q, 3, f->action);
        if (mask & LQ_STATUS)
            sqlite3_bind_int(q, 4, f->status);
        if (mask & LQ_SINCE)
            ah_sq_bind_text(q, 5, since);
        if (mask & LQ_UNTIL)
            ah_sq_bind_text(q, 6, until);
        sqlite3_bind_int(q, 7, limit);
        rc = ah_sq_collect(s, q, &v, fill_log_v, log_free_v, "log_query");
        ah_sq_done(q);
    }
    ah_sq_read_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        ah_log_rows_expand((ah_log_entry *)v.items, v.n, f, limit, cb, arg);
    ah_sq_rowvec_free(&v, log_free_v);
    return rc;
}

int ah_sq_log_prune(ah_store *st, const char *before, int64_t *n_out)
{
    ah_sq_store *s = ah_sq(st);
    if (n_out != NULL)
        *n_out = 0;
    char b[32];
    /* Stored times are canonical: a normalised bound compares as a string
     * and uses the index on at. */
    if (before == NULL || ah_iso_normalize(before, b) != 0)
        return AH_STORE_ERR;
    const char *texts[] = {b};
    return ah_sq_delete_batched(s, Q_LOG_PRUNE, q_sql[Q_LOG_PRUNE], texts, 1, "log_prune", n_out);
}
