/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seed's three error tables (Plugin Errors, Enable Customer Integrations
 * API errors, Verify Customer Integrations API errors), each row mapped to a
 * stable atshub code and an operator message that carries the seed's
 * description and resolution, so that an operator never has to look the
 * LinkedIn documentation up to know what to do.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "li.h"

const char *const li_integration_types[] = {
    "APPLY_CONNECT",
    LI_TYPE_AWLI,
    "RECRUITER_SYSTEM_CONNECT_COMPANY",
    "RECRUITER_SYSTEM_CONNECT_CONTRACT",
    NULL,
};

bool li_known_type(const char *type)
{
    for (size_t i = 0; type != NULL && li_integration_types[i] != NULL; i++)
        if (strcmp(type, li_integration_types[i]) == 0)
            return true;
    return false;
}

#define KEYS "integrationContext, integrationType, dataProvider and tenantType"
#define TOKEN_RES                                                                              \
    "Regenerate a new access token (atshub already renewed it once and retried; check the "    \
    "customer application's client_id/client_secret settings from onboarding.provision)"

const li_error_row li_error_rows[] = {
    /* Plugin Errors: seen by the customer in the widget. */
    {LI_API_PLUGIN, 0, 0, "Domain validation failed for the api key", "li_domain_not_allowed", 400,
     "The partner domain URL is not allowlisted for the customer (child) application; the "
     "browser console shows error.origin.not.in.api.domains",
     "1. Update validJsSdkDomains of the child application (onboarding.provision with "
     "\"validJsSdkDomains\", or the js_sdk_domains setting). 2. validJsSdkDomains must not "
     "contain a trailing slash (/). 3. validJsSdkDomains must be complete URLs starting with "
     "http or https"},
    {LI_API_PLUGIN, 0, 0, "There seems to be a problem you do not have permissions",
     "li_customer_not_admin", 403,
     "The customer logged into the widget is not an admin of the selected Recruiter contract",
     "1. Ensure that the customer admin has an active seat on the Recruiter contract. 2. Ensure "
     "the customer's seat has been granted admin privileges. 3. Ensure that the customer logs "
     "in with the same email as the contract seat. 4. After these corrections ask the customer "
     "to log in again"},

    /* Enable Customer Integrations API. */
    {LI_API_ENABLE, 400, 400,
     "One or more of your update keys are violating update rule : modifying onboarding status "
     "for already enabled integration is not allowed",
     "li_already_enabled", 409,
     "The requested integration type is already ENABLED for this customer",
     "Verify the status of the integration request and check its onboardingStatus with "
     "onboarding.verify (Verify Customer Integrations API)"},
    {LI_API_ENABLE, 400, 400, "Batch request mismatch", "li_batch_mismatch", 502,
     "The values of integrationContext, integrationType, dataProvider or tenantType in the "
     "request body and the request parameters do not match",
     "Ensure that " KEYS " match in the request body and the request parameters"},
    {LI_API_ENABLE, 400, 400, "Integration key parts are incomplete", "li_key_parts_incomplete",
     400,
     "A mandatory key is missing from the request body or parameters",
     "1. Ensure that all the required keys are present in the request body and parameters "
     "(integrationContext, integrationType, tenantType from the widget; atshub adds "
     "dataProvider=ATS). 2. Ensure that their values match in the body and the parameters"},
    {LI_API_ENABLE, 403, 403, "Not enough permissions to access", "li_permission_denied", 502,
     "The application does not have the required permissions",
     "Ensure that the correct child (customer) application credentials are used for the "
     "access token: the connection's client_id/client_secret must be those onboarding.provision "
     "stored for this customer"},
    {LI_API_ENABLE, 401, 401, "The token used in the request has expired", "li_token_expired", 502,
     "The access token used in the Authorization header has expired", TOKEN_RES},
    {LI_API_ENABLE, 401, 401, "Invalid access Token", "li_token_invalid", 502,
     "The access token used is either tampered with or not correct", TOKEN_RES},
    {LI_API_ENABLE, 200, 404, "No record found to partial update", "li_no_request_found", 404,
     "LinkedIn has no integration request initiated by this customer application for that key",
     "Make sure the customer has initiated the integration request (Apply with LinkedIn) in "
     "the configuration widget (step 2): onboarding.request lists what atshub received"},

    /* Verify Customer Integrations API. */
    {LI_API_VERIFY, 200, 0, "No data in statuses, results and errors", "li_no_integration_found",
     404, "No ATS integration was requested using this customer application",
     "Ensure that the customer has initiated the integration request (Apply with LinkedIn) in "
     "the configuration widget (step 2)"},
    {LI_API_VERIFY, 400, 400, "Invalid integration context urn", "li_invalid_integration_context",
     400, "The value passed in the integrationContext request parameter is not valid",
     "Pass the integrationContext the widget returned in step 2 (urn:li:organization:{id}); "
     "onboarding.request lists the stored ones"},
    {LI_API_VERIFY, 400, 400, "Integration key parts are incomplete", "li_key_parts_incomplete",
     400,
     "One or more of the required fields (" KEYS ") are missing in the request parameters or "
     "contain wrong values",
     "1. Provide all the mandatory fields (" KEYS ") with correct values, as the widget "
     "returned them in step 2. 2. Refer to the API Request Parameters section of the guide"},
    {LI_API_VERIFY, 401, 401, "The token used in the request has expired", "li_token_expired", 502,
     "The access token used in the Authorization header has expired", TOKEN_RES},
    {LI_API_VERIFY, 401, 401, "Invalid access token", "li_token_invalid", 502,
     "The access token used is either tampered with or not correct", TOKEN_RES},
    {0, 0, 0, NULL, NULL, 0, NULL, NULL},
};

/* LinkedIn's messages wrap and vary in case ("Invalid access Token"):
 * compare letters and digits only. */
static bool prefix_folded(const char *s, const char *prefix)
{
    while (*prefix) {
        while (*prefix && !isalnum((unsigned char)*prefix))
            prefix++;
        while (*s && !isalnum((unsigned char)*s))
            s++;
        if (*prefix == '\0')
            return true;
        if (tolower((unsigned char)*s) != tolower((unsigned char)*prefix))
            return false;
        s++;
        prefix++;
    }
    return true;
}

const li_error_row *li_error_match(li_api api, int http, int status, const char *message)
{
    if (message == NULL)
        return NULL;
    for (const li_error_row *r = li_error_rows; r->code != NULL; r++) {
        if (r->api != api || (r->http != 0 && r->http != http))
            continue;
        if (r->status != 0 && status != 0 && r->status != status)
            continue;
        if (prefix_folded(message, r->message))
            return r;
    }
    return NULL;
}

const li_error_row *li_error_by_code(li_api api, const char *code)
{
    for (const li_error_row *r = li_error_rows; code != NULL && r->code != NULL; r++)
        if (r->api == api && strcmp(r->code, code) == 0)
            return r;
    return NULL;
}

/* The host keeps 511 bytes of a failure message: the resolution is what
 * the operator needs, so the description goes first when space runs out. */
#define LI_MSG_MAX 511

void li_row_message(const li_error_row *row, const char *detail, char *out, size_t outlen)
{
    const char *what = detail != NULL && *detail ? detail : row->message;
    int n = snprintf(out, outlen, "LinkedIn: %s. %s. Resolution: %s.", what, row->description,
                     row->resolution);
    if (n > LI_MSG_MAX)
        snprintf(out, outlen, "LinkedIn: %.*s. Resolution: %s.",
                 (int)(LI_MSG_MAX > strlen(row->resolution) + 30
                           ? LI_MSG_MAX - strlen(row->resolution) - 30
                           : 0),
                 what, row->resolution);
}

void li_clean_text(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen == 0)
        return;
    for (const unsigned char *p = (const unsigned char *)(in != NULL ? in : ""); *p;) {
        size_t n = *p < 0x80 ? 1 : *p >= 0xF0 ? 4 : *p >= 0xE0 ? 3 : *p >= 0xC0 ? 2 : 1;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                n = 1; /* not UTF-8: the lead byte alone, as a space below */
        bool control = *p < 0x20 || *p == 0x7F || (n == 1 && *p >= 0x80) ||
                       (n == 2 && p[0] == 0xC2 && p[1] < 0xA0);
        size_t w = control ? 1 : n;
        if (o + w >= outlen)
            break; /* a whole character or none */
        if (control)
            out[o] = ' ';
        else
            memcpy(out + o, p, n);
        o += w;
        p += n;
    }
    out[o] = '\0';
}

ah_result li_fail_row(ah_call *call, const li_error_row *row, const char *detail)
{
    char msg[1536];
    li_row_message(row, detail, msg, sizeof msg);
    return call->host->fail(call, row->code, row->ah_status, "%s", msg);
}
