/* SPDX-License-Identifier: Apache-2.0 */
/* Several instances on one store (issue 14): the change log they poll,
 * their registrations and heartbeats, and the leases they hold as the
 * operators see them. The clock is SQLite's (the machine's). Rows are
 * copied and handed to the callbacks after the lock is released. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW_MS "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
#define ISO_NOW "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

static const char *const q_sql[Q_COUNT] = {
    [Q_CHANGE_ADD] = "INSERT INTO change_log(kind, subject, detail, origin, at) "
                     "VALUES(?1, ?2, ?3, ?4, " ISO_NOW ")",
    [Q_CHANGE_AFTER] = "SELECT id, kind, subject, detail, origin, at FROM change_log "
                       "WHERE id > ?1 ORDER BY id LIMIT ?2",
    [Q_CHANGE_LAST] = "SELECT coalesce(max(id), 0) FROM change_log",
    [Q_CHANGE_PRUNE] = "DELETE FROM change_log WHERE at < ?1",
    [Q_INSTANCE_BEAT] = "INSERT INTO instances(id, version, host, pid, started_at, heartbeat_ms) "
                        "VALUES(?1, ?2, ?3, ?4, ?5, " NOW_MS ") ON CONFLICT(id) DO UPDATE SET "
                        "version = excluded.version, host = excluded.host, pid = excluded.pid, "
                        "started_at = excluded.started_at, heartbeat_ms = excluded.heartbeat_ms",
    [Q_INSTANCE_LIST] = "SELECT id, version, host, pid, started_at, "
                        "strftime('%Y-%m-%dT%H:%M:%fZ', heartbeat_ms / 1000.0, 'unixepoch'), "
                        NOW_MS " - heartbeat_ms FROM instances "
                        "WHERE ?1 = 0 OR heartbeat_ms > " NOW_MS " - ?1 ORDER BY started_at, id",
    [Q_INSTANCE_REMOVE] = "DELETE FROM instances WHERE id = ?1 OR (?2 > 0 AND heartbeat_ms < "
                          NOW_MS " - ?2)",
    [Q_LEASE_LIST] = "SELECT name, owner, token, CASE WHEN expires_ms = 0 THEN -1 ELSE "
                     "expires_ms - " NOW_MS " END FROM leases ORDER BY name",
    /* substr(): a prefix match without LIKE's wildcards. */
    [Q_LEASE_PRUNE] = "DELETE FROM leases WHERE substr(name, 1, length(?1)) = ?1 AND "
                      "expires_ms < " NOW_MS " - ?2",
};

/* A copied row: up to 7 columns, text or integer. */
#define NCOL 7
typedef struct gen_row {
    char *t[NCOL];
    int64_t i[NCOL];
} gen_row;

static bool fill_gen(sqlite3_stmt *q, void *row)
{
    gen_row *r = row;
    bool oom = false;
    memset(r, 0, sizeof *r);
    int n = sqlite3_column_count(q);
    for (int c = 0; c < n && c < NCOL; c++) {
        r->i[c] = sqlite3_column_int64(q, c);
        if (sqlite3_column_type(q, c) != SQLITE_NULL)
            r->t[c] = ah_sq_col_dup(q, c, &oom);
    }
    return !oom;
}

static void free_gen(void *row)
{
    gen_row *r = row;
    for (int c = 0; c < NCOL; c++)
        free(r->t[c]);
}

/* Runs q (bound) and collects its rows; the caller holds the lock. */
static int collect(ah_sq_store *s, sqlite3_stmt *q, ah_sq_rowvec *v, const char *what)
{
    int rc = ah_sq_collect(s, q, v, fill_gen, free_gen, what);
    ah_sq_done(q);
    return rc;
}

int ah_sq_change_add(ah_store *st, const char *kind, const char *subject, const char *detail,
                     const char *origin)
{
    ah_sq_store *s = ah_sq(st);
    if (kind == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_CHANGE_ADD);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, kind);
        ah_sq_bind_text(q, 2, subject);
        ah_sq_bind_text(q, 3, detail);
        ah_sq_bind_text(q, 4, origin);
        rc = ah_sq_run(s, q, "change_add");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_change_after(ah_store *st, int64_t after_id, int limit, ah_change_cb cb, void *arg)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_rowvec v = {NULL, 0, 0, sizeof(gen_row)};
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_CHANGE_AFTER);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, after_id);
        sqlite3_bind_int(q, 2, limit > 0 && limit <= 1000 ? limit : 100);
        rc = collect(s, q, &v, "change_after");
    }
    ah_sq_unlock(s);
    for (size_t k = 0; rc == AH_STORE_OK && k < v.n; k++) {
        gen_row *g = (gen_row *)v.items + k;
        ah_change_row row = {.id = g->i[0], .kind = g->t[1], .subject = g->t[2],
                             .detail = g->t[3], .origin = g->t[4], .at = g->t[5]};
        cb(arg, &row);
    }
    ah_sq_rowvec_free(&v, free_gen);
    return rc;
}

int ah_sq_change_last(ah_store *st, int64_t *id_out)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_CHANGE_LAST);
    if (q != NULL) {
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            if (id_out != NULL)
                *id_out = sqlite3_column_int64(q, 0);
            rc = AH_STORE_OK;
        } else {
            rc = ah_sq_step_error(s, r, "change_last");
        }
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_change_prune(ah_store *st, const char *before, int64_t *n_out)
{
    ah_sq_store *s = ah_sq(st);
    if (n_out != NULL)
        *n_out = 0;
    if (before == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_CHANGE_PRUNE);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, before);
        rc = ah_sq_exec_changes(s, q, "change_prune", n_out);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_instance_beat(ah_store *st, const char *id, const char *version, const char *host,
                        int64_t pid, const char *started_at)
{
    ah_sq_store *s = ah_sq(st);
    if (id == NULL || version == NULL || started_at == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_INSTANCE_BEAT);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, id);
        ah_sq_bind_text(q, 2, version);
        ah_sq_bind_text(q, 3, host);
        sqlite3_bind_int64(q, 4, pid);
        ah_sq_bind_text(q, 5, started_at);
        rc = ah_sq_run(s, q, "instance_beat");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_instance_list(ah_store *st, int64_t max_age_ms, ah_instance_cb cb, void *arg)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_rowvec v = {NULL, 0, 0, sizeof(gen_row)};
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_INSTANCE_LIST);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, max_age_ms < 0 ? 0 : max_age_ms);
        rc = collect(s, q, &v, "instance_list");
    }
    ah_sq_unlock(s);
    for (size_t k = 0; rc == AH_STORE_OK && k < v.n; k++) {
        gen_row *g = (gen_row *)v.items + k;
        ah_instance_row row = {.id = g->t[0], .version = g->t[1], .host = g->t[2],
                               .pid = g->i[3], .started_at = g->t[4], .heartbeat = g->t[5],
                               .age_ms = g->i[6]};
        cb(arg, &row);
    }
    ah_sq_rowvec_free(&v, free_gen);
    return rc;
}

int ah_sq_instance_remove(ah_store *st, const char *id, int64_t stale_ms)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_INSTANCE_REMOVE);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, id != NULL ? id : "");
        sqlite3_bind_int64(q, 2, stale_ms < 0 ? 0 : stale_ms);
        rc = ah_sq_run(s, q, "instance_remove");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_lease_list(ah_store *st, ah_lease_cb cb, void *arg)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_rowvec v = {NULL, 0, 0, sizeof(gen_row)};
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_LEASE_LIST);
    if (q != NULL)
        rc = collect(s, q, &v, "lease_list");
    ah_sq_unlock(s);
    for (size_t k = 0; rc == AH_STORE_OK && k < v.n; k++) {
        gen_row *g = (gen_row *)v.items + k;
        ah_lease_row row = {.name = g->t[0], .owner = g->t[1], .token = g->i[2],
                            .expires_in_ms = g->i[3]};
        cb(arg, &row);
    }
    ah_sq_rowvec_free(&v, free_gen);
    return rc;
}

int ah_sq_lease_prune(ah_store *st, const char *prefix, int64_t expired_ms, int64_t *n_out)
{
    ah_sq_store *s = ah_sq(st);
    if (n_out != NULL)
        *n_out = 0;
    if (prefix == NULL || prefix[0] == '\0' || expired_ms < 0)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_LEASE_PRUNE);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, prefix);
        sqlite3_bind_int64(q, 2, expired_ms);
        rc = ah_sq_exec_changes(s, q, "lease_prune", n_out);
    }
    ah_sq_unlock(s);
    return rc;
}
