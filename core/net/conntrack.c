/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Design: one mutex guards the list of admitted connections and the count
 * per client address (a small chained hash table). Phase changes touch only
 * the entry's atomics, so the server threads never take the mutex on the
 * request path; the reaper reads them under the mutex, which is what keeps
 * an entry alive while it is looked at (release unlinks under the mutex
 * before freeing).
 */
#include "conntrack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CT_CLIENT_BUCKETS 1024u
#define CT_REAP_MAX_WAIT_MS 1000L
/* How often at most the reaper looks for clients that closed their side
 * (one recv per open connection). */
#define CT_PEEK_EVERY_MS 200L

typedef enum ct_phase {
    CT_WAITING, /* between requests: a new connection, or kept alive */
    CT_HEADERS, /* request line read, headers arriving */
    CT_BODY,    /* headers read, body arriving */
    CT_BUSY,    /* request read, being handled or answered */
} ct_phase;

typedef struct ct_client {
    struct ct_client *next;
    unsigned n;
    atomic_size_t body_held; /* ah_conntrack_body_hold, by all its connections */
    char ip[INET6_ADDRSTRLEN];
} ct_client;

struct ah_conn_entry {
    struct ah_conn_entry *prev, *next; /* the admitted list, under mu */
    int fd;
    bool claimed;  /* under mu */
    bool reaped;   /* under mu */
    bool flag;     /* the caller's */
    ct_client *client;
    ah_conntrack *t;
    atomic_int phase;
    atomic_llong deadline_ms; /* monotonic; 0: none */
    atomic_llong body_start_ms;
    atomic_ullong body_got;
};

struct ah_conntrack {
    ah_conntrack_opts o;
    pthread_mutex_t mu;
    ah_conn_entry *head;
    size_t open;
    long long peeked_ms; /* the reaper's last look for closed clients, under mu */
    atomic_ulong refused;
    ct_client *clients[CT_CLIENT_BUCKETS];
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned ip_hash(const char *ip)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)ip; *p != '\0'; p++)
        h = (h ^ *p) * 16777619u;
    return h & (CT_CLIENT_BUCKETS - 1);
}

ah_conntrack *ah_conntrack_new(const ah_conntrack_opts *opts)
{
    ah_conntrack *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    if (opts != NULL)
        t->o = *opts;
    if (t->o.max_total == 0)
        t->o.max_total = 4096;
    if (t->o.max_per_client == 0)
        t->o.max_per_client = 256;
    if (t->o.header_timeout_ms <= 0)
        t->o.header_timeout_ms = 10000;
    if (t->o.idle_timeout_ms <= 0)
        t->o.idle_timeout_ms = 60000;
    if (t->o.min_body_rate == 0)
        t->o.min_body_rate = 1024;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

void ah_conntrack_free(ah_conntrack *t)
{
    if (t == NULL)
        return;
    while (t->head != NULL) {
        ah_conn_entry *e = t->head;
        t->head = e->next;
        free(e);
    }
    for (unsigned i = 0; i < CT_CLIENT_BUCKETS; i++) {
        while (t->clients[i] != NULL) {
            ct_client *c = t->clients[i];
            t->clients[i] = c->next;
            free(c);
        }
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* Writes a whole small answer if the socket takes it now; never blocks. */
static void answer(int fd, int status, const char *reason, const char *code, const char *msg)
{
    char body[256], head[512];
    int bl = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
    if (bl < 0 || (size_t)bl >= sizeof body)
        return;
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                      "%sContent-Length: %d\r\n\r\n%s",
                      status, reason, status == 503 ? "Retry-After: 1\r\n" : "", bl, body);
    if (hl < 0 || (size_t)hl >= sizeof head)
        return;
    (void)!send(fd, head, (size_t)hl, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static ct_client *client_get(ah_conntrack *t, const char *ip)
{
    unsigned b = ip_hash(ip);
    for (ct_client *c = t->clients[b]; c != NULL; c = c->next)
        if (strcmp(c->ip, ip) == 0)
            return c;
    ct_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    snprintf(c->ip, sizeof c->ip, "%s", ip);
    c->next = t->clients[b];
    t->clients[b] = c;
    return c;
}

static void client_put(ah_conntrack *t, ct_client *c)
{
    if (--c->n > 0)
        return;
    ct_client **pp = &t->clients[ip_hash(c->ip)];
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    free(c);
}

static void addr_text(const struct sockaddr *sa, char out[INET6_ADDRSTRLEN])
{
    out[0] = '\0';
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, INET6_ADDRSTRLEN);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        /* An IPv4 client of a dual-stack socket counts as that IPv4 address. */
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            inet_ntop(AF_INET, &a->s6_addr[12], out, INET6_ADDRSTRLEN);
        } else {
            /* An IPv6 client counts as its /64: whoever holds one (the
             * smallest a site is given) picks the low half at will, and
             * would be a new client with every connection. */
            struct in6_addr net = *a;
            memset(&net.s6_addr[8], 0, 8);
            if (inet_ntop(AF_INET6, &net, out, INET6_ADDRSTRLEN - 3) != NULL)
                strcat(out, "/64");
        }
    } else {
        snprintf(out, INET6_ADDRSTRLEN, "local"); /* a Unix socket: one client */
    }
}

ah_conn_entry *ah_conntrack_admit(ah_conntrack *t, int fd, const struct sockaddr *sa)
{
    char ip[INET6_ADDRSTRLEN];
    addr_text(sa, ip);
    ah_conn_entry *e = calloc(1, sizeof *e);
    const char *why = NULL;
    pthread_mutex_lock(&t->mu);
    ct_client *c = e != NULL ? client_get(t, ip) : NULL;
    if (e == NULL || c == NULL)
        why = "the server is out of memory";
    else if (t->open >= t->o.max_total)
        why = "the server has as many connections as it takes";
    else if (c->n >= t->o.max_per_client)
        why = "this client has as many connections open as it may";
    if (why == NULL) {
        c->n++;
        t->open++;
        e->fd = fd;
        e->t = t;
        e->client = c;
        atomic_init(&e->phase, CT_WAITING);
        atomic_init(&e->deadline_ms, now_ms() + t->o.header_timeout_ms);
        e->next = t->head;
        if (t->head != NULL)
            t->head->prev = e;
        t->head = e;
    } else if (c != NULL && c->n == 0) {
        c->n = 1; /* made for this one: let client_put free it */
        client_put(t, c);
    }
    pthread_mutex_unlock(&t->mu);
    if (why != NULL) {
        atomic_fetch_add(&t->refused, 1);
        if (t->o.plain_text)
            answer(fd, 503, "Service Unavailable", "too_many_connections", why);
        close(fd);
        free(e);
        return NULL;
    }
    return e;
}

bool ah_conntrack_body_hold(ah_conn_entry *e, size_t n)
{
    if (e == NULL || e->t->o.max_body_per_client == 0)
        return true;
    /* The client lives while its entries do: no lock needed. */
    size_t was = atomic_fetch_add(&e->client->body_held, n);
    if (was + n > e->t->o.max_body_per_client || was + n < was) {
        atomic_fetch_sub(&e->client->body_held, n);
        return false;
    }
    return true;
}

void ah_conntrack_body_unhold(ah_conn_entry *e, size_t n)
{
    if (e != NULL && e->t->o.max_body_per_client != 0 && n > 0)
        atomic_fetch_sub(&e->client->body_held, n);
}

ah_conn_entry *ah_conntrack_claim(ah_conntrack *t, int fd)
{
    ah_conn_entry *found = NULL;
    pthread_mutex_lock(&t->mu);
    /* Unclaimed entries are the newest: they sit at the head. */
    for (ah_conn_entry *e = t->head; e != NULL; e = e->next) {
        if (!e->claimed && e->fd == fd) {
            e->claimed = true;
            found = e;
            break;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return found;
}

void ah_conntrack_release(ah_conntrack *t, ah_conn_entry *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    t->open--;
    client_put(t, e->client);
    pthread_mutex_unlock(&t->mu);
    free(e);
}

void ah_conntrack_request_begun(ah_conn_entry *e)
{
    if (e == NULL)
        return;
    /* The headers within header_timeout_ms of their start, and still
     * within the idle deadline of the answer before. */
    long long by = now_ms() + e->t->o.header_timeout_ms;
    long long d = atomic_load(&e->deadline_ms);
    if (d == 0 || d > by)
        atomic_store(&e->deadline_ms, by);
    atomic_store(&e->phase, CT_HEADERS);
    ah_conntrack_kick_closed(e);
}

void ah_conntrack_headers_done(ah_conn_entry *e)
{
    if (e == NULL)
        return;
    long long now = now_ms();
    atomic_store(&e->body_start_ms, now);
    atomic_store(&e->body_got, 0);
    atomic_store(&e->phase, CT_BODY);
    atomic_store(&e->deadline_ms, now + e->t->o.header_timeout_ms);
    /* No kick: an end of stream that came with the request line was seen
     * by request_begun's, one that comes later raises an edge of its own,
     * and a body's bytes kick while more are due; what is left (headers and
     * the end in one later read, then nothing) is the reaper's, within
     * CT_PEEK_EVERY_MS. */
}

void ah_conntrack_body_bytes(ah_conn_entry *e, size_t n, bool more)
{
    if (e == NULL || atomic_load(&e->phase) != CT_BODY)
        return;
    /* The body keeps its connection as long as it arrives at min_body_rate
     * on average, after a grace as long as the header deadline. */
    unsigned long long got = atomic_fetch_add(&e->body_got, n) + n;
    long long start = atomic_load(&e->body_start_ms);
    atomic_store(&e->deadline_ms, start + e->t->o.header_timeout_ms +
                                      (long long)(got * 1000ull / e->t->o.min_body_rate));
    /* The whole body is read: the request runs and the kick after its
     * answer (httpd.c) sees an end of stream that came with it. */
    if (more)
        ah_conntrack_kick_closed(e);
}

void ah_conntrack_busy(ah_conn_entry *e)
{
    if (e == NULL)
        return;
    atomic_store(&e->phase, CT_BUSY);
    atomic_store(&e->deadline_ms, 0);
}

void ah_conntrack_idle(ah_conn_entry *e)
{
    if (e == NULL)
        return;
    atomic_store(&e->deadline_ms, now_ms() + e->t->o.idle_timeout_ms);
    atomic_store(&e->phase, CT_WAITING);
}

void ah_conntrack_kick_closed(ah_conn_entry *e)
{
    if (e == NULL)
        return;
    /* A client that sent its request and its end of stream together (data
     * and FIN in one read) is never told to the server again: the server's
     * edge-triggered poll reported the socket readable once, and its short
     * read consumed that edge, so the connection would sit out the whole
     * idle timeout. When the peer has closed and nothing is left to read,
     * shutting our read side raises a fresh edge that lets the server see
     * the end (it still answers what it holds). Found by tests/fuzz.
     * The same holds within a request: called as each part of it is read
     * (request line, headers, body bytes), so that a request cut short by
     * the client's end of stream is closed at once; the reaper catches
     * what no callback follows (a request line cut short). */
    char c;
    if (recv(e->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
        (void)shutdown(e->fd, SHUT_RD);
}

/* Shuts e down (mu held); answers 408 when a request was under way. */
static void reap_one(ah_conntrack *t, ah_conn_entry *e, bool answer_it)
{
    e->reaped = true;
    if (answer_it && t->o.plain_text)
        answer(e->fd, 408, "Request Timeout", "request_timeout",
               "the request did not arrive in time");
    (void)shutdown(e->fd, SHUT_RDWR);
}

size_t ah_conntrack_reap(ah_conntrack *t, long *next_ms)
{
    size_t n = 0;
    long long now = now_ms(), next = -1;
    pthread_mutex_lock(&t->mu);
    bool peek = now - t->peeked_ms >= CT_PEEK_EVERY_MS;
    if (peek)
        t->peeked_ms = now;
    for (ah_conn_entry *e = t->head; e != NULL; e = e->next) {
        long long d = atomic_load(&e->deadline_ms);
        if (e->reaped || d == 0)
            continue;
        if (peek && e->claimed && now < d) {
            /* Not busy, before its deadline: a client that has closed its
             * side while the server waits for the rest of a request (or
             * for the next one) is let go now, not at the deadline. */
            char c;
            if (recv(e->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
                (void)shutdown(e->fd, SHUT_RD); /* the deadline still holds */
        }
        if (now >= d) {
            /* A request under way is answered; a connection waiting for
             * one (silent, or kept alive) is just closed. */
            int phase = atomic_load(&e->phase);
            reap_one(t, e, phase == CT_HEADERS || phase == CT_BODY);
            n++;
        } else if (next < 0 || d - now < next) {
            next = d - now;
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (next_ms != NULL)
        *next_ms = next < 0 ? -1 : next < CT_REAP_MAX_WAIT_MS ? (long)next : CT_REAP_MAX_WAIT_MS;
    return n;
}

size_t ah_conntrack_open(ah_conntrack *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->open;
    pthread_mutex_unlock(&t->mu);
    return n;
}

unsigned long ah_conntrack_refused(ah_conntrack *t)
{
    return atomic_load(&t->refused);
}

const char *ah_conn_entry_ip(const ah_conn_entry *e)
{
    return e != NULL ? e->client->ip : "";
}

bool *ah_conn_entry_flag(ah_conn_entry *e)
{
    return &e->flag;
}
