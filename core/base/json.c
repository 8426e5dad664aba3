/* SPDX-License-Identifier: Apache-2.0 */
/* JSON text from outside (json.h). */
#include "json.h"

#include <stdbool.h>

/* One pass before cJSON sees the text: counts brackets, so that its
 * recursion (limit 1000) never runs deep on hostile input, and finds the
 * NULs in strings that cJSON would keep as the end of a C string. */
static bool json_text_ok(const char *t, size_t n)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (c == '\0')
            return false;
        if (in_str) {
            if (c == '\\') {
                if (i + 5 < n && t[i + 1] == 'u' && t[i + 2] == '0' && t[i + 3] == '0' &&
                    t[i + 4] == '0' && t[i + 5] == '0')
                    return false;
                i++;
            } else if (c == '"') {
                in_str = false;
            }
            continue;
        }
        switch (c) {
        case '"':
            in_str = true;
            break;
        case '[':
        case '{':
            if (++depth > AH_JSON_MAX_DEPTH)
                return false;
            break;
        case ']':
        case '}':
            depth--;
            break;
        default:
            break;
        }
    }
    return true;
}

cJSON *ah_json_parse_limited(const char *text, size_t len)
{
    if (text == NULL || len == 0 || !json_text_ok(text, len))
        return NULL;
    const char *end = NULL;
    /* cJSON's require_null_terminated refuses a buffer that ends exactly at
     * `len`, so the trailing bytes are checked here instead. */
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (j == NULL)
        return NULL;
    for (const char *p = end; p < text + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(j);
            return NULL;
        }
    }
    return j;
}
