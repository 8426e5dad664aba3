/* SPDX-License-Identifier: Apache-2.0 */
/* Jobs (ERecruit positions): one job, one enhanced job (custom fields and
 * hiring team), and batches of enhanced jobs. */
#include <stdio.h>
#include <string.h>

#include "er.h"

#define ER_EXPAND "expand=custom_fields,hiring_team"
#define ER_CURSOR_MAX 2048

static ah_result get_position(ah_call *call, const cJSON *body, bool enhanced, cJSON **reply)
{
    char id[ER_ID_MAX];
    if (er_require_id(call, body, "job_id", id) != AH_OK)
        return AH_ERR;
    er_buf path = {0};
    er_path_id(&path, call, "positions", id, enhanced ? "?" ER_EXPAND : NULL);
    if (er_buf_check(call, &path) != AH_OK) {
        er_buf_free(&path);
        return AH_ERR;
    }
    cJSON *resp = NULL;
    ah_result rc = er_do(call, "GET", path.s, NULL, &resp);
    er_buf_free(&path);
    if (rc != AH_OK)
        return AH_ERR;
    cJSON *job = er_map_job(resp, enhanced);
    char got[ER_ID_MAX];
    bool has_id = er_map_id(resp, "id", got);
    cJSON_Delete(resp);
    if (job == NULL)
        return has_id ? er_oom(call)
                      : call->host->fail(call, AH_E_UPSTREAM, 502,
                                         "ERecruit sent a position without an id");
    *reply = job;
    return AH_OK;
}

ah_result er_job_get(ah_call *call, const cJSON *body, cJSON **reply)
{
    return get_position(call, body, false, reply);
}

ah_result er_job_get_enhanced(ah_call *call, const cJSON *body, cJSON **reply)
{
    return get_position(call, body, true, reply);
}

ah_result er_job_enhanced_batch(ah_call *call, const cJSON *body, cJSON **reply)
{
    const er_conn *c = call->conn_ctx;
    long limit = c->per_page;
    const char *cursor = NULL;
    if (er_optional_int(call, body, "limit", 1, 500, &limit) != AH_OK ||
        er_optional_string(call, body, "cursor", ER_CURSOR_MAX, &cursor) != AH_OK)
        return AH_ERR;
    er_buf path = {0};
    er_buf_printf(&path, "%s/positions?" ER_EXPAND "&per_page=%ld", ER_API, limit);
    er_buf_query(&path, call, "cursor", cursor != NULL && *cursor ? cursor : NULL);
    if (er_buf_check(call, &path) != AH_OK) {
        er_buf_free(&path);
        return AH_ERR;
    }
    cJSON *page = NULL;
    ah_result rc = er_do(call, "GET", path.s, NULL, &page);
    er_buf_free(&path);
    if (rc != AH_OK)
        return AH_ERR;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(page, "data");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(page, "next_cursor");
    if (!cJSON_IsArray(data) || (next != NULL && !cJSON_IsNull(next) && !cJSON_IsString(next))) {
        cJSON_Delete(page);
        return call->host->fail(call, AH_E_UPSTREAM, 502,
                                "ERecruit sent a positions page without a data array");
    }
    cJSON *out = cJSON_CreateObject();
    cJSON *jobs = out != NULL ? cJSON_AddArrayToObject(out, "jobs") : NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, data)
    {
        char id[ER_ID_MAX];
        if (jobs == NULL)
            break;
        if (!er_map_id(it, "id", id))
            continue;
        cJSON *j = er_map_job(it, true);
        if (j == NULL || !cJSON_AddItemToArray(jobs, j)) {
            cJSON_Delete(j);
            jobs = NULL;
        }
    }
    bool ok = jobs != NULL &&
              cJSON_AddItemToObject(out, "next_cursor",
                                    cJSON_IsString(next) && next->valuestring[0] != '\0'
                                        ? cJSON_CreateString(next->valuestring)
                                        : cJSON_CreateNull());
    cJSON_Delete(page);
    if (!ok) {
        cJSON_Delete(out);
        return er_oom(call);
    }
    *reply = out;
    return AH_OK;
}
