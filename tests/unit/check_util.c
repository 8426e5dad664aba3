/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The header-only SDK helpers (<atshub/util.h>): buffers and escaping,
 * typed request members with their one wording, the UTC clock and UTF-8
 * lengths, driven with the fake host API.
 */
#include <check.h>
#include <limits.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include <atshub/util.h>

#include "registry.h"
#include "support/fake_host.h"

START_TEST(test_buf_grows_and_formats)
{
    ah_buf b = {0};
    ck_assert(!ah_buf_ok(&b)); /* nothing appended yet */
    for (int i = 0; i < 1000; i++)
        ah_buf_printf(&b, "%d,", i);
    ck_assert(ah_buf_ok(&b));
    ck_assert_uint_eq(b.len, strlen(b.s));
    ck_assert(strncmp(b.s, "0,1,2,", 6) == 0);
    ck_assert(strstr(b.s, ",999,") != NULL);
    size_t before = b.len;
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ah_buf_printf(&b, "[%s]", big); /* longer than the on-stack attempt */
    ck_assert_uint_eq(b.len, before + 601);
    ah_buf_append(&b, "a\0b", 3);
    ck_assert_uint_eq(b.len, before + 604);
    ck_assert_int_eq(b.s[b.len], '\0');
    ah_buf_free(&b);
    ck_assert_ptr_null(b.s);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(test_url_escaping_matches_curl)
{
    const char *inputs[] = {"", "abcXYZ019-._~", "a b&c=d/e?f#g+h%", "Nguyễn Văn A",
                            "\x01\x7f\xff", "100% sure"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        ah_buf b = {0};
        ah_buf_puts(&b, "");
        ah_buf_url(&b, ah_fake_host_api(), inputs[i]);
        char *want = curl_easy_escape(NULL, inputs[i], 0);
        ck_assert_ptr_nonnull(want);
        ck_assert_str_eq(b.s, want);
        curl_free(want);
        ah_buf_free(&b);
    }
    ah_buf q = {0};
    ah_buf_puts(&q, "/api/v2/jobs");
    const ah_host_api *h = ah_fake_host_api();
    ah_buf_query(&q, h, "status", "open & live");
    ah_buf_query(&q, h, "skip", NULL);
    ah_buf_query(&q, h, "page", "2");
    ck_assert_str_eq(q.s, "/api/v2/jobs?status=open%20%26%20live&page=2");
    ah_buf_free(&q);
}
END_TEST

START_TEST(test_html_and_json_escaping)
{
    ah_buf b = {0};
    ah_buf_html(&b, "<a href=\"x\">Tom & Jerry's</a>");
    ck_assert_str_eq(b.s, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
    ah_buf_free(&b);

    ah_buf_json_string(&b, "say \"hi\"\n\\ </script>");
    ck_assert_str_eq(b.s, "\"say \\\"hi\\\"\\n\\\\ </script>\"");
    cJSON *round = cJSON_Parse(b.s);
    ck_assert(cJSON_IsString(round));
    ck_assert_str_eq(round->valuestring, "say \"hi\"\n\\ </script>");
    cJSON_Delete(round);
    ah_buf_free(&b);

    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "v", "</script><b>");
    ah_buf_json(&b, o, true);
    ck_assert_ptr_null(strstr(b.s, "<"));
    round = cJSON_Parse(b.s);
    ck_assert_str_eq(cJSON_GetObjectItem(round, "v")->valuestring, "</script><b>");
    cJSON_Delete(round);
    cJSON_Delete(o);
    ah_buf_free(&b);
}
END_TEST

typedef struct args_env {
    ah_fake_host *fh;
    ah_call_ext x;
    cJSON *body;
} args_env;

static void args_env_init(args_env *e, const char *json)
{
    e->fh = ah_fake_host_new();
    ck_assert_ptr_nonnull(e->fh);
    e->fh->quiet = true;
    ah_fake_call_init(e->fh, &e->x, NULL);
    e->body = cJSON_Parse(json);
    ck_assert_ptr_nonnull(e->body);
}

static void args_env_free(args_env *e)
{
    cJSON_Delete(e->body);
    ah_fake_host_free(e->fh);
}

/* The call failed with invalid_request 400 and exactly `msg`. */
static void refused(args_env *e, ah_result rc, const char *msg)
{
    ck_assert_int_eq(rc, AH_ERR);
    ck_assert_str_eq(e->x.err_code, AH_E_INVALID);
    ck_assert_int_eq(e->x.err_status, 400);
    ck_assert_str_eq(e->x.err_msg, msg);
    e->x.err_code[0] = '\0';
}

START_TEST(test_args_one_wording)
{
    args_env e;
    args_env_init(&e, "{\"s\":\"abc\",\"e\":\"\",\"n\":42,\"f\":1.5,\"b\":true,"
                      "\"a\":[1,2],\"z\":null,\"big\":1e300}");
    ah_call *c = &e.x.call;
    const char *s = "unset";
    ck_assert_int_eq(ah_arg_string(c, e.body, "s", AH_ARG_REQUIRED, 3, &s), AH_OK);
    ck_assert_str_eq(s, "abc");
    ck_assert_int_eq(ah_arg_string(c, e.body, "z", AH_ARG_OPTIONAL, 0, &s), AH_OK);
    ck_assert_ptr_null(s); /* null is absent */
    ck_assert_int_eq(ah_arg_string(c, e.body, "e", AH_ARG_OPTIONAL, 0, &s), AH_OK);
    refused(&e, ah_arg_string(c, e.body, "e", AH_ARG_OPTIONAL | AH_ARG_NONEMPTY, 0, &s),
            "field 'e' must be a non-empty string");
    refused(&e, ah_arg_string(c, e.body, "s", AH_ARG_REQUIRED, 2, &s),
            "field 's' must be a string of at most 2 bytes");
    refused(&e, ah_arg_string(c, e.body, "missing", AH_ARG_REQUIRED, 0, &s),
            "field 'missing' must be a string");
    refused(&e, ah_arg_string(c, e.body, "n", AH_ARG_OPTIONAL, 0, &s),
            "field 'n' must be a string");

    long long n = 7;
    ck_assert_int_eq(ah_arg_int(c, e.body, "absent", AH_ARG_OPTIONAL, 1, 9, &n), AH_OK);
    ck_assert_int_eq(n, 7); /* untouched */
    ck_assert_int_eq(ah_arg_int(c, e.body, "n", AH_ARG_REQUIRED, 1, 100, &n), AH_OK);
    ck_assert_int_eq(n, 42);
    refused(&e, ah_arg_int(c, e.body, "n", AH_ARG_REQUIRED, 1, 10, &n),
            "field 'n' must be an integer from 1 to 10");
    refused(&e, ah_arg_int(c, e.body, "f", AH_ARG_REQUIRED, 0, 10, &n),
            "field 'f' must be an integer from 0 to 10");
    refused(&e, ah_arg_int(c, e.body, "big", AH_ARG_OPTIONAL, 0, 10, &n),
            "field 'big' must be an integer from 0 to 10");
    refused(&e, ah_arg_int(c, e.body, "s", AH_ARG_OPTIONAL, 0, 10, &n),
            "field 's' must be an integer from 0 to 10");

    bool b = false;
    ck_assert_int_eq(ah_arg_bool(c, e.body, "b", AH_ARG_REQUIRED, &b), AH_OK);
    ck_assert(b);
    refused(&e, ah_arg_bool(c, e.body, "n", AH_ARG_OPTIONAL, &b),
            "field 'n' must be true or false");
    refused(&e, ah_arg_bool(c, e.body, "nope", AH_ARG_REQUIRED, &b),
            "field 'nope' must be true or false");

    const cJSON *a = NULL;
    ck_assert_int_eq(ah_arg_array(c, e.body, "a", AH_ARG_REQUIRED, 1, 2, &a), AH_OK);
    ck_assert_int_eq(cJSON_GetArraySize(a), 2);
    refused(&e, ah_arg_array(c, e.body, "a", AH_ARG_REQUIRED, 3, 5, &a),
            "field 'a' must be an array of 3 to 5 items");
    refused(&e, ah_arg_array(c, e.body, "s", AH_ARG_REQUIRED, 1, 0, &a),
            "field 's' must be an array of at least 1 item");
    refused(&e, ah_arg_array(c, e.body, "z", AH_ARG_REQUIRED, 0, 0, &a),
            "field 'z' must be an array");
    args_env_free(&e);
}
END_TEST

START_TEST(test_utc_and_utf8)
{
    char out[AH_UTC_LEN];
    ck_assert(ah_utc_format((time_t)1796281200, out, sizeof out));
    ck_assert_str_eq(out, "2026-12-03T07:00:00Z");
    ck_assert(ah_utc_format(0, out, sizeof out));
    ck_assert_str_eq(out, "1970-01-01T00:00:00Z");
    ck_assert(!ah_utc_format(0, out, AH_UTC_LEN - 1)); /* too short */
    /* The arithmetic agrees with gmtime_r + strftime over the whole range,
     * leap days and centuries included, and refuses what lies outside. */
    ck_assert(ah_utc_format((time_t)-62135596800LL, out, sizeof out));
    ck_assert_str_eq(out, "0001-01-01T00:00:00Z");
    ck_assert(ah_utc_format((time_t)253402300799LL, out, sizeof out));
    ck_assert_str_eq(out, "9999-12-31T23:59:59Z");
    ck_assert(!ah_utc_format((time_t)-62135596801LL, out, sizeof out));
    ck_assert_str_eq(out, "");
    ck_assert(!ah_utc_format((time_t)253402300800LL, out, sizeof out));
    ck_assert(ah_utc_format((time_t)951782400, out, sizeof out)); /* 2000-02-29 */
    ck_assert_str_eq(out, "2000-02-29T00:00:00Z");
    ck_assert(ah_utc_format((time_t)-1, out, sizeof out));
    ck_assert_str_eq(out, "1969-12-31T23:59:59Z");
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift */
        long long t = (long long)(x % 315537897600ULL) - 62135596800LL;
        if (i < 1000)
            t = (long long)i * 86399 * 37 - 62135596800LL + (i % 2 ? 4102444800LL * 50 : 0);
        if (t > 253402300799LL)
            continue;
        time_t tt = (time_t)t;
        struct tm tm;
        char want[64];
        ck_assert(gmtime_r(&tt, &tm) != NULL);
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        ck_assert(ah_utc_format(tt, out, sizeof out));
        ck_assert_str_eq(out, want);
    }
    ck_assert(ah_utc_now(out, sizeof out));
    ck_assert_uint_eq(strlen(out), AH_UTC_LEN - 1);
    ck_assert_int_eq(out[10], 'T');
    ck_assert_int_eq(out[19], 'Z');

    ck_assert_uint_eq(ah_utf8_len(NULL), 0);
    ck_assert_uint_eq(ah_utf8_len(""), 0);
    ck_assert_uint_eq(ah_utf8_len("abc"), 3);
    ck_assert_uint_eq(ah_utf8_len("Nguyễn"), 6);
    ck_assert_uint_eq(ah_utf8_len("日本語"), 3);
    ck_assert_uint_eq(ah_utf8_len("\xF0\x9F\x98\x80!"), 2);
}
END_TEST

/* An integer's digits as snprintf("%lld") writes them, extremes included. */
START_TEST(test_int_text)
{
    long long vals[] = {0, 1, -1, 9, 10, -10, 42, 1000000, -987654321, 9007199254740992LL,
                        LLONG_MAX, LLONG_MIN, LLONG_MIN + 1};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        char got[AH_INT_TEXT_MAX], want[32];
        int n = snprintf(want, sizeof want, "%lld", vals[i]);
        ck_assert_uint_eq(ah_int_text(vals[i], got), (size_t)n);
        ck_assert_str_eq(got, want);
    }
    for (long long v = -100000; v <= 100000; v += 7) {
        char got[AH_INT_TEXT_MAX], want[32];
        snprintf(want, sizeof want, "%lld", v);
        ah_int_text(v, got);
        ck_assert_str_eq(got, want);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("sdk_util");
    tcase_add_test(tc, test_buf_grows_and_formats);
    tcase_add_test(tc, test_url_escaping_matches_curl);
    tcase_add_test(tc, test_html_and_json_escaping);
    tcase_add_test(tc, test_args_one_wording);
    tcase_add_test(tc, test_utc_and_utf8);
    tcase_add_test(tc, test_int_text);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
