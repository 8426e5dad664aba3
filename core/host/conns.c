/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The connection table: tenants and connections loaded from the store into
 * an immutable snapshot (sorted arrays searched with bsearch), replaced
 * wholesale on reload. Readers take a reference on the connection they use,
 * so a reload never frees a connection under a running call.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conns.h"
#include "core.h"
#include "json.h"
#include "oauth2.h"

typedef struct tenant_ent {
    int64_t id;
    char *name;
    char *key_hash;
} tenant_ent;

typedef struct secret_ent {
    const char *plugin; /* borrowed from conn */
    const char *key;    /* borrowed from conn->settings */
    const char *hash;   /* hex, borrowed from conn->settings */
    ah_conn *conn;
} secret_ent;

typedef struct snapshot {
    ah_conn **by_id; /* sorted by id */
    ah_conn **by_name; /* sorted by tenant, name */
    size_t n;
    tenant_ent *tenants; /* sorted by key_hash */
    size_t nt;
    secret_ent *secrets; /* sorted by hash */
    size_t ns;
    char *token_hashes; /* hex hashes of sealed webhook tokens (see reload) */
} snapshot;

struct ah_conns {
    pthread_rwlock_t lock;
    snapshot *snap;
    /* Serialises reloads: a reload reads the snapshot it replaces without
     * the rwlock (connections whose rows did not change keep their
     * contexts), and only a reload frees one. */
    pthread_mutex_t reload_mu;
};

#define HASH_PREFIX "sha256:"
/* The setting AH_ROUTE_CONN_TOKEN routes resolve. Kept sealed (not hashed)
 * by plugins that must show their webhook URL again (TopCV): such a value
 * is indexed by the hash of its plaintext, so lookups stay hash-based. */
#define WEBHOOK_TOKEN_KEY "webhook_token"
#define SEAL_AAD_PREFIX "atshub:setting:"

/* ------------------------------------------------------------------------ */

static void conn_free(ah_conn *c)
{
    if (c->ctx_gen != NULL) {
        if (c->ctx != NULL)
            ah_generation_close(c->ctx_gen, c->ctx);
        ah_generation_release(c->ctx_gen);
    }
    pthread_mutex_destroy(&c->call_lock);
    free(c->tenant);
    free(c->name);
    free(c->plugin);
    free(c->settings_text);
    ah_json_wipe_delete(c->settings); /* secrets opened */
    free(c);
}

void ah_conn_release(ah_conn *c)
{
    if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1)
        conn_free(c);
}

static ah_conn *conn_ref(ah_conn *c)
{
    if (c != NULL)
        atomic_fetch_add(&c->refs, 1);
    return c;
}

const char *ah_conn_setting(const ah_conn *c, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->settings, key);
    if (!cJSON_IsString(v))
        return NULL;
    if (strncmp(v->valuestring, HASH_PREFIX, strlen(HASH_PREFIX)) == 0)
        return NULL; /* hashed settings are never readable */
    return v->valuestring;
}

/* Opens the stored settings: sealed values are decrypted, everything else
 * is kept as stored. A value that fails to open (wrong host key, tampered
 * file) makes the connection unusable rather than silently empty. */
static cJSON *settings_open(ah_core *core, const char *text, char *err, size_t errlen)
{
    cJSON *obj = cJSON_Parse(text != NULL ? text : "{}");
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        snprintf(err, errlen, "stored settings are not a JSON object");
        return NULL;
    }
    cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        if (!cJSON_IsString(it) || !ah_is_sealed(it->valuestring))
            continue;
        char aad[160];
        snprintf(aad, sizeof aad, SEAL_AAD_PREFIX "%s", it->string);
        char *plain = ah_open_sealed(core->host_key, it->valuestring, aad);
        if (plain == NULL) {
            snprintf(err, errlen, "secret setting '%s' cannot be decrypted with this host key",
                     it->string);
            ah_json_wipe_delete(obj); /* the ones opened before it */
            return NULL;
        }
        cJSON_SetValuestring(it, plain);
        explicit_bzero(plain, strlen(plain));
        free(plain);
    }
    return obj;
}

static ah_conn *conn_new(ah_core *core, const ah_connection_row *row)
{
    char err[256];
    ah_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->core = core;
    c->id = row->id;
    c->tenant_id = row->tenant_id;
    c->enabled = row->enabled;
    c->tenant = strdup(row->tenant);
    c->name = strdup(row->name);
    c->plugin = strdup(row->plugin);
    c->settings_text = strdup(row->settings != NULL ? row->settings : "{}");
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->call_lock, NULL);
    if (c->tenant == NULL || c->name == NULL || c->plugin == NULL || c->settings_text == NULL) {
        conn_free(c);
        return NULL;
    }
    c->settings = settings_open(core, c->settings_text, err, sizeof err);
    if (c->settings == NULL) {
        ah_log(&core->log, AH_LOG_ERROR, "conns", "connection %s/%s: %s", c->tenant, c->name, err);
        c->settings = cJSON_CreateObject();
        c->enabled = false; /* unusable until an operator fixes it */
    }
    return c;
}

/* ------------------------------------------------------------------------ */

static int cmp_id(const void *a, const void *b)
{
    const ah_conn *x = *(ah_conn *const *)a, *y = *(ah_conn *const *)b;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmp_name(const void *a, const void *b)
{
    const ah_conn *x = *(ah_conn *const *)a, *y = *(ah_conn *const *)b;
    int r = strcmp(x->tenant, y->tenant);
    return r != 0 ? r : strcmp(x->name, y->name);
}

static int cmp_tenant_hash(const void *a, const void *b)
{
    return strcmp(((const tenant_ent *)a)->key_hash, ((const tenant_ent *)b)->key_hash);
}

static int cmp_secret(const void *a, const void *b)
{
    const secret_ent *x = a, *y = b;
    int r = strcmp(x->hash, y->hash);
    if (r == 0)
        r = strcmp(x->plugin, y->plugin);
    return r != 0 ? r : strcmp(x->key, y->key);
}

static void snapshot_free(snapshot *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        ah_conn_release(s->by_id[i]);
    for (size_t i = 0; i < s->nt; i++) {
        free(s->tenants[i].name);
        free(s->tenants[i].key_hash);
    }
    free(s->by_id);
    free(s->by_name);
    free(s->tenants);
    free(s->secrets);
    free(s->token_hashes);
    free(s);
}

ah_conns *ah_conns_new(void)
{
    ah_conns *cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        return NULL;
    pthread_rwlock_init(&cs->lock, NULL);
    pthread_mutex_init(&cs->reload_mu, NULL);
    cs->snap = calloc(1, sizeof(snapshot));
    if (cs->snap == NULL) {
        pthread_mutex_destroy(&cs->reload_mu);
        pthread_rwlock_destroy(&cs->lock);
        free(cs);
        return NULL;
    }
    return cs;
}

void ah_conns_free(ah_conns *cs)
{
    if (cs == NULL)
        return;
    snapshot_free(cs->snap);
    pthread_mutex_destroy(&cs->reload_mu);
    pthread_rwlock_destroy(&cs->lock);
    free(cs);
}

typedef struct load_state {
    ah_core *core;
    snapshot *old;
    snapshot *snap;
    size_t cap, tcap;
    bool oom;
} load_state;

static ah_conn *old_find(const snapshot *old, int64_t id)
{
    ah_conn key = {.id = id}, *kp = &key;
    ah_conn **hit = old->n ? bsearch(&kp, old->by_id, old->n, sizeof(ah_conn *), cmp_id) : NULL;
    return hit != NULL ? *hit : NULL;
}

static void load_tenant(void *arg, const ah_tenant_row *row)
{
    load_state *ls = arg;
    snapshot *s = ls->snap;
    if (ls->oom)
        return;
    if (s->nt == ls->tcap) {
        size_t nc = ls->tcap ? ls->tcap * 2 : 64;
        tenant_ent *t = realloc(s->tenants, nc * sizeof(*t));
        if (t == NULL) {
            ls->oom = true;
            return;
        }
        s->tenants = t;
        ls->tcap = nc;
    }
    tenant_ent *t = &s->tenants[s->nt];
    t->id = row->id;
    t->name = strdup(row->name);
    t->key_hash = strdup(row->key_hash);
    if (t->name == NULL || t->key_hash == NULL) {
        free(t->name);
        free(t->key_hash);
        ls->oom = true;
        return;
    }
    s->nt++;
}

static void load_conn(void *arg, const ah_connection_row *row)
{
    load_state *ls = arg;
    snapshot *s = ls->snap;
    if (ls->oom)
        return;
    if (s->n == ls->cap) {
        size_t nc = ls->cap ? ls->cap * 2 : 64;
        ah_conn **a = realloc(s->by_id, nc * sizeof(*a));
        if (a == NULL) {
            ls->oom = true;
            return;
        }
        s->by_id = a;
        ls->cap = nc;
    }
    ah_conn *prev = old_find(ls->old, row->id);
    ah_conn *c;
    if (prev != NULL && prev->enabled == row->enabled && strcmp(prev->name, row->name) == 0 &&
        strcmp(prev->settings_text, row->settings != NULL ? row->settings : "{}") == 0)
        c = conn_ref(prev); /* unchanged: keep its plugin context */
    else
        c = conn_new(ls->core, row);
    if (c == NULL) {
        ls->oom = true;
        return;
    }
    s->by_id[s->n++] = c;
}

static int reload_locked(ah_core *core)
{
    ah_conns *cs = core->conns;
    load_state ls = {.core = core};
    int64_t version = core->store->ops->data_version(core->store);

    pthread_rwlock_rdlock(&cs->lock);
    ls.old = cs->snap;
    /* The old snapshot cannot be freed while we read it: only a reload
     * frees snapshots, and reloads are serialised by reload_mu. */
    pthread_rwlock_unlock(&cs->lock);

    ls.snap = calloc(1, sizeof(snapshot));
    if (ls.snap == NULL)
        return -1;
    int rc = core->store->ops->tenant_list(core->store, NULL, load_tenant, &ls);
    if (rc == 0)
        rc = core->store->ops->connection_list(core->store, NULL, NULL, load_conn, &ls);
    if (rc != 0 || ls.oom) {
        snapshot_free(ls.snap);
        ah_log(&core->log, AH_LOG_ERROR, "conns", "reloading connections failed");
        return -1;
    }
    snapshot *s = ls.snap;
    s->by_name = malloc((s->n ? s->n : 1) * sizeof(ah_conn *));
    size_t nsecret = 0;
    for (size_t i = 0; i < s->n; i++) {
        const cJSON *it;
        cJSON_ArrayForEach(it, s->by_id[i]->settings)
            if (cJSON_IsString(it) && strncmp(it->valuestring, HASH_PREFIX, strlen(HASH_PREFIX)) == 0)
                nsecret++;
    }
    size_t ntokens = 0;
    for (size_t i = 0; i < s->n; i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(s->by_id[i]->settings, WEBHOOK_TOKEN_KEY);
        if (cJSON_IsString(t) && *t->valuestring != '\0' &&
            strncmp(t->valuestring, HASH_PREFIX, strlen(HASH_PREFIX)) != 0)
            ntokens++;
    }
    s->secrets = calloc(nsecret + ntokens ? nsecret + ntokens : 1, sizeof(secret_ent));
    s->token_hashes = calloc(ntokens ? ntokens : 1, AH_SHA256_HEX_LEN + 1);
    if (s->by_name == NULL || s->secrets == NULL || s->token_hashes == NULL) {
        snapshot_free(s);
        return -1;
    }
    size_t nt = 0;
    for (size_t i = 0; i < s->n; i++) {
        ah_conn *c = s->by_id[i];
        s->by_name[i] = c;
        const cJSON *it;
        cJSON_ArrayForEach(it, c->settings) {
            if (cJSON_IsString(it) && strncmp(it->valuestring, HASH_PREFIX, strlen(HASH_PREFIX)) == 0)
                s->secrets[s->ns++] = (secret_ent){c->plugin, it->string,
                                                   it->valuestring + strlen(HASH_PREFIX), c};
        }
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(c->settings, WEBHOOK_TOKEN_KEY);
        if (cJSON_IsString(t) && *t->valuestring != '\0' &&
            strncmp(t->valuestring, HASH_PREFIX, strlen(HASH_PREFIX)) != 0 && nt < ntokens) {
            char *h = s->token_hashes + nt++ * (AH_SHA256_HEX_LEN + 1);
            ah_sha256_hex(t->valuestring, strlen(t->valuestring), h);
            s->secrets[s->ns++] = (secret_ent){c->plugin, t->string, h, c};
        }
    }
    /* qsort's pointer must not be NULL even for 0 elements (UBSan). */
    if (s->n > 0) {
        qsort(s->by_id, s->n, sizeof(ah_conn *), cmp_id);
        qsort(s->by_name, s->n, sizeof(ah_conn *), cmp_name);
    }
    if (s->nt > 0)
        qsort(s->tenants, s->nt, sizeof(tenant_ent), cmp_tenant_hash);
    if (s->ns > 0)
        qsort(s->secrets, s->ns, sizeof(secret_ent), cmp_secret);

    pthread_rwlock_wrlock(&cs->lock);
    snapshot *old = cs->snap;
    cs->snap = s;
    pthread_rwlock_unlock(&cs->lock);
    /* A connection whose settings changed, or that went (disabled, removed,
     * its tenant deleted), loses its cached OAuth2 tokens: new credentials
     * (a leaked secret rotated, a new refresh token) are used from the
     * next call, not once the old token expires. */
    for (size_t i = 0; old != NULL && i < old->n; i++)
        if (old_find(s, old->by_id[i]->id) != old->by_id[i])
            ah_oauth2_forget_conn(core->oauth2, old->by_id[i]->id);
    snapshot_free(old);
    core->seen_data_version = version;
    return 0;
}

/* Callers need not hold anything: the ticker, operators' actions, the
 * change log and the CLI reload from their own threads. */
int ah_conns_reload(ah_core *core)
{
    ah_conns *cs = core->conns;
    pthread_mutex_lock(&cs->reload_mu);
    int rc = reload_locked(core);
    pthread_mutex_unlock(&cs->reload_mu);
    return rc;
}

ah_conn *ah_conn_by_id(ah_core *core, int64_t id)
{
    ah_conns *cs = core->conns;
    pthread_rwlock_rdlock(&cs->lock);
    ah_conn *c = conn_ref(old_find(cs->snap, id));
    pthread_rwlock_unlock(&cs->lock);
    return c;
}

ah_conn *ah_conn_find(ah_core *core, const char *tenant, const char *name)
{
    ah_conns *cs = core->conns;
    ah_conn key = {.tenant = (char *)tenant, .name = (char *)name}, *kp = &key;
    pthread_rwlock_rdlock(&cs->lock);
    snapshot *s = cs->snap;
    ah_conn **hit = s->n ? bsearch(&kp, s->by_name, s->n, sizeof(ah_conn *), cmp_name) : NULL;
    ah_conn *c = hit != NULL ? conn_ref(*hit) : NULL;
    pthread_rwlock_unlock(&cs->lock);
    return c;
}

int64_t ah_conns_tenant_by_key(ah_core *core, const char *api_key, char *name_out,
                               size_t name_len)
{
    char hash[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex(api_key, strlen(api_key), hash);
    tenant_ent key = {.key_hash = hash};
    int64_t id = -1;
    ah_conns *cs = core->conns;
    pthread_rwlock_rdlock(&cs->lock);
    snapshot *s = cs->snap;
    tenant_ent *t = s->nt ? bsearch(&key, s->tenants, s->nt, sizeof(tenant_ent), cmp_tenant_hash)
                          : NULL;
    /* The search compares hashes of the presented key, which leaks nothing
     * useful; the final equality is still checked in constant time. */
    if (t != NULL && ah_ct_streq(t->key_hash, hash)) {
        id = t->id;
        if (name_out != NULL)
            snprintf(name_out, name_len, "%s", t->name);
    }
    pthread_rwlock_unlock(&cs->lock);
    return id;
}

/* tenant_id < 0: every tenant, disabled connections included. */
static void conns_each(ah_core *core, int64_t tenant_id, const char *plugin,
                       void (*cb)(void *arg, ah_conn *c), void *arg)
{
    ah_conns *cs = core->conns;
    size_t cap = 8, n = 0;
    ah_conn **list = malloc(cap * sizeof(*list));
    if (list == NULL)
        return;
    pthread_rwlock_rdlock(&cs->lock);
    snapshot *s = cs->snap;
    for (size_t i = 0; i < s->n; i++) {
        ah_conn *c = s->by_id[i];
        if ((tenant_id >= 0 && (c->tenant_id != tenant_id || !c->enabled)) ||
            (plugin != NULL && strcmp(c->plugin, plugin) != 0))
            continue;
        if (n == cap) {
            ah_conn **nl = realloc(list, 2 * cap * sizeof(*list));
            if (nl == NULL)
                break;
            list = nl;
            cap *= 2;
        }
        list[n++] = conn_ref(c);
    }
    pthread_rwlock_unlock(&cs->lock);
    for (size_t i = 0; i < n; i++) {
        cb(arg, list[i]);
        ah_conn_release(list[i]);
    }
    free(list);
}

void ah_conns_each_in_tenant(ah_core *core, int64_t tenant_id, const char *plugin,
                             void (*cb)(void *arg, ah_conn *c), void *arg)
{
    if (tenant_id >= 0)
        conns_each(core, tenant_id, plugin, cb, arg);
}

void ah_conns_each(ah_core *core, const char *plugin, void (*cb)(void *arg, ah_conn *c),
                   void *arg)
{
    conns_each(core, -1, plugin, cb, arg);
}

ah_conn *ah_conns_by_secret(ah_core *core, const char *plugin, const char *key,
                            const char *presented)
{
    if (presented == NULL || *presented == '\0' || strlen(presented) > 1024)
        return NULL;
    char hash[AH_SHA256_HEX_LEN + 1];
    ah_sha256_hex(presented, strlen(presented), hash);
    secret_ent probe = {.plugin = plugin, .key = key, .hash = hash};
    ah_conn *found = NULL;
    ah_conns *cs = core->conns;
    pthread_rwlock_rdlock(&cs->lock);
    snapshot *s = cs->snap;
    secret_ent *e = s->ns ? bsearch(&probe, s->secrets, s->ns, sizeof(secret_ent), cmp_secret)
                          : NULL;
    if (e != NULL && ah_ct_streq(e->hash, hash) && e->conn->enabled)
        found = conn_ref(e->conn);
    pthread_rwlock_unlock(&cs->lock);
    return found;
}

int ah_conns_setting_match(ah_core *core, const char *plugin, const char *key, bool enabled_only,
                           bool (*match)(void *arg, const char *value), void *arg)
{
    int found = 0;
    ah_conns *cs = core->conns;
    /* Under the read lock without taking references: match is quick and
     * touches nothing but the value, and this runs on every request of
     * routes that ask (the ERP's), so it should cost a scan, not a copy. */
    pthread_rwlock_rdlock(&cs->lock);
    snapshot *s = cs->snap;
    for (size_t i = 0; i < s->n && !found; i++) {
        const ah_conn *c = s->by_id[i];
        if ((enabled_only && !c->enabled) || strcmp(c->plugin, plugin) != 0)
            continue;
        const char *v = ah_conn_setting(c, key);
        if (v != NULL && match(arg, v))
            found = 1;
    }
    pthread_rwlock_unlock(&cs->lock);
    return found;
}

/* ------------------------------------------------------------------------ */
/* Settings validation against a plugin's declared table                     */
/* ------------------------------------------------------------------------ */

static bool parse_bool(const char *v, bool *out)
{
    static const char *const t[] = {"true", "yes", "on", "1"}, *const f[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, t[i]) == 0)
            return *out = true, true;
        if (strcasecmp(v, f[i]) == 0)
            return *out = false, true;
    }
    return false;
}

static int check_type(const ah_setting_spec *sp, const char *v, char *err, size_t errlen)
{
    if (strlen(v) > 4096) {
        snprintf(err, errlen, "setting '%s' is longer than 4096 bytes", sp->key);
        return -1;
    }
    switch (sp->type) {
    case AH_SET_INT: {
        char *end;
        errno = 0;
        (void)strtoll(v, &end, 10);
        if (*v == '\0' || *end != '\0' || errno != 0) {
            snprintf(err, errlen, "setting '%s' must be an integer", sp->key);
            return -1;
        }
        return 0;
    }
    case AH_SET_BOOL: {
        bool b;
        if (!parse_bool(v, &b)) {
            snprintf(err, errlen, "setting '%s' must be true or false", sp->key);
            return -1;
        }
        return 0;
    }
    case AH_SET_URL:
        if ((strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) ||
            strpbrk(v, " \t\r\n") != NULL || strlen(v) < 10) {
            snprintf(err, errlen, "setting '%s' must be an http:// or https:// URL", sp->key);
            return -1;
        }
        return 0;
    default:
        if (strpbrk(v, "\r\n") != NULL) {
            snprintf(err, errlen, "setting '%s' must be one line", sp->key);
            return -1;
        }
        return 0;
    }
}

static const ah_setting_spec *spec_find(const ah_setting_spec *spec, const char *key)
{
    for (; spec != NULL && spec->key != NULL; spec++)
        if (strcmp(spec->key, key) == 0)
            return spec;
    return NULL;
}

int ah_settings_build(ah_core *core, const ah_setting_spec *spec, const char *plugin,
                      const cJSON *existing, const cJSON *input, bool creating,
                      cJSON *generated, char **out_text, char *err, size_t errlen)
{
    cJSON *out = existing != NULL ? cJSON_Duplicate(existing, 1) : cJSON_CreateObject();
    if (out == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, input) {
        const ah_setting_spec *sp = spec_find(spec, it->string);
        if (sp == NULL) {
            snprintf(err, errlen, "plugin '%s' has no setting '%s' (see: atshub plugins --settings %s)",
                     plugin, it->string, plugin);
            goto fail;
        }
        if (!cJSON_IsString(it)) {
            snprintf(err, errlen, "setting '%s' must be a string", it->string);
            goto fail;
        }
        if (check_type(sp, it->valuestring, err, errlen) != 0)
            goto fail;
        char *stored = NULL;
        if (sp->flags & AH_SETTING_HASHED) {
            char h[AH_SHA256_HEX_LEN + 1];
            ah_sha256_hex(it->valuestring, strlen(it->valuestring), h);
            if (asprintf(&stored, HASH_PREFIX "%s", h) < 0)
                stored = NULL;
        } else if (sp->flags & (AH_SETTING_SECRET | AH_SETTING_GENERATED)) {
            char aad[160];
            snprintf(aad, sizeof aad, SEAL_AAD_PREFIX "%s", sp->key);
            stored = ah_seal(core->host_key, it->valuestring, aad);
        } else if (ah_is_sealed(it->valuestring) ||
                   strncmp(it->valuestring, HASH_PREFIX, strlen(HASH_PREFIX)) == 0) {
            /* Stored as given, it would be read back as a sealed secret
             * (and fail to open: the connection unusable) or as a hash (a
             * credential compared with what callers present). */
            snprintf(err, errlen, "setting '%s': a value may not start with 'v1:' or 'sha256:' "
                     "(reserved for stored secrets)", sp->key);
            goto fail;
        } else {
            stored = strdup(it->valuestring);
        }
        if (stored == NULL) {
            snprintf(err, errlen, "cannot store setting '%s'", sp->key);
            goto fail;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(out, sp->key);
        cJSON_AddItemToObject(out, sp->key, cJSON_CreateString(stored));
        free(stored);
    }
    for (const ah_setting_spec *sp = spec; sp != NULL && sp->key != NULL; sp++) {
        bool present = cJSON_GetObjectItemCaseSensitive(out, sp->key) != NULL;
        if (!present && creating && (sp->flags & AH_SETTING_GENERATED)) {
            char secret[65];
            if (ah_random_hex(secret, 32) != 0) {
                snprintf(err, errlen, "cannot generate '%s'", sp->key);
                goto fail;
            }
            char *stored = NULL;
            if (sp->flags & AH_SETTING_HASHED) {
                char h[AH_SHA256_HEX_LEN + 1];
                ah_sha256_hex(secret, strlen(secret), h);
                if (asprintf(&stored, HASH_PREFIX "%s", h) < 0)
                    stored = NULL;
            } else {
                char aad[160];
                snprintf(aad, sizeof aad, SEAL_AAD_PREFIX "%s", sp->key);
                stored = ah_seal(core->host_key, secret, aad);
            }
            if (stored == NULL) {
                explicit_bzero(secret, sizeof secret);
                snprintf(err, errlen, "cannot store setting '%s'", sp->key);
                goto fail;
            }
            cJSON_AddItemToObject(out, sp->key, cJSON_CreateString(stored));
            if (generated != NULL)
                cJSON_AddStringToObject(generated, sp->key, secret);
            explicit_bzero(secret, sizeof secret);
            free(stored);
            present = true;
        }
        if (!present && (sp->flags & AH_SETTING_REQUIRED) && sp->default_value == NULL) {
            snprintf(err, errlen, "plugin '%s' requires setting '%s' (%s)", plugin, sp->key,
                     sp->help != NULL ? sp->help : "no help");
            goto fail;
        }
    }
    *out_text = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    if (*out_text == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
fail:
    cJSON_Delete(out);
    return -1;
}
