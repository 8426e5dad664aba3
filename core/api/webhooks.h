/* SPDX-License-Identifier: Apache-2.0 */
/* Outbound webhooks to the product: endpoints, Standard Webhooks signatures, deliveries retried with backoff (webhooks.c). */
#ifndef AH_WEBHOOKS_H
#define AH_WEBHOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

/* --- state -------------------------------------------------------------- */

typedef struct ah_webhooks ah_webhooks;

/** Where deliveries may go and the client that makes them, kept in the host
 *  context (core->webhooks) by the daemon. NULL with err when
 *  [webhooks] allow_networks does not parse or memory runs out. */
ah_webhooks *ah_webhooks_new(const ah_config *cfg, char *err, size_t errlen);
/** NULL is allowed. */
void ah_webhooks_free(ah_webhooks *w);

/* --- webhooks (webhooks.c) ---------------------------------------------- */

/** Adds an endpoint for tenant_id. types: comma-separated topics or
 *  "prefix.*" patterns (NULL or "": every event). The secret ("whsec_" +
 *  base64 of 24 random bytes) is stored sealed with the host key and
 *  copied into secret_out (>= 64 bytes) to print once. New endpoints get
 *  the events published after they were added; a tenant has at most
 *  AH_WEBHOOK_MAX_PER_TENANT. 0, or with err
 *  AH_WEBHOOK_INVALID (defined below) for an argument refused (the URL,
 *  its destination, the types) and AH_STORE_ERR when the host failed
 *  (webhooks off, the secret not made or sealed, the store). */
int ah_webhook_add(ah_core *core, int64_t tenant_id, const char *url, const char *types,
                   int64_t *id_out, char *secret_out, size_t secret_len, char *err,
                   size_t errlen);
/** Endpoints as a JSON array (tenant_id 0: all tenants). Secrets are never
 *  included. NULL on error. */
cJSON *ah_webhook_list(ah_core *core, int64_t tenant_id);
/** A page of them, in id order: those whose id is greater than after_id (0:
 *  from the first), at most limit (0: every one). NULL on error. */
cJSON *ah_webhook_list_page(ah_core *core, int64_t tenant_id, int64_t after_id, int limit);
/** ah_webhook_update's and ah_webhook_rotate's answer to an argument they
 *  refuse (err says which); besides AH_STORE_OK, AH_STORE_NOT_FOUND (no such
 *  endpoint of tenant_id, unless 0) and AH_STORE_ERR (the store failed). */
#define AH_WEBHOOK_INVALID (-3)
/** The endpoints one tenant may have. */
#define AH_WEBHOOK_MAX_PER_TENANT 100
/** Changes endpoint id: url (checked as ah_webhook_add checks it: an http(s)
 *  URL whose host resolves to allowed addresses only), types (as for
 *  ah_webhook_add; "" means every event) and description (at most 1024
 *  bytes, no control characters); NULL keeps that one. */
int ah_webhook_update(ah_core *core, int64_t tenant_id, int64_t id, const char *url,
                      const char *types, const char *description, char *err, size_t errlen);
/** Deletes endpoint id and its delivery log: nothing more is sent to it. */
int ah_webhook_delete(ah_core *core, int64_t tenant_id, int64_t id);
/** Gives endpoint id a new secret (copied into secret_out, >= 64 bytes, to
 *  print once). For overlap_s seconds (0..604800; 0: none) deliveries are
 *  signed with both, "v1,<new> v1,<old>", so that a receiver can switch at
 *  any time in between; *until_out (>= 32 bytes, may be NULL) receives the
 *  end of the overlap ("" when none). */
int ah_webhook_rotate(ah_core *core, int64_t tenant_id, int64_t id, long overlap_s,
                      char *secret_out, size_t secret_len, char *until_out, char *err,
                      size_t errlen);
/** Enables (clearing the failure count: deliveries resume where they
 *  stopped) or disables endpoint id; tenant_id 0: any tenant.
 *  AH_STORE_NOT_FOUND when no such endpoint. */
int ah_webhook_set_enabled(ah_core *core, int64_t tenant_id, int64_t id, bool enabled);
/** The delivery log of endpoint id, newest first (at most limit). NULL when
 *  there is no such endpoint (of tenant_id, unless 0). */
cJSON *ah_webhook_deliveries(ah_core *core, int64_t tenant_id, int64_t id, int limit);
/** The same, telling why there is none: *rc AH_STORE_NOT_FOUND (no such
 *  endpoint) or another store error (the store could not be read). */
cJSON *ah_webhook_deliveries_rc(ah_core *core, int64_t tenant_id, int64_t id, int limit,
                                 int *rc);
/** Signs like Standard Webhooks: "v1," + base64(HMAC-SHA256(key, id + "." +
 *  ts + "." + body)), key being the base64-decoded part after "whsec_".
 *  out >= 64 bytes. 0 or -1. */
int ah_webhook_sign(const char *secret, const char *msg_id, const char *ts, const char *body,
                    size_t body_len, char *out, size_t outlen);
/** Starts the delivery pool: [webhooks] workers threads (the daemon,
 *  after ah_webhooks_new). 0 or -1 with err. */
int ah_webhooks_start(ah_core *core, char *err, size_t errlen);
/** Stops the pool: a pass under way ends after the event it is sending.
 *  Safe when not started. */
void ah_webhooks_stop(ah_core *core);
/** Hands the endpoints that are due to the pool (the ticker); returns at
 *  once, without waiting on any receiver. One pass at a time per endpoint,
 *  at most [webhooks] max_per_tenant per tenant. Does nothing before
 *  ah_webhooks_start. */
void ah_webhooks_tick(ah_core *core);
/** Prunes delivery log lines past [events] retention_days (the ticker). */
void ah_webhooks_prune(ah_core *core);
/** True when topic matches the comma-separated patterns (exact, "p.*", "*";
 *  NULL or "": everything). */
bool ah_topic_matches_list(const char *patterns, const char *topic);

/** The envelope an event travels in, for webhooks and the event log alike:
 *  {"id":"evt_<outbox id>","cursor":<outbox id>,"type","timestamp","data"}.
 *  malloc'd JSON text, or NULL. */
char *ah_event_envelope(int64_t outbox_id, const char *topic, const char *body,
                        const char *created_at);

#endif
