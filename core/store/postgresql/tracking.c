/* SPDX-License-Identifier: Apache-2.0 */
/* Remote-deletion flags of records and their stage history. */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const q_sql[P_COUNT] = {
    [P_REC_MARKS] = "SELECT id, remote_id, remote_deleted_at, stored_at FROM records "
                    "WHERE connection_id = $1 AND type = $2",
    [P_REC_MARK_DEL] = "UPDATE records SET remote_deleted_at = $2 WHERE id = $1",
    [P_REC_IS_DEL] = "SELECT remote_deleted_at FROM records WHERE id = $1",
    [P_STAGE_ADD] = "INSERT INTO stage_history(record_id, tenant_id, from_stage, to_stage, "
                    "changed_at) VALUES($1, $2, $3, $4, $5)",
    [P_STAGE_SINCE] = "SELECT h.record_id, NULL::text, NULL::text, max(h.changed_at) AS last "
                      "FROM stage_history h WHERE h.tenant_id = $1 AND h.changed_at > $2 "
                      "GROUP BY h.record_id ORDER BY last, h.record_id LIMIT $3",
    [P_STAGE_HISTORY] = "SELECT record_id, from_stage, to_stage, changed_at FROM stage_history "
                        "WHERE record_id = $1 ORDER BY id",
};

static bool fill_mark(const PGresult *r, int i, void *row)
{
    ah_record_mark *m = row;
    bool oom = false;
    m->id = ah_pg_dup(r, i, 0, &oom);
    m->remote_id = ah_pg_dup(r, i, 1, &oom);
    m->remote_deleted_at = ah_pg_dup(r, i, 2, &oom);
    m->stored_at = ah_pg_dup(r, i, 3, &oom);
    return !oom;
}

static void mark_free_v(void *row)
{
    ah_record_mark_free(row);
}

static bool fill_stage(const PGresult *r, int i, void *row)
{
    ah_stage_row *x = row;
    bool oom = false;
    x->record_id = ah_pg_dup(r, i, 0, &oom);
    x->from_stage = ah_pg_dup(r, i, 1, &oom);
    x->to_stage = ah_pg_dup(r, i, 2, &oom);
    x->changed_at = ah_pg_dup(r, i, 3, &oom);
    return !oom;
}

static void stage_free_v(void *row)
{
    ah_stage_row_free(row);
}

int ah_pg_record_marks(ah_store *st, int64_t connection_id, const char *type, ah_record_mark_cb cb,
                       void *arg)
{
    ah_pg_store *s = ah_pg(st);
    if (type == NULL)
        return AH_STORE_ERR;
    ah_pg_rowvec v = {.elem = sizeof(ah_record_mark)};
    ah_pg_params p = {0};
    ah_pg_p_int(&p, connection_id);
    ah_pg_p_text(&p, type);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_REC_MARKS, &p, "record_marks", &rc);
    if (r != NULL) {
        rc = ah_pg_collect(s, r, &v, fill_mark, mark_free_v, "record_marks");
        PQclear(r);
    }
    ah_pg_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_record_mark *)v.items + i);
    ah_pg_rowvec_free(&v, mark_free_v);
    return rc;
}

int ah_pg_record_mark_deleted(ah_store *st, const char *id, const char *deleted_at)
{
    ah_pg_store *s = ah_pg(st);
    if (id == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, id);
    ah_pg_p_text(&p, deleted_at);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_REC_MARK_DEL, &p, "record_mark_deleted");
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_record_is_deleted(ah_store *st, const char *id, bool *deleted)
{
    ah_pg_store *s = ah_pg(st);
    if (id == NULL || deleted == NULL)
        return AH_STORE_ERR;
    *deleted = false;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, id);
    int rc;
    s = ah_pg_read_lock(s);
    PGresult *r = AH_PG_RUN(s, P_REC_IS_DEL, &p, "record_is_deleted", &rc);
    if (r != NULL) {
        if (PQntuples(r) == 1)
            *deleted = !PQgetisnull(r, 0, 0);
        else
            rc = AH_STORE_NOT_FOUND;
        PQclear(r);
    }
    ah_pg_read_unlock(s);
    return rc;
}

int ah_pg_stage_add(ah_store *st, const char *record_id, int64_t tenant_id, const char *from_stage,
                    const char *to_stage)
{
    ah_pg_store *s = ah_pg(st);
    if (record_id == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_pg_params p = {0};
    ah_pg_p_text(&p, record_id);
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, from_stage);
    ah_pg_p_text(&p, to_stage);
    ah_pg_p_text(&p, now);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_STAGE_ADD, &p, "stage_add", NULL);
    ah_pg_unlock(s);
    return rc;
}

static int stage_rows(ah_pg_store *s, PGresult *r, int rc, ah_stage_cb cb, void *arg,
                      const char *what)
{
    ah_pg_rowvec v = {.elem = sizeof(ah_stage_row)};
    if (r != NULL) {
        rc = ah_pg_collect(s, r, &v, fill_stage, stage_free_v, what);
        PQclear(r);
    }
    ah_pg_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_stage_row *)v.items + i);
    ah_pg_rowvec_free(&v, stage_free_v);
    return rc;
}

int ah_pg_stage_changed_since(ah_store *st, int64_t tenant_id, const char *after, int limit,
                              ah_stage_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    if (after == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, after);
    if (limit >= 0)
        ah_pg_p_int(&p, limit);
    else
        ah_pg_p_text(&p, NULL); /* SQLite's negative LIMIT: none */
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_STAGE_SINCE, &p, "stage_changed_since", &rc);
    return stage_rows(s, r, rc, cb, arg, "stage_changed_since");
}

int ah_pg_stage_history(ah_store *st, const char *record_id, ah_stage_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    if (record_id == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, record_id);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_STAGE_HISTORY, &p, "stage_history", &rc);
    return stage_rows(s, r, rc, cb, arg, "stage_history");
}
