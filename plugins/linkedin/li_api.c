/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The LinkedIn APIs the onboarding operations call: the Provisioning API
 * (partner token), and /v2/atsIntegrations (the customer application's
 * token): batch_partial_update to enable, a batch GET to verify. Every
 * LinkedIn error is mapped through li_errors.c; a 401 gets the token
 * renewed and the call retried once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "li.h"

#define ATS_PATH "/v2/atsIntegrations"
#define APPS_PATH "/v2/provisionedApplications"
#define MAX_BATCH 20

/* --- tokens and calls ------------------------------------------------------------- */

static bool present(const char *s)
{
    return s != NULL && *s != '\0';
}

/* The customer application's credentials, which every /atsIntegrations
 * call must use (the guide's Caution). */
static ah_result child_params(ah_call *call, ah_oauth2_params *p)
{
    const ah_host_api *h = call->host;
    *p = (ah_oauth2_params){.struct_size = sizeof *p,
                            .token_url = h->setting(call, "token_url"),
                            .client_id = h->setting(call, "client_id"),
                            .client_secret = h->setting(call, "client_secret")};
    if (!present(p->client_id) || !present(p->client_secret))
        return h->fail(call, "li_not_provisioned", 409,
                       "this connection has no LinkedIn customer application yet: run "
                       "onboarding.provision first (it stores client_id and client_secret)");
    return AH_OK;
}

static void partner_params(ah_call *call, ah_oauth2_params *p)
{
    const ah_host_api *h = call->host;
    *p = (ah_oauth2_params){.struct_size = sizeof *p,
                            .token_url = h->setting(call, "token_url"),
                            .client_id = h->setting(call, "partner_client_id"),
                            .client_secret = h->setting(call, "partner_client_secret")};
}

/* One call authorised with `p`: the host gets and caches the token, and
 * after a 401 (expired or invalid token) renews it and retries once.
 * AH_OK with any HTTP status in *resp. */
static ah_result li_send(ah_call *call, const ah_oauth2_params *p, const char *method,
                         const char *url, const char *const *headers, const char *body,
                         ah_http_response *resp)
{
    const ah_host_api *h = call->host;
    /* Every POST here writes (a create, a partial update): the host never
     * sends one twice once LinkedIn may have acted on it. */
    ah_http_request rq = {.struct_size = sizeof rq, .method = method, .url = url,
                          .headers = headers, .body = body,
                          .body_len = body != NULL ? strlen(body) : 0, .oauth2 = p,
                          .flags = strcmp(method, "GET") != 0 ? AH_HTTP_NOT_IDEMPOTENT : 0,
                          .response_size = sizeof(ah_http_response)};
    memset(resp, 0, sizeof *resp);
    resp->struct_size = sizeof *resp;
    if (h->http(call, &rq, resp) != AH_OK) {
        int outcome = AH_HAS(resp, outcome) ? resp->outcome : AH_OUTCOME_NONE;
        h->http_response_free(resp);
        resp->outcome = outcome;
        return AH_ERR;
    }
    return AH_OK;
}

/* A write whose answer did not say what happened: sent and lost (AH_ERR
 * with an unknown outcome), a 500/502/504, or a 2xx whose body cannot be
 * read. It is settled by reading LinkedIn back, never by sending again. */
static bool unsettled(ah_result sent, const ah_http_response *resp, bool body_needed)
{
    int oc = resp->outcome;
    if (sent != AH_OK)
        return oc == AH_OUTCOME_UNKNOWN;
    if (oc == AH_OUTCOME_UNKNOWN)
        return true;
    if (body_needed && resp->status >= 200 && resp->status < 300) {
        cJSON *j = resp->body != NULL ? cJSON_ParseWithLength(resp->body, resp->body_len) : NULL;
        bool ok = j != NULL;
        cJSON_Delete(j);
        return !ok;
    }
    return false;
}

/* Describes a write reading back did not settle: not there after an
 * unknown outcome is 503 (safe to send again); after a 2xx, or LinkedIn
 * unreadable, 502 outcome_unknown. */
static ah_result fail_unsettled(ah_call *call, bool absent, int outcome, const char *what)
{
    if (absent && outcome == AH_OUTCOME_UNKNOWN)
        return call->host->fail(call, AH_E_UNAVAILABLE, 503,
                                "%s: LinkedIn did not carry it out (its answer was lost; reading "
                                "it back shows nothing); safe to send again",
                                what);
    return call->host->fail(call, AH_E_OUTCOME_UNKNOWN, 502,
                            "%s: LinkedIn may have carried it out and cannot tell now; it was "
                            "not sent again",
                            what);
}

/* The most of LinkedIn's own words an error message carries. */
#define LI_DETAIL_MAX 300

/* What an answer says of itself, for an error message: ": " and the
 * "message" member of its JSON, cleaned and cut (li_clean_text); "" when it
 * has none. Never the body itself: the answer to a create carries the new
 * application's client_secret, and any answer may carry what a log or a
 * terminal should not get raw. */
static void answer_detail(const ah_host_api *h, const ah_http_response *resp, char *out,
                          size_t outlen)
{
    cJSON *j = resp->body != NULL ? h->json_parse(resp->body, resp->body_len) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    char text[LI_DETAIL_MAX + 1];
    li_clean_text(cJSON_IsString(m) ? m->valuestring : NULL, text, sizeof text);
    snprintf(out, outlen, "%s%s", text[0] != '\0' ? ": " : "", text);
    cJSON_Delete(j);
}

/* A LinkedIn error answer {"status": N, "message": "..."} mapped through
 * the seed's table of `api`; anything else is an upstream error. */
static ah_result fail_answer(ah_call *call, li_api api, const ah_http_response *resp)
{
    const ah_host_api *h = call->host;
    cJSON *j = resp->body != NULL ? h->json_parse(resp->body, resp->body_len) : NULL;
    const char *msg = h->json_string(j, "message", 2048);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
    int status = cJSON_IsNumber(st) ? st->valueint : 0;
    const li_error_row *row = li_error_match(api, (int)resp->status, status, msg);
    char clean[LI_DETAIL_MAX + 1], detail[LI_DETAIL_MAX + 3];
    li_clean_text(msg, clean, sizeof clean);
    ah_result r;
    if (row != NULL) {
        r = li_fail_row(call, row, clean);
    } else {
        answer_detail(h, resp, detail, sizeof detail);
        r = h->fail(call, AH_E_UPSTREAM, 502, "LinkedIn answered HTTP %ld%s", resp->status,
                    detail);
    }
    cJSON_Delete(j);
    return r;
}

/* --- the integrations of a request body ------------------------------------------------ */

typedef struct li_item {
    const char *ctx, *type, *tt;
} li_item;

/* Values go into the entity key unescaped (the guide's sample), so they may
 * not carry its separators. */
static bool key_value_ok(const char *v)
{
    for (; *v; v++)
        if (*v == '&' || *v == '=' || (unsigned char)*v < 0x20)
            return false;
    return true;
}

/* Reads body "integrations" (or, absent, the stored requests, filtered by
 * want_status when not NULL) into items; *held keeps the strings alive. */
static ah_result read_items(ah_call *call, li_api api, const cJSON *body, const char *want_status,
                            li_item *items, int *n, cJSON **held)
{
    const ah_host_api *h = call->host;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, "integrations");
    *held = NULL;
    *n = 0;
    if (list == NULL) {
        cJSON *all = li_list_requests(call);
        if (all == NULL)
            return AH_ERR;
        cJSON *keep = cJSON_CreateArray();
        cJSON *it, *next;
        for (it = all != NULL ? all->child : NULL; it != NULL; it = next) {
            next = it->next;
            const char *st = h->json_string(it, "onboardingStatus", 32);
            if (want_status == NULL || (st != NULL && strcmp(st, want_status) == 0))
                cJSON_AddItemToArray(keep, cJSON_DetachItemViaPointer(all, it));
        }
        cJSON_Delete(all);
        *held = keep;
        list = keep;
        if (cJSON_GetArraySize(list) == 0) {
            const char *code =
                api == LI_API_ENABLE ? "li_no_request_found" : "li_no_integration_found";
            return li_fail_row(call, li_error_by_code(api, code),
                               want_status != NULL
                                   ? "atshub holds no integration request waiting to be enabled"
                                   : "atshub holds no integration request for this connection");
        }
    }
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
        return h->fail(call, AH_E_INVALID, 400,
                       "integrations must be a non-empty list of {integrationContext, "
                       "integrationType, tenantType}");
    if (cJSON_GetArraySize(list) > MAX_BATCH)
        return h->fail(call, AH_E_INVALID, 400, "at most %d integrations in one call", MAX_BATCH);
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
        li_item x = {h->json_string(it, "integrationContext", 256),
                     h->json_string(it, "integrationType", 64), h->json_string(it, "tenantType", 64)};
        if (!present(x.ctx) || !present(x.type) || !present(x.tt))
            return li_fail_row(call, li_error_by_code(api, "li_key_parts_incomplete"),
                               "an integration lacks integrationContext, integrationType or "
                               "tenantType (atshub checked before calling LinkedIn)");
        if (!key_value_ok(x.ctx) || !key_value_ok(x.type) || !key_value_ok(x.tt))
            return h->fail(call, AH_E_INVALID, 400,
                           "integration keys may not contain '&', '=' or control characters");
        items[(*n)++] = x;
    }
    return AH_OK;
}

/* ids[i].integrationContext=..&ids[i].integrationType=..&.. as the guide
 * spells it; values escaped. */
static char *ids_url(ah_call *call, const li_item *items, int n)
{
    (void)call;
    ah_buf b = {0};
    ah_buf_puts(&b, ATS_PATH "?");
    for (int i = 0; i < n; i++) {
        ah_buf_printf(&b, "%sids[%d].integrationContext=", i > 0 ? "&" : "", i);
        ah_buf_url(&b, call->host, items[i].ctx);
        ah_buf_printf(&b, "&ids[%d].integrationType=", i);
        ah_buf_url(&b, call->host, items[i].type);
        ah_buf_printf(&b, "&ids[%d].tenantType=", i);
        ah_buf_url(&b, call->host, items[i].tt);
        ah_buf_printf(&b, "&ids[%d].dataProvider=ATS", i);
    }
    if (!ah_buf_ok(&b)) {
        ah_buf_free(&b);
        return NULL;
    }
    return b.s;
}

/* Whether `v` (from a LinkedIn key, maybe percent-escaped) is `want`. */
static bool value_is(ah_call *call, const char *v, size_t vlen, const char *want)
{
    if (strlen(want) == vlen && strncmp(v, want, vlen) == 0)
        return true;
    (void)call;
    ah_buf e = {0};
    ah_buf_url(&e, call->host, want);
    bool eq = ah_buf_ok(&e) && e.len == vlen && strncasecmp(v, e.s, vlen) == 0;
    ah_buf_free(&e);
    return eq;
}

/* Whether a LinkedIn entity key (fields in any order) names the item. */
static bool key_names(ah_call *call, const char *key, const li_item *x)
{
    int matched = 0;
    for (const char *p = key; p != NULL && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (eq != NULL) {
            size_t nl = (size_t)(eq - p), vl = len - nl - 1;
            const char *want = nl == 18 && !strncmp(p, "integrationContext", 18) ? x->ctx
                               : nl == 15 && !strncmp(p, "integrationType", 15) ? x->type
                               : nl == 10 && !strncmp(p, "tenantType", 10)      ? x->tt
                               : nl == 12 && !strncmp(p, "dataProvider", 12)    ? "ATS"
                                                                                 : NULL;
            if (want != NULL) {
                if (!value_is(call, eq + 1, vl, want))
                    return false;
                matched++;
            }
        }
        p = end ? end + 1 : NULL;
    }
    return matched == 4;
}

static const cJSON *entry_for(ah_call *call, const cJSON *map, const li_item *x)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, map) if (e->string != NULL && key_names(call, e->string, x)) return e;
    return NULL;
}

static cJSON *item_json(const li_item *x)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "integrationContext", x->ctx);
    cJSON_AddStringToObject(o, "integrationType", x->type);
    cJSON_AddStringToObject(o, "tenantType", x->tt);
    return o;
}

static void add_item_error(cJSON *o, li_api api, const cJSON *err, char *first_code,
                           size_t codelen, char *first_msg, size_t msglen)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(err, "status");
    const char *msg = cJSON_IsString(m) ? m->valuestring : "";
    const li_error_row *row = li_error_match(api, 200, cJSON_IsNumber(s) ? s->valueint : 0, msg);
    char text[1024];
    if (row != NULL)
        li_row_message(row, msg, text, sizeof text);
    else
        snprintf(text, sizeof text, "LinkedIn: %s", msg);
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", row != NULL ? row->code : AH_E_UPSTREAM);
    cJSON_AddStringToObject(e, "message", text);
    if (cJSON_IsNumber(s))
        cJSON_AddNumberToObject(o, "status", s->valueint);
    if (first_code[0] == '\0') {
        snprintf(first_code, codelen, "%s", row != NULL ? row->code : AH_E_UPSTREAM);
        snprintf(first_msg, msglen, "%s", text);
    }
}

/* --- onboarding.enable ------------------------------------------------------------------ */

/* An enable whose answer said nothing: the integrations are read back
 * (the batch GET verify makes). Each one whose name is `name` and whose
 * status is past REQUESTED was enabled by this call (LinkedIn refuses to
 * enable one already ENABLED). */
static ah_result settle_enable(ah_call *call, const ah_oauth2_params *p, const char *url,
                               const li_item *items, int n, const char *name, int outcome,
                               cJSON **reply)
{
    const ah_host_api *h = call->host;
    h->log(call, AH_LOG_WARN,
           "enabling %d integration(s): LinkedIn's answer did not say what happened; reading "
           "them back",
           n);
    ah_http_response resp;
    if (li_send(call, p, "GET", url, NULL, NULL, &resp) != AH_OK)
        return fail_unsettled(call, false, outcome, "enabling the integrations");
    cJSON *j = resp.status == 200 ? h->json_parse(resp.body, resp.body_len) : NULL;
    h->http_response_free(&resp);
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(j, "results");
    if (!cJSON_IsObject(results)) {
        cJSON_Delete(j);
        return fail_unsettled(call, false, outcome, "enabling the integrations");
    }
    cJSON *out = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(out, "integrations");
    cJSON_AddStringToObject(out, "integrationName", name);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        cJSON *o = item_json(&items[i]);
        const cJSON *res = entry_for(call, results, &items[i]);
        const char *st = h->json_string(res, "onboardingStatus", 32);
        const char *nm = h->json_string(res, "integrationName", 512);
        bool done = st != NULL && strcmp(st, "REQUESTED") != 0 && nm != NULL &&
                    strcmp(nm, name) == 0;
        cJSON_AddBoolToObject(o, "enabled", done);
        if (done) {
            cJSON_AddNumberToObject(o, "status", 204);
            li_note_status(call, items[i].ctx, items[i].type, items[i].tt, st, nm);
            ok++;
        } else {
            cJSON *e = cJSON_AddObjectToObject(o, "error");
            cJSON_AddStringToObject(e, "code", AH_E_OUTCOME_UNKNOWN);
            cJSON_AddStringToObject(e, "message",
                                    "LinkedIn's answer was lost and the integration does not "
                                    "read enabled under this name");
        }
        cJSON_AddItemToArray(list, o);
    }
    cJSON_Delete(j);
    if (ok == 0) {
        cJSON_Delete(out);
        return fail_unsettled(call, true, outcome, "enabling the integrations");
    }
    cJSON_AddNumberToObject(out, "enabled", ok);
    cJSON_AddNumberToObject(out, "failed", n - ok);
    *reply = out;
    return AH_OK;
}

static ah_result enable(ah_call *call, const cJSON *body, bool settle, cJSON **reply)
{
    const ah_host_api *h = call->host;
    ah_oauth2_params p;
    if (child_params(call, &p) != AH_OK)
        return AH_ERR;
    const char *name = h->json_string(body, "integrationName", 200);
    if (!present(name))
        return h->fail(call, AH_E_INVALID, 400,
                       "integrationName (the customer-facing name of the integration, at most "
                       "200 bytes) is required");
    li_item items[MAX_BATCH];
    int n;
    cJSON *held = NULL;
    if (read_items(call, LI_API_ENABLE, body, "REQUESTED", items, &n, &held) != AH_OK) {
        cJSON_Delete(held);
        return AH_ERR;
    }
    char *url = ids_url(call, items, n);
    cJSON *req = cJSON_CreateObject();
    cJSON *ents = cJSON_AddObjectToObject(req, "entities");
    for (int i = 0; i < n && ents != NULL; i++) {
        char key[512];
        snprintf(key, sizeof key,
                 "integrationContext=%s&integrationType=%s&tenantType=%s&dataProvider=ATS",
                 items[i].ctx, items[i].type, items[i].tt);
        cJSON *e = cJSON_AddObjectToObject(ents, key);
        cJSON *set = cJSON_AddObjectToObject(cJSON_AddObjectToObject(e, "patch"), "$set");
        cJSON_AddStringToObject(set, "integrationName", name);
    }
    char *text = req != NULL ? cJSON_PrintUnformatted(req) : NULL;
    cJSON_Delete(req);
    if (url == NULL || text == NULL) {
        free(url);
        free(text);
        cJSON_Delete(held);
        return h->fail(call, AH_E_INTERNAL, 0, "out of memory");
    }
    const char *headers[] = {"x-restli-method: batch_partial_update",
                             "Content-Type: application/json", NULL};
    ah_http_response resp;
    if (settle) {
        /* The host settles an enable whose outcome stayed unknown: read
         * back, never sent again. */
        free(text);
        ah_result sr = settle_enable(call, &p, url, items, n, name, AH_OUTCOME_UNKNOWN, reply);
        free(url);
        cJSON_Delete(held);
        return sr;
    }
    ah_result r = li_send(call, &p, "POST", url, headers, text, &resp);
    free(text);
    if (unsettled(r, &resp, true)) {
        int oc = resp.outcome;
        if (r == AH_OK)
            h->http_response_free(&resp);
        r = settle_enable(call, &p, url, items, n, name, oc, reply);
        free(url);
        cJSON_Delete(held);
        return r;
    }
    free(url);
    if (r != AH_OK) {
        cJSON_Delete(held);
        return AH_ERR;
    }
    if (resp.status != 200) {
        r = fail_answer(call, LI_API_ENABLE, &resp);
        h->http_response_free(&resp);
        cJSON_Delete(held);
        return r;
    }
    cJSON *j = h->json_parse(resp.body, resp.body_len);
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(j, "results");
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(j, "errors");
    cJSON *out = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(out, "integrations");
    cJSON_AddStringToObject(out, "integrationName", name);
    char first_code[64] = "", first_msg[1024] = "";
    int ok = 0;
    for (int i = 0; i < n; i++) {
        cJSON *o = item_json(&items[i]);
        const cJSON *res = entry_for(call, results, &items[i]);
        const cJSON *err = entry_for(call, errors, &items[i]);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(res, "status");
        if (res != NULL && err == NULL && (!cJSON_IsNumber(s) || (s->valueint >= 200 && s->valueint < 300))) {
            cJSON_AddBoolToObject(o, "enabled", true);
            cJSON_AddNumberToObject(o, "status", cJSON_IsNumber(s) ? s->valueint : 204);
            /* No longer REQUESTED: kept as it was, a later enable without
             * "integrations" would send it again and LinkedIn refuses the
             * whole batch ("already enabled"). The guide: enabling turns a
             * request ENABLED; PARTNER_READY (RSC only) waits for the
             * customer. A verify stores what LinkedIn then says. */
            li_note_status(call, items[i].ctx, items[i].type, items[i].tt,
                           strncmp(items[i].type, "RECRUITER_SYSTEM_CONNECT", 24) == 0
                               ? "PARTNER_READY"
                               : "ENABLED",
                           name);
            ok++;
        } else {
            cJSON_AddBoolToObject(o, "enabled", false);
            if (err == NULL)
                err = res; /* a result without a 2xx status */
            if (err != NULL)
                add_item_error(o, LI_API_ENABLE, err, first_code, sizeof first_code, first_msg,
                               sizeof first_msg);
            else
                add_item_error(o, LI_API_ENABLE, NULL, first_code, sizeof first_code, first_msg,
                               sizeof first_msg);
        }
        cJSON_AddItemToArray(list, o);
    }
    cJSON_Delete(j);
    h->http_response_free(&resp);
    cJSON_Delete(held);
    if (ok == 0) {
        cJSON_Delete(out);
        const li_error_row *row = li_error_by_code(LI_API_ENABLE, first_code);
        return h->fail(call, first_code[0] ? first_code : AH_E_UPSTREAM,
                       row != NULL ? row->ah_status : 502, "%s",
                       first_msg[0] ? first_msg : "LinkedIn enabled none of the integrations");
    }
    cJSON_AddNumberToObject(out, "enabled", ok);
    cJSON_AddNumberToObject(out, "failed", n - ok);
    *reply = out;
    return AH_OK;
}

ah_result li_op_enable(ah_call *call, const cJSON *body, cJSON **reply)
{
    return enable(call, body, false, reply);
}

ah_result li_settle_enable(ah_call *call, const cJSON *body, cJSON **reply)
{
    return enable(call, body, true, reply);
}

/* --- onboarding.verify ------------------------------------------------------------------- */

ah_result li_op_verify(ah_call *call, const cJSON *body, cJSON **reply)
{
    const ah_host_api *h = call->host;
    ah_oauth2_params p;
    if (child_params(call, &p) != AH_OK)
        return AH_ERR;
    li_item items[MAX_BATCH];
    int n;
    cJSON *held = NULL;
    if (read_items(call, LI_API_VERIFY, body, NULL, items, &n, &held) != AH_OK) {
        cJSON_Delete(held);
        return AH_ERR;
    }
    char *url = ids_url(call, items, n);
    if (url == NULL) {
        cJSON_Delete(held);
        return h->fail(call, AH_E_INTERNAL, 0, "out of memory");
    }
    ah_http_response resp;
    ah_result r = li_send(call, &p, "GET", url, NULL, NULL, &resp);
    free(url);
    if (r != AH_OK) {
        cJSON_Delete(held);
        return AH_ERR;
    }
    if (resp.status != 200) {
        r = fail_answer(call, LI_API_VERIFY, &resp);
        h->http_response_free(&resp);
        cJSON_Delete(held);
        return r;
    }
    cJSON *j = h->json_parse(resp.body, resp.body_len);
    h->http_response_free(&resp);
    const cJSON *results = cJSON_GetObjectItemCaseSensitive(j, "results");
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(j, "errors");
    const cJSON *statuses = cJSON_GetObjectItemCaseSensitive(j, "statuses");
    if (cJSON_GetArraySize(results) == 0 && cJSON_GetArraySize(errors) == 0 &&
        cJSON_GetArraySize(statuses) == 0) {
        cJSON_Delete(j);
        cJSON_Delete(held);
        return li_fail_row(call, li_error_by_code(LI_API_VERIFY, "li_no_integration_found"), NULL);
    }
    cJSON *out = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(out, "integrations");
    char first_code[64] = "", first_msg[1024] = "";
    for (int i = 0; i < n; i++) {
        cJSON *o = item_json(&items[i]);
        const cJSON *res = entry_for(call, results, &items[i]);
        const cJSON *err = entry_for(call, errors, &items[i]);
        const char *st = h->json_string(res, "onboardingStatus", 32);
        const char *nm = h->json_string(res, "integrationName", 512);
        if (st != NULL) {
            cJSON_AddStringToObject(o, "onboardingStatus", st);
            if (nm != NULL)
                cJSON_AddStringToObject(o, "integrationName", nm);
            li_note_status(call, items[i].ctx, items[i].type, items[i].tt, st, nm);
        } else {
            cJSON_AddNullToObject(o, "onboardingStatus");
            if (err != NULL)
                add_item_error(o, LI_API_VERIFY, err, first_code, sizeof first_code, first_msg,
                               sizeof first_msg);
            else {
                const li_error_row *row = li_error_by_code(LI_API_VERIFY, "li_no_integration_found");
                char text[1024];
                li_row_message(row, "no result for this integration", text, sizeof text);
                cJSON *e = cJSON_AddObjectToObject(o, "error");
                cJSON_AddStringToObject(e, "code", row->code);
                cJSON_AddStringToObject(e, "message", text);
            }
        }
        cJSON_AddItemToArray(list, o);
    }
    cJSON_Delete(j);
    cJSON_Delete(held);
    *reply = out;
    return AH_OK;
}

/* --- onboarding.disable ------------------------------------------------------------------- */

/* LinkedIn has no way back from ENABLED ("Once an Integration is Enabled
 * for a customer, it cannot be disabled") and no API to withdraw a
 * request: the operator is told which of the two applies, from a live
 * verify. */
ah_result li_op_disable(ah_call *call, const cJSON *body, cJSON **reply)
{
    const ah_host_api *h = call->host;
    cJSON *v = NULL;
    if (li_op_verify(call, body, &v) != AH_OK)
        return AH_ERR;
    const cJSON *it;
    char enabled[512] = "";
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(v, "integrations")) {
        const char *st = h->json_string(it, "onboardingStatus", 32);
        if (st != NULL && strcmp(st, "ENABLED") == 0) {
            size_t used = strlen(enabled);
            snprintf(enabled + used, sizeof enabled - used, "%s%s for %s", used ? ", " : "",
                     h->json_string(it, "integrationType", 64),
                     h->json_string(it, "integrationContext", 256));
        }
    }
    cJSON_Delete(v);
    if (enabled[0] != '\0')
        return h->fail(call, "li_cannot_disable", 409,
                       "LinkedIn: once an integration is enabled for a customer, it cannot be "
                       "disabled (%s). atshub refuses; the customer manages an enabled "
                       "integration in LinkedIn",
                       enabled);
    return h->fail(call, AH_E_UNSUPPORTED, 501,
                   "LinkedIn offers no API to disable or withdraw an integration request; the "
                   "requests named are not enabled and stay unused until onboarding.enable");
}

/* --- onboarding.provision ------------------------------------------------------------------ */

/* A validJsSdkDomains entry as the widget compares it with the page's
 * Origin: scheme and host (and port), nothing after. */
static const char *domain_problem(const char *d)
{
    const char *host = strncmp(d, "https://", 8) == 0   ? d + 8
                       : strncmp(d, "http://", 7) == 0 ? d + 7
                                                        : NULL;
    if (host == NULL)
        return "must be a complete URL starting with http:// or https://";
    if (*host == '\0' || *host == '/')
        return "has no host";
    if (d[strlen(d) - 1] == '/')
        return "must not end with a trailing slash (/)";
    if (strchr(host, '/') != NULL || strchr(host, '?') != NULL || strchr(host, '#') != NULL)
        return "must be an origin (scheme, host and port), without a path";
    return NULL;
}

/* body "validJsSdkDomains", else the js_sdk_domains setting, else the
 * origin of public_url. */
static cJSON *wanted_domains(ah_call *call, const cJSON *body)
{
    const ah_host_api *h = call->host;
    const cJSON *bd = cJSON_GetObjectItemCaseSensitive(body, "validJsSdkDomains");
    if (bd != NULL)
        return cJSON_Duplicate(bd, 1);
    cJSON *out = cJSON_CreateArray();
    const char *list = h->setting(call, "js_sdk_domains");
    for (const char *p = list; out != NULL && p != NULL && *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if (e > p) {
            char *d = strndup(p, (size_t)(e - p));
            if (d != NULL)
                cJSON_AddItemToArray(out, cJSON_CreateString(d));
            free(d);
        }
        p = e;
    }
    const char *pub = h->setting(call, "public_url");
    if (out != NULL && cJSON_GetArraySize(out) == 0 && present(pub)) {
        const char *host = strstr(pub, "://");
        size_t len = host != NULL ? (size_t)(host + 3 - pub) + strcspn(host + 3, "/?#") : 0;
        if (len > 0) {
            char *d = strndup(pub, len);
            if (d != NULL)
                cJSON_AddItemToArray(out, cJSON_CreateString(d));
            free(d);
        }
    }
    return out;
}

static char *page_url(ah_call *call)
{
    const char *pub = call->host->setting(call, "public_url");
    const char *tok = call->host->setting(call, "webhook_token");
    char *u = NULL;
    if (!present(pub) || !present(tok))
        return NULL;
    size_t l = strlen(pub);
    if (asprintf(&u, "%.*s" LI_PAGE_PATH "%s", (int)(l > 0 && pub[l - 1] == '/' ? l - 1 : l), pub,
                 tok) < 0)
        return NULL;
    return u;
}

/* The app as LinkedIn describes it: credentials.client_id/client_secret and
 * key.idUrn (other spellings accepted). */
static void app_fields(const ah_host_api *h, const cJSON *app, const char **id, const char **secret,
                       const char **urn)
{
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(app, "credentials");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(app, "key");
    *id = h->json_string(cr, "client_id", 256);
    if (*id == NULL)
        *id = h->json_string(app, "clientId", 256);
    *secret = h->json_string(cr, "client_secret", 512);
    if (*secret == NULL)
        *secret = h->json_string(app, "clientSecret", 512);
    *urn = h->json_string(key, "idUrn", 256);
    if (*urn == NULL)
        *urn = h->json_string(app, "applicationUrn", 256);
}

/* The element of a finder's answer whose uniqueForeignId is `fid`, or
 * NULL. Only that one: taking the first element, whatever it was, would
 * store another application's credentials as this tenant's. */
static const cJSON *element_of(const cJSON *answer, const char *fid)
{
    const cJSON *el;
    cJSON_ArrayForEach(el, cJSON_GetObjectItemCaseSensitive(answer, "elements"))
    {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(el, "uniqueForeignId");
        if (cJSON_IsString(u) && strcmp(u->valuestring, fid) == 0)
            return el;
    }
    return NULL;
}

/* The customer application with uniqueForeignId `fid`: 1 with *app
 * (transferred), 0 when LinkedIn has none, -1 when it cannot be asked (not
 * described). */
static int lookup_app(ah_call *call, const ah_oauth2_params *pp, const char *fid, cJSON **app)
{
    const ah_host_api *h = call->host;
    *app = NULL;
    ah_buf url = {0};
    ah_buf_puts(&url, APPS_PATH "?q=credentialsByUniqueForeignId");
    ah_buf_query(&url, call->host, "uniqueForeignId", fid);
    if (url.oom) {
        ah_buf_free(&url);
        return -1;
    }
    ah_http_response resp;
    ah_result r = li_send(call, pp, "GET", url.s, NULL, NULL, &resp);
    ah_buf_free(&url);
    if (r != AH_OK)
        return -1;
    cJSON *j = resp.status == 200 ? h->json_parse(resp.body, resp.body_len) : NULL;
    long st = resp.status;
    h->http_response_free(&resp);
    const cJSON *el = cJSON_GetObjectItemCaseSensitive(j, "elements");
    if (!cJSON_IsArray(el)) {
        cJSON_Delete(j);
        return st == 404 ? 0 : -1;
    }
    const cJSON *mine = element_of(j, fid);
    *app = mine != NULL ? cJSON_Duplicate(mine, 1) : NULL;
    cJSON_Delete(j);
    return mine == NULL ? 0 : *app != NULL ? 1 : -1;
}

static ah_result find_existing(ah_call *call, const ah_oauth2_params *pp, const char *fid,
                               cJSON **app)
{
    const ah_host_api *h = call->host;
    ah_buf url = {0};
    ah_buf_puts(&url, APPS_PATH "?q=credentialsByUniqueForeignId");
    ah_buf_query(&url, call->host, "uniqueForeignId", fid);
    if (ah_buf_check(call, &url) != AH_OK) {
        ah_buf_free(&url);
        return AH_ERR;
    }
    ah_http_response resp;
    ah_result r = li_send(call, pp, "GET", url.s, NULL, NULL, &resp);
    ah_buf_free(&url);
    if (r != AH_OK)
        return AH_ERR;
    cJSON *j = resp.status == 200 ? h->json_parse(resp.body, resp.body_len) : NULL;
    const cJSON *mine = element_of(j, fid);
    if (mine == NULL) {
        r = h->fail(call, AH_E_UPSTREAM, 502,
                    "LinkedIn says a customer application with uniqueForeignId '%s' exists but "
                    "did not return it (HTTP %ld)",
                    fid, resp.status);
        cJSON_Delete(j);
        h->http_response_free(&resp);
        return r;
    }
    *app = cJSON_Duplicate(mine, 1);
    cJSON_Delete(j);
    h->http_response_free(&resp);
    return *app != NULL ? AH_OK : h->fail(call, AH_E_INTERNAL, 0, "out of memory");
}

static ah_result update_domains(ah_call *call, const ah_oauth2_params *pp, const char *urn,
                                const char *fid, const cJSON *domains, bool settle)
{
    const ah_host_api *h = call->host;
    ah_buf url = {0};
    ah_buf_puts(&url, APPS_PATH "/");
    ah_buf_url(&url, call->host, urn);
    if (ah_buf_check(call, &url) != AH_OK) {
        ah_buf_free(&url);
        return AH_ERR;
    }
    cJSON *b = cJSON_CreateObject();
    cJSON *set = cJSON_AddObjectToObject(cJSON_AddObjectToObject(b, "patch"), "$set");
    cJSON_AddItemToObject(set, "validJsSdkDomains", cJSON_Duplicate(domains, 1));
    char *text = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    const char *headers[] = {"x-restli-method: partial_update", "Content-Type: application/json",
                             NULL};
    ah_http_response resp;
    memset(&resp, 0, sizeof resp);
    ah_result r;
    if (text != NULL && settle) {
        /* Settling a call whose outcome stayed unknown: read back only. */
        r = AH_ERR;
        resp.outcome = AH_OUTCOME_UNKNOWN;
    } else {
        r = text != NULL ? li_send(call, pp, "POST", url.s, headers, text, &resp)
                         : h->fail(call, AH_E_INTERNAL, 0, "out of memory");
    }
    ah_buf_free(&url);
    free(text);
    if (text != NULL && unsettled(r, &resp, false)) {
        /* A set of the whole list: reading the application back is enough. */
        int oc = resp.outcome;
        if (r == AH_OK)
            h->http_response_free(&resp);
        cJSON *app = NULL;
        int found = fid != NULL ? lookup_app(call, pp, fid, &app) : -1;
        const cJSON *now = cJSON_GetObjectItemCaseSensitive(app, "validJsSdkDomains");
        bool same = found == 1 && cJSON_Compare(now, domains, true);
        cJSON_Delete(app);
        if (same)
            return AH_OK;
        return fail_unsettled(call, found == 1, oc, "updating validJsSdkDomains");
    }
    if (r != AH_OK)
        return AH_ERR;
    if (resp.status < 200 || resp.status >= 300) {
        char detail[LI_DETAIL_MAX + 3];
        answer_detail(h, &resp, detail, sizeof detail);
        r = h->fail(call, AH_E_UPSTREAM, 502,
                    "LinkedIn refused to update validJsSdkDomains (HTTP %ld)%s", resp.status,
                    detail);
    }
    h->http_response_free(&resp);
    return r;
}

static ah_result check_name(ah_call *call, const char *name)
{
    if (strlen(name) > 50 || strcasestr(name, "linkedin") != NULL)
        return call->host->fail(call, "li_invalid_app_name", 400,
                                "the customer application name '%s' must be at most 50 "
                                "characters and must not use \"LinkedIn\" (it is shown on "
                                "LinkedIn's consent screen): shorten customer_name or ats_name, "
                                "or pass \"name\"",
                                name);
    return AH_OK;
}

static ah_result save_app(ah_call *call, const cJSON *app, const char *fid, const char *id,
                          const char *secret, const char *urn)
{
    const ah_host_api *h = call->host;
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddStringToObject(ch, "client_id", id);
    cJSON_AddStringToObject(ch, "client_secret", secret);
    cJSON_AddStringToObject(ch, "app_urn", urn);
    ah_result r = h->settings_update(call, ch);
    cJSON_Delete(ch);
    if (r != AH_OK)
        return AH_ERR;
    /* The record keeps what an operator may look at; never the secret. */
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "uniqueForeignId", fid);
    cJSON_AddStringToObject(f, "applicationUrn", urn);
    cJSON_AddStringToObject(f, "client_id", id);
    const char *nm = h->json_string(app, "name", 256);
    cJSON_AddStringToObject(f, "name", nm != NULL ? nm : "");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(app, "validJsSdkDomains");
    cJSON_AddItemToObject(f, "validJsSdkDomains",
                          d != NULL ? cJSON_Duplicate(d, 1) : cJSON_CreateArray());
    ah_record rec = {.struct_size = sizeof rec, .type = LI_REC_APP, .remote_id = fid, .raw = f,
                     .fields = f};
    if (h->record_put(call, &rec, NULL, 0, NULL) != AH_OK)
        h->log(call, AH_LOG_WARN, "customer application stored in settings, not in the records");
    cJSON_Delete(f);
    return AH_OK;
}

static ah_result provision(ah_call *call, const cJSON *body, bool settle, cJSON **reply)
{
    const ah_host_api *h = call->host;
    char name[256];
    const char *bname = h->json_string(body, "name", 200);
    const char *customer = h->setting(call, "customer_name");
    if (present(bname)) {
        snprintf(name, sizeof name, "%s", bname);
    } else if (present(customer)) {
        const char *ats = h->setting(call, "ats_name");
        snprintf(name, sizeof name, "%s - %s", present(ats) ? ats : "atshub", customer);
    } else {
        return h->fail(call, "configuration_error", 400,
                       "set customer_name to the customer's proper name (LinkedIn shows it on "
                       "the consent screen), or pass \"name\"");
    }
    if (check_name(call, name) != AH_OK)
        return AH_ERR;
    const char *fid = h->json_string(body, "uniqueForeignId", 200);
    if (!present(fid))
        fid = h->setting(call, "unique_foreign_id");
    if (!present(fid))
        fid = call->tenant;
    const char *desc = h->json_string(body, "description", 500);

    cJSON *domains = wanted_domains(call, body);
    const li_error_row *drow = li_error_by_code(LI_API_PLUGIN, "li_domain_not_allowed");
    char why[400] = "";
    if (!cJSON_IsArray(domains) || cJSON_GetArraySize(domains) == 0) {
        snprintf(why, sizeof why,
                 "no validJsSdkDomains: pass them, or set js_sdk_domains or public_url");
    } else {
        const cJSON *d;
        cJSON_ArrayForEach(d, domains) {
            const char *p = cJSON_IsString(d) ? domain_problem(d->valuestring) : "is not a string";
            if (p != NULL && why[0] == '\0')
                snprintf(why, sizeof why, "validJsSdkDomains entry '%.200s' %s",
                         cJSON_IsString(d) ? d->valuestring : "?", p);
        }
    }
    if (why[0] != '\0') {
        cJSON_Delete(domains);
        return li_fail_row(call, drow, why);
    }

    ah_oauth2_params pp;
    partner_params(call, &pp);
    const char *have_id = h->setting(call, "client_id");
    const char *have_urn = h->setting(call, "app_urn");
    cJSON *out = NULL;
    if (present(have_id) && present(h->setting(call, "client_secret")) && present(have_urn)) {
        /* One customer application per tenant: re-provisioning only brings
         * its allowed domains up to date. */
        if (update_domains(call, &pp, have_urn, fid, domains, settle) != AH_OK) {
            cJSON_Delete(domains);
            return AH_ERR;
        }
        out = cJSON_CreateObject();
        cJSON_AddBoolToObject(out, "created", false);
        cJSON_AddStringToObject(out, "applicationUrn", have_urn);
        cJSON_AddStringToObject(out, "client_id", have_id);
    } else {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "uniqueForeignId", fid);
        cJSON_AddStringToObject(b, "name", name);
        char dflt[300];
        snprintf(dflt, sizeof dflt, "atshub customer application of tenant %s", call->tenant);
        cJSON_AddStringToObject(b, "description", present(desc) ? desc : dflt);
        cJSON_AddItemToObject(b, "validJsSdkDomains", cJSON_Duplicate(domains, 1));
        char *text = cJSON_PrintUnformatted(b);
        cJSON_Delete(b);
        const char *headers[] = {"Content-Type: application/json", NULL};
        ah_http_response resp;
        memset(&resp, 0, sizeof resp);
        ah_result r;
        if (text != NULL && settle) {
            /* Settling a call whose outcome stayed unknown: looked up only. */
            r = AH_ERR;
            resp.outcome = AH_OUTCOME_UNKNOWN;
        } else {
            r = text != NULL ? li_send(call, &pp, "POST", APPS_PATH, headers, text, &resp)
                             : h->fail(call, AH_E_INTERNAL, 0, "out of memory");
        }
        free(text);
        cJSON *app = NULL;
        if (text != NULL && unsettled(r, &resp, true)) {
            /* Never created twice: the application is looked up by the
             * uniqueForeignId it was sent with. */
            int oc = resp.outcome;
            if (r == AH_OK)
                h->http_response_free(&resp);
            h->log(call, AH_LOG_WARN,
                   "provisioning: LinkedIn's answer did not say what happened; looking the "
                   "application up by uniqueForeignId %s",
                   fid);
            int found = lookup_app(call, &pp, fid, &app);
            if (found != 1) {
                cJSON_Delete(domains);
                return fail_unsettled(call, found == 0, oc, "provisioning the customer application");
            }
            /* Settled: as if LinkedIn had answered 201 with it. */
            r = AH_OK;
            resp = (ah_http_response){.struct_size = sizeof resp, .status = 201};
        } else if (r != AH_OK) {
            cJSON_Delete(domains);
            return AH_ERR;
        }
        /* Any 2xx: LinkedIn made the application (a 202 with it too). */
        bool created = resp.status >= 200 && resp.status < 300;
        if (created && app == NULL) {
            app = h->json_parse(resp.body, resp.body_len);
        } else if (resp.status == 409) {
            /* Created earlier (another connection of the tenant, or settings
             * lost): take it over rather than make a second one. */
            r = find_existing(call, &pp, fid, &app);
        }
        if (!created && resp.status != 409) {
            char detail[LI_DETAIL_MAX + 3];
            answer_detail(h, &resp, detail, sizeof detail);
            r = h->fail(call, resp.status == 401 || resp.status == 403 ? "li_partner_auth_failed"
                                                                        : AH_E_UPSTREAM,
                        502, "LinkedIn refused to provision the customer application (HTTP %ld)"
                        "%s%s",
                        resp.status, detail,
                        resp.status == 401 || resp.status == 403
                            ? ". Check partner_client_id/partner_client_secret: the partner "
                              "application needs Provisioning API access"
                            : "");
        }
        h->http_response_free(&resp);
        const char *id, *secret, *urn;
        app_fields(h, app, &id, &secret, &urn);
        if (r == AH_OK && (!present(id) || !present(secret) || !present(urn)))
            r = h->fail(call, AH_E_UPSTREAM, 502,
                        "LinkedIn's answer lacks the application's credentials or key");
        if (r == AH_OK && !created)
            r = update_domains(call, &pp, urn, fid, domains, settle);
        if (r == AH_OK)
            r = save_app(call, app, fid, id, secret, urn);
        if (r == AH_OK) {
            out = cJSON_CreateObject();
            cJSON_AddBoolToObject(out, "created", created);
            cJSON_AddStringToObject(out, "applicationUrn", urn);
            cJSON_AddStringToObject(out, "client_id", id);
        }
        cJSON_Delete(app);
        if (r != AH_OK) {
            cJSON_Delete(domains);
            return AH_ERR;
        }
    }
    cJSON_AddStringToObject(out, "name", name);
    cJSON_AddStringToObject(out, "uniqueForeignId", fid);
    cJSON_AddItemToObject(out, "validJsSdkDomains", domains);
    char *page = page_url(call);
    if (page != NULL)
        cJSON_AddStringToObject(out, "configuration_page", page);
    else
        cJSON_AddNullToObject(out, "configuration_page");
    free(page);
    *reply = out;
    return AH_OK;
}

ah_result li_op_provision(ah_call *call, const cJSON *body, cJSON **reply)
{
    return provision(call, body, false, reply);
}

ah_result li_settle_provision(ah_call *call, const cJSON *body, cJSON **reply)
{
    return provision(call, body, true, reply);
}
