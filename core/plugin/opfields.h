/* SPDX-License-Identifier: Apache-2.0 */
/* Operation field tables (ah_op_fields, SDK @since 1.1): finding a topic's
 * table in a descriptor, checking a request body against it before the
 * plugin runs, checking the tables themselves when a plugin loads, and
 * describing them (JSON for the CLI, OpenAPI for docs/openapi.yaml).
 * Pure functions over constant data: no state, thread-safe. */
#ifndef AH_OPFIELDS_H
#define AH_OPFIELDS_H

#include <stddef.h>

#include <atshub/plugin.h>

/** The comment lines that frame the generated part of docs/openapi.yaml. */
#define AH_OPFIELDS_BEGIN "    # BEGIN GENERATED: bus request bodies (atshub plugins --openapi)"
#define AH_OPFIELDS_END "    # END GENERATED: bus request bodies"

/** The fields `d` declares for `topic`, or NULL when unknown: a descriptor
 *  older than op_fields, no table, or the topic not listed. */
const ah_field_spec *ah_opfields_find(const ah_plugin_descriptor *d, const char *topic);

/** Checks `body` (NULL: an empty object) against `fields`. 0 when it
 *  conforms; -1 with a message naming the field (e.g. "field 'integrations'
 *  must be an array") in msg. `topic` (may be NULL) names the operation in
 *  the message about an unknown field. */
int ah_opfields_validate(const ah_field_spec *fields, const char *topic, const cJSON *body,
                         char *msg, size_t msglen);

/** Checks the op_fields of `d` as the loader does: known and served topics,
 *  each listed once; fields named, typed, declared once, nested at most 4
 *  deep, terminated. 0, or -1 with err ("op_fields: ..."). */
int ah_opfields_check(const ah_plugin_descriptor *d, char *err, size_t errlen);

/** The tables of `d` as JSON, {"topic": [{"name","type","required",...}]},
 *  topics in the router's order; an object with no member when `d` declares
 *  none. NULL on allocation failure. Transferred. */
cJSON *ah_opfields_json(const ah_plugin_descriptor *d);

/** The type's name as the CLI and JSON print it ("string", "array of
 *  objects", ...). */
const char *ah_opfields_type_name(ah_field_type t);

/** Appends to *buf (malloc'ed, *len bytes so far; both start NULL/0) the
 *  OpenAPI schemas, one per topic `d` declares, named
 *  "bus.PLUGIN.TOPIC", indented to sit under components.schemas. 0, or -1
 *  on allocation failure (*buf then freed and NULL). */
int ah_opfields_openapi(const ah_plugin_descriptor *d, char **buf, size_t *len);

#endif
