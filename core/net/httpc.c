/* SPDX-License-Identifier: Apache-2.0 */
#include "httpc.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "block.h"

#define HTTPC_DEFAULT_TIMEOUT_MS 30000L
#define HTTPC_DEFAULT_ATTEMPTS 4
#define HTTPC_DEFAULT_BACKOFF_MS 500L
#define HTTPC_DEFAULT_BACKOFF_MAX_MS 30000L
#define HTTPC_DEFAULT_MAX_RESPONSE (64u * 1024u * 1024u)
#define HTTPC_MAX_CONNECT_MS 5000L
/* Idle easy handles kept for connection reuse; more are cleaned up. */
#define HTTPC_POOL_MAX 16
/* The observer gets at most this much of each body (it is a log). */
#define HTTPC_OBSERVED_BODY_MAX (64u * 1024u)

struct ah_httpc {
    ah_httpc_opts opts;
    char *ca_file;
    pthread_mutex_t mu; /* guards pool and rng */
    CURL *pool[HTTPC_POOL_MAX];
    size_t npool;
    uint64_t rng;
};

/* Response body being received, with the size cap. */
typedef struct httpc_buf {
    char *data;
    size_t len, cap, max;
    bool too_large;
} httpc_buf;

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

ah_httpc *ah_httpc_new(const ah_httpc_opts *opts)
{
    ah_httpc *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (opts)
        c->opts = *opts;
    if (c->opts.timeout_ms <= 0)
        c->opts.timeout_ms = HTTPC_DEFAULT_TIMEOUT_MS;
    if (c->opts.max_attempts <= 0)
        c->opts.max_attempts = HTTPC_DEFAULT_ATTEMPTS;
    if (c->opts.backoff_ms <= 0)
        c->opts.backoff_ms = HTTPC_DEFAULT_BACKOFF_MS;
    if (c->opts.backoff_max_ms <= 0)
        c->opts.backoff_max_ms = HTTPC_DEFAULT_BACKOFF_MAX_MS;
    if (c->opts.backoff_max_ms < c->opts.backoff_ms)
        c->opts.backoff_max_ms = c->opts.backoff_ms;
    if (c->opts.max_response == 0)
        c->opts.max_response = HTTPC_DEFAULT_MAX_RESPONSE;
    if (c->opts.ca_file) {
        c->ca_file = strdup(c->opts.ca_file);
        if (!c->ca_file) {
            free(c);
            return NULL;
        }
    }
    c->opts.ca_file = c->ca_file;
    c->rng = c->opts.seed;
    if (c->rng == 0 && getrandom(&c->rng, sizeof(c->rng), 0) != (ssize_t)sizeof(c->rng))
        c->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->ca_file);
        free(c);
        return NULL;
    }
    /* Reference-counted and thread-safe in the libcurl we require. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        pthread_mutex_destroy(&c->mu);
        free(c->ca_file);
        free(c);
        return NULL;
    }
    return c;
}

void ah_httpc_free(ah_httpc *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->npool; i++)
        curl_easy_cleanup(c->pool[i]);
    pthread_mutex_destroy(&c->mu);
    free(c->ca_file);
    free(c);
    curl_global_cleanup();
}

static CURL *handle_get(ah_httpc *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->npool > 0)
        h = c->pool[--c->npool];
    pthread_mutex_unlock(&c->mu);
    if (h) {
        /* Keeps live connections, which is the point of the pool. */
        curl_easy_reset(h);
        return h;
    }
    return curl_easy_init();
}

static void handle_put(ah_httpc *c, CURL *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->npool < HTTPC_POOL_MAX) {
        c->pool[c->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (h)
        curl_easy_cleanup(h);
}

static long rand_below(ah_httpc *c, long n)
{
    if (n <= 0)
        return 0;
    pthread_mutex_lock(&c->mu);
    uint64_t r = splitmix64(&c->rng);
    pthread_mutex_unlock(&c->mu);
    return (long)(r % ((uint64_t)n + 1));
}

/* A wait before a retry of a request to `on` (the provider: block.h):
 * the thread's scheduler is told. false: it refused the wait (too many
 * wait on that provider already), and nothing was waited. */
static bool sleep_ms(long ms, const char *on)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    if (!ah_block_begin_on(on))
        return false;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    ah_block_end();
    return true;
}

/* What a request waits on, for its thread's scheduler (block.h): the
 * provider as its URL's scheme, host and port ("https://api.example.com:443",
 * the default port spelled out, the host in lower case: API.example.com is
 * the same provider). malloc'd; NULL when the URL does not parse (the wait
 * is then unnamed, never refused). */
static char *provider_of(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *on = NULL;
    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
        asprintf(&on, "%s://%s:%s", scheme, host, port) < 0)
        on = NULL;
    for (char *c = on != NULL ? on + strlen(scheme) + 3 : NULL; c != NULL && *c != '\0'; c++)
        *c = (char)tolower((unsigned char)*c);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return on;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    httpc_buf *b = userdata;
    size_t n = size * nmemb;
    if (n > b->max - b->len) {
        b->too_large = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 16384;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *nd = realloc(b->data, ncap);
        if (!nd)
            return 0;
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static char *str_replace_all(char *s, const char *needle, const char *with)
{
    size_t nl = strlen(needle), wl = strlen(with);
    if (nl == 0)
        return s;
    size_t count = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + nl, needle))
        count++;
    if (count == 0)
        return s;
    size_t sl = strlen(s);
    char *out = malloc(sl - count * nl + count * wl + 1);
    if (!out) {
        free(s);
        return NULL;
    }
    char *o = out;
    const char *p = s, *m;
    while ((m = strstr(p, needle)) != NULL) {
        memcpy(o, p, (size_t)(m - p));
        o += m - p;
        memcpy(o, with, wl);
        o += wl;
        p = m + nl;
    }
    strcpy(o, p);
    free(s);
    return out;
}

char *ah_url_escape(const char *s)
{
    if (s == NULL)
        return NULL;
    char *e = curl_easy_escape(NULL, s, 0);
    if (e == NULL)
        return NULL;
    char *out = strdup(e);
    curl_free(e);
    return out;
}

char *ah_redact(const char *s, const char *const *secrets)
{
    if (!s)
        return NULL;
    char *out = strdup(s);
    /* The longest first: a secret that holds a shorter one would otherwise
     * be left mostly readable around the shorter one's "***". */
    size_t n = 0;
    while (secrets && secrets[n])
        n++;
    bool *done = n > 0 ? calloc(n, sizeof *done) : NULL;
    if (n > 0 && done == NULL) {
        free(out);
        return NULL;
    }
    for (size_t round = 0; out && round < n; round++) {
        size_t pick = n;
        for (size_t i = 0; i < n; i++)
            if (!done[i] && (pick == n || strlen(secrets[i]) > strlen(secrets[pick])))
                pick = i;
        done[pick] = true;
        const char *sec = secrets[pick];
        if (!sec[0])
            continue;
        out = str_replace_all(out, sec, "***");
        /* Secrets also travel percent-escaped (form bodies, query strings). */
        char *esc = out ? curl_easy_escape(NULL, sec, 0) : NULL;
        if (esc && strcmp(esc, sec) != 0)
            out = str_replace_all(out, esc, "***");
        curl_free(esc);
    }
    free(done);
    return out;
}

static bool secret_param_name(const char *name, size_t len)
{
    static const char *const words[] = {"token", "secret", "password", "passwd", "key",
                                        "signature", "auth", "code", "sig"};
    char buf[64];
    if (len >= sizeof(buf))
        len = sizeof(buf) - 1;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)tolower((unsigned char)name[i]);
    buf[len] = '\0';
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strstr(buf, words[i]))
            return true;
    return false;
}

/* Masks a URL's user information (user:pass@host becomes ***@host):
 * credentials a URL may carry, whatever their names. */
static char *redact_userinfo(char *url)
{
    if (!url)
        return NULL;
    char *auth = strstr(url, "://");
    if (!auth)
        return url;
    auth += 3;
    size_t alen = strcspn(auth, "/?#");
    char *at = NULL; /* the last '@' of the authority: a password may hold one */
    for (char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p;
    if (!at)
        return url;
    size_t head = (size_t)(auth - url), tail = strlen(at);
    char *out = malloc(head + 3 + tail + 1);
    if (out) {
        memcpy(out, url, head);
        memcpy(out + head, "***", 3);
        memcpy(out + head + 3, at, tail + 1);
    }
    free(url);
    return out;
}

/* Masks the values of query parameters whose names look secret. */
static char *redact_query(char *url)
{
    if (!url)
        return NULL;
    char *q = strchr(url, '?');
    if (!q)
        return url;
    size_t ulen = strlen(url);
    char *out = malloc(ulen + 1 + 3 * (ulen / 2 + 1));
    if (!out) {
        free(url);
        return NULL;
    }
    size_t o = (size_t)(q - url) + 1;
    memcpy(out, url, o);
    const char *p = q + 1;
    while (*p) {
        const char *end = p + strcspn(p, "&#");
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq && secret_param_name(p, (size_t)(eq - p))) {
            size_t nl = (size_t)(eq - p) + 1;
            memcpy(out + o, p, nl);
            o += nl;
            memcpy(out + o, "***", 3);
            o += 3;
        } else {
            memcpy(out + o, p, (size_t)(end - p));
            o += (size_t)(end - p);
        }
        p = end;
        if (*p == '#') {
            strcpy(out + o, p);
            o += strlen(p);
            break;
        }
        if (*p == '&')
            out[o++] = *p++;
    }
    out[o] = '\0';
    free(url);
    return out;
}

/* Frees a header list, its lines wiped first: they carry the bearer and
 * whatever keys a plugin sent as headers. */
static void wipe_slist(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p != NULL; p = p->next)
        if (p->data != NULL)
            explicit_bzero(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

char *ah_httpc_shown_url(const char *url, const char *const *secrets)
{
    return redact_query(redact_userinfo(ah_redact(url, secrets)));
}

/* Redacts before cutting to the observed size, so no secret is left half. */
static char *redact_body(const char *s, size_t len, const char *const *secrets)
{
    if (!s)
        return NULL;
    char *copy = strndup(s, len); /* request bodies need not be NUL-terminated */
    if (!copy)
        return NULL;
    char *r = ah_redact(copy, secrets);
    explicit_bzero(copy, strlen(copy));
    free(copy);
    if (r && strlen(r) > HTTPC_OBSERVED_BODY_MAX)
        r[HTTPC_OBSERVED_BODY_MAX] = '\0';
    return r;
}

long ah_retry_after_ms(const char *value, long now_epoch)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (!*value)
        return -1;
    if (isdigit((unsigned char)*value)) {
        const char *p = value;
        long secs = 0;
        while (isdigit((unsigned char)*p)) {
            if (secs > 86400L * 365)
                secs = 86400L * 365; /* absurd values clamp; the caller caps anyway */
            else
                secs = secs * 10 + (*p - '0');
            p++;
        }
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p == '\0')
            return secs * 1000;
    }
    time_t t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return -1;
    if ((long)t <= now_epoch)
        return 0;
    long d = (long)t - now_epoch;
    if (d > 86400L * 365)
        d = 86400L * 365;
    return d * 1000;
}

void ah_http_response_free(ah_http_response *resp)
{
    if (!resp)
        return;
    uint32_t sz = resp->struct_size;
    free(resp->body);
    free(resp->content_type);
    /* A plugin's response may be shorter than ours (an older SDK): clear
     * only what it has. */
    memset(resp, 0, sz != 0 && sz < sizeof(*resp) ? sz : sizeof(*resp));
    resp->struct_size = sz;
}

static bool retryable_status(long st)
{
    return st == 429 || st == 500 || st == 502 || st == 503 || st == 504;
}

static bool retryable_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return true;
    default:
        return false;
    }
}

static const char *curl_short(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT: return "connection refused";
    case CURLE_OPERATION_TIMEDOUT: return "timed out";
    case CURLE_RECV_ERROR: return "connection reset while receiving";
    case CURLE_SEND_ERROR: return "connection reset while sending";
    case CURLE_GOT_NOTHING: return "connection closed without a response";
    case CURLE_PARTIAL_FILE: return "truncated response";
    case CURLE_COULDNT_RESOLVE_HOST: return "host not found";
    case CURLE_PEER_FAILED_VERIFICATION: return "TLS certificate verification failed";
    case CURLE_SSL_CONNECT_ERROR: return "TLS handshake failed";
    case CURLE_UNSUPPORTED_PROTOCOL: return "unsupported protocol (http and https only)";
    case CURLE_URL_MALFORMAT: return "malformed URL";
    default: return curl_easy_strerror(rc);
    }
}

static char *join_url(const char *base, const char *url)
{
    char *out = NULL;
    if (url[0] != '/')
        return strdup(url);
    if (!base || !*base)
        return NULL;
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    if (asprintf(&out, "%.*s%s", (int)bl, base, url) < 0)
        return NULL;
    return out;
}

static struct curl_slist *build_headers(const ah_http_request *req, bool *ok)
{
    struct curl_slist *list = NULL, *n;
    *ok = false;
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        n = curl_slist_append(list, req->headers[i]);
        if (!n)
            goto fail;
        list = n;
    }
    if (req->bearer && req->bearer[0]) {
        char *h = NULL;
        if (asprintf(&h, "Authorization: Bearer %s", req->bearer) < 0)
            goto fail;
        n = curl_slist_append(list, h);
        explicit_bzero(h, strlen(h));
        free(h);
        if (!n)
            goto fail;
        list = n;
    }
    /* No 100-continue round trip: providers answer small POSTs directly. */
    n = curl_slist_append(list, "Expect:");
    if (!n)
        goto fail;
    *ok = true;
    return n;
fail:
    curl_slist_free_all(list);
    return NULL;
}

/* One attempt's outcome. */
typedef struct httpc_result {
    CURLcode rc;
    long status;
    httpc_buf body;
    char *content_type;
    long retry_after_ms; /* -1: none */
    ah_http_outcome outcome;
    char errbuf[CURL_ERROR_SIZE];
    bool refused; /* not sent: the thread's scheduler refused the wait */
} httpc_result;

/* What a status says the provider did (see ah_http_outcome): a 2xx is done;
 * 500, 502 and 504 may come after the provider acted; anything else (429,
 * 503, a 4xx it explains, a redirect we do not follow) is refused work. */
static ah_http_outcome outcome_of_status(long st)
{
    if (st >= 200 && st < 300)
        return AH_OUTCOME_DONE;
    if (st == 500 || st == 502 || st == 504)
        return AH_OUTCOME_UNKNOWN;
    return AH_OUTCOME_NOT_DONE;
}

/* A failed transfer: a status that arrived before the failure decides (a
 * 2xx cut short is done); otherwise only failures before anything was sent
 * are certain. `sent` is how many request bytes went out. */
static ah_http_outcome outcome_of_failure(CURLcode rc, long status, curl_off_t sent)
{
    if (status > 0)
        return outcome_of_status(status);
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_FAILED_INIT:
        return AH_OUTCOME_NOT_DONE;
    case CURLE_OPERATION_TIMEDOUT:
        /* A connect timeout sent nothing; a timeout after the request went
         * out leaves the provider working on it, or done. */
        return sent <= 0 ? AH_OUTCOME_NOT_DONE : AH_OUTCOME_UNKNOWN;
    default:
        return AH_OUTCOME_UNKNOWN;
    }
}

static void result_clear(httpc_result *r)
{
    free(r->body.data);
    free(r->content_type);
    memset(r, 0, sizeof(*r));
}

#define SETOPT(h, o, v)                                                                    \
    do {                                                                                   \
        if (curl_easy_setopt((h), (o), (v)) != CURLE_OK)                                   \
            return CURLE_FAILED_INIT;                                                      \
    } while (0)

/* CURLOPT_OPENSOCKETFUNCTION: the address guard (ah_httpc_opts.addr_ok). */
static curl_socket_t open_guarded(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    ah_httpc *c = arg;
    if (purpose == CURLSOCKTYPE_IPCXN && !c->opts.addr_ok(c->opts.addr_ok_arg, &a->addr))
        return CURL_SOCKET_BAD;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static CURLcode setup(ah_httpc *c, CURL *h, const ah_http_request *req, const char *url,
                      struct curl_slist *headers, long timeout_ms, httpc_result *r)
{
    SETOPT(h, CURLOPT_URL, url);
    SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(h, CURLOPT_NOSIGNAL, 1L);
    SETOPT(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS,
           timeout_ms < HTTPC_MAX_CONNECT_MS ? timeout_ms : HTTPC_MAX_CONNECT_MS);
    /* Never configurable: TLS is always verified. */
    SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file)
        SETOPT(h, CURLOPT_CAINFO, c->ca_file);
    SETOPT(h, CURLOPT_HTTPHEADER, headers);
    SETOPT(h, CURLOPT_USERAGENT, "atshub/0.1");
    if (c->opts.addr_ok != NULL) {
        SETOPT(h, CURLOPT_OPENSOCKETFUNCTION, open_guarded);
        SETOPT(h, CURLOPT_OPENSOCKETDATA, c);
    }
    SETOPT(h, CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(h, CURLOPT_WRITEDATA, &r->body);
    SETOPT(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->opts.max_response);
    SETOPT(h, CURLOPT_ERRORBUFFER, r->errbuf);
    if (AH_HAS(req, flags) && (req->flags & AH_HTTP_NOT_IDEMPOTENT) != 0) {
        /* libcurl re-sends a request on a fresh connection when a reused one
         * turns out dead before any answer byte ("connection died, retrying
         * a fresh connect"), and the provider may have carried out the
         * first copy. A request that must not run twice therefore never
         * rides a reused connection, and leaves none behind. */
        SETOPT(h, CURLOPT_FRESH_CONNECT, 1L);
        SETOPT(h, CURLOPT_FORBID_REUSE, 1L);
    }

    const char *m = req->method && req->method[0] ? req->method : "GET";
    if (strcmp(m, "GET") == 0) {
        SETOPT(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(m, "HEAD") == 0) {
        SETOPT(h, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(m, "POST") != 0)
            SETOPT(h, CURLOPT_CUSTOMREQUEST, m);
        if (req->body || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
            strcmp(m, "PATCH") == 0) {
            SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE,
                   (curl_off_t)(req->body ? req->body_len : 0));
            SETOPT(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        }
    }
    return CURLE_OK;
}

static void attempt_once(ah_httpc *c, CURL *h, const ah_http_request *req, const char *url,
                         const char *on, struct curl_slist *headers, long timeout_ms,
                         size_t max, httpc_result *r)
{
    r->retry_after_ms = -1;
    r->body.max = max;
    r->outcome = AH_OUTCOME_NOT_DONE;
    r->rc = setup(c, h, req, url, headers, timeout_ms, r);
    if (r->rc != CURLE_OK)
        return;
    /* The provider's answer may take long: the thread's scheduler is told
     * (block.h), so that a slow provider holds no one else's work, and may
     * refuse: so many of its threads wait on this provider already that
     * the request is better not sent. */
    if (!ah_block_begin_on(on)) {
        r->refused = true;
        r->rc = CURLE_ABORTED_BY_CALLBACK;
        return;
    }
    r->rc = curl_easy_perform(h);
    ah_block_end();
    if (r->rc != CURLE_OK) {
        /* The status line may have arrived before the transfer failed. */
        long st = 0;
        curl_off_t sent = 0;
        if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st) != CURLE_OK)
            st = 0;
        if (curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK)
            sent = 1; /* unknown: assume it went out */
        r->status = st;
        r->outcome = outcome_of_failure(r->rc, st, sent);
        return;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    r->outcome = outcome_of_status(r->status);
    char *ct = NULL;
    if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
        r->content_type = strdup(ct);
    struct curl_header *hdr = NULL;
    if (curl_easy_header(h, "Retry-After", 0, CURLH_HEADER, -1, &hdr) == CURLHE_OK && hdr)
        r->retry_after_ms = ah_retry_after_ms(hdr->value, (long)time(NULL));
}

int ah_httpc_perform(ah_httpc *c, const ah_http_request *req, const char *base_url,
                     const char *const *secrets, ah_httpc_observer obs, void *obs_arg,
                     ah_http_response *resp, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (resp) {
        uint32_t sz = resp->struct_size;
        memset(resp, 0, sizeof(*resp));
        resp->struct_size = sz ? sz : (uint32_t)sizeof(*resp);
    }
    if (!c || !req || !req->url || !resp) {
        if (err)
            snprintf(err, errlen, "invalid request");
        return -1;
    }
    const char *method = req->method && req->method[0] ? req->method : "GET";
    char *url = join_url(base_url, req->url);
    if (!url) {
        if (err && req->url[0] == '/')
            snprintf(err, errlen, "relative URL %s without base_url", req->url);
        else if (err)
            snprintf(err, errlen, "out of memory");
        return -1;
    }
    char *on = provider_of(url); /* what the thread waits on (block.h) */

    /* Everything the observer sees goes through the same secret list. */
    size_t nsec = 0;
    while (secrets && secrets[nsec])
        nsec++;
    const char **all = calloc(nsec + 2, sizeof(*all));
    char *shown_url = NULL, *shown_req = NULL;
    bool hdr_ok = false;
    struct curl_slist *headers = NULL;
    CURL *h = NULL;
    int ret = -1;
    if (!all)
        goto oom;
    for (size_t i = 0; i < nsec; i++)
        all[i] = secrets[i];
    if (req->bearer && req->bearer[0])
        all[nsec] = req->bearer;
    shown_url = ah_httpc_shown_url(url, all);
    if (!shown_url)
        goto oom;
    if (obs && req->body) {
        shown_req = redact_body(req->body, req->body_len, all);
        if (!shown_req)
            goto oom;
    }
    headers = build_headers(req, &hdr_ok);
    if (!hdr_ok)
        goto oom;
    h = handle_get(c);
    if (!h)
        goto oom;

    /* A plugin's own figures, up to the host's most: 1000 attempts, or an
     * hour's timeout, held its thread (and the call's connection) that long. */
    long timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : c->opts.timeout_ms;
    if (timeout_ms > AH_HTTPC_MAX_TIMEOUT_MS)
        timeout_ms = AH_HTTPC_MAX_TIMEOUT_MS;
    int max_attempts = req->max_attempts > 0 ? req->max_attempts : c->opts.max_attempts;
    if (max_attempts > AH_HTTPC_MAX_ATTEMPTS)
        max_attempts = AH_HTTPC_MAX_ATTEMPTS;
    httpc_result last = {.rc = CURLE_OK};
    bool have_response = false;
    ah_http_outcome last_outcome = AH_OUTCOME_NOT_DONE;
    char last_err[CURL_ERROR_SIZE] = "";
    /* A request that must not run twice is repeated only when the provider
     * certainly did not act on it. */
    bool unsafe = AH_HAS(req, flags) && (req->flags & AH_HTTP_NOT_IDEMPOTENT) != 0;
    bool refused = false, retry_refused = false;
    int attempt;
    for (attempt = 1; attempt <= max_attempts; attempt++) {
        httpc_result r;
        memset(&r, 0, sizeof(r));
        double t0 = now_s();
        attempt_once(c, h, req, url, on, headers, timeout_ms, c->opts.max_response, &r);
        double dur = now_s() - t0;
        if (r.refused) {
            refused = true;
            snprintf(r.errbuf, sizeof r.errbuf,
                     "not sent: as many calls as [core] provider_threads allows already wait "
                     "for %s", on != NULL ? on : "that provider");
        }

        /* A write answered 2xx and then cut short was carried out: its
         * status (and what arrived of the body) is the answer, not an
         * error that a caller would take for "not done". */
        bool cut_done = r.rc != CURLE_OK && unsafe && r.outcome == AH_OUTCOME_DONE;
        bool got = r.rc == CURLE_OK || cut_done;
        if (!got)
            r.status = 0;
        bool retry = !r.refused && attempt < max_attempts &&
                     (unsafe ? r.outcome == AH_OUTCOME_NOT_DONE &&
                                   (got ? r.status == 429 || r.status == 503
                                        : r.rc == CURLE_COULDNT_CONNECT)
                             : (got ? retryable_status(r.status) : retryable_curl(r.rc)));
        long delay = 0;
        if (retry) {
            long cap = c->opts.backoff_ms;
            for (int i = 1; i < attempt && cap < c->opts.backoff_max_ms; i++)
                cap *= 2;
            if (cap > c->opts.backoff_max_ms)
                cap = c->opts.backoff_max_ms;
            delay = rand_below(c, cap);
            if (got && r.retry_after_ms >= 0)
                delay = r.retry_after_ms < c->opts.backoff_max_ms ? r.retry_after_ms
                                                                  : c->opts.backoff_max_ms;
        }

        if (obs) {
            char *shown_resp = got ? redact_body(r.body.data, r.body.len, all) : NULL;
            const char *msg = NULL;
            if (cut_done)
                msg = r.errbuf[0] ? r.errbuf : curl_easy_strerror(r.rc);
            else if (!got)
                msg = r.body.too_large ? "response too large"
                                       : (r.errbuf[0] ? r.errbuf : curl_easy_strerror(r.rc));
            ah_httpc_attempt a = {
                .method = method,
                .url = shown_url,
                .status = got ? r.status : 0,
                .error = msg,
                .duration_s = dur,
                .attempt = attempt,
                .retry_in_ms = retry ? (delay > 0 ? delay : 1) : 0,
                .retry_after_ms = got ? r.retry_after_ms : -1,
                .request_body = shown_req,
                .response_body = shown_resp,
            };
            obs(obs_arg, &a);
            free(shown_resp);
        }

        last_outcome = r.outcome;
        if (got) {
            result_clear(&last);
            last = r;
            have_response = true;
        } else {
            /* For a write, an earlier answer (a 503, say) is not the last
             * word: what happened to the last copy sent is. */
            if (unsafe) {
                result_clear(&last);
                have_response = false;
            }
            if (r.body.too_large || r.rc == CURLE_FILESIZE_EXCEEDED)
                snprintf(last_err, sizeof(last_err), "response larger than %zu bytes",
                         c->opts.max_response);
            else
                snprintf(last_err, sizeof(last_err), "%s",
                         r.refused ? r.errbuf : curl_short(r.rc));
            result_clear(&r);
        }
        if (!retry)
            break;
        if (delay > 0 && !sleep_ms(delay, on)) {
            /* Not retried: waiting for the retry is refused too. */
            retry_refused = true;
            break;
        }
    }
    if (attempt > max_attempts)
        attempt = max_attempts;
    if (AH_HAS(resp, outcome))
        resp->outcome = last_outcome;

    if (have_response) {
        resp->status = last.status;
        resp->body = last.body.data;
        resp->body_len = last.body.len;
        if (!resp->body) {
            resp->body = strdup("");
            if (!resp->body) {
                result_clear(&last);
                goto oom;
            }
        }
        resp->content_type = last.content_type;
        resp->attempts = attempt;
        last.body.data = NULL;
        last.content_type = NULL;
        result_clear(&last);
        ret = 0;
    } else {
        resp->attempts = attempt;
        if (err && refused && attempt == 1)
            snprintf(err, errlen, "%s %s: %s", method, shown_url, last_err);
        else if (err)
            snprintf(err, errlen, "%s %s: %s after %d attempt%s%s", method, shown_url, last_err,
                     attempt, attempt == 1 ? "" : "s",
                     retry_refused ? " (not retried: as many calls as [core] provider_threads "
                                     "allows already wait for that provider)"
                                   : "");
    }
    goto out;

oom:
    if (err)
        snprintf(err, errlen, "out of memory");
    ret = -1;
out:
    handle_put(c, h);
    wipe_slist(headers); /* Authorization: Bearer ..., a plugin's key headers */
    free(shown_req);
    free(shown_url);
    free(all);
    free(on);
    free(url);
    return ret;
}
