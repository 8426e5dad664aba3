/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Remote deletions and stage history, fed by the sync engine.
 *
 * Deletions: a full sync (one that started with no cursor: the first run,
 * or after ah_sync_reset_cursor, `atshub sync --full`) collects the ids of
 * every record it was given; when it completes, the connection's records
 * of that type it did not see get remote_deleted_at and an
 * event.<type>.deleted, and records it saw again lose the flag. Only a run
 * that saw the whole list can tell, so incremental runs never flag.
 *
 * Stage history: before a page is upserted, each application whose stored
 * fields.stage_id differs from the incoming one gets a stage_history row
 * (from, to, when atshub saw the change).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conns.h"
#include "events.h"
#include "tracking.h"
#include "webhooks.h" /* the SQL helpers, until they move into the store */

struct ah_seen {
    char **ids;
    size_t n, cap;
    bool sorted;
    bool oom; /* an id could not be kept: the sweep must not flag anything */
};

ah_seen *ah_seen_new(void)
{
    return calloc(1, sizeof(ah_seen));
}

void ah_seen_free(ah_seen *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->ids[i]);
    free(s->ids);
    free(s);
}

void ah_seen_add(ah_seen *s, const char *id)
{
    if (s == NULL || id == NULL)
        return;
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

static bool seen_has(const ah_seen *s, const char *id)
{
    if (s->n == 0)
        return false;
    return bsearch(&id, s->ids, s->n, sizeof *s->ids, cmp_str) != NULL;
}

long ah_tracking_sweep(ah_core *core, const ah_conn *c, const char *type, const ah_seen *seen)
{
    if (seen == NULL || seen->oom)
        return 0;
    ah_seen *s = (ah_seen *)seen;
    if (!s->sorted && s->n > 1) {
        qsort(s->ids, s->n, sizeof *s->ids, cmp_str);
        s->sorted = true;
    }
    char cid[24], now[32];
    snprintf(cid, sizeof cid, "%lld", (long long)c->id);
    ah_now_iso(now);
    const char *p[] = {cid, type};
    cJSON *rows = ah_trust_rows(core, "SELECT id, remote_id, remote_deleted_at FROM records "
                                      "WHERE connection_id = $1 AND type = $2",
                                p, 2);
    if (rows == NULL)
        return 0;
    long flagged = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        const char *id = ah_trust_col(row, 0), *remote = ah_trust_col(row, 1),
                   *del = ah_trust_col(row, 2);
        if (id == NULL)
            continue;
        bool was_seen = seen_has(s, id);
        if (was_seen && del != NULL) {
            const char *pu[] = {id};
            ah_trust_sql(core, "UPDATE records SET remote_deleted_at = NULL WHERE id = $1", pu,
                         1, NULL, NULL, NULL);
        } else if (!was_seen && del == NULL) {
            const char *pu[] = {id, now};
            if (ah_trust_sql(core, "UPDATE records SET remote_deleted_at = $2 WHERE id = $1",
                             pu, 2, NULL, NULL, NULL) != 0)
                continue;
            flagged++;
            char topic[96];
            snprintf(topic, sizeof topic, "event.%.40s.deleted", type);
            cJSON *b = cJSON_CreateObject();
            if (b != NULL) {
                cJSON_AddStringToObject(b, "id", id);
                cJSON_AddStringToObject(b, "remote_id", remote != NULL ? remote : "");
                cJSON_AddStringToObject(b, "type", type);
                cJSON_AddStringToObject(b, "connection", c->name);
                cJSON_AddStringToObject(b, "remote_deleted_at", now);
            }
            ah_core_publish(core, c->tenant_id, topic, b);
        }
    }
    cJSON_Delete(rows);
    if (flagged > 0)
        ah_log(&core->log, AH_LOG_INFO, "sync", "%s/%s: %ld %s record(s) no longer returned by "
               "the provider: flagged remote_deleted_at", c->tenant, c->name, flagged, type);
    return flagged;
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

void ah_tracking_stage_changes(ah_core *core, const ah_conn *c, const ah_record_in *in,
                               size_t n)
{
    char tid[24], now[32];
    snprintf(tid, sizeof tid, "%lld", (long long)c->tenant_id);
    ah_now_iso(now);
    for (size_t i = 0; i < n; i++) {
        if (in[i].type == NULL || strcmp(in[i].type, "application") != 0)
            continue;
        ah_record_row row;
        memset(&row, 0, sizeof row);
        if (core->store->ops->record_get(core->store, c->id, in[i].type, in[i].remote_id,
                                         &row) != AH_STORE_OK)
            continue; /* new: no transition yet */
        char from[128], to[128];
        stage_of(row.fields, from, sizeof from);
        stage_of(in[i].fields, to, sizeof to);
        if (strcmp(from, to) != 0) {
            const char *p[] = {row.id, tid, from[0] ? from : NULL, to[0] ? to : NULL, now};
            ah_trust_sql(core, "INSERT INTO stage_history(record_id, tenant_id, from_stage, "
                               "to_stage, changed_at) VALUES($1, $2, $3, $4, $5)",
                         p, 5, NULL, NULL, NULL);
        }
        ah_record_row_free(&row);
    }
}

bool ah_record_deleted(ah_core *core, const char *record_id)
{
    const char *p[] = {record_id};
    cJSON *rows = ah_trust_rows(core, "SELECT remote_deleted_at FROM records WHERE id = $1", p, 1);
    bool del = rows != NULL && ah_trust_col(cJSON_GetArrayItem(rows, 0), 0) != NULL;
    cJSON_Delete(rows);
    return del;
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

cJSON *ah_stage_changed_since(ah_core *core, int64_t tenant_id, const char *after, int limit)
{
    char tid[24], lim[16];
    snprintf(tid, sizeof tid, "%lld", (long long)tenant_id);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {tid, after, lim};
    return ah_trust_rows(core,
                         "SELECT h.record_id, max(h.changed_at) AS last FROM stage_history h "
                         "WHERE h.tenant_id = $1 AND h.changed_at > $2 GROUP BY h.record_id "
                         "ORDER BY last, h.record_id LIMIT $3",
                         p, 3);
}

static cJSON *stage_change_json(const cJSON *row)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    if (ah_trust_col(row, 0) != NULL)
        cJSON_AddStringToObject(o, "from_stage", ah_trust_col(row, 0));
    else
        cJSON_AddNullToObject(o, "from_stage");
    if (ah_trust_col(row, 1) != NULL)
        cJSON_AddStringToObject(o, "to_stage", ah_trust_col(row, 1));
    else
        cJSON_AddNullToObject(o, "to_stage");
    cJSON_AddStringToObject(o, "changed_at", ah_trust_col(row, 2) ? ah_trust_col(row, 2) : "");
    return o;
}

cJSON *ah_stage_history(ah_core *core, const char *record_id)
{
    const char *p[] = {record_id};
    return ah_trust_map_rows(core,
                             "SELECT from_stage, to_stage, changed_at FROM stage_history "
                             "WHERE record_id = $1 ORDER BY id",
                             p, 1, stage_change_json);
}
