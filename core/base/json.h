/* SPDX-License-Identifier: Apache-2.0 */
/* JSON text from outside parsed with the host's limits (json.c): by the
 * daemon (request bodies, a plugin's json_parse in process) and by the
 * plugin host process (its json_parse), so that a plugin sees the same
 * trees wherever it runs. */
#ifndef AH_JSON_H
#define AH_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/** How deep arrays and objects may nest in JSON from outside. */
#define AH_JSON_MAX_DEPTH 32

/** Parses the `len` bytes of `text` as one JSON value, whitespace around
 *  it. Refused (NULL): nesting deeper than AH_JSON_MAX_DEPTH (counted
 *  before cJSON recurses), bytes past the value, and a raw NUL byte (no
 *  JSON text has one). Read, not refused, in strings: an escaped NUL
 *  (\u0000), valid JSON that a C string cannot hold (cJSON's would end
 *  there, the rest of the string lost without a word), and bytes that are
 *  no UTF-8 (RFC 8259 wants UTF-8; a PostgreSQL text column refuses
 *  anything else, where SQLite stores it) are read as U+FFFD, the
 *  replacement character, one for each such byte: a provider's page that
 *  holds one is still read (refused, it would stop a sync at that page for
 *  good), and both stores keep the same text. */
cJSON *ah_json_parse_limited(const char *text, size_t len);

/** The length of the UTF-8 sequence at the start of u's n bytes (1-4),
 *  or 0 when they start none (RFC 3629). */
size_t ah_utf8_seq(const unsigned char *u, size_t n);

/** Whether the n bytes at s are UTF-8 throughout. */
bool ah_utf8_valid(const char *s, size_t n);

/** s's n bytes written to out (at least 3n bytes) with each byte that
 *  starts no UTF-8 sequence as U+FFFD (EF BF BD). The length written. */
size_t ah_utf8_repair(const char *s, size_t n, char *out);

/** How many of s's len bytes to keep so that at most max are kept and no
 *  UTF-8 sequence is split: len when it fits, else max or up to three
 *  less. */
size_t ah_utf8_cut(const char *s, size_t len, size_t max);

/** Deletes j after overwriting every string in it (values and names) with
 *  zeros: for trees that held secrets (a connection's opened settings).
 *  NULL is allowed. */
void ah_json_wipe_delete(cJSON *j);

#endif
