/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration page atshub serves for a tenant (GET
 * /integrations/linkedin/configure/{token}): LinkedIn's ATS Integration
 * Configuration widget exactly as the guide embeds it, and the callback
 * that hands the widget's integrationContext, integrationType and
 * tenantType to atshub (POST /integrations/linkedin/integrate/{token}),
 * which stores them. Enabling happens on the server only (onboarding.enable),
 * never from this page.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "li.h"

static ah_result respond_html(ah_call *call, ah_http_exchange *ex, int status, const char *html,
                              size_t len)
{
    const ah_host_api *h = call->host;
    return h->http_respond(ex, status, "text/html; charset=utf-8", html, len);
}

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>LinkedIn integrations</title>\n"
    "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}"
    "#atshub-status{margin-top:1em}.atshub-error{color:#a00}</style>\n</head>\n<body>\n";

/* The page's own script: the widget's callback, and a check of the page's
 * origin against the application's validJsSdkDomains (the widget only says
 * "Domain validation failed" to the customer; the operator needs why). */
static const char page_script[] =
    "function atshubShow(text,isError){var s=document.getElementById('atshub-status');"
    "s.textContent=text;s.className=isError?'atshub-error':'';}\n"
    "if(ATSHUB.domains.indexOf(location.origin)<0){atshubShow(ATSHUB.domainHelp,true);}\n"
    "/**\n * The widget's data-onintegrate callback: hands the customer's integrations\n"
    " * (integrationContext, integrationType, tenantType) to atshub, which stores\n"
    " * them; atshub's server enables them later. Never enables from here.\n */\n"
    "function handleIntegrations(integrations){\n"
    " atshubShow('Sending your request...',false);\n"
    " return fetch(ATSHUB.callback,{method:'POST',credentials:'same-origin',"
    "headers:{'Content-Type':'application/json'},"
    "body:JSON.stringify({integrations:integrations})})"
    ".then(function(r){return r.json().then(function(j){return [r.ok,j];});})"
    ".then(function(x){if(x[0]){atshubShow('Thank you: your request was received ('+"
    "x[1].integrations.map(function(i){return i.integrationType;}).join(', ')+"
    "'). Your ATS will enable it.',false);}"
    "else{atshubShow((x[1].error&&x[1].error.message)||'The request failed.',true);}})"
    ".catch(function(e){atshubShow('The request could not be sent: '+e,true);});\n"
    "}\n";

static char *build_page(ah_call *call, const li_conn *c, const char *token, const char *client_id,
                        const cJSON *domains)
{
    const ah_host_api *h = call->host;
    const char *customer = h->setting(call, "customer_name");
    ah_buf b = {0};
    ah_buf_puts(&b, page_head);
    ah_buf_puts(&b, "<h1>LinkedIn integrations");
    if (customer != NULL && *customer) {
        ah_buf_puts(&b, " for ");
        ah_buf_html(&b, customer);
    }
    ah_buf_puts(&b, "</h1>\n<p>Choose the LinkedIn integrations you want to use with your ATS. "
               "Once you have requested one, your ATS enables it for you.</p>\n");
    /* The embed, as LinkedIn's guide gives it. */
    ah_buf_puts(&b, "<script type=\"text/javascript\" src=\"");
    ah_buf_html(&b, h->setting(call, "sdk_url"));
    ah_buf_puts(&b, "\">\n  api_key: ");
    ah_buf_html(&b, client_id);
    ah_buf_puts(&b, "\n  extensions: ATSIntegrationWidget@");
    ah_buf_html(&b, h->setting(call, "widget_url"));
    ah_buf_puts(&b, "\n</script>\n<script type=\"IN/ATSIntegrationWidget\"\n"
               "  data-supported-bundled-integration-types=\"");
    ah_buf_html(&b, c->types);
    char w[32];
    snprintf(w, sizeof w, "%d", c->widget_width);
    ah_buf_puts(&b, "\"\n  data-onintegrate=\"handleIntegrations\"\n  data-width=\"");
    ah_buf_puts(&b, w);
    ah_buf_puts(&b, "\" >\n</script>\n<div id=\"atshub-status\" role=\"status\" aria-live=\"polite\">"
               "</div>\n<script>\nvar ATSHUB=");
    cJSON *cfg = cJSON_CreateObject();
    char cb[512];
    snprintf(cb, sizeof cb, LI_CALLBACK_PATH "%s", token);
    cJSON_AddStringToObject(cfg, "callback", cb);
    cJSON_AddItemToObject(cfg, "domains",
                          domains != NULL ? cJSON_Duplicate(domains, 1) : cJSON_CreateArray());
    char help[1536];
    li_row_message(li_error_by_code(LI_API_PLUGIN, "li_domain_not_allowed"),
                   "this page's address is not one of the customer application's "
                   "validJsSdkDomains, so the widget will refuse to load",
                   help, sizeof help);
    cJSON_AddStringToObject(cfg, "domainHelp", help);
    /* '<' as \u003c: no value can close the <script> early. */
    if (cfg == NULL)
        b.oom = true;
    else
        ah_buf_json(&b, cfg, true);
    cJSON_Delete(cfg);
    ah_buf_puts(&b, ";\n");
    ah_buf_puts(&b, page_script);
    ah_buf_puts(&b, "</script>\n</body>\n</html>\n");
    if (!ah_buf_ok(&b)) {
        ah_buf_free(&b);
        return NULL;
    }
    return b.s;
}

ah_result li_route_page(ah_call *call, ah_http_exchange *ex)
{
    const ah_host_api *h = call->host;
    const li_conn *c = call->conn_ctx;
    const char *client_id = h->setting(call, "client_id");
    const char *token = h->setting(call, "webhook_token");
    if (c == NULL || token == NULL)
        return h->fail(call, AH_E_INTERNAL, 500, "the connection is not open");
    if (client_id == NULL || *client_id == '\0') {
        static const char msg[] =
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>LinkedIn integrations</title></head><body>\n<h1>Not ready yet</h1>\n"
            "<p>This tenant has no LinkedIn customer application yet. The operator creates it "
            "with <code>atshub call TENANT CONNECTION onboarding.provision</code>; this page "
            "then shows LinkedIn's integration widget.</p>\n</body></html>\n";
        return respond_html(call, ex, 409, msg, sizeof msg - 1);
    }
    cJSON *app = h->record_find(call, LI_REC_APP, "client_id", client_id, 0, 1);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(app, 0), "fields");
    char *html = build_page(call, c, token, client_id,
                            cJSON_GetObjectItemCaseSensitive(f, "validJsSdkDomains"));
    cJSON_Delete(app);
    if (html == NULL)
        return h->fail(call, AH_E_INTERNAL, 500, "out of memory");
    ah_result r = respond_html(call, ex, 200, html, strlen(html));
    free(html);
    return r;
}

ah_result li_route_callback(ah_call *call, ah_http_exchange *ex)
{
    const ah_host_api *h = call->host;
    const char *ct = h->http_header(ex, "Content-Type");
    /* JSON only: a cross-site form cannot send it without a preflight. */
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
        return h->fail(call, AH_E_INVALID, 415, "send the widget's integrations as application/json");
    size_t len = 0;
    const char *body = h->http_body(ex, &len);
    cJSON *j = body != NULL ? h->json_parse(body, len) : NULL;
    if (j == NULL)
        return h->fail(call, AH_E_INVALID, 400, "the body is not valid JSON");
    /* {"integrations":[..]}, or the widget's array as it is. */
    const cJSON *list = cJSON_IsArray(j) ? j : cJSON_GetObjectItemCaseSensitive(j, "integrations");
    cJSON *stored = NULL;
    ah_result r = li_store_requests(call, list, &stored);
    cJSON_Delete(j);
    if (r != AH_OK)
        return AH_ERR;
    h->log(call, AH_LOG_INFO, "the widget requested %d integration(s)", cJSON_GetArraySize(stored));
    cJSON *out = cJSON_CreateObject();
    if (out == NULL) {
        cJSON_Delete(stored);
        return h->fail(call, AH_E_INTERNAL, 500, "out of memory");
    }
    cJSON_AddItemToObject(out, "integrations", stored);
    return h->http_respond_json(ex, 200, out);
}
