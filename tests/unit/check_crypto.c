/* SPDX-License-Identifier: Apache-2.0 */
#include <check.h>
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto.h"

static const unsigned char test_key[AH_KEY_LEN] = {
    1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};

START_TEST(test_sha256_vectors)
{
    char out[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex("abc", 3, out);
    ck_assert_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ah_sha256_hex("", 0, out);
    ck_assert_str_eq(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* The raw digest: the same bytes. */
    unsigned char md[32];
    ah_sha256("abc", 3, md);
    ck_assert_uint_eq(md[0], 0xba);
    ck_assert_uint_eq(md[1], 0x78);
    ck_assert_uint_eq(md[31], 0xad);
}
END_TEST

START_TEST(test_hmac_rfc4231_case2)
{
    const char *key = "Jefe";
    const char *data = "what do ya want for nothing?";
    char hex[AH_SHA256_HEX_LEN + 1];
    ck_assert_int_eq(ah_hmac_sha256_hex(key, strlen(key), data, strlen(data), hex), 0);
    ck_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    unsigned char raw[32];
    ck_assert_int_eq(ah_hmac_sha256(key, strlen(key), data, strlen(data), raw), 0);
    ck_assert_uint_eq(raw[0], 0x5b);
    ck_assert_uint_eq(raw[31], 0x43);
}
END_TEST

START_TEST(test_base64_roundtrip)
{
    /* Every length mod 3, so each padding case is covered. */
    const char *src = "any carnal pleas";
    for (size_t len = 0; len <= strlen(src); len++) {
        char *enc = ah_base64_encode(src, len);
        ck_assert_ptr_nonnull(enc);
        ck_assert_uint_eq(strlen(enc), 4 * ((len + 2) / 3));
        size_t n = 99;
        unsigned char *dec = ah_base64_decode(enc, &n);
        ck_assert_ptr_nonnull(dec);
        ck_assert_uint_eq(n, len);
        ck_assert_int_eq(memcmp(dec, src, len), 0);
        free(dec);
        free(enc);
    }
    char *enc = ah_base64_encode("any carnal pleasure.", 20);
    ck_assert_str_eq(enc, "YW55IGNhcm5hbCBwbGVhc3VyZS4=");
    free(enc);
    enc = ah_base64_encode("\xff\xfe\x00\x01", 4);
    size_t n = 0;
    unsigned char *dec = ah_base64_decode(enc, &n);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(memcmp(dec, "\xff\xfe\x00\x01", 4), 0);
    free(dec);
    free(enc);
}
END_TEST

START_TEST(test_base64_invalid)
{
    size_t n = 0;
    const char *bad[] = {"abc",   "a===",  "ab=c", "YW5*", "YW55 ",
                         " YW55", "Y\nW5", "====", "YW55IGN=hcm5h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char *d = ah_base64_decode(bad[i], &n);
        ck_assert_msg(d == NULL, "accepted invalid base64 '%s'", bad[i]);
    }
    ck_assert_ptr_null(ah_base64_decode(NULL, &n));
    unsigned char *d = ah_base64_decode("", &n);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(n, 0);
    free(d);
}
END_TEST

START_TEST(test_seal_roundtrip)
{
    const char *msgs[] = {"", "s3cret", "a longer secret with unicode \xc3\xa9 and more text"};
    for (size_t i = 0; i < 3; i++) {
        char *sealed = ah_seal(test_key, msgs[i], "conn:1:client_secret");
        ck_assert_ptr_nonnull(sealed);
        ck_assert(ah_is_sealed(sealed));
        ck_assert_ptr_null(strstr(sealed, "s3cret"));
        char *pt = ah_open_sealed(test_key, sealed, "conn:1:client_secret");
        ck_assert_ptr_nonnull(pt);
        ck_assert_str_eq(pt, msgs[i]);
        free(pt);
        free(sealed);
    }
    /* NULL aad is the same as no aad. */
    char *sealed = ah_seal(test_key, "x", NULL);
    char *pt = ah_open_sealed(test_key, sealed, NULL);
    ck_assert_str_eq(pt, "x");
    free(pt);
    /* Fresh nonce each time: same input, different output. */
    char *sealed2 = ah_seal(test_key, "x", NULL);
    ck_assert_str_ne(sealed, sealed2);
    free(sealed);
    free(sealed2);
    ck_assert(!ah_is_sealed("plain"));
    ck_assert(!ah_is_sealed(NULL));
}
END_TEST

START_TEST(test_seal_tamper)
{
    char *sealed = ah_seal(test_key, "top secret value", "aad");
    ck_assert_ptr_nonnull(sealed);
    size_t n = 0;
    unsigned char *raw = ah_base64_decode(sealed + 3, &n);
    ck_assert_ptr_nonnull(raw);
    /* Flip one bit in the nonce, in the ciphertext and in the tag. */
    size_t positions[] = {0, 12, n - 1};
    for (size_t i = 0; i < 3; i++) {
        raw[positions[i]] ^= 0x01;
        char *b64 = ah_base64_encode(raw, n);
        size_t len = strlen(b64) + 4;
        char *bad = malloc(len);
        snprintf(bad, len, "v1:%s", b64);
        ck_assert_ptr_null(ah_open_sealed(test_key, bad, "aad"));
        free(bad);
        free(b64);
        raw[positions[i]] ^= 0x01;
    }
    free(raw);
    /* Wrong key. */
    unsigned char other[AH_KEY_LEN];
    memcpy(other, test_key, sizeof other);
    other[5] ^= 0x80;
    ck_assert_ptr_null(ah_open_sealed(other, sealed, "aad"));
    /* Truncated and garbage. */
    char *trunc = strdup(sealed);
    trunc[12] = '\0';
    ck_assert_ptr_null(ah_open_sealed(test_key, trunc, "aad"));
    free(trunc);
    ck_assert_ptr_null(ah_open_sealed(test_key, "v1:!!!!", "aad"));
    ck_assert_ptr_null(ah_open_sealed(test_key, "plain text", "aad"));
    free(sealed);
}
END_TEST

START_TEST(test_seal_wrong_aad)
{
    char *sealed = ah_seal(test_key, "secret", "conn:1:api_key");
    ck_assert_ptr_null(ah_open_sealed(test_key, sealed, "conn:2:api_key"));
    ck_assert_ptr_null(ah_open_sealed(test_key, sealed, NULL));
    char *pt = ah_open_sealed(test_key, sealed, "conn:1:api_key");
    ck_assert_str_eq(pt, "secret");
    free(pt);
    free(sealed);
}
END_TEST

START_TEST(test_ct_equal)
{
    ck_assert(ah_ct_equal("abc", 3, "abc", 3));
    ck_assert(!ah_ct_equal("abc", 3, "abd", 3));
    ck_assert(!ah_ct_equal("abc", 3, "abcd", 4));
    ck_assert(ah_ct_equal("", 0, "", 0));
    ck_assert(ah_ct_streq("token", "token"));
    ck_assert(!ah_ct_streq("token", "tokeN"));
    ck_assert(!ah_ct_streq("token", "token2"));
    ck_assert(!ah_ct_streq(NULL, "x"));
}
END_TEST

START_TEST(test_random_and_uuid)
{
    char a[33], b[33];
    ck_assert_int_eq(ah_random_hex(a, 16), 0);
    ck_assert_int_eq(ah_random_hex(b, 16), 0);
    ck_assert_uint_eq(strlen(a), 32);
    ck_assert_str_ne(a, b);
    for (int i = 0; i < 32; i++)
        ck_assert(isxdigit((unsigned char)a[i]) && !isupper((unsigned char)a[i]));

    char u[37];
    for (int n = 0; n < 50; n++) {
        ck_assert_int_eq(ah_uuid4(u), 0);
        ck_assert_uint_eq(strlen(u), 36);
        for (int i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23)
                ck_assert_int_eq(u[i], '-');
            else
                ck_assert(isxdigit((unsigned char)u[i]));
        }
        ck_assert_int_eq(u[14], '4');
        ck_assert(strchr("89ab", u[19]) != NULL);
    }
}
END_TEST

static void tmp_make(char dir[64])
{
    snprintf(dir, 64, "/tmp/ah_crypto_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void tmp_remove(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_host_key_create_reload)
{
    char tmpdir[64], path[128], err[256] = "";
    tmp_make(tmpdir);
    snprintf(path, sizeof path, "%s/sub/dir/host.key", tmpdir);
    unsigned char k1[AH_KEY_LEN], k2[AH_KEY_LEN];
    ck_assert_int_eq(ah_host_key_load(path, k1, err, sizeof err), 0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    ck_assert_uint_eq(st.st_size, 65);
    ck_assert_int_eq(ah_host_key_load(path, k2, err, sizeof err), 0);
    ck_assert_int_eq(memcmp(k1, k2, AH_KEY_LEN), 0);
    /* The key works for sealing across loads. */
    char *s = ah_seal(k1, "v", NULL);
    char *p = ah_open_sealed(k2, s, NULL);
    ck_assert_str_eq(p, "v");
    free(p);
    free(s);
    tmp_remove(tmpdir);
}
END_TEST

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    ck_assert_int_eq(close(fd), 0);
    ck_assert_int_eq(chmod(path, mode), 0);
}

START_TEST(test_host_key_refused)
{
    char tmpdir[64], path[128], err[256];
    tmp_make(tmpdir);
    unsigned char k[AH_KEY_LEN];
    const char *good = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n";
    snprintf(path, sizeof path, "%s/host.key", tmpdir);

    write_file(path, good, 0600);
    err[0] = '\0';
    ck_assert_int_eq(ah_host_key_load(path, k, err, sizeof err), 0);
    ck_assert_uint_eq(k[0], 0x00);
    ck_assert_uint_eq(k[31], 0xff);

    write_file(path, good, 0644);
    err[0] = '\0';
    ck_assert_int_ne(ah_host_key_load(path, k, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "group/others"));

    write_file(path, "not a key\n", 0600);
    err[0] = '\0';
    ck_assert_int_ne(ah_host_key_load(path, k, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "64 hex"));

    write_file(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeZZ", 0600);
    ck_assert_int_ne(ah_host_key_load(path, k, err, sizeof err), 0);

    write_file(path, "", 0600);
    ck_assert_int_ne(ah_host_key_load(path, k, err, sizeof err), 0);
    tmp_remove(tmpdir);
}
END_TEST

static Suite *crypto_suite(void)
{
    Suite *s = suite_create("crypto");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_sha256_vectors);
    tcase_add_test(tc, test_hmac_rfc4231_case2);
    tcase_add_test(tc, test_base64_roundtrip);
    tcase_add_test(tc, test_base64_invalid);
    tcase_add_test(tc, test_seal_roundtrip);
    tcase_add_test(tc, test_seal_tamper);
    tcase_add_test(tc, test_seal_wrong_aad);
    tcase_add_test(tc, test_ct_equal);
    tcase_add_test(tc, test_random_and_uuid);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("host_key");
    tcase_add_test(tk, test_host_key_create_reload);
    tcase_add_test(tk, test_host_key_refused);
    suite_add_tcase(s, tk);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(crypto_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
