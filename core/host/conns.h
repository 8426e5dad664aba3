/* SPDX-License-Identifier: Apache-2.0 */
/* Tenants and connections: the table kept in step with the store, settings against a plugin's table (conns.c). */
#ifndef AH_CONNS_H
#define AH_CONNS_H

#include "core.h"

/* --- connections (conns.c) ------------------------------------------- */
ah_conns *ah_conns_new(void);
void ah_conns_free(ah_conns *cs);
/** Reloads every tenant and connection from the store, keeping the objects
 *  of unchanged connections (and their plugin contexts). Safe from any
 *  thread: reloads are serialised here. */
int ah_conns_reload(ah_core *core);
ah_conn *ah_conn_by_id(ah_core *core, int64_t id);             /* ref taken */
ah_conn *ah_conn_find(ah_core *core, const char *tenant, const char *name); /* ref taken */
void ah_conn_release(ah_conn *c);
/** Tenant id for an API key (hash compared in constant time); -1 if none.
 *  Copies the tenant name into name_out when not NULL. */
int64_t ah_conns_tenant_by_key(ah_core *core, const char *api_key, char *name_out,
                               size_t name_len);
/** Calls cb for each enabled connection of `plugin` in `tenant_id`, each
 *  with a reference held for the duration of the callback. */
void ah_conns_each_in_tenant(ah_core *core, int64_t tenant_id, const char *plugin,
                             void (*cb)(void *arg, ah_conn *c), void *arg);
/** Calls cb for every connection (enabled or not) of `plugin` (NULL: of
 *  every plugin), each with a reference held for the duration of the
 *  callback; cb runs without the table's lock. */
void ah_conns_each(ah_core *core, const char *plugin, void (*cb)(void *arg, ah_conn *c),
                   void *arg);
/** Finds an enabled connection of `plugin` whose HASHED setting `key` is
 *  the hash of `presented` (constant-time compare). A sealed (not hashed)
 *  `webhook_token` setting is matched the same way, by the hash of its
 *  plaintext. Ref taken. */
ah_conn *ah_conns_by_secret(ah_core *core, const char *plugin, const char *key,
                            const char *presented);
/** 1 when match(arg, value) is true for the plaintext value of setting
 *  `key` (unset and HASHED ones are skipped) of at least one connection of
 *  `plugin`, in any tenant (only enabled ones when enabled_only), else 0.
 *  match runs under the table's read lock: it must be quick and call
 *  nothing of the host; value is borrowed for the call only. */
int ah_conns_setting_match(ah_core *core, const char *plugin, const char *key, bool enabled_only,
                           bool (*match)(void *arg, const char *value), void *arg);
/** The plaintext value of a setting, or NULL. Borrowed from the conn. */
const char *ah_conn_setting(const ah_conn *c, const char *key);

/* --- settings against a plugin's table (conns.c) ----------------------- */
/** Validates `input` (key -> string) against `spec` and builds the stored
 *  settings text (secrets sealed, hashed ones hashed, defaults not stored).
 *  `existing` (may be NULL) is the stored text being updated. Generated
 *  secrets are added to `generated` (key -> plaintext) to print once.
 *  0 or -1 with err. */
int ah_settings_build(ah_core *core, const ah_setting_spec *spec, const char *plugin,
                      const cJSON *existing_text_obj, const cJSON *input,
                      bool creating, cJSON *generated, char **out_text,
                      char *err, size_t errlen);

#endif
