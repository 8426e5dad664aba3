/* SPDX-License-Identifier: Apache-2.0 */
/* Idempotency-Key on write routes: the httpd hooks that replay a stored answer (idempotency.c). */
#ifndef AH_IDEMPOTENCY_H
#define AH_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

/* --- idempotency keys (idempotency.c) ------------------------------------ */

/** The httpd hooks (installed by ah_trust_register). Exposed for tests. */
bool ah_idem_before(void *core, ah_http_exchange *ex);
void ah_idem_after(void *core, ah_http_exchange *ex);
/** Deletes idempotency keys past their 24-hour time to live (the daemon's
 *  ticker calls it). */
void ah_idem_prune(ah_core *core);

#endif
