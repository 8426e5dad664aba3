/* SPDX-License-Identifier: Apache-2.0 */
/* Custom fields of submissions, contacts and positions: definitions,
 * values, and updates ("entity": application | candidate | job). */
#include <stdio.h>
#include <string.h>

#include "er.h"

#define ER_CF_KEY_MAX 128
#define ER_CF_MAX 200

/* body.entity as ERecruit's collection; fails invalid_request otherwise. */
static ah_result entity_of(ah_call *call, const cJSON *body, const char **entity,
                           const char **collection)
{
    *entity = call->host->json_string(body, "entity", 32);
    *collection = er_entity_collection(*entity);
    if (*collection == NULL)
        return ah_arg_fail(call, "entity", "application, candidate or job");
    return AH_OK;
}

ah_result er_custom_list(ah_call *call, const cJSON *body, cJSON **reply)
{
    const char *entity, *collection;
    if (entity_of(call, body, &entity, &collection) != AH_OK)
        return AH_ERR;
    ah_buf path = {0};
    ah_buf_printf(&path, "%s/custom-fields", ER_API);
    ah_buf_query(&path, call->host, "entity", er_entity_remote(entity));
    cJSON *resp;
    const cJSON *data;
    if (er_get_data(call, &path, "custom field definitions", &resp, &data) != AH_OK)
        return AH_ERR;
    cJSON *out = cJSON_CreateObject();
    cJSON *fields = NULL;
    if (out != NULL && cJSON_AddStringToObject(out, "entity", entity) != NULL)
        fields = cJSON_AddArrayToObject(out, "fields");
    const cJSON *it;
    cJSON_ArrayForEach(it, data)
    {
        if (fields == NULL)
            break;
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "key")))
            continue;
        cJSON *f = er_map_field_def(it);
        if (f == NULL || !cJSON_AddItemToArray(fields, f)) {
            cJSON_Delete(f);
            fields = NULL;
        }
    }
    cJSON_Delete(resp);
    if (fields == NULL) {
        cJSON_Delete(out);
        return er_oom(call);
    }
    *reply = out;
    return AH_OK;
}

/* {"entity","id","values"} from ERecruit's {"data":{...}}, or from `sent`
 * when its answer carries no values. */
static ah_result values_reply(ah_call *call, const char *entity, const char *id,
                              const cJSON *resp, const cJSON *sent, cJSON **reply)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(resp, "data");
    if (!cJSON_IsObject(data))
        data = sent;
    if (!cJSON_IsObject(data))
        return call->host->fail(call, AH_E_UPSTREAM, 502,
                                "ERecruit sent custom field values without a data object");
    cJSON *out = cJSON_CreateObject();
    if (out == NULL || cJSON_AddStringToObject(out, "entity", entity) == NULL ||
        cJSON_AddStringToObject(out, "id", id) == NULL ||
        !cJSON_AddItemToObject(out, "values", cJSON_Duplicate(data, 1))) {
        cJSON_Delete(out);
        return er_oom(call);
    }
    *reply = out;
    return AH_OK;
}

ah_result er_custom_values(ah_call *call, const cJSON *body, cJSON **reply)
{
    const char *entity, *collection;
    char id[ER_ID_MAX];
    if (entity_of(call, body, &entity, &collection) != AH_OK ||
        er_require_id(call, body, "id", id) != AH_OK)
        return AH_ERR;
    ah_buf path = {0};
    er_path_id(call, &path, collection, id, "/custom-fields");
    cJSON *resp = NULL;
    ah_result rc = er_send(call, "GET", &path, NULL, &resp);
    if (rc == AH_OK)
        rc = values_reply(call, entity, id, resp, NULL, reply);
    cJSON_Delete(resp);
    return rc;
}

/* Values are scalars, or arrays of scalars (multi-selects). */
static bool scalar(const cJSON *v)
{
    return cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v) || cJSON_IsNull(v);
}

static ah_result check_values(ah_call *call, const cJSON *values)
{
    const ah_host_api *h = call->host;
    if (!cJSON_IsObject(values) || values->child == NULL)
        return ah_arg_fail(call, "values", "a non-empty object");
    int n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, values)
    {
        if (++n > ER_CF_MAX)
            return h->fail(call, AH_E_INVALID, 400, "values may set at most %d fields",
                           ER_CF_MAX);
        if (v->string == NULL || v->string[0] == '\0' ||
            strlen(v->string) > ER_CF_KEY_MAX)
            return h->fail(call, AH_E_INVALID, 400,
                           "custom field keys are 1..%d bytes", ER_CF_KEY_MAX);
        bool ok = scalar(v);
        if (cJSON_IsArray(v)) {
            const cJSON *e;
            ok = true;
            cJSON_ArrayForEach(e, v) ok = ok && scalar(e) && !cJSON_IsNull(e);
        }
        if (!ok) {
            char key[ER_CF_KEY_MAX + 8];
            snprintf(key, sizeof key, "values.%s", v->string);
            return ah_arg_fail(call, key, "a string, number, boolean, null or a list");
        }
    }
    return AH_OK;
}

static ah_result update_values(ah_call *call, const cJSON *body, bool settle, cJSON **reply)
{
    const char *entity, *collection;
    char id[ER_ID_MAX];
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(body, "values");
    if (entity_of(call, body, &entity, &collection) != AH_OK ||
        er_require_id(call, body, "id", id) != AH_OK || check_values(call, values) != AH_OK)
        return AH_ERR;
    cJSON *b = cJSON_CreateObject();
    if (b == NULL || !cJSON_AddItemToObject(b, "values", cJSON_Duplicate(values, 1))) {
        cJSON_Delete(b);
        return er_oom(call);
    }
    ah_buf path = {0};
    er_path_id(call, &path, collection, id, "/custom-fields");
    if (ah_buf_check(call, &path) != AH_OK) {
        ah_buf_free(&path);
        cJSON_Delete(b);
        return AH_ERR;
    }
    cJSON *resp = NULL;
    er_error err;
    ah_result rc = AH_ERR;
    if (settle) /* the host settles a call whose outcome stayed unknown: never sent again */
        err = er_unknown_outcome();
    else
        rc = er_call(call, "PATCH", path.s, b, &resp, &err);
    cJSON_Delete(b);
    if (rc != AH_OK && er_maybe_done(&err)) {
        /* Never sent twice: the values are read back. All of them as sent:
         * done. Otherwise after an unknown outcome: not done (the PATCH is
         * all or nothing). */
        cJSON_Delete(resp);
        resp = NULL;
        er_settled s = er_read_back(call, path.s, &resp);
        const cJSON *now = cJSON_GetObjectItemCaseSensitive(resp, "data");
        if (s == ER_SETTLED_DONE) {
            const cJSON *v;
            bool all = cJSON_IsObject(now);
            cJSON_ArrayForEach(v, values)
            {
                const cJSON *have = all ? cJSON_GetObjectItemCaseSensitive(now, v->string) : NULL;
                all = all && (have != NULL ? cJSON_Compare(have, v, true) : cJSON_IsNull(v));
            }
            if (!all)
                s = er_absent(&err);
        }
        if (s == ER_SETTLED_DONE) {
            rc = AH_OK;
        } else {
            char what[ER_ID_MAX + 64];
            snprintf(what, sizeof what, "updating the custom fields of %s %s", entity, id);
            rc = er_fail_unsettled(call, s, what, NULL);
        }
    } else if (rc != AH_OK) {
        rc = er_fail(call, &err);
    }
    ah_buf_free(&path);
    if (rc == AH_OK)
        rc = values_reply(call, entity, id, resp, values, reply);
    cJSON_Delete(resp);
    return rc;
}

ah_result er_custom_update(ah_call *call, const cJSON *body, cJSON **reply)
{
    return update_values(call, body, false, reply);
}

ah_result er_settle_custom(ah_call *call, const cJSON *body, cJSON **reply)
{
    return update_values(call, body, true, reply);
}
