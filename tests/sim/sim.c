/* SPDX-License-Identifier: Apache-2.0 */
#include "sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

/* Requests larger than this are answered 413; simulators never need more. */
#define SIM_MAX_BODY (16u * 1024u * 1024u)

typedef struct sim_route {
    char *method;
    char *prefix;
    size_t prefix_len;
    ah_sim_handler fn;
    void *arg;
} sim_route;

struct ah_sim {
    ah_sim_opts opts;
    char *no_fault_prefix;
    sim_route *routes;
    size_t nroutes, cap_routes;
    struct MHD_Daemon *daemon;
    uint16_t port;
    char url[40];

    pthread_mutex_t mu; /* guards rng, probabilities, stats, stopping */
    pthread_cond_t stop_cv;
    bool stopping;
    uint64_t rng;
    double p_429, p_5xx, p_drop, p_slow, p_truncate;
    double retry_at; /* monotonic seconds: the last injected 429's Retry-After */
    unsigned long next_5xx;
    ah_sim_stats stats;
    /* The armed after-the-act fault (ah_sim_fault_after). */
    ah_sim_after after_kind;
    int after_count;
    char after_method[16], after_prefix[256];
};

/* Per-request upload state, kept in MHD's con_cls. */
typedef struct sim_upload {
    char *buf;
    size_t len, cap;
    bool too_big;
} sim_upload;

typedef enum { FAULT_NONE, FAULT_429, FAULT_5XX, FAULT_DROP, FAULT_SLOW, FAULT_TRUNC } sim_fault;

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rand01(uint64_t *state)
{
    return (double)(splitmix64(state) >> 11) * 0x1.0p-53;
}

ah_sim *ah_sim_new(const ah_sim_opts *opts)
{
    ah_sim *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (opts)
        s->opts = *opts;
    if (s->opts.retry_after_s <= 0)
        s->opts.retry_after_s = 1;
    if (s->opts.slow_ms <= 0)
        s->opts.slow_ms = 200;
    if (s->opts.threads <= 0)
        s->opts.threads = 2;
    if (s->opts.no_fault_prefix && s->opts.no_fault_prefix[0]) {
        s->no_fault_prefix = strdup(s->opts.no_fault_prefix);
        if (!s->no_fault_prefix) {
            free(s);
            return NULL;
        }
    }
    s->opts.no_fault_prefix = s->no_fault_prefix;
    s->rng = s->opts.seed;
    s->p_429 = s->opts.p_429;
    s->p_5xx = s->opts.p_5xx;
    s->p_drop = s->opts.p_drop;
    s->p_slow = s->opts.p_slow;
    s->p_truncate = s->opts.p_truncate;

    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        goto fail_free;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&s->stop_cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        goto fail_free;
    }
    pthread_condattr_destroy(&ca);
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        pthread_cond_destroy(&s->stop_cv);
        goto fail_free;
    }
    return s;

fail_free:
    free(s->no_fault_prefix);
    free(s);
    return NULL;
}

int ah_sim_route(ah_sim *s, const char *method, const char *prefix,
                 ah_sim_handler fn, void *arg)
{
    if (!s || !method || !prefix || !fn || s->daemon)
        return -1;
    if (s->nroutes == s->cap_routes) {
        size_t ncap = s->cap_routes ? s->cap_routes * 2 : 8;
        sim_route *n = realloc(s->routes, ncap * sizeof(*n));
        if (!n)
            return -1;
        s->routes = n;
        s->cap_routes = ncap;
    }
    sim_route *r = &s->routes[s->nroutes];
    r->method = strdup(method);
    r->prefix = strdup(prefix);
    if (!r->method || !r->prefix) {
        free(r->method);
        free(r->prefix);
        return -1;
    }
    r->prefix_len = strlen(prefix);
    r->fn = fn;
    r->arg = arg;
    s->nroutes++;
    return 0;
}

static const sim_route *find_route(const ah_sim *s, const char *method, const char *path)
{
    const sim_route *best = NULL;
    for (size_t i = 0; i < s->nroutes; i++) {
        const sim_route *r = &s->routes[i];
        if (strcmp(r->method, "*") != 0 && strcasecmp(r->method, method) != 0)
            continue;
        if (strncmp(path, r->prefix, r->prefix_len) != 0)
            continue;
        /* An exact-method route beats "*" of the same length. */
        if (!best || r->prefix_len > best->prefix_len ||
            (r->prefix_len == best->prefix_len && strcmp(best->method, "*") == 0))
            best = r;
    }
    return best;
}

/* Draws one number per fault kind for every non-exempt request, so that the
 * sequence stays aligned with the request order whatever the outcome. */
static sim_fault draw_fault(ah_sim *s, const char *path, int *status_5xx)
{
    sim_fault f = FAULT_NONE;
    pthread_mutex_lock(&s->mu);
    s->stats.requests++;
    bool exempt = s->no_fault_prefix &&
                  strncmp(path, s->no_fault_prefix, strlen(s->no_fault_prefix)) == 0;
    if (!exempt) {
        double now = 0;
        if (s->p_429 > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
            if (now < s->retry_at)
                s->stats.early429++;
        }
        double u429 = rand01(&s->rng), u5xx = rand01(&s->rng), udrop = rand01(&s->rng),
               uslow = rand01(&s->rng), utrunc = rand01(&s->rng);
        if (u429 < s->p_429) {
            f = FAULT_429;
            s->stats.f429++;
            s->retry_at = now + s->opts.retry_after_s;
        } else if (u5xx < s->p_5xx) {
            static const int codes[] = {500, 502, 503};
            f = FAULT_5XX;
            *status_5xx = codes[s->next_5xx++ % 3];
            s->stats.f5xx++;
        } else if (udrop < s->p_drop) {
            f = FAULT_DROP;
            s->stats.fdrop++;
        } else if (uslow < s->p_slow) {
            f = FAULT_SLOW;
            s->stats.fslow++;
        } else if (utrunc < s->p_truncate) {
            f = FAULT_TRUNC; /* counted when a body was actually cut */
        }
    }
    pthread_mutex_unlock(&s->mu);
    return f;
}

/* Sleeps in the MHD thread, but wakes early when the sim is stopping so that
 * ah_sim_stop never waits out a long delay. */
static void sim_sleep(ah_sim *s, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        int rc = pthread_cond_timedwait(&s->stop_cv, &s->mu, &until);
        if (rc == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&s->mu);
}

static void resp_clear(ah_sim_resp *r)
{
    free(r->body);
    r->body = NULL;
    for (size_t i = 0; i < sizeof(r->headers) / sizeof(r->headers[0]); i++) {
        free(r->headers[i]);
        r->headers[i] = NULL;
    }
}

static enum MHD_Result queue(struct MHD_Connection *conn, ah_sim_resp *r, size_t body_len)
{
    struct MHD_Response *mr;
    if (r->body) {
        mr = MHD_create_response_from_buffer(body_len, r->body, MHD_RESPMEM_MUST_FREE);
        if (!mr)
            return MHD_NO;
        r->body = NULL; /* owned by MHD now */
    } else {
        mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!mr)
            return MHD_NO;
    }
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "application/json");
    for (size_t i = 0; i < sizeof(r->headers) / sizeof(r->headers[0]); i++) {
        char *h = r->headers[i];
        if (!h)
            continue;
        char *colon = strchr(h, ':');
        if (!colon)
            continue;
        *colon = '\0';
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        MHD_add_response_header(mr, h, v);
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)(r->status ? r->status : 200), mr);
    MHD_destroy_response(mr);
    return ret;
}

/* Takes one use of the armed after-the-act fault when it matches. */
static ah_sim_after take_after(ah_sim *s, const char *method, const char *path)
{
    ah_sim_after k = AH_SIM_AFTER_NONE;
    pthread_mutex_lock(&s->mu);
    if (s->after_kind != AH_SIM_AFTER_NONE && s->after_count > 0 &&
        (strcmp(s->after_method, "*") == 0 || strcasecmp(s->after_method, method) == 0) &&
        strncmp(path, s->after_prefix, strlen(s->after_prefix)) == 0) {
        k = s->after_kind;
        if (--s->after_count == 0)
            s->after_kind = AH_SIM_AFTER_NONE;
        s->stats.fafter++;
    }
    pthread_mutex_unlock(&s->mu);
    return k;
}

void ah_sim_fault_after(ah_sim *s, const char *method, const char *prefix, ah_sim_after kind,
                        int count)
{
    pthread_mutex_lock(&s->mu);
    s->after_kind = count > 0 ? kind : AH_SIM_AFTER_NONE;
    s->after_count = count > 0 ? count : 0;
    snprintf(s->after_method, sizeof s->after_method, "%s", method ? method : "*");
    snprintf(s->after_prefix, sizeof s->after_prefix, "%s", prefix ? prefix : "/");
    pthread_mutex_unlock(&s->mu);
}

/* A body that MHD sends up to `cut` bytes of, announcing `len`. */
typedef struct sim_cut {
    char *body;
    size_t len, cut;
} sim_cut;

static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    sim_cut *c = cls;
    if (pos >= c->cut)
        return MHD_CONTENT_READER_END_WITH_ERROR; /* MHD closes the connection */
    size_t n = c->cut - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, c->body + pos, n);
    return (ssize_t)n;
}

static void cut_free(void *cls)
{
    sim_cut *c = cls;
    free(c->body);
    free(c);
}

/* Queues `r` announcing its whole length but sending only half the body. */
static enum MHD_Result queue_cut(struct MHD_Connection *conn, ah_sim_resp *r, size_t len)
{
    sim_cut *c = calloc(1, sizeof *c);
    if (c == NULL)
        return MHD_NO;
    c->body = r->body;
    c->len = len;
    c->cut = len / 2;
    r->body = NULL;
    struct MHD_Response *mr = MHD_create_response_from_callback(len, 1024, cut_reader, c, cut_free);
    if (mr == NULL) {
        cut_free(c);
        return MHD_NO;
    }
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)(r->status ? r->status : 200), mr);
    MHD_destroy_response(mr);
    return ret;
}

static enum MHD_Result simple(struct MHD_Connection *conn, int status, const char *json,
                              const char *hname, const char *hval)
{
    ah_sim_resp r = {.status = status};
    r.body = strdup(json);
    if (!r.body)
        return MHD_NO;
    if (hname)
        ah_sim_header_add(&r, hname, hval);
    enum MHD_Result ret = queue(conn, &r, strlen(json));
    resp_clear(&r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    ah_sim *s = cls;
    sim_upload *up = *con_cls;
    if (!up) {
        up = calloc(1, sizeof(*up));
        if (!up)
            return MHD_NO;
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (up->too_big || up->len + n > SIM_MAX_BODY) {
            up->too_big = true;
            return MHD_YES;
        }
        if (up->len + n + 1 > up->cap) {
            size_t ncap = up->cap ? up->cap : 4096;
            while (ncap < up->len + n + 1)
                ncap *= 2;
            char *nb = realloc(up->buf, ncap);
            if (!nb)
                return MHD_NO;
            up->buf = nb;
            up->cap = ncap;
        }
        memcpy(up->buf + up->len, upload_data, n);
        up->len += n;
        up->buf[up->len] = '\0';
        return MHD_YES;
    }

    if (up->too_big)
        return simple(conn, 413, "{\"error\":\"body_too_large\"}", NULL, NULL);

    int status_5xx = 500;
    sim_fault f = draw_fault(s, url, &status_5xx);
    switch (f) {
    case FAULT_429: {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", s->opts.retry_after_s);
        return simple(conn, 429, "{\"error\":\"rate_limited\"}", "Retry-After", ra);
    }
    case FAULT_5XX:
        return simple(conn, status_5xx, "{\"error\":\"simulated_failure\"}", NULL, NULL);
    case FAULT_DROP:
        return MHD_NO; /* MHD closes the socket without answering */
    case FAULT_SLOW:
        sim_sleep(s, s->opts.slow_ms);
        break;
    default:
        break;
    }

    const sim_route *rt = find_route(s, method, url);
    if (!rt)
        return simple(conn, 404, "{\"error\":\"not_found\"}", NULL, NULL);

    ah_sim_req req = {
        .method = method,
        .path = url,
        .body = up->buf ? up->buf : "",
        .body_len = up->len,
        .conn = conn,
    };
    ah_sim_resp resp = {.status = 200};
    rt->fn(rt->arg, &req, &resp);
    size_t len = resp.body ? strlen(resp.body) : 0;
    ah_sim_after after = take_after(s, method, url);
    if (after == AH_SIM_AFTER_DROP) {
        resp_clear(&resp);
        return MHD_NO; /* acted, then the socket closes without an answer */
    }
    if (after == AH_SIM_AFTER_TRUNCATE && len > 1) {
        enum MHD_Result ret = queue_cut(conn, &resp, len);
        resp_clear(&resp);
        return ret;
    }
    if (f == FAULT_TRUNC && len > 0) {
        len /= 2;
        pthread_mutex_lock(&s->mu);
        s->stats.ftrunc++;
        pthread_mutex_unlock(&s->mu);
    }
    enum MHD_Result ret = queue(conn, &resp, len);
    resp_clear(&resp);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    sim_upload *up = *con_cls;
    if (up) {
        free(up->buf);
        free(up);
        *con_cls = NULL;
    }
}

int ah_sim_start(ah_sim *s)
{
    if (!s || s->daemon)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(s->opts.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s->opts.thread_per_connection)
        s->daemon = MHD_start_daemon(
            MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, s->opts.port, NULL,
            NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60, MHD_OPTION_END);
    else
        s->daemon = MHD_start_daemon(
            MHD_USE_AUTO_INTERNAL_THREAD, s->opts.port, NULL, NULL, on_request, s,
            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)s->opts.threads,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
            MHD_OPTION_END);
    if (!s->daemon)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || info->port == 0) {
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
        return -1;
    }
    s->port = info->port;
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u", (unsigned)s->port);
    return 0;
}

uint16_t ah_sim_port(const ah_sim *s)
{
    return s ? s->port : 0;
}

const char *ah_sim_url(const ah_sim *s)
{
    return s ? s->url : "";
}

void ah_sim_stop(ah_sim *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->stop_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    for (size_t i = 0; i < s->nroutes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].prefix);
    }
    free(s->routes);
    free(s->no_fault_prefix);
    pthread_cond_destroy(&s->stop_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int ah_sim_stop_holding_port(ah_sim *s)
{
    if (s == NULL)
        return -1;
    uint16_t port = ah_sim_port(s);
    ah_sim_stop(s);
    if (port == 0) /* it never listened: there is no port to keep */
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1; /* past the TIME_WAIT of the server's own connections */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

const char *ah_sim_header(const ah_sim_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *ah_sim_query(const ah_sim_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

void ah_sim_json(ah_sim_resp *resp, int status, cJSON *body)
{
    resp->status = status;
    free(resp->body);
    resp->body = body ? cJSON_PrintUnformatted(body) : NULL;
    resp->content_type = "application/json";
    cJSON_Delete(body);
}

void ah_sim_header_add(ah_sim_resp *resp, const char *name, const char *value)
{
    for (size_t i = 0; i < sizeof(resp->headers) / sizeof(resp->headers[0]); i++) {
        if (resp->headers[i])
            continue;
        if (asprintf(&resp->headers[i], "%s: %s", name, value) < 0)
            resp->headers[i] = NULL;
        return;
    }
}

void ah_sim_get_stats(ah_sim *s, ah_sim_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

void ah_sim_set_faults(ah_sim *s, double p_429, double p_5xx, double p_drop,
                       double p_slow, double p_truncate)
{
    pthread_mutex_lock(&s->mu);
    s->p_429 = p_429;
    s->p_5xx = p_5xx;
    s->p_drop = p_drop;
    s->p_slow = p_slow;
    s->p_truncate = p_truncate;
    pthread_mutex_unlock(&s->mu);
}

char *ah_sim_form_decode(const char *s, size_t len)
{
    char *v = strndup(s, len);
    if (v == NULL)
        return NULL;
    for (char *c = v; *c; c++)
        if (*c == '+')
            *c = ' ';
    MHD_http_unescape(v);
    return v;
}

char *ah_sim_form_value(const char *body, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = body; p != NULL && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=')
            return ah_sim_form_decode(p + klen + 1, len - klen - 1);
        p = end ? end + 1 : NULL;
    }
    return NULL;
}
