/* SPDX-License-Identifier: Apache-2.0 */
/* Candidates (ERecruit contacts): one candidate, search, resume. */
#include <stdio.h>
#include <string.h>

#include "er.h"

#define ER_FIELD_MAX 256

ah_result er_cand_get(ah_call *call, const cJSON *body, cJSON **reply)
{
    cJSON *resp = NULL;
    if (er_get_by_id(call, body, "candidate_id", "contacts", NULL, &resp) != AH_OK)
        return AH_ERR;
    er_map_opts o = er_opts(call);
    ah_result rc = er_reply_mapped(call, resp, er_map_candidate(resp, &o), "contact", reply);
    cJSON_Delete(resp);
    return rc;
}

ah_result er_cand_find(ah_call *call, const cJSON *body, cJSON **reply)
{
    static const char *const keys[] = {"first_name", "last_name", "email", "phone"};
    ah_buf path = {0};
    ah_buf_printf(&path, "%s/contacts/search", ER_API);
    bool any = false;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = NULL;
        if (ah_arg_string(call, body, keys[i], AH_ARG_OPTIONAL, ER_FIELD_MAX, &v) != AH_OK) {
            ah_buf_free(&path);
            return AH_ERR;
        }
        if (v == NULL || *v == '\0')
            continue;
        ah_buf_query(&path, call->host, keys[i], v);
        any = true;
    }
    if (!any) {
        ah_buf_free(&path);
        return call->host->fail(call, AH_E_INVALID, 400,
                                "one of first_name, last_name, email, phone is required");
    }
    cJSON *resp;
    const cJSON *data;
    if (er_get_data(call, &path, "a contact search", &resp, &data) != AH_OK)
        return AH_ERR;
    er_map_opts o = er_opts(call);
    cJSON *out = cJSON_CreateObject();
    bool ok = out != NULL && er_map_items(cJSON_AddArrayToObject(out, "candidates"), data,
                                          er_map_candidate, &o);
    cJSON_Delete(resp);
    if (!ok) {
        cJSON_Delete(out);
        return er_oom(call);
    }
    *reply = out;
    return AH_OK;
}

ah_result er_cand_resume(ah_call *call, const cJSON *body, cJSON **reply)
{
    cJSON *resp = NULL;
    if (er_get_by_id(call, body, "candidate_id", "contacts", "/resume", &resp) != AH_OK)
        return AH_ERR;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(resp, "data_base64");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(resp, "filename");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(resp, "content_type");
    if (!cJSON_IsString(data) || data->valuestring[0] == '\0') {
        cJSON_Delete(resp);
        return call->host->fail(call, AH_E_UPSTREAM, 502,
                                "ERecruit sent a resume without data_base64");
    }
    cJSON *out = cJSON_CreateObject();
    bool ok = out != NULL &&
              cJSON_AddItemToObject(out, "filename",
                                    cJSON_IsString(name) ? cJSON_CreateString(name->valuestring)
                                                         : cJSON_CreateString("resume.pdf")) &&
              cJSON_AddItemToObject(out, "content_type",
                                    cJSON_IsString(type) ? cJSON_CreateString(type->valuestring)
                                                         : cJSON_CreateString("application/pdf")) &&
              cJSON_AddStringToObject(out, "data_base64", data->valuestring) != NULL;
    cJSON_Delete(resp);
    if (!ok) {
        cJSON_Delete(out);
        return er_oom(call);
    }
    *reply = out;
    return AH_OK;
}
