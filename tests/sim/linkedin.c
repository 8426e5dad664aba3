/* SPDX-License-Identifier: Apache-2.0 */
/* LinkedIn Middleware Platform simulator (see linkedin.h). */
#include "linkedin.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <microhttpd.h>
#include <openssl/rand.h>

#define LI_TOKEN_PATH "/oauth/v2/accessToken"
#define LI_APPS_PATH "/v2/provisionedApplications"
#define LI_ATS_PATH "/v2/atsIntegrations"
#define LI_MAX_IDS 32

typedef struct li_app {
    long id;
    char urn[64], org[64];
    char client_id[40], client_secret[40];
    char *name, *description, *foreign_id;
    cJSON *domains; /* array of strings */
    bool permitted, admin;
} li_app;

typedef struct li_token {
    char tok[40];
    char client_id[40];
    time_t expires;
} li_token;

typedef struct li_integ {
    long app_id;
    char *context, *type, *tenant_type, *name;
    const char *status; /* constant string */
} li_integ;

typedef struct li_inject {
    bool armed;
    int http, status;
    char message[512];
} li_inject;

struct ah_li_sim {
    pthread_mutex_t mu;
    char *partner_id, *partner_secret, *base;
    int ttl;
    ah_sim *sim;
    li_app *apps;
    size_t napps;
    li_token *tokens;
    size_t ntokens;
    li_integ *integs;
    size_t ninteg;
    ah_li_token_mode mode;
    li_inject inj_enable, inj_verify, inj_update;
    int create_status; /* 0: 201 */
    bool finder_all;   /* the finder answers every app, the asked one last */
    cJSON *last_enable, *last_verify;
    ah_li_sim_stats stats;
};

typedef struct li_key {
    char *context, *type, *tenant_type, *provider;
} li_key;

static const char *const li_types[] = {"APPLY_CONNECT", "APPLY_WITH_LINKEDIN",
                                       "RECRUITER_SYSTEM_CONNECT_COMPANY",
                                       "RECRUITER_SYSTEM_CONNECT_CONTRACT"};

static bool known_type(const char *t)
{
    for (size_t i = 0; t != NULL && i < sizeof li_types / sizeof li_types[0]; i++)
        if (strcmp(t, li_types[i]) == 0)
            return true;
    return false;
}

static bool is_rsc(const char *t)
{
    return strncmp(t, "RECRUITER_SYSTEM_CONNECT", 24) == 0;
}

/* --- small helpers ------------------------------------------------------------ */

static void li_error(ah_sim_resp *resp, int http, int status, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        resp->status = 500;
        return;
    }
    cJSON_AddNumberToObject(o, "status", status);
    cJSON_AddStringToObject(o, "message", message);
    ah_sim_json(resp, http, o);
}

static void random_hex(char *out, size_t nbytes)
{
    unsigned char b[32];
    if (nbytes > sizeof b)
        nbytes = sizeof b;
    if (RAND_bytes(b, (int)nbytes) != 1)
        memset(b, 0x5a, nbytes);
    for (size_t i = 0; i < nbytes; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static void key_free(li_key *k)
{
    free(k->context);
    free(k->type);
    free(k->tenant_type);
    free(k->provider);
    memset(k, 0, sizeof *k);
}

static bool key_complete(const li_key *k)
{
    return k->context && *k->context && k->type && *k->type && k->tenant_type &&
           *k->tenant_type && k->provider && *k->provider;
}

/* Values the seed allows ("ATS", a known type); the urn is judged apart. */
static bool key_values_ok(const li_key *k)
{
    return strcmp(k->provider, "ATS") == 0 && known_type(k->type);
}

static bool urn_ok(const char *u)
{
    const char *rest = NULL;
    if (strncmp(u, "urn:li:organization:", 20) == 0)
        rest = u + 20;
    else if (strncmp(u, "urn:li:company:", 15) == 0)
        rest = u + 15;
    if (rest == NULL || *rest == '\0')
        return false;
    for (; *rest; rest++)
        if (!isalnum((unsigned char)*rest))
            return false;
    return true;
}

static bool key_eq(const li_key *a, const li_key *b)
{
    return strcmp(a->context, b->context) == 0 && strcmp(a->type, b->type) == 0 &&
           strcmp(a->tenant_type, b->tenant_type) == 0 && strcmp(a->provider, b->provider) == 0;
}

/* "integrationContext=..&integrationType=..&tenantType=..&dataProvider=..",
 * in any order, values possibly percent-escaped. */
static void key_parse(const char *s, li_key *k)
{
    memset(k, 0, sizeof *k);
    for (const char *p = s; p != NULL && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (eq != NULL) {
            size_t nlen = (size_t)(eq - p);
            char **dst = NULL;
            if (nlen == 18 && strncmp(p, "integrationContext", 18) == 0)
                dst = &k->context;
            else if (nlen == 15 && strncmp(p, "integrationType", 15) == 0)
                dst = &k->type;
            else if (nlen == 10 && strncmp(p, "tenantType", 10) == 0)
                dst = &k->tenant_type;
            else if (nlen == 12 && strncmp(p, "dataProvider", 12) == 0)
                dst = &k->provider;
            if (dst != NULL) {
                free(*dst);
                *dst = ah_sim_form_decode(eq + 1, len - nlen - 1);
            }
        }
        p = end ? end + 1 : NULL;
    }
}

/* The canonical key LinkedIn answers with in batch updates (the seed's
 * sample: a different order, the context escaped). */
static char *key_escaped(const li_key *k)
{
    char *ctx = NULL, *out = NULL;
    size_t n = strlen(k->context);
    ctx = malloc(3 * n + 1);
    if (ctx == NULL)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k->context[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            ctx[j++] = (char)c;
        else
            j += (size_t)sprintf(ctx + j, "%%%02X", c);
    }
    ctx[j] = '\0';
    if (asprintf(&out, "integrationType=%s&tenantType=%s&dataProvider=%s&integrationContext=%s",
                 k->type, k->tenant_type, k->provider, ctx) < 0)
        out = NULL;
    free(ctx);
    return out;
}

static char *key_plain(const li_key *k)
{
    char *out = NULL;
    if (asprintf(&out, "integrationContext=%s&integrationType=%s&tenantType=%s&dataProvider=%s",
                 k->context, k->type, k->tenant_type, k->provider) < 0)
        return NULL;
    return out;
}

/* --- query parameters ids[i].* ------------------------------------------------ */

typedef struct ids_walk {
    li_key keys[LI_MAX_IDS];
    int max_index; /* highest i seen, -1 none */
    bool bad;
    cJSON *query; /* every argument, for ah_li_sim_last */
} ids_walk;

static enum MHD_Result on_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    ids_walk *w = cls;
    if (w->query != NULL && key != NULL)
        cJSON_AddStringToObject(w->query, key, value != NULL ? value : "");
    int i;
    char field[40];
    if (key == NULL || sscanf(key, "ids[%d].%39s", &i, field) != 2)
        return MHD_YES;
    if (i < 0 || i >= LI_MAX_IDS) {
        w->bad = true;
        return MHD_YES;
    }
    if (i > w->max_index)
        w->max_index = i;
    li_key *k = &w->keys[i];
    char **dst = strcmp(field, "integrationContext") == 0 ? &k->context
                 : strcmp(field, "integrationType") == 0  ? &k->type
                 : strcmp(field, "tenantType") == 0       ? &k->tenant_type
                 : strcmp(field, "dataProvider") == 0     ? &k->provider
                                                          : NULL;
    if (dst != NULL) {
        free(*dst);
        *dst = strdup(value != NULL ? value : "");
    }
    return MHD_YES;
}

static void ids_read(const ah_sim_req *req, ids_walk *w)
{
    memset(w, 0, sizeof *w);
    w->max_index = -1;
    w->query = cJSON_CreateObject();
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, on_arg, w);
}

static void ids_free(ids_walk *w)
{
    for (int i = 0; i < LI_MAX_IDS; i++)
        key_free(&w->keys[i]);
    cJSON_Delete(w->query);
}

/* --- lookups (mu held) ------------------------------------------------------------- */

static li_app *app_by_client(ah_li_sim *li, const char *client_id)
{
    for (size_t i = 0; client_id != NULL && i < li->napps; i++)
        if (strcmp(li->apps[i].client_id, client_id) == 0)
            return &li->apps[i];
    return NULL;
}

static li_app *app_by_foreign(ah_li_sim *li, const char *fid)
{
    for (size_t i = 0; fid != NULL && i < li->napps; i++)
        if (strcmp(li->apps[i].foreign_id, fid) == 0)
            return &li->apps[i];
    return NULL;
}

static li_integ *integ_find(ah_li_sim *li, long app_id, const li_key *k)
{
    for (size_t i = 0; i < li->ninteg; i++) {
        li_integ *g = &li->integs[i];
        if ((app_id < 0 || g->app_id == app_id) && strcmp(g->context, k->context) == 0 &&
            strcmp(g->type, k->type) == 0 && strcmp(g->tenant_type, k->tenant_type) == 0)
            return g;
    }
    return NULL;
}

/* Bearer check; on failure answers the 401 and returns false. *client_out
 * is the token's client id. */
static bool auth(ah_li_sim *li, const ah_sim_req *req, ah_sim_resp *resp, const char *invalid_msg,
                 char *client_out)
{
    const char *h = ah_sim_header(req, "Authorization");
    const char *tok = h != NULL && strncasecmp(h, "Bearer ", 7) == 0 ? h + 7 : NULL;
    const li_token *t = NULL;
    for (size_t i = 0; tok != NULL && i < li->ntokens; i++)
        if (strcmp(li->tokens[i].tok, tok) == 0)
            t = &li->tokens[i];
    if (t == NULL || li->mode == AH_LI_TOKENS_INVALID) {
        li->stats.unauthorized++;
        li_error(resp, 401, 401, invalid_msg);
        return false;
    }
    if (li->mode == AH_LI_TOKENS_EXPIRED || t->expires <= time(NULL)) {
        li->stats.unauthorized++;
        li_error(resp, 401, 401, AH_LI_MSG_EXPIRED);
        return false;
    }
    snprintf(client_out, 40, "%s", t->client_id);
    return true;
}

/* --- token endpoint ------------------------------------------------------------ */

static void h_token(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    ah_li_sim *li = arg;
    char *grant = ah_sim_form_value(req->body, "grant_type");
    char *id = ah_sim_form_value(req->body, "client_id");
    char *secret = ah_sim_form_value(req->body, "client_secret");
    pthread_mutex_lock(&li->mu);
    bool ok = grant != NULL && strcmp(grant, "client_credentials") == 0 && id && secret;
    if (ok) {
        li_app *a = app_by_client(li, id);
        ok = (strcmp(id, li->partner_id) == 0 && strcmp(secret, li->partner_secret) == 0) ||
             (a != NULL && strcmp(a->client_secret, secret) == 0);
    }
    li_token *nt = ok ? realloc(li->tokens, (li->ntokens + 1) * sizeof *nt) : NULL;
    if (nt != NULL) {
        li->tokens = nt;
        li_token *t = &nt[li->ntokens++];
        random_hex(t->tok, 16);
        snprintf(t->client_id, sizeof t->client_id, "%s", id);
        t->expires = time(NULL) + li->ttl;
        li->stats.tokens++;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "access_token", t->tok);
        cJSON_AddNumberToObject(o, "expires_in", li->ttl);
        ah_sim_json(resp, 200, o);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", "invalid_client");
        cJSON_AddStringToObject(o, "error_description",
                                "Client authentication failed");
        ah_sim_json(resp, 401, o);
    }
    pthread_mutex_unlock(&li->mu);
    free(grant);
    free(id);
    free(secret);
}

/* --- provisioning ------------------------------------------------------------ */

static cJSON *app_json(const li_app *a, bool with_secret)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "name", a->name);
    cJSON_AddStringToObject(o, "description", a->description);
    cJSON_AddStringToObject(o, "uniqueForeignId", a->foreign_id);
    cJSON_AddItemToObject(o, "validJsSdkDomains", cJSON_Duplicate(a->domains, 1));
    cJSON *cr = cJSON_AddObjectToObject(o, "credentials");
    cJSON_AddStringToObject(cr, "client_id", a->client_id);
    if (with_secret)
        cJSON_AddStringToObject(cr, "client_secret", a->client_secret);
    cJSON *k = cJSON_AddObjectToObject(o, "key");
    cJSON_AddNumberToObject(k, "id", (double)a->id);
    cJSON_AddStringToObject(k, "idUrn", a->urn);
    return o;
}

/* The caller must hold a partner token: customer apps cannot provision. */
static bool partner_auth(ah_li_sim *li, const ah_sim_req *req, ah_sim_resp *resp)
{
    char who[40];
    if (!auth(li, req, resp, AH_LI_MSG_INVALID_ENABLE, who))
        return false;
    if (strcmp(who, li->partner_id) != 0) {
        li_error(resp, 403, 403, "Not enough permissions to access: /provisionedApplications");
        return false;
    }
    return true;
}

static bool domains_ok(const cJSON *d)
{
    if (d == NULL)
        return true;
    if (!cJSON_IsArray(d))
        return false;
    const cJSON *it;
    cJSON_ArrayForEach(it, d) if (!cJSON_IsString(it)) return false;
    return true;
}

static void provision_create(ah_li_sim *li, const ah_sim_req *req, ah_sim_resp *resp)
{
    cJSON *b = cJSON_Parse(req->body);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(b, "name");
    const cJSON *fid = cJSON_GetObjectItemCaseSensitive(b, "uniqueForeignId");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(b, "description");
    const cJSON *doms = cJSON_GetObjectItemCaseSensitive(b, "validJsSdkDomains");
    if (!cJSON_IsString(name) || !cJSON_IsString(fid) || *fid->valuestring == '\0' ||
        !domains_ok(doms)) {
        li_error(resp, 400, 400, "uniqueForeignId, name and validJsSdkDomains are malformed");
    } else if (strlen(name->valuestring) == 0 || strlen(name->valuestring) > 50 ||
               strcasestr(name->valuestring, "linkedin") != NULL) {
        li_error(resp, 400, 400, "name must be 1..50 characters and must not use LinkedIn");
    } else if (app_by_foreign(li, fid->valuestring) != NULL) {
        li_error(resp, 409, 409, "A child application with this uniqueForeignId already exists");
    } else {
        li_app *na = realloc(li->apps, (li->napps + 1) * sizeof *na);
        if (na == NULL) {
            li_error(resp, 500, 500, "out of memory");
            cJSON_Delete(b);
            return;
        }
        li->apps = na;
        li_app *a = &na[li->napps];
        memset(a, 0, sizeof *a);
        a->id = 7000 + (long)li->napps;
        snprintf(a->urn, sizeof a->urn, "urn:li:developerApplication:%ld", a->id);
        snprintf(a->org, sizeof a->org, "urn:li:organization:%ldgX%zu", 4000 + a->id, li->napps);
        random_hex(a->client_id, 7);
        random_hex(a->client_secret, 8);
        a->name = strdup(name->valuestring);
        a->description = strdup(cJSON_IsString(desc) ? desc->valuestring : "");
        a->foreign_id = strdup(fid->valuestring);
        a->domains = doms != NULL ? cJSON_Duplicate(doms, 1) : cJSON_CreateArray();
        a->permitted = a->admin = true;
        li->napps++;
        li->stats.apps++;
        ah_sim_json(resp, li->create_status != 0 ? li->create_status : 201, app_json(a, true));
        li->create_status = 0;
    }
    cJSON_Delete(b);
}

static bool take_injection(li_inject *inj, ah_sim_resp *resp);

static void provision_update(ah_li_sim *li, const ah_sim_req *req, ah_sim_resp *resp)
{
    const char *idp = req->path + strlen(LI_APPS_PATH "/");
    char *id = ah_sim_form_decode(idp, strlen(idp));
    li_app *a = NULL;
    for (size_t i = 0; id != NULL && i < li->napps; i++) {
        char num[24];
        snprintf(num, sizeof num, "%ld", li->apps[i].id);
        if (strcmp(id, li->apps[i].urn) == 0 || strcmp(id, num) == 0)
            a = &li->apps[i];
    }
    free(id);
    cJSON *b = cJSON_Parse(req->body);
    const cJSON *set =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(b, "patch"), "$set");
    const cJSON *doms = cJSON_GetObjectItemCaseSensitive(set, "validJsSdkDomains");
    const char *m = ah_sim_header(req, "x-restli-method");
    if (take_injection(&li->inj_update, resp))
        ;
    else if (a == NULL)
        li_error(resp, 404, 404, "No such application");
    else if (m == NULL || strcasecmp(m, "partial_update") != 0 || !cJSON_IsArray(doms) ||
             !domains_ok(doms))
        li_error(resp, 400, 400, "Expected a partial_update of validJsSdkDomains");
    else {
        cJSON_Delete(a->domains);
        a->domains = cJSON_Duplicate(doms, 1);
        resp->status = 204;
    }
    cJSON_Delete(b);
}

static void h_apps(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    ah_li_sim *li = arg;
    pthread_mutex_lock(&li->mu);
    if (!partner_auth(li, req, resp)) {
        pthread_mutex_unlock(&li->mu);
        return;
    }
    if (strcmp(req->method, "POST") == 0 && strcmp(req->path, LI_APPS_PATH) == 0) {
        provision_create(li, req, resp);
    } else if (strcmp(req->method, "POST") == 0 &&
               strncmp(req->path, LI_APPS_PATH "/", strlen(LI_APPS_PATH "/")) == 0) {
        provision_update(li, req, resp);
    } else if (strcmp(req->method, "GET") == 0 && strcmp(req->path, LI_APPS_PATH) == 0) {
        const char *q = ah_sim_query(req, "q");
        li_app *a = app_by_foreign(li, ah_sim_query(req, "uniqueForeignId"));
        if (q == NULL || strcmp(q, "credentialsByUniqueForeignId") != 0) {
            li_error(resp, 400, 400, "Unsupported finder");
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON *el = cJSON_AddArrayToObject(o, "elements");
            for (size_t i = 0; li->finder_all && i < li->napps; i++)
                if (&li->apps[i] != a)
                    cJSON_AddItemToArray(el, app_json(&li->apps[i], true));
            if (a != NULL)
                cJSON_AddItemToArray(el, app_json(a, true));
            ah_sim_json(resp, 200, o);
        }
    } else {
        li_error(resp, 404, 404, "Not found");
    }
    pthread_mutex_unlock(&li->mu);
}

/* --- /atsIntegrations ---------------------------------------------------------- */

static bool take_injection(li_inject *inj, ah_sim_resp *resp)
{
    if (!inj->armed)
        return false;
    inj->armed = false;
    if (inj->status == 0) { /* the message as the whole body, not JSON */
        resp->status = inj->http;
        resp->body = strdup(inj->message);
        resp->content_type = "text/plain";
        return true;
    }
    li_error(resp, inj->http, inj->status, inj->message);
    return true;
}

static cJSON *last_call(const ah_sim_req *req, cJSON *query)
{
    cJSON *o = cJSON_CreateObject();
    const char *m = ah_sim_header(req, "x-restli-method");
    cJSON_AddStringToObject(o, "method", req->method);
    if (m != NULL)
        cJSON_AddStringToObject(o, "restli_method", m);
    cJSON_AddItemToObject(o, "query", cJSON_Duplicate(query, 1));
    cJSON *b = req->body_len > 0 ? cJSON_Parse(req->body) : NULL;
    cJSON_AddItemToObject(o, "body", b != NULL ? b : cJSON_CreateNull());
    return o;
}

static void h_enable(ah_li_sim *li, const ah_sim_req *req, ah_sim_resp *resp, li_app *a,
                     ids_walk *w)
{
    const char *m = ah_sim_header(req, "x-restli-method");
    if (m == NULL || strcasecmp(m, "batch_partial_update") != 0) {
        li_error(resp, 400, 400, "Missing or unsupported x-restli-method");
        return;
    }
    int n = w->max_index + 1;
    if (n == 0 || w->bad) {
        li_error(resp, 400, 400, AH_LI_MSG_INCOMPLETE);
        return;
    }
    for (int i = 0; i < n; i++)
        if (!key_complete(&w->keys[i]) || !key_values_ok(&w->keys[i])) {
            li_error(resp, 400, 400, AH_LI_MSG_INCOMPLETE);
            return;
        }
    cJSON *b = cJSON_Parse(req->body);
    const cJSON *ents = cJSON_GetObjectItemCaseSensitive(b, "entities");
    if (!cJSON_IsObject(ents) || cJSON_GetArraySize(ents) == 0) {
        li_error(resp, 400, 400, AH_LI_MSG_INCOMPLETE);
        cJSON_Delete(b);
        return;
    }
    /* Every entity must name one of the query's ids and all ids be used. */
    bool used[LI_MAX_IDS] = {false};
    const cJSON *e;
    cJSON_ArrayForEach(e, ents) {
        li_key k;
        key_parse(e->string, &k);
        if (!key_complete(&k)) {
            key_free(&k);
            li_error(resp, 400, 400, AH_LI_MSG_INCOMPLETE);
            cJSON_Delete(b);
            return;
        }
        int hit = -1;
        for (int i = 0; i < n && hit < 0; i++)
            if (key_eq(&k, &w->keys[i]))
                hit = i;
        key_free(&k);
        if (hit < 0) {
            char msg[1024];
            snprintf(msg, sizeof msg, AH_LI_MSG_MISMATCH_PREFIX "%s not found in the query parameter",
                     e->string);
            li_error(resp, 400, 400, msg);
            cJSON_Delete(b);
            return;
        }
        used[hit] = true;
        const cJSON *set = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(e, "patch"), "$set");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(set, "integrationName");
        if (!cJSON_IsString(nm) || *nm->valuestring == '\0') {
            li_error(resp, 400, 400, "integrationName is required");
            cJSON_Delete(b);
            return;
        }
    }
    for (int i = 0; i < n; i++)
        if (!used[i]) {
            char *plain = key_plain(&w->keys[i]), msg[1024];
            snprintf(msg, sizeof msg, AH_LI_MSG_MISMATCH_PREFIX "%s not found in the request body",
                     plain ? plain : "?");
            free(plain);
            li_error(resp, 400, 400, msg);
            cJSON_Delete(b);
            return;
        }
    for (int i = 0; i < n; i++) {
        li_integ *g = integ_find(li, a->id, &w->keys[i]);
        if (g != NULL && strcmp(g->status, "ENABLED") == 0) {
            li_error(resp, 400, 400, AH_LI_MSG_ALREADY_ENABLED);
            cJSON_Delete(b);
            return;
        }
    }
    cJSON *out = cJSON_CreateObject();
    cJSON *errs = cJSON_AddObjectToObject(out, "errors");
    cJSON *res = cJSON_AddObjectToObject(out, "results");
    cJSON_ArrayForEach(e, ents) {
        li_key k;
        key_parse(e->string, &k);
        char *rk = key_escaped(&k);
        li_integ *g = integ_find(li, a->id, &k);
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "patch"), "$set"),
            "integrationName");
        cJSON *r = cJSON_CreateObject();
        if (g == NULL) {
            cJSON_AddNumberToObject(r, "status", 404);
            cJSON_AddStringToObject(r, "message", AH_LI_MSG_NO_RECORD);
            cJSON_AddItemToObject(errs, rk ? rk : "?", r);
        } else {
            char *nn = strdup(nm->valuestring);
            if (nn != NULL) {
                free(g->name);
                g->name = nn;
            }
            g->status = is_rsc(g->type) ? "PARTNER_READY" : "ENABLED";
            cJSON_AddNumberToObject(r, "status", 204);
            cJSON_AddItemToObject(res, rk ? rk : "?", r);
        }
        free(rk);
        key_free(&k);
    }
    ah_sim_json(resp, 200, out);
    cJSON_Delete(b);
}

static void h_verify(ah_li_sim *li, ah_sim_resp *resp, li_app *a, ids_walk *w)
{
    int n = w->max_index + 1;
    if (n == 0 || w->bad) {
        li_error(resp, 400, 400, AH_LI_MSG_INCOMPLETE);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (!key_complete(&w->keys[i]) || !key_values_ok(&w->keys[i])) {
            li_error(resp, 400, 400, AH_LI_MSG_INCOMPLETE);
            return;
        }
        if (!urn_ok(w->keys[i].context)) {
            li_error(resp, 400, 400, AH_LI_MSG_INVALID_URN);
            return;
        }
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddObjectToObject(out, "errors");
    cJSON *res = cJSON_AddObjectToObject(out, "results");
    cJSON_AddObjectToObject(out, "statuses");
    for (int i = 0; i < n; i++) {
        li_integ *g = integ_find(li, a->id, &w->keys[i]);
        if (g == NULL)
            continue;
        char *k = key_plain(&w->keys[i]);
        cJSON *r = cJSON_CreateObject();
        if (g->name != NULL)
            cJSON_AddStringToObject(r, "integrationName", g->name);
        cJSON_AddStringToObject(r, "onboardingStatus", g->status);
        cJSON_AddItemToObject(res, k ? k : "?", r);
        free(k);
    }
    ah_sim_json(resp, 200, out);
}

static void h_ats(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    ah_li_sim *li = arg;
    bool enable = strcmp(req->method, "POST") == 0;
    if (!enable && strcmp(req->method, "GET") != 0) {
        li_error(resp, 405, 405, "Method not allowed");
        return;
    }
    ids_walk w;
    ids_read(req, &w);
    pthread_mutex_lock(&li->mu);
    cJSON **last = enable ? &li->last_enable : &li->last_verify;
    cJSON_Delete(*last);
    *last = last_call(req, w.query);
    if (enable)
        li->stats.enable_calls++;
    else
        li->stats.verify_calls++;
    char who[40];
    if (auth(li, req, resp, enable ? AH_LI_MSG_INVALID_ENABLE : AH_LI_MSG_INVALID_VERIFY, who) &&
        !take_injection(enable ? &li->inj_enable : &li->inj_verify, resp)) {
        li_app *a = app_by_client(li, who);
        if (a == NULL || !a->permitted)
            li_error(resp, 403, 403,
                     enable ? AH_LI_MSG_FORBIDDEN_ENABLE
                            : "Not enough permissions to access: GET /atsIntegrations");
        else if (enable)
            h_enable(li, req, resp, a, &w);
        else
            h_verify(li, resp, a, &w);
    }
    pthread_mutex_unlock(&li->mu);
    ids_free(&w);
}

/* --- the stand-in widget -------------------------------------------------------- */

/* in.js reads its own script text like LinkedIn's (api_key, extensions),
 * then mounts the ATSIntegrationWidget on every
 * <script type="IN/ATSIntegrationWidget"> once the document is parsed. */
static const char widget_js[] =
    "(function(){\n"
    "var SIM=%s;\n"
    "var me=document.currentScript,conf={};\n"
    "((me&&me.textContent)||'').split('\\n').forEach(function(l){var i=l.indexOf(':');"
    "if(i>0)conf[l.slice(0,i).trim()]=l.slice(i+1).trim();});\n"
    "var apiKey=conf.api_key||'',ext=conf.extensions||'';\n"
    "function fail(box,code,msg){console.error(code);box.setAttribute('data-error',code);"
    "var p=document.createElement('p');p.className='li-error';p.textContent=msg;box.appendChild(p);}\n"
    "function mount(tag){\n"
    " var box=document.createElement('div');box.className='li-ats-widget';\n"
    " box.style.width=(tag.getAttribute('data-width')||'400')+'px';\n"
    " tag.parentNode.insertBefore(box,tag.nextSibling);\n"
    " if(ext.indexOf('ATSIntegrationWidget@')!==0){fail(box,'error.extension','Unknown extension');return;}\n"
    " var types=(tag.getAttribute('data-supported-bundled-integration-types')||'').split(',')"
    ".map(function(s){return s.trim();}).filter(Boolean);\n"
    " var cbName=tag.getAttribute('data-onintegrate');\n"
    " fetch(SIM+'/widget/v1/session?api_key='+encodeURIComponent(apiKey))"
    ".then(function(r){return r.json().then(function(j){return [r.status,j];});})"
    ".then(function(x){\n"
    "  if(x[0]!==200){fail(box,x[1].code,x[1].message);return;}\n"
    "  var ul=document.createElement('ul');box.appendChild(ul);\n"
    "  types.forEach(function(t){var li=document.createElement('li');"
    "var b=document.createElement('button');b.type='button';b.setAttribute('data-type',t);"
    "b.textContent='Request '+t;li.appendChild(b);ul.appendChild(li);\n"
    "   b.addEventListener('click',function(){\n"
    "    fetch(SIM+'/widget/v1/integrate',{method:'POST',headers:{'Content-Type':'text/plain'},"
    "body:JSON.stringify({api_key:apiKey,integrationType:t})})"
    ".then(function(r){return r.json().then(function(j){return [r.status,j];});})"
    ".then(function(y){if(y[0]!==200){fail(box,y[1].code,y[1].message);return;}\n"
    "     b.setAttribute('data-requested','true');\n"
    "     var fn=window[cbName];if(typeof fn==='function')fn([y[1]]);"
    "else console.error('data-onintegrate names no function: '+cbName);});\n"
    "   });});\n"
    "  box.setAttribute('data-ready','true');\n"
    " }).catch(function(e){fail(box,'error.network',String(e));});\n"
    "}\n"
    "function render(){document.querySelectorAll('script[type=\"IN/ATSIntegrationWidget\"]')"
    ".forEach(mount);}\n"
    "window.IN=window.IN||{};window.IN.parse=render;\n"
    "if(document.readyState==='loading')document.addEventListener('DOMContentLoaded',render);"
    "else render();\n"
    "})();\n";

/* The widget script names the simulator's address, known once it runs. */
static void ensure_base(ah_li_sim *li)
{
    if (li->base == NULL)
        li->base = strdup(ah_sim_url(li->sim));
}

static void h_in_js(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    ah_li_sim *li = arg;
    pthread_mutex_lock(&li->mu);
    ensure_base(li);
    cJSON *base = cJSON_CreateString(li->base != NULL ? li->base : "");
    pthread_mutex_unlock(&li->mu);
    char *b = base != NULL ? cJSON_PrintUnformatted(base) : NULL;
    cJSON_Delete(base);
    if (b == NULL || asprintf(&resp->body, widget_js, b) < 0) {
        resp->body = NULL;
        resp->status = 500;
    } else {
        resp->status = 200;
        resp->content_type = "application/javascript";
    }
    free(b);
}

static void widget_error(ah_sim_resp *resp, int http, const char *code, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "code", code);
    cJSON_AddStringToObject(o, "message", message);
    ah_sim_json(resp, http, o);
}

/* The app of the api key, checked like LinkedIn checks the widget: the
 * page's Origin must be one of validJsSdkDomains, exactly. */
static li_app *widget_app(ah_li_sim *li, const ah_sim_req *req, const char *api_key,
                          ah_sim_resp *resp)
{
    ah_sim_header_add(resp, "Access-Control-Allow-Origin", "*");
    li_app *a = app_by_client(li, api_key);
    const char *origin = ah_sim_header(req, "Origin");
    bool listed = false;
    const cJSON *d;
    if (a != NULL)
        cJSON_ArrayForEach(d, a->domains) if (origin != NULL && strcmp(d->valuestring, origin) == 0)
            listed = true;
    if (!listed) {
        widget_error(resp, 403, "error.origin.not.in.api.domains", AH_LI_MSG_DOMAIN);
        return NULL;
    }
    if (!a->admin) {
        widget_error(resp, 403, "error.not.contract.admin", AH_LI_MSG_NOT_ADMIN);
        return NULL;
    }
    return a;
}

static int request_locked(ah_li_sim *li, li_app *a, const char *type, cJSON **out)
{
    li_key k = {.context = a->org, .type = (char *)type,
                .tenant_type = is_rsc(type) ? "RECRUITER" : "JOBS", .provider = "ATS"};
    li_integ *g = integ_find(li, a->id, &k);
    if (g == NULL) {
        li_integ *ng = realloc(li->integs, (li->ninteg + 1) * sizeof *ng);
        if (ng == NULL)
            return -1;
        li->integs = ng;
        g = &ng[li->ninteg];
        memset(g, 0, sizeof *g);
        g->app_id = a->id;
        g->context = strdup(k.context);
        g->type = strdup(k.type);
        g->tenant_type = strdup(k.tenant_type);
        g->status = "REQUESTED";
        if (g->context == NULL || g->type == NULL || g->tenant_type == NULL) {
            free(g->context);
            free(g->type);
            free(g->tenant_type);
            return -1;
        }
        li->ninteg++;
    }
    li->stats.widget_requests++;
    if (out != NULL) {
        *out = cJSON_CreateObject();
        cJSON_AddStringToObject(*out, "integrationContext", g->context);
        cJSON_AddStringToObject(*out, "integrationType", g->type);
        cJSON_AddStringToObject(*out, "tenantType", g->tenant_type);
    }
    return 0;
}

static void h_widget(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    ah_li_sim *li = arg;
    if (strcmp(req->method, "OPTIONS") == 0) {
        ah_sim_header_add(resp, "Access-Control-Allow-Origin", "*");
        ah_sim_header_add(resp, "Access-Control-Allow-Headers", "Content-Type");
        resp->status = 204;
        return;
    }
    pthread_mutex_lock(&li->mu);
    if (strcmp(req->path, "/widget/v1/session") == 0) {
        li->stats.widget_sessions++;
        if (widget_app(li, req, ah_sim_query(req, "api_key"), resp) != NULL)
            ah_sim_json(resp, 200, cJSON_CreateObject());
    } else if (strcmp(req->path, "/widget/v1/integrate") == 0 &&
               strcmp(req->method, "POST") == 0) {
        cJSON *b = cJSON_Parse(req->body);
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(b, "api_key");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(b, "integrationType");
        li_app *a = widget_app(li, req, cJSON_IsString(key) ? key->valuestring : NULL, resp);
        cJSON *out = NULL;
        if (a == NULL)
            ;
        else if (!cJSON_IsString(type) || !known_type(type->valuestring))
            widget_error(resp, 400, "error.integration.type", "Unknown integration type");
        else if (request_locked(li, a, type->valuestring, &out) != 0)
            widget_error(resp, 500, "error.internal", "out of memory");
        else
            ah_sim_json(resp, 200, out);
        cJSON_Delete(b);
    } else {
        widget_error(resp, 404, "error.not.found", "Not found");
    }
    pthread_mutex_unlock(&li->mu);
}

/* --- life cycle and test controls ------------------------------------------------ */

ah_li_sim *ah_li_sim_attach(ah_sim *sim, const ah_li_sim_opts *o)
{
    ah_li_sim *li = calloc(1, sizeof *li);
    if (li == NULL)
        return NULL;
    li->partner_id = strdup(o && o->partner_client_id ? o->partner_client_id : "atshub-partner");
    li->partner_secret =
        strdup(o && o->partner_client_secret ? o->partner_client_secret : "partner-s3cret");
    li->ttl = o && o->token_ttl_s > 0 ? o->token_ttl_s : 1800;
    li->sim = sim;
    if (li->partner_id == NULL || li->partner_secret == NULL ||
        pthread_mutex_init(&li->mu, NULL) != 0) {
        free(li->partner_id);
        free(li->partner_secret);
        free(li);
        return NULL;
    }
    if (ah_sim_route(sim, "POST", LI_TOKEN_PATH, h_token, li) != 0 ||
        ah_sim_route(sim, "*", LI_APPS_PATH, h_apps, li) != 0 ||
        ah_sim_route(sim, "*", LI_ATS_PATH, h_ats, li) != 0 ||
        ah_sim_route(sim, "GET", "/uas/in.js", h_in_js, li) != 0 ||
        ah_sim_route(sim, "*", "/widget/v1/", h_widget, li) != 0) {
        ah_li_sim_free(li);
        return NULL;
    }
    return li;
}

void ah_li_sim_free(ah_li_sim *li)
{
    if (li == NULL)
        return;
    for (size_t i = 0; i < li->napps; i++) {
        free(li->apps[i].name);
        free(li->apps[i].description);
        free(li->apps[i].foreign_id);
        cJSON_Delete(li->apps[i].domains);
    }
    for (size_t i = 0; i < li->ninteg; i++) {
        free(li->integs[i].context);
        free(li->integs[i].type);
        free(li->integs[i].tenant_type);
        free(li->integs[i].name);
    }
    free(li->apps);
    free(li->integs);
    free(li->tokens);
    free(li->partner_id);
    free(li->partner_secret);
    free(li->base);
    cJSON_Delete(li->last_enable);
    cJSON_Delete(li->last_verify);
    pthread_mutex_destroy(&li->mu);
    free(li);
}

void ah_li_sim_token_mode(ah_li_sim *li, ah_li_token_mode mode)
{
    pthread_mutex_lock(&li->mu);
    li->mode = mode;
    pthread_mutex_unlock(&li->mu);
}

void ah_li_sim_expire_tokens(ah_li_sim *li)
{
    pthread_mutex_lock(&li->mu);
    for (size_t i = 0; i < li->ntokens; i++)
        li->tokens[i].expires = 0;
    pthread_mutex_unlock(&li->mu);
}

static int set_flag(ah_li_sim *li, const char *client_id, bool v, bool admin)
{
    pthread_mutex_lock(&li->mu);
    li_app *a = app_by_client(li, client_id);
    if (a != NULL) {
        if (admin)
            a->admin = v;
        else
            a->permitted = v;
    }
    pthread_mutex_unlock(&li->mu);
    return a != NULL ? 0 : -1;
}

int ah_li_sim_set_permitted(ah_li_sim *li, const char *client_id, bool permitted)
{
    return set_flag(li, client_id, permitted, false);
}

int ah_li_sim_set_customer_admin(ah_li_sim *li, const char *client_id, bool admin)
{
    return set_flag(li, client_id, admin, true);
}

void ah_li_sim_inject(ah_li_sim *li, const char *api, int http, int status, const char *message)
{
    pthread_mutex_lock(&li->mu);
    li_inject *inj = strcmp(api, "enable") == 0   ? &li->inj_enable
                     : strcmp(api, "update") == 0 ? &li->inj_update
                                                  : &li->inj_verify;
    inj->armed = true;
    inj->http = http;
    inj->status = status;
    snprintf(inj->message, sizeof inj->message, "%s", message);
    pthread_mutex_unlock(&li->mu);
}

void ah_li_sim_finder_all(ah_li_sim *li, bool all)
{
    pthread_mutex_lock(&li->mu);
    li->finder_all = all;
    pthread_mutex_unlock(&li->mu);
}

void ah_li_sim_create_status(ah_li_sim *li, int http)
{
    pthread_mutex_lock(&li->mu);
    li->create_status = http;
    pthread_mutex_unlock(&li->mu);
}

int ah_li_sim_request(ah_li_sim *li, const char *client_id, const char *type, cJSON **out)
{
    if (out != NULL)
        *out = NULL;
    if (!known_type(type))
        return -1;
    pthread_mutex_lock(&li->mu);
    li_app *a = app_by_client(li, client_id);
    int rc = a != NULL ? request_locked(li, a, type, out) : -1;
    pthread_mutex_unlock(&li->mu);
    return rc;
}

int ah_li_sim_customer_enable(ah_li_sim *li, const char *context, const char *type)
{
    int rc = -1;
    pthread_mutex_lock(&li->mu);
    for (size_t i = 0; i < li->ninteg; i++) {
        li_integ *g = &li->integs[i];
        if (strcmp(g->context, context) == 0 && strcmp(g->type, type) == 0 &&
            strcmp(g->status, "PARTNER_READY") == 0) {
            g->status = "ENABLED";
            rc = 0;
        }
    }
    pthread_mutex_unlock(&li->mu);
    return rc;
}

cJSON *ah_li_sim_app(ah_li_sim *li, const char *unique_foreign_id)
{
    pthread_mutex_lock(&li->mu);
    li_app *a = app_by_foreign(li, unique_foreign_id);
    cJSON *o = a != NULL ? app_json(a, false) : NULL;
    pthread_mutex_unlock(&li->mu);
    return o;
}

int ah_li_sim_status(ah_li_sim *li, const char *context, const char *type, char *out,
                     size_t outlen)
{
    int rc = -1;
    pthread_mutex_lock(&li->mu);
    for (size_t i = 0; i < li->ninteg && rc != 0; i++)
        if (strcmp(li->integs[i].context, context) == 0 && strcmp(li->integs[i].type, type) == 0) {
            snprintf(out, outlen, "%s", li->integs[i].status);
            rc = 0;
        }
    pthread_mutex_unlock(&li->mu);
    return rc;
}

cJSON *ah_li_sim_last(ah_li_sim *li, const char *api)
{
    pthread_mutex_lock(&li->mu);
    const cJSON *l = strcmp(api, "enable") == 0 ? li->last_enable : li->last_verify;
    cJSON *o = l != NULL ? cJSON_Duplicate(l, 1) : NULL;
    pthread_mutex_unlock(&li->mu);
    return o;
}

void ah_li_sim_get_stats(ah_li_sim *li, ah_li_sim_stats *out)
{
    pthread_mutex_lock(&li->mu);
    *out = li->stats;
    pthread_mutex_unlock(&li->mu);
}
