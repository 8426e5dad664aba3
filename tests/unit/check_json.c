/* SPDX-License-Identifier: Apache-2.0 */
/* JSON text from outside parsed with the host's limits (core/base/json.c). */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "support/json_nest.h"

static bool accepted(const char *text, size_t len)
{
    cJSON *j = ah_json_parse_limited(text, len);
    cJSON_Delete(j);
    return j != NULL;
}

START_TEST(test_depth_and_trailing_bytes)
{
    char *s = ah_t_nested(AH_JSON_MAX_DEPTH);
    ck_assert(accepted(s, strlen(s)));
    free(s);
    s = ah_t_nested(AH_JSON_MAX_DEPTH + 1);
    ck_assert(!accepted(s, strlen(s)));
    free(s);
    s = ah_t_nested(5000); /* far past cJSON's own limit: refused, no deep recursion */
    ck_assert(!accepted(s, strlen(s)));
    free(s);
    /* Brackets inside strings do not count, escaped quotes do not end them. */
    const char *str = "{\"k\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[\"}";
    ck_assert(accepted(str, strlen(str)));
    /* Length-limited: the bytes past len are not read. */
    ck_assert(accepted("{\"a\":1}garbage", 7));
    ck_assert(!accepted("{\"a\":1}garbage", 14));
    ck_assert(accepted("\t[true] \r\n", 10));
    ck_assert(!accepted("", 0));
    ck_assert(!accepted(NULL, 3));
    ck_assert(!accepted("{\"a\":", 5));
}
END_TEST

/* A NUL in a string would end the C string cJSON keeps: "A\u0000B" read
 * as "A". An escaped one is read as U+FFFD instead (the string keeps the
 * rest), wherever it is; a raw NUL byte, which no JSON text has, is
 * refused. An escaped backslash before "u0000" is text, and other escapes
 * stay as they were. */
START_TEST(test_nul_in_strings)
{
    cJSON *j = ah_json_parse_limited("{\"title\":\"A\\u0000B\"}", 20);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "title")->valuestring, "A\xef\xbf\xbd" "B");
    cJSON_Delete(j);
    j = ah_json_parse_limited("{\"k\\u0000ey\":\"\\u0000\\u0000\"}", 28);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(j->child->string, "k\xef\xbf\xbd" "ey");
    ck_assert_str_eq(j->child->valuestring, "\xef\xbf\xbd\xef\xbf\xbd");
    cJSON_Delete(j);
    /* U+0000, then the digit 1; at the end of a string. */
    j = ah_json_parse_limited("[\"\\u00001\",\"x\\u0000\"]", 21);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetArrayItem(j, 0)->valuestring, "\xef\xbf\xbd" "1");
    ck_assert_str_eq(cJSON_GetArrayItem(j, 1)->valuestring, "x\xef\xbf\xbd");
    cJSON_Delete(j);
    /* The caller's text is left as it was. */
    char text[] = "[\"\\u0000\"]";
    j = ah_json_parse_limited(text, sizeof text - 1);
    ck_assert_ptr_nonnull(j);
    cJSON_Delete(j);
    ck_assert_str_eq(text, "[\"\\u0000\"]");
    /* Raw NULs: inside a string, after a backslash (which cJSON read as
     * part of a broken \u escape, found by fuzz_json_limited), and after
     * the value. */
    ck_assert(!accepted("{\"t\":\"A\0B\"}", 11));
    ck_assert(!accepted("\"\\u000\\\0x0000\"", 14));
    ck_assert(!accepted("{\"a\":1}\0", 8));
    /* Not a NUL: an escaped backslash, then the text u0000; U+0001; U+0100. */
    const char *ok = "{\"t\":\"\\\\u0000\",\"u\":\"\\u0001\",\"v\":\"\\u0100\"}";
    j = ah_json_parse_limited(ok, strlen(ok));
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "t")->valuestring, "\\u0000");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "u")->valuestring, "\x01");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "v")->valuestring, "\xc4\x80");
    cJSON_Delete(j);
    /* An escape cut short at the end of the text is cJSON's to refuse. */
    ck_assert(!accepted("[\"\\u000", 7));
    ck_assert(!accepted("[\"\\u0000", 8));
}
END_TEST

/* Bytes in a string that are no UTF-8 (a PostgreSQL text column refuses
 * them) are read as U+FFFD, one per byte that starts no sequence; UTF-8
 * (two, three and four bytes) is kept as it is. */
#define R "\xef\xbf\xbd"
START_TEST(test_bytes_that_are_no_utf8)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"[\"Ing\xe9nieur\"]", "Ing" R "nieur"},            /* Latin-1 */
        {"[\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"]", "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"[\"\xc0\x80\"]", R R},                               /* overlong NUL */
        {"[\"\xe0\x80\xaf\"]", R R R},                         /* overlong '/' */
        {"[\"\xed\xa0\x80\"]", R R R},                         /* a surrogate */
        {"[\"\xf4\x90\x80\x80\"]", R R R R},                   /* past U+10FFFF */
        {"[\"\xf5\xff\xfe\"]", R R R},
        {"[\"a\xc3\"]", "a" R},                                /* cut short by the quote */
        {"[\"\xe2\x82\"]", R R},
        {"[\"\x80x\"]", R "x"},                                /* a lone continuation */
        {"[\"\\\"\xff\"]", "\"" R},                        /* after an escaped quote */
        {"[\"\\u0000\xff\"]", R R},                           /* with an escaped NUL */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *j = ah_json_parse_limited(cases[i].text, strlen(cases[i].text));
        ck_assert_msg(j != NULL, "case %zu refused", i);
        ck_assert_msg(strcmp(cJSON_GetArrayItem(j, 0)->valuestring, cases[i].want) == 0,
                      "case %zu read as %s", i, cJSON_GetArrayItem(j, 0)->valuestring);
        cJSON_Delete(j);
    }
    /* A name too; the caller's text left as it was. */
    char text[] = "{\"k\xff\":\"v\"}";
    cJSON *j = ah_json_parse_limited(text, sizeof text - 1);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(j->child->string, "k" R);
    cJSON_Delete(j);
    ck_assert_str_eq(text, "{\"k\xff\":\"v\"}");
    /* Outside a string such a byte is no JSON at all. */
    ck_assert(!accepted("[1,\xff]", 6));
    ck_assert(!accepted("\xff[1]", 4));
    /* An escape whose letter is such a byte stays cJSON's to refuse. */
    ck_assert(!accepted("[\"\\\xe9\"]", 6));
}
END_TEST
#undef R

/* ah_utf8_cut keeps at most max bytes and never half a sequence. */
START_TEST(test_utf8_cut)
{
    const char *s = "ab\xc3\xa9\xe2\x82\xac"; /* a b é € : 7 bytes */
    ck_assert_uint_eq(ah_utf8_cut(s, 7, 7), 7);
    ck_assert_uint_eq(ah_utf8_cut(s, 7, 9), 7);
    ck_assert_uint_eq(ah_utf8_cut(s, 7, 6), 4);
    ck_assert_uint_eq(ah_utf8_cut(s, 7, 5), 4);
    ck_assert_uint_eq(ah_utf8_cut(s, 7, 4), 4);
    ck_assert_uint_eq(ah_utf8_cut(s, 7, 3), 2);
    ck_assert_uint_eq(ah_utf8_cut(s, 7, 2), 2);
    ck_assert_uint_eq(ah_utf8_cut(s, 7, 0), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, test_depth_and_trailing_bytes);
    tcase_add_test(tc, test_nul_in_strings);
    tcase_add_test(tc, test_bytes_that_are_no_utf8);
    tcase_add_test(tc, test_utf8_cut);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
