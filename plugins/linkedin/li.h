/* SPDX-License-Identifier: Apache-2.0 */
/* The LinkedIn plugin's internal interfaces (README.md: the whole flow). */
#ifndef AH_LI_H
#define AH_LI_H

#include <stdbool.h>
#include <stddef.h>

#include <atshub/plugin.h>
#include <atshub/util.h>

/** Which of the seed's error tables a LinkedIn answer belongs to. */
typedef enum li_api {
    LI_API_PLUGIN = 0, /* the configuration widget ("Plugin Errors") */
    LI_API_ENABLE = 1, /* Enable Customer Integrations API */
    LI_API_VERIFY = 2, /* Verify Customer Integrations API */
} li_api;

/** One row of the seed's error tables, with its stable atshub code. */
typedef struct li_error_row {
    li_api api;
    int http;            /* HTTP code LinkedIn answers (0: any) */
    int status;          /* the response's "status" (0: NA) */
    const char *message; /* the seed's message, matched as a prefix */
    const char *code;    /* stable atshub error code */
    int ah_status;       /* the HTTP status atshub's REST API answers */
    const char *description;
    const char *resolution;
} li_error_row;

/** The rows of the seed's three error tables (terminated by code NULL). */
extern const li_error_row li_error_rows[];

/** The row of `api` whose message `message` starts with (case-insensitive,
 *  whitespace-folded) and whose HTTP code and status match; NULL if none. */
const li_error_row *li_error_match(li_api api, int http, int status, const char *message);
/** The row with that atshub code for that api, or NULL. */
const li_error_row *li_error_by_code(li_api api, const char *code);
/** Describes the failure of the current call by that row: the row's code
 *  and HTTP status and "LinkedIn: <message>. <description>. Resolution:
 *  <resolution>". `detail` (may be NULL) is LinkedIn's own text. */
ah_result li_fail_row(ah_call *call, const li_error_row *row, const char *detail);
/** The operator message of a row into out (same text as li_fail_row). */
void li_row_message(const li_error_row *row, const char *detail, char *out, size_t outlen);
/** LinkedIn's text `in` (NULL: "") made fit for an error message, into out:
 *  cut at a UTF-8 boundary to fit outlen, every control character (C0, DEL,
 *  C1: a line break, a terminal escape) written as a space. */
void li_clean_text(const char *in, char *out, size_t outlen);

/* The integration types of data-supported-bundled-integration-types. */
#define LI_TYPE_AWLI "APPLY_WITH_LINKEDIN"
extern const char *const li_integration_types[];
bool li_known_type(const char *type);

/** Per-connection context, made by open() from the settings. */
typedef struct li_conn {
    char types[160];     /* comma-separated, APPLY_WITH_LINKEDIN first */
    int widget_width;
} li_conn;

/* Records kept per connection (host record store). */
#define LI_REC_APP "li_app"
#define LI_REC_REQUEST "li_request"
/* At most this many li_request records per connection: the callback is
 * open to whoever holds the page's URL and records are never deleted, and
 * enable/verify without "integrations" send every stored one in one batch
 * of at most 20 (li_api.c). */
#define LI_MAX_REQUESTS 20

/* --- li_api.c: the LinkedIn APIs ------------------------------------------ */
ah_result li_op_provision(ah_call *call, const cJSON *body, cJSON **reply);
/** Settles an onboarding.provision that answered outcome_unknown: looks the
 *  application up by its uniqueForeignId (domains read back), never sends. */
ah_result li_settle_provision(ah_call *call, const cJSON *body, cJSON **reply);
ah_result li_op_enable(ah_call *call, const cJSON *body, cJSON **reply);
/** Settles an onboarding.enable that answered outcome_unknown (ah_op_write.settle):
 *  reads the integrations back, never sends. */
ah_result li_settle_enable(ah_call *call, const cJSON *body, cJSON **reply);
ah_result li_op_verify(ah_call *call, const cJSON *body, cJSON **reply);
ah_result li_op_disable(ah_call *call, const cJSON *body, cJSON **reply);

/* --- linkedin.c: stored widget requests ----------------------------------- */
/** Validates and stores the widget's integrations (a JSON array of
 *  {integrationContext, integrationType, tenantType}) as records; *stored
 *  (may be NULL) receives the stored list (transferred). */
ah_result li_store_requests(ah_call *call, const cJSON *integrations, cJSON **stored);
/** The stored requests of the call's connection (transferred), each
 *  {integrationContext, integrationType, tenantType, onboardingStatus,
 *  integrationName?, requested_at}. NULL on error (failure described). */
cJSON *li_list_requests(ah_call *call);
/** Updates the stored status (and name, when not NULL) of one request. */
void li_note_status(ah_call *call, const char *context, const char *type, const char *tenant_type,
                    const char *status, const char *name);
ah_result li_op_request(ah_call *call, const cJSON *body, cJSON **reply);

/* --- li_page.c: the configuration page ------------------------------------ */
#define LI_PAGE_PATH "/integrations/linkedin/configure/"
#define LI_CALLBACK_PATH "/integrations/linkedin/integrate/"
ah_result li_route_page(ah_call *call, ah_http_exchange *ex);
ah_result li_route_callback(ah_call *call, ah_http_exchange *ex);

#endif
