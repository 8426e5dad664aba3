/* SPDX-License-Identifier: Apache-2.0 */
/*
 * statuses.put, statuses.get and statuses.query, and the HTTP exchange with
 * CareerBuilder behind them (wire choices: README.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cb.h"

#define CB_PATH "/corporate/CandidateStatus"

static const char *const json_headers[] = {"Content-Type: application/json",
                                           "Accept: application/json", NULL};

bool cb_apply_defaults(const cb_conn *c, cJSON *st)
{
    static const char *const keys[] = {"account", "vendor_key", "client"};
    const char *vals[] = {c->account, c->vendor_key, c->client};
    for (size_t i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, keys[i]);
        if (v != NULL && !cJSON_IsNull(v))
            continue;
        cJSON_DeleteItemFromObjectCaseSensitive(st, keys[i]);
        if (cJSON_AddStringToObject(st, keys[i], vals[i]) == NULL)
            return false;
    }
    cJSON *level = cJSON_GetObjectItemCaseSensitive(st, "status_level");
    if (cJSON_IsString(level))
        for (char *p = level->valuestring; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    /* null optional members are left off the wire, as the seed asks for a
     * candidate's requisition fields. */
    cJSON *m = st->child;
    while (m != NULL) {
        cJSON *next = m->next;
        if (cJSON_IsNull(m))
            cJSON_Delete(cJSON_DetachItemViaPointer(st, m));
        m = next;
    }
    return true;
}

/* --- tokens and requests -------------------------------------------------- */

static void oauth_params(ah_call *call, ah_oauth2_params *p)
{
    *p = (ah_oauth2_params){
        .struct_size = sizeof(*p),
        .token_url = call->host->setting(call, "token_url"),
        .client_id = call->host->setting(call, "client_id"),
        .client_secret = call->host->setting(call, "client_secret"),
    };
    if (p->token_url == NULL || *p->token_url == '\0')
        p->token_url = "/oauth/token";
}

/* CareerBuilder's error list ({"errors":[{"field","message"}]}) as one line. */
static void describe_errors(const ah_http_response *r, char *out, size_t len)
{
    cJSON *j = r->body != NULL ? cJSON_Parse(r->body) : NULL;
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(j, "errors"), *e;
    size_t used = 0;
    out[0] = '\0';
    cJSON_ArrayForEach(e, errs)
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        if (!cJSON_IsString(m) || used + 1 >= len)
            continue;
        int w = snprintf(out + used, len - used, "%s%s", used ? "; " : "", m->valuestring);
        used = w > 0 && (size_t)w < len - used ? used + (size_t)w : len - 1;
    }
    if (out[0] == '\0')
        snprintf(out, len, "%.200s", r->body != NULL && r->body_len ? r->body : "no details");
    cJSON_Delete(j);
}

static bool transient_status(long s)
{
    return s == 408 || s == 429 || s >= 500;
}

/* Describes a non-2xx answer with host->fail. */
static ah_result fail_from_response(ah_call *call, const ah_http_response *r)
{
    char msg[768];
    describe_errors(r, msg, sizeof msg);
    if (r->status == 400 || r->status == 422)
        return call->host->fail(call, AH_E_INVALID, 400, "CareerBuilder refused the request: %s",
                                msg);
    if (r->status == 404)
        return call->host->fail(call, AH_E_NOT_FOUND, 404, "CareerBuilder: %s", msg);
    if (r->status == 401 || r->status == 403)
        return call->host->fail(call, "auth_failed", 502,
                                "CareerBuilder refused the credentials (HTTP %ld): %s", r->status,
                                msg);
    if (transient_status(r->status))
        return call->host->fail(call, AH_E_UNAVAILABLE, 503,
                                "CareerBuilder is unavailable (HTTP %ld): %s", r->status, msg);
    return call->host->fail(call, AH_E_UPSTREAM, 502, "CareerBuilder answered HTTP %ld: %s",
                            r->status, msg);
}

/*
 * One authorised request. AH_OK with *resp filled whatever the status
 * (check it); AH_ERR when no answer or no token could be had (described).
 * The host gets and caches the token and renews it once after a 401.
 */
static ah_result cb_request(ah_call *call, const char *method, const char *url,
                            const char *body, int max_attempts, unsigned flags,
                            ah_http_response *resp)
{
    ah_oauth2_params p;
    oauth_params(call, &p);
    ah_http_request req = {
        .struct_size = sizeof(req),
        .method = method,
        .url = url,
        .headers = json_headers,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
        .max_attempts = max_attempts,
        .oauth2 = &p,
        .flags = flags,
        .response_size = sizeof(ah_http_response),
    };
    memset(resp, 0, sizeof *resp);
    resp->struct_size = sizeof *resp;
    if (call->host->http(call, &req, resp) != AH_OK) {
        int outcome = AH_HAS(resp, outcome) ? resp->outcome : AH_OUTCOME_NONE;
        call->host->http_response_free(resp);
        resp->outcome = outcome;
        return AH_ERR;
    }
    return AH_OK;
}

/* A stored status and the one sent name the same key (the simulator's and
 * the seed's unique key) and hold the same status and date. */
static bool same_status(const cJSON *a, const cJSON *b)
{
    static const char *const ci[] = {"account", "candidate_email", "status_level"};
    static const char *const cs[] = {"vendor_key", "requisition_id", "status", "status_date"};
    for (size_t i = 0; i < sizeof ci / sizeof ci[0]; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, ci[i]);
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, ci[i]);
        if (!cJSON_IsString(x) || !cJSON_IsString(y) ||
            strcasecmp(x->valuestring, y->valuestring) != 0)
            return false;
    }
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, cs[i]);
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, cs[i]);
        bool nx = x == NULL || cJSON_IsNull(x), ny = y == NULL || cJSON_IsNull(y);
        if (nx != ny || (!nx && (!cJSON_IsString(x) || !cJSON_IsString(y) ||
                                 strcmp(x->valuestring, y->valuestring) != 0)))
            return false;
    }
    return true;
}

int cb_status_stored(ah_call *call, const cJSON *status)
{
    const char *account = call->host->json_string(status, "account", 256);
    const char *email = call->host->json_string(status, "candidate_email", 1024);
    const char *date = call->host->json_string(status, "status_date", 32);
    if (account == NULL || email == NULL)
        return -1;
    /* One GET as the seed documents it (results_per_page, status_date; it
     * has no paging): the candidate's statuses dated from ours on
     * (status_date means "after": one second earlier), at most
     * CB_MAX_PER_PAGE of them. A full answer without ours cannot tell. */
    time_t t;
    char since[AH_UTC_LEN] = "";
    if (date != NULL && cb_date_parse(date, &t) && !ah_utc_format(t - 1, since, sizeof since))
        since[0] = '\0';
    ah_buf url = {0};
    ah_buf_puts(&url, CB_PATH "/");
    ah_buf_url(&url, call->host, account);
    ah_buf_puts(&url, "/");
    ah_buf_url(&url, call->host, email);
    ah_buf_printf(&url, "?results_per_page=%d", CB_MAX_PER_PAGE);
    ah_buf_query(&url, call->host, "status_date", since[0] ? since : NULL);
    if (url.oom) {
        ah_buf_free(&url);
        return -1;
    }
    ah_http_response r;
    ah_result rc = cb_request(call, "GET", url.s, NULL, 0, 0, &r);
    ah_buf_free(&url);
    if (rc != AH_OK)
        return -1;
    cJSON *arr = r.status == 200 ? call->host->json_parse(r.body, r.body_len) : NULL;
    call->host->http_response_free(&r);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return -1;
    }
    int n = cJSON_GetArraySize(arr);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (same_status(it, status)) {
            cJSON_Delete(arr);
            return 1;
        }
    }
    cJSON_Delete(arr);
    return n < CB_MAX_PER_PAGE ? 0 : -1;
}

/* Settles a PUT sent whose answer did not say what happened (`outcome` the
 * host's class): never by sending it again. */
static cb_send_result settle_put(ah_call *call, const cJSON *status, int outcome, long http)
{
    const ah_host_api *h = call->host;
    h->log(call, AH_LOG_WARN,
           "CareerBuilder's answer to a status (HTTP %ld) did not say whether it was stored; "
           "reading the candidate's statuses back",
           http);
    int stored = cb_status_stored(call, status);
    if (stored == 1) {
        h->log(call, AH_LOG_INFO, "the status was stored: its answer was lost, it was not "
                                  "sent again");
        return CB_SENT;
    }
    if (stored == 0 && outcome == AH_OUTCOME_UNKNOWN) {
        h->fail(call, AH_E_UNAVAILABLE, 503,
                "CareerBuilder did not store the status (its answer was lost; reading it back "
                "shows it absent); safe to send again");
        return CB_TRANSIENT;
    }
    h->fail(call, AH_E_OUTCOME_UNKNOWN, 502,
            "CareerBuilder may have stored the status and cannot be read back now; it was not "
            "sent again");
    return CB_UNKNOWN;
}

/* The most of CareerBuilder's answer that a reply's "message" carries. */
#define CB_ANSWER_MAX 1024

/* The "message" of a stored status (malloc'd, NULL on ENOMEM): CareerBuilder's
 * 2xx answer when it is a JSON string, as the seed's "Created/updated
 * status.", cut at a UTF-8 boundary to CB_ANSWER_MAX bytes; else a fixed
 * text. Never the body as it came: any size, any content. */
static char *answer_text(const ah_http_response *r)
{
    /* A 2xx is stored, whatever its body: one cut short is no answer. */
    cJSON *j = r->body != NULL ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
    char *out;
    if (cJSON_IsString(j)) {
        const char *t = j->valuestring;
        size_t n = strlen(t);
        if (n > CB_ANSWER_MAX) {
            n = CB_ANSWER_MAX;
            while (n > 0 && ((unsigned char)t[n] & 0xC0) == 0x80)
                n--; /* t[n] continues a character: cut before it starts */
        }
        out = strndup(t, n);
    } else {
        out = strdup(j != NULL ? "Created/updated status (the answer was not a text)"
                               : "Created/updated status (the answer was cut short)");
    }
    cJSON_Delete(j);
    return out;
}

cb_send_result cb_send_status(ah_call *call, const cJSON *status, int max_attempts,
                              char **answer)
{
    char *text = cJSON_PrintUnformatted(status);
    if (text == NULL) {
        call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
        return CB_TRANSIENT;
    }
    ah_http_response r;
    ah_result rc = cb_request(call, "PUT", CB_PATH, text, max_attempts, AH_HTTP_NOT_IDEMPOTENT,
                              &r);
    free(text);
    static const char settled[] = "Created/updated status (its answer was lost; read back)";
    if (rc != AH_OK) {
        if (r.outcome != AH_OUTCOME_UNKNOWN)
            return CB_TRANSIENT;
        cb_send_result s = settle_put(call, status, r.outcome, 0);
        if (s == CB_SENT && answer != NULL)
            *answer = strdup(settled);
        return s;
    }
    int outcome = AH_HAS(&r, outcome) ? r.outcome : AH_OUTCOME_NONE;
    cb_send_result out = CB_SENT;
    if (r.status >= 200 && r.status < 300) {
        if (answer != NULL)
            *answer = answer_text(&r);
    } else if (outcome == AH_OUTCOME_UNKNOWN) {
        long st = r.status;
        call->host->http_response_free(&r);
        cb_send_result s = settle_put(call, status, outcome, st);
        if (s == CB_SENT && answer != NULL)
            *answer = strdup(settled);
        return s;
    } else {
        fail_from_response(call, &r);
        out = transient_status(r.status) || r.status == 401 || r.status == 403 ? CB_TRANSIENT
                                                                               : CB_REFUSED;
    }
    call->host->http_response_free(&r);
    return out;
}

/* --- statuses.put -------------------------------------------------------------- */

static ah_result check_account(ah_call *call, const cb_conn *c, const cJSON *body)
{
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(body, "account");
    if (cJSON_IsString(acc) && ah_utf8_len(acc->valuestring) <= CB_MAX_ACCOUNT &&
        acc->valuestring[0] != '\0' && strcmp(acc->valuestring, c->account) != 0)
        return ah_arg_fail(call, "account", "this connection's CareerBuilder account");
    return AH_OK;
}

static ah_result put_status(ah_call *call, const cJSON *body, bool settle, cJSON **reply)
{
    cb_conn *c = call->conn_ctx;
    if (check_account(call, c, body) != AH_OK)
        return AH_ERR;
    cJSON *st = cJSON_Duplicate(body, 1);
    if (st == NULL || !cb_apply_defaults(c, st)) {
        cJSON_Delete(st);
        return call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
    }
    char err[1024];
    if (cb_validate_status(st, err, sizeof err) != 0) {
        cJSON_Delete(st);
        return call->host->fail(call, AH_E_INVALID, 400, "%s", err);
    }
    char *answer = NULL;
    if (settle) {
        /* The host settles a put whose outcome stayed unknown: the
         * statuses are read back, the status is never sent again. */
        int stored = cb_status_stored(call, st);
        if (stored != 1) {
            cJSON_Delete(st);
            return stored == 0
                       ? call->host->fail(call, AH_E_UNAVAILABLE, 503,
                                          "CareerBuilder did not store the status; safe to "
                                          "send again")
                       : call->host->fail(call, AH_E_OUTCOME_UNKNOWN, 502,
                                          "CareerBuilder cannot be read back yet");
        }
        answer = strdup("Created/updated status (its answer was lost; read back)");
    } else if (cb_send_status(call, st, 0, &answer) != CB_SENT) {
        cJSON_Delete(st);
        return AH_ERR;
    }
    cJSON *out = cJSON_CreateObject();
    if (out == NULL || cJSON_AddStringToObject(out, "message", answer ? answer : "") == NULL ||
        !cJSON_AddItemToObject(out, "status", st)) {
        free(answer);
        cJSON_Delete(out);
        cJSON_Delete(st);
        return call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
    }
    free(answer);
    *reply = out;
    return AH_OK;
}

ah_result cb_op_put(ah_call *call, const cJSON *body, cJSON **reply)
{
    return put_status(call, body, false, reply);
}

ah_result cb_settle_put(ah_call *call, const cJSON *body, cJSON **reply)
{
    return put_status(call, body, true, reply);
}

/* --- reading ---------------------------------------------------------------------- */

/* Parses a 2xx answer that must be a JSON array and moves its items to dst.
 * Returns the number of items, or -1 (described). */
static int take_array(ah_call *call, ah_http_response *r, cJSON *dst)
{
    if (r->status < 200 || r->status >= 300) {
        fail_from_response(call, r);
        return -1;
    }
    cJSON *arr = call->host->json_parse(r->body, r->body_len);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        call->host->fail(call, AH_E_UPSTREAM, 502, "CareerBuilder's answer is not a JSON list");
        return -1;
    }
    int n = 0;
    cJSON *it;
    while ((it = cJSON_DetachItemFromArray(arr, 0)) != NULL) {
        cJSON_AddItemToArray(dst, it);
        n++;
    }
    cJSON_Delete(arr);
    return n;
}

ah_result cb_op_get(ah_call *call, const cJSON *body, cJSON **reply)
{
    cb_conn *c = call->conn_ctx;
    const char *email = NULL;
    if (ah_arg_string(call, body, "candidate_email", AH_ARG_REQUIRED | AH_ARG_NONEMPTY, 0,
                      &email) != AH_OK)
        return AH_ERR;
    /* CareerBuilder counts characters, not bytes. */
    if (ah_utf8_len(email) > CB_MAX_EMAIL)
        return ah_arg_fail(call, "candidate_email",
                           "an email of at most " AH_STR(CB_MAX_EMAIL) " characters");
    if (check_account(call, c, body) != AH_OK)
        return AH_ERR;
    /* The seed's GET has no paging: one request answers at most
     * results_per_page statuses. By default atshub asks for the most it
     * asks (the seed's own default is 10). */
    long per_page = CB_MAX_PER_PAGE;
    const cJSON *rpp = cJSON_GetObjectItemCaseSensitive(body, "results_per_page");
    if (rpp != NULL && !cJSON_IsNull(rpp)) {
        char *end = NULL;
        long long whole = 0;
        if (cJSON_IsNumber(rpp))
            per_page = ah_whole(rpp->valuedouble, &whole) && whole >= 1 && whole <= CB_MAX_PER_PAGE
                           ? (long)whole
                           : 0; /* refused below */
        else if (cJSON_IsString(rpp))
            per_page = strtol(rpp->valuestring, &end, 10);
        if ((cJSON_IsString(rpp) && (*rpp->valuestring == '\0' || *end != '\0')) ||
            (!cJSON_IsNumber(rpp) && !cJSON_IsString(rpp)) || per_page < 1 ||
            per_page > CB_MAX_PER_PAGE)
            return ah_arg_fail(call, "results_per_page",
                               "a whole number from 1 to " AH_STR(CB_MAX_PER_PAGE));
    }
    const cJSON *date = cJSON_GetObjectItemCaseSensitive(body, "status_date");
    if (date != NULL && !cJSON_IsNull(date) &&
        (!cJSON_IsString(date) || !cb_date_parse(date->valuestring, NULL)))
        return ah_arg_fail(call, "status_date",
                           "a UTC date and time as YYYY-MM-DDTHH:MM:SSZ, e.g. "
                           "1776-07-04T19:04:01Z");
    cJSON *all = cJSON_CreateArray();
    ah_result rc = AH_OK;
    if (all == NULL) {
        rc = call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
        goto done;
    }
    ah_buf url = {0};
    ah_buf_puts(&url, CB_PATH "/");
    ah_buf_url(&url, call->host, c->account);
    ah_buf_puts(&url, "/");
    ah_buf_url(&url, call->host, email);
    ah_buf_printf(&url, "?results_per_page=%ld", per_page);
    ah_buf_query(&url, call->host, "status_date", cJSON_IsString(date) ? date->valuestring : NULL);
    if (ah_buf_check(call, &url) != AH_OK) {
        ah_buf_free(&url);
        rc = AH_ERR;
        goto done;
    }
    ah_http_response r;
    rc = cb_request(call, "GET", url.s, NULL, 0, 0, &r);
    ah_buf_free(&url);
    if (rc != AH_OK)
        goto done;
    int n = take_array(call, &r, all);
    call->host->http_response_free(&r);
    if (n < 0) {
        rc = AH_ERR;
        goto done;
    }
    cJSON *out = cJSON_CreateObject();
    /* A full answer may have left statuses out (the seed gives no total):
     * the caller narrows with status_date. */
    if (out == NULL || !cJSON_AddItemToObject(out, "data", all) ||
        cJSON_AddBoolToObject(out, "complete", n < per_page) == NULL) {
        if (out != NULL && cJSON_GetObjectItemCaseSensitive(out, "data") == all)
            all = NULL;
        cJSON_Delete(out);
        rc = call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
        goto done;
    }
    all = NULL;
    *reply = out;
done:
    cJSON_Delete(all);
    return rc;
}

ah_result cb_op_query(ah_call *call, const cJSON *body, cJSON **reply)
{
    cb_conn *c = call->conn_ctx;
    const char *key = NULL;
    const cJSON *list = NULL;
    char err[1024];
    if (cb_validate_query(body, &key, &list, err, sizeof err) != 0)
        return call->host->fail(call, AH_E_INVALID, 400, "%s", err);
    if (check_account(call, c, body) != AH_OK)
        return AH_ERR;
    cJSON *q = cJSON_CreateObject();
    cJSON *items = cJSON_Duplicate(list, 1);
    const cJSON *date = cJSON_GetObjectItemCaseSensitive(body, "status_date");
    bool ok = q != NULL && items != NULL && cJSON_AddStringToObject(q, "account", c->account);
    ok = ok && cJSON_AddItemToObject(q, key, items);
    if (!ok)
        cJSON_Delete(items);
    if (ok && cJSON_IsString(date))
        ok = cJSON_AddStringToObject(q, "status_date", date->valuestring) != NULL;
    char *text = ok ? cJSON_PrintUnformatted(q) : NULL;
    cJSON_Delete(q);
    if (text == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
    ah_http_response r;
    /* A query: a POST that reads, safe to repeat. */
    ah_result rc = cb_request(call, "POST", CB_PATH, text, 0, 0, &r);
    free(text);
    if (rc != AH_OK)
        return AH_ERR;
    cJSON *all = cJSON_CreateArray();
    int n = all != NULL ? take_array(call, &r, all) : -1;
    call->host->http_response_free(&r);
    if (n < 0) {
        cJSON_Delete(all);
        return all != NULL ? AH_ERR : call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
    }
    cJSON *out = cJSON_CreateObject();
    if (out == NULL || !cJSON_AddItemToObject(out, "data", all)) {
        cJSON_Delete(out);
        cJSON_Delete(all);
        return call->host->fail(call, AH_E_INTERNAL, 0, "out of memory");
    }
    *reply = out;
    return AH_OK;
}
