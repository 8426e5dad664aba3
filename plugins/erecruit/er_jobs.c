/* SPDX-License-Identifier: Apache-2.0 */
/* Jobs (ERecruit positions): one job, one enhanced job (custom fields and
 * hiring team), and batches of enhanced jobs. */
#include <stdio.h>
#include <string.h>

#include "er.h"

#define ER_EXPAND "expand=custom_fields,hiring_team"

static ah_result get_position(ah_call *call, const cJSON *body, bool enhanced, cJSON **reply)
{
    cJSON *resp = NULL;
    if (er_get_by_id(call, body, "job_id", "positions", enhanced ? "?" ER_EXPAND : NULL,
                     &resp) != AH_OK)
        return AH_ERR;
    ah_result rc = er_reply_mapped(call, resp, er_map_job(resp, enhanced), "position", reply);
    cJSON_Delete(resp);
    return rc;
}

ah_result er_job_get(ah_call *call, const cJSON *body, cJSON **reply)
{
    return get_position(call, body, false, reply);
}

ah_result er_job_get_enhanced(ah_call *call, const cJSON *body, cJSON **reply)
{
    return get_position(call, body, true, reply);
}

static cJSON *enhanced_job(const cJSON *item, const er_map_opts *o)
{
    (void)o;
    return er_map_job(item, true);
}

ah_result er_job_enhanced_batch(ah_call *call, const cJSON *body, cJSON **reply)
{
    const er_conn *c = call->conn_ctx;
    long long limit = c->per_page;
    const char *cursor = NULL;
    if (ah_arg_int(call, body, "limit", AH_ARG_OPTIONAL, 1, 500, &limit) != AH_OK ||
        ah_arg_string(call, body, "cursor", AH_ARG_OPTIONAL, ER_CURSOR_MAX, &cursor) != AH_OK)
        return AH_ERR;
    ah_buf path = {0};
    ah_buf_printf(&path, "%s/positions?" ER_EXPAND "&per_page=%lld", ER_API, limit);
    ah_buf_query(&path, call->host, "cursor", cursor != NULL && *cursor ? cursor : NULL);
    cJSON *page = NULL;
    if (er_send(call, "GET", &path, NULL, &page) != AH_OK)
        return AH_ERR;
    const cJSON *data, *next;
    if (!er_page_parts(page, &data, &next)) {
        cJSON_Delete(page);
        return call->host->fail(call, AH_E_UPSTREAM, 502,
                                "ERecruit sent a positions page without a data array, or "
                                "with a next_cursor that is not a string of at most " AH_STR(
                                    ER_CURSOR_MAX) " bytes (the most atshub takes back)");
    }
    if (er_page_size_ok(call, data, limit) != AH_OK) {
        cJSON_Delete(page);
        return AH_ERR;
    }
    cJSON *out = cJSON_CreateObject();
    bool ok = out != NULL &&
              er_map_items(cJSON_AddArrayToObject(out, "jobs"), data, enhanced_job, NULL) &&
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
