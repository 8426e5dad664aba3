/* SPDX-License-Identifier: Apache-2.0 */
/* The host API table handed to plugins (hostapi.c). */
#ifndef AH_HOSTAPI_H
#define AH_HOSTAPI_H

#include "core.h"
#include "isolate.h"

/* --- host API (hostapi.c) ----------------------------------------------- */
void ah_host_api_init(ah_host_api *api);
/** Lent to isolated plugins: a route's connection found by its secret
 *  before the route reaches the plugin's process (isolate.h). */
extern const ah_isolate_conn_hooks ah_host_conn_hooks;
/** The core a host table belongs to. */
ah_core *ah_core_of_host(const ah_host_api *host);

/** Hands tree, the parse of text[0..len) (ah_json_parse_limited's; tree
 *  NULL: nothing), to the next json_parse this thread makes of that very
 *  buffer (same pointer and length), which returns it instead of parsing
 *  again: the caller owns it then. Deletes a tree lent before and not
 *  taken. */
void ah_host_json_lend(const char *text, size_t len, cJSON *tree);
/** Deletes this thread's lent tree if nobody took it. */
void ah_host_json_unlend(void);

#endif
