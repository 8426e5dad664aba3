/* SPDX-License-Identifier: Apache-2.0 */
/* Per-connection outbound request budgets (ratelimit.c): one token bucket
 * per connection, kept in the host context (core->ratelimit). Thread-safe. */
#ifndef AH_RATELIMIT_H
#define AH_RATELIMIT_H

#include <stdint.h>

#include "core.h"

typedef struct ah_ratelimit ah_ratelimit;

/** An empty set of buckets; NULL when out of memory. */
ah_ratelimit *ah_ratelimit_new(void);
/** NULL is allowed. */
void ah_ratelimit_free(ah_ratelimit *t);

/** Takes one request token of connection c (its plugin desc), sleeping
 *  until one is available and until the pause of the connection's last
 *  429 has passed. The rate is the plugin's declared rate_limit_rps,
 *  lowered (never raised) by the connection's setting rate_limit_rps,
 *  halved for 30 s after each 429; without either, requests are not paced
 *  (only paused after a 429). */
void ah_ratelimit_take(ah_core *core, const ah_conn *c, const ah_plugin_descriptor *desc);
/** The provider answered 429 for connection conn_id, with Retry-After
 *  retry_after_ms (-1: none, taken as 1 s; capped at [outbound]
 *  backoff_max_ms): every request of the connection waits until then, and
 *  a paced connection's rate is halved for 30 s. */
void ah_ratelimit_throttled(ah_core *core, int64_t conn_id, long retry_after_ms);
/** The tokens a paced connection has taken (its attempts that went out,
 *  or will); 0 for one not paced. */
unsigned long ah_ratelimit_taken(ah_core *core, int64_t conn_id);
/** The current rate of a connection's bucket (0: none yet). */
double ah_ratelimit_rate(ah_core *core, int64_t conn_id);

#endif
