/* SPDX-License-Identifier: Apache-2.0 */
/* JSON text from outside (json.h). */
#include "json.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The bytes json_text_ok stops at: inside a string (its end, an escape, a
 * NUL, a byte of a multi-byte UTF-8 sequence) and outside one (a string's
 * start, a bracket, a NUL). Every other byte is skipped by one table
 * look-up: the pass runs over every page a provider sends, before cJSON
 * reads it again. */
enum { STOP_IN_STR = 1, STOP_OUTSIDE = 2 };
#define HI8(b) [0x##b##0 ... 0x##b##f] = STOP_IN_STR
static const unsigned char stop[256] = {
    [0] = STOP_IN_STR | STOP_OUTSIDE,
    ['"'] = STOP_IN_STR | STOP_OUTSIDE,
    ['\\'] = STOP_IN_STR,
    ['['] = STOP_OUTSIDE,
    ['{'] = STOP_OUTSIDE,
    [']'] = STOP_OUTSIDE,
    ['}'] = STOP_OUTSIDE,
    HI8(8), HI8(9), HI8(a), HI8(b), HI8(c), HI8(d), HI8(e), HI8(f),
};
#undef HI8

size_t ah_utf8_seq(const unsigned char *u, size_t n)
{
    if (n == 0)
        return 0;
    unsigned char c = u[0], lo = 0x80, hi = 0xbf;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* a surrogate */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || u[1] < lo || u[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if ((u[k] & 0xc0) != 0x80)
            return 0;
    return len;
}

bool ah_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII eight bytes at a time: a first sync passes every record's
         * text through here. */
        if (n - i >= 8) {
            uint64_t v;
            memcpy(&v, u + i, 8);
            if ((v & 0x8080808080808080u) == 0) {
                i += 8;
                continue;
            }
        }
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = ah_utf8_seq(u + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

size_t ah_utf8_repair(const char *s, size_t n, char *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        size_t k = ah_utf8_seq(u + i, n - i);
        if (k == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, u + i, k);
            o += k;
            i += k;
        }
    }
    return o;
}

size_t ah_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    /* Back over continuation bytes to the start of the sequence that
     * would be split (at most three). */
    while (n > 0 && max - n < 3 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

/* One pass before cJSON sees the text: counts brackets, so that its
 * recursion (limit 1000) never runs deep on hostile input, refuses a raw
 * NUL (JSON has none: a control character in a string is escaped), and
 * finds in strings what cJSON would keep as is and a C string or a
 * database cannot: an escaped NUL (the end of a C string) and bytes that
 * are no UTF-8. *repair says there are some (json_repaired writes the
 * text again without them). */
static bool json_text_ok(const char *t, size_t n, bool *repair)
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
            unsigned char c = u[i];
            if (c >= 0x80) {
                size_t k = ah_utf8_seq(u + i, n - i);
                if (k == 0) {
                    *repair = true;
                    k = 1;
                }
                i += k;
                continue;
            }
            i++;
            if (c == '"')
                break;
            if (c == '\0')
                return false;
            /* An escape: \u0000 is a NUL; any other skips its next byte. */
            if (i + 4 < n && u[i] == 'u' && u[i + 1] == '0' && u[i + 2] == '0' &&
                u[i + 3] == '0' && u[i + 4] == '0') {
                *repair = true;
                i += 5;
                continue;
            }
            if (i < n && u[i] == '\0') /* no escape is a NUL byte either */
                return false;
            if (i < n && u[i] >= 0x80)
                continue; /* not an escape cJSON takes; the byte read as text */
            i++;
        }
    }
}

/* t (which json_text_ok accepted) written again into out (at least 3n
 * bytes): in strings each escaped NUL as \uFFFD and each byte that starts
 * no UTF-8 sequence as U+FFFD (EF BF BD). Its length. */
static size_t json_repaired(const char *t, size_t n, char *out)
{
    const unsigned char *u = (const unsigned char *)t;
    size_t i = 0, o = 0;
    bool in_str = false;
    while (i < n) {
        unsigned char c = u[i];
        if (!in_str) {
            in_str = c == '"';
            out[o++] = (char)u[i++];
            continue;
        }
        if (c >= 0x80) {
            size_t k = ah_utf8_seq(u + i, n - i);
            o += ah_utf8_repair(t + i, k > 0 ? k : 1, out + o);
            i += k > 0 ? k : 1;
            continue;
        }
        out[o++] = (char)u[i++];
        if (c == '"') {
            in_str = false;
        } else if (c == '\\' && i < n) {
            if (i + 4 < n && memcmp(u + i, "u0000", 5) == 0) {
                memcpy(out + o, "uFFFD", 5);
                o += 5;
                i += 5;
            } else if (u[i] < 0x80) {
                out[o++] = (char)u[i++];
            }
        }
    }
    return o;
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
    bool repair = false;
    if (text == NULL || len == 0 || !json_text_ok(text, len, &repair))
        return NULL;
    if (!repair)
        return parse_whole(text, len);
    /* Rare: a copy with U+FFFD in the places of escaped NULs and of bytes
     * that are no UTF-8, then parsed. */
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *copy = malloc(len * 3);
    if (copy == NULL)
        return NULL;
    cJSON *j = parse_whole(copy, json_repaired(text, len, copy));
    free(copy);
    return j;
}

static void json_wipe(cJSON *j)
{
    for (; j != NULL; j = j->next) {
        if (j->valuestring != NULL)
            explicit_bzero(j->valuestring, strlen(j->valuestring));
        if (j->string != NULL && (j->type & cJSON_StringIsConst) == 0)
            explicit_bzero(j->string, strlen(j->string));
        json_wipe(j->child);
    }
}

void ah_json_wipe_delete(cJSON *j)
{
    if (j == NULL)
        return;
    /* (The root's siblings are not its own: only j and what it holds.) */
    cJSON *next = j->next;
    j->next = NULL;
    json_wipe(j);
    j->next = next;
    cJSON_Delete(j);
}
