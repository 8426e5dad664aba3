/* SPDX-License-Identifier: Apache-2.0 */
#include "router.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AH_TOPIC(topic, cap, op, table, type, slot)                            \
    {topic, cap, op, offsetof(ah_plugin_descriptor, table),                    \
     offsetof(type, slot)}

/* Sorted by strcmp() so that lookups can bisect: the order is also the
 * stable order ah_router_topics() promises. check_router verifies it. The
 * streaming topics belong to the "streaming" capability (that is the table
 * serving them); their operation is the slot's name. */
static const ah_topic topics[] = {
    AH_TOPIC("applications.bulk_reject", "applications", "bulk_reject",
             applications, ah_applications_ops, bulk_reject),
    AH_TOPIC("applications.create", "applications", "create", applications,
             ah_applications_ops, create),
    AH_TOPIC("applications.list_stages", "applications", "list_stages",
             applications, ah_applications_ops, list_stages),
    AH_TOPIC("applications.move_to_stage", "applications", "move_to_stage",
             applications, ah_applications_ops, move_to_stage),
    AH_TOPIC("applications.reject", "applications", "reject", applications,
             ah_applications_ops, reject),
    AH_TOPIC("applications.stream", "streaming", "applications", streaming,
             ah_streaming_ops, applications),
    AH_TOPIC("attachments.add_to_application", "attachments",
             "add_to_application", attachments, ah_attachments_ops,
             add_to_application),
    AH_TOPIC("attachments.add_to_candidate", "attachments", "add_to_candidate",
             attachments, ah_attachments_ops, add_to_candidate),
    AH_TOPIC("candidates.find", "candidates", "find", candidates,
             ah_candidates_ops, find),
    AH_TOPIC("candidates.get", "candidates", "get", candidates,
             ah_candidates_ops, get),
    AH_TOPIC("candidates.resume", "candidates", "resume", candidates,
             ah_candidates_ops, resume),
    AH_TOPIC("candidates.stream", "streaming", "candidates", streaming,
             ah_streaming_ops, candidates),
    AH_TOPIC("custom_fields.list", "custom_fields", "list", custom_fields,
             ah_custom_fields_ops, list),
    AH_TOPIC("custom_fields.update", "custom_fields", "update", custom_fields,
             ah_custom_fields_ops, update),
    AH_TOPIC("custom_fields.values", "custom_fields", "values", custom_fields,
             ah_custom_fields_ops, values),
    AH_TOPIC("dispositions.list", "dispositions", "list", dispositions,
             ah_dispositions_ops, list),
    AH_TOPIC("jobs.create_posting", "jobs", "create_posting", jobs,
             ah_jobs_ops, create_posting),
    AH_TOPIC("jobs.enhanced_batch", "jobs", "enhanced_batch", jobs,
             ah_jobs_ops, enhanced_batch),
    AH_TOPIC("jobs.get", "jobs", "get", jobs, ah_jobs_ops, get),
    AH_TOPIC("jobs.get_enhanced", "jobs", "get_enhanced", jobs, ah_jobs_ops,
             get_enhanced),
    AH_TOPIC("jobs.stream", "streaming", "jobs", streaming, ah_streaming_ops,
             jobs),
    AH_TOPIC("jobs.update_posting", "jobs", "update_posting", jobs,
             ah_jobs_ops, update_posting),
    AH_TOPIC("notes.add_to_application", "notes", "add_to_application", notes,
             ah_notes_ops, add_to_application),
    AH_TOPIC("notes.add_to_candidate", "notes", "add_to_candidate", notes,
             ah_notes_ops, add_to_candidate),
    AH_TOPIC("onboarding.disable", "onboarding", "disable", onboarding,
             ah_onboarding_ops, disable),
    AH_TOPIC("onboarding.enable", "onboarding", "enable", onboarding,
             ah_onboarding_ops, enable),
    AH_TOPIC("onboarding.provision", "onboarding", "provision", onboarding,
             ah_onboarding_ops, provision),
    AH_TOPIC("onboarding.request", "onboarding", "request", onboarding,
             ah_onboarding_ops, request),
    AH_TOPIC("onboarding.verify", "onboarding", "verify", onboarding,
             ah_onboarding_ops, verify),
    AH_TOPIC("postings.assign", "postings", "assign", postings,
             ah_postings_ops, assign),
    AH_TOPIC("postings.configure", "postings", "configure", postings,
             ah_postings_ops, configure),
    AH_TOPIC("postings.disconnect", "postings", "disconnect", postings,
             ah_postings_ops, disconnect),
    AH_TOPIC("postings.link", "postings", "link", postings, ah_postings_ops,
             link),
    AH_TOPIC("postings.list", "postings", "list", postings, ah_postings_ops,
             list),
    AH_TOPIC("postings.notices", "postings", "notices", postings,
             ah_postings_ops, notices),
    AH_TOPIC("postings.pending", "postings", "pending", postings,
             ah_postings_ops, pending),
    AH_TOPIC("postings.publish", "postings", "publish", postings,
             ah_postings_ops, publish),
    AH_TOPIC("postings.status", "postings", "status", postings,
             ah_postings_ops, status),
    AH_TOPIC("postings.update", "postings", "update", postings,
             ah_postings_ops, update),
    AH_TOPIC("statuses.get", "statuses", "get", statuses, ah_statuses_ops,
             get),
    AH_TOPIC("statuses.put", "statuses", "put", statuses, ah_statuses_ops,
             put),
    AH_TOPIC("statuses.query", "statuses", "query", statuses,
             ah_statuses_ops, query),
};

#define AH_NTOPICS (sizeof topics / sizeof topics[0])

/* In the descriptor's order. */
static const char *const capabilities[] = {
    "streaming", "applications", "dispositions", "jobs",
    "candidates", "notes", "attachments", "custom_fields",
    "statuses", "onboarding", "postings",
};

const ah_topic *ah_router_topic(const char *topic)
{
    if (topic == NULL)
        return NULL;
    size_t lo = 0, hi = AH_NTOPICS;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(topic, topics[mid].topic);
        if (c == 0)
            return &topics[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const ah_topic *ah_router_topics(size_t *n)
{
    if (n != NULL)
        *n = AH_NTOPICS;
    return topics;
}

ah_op_fn ah_router_resolve(const ah_plugin_descriptor *d, const ah_topic *t)
{
    if (d == NULL || t == NULL)
        return NULL;
    /* A descriptor built before the table pointer was appended ends before
     * it: reading it would run off the plugin's constant object. */
    if ((size_t)d->struct_size < t->table_offset + sizeof(void *))
        return NULL;
    const void *table;
    memcpy(&table, (const char *)d + t->table_offset, sizeof table);
    if (table == NULL)
        return NULL;
    /* Every capability table starts with its uint32_t struct_size. */
    uint32_t size;
    memcpy(&size, table, sizeof size);
    if ((size_t)size < t->slot_offset + sizeof(ah_op_fn))
        return NULL;
    ah_op_fn fn;
    memcpy(&fn, (const char *)table + t->slot_offset, sizeof fn);
    return fn;
}

/* The topics that may change something at a provider, sorted by strcmp(). */
static const char *const write_topics[] = {
    "applications.bulk_reject",
    "applications.create",
    "applications.move_to_stage",
    "applications.reject",
    "attachments.add_to_application",
    "attachments.add_to_candidate",
    "custom_fields.update",
    "jobs.create_posting",
    "jobs.update_posting",
    "notes.add_to_application",
    "notes.add_to_candidate",
    "onboarding.disable",
    "onboarding.enable",
    "onboarding.provision",
    "onboarding.request",
    "postings.assign",
    "postings.configure",
    "postings.disconnect",
    "postings.link",
    "postings.publish",
    "postings.update",
    "statuses.put",
};

bool ah_router_is_write(const char *topic)
{
    for (size_t i = 0; topic != NULL && i < sizeof write_topics / sizeof write_topics[0]; i++)
        if (strcmp(topic, write_topics[i]) == 0)
            return true;
    return false;
}

const ah_op_write *ah_router_write_decl(const ah_plugin_descriptor *d, const char *topic)
{
    if (d == NULL || topic == NULL || !AH_HAS(d, op_writes) || d->op_writes == NULL)
        return NULL;
    /* The loader refused a list longer than this (AH_LIST_MAX): the bound
     * only keeps a descriptor that skipped it from walking on. */
    for (size_t i = 0; i < 1024 && d->op_writes[i].topic != NULL; i++)
        if (strcmp(d->op_writes[i].topic, topic) == 0)
            return &d->op_writes[i];
    return NULL;
}

const char *ah_reconcile_name(ah_reconcile r)
{
    switch (r) {
    case AH_RECONCILE_LOCAL: return "local";
    case AH_RECONCILE_IDEMPOTENT: return "idempotent";
    case AH_RECONCILE_READ_BACK: return "read_back";
    case AH_RECONCILE_MARKER: return "marker";
    case AH_RECONCILE_UNDECLARED: break;
    }
    return NULL;
}

const char *const *ah_router_capabilities(size_t *n)
{
    if (n != NULL)
        *n = sizeof capabilities / sizeof capabilities[0];
    return capabilities;
}

void ah_router_coverage(const ah_plugin_descriptor *d, const char *capability,
                        int *served, int *total)
{
    int s = 0, t = 0;
    for (size_t i = 0; capability != NULL && i < AH_NTOPICS; i++) {
        if (strcmp(topics[i].capability, capability) != 0)
            continue;
        t++;
        if (ah_router_resolve(d, &topics[i]) != NULL)
            s++;
    }
    if (served != NULL)
        *served = s;
    if (total != NULL)
        *total = t;
}
