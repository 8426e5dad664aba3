/* SPDX-License-Identifier: Apache-2.0 */
/* TopCV employer API and webhook simulator (see topcv.h). */
#include "topcv.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

struct ah_topcv_sim {
    pthread_mutex_t mu;
    char *token, *secret, *company, *webhook;
    int max_attempts, retry_delay_ms;
    ah_topcv_fault fault;
    bool lookup_all;   /* GET /api/jobs?reference= answers every job, others first */
    cJSON *jobs;       /* array of job objects */
    char *last_event;  /* body of the last delivered event */
    cJSON *events;     /* every event built, by id: what TopCV may send again */
    long long last_event_ms; /* created_at of the last event, ms since 1970 */
    unsigned long next_job, next_event, next_app;
    ah_topcv_sim_stats stats;
};

static const char *const required[] = {"title", "description", "requirements", "city",
                                       "salary", "job_type", "deadline", "quantity"};
static const char *const known[] = {"title", "description", "requirements", "benefits",
                                    "city", "address", "salary", "job_type", "category",
                                    "level", "experience", "deadline", "quantity",
                                    "contact_email"};

static char *dupe(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void hmac_hex(const char *key, const char *data, size_t len, char out[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    out[0] = '\0';
    if (HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)data, len, mac, &n) == NULL)
        return;
    for (unsigned int i = 0; i < n && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

static void now_iso(char out[32], long delta_s)
{
    time_t t = time(NULL) + delta_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void error_reply(ah_sim_resp *resp, int status, const char *code, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", code);
    cJSON_AddStringToObject(o, "message", msg);
    ah_sim_json(resp, status, o);
}

/* 0 when the request carries the employer's token and a valid signature. */
static int authorised(ah_topcv_sim *t, const ah_sim_req *req)
{
    const char *auth = ah_sim_header(req, "Authorization");
    const char *ts = ah_sim_header(req, "X-TopCV-Timestamp");
    const char *sig = ah_sim_header(req, "X-TopCV-Signature");
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, t->token) != 0 ||
        ts == NULL || sig == NULL)
        return -1;
    long long when = strtoll(ts, NULL, 10), now = (long long)time(NULL);
    if (when < now - 300 || when > now + 300)
        return -1;
    size_t n = strlen(ts) + strlen(req->method) + strlen(req->path) + req->body_len + 4;
    char *text = malloc(n), mac[65], want[80];
    if (text == NULL)
        return -1;
    int len = snprintf(text, n, "%s.%s.%s.", ts, req->method, req->path);
    memcpy(text + len, req->body, req->body_len);
    hmac_hex(t->secret, text, (size_t)len + req->body_len, mac);
    free(text);
    snprintf(want, sizeof want, "sha256=%s", mac);
    return strcmp(want, sig) == 0 ? 0 : -1;
}

static cJSON *find_job(ah_topcv_sim *t, const char *id)
{
    cJSON *j;
    cJSON_ArrayForEach(j, t->jobs) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "id");
        if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0)
            return j;
    }
    return NULL;
}

/* Validates a form; NULL when fine, else the 422 body. */
static cJSON *form_errors(const cJSON *form, bool partial)
{
    cJSON *missing = cJSON_CreateArray();
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(form, required[i]);
        bool ok = (cJSON_IsString(v) && v->valuestring[0] != '\0') ||
                  (strcmp(required[i], "quantity") == 0 && cJSON_IsNumber(v) && v->valuedouble >= 1);
        if (!ok && !(partial && v == NULL))
            cJSON_AddItemToArray(missing, cJSON_CreateString(required[i]));
    }
    if (cJSON_GetArraySize(missing) == 0) {
        cJSON_Delete(missing);
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", "validation_failed");
    cJSON_AddStringToObject(o, "message", "required fields are missing");
    cJSON_AddItemToObject(o, "missing", missing);
    return o;
}

static void copy_form(cJSON *job, const cJSON *form)
{
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(form, known[i]);
        if (v == NULL)
            continue;
        cJSON_DeleteItemFromObjectCaseSensitive(job, known[i]);
        cJSON_AddItemToObject(job, known[i], cJSON_Duplicate(v, 1));
    }
}

static cJSON *new_job(ah_topcv_sim *t, const char *state)
{
    char id[32], now[32];
    snprintf(id, sizeof id, "%lu", 1000 + ++t->next_job);
    now_iso(now, 0);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", id);
    cJSON_AddStringToObject(j, "state", state);
    cJSON_AddStringToObject(j, "created_at", now);
    cJSON_AddStringToObject(j, "updated_at", now);
    cJSON_AddItemToArray(t->jobs, j);
    return j;
}

static void h_me(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    ah_topcv_sim *t = arg;
    pthread_mutex_lock(&t->mu);
    if (authorised(t, req) != 0) {
        t->stats.unauthorized++;
        pthread_mutex_unlock(&t->mu);
        error_reply(resp, 401, "unauthorized", "invalid access token or signature");
        return;
    }
    cJSON *o = cJSON_CreateObject(), *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "id", "emp-1");
    cJSON_AddStringToObject(e, "company_name", t->company);
    cJSON_AddItemToObject(o, "employer", e);
    pthread_mutex_unlock(&t->mu);
    ah_sim_json(resp, 200, o);
}

static void h_jobs(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    ah_topcv_sim *t = arg;
    pthread_mutex_lock(&t->mu);
    if (authorised(t, req) != 0) {
        t->stats.unauthorized++;
        pthread_mutex_unlock(&t->mu);
        error_reply(resp, 401, "unauthorized", "invalid access token or signature");
        return;
    }
    const char *id = strncmp(req->path, "/api/jobs/", 10) == 0 ? req->path + 10 : NULL;
    cJSON *form = req->body_len > 0 ? cJSON_ParseWithLength(req->body, req->body_len) : NULL;
    cJSON *job = id != NULL ? find_job(t, id) : NULL;
    int status = 200;
    cJSON *out = NULL;
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(form, "reference");
    if (strcmp(req->method, "GET") == 0 && id == NULL) {
        /* The employer's jobs, or those posted with one reference: how a
         * client that lost an answer finds out whether its job was posted. */
        const char *want = ah_sim_query(req, "reference");
        cJSON *list = cJSON_CreateArray();
        const cJSON *j;
        /* A broken filter (lookup_all) lists the other jobs first. */
        for (int pass = t->lookup_all && want != NULL ? 0 : 1; pass < 2; pass++)
            cJSON_ArrayForEach(j, t->jobs) {
                const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "reference");
                bool match =
                    want == NULL || (cJSON_IsString(r) && strcmp(r->valuestring, want) == 0);
                if (pass == 0 ? !match : match)
                    cJSON_AddItemToArray(list, cJSON_Duplicate(j, 1));
            }
        t->stats.lookups++;
        out = cJSON_CreateObject();
        cJSON_AddItemToObject(out, "jobs", list);
    } else if (strcmp(req->method, "POST") == 0 && id == NULL &&
               ref != NULL && (!cJSON_IsString(ref) || ref->valuestring[0] == '\0' ||
                               strlen(ref->valuestring) > 128)) {
        status = 422;
        t->stats.invalid++;
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "error", "validation_failed");
        cJSON_AddStringToObject(out, "message", "reference must be a string of 1 to 128 bytes");
    } else if (strcmp(req->method, "POST") == 0 && id == NULL) {
        out = form_errors(form, false);
        if (out != NULL) {
            status = 422;
            t->stats.invalid++;
        } else {
            job = new_job(t, "pending");
            copy_form(job, form);
            /* Kept as sent; TopCV does not refuse a reference seen before. */
            if (ref != NULL)
                cJSON_AddStringToObject(job, "reference", ref->valuestring);
            t->stats.jobs_posted++;
            status = 201;
        }
    } else if (id != NULL && job == NULL && (strcmp(req->method, "GET") == 0 || strcmp(req->method, "PUT") == 0)) {
        pthread_mutex_unlock(&t->mu);
        cJSON_Delete(form);
        error_reply(resp, 404, "not_found", "no such job");
        return;
    } else if (strcmp(req->method, "PUT") == 0 && job != NULL) {
        out = form_errors(form, true);
        if (out != NULL) {
            status = 422;
            t->stats.invalid++;
        } else {
            char now[32];
            now_iso(now, 0);
            copy_form(job, form);
            cJSON_DeleteItemFromObjectCaseSensitive(job, "updated_at");
            cJSON_AddStringToObject(job, "updated_at", now);
            t->stats.jobs_updated++;
        }
    } else if (strcmp(req->method, "GET") != 0 || job == NULL) {
        pthread_mutex_unlock(&t->mu);
        cJSON_Delete(form);
        error_reply(resp, 405, "method_not_allowed", "not supported");
        return;
    }
    if (out == NULL) {
        out = cJSON_CreateObject();
        cJSON_AddItemToObject(out, "job", cJSON_Duplicate(job, 1));
    }
    pthread_mutex_unlock(&t->mu);
    cJSON_Delete(form);
    ah_sim_json(resp, status, out);
}

ah_topcv_sim *ah_topcv_sim_attach(ah_sim *sim, const ah_topcv_sim_opts *o)
{
    ah_topcv_sim *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->token = dupe(o != NULL && o->access_token ? o->access_token : "tcv-access-token");
    t->secret = dupe(o != NULL && o->secret_key ? o->secret_key : "tcv-secret-key");
    t->company = dupe(o != NULL && o->company ? o->company : "ACME Vietnam");
    t->max_attempts = o != NULL && o->max_attempts > 0 ? o->max_attempts : 3;
    t->retry_delay_ms = o != NULL && o->retry_delay_ms > 0 ? o->retry_delay_ms : 20;
    t->jobs = cJSON_CreateArray();
    if (t->token == NULL || t->secret == NULL || t->company == NULL || t->jobs == NULL ||
        ah_sim_route(sim, "GET", "/api/employer/me", h_me, t) != 0 ||
        ah_sim_route(sim, "*", "/api/jobs", h_jobs, t) != 0) {
        ah_topcv_sim_free(t);
        return NULL;
    }
    return t;
}

void ah_topcv_sim_free(ah_topcv_sim *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->token);
    free(t->secret);
    free(t->company);
    free(t->webhook);
    free(t->last_event);
    cJSON_Delete(t->events);
    cJSON_Delete(t->jobs);
    free(t);
}

void ah_topcv_sim_set_webhook(ah_topcv_sim *t, const char *url)
{
    pthread_mutex_lock(&t->mu);
    free(t->webhook);
    t->webhook = dupe(url);
    pthread_mutex_unlock(&t->mu);
}

void ah_topcv_sim_set_fault(ah_topcv_sim *t, ah_topcv_fault f)
{
    pthread_mutex_lock(&t->mu);
    t->fault = f;
    pthread_mutex_unlock(&t->mu);
}

void ah_topcv_sim_lookup_all(ah_topcv_sim *t, bool all)
{
    pthread_mutex_lock(&t->mu);
    t->lookup_all = all;
    pthread_mutex_unlock(&t->mu);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* One POST of `body` to url, signed per fault; the HTTP status or 0. */
static long post_once(const char *url, const char *secret, ah_topcv_fault fault, const char *body)
{
    char ts[32], mac[65], h_ts[64], h_sig[96];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL) - (fault == AH_TOPCV_FAULT_STALE ? 600 : 0));
    size_t n = strlen(ts) + strlen(body) + 2;
    char *text = malloc(n);
    if (text == NULL)
        return 0;
    snprintf(text, n, "%s.%s", ts, body);
    hmac_hex(fault == AH_TOPCV_FAULT_BAD_SIGNATURE ? "not-the-secret" : secret, text, n - 1, mac);
    free(text);
    snprintf(h_ts, sizeof h_ts, "X-TopCV-Timestamp: %s", ts);
    snprintf(h_sig, sizeof h_sig, "X-TopCV-Signature: sha256=%s", mac);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return 0;
    struct curl_slist *hs = NULL, *tmp;
    const char *lines[] = {"Content-Type: application/json", h_ts, h_sig};
    for (size_t i = 0; i < 3; i++) {
        tmp = curl_slist_append(hs, lines[i]);
        if (tmp == NULL) {
            curl_slist_free_all(hs);
            curl_easy_cleanup(c);
            return 0;
        }
        hs = tmp;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hs);
    curl_easy_cleanup(c);
    return status;
}

/* Delivers `body` with retries; the last status. */
static int deliver(ah_topcv_sim *t, const char *body)
{
    pthread_mutex_lock(&t->mu);
    char *url = dupe(t->webhook), *secret = dupe(t->secret);
    ah_topcv_fault fault = t->fault;
    int max = t->max_attempts, delay = t->retry_delay_ms;
    free(t->last_event);
    t->last_event = dupe(body);
    t->stats.deliveries++;
    pthread_mutex_unlock(&t->mu);
    if (url == NULL || secret == NULL) {
        free(url);
        free(secret);
        return -1;
    }
    long status = 0;
    int times = fault == AH_TOPCV_FAULT_DUPLICATE ? 2 : 1;
    for (int k = 0; k < times; k++) {
        for (int a = 1; a <= max; a++) {
            status = post_once(url, secret, fault, body);
            pthread_mutex_lock(&t->mu);
            t->stats.attempts++;
            if (status < 200 || status > 299)
                t->stats.failed_attempts++;
            pthread_mutex_unlock(&t->mu);
            if (status >= 200 && status <= 299)
                break;
            if (a < max)
                usleep((useconds_t)(delay * a) * 1000u);
        }
    }
    free(url);
    free(secret);
    return (int)status;
}

/* Builds {"id","event","created_at","data"}; data transferred. TopCV
 * stamps its events in the order it makes them: created_at has
 * milliseconds and each event's is later than the one before. Every body
 * is kept by id for ah_topcv_sim_redeliver_id. */
static char *event_body(ah_topcv_sim *t, const char *event, cJSON *data)
{
    char id[32], now[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    pthread_mutex_lock(&t->mu);
    snprintf(id, sizeof id, "evt-%lu", ++t->next_event);
    if (ms <= t->last_event_ms)
        ms = t->last_event_ms + 1;
    t->last_event_ms = ms;
    pthread_mutex_unlock(&t->mu);
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(now + n, sizeof now - n, ".%03lldZ", ms % 1000);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "event", event);
    cJSON_AddStringToObject(o, "created_at", now);
    cJSON_AddItemToObject(o, "data", data);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s != NULL) {
        pthread_mutex_lock(&t->mu);
        if (t->events == NULL)
            t->events = cJSON_CreateObject();
        cJSON_AddStringToObject(t->events, id, s);
        pthread_mutex_unlock(&t->mu);
    }
    return s;
}

static int decide(ah_topcv_sim *t, const char *job_id, bool approve, const char *reason)
{
    char now[32];
    now_iso(now, 0);
    pthread_mutex_lock(&t->mu);
    cJSON *j = find_job(t, job_id);
    if (j == NULL) {
        pthread_mutex_unlock(&t->mu);
        return -1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(j, "state");
    cJSON_AddStringToObject(j, "state", approve ? "approved" : "rejected");
    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "job_id", job_id);
    const cJSON *title = cJSON_GetObjectItemCaseSensitive(j, "title");
    if (cJSON_IsString(title))
        cJSON_AddStringToObject(data, "title", title->valuestring);
    cJSON_AddStringToObject(data, "state", approve ? "approved" : "rejected");
    cJSON_AddStringToObject(data, approve ? "approved_at" : "rejected_at", now);
    if (!approve && reason != NULL) {
        cJSON_AddStringToObject(data, "reason", reason);
        cJSON_AddStringToObject(j, "reason", reason);
    }
    pthread_mutex_unlock(&t->mu);
    char *body = event_body(t, approve ? "job.approved" : "job.rejected", data);
    int rc = body != NULL ? deliver(t, body) : -1;
    free(body);
    return rc;
}

int ah_topcv_sim_approve(ah_topcv_sim *t, const char *job_id)
{
    return decide(t, job_id, true, NULL);
}

int ah_topcv_sim_reject(ah_topcv_sim *t, const char *job_id, const char *reason)
{
    return decide(t, job_id, false, reason);
}

char *ah_topcv_sim_create_job(ah_topcv_sim *t, const char *title)
{
    pthread_mutex_lock(&t->mu);
    cJSON *j = new_job(t, "approved");
    cJSON_AddStringToObject(j, "title", title);
    char *id = dupe(cJSON_GetObjectItemCaseSensitive(j, "id")->valuestring);
    pthread_mutex_unlock(&t->mu);
    return id;
}

int ah_topcv_sim_apply(ah_topcv_sim *t, const char *job_id, const char *job_title,
                       const char *name, const char *email, const char *cv_text,
                       char *app_id_out)
{
    return ah_topcv_sim_apply_as(t, job_id, job_title, NULL, name, email, cv_text, app_id_out);
}

int ah_topcv_sim_apply_as(ah_topcv_sim *t, const char *job_id, const char *job_title,
                          const char *cand_id, const char *name, const char *email,
                          const char *cv_text, char *app_id_out)
{
    char app[64], cand[64], now[32];
    now_iso(now, 0);
    pthread_mutex_lock(&t->mu);
    unsigned long n = ++t->next_app;
    snprintf(app, sizeof app, "app-%lu", n);
    snprintf(cand, sizeof cand, "cand-%lu", n);
    const cJSON *j = find_job(t, job_id);
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(j, "title");
    char *title = dupe(job_title != NULL ? job_title : (cJSON_IsString(jt) ? jt->valuestring : NULL));
    pthread_mutex_unlock(&t->mu);
    if (app_id_out != NULL)
        snprintf(app_id_out, 64, "%s", app);
    cJSON *data = cJSON_CreateObject(), *c = cJSON_CreateObject(), *cv = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "application_id", app);
    cJSON_AddStringToObject(data, "job_id", job_id);
    if (title != NULL)
        cJSON_AddStringToObject(data, "job_title", title);
    cJSON_AddStringToObject(data, "applied_at", now);
    cJSON_AddStringToObject(c, "id", cand_id != NULL ? cand_id : cand);
    cJSON_AddStringToObject(c, "name", name);
    if (email != NULL)
        cJSON_AddStringToObject(c, "email", email);
    cJSON_AddItemToObject(data, "candidate", c);
    size_t len = strlen(cv_text);
    char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    if (b64 != NULL)
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)cv_text, (int)len);
    cJSON_AddStringToObject(cv, "file_name", "cv.txt");
    cJSON_AddStringToObject(cv, "content_type", "text/plain");
    cJSON_AddStringToObject(cv, "content_base64", b64 != NULL ? b64 : "");
    cJSON_AddItemToObject(data, "cv", cv);
    free(b64);
    free(title);
    char *body = event_body(t, "application.created", data);
    int rc = body != NULL ? deliver(t, body) : -1;
    free(body);
    return rc;
}

int ah_topcv_sim_redeliver(ah_topcv_sim *t)
{
    pthread_mutex_lock(&t->mu);
    char *body = dupe(t->last_event);
    pthread_mutex_unlock(&t->mu);
    int rc = body != NULL ? deliver(t, body) : -1;
    free(body);
    return rc;
}

int ah_topcv_sim_redeliver_id(ah_topcv_sim *t, const char *event_id)
{
    pthread_mutex_lock(&t->mu);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(t->events, event_id);
    char *body = cJSON_IsString(b) ? dupe(b->valuestring) : NULL;
    pthread_mutex_unlock(&t->mu);
    int rc = body != NULL ? deliver(t, body) : -1;
    free(body);
    return rc;
}

cJSON *ah_topcv_sim_job(ah_topcv_sim *t, const char *job_id)
{
    pthread_mutex_lock(&t->mu);
    cJSON *j = find_job(t, job_id);
    cJSON *c = j != NULL ? cJSON_Duplicate(j, 1) : NULL;
    pthread_mutex_unlock(&t->mu);
    return c;
}

void ah_topcv_sim_get_stats(ah_topcv_sim *t, ah_topcv_sim_stats *out)
{
    pthread_mutex_lock(&t->mu);
    *out = t->stats;
    pthread_mutex_unlock(&t->mu);
}
