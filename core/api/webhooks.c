/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Outbound webhooks to the product, delivered from the outbox.
 *
 * Each endpoint keeps a cursor: the last outbox id it has handled. Every
 * second the ticker hands the endpoints with events waiting to a pool of
 * [webhooks] workers threads, and returns: a receiver may take timeout_ms
 * to answer, and the ticker also reloads tenants and connections. The pool
 * runs one pass at a time per endpoint and at most max_per_tenant passes
 * per tenant, so a tenant's hanging receivers hold that many workers and
 * no more. A pass walks the endpoint's tenant events after its cursor in
 * outbox order; events its types do not match are skipped, matching ones
 * are POSTed one at a time and the cursor only moves past an event once it
 * was answered 2xx. The first failure stops that endpoint (later events
 * wait behind it) and sets a backoff; so a receiver gets every event at
 * least once, in order, and with a stable id ("evt_" + outbox id, the
 * webhook-id header) to drop the rare duplicate. After max_failures
 * consecutive failures the endpoint is disabled, event.webhook.disabled is
 * published and a warning logged; enabling it again resumes where it
 * stopped, except for the events that passed [events] retention_days while
 * it was disabled: those are skipped, with a warning and
 * event.webhook.events_pruned saying how many (eventlog.c). While enabled
 * it keeps its events from pruning (outbox_prune). Every attempt is kept
 * in webhook_deliveries (the delivery log).
 *
 * Signatures follow Standard Webhooks: webhook-id, webhook-timestamp and
 * webhook-signature = "v1," + base64(HMAC-SHA256(key, id.ts.body)), the key
 * being the base64 part of the "whsec_" secret.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <netdb.h>

#include "claims.h"
#include "events.h"
#include "netaddr.h"
#include "webhooks.h"

#define WH_BATCH 100
#define WH_SECRET_BYTES 24
#define WH_SEAL_AAD "webhook_endpoint"

/* --- shared helpers ------------------------------------------------------ */

bool ah_topic_matches_list(const char *patterns, const char *topic)
{
    if (patterns == NULL || *patterns == '\0')
        return true;
    const char *p = patterns;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        size_t m = n;
        while (m > 0 && p[m - 1] == ' ')
            m--;
        if (m == 1 && p[0] == '*')
            return true;
        if (m >= 2 && p[m - 2] == '.' && p[m - 1] == '*') {
            if (strncmp(p, topic, m - 1) == 0)
                return true;
        } else if (m > 0 && strlen(topic) == m && strncmp(p, topic, m) == 0) {
            return true;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}

/* --- signing --------------------------------------------------------------- */

int ah_webhook_sign(const char *secret, const char *msg_id, const char *ts, const char *body,
                    size_t body_len, char *out, size_t outlen)
{
    const char *b64 = strncmp(secret, "whsec_", 6) == 0 ? secret + 6 : secret;
    size_t klen = 0;
    unsigned char *key = ah_base64_decode(b64, &klen);
    if (key == NULL)
        return -1;
    size_t hl = strlen(msg_id), tl = strlen(ts);
    char *msg = malloc(hl + tl + body_len + 3);
    if (msg == NULL) {
        free(key);
        return -1;
    }
    memcpy(msg, msg_id, hl);
    msg[hl] = '.';
    memcpy(msg + hl + 1, ts, tl);
    msg[hl + 1 + tl] = '.';
    memcpy(msg + hl + tl + 2, body, body_len);
    unsigned char mac[32];
    int rc = ah_hmac_sha256(key, klen, msg, hl + tl + 2 + body_len, mac);
    explicit_bzero(key, klen);
    free(key);
    free(msg);
    if (rc != 0)
        return -1;
    char *enc = ah_base64_encode(mac, sizeof mac);
    if (enc == NULL)
        return -1;
    int n = snprintf(out, outlen, "v1,%s", enc);
    free(enc);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* --- endpoints --------------------------------------------------------------- */

/* Where deliveries may go: public addresses, and the networks an operator
 * allows ([webhooks] allow_networks). A tenant names the URL, so without
 * this it could make the host reach loopback, the private network or the
 * cloud metadata service, and read the answers' statuses back. */
/* An endpoint handed to the delivery pool: queued, or being delivered by
 * a worker. An endpoint has at most one slot, which is the per-endpoint
 * cap of 1 that keeps its deliveries in order. */
typedef struct wh_slot {
    int64_t id;
    int64_t tenant_id;
    bool running;
} wh_slot;

/* An endpoint due at a tick, and when it was last handed to the pool. */
typedef struct wh_lru {
    int64_t id;
    int64_t tenant_id;
    uint64_t seq; /* 0: not in the last tick's due list */
} wh_lru;

struct ah_webhooks {
    ah_netlist *allow;
    ah_httpc *httpc; /* deliveries only: every connect goes through dest_ok */

    /* The delivery pool (ah_webhooks_start / ah_webhooks_stop). Deliveries
     * wait on receivers for up to timeout_ms; they run here so that the
     * ticker, which also reloads tenants and connections, never does. */
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* a slot was queued, or stopping */
    bool sync_ok;       /* mu and cv initialised */
    ah_core *core;
    pthread_t *threads;
    int nthreads;
    bool stopping;
    wh_slot *slots; /* queue order; running slots stay until their pass ends */
    size_t nslots;
    size_t max_slots;   /* bounds the queue: the rest waits for a later tick */
    int max_per_tenant; /* slots (queued or running) one tenant may have */
    /* Ticker only: when each endpoint due at the last tick was last handed
     * over (by id), so that the least recently served go first and none of
     * a capped tenant's endpoints waits behind the others forever. */
    struct wh_lru *lru;
    size_t nlru;
    uint64_t seq;
};

static bool dest_ok(void *arg, const struct sockaddr *sa)
{
    const ah_webhooks *w = arg;
    return ah_addr_is_public(sa) || ah_netlist_contains(w->allow, sa);
}

ah_webhooks *ah_webhooks_new(const ah_config *cfg, char *err, size_t errlen)
{
    ah_webhooks *w = calloc(1, sizeof *w);
    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        snprintf(err, errlen, "cannot create a mutex");
        free(w);
        return NULL;
    }
    if (pthread_cond_init(&w->cv, NULL) != 0) {
        snprintf(err, errlen, "cannot create a condition variable");
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    w->sync_ok = true;
    w->allow = ah_netlist_parse(cfg->webhook_allow_networks, err, errlen);
    ah_httpc_opts ho = {
        .timeout_ms = cfg->webhook_timeout_ms,
        .max_attempts = 1,
        .backoff_ms = 1,
        .backoff_max_ms = 1,
        .addr_ok = dest_ok,
        .addr_ok_arg = w,
    };
    w->httpc = w->allow != NULL ? ah_httpc_new(&ho) : NULL;
    if (w->httpc == NULL) {
        if (w->allow != NULL)
            snprintf(err, errlen, "out of memory");
        ah_webhooks_free(w);
        return NULL;
    }
    return w;
}

void ah_webhooks_free(ah_webhooks *w)
{
    if (w == NULL)
        return;
    ah_httpc_free(w->httpc);
    ah_netlist_free(w->allow);
    free(w->threads);
    free(w->slots);
    free(w->lru);
    if (w->sync_ok) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
    }
    free(w);
}

/* Resolves the URL's host now and refuses it when any of its addresses is
 * one deliveries may not reach (in any spelling: 0x7f000001, 2130706433,
 * [::ffff:127.0.0.1], a name that resolves there). Deliveries check again
 * at each connect, so a name that changes its answer later gains nothing.
 * 0, or -1 with why in err. */
static int check_destination(const ah_webhooks *w, const char *url, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *host = NULL;
    int rc = -1;
    if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host == NULL || host[0] == '\0') {
        snprintf(err, errlen, "url must be an http:// or https:// URL with a host");
        goto out;
    }
    char name[256];
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']')
        snprintf(name, sizeof name, "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(name, sizeof name, "%s", host);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(name, NULL, &hints, &ai);
    if (g != 0 || ai == NULL) {
        snprintf(err, errlen, "the url's host '%.200s' does not resolve (%s)", name,
                 g != 0 ? gai_strerror(g) : "no address");
        goto out;
    }
    rc = 0;
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        if (!dest_ok((void *)w, a->ai_addr)) {
            char text[64];
            ah_addr_text(a->ai_addr, text, sizeof text);
            snprintf(err, errlen,
                     "the url's host '%.200s' is %s, which is not a public address: webhooks "
                     "go to the product's public endpoints (an operator may allow a network "
                     "with [webhooks] allow_networks)",
                     name, text);
            rc = -1;
            break;
        }
    }
    freeaddrinfo(ai);
out:
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

static bool valid_url(const char *url)
{
    return url != NULL && strlen(url) < 2048 &&
           (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) &&
           strpbrk(url, " \t\r\n") == NULL;
}

/* A new secret, "whsec_" + base64 of WH_SECRET_BYTES random bytes, into
 * out (>= 64 bytes); returns it sealed with the host key (free it), or NULL
 * with err (out wiped). */
static char *new_secret(ah_core *core, char *out, size_t outlen, char *err, size_t errlen)
{
    unsigned char raw[WH_SECRET_BYTES];
    if (ah_random_bytes(raw, sizeof raw) != 0) {
        snprintf(err, errlen, "cannot generate a secret");
        return NULL;
    }
    char *b64 = ah_base64_encode(raw, sizeof raw);
    explicit_bzero(raw, sizeof raw);
    if (b64 == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(out, outlen, "whsec_%s", b64);
    explicit_bzero(b64, strlen(b64));
    free(b64);
    char *sealed = ah_seal(core->host_key, out, WH_SEAL_AAD);
    if (sealed == NULL) {
        explicit_bzero(out, outlen);
        snprintf(err, errlen, "cannot seal the secret");
    }
    return sealed;
}

static void count_one(void *arg, const ah_webhook_row *row)
{
    (void)row;
    (*(size_t *)arg)++;
}

int ah_webhook_add(ah_core *core, int64_t tenant_id, const char *url, const char *types,
                   int64_t *id_out, char *secret_out, size_t secret_len, char *err,
                   size_t errlen)
{
    if (!valid_url(url)) {
        snprintf(err, errlen, "url must be an http:// or https:// URL");
        return AH_WEBHOOK_INVALID;
    }
    if (core->webhooks == NULL) {
        snprintf(err, errlen, "webhooks are not available here");
        return AH_STORE_ERR;
    }
    if (check_destination(core->webhooks, url, err, errlen) != 0)
        return AH_WEBHOOK_INVALID;
    if (types != NULL && (strlen(types) > 1024 || strpbrk(types, " \t\r\n") != NULL)) {
        snprintf(err, errlen, "types must be a comma-separated list of event types");
        return AH_WEBHOOK_INVALID;
    }
    /* Each endpoint is a delivery pass of its own and a row of every
     * listing: a tenant's are bounded (two added at once may both pass). */
    size_t have = 0;
    if (core->store->ops->webhook_list(core->store, tenant_id, 0, 0, count_one, &have) != AH_STORE_OK) {
        snprintf(err, errlen, "cannot read the endpoints (see the log)");
        return AH_STORE_ERR;
    }
    if (have >= AH_WEBHOOK_MAX_PER_TENANT) {
        snprintf(err, errlen, "a tenant has at most %d webhook endpoints; delete one first",
                 AH_WEBHOOK_MAX_PER_TENANT);
        return AH_WEBHOOK_INVALID;
    }
    char secret[80];
    char *sealed = new_secret(core, secret, sizeof secret, err, errlen);
    if (sealed == NULL)
        return AH_STORE_ERR;
    /* The cursor starts at the newest event (the store sets it): an
     * endpoint gets what is published after it was added (the event log
     * serves the past). */
    int rc = core->store->ops->webhook_add(core->store, tenant_id, url, types, sealed, id_out);
    free(sealed);
    if (rc != AH_STORE_OK) {
        explicit_bzero(secret, sizeof secret);
        snprintf(err, errlen, "cannot store the endpoint (see the log)");
        return AH_STORE_ERR;
    }
    snprintf(secret_out, secret_len, "%s", secret);
    explicit_bzero(secret, sizeof secret);
    return 0;
}

/* Appends endpoint `r` to the JSON array `arg` (secrets never included). */
static void endpoint_json(void *arg, const ah_webhook_row *r)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return;
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    cJSON_AddNumberToObject(o, "tenant_id", (double)r->tenant_id);
    cJSON_AddStringToObject(o, "url", r->url ? r->url : "");
    cJSON_AddStringToObject(o, "types", r->event_types ? r->event_types : "*");
    cJSON_AddBoolToObject(o, "enabled", r->enabled);
    cJSON_AddNumberToObject(o, "failures", (double)r->failures);
    if (r->disabled_at != NULL)
        cJSON_AddStringToObject(o, "disabled_at", r->disabled_at);
    else
        cJSON_AddNullToObject(o, "disabled_at");
    cJSON_AddNumberToObject(o, "cursor", (double)r->cursor);
    cJSON_AddStringToObject(o, "created_at", r->created_at ? r->created_at : "");
    cJSON_AddStringToObject(o, "description", r->description ? r->description : "");
    char now[32];
    ah_now_iso(now);
    if (r->previous_until != NULL && strcmp(r->previous_until, now) > 0)
        cJSON_AddStringToObject(o, "previous_secret_expires_at", r->previous_until);
    else
        cJSON_AddNullToObject(o, "previous_secret_expires_at");
    cJSON_AddItemToArray(arg, o);
}

cJSON *ah_webhook_list_page(ah_core *core, int64_t tenant_id, int64_t after_id, int limit)
{
    cJSON *out = cJSON_CreateArray();
    if (out == NULL || core->store->ops->webhook_list(core->store, tenant_id, after_id, limit,
                                                      endpoint_json, out) != 0) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

cJSON *ah_webhook_list(ah_core *core, int64_t tenant_id)
{
    return ah_webhook_list_page(core, tenant_id, 0, 0);
}

static bool valid_types(const char *types)
{
    return types == NULL || (strlen(types) <= 1024 && strpbrk(types, " \t\r\n") == NULL);
}

static bool valid_description(const char *d)
{
    if (d == NULL)
        return true;
    if (strlen(d) > 1024)
        return false;
    for (const unsigned char *p = (const unsigned char *)d; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

int ah_webhook_update(ah_core *core, int64_t tenant_id, int64_t id, const char *url,
                      const char *types, const char *description, char *err, size_t errlen)
{
    if (url != NULL) {
        if (!valid_url(url)) {
            snprintf(err, errlen, "url must be an http:// or https:// URL");
            return AH_WEBHOOK_INVALID;
        }
        if (core->webhooks == NULL) {
            snprintf(err, errlen, "webhooks are not available here");
            return AH_WEBHOOK_INVALID;
        }
        if (check_destination(core->webhooks, url, err, errlen) != 0)
            return AH_WEBHOOK_INVALID;
    }
    if (!valid_types(types)) {
        snprintf(err, errlen, "types must be a comma-separated list of event types");
        return AH_WEBHOOK_INVALID;
    }
    if (!valid_description(description)) {
        snprintf(err, errlen, "description must be at most 1024 bytes without control characters");
        return AH_WEBHOOK_INVALID;
    }
    int rc = core->store->ops->webhook_update(core->store, tenant_id, id, url,
                                              types != NULL && *types == '\0' ? "*" : types,
                                              description);
    if (rc == AH_STORE_ERR)
        snprintf(err, errlen, "cannot update the store");
    return rc;
}

int ah_webhook_delete(ah_core *core, int64_t tenant_id, int64_t id)
{
    return core->store->ops->webhook_delete(core->store, tenant_id, id);
}

int ah_webhook_rotate(ah_core *core, int64_t tenant_id, int64_t id, long overlap_s,
                      char *secret_out, size_t secret_len, char *until_out, char *err,
                      size_t errlen)
{
    if (overlap_s < 0 || overlap_s > 604800) {
        snprintf(err, errlen, "overlap_seconds must be between 0 and 604800");
        return AH_WEBHOOK_INVALID;
    }
    char secret[80], until[32] = "";
    char *sealed = new_secret(core, secret, sizeof secret, err, errlen);
    if (sealed == NULL)
        return AH_STORE_ERR;
    if (overlap_s > 0)
        ah_iso_in(overlap_s * 1000, until);
    int rc = core->store->ops->webhook_rotate(core->store, tenant_id, id, sealed,
                                              overlap_s > 0 ? until : NULL);
    free(sealed);
    if (rc == AH_STORE_OK) {
        snprintf(secret_out, secret_len, "%s", secret);
        if (until_out != NULL)
            snprintf(until_out, 32, "%s", until);
    } else if (rc == AH_STORE_ERR) {
        snprintf(err, errlen, "cannot update the store");
    }
    explicit_bzero(secret, sizeof secret);
    return rc;
}

int ah_webhook_set_enabled(ah_core *core, int64_t tenant_id, int64_t id, bool enabled)
{
    return core->store->ops->webhook_set_enabled(core->store, tenant_id, id, enabled);
}

/* Appends delivery log line `r` to the JSON array `arg`. */
static void delivery_json(void *arg, const ah_webhook_delivery_row *r)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return;
    char evid[40];
    snprintf(evid, sizeof evid, "evt_%lld", (long long)r->outbox_id);
    cJSON_AddStringToObject(o, "event_id", evid);
    cJSON_AddNumberToObject(o, "cursor", (double)r->outbox_id);
    if (r->topic != NULL)
        cJSON_AddStringToObject(o, "type", r->topic);
    cJSON_AddNumberToObject(o, "attempts", (double)r->attempts);
    cJSON_AddStringToObject(o, "status", r->status ? r->status : "");
    cJSON_AddNumberToObject(o, "last_status", (double)r->last_status);
    if (r->last_error != NULL)
        cJSON_AddStringToObject(o, "last_error", r->last_error);
    if (r->next_at != NULL)
        cJSON_AddStringToObject(o, "next_at", r->next_at);
    if (r->delivered_at != NULL)
        cJSON_AddStringToObject(o, "delivered_at", r->delivered_at);
    cJSON_AddItemToArray(arg, o);
}

cJSON *ah_webhook_deliveries_rc(ah_core *core, int64_t tenant_id, int64_t id, int limit,
                                 int *rc)
{
    cJSON *out = cJSON_CreateArray();
    int r = out == NULL ? AH_STORE_ERR
                        : core->store->ops->webhook_deliveries(core->store, tenant_id, id, limit,
                                                               delivery_json, out);
    if (rc != NULL)
        *rc = r;
    if (r != AH_STORE_OK) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

cJSON *ah_webhook_deliveries(ah_core *core, int64_t tenant_id, int64_t id, int limit)
{
    return ah_webhook_deliveries_rc(core, tenant_id, id, limit, NULL);
}

/* --- delivering -------------------------------------------------------------- */

char *ah_event_envelope(int64_t outbox_id, const char *topic, const char *body,
                        const char *created_at)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    char id[40];
    snprintf(id, sizeof id, "evt_%lld", (long long)outbox_id);
    cJSON *data = body != NULL ? cJSON_Parse(body) : NULL;
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddNumberToObject(o, "cursor", (double)outbox_id);
    cJSON_AddStringToObject(o, "type", topic);
    cJSON_AddStringToObject(o, "timestamp", created_at != NULL ? created_at : "");
    cJSON_AddItemToObject(o, "data", data != NULL ? data : cJSON_CreateObject());
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static long wh_backoff(const ah_core *core, long failures)
{
    long base = core->cfg.webhook_backoff_ms, cap = core->cfg.webhook_backoff_max_ms;
    long d = base;
    for (long i = 1; i < failures && d < cap; i++)
        d *= 2;
    return d < cap ? d : cap;
}

/* The reason of a failed POST to url without the URL, which the delivery
 * log and the operators' log keep: a tenant's URL may carry a credential
 * in its path (a chat service's hook token) that no masking recognises.
 * The client's err is "POST <url as shown>: <reason>". */
static void failure_reason(const char *url, const char *const *secrets, const char *why,
                           char *err, size_t errlen)
{
    char *shown = ah_httpc_shown_url(url, secrets);
    size_t sl = shown != NULL ? strlen(shown) : 0;
    const char *reason = "the request failed";
    if (shown != NULL && strncmp(why, "POST ", 5) == 0 && strncmp(why + 5, shown, sl) == 0 &&
        strncmp(why + 5 + sl, ": ", 2) == 0)
        reason = why + 5 + sl + 2;
    else if (strncmp(why, "POST ", 5) != 0)
        reason = why; /* not the client's (no URL in it) */
    snprintf(err, errlen, "%s", reason);
    free(shown);
}

/* POSTs one event. 0 when answered 2xx; else -1 with the status (0: none)
 * and a reason. */
static int post_event(ah_core *core, const char *url, const char *secret,
                      const char *previous, int64_t outbox_id, const char *payload,
                      long *status, char *err, size_t errlen)
{
    char msg_id[40], ts[24], sig[128], sig_prev[128] = "";
    snprintf(msg_id, sizeof msg_id, "evt_%lld", (long long)outbox_id);
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    if (ah_webhook_sign(secret, msg_id, ts, payload, strlen(payload), sig, sizeof sig) != 0) {
        snprintf(err, errlen, "cannot sign the event");
        *status = 0;
        return -1;
    }
    /* During a rotation's overlap: both signatures, the new one first
     * (Standard Webhooks: space-separated, any one that verifies will do). */
    if (previous != NULL && ah_webhook_sign(previous, msg_id, ts, payload, strlen(payload),
                                            sig_prev, sizeof sig_prev) != 0) {
        snprintf(err, errlen, "cannot sign the event");
        *status = 0;
        return -1;
    }
    char h_id[64], h_ts[64], h_sig[300];
    snprintf(h_id, sizeof h_id, "webhook-id: %s", msg_id);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %s", ts);
    snprintf(h_sig, sizeof h_sig, "webhook-signature: %s%s%s", sig, sig_prev[0] ? " " : "",
             sig_prev);
    const char *headers[] = {"Content-Type: application/json", h_id, h_ts, h_sig, NULL};
    ah_http_request req = {
        .struct_size = sizeof req,
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = payload,
        .body_len = strlen(payload),
        .timeout_ms = core->cfg.webhook_timeout_ms,
        .max_attempts = 1, /* the backoff is ours, kept in the store */
    };
    const char *secrets[] = {secret, previous, NULL};
    ah_http_response resp;
    memset(&resp, 0, sizeof resp);
    resp.struct_size = sizeof resp;
    char why[512] = "not sent";
    if (core->webhooks == NULL ||
        ah_httpc_perform(core->webhooks->httpc, &req, NULL, secrets, NULL, NULL, &resp, why,
                         sizeof why) != 0) {
        failure_reason(url, secrets, why, err, errlen);
        *status = 0;
        ah_http_response_free(&resp);
        return -1;
    }
    *status = resp.status;
    int rc = resp.status >= 200 && resp.status < 300 ? 0 : -1;
    if (rc != 0)
        snprintf(err, errlen, "HTTP %ld", resp.status);
    ah_http_response_free(&resp);
    return rc;
}

static void log_delivery(ah_core *core, int64_t eid, int64_t outbox_id, bool ok, long status,
                         const char *error, const char *next_at)
{
    if (core->store->ops->webhook_attempt(core->store, eid, outbox_id, ok, (int)status, error,
                                          next_at) != 0)
        ah_log(&core->log, AH_LOG_WARN, "webhooks", "endpoint %lld: cannot log the attempt "
               "on event %lld", (long long)eid, (long long)outbox_id);
}

/* AH_STORE_NOT_FOUND when the endpoint is gone (its tenant removed). */
static int set_cursor(ah_core *core, int64_t eid, int64_t cursor)
{
    int rc = core->store->ops->webhook_advance(core->store, eid, cursor);
    if (rc != AH_STORE_OK && rc != AH_STORE_NOT_FOUND)
        ah_log(&core->log, AH_LOG_WARN, "webhooks", "endpoint %lld: cannot move its cursor "
               "to %lld (the event may be sent again)", (long long)eid, (long long)cursor);
    return rc;
}

/* A failed attempt: backoff, or disable after max_failures in a row. */
static void endpoint_failed(ah_core *core, const ah_webhook_row *ep, long failures,
                            const char *why)
{
    int64_t eid = ep->id;
    const char *url = ep->url;
    char next[32], now[32];
    ah_iso_in(wh_backoff(core, failures), next);
    ah_now_iso(now);
    bool disable = failures >= core->cfg.webhook_max_failures;
    if (core->store->ops->webhook_failed(core->store, eid, failures, next,
                                         disable ? now : NULL) != 0)
        ah_log(&core->log, AH_LOG_WARN, "webhooks", "endpoint %lld: cannot record the "
               "failure", (long long)eid);
    if (!disable) {
        ah_log(&core->log, AH_LOG_INFO, "webhooks", "endpoint %lld: delivery failed (%s), "
               "failure %ld of %d, retry at %s", (long long)eid, why, failures,
               core->cfg.webhook_max_failures, next);
        return;
    }
    /* (Not its URL: a tenant's may carry a credential, user:pass@ or a
     * token in the query, and the log is the operators'.) */
    ah_log(&core->log, AH_LOG_WARN, "webhooks",
           "endpoint %lld disabled after %ld consecutive failures (last: %s); "
           "re-enable it with `atshub webhook enable %lld`", (long long)eid, failures, why,
           (long long)eid);
    cJSON *b = cJSON_CreateObject();
    if (b != NULL) {
        cJSON_AddNumberToObject(b, "endpoint_id", (double)eid);
        cJSON_AddStringToObject(b, "url", url != NULL ? url : "");
        cJSON_AddNumberToObject(b, "failures", (double)failures);
        cJSON_AddStringToObject(b, "last_error", why);
    }
    ah_core_publish(core, ep->tenant_id, "event.webhook.disabled", b);
}

/* One endpoint's pass over its next events (an outbox_after callback per
 * event): stops at the first failure, later events wait behind it. */
typedef struct wh_pass {
    ah_core *core;
    const ah_webhook_row *ep;
    const char *secret;   /* NULL: it cannot be opened (every matching event fails) */
    const char *previous; /* the previous secret during a rotation's overlap, else NULL */
    long failures;
    int64_t cursor; /* the endpoint's cursor when the pass began */
    int64_t moved;  /* the last event handled; -1 after a failure */
    bool halt;      /* the endpoint is gone, the pool is stopping, or the claim lost */
    ah_claim *claim; /* "webhook:<endpoint id>": every write of the pass is fenced by it */
    int seen;       /* events the pass read */
} wh_pass;

static bool pool_stopping(ah_webhooks *wh)
{
    pthread_mutex_lock(&wh->mu);
    bool stop = wh->stopping;
    pthread_mutex_unlock(&wh->mu);
    return stop;
}

static void deliver_event(void *arg, const ah_outbox_row *ev)
{
    wh_pass *w = arg;
    w->seen++;
    if (w->moved < 0 || w->halt)
        return; /* stopped at a failure, or told to stop */
    ah_core *core = w->core;
    /* A pass may hold WH_BATCH events: a stopping daemon waits for the
     * one under way only. */
    if (pool_stopping(core->webhooks)) {
        w->halt = true;
        return;
    }
    int64_t eid = w->ep->id, oid = ev->id;
    if (ev->topic == NULL || !ah_topic_matches_list(w->ep->event_types, ev->topic)) {
        w->moved = oid;
        return;
    }
    long status = 0;
    char err[512] = "out of memory";
    int rc = -1;
    if (w->secret == NULL) {
        /* Sealed under another host key: a failed attempt like any other
         * (backoff, max_failures), not a pass retried at every tick. */
        snprintf(err, sizeof err, "cannot open the endpoint's signing secret (another host "
                 "key?); rotate its secret");
    } else {
        /* Renewed before the event is sent, as deliveries and bulk items
         * are: an instance stopped between two events past its claim, whose
         * claim was taken over meanwhile, sends nothing more (the new
         * holder sent this event already). */
        if (!ah_claim_renew(core, w->claim)) {
            w->halt = true;
            return;
        }
        char *payload = ah_event_envelope(oid, ev->topic, ev->body, ev->created_at);
        ah_claim_keep(core, w->claim); /* a receiver slower than the claim's lifetime */
        if (payload != NULL)
            rc = post_event(core, w->ep->url, w->secret, w->previous, oid, payload, &status,
                            err, sizeof err);
        ah_claim_unkeep(core, w->claim);
        free(payload);
    }
    /* The outcome is stored under the claim's fence: an instance whose
     * claim was taken over (it was stopped, or cut off, past the claim)
     * stores nothing more; the new holder sends the event again with the
     * same webhook-id. */
    if (ah_claim_begin(core, w->claim) != 0) {
        w->halt = true;
        return;
    }
    if (rc == 0) {
        log_delivery(core, eid, oid, true, status, NULL, NULL);
        /* Removed meanwhile (with its tenant): nothing more to send. */
        if (set_cursor(core, eid, oid) == AH_STORE_NOT_FOUND)
            w->halt = true;
        if (ah_claim_end(core, w->claim, true) != 0) {
            /* Not stored (the connection was lost, the commit failed): the
             * pass stops before this event, so that its end does not move
             * the cursor past it; the next pass sends it again (at least
             * once, with the same webhook-id) and logs it. */
            w->halt = true;
            return;
        }
        w->moved = oid;
        w->failures = 0;
        return;
    }
    if (w->moved != w->cursor)
        set_cursor(core, eid, w->moved);
    char next[32];
    ah_iso_in(wh_backoff(core, w->failures + 1), next);
    log_delivery(core, eid, oid, false, status, err, next);
    endpoint_failed(core, w->ep, w->failures + 1, err);
    ah_claim_end(core, w->claim, true);
    w->moved = -1;
}

/* One endpoint's pass (a webhook_due_one callback, on a pool worker):
 * delivers what is due, stopping at the first failure. The row was read
 * just now, so the pass starts from the endpoint's current cursor. */
typedef struct wh_job {
    ah_core *core;
    ah_claim claim;
    bool more; /* the pass read a full batch and handled it all: more may wait */
} wh_job;

static void deliver_endpoint(void *arg, const ah_webhook_row *ep)
{
    wh_job *job = arg;
    ah_core *core = job->core;
    char *secret = ep->secret != NULL ? ah_open_sealed(core->host_key, ep->secret, WH_SEAL_AAD)
                                      : NULL;
    if (secret == NULL) /* its next matching event fails (deliver_event) */
        ah_log(&core->log, AH_LOG_ERROR, "webhooks", "endpoint %lld: cannot open its secret "
               "(another host key?); rotate its secret", (long long)ep->id);
    char now[32];
    ah_now_iso(now);
    char *previous = ep->previous_secret != NULL && ep->previous_until != NULL &&
                             strcmp(ep->previous_until, now) > 0
                         ? ah_open_sealed(core->host_key, ep->previous_secret, WH_SEAL_AAD)
                         : NULL;
    wh_pass w = {.core = core, .ep = ep, .secret = secret, .previous = previous,
                 .failures = (long)ep->failures, .cursor = ep->cursor, .moved = ep->cursor, .claim = &job->claim};
    if (core->store->ops->outbox_after(core->store, ep->tenant_id, ep->cursor, WH_BATCH,
                                       deliver_event, &w) == 0 &&
        w.moved > w.cursor && ah_claim_begin(core, &job->claim) == 0) {
        (void)set_cursor(core, ep->id, w.moved);
        ah_claim_end(core, &job->claim, true);
        job->more = w.seen >= WH_BATCH && !w.halt;
    }
    if (secret != NULL) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
    if (previous != NULL) {
        explicit_bzero(previous, strlen(previous));
        free(previous);
    }
}

/* --- the delivery pool -------------------------------------------------------- */

static int tenant_slots(const ah_webhooks *w, int64_t tenant_id)
{
    int n = 0;
    for (size_t i = 0; i < w->nslots; i++)
        n += w->slots[i].tenant_id == tenant_id;
    return n;
}

static bool has_slot(const ah_webhooks *w, int64_t id)
{
    for (size_t i = 0; i < w->nslots; i++)
        if (w->slots[i].id == id)
            return true;
    return false;
}

static void *worker_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-webhook"); /* top -H, perf */
    ah_webhooks *w = arg;
    ah_core *core = w->core;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        size_t i = 0;
        while (i < w->nslots && w->slots[i].running)
            i++;
        if (w->stopping)
            break;
        if (i == w->nslots) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        w->slots[i].running = true;
        int64_t id = w->slots[i].id;
        pthread_mutex_unlock(&w->mu);
        char now[32];
        ah_now_iso(now);
        /* One instance at a time passes over an endpoint (claims.h); one
         * claimed elsewhere is left to that instance. */
        wh_job job = {.core = core};
        if (ah_claim_take(core, &job.claim, "webhook:%lld", (long long)id)) {
            if (core->store->ops->webhook_due_one(core->store, id, now, deliver_endpoint,
                                                  &job) != 0)
                ah_log(&core->log, AH_LOG_WARN, "webhooks", "endpoint %lld: cannot read it "
                       "(see the log); retried on a later tick", (long long)id);
            ah_claim_give_back(core, &job.claim);
        }
        pthread_mutex_lock(&w->mu);
        for (size_t j = 0; j < w->nslots; j++)
            if (w->slots[j].id == id) {
                wh_slot again = w->slots[j];
                memmove(w->slots + j, w->slots + j + 1, (w->nslots - j - 1) * sizeof *w->slots);
                w->nslots--;
                /* A full batch went out: the endpoint's next events are
                 * likely waiting. It goes behind the endpoints queued
                 * meanwhile rather than wait for the next tick (a backlog
                 * drains at the receiver's pace, not WH_BATCH per tick). */
                if (job.more && !w->stopping) {
                    again.running = false;
                    w->slots[w->nslots++] = again;
                    pthread_cond_signal(&w->cv);
                }
                break;
            }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int ah_webhooks_start(ah_core *core, char *err, size_t errlen)
{
    ah_webhooks *w = core->webhooks;
    if (w == NULL || w->nthreads > 0)
        return 0;
    int n = core->cfg.webhook_workers > 0 ? core->cfg.webhook_workers : 1;
    int per = core->cfg.webhook_max_per_tenant;
    w->core = core;
    w->stopping = false;
    w->max_per_tenant = per < 1 ? 1 : per > n ? n : per;
    /* Enough queued work to keep every worker busy between two ticks;
     * more would only be read again from the store next time. */
    w->max_slots = (size_t)n * 4;
    w->slots = calloc(w->max_slots, sizeof *w->slots);
    w->threads = calloc((size_t)n, sizeof *w->threads);
    if (w->slots == NULL || w->threads == NULL) {
        snprintf(err, errlen, "out of memory");
        free(w->slots);
        free(w->threads);
        w->slots = NULL;
        w->threads = NULL;
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0) {
            snprintf(err, errlen, "cannot start webhook delivery thread %d of %d", i + 1, n);
            ah_webhooks_stop(core);
            return -1;
        }
        w->nthreads++;
    }
    return 0;
}

void ah_webhooks_stop(ah_core *core)
{
    ah_webhooks *w = core->webhooks;
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    w->nthreads = 0;
    free(w->threads);
    w->threads = NULL;
    free(w->slots);
    w->slots = NULL;
    w->nslots = 0;
}

/* The endpoints due at this tick (a webhook_due callback, in id order):
 * ids and tenants only, the secret stays in the store until a worker
 * needs it. */
typedef struct wh_due {
    wh_lru *v;
    size_t n, cap;
    bool oom;
} wh_due;

static void collect_due(void *arg, const ah_webhook_row *ep)
{
    wh_due *d = arg;
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 64;
        wh_lru *nv = realloc(d->v, nc * sizeof *nv);
        if (nv == NULL) {
            d->oom = true;
            return;
        }
        d->v = nv;
        d->cap = nc;
    }
    d->v[d->n++] = (wh_lru){.id = ep->id, .tenant_id = ep->tenant_id};
}

static int cmp_lru_id(const void *a, const void *b)
{
    const wh_lru *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Least recently served first; then in id order. */
static int cmp_lru_seq(const void *a, const void *b)
{
    const wh_lru *x = a, *y = b;
    if (x->seq != y->seq)
        return (x->seq > y->seq) - (x->seq < y->seq);
    return cmp_lru_id(a, b);
}

/* Hands what is due to the pool and returns: never waits on a receiver.
 * An endpoint already queued or delivering is skipped (one pass at a time
 * per endpoint keeps its events in order); a tenant gets at most
 * max_per_tenant slots, so its slow receivers cannot take every worker.
 * Endpoints left out are still due and are offered again next tick, the
 * least recently served first. */
void ah_webhooks_tick(ah_core *core)
{
    ah_webhooks *w = core->webhooks;
    if (w == NULL || w->nthreads == 0)
        return;
    char now[32];
    ah_now_iso(now);
    wh_due d = {0};
    if (core->store->ops->webhook_due(core->store, now, collect_due, &d) != 0 || d.oom) {
        free(d.v);
        return;
    }
    /* Both lists are in id order (the store's, and ours kept so). */
    for (size_t i = 0; i < d.n; i++) {
        const wh_lru *old = w->nlru > 0 ? bsearch(&d.v[i], w->lru, w->nlru, sizeof *w->lru,
                                                  cmp_lru_id)
                                        : NULL;
        d.v[i].seq = old != NULL ? old->seq : 0;
    }
    if (d.n > 0)
        qsort(d.v, d.n, sizeof *d.v, cmp_lru_seq);
    bool queued = false;
    pthread_mutex_lock(&w->mu);
    for (size_t k = 0; k < d.n && w->nslots < w->max_slots && !w->stopping; k++) {
        wh_lru *c = &d.v[k];
        if (has_slot(w, c->id) || tenant_slots(w, c->tenant_id) >= w->max_per_tenant)
            continue;
        w->slots[w->nslots++] = (wh_slot){.id = c->id, .tenant_id = c->tenant_id};
        c->seq = ++w->seq;
        queued = true;
    }
    if (queued)
        pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (d.n > 0)
        qsort(d.v, d.n, sizeof *d.v, cmp_lru_id);
    free(w->lru);
    w->lru = d.v;
    w->nlru = d.n;
}

/* Delivery log lines age out with the events they are about. */
void ah_webhooks_prune(ah_core *core)
{
    char cutoff[32];
    ah_iso_in(-(long)core->cfg.events_retention_days * 86400L * 1000L, cutoff);
    int64_t n = 0;
    if (core->store->ops->webhook_prune(core->store, cutoff, &n) != 0)
        ah_log(&core->log, AH_LOG_WARN, "webhooks", "cannot prune the delivery log");
    else if (n > 0)
        ah_log(&core->log, AH_LOG_INFO, "webhooks", "pruned %lld delivery log lines older "
               "than %d days", (long long)n, core->cfg.events_retention_days);
}
