/* SPDX-License-Identifier: Apache-2.0 */
/* The look for input before sleeping (core/base/look.c). */
#include <check.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "look.h"

/* The look before sleeping: it answers whether input is there, looks
 * only when looking has paid lately (and every 64th call to learn), and
 * stops looking after looks that found nothing. */
START_TEST(test_look_poll)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ah_look st = {0};
    /* A fresh state does not look (nothing is there either way). */
    for (int i = 1; i < 64; i++)
        ck_assert_int_eq(ah_look_poll(&st, sv[0]), 0);
    ck_assert_int_eq(st.score, 0);
    /* Its 64th call looks: input there is found, and pays. */
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_int_gt(ah_look_poll(&st, sv[0]), 0);
    ck_assert_int_eq(st.score, 1);
    /* While it pays it looks at every call: input found without a
     * probe's turn. */
    ck_assert_int_gt(ah_look_poll(&st, sv[0]), 0);
    ck_assert_int_eq(st.score, 2);
    char c;
    ck_assert_int_eq(read(sv[0], &c, 1), 1);
    /* A look that finds nothing costs 4: from 2 down to 0, and the next
     * calls answer at once again. */
    ck_assert_int_eq(ah_look_poll(&st, sv[0]), 0);
    ck_assert_int_eq(st.score, 0);
    unsigned waits = st.waits;
    ck_assert_int_eq(ah_look_poll(&st, sv[0]), 0);
    ck_assert_uint_eq(st.waits, waits + 1);
    /* The peer gone: poll says so (POLLHUP), which is for the reader to
     * find out, not a wait. */
    for (int i = 0; i < 64 && st.score == 0; i++) {
        if (i == 0)
            close(sv[1]);
        if (ah_look_poll(&st, sv[0]) > 0)
            break;
    }
    ck_assert_int_eq(st.score, 1);
    close(sv[0]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("look");
    TCase *tc = tcase_create("look");
    tcase_add_test(tc, test_look_poll);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
