/* SPDX-License-Identifier: Apache-2.0 */
/* The integration log. */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_COLS                                                               \
    "id, at, tenant, source, plugin, action, method, path, status, "           \
    "duration_s, body, correlation_id, with_request, request_body"

static const char *const q_sql[P_COUNT] = {
    [P_LOG_ADD] = "INSERT INTO integration_log(at, tenant, source, plugin, action, method, "
                  "path, status, duration_s, body, correlation_id, with_request, "
                  "request_body) "
                  "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    [P_LOG_PRUNE] = "DELETE FROM integration_log WHERE id IN (SELECT id FROM integration_log "
                    "WHERE at < $1 ORDER BY at LIMIT $2)",
};

enum { LQ_TENANT = 1, LQ_SOURCE = 2, LQ_ACTION = 4, LQ_STATUS = 8, LQ_SINCE = 16,
       LQ_UNTIL = 32 };

static bool fill_log(const PGresult *r, int i, void *row)
{
    ah_log_entry *e = row;
    bool oom = false;
    e->id = ah_pg_int(r, i, 0);
    e->at = ah_pg_dup(r, i, 1, &oom);
    e->tenant = ah_pg_dup(r, i, 2, &oom);
    e->source = ah_pg_dup(r, i, 3, &oom);
    e->plugin = ah_pg_dup(r, i, 4, &oom);
    e->action = ah_pg_dup(r, i, 5, &oom);
    e->method = ah_pg_dup(r, i, 6, &oom);
    e->path = ah_pg_dup(r, i, 7, &oom);
    e->status = (int)ah_pg_int(r, i, 8);
    e->duration_s = PQgetisnull(r, i, 9) ? 0 : strtod(PQgetvalue(r, i, 9), NULL);
    e->body = ah_pg_dup(r, i, 10, &oom);
    e->correlation_id = ah_pg_dup(r, i, 11, &oom);
    e->with_request = ah_pg_bool(r, i, 12);
    e->request_body = ah_pg_dup(r, i, 13, &oom);
    return !oom;
}

static void log_free_v(void *r)
{
    ah_log_entry_free(r);
}

int ah_pg_log_add(ah_store *st, const ah_log_entry *e)
{
    ah_pg_store *s = ah_pg(st);
    if (e == NULL)
        return AH_STORE_ERR;
    char at[32];
    if (e->at == NULL) {
        ah_now_iso(at);
    } else if (ah_iso_normalize(e->at, at) != 0) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "log_add: 'at' is not an ISO-8601 time");
        return AH_STORE_ERR;
    }
    char dur[64];
    snprintf(dur, sizeof dur, "%.17g", e->duration_s);
    ah_pg_params p = {0};
    ah_pg_p_text(&p, at);
    ah_pg_p_text(&p, e->tenant);
    ah_pg_p_text(&p, e->source != NULL ? e->source : "core");
    ah_pg_p_text(&p, e->plugin);
    ah_pg_p_text(&p, e->action != NULL ? e->action : "");
    ah_pg_p_text(&p, e->method);
    ah_pg_p_text(&p, e->path);
    ah_pg_p_int(&p, e->status);
    ah_pg_p_text(&p, dur);
    ah_pg_p_text(&p, e->body);
    ah_pg_p_text(&p, e->correlation_id);
    ah_pg_p_bool(&p, e->with_request);
    ah_pg_p_text(&p, e->with_request ? e->request_body : NULL);
    /* Nobody reads the row back in the request that writes it: inside a
     * scope (a request's group) it goes with the next statement or the
     * COMMIT, in the same round trip. */
    ah_pg_lock(s);
    int rc = AH_PG_DEFER(s, P_LOG_ADD, &p, "log_add");
    ah_pg_unlock(s);
    return rc;
}

/* Parameters numbered in the order they are bound (log_query). */
static void log_query_sql(unsigned mask, char *sql, size_t n)
{
    /* A row's REQUEST entry has status 0: no status filter selects it. */
    const char *action = (mask & LQ_STATUS)
                             ? " AND action = $%d"
                             : " AND (action = $%1$d OR (with_request AND $%1$d = 'REQUEST'))";
    const char *const cond[] = {" AND tenant = $%d", " AND source = $%d", action,
                                " AND status = $%d", " AND at >= $%d",    " AND at < $%d"};
    char where[256] = "";
    int k = 1;
    for (int b = 0; b < 6; b++)
        if (mask & (1u << b)) {
            char one[96];
            snprintf(one, sizeof one, cond[b], k++);
            strncat(where, one, sizeof where - strlen(where) - 1);
        }
    snprintf(sql, n,
             "SELECT " LOG_COLS " FROM integration_log WHERE true%s "
             "ORDER BY at DESC, id DESC LIMIT $%d",
             where, k);
}

int ah_pg_log_query(ah_store *st, const ah_log_filter *f, ah_log_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    ah_log_filter none = {0};
    if (f == NULL)
        f = &none;
    unsigned mask = 0;
    char since[32], until[32];
    ah_pg_params p = {0};
    if (f->tenant != NULL) {
        mask |= LQ_TENANT;
        ah_pg_p_text(&p, f->tenant);
    }
    if (f->source != NULL) {
        mask |= LQ_SOURCE;
        ah_pg_p_text(&p, f->source);
    }
    if (f->action != NULL) {
        mask |= LQ_ACTION;
        ah_pg_p_text(&p, f->action);
    }
    if (f->status != 0) {
        mask |= LQ_STATUS;
        ah_pg_p_int(&p, f->status);
    }
    if (f->since != NULL) {
        if (ah_iso_normalize(f->since, since) != 0) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store",
                   "log_query: since is not an ISO-8601 date or time");
            return AH_STORE_ERR;
        }
        mask |= LQ_SINCE;
        ah_pg_p_text(&p, since);
    }
    if (f->until != NULL) {
        if (ah_iso_normalize(f->until, until) != 0) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store",
                   "log_query: until is not an ISO-8601 date or time");
            return AH_STORE_ERR;
        }
        mask |= LQ_UNTIL;
        ah_pg_p_text(&p, until);
    }
    ah_pg_p_int(&p, f->limit > 0 ? f->limit : 100);
    char sql[1024], name[24];
    log_query_sql(mask, sql, sizeof sql);
    snprintf(name, sizeof name, "ah_lq%u", mask);

    ah_pg_rowvec v = {.elem = sizeof(ah_log_entry)};
    int rc;
    s = ah_pg_read_lock(s);
    PGresult *r = ah_pg_run(s, name, &s->lq_prepared[mask], sql, &p, "log_query", &rc);
    if (r != NULL) {
        rc = ah_pg_collect(s, r, &v, fill_log, log_free_v, "log_query");
        PQclear(r);
    }
    ah_pg_read_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        ah_log_rows_expand((ah_log_entry *)v.items, v.n, f, f->limit > 0 ? f->limit : 100, cb,
                           arg);
    ah_pg_rowvec_free(&v, log_free_v);
    return rc;
}

int ah_pg_log_prune(ah_store *st, const char *before, int64_t *n_out)
{
    ah_pg_store *s = ah_pg(st);
    if (n_out != NULL)
        *n_out = 0;
    char b[32];
    if (before == NULL || ah_iso_normalize(before, b) != 0)
        return AH_STORE_ERR;
    const char *texts[] = {b};
    return AH_PG_DELETE_BATCHED(s, P_LOG_PRUNE, texts, 1, "log_prune", n_out);
}
