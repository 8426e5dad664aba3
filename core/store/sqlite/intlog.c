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

static void log_free_v(void *r)
{
    ah_log_entry_free(r);
}

static bool fill_log_v(sqlite3_stmt *st, void *r)
{
    return fill_log(st, r);
}

/* Binds an entry to Q_LOG_ADD (at already normalised) and runs it. mu held. */
static int log_insert(ah_sq_store *s, const ah_log_entry *e, const char *at)
{
    sqlite3_stmt *q = AH_SQ_GET(s, Q_LOG_ADD);
    if (q == NULL)
        return AH_STORE_ERR;
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
    int rc = ah_sq_run(s, q, "log_add");
    ah_sq_done(q);
    return rc;
}

/* ---- rows deferred while another thread holds the writer --------------- */

/* A row that came while mu was held by another thread: an outbound call's
 * log row (the HTTP client's, on a bus worker) must not wait for a sync's
 * page or a group to commit, or the next page's fetch waits with it (the
 * engine's prefetch ran behind every page's commit). The entry and its
 * strings in one block; at is its time of arrival. */
typedef struct ah_sq_log_pending {
    struct ah_sq_log_pending *next;
    ah_log_entry e;
    char at[32];
    char text[]; /* the entry's strings */
} ah_sq_log_pending;

/* Past this many rows waiting, a row waits for mu as before (memory stays
 * bounded while the writer is stuck, and the callers feel it). */
#define AH_SQ_LOG_PENDING_MAX 1024

static char *pend_put(char **cur, const char *v)
{
    if (v == NULL)
        return NULL;
    size_t n = strlen(v) + 1;
    char *d = memcpy(*cur, v, n);
    *cur += n;
    return d;
}

static size_t pend_len(const char *v)
{
    return v != NULL ? strlen(v) + 1 : 0;
}

/* Queues a copy of e; false when the queue is full or memory is short. */
static bool log_defer(ah_sq_store *s, const ah_log_entry *e, const char *at)
{
    if (atomic_load_explicit(&s->log_npending, memory_order_relaxed) >= AH_SQ_LOG_PENDING_MAX)
        return false;
    const char *req = e->with_request ? e->request_body : NULL;
    size_t n = pend_len(e->tenant) + pend_len(e->source) + pend_len(e->plugin) +
               pend_len(e->action) + pend_len(e->method) + pend_len(e->path) + pend_len(e->body) +
               pend_len(e->correlation_id) + pend_len(req);
    ah_sq_log_pending *p = malloc(sizeof *p + n);
    if (p == NULL)
        return false;
    char *cur = p->text;
    p->next = NULL;
    snprintf(p->at, sizeof p->at, "%s", at);
    p->e = (ah_log_entry){
        .tenant = pend_put(&cur, e->tenant),
        .source = pend_put(&cur, e->source),
        .plugin = pend_put(&cur, e->plugin),
        .action = pend_put(&cur, e->action),
        .method = pend_put(&cur, e->method),
        .path = pend_put(&cur, e->path),
        .status = e->status,
        .duration_s = e->duration_s,
        .body = pend_put(&cur, e->body),
        .correlation_id = pend_put(&cur, e->correlation_id),
        .with_request = e->with_request,
        .request_body = pend_put(&cur, req),
    };
    pthread_mutex_lock(&s->log_pending_mu);
    if (s->log_tail != NULL)
        s->log_tail->next = p;
    else
        s->log_head = p;
    s->log_tail = p;
    atomic_fetch_add_explicit(&s->log_npending, 1, memory_order_release);
    pthread_mutex_unlock(&s->log_pending_mu);
    return true;
}

static ah_sq_log_pending *log_take_all(ah_sq_store *s)
{
    pthread_mutex_lock(&s->log_pending_mu);
    ah_sq_log_pending *head = s->log_head;
    s->log_head = s->log_tail = NULL;
    atomic_store_explicit(&s->log_npending, 0, memory_order_release);
    pthread_mutex_unlock(&s->log_pending_mu);
    return head;
}

static void log_pending_drop(ah_sq_log_pending *p)
{
    while (p != NULL) {
        ah_sq_log_pending *next = p->next;
        free(p);
        p = next;
    }
}

bool ah_sq_log_flush_locked(ah_sq_store *s)
{
    /* Into the open group (it commits them with its requests' writes), or
     * a transaction of their own: one commit for all of them. Any other
     * open transaction is an operation's, which may yet roll back. */
    bool own = !s->group_open;
    if (s->scope_depth != 0 || (own && !sqlite3_get_autocommit(s->db)))
        return false;
    ah_sq_log_pending *head = log_take_all(s);
    if (head == NULL)
        return true;
    size_t lost = 0;
    bool begun = !own || ah_sq_exec_q(s, Q_BEGIN, "log flush begin") == AH_STORE_OK;
    for (ah_sq_log_pending *p = head; p != NULL; p = p->next)
        if (!begun || log_insert(s, &p->e, p->at) != AH_STORE_OK)
            lost++;
    if (own && begun && ah_sq_exec_q(s, Q_COMMIT, "log flush commit") != AH_STORE_OK) {
        if (!sqlite3_get_autocommit(s->db))
            ah_sq_exec_q(s, Q_ROLLBACK, "log flush rollback");
        lost = 0;
        for (ah_sq_log_pending *p = head; p != NULL; p = p->next)
            lost++;
    }
    if (lost > 0)
        ah_log(s->base.lg, AH_LOG_WARN, "store", "log_add: %zu integration log row(s) not written",
               lost);
    log_pending_drop(head);
    return true;
}

void ah_sq_log_pending_free(ah_sq_store *s)
{
    ah_sq_log_pending *head = log_take_all(s);
    size_t lost = 0;
    for (ah_sq_log_pending *p = head; p != NULL; p = p->next)
        lost++;
    if (lost > 0)
        ah_log(s->base.lg, AH_LOG_WARN, "store", "close: %zu integration log row(s) not written",
               lost);
    log_pending_drop(head);
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
    /* mu is recursive: a scope's own thread takes it here and writes its
     * row inside the scope, as before. Another thread's hold defers the
     * row to its release; then mu is tried once more, so that a release
     * that came between the two tries does not leave the row behind. */
    if (!ah_sq_mu_trylock(s)) {
        if (log_defer(s, e, at)) {
            atomic_thread_fence(memory_order_seq_cst); /* see ah_sq_mu_unlock */
            if (ah_sq_mu_trylock(s)) {
                s->dur_skip = s->mu_depth == 1; /* a log row: nobody's answer */
                ah_sq_mu_unlock(s);             /* writes it */
            }
            return AH_STORE_OK;
        }
        ah_sq_mu_lock(s);
    }
    /* As ah_sq_lock: outside a scope the open group commits first. */
    if (s->group_open && s->scope_depth == 0)
        (void)ah_sq_group_end_locked(s, true);
    int rc = log_insert(s, e, at);
    /* Nobody's answer waits for a log row to reach the disk (a group it
     * committed first is answered after its sync, walsync.c). */
    s->dur_skip = s->mu_depth == 1;
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
