/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Provider simulator framework: a small libmicrohttpd server that provider
 * simulators extend with their documented endpoints, with seeded fault
 * injection so runs are reproducible. Listens on 127.0.0.1 only.
 *
 * Faults are drawn per request from a PRNG seeded with opts.seed, in this
 * order: 429 with Retry-After, 5xx (500/502/503 in turn), dropped connection
 * (closed without a response), slow response (delayed by slow_ms), truncated
 * JSON (the handler's body cut in half with a matching Content-Length).
 * Paths listed in opts.no_fault_prefix (e.g. the token endpoint) are exempt
 * when set.
 */
#ifndef AH_SIM_H
#define AH_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef struct ah_sim ah_sim;

typedef struct ah_sim_opts {
    uint16_t port;      /* 0: any free port */
    uint64_t seed;      /* PRNG seed for faults */
    size_t data_size;   /* provider-defined: how many records to generate */
    double p_429;       /* probability of 429 + Retry-After */
    int retry_after_s;  /* value of Retry-After (default 1) */
    double p_5xx;
    double p_drop;
    double p_slow;
    int slow_ms;        /* default 200 */
    double p_truncate;
    const char *no_fault_prefix; /* may be NULL */
    int threads;        /* default 2 */
    /** One thread per connection instead of a pool of `threads`: for a
     *  handler that blocks (a tarpit), which in a pool would also stall the
     *  other connections its thread accepted. */
    bool thread_per_connection;
} ah_sim_opts;

typedef struct ah_sim_req {
    const char *method;
    const char *path;
    const char *body;   /* NUL-terminated, may be "" */
    size_t body_len;
    void *conn;         /* libmicrohttpd connection (for header/query look-ups) */
} ah_sim_req;

typedef struct ah_sim_resp {
    int status;         /* default 200 */
    char *body;         /* malloc'd; the framework frees it */
    const char *content_type; /* default application/json */
    char *headers[8];   /* malloc'd "Name: value" strings, freed by the framework */
} ah_sim_resp;

typedef void (*ah_sim_handler)(void *arg, const ah_sim_req *req, ah_sim_resp *resp);

ah_sim *ah_sim_new(const ah_sim_opts *opts);
/** Routes method+path prefix to fn ("*" any method). Longest prefix wins. */
int ah_sim_route(ah_sim *s, const char *method, const char *prefix,
                 ah_sim_handler fn, void *arg);
int ah_sim_start(ah_sim *s);
uint16_t ah_sim_port(const ah_sim *s);
/** "http://127.0.0.1:PORT" (owned by the sim). */
const char *ah_sim_url(const ah_sim *s);
void ah_sim_stop(ah_sim *s); /* stops and frees */
/** Stops and frees s, and keeps its loopback port: bound, never listening,
 *  for as long as the returned descriptor is open, so that a connection to
 *  it is refused instead of reaching a server of another test that binds
 *  the port next, or the connecting socket itself (a loopback connect whose
 *  source port is the one it connects to): the kernel gives neither bind(0)
 *  nor an outgoing connection a port that is bound. (A server that asks for
 *  this very port with SO_REUSEADDR could still have it; the tests' servers
 *  ask for port 0.) -1 when the port could not be kept, or s never
 *  listened; s is stopped either way. */
int ah_sim_stop_holding_port(ah_sim *s);

const char *ah_sim_header(const ah_sim_req *req, const char *name);
const char *ah_sim_query(const ah_sim_req *req, const char *name);

/** Convenience: sets resp to status + JSON (transferred). */
void ah_sim_json(ah_sim_resp *resp, int status, cJSON *body);
/** Convenience: adds a response header. */
void ah_sim_header_add(ah_sim_resp *resp, const char *name, const char *value);

/** Counters (for tests): requests seen, faults injected by kind. */
typedef struct ah_sim_stats {
    unsigned long requests, f429, f5xx, fdrop, fslow, ftrunc;
    unsigned long fafter; /* armed after-the-act faults applied */
    /* Non-exempt requests that arrived before the Retry-After of the last
     * injected 429 had passed (counted only while p_429 > 0): a client that
     * honours Retry-After for all its requests sends none. */
    unsigned long early429;
} ah_sim_stats;
void ah_sim_get_stats(ah_sim *s, ah_sim_stats *out);
/** Changes fault probabilities at run time (thread-safe). */
void ah_sim_set_faults(ah_sim *s, double p_429, double p_5xx, double p_drop,
                       double p_slow, double p_truncate);

/** Faults that strike after the provider acted: the handler runs (the job
 *  is posted, the stage moved), then the answer is lost. */
typedef enum ah_sim_after {
    AH_SIM_AFTER_NONE = 0,
    /** The connection is closed without a byte of the answer. */
    AH_SIM_AFTER_DROP = 1,
    /** The status line and headers go out with the full Content-Length,
     *  then half the body, then the connection closes. */
    AH_SIM_AFTER_TRUNCATE = 2,
} ah_sim_after;
/** Arms `kind` for the next `count` requests whose method (exact, or "*")
 *  and path prefix match; AH_SIM_AFTER_NONE or count 0 disarms. Only one
 *  armed fault at a time; thread-safe; independent of the seeded faults. */
void ah_sim_fault_after(ah_sim *s, const char *method, const char *prefix, ah_sim_after kind,
                        int count);

/** Decodes len bytes of an application/x-www-form-urlencoded value ('+'
 *  is a space, %XX a byte). malloc'd; NULL on ENOMEM. */
char *ah_sim_form_decode(const char *s, size_t len);
/** The decoded value of key in a form-encoded body (malloc'd), or NULL
 *  when the body has no such key (or on ENOMEM). */
char *ah_sim_form_value(const char *body, const char *key);

#endif
