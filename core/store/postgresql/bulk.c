/* SPDX-License-Identifier: Apache-2.0 */
/* Bulk jobs and their items. */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BULK_COLS                                                              \
    "id, tenant_id, action, params, status, total, created_at, finished_at"
#define ITEM_COLS "idx, record_id, status, error_code, error_message, operation"

static const char *const q_sql[P_COUNT] = {
    [P_BULK_ADD] = "INSERT INTO bulk_jobs(id, tenant_id, action, params, status, total, "
                   "created_at) VALUES($1, $2, $3, $4, 'queued', $5, $6)",
    [P_BULK_ITEM_ADD] = "INSERT INTO bulk_items(job_id, idx, record_id) VALUES($1, $2, $3)",
    [P_BULK_GET] = "SELECT " BULK_COLS " FROM bulk_jobs WHERE id = $1 AND tenant_id = $2",
    [P_BULK_NEXT] = "SELECT " BULK_COLS " FROM bulk_jobs WHERE status IN ('queued', 'running') "
                    "ORDER BY created_at, id LIMIT 1",
    [P_BULK_STATUS] = "UPDATE bulk_jobs SET status = $2, finished_at = coalesce($3::text, "
                      "finished_at) WHERE id = $1",
    [P_BULK_ITEMS] = "SELECT " ITEM_COLS " FROM bulk_items WHERE job_id = $1 ORDER BY idx",
    [P_BULK_ITEMS_QUEUED] = "SELECT " ITEM_COLS " FROM bulk_items WHERE job_id = $1 "
                            "AND status = 'queued' ORDER BY idx",
    [P_BULK_PRIOR] = "SELECT " ITEM_COLS " FROM bulk_items WHERE job_id = $1 AND record_id = $2 "
                     "AND idx < $3 ORDER BY idx LIMIT 1",
    [P_BULK_ITEM_GET] = "SELECT " ITEM_COLS " FROM bulk_items WHERE job_id = $1 AND idx = $2",
    [P_BULK_ITEM_SET] = "UPDATE bulk_items SET status = $3, error_code = $4, error_message = $5, "
                        "operation = $6 WHERE job_id = $1 AND idx = $2",
    [P_BULK_SETTLE] = "UPDATE bulk_items SET status = $2, error_code = $3, error_message = $4 "
                       "WHERE operation = $1 AND status = 'failed' "
                       "AND error_code = 'outcome_unknown'",
    /* As the SQLite engine's (its comments say why). */
    [P_BULK_NEXT_AFTER] = "SELECT " BULK_COLS " FROM bulk_jobs WHERE status IN ('queued', "
                          "'running') AND tenant_id > $1 ORDER BY tenant_id, created_at, id "
                          "LIMIT 1",
    [P_BULK_ITEMS_FROM] = "SELECT " ITEM_COLS " FROM bulk_items WHERE job_id = $1 AND idx >= $2 "
                          "AND status = 'queued' ORDER BY idx LIMIT $3",
    [P_BULK_QUEUED_COUNT] = "SELECT coalesce(sum(CASE WHEN j.status = 'queued' THEN j.total "
                            "ELSE (SELECT count(*) FROM bulk_items i WHERE i.job_id = j.id "
                            "AND i.status = 'queued') END), 0) FROM bulk_jobs j "
                            "WHERE j.tenant_id = $1 AND j.status IN ('queued', 'running')",
    [P_BULK_PRUNE] = "DELETE FROM bulk_jobs WHERE id IN (SELECT id FROM bulk_jobs "
                     "WHERE status IN ('done', 'failed') AND coalesce(finished_at, created_at) "
                     "< $1 LIMIT $2)",
};

static bool fill_bulk_job(const PGresult *r, int i, void *row)
{
    ah_bulk_job_row *j = row;
    bool oom = false;
    j->id = ah_pg_dup(r, i, 0, &oom);
    j->tenant_id = ah_pg_int(r, i, 1);
    j->action = ah_pg_dup(r, i, 2, &oom);
    j->params = ah_pg_dup(r, i, 3, &oom);
    j->status = ah_pg_dup(r, i, 4, &oom);
    j->total = ah_pg_int(r, i, 5);
    j->created_at = ah_pg_dup(r, i, 6, &oom);
    j->finished_at = ah_pg_dup(r, i, 7, &oom);
    return !oom;
}

static void bulk_job_free_v(void *row)
{
    ah_bulk_job_row_free(row);
}

static bool fill_bulk_item(const PGresult *r, int i, void *row)
{
    ah_bulk_item_row *x = row;
    bool oom = false;
    x->idx = (int)ah_pg_int(r, i, 0);
    x->record_id = ah_pg_dup(r, i, 1, &oom);
    x->status = ah_pg_dup(r, i, 2, &oom);
    x->error_code = ah_pg_dup(r, i, 3, &oom);
    x->error_message = ah_pg_dup(r, i, 4, &oom);
    x->operation = ah_pg_dup(r, i, 5, &oom);
    return !oom;
}

static void bulk_item_free_v(void *row)
{
    ah_bulk_item_row_free(row);
}

int ah_pg_bulk_add(ah_store *st, const char *id, int64_t tenant_id, const char *action,
                   const char *params_json, const char *const *record_ids, size_t n)
{
    ah_pg_store *s = ah_pg(st);
    if (id == NULL || action == NULL || params_json == NULL || (n > 0 && record_ids == NULL))
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_pg_lock(s);
    int rc = ah_pg_tx_begin(s);
    if (rc == AH_STORE_OK) {
        ah_pg_params p = {0};
        ah_pg_p_text(&p, id);
        ah_pg_p_int(&p, tenant_id);
        ah_pg_p_text(&p, action);
        ah_pg_p_text(&p, params_json);
        ah_pg_p_int(&p, (int64_t)n);
        ah_pg_p_text(&p, now);
        rc = AH_PG_EXEC(s, P_BULK_ADD, &p, "bulk_add", NULL);
    }
    for (size_t i = 0; rc == AH_STORE_OK && i < n; i++) {
        if (record_ids[i] == NULL) {
            rc = AH_STORE_ERR;
            break;
        }
        ah_pg_params p = {0};
        ah_pg_p_text(&p, id);
        ah_pg_p_int(&p, (int64_t)i);
        ah_pg_p_text(&p, record_ids[i]);
        rc = AH_PG_EXEC(s, P_BULK_ITEM_ADD, &p, "bulk_add", NULL);
    }
    if (rc == AH_STORE_OK)
        rc = ah_pg_tx_commit(s);
    else
        ah_pg_tx_rollback(s);
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_bulk_get(ah_store *st, int64_t tenant_id, const char *id, ah_bulk_job_row *out)
{
    ah_pg_store *s = ah_pg(st);
    if (id == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_pg_params p = {0};
    ah_pg_p_text(&p, id);
    ah_pg_p_int(&p, tenant_id);
    int rc;
    s = ah_pg_read_lock(s);
    PGresult *r = AH_PG_RUN(s, P_BULK_GET, &p, "bulk_get", &rc);
    if (r != NULL) {
        rc = ah_pg_one(s, r, out, fill_bulk_job, bulk_job_free_v, "bulk_get");
        PQclear(r);
    }
    ah_pg_read_unlock(s);
    return rc;
}

int ah_pg_bulk_next(ah_store *st, ah_bulk_job_row *out)
{
    ah_pg_store *s = ah_pg(st);
    if (out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_BULK_NEXT, NULL, "bulk_next", &rc);
    if (r != NULL) {
        rc = ah_pg_one(s, r, out, fill_bulk_job, bulk_job_free_v, "bulk_next");
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_bulk_set_status(ah_store *st, const char *id, const char *status, const char *finished_at)
{
    ah_pg_store *s = ah_pg(st);
    if (id == NULL || status == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, id);
    ah_pg_p_text(&p, status);
    ah_pg_p_text(&p, finished_at);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_BULK_STATUS, &p, "bulk_set_status");
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_bulk_items(ah_store *st, const char *id, bool queued_only, ah_bulk_item_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    if (id == NULL)
        return AH_STORE_ERR;
    ah_pg_rowvec v = {.elem = sizeof(ah_bulk_item_row)};
    ah_pg_params p = {0};
    ah_pg_p_text(&p, id);
    int rc;
    /* The worker's queue is read with its writes; a client's look through a
     * reader. */
    if (queued_only)
        ah_pg_lock(s);
    else
        s = ah_pg_read_lock(s);
    PGresult *r = queued_only ? AH_PG_RUN(s, P_BULK_ITEMS_QUEUED, &p, "bulk_items", &rc)
                              : AH_PG_RUN(s, P_BULK_ITEMS, &p, "bulk_items", &rc);
    if (r != NULL) {
        rc = ah_pg_collect(s, r, &v, fill_bulk_item, bulk_item_free_v, "bulk_items");
        PQclear(r);
    }
    ah_pg_read_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_bulk_item_row *)v.items + i);
    ah_pg_rowvec_free(&v, bulk_item_free_v);
    return rc;
}

/* One item (statement q, prepared as `name`; parameters p) into *out. */
static int bulk_item_one(ah_pg_store *s, const char *name, int q, const ah_pg_params *p,
                         ah_bulk_item_row *out, const char *what)
{
    int rc;
    ah_pg_lock(s);
    PGresult *r = ah_pg_run(s, name, &s->prepared[q], q_sql[q], p, what, &rc);
    if (r != NULL) {
        rc = ah_pg_one(s, r, out, fill_bulk_item, bulk_item_free_v, what);
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_bulk_item_prior(ah_store *st, const char *id, const char *record_id, int before_idx,
                          ah_bulk_item_row *out)
{
    ah_pg_store *s = ah_pg(st);
    if (id == NULL || record_id == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_pg_params p = {0};
    ah_pg_p_text(&p, id);
    ah_pg_p_text(&p, record_id);
    ah_pg_p_int(&p, before_idx);
    return bulk_item_one(s, AH_PG_QNAME(P_BULK_PRIOR), P_BULK_PRIOR, &p, out,
                         "bulk_item_prior");
}

int ah_pg_bulk_item_get(ah_store *st, const char *id, int idx, ah_bulk_item_row *out)
{
    ah_pg_store *s = ah_pg(st);
    if (id == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_pg_params p = {0};
    ah_pg_p_text(&p, id);
    ah_pg_p_int(&p, idx);
    return bulk_item_one(s, AH_PG_QNAME(P_BULK_ITEM_GET), P_BULK_ITEM_GET, &p, out,
                         "bulk_item_get");
}

int ah_pg_bulk_item_set(ah_store *st, const char *id, int idx, const char *status,
                        const char *error_code, const char *error_message)
{
    return ah_pg_bulk_item_set_op(st, id, idx, status, error_code, error_message, NULL);
}

int ah_pg_bulk_item_set_op(ah_store *st, const char *id, int idx, const char *status,
                           const char *error_code, const char *error_message,
                           const char *operation)
{
    ah_pg_store *s = ah_pg(st);
    if (id == NULL || status == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, id);
    ah_pg_p_int(&p, idx);
    ah_pg_p_text(&p, status);
    ah_pg_p_text(&p, error_code);
    ah_pg_p_text(&p, error_message);
    ah_pg_p_text(&p, operation);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_BULK_ITEM_SET, &p, "bulk_item_set");
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_bulk_item_settle(ah_store *st, const char *operation, const char *status,
                           const char *error_code, const char *error_message, int64_t *n_out)
{
    ah_pg_store *s = ah_pg(st);
    if (n_out != NULL)
        *n_out = 0;
    if (operation == NULL || status == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, operation);
    ah_pg_p_text(&p, status);
    ah_pg_p_text(&p, error_code);
    ah_pg_p_text(&p, error_message);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_BULK_SETTLE, &p, "bulk_item_settle", n_out);
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_bulk_next_after(ah_store *st, int64_t after_tenant_id, ah_bulk_job_row *out)
{
    ah_pg_store *s = ah_pg(st);
    if (out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, after_tenant_id);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_BULK_NEXT_AFTER, &p, "bulk_next_after", &rc);
    if (r != NULL) {
        rc = ah_pg_one(s, r, out, fill_bulk_job, bulk_job_free_v, "bulk_next_after");
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_bulk_items_queued_from(ah_store *st, const char *id, int from_idx, int limit,
                                 ah_bulk_item_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    if (id == NULL || limit < 1)
        return AH_STORE_ERR;
    ah_pg_rowvec v = {.elem = sizeof(ah_bulk_item_row)};
    ah_pg_params p = {0};
    ah_pg_p_text(&p, id);
    ah_pg_p_int(&p, from_idx);
    ah_pg_p_int(&p, limit);
    int rc;
    ah_pg_lock(s); /* the worker's queue, read with its writes (as bulk_items') */
    PGresult *r = AH_PG_RUN(s, P_BULK_ITEMS_FROM, &p, "bulk_items_queued_from", &rc);
    if (r != NULL) {
        rc = ah_pg_collect(s, r, &v, fill_bulk_item, bulk_item_free_v, "bulk_items_queued_from");
        PQclear(r);
    }
    ah_pg_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_bulk_item_row *)v.items + i);
    ah_pg_rowvec_free(&v, bulk_item_free_v);
    return rc;
}

static bool fill_count(const PGresult *r, int i, void *row)
{
    *(int64_t *)row = ah_pg_int(r, i, 0);
    return true;
}

static void count_free_v(void *row)
{
    (void)row;
}

int ah_pg_bulk_queued_count(ah_store *st, int64_t tenant_id, int64_t *out)
{
    ah_pg_store *s = ah_pg(st);
    if (out == NULL)
        return AH_STORE_ERR;
    *out = 0;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant_id);
    int rc;
    s = ah_pg_read_lock(s); /* a client's request: through a reader, as bulk_get */
    PGresult *r = AH_PG_RUN(s, P_BULK_QUEUED_COUNT, &p, "bulk_queued_count", &rc);
    if (r != NULL) {
        rc = ah_pg_one(s, r, out, fill_count, count_free_v, "bulk_queued_count");
        PQclear(r);
    }
    ah_pg_read_unlock(s);
    return rc;
}

int ah_pg_bulk_prune(ah_store *st, const char *before, int limit, int64_t *n_out)
{
    ah_pg_store *s = ah_pg(st);
    if (n_out != NULL)
        *n_out = 0;
    if (before == NULL || limit < 1)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, before);
    ah_pg_p_int(&p, limit);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_BULK_PRUNE, &p, "bulk_prune", n_out);
    ah_pg_unlock(s);
    return rc;
}
