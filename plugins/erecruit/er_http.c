/* SPDX-License-Identifier: Apache-2.0 */
/* Authenticated requests to ERecruit and the mapping of its errors to
 * atshub's stable codes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "er.h"

/* How much of ERecruit's own message we repeat to the caller. */
#define ER_MSG_MAX 300

static void set_err(er_error *err, const char *code, int http_status, long upstream,
                    const char *fmt, ...) AH_PRINTF(5, 6);

static void set_err(er_error *err, const char *code, int http_status, long upstream,
                    const char *fmt, ...)
{
    snprintf(err->code, sizeof err->code, "%s", code);
    err->http_status = http_status;
    err->upstream = upstream;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

/* ERecruit's "message" (or, lacking one, its "error" code), cut short and
 * stripped of control characters so that it is safe in a log line. */
static void provider_message(const cJSON *body, char *out, size_t n)
{
    out[0] = '\0';
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "message");
    if (!cJSON_IsString(m) || m->valuestring[0] == '\0')
        m = cJSON_GetObjectItemCaseSensitive(body, "error");
    if (!cJSON_IsString(m))
        return;
    size_t w = 0;
    for (const char *s = m->valuestring; *s != '\0' && w + 1 < n && w < ER_MSG_MAX; s++)
        out[w++] = (unsigned char)*s < 0x20 ? ' ' : *s;
    out[w] = '\0';
}

void er_map_error(long status, const cJSON *body, int attempts, er_error *err)
{
    char msg[ER_MSG_MAX + 1];
    provider_message(body, msg, sizeof msg);
    const char *shown = msg[0] != '\0' ? msg : "no details";
    switch (status) {
    case 400:
        set_err(err, AH_E_INVALID, 400, status, "ERecruit rejected the request: %s", shown);
        return;
    case 401:
    case 403:
        set_err(err, "auth_failed", 502, status,
                "ERecruit refused the credentials (HTTP %ld): %s", status, shown);
        return;
    case 404:
        set_err(err, AH_E_NOT_FOUND, 404, status, "ERecruit: %s",
                msg[0] != '\0' ? msg : "not found");
        return;
    case 409:
        set_err(err, AH_E_CONFLICT, 409, status, "ERecruit: %s",
                msg[0] != '\0' ? msg : "conflict");
        return;
    case 422:
        set_err(err, AH_E_INVALID, 422, status, "ERecruit: %s",
                msg[0] != '\0' ? msg : "validation failed");
        return;
    default:
        break;
    }
    if (status == 429 || status >= 500)
        set_err(err, AH_E_UNAVAILABLE, 503, status,
                "ERecruit answered HTTP %ld after %d attempt%s: %s", status, attempts,
                attempts == 1 ? "" : "s", shown);
    else
        set_err(err, AH_E_UPSTREAM, 502, status, "ERecruit answered HTTP %ld: %s", status,
                shown);
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

/* Turns a received response into *out or *err; on success, a copy of the
 * body's text into *keep when asked for (NULL for an empty body). */
static ah_result interpret(ah_call *call, const ah_http_response *resp, cJSON **out,
                           er_error *err, char **keep, size_t *keep_len)
{
    const ah_host_api *h = call->host;
    bool empty = resp->body == NULL || blank(resp->body, resp->body_len);
    cJSON *j = empty ? NULL : h->json_parse(resp->body, resp->body_len);
    if (resp->status >= 200 && resp->status < 300) {
        if (!empty && j == NULL) {
            set_err(err, AH_E_UPSTREAM, 502, resp->status,
                    "ERecruit sent malformed JSON (HTTP %ld, %zu bytes)", resp->status,
                    resp->body_len);
            return AH_ERR;
        }
        if (keep != NULL && !empty) {
            if ((*keep = malloc(resp->body_len + 1)) == NULL) {
                cJSON_Delete(j);
                set_err(err, AH_E_INTERNAL, 500, 0, "out of memory");
                return AH_ERR;
            }
            memcpy(*keep, resp->body, resp->body_len);
            (*keep)[resp->body_len] = '\0';
            *keep_len = resp->body_len;
        }
        *out = j;
        return AH_OK;
    }
    er_map_error(resp->status, j, resp->attempts > 0 ? resp->attempts : 1, err);
    cJSON_Delete(j);
    return AH_ERR;
}

static ah_result call_keep(ah_call *call, const char *method, const char *path,
                           const cJSON *body, cJSON **out, er_error *err, char **keep,
                           size_t *keep_len);

ah_result er_call(ah_call *call, const char *method, const char *path, const cJSON *body,
                  cJSON **out, er_error *err)
{
    return call_keep(call, method, path, body, out, err, NULL, NULL);
}

static ah_result call_keep(ah_call *call, const char *method, const char *path,
                           const cJSON *body, cJSON **out, er_error *err, char **keep,
                           size_t *keep_len)
{
    if (keep != NULL) {
        *keep = NULL;
        *keep_len = 0;
    }
    const ah_host_api *h = call->host;
    const er_conn *c = call->conn_ctx;
    memset(err, 0, sizeof *err);
    *out = NULL;
    if (c == NULL) {
        set_err(err, AH_E_INTERNAL, 500, 0, "erecruit: connection is not open");
        return AH_ERR;
    }
    char *json = NULL;
    if (body != NULL && (json = cJSON_PrintUnformatted(body)) == NULL) {
        set_err(err, AH_E_INTERNAL, 500, 0, "out of memory");
        return AH_ERR;
    }
    const char *const headers_json[] = {"Accept: application/json",
                                        "Content-Type: application/json", NULL};
    const char *const headers_plain[] = {"Accept: application/json", NULL};
    ah_oauth2_params p = {
        .struct_size = sizeof p,
        .token_url = c->token_url,
        .client_id = c->client_id,
        .client_secret = c->client_secret,
    };
    /* The host gets, caches and sends the token, and renews it once
     * after a 401 (ABI 1.1). */
    ah_http_request req = {
        .struct_size = sizeof req,
        .method = method,
        .url = path,
        .headers = json != NULL ? headers_json : headers_plain,
        .body = json,
        .body_len = json != NULL ? strlen(json) : 0,
        /* Creating notes, documents, submissions or moving a stage must
         * not happen twice: the host repeats a POST or PATCH only when
         * ERecruit certainly did not act on it. */
        .flags = strcmp(method, "GET") != 0 ? AH_HTTP_NOT_IDEMPOTENT : 0,
        .oauth2 = &p,
        .response_size = sizeof(ah_http_response),
    };
    ah_http_response resp;
    memset(&resp, 0, sizeof resp);
    resp.struct_size = sizeof resp;
    ah_result rc;
    bool write = strcmp(method, "GET") != 0;
    if (h->http(call, &req, &resp) != AH_OK) {
        /* Described by the host: no token (auth_failed), no answer, or a
         * write lost on the way (outcome_unknown). */
        set_err(err, AH_E_UNAVAILABLE, 503, 0, "no response from ERecruit (%s %s)", method,
                path);
        err->host_failed = true;
        rc = AH_ERR;
    } else {
        rc = interpret(call, &resp, out, err, keep, keep_len);
    }
    err->outcome = AH_HAS(&resp, outcome) ? resp.outcome : AH_OUTCOME_NONE;
    /* A write answered 500, 502 or 504 may have been carried out: not the
     * "unavailable" (503) that a product would retry. */
    if (rc != AH_OK && write && !err->host_failed && err->outcome == AH_OUTCOME_UNKNOWN)
        set_err(err, AH_E_OUTCOME_UNKNOWN, 502, resp.status,
                "ERecruit answered HTTP %ld to %s %s and may have carried it out; it was not "
                "sent again",
                resp.status, method, path);
    h->http_response_free(&resp);
    free(json);
    return rc;
}

ah_result er_fail(ah_call *call, const er_error *err)
{
    if (err->host_failed)
        return AH_ERR;
    return call->host->fail(call, err->code[0] != '\0' ? err->code : AH_E_PLUGIN,
                            err->http_status, "%s", err->message);
}

ah_result er_do(ah_call *call, const char *method, const char *path, const cJSON *body,
                cJSON **out)
{
    er_error err;
    if (er_call(call, method, path, body, out, &err) != AH_OK)
        return er_fail(call, &err);
    return AH_OK;
}

ah_result er_get_page(ah_call *call, ah_buf *path, cJSON **out, char **text, size_t *text_len)
{
    *text = NULL;
    *text_len = 0;
    ah_result rc = ah_buf_check(call, path);
    if (rc == AH_OK) {
        er_error err;
        rc = call_keep(call, "GET", path->s, NULL, out, &err, text, text_len);
        if (rc != AH_OK)
            rc = er_fail(call, &err);
    }
    ah_buf_free(path);
    return rc;
}

ah_result er_oom(ah_call *call)
{
    return call->host->fail(call, AH_E_INTERNAL, 500, "out of memory");
}

er_map_opts er_opts(const ah_call *call)
{
    const er_conn *c = call->conn_ctx;
    er_map_opts o = {0, 0};
    if (c != NULL) {
        o.screened_tag_id = c->screened_tag_id;
        o.screened_status_id = c->screened_status_id;
    }
    return o;
}

ah_result er_send(ah_call *call, const char *method, ah_buf *path, const cJSON *body,
                  cJSON **out)
{
    ah_result rc = ah_buf_check(call, path);
    if (rc == AH_OK)
        rc = er_do(call, method, path->s, body, out);
    ah_buf_free(path);
    return rc;
}

ah_result er_get_data(ah_call *call, ah_buf *path, const char *what, cJSON **resp,
                      const cJSON **data)
{
    *resp = NULL;
    if (er_send(call, "GET", path, NULL, resp) != AH_OK)
        return AH_ERR;
    *data = cJSON_GetObjectItemCaseSensitive(*resp, "data");
    if (!cJSON_IsArray(*data)) {
        cJSON_Delete(*resp);
        *resp = NULL;
        return call->host->fail(call, AH_E_UPSTREAM, 502,
                                "ERecruit sent %s without a data array", what);
    }
    return AH_OK;
}

ah_result er_get_by_id(ah_call *call, const cJSON *body, const char *key,
                       const char *collection, const char *suffix, cJSON **out)
{
    char id[ER_ID_MAX];
    if (er_require_id(call, body, key, id) != AH_OK)
        return AH_ERR;
    ah_buf path = {0};
    er_path_id(call, &path, collection, id, suffix);
    return er_send(call, "GET", &path, NULL, out);
}

ah_result er_reply_mapped(ah_call *call, const cJSON *resp, cJSON *mapped, const char *what,
                          cJSON **reply)
{
    if (mapped == NULL) {
        /* No id is ERecruit's fault; with an id only the allocation failed. */
        char got[ER_ID_MAX];
        return er_map_id(resp, "id", got)
                   ? er_oom(call)
                   : call->host->fail(call, AH_E_UPSTREAM, 502,
                                      "ERecruit sent a %s without an id", what);
    }
    *reply = mapped;
    return AH_OK;
}

bool er_map_items(cJSON *arr, const cJSON *data, er_map_fn map, const er_map_opts *o)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, data)
    {
        char id[ER_ID_MAX];
        if (arr == NULL)
            break;
        if (!er_map_id(it, "id", id))
            continue;
        cJSON *m = map(it, o);
        if (m == NULL || !cJSON_AddItemToArray(arr, m)) {
            cJSON_Delete(m);
            arr = NULL;
        }
    }
    return arr != NULL;
}

bool er_page_parts(const cJSON *page, const cJSON **data, const cJSON **next)
{
    *data = cJSON_GetObjectItemCaseSensitive(page, "data");
    *next = cJSON_GetObjectItemCaseSensitive(page, "next_cursor");
    return cJSON_IsArray(*data) &&
           (*next == NULL || cJSON_IsNull(*next) ||
            (cJSON_IsString(*next) && strlen((*next)->valuestring) <= ER_CURSOR_MAX));
}

/* A page far larger than asked for (a broken or hostile provider's) would be
 * mapped and emitted whole: hundreds of MB in the daemon for one call. */
ah_result er_page_size_ok(ah_call *call, const cJSON *data, long long per_page)
{
    long long n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, data)
    {
        if (++n > per_page)
            break;
    }
    if (n <= per_page)
        return AH_OK;
    return call->host->fail(call, AH_E_UPSTREAM, 502,
                            "ERecruit sent %d items for per_page %lld; nothing of the page was "
                            "kept",
                            cJSON_GetArraySize(data), per_page);
}
