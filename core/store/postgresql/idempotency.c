/* SPDX-License-Identifier: Apache-2.0 */
/* Idempotency keys of the REST API's writes. */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const q_sql[P_COUNT] = {
    [P_IDEM_EXPIRE] = "DELETE FROM idempotency WHERE tenant_id = $1 AND key = $2 "
                      "AND created_at < $3",
    [P_IDEM_RESERVE] = "INSERT INTO idempotency(tenant_id, key, body_hash, status, created_at) "
                       "VALUES($1, $2, $3, 0, $4) ON CONFLICT DO NOTHING",
    [P_IDEM_GET] = "SELECT body_hash, status, response, operation, created_at FROM idempotency "
                   "WHERE tenant_id = $1 AND key = $2",
    [P_IDEM_COMPLETE] = "UPDATE idempotency SET status = $3, response = $4, operation = $5 "
                        "WHERE tenant_id = $1 AND key = $2 AND status = 0",
    [P_IDEM_RELEASE] = "DELETE FROM idempotency WHERE tenant_id = $1 AND key = $2 "
                       "AND status = 0",
    [P_IDEM_PRUNE] = "DELETE FROM idempotency WHERE (tenant_id, key) IN (SELECT tenant_id, key "
                     "FROM idempotency WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
    [P_IDEM_REOPEN] = "UPDATE idempotency SET status = 0, response = NULL, operation = NULL, "
                      "created_at = $4 "
                      "WHERE tenant_id = $1 AND key = $2 AND status = 502 AND body_hash = $3",
};

static bool fill_idem(const PGresult *r, int i, void *row)
{
    ah_idem_row *x = row;
    bool oom = false;
    x->body_hash = ah_pg_dup(r, i, 0, &oom);
    x->status = (int)ah_pg_int(r, i, 1);
    x->response = ah_pg_dup(r, i, 2, &oom);
    x->operation = ah_pg_dup(r, i, 3, &oom);
    x->created_at = ah_pg_dup(r, i, 4, &oom);
    return !oom;
}

static void idem_free_v(void *row)
{
    ah_idem_row_free(row);
}

int ah_pg_idem_reserve(ah_store *st, int64_t tenant_id, const char *key, const char *body_hash,
                       const char *expired_before, ah_idem_row *out)
{
    ah_pg_store *s = ah_pg(st);
    if (key == NULL || body_hash == NULL || expired_before == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_pg_lock(s);
    int rc = ah_pg_tx_begin(s);
    /* A key older than its time to live is forgotten: the request is new. */
    if (rc == AH_STORE_OK) {
        ah_pg_params p = {0};
        ah_pg_p_int(&p, tenant_id);
        ah_pg_p_text(&p, key);
        ah_pg_p_text(&p, expired_before);
        rc = AH_PG_EXEC(s, P_IDEM_EXPIRE, &p, "idem_reserve", NULL);
    }
    int64_t reserved = 0;
    if (rc == AH_STORE_OK) {
        ah_pg_params p = {0};
        ah_pg_p_int(&p, tenant_id);
        ah_pg_p_text(&p, key);
        ah_pg_p_text(&p, body_hash);
        ah_pg_p_text(&p, now);
        rc = AH_PG_EXEC(s, P_IDEM_RESERVE, &p, "idem_reserve", &reserved);
    }
    if (rc == AH_STORE_OK && reserved == 0) {
        ah_idem_row tmp;
        memset(&tmp, 0, sizeof tmp);
        ah_pg_params p = {0};
        ah_pg_p_int(&p, tenant_id);
        ah_pg_p_text(&p, key);
        PGresult *r = AH_PG_RUN(s, P_IDEM_GET, &p, "idem_reserve", &rc);
        if (r != NULL) {
            rc = ah_pg_one(s, r, &tmp, fill_idem, idem_free_v, "idem_reserve");
            PQclear(r);
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
        int c = ah_pg_tx_commit(s);
        if (c != AH_STORE_OK) {
            if (rc == AH_STORE_EXISTS && out != NULL)
                ah_idem_row_free(out);
            rc = c;
        }
    } else {
        ah_pg_tx_rollback(s);
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_idem_complete(ah_store *st, int64_t tenant_id, const char *key, int status,
                        const char *response)
{
    return ah_pg_idem_complete_op(st, tenant_id, key, status, response, NULL);
}

int ah_pg_idem_complete_op(ah_store *st, int64_t tenant_id, const char *key, int status,
                           const char *response, const char *operation)
{
    ah_pg_store *s = ah_pg(st);
    if (status <= 0 || key == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, key);
    ah_pg_p_int(&p, status);
    ah_pg_p_text(&p, response);
    ah_pg_p_text(&p, operation);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_IDEM_COMPLETE, &p, "idem_complete", NULL);
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_idem_release(ah_store *st, int64_t tenant_id, const char *key)
{
    ah_pg_store *s = ah_pg(st);
    if (key == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, key);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_IDEM_RELEASE, &p, "idem_release", NULL);
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_idem_reopen(ah_store *st, int64_t tenant_id, const char *key, const char *body_hash)
{
    ah_pg_store *s = ah_pg(st);
    if (key == NULL || body_hash == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, key);
    ah_pg_p_text(&p, body_hash);
    /* Reserved anew now (see the SQLite engine's). */
    char now[32];
    ah_now_iso(now);
    ah_pg_p_text(&p, now);
    int64_t n = 0;
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_IDEM_REOPEN, &p, "idem_reopen", &n);
    ah_pg_unlock(s);
    if (rc == AH_STORE_OK && n == 0)
        rc = AH_STORE_NOT_FOUND;
    return rc;
}

int ah_pg_idem_prune(ah_store *st, const char *before, int64_t *n_out)
{
    ah_pg_store *s = ah_pg(st);
    if (n_out != NULL)
        *n_out = 0;
    char b[32];
    if (before == NULL || ah_iso_normalize(before, b) != 0)
        return AH_STORE_ERR;
    const char *texts[] = {b};
    return AH_PG_DELETE_BATCHED(s, P_IDEM_PRUNE, texts, 1, "idem_prune", n_out);
}
