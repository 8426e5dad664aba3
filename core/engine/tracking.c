/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Remote deletions and stage history, fed by the sync engine.
 *
 * Deletions: a full sync (one that started with no cursor: the first run,
 * or after ah_sync_reset_cursor, `atshub sync --full`) collects the ids of
 * every record it was given; when it completes, the connection's records
 * of that type it did not see get remote_deleted_at and an
 * event.<type>.deleted, and records it saw again lose the flag. Only a run
 * that saw the whole list can tell, so incremental runs never flag; and
 * only of the records stored before it began (stored_at earlier than the
 * set's start): one stored meanwhile (record_put, an inbound write) came
 * after pages the run had read already, which could not hold it.
 *
 * Stage history: before a page is upserted, each application whose stored
 * fields.stage_id differs from the incoming one gets a stage_history row
 * (from, to, when atshub saw the change).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conns.h"
#include "crypto.h"
#include "events.h"
#include "tracking.h"


/* The ids a full run was given. An atshub id ("rec_" + 24 hex digits) is
 * kept as its 12 bytes, one slot of one array: no allocation per id, 12
 * bytes a record (1.2 MB for 100,000), where strdup'd strings took ~40.
 * Any other form (none is made today) goes to a list of strings. */
#define SEEN_BIN 12

struct ah_seen {
    unsigned char *bin; /* n_bin slots of SEEN_BIN bytes */
    size_t n_bin, cap_bin;
    char **ids;         /* ids of another form */
    size_t n, cap;
    bool sorted;
    bool oom; /* an id could not be kept: the sweep must not flag anything */
    /* When the run began (ah_now_iso: the clock and the form of the
     * store's stored_at): only records stored earlier may be flagged. */
    char since[32];
};

ah_seen *ah_seen_new(void)
{
    ah_seen *s = calloc(1, sizeof(ah_seen));
    if (s != NULL)
        ah_now_iso(s->since);
    return s;
}

void ah_seen_free(ah_seen *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->ids[i]);
    free(s->ids);
    free(s->bin);
    free(s);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The 12 bytes of an id of the standard form; false for any other. */
static bool seen_bin(const char *id, unsigned char out[SEEN_BIN])
{
    if (strncmp(id, "rec_", 4) != 0 || strlen(id) != 4 + 2 * SEEN_BIN)
        return false;
    for (int i = 0; i < SEEN_BIN; i++) {
        int hi = hexval(id[4 + 2 * i]), lo = hexval(id[5 + 2 * i]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

void ah_seen_add(ah_seen *s, const char *id)
{
    if (s == NULL || id == NULL)
        return;
    unsigned char b[SEEN_BIN];
    if (seen_bin(id, b)) {
        if (s->n_bin == s->cap_bin) {
            size_t nc = s->cap_bin ? s->cap_bin * 2 : 1024;
            unsigned char *nb = realloc(s->bin, nc * SEEN_BIN);
            if (nb == NULL) {
                s->oom = true;
                return;
            }
            s->bin = nb;
            s->cap_bin = nc;
        }
        memcpy(s->bin + s->n_bin++ * SEEN_BIN, b, SEEN_BIN);
        s->sorted = false;
        return;
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        char **ni = realloc(s->ids, nc * sizeof *ni);
        if (ni == NULL) {
            s->oom = true;
            return;
        }
        s->ids = ni;
        s->cap = nc;
    }
    char *d = strdup(id);
    if (d == NULL) {
        s->oom = true;
        return;
    }
    s->ids[s->n++] = d;
    s->sorted = false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_bin(const void *a, const void *b)
{
    return memcmp(a, b, SEEN_BIN);
}

static bool seen_has(const ah_seen *s, const char *id)
{
    unsigned char b[SEEN_BIN];
    if (seen_bin(id, b))
        return s->n_bin > 0 && bsearch(b, s->bin, s->n_bin, SEEN_BIN, cmp_bin) != NULL;
    if (s->n == 0)
        return false;
    return bsearch(&id, s->ids, s->n, sizeof *s->ids, cmp_str) != NULL;
}

/* The sweep of one connection and type, one record_marks callback per
 * stored record. */
typedef struct sweep {
    ah_core *core;
    const ah_conn *c;
    const char *type;
    const ah_seen *seen;
    const char *now;
    long flagged;
    char last[128]; /* the page's last id (record_marks_after) */
    int rows;       /* rows of the page */
} sweep;

static void sweep_record(void *arg, const ah_record_mark *m)
{
    sweep *w = arg;
    ah_core *core = w->core;
    if (m->id == NULL)
        return;
    snprintf(w->last, sizeof w->last, "%s", m->id);
    w->rows++;
    bool was_seen = seen_has(w->seen, m->id);
    if (was_seen && m->remote_deleted_at != NULL) {
        if (core->store->ops->record_mark_deleted(core->store, m->id, NULL) != 0)
            ah_log(&core->log, AH_LOG_WARN, "sync", "%s: cannot clear remote_deleted_at",
                   m->id);
    } else if (!was_seen && m->remote_deleted_at == NULL && m->stored_at != NULL &&
               strcmp(m->stored_at, w->seen->since) < 0) {
        if (core->store->ops->record_mark_deleted(core->store, m->id, w->now) != 0)
            return;
        w->flagged++;
        char topic[96];
        snprintf(topic, sizeof topic, "event.%.40s.deleted", w->type);
        cJSON *b = cJSON_CreateObject();
        if (b != NULL) {
            cJSON_AddStringToObject(b, "id", m->id);
            cJSON_AddStringToObject(b, "remote_id", m->remote_id != NULL ? m->remote_id : "");
            cJSON_AddStringToObject(b, "type", w->type);
            cJSON_AddStringToObject(b, "connection", w->c->name);
            cJSON_AddStringToObject(b, "remote_deleted_at", w->now);
        }
        ah_core_publish(core, w->c->tenant_id, topic, b);
    }
}

long ah_tracking_sweep(ah_core *core, const ah_conn *c, const char *type, const ah_seen *seen)
{
    if (seen == NULL || seen->oom)
        return 0;
    ah_seen *s = (ah_seen *)seen;
    if (!s->sorted) {
        if (s->n > 1)
            qsort(s->ids, s->n, sizeof *s->ids, cmp_str);
        if (s->n_bin > 1)
            qsort(s->bin, s->n_bin, SEEN_BIN, cmp_bin);
        s->sorted = true;
    }
    char now[32];
    ah_now_iso(now);
    sweep w = {.core = core, .c = c, .type = type, .seen = s, .now = now};
    const ah_store_ops *ops = core->store->ops;
    if (ops->record_marks_after != NULL) {
        /* A page of stored records at a time: the sweep's memory does not
         * grow with the connection's records. */
        enum { SWEEP_PAGE = 500 };
        for (;;) {
            char after[128];
            snprintf(after, sizeof after, "%s", w.last);
            w.rows = 0;
            if (ops->record_marks_after(core->store, c->id, type, after[0] ? after : NULL,
                                        SWEEP_PAGE, sweep_record, &w) != 0)
                return w.flagged;
            if (w.rows < SWEEP_PAGE)
                break; /* the last page */
        }
    } else if (ops->record_marks(core->store, c->id, type, sweep_record, &w) != 0) {
        return 0;
    }
    if (w.flagged > 0)
        ah_log(&core->log, AH_LOG_INFO, "sync", "%s/%s: %ld %s record(s) no longer returned by "
               "the provider: flagged remote_deleted_at", c->tenant, c->name, w.flagged, type);
    return w.flagged;
}

/* fields.stage_id as text ("" when absent). */
static void stage_of(const char *fields_text, char *out, size_t outlen)
{
    out[0] = '\0';
    cJSON *f = fields_text != NULL ? cJSON_Parse(fields_text) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, "stage_id");
    if (v == NULL)
        v = cJSON_GetObjectItemCaseSensitive(f, "stage");
    if (cJSON_IsString(v))
        snprintf(out, outlen, "%s", v->valuestring);
    else if (cJSON_IsNumber(v))
        snprintf(out, outlen, "%.17g", v->valuedouble);
    cJSON_Delete(f);
}

/* 2^21 bits (256 KiB) and two probes: for 100,000 ids about one id in a
 * hundred not added reads "maybe" (and is looked up, finding nothing); for
 * a million, about one in three. Correct at any size, only slower. */
#define RUN_IDS_BITS (1u << 21)

struct ah_run_ids {
    uint64_t bits[RUN_IDS_BITS / 64];
};

ah_run_ids *ah_run_ids_new(void)
{
    return calloc(1, sizeof(ah_run_ids));
}

void ah_run_ids_free(ah_run_ids *f)
{
    free(f);
}

/* The two probes of an id: two 32-bit words of its SHA-256. */
static void run_ids_probes(const char *remote_id, uint32_t p[2])
{
    unsigned char md[32];
    ah_sha256(remote_id, strlen(remote_id), md);
    for (int k = 0; k < 2; k++)
        p[k] = ((uint32_t)md[4 * k] << 24 | (uint32_t)md[4 * k + 1] << 16 |
                (uint32_t)md[4 * k + 2] << 8 | md[4 * k + 3]) % RUN_IDS_BITS;
}

void ah_run_ids_add(ah_run_ids *f, const char *remote_id)
{
    if (f == NULL || remote_id == NULL)
        return;
    uint32_t p[2];
    run_ids_probes(remote_id, p);
    for (int k = 0; k < 2; k++)
        f->bits[p[k] / 64] |= (uint64_t)1 << (p[k] % 64);
}

bool ah_run_ids_maybe(const ah_run_ids *f, const char *remote_id)
{
    if (f == NULL || remote_id == NULL)
        return true;
    uint32_t p[2];
    run_ids_probes(remote_id, p);
    for (int k = 0; k < 2; k++)
        if ((f->bits[p[k] / 64] & ((uint64_t)1 << (p[k] % 64))) == 0)
            return false;
    return true;
}

bool ah_tracking_tracks(const char *type)
{
    return type != NULL && strcmp(type, "application") == 0;
}

void ah_tracking_stage_changes(ah_core *core, const ah_conn *c, const ah_record_in *in,
                               size_t n, const ah_run_ids *fresh)
{
    for (size_t i = 0; i < n; i++) {
        if (!ah_tracking_tracks(in[i].type))
            continue;
        if (fresh != NULL && !ah_run_ids_maybe(fresh, in[i].remote_id))
            continue; /* not stored when the run began, nor since */
        ah_record_row row;
        memset(&row, 0, sizeof row);
        if (core->store->ops->record_get(core->store, c->id, in[i].type, in[i].remote_id,
                                         &row) != AH_STORE_OK)
            continue; /* new: no transition yet */
        char from[128], to[128];
        stage_of(row.fields, from, sizeof from);
        stage_of(in[i].fields, to, sizeof to);
        if (strcmp(from, to) != 0 &&
            core->store->ops->stage_add(core->store, row.id, c->tenant_id, from[0] ? from : NULL,
                                        to[0] ? to : NULL) != 0)
            ah_log(&core->log, AH_LOG_WARN, "sync", "%s/%s: cannot record the stage change "
                   "of %s", c->tenant, c->name, row.id);
        ah_record_row_free(&row);
    }
}

bool ah_record_deleted(ah_core *core, const char *record_id)
{
    bool del = false;
    return core->store->ops->record_is_deleted(core->store, record_id, &del) == AH_STORE_OK &&
           del;
}

int ah_sync_reset_cursor(ah_core *core, int64_t conn_id, const char *type)
{
    static const char *const types[] = {"jobs", "applications", "candidates"};
    for (size_t i = 0; i < 3; i++) {
        if (type != NULL && strcmp(type, types[i]) != 0)
            continue;
        char key[64];
        snprintf(key, sizeof key, "sync.%s", types[i]);
        if (core->store->ops->cursor_set(core->store, conn_id, key, "{}") != 0)
            return -1;
    }
    return 0;
}

/* Appends [record_id, last_changed_at] to the JSON array `arg`. */
static void changed_row(void *arg, const ah_stage_row *r)
{
    cJSON *row = cJSON_CreateArray();
    if (row == NULL)
        return;
    cJSON_AddItemToArray(row, r->record_id != NULL ? cJSON_CreateString(r->record_id)
                                                   : cJSON_CreateNull());
    cJSON_AddItemToArray(row, r->changed_at != NULL ? cJSON_CreateString(r->changed_at)
                                                    : cJSON_CreateNull());
    cJSON_AddItemToArray(arg, row);
}

cJSON *ah_stage_changed_since(ah_core *core, int64_t tenant_id, const char *after, int limit)
{
    cJSON *rows = cJSON_CreateArray();
    if (rows == NULL || core->store->ops->stage_changed_since(core->store, tenant_id, after,
                                                              limit, changed_row, rows) != 0) {
        cJSON_Delete(rows);
        return NULL;
    }
    return rows;
}

/* Appends one transition {"from_stage","to_stage","changed_at"} to `arg`. */
static void stage_change_json(void *arg, const ah_stage_row *r)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return;
    if (r->from_stage != NULL)
        cJSON_AddStringToObject(o, "from_stage", r->from_stage);
    else
        cJSON_AddNullToObject(o, "from_stage");
    if (r->to_stage != NULL)
        cJSON_AddStringToObject(o, "to_stage", r->to_stage);
    else
        cJSON_AddNullToObject(o, "to_stage");
    cJSON_AddStringToObject(o, "changed_at", r->changed_at ? r->changed_at : "");
    cJSON_AddItemToArray(arg, o);
}

cJSON *ah_stage_history(ah_core *core, const char *record_id)
{
    cJSON *out = cJSON_CreateArray();
    if (out == NULL ||
        core->store->ops->stage_history(core->store, record_id, stage_change_json, out) != 0) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}
