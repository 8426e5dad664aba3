/* SPDX-License-Identifier: Apache-2.0 */
/* Several instances on one database (issue 14): the change log they poll,
 * their registrations and heartbeats, and the leases they hold as the
 * operators see them. Times are the database's (clock_timestamp()). */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ISO_NOW "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static const char *const q_sql[P_COUNT] = {
    [P_CHANGE_ADD] = "INSERT INTO change_log(kind, subject, detail, origin, at) "
                     "VALUES($1, $2, $3, $4, " ISO_NOW ")",
    [P_CHANGE_AFTER] = "SELECT id, kind, subject, detail, origin, at FROM change_log "
                       "WHERE id > $1 ORDER BY id LIMIT $2",
    [P_CHANGE_LAST] = "SELECT coalesce(max(id), 0)::bigint FROM change_log",
    [P_CHANGE_PRUNE] = "DELETE FROM change_log WHERE at < $1",
    [P_INSTANCE_BEAT] = "INSERT INTO instances(id, version, host, pid, started_at, heartbeat) "
                        "VALUES($1, $2, $3, $4, $5, clock_timestamp()) ON CONFLICT(id) DO UPDATE "
                        "SET version = excluded.version, host = excluded.host, pid = excluded.pid, "
                        "started_at = excluded.started_at, heartbeat = excluded.heartbeat",
    [P_INSTANCE_LIST] =
        "SELECT id, version, host, pid, started_at, " ISO("heartbeat") ", "
        "(extract(epoch FROM clock_timestamp() - heartbeat) * 1000)::bigint FROM instances "
        "WHERE $1::bigint = 0 OR heartbeat > clock_timestamp() - $1::bigint * interval "
        "'1 millisecond' ORDER BY started_at, id",
    [P_INSTANCE_REMOVE] = "DELETE FROM instances WHERE id = $1 OR ($2::bigint > 0 AND heartbeat "
                          "< clock_timestamp() - $2::bigint * interval '1 millisecond')",
    [P_LEASE_LIST] = "SELECT name, owner, token, CASE WHEN expires_at = '-infinity' THEN -1 "
                     "ELSE (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint "
                     "END FROM leases ORDER BY name",
    /* left(): a prefix match without LIKE's wildcards. */
    [P_LEASE_PRUNE] = "DELETE FROM leases WHERE left(name, length($1)) = $1 AND expires_at < "
                      "clock_timestamp() - $2::bigint * interval '1 millisecond'",
};

static const char *opt(const PGresult *r, int i, int col)
{
    return PQgetisnull(r, i, col) ? NULL : PQgetvalue(r, i, col);
}

int ah_pg_change_add(ah_store *st, const char *kind, const char *subject, const char *detail,
                     const char *origin)
{
    ah_pg_store *s = ah_pg(st);
    if (kind == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, kind);
    ah_pg_p_text(&p, subject);
    ah_pg_p_text(&p, detail);
    ah_pg_p_text(&p, origin);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_CHANGE_ADD, &p, "change_add", NULL);
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_change_after(ah_store *st, int64_t after_id, int limit, ah_change_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, after_id);
    ah_pg_p_int(&p, ah_pg_page_limit(limit));
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_CHANGE_AFTER, &p, "change_after", &rc);
    ah_pg_unlock(s);
    if (r == NULL)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        ah_change_row row = {.id = ah_pg_int(r, i, 0), .kind = opt(r, i, 1),
                             .subject = opt(r, i, 2), .detail = opt(r, i, 3),
                             .origin = opt(r, i, 4), .at = opt(r, i, 5)};
        cb(arg, &row);
    }
    PQclear(r);
    return AH_STORE_OK;
}

int ah_pg_change_last(ah_store *st, int64_t *id_out)
{
    ah_pg_store *s = ah_pg(st);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_CHANGE_LAST, NULL, "change_last", &rc);
    ah_pg_unlock(s);
    if (r == NULL)
        return rc;
    if (id_out != NULL)
        *id_out = PQntuples(r) == 1 ? ah_pg_int(r, 0, 0) : 0;
    PQclear(r);
    return AH_STORE_OK;
}

int ah_pg_change_prune(ah_store *st, const char *before, int64_t *n_out)
{
    ah_pg_store *s = ah_pg(st);
    if (n_out != NULL)
        *n_out = 0;
    if (before == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, before);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_CHANGE_PRUNE, &p, "change_prune", n_out);
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_instance_beat(ah_store *st, const char *id, const char *version, const char *host,
                        int64_t pid, const char *started_at)
{
    ah_pg_store *s = ah_pg(st);
    if (id == NULL || version == NULL || started_at == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, id);
    ah_pg_p_text(&p, version);
    ah_pg_p_text(&p, host);
    ah_pg_p_int(&p, pid);
    ah_pg_p_text(&p, started_at);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_INSTANCE_BEAT, &p, "instance_beat", NULL);
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_instance_list(ah_store *st, int64_t max_age_ms, ah_instance_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, max_age_ms < 0 ? 0 : max_age_ms);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_INSTANCE_LIST, &p, "instance_list", &rc);
    ah_pg_unlock(s);
    if (r == NULL)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        ah_instance_row row = {.id = opt(r, i, 0), .version = opt(r, i, 1),
                               .host = opt(r, i, 2), .pid = ah_pg_int(r, i, 3),
                               .started_at = opt(r, i, 4), .heartbeat = opt(r, i, 5),
                               .age_ms = ah_pg_int(r, i, 6)};
        cb(arg, &row);
    }
    PQclear(r);
    return AH_STORE_OK;
}

int ah_pg_instance_remove(ah_store *st, const char *id, int64_t stale_ms)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_params p = {0};
    ah_pg_p_text(&p, id != NULL ? id : "");
    ah_pg_p_int(&p, stale_ms < 0 ? 0 : stale_ms);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_INSTANCE_REMOVE, &p, "instance_remove", NULL);
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_lease_list(ah_store *st, ah_lease_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_LEASE_LIST, NULL, "lease_list", &rc);
    ah_pg_unlock(s);
    if (r == NULL)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        ah_lease_row row = {.name = opt(r, i, 0), .owner = opt(r, i, 1),
                            .token = ah_pg_int(r, i, 2), .expires_in_ms = ah_pg_int(r, i, 3)};
        cb(arg, &row);
    }
    PQclear(r);
    return AH_STORE_OK;
}

int ah_pg_lease_prune(ah_store *st, const char *prefix, int64_t expired_ms, int64_t *n_out)
{
    ah_pg_store *s = ah_pg(st);
    if (n_out != NULL)
        *n_out = 0;
    if (prefix == NULL || prefix[0] == '\0' || expired_ms < 0)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, prefix);
    ah_pg_p_int(&p, expired_ms);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_LEASE_PRUNE, &p, "lease_prune", n_out);
    ah_pg_unlock(s);
    return rc;
}
