/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base/netaddr.c: which addresses are public, in every spelling a URL's host
 * can take once resolved, and the operator's allowed networks. Pure
 * classification: nothing here sends a packet.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "netaddr.h"

/* The address getaddrinfo gives for a numeric host, as a URL would. */
static bool public_host(const char *host)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *ai = NULL;
    ck_assert_msg(getaddrinfo(host, NULL, &hints, &ai) == 0 && ai != NULL, "%s", host);
    bool pub = ah_addr_is_public(ai->ai_addr);
    freeaddrinfo(ai);
    return pub;
}

START_TEST(test_not_public)
{
    static const char *const hosts[] = {
        "127.0.0.1", "127.255.255.254", "0x7f000001", "2130706433", "0177.0.0.1", "127.1",
        "0.0.0.0", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1",
        "169.254.169.254", "169.254.0.1", "224.0.0.1", "255.255.255.255", "240.0.0.1",
        "192.0.2.1", "198.18.0.1", "::1", "::", "fe80::1", "fd00:ec2::254", "fc00::1",
        "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
        "::127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "2001:db8::1",
    };
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++)
        ck_assert_msg(!public_host(hosts[i]), "%s passed as public", hosts[i]);
}
END_TEST

START_TEST(test_public)
{
    static const char *const hosts[] = {"93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1",
                                        "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++)
        ck_assert_msg(public_host(hosts[i]), "%s refused as not public", hosts[i]);
}
END_TEST

static bool contains(const ah_netlist *l, const char *host)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *ai = NULL;
    ck_assert_int_eq(getaddrinfo(host, NULL, &hints, &ai), 0);
    bool in = ah_netlist_contains(l, ai->ai_addr);
    freeaddrinfo(ai);
    return in;
}

START_TEST(test_netlist)
{
    char err[160];
    ah_netlist *l = ah_netlist_parse("127.0.0.0/8, ::1 ,10.1.2.0/23", err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert(contains(l, "127.0.0.1"));
    ck_assert(contains(l, "127.200.1.1"));
    ck_assert(contains(l, "::1"));
    ck_assert(contains(l, "::ffff:127.0.0.1")); /* the IPv4 network, in IPv6 clothing */
    ck_assert(contains(l, "10.1.3.255"));
    ck_assert(!contains(l, "10.1.4.0"));
    ck_assert(!contains(l, "128.0.0.1"));
    ck_assert(!contains(l, "::2"));
    ah_netlist_free(l);

    /* Blank-separated entries (once written past the array: fuzz_config). */
    l = ah_netlist_parse("10.0.0.0/8 192.168.0.0/16\t172.16.0.0/12 ::1", err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert(contains(l, "10.9.9.9"));
    ck_assert(contains(l, "192.168.3.4"));
    ck_assert(contains(l, "172.31.0.1"));
    ck_assert(contains(l, "::1"));
    ck_assert(!contains(l, "11.0.0.1"));
    ah_netlist_free(l);

    l = ah_netlist_parse(NULL, err, sizeof err);
    ck_assert_ptr_nonnull(l);
    ck_assert(!contains(l, "127.0.0.1"));
    ah_netlist_free(l);

    static const char *const bad[] = {"127.0.0.0/33", "::1/129", "localhost", "1.2.3.4/",
                                      "1.2.3.4/x", "300.1.1.1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        l = ah_netlist_parse(bad[i], err, sizeof err);
        ck_assert_msg(l == NULL, "'%s' parsed", bad[i]);
        ck_assert_msg(strstr(err, "is not a network") != NULL, "%s", err);
    }
}
END_TEST

/* A plugin's list setting, judged leniently: malformed entries are skipped. */
static bool text_contains(const char *text, const char *ip)
{
    struct sockaddr_storage ss;
    ck_assert_msg(ah_addr_parse(ip, &ss), "%s", ip);
    return ah_netlist_text_contains(text, (const struct sockaddr *)&ss);
}

START_TEST(test_netlist_text)
{
    ck_assert(text_contains("127.0.0.1", "127.0.0.1"));
    ck_assert(text_contains(" 10.0.0.0/8 ,\t127.0.0.0/8 ", "127.0.0.2"));
    ck_assert(text_contains("not-an-ip, 300.1.1.1, 127.0.0.1/33, 127.0.0.1", "127.0.0.1"));
    ck_assert(text_contains("::1, 127.0.0.1", "::ffff:127.0.0.1"));
    ck_assert(text_contains("2001:db8::/32", "2001:db8::5"));
    ck_assert(!text_contains("127.0.0.1", "127.0.0.2"));
    ck_assert(!text_contains("localhost", "127.0.0.1"));
    ck_assert(!text_contains("", "127.0.0.1"));
    ck_assert(!text_contains(",,", "127.0.0.1"));
    ck_assert(!text_contains("::1, ::/0", "127.0.0.1"));
    ck_assert(!text_contains(NULL, "127.0.0.1"));
    struct sockaddr_storage ss;
    ck_assert(!ah_addr_parse("localhost", &ss));
    ck_assert(!ah_addr_parse(NULL, &ss));
    ck_assert(!ah_addr_parse("127.0.0.1/8", &ss));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("netaddr");
    TCase *tc = tcase_create("netaddr");
    tcase_add_test(tc, test_not_public);
    tcase_add_test(tc, test_public);
    tcase_add_test(tc, test_netlist);
    tcase_add_test(tc, test_netlist_text);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
