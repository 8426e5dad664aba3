/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CareerBuilder plugin's internal interfaces, shared by its source files
 * and by tests/unit/check_cb_validate.c, which compiles them directly. None
 * of this is part of the SDK; only the entry symbol is exported from the .so.
 *
 * cb_validate.c is pure (cJSON and libc only): the seed's field table and
 * rules. cb_api.c holds the three capability operations and the HTTP
 * exchange with CareerBuilder; cb_push.c turns status events of the tenant's
 * other connections into CareerBuilder statuses.
 */
#ifndef AH_CB_H
#define AH_CB_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <atshub/plugin.h>
#include <atshub/util.h>
#include <cjson/cJSON.h>

/* ------------------------------------------------------------------------ */
/* The seed's field table (cb_validate.c)                                   */
/* ------------------------------------------------------------------------ */

/** One field of a candidate status: its name, maximum length in characters
 *  (0: not a String(n), i.e. status_date) and whether the seed requires it. */
typedef struct cb_field {
    const char *name;
    size_t max_len;
    bool required;
} cb_field;

/** The table, in the seed's order, and its length. */
extern const cb_field cb_status_fields[];
extern const size_t cb_status_nfields;

#define CB_MAX_ACCOUNT 20
#define CB_MAX_EMAIL 255
#define CB_MAX_VENDOR_KEY 20
#define CB_MAX_CLIENT 20
#define CB_MAX_REQUISITION_ID 1024
#define CB_MAX_REQUISITION_TITLE 256
#define CB_MAX_LEVEL_ID 64
#define CB_MAX_STATUS 100
#define CB_MAX_STATUS_LEVEL 20
#define CB_MAX_STATUS_DETAIL 4096
/** Most emails or requisition ids one statuses.query may carry. */
#define CB_MAX_QUERY_ITEMS 100
/** Largest results_per_page atshub asks for (and the simulator serves). */
#define CB_MAX_PER_PAGE 100

/** Cuts s (in place) to at most max_chars UTF-8 characters. */
void cb_utf8_truncate(char *s, size_t max_chars);

/** True when s is exactly "YYYY-MM-DDTHH:MM:SSZ" with a real calendar date
 *  and time (leap years honoured, seconds 00..59). On true, *out (may be
 *  NULL) receives the instant. */
bool cb_date_parse(const char *s, time_t *out);
/** Converts an ISO-8601 time as sources write it ("YYYY-MM-DD[T ]HH:MM:SS",
 *  optional fraction, optional "Z" or "+HH:MM"/"+HHMM"/"+HH" offset; no
 *  offset means UTC) to CareerBuilder's "YYYY-MM-DDTHH:MM:SSZ" in out (at
 *  least 21 bytes). False when s is not such a time. */
bool cb_date_to_utc(const char *s, char *out, size_t outlen);

/**
 * Validates a status object exactly as the seed's field table and rules
 * say: required fields, every maximum length, the UTC date format,
 * status_level candidate or application (any case), application requires
 * requisition_id, candidate carries neither requisition_id nor
 * requisition_title; every member a string (null counts as absent for the
 * optional ones); no member outside the table. Each violation gets its own
 * message naming the field ("candidate_email is longer than 255
 * characters"); all of them are written to err joined by "; ". Returns the
 * number of violations (0: valid).
 */
int cb_validate_status(const cJSON *st, char *err, size_t errlen);

/**
 * Validates the body of statuses.query: exactly one of "candidate_email"
 * (alias "emails") or "requisition_id" (alias "requisition_ids"), a
 * non-empty list of at most CB_MAX_QUERY_ITEMS strings within the field's
 * maximum length; optional "status_date" (UTC format); optional "account"
 * (String(20)). On success *list_key is "candidate_email" or
 * "requisition_id" and *list the list (borrowed from body). Returns the
 * number of violations, as cb_validate_status.
 */
int cb_validate_query(const cJSON *body, const char **list_key, const cJSON **list, char *err,
                      size_t errlen);

/* ------------------------------------------------------------------------ */
/* Per-connection context (cb.c)                                            */
/* ------------------------------------------------------------------------ */

typedef struct cb_conn {
    char account[CB_MAX_ACCOUNT + 1];
    char vendor_key[CB_MAX_VENDOR_KEY + 1];
    char client[CB_MAX_CLIENT + 1];
    cJSON *status_map;    /* object: source status key -> CareerBuilder status */
    bool push;            /* subscribe-driven pushes enabled */
    long candidate_wait_s; /* how long an application waits for its candidate */
} cb_conn;

/** Parses the status_map setting: a JSON object whose values are strings of
 *  at most CB_MAX_STATUS characters. NULL with a message in err otherwise. */
cJSON *cb_parse_status_map(const char *text, char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* The operations (cb_api.c) and the push (cb_push.c)                       */
/* ------------------------------------------------------------------------ */

/** statuses.put: body is the seed's status object; account, vendor_key and
 *  client default to the connection's settings. Replies {"message":
 *  CareerBuilder's answer, "status": the status as sent}. */
ah_result cb_op_put(ah_call *call, const cJSON *body, cJSON **reply);
/** statuses.get: {"candidate_email", "results_per_page"?, "status_date"?,
 *  "account"?}; follows every page. Replies {"data": [...], "pages": n}. */
ah_result cb_op_get(ah_call *call, const cJSON *body, cJSON **reply);
/** Settles a statuses.put that answered outcome_unknown (ah_op_write.settle):
 *  reads the candidate's statuses back, never sends. */
ah_result cb_settle_put(ah_call *call, const cJSON *body, cJSON **reply);
/** statuses.query: see cb_validate_query. Replies {"data": [...]}. */
ah_result cb_op_query(ah_call *call, const cJSON *body, cJSON **reply);

/** How a send ended, for the push's decision to retry or drop. */
typedef enum cb_send_result {
    CB_SENT = 0,       /* 2xx */
    CB_REFUSED = 1,    /* CareerBuilder refused the status (4xx): retrying will not help */
    CB_TRANSIENT = 2,  /* no answer, 429, 5xx or no token: try again later */
    /* Sent, its answer lost, and CareerBuilder cannot be read back now:
     * described as outcome_unknown (502). Sending it again would at worst
     * store the same whole status twice. */
    CB_UNKNOWN = 3,
} cb_send_result;

/**
 * Sends one validated status (PUT /corporate/CandidateStatus), flagged
 * AH_HTTP_NOT_IDEMPOTENT: CareerBuilder records every PUT it accepts, so
 * the host never sends it twice. When the answer says nothing (lost, a
 * 500/502/504), the candidate's statuses are read back instead: the same
 * key with the same status and date is CB_SENT; absent is CB_TRANSIENT
 * (not stored, safe to send again); unreadable is CB_UNKNOWN. A 2xx whose
 * body was cut short is CB_SENT. max_attempts is handed to host->http (0:
 * host default). On failure the reason is described with host->fail. The
 * token is renewed once after a 401.
 */
cb_send_result cb_send_status(ah_call *call, const cJSON *status, int max_attempts,
                              char **answer);

/** Whether CareerBuilder holds `status` (the same key, status and date):
 *  the candidate's statuses are read back (every page). 1 stored, 0 not
 *  stored, -1 cannot tell. Sends nothing. */
int cb_status_stored(ah_call *call, const cJSON *status);

/** Fills account, vendor_key and client of st from the connection when
 *  absent, and lower-cases status_level. False on allocation failure. */
bool cb_apply_defaults(const cb_conn *c, cJSON *st);

/** The event subscriptions (terminated by {NULL}). */
extern const ah_subscription cb_subscriptions[];

#endif
