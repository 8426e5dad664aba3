/* SPDX-License-Identifier: Apache-2.0 */
/* Leases with fencing tokens (store.h), on the database's clock:
 * clock_timestamp(), the server's time when the statement runs (not now(),
 * the start of a scope's transaction). Several instances contend through
 * the row: a claim locks it, and a row locked by another transaction is
 * skipped (SKIP LOCKED: "held"), never waited for; lease_hold's UPDATE
 * keeps it locked until the caller's scope commits. */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPIRY "clock_timestamp() + $3::bigint * interval '1 millisecond'"

static const char *const q_sql[P_COUNT] = {
    /* A row another transaction holds locked (its holder's lease_hold, in
     * the scope of a sync page that may take seconds; another acquire) is
     * in use: SKIP LOCKED answers "held" at once rather than wait for that
     * transaction. Waiting would stall this instance's only connection,
     * and with it every store call of the instance (its webhook passes,
     * its own leases' renewals), for as long as the other holds the row. A
     * new name is inserted (ON CONFLICT: another instance inserting the
     * same name at once wins, and this one waits for that insert only). */
    [P_LEASE_ACQUIRE] =
        "WITH cur AS (SELECT name FROM leases WHERE name = $1 FOR UPDATE SKIP LOCKED), "
        "ins AS (INSERT INTO leases(name, owner, token, expires_at) "
        "SELECT $1, $2, 1, " EXPIRY " WHERE NOT EXISTS (SELECT 1 FROM leases WHERE name = $1) "
        "ON CONFLICT(name) DO NOTHING RETURNING token), "
        "upd AS (UPDATE leases l SET "
        "token = CASE WHEN l.owner = $2 AND l.expires_at > clock_timestamp() "
        "THEN l.token ELSE l.token + 1 END, owner = $2, expires_at = " EXPIRY " "
        "FROM cur WHERE l.name = cur.name "
        "AND (l.owner = $2 OR l.expires_at <= clock_timestamp()) RETURNING l.token) "
        "SELECT token FROM ins UNION ALL SELECT token FROM upd",
    [P_LEASE_HOLD] = "UPDATE leases SET expires_at = " EXPIRY " "
                     "WHERE name = $1 AND token = $2 AND expires_at > clock_timestamp()",
    [P_LEASE_RELEASE] = "UPDATE leases SET expires_at = '-infinity' WHERE name = $1 "
                        "AND token = $2 AND expires_at > clock_timestamp()",
    [P_LEASE_OWNER] = "SELECT owner FROM leases WHERE name = $1",
    [P_LEASE_TAKE] = "UPDATE leases SET owner = $3, token = token + 1, expires_at = "
                     "clock_timestamp() + $4::bigint * interval '1 millisecond' "
                     "WHERE name = $1 AND owner = $2 RETURNING token",
    [P_LEASE_SEED] = "INSERT INTO leases(name, owner, token, expires_at) "
                     "SELECT n, '', 0, '-infinity' FROM unnest($1::text[]) AS n "
                     "WHERE NOT EXISTS (SELECT 1 FROM leases WHERE name = n) "
                     "ON CONFLICT(name) DO NOTHING",
    /* SKIP LOCKED: a row that another transaction holds locked (a holder's
     * lease_hold in its scope, another claim) is left out, not waited for. */
    [P_LEASE_CLAIM] = "UPDATE leases SET owner = $2, token = token + 1, expires_at = " EXPIRY " "
                      "WHERE name IN (SELECT name FROM leases WHERE name = ANY($1::text[]) "
                      "AND expires_at <= clock_timestamp() FOR UPDATE SKIP LOCKED) "
                      "RETURNING name, token",
};

int ah_pg_lease_acquire(ah_store *st, const char *name, const char *owner, int64_t ttl_ms,
                        int64_t *token, char **holder)
{
    if (holder != NULL)
        *holder = NULL;
    ah_pg_store *s = ah_pg(st);
    if (name == NULL || owner == NULL || ttl_ms < 0)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, name);
    ah_pg_p_text(&p, owner);
    ah_pg_p_int(&p, ttl_ms);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_LEASE_ACQUIRE, &p, "lease_acquire", &rc);
    if (r != NULL) {
        if (PQntuples(r) == 1) {
            if (token != NULL)
                *token = ah_pg_int(r, 0, 0);
        } else {
            rc = AH_STORE_EXISTS; /* held by another owner */
        }
        PQclear(r);
    }
    if (rc == AH_STORE_EXISTS && holder != NULL) {
        ah_pg_params o = {0};
        ah_pg_p_text(&o, name);
        int orc;
        r = AH_PG_RUN(s, P_LEASE_OWNER, &o, "lease_acquire", &orc);
        if (r != NULL) {
            bool oom = false;
            if (PQntuples(r) == 1)
                *holder = ah_pg_dup(r, 0, 0, &oom);
            PQclear(r);
        }
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_lease_take_over(ah_store *st, const char *name, const char *from_owner,
                          const char *owner, int64_t ttl_ms, int64_t *token)
{
    ah_pg_store *s = ah_pg(st);
    if (name == NULL || from_owner == NULL || owner == NULL || ttl_ms < 0)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, name);
    ah_pg_p_text(&p, from_owner);
    ah_pg_p_text(&p, owner);
    ah_pg_p_int(&p, ttl_ms);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_LEASE_TAKE, &p, "lease_take_over", &rc);
    if (r != NULL) {
        if (PQntuples(r) == 1) {
            if (token != NULL)
                *token = ah_pg_int(r, 0, 0);
        } else {
            rc = AH_STORE_NOT_FOUND;
        }
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_lease_hold(ah_store *st, const char *name, int64_t token, int64_t ttl_ms)
{
    ah_pg_store *s = ah_pg(st);
    if (name == NULL || ttl_ms < 0)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, name);
    ah_pg_p_int(&p, token);
    ah_pg_p_int(&p, ttl_ms);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_LEASE_HOLD, &p, "lease_hold");
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_lease_release(ah_store *st, const char *name, int64_t token)
{
    ah_pg_store *s = ah_pg(st);
    if (name == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, name);
    ah_pg_p_int(&p, token);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_LEASE_RELEASE, &p, "lease_release");
    ah_pg_unlock(s);
    return rc;
}

/* names as a PostgreSQL text[] literal: {"a","b"}, with " and \ escaped. */
static char *text_array(const char *const *names, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++) {
        if (names[i] == NULL)
            return NULL;
        len += 3 + 2 * strlen(names[i]);
    }
    char *out = malloc(len);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    out[o++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            out[o++] = ',';
        out[o++] = '"';
        for (const char *c = names[i]; *c; c++) {
            if (*c == '"' || *c == '\\')
                out[o++] = '\\';
            out[o++] = *c;
        }
        out[o++] = '"';
    }
    out[o++] = '}';
    out[o] = '\0';
    return out;
}

int ah_pg_lease_claim(ah_store *st, const char *const *names, size_t n, const char *owner,
                      int64_t ttl_ms, int64_t *tokens)
{
    ah_pg_store *s = ah_pg(st);
    if (n == 0)
        return AH_STORE_OK;
    if (names == NULL || owner == NULL || tokens == NULL || ttl_ms < 0)
        return AH_STORE_ERR;
    for (size_t i = 0; i < n; i++)
        tokens[i] = 0;
    char *arr = text_array(names, n);
    if (arr == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, arr);
    ah_pg_params c = {0};
    ah_pg_p_text(&c, arr);
    ah_pg_p_text(&c, owner);
    ah_pg_p_int(&c, ttl_ms);
    int rc;
    ah_pg_lock(s);
    /* A lease never held gets its row first (free: expired, token 0), so
     * that the claim itself is one UPDATE over locked-or-skipped rows. Only
     * names without a row are inserted: ON CONFLICT on a row that another
     * transaction holds locked would wait for it. */
    rc = AH_PG_CHANGE(s, P_LEASE_SEED, &p, "lease_claim");
    if (rc == AH_STORE_NOT_FOUND)
        rc = AH_STORE_OK; /* every row was there already */
    if (rc == AH_STORE_OK) {
        PGresult *r = AH_PG_RUN(s, P_LEASE_CLAIM, &c, "lease_claim", &rc);
        if (r != NULL) {
            for (int row = 0; row < PQntuples(r); row++) {
                const char *name = PQgetvalue(r, row, 0);
                for (size_t i = 0; i < n; i++)
                    if (strcmp(names[i], name) == 0)
                        tokens[i] = ah_pg_int(r, row, 1);
            }
            PQclear(r);
        }
    }
    ah_pg_unlock(s);
    free(arr);
    return rc;
}
