/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TopCV plugin internals, shared by its source files (never installed).
 * The wire protocol and every choice the seed leaves open are in README.md.
 *
 *   topcv.c      descriptor, settings, connection life cycle (configure,
 *                disconnect, status)
 *   tc_util.c    JSON helpers, signed TopCV API calls, connection records
 *   tc_posting.c the TopCV job form, posting, updating, linking, listing;
 *                notices list
 *   tc_webhook.c the webhook route: signature check, approval notices
 *   tc_cv.c      CVs: candidates, applications, title matching, Pending pool
 */
#ifndef TC_TOPCV_H
#define TC_TOPCV_H

#include <stdbool.h>
#include <stddef.h>

#include <atshub/plugin.h>
#include <atshub/util.h>

/* Where TopCV delivers webhooks: the path, then the connection's token. */
#define TC_WEBHOOK_PATH "/integrations/topcv/webhook/"
/* How far a webhook's timestamp may be from our clock, in seconds. */
#define TC_REPLAY_WINDOW_S 300
/* Record types this plugin keeps for its connection. */
#define TC_POSTING "posting"
#define TC_NOTICE "notice"
#define TC_PENDING "pending_candidate"
#define TC_ID_LEN 64
/* "atshub-<sequence>-<job id>": the reference sent with each publish. */
#define TC_REF_LEN 96

/* --- tc_util.c ------------------------------------------------------------ */

/** The string member `key` of obj, or NULL. */
const char *tc_str(const cJSON *obj, const char *key);
/** Member `key` of obj as text: a string as is, a number printed into buf;
 *  NULL when absent or of another type. */
const char *tc_text(const cJSON *obj, const char *key, char *buf, size_t len);
/** Both credentials are set. */
bool tc_configured(const ah_call *call);
/** An ISO 8601 time "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)" as
 *  milliseconds since 1970 (UTC); false when `s` is not one. */
bool tc_time_ms(const char *s, long long *ms);

/** A signed TopCV API call with explicit credentials (configure checks a
 *  pair before saving it). `body` may be NULL. On AH_OK *status is the HTTP
 *  status and *out (may be NULL) the parsed JSON answer (NULL when not
 *  JSON); the caller frees it. attempts: 0 host default, 1 no retry.
 *  *outcome (may be NULL) receives the host's outcome class either way. */
ah_result tc_api_with(ah_call *call, const char *token, const char *secret, const char *method,
                      const char *path, const cJSON *body, int attempts, long *status,
                      cJSON **out, ah_http_outcome *outcome);
/** tc_api_with with the connection's saved credentials; fails with
 *  `not_configured` (409) when there are none. */
ah_result tc_api(ah_call *call, const char *method, const char *path, const cJSON *body,
                 int attempts, long *status, cJSON **out);
/** tc_api that also tells what the call did at TopCV (outcome may be NULL):
 *  the host's outcome class, AH_OUTCOME_NONE from a host that has none.
 *  Every call but a GET is sent AH_HTTP_NOT_IDEMPOTENT. */
ah_result tc_api_outcome(ah_call *call, const char *method, const char *path, const cJSON *body,
                         int attempts, long *status, cJSON **out, ah_http_outcome *outcome);
/** Fails the call with a clear error for an unexpected TopCV answer. */
ah_result tc_api_error(ah_call *call, const char *what, long status, const cJSON *answer);

/** Upserts a record of this connection; id_out (TC_ID_LEN) may be NULL. */
ah_result tc_put(ah_call *call, const char *type, const char *remote_id, const cJSON *raw,
                 const cJSON *fields, char *id_out, int *changed);
/** This connection's records of `type` (array, transferred), oldest first;
 *  NULL with the call failed when the store does not answer. */
cJSON *tc_list(ah_call *call, const char *type);
/** A record of this connection by atshub id and type, or NULL. */
cJSON *tc_by_id(ah_call *call, const char *type, const char *id);
/** The tenant's job with atshub id `id` (or ERP job_id), or NULL. */
cJSON *tc_job(ah_call *call, const char *id);
/** Stores a notice (idempotent by event id). */
ah_result tc_notice(ah_call *call, const char *event_id, const char *kind, const char *message,
                    const char *topcv_id, const char *ref);
/** Publishes `topic` with {"id","remote_id","type","connection"} plus the
 *  members of extra (transferred, may be NULL). A failure is logged: the
 *  records it describes are committed. */
void tc_publish(ah_call *call, const char *topic, const char *id, const char *remote_id,
                const char *type, cJSON *extra);

/* --- tc_posting.c --------------------------------------------------------- */

/** Fills TopCV's job form from a job record's normalised fields and
 *  `overrides` (may be NULL; already validated). Transferred. */
cJSON *tc_form_fill(const cJSON *job_fields, const cJSON *overrides);
/** TopCV's required fields absent from `form`, as an array of names. */
cJSON *tc_form_missing(const cJSON *form);
/** Checks an overrides object: known fields, right types. 0, or -1 with a
 *  message in err. */
int tc_overrides_check(const cJSON *overrides, char *err, size_t len);

/* Settle functions (ah_op_write.settle): read TopCV back, never send. */
ah_result tc_settle_publish(ah_call *call, const cJSON *body, cJSON **reply);
ah_result tc_settle_update(ah_call *call, const cJSON *body, cJSON **reply);
ah_result tc_op_publish(ah_call *call, const cJSON *body, cJSON **reply);
ah_result tc_op_update(ah_call *call, const cJSON *body, cJSON **reply);
ah_result tc_op_link(ah_call *call, const cJSON *body, cJSON **reply);
ah_result tc_op_list(ah_call *call, const cJSON *body, cJSON **reply);
ah_result tc_op_notices(ah_call *call, const cJSON *body, cJSON **reply);

/* --- tc_webhook.c --------------------------------------------------------- */

/** Verifies a webhook: 0 when signed with `secret` over timestamp "." body
 *  and the timestamp is within the replay window of `now`; otherwise -1
 *  with a stable code ("missing_signature", "stale_timestamp",
 *  "invalid_signature") in code. */
int tc_verify(const ah_host_api *h, const char *secret, const char *ts, const char *sig,
              const char *body, size_t len, long long now, const char **code);
ah_result tc_route_webhook(ah_call *call, ah_http_exchange *ex);

/* --- tc_cv.c -------------------------------------------------------------- */

/** An application.created event: creates candidate, CV and application
 *  (or a Pending pool entry). *out receives what happened (transferred). */
ah_result tc_cv_received(ah_call *call, const char *event_id, const cJSON *data, cJSON **out);
/** True for job statuses that take applications. */
bool tc_job_open(const char *status);
ah_result tc_op_pending(ah_call *call, const cJSON *body, cJSON **reply);
ah_result tc_op_assign(ah_call *call, const cJSON *body, cJSON **reply);

#endif
