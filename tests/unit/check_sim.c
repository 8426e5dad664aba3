/* SPDX-License-Identifier: Apache-2.0 */
/* The simulator framework, driven with a raw HTTP/1.1 client over a socket
 * so that dropped connections and cut bodies are seen byte for byte. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sim.h"

typedef struct raw_resp {
    int status; /* 0: connection closed without a status line */
    char *head;
    char *body;
    size_t body_len;
    long content_length; /* -1: absent */
} raw_resp;

static void raw_free(raw_resp *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Sends one request with Connection: close and reads until EOF. */
static void raw_request(uint16_t port, const char *method, const char *path, const char *body,
                        raw_resp *out)
{
    memset(out, 0, sizeof(*out));
    out->content_length = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char *req = NULL;
    size_t blen = body ? strlen(body) : 0;
    ck_assert_int_ge(asprintf(&req,
                              "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                              "Content-Length: %zu\r\n\r\n%s",
                              method, path, blen, body ? body : ""),
                     0);
    size_t off = 0, len = strlen(req);
    while (off < len) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        ck_assert_int_gt(n, 0);
        off += (size_t)n;
    }
    free(req);
    size_t cap = 4096, got = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    for (;;) {
        if (got + 1024 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t n = recv(fd, buf + got, cap - got - 1, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (got == 0 || !sep) {
        free(buf);
        return;
    }
    *sep = '\0';
    out->head = strdup(buf);
    out->body_len = got - (size_t)(sep + 4 - buf);
    out->body = malloc(out->body_len + 1);
    ck_assert_ptr_nonnull(out->body);
    memcpy(out->body, sep + 4, out->body_len);
    out->body[out->body_len] = '\0';
    ck_assert_int_eq(sscanf(buf, "HTTP/1.%*d %d", &out->status), 1);
    const char *cl = strcasestr(out->head, "\r\nContent-Length:");
    if (cl)
        out->content_length = strtol(cl + 17, NULL, 10);
    free(buf);
}

static const char *raw_header(const raw_resp *r, const char *name, char *val, size_t vlen)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\r\n%s:", name);
    const char *h = r->head ? strcasestr(r->head, pat) : NULL;
    if (!h)
        return NULL;
    h += strlen(pat);
    while (*h == ' ')
        h++;
    size_t n = strcspn(h, "\r\n");
    snprintf(val, vlen, "%.*s", (int)n, h);
    return val;
}

static void h_named(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "route", arg);
    cJSON_AddStringToObject(o, "path", req->path);
    cJSON_AddStringToObject(o, "method", req->method);
    cJSON_AddStringToObject(o, "body", req->body);
    const char *q = ah_sim_query(req, "q");
    if (q)
        cJSON_AddStringToObject(o, "q", q);
    const char *h = ah_sim_header(req, "x-test");
    if (h)
        cJSON_AddStringToObject(o, "x_test", h);
    ah_sim_json(resp, 200, o);
}

static void h_big(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "items");
    for (int i = 0; i < 20; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(i));
    ah_sim_json(resp, 200, o);
    ah_sim_header_add(resp, "X-Custom", "yes");
}

static ah_sim *start(const ah_sim_opts *o)
{
    ah_sim *s = ah_sim_new(o);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(ah_sim_route(s, "GET", "/a", h_named, "a"), 0);
    ck_assert_int_eq(ah_sim_route(s, "GET", "/a/b", h_named, "ab"), 0);
    ck_assert_int_eq(ah_sim_route(s, "*", "/any", h_named, "any"), 0);
    ck_assert_int_eq(ah_sim_route(s, "POST", "/any", h_named, "post-any"), 0);
    ck_assert_int_eq(ah_sim_route(s, "GET", "/big", h_big, NULL), 0);
    ck_assert_int_eq(ah_sim_route(s, "POST", "/oauth/token", h_named, "token"), 0);
    ck_assert_int_eq(ah_sim_start(s), 0);
    ck_assert_uint_ne(ah_sim_port(s), 0);
    return s;
}

static cJSON *parse(const raw_resp *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    ck_assert_ptr_nonnull(j);
    return j;
}

START_TEST(routes_longest_prefix)
{
    ah_sim *s = start(NULL);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", ah_sim_port(s));
    ck_assert_str_eq(ah_sim_url(s), url);

    raw_resp r;
    raw_request(ah_sim_port(s), "GET", "/a/x?q=hello%20there", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    cJSON *j = parse(&r);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "route")->valuestring, "a");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "path")->valuestring, "/a/x");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "q")->valuestring, "hello there");
    cJSON_Delete(j);
    raw_free(&r);

    raw_request(ah_sim_port(s), "GET", "/a/b/c", NULL, &r);
    j = parse(&r);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "route")->valuestring, "ab");
    cJSON_Delete(j);
    raw_free(&r);

    raw_request(ah_sim_port(s), "DELETE", "/any/1", NULL, &r);
    j = parse(&r);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "route")->valuestring, "any");
    cJSON_Delete(j);
    raw_free(&r);

    raw_request(ah_sim_port(s), "POST", "/any/1", "{\"k\":1}", &r);
    j = parse(&r);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "route")->valuestring, "post-any");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "body")->valuestring, "{\"k\":1}");
    cJSON_Delete(j);
    raw_free(&r);

    raw_request(ah_sim_port(s), "POST", "/a", NULL, &r); /* wrong method */
    ck_assert_int_eq(r.status, 404);
    raw_free(&r);
    raw_request(ah_sim_port(s), "GET", "/zzz", NULL, &r);
    ck_assert_int_eq(r.status, 404);
    raw_free(&r);

    raw_request(ah_sim_port(s), "GET", "/big", NULL, &r);
    char v[64];
    ck_assert_ptr_nonnull(raw_header(&r, "X-Custom", v, sizeof(v)));
    ck_assert_str_eq(v, "yes");
    ck_assert_ptr_nonnull(raw_header(&r, "Content-Type", v, sizeof(v)));
    ck_assert_str_eq(v, "application/json");
    raw_free(&r);

    ah_sim_stats st;
    ah_sim_get_stats(s, &st);
    ck_assert_uint_eq(st.requests, 7);
    ck_assert_uint_eq(st.f429 + st.f5xx + st.fdrop + st.fslow + st.ftrunc, 0);
    ah_sim_stop(s);
}
END_TEST

static void status_sequence(uint64_t seed, int *out, int n)
{
    ah_sim_opts o = {.seed = seed, .p_5xx = 0.3};
    ah_sim *s = start(&o);
    for (int i = 0; i < n; i++) {
        raw_resp r;
        raw_request(ah_sim_port(s), "GET", "/a", NULL, &r);
        out[i] = r.status;
        raw_free(&r);
    }
    ah_sim_stats st;
    ah_sim_get_stats(s, &st);
    int fails = 0;
    for (int i = 0; i < n; i++)
        fails += out[i] >= 500;
    ck_assert_uint_eq(st.f5xx, (unsigned long)fails);
    ck_assert_uint_eq(st.requests, (unsigned long)n);
    ah_sim_stop(s);
}

START_TEST(faults_reproducible)
{
    int a[50], b[50], c[50];
    status_sequence(42, a, 50);
    status_sequence(42, b, 50);
    status_sequence(4242, c, 50);
    ck_assert_mem_eq(a, b, sizeof(a));
    ck_assert(memcmp(a, c, sizeof(a)) != 0);
    int fails = 0, codes[3] = {0, 0, 0};
    for (int i = 0; i < 50; i++) {
        ck_assert(a[i] == 200 || a[i] == 500 || a[i] == 502 || a[i] == 503);
        if (a[i] >= 500)
            codes[fails++ % 3] = a[i]; /* 500, 502, 503 in turn */
    }
    ck_assert_int_gt(fails, 3);
    ck_assert_int_lt(fails, 40);
    ck_assert_int_eq(codes[0], 500);
    ck_assert_int_eq(codes[1], 502);
    ck_assert_int_eq(codes[2], 503);
}
END_TEST

START_TEST(fault_429_retry_after)
{
    ah_sim_opts o = {.seed = 7, .p_429 = 1.0, .retry_after_s = 3};
    ah_sim *s = start(&o);
    raw_resp r;
    raw_request(ah_sim_port(s), "GET", "/a", NULL, &r);
    ck_assert_int_eq(r.status, 429);
    char v[32];
    ck_assert_ptr_nonnull(raw_header(&r, "Retry-After", v, sizeof(v)));
    ck_assert_str_eq(v, "3");
    raw_free(&r);
    ah_sim_stats st;
    ah_sim_get_stats(s, &st);
    ck_assert_uint_eq(st.f429, 1);
    ah_sim_stop(s);
}
END_TEST

START_TEST(fault_drop)
{
    ah_sim_opts o = {.seed = 7, .p_drop = 1.0};
    ah_sim *s = start(&o);
    raw_resp r;
    raw_request(ah_sim_port(s), "GET", "/a", NULL, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_null(r.head);
    raw_free(&r);
    ah_sim_stats st;
    ah_sim_get_stats(s, &st);
    ck_assert_uint_eq(st.fdrop, 1);
    ah_sim_stop(s);
}
END_TEST

START_TEST(fault_truncate)
{
    ah_sim_opts o = {.seed = 7};
    ah_sim *s = start(&o);
    raw_resp full;
    raw_request(ah_sim_port(s), "GET", "/big", NULL, &full);
    ck_assert_int_eq(full.status, 200);
    ah_sim_set_faults(s, 0, 0, 0, 0, 1.0);
    raw_resp cut;
    raw_request(ah_sim_port(s), "GET", "/big", NULL, &cut);
    ck_assert_int_eq(cut.status, 200);
    ck_assert_uint_eq(cut.body_len, full.body_len / 2);
    ck_assert_int_eq(cut.content_length, (long)cut.body_len);
    ck_assert_mem_eq(cut.body, full.body, cut.body_len);
    cJSON *j = cJSON_ParseWithLength(cut.body, cut.body_len);
    ck_assert_ptr_null(j);
    raw_free(&full);
    raw_free(&cut);
    ah_sim_stats st;
    ah_sim_get_stats(s, &st);
    ck_assert_uint_eq(st.ftrunc, 1);
    ck_assert_uint_eq(st.requests, 2);
    ah_sim_stop(s);
}
END_TEST

START_TEST(fault_slow_still_answers)
{
    ah_sim_opts o = {.seed = 7, .p_slow = 1.0, .slow_ms = 50};
    ah_sim *s = start(&o);
    raw_resp r;
    raw_request(ah_sim_port(s), "GET", "/a", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    raw_free(&r);
    ah_sim_stats st;
    ah_sim_get_stats(s, &st);
    ck_assert_uint_eq(st.fslow, 1);
    ah_sim_stop(s);
}
END_TEST

START_TEST(no_fault_prefix_exempt)
{
    ah_sim_opts o = {.seed = 7, .p_5xx = 1.0, .no_fault_prefix = "/oauth/"};
    ah_sim *s = start(&o);
    for (int i = 0; i < 5; i++) {
        raw_resp r;
        raw_request(ah_sim_port(s), "POST", "/oauth/token", "grant_type=x", &r);
        ck_assert_int_eq(r.status, 200);
        raw_free(&r);
    }
    raw_resp r;
    raw_request(ah_sim_port(s), "GET", "/a", NULL, &r);
    ck_assert_int_ge(r.status, 500);
    raw_free(&r);
    ah_sim_set_faults(s, 0, 0, 0, 0, 0);
    raw_request(ah_sim_port(s), "GET", "/a", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    raw_free(&r);
    ah_sim_stats st;
    ah_sim_get_stats(s, &st);
    ck_assert_uint_eq(st.requests, 7);
    ck_assert_uint_eq(st.f5xx, 1);
    ah_sim_stop(s);
}
END_TEST

START_TEST(route_after_start_refused)
{
    ah_sim *s = start(NULL);
    ck_assert_int_ne(ah_sim_route(s, "GET", "/late", h_named, "late"), 0);
    ah_sim_stop(s);
    /* A sim that never started stops cleanly too. */
    s = ah_sim_new(NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(ah_sim_route(s, "GET", "/x", h_named, "x"), 0);
    ah_sim_stop(s);
}
END_TEST

static Suite *sim_suite(void)
{
    Suite *s = suite_create("sim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, routes_longest_prefix);
    tcase_add_test(tc, faults_reproducible);
    tcase_add_test(tc, fault_429_retry_after);
    tcase_add_test(tc, fault_drop);
    tcase_add_test(tc, fault_truncate);
    tcase_add_test(tc, fault_slow_still_answers);
    tcase_add_test(tc, no_fault_prefix_exempt);
    tcase_add_test(tc, route_after_start_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sim_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
