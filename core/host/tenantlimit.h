/* SPDX-License-Identifier: Apache-2.0 */
/* Per-tenant request budgets of the /v1 API (tenantlimit.c): one token
 * bucket per tenant, kept in the host context (core->tenantlimit), so one
 * tenant's flood is refused without slowing another's requests.
 * Thread-safe; never sleeps. */
#ifndef AH_TENANTLIMIT_H
#define AH_TENANTLIMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct ah_tenantlimit ah_tenantlimit;

/** Buckets refilled at `rate` requests per second, each holding at most
 *  `burst` tokens (a new tenant starts full). rate 0: no limit (every take
 *  succeeds); burst 0 counts as 1. NULL when out of memory. */
ah_tenantlimit *ah_tenantlimit_new(unsigned rate, unsigned burst);
/** NULL is allowed. */
void ah_tenantlimit_free(ah_tenantlimit *t);

/** Takes one request token of tenant_id without waiting. true: the request
 *  may go on. false: the tenant is over its budget; *retry_after_s (may be
 *  NULL) receives the whole seconds (at least 1) until a token is there.
 *  When memory for a new tenant's bucket cannot be had the request goes on
 *  (a limiter must not turn an allocation failure into an outage). */
bool ah_tenantlimit_take(ah_tenantlimit *t, int64_t tenant_id, unsigned *retry_after_s);
/** As ah_tenantlimit_take, without taking the token: whether one is there
 *  (for work done before the request's handler takes it). */
bool ah_tenantlimit_check(ah_tenantlimit *t, int64_t tenant_id, unsigned *retry_after_s);

#endif
