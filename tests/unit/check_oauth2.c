/* SPDX-License-Identifier: Apache-2.0 */
/* The OAuth2 token cache against a token endpoint simulated in the test. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block.h"
#include "httpc.h"
#include "oauth2.h"
#include "sim.h"

#define SECRET "s3cr3t/with spaces&more"

typedef struct token_srv {
    pthread_mutex_t mu;
    int requests;
    int issued;
    int refresh_grants, cc_grants;
    bool issue_refresh;  /* answer with a refresh_token */
    bool refuse_refresh; /* answer 400 invalid_grant to refresh grants */
    bool refuse_all;     /* answer 401 invalid_client, echoing the body */
    bool unavailable;    /* answer 503 */
    int delay_ms;
    long expires_in;         /* 0: 3600 (unless expires_raw) */
    bool expires_raw;        /* expires_in sent as it is, 0 and below too */
    const char *token_text;  /* NULL: "tok-N" */
    char last_body[1024];
} token_srv;

static void srv_init(token_srv *t)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
}

static int srv_requests(token_srv *t)
{
    pthread_mutex_lock(&t->mu);
    int n = t->requests;
    pthread_mutex_unlock(&t->mu);
    return n;
}

static void h_token(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    token_srv *t = arg;
    const char *ct = ah_sim_header(req, "Content-Type");
    if (t->delay_ms)
        usleep((useconds_t)t->delay_ms * 1000);
    pthread_mutex_lock(&t->mu);
    t->requests++;
    snprintf(t->last_body, sizeof(t->last_body), "%s", req->body);
    bool refresh = strstr(req->body, "grant_type=refresh_token") != NULL;
    if (refresh)
        t->refresh_grants++;
    else
        t->cc_grants++;
    cJSON *o = cJSON_CreateObject();
    if (!ct || strcmp(ct, "application/x-www-form-urlencoded") != 0) {
        cJSON_AddStringToObject(o, "error", "invalid_request");
        ah_sim_json(resp, 400, o);
    } else if (t->unavailable) {
        cJSON_AddStringToObject(o, "error", "temporarily_unavailable");
        ah_sim_json(resp, 503, o);
    } else if (t->refuse_all) {
        cJSON_AddStringToObject(o, "error", "invalid_client");
        cJSON_AddStringToObject(o, "error_description", req->body); /* a careless server */
        ah_sim_json(resp, 401, o);
    } else if (refresh && t->refuse_refresh) {
        cJSON_AddStringToObject(o, "error", "invalid_grant");
        ah_sim_json(resp, 400, o);
    } else {
        char tok[32], rt[32];
        int n = ++t->issued;
        snprintf(tok, sizeof(tok), "tok-%d", n);
        snprintf(rt, sizeof(rt), "rt-%d", n);
        cJSON_AddStringToObject(o, "access_token", t->token_text != NULL ? t->token_text : tok);
        cJSON_AddStringToObject(o, "token_type", "Bearer");
        long ex = t->expires_in > 0 || t->expires_raw ? t->expires_in : 3600;
        char exs[24];
        snprintf(exs, sizeof exs, "%ld", ex);
        if (n % 2)
            cJSON_AddNumberToObject(o, "expires_in", (double)ex);
        else
            cJSON_AddStringToObject(o, "expires_in", exs);
        if (t->issue_refresh)
            cJSON_AddStringToObject(o, "refresh_token", rt);
        ah_sim_json(resp, 200, o);
    }
    pthread_mutex_unlock(&t->mu);
}

typedef struct fake_clock {
    pthread_mutex_t mu;
    time_t now;
} fake_clock;

static time_t clock_now(void *arg)
{
    fake_clock *fc = arg;
    pthread_mutex_lock(&fc->mu);
    time_t t = fc->now;
    pthread_mutex_unlock(&fc->mu);
    return t;
}

static void clock_set(fake_clock *fc, time_t t)
{
    pthread_mutex_lock(&fc->mu);
    fc->now = t;
    pthread_mutex_unlock(&fc->mu);
}

typedef struct env {
    token_srv srv;
    fake_clock clk;
    ah_sim *sim;
    ah_httpc *httpc;
    ah_oauth2 *o;
    ah_oauth2_params p;
} env;

static void env_start(env *e)
{
    memset(e, 0, sizeof(*e));
    srv_init(&e->srv);
    pthread_mutex_init(&e->clk.mu, NULL);
    e->clk.now = 1700000000;
    ah_sim_opts so = {.threads = 4};
    e->sim = ah_sim_new(&so);
    ck_assert_ptr_nonnull(e->sim);
    ck_assert_int_eq(ah_sim_route(e->sim, "POST", "/oauth/token", h_token, &e->srv), 0);
    ck_assert_int_eq(ah_sim_start(e->sim), 0);
    ah_httpc_opts ho = {.max_attempts = 2, .backoff_ms = 5, .backoff_max_ms = 20, .seed = 1};
    e->httpc = ah_httpc_new(&ho);
    ck_assert_ptr_nonnull(e->httpc);
    e->o = ah_oauth2_new(e->httpc, clock_now, &e->clk);
    ck_assert_ptr_nonnull(e->o);
    e->p = (ah_oauth2_params){.struct_size = sizeof(e->p), .token_url = "/oauth/token",
                              .client_id = "client-1", .client_secret = SECRET,
                              .scope = "read write"};
}

static void env_stop(env *e)
{
    ah_oauth2_free(e->o);
    ah_httpc_free(e->httpc);
    ah_sim_stop(e->sim);
}

static int token(env *e, int64_t conn, char *out, size_t len, char *err, size_t errlen)
{
    return ah_oauth2_token(e->o, conn, &e->p, ah_sim_url(e->sim), NULL, NULL, out, len, err,
                           errlen);
}

START_TEST(client_credentials_cached)
{
    env e;
    env_start(&e);
    char tok[64], err[256];
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-1");
    ck_assert_ptr_nonnull(strstr(e.srv.last_body, "grant_type=client_credentials"));
    ck_assert_ptr_nonnull(strstr(e.srv.last_body, "client_id=client-1"));
    ck_assert_ptr_nonnull(strstr(e.srv.last_body, "client_secret=s3cr3t%2Fwith%20spaces%26more"));
    ck_assert_ptr_nonnull(strstr(e.srv.last_body, "scope=read%20write"));
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-1");
    ck_assert_int_eq(srv_requests(&e.srv), 1);

    /* Another connection, or another scope, is another key. */
    ck_assert_int_eq(token(&e, 2, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-2");
    e.p.scope = NULL;
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-3");
    ck_assert_ptr_null(strstr(e.srv.last_body, "scope="));
    ck_assert_int_eq(srv_requests(&e.srv), 3);

    /* A buffer too small is an error, not a truncated token. */
    char tiny[4];
    ck_assert_int_eq(token(&e, 1, tiny, sizeof(tiny), err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "does not fit"));
    env_stop(&e);
}
END_TEST

START_TEST(refresh_before_expiry)
{
    env e;
    env_start(&e);
    char tok[64], err[256];
    time_t t0 = e.clk.now;
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-1");
    clock_set(&e.clk, t0 + 3000);
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-1");
    ck_assert_int_eq(srv_requests(&e.srv), 1);
    clock_set(&e.clk, t0 + 3301); /* within 5 minutes of expiry */
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-2");
    ck_assert_int_eq(srv_requests(&e.srv), 2);
    /* tok-2 came with expires_in as a numeric string: also 3600. */
    clock_set(&e.clk, t0 + 3301 + 3000);
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-2");
    clock_set(&e.clk, t0 + 3301 + 3301);
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-3");
    env_stop(&e);
}
END_TEST

/* A token that lives 5 minutes or less (a common lifetime) was renewed
 * on every call: it never was further than the 5-minute margin from its
 * expiry. It is renewed half its life early then. */
START_TEST(short_lived_token_cached)
{
    env e;
    env_start(&e);
    e.srv.expires_in = 120;
    char tok[64], err[256];
    time_t t0 = e.clk.now;
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-1");
    clock_set(&e.clk, t0 + 59);
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-1");
    ck_assert_int_eq(srv_requests(&e.srv), 1);
    clock_set(&e.clk, t0 + 61);
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-2");
    ck_assert_int_eq(srv_requests(&e.srv), 2);
    env_stop(&e);
}
END_TEST

/* A token endpoint answering expires_in 0 or below: the token lives the
 * floor of a minute (renewed at half of it), not fetched again on every
 * call (before: renew_at was its fetch time, so each call fetched one). */
/* A token fetched with a client secret since changed is never handed to a
 * call made with the new one (a call begun before the change may fetch
 * with the old secret after the connection's tokens were forgotten); the
 * old secret's token stays the old secret's. */
START_TEST(token_bound_to_its_secret)
{
    env e;
    env_start(&e);
    char tok[64], err[256];
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-1");
    const char *old = e.p.client_secret;
    e.p.client_secret = "rotated-s3cret";
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-2");
    ck_assert_ptr_nonnull(strstr(e.srv.last_body, "client_secret=rotated-s3cret"));
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-2");
    e.p.client_secret = old;
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-1");
    ck_assert_int_eq(srv_requests(&e.srv), 2);
    env_stop(&e);
}
END_TEST

START_TEST(token_without_lifetime_floored)
{
    static const long lifetimes[] = {0, -5};
    for (size_t i = 0; i < 2; i++) {
        env e;
        env_start(&e);
        e.srv.expires_raw = true;
        e.srv.expires_in = lifetimes[i];
        char tok[64], err[256];
        time_t t0 = e.clk.now;
        ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
        ck_assert_str_eq(tok, "tok-1");
        clock_set(&e.clk, t0 + 29);
        ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
        ck_assert_str_eq(tok, "tok-1");
        ck_assert_int_eq(srv_requests(&e.srv), 1);
        clock_set(&e.clk, t0 + 31);
        ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
        ck_assert_str_eq(tok, "tok-2");
        env_stop(&e);
    }
}
END_TEST

/* An access token goes into an Authorization header: one with a line
 * break (valid JSON) would add headers of the provider's choosing to
 * every request made with it, to whatever host that is. Refused, as are
 * spaces, control and non-ASCII bytes. */
START_TEST(token_with_header_breaking_bytes_refused)
{
    static const char *bad[] = {"x\r\nX-Injected: 1", "a b", "tab\there", "caf\xc3\xa9", "del\x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        env e;
        env_start(&e);
        e.srv.token_text = bad[i];
        char tok[64], err[256];
        ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), -1);
        ck_assert_msg(strstr(err, "usable access_token") != NULL, "%s", err);
        env_stop(&e);
    }
    /* What real providers send passes: base64url, JWTs, "app|secret". */
    env e;
    env_start(&e);
    e.srv.token_text = "eyJh.eyJz-_~+/=.sig|x:y";
    char tok[64], err[256];
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "eyJh.eyJz-_~+/=.sig|x:y");
    env_stop(&e);
}
END_TEST

START_TEST(refresh_token_grant)
{
    env e;
    env_start(&e);
    e.srv.issue_refresh = true;
    char tok[64], err[256];
    time_t t0 = e.clk.now;
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-1");
    ck_assert_int_eq(e.srv.cc_grants, 1);
    clock_set(&e.clk, t0 + 3400);
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-2");
    ck_assert_int_eq(e.srv.refresh_grants, 1);
    ck_assert_ptr_nonnull(strstr(e.srv.last_body, "refresh_token=rt-1"));
    /* The refresh token in the last answer replaces the first. */
    clock_set(&e.clk, t0 + 3400 + 3400);
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-3");
    ck_assert_ptr_nonnull(strstr(e.srv.last_body, "refresh_token=rt-2"));
    ck_assert_int_eq(e.srv.refresh_grants, 2);

    /* A refused refresh falls back to client credentials. */
    e.srv.refuse_refresh = true;
    clock_set(&e.clk, t0 + 3 * 3400);
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-4");
    ck_assert_int_eq(e.srv.refresh_grants, 3);
    ck_assert_int_eq(e.srv.cc_grants, 2);
    env_stop(&e);
}
END_TEST

START_TEST(caller_refresh_token)
{
    env e;
    env_start(&e);
    e.p.refresh_token = "user-rt";
    char tok[64], err[256];
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(strstr(e.srv.last_body, "grant_type=refresh_token"));
    ck_assert_ptr_nonnull(strstr(e.srv.last_body, "refresh_token=user-rt"));
    ck_assert_int_eq(e.srv.refresh_grants, 1);
    env_stop(&e);
}
END_TEST

typedef struct racer {
    env *e;
    char tok[64];
    int rc;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    char err[256];
    r->rc = token(r->e, 7, r->tok, sizeof(r->tok), err, sizeof(err));
    return NULL;
}

START_TEST(concurrent_single_fetch)
{
    env e;
    env_start(&e);
    e.srv.delay_ms = 100; /* keep the fetch in flight while the others arrive */
    racer r[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (racer){.e = &e};
        ck_assert_int_eq(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(r[i].rc, 0);
        ck_assert_str_eq(r[i].tok, "tok-1");
    }
    ck_assert_int_eq(srv_requests(&e.srv), 1);
    env_stop(&e);
}
END_TEST

START_TEST(invalidate_and_forget)
{
    env e;
    env_start(&e);
    char tok[64], err[256];
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-1");
    ah_oauth2_invalidate(e.o, 1, &e.p);
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-2");
    ck_assert_int_eq(srv_requests(&e.srv), 2);
    ah_oauth2_forget_conn(e.o, 1);
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-3");
    ck_assert_int_eq(srv_requests(&e.srv), 3);
    ah_oauth2_forget_conn(e.o, 99); /* unknown: nothing happens */
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-3");
    env_stop(&e);
}
END_TEST

/* After a 401 the host forgets the token it sent, unless another call has
 * already renewed it: that fresh token stays (no second fetch). */
START_TEST(invalidate_only_the_refused_token)
{
    env e;
    env_start(&e);
    char tok[64], err[256];
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-1");
    ah_oauth2_invalidate_token(e.o, 1, &e.p, "tok-0"); /* stale: already replaced */
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-1");
    ck_assert_int_eq(srv_requests(&e.srv), 1);
    ah_oauth2_invalidate_token(e.o, 1, &e.p, "tok-1"); /* the one refused */
    ck_assert_int_eq(token(&e, 1, tok, sizeof(tok), err, sizeof(err)), 0);
    ck_assert_str_eq(tok, "tok-2");
    ck_assert_int_eq(srv_requests(&e.srv), 2);
    env_stop(&e);
}
END_TEST

typedef struct seen {
    int n;
    bool leaked;
} seen;

static void watch(void *arg, const ah_httpc_attempt *a)
{
    seen *s = arg;
    s->n++;
    const char *fields[] = {a->url, a->request_body, a->response_body, a->error};
    for (size_t i = 0; i < 4; i++)
        if (fields[i] && (strstr(fields[i], "s3cr3t") || strstr(fields[i], "tok-")))
            s->leaked = true;
}

START_TEST(errors_and_logs_without_secret)
{
    env e;
    env_start(&e);
    char tok[64], err[512];
    seen s = {0};
    /* A successful exchange: the observer never sees the issued token. */
    ck_assert_int_eq(ah_oauth2_token(e.o, 1, &e.p, ah_sim_url(e.sim), watch, &s, tok,
                                     sizeof(tok), err, sizeof(err)),
                     0);
    ck_assert_int_eq(s.n, 1);
    ck_assert(!s.leaked);

    e.srv.refuse_all = true;
    ck_assert_int_eq(ah_oauth2_token(e.o, 2, &e.p, ah_sim_url(e.sim), watch, &s, tok,
                                     sizeof(tok), err, sizeof(err)),
                     -1);
    ck_assert_ptr_nonnull(strstr(err, "401"));
    ck_assert_ptr_nonnull(strstr(err, "invalid_client"));
    ck_assert_ptr_null(strstr(err, "s3cr3t"));
    ck_assert(!s.leaked);
    ck_assert_int_eq(s.n, 2); /* 401 is not retried */

    /* A 503 (after the client's retries) is the provider's, not the
     * credentials': -2, as no answer. */
    e.srv.refuse_all = false;
    e.srv.unavailable = true;
    ck_assert_int_eq(ah_oauth2_token(e.o, 4, &e.p, ah_sim_url(e.sim), NULL, NULL, tok,
                                     sizeof(tok), err, sizeof(err)),
                     -2);
    ck_assert_ptr_nonnull(strstr(err, "503"));
    e.srv.unavailable = false;

    /* No answer at all: a clear error, still without the secret. */
    e.p.token_url = "/oauth/token";
    ah_sim_stop(e.sim);
    e.sim = ah_sim_new(NULL);
    ck_assert_ptr_nonnull(e.sim);
    char dead[64];
    snprintf(dead, sizeof(dead), "http://127.0.0.1:1");
    /* -2: no answer is the provider's unavailability (503 to the
     * plugin), not refused credentials (auth_failed). */
    ck_assert_int_eq(ah_oauth2_token(e.o, 3, &e.p, dead, NULL, NULL, tok, sizeof(tok), err,
                                     sizeof(err)),
                     -2);
    ck_assert_ptr_nonnull(strstr(err, "token request failed"));
    ck_assert_ptr_null(strstr(err, "s3cr3t"));
    env_stop(&e);
}
END_TEST

static bool refuse_wait(void *arg, const char *on)
{
    (void)arg;
    return on == NULL; /* a named wait (a provider's address): refused */
}

static void no_end(void *arg)
{
    (void)arg;
}

/* A token request the thread's scheduler refuses to wait for ([core]
 * provider_threads: too many calls wait on that provider) is not sent, and
 * says so as a failure of the moment (-2), as does a caller that took the
 * outcome of that fetch. */
START_TEST(refused_wait_is_no_answer)
{
    env e;
    env_start(&e);
    static const ah_block_hooks refuse = {.begin = refuse_wait, .end = no_end};
    ah_block_install(&refuse);
    char tok[64], err[512];
    ck_assert_int_eq(token(&e, 1, tok, sizeof tok, err, sizeof err), -2);
    ck_assert_msg(strstr(err, "not sent") != NULL, "%s", err);
    ck_assert_int_eq(e.srv.cc_grants, 0);
    ah_block_install(NULL);
    ck_assert_int_eq(token(&e, 1, tok, sizeof tok, err, sizeof err), 0);
    ck_assert_int_eq(e.srv.cc_grants, 1);
    env_stop(&e);
}
END_TEST

static Suite *oauth2_suite(void)
{
    Suite *s = suite_create("oauth2");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, client_credentials_cached);
    tcase_add_test(tc, refresh_before_expiry);
    tcase_add_test(tc, refresh_token_grant);
    tcase_add_test(tc, short_lived_token_cached);
    tcase_add_test(tc, token_without_lifetime_floored);
    tcase_add_test(tc, token_bound_to_its_secret);
    tcase_add_test(tc, token_with_header_breaking_bytes_refused);
    tcase_add_test(tc, caller_refresh_token);
    tcase_add_test(tc, concurrent_single_fetch);
    tcase_add_test(tc, invalidate_and_forget);
    tcase_add_test(tc, invalidate_only_the_refused_token);
    tcase_add_test(tc, errors_and_logs_without_secret);
    tcase_add_test(tc, refused_wait_is_no_answer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(oauth2_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
