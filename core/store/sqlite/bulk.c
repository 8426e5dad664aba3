/* SPDX-License-Identifier: Apache-2.0 */
/* Bulk jobs and their items. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BULK_COLS                                                              \
    "id, tenant_id, action, params, status, total, created_at, finished_at"
#define ITEM_COLS "idx, record_id, status, error_code, error_message, operation"

/* This file's statements, by cache slot (sqlite_int.h). */
static const char *const q_sql[Q_COUNT] = {
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
                     "AND idx < ?3 ORDER BY idx LIMIT 1",
    [Q_BULK_ITEM_GET] = "SELECT " ITEM_COLS " FROM bulk_items WHERE job_id = ?1 AND idx = ?2",
    [Q_BULK_ITEM_SET] = "UPDATE bulk_items SET status = ?3, error_code = ?4, error_message = ?5, "
                        "operation = ?6 WHERE job_id = ?1 AND idx = ?2",
    [Q_BULK_SETTLE] = "UPDATE bulk_items SET status = ?2, error_code = ?3, error_message = ?4 "
                       "WHERE operation = ?1 AND status = 'failed' "
                       "AND error_code = 'outcome_unknown'",
    /* The worker's round robin: a tenant's oldest unfinished job, tenant
     * after tenant (the partial index bulk_jobs_active). */
    [Q_BULK_NEXT_AFTER] = "SELECT " BULK_COLS " FROM bulk_jobs WHERE status IN ('queued', "
                          "'running') AND tenant_id > ?1 ORDER BY tenant_id, created_at, id "
                          "LIMIT 1",
    [Q_BULK_ITEMS_FROM] = "SELECT " ITEM_COLS " FROM bulk_items WHERE job_id = ?1 AND idx >= ?2 "
                          "AND status = 'queued' ORDER BY idx LIMIT ?3",
    /* A queued job's items are all still to run; a running job's are read
     * (a tenant's jobs run one at a time: one job's items at most). */
    [Q_BULK_QUEUED_COUNT] = "SELECT coalesce(sum(CASE WHEN j.status = 'queued' THEN j.total "
                            "ELSE (SELECT count(*) FROM bulk_items i WHERE i.job_id = j.id "
                            "AND i.status = 'queued') END), 0) FROM bulk_jobs j "
                            "WHERE j.tenant_id = ?1 AND j.status IN ('queued', 'running')",
    /* Items go with their job (ON DELETE CASCADE); the partial index
     * bulk_jobs_finished finds the jobs. */
    [Q_BULK_PRUNE] = "DELETE FROM bulk_jobs WHERE id IN (SELECT id FROM bulk_jobs "
                     "WHERE status IN ('done', 'failed') AND coalesce(finished_at, created_at) "
                     "< ?1 LIMIT ?2)",
};

static bool fill_bulk_job(sqlite3_stmt *st, void *row)
{
    ah_bulk_job_row *r = row;
    bool oom = false;
    r->id = ah_sq_col_dup(st, 0, &oom);
    r->tenant_id = sqlite3_column_int64(st, 1);
    r->action = ah_sq_col_dup(st, 2, &oom);
    r->params = ah_sq_col_dup(st, 3, &oom);
    r->status = ah_sq_col_dup(st, 4, &oom);
    r->total = sqlite3_column_int64(st, 5);
    r->created_at = ah_sq_col_dup(st, 6, &oom);
    r->finished_at = ah_sq_col_dup(st, 7, &oom);
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
    r->record_id = ah_sq_col_dup(st, 1, &oom);
    r->status = ah_sq_col_dup(st, 2, &oom);
    r->error_code = ah_sq_col_dup(st, 3, &oom);
    r->error_message = ah_sq_col_dup(st, 4, &oom);
    r->operation = ah_sq_col_dup(st, 5, &oom);
    return !oom;
}

static void bulk_item_free_v(void *row)
{
    ah_bulk_item_row_free(row);
}

int ah_sq_bulk_add(ah_store *st, const char *id, int64_t tenant_id, const char *action,
                   const char *params_json, const char *const *record_ids, size_t n)
{
    ah_sq_store *s = ah_sq(st);
    if (id == NULL || action == NULL || params_json == NULL || (n > 0 && record_ids == NULL))
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_sq_lock(s);
    int rc = ah_sq_tx_begin(s);
    sqlite3_stmt *q = rc == AH_STORE_OK ? AH_SQ_GET(s, Q_BULK_ADD) : NULL;
    rc = AH_STORE_ERR;
    if (q != NULL) {
        ah_sq_bind_text(q, 1, id);
        sqlite3_bind_int64(q, 2, tenant_id);
        ah_sq_bind_text(q, 3, action);
        ah_sq_bind_text(q, 4, params_json);
        sqlite3_bind_int64(q, 5, (sqlite3_int64)n);
        ah_sq_bind_text(q, 6, now);
        rc = ah_sq_exec_changes(s, q, "bulk_add", NULL);
    }
    for (size_t i = 0; rc == AH_STORE_OK && i < n; i++) {
        q = AH_SQ_GET(s, Q_BULK_ITEM_ADD);
        if (q == NULL || record_ids[i] == NULL) {
            rc = AH_STORE_ERR;
            break;
        }
        ah_sq_bind_text(q, 1, id);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)i);
        ah_sq_bind_text(q, 3, record_ids[i]);
        rc = ah_sq_exec_changes(s, q, "bulk_add", NULL);
    }
    if (rc == AH_STORE_OK)
        rc = ah_sq_tx_commit(s);
    else
        ah_sq_tx_rollback(s);
    ah_sq_unlock(s);
    return rc;
}

/* A job by id is a client's read (GET /v1/bulk/{id}): on a reader beside
 * the writer (ah_sq_read_lock keeps read-your-writes). The worker's next
 * job stays on the writer. */
static int bulk_job_one(ah_store *st, ah_sq_qid id, const char *job_id, int64_t tenant_id,
                        ah_bulk_job_row *out, const char *what)
{
    ah_sq_store *w = ah_sq(st);
    if (out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_sq_store *s = job_id != NULL ? ah_sq_read_lock(w) : w;
    if (job_id == NULL)
        ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, id);
    if (q != NULL) {
        if (job_id != NULL) {
            ah_sq_bind_text(q, 1, job_id);
            sqlite3_bind_int64(q, 2, tenant_id);
        }
        rc = ah_sq_get_one(s, q, out, fill_bulk_job, bulk_job_free_v, what);
        ah_sq_done(q);
    }
    ah_sq_read_unlock(s); /* the writer's unlock when s is the writer */
    return rc;
}

int ah_sq_bulk_get(ah_store *st, int64_t tenant_id, const char *id, ah_bulk_job_row *out)
{
    if (id == NULL)
        return AH_STORE_ERR;
    return bulk_job_one(st, Q_BULK_GET, id, tenant_id, out, "bulk_get");
}

int ah_sq_bulk_next(ah_store *st, ah_bulk_job_row *out)
{
    return bulk_job_one(st, Q_BULK_NEXT, NULL, 0, out, "bulk_next");
}

int ah_sq_bulk_set_status(ah_store *st, const char *id, const char *status, const char *finished_at)
{
    ah_sq_store *s = ah_sq(st);
    if (id == NULL || status == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_BULK_STATUS);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, id);
        ah_sq_bind_text(q, 2, status);
        ah_sq_bind_text(q, 3, finished_at);
        rc = ah_sq_change_by_id(s, q, "bulk_set_status");
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_bulk_items(ah_store *st, const char *id, bool queued_only, ah_bulk_item_cb cb, void *arg)
{
    ah_sq_store *s = ah_sq(st);
    if (id == NULL)
        return AH_STORE_ERR;
    ah_sq_rowvec v = {.elem = sizeof(ah_bulk_item_row)};
    /* Every item is a client's report (a reader, as bulk_get); the queued
     * ones are the worker's, on the writer. */
    s = queued_only ? s : ah_sq_read_lock(s);
    if (queued_only)
        ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, queued_only ? Q_BULK_ITEMS_QUEUED : Q_BULK_ITEMS);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, id);
        rc = ah_sq_collect(s, q, &v, fill_bulk_item, bulk_item_free_v, "bulk_items");
        ah_sq_done(q);
    }
    ah_sq_read_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_bulk_item_row *)v.items + i);
    ah_sq_rowvec_free(&v, bulk_item_free_v);
    return rc;
}

/* One item of job id: at idx (record_id NULL), or the first before idx
 * for record_id that is no longer queued. */
static int bulk_item_one(ah_store *st, const char *id, const char *record_id, int idx,
                         ah_bulk_item_row *out, const char *what)
{
    ah_sq_store *s = ah_sq(st);
    if (id == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, record_id != NULL ? Q_BULK_PRIOR : Q_BULK_ITEM_GET);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, id);
        if (record_id != NULL) {
            ah_sq_bind_text(q, 2, record_id);
            sqlite3_bind_int(q, 3, idx);
        } else {
            sqlite3_bind_int(q, 2, idx);
        }
        rc = ah_sq_get_one(s, q, out, fill_bulk_item, bulk_item_free_v, what);
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_bulk_item_prior(ah_store *st, const char *id, const char *record_id, int before_idx,
                          ah_bulk_item_row *out)
{
    if (record_id == NULL)
        return AH_STORE_ERR;
    return bulk_item_one(st, id, record_id, before_idx, out, "bulk_item_prior");
}

int ah_sq_bulk_item_get(ah_store *st, const char *id, int idx, ah_bulk_item_row *out)
{
    return bulk_item_one(st, id, NULL, idx, out, "bulk_item_get");
}

int ah_sq_bulk_item_set(ah_store *st, const char *id, int idx, const char *status,
                        const char *error_code, const char *error_message)
{
    return ah_sq_bulk_item_set_op(st, id, idx, status, error_code, error_message, NULL);
}

int ah_sq_bulk_item_set_op(ah_store *st, const char *id, int idx, const char *status,
                           const char *error_code, const char *error_message,
                           const char *operation)
{
    ah_sq_store *s = ah_sq(st);
    if (id == NULL || status == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_BULK_ITEM_SET);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, id);
        sqlite3_bind_int(q, 2, idx);
        ah_sq_bind_text(q, 3, status);
        ah_sq_bind_text(q, 4, error_code);
        ah_sq_bind_text(q, 5, error_message);
        ah_sq_bind_text(q, 6, operation);
        rc = ah_sq_change_by_id(s, q, "bulk_item_set");
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_bulk_item_settle(ah_store *st, const char *operation, const char *status,
                           const char *error_code, const char *error_message, int64_t *n_out)
{
    ah_sq_store *s = ah_sq(st);
    if (n_out != NULL)
        *n_out = 0;
    if (operation == NULL || status == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_BULK_SETTLE);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, operation);
        ah_sq_bind_text(q, 2, status);
        ah_sq_bind_text(q, 3, error_code);
        ah_sq_bind_text(q, 4, error_message);
        rc = ah_sq_exec_changes(s, q, "bulk_item_settle", n_out);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_bulk_next_after(ah_store *st, int64_t after_tenant_id, ah_bulk_job_row *out)
{
    ah_sq_store *s = ah_sq(st);
    if (out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_BULK_NEXT_AFTER);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, after_tenant_id);
        rc = ah_sq_get_one(s, q, out, fill_bulk_job, bulk_job_free_v, "bulk_next_after");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_bulk_items_queued_from(ah_store *st, const char *id, int from_idx, int limit,
                                 ah_bulk_item_cb cb, void *arg)
{
    ah_sq_store *s = ah_sq(st);
    if (id == NULL || limit < 1)
        return AH_STORE_ERR;
    ah_sq_rowvec v = {.elem = sizeof(ah_bulk_item_row)};
    ah_sq_lock(s); /* the worker's, on the writer (as bulk_items' queued ones) */
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_BULK_ITEMS_FROM);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, id);
        sqlite3_bind_int(q, 2, from_idx);
        sqlite3_bind_int(q, 3, limit);
        rc = ah_sq_collect(s, q, &v, fill_bulk_item, bulk_item_free_v, "bulk_items_queued_from");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_bulk_item_row *)v.items + i);
    ah_sq_rowvec_free(&v, bulk_item_free_v);
    return rc;
}

static bool fill_count(sqlite3_stmt *st, void *row)
{
    *(int64_t *)row = sqlite3_column_int64(st, 0);
    return true;
}

static void count_free_v(void *row)
{
    (void)row;
}

int ah_sq_bulk_queued_count(ah_store *st, int64_t tenant_id, int64_t *out)
{
    ah_sq_store *s = ah_sq(st);
    if (out == NULL)
        return AH_STORE_ERR;
    *out = 0;
    /* A client's request (the cap of POST /v1/applications/bulk-*): on a
     * reader beside the writer, as bulk_get. */
    s = ah_sq_read_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_BULK_QUEUED_COUNT);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, tenant_id);
        rc = ah_sq_get_one(s, q, out, fill_count, count_free_v, "bulk_queued_count");
        ah_sq_done(q);
    }
    ah_sq_read_unlock(s);
    return rc;
}

int ah_sq_bulk_prune(ah_store *st, const char *before, int limit, int64_t *n_out)
{
    ah_sq_store *s = ah_sq(st);
    if (n_out != NULL)
        *n_out = 0;
    if (before == NULL || limit < 1)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_BULK_PRUNE);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, before);
        sqlite3_bind_int(q, 2, limit);
        rc = ah_sq_exec_changes(s, q, "bulk_prune", n_out);
    }
    ah_sq_unlock(s);
    return rc;
}
