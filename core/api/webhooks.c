/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Outbound webhooks to the product, delivered from the outbox.
 *
 * Each endpoint keeps a cursor: the last outbox id it has handled. The
 * ticker walks each enabled endpoint's tenant events after its cursor in
 * outbox order; events its types do not match are skipped, matching ones
 * are POSTed one at a time and the cursor only moves past an event once it
 * was answered 2xx. The first failure stops that endpoint (later events
 * wait behind it) and sets a backoff; so a receiver gets every event at
 * least once, in order, and with a stable id ("evt_" + outbox id, the
 * webhook-id header) to drop the rare duplicate. After max_failures
 * consecutive failures the endpoint is disabled, event.webhook.disabled is
 * published and a warning logged; enabling it again resumes where it
 * stopped. Every attempt is kept in webhook_deliveries (the delivery log).
 *
 * Signatures follow Standard Webhooks: webhook-id, webhook-timestamp and
 * webhook-signature = "v1," + base64(HMAC-SHA256(key, id.ts.body)), the key
 * being the base64 part of the "whsec_" secret.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "webhooks.h"

#define WH_BATCH 100
#define WH_SECRET_BYTES 24
#define WH_SEAL_AAD "webhook_endpoint"

/* --- shared helpers ------------------------------------------------------ */

int ah_trust_sql(ah_core *core, const char *sql, const char *const *params, size_t n,
                 ah_sql_row_cb cb, void *arg, int64_t *changes)
{
    if (core->store->ops->sql == NULL)
        return AH_STORE_ERR;
    return core->store->ops->sql(core->store, sql, params, n, 1, cb, arg, changes);
}

void ah_trust_rows_json(void *arg, int ncol, const char *const *vals)
{
    cJSON *rows = arg;
    cJSON *row = cJSON_CreateArray();
    if (row == NULL)
        return;
    for (int i = 0; i < ncol; i++)
        cJSON_AddItemToArray(row, vals[i] != NULL ? cJSON_CreateString(vals[i])
                                                  : cJSON_CreateNull());
    cJSON_AddItemToArray(rows, row);
}

cJSON *ah_trust_rows(ah_core *core, const char *sql, const char *const *params, size_t n)
{
    cJSON *rows = cJSON_CreateArray();
    if (rows == NULL || ah_trust_sql(core, sql, params, n, ah_trust_rows_json, rows, NULL) != 0) {
        cJSON_Delete(rows);
        return NULL;
    }
    return rows;
}

cJSON *ah_trust_map_rows(ah_core *core, const char *sql, const char *const *params, size_t n,
                         cJSON *(*fn)(const cJSON *row))
{
    cJSON *rows = ah_trust_rows(core, sql, params, n), *out = cJSON_CreateArray();
    if (rows == NULL || out == NULL) {
        cJSON_Delete(rows);
        cJSON_Delete(out);
        return NULL;
    }
    const cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        cJSON *o = fn(row);
        if (o != NULL)
            cJSON_AddItemToArray(out, o);
    }
    cJSON_Delete(rows);
    return out;
}

const char *ah_trust_col(const cJSON *row, int i)
{
    const cJSON *v = cJSON_GetArrayItem(row, i);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void ah_trust_iso_in(long ms, char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long total = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + ms;
    time_t secs = (time_t)(total / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%03dZ", base, (int)(total % 1000));
}

static long long col_ll(const cJSON *row, int i)
{
    const char *s = ah_trust_col(row, i);
    return s != NULL ? strtoll(s, NULL, 10) : 0;
}

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

static bool valid_url(const char *url)
{
    return url != NULL && strlen(url) < 2048 &&
           (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) &&
           strpbrk(url, " \t\r\n") == NULL;
}

int ah_webhook_add(ah_core *core, int64_t tenant_id, const char *url, const char *types,
                   int64_t *id_out, char *secret_out, size_t secret_len, char *err,
                   size_t errlen)
{
    if (!valid_url(url)) {
        snprintf(err, errlen, "url must be an http:// or https:// URL");
        return -1;
    }
    if (types != NULL && (strlen(types) > 1024 || strpbrk(types, " \t\r\n") != NULL)) {
        snprintf(err, errlen, "types must be a comma-separated list of event types");
        return -1;
    }
    unsigned char raw[WH_SECRET_BYTES];
    if (ah_random_bytes(raw, sizeof raw) != 0) {
        snprintf(err, errlen, "cannot generate a secret");
        return -1;
    }
    char *b64 = ah_base64_encode(raw, sizeof raw);
    explicit_bzero(raw, sizeof raw);
    if (b64 == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char secret[80];
    snprintf(secret, sizeof secret, "whsec_%s", b64);
    free(b64);
    char *sealed = ah_seal(core->host_key, secret, WH_SEAL_AAD);
    if (sealed == NULL) {
        explicit_bzero(secret, sizeof secret);
        snprintf(err, errlen, "cannot seal the secret");
        return -1;
    }
    /* The cursor starts at the newest event: an endpoint gets what is
     * published after it was added (the event log serves the past). */
    char tid[24], now[32];
    snprintf(tid, sizeof tid, "%lld", (long long)tenant_id);
    ah_now_iso(now);
    const char *p[] = {tid, url, types != NULL && *types ? types : "*", sealed, now};
    cJSON *rows = ah_trust_rows(core,
                                "INSERT INTO webhook_endpoints(tenant_id, url, event_types, "
                                "secret, next_at, created_at, cursor) VALUES($1, $2, $3, $4, "
                                "$5, $5, (SELECT coalesce(max(id), 0) FROM outbox)) RETURNING id",
                                p, 5);
    free(sealed);
    if (rows == NULL || cJSON_GetArraySize(rows) != 1) {
        cJSON_Delete(rows);
        explicit_bzero(secret, sizeof secret);
        snprintf(err, errlen, "cannot store the endpoint (see the log)");
        return -1;
    }
    if (id_out != NULL)
        *id_out = col_ll(cJSON_GetArrayItem(rows, 0), 0);
    cJSON_Delete(rows);
    snprintf(secret_out, secret_len, "%s", secret);
    explicit_bzero(secret, sizeof secret);
    return 0;
}

static cJSON *endpoint_json(const cJSON *row)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddNumberToObject(o, "id", (double)col_ll(row, 0));
    cJSON_AddNumberToObject(o, "tenant_id", (double)col_ll(row, 1));
    cJSON_AddStringToObject(o, "url", ah_trust_col(row, 2) ? ah_trust_col(row, 2) : "");
    cJSON_AddStringToObject(o, "types", ah_trust_col(row, 3) ? ah_trust_col(row, 3) : "*");
    cJSON_AddBoolToObject(o, "enabled", col_ll(row, 4) != 0);
    cJSON_AddNumberToObject(o, "failures", (double)col_ll(row, 5));
    if (ah_trust_col(row, 6) != NULL)
        cJSON_AddStringToObject(o, "disabled_at", ah_trust_col(row, 6));
    else
        cJSON_AddNullToObject(o, "disabled_at");
    cJSON_AddNumberToObject(o, "cursor", (double)col_ll(row, 7));
    cJSON_AddStringToObject(o, "created_at", ah_trust_col(row, 8) ? ah_trust_col(row, 8) : "");
    return o;
}

cJSON *ah_webhook_list(ah_core *core, int64_t tenant_id)
{
    char tid[24];
    snprintf(tid, sizeof tid, "%lld", (long long)tenant_id);
    const char *p[] = {tid};
    return ah_trust_map_rows(core,
                             "SELECT id, tenant_id, url, event_types, enabled, failures, "
                             "disabled_at, cursor, created_at FROM webhook_endpoints "
                             "WHERE $1 = 0 OR tenant_id = $1 ORDER BY id",
                             p, 1, endpoint_json);
}

int ah_webhook_set_enabled(ah_core *core, int64_t tenant_id, int64_t id, bool enabled)
{
    char tid[24], eid[24], now[32];
    snprintf(tid, sizeof tid, "%lld", (long long)tenant_id);
    snprintf(eid, sizeof eid, "%lld", (long long)id);
    ah_now_iso(now);
    const char *p[] = {eid, tid, now};
    int64_t changed = 0;
    int rc = ah_trust_sql(core,
                          enabled ? "UPDATE webhook_endpoints SET enabled = 1, failures = 0, "
                                    "disabled_at = NULL, next_at = $3 "
                                    "WHERE id = $1 AND ($2 = 0 OR tenant_id = $2)"
                                  : "UPDATE webhook_endpoints SET enabled = 0, disabled_at = $3 "
                                    "WHERE id = $1 AND ($2 = 0 OR tenant_id = $2)",
                          p, 3, NULL, NULL, &changed);
    if (rc != 0)
        return rc;
    return changed > 0 ? AH_STORE_OK : AH_STORE_NOT_FOUND;
}

static cJSON *delivery_json(const cJSON *row)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    char evid[40];
    snprintf(evid, sizeof evid, "evt_%lld", col_ll(row, 0));
    cJSON_AddStringToObject(o, "event_id", evid);
    cJSON_AddNumberToObject(o, "cursor", (double)col_ll(row, 0));
    if (ah_trust_col(row, 1) != NULL)
        cJSON_AddStringToObject(o, "type", ah_trust_col(row, 1));
    cJSON_AddNumberToObject(o, "attempts", (double)col_ll(row, 2));
    cJSON_AddStringToObject(o, "status", ah_trust_col(row, 3) ? ah_trust_col(row, 3) : "");
    cJSON_AddNumberToObject(o, "last_status", (double)col_ll(row, 4));
    if (ah_trust_col(row, 5) != NULL)
        cJSON_AddStringToObject(o, "last_error", ah_trust_col(row, 5));
    if (ah_trust_col(row, 6) != NULL)
        cJSON_AddStringToObject(o, "next_at", ah_trust_col(row, 6));
    if (ah_trust_col(row, 7) != NULL)
        cJSON_AddStringToObject(o, "delivered_at", ah_trust_col(row, 7));
    return o;
}

cJSON *ah_webhook_deliveries(ah_core *core, int64_t tenant_id, int64_t id, int limit)
{
    char tid[24], eid[24], lim[16];
    snprintf(tid, sizeof tid, "%lld", (long long)tenant_id);
    snprintf(eid, sizeof eid, "%lld", (long long)id);
    snprintf(lim, sizeof lim, "%d", limit > 0 && limit <= 1000 ? limit : 100);
    const char *p[] = {eid, tid, lim};
    cJSON *rows = ah_trust_rows(core, "SELECT id FROM webhook_endpoints WHERE id = $1 AND "
                                      "($2 = 0 OR tenant_id = $2)",
                                p, 2);
    if (rows == NULL || cJSON_GetArraySize(rows) != 1) {
        cJSON_Delete(rows);
        return NULL;
    }
    cJSON_Delete(rows);
    return ah_trust_map_rows(core,
                             "SELECT d.outbox_id, o.topic, d.attempts, d.status, d.last_status, "
                             "d.last_error, d.next_at, d.delivered_at FROM webhook_deliveries d "
                             "LEFT JOIN outbox o ON o.id = d.outbox_id WHERE d.endpoint_id = $1 "
                             "ORDER BY d.outbox_id DESC LIMIT $3",
                             p, 3, delivery_json);
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

/* POSTs one event. 0 when answered 2xx; else -1 with the status (0: none)
 * and a reason. */
static int post_event(ah_core *core, const char *url, const char *secret, int64_t outbox_id,
                      const char *payload, long *status, char *err, size_t errlen)
{
    char msg_id[40], ts[24], sig[128];
    snprintf(msg_id, sizeof msg_id, "evt_%lld", (long long)outbox_id);
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    if (ah_webhook_sign(secret, msg_id, ts, payload, strlen(payload), sig, sizeof sig) != 0) {
        snprintf(err, errlen, "cannot sign the event");
        *status = 0;
        return -1;
    }
    char h_id[64], h_ts[64], h_sig[160];
    snprintf(h_id, sizeof h_id, "webhook-id: %s", msg_id);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %s", ts);
    snprintf(h_sig, sizeof h_sig, "webhook-signature: %s", sig);
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
    const char *secrets[] = {secret, NULL};
    ah_http_response resp;
    memset(&resp, 0, sizeof resp);
    resp.struct_size = sizeof resp;
    if (ah_httpc_perform(core->httpc, &req, NULL, secrets, NULL, NULL, &resp, err, errlen) != 0) {
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

static void log_delivery(ah_core *core, const char *eid, int64_t outbox_id, bool ok, long status,
                         const char *error, const char *next_at)
{
    char oid[24], st[16], now[32];
    snprintf(oid, sizeof oid, "%lld", (long long)outbox_id);
    snprintf(st, sizeof st, "%ld", status);
    ah_now_iso(now);
    const char *p[] = {eid, oid, ok ? "delivered" : "failed", st, ok ? NULL : error,
                       ok ? NULL : next_at, ok ? now : NULL};
    ah_trust_sql(core,
                 "INSERT INTO webhook_deliveries(endpoint_id, outbox_id, attempts, status, "
                 "last_status, last_error, next_at, delivered_at) "
                 "VALUES($1, $2, 1, $3, $4, $5, $6, $7) "
                 "ON CONFLICT(endpoint_id, outbox_id) DO UPDATE SET "
                 "attempts = webhook_deliveries.attempts + 1, status = excluded.status, "
                 "last_status = excluded.last_status, last_error = excluded.last_error, "
                 "next_at = excluded.next_at, delivered_at = excluded.delivered_at",
                 p, 7, NULL, NULL, NULL);
}

static void set_cursor(ah_core *core, const char *eid, int64_t cursor)
{
    char c[24];
    snprintf(c, sizeof c, "%lld", (long long)cursor);
    const char *p[] = {eid, c};
    ah_trust_sql(core, "UPDATE webhook_endpoints SET cursor = $2, failures = 0 WHERE id = $1",
                 p, 2, NULL, NULL, NULL);
}

/* A failed attempt: backoff, or disable after max_failures in a row. */
static void endpoint_failed(ah_core *core, const cJSON *ep, long failures, const char *why)
{
    const char *eid = ah_trust_col(ep, 0), *url = ah_trust_col(ep, 2);
    int64_t tenant_id = col_ll(ep, 1);
    char next[32], nf[24], now[32];
    ah_trust_iso_in(wh_backoff(core, failures), next);
    ah_now_iso(now);
    snprintf(nf, sizeof nf, "%ld", failures);
    bool disable = failures >= core->cfg.webhook_max_failures;
    const char *p[] = {eid, nf, next, disable ? now : NULL};
    ah_trust_sql(core,
                 disable ? "UPDATE webhook_endpoints SET failures = $2, next_at = $3, "
                           "enabled = 0, disabled_at = $4 WHERE id = $1"
                         : "UPDATE webhook_endpoints SET failures = $2, next_at = $3 WHERE id = $1",
                 p, disable ? 4 : 3, NULL, NULL, NULL);
    if (!disable) {
        ah_log(&core->log, AH_LOG_INFO, "webhooks", "endpoint %s: delivery failed (%s), "
               "failure %ld of %d, retry at %s", eid, why, failures,
               core->cfg.webhook_max_failures, next);
        return;
    }
    ah_log(&core->log, AH_LOG_WARN, "webhooks",
           "endpoint %s (%s) disabled after %ld consecutive failures (last: %s); "
           "re-enable it with `atshub webhook enable %s`", eid, url, failures, why, eid);
    cJSON *b = cJSON_CreateObject();
    if (b != NULL) {
        cJSON_AddNumberToObject(b, "endpoint_id", (double)strtoll(eid, NULL, 10));
        cJSON_AddStringToObject(b, "url", url != NULL ? url : "");
        cJSON_AddNumberToObject(b, "failures", (double)failures);
        cJSON_AddStringToObject(b, "last_error", why);
    }
    ah_core_publish(core, tenant_id, "event.webhook.disabled", b);
}

/* Delivers what is due for one endpoint row (id, tenant_id, url, secret,
 * event_types, failures, cursor), stopping at the first failure. */
static void deliver_endpoint(ah_core *core, const cJSON *ep)
{
    const char *eid = ah_trust_col(ep, 0), *url = ah_trust_col(ep, 2),
               *sealed = ah_trust_col(ep, 3);
    const char *types = ah_trust_col(ep, 4);
    long failures = (long)col_ll(ep, 5);
    int64_t cursor = col_ll(ep, 6);
    char *secret = sealed != NULL ? ah_open_sealed(core->host_key, sealed, WH_SEAL_AAD) : NULL;
    if (secret == NULL) {
        ah_log(&core->log, AH_LOG_ERROR, "webhooks", "endpoint %s: cannot open its secret "
               "(another host key?)", eid);
        return;
    }
    char tid[24], cur[24];
    snprintf(tid, sizeof tid, "%lld", col_ll(ep, 1));
    snprintf(cur, sizeof cur, "%lld", (long long)cursor);
    const char *p[] = {tid, cur};
    cJSON *rows = ah_trust_rows(core, "SELECT id, topic, body, created_at FROM outbox "
                                      "WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT 100",
                                p, 2);
    if (rows == NULL) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
        return;
    }
    int64_t moved = cursor;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, rows) {
        int64_t oid = col_ll(ev, 0);
        const char *topic = ah_trust_col(ev, 1);
        if (topic == NULL || !ah_topic_matches_list(types, topic)) {
            moved = oid;
            continue;
        }
        char *payload = ah_event_envelope(oid, topic, ah_trust_col(ev, 2), ah_trust_col(ev, 3));
        long status = 0;
        char err[512] = "out of memory";
        int rc = payload != NULL ? post_event(core, url, secret, oid, payload, &status, err,
                                              sizeof err)
                                 : -1;
        free(payload);
        if (rc == 0) {
            log_delivery(core, eid, oid, true, status, NULL, NULL);
            set_cursor(core, eid, oid);
            moved = oid;
            failures = 0;
            continue;
        }
        if (moved != cursor)
            set_cursor(core, eid, moved);
        char next[32];
        ah_trust_iso_in(wh_backoff(core, failures + 1), next);
        log_delivery(core, eid, oid, false, status, err, next);
        endpoint_failed(core, ep, failures + 1, err);
        moved = -1;
        break;
    }
    if (moved > cursor)
        set_cursor(core, eid, moved);
    cJSON_Delete(rows);
    explicit_bzero(secret, strlen(secret));
    free(secret);
}

void ah_webhooks_tick(ah_core *core)
{
    char now[32];
    ah_now_iso(now);
    const char *p[] = {now};
    cJSON *eps = ah_trust_rows(core,
                               "SELECT id, tenant_id, url, secret, event_types, failures, cursor "
                               "FROM webhook_endpoints WHERE enabled = 1 AND next_at <= $1 "
                               "ORDER BY id",
                               p, 1);
    if (eps == NULL)
        return;
    const cJSON *ep;
    cJSON_ArrayForEach(ep, eps)
        deliver_endpoint(core, ep);
    cJSON_Delete(eps);
}
