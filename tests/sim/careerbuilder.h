/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CareerBuilder Candidate Status API simulator (seed: the Candidate Status
 * documentation; where it is silent, plugins/careerbuilder/README.md). It
 * adds routes to an ah_sim:
 *
 *   POST /oauth/token                      client_credentials (form or JSON)
 *   PUT  /corporate/CandidateStatus        insert or update by the unique key
 *   GET  /corporate/CandidateStatus/{account}/{email}
 *        ?results_per_page (default 10, 1..100) &status_date (no paging: the
 *        seed has none; any other parameter is ignored)
 *   POST /corporate/CandidateStatus        {"account", "candidate_email": [..]
 *        | "requisition_id": [..], "status_date"?}
 *
 * It validates like the seed's field table (independently of the plugin, so
 * that a gap in the plugin's validation shows as a 400 here), answers 400
 * with {"errors":[{"field","message"}]}, 401 without a valid bearer token,
 * treats status_date filters as "strictly after" in UTC, compares account
 * and email case-insensitively, and records every accepted PUT in arrival
 * order. All functions are thread-safe.
 */
#ifndef AH_CAREERBUILDER_SIM_H
#define AH_CAREERBUILDER_SIM_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "sim.h"

typedef struct ah_cb_sim ah_cb_sim;

typedef struct ah_cb_sim_opts {
    const char *client_id;     /* default "atshub" */
    const char *client_secret; /* default "s3cret" */
    int token_ttl_s;           /* default 3600 */
} ah_cb_sim_opts;

/** Registers the routes on sim (not started yet). o may be NULL (defaults).
 *  Free with ah_cb_sim_free after ah_sim_stop. NULL on failure. */
ah_cb_sim *ah_cb_sim_attach(ah_sim *sim, const ah_cb_sim_opts *o);
/** Frees the state; after ah_sim_stop. NULL is fine. */
void ah_cb_sim_free(ah_cb_sim *cb);

typedef struct ah_cb_sim_stats {
    unsigned long tokens;   /* tokens issued */
    unsigned long puts;     /* PUTs accepted */
    unsigned long gets;     /* GETs served */
    unsigned long posts;    /* POST queries served */
    unsigned long refused;  /* 400 answers */
    unsigned long unauthorized; /* 401 answers */
} ah_cb_sim_stats;
void ah_cb_sim_get_stats(ah_cb_sim *cb, ah_cb_sim_stats *out);

/** Number of stored statuses. */
size_t ah_cb_sim_count(ah_cb_sim *cb);
/** A copy of the stored status with that unique key (requisition_id NULL
 *  for none), or NULL. Release with cJSON_Delete. */
cJSON *ah_cb_sim_find(ah_cb_sim *cb, const char *account, const char *email,
                      const char *vendor_key, const char *requisition_id,
                      const char *status_level);
/** A copy of every accepted PUT body, in arrival order. cJSON_Delete it. */
cJSON *ah_cb_sim_arrivals(ah_cb_sim *cb);
/** The next accepted PUT is answered 200 with `body` as is (copied; NULL:
 *  the seed's "Created/updated status." again): a broken CareerBuilder. */
void ah_cb_sim_put_answer(ah_cb_sim *cb, const char *body);
/** Forgets every issued token (the next request with one gets 401). */
void ah_cb_sim_revoke_tokens(ah_cb_sim *cb);

#endif
