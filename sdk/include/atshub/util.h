/* SPDX-License-Identifier: Apache-2.0 */
/*
 * atshub plugin SDK: plumbing every plugin needs, header-only.
 *
 * Everything here is `static inline` and calls only libc, cJSON and the host
 * API table the plugin already has: including this header adds nothing to
 * the ABI between host and plugin (no new symbol, no new table member), so
 * it can change in any SDK release. Include it after <atshub/plugin.h>.
 *
 *   ah_buf        a growable string: bytes, printf, URL-escaped values,
 *                 query parameters, HTML text, JSON string literals
 *   ah_arg_*      typed readers of a request body's members that fail the
 *                 call with one wording: "field 'x' must be a string ..."
 *   ah_utc_*      ISO-8601 UTC time stamps ("2026-12-03T07:00:00Z")
 *   ah_utf8_len   length of a UTF-8 string in code points
 *   ah_int_text   an integer's decimal digits, without printf
 *
 * Needs POSIX (gmtime_r, strnlen, va_copy): build as gnu11, or define
 * _POSIX_C_SOURCE=200809L with -std=c11.
 *
 * Threads: none of these keep state; each ah_buf belongs to its caller.
 * (host->fail is called as (call->host->fail)(...) so that a function-like
 * macro named `fail`, such as Check's, cannot capture it.)
 */
#ifndef AH_UTIL_H
#define AH_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include <atshub/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* ah_buf: a growable NUL-terminated string                                 */
/* ------------------------------------------------------------------------ */

/**
 * Start with `ah_buf b = {0};`. Appends never fail loudly: running out of
 * memory sets `oom` and later appends do nothing, so a caller builds the
 * whole string and checks once (ah_buf_check). `s` is NULL until the first
 * append, then always NUL-terminated; `len` excludes the NUL. Owned by the
 * caller: release with ah_buf_free (or keep `s` and free() it yourself).
 */
typedef struct ah_buf {
    char *s;
    size_t len, cap;
    bool oom;
} ah_buf;

/** Appends `n` bytes of `data` (which may contain NULs). */
static inline void ah_buf_append(ah_buf *b, const void *data, size_t n)
{
    if (b->oom)
        return;
    if (n > (size_t)-1 / 2 - b->len) {
        b->oom = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = (char *)realloc(b->s, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->s + b->len, data, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/** Appends the NUL-terminated `s` (nothing when NULL). */
static inline void ah_buf_puts(ah_buf *b, const char *s)
{
    if (s != NULL)
        ah_buf_append(b, s, strlen(s));
}

static inline void ah_buf_vprintf(ah_buf *b, const char *fmt, va_list ap)
{
    if (b->oom)
        return;
    va_list again;
    va_copy(again, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        va_end(again);
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        ah_buf_append(b, small, (size_t)n);
    } else {
        char *big = (char *)malloc((size_t)n + 1);
        if (big == NULL || vsnprintf(big, (size_t)n + 1, fmt, again) != n)
            b->oom = true;
        else
            ah_buf_append(b, big, (size_t)n);
        free(big);
    }
    va_end(again);
}

/** Appends printf-style. */
static inline void ah_buf_printf(ah_buf *b, const char *fmt, ...) AH_PRINTF(2, 3);
static inline void ah_buf_printf(ah_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ah_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

/** Appends `s` percent-escaped for a URL path segment or query value by
 *  the host (`h->url_escape`, libcurl's): every byte but the RFC 3986
 *  unreserved ones (A-Z a-z 0-9 - . _ ~) as %XX, so '/', '?', '&', '=',
 *  '+', spaces and UTF-8 are all escaped. Nothing for NULL or ""; out of
 *  memory is remembered in b. (It once took no host and escaped by itself:
 *  a plugin written against that header passes call->host now.) */
static inline void ah_buf_url(ah_buf *b, const ah_host_api *h, const char *s)
{
    if (s == NULL || *s == '\0' || b->oom)
        return;
    char *e = h->url_escape(s);
    if (e == NULL) {
        b->oom = true;
        return;
    }
    ah_buf_puts(b, e);
    h->free(e);
}

/** Appends "?key=value" to a URL that has no '?' yet, else "&key=value",
 *  with `value` URL-escaped by the host (`key` is the caller's literal);
 *  nothing when value is NULL. */
static inline void ah_buf_query(ah_buf *b, const ah_host_api *h, const char *key,
                                const char *value)
{
    if (value == NULL)
        return;
    bool first = b->s == NULL || memchr(b->s, '?', b->len) == NULL;
    ah_buf_append(b, first ? "?" : "&", 1);
    ah_buf_puts(b, key);
    ah_buf_append(b, "=", 1);
    ah_buf_url(b, h, value);
}

/** Appends the `n` bytes of `s` as HTML text or a quoted attribute
 *  value: & < > " ' become entities, everything else is copied. */
static inline void ah_buf_html_n(ah_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++) {
        switch (s[i]) {
        case '&': ah_buf_puts(b, "&amp;"); break;
        case '<': ah_buf_puts(b, "&lt;"); break;
        case '>': ah_buf_puts(b, "&gt;"); break;
        case '"': ah_buf_puts(b, "&quot;"); break;
        case '\'': ah_buf_puts(b, "&#39;"); break;
        default: ah_buf_append(b, s + i, 1);
        }
    }
}

/** ah_buf_html_n of the NUL-terminated `s` (nothing when NULL). */
static inline void ah_buf_html(ah_buf *b, const char *s)
{
    if (s != NULL)
        ah_buf_html_n(b, s, strlen(s));
}

/** Appends `v` as compact JSON (printed by cJSON). With `in_html`, every
 *  '<' is written \u003c so that the text can sit inside a <script>
 *  element without a "</script>" in a value closing it early. */
static inline void ah_buf_json(ah_buf *b, const cJSON *v, bool in_html)
{
    char *t = v != NULL ? cJSON_PrintUnformatted(v) : NULL;
    if (t == NULL) {
        b->oom = true;
        return;
    }
    for (const char *p = t; *p != '\0';) {
        size_t run = in_html ? strcspn(p, "<") : strlen(p);
        ah_buf_append(b, p, run);
        p += run;
        if (*p == '<') {
            ah_buf_puts(b, "\\u003c");
            p++;
        }
    }
    free(t);
}

/** Appends `s` as a JSON string literal, quotes included ("a\"b"),
 *  escaped by cJSON. */
static inline void ah_buf_json_string(ah_buf *b, const char *s)
{
    cJSON *j = cJSON_CreateString(s != NULL ? s : "");
    if (j == NULL) {
        b->oom = true;
        return;
    }
    ah_buf_json(b, j, false);
    cJSON_Delete(j);
}

/** True when every append so far succeeded (and something was appended). */
static inline bool ah_buf_ok(const ah_buf *b)
{
    return !b->oom && b->s != NULL;
}

/** AH_OK when the buffer is complete; otherwise fails the call with
 *  internal_error "out of memory". */
static inline ah_result ah_buf_check(ah_call *call, const ah_buf *b)
{
    return ah_buf_ok(b) ? AH_OK
                        : (call->host->fail)(call, AH_E_INTERNAL, 500, "out of memory");
}

/** Frees the string and resets the buffer to empty. */
static inline void ah_buf_free(ah_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------------ */
/* ah_arg_*: typed request members, one wording for every refusal           */
/* ------------------------------------------------------------------------ */

/* ah_arg_* flags. A JSON null counts as absent. */
enum {
    AH_ARG_OPTIONAL = 0,       /**< absent is fine: *out NULL or untouched */
    AH_ARG_REQUIRED = 1u << 0, /**< absent is refused */
    AH_ARG_NONEMPTY = 1u << 1, /**< strings: "" is refused */
};

/* Doubles represent integers exactly up to 2^53: refuse rather than round. */
#define AH_ARG_INT_EXACT 9007199254740992.0

/** Fails the call with invalid_request (400):
 *  "field 'KEY' must be WHAT". Every ah_arg_* refusal reads this way,
 *  whether the member is missing or has the wrong type or range, so that
 *  products see one shape from every plugin. Usable by plugins for their
 *  own types ("a date YYYY-MM-DD"). */
static inline ah_result ah_arg_fail(ah_call *call, const char *key, const char *what)
{
    return (call->host->fail)(call, AH_E_INVALID, 400, "field '%s' must be %s", key, what);
}

/* The member, or NULL when absent or null. */
static inline const cJSON *ah_arg_item(const cJSON *body, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    return v == NULL || cJSON_IsNull(v) ? NULL : v;
}

/** A string member of at most max_len bytes (0: no limit) into *out
 *  (borrowed from body; NULL when optional and absent). */
static inline ah_result ah_arg_string(ah_call *call, const cJSON *body, const char *key,
                                      unsigned flags, size_t max_len, const char **out)
{
    const cJSON *v = ah_arg_item(body, key);
    *out = NULL;
    if (v == NULL && !(flags & AH_ARG_REQUIRED))
        return AH_OK;
    if (v == NULL || !cJSON_IsString(v) || v->valuestring == NULL ||
        ((flags & AH_ARG_NONEMPTY) && v->valuestring[0] == '\0') ||
        (max_len > 0 && strnlen(v->valuestring, max_len + 1) > max_len)) {
        char what[64];
        snprintf(what, sizeof what, "a %sstring", flags & AH_ARG_NONEMPTY ? "non-empty " : "");
        if (max_len > 0)
            snprintf(what + strlen(what), sizeof what - strlen(what), " of at most %zu bytes",
                     max_len);
        return ah_arg_fail(call, key, what);
    }
    *out = v->valuestring;
    return AH_OK;
}

/** True when d is a whole number that a long long holds exactly (|d| <=
 *  2^53), with it in *out. Casting a double outside that range is undefined
 *  behaviour: check with this before converting a number from outside. */
static inline bool ah_whole(double d, long long *out)
{
    /* NaN fails every comparison; the cast runs only once d is in range. */
    if (!(d >= -AH_ARG_INT_EXACT && d <= AH_ARG_INT_EXACT) || d != (double)(long long)d)
        return false;
    *out = (long long)d;
    return true;
}

/** An integral number member in lo..hi into *out (untouched when
 *  optional and absent: set the default first). */
static inline ah_result ah_arg_int(ah_call *call, const cJSON *body, const char *key,
                                   unsigned flags, long long lo, long long hi, long long *out)
{
    const cJSON *v = ah_arg_item(body, key);
    if (v == NULL && !(flags & AH_ARG_REQUIRED))
        return AH_OK;
    double d = v != NULL && cJSON_IsNumber(v) ? v->valuedouble : 0.5;
    /* NaN fails every comparison; infinities and fractions the rest. */
    if (!(d >= -AH_ARG_INT_EXACT && d <= AH_ARG_INT_EXACT) || d != (double)(long long)d ||
        (long long)d < lo || (long long)d > hi) {
        char what[96];
        snprintf(what, sizeof what, "an integer from %lld to %lld", lo, hi);
        return ah_arg_fail(call, key, what);
    }
    *out = (long long)d;
    return AH_OK;
}

/** A boolean member (JSON true or false, not 0/1 or "yes") into *out
 *  (untouched when optional and absent). */
static inline ah_result ah_arg_bool(ah_call *call, const cJSON *body, const char *key,
                                    unsigned flags, bool *out)
{
    const cJSON *v = ah_arg_item(body, key);
    if (v == NULL && !(flags & AH_ARG_REQUIRED))
        return AH_OK;
    if (v == NULL || !cJSON_IsBool(v))
        return ah_arg_fail(call, key, "true or false");
    *out = cJSON_IsTrue(v);
    return AH_OK;
}

/** An array member of min_items..max_items elements (max_items 0: no
 *  limit) into *out (borrowed; NULL when optional and absent). The
 *  elements' types are the caller's to check. */
static inline ah_result ah_arg_array(ah_call *call, const cJSON *body, const char *key,
                                     unsigned flags, int min_items, int max_items,
                                     const cJSON **out)
{
    const cJSON *v = ah_arg_item(body, key);
    *out = NULL;
    if (v == NULL && !(flags & AH_ARG_REQUIRED))
        return AH_OK;
    int n = v != NULL && cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 0 || n < min_items || (max_items > 0 && n > max_items)) {
        char what[96];
        if (max_items > 0)
            snprintf(what, sizeof what, "an array of %d to %d items", min_items, max_items);
        else if (min_items > 0)
            snprintf(what, sizeof what, "an array of at least %d item%s", min_items,
                     min_items == 1 ? "" : "s");
        else
            snprintf(what, sizeof what, "an array");
        return ah_arg_fail(call, key, what);
    }
    *out = v;
    return AH_OK;
}

/* ------------------------------------------------------------------------ */
/* Clock and text                                                           */
/* ------------------------------------------------------------------------ */

/** Room for "YYYY-MM-DDTHH:MM:SSZ" and its NUL. */
#define AH_UTC_LEN 21

/** `t` as "2026-12-03T07:00:00Z" in `out` (at least AH_UTC_LEN bytes).
 *  False (out "") when the year is outside 0001..9999 or out is short.
 *  Pure arithmetic (the civil-from-days algorithm of H. Hinnant's "chrono-
 *  Compatible Low-Level Date Algorithms"): gmtime_r takes glibc's time-zone
 *  lock, which every thread stamping a record would contend on. */
static inline bool ah_utc_format(time_t t, char *out, size_t len)
{
    if (len == 0)
        return false;
    out[0] = '\0';
    /* 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z */
    if (len < AH_UTC_LEN || (long long)t < -62135596800LL || (long long)t > 253402300799LL)
        return false;
    long long secs = (long long)t, days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    long long z = days + 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;                                    /* [0, 146096] */
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);             /* [0, 365] */
    long long mp = (5 * doy + 2) / 153;                                  /* [0, 11] */
    int day = (int)(doy - (153 * mp + 2) / 5 + 1);
    int month = (int)(mp < 10 ? mp + 3 : mp - 9);
    int year = (int)(yoe + era * 400 + (month <= 2));
    int hms[3] = {(int)(rem / 3600), (int)(rem % 3600 / 60), (int)(rem % 60)};
    char *p = out;
    for (int div = 1000; div > 0; div /= 10)
        *p++ = (char)('0' + year / div % 10);
    *p++ = '-';
    *p++ = (char)('0' + month / 10);
    *p++ = (char)('0' + month % 10);
    *p++ = '-';
    *p++ = (char)('0' + day / 10);
    *p++ = (char)('0' + day % 10);
    for (int i = 0; i < 3; i++) {
        *p++ = i == 0 ? 'T' : ':';
        *p++ = (char)('0' + hms[i] / 10);
        *p++ = (char)('0' + hms[i] % 10);
    }
    *p++ = 'Z';
    *p = '\0';
    return true;
}

/** Now, as ah_utc_format writes it. */
static inline bool ah_utc_now(char *out, size_t len)
{
    return ah_utc_format(time(NULL), out, len);
}

/** Length of the UTF-8 string `s` in code points (continuation bytes are
 *  not counted; 0 for NULL). Providers limit fields in characters, not
 *  bytes. */
static inline size_t ah_utf8_len(const char *s)
{
    size_t n = 0;
    for (; s != NULL && *s != '\0'; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/** Room for the decimal text of any long long: sign, 19 digits, NUL. */
#define AH_INT_TEXT_MAX 21

/** Writes `v` in decimal (as "%lld" would) into `out`, NUL-terminated;
 *  returns its length. Without printf's format machinery (~800
 *  instructions a call; "%.0f" of a double ~2,000): for hot paths that
 *  write many ids. */
static inline size_t ah_int_text(long long v, char out[AH_INT_TEXT_MAX])
{
    char rev[AH_INT_TEXT_MAX];
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    size_t k = 0, n = 0;
    do
        rev[k++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        out[n++] = '-';
    while (k > 0)
        out[n++] = rev[--k];
    out[n] = '\0';
    return n;
}

#ifdef __cplusplus
}
#endif

#endif /* AH_UTIL_H */
