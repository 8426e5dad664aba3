/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"
#include "json.h"
#include "support/json_nest.h"

/* --- client side helpers ------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t on_write(char *data, size_t sz, size_t nm, void *ud)
{
    buf *b = ud;
    size_t n = sz * nm;
    char *np = realloc(b->p, b->n + n + 1);
    if (np == NULL)
        return 0;
    memcpy(np + b->n, data, n);
    b->p = np;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

typedef struct reply {
    long status;
    char *body;
    char ctype[128];
    char allow[128];
    CURLcode rc;
} reply;

static void reply_free(reply *r)
{
    free(r->body);
    r->body = NULL;
}

typedef struct chunk_src {
    size_t left;
} chunk_src;

static size_t on_read(char *dst, size_t sz, size_t nm, void *ud)
{
    chunk_src *s = ud;
    size_t n = sz * nm;
    if (n > 512)
        n = 512; /* several chunks */
    if (n > s->left)
        n = s->left;
    memset(dst, 'x', n);
    s->left -= n;
    return n;
}

typedef struct req {
    const char *method;
    const char *url_path; /* with the query */
    const char *body;
    long body_len; /* -1: strlen(body) */
    size_t chunked_len; /* > 0: send that many bytes chunked */
    const char *header; /* one extra request header */
    bool tls;
    const char *cainfo;
} req;

static reply do_req_on(CURL *c, uint16_t port, const req *q)
{
    reply r = {0};
    buf b = {0};
    char url[4096];
    snprintf(url, sizeof url, "%s://127.0.0.1:%u%s", q->tls ? "https" : "http", (unsigned)port,
             q->url_path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (q->cainfo != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, q->cainfo);
    struct curl_slist *hl = NULL;
    if (q->header != NULL)
        hl = curl_slist_append(hl, q->header);
    chunk_src src = {q->chunked_len};
    if (q->chunked_len > 0) {
        hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &src);
    } else if (q->body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE,
                         q->body_len >= 0 ? q->body_len : (long)strlen(q->body));
    }
    if (q->method != NULL)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
    if (hl != NULL)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    r.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    char *ct = NULL;
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL)
        snprintf(r.ctype, sizeof r.ctype, "%s", ct);
    struct curl_header *h = NULL;
    if (curl_easy_header(c, "Allow", 0, CURLH_HEADER, -1, &h) == CURLHE_OK)
        snprintf(r.allow, sizeof r.allow, "%s", h->value);
    curl_slist_free_all(hl);
    r.body = b.p != NULL ? b.p : strdup("");
    return r;
}

static reply do_req(uint16_t port, const req *q)
{
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    reply r = do_req_on(c, port, q);
    curl_easy_cleanup(c);
    return r;
}

static reply get(uint16_t port, const char *path)
{
    req q = {.url_path = path};
    return do_req(port, &q);
}

/* The error code of an error envelope, or "" (the result is static text of
 * the reply, copied into out). */
static const char *err_code(const reply *r, char *out, size_t cap)
{
    out[0] = '\0';
    cJSON *j = cJSON_Parse(r->body);
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"), "code");
    if (cJSON_IsString(code))
        snprintf(out, cap, "%s", code->valuestring);
    cJSON_Delete(j);
    return out;
}

#define ck_assert_error(r, st, code)                                                           \
    do {                                                                                       \
        char code_buf_[64];                                                                    \
        ck_assert_int_eq((r).rc, CURLE_OK);                                                    \
        ck_assert_int_eq((r).status, (st));                                                    \
        ck_assert_str_eq(err_code(&(r), code_buf_, sizeof code_buf_), (code));                 \
        ck_assert_str_eq((r).ctype, "application/json");                                      \
    } while (0)

/* A loopback connection to port, reads timing out after 10 s. */
/* A connection to 127.0.0.1:port from 127.0.0.<from> (a client address of
 * its own for the server's guard; all of 127/8 is loopback). */
static int dial_from(uint16_t port, uint8_t from)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (from != 1) {
        struct sockaddr_in me = {.sin_family = AF_INET};
        me.sin_addr.s_addr = htonl((INADDR_LOOPBACK & ~0xffu) | from);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static int dial_loopback(uint16_t port)
{
    return dial_from(port, 1);
}

/* Sends raw bytes from 127.0.0.<from> and reads until the server closes or
 * 10 s pass. */
static char *raw_from(uint8_t from, uint16_t port, const char *data, size_t len, bool shut_wr)
{
    int fd = dial_from(port, from);
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);
        ck_assert_int_gt(n, 0);
        off += (size_t)n;
    }
    if (shut_wr)
        shutdown(fd, SHUT_WR);
    buf b = {0};
    char tmp[4096];
    for (;;) {
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0)
            break;
        ck_assert_uint_eq(on_write(tmp, 1, (size_t)n, &b), (size_t)n);
    }
    close(fd);
    return b.p != NULL ? b.p : strdup("");
}

/* Sends raw bytes and reads until the server closes or 10 s pass. */
static char *raw(uint16_t port, const char *data, size_t len, bool shut_wr)
{
    return raw_from(1, port, data, len, shut_wr);
}

/* --- server side --------------------------------------------------------- */

typedef struct done_log {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int count;
    int last_status;
    char last_path[256];
    char last_method[16];
    double last_elapsed;
} done_log;

static void on_done(void *arg, const ah_http_exchange *ex)
{
    done_log *d = arg;
    pthread_mutex_lock(&d->mu);
    d->count++;
    d->last_status = ah_ex_status(ex);
    snprintf(d->last_path, sizeof d->last_path, "%s", ah_ex_path(ex));
    snprintf(d->last_method, sizeof d->last_method, "%s", ah_ex_method(ex));
    d->last_elapsed = ah_ex_elapsed_s(ex);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static ah_httpd *start_full(size_t max_body, int threads, const char *cert, const char *key,
                            done_log *d)
{
    char err[256] = "";
    ah_httpd_opts o = {
        .host = "127.0.0.1",
        .port = 0,
        .max_body = max_body,
        .threads = threads,
        .tls_cert_pem = cert,
        .tls_key_pem = key,
        .on_done = d != NULL ? on_done : NULL,
        .on_done_arg = d,
    };
    ah_httpd *h = ah_httpd_new(&o, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    return h;
}

static void start_or_die(ah_httpd *h)
{
    char err[256] = "";
    ck_assert_msg(ah_httpd_start(h, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_ne(ah_httpd_port(h), 0);
}

static void h_hello(void *arg, ah_http_exchange *ex)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 1);
    cJSON_AddStringToObject(o, "method", ah_ex_method(ex));
    cJSON_AddStringToObject(o, "path", ah_ex_path(ex));
    cJSON_AddStringToObject(o, "subpath", ah_ex_subpath(ex));
    cJSON_AddStringToObject(o, "tag", arg != NULL ? (const char *)arg : "");
    ah_ex_respond_json(ex, 200, o);
}

static void h_echo_json(void *arg, ah_http_exchange *ex)
{
    const cJSON *j = ah_ex_json(ex);
    if (j == NULL)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "got", cJSON_Duplicate(j, 1));
    ah_ex_respond_json(ex, 200, o);
}

static void h_body_len(void *arg, ah_http_exchange *ex)
{
    size_t n = 0;
    const char *b = ah_ex_body(ex, &n);
    char out[64];
    int k = snprintf(out, sizeof out, "%zu:%.3s", n, b);
    ah_ex_respond(ex, 200, "text/plain", out, (size_t)k);
}

static void h_info(void *arg, ah_http_exchange *ex)
{
    const char *hv = ah_ex_header(ex, "x-test-header");
    const char *qv = ah_ex_query(ex, "q");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "header", hv != NULL ? hv : "(null)");
    cJSON_AddStringToObject(o, "query", qv != NULL ? qv : "(null)");
    cJSON_AddStringToObject(o, "ip", ah_ex_client_ip(ex));
    cJSON_AddStringToObject(o, "path", ah_ex_path(ex));
    ah_ex_add_header(ex, "X-Reply", "yes");
    ah_ex_respond_json(ex, 200, o);
}

static void h_silent(void *arg, ah_http_exchange *ex)
{
}

static void h_error(void *arg, ah_http_exchange *ex)
{
    ah_ex_error(ex, ah_http_status_for_code("conflict"), "conflict", "already %s", "there");
}

/* A string field of a JSON reply, copied into out. */
static const char *field(const reply *r, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    cJSON *j = cJSON_Parse(r->body);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (cJSON_IsString(v))
        snprintf(out, cap, "%s", v->valuestring);
    cJSON_Delete(j);
    return out;
}

/* --- tests ---------------------------------------------------------------- */

/* A connection the caller made itself (ah_httpd_add_socket, as the fuzz
 * harness does with a socketpair) is served like an accepted one, with the
 * client address given; a request cut short by the client's end of stream
 * (its data and end of stream sent together) is closed then, not at the
 * header deadline (60 s here, longer than the 20 s the test reads for);
 * a quiescing server refuses the socket. */
static ssize_t read_all(int fd, char *out, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, out + got, cap - 1 - got, 0);
        if (n == 0)
            break;
        if (n < 0)
            return -1; /* timeout or reset */
        got += (size_t)n;
        if (got == cap - 1)
            break;
    }
    out[got] = '\0';
    return (ssize_t)got;
}

static int served_pair(ah_httpd *h, const char *ip)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(4242)};
    ck_assert_int_eq(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    int rc = ah_httpd_add_socket(h, sv[1], (struct sockaddr *)&sa, sizeof sa);
    if (rc != 0) {
        char c;
        ck_assert_int_eq(recv(sv[0], &c, 1, 0), 0); /* closed: end of stream */
        close(sv[0]);
        return -1;
    }
    return sv[0];
}

START_TEST(test_add_socket)
{
    char err[256] = "";
    ah_httpd_opts o = {.host = "127.0.0.1", .threads = 2, .header_timeout_ms = 60000};
    ah_httpd *h = ah_httpd_new(&o, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/info", 0, h_info, NULL), 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    ck_assert_int_eq(ah_httpd_add_socket(h, fd, (struct sockaddr *)&sa, sizeof sa), -1);
    start_or_die(h);

    int c = served_pair(h, "192.0.2.7");
    static const char get_req[] = "GET /info?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ck_assert_int_eq(send(c, get_req, sizeof get_req - 1, MSG_NOSIGNAL),
                     (ssize_t)(sizeof get_req - 1));
    char answer[4096];
    ck_assert_int_gt(read_all(c, answer, sizeof answer), 0);
    ck_assert_msg(strncmp(answer, "HTTP/1.1 200", 12) == 0, "%s", answer);
    ck_assert_msg(strstr(answer, "\"ip\":\"192.0.2.7\"") != NULL, "%s", answer);
    close(c);

    /* cut short: request line and part of the headers, then the end */
    c = served_pair(h, "192.0.2.7");
    static const char part[] = "GET /info HTTP/1.1\r\nHost: x\r\n";
    ck_assert_int_eq(send(c, part, sizeof part - 1, MSG_NOSIGNAL), (ssize_t)(sizeof part - 1));
    ck_assert_int_eq(shutdown(c, SHUT_WR), 0);
    ck_assert_int_eq(read_all(c, answer, sizeof answer), 0);
    close(c);

    /* cut short in the request line: no part of a request was read */
    c = served_pair(h, "192.0.2.7");
    ck_assert_int_eq(send(c, "GET /in", 7, MSG_NOSIGNAL), 7);
    ck_assert_int_eq(shutdown(c, SHUT_WR), 0);
    ck_assert_int_eq(read_all(c, answer, sizeof answer), 0);
    close(c);

    ck_assert_int_eq(ah_httpd_quiesce(h), 0);
    ck_assert_int_eq(served_pair(h, "192.0.2.7"), -1);
    ah_httpd_free(h);
}
END_TEST

/* One answer read from a kept-alive connection: its head and a body of
 * its Content-Length. */
static void read_one(int fd, char *out, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, out + got, cap - 1 - got, 0);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
        out[got] = '\0';
        const char *end = strstr(out, "\r\n\r\n");
        const char *cl = strcasestr(out, "Content-Length:");
        if (end != NULL && cl != NULL &&
            got >= (size_t)(end + 4 - out) + strtoul(cl + 15, NULL, 10))
            return;
        ck_assert_uint_lt(got, cap - 1);
    }
}

/* After the drain (ah_httpd_refuse_new), a request sent on a kept-alive
 * connection is answered 503 shutting_down and its connection closed;
 * between the quiesce and that, one is still served (with Connection:
 * close). (Before, every such request was served while the daemon stopped
 * the workers it needed.) */
START_TEST(test_drained_refuses_new_requests)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/hello", 0, h_hello, NULL), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    static const char hello[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    char answer[4096];
    int c[2];
    for (int i = 0; i < 2; i++) {
        c[i] = dial_loopback(port);
        ck_assert_int_eq(send(c[i], hello, sizeof hello - 1, MSG_NOSIGNAL),
                         (ssize_t)(sizeof hello - 1));
        read_one(c[i], answer, sizeof answer);
        ck_assert_msg(strncmp(answer, "HTTP/1.1 200", 12) == 0, "%s", answer);
    }
    ck_assert_int_eq(ah_httpd_quiesce(h), 0);
    ck_assert_int_eq(send(c[0], hello, sizeof hello - 1, MSG_NOSIGNAL),
                     (ssize_t)(sizeof hello - 1));
    ck_assert_int_gt(read_all(c[0], answer, sizeof answer), 0);
    ck_assert_msg(strncmp(answer, "HTTP/1.1 200", 12) == 0, "%s", answer);
    ah_httpd_refuse_new(h);
    ck_assert_int_eq(send(c[1], hello, sizeof hello - 1, MSG_NOSIGNAL),
                     (ssize_t)(sizeof hello - 1));
    ck_assert_int_gt(read_all(c[1], answer, sizeof answer), 0);
    ck_assert_msg(strncmp(answer, "HTTP/1.1 503", 12) == 0 &&
                      strstr(answer, "\"shutting_down\"") != NULL,
                  "%s", answer);
    ck_assert(ah_httpd_wait_idle(h, 10000));
    close(c[0]);
    close(c[1]);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_route_json_200)
{
    done_log d = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    ah_httpd *h = start_full(1024, 2, NULL, NULL, &d);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/hello", 0, h_hello, NULL), 0);
    start_or_die(h);
    reply r = get(ah_httpd_port(h), "/hello?x=1");
    ck_assert_int_eq(r.rc, CURLE_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.ctype, "application/json");
    char v[64];
    ck_assert_str_eq(field(&r, "path", v, sizeof v), "/hello");
    ck_assert_str_eq(field(&r, "subpath", v, sizeof v), "");
    ck_assert_str_eq(field(&r, "method", v, sizeof v), "GET");
    reply_free(&r);

    /* on_done sees the answered exchange. */
    pthread_mutex_lock(&d.mu);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    while (d.count < 1 && pthread_cond_timedwait(&d.cv, &d.mu, &dl) == 0)
        ;
    ck_assert_int_eq(d.count, 1);
    ck_assert_int_eq(d.last_status, 200);
    ck_assert_str_eq(d.last_path, "/hello");
    ck_assert_str_eq(d.last_method, "GET");
    ck_assert(d.last_elapsed >= 0.0);
    pthread_mutex_unlock(&d.mu);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_not_found)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/hello", 0, h_hello, NULL), 0);
    start_or_die(h);
    reply r = get(ah_httpd_port(h), "/nope");
    ck_assert_error(r, 404, "not_found");
    /* The envelope is exactly {"error":{"code","message"}}. */
    cJSON *j = cJSON_Parse(r.body);
    ck_assert_int_eq(cJSON_GetArraySize(j), 1);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    ck_assert_int_eq(cJSON_GetArraySize(e), 2);
    ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")));
    cJSON_Delete(j);
    reply_free(&r);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_method_not_allowed)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/thing", 0, h_hello, NULL), 0);
    ck_assert_int_eq(ah_httpd_route(h, "PUT", "/thing", 0, h_hello, NULL), 0);
    start_or_die(h);
    req q = {.method = "DELETE", .url_path = "/thing"};
    reply r = do_req(ah_httpd_port(h), &q);
    ck_assert_error(r, 405, "method_not_allowed");
    ck_assert(strstr(r.allow, "GET") != NULL);
    ck_assert(strstr(r.allow, "PUT") != NULL);
    reply_free(&r);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_body_too_large_content_length)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/body", 0, h_body_len, NULL), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    char *big = malloc(4096);
    memset(big, 'a', 4096);
    req q = {.url_path = "/body", .body = big, .body_len = 4096};
    reply r = do_req(port, &q);
    ck_assert_error(r, 413, "payload_too_large");
    reply_free(&r);
    /* Exactly at the limit is accepted. */
    q.body_len = 1024;
    r = do_req(port, &q);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "1024:aaa");
    reply_free(&r);
    free(big);
    ah_httpd_free(h);
}
END_TEST

/* A declared body over the limit is read and dropped, then answered 413 on
 * a connection that stays open: the request after it on the same
 * connection is served. (Answered at once and closed, a client still
 * sending got a reset, in place of the 413, whenever the close came first.) */
START_TEST(test_body_too_large_drained)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/body", 0, h_body_len, NULL), 0);
    start_or_die(h);
    size_t n = 4096;
    char *wire = malloc(n + 512);
    int at = snprintf(wire, 512, "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
    memset(wire + at, 'a', n);
    at += (int)n;
    at += snprintf(wire + at, 200, "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                                  "Connection: close\r\n\r\nabc");
    char *out = raw(ah_httpd_port(h), wire, (size_t)at, false);
    ck_assert_msg(strstr(out, "HTTP/1.1 413") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "payload_too_large") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "HTTP/1.1 200") != NULL && strstr(out, "3:abc") != NULL, "%s", out);
    free(out);
    free(wire);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_body_too_large_chunked)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/body", 0, h_body_len, NULL), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    req q = {.url_path = "/body", .chunked_len = 4096};
    reply r = do_req(port, &q);
    ck_assert_error(r, 413, "payload_too_large");
    reply_free(&r);
    /* A chunked body under the limit is read whole. */
    q.chunked_len = 1000;
    r = do_req(port, &q);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "1000:xxx");
    reply_free(&r);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_invalid_json)
{
    ah_httpd *h = start_full(1 << 16, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/json", 0, h_echo_json, NULL), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    const char *bad[] = {"{\"a\":", "{} x", "nope", "[1,2]]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        req q = {.url_path = "/json", .body = bad[i], .body_len = -1};
        reply r = do_req(port, &q);
        ck_assert_error(r, 400, "invalid_json");
        reply_free(&r);
    }
    req q = {.url_path = "/json", .body = "", .body_len = 0};
    reply r = do_req(port, &q);
    ck_assert_error(r, 400, "invalid_json");
    reply_free(&r);
    q.body = " {\"a\": [1, \"]]]\"]}\n ";
    q.body_len = -1;
    r = do_req(port, &q);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"got\":{\"a\":[1,\"]]]\"]}}");
    reply_free(&r);
    /* An escaped NUL is read as U+FFFD, not as the end of the string. */
    q.body = "{\"name\":\"A\\u0000B\"}";
    r = do_req(port, &q);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"got\":{\"name\":\"A\xef\xbf\xbd" "B\"}}");
    reply_free(&r);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_json_too_deep)
{
    ah_httpd *h = start_full(1 << 16, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/json", 0, h_echo_json, NULL), 0);
    start_or_die(h);
    char *s = ah_t_nested(40);
    req q = {.url_path = "/json", .body = s, .body_len = -1};
    reply r = do_req(ah_httpd_port(h), &q);
    ck_assert_error(r, 400, "invalid_json");
    reply_free(&r);
    free(s);
    s = ah_t_nested(AH_JSON_MAX_DEPTH);
    q.body = s;
    r = do_req(ah_httpd_port(h), &q);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    free(s);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_status_for_code)
{
    ck_assert_int_eq(ah_http_status_for_code("unsupported_capability"), 501);
    ck_assert_int_eq(ah_http_status_for_code("invalid_request"), 400);
    ck_assert_int_eq(ah_http_status_for_code("invalid_json"), 400);
    ck_assert_int_eq(ah_http_status_for_code("not_found"), 404);
    ck_assert_int_eq(ah_http_status_for_code("conflict"), 409);
    ck_assert_int_eq(ah_http_status_for_code("unauthorized"), 401);
    ck_assert_int_eq(ah_http_status_for_code("forbidden"), 403);
    ck_assert_int_eq(ah_http_status_for_code("payload_too_large"), 413);
    ck_assert_int_eq(ah_http_status_for_code("uri_too_long"), 414);
    ck_assert_int_eq(ah_http_status_for_code("headers_too_large"), 431);
    ck_assert_int_eq(ah_http_status_for_code("upstream_error"), 502);
    ck_assert_int_eq(ah_http_status_for_code("upstream_unavailable"), 503);
    ck_assert_int_eq(ah_http_status_for_code("timeout"), 504);
    ck_assert_int_eq(ah_http_status_for_code("overloaded"), 503);
    ck_assert_int_eq(ah_http_status_for_code("shutting_down"), 503);
    ck_assert_int_eq(ah_http_status_for_code("internal_error"), 500);
    ck_assert_int_eq(ah_http_status_for_code("plugin_error"), 500);
    ck_assert_int_eq(ah_http_status_for_code("no_such_code"), 500);
    ck_assert_int_eq(ah_http_status_for_code(NULL), 500);
}
END_TEST

static void assert_starts(const char *got, const char *prefix)
{
    ck_assert_msg(strncmp(got, prefix, strlen(prefix)) == 0, "expected %s..., got: %.200s", prefix,
                  got);
}

static void assert_alive(uint16_t port)
{
    reply r = get(port, "/hello");
    ck_assert_int_eq(r.rc, CURLE_OK);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
}

START_TEST(test_conflicting_length_raw)
{
    ah_httpd *h = start_full(1024, 2, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/hello", 0, h_hello, NULL), 0);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/body", 0, h_body_len, NULL), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    const char *reqs[] = {
        "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "Content-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello",
        "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        char *out = raw(port, reqs[i], strlen(reqs[i]), false);
        assert_starts(out, "HTTP/1.1 400");
        free(out);
        assert_alive(port);
    }
    /* Repeated equal Content-Length values are harmless. */
    const char *same =
        "POST /body HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n"
        "Content-Length: 5\r\n\r\nhello";
    char *out = raw(port, same, strlen(same), false);
    assert_starts(out, "HTTP/1.1 200");
    ck_assert(strstr(out, "5:hel") != NULL);
    free(out);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_lying_content_length)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/hello", 0, h_hello, NULL), 0);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/body", 0, h_body_len, NULL), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    /* Fewer bytes than announced, then EOF: no answer, no hang, no crash. */
    const char *shortb = "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhello";
    char *out = raw(port, shortb, strlen(shortb), true);
    ck_assert(strstr(out, "HTTP/1.1 200") == NULL);
    free(out);
    assert_alive(port);
    /* More bytes than announced: the extra is a (broken) next request. */
    const char *longb = "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
                        "helloGARBAGE\r\n\r\n";
    out = raw(port, longb, strlen(longb), true);
    assert_starts(out, "HTTP/1.1 200");
    ck_assert(strstr(out, "5:hel") != NULL);
    free(out);
    assert_alive(port);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_bad_path)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/files/", AH_HTTPD_PREFIX, h_hello, NULL), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/hello", 0, h_hello, NULL), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    const char *paths[] = {"/files/%2e%2e/etc", "/files/a%00b", "/files/..%2fx"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        reply r = get(port, paths[i]);
        ck_assert_error(r, 400, "bad_path");
        reply_free(&r);
    }
    /* "..": sent raw, since curl would normalise it away. */
    const char *dots = "GET /files/../hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char *out = raw(port, dots, strlen(dots), false);
    assert_starts(out, "HTTP/1.1 400");
    ck_assert(strstr(out, "bad_path") != NULL);
    free(out);
    char longp[2100];
    strcpy(longp, "/files/");
    memset(longp + 7, 'a', 2060);
    longp[2067] = '\0';
    reply r = get(port, longp);
    ck_assert_error(r, 414, "uri_too_long");
    reply_free(&r);
    assert_alive(port);
    ah_httpd_free(h);
}
END_TEST

static void h_echo_header_error(void *arg, ah_http_exchange *ex)
{
    (void)arg;
    const char *v = ah_ex_header(ex, "X-Connection");
    ah_ex_error(ex, 404, "not_found", "no connection '%s'", v != NULL ? v : "");
}

/* The error body is JSON text in UTF-8 and its message one valid UTF-8
 * string of at most 511 bytes; returns the message (malloc'd). */
static char *valid_error_message(const reply *r)
{
    ck_assert_msg(ah_utf8_valid(r->body, strlen(r->body)), "not UTF-8: %s", r->body);
    cJSON *j = cJSON_Parse(r->body);
    ck_assert_msg(j != NULL, "not JSON: %s", r->body);
    const cJSON *m =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"), "message");
    ck_assert(cJSON_IsString(m));
    char *msg = strdup(m->valuestring);
    cJSON_Delete(j);
    ck_assert_uint_le(strlen(msg), 511);
    return msg;
}

/* Error messages echo what the client sent (a path, a header): bytes that
 * are no UTF-8 come back as U+FFFD, control characters escaped, and the
 * cut of a long message never splits a character, so the body stays JSON
 * text in UTF-8. */
START_TEST(test_error_body_utf8)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/conn", 0, h_echo_header_error, NULL), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);

    reply r = get(port, "/x%FF%01y%C3");
    ck_assert_error(r, 404, "not_found");
    char *msg = valid_error_message(&r);
    ck_assert_msg(strstr(msg, "/x\xef\xbf\xbd\x01y\xef\xbf\xbd") != NULL, "%s", msg);
    free(msg);
    reply_free(&r);

    /* "no route for /" and 2-byte characters: the 511-byte cut falls in
     * the middle of one. */
    char path[2048] = "/";
    for (int i = 0; i < 300; i++)
        strcat(path, "%C3%A9");
    r = get(port, path);
    ck_assert_error(r, 404, "not_found");
    msg = valid_error_message(&r);
    ck_assert_uint_ge(strlen(msg), 500);
    free(msg);
    reply_free(&r);

    req q = {.url_path = "/conn", .header = "X-Connection: a\xff\xfe\x7f" "b"};
    r = do_req(port, &q);
    ck_assert_error(r, 404, "not_found");
    msg = valid_error_message(&r);
    ck_assert_msg(strstr(msg, "'a\xef\xbf\xbd\xef\xbf\xbd\x7f" "b'") != NULL, "%s", msg);
    free(msg);
    reply_free(&r);
    ah_httpd_free(h);
}
END_TEST

/* Only a path segment "." or ".." is refused; dots inside a segment are
 * data (an email address, a version). */
START_TEST(test_dots_in_segment)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/files/", AH_HTTPD_PREFIX, h_hello, NULL), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    const char *ok[] = {"a..b@x.com", "...", "a..", "..a", ".hidden", "v1.2/x.", "%2e%2e%2e"};
    const char *sub[] = {"a..b@x.com", "...", "a..", "..a", ".hidden", "v1.2/x.", "..."};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/files/%s", ok[i]);
        reply r = get(port, path);
        ck_assert_msg(r.status == 200, "%s: %ld %s", path, r.status, r.body);
        cJSON *j = cJSON_Parse(r.body);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "subpath");
        ck_assert_msg(cJSON_IsString(s) && strcmp(s->valuestring, sub[i]) == 0, "%s", r.body);
        cJSON_Delete(j);
        reply_free(&r);
    }
    /* Sent raw, since curl would resolve them. */
    const char *bad[] = {"/files/./x", "/files/x/..", "/files/x/.", "/files/%2e/x",
                         "/files/x/%2E%2e/y", "/./files/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char rq[256];
        snprintf(rq, sizeof rq, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 bad[i]);
        char *out = raw(port, rq, strlen(rq), false);
        ck_assert_msg(strncmp(out, "HTTP/1.1 400", 12) == 0 && strstr(out, "bad_path") != NULL,
                      "%s: %.200s", bad[i], out);
        free(out);
    }
    ah_httpd_free(h);
}
END_TEST

/* The HTTP layer's own refusals are in the contract's format: request
 * headers over 16 KiB are 431 headers_too_large and a request target over
 * 8 KiB 414 uri_too_long, JSON both (libmicrohttpd's own answers, HTML,
 * only come past its 64 KiB buffer). */
START_TEST(test_http_layer_errors_json)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/hello", 0, h_hello, NULL), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    size_t big = 40000;
    char *rq = malloc(big + 256);
    ck_assert_ptr_nonnull(rq);
    int n = snprintf(rq, 256, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(rq + n, 'a', big);
    strcpy(rq + n + big, "\r\n\r\n");
    char *out = raw(port, rq, strlen(rq), false);
    assert_starts(out, "HTTP/1.1 431");
    ck_assert_msg(strstr(out, "application/json") != NULL &&
                      strstr(out, "\"code\":\"headers_too_large\"") != NULL,
                  "431 not in the JSON error format: %.300s", out);
    free(out);
    /* Under the limit (15,000 bytes of headers) the request is served. */
    n = snprintf(rq, 256, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ");
    memset(rq + n, 'a', 15000);
    strcpy(rq + n + 15000, "\r\n\r\n");
    out = raw(port, rq, strlen(rq), false);
    assert_starts(out, "HTTP/1.1 200");
    free(out);
    /* A request target of 9,000 bytes (a short path, a long query); sent
     * raw, as the curl helper keeps URLs under 4 KiB. */
    n = snprintf(rq, 256, "GET /hello?x=");
    memset(rq + n, 'b', 9000);
    strcpy(rq + n + 9000, " HTTP/1.1\r\nHost: x\r\n\r\n");
    out = raw(port, rq, strlen(rq), false);
    assert_starts(out, "HTTP/1.1 414");
    ck_assert_msg(strstr(out, "application/json") != NULL &&
                      strstr(out, "\"code\":\"uri_too_long\"") != NULL,
                  "414 not in the JSON error format: %.300s", out);
    free(out);
    /* 8,000 bytes of query are fine. */
    strcpy(rq + n + 8000, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    out = raw(port, rq, strlen(rq), false);
    assert_starts(out, "HTTP/1.1 200");
    free(out);
    free(rq);
    assert_alive(port);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_prefix_route)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/v1/", AH_HTTPD_PREFIX, h_hello, "short"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "*", "/v1/jobs/", AH_HTTPD_PREFIX, h_hello, "long"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/v1/jobs/special", 0, h_hello, "exact"), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    char v[64];
    reply r = get(port, "/v1/jobs/42/notes?x=y");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(field(&r, "subpath", v, sizeof v), "42/notes");
    ck_assert_str_eq(field(&r, "tag", v, sizeof v), "long");
    reply_free(&r);
    r = get(port, "/v1/candidates/7");
    ck_assert_str_eq(field(&r, "subpath", v, sizeof v), "candidates/7");
    ck_assert_str_eq(field(&r, "tag", v, sizeof v), "short");
    reply_free(&r);
    r = get(port, "/v1/jobs/special");
    ck_assert_str_eq(field(&r, "tag", v, sizeof v), "exact");
    ck_assert_str_eq(field(&r, "subpath", v, sizeof v), "");
    reply_free(&r);
    /* "*" serves any method. */
    req q = {.method = "PATCH", .url_path = "/v1/jobs/1"};
    r = do_req(port, &q);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(field(&r, "method", v, sizeof v), "PATCH");
    reply_free(&r);
    /* Prefix known, method not: 405. */
    q.url_path = "/v1/other";
    r = do_req(port, &q);
    ck_assert_error(r, 405, "method_not_allowed");
    ck_assert_str_eq(r.allow, "GET");
    reply_free(&r);
    r = get(port, "/v2/x");
    ck_assert_error(r, 404, "not_found");
    reply_free(&r);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_header_query_ip)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/info", 0, h_info, NULL), 0);
    start_or_die(h);
    req q = {.url_path = "/info?q=a%20b%26c&z=1", .header = "X-TEST-Header: hi there"};
    reply r = do_req(ah_httpd_port(h), &q);
    ck_assert_int_eq(r.status, 200);
    char v[64];
    ck_assert_str_eq(field(&r, "header", v, sizeof v), "hi there");
    ck_assert_str_eq(field(&r, "query", v, sizeof v), "a b&c");
    ck_assert_str_eq(field(&r, "ip", v, sizeof v), "127.0.0.1");
    ck_assert_str_eq(field(&r, "path", v, sizeof v), "/info");
    reply_free(&r);
    q.url_path = "/info";
    q.header = NULL;
    r = do_req(ah_httpd_port(h), &q);
    ck_assert_str_eq(field(&r, "header", v, sizeof v), "(null)");
    ck_assert_str_eq(field(&r, "query", v, sizeof v), "(null)");
    reply_free(&r);
    /* The extra header reaches the client. */
    const char *rq = "GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char *out = raw(ah_httpd_port(h), rq, strlen(rq), false);
    ck_assert(strstr(out, "X-Reply: yes\r\n") != NULL);
    ck_assert(strstr(out, "Content-Type: application/json\r\n") != NULL);
    free(out);
    ah_httpd_free(h);
}
END_TEST

static bool cookie_each(void *arg, const char *name, const char *value)
{
    if (strcasecmp(name, "Cookie") == 0)
        cJSON_AddStringToObject(arg, "each", value != NULL ? value : "(null)");
    return true;
}

static void h_cookie(void *arg, ah_http_exchange *ex)
{
    (void)arg;
    const char *hv = ah_ex_header(ex, "cookie");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "header", hv != NULL ? hv : "(null)");
    ah_ex_each(ex, false, cookie_each, o);
    const char *own = ah_ex_cookie(ex, "ah_console");
    cJSON_AddStringToObject(o, "own", own != NULL ? own : "(null)");
    ah_ex_respond_json(ex, 200, o);
}

/* The console's session cookie, which a browser sends to every port of the
 * host, is not in the Cookie header the public listener's handlers (plugin
 * routes) read: not as one header, not as one of all the headers. The
 * server's own parsed cookies keep it. */
START_TEST(test_hidden_cookie)
{
    char err[256] = "";
    ah_httpd_opts o = {.host = "127.0.0.1", .threads = 1, .hidden_cookie = "ah_console"};
    ah_httpd *h = ah_httpd_new(&o, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/cookie", 0, h_cookie, NULL), 0);
    start_or_die(h);
    static const struct {
        const char *sent, *seen;
    } cases[] = {
        {"Cookie: a=1; ah_console=s3cret; b=2", "a=1; b=2"},
        {"Cookie: ah_console=s3cret", "(null)"},
        {"Cookie: ah_console = s3cret ;x=ah_console", "x=ah_console"},
        {"Cookie: ah_consoleX=1; xah_console=2", "ah_consoleX=1; xah_console=2"},
        {"Cookie: a=1", "a=1"},
    };
    char v[1024];
    /* Bare ';' between pairs: the view joins them with "; ", longer than
     * the raw header (it overflowed its buffer of the raw length: any
     * client could write past it). */
    char semis[512], seen[1024];
    int at = snprintf(semis, sizeof semis, "Cookie: ah_console=1");
    int sat = 0;
    for (int k = 0; k < 150; k++) {
        at += snprintf(semis + at, sizeof semis - (size_t)at, ";a");
        sat += snprintf(seen + sat, sizeof seen - (size_t)sat, "%sa", k > 0 ? "; " : "");
    }
    {
        req q = {.url_path = "/cookie", .header = semis};
        reply r = do_req(ah_httpd_port(h), &q);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(field(&r, "header", v, sizeof v), seen);
        ck_assert_str_eq(field(&r, "each", v, sizeof v), seen);
        reply_free(&r);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        req q = {.url_path = "/cookie", .header = cases[i].sent};
        reply r = do_req(ah_httpd_port(h), &q);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(field(&r, "header", v, sizeof v), cases[i].seen);
        if (strcmp(cases[i].seen, "(null)") != 0)
            ck_assert_str_eq(field(&r, "each", v, sizeof v), cases[i].seen);
        else
            ck_assert_ptr_null(strstr(r.body, "each"));
        if (i == 0)
            ck_assert_str_eq(field(&r, "own", v, sizeof v), "s3cret");
        reply_free(&r);
    }
    ah_httpd_free(h);
    /* Too long a name is refused. */
    char name[80];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    o.hidden_cookie = name;
    ck_assert_ptr_null(ah_httpd_new(&o, err, sizeof err));
}
END_TEST

/* A loopback connection to port with `data` sent, left open. */
static int open_with(uint16_t port, const char *data, size_t len)
{
    int fd = dial_loopback(port);
    ck_assert_int_eq(send(fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
    return fd;
}

/* raw(port, request, len) until its answer holds want, 200 tries 10 ms apart;
 * the last answer. */
static char *until_answer(uint16_t port, const char *request, size_t len, const char *want)
{
    char *out = NULL;
    for (int i = 0; i < 200; i++) {
        free(out);
        out = raw(port, request, len, false);
        if (strstr(out, want) != NULL)
            break;
        usleep(10000);
    }
    return out;
}

/* Request bodies held at once, all connections together, are bounded
 * (body_budget): a body the server would buffer past it is answered 503
 * overloaded, whether its size was declared or it grows (chunked), and
 * once a held body is gone the same request is served. (Before, a client
 * trickling bodies over many connections held max_body on each: 40
 * connections held 42 MB.) */
START_TEST(test_body_budget)
{
    char err[256] = "";
    ah_httpd_opts o = {.host = "127.0.0.1", .threads = 2, .max_body = 60000,
                       .body_budget = 52000, .header_timeout_ms = 60000};
    ah_httpd *h = ah_httpd_new(&o, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/len", 0, h_body_len, NULL), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    /* A body of 50,000 declared and begun: 50,001 bytes held. */
    static const char head[] = "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\nabc";
    /* A small declared body fits beside it. */
    static const char small[] = "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                "Connection: close\r\n\r\nhello";
    /* A second body does not fit beside it: read, dropped, 503. */
    char big[256 + 5000];
    int bl = snprintf(big, sizeof big, "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                                       "Connection: close\r\n\r\n");
    memset(big + bl, 'x', 5000);
    /* The server's threads take connections in no set order: when the
     * big body's headers are read before a's, a is the one refused (and
     * the big one served), so a is opened anew until it holds. */
    int a = -1;
    char *out = NULL;
    for (int i = 0; i < 200; i++) {
        if (a >= 0)
            close(a);
        a = open_with(port, head, sizeof head - 1);
        usleep(10000); /* for the server to read a's headers */
        free(out);
        out = raw(port, big, (size_t)bl + 5000, false);
        if (strstr(out, "HTTP/1.1 503") != NULL)
            break;
    }
    ck_assert_msg(strstr(out, "HTTP/1.1 503") != NULL && strstr(out, "overloaded") != NULL,
                  "%s", out);
    free(out);
    /* An exchange gives its bytes back when it is completed, which may be
     * just after its client read the answer's end: until then the big
     * body's 5,001 may still be held beside a's. */
    out = until_answer(port, small, sizeof small - 1, "HTTP/1.1 200");
    ck_assert_msg(strstr(out, "HTTP/1.1 200") != NULL && strstr(out, "5:hel") != NULL, "%s", out);
    free(out);
    /* A chunked body grows its buffer by 4 KiB first: past the budget. */
    static const char chunked[] = "POST /len HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                  "Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    out = raw(port, chunked, sizeof chunked - 1, false);
    ck_assert_msg(strstr(out, "HTTP/1.1 503") != NULL && strstr(out, "overloaded") != NULL,
                  "%s", out);
    free(out);
    /* The held body gone (once the server has seen a's end): served. */
    close(a);
    out = until_answer(port, chunked, sizeof chunked - 1, "HTTP/1.1 200");
    ck_assert_msg(strstr(out, "HTTP/1.1 200") != NULL && strstr(out, "5:hel") != NULL, "%s", out);
    free(out);
    ah_httpd_free(h);
}
END_TEST

/* One client address holds at most its share of the bodies' budget
 * (body_per_client): past it its next body is 503 overloaded while another
 * address's is served. (Before, one client could hold the whole budget
 * and every other client's bodies were refused.) */
START_TEST(test_body_budget_per_client)
{
    char err[256] = "";
    ah_httpd_opts o = {.host = "127.0.0.1", .threads = 2, .max_body = 60000,
                       .body_budget = 52000, .body_per_client = 30000,
                       .header_timeout_ms = 60000};
    ah_httpd *h = ah_httpd_new(&o, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/len", 0, h_body_len, NULL), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    /* 127.0.0.1 holds 25,001 of its 30,000. */
    static const char head[] = "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 25000\r\n\r\nabc";
    char body[256 + 10000];
    int bl = snprintf(body, sizeof body, "POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n"
                                         "Connection: close\r\n\r\n");
    memset(body + bl, 'x', 10000);
    int a = -1;
    char *out = NULL;
    for (int i = 0; i < 200; i++) { /* as in test_body_budget */
        if (a >= 0)
            close(a);
        a = open_with(port, head, sizeof head - 1);
        usleep(10000);
        free(out);
        out = raw_from(1, port, body, (size_t)bl + 10000, false);
        if (strstr(out, "HTTP/1.1 503") != NULL)
            break;
    }
    ck_assert_msg(strstr(out, "HTTP/1.1 503") != NULL && strstr(out, "overloaded") != NULL,
                  "%s", out);
    free(out);
    /* The same body from 127.0.0.2 fits the whole budget and its share. */
    out = raw_from(2, port, body, (size_t)bl + 10000, false);
    ck_assert_msg(strstr(out, "HTTP/1.1 200") != NULL && strstr(out, "10000:xxx") != NULL,
                  "%s", out);
    free(out);
    close(a);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_handler_no_response)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/silent", 0, h_silent, NULL), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/err", 0, h_error, NULL), 0);
    start_or_die(h);
    reply r = get(ah_httpd_port(h), "/silent");
    ck_assert_error(r, 500, "internal_error");
    reply_free(&r);
    r = get(ah_httpd_port(h), "/err");
    ck_assert_error(r, 409, "conflict");
    ck_assert(strstr(r.body, "\"message\":\"already there\"") != NULL);
    reply_free(&r);
    ah_httpd_free(h);
}
END_TEST

typedef struct worker {
    uint16_t port;
    int ok;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    CURL *c = curl_easy_init();
    if (c == NULL)
        return NULL;
    for (int i = 0; i < 50; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"i\":%d}", i);
        req q = {.url_path = "/json", .body = body, .body_len = -1};
        reply r = do_req_on(c, w->port, &q); /* one handle: a persistent connection */
        char want[64];
        snprintf(want, sizeof want, "{\"got\":{\"i\":%d}}", i);
        if (r.rc == CURLE_OK && r.status == 200 && strcmp(r.body, want) == 0)
            w->ok++;
        reply_free(&r);
    }
    curl_easy_cleanup(c);
    return NULL;
}

START_TEST(test_concurrent)
{
    ah_httpd *h = start_full(4096, 4, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/json", 0, h_echo_json, NULL), 0);
    start_or_die(h);
    enum { N = 8 };
    pthread_t t[N];
    worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker){.port = ah_httpd_port(h)};
        ck_assert_int_eq(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(w[i].ok, 50);
    }
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_route_replace)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/r", 0, h_hello, "one"), 0);
    start_or_die(h);
    char v[64];
    reply r = get(ah_httpd_port(h), "/r");
    ck_assert_str_eq(field(&r, "tag", v, sizeof v), "one");
    reply_free(&r);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/r", 0, h_hello, "two"), 0);
    r = get(ah_httpd_port(h), "/r");
    ck_assert_str_eq(field(&r, "tag", v, sizeof v), "two");
    reply_free(&r);
    /* Many routes: the table grows and every one still resolves. */
    for (int i = 0; i < 300; i++) {
        char p[32];
        snprintf(p, sizeof p, "/many/%d", i);
        ck_assert_int_eq(ah_httpd_route(h, "GET", p, 0, h_hello, "many"), 0);
    }
    r = get(ah_httpd_port(h), "/many/299");
    ck_assert_str_eq(field(&r, "tag", v, sizeof v), "many");
    reply_free(&r);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "no-slash", 0, h_hello, NULL), -1);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/x", 0, NULL, NULL), -1);
    ah_httpd_free(h);
}
END_TEST

/* A handler that holds its call open until the test lets it go. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered;
    bool release;
    bool finished;
    bool unrouted;
    bool finished_at_unroute;
    ah_httpd *h;
    uint16_t port;
    reply r;
} gate;

/* Under mu: says *in, then waits until *go (both guarded by mu and cv).
 * Returns with mu held. */
static void enter_and_wait(pthread_mutex_t *mu, pthread_cond_t *cv, bool *in, const bool *go)
{
    pthread_mutex_lock(mu);
    *in = true;
    pthread_cond_broadcast(cv);
    while (!*go)
        pthread_cond_wait(cv, mu);
}

static void h_gated(void *arg, ah_http_exchange *ex)
{
    gate *g = arg;
    enter_and_wait(&g->mu, &g->cv, &g->entered, &g->release);
    g->finished = true;
    pthread_mutex_unlock(&g->mu);
    ah_ex_respond_json(ex, 200, cJSON_CreateObject());
}

static void *gated_client(void *arg)
{
    gate *g = arg;
    g->r = get(g->port, "/gated");
    return NULL;
}

static void *unrouter(void *arg)
{
    gate *g = arg;
    ah_httpd_unroute_arg(g->h, g);
    pthread_mutex_lock(&g->mu);
    g->unrouted = true;
    g->finished_at_unroute = g->finished;
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

START_TEST(test_unroute_arg)
{
    ah_httpd *h = start_full(1024, 2, NULL, NULL, NULL);
    gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .h = h};
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/gated", 0, h_gated, &g), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/a/", AH_HTTPD_PREFIX, h_hello, &g), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/b", 0, h_hello, "b"), 0);
    start_or_die(h);
    g.port = ah_httpd_port(h);

    pthread_t client, un;
    ck_assert_int_eq(pthread_create(&client, NULL, gated_client, &g), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    /* Unroute while the handler runs: it must wait for the call to end. */
    ck_assert_int_eq(pthread_create(&un, NULL, unrouter, &g), 0);
    pthread_mutex_lock(&g.mu);
    ck_assert(!g.unrouted);
    g.release = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(un, NULL);
    pthread_join(client, NULL);
    ck_assert(g.finished_at_unroute);
    ck_assert_int_eq(g.r.status, 200);
    reply_free(&g.r);

    reply r = get(g.port, "/gated");
    ck_assert_error(r, 404, "not_found");
    reply_free(&r);
    r = get(g.port, "/a/x");
    ck_assert_error(r, 404, "not_found");
    reply_free(&r);
    r = get(g.port, "/b");
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    ah_httpd_free(h);
}
END_TEST

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *s = calloc(1, 65536);
    size_t n = s != NULL ? fread(s, 1, 65535, f) : 0;
    fclose(f);
    if (n == 0) {
        free(s);
        return NULL;
    }
    return s;
}

START_TEST(test_tls)
{
    char dir[] = "/tmp/ah_httpd_tls_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char cmd[1024], cpath[256], kpath[256];
    snprintf(cpath, sizeof cpath, "%s/c.pem", dir);
    snprintf(kpath, sizeof kpath, "%s/k.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -days 1 -keyout %s -out %s >/dev/null 2>&1",
             kpath, cpath);
    ck_assert_int_eq(system(cmd), 0);
    char *cert = slurp(cpath), *key = slurp(kpath);
    ck_assert_ptr_nonnull(cert);
    ck_assert_ptr_nonnull(key);

    ah_httpd *h = start_full(1024, 2, cert, key, NULL);
    free(cert); /* copied by ah_httpd_new */
    free(key);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/json", 0, h_echo_json, NULL), 0);
    start_or_die(h);
    req q = {.url_path = "/json", .body = "{\"tls\":true}", .body_len = -1, .tls = true,
             .cainfo = cpath};
    reply r = do_req(ah_httpd_port(h), &q);
    ck_assert_msg(r.rc == CURLE_OK, "curl: %s", curl_easy_strerror(r.rc));
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"got\":{\"tls\":true}}");
    reply_free(&r);
    /* Plain HTTP to the TLS port gets no HTTP answer. */
    q.tls = false;
    r = do_req(ah_httpd_port(h), &q);
    ck_assert_int_ne(r.status, 200);
    reply_free(&r);
    ah_httpd_free(h);
    unlink(cpath);
    unlink(kpath);
    rmdir(dir);
}
END_TEST

#ifdef NDEBUG
/* Debug builds assert on a second answer; release builds refuse it. */
static void h_twice(void *arg, ah_http_exchange *ex)
{
    int *rcs = arg;
    rcs[0] = ah_ex_respond(ex, 201, "text/plain", "first", 5);
    rcs[1] = ah_ex_error(ex, 500, "internal_error", "second");
    rcs[2] = ah_ex_add_header(ex, "X-Late", "1");
    rcs[3] = ah_ex_status(ex);
}

START_TEST(test_respond_twice)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    int rcs[4] = {9, 9, 9, 9};
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/twice", 0, h_twice, rcs), 0);
    start_or_die(h);
    reply r = get(ah_httpd_port(h), "/twice");
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(r.body, "first");
    ck_assert_str_eq(r.ctype, "text/plain");
    reply_free(&r);
    ck_assert_int_eq(rcs[0], 0);
    ck_assert_int_eq(rcs[1], -1);
    ck_assert_int_eq(rcs[2], -1);
    ck_assert_int_eq(rcs[3], 201);
    ah_httpd_free(h);
}
END_TEST
#endif

START_TEST(test_ipv6)
{
    char err[256] = "";
    ah_httpd_opts o = {.host = "::1", .max_body = 1024, .threads = 1};
    ah_httpd *h = ah_httpd_new(&o, err, sizeof err);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/info", 0, h_info, NULL), 0);
    if (ah_httpd_start(h, err, sizeof err) != 0) {
        /* No IPv6 loopback here (some containers): nothing to check. */
        ah_httpd_free(h);
        return;
    }
    CURL *c = curl_easy_init();
    buf b = {0};
    char url[128];
    snprintf(url, sizeof url, "http://[::1]:%u/info", (unsigned)ah_httpd_port(h));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    reply r = {.body = b.p};
    char v[64];
    ck_assert_str_eq(field(&r, "ip", v, sizeof v), "::1");
    reply_free(&r);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_opts_errors)
{
    char err[256] = "";
    ah_httpd_opts o = {.host = "127.0.0.1", .tls_cert_pem = "x"};
    ck_assert_ptr_null(ah_httpd_new(&o, err, sizeof err));
    ck_assert(err[0] != '\0');
    /* A bad certificate fails at start with a message. */
    o.tls_key_pem = "y";
    ah_httpd *h = ah_httpd_new(&o, err, sizeof err);
    ck_assert_ptr_nonnull(h);
    err[0] = '\0';
    ck_assert_int_ne(ah_httpd_start(h, err, sizeof err), 0);
    ck_assert(err[0] != '\0');
    ck_assert_uint_eq(ah_httpd_port(h), 0);
    ah_httpd_free(h);
    ah_httpd_free(NULL);
    /* Starting twice is refused. */
    h = start_full(0, 0, NULL, NULL, NULL);
    start_or_die(h);
    ck_assert_int_ne(ah_httpd_start(h, err, sizeof err), 0);
    ah_httpd_free(h);
}
END_TEST


/* --- templated routes ---------------------------------------------------- */

/* Answers the route's tag and its captures ("-" for an absent one). */
static void h_params(void *arg, ah_http_exchange *ex)
{
    static const char *const names[] = {"id", "sub", "a", "b", "x", "y"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "tag", arg != NULL ? (const char *)arg : "");
    cJSON_AddStringToObject(o, "subpath", ah_ex_subpath(ex));
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = ah_ex_param(ex, names[i]);
        cJSON_AddStringToObject(o, names[i], v != NULL ? v : "-");
    }
    ah_ex_respond_json(ex, 200, o);
}

/* GET path (or `method`) answered 200 by the route tagged `tag`. */
static void expect_tag(uint16_t port, const char *method, const char *path, const char *tag)
{
    req q = {.method = method, .url_path = path};
    reply r = do_req(port, &q);
    char v[64];
    ck_assert_msg(r.status == 200, "%s %s: %ld %s", method ? method : "GET", path, r.status,
                  r.body);
    ck_assert_msg(strcmp(field(&r, "tag", v, sizeof v), tag) == 0, "%s: tag %s, want %s", path,
                  v, tag);
    reply_free(&r);
}

START_TEST(test_template_captures)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/t/{id}", 0, h_params, "get"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/t/{id}/stage", 0, h_params, "stage"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/t/{id}/{sub}", 0, h_params, "two"), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    char v[64];
    reply r = get(port, "/t/rec_42?include=raw");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(field(&r, "tag", v, sizeof v), "get");
    ck_assert_str_eq(field(&r, "id", v, sizeof v), "rec_42");
    ck_assert_str_eq(field(&r, "sub", v, sizeof v), "-");
    ck_assert_str_eq(field(&r, "subpath", v, sizeof v), "");
    reply_free(&r);
    /* Values are unescaped, like the path. */
    r = get(port, "/t/a%20b%7E");
    ck_assert_str_eq(field(&r, "id", v, sizeof v), "a b~");
    reply_free(&r);
    req q = {.method = "POST", .url_path = "/t/7/stage"};
    r = do_req(port, &q);
    ck_assert_str_eq(field(&r, "tag", v, sizeof v), "stage");
    ck_assert_str_eq(field(&r, "id", v, sizeof v), "7");
    reply_free(&r);
    r = get(port, "/t/7/notes");
    ck_assert_str_eq(field(&r, "tag", v, sizeof v), "two");
    ck_assert_str_eq(field(&r, "id", v, sizeof v), "7");
    ck_assert_str_eq(field(&r, "sub", v, sizeof v), "notes");
    reply_free(&r);
    /* An escaped '/' is unescaped before the path is split: it separates
     * segments like '/', so "a%2Fb" is two segments, not one id. */
    r = get(port, "/t/a%2Fb");
    ck_assert_str_eq(field(&r, "tag", v, sizeof v), "two");
    ck_assert_str_eq(field(&r, "id", v, sizeof v), "a");
    ck_assert_str_eq(field(&r, "sub", v, sizeof v), "b");
    reply_free(&r);
    r = get(port, "/t/a%2Fb%2Fc");
    ck_assert_error(r, 404, "not_found");
    reply_free(&r);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_template_empty_and_trailing)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/t/{id}", 0, h_params, "get"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/t/{id}/notes", 0, h_params, "notes"), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    /* A placeholder never matches an empty segment; counts must agree. */
    const char *misses[] = {"/t/", "/t", "/t//notes", "/t/1/", "/t/1/notes/", "/t/1//",
                            "/t/1/notes/x", "//t/1"};
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
        reply r = get(port, misses[i]);
        ck_assert_msg(r.status == 404, "%s: %ld", misses[i], r.status);
        ck_assert_error(r, 404, "not_found");
        reply_free(&r);
    }
    expect_tag(port, NULL, "/t/1", "get");
    expect_tag(port, NULL, "/t/1/notes", "notes");
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_template_precedence)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    /* Registered least specific first: the order must not matter. */
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/p/", AH_HTTPD_PREFIX, h_params, "prefix"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "*", "/p/{a}/{b}", 0, h_params, "ab"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/p/{a}/x", 0, h_params, "ax"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/p/y/{b}", 0, h_params, "yb"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/p/{id}", 0, h_params, "id"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/p/special", 0, h_params, "exact"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/p/{a}/{b}", 0, h_params, "ab-get"), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    /* Exact before templates. */
    expect_tag(port, "POST", "/p/special", "exact");
    /* More literal segments win; at equal count the earlier literal. */
    expect_tag(port, NULL, "/p/y/x", "yb");
    expect_tag(port, NULL, "/p/z/x", "ax");
    expect_tag(port, NULL, "/p/y/z", "yb");
    /* Within one pattern, a named method before "*". */
    expect_tag(port, NULL, "/p/z/z", "ab-get");
    expect_tag(port, "DELETE", "/p/z/z", "ab");
    expect_tag(port, NULL, "/p/7", "id");
    /* Templates before prefix routes; the prefix takes what none matches. */
    expect_tag(port, NULL, "/p/1/2/3", "prefix");
    /* The most specific pattern owns the path: "/p/special" is not an {id}
     * for GET; the prefix route (a fallback) serves it instead. */
    expect_tag(port, NULL, "/p/special", "prefix");
    /* Without a prefix fallback the owner answers 405 with its methods. */
    req q = {.method = "POST", .url_path = "/p/y/x"};
    reply r = do_req(port, &q);
    ck_assert_error(r, 405, "method_not_allowed");
    ck_assert_str_eq(r.allow, "GET");
    reply_free(&r);
    /* Same pattern with other placeholder names: a replacement. */
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/p/{x}", 0, h_params, "renamed"), 0);
    char v[64];
    r = get(port, "/p/9");
    ck_assert_str_eq(field(&r, "tag", v, sizeof v), "renamed");
    ck_assert_str_eq(field(&r, "x", v, sizeof v), "9");
    ck_assert_str_eq(field(&r, "id", v, sizeof v), "-");
    reply_free(&r);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_template_404_405)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    /* PATCH first: Allow lists methods in byte order whatever the order. */
    ck_assert_int_eq(ah_httpd_route(h, "PATCH", "/a/{id}", 0, h_params, "patch"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/a/{id}", 0, h_params, "get"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/a/bulk", 0, h_params, "bulk"), 0);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    req q = {.method = "DELETE", .url_path = "/a/1"};
    reply r = do_req(port, &q);
    ck_assert_error(r, 405, "method_not_allowed");
    ck_assert_str_eq(r.allow, "GET, PATCH");
    char v[128];
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"),
                                                      "message");
    ck_assert(cJSON_IsString(m) && strstr(m->valuestring, "use GET, PATCH") != NULL);
    cJSON_Delete(j);
    reply_free(&r);
    /* "/a/bulk" is its own resource, not the record "bulk". */
    r = get(port, "/a/bulk");
    ck_assert_error(r, 405, "method_not_allowed");
    ck_assert_str_eq(r.allow, "POST");
    reply_free(&r);
    expect_tag(port, "POST", "/a/bulk", "bulk");
    r = get(port, "/b/1");
    ck_assert_error(r, 404, "not_found");
    reply_free(&r);
    r = get(port, "/a/1/x");
    ck_assert_error(r, 404, "not_found");
    reply_free(&r);
    (void)v;
    ah_httpd_free(h);
}
END_TEST

static void count_route(void *arg, const char *method, const char *path, unsigned flags)
{
    (void)method;
    (void)flags;
    if (strcmp(path, "/u/{id}") == 0)
        (*(int *)arg)++;
}

START_TEST(test_template_register_unroute)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    const char *bad[] = {"/x/{}", "/x/{a", "/x/a}", "/x/a{b}", "/x/{a}b", "/x/{a-b}",
                         "/x/{a}/{a}", "/x/{a}{b}", "/x/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(ah_httpd_route(h, "GET", bad[i], 0, h_params, NULL) == -1, "%s", bad[i]);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/x/{id}/", AH_HTTPD_PREFIX, h_params, NULL), -1);
    static char arg1[] = "one", arg2[] = "two";
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/u/{id}", 0, h_params, arg1), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/u/{id}/{sub}", 0, h_params, arg2), 0);
    int n = 0;
    ah_httpd_each_route(h, count_route, &n);
    ck_assert_int_eq(n, 1);
    start_or_die(h);
    uint16_t port = ah_httpd_port(h);
    expect_tag(port, NULL, "/u/1", "one");
    ah_httpd_unroute_arg(h, arg1);
    reply r = get(port, "/u/1");
    ck_assert_error(r, 404, "not_found");
    reply_free(&r);
    expect_tag(port, NULL, "/u/1/2", "two");
    ah_httpd_free(h);
}
END_TEST


/* --- suspended requests --------------------------------------------------- */

typedef struct parking {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ah_ex_pending *p[8];
    int n;
    long timeout_ms;
    int after_status[8]; /* what the after hook saw, per request */
    char after_body[8][64];
    int nafter;
    uint16_t port;
    bool late_in, late_go; /* h_park_late: in its handler; may suspend */
} parking;

static void h_park(void *arg, ah_http_exchange *ex)
{
    parking *k = arg;
    ah_ex_pending *p = ah_ex_suspend(ex, k->timeout_ms, "too slow");
    ck_assert_ptr_nonnull(p);
    /* Suspending twice is refused. */
    ck_assert_ptr_null(ah_ex_suspend(ex, 0, NULL));
    pthread_mutex_lock(&k->mu);
    k->p[k->n++] = p;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

/* h_park once the test lets it: until then its connection is busy in the
 * handler, with no deadline of its own. */
static void h_park_late(void *arg, ah_http_exchange *ex)
{
    parking *k = arg;
    enter_and_wait(&k->mu, &k->cv, &k->late_in, &k->late_go);
    pthread_mutex_unlock(&k->mu);
    h_park(arg, ex);
}

/* A completion that runs at once, inside the handler (a refused send). */
static void h_park_now(void *arg, ah_http_exchange *ex)
{
    (void)arg;
    ah_ex_pending *p = ah_ex_suspend(ex, 0, NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(ah_ex_resume_error(p, 409, "conflict", "at once %d", 1), 0);
}

static bool before_capture(void *arg, ah_http_exchange *ex)
{
    (void)arg;
    ah_ex_capture_response(ex);
    return false;
}

static void after_record(void *arg, ah_http_exchange *ex)
{
    parking *k = arg;
    size_t len = 0;
    const char *b = ah_ex_response_body(ex, &len);
    pthread_mutex_lock(&k->mu);
    if (k->nafter < 8) {
        k->after_status[k->nafter] = ah_ex_status(ex);
        snprintf(k->after_body[k->nafter], sizeof k->after_body[0], "%s", b != NULL ? b : "");
        k->nafter++;
    }
    pthread_mutex_unlock(&k->mu);
}

typedef struct park_client {
    parking *k;
    const char *path;
    reply r;
} park_client;

static void *park_client_main(void *arg)
{
    park_client *c = arg;
    c->r = get(c->k->port, c->path);
    return NULL;
}

static void wait_parked(parking *k, int n)
{
    pthread_mutex_lock(&k->mu);
    while (k->n < n)
        pthread_cond_wait(&k->cv, &k->mu);
    pthread_mutex_unlock(&k->mu);
}

static ah_httpd *park_server(parking *k, long timeout_ms)
{
    memset(k, 0, sizeof *k);
    ck_assert_int_eq(pthread_mutex_init(&k->mu, NULL), 0);
    ck_assert_int_eq(pthread_cond_init(&k->cv, NULL), 0);
    k->timeout_ms = timeout_ms;
    /* One server thread: whatever it serves while requests are suspended
     * proves that they do not hold it. */
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/park", 0, h_park, k), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/now", 0, h_park_now, k), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/park_late", 0, h_park_late, k), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/b", 0, h_hello, "b"), 0);
    ah_httpd_set_hooks(h, before_capture, after_record, k);
    start_or_die(h);
    k->port = ah_httpd_port(h);
    return h;
}

START_TEST(test_suspend_resume)
{
    parking k;
    ah_httpd *h = park_server(&k, 0);
    park_client c[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (park_client){.k = &k, .path = "/park"};
        ck_assert_int_eq(pthread_create(&th[i], NULL, park_client_main, &c[i]), 0);
    }
    wait_parked(&k, 3);
    /* The one server thread is free; the suspended requests are in flight. */
    reply r = get(k.port, "/b");
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    /* The client can read /b's answer before the server counts that request
     * complete: wait for the count to settle, then it must be the three. */
    for (int i = 0; i < 500 && ah_httpd_inflight(h) != 3; i++)
        usleep(10 * 1000);
    ck_assert_int_eq(ah_httpd_inflight(h), 3);
    ck_assert(!ah_httpd_wait_idle(h, 10));
    /* Answered from this thread, each with its own status and body. */
    for (int i = 0; i < 3; i++) {
        cJSON *o = cJSON_CreateObject();
        ck_assert_ptr_nonnull(cJSON_AddNumberToObject(o, "n", i));
        ck_assert_int_eq(ah_ex_resume_json(k.p[i], 201 + i, o), 0);
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_ge(c[i].r.status, 201);
        ck_assert_int_le(c[i].r.status, 203);
        char want[32];
        snprintf(want, sizeof want, "{\"n\":%ld}", c[i].r.status - 201);
        ck_assert_str_eq(c[i].r.body, want);
        ck_assert_str_eq(c[i].r.ctype, "application/json");
        reply_free(&c[i].r);
    }
    ck_assert(ah_httpd_wait_idle(h, 10000));
    /* The after hook saw the final answers (the /b one first). */
    pthread_mutex_lock(&k.mu);
    ck_assert_int_eq(k.nafter, 4);
    for (int i = 1; i < 4; i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"n\":%d}", k.after_status[i] - 201);
        ck_assert_str_eq(k.after_body[i], want);
    }
    pthread_mutex_unlock(&k.mu);
    /* Decided inside the handler: answered at once. */
    r = get(k.port, "/now");
    ck_assert_error(r, 409, "conflict");
    reply_free(&r);
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_suspend_timeout)
{
    parking k;
    ah_httpd *h = park_server(&k, 200);
    reply r = get(k.port, "/park");
    ck_assert_error(r, 504, "timeout");
    ck_assert_ptr_nonnull(strstr(r.body, "too slow"));
    reply_free(&r);
    /* The late completion is dropped. */
    ck_assert_int_eq(k.n, 1);
    ck_assert_int_eq(ah_ex_resume_json(k.p[0], 200, cJSON_CreateObject()), -1);
    ck_assert(ah_httpd_wait_idle(h, 10000));
    ah_httpd_free(h);
}
END_TEST

/* A request suspended while the server is otherwise quiet (its only
 * connection busy in the handler: no connection deadline for the acceptor
 * to wait for, and no request suspended before) still gets its 504: the
 * acceptor slept until the next connection, and the client waited for its
 * own timeout (found under ThreadSanitizer, where the handler was slow
 * enough to suspend after the acceptor had gone to sleep). */
START_TEST(test_suspend_timeout_quiet_server)
{
    parking k;
    ah_httpd *h = park_server(&k, 200);
    park_client c = {.k = &k, .path = "/park_late"};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, park_client_main, &c), 0);
    pthread_mutex_lock(&k.mu);
    while (!k.late_in)
        pthread_cond_wait(&k.cv, &k.mu);
    pthread_mutex_unlock(&k.mu);
    /* Past the acceptor's last wait for the connection's header deadline
     * (at most a second): it now has nothing left to wait for. */
    struct timespec ts = {1, 500 * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    pthread_mutex_lock(&k.mu);
    k.late_go = true;
    pthread_cond_broadcast(&k.cv);
    pthread_mutex_unlock(&k.mu);
    pthread_join(th, NULL);
    ck_assert_error(c.r, 504, "timeout");
    ck_assert_ptr_nonnull(strstr(c.r.body, "too slow"));
    reply_free(&c.r);
    /* The late completion is dropped (and lets its part of p go). */
    ck_assert_int_eq(k.n, 1);
    ck_assert_int_eq(ah_ex_resume_json(k.p[0], 200, cJSON_CreateObject()), -1);
    ck_assert(ah_httpd_wait_idle(h, 10000));
    ah_httpd_free(h);
}
END_TEST

START_TEST(test_suspend_free)
{
    parking k;
    ah_httpd *h = park_server(&k, 0);
    park_client c = {.k = &k, .path = "/park"};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, park_client_main, &c), 0);
    wait_parked(&k, 1);
    /* MHD never stops with a suspended connection: the server answers it. */
    ah_httpd_free(h);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_error(c.r, 503, "shutting_down");
    reply_free(&c.r);
    /* The completion may come after the server is gone. */
    ck_assert_int_eq(ah_ex_resume_error(k.p[0], 500, "late", "gone"), -1);
}
END_TEST

/* --- detached requests ------------------------------------------------------ */

/* A handler that detaches its request to a thread of its own, which waits
 * for the test's go before it handles the request with the ordinary
 * accessors. end_first: that thread ends its use of ex before the answer is
 * released, and the test releases it (as a group commit does). */
typedef struct detaching {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool go;
    bool end_first;
    int started, done;
    int release_rc; /* the last ah_ex_release's */
    ah_ex_pending *p; /* end_first: the last one, for the test to release */
} detaching;

typedef struct det_job {
    detaching *d;
    ah_http_exchange *ex;
    ah_ex_pending *p;
} det_job;

static bool count_header(void *arg, const char *name, const char *value)
{
    (void)value;
    if (strcasecmp(name, "x-one") == 0)
        (*(int *)arg)++;
    return true;
}

static void *det_main(void *arg)
{
    det_job *j = arg;
    detaching *d = j->d;
    ah_http_exchange *ex = j->ex;
    pthread_mutex_lock(&d->mu);
    d->started++;
    pthread_cond_broadcast(&d->cv);
    while (!d->go)
        pthread_cond_wait(&d->cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
    const cJSON *in = ah_ex_json(ex); /* answers 400 itself when not JSON */
    if (in != NULL) {
        const char *hv = ah_ex_header(ex, "X-ONE"), *qv = ah_ex_query(ex, "q");
        const char *cv = ah_ex_cookie(ex, "sid");
        char *canon = ah_ex_query_canonical(ex);
        int nx = 0;
        ah_ex_each(ex, false, count_header, &nx);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "header", hv != NULL ? hv : "(null)");
        cJSON_AddStringToObject(o, "query", qv != NULL ? qv : "(null)");
        cJSON_AddStringToObject(o, "cookie", cv != NULL ? cv : "(null)");
        cJSON_AddStringToObject(o, "canon", canon != NULL ? canon : "(oom)");
        cJSON_AddNumberToObject(o, "x_one", nx);
        cJSON_AddStringToObject(o, "ip", ah_ex_client_ip(ex));
        cJSON_AddItemToObject(o, "got", cJSON_Duplicate(in, 1));
        free(canon);
        ck_assert_int_eq(ah_ex_add_header(ex, "X-Reply", "detached"), 0);
        ck_assert_int_eq(ah_ex_respond_json(ex, 201, o), 0);
    }
    /* The answer is held until released, and sent once both happened. */
    if (d->end_first) {
        ah_ex_detach_end(j->p);
        pthread_mutex_lock(&d->mu);
        d->p = j->p;
    } else {
        int rc = ah_ex_release(j->p);
        ah_ex_detach_end(j->p);
        pthread_mutex_lock(&d->mu);
        d->release_rc = rc;
    }
    d->done++;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    free(j);
    return NULL;
}

static void h_detach(void *arg, ah_http_exchange *ex)
{
    det_job *j = malloc(sizeof *j);
    ck_assert_ptr_nonnull(j);
    j->d = arg;
    j->ex = ex;
    j->p = ah_ex_detach(ex);
    ck_assert_ptr_nonnull(j->p);
    /* Detached already: neither suspending nor detaching again. */
    ck_assert_ptr_null(ah_ex_detach(ex));
    ck_assert_ptr_null(ah_ex_suspend(ex, 0, NULL));
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, det_main, j), 0);
    ck_assert_int_eq(pthread_detach(th), 0);
}

typedef struct det_client {
    uint16_t port;
    const char *body;
    reply r;
    char xreply[64];
} det_client;

static void *det_client_main(void *arg)
{
    det_client *c = arg;
    CURL *e = curl_easy_init();
    ck_assert_ptr_nonnull(e);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/det?q=a%%20b&q=2&flag", (unsigned)c->port);
    buf b = {0};
    struct curl_slist *hl = curl_slist_append(NULL, "X-One: first");
    hl = curl_slist_append(hl, "x-one: second");
    hl = curl_slist_append(hl, "Cookie: sid=s3cr; other=1");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    c->r.rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &c->r.status);
    char *ct = NULL;
    if (curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL)
        snprintf(c->r.ctype, sizeof c->r.ctype, "%s", ct);
    struct curl_header *h = NULL;
    if (curl_easy_header(e, "X-Reply", 0, CURLH_HEADER, -1, &h) == CURLHE_OK)
        snprintf(c->xreply, sizeof c->xreply, "%s", h->value);
    c->r.body = b.p != NULL ? b.p : strdup("");
    curl_slist_free_all(hl);
    curl_easy_cleanup(e);
    return NULL;
}

static ah_httpd *det_server(detaching *d, bool end_first)
{
    memset(d, 0, sizeof *d);
    ck_assert_int_eq(pthread_mutex_init(&d->mu, NULL), 0);
    ck_assert_int_eq(pthread_cond_init(&d->cv, NULL), 0);
    d->end_first = end_first;
    /* One server thread: it answers others while the detached ones wait. */
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/det", 0, h_detach, d), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/b", 0, h_hello, "b"), 0);
    start_or_die(h);
    return h;
}

static void det_wait(detaching *d, int *counter, int n)
{
    pthread_mutex_lock(&d->mu);
    while (*counter < n)
        pthread_cond_wait(&d->cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
}

static void det_go(detaching *d)
{
    pthread_mutex_lock(&d->mu);
    d->go = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* A detached request is handled on another thread with the usual
 * accessors (headers, repeated ones in order, cookies, query, the body),
 * while the server's one thread serves other requests; its answer, status,
 * body and headers, goes out once released and ended. */
START_TEST(test_detach)
{
    detaching d;
    ah_httpd *h = det_server(&d, false);
    det_client c[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        c[i] = (det_client){.port = ah_httpd_port(h), .body = "{\"n\":7}"};
        ck_assert_int_eq(pthread_create(&th[i], NULL, det_client_main, &c[i]), 0);
    }
    det_wait(&d, &d.started, 3);
    reply r = get(ah_httpd_port(h), "/b");
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    ck_assert_int_ge(ah_httpd_inflight(h), 3);
    det_go(&d);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(c[i].r.rc, CURLE_OK);
        ck_assert_int_eq(c[i].r.status, 201);
        ck_assert_str_eq(c[i].xreply, "detached");
        char v[128];
        ck_assert_str_eq(field(&c[i].r, "header", v, sizeof v), "first");
        ck_assert_str_eq(field(&c[i].r, "query", v, sizeof v), "a b");
        ck_assert_str_eq(field(&c[i].r, "cookie", v, sizeof v), "s3cr");
        ck_assert_str_eq(field(&c[i].r, "canon", v, sizeof v), "1:q3:a b;1:q1:2;4:flag-:;");
        ck_assert_str_eq(field(&c[i].r, "ip", v, sizeof v), "127.0.0.1");
        ck_assert_ptr_nonnull(strstr(c[i].r.body, "\"x_one\":2"));
        ck_assert_ptr_nonnull(strstr(c[i].r.body, "\"got\":{\"n\":7}"));
        reply_free(&c[i].r);
    }
    /* An error answered on the other thread (not JSON) goes out the same way. */
    det_client bad = {.port = ah_httpd_port(h), .body = "{nope"};
    det_client_main(&bad);
    ck_assert_error(bad.r, 400, "invalid_json");
    reply_free(&bad.r);
    /* The answer can reach the client before its thread has counted
     * itself done; d must outlive all four threads' use of it. */
    det_wait(&d, &d.done, 4);
    ck_assert_int_eq(d.release_rc, 0); /* written under d.mu, which det_wait took */
    ck_assert(ah_httpd_wait_idle(h, 10000));
    ah_httpd_free(h);
    pthread_cond_destroy(&d.cv);
    pthread_mutex_destroy(&d.mu);
}
END_TEST

/* A detached exchange handed to a completion (ah_ex_suspend on the thread
 * that took it over): the completion's answer goes out, or, when nobody
 * answers by the deadline, 504 with the suspend's words. */
typedef struct handover {
    ah_http_exchange *ex;
    ah_ex_pending *p;
    bool answer; /* the completion answers; else the deadline does */
} handover;

static _Atomic(ah_ex_pending *) late_p;

static void *handover_main(void *arg)
{
    handover *hv = arg;
    ah_ex_pending *p = ah_ex_suspend(hv->ex, hv->answer ? 60000 : 50, "nobody answered");
    ck_assert_ptr_eq(p, hv->p);
    ck_assert_ptr_null(ah_ex_suspend(hv->ex, 0, NULL)); /* once */
    if (hv->answer) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "via", "completion");
        ck_assert_int_eq(ah_ex_resume_json(p, 202, o), 0);
    } else
        atomic_store(&late_p, p); /* the test answers it, too late */
    ah_ex_detach_finish(hv->ex, hv->p); /* does not release: the completion's */
    free(hv);
    return NULL;
}

static void h_handover(void *arg, ah_http_exchange *ex)
{
    handover *hv = malloc(sizeof *hv);
    ck_assert_ptr_nonnull(hv);
    hv->ex = ex;
    hv->answer = arg != NULL;
    hv->p = ah_ex_detach(ex);
    ck_assert_ptr_nonnull(hv->p);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, handover_main, hv), 0);
    ck_assert_int_eq(pthread_detach(th), 0);
}

START_TEST(test_detach_handover)
{
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/answered", 0, h_handover, "yes"), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/late", 0, h_handover, NULL), 0);
    start_or_die(h);
    reply r = get(ah_httpd_port(h), "/answered");
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(r.body, "{\"via\":\"completion\"}");
    reply_free(&r);
    r = get(ah_httpd_port(h), "/late");
    ck_assert_error(r, 504, "timeout");
    ck_assert_ptr_nonnull(strstr(r.body, "nobody answered"));
    reply_free(&r);
    ck_assert_int_eq(ah_ex_resume_json(atomic_load(&late_p), 200, NULL), -1); /* timed out */
    ck_assert(ah_httpd_wait_idle(h, 10000));
    ah_httpd_free(h);
}
END_TEST

/* A before hook that detaches the exchange (as the Idempotency-Key's does):
 * another thread runs the route's handler (ah_ex_call_route) and sees the
 * decided answer before it goes out (ah_ex_detach_gate, ah_ex_decided):
 * answered by the handler there (the gate at once), by a completion on yet
 * another thread, or by the deadline's 504 (the acceptor's thread); the
 * after hook is not called for them, but is for a request the hook let
 * through. */
typedef struct gated {
    pthread_mutex_t mu;
    int status[4];  /* what each gate saw: now, comp, late, hang */
    char *body[4];
    bool now[4];
    int gates;
    atomic_int afters;
} gated;

static gated G;

typedef struct gate_job {
    ah_http_exchange *ex;
    ah_ex_pending *p;
    int slot;
} gate_job;

static void gate_fn(void *arg, bool now)
{
    gate_job *j = arg;
    char *body = NULL;
    size_t len = 0;
    int st = ah_ex_decided(j->ex, j->p, &body, &len);
    ck_assert_int_gt(st, 0);
    ck_assert_uint_eq(strlen(body), len);
    pthread_mutex_lock(&G.mu);
    G.status[j->slot] = st;
    G.body[j->slot] = body;
    G.now[j->slot] = now;
    G.gates++;
    pthread_mutex_unlock(&G.mu);
    ah_ex_pending *p = j->p;
    free(j);
    ah_ex_detach_end(p); /* now the answer goes out */
}

static void *gate_main(void *arg)
{
    gate_job *j = arg;
    ah_ex_capture_response(j->ex);
    ah_ex_call_route(j->ex);
    ah_ex_detach_gate(j->ex, j->p, gate_fn, j);
    return NULL;
}

static bool gate_before(void *arg, ah_http_exchange *ex)
{
    (void)arg;
    const char *path = ah_ex_path(ex);
    if (strncmp(path, "/g/", 3) != 0)
        return false;
    gate_job *j = calloc(1, sizeof *j);
    ck_assert_ptr_nonnull(j);
    j->ex = ex;
    j->slot = strcmp(path, "/g/now") == 0    ? 0
              : strcmp(path, "/g/comp") == 0 ? 1
              : strcmp(path, "/g/late") == 0 ? 2
                                             : 3;
    j->p = ah_ex_detach(ex);
    ck_assert_ptr_nonnull(j->p);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, gate_main, j), 0);
    ck_assert_int_eq(pthread_detach(th), 0);
    return true;
}

static void gate_after(void *arg, ah_http_exchange *ex)
{
    (void)arg;
    (void)ex;
    atomic_fetch_add(&G.afters, 1);
}

static void *comp_main(void *arg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "via", "completion");
    ck_assert_int_eq(ah_ex_resume_json(arg, 202, o), 0);
    return NULL;
}

static _Atomic(ah_ex_pending *) hang_p, gate_late_p;

typedef struct hang_client {
    uint16_t port;
    reply r;
} hang_client;

static void *hang_client_main(void *arg)
{
    hang_client *c = arg;
    c->r = get(c->port, "/g/hang");
    return NULL;
}

static void h_gate_route(void *arg, ah_http_exchange *ex)
{
    (void)arg;
    /* A second detach is refused: the handler runs in place. */
    ck_assert_ptr_null(ah_ex_detach(ex));
    const char *path = ah_ex_path(ex);
    if (strcmp(path, "/g/hang") == 0) { /* nobody answers: the shutdown does */
        ah_ex_pending *p = ah_ex_suspend(ex, 0, NULL);
        ck_assert_ptr_nonnull(p);
        atomic_store(&hang_p, p);
        return;
    }
    if (strcmp(path, "/g/now") == 0) {
        ah_ex_respond(ex, 201, "application/json", "{\"r\":\"now\"}", 11);
        return;
    }
    bool comp = strcmp(path, "/g/comp") == 0;
    ah_ex_pending *p = ah_ex_suspend(ex, comp ? 60000 : 50, "nobody answered");
    ck_assert_ptr_nonnull(p);
    if (!comp)
        atomic_store(&gate_late_p, p); /* the test answers it, too late */
    if (comp) {
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, comp_main, p), 0);
        ck_assert_int_eq(pthread_detach(th), 0);
    }
}

START_TEST(test_hook_detach_gate)
{
    memset(&G, 0, sizeof G);
    ck_assert_int_eq(pthread_mutex_init(&G.mu, NULL), 0);
    ah_httpd *h = start_full(1024, 1, NULL, NULL, NULL);
    ah_httpd_set_hooks(h, gate_before, gate_after, NULL);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/g/", AH_HTTPD_PREFIX, h_gate_route, NULL), 0);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/b", 0, h_hello, "b"), 0);
    start_or_die(h);
    reply r = get(ah_httpd_port(h), "/g/now");
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(r.body, "{\"r\":\"now\"}");
    reply_free(&r);
    r = get(ah_httpd_port(h), "/g/comp");
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(r.body, "{\"via\":\"completion\"}");
    reply_free(&r);
    r = get(ah_httpd_port(h), "/g/late");
    ck_assert_error(r, 504, "timeout");
    pthread_mutex_lock(&G.mu);
    /* Each gate saw the answer that went out, before it went out. */
    ck_assert_int_eq(G.gates, 3);
    ck_assert_int_eq(G.status[0], 201);
    ck_assert_str_eq(G.body[0], "{\"r\":\"now\"}");
    ck_assert(G.now[0]);
    ck_assert_int_eq(G.status[1], 202);
    ck_assert_str_eq(G.body[1], "{\"via\":\"completion\"}");
    /* now[1] and now[2] depend on which thread came first: either works. */
    ck_assert_int_eq(G.status[2], 504);
    ck_assert_str_eq(G.body[2], r.body);
    ck_assert_ptr_nonnull(strstr(G.body[2], "nobody answered"));
    pthread_mutex_unlock(&G.mu);
    reply_free(&r);
    ck_assert_int_eq(ah_ex_resume_json(atomic_load(&gate_late_p), 200, NULL), -1); /* timed out */
    ck_assert_int_eq(atomic_load(&G.afters), 0);
    r = get(ah_httpd_port(h), "/b");
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    ck_assert_int_eq(atomic_load(&G.afters), 1);
    /* Undecided at the shutdown: the gate sees its 503 (from the thread
     * that frees the server), and the free waits for the gate's end. */
    atomic_store(&hang_p, NULL);
    hang_client hc = {.port = ah_httpd_port(h)};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, hang_client_main, &hc), 0);
    for (int i = 0; atomic_load(&hang_p) == NULL; i++) {
        ck_assert_int_lt(i, 60000);
        usleep(1000);
    }
    ah_httpd_free(h);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    reply hr = hc.r;
    ck_assert_error(hr, 503, "shutting_down");
    pthread_mutex_lock(&G.mu);
    ck_assert_int_eq(G.gates, 4);
    ck_assert_int_eq(G.status[3], 503);
    ck_assert_str_eq(G.body[3], hr.body);
    pthread_mutex_unlock(&G.mu);
    reply_free(&hr);
    ck_assert_int_eq(ah_ex_resume_json(atomic_load(&hang_p), 200, NULL), -1);
    for (int i = 0; i < 4; i++)
        free(G.body[i]);
    pthread_mutex_destroy(&G.mu);
}
END_TEST

/* Ended before released (a group commit releases later): nothing goes out
 * until the release; a server stopped meanwhile answers 503 and waits for
 * the thread that still uses the exchange. */
START_TEST(test_detach_end_first)
{
    detaching d;
    ah_httpd *h = det_server(&d, true);
    det_client c = {.port = ah_httpd_port(h), .body = "{\"n\":1}"};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, det_client_main, &c), 0);
    det_wait(&d, &d.started, 1);
    det_go(&d);
    det_wait(&d, &d.done, 1);
    ck_assert_int_eq(ah_httpd_inflight(h), 1); /* held */
    ck_assert_int_eq(ah_ex_release(d.p), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(c.r.status, 201);
    ck_assert_ptr_nonnull(strstr(c.r.body, "\"got\":{\"n\":1}"));
    reply_free(&c.r);
    ck_assert(ah_httpd_wait_idle(h, 10000));
    ah_httpd_free(h);
    pthread_cond_destroy(&d.cv);
    pthread_mutex_destroy(&d.mu);
}
END_TEST

typedef struct free_arg {
    ah_httpd *h;
} free_arg;

static void *free_main(void *arg)
{
    ah_httpd_free(((free_arg *)arg)->h);
    return NULL;
}

START_TEST(test_detach_free_waits)
{
    detaching d;
    ah_httpd *h = det_server(&d, false);
    det_client c = {.port = ah_httpd_port(h), .body = "{\"n\":1}"};
    pthread_t th, fth;
    ck_assert_int_eq(pthread_create(&th, NULL, det_client_main, &c), 0);
    det_wait(&d, &d.started, 1);
    /* The server stops while the other thread has the exchange: it answers
     * 503 once that thread is done, never touching ex before. */
    free_arg fa = {h};
    ck_assert_int_eq(pthread_create(&fth, NULL, free_main, &fa), 0);
    usleep(50 * 1000); /* lets the stop begin; either order is correct */
    det_go(&d);
    ck_assert_int_eq(pthread_join(fth, NULL), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    det_wait(&d, &d.done, 1);
    if (c.r.status == 201) {
        /* The thread answered before the stop began (a slow machine). */
        ck_assert_int_eq(d.release_rc, 0);
    } else {
        ck_assert_error(c.r, 503, "shutting_down");
        ck_assert_int_eq(d.release_rc, -1); /* the handler's answer came too late */
    }
    reply_free(&c.r);
    pthread_cond_destroy(&d.cv);
    pthread_mutex_destroy(&d.mu);
}
END_TEST

static Suite *httpd_suite(void)
{
    Suite *s = suite_create("httpd");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_route_json_200);
    tcase_add_test(tc, test_not_found);
    tcase_add_test(tc, test_method_not_allowed);
    tcase_add_test(tc, test_body_too_large_content_length);
    tcase_add_test(tc, test_body_too_large_drained);
    tcase_add_test(tc, test_body_too_large_chunked);
    tcase_add_test(tc, test_invalid_json);
    tcase_add_test(tc, test_json_too_deep);
    tcase_add_test(tc, test_status_for_code);
    tcase_add_test(tc, test_conflicting_length_raw);
    tcase_add_test(tc, test_lying_content_length);
    tcase_add_test(tc, test_bad_path);
    tcase_add_test(tc, test_dots_in_segment);
    tcase_add_test(tc, test_http_layer_errors_json);
    tcase_add_test(tc, test_error_body_utf8);
    tcase_add_test(tc, test_hidden_cookie);
    tcase_add_test(tc, test_body_budget);
    tcase_add_test(tc, test_body_budget_per_client);
    tcase_add_test(tc, test_drained_refuses_new_requests);
    tcase_add_test(tc, test_prefix_route);
    tcase_add_test(tc, test_template_captures);
    tcase_add_test(tc, test_template_empty_and_trailing);
    tcase_add_test(tc, test_template_precedence);
    tcase_add_test(tc, test_template_404_405);
    tcase_add_test(tc, test_template_register_unroute);
    tcase_add_test(tc, test_header_query_ip);
    tcase_add_test(tc, test_handler_no_response);
    tcase_add_test(tc, test_concurrent);
    tcase_add_test(tc, test_route_replace);
    tcase_add_test(tc, test_unroute_arg);
    tcase_add_test(tc, test_suspend_resume);
    tcase_add_test(tc, test_suspend_timeout);
    tcase_add_test(tc, test_suspend_timeout_quiet_server);
    tcase_add_test(tc, test_suspend_free);
    tcase_add_test(tc, test_detach);
    tcase_add_test(tc, test_detach_end_first);
    tcase_add_test(tc, test_detach_free_waits);
    tcase_add_test(tc, test_detach_handover);
    tcase_add_test(tc, test_hook_detach_gate);
    tcase_add_test(tc, test_tls);
    tcase_add_test(tc, test_opts_errors);
    tcase_add_test(tc, test_ipv6);
#ifdef NDEBUG
    tcase_add_test(tc, test_respond_twice);
    tcase_add_test(tc, test_add_socket);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
        return 1;
    SRunner *sr = srunner_create(httpd_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
