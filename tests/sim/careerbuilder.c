/* SPDX-License-Identifier: Apache-2.0 */
/* CareerBuilder Candidate Status API simulator (see careerbuilder.h). */
#include "careerbuilder.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#define CB_TOKEN_PATH "/oauth/token"
#define CB_PATH "/corporate/CandidateStatus"
#define CB_MAX_TOKENS 64

typedef struct cb_token {
    char tok[33];
    time_t expires;
} cb_token;

struct ah_cb_sim {
    pthread_mutex_t mu;
    char *client_id, *client_secret;
    int token_ttl_s;
    cb_token tokens[CB_MAX_TOKENS];
    size_t ntokens, next_token;
    cJSON *store;    /* array of statuses, insertion order */
    cJSON *arrivals; /* every accepted PUT body */
    ah_cb_sim_stats stats;
    char *put_answer; /* the next accepted PUT's body, as is (NULL: the seed's) */
};

/* The seed's field table: name, max characters (0: the date), required. */
static const struct {
    const char *name;
    size_t max;
    bool required;
} fields[] = {
    {"account", 20, true},          {"candidate_email", 255, true},
    {"vendor_key", 20, false},      {"client", 20, false},
    {"requisition_id", 1024, false}, {"requisition_title", 256, false},
    {"level_id", 64, false},        {"status", 100, true},
    {"status_date", 0, true},       {"status_level", 20, true},
    {"status_detail", 4096, false},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

/* --- helpers -------------------------------------------------------------- */

static void errors_reply(ah_sim_resp *resp, int status, cJSON *errs)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || errs == NULL) {
        cJSON_Delete(o);
        cJSON_Delete(errs);
        resp->status = 500;
        return;
    }
    cJSON_AddItemToObject(o, "errors", errs);
    ah_sim_json(resp, status, o);
}

static void add_error(cJSON *errs, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_error(cJSON *errs, const char *field, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *e = cJSON_CreateObject();
    if (e == NULL)
        return;
    if (field != NULL)
        cJSON_AddStringToObject(e, "field", field);
    else
        cJSON_AddNullToObject(e, "field");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddItemToArray(errs, e);
}

static void single_error(ah_cb_sim *cb, ah_sim_resp *resp, int status, const char *field,
                         const char *msg)
{
    cJSON *errs = cJSON_CreateArray();
    if (errs != NULL)
        add_error(errs, field, "%s", msg);
    pthread_mutex_lock(&cb->mu);
    if (status == 400)
        cb->stats.refused++;
    if (status == 401)
        cb->stats.unauthorized++;
    pthread_mutex_unlock(&cb->mu);
    errors_reply(resp, status, errs);
}

static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* "YYYY-MM-DDTHH:MM:SSZ" exactly, a real date; the instant in *out. */
static bool parse_date(const char *s, time_t *out)
{
    int y, mo, d, h, mi, se;
    char z;
    if (s == NULL || strlen(s) != 20)
        return false;
    for (int i = 0; i < 20; i++) {
        bool digit_pos = i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && i != 19;
        if (digit_pos && !isdigit((unsigned char)s[i]))
            return false;
    }
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &se, &z) != 7 || z != 'Z' ||
        s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return false;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
        mi > 59 || se > 59)
        return false;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = se};
    if (out != NULL)
        *out = timegm(&tm);
    return true;
}

static const char *sget(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool same_ci(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcasecmp(a, b) == 0;
}

static bool same(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* --- tokens ---------------------------------------------------------------- */

static void h_token(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    ah_cb_sim *cb = arg;
    if (strcmp(req->path, CB_TOKEN_PATH) != 0) {
        single_error(cb, resp, 404, NULL, "no such endpoint");
        return;
    }
    char *grant, *id, *secret;
    if (req->body[0] == '{') {
        cJSON *j = cJSON_Parse(req->body);
        grant = sget(j, "grant_type") ? strdup(sget(j, "grant_type")) : NULL;
        id = sget(j, "client_id") ? strdup(sget(j, "client_id")) : NULL;
        secret = sget(j, "client_secret") ? strdup(sget(j, "client_secret")) : NULL;
        cJSON_Delete(j);
    } else {
        grant = ah_sim_form_value(req->body, "grant_type");
        id = ah_sim_form_value(req->body, "client_id");
        secret = ah_sim_form_value(req->body, "client_secret");
    }
    if (grant == NULL || strcmp(grant, "client_credentials") != 0) {
        single_error(cb, resp, 400, "grant_type", "grant_type must be client_credentials");
    } else if (id == NULL || secret == NULL || strcmp(id, cb->client_id) != 0 ||
               strcmp(secret, cb->client_secret) != 0) {
        single_error(cb, resp, 401, NULL, "invalid_client");
    } else {
        unsigned char raw[16];
        cb_token t;
        memset(&t, 0, sizeof t);
        if (RAND_bytes(raw, sizeof raw) != 1) {
            resp->status = 500;
        } else {
            for (int i = 0; i < 16; i++)
                snprintf(t.tok + 2 * i, 3, "%02x", raw[i]);
            t.expires = time(NULL) + cb->token_ttl_s;
            pthread_mutex_lock(&cb->mu);
            cb->tokens[cb->next_token] = t;
            cb->next_token = (cb->next_token + 1) % CB_MAX_TOKENS;
            if (cb->ntokens < CB_MAX_TOKENS)
                cb->ntokens++;
            cb->stats.tokens++;
            pthread_mutex_unlock(&cb->mu);
            cJSON *o = cJSON_CreateObject();
            if (o != NULL) {
                cJSON_AddStringToObject(o, "access_token", t.tok);
                cJSON_AddStringToObject(o, "token_type", "Bearer");
                cJSON_AddNumberToObject(o, "expires_in", cb->token_ttl_s);
            }
            ah_sim_json(resp, o != NULL ? 200 : 500, o);
        }
    }
    free(grant);
    free(id);
    free(secret);
}

static bool authorised(ah_cb_sim *cb, const ah_sim_req *req)
{
    const char *auth = ah_sim_header(req, "Authorization");
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    bool ok = false;
    time_t now = time(NULL);
    pthread_mutex_lock(&cb->mu);
    for (size_t i = 0; i < cb->ntokens && !ok; i++)
        ok = strcmp(cb->tokens[i].tok, auth + 7) == 0 && cb->tokens[i].expires > now;
    pthread_mutex_unlock(&cb->mu);
    return ok;
}

/* --- PUT ------------------------------------------------------------------------ */

static void validate(const cJSON *st, cJSON *errs)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, st)
    {
        bool known = false;
        for (size_t i = 0; i < NFIELDS; i++)
            known = known || (m->string != NULL && strcmp(m->string, fields[i].name) == 0);
        if (!known)
            add_error(errs, m->string, "unknown field");
    }
    for (size_t i = 0; i < NFIELDS; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, fields[i].name);
        if (v == NULL || cJSON_IsNull(v)) {
            if (fields[i].required)
                add_error(errs, fields[i].name, "%s is required", fields[i].name);
        } else if (!cJSON_IsString(v)) {
            add_error(errs, fields[i].name, "%s must be a string", fields[i].name);
        } else if (fields[i].required && v->valuestring[0] == '\0') {
            add_error(errs, fields[i].name, "%s is required", fields[i].name);
        } else if (fields[i].max > 0 && utf8_len(v->valuestring) > fields[i].max) {
            add_error(errs, fields[i].name, "%s exceeds %zu characters", fields[i].name,
                      fields[i].max);
        }
    }
    const char *date = sget(st, "status_date");
    if (date != NULL && !parse_date(date, NULL))
        add_error(errs, "status_date", "status_date must be YYYY-MM-DDTHH:MM:SSZ");
    const char *level = sget(st, "status_level");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(st, "requisition_id");
    const cJSON *title = cJSON_GetObjectItemCaseSensitive(st, "requisition_title");
    bool has_req = req != NULL && !cJSON_IsNull(req);
    bool has_title = title != NULL && !cJSON_IsNull(title);
    if (level == NULL)
        return;
    if (strcasecmp(level, "application") == 0) {
        if (!has_req || (cJSON_IsString(req) && req->valuestring[0] == '\0'))
            add_error(errs, "requisition_id", "application requires requisition_id");
    } else if (strcasecmp(level, "candidate") == 0) {
        if (has_req)
            add_error(errs, "requisition_id", "candidate must not have requisition_id");
        if (has_title)
            add_error(errs, "requisition_title", "candidate must not have requisition_title");
    } else {
        add_error(errs, "status_level", "status_level must be Application or Candidate");
    }
}

static bool same_key(const cJSON *a, const cJSON *b)
{
    return same_ci(sget(a, "account"), sget(b, "account")) &&
           same_ci(sget(a, "candidate_email"), sget(b, "candidate_email")) &&
           same(sget(a, "vendor_key"), sget(b, "vendor_key")) &&
           same(sget(a, "requisition_id"), sget(b, "requisition_id")) &&
           same_ci(sget(a, "status_level"), sget(b, "status_level"));
}

static void h_put(ah_cb_sim *cb, const ah_sim_req *req, ah_sim_resp *resp)
{
    cJSON *st = cJSON_Parse(req->body);
    if (!cJSON_IsObject(st)) {
        cJSON_Delete(st);
        single_error(cb, resp, 400, NULL, "the body must be a JSON object");
        return;
    }
    cJSON *errs = cJSON_CreateArray();
    validate(st, errs);
    if (errs == NULL || cJSON_GetArraySize(errs) > 0) {
        cJSON_Delete(st);
        pthread_mutex_lock(&cb->mu);
        cb->stats.refused++;
        pthread_mutex_unlock(&cb->mu);
        errors_reply(resp, 400, errs);
        return;
    }
    cJSON_Delete(errs);
    /* Stored without nulls, status_level lower-cased. */
    cJSON *m = st->child;
    while (m != NULL) {
        cJSON *next = m->next;
        if (cJSON_IsNull(m))
            cJSON_Delete(cJSON_DetachItemViaPointer(st, m));
        m = next;
    }
    for (char *p = cJSON_GetObjectItemCaseSensitive(st, "status_level")->valuestring; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    cJSON *copy = cJSON_Duplicate(st, 1);
    pthread_mutex_lock(&cb->mu);
    cJSON *old = NULL, *it;
    cJSON_ArrayForEach(it, cb->store)
    {
        if (same_key(it, st)) {
            old = it;
            break;
        }
    }
    if (old != NULL)
        cJSON_ReplaceItemViaPointer(cb->store, old, st);
    else
        cJSON_AddItemToArray(cb->store, st);
    if (copy != NULL)
        cJSON_AddItemToArray(cb->arrivals, copy);
    cb->stats.puts++;
    char *answer = cb->put_answer;
    cb->put_answer = NULL;
    pthread_mutex_unlock(&cb->mu);
    if (answer != NULL) {
        resp->status = 200;
        resp->body = answer;
        return;
    }
    ah_sim_json(resp, 200, cJSON_CreateString("Created/updated status."));
}

/* --- GET and POST ------------------------------------------------------------------ */

static bool after(const cJSON *st, bool filter, time_t since)
{
    time_t t;
    return !filter || (parse_date(sget(st, "status_date"), &t) && t > since);
}

static bool positive(const char *s, long lo, long hi, long *out)
{
    char *end;
    if (s == NULL || *s == '\0')
        return false;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static const char *query2(const ah_sim_req *req, const char *a, const char *b)
{
    const char *v = ah_sim_query(req, a);
    return v != NULL ? v : ah_sim_query(req, b);
}

static void h_get(ah_cb_sim *cb, const ah_sim_req *req, ah_sim_resp *resp, const char *rest)
{
    const char *slash = strchr(rest, '/');
    if (slash == NULL || slash == rest || slash[1] == '\0' || strchr(slash + 1, '/') != NULL) {
        single_error(cb, resp, 404, NULL, "use /corporate/CandidateStatus/{account}/{email}");
        return;
    }
    char account[256];
    snprintf(account, sizeof account, "%.*s", (int)(slash - rest), rest);
    const char *email = slash + 1;
    /* The seed's parameters only: an unknown one (such as "page") is
     * ignored, as a web API does. */
    long per_page = 10;
    const char *rpp = query2(req, "results_per_page", "Results_per_page");
    const char *sd = query2(req, "status_date", "Status_date");
    time_t since = 0;
    if (rpp != NULL && !positive(rpp, 1, 100, &per_page)) {
        single_error(cb, resp, 400, "results_per_page", "results_per_page must be 1..100");
        return;
    }
    if (sd != NULL && !parse_date(sd, &since)) {
        single_error(cb, resp, 400, "status_date", "status_date must be YYYY-MM-DDTHH:MM:SSZ");
        return;
    }
    cJSON *out = cJSON_CreateArray();
    long n = 0;
    pthread_mutex_lock(&cb->mu);
    const cJSON *it;
    cJSON_ArrayForEach(it, cb->store)
    {
        if (!same_ci(sget(it, "account"), account) ||
            !same_ci(sget(it, "candidate_email"), email) || !after(it, sd != NULL, since))
            continue;
        if (n++ == per_page)
            break;
        cJSON_AddItemToArray(out, cJSON_Duplicate(it, 1));
    }
    cb->stats.gets++;
    pthread_mutex_unlock(&cb->mu);
    ah_sim_json(resp, out != NULL ? 200 : 500, out);
}

static bool in_list(const cJSON *list, const char *v, bool ci)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        if (cJSON_IsString(it) && v != NULL &&
            (ci ? strcasecmp(it->valuestring, v) : strcmp(it->valuestring, v)) == 0)
            return true;
    }
    return false;
}

static void h_post(ah_cb_sim *cb, const ah_sim_req *req, ah_sim_resp *resp)
{
    cJSON *q = cJSON_Parse(req->body);
    const char *account = sget(q, "account");
    const cJSON *emails = cJSON_GetObjectItemCaseSensitive(q, "candidate_email");
    const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(q, "requisition_id");
    const cJSON *sdv = cJSON_GetObjectItemCaseSensitive(q, "status_date");
    time_t since = 0;
    if (!cJSON_IsObject(q) || account == NULL || account[0] == '\0') {
        single_error(cb, resp, 400, "account", "account is required");
    } else if ((emails != NULL) == (reqs != NULL)) {
        single_error(cb, resp, 400, NULL,
                     "give either a list of candidate_email or a list of requisition_id");
    } else if (!cJSON_IsArray(emails != NULL ? emails : reqs) ||
               cJSON_GetArraySize(emails != NULL ? emails : reqs) == 0) {
        single_error(cb, resp, 400, emails != NULL ? "candidate_email" : "requisition_id",
                     "must be a non-empty list");
    } else if (sdv != NULL && (!cJSON_IsString(sdv) || !parse_date(sdv->valuestring, &since))) {
        single_error(cb, resp, 400, "status_date", "status_date must be YYYY-MM-DDTHH:MM:SSZ");
    } else {
        cJSON *out = cJSON_CreateArray();
        pthread_mutex_lock(&cb->mu);
        const cJSON *it;
        cJSON_ArrayForEach(it, cb->store)
        {
            if (!same_ci(sget(it, "account"), account) || !after(it, sdv != NULL, since))
                continue;
            bool hit = emails != NULL ? in_list(emails, sget(it, "candidate_email"), true)
                                      : in_list(reqs, sget(it, "requisition_id"), false);
            if (hit)
                cJSON_AddItemToArray(out, cJSON_Duplicate(it, 1));
        }
        cb->stats.posts++;
        pthread_mutex_unlock(&cb->mu);
        ah_sim_json(resp, out != NULL ? 200 : 500, out);
    }
    cJSON_Delete(q);
}

static void h_status(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    ah_cb_sim *cb = arg;
    if (!authorised(cb, req)) {
        ah_sim_header_add(resp, "WWW-Authenticate", "Bearer");
        single_error(cb, resp, 401, NULL, "invalid or expired token");
        return;
    }
    const char *rest = req->path + strlen(CB_PATH);
    bool root = *rest == '\0' || strcmp(rest, "/") == 0;
    if (root && strcmp(req->method, "PUT") == 0)
        h_put(cb, req, resp);
    else if (root && strcmp(req->method, "POST") == 0)
        h_post(cb, req, resp);
    else if (!root && *rest == '/' && strcmp(req->method, "GET") == 0)
        h_get(cb, req, resp, rest + 1);
    else
        single_error(cb, resp, root ? 405 : 404, NULL, "no such endpoint");
}

/* --- life cycle and inspection ---------------------------------------------------- */

ah_cb_sim *ah_cb_sim_attach(ah_sim *sim, const ah_cb_sim_opts *o)
{
    ah_cb_sim *cb = calloc(1, sizeof(*cb));
    if (cb == NULL)
        return NULL;
    if (pthread_mutex_init(&cb->mu, NULL) != 0) {
        free(cb);
        return NULL;
    }
    cb->client_id = strdup(o != NULL && o->client_id != NULL ? o->client_id : "atshub");
    cb->client_secret =
        strdup(o != NULL && o->client_secret != NULL ? o->client_secret : "s3cret");
    cb->token_ttl_s = o != NULL && o->token_ttl_s > 0 ? o->token_ttl_s : 3600;
    cb->store = cJSON_CreateArray();
    cb->arrivals = cJSON_CreateArray();
    if (cb->client_id == NULL || cb->client_secret == NULL || cb->store == NULL ||
        cb->arrivals == NULL || ah_sim_route(sim, "POST", CB_TOKEN_PATH, h_token, cb) != 0 ||
        ah_sim_route(sim, "*", CB_PATH, h_status, cb) != 0) {
        ah_cb_sim_free(cb);
        return NULL;
    }
    return cb;
}

void ah_cb_sim_free(ah_cb_sim *cb)
{
    if (cb == NULL)
        return;
    cJSON_Delete(cb->store);
    cJSON_Delete(cb->arrivals);
    free(cb->client_id);
    free(cb->client_secret);
    free(cb->put_answer);
    pthread_mutex_destroy(&cb->mu);
    free(cb);
}

void ah_cb_sim_get_stats(ah_cb_sim *cb, ah_cb_sim_stats *out)
{
    pthread_mutex_lock(&cb->mu);
    *out = cb->stats;
    pthread_mutex_unlock(&cb->mu);
}

size_t ah_cb_sim_count(ah_cb_sim *cb)
{
    pthread_mutex_lock(&cb->mu);
    size_t n = (size_t)cJSON_GetArraySize(cb->store);
    pthread_mutex_unlock(&cb->mu);
    return n;
}

cJSON *ah_cb_sim_find(ah_cb_sim *cb, const char *account, const char *email,
                      const char *vendor_key, const char *requisition_id,
                      const char *status_level)
{
    cJSON *probe = cJSON_CreateObject();
    if (probe == NULL)
        return NULL;
    cJSON_AddStringToObject(probe, "account", account);
    cJSON_AddStringToObject(probe, "candidate_email", email);
    if (vendor_key != NULL)
        cJSON_AddStringToObject(probe, "vendor_key", vendor_key);
    if (requisition_id != NULL)
        cJSON_AddStringToObject(probe, "requisition_id", requisition_id);
    cJSON_AddStringToObject(probe, "status_level", status_level);
    cJSON *out = NULL;
    pthread_mutex_lock(&cb->mu);
    const cJSON *it;
    cJSON_ArrayForEach(it, cb->store)
    {
        if (same_key(it, probe)) {
            out = cJSON_Duplicate(it, 1);
            break;
        }
    }
    pthread_mutex_unlock(&cb->mu);
    cJSON_Delete(probe);
    return out;
}

cJSON *ah_cb_sim_arrivals(ah_cb_sim *cb)
{
    pthread_mutex_lock(&cb->mu);
    cJSON *out = cJSON_Duplicate(cb->arrivals, 1);
    pthread_mutex_unlock(&cb->mu);
    return out;
}

void ah_cb_sim_put_answer(ah_cb_sim *cb, const char *body)
{
    pthread_mutex_lock(&cb->mu);
    free(cb->put_answer);
    cb->put_answer = body != NULL ? strdup(body) : NULL;
    pthread_mutex_unlock(&cb->mu);
}

void ah_cb_sim_revoke_tokens(ah_cb_sim *cb)
{
    pthread_mutex_lock(&cb->mu);
    cb->ntokens = 0;
    cb->next_token = 0;
    pthread_mutex_unlock(&cb->mu);
}
