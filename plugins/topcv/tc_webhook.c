/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The webhook TopCV calls: POST /integrations/topcv/webhook/{token}. The
 * host has already resolved the token to an enabled connection; here the
 * body is checked against the connection's Secret Key (HMAC-SHA256 over
 * "<timestamp>.<body>", 5-minute window, constant-time compare) before
 * anything is read or stored.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "topcv.h"

int tc_verify(const ah_host_api *h, const char *secret, const char *ts, const char *sig,
              const char *body, size_t len, long long now, const char **code)
{
    *code = "missing_signature";
    if (ts == NULL || sig == NULL || *ts == '\0' || strlen(ts) > 12)
        return -1;
    for (const char *p = ts; *p != '\0'; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    long long t = strtoll(ts, NULL, 10);
    if (t < now - TC_REPLAY_WINDOW_S || t > now + TC_REPLAY_WINDOW_S) {
        *code = "stale_timestamp";
        return -1;
    }
    *code = "invalid_signature";
    size_t n = strlen(ts) + 1 + len + 1;
    char *text = malloc(n);
    if (text == NULL)
        return -1;
    memcpy(text, ts, strlen(ts));
    text[strlen(ts)] = '.';
    if (len > 0)
        memcpy(text + strlen(ts) + 1, body, len);
    text[n - 1] = '\0';
    char mac[65], want[72];
    ah_result r = h->hmac_sha256_hex(secret, strlen(secret), text, n - 1, mac);
    free(text);
    if (r != AH_OK)
        return -1;
    snprintf(want, sizeof want, "sha256=%s", mac);
    if (!h->ct_equal(want, sig))
        return -1;
    *code = NULL;
    return 0;
}

static ah_result refuse(ah_call *call, ah_http_exchange *ex, int status, const char *code,
                        const char *msg)
{
    cJSON *o = cJSON_CreateObject(), *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddItemToObject(o, "error", e);
    call->host->log(call, AH_LOG_WARN, "webhook refused: %s", code);
    call->host->http_respond_json(ex, status, o);
    return AH_OK;
}

/* job.approved / job.rejected: the posting's state, a notice, an event.
 * `event_at` is the event's created_at (may be NULL). */
static ah_result job_state(ah_call *call, const char *event_id, const char *event_at,
                           const cJSON *data, bool approved, cJSON **out)
{
    const ah_host_api *h = call->host;
    char buf[32], now[32];
    const char *tid = tc_text(data, "job_id", buf, sizeof buf);
    if (tid == NULL || *tid == '\0' || strlen(tid) > 128)
        return h->fail(call, AH_E_INVALID, 400, "data.job_id is required");
    /* An event handled before (TopCV sends it again when our 200 was lost,
     * maybe after later events) changes nothing: its notice, stored once
     * the posting was, says so. */
    cJSON *seen = h->record_get(call, TC_NOTICE, event_id);
    if (seen != NULL) {
        cJSON_Delete(seen);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "duplicate");
        *out = o;
        return AH_OK;
    }
    const char *state = approved ? "approved" : "rejected";
    const char *reason = tc_str(data, "reason");
    const char *at = approved ? "approved_at" : "rejected_at";
    if (event_at == NULL)
        event_at = tc_str(data, at);
    long long at_ms = 0, old_ms = 0;
    bool timed = tc_time_ms(event_at, &at_ms);
    if (!ah_utc_now(now, sizeof now))
        return call->host->fail(call, AH_E_INTERNAL, 500, "the clock is outside 0001..9999");
    cJSON *rec = h->record_get(call, TC_POSTING, tid);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(rec, "fields");
    const char *title = tc_str(f, "title") ? tc_str(f, "title") : tc_str(data, "title");
    char posting_id[TC_ID_LEN] = "";
    bool changed = false, outdated = false;
    if (rec != NULL) {
        const char *old = tc_str(f, "state");
        /* state_at: when TopCV made the event that set the stored state. An
         * older one (delivered late, out of order) does not overwrite it. */
        bool old_timed = tc_time_ms(tc_str(f, "state_at"), &old_ms);
        outdated = timed && old_timed && at_ms < old_ms;
        changed = !outdated && (old == NULL || strcmp(old, state) != 0);
        bool newer = timed && (!old_timed || at_ms > old_ms) && !outdated;
        snprintf(posting_id, sizeof posting_id, "%s", tc_str(rec, "id"));
        if (changed || newer) {
            cJSON *nf = cJSON_Duplicate(f, 1);
            if (changed) {
                cJSON_DeleteItemFromObjectCaseSensitive(nf, "state");
                cJSON_AddStringToObject(nf, "state", state);
                const char *when = tc_str(data, at) ? tc_str(data, at) : now;
                cJSON_DeleteItemFromObjectCaseSensitive(nf, at);
                cJSON_AddStringToObject(nf, at, when);
                cJSON_DeleteItemFromObjectCaseSensitive(nf, "reason");
                if (!approved && reason != NULL)
                    cJSON_AddStringToObject(nf, "reason", reason);
                cJSON_DeleteItemFromObjectCaseSensitive(nf, "updated_at");
                cJSON_AddStringToObject(nf, "updated_at", now);
            }
            if (timed) {
                cJSON_DeleteItemFromObjectCaseSensitive(nf, "state_at");
                cJSON_AddStringToObject(nf, "state_at", event_at);
            }
            ah_result r = tc_put(call, TC_POSTING, tid, cJSON_GetObjectItemCaseSensitive(rec, "raw"),
                                 nf, NULL, NULL);
            cJSON_Delete(nf);
            if (r != AH_OK) {
                cJSON_Delete(rec);
                return AH_ERR;
            }
        }
    } else {
        h->log(call, AH_LOG_INFO, "TopCV job %s is not linked to a job here: notice only", tid);
    }
    if (outdated)
        h->log(call, AH_LOG_INFO,
               "TopCV event %s (%s) is older than the state stored for job %s: kept as a notice",
               event_id, state, tid);
    char msg[512];
    if (approved)
        snprintf(msg, sizeof msg, "Job posting \"%.200s\" was approved and is live on TopCV",
                 title ? title : tid);
    else
        snprintf(msg, sizeof msg, "Job posting \"%.200s\" was rejected by TopCV%s%.200s",
                 title ? title : tid, reason ? ": " : "", reason ? reason : "");
    ah_result r = tc_notice(call, event_id, approved ? "posting.approved" : "posting.rejected", msg,
                            tid, posting_id[0] ? posting_id : NULL);
    if (r == AH_OK && changed) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "state", state);
        if (tc_str(f, "job_id") != NULL)
            cJSON_AddStringToObject(x, "job_id", tc_str(f, "job_id"));
        if (title != NULL)
            cJSON_AddStringToObject(x, "title", title);
        if (!approved && reason != NULL)
            cJSON_AddStringToObject(x, "reason", reason);
        tc_publish(call, approved ? "event.posting.approved" : "event.posting.rejected", posting_id,
                   tid, "posting", x);
    }
    cJSON_Delete(rec);
    if (r != AH_OK)
        return AH_ERR;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", changed    ? "updated"
                                         : outdated ? "outdated"
                                         : posting_id[0] ? "unchanged"
                                                         : "noted");
    *out = o;
    return AH_OK;
}

ah_result tc_route_webhook(ah_call *call, ah_http_exchange *ex)
{
    const ah_host_api *h = call->host;
    const char *secret = h->setting(call, "secret_key");
    if (secret == NULL || *secret == '\0')
        return refuse(call, ex, 401, "not_configured",
                      "TopCV is not configured for this connection: nothing was stored");
    size_t len = 0;
    const char *body = h->http_body(ex, &len);
    const char *code = NULL;
    if (tc_verify(h, secret, h->http_header(ex, "X-TopCV-Timestamp"),
                  h->http_header(ex, "X-TopCV-Signature"), body, len, (long long)time(NULL),
                  &code) != 0)
        return refuse(call, ex, 401, code,
                      strcmp(code, "stale_timestamp") == 0
                          ? "X-TopCV-Timestamp is more than 5 minutes away: nothing was stored"
                          : "X-TopCV-Signature does not match the body: nothing was stored");
    cJSON *root = h->json_parse(body, len);
    const char *event = tc_str(root, "event");
    char idbuf[32];
    const char *id = tc_text(root, "id", idbuf, sizeof idbuf);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (event == NULL || id == NULL || *id == '\0' || strlen(id) > 128 || !cJSON_IsObject(data)) {
        cJSON_Delete(root);
        return refuse(call, ex, 400, AH_E_INVALID,
                      "the body must be {\"id\": string, \"event\": string, \"data\": object}");
    }
    cJSON *out = NULL;
    ah_result r;
    if (strcmp(event, "job.approved") == 0 || strcmp(event, "job.rejected") == 0)
        r = job_state(call, id, tc_str(root, "created_at"), data,
                      strcmp(event, "job.approved") == 0, &out);
    else if (strcmp(event, "application.created") == 0)
        r = tc_cv_received(call, id, data, &out);
    else {
        /* Newer TopCV events: acknowledged so that TopCV stops retrying. */
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "status", "ignored");
        r = AH_OK;
    }
    cJSON_Delete(root);
    if (r != AH_OK)
        return AH_ERR; /* the host answers with the failure (5xx: TopCV retries) */
    h->http_respond_json(ex, 200, out);
    return AH_OK;
}
