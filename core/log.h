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

/** Writes one line: "2026-11-24T03:31:57Z INFO [scope] message".
 *  `scope` is e.g. "core", "plugin erp tenant=acme conn=main" (may be NULL).
 *  A NULL logger logs at INFO, plain. Thread-safe (one write(2) per line). */
void ah_log(const ah_logger *lg, ah_log_level level, const char *scope,
            const char *fmt, ...) AH_PRINTF(4, 5);
void ah_logv(const ah_logger *lg, ah_log_level level, const char *scope,
             const char *fmt, va_list ap);

/** Parses "error|warn|info|debug"; -1 when unknown. */
int ah_log_level_parse(const char *s);

#define AH_LOG(lg, lvl, ...)                                                    \
    do {                                                                       \
        if ((lg) == NULL || (lvl) <= (lg)->level)                              \
            ah_log((lg), (lvl), "core", __VA_ARGS__);                          \
    } while (0)

#endif
