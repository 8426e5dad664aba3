/* SPDX-License-Identifier: Apache-2.0 */
/* Idempotency keys of the REST API's writes. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* This file's statements, by cache slot (sqlite_int.h). */
static const char *const q_sql[Q_COUNT] = {
    [Q_IDEM_EXPIRE] = "DELETE FROM idempotency WHERE tenant_id = ?1 AND key = ?2 "
                      "AND created_at < ?3",
    [Q_IDEM_RESERVE] = "INSERT INTO idempotency(tenant_id, key, body_hash, status, created_at) "
                       "VALUES(?1, ?2, ?3, 0, ?4) ON CONFLICT DO NOTHING",
    [Q_IDEM_GET] = "SELECT body_hash, status, response, operation, created_at FROM idempotency "
                   "WHERE tenant_id = ?1 AND key = ?2",
    [Q_IDEM_COMPLETE] = "UPDATE idempotency SET status = ?3, response = ?4, operation = ?5 "
                        "WHERE tenant_id = ?1 AND key = ?2 AND status = 0",
    [Q_IDEM_RELEASE] = "DELETE FROM idempotency WHERE tenant_id = ?1 AND key = ?2 "
                       "AND status = 0",
    [Q_IDEM_PRUNE] = "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency "
                     "WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
    [Q_IDEM_REOPEN] = "UPDATE idempotency SET status = 0, response = NULL, operation = NULL, "
                      "created_at = ?4 "
                      "WHERE tenant_id = ?1 AND key = ?2 AND status = 502 AND body_hash = ?3",
};

static bool fill_idem(sqlite3_stmt *st, void *row)
{
    ah_idem_row *r = row;
    bool oom = false;
    r->body_hash = ah_sq_col_dup(st, 0, &oom);
    r->status = sqlite3_column_int(st, 1);
    r->response = ah_sq_col_dup(st, 2, &oom);
    r->operation = ah_sq_col_dup(st, 3, &oom);
    r->created_at = ah_sq_col_dup(st, 4, &oom);
    return !oom;
}

static void idem_free_v(void *row)
{
    ah_idem_row_free(row);
}

static int bind_key(sqlite3_stmt *q, int64_t tenant_id, const char *key)
{
    sqlite3_bind_int64(q, 1, tenant_id);
    return ah_sq_bind_text(q, 2, key);
}

int ah_sq_idem_reserve(ah_store *st, int64_t tenant_id, const char *key, const char *body_hash,
                       const char *expired_before, ah_idem_row *out)
{
    ah_sq_store *s = ah_sq(st);
    if (key == NULL || body_hash == NULL || expired_before == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_sq_lock(s);
    int rc = ah_sq_tx_begin(s);
    /* A key older than its time to live is forgotten: the request is new. */
    sqlite3_stmt *q = rc == AH_STORE_OK ? AH_SQ_GET(s, Q_IDEM_EXPIRE) : NULL;
    rc = AH_STORE_ERR;
    if (q != NULL) {
        bind_key(q, tenant_id, key);
        ah_sq_bind_text(q, 3, expired_before);
        rc = ah_sq_exec_changes(s, q, "idem_reserve", NULL);
    }
    int64_t reserved = 0;
    if (rc == AH_STORE_OK) {
        q = AH_SQ_GET(s, Q_IDEM_RESERVE);
        rc = AH_STORE_ERR;
        if (q != NULL) {
            bind_key(q, tenant_id, key);
            ah_sq_bind_text(q, 3, body_hash);
            ah_sq_bind_text(q, 4, now);
            rc = ah_sq_exec_changes(s, q, "idem_reserve", &reserved);
        }
    }
    if (rc == AH_STORE_OK && reserved == 0) {
        ah_idem_row tmp;
        memset(&tmp, 0, sizeof tmp);
        q = AH_SQ_GET(s, Q_IDEM_GET);
        rc = AH_STORE_ERR;
        if (q != NULL) {
            bind_key(q, tenant_id, key);
            rc = ah_sq_get_one(s, q, &tmp, fill_idem, idem_free_v, "idem_reserve");
            ah_sq_done(q);
        }
        if (rc == AH_STORE_OK) {
            rc = AH_STORE_EXISTS;
            if (out != NULL)
                *out = tmp;
            else
                ah_idem_row_free(&tmp);
        }
    }
    if (rc == AH_STORE_OK || rc == AH_STORE_EXISTS) {
        int c = ah_sq_tx_commit(s);
        if (c != AH_STORE_OK) {
            if (rc == AH_STORE_EXISTS && out != NULL)
                ah_idem_row_free(out);
            rc = c;
        }
    } else {
        ah_sq_tx_rollback(s);
    }
    ah_sq_unlock(s);
    return rc;
}

static int idem_finish(ah_store *st, ah_sq_qid id, int64_t tenant_id, const char *key, int status,
                       const char *response, const char *operation, const char *what)
{
    ah_sq_store *s = ah_sq(st);
    if (key == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, id);
    if (q != NULL) {
        bind_key(q, tenant_id, key);
        if (id == Q_IDEM_COMPLETE) {
            sqlite3_bind_int(q, 3, status);
            ah_sq_bind_text(q, 4, response);
            ah_sq_bind_text(q, 5, operation);
        }
        rc = ah_sq_exec_changes(s, q, what, NULL);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_idem_complete(ah_store *st, int64_t tenant_id, const char *key, int status,
                        const char *response)
{
    return ah_sq_idem_complete_op(st, tenant_id, key, status, response, NULL);
}

int ah_sq_idem_complete_op(ah_store *st, int64_t tenant_id, const char *key, int status,
                           const char *response, const char *operation)
{
    if (status <= 0)
        return AH_STORE_ERR;
    return idem_finish(st, Q_IDEM_COMPLETE, tenant_id, key, status, response, operation,
                       "idem_complete");
}

int ah_sq_idem_release(ah_store *st, int64_t tenant_id, const char *key)
{
    return idem_finish(st, Q_IDEM_RELEASE, tenant_id, key, 0, NULL, NULL, "idem_release");
}

int ah_sq_idem_reopen(ah_store *st, int64_t tenant_id, const char *key, const char *body_hash)
{
    ah_sq_store *s = ah_sq(st);
    if (key == NULL || body_hash == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    int64_t n = 0;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_IDEM_REOPEN);
    if (q != NULL) {
        /* Reserved anew now: not taken for a reservation its request
         * outlived (api/idempotency.c), its 24 hours from this use. */
        char now[32];
        ah_now_iso(now);
        bind_key(q, tenant_id, key);
        ah_sq_bind_text(q, 3, body_hash);
        ah_sq_bind_text(q, 4, now);
        rc = ah_sq_exec_changes(s, q, "idem_reopen", &n);
        if (rc == AH_STORE_OK && n == 0)
            rc = AH_STORE_NOT_FOUND;
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_idem_prune(ah_store *st, const char *before, int64_t *n_out)
{
    ah_sq_store *s = ah_sq(st);
    if (n_out != NULL)
        *n_out = 0;
    char b[32];
    if (before == NULL || ah_iso_normalize(before, b) != 0)
        return AH_STORE_ERR;
    const char *texts[] = {b};
    return ah_sq_delete_batched(s, Q_IDEM_PRUNE, q_sql[Q_IDEM_PRUNE], texts, 1, "idem_prune",
                                n_out);
}
