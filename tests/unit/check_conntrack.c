/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP server's connection guard (net/conntrack.c) against the attacks
 * it exists for, each reproduced on loopback against a real server: a flood
 * of idle sockets from one address, the total limit, headers trickled byte
 * by byte, a body sent slower than the minimum rate, silent connections,
 * half-closed sockets. Another client address (127.0.0.2, also loopback) is
 * served throughout.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conntrack.h"
#include "httpd.h"

static void h_health(void *arg, ah_http_exchange *ex)
{
    (void)arg;
    ah_ex_respond(ex, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

static ah_httpd *serve(unsigned max_total, unsigned per_client, long header_ms, unsigned rate)
{
    char err[256] = "";
    ah_httpd_opts o = {
        .host = "127.0.0.1",
        .threads = 2,
        .max_connections = max_total,
        .max_connections_per_client = per_client,
        .header_timeout_ms = header_ms,
        .min_body_rate = rate,
    };
    ah_httpd *h = ah_httpd_new(&o, err, sizeof err);
    ck_assert_msg(h != NULL, "%s", err);
    ck_assert_int_eq(ah_httpd_route(h, "GET", "/health", 0, h_health, NULL), 0);
    ck_assert_int_eq(ah_httpd_route(h, "POST", "/health", 0, h_health, NULL), 0);
    ck_assert_msg(ah_httpd_start(h, err, sizeof err) == 0, "%s", err);
    return h;
}

/* A connected socket from loopback address `from` ("127.0.0.1" or another
 * address of 127/8), or -1 when the connection is refused. */
static int dial(uint16_t port, const char *from)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in src = {.sin_family = AF_INET};
    ck_assert_int_eq(inet_pton(AF_INET, from, &src.sin_addr), 1);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const char *s)
{
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* the server may have closed: the reader sees it */
        off += (size_t)n;
    }
}

/* Everything the server sends until it closes, or until wait_ms passes
 * with nothing new (NULL then: the connection is still open). */
static char *read_until_close(int fd, int wait_ms)
{
    size_t cap = 4096, len = 0;
    char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, wait_ms);
        if (n == 0) {
            free(b);
            return NULL;
        }
        ssize_t r = recv(fd, b + len, cap - len - 1, 0);
        if (r <= 0)
            break; /* closed (0) or reset */
        len += (size_t)r;
        if (len + 1 == cap) {
            cap *= 2;
            b = realloc(b, cap);
            ck_assert_ptr_nonnull(b);
        }
    }
    b[len] = '\0';
    return b;
}

/* GET /health over a fresh connection from `from`; the status, or 0. */
static int health(uint16_t port, const char *from)
{
    int fd = dial(port, from);
    if (fd < 0)
        return 0;
    send_all(fd, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    char *r = read_until_close(fd, 5000);
    close(fd);
    int status = 0;
    if (r != NULL && sscanf(r, "HTTP/1.1 %d", &status) != 1)
        status = 0;
    free(r);
    return status;
}

static void raise_fd_limit(rlim_t want)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    ck_assert_msg(rl.rlim_cur >= want, "this test needs %lu descriptors, the limit is %lu",
                  (unsigned long)want, (unsigned long)rl.rlim_cur);
}

/* 5,000 idle sockets from one address: all but the per-client limit are
 * refused at once with a JSON 503, and a client from another address is
 * served while the rest stay open. */
START_TEST(test_flood_from_one_address)
{
    raise_fd_limit(12000);
    ah_httpd *h = serve(0, 64, 30000, 0);
    uint16_t port = ah_httpd_port(h);
    enum { N = 5000 };
    int *fds = malloc(N * sizeof *fds);
    ck_assert_ptr_nonnull(fds);
    for (int i = 0; i < N; i++)
        fds[i] = dial(port, "127.0.0.1");
    ck_assert_int_eq(health(port, "127.0.0.2"), 200);
    int refused = 0, open = 0;
    char *sample = NULL;
    for (int i = 0; i < N; i++) {
        if (fds[i] < 0) {
            refused++;
            continue;
        }
        /* The refusals were sent before the health request was accepted
         * (one acceptor, in order): a socket with nothing to read is open. */
        char *r = read_until_close(fds[i], 20);
        if (r == NULL) {
            open++;
        } else {
            refused++;
            if (sample == NULL && r[0] != '\0')
                sample = r;
            else
                free(r);
        }
    }
    ck_assert_int_eq(open, 64);
    ck_assert_int_eq(refused, N - 64);
    ck_assert_ptr_nonnull(sample);
    ck_assert_msg(strncmp(sample, "HTTP/1.1 503", 12) == 0 &&
                      strstr(sample, "\"code\":\"too_many_connections\"") != NULL,
                  "%s", sample);
    free(sample);
    /* Still served from the other address while 64 sockets hold on. */
    ck_assert_int_eq(health(port, "127.0.0.2"), 200);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    ah_httpd_free(h);
}
END_TEST

/* The total limit holds across addresses. */
/* A client holding an IPv6 /64 picks the low half of its address at will:
 * counted per address, each connection was a new client and the
 * per-client limit no limit. (Admission only: no traffic; the refused
 * socket is a socket pair's end.) */
START_TEST(test_ipv6_client_is_its_64)
{
    ah_conntrack_opts o = {.max_per_client = 2, .plain_text = true};
    ah_conntrack *t = ah_conntrack_new(&o);
    ck_assert_ptr_nonnull(t);
    static const char *addrs[] = {"2001:db8:1:2::1", "2001:db8:1:2:ffff::7", "2001:db8:1:2::9",
                                  "2001:db8:1:3::1"};
    bool want[] = {true, true, false, true};
    ah_conn_entry *e[4];
    int fds[4];
    for (int i = 0; i < 4; i++) {
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
        ck_assert_int_eq(inet_pton(AF_INET6, addrs[i], &sa.sin6_addr), 1);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        fds[i] = sv[0];
        e[i] = ah_conntrack_admit(t, sv[0], (struct sockaddr *)&sa);
        ck_assert_msg((e[i] != NULL) == want[i], "%s: %s", addrs[i],
                      e[i] != NULL ? "admitted" : "refused");
        if (e[i] == NULL) {
            /* Refused: answered 503 on its socket, and closed. */
            char buf[512];
            ssize_t n = read(sv[1], buf, sizeof buf - 1);
            ck_assert_int_gt(n, 0);
            buf[n] = '\0';
            ck_assert_ptr_nonnull(strstr(buf, "503"));
        }
        close(sv[1]);
    }
    ck_assert_str_eq(ah_conn_entry_ip(e[0]), "2001:db8:1:2::/64");
    for (int i = 0; i < 4; i++)
        if (e[i] != NULL) {
            ah_conntrack_release(t, e[i]);
            close(fds[i]);
        }
    ah_conntrack_free(t);
}
END_TEST

START_TEST(test_total_limit)
{
    ah_httpd *h = serve(20, 1000, 30000, 0);
    uint16_t port = ah_httpd_port(h);
    int fds[30];
    for (int i = 0; i < 30; i++)
        fds[i] = dial(port, i % 2 ? "127.0.0.3" : "127.0.0.4");
    /* Accepted after the 30 (one acceptor, in order): it is refused, and
     * once it is answered every refusal has been sent. */
    ck_assert_int_eq(health(port, "127.0.0.2"), 503);
    int open = 0;
    for (int i = 0; i < 30; i++) {
        char *r = fds[i] >= 0 ? read_until_close(fds[i], 20) : strdup("");
        if (r == NULL)
            open++;
        free(r);
    }
    ck_assert_int_eq(open, 20);
    for (int i = 0; i < 30; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    /* Once they are gone, new clients are served again. */
    for (int tries = 0; tries < 100 && health(port, "127.0.0.2") != 200; tries++)
        usleep(20 * 1000);
    ck_assert_int_eq(health(port, "127.0.0.2"), 200);
    ah_httpd_free(h);
}
END_TEST

/* Sends head, then drip every 50 ms until the server answers and closes
 * (10 s at most); expects that answer to be the JSON 408. Closes fd. */
static void expect_408(int fd, const char *head, const char *drip)
{
    send_all(fd, head);
    char *r = NULL;
    for (int i = 0; i < 200 && r == NULL; i++) {
        send_all(fd, drip);
        r = read_until_close(fd, 50);
    }
    ck_assert_msg(r != NULL, "a client sending this slowly kept its connection for 10 s");
    ck_assert_msg(strncmp(r, "HTTP/1.1 408", 12) == 0 &&
                      strstr(r, "\"code\":\"request_timeout\"") != NULL,
                  "%s", r);
    free(r);
    close(fd);
}

/* Headers trickled one line at a time, each inside any idle timeout: the
 * header deadline still ends the request with a JSON 408. */
START_TEST(test_trickled_headers)
{
    ah_httpd *h = serve(0, 0, 400, 0);
    uint16_t port = ah_httpd_port(h);
    int fd = dial(port, "127.0.0.1");
    ck_assert_int_ge(fd, 0);
    expect_408(fd, "GET /health HTTP/1.1\r\nHost: t\r\n", "X-Slow: 1\r\n");
    ck_assert_int_eq(health(port, "127.0.0.2"), 200);
    ah_httpd_free(h);
}
END_TEST

/* Reads one answer (headers and its Content-Length of body) from fd. */
static void read_one_answer(int fd)
{
    char b[4096];
    size_t n = 0;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (;;) {
        ssize_t k = recv(fd, b + n, sizeof b - 1 - n, 0);
        ck_assert_int_gt(k, 0);
        n += (size_t)k;
        b[n] = '\0';
        const char *end = strstr(b, "\r\n\r\n");
        const char *cl = strcasestr(b, "Content-Length:");
        if (end != NULL && cl != NULL && (size_t)(end + 4 - b) + (size_t)atoi(cl + 15) <= n)
            break;
    }
    ck_assert_msg(strncmp(b, "HTTP/1.1 200", 12) == 0, "%s", b);
}

/* A kept-alive connection's next request must have its headers within the
 * header deadline of their start too, not only within the idle timeout of
 * the answer before (60 s: a client trickling them had that long, six
 * times what a new connection gets). */
START_TEST(test_trickled_headers_kept_alive)
{
    ah_httpd *h = serve(0, 0, 400, 0);
    uint16_t port = ah_httpd_port(h);
    int fd = dial(port, "127.0.0.1");
    ck_assert_int_ge(fd, 0);
    send_all(fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    read_one_answer(fd);
    expect_408(fd, "GET /health HTTP/1.1\r\nHost: t\r\n", "X-Slow: 1\r\n");
    ah_httpd_free(h);
}
END_TEST

/* A body sent far below the minimum rate: answered 408 request_timeout. */
START_TEST(test_slow_body)
{
    ah_httpd *h = serve(0, 0, 300, 1000);
    uint16_t port = ah_httpd_port(h);
    int fd = dial(port, "127.0.0.1");
    ck_assert_int_ge(fd, 0);
    /* One byte per 50 ms: 20 bytes/s against 1,000. */
    expect_408(fd, "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n", "x");
    ah_httpd_free(h);
}
END_TEST

/* Sends head, then drip every 50 ms until the server closes (10 s at most);
 * expects the early answer `status` with JSON error `code` before the close.
 * Closes fd. */
static void expect_answered_and_closed(int fd, const char *head, const char *drip, int status,
                                       const char *code)
{
    send_all(fd, head);
    char *r = NULL;
    for (int i = 0; i < 200 && r == NULL; i++) {
        send_all(fd, drip);
        r = read_until_close(fd, 50);
    }
    ck_assert_msg(r != NULL, "a client dripping a body after an early answer kept its "
                             "connection for 10 s: %s", head);
    char want[16], wcode[64];
    snprintf(want, sizeof want, "HTTP/1.1 %d", status);
    snprintf(wcode, sizeof wcode, "\"code\":\"%s\"", code);
    ck_assert_msg(strncmp(r, want, strlen(want)) == 0 && strstr(r, wcode) != NULL, "%s", r);
    free(r);
    close(fd);
}

/* A request answered before its body is read (too large, a bad path, a
 * method too long), whatever its method, does not keep its connection by
 * dripping the body it declared: the early answer goes out and the
 * connection is closed. The guard gives an answered request no deadline
 * (ah_conntrack_busy), so this rests on libmicrohttpd 0.9.75 discarding
 * the rest of a request answered from the first access call, for every
 * method (MHD_queue_response in HEADERS_PROCESSED), which this pins: an
 * older one read on for all but POST and PUT. */
START_TEST(test_body_dripped_after_early_answer)
{
    static const struct {
        const char *head;
        int status;
        const char *code;
    } cases[] = {
        {"PATCH /health HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000000\r\n\r\n", 413,
         "payload_too_large"},
        {"DELETE /health HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000000\r\n\r\n", 413,
         "payload_too_large"},
        {"GET /a/../health HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n", 400,
         "bad_path"},
        {"PATCHPATCHPATCHPATCHPATCH /health HTTP/1.1\r\nHost: t\r\n"
         "Content-Length: 100000\r\n\r\n",
         400, "invalid_request"},
        {"PATCH /health HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400,
         "invalid_request"},
    };
    /* A long header deadline and a slow rate: the drip (20 bytes/s) is
     * within them for the whole test, so only the early answer's close
     * ends the connection. */
    ah_httpd *h = serve(0, 0, 60000, 1);
    uint16_t port = ah_httpd_port(h);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = dial(port, "127.0.0.1");
        ck_assert_int_ge(fd, 0);
        expect_answered_and_closed(fd, cases[i].head, "x", cases[i].status, cases[i].code);
    }
    ck_assert_int_eq(health(port, "127.0.0.2"), 200);
    ah_httpd_free(h);
}
END_TEST

/* A body at a healthy rate is not cut, however long it takes in all. */
START_TEST(test_steady_body_kept)
{
    ah_httpd *h = serve(0, 0, 200, 1000);
    uint16_t port = ah_httpd_port(h);
    int fd = dial(port, "127.0.0.1");
    ck_assert_int_ge(fd, 0);
    send_all(fd, "POST /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1200\r\n\r\n");
    char chunk[101];
    memset(chunk, 'y', 100);
    chunk[100] = '\0';
    for (int i = 0; i < 12; i++) { /* 100 bytes per 50 ms: 2,000 bytes/s */
        send_all(fd, chunk);
        usleep(50 * 1000);
    }
    char *r = read_until_close(fd, 5000);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(strncmp(r, "HTTP/1.1 200", 12) == 0, "%s", r);
    free(r);
    close(fd);
    ah_httpd_free(h);
}
END_TEST

/* A silent connection is closed at the header deadline, answered nothing;
 * a half-closed one (the client sent its FIN and nothing else) at once. */
START_TEST(test_silent_and_half_closed)
{
    ah_httpd *h = serve(0, 0, 300, 0);
    uint16_t port = ah_httpd_port(h);
    int silent = dial(port, "127.0.0.1");
    ck_assert_int_ge(silent, 0);
    char *r = read_until_close(silent, 5000);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r, "");
    free(r);
    close(silent);

    int half = dial(port, "127.0.0.1");
    ck_assert_int_ge(half, 0);
    shutdown(half, SHUT_WR);
    r = read_until_close(half, 250 /* < the header deadline */);
    ck_assert_msg(r != NULL, "a half-closed connection was kept open");
    free(r);
    close(half);
    ah_httpd_free(h);
}
END_TEST

/* Kept-alive connections serve many requests; the guard's count goes back
 * down as connections close, so the per-client limit is not a lifetime one. */
START_TEST(test_limit_counts_open_connections_only)
{
    ah_httpd *h = serve(0, 4, 30000, 0);
    uint16_t port = ah_httpd_port(h);
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(health(port, "127.0.0.1"), 200);
    int fd = dial(port, "127.0.0.1");
    ck_assert_int_ge(fd, 0);
    for (int i = 0; i < 5; i++) {
        send_all(fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
        char buf[512];
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
    }
    close(fd);
    ah_httpd_free(h);
}
END_TEST

static Suite *conntrack_suite(void)
{
    Suite *s = suite_create("conntrack");
    TCase *tc = tcase_create("conntrack");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_flood_from_one_address);
    tcase_add_test(tc, test_total_limit);
    tcase_add_test(tc, test_ipv6_client_is_its_64);
    tcase_add_test(tc, test_trickled_headers);
    tcase_add_test(tc, test_trickled_headers_kept_alive);
    tcase_add_test(tc, test_slow_body);
    tcase_add_test(tc, test_steady_body_kept);
    tcase_add_test(tc, test_body_dripped_after_early_answer);
    tcase_add_test(tc, test_silent_and_half_closed);
    tcase_add_test(tc, test_limit_counts_open_connections_only);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conntrack_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
