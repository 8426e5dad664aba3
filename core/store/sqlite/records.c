/* SPDX-License-Identifier: Apache-2.0 */
/* Unified records and sync cursors: the page upsert (one transaction per
 * page and its cursor), lookups and the filtered, paged query. */
#include "sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"

#define AH_REC_ID_PREFIX "rec_"
#define AH_REC_ID_RANDOM_BYTES 6 /* 12 hex chars after 12 of time */
#define REC_COLS                                                               \
    "r.id, r.connection_id, r.type, r.remote_id, r.updated_at, r.raw, "        \
    "r.fields, r.created_at, r.stored_at"

/* The text a field filter compares, of record r's field named by the bound
 * parameter KEY (the rule of ah_record_query.field_key, store.h): a string's
 * value, "true" / "false", a number's JSON text as stored (`->` keeps the
 * token: 1.50 stays "1.50", 1e2 "1e2"); NULL for null, an object, an
 * array or no such key, which then match nothing. Of a repeated key the
 * first. The fields are unpacked once for the row (a FROM-less subquery is
 * never flattened into its user). PostgreSQL's ah_field_text is the same
 * rule. */
#define SQ_FIELD_TEXT(KEY)                                                     \
    "(SELECT CASE json_type(j, p) WHEN 'text' THEN j ->> p "                   \
    "WHEN 'integer' THEN j -> p WHEN 'real' THEN j -> p "                      \
    "WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END "                   \
    "FROM (SELECT ah_fields(r.raw, r.fields) AS j, '$.' || " KEY " AS p))"

/* Record ids: "rec_" + 12 hex digits of the creation time in milliseconds
 * + 12 random hex digits (24 in all). Time first so that new ids land at
 * the right edge of the primary-key b-tree: with purely random ids every
 * insert of a large sync dirties a different index page and the WAL
 * traffic grows with the table (measured: ~6k records/s at 200k rows).
 * Keyset paging by id then also follows creation order. Random bytes are
 * drawn for many ids at once and kept in the store across calls
 * (ah_sq_store.id_rnd): RAND_bytes has a fixed cost per call. */

/* This file's statements, by cache slot (sqlite_int.h). */
static const char *const q_sql[Q_COUNT] = {
    [Q_REC_LOOKUP] = "SELECT id, raw, fields, remote_deleted_at IS NOT NULL FROM records "
                     "WHERE connection_id = ?1 AND type = ?2 AND remote_id = ?3",
    [Q_REC_INSERT] = "INSERT INTO records(id, connection_id, type, remote_id, updated_at, "
                     "raw, fields, created_at, stored_at) "
                     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, '', '') "
                     "ON CONFLICT(connection_id, type, remote_id) DO NOTHING",
    [Q_REC_UPDATE] = "UPDATE records SET updated_at = ?2, raw = ?3, fields = ?4, "
                     "remote_deleted_at = NULL, "
                     "stored_at = ?5 WHERE id = ?1",
    [Q_REC_GET] = "SELECT " REC_COLS " FROM records r "
                  "WHERE r.connection_id = ?1 AND r.type = ?2 AND r.remote_id = ?3",
    [Q_REC_GET_BY_ID] = "SELECT " REC_COLS " FROM records r JOIN connections c "
                        "ON c.id = r.connection_id WHERE r.id = ?1 AND c.tenant_id = ?2",
    [Q_REC_COUNT] = "SELECT count(*) FROM records WHERE connection_id = ?1 AND type = ?2",
    [Q_REC_COUNT_ALL] = "SELECT count(*) FROM records WHERE connection_id = ?1",
    [Q_CUR_GET] = "SELECT value FROM cursors WHERE connection_id = ?1 AND key = ?2",
    [Q_CUR_SET] = "INSERT INTO cursors(connection_id, key, value) VALUES(?1, ?2, ?3) "
                  "ON CONFLICT(connection_id, key) DO UPDATE SET value = excluded.value",
    /* By connection, so that the (connection_id, type, id) index finds the
     * type's rows without scanning every record. */
    [Q_REC_PRUNE] = "DELETE FROM records AS r WHERE connection_id IN (SELECT id FROM connections) "
                    "AND type = ?1 AND julianday(updated_at) < julianday(?2) "
                    "AND " SQ_FIELD_TEXT("?3") " IS NOT ?4",
};

/* record_query and log_query compose their WHERE clause from constant
 * fragments chosen by which filters are set; each combination is prepared
 * once and cached under its bit mask. */
static const char hexd[] = "0123456789abcdef";

/* ms since the epoch as the store's canonical time. */
static void iso_of_ms(uint64_t ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000u);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(out, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    char base[24];
    if (strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(out, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(out, 32, "%.19s.%03dZ", base, (int)(ms % 1000u));
}

char *ah_sq_id_time(const char *id)
{
    size_t pl = strlen(AH_REC_ID_PREFIX);
    if (strncmp(id, AH_REC_ID_PREFIX, pl) != 0 || strlen(id) < pl + 12)
        return NULL;
    uint64_t ms = 0;
    for (size_t i = pl; i < pl + 12; i++) {
        const char *d = strchr(hexd, id[i]);
        if (d == NULL || *d == '\0')
            return NULL;
        ms = ms * 16u + (uint64_t)(d - hexd);
    }
    char out[32];
    iso_of_ms(ms, out);
    return strdup(out);
}

static bool fill_record(sqlite3_stmt *st, ah_record_row *r)
{
    bool oom = false;
    r->id = ah_sq_col_dup(st, 0, &oom);
    r->connection_id = sqlite3_column_int64(st, 1);
    r->type = ah_sq_col_dup(st, 2, &oom);
    r->remote_id = ah_sq_col_dup(st, 3, &oom);
    r->updated_at = ah_sq_col_dup(st, 4, &oom);
    r->raw = ah_sq_col_dup(st, 5, &oom);
    r->fields = ah_sq_fields_text(st, 5, 6, &oom);
    /* '' (schema v5): created_at is the time the id carries, stored_at
     * is created_at (the record was never rewritten). */
    r->created_at = ah_sq_col_dup(st, 7, &oom);
    if (r->created_at != NULL && r->created_at[0] == '\0' && r->id != NULL) {
        free(r->created_at);
        r->created_at = ah_sq_id_time(r->id);
        oom = oom || r->created_at == NULL;
    }
    r->stored_at = ah_sq_col_dup(st, 8, &oom);
    if (r->stored_at != NULL && r->stored_at[0] == '\0' && r->created_at != NULL) {
        free(r->stored_at);
        r->stored_at = strdup(r->created_at);
        oom = oom || r->stored_at == NULL;
    }
    return !oom;
}

static void record_free_v(void *r)
{
    ah_record_row_free(r);
}

static bool fill_record_v(sqlite3_stmt *st, void *r)
{
    return fill_record(st, r);
}

/* A record's fields as the store keeps them (fieldpack.c): the delta
 * against raw when it is smaller, else the text. */
typedef struct packed {
    const void *data;
    size_t len;
    bool blob;
} packed;

static int pack_fields(ah_sq_packer *pk, const char *raw, const char *fields, packed *out)
{
    size_t rl = strlen(raw), fl = strlen(fields);
    const void *z = NULL;
    size_t zl = 0;
    /* A record too large for the delta's positions keeps its text. */
    if (ah_sq_fields_pack(pk, raw, rl, fields, fl, &z, &zl) == 0 && zl < fl) {
        *out = (packed){z, zl, true};
    } else {
        *out = (packed){fields, fl, false};
    }
    return 0;
}

void *ah_sq_fields_prepare(ah_store *st, const ah_record_in *in, size_t n, ah_fields_kept *kept)
{
    (void)st;
    /* A packer of its own (the store's is used under its lock), and the
     * deltas one after the other in one block. */
    ah_sq_packer *pk = ah_sq_packer_new();
    size_t cap = 1, len = 0;
    for (size_t i = 0; i < n; i++)
        cap += in[i].fields != NULL ? strlen(in[i].fields) : 2;
    unsigned char *mem = malloc(cap);
    size_t *offs = calloc(n ? n : 1, sizeof *offs);
    if (pk == NULL || mem == NULL || offs == NULL) {
        ah_sq_packer_free(pk);
        free(mem);
        free(offs);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *raw = in[i].raw != NULL ? in[i].raw : "null";
        const char *fields = in[i].fields != NULL ? in[i].fields : "{}";
        packed pf;
        pack_fields(pk, raw, fields, &pf);
        kept[i] = (ah_fields_kept){pf.data, pf.len, pf.blob};
        if (pf.blob) {
            /* zl < fl: the deltas fit the block sized by the texts */
            memcpy(mem + len, pf.data, pf.len);
            offs[i] = len;
            len += pf.len;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (kept[i].blob)
            kept[i].data = mem + offs[i];
    free(offs);
    ah_sq_packer_free(pk);
    return mem;
}

static void bind_fields(sqlite3_stmt *st, int i, const packed *p)
{
    if (p->blob)
        sqlite3_bind_blob(st, i, p->data, (int)p->len, SQLITE_STATIC);
    else
        sqlite3_bind_text(st, i, p->data, (int)p->len, SQLITE_STATIC);
}

_Static_assert(sizeof(((ah_sq_store *)0)->id_rnd) % AH_REC_ID_RANDOM_BYTES == 0,
               "id_rnd holds whole ids");

/* ms: the page's time, which the row's created_at is (v5 stores '' for
 * it and reads it back from the id). The caller holds s's lock. */
static int new_record_id(ah_sq_store *s, uint64_t ms, char id[64])
{
    if (s->id_rnd_avail < AH_REC_ID_RANDOM_BYTES) {
        if (ah_random_bytes(s->id_rnd, sizeof s->id_rnd) != 0)
            return -1;
        s->id_rnd_avail = sizeof s->id_rnd;
    }
    const unsigned char *rnd = s->id_rnd + (sizeof s->id_rnd - s->id_rnd_avail);
    s->id_rnd_avail -= AH_REC_ID_RANDOM_BYTES;
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

/* Inserts the record unless (connection, type, remote id) exists; *created
 * tells which. */
static int rec_insert(ah_sq_store *s, const char *id, int64_t cid, const ah_record_in *r,
                      const char *raw, const packed *fields, bool *created)
{
    sqlite3_stmt *ins = AH_SQ_GET(s, Q_REC_INSERT);
    if (ins == NULL)
        return AH_STORE_ERR;
    ah_sq_bind_text(ins, 1, id);
    sqlite3_bind_int64(ins, 2, cid);
    ah_sq_bind_text(ins, 3, r->type);
    ah_sq_bind_text(ins, 4, r->remote_id);
    ah_sq_bind_text(ins, 5, r->updated_at);
    ah_sq_bind_text(ins, 6, raw);
    bind_fields(ins, 7, fields);
    int rc = ah_sq_run(s, ins, "records_upsert insert");
    ah_sq_done(ins);
    *created = rc == AH_STORE_OK && sqlite3_changes(s->db) == 1;
    return rc;
}

/* Looks the record up: *found, its id into id and whether its raw and
 * fields equal the new ones into *same (byte for byte; a stored delta that
 * differs from the new one is unpacked and compared as text, so that
 * another encoder's output does not read as a change). */
static int rec_lookup(ah_sq_store *s, int64_t cid, const ah_record_in *r, const char *raw,
                      const char *fields, const packed *pf, char id[64], bool *found,
                      bool *same)
{
    sqlite3_stmt *look = AH_SQ_GET(s, Q_REC_LOOKUP);
    if (look == NULL)
        return AH_STORE_ERR;
    sqlite3_bind_int64(look, 1, cid);
    ah_sq_bind_text(look, 2, r->type);
    ah_sq_bind_text(look, 3, r->remote_id);
    int rc = AH_STORE_OK;
    int st = sqlite3_step(look);
    *found = *same = false;
    if (st == SQLITE_ROW) {
        const char *oid = (const char *)sqlite3_column_text(look, 0);
        if (oid == NULL || strlen(oid) >= 64) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: bad stored id");
            rc = AH_STORE_ERR;
        } else {
            memcpy(id, oid, strlen(oid) + 1);
            *found = true;
            /* One flagged deleted by a sweep that the provider gives again
             * exists after all: rewritten, which clears the flag. */
            bool flagged = sqlite3_column_int(look, 3) != 0;
            const char *oraw = (const char *)sqlite3_column_text(look, 1);
            if (!flagged && oraw != NULL && strcmp(oraw, raw) == 0) {
                int ft = sqlite3_column_type(look, 2);
                const void *ov = ft == SQLITE_BLOB ? sqlite3_column_blob(look, 2)
                                                   : (const void *)sqlite3_column_text(look, 2);
                size_t ol = (size_t)sqlite3_column_bytes(look, 2);
                if (ov != NULL && (ft == SQLITE_BLOB) == pf->blob && ol == pf->len &&
                    memcmp(ov, pf->data, ol) == 0) {
                    *same = true;
                } else if (ft == SQLITE_BLOB || ft == SQLITE_TEXT) {
                    bool oom = false;
                    char *old = ah_sq_fields_text(look, 1, 2, &oom);
                    *same = old != NULL && strcmp(old, fields) == 0;
                    free(old);
                }
            }
        }
    } else if (st != SQLITE_DONE) {
        rc = ah_sq_step_error(s, st, "records_upsert lookup");
    }
    ah_sq_done(look);
    return rc;
}

/* Rewrites an existing record's payload. */
static int rec_update(ah_sq_store *s, const char *id, const ah_record_in *r, const char *raw,
                      const packed *pf, const char *now)
{
    sqlite3_stmt *up = AH_SQ_GET(s, Q_REC_UPDATE);
    if (up == NULL)
        return AH_STORE_ERR;
    ah_sq_bind_text(up, 1, id);
    ah_sq_bind_text(up, 2, r->updated_at);
    ah_sq_bind_text(up, 3, raw);
    bind_fields(up, 4, pf);
    ah_sq_bind_text(up, 5, now);
    int rc = ah_sq_run(s, up, "records_upsert update");
    ah_sq_done(up);
    return rc;
}

/* One record inside the page transaction. Pages tend to be all new (a
 * first sync) or all known (a re-sync): *known_hint, the previous record's
 * fate, picks which statement to try first, so that either case costs one
 * index descent per record rather than two. An existing record is
 * rewritten only when its raw or fields differ. */
static int upsert_one(ah_sq_store *s, int64_t cid, const ah_record_in *r,
                      const ah_fields_kept *kept, uint64_t now_ms, const char *now,
                      bool *known_hint, ah_upsert_result *result, char **id_out)
{
    if (r->type == NULL || r->remote_id == NULL) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store",
               "records_upsert: a record without type or remote_id");
        return AH_STORE_ERR;
    }
    const char *raw = r->raw != NULL ? r->raw : "null";
    const char *fields = r->fields != NULL ? r->fields : "{}";
    packed pf;
    if (kept != NULL)
        pf = (packed){kept->data, kept->len, kept->blob};
    else if (pack_fields(s->packer, raw, fields, &pf) != 0) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: cannot pack the fields");
        return AH_STORE_ERR;
    }
    char id[64], newid[64];
    bool created = false, found = false, same = false;
    int rc;
    /* The id's copy is made before anything is written: a record written
     * by a call that then fails would stay written when the call had no
     * savepoint of its own (ah_sq_tx_begin_one inside a scope). */
    char *id_copy = NULL;
    if (id_out != NULL && (id_copy = malloc(sizeof id)) == NULL) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: out of memory");
        return AH_STORE_ERR;
    }
    if (!*known_hint) {
        if (new_record_id(s, now_ms, newid) != 0)
            goto no_random;
        rc = rec_insert(s, newid, cid, r, raw, &pf, &created);
        if (rc != AH_STORE_OK)
            goto failed;
    }
    if (!created) {
        rc = rec_lookup(s, cid, r, raw, fields, &pf, id, &found, &same);
        if (rc != AH_STORE_OK)
            goto failed;
        if (!found && *known_hint) {
            if (new_record_id(s, now_ms, newid) != 0)
                goto no_random;
            rc = rec_insert(s, newid, cid, r, raw, &pf, &created);
            if (rc != AH_STORE_OK)
                goto failed;
        }
        if (!found && !created) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store",
                   "records_upsert: record neither inserted nor found");
            rc = AH_STORE_ERR;
            goto failed;
        }
    }
    *known_hint = found;
    if (created) {
        memcpy(id, newid, strlen(newid) + 1);
        *result = AH_REC_CREATED;
    } else if (same) {
        *result = AH_REC_UNCHANGED;
    } else {
        rc = rec_update(s, id, r, raw, &pf, now);
        if (rc != AH_STORE_OK)
            goto failed;
        *result = AH_REC_UPDATED;
    }
    if (id_out != NULL) {
        memcpy(id_copy, id, strlen(id) + 1);
        *id_out = id_copy;
    }
    return AH_STORE_OK;
no_random:
    ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: no randomness");
    rc = AH_STORE_ERR;
failed:
    free(id_copy);
    return rc;
}

/* Records in[0..k) (k from ah_sq_rows_chunk, > 1) inserted in one
 * statement, each unless its (connection, type, remote id) exists (OR
 * IGNORE: every NOT NULL column is bound a value, so the only rows it
 * skips are conflicts on that key, or on the id, which the look-up below
 * then reports as a record neither inserted nor found): what
 * upsert_one does for k records in a row when none is expected to exist
 * (!*known_hint), for one statement's fixed cost instead of k. When all k
 * are inserted (a first sync's pages), that is all; otherwise each record
 * is looked up in order and is created if the row found carries the id
 * this statement gave it, else handled as upsert_one handles a record it
 * finds (unchanged, or rewritten): rows the statement left alone were
 * there before it, or are an earlier record of the same chunk with the
 * same key, which upsert_one would have found in the same way. */
static int upsert_rows(ah_sq_store *s, int64_t cid, const ah_record_in *in,
                       const ah_fields_kept *kept, size_t k, uint64_t now_ms, const char *now,
                       bool *known_hint, ah_upsert_result *results, char **ids_out)
{
    char newid[AH_SQ_ROWS_BIG][64];
    packed pf[AH_SQ_ROWS_BIG];
    size_t cap = 1;
    for (size_t j = 0; j < k; j++) {
        if (in[j].type == NULL || in[j].remote_id == NULL) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store",
                   "records_upsert: a record without type or remote_id");
            return AH_STORE_ERR;
        }
        if (kept == NULL)
            cap += in[j].fields != NULL ? strlen(in[j].fields) : 2;
    }
    /* The deltas this store's packer makes last only until its next use:
     * copied into scratch, which the texts' lengths bound (a delta is kept
     * only when shorter). */
    unsigned char *mem = kept == NULL ? ah_sq_scratch(s, cap) : NULL;
    if (kept == NULL && mem == NULL) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: out of memory");
        return AH_STORE_ERR;
    }
    sqlite3_stmt *ins = ah_sq_prep_rows(
        s, k == AH_SQ_ROWS_BIG ? MQ_REC_BIG : MQ_REC_SMALL,
        "INSERT OR IGNORE INTO records(id, connection_id, type, remote_id, updated_at, raw, "
        "fields, created_at, stored_at) VALUES",
        "(?,?,?,?,?,?,?,'','')", (int)k, "");
    if (ins == NULL)
        return AH_STORE_ERR;
    for (size_t j = 0; j < k; j++) {
        const char *raw = in[j].raw != NULL ? in[j].raw : "null";
        const char *fields = in[j].fields != NULL ? in[j].fields : "{}";
        if (kept != NULL) {
            pf[j] = (packed){kept[j].data, kept[j].len, kept[j].blob};
        } else {
            pack_fields(s->packer, raw, fields, &pf[j]);
            if (pf[j].blob) {
                memcpy(mem, pf[j].data, pf[j].len);
                pf[j].data = mem;
                mem += pf[j].len;
            }
        }
        if (new_record_id(s, now_ms, newid[j]) != 0) {
            ah_sq_done(ins);
            ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: no randomness");
            return AH_STORE_ERR;
        }
        int b = (int)j * 7;
        ah_sq_bind_text(ins, b + 1, newid[j]);
        sqlite3_bind_int64(ins, b + 2, cid);
        ah_sq_bind_text(ins, b + 3, in[j].type);
        ah_sq_bind_text(ins, b + 4, in[j].remote_id);
        ah_sq_bind_text(ins, b + 5, in[j].updated_at);
        ah_sq_bind_text(ins, b + 6, raw);
        bind_fields(ins, b + 7, &pf[j]);
    }
    int rc = ah_sq_run(s, ins, "records_upsert insert");
    bool all = rc == AH_STORE_OK && sqlite3_changes(s->db) == (int)k;
    ah_sq_done(ins);
    if (rc != AH_STORE_OK)
        return rc;
    for (size_t j = 0; j < k; j++) {
        const char *raw = in[j].raw != NULL ? in[j].raw : "null";
        const char *fields = in[j].fields != NULL ? in[j].fields : "{}";
        char id[64] = "";
        bool found = false, same = false;
        ah_upsert_result res = AH_REC_CREATED;
        if (!all) {
            rc = rec_lookup(s, cid, &in[j], raw, fields, &pf[j], id, &found, &same);
            if (rc != AH_STORE_OK)
                return rc;
            if (!found) {
                ah_log(s->base.lg, AH_LOG_ERROR, "store",
                       "records_upsert: record neither inserted nor found");
                return AH_STORE_ERR;
            }
            if (strcmp(id, newid[j]) != 0) {
                if (same) {
                    res = AH_REC_UNCHANGED;
                } else {
                    rc = rec_update(s, id, &in[j], raw, &pf[j], now);
                    if (rc != AH_STORE_OK)
                        return rc;
                    res = AH_REC_UPDATED;
                }
            }
        }
        *known_hint = res != AH_REC_CREATED;
        if (results != NULL)
            results[j] = res;
        if (ids_out != NULL) {
            ids_out[j] = strdup(res == AH_REC_CREATED ? newid[j] : id);
            if (ids_out[j] == NULL) {
                ah_log(s->base.lg, AH_LOG_ERROR, "store", "records_upsert: out of memory");
                return AH_STORE_ERR;
            }
        }
    }
    return AH_STORE_OK;
}

int ah_sq_records_upsert(ah_store *st, int64_t connection_id, const ah_record_in *in, size_t n,
                         const char *cursor_key, const char *cursor_value,
                         ah_upsert_result *results, char **ids_out)
{
    return ah_sq_records_upsert_kept(st, connection_id, in, NULL, n, cursor_key, cursor_value,
                                     results, ids_out);
}

int ah_sq_records_upsert_kept(ah_store *st, int64_t connection_id, const ah_record_in *in,
                              const ah_fields_kept *kept, size_t n, const char *cursor_key,
                              const char *cursor_value, ah_upsert_result *results,
                              char **ids_out)
{
    ah_sq_store *s = ah_sq(st);
    if (n > 0 && in == NULL)
        return AH_STORE_ERR;
    if (cursor_key != NULL && cursor_value == NULL)
        return AH_STORE_ERR;
    if (ids_out != NULL)
        for (size_t i = 0; i < n; i++)
            ids_out[i] = NULL;
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return AH_STORE_ERR;
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    char now[32];
    iso_of_ms(now_ms, now);

    bool known = false;

    ah_sq_lock(s);
    int fail_after = s->fail_after;
    s->fail_after = -1;
    /* One record without a cursor (a route's write) is one write. */
    bool one = n == 1 && cursor_key == NULL && fail_after < 0;
    int rc = one ? ah_sq_tx_begin_one(s) : ah_sq_tx_begin(s);
    if (rc != AH_STORE_OK) {
        ah_sq_unlock(s);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (fail_after >= 0 && (size_t)fail_after == i) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store",
                   "records_upsert: failing after %d records (test hook)", fail_after);
            rc = AH_STORE_ERR;
            goto rollback;
        }
        /* New records expected: several to a statement (the test hook
         * counts them one at a time). */
        size_t k = !known && fail_after < 0 ? ah_sq_rows_chunk(n - i) : 1;
        if (k > 1) {
            rc = upsert_rows(s, connection_id, &in[i], kept != NULL ? &kept[i] : NULL, k, now_ms,
                             now, &known, results != NULL ? &results[i] : NULL,
                             ids_out != NULL ? &ids_out[i] : NULL);
            if (rc != AH_STORE_OK)
                goto rollback;
            i += k - 1;
            continue;
        }
        ah_upsert_result res = AH_REC_UNCHANGED;
        rc = upsert_one(s, connection_id, &in[i], kept != NULL ? &kept[i] : NULL, now_ms,
                        now, &known, &res,
                        ids_out != NULL ? &ids_out[i] : NULL);
        if (rc != AH_STORE_OK)
            goto rollback;
        if (results != NULL)
            results[i] = res;
    }
    if (fail_after >= 0 && (size_t)fail_after == n) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store",
               "records_upsert: failing before the cursor (test hook)");
        rc = AH_STORE_ERR;
        goto rollback;
    }
    if (cursor_key != NULL) {
        sqlite3_stmt *q = AH_SQ_GET(s, Q_CUR_SET);
        if (q == NULL) {
            rc = AH_STORE_ERR;
            goto rollback;
        }
        sqlite3_bind_int64(q, 1, connection_id);
        ah_sq_bind_text(q, 2, cursor_key);
        ah_sq_bind_text(q, 3, cursor_value);
        rc = ah_sq_run(s, q, "records_upsert cursor");
        ah_sq_done(q);
        if (rc != AH_STORE_OK)
            goto rollback;
    }
    rc = ah_sq_tx_commit(s);
    if (rc != AH_STORE_OK)
        goto failed;
    ah_sq_unlock(s);
    return AH_STORE_OK;

rollback:
    ah_sq_tx_rollback(s);
failed:
    ah_sq_unlock(s);
    if (ids_out != NULL)
        for (size_t i = 0; i < n; i++) {
            free(ids_out[i]);
            ids_out[i] = NULL;
        }
    return rc;
}

int ah_sq_record_get(ah_store *st, int64_t connection_id, const char *type, const char *remote_id,
                     ah_record_row *out)
{
    ah_sq_store *w = ah_sq(st);
    if (type == NULL || remote_id == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_sq_store *s = ah_sq_read_lock(w);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_REC_GET);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, connection_id);
        ah_sq_bind_text(q, 2, type);
        ah_sq_bind_text(q, 3, remote_id);
        rc = ah_sq_get_one(s, q, out, fill_record_v, record_free_v, "record_get");
        ah_sq_done(q);
    }
    ah_sq_read_unlock(s);
    return rc;
}

int ah_sq_record_get_by_id(ah_store *st, int64_t tenant_id, const char *id, ah_record_row *out)
{
    ah_sq_store *w = ah_sq(st);
    if (id == NULL || out == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    ah_sq_store *s = ah_sq_read_lock(w);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_REC_GET_BY_ID);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, id);
        sqlite3_bind_int64(q, 2, tenant_id);
        rc = ah_sq_get_one(s, q, out, fill_record_v, record_free_v, "record_get_by_id");
        ah_sq_done(q);
    }
    ah_sq_read_unlock(s);
    return rc;
}

static sqlite3_stmt *record_query_stmt(ah_sq_store *s, unsigned mask)
{
    if (s->rq[mask] != NULL)
        return s->rq[mask];
    char sql[2048];
    /* Only constant fragments go into the text; every value is bound. The
     * field is compared by its text (SQ_FIELD_TEXT); lower() folds ASCII
     * letters only (SQLite's own; the ICU extension is never loaded), as
     * the rule says. */
    snprintf(sql, sizeof sql,
             "SELECT " REC_COLS " FROM records r JOIN connections c "
             "ON c.id = r.connection_id WHERE c.tenant_id = ?1 AND r.type = ?2%s%s%s%s%s "
             "ORDER BY r.id LIMIT ?8",
             (mask & AH_RQ_DELETED) ? "" : " AND r.remote_deleted_at IS NULL",
             (mask & AH_RQ_CONN) ? " AND r.connection_id = ?3" : "",
             (mask & AH_RQ_UPDATED) ? " AND julianday(r.updated_at) > julianday(?4)" : "",
             (mask & AH_RQ_AFTER) ? " AND r.id > ?5" : "",
             !(mask & AH_RQ_FIELD) ? ""
             : (mask & AH_RQ_NOCASE)
                 ? " AND lower(trim(" SQ_FIELD_TEXT("?6") ")) = lower(trim(?7))"
                 : " AND " SQ_FIELD_TEXT("?6") " = ?7");
    return ah_sq_prep(s, &s->rq[mask], sql);
}

int ah_sq_record_query(ah_store *st, const ah_record_query *qy, ah_record_cb cb, void *arg)
{
    ah_sq_store *w = ah_sq(st);
    ah_record_query_plan plan;
    if (ah_record_query_plan_make(qy, w->base.lg, &plan) != AH_STORE_OK)
        return AH_STORE_ERR;
    unsigned mask = plan.mask;

    ah_sq_rowvec v = {.elem = sizeof(ah_record_row)};
    ah_sq_store *s = ah_sq_read_lock(w);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = record_query_stmt(s, mask);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, qy->tenant_id);
        ah_sq_bind_text(q, 2, qy->type);
        if (mask & AH_RQ_CONN)
            sqlite3_bind_int64(q, 3, qy->connection_id);
        if (mask & AH_RQ_UPDATED)
            ah_sq_bind_text(q, 4, plan.updated_after);
        if (mask & AH_RQ_AFTER)
            ah_sq_bind_text(q, 5, qy->after_id);
        if (mask & AH_RQ_FIELD) {
            ah_sq_bind_text(q, 6, qy->field_key);
            ah_sq_bind_text(q, 7, qy->field_value);
        }
        sqlite3_bind_int(q, 8, plan.limit);
        rc = ah_sq_collect(s, q, &v, fill_record_v, record_free_v, "record_query");
        ah_sq_done(q);
    }
    ah_sq_read_unlock(s);
    if (rc == AH_STORE_OK && cb != NULL)
        for (size_t i = 0; i < v.n; i++)
            cb(arg, (ah_record_row *)v.items + i);
    ah_sq_rowvec_free(&v, record_free_v);
    return rc;
}

int64_t ah_sq_record_count(ah_store *st, int64_t connection_id, const char *type)
{
    ah_sq_store *s = ah_sq(st);
    int64_t n = AH_STORE_ERR;
    ah_sq_lock(s);
    sqlite3_stmt *q = AH_SQ_GET(s, type != NULL ? Q_REC_COUNT : Q_REC_COUNT_ALL);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, connection_id);
        if (type != NULL)
            ah_sq_bind_text(q, 2, type);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            n = sqlite3_column_int64(q, 0);
        else
            n = ah_sq_step_error(s, rc, "record_count");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return n;
}

int ah_sq_cursor_get(ah_store *st, int64_t connection_id, const char *key, char **value_out)
{
    ah_sq_store *s = ah_sq(st);
    if (key == NULL || value_out == NULL)
        return AH_STORE_ERR;
    *value_out = NULL;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_CUR_GET);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, connection_id);
        ah_sq_bind_text(q, 2, key);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            bool oom = false;
            *value_out = ah_sq_col_dup(q, 0, &oom);
            rc = oom ? AH_STORE_ERR : AH_STORE_OK;
        } else if (r == SQLITE_DONE) {
            rc = AH_STORE_OK;
        } else {
            rc = ah_sq_step_error(s, r, "cursor_get");
        }
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_cursor_set(ah_store *st, int64_t connection_id, const char *key, const char *value)
{
    ah_sq_store *s = ah_sq(st);
    if (key == NULL || value == NULL)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_CUR_SET);
    if (q != NULL) {
        sqlite3_bind_int64(q, 1, connection_id);
        ah_sq_bind_text(q, 2, key);
        ah_sq_bind_text(q, 3, value);
        rc = ah_sq_run(s, q, "cursor_set");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_record_prune(ah_store *st, const char *type, const char *before, const char *keep_key,
                       const char *keep_value, int64_t *n_out)
{
    ah_sq_store *s = ah_sq(st);
    if (n_out != NULL)
        *n_out = 0;
    char b[32];
    if (type == NULL || keep_value == NULL || !ah_store_field_key_valid(keep_key) || before == NULL ||
        ah_iso_normalize(before, b) != 0)
        return AH_STORE_ERR;
    ah_sq_lock(s);
    int rc = AH_STORE_ERR;
    sqlite3_stmt *q = AH_SQ_GET(s, Q_REC_PRUNE);
    if (q != NULL) {
        ah_sq_bind_text(q, 1, type);
        ah_sq_bind_text(q, 2, b);
        ah_sq_bind_text(q, 3, keep_key);
        ah_sq_bind_text(q, 4, keep_value);
        rc = ah_sq_exec_changes(s, q, "record_prune", n_out);
    }
    ah_sq_unlock(s);
    return rc;
}
