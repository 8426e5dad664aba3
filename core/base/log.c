/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include "clock.h"
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

/* One line never exceeds PIPE_BUF, so a single write(2) to a pipe is atomic
 * and concurrent lines from several threads never interleave. */
#define AH_LOG_LINE 4096

static const char *const level_plain[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
static const char *const level_json[] = {"error", "warn", "info", "debug"};

static int level_index(ah_log_level level)
{
    if ((int)level < (int)AH_LOG_ERROR)
        return AH_LOG_ERROR;
    if ((int)level > (int)AH_LOG_DEBUG)
        return AH_LOG_DEBUG;
    return (int)level;
}

static void write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a failing stderr */
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Formats the message; a message that does not fit ends in "...". */
static void format_message(char *msg, size_t len, const char *fmt, va_list ap)
{
    int n = vsnprintf(msg, len, fmt ? fmt : "", ap);
    if (n < 0) {
        snprintf(msg, len, "(unformattable log message)");
    } else if ((size_t)n >= len && len > 4) {
        memcpy(msg + len - 4, "...", 4);
    }
}

typedef struct line_buf {
    char *buf;
    size_t cap; /* room for text, the caller keeps one byte for '\n' */
    size_t len;
    bool full;
} line_buf;

static void put_raw(line_buf *lb, const char *s, size_t n)
{
    if (lb->full)
        return;
    if (n > lb->cap - lb->len) {
        lb->full = true;
        return;
    }
    memcpy(lb->buf + lb->len, s, n);
    lb->len += n;
}

/* Copies `s` escaping every control character (C0, DEL and the UTF-8 encoded
 * C1 range), so a hostile value can neither start a new line nor drive the
 * terminal. */
static void put_clean(line_buf *lb, const char *s)
{
    char esc[8];
    const unsigned char *p = (const unsigned char *)s;

    for (; *p != '\0' && !lb->full; p++) {
        if (*p == '\n') {
            put_raw(lb, "\\n", 2);
        } else if (*p == '\r') {
            put_raw(lb, "\\r", 2);
        } else if (*p == '\t') {
            put_raw(lb, "\\t", 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", *p);
            put_raw(lb, esc, 4);
        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            snprintf(esc, sizeof esc, "\\u%04x", p[1]);
            put_raw(lb, esc, 6);
            p++;
        } else {
            put_raw(lb, (const char *)p, 1);
        }
    }
}

static size_t build_plain(char *line, size_t cap, const char *ts, int lvl, const char *scope,
                          const char *msg)
{
    line_buf lb = {line, cap - 1, 0, false};

    put_raw(&lb, ts, strlen(ts));
    put_raw(&lb, " ", 1);
    put_raw(&lb, level_plain[lvl], strlen(level_plain[lvl]));
    put_raw(&lb, " ", 1);
    if (scope != NULL && *scope != '\0') {
        put_raw(&lb, "[", 1);
        put_clean(&lb, scope);
        put_raw(&lb, "] ", 2);
    }
    put_clean(&lb, msg);
    if (lb.full) {
        /* Keep the tail marker inside the buffer even when cut mid-escape. */
        size_t keep = lb.len > lb.cap - 3 ? lb.cap - 3 : lb.len;
        memcpy(line + keep, "...", 3);
        lb.len = keep + 3;
    }
    line[lb.len++] = '\n';
    return lb.len;
}

/* Shortens msg to at most `n` bytes plus "...", never splitting a UTF-8
 * sequence so the JSON stays valid UTF-8. */
static void shorten_utf8(char *msg, size_t n)
{
    memcpy(msg + ah_utf8_cut(msg, strlen(msg), n), "...", 4);
}

static size_t build_json(char *line, size_t cap, const char *ts, int lvl, const char *scope,
                         char *msg)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON *jmsg = NULL;
    size_t n = 0;

    if (obj == NULL || cJSON_AddStringToObject(obj, "ts", ts) == NULL ||
        cJSON_AddStringToObject(obj, "level", level_json[lvl]) == NULL ||
        (scope != NULL && cJSON_AddStringToObject(obj, "scope", scope) == NULL) ||
        (jmsg = cJSON_AddStringToObject(obj, "msg", msg)) == NULL)
        goto out;

    /* Escaping can grow the message up to six times; cut it until it fits. */
    for (;;) {
        if (cJSON_PrintPreallocated(obj, line, (int)cap - 1, 0)) {
            n = strlen(line);
            line[n++] = '\n';
            break;
        }
        size_t len = strlen(msg);
        if (len <= 16)
            break;
        shorten_utf8(msg, len / 2);
        if (cJSON_SetValuestring(jmsg, msg) == NULL)
            break;
    }
out:
    cJSON_Delete(obj);
    return n;
}

void ah_logv(const ah_logger *lg, ah_log_level level, const char *scope, const char *fmt,
             va_list ap)
{
    ah_log_level max = lg != NULL ? lg->level : AH_LOG_INFO;
    char msg[AH_LOG_LINE];
    char line[AH_LOG_LINE];
    char ts[40];
    size_t n = 0;
    int lvl;

    if ((int)level > (int)max)
        return;
    lvl = level_index(level);
    format_message(msg, sizeof msg, fmt, ap);
    ah_now_iso(ts);
    if (lg != NULL && lg->json)
        n = build_json(line, sizeof line, ts, lvl, scope, msg);
    /* Plain is also the fallback when JSON cannot be built (out of memory). */
    if (n == 0)
        n = build_plain(line, sizeof line, ts, lvl, scope, msg);
    write_all(line, n);
}

void ah_log(const ah_logger *lg, ah_log_level level, const char *scope, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ah_logv(lg, level, scope, fmt, ap);
    va_end(ap);
}

int ah_log_level_parse(const char *s)
{
    if (s == NULL)
        return -1;
    for (int i = 0; i < (int)(sizeof level_json / sizeof level_json[0]); i++) {
        if (strcasecmp(s, level_json[i]) == 0)
            return i;
    }
    if (strcasecmp(s, "warning") == 0)
        return AH_LOG_WARN;
    return -1;
}
