/* SPDX-License-Identifier: Apache-2.0 */
/* The integration log: what crossed atshub's edges (inbound provider
 * routes, outbound provider calls), kept in the store with secrets
 * redacted, filterable by tenant, source, action, status and time. */
#ifndef AH_INTLOG_H
#define AH_INTLOG_H

#include <cjson/cJSON.h>
#include <stdbool.h>

struct ah_core;

typedef struct ah_intlog_rec {
    const char *tenant;
    const char *source;  /* connection name, or "unauthenticated" */
    const char *plugin;
    const char *action;  /* REQUEST, RESPONSE, ERROR, OUTBOUND */
    const char *method;
    const char *path;
    int status;
    double duration_s;
    const char *body;    /* already redacted */
    const char *correlation_id;
    /* An inbound exchange: this entry is its answer (RESPONSE or ERROR),
     * and its REQUEST entry, body request_body (already redacted; may be
     * NULL), goes with it in one store row (ah_log_entry.with_request). */
    bool with_request;
    const char *request_body;
} ah_intlog_rec;

/** The actions an entry may have, as a filter's help and errors name them. */
#define AH_INTLOG_ACTIONS "REQUEST, RESPONSE, ERROR, ERROR_SUPPRESSED, OUTBOUND or OUTBOUND_ERROR"
/** Whether action is one of AH_INTLOG_ACTIONS (exactly, as stored): a
 *  filter on another matches nothing, which is the caller's mistake. */
bool ah_intlog_action_valid(const char *action);

/** Appends one entry (two with with_request); failures are logged, never
 *  fatal for the caller. */
void ah_intlog_write(struct ah_core *core, const ah_intlog_rec *r);

/** JSON text with the values of secret-looking keys (api_key, api_secret,
 *  secret, password, token, access_token, refresh_token, client_secret,
 *  authorization...) replaced by "***", at any depth; non-JSON text is
 *  returned as "<n bytes, not JSON>". Bodies longer than 64 KiB are cut.
 *  malloc'd. */
char *ah_intlog_redact(const char *text, size_t len);
/** As ah_intlog_redact, and *tree (when tree is not NULL) gets the parse
 *  of the text the redaction made (NULL when it is not JSON or is empty),
 *  unchanged, the caller's to free: a caller that parses the body too uses
 *  it instead. */
char *ah_intlog_redact_parsed(const char *text, size_t len, cJSON **tree);
/** Same for a parsed body. */
char *ah_intlog_redact_json(const cJSON *body);
/** Same, given the body already printed unformatted (`printed`, or NULL):
 *  when nothing needs hiding the log's copy is that text, not printed
 *  again. */
char *ah_intlog_redact_json_text(const cJSON *body, const char *printed);

struct ah_log_entry;
/** An ah_log_cb that appends the entry as a JSON object to the cJSON
 *  array `arg` (for `atshub log --json` and GET /v1/log). */
void ah_intlog_entry_json(void *arg, const struct ah_log_entry *e);

/* --- requests that failed authentication --------------------------------
 * Anyone can send them, so they must not let anyone fill the store: they
 * are logged without their request body, and at most
 * AH_INTLOG_UNAUTH_PER_MIN of them per client address per minute, then one
 * summary entry for the rest of that minute. */

#define AH_INTLOG_UNAUTH_PER_MIN 10
/* And at most this many from all addresses together (many addresses, e.g.
 * an IPv6 prefix, must not get around the per-address limit): then one
 * summary, and nothing more until the minute ends. */
#define AH_INTLOG_UNAUTH_ALL_PER_MIN 600

typedef struct ah_intlog_guard ah_intlog_guard;
/** An empty guard; NULL when out of memory. */
ah_intlog_guard *ah_intlog_guard_new(void);
/** NULL is allowed. */
void ah_intlog_guard_free(ah_intlog_guard *g);

typedef enum {
    AH_INTLOG_UNAUTH_LOG,     /* log this request */
    AH_INTLOG_UNAUTH_SUMMARY, /* the first one over the limit: log a summary */
    AH_INTLOG_UNAUTH_DROP,    /* over the limit, summary already written */
} ah_intlog_unauth;

/** Counts one failed unauthenticated request from client address `ip`
 *  (NULL or "": one shared bucket) and says whether to log it, against its
 *  address's limit and the limit of all addresses. Thread-safe; a full
 *  table forgets its oldest address. */
ah_intlog_unauth ah_intlog_unauth_admit(struct ah_core *core, const char *ip);

/** Deletes integration log entries older than [core] log_retention_days
 *  (the daemon's ticker calls it). */
void ah_intlog_prune(struct ah_core *core);

#endif
