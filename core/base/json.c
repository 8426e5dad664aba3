/* SPDX-License-Identifier: Apache-2.0 */
/* JSON text from outside (json.h). */
#include "json.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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
 * recursion (limit 1000) never runs deep on hostile input, refuses a raw
 * NUL (JSON has none: a control character in a string is escaped), and
 * finds the escaped ones in strings, which cJSON would keep as the end of
 * a C string: with `fix` (a copy of t) each is written there as \uFFFD,
 * else *nul_escapes says there are some. */
static bool json_text_ok(const char *t, size_t n, char *fix, bool *nul_escapes)
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
                u[i + 3] == '0' && u[i + 4] == '0') {
                if (fix != NULL)
                    memcpy(fix + i + 1, "FFFD", 4);
                else
                    *nul_escapes = true;
                i += 5;
                continue;
            }
            if (i < n && u[i] == '\0') /* no escape is a NUL byte either */
                return false;
            i++;
        }
    }
}

static cJSON *parse_whole(const char *text, size_t len)
{
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

cJSON *ah_json_parse_limited(const char *text, size_t len)
{
    bool nul_escapes = false;
    if (text == NULL || len == 0 || !json_text_ok(text, len, NULL, &nul_escapes))
        return NULL;
    if (!nul_escapes)
        return parse_whole(text, len);
    /* Rare: a copy with U+FFFD in the NULs' places, then parsed. */
    char *copy = malloc(len);
    if (copy == NULL)
        return NULL;
    memcpy(copy, text, len);
    (void)json_text_ok(text, len, copy, &nul_escapes);
    cJSON *j = parse_whole(copy, len);
    free(copy);
    return j;
}
