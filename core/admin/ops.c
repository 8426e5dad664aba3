/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Operator actions, shared by the CLI and the admin API (ops.h), and the
 * daemon-side plugin life cycle: hot swap, SIGHUP reconcile, retiring the
 * connection contexts that pin old generations.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "claims.h"
#include "conns.h"
#include "rest.h"
#include "core.h"
#include "isolate.h"
#include "metrics.h"
#include "ops.h"

static int ops_fail(ah_ops_err *e, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int ops_fail(ah_ops_err *e, const char *code, const char *fmt, ...)
{
    snprintf(e->code, sizeof e->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

bool ah_ops_valid_name(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > 64)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Tenants                                                                   */
/* ------------------------------------------------------------------------ */

int ah_ops_tenant_add(ah_core *core, const char *name, cJSON **out, ah_ops_err *e)
{
    if (!ah_ops_valid_name(name))
        return ops_fail(e, "invalid_request",
                        "tenant names are 1-64 characters of letters, digits, '_', '-', '.'");
    ah_store *s = core->store;
    char key[4 + 40 + 1] = "ahk_", hash[AH_SHA256_HEX_LEN + 1];
    int64_t id = 0;
    int rc = 0;
    if (ah_random_hex(key + 4, 20) != 0) {
        rc = ops_fail(e, "internal_error", "cannot generate a key");
    } else {
        ah_sha256_hex(key, strlen(key), hash);
        int r = s->ops->tenant_add(s, name, hash, &id);
        if (r == AH_STORE_EXISTS)
            rc = ops_fail(e, "conflict", "tenant '%s' already exists", name);
        else if (r != 0)
            rc = ops_fail(e, "store_error", "cannot add tenant '%s'", name);
        else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "tenant", name);
            cJSON_AddNumberToObject(o, "id", (double)id);
            cJSON_AddStringToObject(o, "api_key", key);
            *out = o;
        }
    }
    explicit_bzero(key, sizeof key);
    return rc;
}

int ah_ops_tenant_remove(ah_core *core, const char *name, ah_ops_err *e)
{
    int r = core->store->ops->tenant_remove(core->store, name);
    if (r == AH_STORE_NOT_FOUND)
        return ops_fail(e, "not_found", "no tenant '%s'", name);
    if (r != 0)
        return ops_fail(e, "store_error", "cannot remove tenant '%s'", name);
    return 0;
}

static void tenant_row_json(void *arg, const ah_tenant_row *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    cJSON_AddStringToObject(o, "created_at", r->created_at ? r->created_at : "");
    cJSON_AddItemToArray(arg, o);
}

/* The store's page for page (NULL: every row): one row more than asked
 * for, which says whether a page follows. The cursor is checked here: an
 * "after" that names no tenant or connection is refused, not looked for.
 * tenant_names: a cursor of "TENANT/NAME" (connections of every tenant),
 * split in buf. */
static int store_page(ah_ops_page *page, bool tenant_names, char *buf, size_t buflen,
                      ah_store_page *sp, ah_ops_err *e)
{
    *sp = (ah_store_page){0};
    if (page == NULL)
        return 0;
    page->next[0] = '\0';
    if (page->limit < 1 || page->limit > AH_OPS_PAGE_MAX)
        return ops_fail(e, "invalid_request", "limit is 1 to %d", AH_OPS_PAGE_MAX);
    sp->limit = page->limit + 1;
    if (page->after == NULL || page->after[0] == '\0')
        return 0;
    snprintf(buf, buflen, "%s", page->after);
    char *slash = tenant_names ? strchr(buf, '/') : NULL;
    if (slash != NULL)
        *slash = '\0';
    if (strlen(page->after) >= buflen || !ah_ops_valid_name(buf) ||
        tenant_names != (slash != NULL) || (slash != NULL && !ah_ops_valid_name(slash + 1)))
        return ops_fail(e, "invalid_request", "after: not a cursor of this list (give a "
                        "page's \"next\")");
    sp->after = buf;
    sp->after_name = slash != NULL ? slash + 1 : NULL;
    return 0;
}

/* A page listed into `list` (one row more than asked for, store_page): the
 * extra row dropped, and next set to the cursor of the last row kept. */
static void page_end(ah_ops_page *page, cJSON *list, const char *tenant_key)
{
    if (page == NULL || cJSON_GetArraySize(list) <= page->limit)
        return;
    cJSON_DeleteItemFromArray(list, page->limit);
    const cJSON *last = cJSON_GetArrayItem(list, page->limit - 1);
    const cJSON *t = tenant_key != NULL ? cJSON_GetObjectItemCaseSensitive(last, tenant_key) : NULL;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(last, "name");
    if (cJSON_IsString(t))
        snprintf(page->next, sizeof page->next, "%s/%s", t->valuestring,
                 cJSON_IsString(n) ? n->valuestring : "");
    else if (cJSON_IsString(n))
        snprintf(page->next, sizeof page->next, "%s", n->valuestring);
}

int ah_ops_tenant_list(ah_core *core, ah_ops_page *page, cJSON **out, ah_ops_err *e)
{
    char buf[160];
    ah_store_page sp;
    if (store_page(page, false, buf, sizeof buf, &sp, e) != 0)
        return -1;
    cJSON *list = cJSON_CreateArray();
    if (list == NULL ||
        core->store->ops->tenant_list(core->store, page != NULL ? &sp : NULL, tenant_row_json,
                                      list) != 0) {
        cJSON_Delete(list);
        return ops_fail(e, "store_error", "cannot list tenants");
    }
    page_end(page, list, NULL);
    *out = list;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */
/* ------------------------------------------------------------------------ */

/* Settings for display: secrets are never printed. */
static cJSON *settings_display(const ah_connection_row *r)
{
    cJSON *in = cJSON_Parse(r->settings ? r->settings : "{}");
    cJSON *out = cJSON_CreateObject();
    const cJSON *it;
    cJSON_ArrayForEach(it, in) {
        bool secret = cJSON_IsString(it) &&
                      (ah_is_sealed(it->valuestring) || strncmp(it->valuestring, "sha256:", 7) == 0);
        cJSON_AddItemToObject(out, it->string,
                              secret ? cJSON_CreateString("(secret)") : cJSON_Duplicate(it, 1));
    }
    cJSON_Delete(in);
    return out;
}

static void connection_row_json(void *arg, const ah_connection_row *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "tenant", r->tenant);
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddStringToObject(o, "plugin", r->plugin);
    cJSON_AddBoolToObject(o, "enabled", r->enabled);
    cJSON_AddItemToObject(o, "settings", settings_display(r));
    cJSON_AddItemToArray(arg, o);
}

int ah_ops_connection_list(ah_core *core, const char *tenant, ah_ops_page *page, cJSON **out,
                           ah_ops_err *e)
{
    char buf[160];
    ah_store_page sp;
    if (store_page(page, tenant == NULL, buf, sizeof buf, &sp, e) != 0)
        return -1;
    /* A tenant that does not exist is no empty list: `connection list
     * typo` said "none" where it meant "no such tenant". */
    if (tenant != NULL) {
        ah_tenant_row t = {0};
        int r = core->store->ops->tenant_get(core->store, tenant, &t);
        if (r == AH_STORE_NOT_FOUND)
            return ops_fail(e, "not_found", "no tenant '%s' (see: atshub tenant list)", tenant);
        if (r != 0)
            return ops_fail(e, "store_error", "cannot read tenant '%s'", tenant);
        ah_tenant_row_free(&t);
    }
    cJSON *list = cJSON_CreateArray();
    if (list == NULL ||
        core->store->ops->connection_list(core->store, tenant, page != NULL ? &sp : NULL,
                                          connection_row_json, list) != 0) {
        cJSON_Delete(list);
        return ops_fail(e, "store_error", "cannot list connections");
    }
    page_end(page, list, tenant == NULL ? "tenant" : NULL);
    *out = list;
    return 0;
}

/* Settings input must be an object of strings (the CLI's KEY=VALUE). */
static int check_input(const cJSON *in, ah_ops_err *e)
{
    if (in == NULL)
        return 0;
    if (!cJSON_IsObject(in))
        return ops_fail(e, "invalid_settings", "settings must be an object of strings");
    const cJSON *it;
    cJSON_ArrayForEach(it, in)
        if (!cJSON_IsString(it))
            return ops_fail(e, "invalid_settings", "setting '%s' must be a string", it->string);
    return 0;
}

int ah_ops_connection_add(ah_core *core, const char *tenant, const char *plugin,
                          const char *name, const cJSON *settings, cJSON **out, ah_ops_err *e)
{
    if (!ah_ops_valid_name(name))
        return ops_fail(e, "invalid_request",
                        "connection names are 1-64 characters of letters, digits, '_', '-', '.'");
    if (check_input(settings, e) != 0)
        return -1;
    ah_store *s = core->store;
    ah_tenant_row t = {0};
    if (s->ops->tenant_get(s, tenant, &t) != 0)
        return ops_fail(e, "not_found", "no tenant '%s' (add it first: atshub tenant add %s)",
                        tenant, tenant);
    ah_generation *gen = ah_registry_acquire(core->registry, plugin);
    if (gen == NULL) {
        ah_tenant_row_free(&t);
        return ops_fail(e, "not_found", "no plugin '%s' is loaded (see: atshub plugins)", plugin);
    }
    cJSON *input = settings != NULL ? cJSON_Duplicate(settings, 1) : cJSON_CreateObject();
    cJSON *generated = cJSON_CreateObject();
    char err[512], *text = NULL;
    int rc = 0;
    if (ah_settings_build(core, gen->desc->settings, plugin, NULL, input, true, generated, &text,
                          err, sizeof err) != 0) {
        rc = ops_fail(e, "invalid_settings", "%s", err);
    } else {
        int64_t id = 0;
        int r = s->ops->connection_add(s, t.id, plugin, name, text, &id);
        if (r == AH_STORE_EXISTS) {
            rc = ops_fail(e, "conflict", "tenant '%s' already has a connection '%s'", tenant, name);
        } else if (r != 0) {
            rc = ops_fail(e, "store_error", "cannot add connection '%s'", name);
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "tenant", tenant);
            cJSON_AddStringToObject(o, "connection", name);
            cJSON_AddStringToObject(o, "plugin", plugin);
            cJSON_AddNumberToObject(o, "id", (double)id);
            const cJSON *g;
            cJSON_ArrayForEach(g, generated)
                cJSON_AddStringToObject(o, g->string, g->valuestring);
            *out = o;
        }
    }
    free(text);
    cJSON_Delete(input);
    cJSON_Delete(generated);
    ah_generation_release(gen);
    ah_tenant_row_free(&t);
    return rc;
}

/* The row of tenant/name, or -1 with e filled. */
static int get_row(ah_core *core, const char *tenant, const char *name, ah_connection_row *row,
                   ah_ops_err *e)
{
    memset(row, 0, sizeof *row);
    if (core->store->ops->connection_get(core->store, tenant, name, row) != 0)
        return ops_fail(e, "not_found", "tenant '%s' has no connection '%s'", tenant, name);
    return 0;
}

/* store_settings: the stored settings changed since row was read
 * (another operator, instance or plugin call): read again, apply again. */
#define SETTINGS_CHANGED 1
/* How often a change is applied again before it gives up. */
#define SETTINGS_TRIES 5

/* Builds and stores new settings text for row, only if the stored
 * settings are still row's (else SETTINGS_CHANGED, nothing stored).
 * `creating` regenerates the generated settings absent from `existing`
 * into `generated`. */
static int store_settings(ah_core *core, const ah_connection_row *row, cJSON *existing,
                          const cJSON *input, bool creating, cJSON *generated, ah_ops_err *e)
{
    ah_generation *gen = ah_registry_acquire(core->registry, row->plugin);
    if (gen == NULL)
        return ops_fail(e, "not_found", "plugin '%s' is not loaded: cannot check settings",
                        row->plugin);
    char err[512], *text = NULL;
    int rc = 0;
    if (ah_settings_build(core, gen->desc->settings, row->plugin, existing, input, creating,
                          generated, &text, err, sizeof err) != 0)
        rc = ops_fail(e, "invalid_settings", "%s", err);
    else if ((rc = core->store->ops->connection_update(core->store, row->id, text,
                                                        row->settings != NULL ? row->settings
                                                                              : "{}")) ==
             AH_STORE_EXISTS)
        rc = SETTINGS_CHANGED;
    else if (rc != 0)
        rc = ops_fail(e, "store_error", "cannot update connection '%s'", row->name);
    free(text);
    ah_generation_release(gen);
    return rc;
}

/* A change that met SETTINGS_CHANGED every time: another writer kept
 * changing the connection. */
static int settings_outcome(int rc, const char *name, ah_ops_err *e)
{
    if (rc == SETTINGS_CHANGED)
        return ops_fail(e, "conflict", "connection '%s' was changed by another writer %d times "
                        "while this change was applied; try again", name, SETTINGS_TRIES);
    return rc;
}

static int connection_set_once(ah_core *core, const char *tenant, const char *name,
                               const cJSON *settings, ah_ops_err *e)
{
    ah_connection_row row;
    if (get_row(core, tenant, name, &row, e) != 0)
        return -1;
    cJSON *existing = cJSON_Parse(row.settings ? row.settings : "{}");
    cJSON *none = settings == NULL ? cJSON_CreateObject() : NULL;
    int rc = store_settings(core, &row, existing, settings != NULL ? settings : none, false,
                            NULL, e);
    cJSON_Delete(none);
    cJSON_Delete(existing);
    ah_connection_row_free(&row);
    return rc;
}

/* The stored settings are read, changed and stored only if still as read
 * (connection_update's expected text): a change another operator,
 * instance or plugin call stored meanwhile is read and kept, not undone. */
int ah_ops_connection_set(ah_core *core, const char *tenant, const char *name,
                          const cJSON *settings, ah_ops_err *e)
{
    if (check_input(settings, e) != 0)
        return -1;
    int rc = SETTINGS_CHANGED;
    for (int i = 0; i < SETTINGS_TRIES && rc == SETTINGS_CHANGED; i++)
        rc = connection_set_once(core, tenant, name, settings, e);
    return settings_outcome(rc, name, e);
}

static int connection_rotate_once(ah_core *core, const char *tenant, const char *name,
                                  const char *key, cJSON **out, ah_ops_err *e)
{
    ah_connection_row row;
    if (get_row(core, tenant, name, &row, e) != 0)
        return -1;
    ah_generation *gen = ah_registry_acquire(core->registry, row.plugin);
    const ah_setting_spec *sp = gen != NULL ? gen->desc->settings : NULL;
    while (sp != NULL && sp->key != NULL && strcmp(sp->key, key) != 0)
        sp++;
    bool generated_key = sp != NULL && sp->key != NULL && (sp->flags & AH_SETTING_GENERATED);
    int rc = 0;
    if (gen == NULL)
        rc = ops_fail(e, "not_found", "plugin '%s' is not loaded", row.plugin);
    else if (!generated_key)
        rc = ops_fail(e, "invalid_settings", "'%s' is not a generated secret of plugin '%s'", key,
                      row.plugin);
    ah_generation_release(gen);
    if (rc != 0) {
        ah_connection_row_free(&row);
        return rc;
    }
    cJSON *existing = cJSON_Parse(row.settings ? row.settings : "{}");
    cJSON_DeleteItemFromObjectCaseSensitive(existing, key);
    cJSON *generated = cJSON_CreateObject(), *none = cJSON_CreateObject();
    /* "creating" regenerates whatever generated setting is absent: only the
     * one removed above. */
    rc = store_settings(core, &row, existing, none, true, generated, e);
    if (rc == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tenant", row.tenant);
        cJSON_AddStringToObject(o, "connection", row.name);
        const cJSON *g;
        cJSON_ArrayForEach(g, generated)
            cJSON_AddStringToObject(o, g->string, g->valuestring);
        *out = o;
    }
    cJSON_Delete(existing);
    cJSON_Delete(generated);
    cJSON_Delete(none);
    ah_connection_row_free(&row);
    return rc;
}

/* As ah_ops_connection_set: a rotation is never undone by, nor undoes, a
 * change stored meanwhile. */
int ah_ops_connection_rotate(ah_core *core, const char *tenant, const char *name,
                             const char *key, cJSON **out, ah_ops_err *e)
{
    int rc = SETTINGS_CHANGED;
    for (int i = 0; i < SETTINGS_TRIES && rc == SETTINGS_CHANGED; i++)
        rc = connection_rotate_once(core, tenant, name, key, out, e);
    return settings_outcome(rc, name, e);
}

int ah_ops_connection_enable(ah_core *core, const char *tenant, const char *name, bool enabled,
                             ah_ops_err *e)
{
    ah_connection_row row;
    if (get_row(core, tenant, name, &row, e) != 0)
        return -1;
    int rc = 0;
    if (core->store->ops->connection_set_enabled(core->store, row.id, enabled) != 0)
        rc = ops_fail(e, "store_error", "cannot %s connection '%s'", enabled ? "enable" : "disable",
                      name);
    ah_connection_row_free(&row);
    return rc;
}

int ah_ops_connection_remove(ah_core *core, const char *tenant, const char *name,
                             ah_ops_err *e)
{
    ah_connection_row row;
    if (get_row(core, tenant, name, &row, e) != 0)
        return -1;
    int rc = 0;
    if (core->store->ops->connection_remove(core->store, row.id) != 0)
        rc = ops_fail(e, "store_error", "cannot remove connection '%s'", name);
    ah_connection_row_free(&row);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Plugins                                                                   */
/* ------------------------------------------------------------------------ */

void ah_ops_refresh(ah_core *core)
{
    ah_conns_reload(core); /* serialised with every other reload by conns.c */
}

static void retire_one(void *arg, ah_conn *c)
{
    ah_core *core = arg;
    /* A busy connection moves to the new generation on its next call. */
    if (pthread_mutex_trylock(&c->call_lock) != 0)
        return;
    if (c->ctx_gen != NULL) {
        ah_generation *cur = ah_registry_acquire(core->registry, c->plugin);
        if (cur != c->ctx_gen) {
            ah_generation *old = c->ctx_gen;
            if (c->ctx != NULL)
                ah_generation_close(old, c->ctx);
            c->ctx = NULL;
            c->ctx_gen = NULL;
            c->ctx_failed = false;
            ah_generation_release(old);
        }
        ah_generation_release(cur);
    }
    pthread_mutex_unlock(&c->call_lock);
}

void ah_ops_retire_contexts(ah_core *core)
{
    ah_conns_each(core, NULL, retire_one, core);
}

/* The [plugins] path configured for name, or NULL. */
static const char *configured_path(const ah_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nplugins; i++)
        if (strcmp(cfg->plugins[i].name, name) == 0)
            return cfg->plugins[i].path;
    return NULL;
}

/* Loads path as name's next generation; caller holds ops_lock. */
static int reload_locked(ah_core *core, const char *name, const char *path, cJSON **out,
                         ah_ops_err *e)
{
    ah_generation *old = ah_registry_acquire(core->registry, name);
    unsigned prev = old != NULL ? old->number : 0;
    char *from = NULL;
    if (path != NULL)
        from = strdup(path);
    else if (configured_path(&core->cfg, name) != NULL)
        from = strdup(configured_path(&core->cfg, name));
    else if (old != NULL)
        from = strdup(old->path);
    ah_generation_release(old);
    if (from == NULL)
        return ops_fail(e, "not_found", "no plugin '%s' is loaded or configured: give --path", name);
    char err[1024];
    int number = ah_registry_load(core->registry, name, from, err, sizeof err);
    ah_metrics_swap(core->metrics, name, number >= 0);
    if (number < 0) {
        ah_log(&core->log, AH_LOG_WARN, "plugins", "reload of '%s' refused, generation %u keeps "
               "serving: %s", name, prev, err);
        ops_fail(e, "plugin_refused", "%s%s", err,
                 prev != 0 ? " (the previous generation keeps serving)" : "");
        free(from);
        return -1;
    }
    ah_generation *gen = ah_registry_acquire(core->registry, name);
    if (core->httpd != NULL && ah_rest_plugin_routes(core, name) != 0)
        ah_log(&core->log, AH_LOG_WARN, "plugins", "'%s': cannot register every route", name);
    ah_ops_retire_contexts(core);
    ah_log(&core->log, AH_LOG_INFO, "plugins", "'%s' %s now serves as generation %d (was %u), from %s",
           name, gen != NULL ? gen->desc->version : "?", number, prev, from);
    if (out != NULL) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "plugin", name);
        cJSON_AddStringToObject(o, "version", gen != NULL ? gen->desc->version : "");
        cJSON_AddNumberToObject(o, "generation", number);
        cJSON_AddNumberToObject(o, "previous_generation", prev);
        cJSON_AddStringToObject(o, "path", from);
        *out = o;
    }
    ah_generation_release(gen);
    free(from);
    return 0;
}

/* Tells the other instances on the store (change log, issue 14) that
 * plugin `name` was reloaded here, and from which file. */
static void announce_reload(ah_core *core, const char *name)
{
    ah_generation *gen = ah_registry_acquire(core->registry, name);
    if (gen == NULL)
        return;
    if (core->store->ops->change_add(core->store, "plugin.reload", name, gen->path,
                                     core->instance[0] != '\0' ? core->instance : NULL) != 0)
        ah_log(&core->log, AH_LOG_WARN, "ops", "plugin %s: reloaded here, but the other "
               "instances cannot be told (the store failed): reload it there too", name);
    ah_generation_release(gen);
}

int ah_ops_plugin_reload(ah_core *core, const char *name, const char *path, cJSON **out,
                         ah_ops_err *e)
{
    pthread_mutex_lock(&core->ops_lock);
    int rc = reload_locked(core, name, path, out, e);
    if (rc == 0)
        announce_reload(core, name);
    pthread_mutex_unlock(&core->ops_lock);
    return rc;
}

/* --- instances (issue 14) ------------------------------------------------ */

static void instance_json(void *arg, const ah_instance_row *r)
{
    cJSON *list = arg;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return;
    cJSON_AddStringToObject(o, "id", r->id ? r->id : "");
    cJSON_AddStringToObject(o, "version", r->version ? r->version : "");
    cJSON_AddStringToObject(o, "host", r->host ? r->host : "");
    cJSON_AddNumberToObject(o, "pid", (double)r->pid);
    cJSON_AddStringToObject(o, "started_at", r->started_at ? r->started_at : "");
    cJSON_AddStringToObject(o, "heartbeat", r->heartbeat ? r->heartbeat : "");
    cJSON_AddNumberToObject(o, "heartbeat_age_ms", (double)r->age_ms);
    cJSON_AddArrayToObject(o, "leases");
    cJSON_AddItemToArray(list, o);
}

static void lease_json(void *arg, const ah_lease_row *r)
{
    cJSON *list = arg;
    if (r->expires_in_ms <= 0 || r->owner == NULL)
        return; /* free: held by no one */
    const cJSON *inst;
    cJSON_ArrayForEach(inst, list) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(inst, "id");
        if (!cJSON_IsString(id) || strcmp(id->valuestring, r->owner) != 0)
            continue;
        cJSON *l = cJSON_CreateObject();
        if (l == NULL)
            return;
        cJSON_AddStringToObject(l, "name", r->name ? r->name : "");
        cJSON_AddNumberToObject(l, "token", (double)r->token);
        cJSON_AddNumberToObject(l, "expires_in_ms", (double)r->expires_in_ms);
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(inst, "leases"), l);
        return;
    }
}

int ah_ops_instances(ah_core *core, cJSON **out, ah_ops_err *e)
{
    ah_store *st = core->store;
    cJSON *list = cJSON_CreateArray();
    int64_t live = 3 * ah_claim_ttl(core);
    if (list == NULL || st->ops->instance_list(st, live, instance_json, list) != 0 ||
        st->ops->lease_list(st, lease_json, list) != 0) {
        cJSON_Delete(list);
        return ops_fail(e, "store_error", "cannot list the instances");
    }
    *out = list;
    return 0;
}

/* --- the change log (issue 14) ------------------------------------------ */

typedef struct change_batch {
    const char *me;
    int n;
    int64_t last;
    bool conns;      /* tenants or connections changed */
    char *name[100]; /* plugin reloads made by other instances, in order */
    char *path[100];
    int nreload;
} change_batch;

static void on_change(void *arg, const ah_change_row *r)
{
    change_batch *b = arg;
    b->n++;
    b->last = r->id;
    if (r->kind == NULL)
        return;
    if (strcmp(r->kind, "plugin.reload") == 0) {
        if (r->subject == NULL || (r->origin != NULL && strcmp(r->origin, b->me) == 0) ||
            b->nreload >= 100)
            return;
        b->name[b->nreload] = strdup(r->subject);
        b->path[b->nreload] = r->detail != NULL ? strdup(r->detail) : NULL;
        if (b->name[b->nreload] != NULL)
            b->nreload++;
        return;
    }
    b->conns = true;
}

/* Reloads plugin name (from path; NULL: its own) as another instance did.
 * true when it failed here and is worth trying again; tries: the retries
 * so far. */
static bool follow_reload(ah_core *core, const char *name, const char *path, int tries)
{
    ah_ops_err e = {0};
    pthread_mutex_lock(&core->ops_lock);
    ah_generation *cur = ah_registry_acquire(core->registry, name);
    bool present = cur != NULL;
    ah_generation_release(cur);
    /* Only plugins this instance runs: another's own [plugins] is its own. */
    int rc = present ? reload_locked(core, name, path, NULL, &e) : 0;
    pthread_mutex_unlock(&core->ops_lock);
    if (!present)
        return false;
    if (rc == 0) {
        ah_log(&core->log, AH_LOG_INFO, "ops", "plugin %s reloaded from %s, as another instance "
               "did%s", name, path != NULL ? path : "its path", tries > 0 ? " (tried again)" : "");
        return false;
    }
    ah_log(&core->log, AH_LOG_ERROR, "ops", "plugin %s: another instance reloaded it, but here "
           "the reload failed (%s: %s); the old generation serves, tried again later", name,
           e.code, e.msg);
    return true;
}

static void retry_drop(ah_core *core, int i)
{
    free(core->reload_retry[i].name);
    free(core->reload_retry[i].path);
    core->reload_retry[i] = core->reload_retry[--core->nreload_retry];
}

static void retry_forget(ah_core *core, const char *name)
{
    for (int i = 0; i < core->nreload_retry; i++)
        if (strcmp(core->reload_retry[i].name, name) == 0)
            retry_drop(core, i--);
}

/* Keeps a failed reload (name and path become the list's) for the ticker
 * to try again: after 2 s, then twice as long each time, at most a minute
 * apart. */
static void retry_keep(ah_core *core, char *name, char *path)
{
    int n = (int)(sizeof core->reload_retry / sizeof core->reload_retry[0]);
    if (core->nreload_retry == n) {
        ah_log(&core->log, AH_LOG_ERROR, "ops", "plugin %s: too many failed reloads to try "
               "again; reload it by hand", name);
        free(name);
        free(path);
        return;
    }
    core->reload_retry[core->nreload_retry++] =
        (struct ah_reload_retry){.name = name, .path = path, .next_ms = ah_mono_ms() + 2000};
}

/* The failed reloads whose time has come, tried again. */
static void retry_due(ah_core *core)
{
    int64_t now = ah_mono_ms();
    for (int i = 0; i < core->nreload_retry; i++) {
        struct ah_reload_retry *r = &core->reload_retry[i];
        if (r->next_ms > now)
            continue;
        r->tries++;
        if (!follow_reload(core, r->name, r->path, r->tries)) {
            retry_drop(core, i--);
            continue;
        }
        int64_t pause = 2000LL << (r->tries < 5 ? r->tries : 5);
        r->next_ms = now + (pause < 60000 ? pause : 60000);
    }
}

void ah_ops_follow_stop(ah_core *core)
{
    while (core->nreload_retry > 0)
        retry_drop(core, 0);
}

int ah_ops_follow_changes(ah_core *core)
{
    ah_store *st = core->store;
    if (!core->change_ready) {
        if (st->ops->change_last(st, &core->change_seen) != AH_STORE_OK)
            return -1;
        core->change_ready = true;
        return 0;
    }
    bool conns = false;
    for (;;) {
        change_batch b = {.me = core->instance, .last = core->change_seen};
        if (st->ops->change_after(st, core->change_seen, 100, on_change, &b) != AH_STORE_OK) {
            /* An earlier batch moved change_seen past changes of tenants
             * or connections: act on them now (the log is not read below
             * change_seen again). */
            if (conns)
                ah_conns_reload(core);
            return -1;
        }
        core->change_seen = b.last;
        conns = conns || b.conns;
        for (int i = 0; i < b.nreload; i++) {
            retry_forget(core, b.name[i]); /* a newer reload of it supersedes */
            if (follow_reload(core, b.name[i], b.path[i], 0))
                retry_keep(core, b.name[i], b.path[i]); /* takes both */
            else {
                free(b.name[i]);
                free(b.path[i]);
            }
        }
        if (b.n < 100)
            break;
    }
    if (conns)
        ah_conns_reload(core);
    retry_due(core);
    return 0;
}

static void add_error(cJSON *errors, const char *plugin, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "plugin", plugin);
    cJSON_AddStringToObject(o, "error", msg);
    cJSON_AddItemToArray(errors, o);
}

typedef struct names {
    char **v;
    size_t n;
} names;

static void collect_name(void *arg, const ah_generation *gen)
{
    names *l = arg;
    char **v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (v == NULL)
        return;
    l->v = v;
    if ((v[l->n] = strdup(gen->name)) != NULL)
        l->n++;
}

int ah_ops_reconcile(ah_core *core, cJSON **out, ah_ops_err *e)
{
    if (core->cfg.path == NULL)
        return ops_fail(e, "config_error", "the host was not started from a file: nothing to re-read");
    ah_config cfg;
    char err[1024];
    if (ah_config_load(core->cfg.path, &cfg, err, sizeof err) != 0)
        return ops_fail(e, "config_error", "%s (nothing changed)", err);
    cJSON *o = cJSON_CreateObject();
    cJSON *loaded = cJSON_AddArrayToObject(o, "loaded");
    cJSON *swapped = cJSON_AddArrayToObject(o, "swapped");
    cJSON *unloaded = cJSON_AddArrayToObject(o, "unloaded");
    cJSON *errors = cJSON_AddArrayToObject(o, "errors");
    pthread_mutex_lock(&core->ops_lock);
    for (size_t i = 0; i < cfg.nplugins; i++) {
        const ah_plugin_conf *p = &cfg.plugins[i];
        ah_generation *cur = ah_registry_acquire(core->registry, p->name);
        bool same = cur != NULL && strcmp(cur->path, p->path) == 0;
        bool present = cur != NULL;
        ah_generation_release(cur);
        if (same)
            continue;
        /* A plugin (re)loaded here runs as its [plugin.NAME] now says. */
        ah_plugin_iso_conf pic;
        ah_config_plugin_iso_resolve(&cfg, p->name, &pic);
        const ah_plugin_iso_conf *pi = &pic;
        ah_isolate_opts io, was;
        bool was_isolated = ah_registry_isolation(core->registry, p->name, &was);
        ah_core_isolate_opts(&core->cfg, pi, &io);
        ah_registry_set_isolation(core->registry, p->name,
                                  pi->isolation == AH_ISOLATION_PROCESS ? &io : NULL);
        ah_ops_err pe;
        if (reload_locked(core, p->name, p->path, NULL, &pe) != 0) {
            /* Refused: the serving generation keeps its mode, and so does
             * the plugin's next load (a later `plugin reload`). */
            ah_registry_set_isolation(core->registry, p->name, was_isolated ? &was : NULL);
            add_error(errors, p->name, pe.msg);
        } else
            cJSON_AddItemToArray(present ? swapped : loaded, cJSON_CreateString(p->name));
    }
    names l = {NULL, 0};
    ah_registry_each(core->registry, collect_name, &l);
    for (size_t i = 0; i < l.n; i++) {
        if (configured_path(&cfg, l.v[i]) == NULL &&
            ah_registry_unload(core->registry, l.v[i]) == 0) {
            if (core->httpd != NULL)
                ah_rest_plugin_routes(core, l.v[i]);
            ah_log(&core->log, AH_LOG_INFO, "plugins", "'%s' unloaded (no longer in %s)", l.v[i],
                   core->cfg.path);
            cJSON_AddItemToArray(unloaded, cJSON_CreateString(l.v[i]));
        }
        free(l.v[i]);
    }
    free(l.v);
    ah_ops_retire_contexts(core);
    /* The new [plugins] becomes the one `plugin reload NAME` falls back to.
     * Other sections need a restart ([plugin.NAME] applies to the plugins
     * loaded or swapped above). */
    ah_plugin_conf *tmp = core->cfg.plugins;
    size_t tn = core->cfg.nplugins;
    core->cfg.plugins = cfg.plugins;
    core->cfg.nplugins = cfg.nplugins;
    cfg.plugins = tmp;
    cfg.nplugins = tn;
    pthread_mutex_unlock(&core->ops_lock);
    ah_config_free(&cfg);
    int nerr = cJSON_GetArraySize(errors);
    *out = o;
    if (nerr > 0)
        return ops_fail(e, "plugin_refused", "%d plugin(s) could not be loaded; the others were "
                        "reconciled", nerr);
    return 0;
}
