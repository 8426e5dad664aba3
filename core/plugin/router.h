/* SPDX-License-Identifier: Apache-2.0 */
/* The router: maps a bus topic to the capability slot of a plugin
 * descriptor. Pure data, no state: the table of topics is constant. */
#ifndef AH_ROUTER_H
#define AH_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include <atshub/plugin.h>

typedef struct ah_topic {
    const char *topic;      /* "applications.reject" */
    const char *capability; /* "applications" */
    const char *operation;  /* "reject" */
    size_t table_offset;    /* offsetof(ah_plugin_descriptor, applications) */
    size_t slot_offset;     /* offsetof(ah_applications_ops, reject) */
} ah_topic;

/** The known topic, or NULL. */
const ah_topic *ah_router_topic(const char *topic);
/** All topics, in a stable order; *n receives the count. */
const ah_topic *ah_router_topics(size_t *n);

/** The function serving `t` in `d`, or NULL when the plugin lacks the table,
 *  the table is too small (an older plugin) or the slot is NULL. */
ah_op_fn ah_router_resolve(const ah_plugin_descriptor *d, const ah_topic *t);

/** True when `topic` is a write: an operation that may change something at
 *  the provider (a stage move, a note, a posting, a status, ...). Every
 *  write a plugin serves declares how it reconciles (ah_op_write), which
 *  `atshub plugin check` enforces. */
bool ah_router_is_write(const char *topic);

/** The declaration of `topic` in d->op_writes (a bus topic or an event
 *  subscription pattern), or NULL when there is none or the descriptor is
 *  older than op_writes. */
const ah_op_write *ah_router_write_decl(const ah_plugin_descriptor *d, const char *topic);

/** "local", "idempotent", "read_back", "marker"; NULL for UNDECLARED or an
 *  unknown value. */
const char *ah_reconcile_name(ah_reconcile r);

/** Capability names, in a stable order (for coverage tables). */
const char *const *ah_router_capabilities(size_t *n);
/** How many of a capability's operations `d` serves, and how many exist. */
void ah_router_coverage(const ah_plugin_descriptor *d, const char *capability,
                        int *served, int *total);

/*
 * Details (router.c):
 * - ah_router_topics() lists topics sorted by strcmp(); ah_router_topic()
 *   bisects that table.
 * - jobs.stream, applications.stream and candidates.stream belong to the
 *   capability "streaming" (the table serving them); their operation is the
 *   slot's name ("jobs", "applications", "candidates").
 * - ah_router_resolve also returns NULL when the descriptor's own
 *   struct_size ends before the table pointer (a descriptor older than the
 *   table), and when d or t is NULL.
 * - ah_router_coverage gives 0/0 for an unknown capability and 0/total for
 *   a NULL descriptor.
 */

#endif
