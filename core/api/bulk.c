/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bulk actions as jobs: POST /v1/applications/bulk-reject and
 * /v1/applications/bulk-stage store a job and its items and answer 202
 * with the job id; one worker thread owned by the core runs them item by
 * item, tenant after tenant (each tenant's jobs in the order they came;
 * while another tenant has work, a tenant gets one item, then the next
 * tenant's turn comes), each item one bus request
 * (applications.reject / applications.move_to_stage) to the connection of
 * its application, paced by that connection's request budget
 * (ratelimit.c, taken in the host's http function). GET /v1/bulk/{id}
 * reports every item's status. A bad id fails only its item; an id given
 * twice is sent once and both items get its result. Jobs left queued or
 * running when the process stopped are resumed at the next start (an item
 * that was in flight may be sent again: the providers' reject and stage
 * moves are idempotent). An item whose write's outcome stayed unknown
 * (502 outcome_unknown) is kept for settling like any such write: it
 * names its operation, and once the connection's next sync settled it the
 * report shows how ("succeeded", or failed upstream_unavailable, with
 * "settled": true); event.write.settled is published once.
 *
 * A tenant's items waiting to run are capped ([core] bulk_max_queued_items:
 * past it a new job is refused 429 rate_limited), and the worker deletes
 * finished jobs past their retention ([core] bulk_retention_s).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "claims.h"
#include "conns.h"
#include "bulk.h"
#include "settle.h"
#include "webhooks.h"

#define BULK_MAX 1000
#define BULK_ID_MAX 64
#define BULK_REF_MAX 128
/* Retry-After of a job refused for the tenant's backlog (seconds). */
#define BULK_RETRY_AFTER_S "10"


/* A request waiting for its job (ah_bulk_wait_async). */
typedef struct bulk_waiter {
    struct bulk_waiter *next;
    int64_t tenant_id;
    char job[BULK_ID_MAX + 1];
    struct timespec until; /* CLOCK_REALTIME */
    ah_bulk_waited_fn done;
    void *arg;
    bool looked; /* the waiters' thread has looked at its job once */
} bulk_waiter;

struct ah_bulk {
    pthread_mutex_t mu;  /* guards the flags below */
    pthread_cond_t cond; /* a job was queued or finished, or stop */
    pthread_cond_t wcond; /* for the waiters' thread: a job finished, a waiter came, or stop */
    pthread_t thread;
    pthread_t waiters_thread;
    bool running;
    bool stopping;
    bool kick;          /* a job was queued since the worker last looked */
    bool wkick;         /* a waiter came since the waiters' thread last looked */
    unsigned long done; /* jobs finished so far (what ah_bulk_wait watches) */
    bool fresh;         /* a job was queued since the worker's visit began */
    bulk_waiter *waiters;
    unsigned long wait_reports; /* reports built to answer waiting requests */
    /* The worker's own (its thread only): the tenant it served last (the
     * round robin goes on from there), where it is in each job it visited,
     * when it prunes next (CLOCK_MONOTONIC s), and the tenant of the first
     * job of a run of visits that ran nothing (0: none). */
    int64_t last_tenant;
    struct bulk_cursor *cursors;
    unsigned long visits; /* the worker's visits of jobs so far */
    long next_prune;
    int64_t idle_first;
};

ah_bulk *ah_bulk_new(void)
{
    ah_bulk *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b);
        return NULL;
    }
    if (pthread_cond_init(&b->cond, NULL) != 0) {
        pthread_mutex_destroy(&b->mu);
        free(b);
        return NULL;
    }
    if (pthread_cond_init(&b->wcond, NULL) != 0) {
        pthread_cond_destroy(&b->cond);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return NULL;
    }
    return b;
}

void ah_bulk_free(ah_bulk *b)
{
    if (b == NULL)
        return;
    pthread_cond_destroy(&b->wcond);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* stage_id / reason_id: a non-empty string or an integer. */
static bool valid_ref(const cJSON *v)
{
    if (cJSON_IsString(v))
        return v->valuestring[0] != '\0' && strlen(v->valuestring) <= BULK_REF_MAX;
    /* Range first: converting a double a long long cannot hold is undefined. */
    return cJSON_IsNumber(v) && v->valuedouble >= -9007199254740992.0 &&
           v->valuedouble <= 9007199254740992.0 &&
           v->valuedouble == (double)(long long)v->valuedouble;
}

int ah_bulk_create(ah_core *core, ah_http_exchange *ex, int64_t tenant_id, const char *action,
                   char id[32], int *total)
{
    bool reject = strcmp(action, "reject") == 0;
    const char *ref = reject ? "reason_id" : "stage_id";
    const cJSON *in = ah_ex_json(ex);
    if (in == NULL)
        return -1;
    if (!cJSON_IsObject(in)) {
        ah_ex_error(ex, 400, AH_E_INVALID, "the body must be a JSON object");
        return -1;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, in) {
        if (strcmp(m->string, "application_ids") != 0 && strcmp(m->string, ref) != 0) {
            ah_ex_error(ex, 400, AH_E_INVALID, "unknown field '%s'", m->string);
            return -1;
        }
    }
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(in, "application_ids");
    if (ids == NULL) {
        ah_ex_error(ex, 400, AH_E_INVALID, "application_ids is required");
        return -1;
    }
    int n = cJSON_IsArray(ids) ? cJSON_GetArraySize(ids) : -1;
    if (n < 1 || n > BULK_MAX) {
        ah_ex_error(ex, 400, AH_E_INVALID,
                    "application_ids must be a list of 1 to %d application ids", BULK_MAX);
        return -1;
    }
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, ids) {
        if (!cJSON_IsString(v) || v->valuestring[0] == '\0' ||
            strlen(v->valuestring) > BULK_ID_MAX) {
            ah_ex_error(ex, 400, AH_E_INVALID, "application_ids[%d] must be an id string", i);
            return -1;
        }
        i++;
    }
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(in, ref);
    if (rv == NULL) {
        ah_ex_error(ex, 400, AH_E_INVALID, "%s is required", ref);
        return -1;
    }
    if (!valid_ref(rv)) {
        ah_ex_error(ex, 400, AH_E_INVALID, "%s must be a non-empty string or an integer", ref);
        return -1;
    }
    /* The tenant's backlog: its items still to run, this job's included,
     * within [core] bulk_max_queued_items. Counted before the job is
     * stored, so two requests at once may pass it by one job each. */
    long cap = core->cfg.bulk_max_queued_items;
    if (cap > 0) {
        int64_t queued = 0;
        if (core->store->ops->bulk_queued_count(core->store, tenant_id, &queued) !=
            AH_STORE_OK) {
            ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot count the tenant's queued bulk items");
            return -1;
        }
        if (queued + n > cap) {
            if (ah_ex_add_header(ex, "Retry-After", BULK_RETRY_AFTER_S) != 0)
                ah_log(&core->log, AH_LOG_WARN, "bulk", "cannot add Retry-After to a 429");
            ah_ex_error(ex, 429, "rate_limited",
                        "%lld bulk items of this tenant are waiting to run; %d more would pass "
                        "its limit of %ld; retry after " BULK_RETRY_AFTER_S " s, once some ran",
                        (long long)queued, n, cap);
            return -1;
        }
    }
    char hex[25];
    if (ah_random_hex(hex, 12) != 0) {
        ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot make an id");
        return -1;
    }
    snprintf(id, 32, "bulk_%s", hex);
    cJSON *params = cJSON_CreateObject();
    char *ptext = NULL;
    if (params != NULL && cJSON_AddItemToObject(params, ref, cJSON_Duplicate(rv, true)))
        ptext = cJSON_PrintUnformatted(params);
    cJSON_Delete(params);
    const char **recs = calloc((size_t)n, sizeof *recs);
    if (ptext == NULL || recs == NULL) {
        free(ptext);
        free(recs);
        ah_ex_error(ex, 500, AH_E_INTERNAL, "out of memory");
        return -1;
    }
    i = 0;
    cJSON_ArrayForEach(v, ids)
        recs[i++] = v->valuestring;
    /* The job and its items are stored in one transaction: the worker never
     * sees a job without all its items. */
    int rc = core->store->ops->bulk_add(core->store, id, tenant_id, action, ptext, recs,
                                        (size_t)n);
    free(ptext);
    free(recs);
    if (rc != 0) {
        ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot store the job");
        return -1;
    }
    ah_bulk *t = core->bulk;
    if (t != NULL) {
        pthread_mutex_lock(&t->mu);
        t->kick = true;
        t->fresh = true;
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->mu);
    }
    *total = n;
    return 0;
}

void ah_bulk_submit(ah_core *core, ah_http_exchange *ex, int64_t tenant_id, const char *action)
{
    char id[32];
    int n = 0;
    if (ah_bulk_create(core, ex, tenant_id, action, id, &n) != 0)
        return;
    cJSON *o = cJSON_CreateObject(), *d = o != NULL ? cJSON_AddObjectToObject(o, "data") : NULL;
    if (d == NULL) {
        cJSON_Delete(o);
        ah_ex_error(ex, 500, AH_E_INTERNAL, "out of memory");
        return;
    }
    cJSON_AddStringToObject(d, "id", id);
    cJSON_AddStringToObject(d, "status", "queued");
    cJSON_AddStringToObject(d, "action", action);
    cJSON_AddNumberToObject(d, "total", n);
    char loc[64];
    snprintf(loc, sizeof loc, "/v1/bulk/%s", id);
    ah_ex_add_header(ex, "Location", loc);
    ah_ex_respond_json(ex, 202, o);
}

/* A report being built: the items' JSON array, and whose job it is. */
typedef struct report_ctx {
    ah_core *core;
    int64_t tenant_id;
    cJSON *list;
} report_ctx;

/* An item still stored as failed outcome_unknown whose write was kept for
 * settling (it->operation): settle.c updates the item when it settles the
 * write, but a sync may have settled it between the write's reply and the
 * item's update. How it was settled, into e ("status", "error", "settled":
 * true); nothing while it is still unknown (the item stays failed
 * outcome_unknown, naming its operation). */
static void report_settled(report_ctx *rc, const ah_bulk_item_row *it, cJSON *e)
{
    int status = 0;
    char *answer = NULL;
    if (ah_settled_outcome(rc->core, rc->tenant_id, it->operation, &status, &answer) != 1) {
        free(answer);
        return;
    }
    cJSON *a = cJSON_Parse(answer);
    free(answer);
    cJSON_DeleteItemFromObjectCaseSensitive(e, "error");
    if (status == 200) {
        cJSON_ReplaceItemInObjectCaseSensitive(e, "status", cJSON_CreateString("succeeded"));
    } else {
        /* Not done: the provider did not act; the answer is its error. */
        const cJSON *er = cJSON_GetObjectItemCaseSensitive(a, "error");
        cJSON_AddItemToObject(e, "error", er != NULL ? cJSON_Duplicate(er, 1)
                                                     : cJSON_CreateObject());
    }
    cJSON_AddBoolToObject(e, "settled", true);
    cJSON_Delete(a);
}

/* Appends item `it` of a report to the context's JSON array. */
static void report_item(void *arg, const ah_bulk_item_row *it)
{
    report_ctx *rc = arg;
    cJSON *e = cJSON_CreateObject();
    if (e == NULL)
        return;
    const char *st = it->status;
    cJSON_AddStringToObject(e, "id", it->record_id ? it->record_id : "");
    cJSON_AddStringToObject(e, "status", st ? st : "");
    if (st != NULL && strcmp(st, "failed") == 0) {
        cJSON *er = cJSON_AddObjectToObject(e, "error");
        if (er != NULL) {
            cJSON_AddStringToObject(er, "code", it->error_code ? it->error_code : AH_E_PLUGIN);
            cJSON_AddStringToObject(er, "message", it->error_message ? it->error_message : "");
        }
    }
    if (it->operation != NULL) {
        cJSON_AddStringToObject(e, "operation", it->operation);
        bool unknown = st != NULL && strcmp(st, "failed") == 0 && it->error_code != NULL &&
                       strcmp(it->error_code, AH_E_OUTCOME_UNKNOWN) == 0;
        if (unknown)
            report_settled(rc, it, e); /* settled before the item was stored */
        else
            cJSON_AddBoolToObject(e, "settled", true); /* settle.c stored the outcome */
    }
    cJSON_AddItemToArray(rc->list, e);
}

cJSON *ah_bulk_report(ah_core *core, int64_t tenant_id, const char *job_id)
{
    ah_bulk_job_row job;
    if (core->store->ops->bulk_get(core->store, tenant_id, job_id, &job) != AH_STORE_OK)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON *list = o != NULL ? cJSON_CreateArray() : NULL;
    report_ctx rc = {core, tenant_id, list};
    if (list == NULL ||
        core->store->ops->bulk_items(core->store, job_id, false, report_item, &rc) != 0) {
        cJSON_Delete(list);
        cJSON_Delete(o);
        ah_bulk_job_row_free(&job);
        return NULL;
    }
    int ok = 0, failed = 0, queued = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "status"));
        if (st != NULL && strcmp(st, "succeeded") == 0)
            ok++;
        else if (st != NULL && strcmp(st, "failed") == 0)
            failed++;
        else
            queued++;
    }
    cJSON_AddStringToObject(o, "id", job_id);
    cJSON_AddStringToObject(o, "action", job.action ? job.action : "");
    cJSON_AddStringToObject(o, "status", job.status ? job.status : "");
    cJSON_AddNumberToObject(o, "total", (double)job.total);
    cJSON_AddNumberToObject(o, "succeeded", ok);
    cJSON_AddNumberToObject(o, "failed", failed);
    cJSON_AddNumberToObject(o, "pending", queued);
    cJSON_AddStringToObject(o, "created_at", job.created_at ? job.created_at : "");
    if (job.finished_at != NULL)
        cJSON_AddStringToObject(o, "finished_at", job.finished_at);
    else
        cJSON_AddNullToObject(o, "finished_at");
    cJSON_AddItemToObject(o, "items", list);
    ah_bulk_job_row_free(&job);
    return o;
}

/* The job has reached a final status ("done" or "failed"). */
static bool report_final(const cJSON *r)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(r, "status");
    return cJSON_IsString(st) &&
           (strcmp(st->valuestring, "done") == 0 || strcmp(st->valuestring, "failed") == 0);
}

/* The job's status, read alone (one row: no report is built): 1 final
 * ("done" or "failed"), 0 not yet, -1 no such job of the tenant or the
 * store failed (the report, built then, says which). */
static int job_final(ah_core *core, int64_t tenant_id, const char *job_id)
{
    ah_bulk_job_row job;
    if (core->store->ops->bulk_get(core->store, tenant_id, job_id, &job) != AH_STORE_OK)
        return -1;
    bool final = job.status != NULL &&
                 (strcmp(job.status, "done") == 0 || strcmp(job.status, "failed") == 0);
    ah_bulk_job_row_free(&job);
    return final ? 1 : 0;
}

/* The report that answers a waiting request, counted (ah_bulk_wait_reports). */
static cJSON *waited_report(ah_core *core, int64_t tenant_id, const char *job_id, bool *final)
{
    ah_bulk *t = core->bulk;
    if (t != NULL) {
        pthread_mutex_lock(&t->mu);
        t->wait_reports++;
        pthread_mutex_unlock(&t->mu);
    }
    cJSON *r = ah_bulk_report(core, tenant_id, job_id);
    *final = r != NULL && report_final(r);
    return r;
}

unsigned long ah_bulk_wait_reports(ah_core *core)
{
    ah_bulk *t = core->bulk;
    if (t == NULL)
        return 0;
    pthread_mutex_lock(&t->mu);
    unsigned long n = t->wait_reports;
    pthread_mutex_unlock(&t->mu);
    return n;
}

cJSON *ah_bulk_wait(ah_core *core, int64_t tenant_id, const char *job_id, long timeout_ms,
                    bool *finished)
{
    ah_bulk *t = core->bulk;
    *finished = false;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    for (;;) {
        /* The count is read before the job's status, so that a job
         * finishing in between is not missed: the wait below then returns
         * at once. The report is built once, when the wait ends. */
        unsigned long seen = 0;
        bool live = false;
        if (t != NULL) {
            pthread_mutex_lock(&t->mu);
            seen = t->done;
            live = t->running && !t->stopping;
            pthread_mutex_unlock(&t->mu);
        }
        if (job_final(core, tenant_id, job_id) != 0 || !live)
            return waited_report(core, tenant_id, job_id, finished);
        int rc = 0;
        pthread_mutex_lock(&t->mu);
        while (rc == 0 && t->done == seen && t->running && !t->stopping)
            rc = pthread_cond_timedwait(&t->cond, &t->mu, &until);
        pthread_mutex_unlock(&t->mu);
        if (rc != 0) /* the deadline passed: the state it has then */
            return waited_report(core, tenant_id, job_id, finished);
    }
}

/* --- the worker ------------------------------------------------------------ */

static bool stopping(ah_bulk *t)
{
    pthread_mutex_lock(&t->mu);
    bool s = t->stopping;
    pthread_mutex_unlock(&t->mu);
    return s;
}

/* Stores an item's outcome under the claim of its chunk (claims.h): an
 * instance whose claim was taken over stores nothing (cl->held turns
 * false and its run stops); the new holder runs the item again.
 * operation: that of a failed write kept for settling (NULL: none).
 * Whether it was stored: when not, the item stays queued and its job is
 * not done (a pass that counted it as run would mark the job done with
 * the item queued, never to run again). */
static bool item_set(ah_core *core, ah_claim *cl, const char *job, int idx, bool ok,
                     const char *code, const char *msg, const char *operation)
{
    if (ah_claim_begin(core, cl) != 0)
        return false;
    int rc = core->store->ops->bulk_item_set_op(core->store, job, idx,
                                                ok ? "succeeded" : "failed", ok ? NULL : code,
                                                ok ? NULL : msg, ok ? NULL : operation);
    if (ah_claim_end(core, cl, rc == AH_STORE_OK) != 0 || rc != AH_STORE_OK) {
        ah_log(&core->log, AH_LOG_WARN, "bulk", "%s: cannot store the outcome of item %d "
               "(it will run again)", job, idx);
        return false;
    }
    return true;
}

/* Runs one item: (idx, record_id). false when it must wait: the same id
 * earlier in the job is still queued (in a chunk another instance runs),
 * the store could not be read, or its outcome could not be stored. */
static bool run_item(ah_core *core, ah_claim *cl, const char *job, int64_t tenant_id,
                     bool reject, const cJSON *params, int idx, const char *record_id)
{
    /* The same id earlier in the job: share its result, send nothing. */
    ah_bulk_item_row prev;
    if (core->store->ops->bulk_item_prior(core->store, job, record_id, idx, &prev) ==
        AH_STORE_OK) {
        bool queued = prev.status == NULL || strcmp(prev.status, "queued") == 0;
        bool stored = !queued &&
                      item_set(core, cl, job, idx,
                               prev.status != NULL && strcmp(prev.status, "succeeded") == 0,
                               prev.error_code, prev.error_message, prev.operation);
        ah_bulk_item_row_free(&prev);
        return stored;
    }
    ah_record_row row;
    memset(&row, 0, sizeof row);
    int rc = core->store->ops->record_get_by_id(core->store, tenant_id, record_id, &row);
    if (rc == AH_STORE_NOT_FOUND || (rc == AH_STORE_OK && strcmp(row.type, "application") != 0)) {
        if (rc == AH_STORE_OK)
            ah_record_row_free(&row);
        return item_set(core, cl, job, idx, false, AH_E_NOT_FOUND, "no such application", NULL);
    }
    if (rc != AH_STORE_OK) {
        /* The store did not answer (a connection cut, a restarting
         * database): nothing was sent, so the item stays queued and is run
         * again on the next round rather than failed for good. */
        ah_log(&core->log, AH_LOG_WARN, "bulk", "%s: item %d: cannot read the store; "
               "tried again on the next round", job, idx);
        return false;
    }
    ah_conn *c = ah_conn_by_id(core, row.connection_id);
    if (c == NULL || c->tenant_id != tenant_id) {
        if (c != NULL)
            ah_conn_release(c);
        ah_record_row_free(&row);
        return item_set(core, cl, job, idx, false, AH_E_NOT_FOUND, "no such application", NULL);
    }
    const char *ref = reject ? "reason_id" : "stage_id";
    cJSON *b = cJSON_CreateObject();
    if (b == NULL || cJSON_AddStringToObject(b, "application_id", row.remote_id) == NULL ||
        !cJSON_AddItemToObject(b, ref,
                               cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(params, ref),
                                               true))) {
        cJSON_Delete(b);
        ah_conn_release(c);
        ah_record_row_free(&row);
        return item_set(core, cl, job, idx, false, AH_E_INTERNAL, "out of memory", NULL);
    }
    ah_reply r;
    memset(&r, 0, sizeof r);
    ah_claim_keep(core, cl); /* a provider slower than the claim's lifetime */
    ah_core_request(core, c->tenant, c->name,
                    reject ? "applications.reject" : "applications.move_to_stage", b, &r);
    ah_claim_unkeep(core, cl);
    /* An item whose outcome stayed unknown was kept for the connection's
     * next sync to settle (core.c, keep_unknown): the item keeps its
     * operation, and its report shows the settled outcome once there is
     * one (report_settled). */
    bool stored = item_set(core, cl, job, idx, r.ok, r.code[0] ? r.code : AH_E_PLUGIN,
                           r.message != NULL ? r.message : r.code,
                           r.operation[0] ? r.operation : NULL);
    ah_reply_free(&r);
    ah_conn_release(c);
    ah_record_row_free(&row);
    return stored;
}

/* Where the worker is in one job, kept from one visit to the next (the
 * worker serves tenants in turn, a slice of a job at a time): its pass over
 * the queued items and the claim of the chunk it is in. Items are claimed
 * by chunks of BULK_CHUNK (claims.h), so that the instances sharing the
 * store run one job's chunks side by side. Worker thread only. */
typedef struct bulk_cursor {
    struct bulk_cursor *next;
    char id[BULK_ID_MAX + 1];
    int from;    /* the next idx this pass looks at */
    ah_claim cl; /* of chunk `chunk` */
    int chunk;   /* -1: none */
    int refused; /* the chunk this pass found claimed elsewhere; -1: none */
    bool others; /* this pass left an item to another instance (or to wait) */
    int ran;     /* items this pass ran */
    unsigned long visit; /* the worker's visit that last came here */
} bulk_cursor;

#define BULK_CHUNK 50
/* Items one visit runs at most when no other tenant has work (a new job
 * ends the visit early: the round robin looks again), and queued items one
 * read gives. */
#define BULK_SLICE 50
#define BULK_READ 50

static bulk_cursor *cursor_get(ah_bulk *t, const char *id)
{
    t->visits++;
    for (bulk_cursor *c = t->cursors; c != NULL; c = c->next)
        if (strcmp(c->id, id) == 0) {
            c->visit = t->visits;
            return c;
        }
    bulk_cursor *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    snprintf(c->id, sizeof c->id, "%s", id);
    c->chunk = -1;
    c->refused = -1;
    c->visit = t->visits;
    c->next = t->cursors;
    t->cursors = c;
    return c;
}

/* Forgets job `id`'s cursor (every cursor when id is NULL), giving its
 * claim back. */
static void cursor_drop(ah_core *core, ah_bulk *t, const char *id)
{
    bulk_cursor **pp = &t->cursors;
    while (*pp != NULL) {
        bulk_cursor *c = *pp;
        if (id == NULL || strcmp(c->id, id) == 0) {
            *pp = c->next;
            ah_claim_give_back(core, &c->cl);
            free(c);
        } else {
            pp = &c->next;
        }
    }
}

/* Every BULK_SWEEP visits, forgets the cursors of jobs not visited in the
 * last BULK_SWEEP (another instance finished them, their tenant was
 * removed): a job visited again later starts a new pass, harmlessly. */
#define BULK_SWEEP 1024

static void cursors_sweep(ah_core *core, ah_bulk *t)
{
    if (t->visits % BULK_SWEEP != 0)
        return;
    bulk_cursor **pp = &t->cursors;
    while (*pp != NULL) {
        bulk_cursor *c = *pp;
        if (t->visits - c->visit >= BULK_SWEEP) {
            *pp = c->next;
            ah_claim_give_back(core, &c->cl);
            free(c);
        } else {
            pp = &c->next;
        }
    }
}

/* One visit of a job: one bulk_items_queued_from callback per queued item. */
typedef struct bulk_run {
    ah_core *core;
    ah_bulk *t;
    const char *id;
    int64_t tenant_id;
    bool reject;
    const cJSON *params;
    bulk_cursor *cur;
    int budget; /* items this visit may still run */
    int ran;    /* items this visit ran */
    int seen;   /* items the last read gave */
    bool stop;  /* the visit ends: its budget is spent, a job came, or stopping */
} bulk_run;

/* Whether the visit goes on to another item: not once its budget is spent,
 * the worker stops, or (after one item at least) a job was queued: its
 * tenant may be another, whose turn then comes first. */
static bool visit_goes_on(bulk_run *r)
{
    pthread_mutex_lock(&r->t->mu);
    bool on = !r->t->stopping && r->budget > 0 && (r->ran == 0 || !r->t->fresh);
    pthread_mutex_unlock(&r->t->mu);
    return on;
}

static void run_queued_item(void *arg, const ah_bulk_item_row *it)
{
    bulk_run *r = arg;
    r->seen++;
    if (r->stop || !visit_goes_on(r)) {
        r->stop = true; /* this item is the next visit's first */
        return;
    }
    bulk_cursor *cur = r->cur;
    cur->from = it->idx + 1;
    int chunk = it->idx / BULK_CHUNK;
    if (chunk == cur->refused) {
        /* Claimed elsewhere when this pass asked: its items are left to
         * that instance this pass, not asked for again item by item (a
         * store write each). */
        cur->others = true;
        return;
    }
    /* A claim lost while other tenants were served (not renewed for longer
     * than its lifetime) is taken again, unless another instance has it. */
    if (chunk != cur->chunk || !cur->cl.held) {
        ah_claim_give_back(r->core, &cur->cl);
        cur->chunk = chunk;
        (void)ah_claim_take(r->core, &cur->cl, "bulk:%s:%d", r->id, chunk);
    }
    if (!cur->cl.held) {
        cur->others = true; /* claimed by another instance, or this claim was lost */
        cur->refused = chunk;
        return;
    }
    /* The list was read when the visit began: another instance may have
     * claimed this chunk since, run it and given it back before this one
     * took it. Under the claim the item's state holds still: read it. */
    ah_bulk_item_row now;
    int rc = r->core->store->ops->bulk_item_get(r->core->store, r->id, it->idx, &now);
    if (rc == AH_STORE_OK) {
        bool queued = now.status == NULL || strcmp(now.status, "queued") == 0;
        ah_bulk_item_row_free(&now);
        if (!queued)
            return; /* ran elsewhere */
    } else if (rc != AH_STORE_NOT_FOUND) {
        cur->others = true; /* the store did not answer: the next round */
        return;
    } else {
        return; /* the job is gone */
    }
    /* Renewed before the provider acts (a chunk's items take as long as
     * their calls): an instance whose claim was taken over meanwhile sends
     * nothing more. */
    if (!ah_claim_renew(r->core, &cur->cl)) {
        cur->others = true;
        return;
    }
    r->budget--;
    if (run_item(r->core, &cur->cl, r->id, r->tenant_id, r->reject, r->params, it->idx,
                 it->record_id != NULL ? it->record_id : "")) {
        r->ran++;
        cur->ran++;
    } else {
        cur->others = true;
    }
}

static void job_status(ah_core *core, const char *id, const char *status, const char *finished)
{
    if (core->store->ops->bulk_set_status(core->store, id, status, finished) != 0)
        ah_log(&core->log, AH_LOG_WARN, "bulk", "%s: cannot set its status to %s", id, status);
}

/* The oldest unfinished job of the first tenant after `after` that has one,
 * wrapping around to the first tenant. */
static int next_job(ah_core *core, int64_t after, ah_bulk_job_row *job)
{
    int rc = core->store->ops->bulk_next_after(core->store, after, job);
    if (rc == AH_STORE_NOT_FOUND && after != INT64_MIN)
        rc = core->store->ops->bulk_next_after(core->store, INT64_MIN, job);
    return rc;
}

/* Runs a slice of the oldest unfinished job of the next tenant in turn
 * (after the one served last): one item while another tenant has work
 * too, so that a tenant's backlog delays another's next item by one item
 * per tenant with work; up to BULK_SLICE otherwise. false when there is no
 * job, or when a whole round of visits ran nothing (items left to other
 * instances): the worker waits for the next round instead of spinning. */
static bool run_next_job(ah_core *core, ah_bulk *t)
{
    ah_bulk_job_row job;
    if (next_job(core, t->last_tenant, &job) != AH_STORE_OK)
        return false;
    t->last_tenant = job.tenant_id;
    bool others_wait = false;
    ah_bulk_job_row nx;
    if (next_job(core, job.tenant_id, &nx) == AH_STORE_OK) {
        others_wait = nx.tenant_id != job.tenant_id;
        ah_bulk_job_row_free(&nx);
    }
    pthread_mutex_lock(&t->mu);
    t->fresh = false;
    pthread_mutex_unlock(&t->mu);
    bulk_cursor *cur = cursor_get(t, job.id);
    cJSON *params = job.params ? cJSON_Parse(job.params) : NULL;
    if (cur == NULL) {
        cJSON_Delete(params);
        ah_bulk_job_row_free(&job);
        return false; /* out of memory: the next round */
    }
    if (params != NULL && job.status != NULL && strcmp(job.status, "queued") == 0)
        job_status(core, job.id, "running", NULL);
    bulk_run r = {.core = core, .t = t, .id = job.id, .tenant_id = job.tenant_id,
                  .reject = job.action != NULL && strcmp(job.action, "reject") == 0,
                  .params = params, .cur = cur, .budget = others_wait ? 1 : BULK_SLICE};
    bool finished = false, idle = false;
    /* A pass reads the queued items from cur->from on, a slice at a time;
     * a read that finds none ends it, and the next pass starts from 0: a
     * pass from 0 that finds none finds the job done. Items left to other
     * instances: a pass that ran nothing waits for the next round. */
    for (int pass = 0; params != NULL && pass < 2 && !r.stop; pass++) {
        r.seen = 0;
        int from = cur->from;
        /* One item to run: a few rows (some may be left to others). */
        int limit = others_wait ? 8 : BULK_READ;
        if (core->store->ops->bulk_items_queued_from(core->store, job.id, from, limit,
                                                     run_queued_item, &r) != AH_STORE_OK) {
            idle = true; /* the store did not answer: the next round */
            break;
        }
        if (r.seen > 0)
            break;
        if (from == 0) {
            finished = true;
            break;
        }
        bool ran_nothing = cur->others && cur->ran == 0;
        cur->from = 0;
        cur->others = false;
        cur->refused = -1;
        cur->ran = 0;
        if (ran_nothing) {
            idle = true;
            break;
        }
    }
    if (finished) {
        char now[32];
        ah_now_iso(now);
        job_status(core, job.id, "done", now);
    } else if (params == NULL) {
        job_status(core, job.id, "failed", NULL);
    }
    if (finished || params == NULL) {
        cursor_drop(core, t, job.id);
        /* Wakes the requests waiting for a job (ah_bulk_wait, and the
         * waiters' thread). */
        pthread_mutex_lock(&t->mu);
        t->done++;
        pthread_cond_broadcast(&t->cond);
        pthread_cond_broadcast(&t->wcond);
        pthread_mutex_unlock(&t->mu);
    }
    /* Passes that ran nothing end the worker's run once they came round to
     * the tenant of the first of them again with nothing run meanwhile (by
     * any tenant): the worker waits for the next round instead of
     * spinning on items left to other instances. */
    bool round_idle = false;
    if (r.ran > 0 || finished)
        t->idle_first = 0;
    else if (idle && t->idle_first == 0)
        t->idle_first = job.tenant_id;
    else if (idle && t->idle_first == job.tenant_id)
        round_idle = true;
    cursors_sweep(core, t);
    cJSON_Delete(params);
    ah_bulk_job_row_free(&job);
    return !round_idle && !stopping(t);
}

/* Deletes finished jobs past [core] bulk_retention_s, a batch at a time:
 * every minute, or as often as the retention when that is shorter. */
#define BULK_PRUNE_BATCH 20

static void bulk_prune(ah_core *core, ah_bulk *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ts.tv_sec < t->next_prune)
        return;
    long keep = core->cfg.bulk_retention_s > 0 ? core->cfg.bulk_retention_s : 7L * 86400L;
    t->next_prune = ts.tv_sec + (keep < 60 ? keep : 60);
    char before[32];
    ah_iso_in(-keep * 1000L, before);
    int64_t n = 0, all = 0;
    do {
        n = 0;
        if (core->store->ops->bulk_prune(core->store, before, BULK_PRUNE_BATCH, &n) !=
            AH_STORE_OK) {
            ah_log(&core->log, AH_LOG_WARN, "bulk", "cannot prune finished bulk jobs "
                   "(the store failed); tried again later");
            break;
        }
        all += n;
    } while (n == BULK_PRUNE_BATCH && !stopping(t));
    if (all > 0)
        ah_log(&core->log, AH_LOG_INFO, "bulk", "pruned %lld finished bulk job(s) older than "
               "%ld s", (long long)all, keep);
}

static void *bulk_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-bulk"); /* top -H, perf */
    ah_core *core = arg;
    ah_bulk *t = core->bulk;
    t->last_tenant = INT64_MIN;
    t->idle_first = 0;
    t->next_prune = 0;
    for (;;) {
        do
            bulk_prune(core, t);
        while (run_next_job(core, t));
        t->idle_first = 0;
        pthread_mutex_lock(&t->mu);
        if (!t->stopping && !t->kick) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&t->cond, &t->mu, &ts);
        }
        t->kick = false;
        /* A job another instance finished is not counted here: waiters
         * (ah_bulk_wait) look again at every round. */
        t->done++;
        pthread_cond_broadcast(&t->cond);
        pthread_cond_broadcast(&t->wcond);
        bool stop = t->stopping;
        pthread_mutex_unlock(&t->mu);
        if (stop)
            break;
    }
    cursor_drop(core, t, NULL); /* claims given back: another instance goes on */
    return NULL;
}

/* --- requests waiting for their job (ah_bulk_wait_async) ------------------ */

static bool past(const struct timespec *at, const struct timespec *now)
{
    return now->tv_sec > at->tv_sec || (now->tv_sec == at->tv_sec && now->tv_nsec >= at->tv_nsec);
}

/* One thread for every waiting request: it looks at their jobs whenever a
 * job finished (or the worker's round passed: another instance may have
 * finished one) and answers each once its job is final, its deadline passed
 * or the worker stops. A look reads each job's status alone; a report is
 * built only for the answer. The requests hold no thread meanwhile. */
static void *bulk_waiters_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-bulk-wait"); /* top -H, perf */
    ah_core *core = arg;
    ah_bulk *t = core->bulk;
    pthread_mutex_lock(&t->mu);
    unsigned long seen = t->done;
    for (;;) {
        bool timed_out = false;
        while (!t->stopping && t->done == seen && !t->wkick) {
            if (t->waiters == NULL) {
                pthread_cond_wait(&t->wcond, &t->mu);
                continue;
            }
            struct timespec first = t->waiters->until;
            for (bulk_waiter *w = t->waiters->next; w != NULL; w = w->next)
                if (past(&w->until, &first))
                    first = w->until;
            if (pthread_cond_timedwait(&t->wcond, &t->mu, &first) == ETIMEDOUT) {
                timed_out = true;
                break;
            }
        }
        bool stop = t->stopping;
        /* A new waiter alone changed no job: then only the waiters not
         * looked at yet are (the others' jobs are as they were). */
        bool jobs_changed = stop || timed_out || t->done != seen;
        seen = t->done;
        t->wkick = false;
        bulk_waiter *list = t->waiters;
        t->waiters = NULL;
        pthread_mutex_unlock(&t->mu);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        bulk_waiter *keep = NULL;
        while (list != NULL) {
            bulk_waiter *w = list;
            list = w->next;
            bool due = stop || past(&w->until, &now);
            bool look = jobs_changed || !w->looked;
            w->looked = true;
            if (due || (look && job_final(core, w->tenant_id, w->job) != 0)) {
                bool final = false;
                cJSON *r = waited_report(core, w->tenant_id, w->job, &final);
                w->done(w->arg, r, final);
                free(w);
            } else {
                w->next = keep;
                keep = w;
            }
        }
        pthread_mutex_lock(&t->mu);
        while (keep != NULL) {
            bulk_waiter *w = keep;
            keep = w->next;
            w->next = t->waiters;
            t->waiters = w;
        }
        if (stop && t->waiters == NULL)
            break;
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int ah_bulk_wait_async(ah_core *core, int64_t tenant_id, const char *job_id, long timeout_ms,
                       ah_bulk_waited_fn done, void *arg)
{
    ah_bulk *t = core->bulk;
    if (job_id == NULL || strlen(job_id) > BULK_ID_MAX)
        return -1;
    bulk_waiter *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -1;
    w->tenant_id = tenant_id;
    snprintf(w->job, sizeof w->job, "%s", job_id);
    clock_gettime(CLOCK_REALTIME, &w->until);
    w->until.tv_sec += timeout_ms / 1000;
    w->until.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (w->until.tv_nsec >= 1000000000L) {
        w->until.tv_sec++;
        w->until.tv_nsec -= 1000000000L;
    }
    w->done = done;
    w->arg = arg;
    /* The status before the registration, so that a job finishing in
     * between is seen by the waiters' thread at its next look (a new
     * waiter is looked at once there, whatever else changed). */
    bool queued = false;
    if (job_final(core, tenant_id, job_id) == 0 && t != NULL) {
        pthread_mutex_lock(&t->mu);
        if (t->running && !t->stopping) {
            w->next = t->waiters;
            t->waiters = w;
            t->wkick = true;
            pthread_cond_broadcast(&t->wcond);
            queued = true;
        }
        pthread_mutex_unlock(&t->mu);
    }
    if (queued)
        return 0;
    /* Final, unknown, or no worker will finish it: the state it has now. */
    free(w);
    bool final = false;
    cJSON *r = waited_report(core, tenant_id, job_id, &final);
    done(arg, r, final);
    return 0;
}

int ah_bulk_start(ah_core *core, char *err, size_t errlen)
{
    ah_bulk *t = core->bulk;
    if (t == NULL || t->running || core->bus == NULL)
        return 0;
    t->stopping = false;
    if (pthread_create(&t->thread, NULL, bulk_main, core) != 0) {
        snprintf(err, errlen, "cannot start the bulk worker thread");
        return -1;
    }
    if (pthread_create(&t->waiters_thread, NULL, bulk_waiters_main, core) != 0) {
        pthread_mutex_lock(&t->mu);
        t->stopping = true;
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
        snprintf(err, errlen, "cannot start the bulk waiters' thread");
        return -1;
    }
    t->running = true;
    return 0;
}

void ah_bulk_stop(ah_core *core)
{
    ah_bulk *t = core->bulk;
    if (t == NULL || !t->running)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_broadcast(&t->cond);
    pthread_cond_broadcast(&t->wcond);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    /* Every waiting request is answered with its job's state (202). */
    pthread_join(t->waiters_thread, NULL);
    t->running = false;
}
