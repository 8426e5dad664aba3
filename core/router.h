/* SPDX-License-Identifier: Apache-2.0 */
/* The router: maps a bus topic to the capability slot of a plugin
 * descriptor. Pure data, no state: the table of topics is constant. */
#ifndef AH_ROUTER_H
#define AH_ROUTER_H

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

/** Capability names, in a stable order (for coverage tables). */
const char *const *ah_router_capabilities(size_t *n);
/** How many of a capability's operations `d` serves, and how many exist. */
void ah_router_coverage(const ah_plugin_descriptor *d, const char *capability,
                        int *served, int *total);

#endif
