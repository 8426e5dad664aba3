/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The inbound HTTP server on libmicrohttpd 0.9.75.
 *
 * The server reads request bodies itself (no post processor), refuses
 * bodies over the limit with 413 before reading them, refuses requests whose
 * Content-Length and Transfer-Encoding conflict (400), and dispatches by
 * method and path through a route table that the core and plugins register
 * into. Handlers run on the server's threads and answer before they return,
 * or suspend the request (ah_ex_suspend) so that another thread answers it
 * later without holding a server thread meanwhile, or detach it
 * (ah_ex_detach) so that another thread handles all of it.
 * Every error is {"error":{"code":"...","message":"..."}}.
 */
#ifndef AH_HTTPD_H
#define AH_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

typedef struct ah_httpd ah_httpd;
/* One request/response; the SDK names it too (opaque there). */
typedef struct ah_http_exchange ah_http_exchange;
/* A suspended request, answered later from any thread (ah_ex_suspend). */
typedef struct ah_ex_pending ah_ex_pending;

/** Handles one request; must answer with one of the ah_ex_respond* calls. */
typedef void (*ah_http_handler)(void *arg, ah_http_exchange *ex);

typedef struct ah_httpd_opts {
    const char *host;  /* bind address, "127.0.0.1" */
    uint16_t port;     /* 0: any free port (see ah_httpd_port) */
    size_t max_body;   /* bytes; 0: 1 MiB */
    /* Bytes of request bodies the server holds at once, all connections
     * together; a body past it is answered 503 overloaded (and its
     * connection closed). 0: AH_HTTPD_BODY_BUDGET, or 4 x max_body. */
    size_t body_budget;
    /* Of which one client address (an IPv6 client: its /64) may hold at
     * once; a body past it is answered 503 overloaded as above. 0: a
     * quarter of body_budget (at least max_body). */
    size_t body_per_client;
    int threads;       /* worker threads of the server; < 1: 1 */
    /* PEM text (not paths), both or neither; copied by ah_httpd_new. */
    const char *tls_cert_pem;
    const char *tls_key_pem;
    /** Called after every answered request (for the metrics and the log),
     *  on a server thread, once the response is sent or the connection
     *  ended; the exchange (status, method, path, elapsed) is readable but
     *  must not be answered. May be NULL. */
    void (*on_done)(void *arg, const ah_http_exchange *ex);
    void *on_done_arg;
    /** @since admin listener: with use_listen_fd, listen_fd is a socket the
     *  caller created, bound and put in listening state (e.g. AF_UNIX); host
     *  and port are then ignored and the server owns the fd from
     *  ah_httpd_new on (closed by ah_httpd_free, also when never started). */
    bool use_listen_fd;
    int listen_fd;
    /** The connection guard (conntrack.h); 0 takes the default of each.
     *  At most max_connections open (4096) and max_connections_per_client
     *  from one client address (256); the rest are answered 503
     *  too_many_connections and closed. A request's headers must arrive
     *  within header_timeout_ms of the connection (or of the previous
     *  answer on a kept-alive one: 60 s) whatever bytes trickle in (10000),
     *  and its body at min_body_rate bytes/s on average after the same grace
     *  (1024); past that the connection is answered 408 request_timeout and
     *  closed. */
    unsigned max_connections;
    unsigned max_connections_per_client;
    long header_timeout_ms;
    unsigned min_body_rate;
    /** A cookie this server's handlers never see in the Cookie header
     *  (ah_ex_header, ah_ex_each), e.g. the console's session on the
     *  public listener: a browser sends a host's cookies to each of its
     *  ports, and plugin routes read headers. NULL: none. At most 63
     *  bytes; copied. */
    const char *hidden_cookie;
} ah_httpd_opts;

enum {
    AH_ROUTE_EXACT = 0,
    AH_HTTPD_PREFIX = 1u << 0, /* path is a prefix ("/v1/jobs/" serves "/v1/jobs/x") */
};

/** Creates a stopped server (copies what it needs from opts). NULL with a
 *  message in err on error. */
ah_httpd *ah_httpd_new(const ah_httpd_opts *opts, char *err, size_t errlen);
/** Whether ah_httpd_route would take path with flags: an absolute path,
 *  literal, or a template whose placeholders are whole segments {name}
 *  (letters, digits, '_'; each name once); a prefix route has none. */
bool ah_httpd_route_valid(const char *path, unsigned flags);
/** Registers a route; later registrations of the same method+path replace
 *  earlier ones (for templates, the same pattern: placeholder names do not
 *  count). Method "*" matches any. Thread-safe, also while running. path
 *  must start with '/'; method and path are copied. 0 on success, -1 on
 *  error (also for a malformed template, or a placeholder in a prefix route).
 *
 *  Three kinds of route, by path:
 *  - exact: "/v1/jobs" serves that path only;
 *  - templated: a path with {name} segments ("/v1/jobs/{id}",
 *    "/v1/applications/{id}/stage"). Each placeholder is a whole segment
 *    and matches exactly one non-empty segment of the (unescaped) request
 *    path; literal segments match byte for byte, and the segment count must
 *    be equal, so "/v1/jobs/x/" (a trailing empty segment) and "/v1/jobs//x"
 *    match nothing. The path is unescaped before it is split, as for every
 *    route, so "%2F" separates segments like '/'. Names are [A-Za-z0-9_]+
 *    (at most 63 bytes), distinct within a route; at most 8 placeholders
 *    and 32 segments. The handler reads the values with ah_ex_param;
 *  - prefix (AH_HTTPD_PREFIX): "/v1/bus/" serves every path that starts
 *    with it; ah_ex_subpath is the rest.
 *
 *  Matching, deterministic whatever the registration order:
 *  1. an exact route for the path (a named method before "*");
 *  2. else the most specific template that matches the path: more literal
 *     segments first, then (same count) the one whose first literal
 *     segment comes earlier ("/a/b/{x}" before "/a/{x}/c"); among the
 *     routes of that one pattern, a named method before "*";
 *  3. else prefix routes, longest first (at equal length a named method
 *     before "*").
 *  Exact and templated paths name resources: the most specific pattern that
 *  matches the path owns it, and when it does not serve the method a less
 *  specific template is not tried ("/v1/applications/bulk-reject" never
 *  reaches "/v1/applications/{id}"); prefix routes (3.) still are.
 *  No route: 405 method_not_allowed with Allow listing the methods of the
 *  owner and of the matching prefix routes when there are any, else 404
 *  not_found. */
int ah_httpd_route(ah_httpd *h, const char *method, const char *path,
                   unsigned flags, ah_http_handler fn, void *arg);
/** Removes every route registered with this arg (plugin unload) and waits
 *  until no handler call with that arg is still running, so arg may be
 *  freed once it returns. Must not be called from such a handler. */
void ah_httpd_unroute_arg(ah_httpd *h, void *arg);
/** Binds opts->host:port (host only) and starts the worker threads.
 *  0, or -1 with a message in err. */
int ah_httpd_start(ah_httpd *h, char *err, size_t errlen);
/** Serves fd, a connected stream socket, as if the listener had accepted it
 *  from the client at sa: the connection guard admits it (its limits and
 *  deadlines apply) and the server owns fd from here on (closed at once
 *  when refused). For callers that make the connection themselves, such as
 *  the fuzz harness (tests/fuzz/fuzz_httpd.c), which hands over one end of
 *  a socketpair. 0, or -1 (fd closed) when the server is not running or is
 *  quiescing. */
int ah_httpd_add_socket(ah_httpd *h, int fd, const struct sockaddr *sa, socklen_t sl);
/** The bound port (useful with port 0); 0 before a successful start. */
uint16_t ah_httpd_port(const ah_httpd *h);
/** Stops accepting new connections (the listening socket is closed) while
 *  the connections already accepted are still served: connections the
 *  kernel had completed are taken over first, and every answer from now on
 *  carries "Connection: close". For a graceful stop, follow with
 *  ah_httpd_wait_idle and ah_httpd_free. 0, or -1 when the server is not
 *  running. */
int ah_httpd_quiesce(ah_httpd *h);
/** After a drain (ah_httpd_quiesce, ah_httpd_wait_idle): a request that
 *  begins from now on (on a kept-alive connection) is answered 503
 *  shutting_down and its connection closed, not served while the daemon
 *  stops what it would need. One that began before is served: wait for it
 *  with ah_httpd_wait_idle. */
void ah_httpd_refuse_new(ah_httpd *h);
/** Requests whose request line was read and whose answer is not yet sent
 *  (suspended ones included). */
long ah_httpd_inflight(const ah_httpd *h);
/** Waits until no request is in flight and every accepted connection has
 *  begun its first request (or closed), or timeout_ms passes; true when
 *  idle. A kept-alive connection with nothing sent counts as idle. */
bool ah_httpd_wait_idle(ah_httpd *h, long timeout_ms);
/** Stops accepting, lets running handler calls return, answers every
 *  suspended request whose answer is not decided 503 shutting_down (their
 *  later ah_ex_resume_* calls return -1), closes the connections and frees.
 *  NULL is allowed. */
void ah_httpd_free(ah_httpd *h);

/* --- the exchange, for handlers -------------------------------------- */
/* An exchange is owned by the server and valid until the handler returns
 * (and during on_done). Returned strings are borrowed for as long. */
/** The request method ("GET"). */
const char *ah_ex_method(const ah_http_exchange *ex);
/** The request path, unescaped, without the query string. */
const char *ah_ex_path(const ah_http_exchange *ex);
/** Path remainder after a prefix route's prefix ("" for exact routes). */
const char *ah_ex_subpath(const ah_http_exchange *ex);
/** The pattern of the route that took the request, as registered: the
 *  path of an exact route, a template with its {name} placeholders, a
 *  prefix route's prefix followed by "*". "" when no route took it (the
 *  request was answered before its route was looked up, or none matched).
 *  Never the request's own path beyond what the route names, so that it
 *  is safe to log and count (paths carry ids and tokens). Valid during
 *  on_done. */
const char *ah_ex_route(const ah_http_exchange *ex);
/** The segment a templated route's {name} placeholder matched (unescaped,
 *  like ah_ex_path; never empty, never holds '/'), or NULL when the route
 *  has no such placeholder. Borrowed until the handler returns (NULL in
 *  on_done). */
const char *ah_ex_param(const ah_http_exchange *ex, const char *name);
/** Request header (name case-insensitive) or NULL. */
const char *ah_ex_header(ah_http_exchange *ex, const char *name);
/** The value of the request's cookie `name` (libmicrohttpd parses the
 *  Cookie header), or NULL. */
const char *ah_ex_cookie(ah_http_exchange *ex, const char *name);
/** Query parameter, unescaped, or NULL. */
const char *ah_ex_query(ah_http_exchange *ex, const char *name);
/** Every query parameter, unescaped, in the order received, encoded
 *  unambiguously (each name and value length-prefixed; a name without
 *  '=' differs from one with an empty value): for comparing two requests'
 *  queries, not for display. "" when there is none. malloc'd; NULL when out
 *  of memory. */
char *ah_ex_query_canonical(ah_http_exchange *ex);
/** Calls cb for every request header (query false) or query parameter
 *  (query true, unescaped; value NULL for a name without '=') in the order
 *  received, until cb returns false. Only on the request's server thread,
 *  like ah_ex_header, or on any one thread once detached (ah_ex_detach). */
void ah_ex_each(ah_http_exchange *ex, bool query,
                bool (*cb)(void *arg, const char *name, const char *value), void *arg);
/** The peer address as text ("127.0.0.1", "::1"; v4-mapped v6 as v4). */
const char *ah_ex_client_ip(const ah_http_exchange *ex);
/** The body (NUL-terminated for convenience, may hold NULs; "" if none). */
const char *ah_ex_body(const ah_http_exchange *ex, size_t *len);
/** Parses the body as JSON (depth and size limited); on failure answers 400
 *  invalid_json itself and returns NULL. Owned by the exchange. */
const cJSON *ah_ex_json(ah_http_exchange *ex);
/* After NULL from ah_ex_json the exchange is answered: just return. */
/** The status answered so far (0: none yet). */
int ah_ex_status(const ah_http_exchange *ex);
/** Seconds since the request line arrived. */
double ah_ex_elapsed_s(const ah_http_exchange *ex);
/** Handler-owned scratch pointer (e.g. the authenticated tenant). */
void ah_ex_set_user(ah_http_exchange *ex, void *p);
void *ah_ex_user(const ah_http_exchange *ex);
/** A short label the handler gives the request (the authenticated tenant's
 *  name; copied, truncated to 71 bytes), for the on_done hook. "" unless set. */
void ah_ex_set_tag(ah_http_exchange *ex, const char *tag);
const char *ah_ex_tag(const ah_http_exchange *ex);

/* Responding: a handler answers exactly once; a second answer is refused
 * (-1; an assert in debug builds). A handler that returns without answering
 * gets 500 internal_error sent for it. All return 0 or -1. */
/** Answers with `body` serialised as application/json (transferred, also
 *  on error; NULL: no body). */
int ah_ex_respond_json(ah_http_exchange *ex, int status, cJSON *body);
/** Answers with raw bytes (copied); content_type NULL: no Content-Type. */
int ah_ex_respond(ah_http_exchange *ex, int status, const char *content_type,
                  const char *body, size_t len);
/** Answers {"error":{"code":code,"message":...}} (message printf-style,
 *  truncated to 511 bytes). */
int ah_ex_error(ah_http_exchange *ex, int status, const char *code,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/** Adds a response header (before responding). */
int ah_ex_add_header(ah_http_exchange *ex, const char *name, const char *value);
/** The value of the first header `name` (any case) added to the answer
 *  with ah_ex_add_header, or NULL. */
const char *ah_ex_added_header(const ah_http_exchange *ex, const char *name);

/* Suspending: a handler that would wait (a plugin call on the bus) hands
 * the request to whoever will answer it and returns at once, so that the
 * server thread serves other requests meanwhile.
 *
 *   ah_ex_pending *p = ah_ex_suspend(ex, timeout_ms, "no reply to x within ...");
 *   if (p == NULL) { answer now (out of memory); return; }
 *   start the work, whose completion (any thread) calls once
 *   ah_ex_resume_json(p, 200, body) or ah_ex_resume_error(p, ...); return.
 *
 * A suspended request counts as in flight (ah_httpd_inflight,
 * ah_httpd_wait_idle) until its answer is sent, and keeps its route's
 * reference (ah_httpd_unroute_arg waits for it). The after hook
 * (ah_httpd_set_hooks) runs once the completion's answer is queued, on a
 * server thread, so it sees the final answer. */
/** Suspends the request being handled; only from its handler (not from a
 *  hook), before it answered. After it, the handler and everyone else must
 *  not answer or touch ex: the completion answers through the returned
 *  handle, exactly once, and everything it needs from the request (body,
 *  headers, params) must be copied before the handler returns. With
 *  timeout_ms > 0 a request not answered within it (checked about every
 *  second) is answered 504 {"error":{"code":"timeout","message":
 *  timeout_msg}} (copied). NULL when out of memory or misused (ex still
 *  unanswered, answer it yourself). */
ah_ex_pending *ah_ex_suspend(ah_http_exchange *ex, long timeout_ms, const char *timeout_msg);
/** ah_ex_suspend for work that may not have started by the deadline (a
 *  request still queued for a worker): at the deadline abandon(arg) is
 *  called first, on the server's thread under its lock of pending
 *  requests (it must be quick and call nothing of the server); when it
 *  returns true (the work had not started and now never will) the request
 *  is answered 503 {"error":{"code":"overloaded","message":abandon_msg}}
 *  instead of the 504: nothing was done, the client may send it again.
 *  `arg` must stay valid until the request is answered. */
ah_ex_pending *ah_ex_suspend_abandon(ah_http_exchange *ex, long timeout_ms,
                                     const char *timeout_msg, bool (*abandon)(void *arg),
                                     void *arg, const char *abandon_msg);
/** Answers a suspended request with `body` serialised as application/json
 *  (transferred, also on error; NULL: no body), from any thread, and
 *  consumes p (which must not be used again). 0, or -1 when the request
 *  was already answered (timeout, shutdown): the body is dropped. May be
 *  called from inside the handler itself (a completion that ran at once). */
int ah_ex_resume_json(ah_ex_pending *p, int status, cJSON *body);
/** As ah_ex_resume_json with {"error":{"code":code,"message":...}}
 *  (message printf-style, truncated to 511 bytes). */
int ah_ex_resume_error(ah_ex_pending *p, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Holding: a handler whose answer may go out only once something else
 * happened (its writes committed by the store's group commit) answers as
 * usual, but the answer is kept until the completion lets it go:
 *
 *   ah_ex_pending *p = ah_ex_hold(ex);      (before answering)
 *   ... answer with ah_ex_respond*, ah_ex_error, headers ...; return.
 *   later, any thread, once: ah_ex_release(p) sends it, or
 *   ah_ex_release_error(p, 503, "store_unavailable", "...") sends that
 *   error instead.
 *
 * ah_ex_status and the captured body (ah_ex_capture_response) show the held
 * answer; the request is suspended (in flight) until released, and the
 * after hook sees what was finally sent. No deadline: the completion must
 * always release. NULL as ah_ex_suspend. */
ah_ex_pending *ah_ex_hold(ah_http_exchange *ex);
/** Sends a held answer. Consumes p. 0, or -1 when the request was answered
 *  otherwise already (shutdown). */
int ah_ex_release(ah_ex_pending *p);
/** Sends {"error":{"code":code,"message":...}} with status instead of the
 *  held answer. Consumes p. As ah_ex_release. */
int ah_ex_release_error(ah_ex_pending *p, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Detaching: a handler whose work may take long (a plugin's route, which
 * may call a provider or wait on an isolated plugin process) moves the
 * whole request to another thread, so that the server thread serves other
 * requests meanwhile:
 *
 *   ah_ex_pending *p = ah_ex_detach(ex);    (from the handler, unanswered)
 *   hand ex and p to another thread; return.
 *   that thread: uses ex as a handler would (every accessor, ah_ex_json,
 *   answering, ah_ex_add_header); the answer is held as with ah_ex_hold;
 *   then, once: ah_ex_release(p) (or ah_ex_release_error), possibly later
 *   and from yet another thread (a group commit), and, once it no longer
 *   touches ex: ah_ex_detach_end(p).
 *
 * ah_ex_detach copies the headers, cookies and query parameters (MHD's
 * own accessors are valid only on the connection's thread) and the client
 * address; ah_ex_header, ah_ex_cookie, ah_ex_query, ah_ex_each and
 * ah_ex_query_canonical read the copy from then on. The answer goes out
 * after both calls, whichever comes last; an answer decided meanwhile by
 * the shutdown (503 shutting_down) waits for ah_ex_detach_end too, and
 * ah_httpd_free waits for it. The route's reference is kept as for a
 * suspended request. NULL as ah_ex_suspend (ex still unanswered). */
ah_ex_pending *ah_ex_detach(ah_http_exchange *ex);
/* A detached exchange may still be suspended, by the thread that uses it
 * (not by the handler that detached it):
 * ah_ex_suspend then returns the detached p itself, its deadline set from
 * now, and hands its answer to that completion (ah_ex_resume_*), which
 * consumes the part ah_ex_release would have; once per exchange, only
 * while unanswered. ah_ex_detach_finish knows which of the two applies. */
/** The thread that used a detached exchange as a handler is done with it:
 *  the answer it gave goes out (ah_ex_release), unless it suspended the
 *  exchange (a completion answers), then ah_ex_detach_end(p). */
void ah_ex_detach_finish(ah_http_exchange *ex, ah_ex_pending *p);
/** The detached exchange is no longer used by the caller (see ah_ex_detach).
 *  Releases the caller's part of p; call it exactly once, after or before
 *  ah_ex_release. */
void ah_ex_detach_end(ah_ex_pending *p);
/** As ah_ex_detach_finish (the handler's own answer is released unless a
 *  completion was handed it), but the caller's part is not ended there:
 *  once the answer is decided (released, resumed, timed out, shutting
 *  down) fn(arg, now) is called, at once on this thread when it is decided
 *  already (now true), else by whoever decides it (a completion, the
 *  acceptor's deadline check, the shutdown; now false), which must not
 *  block on it. fn reads the decided answer (ah_ex_decided) and ends with
 *  ah_ex_detach_end(p), possibly later from another thread; the answer
 *  goes out only then. For work that must be done with the answer before
 *  the client sees it (storing an Idempotency-Key's outcome). */
void ah_ex_detach_gate(ah_http_exchange *ex, ah_ex_pending *p, void (*fn)(void *arg, bool now),
                       void *arg);
/** The decided answer of a detached exchange whose caller's part is not
 *  ended (see ah_ex_detach_gate): its status, and its body in *body
 *  (malloc'd, NUL-terminated, *len bytes; the handler's own answer only
 *  when ah_ex_capture_response was asked before it answered, else -1).
 *  0 when not decided; -1 when out of memory. */
int ah_ex_decided(const ah_http_exchange *ex, ah_ex_pending *p, char **body, size_t *len);
/** Runs the matched route's handler on an exchange the before hook
 *  detached (see ah_http_before), from the thread that took it over. The
 *  handler may answer, suspend (handing the answer to a completion) or
 *  use ah_rest-style offloading, which then runs in place (ah_ex_detach is
 *  NULL on an exchange detached already). */
void ah_ex_call_route(ah_http_exchange *ex);

/** Maps a stable error code to its HTTP status (unsupported_capability ->
 *  501, invalid_request -> 400, ...); 500 when unknown. */
int ah_http_status_for_code(const char *code);


/* --- additions ------------------------------------------------------- */
/** Runs before a matched route's handler (server thread); returns true when
 *  it answered the exchange itself, and the handler is then skipped. It
 *  may instead detach the exchange (ah_ex_detach) and hand it to another
 *  thread, which runs the handler (ah_ex_call_route) or answers; the after
 *  hook is then not called for it (the hook's owner does that part, e.g.
 *  with ah_ex_detach_gate). */
typedef bool (*ah_http_before)(void *arg, ah_http_exchange *ex);
/** Runs right after a matched route's handler returned, or, when it
 *  suspended the request, once the completion's answer is queued (on a
 *  server thread either way): the exchange is answered (ah_ex_status,
 *  ah_ex_response_body). */
typedef void (*ah_http_after)(void *arg, ah_http_exchange *ex);
/** Installs one pair of request hooks (either may be NULL; replaces the
 *  previous pair). Used by the idempotency keys (idempotency.c). Set it
 *  before ah_httpd_start; arg must outlive the server. */
void ah_httpd_set_hooks(ah_httpd *h, ah_http_before before, ah_http_after after, void *arg);
/** Calls cb for every registered route (exact ones in no particular order,
 *  then templated ones in precedence order, with their {name} path, then
 *  prefix routes, longest first) under the table's read lock: cb must
 *  not register routes. flags is AH_HTTPD_PREFIX or 0. */
void ah_httpd_each_route(ah_httpd *h,
                         void (*cb)(void *arg, const char *method, const char *path,
                                    unsigned flags),
                         void *arg);
/** Asks the server to keep a copy of the body this exchange answers with
 *  (call before the handler answers, e.g. from a before hook). */
void ah_ex_capture_response(ah_http_exchange *ex);
/** The answered body kept by ah_ex_capture_response (NUL-terminated), or
 *  NULL (not captured, not answered yet, or no memory). */
const char *ah_ex_response_body(const ah_http_exchange *ex, size_t *len);

#endif
