/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Idempotency keys on every write under /v1 (POST, PUT, PATCH, DELETE),
 * as two httpd hooks around the route handlers, so that every write route,
 * present and future, gets them without code of its own.
 *
 * Before the handler: a request with an Idempotency-Key header (1..255
 * printable characters) and a valid tenant key reserves (tenant, key) with
 * the hash of its method, path, query string, X-Connection and body. If the key was
 * already used within 24 hours: the same hash replays the first response
 * (status and body, with Idempotent-Replayed: true) without running the
 * handler; another hash is refused with 422 idempotency_key_reused; a
 * first request still running makes this one 409 idempotency_in_progress
 * (retry later): concurrent duplicates never wait on each other.
 *
 * After the handler: its status and body are stored with the key, so that
 * a retry with the key gets that answer and never writes a second time.
 * The key is released (forgotten, so that a retry may write) only when the
 * provider certainly did not act: a 429 or a 503 (the host answers 503
 * only for work that was refused or never sent: a write lost on the way
 * is 502 outcome_unknown). Every other answer, 5xx included, is the
 * settled answer: a 502 outcome_unknown, a 502 upstream_error after the
 * provider answered a write with an error, a 500 or 504 after which the
 * plugin may still have written. A request the shutdown answers 503
 * shutting_down is no exception: once its handler had begun the key keeps
 * 502 outcome_unknown (its write may be under way), and one still waiting
 * for a worker is not run at all. Requests without a valid tenant key pass
 * through untouched (the handler answers 401).
 *
 * A 502 outcome_unknown of a write kept for settling names its operation
 * (error.operation), stored with the key in a column of its own; once the
 * connection's next sync has settled that operation (engine/settle.h), the
 * key replays the settled answer instead (200 with what the write replied),
 * with Outcome-Settled: true, or, when the provider did not act, is
 * released to the next try of the same request.
 *
 * Where it runs (issue 13: no HTTP thread waits on the store): with a bus,
 * the before hook does only what needs no store (the key's form, the
 * tenant's key, the request's hash) on the server thread; it then detaches
 * the request to a bus worker within the tenant's share (ah_rest_run),
 * which reserves the key, answers a replay or a refusal, or runs the
 * route's handler (ah_ex_call_route) and stores its outcome before the
 * answer goes out (ah_ex_detach_gate): at once when the handler answered
 * there, else when its completion answers (on another bus worker). A
 * client that sees the answer and retries finds it stored, as before.
 * Without a bus and with [http] plugin_routes = inline both parts run in
 * the hooks on the server thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conns.h"
#include "idempotency.h"
#include "json.h"
#include "rest.h"
#include "settle.h"
#include "webhooks.h"

#define IDEM_KEY_MAX 255
#define IDEM_TTL_MS (24L * 3600 * 1000)
#define IDEM_RESPONSE_MAX (1024 * 1024)

static bool is_write(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0 ||
           strcmp(m, "DELETE") == 0;
}

/* The key and tenant (and its name, when name is not NULL) of a write
 * that carries one; false otherwise. */
static bool idem_applies(ah_core *core, ah_http_exchange *ex, const char **key, int64_t *tid,
                         char *name, size_t namelen)
{
    if (!is_write(ah_ex_method(ex)) || strncmp(ah_ex_path(ex), "/v1/", 4) != 0)
        return false;
    *key = ah_ex_header(ex, "Idempotency-Key");
    if (*key == NULL)
        return false;
    const char *auth = ah_ex_header(ex, "Authorization");
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0')
        return false;
    int64_t t = ah_conns_tenant_by_key(core, auth + 7, name, namelen);
    if (t < 0)
        return false;
    *tid = t;
    return true;
}

static bool valid_key(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > IDEM_KEY_MAX)
        return false;
    for (const char *p = k; *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return false;
    return true;
}

/* 0, or -1 when out of memory (the caller answers 500: a hash of less than
 * the whole request could replay another request's answer). */
static int request_hash(ah_http_exchange *ex, char out[AH_SHA256_HEX_LEN + 1])
{
    size_t blen = 0;
    const char *body = ah_ex_body(ex, &blen);
    const char *conn = ah_ex_header(ex, "X-Connection");
    const char *method = ah_ex_method(ex), *path = ah_ex_path(ex);
    /* The query is part of the request: ?dry_run=1 and ?dry_run=0 are two
     * requests, whatever their bodies. */
    char *query = ah_ex_query_canonical(ex);
    if (query == NULL)
        return -1;
    size_t n = strlen(method) + strlen(path) + strlen(query) + (conn ? strlen(conn) : 0) +
               blen + 5;
    char *buf = malloc(n);
    if (buf == NULL) {
        free(query);
        return -1;
    }
    int h = snprintf(buf, n, "%s\n%s\n%s\n%s\n", method, path, query, conn ? conn : "");
    memcpy(buf + h, body, blen);
    ah_sha256_hex(buf, (size_t)h + blen, out);
    free(buf);
    free(query);
    return 0;
}

/* The associated data that binds a sealed answer to its tenant and key: a
 * row copied under another key does not open. */
static void seal_aad(int64_t tid, const char *key, char *out, size_t len)
{
    snprintf(out, len, "idempotency:%lld:%s", (long long)tid, key);
}

/* The settled answer of a stored 502 outcome_unknown whose operation (the
 * key's operation column) the connection's sync has settled since
 * (engine/settle.h): malloc'd body and *status; NULL when there is none
 * (not settled yet, or the stored answer kept no operation). */
static char *settled_answer(ah_core *core, int64_t tid, const char *operation, int *status)
{
    char *out = NULL;
    if (ah_settled_outcome(core, tid, operation, status, &out) != 1) {
        free(out);
        return NULL;
    }
    return out;
}

/* The operation a 502 answer names as error.operation (rest.c sets it for a
 * write kept for settling), copied into op; false when it names none. The
 * answer is the one being sent now, never a stored one. */
static bool answer_operation(const char *body, size_t len, char *op, size_t oplen)
{
    cJSON *o = body != NULL ? ah_json_parse_limited(body, len) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "operation");
    bool ok = cJSON_IsString(v) && v->valuestring[0] != '\0' && strlen(v->valuestring) < oplen;
    if (ok)
        snprintf(op, oplen, "%s", v->valuestring);
    cJSON_Delete(o);
    return ok;
}

/* A reservation still in progress (status 0) lives at most as long as its
 * request: the outcome is stored when its answer is decided, at the latest
 * at its deadline (request_timeout_ms; a bulk wait's 30 s). One older than
 * ten deadlines, and at least ten minutes, outlived its request: its
 * instance ended (kill -9, a crash) before storing anything. (Several
 * instances' clocks are taken to agree within minutes.) */
static bool reservation_orphaned(const ah_core *core, const ah_idem_row *row)
{
    long ms = 10L * (core->cfg.request_timeout_ms > 0 ? core->cfg.request_timeout_ms : 30000);
    if (ms < 600000)
        ms = 600000;
    char before[32];
    ah_iso_in(-ms, before);
    return row->created_at != NULL && strcmp(row->created_at, before) < 0;
}

static const char orphaned_answer[] =
    "{\"error\":{\"code\":\"outcome_unknown\",\"message\":\"the request that first used "
    "this Idempotency-Key was cut short (atshub stopped without an answer stored); whether it "
    "was carried out is unknown: it is not run again with this key\"}}";

static int complete_sealed(ah_core *core, int64_t tid, const char *key, int status,
                           const char *body, size_t len, const char *operation,
                           const char *location);

/* A stored answer that had a Location header (a bulk job's) keeps it in
 * front of its body, sealed with it: "L:" LOCATION "\n" BODY (no JSON body
 * begins with "L"; answers stored before have none). */
#define LOCATION_MARK "L:"

/* Adds a stored answer's Location to ex; returns where its body begins. */
static const char *stored_location(ah_http_exchange *ex, char *stored)
{
    if (strncmp(stored, LOCATION_MARK, strlen(LOCATION_MARK)) != 0)
        return stored;
    char *nl = strchr(stored, '\n');
    if (nl == NULL)
        return stored;
    *nl = '\0';
    (void)ah_ex_add_header(ex, "Location", stored + strlen(LOCATION_MARK));
    *nl = '\n';
    return nl + 1;
}

/* Reserves (tid, key) for the request of this hash: false when this is the
 * key's first use (the response is captured: run the handler, then store
 * its outcome); true when ex was answered here (a replay, a refusal, an
 * error). */
static bool reserve_or_answer(ah_core *core, ah_http_exchange *ex, int64_t tid, const char *key,
                              const char *hash, const char *name)
{
    char expired[32];
    ah_iso_in(-IDEM_TTL_MS, expired);
    /* A key older than 24 hours is forgotten (by idem_reserve): the request
     * is new. */
    ah_idem_row row;
    memset(&row, 0, sizeof row);
    int rc = core->store->ops->idem_reserve(core->store, tid, key, hash, expired, &row);
    if (rc == AH_STORE_OK) {
        ah_ex_capture_response(ex);
        return false; /* first use: run the handler, ah_idem_after stores it */
    }
    if (rc != AH_STORE_EXISTS) {
        ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot read the store");
        return true;
    }
    /* Answered here, not by a handler: a request of the tenant's budget
     * all the same (a replay reads, opens and sends up to a megabyte). A
     * request that runs as the key's first use takes its token in its
     * handler, as one without a key does. */
    if (!ah_rest_budget(core, ex, tid, name, true)) {
        ah_idem_row_free(&row);
        return true;
    }
    if (row.body_hash == NULL || strcmp(row.body_hash, hash) != 0) {
        ah_ex_error(ex, 422, "idempotency_key_reused",
                    "this Idempotency-Key was used with another request (method, path, "
                    "connection or body) in the last 24 hours");
    } else if (row.status == 0 && !reservation_orphaned(core, &row)) {
        ah_ex_error(ex, 409, "idempotency_in_progress",
                    "a request with this Idempotency-Key is being handled; retry later");
    } else if (row.status == 0) {
        /* Its request's instance ended (a kill, a crash) before storing an
         * outcome, or the outcome could not be stored: whether it acted is
         * unknown. That is the key's answer from now on, as a request
         * answered so would have stored it; never run again. */
        const char *b = orphaned_answer;
        if (complete_sealed(core, tid, key, 502, b, strlen(b), NULL, NULL) != AH_STORE_OK)
            ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot store the outcome of this "
                        "Idempotency-Key");
        else
            ah_ex_respond(ex, 502, "application/json", b, strlen(b));
    } else {
        char aad[IDEM_KEY_MAX + 48];
        seal_aad(tid, key, aad, sizeof aad);
        char *body = row.response != NULL ? ah_open_sealed(core->host_key, row.response, aad)
                                          : NULL;
        if (body == NULL) {
            /* Another host key, or a row written before answers were
             * sealed: never replay what cannot be opened. */
            ah_ex_error(ex, 500, AH_E_INTERNAL, "cannot read the stored answer of this "
                        "Idempotency-Key");
        } else {
            int sst = 0;
            char *settled = row.status == 502 && row.operation != NULL
                                ? settled_answer(core, tid, row.operation, &sst)
                                : NULL;
            if (settled != NULL && sst == 503 &&
                core->store->ops->idem_reopen != NULL &&
                core->store->ops->idem_reopen(core->store, tid, key, hash) == AH_STORE_OK) {
                /* Settled "not done": the provider certainly did not act,
                 * so the key is released to this try, which runs as the
                 * key's first use (idem_reopen lets one try take it). */
                free(settled);
                explicit_bzero(body, strlen(body));
                free(body);
                ah_idem_row_free(&row);
                ah_ex_capture_response(ex);
                return false;
            }
            ah_ex_add_header(ex, "Idempotent-Replayed", "true");
            const char *answer = stored_location(ex, body);
            if (settled != NULL) {
                /* The outcome was unknown when it was stored; a sync has
                 * settled it since: that is the answer now. */
                ah_ex_add_header(ex, "Outcome-Settled", "true");
                ah_ex_respond(ex, sst, "application/json", settled, strlen(settled));
                free(settled);
            } else {
                ah_ex_respond(ex, row.status, *answer ? "application/json" : NULL, answer,
                              strlen(answer));
            }
            explicit_bzero(body, strlen(body));
            free(body);
        }
    }
    ah_idem_row_free(&row);
    return true;
}

/* A request with a key, taken to a bus worker (see the top of the file). */
typedef struct idem_job {
    ah_core *core;
    ah_http_exchange *ex;
    ah_ex_pending *p;
    int64_t tid;
    char key[IDEM_KEY_MAX + 1];
    char hash[AH_SHA256_HEX_LEN + 1];
    char name[128]; /* the tenant's */
} idem_job;

static void store_outcome(ah_core *core, int64_t tid, const char *key, int status,
                          const char *body, size_t len, const char *location);

/* The error code of an answer's body ({"error": {"code"}}), or "". */
static void answer_code(const char *body, size_t len, char *code, size_t n)
{
    cJSON *o = body != NULL ? ah_json_parse_limited(body, len) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "error"),
                                                      "code");
    snprintf(code, n, "%s", cJSON_IsString(v) ? v->valuestring : "");
    cJSON_Delete(o);
}

static const char unknown_at_stop[] =
    "{\"error\":{\"code\":\"outcome_unknown\",\"message\":\"the server stopped while this "
    "request ran; whether it was carried out is unknown: it is not run again with this "
    "Idempotency-Key\"}}";

/* The outcome of a job's request, stored before its answer goes out. */
static void idem_job_outcome(idem_job *j)
{
    char *body = NULL;
    size_t len = 0;
    int status = ah_ex_decided(j->ex, j->p, &body, &len);
    /* No answer to store (out of memory): released, as an answer too large
     * to keep is. */
    store_outcome(j->core, j->tid, j->key, status > 0 ? status : 0, body,
                  status > 0 ? len : 0, ah_ex_added_header(j->ex, "Location"));
    if (body != NULL) {
        explicit_bzero(body, len);
        free(body);
    }
    ah_ex_pending *p = j->p;
    free(j);
    ah_ex_detach_end(p); /* the answer goes out */
}

static void idem_outcome_run(void *arg)
{
    idem_job_outcome(arg);
}

/* The answer is decided (ah_ex_detach_gate): now on the worker that ran the
 * handler; otherwise on the thread of a completion, a deadline or the
 * shutdown, which must not wait on the store: the outcome is stored on a
 * worker of the tenant's share, even when the bus is full (the request was
 * admitted), or here when the bus refuses (stopping, out of memory). */
static void idem_gate(void *arg, bool now)
{
    idem_job *j = arg;
    if (now || ah_rest_run_admitted(j->core, j->tid, "idempotency", idem_outcome_run, j) != 0)
        idem_job_outcome(j);
}

static void idem_job_run(void *arg)
{
    idem_job *j = arg;
    /* Answered while it waited here (503 shutting_down): the client was
     * told it was not done, so it is not; its key was never reserved. */
    char *decided = NULL;
    size_t dlen = 0;
    int st = ah_ex_decided(j->ex, j->p, &decided, &dlen);
    free(decided);
    if (st > 0) {
        ah_ex_pending *p = j->p;
        ah_http_exchange *ex = j->ex;
        free(j);
        ah_ex_detach_finish(ex, p);
        return;
    }
    if (reserve_or_answer(j->core, j->ex, j->tid, j->key, j->hash, j->name)) {
        ah_ex_detach_finish(j->ex, j->p);
        free(j);
        return;
    }
    ah_ex_call_route(j->ex);
    ah_ex_detach_gate(j->ex, j->p, idem_gate, j);
}

bool ah_idem_before(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    const char *key;
    int64_t tid;
    char name[128] = "";
    if (!idem_applies(core, ex, &key, &tid, name, sizeof name))
        return false;
    if (!valid_key(key)) {
        ah_ex_error(ex, 400, AH_E_INVALID,
                    "Idempotency-Key must be 1 to %d printable characters", IDEM_KEY_MAX);
        return true;
    }
    /* A tenant over its budget is refused before its key is reserved: the
     * reservation (and its release after the handler's 429) would be store
     * writes that no budget limits. */
    if (!ah_rest_budget(core, ex, tid, name, false))
        return true;
    char hash[AH_SHA256_HEX_LEN + 1];
    if (request_hash(ex, hash) != 0) {
        ah_ex_error(ex, 500, AH_E_INTERNAL, "out of memory");
        return true;
    }
    idem_job *j = NULL;
    if (core->bus != NULL && core->cfg.http_routes_on_bus && (j = calloc(1, sizeof *j)) != NULL) {
        j->core = core;
        j->ex = ex;
        j->tid = tid;
        snprintf(j->key, sizeof j->key, "%s", key);
        memcpy(j->hash, hash, sizeof j->hash);
        snprintf(j->name, sizeof j->name, "%s", name);
        j->p = ah_ex_detach(ex);
        if (j->p != NULL) {
            if (ah_rest_run(core, tid, ah_ex_path(ex), idem_job_run, j) != 0) {
                ah_ex_pending *p = j->p;
                free(j);
                (void)ah_ex_release_error(p, 503, "overloaded",
                                          "the host cannot take more work now; retry later");
                ah_ex_detach_end(p);
            }
            return true;
        }
        free(j); /* not detached: all of it here */
    }
    return reserve_or_answer(core, ex, tid, key, hash, name);
}

/* Stores the answer sealed. When it cannot be sealed, the key stays
 * reserved (answered in progress until it expires) rather than hold the
 * answer in clear. */
static int complete_sealed(ah_core *core, int64_t tid, const char *key, int status,
                           const char *body, size_t len, const char *operation,
                           const char *location)
{
    /* A Location goes in front (stored_location); one holding a line
     * break (never ours) is not kept. */
    size_t ll = location != NULL && strpbrk(location, "\r\n") == NULL
                    ? strlen(LOCATION_MARK) + strlen(location) + 1
                    : 0;
    char *text = malloc(ll + len + 1);
    if (text == NULL)
        return AH_STORE_ERR;
    if (ll > 0)
        snprintf(text, ll + 1, LOCATION_MARK "%s\n", location);
    if (len > 0)
        memcpy(text + ll, body, len);
    text[ll + len] = '\0';
    len += ll;
    char aad[IDEM_KEY_MAX + 48];
    seal_aad(tid, key, aad, sizeof aad);
    char *sealed = ah_seal(core->host_key, text, aad);
    explicit_bzero(text, len);
    free(text);
    if (sealed == NULL)
        return AH_STORE_ERR;
    int rc = core->store->ops->idem_complete_op(core->store, tid, key, status, sealed,
                                                 operation);
    free(sealed);
    return rc;
}

void ah_idem_prune(ah_core *core)
{
    char cutoff[32];
    ah_iso_in(-IDEM_TTL_MS, cutoff);
    int64_t n = 0;
    if (core->store->ops->idem_prune(core->store, cutoff, &n) != 0)
        ah_log(&core->log, AH_LOG_WARN, "idempotency", "cannot prune expired idempotency keys");
    else if (n > 0)
        ah_log(&core->log, AH_LOG_INFO, "idempotency", "pruned %lld expired idempotency keys",
               (long long)n);
}

void ah_idem_after(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    const char *key;
    int64_t tid;
    if (!idem_applies(core, ex, &key, &tid, NULL, 0) || !valid_key(key))
        return;
    size_t len = 0;
    const char *body = ah_ex_response_body(ex, &len);
    store_outcome(core, tid, key, ah_ex_status(ex), body, len,
                  ah_ex_added_header(ex, "Location"));
}

/* Stores the outcome of the key's first use: status (0: none), body
 * (NULL with len > 0: not kept) and the answer's Location (NULL: none). */
static void store_outcome(ah_core *core, int64_t tid, const char *key, int status,
                          const char *body, size_t len, const char *location)
{
    char op[96];
    int rc;
    /* The shutdown answered a request whose handler had begun (the outcome
     * is stored only then, on a worker or by the after hook of a handler
     * on the HTTP thread): its write may be under way, or still queued for
     * the bus's drain. A 503 would release the key and let the retry write
     * again; the key keeps 502 outcome_unknown instead (the client already
     * has the 503: its retry gets this). */
    char code[64];
    answer_code(status == 503 ? body : NULL, len, code, sizeof code);
    if (strcmp(code, "shutting_down") == 0) {
        body = unknown_at_stop;
        len = strlen(unknown_at_stop);
        status = 502;
    }
    /* Released only when no write happened (see the top of the file). An
     * answer too large to keep is released too: better a retry that
     * writes again than a key that refuses for 24 hours (no write route
     * answers a megabyte). */
    if (status == 0 || status == 429 || status == 503 || len > IDEM_RESPONSE_MAX ||
        (body == NULL && len > 0))
        rc = core->store->ops->idem_release(core->store, tid, key);
    else
        rc = complete_sealed(core, tid, key, status, body, len,
                             status == 502 && answer_operation(body, len, op, sizeof op) ? op
                                                                                       : NULL,
                             status >= 200 && status < 300 ? location : NULL);
    /* The key then stays reserved: retries are refused as in progress until
     * it expires, never run twice. */
    if (rc != AH_STORE_OK)
        ah_log(&core->log, AH_LOG_WARN, "idempotency", "cannot store the outcome of a request "
               "with an Idempotency-Key (status %d)", status);
}
