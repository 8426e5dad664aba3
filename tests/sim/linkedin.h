/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LinkedIn Middleware Platform simulator (seed: "Module 1 - Configure
 * Customer Applications & ATS Integrations"; where it is silent,
 * plugins/linkedin/README.md). It adds routes to an ah_sim:
 *
 *   POST /oauth/v2/accessToken          client_credentials (form), for the
 *                                       partner app and every child app
 *   POST /v2/provisionedApplications    create a child (customer) app
 *   GET  /v2/provisionedApplications?q=credentialsByUniqueForeignId
 *        &uniqueForeignId=..            find one again
 *   POST /v2/provisionedApplications/{id or urn}  (x-restli-method:
 *        partial_update) {"patch":{"$set":{"validJsSdkDomains":[..]}}}
 *   POST /v2/atsIntegrations?ids[i].*   x-restli-method: batch_partial_update
 *   GET  /v2/atsIntegrations?ids[i].*   onboarding statuses
 *   GET  /uas/in.js                     stand-in for in.js + the
 *                                       ATSIntegrationWidget extension
 *   GET  /widget/v1/session, POST /widget/v1/integrate   what the stand-in
 *                                       widget calls (CORS, Origin checked
 *                                       against validJsSdkDomains)
 *
 * Every row of the seed's error tables is answered with its HTTP code,
 * {"status": N, "message": "..."} and the seed's message. Statuses move
 * REQUESTED (widget click) -> ENABLED (enable; APPLY_WITH_LINKEDIN and
 * APPLY_CONNECT) or -> PARTNER_READY (enable; RSC types) -> ENABLED
 * (ah_li_sim_customer_enable). All functions are thread-safe.
 */
#ifndef AH_LINKEDIN_SIM_H
#define AH_LINKEDIN_SIM_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "sim.h"

typedef struct ah_li_sim ah_li_sim;

typedef struct ah_li_sim_opts {
    const char *partner_client_id;     /* default "atshub-partner" */
    const char *partner_client_secret; /* default "partner-s3cret" */
    int token_ttl_s;                   /* default 1800 */
} ah_li_sim_opts;

/** Registers the routes on sim (not started yet); o may be NULL. Free with
 *  ah_li_sim_free after ah_sim_stop. NULL on failure. */
ah_li_sim *ah_li_sim_attach(ah_sim *sim, const ah_li_sim_opts *o);
void ah_li_sim_free(ah_li_sim *li);

/** How the simulator judges bearer tokens. */
typedef enum ah_li_token_mode {
    AH_LI_TOKENS_OK = 0,      /* issued, unexpired tokens are accepted */
    AH_LI_TOKENS_EXPIRED = 1, /* every token is answered "expired" */
    AH_LI_TOKENS_INVALID = 2, /* every token is answered "invalid" */
} ah_li_token_mode;
void ah_li_sim_token_mode(ah_li_sim *li, ah_li_token_mode mode);
/** Marks every token issued so far as expired (new ones are fine). */
void ah_li_sim_expire_tokens(ah_li_sim *li);

/** Whether the child app with that client id may call /atsIntegrations
 *  (false: 403). Default true. 0, or -1 when no such app. */
int ah_li_sim_set_permitted(ah_li_sim *li, const char *client_id, bool permitted);
/** Whether the customer logged into the widget is a contract admin (false:
 *  the widget shows the seed's permission error). Default true. */
int ah_li_sim_set_customer_admin(ah_li_sim *li, const char *client_id, bool admin);

/** The next call of `api` ("enable", "verify", or "update": the partial
 *  update of an application's validJsSdkDomains) is answered with this
 *  HTTP code and {"status": status, "message": message}, whatever it asks
 *  (after the token check); with status 0, with `message` itself as a
 *  text/plain body. For rows a correct client cannot provoke, and for a
 *  broken LinkedIn. */
void ah_li_sim_inject(ah_li_sim *li, const char *api, int http, int status, const char *message);
/** The next application created is answered with this HTTP code (a 2xx;
 *  0: 201, as LinkedIn does), its credentials in the body as always. */
void ah_li_sim_create_status(ah_li_sim *li, int http);
/** A broken finder: GET ?q=credentialsByUniqueForeignId answers every
 *  application, the others first and the one asked for (if any) last. */
void ah_li_sim_finder_all(ah_li_sim *li, bool all);

/** What the widget does on a click, without a browser: records a REQUESTED
 *  integration of that type for the app. *out (may be NULL) receives
 *  {integrationContext, integrationType, tenantType} (cJSON_Delete it). */
int ah_li_sim_request(ah_li_sim *li, const char *client_id, const char *type, cJSON **out);
/** The customer enables a PARTNER_READY integration in the widget. */
int ah_li_sim_customer_enable(ah_li_sim *li, const char *context, const char *type);

/** A copy of the app whose uniqueForeignId is that (without credentials:
 *  "client_id" is kept, the secret is not), or NULL. */
cJSON *ah_li_sim_app(ah_li_sim *li, const char *unique_foreign_id);
/** The onboarding status of an integration (copied into out), 0 or -1. */
int ah_li_sim_status(ah_li_sim *li, const char *context, const char *type, char *out,
                     size_t outlen);
/** A copy of the last /atsIntegrations call of `api` ("enable"/"verify"):
 *  {"method","restli_method","query":{name:value},"body":...}, or NULL. */
cJSON *ah_li_sim_last(ah_li_sim *li, const char *api);

typedef struct ah_li_sim_stats {
    unsigned long tokens, apps, enable_calls, verify_calls, widget_sessions, widget_requests;
    unsigned long unauthorized; /* 401 answers */
} ah_li_sim_stats;
void ah_li_sim_get_stats(ah_li_sim *li, ah_li_sim_stats *out);

/* The seed's messages, for tests. */
#define AH_LI_MSG_ALREADY_ENABLED                                                              \
    "One or more of your update keys are violating update rule : modifying onboarding status " \
    "for already enabled integration is not allowed"
#define AH_LI_MSG_MISMATCH_PREFIX "Batch request mismatch. Entity key "
#define AH_LI_MSG_INCOMPLETE "Integration key parts are incomplete"
#define AH_LI_MSG_FORBIDDEN_ENABLE "Not enough permissions to access: POST /atsIntegrations"
#define AH_LI_MSG_EXPIRED "The token used in the request has expired"
#define AH_LI_MSG_INVALID_ENABLE "Invalid access Token"
#define AH_LI_MSG_INVALID_VERIFY "Invalid access token"
#define AH_LI_MSG_NO_RECORD "No record found to partial update"
#define AH_LI_MSG_INVALID_URN "Invalid integration context urn"
#define AH_LI_MSG_DOMAIN                                                                       \
    "Domain validation failed for the api key.\nPlease contact your ATS for further assistance."
#define AH_LI_MSG_NOT_ADMIN "There seems to be a problem you do not have permissions"

#endif
