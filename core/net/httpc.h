/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Outbound HTTP on libcurl, for plugins (through the host API) and the core.
 * Timeouts, retries with exponential backoff and full jitter on 429, 5xx and
 * connection errors, Retry-After honoured (seconds or HTTP date, capped),
 * TLS verification always on. Each attempt is reported to an optional
 * observer (the integration log) with secrets redacted.
 */
#ifndef AH_HTTPC_H
#define AH_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <atshub/plugin.h> /* ah_http_request, ah_http_response */

typedef struct ah_httpc ah_httpc;

typedef struct ah_httpc_attempt {
    const char *method;
    const char *url;      /* query values that look secret are redacted */
    long status;          /* 0: no response */
    const char *error;    /* curl's message when no response, else NULL */
    double duration_s;
    int attempt;          /* 1-based */
    long retry_in_ms;     /* 0: no further attempt */
    long retry_after_ms;  /* the response's Retry-After (uncapped); -1: none */
    const char *request_body;  /* redacted copy, may be NULL */
    const char *response_body; /* may be NULL */
} ah_httpc_attempt;

typedef void (*ah_httpc_observer)(void *arg, const ah_httpc_attempt *a);

/** The most a request may ask for ([outbound]'s ranges): a request's own
 *  max_attempts and timeout_ms (a plugin's) are capped at these. */
#define AH_HTTPC_MAX_ATTEMPTS 10
#define AH_HTTPC_MAX_TIMEOUT_MS 600000L

typedef struct ah_httpc_opts {
    long timeout_ms;      /* default per attempt */
    int max_attempts;     /* default */
    long backoff_ms;      /* first backoff */
    long backoff_max_ms;  /* cap for backoff and for Retry-After */
    size_t max_response;  /* bytes; larger responses fail (default 64 MiB) */
    uint64_t seed;        /* jitter PRNG seed (0: random) */
    const char *ca_file;  /* extra CA bundle (tests), NULL: system */
    /** When set, called with every address the client is about to connect
     *  to, after name resolution, just before the connect: false refuses it
     *  (the attempt fails as if unreachable). Checking here, rather than
     *  the name beforehand, is what stops DNS rebinding. */
    bool (*addr_ok)(void *arg, const struct sockaddr *sa);
    void *addr_ok_arg;
} ah_httpc_opts;

ah_httpc *ah_httpc_new(const ah_httpc_opts *opts);
void ah_httpc_free(ah_httpc *c);

/**
 * Performs req. `base_url` (may be NULL) prefixes a url that starts with '/'.
 * `secrets` (NULL-terminated, may be NULL) are strings redacted from what the
 * observer sees. Fills *resp (free with ah_http_response_free). Returns 0
 * when a response was received (any status), -1 when none could be had
 * (err says why, e.g. "connection refused after 4 attempts").
 *
 * resp->outcome (when resp->struct_size covers it) is the ah_http_outcome of
 * the last attempt, either way. A request flagged AH_HTTP_NOT_IDEMPOTENT is
 * retried only while its outcome is NOT_DONE (refused connection, 429,
 * 503), goes on a fresh connection that is closed after it (libcurl would
 * re-send it on a reused connection found dead), and a 2xx cut short is a
 * response (0, DONE) with what arrived of the body.
 */
int ah_httpc_perform(ah_httpc *c, const ah_http_request *req, const char *base_url,
                     const char *const *secrets, ah_httpc_observer obs, void *obs_arg,
                     ah_http_response *resp, char *err, size_t errlen);
void ah_http_response_free(ah_http_response *resp);

/** Parses a Retry-After value (delta seconds or IMF-fixdate) relative to
 *  now_epoch; milliseconds to wait, or -1 when unparsable. */
long ah_retry_after_ms(const char *value, long now_epoch);

/** Replaces every occurrence of each secret in s (in place) with "***" and
 *  returns a malloc'd copy. */
char *ah_redact(const char *s, const char *const *secrets);

/** url as ah_httpc_perform shows it in err and to its observer: secrets
 *  redacted (ah_redact), user information and the values of query
 *  parameters whose names look secret masked. malloc'd; NULL when out of
 *  memory. */
char *ah_httpc_shown_url(const char *url, const char *const *secrets);

/** `s` percent-escaped for a URL path segment or query value, by libcurl:
 *  every byte but the RFC 3986 unreserved ones (A-Z a-z 0-9 - . _ ~) as
 *  %XX. malloc'd (free()); NULL for NULL or when out of memory. The host
 *  API's url_escape, in the daemon and in a plugin's process alike. */
char *ah_url_escape(const char *s);

#endif
