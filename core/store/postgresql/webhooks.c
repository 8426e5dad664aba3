/* SPDX-License-Identifier: Apache-2.0 */
/* Outbound webhook endpoints and their delivery log. */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sealed secret is read only by webhook_due(_one), which deliver. */
#define WH_COLS(secret)                                                        \
    "id, tenant_id, url, event_types, " #secret ", enabled, failures, "         \
    "disabled_at, cursor, created_at, description, " PREV_##secret ", "          \
    "previous_until"
#define PREV_NULL "NULL"
#define PREV_secret "previous_secret"

static const char *const q_sql[P_COUNT] = {
    [P_WH_ADD] = "INSERT INTO webhook_endpoints(tenant_id, url, event_types, secret, next_at, "
                 "created_at, cursor) VALUES($1, $2, $3, $4, $5, $5, "
                 "(SELECT coalesce(max(id), 0) FROM outbox)) RETURNING id",
    [P_WH_LIST] = "SELECT " WH_COLS(NULL) " FROM webhook_endpoints "
                  "WHERE ($1::bigint = 0 OR tenant_id = $1::bigint) AND id > $2::bigint "
                  "ORDER BY id LIMIT $3::bigint",
    [P_WH_DUE] = "SELECT " WH_COLS(secret) " FROM webhook_endpoints e "
                 "WHERE enabled AND next_at <= $1 AND EXISTS (SELECT 1 FROM outbox o "
                 "WHERE o.tenant_id = e.tenant_id AND o.id > e.cursor) ORDER BY id",
    [P_WH_ENABLE] = "UPDATE webhook_endpoints SET enabled = true, failures = 0, "
                    "disabled_at = NULL, next_at = $3 "
                    "WHERE id = $1 AND ($2::bigint = 0 OR tenant_id = $2::bigint)",
    [P_WH_DISABLE] = "UPDATE webhook_endpoints SET enabled = false, disabled_at = $3 "
                     "WHERE id = $1 AND ($2::bigint = 0 OR tenant_id = $2::bigint)",
    [P_WH_GET] = "SELECT id FROM webhook_endpoints "
                 "WHERE id = $1 AND ($2::bigint = 0 OR tenant_id = $2::bigint)",
    [P_WH_DELIVERIES] = "SELECT d.outbox_id, o.topic, d.attempts, d.status, d.last_status, "
                        "d.last_error, d.next_at, d.delivered_at FROM webhook_deliveries d "
                        "LEFT JOIN outbox o ON o.id = d.outbox_id WHERE d.endpoint_id = $1 "
                        "ORDER BY d.outbox_id DESC LIMIT $2",
    [P_WH_ATTEMPT] = "INSERT INTO webhook_deliveries(endpoint_id, outbox_id, attempts, status, "
                     "last_status, last_error, next_at, delivered_at) "
                     "VALUES($1, $2, 1, $3, $4, $5, $6, $7) "
                     "ON CONFLICT(endpoint_id, outbox_id) DO UPDATE SET "
                     "attempts = webhook_deliveries.attempts + 1, status = excluded.status, "
                     "last_status = excluded.last_status, last_error = excluded.last_error, "
                     "next_at = excluded.next_at, delivered_at = excluded.delivered_at",
    [P_WH_ADVANCE] = "UPDATE webhook_endpoints SET cursor = $2, failures = 0 WHERE id = $1",
    [P_WH_FAILED] = "UPDATE webhook_endpoints SET failures = $2, next_at = $3, "
                    "enabled = CASE WHEN $4::text IS NULL THEN enabled ELSE false END, "
                    "disabled_at = coalesce($4::text, disabled_at) WHERE id = $1",
    [P_WH_DUE_ONE] = "SELECT " WH_COLS(secret) " FROM webhook_endpoints "
                     "WHERE id = $2 AND enabled AND next_at <= $1",
    [P_WH_UPDATE] = "UPDATE webhook_endpoints SET url = coalesce($3::text, url), "
                    "event_types = coalesce($4::text, event_types), "
                    "description = coalesce($5::text, description) "
                    "WHERE id = $1 AND ($2::bigint = 0 OR tenant_id = $2::bigint)",
    /* Its delivery log goes with it (ON DELETE CASCADE). */
    [P_WH_DELETE] = "DELETE FROM webhook_endpoints "
                    "WHERE id = $1 AND ($2::bigint = 0 OR tenant_id = $2::bigint)",
    [P_WH_ROTATE] = "UPDATE webhook_endpoints SET previous_secret = CASE WHEN $4::text IS NULL "
                    "THEN NULL ELSE secret END, previous_until = $4::text, secret = $3 "
                    "WHERE id = $1 AND ($2::bigint = 0 OR tenant_id = $2::bigint)",
    /* Delivered lines age out with the event log; the others go with
     * their event when the outbox prunes it (outbox.c). */
    [P_WH_PRUNE] = "DELETE FROM webhook_deliveries WHERE (endpoint_id, outbox_id) IN "
                   "(SELECT endpoint_id, outbox_id FROM webhook_deliveries "
                   "WHERE delivered_at < $1 ORDER BY delivered_at LIMIT $2)",
};

static bool fill_webhook(const PGresult *r, int i, void *row)
{
    ah_webhook_row *w = row;
    bool oom = false;
    w->id = ah_pg_int(r, i, 0);
    w->tenant_id = ah_pg_int(r, i, 1);
    w->url = ah_pg_dup(r, i, 2, &oom);
    w->event_types = ah_pg_dup(r, i, 3, &oom);
    w->secret = ah_pg_dup(r, i, 4, &oom);
    w->enabled = ah_pg_bool(r, i, 5);
    w->failures = ah_pg_int(r, i, 6);
    w->disabled_at = ah_pg_dup(r, i, 7, &oom);
    w->cursor = ah_pg_int(r, i, 8);
    w->created_at = ah_pg_dup(r, i, 9, &oom);
    w->description = ah_pg_dup(r, i, 10, &oom);
    w->previous_secret = ah_pg_dup(r, i, 11, &oom);
    w->previous_until = ah_pg_dup(r, i, 12, &oom);
    return !oom;
}

static void webhook_free_v(void *row)
{
    ah_webhook_row_free(row);
}

static bool fill_wh_delivery(const PGresult *r, int i, void *row)
{
    ah_webhook_delivery_row *d = row;
    bool oom = false;
    d->outbox_id = ah_pg_int(r, i, 0);
    d->topic = ah_pg_dup(r, i, 1, &oom);
    d->attempts = ah_pg_int(r, i, 2);
    d->status = ah_pg_dup(r, i, 3, &oom);
    d->last_status = ah_pg_int(r, i, 4);
    d->last_error = ah_pg_dup(r, i, 5, &oom);
    d->next_at = ah_pg_dup(r, i, 6, &oom);
    d->delivered_at = ah_pg_dup(r, i, 7, &oom);
    return !oom;
}

static void wh_delivery_free_v(void *row)
{
    ah_webhook_delivery_row_free(row);
}

/* Copies the rows of r (may be NULL: rc says why), unlocks, calls back. */
static int webhook_rows(ah_pg_store *s, PGresult *r, int rc, ah_webhook_cb cb, void *arg,
                        const char *what)
{
    ah_pg_rowvec v = {.elem = sizeof(ah_webhook_row)};
    if (r != NULL) {
        rc = ah_pg_collect(s, r, &v, fill_webhook, webhook_free_v, what);
        PQclear(r);
    }
    ah_pg_read_unlock(s); /* the writer or a reader */
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_webhook_row *)v.items + i);
    ah_pg_rowvec_free(&v, webhook_free_v);
    return rc;
}

int ah_pg_webhook_add(ah_store *st, int64_t tenant_id, const char *url, const char *event_types,
                      const char *secret_sealed, int64_t *id_out)
{
    ah_pg_store *s = ah_pg(st);
    if (url == NULL || secret_sealed == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, url);
    ah_pg_p_text(&p, event_types != NULL && *event_types ? event_types : "*");
    ah_pg_p_text(&p, secret_sealed);
    ah_pg_p_text(&p, now);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_WH_ADD, &p, "webhook_add", &rc);
    if (r != NULL) {
        if (id_out != NULL && PQntuples(r) == 1)
            *id_out = ah_pg_int(r, 0, 0);
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_webhook_list(ah_store *st, int64_t tenant_id, int64_t after_id, int limit,
                       ah_webhook_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant_id);
    /* A page of the list: ids after after_id; no LIMIT is all of them. */
    ah_pg_p_int(&p, after_id > 0 ? after_id : 0);
    ah_pg_p_int(&p, limit > 0 ? limit : INT64_MAX);
    int rc;
    s = ah_pg_read_lock(s);
    PGresult *r = AH_PG_RUN(s, P_WH_LIST, &p, "webhook_list", &rc);
    return webhook_rows(s, r, rc, cb, arg, "webhook_list");
}

int ah_pg_webhook_due(ah_store *st, const char *now, ah_webhook_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    if (now == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, now);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_WH_DUE, &p, "webhook_due", &rc);
    return webhook_rows(s, r, rc, cb, arg, "webhook_due");
}

int ah_pg_webhook_due_one(ah_store *st, int64_t id, const char *now, ah_webhook_cb cb,
                          void *arg)
{
    ah_pg_store *s = ah_pg(st);
    if (now == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, now);
    ah_pg_p_int(&p, id);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_WH_DUE_ONE, &p, "webhook_due_one", &rc);
    return webhook_rows(s, r, rc, cb, arg, "webhook_due_one");
}

int ah_pg_webhook_prune(ah_store *st, const char *before, int64_t *n_out)
{
    ah_pg_store *s = ah_pg(st);
    if (n_out != NULL)
        *n_out = 0;
    char b[32];
    if (before == NULL || ah_iso_normalize(before, b) != 0)
        return AH_STORE_ERR;
    const char *texts[] = {b};
    return AH_PG_DELETE_BATCHED(s, P_WH_PRUNE, texts, 1, "webhook_prune", n_out);
}

int ah_pg_webhook_set_enabled(ah_store *st, int64_t tenant_id, int64_t id, bool enabled)
{
    ah_pg_store *s = ah_pg(st);
    char now[32];
    ah_now_iso(now);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, id);
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, now);
    ah_pg_lock(s);
    int rc = enabled ? AH_PG_CHANGE(s, P_WH_ENABLE, &p, "webhook_set_enabled")
                     : AH_PG_CHANGE(s, P_WH_DISABLE, &p, "webhook_set_enabled");
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_webhook_deliveries(ah_store *st, int64_t tenant_id, int64_t id, int limit,
                             ah_webhook_delivery_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_rowvec v = {.elem = sizeof(ah_webhook_delivery_row)};
    ah_pg_params p = {0};
    ah_pg_p_int(&p, id);
    ah_pg_p_int(&p, tenant_id);
    int rc;
    s = ah_pg_read_lock(s);
    PGresult *r = AH_PG_RUN(s, P_WH_GET, &p, "webhook_deliveries", &rc);
    if (r != NULL) {
        rc = PQntuples(r) > 0 ? AH_STORE_OK : AH_STORE_NOT_FOUND;
        PQclear(r);
    }
    if (rc == AH_STORE_OK) {
        ah_pg_params d = {0};
        ah_pg_p_int(&d, id);
        ah_pg_p_int(&d, ah_pg_page_limit(limit));
        r = AH_PG_RUN(s, P_WH_DELIVERIES, &d, "webhook_deliveries", &rc);
        if (r != NULL) {
            rc = ah_pg_collect(s, r, &v, fill_wh_delivery, wh_delivery_free_v,
                               "webhook_deliveries");
            PQclear(r);
        }
    }
    ah_pg_read_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_webhook_delivery_row *)v.items + i);
    ah_pg_rowvec_free(&v, wh_delivery_free_v);
    return rc;
}

int ah_pg_webhook_attempt(ah_store *st, int64_t id, int64_t outbox_id, bool ok, int http_status,
                          const char *error, const char *next_at)
{
    ah_pg_store *s = ah_pg(st);
    char now[32];
    ah_now_iso(now);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, id);
    ah_pg_p_int(&p, outbox_id);
    ah_pg_p_text(&p, ok ? "delivered" : "failed");
    ah_pg_p_int(&p, http_status);
    ah_pg_p_text(&p, ok ? NULL : error);
    ah_pg_p_text(&p, ok ? NULL : next_at);
    ah_pg_p_text(&p, ok ? now : NULL);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_WH_ATTEMPT, &p, "webhook_attempt", NULL);
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_webhook_advance(ah_store *st, int64_t id, int64_t outbox_id)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, id);
    ah_pg_p_int(&p, outbox_id);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_WH_ADVANCE, &p, "webhook_advance");
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_webhook_failed(ah_store *st, int64_t id, int64_t failures, const char *next_at,
                         const char *disabled_at)
{
    ah_pg_store *s = ah_pg(st);
    if (next_at == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, id);
    ah_pg_p_int(&p, failures);
    ah_pg_p_text(&p, next_at);
    ah_pg_p_text(&p, disabled_at);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_WH_FAILED, &p, "webhook_failed");
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_webhook_update(ah_store *st, int64_t tenant_id, int64_t id, const char *url,
                         const char *event_types, const char *description)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, id);
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, url);
    ah_pg_p_text(&p, event_types);
    ah_pg_p_text(&p, description);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_WH_UPDATE, &p, "webhook_update");
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_webhook_delete(ah_store *st, int64_t tenant_id, int64_t id)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, id);
    ah_pg_p_int(&p, tenant_id);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_WH_DELETE, &p, "webhook_delete");
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_webhook_rotate(ah_store *st, int64_t tenant_id, int64_t id, const char *secret_sealed,
                         const char *previous_until)
{
    ah_pg_store *s = ah_pg(st);
    if (secret_sealed == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, id);
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, secret_sealed);
    ah_pg_p_text(&p, previous_until);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_WH_ROTATE, &p, "webhook_rotate");
    ah_pg_unlock(s);
    return rc;
}
