/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TopCV employer API simulator (seed: "Base E-Hiring with TopCV"; the wire
 * format is invented and written down in plugins/topcv/README.md). It adds
 * routes to an ah_sim:
 *
 *   GET  /api/employer/me     the employer the credentials belong to
 *   POST /api/jobs            post a job (state "pending" until approved),
 *                             with an optional "reference" kept on the job
 *   GET  /api/jobs            the employer's jobs ({"jobs":[..]}); with
 *                             ?reference=R only those posted with R
 *   GET  /api/jobs/{id}       one job
 *   PUT  /api/jobs/{id}       update a job's form
 *
 * Every request needs "Authorization: Bearer <access token>" and
 * X-TopCV-Timestamp / X-TopCV-Signature: sha256=hex(HMAC-SHA256(secret key,
 * ts "." METHOD "." path "." body)), ts within 5 minutes; 401 otherwise.
 * POST/PUT answer 422 {"error","message","missing":[..]} when a required
 * form field is absent.
 *
 * On command it approves or rejects a job, creates jobs "directly on
 * TopCV" and makes candidates apply: each is a webhook event POSTed, signed
 * with the secret key over ts "." body, to the webhook URL the employer
 * pasted (ah_topcv_sim_set_webhook), synchronously in the caller's thread,
 * retried on a non-2xx answer or no answer (max_attempts, retry_delay_ms
 * times the attempt number). Fault injection: a wrong signature, a stale
 * timestamp, or every delivery sent twice. All functions are thread-safe.
 */
#ifndef AH_TOPCV_SIM_H
#define AH_TOPCV_SIM_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "sim.h"

typedef struct ah_topcv_sim ah_topcv_sim;

typedef struct ah_topcv_sim_opts {
    const char *access_token; /* default "tcv-access-token" */
    const char *secret_key;   /* default "tcv-secret-key" */
    const char *company;      /* default "ACME Vietnam" */
    int max_attempts;         /* webhook deliveries, default 3 */
    int retry_delay_ms;       /* default 20 */
} ah_topcv_sim_opts;

/** Registers the routes on sim (not started yet). o may be NULL. Free with
 *  ah_topcv_sim_free after ah_sim_stop. NULL on failure. */
ah_topcv_sim *ah_topcv_sim_attach(ah_sim *sim, const ah_topcv_sim_opts *o);
void ah_topcv_sim_free(ah_topcv_sim *t);

/** The Webhook URL field of the employer's TopCV settings (NULL clears). */
void ah_topcv_sim_set_webhook(ah_topcv_sim *t, const char *url);

typedef enum ah_topcv_fault {
    AH_TOPCV_FAULT_NONE = 0,
    AH_TOPCV_FAULT_BAD_SIGNATURE = 1, /* signed with the wrong key */
    AH_TOPCV_FAULT_STALE = 2,         /* timestamp 10 minutes old */
    AH_TOPCV_FAULT_DUPLICATE = 3,     /* each event delivered twice */
} ah_topcv_fault;
/** Fault applied to the following deliveries. */
void ah_topcv_sim_set_fault(ah_topcv_sim *t, ah_topcv_fault f);

/** Approves / rejects a job and delivers job.approved / job.rejected.
 *  Returns the HTTP status of the last delivery attempt (0: no answer),
 *  -1 for an unknown job or no webhook URL. */
int ah_topcv_sim_approve(ah_topcv_sim *t, const char *job_id);
int ah_topcv_sim_reject(ah_topcv_sim *t, const char *job_id, const char *reason);

/** A job posted directly on TopCV (state approved); its id, malloc'd. */
char *ah_topcv_sim_create_job(ah_topcv_sim *t, const char *title);

/** A candidate applies to TopCV job `job_id` (any id: TopCV does not know
 *  atshub) titled `job_title` (NULL: the job's own title). The CV is
 *  `cv_text` sent as base64. app_id_out (64 bytes, may be NULL) receives
 *  the application id. Returns like ah_topcv_sim_approve. */
int ah_topcv_sim_apply(ah_topcv_sim *t, const char *job_id, const char *job_title,
                       const char *name, const char *email, const char *cv_text,
                       char *app_id_out);
/** ah_topcv_sim_apply with TopCV's candidate id `cand_id` (NULL: "cand-N"). */
int ah_topcv_sim_apply_as(ah_topcv_sim *t, const char *job_id, const char *job_title,
                          const char *cand_id, const char *name, const char *email,
                          const char *cv_text, char *app_id_out);
/** Delivers the last event again (as TopCV does after a lost answer). */
int ah_topcv_sim_redeliver(ah_topcv_sim *t);
/** Delivers event `event_id` ("evt-N", in the order made) again, or for the
 *  first time when it could not be delivered then (no webhook URL): TopCV
 *  retrying late, after later events. -1 for an unknown id. */
int ah_topcv_sim_redeliver_id(ah_topcv_sim *t, const char *event_id);

/** A broken look-up: GET /api/jobs?reference=R answers every job, those
 *  without reference R first, then those with it. */
void ah_topcv_sim_lookup_all(ah_topcv_sim *t, bool all);

/** A copy of a job ({"id","state","title",...}) or NULL. cJSON_Delete it. */
cJSON *ah_topcv_sim_job(ah_topcv_sim *t, const char *job_id);

typedef struct ah_topcv_sim_stats {
    unsigned long jobs_posted, jobs_updated, unauthorized, invalid;
    unsigned long deliveries, attempts, failed_attempts;
    unsigned long lookups; /* GET /api/jobs (by reference) */
} ah_topcv_sim_stats;
void ah_topcv_sim_get_stats(ah_topcv_sim *t, ah_topcv_sim_stats *out);

#endif
