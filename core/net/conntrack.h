/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The connection guard of the HTTP server: every open connection, its
 * client address and the deadline of the phase it is in, so that no client
 * can hold the listener with slow or idle sockets.
 *
 * - Admission: at most max_total connections in all and max_per_client per
 *   client address (an IPv6 client: per /64); a connection over either limit is answered 503
 *   (too_many_connections) and closed at once, so the kernel never keeps
 *   half-closed sockets queued behind a full server.
 * - Deadlines that bytes do not reset (a client trickling one byte at a time
 *   keeps an idle timeout alive forever): a new connection must complete its
 *   request headers within header_timeout_ms; a body must arrive at
 *   min_body_rate bytes per second on average after the same grace; a
 *   kept-alive connection must complete its next request's headers within
 *   idle_timeout_ms of the previous answer, and within header_timeout_ms
 *   of their start. A connection past its deadline
 *   is answered 408 (request_timeout) when it was inside a request (its
 *   request line read), and shut down, which makes the server thread that
 *   owns it close it.
 *
 * Thread use: admit and reap on the acceptor thread; the phase calls on the
 * server thread that owns the connection; claim and release from any.
 */
#ifndef AH_CONNTRACK_H
#define AH_CONNTRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct ah_conntrack ah_conntrack;
typedef struct ah_conn_entry ah_conn_entry;

typedef struct ah_conntrack_opts {
    unsigned max_total;      /* 0: 4096 */
    unsigned max_per_client; /* 0: 256 */
    long header_timeout_ms;  /* 0: 10000 */
    long idle_timeout_ms;    /* 0: 60000 */
    unsigned min_body_rate;  /* bytes per second; 0: 1024 */
    size_t max_body_per_client; /* bytes of request bodies one client may have
                                 * held at once (ah_conntrack_body_hold); 0: no limit */
    bool plain_text;         /* the socket carries HTTP in the clear (no TLS):
                              * refusals and timeouts may be answered on it */
} ah_conntrack_opts;

/** NULL when out of memory. Copies opts. */
ah_conntrack *ah_conntrack_new(const ah_conntrack_opts *opts);
/** Frees the table; entries still in it are freed too. NULL is allowed. */
void ah_conntrack_free(ah_conntrack *t);

/** A socket just accepted from a client at sa. Returns its entry, or NULL
 *  when a limit refuses it (or memory runs out): fd is then answered when
 *  possible and closed. */
ah_conn_entry *ah_conntrack_admit(ah_conntrack *t, int fd, const struct sockaddr *sa);
/** The server announced the connection on fd: returns the entry admitted
 *  for it (once), or NULL when fd was not admitted here. */
ah_conn_entry *ah_conntrack_claim(ah_conntrack *t, int fd);
/** The connection closed (or was never taken by the server): forgets e. */
void ah_conntrack_release(ah_conntrack *t, ah_conn_entry *e);

/** Phases, from the server thread that owns the connection. */
void ah_conntrack_request_begun(ah_conn_entry *e); /* its request line is read */
void ah_conntrack_headers_done(ah_conn_entry *e);
/** n more bytes of the body are read; more: the server still waits for
 *  some (a declared length not reached, or a chunked body). */
void ah_conntrack_body_bytes(ah_conn_entry *e, size_t n, bool more);
/** n more bytes of a request body are to be held for e's client: false
 *  (nothing counted) when its bodies would hold more than
 *  max_body_per_client. A NULL e (no guard) is always true. */
bool ah_conntrack_body_hold(ah_conn_entry *e, size_t n);
/** Gives back n bytes that ah_conntrack_body_hold counted for e's client;
 *  before e is released. */
void ah_conntrack_body_unhold(ah_conn_entry *e, size_t n);
/** The request is read (or answered early): no deadline while it runs. */
void ah_conntrack_busy(ah_conn_entry *e);
/** The answer is sent and the connection kept alive. */
void ah_conntrack_idle(ah_conn_entry *e);
/** After an answer, when a request begins, and as body bytes arrive while
 *  more are due (the phase calls above call it): when the client has
 *  closed its side and left nothing to read, makes the server notice at
 *  once (its edge-triggered poll may have consumed the end of stream with
 *  the request's bytes), so that a request cut short is closed then, not
 *  at its deadline. Each is a system call: not made where the next one
 *  would see the same (see conntrack.c). */
void ah_conntrack_kick_closed(ah_conn_entry *e);

/** Shuts down every connection past its deadline, and lets the server see
 *  the end of stream of every connection not busy whose client has closed
 *  its side (a request line cut short, which no phase call follows).
 *  Returns how many were past their deadline, and
 *  sets *next_ms to the milliseconds until the next deadline (capped at
 *  1000; -1 with no connection). */
size_t ah_conntrack_reap(ah_conntrack *t, long *next_ms);

/** Open connections, and the count of connections refused since start. */
size_t ah_conntrack_open(ah_conntrack *t);
unsigned long ah_conntrack_refused(ah_conntrack *t);

/** The client an entry counts toward (text, borrowed): its address, an
 *  IPv6 client's /64 ("2001:db8:1:2::/64"). */
const char *ah_conn_entry_ip(const ah_conn_entry *e);
/** Per-connection flag owned by the caller (the server's drain count). */
bool *ah_conn_entry_flag(ah_conn_entry *e);

#endif
