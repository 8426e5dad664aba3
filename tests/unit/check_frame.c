/* SPDX-License-Identifier: Apache-2.0 */
/* The frames between the daemon and a plugin process (core/plugin/frame.c). */
#include <check.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"

static void pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

START_TEST(test_round_trip)
{
    int sv[2];
    pair(sv);
    cJSON *m = cJSON_Parse("{\"t\":\"call\",\"body\":{\"a\":[1,2,\"x\"]}}");
    ck_assert_int_eq(ah_frame_send(sv[0], m), 0);
    ck_assert_int_eq(ah_frame_send(sv[0], m), 0);
    for (int i = 0; i < 2; i++) {
        cJSON *got = NULL;
        ck_assert_int_eq(ah_frame_recv(sv[1], &got), 0);
        ck_assert(cJSON_Compare(m, got, 1));
        cJSON_Delete(got);
    }
    cJSON_Delete(m);
    close(sv[0]);
    cJSON *got = (cJSON *)1;
    ck_assert_int_eq(ah_frame_recv(sv[1], &got), -1); /* end of stream */
    ck_assert_ptr_null(got);
    close(sv[1]);
}
END_TEST

/* The buffered reader: several frames written at once come out one by one
 * (ah_frame_buffered says so without reading), a frame split across writes
 * is put together, one larger than its first buffer grows it, and end of
 * stream and a bad length are errors. */
START_TEST(test_reader)
{
    int sv[2];
    pair(sv);
    ah_frame_reader r = {0};
    ah_frame_reader_reset(&r, sv[1]);
    ck_assert(!ah_frame_buffered(&r));
    cJSON *a = cJSON_Parse("{\"t\":\"a\"}"), *b = cJSON_Parse("{\"t\":\"b\",\"n\":[1,2]}");
    ck_assert_int_eq(ah_frame_send(sv[0], a), 0);
    ck_assert_int_eq(ah_frame_send(sv[0], b), 0);
    cJSON *got = NULL;
    ck_assert_int_eq(ah_frame_read(&r, &got), 0);
    ck_assert(cJSON_Compare(a, got, 1));
    cJSON_Delete(got);
    ck_assert(ah_frame_buffered(&r)); /* b came with a */
    ck_assert_int_eq(ah_frame_read(&r, &got), 0);
    ck_assert(cJSON_Compare(b, got, 1));
    cJSON_Delete(got);
    ck_assert(!ah_frame_buffered(&r));

    /* Written in pieces: the header, then the text in two. */
    const char *text = "{\"t\":\"split\"}";
    unsigned char h[4] = {0, 0, 0, (unsigned char)strlen(text)};
    ck_assert_int_eq(write(sv[0], h, 4), 4);
    ck_assert_int_eq(write(sv[0], text, 5), 5);
    ck_assert_int_eq(write(sv[0], text + 5, strlen(text) - 5), (ssize_t)strlen(text) - 5);
    ck_assert_int_eq(ah_frame_read(&r, &got), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(got, "t")->valuestring, "split");
    cJSON_Delete(got);
    cJSON_Delete(a);
    cJSON_Delete(b);

    /* Larger than the reader's first buffer (64 KiB), after a small one. */
    size_t big = 200000;
    char *s = malloc(big + 1);
    memset(s, 'x', big);
    s[big] = '\0';
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "s", s);
    ck_assert_int_eq(ah_frame_send(sv[0], m), 0);
    ck_assert_int_eq(ah_frame_read(&r, &got), 0);
    ck_assert(cJSON_Compare(m, got, 1));
    cJSON_Delete(got);
    cJSON_Delete(m);
    free(s);

    /* A bad length is refused as soon as it is read. */
    ck_assert_int_eq(write(sv[0], "\x7f\xff\xff\xff{}", 6), 6);
    ck_assert_int_eq(ah_frame_read(&r, &got), -1);
    ck_assert_ptr_null(got);
    ah_frame_reader_reset(&r, sv[1]); /* drops what is left */
    close(sv[0]);
    ck_assert_int_eq(ah_frame_read(&r, &got), -1); /* end of stream */
    ah_frame_reader_free(&r);
    close(sv[1]);
}
END_TEST

static void expect_refused(const unsigned char *bytes, size_t n)
{
    int sv[2];
    pair(sv);
    ck_assert_int_eq(write(sv[0], bytes, n), (ssize_t)n);
    close(sv[0]);
    cJSON *got = NULL;
    ck_assert_int_eq(ah_frame_recv(sv[1], &got), -1);
    ck_assert_ptr_null(got);
    close(sv[1]);
}

/* Frames appended to one buffer leave in one write and come out one by
 * one, in order, a tail with its frame; the buffer grows as needed. */
START_TEST(test_append)
{
    int sv[2];
    pair(sv);
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    cJSON *a = cJSON_Parse("{\"t\":\"host\",\"cid\":3,\"fn\":\"publish\",\"nr\":true}");
    cJSON *b = cJSON_Parse("{\"t\":\"reply\",\"cid\":3,\"ok\":true}");
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(ah_frame_append(&buf, &len, &cap, a, NULL, 0), 0);
    ck_assert_int_eq(ah_frame_append(&buf, &len, &cap, b, "bin\0ary", 7), 0);
    ck_assert_uint_ge(cap, len);
    ck_assert_int_eq(ah_frame_write(sv[0], buf, len), 0);
    free(buf);
    ah_frame_reader r = {0};
    ah_frame_reader_reset(&r, sv[1]);
    for (int i = 0; i < 41; i++) {
        cJSON *got = NULL;
        unsigned char *tail = NULL;
        size_t tl = 0;
        ck_assert_int_eq(ah_frame_read_tail(&r, &got, &tail, &tl), 0);
        ck_assert(cJSON_Compare(i < 40 ? a : b, got, 1));
        if (i < 40) {
            ck_assert_ptr_null(tail);
            ck_assert(ah_frame_buffered(&r));
        } else {
            ck_assert_uint_eq(tl, 7);
            ck_assert_mem_eq(tail, "bin\0ary", 7);
            ck_assert(!ah_frame_buffered(&r));
        }
        free(tail);
        cJSON_Delete(got);
    }
    ah_frame_reader_free(&r);
    cJSON_Delete(a);
    cJSON_Delete(b);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(test_bad_frames)
{
    /* longer than AH_FRAME_MAX: refused before any allocation */
    expect_refused((const unsigned char *)"\x7f\xff\xff\xff{}", 6);
    /* empty */
    expect_refused((const unsigned char *)"\0\0\0\0", 4);
    /* cut short */
    expect_refused((const unsigned char *)"\0\0\0\x10{\"t\":", 9);
    /* not JSON, and JSON that is no object */
    expect_refused((const unsigned char *)"\0\0\0\x03{{{", 7);
    expect_refused((const unsigned char *)"\0\0\0\x02[]", 6);
    /* a short header */
    expect_refused((const unsigned char *)"\0\0", 2);
}
END_TEST

/* Writes one frame of `text` (its prefix first) from a thread: a frame of
 * megabytes fills the socket before the reader takes it. */
typedef struct big_write {
    int fd;
    const char *text;
    size_t len;
} big_write;

static void *write_frame(void *arg)
{
    big_write *w = arg;
    unsigned char h[4] = {(unsigned char)(w->len >> 24), (unsigned char)(w->len >> 16),
                          (unsigned char)(w->len >> 8), (unsigned char)w->len};
    if (write(w->fd, h, 4) == 4)
        for (size_t at = 0; at < w->len;) {
            ssize_t n = write(w->fd, w->text + at, w->len - at);
            if (n <= 0)
                break;
            at += (size_t)n;
        }
    close(w->fd);
    return NULL;
}

/* Text of n values {"a":[0,0,...]}, and whether a reader with that most
 * values a frame (0: none) takes it. */
static bool reader_takes(size_t n, size_t nodes_max, size_t *nodes)
{
    size_t len = 7 + 2 * n;
    char *t = malloc(len + 1);
    ck_assert_ptr_nonnull(t);
    memcpy(t, "{\"a\":[", 6);
    for (size_t i = 0; i < n; i++) {
        t[6 + 2 * i] = '0';
        t[7 + 2 * i] = i + 1 < n ? ',' : ']';
    }
    t[6 + 2 * n] = '}';
    t[len] = '\0';
    int sv[2];
    pair(sv);
    big_write w = {sv[0], t, len};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, write_frame, &w), 0);
    ah_frame_reader r = {.nodes_max = nodes_max};
    ah_frame_reader_reset(&r, sv[1]);
    cJSON *got = NULL;
    int rc = ah_frame_read(&r, &got);
    if (rc == 0) {
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(got, "a")), (int)n);
        *nodes = r.last_nodes;
    } else {
        ck_assert(r.broken);
    }
    cJSON_Delete(got);
    ah_frame_reader_free(&r);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    close(sv[1]);
    free(t);
    return rc == 0;
}

/* A frame whose text would make more values than its reader allows (the
 * daemon's of a plugin process: AH_FRAME_NODES_MAX) is refused before it
 * is parsed, as the peer's fault: [0,0,...] takes ~40 times its bytes as a
 * tree. One within the limit is read, its values counted (what the daemon
 * weighs waiting frames by). A reader without a limit (a plugin process
 * reading the daemon's frames, which may carry what a provider sent) reads
 * it. Commas and brackets in strings are no values. */
START_TEST(test_frame_values_bounded)
{
    size_t nodes = 0;
    ck_assert(reader_takes(1000, AH_FRAME_NODES_MAX, &nodes));
    ck_assert_uint_ge(nodes, 1000);
    ck_assert_uint_le(nodes, 1003);
    ck_assert(!reader_takes(AH_FRAME_NODES_MAX + 1, AH_FRAME_NODES_MAX, &nodes));
    ck_assert(reader_takes(AH_FRAME_NODES_MAX + 1, 0, &nodes));

    int sv[2];
    pair(sv);
    ah_frame_reader r = {.nodes_max = AH_FRAME_NODES_MAX};
    ah_frame_reader_reset(&r, sv[1]);
    cJSON *m = cJSON_Parse("{\"s\":\",,,[[{{\\\",,\",\"t\":1}");
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(ah_frame_send(sv[0], m), 0);
    cJSON *got = NULL;
    ck_assert_int_eq(ah_frame_read(&r, &got), 0);
    ck_assert(cJSON_Compare(m, got, 1));
    ck_assert_uint_le(r.last_nodes, 3);
    cJSON_Delete(got);
    cJSON_Delete(m);
    ah_frame_reader_free(&r);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* Integers as digits: printed as written, read back as numbers by the
 * other end, the extremes of long long included. */
START_TEST(test_ints)
{
    const struct {
        long long v;
        const char *text;
    } cases[] = {{0, "0"}, {7, "7"}, {-1, "-1"}, {1234567890123LL, "1234567890123"},
                 {LLONG_MAX, "9223372036854775807"}, {LLONG_MIN, "-9223372036854775808"}};
    int sv[2];
    pair(sv);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *m = cJSON_CreateObject();
        ck_assert(ah_frame_add_int(m, "v", cases[i].v));
        cJSON *arr = cJSON_AddArrayToObject(m, "a");
        cJSON_AddItemToArray(arr, ah_frame_int(cases[i].v));
        char *text = cJSON_PrintUnformatted(m);
        char want[96];
        snprintf(want, sizeof want, "{\"v\":%s,\"a\":[%s]}", cases[i].text, cases[i].text);
        ck_assert_str_eq(text, want);
        free(text);
        ck_assert_int_eq(ah_frame_send(sv[0], m), 0);
        cJSON *got = NULL;
        ck_assert_int_eq(ah_frame_recv(sv[1], &got), 0);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(got, "v");
        ck_assert(cJSON_IsNumber(v));
        ck_assert(v->valuedouble == (double)cases[i].v);
        ck_assert(cJSON_IsNumber(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(got, "a"), 0)));
        cJSON_Delete(got);
        cJSON_Delete(m);
    }
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(test_bytes)
{
    static const struct {
        const char *data;
        size_t len;
        const char *member;
    } cases[] = {
        {"plain text", 10, "body"},
        {"", 0, "body"},
        {"a\0b", 3, "body_b64"},
        {"\0", 1, "body_b64"},
        {"ab\0", 3, "body_b64"},
        {"\xff\0\x80\x01", 4, "body_b64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *o = cJSON_CreateObject();
        ck_assert_int_eq(ah_frame_put_bytes(o, "body", cases[i].data, cases[i].len), 0);
        ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(o, cases[i].member));
        char *out = NULL;
        size_t len = 99;
        ck_assert_int_eq(ah_frame_get_bytes(o, "body", &out, &len), 0);
        ck_assert_ptr_nonnull(out);
        ck_assert_uint_eq(len, cases[i].len);
        ck_assert_int_eq(memcmp(out, cases[i].data, len), 0);
        ck_assert_int_eq(out[len], '\0');
        free(out);
        cJSON_Delete(o);
    }
    /* absent, and bad base64 */
    cJSON *o = cJSON_Parse("{\"x_b64\":\"a*==\"}");
    char *out = (char *)1;
    size_t len;
    ck_assert_int_eq(ah_frame_get_bytes(o, "body", &out, &len), 0);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(ah_frame_get_bytes(o, "x", &out, &len), -1);
    ck_assert_ptr_null(out);
    cJSON_Delete(o);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("frame");
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_bad_frames);
    tcase_add_test(tc, test_frame_values_bounded);
    tcase_add_test(tc, test_reader);
    tcase_add_test(tc, test_bytes);
    tcase_add_test(tc, test_append);
    tcase_add_test(tc, test_ints);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
