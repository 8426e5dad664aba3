/* SPDX-License-Identifier: Apache-2.0 */
/* Candidates (ERecruit contacts): one candidate, search, resume. */
#include <stdio.h>
#include <string.h>

#include "er.h"

#define ER_FIELD_MAX 256

ah_result er_cand_get(ah_call *call, const cJSON *body, cJSON **reply)
{
    char id[ER_ID_MAX];
    if (er_require_id(call, body, "candidate_id", id) != AH_OK)
        return AH_ERR;
    er_buf path = {0};
    er_path_id(&path, call, "contacts", id, NULL);
    if (er_buf_check(call, &path) != AH_OK) {
        er_buf_free(&path);
        return AH_ERR;
    }
    cJSON *resp = NULL;
    ah_result rc = er_do(call, "GET", path.s, NULL, &resp);
    er_buf_free(&path);
    if (rc != AH_OK)
        return AH_ERR;
    char got[ER_ID_MAX];
    bool has_id = er_map_id(resp, "id", got);
    er_map_opts o = er_opts(call);
    cJSON *cand = er_map_candidate(resp, &o);
    cJSON_Delete(resp);
    if (cand == NULL)
        return has_id ? er_oom(call)
                      : call->host->fail(call, AH_E_UPSTREAM, 502,
                                         "ERecruit sent a contact without an id");
    *reply = cand;
    return AH_OK;
}

ah_result er_cand_find(ah_call *call, const cJSON *body, cJSON **reply)
{
    static const char *const keys[] = {"first_name", "last_name", "email", "phone"};
    er_buf path = {0};
    er_buf_printf(&path, "%s/contacts/search", ER_API);
    bool any = false;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = NULL;
        if (er_optional_string(call, body, keys[i], ER_FIELD_MAX, &v) != AH_OK) {
            er_buf_free(&path);
            return AH_ERR;
        }
        if (v == NULL || *v == '\0')
            continue;
        er_buf_query(&path, call, keys[i], v);
        any = true;
    }
    if (!any) {
        er_buf_free(&path);
        return call->host->fail(call, AH_E_INVALID, 400,
                                "one of first_name, last_name, email, phone is required");
    }
    if (er_buf_check(call, &path) != AH_OK) {
        er_buf_free(&path);
        return AH_ERR;
    }
    cJSON *resp = NULL;
    ah_result rc = er_do(call, "GET", path.s, NULL, &resp);
    er_buf_free(&path);
    if (rc != AH_OK)
        return AH_ERR;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(resp, "data");
    if (!cJSON_IsArray(data)) {
        cJSON_Delete(resp);
        return call->host->fail(call, AH_E_UPSTREAM, 502,
                                "ERecruit sent a contact search without a data array");
    }
    er_map_opts o = er_opts(call);
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = out != NULL ? cJSON_AddArrayToObject(out, "candidates") : NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, data)
    {
        char id[ER_ID_MAX];
        if (arr == NULL)
            break;
        if (!er_map_id(it, "id", id))
            continue;
        cJSON *c = er_map_candidate(it, &o);
        if (c == NULL || !cJSON_AddItemToArray(arr, c)) {
            cJSON_Delete(c);
            arr = NULL;
        }
    }
    cJSON_Delete(resp);
    if (arr == NULL) {
        cJSON_Delete(out);
        return er_oom(call);
    }
    *reply = out;
    return AH_OK;
}

ah_result er_cand_resume(ah_call *call, const cJSON *body, cJSON **reply)
{
    char id[ER_ID_MAX];
    if (er_require_id(call, body, "candidate_id", id) != AH_OK)
        return AH_ERR;
    er_buf path = {0};
    er_path_id(&path, call, "contacts", id, "/resume");
    if (er_buf_check(call, &path) != AH_OK) {
        er_buf_free(&path);
        return AH_ERR;
    }
    cJSON *resp = NULL;
    ah_result rc = er_do(call, "GET", path.s, NULL, &resp);
    er_buf_free(&path);
    if (rc != AH_OK)
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
