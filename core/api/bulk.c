/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bulk actions as jobs: POST /v1/applications/bulk-reject and
 * /v1/applications/bulk-stage store a job and its items and answer 202
 * with the job id; one worker thread owned by the core runs jobs in the
 * order they came, item by item, each item one bus request
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
 */
#include <errno.h>
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


/* A request waiting for its job (ah_bulk_wait_async). */
typedef struct bulk_waiter {
    struct bulk_waiter *next;
    int64_t tenant_id;
    char job[BULK_ID_MAX + 1];
    struct timespec until; /* CLOCK_REALTIME */
    ah_bulk_waited_fn done;
    void *arg;
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
    bulk_waiter *waiters;
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
        /* The count is read before the report, so that a job finishing in
         * between is not missed: the wait below then returns at once. */
        unsigned long seen = 0;
        bool live = false;
        if (t != NULL) {
            pthread_mutex_lock(&t->mu);
            seen = t->done;
            live = t->running && !t->stopping;
            pthread_mutex_unlock(&t->mu);
        }
        cJSON *r = ah_bulk_report(core, tenant_id, job_id);
        if (r == NULL || report_final(r)) {
            *finished = r != NULL;
            return r;
        }
        if (!live)
            return r; /* no worker will finish it while we wait */
        int rc = 0;
        pthread_mutex_lock(&t->mu);
        while (rc == 0 && t->done == seen && t->running && !t->stopping)
            rc = pthread_cond_timedwait(&t->cond, &t->mu, &until);
        pthread_mutex_unlock(&t->mu);
        if (rc != 0)
            return r; /* the deadline passed: the state it had then */
        cJSON_Delete(r);
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

/* A job being run, one bulk_items callback per queued item. */
typedef struct bulk_run {
    ah_core *core;
    ah_bulk *t;
    const char *id;
    int64_t tenant_id;
    bool reject;
    const cJSON *params;
    bool complete; /* false once stopping: the rest waits for the next start */
    /* Items are claimed by chunks of BULK_CHUNK (claims.h), so that the
     * instances sharing the store run one job's chunks side by side. */
    ah_claim cl;
    int chunk;   /* the chunk cl names; -1: none yet */
    bool others; /* an item was left to another instance (or to wait) */
    int ran;     /* items this pass ran */
} bulk_run;

#define BULK_CHUNK 50

static void run_queued_item(void *arg, const ah_bulk_item_row *it)
{
    bulk_run *r = arg;
    if (!r->complete || stopping(r->t)) {
        r->complete = false;
        return;
    }
    int chunk = it->idx / BULK_CHUNK;
    if (chunk != r->chunk) {
        ah_claim_give_back(r->core, &r->cl);
        r->chunk = chunk;
        (void)ah_claim_take(r->core, &r->cl, "bulk:%s:%d", r->id, chunk);
    }
    if (!r->cl.held) {
        r->others = true; /* claimed by another instance, or this claim was lost */
        return;
    }
    /* The list was read when the pass began: another instance may have
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
        r->others = true; /* the store did not answer: the next round */
        return;
    } else {
        return; /* the job is gone */
    }
    /* Renewed before the provider acts (a chunk's items take as long as
     * their calls): an instance whose claim was taken over meanwhile sends
     * nothing more. */
    if (!ah_claim_renew(r->core, &r->cl)) {
        r->others = true;
        return;
    }
    if (run_item(r->core, &r->cl, r->id, r->tenant_id, r->reject, r->params, it->idx,
                 it->record_id != NULL ? it->record_id : ""))
        r->ran++;
    else
        r->others = true;
}

static void job_status(ah_core *core, const char *id, const char *status, const char *finished)
{
    if (core->store->ops->bulk_set_status(core->store, id, status, finished) != 0)
        ah_log(&core->log, AH_LOG_WARN, "bulk", "%s: cannot set its status to %s", id, status);
}

/* Runs the oldest job that is queued or running; false when there is none. */
static bool run_next_job(ah_core *core, ah_bulk *t)
{
    ah_bulk_job_row job;
    if (core->store->ops->bulk_next(core->store, &job) != AH_STORE_OK)
        return false;
    cJSON *params = job.params ? cJSON_Parse(job.params) : NULL;
    job_status(core, job.id, "running", NULL);
    bulk_run r = {.core = core, .t = t, .id = job.id, .tenant_id = job.tenant_id,
                  .reject = job.action != NULL && strcmp(job.action, "reject") == 0,
                  .params = params, .complete = params != NULL, .chunk = -1};
    if (r.complete &&
        core->store->ops->bulk_items(core->store, job.id, true, run_queued_item, &r) != 0)
        r.complete = false;
    ah_claim_give_back(core, &r.cl);
    /* Items left to other instances: the job is done when a pass finds
     * none queued. A pass that ran nothing waits for the next round
     * instead of spinning on another instance's chunks. */
    bool idle = r.complete && r.others && r.ran == 0;
    if (r.others)
        r.complete = false;
    if (r.complete) {
        char now[32];
        ah_now_iso(now);
        job_status(core, job.id, "done", now);
    } else if (params == NULL) {
        job_status(core, job.id, "failed", NULL);
    }
    if (r.complete || params == NULL) {
        /* Wakes the requests waiting for a job (ah_bulk_wait, and the
         * waiters' thread). */
        pthread_mutex_lock(&t->mu);
        t->done++;
        pthread_cond_broadcast(&t->cond);
        pthread_cond_broadcast(&t->wcond);
        pthread_mutex_unlock(&t->mu);
    }
    cJSON_Delete(params);
    ah_bulk_job_row_free(&job);
    return !idle && !stopping(t);
}

static void *bulk_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-bulk"); /* top -H, perf */
    ah_core *core = arg;
    ah_bulk *t = core->bulk;
    for (;;) {
        while (run_next_job(core, t))
            ;
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
 * or the worker stops. The requests hold no thread meanwhile. */
static void *bulk_waiters_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-bulk-wait"); /* top -H, perf */
    ah_core *core = arg;
    ah_bulk *t = core->bulk;
    pthread_mutex_lock(&t->mu);
    unsigned long seen = t->done;
    for (;;) {
        while (!t->stopping && t->done == seen && !t->wkick) {
            if (t->waiters == NULL) {
                pthread_cond_wait(&t->wcond, &t->mu);
                continue;
            }
            struct timespec first = t->waiters->until;
            for (bulk_waiter *w = t->waiters->next; w != NULL; w = w->next)
                if (past(&w->until, &first))
                    first = w->until;
            if (pthread_cond_timedwait(&t->wcond, &t->mu, &first) == ETIMEDOUT)
                break;
        }
        bool stop = t->stopping;
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
            cJSON *r = ah_bulk_report(core, w->tenant_id, w->job);
            bool final = r != NULL && report_final(r);
            if (r == NULL || final || stop || past(&w->until, &now)) {
                w->done(w->arg, r, final);
                free(w);
            } else {
                cJSON_Delete(r);
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
    /* The report before the registration, so that a job finishing in
     * between is seen by the waiters' thread at its next look. */
    cJSON *r = ah_bulk_report(core, tenant_id, job_id);
    bool final = r != NULL && report_final(r);
    bool queued = false;
    if (r != NULL && !final && t != NULL) {
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
    if (queued) {
        cJSON_Delete(r);
        return 0;
    }
    /* Final, unknown, or no worker will finish it: the state it has now. */
    free(w);
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
