/* SPDX-License-Identifier: Apache-2.0 */
/* Leases with fencing tokens (store.h), on the database's clock:
 * clock_timestamp(), the server's time when the statement runs (not now(),
 * the start of a scope's transaction). Several instances contend through
 * the row: INSERT ... ON CONFLICT DO UPDATE locks it, so two claims of one
 * lease are decided one after the other; lease_hold's UPDATE keeps it
 * locked until the caller's scope commits. */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPIRY "clock_timestamp() + $3::bigint * interval '1 millisecond'"

static const char *const q_sql[P_COUNT] = {
    [P_LEASE_ACQUIRE] =
        "INSERT INTO leases(name, owner, token, expires_at) VALUES($1, $2, 1, " EXPIRY ") "
        "ON CONFLICT(name) DO UPDATE SET "
        "token = CASE WHEN leases.owner = excluded.owner AND leases.expires_at > "
        "clock_timestamp() THEN leases.token ELSE leases.token + 1 END, "
        "owner = excluded.owner, expires_at = excluded.expires_at "
        "WHERE leases.owner = excluded.owner OR leases.expires_at <= clock_timestamp() "
        "RETURNING token",
    [P_LEASE_HOLD] = "UPDATE leases SET expires_at = " EXPIRY " "
                     "WHERE name = $1 AND token = $2 AND expires_at > clock_timestamp()",
    [P_LEASE_RELEASE] = "UPDATE leases SET expires_at = '-infinity' WHERE name = $1 "
                        "AND token = $2 AND expires_at > clock_timestamp()",
    [P_LEASE_OWNER] = "SELECT owner FROM leases WHERE name = $1",
    [P_LEASE_TAKE] = "UPDATE leases SET owner = $3, token = token + 1, expires_at = "
                     "clock_timestamp() + $4::bigint * interval '1 millisecond' "
                     "WHERE name = $1 AND owner = $2 RETURNING token",
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
