/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The LinkedIn plugin end to end, in process: the core with the linkedin
 * plugin against the LinkedIn simulator. Provisioning, the configuration
 * page and its callback, enable (one and several) and verify, every row of
 * the seed's error tables, and the page in headless Chromium (Debian's
 * chromium, installed by scripts/deps), driven over the DevTools pipe.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conns.h"
#include "core.h"
#include "daemon.h"
#include "rest.h"
#include "sync.h"
#include "tracking.h"
#include "events.h"
#include "crypto.h"
#include "linkedin.h"
#include "support/cdp.h"
#include "support/harness.h"

#define API_KEY "ahk_li_test_key_0123456789"
#define PARTNER_ID "atshub-partner"
#define PARTNER_SECRET "partner-s3cret"
#define PAGE_PATH "/integrations/linkedin/configure/"
#define CALLBACK_PATH "/integrations/linkedin/integrate/"

typedef struct fixture {
    char *dir;
    ah_sim *sim;
    ah_li_sim *li;
    ah_core *core;
    int64_t tenant_id;
    char base[64];
    char auth[96];
    char client_id[64];
    char token[128]; /* the page's token */
} fixture;

static void add_conn(fixture *f, const char *name, const char *types, const char *extra_key,
                     const char *extra_val)
{
    ah_generation *gen = ah_registry_acquire(f->core->registry, "linkedin");
    ck_assert_ptr_nonnull(gen);
    cJSON *s = cJSON_CreateObject();
    char url[256];
    cJSON_AddStringToObject(s, "base_url", ah_sim_url(f->sim));
    cJSON_AddStringToObject(s, "token_url", "/oauth/v2/accessToken");
    cJSON_AddStringToObject(s, "partner_client_id", PARTNER_ID);
    cJSON_AddStringToObject(s, "partner_client_secret", PARTNER_SECRET);
    cJSON_AddStringToObject(s, "customer_name", "Acme Corp");
    cJSON_AddStringToObject(s, "public_url", f->base);
    cJSON_AddStringToObject(s, "integration_types", types);
    snprintf(url, sizeof url, "%s/uas/in.js", ah_sim_url(f->sim));
    cJSON_AddStringToObject(s, "sdk_url", url);
    snprintf(url, sizeof url, "%s/rsc/extensions/onboarding-widget", ah_sim_url(f->sim));
    cJSON_AddStringToObject(s, "widget_url", url);
    if (extra_key != NULL)
        cJSON_AddStringToObject(s, extra_key, extra_val);
    char *text = NULL, err[512];
    ck_assert_msg(ah_settings_build(f->core, gen->desc->settings, "linkedin", NULL, s, true, NULL,
                                    &text, err, sizeof err) == 0,
                  "%s", err);
    int64_t cid;
    ck_assert_int_eq(f->core->store->ops->connection_add(f->core->store, f->tenant_id, "linkedin",
                                                         name, text, &cid),
                     0);
    free(text);
    cJSON_Delete(s);
    ah_generation_release(gen);
    ck_assert_int_eq(ah_conns_reload(f->core), 0);
}

/* The plugin runs as AH_TEST_ISOLATION says, by default in a process of
 * its own. */
static void assert_isolation(ah_core *core, const char *plugin)
{
    const char *iso = getenv("AH_TEST_ISOLATION");
    if (iso == NULL)
        iso = "process";
    cJSON *pl = ah_core_plugins_json(core, plugin);
    ck_assert_ptr_nonnull(pl);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(pl, 0), "isolation")->valuestring,
                     iso);
    cJSON_Delete(pl);
}

static void setup_types(fixture *f, const char *types)
{
    memset(f, 0, sizeof *f);
    ah_sim_opts so = {.seed = 3};
    f->sim = ah_sim_new(&so);
    ck_assert_ptr_nonnull(f->sim);
    f->li = ah_li_sim_attach(f->sim, NULL);
    ck_assert_ptr_nonnull(f->li);
    ck_assert_int_eq(ah_sim_start(f->sim), 0);

    f->dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(f->dir);
    char extra[600];
    /* AH_TEST_ISOLATION=in_process (ctest check_linkedin_in_process): the same
     * suite with the plugin, and its routes, in the daemon's process (by
     * default in a process of its own). */
    const char *iso = getenv("AH_TEST_ISOLATION");
    snprintf(extra, sizeof extra, "linkedin = %s/linkedin.so\n%s%s%s", ah_t_env("AH_PLUGIN_DIR"),
             iso != NULL ? "[plugin.linkedin]\nisolation = " : "", iso != NULL ? iso : "",
             iso != NULL ? "\n" : "");
    char *ini = ah_t_write_ini(f->dir, extra);
    ck_assert_ptr_nonnull(ini);
    ah_config cfg;
    char err[1024];
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    free(ini);
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    f->core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ck_assert_msg(f->core != NULL, "%s", err);
    ck_assert_msg(ah_daemon_start(f->core, err, sizeof err) == 0, "%s", err);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u",
             (unsigned)ah_httpd_port(f->core->httpd));
    snprintf(f->auth, sizeof f->auth, "Authorization: Bearer %s", API_KEY);
    assert_isolation(f->core, "linkedin");
    char hash[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex(API_KEY, strlen(API_KEY), hash);
    ck_assert_int_eq(f->core->store->ops->tenant_add(f->core->store, "acme", hash, &f->tenant_id),
                     0);
    add_conn(f, "li", types, NULL, NULL);
}

static void setup(fixture *f)
{
    setup_types(f, "APPLY_WITH_LINKEDIN");
}

static void teardown(fixture *f)
{
    ah_daemon_close(f->core);
    ah_sim_stop(f->sim);
    ah_li_sim_free(f->li);
    ah_t_rmrf(f->dir);
    free(f->dir);
}

/* --- bus helpers ---------------------------------------------------------------- */

static cJSON *call_ok_on(fixture *f, const char *conn, const char *topic, const char *body)
{
    ah_reply r;
    cJSON *b = body != NULL ? cJSON_Parse(body) : cJSON_CreateObject();
    ck_assert_ptr_nonnull(b);
    ck_assert_msg(ah_core_request(f->core, "acme", conn, topic, b, &r) == 0, "%s: %s: %s", topic,
                  r.code, r.message ? r.message : "");
    cJSON *out = r.body;
    r.body = NULL;
    ah_reply_free(&r);
    return out;
}

static cJSON *call_ok(fixture *f, const char *topic, const char *body)
{
    return call_ok_on(f, "li", topic, body);
}

/* Asserts the call fails with `code`; the message must contain `needle`
 * (NULL: no check). Returns the HTTP status suggested. */
static int call_err(fixture *f, const char *topic, const char *body, const char *code,
                    const char *needle)
{
    ah_reply r;
    cJSON *b = body != NULL ? cJSON_Parse(body) : cJSON_CreateObject();
    ck_assert_ptr_nonnull(b);
    int rc = ah_core_request(f->core, "acme", "li", topic, b, &r);
    ck_assert_msg(rc != 0, "%s succeeded, expected %s", topic, code);
    ck_assert_msg(strcmp(r.code, code) == 0, "%s: expected %s, got %s: %s", topic, code, r.code,
                  r.message ? r.message : "");
    if (needle != NULL)
        ck_assert_msg(r.message != NULL && strstr(r.message, needle) != NULL,
                      "%s: message lacks '%s': %s", topic, needle, r.message ? r.message : "");
    int st = r.http_status;
    ah_reply_free(&r);
    return st;
}

static void provision(fixture *f)
{
    cJSON *r = call_ok(f, "onboarding.provision", NULL);
    const cJSON *id = cJSON_GetObjectItem(r, "client_id");
    ck_assert(cJSON_IsString(id));
    snprintf(f->client_id, sizeof f->client_id, "%s", id->valuestring);
    const cJSON *page = cJSON_GetObjectItem(r, "configuration_page");
    ck_assert(cJSON_IsString(page));
    const char *t = strstr(page->valuestring, PAGE_PATH);
    ck_assert_ptr_nonnull(t);
    snprintf(f->token, sizeof f->token, "%s", t + strlen(PAGE_PATH));
    cJSON_Delete(r);
}

/* What the widget hands the page's callback, posted the way the page does. */
static long post_callback(fixture *f, const char *json, char **body)
{
    char url[512];
    snprintf(url, sizeof url, "%s" CALLBACK_PATH "%s", f->base, f->token);
    const char *h[] = {"Content-Type: application/json", NULL};
    return ah_t_http("POST", url, h, json, body);
}

/* A widget click at LinkedIn (the simulator) and the callback to atshub. */
static cJSON *widget_request(fixture *f, const char *type)
{
    cJSON *it = NULL;
    ck_assert_int_eq(ah_li_sim_request(f->li, f->client_id, type, &it), 0);
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, cJSON_Duplicate(it, 1));
    char *json = cJSON_PrintUnformatted(arr);
    char *body = NULL;
    ck_assert_int_eq(post_callback(f, json, &body), 200);
    free(body);
    free(json);
    cJSON_Delete(arr);
    return it;
}

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The onboardingStatus of the only (or the type's) integration of a reply. */
static const char *status_of(const cJSON *reply, const char *type)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(reply, "integrations")) {
        if (type == NULL || strcmp(str_of(it, "integrationType"), type) == 0)
            return str_of(it, "onboardingStatus");
    }
    return NULL;
}

static char *items_json(const cJSON *it)
{
    cJSON *b = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(b, "integrations");
    cJSON_AddItemToArray(a, cJSON_Duplicate(it, 1));
    char *s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    return s;
}

/* --- provisioning ----------------------------------------------------------------- */

typedef struct log_scan {
    const char *secret;
    int rows, leaks, page, callback;
} log_scan;

static bool holds(const char *text, const char *secret)
{
    return text != NULL && strstr(text, secret) != NULL;
}

static void scan_cb(void *arg, const ah_log_entry *e)
{
    log_scan *s = arg;
    s->rows++;
    if (holds(e->path, s->secret) || holds(e->body, s->secret) ||
        holds(e->correlation_id, s->secret) || holds(e->source, s->secret))
        s->leaks++;
    if (e->path != NULL && strcmp(e->path, PAGE_PATH "***") == 0)
        s->page++;
    if (e->path != NULL && strcmp(e->path, CALLBACK_PATH "***") == 0)
        s->callback++;
}

START_TEST(test_provision_one_app_per_tenant)
{
    fixture f;
    setup(&f);
    provision(&f);
    /* The proper customer name, shown on LinkedIn's consent screen. */
    cJSON *app = ah_li_sim_app(f.li, "acme");
    ck_assert_ptr_nonnull(app);
    ck_assert_str_eq(str_of(app, "name"), "atshub - Acme Corp");
    const cJSON *doms = cJSON_GetObjectItem(app, "validJsSdkDomains");
    ck_assert_int_eq(cJSON_GetArraySize(doms), 1);
    ck_assert_str_eq(cJSON_GetArrayItem(doms, 0)->valuestring, f.base);
    cJSON_Delete(app);

    /* The client secret is stored sealed in the connection's settings. */
    ah_connection_row row;
    memset(&row, 0, sizeof row);
    ck_assert_int_eq(f.core->store->ops->connection_get(f.core->store, "acme", "li", &row), 0);
    cJSON *st = cJSON_Parse(row.settings);
    ck_assert_str_eq(str_of(st, "client_id"), f.client_id);
    ck_assert(ah_is_sealed(str_of(st, "client_secret")));
    ck_assert(ah_is_sealed(str_of(st, "partner_client_secret")));
    ck_assert_ptr_nonnull(str_of(st, "app_urn"));
    cJSON_Delete(st);
    ah_connection_row_free(&row);

    /* Again: the same app, its domains brought up to date. */
    cJSON *r = call_ok(&f, "onboarding.provision",
                       "{\"validJsSdkDomains\":[\"https://ats.example.com\",\"http://127.0.0.1:1\"]}");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "created")));
    ck_assert_str_eq(str_of(r, "client_id"), f.client_id);
    cJSON_Delete(r);
    app = ah_li_sim_app(f.li, "acme");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(app, "validJsSdkDomains")), 2);
    cJSON_Delete(app);

    /* A second connection of the tenant takes the tenant's app over (LinkedIn
     * answers 409 for the same uniqueForeignId). */
    add_conn(&f, "li2", "APPLY_WITH_LINKEDIN", NULL, NULL);
    r = call_ok_on(&f, "li2", "onboarding.provision", NULL);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "created")));
    ck_assert_str_eq(str_of(r, "client_id"), f.client_id);
    cJSON_Delete(r);
    ah_li_sim_stats s;
    ah_li_sim_get_stats(f.li, &s);
    ck_assert_uint_eq(s.apps, 1);

    /* LinkedIn's answers carried the app's client_secret (the create's,
     * the finder's): the integration log keeps them without it. (Before,
     * every outbound answer was kept as it came, less the secrets the
     * connection already had.) */
    ah_conn *c = ah_conn_find(f.core, "acme", "li");
    ck_assert_ptr_nonnull(c);
    char secret[128];
    snprintf(secret, sizeof secret, "%s", ah_conn_setting(c, "client_secret"));
    ah_conn_release(c);
    ck_assert_uint_ge(strlen(secret), 8);
    log_scan sc = {.secret = secret};
    ah_log_filter all = {.limit = 1000};
    ck_assert_int_eq(f.core->store->ops->log_query(f.core->store, &all, scan_cb, &sc), 0);
    ck_assert_int_gt(sc.rows, 0);
    ck_assert_int_eq(sc.leaks, 0);
    teardown(&f);
}
END_TEST

START_TEST(test_provision_refusals)
{
    fixture f;
    setup(&f);
    /* The plugin table's first row, prevented at the source: its resolution. */
    call_err(&f, "onboarding.provision", "{\"validJsSdkDomains\":[\"https://ats.example.com/\"]}",
             "li_domain_not_allowed", "trailing slash");
    call_err(&f, "onboarding.provision", "{\"validJsSdkDomains\":[\"ats.example.com\"]}",
             "li_domain_not_allowed", "starting with http");
    call_err(&f, "onboarding.provision", "{\"name\":\"Acme on LinkedIn\"}", "li_invalid_app_name",
             "LinkedIn");
    call_err(&f, "onboarding.provision",
             "{\"name\":\"A name much longer than fifty characters, which LinkedIn refuses\"}",
             "li_invalid_app_name", "50");
    /* Nothing else works before provisioning, and says so. */
    call_err(&f, "onboarding.enable", "{\"integrationName\":\"x\"}", "li_not_provisioned",
             "onboarding.provision");
    call_err(&f, "onboarding.verify", NULL, "li_not_provisioned", NULL);
    ah_li_sim_stats s;
    ah_li_sim_get_stats(f.li, &s);
    ck_assert_uint_eq(s.apps, 0);
    teardown(&f);
}
END_TEST

/* The message of a call that fails with `code` (malloc'd). */
static char *err_message(fixture *f, const char *topic, const char *body, const char *code)
{
    ah_reply r;
    cJSON *b = body != NULL ? cJSON_Parse(body) : cJSON_CreateObject();
    ck_assert_ptr_nonnull(b);
    ck_assert_msg(ah_core_request(f->core, "acme", "li", topic, b, &r) != 0,
                  "%s succeeded, expected %s", topic, code);
    ck_assert_msg(strcmp(r.code, code) == 0, "%s: expected %s, got %s: %s", topic, code, r.code,
                  r.message ? r.message : "");
    char *m = strdup(r.message != NULL ? r.message : "");
    ck_assert_ptr_nonnull(m);
    ah_reply_free(&r);
    return m;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Any 2xx to a create is the application made (a 202 was refused, and the
 * refusal pasted the body, the new client_secret in it, into the error).
 * No error pastes LinkedIn's raw body: at most its "message", cut, with
 * no raw control character. */
START_TEST(test_answers_not_pasted_into_errors)
{
    fixture f;
    setup(&f);
    ah_li_sim_create_status(f.li, 202);
    provision(&f);
    cJSON *app = ah_li_sim_app(f.li, "acme");
    ck_assert_ptr_nonnull(app);
    cJSON_Delete(app);

    /* A refused update of the domains: a text body, then a message with
     * a line break and a terminal escape. */
    const char *again = "{\"validJsSdkDomains\":[\"https://ats.example.com\"]}";
    ah_li_sim_inject(f.li, "update", 400, 0, "RAW-BODY client_secret=abc");
    char *m = err_message(&f, "onboarding.provision", again, "upstream_error");
    ck_assert_msg(strstr(m, "RAW-BODY") == NULL && strstr(m, "(HTTP 400)") != NULL, "%s", m);
    free(m);
    ah_li_sim_inject(f.li, "update", 400, 400, "Bad\ndomain\x1b[31m list");
    m = err_message(&f, "onboarding.provision", again, "upstream_error");
    ck_assert_msg(strstr(m, "\"status\"") == NULL && strstr(m, "Bad domain [31m list") != NULL &&
                      !has_control(m),
                  "%s", m);
    free(m);

    /* An answer no row of the tables knows. */
    cJSON *it = widget_request(&f, "APPLY_WITH_LINKEDIN");
    char *items = items_json(it);
    ah_li_sim_inject(f.li, "verify", 400, 0, "RAW-BODY of a broken LinkedIn");
    m = err_message(&f, "onboarding.verify", items, "upstream_error");
    ck_assert_msg(strstr(m, "RAW-BODY") == NULL && strstr(m, "HTTP 400") != NULL, "%s", m);
    free(m);
    ah_li_sim_inject(f.li, "verify", 400, 400, "Odd\r\nanswer\x07");
    m = err_message(&f, "onboarding.verify", items, "upstream_error");
    ck_assert_msg(strstr(m, "Odd  answer ") != NULL && !has_control(m), "%s", m);
    free(m);
    free(items);
    cJSON_Delete(it);
    teardown(&f);
}
END_TEST

static char *sim_client_id(fixture *f, const char *fid)
{
    cJSON *app = ah_li_sim_app(f->li, fid);
    ck_assert_ptr_nonnull(app);
    const char *id = str_of(cJSON_GetObjectItem(app, "credentials"), "client_id");
    if (id == NULL)
        id = str_of(app, "client_id");
    ck_assert_ptr_nonnull(id);
    char *out = strdup(id);
    cJSON_Delete(app);
    return out;
}

/* The finder's answer is searched for the uniqueForeignId asked for: a
 * finder that answers other applications first had the other tenant's
 * credentials stored as this one's, after a 409 (find_existing) and after
 * a lost answer to a create (lookup_app). */
START_TEST(test_finder_takes_only_the_asked_app)
{
    fixture f;
    setup(&f);
    add_conn(&f, "li2", "APPLY_WITH_LINKEDIN", NULL, NULL);
    cJSON *r = call_ok_on(&f, "li2", "onboarding.provision", "{\"uniqueForeignId\":\"other\"}");
    cJSON_Delete(r);
    provision(&f); /* "acme" */
    ah_li_sim_finder_all(f.li, true);

    /* 409 for "acme": taken over, "acme"'s own. */
    add_conn(&f, "li3", "APPLY_WITH_LINKEDIN", NULL, NULL);
    r = call_ok_on(&f, "li3", "onboarding.provision", NULL);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "created")));
    ck_assert_str_eq(str_of(r, "client_id"), f.client_id);
    cJSON_Delete(r);

    /* The create's answer lost: looked up, "fresh"'s own. */
    add_conn(&f, "li4", "APPLY_WITH_LINKEDIN", NULL, NULL);
    ah_sim_fault_after(f.sim, "POST", "/v2/provisionedApplications", AH_SIM_AFTER_DROP, 1);
    r = call_ok_on(&f, "li4", "onboarding.provision", "{\"uniqueForeignId\":\"fresh\"}");
    char *fresh = sim_client_id(&f, "fresh");
    ck_assert_str_eq(str_of(r, "client_id"), fresh);
    free(fresh);
    cJSON_Delete(r);
    ah_li_sim_stats s;
    ah_li_sim_get_stats(f.li, &s);
    ck_assert_uint_eq(s.apps, 3);
    teardown(&f);
}
END_TEST

/* --- the page and its callback ------------------------------------------------------ */

START_TEST(test_page_and_callback)
{
    fixture f;
    setup_types(&f, "RECRUITER_SYSTEM_CONNECT_COMPANY, APPLY_CONNECT");
    char url[512], *body = NULL;
    cJSON *r;
    provision(&f);
    snprintf(url, sizeof url, "%s" PAGE_PATH "%s", f.base, f.token);
    char *head = NULL;
    ck_assert_int_eq(ah_t_http_head("GET", url, NULL, NULL, &body, &head), 200);
    /* No other site may frame the page (security review, finding 8). */
    ck_assert_msg(strcasestr(head, "Content-Security-Policy: frame-ancestors 'none'") != NULL &&
                      strcasestr(head, "X-Frame-Options: DENY") != NULL,
                  "%s", head);
    free(head);
    /* The embed as the guide gives it; APPLY_WITH_LINKEDIN always offered. */
    ck_assert_ptr_nonnull(strstr(body, "data-supported-bundled-integration-types=\""
                                       "APPLY_WITH_LINKEDIN,RECRUITER_SYSTEM_CONNECT_COMPANY,"
                                       "APPLY_CONNECT\""));
    ck_assert_ptr_nonnull(strstr(body, "data-onintegrate=\"handleIntegrations\""));
    ck_assert_ptr_nonnull(strstr(body, "data-width=\"600\""));
    char want[256];
    snprintf(want, sizeof want, "api_key: %s", f.client_id);
    ck_assert_ptr_nonnull(strstr(body, want));
    snprintf(want, sizeof want, "src=\"%s/uas/in.js\"", ah_sim_url(f.sim));
    ck_assert_ptr_nonnull(strstr(body, want));
    ck_assert_ptr_nonnull(strstr(body, "extensions: ATSIntegrationWidget@"));
    ck_assert_ptr_null(strstr(body, "atsIntegrations")); /* never enables from the browser */
    free(body);
    snprintf(url, sizeof url, "%s" PAGE_PATH "not-the-token", f.base);
    ck_assert_int_eq(ah_t_http("GET", url, NULL, NULL, &body), 404);
    free(body);

    /* The callback stores what the widget returned. */
    cJSON *it = widget_request(&f, "RECRUITER_SYSTEM_CONNECT_COMPANY");
    r = call_ok(&f, "onboarding.request", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "integrations")), 1);
    const cJSON *got = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "integrations"), 0);
    ck_assert_str_eq(str_of(got, "integrationContext"), str_of(it, "integrationContext"));
    ck_assert_str_eq(str_of(got, "integrationType"), "RECRUITER_SYSTEM_CONNECT_COMPANY");
    ck_assert_str_eq(str_of(got, "tenantType"), "RECRUITER");
    ck_assert_str_eq(str_of(got, "onboardingStatus"), "REQUESTED");
    cJSON_Delete(r);
    cJSON_Delete(it);

    /* Refused: not JSON, a type not offered to this tenant, missing parts. */
    snprintf(url, sizeof url, "%s" CALLBACK_PATH "%s", f.base, f.token);
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    ck_assert_int_eq(ah_t_http("POST", url, form, "a=b", &body), 415);
    free(body);
    ck_assert_int_eq(post_callback(&f,
                                   "[{\"integrationContext\":\"urn:li:organization:1\","
                                   "\"integrationType\":\"RECRUITER_SYSTEM_CONNECT_CONTRACT\","
                                   "\"tenantType\":\"RECRUITER\"}]",
                                   &body),
                     400);
    ck_assert_ptr_nonnull(strstr(body, "not offered"));
    free(body);
    ck_assert_int_eq(post_callback(&f, "{\"integrations\":[{\"integrationContext\":\"x\"}]}", &body),
                     400);
    ck_assert_ptr_nonnull(strstr(body, "li_key_parts_incomplete"));
    free(body);
    r = call_ok(&f, "onboarding.request", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "integrations")), 1);
    cJSON_Delete(r);

    /* The admin REST form of the same list. */
    char hx[64], *rb = NULL;
    snprintf(url, sizeof url, "%s/v1/bus/onboarding.request", f.base);
    snprintf(hx, sizeof hx, "X-Connection: li");
    const char *h[] = {f.auth, hx, "Content-Type: application/json", NULL};
    ck_assert_int_eq(ah_t_http("POST", url, h, "{}", &rb), 200);
    ck_assert_ptr_nonnull(strstr(rb, "RECRUITER_SYSTEM_CONNECT_COMPANY"));
    free(rb);
    teardown(&f);
}
END_TEST

/* Every integration log row, checked for `secret` in any text column. */
/* Issue 16, finding 5: the configure page and its callback are opened by
 * the token in their path; the integration log must never hold it. */
START_TEST(test_token_not_logged)
{
    fixture f;
    setup_types(&f, "RECRUITER_SYSTEM_CONNECT_COMPANY, APPLY_CONNECT");
    char url[512], *body = NULL;
    provision(&f);
    ck_assert_uint_gt(strlen(f.token), 8);
    snprintf(url, sizeof url, "%s" PAGE_PATH "%s", f.base, f.token);
    ck_assert_int_eq(ah_t_http("GET", url, NULL, NULL, &body), 200);
    free(body);
    cJSON *it = widget_request(&f, "RECRUITER_SYSTEM_CONNECT_COMPANY");
    cJSON_Delete(it);
    /* Refused, with the token in the body under a harmless-looking key. */
    char json[512];
    snprintf(json, sizeof json, "{\"integrations\":[{\"integrationContext\":\"%s\"}]}", f.token);
    ck_assert_int_eq(post_callback(&f, json, &body), 400);
    free(body);

    log_scan sc = {.secret = f.token};
    ah_log_filter all = {.limit = 1000};
    ck_assert_int_eq(f.core->store->ops->log_query(f.core->store, &all, scan_cb, &sc), 0);
    ck_assert_int_gt(sc.rows, 0);
    ck_assert_int_eq(sc.page, 2);     /* REQUEST + RESPONSE */
    ck_assert_int_eq(sc.callback, 4); /* two calls */
    ck_assert_int_eq(sc.leaks, 0);
    /* The same through GET /v1/log, as the tenant reads it. */
    char *resp = NULL;
    snprintf(url, sizeof url, "%s/v1/log?limit=1000", f.base);
    const char *h[] = {f.auth, NULL};
    ck_assert_int_eq(ah_t_http("GET", url, h, NULL, &resp), 200);
    ck_assert_ptr_nonnull(resp);
    ck_assert_ptr_nonnull(strstr(resp, CALLBACK_PATH "***"));
    ck_assert_ptr_null(strstr(resp, f.token));
    free(resp);
    teardown(&f);
}
END_TEST

/* Issue 12: onboarding.request given one integration as a flat object (not
 * in the "integrations" list) answered success and stored nothing. The host
 * now refuses it against the plugin's field table, naming the field, on
 * every path: the bus, REST and the admin API. */
/* The callback is open to whoever holds the page's URL: an item outside
 * the guide's formats (integrationContext urn:li:organization:{id}) is
 * refused with the page's error shape and stores nothing, and what can
 * pile up is bounded by what one enable or verify carries (20), so the
 * stored requests always make a batch LinkedIn can take. */
START_TEST(test_callback_refuses_bad_and_bounds_requests)
{
    fixture f;
    setup(&f);
    provision(&f);
    cJSON *a = widget_request(&f, "APPLY_WITH_LINKEDIN");
    char *body = NULL;
    ck_assert_int_eq(post_callback(&f,
                                   "[{\"integrationContext\":\"urn:li:organization:1&b\","
                                   "\"integrationType\":\"APPLY_WITH_LINKEDIN\","
                                   "\"tenantType\":\"JOBS\"}]",
                                   &body),
                     400);
    ck_assert_ptr_nonnull(strstr(body, "\"code\":\"li_invalid_integration_context\""));
    free(body);
    ck_assert_int_eq(post_callback(&f,
                                   "[{\"integrationContext\":\"acme\","
                                   "\"integrationType\":\"APPLY_WITH_LINKEDIN\","
                                   "\"tenantType\":\"JOBS\"}]",
                                   &body),
                     400);
    ck_assert_ptr_nonnull(strstr(body, "\"code\":\"li_invalid_integration_context\""));
    free(body);
    ck_assert_int_eq(post_callback(&f,
                                   "[{\"integrationContext\":\"urn:li:organization:1\","
                                   "\"integrationType\":\"APPLY_WITH_LINKEDIN\","
                                   "\"tenantType\":\"JOBS&dataProvider=X\"}]",
                                   &body),
                     400);
    ck_assert_ptr_nonnull(strstr(body, "\"code\":\"li_key_parts_incomplete\""));
    free(body);
    cJSON *r = call_ok(&f, "onboarding.request", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "integrations")), 1);
    cJSON_Delete(r);

    /* 19 more distinct ones fill the 20; a 21st is refused, a repeat is not. */
    char many[4096];
    size_t used = (size_t)snprintf(many, sizeof many, "[");
    for (int i = 0; i < 19; i++)
        used += (size_t)snprintf(many + used, sizeof many - used,
                                 "%s{\"integrationContext\":\"urn:li:organization:9%03d\","
                                 "\"integrationType\":\"APPLY_WITH_LINKEDIN\","
                                 "\"tenantType\":\"JOBS\"}",
                                 i ? "," : "", i);
    snprintf(many + used, sizeof many - used, "]");
    ck_assert_int_eq(post_callback(&f, many, &body), 200);
    free(body);
    ck_assert_int_eq(post_callback(&f,
                                   "[{\"integrationContext\":\"urn:li:organization:8000\","
                                   "\"integrationType\":\"APPLY_WITH_LINKEDIN\","
                                   "\"tenantType\":\"JOBS\"}]",
                                   &body),
                     409);
    ck_assert_ptr_nonnull(strstr(body, "at most 20"));
    free(body);
    ck_assert_int_eq(post_callback(&f, many, &body), 200);
    free(body);
    r = call_ok(&f, "onboarding.request", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "integrations")), 20);
    cJSON_Delete(r);

    /* What is stored still enables: the real request is, the strangers get
     * the seed's 200/404 row each. */
    r = call_ok(&f, "onboarding.enable", "{\"integrationName\":\"Acme AWLI\"}");
    ck_assert_int_eq(cJSON_GetObjectItem(r, "enabled")->valueint, 1);
    ck_assert_int_eq(cJSON_GetObjectItem(r, "failed")->valueint, 19);
    cJSON_Delete(r);
    r = call_ok(&f, "onboarding.verify", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "integrations")), 20);
    cJSON_Delete(r);
    cJSON_Delete(a);
    teardown(&f);
}
END_TEST

START_TEST(test_request_wrong_shape_refused)
{
    fixture f;
    setup(&f);
    provision(&f);
    static const char flat[] = "{\"integrationContext\":\"urn:li:organization:1\","
                               "\"integrationType\":\"APPLY_WITH_LINKEDIN\","
                               "\"tenantType\":\"JOBS\"}";
    ck_assert_int_eq(call_err(&f, "onboarding.request", flat, "invalid_request",
                              "field 'integrationContext' is not a field of onboarding.request "
                              "(it takes: integrations)"),
                     400);
    /* The list given as one object, and a list item of the wrong type. */
    call_err(&f, "onboarding.request",
             "{\"integrations\":{\"integrationContext\":\"urn:li:organization:1\"}}",
             "invalid_request", "field 'integrations' must be an array");
    call_err(&f, "onboarding.request",
             "{\"integrations\":[{\"integrationContext\":\"urn:li:organization:1\","
             "\"integrationType\":\"APPLY_WITH_LINKEDIN\",\"tenantType\":7}]}",
             "invalid_request", "field 'integrations[0].tenantType' must be a string");
    call_err(&f, "onboarding.enable", "{\"integrations\":null}", "invalid_request",
             "field 'integrationName' is required");

    char url[512], *body = NULL;
    snprintf(url, sizeof url, "%s/v1/bus/onboarding.request", f.base);
    const char *h[] = {f.auth, "X-Connection: li", "Content-Type: application/json", NULL};
    ck_assert_int_eq(ah_t_http("POST", url, h, flat, &body), 400);
    ck_assert_ptr_nonnull(strstr(body, "\"code\":\"invalid_request\""));
    ck_assert_ptr_nonnull(strstr(body, "field 'integrationContext'"));
    free(body);
    /* Nothing was stored by any of them. */
    cJSON *r = call_ok(&f, "onboarding.request", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "integrations")), 0);
    cJSON_Delete(r);
    /* The right shape stores it. */
    char good[512];
    snprintf(good, sizeof good, "{\"integrations\":[%s]}", flat);
    r = call_ok(&f, "onboarding.request", good);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "integrations")), 1);
    cJSON_Delete(r);
    teardown(&f);
}
END_TEST

START_TEST(test_page_before_provisioning)
{
    fixture f;
    setup(&f);
    /* The page token is sealed in the settings; provision prints the URL,
     * but the page must make sense before that too. */
    ah_connection_row row;
    memset(&row, 0, sizeof row);
    ck_assert_int_eq(f.core->store->ops->connection_get(f.core->store, "acme", "li", &row), 0);
    cJSON *st = cJSON_Parse(row.settings);
    const char *sealed = str_of(st, "webhook_token");
    ck_assert(ah_is_sealed(sealed));
    char *tok = ah_open_sealed(f.core->host_key, sealed, "atshub:setting:webhook_token");
    ck_assert_ptr_nonnull(tok);
    cJSON_Delete(st);
    ah_connection_row_free(&row);
    char url[512], *body = NULL;
    snprintf(url, sizeof url, "%s" PAGE_PATH "%s", f.base, tok);
    free(tok);
    ck_assert_int_eq(ah_t_http("GET", url, NULL, NULL, &body), 409);
    ck_assert_ptr_nonnull(strstr(body, "onboarding.provision"));
    free(body);
    teardown(&f);
}
END_TEST

/* --- enable and verify ---------------------------------------------------------------- */

START_TEST(test_enable_one_then_verify)
{
    fixture f;
    setup(&f);
    provision(&f);
    cJSON *it = widget_request(&f, "APPLY_WITH_LINKEDIN");
    cJSON *r = call_ok(&f, "onboarding.verify", NULL);
    ck_assert_str_eq(status_of(r, NULL), "REQUESTED");
    cJSON_Delete(r);

    r = call_ok(&f, "onboarding.enable",
                "{\"integrationName\":\"Acme Corp's Apply with LinkedIn Integration\"}");
    ck_assert_int_eq(cJSON_GetObjectItem(r, "enabled")->valueint, 1);
    cJSON_Delete(r);
    /* The wire: batch_partial_update, ids[0].* and the entities body. */
    cJSON *last = ah_li_sim_last(f.li, "enable");
    ck_assert_str_eq(str_of(last, "method"), "POST");
    ck_assert_str_eq(str_of(last, "restli_method"), "batch_partial_update");
    const cJSON *q = cJSON_GetObjectItem(last, "query");
    ck_assert_str_eq(str_of(q, "ids[0].integrationContext"), str_of(it, "integrationContext"));
    ck_assert_str_eq(str_of(q, "ids[0].integrationType"), "APPLY_WITH_LINKEDIN");
    ck_assert_str_eq(str_of(q, "ids[0].tenantType"), "JOBS");
    ck_assert_str_eq(str_of(q, "ids[0].dataProvider"), "ATS");
    const cJSON *ents = cJSON_GetObjectItem(cJSON_GetObjectItem(last, "body"), "entities");
    ck_assert_int_eq(cJSON_GetArraySize(ents), 1);
    char key[512];
    snprintf(key, sizeof key,
             "integrationContext=%s&integrationType=APPLY_WITH_LINKEDIN&tenantType=JOBS&"
             "dataProvider=ATS",
             str_of(it, "integrationContext"));
    const cJSON *e = cJSON_GetObjectItem(ents, key);
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(
        str_of(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "patch"), "$set"), "integrationName"),
        "Acme Corp's Apply with LinkedIn Integration");
    cJSON_Delete(last);

    r = call_ok(&f, "onboarding.verify", NULL);
    ck_assert_str_eq(status_of(r, NULL), "ENABLED");
    ck_assert_str_eq(str_of(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "integrations"), 0),
                            "integrationName"),
                     "Acme Corp's Apply with LinkedIn Integration");
    cJSON_Delete(r);
    r = call_ok(&f, "onboarding.request", NULL);
    ck_assert_str_eq(status_of(r, NULL), "ENABLED");
    cJSON_Delete(r);

    /* Enabled cannot be disabled: atshub refuses and says why. */
    ck_assert_int_eq(call_err(&f, "onboarding.disable", NULL, "li_cannot_disable",
                              "cannot be disabled"),
                     409);
    cJSON_Delete(it);
    teardown(&f);
}
END_TEST

START_TEST(test_enable_several_in_one_call)
{
    fixture f;
    setup_types(&f, "APPLY_CONNECT,RECRUITER_SYSTEM_CONNECT_COMPANY");
    provision(&f);
    cJSON *a = widget_request(&f, "APPLY_WITH_LINKEDIN");
    cJSON *b = widget_request(&f, "APPLY_CONNECT");
    cJSON *c = widget_request(&f, "RECRUITER_SYSTEM_CONNECT_COMPANY");
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "integrationName", "Acme Corp's LinkedIn integrations");
    cJSON *list = cJSON_AddArrayToObject(body, "integrations");
    cJSON_AddItemToArray(list, cJSON_Duplicate(a, 1));
    cJSON_AddItemToArray(list, cJSON_Duplicate(b, 1));
    cJSON_AddItemToArray(list, cJSON_Duplicate(c, 1));
    char *text = cJSON_PrintUnformatted(body);
    ah_li_sim_stats s0, s1;
    ah_li_sim_get_stats(f.li, &s0);
    cJSON *r = call_ok(&f, "onboarding.enable", text);
    ah_li_sim_get_stats(f.li, &s1);
    ck_assert_uint_eq(s1.enable_calls - s0.enable_calls, 1);
    ck_assert_int_eq(cJSON_GetObjectItem(r, "enabled")->valueint, 3);
    cJSON_Delete(r);
    cJSON *last = ah_li_sim_last(f.li, "enable");
    ck_assert_str_eq(str_of(cJSON_GetObjectItem(last, "query"), "ids[2].dataProvider"), "ATS");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(last, "body"),
                                                            "entities")),
                     3);
    cJSON_Delete(last);

    r = call_ok(&f, "onboarding.verify", text);
    ck_assert_str_eq(status_of(r, "APPLY_WITH_LINKEDIN"), "ENABLED");
    ck_assert_str_eq(status_of(r, "APPLY_CONNECT"), "ENABLED");
    /* RSC: ready on the partner's side; the customer enables it in LinkedIn. */
    ck_assert_str_eq(status_of(r, "RECRUITER_SYSTEM_CONNECT_COMPANY"), "PARTNER_READY");
    cJSON_Delete(r);
    ck_assert_int_eq(ah_li_sim_customer_enable(f.li, str_of(c, "integrationContext"),
                                               "RECRUITER_SYSTEM_CONNECT_COMPANY"),
                     0);
    r = call_ok(&f, "onboarding.verify", text);
    ck_assert_str_eq(status_of(r, "RECRUITER_SYSTEM_CONNECT_COMPANY"), "ENABLED");
    cJSON_Delete(r);
    free(text);

    /* Part of a batch LinkedIn has no request for: the rest is enabled, the
     * missing one carries the seed's 200/404 row. */
    cJSON *d = widget_request(&f, "RECRUITER_SYSTEM_CONNECT_COMPANY");
    cJSON_Delete(d);
    cJSON_DeleteItemFromObject(body, "integrations");
    list = cJSON_AddArrayToObject(body, "integrations");
    cJSON *ghost = cJSON_Duplicate(a, 1);
    cJSON_ReplaceItemInObject(ghost, "integrationContext",
                              cJSON_CreateString("urn:li:organization:999"));
    cJSON_AddItemToArray(list, ghost);
    text = cJSON_PrintUnformatted(body);
    call_err(&f, "onboarding.enable", text, "li_no_request_found", "step 2");
    free(text);
    cJSON_Delete(body);
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
    teardown(&f);
}
END_TEST

/* An enable without "integrations" takes the stored requests still
 * REQUESTED: one enabled before must not be among them (LinkedIn refuses
 * the whole batch for an already enabled one), so a type requested later
 * is enabled alone, and the store shows both enabled. */
START_TEST(test_enable_later_request_skips_enabled)
{
    fixture f;
    setup_types(&f, "APPLY_CONNECT");
    provision(&f);
    cJSON *a = widget_request(&f, "APPLY_WITH_LINKEDIN");
    cJSON *r = call_ok(&f, "onboarding.enable", "{\"integrationName\":\"Acme AWLI\"}");
    ck_assert_int_eq(cJSON_GetObjectItem(r, "enabled")->valueint, 1);
    cJSON_Delete(r);
    r = call_ok(&f, "onboarding.request", NULL);
    ck_assert_str_eq(status_of(r, "APPLY_WITH_LINKEDIN"), "ENABLED");
    cJSON_Delete(r);

    cJSON *b = widget_request(&f, "APPLY_CONNECT");
    r = call_ok(&f, "onboarding.enable", "{\"integrationName\":\"Acme Apply Connect\"}");
    ck_assert_int_eq(cJSON_GetObjectItem(r, "enabled")->valueint, 1);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "integrations")), 1);
    ck_assert_str_eq(str_of(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "integrations"), 0),
                            "integrationType"),
                     "APPLY_CONNECT");
    cJSON_Delete(r);
    r = call_ok(&f, "onboarding.request", NULL);
    ck_assert_str_eq(status_of(r, "APPLY_WITH_LINKEDIN"), "ENABLED");
    ck_assert_str_eq(status_of(r, "APPLY_CONNECT"), "ENABLED");
    cJSON_Delete(r);
    /* Nothing left to enable: the seed's 200/404 row, LinkedIn not called. */
    ah_li_sim_stats s0, s1;
    ah_li_sim_get_stats(f.li, &s0);
    call_err(&f, "onboarding.enable", "{\"integrationName\":\"Acme\"}", "li_no_request_found",
             NULL);
    ah_li_sim_get_stats(f.li, &s1);
    ck_assert_uint_eq(s1.enable_calls, s0.enable_calls);
    cJSON_Delete(a);
    cJSON_Delete(b);
    teardown(&f);
}
END_TEST

START_TEST(test_expired_token_renewed_once)
{
    fixture f;
    setup(&f);
    provision(&f);
    cJSON *it = widget_request(&f, "APPLY_WITH_LINKEDIN");
    cJSON *r = call_ok(&f, "onboarding.verify", NULL);
    cJSON_Delete(r);
    ah_li_sim_expire_tokens(f.li);
    ah_li_sim_stats s0, s1;
    ah_li_sim_get_stats(f.li, &s0);
    r = call_ok(&f, "onboarding.enable", "{\"integrationName\":\"Acme AWLI\"}");
    cJSON_Delete(r);
    ah_li_sim_get_stats(f.li, &s1);
    ck_assert_uint_eq(s1.unauthorized - s0.unauthorized, 1);
    ck_assert_uint_eq(s1.tokens - s0.tokens, 1);
    ck_assert_uint_eq(s1.enable_calls - s0.enable_calls, 2);
    cJSON_Delete(it);
    teardown(&f);
}
END_TEST

/* --- every row of the Enable API error table ------------------------------------------ */

enum { E_ALREADY, E_MISMATCH, E_INCOMPLETE, E_FORBIDDEN, E_EXPIRED, E_INVALID, E_NO_RECORD, E_N };

START_TEST(test_enable_error_rows)
{
    fixture f;
    setup(&f);
    provision(&f);
    cJSON *it = widget_request(&f, "APPLY_WITH_LINKEDIN");
    char *items = items_json(it);
    char body[1024];
    snprintf(body, sizeof body, "{\"integrationName\":\"Acme AWLI\",%s", items + 1);
    ah_li_sim_stats s0, s1;
    ah_li_sim_get_stats(f.li, &s0);
    switch (_i) {
    case E_ALREADY: {
        cJSON *r = call_ok(&f, "onboarding.enable", body);
        cJSON_Delete(r);
        ck_assert_int_eq(call_err(&f, "onboarding.enable", body, "li_already_enabled",
                                  "onboarding.verify"),
                         409);
        break;
    }
    case E_MISMATCH:
        ah_li_sim_inject(f.li, "enable", 400, 400,
                         AH_LI_MSG_MISMATCH_PREFIX "dataProvider=urn:li:developerApplication:1&"
                                                   "integrationContext=urn:li:company:1&"
                                                   "integrationType=APPLY_WITH_LINKEDIN&"
                                                   "tenantType=JOBS not found in the query "
                                                   "parameter");
        call_err(&f, "onboarding.enable", body, "li_batch_mismatch", "match in the request body");
        break;
    case E_INCOMPLETE:
        /* Caught before calling LinkedIn... */
        call_err(&f, "onboarding.enable",
                 "{\"integrationName\":\"x\",\"integrations\":[{\"integrationType\":"
                 "\"APPLY_WITH_LINKEDIN\",\"tenantType\":\"JOBS\"}]}",
                 "li_key_parts_incomplete", "required keys are present");
        ah_li_sim_get_stats(f.li, &s1);
        ck_assert_uint_eq(s1.enable_calls, s0.enable_calls);
        /* ...and LinkedIn's own answer for a wrong key value. */
        call_err(&f, "onboarding.enable",
                 "{\"integrationName\":\"x\",\"integrations\":[{\"integrationContext\":"
                 "\"urn:li:organization:1\",\"integrationType\":\"APPLY_WITH_LI\","
                 "\"tenantType\":\"JOBS\"}]}",
                 "li_key_parts_incomplete", AH_LI_MSG_INCOMPLETE);
        break;
    case E_FORBIDDEN:
        ck_assert_int_eq(ah_li_sim_set_permitted(f.li, f.client_id, false), 0);
        call_err(&f, "onboarding.enable", body, "li_permission_denied",
                 "child (customer) application credentials");
        break;
    case E_EXPIRED:
        ah_li_sim_token_mode(f.li, AH_LI_TOKENS_EXPIRED);
        call_err(&f, "onboarding.enable", body, "li_token_expired", "Regenerate a new access token");
        ah_li_sim_get_stats(f.li, &s1);
        ck_assert_uint_eq(s1.enable_calls - s0.enable_calls, 2); /* renewed, retried once */
        break;
    case E_INVALID:
        ah_li_sim_token_mode(f.li, AH_LI_TOKENS_INVALID);
        call_err(&f, "onboarding.enable", body, "li_token_invalid", AH_LI_MSG_INVALID_ENABLE);
        ah_li_sim_get_stats(f.li, &s1);
        ck_assert_uint_eq(s1.enable_calls - s0.enable_calls, 2);
        break;
    case E_NO_RECORD:
        ck_assert_int_eq(call_err(&f, "onboarding.enable",
                                  "{\"integrationName\":\"x\",\"integrations\":[{"
                                  "\"integrationContext\":\"urn:li:organization:77\","
                                  "\"integrationType\":\"APPLY_WITH_LINKEDIN\","
                                  "\"tenantType\":\"JOBS\"}]}",
                                  "li_no_request_found", "initiated the integration request"),
                         404);
        break;
    default:
        ck_abort();
    }
    free(items);
    cJSON_Delete(it);
    teardown(&f);
}
END_TEST

/* --- every row of the Verify API error table ------------------------------------------ */

enum { V_NO_DATA, V_BAD_URN, V_INCOMPLETE, V_EXPIRED, V_INVALID, V_N };

START_TEST(test_verify_error_rows)
{
    fixture f;
    setup(&f);
    provision(&f);
    cJSON *it = widget_request(&f, "APPLY_WITH_LINKEDIN");
    char *items = items_json(it);
    switch (_i) {
    case V_NO_DATA:
        call_err(&f, "onboarding.verify",
                 "{\"integrations\":[{\"integrationContext\":\"urn:li:organization:77\","
                 "\"integrationType\":\"APPLY_WITH_LINKEDIN\",\"tenantType\":\"JOBS\"}]}",
                 "li_no_integration_found", "initiated the integration request");
        break;
    case V_BAD_URN:
        call_err(&f, "onboarding.verify",
                 "{\"integrations\":[{\"integrationContext\":\"org-4gX03uw\","
                 "\"integrationType\":\"APPLY_WITH_LINKEDIN\",\"tenantType\":\"JOBS\"}]}",
                 "li_invalid_integration_context", "urn:li:organization");
        break;
    case V_INCOMPLETE:
        call_err(&f, "onboarding.verify",
                 "{\"integrations\":[{\"integrationContext\":\"urn:li:organization:1\","
                 "\"integrationType\":\"APPLY_WITH_LINKEDIN\"}]}",
                 "li_key_parts_incomplete", "mandatory fields");
        call_err(&f, "onboarding.verify",
                 "{\"integrations\":[{\"integrationContext\":\"urn:li:organization:1\","
                 "\"integrationType\":\"NOT_A_TYPE\",\"tenantType\":\"JOBS\"}]}",
                 "li_key_parts_incomplete", AH_LI_MSG_INCOMPLETE);
        break;
    case V_EXPIRED:
        ah_li_sim_token_mode(f.li, AH_LI_TOKENS_EXPIRED);
        call_err(&f, "onboarding.verify", items, "li_token_expired", AH_LI_MSG_EXPIRED);
        break;
    case V_INVALID:
        ah_li_sim_token_mode(f.li, AH_LI_TOKENS_INVALID);
        call_err(&f, "onboarding.verify", items, "li_token_invalid", AH_LI_MSG_INVALID_VERIFY);
        break;
    default:
        ck_abort();
    }
    free(items);
    cJSON_Delete(it);
    teardown(&f);
}
END_TEST

/* --- headless Chromium over the DevTools pipe (support/cdp.c) ---------------------- */

/* Waits for the widget to render a button for the type; its centre. */
static const char wait_button_js[] =
    "new Promise(function(res,rej){var n=0;(function poll(){"
    "var b=document.querySelector('button[data-type=\"%s\"]');"
    "if(b){var r=b.getBoundingClientRect();res(JSON.stringify({x:r.left+r.width/2,"
    "y:r.top+r.height/2}));}"
    "else if(++n>300){rej(new Error('no widget button; the page says: '+document.body.innerText));}"
    "else setTimeout(poll,50);})();})";

static const char wait_status_js[] =
    "new Promise(function(res,rej){var n=0;(function poll(){"
    "var s=document.getElementById('atshub-status');"
    "if(s&&/received|failed|could not/.test(s.textContent)){res(s.textContent);}"
    "else if(++n>300){rej(new Error('no answer from atshub; the page says: '+document.body.innerText));}"
    "else setTimeout(poll,50);})();})";

static const char wait_error_js[] =
    "new Promise(function(res,rej){var n=0;(function poll(){"
    "var e=document.querySelector('[data-error]');"
    "if(e){res(e.getAttribute('data-error')+'\\n'+e.textContent+'\\n'+"
    "document.getElementById('atshub-status').textContent);}"
    "else if(++n>300){rej(new Error('no widget error; the page says: '+document.body.innerText));}"
    "else setTimeout(poll,50);})();})";

START_TEST(test_browser_click_reaches_atshub_then_enable)
{
    fixture f;
    setup(&f);
    provision(&f);
    char url[512];
    snprintf(url, sizeof url, "%s" PAGE_PATH "%s", f.base, f.token);
    browser b;
    browser_start(&b, f.dir);
    char *session = cdp_open(&b, url);
    char js[1024];
    snprintf(js, sizeof js, wait_button_js, "APPLY_WITH_LINKEDIN");
    char *xy = cdp_eval(&b, session, js, 40);
    click_at(&b, session, xy);
    free(xy);
    char *status = cdp_eval(&b, session, wait_status_js, 40);
    ck_assert_msg(strstr(status, "request was received") != NULL, "page says: %s", status);
    free(status);
    free(session);
    browser_stop(&b);

    /* The stored request, as the click left it, is then enabled. */
    cJSON *r = call_ok(&f, "onboarding.request", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "integrations")), 1);
    ck_assert_str_eq(status_of(r, NULL), "REQUESTED");
    cJSON_Delete(r);
    r = call_ok(&f, "onboarding.verify", NULL);
    ck_assert_str_eq(status_of(r, NULL), "REQUESTED");
    cJSON_Delete(r);
    r = call_ok(&f, "onboarding.enable", "{\"integrationName\":\"Acme Corp's Apply with LinkedIn\"}");
    cJSON_Delete(r);
    r = call_ok(&f, "onboarding.verify", NULL);
    ck_assert_str_eq(status_of(r, NULL), "ENABLED");
    cJSON_Delete(r);
    teardown(&f);
}
END_TEST

/* The plugin error table's two rows, as the customer meets them. */
START_TEST(test_browser_plugin_error_rows)
{
    fixture f;
    setup(&f);
    if (_i == 0) {
        /* The page's origin is not among the app's validJsSdkDomains. */
        cJSON *r = call_ok(&f, "onboarding.provision",
                           "{\"validJsSdkDomains\":[\"https://ats.example.com\"]}");
        const char *page = str_of(r, "configuration_page");
        snprintf(f.token, sizeof f.token, "%s", strstr(page, PAGE_PATH) + strlen(PAGE_PATH));
        cJSON_Delete(r);
    } else {
        provision(&f);
        ck_assert_int_eq(ah_li_sim_set_customer_admin(f.li, f.client_id, false), 0);
    }
    char url[512];
    snprintf(url, sizeof url, "%s" PAGE_PATH "%s", f.base, f.token);
    browser b;
    browser_start(&b, f.dir);
    char *session = cdp_open(&b, url);
    char *seen = cdp_eval(&b, session, wait_error_js, 40);
    if (_i == 0) {
        ck_assert_msg(strstr(seen, "error.origin.not.in.api.domains") != NULL, "%s", seen);
        ck_assert_msg(strstr(seen, "Domain validation failed for the api key.") != NULL, "%s", seen);
        /* atshub's page tells the operator the resolution. */
        ck_assert_msg(strstr(seen, "Update validJsSdkDomains") != NULL, "%s", seen);
    } else {
        ck_assert_msg(strstr(seen, AH_LI_MSG_NOT_ADMIN) != NULL, "%s", seen);
    }
    free(seen);
    free(session);
    browser_stop(&b);
    teardown(&f);
}
END_TEST

static Suite *li_suite(void)
{
    Suite *s = suite_create("linkedin");
    TCase *tc = tcase_create("onboarding");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_provision_one_app_per_tenant);
    tcase_add_test(tc, test_provision_refusals);
    tcase_add_test(tc, test_answers_not_pasted_into_errors);
    tcase_add_test(tc, test_finder_takes_only_the_asked_app);
    tcase_add_test(tc, test_page_and_callback);
    tcase_add_test(tc, test_token_not_logged);
    tcase_add_test(tc, test_page_before_provisioning);
    tcase_add_test(tc, test_request_wrong_shape_refused);
    tcase_add_test(tc, test_callback_refuses_bad_and_bounds_requests);
    tcase_add_test(tc, test_enable_one_then_verify);
    tcase_add_test(tc, test_enable_several_in_one_call);
    tcase_add_test(tc, test_enable_later_request_skips_enabled);
    tcase_add_test(tc, test_expired_token_renewed_once);
    suite_add_tcase(s, tc);
    TCase *rows = tcase_create("error_rows");
    tcase_set_timeout(rows, 30);
    tcase_add_loop_test(rows, test_enable_error_rows, 0, E_N);
    tcase_add_loop_test(rows, test_verify_error_rows, 0, V_N);
    suite_add_tcase(s, rows);
    if (ah_t_browser("check_linkedin")) {
        TCase *br = tcase_create("browser");
        tcase_set_timeout(br, 90);
        tcase_add_test(br, test_browser_click_reaches_atshub_then_enable);
        tcase_add_loop_test(br, test_browser_plugin_error_rows, 0, 2);
        suite_add_tcase(s, br);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(li_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
