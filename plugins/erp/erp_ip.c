/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Trusted IPs: a source's comma-separated list of addresses and CIDR
 * blocks, IPv4 and IPv6. Addresses are parsed with inet_pton only; the code
 * here splits on ',' and '/' and compares bits.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "erp.h"

typedef struct ip_addr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char b[16];
} ip_addr;

static bool parse_addr(const char *s, ip_addr *a)
{
    if (inet_pton(AF_INET, s, a->b) == 1) {
        a->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, a->b) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        a->family = AF_INET6;
        if (memcmp(a->b, mapped, 12) == 0) { /* ::ffff:a.b.c.d is that IPv4 peer */
            memmove(a->b, a->b + 12, 4);
            a->family = AF_INET;
        }
        return true;
    }
    return false;
}

/* Parses "addr[/prefix]" (already trimmed, NUL-terminated). */
static bool parse_entry(const char *entry, ip_addr *net, int *prefix)
{
    char buf[64];
    size_t n = strlen(entry);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, entry, n + 1);
    char *slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    /* An entry's own v4-mapped form is not unwrapped: write IPv4 as IPv4. */
    if (inet_pton(AF_INET, buf, net->b) == 1)
        net->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, net->b) == 1)
        net->family = AF_INET6;
    else
        return false;
    int max = net->family == AF_INET ? 32 : 128;
    if (slash == NULL) {
        *prefix = max;
        return true;
    }
    const char *p = slash + 1;
    if (*p == '\0' || strlen(p) > 3)
        return false;
    int v = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v > max)
        return false;
    *prefix = v;
    return true;
}

static bool prefix_match(const ip_addr *net, int prefix, const ip_addr *a)
{
    if (net->family != a->family)
        return false;
    int full = prefix / 8, rest = prefix % 8;
    if (memcmp(net->b, a->b, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xFFu << (8 - rest));
    return (net->b[full] & mask) == (a->b[full] & mask);
}

/* Copies the trimmed entry [s, e) into out; false when it does not fit. */
static bool trim_copy(const char *s, const char *e, char *out, size_t n)
{
    while (s < e && isspace((unsigned char)*s))
        s++;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    if ((size_t)(e - s) >= n)
        return false;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    return true;
}

bool erp_ip_entry_valid(const char *entry)
{
    char buf[64];
    ip_addr net;
    int prefix;
    if (entry == NULL || !trim_copy(entry, entry + strlen(entry), buf, sizeof buf))
        return false;
    return parse_entry(buf, &net, &prefix);
}

bool erp_ip_allowed(const char *list, const char *client_ip, int *bad)
{
    ip_addr client;
    bool ok = false;
    int nbad = 0;
    if (bad != NULL)
        *bad = 0;
    if (list == NULL || client_ip == NULL || !parse_addr(client_ip, &client))
        return false;
    const char *s = list;
    while (*s != '\0') {
        const char *e = strchr(s, ',');
        if (e == NULL)
            e = s + strlen(s);
        char buf[64];
        ip_addr net;
        int prefix;
        bool blank = true;
        for (const char *p = s; p < e; p++)
            if (!isspace((unsigned char)*p))
                blank = false;
        if (!blank) {
            if (!trim_copy(s, e, buf, sizeof buf) || !parse_entry(buf, &net, &prefix))
                nbad++;
            else if (!ok && prefix_match(&net, prefix, &client))
                ok = true;
        }
        s = *e == ',' ? e + 1 : e;
    }
    if (bad != NULL)
        *bad = nbad;
    return ok;
}
