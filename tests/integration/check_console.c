/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The operator console (issue 17), end to end: a daemon with its admin TCP
 * listener and an ERecruit simulator; `atshub console` prints the login
 * link; headless Chromium (the DevTools pipe, support/cdp.c) logs in with
 * it, adds a tenant and a connection through the page's forms, syncs it and
 * watches the progress reach the end, disables it (a REST call is then
 * refused), reloads the plugin (a new generation shows), filters the log;
 * the DOM never holds a secret once it has been dismissed. Then the
 * session's protections without a browser: single-use codes, cookie
 * attributes, CSRF token, Origin and Sec-Fetch-Site checks, CSP.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "clock.h"
#include "core.h"
#include "daemon.h"
#include "ops.h"
#include "erecruit.h"
#include "sim.h"
#include "support/cdp.h"
#include "support/harness.h"
#include "webhooks.h"

#define POSITIONS 12
#define CONTACTS 20
#define SUBMISSIONS 30

typedef struct fixture {
    atomic_int hook_status; /* what the product's webhook receiver answers */
    atomic_int hook_calls;
    char *dir, *ini;
    ah_sim *sim;
    ah_erecruit_sim *er;
    ah_core *core;
    char api[128]; /* http://127.0.0.1:PORT of the REST API */
} fixture;

static void on_hook(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    (void)req;
    fixture *f = arg;
    atomic_fetch_add(&f->hook_calls, 1);
    resp->status = atomic_load(&f->hook_status);
    resp->body = strdup("{}");
}

/* interval_s: [sync] interval_s (0: no schedule). */
static void setup_with(fixture *f, int interval_s)
{
    memset(f, 0, sizeof *f);
    f->dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(f->dir);
    char extra[1024];
    snprintf(extra, sizeof extra,
             "erecruit = %s/erecruit.so\n[admin]\nlisten = 127.0.0.1:0\ntoken_file = admin.token\n"
             "[webhooks]\nallow_networks = 127.0.0.0/8\nmax_failures = 5\nbackoff_ms = 600000\n"
             "timeout_ms = 2000\n",
             ah_t_env("AH_PLUGIN_DIR"));
    f->ini = ah_t_write_ini(f->dir, extra);
    ck_assert_ptr_nonnull(f->ini);
    if (interval_s > 0) {
        char *text = ah_t_read_file(f->ini, NULL), *at = strstr(text, "interval_s = 0\n");
        ck_assert_ptr_nonnull(at);
        char *fixed = NULL;
        ck_assert_int_ge(asprintf(&fixed, "%.*sinterval_s = %d\n%s", (int)(at - text), text,
                                  interval_s, at + strlen("interval_s = 0\n")), 0);
        ck_assert_int_eq(ah_t_write_file(f->ini, fixed), 0);
        free(fixed);
        free(text);
    }
    ah_sim_opts so = {0};
    f->sim = ah_sim_new(&so);
    ck_assert_ptr_nonnull(f->sim);
    ah_erecruit_opts eo = {.seed = 3, .positions = POSITIONS, .contacts = CONTACTS,
                           .submissions = SUBMISSIONS};
    f->er = ah_erecruit_sim_attach(f->sim, &eo);
    ck_assert_ptr_nonnull(f->er);
    atomic_store(&f->hook_status, 500);
    ck_assert_int_eq(ah_sim_route(f->sim, "POST", "/hook", on_hook, f), 0);
    ck_assert_int_eq(ah_sim_start(f->sim), 0);
    ah_config cfg;
    char err[1024];
    ck_assert_msg(ah_config_load(f->ini, &cfg, err, sizeof err) == 0, "%s", err);
    ah_core_opts o = {.load_plugins = true, .start_bus = true};
    f->core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ck_assert_msg(f->core != NULL, "%s", err);
    ck_assert_msg(ah_daemon_start(f->core, err, sizeof err) == 0, "%s", err);
    snprintf(f->api, sizeof f->api, "http://127.0.0.1:%u", (unsigned)ah_httpd_port(f->core->httpd));
}

static void setup(fixture *f)
{
    setup_with(f, 0);
}

static void teardown(fixture *f)
{
    ah_daemon_close(f->core);
    ah_sim_stop(f->sim);
    ah_erecruit_sim_free(f->er);
    ah_t_rmrf(f->dir);
    free(f->dir);
    free(f->ini);
}

/* `atshub console --json`: the login link (malloc'd). */
static char *login_url(fixture *f)
{
    char exe[1024];
    snprintf(exe, sizeof exe, "%s/atshub", ah_t_env("AH_BUILD_DIR"));
    const char *argv[] = {exe, "-c", f->ini, "console", "--json", NULL};
    char *out = NULL, *err = NULL;
    int rc = ah_t_run(argv, NULL, &out, &err);
    ck_assert_msg(rc == 0, "atshub console: exit %d: %s", rc, err ? err : "");
    cJSON *j = cJSON_Parse(out);
    const cJSON *u = cJSON_GetObjectItem(j, "url");
    ck_assert_msg(cJSON_IsString(u), "atshub console printed: %s", out);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "expires_in_s")->valueint, 120);
    char *url = strdup(u->valuestring);
    ck_assert_msg(strncmp(url, "http://127.0.0.1:", 17) == 0 && strstr(url, "/console/login?code=") != NULL,
                  "%s", url);
    cJSON_Delete(j);
    free(out);
    free(err);
    return url;
}

/* In the page: __w(pred, what) polls pred every 50 ms until it returns a
 * truthy value (resolved as a string) or 60 s pass (rejected with what and
 * the page's text). A safety net for a loaded machine, not a timing. */
static const char prelude_js[] =
    "if(!window.__w)window.__w=function(pred,what){return new Promise(function(res,rej){var n=0;"
    "(function poll(){var v;try{v=pred();}catch(e){v=null;}"
    "if(v){res(String(v));}else if(++n>1200){rej(new Error('waited for '+what+'; the page says: '"
    "+document.body.innerText.slice(0,2000)));}else setTimeout(poll,50);})();});};";

static char *eval(browser *b, const char *s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static char *eval(browser *b, const char *s, const char *fmt, ...)
{
    char *js = NULL;
    va_list ap;
    va_start(ap, fmt);
    ck_assert_int_ge(vasprintf(&js, fmt, ap), 0);
    va_end(ap);
    char *all = NULL;
    ck_assert_int_ge(asprintf(&all, "%s%s", prelude_js, js), 0);
    char *v = cdp_eval(b, s, all, 90);
    free(all);
    free(js);
    return v;
}

/* Goes to a view and waits until it has rendered. */
static void go(browser *b, const char *s, const char *hash, const char *view)
{
    /* ready is cleared first: the hashchange that renders anew comes later. */
    free(eval(b, s, "document.body.dataset.ready='';location.hash='%s';__w(function(){return document.body.dataset.ready==='%s'"
                    "&&location.hash==='%s';},'the %s view')", hash, view, hash, view));
}

/* Everything the page holds: its markup and every input's value. */
static const char dom_js[] =
    "document.documentElement.outerHTML+'\\n'+Array.from(document.querySelectorAll('input,select,textarea'))"
    ".map(function(e){return e.value;}).join('\\n')";

static void dom_lacks(browser *b, const char *s, const char *secret, const char *what)
{
    char *dom = cdp_eval(b, s, dom_js, 30);
    ck_assert_msg(strstr(dom, secret) == NULL, "the page still shows %s", what);
    free(dom);
}

/* One /v1 request as the tenant with the key; returns the status. */
static long rest(fixture *f, const char *key, const char *path, char **body)
{
    char url[512], auth[256];
    snprintf(url, sizeof url, "%s%s", f->api, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *h[] = {auth, "X-Connection: main", NULL};
    return ah_t_http("GET", url, h, NULL, body);
}

/* A browser logged in to the fixture's console (a login link from `atshub
 * console`), on its overview: the page's session, for eval and go. */
static char *console_open(fixture *f, browser *b)
{
    char *url = login_url(f);
    browser_start(b, f->dir);
    char *s = cdp_open(b, url);
    free(url);
    free(eval(b, s, "__w(function(){return location.pathname==='/console/'&&"
                    "document.body.dataset.ready==='overview';},'the console after login')"));
    return s;
}

START_TEST(test_console_in_browser)
{
    fixture f;
    setup(&f);
    /* The token file was made at start, readable by the owner only. */
    char tokf[1024];
    snprintf(tokf, sizeof tokf, "%s/admin.token", f.dir);
    struct stat st;
    ck_assert_int_eq(stat(tokf, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    browser b;
    char *s = console_open(&f, &b);
    /* The session cookie is HttpOnly: the page's script cannot read it. */
    char *cookies = eval(&b, s, "'['+document.cookie+']'");
    ck_assert_msg(strstr(cookies, "ah_console") == NULL, "%s", cookies);
    free(cookies);

    /* A tenant through the form: its API key shows once. */
    go(&b, s, "#/tenants", "tenants");
    char *key = eval(&b, s, "document.getElementById('tenant-name').value='acme';"
                            "document.getElementById('tenant-add').requestSubmit();"
                            "__w(function(){var e=document.getElementById('once-secret');"
                            "return e&&e.textContent;},'the new API key')");
    ck_assert_msg(strncmp(key, "ahk_", 4) == 0, "%s", key);
    free(eval(&b, s, "document.getElementById('once-done').click();"
                     "__w(function(){return !document.getElementById('once');},'the key hidden')"));
    dom_lacks(&b, s, key, "the API key after Done");

    /* The product's webhook endpoint, failing for now (the tenant adds it
     * with POST /v1/webhooks; here directly). */
    ah_tenant_row tr = {0};
    ck_assert_int_eq(f.core->store->ops->tenant_get(f.core->store, "acme", &tr), 0);
    char hook[512], secret[128], werr[512];
    int64_t wid = 0;
    snprintf(hook, sizeof hook, "%s/hook", ah_sim_url(f.sim));
    ck_assert_msg(ah_webhook_add(f.core, tr.id, hook, NULL, &wid, secret, sizeof secret, werr,
                                 sizeof werr) == 0, "%s", werr);
    ah_tenant_row_free(&tr);

    /* A connection through the form the settings table generates. */
    go(&b, s, "#/connections?tenant=acme", "connections");
    char *kind = eval(&b, s,
                      "var p=document.getElementById('conn-plugin');p.value='erecruit';"
                      "p.dispatchEvent(new Event('change'));"
                      "__w(function(){var e=document.getElementById('set-client_secret');"
                      "return e&&e.type;},'the erecruit form')");
    ck_assert_str_eq(kind, "password");
    free(kind);
    char *added = eval(&b, s,
                       "function put(id,v){document.getElementById(id).value=v;}"
                       "put('conn-name','main');put('set-base_url','%s');put('set-client_id','atshub');"
                       "put('set-client_secret','s3cret');"
                       "document.getElementById('settings-form').requestSubmit();"
                       "__w(function(){return document.querySelector('[data-connection=\"main\"]')&&"
                       "document.body.dataset.ready==='connections'&&"
                       "document.querySelector('[data-enabled]').dataset.enabled;},'the new connection')",
                       ah_sim_url(f.sim));
    ck_assert_str_eq(added, "true");
    free(added);
    dom_lacks(&b, s, "s3cret", "the client secret");

    /* Sync now: the progress reaches the end. */
    go(&b, s, "#/syncs", "syncs");
    char *recs = eval(&b, s,
                      "document.querySelector('[data-sync-now=\"acme/main\"]').click();"
                      "__w(function(){var e=document.querySelector('[data-sync=\"acme/main\"]');"
                      "if(e&&e.dataset.state==='failed')throw new Error('sync failed');"
                      "return e&&e.dataset.state==='done'&&e.querySelectorAll('progress[value=\"1\"]').length"
                      "&&e.dataset.records;},'the sync to end')");
    ck_assert_int_eq(atoi(recs), POSITIONS + CONTACTS + SUBMISSIONS);
    free(recs);

    /* The events the sync published; the webhook endpoint, failing: after
     * its first failure it waits out a 10-minute backoff, and "Retry now"
     * tries the failed delivery at once (it fails again). The operator
     * disables the endpoint, and, resumed from the page once the receiver
     * is fixed, the failed delivery is retried and delivered. */
    go(&b, s, "#/events?tenant=acme", "events");
    free(eval(&b, s, "document.body.dataset.ready='';document.getElementById('ev-types').value="
                     "'event.job.*,event.candidate.*,event.application.*';"
                     "document.querySelector('form').requestSubmit();"
                     "__w(function(){return document.body.dataset.ready==='events'&&"
                     "location.hash.indexOf('types=')>0;},'the filtered events')"));
    char *evs = eval(&b, s, "String(document.querySelectorAll('tbody tr').length)");
    ck_assert_int_eq(atoi(evs), POSITIONS + CONTACTS + SUBMISSIONS); /* one per new record */
    free(evs);
    /* The same log from the CLI. */
    char exe[1024];
    snprintf(exe, sizeof exe, "%s/atshub", ah_t_env("AH_BUILD_DIR"));
    const char *ev_argv[] = {exe, "-c", f.ini, "events", "acme", "--types", "event.job.*", "--json", NULL};
    char *ev_out = NULL, *ev_err = NULL;
    ck_assert_msg(ah_t_run(ev_argv, NULL, &ev_out, &ev_err) == 0, "%s", ev_err ? ev_err : "");
    cJSON *ev = cJSON_Parse(ev_out);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ev, "data")), POSITIONS);
    cJSON_Delete(ev);
    free(ev_out);
    free(ev_err);
    go(&b, s, "#/webhooks", "webhooks");
    free(eval(&b, s, "__w(function(){var b=Array.from(document.querySelectorAll('button'))"
                     ".find(function(x){return x.textContent==='Retry now';});"
                     "if(!b){document.body.dataset.ready='';location.hash='#/webhooks?'+Date.now();}"
                     "return b&&'backoff';},'the endpoint in its backoff after one failure')"));
    int calls_first = atomic_load(&f.hook_calls);
    ck_assert_int_ge(calls_first, 1);
    free(eval(&b, s, "__w(function(){return document.body.dataset.ready==='webhooks';},'webhooks');"
                     "Array.from(document.querySelectorAll('button')).find(function(x){"
                     "return x.textContent==='Retry now';}).click();'clicked'"));
    for (int i = 0; i < 600 && atomic_load(&f.hook_calls) == calls_first; i++)
        usleep(50 * 1000);
    ck_assert_int_gt(atomic_load(&f.hook_calls), calls_first); /* at once, not in 10 min */
    free(eval(&b, s, "document.body.dataset.ready='';location.hash='#/webhooks?'+Date.now();"
                     "__w(function(){return document.body.dataset.ready==='webhooks';},'webhooks');"
                     "Array.from(document.querySelectorAll('button')).find(function(x){"
                     "return x.textContent==='Disable';}).click();'clicked'"));
    char *wstate = eval(&b, s, "__w(function(){var b=Array.from(document.querySelectorAll('button'))"
                               ".find(function(x){return x.textContent==='Resume (retry)';});"
                               "if(!b){document.body.dataset.ready='';location.hash='#/webhooks?'+Date.now();}"
                               "return b&&'disabled';},'the endpoint disabled by the operator')");
    ck_assert_str_eq(wstate, "disabled");
    free(wstate);
    int calls_before = atomic_load(&f.hook_calls);
    ck_assert_int_gt(calls_before, calls_first);
    atomic_store(&f.hook_status, 200);
    free(eval(&b, s, "__w(function(){return document.body.dataset.ready==='webhooks';},'webhooks');"
                     "Array.from(document.querySelectorAll('button')).find(function(x){"
                     "return x.textContent==='Resume (retry)';}).click();"
                     "__w(function(){return Array.from(document.querySelectorAll('button')).find("
                     "function(x){return x.textContent==='Disable';});},'the endpoint resumed')"));
    char *delivered = eval(&b, s,
                           "var n=0;__w(function(){if(++n%%10===0)Array.from(document.querySelectorAll('button'))"
                           ".find(function(x){return x.textContent==='Deliveries';}).click();"
                           "var d=document.getElementById('deliveries');"
                           "return d&&/delivered/.test(d.textContent)&&'yes';},'a delivered delivery')");
    ck_assert_str_eq(delivered, "yes");
    free(delivered);
    ck_assert_int_gt(atomic_load(&f.hook_calls), calls_before);

    /* A REST call works, then is refused once the page disables the connection. */
    char *body = NULL;
    long code = rest(&f, key, "/v1/stages", &body);
    ck_assert_msg(code == 200, "%ld %s", code, body);
    free(body);
    go(&b, s, "#/connections?tenant=acme", "connections");
    free(eval(&b, s, "document.querySelector('button[data-action=\"disable\"][data-connection=\"main\"]').click();"
                     "__w(function(){var e=document.querySelector('[data-enabled]');"
                     "return e&&e.dataset.enabled==='false';},'the connection disabled')"));
    body = NULL;
    code = rest(&f, key, "/v1/stages", &body);
    ck_assert_msg(code == 409 && strstr(body, "connection_disabled") != NULL, "%ld %s", code, body);
    free(body);

    /* A plugin reload shows the new generation. */
    go(&b, s, "#/plugins", "plugins");
    char *g0 = eval(&b, s, "document.querySelector('[data-plugin-generation=\"erecruit\"]').textContent");
    char *g1 = eval(&b, s, "document.querySelector('form[data-plugin=\"erecruit\"]').requestSubmit();"
                           "__w(function(){var e=document.querySelector('#reload-result [data-generation]');"
                           "return e&&e.dataset.generation+'/'+document.querySelector("
                           "'[data-plugin-generation=\"erecruit\"]').textContent;},'the reload')");
    char want[64];
    snprintf(want, sizeof want, "%d/%d", atoi(g0) + 1, atoi(g0) + 1);
    ck_assert_str_eq(g1, want);
    free(g0);
    free(g1);

    /* The log, filtered through its form: the sync's calls to the provider. */
    go(&b, s, "#/log?tenant=acme", "log");
    char *n = eval(&b, s, "document.getElementById('log-count').dataset.count");
    ck_assert_int_gt(atoi(n), 0);
    free(n);
    free(eval(&b, s, "document.getElementById('log-status').value='200';"
                     "document.getElementById('log-action').value='OUTBOUND';"
                     "document.body.dataset.ready='';"
                     "document.getElementById('log-filter').requestSubmit();"
                     "__w(function(){return document.body.dataset.ready==='log'&&"
                     "location.hash.indexOf('status=200')>0&&location.hash.indexOf('action=OUTBOUND')>0;},"
                     "'the filtered log')"));
    char *acts = eval(&b, s, "Array.from(new Set(Array.from(document.querySelectorAll('td[data-label=\\\"Action\\\"]'))"
                            ".map(function(e){return e.textContent;}))).join(',')");
    ck_assert_str_eq(acts, "OUTBOUND");
    free(acts);
    char *sts = eval(&b, s, "var a=Array.from(document.querySelectorAll('[data-status]'))"
                           ".map(function(e){return e.dataset.status;});a.length+':'+a.join(',')");
    ck_assert_msg(strncmp(sts, "0:", 2) != 0, "no outbound call in the filtered log");
    char *rest_of = strchr(sts, ':') + 1;
    for (char *t = strtok(rest_of, ","); t != NULL; t = strtok(NULL, ","))
        ck_assert_str_eq(t, "200");
    free(sts);

    /* The charts count the tenant's requests. */
    go(&b, s, "#/overview", "overview");
    char *chart = eval(&b, s, "var e=document.querySelector('svg.chart[aria-label^=\"Tenant acme\"]');"
                              "e?e.getAttribute('aria-label'):'none'");
    ck_assert_msg(strstr(chart, "requests 2") != NULL, "%s", chart);
    free(chart);

    /* Every control has a label; 320 px wide scrolls nothing sideways. */
    const char *views[][2] = {{"#/tenants", "tenants"}, {"#/connections?tenant=acme", "connections"},
                              {"#/plugins", "plugins"}, {"#/syncs", "syncs"}, {"#/log", "log"},
                              {"#/webhooks", "webhooks"}, {"#/events?tenant=acme", "events"},
                              {"#/overview", "overview"}};
    cJSON *m = NULL;
    cdp_wait(&b, cdp_send(&b, s, "Emulation.setDeviceMetricsOverride",
                          "{\"width\":320,\"height\":640,\"deviceScaleFactor\":1,\"mobile\":true}"), 30, &m);
    cJSON_Delete(m);
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) {
        go(&b, s, views[i][0], views[i][1]);
        char *unl = eval(&b, s, "Array.from(document.querySelectorAll('input,select')).filter(function(e){"
                                "return !(e.labels&&e.labels.length)&&!e.getAttribute('aria-label');})"
                                ".map(function(e){return e.id||e.name;}).join(',')");
        ck_assert_msg(unl[0] == '\0', "%s: controls without a label: %s", views[i][1], unl);
        free(unl);
        char *w = eval(&b, s, "String(document.documentElement.scrollWidth)");
        ck_assert_msg(atoi(w) <= 320, "%s is %s px wide at 320 px", views[i][1], w);
        free(w);
    }

    /* No page shows a secret after creation. */
    dom_lacks(&b, s, key, "the API key");
    dom_lacks(&b, s, "s3cret", "the client secret");

    free(s);
    browser_stop(&b);
    free(key);
    teardown(&f);
}
END_TEST

/* The tenants, syncs and webhooks views show a page of 100 rows at a time
 * (the daemon's lists come in pages, and a table of 50,000 rows is no
 * view): "Next page" goes on from the last row shown, "First page" goes
 * back, and every tenant shows on one of the pages once. */
START_TEST(test_console_pages_lists)
{
    fixture f;
    setup(&f);
    ah_ops_err e;
    cJSON *out = NULL;
    for (int i = 0; i < 130; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%03d", i);
        ck_assert_int_eq(ah_ops_tenant_add(f.core, name, &out, &e), 0);
        cJSON_Delete(out);
    }
    cJSON *set = cJSON_CreateObject();
    cJSON_AddStringToObject(set, "base_url", ah_sim_url(f.sim));
    cJSON_AddStringToObject(set, "client_id", "atshub");
    cJSON_AddStringToObject(set, "client_secret", "s3cret");
    for (int i = 0; i < 105; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%03d", i);
        ck_assert_int_eq(ah_ops_connection_add(f.core, "t007", "erecruit", name, set, &out, &e), 0);
        cJSON_Delete(out);
        ck_assert_int_eq(ah_ops_connection_enable(f.core, "t007", name, false, &e), 0);
    }
    cJSON_Delete(set);
    /* 105 webhook endpoints, one of each of the first 105 tenants (a
     * tenant has at most 100). */
    char hook[512], secret[128], werr[512], wids[105][24];
    snprintf(hook, sizeof hook, "%s/hook", ah_sim_url(f.sim));
    for (int i = 0; i < 105; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%03d", i);
        ah_tenant_row tr = {0};
        ck_assert_int_eq(f.core->store->ops->tenant_get(f.core->store, name, &tr), 0);
        int64_t wid = 0;
        ck_assert_msg(ah_webhook_add(f.core, tr.id, hook, NULL, &wid, secret, sizeof secret, werr,
                                     sizeof werr) == 0, "%s", werr);
        ah_tenant_row_free(&tr);
        snprintf(wids[i], sizeof wids[i], "%lld", (long long)wid);
    }

    browser b;
    char *s = console_open(&f, &b);
    static const char rows_js[] =
        "Array.from(document.querySelectorAll('tbody tr')).map(function(r){"
        "return r.cells[0].textContent;}).join(',')";
    go(&b, s, "#/tenants", "tenants");
    char *first = eval(&b, s, "%s", rows_js);
    ck_assert_msg(strncmp(first, "t000,t001,", 10) == 0 && strstr(first, "t099") != NULL &&
                      strstr(first, "t100") == NULL,
                  "%s", first);
    char *nav = eval(&b, s, "(document.getElementById('page-first')?'first ':'')+"
                            "document.getElementById('page-next').getAttribute('href')");
    ck_assert_str_eq(nav, "#/tenants?cursor=t099");
    go(&b, s, nav, "tenants");
    free(nav);
    char *second = eval(&b, s, "%s", rows_js);
    ck_assert_str_eq(second, "t100,t101,t102,t103,t104,t105,t106,t107,t108,t109,t110,t111,t112,"
                             "t113,t114,t115,t116,t117,t118,t119,t120,t121,t122,t123,t124,t125,"
                             "t126,t127,t128,t129");
    nav = eval(&b, s, "(document.getElementById('page-next')?'next ':'')+"
                      "document.getElementById('page-first').getAttribute('href')");
    ck_assert_str_eq(nav, "#/tenants");
    free(nav);

    /* Syncs: 105 connections of t007, the first page polled, then the next. */
    go(&b, s, "#/syncs", "syncs");
    char *syncs = eval(&b, s, "String(document.querySelectorAll('tbody tr').length)+' '+"
                              "document.getElementById('page-next').getAttribute('href')");
    ck_assert_str_eq(syncs, "100 #/syncs?cursor=t007%2Fc099");
    free(syncs);
    go(&b, s, "#/syncs?cursor=t007%2Fc099", "syncs");
    syncs = eval(&b, s, "%s", rows_js);
    ck_assert_str_eq(syncs, "t007/c100,t007/c101,t007/c102,t007/c103,t007/c104");
    free(syncs);

    /* Webhooks: 100 endpoints, then the other 5 after the 100th's id. */
    char want[256];
    go(&b, s, "#/webhooks", "webhooks");
    char *hooks = eval(&b, s, "String(document.querySelectorAll('tbody tr').length)+' '+"
                              "(document.getElementById('page-first')?'first ':'')+"
                              "document.getElementById('page-next').getAttribute('href')");
    snprintf(want, sizeof want, "100 #/webhooks?cursor=%s", wids[99]);
    ck_assert_str_eq(hooks, want);
    free(hooks);
    go(&b, s, want + 4, "webhooks");
    hooks = eval(&b, s, "%s", rows_js);
    snprintf(want, sizeof want, "%s,%s,%s,%s,%s", wids[100], wids[101], wids[102], wids[103],
             wids[104]);
    ck_assert_str_eq(hooks, want);
    free(hooks);
    hooks = eval(&b, s, "(document.getElementById('page-next')?'next ':'')+"
                        "document.getElementById('page-first').getAttribute('href')");
    ck_assert_str_eq(hooks, "#/webhooks");
    free(hooks);

    free(first);
    free(second);
    free(s);
    browser_stop(&b);
    teardown(&f);
}
END_TEST

/* In the page, for the tests of its polls and its secrets: window.__t
 * records the view's timers of a second or more instead of running them
 * (__fire() runs each once, as if its time had come; __delays() lists
 * them), and wraps fetch: per "METHOD /path", hold[k] keeps requests
 * until __release(), failNext[k] answers the next one with that status,
 * fake[k] replaces an answer's data; inflight/max count requests under
 * way, settled counts answers (a task after the page's own continuations
 * have run: no timing). */
static const char harness_js[] =
    "if(!window.__t){var T=window.__t={live:{},next:1e6,held:[],inflight:{},max:{},settled:0,"
    "hold:{},failNext:{},fake:{}};"
    "var oST=window.setTimeout.bind(window),oCT=window.clearTimeout.bind(window),"
    "oSI=window.setInterval.bind(window),oCI=window.clearInterval.bind(window),oF=window.fetch.bind(window);"
    "var cap=function(once){return function(fn,d){if((+d||0)>=1000){var id=T.next++;"
    "T.live[id]={fn:fn,d:+d,once:once};return id;}return (once?oST:oSI).apply(window,arguments);};};"
    "window.setTimeout=cap(true);window.setInterval=cap(false);"
    "window.clearTimeout=function(id){if(T.live[id])delete T.live[id];else oCT(id);};"
    "window.clearInterval=function(id){if(T.live[id])delete T.live[id];else oCI(id);};"
    "window.__fire=function(){var ids=Object.keys(T.live);ids.forEach(function(id){var t=T.live[id];"
    "if(!t)return;if(t.once)delete T.live[id];t.fn();});return ids.length;};"
    "window.__delays=function(){return Object.keys(T.live).map(function(id){return T.live[id].d;}).join(',');};"
    "window.fetch=function(path,opt){var k=((opt&&opt.method)||'GET')+' '+String(path).split('?')[0];"
    "if(T.failNext[k]){var st=T.failNext[k];delete T.failNext[k];return Promise.resolve(new Response("
    "JSON.stringify({error:{code:'overloaded',message:'refused by the test'}}),{status:st,"
    "headers:{'Content-Type':'application/json'}}));}"
    "T.inflight[k]=(T.inflight[k]||0)+1;T.max[k]=Math.max(T.max[k]||0,T.inflight[k]);"
    "var go=function(){return oF(path,opt).then(function(r){return r.json().then(function(d){"
    "if(T.fake[k])d.data=T.fake[k];T.inflight[k]--;oST(function(){T.settled++;},0);"
    "return {ok:r.ok,status:r.status,json:function(){return Promise.resolve(d);}};});});};"
    "if(T.hold[k])return new Promise(function(res){T.held.push(function(){res(go());});});return go();};"
    "window.__release=function(){var h=T.held;T.held=[];h.forEach(function(f){f();});return h.length;};}";

/* The view at hash polls one request `key` at a time, only while it is
 * current: its next poll is set after each answer (none while one is under
 * way), and a view left during its first load leaves no poll behind. */
static void check_polls(browser *b, const char *s, const char *hash, const char *view, const char *key)
{
    go(b, s, "#/log", "log"); /* no poll there */
    char *d = eval(b, s, "__delays()");
    ck_assert_msg(d[0] == '\0', "a poll outlived its view: %s", d);
    free(d);
    go(b, s, hash, view);
    d = eval(b, s, "__delays()");
    ck_assert_msg(d[0] != '\0' && strchr(d, ',') == NULL, "%s: want one poll, have [%s]", view, d);
    free(d);
    /* Its time comes while the answer is slow: no second request. */
    char *n = eval(b, s,
                   "var k='%s';__t.max[k]=0;__t.hold[k]=true;__fire();"
                   "__w(function(){return __t.held.length===1;},'the held poll').then(function(){"
                   "var live=Object.keys(__t.live).length;__fire();"
                   "return live+'/'+__t.max[k];})", key);
    ck_assert_msg(strcmp(n, "0/1") == 0, "%s: polls set while one is under way / most at once: %s",
                  view, n);
    free(n);
    /* Answered: the next poll is set. */
    n = eval(b, s, "var s0=__t.settled;__t.hold={};__release();"
                   "__w(function(){return __t.settled>s0&&Object.keys(__t.live).length===1;},"
                   "'the next poll').then(function(){return __delays();})");
    free(n);
    /* Left during its first load: nothing polls when that answer comes. */
    go(b, s, "#/tenants", "tenants");
    free(eval(b, s, "__t.hold['%s']=true;document.body.dataset.ready='';location.hash='%s';"
                    "__w(function(){return __t.held.length===1;},'the first load held')", key, hash));
    go(b, s, "#/tenants", "tenants");
    n = eval(b, s, "var s0=__t.settled;__t.hold={};__release();"
                   "__w(function(){return __t.settled>s0;},'the late answer').then(function(){"
                   "return '['+__delays()+']';})");
    ck_assert_msg(strcmp(n, "[]") == 0, "%s left during its first load still polls: %s", view, n);
    free(n);
}

/* Secrets shown once survive a list that fails to reload and a view left
 * while they were on their way; polls neither overlap nor outlive their
 * view, and the Syncs page polls fast only while a sync runs; a link to
 * an unknown tenant's connections says so. */
START_TEST(test_console_secrets_and_polls)
{
    fixture f;
    setup(&f);
    browser b;
    char *s = console_open(&f, &b);
    free(eval(&b, s, "%s;'installed'", harness_js));

    /* The API key shows although the list's reload after the add fails. */
    go(&b, s, "#/tenants", "tenants");
    char *key = eval(&b, s, "__t.failNext['GET /admin/tenants']=503;"
                            "document.getElementById('tenant-name').value='acme';"
                            "document.getElementById('tenant-add').requestSubmit();"
                            "__w(function(){var e=document.getElementById('once-secret');"
                            "return e&&e.textContent;},'the API key after a failed reload')");
    ck_assert_msg(strncmp(key, "ahk_", 4) == 0, "%s", key);
    char *st = eval(&b, s, "__w(function(){return /overloaded/.test(document.getElementById('status')"
                           ".textContent)&&'shown';},'the failed reload reported')");
    free(st);
    free(eval(&b, s, "document.getElementById('once-done').click();"
                     "__w(function(){return !document.getElementById('once');},'the key hidden')"));
    dom_lacks(&b, s, key, "the API key after Done");
    free(key);
    /* The add answered after the operator went to another view. */
    free(eval(&b, s, "__t.hold['POST /admin/tenants']=true;"
                     "document.getElementById('tenant-name').value='beta';"
                     "document.getElementById('tenant-add').requestSubmit();"
                     "__w(function(){return __t.held.length===1;},'the add held')"));
    go(&b, s, "#/plugins", "plugins");
    key = eval(&b, s, "__t.hold={};__release();"
                      "__w(function(){var e=document.getElementById('once-secret');"
                      "return e&&e.textContent;},'the API key after leaving the view')");
    ck_assert_msg(strncmp(key, "ahk_", 4) == 0, "%s", key);
    free(key);
    /* The next navigation takes it away. */
    go(&b, s, "#/tenants", "tenants");
    char *gone = eval(&b, s, "document.getElementById('once')?'still there':'gone'");
    ck_assert_str_eq(gone, "gone");
    free(gone);

    /* A link to a tenant that does not exist. */
    go(&b, s, "#/connections?tenant=nobody", "connections");
    char *msg = eval(&b, s, "var e=document.getElementById('conn-error');e?e.textContent:'none'");
    ck_assert_msg(strstr(msg, "no tenant 'nobody'") != NULL, "%s", msg);
    free(msg);

    check_polls(&b, s, "#/overview", "overview", "GET /admin/recent");
    check_polls(&b, s, "#/syncs", "syncs", "GET /admin/syncs");
    /* Syncs: every 10 s when nothing runs, every second while one does. */
    go(&b, s, "#/syncs", "syncs");
    char *idle = eval(&b, s, "__delays()");
    char *busy = eval(&b, s,
                      "var k='GET /admin/syncs';__t.fake[k]=[{tenant:'acme',connection:'main',plugin:'erecruit',"
                      "enabled:true,running:true,last:null,scheduled:null,schedule_interval_s:0,next_pass:null}];"
                      "var s0=__t.settled;__fire();"
                      "__w(function(){return __t.settled>s0&&Object.keys(__t.live).length===1;},'a poll')"
                      ".then(function(){delete __t.fake[k];return __delays();})");
    ck_assert_msg(atoi(busy) > 0 && atoi(busy) < atoi(idle), "idle every %s ms, running every %s ms",
                  idle, busy);
    free(busy);
    /* A scheduled run counts as running too. */
    busy = eval(&b, s,
                "var k='GET /admin/syncs';__t.fake[k]=[{tenant:'acme',connection:'main',plugin:'erecruit',"
                "enabled:true,running:false,last:null,scheduled:{running:true,ok:true,updated_at:'now',"
                "records:0,retries:0,types:[]},schedule_interval_s:300,next_pass:null}];"
                "var s0=__t.settled;__fire();"
                "__w(function(){return __t.settled>s0&&Object.keys(__t.live).length===1;},'a poll')"
                ".then(function(){delete __t.fake[k];return __delays();})");
    ck_assert_msg(atoi(busy) > 0 && atoi(busy) < atoi(idle),
                  "idle every %s ms, a scheduled run running every %s ms", idle, busy);
    free(idle);
    free(busy);

    free(s);
    browser_stop(&b);
    teardown(&f);
}
END_TEST

/* The response header `name` (its value, malloc'd) in head, or NULL. */
static char *header(const char *head, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = head; p != NULL && *p != '\0';) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (len > n + 1 && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            return strndup(v, len - (size_t)(v - p));
        }
        p = eol != NULL ? eol + 2 : NULL;
    }
    return NULL;
}

START_TEST(test_console_session_protections)
{
    fixture f;
    setup(&f);
    char *url = login_url(&f);
    char base[128];
    snprintf(base, sizeof base, "%.*s", (int)(strstr(url, "/console/") - url), url);

    /* The page: a strict CSP, no inline script. */
    char u[512], *body = NULL, *head = NULL;
    snprintf(u, sizeof u, "%s/console/", base);
    ck_assert_int_eq(ah_t_http_head("GET", u, NULL, NULL, &body, &head), 200);
    char *csp = header(head, "Content-Security-Policy");
    ck_assert_ptr_nonnull(csp);
    ck_assert_msg(strstr(csp, "default-src 'self'") && strstr(csp, "script-src 'self'") &&
                  strstr(csp, "frame-ancestors 'none'") && !strstr(csp, "unsafe-inline"), "%s", csp);
    ck_assert_msg(strstr(body, "<script>") == NULL, "inline script in index.html");
    free(csp);
    free(body);
    free(head);

    /* A code works once; its cookie is HttpOnly, SameSite=Strict, expiring. */
    body = head = NULL;
    ck_assert_int_eq(ah_t_http_head("GET", url, NULL, NULL, &body, &head), 303);
    char *cookie = header(head, "Set-Cookie");
    ck_assert_ptr_nonnull(cookie);
    ck_assert_msg(strstr(cookie, "HttpOnly") && strstr(cookie, "SameSite=Strict") &&
                  strstr(cookie, "Max-Age=28800") && strstr(cookie, "Path=/"), "%s", cookie);
    *strchr(cookie, ';') = '\0';
    free(body);
    free(head);
    ck_assert_int_eq(ah_t_http("GET", url, NULL, NULL, NULL), 401);
    snprintf(u, sizeof u, "%s/console/login?code=00000000000000000000000000000000", base);
    ck_assert_int_eq(ah_t_http("GET", u, NULL, NULL, NULL), 401);

    /* The session gives the CSRF token. */
    char ck[256];
    snprintf(ck, sizeof ck, "Cookie: %s", cookie);
    snprintf(u, sizeof u, "%s/console/session", base);
    const char *hc[] = {ck, NULL};
    body = NULL;
    ck_assert_int_eq(ah_t_http("GET", u, hc, NULL, &body), 200);
    cJSON *j = cJSON_Parse(body);
    char csrf[128];
    snprintf(csrf, sizeof csrf, "X-CSRF-Token: %s",
             cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "csrf")->valuestring);
    cJSON_Delete(j);
    free(body);

    /* Reads need the cookie (or the token); state changes its CSRF token too. */
    snprintf(u, sizeof u, "%s/admin/tenants", base);
    ck_assert_int_eq(ah_t_http("GET", u, NULL, NULL, NULL), 401);
    ck_assert_int_eq(ah_t_http("GET", u, hc, NULL, NULL), 200);
    const char *ct = "Content-Type: application/json";
    const char *no_token[] = {ck, ct, NULL};
    body = NULL;
    ck_assert_int_eq(ah_t_http("POST", u, no_token, "{\"name\":\"t1\"}", &body), 403);
    ck_assert_msg(strstr(body, "csrf_refused") != NULL, "%s", body);
    free(body);
    const char *wrong[] = {ck, ct, "X-CSRF-Token: 1234", NULL};
    ck_assert_int_eq(ah_t_http("POST", u, wrong, "{\"name\":\"t1\"}", NULL), 403);
    const char *cross_origin[] = {ck, ct, csrf, "Origin: http://evil.example", NULL};
    ck_assert_int_eq(ah_t_http("POST", u, cross_origin, "{\"name\":\"t1\"}", NULL), 403);
    const char *cross_site[] = {ck, ct, csrf, "Sec-Fetch-Site: cross-site", NULL};
    ck_assert_int_eq(ah_t_http("POST", u, cross_site, "{\"name\":\"t1\"}", NULL), 403);
    char origin[200];
    snprintf(origin, sizeof origin, "Origin: %s", base);
    const char *good[] = {ck, ct, csrf, origin, "Sec-Fetch-Site: same-origin", NULL};
    ck_assert_int_eq(ah_t_http("POST", u, good, "{\"name\":\"t1\"}", NULL), 201);
    /* Behind a TLS proxy that passes the Host on (as etc/atshub.ini
     * suggests), the page's origin is https: the same host is the same
     * origin, another is not. */
    char tls_origin[200];
    snprintf(tls_origin, sizeof tls_origin, "Origin: https://%s", base + strlen("http://"));
    const char *behind_tls[] = {ck, ct, csrf, tls_origin, "Sec-Fetch-Site: same-origin", NULL};
    ck_assert_int_eq(ah_t_http("POST", u, behind_tls, "{\"name\":\"t2\"}", NULL), 201);
    const char *tls_cross[] = {ck, ct, csrf, "Origin: https://evil.example", NULL};
    ck_assert_int_eq(ah_t_http("POST", u, tls_cross, "{\"name\":\"t3\"}", NULL), 403);
    /* A session cannot mint login codes: that takes the token or the socket. */
    snprintf(u, sizeof u, "%s/admin/console/codes", base);
    ck_assert_int_eq(ah_t_http("POST", u, good, "{}", NULL), 401);

    /* After logout the cookie is worth nothing. */
    snprintf(u, sizeof u, "%s/console/logout", base);
    ck_assert_int_eq(ah_t_http("POST", u, good, "{}", NULL), 200);
    snprintf(u, sizeof u, "%s/admin/tenants", base);
    ck_assert_int_eq(ah_t_http("GET", u, hc, NULL, NULL), 401);

    free(cookie);
    free(url);
    teardown(&f);
}
END_TEST

/* The syncs page's schedule: when the scheduler passes next (enabled
 * connections only) and what its latest runs did; GET /admin/syncs over
 * the Unix socket (as the CLI). */
/* Starts a daemon whose admin token file already holds `len` bytes of
 * `tok` at `mode`; NULL when it started, else its error (static). */
static const char *start_with_token(const char *tok, size_t len, mode_t mode)
{
    static char err[1024];
    char *dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(dir);
    char *ini = ah_t_write_ini(dir, "[admin]\nlisten = 127.0.0.1:0\ntoken_file = admin.token\n");
    char path[1024];
    snprintf(path, sizeof path, "%s/admin.token", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(tok, 1, len, f), len);
    fclose(f);
    ck_assert_int_eq(chmod(path, mode), 0);
    ah_config cfg;
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    ah_core_opts o = {.load_plugins = false, .start_bus = true};
    ah_core *core = ah_daemon_open(&cfg, &o, err, sizeof err);
    ck_assert_msg(core != NULL, "%s", err);
    int rc = ah_daemon_start(core, err, sizeof err);
    ah_daemon_close(core);
    free(ini);
    ah_t_rmrf(dir);
    free(dir);
    return rc == 0 ? NULL : err;
}

/* The admin token grants everything, plugin reloads (loading any .so)
 * included: a token file others may read, or one whose bytes stop being
 * compared at a NUL (a binary token: the usable part a few bytes), is
 * refused, as the host key's is. */
START_TEST(test_admin_token_file_checked)
{
    static const char good[] = "0123456789abcdef0123456789abcdef\n";
    ck_assert_ptr_null(start_with_token(good, sizeof good - 1, 0600));
    const char *e = start_with_token(good, sizeof good - 1, 0644);
    ck_assert_ptr_nonnull(e);
    ck_assert_msg(strstr(e, "chmod 600") != NULL, "%s", e);
    static const char nul[] = "abc\0defghijklmnopqrstuvwxyz0123";
    e = start_with_token(nul, sizeof nul - 1, 0600);
    ck_assert_ptr_nonnull(e);
    ck_assert_msg(strstr(e, "visible") != NULL, "%s", e);
}
END_TEST

/* One admin API call to the fixture's daemon: the status, the body in *resp. */
static long admin_get(fixture *f, const char *path, char **resp)
{
    ah_config cfg;
    char err[1024];
    ck_assert_int_eq(ah_config_load(f->ini, &cfg, err, sizeof err), 0);
    long status = 0;
    *resp = NULL;
    ck_assert_msg(ah_admin_call(&cfg, "GET", path, NULL, &status, resp, err, sizeof err) == 0,
                  "%s", err);
    ah_config_free(&cfg);
    return status;
}

/* The admin API refuses what the caller got wrong as /v1 does: a log
 * bound that is no time is 400 invalid_request (it was the store's 500),
 * and an unknown tenant's connections or syncs are 404 (it was []). */
START_TEST(test_admin_refuses_bad_queries)
{
    fixture f;
    setup(&f);
    ah_ops_err e;
    cJSON *out = NULL;
    ck_assert_int_eq(ah_ops_tenant_add(f.core, "acme", &out, &e), 0);
    cJSON_Delete(out);
    static const struct {
        const char *path;
        long status;
        const char *code;
    } cases[] = {
        {"/admin/log?since=yesterday", 400, "invalid_request"},
        {"/admin/log?until=2026-02-30T25:00:00Z", 400, "invalid_request"},
        {"/admin/log?since=2026-01-01&until=2026-01-02T10:00:00Z", 200, NULL},
        {"/admin/log?since=&until=", 200, NULL},
        /* An action no entry has is refused, not answered []. */
        {"/admin/log?action=BOGUS", 400, "invalid_request"},
        {"/admin/log?action=request", 400, "invalid_request"},
        {"/admin/log?action=OUTBOUND_ERROR", 200, NULL},
        {"/admin/log?action=ERROR_SUPPRESSED", 200, NULL},
        {"/admin/log?action=", 200, NULL},
        {"/admin/connections?tenant=acmee", 404, "not_found"},
        {"/admin/syncs?tenant=acmee", 404, "not_found"},
        {"/admin/connections?tenant=acme", 200, NULL},
        {"/admin/connections?tenant=", 200, NULL},
        {"/admin/syncs?tenant=acme", 200, NULL},
        /* Events are a tenant's: none named is the caller's mistake. */
        {"/admin/events", 400, "invalid_request"},
        {"/admin/events?tenant=", 400, "invalid_request"},
        {"/admin/events?tenant=acmee", 404, "not_found"},
        {"/admin/events?tenant=acme", 200, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *resp = NULL;
        long st = admin_get(&f, cases[i].path, &resp);
        ck_assert_msg(st == cases[i].status, "%s: %ld %s", cases[i].path, st, resp);
        if (cases[i].code != NULL) {
            cJSON *j = cJSON_Parse(resp);
            const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code");
            ck_assert_msg(cJSON_IsString(c) && strcmp(c->valuestring, cases[i].code) == 0, "%s: %s",
                          cases[i].path, resp);
            cJSON_Delete(j);
        }
        free(resp);
    }
    /* A path longer than the client's old 512-byte URL is sent whole: its
     * end ("&after=" here, which `atshub events --types` puts last) is not
     * cut off, answering for another page as if nothing were wrong. */
    char path[1400];
    int n = snprintf(path, sizeof path, "/admin/events?tenant=acme&types=");
    memset(path + n, 'a', 1000);
    snprintf(path + n + 1000, sizeof path - (size_t)n - 1000, "&after=nocursor");
    char *resp = NULL;
    long st = admin_get(&f, path, &resp);
    ck_assert_msg(st == 400 && strstr(resp, "after must be a cursor") != NULL, "%ld %s", st, resp);
    free(resp);
    teardown(&f);
}
END_TEST

START_TEST(test_syncs_next_pass)
{
    fixture f;
    setup_with(&f, 2);
    ah_ops_err e;
    cJSON *out = NULL;
    ck_assert_int_eq(ah_ops_tenant_add(f.core, "acme", &out, &e), 0);
    cJSON_Delete(out);
    cJSON *set = cJSON_CreateObject();
    cJSON_AddStringToObject(set, "base_url", ah_sim_url(f.sim));
    cJSON_AddStringToObject(set, "client_id", "atshub");
    cJSON_AddStringToObject(set, "client_secret", "s3cret");
    const char *names[] = {"on", "off"};
    for (int i = 0; i < 2; i++) {
        out = NULL;
        ck_assert_msg(ah_ops_connection_add(f.core, "acme", "erecruit", names[i], set, &out, &e) == 0,
                      "%s", e.msg);
        cJSON_Delete(out);
    }
    cJSON_Delete(set);
    ck_assert_int_eq(ah_ops_connection_enable(f.core, "acme", "off", false, &e), 0);
    ah_ops_refresh(f.core);
    char *next_on = NULL;
    long records = -1;
    /* The scheduler leads within a few of its steps and passes every 2 s. */
    for (int tries = 0; tries < 1200 && (next_on == NULL || records < 0); tries++) {
        ah_config cfg;
        char err[1024];
        ck_assert_int_eq(ah_config_load(f.ini, &cfg, err, sizeof err), 0);
        long status = 0;
        char *resp = NULL;
        ck_assert_msg(ah_admin_call(&cfg, "GET", "/admin/syncs?tenant=acme", NULL, &status, &resp,
                                    err, sizeof err) == 0, "%s", err);
        ah_config_free(&cfg);
        ck_assert_int_eq(status, 200);
        cJSON *j = cJSON_Parse(resp);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "data")) {
            const char *name = cJSON_GetObjectItem(c, "connection")->valuestring;
            const cJSON *np = cJSON_GetObjectItem(c, "next_pass");
            ck_assert_int_eq(cJSON_GetObjectItem(c, "schedule_interval_s")->valueint, 2);
            const cJSON *sc = cJSON_GetObjectItem(c, "scheduled");
            ck_assert_msg(cJSON_IsNull(cJSON_GetObjectItem(c, "last")), "%s", resp);
            if (strcmp(name, "off") == 0) {
                ck_assert_msg(cJSON_IsNull(np) && cJSON_IsNull(sc), "%s", resp);
            } else {
                if (cJSON_IsString(np) && next_on == NULL)
                    next_on = strdup(np->valuestring);
                /* A whole pass over the three types, ended well. */
                if (cJSON_IsObject(sc) && cJSON_GetArraySize(cJSON_GetObjectItem(sc, "types")) == 3 &&
                    !cJSON_IsTrue(cJSON_GetObjectItem(sc, "running"))) {
                    ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(sc, "ok")), "%s", resp);
                    records = (long)cJSON_GetObjectItem(sc, "records")->valuedouble;
                }
            }
        }
        cJSON_Delete(j);
        free(resp);
        if (next_on == NULL || records < 0)
            usleep(50000);
    }
    ck_assert_ptr_nonnull(next_on);
    /* Within the interval from when it was read. */
    char later[32];
    ah_iso_in(3000, later);
    ck_assert_msg(strlen(next_on) >= 20 && strcmp(next_on, later) <= 0, "%s (then %s)", next_on,
                  later);
    free(next_on);
    /* Each type's latest run read all of its records (the 2-hour backfill
     * window covers every record the simulator made). */
    ck_assert_int_eq(records, POSITIONS + CONTACTS + SUBMISSIONS);

    /* A connection removed and added again under its old name is a new
     * connection: the old one's runs are not shown as its own, whether it
     * was removed over the admin API or by another process (the store). */
    set = cJSON_CreateObject();
    cJSON_AddStringToObject(set, "base_url", ah_sim_url(f.sim));
    cJSON_AddStringToObject(set, "client_id", "atshub");
    cJSON_AddStringToObject(set, "client_secret", "s3cret");
    for (int round = 0; round < 2; round++) {
        ah_config cfg;
        char err[1024];
        ck_assert_int_eq(ah_config_load(f.ini, &cfg, err, sizeof err), 0);
        long status = 0;
        char *resp = NULL;
        /* A disabled connection is refused at once, as the REST API
         * refuses it (it was a 202 and a run failing connection_disabled). */
        ck_assert_msg(ah_admin_call(&cfg, "POST", "/admin/syncs/acme/off", "{}", &status, &resp,
                                    err, sizeof err) == 0, "%s", err);
        ck_assert_msg(status == 409 && strstr(resp, "\"connection_disabled\"") != NULL, "%ld %s",
                      status, resp);
        free(resp);
        ck_assert_int_eq(ah_ops_connection_enable(f.core, "acme", "off", true, &e), 0);
        resp = NULL;
        ck_assert_msg(ah_admin_call(&cfg, "POST", "/admin/syncs/acme/off", "{}", &status, &resp,
                                    err, sizeof err) == 0, "%s", err);
        ck_assert_msg(status == 202, "%ld %s", status, resp);
        free(resp);
        /* Until the manual run has ended. */
        bool ended = false;
        for (int tries = 0; tries < 1200 && !ended; tries++) {
            resp = NULL;
            ck_assert_int_eq(ah_admin_call(&cfg, "GET", "/admin/syncs?tenant=acme", NULL, &status,
                                           &resp, err, sizeof err), 0);
            cJSON *j = cJSON_Parse(resp);
            const cJSON *c;
            cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "data"))
                if (strcmp(cJSON_GetObjectItem(c, "connection")->valuestring, "off") == 0 &&
                    cJSON_IsObject(cJSON_GetObjectItem(c, "last")) &&
                    !cJSON_IsTrue(cJSON_GetObjectItem(c, "running")))
                    ended = true;
            cJSON_Delete(j);
            free(resp);
            if (!ended)
                usleep(50000);
        }
        ck_assert(ended);
        if (round == 0) {
            ck_assert_int_eq(ah_admin_call(&cfg, "DELETE", "/admin/connections/acme/off", NULL,
                                           &status, &resp, err, sizeof err), 0);
            ck_assert_msg(status == 200, "%ld %s", status, resp);
            free(resp);
        } else {
            ck_assert_int_eq(ah_ops_connection_remove(f.core, "acme", "off", &e), 0);
            /* The whole list (no tenant) sees it gone. */
            resp = NULL;
            ck_assert_int_eq(ah_admin_call(&cfg, "GET", "/admin/syncs", NULL, &status, &resp, err,
                                           sizeof err), 0);
            free(resp);
        }
        out = NULL;
        ck_assert_int_eq(ah_ops_connection_add(f.core, "acme", "erecruit", "off", set, &out, &e), 0);
        cJSON_Delete(out);
        ck_assert_int_eq(ah_ops_connection_enable(f.core, "acme", "off", false, &e), 0);
        resp = NULL;
        ck_assert_int_eq(ah_admin_call(&cfg, "GET", "/admin/syncs?tenant=acme", NULL, &status,
                                       &resp, err, sizeof err), 0);
        cJSON *j = cJSON_Parse(resp);
        const cJSON *c;
        bool seen = false;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "data"))
            if (strcmp(cJSON_GetObjectItem(c, "connection")->valuestring, "off") == 0) {
                seen = true;
                ck_assert_msg(cJSON_IsNull(cJSON_GetObjectItem(c, "last")), "round %d: %s", round,
                              resp);
            }
        ck_assert(seen);
        cJSON_Delete(j);
        free(resp);
        ah_config_free(&cfg);
    }
    cJSON_Delete(set);
    teardown(&f);
}
END_TEST

/* POST /admin/syncs/acme/NAME (202), then GET /admin/syncs?tenant=acme
 * until its run has ended. */
static void sync_and_wait(fixture *f, const char *name)
{
    ah_config cfg;
    char err[1024], path[160];
    ck_assert_int_eq(ah_config_load(f->ini, &cfg, err, sizeof err), 0);
    long status = 0;
    char *resp = NULL;
    snprintf(path, sizeof path, "/admin/syncs/acme/%s", name);
    ck_assert_msg(ah_admin_call(&cfg, "POST", path, "{}", &status, &resp, err, sizeof err) == 0,
                  "%s", err);
    ck_assert_msg(status == 202, "%s: %ld %s", name, status, resp);
    free(resp);
    bool ended = false;
    for (int tries = 0; tries < 1200 && !ended; tries++) {
        resp = NULL;
        ck_assert_int_eq(ah_admin_call(&cfg, "GET", "/admin/syncs?tenant=acme&limit=1000", NULL,
                                       &status, &resp, err, sizeof err), 0);
        cJSON *j = cJSON_Parse(resp);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "data"))
            if (strcmp(cJSON_GetObjectItem(c, "connection")->valuestring, name) == 0 &&
                cJSON_IsObject(cJSON_GetObjectItem(c, "last")) &&
                !cJSON_IsTrue(cJSON_GetObjectItem(c, "running")))
                ended = true;
        cJSON_Delete(j);
        free(resp);
        if (!ended)
            usleep(20000);
    }
    ck_assert_msg(ended, "%s: the run did not end", name);
    ah_config_free(&cfg);
}

/* This process's VmSize in KiB. */
static long vm_size_kib(void)
{
    char *st = ah_t_read_file("/proc/self/status", NULL);
    ck_assert_ptr_nonnull(st);
    const char *v = strstr(st, "VmSize:");
    ck_assert_ptr_nonnull(v);
    long kib = strtol(v + 7, NULL, 10);
    free(st);
    return kib;
}

/* The syncs the admin API keeps per connection: a full table makes room
 * from its oldest entry without a run under way (it answered every new
 * "Sync now" 503 overloaded until a restart, once 4,096 live connections
 * had been synced), and a run's thread gives its stack back when the run
 * ends (it kept it until the connection was synced again: 8 MiB of
 * address space per connection synced). */
START_TEST(test_syncs_table_full)
{
    fixture f;
    setup(&f);
    ah_ops_err e;
    cJSON *out = NULL;
    ck_assert_int_eq(ah_ops_tenant_add(f.core, "acme", &out, &e), 0);
    cJSON_Delete(out);
    /* Enough runs that their stacks outgrow glibc's cache of freed ones
     * (40 MiB) twice over. */
    pthread_attr_t attr;
    size_t stack = 0;
    ck_assert_int_eq(pthread_getattr_default_np(&attr), 0);
    ck_assert_int_eq(pthread_attr_getstacksize(&attr, &stack), 0);
    pthread_attr_destroy(&attr);
    int n = (int)((160u << 20) / stack) + 2;
    if (n < 4)
        n = 4;
    ck_assert_int_le(n, 200);
    cJSON *set = cJSON_CreateObject();
    cJSON_AddStringToObject(set, "base_url", ah_sim_url(f.sim));
    cJSON_AddStringToObject(set, "client_id", "atshub");
    cJSON_AddStringToObject(set, "client_secret", "s3cret");
    for (int i = 0; i <= n; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", i);
        out = NULL;
        ck_assert_msg(ah_ops_connection_add(f.core, "acme", "erecruit", name, set, &out, &e) == 0,
                      "%s", e.msg);
        cJSON_Delete(out);
    }
    cJSON_Delete(set);
    ah_ops_refresh(f.core);

    /* The threads: after a first run (the process's malloc arenas and
     * stack cache warm), n runs of n connections one after another leave
     * at most the cache's stacks mapped, not one per run. */
    sync_and_wait(&f, "c0");
    long before = vm_size_kib();
    for (int i = 1; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", i);
        sync_and_wait(&f, name);
    }
    long grown = vm_size_kib() - before;
    ck_assert_msg(grown < (long)((size_t)(n - 1) * stack / 1024 / 2),
                  "VmSize grew by %ld KiB over %d runs (stacks of %zu KiB)", grown, n - 1,
                  stack / 1024);

    /* The table, full (as with 4,096 connections synced): a new run takes
     * the place of the oldest ended one, c0. */
    ah_admin_set_syncs_max(f.core, (size_t)n);
    char last_name[16];
    snprintf(last_name, sizeof last_name, "c%d", n);
    sync_and_wait(&f, last_name); /* was 503 overloaded */
    ah_config cfg;
    char err[1024];
    ck_assert_int_eq(ah_config_load(f.ini, &cfg, err, sizeof err), 0);
    long status = 0;
    char *resp = NULL;
    ck_assert_int_eq(ah_admin_call(&cfg, "GET", "/admin/syncs?tenant=acme&limit=1000", NULL,
                                   &status, &resp, err, sizeof err), 0);
    ck_assert_int_eq(status, 200);
    cJSON *j = cJSON_Parse(resp);
    const cJSON *c;
    int kept = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "data")) {
        const char *name = cJSON_GetObjectItem(c, "connection")->valuestring;
        bool last = cJSON_IsObject(cJSON_GetObjectItem(c, "last"));
        kept += last;
        if (strcmp(name, "c0") == 0)
            ck_assert_msg(!last, "c0 kept");
        if (strcmp(name, "c1") == 0 || strcmp(name, last_name) == 0)
            ck_assert_msg(last, "%s not kept", name);
    }
    ck_assert_int_eq(kept, n);
    cJSON_Delete(j);
    free(resp);
    ah_config_free(&cfg);
    teardown(&f);
}
END_TEST

/* Every page of an admin list, path + "limit=L&cursor=C" one after another
 * until next_cursor is null: each row's key ("tenant/name", name for rows
 * without a tenant, the id for a webhook endpoint's) appended to keys, the
 * pages counted. */
static int walk_pages(fixture *f, const char *path, int limit, char *keys, size_t keylen)
{
    char cursor[256] = "";
    int pages = 0;
    keys[0] = '\0';
    for (;;) {
        char url[512], *resp = NULL;
        snprintf(url, sizeof url, "%s%climit=%d%s%s", path, strchr(path, '?') ? '&' : '?', limit,
                 cursor[0] ? "&cursor=" : "", cursor);
        long st = admin_get(f, url, &resp);
        ck_assert_msg(st == 200, "%s: %ld %s", url, st, resp);
        cJSON *j = cJSON_Parse(resp);
        const cJSON *d = cJSON_GetObjectItem(j, "data"), *r;
        ck_assert_msg(cJSON_GetArraySize(d) <= limit, "%s: %s", url, resp);
        cJSON_ArrayForEach(r, d) {
            const cJSON *t = cJSON_GetObjectItem(r, "tenant"), *n = cJSON_GetObjectItem(r, "name");
            if (!cJSON_IsString(n))
                n = cJSON_GetObjectItem(r, "connection"); /* a sync's row */
            char one[160], id[24];
            const cJSON *idv = cJSON_GetObjectItem(r, "id");
            snprintf(id, sizeof id, "%lld", cJSON_IsNumber(idv) ? (long long)idv->valuedouble : -1LL);
            snprintf(one, sizeof one, "%s%s%s,", cJSON_IsString(t) ? t->valuestring : "",
                     cJSON_IsString(t) ? "/" : "", cJSON_IsString(n) ? n->valuestring : id);
            strncat(keys, one, keylen - strlen(keys) - 1);
        }
        pages++;
        const cJSON *next = cJSON_GetObjectItem(j, "next_cursor");
        ck_assert_msg(cJSON_IsNull(next) || cJSON_IsString(next), "%s: %s", url, resp);
        bool more = cJSON_IsString(next);
        if (more) {
            /* A cursor is a name, or TENANT/NAME: sent as the console
             * sends it (encodeURIComponent: the slash as %2F). */
            ck_assert_msg(strlen(next->valuestring) < 100, "%s", resp);
            size_t w = 0;
            for (const char *p = next->valuestring; *p != '\0'; p++)
                w += (size_t)snprintf(cursor + w, sizeof cursor - w, *p == '/' ? "%%2F" : "%c", *p);
        }
        cJSON_Delete(j);
        free(resp);
        if (!more)
            return pages;
        ck_assert_int_lt(pages, 100);
    }
}

/* The admin lists of tenants, connections, syncs and webhook endpoints
 * come in pages (the daemon builds one page at a time, never the whole list
 * of 50,000 connections): limit rows in the byte order of names (of
 * endpoints: in id order), next_cursor for the page after, every row once
 * over the pages; a limit or cursor that is not one is 400. */
START_TEST(test_admin_lists_page)
{
    fixture f;
    setup(&f);
    ah_ops_err e;
    cJSON *out = NULL;
    static const char *const tenants[] = {"beta", "Zed", "a-b", "acme", "a_b"};
    for (size_t i = 0; i < 5; i++) {
        ck_assert_int_eq(ah_ops_tenant_add(f.core, tenants[i], &out, &e), 0);
        cJSON_Delete(out);
    }
    cJSON *set = cJSON_CreateObject();
    cJSON_AddStringToObject(set, "base_url", ah_sim_url(f.sim));
    cJSON_AddStringToObject(set, "client_id", "atshub");
    cJSON_AddStringToObject(set, "client_secret", "s3cret");
    static const char *const conns[][2] = {{"acme", "main"}, {"Zed", "x"}, {"acme", "b"},
                                           {"beta", "main"}, {"acme", "B"}};
    for (size_t i = 0; i < 5; i++) {
        ck_assert_int_eq(ah_ops_connection_add(f.core, conns[i][0], "erecruit", conns[i][1], set,
                                               &out, &e), 0);
        cJSON_Delete(out);
        ck_assert_int_eq(ah_ops_connection_enable(f.core, conns[i][0], conns[i][1], false, &e), 0);
    }
    cJSON_Delete(set);

    char keys[2048];
    ck_assert_int_eq(walk_pages(&f, "/admin/tenants", 1000, keys, sizeof keys), 1);
    ck_assert_str_eq(keys, "Zed,a-b,a_b,acme,beta,");
    ck_assert_int_eq(walk_pages(&f, "/admin/tenants", 2, keys, sizeof keys), 3);
    ck_assert_str_eq(keys, "Zed,a-b,a_b,acme,beta,");
    /* A full last page: the page after it is empty, or not asked for. */
    int pages = walk_pages(&f, "/admin/tenants", 5, keys, sizeof keys);
    ck_assert_msg(pages == 1 || pages == 2, "%d", pages);
    ck_assert_str_eq(keys, "Zed,a-b,a_b,acme,beta,");
    static const char all[] = "Zed/x,acme/B,acme/b,acme/main,beta/main,";
    for (int limit = 1; limit <= 5; limit++) {
        walk_pages(&f, "/admin/connections", limit, keys, sizeof keys);
        ck_assert_msg(strcmp(keys, all) == 0, "limit %d: %s", limit, keys);
        walk_pages(&f, "/admin/syncs", limit, keys, sizeof keys);
        ck_assert_msg(strcmp(keys, all) == 0, "syncs, limit %d: %s", limit, keys);
    }
    ck_assert_int_eq(walk_pages(&f, "/admin/connections?tenant=acme", 2, keys, sizeof keys), 2);
    ck_assert_str_eq(keys, "acme/B,acme/b,acme/main,");
    ck_assert_int_eq(walk_pages(&f, "/admin/syncs?tenant=acme", 1, keys, sizeof keys), 3);
    ck_assert_str_eq(keys, "acme/B,acme/b,acme/main,");

    /* Webhook endpoints: acme's and beta's, added in turn. */
    char hook[512], secret[128], werr[512], hooks[256] = "", acme_hooks[256] = "";
    snprintf(hook, sizeof hook, "%s/hook", ah_sim_url(f.sim));
    for (int i = 0; i < 6; i++) {
        const char *tn = i % 2 == 0 ? "acme" : "beta";
        ah_tenant_row tr = {0};
        ck_assert_int_eq(f.core->store->ops->tenant_get(f.core->store, tn, &tr), 0);
        int64_t wid = 0;
        ck_assert_msg(ah_webhook_add(f.core, tr.id, hook, NULL, &wid, secret, sizeof secret, werr,
                                     sizeof werr) == 0, "%s", werr);
        ah_tenant_row_free(&tr);
        char one[32];
        snprintf(one, sizeof one, "%lld,", (long long)wid);
        strcat(hooks, one);
        if (i % 2 == 0)
            strcat(acme_hooks, one);
    }
    for (int limit = 1; limit <= 7; limit++) {
        int n = walk_pages(&f, "/admin/webhooks", limit, keys, sizeof keys);
        ck_assert_msg(strcmp(keys, hooks) == 0, "webhooks, limit %d: %s", limit, keys);
        ck_assert_msg(n == (6 + limit - 1) / limit || (6 % limit == 0 && n == 6 / limit + 1),
                      "webhooks, limit %d: %d pages", limit, n);
    }
    ck_assert_int_eq(walk_pages(&f, "/admin/webhooks", 1000, keys, sizeof keys), 1);
    ck_assert_str_eq(keys, hooks);
    ck_assert_int_eq(walk_pages(&f, "/admin/webhooks?tenant=acme", 2, keys, sizeof keys), 2);
    ck_assert_str_eq(keys, acme_hooks);
    ck_assert_int_eq(walk_pages(&f, "/admin/webhooks?tenant=acme", 1, keys, sizeof keys), 3);
    ck_assert_str_eq(keys, acme_hooks);
    /* Without a limit: every endpoint (at most 1,000), and no page after. */
    {
        char *resp = NULL;
        ck_assert_int_eq(admin_get(&f, "/admin/webhooks", &resp), 200);
        cJSON *j = cJSON_Parse(resp);
        ck_assert_msg(cJSON_GetArraySize(cJSON_GetObjectItem(j, "data")) == 6 &&
                          cJSON_IsNull(cJSON_GetObjectItem(j, "next_cursor")), "%s", resp);
        cJSON_Delete(j);
        free(resp);
    }

    static const char *const bad[] = {
        "/admin/tenants?limit=0", "/admin/tenants?limit=1001", "/admin/tenants?limit=2x",
        "/admin/tenants?cursor=a%2Fb", "/admin/tenants?cursor=%20",
        "/admin/connections?cursor=acme", "/admin/connections?cursor=acme%2F",
        "/admin/connections?cursor=a%2Fb%2Fc", "/admin/connections?tenant=acme&cursor=acme%2Fb",
        "/admin/syncs?limit=-1", "/admin/syncs?cursor=acme",
        "/admin/webhooks?limit=0", "/admin/webhooks?limit=1001", "/admin/webhooks?limit=x",
        "/admin/webhooks?cursor=acme", "/admin/webhooks?cursor=0", "/admin/webhooks?cursor=-2",
        "/admin/webhooks?cursor=2x", "/admin/webhooks?cursor=%202",
        "/admin/webhooks?cursor=99999999999999999999", "/admin/webhooks?tenant=acme&cursor=a",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *resp = NULL;
        long st = admin_get(&f, bad[i], &resp);
        cJSON *j = cJSON_Parse(resp);
        const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code");
        ck_assert_msg(st == 400 && cJSON_IsString(c) &&
                          strcmp(c->valuestring, "invalid_request") == 0,
                      "%s: %ld %s", bad[i], st, resp);
        cJSON_Delete(j);
        free(resp);
    }
    teardown(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("console");
    TCase *tc = tcase_create("console");
    tcase_set_timeout(tc, 240);
    bool pages = ah_t_browser("check_console");
    tcase_add_test(tc, test_console_session_protections);
    if (pages) {
        tcase_add_test(tc, test_console_in_browser);
        tcase_add_test(tc, test_console_pages_lists);
    }
    tcase_add_test(tc, test_syncs_next_pass);
    tcase_add_test(tc, test_syncs_table_full);
    tcase_add_test(tc, test_admin_refuses_bad_queries);
    tcase_add_test(tc, test_admin_lists_page);
    if (pages)
        tcase_add_test(tc, test_console_secrets_and_polls);
    tcase_add_test(tc, test_admin_token_file_checked);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed == 0 ? 0 : 1;
}
