/* SPDX-License-Identifier: Apache-2.0 */
/* The events outbox: adding events with their per-connection deliveries,
 * delivering them, and reading and pruning it as the event log. */
#include "pg_int.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const q_sql[P_COUNT] = {
    /* Readers page a tenant's events by id (outbox_after: webhook passes,
     * GET /v1/events) and never look back, so a tenant's ids must become
     * visible in order: an id taken by a transaction that commits after a
     * later id's would be passed over for good. The tenant's advisory lock,
     * held to the end of the transaction, makes the transactions that add a
     * tenant's events take their ids and commit one after another (with
     * one connection per instance, only several instances could interleave
     * them; ERP creates of one tenant already do so on its sequence row). */
    [P_OUT_ADD] = "INSERT INTO outbox(tenant_id, topic, body, created_at) "
                  "SELECT $1::bigint, $2::text, $3::text, $4::text "
                  "FROM (SELECT pg_advisory_xact_lock(" AH_PG_TENANT_LOCK_CLASS ", "
                  "($1::bigint % 2147483647)::integer)) AS tenant_events RETURNING id",
    /* P_OUT_ADD and the event's pending deliveries ($5: the subscribers'
     * connection ids as an array) in one statement. A subscriber another
     * instance removed since this one loaded its connections gets none:
     * its foreign key would fail the statement, which in a group is
     * queued, so the group's COMMIT, every request in it, until the next
     * reload. The subscribers' rows are locked as the foreign key's check
     * locks them (FOR KEY SHARE): one removed between the read and the
     * check waits or is left out, never fails it. */
    [P_OUT_ADD_SUBS] = "WITH e AS (INSERT INTO outbox(tenant_id, topic, body, created_at) "
                       "SELECT $1::bigint, $2::text, $3::text, $4::text "
                       "FROM (SELECT pg_advisory_xact_lock(" AH_PG_TENANT_LOCK_CLASS ", "
                       "($1::bigint % 2147483647)::integer)) AS tenant_events RETURNING id), "
                       "d AS (INSERT INTO deliveries(connection_id, outbox_id, attempts, next_at) "
                       "SELECT c.id, e.id, 0, $4::text FROM e, (SELECT id FROM connections "
                       "WHERE id = ANY($5::bigint[]) FOR KEY SHARE) AS c "
                       "ON CONFLICT DO NOTHING) SELECT id FROM e",
    [P_OUT_PENDING] = "SELECT id, tenant_id, topic, body, created_at FROM outbox "
                      "WHERE delivered_at IS NULL ORDER BY id LIMIT $1",
    [P_OUT_DONE] = "UPDATE outbox SET delivered_at = $2 WHERE id = $1 "
                   "AND delivered_at IS NULL",
    [P_DEL_NEXT] = "SELECT d.connection_id, d.outbox_id, o.tenant_id, o.topic, o.body, "
                   "d.attempts, d.next_at FROM deliveries d JOIN outbox o ON o.id = d.outbox_id "
                   "WHERE d.connection_id = $1 ORDER BY d.outbox_id LIMIT 1",
    [P_DEL_DONE] = "DELETE FROM deliveries WHERE connection_id = $1 AND outbox_id = $2",
    [P_DEL_RETRY] = "UPDATE deliveries SET attempts = attempts + 1, next_at = $3, last_error = $4 "
                    "WHERE connection_id = $1 AND outbox_id = $2",
    /* A disabled connection's deliveries wait for it to be enabled again
     * (events.c) without moving: left out, or they would fill the due
     * list at every tick and keep enabled connections' retries out. */
    [P_DEL_DUE] = "SELECT DISTINCT d.connection_id FROM deliveries d JOIN connections c "
                  "ON c.id = d.connection_id WHERE d.next_at <= $1 AND c.enabled LIMIT $2",
    [P_OUT_AFTER] = "SELECT id, tenant_id, topic, body, created_at FROM outbox "
                    "WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    /* Pruning (ah_pg_outbox_prune): the oldest events below a bound, a
     * batch at a time, except those a connection or an enabled webhook
     * endpoint still has to receive (a failing endpoint is disabled after
     * max_failures, so that keeps them for a bounded time); their webhook
     * delivery lines go with them. */
    [P_OUT_PRUNE] = "WITH gone AS (DELETE FROM outbox WHERE id IN (SELECT o.id FROM outbox o "
                    "WHERE o.id < $2 AND o.created_at < $1 AND NOT EXISTS (SELECT 1 FROM "
                    "deliveries d WHERE d.outbox_id = o.id) AND NOT EXISTS (SELECT 1 FROM "
                    "webhook_endpoints e WHERE e.tenant_id = o.tenant_id AND e.enabled "
                    "AND e.cursor < o.id) ORDER BY o.id LIMIT $3) RETURNING id), "
                    "wh AS (DELETE FROM webhook_deliveries w USING gone WHERE w.outbox_id = gone.id) "
                    "SELECT count(*) FROM gone",
    [P_OUT_SEEK] = "SELECT id, created_at FROM outbox WHERE id >= $1 ORDER BY id LIMIT 1",
    [P_OUT_ENDS] = "SELECT min(id), max(id) FROM outbox",
};

static bool fill_outbox(const PGresult *r, int i, void *row)
{
    ah_outbox_row *o = row;
    bool oom = false;
    o->id = ah_pg_int(r, i, 0);
    o->tenant_id = ah_pg_int(r, i, 1);
    o->topic = ah_pg_dup(r, i, 2, &oom);
    o->body = ah_pg_dup(r, i, 3, &oom);
    o->created_at = ah_pg_dup(r, i, 4, &oom);
    return !oom;
}

static void outbox_free_v(void *row)
{
    ah_outbox_row_free(row);
}

static int outbox_rows(ah_pg_store *s, PGresult *r, int rc, ah_outbox_cb cb, void *arg,
                       const char *what)
{
    ah_pg_rowvec v = {.elem = sizeof(ah_outbox_row)};
    if (r != NULL) {
        rc = ah_pg_collect(s, r, &v, fill_outbox, outbox_free_v, what);
        PQclear(r);
    }
    ah_pg_read_unlock(s); /* the writer or a reader */
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_outbox_row *)v.items + i);
    ah_pg_rowvec_free(&v, outbox_free_v);
    return rc;
}

int ah_pg_outbox_add(ah_store *st, int64_t tenant_id, const char *topic, const char *body,
                     int64_t *id_out)
{
    ah_pg_store *s = ah_pg(st);
    if (topic == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, topic);
    ah_pg_p_text(&p, body != NULL ? body : "{}");
    ah_pg_p_text(&p, now);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_OUT_ADD, &p, "outbox_add", &rc);
    if (r != NULL) {
        if (id_out != NULL && PQntuples(r) == 1)
            *id_out = ah_pg_int(r, 0, 0);
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_outbox_pending(ah_store *st, int limit, ah_outbox_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, limit > 0 ? limit : 100);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_OUT_PENDING, &p, "outbox_pending", &rc);
    return outbox_rows(s, r, rc, cb, arg, "outbox_pending");
}

int ah_pg_outbox_done(ah_store *st, int64_t id)
{
    ah_pg_store *s = ah_pg(st);
    char now[32];
    ah_now_iso(now);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, id);
    ah_pg_p_text(&p, now);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_OUT_DONE, &p, "outbox_done");
    ah_pg_unlock(s);
    return rc;
}

/* ---- events with their deliveries to plugins ----------------------------- */

/* The subscribers' ids as a PostgreSQL array literal ("{1,2,3}"), or NULL
 * when out of memory. */
static char *id_array(const int64_t *ids, size_t n)
{
    size_t cap = 3 + n * 21;
    char *a = malloc(cap);
    if (a == NULL)
        return NULL;
    size_t w = 0;
    a[w++] = '{';
    for (size_t i = 0; i < n; i++)
        w += (size_t)snprintf(a + w, cap - w, "%s%" PRId64, i > 0 ? "," : "", ids[i]);
    a[w++] = '}';
    a[w] = '\0';
    return a;
}

/* Every event is one statement (the event and its deliveries). Inside a
 * scope (a request's group) they are queued with the scope's next
 * statement or COMMIT and events[i].id stays 0 (nobody there reads it);
 * elsewhere they go in one pipeline (one round trip for the batch) and
 * events[i].id receives the ids. */
int ah_pg_outbox_add_batch(ah_store *st, int64_t tenant_id, ah_outbox_in *events, size_t n)
{
    ah_pg_store *s = ah_pg(st);
    if (events == NULL && n > 0)
        return AH_STORE_ERR;
    if (n > INT_MAX / 2)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    char **arrays = calloc(n ? n : 1, sizeof *arrays);
    ah_pg_params *ps = calloc(n ? n : 1, sizeof *ps);
    PGresult **res = calloc(n ? n : 1, sizeof *res);
    int rc = arrays != NULL && ps != NULL && res != NULL ? AH_STORE_OK : AH_STORE_ERR;
    for (size_t e = 0; rc == AH_STORE_OK && e < n; e++) {
        ah_outbox_in *ev = &events[e];
        ev->id = 0;
        if (ev->topic == NULL || (ev->nconn > 0 && ev->conn_ids == NULL)) {
            rc = AH_STORE_ERR;
            break;
        }
        arrays[e] = id_array(ev->conn_ids, ev->nconn);
        if (arrays[e] == NULL) {
            rc = AH_STORE_ERR;
            break;
        }
        ah_pg_p_int(&ps[e], tenant_id);
        ah_pg_p_text(&ps[e], ev->topic);
        ah_pg_p_text(&ps[e], ev->body != NULL ? ev->body : "{}");
        ah_pg_p_text(&ps[e], now);
        ah_pg_p_text(&ps[e], arrays[e]);
    }
    if (rc != AH_STORE_OK)
        goto out;
    ah_pg_lock(s);
    /* Inside a scope, one event is one queued statement: it needs no
     * savepoint (its failure shows only at the COMMIT, which it fails,
     * ah_pg_defer_exec). Several get one, so that a failure to queue one
     * of them drops those queued before it. */
    bool sp = s->scope_depth == 0 || n > 1;
    rc = sp ? ah_pg_tx_begin(s) : AH_STORE_OK;
    if (rc == AH_STORE_OK && s->scope_depth > 0) {
        for (size_t e = 0; rc == AH_STORE_OK && e < n; e++)
            rc = AH_PG_DEFER(s, P_OUT_ADD_SUBS, &ps[e], "outbox_add_batch");
    } else if (rc == AH_STORE_OK) {
        rc = AH_PG_RUN_MANY(s, P_OUT_ADD_SUBS, ps, (int)n, res, "outbox_add_batch");
        for (size_t e = 0; rc == AH_STORE_OK && e < n; e++) {
            if (PQntuples(res[e]) == 1)
                events[e].id = ah_pg_int(res[e], 0, 0);
            else
                rc = AH_STORE_ERR;
        }
    }
    if (!sp)
        ; /* nothing to end */
    else if (rc == AH_STORE_OK)
        rc = ah_pg_tx_commit(s);
    else
        ah_pg_tx_rollback(s);
    ah_pg_unlock(s);
out:
    for (size_t e = 0; e < n; e++) {
        if (res != NULL)
            PQclear(res[e]);
        if (arrays != NULL)
            free(arrays[e]);
    }
    free(res);
    free(ps);
    free(arrays);
    return rc;
}

static bool fill_delivery(const PGresult *r, int i, void *row)
{
    ah_delivery_row *d = row;
    bool oom = false;
    memset(d, 0, sizeof *d);
    d->connection_id = ah_pg_int(r, i, 0);
    d->outbox_id = ah_pg_int(r, i, 1);
    d->tenant_id = ah_pg_int(r, i, 2);
    d->topic = ah_pg_dup(r, i, 3, &oom);
    d->body = ah_pg_dup(r, i, 4, &oom);
    d->attempts = (int)ah_pg_int(r, i, 5);
    d->next_at = ah_pg_dup(r, i, 6, &oom);
    return !oom;
}

static void delivery_free_v(void *row)
{
    ah_delivery_row_free(row);
}

int ah_pg_delivery_next(ah_store *st, int64_t conn_id, ah_delivery_row *out)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, conn_id);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_DEL_NEXT, &p, "delivery_next", &rc);
    if (r != NULL) {
        rc = ah_pg_one(s, r, out, fill_delivery, delivery_free_v, "delivery_next");
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_delivery_done(ah_store *st, int64_t conn_id, int64_t outbox_id)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, conn_id);
    ah_pg_p_int(&p, outbox_id);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_DEL_DONE, &p, "delivery_done");
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_delivery_retry(ah_store *st, int64_t conn_id, int64_t outbox_id, const char *next_at,
                         const char *error)
{
    ah_pg_store *s = ah_pg(st);
    if (next_at == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, conn_id);
    ah_pg_p_int(&p, outbox_id);
    ah_pg_p_text(&p, next_at);
    ah_pg_p_text(&p, error);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_DEL_RETRY, &p, "delivery_retry");
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_delivery_due(ah_store *st, const char *now, int64_t *conn_ids, size_t max, size_t *n)
{
    ah_pg_store *s = ah_pg(st);
    *n = 0;
    if (now == NULL || conn_ids == NULL || max == 0)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, now);
    ah_pg_p_int(&p, (int64_t)max);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_DEL_DUE, &p, "delivery_due", &rc);
    if (r != NULL) {
        int rows = PQntuples(r);
        for (int i = 0; i < rows && *n < max; i++)
            conn_ids[(*n)++] = ah_pg_int(r, i, 0);
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}

/* ---- the outbox read as the event log -------------------------------------- */

int ah_pg_outbox_after(ah_store *st, int64_t tenant_id, int64_t after_id, int limit,
                       ah_outbox_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_int(&p, after_id);
    ah_pg_p_int(&p, ah_pg_page_limit(limit));
    int rc;
    s = ah_pg_read_lock(s);
    PGresult *r = AH_PG_RUN(s, P_OUT_AFTER, &p, "outbox_after", &rc);
    return outbox_rows(s, r, rc, cb, arg, "outbox_after");
}

static int seek_event(void *arg, int64_t from, int64_t *id, char at[32])
{
    ah_pg_store *s = arg;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, from);
    int rc;
    PGresult *r = AH_PG_RUN(s, P_OUT_SEEK, &p, "outbox_prune", &rc);
    if (r == NULL)
        return rc;
    if (PQntuples(r) == 1) {
        *id = ah_pg_int(r, 0, 0);
        snprintf(at, 32, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return AH_STORE_OK;
}

/* The first event id at or past cutoff (0: no events), by bisection (see
 * the SQLite engine's outbox.c): a few index look-ups, not a scan. */
static int prune_bound(ah_pg_store *s, const char *cutoff, int64_t *bound)
{
    *bound = 0;
    ah_pg_params p = {0};
    int rc;
    PGresult *r = AH_PG_RUN(s, P_OUT_ENDS, &p, "outbox_prune", &rc);
    if (r == NULL)
        return rc;
    bool empty = PQntuples(r) != 1 || PQgetisnull(r, 0, 0);
    int64_t lo = empty ? 0 : ah_pg_int(r, 0, 0), hi = empty ? 0 : ah_pg_int(r, 0, 1) + 1;
    PQclear(r);
    return empty ? AH_STORE_OK : ah_store_time_bound(lo, hi, cutoff, seek_event, s, bound);
}

int ah_pg_outbox_prune(ah_store *st, const char *before, int64_t *n_out)
{
    ah_pg_store *s = ah_pg(st);
    if (n_out != NULL)
        *n_out = 0;
    char cutoff[32];
    if (before == NULL || ah_iso_normalize(before, cutoff) != 0)
        return AH_STORE_ERR;
    int64_t bound = 0, total = 0, n = 0;
    ah_pg_lock(s);
    int rc = prune_bound(s, cutoff, &bound);
    ah_pg_unlock(s);
    /* A batch per statement, the lock let go in between. */
    while (rc == AH_STORE_OK && bound > 0) {
        ah_pg_params p = {0};
        ah_pg_p_text(&p, cutoff);
        ah_pg_p_int(&p, bound);
        ah_pg_p_int(&p, AH_PG_PRUNE_BATCH);
        ah_pg_lock(s);
        PGresult *r = AH_PG_RUN(s, P_OUT_PRUNE, &p, "outbox_prune", &rc);
        n = r != NULL && PQntuples(r) == 1 ? ah_pg_int(r, 0, 0) : 0;
        PQclear(r);
        ah_pg_unlock(s);
        total += n;
        if (n < AH_PG_PRUNE_BATCH)
            break;
    }
    if (n_out != NULL)
        *n_out = total;
    return rc;
}
