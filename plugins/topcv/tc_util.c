/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the TopCV plugin's files (see topcv.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "topcv.h"

const char *tc_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *tc_text(const cJSON *obj, const char *key, char *buf, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsNumber(v)) {
        /* ah_whole checks the range first: casting 1e87 (a provider's, found
         * by fuzz_topcv_webhook) to long long is undefined behaviour. */
        long long whole;
        if (ah_whole(v->valuedouble, &whole))
            snprintf(buf, len, "%lld", whole);
        else
            snprintf(buf, len, "%g", v->valuedouble);
        return buf;
    }
    return NULL;
}

static bool tc_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool tc_time_ms(const char *s, long long *ms)
{
    int y, mo, d, h, mi, se;
    if (s == NULL || strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
        s[13] != ':' || s[16] != ':' || !tc_digits(s, 4, &y) || !tc_digits(s + 5, 2, &mo) ||
        !tc_digits(s + 8, 2, &d) || !tc_digits(s + 11, 2, &h) || !tc_digits(s + 14, 2, &mi) ||
        !tc_digits(s + 17, 2, &se) || y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
        mi > 59 || se > 60)
        return false;
    const char *p = s + 19;
    int frac = 0, scale = 1000;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        for (; *p >= '0' && *p <= '9'; p++)
            if (scale > 1) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
    }
    long offset_s = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (!tc_digits(p + 1, 2, &hh) || p[3] != ':' || !tc_digits(p + 4, 2, &mm) || hh > 23 ||
            mm > 59)
            return false;
        offset_s = (*p == '-' ? -1 : 1) * (hh * 3600L + mm * 60L);
        p += 6;
    } else {
        return false;
    }
    if (*p != '\0')
        return false;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = se};
    *ms = ((long long)timegm(&tm) - offset_s) * 1000 + frac;
    return true;
}

bool tc_configured(const ah_call *call)
{
    const char *k = call->host->setting(call, "api_key");
    const char *s = call->host->setting(call, "secret_key");
    return k != NULL && *k != '\0' && s != NULL && *s != '\0';
}

/* The path part of base_url ("" for "https://host"), so that the signature
 * covers the path TopCV receives. */
static const char *base_path(const char *base)
{
    const char *p = base != NULL ? strstr(base, "://") : NULL;
    if (p == NULL)
        return "";
    p = strchr(p + 3, '/');
    return p != NULL ? p : "";
}

ah_result tc_api_with(ah_call *call, const char *token, const char *secret, const char *method,
                      const char *path, const cJSON *body, int attempts, long *status,
                      cJSON **out, ah_http_outcome *outcome)
{
    if (outcome != NULL)
        *outcome = AH_OUTCOME_NONE;
    const ah_host_api *h = call->host;
    if (out != NULL)
        *out = NULL;
    char *text = body != NULL ? cJSON_PrintUnformatted(body) : NULL;
    if (body != NULL && text == NULL)
        return h->fail(call, AH_E_INTERNAL, 500, "out of memory");
    const char *payload = text != NULL ? text : "";
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    const char *bp = base_path(h->setting(call, "base_url"));
    size_t bl = strlen(bp);
    while (bl > 0 && bp[bl - 1] == '/')
        bl--;
    /* TopCV signs the path it receives without the query. */
    size_t pl = strcspn(path, "?");
    size_t n = strlen(ts) + strlen(method) + bl + pl + strlen(payload) + 4;
    char *signed_text = malloc(n);
    char mac[65];
    if (signed_text == NULL) {
        free(text);
        return h->fail(call, AH_E_INTERNAL, 500, "out of memory");
    }
    snprintf(signed_text, n, "%s.%s.%.*s%.*s.%s", ts, method, (int)bl, bp, (int)pl, path,
             payload);
    ah_result r = h->hmac_sha256_hex(secret, strlen(secret), signed_text, strlen(signed_text), mac);
    free(signed_text);
    if (r != AH_OK) {
        free(text);
        return h->fail(call, AH_E_INTERNAL, 500, "cannot sign the request");
    }
    char h_ts[64], h_sig[96];
    snprintf(h_ts, sizeof h_ts, "X-TopCV-Timestamp: %s", ts);
    snprintf(h_sig, sizeof h_sig, "X-TopCV-Signature: sha256=%s", mac);
    const char *headers[] = {"Accept: application/json", "Content-Type: application/json", h_ts,
                             h_sig, NULL};
    ah_http_request req = {
        .struct_size = sizeof req,
        .method = method,
        .url = path,
        .headers = headers,
        .body = text,
        .body_len = text != NULL ? strlen(text) : 0,
        .max_attempts = attempts,
        .bearer = token,
        /* Every call but a read changes the employer's jobs: the host must
         * never send one twice (no retry after a lost answer, no reused
         * connection that libcurl would silently re-send on). */
        .flags = strcmp(method, "GET") != 0 ? AH_HTTP_NOT_IDEMPOTENT : 0,
        .response_size = sizeof(ah_http_response),
    };
    ah_http_response resp = {.struct_size = sizeof resp};
    r = h->http(call, &req, &resp);
    free(text);
    if (outcome != NULL)
        *outcome = AH_HAS(&resp, outcome) ? (ah_http_outcome)resp.outcome : AH_OUTCOME_NONE;
    if (r == AH_OK) {
        *status = resp.status;
        if (out != NULL && resp.body != NULL && resp.body_len > 0)
            *out = h->json_parse(resp.body, resp.body_len);
    }
    h->http_response_free(&resp);
    return r;
}

ah_result tc_api(ah_call *call, const char *method, const char *path, const cJSON *body,
                 int attempts, long *status, cJSON **out)
{
    return tc_api_outcome(call, method, path, body, attempts, status, out, NULL);
}

ah_result tc_api_outcome(ah_call *call, const char *method, const char *path, const cJSON *body,
                         int attempts, long *status, cJSON **out, ah_http_outcome *outcome)
{
    if (outcome != NULL)
        *outcome = AH_OUTCOME_NONE;
    if (!tc_configured(call))
        return call->host->fail(call, "not_configured", 409,
                                "TopCV is not configured for this connection: save the Employer "
                                "API Key and Secret Key with postings.configure");
    return tc_api_with(call, call->host->setting(call, "api_key"),
                       call->host->setting(call, "secret_key"), method, path, body, attempts,
                       status, out, outcome);
}

ah_result tc_api_error(ah_call *call, const char *what, long status, const cJSON *answer)
{
    const char *msg = tc_str(answer, "message");
    if (status == 401 || status == 403)
        return call->host->fail(call, "invalid_credentials", 502,
                                "%s: TopCV refused the saved credentials (HTTP %ld)%s%s", what,
                                status, msg ? ": " : "", msg ? msg : "");
    if (status == 404)
        return call->host->fail(call, AH_E_NOT_FOUND, 404, "%s: TopCV has no such job%s%s", what,
                                msg ? ": " : "", msg ? msg : "");
    /* TopCV refused the work (busy, rate-limited): nothing happened, and the
     * product may send it again. */
    if (status == 429 || status == 503)
        return call->host->fail(call, AH_E_UNAVAILABLE, 503, "%s: TopCV is unavailable (HTTP %ld)%s%s",
                                what, status, msg ? ": " : "", msg ? msg : "");

    return call->host->fail(call, AH_E_UPSTREAM, 502, "%s: TopCV answered HTTP %ld%s%s", what,
                            status, msg ? ": " : "", msg ? msg : "");
}

ah_result tc_put(ah_call *call, const char *type, const char *remote_id, const cJSON *raw,
                 const cJSON *fields, char *id_out, int *changed)
{
    char now[AH_UTC_LEN];
    if (!ah_utc_now(now, sizeof now))
        return call->host->fail(call, AH_E_INTERNAL, 500, "the clock is outside 0001..9999");
    ah_record rec = {
        .struct_size = sizeof rec,
        .type = type,
        .remote_id = remote_id,
        .updated_at = now,
        .raw = raw,
        .fields = fields,
    };
    return call->host->record_put(call, &rec, id_out, id_out != NULL ? TC_ID_LEN : 0, changed);
}

cJSON *tc_list(ah_call *call, const char *type)
{
    cJSON *l = call->host->record_find(call, type, "connection", call->connection, 0, 1000);
    if (l == NULL)
        call->host->fail(call, "store_unavailable", 500, "cannot read %s records", type);
    return l;
}

cJSON *tc_by_id(ah_call *call, const char *type, const char *id)
{
    if (id == NULL || *id == '\0')
        return NULL;
    cJSON *r = call->host->record_by_id(call, id);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "fields");
    const char *t = tc_str(r, "type"), *conn = tc_str(f, "connection");
    bool mine = strcmp(type, "job") == 0 || (conn != NULL && strcmp(conn, call->connection) == 0);
    if (r == NULL || t == NULL || strcmp(t, type) != 0 || !mine) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

cJSON *tc_job(ah_call *call, const char *id)
{
    cJSON *job = tc_by_id(call, "job", id);
    if (job != NULL)
        return job;
    cJSON *l = call->host->record_find(call, "job", "job_id", id, 0, 1);
    if (cJSON_GetArraySize(l) > 0)
        job = cJSON_DetachItemFromArray(l, 0);
    cJSON_Delete(l);
    return job;
}

ah_result tc_notice(ah_call *call, const char *event_id, const char *kind, const char *message,
                    const char *topcv_id, const char *ref)
{
    char now[AH_UTC_LEN];
    if (!ah_utc_now(now, sizeof now))
        return call->host->fail(call, AH_E_INTERNAL, 500, "the clock is outside 0001..9999");
    cJSON *f = cJSON_CreateObject();
    if (f == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 500, "out of memory");
    cJSON_AddStringToObject(f, "connection", call->connection);
    cJSON_AddStringToObject(f, "kind", kind);
    cJSON_AddStringToObject(f, "message", message);
    if (topcv_id != NULL)
        cJSON_AddStringToObject(f, "topcv_id", topcv_id);
    if (ref != NULL)
        cJSON_AddStringToObject(f, "ref", ref);
    cJSON_AddStringToObject(f, "received_at", now);
    cJSON_AddBoolToObject(f, "read", 0);
    /* A redelivered event finds its notice stored: keep the first one. */
    cJSON *old = call->host->record_get(call, TC_NOTICE, event_id);
    ah_result r = AH_OK;
    if (old == NULL)
        r = tc_put(call, TC_NOTICE, event_id, NULL, f, NULL, NULL);
    cJSON_Delete(old);
    cJSON_Delete(f);
    return r;
}

void tc_publish(ah_call *call, const char *topic, const char *id, const char *remote_id,
                const char *type, cJSON *extra)
{
    cJSON *ev = cJSON_CreateObject();
    if (ev == NULL) {
        cJSON_Delete(extra);
        return;
    }
    cJSON_AddStringToObject(ev, "id", id);
    cJSON_AddStringToObject(ev, "remote_id", remote_id);
    cJSON_AddStringToObject(ev, "type", type);
    cJSON_AddStringToObject(ev, "connection", call->connection);
    cJSON_AddStringToObject(ev, "source", "topcv");
    cJSON *it = extra != NULL ? extra->child : NULL;
    while (it != NULL) {
        cJSON *next = it->next;
        cJSON_AddItemToObject(ev, it->string, cJSON_DetachItemViaPointer(extra, it));
        it = next;
    }
    cJSON_Delete(extra);
    if (call->host->publish(call, topic, ev) != AH_OK)
        call->host->log(call, AH_LOG_WARN, "cannot publish %s for %s", topic, id);
}
