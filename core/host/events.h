/* SPDX-License-Identifier: Apache-2.0 */
/* Events: the outbox and ordered deliveries to subscribing plugins (events.c). */
#ifndef AH_EVENTS_H
#define AH_EVENTS_H

#include "core.h"

/* --- events (events.c) --------------------------------------------------- */
/** Publishes an event for a tenant: stored in the outbox with a pending
 *  delivery for every enabled connection whose plugin subscribes to it, in
 *  one transaction; deliveries then run on each connection's bus lane, in
 *  order, retried with backoff until the plugin handles them. `body`
 *  transferred. 0 when stored. */
int ah_core_publish(ah_core *core, int64_t tenant_id, const char *topic, cJSON *body);
/** Publishes n events of one tenant in one store transaction (all or
 *  nothing). Every bodies[i] is transferred (and set to NULL). */
int ah_core_publish_batch(ah_core *core, int64_t tenant_id, const char *const *topics,
                          cJSON **bodies, size_t n);
/** The same with each body as JSON object text (borrowed): for producers
 *  that write their bodies themselves (the sync engine), no tree each. */
int ah_core_publish_batch_text(ah_core *core, int64_t tenant_id, const char *const *topics,
                               const char *const *texts, size_t n);
/** Subscribes the delivery handler on the bus (at open). */
int ah_events_init(ah_core *core);
/** Kicks connections whose deliveries are due (the ticker, every second). */
void ah_events_tick(ah_core *core);

#endif
