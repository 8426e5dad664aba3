/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SQLite engine's fields deltas (core/store/sqlite/fieldpack.c): a
 * record's fields text packed against its raw text unpacks to the same
 * text, in an allocation of the text's size (it is kept per row read: sized
 * by the worst case, a 3 KB delta held ~200 KB a row), and a delta cut
 * short does not unpack.
 *
 * A unit test of the engine's internals: it includes sqlite_int.h.
 */
#include <check.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_int.h"

START_TEST(test_unpack_exact)
{
    /* raw: an ERP-like record; fields: much of it again (long matches). */
    static char raw[16384], fields[16384];
    size_t rl = 0, fl = 0;
    rl += (size_t)snprintf(raw + rl, sizeof raw - rl, "{\"items\":[");
    fl += (size_t)snprintf(fields + fl, sizeof fields - fl, "{\"lines\":[");
    for (int i = 0; i < 100; i++) {
        rl += (size_t)snprintf(raw + rl, sizeof raw - rl,
                               "%s{\"sku\":\"SKU-%05d\",\"description\":\"a widget of kind %d, "
                               "blue\",\"qty\":%d}",
                               i ? "," : "", i, i, i * 3);
        fl += (size_t)snprintf(fields + fl, sizeof fields - fl,
                               "%s{\"sku\":\"SKU-%05d\",\"description\":\"a widget of kind %d, "
                               "blue\",\"qty\":%d}",
                               i ? "," : "", i, i, i * 3);
    }
    rl += (size_t)snprintf(raw + rl, sizeof raw - rl, "]}");
    fl += (size_t)snprintf(fields + fl, sizeof fields - fl, "]}");
    ah_sq_packer *p = ah_sq_packer_new();
    ck_assert_ptr_nonnull(p);
    const void *z = NULL;
    size_t zl = 0;
    ck_assert_int_eq(ah_sq_fields_pack(p, raw, rl, fields, fl, &z, &zl), 0);
    ck_assert_uint_lt(zl, fl / 4); /* mostly copies */
    void *delta = malloc(zl);
    ck_assert_ptr_nonnull(delta);
    memcpy(delta, z, zl);
    char *t = ah_sq_fields_unpack(raw, rl, delta, zl);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t, fields);
    /* malloc's rounding aside, the text's own size. */
    ck_assert_msg(malloc_usable_size(t) < fl + 64, "%zu bytes held for a text of %zu",
                  malloc_usable_size(t), fl);
    free(t);
    /* Cut short anywhere: no text. */
    for (size_t cut = 1; cut < zl; cut++) {
        t = ah_sq_fields_unpack(raw, rl, delta, cut);
        if (t != NULL) { /* a prefix that ends on a token: a prefix of the text */
            ck_assert(strncmp(t, fields, strlen(t)) == 0);
            free(t);
        }
    }
    free(delta);
    ah_sq_packer_free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fieldpack");
    TCase *tc = tcase_create("fieldpack");
    tcase_add_test(tc, test_unpack_exact);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
