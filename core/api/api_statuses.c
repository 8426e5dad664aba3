/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CareerBuilder-style candidate statuses on the unified REST API: thin
 * routes over the statuses.put / statuses.get / statuses.query bus topics of
 * the connection named by X-Connection (or ?connection=):
 *
 *   PUT  /v1/statuses                 body: the seed's status object
 *   GET  /v1/statuses/{email}?results_per_page=&status_date=
 *   POST /v1/statuses/query           {"emails"|"candidate_email": [...]} or
 *                                     {"requisition_ids"|"requisition_id": [...]},
 *                                     "status_date" optional
 *
 * 200 with {"data": ...}; errors in the standard envelope with the plugin's
 * code and status (400 invalid_request names the field).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "rest.h"
#include "core.h"

/* The tenant of the bearer key and the named connection; answers the
 * error itself and returns false when either is missing. */
static bool statuses_auth(ah_core *core, ah_http_exchange *ex, char *tenant, size_t len,
                          const char **conn)
{
    if (ah_rest_tenant(core, ex, tenant, len) < 0)
        return false;
    const char *h = ah_ex_header(ex, "X-Connection"), *q = ah_ex_query(ex, "connection");
    if (h != NULL && *h != '\0' && q != NULL && *q != '\0' && strcmp(h, q) != 0) {
        ah_ex_error(ex, 400, AH_E_INVALID,
                    "connection: the query parameter and the X-Connection header disagree");
        return false;
    }
    *conn = h != NULL && *h != '\0' ? h : q;
    if (*conn == NULL || **conn == '\0') {
        ah_ex_error(ex, 400, "missing_connection",
                    "name the CareerBuilder connection in the X-Connection header");
        return false;
    }
    return true;
}

/* The request body as a JSON object (copy), or NULL after answering 400. */
static cJSON *object_body(ah_http_exchange *ex)
{
    size_t len = 0;
    ah_ex_body(ex, &len);
    if (len == 0) {
        ah_ex_error(ex, 400, AH_E_INVALID, "the request body must be a JSON object");
        return NULL;
    }
    const cJSON *j = ah_ex_json(ex);
    if (j == NULL)
        return NULL; /* answered 400 invalid_json */
    if (!cJSON_IsObject(j)) {
        ah_ex_error(ex, 400, AH_E_INVALID, "the request body must be a JSON object");
        return NULL;
    }
    cJSON *copy = cJSON_Duplicate(j, 1);
    if (copy == NULL)
        ah_ex_error(ex, 500, AH_E_INTERNAL, "out of memory");
    return copy;
}

/* Sends the request and answers with its reply: {"data": reply} unless the
 * reply already carries "data"; the request waits suspended meanwhile. */
static void forward(ah_core *core, ah_http_exchange *ex, const char *tenant, const char *conn,
                    const char *topic, cJSON *body)
{
    ah_rest_forward(core, ex, tenant, conn, topic, body, AH_REST_KEEP_DATA);
}

/* PUT /v1/statuses */
static void statuses_put(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    char tenant[128];
    const char *conn;
    if (!statuses_auth(core, ex, tenant, sizeof tenant, &conn))
        return;
    cJSON *body = object_body(ex);
    if (body != NULL)
        forward(core, ex, tenant, conn, "statuses.put", body);
}

/* GET /v1/statuses/{email} */
static void statuses_get(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    char tenant[128];
    const char *conn;
    if (!statuses_auth(core, ex, tenant, sizeof tenant, &conn))
        return;
    const char *email = ah_ex_subpath(ex);
    if (email == NULL || *email == '\0' || strchr(email, '/') != NULL) {
        ah_ex_error(ex, 404, AH_E_NOT_FOUND, "use /v1/statuses/{candidate_email}");
        return;
    }
    cJSON *b = cJSON_CreateObject();
    const char *rpp = ah_ex_query(ex, "results_per_page");
    const char *date = ah_ex_query(ex, "status_date");
    if (b == NULL || cJSON_AddStringToObject(b, "candidate_email", email) == NULL ||
        (rpp != NULL && cJSON_AddStringToObject(b, "results_per_page", rpp) == NULL) ||
        (date != NULL && cJSON_AddStringToObject(b, "status_date", date) == NULL)) {
        cJSON_Delete(b);
        ah_ex_error(ex, 500, AH_E_INTERNAL, "out of memory");
        return;
    }
    forward(core, ex, tenant, conn, "statuses.get", b);
}

/* POST /v1/statuses/query */
static void statuses_query(void *arg, ah_http_exchange *ex)
{
    ah_core *core = arg;
    char tenant[128];
    const char *conn;
    if (!statuses_auth(core, ex, tenant, sizeof tenant, &conn))
        return;
    cJSON *body = object_body(ex);
    if (body != NULL)
        forward(core, ex, tenant, conn, "statuses.query", body);
}

int ah_api_statuses_register(ah_core *core)
{
    ah_httpd *h = core->httpd;
    if (h == NULL)
        return -1;
    if (ah_httpd_route(h, "PUT", "/v1/statuses", 0, statuses_put, core) != 0 ||
        ah_httpd_route(h, "POST", "/v1/statuses/query", 0, statuses_query, core) != 0 ||
        ah_httpd_route(h, "GET", "/v1/statuses/", AH_HTTPD_PREFIX, statuses_get, core) != 0)
        return -1;
    return 0;
}
