/* SPDX-License-Identifier: Apache-2.0 */
#include "oauth2.h"

#include "crypto.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

/* The lifetime of a token answered with none left (expires_in <= 0). */
#define OAUTH2_NO_LIFETIME_S 60
#define OAUTH2_DEFAULT_EXPIRES_S 3600

/* One cached token. Entries are reference counted because a fetch runs
 * without the lock: a forget/invalidate during it only unlinks the entry. */
typedef struct oauth2_entry {
    struct oauth2_entry *next;
    int64_t conn_id;
    char *token_url, *client_id, *scope;
    /* The client secret the token was fetched with, hashed: a token got
     * with a secret since rotated is never handed to calls made with the
     * new one (a call begun before the change may still fetch with the
     * old one). */
    char secret_sha[AH_SHA256_HEX_LEN + 1];
    char *access_token;  /* NULL: none */
    char *refresh_token; /* issued by the server; NULL: none */
    time_t renew_at; /* AH_OAUTH2_REFRESH_MARGIN_S before expiry, or half its life */
    bool fetching;
    bool linked;
    unsigned refs;
    unsigned long fetch_seq; /* bumped when a fetch ends */
    bool last_ok;
    int last_rc; /* the last fetch's failure: -1, or -2 (no answer) */
    char last_err[256];
} oauth2_entry;

struct ah_oauth2 {
    ah_httpc *httpc;
    time_t (*now_fn)(void *);
    void *now_arg;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a fetch ended */
    oauth2_entry *entries;
};

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void entry_free(oauth2_entry *e)
{
    free(e->token_url);
    free(e->client_id);
    free(e->scope);
    wipe_free(e->access_token);
    wipe_free(e->refresh_token);
    free(e);
}

ah_oauth2 *ah_oauth2_new(ah_httpc *httpc, time_t (*now_fn)(void *), void *now_arg)
{
    if (!httpc)
        return NULL;
    ah_oauth2 *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->httpc = httpc;
    o->now_fn = now_fn;
    o->now_arg = now_arg;
    if (pthread_mutex_init(&o->mu, NULL) != 0) {
        free(o);
        return NULL;
    }
    if (pthread_cond_init(&o->cv, NULL) != 0) {
        pthread_mutex_destroy(&o->mu);
        free(o);
        return NULL;
    }
    return o;
}

void ah_oauth2_free(ah_oauth2 *o)
{
    if (!o)
        return;
    oauth2_entry *e = o->entries;
    while (e) {
        oauth2_entry *n = e->next;
        entry_free(e);
        e = n;
    }
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

static time_t now(const ah_oauth2 *o)
{
    return o->now_fn ? o->now_fn(o->now_arg) : time(NULL);
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

static void secret_hash(const ah_oauth2_params *p, char out[AH_SHA256_HEX_LEN + 1])
{
    const char *sec = nz(p->client_secret);
    ah_sha256_hex(sec, strlen(sec), out);
}

static bool entry_matches(const oauth2_entry *e, int64_t conn_id, const ah_oauth2_params *p,
                          const char *sha)
{
    return e->conn_id == conn_id && strcmp(e->token_url, nz(p->token_url)) == 0 &&
           strcmp(e->client_id, nz(p->client_id)) == 0 && strcmp(e->scope, nz(p->scope)) == 0 &&
           strcmp(e->secret_sha, sha) == 0;
}

/* Caller holds the lock. */
static oauth2_entry *entry_find(ah_oauth2 *o, int64_t conn_id, const ah_oauth2_params *p,
                                const char *sha)
{
    for (oauth2_entry *e = o->entries; e; e = e->next)
        if (entry_matches(e, conn_id, p, sha))
            return e;
    return NULL;
}

static void entry_unlink(ah_oauth2 *o, oauth2_entry *e)
{
    for (oauth2_entry **pp = &o->entries; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            e->next = NULL;
            e->linked = false;
            return;
        }
    }
}

/* Caller holds the lock. */
static void entry_release(oauth2_entry *e)
{
    if (--e->refs == 0 && !e->linked)
        entry_free(e);
}

/* Appends "&name=escaped(value)" (no '&' first). */
static int form_add(char **form, const char *name, const char *value)
{
    char *esc = curl_easy_escape(NULL, value, 0);
    if (!esc)
        return -1;
    char *n = NULL;
    int rc = asprintf(&n, "%s%s%s=%s", *form ? *form : "", *form ? "&" : "", name, esc);
    explicit_bzero(esc, strlen(esc));
    curl_free(esc);
    if (rc < 0)
        return -1;
    wipe_free(*form);
    *form = n;
    return 0;
}

/* The token response carries fresh secrets: the observer sees the exchange
 * but never a successful answer's body. */
typedef struct oauth2_obs {
    ah_httpc_observer obs;
    void *arg;
} oauth2_obs;

static void observe(void *arg, const ah_httpc_attempt *a)
{
    const oauth2_obs *w = arg;
    ah_httpc_attempt copy = *a;
    if (copy.status >= 200 && copy.status < 300 && copy.response_body)
        copy.response_body = "[token response redacted]";
    w->obs(w->arg, &copy);
}

typedef struct token_result {
    long status; /* 0: no response */
    char *access_token;
    char *refresh_token;
    long expires_in;
} token_result;

/* A token goes into an Authorization header as it came: 1 to
 * AH_OAUTH2_MAX_TOKEN visible ASCII bytes. (RFC 6750's b64token is
 * narrower, but providers send more: "app|secret", colons.) A line break
 * would add headers of the provider's choosing to every request. */
static bool token_chars_ok(const char *t)
{
    size_t n = 0;
    for (; t[n] != '\0'; n++)
        if ((unsigned char)t[n] <= 0x20 || (unsigned char)t[n] >= 0x7f || n >= AH_OAUTH2_MAX_TOKEN)
            return false;
    return n > 0;
}

static int parse_token(const ah_http_response *r, token_result *out, char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(r->body, r->body_len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        snprintf(err, errlen, "token endpoint answered %ld with invalid JSON", r->status);
        return -1;
    }
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(root, "access_token");
    if (!cJSON_IsString(at) || !token_chars_ok(at->valuestring)) {
        cJSON_Delete(root);
        snprintf(err, errlen, "token endpoint answered %ld without a usable access_token",
                 r->status);
        return -1;
    }
    long expires = OAUTH2_DEFAULT_EXPIRES_S;
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
    if (cJSON_IsNumber(ex)) {
        /* Clamped before the cast: a provider's 1e300 must not be undefined
         * behaviour (ten years is the cap below anyway). */
        double d = ex->valuedouble;
        expires = d > 0 ? (d < 10.0 * 365 * 86400 ? (long)d : 10L * 365 * 86400) : 0;
    } else if (cJSON_IsString(ex)) {
        char *end;
        errno = 0;
        long v = strtol(ex->valuestring, &end, 10);
        if (!errno && end != ex->valuestring && *end == '\0')
            expires = v > 0 ? v : 0;
    }
    if (expires > 10L * 365 * 86400)
        expires = 10L * 365 * 86400;
    /* None left (0, or below): a minute's lifetime, not renewed on every
     * call (the token endpoint fetched for each request); a token that is
     * truly spent is refused by the provider, and renewed then. */
    if (expires <= 0)
        expires = OAUTH2_NO_LIFETIME_S;
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(root, "refresh_token");
    out->access_token = strdup(at->valuestring);
    out->refresh_token =
        cJSON_IsString(rt) && token_chars_ok(rt->valuestring) ? strdup(rt->valuestring) : NULL;
    out->expires_in = expires;
    explicit_bzero(at->valuestring, strlen(at->valuestring));
    if (cJSON_IsString(rt))
        explicit_bzero(rt->valuestring, strlen(rt->valuestring));
    cJSON_Delete(root);
    if (!out->access_token) {
        wipe_free(out->refresh_token);
        out->refresh_token = NULL;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Describes a refused token request with the server's OAuth2 error code;
 * the description may echo what we sent, so it is redacted. */
static void describe_refusal(const ah_http_response *r, const char *url,
                             const char *const *secrets, char *err, size_t errlen)
{
    const char *code = NULL, *desc = NULL;
    cJSON *root = r->body ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
    if (cJSON_IsObject(root)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "error");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "error_description");
        code = cJSON_IsString(c) ? c->valuestring : NULL;
        desc = cJSON_IsString(d) ? d->valuestring : NULL;
    }
    char *msg = NULL;
    int rc;
    if (code && desc)
        rc = asprintf(&msg, "token request to %s refused: HTTP %ld %s: %.200s", url, r->status,
                      code, desc);
    else if (code)
        rc = asprintf(&msg, "token request to %s refused: HTTP %ld %s", url, r->status, code);
    else
        rc = asprintf(&msg, "token request to %s refused: HTTP %ld", url, r->status);
    cJSON_Delete(root);
    char *red = rc >= 0 ? ah_redact(msg, secrets) : NULL;
    snprintf(err, errlen, "%s", red ? red : "token request refused");
    free(red);
    free(msg);
}

/* One token request (with the httpc's retries). Runs without the lock. */
static int fetch(ah_oauth2 *o, const ah_oauth2_params *p, const char *refresh,
                 const char *base_url, ah_httpc_observer obs, void *obs_arg,
                 token_result *out, char *err, size_t errlen)
{
    char *form = NULL;
    int rc = -1;
    memset(out, 0, sizeof(*out));
    if (refresh) {
        if (form_add(&form, "grant_type", "refresh_token") ||
            form_add(&form, "refresh_token", refresh))
            goto oom;
    } else if (form_add(&form, "grant_type", "client_credentials")) {
        goto oom;
    }
    if (form_add(&form, "client_id", p->client_id))
        goto oom;
    if (p->client_secret && form_add(&form, "client_secret", p->client_secret))
        goto oom;
    if (p->scope && p->scope[0] && form_add(&form, "scope", p->scope))
        goto oom;

    static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded",
                                          "Accept: application/json", NULL};
    const char *secrets[4] = {NULL, NULL, NULL, NULL};
    size_t ns = 0;
    if (p->client_secret && p->client_secret[0])
        secrets[ns++] = p->client_secret;
    if (refresh && refresh[0])
        secrets[ns++] = refresh;
    if (p->refresh_token && p->refresh_token[0] && p->refresh_token != refresh)
        secrets[ns++] = p->refresh_token;

    ah_http_request req = {
        .struct_size = sizeof(req),
        .method = "POST",
        .url = p->token_url,
        .headers = headers,
        .body = form,
        .body_len = strlen(form),
    };
    ah_http_response resp = {.struct_size = sizeof(resp)};
    oauth2_obs wrap = {obs, obs_arg};
    char herr[512];
    if (ah_httpc_perform(o->httpc, &req, base_url, secrets, obs ? observe : NULL, &wrap, &resp,
                         herr, sizeof(herr)) != 0) {
        char *red = ah_redact(herr, secrets);
        snprintf(err, errlen, "token request failed: %s", red ? red : "no response");
        free(red);
        rc = -2; /* no answer: not the credentials' fault */
        goto out;
    }
    out->status = resp.status;
    if (resp.status < 200 || resp.status > 299) {
        char *shown = ah_redact(p->token_url, secrets);
        describe_refusal(&resp, shown ? shown : "the token endpoint", secrets, err, errlen);
        free(shown);
        /* Busy or failing (after the client's retries), not a refusal of
         * the credentials: as no answer. */
        if (resp.status == 429 || resp.status >= 500)
            rc = -2;
    } else {
        rc = parse_token(&resp, out, err, errlen);
    }
    if (resp.body)
        explicit_bzero(resp.body, resp.body_len);
    ah_http_response_free(&resp);
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    wipe_free(form);
    return rc;
}

static int copy_out(const char *tok, char *out, size_t out_len, char *err, size_t errlen)
{
    size_t n = strlen(tok);
    if (n >= out_len) {
        snprintf(err, errlen, "access token (%zu bytes) does not fit the buffer (%zu)", n,
                 out_len);
        return -1;
    }
    memcpy(out, tok, n + 1);
    return 0;
}

int ah_oauth2_token(ah_oauth2 *o, int64_t conn_id, const ah_oauth2_params *p,
                    const char *base_url, ah_httpc_observer obs, void *obs_arg,
                    char *out, size_t out_len, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (!o || !p || !p->token_url || !p->token_url[0] || !p->client_id || !out ||
        out_len == 0) {
        snprintf(err, errlen, "oauth2: token_url, client_id and an output buffer are required");
        return -1;
    }

    char sha[AH_SHA256_HEX_LEN + 1];
    secret_hash(p, sha);
    pthread_mutex_lock(&o->mu);
    oauth2_entry *e = entry_find(o, conn_id, p, sha);
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (e) {
            e->conn_id = conn_id;
            memcpy(e->secret_sha, sha, sizeof e->secret_sha);
            e->token_url = strdup(p->token_url);
            e->client_id = strdup(p->client_id);
            e->scope = strdup(nz(p->scope));
        }
        if (!e || !e->token_url || !e->client_id || !e->scope) {
            if (e)
                entry_free(e);
            pthread_mutex_unlock(&o->mu);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        e->linked = true;
        e->next = o->entries;
        o->entries = e;
    }
    e->refs++;

    int rc = -1;
    for (;;) {
        if (e->access_token && now(o) < e->renew_at) {
            rc = copy_out(e->access_token, out, out_len, err, errlen);
            break;
        }
        if (e->fetching) {
            /* Someone is fetching this key: take their outcome, not a new fetch. */
            unsigned long seq = e->fetch_seq;
            while (e->fetching)
                pthread_cond_wait(&o->cv, &o->mu);
            if (e->fetch_seq != seq) {
                if (e->last_ok && e->access_token)
                    rc = copy_out(e->access_token, out, out_len, err, errlen);
                else if (!e->last_ok) {
                    snprintf(err, errlen, "%s", e->last_err);
                    rc = e->last_rc;
                } else {
                    continue; /* invalidated meanwhile */
                }
                break;
            }
            continue;
        }

        e->fetching = true;
        char *refresh = NULL;
        const char *use = e->refresh_token ? e->refresh_token : p->refresh_token;
        if (use && use[0] && !(refresh = strdup(use))) {
            e->fetching = false;
            snprintf(err, errlen, "out of memory");
            pthread_cond_broadcast(&o->cv);
            break;
        }
        time_t t0 = now(o);
        pthread_mutex_unlock(&o->mu);

        token_result tr;
        int frc = fetch(o, p, refresh, base_url, obs, obs_arg, &tr, err, errlen);
        bool refresh_refused = false;
        if (frc != 0 && refresh && (tr.status == 400 || tr.status == 401)) {
            /* The refresh token is dead: start over with the client's own
             * credentials rather than failing until someone re-authorises. */
            refresh_refused = true;
            frc = fetch(o, p, NULL, base_url, obs, obs_arg, &tr, err, errlen);
        }

        pthread_mutex_lock(&o->mu);
        e->fetching = false;
        e->fetch_seq++;
        e->last_ok = frc == 0;
        if (frc == 0) {
            wipe_free(e->access_token);
            e->access_token = tr.access_token;
            /* A token living 5 minutes or less (a common lifetime) would
             * always be within the margin: renewed on every call. */
            long margin = tr.expires_in / 2 < AH_OAUTH2_REFRESH_MARGIN_S ? tr.expires_in / 2
                                                                         : AH_OAUTH2_REFRESH_MARGIN_S;
            e->renew_at = t0 + (time_t)(tr.expires_in - margin);
            if (tr.refresh_token) {
                wipe_free(e->refresh_token);
                e->refresh_token = tr.refresh_token;
            } else if (refresh_refused) {
                wipe_free(e->refresh_token);
                e->refresh_token = NULL;
            }
            e->last_err[0] = '\0';
            rc = copy_out(e->access_token, out, out_len, err, errlen);
        } else {
            snprintf(e->last_err, sizeof(e->last_err), "%s", err);
            e->last_rc = frc < 0 ? frc : -1;
            rc = e->last_rc;
            wipe_free(tr.access_token);
            wipe_free(tr.refresh_token);
        }
        pthread_cond_broadcast(&o->cv);
        wipe_free(refresh);
        break;
    }
    entry_release(e);
    pthread_mutex_unlock(&o->mu);
    return rc;
}

void ah_oauth2_invalidate(ah_oauth2 *o, int64_t conn_id, const ah_oauth2_params *p)
{
    ah_oauth2_invalidate_token(o, conn_id, p, NULL);
}

void ah_oauth2_invalidate_token(ah_oauth2 *o, int64_t conn_id, const ah_oauth2_params *p,
                                const char *refused)
{
    if (!o || !p || !p->token_url || !p->client_id)
        return;
    char sha[AH_SHA256_HEX_LEN + 1];
    secret_hash(p, sha);
    pthread_mutex_lock(&o->mu);
    oauth2_entry *e = entry_find(o, conn_id, p, sha);
    /* A concurrent call may have renewed the token since `refused` was
     * handed out: forgetting its fresh one would cost a needless fetch. */
    if (e && (refused == NULL ||
              (e->access_token != NULL && strcmp(e->access_token, refused) == 0))) {
        /* The refresh token stays: the provider refused the access token. */
        wipe_free(e->access_token);
        e->access_token = NULL;
        e->renew_at = 0;
    }
    pthread_mutex_unlock(&o->mu);
}

void ah_oauth2_forget_conn(ah_oauth2 *o, int64_t conn_id)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->mu);
    oauth2_entry *e = o->entries;
    while (e) {
        oauth2_entry *n = e->next;
        if (e->conn_id == conn_id) {
            entry_unlink(o, e);
            if (e->refs == 0)
                entry_free(e);
            else {
                wipe_free(e->access_token); /* its fetcher frees the entry */
                e->access_token = NULL;
            }
        }
        e = n;
    }
    pthread_mutex_unlock(&o->mu);
}
