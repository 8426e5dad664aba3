/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Network addresses the host may be asked to reach on a tenant's word (a
 * webhook URL): which are public, and lists of networks an operator allows
 * anyway (netaddr.c). IPv4 addresses inside IPv6 ones (::ffff:a.b.c.d,
 * ::a.b.c.d, 64:ff9b::a.b.c.d, 2002:a.b.c.d::) are judged as the IPv4
 * address they carry, so no spelling of a private address passes.
 */
#ifndef AH_NETADDR_H
#define AH_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/** True when sa (AF_INET or AF_INET6) is a public unicast address: not
 *  loopback, private (RFC 1918, fc00::/7), shared (100.64/10), link-local
 *  (169.254/16 with the cloud metadata address, fe80::/10), unspecified,
 *  multicast, broadcast, documentation, benchmarking or reserved. False for
 *  any other family. */
bool ah_addr_is_public(const struct sockaddr *sa);
/** "a.b.c.d" or an IPv6 address of sa, for messages; out >= 64 bytes. */
void ah_addr_text(const struct sockaddr *sa, char *out, size_t len);

typedef struct ah_netlist ah_netlist;
/** Parses a comma-separated list of networks ("127.0.0.0/8, ::1/128"; a
 *  bare address is a network of one). NULL or "" gives an empty list. NULL
 *  with a message naming the bad entry in err on a syntax error (and on out
 *  of memory). */
ah_netlist *ah_netlist_parse(const char *text, char *err, size_t errlen);
void ah_netlist_free(ah_netlist *l);
/** True when sa is in one of l's networks (l may be NULL: false). */
bool ah_netlist_contains(const ah_netlist *l, const struct sockaddr *sa);
/** True when sa is in one of the networks of the comma-separated `text`
 *  ("10.0.0.0/8, 127.0.0.1"; blanks around entries ignored), judged like
 *  ah_netlist_contains. Unlike ah_netlist_parse, an entry that is not a
 *  network is skipped (for lists their owner validates, such as a plugin's
 *  setting). NULL text or sa: false. */
bool ah_netlist_text_contains(const char *text, const struct sockaddr *sa);
/** Parses an IPv4 or IPv6 address ("127.0.0.1", "::1") into *out (its
 *  family and address; port 0). false, *out zeroed, when text is NULL or
 *  no address. */
bool ah_addr_parse(const char *text, struct sockaddr_storage *out);

#endif
