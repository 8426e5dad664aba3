/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP request path from raw bytes: one ah_httpd (core/net/httpd.c with
 * its connection guard, core/net/conntrack.c) started once on a loopback
 * port with a few routes (exact, templated, prefix, JSON bodies, a
 * suspended answer, a small body limit). Every input is written as is on
 * one end of a socketpair whose other end the server serves as a client's
 * connection (ah_httpd_add_socket: admitted by the guard, then
 * libmicrohttpd, as an accepted socket is). Once the server has read every
 * byte (the socket's send queue is empty) the write side is shut down, so
 * the end of stream reaches the server after the data: a request still
 * incomplete then is closed at once instead of waiting out the header
 * timeout. The answer is read to the end. Whatever the bytes, the server
 * must not crash or misbehave under ASan/UBSan, must read them all and
 * must close the connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <sched.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "fuzz.h"
#include "httpd.h"

static void h_json(void *arg, ah_http_exchange *ex)
{
    const cJSON *j = ah_ex_json(ex);
    if (j == NULL)
        return; /* answered 400 */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "echo", cJSON_Duplicate(j, 1));
    const char *q = ah_ex_query(ex, "q");
    if (q != NULL)
        cJSON_AddStringToObject(o, "q", q);
    ah_ex_respond_json(ex, 200, o);
}

static void h_param(void *arg, ah_http_exchange *ex)
{
    cJSON *o = cJSON_CreateObject();
    const char *id = ah_ex_param(ex, "id");
    const char *sub = ah_ex_param(ex, "sub");
    cJSON_AddStringToObject(o, "id", id != NULL ? id : "");
    cJSON_AddStringToObject(o, "sub", sub != NULL ? sub : "");
    cJSON_AddStringToObject(o, "path", ah_ex_path(ex));
    cJSON_AddStringToObject(o, "ip", ah_ex_client_ip(ex));
    const char *h = ah_ex_header(ex, "X-Connection");
    if (h != NULL)
        cJSON_AddStringToObject(o, "conn", h);
    ah_ex_add_header(ex, "X-Seen", ah_ex_method(ex));
    ah_ex_respond_json(ex, 200, o);
}

static void h_prefix(void *arg, ah_http_exchange *ex)
{
    size_t len = 0;
    const char *body = ah_ex_body(ex, &len);
    char msg[64];
    snprintf(msg, sizeof msg, "%zu", len);
    if (len > 0 && body[0] == '{') {
        const cJSON *j = ah_ex_json(ex);
        if (j == NULL)
            return;
    }
    ah_ex_error(ex, 404, "not_found", "%s %s %s", ah_ex_subpath(ex), msg,
                ah_ex_query(ex, "x") != NULL ? "x" : "-");
}

static void h_suspend(void *arg, ah_http_exchange *ex)
{
    size_t len = 0;
    (void)ah_ex_body(ex, &len);
    ah_ex_pending *p = ah_ex_suspend(ex, 1000, "no reply");
    if (p == NULL) {
        ah_ex_error(ex, 500, "internal_error", "suspend");
        return;
    }
    if (len % 2 == 0)
        ah_ex_resume_json(p, 202, cJSON_CreateObject());
    else
        ah_ex_resume_error(p, 409, "conflict", "odd %zu", len);
}

static void h_raw(void *arg, ah_http_exchange *ex)
{
    size_t len = 0;
    const char *body = ah_ex_body(ex, &len);
    ah_ex_respond(ex, 200, "text/plain", body, len);
}

static bool before(void *arg, ah_http_exchange *ex)
{
    const char *k = ah_ex_header(ex, "Idempotency-Key");
    if (k != NULL)
        ah_ex_capture_response(ex);
    return k != NULL && strcmp(k, "stop") == 0 &&
           ah_ex_error(ex, 409, "conflict", "stopped") == 0;
}

static void after(void *arg, ah_http_exchange *ex)
{
    size_t len = 0;
    (void)ah_ex_response_body(ex, &len);
    (void)ah_ex_status(ex);
}

static void on_done(void *arg, const ah_http_exchange *ex)
{
    (void)ah_ex_status(ex);
    (void)ah_ex_method(ex);
    (void)ah_ex_path(ex);
    (void)ah_ex_elapsed_s(ex);
}

static ah_httpd *server;

static void start(void)
{
    char err[256] = "";
    ah_httpd_opts o = {
        .host = "127.0.0.1",
        .max_body = 4096,
        .threads = 2,
        .on_done = on_done,
        .header_timeout_ms = 25, /* as in the first harness; inputs no longer wait on it */
        .min_body_rate = 64,
    };
    server = ah_httpd_new(&o, err, sizeof err);
    if (server == NULL) {
        fprintf(stderr, "ah_httpd_new: %s\n", err);
        abort();
    }
    ah_httpd_set_hooks(server, before, after, NULL);
    if (ah_httpd_route(server, "POST", "/json", 0, h_json, NULL) != 0 ||
        ah_httpd_route(server, "PUT", "/json", 0, h_json, NULL) != 0 ||
        ah_httpd_route(server, "*", "/v1/jobs/{id}", 0, h_param, NULL) != 0 ||
        ah_httpd_route(server, "GET", "/v1/jobs/{id}/notes/{sub}", 0, h_param, NULL) != 0 ||
        ah_httpd_route(server, "POST", "/v1/jobs/bulk", 0, h_param, NULL) != 0 ||
        ah_httpd_route(server, "*", "/v1/bus/", AH_HTTPD_PREFIX, h_prefix, NULL) != 0 ||
        ah_httpd_route(server, "POST", "/v1/", AH_HTTPD_PREFIX, h_prefix, NULL) != 0 ||
        ah_httpd_route(server, "POST", "/suspend", 0, h_suspend, NULL) != 0 ||
        ah_httpd_route(server, "*", "/raw", 0, h_raw, NULL) != 0) {
        fprintf(stderr, "ah_httpd_route failed\n");
        abort();
    }
    if (ah_httpd_start(server, err, sizeof err) != 0) {
        fprintf(stderr, "ah_httpd_start: %s\n", err);
        abort();
    }
}

/* Waits until the server has read everything written on fd (its send
 * queue is empty: the server read it, or closed its end). */
static void wait_drained(int fd)
{
    for (long i = 0;; i++) {
        int q = 0;
        if (ioctl(fd, SIOCOUTQ, &q) != 0) {
            perror("fuzz_httpd: SIOCOUTQ");
            abort();
        }
        if (q == 0)
            return;
        if (i < 200) {
            sched_yield();
        } else if (i < 200 + 10 * 1000 * 10) { /* 10 s in steps of 100 us */
            usleep(100);
        } else {
            fprintf(stderr, "fuzz_httpd: the server left %d bytes unread for 10 s\n", q);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (server == NULL)
        start();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        perror("socketpair");
        abort();
    }
    int fd = sv[0];
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* the client's address as the guard and the handlers see it */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(40000)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ah_httpd_add_socket(server, sv[1], (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "ah_httpd_add_socket failed\n");
        abort();
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may answer and close early (413, 400) */
        off += (size_t)n;
    }
    wait_drained(fd);
    shutdown(fd, SHUT_WR);
    char tmp[4096];
    static int show = -1;
    if (show < 0)
        show = getenv("AH_FUZZ_SHOW") != NULL;
    for (;;) {
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n > 0 && show)
            fwrite(tmp, 1, (size_t)n, stderr);
        if (n == 0)
            break;
        if (n < 0) {
            /* a timeout means the server kept a finished connection open */
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                fprintf(stderr, "fuzz_httpd: no end of answer within 10 s\n");
                abort();
            }
            break; /* reset */
        }
    }
    close(fd);
    return 0;
}
