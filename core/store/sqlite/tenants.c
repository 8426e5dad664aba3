/* SPDX-License-Identifier: Apache-2.0 */
/* Tenants, their connections and their named sequences. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONN_COLS                                                              \
    "c.id, c.tenant_id, t.name, c.plugin, c.name, c.enabled, c.settings, "     \
    "c.created_at, c.updated_at"

/* This file's statements, by cache slot (sqlite_int.h). */
static const char *const q_sql[Q_COUNT] = {
    [Q_TENANT_ADD] = "INSERT INTO tenants(name, key_hash, created_at) VALUES(?1, ?2, ?3)",
    [Q_TENANT_GET] = "SELECT id, name, key_hash, created_at FROM tenants WHERE name = ?1",
    [Q_TENANT_BY_HASH] =
        "SELECT id, name, key_hash, created_at FROM tenants WHERE key_hash = ?1",
    /* Lists page by name (ah_store_page): ?1 '' for the first page (no name
     * is empty), a LIMIT of -1 for every row. */
    [Q_TENANT_LIST] = "SELECT id, name, key_hash, created_at FROM tenants WHERE name > ?1 "
                      "ORDER BY name LIMIT ?2",
    [Q_TENANT_DEL_SEQ] =
        "DELETE FROM sequences WHERE tenant_id = (SELECT id FROM tenants WHERE name = ?1)",
    [Q_TENANT_DEL_OUTBOX] =
        "DELETE FROM outbox WHERE tenant_id = (SELECT id FROM tenants WHERE name = ?1)",
    /* What is keyed by the tenant's name or id without a foreign key: a
     * tenant added later under the same name (or id) must not inherit it. */
    [Q_TENANT_DEL_LOG] = "DELETE FROM integration_log WHERE tenant = ?1",
    [Q_TENANT_DEL_IDEM] =
        "DELETE FROM idempotency WHERE tenant_id = (SELECT id FROM tenants WHERE name = ?1)",
    [Q_TENANT_DEL_BULK] =
        "DELETE FROM bulk_jobs WHERE tenant_id = (SELECT id FROM tenants WHERE name = ?1)",
    [Q_TENANT_DEL] = "DELETE FROM tenants WHERE name = ?1",
    [Q_CONN_ADD] = "INSERT INTO connections(tenant_id, plugin, name, enabled, settings, "
                   "created_at, updated_at) VALUES(?1, ?2, ?3, 1, ?4, ?5, ?5)",
    [Q_CONN_GET] = "SELECT " CONN_COLS " FROM connections c JOIN tenants t "
                   "ON t.id = c.tenant_id WHERE t.name = ?1 AND c.name = ?2",
    [Q_CONN_LIST_ALL] = "SELECT " CONN_COLS " FROM connections c JOIN tenants t "
                        "ON t.id = c.tenant_id WHERE t.name > ?1 OR (t.name = ?1 AND c.name > ?2) "
                        "ORDER BY t.name, c.name LIMIT ?3",
    [Q_CONN_LIST_TENANT] = "SELECT " CONN_COLS " FROM connections c JOIN tenants t "
                           "ON t.id = c.tenant_id WHERE t.name = ?1 AND c.name > ?2 "
                           "ORDER BY c.name LIMIT ?3",
    [Q_CONN_UPDATE] = "UPDATE connections SET settings = ?2, updated_at = ?3 WHERE id = ?1 "
                      "AND (?4 IS NULL OR settings = ?4)",
    [Q_CONN_EXISTS] = "SELECT count(*) FROM connections WHERE id = ?1",
    [Q_CONN_ENABLE] = "UPDATE connections SET enabled = ?2, updated_at = ?3 WHERE id = ?1",
    [Q_CONN_DEL] = "DELETE FROM connections WHERE id = ?1",
    /* sequence_next reads, then writes: an upsert with RETURNING did both
     * in one statement, but RETURNING builds an ephemeral table (a b-tree
     * and a pager of its own opened and closed) per call, ~30k
     * instructions, twice per ERP create. */
    [Q_SEQ_GET] = "SELECT value FROM sequences WHERE tenant_id = ?1 AND name = ?2",
    [Q_SEQ_SET] = "UPDATE sequences SET value = ?3 WHERE tenant_id = ?1 AND name = ?2",
    [Q_SEQ_INIT] = "INSERT INTO sequences(tenant_id, name, value) VALUES(?1, ?2, 1)",
};

static bool fill_tenant(sqlite3_stmt *st, ah_tenant_row *r)
{
    bool oom = false;
    r->id = sqlite3_column_int64(st, 0);
    r->name = ah_sq_col_dup(st, 1, &oom);
    r->key_hash = ah_sq_col_dup(st, 2, &oom);
    r->created_at = ah_sq_col_dup(st, 3, &oom);
    return !oom;
}

static bool fill_conn(sqlite3_stmt *st, ah_connection_row *r)
{
    bool oom = false;
    r->id = sqlite3_column_int64(st, 0);
    r->tenant_id = sqlite3_column_int64(st, 1);
    r->tenant = ah_sq_col_dup(st, 2, &oom);
    r->plugin = ah_sq_col_dup(st, 3, &oom);
    r->name = ah_sq_col_dup(st, 4, &oom);
    r->enabled = sqlite3_column_int(st, 5) != 0;
    r->settings = ah_sq_col_dup(st, 6, &oom);
    r->created_at = ah_sq_col_dup(st, 7, &oom);
    r->updated_at = ah_sq_col_dup(st, 8, &oom);
    return !oom;
}

static void tenant_free_v(void *r)
{
    ah_tenant_row_free(r);
}

static void conn_free_v(void *r)
{
    ah_connection_row_free(r);
}

static bool fill_tenant_v(sqlite3_stmt *st, void *r)
{
    return fill_tenant(st, r);
}

static bool fill_conn_v(sqlite3_stmt *st, void *r)
{
    return fill_conn(st, r);
}

int ah_sq_tenant_add(ah_store *st, const char *name, const char *key_hash, int64_t *id_out)
{
    ah_sq_store *s = ah_sq(st);
    if (name == NULL || key_hash == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_TENANT_ADD);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, name);
        ah_sq_bind_text(q, 2, key_hash);
        ah_sq_bind_text(q, 3, now);
        rc = ah_sq_run(s, q, "tenant_add");
        if (rc == AH_STORE_OK && id_out != NULL)
            *id_out = sqlite3_last_insert_rowid(s->db);
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

static int tenant_get_by(ah_store *st, ah_sq_qid id, const char *key, ah_tenant_row *out)
{
    ah_sq_store *s = ah_sq(st);
    if (key == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, id);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, key);
        rc = ah_sq_get_one(s, q, out, fill_tenant_v, tenant_free_v, "tenant_get");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_tenant_get(ah_store *st, const char *name, ah_tenant_row *out)
{
    return tenant_get_by(st, Q_TENANT_GET, name, out);
}

int ah_sq_tenant_by_key_hash(ah_store *st, const char *key_hash, ah_tenant_row *out)
{
    return tenant_get_by(st, Q_TENANT_BY_HASH, key_hash, out);
}

/* A page's bounds as the list statements bind them. */
static const char *page_after(const ah_store_page *page)
{
    return page != NULL && page->after != NULL ? page->after : "";
}

static const char *page_after_name(const ah_store_page *page)
{
    return page != NULL && page->after_name != NULL ? page->after_name : "";
}

static int64_t page_limit(const ah_store_page *page)
{
    return page != NULL && page->limit > 0 ? page->limit : -1;
}

int ah_sq_tenant_list(ah_store *st, const ah_store_page *page, ah_tenant_cb cb, void *arg)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_rowvec v = {.elem = sizeof(ah_tenant_row)};
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_TENANT_LIST);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, page_after(page));
        sqlite3_bind_int64(q, 2, page_limit(page));
        rc = ah_sq_collect(s, q, &v, fill_tenant_v, tenant_free_v, "tenant_list");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_tenant_row *)v.items + i);
    ah_sq_rowvec_free(&v, tenant_free_v);
    return rc;
}

int ah_sq_tenant_remove(ah_store *st, const char *name)
{
    ah_sq_store *s = ah_sq(st);
    if (name == NULL)
        return AH_STORE_ERR;
    static const ah_sq_qid steps[] = {Q_TENANT_DEL_SEQ,  Q_TENANT_DEL_OUTBOX, Q_TENANT_DEL_LOG,
                                      Q_TENANT_DEL_IDEM, Q_TENANT_DEL_BULK,   Q_TENANT_DEL};
    ah_sq_lock(s);
    int rc = ah_sq_tx_begin(s);
    for (size_t i = 0; rc == AH_STORE_OK && i < sizeof steps / sizeof steps[0]; i++) {
        sqlite3_stmt *q = AH_SQ_GET(s, steps[i]);
        if (q == NULL) {
            rc = AH_STORE_ERR;
            break;
        }
        ah_sq_bind_text(q, 1, name);
        rc = ah_sq_run(s, q, "tenant_remove");
        if (rc == AH_STORE_OK && steps[i] == Q_TENANT_DEL && sqlite3_changes(s->db) == 0)
            rc = AH_STORE_NOT_FOUND;
        ah_sq_done(q);
    }
    if (rc == AH_STORE_OK)
        rc = ah_sq_tx_commit(s);
    else if (!sqlite3_get_autocommit(s->db))
        ah_sq_tx_rollback(s);
    ah_sq_unlock(s);
    return rc;
}

/* ---- connections ------------------------------------------------------------ */

int ah_sq_connection_add(ah_store *st, int64_t tenant_id, const char *plugin, const char *name,
                         const char *settings_json, int64_t *id_out)
{
    ah_sq_store *s = ah_sq(st);
    if (plugin == NULL || name == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_CONN_ADD);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, tenant_id);
        ah_sq_bind_text(q, 2, plugin);
        ah_sq_bind_text(q, 3, name);
        ah_sq_bind_text(q, 4, settings_json != NULL ? settings_json : "{}");
        ah_sq_bind_text(q, 5, now);
        rc = ah_sq_run(s, q, "connection_add");
        if (rc == AH_STORE_OK && id_out != NULL)
            *id_out = sqlite3_last_insert_rowid(s->db);
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_connection_get(ah_store *st, const char *tenant, const char *name, ah_connection_row *out)
{
    ah_sq_store *s = ah_sq(st);
    if (tenant == NULL || name == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_CONN_GET);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, tenant);
        ah_sq_bind_text(q, 2, name);
        rc = ah_sq_get_one(s, q, out, fill_conn_v, conn_free_v, "connection_get");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_connection_list(ah_store *st, const char *tenant, const ah_store_page *page,
                          ah_connection_cb cb, void *arg)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_rowvec v = {.elem = sizeof(ah_connection_row)};
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, tenant != NULL ? Q_CONN_LIST_TENANT : Q_CONN_LIST_ALL);
    if (q != NULL) {
        if (tenant != NULL) {
            ah_sq_bind_text(q, 1, tenant);
            ah_sq_bind_text(q, 2, page_after(page));
        } else {
            ah_sq_bind_text(q, 1, page_after(page));
            ah_sq_bind_text(q, 2, page_after_name(page));
        }
        sqlite3_bind_int64(q, 3, page_limit(page));
        rc = ah_sq_collect(s, q, &v, fill_conn_v, conn_free_v, "connection_list");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_connection_row *)v.items + i);
    ah_sq_rowvec_free(&v, conn_free_v);
    return rc;
}

int ah_sq_connection_update(ah_store *st, int64_t id, const char *settings_json,
                            const char *expected_json)
{
    ah_sq_store *s = ah_sq(st);
    char now[32];
    ah_now_iso(now);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_CONN_UPDATE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        ah_sq_bind_text(q, 2, settings_json != NULL ? settings_json : "{}");
        ah_sq_bind_text(q, 3, now);
        ah_sq_bind_text(q, 4, expected_json); /* NULL binds NULL */
        rc = ah_sq_change_by_id(s, q, "connection_update");
    }
    if (rc == AH_STORE_NOT_FOUND && expected_json != NULL) {
        /* No row, or not the settings the caller read. */
        sqlite3_stmt *e = AH_SQ_GET(s, Q_CONN_EXISTS);
        rc = AH_STORE_ERR;
        if (e != NULL) {
            sqlite3_bind_int64(e, 1, id);
            if (sqlite3_step(e) == SQLITE_ROW)
                rc = sqlite3_column_int64(e, 0) > 0 ? AH_STORE_EXISTS : AH_STORE_NOT_FOUND;
            ah_sq_done(e);
        }
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_connection_set_enabled(ah_store *st, int64_t id, bool enabled)
{
    ah_sq_store *s = ah_sq(st);
    char now[32];
    ah_now_iso(now);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_CONN_ENABLE);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int(q, 2, enabled ? 1 : 0);
        ah_sq_bind_text(q, 3, now);
        rc = ah_sq_change_by_id(s, q, "connection_set_enabled");
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_connection_remove(ah_store *st, int64_t id)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_CONN_DEL);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, id);
        rc = ah_sq_change_by_id(s, q, "connection_remove");
    }
    ah_sq_unlock(s);
    return rc;
}

/* ---- named sequences --------------------------------------------------------- */

int ah_sq_sequence_next(ah_store *st, int64_t tenant_id, const char *name, int64_t *out)
{
    ah_sq_store *s = ah_sq(st);
    if (name == NULL || out == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    /* The read and the write must see no other writer in between: inside a
     * scope the scope's transaction holds the write lock already (and the
     * one write needs no savepoint: it fails whole); alone, a transaction
     * of its own. */
    bool own_tx = s->scope_depth == 0;
    int rc = own_tx ? ah_sq_tx_begin(s) : AH_STORE_OK;
    if (rc != AH_STORE_OK) {
        ah_sq_unlock(s);
        return rc;
    }
    int64_t value = 0;
    bool found = false;
    rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_SEQ_GET);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, tenant_id);
        ah_sq_bind_text(q, 2, name);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            found = true;
            value = sqlite3_column_int64(q, 0);
            rc = AH_STORE_OK;
        } else if (r == SQLITE_DONE) {
            rc = AH_STORE_OK;
        } else {
            rc = ah_sq_step_error(s, r, "sequence_next");
        }
        ah_sq_done(q);
    }
    if (rc == AH_STORE_OK) {
        q = AH_SQ_GET(s, found ? Q_SEQ_SET : Q_SEQ_INIT);
        rc = AH_STORE_ERR;
        if (q != NULL) {
            sqlite3_bind_int64(q, 1, tenant_id);
            ah_sq_bind_text(q, 2, name);
            if (found)
                sqlite3_bind_int64(q, 3, value + 1);
            rc = ah_sq_run(s, q, "sequence_next");
            ah_sq_done(q);
        }
    }
    if (own_tx) {
        if (rc == AH_STORE_OK)
            rc = ah_sq_tx_commit(s);
        else
            ah_sq_tx_rollback(s);
    }
    if (rc == AH_STORE_OK)
        *out = found ? value + 1 : 1;
    ah_sq_unlock(s);
    return rc;
}
