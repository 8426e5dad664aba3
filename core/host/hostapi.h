/* SPDX-License-Identifier: Apache-2.0 */
/* The host API table handed to plugins (hostapi.c). */
#ifndef AH_HOSTAPI_H
#define AH_HOSTAPI_H

#include "core.h"

/* --- host API (hostapi.c) ----------------------------------------------- */
void ah_host_api_init(ah_host_api *api);
/** The core a host table belongs to. */
ah_core *ah_core_of_host(const ah_host_api *host);

#endif
