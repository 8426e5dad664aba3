/* SPDX-License-Identifier: Apache-2.0 */
/* The outbound HTTP client against simulators on 127.0.0.1. */
#include <check.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "block.h"
#include "httpc.h"
#include "sim.h"

/* Per-route state; the sim's threads and the test share it. */
typedef struct route_state {
    pthread_mutex_t mu;
    int calls;
    int fail_first;          /* answer fail_status this many times */
    int fail_status;
    const char *retry_after; /* header on failures, may be NULL */
    int sleep_ms_first;      /* delay before the first answer */
    struct timespec arrivals[8];
    char last_auth[256];
    char last_body[512];
} route_state;

static void rs_init(route_state *rs)
{
    memset(rs, 0, sizeof(*rs));
    pthread_mutex_init(&rs->mu, NULL);
}

static int rs_calls(route_state *rs)
{
    pthread_mutex_lock(&rs->mu);
    int n = rs->calls;
    pthread_mutex_unlock(&rs->mu);
    return n;
}

static void h_flaky(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    route_state *rs = arg;
    pthread_mutex_lock(&rs->mu);
    int n = rs->calls++;
    if (n < 8)
        clock_gettime(CLOCK_MONOTONIC, &rs->arrivals[n]);
    pthread_mutex_unlock(&rs->mu);
    if (n == 0 && rs->sleep_ms_first > 0)
        usleep((useconds_t)rs->sleep_ms_first * 1000);
    cJSON *o = cJSON_CreateObject();
    if (n < rs->fail_first) {
        cJSON_AddStringToObject(o, "error", "failing");
        ah_sim_json(resp, rs->fail_status, o);
        if (rs->retry_after)
            ah_sim_header_add(resp, "Retry-After", rs->retry_after);
        return;
    }
    cJSON_AddNumberToObject(o, "call", n + 1);
    ah_sim_json(resp, 200, o);
}

static void h_echo(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    route_state *rs = arg;
    const char *auth = ah_sim_header(req, "Authorization");
    const char *xt = ah_sim_header(req, "X-Test");
    const char *ct = ah_sim_header(req, "Content-Type");
    pthread_mutex_lock(&rs->mu);
    rs->calls++;
    snprintf(rs->last_auth, sizeof(rs->last_auth), "%s", auth ? auth : "");
    snprintf(rs->last_body, sizeof(rs->last_body), "%s", req->body);
    pthread_mutex_unlock(&rs->mu);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", req->method);
    cJSON_AddStringToObject(o, "path", req->path);
    cJSON_AddStringToObject(o, "body", req->body);
    cJSON_AddStringToObject(o, "x_test", xt ? xt : "");
    cJSON_AddStringToObject(o, "content_type", ct ? ct : "");
    const char *q = ah_sim_query(req, "q");
    cJSON_AddStringToObject(o, "q", q ? q : "");
    ah_sim_json(resp, 200, o);
}

static void h_big(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    size_t n = 100000;
    char *b = malloc(n + 3);
    ck_assert_ptr_nonnull(b);
    b[0] = '"';
    memset(b + 1, 'x', n);
    b[n + 1] = '"';
    b[n + 2] = '\0';
    resp->body = b;
}

static void h_status(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    route_state *rs = arg;
    pthread_mutex_lock(&rs->mu);
    rs->calls++;
    pthread_mutex_unlock(&rs->mu);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", "nope");
    ah_sim_json(resp, rs->fail_status, o);
}

static ah_sim *sim_with(const ah_sim_opts *o, const char *method, const char *prefix,
                        ah_sim_handler fn, void *arg)
{
    ah_sim *s = ah_sim_new(o);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(ah_sim_route(s, method, prefix, fn, arg), 0);
    ck_assert_int_eq(ah_sim_start(s), 0);
    return s;
}

/* Short backoffs keep the suite fast; the seed keeps jitter reproducible. */
static ah_httpc *client(int max_attempts)
{
    ah_httpc_opts o = {.timeout_ms = 5000, .max_attempts = max_attempts, .backoff_ms = 10,
                       .backoff_max_ms = 50, .seed = 1};
    ah_httpc *c = ah_httpc_new(&o);
    ck_assert_ptr_nonnull(c);
    return c;
}

static ah_http_request get(const char *url)
{
    ah_http_request r = {.struct_size = sizeof(r), .method = "GET", .url = url};
    return r;
}

/* The address guard (ah_httpc_opts.addr_ok) sees the resolved address at
 * connect time and can refuse it: nothing reaches the server. */
static bool refuse_loopback(void *arg, const struct sockaddr *sa)
{
    int *seen = arg;
    (*seen)++;
    return !(sa->sa_family == AF_INET &&
             ((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr)[0] == 127);
}

static bool allow_all(void *arg, const struct sockaddr *sa)
{
    (void)sa;
    (*(int *)arg)++;
    return true;
}

START_TEST(address_guard_at_connect)
{
    route_state rs;
    rs_init(&rs);
    ah_sim *s = sim_with(NULL, "GET", "/ok", h_flaky, &rs);
    char url[128], err[256];
    /* By name: the guard judges the address the name resolved to. */
    snprintf(url, sizeof(url), "http://localhost:%u/ok", (unsigned)ah_sim_port(s));
    int seen = 0;
    ah_httpc_opts o = {.timeout_ms = 5000, .max_attempts = 1, .backoff_ms = 1,
                       .backoff_max_ms = 1, .seed = 1, .addr_ok = refuse_loopback,
                       .addr_ok_arg = &seen};
    ah_httpc *c = ah_httpc_new(&o);
    ck_assert_ptr_nonnull(c);
    ah_http_request req = get(url);
    ah_http_response resp = {.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, NULL, NULL, NULL, NULL, &resp, err, sizeof(err)),
                     -1);
    ck_assert_int_eq(resp.status, 0);
    ah_http_response_free(&resp);
    ah_httpc_free(c);
    ck_assert_int_gt(seen, 0);
    ah_sim_stats st;
    ah_sim_get_stats(s, &st);
    ck_assert_uint_eq(st.requests, 0);

    /* The same request through a guard that allows it arrives. */
    seen = 0;
    o.addr_ok = allow_all;
    c = ah_httpc_new(&o);
    ck_assert_ptr_nonnull(c);
    snprintf(url, sizeof(url), "%s/ok", ah_sim_url(s));
    req = get(url);
    ah_http_response ok = {.struct_size = sizeof(ok)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, NULL, NULL, NULL, NULL, &ok, err, sizeof(err)), 0);
    ck_assert_int_eq(ok.status, 200);
    ck_assert_int_eq(seen, 1);
    ah_http_response_free(&ok);
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

/* What the waits' scheduler sees (block.h): the provider's name, kept,
 * and the wait refused, so that nothing is sent. */
static char waited_on[128];

static bool note_and_refuse(void *arg, const char *on)
{
    (void)arg;
    snprintf(waited_on, sizeof waited_on, "%s", on != NULL ? on : "(unnamed)");
    return false;
}

static void no_end(void *arg)
{
    (void)arg;
}

/* A request's wait is named after its provider as scheme://host:port,
 * the host in lower case and the default port spelled out, so that one
 * provider is counted once however its URLs are written ([core]
 * provider_threads); a refused wait sends nothing. */
START_TEST(wait_named_after_provider)
{
    static const ah_block_hooks hooks = {.begin = note_and_refuse, .end = no_end};
    static const struct {
        const char *url, *on;
    } cases[] = {
        {"HTTP://LocalHost:1/x", "http://localhost:1"},
        {"http://localhost:1/y?z=1", "http://localhost:1"},
        {"https://LOCALHOST/x", "https://localhost:443"},
    };
    ah_httpc_opts o = {.timeout_ms = 5000, .max_attempts = 1, .backoff_ms = 1,
                       .backoff_max_ms = 1, .seed = 1};
    ah_httpc *c = ah_httpc_new(&o);
    ck_assert_ptr_nonnull(c);
    ah_block_install(&hooks);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        waited_on[0] = '\0';
        char err[256];
        ah_http_request req = get(cases[i].url);
        ah_http_response resp = {.struct_size = sizeof(resp)};
        ck_assert_int_eq(ah_httpc_perform(c, &req, NULL, NULL, NULL, NULL, &resp, err, sizeof err),
                         -1);
        ck_assert_msg(strstr(err, "not sent") != NULL, "%s", err);
        ck_assert_str_eq(waited_on, cases[i].on);
        ah_http_response_free(&resp);
    }
    ah_block_install(NULL);
    ah_httpc_free(c);
}
END_TEST

START_TEST(get_json_200)
{
    route_state rs;
    rs_init(&rs);
    ah_sim *s = sim_with(NULL, "GET", "/ok", h_flaky, &rs);
    ah_httpc *c = client(3);
    char url[128], err[256];
    snprintf(url, sizeof(url), "%s/ok", ah_sim_url(s));
    ah_http_request req = get(url);
    ah_http_response resp = {.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, NULL, NULL, NULL, NULL, &resp, err, sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.attempts, 1);
    ck_assert_ptr_nonnull(resp.content_type);
    ck_assert_str_eq(resp.content_type, "application/json");
    cJSON *j = cJSON_ParseWithLength(resp.body, resp.body_len);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "call")->valueint, 1);
    cJSON_Delete(j);
    ah_http_response_free(&resp);
    ck_assert_ptr_null(resp.body);
    ck_assert_int_eq(resp.status, 0);
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

START_TEST(post_body_headers_base_url)
{
    route_state rs;
    rs_init(&rs);
    ah_sim *s = sim_with(NULL, "*", "/echo", h_echo, &rs);
    ah_httpc *c = client(1);
    char base[128], err[256];
    snprintf(base, sizeof(base), "%s/", ah_sim_url(s)); /* trailing '/' is stripped */
    const char *hdrs[] = {"X-Test: yes", "Content-Type: application/json", NULL};
    const char body[] = "{\"a\":1}";
    ah_http_request req = {.struct_size = sizeof(req), .method = "POST", .url = "/echo/x?q=1",
                           .headers = hdrs, .body = body, .body_len = strlen(body),
                           .bearer = "tok-abc"};
    ah_http_response resp = {.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, base, NULL, NULL, NULL, &resp, err, sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 200);
    cJSON *j = cJSON_ParseWithLength(resp.body, resp.body_len);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "method")->valuestring, "POST");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "path")->valuestring, "/echo/x");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "q")->valuestring, "1");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "body")->valuestring, body);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "x_test")->valuestring, "yes");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "content_type")->valuestring, "application/json");
    cJSON_Delete(j);
    ah_http_response_free(&resp);
    ck_assert_str_eq(rs.last_auth, "Bearer tok-abc");

    /* A PUT with a body not NUL-terminated at body_len. */
    req.method = "PUT";
    req.body = "partXXXX";
    req.body_len = 4;
    req.bearer = NULL;
    ck_assert_int_eq(ah_httpc_perform(c, &req, base, NULL, NULL, NULL, &resp, err, sizeof(err)),
                     0);
    j = cJSON_ParseWithLength(resp.body, resp.body_len);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "method")->valuestring, "PUT");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "body")->valuestring, "part");
    cJSON_Delete(j);
    ah_http_response_free(&resp);
    ck_assert_str_eq(rs.last_auth, "");

    /* A relative URL without a base_url is refused. */
    ck_assert_int_eq(ah_httpc_perform(c, &req, NULL, NULL, NULL, NULL, &resp, err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "base_url"));
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

typedef struct obs_log {
    int n;
    long status[16];
    long retry_in[16];
    char *urls[16];
    char *req_bodies[16];
    char *resp_bodies[16];
    int had_error[16];
} obs_log;

static void record(void *arg, const ah_httpc_attempt *a)
{
    obs_log *l = arg;
    if (l->n >= 16)
        return;
    int i = l->n++;
    ck_assert_int_eq(a->attempt, i + 1);
    l->status[i] = a->status;
    l->retry_in[i] = a->retry_in_ms;
    l->urls[i] = strdup(a->url);
    l->req_bodies[i] = a->request_body ? strdup(a->request_body) : NULL;
    l->resp_bodies[i] = a->response_body ? strdup(a->response_body) : NULL;
    l->had_error[i] = a->error != NULL;
}

static void log_free(obs_log *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->urls[i]);
        free(l->req_bodies[i]);
        free(l->resp_bodies[i]);
    }
}

START_TEST(retry_503_then_success)
{
    route_state rs;
    rs_init(&rs);
    rs.fail_first = 2;
    rs.fail_status = 503;
    ah_sim *s = sim_with(NULL, "GET", "/flaky", h_flaky, &rs);
    ah_httpc *c = client(4);
    char err[256];
    ah_http_request req = get("/flaky");
    ah_http_response resp = {.struct_size = sizeof(resp)};
    obs_log log = {0};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, record, &log, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.attempts, 3);
    ck_assert_int_eq(rs_calls(&rs), 3);
    ck_assert_int_eq(log.n, 3);
    ck_assert_int_eq(log.status[0], 503);
    ck_assert_int_eq(log.status[1], 503);
    ck_assert_int_eq(log.status[2], 200);
    ck_assert_int_gt(log.retry_in[0], 0);
    ck_assert_int_le(log.retry_in[0], 50);
    ck_assert_int_eq(log.retry_in[2], 0);
    log_free(&log);
    ah_http_response_free(&resp);
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

/* A request that must not run twice: a 500 or a timeout is not repeated
 * (the provider may have acted), a 503 or a 429 is. */
START_TEST(not_idempotent_retried_only_when_safe)
{
    route_state rs;
    rs_init(&rs);
    rs.fail_first = 1;
    rs.fail_status = 500;
    ah_sim *s = sim_with(NULL, "GET", "/flaky", h_flaky, &rs);
    ah_httpc *c = client(4);
    char err[256];
    ah_http_request req = get("/flaky");
    req.flags = AH_HTTP_NOT_IDEMPOTENT;
    ah_http_response resp = {.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 500);
    ck_assert_int_eq(resp.attempts, 1);
    ck_assert_int_eq(rs_calls(&rs), 1);
    ah_http_response_free(&resp);
    ah_sim_stop(s);

    route_state rs2;
    rs_init(&rs2);
    rs2.fail_first = 1;
    rs2.fail_status = 503;
    s = sim_with(NULL, "GET", "/flaky", h_flaky, &rs2);
    resp = (ah_http_response){.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.attempts, 2);
    ah_http_response_free(&resp);
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

static double elapsed_s(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

START_TEST(retry_after_honoured)
{
    route_state rs;
    rs_init(&rs);
    rs.fail_first = 1;
    rs.fail_status = 429;
    rs.retry_after = "1";
    ah_sim *s = sim_with(NULL, "GET", "/limited", h_flaky, &rs);
    /* backoff_max well above 1 s so that the server's 1 s is what counts. */
    ah_httpc_opts o = {.timeout_ms = 5000, .max_attempts = 3, .backoff_ms = 10,
                       .backoff_max_ms = 5000, .seed = 1};
    ah_httpc *c = ah_httpc_new(&o);
    ck_assert_ptr_nonnull(c);
    char err[256];
    ah_http_request req = get("/limited");
    ah_http_response resp = {.struct_size = sizeof(resp)};
    obs_log log = {0};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, record, &log, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.attempts, 2);
    ck_assert_int_eq(log.retry_in[0], 1000);
    ck_assert_int_eq(rs_calls(&rs), 2);
    /* Behaviour, seen by the server: the second request came after the wait. */
    ck_assert(elapsed_s(&rs.arrivals[0], &rs.arrivals[1]) >= 0.95);
    log_free(&log);
    ah_http_response_free(&resp);
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

START_TEST(retry_after_capped)
{
    route_state rs;
    rs_init(&rs);
    rs.fail_first = 1;
    rs.fail_status = 503;
    rs.retry_after = "3600";
    ah_sim *s = sim_with(NULL, "GET", "/limited", h_flaky, &rs);
    ah_httpc *c = client(3); /* backoff_max 50 ms */
    char err[256];
    ah_http_request req = get("/limited");
    ah_http_response resp = {.struct_size = sizeof(resp)};
    obs_log log = {0};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, record, &log, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.attempts, 2);
    ck_assert_int_eq(log.retry_in[0], 50);
    log_free(&log);
    ah_http_response_free(&resp);
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

START_TEST(no_retry_on_404)
{
    route_state rs;
    rs_init(&rs);
    rs.fail_status = 404;
    ah_sim *s = sim_with(NULL, "GET", "/missing", h_status, &rs);
    ah_httpc *c = client(4);
    char err[256];
    ah_http_request req = get("/missing");
    ah_http_response resp = {.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 404);
    ck_assert_int_eq(resp.attempts, 1);
    ck_assert_int_eq(rs_calls(&rs), 1);
    ah_http_response_free(&resp);
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

START_TEST(persistent_500_exhausts)
{
    route_state rs;
    rs_init(&rs);
    rs.fail_status = 500;
    ah_sim *s = sim_with(NULL, "GET", "/broken", h_status, &rs);
    ah_httpc *c = client(3);
    char err[256];
    ah_http_request req = get("/broken");
    ah_http_response resp = {.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 500);
    ck_assert_int_eq(resp.attempts, 3);
    ck_assert_int_eq(rs_calls(&rs), 3);
    ck_assert_ptr_nonnull(strstr(resp.body, "nope"));
    ah_http_response_free(&resp);

    /* The request's own max_attempts wins over the client default. */
    req.max_attempts = 1;
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.attempts, 1);
    ck_assert_int_eq(rs_calls(&rs), 4);
    ah_http_response_free(&resp);

    /* ...up to the host's own most ([outbound] max_attempts' range): a
     * plugin's 1000 held its thread through a thousand attempts. */
    req.max_attempts = 1000;
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.attempts, AH_HTTPC_MAX_ATTEMPTS);
    ck_assert_int_eq(rs_calls(&rs), 4 + AH_HTTPC_MAX_ATTEMPTS);
    ah_http_response_free(&resp);
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

START_TEST(connection_refused)
{
    route_state rs;
    rs_init(&rs);
    ah_sim *s = sim_with(NULL, "GET", "/ok", h_flaky, &rs);
    char url[128];
    snprintf(url, sizeof(url), "%s/ok", ah_sim_url(s));
    int hold = ah_sim_stop_holding_port(s); /* nothing listens there now */
    ck_assert_int_ge(hold, 0);
    ah_httpc *c = client(2);
    char err[256];
    ah_http_request req = get(url);
    ah_http_response resp = {.struct_size = sizeof(resp)};
    obs_log log = {0};
    ck_assert_int_eq(ah_httpc_perform(c, &req, NULL, NULL, record, &log, &resp, err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "connection refused"));
    ck_assert_ptr_nonnull(strstr(err, "2 attempts"));
    ck_assert_int_eq(resp.attempts, 2);
    ck_assert_ptr_null(resp.body);
    ck_assert_int_eq(log.n, 2);
    ck_assert_int_eq(log.status[0], 0);
    ck_assert(log.had_error[0]);
    log_free(&log);
    ah_http_response_free(&resp);
    ah_httpc_free(c);
    close(hold);
}
END_TEST

START_TEST(timeout_is_retried)
{
    route_state rs;
    rs_init(&rs);
    rs.sleep_ms_first = 1000;
    ah_sim_opts so = {.threads = 4};
    ah_sim *s = sim_with(&so, "GET", "/slow", h_flaky, &rs);
    ah_httpc *c = client(3);
    char err[256];
    ah_http_request req = get("/slow");
    req.timeout_ms = 200;
    ah_http_response resp = {.struct_size = sizeof(resp)};
    obs_log log = {0};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, record, &log, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.attempts, 2);
    ck_assert_int_eq(log.status[0], 0);
    ck_assert(log.had_error[0]);
    ck_assert_int_gt(log.retry_in[0], 0);
    log_free(&log);
    ah_http_response_free(&resp);

    /* Every attempt slow: no response at all. */
    ah_sim_stop(s);
    ah_sim_opts slow = {.p_slow = 1.0, .slow_ms = 1000, .threads = 4};
    s = sim_with(&slow, "GET", "/slow", h_flaky, &rs);
    req.max_attempts = 2;
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "timed out"));
    ck_assert_int_eq(resp.attempts, 2);
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

START_TEST(truncated_delivered_drop_retried)
{
    route_state rs;
    rs_init(&rs);
    ah_sim_opts so = {.seed = 3, .p_truncate = 1.0};
    ah_sim *s = sim_with(&so, "GET", "/items", h_echo, &rs);
    ah_httpc *c = client(3);
    char err[256];
    ah_http_request req = get("/items");
    /* Fresh connections only: on a reused one libcurl resends once by itself
     * when it dies, which would blur the attempt count below. */
    static const char *const close_hdr[] = {"Connection: close", NULL};
    req.headers = close_hdr;
    ah_http_response resp = {.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.attempts, 1);
    ck_assert_uint_gt(resp.body_len, 0);
    cJSON *j = cJSON_ParseWithLength(resp.body, resp.body_len);
    ck_assert_ptr_null(j); /* the caller's parser sees the damage */
    ah_http_response_free(&resp);

    /* Dropped connections are retried until attempts run out. */
    ah_sim_set_faults(s, 0, 0, 1.0, 0, 0);
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     -1);
    ck_assert_int_eq(resp.attempts, 3);
    ah_sim_stats st;
    ah_sim_get_stats(s, &st);
    ck_assert_uint_eq(st.fdrop, 3);
    ah_http_response_free(&resp);
    ah_sim_stop(s);

    /* Fixed seed: some requests are dropped, and each retry eventually lands. */
    ah_sim_opts half = {.seed = 11, .p_drop = 0.5};
    s = sim_with(&half, "GET", "/items", h_echo, &rs);
    ah_httpc_opts co = {.timeout_ms = 5000, .max_attempts = 20, .backoff_ms = 1,
                        .backoff_max_ms = 5, .seed = 1};
    ah_httpc *c2 = ah_httpc_new(&co);
    ck_assert_ptr_nonnull(c2);
    int total_attempts = 0;
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(ah_httpc_perform(c2, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                          sizeof(err)),
                         0);
        ck_assert_int_eq(resp.status, 200);
        total_attempts += resp.attempts;
        ah_http_response_free(&resp);
    }
    ah_sim_get_stats(s, &st);
    ck_assert_uint_gt(st.fdrop, 0);
    ck_assert_int_eq(total_attempts, 10 + (int)st.fdrop);
    ah_httpc_free(c2);
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

START_TEST(response_size_cap)
{
    route_state rs;
    rs_init(&rs);
    ah_sim *s = sim_with(NULL, "GET", "/big", h_big, &rs);
    ah_httpc_opts o = {.max_attempts = 3, .max_response = 1000, .seed = 1};
    ah_httpc *c = ah_httpc_new(&o);
    ck_assert_ptr_nonnull(c);
    char err[256];
    ah_http_request req = get("/big");
    ah_http_response resp = {.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "larger than 1000"));
    ck_assert_int_eq(resp.attempts, 1); /* not retried: it would not shrink */
    ah_http_response_free(&resp);
    ah_httpc_free(c);

    o.max_response = 200000; /* fits */
    c = ah_httpc_new(&o);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_uint_eq(resp.body_len, 100002);
    ah_http_response_free(&resp);
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

START_TEST(observer_sees_no_secret)
{
    route_state rs;
    rs_init(&rs);
    rs.fail_first = 1;
    rs.fail_status = 502;
    ah_sim *s = sim_with(NULL, "*", "/login", h_flaky, &rs);
    ah_httpc *c = client(3);
    char err[256];
    const char body[] = "user=bob&password=hunter2&secret=s%2Fx%20y";
    ah_http_request req = {.struct_size = sizeof(req), .method = "POST",
                           .url = "/login?api_key=KEY123&page=2&x=hunter2", .body = body,
                           .body_len = strlen(body), .bearer = "BEARER-TOKEN-XYZ"};
    const char *const secrets[] = {"hunter2", "s/x y", NULL};
    ah_http_response resp = {.struct_size = sizeof(resp)};
    obs_log log = {0};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), secrets, record, &log, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(log.n, 2);
    for (int i = 0; i < log.n; i++) {
        ck_assert_ptr_null(strstr(log.urls[i], "hunter2"));
        ck_assert_ptr_null(strstr(log.urls[i], "KEY123"));
        ck_assert_ptr_null(strstr(log.urls[i], "BEARER-TOKEN-XYZ"));
        ck_assert_ptr_nonnull(strstr(log.urls[i], "page=2"));
        ck_assert_ptr_nonnull(log.req_bodies[i]);
        ck_assert_ptr_null(strstr(log.req_bodies[i], "hunter2"));
        ck_assert_ptr_null(strstr(log.req_bodies[i], "s%2Fx%20y"));
        ck_assert_ptr_nonnull(strstr(log.req_bodies[i], "user=bob"));
        ck_assert_ptr_nonnull(log.resp_bodies[i]);
    }
    log_free(&log);
    ah_http_response_free(&resp);

    /* The bearer is redacted even where the caller echoes it in the body. */
    rs.fail_first = 0;
    req.body = "token BEARER-TOKEN-XYZ";
    req.body_len = strlen(req.body);
    obs_log log2 = {0};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, record, &log2, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(log2.n, 1);
    ck_assert_ptr_null(strstr(log2.req_bodies[0], "BEARER-TOKEN-XYZ"));
    log_free(&log2);
    ah_http_response_free(&resp);
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

START_TEST(redact_function)
{
    const char *const secrets[] = {"abc", "", "x y", NULL};
    char *r = ah_redact("abc-abcd x y x%20y", secrets);
    ck_assert_str_eq(r, "***-***d *** ***");
    free(r);
    r = ah_redact("nothing", NULL);
    ck_assert_str_eq(r, "nothing");
    free(r);
    /* A secret holding another is masked whole, whatever the order given
     * (was "x***defx"). */
    const char *const nested[] = {"abc", "xabcdefx", NULL};
    r = ah_redact("key=xabcdefx abc", nested);
    ck_assert_str_eq(r, "key=*** ***");
    free(r);
    ck_assert_ptr_null(ah_redact(NULL, secrets));
}
END_TEST

/* A URL as errors and observers show it: secrets, user information
 * (whatever its length, with an '@' in the password) and secret-looking
 * query values masked; the rest as given. */
START_TEST(shown_url_masks_credentials)
{
    const char *const secrets[] = {"T0K", NULL};
    static const struct {
        const char *url, *shown;
    } cases[] = {
        {"http://alice:Sup3r@S3cret@127.0.0.1:1/hook?x=1", "http://***@127.0.0.1:1/hook?x=1"},
        {"https://a@h/p", "https://***@h/p"},
        {"https://@h", "https://***@h"},
        {"http://h/p/T0K?token=abc&v=2#f@g", "http://h/p/***?token=***&v=2#f@g"},
        {"http://h/a@b", "http://h/a@b"},
        {"no scheme@all", "no scheme@all"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *r = ah_httpc_shown_url(cases[i].url, secrets);
        ck_assert_str_eq(r, cases[i].shown);
        free(r);
    }
}
END_TEST

START_TEST(retry_after_parse)
{
    ck_assert_int_eq(ah_retry_after_ms("5", 0), 5000);
    ck_assert_int_eq(ah_retry_after_ms(" 0", 0), 0);
    ck_assert_int_eq(ah_retry_after_ms("soon", 0), -1);
    ck_assert_int_eq(ah_retry_after_ms("", 0), -1);
    ck_assert_int_eq(ah_retry_after_ms(NULL, 0), -1);
    ck_assert_int_eq(ah_retry_after_ms("5x", 0), -1);
    /* 1994-11-06 08:49:37 UTC is 784111777. */
    ck_assert_int_eq(ah_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 30), 30000);
    ck_assert_int_eq(ah_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 30), 0);
}
END_TEST

/* A plain-TCP server that answers whatever arrives with a cleartext HTTP
 * response, so that a client which fell back to plaintext would "succeed".
 * (libmicrohttpd 0.9.75 is not used here: it crashed when stopped while a
 * TLS ClientHello was still queued.) */
typedef struct plain_srv {
    int lfd;
    pthread_t th;
} plain_srv;

static void *plain_main(void *arg)
{
    plain_srv *ps = arg;
    int fd = accept(ps->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buf[4096];
    if (recv(fd, buf, sizeof(buf), 0) > 0) {
        static const char ans[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                  "Connection: close\r\n\r\nok";
        if (send(fd, ans, sizeof(ans) - 1, MSG_NOSIGNAL) < 0)
            (void)0; /* the client may already have given up */
    }
    close(fd);
    return NULL;
}

static uint16_t plain_start(plain_srv *ps)
{
    ps->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(ps->lfd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(ps->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(ps->lfd, 4), 0);
    socklen_t sl = sizeof(sa);
    ck_assert_int_eq(getsockname(ps->lfd, (struct sockaddr *)&sa, &sl), 0);
    ck_assert_int_eq(pthread_create(&ps->th, NULL, plain_main, ps), 0);
    return ntohs(sa.sin_port);
}

START_TEST(tls_always_verified)
{
    /* ah_httpc_opts has no switch to disable verification (only an extra CA
     * bundle). Behaviour checked here: https never falls back to plaintext. */
    plain_srv ps;
    uint16_t port = plain_start(&ps);
    ah_httpc_opts o = {.max_attempts = 1, .timeout_ms = 5000, .seed = 1};
    ah_httpc *c = ah_httpc_new(&o);
    ck_assert_ptr_nonnull(c);
    char url[128], err[256];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/ok", (unsigned)port);
    ah_http_request req = get(url);
    ah_http_response resp = {.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, NULL, NULL, NULL, NULL, &resp, err, sizeof(err)),
                     -1);
    ck_assert_ptr_null(resp.body);
    ck_assert_ptr_nonnull(strstr(err, "TLS"));
    ah_http_response_free(&resp);
    pthread_join(ps.th, NULL);
    close(ps.lfd);

    /* Other schemes are refused outright. */
    req.url = "file:///etc/passwd";
    ck_assert_int_eq(ah_httpc_perform(c, &req, NULL, NULL, NULL, NULL, &resp, err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "unsupported protocol"));
    ah_httpc_free(c);
}
END_TEST

/* ---- outcome classes and writes that must run once ------------------------- */

static ah_http_request post(const char *url)
{
    ah_http_request r = {.struct_size = sizeof(r), .method = "POST", .url = url,
                         .body = "{}", .body_len = 2, .flags = AH_HTTP_NOT_IDEMPOTENT};
    return r;
}

/* Statuses and failures land in their class: 2xx done; 429, 503 and 4xx not
 * done; 500 unknown; nothing listening not done. */
START_TEST(outcome_classes)
{
    static const struct {
        int status;
        ah_http_outcome want;
    } cases[] = {{200, AH_OUTCOME_DONE},     {201, AH_OUTCOME_DONE},
                 {204, AH_OUTCOME_DONE},     {400, AH_OUTCOME_NOT_DONE},
                 {404, AH_OUTCOME_NOT_DONE}, {429, AH_OUTCOME_NOT_DONE},
                 {503, AH_OUTCOME_NOT_DONE}, {500, AH_OUTCOME_UNKNOWN},
                 {502, AH_OUTCOME_UNKNOWN},  {504, AH_OUTCOME_UNKNOWN}};
    ah_httpc *c = client(1);
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        route_state rs;
        rs_init(&rs);
        rs.fail_status = cases[i].status;
        ah_sim *s = sim_with(NULL, "POST", "/w", h_status, &rs);
        ah_http_request req = post("/w");
        ah_http_response resp = {.struct_size = sizeof(resp)};
        ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                          sizeof(err)),
                         0);
        ck_assert_int_eq(resp.status, cases[i].status);
        ck_assert_msg(resp.outcome == (int32_t)cases[i].want, "status %d: outcome %d",
                      cases[i].status, (int)resp.outcome);
        ah_http_response_free(&resp);
        ah_sim_stop(s);
    }
    /* Nothing listens: nothing was sent. */
    route_state rs;
    rs_init(&rs);
    ah_sim *s = sim_with(NULL, "POST", "/w", h_status, &rs);
    char base[64];
    snprintf(base, sizeof base, "%s", ah_sim_url(s));
    ah_sim_stop(s);
    ah_http_request req = post("/w");
    ah_http_response resp = {.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, base, NULL, NULL, NULL, &resp, err, sizeof(err)),
                     -1);
    ck_assert_int_eq(resp.outcome, AH_OUTCOME_NOT_DONE);
    ah_http_response_free(&resp);
    ah_httpc_free(c);
}
END_TEST

/* The provider acts, then the answer is lost or cut: the write is sent once
 * (no retry, even with attempts to spare), a lost answer is unknown and a
 * 2xx cut short is done, delivered with what arrived of its body. */
START_TEST(write_acted_then_lost)
{
    route_state rs;
    rs_init(&rs);
    ah_sim *s = sim_with(NULL, "POST", "/w", h_flaky, &rs);
    ah_httpc *c = client(4);
    char err[256];
    ah_sim_fault_after(s, "POST", "/w", AH_SIM_AFTER_DROP, 1);
    ah_http_request req = post("/w");
    ah_http_response resp = {.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     -1);
    ck_assert_int_eq(resp.outcome, AH_OUTCOME_UNKNOWN);
    ck_assert_int_eq(resp.attempts, 1);
    ck_assert_int_eq(rs_calls(&rs), 1);
    ah_http_response_free(&resp);

    ah_sim_fault_after(s, "POST", "/w", AH_SIM_AFTER_TRUNCATE, 1);
    resp = (ah_http_response){.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(resp.outcome, AH_OUTCOME_DONE);
    ck_assert_int_eq(resp.attempts, 1);
    ck_assert_ptr_nonnull(resp.body);
    ck_assert_ptr_null(cJSON_Parse(resp.body)); /* half a JSON object */
    ck_assert_int_eq(rs_calls(&rs), 2);
    ah_http_response_free(&resp);

    /* The same loss on a read is retried, as before. */
    ah_sim_fault_after(s, "POST", "/w", AH_SIM_AFTER_DROP, 1);
    req.flags = 0;
    resp = (ah_http_response){.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     0);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_int_eq(rs_calls(&rs), 4);
    ah_http_response_free(&resp);
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

/* libcurl re-sends a request whose reused connection dies before any answer
 * byte. A write that the provider carried out before the connection died
 * must not reach it twice: it goes on a fresh connection. */
START_TEST(write_never_resent_on_reused_connection)
{
    route_state rs;
    rs_init(&rs);
    ah_sim *s = ah_sim_new(NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(ah_sim_route(s, "*", "/w", h_flaky, &rs), 0);
    ck_assert_int_eq(ah_sim_start(s), 0);
    ah_httpc *c = client(1); /* no retry of ours: only libcurl's could add one */
    char err[256];
    for (int flagged = 0; flagged < 2; flagged++) {
        /* A read leaves a kept-alive connection in the client's pool. */
        ah_http_request g = get("/w");
        ah_http_response resp = {.struct_size = sizeof(resp)};
        ck_assert_int_eq(ah_httpc_perform(c, &g, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                          sizeof(err)),
                         0);
        ah_http_response_free(&resp);
        int before = rs_calls(&rs);
        ah_sim_fault_after(s, "POST", "/w", AH_SIM_AFTER_DROP, 1);
        ah_http_request req = post("/w");
        req.flags = flagged ? AH_HTTP_NOT_IDEMPOTENT : 0;
        resp = (ah_http_response){.struct_size = sizeof(resp)};
        (void)ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err, sizeof(err));
        ah_http_response_free(&resp);
        ah_sim_fault_after(s, "POST", "/w", AH_SIM_AFTER_NONE, 0);
        if (flagged)
            ck_assert_int_eq(rs_calls(&rs) - before, 1);
        else /* what libcurl does on its own on a reused connection */
            ck_assert_int_eq(rs_calls(&rs) - before, 2);
    }
    ah_httpc_free(c);
    ah_sim_stop(s);
}
END_TEST

/* A plugin built before `outcome` hands over a shorter response: freeing it
 * clears what it has and nothing after. */
START_TEST(response_free_keeps_to_struct_size)
{
    enum { OLD = offsetof(ah_http_response, outcome) };
    union {
        ah_http_response r;
        unsigned char b[sizeof(ah_http_response) + 8];
    } u;
    memset(u.b, 0xA5, sizeof u.b);
    memset(u.b, 0, OLD);
    u.r.struct_size = OLD;
    u.r.body = strdup("x");
    ck_assert_ptr_nonnull(u.r.body);
    ah_http_response_free(&u.r);
    ck_assert_ptr_null(u.r.body);
    ck_assert_uint_eq(u.r.struct_size, OLD);
    for (size_t i = OLD; i < sizeof u.b; i++)
        ck_assert_uint_eq(u.b[i], 0xA5);
}
END_TEST

/* A write sent and then timed out may be running at the provider: its
 * outcome is unknown and it is not sent again. */
START_TEST(write_timeout_is_unknown)
{
    route_state rs;
    rs_init(&rs);
    rs.sleep_ms_first = 1000;
    ah_sim_opts so = {.threads = 4};
    ah_sim *s = sim_with(&so, "POST", "/slow", h_flaky, &rs);
    ah_httpc *c = client(3);
    char err[256];
    ah_http_request req = post("/slow");
    req.timeout_ms = 200;
    ah_http_response resp = {.struct_size = sizeof(resp)};
    ck_assert_int_eq(ah_httpc_perform(c, &req, ah_sim_url(s), NULL, NULL, NULL, &resp, err,
                                      sizeof(err)),
                     -1);
    ck_assert_int_eq(resp.outcome, AH_OUTCOME_UNKNOWN);
    ck_assert_int_eq(resp.attempts, 1);
    ck_assert_ptr_nonnull(strstr(err, "timed out"));
    ah_http_response_free(&resp);
    ah_httpc_free(c);
    ah_sim_stop(s);
    ck_assert_int_eq(rs_calls(&rs), 1);
}
END_TEST

static Suite *httpc_suite(void)
{
    Suite *s = suite_create("httpc");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, get_json_200);
    tcase_add_test(tc, post_body_headers_base_url);
    tcase_add_test(tc, retry_503_then_success);
    tcase_add_test(tc, not_idempotent_retried_only_when_safe);
    tcase_add_test(tc, outcome_classes);
    tcase_add_test(tc, write_acted_then_lost);
    tcase_add_test(tc, write_never_resent_on_reused_connection);
    tcase_add_test(tc, response_free_keeps_to_struct_size);
    tcase_add_test(tc, write_timeout_is_unknown);
    tcase_add_test(tc, retry_after_honoured);
    tcase_add_test(tc, retry_after_capped);
    tcase_add_test(tc, no_retry_on_404);
    tcase_add_test(tc, persistent_500_exhausts);
    tcase_add_test(tc, connection_refused);
    tcase_add_test(tc, timeout_is_retried);
    tcase_add_test(tc, truncated_delivered_drop_retried);
    tcase_add_test(tc, response_size_cap);
    tcase_add_test(tc, observer_sees_no_secret);
    tcase_add_test(tc, redact_function);
    tcase_add_test(tc, shown_url_masks_credentials);
    tcase_add_test(tc, retry_after_parse);
    tcase_add_test(tc, tls_always_verified);
    tcase_add_test(tc, address_guard_at_connect);
    tcase_add_test(tc, wait_named_after_provider);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(httpc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
