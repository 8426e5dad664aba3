/* SPDX-License-Identifier: Apache-2.0 */
/* The ERecruit simulator against plugins/erecruit/WIRE.md, driven over HTTP
 * with libcurl as the plugin will drive it. */
#include <check.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "erecruit.h"
#include "sim.h"

/* 2025-10-06T13:30:00Z: a fixed sim clock makes stamps predictable. */
#define T0 ((time_t)1759757400)

typedef struct env {
    ah_sim *sim;
    ah_erecruit_sim *e;
    char base[64];
    char token[64];
} env;

typedef struct http_resp {
    long status;
    char *body;
    size_t len;
    char retry_after[32];
    cJSON *json;
} http_resp;

static void resp_free(http_resp *r)
{
    free(r->body);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof(*r));
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    http_resp *r = arg;
    size_t len = size * n;
    char *b = realloc(r->body, r->len + len + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, p, len);
    r->len += len;
    b[r->len] = '\0';
    r->body = b;
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    http_resp *r = arg;
    size_t len = size * n;
    if (len > 13 && strncasecmp(p, "Retry-After:", 12) == 0) {
        const char *v = p + 12;
        while (*v == ' ')
            v++;
        size_t vl = strcspn(v, "\r\n");
        if (vl >= sizeof(r->retry_after))
            vl = sizeof(r->retry_after) - 1;
        memcpy(r->retry_after, v, vl);
        r->retry_after[vl] = '\0';
    }
    return len;
}

/* One request; body is sent as given (ctype NULL: application/json). */
static void http(const char *method, const char *url, const char *auth, const char *body,
                 const char *ctype, http_resp *out)
{
    memset(out, 0, sizeof(*out));
    CURL *c = curl_easy_init();
    ck_assert_ptr_nonnull(c);
    struct curl_slist *h = NULL;
    char line[256];
    if (auth) {
        snprintf(line, sizeof(line), "Authorization: %s", auth);
        h = curl_slist_append(h, line);
    }
    if (body) {
        snprintf(line, sizeof(line), "Content-Type: %s", ctype ? ctype : "application/json");
        h = curl_slist_append(h, line);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    CURLcode rc = curl_easy_perform(c);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out->body)
        out->json = cJSON_Parse(out->body);
}

static void env_start(env *v, const ah_erecruit_opts *o)
{
    memset(v, 0, sizeof(*v));
    ah_sim_opts so = {.seed = 1, .no_fault_prefix = "/t/"};
    v->sim = ah_sim_new(&so);
    ck_assert_ptr_nonnull(v->sim);
    v->e = ah_erecruit_sim_attach(v->sim, o);
    ck_assert_ptr_nonnull(v->e);
    ck_assert_int_eq(ah_sim_start(v->sim), 0);
    snprintf(v->base, sizeof(v->base), "%s", ah_sim_url(v->sim));
}

static void env_stop(env *v)
{
    ah_sim_stop(v->sim);
    ah_erecruit_sim_free(v->e);
}

static void get_token(env *v)
{
    char url[128];
    http_resp r;
    snprintf(url, sizeof(url), "%s/t/token", v->base);
    http("POST", url, NULL, "grant_type=client_credentials&client_id=atshub&client_secret=s3cret",
         "application/x-www-form-urlencoded", &r);
    ck_assert_int_eq(r.status, 200);
    const cJSON *t = cJSON_GetObjectItem(r.json, "access_token");
    ck_assert(cJSON_IsString(t));
    snprintf(v->token, sizeof(v->token), "Bearer %s", t->valuestring);
    resp_free(&r);
}

/* An authorised API call; path is under /api/v2 and printf-formatted. */
static void api(env *v, const char *method, const char *body, http_resp *out, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void api(env *v, const char *method, const char *body, http_resp *out, const char *fmt, ...)
{
    char path[8192], url[8300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    snprintf(url, sizeof(url), "%s/api/v2%s", v->base, path);
    http(method, url, v->token, body, NULL, out);
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static long jnum(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", key);
    return (long)v->valuedouble;
}

static void assert_error(const http_resp *r, long status, const char *code)
{
    ck_assert_msg(r->status == status, "status %ld, want %ld: %s", r->status, status,
                  r->body ? r->body : "");
    ck_assert_str_eq(jstr(r->json, "error"), code);
}

static bool is_stamp(const char *s)
{
    static const char pattern[] = "dddd-dd-ddTdd:dd:dd";
    if (!s || strlen(s) != 19)
        return false;
    for (size_t i = 0; i < 19; i++)
        if (pattern[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pattern[i])
            return false;
    return true;
}

/* A keyset walk, each record as (updated_at, id, status, position_id). */
typedef struct walk_item {
    char upd[20];
    long id;
    char status[16];
    long position_id;
} walk_item;

typedef struct walk {
    walk_item *items;
    size_t n, cap;
    int pages;
} walk;

static void walk_add(walk *w, const cJSON *rec)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 256;
        w->items = realloc(w->items, w->cap * sizeof(*w->items));
        ck_assert_ptr_nonnull(w->items);
    }
    walk_item *it = &w->items[w->n++];
    memset(it, 0, sizeof(*it));
    const char *u = jstr(rec, "updated_at");
    ck_assert_msg(is_stamp(u), "bad updated_at %s", u ? u : "(null)");
    snprintf(it->upd, sizeof(it->upd), "%s", u);
    it->id = jnum(rec, "id");
    const char *st = jstr(rec, "status");
    if (st)
        snprintf(it->status, sizeof(it->status), "%s", st);
    const cJSON *pid = cJSON_GetObjectItem(rec, "position_id");
    if (cJSON_IsNumber(pid))
        it->position_id = (long)pid->valuedouble;
}

/* Pages through kind with the given extra query until next_cursor is null.
 * on_page (may be NULL) runs after each page. repeat: send the filters on
 * every page too, not only on the first. */
static void walk_all(env *v, const char *kind, const char *query, bool repeat, walk *w,
                     void (*on_page)(env *, walk *, void *), void *arg)
{
    memset(w, 0, sizeof(*w));
    char *cursor = NULL;
    for (;;) {
        http_resp r;
        if (!cursor)
            api(v, "GET", NULL, &r, "/%s?%s", kind, query);
        else if (repeat)
            api(v, "GET", NULL, &r, "/%s?%s&cursor=%s", kind, query, cursor);
        else
            api(v, "GET", NULL, &r, "/%s?cursor=%s", kind, cursor);
        ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
        w->pages++;
        const cJSON *data = cJSON_GetObjectItem(r.json, "data");
        ck_assert(cJSON_IsArray(data));
        for (const cJSON *it = data->child; it; it = it->next)
            walk_add(w, it);
        const cJSON *nc = cJSON_GetObjectItem(r.json, "next_cursor");
        ck_assert(nc != NULL);
        free(cursor);
        cursor = NULL;
        if (cJSON_IsString(nc)) {
            ck_assert_int_gt(cJSON_GetArraySize(data), 0);
            CURL *c = curl_easy_init();
            char *esc = curl_easy_escape(c, nc->valuestring, 0);
            cursor = strdup(esc);
            curl_free(esc);
            curl_easy_cleanup(c);
        } else {
            ck_assert(cJSON_IsNull(nc));
        }
        resp_free(&r);
        if (on_page)
            on_page(v, w, arg);
        if (!cursor)
            break;
        ck_assert_int_lt(w->pages, 100000);
    }
}

static int item_cmp(const walk_item *a, const walk_item *b)
{
    int c = strcmp(a->upd, b->upd);
    if (c)
        return c;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* --- authentication ---------------------------------------------------------- */

START_TEST(t_token)
{
    env v;
    env_start(&v, NULL);
    char url[128];
    http_resp r;
    snprintf(url, sizeof(url), "%s/t/token", v.base);

    http("POST", url, NULL, "grant_type=client_credentials&client_id=atshub&client_secret=s3cret",
         "application/x-www-form-urlencoded", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(strlen(jstr(r.json, "access_token")), 32);
    ck_assert_str_eq(jstr(r.json, "token_type"), "Bearer");
    ck_assert_int_eq(jnum(r.json, "expires_in"), 3600);
    char first[64];
    snprintf(first, sizeof(first), "%s", jstr(r.json, "access_token"));
    resp_free(&r);

    http("POST", url, NULL, "grant_type=client_credentials&client_id=atshub&client_secret=s3cret",
         "application/x-www-form-urlencoded", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_ne(jstr(r.json, "access_token"), first); /* random, not a counter */
    resp_free(&r);

    http("POST", url, NULL, "grant_type=client_credentials&client_id=atshub&client_secret=wrong",
         "application/x-www-form-urlencoded", &r);
    assert_error(&r, 401, "invalid_client");
    resp_free(&r);
    http("POST", url, NULL, "grant_type=client_credentials&client_id=other&client_secret=s3cret",
         "application/x-www-form-urlencoded", &r);
    assert_error(&r, 401, "invalid_client");
    resp_free(&r);
    http("POST", url, NULL, "client_id=atshub&client_secret=s3cret",
         "application/x-www-form-urlencoded", &r);
    assert_error(&r, 400, "bad_request");
    resp_free(&r);

    /* client_secret_basic: "atshub:s3cret" */
    http("POST", url, "Basic YXRzaHViOnMzY3JldA==", "grant_type=client_credentials",
         "application/x-www-form-urlencoded", &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);

    ah_erecruit_stats st;
    ah_erecruit_sim_stats(v.e, &st);
    ck_assert_uint_eq(st.tokens_issued, 3);
    ck_assert_uint_eq(st.invalid_client, 2);
    ck_assert_uint_eq(ah_erecruit_sim_requests(v.e, "POST", "/t/token"), 6);
    env_stop(&v);
}
END_TEST

START_TEST(t_auth)
{
    ah_erecruit_opts o = {.positions = 5, .contacts = 5, .submissions = 5, .clock_utc = T0,
                          .token_ttl_s = 600};
    env v;
    env_start(&v, &o);
    http_resp r;

    api(&v, "GET", NULL, &r, "/stages");
    assert_error(&r, 401, "invalid_token");
    resp_free(&r);
    snprintf(v.token, sizeof(v.token), "Bearer 0123456789abcdef0123456789abcdef");
    api(&v, "GET", NULL, &r, "/positions");
    assert_error(&r, 401, "invalid_token");
    resp_free(&r);

    get_token(&v);
    api(&v, "GET", NULL, &r, "/stages");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);

    /* Expiry follows the sim clock. */
    ah_erecruit_sim_now(v.e, T0 + 599);
    api(&v, "GET", NULL, &r, "/stages");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ah_erecruit_sim_now(v.e, T0 + 600);
    api(&v, "GET", NULL, &r, "/stages");
    assert_error(&r, 401, "invalid_token");
    resp_free(&r);

    get_token(&v);
    api(&v, "GET", NULL, &r, "/stages");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ah_erecruit_sim_expire_tokens(v.e);
    api(&v, "GET", NULL, &r, "/stages");
    assert_error(&r, 401, "invalid_token");
    resp_free(&r);

    ah_erecruit_stats st;
    ah_erecruit_sim_stats(v.e, &st);
    ck_assert_uint_eq(st.invalid_token, 4);
    ck_assert_uint_eq(st.tokens_issued, 2);
    env_stop(&v);
}
END_TEST

/* --- keyset paging --------------------------------------------------------------- */

START_TEST(t_walk)
{
    ah_erecruit_opts o = {.seed = 7, .positions = 1234, .contacts = 10, .submissions = 10};
    env v;
    env_start(&v, &o);
    get_token(&v);
    walk w;
    walk_all(&v, "positions", "per_page=100", true, &w, NULL, NULL);
    ck_assert_uint_eq(w.n, 1234);
    ck_assert_int_eq(w.pages, 13);
    bool *seen = calloc(1234, sizeof(*seen));
    ck_assert_ptr_nonnull(seen);
    for (size_t i = 0; i < w.n; i++) {
        long idx = w.items[i].id - 1001;
        ck_assert(idx >= 0 && idx < 1234);
        ck_assert(!seen[idx]);
        seen[idx] = true;
        if (i > 0)
            ck_assert_int_lt(item_cmp(&w.items[i - 1], &w.items[i]), 0);
    }
    /* The same order as the sim's own index. */
    long *ids;
    size_t n = ah_erecruit_sim_ids(v.e, "position", &ids);
    ck_assert_uint_eq(n, 1234);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(ids[i], w.items[i].id);
    free(ids);
    free(seen);
    free(w.items);

    /* The cursor alone carries per_page and filters. */
    walk_all(&v, "positions", "per_page=100", false, &w, NULL, NULL);
    ck_assert_uint_eq(w.n, 1234);
    ck_assert_int_eq(w.pages, 13);
    free(w.items);

    /* Default per_page is 100. */
    http_resp r;
    api(&v, "GET", NULL, &r, "/positions");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "data")), 100);
    resp_free(&r);
    env_stop(&v);
}
END_TEST

START_TEST(t_updated_after)
{
    ah_erecruit_opts o = {.seed = 3, .positions = 800};
    env v;
    env_start(&v, &o);
    get_token(&v);
    walk all;
    walk_all(&v, "positions", "per_page=500", true, &all, NULL, NULL);
    ck_assert_uint_eq(all.n, 800);
    for (size_t pick = 0; pick < all.n; pick += 97) {
        const char *s = all.items[pick].upd;
        size_t want = 0;
        for (size_t i = 0; i < all.n; i++)
            want += strcmp(all.items[i].upd, s) > 0;
        char q[64];
        snprintf(q, sizeof(q), "per_page=50&updated_after=%s", s);
        walk w;
        walk_all(&v, "positions", q, pick % 2 == 0, &w, NULL, NULL);
        ck_assert_uint_eq(w.n, want);
        for (size_t i = 0; i < w.n; i++)
            ck_assert_str_gt(w.items[i].upd, s);
        free(w.items);
    }
    free(all.items);
    env_stop(&v);
}
END_TEST

typedef struct touch_ctx {
    long first_id;     /* touched after page 1: seen again later */
    long ahead_id;     /* not yet seen, touched after page 1: seen once */
    bool done;
} touch_ctx;

static void touch_after_first(env *v, walk *w, void *arg)
{
    touch_ctx *t = arg;
    if (t->done)
        return;
    t->done = true;
    t->first_id = w->items[0].id;
    ck_assert_int_eq(ah_erecruit_sim_touch(v->e, "position", t->first_id, NULL), 0);
    long *ids;
    size_t n = ah_erecruit_sim_ids(v->e, "position", &ids);
    t->ahead_id = ids[n / 2];
    free(ids);
    ck_assert_int_eq(ah_erecruit_sim_touch(v->e, "position", t->ahead_id, NULL), 0);
}

START_TEST(t_touch_during_walk)
{
    ah_erecruit_opts o = {.seed = 11, .positions = 450};
    env v;
    env_start(&v, &o);
    get_token(&v);
    touch_ctx t = {0};
    walk w;
    walk_all(&v, "positions", "per_page=100", true, &w, touch_after_first, &t);
    ck_assert_uint_eq(w.n, 451);
    int first = 0, ahead = 0;
    bool *seen = calloc(450, sizeof(*seen));
    ck_assert_ptr_nonnull(seen);
    for (size_t i = 0; i < w.n; i++) {
        first += w.items[i].id == t.first_id;
        ahead += w.items[i].id == t.ahead_id;
        seen[w.items[i].id - 1001] = true;
    }
    ck_assert_int_eq(first, 2);
    ck_assert_int_eq(ahead, 1);
    for (size_t i = 0; i < 450; i++)
        ck_assert(seen[i]);
    /* Both touched records are now the newest two. */
    ck_assert(w.items[w.n - 1].id == t.first_id || w.items[w.n - 1].id == t.ahead_id);
    char stamp[20];
    snprintf(stamp, sizeof(stamp), "%s", w.items[w.n - 1].upd);
    free(seen);
    free(w.items);

    /* An update placed inside the backfill window (an hour before the newest
     * stamp) is behind a cursor at the newest record but found by a client
     * that steps updated_after back two hours. */
    http_resp r;
    struct tm tm = {0};
    ck_assert_ptr_nonnull(strptime(stamp, "%Y-%m-%dT%H:%M:%S", &tm));
    time_t t_new = timegm(&tm);
    char back1[20], back2[20];
    time_t x = t_new - 3600;
    strftime(back1, sizeof(back1), "%Y-%m-%dT%H:%M:%S", gmtime_r(&x, &tm));
    x = t_new - 7200;
    strftime(back2, sizeof(back2), "%Y-%m-%dT%H:%M:%S", gmtime_r(&x, &tm));
    long late_id = 1001 + 5;
    ck_assert_int_eq(ah_erecruit_sim_touch(v.e, "position", late_id, back1), 0);
    api(&v, "GET", NULL, &r, "/positions?updated_after=%s", stamp);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "data")), 0);
    resp_free(&r);
    walk b;
    char q[64];
    snprintf(q, sizeof(q), "updated_after=%s", back2);
    walk_all(&v, "positions", q, true, &b, NULL, NULL);
    bool found = false;
    for (size_t i = 0; i < b.n; i++)
        found = found || (b.items[i].id == late_id && strcmp(b.items[i].upd, back1) == 0);
    ck_assert(found);
    free(b.items);
    ck_assert_int_eq(ah_erecruit_sim_touch(v.e, "position", late_id, "2025-02-30T00:00:00"), -1);
    ck_assert_int_eq(ah_erecruit_sim_touch(v.e, "position", 999999, NULL), -1);
    env_stop(&v);
}
END_TEST

START_TEST(t_filters)
{
    ah_erecruit_opts o = {.seed = 5, .positions = 300, .contacts = 200, .submissions = 900};
    env v;
    env_start(&v, &o);
    get_token(&v);

    walk all, w;
    walk_all(&v, "positions", "per_page=500", true, &all, NULL, NULL);
    size_t want = 0, per_status[4] = {0};
    static const char *const st[] = {"draft", "open", "closed", "filled"};
    for (size_t i = 0; i < all.n; i++) {
        want += strcmp(all.items[i].status, "open") == 0 ||
                strcmp(all.items[i].status, "closed") == 0;
        for (int s = 0; s < 4; s++)
            per_status[s] += strcmp(all.items[i].status, st[s]) == 0;
    }
    for (int s = 0; s < 4; s++)
        ck_assert_uint_gt(per_status[s], 0); /* every status is represented */
    for (int repeat = 0; repeat < 2; repeat++) {
        walk_all(&v, "positions", "per_page=20&status=open,closed", repeat, &w, NULL, NULL);
        ck_assert_uint_eq(w.n, want);
        for (size_t i = 0; i < w.n; i++)
            ck_assert(strcmp(w.items[i].status, "open") == 0 ||
                      strcmp(w.items[i].status, "closed") == 0);
        free(w.items);
    }
    free(all.items);
    http_resp r;
    api(&v, "GET", NULL, &r, "/positions?status=open,bogus");
    assert_error(&r, 400, "bad_request");
    resp_free(&r);

    walk_all(&v, "submissions", "per_page=500", true, &all, NULL, NULL);
    ck_assert_uint_eq(all.n, 900);
    long p1 = all.items[0].position_id, p2 = all.items[1].position_id;
    want = 0;
    for (size_t i = 0; i < all.n; i++)
        want += all.items[i].position_id == p1 || all.items[i].position_id == p2;
    char q[96];
    snprintf(q, sizeof(q), "per_page=2&position_id=%ld,%ld", p1, p2);
    walk_all(&v, "submissions", q, false, &w, NULL, NULL);
    ck_assert_uint_eq(w.n, want);
    for (size_t i = 0; i < w.n; i++)
        ck_assert(w.items[i].position_id == p1 || w.items[i].position_id == p2);
    free(w.items);
    free(all.items);
    api(&v, "GET", NULL, &r, "/submissions?position_id=1,x");
    assert_error(&r, 400, "bad_request");
    resp_free(&r);

    walk_all(&v, "contacts", "per_page=64", true, &all, NULL, NULL);
    ck_assert_uint_eq(all.n, 200);
    free(all.items);
    env_stop(&v);
}
END_TEST

START_TEST(t_paging_errors)
{
    ah_erecruit_opts o = {.positions = 10, .submissions = 10, .contacts = 10};
    env v;
    env_start(&v, &o);
    get_token(&v);
    http_resp r;
    static const char *const bad[] = {
        "/positions?per_page=0",
        "/positions?per_page=501",
        "/positions?per_page=x",
        "/positions?cursor=garbage!",
        "/positions?cursor=eyJrIjoxfQ", /* {"k":1} */
        "/positions?updated_after=2025-10-06",
        "/positions?updated_after=2025-10-06T16:30:00%2B03:00",
        "/positions?expand=nope",
        "/custom-fields?entity=job",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        api(&v, "GET", NULL, &r, "%s", bad[i]);
        ck_assert_msg(r.status == 400, "%s: %ld", bad[i], r.status);
        ck_assert_str_eq(jstr(r.json, "error"), "bad_request");
        ck_assert_ptr_nonnull(jstr(r.json, "message"));
        resp_free(&r);
    }
    /* A cursor from one list is refused by another. */
    api(&v, "GET", NULL, &r, "/positions?per_page=1");
    char cur[512];
    snprintf(cur, sizeof(cur), "%s", jstr(r.json, "next_cursor"));
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/contacts?cursor=%s", cur);
    assert_error(&r, 400, "bad_request");
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/positions?cursor=%s", cur);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);

    api(&v, "GET", NULL, &r, "/positions?per_page=500");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "data")), 10);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "next_cursor")));
    resp_free(&r);
    env_stop(&v);
}
END_TEST

/* --- single records and writes ---------------------------------------------------- */

static cJSON *getter(char *txt)
{
    ck_assert_ptr_nonnull(txt);
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    ck_assert_ptr_nonnull(j);
    return j;
}

START_TEST(t_submission_writes)
{
    ah_erecruit_opts o = {.seed = 9, .positions = 20, .contacts = 20, .submissions = 40,
                          .clock_utc = T0};
    env v;
    env_start(&v, &o);
    get_token(&v);
    http_resp r;

    api(&v, "POST", "{\"contact_id\":2000003,\"position_id\":1004}", &r, "/submissions");
    ck_assert_int_eq(r.status, 201);
    long sid = jnum(r.json, "id");
    ck_assert_int_eq(jnum(r.json, "stage_id"), 1);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r.json, "rejected")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "status_id")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "disposition_reason_id")));
    ck_assert_str_eq(jstr(r.json, "created_at"), "2025-10-06T16:30:00");
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/submissions/%ld", sid);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(jnum(r.json, "contact_id"), 2000003);
    ck_assert_int_eq(jnum(r.json, "position_id"), 1004);
    resp_free(&r);

    api(&v, "POST", "{\"contact_id\":2000003,\"position_id\":1004,\"stage_id\":2}", &r,
        "/submissions");
    ck_assert_int_eq(r.status, 201);
    ck_assert_int_eq(jnum(r.json, "stage_id"), 2);
    resp_free(&r);
    api(&v, "POST", "{\"contact_id\":1,\"position_id\":1004}", &r, "/submissions");
    assert_error(&r, 422, "validation_failed");
    ck_assert_str_eq(jstr(r.json, "field"), "contact_id");
    resp_free(&r);
    api(&v, "POST", "{\"contact_id\":2000003,\"position_id\":77}", &r, "/submissions");
    assert_error(&r, 422, "validation_failed");
    ck_assert_str_eq(jstr(r.json, "field"), "position_id");
    resp_free(&r);
    api(&v, "POST", "{\"contact_id\":2000003,\"position_id\":1004,\"stage_id\":9}", &r,
        "/submissions");
    assert_error(&r, 422, "validation_failed");
    resp_free(&r);
    api(&v, "POST", "{not json", &r, "/submissions");
    assert_error(&r, 400, "bad_request");
    resp_free(&r);

    /* Moves change the stage and bump updated_at to the sim's local now. */
    ah_erecruit_sim_now(v.e, T0 + 60);
    api(&v, "POST", "{\"stage_id\":3}", &r, "/submissions/%ld/stage", sid);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(jnum(r.json, "stage_id"), 3);
    ck_assert_str_eq(jstr(r.json, "updated_at"), "2025-10-06T16:31:00");
    resp_free(&r);
    cJSON *g = getter(ah_erecruit_sim_get(v.e, "submission", sid));
    ck_assert_int_eq(jnum(g, "stage_id"), 3);
    cJSON_Delete(g);
    api(&v, "POST", "{\"stage_id\":6}", &r, "/submissions/%ld/stage", sid);
    assert_error(&r, 422, "validation_failed");
    ck_assert_str_eq(jstr(r.json, "field"), "stage_id");
    resp_free(&r);
    api(&v, "POST", "{\"stage_id\":2}", &r, "/submissions/999/stage");
    assert_error(&r, 404, "not_found");
    resp_free(&r);

    /* Reject once; the second time conflicts. */
    api(&v, "POST", "{\"reason_id\":99}", &r, "/submissions/%ld/reject", sid);
    assert_error(&r, 422, "validation_failed");
    resp_free(&r);
    api(&v, "POST", "{\"reason_id\":11}", &r, "/submissions/%ld/reject", sid);
    ck_assert_int_eq(r.status, 200);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "rejected")));
    ck_assert_int_eq(jnum(r.json, "disposition_reason_id"), 11);
    resp_free(&r);
    api(&v, "POST", "{\"reason_id\":10}", &r, "/submissions/%ld/reject", sid);
    assert_error(&r, 409, "conflict");
    resp_free(&r);
    g = getter(ah_erecruit_sim_get(v.e, "submission", sid));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(g, "rejected")));
    ck_assert_int_eq(jnum(g, "disposition_reason_id"), 11);
    cJSON_Delete(g);

    api(&v, "POST", "{\"status_id\":101}", &r, "/submissions/%ld/status", sid);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(jnum(r.json, "status_id"), 101);
    resp_free(&r);
    g = getter(ah_erecruit_sim_get(v.e, "submission", sid));
    ck_assert_int_eq(jnum(g, "status_id"), 101);
    cJSON_Delete(g);
    api(&v, "POST", "{\"status_id\":\"x\"}", &r, "/submissions/%ld/status", sid);
    assert_error(&r, 422, "validation_failed");
    resp_free(&r);

    /* Notes, as HTML with an action id. */
    api(&v, "POST", "{\"body_html\":\"<p>Screened \\u2713</p>\",\"action_id\":496}", &r,
        "/submissions/%ld/notes", sid);
    ck_assert_int_eq(r.status, 201);
    ck_assert_int_eq(jnum(r.json, "action_id"), 496);
    ck_assert_str_eq(jstr(r.json, "body_html"), "<p>Screened \xe2\x9c\x93</p>");
    ck_assert(is_stamp(jstr(r.json, "created_at")));
    resp_free(&r);
    api(&v, "POST", "{\"body_html\":\"\"}", &r, "/submissions/%ld/notes", sid);
    assert_error(&r, 422, "validation_failed");
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/submissions/%ld/notes", sid);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "data")), 1);
    resp_free(&r);
    g = getter(ah_erecruit_sim_notes(v.e, "submission", sid));
    ck_assert_int_eq(cJSON_GetArraySize(g), 1);
    ck_assert_int_eq(jnum(cJSON_GetArrayItem(g, 0), "action_id"), 496);
    cJSON_Delete(g);

    /* Documents: size is the decoded size; bad base64 is refused. */
    api(&v, "POST",
        "{\"filename\":\"cv.pdf\",\"content_type\":\"application/pdf\","
        "\"data_base64\":\"JVBERi0xLjQK\"}",
        &r, "/submissions/%ld/documents", sid);
    ck_assert_int_eq(r.status, 201);
    ck_assert_int_eq(jnum(r.json, "size"), 9);
    ck_assert_str_eq(jstr(r.json, "filename"), "cv.pdf");
    resp_free(&r);
    static const char *const bad_b64[] = {"JVBERi0xLjQ", "JVBE*i0xLjQK", "JV=ERi0xLjQK", ""};
    for (size_t i = 0; i < 4; i++) {
        char body[128];
        snprintf(body, sizeof(body), "{\"filename\":\"x.pdf\",\"data_base64\":\"%s\"}",
                 bad_b64[i]);
        api(&v, "POST", body, &r, "/submissions/%ld/documents", sid);
        assert_error(&r, 422, "validation_failed");
        ck_assert_str_eq(jstr(r.json, "field"), "data_base64");
        resp_free(&r);
    }
    api(&v, "GET", NULL, &r, "/submissions/%ld/documents", sid);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "data")), 1);
    ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "data"),
                                                              0), "data_base64"));
    resp_free(&r);
    g = getter(ah_erecruit_sim_documents(v.e, "submission", sid));
    ck_assert_int_eq(cJSON_GetArraySize(g), 1);
    ck_assert_int_eq(jnum(cJSON_GetArrayItem(g, 0), "size"), 9);
    cJSON_Delete(g);

    ck_assert_uint_eq(ah_erecruit_sim_requests(v.e, "POST", "/api/v2/submissions/{id}/reject"), 3);
    ck_assert_uint_eq(ah_erecruit_sim_requests(v.e, NULL, "/api/v2/submissions/{id}/documents"),
                      6);
    env_stop(&v);
}
END_TEST

START_TEST(t_contact_writes)
{
    ah_erecruit_opts o = {.seed = 4, .positions = 5, .contacts = 60, .submissions = 5,
                          .clock_utc = T0};
    env v;
    env_start(&v, &o);
    get_token(&v);
    http_resp r;

    api(&v, "POST", "{\"tag_id\":65880}", &r, "/contacts/2000010/tags");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    api(&v, "POST", "{\"tag_id\":65880}", &r, "/contacts/2000010/tags");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    cJSON *g = getter(ah_erecruit_sim_tags(v.e, 2000010));
    int count = 0;
    for (const cJSON *t = g->child; t; t = t->next)
        count += t->valuedouble == 65880;
    ck_assert_int_eq(count, 1);
    cJSON_Delete(g);
    api(&v, "POST", "{\"tag_id\":\"x\"}", &r, "/contacts/2000010/tags");
    assert_error(&r, 422, "validation_failed");
    resp_free(&r);
    api(&v, "POST", "{\"tag_id\":1}", &r, "/contacts/1/tags");
    assert_error(&r, 404, "not_found");
    resp_free(&r);

    api(&v, "POST", "{\"body_html\":\"<b>hi</b>\",\"action_id\":496}", &r,
        "/contacts/2000010/notes");
    ck_assert_int_eq(r.status, 201);
    resp_free(&r);
    g = getter(ah_erecruit_sim_notes(v.e, "contact", 2000010));
    ck_assert_str_eq(jstr(cJSON_GetArrayItem(g, 0), "body_html"), "<b>hi</b>");
    cJSON_Delete(g);

    /* Resume: seeded for some contacts; otherwise the newest .pdf uploaded as one. */
    long with = 0, without = 0;
    for (long id = 2000001; id <= 2000060 && (!with || !without); id++) {
        api(&v, "GET", NULL, &r, "/contacts/%ld/resume", id);
        if (r.status == 200 && !with) {
            with = id;
            ck_assert_str_eq(jstr(r.json, "content_type"), "application/pdf");
            ck_assert(strncmp(jstr(r.json, "data_base64"), "JVBERi0", 7) == 0); /* %PDF- */
        } else if (r.status == 404 && !without) {
            without = id;
            ck_assert_str_eq(jstr(r.json, "error"), "not_found");
        }
        resp_free(&r);
    }
    ck_assert(with && without);
    api(&v, "POST", "{\"filename\":\"notes.txt\",\"data_base64\":\"aGk=\",\"kind\":\"resume\"}",
        &r, "/contacts/%ld/documents", without);
    ck_assert_int_eq(r.status, 201);
    ck_assert_int_eq(jnum(r.json, "size"), 2);
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/contacts/%ld/resume", without);
    ck_assert_int_eq(r.status, 404); /* not a .pdf */
    resp_free(&r);
    api(&v, "POST",
        "{\"filename\":\"CV.PDF\",\"content_type\":\"application/pdf\","
        "\"data_base64\":\"JVBERi0xLjQK\\n\",\"kind\":\"resume\"}",
        &r, "/contacts/%ld/documents", without);
    ck_assert_int_eq(r.status, 201);
    resp_free(&r);
    api(&v, "POST", "{\"filename\":\"old.pdf\",\"data_base64\":\"aGk=\"}", &r,
        "/contacts/%ld/documents", without);
    ck_assert_int_eq(r.status, 201);
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/contacts/%ld/resume", without);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(jstr(r.json, "filename"), "CV.PDF");
    ck_assert_str_eq(jstr(r.json, "data_base64"), "JVBERi0xLjQK");
    resp_free(&r);
    g = getter(ah_erecruit_sim_documents(v.e, "contact", without));
    ck_assert_int_eq(cJSON_GetArraySize(g), 3);
    cJSON_Delete(g);
    env_stop(&v);
}
END_TEST

START_TEST(t_custom_fields)
{
    ah_erecruit_opts o = {.seed = 2, .positions = 5, .contacts = 5, .submissions = 5,
                          .clock_utc = T0};
    env v;
    env_start(&v, &o);
    get_token(&v);
    http_resp r;
    static const char *const ents[] = {"submission", "contact", "position"};
    for (int i = 0; i < 3; i++) {
        api(&v, "GET", NULL, &r, "/custom-fields?entity=%s", ents[i]);
        ck_assert_int_eq(r.status, 200);
        const cJSON *d = cJSON_GetObjectItem(r.json, "data");
        ck_assert_int_ge(cJSON_GetArraySize(d), 4);
        bool types[4] = {0};
        for (const cJSON *f = d->child; f; f = f->next) {
            ck_assert_ptr_nonnull(jstr(f, "key"));
            ck_assert_ptr_nonnull(jstr(f, "label"));
            const char *t = jstr(f, "type");
            types[0] |= strcmp(t, "text") == 0;
            types[1] |= strcmp(t, "number") == 0;
            types[2] |= strcmp(t, "date") == 0;
            if (strcmp(t, "select") == 0) {
                types[3] = true;
                ck_assert_int_gt(cJSON_GetArraySize(cJSON_GetObjectItem(f, "options")), 1);
            }
        }
        ck_assert(types[0] && types[1] && types[2] && types[3]);
        resp_free(&r);
    }

    api(&v, "GET", NULL, &r, "/positions/1002/custom-fields");
    ck_assert_int_eq(r.status, 200);
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(r.json, "data")));
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "data"), "headcount"));
    resp_free(&r);

    ah_erecruit_sim_now(v.e, T0 + 3600);
    get_token(&v); /* the first one expired with the clock's hour */
    api(&v, "PATCH",
        "{\"values\":{\"headcount\":3,\"remote_policy\":\"hybrid\","
        "\"target_start\":\"2025-11-01\",\"cost_center\":null}}",
        &r, "/positions/1002/custom-fields");
    ck_assert_int_eq(r.status, 200);
    const cJSON *d = cJSON_GetObjectItem(r.json, "data");
    ck_assert_int_eq(jnum(d, "headcount"), 3);
    ck_assert_str_eq(jstr(d, "remote_policy"), "hybrid");
    resp_free(&r);
    cJSON *g = getter(ah_erecruit_sim_custom_fields(v.e, "position", 1002));
    ck_assert_str_eq(jstr(g, "target_start"), "2025-11-01");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(g, "cost_center")));
    cJSON_Delete(g);
    g = getter(ah_erecruit_sim_get(v.e, "position", 1002));
    ck_assert_str_eq(jstr(g, "updated_at"), "2025-10-06T17:30:00");
    ck_assert_int_eq(jnum(cJSON_GetObjectItem(g, "custom_fields"), "headcount"), 3);
    cJSON_Delete(g);

    struct { const char *body, *field; } bad[] = {
        {"{\"values\":{\"nope\":1}}", "nope"},
        {"{\"values\":{\"headcount\":\"three\"}}", "headcount"},
        {"{\"values\":{\"target_start\":\"2025-02-30\"}}", "target_start"},
        {"{\"values\":{\"remote_policy\":\"moon\"}}", "remote_policy"},
        {"{\"values\":{\"cost_center\":5}}", "cost_center"},
        {"{\"values\":{\"headcount\":4,\"nope\":1}}", "nope"},
        {"{\"values\":[]}", "values"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        api(&v, "PATCH", bad[i].body, &r, "/positions/1002/custom-fields");
        assert_error(&r, 422, "validation_failed");
        ck_assert_str_eq(jstr(r.json, "field"), bad[i].field);
        ck_assert_ptr_nonnull(strstr(jstr(r.json, "message"), bad[i].field));
        resp_free(&r);
    }
    g = getter(ah_erecruit_sim_custom_fields(v.e, "position", 1002));
    ck_assert_int_eq(jnum(g, "headcount"), 3); /* all or nothing */
    cJSON_Delete(g);

    api(&v, "PATCH", "{\"values\":{\"source\":\"referral\",\"screening_score\":87.5}}", &r,
        "/submissions/5000002/custom-fields");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    api(&v, "PATCH", "{\"values\":{\"visa_status\":\"resident\"}}", &r,
        "/contacts/2000002/custom-fields");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    g = getter(ah_erecruit_sim_custom_fields(v.e, "contact", 2000002));
    ck_assert_str_eq(jstr(g, "visa_status"), "resident");
    cJSON_Delete(g);
    api(&v, "PATCH", "{\"values\":{\"headcount\":1}}", &r, "/contacts/2000002/custom-fields");
    assert_error(&r, 422, "validation_failed");
    resp_free(&r);
    api(&v, "PATCH", "{\"values\":{}}", &r, "/contacts/42/custom-fields");
    assert_error(&r, 404, "not_found");
    resp_free(&r);
    env_stop(&v);
}
END_TEST

START_TEST(t_reads)
{
    ah_erecruit_opts o = {.seed = 6, .positions = 30, .contacts = 300, .submissions = 30};
    env v;
    env_start(&v, &o);
    get_token(&v);
    http_resp r;

    api(&v, "GET", NULL, &r, "/stages");
    const cJSON *d = cJSON_GetObjectItem(r.json, "data");
    ck_assert_int_eq(cJSON_GetArraySize(d), 5);
    ck_assert_int_eq(jnum(d->child, "id"), 1);
    ck_assert_str_eq(jstr(d->child, "name"), "Applied");
    ck_assert_int_eq(jnum(d->child, "order"), 1);
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/disposition-reasons");
    d = cJSON_GetObjectItem(r.json, "data");
    ck_assert_int_ge(cJSON_GetArraySize(d), 3);
    ck_assert_int_eq(jnum(d->child, "id"), 10);
    resp_free(&r);

    api(&v, "GET", NULL, &r, "/positions/1003");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(jnum(r.json, "id"), 1003);
    const char *keys[] = {"title", "status", "department", "employment_type", "description",
                          "created_at", "updated_at"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        ck_assert_msg(jstr(r.json, keys[i]), "missing %s", keys[i]);
    ck_assert_ptr_nonnull(jstr(cJSON_GetObjectItem(r.json, "location"), "city"));
    ck_assert_ptr_null(cJSON_GetObjectItem(r.json, "custom_fields"));
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/positions/1003?expand=custom_fields,hiring_team");
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(r.json, "custom_fields")));
    const cJSON *team = cJSON_GetObjectItem(r.json, "hiring_team");
    ck_assert_int_ge(cJSON_GetArraySize(team), 1);
    ck_assert_ptr_nonnull(jstr(team->child, "name"));
    ck_assert_ptr_nonnull(jstr(team->child, "role"));
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/positions?expand=custom_fields,hiring_team&per_page=7");
    d = cJSON_GetObjectItem(r.json, "data");
    ck_assert_int_eq(cJSON_GetArraySize(d), 7);
    for (const cJSON *p = d->child; p; p = p->next)
        ck_assert_ptr_nonnull(cJSON_GetObjectItem(p, "hiring_team"));
    resp_free(&r);

    /* 404s */
    static const char *const missing[] = {"/positions/1", "/submissions/1", "/contacts/1",
                                          "/positions/abc", "/nothing", "/contacts/1/resume",
                                          "/submissions/1/notes"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        api(&v, "GET", NULL, &r, "%s", missing[i]);
        ck_assert_msg(r.status == 404, "%s: %ld", missing[i], r.status);
        ck_assert_str_eq(jstr(r.json, "error"), "not_found");
        resp_free(&r);
    }

    /* Contact: unique emails; search is AND and case-insensitive. */
    api(&v, "GET", NULL, &r, "/contacts/2000007");
    ck_assert_int_eq(r.status, 200);
    char first[64], last[64], email[128];
    snprintf(first, sizeof(first), "%s", jstr(r.json, "first_name"));
    snprintf(last, sizeof(last), "%s", jstr(r.json, "last_name"));
    snprintf(email, sizeof(email), "%s", jstr(r.json, "email"));
    ck_assert_ptr_nonnull(jstr(r.json, "phone"));
    ck_assert(cJSON_IsArray(cJSON_GetObjectItem(r.json, "tags")));
    resp_free(&r);
    CURL *c = curl_easy_init();
    char upper[64];
    size_t i;
    for (i = 0; first[i]; i++)
        upper[i] = (char)((first[i] >= 'a' && first[i] <= 'z') ? first[i] - 32 : first[i]);
    upper[i] = '\0';
    char *ef = curl_easy_escape(c, upper, 0), *el = curl_easy_escape(c, last, 0),
         *ee = curl_easy_escape(c, email, 0);
    api(&v, "GET", NULL, &r, "/contacts/search?first_name=%s&last_name=%s", ef, el);
    ck_assert_int_eq(r.status, 200);
    d = cJSON_GetObjectItem(r.json, "data");
    bool found = false;
    for (const cJSON *p = d->child; p; p = p->next) {
        ck_assert_str_eq(jstr(p, "last_name"), last);
        found = found || jnum(p, "id") == 2000007;
    }
    ck_assert(found);
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/contacts/search?email=%s", ee);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "data")), 1);
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/contacts/search?email=%s&first_name=Nobody", ee);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "data")), 0);
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/contacts/search");
    assert_error(&r, 400, "bad_request");
    resp_free(&r);
    curl_free(ef);
    curl_free(el);
    curl_free(ee);
    curl_easy_cleanup(c);

    api(&v, "DELETE", NULL, &r, "/positions/1003");
    ck_assert_int_eq(r.status, 405);
    resp_free(&r);
    env_stop(&v);
}
END_TEST

START_TEST(t_put_delete)
{
    ah_erecruit_opts o = {.seed = 8, .positions = 10, .contacts = 10, .submissions = 10,
                          .clock_utc = T0};
    env v;
    env_start(&v, &o);
    get_token(&v);
    http_resp r;

    long id = ah_erecruit_sim_put(v.e, "position",
                                  "{\"title\":\"Nurse\",\"status\":\"draft\","
                                  "\"location\":{\"city\":\"Riyadh\"}}");
    ck_assert_int_eq(id, 1011);
    api(&v, "GET", NULL, &r, "/positions/%ld", id);
    ck_assert_str_eq(jstr(r.json, "title"), "Nurse");
    ck_assert_str_eq(jstr(r.json, "status"), "draft");
    ck_assert_str_eq(jstr(r.json, "updated_at"), "2025-10-06T16:30:00");
    resp_free(&r);
    ck_assert_int_eq(ah_erecruit_sim_put(v.e, "position",
                                         "{\"id\":1011,\"status\":\"open\","
                                         "\"updated_at\":\"2025-10-01T08:00:00\"}"),
                     1011);
    cJSON *g = getter(ah_erecruit_sim_get(v.e, "position", 1011));
    ck_assert_str_eq(jstr(g, "status"), "open");
    ck_assert_str_eq(jstr(g, "title"), "Nurse");
    ck_assert_str_eq(jstr(g, "updated_at"), "2025-10-01T08:00:00");
    cJSON_Delete(g);
    ck_assert_int_eq(ah_erecruit_sim_put(v.e, "position", "{\"status\":\"gone\"}"), -1);
    ck_assert_int_eq(ah_erecruit_sim_put(v.e, "thing", "{}"), -1);
    ck_assert_int_eq(ah_erecruit_sim_put(v.e, "contact", "[1]"), -1);
    long cid = ah_erecruit_sim_put(v.e, "contact",
                                   "{\"id\":777,\"first_name\":\"Amal\",\"tags\":[1,2]}");
    ck_assert_int_eq(cid, 777);
    g = getter(ah_erecruit_sim_tags(v.e, 777));
    ck_assert_int_eq(cJSON_GetArraySize(g), 2);
    cJSON_Delete(g);

    ck_assert_int_eq(ah_erecruit_sim_delete(v.e, "position", 1005), 0);
    ck_assert_int_eq(ah_erecruit_sim_delete(v.e, "position", 1005), -1);
    api(&v, "GET", NULL, &r, "/positions/1005");
    assert_error(&r, 404, "not_found");
    resp_free(&r);
    ck_assert_ptr_null(ah_erecruit_sim_get(v.e, "position", 1005));
    walk w;
    walk_all(&v, "positions", "per_page=3", true, &w, NULL, NULL);
    ck_assert_uint_eq(w.n, 10);
    for (size_t i = 0; i < w.n; i++)
        ck_assert_int_ne(w.items[i].id, 1005);
    free(w.items);
    env_stop(&v);
}
END_TEST

/* --- time zone, determinism, scale, rate limit ------------------------------------ */

START_TEST(t_times)
{
    int offsets[] = {180, 0, -300};
    const char *want[] = {"2025-10-06T16:30:00", "2025-10-06T13:30:00", "2025-10-06T08:30:00"};
    for (int k = 0; k < 3; k++) {
        ah_erecruit_opts o = {.positions = 50, .contacts = 5, .submissions = 5,
                              .clock_utc = T0, .tz_offset_minutes = offsets[k], .tz_set = 1};
        env v;
        env_start(&v, &o);
        get_token(&v);
        char now[20];
        ah_erecruit_sim_local_now(v.e, now, sizeof(now));
        ck_assert_str_eq(now, want[k]);
        walk w;
        walk_all(&v, "positions", "per_page=500", true, &w, NULL, NULL);
        for (size_t i = 0; i < w.n; i++) {
            ck_assert(is_stamp(w.items[i].upd)); /* no offset, no Z, no fraction */
            ck_assert_str_lt(w.items[i].upd, want[k]);
        }
        /* Within the past 30 days (plus a minute) of local now. */
        struct tm tm = {0};
        strptime(want[k], "%Y-%m-%dT%H:%M:%S", &tm);
        time_t lo = timegm(&tm) - 30 * 86400 - 60;
        char los[20];
        strftime(los, sizeof(los), "%Y-%m-%dT%H:%M:%S", gmtime_r(&lo, &tm));
        ck_assert_str_ge(w.items[0].upd, los);
        free(w.items);
        http_resp r;
        api(&v, "POST", "{\"contact_id\":2000001,\"position_id\":1001}", &r, "/submissions");
        ck_assert_int_eq(r.status, 201);
        ck_assert_str_eq(jstr(r.json, "updated_at"), want[k]);
        resp_free(&r);
        env_stop(&v);
    }
    /* Default zone is +180. */
    ah_erecruit_opts o = {.positions = 1, .clock_utc = T0};
    env v;
    env_start(&v, &o);
    char now[20];
    ah_erecruit_sim_local_now(v.e, now, sizeof(now));
    ck_assert_str_eq(now, want[0]);
    env_stop(&v);
}
END_TEST

static char *first_page(uint64_t seed, const char *kind)
{
    ah_erecruit_opts o = {.seed = seed, .positions = 200, .contacts = 200, .submissions = 200,
                          .clock_utc = T0};
    env v;
    env_start(&v, &o);
    get_token(&v);
    http_resp r;
    api(&v, "GET", NULL, &r, "/%s?per_page=50%s", kind,
        strcmp(kind, "positions") == 0 ? "&expand=custom_fields,hiring_team" : "");
    ck_assert_int_eq(r.status, 200);
    char *body = r.body;
    r.body = NULL;
    resp_free(&r);
    env_stop(&v);
    return body;
}

START_TEST(t_determinism)
{
    static const char *const kinds[] = {"positions", "contacts", "submissions"};
    for (int k = 0; k < 3; k++) {
        char *a = first_page(42, kinds[k]), *b = first_page(42, kinds[k]),
             *c = first_page(43, kinds[k]);
        ck_assert_str_eq(a, b);
        ck_assert_str_ne(a, c);
        free(a);
        free(b);
        free(c);
    }
    /* Emails are unique. */
    ah_erecruit_opts o = {.seed = 1, .contacts = 2000};
    env v;
    env_start(&v, &o);
    char **emails = calloc(2000, sizeof(*emails));
    ck_assert_ptr_nonnull(emails);
    for (long i = 0; i < 2000; i++) {
        cJSON *g = getter(ah_erecruit_sim_get(v.e, "contact", 2000001 + i));
        emails[i] = strdup(jstr(g, "email"));
        cJSON_Delete(g);
    }
    qsort(emails, 2000, sizeof(*emails), (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < 2000; i++) {
        if (i > 0)
            ck_assert_str_ne(emails[i - 1], emails[i]);
    }
    for (int i = 0; i < 2000; i++)
        free(emails[i]);
    free(emails);
    env_stop(&v);
}
END_TEST

START_TEST(t_scale)
{
    ah_erecruit_opts o = {.seed = 1, .positions = 100000, .contacts = 1000, .submissions = 1000};
    env v;
    env_start(&v, &o);
    get_token(&v);
    http_resp r;
    api(&v, "GET", NULL, &r, "/positions?per_page=500");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "data")), 500);
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(r.json, "next_cursor")));
    char cur[512];
    snprintf(cur, sizeof(cur), "%s", jstr(r.json, "next_cursor"));
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/positions?per_page=500&cursor=%s", cur);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "data")), 500);
    resp_free(&r);
    /* A touch re-positions one record among 100k. */
    ck_assert_int_eq(ah_erecruit_sim_touch(v.e, "position", 1001 + 50000, NULL), 0);
    long *ids;
    size_t n = ah_erecruit_sim_ids(v.e, "position", &ids);
    ck_assert_uint_eq(n, 100000);
    ck_assert_int_eq(ids[n - 1], 1001 + 50000);
    free(ids);
    env_stop(&v);
}
END_TEST

START_TEST(t_rate_limit)
{
    /* 0.01 rps: one request in the bucket, the next refills in 100 s. */
    ah_erecruit_opts o = {.positions = 1, .rate_limit_rps = 0.01};
    env v;
    env_start(&v, &o);
    get_token(&v);
    http_resp r;
    api(&v, "GET", NULL, &r, "/stages");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    api(&v, "GET", NULL, &r, "/stages");
    assert_error(&r, 429, "rate_limited");
    ck_assert_int_ge(atoi(r.retry_after), 1);
    resp_free(&r);
    get_token(&v); /* the token endpoint is not limited */
    ah_erecruit_stats st;
    ah_erecruit_sim_stats(v.e, &st);
    ck_assert_uint_eq(st.rate_limited, 1);
    env_stop(&v);
}
END_TEST

START_TEST(t_register)
{
    ah_sim_opts so = {.seed = 1, .no_fault_prefix = "/t/"};
    ah_sim *s = ah_sim_new(&so);
    ck_assert_ptr_nonnull(s);
    void *state = NULL;
    ck_assert_int_eq(ah_erecruit_sim_register(s, 5, 25, 60, 0, &state), 0);
    ck_assert_int_eq(ah_sim_start(s), 0);
    char now[20];
    ah_erecruit_sim_local_now(state, now, sizeof(now));
    long *ids;
    ck_assert_uint_eq(ah_erecruit_sim_ids(state, "submissions", &ids), 25);
    free(ids);
    ah_sim_stop(s);
    ah_erecruit_sim_free_state(state);
}
END_TEST

static Suite *erecruit_suite(void)
{
    Suite *s = suite_create("sim_erecruit");
    TCase *tc = tcase_create("auth");
    tcase_add_test(tc, t_token);
    tcase_add_test(tc, t_auth);
    tcase_add_test(tc, t_rate_limit);
    suite_add_tcase(s, tc);
    tc = tcase_create("lists");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_walk);
    tcase_add_test(tc, t_updated_after);
    tcase_add_test(tc, t_touch_during_walk);
    tcase_add_test(tc, t_filters);
    tcase_add_test(tc, t_paging_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("records");
    tcase_add_test(tc, t_submission_writes);
    tcase_add_test(tc, t_contact_writes);
    tcase_add_test(tc, t_custom_fields);
    tcase_add_test(tc, t_reads);
    tcase_add_test(tc, t_put_delete);
    suite_add_tcase(s, tc);
    tc = tcase_create("data");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_times);
    tcase_add_test(tc, t_determinism);
    tcase_add_test(tc, t_scale);
    tcase_add_test(tc, t_register);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return 1;
    SRunner *sr = srunner_create(erecruit_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
