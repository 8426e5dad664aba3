/* SPDX-License-Identifier: Apache-2.0 */
/* Outbound webhook endpoints and their delivery log. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sealed secret is read only by webhook_due, which delivers. */
#define WH_COLS(secret)                                                        \
    "id, tenant_id, url, event_types, " #secret ", enabled, failures, "         \
    "disabled_at, cursor, created_at, description, " PREV_##secret ", "          \
    "previous_until"
#define PREV_NULL "NULL"
#define PREV_secret "previous_secret"

/* This file's statements, by cache slot (sqlite_int.h). */
static const char *const q_sql[Q_COUNT] = {
    [Q_WH_ADD] = "INSERT INTO webhook_endpoints(tenant_id, url, event_types, secret, next_at, "
                 "created_at, cursor) VALUES(?1, ?2, ?3, ?4, ?5, ?5, "
                 "(SELECT coalesce(max(id), 0) FROM outbox))",
    [Q_WH_LIST] = "SELECT " WH_COLS(NULL) " FROM webhook_endpoints "
                  "WHERE (?1 = 0 OR tenant_id = ?1) AND id > ?2 ORDER BY id LIMIT ?3",
    /* Only endpoints with an event after their cursor: the others have
     * nothing to send, and a delivery worker would only look. */
    [Q_WH_DUE] = "SELECT " WH_COLS(secret) " FROM webhook_endpoints e "
                 "WHERE enabled = 1 AND next_at <= ?1 AND EXISTS (SELECT 1 FROM outbox o "
                 "WHERE o.tenant_id = e.tenant_id AND o.id > e.cursor) ORDER BY id",
    [Q_WH_ENABLE] = "UPDATE webhook_endpoints SET enabled = 1, failures = 0, "
                    "disabled_at = NULL, next_at = ?3 WHERE id = ?1 AND (?2 = 0 OR tenant_id = ?2)",
    [Q_WH_DISABLE] = "UPDATE webhook_endpoints SET enabled = 0, disabled_at = ?3 "
                     "WHERE id = ?1 AND (?2 = 0 OR tenant_id = ?2)",
    [Q_WH_GET] = "SELECT id FROM webhook_endpoints WHERE id = ?1 AND (?2 = 0 OR tenant_id = ?2)",
    [Q_WH_DELIVERIES] = "SELECT d.outbox_id, o.topic, d.attempts, d.status, d.last_status, "
                        "d.last_error, d.next_at, d.delivered_at FROM webhook_deliveries d "
                        "LEFT JOIN outbox o ON o.id = d.outbox_id WHERE d.endpoint_id = ?1 "
                        "ORDER BY d.outbox_id DESC LIMIT ?2",
    [Q_WH_ATTEMPT] = "INSERT INTO webhook_deliveries(endpoint_id, outbox_id, attempts, status, "
                     "last_status, last_error, next_at, delivered_at) "
                     "VALUES(?1, ?2, 1, ?3, ?4, ?5, ?6, ?7) "
                     "ON CONFLICT(endpoint_id, outbox_id) DO UPDATE SET "
                     "attempts = webhook_deliveries.attempts + 1, status = excluded.status, "
                     "last_status = excluded.last_status, last_error = excluded.last_error, "
                     "next_at = excluded.next_at, delivered_at = excluded.delivered_at",
    [Q_WH_ADVANCE] = "UPDATE webhook_endpoints SET cursor = ?2, failures = 0 WHERE id = ?1",
    [Q_WH_FAILED] = "UPDATE webhook_endpoints SET failures = ?2, next_at = ?3, "
                    "enabled = CASE WHEN ?4 IS NULL THEN enabled ELSE 0 END, "
                    "disabled_at = coalesce(?4, disabled_at) WHERE id = ?1",
    [Q_WH_DUE_ONE] = "SELECT " WH_COLS(secret) " FROM webhook_endpoints "
                     "WHERE id = ?2 AND enabled = 1 AND next_at <= ?1",
    /* A line is kept while its event may still be replayed: delivered
     * lines age out with the event log; failed ones go with their event
     * when the outbox prunes it (outbox.c: an endpoint never reaches it
     * any more). */
    [Q_WH_PRUNE] = "DELETE FROM webhook_deliveries WHERE rowid IN (SELECT rowid FROM "
                   "webhook_deliveries WHERE delivered_at < ?1 ORDER BY delivered_at LIMIT ?2)",
    [Q_WH_UPDATE] = "UPDATE webhook_endpoints SET url = coalesce(?3, url), "
                    "event_types = coalesce(?4, event_types), "
                    "description = coalesce(?5, description) "
                    "WHERE id = ?1 AND (?2 = 0 OR tenant_id = ?2)",
    /* Its delivery log goes with it (ON DELETE CASCADE). */
    [Q_WH_DELETE] = "DELETE FROM webhook_endpoints WHERE id = ?1 AND (?2 = 0 OR tenant_id = ?2)",
    [Q_WH_ROTATE] = "UPDATE webhook_endpoints SET previous_secret = CASE WHEN ?4 IS NULL "
                    "THEN NULL ELSE secret END, previous_until = ?4, secret = ?3 "
                    "WHERE id = ?1 AND (?2 = 0 OR tenant_id = ?2)",
};

static bool fill_webhook(sqlite3_stmt *st, void *row)
{
    ah_webhook_row *r = row;
    bool oom = false;
    r->id = sqlite3_column_int64(st, 0);
    r->tenant_id = sqlite3_column_int64(st, 1);
    r->url = ah_sq_col_dup(st, 2, &oom);
    r->event_types = ah_sq_col_dup(st, 3, &oom);
    r->secret = ah_sq_col_dup(st, 4, &oom);
    r->enabled = sqlite3_column_int(st, 5) != 0;
    r->failures = sqlite3_column_int64(st, 6);
    r->disabled_at = ah_sq_col_dup(st, 7, &oom);
    r->cursor = sqlite3_column_int64(st, 8);
    r->created_at = ah_sq_col_dup(st, 9, &oom);
    r->description = ah_sq_col_dup(st, 10, &oom);
    r->previous_secret = ah_sq_col_dup(st, 11, &oom);
    r->previous_until = ah_sq_col_dup(st, 12, &oom);
    return !oom;
}

static void webhook_free_v(void *row)
{
    ah_webhook_row_free(row);
}

static bool fill_wh_delivery(sqlite3_stmt *st, void *row)
{
    ah_webhook_delivery_row *r = row;
    bool oom = false;
    r->outbox_id = sqlite3_column_int64(st, 0);
    r->topic = ah_sq_col_dup(st, 1, &oom);
    r->attempts = sqlite3_column_int64(st, 2);
    r->status = ah_sq_col_dup(st, 3, &oom);
    r->last_status = sqlite3_column_int64(st, 4);
    r->last_error = ah_sq_col_dup(st, 5, &oom);
    r->next_at = ah_sq_col_dup(st, 6, &oom);
    r->delivered_at = ah_sq_col_dup(st, 7, &oom);
    return !oom;
}

static void wh_delivery_free_v(void *row)
{
    ah_webhook_delivery_row_free(row);
}

int ah_sq_webhook_add(ah_store *st, int64_t tenant_id, const char *url, const char *event_types,
                      const char *secret_sealed, int64_t *id_out)
{
    ah_sq_store *s = ah_sq(st);
    if (url == NULL || secret_sealed == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_WH_ADD);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, tenant_id);
        ah_sq_bind_text(q, 2, url);
        ah_sq_bind_text(q, 3, event_types != NULL && *event_types ? event_types : "*");
        ah_sq_bind_text(q, 4, secret_sealed);
        ah_sq_bind_text(q, 5, now);
        rc = ah_sq_run(s, q, "webhook_add");
        if (rc == AH_STORE_OK && id_out != NULL)
            *id_out = sqlite3_last_insert_rowid(s->db);
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

/* A tenant's list (now NULL) is a client's read: on a reader beside the
 * writer (ah_sq_read_lock, which keeps read-your-writes). The due scan of
 * the delivery pool stays on the writer. */
static int webhook_rows(ah_store *st, ah_sq_qid id, int64_t tenant_id, int64_t after_id,
                        int limit, const char *now, ah_webhook_cb cb, void *arg,
                        const char *what)
{
    ah_sq_store *w = ah_sq(st);
    ah_sq_rowvec v = {.elem = sizeof(ah_webhook_row)};
    ah_sq_store *s = now == NULL ? ah_sq_read_lock(w) : w;
    if (now != NULL)
        ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, id);
    if (q != NULL) {
        if (now != NULL) {
            ah_sq_bind_text(q, 1, now);
        } else {
            /* A page of the list: ids after after_id, LIMIT -1 for all. */
            sqlite3_bind_int64(q, 1, tenant_id);
            sqlite3_bind_int64(q, 2, after_id > 0 ? after_id : 0);
            sqlite3_bind_int64(q, 3, limit > 0 ? limit : -1);
        }
        rc = ah_sq_collect(s, q, &v, fill_webhook, webhook_free_v, what);
        ah_sq_done(q);
    }
    ah_sq_read_unlock(s); /* the writer's unlock when s is the writer */
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_webhook_row *)v.items + i);
    ah_sq_rowvec_free(&v, webhook_free_v);
    return rc;
}

int ah_sq_webhook_list(ah_store *st, int64_t tenant_id, int64_t after_id, int limit,
                       ah_webhook_cb cb, void *arg)
{
    return webhook_rows(st, Q_WH_LIST, tenant_id, after_id, limit, NULL, cb, arg,
                        "webhook_list");
}

int ah_sq_webhook_due(ah_store *st, const char *now, ah_webhook_cb cb, void *arg)
{
    if (now == NULL)
        return AH_STORE_ERR;
    return webhook_rows(st, Q_WH_DUE, 0, 0, 0, now, cb, arg, "webhook_due");
}

int ah_sq_webhook_due_one(ah_store *st, int64_t id, const char *now, ah_webhook_cb cb,
                          void *arg)
{
    ah_sq_store *s = ah_sq(st);
    if (now == NULL)
        return AH_STORE_ERR;
    ah_sq_rowvec v = {.elem = sizeof(ah_webhook_row)};
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_WH_DUE_ONE);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, now);
        sqlite3_bind_int64(q, 2, id);
        rc = ah_sq_collect(s, q, &v, fill_webhook, webhook_free_v, "webhook_due_one");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_webhook_row *)v.items + i);
    ah_sq_rowvec_free(&v, webhook_free_v);
    return rc;
}

int ah_sq_webhook_prune(ah_store *st, const char *before, int64_t *n_out)
{
    ah_sq_store *s = ah_sq(st);
    if (n_out != NULL)
        *n_out = 0;
    char b[32];
    if (before == NULL || ah_iso_normalize(before, b) != 0)
        return AH_STORE_ERR;
    const char *texts[] = {b};
    return ah_sq_delete_batched(s, Q_WH_PRUNE, q_sql[Q_WH_PRUNE], texts, 1, "webhook_prune",
                                n_out);
}

int ah_sq_webhook_set_enabled(ah_store *st, int64_t tenant_id, int64_t id, bool enabled)
{
    ah_sq_store *s = ah_sq(st);
    char now[32];
    ah_now_iso(now);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, enabled ? Q_WH_ENABLE : Q_WH_DISABLE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, tenant_id);
        ah_sq_bind_text(q, 3, now);
        rc = ah_sq_change_by_id(s, q, "webhook_set_enabled");
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_webhook_deliveries(ah_store *st, int64_t tenant_id, int64_t id, int limit,
                             ah_webhook_delivery_cb cb, void *arg)
{
    ah_sq_store *s = ah_sq_read_lock(ah_sq(st)); /* a client's read, beside the writer */
    ah_sq_rowvec v = {.elem = sizeof(ah_webhook_delivery_row)};
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_WH_GET);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, tenant_id);
        int r = sqlite3_step(q);
        rc = r == SQLITE_ROW    ? AH_STORE_OK
             : r == SQLITE_DONE ? AH_STORE_NOT_FOUND
                                : ah_sq_step_error(s, r, "webhook_deliveries");
        ah_sq_done(q);
    }
    if (rc == AH_STORE_OK) {
        q = AH_SQ_GET(s, Q_WH_DELIVERIES);
        rc = AH_STORE_ERR;
        if (q != NULL) {
            sqlite3_bind_int64(q, 1, id);
            sqlite3_bind_int(q, 2, ah_sq_page_limit(limit));
            rc =
                ah_sq_collect(s, q, &v, fill_wh_delivery, wh_delivery_free_v, "webhook_deliveries");
            ah_sq_done(q);
        }
    }
    ah_sq_read_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_webhook_delivery_row *)v.items + i);
    ah_sq_rowvec_free(&v, wh_delivery_free_v);
    return rc;
}

int ah_sq_webhook_attempt(ah_store *st, int64_t id, int64_t outbox_id, bool ok, int http_status,
                          const char *error, const char *next_at)
{
    ah_sq_store *s = ah_sq(st);
    char now[32];
    ah_now_iso(now);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_WH_ATTEMPT);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, outbox_id);
        ah_sq_bind_text(q, 3, ok ? "delivered" : "failed");
        sqlite3_bind_int(q, 4, http_status);
        ah_sq_bind_text(q, 5, ok ? NULL : error);
        ah_sq_bind_text(q, 6, ok ? NULL : next_at);
        ah_sq_bind_text(q, 7, ok ? now : NULL);
        rc = ah_sq_run(s, q, "webhook_attempt");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_webhook_advance(ah_store *st, int64_t id, int64_t outbox_id)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_WH_ADVANCE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, outbox_id);
        rc = ah_sq_change_by_id(s, q, "webhook_advance");
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_webhook_failed(ah_store *st, int64_t id, int64_t failures, const char *next_at,
                         const char *disabled_at)
{
    ah_sq_store *s = ah_sq(st);
    if (next_at == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_WH_FAILED);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, failures);
        ah_sq_bind_text(q, 3, next_at);
        ah_sq_bind_text(q, 4, disabled_at);
        rc = ah_sq_change_by_id(s, q, "webhook_failed");
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_webhook_update(ah_store *st, int64_t tenant_id, int64_t id, const char *url,
                         const char *event_types, const char *description)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_WH_UPDATE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, tenant_id);
        ah_sq_bind_text(q, 3, url);
        ah_sq_bind_text(q, 4, event_types);
        ah_sq_bind_text(q, 5, description);
        rc = ah_sq_change_by_id(s, q, "webhook_update");
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_webhook_delete(ah_store *st, int64_t tenant_id, int64_t id)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_WH_DELETE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, tenant_id);
        rc = ah_sq_change_by_id(s, q, "webhook_delete");
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_webhook_rotate(ah_store *st, int64_t tenant_id, int64_t id, const char *secret_sealed,
                         const char *previous_until)
{
    ah_sq_store *s = ah_sq(st);
    if (secret_sealed == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_WH_ROTATE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, tenant_id);
        ah_sq_bind_text(q, 3, secret_sealed);
        ah_sq_bind_text(q, 4, previous_until);
        rc = ah_sq_change_by_id(s, q, "webhook_rotate");
    }
    ah_sq_unlock(s);
    return rc;
}
