/* SPDX-License-Identifier: Apache-2.0 */
/* Leases with fencing tokens (store.h). The clock is SQLite's: the
 * machine's, shared by every process on the file. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Milliseconds since the epoch, now. */
#define NOW_MS "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"

static const char *const q_sql[Q_COUNT] = {
    /* Free, expired or already the owner's: granted. The token grows at
     * every change of holder (and when a holder comes back after expiry). */
    [Q_LEASE_ACQUIRE] =
        "INSERT INTO leases(name, owner, token, expires_ms) VALUES(?1, ?2, 1, " NOW_MS " + ?3) "
        "ON CONFLICT(name) DO UPDATE SET "
        "token = CASE WHEN owner = excluded.owner AND expires_ms > " NOW_MS
        " THEN token ELSE token + 1 END, owner = excluded.owner, expires_ms = excluded.expires_ms "
        "WHERE owner = excluded.owner OR expires_ms <= " NOW_MS " RETURNING token",
    [Q_LEASE_HOLD] = "UPDATE leases SET expires_ms = " NOW_MS " + ?3 "
                     "WHERE name = ?1 AND token = ?2 AND expires_ms > " NOW_MS,
    [Q_LEASE_RELEASE] = "UPDATE leases SET expires_ms = 0 WHERE name = ?1 AND token = ?2 "
                        "AND expires_ms > " NOW_MS,
    [Q_LEASE_OWNER] = "SELECT owner FROM leases WHERE name = ?1",
    [Q_LEASE_TAKE] = "UPDATE leases SET owner = ?3, token = token + 1, expires_ms = " NOW_MS
                     " + ?4 WHERE name = ?1 AND owner = ?2 RETURNING token",
    [Q_LEASE_SEED] = "INSERT INTO leases(name, owner, token, expires_ms) VALUES(?1, '', 0, 0) "
                     "ON CONFLICT(name) DO NOTHING",
    [Q_LEASE_CLAIM] = "UPDATE leases SET owner = ?2, token = token + 1, expires_ms = " NOW_MS
                      " + ?3 WHERE name = ?1 AND expires_ms <= " NOW_MS " RETURNING token",
};

/* The owner of lease name into *holder (malloc'd; NULL when none). */
static void lease_owner(ah_sq_store *s, const char *name, char **holder)
{
    *holder = NULL;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_LEASE_OWNER);
    if (q == NULL)
        return;
    ah_sq_bind_text(q, 1, name);
    if (sqlite3_step(q) == SQLITE_ROW) {
        bool oom = false;
        *holder = ah_sq_col_dup(q, 0, &oom);
    }
    ah_sq_done(q);
}

int ah_sq_lease_acquire(ah_store *st, const char *name, const char *owner, int64_t ttl_ms,
                        int64_t *token, char **holder)
{
    if (holder != NULL)
        *holder = NULL;
    ah_sq_store *s = ah_sq(st);
    if (name == NULL || owner == NULL || ttl_ms < 0)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_LEASE_ACQUIRE);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, name);
        ah_sq_bind_text(q, 2, owner);
        sqlite3_bind_int64(q, 3, ttl_ms);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            if (token != NULL)
                *token = sqlite3_column_int64(q, 0);
            r = sqlite3_step(q);
            rc = r == SQLITE_DONE ? AH_STORE_OK : ah_sq_step_error(s, r, "lease_acquire");
        } else if (r == SQLITE_DONE) {
            rc = AH_STORE_EXISTS; /* held by another owner */
        } else {
            rc = ah_sq_step_error(s, r, "lease_acquire");
        }
        ah_sq_done(q);
    }
    if (rc == AH_STORE_EXISTS && holder != NULL)
        lease_owner(s, name, holder);
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_lease_take_over(ah_store *st, const char *name, const char *from_owner,
                          const char *owner, int64_t ttl_ms, int64_t *token)
{
    ah_sq_store *s = ah_sq(st);
    if (name == NULL || from_owner == NULL || owner == NULL || ttl_ms < 0)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_LEASE_TAKE);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, name);
        ah_sq_bind_text(q, 2, from_owner);
        ah_sq_bind_text(q, 3, owner);
        sqlite3_bind_int64(q, 4, ttl_ms);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            if (token != NULL)
                *token = sqlite3_column_int64(q, 0);
            r = sqlite3_step(q);
            rc = r == SQLITE_DONE ? AH_STORE_OK : ah_sq_step_error(s, r, "lease_take_over");
        } else {
            rc = r == SQLITE_DONE ? AH_STORE_NOT_FOUND : ah_sq_step_error(s, r, "lease_take_over");
        }
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

static int lease_change(ah_store *st, ah_sq_qid id, const char *name, int64_t token,
                        int64_t ttl_ms, const char *what)
{
    ah_sq_store *s = ah_sq(st);
    if (name == NULL || ttl_ms < 0)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, id);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, name);
        sqlite3_bind_int64(q, 2, token);
        if (id == Q_LEASE_HOLD)
            sqlite3_bind_int64(q, 3, ttl_ms);
        rc = ah_sq_change_by_id(s, q, what);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_lease_hold(ah_store *st, const char *name, int64_t token, int64_t ttl_ms)
{
    return lease_change(st, Q_LEASE_HOLD, name, token, ttl_ms, "lease_hold");
}

int ah_sq_lease_release(ah_store *st, const char *name, int64_t token)
{
    return lease_change(st, Q_LEASE_RELEASE, name, token, 0, "lease_release");
}

/* One writer at a time (the file's lock): the single-writer equivalent of
 * FOR UPDATE SKIP LOCKED is a transaction that claims every free lease of
 * the list at once. */
int ah_sq_lease_claim(ah_store *st, const char *const *names, size_t n, const char *owner,
                      int64_t ttl_ms, int64_t *tokens)
{
    ah_sq_store *s = ah_sq(st);
    if (n == 0)
        return AH_STORE_OK;
    if (names == NULL || owner == NULL || tokens == NULL || ttl_ms < 0)
        return AH_STORE_ERR;
    for (size_t i = 0; i < n; i++) {
        tokens[i] = 0;
        if (names[i] == NULL)
            return AH_STORE_ERR;
    }
    ah_sq_lock(s);
    int rc = ah_sq_tx_begin(s);
    for (size_t i = 0; rc == AH_STORE_OK && i < n; i++) {
        sqlite3_stmt *q = AH_SQ_GET(s, Q_LEASE_SEED);
        if (q == NULL) {
            rc = AH_STORE_ERR;
            break;
        }
        ah_sq_bind_text(q, 1, names[i]);
        rc = ah_sq_run(s, q, "lease_claim");
        ah_sq_done(q);
        if (rc != AH_STORE_OK)
            break;
        q = AH_SQ_GET(s, Q_LEASE_CLAIM);
        if (q == NULL) {
            rc = AH_STORE_ERR;
            break;
        }
        ah_sq_bind_text(q, 1, names[i]);
        ah_sq_bind_text(q, 2, owner);
        sqlite3_bind_int64(q, 3, ttl_ms);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            tokens[i] = sqlite3_column_int64(q, 0);
            r = sqlite3_step(q);
        }
        if (r != SQLITE_DONE)
            rc = ah_sq_step_error(s, r, "lease_claim");
        ah_sq_done(q);
    }
    if (rc == AH_STORE_OK)
        rc = ah_sq_tx_commit(s);
    else if (!sqlite3_get_autocommit(s->db))
        ah_sq_tx_rollback(s);
    if (rc != AH_STORE_OK)
        for (size_t i = 0; i < n; i++)
            tokens[i] = 0;
    ah_sq_unlock(s);
    return rc;
}
