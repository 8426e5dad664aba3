/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Counters and latency histograms for GET /metrics (Prometheus text format
 * 0.0.4). One ah_metrics lives in the ah_core; every function is
 * thread-safe (one mutex; the tables are small and updates are short).
 *
 * Series:
 *   atshub_http_requests_total{listener,method,route,status}   counter
 *   atshub_http_request_seconds{listener,method,route}         histogram
 *   atshub_plugin_calls_total{plugin,topic,result}             counter
 *   atshub_plugin_call_seconds{plugin,topic}                   histogram
 *   atshub_plugin_swaps_total{plugin,result}                   counter
 *   atshub_plugin_generation{plugin,version}                   gauge (render time)
 *   atshub_plugin_inflight{plugin}                             gauge (render time)
 *   atshub_sync_runs_total{tenant,connection,type,result}      counter
 *   atshub_sync_records_total{tenant,connection,type}          counter
 *   atshub_sync_lag_seconds{tenant,connection}                 gauge: now - end of
 *                                                              the last good sync
 *   atshub_bus_queue_depth, atshub_http_inflight               gauges (render time)
 * `route` is the registered pattern, never the raw path (paths carry ids
 * and webhook tokens): a template keeps its placeholders
 * ("/v1/jobs/{id}"), a prefix route is "PREFIX*"; a request no route
 * matched is "(unmatched)", one answered before any route was looked up
 * (413, 414, 431, a malformed path) "(unrouted)".
 */
#ifndef AH_METRICS_H
#define AH_METRICS_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "httpd.h"

/* The console's charts: per-minute counts over the last hour, kept apart
 * from the Prometheus series (which only grow): /v1 requests and errors
 * (status >= 400) per tenant (the tenant the request authenticated as; the
 * first AH_RECENT_TENANTS tenants get a ring each, later ones share one
 * named "(other)"), and records synced. */
#define AH_RECENT_MINUTES 60
#define AH_RECENT_TENANTS 256

typedef struct ah_metrics ah_metrics;
typedef struct ah_core ah_core;

/** NULL when out of memory. */
ah_metrics *ah_metrics_new(void);
void ah_metrics_free(ah_metrics *m);

/** The httpd on_done hook for the main listener (arg: the ah_metrics). */
void ah_metrics_http_done(void *arg, const ah_http_exchange *ex);
/** The same for the admin listener (listener="admin"). */
void ah_metrics_admin_http_done(void *arg, const ah_http_exchange *ex);
/** One bus request handled by a plugin (core_dispatch). */
void ah_metrics_call(ah_metrics *m, const char *plugin, const char *topic, bool ok,
                     double seconds);
/** One plugin load attempt that replaces (or adds) a generation. */
void ah_metrics_swap(ah_metrics *m, const char *plugin, bool ok);
/** One sync run of one record type ended (ok or not) with `records` records. */
void ah_metrics_sync(ah_metrics *m, const char *tenant, const char *connection,
                     const char *type, long records, bool ok);

/** `records` records committed by a sync page (any run: scheduled, API, CLI). */
void ah_metrics_records(ah_metrics *m, long records);
/** The last hour per minute: {"minutes":60,"last_minute":EPOCH_S,
 *  "tenants":[{"tenant","requests":[60],"errors":[60]}],"sync_records":[60]},
 *  oldest minute first. Transferred. */
cJSON *ah_metrics_recent_json(ah_metrics *m);

/** Everything above plus the gauges read from the core now, as Prometheus
 *  text. malloc'd; NULL when out of memory. */
char *ah_metrics_render(ah_core *core);

#endif
