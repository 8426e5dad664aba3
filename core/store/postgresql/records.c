/* SPDX-License-Identifier: Apache-2.0 */
/* Unified records and sync cursors: the page upsert (one transaction per
 * page and its cursor), lookups and the filtered, paged query. Mirrors
 * core/store/sqlite/records.c: the same ids, content hash and results. */
#include "pg_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"

#define AH_REC_ID_PREFIX "rec_"
#define AH_REC_ID_RANDOM_BYTES 6
#define REC_COLS                                                               \
    "r.id, r.connection_id, r.type, r.remote_id, r.updated_at, r.raw, "        \
    "r.fields, r.created_at, r.stored_at"

static const char *const q_sql[P_COUNT] = {
    [P_REC_LOOKUP] = "SELECT id, content_hash, remote_deleted_at IS NOT NULL FROM records "
                     "WHERE connection_id = $1 AND type = $2 AND remote_id = $3",
    [P_REC_INSERT] = "INSERT INTO records(id, connection_id, type, remote_id, updated_at, "
                     "raw, fields, content_hash, created_at, stored_at) "
                     "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) "
                     "ON CONFLICT(connection_id, type, remote_id) DO NOTHING RETURNING id",
    [P_REC_UPDATE] = "UPDATE records SET updated_at = $2, raw = $3, fields = $4, "
                     "remote_deleted_at = NULL, "
                     "content_hash = $5, stored_at = $6 WHERE id = $1",
    [P_REC_GET] = "SELECT " REC_COLS " FROM records r "
                  "WHERE r.connection_id = $1 AND r.type = $2 AND r.remote_id = $3",
    [P_REC_GET_BY_ID] = "SELECT " REC_COLS " FROM records r JOIN connections c "
                        "ON c.id = r.connection_id WHERE r.id = $1 AND c.tenant_id = $2",
    [P_REC_COUNT] = "SELECT count(*) FROM records WHERE connection_id = $1 AND type = $2",
    [P_REC_COUNT_ALL] = "SELECT count(*) FROM records WHERE connection_id = $1",
    [P_CUR_GET] = "SELECT value FROM cursors WHERE connection_id = $1 AND key = $2",
    [P_CUR_SET] = "INSERT INTO cursors(connection_id, key, value) VALUES($1, $2, $3) "
                  "ON CONFLICT(connection_id, key) DO UPDATE SET value = excluded.value",
    /* By connection, so that the (connection_id, type, id) index finds the
     * type's rows without scanning every record. */
    [P_REC_PRUNE] = "DELETE FROM records WHERE connection_id IN (SELECT id FROM connections) "
                    "AND type = $1 AND ah_try_ts(updated_at) < ($2)::timestamptz "
                    "AND ah_field_text(fields, $3) IS DISTINCT FROM $4",
    /* sequence_next_then_put's try: the pair, and the record ($4..$12)
     * inserted only when then_name drew the number expected ($13): one
     * statement, so that a try that misses leaves nothing to undo (the
     * pair stays drawn, as sequence_next_then draws it). */
    [P_SEQ_PAIR_PUT] =
        AH_PG_SEQ_PAIR_CTES
        ", r AS (INSERT INTO records(id, connection_id, type, remote_id, updated_at, raw, "
        "fields, content_hash, created_at, stored_at) "
        "SELECT $4::text, $5::bigint, $6::text, $7::text, $8::text, $9::text, $10::text, "
        "$11::text, $12::text, $12::text FROM b WHERE b.value = $13::bigint "
        "ON CONFLICT(connection_id, type, remote_id) DO NOTHING RETURNING id) "
        "SELECT a.value, coalesce((SELECT value FROM b), 0), (SELECT count(*) FROM r) FROM a",
};

static bool fill_record(const PGresult *r, int i, void *row)
{
    ah_record_row *x = row;
    bool oom = false;
    x->id = ah_pg_dup(r, i, 0, &oom);
    x->connection_id = ah_pg_int(r, i, 1);
    x->type = ah_pg_dup(r, i, 2, &oom);
    x->remote_id = ah_pg_dup(r, i, 3, &oom);
    x->updated_at = ah_pg_dup(r, i, 4, &oom);
    x->raw = ah_pg_dup(r, i, 5, &oom);
    x->fields = ah_pg_dup(r, i, 6, &oom);
    x->created_at = ah_pg_dup(r, i, 7, &oom);
    x->stored_at = ah_pg_dup(r, i, 8, &oom);
    return !oom;
}

static void record_free_v(void *r)
{
    ah_record_row_free(r);
}

/* SHA-256 of raw "\n" fields, the unchanged-detection key (as SQLite's). */
static int content_hash(ah_pg_store *s, const char *raw, const char *fields,
                        char out[AH_SHA256_HEX_LEN + 1])
{
    size_t rl = strlen(raw), fl = strlen(fields), need = rl + 1 + fl;
    if (need > s->scratch_cap) {
        size_t ncap = s->scratch_cap ? s->scratch_cap : 4096;
        while (ncap < need)
            ncap *= 2;
        char *nb = realloc(s->scratch, ncap);
        if (nb == NULL)
            return -1;
        s->scratch = nb;
        s->scratch_cap = ncap;
    }
    memcpy(s->scratch, raw, rl);
    s->scratch[rl] = '\n';
    memcpy(s->scratch + rl + 1, fields, fl);
    ah_sha256_hex(s->scratch, need, out);
    return out[0] != '\0' ? 0 : -1;
}

_Static_assert(sizeof(((ah_pg_store *)0)->id_rnd) % AH_REC_ID_RANDOM_BYTES == 0,
               "id_rnd holds whole ids");

static const char hexd[] = "0123456789abcdef";

/* "rec_" + 12 hex digits of the time in ms + 12 random hex digits. The
 * caller holds s's lock. */
static int new_record_id(ah_pg_store *s, char id[64])
{
    if (s->id_rnd_avail < AH_REC_ID_RANDOM_BYTES) {
        if (ah_random_bytes(s->id_rnd, sizeof s->id_rnd) != 0)
            return -1;
        s->id_rnd_avail = sizeof s->id_rnd;
    }
    const unsigned char *rnd = s->id_rnd + (sizeof s->id_rnd - s->id_rnd_avail);
    s->id_rnd_avail -= AH_REC_ID_RANDOM_BYTES;
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return -1;
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    size_t n = strlen(AH_REC_ID_PREFIX);
    memcpy(id, AH_REC_ID_PREFIX, n);
    for (int i = 11; i >= 0; i--) {
        id[n + (size_t)i] = hexd[ms & 0xf];
        ms >>= 4;
    }
    n += 12;
    for (int i = 0; i < AH_REC_ID_RANDOM_BYTES; i++) {
        unsigned char b = rnd[i];
        id[n++] = hexd[b >> 4];
        id[n++] = hexd[b & 0xf];
    }
    id[n] = '\0';
    return 0;
}

/* One record of a page being upserted. */
typedef struct upsert_row {
    const char *raw, *fields;
    char hash[AH_SHA256_HEX_LEN + 1];
    char newid[64];
    char id[64];
    bool created, found, same;
} upsert_row;

/* A page's records in at most three pipelines (ah_pg_run_many), not a round
 * trip per statement: every record's INSERT .. ON CONFLICT DO NOTHING
 * (those that return their id are created), then the look-up of the others
 * (their id and content hash), then the UPDATE of those whose content
 * changed. Each look-up sees the records as they were before the page: a
 * page with a remote id twice goes through upsert_records one record at a
 * time instead. */
static int upsert_page(ah_pg_store *s, int64_t cid, const ah_record_in *in, size_t n,
                       const char *now, ah_upsert_result *results, char **ids_out)
{
    if (n > INT_MAX)
        return AH_STORE_ERR;
    upsert_row *u = calloc(n, sizeof *u);
    ah_pg_params *ps = calloc(n, sizeof *ps);
    PGresult **res = calloc(n, sizeof *res);
    size_t *pick = calloc(n, sizeof *pick);
    int rc = AH_STORE_ERR;
    if (u == NULL || ps == NULL || res == NULL || pick == NULL) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const ah_record_in *r = &in[i];
        if (r->type == NULL || r->remote_id == NULL) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store",
                   "records_upsert: a record without type or remote_id");
            goto out;
        }
        u[i].raw = r->raw != NULL ? r->raw : "null";
        u[i].fields = r->fields != NULL ? r->fields : "{}";
        if (content_hash(s, u[i].raw, u[i].fields, u[i].hash) != 0) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: out of memory");
            goto out;
        }
        if (new_record_id(s, u[i].newid) != 0) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: no randomness");
            goto out;
        }
        ah_pg_params *p = &ps[i];
        ah_pg_p_text(p, u[i].newid);
        ah_pg_p_int(p, cid);
        ah_pg_p_text(p, r->type);
        ah_pg_p_text(p, r->remote_id);
        ah_pg_p_text(p, r->updated_at);
        ah_pg_p_text(p, u[i].raw);
        ah_pg_p_text(p, u[i].fields);
        ah_pg_p_text(p, u[i].hash);
        ah_pg_p_text(p, now);
    }
    rc = AH_PG_RUN_MANY(s, P_REC_INSERT, ps, (int)n, res, "records_upsert insert");
    if (rc != AH_STORE_OK)
        goto out;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        u[i].created = PQntuples(res[i]) == 1;
        PQclear(res[i]);
        res[i] = NULL;
        if (u[i].created) {
            memcpy(u[i].id, u[i].newid, sizeof u[i].id);
        } else {
            ps[k] = (ah_pg_params){0};
            ah_pg_p_int(&ps[k], cid);
            ah_pg_p_text(&ps[k], in[i].type);
            ah_pg_p_text(&ps[k], in[i].remote_id);
            pick[k++] = i;
        }
    }
    rc = AH_PG_RUN_MANY(s, P_REC_LOOKUP, ps, (int)k, res, "records_upsert lookup");
    if (rc != AH_STORE_OK)
        goto out;
    for (size_t j = 0; j < k && rc == AH_STORE_OK; j++) {
        upsert_row *x = &u[pick[j]];
        if (PQntuples(res[j]) != 1) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store",
                   "records_upsert: record neither inserted nor found");
            rc = AH_STORE_ERR;
        } else if (strlen(PQgetvalue(res[j], 0, 0)) >= sizeof x->id) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: bad stored id");
            rc = AH_STORE_ERR;
        } else {
            snprintf(x->id, sizeof x->id, "%s", PQgetvalue(res[j], 0, 0));
            x->found = true;
            /* One flagged deleted by a sweep that the provider gives
             * again exists after all: rewritten, which clears the flag. */
            x->same = !PQgetisnull(res[j], 0, 1) &&
                      strcmp(PQgetvalue(res[j], 0, 1), x->hash) == 0 &&
                      strcmp(PQgetvalue(res[j], 0, 2), "t") != 0;
        }
    }
    for (size_t j = 0; j < k; j++) {
        PQclear(res[j]);
        res[j] = NULL;
    }
    if (rc != AH_STORE_OK)
        goto out;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (u[i].created || u[i].same)
            continue;
        ps[m] = (ah_pg_params){0};
        ah_pg_p_text(&ps[m], u[i].id);
        ah_pg_p_text(&ps[m], in[i].updated_at);
        ah_pg_p_text(&ps[m], u[i].raw);
        ah_pg_p_text(&ps[m], u[i].fields);
        ah_pg_p_text(&ps[m], u[i].hash);
        ah_pg_p_text(&ps[m], now);
        m++;
    }
    rc = AH_PG_RUN_MANY(s, P_REC_UPDATE, ps, (int)m, res, "records_upsert update");
    for (size_t j = 0; j < m; j++) {
        PQclear(res[j]);
        res[j] = NULL;
    }
    if (rc != AH_STORE_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (results != NULL)
            results[i] = u[i].created ? AH_REC_CREATED
                         : u[i].same  ? AH_REC_UNCHANGED
                                      : AH_REC_UPDATED;
        if (ids_out != NULL && (ids_out[i] = strdup(u[i].id)) == NULL) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: out of memory");
            rc = AH_STORE_ERR;
            goto out;
        }
    }
out:
    free(pick);
    free(res);
    free(ps);
    free(u);
    return rc;
}

/* sequence_next_then_put's try (store.h): the pair and the insert of the
 * record made for the number expected, in one statement (P_SEQ_PAIR_PUT)
 * with no savepoint: a record that exists, or a number other than the one
 * expected, stores nothing and leaves the pair drawn. 1: the record
 * created; 0: the pair drawn alone (*out, *then_out as sequence_next_then
 * gives them), the caller puts the record; -1: no try (the record could
 * not be made), nothing sent; -2: the statement failed (logged; neither
 * drawn). */
static int pair_put_try(ah_pg_store *s, int64_t tenant_id, const char *name,
                        const char *then_name, int64_t guess, int64_t cid,
                        int (*make)(void *arg, int64_t n, ah_record_in *in), void *arg,
                        int64_t *out, int64_t *then_out, ah_upsert_result *res, char **id_out)
{
    ah_record_in in = {0};
    if (make(arg, guess, &in) != 0 || in.type == NULL || in.remote_id == NULL)
        return -1;
    const char *raw = in.raw != NULL ? in.raw : "null";
    const char *fields = in.fields != NULL ? in.fields : "{}";
    char now[32], newid[64], hash[AH_SHA256_HEX_LEN + 1];
    ah_now_iso(now);
    if (content_hash(s, raw, fields, hash) != 0 || new_record_id(s, newid) != 0)
        return -1;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant_id);
    ah_pg_p_text(&p, name);
    ah_pg_p_text(&p, then_name);
    ah_pg_p_text(&p, newid);
    ah_pg_p_int(&p, cid);
    ah_pg_p_text(&p, in.type);
    ah_pg_p_text(&p, in.remote_id);
    ah_pg_p_text(&p, in.updated_at);
    ah_pg_p_text(&p, raw);
    ah_pg_p_text(&p, fields);
    ah_pg_p_text(&p, hash);
    ah_pg_p_text(&p, now);
    ah_pg_p_int(&p, guess);
    int rc;
    /* No savepoint, as for the pair alone: a failure (the connection
     * removed meanwhile) fails the request's transaction, whose own
     * savepoint (a group's) or rollback takes it. */
    PGresult *r = AH_PG_RUN_BARE(s, P_SEQ_PAIR_PUT, &p, "sequence_next_then_put", &rc);
    if (r == NULL || PQntuples(r) != 1) {
        PQclear(r);
        /* A group's request goes back to its savepoint (its writes so far
         * undone), so that the group's other requests still commit; a
         * scope of its own stays failed, and its COMMIT fails. */
        if (s->group_scope)
            ah_pg_defer(s, "ROLLBACK TO ah_grp");
        return -2;
    }
    int64_t v = ah_pg_int(r, 0, 0), w = ah_pg_int(r, 0, 1);
    bool created = ah_pg_int(r, 0, 2) == 1;
    PQclear(r);
    *out = v;
    *then_out = w;
    ah_pg_seq_seen(s, tenant_id, name, v);
    if (w > 0)
        ah_pg_seq_seen(s, tenant_id, then_name, w);
    if (!created)
        return 0;
    if (res != NULL)
        *res = AH_REC_CREATED;
    if (id_out != NULL && (*id_out = strdup(newid)) == NULL) {
        /* Stored, but its id cannot be given back: fail the request. */
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "sequence_next_then_put: out of memory");
        return -2;
    }
    return 1;
}

int ah_pg_sequence_next_then_put(ah_store *st, int64_t tenant_id, const char *name,
                                 const char *then_name, int64_t connection_id,
                                 int (*make)(void *arg, int64_t n, ah_record_in *in), void *arg,
                                 int64_t *out, int64_t *then_out, bool *put,
                                 ah_upsert_result *res, char **id_out)
{
    ah_pg_store *s = ah_pg(st);
    if (put == NULL || out == NULL || then_out == NULL)
        return AH_STORE_ERR;
    *put = false;
    if (id_out != NULL)
        *id_out = NULL;
    ah_pg_lock(s);
    int64_t last = 0;
    /* Inside a scope only, as store.h says (a route's writes, where a
     * create is). Not while the test hook that fails records_upsert is
     * armed: the record goes through records_upsert then. */
    if (s->scope_depth > 0 && !s->sp_active && make != NULL && s->fail_after < 0 &&
        ah_pg_seq_pair_fits(name, then_name) && ah_pg_seq_last(s, tenant_id, then_name, &last)) {
        int tried = pair_put_try(s, tenant_id, name, then_name, last + 1, connection_id, make,
                                 arg, out, then_out, res, id_out);
        if (tried >= 0) {
            *put = tried == 1;
            ah_pg_unlock(s);
            return AH_STORE_OK;
        }
        if (tried == -2) {
            ah_pg_unlock(s);
            return AH_STORE_ERR;
        }
    }
    int rc = ah_pg_sequence_next_then(st, tenant_id, name, then_name, out, then_out);
    ah_pg_unlock(s);
    return rc;
}

static int cmp_rec_key(const void *a, const void *b)
{
    const ah_record_in *x = *(const ah_record_in *const *)a, *y = *(const ah_record_in *const *)b;
    int c = strcmp(x->type != NULL ? x->type : "", y->type != NULL ? y->type : "");
    return c != 0 ? c : strcmp(x->remote_id != NULL ? x->remote_id : "",
                               y->remote_id != NULL ? y->remote_id : "");
}

/* Whether a (type, remote_id) comes twice in in[0..n); -1 out of memory. */
static int has_repeats(const ah_record_in *in, size_t n)
{
    if (n < 2)
        return 0;
    const ah_record_in **v = malloc(n * sizeof *v);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        v[i] = &in[i];
    qsort(v, n, sizeof *v, cmp_rec_key);
    int rep = 0;
    for (size_t i = 1; i < n && !rep; i++)
        rep = cmp_rec_key(&v[i - 1], &v[i]) == 0;
    free(v);
    return rep;
}

/* upsert_page's statements see the page as it was before it: a remote id
 * twice in one page compared its second copy with the content stored
 * before the first (a page of X then S over a stored S kept X, the
 * provider's latest being S). Such a page goes one record at a time, in
 * order, as SQLite's engine goes. */
static int upsert_records(ah_pg_store *s, int64_t cid, const ah_record_in *in, size_t n,
                          const char *now, ah_upsert_result *results, char **ids_out)
{
    int rep = has_repeats(in, n);
    if (rep < 0)
        return AH_STORE_ERR;
    if (rep == 0)
        return upsert_page(s, cid, in, n, now, results, ids_out);
    for (size_t i = 0; i < n; i++) {
        int rc = upsert_page(s, cid, &in[i], 1, now, results != NULL ? &results[i] : NULL,
                             ids_out != NULL ? &ids_out[i] : NULL);
        if (rc != AH_STORE_OK)
            return rc;
    }
    return AH_STORE_OK;
}

int ah_pg_records_upsert(ah_store *st, int64_t connection_id, const ah_record_in *in, size_t n,
                         const char *cursor_key, const char *cursor_value,
                         ah_upsert_result *results, char **ids_out)
{
    ah_pg_store *s = ah_pg(st);
    if (n > 0 && in == NULL)
        return AH_STORE_ERR;
    if (cursor_key != NULL && cursor_value == NULL)
        return AH_STORE_ERR;
    if (ids_out != NULL)
        for (size_t i = 0; i < n; i++)
            ids_out[i] = NULL;
    char now[32];
    ah_now_iso(now);

    ah_pg_lock(s);
    int fail_after = s->fail_after;
    s->fail_after = -1;
    int rc = ah_pg_tx_begin(s);
    if (rc != AH_STORE_OK) {
        ah_pg_unlock(s);
        return rc;
    }
    if (fail_after >= 0 && (size_t)fail_after < n) {
        /* The page fails as it would after that many records: rolled back. */
        ah_log(s->base.lg, AH_LOG_ERROR, "store",
               "records_upsert: failing after %d records (test hook)", fail_after);
        rc = AH_STORE_ERR;
        goto rollback;
    }
    if (n > 0) {
        rc = upsert_records(s, connection_id, in, n, now, results, ids_out);
        if (rc != AH_STORE_OK)
            goto rollback;
    }
    if (fail_after >= 0 && (size_t)fail_after == n) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store",
               "records_upsert: failing before the cursor (test hook)");
        rc = AH_STORE_ERR;
        goto rollback;
    }
    if (cursor_key != NULL) {
        ah_pg_params p = {0};
        ah_pg_p_int(&p, connection_id);
        ah_pg_p_text(&p, cursor_key);
        ah_pg_p_text(&p, cursor_value);
        /* Nobody reads its result: it goes with the COMMIT. */
        rc = AH_PG_DEFER(s, P_CUR_SET, &p, "records_upsert cursor");
        if (rc != AH_STORE_OK)
            goto rollback;
    }
    rc = ah_pg_tx_commit(s);
    if (rc != AH_STORE_OK)
        goto failed;
    ah_pg_unlock(s);
    return AH_STORE_OK;

rollback:
    ah_pg_tx_rollback(s);
failed:
    ah_pg_unlock(s);
    if (ids_out != NULL)
        for (size_t i = 0; i < n; i++) {
            free(ids_out[i]);
            ids_out[i] = NULL;
        }
    return rc;
}

int ah_pg_record_get(ah_store *st, int64_t connection_id, const char *type, const char *remote_id,
                     ah_record_row *out)
{
    ah_pg_store *s = ah_pg(st);
    if (type == NULL || remote_id == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_pg_params p = {0};
    ah_pg_p_int(&p, connection_id);
    ah_pg_p_text(&p, type);
    ah_pg_p_text(&p, remote_id);
    int rc;
    s = ah_pg_read_lock(s);
    PGresult *r = AH_PG_RUN(s, P_REC_GET, &p, "record_get", &rc);
    if (r != NULL) {
        rc = ah_pg_one(s, r, out, fill_record, record_free_v, "record_get");
        PQclear(r);
    }
    ah_pg_read_unlock(s);
    return rc;
}

int ah_pg_record_get_by_id(ah_store *st, int64_t tenant_id, const char *id, ah_record_row *out)
{
    ah_pg_store *s = ah_pg(st);
    if (id == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_pg_params p = {0};
    ah_pg_p_text(&p, id);
    ah_pg_p_int(&p, tenant_id);
    int rc;
    s = ah_pg_read_lock(s);
    PGresult *r = AH_PG_RUN(s, P_REC_GET_BY_ID, &p, "record_get_by_id", &rc);
    if (r != NULL) {
        rc = ah_pg_one(s, r, out, fill_record, record_free_v, "record_get_by_id");
        PQclear(r);
    }
    ah_pg_read_unlock(s);
    return rc;
}

/* The statement of one combination of filters. Parameters are numbered in
 * the order they are bound (record_query), since PostgreSQL wants every
 * $n of a statement used. Only constant fragments go into the text. */
static void record_query_sql(unsigned mask, char *sql, size_t n)
{
    int k = 3;
    char conn[48] = "", upd[96] = "", after[48] = "", field[256] = "", lim[24];
    if (mask & AH_RQ_CONN)
        snprintf(conn, sizeof conn, " AND r.connection_id = $%d", k++);
    if (mask & AH_RQ_UPDATED)
        snprintf(upd, sizeof upd, " AND ah_try_ts(r.updated_at) > ($%d)::timestamptz", k++);
    if (mask & AH_RQ_AFTER)
        snprintf(after, sizeof after, " AND r.id > $%d", k++);
    if (mask & AH_RQ_FIELD) {
        /* The field's text by the rule (ah_field_text, schema v14). nocase
         * folds in the collation "C", where lower() folds ASCII letters
         * only (as SQLite's); the database's own would fold by its locale,
         * and only on the filter's side, the field's being "C" already. */
        if (mask & AH_RQ_NOCASE)
            snprintf(field, sizeof field,
                     " AND lower(btrim(ah_field_text(r.fields, $%d)) COLLATE \"C\")"
                     " = lower(btrim($%d) COLLATE \"C\")",
                     k, k + 1);
        else
            snprintf(field, sizeof field, " AND ah_field_text(r.fields, $%d) = $%d", k, k + 1);
        k += 2;
    }
    snprintf(lim, sizeof lim, "$%d", k);
    snprintf(sql, n,
             "SELECT " REC_COLS " FROM records r JOIN connections c "
             "ON c.id = r.connection_id WHERE c.tenant_id = $1 AND r.type = $2%s%s%s%s%s "
             "ORDER BY r.id LIMIT %s",
             (mask & AH_RQ_DELETED) ? "" : " AND r.remote_deleted_at IS NULL", conn, upd, after,
             field, lim);
}

int ah_pg_record_query(ah_store *st, const ah_record_query *qy, ah_record_cb cb, void *arg)
{
    ah_pg_store *s = ah_pg(st);
    ah_record_query_plan plan;
    if (ah_record_query_plan_make(qy, s->base.lg, &plan) != AH_STORE_OK)
        return AH_STORE_ERR;
    unsigned mask = plan.mask;

    ah_pg_params p = {0};
    ah_pg_p_int(&p, qy->tenant_id);
    ah_pg_p_text(&p, qy->type);
    if (mask & AH_RQ_CONN)
        ah_pg_p_int(&p, qy->connection_id);
    if (mask & AH_RQ_UPDATED)
        ah_pg_p_text(&p, plan.updated_after);
    if (mask & AH_RQ_AFTER)
        ah_pg_p_text(&p, qy->after_id);
    if (mask & AH_RQ_FIELD) {
        ah_pg_p_text(&p, qy->field_key);
        ah_pg_p_text(&p, qy->field_value);
    }
    ah_pg_p_int(&p, plan.limit);
    char sql[1024], name[24];
    record_query_sql(mask, sql, sizeof sql);
    snprintf(name, sizeof name, "ah_rq%u", mask);

    ah_pg_rowvec v = {.elem = sizeof(ah_record_row)};
    int rc;
    s = ah_pg_read_lock(s);
    PGresult *r = ah_pg_run(s, name, &s->rq_prepared[mask], sql, &p, "record_query", &rc);
    if (r != NULL) {
        rc = ah_pg_collect(s, r, &v, fill_record, record_free_v, "record_query");
        PQclear(r);
    }
    ah_pg_read_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_record_row *)v.items + i);
    ah_pg_rowvec_free(&v, record_free_v);
    return rc;
}

int64_t ah_pg_record_count(ah_store *st, int64_t connection_id, const char *type)
{
    ah_pg_store *s = ah_pg(st);
    int64_t n = AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, connection_id);
    int rc;
    ah_pg_lock(s);
    PGresult *r;
    if (type != NULL) {
        ah_pg_p_text(&p, type);
        r = AH_PG_RUN(s, P_REC_COUNT, &p, "record_count", &rc);
    } else {
        r = AH_PG_RUN(s, P_REC_COUNT_ALL, &p, "record_count", &rc);
    }
    if (r != NULL) {
        if (PQntuples(r) == 1)
            n = ah_pg_int(r, 0, 0);
        PQclear(r);
    } else {
        n = rc;
    }
    ah_pg_unlock(s);
    return n;
}

int ah_pg_cursor_get(ah_store *st, int64_t connection_id, const char *key, char **value_out)
{
    ah_pg_store *s = ah_pg(st);
    if (key == NULL || value_out == NULL)
        return AH_STORE_ERR;
    *value_out = NULL;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, connection_id);
    ah_pg_p_text(&p, key);
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_CUR_GET, &p, "cursor_get", &rc);
    if (r != NULL) {
        if (PQntuples(r) == 1) {
            bool oom = false;
            *value_out = ah_pg_dup(r, 0, 0, &oom);
            rc = oom ? AH_STORE_ERR : AH_STORE_OK;
        }
        PQclear(r);
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_cursor_set(ah_store *st, int64_t connection_id, const char *key, const char *value)
{
    ah_pg_store *s = ah_pg(st);
    if (key == NULL || value == NULL)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_int(&p, connection_id);
    ah_pg_p_text(&p, key);
    ah_pg_p_text(&p, value);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_CUR_SET, &p, "cursor_set", NULL);
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_record_prune(ah_store *st, const char *type, const char *before, const char *keep_key,
                       const char *keep_value, int64_t *n_out)
{
    ah_pg_store *s = ah_pg(st);
    if (n_out != NULL)
        *n_out = 0;
    char b[32];
    if (type == NULL || keep_value == NULL || !ah_store_field_key_valid(keep_key) || before == NULL ||
        ah_iso_normalize(before, b) != 0)
        return AH_STORE_ERR;
    ah_pg_params p = {0};
    ah_pg_p_text(&p, type);
    ah_pg_p_text(&p, b);
    ah_pg_p_text(&p, keep_key);
    ah_pg_p_text(&p, keep_value);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_REC_PRUNE, &p, "record_prune", n_out);
    ah_pg_unlock(s);
    return rc;
}
