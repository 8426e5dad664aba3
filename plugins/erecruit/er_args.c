/* SPDX-License-Identifier: Apache-2.0 */
/* Request validation (ids, strings, integers) and path/query building. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "er.h"

/* Integers beyond 2^53 are not exact in a double: refuse rather than round. */
#define ER_EXACT_MAX 9007199254740992.0

/* Without libm: NaN fails both comparisons, infinities the range. */
static bool integral(double d)
{
    return d >= -ER_EXACT_MAX && d <= ER_EXACT_MAX && d == (double)(long long)d;
}

er_id_rc er_id_value(const cJSON *v, char out[ER_ID_MAX])
{
    out[0] = '\0';
    if (v == NULL || cJSON_IsNull(v))
        return ER_ID_ABSENT;
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!integral(d))
            return ER_ID_BAD;
        /* Not "%.0f": glibc's arbitrary-precision path, ~2,000
         * instructions an id, three or four ids a record (a sixth of a
         * first sync's plugin process). */
        ah_int_text((long long)d, out);
        return ER_ID_OK;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL)
        return ER_ID_BAD;
    size_t n = strnlen(v->valuestring, ER_ID_MAX);
    if (n == 0 || n >= ER_ID_MAX)
        return ER_ID_BAD;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v->valuestring[i] < 0x20 || v->valuestring[i] == 0x7f)
            return ER_ID_BAD;
    memcpy(out, v->valuestring, n + 1);
    return ER_ID_OK;
}

/* One wording for a missing or malformed id, as <atshub/util.h> words
 * every other member. */
static ah_result id_refused(ah_call *call, const char *key)
{
    char what[96];
    snprintf(what, sizeof what, "a non-empty string (at most %d bytes) or an integer",
             ER_ID_MAX - 1);
    return ah_arg_fail(call, key, what);
}

ah_result er_optional_id(ah_call *call, const cJSON *body, const char *key,
                         char out[ER_ID_MAX], bool *present)
{
    er_id_rc rc = er_id_value(cJSON_GetObjectItemCaseSensitive(body, key), out);
    *present = rc == ER_ID_OK;
    if (rc == ER_ID_BAD)
        return id_refused(call, key);
    return AH_OK;
}

ah_result er_require_id(ah_call *call, const cJSON *body, const char *key,
                        char out[ER_ID_MAX])
{
    bool present = false;
    if (er_optional_id(call, body, key, out, &present) != AH_OK)
        return AH_ERR;
    if (!present)
        return id_refused(call, key);
    return AH_OK;
}

cJSON *er_id_json(const char *id)
{
    size_t n = strlen(id);
    bool digits = n > 0 && n <= 15 && (id[0] != '0' || n == 1);
    for (size_t i = 0; digits && i < n; i++)
        digits = id[i] >= '0' && id[i] <= '9';
    if (digits)
        return cJSON_CreateNumber((double)strtoll(id, NULL, 10));
    return cJSON_CreateString(id);
}

void er_path_id(const ah_call *call, ah_buf *b, const char *collection, const char *id, const char *suffix)
{
    ah_buf_printf(b, "%s/%s/", ER_API, collection);
    ah_buf_url(b, call->host, id);
    ah_buf_puts(b, suffix);
}
