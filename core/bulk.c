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
 * moves are idempotent).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trust.h"
#include "trust_state.h"

#define BULK_MAX 1000
#define BULK_ID_MAX 64
#define BULK_REF_MAX 128

static const char *col(const cJSON *row, int i)
{
    const cJSON *v = cJSON_GetArrayItem(row, i);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* stage_id / reason_id: a non-empty string or an integer. */
static bool valid_ref(const cJSON *v)
{
    if (cJSON_IsString(v))
        return v->valuestring[0] != '\0' && strlen(v->valuestring) <= BULK_REF_MAX;
    return cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble;
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
    char hex[25], tid[24], ntotal[16], now[32];
    if (ah_random_hex(hex, 12) != 0) {
        ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot make an id");
        return -1;
    }
    snprintf(id, 32, "bulk_%s", hex);
    snprintf(tid, sizeof tid, "%lld", (long long)tenant_id);
    snprintf(ntotal, sizeof ntotal, "%d", n);
    ah_now_iso(now);
    cJSON *params = cJSON_CreateObject();
    char *ptext = NULL;
    if (params != NULL && cJSON_AddItemToObject(params, ref, cJSON_Duplicate(rv, true)))
        ptext = cJSON_PrintUnformatted(params);
    cJSON_Delete(params);
    const char **rows = calloc((size_t)n * 3, sizeof *rows);
    char(*idx)[16] = calloc((size_t)n, sizeof *idx);
    if (ptext == NULL || rows == NULL || idx == NULL) {
        free(ptext);
        free(rows);
        free(idx);
        ah_ex_error(ex, 500, AH_E_INTERNAL, "out of memory");
        return -1;
    }
    i = 0;
    cJSON_ArrayForEach(v, ids) {
        snprintf(idx[i], sizeof idx[i], "%d", i);
        rows[3 * i] = id;
        rows[3 * i + 1] = idx[i];
        rows[3 * i + 2] = v->valuestring;
        i++;
    }
    /* "preparing" keeps the worker off the job until all its items exist. */
    const char *pj[] = {id, tid, action, ptext, ntotal, now};
    int rc = ah_trust_sql(core, "INSERT INTO bulk_jobs(id, tenant_id, action, params, status, "
                                "total, created_at) VALUES($1, $2, $3, $4, 'preparing', $5, $6)",
                          pj, 6, NULL, NULL, NULL);
    if (rc == 0)
        rc = core->store->ops->sql(core->store, "INSERT INTO bulk_items(job_id, idx, record_id) "
                                                "VALUES($1, $2, $3)",
                                   rows, 3, (size_t)n, NULL, NULL, NULL);
    if (rc == 0)
        rc = ah_trust_sql(core, "UPDATE bulk_jobs SET status = 'queued' WHERE id = $1", pj, 1,
                          NULL, NULL, NULL);
    free(ptext);
    free(rows);
    free(idx);
    if (rc != 0) {
        ah_trust_sql(core, "DELETE FROM bulk_jobs WHERE id = $1", pj, 1, NULL, NULL, NULL);
        ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot store the job");
        return -1;
    }
    ah_trust *t = core->trust;
    if (t != NULL) {
        pthread_mutex_lock(&t->mu);
        t->bulk_kick = true;
        pthread_cond_broadcast(&t->bulk_cond);
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

cJSON *ah_bulk_report(ah_core *core, int64_t tenant_id, const char *job_id)
{
    char tid[24];
    snprintf(tid, sizeof tid, "%lld", (long long)tenant_id);
    const char *p[] = {job_id, tid};
    cJSON *job = cJSON_CreateArray();
    if (job == NULL ||
        ah_trust_sql(core, "SELECT action, status, total, created_at, finished_at FROM "
                           "bulk_jobs WHERE id = $1 AND tenant_id = $2",
                     p, 2, ah_trust_rows_json, job, NULL) != 0 ||
        cJSON_GetArraySize(job) != 1) {
        cJSON_Delete(job);
        return NULL;
    }
    cJSON *items = cJSON_CreateArray();
    if (items == NULL ||
        ah_trust_sql(core, "SELECT record_id, status, error_code, error_message FROM "
                           "bulk_items WHERE job_id = $1 ORDER BY idx",
                     p, 1, ah_trust_rows_json, items, NULL) != 0) {
        cJSON_Delete(items);
        cJSON_Delete(job);
        return NULL;
    }
    const cJSON *jr = cJSON_GetArrayItem(job, 0);
    cJSON *o = cJSON_CreateObject();
    cJSON *list = o != NULL ? cJSON_CreateArray() : NULL;
    if (list == NULL) {
        cJSON_Delete(o);
        cJSON_Delete(items);
        cJSON_Delete(job);
        return NULL;
    }
    int ok = 0, failed = 0, queued = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, items) {
        const char *st = col(it, 1);
        cJSON *e = cJSON_CreateObject();
        if (e == NULL)
            continue;
        cJSON_AddStringToObject(e, "id", col(it, 0) ? col(it, 0) : "");
        cJSON_AddStringToObject(e, "status", st ? st : "");
        if (st != NULL && strcmp(st, "succeeded") == 0) {
            ok++;
        } else if (st != NULL && strcmp(st, "failed") == 0) {
            failed++;
            cJSON *er = cJSON_AddObjectToObject(e, "error");
            if (er != NULL) {
                cJSON_AddStringToObject(er, "code", col(it, 2) ? col(it, 2) : AH_E_PLUGIN);
                cJSON_AddStringToObject(er, "message", col(it, 3) ? col(it, 3) : "");
            }
        } else {
            queued++;
        }
        cJSON_AddItemToArray(list, e);
    }
    cJSON_AddStringToObject(o, "id", job_id);
    cJSON_AddStringToObject(o, "action", col(jr, 0) ? col(jr, 0) : "");
    cJSON_AddStringToObject(o, "status", col(jr, 1) ? col(jr, 1) : "");
    cJSON_AddNumberToObject(o, "total", col(jr, 2) ? atof(col(jr, 2)) : 0);
    cJSON_AddNumberToObject(o, "succeeded", ok);
    cJSON_AddNumberToObject(o, "failed", failed);
    cJSON_AddNumberToObject(o, "pending", queued);
    cJSON_AddStringToObject(o, "created_at", col(jr, 3) ? col(jr, 3) : "");
    if (col(jr, 4) != NULL)
        cJSON_AddStringToObject(o, "finished_at", col(jr, 4));
    else
        cJSON_AddNullToObject(o, "finished_at");
    cJSON_AddItemToObject(o, "items", list);
    cJSON_Delete(items);
    cJSON_Delete(job);
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
    ah_trust *t = core->trust;
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
            seen = t->bulk_done;
            live = t->bulk_running && !t->bulk_stopping;
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
        while (rc == 0 && t->bulk_done == seen && t->bulk_running && !t->bulk_stopping)
            rc = pthread_cond_timedwait(&t->bulk_cond, &t->mu, &until);
        pthread_mutex_unlock(&t->mu);
        if (rc != 0)
            return r; /* the deadline passed: the state it had then */
        cJSON_Delete(r);
    }
}

/* --- the worker ------------------------------------------------------------ */

static bool stopping(ah_trust *t)
{
    pthread_mutex_lock(&t->mu);
    bool s = t->bulk_stopping;
    pthread_mutex_unlock(&t->mu);
    return s;
}

static void item_set(ah_core *core, const char *job, const char *idx, bool ok, const char *code,
                     const char *msg)
{
    const char *p[] = {job, idx, ok ? "succeeded" : "failed", ok ? NULL : code,
                       ok ? NULL : msg};
    ah_trust_sql(core, "UPDATE bulk_items SET status = $3, error_code = $4, error_message = $5 "
                       "WHERE job_id = $1 AND idx = $2",
                 p, 5, NULL, NULL, NULL);
}

/* Runs one item: (idx, record_id). */
static void run_item(ah_core *core, const char *job, int64_t tenant_id, bool reject,
                     const cJSON *params, const char *idx, const char *record_id)
{
    /* The same id earlier in the job: share its result, send nothing. */
    const char *pd[] = {job, record_id, idx};
    cJSON *prev = cJSON_CreateArray();
    if (prev != NULL &&
        ah_trust_sql(core, "SELECT status, error_code, error_message FROM bulk_items WHERE "
                           "job_id = $1 AND record_id = $2 AND idx < $3 AND status <> 'queued' "
                           "ORDER BY idx LIMIT 1",
                     pd, 3, ah_trust_rows_json, prev, NULL) == 0 &&
        cJSON_GetArraySize(prev) == 1) {
        const cJSON *r = cJSON_GetArrayItem(prev, 0);
        const char *st = col(r, 0);
        item_set(core, job, idx, st != NULL && strcmp(st, "succeeded") == 0, col(r, 1),
                 col(r, 2));
        cJSON_Delete(prev);
        return;
    }
    cJSON_Delete(prev);
    ah_record_row row;
    memset(&row, 0, sizeof row);
    int rc = core->store->ops->record_get_by_id(core->store, tenant_id, record_id, &row);
    if (rc == AH_STORE_NOT_FOUND || (rc == AH_STORE_OK && strcmp(row.type, "application") != 0)) {
        if (rc == AH_STORE_OK)
            ah_record_row_free(&row);
        item_set(core, job, idx, false, AH_E_NOT_FOUND, "no such application");
        return;
    }
    if (rc != AH_STORE_OK) {
        item_set(core, job, idx, false, AH_E_INTERNAL, "cannot read the store");
        return;
    }
    ah_conn *c = ah_conn_by_id(core, row.connection_id);
    if (c == NULL || c->tenant_id != tenant_id) {
        if (c != NULL)
            ah_conn_release(c);
        ah_record_row_free(&row);
        item_set(core, job, idx, false, AH_E_NOT_FOUND, "no such application");
        return;
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
        item_set(core, job, idx, false, AH_E_INTERNAL, "out of memory");
        return;
    }
    ah_reply r;
    memset(&r, 0, sizeof r);
    ah_core_request(core, c->tenant, c->name,
                    reject ? "applications.reject" : "applications.move_to_stage", b, &r);
    item_set(core, job, idx, r.ok, r.code[0] ? r.code : AH_E_PLUGIN,
             r.message != NULL ? r.message : r.code);
    ah_reply_free(&r);
    ah_conn_release(c);
    ah_record_row_free(&row);
}

/* Runs the oldest job that is queued or running; false when there is none. */
static bool run_next_job(ah_core *core, ah_trust *t)
{
    cJSON *jobs = cJSON_CreateArray();
    if (jobs == NULL ||
        ah_trust_sql(core, "SELECT id, tenant_id, action, params FROM bulk_jobs WHERE status "
                           "IN ('queued', 'running') ORDER BY created_at, id LIMIT 1",
                     NULL, 0, ah_trust_rows_json, jobs, NULL) != 0 ||
        cJSON_GetArraySize(jobs) != 1) {
        cJSON_Delete(jobs);
        return false;
    }
    const cJSON *j = cJSON_GetArrayItem(jobs, 0);
    const char *id = col(j, 0), *action = col(j, 2);
    int64_t tenant_id = col(j, 1) ? strtoll(col(j, 1), NULL, 10) : 0;
    cJSON *params = col(j, 3) ? cJSON_Parse(col(j, 3)) : NULL;
    const char *p[] = {id, NULL};
    ah_trust_sql(core, "UPDATE bulk_jobs SET status = 'running' WHERE id = $1", p, 1, NULL, NULL,
                 NULL);
    bool reject = action != NULL && strcmp(action, "reject") == 0;
    cJSON *items = cJSON_CreateArray();
    bool complete = items != NULL && params != NULL &&
                    ah_trust_sql(core, "SELECT idx, record_id FROM bulk_items WHERE job_id = $1 "
                                       "AND status = 'queued' ORDER BY idx",
                                 p, 1, ah_trust_rows_json, items, NULL) == 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, items) {
        if (!complete || stopping(t)) {
            complete = false;
            break;
        }
        run_item(core, id, tenant_id, reject, params, col(it, 0), col(it, 1));
    }
    if (complete) {
        char now[32];
        ah_now_iso(now);
        p[1] = now;
        ah_trust_sql(core, "UPDATE bulk_jobs SET status = 'done', finished_at = $2 WHERE id = $1",
                     p, 2, NULL, NULL, NULL);
    } else if (params == NULL) {
        ah_trust_sql(core, "UPDATE bulk_jobs SET status = 'failed' WHERE id = $1", p, 1, NULL,
                     NULL, NULL);
    }
    if (complete || params == NULL) {
        /* Wakes the requests waiting for a job (ah_bulk_wait). */
        pthread_mutex_lock(&t->mu);
        t->bulk_done++;
        pthread_cond_broadcast(&t->bulk_cond);
        pthread_mutex_unlock(&t->mu);
    }
    cJSON_Delete(items);
    cJSON_Delete(params);
    cJSON_Delete(jobs);
    return !stopping(t);
}

static void *bulk_main(void *arg)
{
    ah_core *core = arg;
    ah_trust *t = core->trust;
    for (;;) {
        while (run_next_job(core, t))
            ;
        pthread_mutex_lock(&t->mu);
        if (!t->bulk_stopping && !t->bulk_kick) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&t->bulk_cond, &t->mu, &ts);
        }
        t->bulk_kick = false;
        bool stop = t->bulk_stopping;
        pthread_mutex_unlock(&t->mu);
        if (stop)
            break;
    }
    return NULL;
}

int ah_trust_start(ah_core *core, char *err, size_t errlen)
{
    ah_trust *t = core->trust;
    if (t == NULL || t->bulk_running || core->bus == NULL)
        return 0;
    t->bulk_stopping = false;
    if (pthread_create(&t->bulk_thread, NULL, bulk_main, core) != 0) {
        snprintf(err, errlen, "cannot start the bulk worker thread");
        return -1;
    }
    t->bulk_running = true;
    return 0;
}

void ah_trust_stop(ah_core *core)
{
    ah_trust *t = core->trust;
    if (t == NULL || !t->bulk_running)
        return;
    pthread_mutex_lock(&t->mu);
    t->bulk_stopping = true;
    pthread_cond_broadcast(&t->bulk_cond);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->bulk_thread, NULL);
    t->bulk_running = false;
}
