/* SPDX-License-Identifier: Apache-2.0 */
/* JSON text from outside parsed with the host's limits (json.c): by the
 * daemon (request bodies, a plugin's json_parse in process) and by the
 * plugin host process (its json_parse), so that a plugin sees the same
 * trees wherever it runs. */
#ifndef AH_JSON_H
#define AH_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

/** How deep arrays and objects may nest in JSON from outside. */
#define AH_JSON_MAX_DEPTH 32

/** Parses the `len` bytes of `text` as one JSON value, whitespace around
 *  it. Refused (NULL): nesting deeper than AH_JSON_MAX_DEPTH (counted
 *  before cJSON recurses), bytes past the value, and a raw NUL byte (no
 *  JSON text has one). An escaped NUL in a string (\u0000), valid JSON
 *  that a C string cannot hold (cJSON's would end there, the rest of the
 *  string lost without a word), is read as U+FFFD, the replacement
 *  character: the string keeps its length and whatever followed, and a
 *  provider's page that holds one is still read (refused, it would stop a
 *  sync at that page for good). */
cJSON *ah_json_parse_limited(const char *text, size_t len);

#endif
