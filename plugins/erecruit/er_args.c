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
        snprintf(out, ER_ID_MAX, "%.0f", d);
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

ah_result er_optional_id(ah_call *call, const cJSON *body, const char *key,
                         char out[ER_ID_MAX], bool *present)
{
    er_id_rc rc = er_id_value(cJSON_GetObjectItemCaseSensitive(body, key), out);
    *present = rc == ER_ID_OK;
    if (rc == ER_ID_BAD)
        return call->host->fail(call, AH_E_INVALID, 400,
                                "%s must be a non-empty string (at most %d bytes) or an integer",
                                key, ER_ID_MAX - 1);
    return AH_OK;
}

ah_result er_require_id(ah_call *call, const cJSON *body, const char *key,
                        char out[ER_ID_MAX])
{
    bool present = false;
    if (er_optional_id(call, body, key, out, &present) != AH_OK)
        return AH_ERR;
    if (!present)
        return call->host->fail(call, AH_E_INVALID, 400, "%s is required", key);
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

ah_result er_optional_string(ah_call *call, const cJSON *body, const char *key,
                             size_t max, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    *out = NULL;
    if (v == NULL || cJSON_IsNull(v))
        return AH_OK;
    if (!cJSON_IsString(v) || v->valuestring == NULL || strnlen(v->valuestring, max + 1) > max)
        return call->host->fail(call, AH_E_INVALID, 400,
                                "%s must be a string of at most %zu bytes", key, max);
    *out = v->valuestring;
    return AH_OK;
}

ah_result er_optional_int(ah_call *call, const cJSON *body, const char *key, long lo,
                          long hi, long *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    if (v == NULL || cJSON_IsNull(v))
        return AH_OK;
    if (!cJSON_IsNumber(v) || !integral(v->valuedouble) ||
        v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return call->host->fail(call, AH_E_INVALID, 400, "%s must be an integer in %ld..%ld",
                                key, lo, hi);
    *out = (long)v->valuedouble;
    return AH_OK;
}

/* --- er_buf ------------------------------------------------------------ */

void er_buf_append(er_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void er_buf_printf(er_buf *b, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    er_buf_append(b, s, (size_t)n);
    free(s);
}

void er_buf_escaped(er_buf *b, ah_call *call, const char *value)
{
    char *e = call->host->url_escape(value);
    if (e == NULL) {
        b->oom = true;
        return;
    }
    er_buf_append(b, e, strlen(e));
    call->host->free(e);
}

void er_buf_query(er_buf *b, ah_call *call, const char *key, const char *value)
{
    if (value == NULL)
        return;
    bool first = b->s == NULL || strchr(b->s, '?') == NULL;
    er_buf_printf(b, "%c%s=", first ? '?' : '&', key);
    er_buf_escaped(b, call, value);
}

void er_buf_free(er_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

ah_result er_buf_check(ah_call *call, const er_buf *b)
{
    if (b->oom || b->s == NULL)
        return er_oom(call);
    return AH_OK;
}

void er_path_id(er_buf *b, ah_call *call, const char *collection, const char *id,
                const char *suffix)
{
    er_buf_printf(b, "%s/%s/", ER_API, collection);
    er_buf_escaped(b, call, id);
    if (suffix != NULL)
        er_buf_printf(b, "%s", suffix);
}
