/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Events: publishing them and delivering them to the plugins that
 * subscribe, at least once and in order per connection.
 *
 * Publishing stores the event in the outbox and, in the same transaction,
 * one pending delivery for every enabled connection whose plugin
 * subscribes to the topic. Deliveries of a connection run on that
 * connection's bus lane (so they are serialised with its requests), oldest
 * first; a handler that fails leaves its delivery in place with a backoff,
 * and the ones behind it wait. The ticker re-kicks connections whose
 * deliveries are due, so events published before a crash or while a
 * provider was down are delivered when it comes back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conns.h"
#include "core.h"
#include "events.h"

#include "claims.h"

#define DELIVERY_TOPIC "core.deliver"
#define DELIVERY_BATCH 256

static bool pattern_matches(const char *pattern, const char *topic)
{
    size_t n = strlen(pattern);
    if (strcmp(pattern, "*") == 0)
        return true;
    if (n >= 2 && strcmp(pattern + n - 2, ".*") == 0)
        return strncmp(pattern, topic, n - 1) == 0;
    return strcmp(pattern, topic) == 0;
}

static const ah_subscription *subscription_for(const ah_generation *gen, const char *topic)
{
    for (const ah_subscription *s = gen->desc->subscriptions; s != NULL && s->pattern != NULL; s++)
        if (pattern_matches(s->pattern, topic))
            return s;
    return NULL;
}

/* --- who subscribes -------------------------------------------------------- */

typedef struct sub_walk {
    const char *topic;
    char **plugins;
    size_t n, cap;
} sub_walk;

static void collect_plugin(void *arg, const ah_generation *gen)
{
    sub_walk *w = arg;
    if (subscription_for(gen, w->topic) == NULL)
        return;
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 8;
        char **np = realloc(w->plugins, nc * sizeof(*np));
        if (np == NULL)
            return;
        w->plugins = np;
        w->cap = nc;
    }
    w->plugins[w->n] = strdup(gen->name);
    if (w->plugins[w->n] != NULL)
        w->n++;
}

typedef struct id_list {
    int64_t *ids;
    size_t n, cap;
} id_list;

static void collect_conn(void *arg, ah_conn *c)
{
    id_list *l = arg;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        int64_t *ni = realloc(l->ids, nc * sizeof(*ni));
        if (ni == NULL)
            return;
        l->ids = ni;
        l->cap = nc;
    }
    l->ids[l->n++] = c->id;
}

/* The enabled connections of the tenant whose plugin subscribes to topic. */
static void subscribers_of(ah_core *core, int64_t tenant_id, const char *topic, id_list *out)
{
    sub_walk w = {.topic = topic};
    ah_registry_each(core->registry, collect_plugin, &w);
    for (size_t i = 0; i < w.n; i++) {
        ah_conns_each_in_tenant(core, tenant_id, w.plugins[i], collect_conn, out);
        free(w.plugins[i]);
    }
    free(w.plugins);
}

/* The batch with bodies as JSON text (texts[i] borrowed). */
static int publish_texts(ah_core *core, int64_t tenant_id, const char *const *topics,
                         const char *const *texts, size_t n)
{
    ah_outbox_in *ev = calloc(n ? n : 1, sizeof *ev);
    id_list *subs = calloc(n ? n : 1, sizeof *subs);
    int rc = ev != NULL && subs != NULL ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* Events of one batch mostly share a topic: reuse the previous
         * event's subscribers rather than walking the registry again. */
        if (i > 0 && strcmp(topics[i], topics[i - 1]) == 0) {
            ev[i].conn_ids = ev[i - 1].conn_ids;
            ev[i].nconn = ev[i - 1].nconn;
        } else {
            subscribers_of(core, tenant_id, topics[i], &subs[i]);
            ev[i].conn_ids = subs[i].ids;
            ev[i].nconn = subs[i].n;
        }
        ev[i].topic = topics[i];
        ev[i].body = texts[i];
    }
    if (rc == 0 && n > 0 &&
        core->store->ops->outbox_add_batch(core->store, tenant_id, ev, n) != 0) {
        ah_log(&core->log, AH_LOG_ERROR, "events", "cannot store %zu event(s) (%s, ...)", n,
               topics[0]);
        rc = -1;
    }
    /* Kick each subscriber's lane once; if the bus refuses (overloaded, no
     * bus in this process), the ticker delivers later: the deliveries are
     * stored. */
    for (size_t i = 0; rc == 0 && core->bus != NULL && i < n; i++)
        for (size_t k = 0; k < subs[i].n; k++)
            ah_bus_publish_tenant(core->bus, (uint64_t)tenant_id, (uint64_t)subs[i].ids[k],
                                  DELIVERY_TOPIC, NULL);
    for (size_t i = 0; subs != NULL && i < n; i++)
        free(subs[i].ids);
    free(subs);
    free(ev);
    return rc;
}

int ah_core_publish_batch_text(ah_core *core, int64_t tenant_id, const char *const *topics,
                               const char *const *texts, size_t n)
{
    return publish_texts(core, tenant_id, topics, texts, n);
}

int ah_core_publish_batch(ah_core *core, int64_t tenant_id, const char *const *topics,
                          cJSON **bodies, size_t n)
{
    char **texts = calloc(n ? n : 1, sizeof *texts);
    int rc = texts != NULL ? 0 : -1;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            texts[i] = bodies[i] != NULL ? cJSON_PrintUnformatted(bodies[i]) : strdup("{}");
            if (texts[i] == NULL)
                rc = -1;
        }
        cJSON_Delete(bodies[i]);
        bodies[i] = NULL;
    }
    if (rc == 0)
        rc = publish_texts(core, tenant_id, topics, (const char *const *)texts, n);
    for (size_t i = 0; texts != NULL && i < n; i++)
        free(texts[i]);
    free(texts);
    return rc;
}

int ah_core_publish(ah_core *core, int64_t tenant_id, const char *topic, cJSON *body)
{
    if (body == NULL)
        body = cJSON_CreateObject();
    if (body == NULL)
        return -1;
    return ah_core_publish_batch(core, tenant_id, &topic, &body, 1);
}

/* --- delivering -------------------------------------------------------------- */

static long backoff_ms(const ah_core *core, int attempts)
{
    long base = core->cfg.http_backoff_ms > 0 ? core->cfg.http_backoff_ms : 200;
    long cap = core->cfg.http_backoff_max_ms > base ? core->cfg.http_backoff_max_ms : base;
    long d = base;
    for (int i = 0; i < attempts && d < cap; i++)
        d *= 2;
    return d < cap ? d : cap;
}

/* Delivers one event to one connection. 0 delivered (or nothing to do for
 * it), -1 failed with the reason in err. */
static int deliver_one(ah_core *core, ah_conn *c, const ah_delivery_row *d, char *err,
                       size_t errlen)
{
    ah_generation *gen = ah_registry_acquire(core->registry, c->plugin);
    if (gen == NULL) {
        snprintf(err, errlen, "plugin '%s' is not loaded", c->plugin);
        return -1;
    }
    const ah_subscription *sub = subscription_for(gen, d->topic);
    if (sub == NULL) {
        /* The plugin (a newer generation) no longer subscribes. */
        ah_generation_release(gen);
        return 0;
    }
    cJSON *body = cJSON_Parse(d->body);
    if (body == NULL)
        body = cJSON_CreateObject();
    int rc = 0;
    pthread_mutex_lock(&c->call_lock);
    ah_core_call cc;
    ah_core_call_init(&cc, core, gen, c, d->topic, NULL);
    if (ah_conn_ensure_open(core, c, gen, &cc.ext) != 0) {
        snprintf(err, errlen, "%s", cc.ext.err_msg);
        rc = -1;
    } else {
        cc.ext.call.conn_ctx = c->ctx;
        atomic_fetch_add(&gen->inflight, 1);
        ah_result r = ah_generation_event(gen, sub, &cc.ext.call, d->topic, body);
        atomic_fetch_sub(&gen->inflight, 1);
        if (r != AH_OK) {
            snprintf(err, errlen, "%s: %s", cc.ext.err_code[0] ? cc.ext.err_code : AH_E_PLUGIN,
                     cc.ext.err_msg[0] ? cc.ext.err_msg : "the handler failed without a reason");
            rc = -1;
        }
    }
    ah_core_call_done(&cc);
    pthread_mutex_unlock(&c->call_lock);
    cJSON_Delete(body);
    ah_generation_release(gen);
    return rc;
}

/* Delivers a connection's due events in order, stopping at the first that
 * fails or is not due. Runs on the connection's bus lane, under the claim
 * "deliver:<connection id>" (claims.h): taken by the tick that published
 * the lane (its token in body) or here; each outcome is stored in a
 * fenced scope, so an instance whose claim was taken over stops before it
 * stores anything more. An event is at least once (its outbox id is its
 * stable id); its stored outcome exactly once. */
static void deliver_pending(ah_core *core, int64_t conn_id, const cJSON *body)
{
    ah_claim cl = {0};
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(body, "claim");
    snprintf(cl.name, sizeof cl.name, "deliver:%lld", (long long)conn_id);
    if (cJSON_IsNumber(tok)) {
        cl.token = (int64_t)tok->valuedouble;
        cl.held = true;
    } else if (!ah_claim_take(core, &cl, "deliver:%lld", (long long)conn_id)) {
        return; /* another instance (or lane) delivers them */
    }
    ah_conn *c = ah_conn_by_id(core, conn_id);
    if (c == NULL) {
        ah_claim_give_back(core, &cl);
        return;
    }
    if (!c->enabled) { /* kept until the connection is enabled again */
        ah_conn_release(c);
        ah_claim_give_back(core, &cl);
        return;
    }
    for (int i = 0; i < DELIVERY_BATCH && cl.held; i++) {
        ah_delivery_row d;
        memset(&d, 0, sizeof d);
        if (core->store->ops->delivery_next(core->store, conn_id, &d) != 0)
            break;
        char now[32];
        ah_now_iso(now);
        if (strcmp(d.next_at, now) > 0) {
            ah_delivery_row_free(&d);
            break;
        }
        /* The claim may be the tick's, taken before this lane came to it:
         * renewed (or found taken over) before the plugin acts, not only
         * when its outcome is stored. */
        if (!ah_claim_renew(core, &cl)) {
            ah_delivery_row_free(&d);
            break;
        }
        char err[600];
        ah_claim_keep(core, &cl); /* a slow plugin outlasting the claim */
        bool ok = deliver_one(core, c, &d, err, sizeof err) == 0;
        ah_claim_unkeep(core, &cl);
        if (ah_claim_begin(core, &cl) != 0) {
            ah_delivery_row_free(&d);
            break;
        }
        if (ok) {
            int rc = core->store->ops->delivery_done(core->store, conn_id, d.outbox_id);
            bool stored = rc == AH_STORE_OK || rc == AH_STORE_NOT_FOUND;
            if (ah_claim_end(core, &cl, stored) != 0 || !stored) {
                /* Not recorded: the row is still the next one, and this
                 * pass would hand the plugin the same event again at once
                 * (up to DELIVERY_BATCH times). It is delivered again at
                 * the next pass: at least once, not a burst. */
                ah_log(&core->log, AH_LOG_WARN, "events",
                       "%s/%s: %s delivered, but that could not be stored: it is delivered "
                       "again at the next pass", c->tenant, c->name, d.topic);
                ah_delivery_row_free(&d);
                break;
            }
        } else {
            char next[32];
            ah_iso_in(backoff_ms(core, d.attempts), next);
            int rc = core->store->ops->delivery_retry(core->store, conn_id, d.outbox_id, next,
                                                      err);
            ah_claim_end(core, &cl, rc == AH_STORE_OK || rc == AH_STORE_NOT_FOUND);
            ah_log(&core->log, AH_LOG_WARN, "events",
                   "%s/%s: %s not delivered (attempt %d, retry at %s): %s", c->tenant, c->name,
                   d.topic, d.attempts + 1, next, err);
            ah_delivery_row_free(&d);
            break;
        }
        ah_delivery_row_free(&d);
    }
    ah_conn_release(c);
    ah_claim_give_back(core, &cl);
}

static void on_deliver(void *arg, uint64_t lane, const char *topic, const cJSON *body)
{
    deliver_pending(arg, (int64_t)lane, body);
}

int ah_events_init(ah_core *core)
{
    return ah_bus_subscribe(core->bus, DELIVERY_TOPIC, on_deliver, core);
}

void ah_events_tick(ah_core *core)
{
    if (core->bus == NULL)
        return;
    int64_t ids[256];
    size_t n = 0;
    char now[32];
    ah_now_iso(now);
    if (core->store->ops->delivery_due(core->store, now, ids, 256, &n) != 0 || n == 0)
        return;
    /* Claimed all at once (claims.h): lanes another instance delivers, or
     * this one still does, are left alone. */
    ah_claim cl[256];
    for (size_t i = 0; i < n; i++)
        snprintf(cl[i].name, sizeof cl[i].name, "deliver:%lld", (long long)ids[i]);
    if (ah_claims_take(core, cl, n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!cl[i].held)
            continue;
        /* The connection's tenant, for the bus's fair share (a connection
         * removed since is kicked untagged: its delivery finds nothing). */
        ah_conn *c = ah_conn_by_id(core, ids[i]);
        uint64_t tenant = c != NULL ? (uint64_t)c->tenant_id : AH_BUS_NO_TENANT;
        if (c != NULL)
            ah_conn_release(c);
        cJSON *b = cJSON_CreateObject();
        if (b == NULL || cJSON_AddNumberToObject(b, "claim", (double)cl[i].token) == NULL) {
            cJSON_Delete(b);
            ah_claim_give_back(core, &cl[i]);
            continue;
        }
        if (ah_bus_publish_tenant(core->bus, tenant, (uint64_t)ids[i], DELIVERY_TOPIC, b) != 0)
            ah_claim_give_back(core, &cl[i]);
    }
}
