/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A plugin's descriptor as data: the plugin host process describes the
 * descriptor of the plugin it loaded (ah_mirror_describe) and the daemon
 * rebuilds it (ah_mirror_build), so that the daemon never dlopen()s an
 * isolated plugin (a crash in its constructors or entry function costs only
 * that process) and still reads its name, version, settings, capability
 * tables, routes, subscriptions, field tables and write declarations.
 *
 * In the rebuilt descriptor every function pointer the plugin set (init,
 * fini, open, close, each operation slot, route and subscription handlers,
 * settle functions) is a stub that is never meant to run: the daemon sends
 * those calls to the process (isolate.h) and only tests them for NULL. A
 * stub that runs anyway fails the call (internal, 500). Everything else
 * (strings, tables, scalars, a table's bytes past its slots) is as the
 * plugin declared it. The description is checked by the loader like a
 * dlopen()ed descriptor; ah_mirror_build only refuses text it cannot
 * rebuild (malformed, lists or nesting past the bounds).
 */
#ifndef AH_MIRROR_H
#define AH_MIRROR_H

#include <stddef.h>

#include <atshub/plugin.h>
#include <cjson/cJSON.h>

/** The descriptor `d` as JSON (transferred), or NULL out of memory. Reads at
 *  most 1024 entries of each list (the loader's bound: a longer one is
 *  described with 1025, so that the check refuses it). */
cJSON *ah_mirror_describe(const ah_plugin_descriptor *d);

/** Rebuilds a descriptor from what ah_mirror_describe wrote. Returns NULL
 *  with err filled when the text is malformed. Free with ah_mirror_free. */
const ah_plugin_descriptor *ah_mirror_build(const cJSON *desc, char *err, size_t errlen);
/** Frees a descriptor ah_mirror_build made. NULL is fine. */
void ah_mirror_free(const ah_plugin_descriptor *d);

#endif
