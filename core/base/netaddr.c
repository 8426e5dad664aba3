/* SPDX-License-Identifier: Apache-2.0 */
#include "netaddr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct net {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* 4 bytes used for AF_INET */
    unsigned prefix;
} net;

struct ah_netlist {
    size_t n;
    net nets[];
};

/* True when the first `prefix` bits of a and b agree. */
static bool prefix_equal(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xffu << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

static bool v4_is_public(const unsigned char a[4])
{
    static const struct {
        unsigned char addr[4];
        unsigned prefix;
    } special[] = {
        {{0, 0, 0, 0}, 8},         /* "this network", unspecified */
        {{10, 0, 0, 0}, 8},        /* private */
        {{100, 64, 0, 0}, 10},     /* shared address space (CGN) */
        {{127, 0, 0, 0}, 8},       /* loopback */
        {{169, 254, 0, 0}, 16},    /* link-local, cloud metadata */
        {{172, 16, 0, 0}, 12},     /* private */
        {{192, 0, 0, 0}, 24},      /* IETF protocol assignments */
        {{192, 0, 2, 0}, 24},      /* documentation */
        {{192, 88, 99, 0}, 24},    /* 6to4 relay anycast */
        {{192, 168, 0, 0}, 16},    /* private */
        {{198, 18, 0, 0}, 15},     /* benchmarking */
        {{198, 51, 100, 0}, 24},   /* documentation */
        {{203, 0, 113, 0}, 24},    /* documentation */
        {{224, 0, 0, 0}, 4},       /* multicast */
        {{240, 0, 0, 0}, 4},       /* reserved, broadcast */
    };
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        if (prefix_equal(a, special[i].addr, special[i].prefix))
            return false;
    return true;
}

/* The IPv4 address an IPv6 one carries, if it is one of the forms that
 * reach an IPv4 host; true with it in v4. */
static bool v6_embedded_v4(const unsigned char a[16], unsigned char v4[4])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char compat[12] = {0};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0 ||
        (memcmp(a, compat, 12) == 0 && (a[12] | a[13] | a[14] | a[15]) != 0 &&
         !(a[12] == 0 && a[13] == 0 && a[14] == 0 && a[15] == 1))) {
        memcpy(v4, a + 12, 4);
        return true;
    }
    if (a[0] == 0x20 && a[1] == 0x02) { /* 6to4: 2002:a.b.c.d::/48 */
        memcpy(v4, a + 2, 4);
        return true;
    }
    return false;
}

static bool v6_is_public(const unsigned char a[16])
{
    static const unsigned char loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const unsigned char unspecified[16] = {0};
    unsigned char v4[4];
    if (memcmp(a, loopback, 16) == 0 || memcmp(a, unspecified, 16) == 0)
        return false;
    if (v6_embedded_v4(a, v4))
        return v4_is_public(v4);
    if ((a[0] & 0xfe) == 0xfc)                  /* fc00::/7 unique local */
        return false;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)  /* fe80::/10 link-local */
        return false;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)  /* fec0::/10 site-local (deprecated) */
        return false;
    if (a[0] == 0xff)                           /* multicast */
        return false;
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) /* documentation */
        return false;
    if (a[0] == 0x01 && a[1] == 0x00 && memcmp(a + 2, unspecified, 6) == 0) /* discard */
        return false;
    return true;
}

bool ah_addr_is_public(const struct sockaddr *sa)
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET)
        return v4_is_public((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return v6_is_public(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return false;
}

void ah_addr_text(const struct sockaddr *sa, char *out, size_t len)
{
    const void *a = NULL;
    if (sa != NULL && sa->sa_family == AF_INET)
        a = &((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa != NULL && sa->sa_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (a == NULL || inet_ntop(sa->sa_family, a, out, (socklen_t)len) == NULL)
        snprintf(out, len, "?");
}

static bool parse_net(const char *s, size_t n, net *out)
{
    char buf[80];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    memset(out, 0, sizeof *out);
    unsigned max;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return false;
    }
    out->prefix = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        if (!isdigit((unsigned char)*p))
            return false;
        char *end = NULL;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (errno != 0 || *end != '\0' || v > max)
            return false;
        out->prefix = (unsigned)v;
    }
    return true;
}

ah_netlist *ah_netlist_parse(const char *text, char *err, size_t errlen)
{
    /* Entries are separated by commas or blanks: one more than the
     * separators bounds their number (counting commas alone let
     * "10.0.0.0/8 192.168.0.0/16" write past the array: found by
     * tests/fuzz/fuzz_config). */
    size_t cap = 1;
    for (const char *p = text; p != NULL && *p != '\0'; p++)
        cap += *p == ',' || *p == ' ' || *p == '\t';
    ah_netlist *l = calloc(1, sizeof *l + cap * sizeof l->nets[0]);
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *p = text != NULL ? text : "";
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e != '\0' && *e != ',' && *e != ' ' && *e != '\t')
            e++;
        if (e == p)
            break;
        if (!parse_net(p, (size_t)(e - p), &l->nets[l->n])) {
            snprintf(err, errlen, "'%.*s' is not a network (an address, or address/prefix)",
                     (int)(e - p > 64 ? 64 : e - p), p);
            free(l);
            return NULL;
        }
        l->n++;
        p = e;
    }
    return l;
}

void ah_netlist_free(ah_netlist *l)
{
    free(l);
}

/* True when sa is in one of the n networks. */
static bool nets_contain(const net *nets, size_t n, const struct sockaddr *sa)
{
    if (sa == NULL)
        return false;
    unsigned char a[16], v4[4];
    int family = sa->sa_family;
    if (family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (family == AF_INET6) {
        memcpy(a, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, 16);
        /* An IPv4 address in IPv6 clothing matches the IPv4 networks. */
        if (v6_embedded_v4(a, v4)) {
            for (size_t i = 0; i < n; i++)
                if (nets[i].family == AF_INET && prefix_equal(v4, nets[i].addr, nets[i].prefix))
                    return true;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (nets[i].family == family && prefix_equal(a, nets[i].addr, nets[i].prefix))
            return true;
    return false;
}

bool ah_netlist_contains(const ah_netlist *l, const struct sockaddr *sa)
{
    return l != NULL && nets_contain(l->nets, l->n, sa);
}

bool ah_netlist_text_contains(const char *text, const struct sockaddr *sa)
{
    if (text == NULL || sa == NULL)
        return false;
    const char *p = text;
    for (;;) {
        const char *e = strchr(p, ',');
        if (e == NULL)
            e = p + strlen(p);
        const char *s = p, *t = e;
        while (s < t && isspace((unsigned char)*s))
            s++;
        while (t > s && isspace((unsigned char)t[-1]))
            t--;
        net one;
        /* A malformed entry is skipped, not fatal: the list's owner
         * validates it and warns about it; the others still count. */
        if (t > s && parse_net(s, (size_t)(t - s), &one) && nets_contain(&one, 1, sa))
            return true;
        if (*e == '\0')
            return false;
        p = e + 1;
    }
}

bool ah_addr_parse(const char *text, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (text == NULL)
        return false;
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return true;
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}
