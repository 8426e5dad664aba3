/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operator console's files, login codes, sessions and cross-site
 * checks (console.h). Codes and session ids are kept only as SHA-256
 * hashes and compared in constant time; tables are small and fixed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "console.h"
#include "crypto.h"

typedef struct code_slot {
    char hash[AH_SHA256_HEX_LEN + 1]; /* "" when free */
    time_t expires;
} code_slot;

typedef struct session_slot {
    char hash[AH_SHA256_HEX_LEN + 1]; /* "" when free */
    char csrf[65];
    time_t expires;
} session_slot;

struct ah_console {
    pthread_mutex_t mu;
    code_slot codes[AH_CONSOLE_MAX_CODES];
    session_slot sessions[AH_CONSOLE_MAX_SESSIONS];
};

static time_t now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

ah_console *ah_console_new(void)
{
    ah_console *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

void ah_console_free(ah_console *c)
{
    if (c == NULL)
        return;
    pthread_mutex_destroy(&c->mu);
    explicit_bzero(c, sizeof *c);
    free(c);
}

int ah_console_issue_code(ah_console *c, char code[33])
{
    if (ah_random_hex(code, 16) != 0)
        return -1;
    char h[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex(code, strlen(code), h);
    time_t now = now_mono();
    pthread_mutex_lock(&c->mu);
    /* A free or expired slot, else the one that expires first. */
    code_slot *pick = &c->codes[0];
    for (size_t i = 0; i < AH_CONSOLE_MAX_CODES; i++) {
        code_slot *s = &c->codes[i];
        if (s->hash[0] == '\0' || s->expires <= now) {
            pick = s;
            break;
        }
        if (s->expires < pick->expires)
            pick = s;
    }
    memcpy(pick->hash, h, sizeof pick->hash);
    pick->expires = now + AH_CONSOLE_CODE_TTL_S;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* Consumes a code: true when it was issued, unexpired and unused. */
static bool take_code(ah_console *c, const char *code)
{
    if (code == NULL || strlen(code) != 32)
        return false;
    char h[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex(code, strlen(code), h);
    time_t now = now_mono();
    bool ok = false;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < AH_CONSOLE_MAX_CODES; i++) {
        code_slot *s = &c->codes[i];
        /* Every slot is compared, so the time says nothing of which matched. */
        bool match = s->hash[0] != '\0' && ah_ct_streq(s->hash, h);
        if (match && s->expires > now)
            ok = true;
        if (match)
            s->hash[0] = '\0'; /* single use, also when expired */
    }
    pthread_mutex_unlock(&c->mu);
    return ok;
}

/* Under c->mu: the live session of the request's cookie, or NULL. */
static session_slot *find_session(ah_console *c, const char *cookie)
{
    if (cookie == NULL || strlen(cookie) != 64)
        return NULL;
    char h[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex(cookie, strlen(cookie), h);
    time_t now = now_mono();
    session_slot *found = NULL;
    for (size_t i = 0; i < AH_CONSOLE_MAX_SESSIONS; i++) {
        session_slot *s = &c->sessions[i];
        if (s->hash[0] != '\0' && ah_ct_streq(s->hash, h) && s->expires > now)
            found = s;
    }
    return found;
}

/* A new session: its cookie value in id (64 hex). 0 or -1. */
static int new_session(ah_console *c, char id[65])
{
    char csrf[65];
    if (ah_random_hex(id, 32) != 0 || ah_random_hex(csrf, 32) != 0)
        return -1;
    char h[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex(id, strlen(id), h);
    time_t now = now_mono();
    pthread_mutex_lock(&c->mu);
    session_slot *pick = &c->sessions[0];
    for (size_t i = 0; i < AH_CONSOLE_MAX_SESSIONS; i++) {
        session_slot *s = &c->sessions[i];
        if (s->hash[0] == '\0' || s->expires <= now) {
            pick = s;
            break;
        }
        if (s->expires < pick->expires)
            pick = s; /* full: the oldest session is logged out */
    }
    memcpy(pick->hash, h, sizeof pick->hash);
    memcpy(pick->csrf, csrf, sizeof pick->csrf);
    pick->expires = now + AH_CONSOLE_SESSION_TTL_S;
    pthread_mutex_unlock(&c->mu);
    explicit_bzero(csrf, sizeof csrf);
    return 0;
}

void ah_console_headers(ah_http_exchange *ex)
{
    ah_ex_add_header(ex, "Content-Security-Policy",
                     "default-src 'self'; script-src 'self'; style-src 'self'; "
                     "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                     "base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
    ah_ex_add_header(ex, "X-Content-Type-Options", "nosniff");
    ah_ex_add_header(ex, "X-Frame-Options", "DENY");
    ah_ex_add_header(ex, "Referrer-Policy", "no-referrer");
    ah_ex_add_header(ex, "Cache-Control", "no-store");
}

static bool is_safe_method(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

/* For a state change made with the cookie: Sec-Fetch-Site and Origin say
 * the page that sent it is ours. */
static bool same_origin(ah_http_exchange *ex)
{
    const char *site = ah_ex_header(ex, "Sec-Fetch-Site");
    if (site != NULL && strcmp(site, "same-origin") != 0)
        return false;
    const char *origin = ah_ex_header(ex, "Origin");
    if (origin == NULL)
        return true;
    /* https: behind a TLS proxy that passes the Host on (the listener
     * itself speaks plain HTTP). */
    const char *host = ah_ex_header(ex, "Host");
    size_t skip = strncmp(origin, "http://", 7) == 0    ? 7
                  : strncmp(origin, "https://", 8) == 0 ? 8
                                                        : 0;
    return host != NULL && skip > 0 && strcasecmp(origin + skip, host) == 0;
}

ah_console_auth ah_console_check(ah_console *c, ah_http_exchange *ex)
{
    const char *cookie = ah_ex_cookie(ex, AH_CONSOLE_COOKIE);
    if (cookie == NULL)
        return AH_CONSOLE_NO_COOKIE;
    pthread_mutex_lock(&c->mu);
    session_slot *s = find_session(c, cookie);
    char csrf[65] = "";
    if (s != NULL)
        memcpy(csrf, s->csrf, sizeof csrf);
    pthread_mutex_unlock(&c->mu);
    if (csrf[0] == '\0') {
        ah_ex_error(ex, 401, "session_expired",
                    "the console session has expired: run 'atshub console' for a new login link");
        return AH_CONSOLE_REFUSED;
    }
    if (!is_safe_method(ah_ex_method(ex))) {
        const char *sent = ah_ex_header(ex, "X-CSRF-Token");
        bool ok = sent != NULL && ah_ct_streq(sent, csrf) && same_origin(ex);
        if (!ok) {
            explicit_bzero(csrf, sizeof csrf);
            ah_ex_error(ex, 403, "csrf_refused",
                        "a state change needs the console's X-CSRF-Token from the same origin");
            return AH_CONSOLE_REFUSED;
        }
    }
    explicit_bzero(csrf, sizeof csrf);
    return AH_CONSOLE_OK;
}

/* ------------------------------------------------------------------------ */
/* Handlers                                                                  */
/* ------------------------------------------------------------------------ */

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {{".html", "text/html; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"},
                 {".svg", "image/svg+xml"}};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot != NULL && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static void page(ah_http_exchange *ex, int status, const char *text)
{
    char body[1024];
    int n = snprintf(body, sizeof body,
                     "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<title>atshub console</title></head><body><p>%s</p></body></html>\n",
                     text);
    ah_console_headers(ex);
    ah_ex_respond(ex, status, "text/html; charset=utf-8", body, (size_t)n);
}

static void login(ah_console *c, ah_http_exchange *ex)
{
    if (!take_code(c, ah_ex_query(ex, "code"))) {
        page(ex, 401, "This login link is not valid: it was used already, has expired (links "
                      "last two minutes) or was mistyped. Run <code>atshub console</code> for "
                      "a new one.");
        return;
    }
    char id[65], cookie[160];
    if (new_session(c, id) != 0) {
        ah_ex_error(ex, 500, "internal_error", "no random bytes for a session");
        return;
    }
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d",
             AH_CONSOLE_COOKIE, id, AH_CONSOLE_SESSION_TTL_S);
    explicit_bzero(id, sizeof id);
    ah_ex_add_header(ex, "Set-Cookie", cookie);
    explicit_bzero(cookie, sizeof cookie);
    ah_ex_add_header(ex, "Location", "/console/");
    page(ex, 303, "Logged in: <a href=\"/console/\">open the console</a>.");
}

/* GET /console/session: the page's CSRF token (only its own origin can read
 * the answer). */
static void session(ah_console *c, ah_http_exchange *ex)
{
    pthread_mutex_lock(&c->mu);
    session_slot *s = find_session(c, ah_ex_cookie(ex, AH_CONSOLE_COOKIE));
    cJSON *o = NULL;
    if (s != NULL) {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "csrf", s->csrf);
        cJSON_AddNumberToObject(o, "expires_in_s", (double)(s->expires - now_mono()));
    }
    pthread_mutex_unlock(&c->mu);
    ah_console_headers(ex);
    if (o == NULL) {
        ah_ex_error(ex, 401, "unauthorized",
                    "not logged in: run 'atshub console' for a login link");
        return;
    }
    cJSON *d = cJSON_CreateObject();
    cJSON_AddItemToObject(d, "data", o);
    ah_ex_respond_json(ex, 200, d);
}

static void h_get(void *arg, ah_http_exchange *ex)
{
    ah_console *c = arg;
    const char *sub = ah_ex_subpath(ex);
    if (strcmp(ah_ex_path(ex), "/console") == 0) {
        ah_ex_add_header(ex, "Location", "/console/");
        page(ex, 308, "<a href=\"/console/\">/console/</a>");
        return;
    }
    if (strcmp(sub, "login") == 0) {
        login(c, ex);
        return;
    }
    if (strcmp(sub, "session") == 0) {
        session(c, ex);
        return;
    }
    const char *name = sub[0] == '\0' ? "index.html" : sub;
    for (size_t i = 0; i < ah_console_nassets; i++) {
        if (strcmp(ah_console_assets[i].name, name) == 0) {
            ah_console_headers(ex);
            ah_ex_respond(ex, 200, content_type(name), (const char *)ah_console_assets[i].data,
                          ah_console_assets[i].len);
            return;
        }
    }
    ah_console_headers(ex);
    ah_ex_error(ex, 404, "not_found", "no console file %s", ah_ex_path(ex));
}

/* POST /console/logout */
static void h_logout(void *arg, ah_http_exchange *ex)
{
    ah_console *c = arg;
    ah_console_headers(ex);
    if (ah_console_check(c, ex) != AH_CONSOLE_OK) {
        if (ah_ex_status(ex) == 0)
            ah_ex_error(ex, 401, "unauthorized", "not logged in");
        return;
    }
    pthread_mutex_lock(&c->mu);
    session_slot *s = find_session(c, ah_ex_cookie(ex, AH_CONSOLE_COOKIE));
    if (s != NULL)
        explicit_bzero(s, sizeof *s);
    pthread_mutex_unlock(&c->mu);
    char cookie[128];
    snprintf(cookie, sizeof cookie, "%s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
             AH_CONSOLE_COOKIE);
    ah_ex_add_header(ex, "Set-Cookie", cookie);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddItemToObject(d, "data", cJSON_CreateObject());
    ah_ex_respond_json(ex, 200, d);
}

int ah_console_register(ah_httpd *h, ah_console *c)
{
    if (ah_httpd_route(h, "GET", "/console", 0, h_get, c) != 0 ||
        ah_httpd_route(h, "GET", "/console/", AH_HTTPD_PREFIX, h_get, c) != 0 ||
        ah_httpd_route(h, "POST", "/console/logout", 0, h_logout, c) != 0)
        return -1;
    return 0;
}
