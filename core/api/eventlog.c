/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The replayable event log: GET /v1/events?after=CURSOR&types=...&limit=N
 * answers a tenant's events from the outbox in order, each in the same
 * envelope its webhook carried ({"id":"evt_N","cursor":N,"type",
 * "timestamp","data"}), with next_cursor to pass as `after` next time.
 * Events are kept for [events] retention_days; pruning skips events a
 * plugin delivery still waits for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventlog.h"
#include "webhooks.h"

#define EV_LIMIT_DEFAULT 100
#define EV_LIMIT_MAX 1000
#define EV_SCAN 1000 /* outbox rows read per step while filtering by types */

static bool parse_nonneg(const char *s, long long max, long long *out)
{
    if (s == NULL || *s == '\0' || strlen(s) > 18)
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    long long v = strtoll(s, NULL, 10);
    if (v > max)
        return false;
    *out = v;
    return true;
}

static bool valid_types(const char *t)
{
    if (strlen(t) > 1024)
        return false;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-' || *p == '*' || *p == ','))
            return false;
    return true;
}

void ah_events_api(ah_core *core, ah_http_exchange *ex, int64_t tenant_id)
{
    long long after = 0, limit = EV_LIMIT_DEFAULT;
    const char *a = ah_ex_query(ex, "after"), *l = ah_ex_query(ex, "limit");
    const char *types = ah_ex_query(ex, "types");
    if (a != NULL && !parse_nonneg(a, (long long)1 << 60, &after)) {
        ah_ex_error(ex, 400, AH_E_INVALID, "after must be a cursor: next_cursor of a previous "
                    "page, or an event's cursor");
        return;
    }
    if (l != NULL && (!parse_nonneg(l, EV_LIMIT_MAX, &limit) || limit < 1)) {
        ah_ex_error(ex, 400, AH_E_INVALID, "limit must be an integer from 1 to %d",
                    EV_LIMIT_MAX);
        return;
    }
    if (types != NULL && !valid_types(types)) {
        ah_ex_error(ex, 400, AH_E_INVALID, "types must be a comma-separated list of event "
                    "types or prefix.* patterns");
        return;
    }
    cJSON *data = cJSON_CreateArray();
    if (data == NULL) {
        ah_ex_error(ex, 500, AH_E_INTERNAL, "out of memory");
        return;
    }
    char tid[24];
    snprintf(tid, sizeof tid, "%lld", (long long)tenant_id);
    long long cursor = after, last = after;
    bool more = false;
    /* Filtering by type happens here (patterns are ours, not SQL), so read
     * in steps until the page is full or the log ends. */
    for (;;) {
        char cur[24], lim[16];
        snprintf(cur, sizeof cur, "%lld", cursor);
        snprintf(lim, sizeof lim, "%d", EV_SCAN);
        const char *p[] = {tid, cur, lim};
        cJSON *rows = cJSON_CreateArray();
        if (rows == NULL ||
            ah_trust_sql(core, "SELECT id, topic, body, created_at FROM outbox "
                               "WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                         p, 3, ah_trust_rows_json, rows, NULL) != 0) {
            cJSON_Delete(rows);
            cJSON_Delete(data);
            ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot read the store");
            return;
        }
        int n = cJSON_GetArraySize(rows);
        const cJSON *row;
        cJSON_ArrayForEach(row, rows) {
            const cJSON *idv = cJSON_GetArrayItem(row, 0), *tv = cJSON_GetArrayItem(row, 1);
            const cJSON *bv = cJSON_GetArrayItem(row, 2), *cv = cJSON_GetArrayItem(row, 3);
            long long id = cJSON_IsString(idv) ? strtoll(idv->valuestring, NULL, 10) : 0;
            cursor = id;
            if (!cJSON_IsString(tv) || !ah_topic_matches_list(types, tv->valuestring))
                continue;
            if (cJSON_GetArraySize(data) == limit) {
                more = true;
                break;
            }
            char *env = ah_event_envelope(id, tv->valuestring,
                                          cJSON_IsString(bv) ? bv->valuestring : NULL,
                                          cJSON_IsString(cv) ? cv->valuestring : NULL);
            cJSON *e = env != NULL ? cJSON_Parse(env) : NULL;
            free(env);
            if (e != NULL)
                cJSON_AddItemToArray(data, e);
            last = id;
        }
        cJSON_Delete(rows);
        if (more || n < EV_SCAN)
            break;
    }
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        cJSON_Delete(data);
        ah_ex_error(ex, 500, AH_E_INTERNAL, "out of memory");
        return;
    }
    cJSON_AddItemToObject(o, "data", data);
    /* The cursor to resume from: the last event returned, or (a page with
     * none) the caller's own, so that polling never skips. */
    char nc[24];
    snprintf(nc, sizeof nc, "%lld", last);
    cJSON_AddStringToObject(o, "next_cursor", nc);
    cJSON_AddBoolToObject(o, "has_more", more);
    ah_ex_respond_json(ex, 200, o);
}

void ah_eventlog_prune(ah_core *core)
{
    char cutoff[32];
    ah_trust_iso_in(-(long)core->cfg.events_retention_days * 86400L * 1000L, cutoff);
    const char *p[] = {cutoff};
    int64_t n = 0;
    if (ah_trust_sql(core, "DELETE FROM outbox WHERE created_at < $1 AND id NOT IN "
                           "(SELECT outbox_id FROM deliveries)",
                     p, 1, NULL, NULL, &n) == 0 && n > 0)
        ah_log(&core->log, AH_LOG_INFO, "events", "pruned %lld events older than %d days",
               (long long)n, core->cfg.events_retention_days);
}
