/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The message bus: requests with exactly one reply, and events fanned out to
 * every subscriber, consumed by a pool of worker threads.
 *
 * Ordering: every message carries a lane key (the connection id for
 * requests, the tenant id for events). Messages of one lane are handled one
 * at a time, in the order they were sent; different lanes run in parallel.
 *
 * Fairness: a message may name its tenant (the _tenant variants). The
 * lanes of one tenant hold at most `tenant_share` workers at once; lanes
 * beyond it wait (in order) while other tenants' lanes run, and runnable
 * tenants take turns for the free workers. A lane belongs to the tenant of
 * the message that made it while it has messages; untagged messages
 * (AH_BUS_NO_TENANT) make a lane that is a tenant of its own (one lane never
 * holds more than one worker, so they are not capped).
 *
 * Blocking: a handler that says it blocks for long (base/block.h: the
 * host's HTTP client does, around a provider's answer and a retry's sleep)
 * counts meanwhile neither toward its tenant's share nor toward the
 * `workers` handlers that run at once; when no worker is idle a spare
 * thread takes the work that may then run. Its lane stays held (order
 * holds). A tenant's handlers in flight, blocked ones included, are at
 * most four times its share; spare threads at most 64, kept until the bus
 * is freed. Handlers waiting on one provider (what the wait names: its
 * scheme, host and port) are at most provider_threads: one more is
 * refused its wait, so that a provider's outage, which every tenant's
 * calls to it wait on, cannot take every thread either.
 *
 * The bus knows nothing about plugins: whoever creates it passes the handler
 * that serves requests (the router) and registers event subscribers.
 */
#ifndef AH_BUS_H
#define AH_BUS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef struct ah_bus ah_bus;

/** The one reply every request gets. */
typedef struct ah_reply {
    bool ok;
    cJSON *body;      /* ok: the reply body (owned by the reply) */
    char code[64];    /* !ok: stable error code */
    int http_status;  /* !ok: suggested HTTP status */
    char *message;    /* !ok: malloc'd human message */
    /* ok: something besides the body that the handler and the requester
     * agreed on (the records of a streamed page as text), owned by the
     * reply: ah_reply_free calls attachment_free on it. */
    void *attachment;
    void (*attachment_free)(void *attachment);
    /* !ok: the operation (the call's correlation id) of a write whose
     * outcome stayed unknown and that was kept for settling later
     * (AH_WRITE_OUTCOME_TYPE, host/core.h); "" otherwise. */
    char operation[64];
} ah_reply;

void ah_reply_free(ah_reply *r);
/** Makes r an error reply (message formatted). */
void ah_reply_error(ah_reply *r, const char *code, int http_status,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/** A request as the handler sees it. Borrowed for the handler's duration. */
/** No tenant: the message's lane is scheduled on its own. */
#define AH_BUS_NO_TENANT ((uint64_t)0)

typedef struct ah_msg {
    const char *topic;
    uint64_t tenant;      /* as sent, or AH_BUS_NO_TENANT */
    uint64_t lane;        /* ordering key */
    void *target;         /* opaque for the bus (the connection) */
    const char *correlation_id;
    const cJSON *body;
} ah_msg;

/** Serves one request on a worker thread; must fill *reply exactly once. */
typedef void (*ah_bus_handler)(void *arg, const ah_msg *msg, ah_reply *reply);
/** Receives a published event on a worker thread. Borrowed arguments. */
typedef void (*ah_event_handler)(void *arg, uint64_t lane, const char *topic,
                                 const cJSON *body);
/** Completion of an asynchronous request, on a worker thread; the callee
 *  owns *reply (free with ah_reply_free). */
typedef void (*ah_reply_cb)(void *arg, ah_reply *reply);

typedef struct ah_bus_opts {
    int workers;         /* >= 1 */
    ah_bus_handler handler;
    void *handler_arg;
    int default_timeout_ms; /* for ah_bus_request with timeout_ms 0 */
    unsigned max_queue;  /* messages queued in all, 0: 1<<20; beyond it sends fail */
    /** Workers the lanes of one tenant may hold at once; 0: max(1, workers / 2). */
    int tenant_share;
    /** Requests of one tenant queued or being handled (ah_bus_request*,
     *  ah_bus_send*; events and runs are not counted nor refused); past it
     *  the tenant's requests are refused "overloaded" (503) and other
     *  tenants' are not: a tenant whose provider hangs fills its own share,
     *  not the bus. 0: 4096. While every worker is busy, senders do not
     *  take the bus's lock and the refusal is the worker's that takes the
     *  request in: an asynchronous send then returns 0 and its callback
     *  gets the same 503 on that worker (when a worker sleeps, the send
     *  returns -1 and the callback runs on the caller's thread); a
     *  synchronous request returns -1 with it either way. */
    unsigned max_queue_tenant;
    /** Handlers that may wait on one provider at once (block.h: what
     *  ah_block_begin_on names), blocked workers and spare threads alike;
     *  one more is refused (the handler does not wait: the host's HTTP
     *  client answers its call 503, nothing sent), so that one provider's
     *  outage, which every tenant's calls to it wait on, leaves threads for
     *  the rest. 0: no limit. */
    int provider_threads;
} ah_bus_opts;

ah_bus *ah_bus_new(const ah_bus_opts *opts);
/** Stops accepting, lets the workers finish what is queued (every queued
 *  request is handled and answered as usual, except one whose caller gave
 *  up, which is skipped), joins them and frees the bus. Nobody waits for
 *  "shutting_down" here: it is the refusal of what is sent from then on
 *  (every synchronous request; anything else not sent by a handler being
 *  drained). */
void ah_bus_free(ah_bus *bus);

/** Subscribes to events whose topic equals `pattern`, or starts with its
 *  prefix when it ends in ".*" ("event.*" for all). Call before sending. */
int ah_bus_subscribe(ah_bus *bus, const char *pattern, ah_event_handler fn, void *arg);

/** Sends a request and waits for its reply, at most timeout_ms (0: the
 *  default). `body` is transferred (NULL: {}). On timeout: when its handler
 *  had started, the reply is an error with code "timeout" (504; the handler
 *  may still act) and the late reply is discarded; when no worker had taken
 *  it yet, it is never handled and the reply is "overloaded" (503: not
 *  sent, safe to send again). Always fills *reply; returns 0 when
 *  reply->ok. */
int ah_bus_request(ah_bus *bus, uint64_t lane, void *target, const char *topic,
                   cJSON *body, int timeout_ms, ah_reply *reply);

/** Sends a request; cb runs once with the reply (on a worker thread, or on
 *  the caller's thread when the bus refuses the message). 0 when queued:
 *  a tenant's request past max_queue_tenant may be accepted and refused
 *  on a worker (see there). */
int ah_bus_request_async(ah_bus *bus, uint64_t lane, void *target, const char *topic,
                         cJSON *body, ah_reply_cb cb, void *cb_arg);

/** A caller's hold on an asynchronous request it may give up on
 *  (ah_bus_request_async_gated). Zeroed (AH_BUS_GATE_QUEUED) before the
 *  send; it must stay valid until the request's callback has run. */
enum { AH_BUS_GATE_QUEUED = 0, AH_BUS_GATE_STARTED = 1, AH_BUS_GATE_ABANDONED = 2 };
typedef struct ah_bus_gate {
    atomic_int state;
} ah_bus_gate;

/** ah_bus_request_async_tenant with a gate (NULL: none). */
int ah_bus_request_async_gated(ah_bus *bus, uint64_t tenant, uint64_t lane, void *target,
                               const char *topic, cJSON *body, ah_reply_cb cb, void *cb_arg,
                               ah_bus_gate *gate);
/** The caller gives up on a gated request (its deadline passed): true when
 *  no worker had started its handler, which then never starts (the
 *  callback still runs once, with an "overloaded" 503 reply: not sent);
 *  false when the handler had started (it may act: wait for it, or answer
 *  "timeout"). Any thread; lock-free. */
bool ah_bus_gate_abandon(ah_bus_gate *g);

/** Publishes an event on `lane`: every matching subscriber is called, in
 *  subscription order, on one worker. `body` transferred. 0 when queued. */
int ah_bus_publish(ah_bus *bus, uint64_t lane, const char *topic, cJSON *body);

/** The same three, for `tenant` (AH_BUS_NO_TENANT: as above): its lanes
 *  share the workers with other tenants' (see Fairness). A handler must not
 *  wait synchronously for another request of its own tenant: with the
 *  tenant at its share that request waits for the handler (until the
 *  timeout). */
int ah_bus_request_tenant(ah_bus *bus, uint64_t tenant, uint64_t lane, void *target,
                          const char *topic, cJSON *body, int timeout_ms, ah_reply *reply);
int ah_bus_request_async_tenant(ah_bus *bus, uint64_t tenant, uint64_t lane, void *target,
                                const char *topic, cJSON *body, ah_reply_cb cb, void *cb_arg);
int ah_bus_publish_tenant(ah_bus *bus, uint64_t tenant, uint64_t lane, const char *topic,
                          cJSON *body);

/** Runs fn(arg) once on a worker, scheduled like a message of `tenant` on
 *  `lane` (ordered with that lane's messages, within the tenant's share):
 *  work that must not hold the thread that sends it (a plugin's inbound
 *  route, moved off an HTTP thread). `what` names it (as a topic would).
 *  0 when queued; -1 when refused (stopping, full), and fn is not called. */
int ah_bus_run_tenant(ah_bus *bus, uint64_t tenant, uint64_t lane, const char *what,
                      void (*fn)(void *arg), void *arg);
/** As ah_bus_run_tenant for the rest of work the bus admitted already (a
 *  request's last step once its answer is decided): queued even when the
 *  bus is full, since such work is bounded by what was admitted, and the
 *  thread that would do it instead (a completion's, an HTTP thread) must
 *  not. Refused only while stopping (off the workers) or out of memory. */
int ah_bus_run_admitted(ah_bus *bus, uint64_t tenant, uint64_t lane, const char *what,
                        void (*fn)(void *arg), void *arg);
/** Blocks until every queued message has been handled (tests, shutdown). */
void ah_bus_drain(ah_bus *bus);

/** Messages queued and not yet handled (metrics). */
unsigned long ah_bus_depth(ah_bus *bus);
/** Handlers blocked now (see Blocking above), and the threads started,
 *  workers and spares (metrics). */
void ah_bus_stats(ah_bus *bus, int *blocked, int *threads);
/** Waits refused since the bus started: handlers that would have waited on
 *  a provider provider_threads others already waited on (metrics). */
unsigned long ah_bus_waits_refused(ah_bus *bus);

/*
 * Details of the contract above (bus.c):
 * - ah_reply_error treats *r as output only: it overwrites every member
 *   without freeing what was there.
 * - Correlation ids are "<8 hex, random per bus>-<16 hex counter>".
 * - The pattern "*" matches every event topic; "a.*" matches "a.b" but
 *   neither "a" nor "ab".
 * - A request handler that fills nothing yields an "internal_error" (500)
 *   reply; a bus made without a handler answers every request with
 *   "unsupported_capability" (501).
 * - While ah_bus_free drains, handlers may still publish and send
 *   asynchronously (those messages are drained too); every other send, and
 *   every synchronous request, is refused with "shutting_down" (503).
 * - ah_bus_drain and ah_bus_free wait for the workers: never call them from
 *   a handler or callback.
 */

#endif
