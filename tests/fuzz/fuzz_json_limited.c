/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON from outside as the daemon and the plugin process both read it
 * (core/base/json.c, ah_json_parse_limited): request bodies, a plugin's
 * json_parse, provider pages. Asserted: it decides as its rules written
 * the plain way here (reference(): byte by byte, where json.c skips with a
 * table) decide, to the same tree; of every text it accepts, the tree nests
 * no deeper than AH_JSON_MAX_DEPTH, the text holds no NUL byte, the tree's
 * strings are UTF-8 throughout, and the
 * tree printed by cJSON is accepted again and reads back as a tree that
 * prints the same (when every number is finite: cJSON prints an
 * infinity, which 1e400 reads as, as null).
 */
#include <math.h>

#include <cjson/cJSON.h>

#include <stdbool.h>

#include "fuzz.h"
#include "json.h"

static int depth_of(const cJSON *j)
{
    if (!cJSON_IsArray(j) && !cJSON_IsObject(j))
        return 0;
    int d = 0;
    for (const cJSON *c = j->child; c != NULL; c = c->next) {
        int cd = depth_of(c);
        if (cd > d)
            d = cd;
    }
    return d + 1;
}

/* Whether every number is finite: cJSON prints inf (1e400 read) as null. */
static bool all_finite(const cJSON *j)
{
    if (cJSON_IsNumber(j) && !isfinite(j->valuedouble))
        return false;
    for (const cJSON *c = j->child; c != NULL; c = c->next)
        if (!all_finite(c))
            return false;
    return true;
}

/* The UTF-8 sequence at u (n bytes) decoded the plain way: its length
 * when it is one (the shortest form of a code point up to U+10FFFF that
 * is no surrogate), else 0. */
static size_t utf8_plain(const unsigned char *u, size_t n)
{
    size_t len;
    unsigned long cp;
    if (u[0] < 0x80)
        return 1;
    if ((u[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = u[0] & 0x1f;
    } else if ((u[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = u[0] & 0x0f;
    } else if ((u[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = u[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((u[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (u[k] & 0x3f);
    }
    static const unsigned long least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Whether the n bytes at s are UTF-8 throughout. */
static bool all_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = utf8_plain((const unsigned char *)s + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* json.h's rules, the plain way: a raw NUL or nesting past 32 refused; in
 * a string, an escaped NUL read as U+FFFD (\uFFFD), each byte that starts
 * no UTF-8 sequence as U+FFFD, the byte after any other backslash skipped
 * (unless it is one of a multi-byte sequence); then cJSON reads the whole
 * text, whitespace after it allowed. */
static cJSON *reference(const char *t, size_t n)
{
    if (n == 0)
        return NULL;
    const unsigned char *u = (const unsigned char *)t;
    char *c = malloc(3 * n);
    if (c == NULL)
        abort();
    size_t o = 0;
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        if (u[i] == '\0') {
            free(c);
            return NULL;
        }
        if (in_str) {
            if (u[i] >= 0x80) {
                size_t k = utf8_plain(u + i, n - i);
                if (k == 0) {
                    memcpy(c + o, "\xef\xbf\xbd", 3);
                    o += 3;
                } else {
                    memcpy(c + o, u + i, k);
                    o += k;
                    i += k - 1;
                }
                continue;
            }
            c[o++] = (char)u[i];
            if (u[i] == '"') {
                in_str = false;
            } else if (u[i] == '\\') {
                if (i + 5 < n && u[i + 1] == 'u' && memcmp(u + i + 2, "0000", 4) == 0) {
                    memcpy(c + o, "uFFFD", 5);
                    o += 5;
                    i += 5;
                } else if (i + 1 < n && u[i + 1] == '\0') {
                    free(c);
                    return NULL;
                } else if (i + 1 < n && u[i + 1] < 0x80) {
                    c[o++] = (char)u[++i];
                }
            }
            continue;
        }
        c[o++] = (char)u[i];
        if (u[i] == '"') {
            in_str = true;
        } else if (u[i] == '[' || u[i] == '{') {
            if (++depth > AH_JSON_MAX_DEPTH) {
                free(c);
                return NULL;
            }
        } else if (u[i] == ']' || u[i] == '}') {
            depth--;
        }
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(c, o, &end, 0);
    for (const char *p = end; j != NULL && p < c + o; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(j);
            j = NULL;
        }
    }
    free(c);
    return j;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *t = (const char *)data;
    cJSON *j = ah_json_parse_limited(t, size);
    cJSON *ref = reference(t, size);
    if ((j == NULL) != (ref == NULL))
        fuzz_fail("json_limited", j == NULL ? "refused what the plain rules accept"
                                            : "accepted what the plain rules refuse");
    if (j != NULL) {
        char *a = cJSON_PrintUnformatted(j), *b = cJSON_PrintUnformatted(ref);
        if (a == NULL || b == NULL || strcmp(a, b) != 0)
            fuzz_fail("json_limited", "read another tree than the plain rules");
        cJSON_free(a);
        cJSON_free(b);
    }
    cJSON_Delete(ref);
    if (j == NULL)
        return 0;
    if (depth_of(j) > AH_JSON_MAX_DEPTH)
        fuzz_fail("json_limited", "accepted a tree deeper than AH_JSON_MAX_DEPTH");
    if (memchr(data, '\0', size) != NULL)
        fuzz_fail("json_limited", "accepted a text with a NUL byte");
    if (!all_finite(j)) {
        cJSON_Delete(j);
        return 0;
    }
    char *p = cJSON_PrintUnformatted(j);
    if (p == NULL)
        fuzz_fail("json_limited", "cannot print an accepted tree");
    if (!all_utf8(p, strlen(p)))
        fuzz_fail("json_limited", "accepted a tree whose text is no UTF-8");
    cJSON *again = ah_json_parse_limited(p, strlen(p));
    if (again == NULL)
        fuzz_fail("json_limited", "refused the printed form of a tree it accepted");
    /* Printed again, the same text (cJSON_Compare would not do: it finds
     * an object's member by its name, the first of duplicates). */
    char *p2 = cJSON_PrintUnformatted(again);
    if (p2 == NULL || strcmp(p, p2) != 0)
        fuzz_fail("json_limited", "the printed form reads back as another tree");
    cJSON_free(p2);
    cJSON_Delete(again);
    cJSON_free(p);
    cJSON_Delete(j);
    return 0;
}
