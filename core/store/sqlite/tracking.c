/* SPDX-License-Identifier: Apache-2.0 */
/* Remote-deletion flags of records and their stage history. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* This file's statements, by cache slot (sqlite_int.h). */
static const char *const q_sql[Q_COUNT] = {
    [Q_REC_MARKS] = "SELECT id, remote_id, remote_deleted_at, stored_at FROM records "
                    "WHERE connection_id = ?1 AND type = ?2",
    [Q_REC_MARKS_AFTER] = "SELECT id, remote_id, remote_deleted_at, stored_at FROM records "
                          "WHERE connection_id = ?1 AND type = ?2 AND id > ?3 "
                          "ORDER BY id LIMIT ?4",
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

static bool fill_mark(sqlite3_stmt *st, void *row)
{
    ah_record_mark *r = row;
    bool oom = false;
    r->id = ah_sq_col_dup(st, 0, &oom);
    r->remote_id = ah_sq_col_dup(st, 1, &oom);
    r->remote_deleted_at = ah_sq_col_dup(st, 2, &oom);
    r->stored_at = ah_sq_col_dup(st, 3, &oom);
    /* '' (schema v5): never rewritten, stored when its id was made. */
    if (r->stored_at != NULL && r->stored_at[0] == '\0' && r->id != NULL) {
        free(r->stored_at);
        r->stored_at = ah_sq_id_time(r->id);
        oom = oom || r->stored_at == NULL;
    }
    return !oom;
}

static void mark_free_v(void *row)
{
    ah_record_mark_free(row);
}

static bool fill_stage(sqlite3_stmt *st, void *row)
{
    ah_stage_row *r = row;
    bool oom = false;
    r->record_id = ah_sq_col_dup(st, 0, &oom);
    r->from_stage = ah_sq_col_dup(st, 1, &oom);
    r->to_stage = ah_sq_col_dup(st, 2, &oom);
    r->changed_at = ah_sq_col_dup(st, 3, &oom);
    return !oom;
}

static void stage_free_v(void *row)
{
    ah_stage_row_free(row);
}

int ah_sq_record_marks(ah_store *st, int64_t connection_id, const char *type, ah_record_mark_cb cb,
                       void *arg)
{
    ah_sq_store *s = ah_sq(st);
    if (type == NULL)
        return AH_STORE_ERR;
    ah_sq_rowvec v = {.elem = sizeof(ah_record_mark)};
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_REC_MARKS);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, connection_id);
        ah_sq_bind_text(q, 2, type);
        rc = ah_sq_collect(s, q, &v, fill_mark, mark_free_v, "record_marks");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_record_mark *)v.items + i);
    ah_sq_rowvec_free(&v, mark_free_v);
    return rc;
}

int ah_sq_record_marks_after(ah_store *st, int64_t connection_id, const char *type,
                             const char *after_id, int limit, ah_record_mark_cb cb, void *arg)
{
    ah_sq_store *s = ah_sq(st);
    if (type == NULL || limit < 1 || limit > 1000)
        return AH_STORE_ERR;
    ah_sq_rowvec v = {.elem = sizeof(ah_record_mark)};
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_REC_MARKS_AFTER);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, connection_id);
        ah_sq_bind_text(q, 2, type);
        ah_sq_bind_text(q, 3, after_id != NULL ? after_id : "");
        sqlite3_bind_int(q, 4, limit);
        rc = ah_sq_collect(s, q, &v, fill_mark, mark_free_v, "record_marks_after");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_record_mark *)v.items + i);
    ah_sq_rowvec_free(&v, mark_free_v);
    return rc;
}

int ah_sq_record_mark_deleted(ah_store *st, const char *id, const char *deleted_at)
{
    ah_sq_store *s = ah_sq(st);
    if (id == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_REC_MARK_DEL);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, id);
        ah_sq_bind_text(q, 2, deleted_at);
        rc = ah_sq_change_by_id(s, q, "record_mark_deleted");
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_record_is_deleted(ah_store *st, const char *id, bool *deleted)
{
    if (id == NULL || deleted == NULL)
        return AH_STORE_ERR;
    *deleted = false;
    /* A client's read (GET of a record): beside the writer, as the record
     * itself is read (ah_sq_read_lock keeps read-your-writes). */
    ah_sq_store *s = ah_sq_read_lock(ah_sq(st));
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_REC_IS_DEL);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, id);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            *deleted = sqlite3_column_type(q, 0) != SQLITE_NULL;
            rc = AH_STORE_OK;
        } else {
            rc =
                r == SQLITE_DONE ? AH_STORE_NOT_FOUND : ah_sq_step_error(s, r, "record_is_deleted");
        }
        ah_sq_done(q);
    }
    ah_sq_read_unlock(s);
    return rc;
}

int ah_sq_stage_add(ah_store *st, const char *record_id, int64_t tenant_id, const char *from_stage,
                    const char *to_stage)
{
    ah_sq_store *s = ah_sq(st);
    if (record_id == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_STAGE_ADD);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, record_id);
        sqlite3_bind_int64(q, 2, tenant_id);
        ah_sq_bind_text(q, 3, from_stage);
        ah_sq_bind_text(q, 4, to_stage);
        ah_sq_bind_text(q, 5, now);
        rc = ah_sq_exec_changes(s, q, "stage_add", NULL);
    }
    ah_sq_unlock(s);
    return rc;
}

static int stage_rows(ah_store *st, ah_sq_qid id, int64_t tenant_id, const char *text, int limit,
                      ah_stage_cb cb, void *arg, const char *what)
{
    ah_sq_store *s = ah_sq(st);
    if (text == NULL)
        return AH_STORE_ERR;
    ah_sq_rowvec v = {.elem = sizeof(ah_stage_row)};
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, id);
    if (q != NULL) {
        if (id == Q_STAGE_SINCE) {
            sqlite3_bind_int64(q, 1, tenant_id);
            ah_sq_bind_text(q, 2, text);
            sqlite3_bind_int(q, 3, limit);
        } else {
            ah_sq_bind_text(q, 1, text);
        }
        rc = ah_sq_collect(s, q, &v, fill_stage, stage_free_v, what);
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_stage_row *)v.items + i);
    ah_sq_rowvec_free(&v, stage_free_v);
    return rc;
}

int ah_sq_stage_changed_since(ah_store *st, int64_t tenant_id, const char *after, int limit,
                              ah_stage_cb cb, void *arg)
{
    return stage_rows(st, Q_STAGE_SINCE, tenant_id, after, limit, cb, arg, "stage_changed_since");
}

int ah_sq_stage_history(ah_store *st, const char *record_id, ah_stage_cb cb, void *arg)
{
    return stage_rows(st, Q_STAGE_HISTORY, 0, record_id, 0, cb, arg, "stage_history");
}
