/* SPDX-License-Identifier: Apache-2.0 */
/* The host's own log: lines on stderr, plain or JSON lines. */
#ifndef AH_LOG_H
#define AH_LOG_H

#include <stdbool.h>
#include <stdarg.h>

#include <atshub/plugin.h> /* ah_log_level */

typedef struct ah_logger {
    ah_log_level level; /* lines above this level are dropped */
    bool json;          /* one JSON object per line */
} ah_logger;

/** Writes one line to stderr: "2026-11-24T03:31:57.123Z INFO  [scope] message"
 *  (UTC, milliseconds, level padded to 5), or with lg->json
 *  {"ts":"...","level":"info","scope":"...","msg":"..."}.
 *  `scope` is e.g. "core", "plugin erp tenant=acme conn=main" (may be NULL:
 *  then no "[scope]" / "scope" member). Lines above lg->level are dropped.
 *  In plain mode control characters in scope and message are escaped
 *  ("\n", "\x1b", ...) so a value cannot forge lines. A line is at most
 *  4096 bytes; longer messages are cut and end in "...".
 *  A NULL logger logs at INFO, plain. Thread-safe (one write(2) per line). */
void ah_log(const ah_logger *lg, ah_log_level level, const char *scope,
            const char *fmt, ...) AH_PRINTF(4, 5);
void ah_logv(const ah_logger *lg, ah_log_level level, const char *scope,
             const char *fmt, va_list ap);

/** Parses "error|warn|info|debug" (case-insensitive, "warning" too);
 *  -1 when unknown or NULL. */
int ah_log_level_parse(const char *s);

#define AH_LOG(lg, lvl, ...)                                                    \
    do {                                                                       \
        if ((lg) == NULL || (lvl) <= (lg)->level)                              \
            ah_log((lg), (lvl), "core", __VA_ARGS__);                          \
    } while (0)

#endif
