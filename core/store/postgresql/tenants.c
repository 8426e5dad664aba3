/* SPDX-License-Identifier: Apache-2.0 */
/* Tenants, their connections and their named sequences. */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONN_COLS                                                              \
    "c.id, c.tenant_id, t.name, c.plugin, c.name, c.enabled, c.settings, "     \
    "c.created_at, c.updated_at"

static const char *const q_sql[P_COUNT] = {
    [P_TENANT_ADD] = "INSERT INTO tenants(name, key_hash, created_at) VALUES($1, $2, $3) "
                     "RETURNING id",
    [P_TENANT_GET] = "SELECT id, name, key_hash, created_at FROM tenants WHERE name = $1",
    [P_TENANT_BY_HASH] =
        "SELECT id, name, key_hash, created_at FROM tenants WHERE key_hash = $1",
    /* Lists page by name in byte order (ah_store_page), as SQLite's: $1 ''
     * for the first page (no name is empty). */
    [P_TENANT_LIST] = "SELECT id, name, key_hash, created_at FROM tenants "
                      "WHERE name COLLATE \"C\" > $1 ORDER BY name COLLATE \"C\" LIMIT $2",
    [P_TENANT_DEL_SEQ] =
        "DELETE FROM sequences WHERE tenant_id = (SELECT id FROM tenants WHERE name = $1)",
    [P_TENANT_DEL_OUTBOX] =
        "DELETE FROM outbox WHERE tenant_id = (SELECT id FROM tenants WHERE name = $1)",
    [P_TENANT_DEL_LOG] = "DELETE FROM integration_log WHERE tenant = $1",
    [P_TENANT_DEL_IDEM] =
        "DELETE FROM idempotency WHERE tenant_id = (SELECT id FROM tenants WHERE name = $1)",
    [P_TENANT_DEL_BULK] =
        "DELETE FROM bulk_jobs WHERE tenant_id = (SELECT id FROM tenants WHERE name = $1)",
    [P_TENANT_DEL] = "DELETE FROM tenants WHERE name = $1",
    [P_CONN_ADD] = "INSERT INTO connections(tenant_id, plugin, name, enabled, settings, "
                   "created_at, updated_at) VALUES($1, $2, $3, true, $4, $5, $5) RETURNING id",
    [P_CONN_GET] = "SELECT " CONN_COLS " FROM connections c JOIN tenants t "
                   "ON t.id = c.tenant_id WHERE t.name = $1 AND c.name = $2",
    [P_CONN_LIST_ALL] = "SELECT " CONN_COLS " FROM connections c JOIN tenants t "
                        "ON t.id = c.tenant_id WHERE (t.name COLLATE \"C\", c.name COLLATE \"C\") > "
                        "($1, $2) ORDER BY t.name COLLATE \"C\", c.name COLLATE \"C\" LIMIT $3",
    [P_CONN_LIST_TENANT] = "SELECT " CONN_COLS " FROM connections c JOIN tenants t "
                           "ON t.id = c.tenant_id WHERE t.name = $1 AND c.name COLLATE \"C\" > $2 "
                           "ORDER BY c.name COLLATE \"C\" LIMIT $3",
    [P_CONN_UPDATE] = "UPDATE connections SET settings = $2, updated_at = $3 WHERE id = $1 "
                      "AND ($4::text IS NULL OR settings = $4::text)",
    [P_CONN_EXISTS] = "SELECT count(*) FROM connections WHERE id = $1",
    [P_CONN_ENABLE] = "UPDATE connections SET enabled = $2, updated_at = $3 WHERE id = $1",
    [P_CONN_DEL] = "DELETE FROM connections WHERE id = $1",
    [P_SEQ_NEXT] = "INSERT INTO sequences(tenant_id, name, value) VALUES($1, $2, 1) "
                   "ON CONFLICT(tenant_id, name) DO UPDATE SET value = sequences.value + 1 "
                   "RETURNING value",
    /* sequence_next_then (pg_int.h, AH_PG_SEQ_PAIR_CTES). */
    [P_SEQ_NEXT_THEN] = AH_PG_SEQ_PAIR_CTES
        "SELECT a.value, coalesce((SELECT value FROM b), 0) FROM a",
};

static bool fill_tenant(const PGresult *r, int i, void *row)
{
    ah_tenant_row *t = row;
    bool oom = false;
    t->id = ah_pg_int(r, i, 0);
    t->name = ah_pg_dup(r, i, 1, &oom);
    t->key_hash = ah_pg_dup(r, i, 2, &oom);
    t->created_at = ah_pg_dup(r, i, 3, &oom);
    return !oom;
}

static bool fill_conn(const PGresult *r, int i, void *row)
{
    ah_connection_row *c = row;
    bool oom = false;
    c->id = ah_pg_int(r, i, 0);
    c->tenant_id = ah_pg_int(r, i, 1);
    c->tenant = ah_pg_dup(r, i, 2, &oom);
    c->plugin = ah_pg_dup(r, i, 3, &oom);
    c->name = ah_pg_dup(r, i, 4, &oom);
    c->enabled = ah_pg_bool(r, i, 5);
    c->settings = ah_pg_dup(r, i, 6, &oom);
    c->created_at = ah_pg_dup(r, i, 7, &oom);
    c->updated_at = ah_pg_dup(r, i, 8, &oom);
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

/* An INSERT ... RETURNING id: *id_out (may be NULL) receives it. */
static int insert_id(ah_pg_store *s, PGresult *r, int rc, int64_t *id_out)
{
    if (r != NULL) {
        if (id_out != NULL && PQntuples(r) == 1)
            *id_out = ah_pg_int(r, 0, 0);
        PQclear(r);
    }
    return rc;
}

int ah_pg_tenant_add(ah_store *st, const char *name, const char *key_hash, int64_t *id_out)
{
    ah_pg_store *s = ah_pg(st);
    if (name == NULL || key_hash == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_pg_params p = {0};
    ah_pg_p_text(&p, name);
    ah_pg_p_text(&p, key_hash);
    ah_pg_p_text(&p, now);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_TENANT_ADD, &p, "tenant_add", &rc);
    rc = insert_id(s, r, rc, id_out);
    ah_pg_unlock(s);
    return rc;
}

static int tenant_get_by(ah_store *st, bool by_hash, const char *key, ah_tenant_row *out)
{
    ah_pg_store *s = ah_pg(st);
    if (key == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_pg_params p = {0};
    ah_pg_p_text(&p, key);
    int rc;
    ah_pg_lock(s);
    PGresult *r = by_hash ? AH_PG_RUN(s, P_TENANT_BY_HASH, &p, "tenant_get", &rc)
                          : AH_PG_RUN(s, P_TENANT_GET, &p, "tenant_get", &rc);
    if (r != NULL) {
        rc = ah_pg_one(s, r, out, fill_tenant, tenant_free_v, "tenant_get");
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_tenant_get(ah_store *st, const char *name, ah_tenant_row *out)
{
    return tenant_get_by(st, false, name, out);
}

int ah_pg_tenant_by_key_hash(ah_store *st, const char *key_hash, ah_tenant_row *out)
{
    return tenant_get_by(st, true, key_hash, out);
}

/* A page's bounds as the list statements bind them. */
static const char *page_after(const ah_store_page *page)
{
    return page != NULL && page->after != NULL ? page->after : "";
}

static int64_t page_limit(const ah_store_page *page)
{
    return page != NULL && page->limit > 0 ? page->limit : INT64_MAX;
}

int ah_pg_tenant_list(ah_store *st, const ah_store_page *page, ah_tenant_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_rowvec v = {.elem = sizeof(ah_tenant_row)};
    ah_pg_params p = {0};
    int rc;
    ah_pg_p_text(&p, page_after(page));
    ah_pg_p_int(&p, page_limit(page));
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_TENANT_LIST, &p, "tenant_list", &rc);
    if (r != NULL) {
        rc = ah_pg_collect(s, r, &v, fill_tenant, tenant_free_v, "tenant_list");
        PQclear(r);
    }
    ah_pg_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_tenant_row *)v.items + i);
    ah_pg_rowvec_free(&v, tenant_free_v);
    return rc;
}

int ah_pg_tenant_remove(ah_store *st, const char *name)
{
    ah_pg_store *s = ah_pg(st);
    if (name == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, name);
    ah_pg_lock(s);
    int rc = ah_pg_tx_begin(s);
    if (rc == AH_STORE_OK)
        rc = AH_PG_EXEC(s, P_TENANT_DEL_SEQ, &p, "tenant_remove", NULL);
    if (rc == AH_STORE_OK)
        rc = AH_PG_EXEC(s, P_TENANT_DEL_OUTBOX, &p, "tenant_remove", NULL);
    if (rc == AH_STORE_OK)
        rc = AH_PG_EXEC(s, P_TENANT_DEL_LOG, &p, "tenant_remove", NULL);
    if (rc == AH_STORE_OK)
        rc = AH_PG_EXEC(s, P_TENANT_DEL_IDEM, &p, "tenant_remove", NULL);
    if (rc == AH_STORE_OK)
        rc = AH_PG_EXEC(s, P_TENANT_DEL_BULK, &p, "tenant_remove", NULL);
    if (rc == AH_STORE_OK)
        rc = AH_PG_CHANGE(s, P_TENANT_DEL, &p, "tenant_remove");
    if (rc == AH_STORE_OK)
        rc = ah_pg_tx_commit(s);
    else
        ah_pg_tx_rollback(s);
    ah_pg_unlock(s);
    return rc;
}

/* ---- connections ------------------------------------------------------------ */

int ah_pg_connection_add(ah_store *st, int64_t tenant_id, const char *plugin, const char *name,
                         const char *settings_json, int64_t *id_out)
{
    ah_pg_store *s = ah_pg(st);
    if (plugin == NULL || name == NULL)
        return AH_STORE_ERR;
    char now[32];
    ah_now_iso(now);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, plugin);
    ah_pg_p_text(&p, name);
    ah_pg_p_text(&p, settings_json != NULL ? settings_json : "{}");
    ah_pg_p_text(&p, now);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_CONN_ADD, &p, "connection_add", &rc);
    rc = insert_id(s, r, rc, id_out);
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_connection_get(ah_store *st, const char *tenant, const char *name, ah_connection_row *out)
{
    ah_pg_store *s = ah_pg(st);
    if (tenant == NULL || name == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_pg_params p = {0};
    ah_pg_p_text(&p, tenant);
    ah_pg_p_text(&p, name);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_CONN_GET, &p, "connection_get", &rc);
    if (r != NULL) {
        rc = ah_pg_one(s, r, out, fill_conn, conn_free_v, "connection_get");
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_connection_list(ah_store *st, const char *tenant, const ah_store_page *page,
                          ah_connection_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_rowvec v = {.elem = sizeof(ah_connection_row)};
    ah_pg_params p = {0};
    int rc;
    if (tenant != NULL) {
        ah_pg_p_text(&p, tenant);
        ah_pg_p_text(&p, page_after(page));
    } else {
        ah_pg_p_text(&p, page_after(page));
        ah_pg_p_text(&p, page != NULL && page->after_name != NULL ? page->after_name : "");
    }
    ah_pg_p_int(&p, page_limit(page));
    ah_pg_lock(s);
    PGresult *r = tenant != NULL ? AH_PG_RUN(s, P_CONN_LIST_TENANT, &p, "connection_list", &rc)
                                 : AH_PG_RUN(s, P_CONN_LIST_ALL, &p, "connection_list", &rc);
    if (r != NULL) {
        rc = ah_pg_collect(s, r, &v, fill_conn, conn_free_v, "connection_list");
        PQclear(r);
    }
    ah_pg_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_connection_row *)v.items + i);
    ah_pg_rowvec_free(&v, conn_free_v);
    return rc;
}

int ah_pg_connection_update(ah_store *st, int64_t id, const char *settings_json,
                            const char *expected_json)
{
    ah_pg_store *s = ah_pg(st);
    char now[32];
    ah_now_iso(now);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, id);
    ah_pg_p_text(&p, settings_json != NULL ? settings_json : "{}");
    ah_pg_p_text(&p, now);
    ah_pg_p_text(&p, expected_json);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_CONN_UPDATE, &p, "connection_update");
    if (rc == AH_STORE_NOT_FOUND && expected_json != NULL) {
        /* No row, or not the settings the caller read. */
        ah_pg_params q = {0};
        ah_pg_p_int(&q, id);
        int qrc;
        PGresult *r = AH_PG_RUN(s, P_CONN_EXISTS, &q, "connection_update", &qrc);
        if (r == NULL || PQntuples(r) != 1)
            rc = AH_STORE_ERR;
        else if (ah_pg_int(r, 0, 0) > 0)
            rc = AH_STORE_EXISTS;
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_connection_set_enabled(ah_store *st, int64_t id, bool enabled)
{
    ah_pg_store *s = ah_pg(st);
    char now[32];
    ah_now_iso(now);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, id);
    ah_pg_p_bool(&p, enabled);
    ah_pg_p_text(&p, now);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_CONN_ENABLE, &p, "connection_set_enabled");
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_connection_remove(ah_store *st, int64_t id)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, id);
    ah_pg_lock(s);
    int rc = AH_PG_CHANGE(s, P_CONN_DEL, &p, "connection_remove");
    ah_pg_unlock(s);
    return rc;
}

/* ---- named sequences --------------------------------------------------------- */

int ah_pg_sequence_next(ah_store *st, int64_t tenant_id, const char *name, int64_t *out)
{
    ah_pg_store *s = ah_pg(st);
    if (name == NULL || out == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, name);
    /* One statement that no constraint can refuse (ON CONFLICT, no
     * foreign key): inside a request's scope it needs no savepoint of its
     * own, unless its name is not plain ASCII (text the server could
     * refuse as not UTF-8). */
    bool ascii = true;
    for (const unsigned char *c = (const unsigned char *)name; *c && ascii; c++)
        ascii = *c < 0x80;
    int rc;
    ah_pg_lock(s);
    PGresult *r = ascii ? AH_PG_RUN_BARE(s, P_SEQ_NEXT, &p, "sequence_next", &rc)
                        : AH_PG_RUN(s, P_SEQ_NEXT, &p, "sequence_next", &rc);
    if (r != NULL) {
        if (PQntuples(r) == 1) {
            *out = ah_pg_int(r, 0, 0);
            ah_pg_seq_seen(s, tenant_id, name, *out);
        } else {
            rc = AH_STORE_ERR;
        }
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}

static size_t seq_slot(int64_t tenant_id, const char *name)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)tenant_id;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        h = (h ^ *c) * 1099511628211ull;
    return (size_t)(h % 16);
}

void ah_pg_seq_seen(ah_pg_store *s, int64_t tenant_id, const char *name, int64_t value)
{
    if (name == NULL || strlen(name) >= sizeof s->seq_last[0].name)
        return;
    size_t i = seq_slot(tenant_id, name);
    s->seq_last[i].tenant_id = tenant_id;
    s->seq_last[i].value = value;
    snprintf(s->seq_last[i].name, sizeof s->seq_last[i].name, "%s", name);
}

bool ah_pg_seq_last(ah_pg_store *s, int64_t tenant_id, const char *name, int64_t *value)
{
    if (name == NULL)
        return false;
    size_t i = seq_slot(tenant_id, name);
    if (s->seq_last[i].value <= 0 || s->seq_last[i].tenant_id != tenant_id ||
        strcmp(s->seq_last[i].name, name) != 0)
        return false;
    *value = s->seq_last[i].value;
    return true;
}

static bool seq_name_ascii(const char *name)
{
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        if (*c >= 0x80)
            return false;
    return true;
}

bool ah_pg_seq_pair_fits(const char *name, const char *then_name)
{
    return name != NULL && then_name != NULL && strcmp(name, then_name) != 0 &&
           seq_name_ascii(name) && seq_name_ascii(then_name);
}

int ah_pg_sequence_next_then(ah_store *st, int64_t tenant_id, const char *name,
                             const char *then_name, int64_t *out, int64_t *then_out)
{
    if (name == NULL || out == NULL || (then_name != NULL && then_out == NULL))
        return AH_STORE_ERR;
    if (then_out != NULL)
        *then_out = 0;
    /* The two calls as they were: one name only, the same name twice (one
     * statement cannot update a row twice), or a name the server could
     * refuse as not UTF-8 (sequence_next gives it a savepoint). */
    if (!ah_pg_seq_pair_fits(name, then_name)) {
        int rc = ah_pg_sequence_next(st, tenant_id, name, out);
        if (rc == AH_STORE_OK && then_name != NULL && *out == 1)
            rc = ah_pg_sequence_next(st, tenant_id, then_name, then_out);
        return rc;
    }
    ah_pg_store *s = ah_pg(st);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, name);
    ah_pg_p_text(&p, then_name);
    int rc;
    ah_pg_lock(s);
    /* No savepoint, as for one sequence: nothing in it can be refused. */
    PGresult *r = AH_PG_RUN_BARE(s, P_SEQ_NEXT_THEN, &p, "sequence_next_then", &rc);
    if (r != NULL) {
        if (PQntuples(r) == 1) {
            *out = ah_pg_int(r, 0, 0);
            *then_out = ah_pg_int(r, 0, 1);
            ah_pg_seq_seen(s, tenant_id, name, *out);
            if (*then_out > 0)
                ah_pg_seq_seen(s, tenant_id, then_name, *then_out);
        } else {
            rc = AH_STORE_ERR;
        }
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}
