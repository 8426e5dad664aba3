/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The replayable event log: GET /v1/events?after=CURSOR&types=...&limit=N
 * answers a tenant's events from the outbox in order, each in the same
 * envelope its webhook carried ({"id":"evt_N","cursor":N,"type",
 * "timestamp","data"}), with next_cursor to pass as `after` next time.
 * A request reads at most AH_EVENTS_SCAN_MAX events (docs/api.md).
 * Events are kept for [events] retention_days; pruning skips events a
 * plugin delivery or an enabled webhook endpoint still waits for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claims.h"
#include "eventlog.h"
#include "events.h"
#include "webhooks.h"

#define EV_LIMIT_DEFAULT 100
#define EV_LIMIT_MAX AH_EVENTS_LIMIT_MAX
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

/* One page of GET /v1/events being filled, one outbox_after callback per
 * event. */
typedef struct ev_page {
    cJSON *data;
    const char *types;
    int limit;
    long long cursor; /* the last event read into the page (or left out by types) */
    long long last;   /* the last event returned */
    bool more;        /* a matching event did not fit in the page */
    int n;            /* events read in this step */
} ev_page;

static void ev_row(void *arg, const ah_outbox_row *ev)
{
    ev_page *pg = arg;
    pg->n++;
    if (pg->more)
        return;
    pg->cursor = ev->id;
    if (ev->topic == NULL || !ah_topic_matches_list(pg->types, ev->topic))
        return;
    if (cJSON_GetArraySize(pg->data) == pg->limit) {
        pg->more = true;
        return;
    }
    char *env = ah_event_envelope(ev->id, ev->topic, ev->body, ev->created_at);
    cJSON *e = env != NULL ? cJSON_Parse(env) : NULL;
    free(env);
    if (e != NULL)
        cJSON_AddItemToArray(pg->data, e);
    pg->last = ev->id;
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
    ev_page pg = {.data = data, .types = types, .limit = (int)limit, .cursor = after,
                  .last = after};
    /* Filtering by type happens here (patterns are ours, not the store's),
     * so read in steps until the page is full or the log ends. */
    bool ended = false;
    /* At most AH_EVENTS_SCAN_MAX: a filter that matches little would
     * otherwise read the tenant's whole log at every poll. */
    for (int scanned = 0; scanned < AH_EVENTS_SCAN_MAX; scanned += EV_SCAN) {
        pg.n = 0;
        if (core->store->ops->outbox_after(core->store, tenant_id, pg.cursor, EV_SCAN, ev_row,
                                           &pg) != 0) {
            cJSON_Delete(data);
            ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot read the store");
            return;
        }
        ended = pg.n < EV_SCAN;
        if (pg.more || ended)
            break;
    }
    /* The cursor to resume from: after a full page, the last event
     * returned; otherwise the last event read, matching or not, so that
     * polling moves on past events the filter leaves out. Nothing is
     * skipped by that: a tenant's events become visible in id order (the
     * store's outbox_add), so no event can appear below one already read. */
    long long last = pg.more ? pg.last : pg.cursor;
    bool more = pg.more || !ended;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        cJSON_Delete(data);
        ah_ex_error(ex, 500, AH_E_INTERNAL, "out of memory");
        return;
    }
    cJSON_AddItemToObject(o, "data", data);
    char nc[24];
    snprintf(nc, sizeof nc, "%lld", last);
    cJSON_AddStringToObject(o, "next_cursor", nc);
    cJSON_AddBoolToObject(o, "has_more", more);
    ah_ex_respond_json(ex, 200, o);
}

/* --- disabled webhook endpoints past retention ------------------------- */

/* A disabled endpoint's copy of what webhook_list lends. */
typedef struct wh_off {
    int64_t id, tenant_id, cursor;
    char *url, *types;
} wh_off;

typedef struct wh_offs {
    wh_off *v;
    size_t n, cap;
} wh_offs;

static void collect_disabled(void *arg, const ah_webhook_row *ep)
{
    wh_offs *l = arg;
    if (ep->enabled)
        return;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        wh_off *nv = realloc(l->v, nc * sizeof *nv);
        if (nv == NULL)
            return;
        l->v = nv;
        l->cap = nc;
    }
    wh_off *o = &l->v[l->n];
    o->url = strdup(ep->url != NULL ? ep->url : "");
    o->types = strdup(ep->event_types != NULL ? ep->event_types : "*");
    if (o->url == NULL || o->types == NULL) {
        free(o->url);
        free(o->types);
        return;
    }
    o->id = ep->id;
    o->tenant_id = ep->tenant_id;
    o->cursor = ep->cursor;
    l->n++;
}

/* The events after a cursor created before the cutoff (an outbox_after
 * callback per event, in id order). */
typedef struct expired_walk {
    const char *cutoff, *types;
    int64_t last;  /* the last of them */
    long matched;  /* those its types match */
    bool done;     /* an event at or past the cutoff was reached */
    int n;         /* events read in this step */
} expired_walk;

static void expired_row(void *arg, const ah_outbox_row *ev)
{
    expired_walk *w = arg;
    w->n++;
    if (w->done || ev->created_at == NULL || strcmp(ev->created_at, w->cutoff) >= 0) {
        w->done = true;
        return;
    }
    w->last = ev->id;
    if (ev->topic != NULL && ah_topic_matches_list(w->types, ev->topic))
        w->matched++;
}

#define EXPIRED_STEPS 50 /* per endpoint and prune: a backlog goes over several */

/* Enabled endpoints keep their events from pruning (outbox_prune); a
 * disabled one may stay so for ever and keeps none. Its tenant's events
 * that pass the retention meanwhile are skipped, knowingly: its cursor
 * moves past them and the skip is reported (a warning and
 * event.webhook.events_pruned with how many its types matched), so that
 * enabling it resumes after them and says what it cannot send. */
static void skip_expired_for_disabled(ah_core *core, const char *cutoff)
{
    wh_offs l = {0};
    if (core->store->ops->webhook_list(core->store, 0, 0, 0, collect_disabled, &l) != 0)
        l.n = 0;
    for (size_t i = 0; i < l.n; i++) {
        wh_off *o = &l.v[i];
        /* Under the endpoint's claim, as its passes (webhooks.c), and read
         * again under it: one enabled meanwhile, or moved on by a pass,
         * is left as it is. */
        ah_claim cl = {0};
        if (!ah_claim_take(core, &cl, "webhook:%lld", (long long)o->id)) {
            free(o->url);
            free(o->types);
            continue;
        }
        wh_offs now = {0};
        bool same = false;
        if (core->store->ops->webhook_list(core->store, o->tenant_id, 0, 0,
                                           collect_disabled, &now) == 0)
            for (size_t k = 0; k < now.n; k++)
                same = same || (now.v[k].id == o->id && now.v[k].cursor == o->cursor);
        for (size_t k = 0; k < now.n; k++) {
            free(now.v[k].url);
            free(now.v[k].types);
        }
        free(now.v);
        expired_walk w = {.cutoff = cutoff, .types = o->types, .last = o->cursor};
        bool ok = same;
        for (int step = 0; ok && step < EXPIRED_STEPS && !w.done; step++) {
            w.n = 0;
            if (core->store->ops->outbox_after(core->store, o->tenant_id, w.last, EV_SCAN,
                                               expired_row, &w) != 0) {
                ok = false;
                break;
            }
            if (w.n < EV_SCAN)
                break;
        }
        bool moved = false;
        if (ok && w.last > o->cursor && ah_claim_begin(core, &cl) == 0) {
            int rc = core->store->ops->webhook_advance(core->store, o->id, w.last);
            moved = ah_claim_end(core, &cl, rc == AH_STORE_OK) == 0 && rc == AH_STORE_OK;
        }
        ah_claim_give_back(core, &cl);
        if (moved && w.matched > 0) {
            /* (Not its URL: it may carry a credential; webhooks.c.) */
            ah_log(&core->log, AH_LOG_WARN, "webhooks",
                   "endpoint %lld is disabled: %ld of its events (cursors %lld to %lld) "
                   "passed the %d days of [events] retention_days and are skipped; enabled "
                   "again, it resumes after them", (long long)o->id, w.matched,
                   (long long)o->cursor + 1, (long long)w.last,
                   core->cfg.events_retention_days);
            cJSON *b = cJSON_CreateObject();
            if (b != NULL) {
                cJSON_AddNumberToObject(b, "endpoint_id", (double)o->id);
                cJSON_AddStringToObject(b, "url", o->url);
                cJSON_AddNumberToObject(b, "count", (double)w.matched);
                cJSON_AddNumberToObject(b, "after_cursor", (double)o->cursor);
                cJSON_AddNumberToObject(b, "through_cursor", (double)w.last);
            }
            ah_core_publish(core, o->tenant_id, "event.webhook.events_pruned", b);
        }
        free(o->url);
        free(o->types);
    }
    free(l.v);
}

void ah_eventlog_prune(ah_core *core)
{
    char cutoff[32];
    ah_iso_in(-(long)core->cfg.events_retention_days * 86400L * 1000L, cutoff);
    skip_expired_for_disabled(core, cutoff);
    int64_t n = 0;
    if (core->store->ops->outbox_prune(core->store, cutoff, &n) == 0 && n > 0)
        ah_log(&core->log, AH_LOG_INFO, "events", "pruned %lld events older than %d days",
               (long long)n, core->cfg.events_retention_days);
}
