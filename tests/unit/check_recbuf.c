/* SPDX-License-Identifier: Apache-2.0 */
/* The JSON checker records from a plugin pass (core/host/recbuf.c,
 * ah_json_valid): its strings eight bytes at a time, against a byte-by-byte
 * reading of RFC 8259's string grammar. */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "recbuf.h"

static bool hexd(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The code unit of a \\u escape at t[i], or -1. */
static long unit(const unsigned char *t, size_t n, size_t i)
{
    if (i + 6 > n || t[i] != '\\' || t[i + 1] != 'u')
        return -1;
    long v = 0;
    for (size_t k = i + 2; k < i + 6; k++) {
        if (!hexd(t[k]))
            return -1;
        v = v * 16 + (t[k] <= '9' ? t[k] - '0' : (t[k] | 0x20) - 'a' + 10);
    }
    return v;
}

/* Whether t[0..n) is exactly one JSON string (whitespace may follow it),
 * byte by byte, as cJSON reads it back: a \\u escape of a surrogate only
 * as a high one followed by a low one. */
static bool ref_string(const unsigned char *t, size_t n)
{
    if (n < 2 || t[0] != '"')
        return false;
    size_t i = 1;
    while (i < n) {
        unsigned char c = t[i];
        if (c == '"') {
            for (i++; i < n; i++)
                if (t[i] != ' ' && t[i] != '\t' && t[i] != '\n' && t[i] != '\r')
                    return false;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (i + 1 >= n)
                return false;
            unsigned char e = t[i + 1];
            if (e == 'u') {
                long hi = unit(t, n, i), lo = -1;
                if (hi < 0 || (hi >= 0xDC00 && hi <= 0xDFFF))
                    return false;
                if (hi >= 0xD800 && hi <= 0xDBFF) {
                    lo = unit(t, n, i + 6);
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return false;
                    i += 6;
                }
                i += 6;
                continue;
            }
            if (e == '\0' || strchr("\"\\/bfnrt", e) == NULL)
                return false;
            i += 2;
            continue;
        }
        i++;
    }
    return false;
}

/* Each special byte at every offset of a long plain string, across the
 * eight-byte steps: a control byte or a lone quote or backslash is seen
 * wherever it falls. */
START_TEST(test_special_byte_anywhere)
{
    const unsigned char specials[] = {'"', '\\', 0x00, 0x01, 0x1f, 0x20, 0x7f, 0x80, 0xff, 'a'};
    for (size_t k = 0; k < sizeof specials; k++) {
        for (size_t at = 0; at < 40; at++) {
            unsigned char t[48];
            size_t n = 43;
            t[0] = '"';
            memset(t + 1, 'x', n - 2);
            t[n - 1] = '"';
            t[1 + at] = specials[k];
            bool want = ref_string(t, n);
            ck_assert_msg(ah_json_valid((const char *)t, n) == want,
                          "byte 0x%02x at %zu: expected %s", specials[k], at,
                          want ? "valid" : "invalid");
            /* The plain bytes and 0x20 and above are valid, the rest not. */
            bool plain = specials[k] >= 0x20 && specials[k] != '"' && specials[k] != '\\';
            ck_assert(want == plain);
        }
    }
}
END_TEST

/* Random strings over the bytes that matter, also inside an array: the
 * checker agrees with the byte-by-byte reading every time. */
START_TEST(test_random_strings)
{
    const unsigned char alphabet[] = {'"', '\\', 'u', 'n', '0', 'A', 'f', 0x01, 0x1f, 0x20,
                                      'x', 0x7f, 0x80, 0xc3, 0xff, '/', 'b', 'D', '8', 'C'};
    unsigned seed = 12345;
    size_t valid = 0;
    for (int round = 0; round < 200000; round++) {
        unsigned char t[80];
        seed = seed * 1103515245u + 12345u;
        size_t len = (seed >> 16) % 40;
        t[0] = '"';
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 16) % 64;
            t[1 + i] = r < sizeof alphabet ? alphabet[r] : (unsigned char)('a' + r % 26);
        }
        size_t n = len + 1;
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 8 != 0)
            t[n++] = '"';
        bool want = ref_string(t, n);
        valid += want;
        ck_assert_msg(ah_json_valid((const char *)t, n) == want, "round %d", round);
        unsigned char a[96];
        a[0] = '[';
        memcpy(a + 1, t, n);
        memcpy(a + 1 + n, ",1]", 3);
        ck_assert_msg(ah_json_valid((const char *)a, n + 4) == want, "round %d in an array",
                      round);
    }
    ck_assert_uint_gt(valid, 10000); /* both kinds were tried */
    ck_assert_uint_lt(valid, 190000);
}
END_TEST

/* What cJSON could not read back is refused: a lone surrogate, a pair in
 * the wrong order or broken up. Long numbers it reads. */
START_TEST(test_read_back_whole)
{
    const char *good[] = {"\"\\ud83d\\ude00\"", "\"\\uD7FF\\uE000\"", "[\"a\\u00e9b\"]",
                          "[1234567890123456789012345678901234567890123456789012345678901234567890.5]"};
    const char *bad[] = {"\"\\ud83d\"", "\"\\ude00\\ud83d\"", "\"\\ud83dx\\ude00\"",
                         "\"\\ud83d\\u0041\"", "[\"\\udfff\"]"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        ck_assert_msg(ah_json_valid(good[i], strlen(good[i])), "%s", good[i]);
        cJSON *j = cJSON_Parse(good[i]);
        ck_assert_msg(j != NULL, "cJSON: %s", good[i]);
        cJSON_Delete(j);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(!ah_json_valid(bad[i], strlen(bad[i])), "%s", bad[i]);
}
END_TEST

START_TEST(test_values)
{
    const char *good[] = {"{\"a\":\"0123456789abcdef\\u00e9\\n\",\"b\":[1,-2.5e3,true,null]}",
                          " \"\" ", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""};
    const char *bad[] = {"{\"a\":\"0123456789abcdef", "\"0123456789\\x\"", "\"0123456\\u12G4\"",
                         "{\"a\":1,}", "\"abc\" x"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        ck_assert_msg(ah_json_valid(good[i], strlen(good[i])), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(!ah_json_valid(bad[i], strlen(bad[i])), "%s", bad[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("recbuf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_special_byte_anywhere);
    tcase_add_test(tc, test_random_strings);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_read_back_whole);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
