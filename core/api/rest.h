/* SPDX-License-Identifier: Apache-2.0 */
/* The REST surface: bearer-key authentication, /v1 registration and the plugins' inbound routes (rest.c). */
#ifndef AH_REST_H
#define AH_REST_H

#include "core.h"

/* --- REST (rest.c) ------------------------------------------------------- */
/** Authenticates a request's bearer tenant key (the hash compared in
 *  constant time) and takes one token of the tenant's request budget
 *  ([http] tenant_rate, tenant_burst; tenantlimit.h). Returns the tenant id
 *  and copies its name, or answers itself and returns -1: 401 unauthorized
 *  for a missing or wrong key, 429 rate_limited with Retry-After (whole
 *  seconds) for a tenant over its budget. Never waits. */
int64_t ah_rest_tenant(ah_core *core, ah_http_exchange *ex, char *name, size_t len);
/** Tenant id's request budget for ex, authenticated elsewhere (name: its
 *  name, or NULL): takes a token (take) or looks whether one is there;
 *  false with ex answered 429 rate_limited (and Retry-After) when none. */
bool ah_rest_budget(ah_core *core, ah_http_exchange *ex, int64_t id, const char *name, bool take);
/** Serves a /v1 request whose handler fn(core, ex) uses the store:
 *  authenticates the bearer key here (ah_rest_tenant, a memory lookup:
 *  401 and 429 are answered at once), then runs fn on a bus worker within
 *  the tenant's share of the workers (ah_bus_run_tenant), the request
 *  detached (ah_ex_detach) so that this server thread serves others
 *  meanwhile; 503 overloaded when the bus refuses. fn is written as a
 *  handler: its ah_rest_tenant returns the tenant found here (no second
 *  token), and it may end with ah_rest_forward. Runs fn here, in the
 *  caller's thread, without a bus or with [http] plugin_routes = inline. */
void ah_rest_offload(ah_core *core, ah_http_exchange *ex, ah_http_handler fn);
/** Runs fn(arg) once on a bus worker within the tenant's share, on a lane
 *  of its own (as ah_rest_offload runs a handler). 0 when queued; -1 when
 *  there is no bus, [http] plugin_routes = inline, or the bus refuses (fn
 *  is then not called). */
int ah_rest_run(ah_core *core, int64_t tenant, const char *what, void (*fn)(void *arg),
                void *arg);
/** As ah_rest_run for the last step of a request the bus admitted already
 *  (ah_bus_run_admitted): not refused when the bus is full. */
int ah_rest_run_admitted(ah_core *core, int64_t tenant, const char *what,
                         void (*fn)(void *arg), void *arg);
/** ah_rest_forward: answer with the reply body itself when it already has
 *  a "data" member (else it is wrapped like the rest). */
#define AH_REST_KEEP_DATA (1u << 0)
/** Sends one bus request to the tenant's connection without holding the
 *  server thread: suspends ex (ah_ex_suspend) and answers it from the bus
 *  worker that gets the reply: 200 {"data": reply body}, or the reply's
 *  error ({"error":{"code","message"}} with its status; 404 not_found for
 *  an unknown connection; 504 timeout past [core] request_timeout_ms). Call
 *  it last in a handler (ex is no longer the handler's afterwards); the
 *  idempotency hooks see the final answer. body transferred (NULL: answers
 *  500 out of memory); tenant, connection and topic are copied as needed
 *  before it returns. */
void ah_rest_forward(ah_core *core, ah_http_exchange *ex, const char *tenant,
                     const char *connection, const char *topic, cJSON *body, unsigned flags);
/** Registers /v1 routes and the plugins' inbound routes. */
int ah_rest_register(ah_core *core);
/** Frees the plugin route bindings (after the server stopped). */
void ah_rest_unregister(ah_core *core);
/** Makes `plugin`'s inbound routes on the running server follow its current
 *  generation (after a load, swap or unload): registers the routes it
 *  declares now, then removes the ones only the previous version declared
 *  (waiting for their running calls). One caller at a time (ops_lock).
 *  0, or -1 when a route cannot be added. */
int ah_rest_plugin_routes(ah_core *core, const char *plugin);

#endif
