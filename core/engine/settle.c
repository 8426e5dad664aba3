/* SPDX-License-Identifier: Apache-2.0 */
/* Settling writes whose outcome stayed unknown: see settle.h. */
#include "settle.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claims.h"
#include "conns.h"
#include "core.h"
#include "events.h"

/* At most this many kept writes are settled per sync (oldest first). */
#define AH_SETTLE_BATCH 100

typedef struct pending {
    char *operation; /* the remote id: the original call's correlation id */
    char *raw;       /* {"topic","request"} */
    char *fields;
} pending;

typedef struct pending_list {
    pending v[AH_SETTLE_BATCH];
    int n;
} pending_list;

static void collect(void *arg, const ah_record_row *row)
{
    pending_list *l = arg;
    if (l->n >= AH_SETTLE_BATCH)
        return;
    pending *p = &l->v[l->n];
    p->operation = strdup(row->remote_id != NULL ? row->remote_id : "");
    p->raw = strdup(row->raw != NULL ? row->raw : "{}");
    p->fields = strdup(row->fields != NULL ? row->fields : "{}");
    if (p->operation == NULL || p->raw == NULL || p->fields == NULL) {
        free(p->operation);
        free(p->raw);
        free(p->fields);
        return;
    }
    l->n++;
}

static void pending_free(pending_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].operation);
        free(l->v[i].raw);
        free(l->v[i].fields);
    }
    l->n = 0;
}

/* Stores how the write ended; true when this call made the change (the
 * event is published by whoever does, once). */
static bool record_settled(ah_core *core, ah_conn *c, const pending *p, const char *topic,
                           const char *state, int status, const cJSON *answer)
{
    cJSON *f = cJSON_CreateObject();
    char now[32];
    ah_iso_in(0, now);
    bool ok = f != NULL && cJSON_AddStringToObject(f, "state", state) != NULL &&
              cJSON_AddStringToObject(f, "topic", topic) != NULL &&
              cJSON_AddStringToObject(f, "operation", p->operation) != NULL &&
              cJSON_AddStringToObject(f, "settled_at", now) != NULL &&
              cJSON_AddNumberToObject(f, "status", status) != NULL &&
              cJSON_AddItemToObject(f, "answer", cJSON_Duplicate(answer, 1));
    char *ft = ok ? cJSON_PrintUnformatted(f) : NULL;
    cJSON_Delete(f);
    if (ft == NULL)
        return false;
    ah_record_in in = {AH_WRITE_OUTCOME_TYPE, p->operation, now, p->raw, ft};
    ah_upsert_result res = AH_REC_UNCHANGED;
    int rc = core->store->ops->records_upsert(core->store, c->id, &in, 1, NULL, NULL, &res, NULL);
    free(ft);
    return rc == AH_STORE_OK && res != AH_REC_UNCHANGED;
}

static int settle_one(ah_core *core, ah_conn *c, ah_claim *cl, const pending *p)
{
    cJSON *raw = cJSON_Parse(p->raw), *fields = cJSON_Parse(p->fields);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(fields, "state");
    const cJSON *topic = cJSON_GetObjectItemCaseSensitive(raw, "topic");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(raw, "request");
    int settled = 0;
    if (!cJSON_IsString(st) || strcmp(st->valuestring, "unknown") != 0 ||
        !cJSON_IsString(topic) || !cJSON_IsObject(req))
        goto done;
    ah_reply r;
    ah_claim_keep(core, cl); /* a provider slower than the claim's lifetime */
    ah_core_settle(core, c, topic->valuestring, p->operation, req, &r);
    ah_claim_unkeep(core, cl);
    const char *state = NULL;
    int status = 0;
    cJSON *answer = NULL;
    if (r.ok) {
        state = "done";
        status = 200;
        answer = cJSON_CreateObject();
        cJSON_AddItemToObject(answer, "data", r.body);
        r.body = NULL;
    } else if (strcmp(r.code, AH_E_UNAVAILABLE) == 0) {
        state = "not_done";
        status = 503;
        answer = cJSON_CreateObject();
        cJSON *e = cJSON_AddObjectToObject(answer, "error");
        cJSON_AddStringToObject(e, "code", AH_E_UNAVAILABLE);
        cJSON_AddStringToObject(e, "message", r.message != NULL ? r.message : "not carried out");
    } else {
        ah_log(&core->log, AH_LOG_INFO, "settle",
               "%s/%s: %s (operation %s) is still unknown: %s", c->tenant, c->name,
               topic->valuestring, p->operation, r.message != NULL ? r.message : r.code);
    }
    ah_reply_free(&r);
    /* What settles it commits under the claim (fenced): an instance whose
     * claim was taken over meanwhile (a provider's slow answer) stores and
     * publishes nothing; the one that holds it now asks again. */
    bool fenced = state != NULL && answer != NULL && ah_claim_begin(core, cl) == 0;
    if (state != NULL && answer != NULL && !fenced)
        ah_log(&core->log, AH_LOG_INFO, "settle",
               "%s/%s: %s (operation %s): not settled here (the claim went to another "
               "instance, or the store failed); settled later", c->tenant, c->name,
               topic->valuestring, p->operation);
    if (fenced && record_settled(core, c, p, topic->valuestring, state, status, answer)) {
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "operation", p->operation);
        cJSON_AddStringToObject(ev, "topic", topic->valuestring);
        cJSON_AddStringToObject(ev, "connection", c->name);
        cJSON_AddStringToObject(ev, "outcome", state);
        cJSON_AddNumberToObject(ev, "status", status);
        cJSON_AddItemToObject(ev, "answer", cJSON_Duplicate(answer, 1));
        if (ah_core_publish(core, c->tenant_id, "event.write.settled", ev) != 0)
            ah_log(&core->log, AH_LOG_WARN, "settle",
                   "%s/%s: %s (operation %s) settled %s, but its event was not published",
                   c->tenant, c->name, topic->valuestring, p->operation, state);
        ah_log(&core->log, AH_LOG_INFO, "settle", "%s/%s: %s (operation %s) settled: %s",
               c->tenant, c->name, topic->valuestring, p->operation, state);
        /* A bulk item whose write this was shows the settled outcome from
         * now on, also once the settled write is pruned (ah_settle_prune). */
        bool done = strcmp(state, "done") == 0;
        if (core->store->ops->bulk_item_settle(
                core->store, p->operation, done ? "succeeded" : "failed",
                done ? NULL : AH_E_UNAVAILABLE,
                done ? NULL : "settled: the provider did not carry it out; safe to send again",
                NULL) != AH_STORE_OK)
            ah_log(&core->log, AH_LOG_WARN, "settle",
                   "%s/%s: cannot store the settled outcome of the bulk item of operation %s",
                   c->tenant, c->name, p->operation);
        settled = 1;
    }
    if (fenced && ah_claim_end(core, cl, true) != 0) {
        ah_log(&core->log, AH_LOG_WARN, "settle",
               "%s/%s: %s (operation %s): its settling was not committed (the claim was "
               "lost, or the store failed); it is settled again later",
               c->tenant, c->name, topic->valuestring, p->operation);
        settled = 0;
    }
    cJSON_Delete(answer);
done:
    cJSON_Delete(raw);
    cJSON_Delete(fields);
    return settled;
}

/* Two syncs of one connection (the schedule and `atshub sync`, or two
 * instances on one store) must not both settle one write: each would
 * publish its event. In this process the connections being settled are
 * kept in `settling` (a second sync of one waits for the first; other
 * connections' syncs do not: a slow provider's questions hold up only its
 * own connection); across instances, the claim settle:<connection>
 * (claims.h): the instance that does not get it leaves the connection's
 * writes to the one that has it. */
#define SETTLING_MAX 64
static pthread_mutex_t settle_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t settle_cv = PTHREAD_COND_INITIALIZER;
static int64_t settling[SETTLING_MAX];
static int nsettling;

static bool settling_has(int64_t conn)
{
    for (int i = 0; i < nsettling; i++)
        if (settling[i] == conn)
            return true;
    return false;
}

/* Waits until no sync of this process settles connection `conn`, then
 * marks it (at most SETTLING_MAX connections at once; more wait). */
static void settle_enter(int64_t conn)
{
    pthread_mutex_lock(&settle_mu);
    while (settling_has(conn) || nsettling == SETTLING_MAX)
        pthread_cond_wait(&settle_cv, &settle_mu);
    settling[nsettling++] = conn;
    pthread_mutex_unlock(&settle_mu);
}

static void settle_leave(int64_t conn)
{
    pthread_mutex_lock(&settle_mu);
    for (int i = 0; i < nsettling; i++)
        if (settling[i] == conn) {
            settling[i] = settling[--nsettling];
            break;
        }
    pthread_cond_broadcast(&settle_cv);
    pthread_mutex_unlock(&settle_mu);
}

int ah_settle_unknown(ah_core *core, ah_conn *c)
{
    pending_list *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -1;
    ah_record_query q = {
        .tenant_id = c->tenant_id,
        .connection_id = c->id,
        .type = AH_WRITE_OUTCOME_TYPE,
        .limit = AH_SETTLE_BATCH,
        .field_key = "state",
        .field_value = "unknown",
    };
    /* Most syncs have nothing to settle: they do not wait for the lock. */
    int rc = core->store->ops->record_query(core->store, &q, collect, l);
    int settled = 0;
    if (rc == AH_STORE_OK && l->n > 0) {
        settle_enter(c->id);
        pending_free(l);
        ah_claim cl = {0};
        if (ah_claim_take(core, &cl, "settle:%lld", (long long)c->id)) {
            /* Read again under the lock and claim: another sync may have
             * settled some. */
            rc = core->store->ops->record_query(core->store, &q, collect, l);
            /* Renewed before each question to the provider (slow answers
             * would outlast it); lost, the rest is left to its new holder. */
            for (int i = 0; rc == AH_STORE_OK && i < l->n && ah_claim_renew(core, &cl); i++)
                settled += settle_one(core, c, &cl, &l->v[i]);
            ah_claim_give_back(core, &cl);
        }
        settle_leave(c->id);
    }
    pending_free(l);
    free(l);
    return rc == AH_STORE_OK ? settled : -1;
}

static void take_fields(void *arg, const ah_record_row *row)
{
    char **out = arg;
    if (*out == NULL && row->fields != NULL)
        *out = strdup(row->fields);
}

int ah_settled_outcome(ah_core *core, int64_t tid, const char *operation, int *status,
                       char **answer)
{
    *answer = NULL;
    *status = 0;
    if (operation == NULL || operation[0] == '\0')
        return 0;
    ah_record_query q = {
        .tenant_id = tid,
        .type = AH_WRITE_OUTCOME_TYPE,
        .limit = 1,
        .field_key = "operation",
        .field_value = operation,
    };
    char *fields = NULL;
    if (core->store->ops->record_query(core->store, &q, take_fields, &fields) != AH_STORE_OK) {
        free(fields);
        return -1;
    }
    if (fields == NULL)
        return 0;
    cJSON *f = cJSON_Parse(fields);
    free(fields);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(f, "status");
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(f, "answer");
    int rc = 0;
    if (cJSON_IsNumber(st) && st->valueint >= 200 && cJSON_IsObject(ans)) {
        *answer = cJSON_PrintUnformatted(ans);
        if (*answer != NULL) {
            *status = st->valueint;
            rc = 1;
        }
    }
    cJSON_Delete(f);
    return rc;
}

void ah_settle_prune(ah_core *core)
{
    int days = core->cfg.settled_retention_days > 0 ? core->cfg.settled_retention_days : 7;
    char cutoff[32];
    ah_iso_in(-(long)days * 86400L * 1000L, cutoff);
    int64_t n = 0;
    if (core->store->ops->record_prune(core->store, AH_WRITE_OUTCOME_TYPE, cutoff, "state",
                                       "unknown", &n) != AH_STORE_OK)
        ah_log(&core->log, AH_LOG_WARN, "settle", "cannot prune settled writes");
    else if (n > 0)
        ah_log(&core->log, AH_LOG_INFO, "settle",
               "pruned %lld writes settled more than %d days ago", (long long)n, days);
}
