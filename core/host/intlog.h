/* SPDX-License-Identifier: Apache-2.0 */
/* The integration log: what crossed atshub's edges (inbound provider
 * routes, outbound provider calls), kept in the store with secrets
 * redacted, filterable by tenant, source, action, status and time. */
#ifndef AH_INTLOG_H
#define AH_INTLOG_H

#include <cjson/cJSON.h>

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
} ah_intlog_rec;

/** Appends one entry; failures are logged, never fatal for the caller. */
void ah_intlog_write(struct ah_core *core, const ah_intlog_rec *r);

/** JSON text with the values of secret-looking keys (api_key, api_secret,
 *  secret, password, token, access_token, refresh_token, client_secret,
 *  authorization...) replaced by "***", at any depth; non-JSON text is
 *  returned as "<n bytes, not JSON>". Bodies longer than 64 KiB are cut.
 *  malloc'd. */
char *ah_intlog_redact(const char *text, size_t len);
/** Same for a parsed body. */
char *ah_intlog_redact_json(const cJSON *body);

struct ah_log_entry;
/** An ah_log_cb that appends the entry as a JSON object to the cJSON
 *  array `arg` (for `atshub log --json` and GET /v1/log). */
void ah_intlog_entry_json(void *arg, const struct ah_log_entry *e);

#endif
