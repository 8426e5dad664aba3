/* SPDX-License-Identifier: Apache-2.0 */
#include "httpd.h"

#include "conntrack.h"
#include "json.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/filter.h>
#include <sys/socket.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#define AH_HTTPD_MAX_PATH 2048
/* The request target (path and query) and the header fields a request may
 * have: past them it is answered 414 uri_too_long / 431 headers_too_large
 * in the contract's JSON. libmicrohttpd reads both into a per-connection
 * buffer of AH_HTTPD_CONN_MEMORY bytes and answers a request that does not
 * fit it with 414/431 and a fixed HTML body of its own (0.9.75 has no hook
 * to replace it): the buffer is kept well above the two limits (twice MHD's
 * default 32 KiB; each kept-alive connection holds it) so that only a
 * request of more than that reaches it. */
#define AH_HTTPD_MAX_TARGET ((size_t)8 << 10)
#define AH_HTTPD_MAX_HEADERS ((size_t)16 << 10)
#define AH_HTTPD_CONN_MEMORY ((size_t)64 << 10)
#define AH_HTTPD_DEFAULT_MAX_BODY ((size_t)1 << 20)
/* The request bodies held at once by default (httpd.h, body_budget). */
#define AH_HTTPD_BODY_BUDGET ((size_t)64 << 20)
/* Past the limit a chunked body is drained (so that the client reads the 413)
 * only up to this many more bytes; beyond it the connection is dropped. */
#define AH_HTTPD_DRAIN_MAX ((size_t)1 << 20)
#define AH_HTTPD_CONN_TIMEOUT_S 60u
#define AH_HTTPD_INITIAL_BUCKETS 64u
/* Limits of templated routes: segments of a template (a longer request
 * path simply matches no template) and {name} placeholders in one. */
#define AH_HTTPD_MAX_SEGS 32u
#define AH_HTTPD_MAX_PARAMS 8u
#define AH_HTTPD_MAX_PARAM_NAME 63u

/* One segment of a templated route: a literal or a {name} placeholder
 * (off/len cover the braces too; the name is inside them). */
typedef struct ah_tseg {
    uint16_t off;
    uint16_t len;
    bool param;
} ah_tseg;

/* The segments of a request path, split once per lookup. */
typedef struct path_segs {
    unsigned n; /* 0: the path is not split (too many segments, or no '/') */
    uint16_t off[AH_HTTPD_MAX_SEGS];
    uint16_t len[AH_HTTPD_MAX_SEGS];
} path_segs;

typedef struct ah_param {
    const char *name; /* into the route's path: valid while the route runs */
    size_t nlen;
    const char *value; /* NUL-terminated, in the exchange's param buffer */
} ah_param;

typedef struct ah_route {
    struct ah_route *next; /* hash chain, or the retired list */
    uint64_t hash;
    unsigned flags;
    ah_http_handler fn;
    void *arg;
    /* Handlers run outside the table lock; this lets unroute wait for the
     * calls still running on a removed route: the count of those calls, and
     * ROUTE_REMOVED once the route left the table. One word, so that the
     * call that ends last learns in its decrement whether to wake a waiter,
     * and never touches the route after it (unroute may free it at once). */
    atomic_uint state;
    size_t pathlen;
    /* Templated routes only (nseg > 0): the segments, and how many of them
     * are literal (the precedence among templates). */
    unsigned nseg;
    unsigned nlit;
    ah_tseg *segs;
    const char *method;
    const char *path;
    /* One allocation: the segments, then method and path, follow. */
} ah_route;

#define ROUTE_REMOVED 0x80000000u

/* Calls running on r (its state without the removed bit). */
static unsigned route_calls(ah_route *r)
{
    return atomic_load(&r->state) & ~ROUTE_REMOVED;
}

typedef struct ah_hdr {
    struct ah_hdr *next;
    char *name;
    char *value;
} ah_hdr;

struct ah_httpd {
    char *host;
    uint16_t port;
    uint16_t bound_port;
    size_t max_body;
    /* Bytes of request bodies held at once, by every exchange (their
     * buffers' capacity), and the most: a client's bodies trickled over
     * many connections must not grow the daemon without bound. */
    atomic_size_t body_held;
    size_t body_budget;
    int threads;
    char *tls_cert;
    char *tls_key;
    void (*on_done)(void *arg, const ah_http_exchange *ex);
    void *on_done_arg;
    char hidden_cookie[64]; /* opts.hidden_cookie, "" when none */
    ah_http_before before; /* ah_httpd_set_hooks */
    ah_http_after after;
    void *hooks_arg;
    struct MHD_Daemon *daemon;
    int listen_fd;       /* the listening socket (ours, or the caller's), or -1 */
    int wake[2];         /* a byte on wake[1] stops the acceptor */
    pthread_t acceptor;
    bool acceptor_running;
    atomic_long inflight; /* requests whose first line was read, not yet completed */
    atomic_long fresh;    /* connections accepted whose first request has not begun */
    atomic_bool draining; /* quiesced: every answer closes its connection */
    atomic_bool refusing; /* the drain is over: a new request is answered 503 */
    bool quiesced;

    pthread_rwlock_t lock; /* guards the route table below */
    ah_route **buckets;    /* exact routes, hashed by path */
    size_t nbuckets;       /* power of two */
    size_t nexact;
    ah_route **templates; /* templated routes, in precedence order (tmpl_cmp) */
    size_t ntemplate;
    size_t template_cap;
    ah_route **prefixes; /* prefix routes, longest first */
    size_t nprefix;
    size_t prefix_cap;
    ah_route *retired; /* replaced routes that may still be running */

    pthread_mutex_t drain_mu;
    pthread_cond_t drain_cv;
    ah_conntrack_opts guard; /* limits and deadlines of connections */
    ah_conntrack *ct;        /* every open connection (made at start) */
    /* The acceptor also reaps; a quiesce asks it to close the listener and
     * waits until it did (quiesce_done, under drain_mu). */
    bool quiesce_done;
    /* Suspended requests (ah_ex_suspend): the list, under pending_mu, and
     * its length, readable without it. closing (under pending_mu) makes
     * every new suspension answer 503 shutting_down at once. */
    ah_ex_pending *pending;
    atomic_long npending;
    bool closing;
};

struct ah_http_exchange {
    ah_httpd *h;
    struct MHD_Connection *conn;
    struct timespec t0;
    int status;
    bool started;   /* the access handler saw this request */
    bool counted;   /* counted in h->inflight (from the request line on) */
    ah_conn_entry *ce; /* the connection's entry in the guard, or NULL */
    bool too_large; /* stop buffering; answer 413 at the end */
    bool over_budget; /* ... 503 instead: the server's body budget was spent */
    bool json_tried;
    bool ip_done;
    bool nul_in_path; /* an escaped NUL, seen in the raw URI */
    size_t target_len; /* the raw request target's length (path and query) */
    size_t path_cap;
    char *body;
    size_t body_len;
    size_t body_cap;
    size_t body_taken; /* of the server's body budget (body_take) */
    size_t drained;
    uint64_t body_due; /* the declared Content-Length, UINT64_MAX when not known */
    uint64_t body_seen; /* body bytes read */
    cJSON *json;
    ah_hdr *headers;
    struct ex_vals *vals; /* ah_ex_detach's copy of headers, cookies and query */
    char *cookie_view;    /* the Cookie header without the hidden cookie */
    bool cookie_viewed;   /* cookie_view made (NULL in it: no header left) */
    void *user;
    const char *subpath;
    ah_param params[AH_HTTPD_MAX_PARAMS]; /* a templated route's captures */
    unsigned nparams;
    char *pbuf; /* their values: after path[], as large */
    bool capture;    /* keep a copy of the answered body (ah_ex_capture_response) */
    char *resp_body; /* that copy */
    size_t resp_len;
    ah_route *route;        /* the route running or suspended (released at the answer) */
    ah_ex_pending *pending; /* set by ah_ex_suspend until the answer is queued */
    bool in_handler;        /* the handler is running: ah_ex_suspend is allowed */
    bool resuming;          /* answering a suspended request: queueing is allowed */
    bool holding;           /* ah_ex_hold: the handler's answer waits in held */
    bool detached;          /* ah_ex_detach: another thread uses the exchange */
    bool handed;            /* ah_ex_suspend after ah_ex_detach: a completion answers */
    bool hook_detached;     /* the before hook detached it: no after hook (its owner's part) */
    pthread_t detacher;     /* the server thread that detached it */
    struct MHD_Response *held; /* that answer, until ah_ex_release */
    int held_status;
    char ip[INET6_ADDRSTRLEN];
    char method[24];
    char tag[72]; /* ah_ex_set_tag: who the request was for, for on_done */
    /* ah_ex_route: the matched route's pattern, copied (the route may go
     * before on_done runs); "" until a route matched. */
    char route_pat[256];
    /* Sized from the raw URI, which the unescaped path never exceeds; twice,
     * so that pbuf can hold every captured segment NUL-terminated. */
    char path[];
};

/* A suspended request (ah_ex_suspend). Shared by the server and the
 * completion, each holding one reference; all fields are guarded by
 * pending_mu. Exactly one party calls MHD_resume_connection, and only once
 * MHD_suspend_connection was called: the MHD thread when the answer was
 * decided before it suspended (resolved seen after setting suspended),
 * otherwise whoever decides it (the completion, the timeout, the shutdown).
 * The connection cannot go away while suspended, and ah_httpd_free waits
 * for the list to empty before it stops MHD, so conn stays valid until the
 * resume. */
struct ah_ex_pending {
    ah_ex_pending *prev, *next; /* the server's list, until answered */
    ah_httpd *h;                /* NULL once off the list */
    struct MHD_Connection *conn;
    int refs;
    bool suspended; /* MHD_suspend_connection was called */
    bool resolved;  /* the answer is decided (status, body) */
    /* ah_ex_detach: another thread still uses the exchange (until
     * ah_ex_detach_end); whoever decides the answer meanwhile leaves the
     * resume to ah_ex_detach_end, so the server never touches ex while the
     * other thread does. */
    bool busy;
    int status;
    cJSON *body;
    bool has_deadline;
    struct timespec deadline; /* CLOCK_MONOTONIC */
    char *timeout_msg;
    /* ah_ex_suspend_abandon: asked at the deadline (under pending_mu)
     * whether the work never started; then 503 overloaded abandon_msg. */
    bool (*abandon)(void *arg);
    void *abandon_arg;
    char *abandon_msg;
    /* ah_ex_detach_gate: called once the answer is decided, by whoever
     * decides it (outside pending_mu), instead of the answer going out. */
    void (*gate)(void *arg, bool now);
    void *gate_arg;
};

/* A gate taken from a pending request, to be called outside pending_mu. */
typedef struct gate_call {
    void (*fn)(void *arg, bool now);
    void *arg;
} gate_call;

/* One lock for every pending request of every server: a completion may
 * outlive the server its request came from (answered 503 at shutdown). */
static pthread_mutex_t pending_mu = PTHREAD_MUTEX_INITIALIZER;

/* --- small helpers ------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t path_hash(const char *p, size_t n)
{
    uint64_t x = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        x ^= (unsigned char)p[i];
        x *= 1099511628211ull;
    }
    return x;
}

static bool is_star(const char *method)
{
    return method[0] == '*' && method[1] == '\0';
}

static void *dupz(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

/* --- status codes and JSON limits ---------------------------------------- */

/* libmicrohttpd's own panic prints nothing when its messages are off: say
 * where and why before aborting, so that the operator's log shows it. */
static void on_mhd_panic(void *cls, const char *file, unsigned int line, const char *reason)
{
    (void)cls;
    char msg[512];
    int n = snprintf(msg, sizeof msg, "libmicrohttpd: fatal error at %s:%u: %s\n",
                     file != NULL ? file : "?", line, reason != NULL ? reason : "(no reason)");
    if (n > 0)
        (void)!write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    abort();
}

static void set_panic_once(void)
{
    MHD_set_panic_func(on_mhd_panic, NULL);
}

int ah_http_status_for_code(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {
        {"unsupported_capability", 501},
        {"invalid_request", 400},
        {"invalid_json", 400},
        {"bad_path", 400},
        {"conflicting_length", 400},
        {"not_found", 404},
        {"method_not_allowed", 405},
        {"conflict", 409},
        {"unauthorized", 401},
        {"forbidden", 403},
        {"payload_too_large", 413},
        {"uri_too_long", 414},
        {"headers_too_large", 431},
        {"upstream_error", 502},
        {"upstream_unavailable", 503},
        {"timeout", 504},
        {"overloaded", 503},
        {"shutting_down", 503},
        {"internal_error", 500},
        {"plugin_error", 500},
    };
    if (code == NULL)
        return 500;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(code, map[i].code) == 0)
            return map[i].status;
    return 500;
}

/* --- responding ---------------------------------------------------------- */

static int ex_queue(ah_http_exchange *ex, int status, const char *ctype, void *buf, size_t len,
                    enum MHD_ResponseMemoryMode mode, bool close)
{
    if (ex->pending != NULL && !ex->resuming && !ex->holding) {
        /* Suspended: only the completion's answer may go out. */
        assert(!"ah_httpd: answered a suspended request directly");
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(buf);
        return -1;
    }
    if (ex->status != 0) {
        assert(!"ah_httpd: responded twice");
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(buf);
        return -1;
    }
    if (buf == NULL) {
        buf = (void *)"";
        len = 0;
        mode = MHD_RESPMEM_PERSISTENT;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, mode);
    if (r == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(buf);
        return -1;
    }
    bool ok = true;
    if (ctype != NULL)
        ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) == MHD_YES;
    for (ah_hdr *hd = ex->headers; ok && hd != NULL; hd = hd->next)
        ok = MHD_add_response_header(r, hd->name, hd->value) == MHD_YES;
    if (ok && (close || atomic_load(&ex->h->draining)))
        ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close") == MHD_YES;
    if (ok && ex->holding && !ex->resuming) {
        /* Held (ah_ex_hold): it goes out at ah_ex_release. */
        ex->held = r;
        ex->held_status = status;
    } else {
        if (ok)
            ok = MHD_queue_response(ex->conn, (unsigned)status, r) == MHD_YES;
        MHD_destroy_response(r);
    }
    if (!ok)
        return -1;
    ex->status = status;
    ah_conntrack_busy(ex->ce);
    if (ex->capture && ex->resp_body == NULL) {
        /* MHD may own buf now but frees it only after sending: copy it now. */
        ex->resp_body = malloc(len + 1);
        if (ex->resp_body != NULL) {
            memcpy(ex->resp_body, buf, len);
            ex->resp_body[len] = '\0';
            ex->resp_len = len;
        }
    }
    return 0;
}

static int ex_json(ah_http_exchange *ex, int status, cJSON *body, bool close)
{
    if (body == NULL)
        return ex_queue(ex, status, NULL, NULL, 0, MHD_RESPMEM_PERSISTENT, close);
    /* Printed with cJSON's allocator, which is malloc unless hooks were set. */
    char *s = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (s == NULL)
        return -1;
    return ex_queue(ex, status, "application/json", s, strlen(s), MHD_RESPMEM_MUST_FREE, close);
}

/* The longest error message, in bytes. */
#define AH_HTTPD_MAX_MESSAGE 511u

/* {"error":{"code","message"}} with the message formatted; NULL on OOM.
 * Messages echo what the client sent (a path, a header, an id), which may
 * be any bytes: cJSON would print those that are no UTF-8 as they are, and
 * the cut at the limit could split a character, making the body invalid
 * JSON text (RFC 8259 wants UTF-8). Such bytes become U+FFFD and the cut
 * falls between characters. */
static cJSON *error_vjson(const char *code, const char *fmt, va_list ap)
{
    /* A few bytes past the limit, so that the cut sees the character
     * that straddles it. */
    char raw[AH_HTTPD_MAX_MESSAGE + 4];
    char msg[3 * AH_HTTPD_MAX_MESSAGE + 1];
    size_t n = 0;
    if (fmt != NULL && vsnprintf(raw, sizeof raw, fmt, ap) > 0) {
        n = strlen(raw);
        if (!ah_utf8_valid(raw, n) || n > AH_HTTPD_MAX_MESSAGE) {
            n = ah_utf8_repair(raw, ah_utf8_cut(raw, n, AH_HTTPD_MAX_MESSAGE), msg);
            n = ah_utf8_cut(msg, n, AH_HTTPD_MAX_MESSAGE);
        } else {
            memcpy(msg, raw, n);
        }
    }
    msg[n] = '\0';
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    if (e == NULL || cJSON_AddStringToObject(e, "code", code) == NULL ||
        cJSON_AddStringToObject(e, "message", msg) == NULL) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static cJSON *error_json(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static cJSON *error_json(const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cJSON *j = error_vjson(code, fmt, ap);
    va_end(ap);
    return j;
}

static int ex_verror(ah_http_exchange *ex, int status, bool close, const char *code,
                     const char *fmt, va_list ap)
{
    cJSON *root = error_vjson(code, fmt, ap);
    if (root == NULL)
        return -1;
    return ex_json(ex, status, root, close);
}

static int ex_error_close(ah_http_exchange *ex, int status, bool close, const char *code,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int ex_error_close(ah_http_exchange *ex, int status, bool close, const char *code,
                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = ex_verror(ex, status, close, code, fmt, ap);
    va_end(ap);
    return rc;
}

int ah_ex_error(ah_http_exchange *ex, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = ex_verror(ex, status, false, code, fmt, ap);
    va_end(ap);
    return rc;
}

int ah_ex_respond_json(ah_http_exchange *ex, int status, cJSON *body)
{
    return ex_json(ex, status, body, false);
}

int ah_ex_respond(ah_http_exchange *ex, int status, const char *content_type, const char *body,
                  size_t len)
{
    return ex_queue(ex, status, content_type, (void *)body, body == NULL ? 0 : len,
                    MHD_RESPMEM_MUST_COPY, false);
}

int ah_ex_add_header(ah_http_exchange *ex, const char *name, const char *value)
{
    if (ex->status != 0 || name == NULL || value == NULL)
        return -1;
    ah_hdr *hd = calloc(1, sizeof *hd);
    if (hd == NULL)
        return -1;
    hd->name = strdup(name);
    hd->value = strdup(value);
    if (hd->name == NULL || hd->value == NULL) {
        free(hd->name);
        free(hd->value);
        free(hd);
        return -1;
    }
    /* Appended so that repeated headers keep their order. */
    ah_hdr **pp = &ex->headers;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = hd;
    return 0;
}

const char *ah_ex_added_header(const ah_http_exchange *ex, const char *name)
{
    for (const ah_hdr *hd = ex != NULL && name != NULL ? ex->headers : NULL; hd != NULL;
         hd = hd->next)
        if (strcasecmp(hd->name, name) == 0)
            return hd->value;
    return NULL;
}

/* --- exchange accessors -------------------------------------------------- */

const char *ah_ex_method(const ah_http_exchange *ex)
{
    return ex->method;
}

const char *ah_ex_path(const ah_http_exchange *ex)
{
    return ex->path;
}

const char *ah_ex_subpath(const ah_http_exchange *ex)
{
    return ex->subpath != NULL ? ex->subpath : "";
}

const char *ah_ex_route(const ah_http_exchange *ex)
{
    return ex->route_pat;
}

const char *ah_ex_param(const ah_http_exchange *ex, const char *name)
{
    if (name == NULL)
        return NULL;
    size_t n = strlen(name);
    for (unsigned i = 0; i < ex->nparams; i++)
        if (ex->params[i].nlen == n && memcmp(ex->params[i].name, name, n) == 0)
            return ex->params[i].value;
    return NULL;
}

/* A detached exchange's copy of the request's values (ah_ex_detach): MHD's
 * accessors are only valid on the connection's thread. One allocation:
 * the entries, then their strings. Looked up as MHD does (the first entry
 * of the kind whose name matches without regard to case). */
enum { EXV_HEADER, EXV_COOKIE, EXV_QUERY, EXV_KINDS };

typedef struct ex_val {
    unsigned char kind;
    const char *name;
    const char *value; /* NULL: a query name without '=' */
} ex_val;

typedef struct ex_vals {
    size_t n;
    ex_val v[];
} ex_vals;

static const enum MHD_ValueKind exv_mhd_kind[EXV_KINDS] = {
    MHD_HEADER_KIND, MHD_COOKIE_KIND, MHD_GET_ARGUMENT_KIND};

static const char *vals_lookup(const ex_vals *vs, unsigned kind, const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < vs->n; i++)
        if (vs->v[i].kind == kind && strcasecmp(vs->v[i].name, name) == 0)
            return vs->v[i].value;
    return NULL;
}

/* Takes n more bytes of the bodies' budget for ex's buffer, of its
 * client's share and of the whole; false (nothing taken) when that would
 * pass either: one client's bodies cannot hold the budget for all. */
static bool body_take(ah_httpd *h, ah_http_exchange *ex, size_t n)
{
    if (!ah_conntrack_body_hold(ex->ce, n))
        return false;
    size_t was = atomic_fetch_add(&h->body_held, n);
    if (was + n > h->body_budget) {
        atomic_fetch_sub(&h->body_held, n);
        ah_conntrack_body_unhold(ex->ce, n);
        return false;
    }
    ex->body_taken += n;
    return true;
}

/* Gives back what ex's buffer took of the budget. */
static void body_give_back(ah_httpd *h, ah_http_exchange *ex)
{
    if (ex->body_taken > 0) {
        atomic_fetch_sub(&h->body_held, ex->body_taken);
        ah_conntrack_body_unhold(ex->ce, ex->body_taken);
    }
    ex->body_taken = 0;
}

/* A Cookie header's value as handlers see it: raw, or without the pairs
 * named h->hidden_cookie (NULL when none is left), made once a request.
 * Pairs are split at ';' and their names trimmed as browsers send them
 * (RFC 6265 5.4: "a=1; b=2"). */
static const char *cookie_view(ah_http_exchange *ex, const char *raw)
{
    const char *hide = ex->h->hidden_cookie;
    if (raw == NULL || hide[0] == '\0' || strstr(raw, hide) == NULL)
        return raw;
    if (ex->cookie_viewed)
        return ex->cookie_view;
    size_t hl = strlen(hide), n = strlen(raw);
    /* Pairs kept are joined with "; ": one byte more than a bare ';' of
     * the client's each, so at most twice the raw header. */
    char *out = malloc(2 * n + 1);
    if (out == NULL)
        return NULL; /* none rather than the hidden one */
    size_t len = 0;
    for (const char *p = raw; *p != '\0';) {
        const char *end = strchr(p, ';');
        if (end == NULL)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        const char *eq = memchr(a, '=', (size_t)(b - a));
        const char *ne = eq != NULL ? eq : b;
        while (ne > a && (ne[-1] == ' ' || ne[-1] == '\t'))
            ne--;
        bool hidden = (size_t)(ne - a) == hl && memcmp(a, hide, hl) == 0;
        if (!hidden && b > a) {
            if (len > 0) {
                memcpy(out + len, "; ", 2);
                len += 2;
            }
            memcpy(out + len, a, (size_t)(b - a));
            len += (size_t)(b - a);
        }
        p = *end == ';' ? end + 1 : end;
    }
    out[len] = '\0';
    if (len == 0) {
        free(out);
        out = NULL;
    }
    ex->cookie_view = out;
    ex->cookie_viewed = true;
    return out;
}

const char *ah_ex_header(ah_http_exchange *ex, const char *name)
{
    const char *v = ex->vals != NULL ? vals_lookup(ex->vals, EXV_HEADER, name)
                                     : MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, name);
    if (v != NULL && strcasecmp(name, MHD_HTTP_HEADER_COOKIE) == 0)
        return cookie_view(ex, v);
    return v;
}

const char *ah_ex_cookie(ah_http_exchange *ex, const char *name)
{
    if (ex->vals != NULL)
        return vals_lookup(ex->vals, EXV_COOKIE, name);
    return MHD_lookup_connection_value(ex->conn, MHD_COOKIE_KIND, name);
}

const char *ah_ex_query(ah_http_exchange *ex, const char *name)
{
    if (ex->vals != NULL)
        return vals_lookup(ex->vals, EXV_QUERY, name);
    return MHD_lookup_connection_value(ex->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct each_ctx {
    bool (*cb)(void *arg, const char *name, const char *value);
    void *arg;
    ah_http_exchange *ex;
    bool headers;
} each_ctx;

/* One value for ah_ex_each's callback: a Cookie header as ah_ex_header
 * gives it (none when nothing is left of it). */
static bool each_one(each_ctx *e, const char *key, const char *value)
{
    if (e->headers && value != NULL && strcasecmp(key, MHD_HTTP_HEADER_COOKIE) == 0 &&
        (value = cookie_view(e->ex, value)) == NULL)
        return true;
    return e->cb(e->arg, key, value);
}

static enum MHD_Result each_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    return each_one(cls, key, value) ? MHD_YES : MHD_NO;
}

void ah_ex_each(ah_http_exchange *ex, bool query,
                bool (*cb)(void *arg, const char *name, const char *value), void *arg)
{
    each_ctx e = {cb, arg, ex, !query};
    if (ex->vals != NULL) {
        unsigned kind = query ? EXV_QUERY : EXV_HEADER;
        for (size_t i = 0; i < ex->vals->n; i++)
            if (ex->vals->v[i].kind == kind && !each_one(&e, ex->vals->v[i].name, ex->vals->v[i].value))
                return;
        return;
    }
    (void)MHD_get_connection_values(ex->conn, query ? MHD_GET_ARGUMENT_KIND : MHD_HEADER_KIND,
                                    each_value, &e);
}

typedef struct query_buf {
    char *s;
    size_t len, cap;
    bool oom;
} query_buf;

static enum MHD_Result add_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    query_buf *b = cls;
    char head[48];
    size_t kl = strlen(key), vl = value != NULL ? strlen(value) : 0;
    /* "<name length>:<name><value length or ->:<value>;" */
    int hn = snprintf(head, sizeof head, "%zu:", kl);
    char mid[32];
    int mn = value != NULL ? snprintf(mid, sizeof mid, "%zu:", vl) : snprintf(mid, sizeof mid, "-:");
    size_t need = b->len + (size_t)hn + kl + (size_t)mn + vl + 2;
    if (need > b->cap) {
        size_t cap = need * 2;
        char *n = realloc(b->s, cap);
        if (n == NULL) {
            b->oom = true;
            return MHD_NO;
        }
        b->s = n;
        b->cap = cap;
    }
    memcpy(b->s + b->len, head, (size_t)hn);
    b->len += (size_t)hn;
    memcpy(b->s + b->len, key, kl);
    b->len += kl;
    memcpy(b->s + b->len, mid, (size_t)mn);
    b->len += (size_t)mn;
    if (vl > 0)
        memcpy(b->s + b->len, value, vl);
    b->len += vl;
    b->s[b->len++] = ';';
    b->s[b->len] = '\0';
    return MHD_YES;
}

char *ah_ex_query_canonical(ah_http_exchange *ex)
{
    query_buf b = {0};
    if (ex->vals != NULL) {
        for (size_t i = 0; i < ex->vals->n && !b.oom; i++)
            if (ex->vals->v[i].kind == EXV_QUERY)
                (void)add_query_arg(&b, MHD_GET_ARGUMENT_KIND, ex->vals->v[i].name,
                                    ex->vals->v[i].value);
    } else {
        (void)MHD_get_connection_values(ex->conn, MHD_GET_ARGUMENT_KIND, add_query_arg, &b);
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s != NULL ? b.s : strdup("");
}

const char *ah_ex_client_ip(const ah_http_exchange *cex)
{
    /* Formatted on first use; every exchange is allocated non-const. */
    ah_http_exchange *ex = (ah_http_exchange *)cex;
    if (ex->ip_done)
        return ex->ip;
    ex->ip_done = true;
    ex->ip[0] = '\0';
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL)
        return ex->ip;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        if (inet_ntop(AF_INET, &s4->sin_addr, ex->ip, sizeof ex->ip) == NULL)
            ex->ip[0] = '\0';
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        const void *a = &s6->sin6_addr;
        int fam = AF_INET6;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            a = &s6->sin6_addr.s6_addr[12];
            fam = AF_INET;
        }
        if (inet_ntop(fam, a, ex->ip, sizeof ex->ip) == NULL)
            ex->ip[0] = '\0';
    }
    return ex->ip;
}

const char *ah_ex_body(const ah_http_exchange *ex, size_t *len)
{
    if (len != NULL)
        *len = ex->body_len;
    return ex->body != NULL ? ex->body : "";
}

const cJSON *ah_ex_json(ah_http_exchange *ex)
{
    if (ex->json_tried)
        return ex->json;
    ex->json_tried = true;
    if (ex->body_len == 0) {
        ah_ex_error(ex, 400, "invalid_json", "the request body is empty");
        return NULL;
    }
    ex->json = ah_json_parse_limited(ex->body, ex->body_len);
    if (ex->json == NULL)
        ah_ex_error(ex, 400, "invalid_json",
                    "the request body is not valid JSON (or nests deeper than %d)",
                    AH_JSON_MAX_DEPTH);
    return ex->json;
}

int ah_ex_status(const ah_http_exchange *ex)
{
    return ex->status;
}

double ah_ex_elapsed_s(const ah_http_exchange *ex)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        return 0.0;
    return (double)(now.tv_sec - ex->t0.tv_sec) + (double)(now.tv_nsec - ex->t0.tv_nsec) / 1e9;
}

void ah_ex_set_user(ah_http_exchange *ex, void *p)
{
    ex->user = p;
}

void *ah_ex_user(const ah_http_exchange *ex)
{
    return ex->user;
}

void ah_ex_set_tag(ah_http_exchange *ex, const char *tag)
{
    snprintf(ex->tag, sizeof ex->tag, "%s", tag != NULL ? tag : "");
}

const char *ah_ex_tag(const ah_http_exchange *ex)
{
    return ex->tag;
}

/* --- the route table ----------------------------------------------------- */

/* Splits an absolute path into its segments ("/a/b/" is "a", "b", "");
 * false when it has more than AH_HTTPD_MAX_SEGS or does not start with '/'. */
static bool split_path(const char *path, size_t len, path_segs *ps)
{
    ps->n = 0;
    if (len == 0 || path[0] != '/')
        return false;
    size_t i = 1;
    for (;;) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        if (ps->n == AH_HTTPD_MAX_SEGS) {
            ps->n = 0;
            return false;
        }
        ps->off[ps->n] = (uint16_t)i;
        ps->len[ps->n] = (uint16_t)(j - i);
        ps->n++;
        if (j == len)
            return true;
        i = j + 1;
    }
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Checks a templated path and fills segs (AH_HTTPD_MAX_SEGS of room).
 * Returns the number of segments, or 0 when the path is malformed: a
 * segment with '{' or '}' that is not exactly {name}, an empty or long
 * name, a name used twice, too many segments or placeholders. */
static unsigned parse_template(const char *path, ah_tseg *segs, unsigned *nlit)
{
    path_segs ps;
    if (!split_path(path, strlen(path), &ps))
        return 0;
    unsigned nparam = 0;
    *nlit = 0;
    for (unsigned i = 0; i < ps.n; i++) {
        const char *s = path + ps.off[i];
        size_t n = ps.len[i];
        segs[i] = (ah_tseg){.off = ps.off[i], .len = ps.len[i], .param = false};
        if (memchr(s, '{', n) == NULL && memchr(s, '}', n) == NULL) {
            (*nlit)++;
            continue;
        }
        if (n < 3 || n - 2 > AH_HTTPD_MAX_PARAM_NAME || s[0] != '{' || s[n - 1] != '}' ||
            nparam == AH_HTTPD_MAX_PARAMS)
            return 0;
        for (size_t k = 1; k + 1 < n; k++)
            if (!name_char(s[k]))
                return 0;
        for (unsigned k = 0; k < i; k++)
            if (segs[k].param && segs[k].len == n && memcmp(path + segs[k].off, s, n) == 0)
                return 0;
        segs[i].param = true;
        nparam++;
    }
    return ps.n;
}

/* The segments of a route's path (0 for a literal one), or -1 when the
 * server refuses it: a prefix route with a placeholder (it serves what
 * follows it whatever it is: the placeholder would promise a capture that
 * never happens), or a malformed template (parse_template). */
static int route_segs(const char *path, unsigned flags, ah_tseg *segs, unsigned *nlit)
{
    *nlit = 0;
    if (strchr(path, '{') == NULL && strchr(path, '}') == NULL)
        return 0;
    if (flags & AH_HTTPD_PREFIX)
        return -1;
    unsigned n = parse_template(path, segs, nlit);
    return n > 0 ? (int)n : -1;
}

bool ah_httpd_route_valid(const char *path, unsigned flags)
{
    ah_tseg segs[AH_HTTPD_MAX_SEGS];
    unsigned nlit;
    return path != NULL && path[0] == '/' && route_segs(path, flags, segs, &nlit) >= 0;
}

static ah_route *route_new(const char *method, const char *path, unsigned flags, ah_http_handler fn,
                           void *arg)
{
    ah_tseg segs[AH_HTTPD_MAX_SEGS];
    unsigned nlit = 0;
    int ns = route_segs(path, flags, segs, &nlit);
    if (ns < 0)
        return NULL;
    unsigned nseg = (unsigned)ns;
    size_t ml = strlen(method), pl = strlen(path);
    ah_route *r = calloc(1, sizeof *r + nseg * sizeof *segs + ml + pl + 2);
    if (r == NULL)
        return NULL;
    /* sizeof *r is a multiple of its alignment, which ah_tseg's divides. */
    r->segs = (ah_tseg *)(void *)(r + 1);
    char *mem = (char *)(r->segs + nseg);
    memcpy(r->segs, segs, nseg * sizeof *segs);
    memcpy(mem, method, ml + 1);
    memcpy(mem + ml + 1, path, pl + 1);
    r->method = mem;
    r->path = mem + ml + 1;
    r->pathlen = pl;
    r->nseg = nseg;
    r->nlit = nlit;
    r->hash = path_hash(path, pl);
    r->flags = flags;
    r->fn = fn;
    r->arg = arg;
    atomic_init(&r->state, 0u);
    return r;
}

/* Caller holds the write lock. */
static void retire(ah_httpd *h, ah_route *r)
{
    atomic_fetch_or(&r->state, ROUTE_REMOVED);
    r->next = h->retired;
    h->retired = r;
}

/* Frees retired routes nobody runs any more. Caller holds the write lock. */
static void sweep_retired(ah_httpd *h)
{
    ah_route **pp = &h->retired;
    while (*pp != NULL) {
        ah_route *r = *pp;
        if (route_calls(r) == 0) {
            *pp = r->next;
            free(r);
        } else {
            pp = &r->next;
        }
    }
}

static int grow_buckets(ah_httpd *h)
{
    size_t n = h->nbuckets * 2;
    ah_route **nb = calloc(n, sizeof *nb);
    if (nb == NULL)
        return -1;
    for (size_t i = 0; i < h->nbuckets; i++) {
        ah_route *r = h->buckets[i];
        while (r != NULL) {
            ah_route *next = r->next;
            r->next = nb[r->hash & (n - 1)];
            nb[r->hash & (n - 1)] = r;
            r = next;
        }
    }
    free(h->buckets);
    h->buckets = nb;
    h->nbuckets = n;
    return 0;
}

static int insert_exact(ah_httpd *h, ah_route *r)
{
    ah_route **pp = &h->buckets[r->hash & (h->nbuckets - 1)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        ah_route *o = *pp;
        if (o->hash == r->hash && o->pathlen == r->pathlen && strcmp(o->path, r->path) == 0 &&
            strcmp(o->method, r->method) == 0) {
            r->next = o->next;
            *pp = r;
            retire(h, o);
            return 0;
        }
    }
    if (h->nexact + 1 > h->nbuckets && grow_buckets(h) != 0)
        return -1;
    pp = &h->buckets[r->hash & (h->nbuckets - 1)];
    r->next = *pp;
    *pp = r;
    h->nexact++;
    return 0;
}

/* The precedence of templated routes: more literal segments first; then
 * (same count) the one whose first literal comes earlier ("/a/b/{x}" before
 * "/a/{x}/c"); then by segment count and the literals' bytes, which only
 * makes the order total. 0: the same pattern (placeholder names aside). */
static int tmpl_cmp(const ah_route *a, const ah_route *b)
{
    if (a->nlit != b->nlit)
        return a->nlit > b->nlit ? -1 : 1;
    if (a->nseg != b->nseg)
        return a->nseg < b->nseg ? -1 : 1;
    for (unsigned i = 0; i < a->nseg; i++)
        if (a->segs[i].param != b->segs[i].param)
            return a->segs[i].param ? 1 : -1;
    for (unsigned i = 0; i < a->nseg; i++) {
        if (a->segs[i].param)
            continue;
        size_t la = a->segs[i].len, lb = b->segs[i].len;
        int c = memcmp(a->path + a->segs[i].off, b->path + b->segs[i].off, la < lb ? la : lb);
        if (c != 0 || la != lb)
            return c != 0 ? c : la < lb ? -1 : 1;
    }
    return 0;
}

/* Templates of one pattern stay adjacent, named methods before "*", so that
 * the first one serving the method is the one to run. */
static int insert_template(ah_httpd *h, ah_route *r)
{
    size_t at = 0;
    for (; at < h->ntemplate; at++) {
        ah_route *o = h->templates[at];
        int c = tmpl_cmp(r, o);
        if (c == 0 && strcmp(o->method, r->method) == 0) {
            h->templates[at] = r;
            retire(h, o);
            return 0;
        }
        if (c < 0 || (c == 0 && is_star(o->method) && !is_star(r->method)))
            break;
    }
    if (h->ntemplate == h->template_cap) {
        size_t cap = h->template_cap ? h->template_cap * 2 : 8;
        ah_route **nt = realloc(h->templates, cap * sizeof *nt);
        if (nt == NULL)
            return -1;
        h->templates = nt;
        h->template_cap = cap;
    }
    memmove(&h->templates[at + 1], &h->templates[at], (h->ntemplate - at) * sizeof *h->templates);
    h->templates[at] = r;
    h->ntemplate++;
    return 0;
}

static bool tmpl_matches(const ah_route *r, const char *path, const path_segs *ps)
{
    if (r->nseg != ps->n)
        return false;
    for (unsigned i = 0; i < ps->n; i++) {
        if (r->segs[i].param) {
            if (ps->len[i] == 0)
                return false;
        } else if (r->segs[i].len != ps->len[i] ||
                   memcmp(r->path + r->segs[i].off, path + ps->off[i], ps->len[i]) != 0) {
            return false;
        }
    }
    return true;
}

static int insert_prefix(ah_httpd *h, ah_route *r)
{
    for (size_t i = 0; i < h->nprefix; i++) {
        ah_route *o = h->prefixes[i];
        if (o->pathlen == r->pathlen && strcmp(o->path, r->path) == 0 &&
            strcmp(o->method, r->method) == 0) {
            h->prefixes[i] = r;
            retire(h, o);
            return 0;
        }
    }
    if (h->nprefix == h->prefix_cap) {
        size_t cap = h->prefix_cap ? h->prefix_cap * 2 : 8;
        ah_route **np = realloc(h->prefixes, cap * sizeof *np);
        if (np == NULL)
            return -1;
        h->prefixes = np;
        h->prefix_cap = cap;
    }
    size_t at = 0;
    while (at < h->nprefix && h->prefixes[at]->pathlen >= r->pathlen)
        at++;
    memmove(&h->prefixes[at + 1], &h->prefixes[at], (h->nprefix - at) * sizeof *h->prefixes);
    h->prefixes[at] = r;
    h->nprefix++;
    return 0;
}

int ah_httpd_route(ah_httpd *h, const char *method, const char *path, unsigned flags,
                   ah_http_handler fn, void *arg)
{
    if (h == NULL || method == NULL || method[0] == '\0' || path == NULL || path[0] != '/' ||
        fn == NULL || strlen(path) > AH_HTTPD_MAX_PATH)
        return -1;
    ah_route *r = route_new(method, path, flags, fn, arg);
    if (r == NULL)
        return -1;
    if (pthread_rwlock_wrlock(&h->lock) != 0) {
        free(r);
        return -1;
    }
    sweep_retired(h);
    int rc = (flags & AH_HTTPD_PREFIX) ? insert_prefix(h, r)
             : r->nseg > 0             ? insert_template(h, r)
                                       : insert_exact(h, r);
    pthread_rwlock_unlock(&h->lock);
    if (rc != 0)
        free(r);
    return rc;
}

/* Moves the routes of `arg` from an array (prefix or template routes, in
 * order) to the *gone list, marked removed; returns how many stay. */
static size_t take_arg(ah_route **list, size_t n, void *arg, ah_route **gone)
{
    size_t keep = 0;
    for (size_t i = 0; i < n; i++) {
        ah_route *r = list[i];
        if (r->arg == arg) {
            atomic_fetch_or(&r->state, ROUTE_REMOVED);
            r->next = *gone;
            *gone = r;
        } else {
            list[keep++] = r;
        }
    }
    return keep;
}

void ah_httpd_unroute_arg(ah_httpd *h, void *arg)
{
    if (h == NULL || pthread_rwlock_wrlock(&h->lock) != 0)
        return;
    ah_route *gone = NULL;
    for (size_t i = 0; i < h->nbuckets; i++) {
        ah_route **pp = &h->buckets[i];
        while (*pp != NULL) {
            ah_route *r = *pp;
            if (r->arg == arg) {
                *pp = r->next;
                h->nexact--;
                atomic_fetch_or(&r->state, ROUTE_REMOVED);
                r->next = gone;
                gone = r;
            } else {
                pp = &r->next;
            }
        }
    }
    h->nprefix = take_arg(h->prefixes, h->nprefix, arg, &gone);
    h->ntemplate = take_arg(h->templates, h->ntemplate, arg, &gone);
    /* Replaced routes of this arg must be drained too before arg dies. */
    ah_route **pp = &h->retired;
    while (*pp != NULL) {
        ah_route *r = *pp;
        if (r->arg == arg) {
            *pp = r->next;
            r->next = gone;
            gone = r;
        } else {
            pp = &r->next;
        }
    }
    pthread_rwlock_unlock(&h->lock);

    /* The caller is about to free arg (plugin unload): wait for the calls
     * still running on these routes. */
    pthread_mutex_lock(&h->drain_mu);
    for (ah_route *r = gone; r != NULL; r = r->next)
        while (route_calls(r) > 0)
            pthread_cond_wait(&h->drain_cv, &h->drain_mu);
    pthread_mutex_unlock(&h->drain_mu);
    while (gone != NULL) {
        ah_route *next = gone->next;
        free(gone);
        gone = next;
    }
}

static bool method_matches(const ah_route *r, const char *method)
{
    return is_star(r->method) || strcmp(r->method, method) == 0;
}

/* Adds m to the comma-separated list `allow`, once, keeping the list in
 * byte order so that the Allow header does not depend on how the routes
 * were registered or hashed. */
static void allow_add(char *allow, size_t cap, const char *m)
{
    size_t ml = strlen(m), al = strlen(allow);
    if (al + ml + 3 > cap)
        return;
    char *p = allow;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        int c = strncmp(p, m, n < ml ? n : ml);
        if (c == 0 && n == ml)
            return; /* already there */
        if (c > 0 || (c == 0 && n > ml))
            break; /* m goes before this one */
        p += n;
        if (*p == ',')
            p += 2; /* ", " */
    }
    size_t at = (size_t)(p - allow);
    if (at == al) {
        if (al > 0) {
            memcpy(allow + al, ", ", 2);
            al += 2;
        }
        memcpy(allow + al, m, ml + 1);
        return;
    }
    memmove(allow + at + ml + 2, allow + at, al - at + 1);
    memcpy(allow + at, m, ml);
    memcpy(allow + at + ml, ", ", 2);
}

/* Finds the route and takes an in-flight reference on it (ps: the path's
 * segments when a template matched). On a miss, fills `allow` with the
 * methods the path does serve ("" if none).
 *
 * Exact and templated routes name resources: the most specific pattern
 * that matches the path owns it (an exact route, else the first matching
 * template in precedence order), and less specific templates are not tried
 * for other methods, so "/v1/applications/bulk-reject" never reaches
 * "/v1/applications/{id}". Prefix routes stay the fallback for a method the
 * owner does not serve, as they always were for exact routes. */
static ah_route *route_find(ah_httpd *h, const char *method, const char *path, size_t len,
                            path_segs *ps, char *allow, size_t allow_cap)
{
    allow[0] = '\0';
    ps->n = 0;
    if (pthread_rwlock_rdlock(&h->lock) != 0)
        return NULL;
    ah_route *best = NULL;
    bool exact_owner = false;
    uint64_t hash = path_hash(path, len);
    for (ah_route *r = h->buckets[hash & (h->nbuckets - 1)]; r != NULL; r = r->next) {
        if (r->hash != hash || r->pathlen != len || memcmp(r->path, path, len) != 0)
            continue;
        exact_owner = true;
        if (strcmp(r->method, method) == 0) {
            best = r;
            break;
        }
        if (is_star(r->method))
            best = r;
    }
    /* The owning template group: [towner, tend). */
    size_t towner = 0, tend = 0;
    if (!exact_owner && h->ntemplate > 0 && split_path(path, len, ps)) {
        for (size_t i = 0; i < h->ntemplate; i++) {
            if (!tmpl_matches(h->templates[i], path, ps))
                continue;
            towner = i;
            tend = i + 1;
            while (tend < h->ntemplate && tmpl_cmp(h->templates[i], h->templates[tend]) == 0)
                tend++;
            break;
        }
        for (size_t i = towner; best == NULL && i < tend; i++)
            if (method_matches(h->templates[i], method))
                best = h->templates[i];
    }
    /* Longest prefix first; at equal length a named method beats "*". */
    for (size_t i = 0; best == NULL && i < h->nprefix; i++) {
        ah_route *r = h->prefixes[i];
        if (r->pathlen > len || memcmp(r->path, path, r->pathlen) != 0 || !method_matches(r, method))
            continue;
        best = r;
        for (size_t j = i + 1; j < h->nprefix && h->prefixes[j]->pathlen == r->pathlen; j++) {
            ah_route *o = h->prefixes[j];
            if (strcmp(o->method, method) == 0 && memcmp(o->path, path, o->pathlen) == 0) {
                best = o;
                break;
            }
        }
    }
    if (best != NULL) {
        atomic_fetch_add(&best->state, 1u);
    } else {
        for (ah_route *r = h->buckets[hash & (h->nbuckets - 1)]; r != NULL; r = r->next)
            if (r->hash == hash && r->pathlen == len && memcmp(r->path, path, len) == 0)
                allow_add(allow, allow_cap, r->method);
        for (size_t i = towner; i < tend; i++)
            allow_add(allow, allow_cap, h->templates[i]->method);
        for (size_t i = 0; i < h->nprefix; i++) {
            ah_route *r = h->prefixes[i];
            if (r->pathlen <= len && memcmp(r->path, path, r->pathlen) == 0)
                allow_add(allow, allow_cap, r->method);
        }
    }
    pthread_rwlock_unlock(&h->lock);
    return best;
}

/* Copies a templated route's captures into the exchange (values are
 * segments of the already unescaped path, NUL-terminated in pbuf). */
static void capture_params(ah_http_exchange *ex, const ah_route *r, const path_segs *ps)
{
    char *out = ex->pbuf;
    ex->nparams = 0;
    for (unsigned i = 0; i < r->nseg && ex->nparams < AH_HTTPD_MAX_PARAMS; i++) {
        if (!r->segs[i].param)
            continue;
        ah_param *p = &ex->params[ex->nparams++];
        p->name = r->path + r->segs[i].off + 1;
        p->nlen = r->segs[i].len - 2u;
        memcpy(out, ex->path + ps->off[i], ps->len[i]);
        out[ps->len[i]] = '\0';
        p->value = out;
        out += ps->len[i] + 1;
    }
}

static void route_release(ah_httpd *h, ah_route *r)
{
    /* The last call on a removed route wakes unroute; r may be freed as
     * soon as the count reaches zero, so it is not read after this. */
    if (atomic_fetch_sub(&r->state, 1u) == (ROUTE_REMOVED | 1u)) {
        pthread_mutex_lock(&h->drain_mu);
        pthread_cond_broadcast(&h->drain_cv);
        pthread_mutex_unlock(&h->drain_mu);
    }
}

/* --- MHD callbacks ------------------------------------------------------- */

/* Called with the raw request target before MHD unescapes it: the place to
 * allocate the exchange (one allocation, path storage inline) and to catch
 * an escaped NUL, which the unescaped C string can no longer show. */
/* A connection's entry in the guard (MHD's socket context). Its flag says
 * the connection is fresh: accepted and no request begun. A drain waits for
 * fresh connections too, so a connection accepted just before the listener
 * closed still gets its answer rather than a reset. */
static void fresh_done(ah_httpd *h)
{
    if (atomic_fetch_sub(&h->fresh, 1) == 1) {
        pthread_mutex_lock(&h->drain_mu);
        pthread_cond_broadcast(&h->drain_cv);
        pthread_mutex_unlock(&h->drain_mu);
    }
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    ah_httpd *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci != NULL ? ah_conntrack_claim(h->ct, ci->connect_fd) : NULL;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        ah_conn_entry *e = *socket_context;
        *socket_context = NULL;
        if (e != NULL) {
            bool fresh = *ah_conn_entry_flag(e);
            ah_conntrack_release(h->ct, e);
            if (fresh)
                fresh_done(h);
        }
    }
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    ah_httpd *h = cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    ah_conn_entry *ce = ci != NULL ? ci->socket_context : NULL;
    size_t ulen = strlen(uri);
    ah_http_exchange *ex = malloc(sizeof *ex + 2 * (ulen + 1));
    if (ex != NULL) {
        memset(ex, 0, sizeof *ex);
        /* Counted before the connection stops being fresh, so that a drain
         * never sees a request between the two counters. */
        ex->counted = true;
        atomic_fetch_add(&h->inflight, 1);
    }
    if (ce != NULL && *ah_conn_entry_flag(ce)) {
        *ah_conn_entry_flag(ce) = false;
        fresh_done(h);
    }
    ah_conntrack_request_begun(ce);
    if (ex == NULL)
        return NULL;
    ex->path[0] = '\0';
    ex->pbuf = ex->path + ulen + 1;
    ex->h = h;
    ex->ce = ce;
    ex->conn = conn;
    ex->path_cap = ulen;
    ex->target_len = ulen;
    if (clock_gettime(CLOCK_MONOTONIC, &ex->t0) != 0)
        memset(&ex->t0, 0, sizeof ex->t0);
    size_t plen = strcspn(uri, "?");
    ex->nul_in_path = memmem(uri, plen, "%00", 3) != NULL;
    return ex;
}

typedef struct length_scan {
    unsigned n_cl;
    unsigned n_te;
    bool cl_bad;
    bool cl_differ;
    bool te_unsupported;
    uint64_t cl;
    size_t header_bytes; /* names and values, with ": " and CRLF */
} length_scan;

static bool parse_decimal(const char *s, uint64_t *out)
{
    if (s == NULL || *s == '\0')
        return false;
    uint64_t v = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d; /* saturates: still too large */
    }
    *out = v;
    return true;
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    length_scan *s = cls;
    s->header_bytes += strlen(key) + (value != NULL ? strlen(value) : 0) + 4;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        uint64_t v = 0;
        if (!parse_decimal(value, &v))
            s->cl_bad = true;
        else if (s->n_cl > 0 && v != s->cl)
            s->cl_differ = true;
        s->cl = v;
        s->n_cl++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        if (value == NULL || strcasecmp(value, "chunked") != 0)
            s->te_unsupported = true;
        s->n_te++;
    }
    return MHD_YES;
}

/* The route's part of a request is over: the after hook (when the handler
 * ran) sees the queued answer, then the route's reference goes. */
static void finish_route(ah_httpd *h, ah_http_exchange *ex, bool ran)
{
    ah_route *r = ex->route;
    if (ran && h->after != NULL && !ex->hook_detached)
        h->after(h->hooks_arg, ex);
    /* The names point into the route, which may go once released. */
    ex->nparams = 0;
    ex->route = NULL;
    if (r != NULL)
        route_release(h, r);
}

/* --- suspended requests ------------------------------------------------- */

static void pending_unref_locked(ah_ex_pending *p)
{
    if (--p->refs > 0)
        return;
    cJSON_Delete(p->body);
    free(p->timeout_msg);
    free(p->abandon_msg);
    free(p);
}

/* Takes p off the server's list (answered, or its connection ended).
 * Caller holds pending_mu. */
static void pending_unlink_locked(ah_httpd *h, ah_ex_pending *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        h->pending = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
    p->h = NULL;
}

/* One suspended request less; wakes pending_close at the last. */
static void pending_gone(ah_httpd *h)
{
    if (atomic_fetch_sub(&h->npending, 1) == 1) {
        pthread_mutex_lock(&h->drain_mu);
        pthread_cond_broadcast(&h->drain_cv);
        pthread_mutex_unlock(&h->drain_mu);
    }
}

/* Decides p's answer unless it is decided. Returns true when the caller
 * must resume the connection (it is suspended and this decided it).
 * body is transferred. Caller holds pending_mu. */
static bool pending_resolve_locked(ah_ex_pending *p, int status, cJSON *body)
{
    if (p->resolved) {
        cJSON_Delete(body);
        return false;
    }
    p->resolved = true;
    p->status = status;
    p->body = body;
    return p->suspended && !p->busy;
}

/* The gate of a request just decided (ah_ex_detach_gate), taken off it:
 * the caller calls it outside pending_mu. Caller holds pending_mu. */
static gate_call pending_take_gate_locked(ah_ex_pending *p)
{
    gate_call g = {p->gate, p->gate_arg};
    if (!p->resolved)
        g.fn = NULL;
    else
        p->gate = NULL;
    return g;
}

static void gate_run(gate_call g)
{
    if (g.fn != NULL)
        g.fn(g.arg, false);
}

/* What ah_ex_suspend_abandon adds to a deadline. */
typedef struct abandon_opts {
    bool (*fn)(void *arg);
    void *arg;
    const char *msg;
} abandon_opts;

/* Sets p's deadline, timeout_ms from now, and the words of its 504 (and
 * its abandon hook, a may be NULL). 0 or -1 (out of memory, no clock). */
static int pending_deadline(ah_ex_pending *p, long timeout_ms, const char *timeout_msg,
                            const abandon_opts *a)
{
    struct timespec at;
    char *msg = strdup(timeout_msg != NULL ? timeout_msg : "no answer in time");
    char *amsg = a != NULL && a->fn != NULL
                     ? strdup(a->msg != NULL ? a->msg : "the work did not start in time")
                     : NULL;
    if (msg == NULL || (a != NULL && a->fn != NULL && amsg == NULL) ||
        clock_gettime(CLOCK_MONOTONIC, &at) != 0) {
        free(msg);
        free(amsg);
        return -1;
    }
    free(p->abandon_msg);
    p->abandon_msg = amsg;
    p->abandon = amsg != NULL ? a->fn : NULL;
    p->abandon_arg = amsg != NULL ? a->arg : NULL;
    at.tv_sec += timeout_ms / 1000;
    at.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (at.tv_nsec >= 1000000000L) {
        at.tv_sec++;
        at.tv_nsec -= 1000000000L;
    }
    free(p->timeout_msg);
    p->timeout_msg = msg;
    p->deadline = at;
    p->has_deadline = true;
    return 0;
}

/* ah_ex_suspend on a detached exchange: its pending answer goes to the
 * caller's completion, with a deadline from now. */
static ah_ex_pending *detached_handover(ah_http_exchange *ex, long timeout_ms,
                                        const char *timeout_msg, const abandon_opts *a)
{
    /* Only the thread that took the exchange over: the handler that
     * detached it has let it go. */
    if (ex->handed || ex->status != 0 || ex->pending == NULL ||
        pthread_equal(pthread_self(), ex->detacher))
        return NULL;
    ah_ex_pending *p = ex->pending;
    bool wake = false;
    if (timeout_ms > 0) {
        pthread_mutex_lock(&pending_mu);
        int rc = p->resolved ? 0 : pending_deadline(p, timeout_ms, timeout_msg, a);
        wake = rc == 0 && p->h != NULL && !p->resolved;
        pthread_mutex_unlock(&pending_mu);
        if (rc != 0)
            return NULL;
    }
    ex->handed = true;
    if (wake && ex->h->wake[1] >= 0) {
        /* The acceptor sleeps until the deadlines it knows: tell it. */
        char b = 'd';
        while (write(ex->h->wake[1], &b, 1) < 0 && errno == EINTR)
            ;
    }
    return p;
}

static ah_ex_pending *suspend(ah_http_exchange *ex, long timeout_ms, const char *timeout_msg,
                              const abandon_opts *a)
{
    if (ex != NULL && ex->detached)
        return detached_handover(ex, timeout_ms, timeout_msg, a);
    if (ex == NULL || !ex->in_handler || ex->pending != NULL || ex->status != 0)
        return NULL;
    ah_ex_pending *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    if (timeout_ms > 0 && pending_deadline(p, timeout_ms, timeout_msg, a) != 0) {
        free(p);
        return NULL;
    }
    ah_httpd *h = ex->h;
    p->h = h;
    p->conn = ex->conn;
    p->refs = 2;
    pthread_mutex_lock(&pending_mu);
    p->next = h->pending;
    if (h->pending != NULL)
        h->pending->prev = p;
    h->pending = p;
    atomic_fetch_add(&h->npending, 1);
    pthread_mutex_unlock(&pending_mu);
    ex->pending = p;
    return p;
}

ah_ex_pending *ah_ex_suspend(ah_http_exchange *ex, long timeout_ms, const char *timeout_msg)
{
    return suspend(ex, timeout_ms, timeout_msg, NULL);
}

ah_ex_pending *ah_ex_suspend_abandon(ah_http_exchange *ex, long timeout_ms,
                                     const char *timeout_msg, bool (*abandon)(void *arg),
                                     void *arg, const char *abandon_msg)
{
    if (timeout_ms <= 0 || abandon == NULL)
        return suspend(ex, timeout_ms, timeout_msg, NULL);
    abandon_opts a = {abandon, arg, abandon_msg};
    return suspend(ex, timeout_ms, timeout_msg, &a);
}

/* The completion's side: decides the answer (unless a timeout or the
 * shutdown did) and lets go of p. */
static int pending_complete(ah_ex_pending *p, int status, cJSON *body)
{
    pthread_mutex_lock(&pending_mu);
    bool first = !p->resolved;
    bool resume = pending_resolve_locked(p, status, body);
    /* A gated request is busy (ah_ex_detach_gate keeps its reference):
     * p outlives the unref below. */
    gate_call g = pending_take_gate_locked(p);
    struct MHD_Connection *conn = p->conn;
    pending_unref_locked(p);
    pthread_mutex_unlock(&pending_mu);
    /* Outside the lock: MHD takes its own. conn is still suspended, so
     * neither it nor its daemon can be gone (see struct ah_ex_pending). */
    if (resume)
        MHD_resume_connection(conn);
    gate_run(g);
    return first ? 0 : -1;
}

ah_ex_pending *ah_ex_hold(ah_http_exchange *ex)
{
    ah_ex_pending *p = ah_ex_suspend(ex, 0, NULL);
    if (p != NULL)
        ex->holding = true;
    return p;
}

/* Copying the request's values: a first pass sizes, a second fills. */
typedef struct vals_copy {
    ex_vals *vs;   /* NULL: sizing */
    char *at;      /* the next string's place */
    unsigned kind;
    size_t n, bytes;
} vals_copy;

static enum MHD_Result copy_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    vals_copy *c = cls;
    size_t kl = strlen(key), vl = value != NULL ? strlen(value) + 1 : 0;
    if (c->vs == NULL) {
        c->n++;
        c->bytes += kl + 1 + vl;
        return MHD_YES;
    }
    ex_val *v = &c->vs->v[c->vs->n++];
    v->kind = (unsigned char)c->kind;
    memcpy(c->at, key, kl + 1);
    v->name = c->at;
    c->at += kl + 1;
    v->value = NULL;
    if (value != NULL) {
        memcpy(c->at, value, vl);
        v->value = c->at;
        c->at += vl;
    }
    return MHD_YES;
}

static ex_vals *copy_values(struct MHD_Connection *conn)
{
    vals_copy c = {0};
    for (c.kind = 0; c.kind < EXV_KINDS; c.kind++)
        (void)MHD_get_connection_values(conn, exv_mhd_kind[c.kind], copy_value, &c);
    size_t n = c.n;
    ex_vals *vs = malloc(sizeof *vs + n * sizeof vs->v[0] + c.bytes + 1);
    if (vs == NULL)
        return NULL;
    vs->n = 0;
    c.vs = vs;
    c.at = (char *)&vs->v[n];
    for (c.kind = 0; c.kind < EXV_KINDS; c.kind++)
        (void)MHD_get_connection_values(conn, exv_mhd_kind[c.kind], copy_value, &c);
    /* MHD's list cannot change on this thread in between; kept safe anyway. */
    if (vs->n > n)
        vs->n = n;
    return vs;
}

ah_ex_pending *ah_ex_detach(ah_http_exchange *ex)
{
    /* detached first: once detached, in_handler is the server thread's
     * alone (it may still be clearing it) and not to be read here. */
    if (ex == NULL || ex->detached || !ex->in_handler || ex->pending != NULL || ex->status != 0)
        return NULL;
    ex_vals *vs = copy_values(ex->conn);
    if (vs == NULL)
        return NULL;
    (void)ah_ex_client_ip(ex); /* formatted now, while the connection is ours */
    ah_ex_pending *p = ah_ex_suspend(ex, 0, NULL);
    if (p == NULL) {
        free(vs);
        return NULL;
    }
    pthread_mutex_lock(&pending_mu);
    p->busy = true;
    p->refs++; /* ah_ex_detach_end's */
    pthread_mutex_unlock(&pending_mu);
    ex->vals = vs;
    ex->holding = true;
    ex->detached = true;
    ex->detacher = pthread_self();
    return p;
}

void ah_ex_detach_end(ah_ex_pending *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&pending_mu);
    p->busy = false;
    /* Decided while busy, after the server suspended: that decision left
     * the resume to here. */
    bool resume = p->resolved && p->suspended && p->h != NULL;
    struct MHD_Connection *conn = p->conn;
    pending_unref_locked(p);
    pthread_mutex_unlock(&pending_mu);
    if (resume)
        MHD_resume_connection(conn);
}

void ah_ex_detach_finish(ah_http_exchange *ex, ah_ex_pending *p)
{
    if (p == NULL)
        return;
    if (ex == NULL || !ex->handed)
        (void)ah_ex_release(p);
    ah_ex_detach_end(p); /* the last use of ex */
}

void ah_ex_detach_gate(ah_http_exchange *ex, ah_ex_pending *p, void (*fn)(void *arg, bool now),
                       void *arg)
{
    if (p == NULL)
        return;
    if (!ex->handed)
        (void)ah_ex_release(p); /* the handler's own answer is decided */
    pthread_mutex_lock(&pending_mu);
    bool now = p->resolved;
    if (!now) {
        p->gate = fn;
        p->gate_arg = arg;
    }
    pthread_mutex_unlock(&pending_mu);
    if (now)
        fn(arg, true);
}

int ah_ex_decided(const ah_http_exchange *ex, ah_ex_pending *p, char **body, size_t *len)
{
    *body = NULL;
    *len = 0;
    pthread_mutex_lock(&pending_mu);
    bool resolved = p->resolved;
    int status = p->status;
    char *text = NULL;
    if (resolved && status != 0)
        text = p->body != NULL ? cJSON_PrintUnformatted(p->body) : strdup("");
    pthread_mutex_unlock(&pending_mu);
    if (!resolved)
        return 0;
    size_t tlen = text != NULL ? strlen(text) : 0;
    if (status == 0 && ex->held != NULL) {
        /* Released: the handler's own answer, as it was captured (bytes,
         * which may hold NULs). */
        status = ex->held_status;
        if (ex->resp_body != NULL && (text = malloc(ex->resp_len + 1)) != NULL) {
            memcpy(text, ex->resp_body, ex->resp_len + 1);
            tlen = ex->resp_len;
        }
    } else if (status == 0) {
        /* What pending_answer sends for a handler that did not answer. */
        status = 500;
        cJSON *e = error_json("internal_error", "the handler did not respond");
        text = e != NULL ? cJSON_PrintUnformatted(e) : NULL;
        tlen = text != NULL ? strlen(text) : 0;
        cJSON_Delete(e);
    }
    if (text == NULL)
        return -1;
    *body = text;
    *len = tlen;
    return status;
}

void ah_ex_call_route(ah_http_exchange *ex)
{
    if (ex == NULL || !ex->detached || ex->handed || ex->status != 0 || ex->route == NULL ||
        pthread_equal(pthread_self(), ex->detacher))
        return;
    ex->route->fn(ex->route->arg, ex);
}

int ah_ex_release(ah_ex_pending *p)
{
    return p != NULL ? pending_complete(p, 0, NULL) : -1;
}

int ah_ex_release_error(ah_ex_pending *p, int status, const char *code, const char *fmt, ...)
{
    if (p == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    cJSON *j = error_vjson(code != NULL ? code : "internal_error", fmt, ap);
    va_end(ap);
    return pending_complete(p, status > 0 ? status : 500, j);
}

int ah_ex_resume_json(ah_ex_pending *p, int status, cJSON *body)
{
    if (p == NULL) {
        cJSON_Delete(body);
        return -1;
    }
    return pending_complete(p, status, body);
}

int ah_ex_resume_error(ah_ex_pending *p, int status, const char *code, const char *fmt, ...)
{
    if (p == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    /* Out of memory (NULL): the status goes out alone. */
    cJSON *j = error_vjson(code != NULL ? code : "internal_error", fmt, ap);
    va_end(ap);
    return pending_complete(p, status, j);
}

/* The MHD thread's side, after the handler suspended: suspends the
 * connection unless the answer is already decided, in which case it is
 * answered now. Returns true when the request was answered. */
static bool pending_park(ah_httpd *h, ah_http_exchange *ex)
{
    ah_ex_pending *p = ex->pending;
    gate_call g = {0};
    pthread_mutex_lock(&pending_mu);
    if (h->closing) {
        (void)pending_resolve_locked(p, 503, error_json("shutting_down",
                                                        "the server is shutting down"));
        g = pending_take_gate_locked(p);
    }
    pthread_mutex_unlock(&pending_mu);
    gate_run(g); /* may end the detached use at once */
    pthread_mutex_lock(&pending_mu);
    bool now = p->resolved && !p->busy;
    pthread_mutex_unlock(&pending_mu);
    if (now)
        return false;
    MHD_suspend_connection(ex->conn);
    pthread_mutex_lock(&pending_mu);
    p->suspended = true;
    /* Decided in between (and nobody uses ex any more): nobody else resumes. */
    bool resume = p->resolved && !p->busy;
    pthread_mutex_unlock(&pending_mu);
    if (resume)
        MHD_resume_connection(ex->conn);
    return true;
}

/* Queues the decided answer of a suspended request (on its MHD thread,
 * after the resume or when it was decided before the suspend), then ends
 * the route's part. */
static void pending_answer(ah_httpd *h, ah_http_exchange *ex)
{
    ah_ex_pending *p = ex->pending;
    pthread_mutex_lock(&pending_mu);
    int status = p->status;
    cJSON *body = p->body;
    p->body = NULL;
    pending_unlink_locked(h, p);
    pending_unref_locked(p);
    pthread_mutex_unlock(&pending_mu);
    ex->resuming = true;
    if (ex->holding) {
        struct MHD_Response *held = ex->held;
        ex->held = NULL;
        ex->holding = false;
        if (status == 0 && held != NULL) {
            /* Released: the handler's own answer. */
            cJSON_Delete(body);
            if (MHD_queue_response(ex->conn, (unsigned)ex->held_status, held) != MHD_YES)
                ex->status = 0;
        } else {
            /* Replaced (not released, timed out, shutting down). */
            ex->status = 0;
            free(ex->resp_body);
            ex->resp_body = NULL;
            if (status == 0) {
                status = 500;
                body = error_json("internal_error", "the handler did not respond");
            }
            if (ex_json(ex, status, body, false) != 0)
                ex->status = 0;
        }
        if (held != NULL)
            MHD_destroy_response(held);
    } else if (ex_json(ex, status, body, false) != 0) {
        ex->status = 0; /* not queued: on_access answers 500 or closes */
    }
    ex->resuming = false;
    ex->pending = NULL;
    pending_gone(h);
    finish_route(h, ex, true);
}

/* Answers 504 the suspended requests past their deadline (acceptor
 * thread); lowers *wait_ms to the next deadline. */
static void pending_expire(ah_httpd *h, long *wait_ms)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        return;
    for (;;) {
        struct MHD_Connection *resume[64];
        gate_call gates[64];
        size_t n = 0, ng = 0;
        bool more = false;
        pthread_mutex_lock(&pending_mu);
        for (ah_ex_pending *p = h->pending; p != NULL; p = p->next) {
            if (p->resolved || !p->has_deadline)
                continue;
            long left = (long)(p->deadline.tv_sec - now.tv_sec) * 1000L +
                        (p->deadline.tv_nsec - now.tv_nsec) / 1000000L;
            if (left > 0) {
                if (*wait_ms < 0 || left < *wait_ms)
                    *wait_ms = left;
                continue;
            }
            if (n + ng == sizeof resume / sizeof resume[0]) {
                more = true;
                break;
            }
            /* Work that never started and now never will (the abandon
             * hook says so) was not done: 503, safe to send again. */
            bool gave_up = p->abandon != NULL && p->abandon(p->abandon_arg);
            cJSON *answer = gave_up ? error_json("overloaded", "%s", p->abandon_msg)
                                    : error_json("timeout", "%s", p->timeout_msg);
            if (pending_resolve_locked(p, gave_up ? 503 : 504, answer))
                resume[n++] = p->conn;
            else if ((gates[ng] = pending_take_gate_locked(p)).fn != NULL)
                ng++; /* n + ng <= 64: a gated request is busy, never resumed here */
        }
        pthread_mutex_unlock(&pending_mu);
        for (size_t i = 0; i < n; i++)
            MHD_resume_connection(resume[i]);
        for (size_t i = 0; i < ng; i++)
            gate_run(gates[i]);
        if (!more)
            return;
    }
}

/* Before MHD stops (it must never see a suspended connection): answers
 * every undecided request 503 shutting_down, resumes the suspended ones and
 * waits until each has been answered on its MHD thread. */
static void pending_close(ah_httpd *h)
{
    for (;;) {
        struct MHD_Connection *resume[64];
        gate_call gates[64];
        size_t n = 0, ng = 0;
        bool more = false;
        pthread_mutex_lock(&pending_mu);
        h->closing = true;
        for (ah_ex_pending *p = h->pending; p != NULL; p = p->next) {
            if (p->resolved)
                continue;
            if (n + ng == sizeof resume / sizeof resume[0]) {
                more = true;
                break;
            }
            if (pending_resolve_locked(p, 503, error_json("shutting_down",
                                                          "the server is shutting down")))
                resume[n++] = p->conn;
            else if ((gates[ng] = pending_take_gate_locked(p)).fn != NULL)
                ng++;
        }
        pthread_mutex_unlock(&pending_mu);
        for (size_t i = 0; i < n; i++)
            MHD_resume_connection(resume[i]);
        for (size_t i = 0; i < ng; i++)
            gate_run(gates[i]);
        if (!more)
            break;
    }
    pthread_mutex_lock(&h->drain_mu);
    while (atomic_load(&h->npending) > 0)
        pthread_cond_wait(&h->drain_cv, &h->drain_mu);
    pthread_mutex_unlock(&h->drain_mu);
}

static void finish_request(ah_httpd *h, ah_http_exchange *ex)
{
    if (ex->too_large) {
        /* The body was read to its end: the connection can go on. */
        if (ex->over_budget)
            ah_ex_error(ex, 503, "overloaded",
                        "too many request bodies are being received; retry later");
        else
            ah_ex_error(ex, 413, "payload_too_large", "the body exceeds %zu bytes", h->max_body);
        return;
    }
    size_t len = strlen(ex->path);
    char allow[256];
    path_segs ps;
    ah_route *r = route_find(h, ex->method, ex->path, len, &ps, allow, sizeof allow);
    if (r == NULL) {
        if (allow[0] == '\0') {
            ah_ex_error(ex, 404, "not_found", "no route for %s", ex->path);
        } else if (ah_ex_add_header(ex, MHD_HTTP_HEADER_ALLOW, allow) == 0) {
            ah_ex_error(ex, 405, "method_not_allowed", "%s is not allowed here; use %s",
                        ex->method, allow);
        }
        return;
    }
    ex->subpath = (r->flags & AH_HTTPD_PREFIX) ? ex->path + r->pathlen : "";
    snprintf(ex->route_pat, sizeof ex->route_pat, "%s%s", r->path,
             (r->flags & AH_HTTPD_PREFIX) ? "*" : "");
    if (r->nseg > 0)
        capture_params(ex, r, &ps);
    ex->route = r;
    if (h->before != NULL) {
        ex->in_handler = true; /* the hook may detach the exchange */
        bool answered = h->before(h->hooks_arg, ex);
        if (ex->pending != NULL) {
            /* Detached by the hook: its owner runs the handler
             * (ah_ex_call_route) and does the after hook's part; the
             * route stays referenced until the answer. From here this
             * thread touches only the fields no other thread does
             * (pending, hook_detached): in_handler stays as it was. */
            ex->hook_detached = true;
            return;
        }
        ex->in_handler = false;
        if (answered) {
            finish_route(h, ex, false);
            return;
        }
    }
    ex->in_handler = true;
    r->fn(r->arg, ex);
    if (ex->pending == NULL) {
        ex->in_handler = false;
        finish_route(h, ex, true);
    }
    /* else suspended (perhaps detached, another thread's now: as after
     * the hook, in_handler is left alone): finish_route runs once the
     * completion's answer is queued, so that the after hook sees the
     * final answer. */
}

/* Whether the (unescaped) path has a segment "." or "..": a client
 * removes them before sending (RFC 3986 5.2.4), and a proxy in front may
 * have resolved them otherwise than a route or a handler would. Dots
 * inside a segment ("a..b@x.com", "v1.2") are data. */
static bool has_dot_segment(const char *path)
{
    for (const char *p = path; *p != '\0';) {
        size_t n = strcspn(p, "/");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return true;
        p += n;
        if (*p == '/')
            p++;
    }
    return false;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    ah_httpd *h = cls;
    ah_http_exchange *ex = *con_cls;
    if (ex == NULL)
        return MHD_NO; /* out of memory in on_uri */

    if (!ex->started) {
        ex->started = true;
        ah_conntrack_headers_done(ex->ce);
        size_t mlen = strlen(method);
        if (atomic_load(&h->refusing)) {
            /* Sent on a kept-alive connection after the drain ended: the
             * daemon is stopping the workers it would need. Counted in
             * flight already (on_uri), so the drain's last look waits for
             * this answer or for the request it let through. */
            snprintf(ex->method, sizeof ex->method, "%s", mlen < sizeof ex->method ? method : "?");
            ex_error_close(ex, 503, true, "shutting_down",
                           "the server is stopping; retry (another instance, or later)");
            return MHD_YES;
        }
        size_t plen = strlen(url);
        if (mlen >= sizeof ex->method) {
            strcpy(ex->method, "?");
            ex_error_close(ex, 400, true, "invalid_request", "the method is too long");
            return MHD_YES;
        }
        memcpy(ex->method, method, mlen + 1);
        if (ex->target_len > AH_HTTPD_MAX_TARGET || plen > AH_HTTPD_MAX_PATH) {
            size_t keep = plen < ex->path_cap ? plen : ex->path_cap;
            keep = keep < 256 ? keep : 256; /* enough for the log line */
            memcpy(ex->path, url, keep);
            ex->path[keep] = '\0';
            ex_error_close(ex, 414, true, "uri_too_long",
                           "the request target exceeds %zu bytes (the path %u)",
                           AH_HTTPD_MAX_TARGET, (unsigned)AH_HTTPD_MAX_PATH);
            return MHD_YES;
        }
        if (ex->nul_in_path || plen > ex->path_cap || has_dot_segment(url)) {
            size_t keep = plen < ex->path_cap ? plen : ex->path_cap;
            memcpy(ex->path, url, keep);
            ex->path[keep] = '\0';
            ex_error_close(ex, 400, true, "bad_path", "the path is malformed or too long");
            return MHD_YES;
        }
        memcpy(ex->path, url, plen + 1);

        length_scan s = {0};
        MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_header, &s);
        ex->body_due = s.n_cl > 0 ? s.cl : s.n_te > 0 ? UINT64_MAX : 0;
        if (s.header_bytes > AH_HTTPD_MAX_HEADERS) {
            ex_error_close(ex, 431, true, "headers_too_large",
                           "the header fields exceed %zu bytes", AH_HTTPD_MAX_HEADERS);
            return MHD_YES;
        }
        if ((s.n_cl > 0 && s.n_te > 0) || s.cl_bad || s.cl_differ) {
            ex_error_close(ex, 400, true, "conflicting_length",
                           "conflicting or malformed Content-Length / Transfer-Encoding");
            return MHD_YES;
        }
        if (s.te_unsupported || s.n_te > 1) {
            ex_error_close(ex, 400, true, "invalid_request", "unsupported Transfer-Encoding");
            return MHD_YES;
        }
        if (s.n_cl > 0 && s.cl > h->max_body) {
            /* Answered at once and closed, a client still sending its body
             * may get a reset in place of the answer (the kernel drops what
             * it had not read yet). A body up to the drain limit is read
             * and dropped, as a chunked one is, and answered 413 after it
             * on a connection that stays open; a larger one, or one whose
             * client waits for 100 Continue (it sends nothing more), is
             * answered now and the connection closed. */
            const char *expect =
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
            if (s.cl > AH_HTTPD_DRAIN_MAX || expect != NULL) {
                ex_error_close(ex, 413, true, "payload_too_large", "the body exceeds %zu bytes",
                               h->max_body);
                return MHD_YES;
            }
            ex->too_large = true;
            ex->drained = 0;
            return MHD_YES;
        }
        if (s.n_cl > 0 && s.cl > 0) {
            /* Known size: one exact allocation instead of growing. */
            if (!body_take(h, ex, (size_t)s.cl + 1)) {
                /* As for a body too large (above): read and dropped,
                 * then answered, or answered now and closed. */
                const char *expect =
                    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
                if (s.cl > AH_HTTPD_DRAIN_MAX || expect != NULL) {
                    ex_error_close(ex, 503, true, "overloaded",
                                   "too many request bodies are being received; retry later");
                    return MHD_YES;
                }
                ex->too_large = ex->over_budget = true;
                ex->drained = 0;
                return MHD_YES;
            }
            ex->body = malloc((size_t)s.cl + 1);
            if (ex->body == NULL) {
                ex_error_close(ex, 503, true, "overloaded", "out of memory");
                return MHD_YES;
            }
            ex->body_cap = (size_t)s.cl;
        }
        return MHD_YES;
    }

    if (ex->pending != NULL) {
        /* Resumed (or decided before the suspend): the completion's answer. */
        pending_answer(h, ex);
        if (ex->status == 0 &&
            ah_ex_error(ex, 500, "internal_error", "the answer could not be queued") != 0)
            return MHD_NO;
        return MHD_YES;
    }

    if (ex->status != 0) {
        /* Answered early; whatever MHD still hands us is dropped. An answer
         * queued from the first call (before any body) makes libmicrohttpd
         * (0.9.75) discard the rest of the request and close after it,
         * whatever the method: the connection needs no deadline then
         * (test_body_dripped_after_early_answer, check_conntrack). */
        *upload_data_size = 0;
        return MHD_YES;
    }

    size_t n = *upload_data_size;
    if (n > 0) {
        *upload_data_size = 0;
        ex->body_seen += n;
        ah_conntrack_body_bytes(ex->ce, n, ex->body_seen < ex->body_due);
        if (ex->too_large) {
            ex->drained += n;
            return ex->drained > AH_HTTPD_DRAIN_MAX ? MHD_NO : MHD_YES;
        }
        if (n > h->max_body - ex->body_len) {
            ex->too_large = true;
            ex->drained = n;
            free(ex->body);
            ex->body = NULL;
            ex->body_len = ex->body_cap = 0;
            body_give_back(h, ex);
            return MHD_YES;
        }
        if (ex->body_len + n > ex->body_cap) {
            size_t cap = ex->body_cap ? ex->body_cap : 4096;
            while (cap < ex->body_len + n)
                cap = cap > h->max_body / 2 ? h->max_body : cap * 2;
            if (cap > h->max_body)
                cap = h->max_body;
            size_t more = cap + 1 - (ex->body != NULL ? ex->body_cap + 1 : 0);
            if (!body_take(h, ex, more)) {
                /* Read to its end without keeping it (as a body too
                 * large), then answered 503. */
                free(ex->body);
                ex->body = NULL;
                ex->body_len = ex->body_cap = 0;
                body_give_back(h, ex);
                ex->too_large = ex->over_budget = true;
                ex->drained = n;
                return MHD_YES;
            }
            char *nb = realloc(ex->body, cap + 1);
            if (nb == NULL)
                return MHD_NO;
            ex->body = nb;
            ex->body_cap = cap;
        }
        memcpy(ex->body + ex->body_len, upload_data, n);
        ex->body_len += n;
        ex->body[ex->body_len] = '\0';
        return MHD_YES;
    }

    /* Read whole: the handler may take its time. */
    ah_conntrack_busy(ex->ce);
    finish_request(h, ex);
    if (ex->pending != NULL) {
        if (pending_park(h, ex))
            return MHD_YES; /* suspended: MHD calls again after the resume */
        pending_answer(h, ex);
    }
    if (ex->status == 0 &&
        ah_ex_error(ex, 500, "internal_error", "the handler did not respond") != 0)
        return MHD_NO; /* cannot answer: close rather than hang */
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    ah_httpd *h = cls;
    ah_http_exchange *ex = *con_cls;
    if (ex == NULL)
        return;
    *con_cls = NULL;
    if (ex->pending != NULL) {
        /* Ended while suspended (not a path MHD takes with a suspended
         * connection, which it never closes; kept so that a completion can
         * never resume a freed connection): the answer is dropped. */
        ah_ex_pending *p = ex->pending;
        ex->pending = NULL;
        pthread_mutex_lock(&pending_mu);
        p->resolved = true;
        pending_unlink_locked(h, p);
        pending_unref_locked(p);
        pthread_mutex_unlock(&pending_mu);
        pending_gone(h);
        if (ex->route != NULL) {
            ex->nparams = 0;
            route_release(h, ex->route);
            ex->route = NULL;
        }
    }
    if (ex->status != 0 && h->on_done != NULL)
        h->on_done(h->on_done_arg, ex);
    ah_conntrack_idle(ex->ce); /* kept alive, or about to close */
    if (ex->counted && atomic_fetch_sub(&h->inflight, 1) == 1) {
        pthread_mutex_lock(&h->drain_mu);
        pthread_cond_broadcast(&h->drain_cv);
        pthread_mutex_unlock(&h->drain_mu);
    }
    ah_conntrack_kick_closed(ex->ce); /* after the count: a syscall */
    if (ex->held != NULL)
        MHD_destroy_response(ex->held);
    cJSON_Delete(ex->json);
    free(ex->vals);
    free(ex->cookie_view);
    free(ex->body);
    body_give_back(h, ex);
    free(ex->resp_body);
    while (ex->headers != NULL) {
        ah_hdr *next = ex->headers->next;
        free(ex->headers->name);
        free(ex->headers->value);
        free(ex->headers);
        ex->headers = next;
    }
    free(ex);
}

/* --- lifecycle ----------------------------------------------------------- */

ah_httpd *ah_httpd_new(const ah_httpd_opts *opts, char *err, size_t errlen)
{
    static pthread_once_t panic_once = PTHREAD_ONCE_INIT;
    (void)pthread_once(&panic_once, set_panic_once);
    if (opts == NULL) {
        set_err(err, errlen, "httpd: no options");
        return NULL;
    }
    if ((opts->tls_cert_pem == NULL) != (opts->tls_key_pem == NULL)) {
        set_err(err, errlen, "httpd: tls_cert and tls_key must be given together");
        return NULL;
    }
    ah_httpd *h = calloc(1, sizeof *h);
    if (h == NULL) {
        set_err(err, errlen, "httpd: out of memory");
        return NULL;
    }
    bool lock_ok = false, mu_ok = false, cv_ok = false;
    h->host = strdup(opts->host != NULL && opts->host[0] != '\0' ? opts->host : "127.0.0.1");
    h->tls_cert = dupz(opts->tls_cert_pem);
    h->tls_key = dupz(opts->tls_key_pem);
    h->nbuckets = AH_HTTPD_INITIAL_BUCKETS;
    h->buckets = calloc(h->nbuckets, sizeof *h->buckets);
    if (h->host == NULL || h->buckets == NULL || (opts->tls_cert_pem && !h->tls_cert) ||
        (opts->tls_key_pem && !h->tls_key)) {
        set_err(err, errlen, "httpd: out of memory");
        goto fail;
    }
    lock_ok = pthread_rwlock_init(&h->lock, NULL) == 0;
    mu_ok = lock_ok && pthread_mutex_init(&h->drain_mu, NULL) == 0;
    cv_ok = mu_ok && pthread_cond_init(&h->drain_cv, NULL) == 0;
    if (!cv_ok) {
        set_err(err, errlen, "httpd: cannot create locks");
        goto fail;
    }
    h->port = opts->port;
    h->max_body = opts->max_body > 0 ? opts->max_body : AH_HTTPD_DEFAULT_MAX_BODY;
    h->body_budget = opts->body_budget > 0 ? opts->body_budget
                     : h->max_body * 4 > AH_HTTPD_BODY_BUDGET ? h->max_body * 4
                                                              : AH_HTTPD_BODY_BUDGET;
    h->threads = opts->threads > 0 ? opts->threads : 1;
    h->on_done = opts->on_done;
    h->on_done_arg = opts->on_done_arg;
    if (opts->hidden_cookie != NULL) {
        if (strlen(opts->hidden_cookie) >= sizeof h->hidden_cookie) {
            set_err(err, errlen, "httpd: hidden_cookie too long");
            goto fail;
        }
        strcpy(h->hidden_cookie, opts->hidden_cookie);
    }
    h->listen_fd = opts->use_listen_fd ? opts->listen_fd : -1;
    h->wake[0] = h->wake[1] = -1;
    h->guard = (ah_conntrack_opts){
        .max_total = opts->max_connections > 0 ? opts->max_connections : 4096,
        .max_per_client = opts->max_connections_per_client > 0 ? opts->max_connections_per_client : 256,
        .header_timeout_ms = opts->header_timeout_ms > 0 ? opts->header_timeout_ms : 10000,
        .idle_timeout_ms = AH_HTTPD_CONN_TIMEOUT_S * 1000L,
        .min_body_rate = opts->min_body_rate > 0 ? opts->min_body_rate : 1024,
        /* A quarter of the budget, and at least one body of max_body. */
        .max_body_per_client = opts->body_per_client > 0 ? opts->body_per_client
                               : h->body_budget / 4 > h->max_body ? h->body_budget / 4
                                                                  : h->max_body + 1,
    };
    return h;
fail:
    if (mu_ok)
        pthread_mutex_destroy(&h->drain_mu);
    if (lock_ok)
        pthread_rwlock_destroy(&h->lock);
    free(h->buckets);
    free(h->host);
    free(h->tls_cert);
    if (h->tls_key != NULL) {
        explicit_bzero(h->tls_key, strlen(h->tls_key));
        free(h->tls_key);
    }
    free(h);
    if (opts->use_listen_fd && opts->listen_fd >= 0)
        close(opts->listen_fd);
    return NULL;
}

/* Serves on the caller's listening socket (the admin Unix socket). */
/* Gives an accepted socket to MHD, counted as fresh from the accept on:
 * MHD announces it (on_connection) only later, from one of its threads,
 * and a drain must not end in between. */
static void hand_over(ah_httpd *h, int c, struct sockaddr_storage *ss, socklen_t sl)
{
    ah_conn_entry *e = ah_conntrack_admit(h->ct, c, (struct sockaddr *)ss);
    if (e == NULL)
        return; /* refused (answered and closed) */
    *ah_conn_entry_flag(e) = true;
    atomic_fetch_add(&h->fresh, 1);
    /* MHD closes c when it cannot take it; if it never announced it, the
     * entry is still unclaimed and ours to drop. */
    if (MHD_add_connection(h->daemon, c, (struct sockaddr *)ss, sl) != MHD_YES &&
        (e = ah_conntrack_claim(h->ct, c)) != NULL) {
        ah_conntrack_release(h->ct, e);
        fresh_done(h);
    }
}

int ah_httpd_add_socket(ah_httpd *h, int fd, const struct sockaddr *sa, socklen_t sl)
{
    if (fd < 0)
        return -1;
    int fl = fcntl(fd, F_GETFL);
    if (h == NULL || h->daemon == NULL || !h->acceptor_running || atomic_load(&h->draining) ||
        sa == NULL || sl > sizeof(struct sockaddr_storage) || fl < 0 ||
        fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        close(fd);
        return -1;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, sa, sl);
    hand_over(h, fd, &ss, sl);
    /* The acceptor did not see this one come: wake it so that the reaper
     * takes the connection's deadline into account. */
    char b = 'a';
    while (write(h->wake[1], &b, 1) < 0 && errno == EINTR)
        ;
    return 0;
}

/* Accepts every connection the kernel has completed; false on a fatal
 * error of the listening socket. */
static bool accept_ready(ah_httpd *h)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int c = accept4(h->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c >= 0) {
            hand_over(h, c, &ss, sl);
            continue;
        }
        switch (errno) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
            continue;
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
            return true;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            /* Out of descriptors or memory: leave the rest queued for a
             * moment rather than spin. */
            usleep(10 * 1000);
            return true;
        default:
            return false;
        }
    }
}

/* Stops new connections for good (the acceptor's thread, on quiesce):
 * from here the kernel must complete no new handshake, since a connection it
 * completed after our last accept would be reset with its request
 * unanswered. A socket filter that drops every packet stops new SYNs at the
 * listener; what is already queued stays acceptable and is taken over. The
 * listener is then shut down, so that a new attempt (its SYN retried past
 * the filter) is refused at once; ah_httpd_free closes it. */
static void close_listener(ah_httpd *h)
{
    struct sock_filter drop_all[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    struct sock_fprog prog = {.len = 1, .filter = drop_all};
    (void)setsockopt(h->listen_fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
    (void)accept_ready(h);
    (void)shutdown(h->listen_fd, SHUT_RDWR);
}

/* The acceptor: the one thread that accepts, so that every connection is
 * counted (and admitted by the guard) from the moment it leaves the
 * kernel's queue; MHD's own accept leaves a gap before it tells us, in
 * which a drain could close it. It also reaps connections past their
 * deadlines, until ah_httpd_free. */
/* The longest the acceptor sleeps: how late a suspended request's deadline
 * may be seen (ah_ex_suspend: "checked about every second"). */
#define ACCEPTOR_MAX_WAIT_MS 1000L

static void *acceptor_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-accept"); /* top -H, perf */
    ah_httpd *h = arg;
    bool listening = true;
    long wait_ms = -1;
    for (;;) {
        struct pollfd p[2] = {{h->wake[0], POLLIN, 0}, {h->listen_fd, POLLIN, 0}};
        int n = poll(p, listening ? 2 : 1, wait_ms);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            char b = 0;
            if (read(h->wake[0], &b, 1) != 1 || b == 'x')
                break;
            if (b == 'q' && listening) {
                close_listener(h);
                listening = false;
                pthread_mutex_lock(&h->drain_mu);
                h->quiesce_done = true;
                pthread_cond_broadcast(&h->drain_cv);
                pthread_mutex_unlock(&h->drain_mu);
            }
        }
        if (listening && n > 0 && (p[1].revents & POLLIN) && !accept_ready(h))
            listening = false; /* the listener broke: serve what is open */
        (void)ah_conntrack_reap(h->ct, &wait_ms);
        if (atomic_load(&h->npending) > 0)
            pending_expire(h, &wait_ms);
        /* A handler may suspend a request with a deadline at any moment
         * (ah_ex_suspend does not wake this thread: that would cost every
         * suspended request a write and a wake-up), so the deadlines are
         * looked at every ACCEPTOR_MAX_WAIT_MS even with nothing else to
         * wait for: before, with every connection busy in a handler (no
         * connection deadline) and no request suspended yet, the thread
         * slept until the next connection came, and a request suspended
         * meanwhile kept its client waiting past its deadline. */
        if (wait_ms < 0 || wait_ms > ACCEPTOR_MAX_WAIT_MS)
            wait_ms = ACCEPTOR_MAX_WAIT_MS;
    }
    return NULL;
}

static void acceptor_stop(ah_httpd *h)
{
    if (!h->acceptor_running)
        return;
    char b = 'x';
    while (write(h->wake[1], &b, 1) < 0 && errno == EINTR)
        ;
    pthread_join(h->acceptor, NULL);
    h->acceptor_running = false;
}

/* Binds and listens on host:port; the socket, or -1 with a message. */
static int open_listener(ah_httpd *h, bool *v6, char *err, size_t errlen)
{
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)h->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(h->host, port, &hints, &ai);
    if (gai != 0 || ai == NULL) {
        set_err(err, errlen, "httpd: cannot resolve listen host %s: %s", h->host,
                gai != 0 ? gai_strerror(gai) : "no address");
        if (ai != NULL)
            freeaddrinfo(ai);
        return -1;
    }
    *v6 = ai->ai_family == AF_INET6;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
                    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0)) {
        int e = errno;
        close(fd);
        fd = -1;
        errno = e;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        set_err(err, errlen, "httpd: cannot listen on %s:%u (%s)", h->host, (unsigned)h->port,
                strerror(errno));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    h->bound_port = h->port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        h->bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                       : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int ah_httpd_start(ah_httpd *h, char *err, size_t errlen)
{
    if (h == NULL) {
        set_err(err, errlen, "httpd: no server");
        return -1;
    }
    if (h->daemon != NULL) {
        set_err(err, errlen, "httpd: already started");
        return -1;
    }
    bool v6 = false;
    if (h->listen_fd < 0) {
        h->listen_fd = open_listener(h, &v6, err, errlen);
        if (h->listen_fd < 0)
            return -1;
    } else {
        /* The caller's socket (a Unix socket): it has no port. */
        h->bound_port = 0;
        int fl = fcntl(h->listen_fd, F_GETFL);
        if (fl < 0 || fcntl(h->listen_fd, F_SETFL, fl | O_NONBLOCK) != 0) {
            set_err(err, errlen, "httpd: cannot use the given socket (%s)", strerror(errno));
            return -1;
        }
    }
    h->guard.plain_text = h->tls_cert == NULL;
    h->ct = ah_conntrack_new(&h->guard);
    if (h->ct == NULL) {
        set_err(err, errlen, "httpd: out of memory");
        return -1;
    }
    if (pipe2(h->wake, O_CLOEXEC) != 0) {
        h->wake[0] = h->wake[1] = -1;
        set_err(err, errlen, "httpd: cannot create a pipe (%s)", strerror(errno));
        return -1;
    }

    /* MHD never listens: the acceptor hands it each connection
     * (MHD_add_connection from another thread needs MHD_USE_ITC). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME;
    if (v6)
        flags |= MHD_USE_IPv6;
    if (h->tls_cert != NULL)
        flags |= MHD_USE_TLS;
    /* MHD_USE_ERROR_LOG stays off: MHD's messages would go to stderr. */
    struct MHD_OptionItem ops[11];
    size_t n = 0;
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, h};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, AH_HTTPD_CONN_TIMEOUT_S, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                       (intptr_t)AH_HTTPD_CONN_MEMORY, NULL};
    /* The guard admits connections; MHD's own limit (about 1,020 by
     * default) must not refuse what it admitted. MHD splits it evenly among
     * its threads while connections need not spread evenly: give each
     * thread room for all of them. */
    ops[n++] = (struct MHD_OptionItem){
        MHD_OPTION_CONNECTION_LIMIT, (intptr_t)(h->guard.max_total + 16) * (h->threads > 1 ? h->threads : 1),
        NULL};
    if (h->threads > 1)
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, h->threads, NULL};
    if (h->tls_cert != NULL) {
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
    }
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_access, h, MHD_OPTION_ARRAY, ops,
                                 MHD_OPTION_END);
    if (h->daemon == NULL) {
        set_err(err, errlen, "httpd: cannot start serving on %s:%u (%s%s)", h->host,
                (unsigned)h->port, errno != 0 ? strerror(errno) : "unknown error",
                h->tls_cert != NULL ? "; check the TLS certificate and key" : "");
        return -1;
    }
    if (pthread_create(&h->acceptor, NULL, acceptor_main, h) != 0) {
        set_err(err, errlen, "httpd: cannot start the acceptor thread");
        MHD_stop_daemon(h->daemon);
        h->daemon = NULL;
        return -1;
    }
    h->acceptor_running = true;
    return 0;
}

int ah_httpd_quiesce(ah_httpd *h)
{
    if (h == NULL || h->daemon == NULL || h->quiesced || !h->acceptor_running)
        return -1;
    atomic_store(&h->draining, true);
    char b = 'q';
    while (write(h->wake[1], &b, 1) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&h->drain_mu);
    while (!h->quiesce_done)
        pthread_cond_wait(&h->drain_cv, &h->drain_mu);
    pthread_mutex_unlock(&h->drain_mu);
    h->quiesced = true;
    return 0;
}

void ah_httpd_refuse_new(ah_httpd *h)
{
    if (h != NULL)
        atomic_store(&h->refusing, true);
}

long ah_httpd_inflight(const ah_httpd *h)
{
    return h != NULL ? atomic_load(&h->inflight) : 0;
}

bool ah_httpd_wait_idle(ah_httpd *h, long timeout_ms)
{
    if (h == NULL)
        return true;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h->drain_mu);
    int rc = 0;
    while ((atomic_load(&h->inflight) > 0 || atomic_load(&h->fresh) > 0) && rc == 0)
        rc = pthread_cond_timedwait(&h->drain_cv, &h->drain_mu, &until);
    bool idle = atomic_load(&h->inflight) == 0 && atomic_load(&h->fresh) == 0;
    pthread_mutex_unlock(&h->drain_mu);
    return idle;
}

uint16_t ah_httpd_port(const ah_httpd *h)
{
    return h != NULL && h->daemon != NULL ? h->bound_port : 0;
}

void ah_httpd_free(ah_httpd *h)
{
    if (h == NULL)
        return;
    acceptor_stop(h);
    if (h->daemon != NULL) {
        pending_close(h);
        MHD_stop_daemon(h->daemon);
    }
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    for (int i = 0; i < 2; i++)
        if (h->wake[i] >= 0)
            close(h->wake[i]);
    for (size_t i = 0; i < h->nbuckets; i++) {
        ah_route *r = h->buckets[i];
        while (r != NULL) {
            ah_route *next = r->next;
            free(r);
            r = next;
        }
    }
    for (size_t i = 0; i < h->nprefix; i++)
        free(h->prefixes[i]);
    for (size_t i = 0; i < h->ntemplate; i++)
        free(h->templates[i]);
    while (h->retired != NULL) {
        ah_route *next = h->retired->next;
        free(h->retired);
        h->retired = next;
    }
    free(h->prefixes);
    free(h->templates);
    free(h->buckets);
    pthread_cond_destroy(&h->drain_cv);
    pthread_mutex_destroy(&h->drain_mu);
    pthread_rwlock_destroy(&h->lock);
    ah_conntrack_free(h->ct);
    free(h->host);
    free(h->tls_cert);
    if (h->tls_key != NULL) {
        explicit_bzero(h->tls_key, strlen(h->tls_key));
        free(h->tls_key);
    }
    free(h);
}

/* --- additions: hooks, route listing, answered body --------------------- */

void ah_httpd_set_hooks(ah_httpd *h, ah_http_before before, ah_http_after after, void *arg)
{
    if (h == NULL)
        return;
    pthread_rwlock_wrlock(&h->lock);
    h->before = before;
    h->after = after;
    h->hooks_arg = arg;
    pthread_rwlock_unlock(&h->lock);
}

void ah_httpd_each_route(ah_httpd *h,
                         void (*cb)(void *arg, const char *method, const char *path,
                                    unsigned flags),
                         void *arg)
{
    if (h == NULL || pthread_rwlock_rdlock(&h->lock) != 0)
        return;
    for (size_t i = 0; i < h->nbuckets; i++)
        for (ah_route *r = h->buckets[i]; r != NULL; r = r->next)
            cb(arg, r->method, r->path, r->flags);
    for (size_t i = 0; i < h->ntemplate; i++)
        cb(arg, h->templates[i]->method, h->templates[i]->path, h->templates[i]->flags);
    for (size_t i = 0; i < h->nprefix; i++)
        cb(arg, h->prefixes[i]->method, h->prefixes[i]->path, h->prefixes[i]->flags);
    pthread_rwlock_unlock(&h->lock);
}

void ah_ex_capture_response(ah_http_exchange *ex)
{
    ex->capture = true;
}

const char *ah_ex_response_body(const ah_http_exchange *ex, size_t *len)
{
    if (len != NULL)
        *len = ex->resp_body != NULL ? ex->resp_len : 0;
    return ex->resp_body;
}
