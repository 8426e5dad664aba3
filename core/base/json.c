/* SPDX-License-Identifier: Apache-2.0 */
/* JSON text from outside (json.h). */
#include "json.h"

#include <stdbool.h>

/* The bytes json_text_ok stops at: inside a string (its end, an escape, a
 * NUL) and outside one (a string's start, a bracket, a NUL). Every other
 * byte is skipped by one table look-up: the pass runs over every page a
 * provider sends, before cJSON reads it again. */
enum { STOP_IN_STR = 1, STOP_OUTSIDE = 2 };
static const unsigned char stop[256] = {
    [0] = STOP_IN_STR | STOP_OUTSIDE,
    ['"'] = STOP_IN_STR | STOP_OUTSIDE,
    ['\\'] = STOP_IN_STR,
    ['['] = STOP_OUTSIDE,
    ['{'] = STOP_OUTSIDE,
    [']'] = STOP_OUTSIDE,
    ['}'] = STOP_OUTSIDE,
};

/* One pass before cJSON sees the text: counts brackets, so that its
 * recursion (limit 1000) never runs deep on hostile input, and finds the
 * NULs in strings that cJSON would keep as the end of a C string. */
static bool json_text_ok(const char *t, size_t n)
{
    const unsigned char *u = (const unsigned char *)t;
    int depth = 0;
    size_t i = 0;
    for (;;) {
        /* Outside a string. */
        while (i < n && !(stop[u[i]] & STOP_OUTSIDE))
            i++;
        if (i >= n)
            return true;
        switch (u[i++]) {
        case '\0':
            return false;
        case '[':
        case '{':
            if (++depth > AH_JSON_MAX_DEPTH)
                return false;
            continue;
        case ']':
        case '}':
            depth--;
            continue;
        default: /* '"': a string starts */
            break;
        }
        for (;;) {
            while (i < n && !(stop[u[i]] & STOP_IN_STR))
                i++;
            if (i >= n)
                return true; /* unterminated: cJSON's to refuse */
            unsigned char c = u[i++];
            if (c == '"')
                break;
            if (c == '\0')
                return false;
            /* An escape: \u0000 is a NUL; any other skips its next byte. */
            if (i + 4 < n && u[i] == 'u' && u[i + 1] == '0' && u[i + 2] == '0' &&
                u[i + 3] == '0' && u[i + 4] == '0')
                return false;
            i++;
        }
    }
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
