/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operators' listener: a second HTTP server, apart from the product's
 * API, on a Unix socket (mode 0600; default atshub.sock in key_file's
 * folder) and optionally on a TCP port ([admin] listen, every request with
 * "Authorization: Bearer <token_file's content>"). It serves the admin API
 * (JSON; errors {"error":{"code","message"}}) and the metrics:
 *
 *   GET    /admin/plugins                       plugins, versions, generations, in-flight
 *   POST   /admin/plugins/{name}/reload         {"path"?}: hot swap
 *   POST   /admin/reconcile                     what SIGHUP does
 *   GET    /admin/tenants                       POST {"name"}  DELETE /admin/tenants/{name}
 *   GET    /admin/connections[?tenant=T]
 *   POST   /admin/connections                   {"tenant","plugin","name","settings"?}
 *   PATCH  /admin/connections/{t}/{n}           {"settings":{KEY:VALUE}}
 *   POST   /admin/connections/{t}/{n}/enable | /disable | /rotate {"key"}
 *   DELETE /admin/connections/{t}/{n}
 *   POST   /admin/connections/{t}/{n}/call/{topic}   one bus request
 *   GET    /admin/instances                     instances on the store, their leases
 *   GET    /admin/plugins?settings=NAME         one plugin with its settings table
 *   GET    /admin/syncs[?tenant=T]              per connection: the sync started here (syncs.h)
 *   POST   /admin/syncs/{t}/{n}                 {"type"?}: sync now (202)
 *   GET    /admin/log?tenant=&source=&action=&status=&since=&until=&limit=
 *   GET    /admin/webhooks[?tenant=T]           (a page: &limit=&cursor=, by endpoint id)
 *   GET    /admin/webhooks/{id}/deliveries
 *   POST   /admin/webhooks/{id}/enable | /disable
 *   GET    /admin/events?tenant=T[&after=&limit=&types=]   as GET /v1/events
 *   GET    /admin/recent                        the last hour per minute (metrics.h)
 *   POST   /admin/console/codes                 a console login link (token or socket only)
 *   GET    /metrics                             Prometheus text format
 *
 * On the TCP listener, /console/ serves the operator console (console.h),
 * whose session cookie stands in for the token (with its CSRF token for
 * changes) on every route above but /admin/console/codes.
 *
 * Changes take effect at once: the handler re-reads the connection table
 * before it answers.
 */
#ifndef AH_ADMIN_H
#define AH_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

typedef struct ah_core ah_core;
typedef struct ah_admin ah_admin;

/** The admin socket path cfg names (or the default); -1 when it is off or
 *  too long. */
int ah_admin_socket_path(const ah_config *cfg, char *out, size_t outlen);

/** Starts the listener(s) into core->admin. A socket file left by a
 *  daemon that died is replaced; one a live daemon answers on is refused.
 *  0, or -1 with err. */
int ah_admin_start(ah_core *core, char *err, size_t errlen);
/** Stops accepting new admin connections (drain). NULL-safe. */
void ah_admin_quiesce(ah_core *core);
/** Requests in flight on the listener(s) (ah_httpd_inflight; suspended and
 *  detached ones included); 0 when none runs. For tests. */
long ah_admin_inflight(ah_core *core);
/** The most connections whose syncs GET /admin/syncs keeps (default 4096;
 *  ah_syncs_set_max). For tests. */
void ah_admin_set_syncs_max(ah_core *core, size_t max);
/** Stops the listener(s), removes the socket file, frees core->admin. */
void ah_admin_stop(ah_core *core);

/** Client side, for the CLI: one request to the running daemon named by
 *  cfg (its Unix socket, else its TCP listener with the token). Returns 0
 *  with the HTTP status and the malloc'd body, or -1 with err when no
 *  daemon answers ("no atshub daemon is running ..."). */
int ah_admin_call(const ah_config *cfg, const char *method, const char *path,
                  const char *body, long *status, char **resp, char *err, size_t errlen);

/** Tells systemd (Type=notify) about the daemon's state ("READY=1",
 *  "STOPPING=1", "RELOADING=1") through $NOTIFY_SOCKET; a no-op without it. */
void ah_sd_notify(const char *state);

#endif
