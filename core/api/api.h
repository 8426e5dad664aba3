/* SPDX-License-Identifier: Apache-2.0 */
/* The unified REST resources (api.c, api_statuses.c). */
#ifndef AH_API_H
#define AH_API_H

#include "core.h"

/* --- unified resources (api.c) ------------------------------------------ */
/** Registers the unified REST resources under /v1 (jobs, candidates,
 *  applications, stages, disposition reasons, custom fields; docs/api.md)
 *  on core->httpd, with core as the handlers' argument. Called by
 *  ah_rest_register. 0, or -1 when a route cannot be added. */
int ah_api_register(ah_core *core);
/** Registers the CareerBuilder status routes (api_statuses.c): PUT
 *  /v1/statuses, GET /v1/statuses/{email}, POST /v1/statuses/query. 0 or -1. */
int ah_api_statuses_register(ah_core *core);

/* --- events, webhooks and bulk jobs (trust_rest.c) ------------------------ */
/** Registers the routes of these modules on core->httpd (webhooks, events,
 *  bulk jobs) and installs the idempotency hooks. Called by ah_daemon_start
 *  after ah_rest_register. 0 or -1. */
int ah_trust_register(ah_core *core);

#endif
