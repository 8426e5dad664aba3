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
 *  before cJSON recurses), bytes past the value, and a NUL in a string,
 *  escaped (\u0000) or raw: a C string would end there, and the value a
 *  caller reads would be cut short without a word. */
cJSON *ah_json_parse_limited(const char *text, size_t len);

#endif
