/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Isolated plugins: the daemon's side of a plugin that runs in a process of
 * its own (atshub-plugin-host, plugin_host.c), started with posix_spawn and
 * spoken to over a socket pair in frames (frame.h).
 *
 * The daemon never loads the plugin: the first process loads it (its
 * constructors and entry function run there), describes its descriptor
 * (mirror.h) and waits until the daemon has checked it before it runs init.
 * Every process loads the same bytes (the loader's private copy in memory,
 * handed over as a descriptor).
 *
 * What crosses the boundary in this version: the plugin's init and fini,
 * the connection's open and close, every capability operation (topic +
 * JSON body -> reply), the settle functions of its writes, event
 * deliveries to its subscriptions and inbound routes. While the child serves a call, the host API calls it
 * makes (HTTP, OAuth2, settings, records, events, logs) come back over the
 * same socket and run here, on the calling worker, through the daemon's own
 * host API table with the call's context: the daemon keeps the secrets, the
 * store and the tokens; the child sees only what its call asks for.
 * Inbound routes cross too (ah_isolate_route): the request line, the
 * caller's address, the headers, the query parameters and the body go with
 * the call, and with it (and with each connection conn_by_secret gives the
 * handler) the connection's settings that are neither SECRET nor HASHED,
 * read when the call starts, as a call reads them in process (secret ones
 * are asked for one by one). Its
 * answer (http_respond, _json: one-way, the handler does not wait) and its
 * conn_by_secret lookups travel back as host calls, served on the route's
 * thread against the daemon's own exchange, so that an atomic route's store
 * scope and its held answer work as in process. A connection
 * conn_by_secret opens meanwhile is opened in the route's child (nested in
 * the route's exchange): its context lives where the route runs. For a
 * plugin without open(), once a route's round trip showed which header or
 * query parameter carries the secret, the connection it names is looked up
 * before the route leaves (conn_hooks) and sent with it: the handler's
 * conn_by_secret for that key and value is answered in the child, and the
 * daemon takes the connection one-way, in order, before anything the
 * handler does with it (a connection changed meanwhile fails the route
 * AH_E_CONNECTION_CHANGED).
 *
 * Faults: a child that dies (signal or exit) answers every call in flight
 * `plugin_crashed` (503); a call past call_timeout_ms is answered `timeout`
 * (504) and the child killed (its other calls in flight: plugin_crashed); memory_max is the child's RLIMIT_AS, and a
 * child that dies at its limit is recorded as a memory crash. A dead child
 * is started again by the next call after a backoff (restart_backoff_ms,
 * doubled per crash up to 60 s; reset by a call that returns); calls before
 * then, and while the circuit is open (5 crashes within 60 s), are answered
 * `plugin_unavailable` (503) at once; the first call after the backoff is
 * the probe that closes the circuit when it returns. Every child is reaped
 * (waitpid on its own pid), every descriptor is O_CLOEXEC.
 *
 * A plugin runs in opts.processes processes, each with several calls in
 * flight: every frame of a call carries its id ("cid"), the thread that
 * waits reads the socket when no other does and hands other calls' frames
 * to them, and the plugin process serves calls on a small pool of threads
 * (plugin_host.c), so a slow or hung call does not hold up the others
 * (until its deadline kills the process). A process is sent at most
 * AH_FRAME_CALLS_MAX calls at once (its pool's threads): a call past them
 * waits in the daemon, unsent, telling the bus it waits on the process
 * (block.h, [core] provider_threads), rather than wait there for a thread
 * while its deadline runs out. A connection is pinned to one
 * process (round robin at its open: its context lives there). A route runs
 * in any process; a connection its conn_by_secret finds is opened once in
 * that process (as part of the route's call) and keeps a context there
 * too. Crashes, backoff and the circuit count for the plugin as a whole; a
 * crash costs only the calls of that process.
 *
 * One-way host calls: a route's answer (http_respond*) and publish send no
 * answer back. A publish the daemon refuses at once (its topic) is refused
 * in the plugin process first with the daemon's words; one the daemon's
 * store fails is logged on the call ("cannot publish ...: the event is
 * lost") where in process the plugin would have seen AH_ERR (and could only
 * log it: the record it announces is written). A publish, and an atomic
 * route's answer (held by the daemon until the route returns anyway), leave
 * with the call's next frame, in one write.
 */
#ifndef AH_ISOLATE_H
#define AH_ISOLATE_H

#include <stdbool.h>
#include <stdint.h>

#include <atshub/plugin.h>
#include <cjson/cJSON.h>

/* Error codes of isolated plugins (stable; HTTP status in the comment). */
#define AH_E_PLUGIN_CRASHED "plugin_crashed"         /* 503, retryable */
#define AH_E_PLUGIN_UNAVAILABLE "plugin_unavailable" /* 503, retryable */
/* A route's connection, sent ahead with it, changed before the route took it. */
#define AH_E_CONNECTION_CHANGED "connection_changed" /* 503, retryable */

typedef struct ah_isolate ah_isolate;

/* What the daemon's host layer lends an isolated plugin so that a route's
 * conn_by_secret is answered in the plugin's process without waiting for
 * the daemon (ah_isolate_route): the connection the secret names, looked up
 * as conn_by_secret does (HASHED setting, constant-time, enabled only) but
 * neither locked nor opened. The route's own conn_by_secret still runs in
 * the daemon, then, one-way; it must find the very connection peeked. */
typedef struct ah_isolate_conn_hooks {
    /* A call context of the route call's plugin's connection whose HASHED
     * setting `key` matches `presented` (its settings readable through
     * ->host->setting, its ->conn the connection), with a reference held
     * until unpeek; NULL when none. Any thread, no lock held. */
    ah_call *(*peek)(ah_call *route_call, const char *key, const char *presented);
    void (*unpeek)(ah_call *peeked);
} ah_isolate_conn_hooks;

typedef struct ah_isolate_opts {
    /* NULL: every conn_by_secret of a route waits for the daemon. */
    const ah_isolate_conn_hooks *conn_hooks;
    uint64_t memory_max;     /* RLIMIT_AS of the child, bytes; 0: none */
    long call_timeout_ms;    /* one call's deadline in the child (> 0) */
    long max_calls;          /* recycle the child after so many calls; 0: never */
    long restart_backoff_ms; /* first restart delay after a crash (> 0) */
    int processes;           /* processes serving the plugin (>= 1; 0: 1) */
    /* How long a call waits in the daemon for room in a full process (its
     * AH_FRAME_CALLS_MAX calls taken) before it is answered overloaded, not
     * sent: the callers' deadline ([core] request_timeout_ms), past which
     * nobody waits for its answer; less when its thread's scheduler knows
     * the caller's own deadline (ah_block_deadline_ms: a bus worker's
     * message). 0: as long as it takes, or that deadline. */
    long room_wait_ms;
    /* Names ("A,B") of the daemon's environment variables the child gets
     * besides ah_isolate_env_kept's; "" none. */
    char env[256];
} ah_isolate_opts;

/** Whether the child gets the daemon's environment entry `entry`
 *  ("NAME=value"): the locale, PATH, TZ, TMPDIR, the dynamic loader's,
 *  glibc's tunables, the sanitizers' and valgrind's settings, and the names
 *  listed in `extra` ("A,B"; may be NULL). Every other variable (a store
 *  URL with its password, a token an operator exported) stays in the
 *  daemon: the plugin process gets only what a call needs. */
bool ah_isolate_env_kept(const char *entry, const char *extra);

/** Starts the first plugin host process for the plugin file `path` (or, when
 *  fd >= 0, for the bytes of that descriptor, a private copy: each process,
 *  restarts included, loads it from its descriptor 4, and the isolate owns it
 *  from this call on, closing it when freed or refused; `path` then only
 *  names the plugin in messages), which
 *  loads it (its constructors and entry function run there) and describes
 *  its descriptor (ah_isolate_descriptor), then waits: the daemon checks
 *  the descriptor and calls ah_isolate_run, or frees. The daemon never
 *  loads the file itself. `host` is the daemon's host API table: the
 *  child's host API calls run through it. Returns NULL with err filled
 *  ("PATH: cannot open: ...", "PATH: no entry symbol ...", "PATH: isolated:
 *  the plugin process died while loading the plugin (...): signal SIGSEGV",
 *  "PATH: isolated: cannot start atshub-plugin-host: ..."). The program is
 *  found at $ATSHUB_PLUGIN_HOST, next to the running executable, or where
 *  the build or the install put it. */
ah_isolate *ah_isolate_start(const char *path, int fd, const ah_isolate_opts *opts,
                             const ah_host_api *host, char *err, size_t errlen);
/** The descriptor the first process described (mirror.h), borrowed. */
const cJSON *ah_isolate_descriptor(const ah_isolate *iso);
/** Runs init in the first process and starts the others (opts.processes);
 *  `name` is the plugin's (for messages). 0, or -1 with err filled ("PATH:
 *  init failed: ..."); then free the isolate. */
int ah_isolate_run(ah_isolate *iso, const char *name, char *err, size_t errlen);
/** Ends the child (end of stream: it runs fini and exits; killed when it has
 *  not within 2 s), reaps it and frees everything. NULL is fine. */
void ah_isolate_free(ah_isolate *iso);

/** The plugin's open() for call->conn in the child. *conn_ctx receives a
 *  daemon-side handle (never dereferenced by the plugin). On AH_ERR the
 *  failure is described through call->host->fail. Any worker thread. */
ah_result ah_isolate_open(ah_isolate *iso, ah_call *call, void **conn_ctx);
/** The plugin's close() in the child for a handle from ah_isolate_open,
 *  and frees the handle. Nothing is sent when the child that opened it is
 *  gone. */
void ah_isolate_close(ah_isolate *iso, void *conn_ctx);
/** Runs the operation of call->topic in the child with `body` (borrowed);
 *  *reply receives the plugin's reply (transferred) on AH_OK. A context
 *  made by an earlier child is opened again first. On AH_ERR the failure
 *  (the plugin's own, plugin_crashed, timeout, plugin_unavailable) is
 *  described through call->host->fail. */
ah_result ah_isolate_op(ah_isolate *iso, ah_call *call, const cJSON *body, cJSON **reply);

/** Runs the handler of route number `index` of the plugin's descriptor in
 *  the child for the inbound exchange `ex` (the daemon's, answered through
 *  call->host's http_* functions), on the connection's process when
 *  call->conn_ctx is set (a token route), any otherwise. Failures as
 *  ah_isolate_op (a crash or a deadline before the handler answered is the
 *  caller's to turn into the 503 / 504). */
ah_result ah_isolate_route(ah_isolate *iso, ah_call *call, int index, ah_http_exchange *ex);

/** Runs the settle function of write declaration number `index` of the
 *  plugin's descriptor (op_writes) in the child, like ah_isolate_op. */
ah_result ah_isolate_settle(ah_isolate *iso, ah_call *call, int index, const cJSON *body,
                            cJSON **reply);

/** Runs the handler of subscription number `index` of the plugin's
 *  descriptor in the child for the event `topic` with `body` (borrowed),
 *  like ah_isolate_op (same process, context and failures). */
ah_result ah_isolate_event(ah_isolate *iso, ah_call *call, int index, const char *topic,
                           const cJSON *body);

/** What operators see: {"pid" (the first running), "pids", "processes",
 *  "state" (running|restarting|circuit_open|stopped), "restarts", "crashes", "calls", "memory_max", "call_timeout_ms",
 *  "max_calls", "last_crash": null | {"cause", "kind" (signal|exit|timeout|
 *  memory|start), "signal", "at"}}. Transferred. */
cJSON *ah_isolate_json(ah_isolate *iso);
/** Notices processes that ended while idle (no call in flight, say a
 *  plugin's own thread crashed): reaped at once, their crash recorded (the
 *  plugin listing, /metrics) rather than left a zombie until a call finds
 *  it; the next call starts a process as after any crash. One poll of each
 *  idle process's socket; the daemon's ticker calls it every second. */
void ah_isolate_watch(ah_isolate *iso);
/** Crashes and restarts so far (for /metrics). */
void ah_isolate_counts(ah_isolate *iso, unsigned long *crashes, unsigned long *restarts);

/** Serves one host call frame `m` (with its tail; NULL and 0 for none) that
 *  a plugin process sent during a call other than a route's, on `call`, as
 *  the daemon does while it waits for that call's answer: returns the
 *  "host_reply" frame to send back (NULL out of memory) and its tail in
 *  *out_tail (malloc'd; NULL for none). A publish takes m's "body" (the
 *  caller still frees m). Everything in m and the tail comes from the
 *  plugin process and is checked here. The daemon's own wait
 *  serves host calls the same way (a route's too); this entry is for the
 *  fuzz target isolate_host (tests/fuzz). */
cJSON *ah_isolate_serve_host_call(ah_call *call, cJSON *m, unsigned char *tail,
                                  size_t tail_len, unsigned char **out_tail,
                                  size_t *out_tail_len);

#endif
