/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Plugin loader and registry.
 *
 * A generation is one loaded copy of a plugin's .so: its dl handle, its
 * descriptor and its plugin state. The registry maps a plugin name to its
 * current generation. Callers acquire the current generation for the
 * duration of a call and release it afterwards; a generation replaced by a
 * newer one is finalised and dlclose()d when its last reference is dropped.
 */
#ifndef AH_REGISTRY_H
#define AH_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <atshub/plugin.h>

typedef struct ah_registry ah_registry;

typedef struct ah_generation {
    char *name;       /* descriptor name */
    char *path;       /* the file as configured */
    /* The file dlopen()ed, or a private copy's label as /proc/PID/maps
     * shows it ("/memfd:atshub-<plugin>-<n>": a second version of a loaded
     * plugin, and every isolated plugin's processes, load one). */
    char *loaded_path;
    unsigned number;  /* 1, 2, ... per plugin name */
    void *dl;
    const ah_plugin_descriptor *desc;
    void *plugin_state;
    atomic_long refs;     /* registry's own + one per acquire */
    atomic_long inflight; /* calls currently running */
    struct ah_registry *reg;
    /* Set when the plugin runs in a process of its own (isolate.h): its
     * init, open, close, operations, routes, event handlers, settle
     * functions and fini run there. The .so is never dlopen()ed here (dl is
     * NULL): desc is the descriptor that process described (mirror.h),
     * whose function pointers are stubs; plugin_state is NULL. */
    struct ah_isolate *iso;
} ah_generation;

struct ah_isolate_opts;

/**
 * Loads a plugin file: dlopen(RTLD_NOW|RTLD_LOCAL), look up AH_ENTRY_SYMBOL,
 * call it, check the descriptor's size and ABI (same major, minor not newer
 * than the host's) before anything else, check that the tables carry sane
 * sizes and that required parts are present, then run init. Every failure
 * dlclose()s the handle and writes its own message into err:
 *   "PATH: cannot open: <dlerror> (check the path; use ldd(1) to find missing libraries)"
 *   "PATH: no entry symbol atshub_plugin_entry_v1: not an atshub plugin, or ..."
 *   "PATH: built for ABI major 2 (exports atshub_plugin_entry_v2), this host speaks ABI 1.0"
 *   "PATH: built for ABI 2.0, this host speaks ABI 1.0"
 *   "PATH: built for ABI 1.5, this host speaks ABI 1.0: upgrade atshub to load it"
 *   "PATH: descriptor has no name" / "...: table 'applications' has struct_size N; ..."
 *   "PATH: route POST /x has no handler" / "PATH: subscription 'e.x' has no handler"
 *   "PATH: init failed: <the plugin's message>"
 * When the same file is already loaded in this process (dlopen would hand
 * back the same handle), a private copy is made in memory (memfd_create,
 * opened as /proc/self/fd/N) and opened instead, so that two versions can be
 * live side by side; it has no name in any directory and goes with its
 * mapping when the generation is released, so no kill of the daemon leaves
 * it behind.
 * `host` is the host API table handed to the plugin. Returns NULL on failure.
 * The generation starts with refs = 1 (the caller's).
 */
ah_generation *ah_plugin_load(const char *path, const ah_host_api *host,
                              char *err, size_t errlen);
/** Checks a file without running init (for `atshub plugin check`): every
 *  check of ah_plugin_load but init. Returns 0, or -1 with err filled. */
int ah_plugin_check(const char *path, const ah_host_api *host, char *err, size_t errlen);

/** What the HTTP server registers for a plugin route: its path (a
 *  AH_ROUTE_CONN_TOKEN path cut before "{token}") into path[len], and
 *  whether it serves everything under it (*prefix). -1 when it does not
 *  fit. The loader refuses a route under the host's own paths (/v1,
 *  /admin, /console, /metrics) with this. */
int ah_route_served(const ah_route *r, char *path, size_t len, bool *prefix);
/** Whether two served routes (ah_route_served) are one to the HTTP server,
 *  which keeps one handler per method and pattern (placeholder names
 *  aside): a second would replace the first. */
bool ah_route_same(const char *m1, const char *p1, bool prefix1, const char *m2,
                   const char *p2, bool prefix2);

ah_registry *ah_registry_new(const ah_host_api *host);
/** Releases every generation (waits for none: call when no calls run). */
void ah_registry_free(ah_registry *reg);

/** Loads `path` and installs it as the current generation of its plugin
 *  name (the descriptor's); when `expect_name` is not NULL the descriptor's
 *  name must equal it. Replaces an existing generation atomically (the old
 *  one is released when its last call returns). On failure the old
 *  generation keeps serving. A plugin that declares a route (method and
 *  path, ah_route_same) another loaded plugin serves is refused, naming
 *  it; a new generation of the same plugin replaces its own routes.
 *  Returns the new generation number, or -1. */
int ah_registry_load(ah_registry *reg, const char *expect_name, const char *path,
                     char *err, size_t errlen);
/** Removes a plugin; its generation is released when its last call returns. */
int ah_registry_unload(ah_registry *reg, const char *name);

/** The current generation of `name` with a reference taken, or NULL.
 *  Pair with ah_generation_release. Thread-safe, lock-light. */
ah_generation *ah_registry_acquire(ah_registry *reg, const char *name);
void ah_generation_release(ah_generation *gen);

typedef void (*ah_generation_cb)(void *arg, const ah_generation *gen);
/** Calls cb for each plugin's current generation, in name order. */
void ah_registry_each(ah_registry *reg, ah_generation_cb cb, void *arg);
/** ah_isolate_watch on every isolated plugin's current generation. */
void ah_registry_watch(ah_registry *reg);
size_t ah_registry_count(ah_registry *reg);

/* ------------------------------------------------------------------------ */
/* Appended: the host's call context                                        */
/* ------------------------------------------------------------------------ */

/**
 * The host's full call context. `call` is its first member, so a host API
 * function that receives an ah_call * the host made can cast it to
 * ah_call_ext * : host->fail(call, ...) records the failure in err_code,
 * err_msg and err_status, and the rest of the host API finds its own state
 * through host_ctx. Every ah_call the host (or the loader, for init) hands to
 * a plugin must be the `call` member of one of these.
 */
typedef struct ah_call_ext {
    ah_call call;
    char err_code[64];  /* "" until fail() is called */
    char err_msg[512];
    int err_status;     /* the HTTP status fail() was given (0: derive) */
    /** The host's own per-call pointer (the core, or the test's fake host);
     *  the loader sets it from ah_plugin_load_ctx / ah_registry_new_ctx. */
    void *host_ctx;
} ah_call_ext;

/** ah_plugin_load, with `host_ctx` stored in the ah_call_ext that init
 *  receives (ah_plugin_load passes NULL). */
ah_generation *ah_plugin_load_ctx(const char *path, const ah_host_api *host,
                                  void *host_ctx, char *err, size_t errlen);

/** ah_registry_new, with the host_ctx every load passes to init. */
ah_registry *ah_registry_new_ctx(const ah_host_api *host, void *host_ctx);


/* ------------------------------------------------------------------------ */
/* Appended: isolated plugins (isolate.h)                                   */
/* ------------------------------------------------------------------------ */

/** ah_plugin_load for a plugin that runs in a process of its own: the
 *  process loads a private copy of the file and describes its descriptor,
 *  which gets every check of ah_plugin_load (same messages; a crash while
 *  loading is "PATH: isolated: the plugin process died while loading the
 *  plugin ...: signal SIGSEGV"), then init runs there. The daemon never
 *  dlopen()s the file. */
ah_generation *ah_plugin_load_isolated(const char *path, const ah_host_api *host,
                                       const struct ah_isolate_opts *opts, char *err,
                                       size_t errlen);
/** From the next load of `name` on, run it isolated with `opts` (copied);
 *  NULL: in the daemon's process. 0, or -1 out of memory. */
int ah_registry_set_isolation(ah_registry *reg, const char *name,
                              const struct ah_isolate_opts *opts);
/** Whether the next load of `name` runs it isolated, and then its options
 *  (copied to *out, which may be NULL). */
bool ah_registry_isolation(ah_registry *reg, const char *name, struct ah_isolate_opts *out);

/** The plugin's open(), in process or in its own: *ctx receives the
 *  connection context. Only when gen->desc->open is set. */
ah_result ah_generation_open(ah_generation *gen, ah_call *call, void **ctx);
/** The plugin's close() of a context ah_generation_open made. */
void ah_generation_close(ah_generation *gen, void *ctx);
/** Runs the event handler of `s` (one of gen->desc->subscriptions) for the
 *  event `topic` with `body` (borrowed). */
ah_result ah_generation_event(ah_generation *gen, const ah_subscription *s, ah_call *call,
                              const char *topic, const cJSON *body);
/** Runs the settle function of `w` (one of gen->desc->op_writes) with
 *  `body` (borrowed). */
ah_result ah_generation_settle(ah_generation *gen, const ah_op_write *w, ah_call *call,
                               const cJSON *body, cJSON **reply);
/** Runs the handler of `r` (one of gen->desc->routes) for the inbound
 *  exchange `ex`. */
ah_result ah_generation_route(ah_generation *gen, const ah_route *r, ah_call *call,
                              ah_http_exchange *ex);
/** Runs the operation `fn` serves (call->topic) with `body` (borrowed). */
ah_result ah_generation_call(ah_generation *gen, ah_op_fn fn, ah_call *call,
                             const cJSON *body, cJSON **reply);

#endif
