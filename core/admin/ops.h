/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Operator actions shared by the CLI (which runs them in its own process,
 * against the store) and the admin API (which runs them in the daemon):
 * tenants, connections, plugin reloads and the SIGHUP reconcile.
 *
 * Every function returns 0 on success, or -1 with `e` filled: a stable
 * error code ("not_found", "conflict", "invalid_settings", "store_error",
 * "plugin_refused", ...) and a message naming what is wrong. Results are
 * JSON documents the caller owns; secrets a call generates (api_key,
 * generated settings) appear in the result once and nowhere else.
 */
#ifndef AH_OPS_H
#define AH_OPS_H

#include <stdbool.h>

#include <cjson/cJSON.h>

typedef struct ah_core ah_core;

typedef struct ah_ops_err {
    char code[48];
    char msg[1024];
} ah_ops_err;

/** True for names of tenants and connections: 1-64 letters, digits, _ - . */
bool ah_ops_valid_name(const char *s);

/* --- lists -------------------------------------------------------------- */
/** The most entries a page of a list has (the admin API's `limit`). */
#define AH_OPS_PAGE_MAX 1000

/** A page of a list of tenants, connections or syncs, in the byte order of
 *  names: at most `limit` entries after the cursor `after`, the `next` of
 *  the page before (NULL or "": the first page). A tenant's cursor is its
 *  name; a connection's its name in a list of one tenant, "TENANT/NAME" in a
 *  list of all. On return `next` is the cursor of the page that follows, ""
 *  after the last. */
typedef struct ah_ops_page {
    const char *after;
    int limit; /* 1..AH_OPS_PAGE_MAX */
    char next[136];
} ah_ops_page;

/* --- tenants ------------------------------------------------------------ */
/** Adds a tenant; *out = {"tenant","id","api_key"} (the key, once). */
int ah_ops_tenant_add(ah_core *core, const char *name, cJSON **out, ah_ops_err *e);
/** Removes a tenant with its connections and records. */
int ah_ops_tenant_remove(ah_core *core, const char *name, ah_ops_err *e);
/** *out = [{"name","id","created_at"}]; page NULL: every tenant. */
int ah_ops_tenant_list(ah_core *core, ah_ops_page *page, cJSON **out, ah_ops_err *e);

/* --- connections -------------------------------------------------------- */
/** Adds a connection; `settings` is an object of strings (borrowed; may be
 *  NULL). The plugin must be loaded (its settings table validates them).
 *  *out = {"tenant","connection","plugin","id", <generated secrets>}. */
int ah_ops_connection_add(ah_core *core, const char *tenant, const char *plugin,
                          const char *name, const cJSON *settings, cJSON **out, ah_ops_err *e);
/** Updates settings (object of strings, borrowed) of tenant/name. */
int ah_ops_connection_set(ah_core *core, const char *tenant, const char *name,
                          const cJSON *settings, ah_ops_err *e);
/** Regenerates the GENERATED setting `key`; *out = {"tenant","connection",key}. */
int ah_ops_connection_rotate(ah_core *core, const char *tenant, const char *name,
                             const char *key, cJSON **out, ah_ops_err *e);
int ah_ops_connection_enable(ah_core *core, const char *tenant, const char *name, bool enabled,
                             ah_ops_err *e);
int ah_ops_connection_remove(ah_core *core, const char *tenant, const char *name,
                             ah_ops_err *e);
/** *out = [{"tenant","name","plugin","enabled","settings"}] with every
 *  secret shown as "(secret)". tenant NULL: all tenants. page NULL: every
 *  connection. */
int ah_ops_connection_list(ah_core *core, const char *tenant, ah_ops_page *page, cJSON **out,
                           ah_ops_err *e);

/* --- plugins (the daemon) ----------------------------------------------- */
/** Hot swap: loads `path` (NULL: the path [plugins] configures for `name`,
 *  else the current generation's) as the next generation of `name`. The
 *  new file is opened from its own copy when the old one is still mapped,
 *  its ABI checked and its init run; only then does the registry switch.
 *  Calls already running finish on the old generation. On success the
 *  plugin's inbound routes follow the new descriptor and idle connection
 *  contexts of retired generations are closed. On failure the old
 *  generation keeps serving and e says why. *out (may be NULL) =
 *  {"plugin","version","generation","previous_generation","path"}. */
int ah_ops_plugin_reload(ah_core *core, const char *name, const char *path, cJSON **out,
                         ah_ops_err *e);
/** SIGHUP: re-reads the INI the core was opened with and reconciles the
 *  [plugins] section: loads added plugins, unloads removed ones, swaps those
 *  whose path changed. Each plugin is handled on its own; one failure does
 *  not stop the others. *out = {"loaded":[],"swapped":[],"unloaded":[],
 *  "errors":[{"plugin","error"}]}. Returns -1 when the INI cannot be read
 *  (nothing changed; *out untouched) or when any plugin failed (*out set:
 *  the caller frees it in both cases). */
int ah_ops_reconcile(ah_core *core, cJSON **out, ah_ops_err *e);
/** Closes the idle connection contexts that a generation other than the
 *  plugin's current one opened, dropping their references so that retired
 *  generations are released (a connection never called again would
 *  otherwise pin its old generation). Busy connections are skipped: their
 *  next call moves them over. Called after every swap and by the ticker. */
void ah_ops_retire_contexts(ah_core *core);
/** `atshub plugin check` (plugin_check.c): the loader's checks, init, then
 *  `cycles` load/open/close/unload rounds on a scratch host and connection
 *  (default settings; placeholders for required ones), comparing file
 *  descriptors, mappings of the file and heap in use before and after.
 *  Fills `report` (name, version, abi, settings, routes, subscriptions,
 *  coverage, cycles, fd_delta, mapping_delta, heap_delta; the heap counts
 *  glibc's own mapped chunks too). The check runs in a child process: a
 *  plugin that crashes is refused with the signal named, the caller lives
 *  on. 0, or -1 with err naming the first problem. */
int ah_plugin_check_full(const char *path, int cycles, cJSON *report, char *err, size_t errlen);
/** Re-reads tenants and connections now (after an admin change), instead of
 *  waiting for the ticker. */
void ah_ops_refresh(ah_core *core);

/** Follows the change log (issue 14), called by the ticker every second:
 *  applies what other instances on the store changed since the last call:
 *  reloads the plugins they reloaded (those this instance runs, from the
 *  file they loaded) and re-reads tenants and connections when those
 *  changed. The first call only notes where the log ends. 0, or -1 when
 *  the store failed (tried again at the next call). */
int ah_ops_follow_changes(ah_core *core);
/** Forgets the failed reloads kept for trying again (after the ticker
 *  stopped). */
void ah_ops_follow_stop(ah_core *core);

/** The live instances on the store (issue 14): those whose heartbeat is
 *  at most three claim lifetimes old, oldest start first, each with the
 *  leases it holds unexpired: *out = [{"id","version","host","pid",
 *  "started_at","heartbeat","heartbeat_age_ms","leases":[{"name","token",
 *  "expires_in_ms"}]}]. */
int ah_ops_instances(ah_core *core, cJSON **out, ah_ops_err *e);

#endif
