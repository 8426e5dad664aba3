/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store interface: one set of operations, two engines (SQLite in
 * core/store/sqlite/, PostgreSQL in core/store/postgresql/). Everything the host keeps lives behind it: tenants,
 * connections, unified records, sync cursors, the events outbox, the
 * integration log, named sequences, and the tables of the trust modules
 * (webhook endpoints and deliveries, idempotency keys, bulk jobs, deletion
 * flags and stage history). There is no generic statement: every query is
 * a typed operation, so that an engine is the only code that speaks SQL.
 *
 * Thread safety: every function may be called from any thread; an engine
 * serialises internally as it must. Strings passed in are borrowed; strings
 * handed out through rows are owned by the row and freed by its *_free.
 * Every function returns 0 on success and a negative AH_STORE_* code on
 * failure, unless documented otherwise; the engine logs the underlying
 * database error through the store's logger (never with secret values).
 */
#ifndef AH_STORE_H
#define AH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"

typedef struct ah_store ah_store;
struct ah_logger;

/* Distinguished results. */
#define AH_STORE_OK 0
#define AH_STORE_ERR (-1)
#define AH_STORE_NOT_FOUND (-2)
#define AH_STORE_EXISTS (-3)

typedef struct ah_tenant_row {
    int64_t id;
    char *name;
    char *key_hash; /* SHA-256 hex of the API key */
    char *created_at;
} ah_tenant_row;

typedef struct ah_connection_row {
    int64_t id;
    int64_t tenant_id;
    char *tenant;   /* tenant name */
    char *plugin;
    char *name;
    bool enabled;
    /* JSON object text: key -> value. Values of secret settings are already
     * sealed (crypto.h) by the caller: the store never sees plaintext
     * secrets. */
    char *settings;
    char *created_at;
    char *updated_at;
} ah_connection_row;

/** A record to upsert. Strings borrowed. */
typedef struct ah_record_in {
    const char *type;
    const char *remote_id;
    const char *updated_at; /* ISO-8601 UTC; may be NULL */
    const char *raw;        /* JSON text */
    const char *fields;     /* JSON text */
} ah_record_in;

/** A record's fields in the form a store keeps them, made ahead of the
 *  upsert by ops->fields_prepare (see there). */
typedef struct ah_fields_kept {
    const void *data;
    size_t len;
    bool blob; /* false: data is the fields' text as given */
} ah_fields_kept;

/** What an upsert did to one record. */
typedef enum ah_upsert_result {
    AH_REC_UNCHANGED = 0,
    AH_REC_CREATED = 1,
    AH_REC_UPDATED = 2,
} ah_upsert_result;

typedef struct ah_record_row {
    char *id; /* stable atshub id */
    int64_t connection_id;
    char *type;
    char *remote_id;
    char *updated_at;
    char *raw;
    char *fields;
    char *created_at; /* when atshub first stored it */
    char *stored_at;  /* last change */
} ah_record_row;

typedef struct ah_record_query {
    int64_t tenant_id;     /* required */
    int64_t connection_id; /* 0: all of the tenant's connections */
    const char *type;      /* required */
    const char *updated_after; /* NULL: no filter */
    const char *after_id;  /* paging cursor: the last id of the previous page */
    int limit;             /* 1..1000 */
    /* Optional equality filter on a normalised field, the same on both
     * engines: field_value equals the text of fields' member field_key,
     * which is a string's value (escapes decoded), "true" or "false" for a
     * boolean, and a number's JSON text as stored (1.50 matches "1.50",
     * not "1.5"; 1e2 "1e2", not "100"). null, an object, an array or a
     * missing member match nothing; of a repeated member the first counts.
     * Compared bytewise, or with field_nocase both sides trimmed of spaces
     * and ASCII letters folded (not é/É: no locale is used). record_prune's
     * keep_key / keep_value compare by the same text. */
    const char *field_key;
    const char *field_value;
    bool field_nocase;
    /* Also rows flagged remote_deleted_at (the provider no longer returns
     * them, seen by a full sync); false: they are left out. */
    bool include_deleted;
} ah_record_query;

typedef struct ah_log_entry {
    int64_t id;
    char *at;         /* ISO-8601 UTC with milliseconds */
    char *tenant;     /* may be NULL */
    char *source;     /* connection name or "core" */
    char *plugin;     /* may be NULL */
    char *action;     /* REQUEST | RESPONSE | ERROR | OUTBOUND ... */
    char *method;     /* may be NULL */
    char *path;       /* may be NULL */
    int status;       /* HTTP status, 0 when none */
    double duration_s; /* processing time */
    char *body;       /* redacted body text, may be NULL */
    char *correlation_id;
    /* log_add: also the exchange's REQUEST entry (same time, tenant,
     * source, plugin, method, path and correlation id; status 0, no
     * duration), its body request_body (may be NULL), stored with this
     * entry as one row: an inbound route's request and answer cost one
     * insert. log_query gives such a row as its two entries, the answer
     * first (newest first), and each entry's with_request false. */
    bool with_request;
    char *request_body;
} ah_log_entry;

typedef struct ah_log_filter {
    const char *tenant;
    const char *source;
    const char *action;
    int status; /* 0: any */
    const char *since; /* ISO-8601, inclusive; NULL: any */
    const char *until; /* ISO-8601, exclusive; NULL: any */
    int limit;         /* 0: 100 */
} ah_log_filter;

typedef struct ah_outbox_row {
    int64_t id;
    int64_t tenant_id;
    char *topic;
    char *body;
    char *created_at;
} ah_outbox_row;

/** An event waiting to be delivered to one connection's plugin. */
typedef struct ah_delivery_row {
    int64_t connection_id;
    int64_t outbox_id;
    int64_t tenant_id;
    char *topic;
    char *body;
    int attempts;   /* failed attempts so far */
    char *next_at;  /* ISO-8601 UTC: not before */
} ah_delivery_row;

/** One event to add to the outbox (outbox_add_batch). Strings and the id
 *  list are borrowed. */
typedef struct ah_outbox_in {
    const char *topic;
    const char *body;
    const int64_t *conn_ids; /* subscribers to deliver it to */
    size_t nconn;
    int64_t id; /* out: the event's outbox id (0: see outbox_add_batch) */
} ah_outbox_in;

/** A page of a list of tenants or connections. Lists are in the byte order
 *  of names (of the tenant's, then the connection's, for connections of every
 *  tenant) on both engines; a page is the rows after a key in that order. */
typedef struct ah_store_page {
    const char *after;      /* the page's rows come after this name; NULL: the first page */
    const char *after_name; /* connections of every tenant: after (tenant) and this name */
    int limit;              /* at most this many rows; 0: every one */
} ah_store_page;

typedef void (*ah_tenant_cb)(void *arg, const ah_tenant_row *row);
typedef void (*ah_connection_cb)(void *arg, const ah_connection_row *row);
typedef void (*ah_record_cb)(void *arg, const ah_record_row *row);
typedef void (*ah_log_cb)(void *arg, const ah_log_entry *row);
typedef void (*ah_outbox_cb)(void *arg, const ah_outbox_row *row);

/* --- rows of the trust tables (webhooks, idempotency, bulk jobs, stage
 * history); strings owned by the row, freed by its *_free or, for rows
 * handed to a callback, by the engine after the callback returns. ------- */

/** An outbound webhook endpoint. */
typedef struct ah_webhook_row {
    int64_t id;
    int64_t tenant_id;
    char *url;
    char *event_types; /* comma-separated patterns, "*" for all */
    char *secret;      /* sealed (crypto.h); NULL except from webhook_due */
    bool enabled;
    int64_t failures;  /* consecutive failed attempts */
    char *disabled_at; /* NULL while enabled */
    int64_t cursor;    /* the last outbox id handled */
    char *created_at;
    /* appended (issue 20) */
    char *description;     /* "" when none */
    char *previous_secret; /* sealed; NULL except from webhook_due(_one), and
                            * NULL when no rotation overlap is running */
    char *previous_until;  /* end of the rotation overlap (ISO), or NULL; as
                            * stored: the caller compares it with now */
} ah_webhook_row;

/** One line of an endpoint's delivery log (one per event tried). */
typedef struct ah_webhook_delivery_row {
    int64_t outbox_id;
    char *topic;       /* NULL when the event was pruned from the outbox */
    int64_t attempts;
    char *status;      /* "delivered" | "failed" */
    int64_t last_status; /* HTTP status of the last attempt, 0: none */
    char *last_error;  /* NULL once delivered */
    char *next_at;     /* retry time of a failed one, else NULL */
    char *delivered_at;
} ah_webhook_delivery_row;

/** The stored state of an idempotency key. */
typedef struct ah_idem_row {
    char *body_hash;  /* hash of the request that first used the key */
    int status;       /* stored HTTP status; 0: that request is still running */
    char *response;   /* stored response body; may be NULL */
    char *operation;  /* the operation of a stored 502 outcome_unknown (the
                       * write kept for settling, AH_WRITE_OUTCOME_TYPE); NULL
                       * for every other answer */
    char *created_at; /* when the key was reserved (ISO-8601, UTC) */
} ah_idem_row;

/** A bulk job. */
typedef struct ah_bulk_job_row {
    char *id;
    int64_t tenant_id;
    char *action;   /* "reject" | "stage" */
    char *params;   /* JSON object text */
    char *status;   /* "queued" | "running" | "done" | "failed" */
    int64_t total;  /* number of items */
    char *created_at;
    char *finished_at; /* NULL until done */
} ah_bulk_job_row;

/** One item of a bulk job. */
typedef struct ah_bulk_item_row {
    int idx;         /* position in the job, from 0 */
    char *record_id;
    char *status;    /* "queued" | "succeeded" | "failed" */
    char *error_code;    /* NULL unless failed */
    char *error_message; /* NULL unless failed */
    char *operation;     /* the operation of an item that failed
                          * outcome_unknown and was kept for settling; else
                          * NULL */
} ah_bulk_item_row;

/** A record as the deletion sweep sees it. */
typedef struct ah_record_mark {
    char *id;
    char *remote_id;
    char *remote_deleted_at; /* NULL: not flagged */
    /* When it was last stored (created or changed): canonical ISO time with
     * milliseconds, read from the writing process's CLOCK_REALTIME, the
     * clock of ah_now_iso (the sweep compares it with its run's start). */
    char *stored_at;
} ah_record_mark;

/** A stage transition (stage_history), or for stage_changed_since a record's
 *  latest one (record_id and changed_at only). */
typedef struct ah_stage_row {
    char *record_id;
    char *from_stage; /* NULL: none */
    char *to_stage;   /* NULL: none */
    char *changed_at;
} ah_stage_row;

typedef void (*ah_webhook_cb)(void *arg, const ah_webhook_row *row);
typedef void (*ah_webhook_delivery_cb)(void *arg, const ah_webhook_delivery_row *row);
typedef void (*ah_bulk_item_cb)(void *arg, const ah_bulk_item_row *row);
typedef void (*ah_record_mark_cb)(void *arg, const ah_record_mark *row);
typedef void (*ah_stage_cb)(void *arg, const ah_stage_row *row);

/** One entry of the change log (issue 14): what one instance changed that
 *  the others must act on. Strings valid during the callback only. */
typedef struct ah_change_row {
    int64_t id;
    const char *kind;    /* "plugin.reload", or a table name ("tenants", "connections") */
    const char *subject; /* e.g. the plugin's name; may be NULL */
    const char *detail;  /* e.g. the path it was loaded from; may be NULL */
    const char *origin;  /* the instance that made it; NULL for a table's trigger */
    const char *at;      /* canonical ISO time */
} ah_change_row;
typedef void (*ah_change_cb)(void *arg, const ah_change_row *row);

/** One registered instance (instance_list). Strings valid during the
 *  callback only. */
typedef struct ah_instance_row {
    const char *id;
    const char *version;
    const char *host;
    int64_t pid;
    const char *started_at; /* canonical ISO time */
    const char *heartbeat;  /* canonical ISO time, the database's clock */
    int64_t age_ms;         /* since the last heartbeat, the database's clock */
} ah_instance_row;
typedef void (*ah_instance_cb)(void *arg, const ah_instance_row *row);

/** One lease (lease_list). Strings valid during the callback only. */
typedef struct ah_lease_row {
    const char *name;
    const char *owner;
    int64_t token;
    int64_t expires_in_ms; /* <= 0: expired (free) */
} ah_lease_row;
typedef void (*ah_lease_cb)(void *arg, const ah_lease_row *row);

/** The engine vtable. Each engine fills one constant instance. */
typedef struct ah_store_ops {
    const char *name; /* "sqlite" */
    void (*close)(ah_store *s);
    /** Brings the schema to the newest version, one transaction per step;
     *  safe on an existing database. */
    int (*migrate)(ah_store *s);
    int (*schema_version)(ah_store *s);
    /** Cheap liveness probe (health checks): 0 when the store answers. */
    int (*ping)(ah_store *s);
    /** Changes whenever another process committed a change of tenants or
     *  connections (for reloading caches). On PostgreSQL it is the newest
     *  change_log id, so this process's own changes move it too. */
    int64_t (*data_version)(ah_store *s);

    /* tenants */
    int (*tenant_add)(ah_store *s, const char *name, const char *key_hash,
                      int64_t *id_out); /* AH_STORE_EXISTS on duplicate */
    int (*tenant_get)(ah_store *s, const char *name, ah_tenant_row *out);
    int (*tenant_by_key_hash)(ah_store *s, const char *key_hash, ah_tenant_row *out);
    /** page NULL: every tenant. */
    int (*tenant_list)(ah_store *s, const ah_store_page *page, ah_tenant_cb cb, void *arg);
    /* Removes the tenant with everything that is its: connections (and
     * their records), sequences, outbox, webhooks, idempotency records, bulk
     * jobs and its integration log, so that a tenant added later under the
     * same name starts empty. */
    int (*tenant_remove)(ah_store *s, const char *name);

    /* connections */
    int (*connection_add)(ah_store *s, int64_t tenant_id, const char *plugin,
                          const char *name, const char *settings_json,
                          int64_t *id_out);
    int (*connection_get)(ah_store *s, const char *tenant, const char *name,
                          ah_connection_row *out);
    /** tenant NULL: all tenants. page NULL: every connection (page->after
     *  is a connection's name when tenant is given). */
    int (*connection_list)(ah_store *s, const char *tenant, const ah_store_page *page,
                           ah_connection_cb cb, void *arg);
    /** Stores a connection's settings. expected_json: the settings text
     *  the caller read and built on; when the stored text is no longer
     *  that (another writer, another instance, changed it since),
     *  nothing is stored and AH_STORE_EXISTS says to read again and
     *  apply the change again. NULL: unconditional. AH_STORE_NOT_FOUND
     *  when there is no such connection. */
    int (*connection_update)(ah_store *s, int64_t id, const char *settings_json,
                             const char *expected_json);
    int (*connection_set_enabled)(ah_store *s, int64_t id, bool enabled);
    int (*connection_remove)(ah_store *s, int64_t id);

    /* records and cursors: one page and its cursor in one transaction */
    /** Upserts n records for connection_id and, when cursor_key is not NULL,
     *  sets that cursor to cursor_value, all in one transaction: either all
     *  of it is committed or none. results[i] (may be NULL) tells what
     *  happened to in[i]; ids_out[i] (may be NULL) receives a malloc'd atshub
     *  id. A record whose raw and fields are byte-identical to the stored
     *  ones is AH_REC_UNCHANGED. */
    int (*records_upsert)(ah_store *s, int64_t connection_id,
                          const ah_record_in *in, size_t n,
                          const char *cursor_key, const char *cursor_value,
                          ah_upsert_result *results, char **ids_out);
    /** Optional (NULL: the store has none; then records_upsert does it
     *  all). The form in which records_upsert keeps each of in[0..n)'s
     *  fields (SQLite: their delta against raw), made without the store's
     *  lock or a connection, so that a caller computes it on another
     *  thread than the one that writes: kept[i] is filled, pointing into
     *  the returned block (free() it after the upsert), or NULL when out
     *  of memory. */
    void *(*fields_prepare)(ah_store *s, const ah_record_in *in, size_t n,
                            ah_fields_kept *kept);
    /** Optional (NULL with fields_prepare): records_upsert with kept[i]
     *  (from fields_prepare for the same in[i]) used as in[i]'s fields. */
    int (*records_upsert_kept)(ah_store *s, int64_t connection_id,
                               const ah_record_in *in, const ah_fields_kept *kept, size_t n,
                               const char *cursor_key, const char *cursor_value,
                               ah_upsert_result *results, char **ids_out);
    int (*record_get)(ah_store *s, int64_t connection_id, const char *type,
                      const char *remote_id, ah_record_row *out);
    int (*record_get_by_id)(ah_store *s, int64_t tenant_id, const char *id,
                            ah_record_row *out);
    /** Rows in id order, at most q->limit. */
    int (*record_query)(ah_store *s, const ah_record_query *q, ah_record_cb cb, void *arg);
    int64_t (*record_count)(ah_store *s, int64_t connection_id, const char *type);
    /** *value_out is malloc'd, or NULL when unset. */
    int (*cursor_get)(ah_store *s, int64_t connection_id, const char *key, char **value_out);
    int (*cursor_set)(ah_store *s, int64_t connection_id, const char *key, const char *value);

    /* named sequences: atomically returns the next value (1, 2, ...) */
    int (*sequence_next)(ah_store *s, int64_t tenant_id, const char *name, int64_t *out);

    /* events outbox */
    int (*outbox_add)(ah_store *s, int64_t tenant_id, const char *topic,
                      const char *body, int64_t *id_out);
    /* Events not marked done, in id order. Nothing in the daemon reads
     * them this way (events go out through deliveries, webhooks and
     * outbox_after): on SQLite no index serves it, it scans the outbox. */
    int (*outbox_pending)(ah_store *s, int limit, ah_outbox_cb cb, void *arg);
    int (*outbox_done)(ah_store *s, int64_t id);

    /* integration log */
    int (*log_add)(ah_store *s, const ah_log_entry *e);
    /** Newest first. */
    int (*log_query)(ah_store *s, const ah_log_filter *f, ah_log_cb cb, void *arg);

    /* per-connection event deliveries (at least once, in order) */
    /** Adds n outbox events of one tenant and, in the same transaction,
     *  one pending delivery of each for every connection it lists (its
     *  subscribers). events[i].id receives the event's outbox id, except
     *  inside a scope on PostgreSQL, where the events are queued with the
     *  scope's next statement or COMMIT and the id stays 0. All or
     *  nothing. */
    int (*outbox_add_batch)(ah_store *s, int64_t tenant_id, ah_outbox_in *events, size_t n);
    /** The oldest pending delivery of a connection (whether due or not):
     *  deliveries of one connection are made in outbox order.
     *  AH_STORE_NOT_FOUND when none. Free with ah_delivery_row_free. */
    int (*delivery_next)(ah_store *s, int64_t conn_id, ah_delivery_row *out);
    int (*delivery_done)(ah_store *s, int64_t conn_id, int64_t outbox_id);
    /** Records a failed attempt: attempts + 1, not before next_at. */
    int (*delivery_retry)(ah_store *s, int64_t conn_id, int64_t outbox_id,
                          const char *next_at, const char *error);
    /** Enabled connections with at least one delivery due at `now` (at
     *  most max; a disabled one's deliveries wait, not due, until it is
     *  enabled again); *n receives the count. */
    int (*delivery_due)(ah_store *s, const char *now, int64_t *conn_ids, size_t max,
                        size_t *n);

    /** A scope: every operation the calling thread makes until scope_end
     *  commits in one transaction (each operation's own atomicity is kept:
     *  a failing operation undoes only its writes). Other threads' store
     *  calls wait while a scope is open, so keep scopes short and free of
     *  network I/O. Scopes nest: a scope begun inside another (or inside a
     *  group's scope) is a savepoint of its transaction. Optional: NULL when
     *  an engine has none. */
    int (*scope_begin)(ah_store *s);
    /** Ends the scope begun last: commits (commit true) or rolls back the
     *  whole scope's writes. A nested scope's commit keeps its writes in the
     *  enclosing scope, which commits or rolls them back with its own; its
     *  rollback undoes its writes only. */
    int (*scope_end)(ah_store *s, bool commit);

    /* --- appended: the trust tables (webhooks, event log, idempotency
     * keys, bulk jobs, deletions and stage history). Callbacks run after
     * the operation finished, outside the engine's lock, on rows borrowed
     * for the call; a callback may call the store again. ----------------- */

    /* events outbox, read as the event log */
    /** A tenant's events with id > after_id in id order, at most limit
     *  (1..1000; other values: 100). */
    int (*outbox_after)(ah_store *s, int64_t tenant_id, int64_t after_id, int limit,
                        ah_outbox_cb cb, void *arg);
    /** Deletes the events created before `before` (canonical ISO time) that
     *  no plugin delivery and no enabled webhook endpoint (an event after
     *  its cursor) still needs; *n_out (may be NULL) receives how many. */
    int (*outbox_prune)(ah_store *s, const char *before, int64_t *n_out);

    /* outbound webhook endpoints and their delivery log */
    /** Adds an enabled endpoint whose cursor is the newest outbox id (of any
     *  tenant), so that it gets only events published after it; due now.
     *  event_types NULL or "": "*". secret_sealed is stored as given.
     *  *id_out (may be NULL) receives its id. */
    int (*webhook_add)(ah_store *s, int64_t tenant_id, const char *url,
                       const char *event_types, const char *secret_sealed, int64_t *id_out);
    /** Endpoints in id order (tenant_id 0: every tenant); secret is NULL.
     *  A page of them: those whose id is greater than after_id (0: from the
     *  first), at most limit (0: every one). */
    int (*webhook_list)(ah_store *s, int64_t tenant_id, int64_t after_id, int limit,
                        ah_webhook_cb cb, void *arg);
    /** Enables endpoint id (failures back to 0, disabled_at cleared, due
     *  now) or disables it (disabled_at now). tenant_id 0: any tenant.
     *  AH_STORE_NOT_FOUND when there is no such endpoint (of tenant_id). */
    int (*webhook_set_enabled)(ah_store *s, int64_t tenant_id, int64_t id, bool enabled);
    /** Endpoint id's delivery log, newest event first, at most limit
     *  (1..1000; other values: 100). AH_STORE_NOT_FOUND (cb not called)
     *  when there is no such endpoint (of tenant_id, unless 0). */
    int (*webhook_deliveries)(ah_store *s, int64_t tenant_id, int64_t id, int limit,
                              ah_webhook_delivery_cb cb, void *arg);
    /** Enabled endpoints due at `now` (next_at <= now) that have events of
     *  their tenant after their cursor, in id order, WITH their sealed
     *  secret. */
    int (*webhook_due)(ah_store *s, const char *now, ah_webhook_cb cb, void *arg);
    /** Records an attempt to deliver event outbox_id to endpoint id in its
     *  delivery log (attempts + 1 on a second try): delivered (delivered_at
     *  now) when ok, else failed with http_status (0: none), error and
     *  next_at (borrowed, may be NULL). */
    int (*webhook_attempt)(ah_store *s, int64_t id, int64_t outbox_id, bool ok,
                           int http_status, const char *error, const char *next_at);
    /** Moves endpoint id's cursor to outbox_id and resets its failures.
     *  AH_STORE_NOT_FOUND when there is no such endpoint. */
    int (*webhook_advance)(ah_store *s, int64_t id, int64_t outbox_id);
    /** Records a failed delivery: failures and next_at set; with
     *  disabled_at not NULL the endpoint is also disabled at that time
     *  (NULL leaves enabled and disabled_at as they are).
     *  AH_STORE_NOT_FOUND when there is no such endpoint. */
    int (*webhook_failed)(ah_store *s, int64_t id, int64_t failures, const char *next_at,
                          const char *disabled_at);

    /* idempotency keys */
    /** In one transaction: forgets (tenant_id, key) when it was created
     *  before expired_before, then reserves it for a request of hash
     *  body_hash (status 0, created now). AH_STORE_OK: reserved, the caller
     *  runs the request; AH_STORE_EXISTS: the key was already there and
     *  *out (may be NULL; free with ah_idem_row_free) receives its state. */
    int (*idem_reserve)(ah_store *s, int64_t tenant_id, const char *key,
                        const char *body_hash, const char *expired_before, ah_idem_row *out);
    /** Stores the response (status > 0, else AH_STORE_ERR; body borrowed)
     *  of a reserved key still in progress. A completed or unknown key is
     *  left as it is (AH_STORE_OK: the outcome was already settled). */
    int (*idem_complete)(ah_store *s, int64_t tenant_id, const char *key, int status,
                         const char *response);
    /** Forgets a reserved key still in progress (its request will not be
     *  remembered); a completed or unknown key is left as it is
     *  (AH_STORE_OK). */
    int (*idem_release)(ah_store *s, int64_t tenant_id, const char *key);

    /* bulk jobs */
    /** Adds job id (status "queued", created now, total n) with one queued
     *  item per record id (idx 0..n-1), all in one transaction: the job is
     *  never seen without its items. AH_STORE_EXISTS when id is taken. */
    int (*bulk_add)(ah_store *s, const char *id, int64_t tenant_id, const char *action,
                    const char *params_json, const char *const *record_ids, size_t n);
    /** Job id of tenant_id; AH_STORE_NOT_FOUND when the tenant has no such
     *  job. Free with ah_bulk_job_row_free. */
    int (*bulk_get)(ah_store *s, int64_t tenant_id, const char *id, ah_bulk_job_row *out);
    /** The oldest job that is queued or running (of any tenant);
     *  AH_STORE_NOT_FOUND when none. Free with ah_bulk_job_row_free. */
    int (*bulk_next)(ah_store *s, ah_bulk_job_row *out);
    /** Sets job id's status; finished_at (may be NULL: unchanged) too.
     *  AH_STORE_NOT_FOUND when there is no such job. */
    int (*bulk_set_status)(ah_store *s, const char *id, const char *status,
                           const char *finished_at);
    /** Items of job id in idx order; queued_only: only those still queued. */
    int (*bulk_items)(ah_store *s, const char *id, bool queued_only, ah_bulk_item_cb cb,
                      void *arg);
    /** The first item of job id before before_idx for the same record_id,
     *  queued or not (the copy that is sent; the later ones wait for its
     *  outcome); AH_STORE_NOT_FOUND when none. Free with
     *  ah_bulk_item_row_free. */
    int (*bulk_item_prior)(ah_store *s, const char *id, const char *record_id, int before_idx,
                           ah_bulk_item_row *out);
    /** Sets the outcome of item idx of job id: status ("succeeded" |
     *  "failed") and, for a failure, its error code and message (NULL for
     *  a success). AH_STORE_NOT_FOUND when there is no such item. */
    int (*bulk_item_set)(ah_store *s, const char *id, int idx, const char *status,
                         const char *error_code, const char *error_message);

    /* remote deletions and stage history */
    /** Every record of `type` of a connection, as the deletion sweep needs
     *  it (order unspecified). */
    int (*record_marks)(ah_store *s, int64_t connection_id, const char *type,
                        ah_record_mark_cb cb, void *arg);
    /** Flags record id remote_deleted_at = deleted_at, or clears the flag
     *  (deleted_at NULL). AH_STORE_NOT_FOUND when there is no such record. */
    int (*record_mark_deleted)(ah_store *s, const char *id, const char *deleted_at);
    /** *deleted: whether record id is flagged remote_deleted_at.
     *  AH_STORE_NOT_FOUND (and false) when there is no such record. */
    int (*record_is_deleted)(ah_store *s, const char *id, bool *deleted);
    /** Adds a stage transition of record_id (of tenant_id), seen now.
     *  from/to may be NULL (no stage). AH_STORE_NOT_FOUND when there is no
     *  such record. */
    int (*stage_add)(ah_store *s, const char *record_id, int64_t tenant_id,
                     const char *from_stage, const char *to_stage);
    /** Records of tenant_id whose stage changed after `after` (canonical ISO
     *  time), oldest latest change first, at most limit: rows carry
     *  record_id and changed_at (the latest change) only. */
    int (*stage_changed_since)(ah_store *s, int64_t tenant_id, const char *after, int limit,
                               ah_stage_cb cb, void *arg);
    /** Stage transitions of record_id, oldest first. */
    int (*stage_history)(ah_store *s, const char *record_id, ah_stage_cb cb, void *arg);

    /* retention (appended) */
    /** Deletes the integration log entries written before `before`
     *  (canonical ISO time); *n_out (may be NULL) receives how many. */
    int (*log_prune)(ah_store *s, const char *before, int64_t *n_out);
    /** Deletes the idempotency keys (reserved or completed) created before
     *  `before` (canonical ISO time); *n_out (may be NULL) receives how
     *  many. */
    int (*idem_prune)(ah_store *s, const char *before, int64_t *n_out);
    /* --- appended: webhook deliveries off the ticker ------------------- */
    /** Endpoint id WITH its sealed secret, when it is enabled and due at
     *  `now` (next_at <= now): cb is called once; otherwise (removed,
     *  disabled, backing off) cb is not called and AH_STORE_OK returned.
     *  A delivery worker reads it just before its pass, so that the pass
     *  starts from the endpoint's current cursor. */
    int (*webhook_due_one)(ah_store *s, int64_t id, const char *now, ah_webhook_cb cb,
                           void *arg);
    /** Deletes delivery log lines delivered before `before` (canonical ISO
     *  time) and those whose event is no longer in the outbox (pruned past
     *  its retention); *n_out (may be NULL) receives how many. */
    int (*webhook_prune)(ah_store *s, const char *before, int64_t *n_out);

    /* --- appended: group commit. Many callers' scopes share one
     * transaction, committed later by one writer (store/committer.h), so
     * that the cost of a commit is paid once for many requests. ---------- */
    /** Opens a group scope: like scope_begin, but its writes go into the
     *  store's open group transaction (begun if none is open), and
     *  scope_end(commit) keeps them there instead of committing: they become
     *  durable only when the group transaction commits. *group_out receives
     *  the id of that transaction. Other threads' calls wait while the scope
     *  is open; a call made outside any scope while a group transaction is
     *  open commits that transaction first, so that no one else ever reads
     *  or writes inside it. Fails when the calling thread is in a scope.
     *  tenant_id: the tenant whose rows the scope writes (0: none, or
     *  not known). Where other processes write the same store (PostgreSQL,
     *  several instances), a group holds its tenants' locks (the lock
     *  that orders a tenant's events) from the scope's first statement
     *  to its COMMIT, and never waits for one while it holds any: a
     *  tenant another process's group holds makes the open group commit
     *  first (the scope gets the next group's id), and the new group
     *  waits for it holding nothing, so two groups never wait on each
     *  other for a tenant (an event of another tenant than the scope's,
     *  and writers outside groups, still take a tenant's lock when they
     *  add its events). */
    int (*group_begin)(ah_store *s, int64_t tenant_id, uint64_t *group_out);
    /** Commits the open group transaction (none open: nothing to do). The
     *  listener learns the outcome. Not from inside a scope. */
    int (*group_commit)(ah_store *s);
    /** Sets the function told, once per group transaction and in order of
     *  their ids, how it ended (ok false: rolled back, nothing of it is
     *  stored). Called with the engine's lock held: it must not call the
     *  store. NULL removes it. Set it before the first group_begin. */
    void (*group_listen)(ah_store *s, void (*ended)(void *arg, uint64_t group, bool ok),
                         void *arg);
    /* --- appended: the deletion sweep a page at a time ----------------- */
    /** Like record_marks, but at most `limit` (1..1000) records, those whose
     *  id is greater than after_id (NULL: from the first), in id order: the
     *  sweep reads a connection's records page by page, so that its memory
     *  does not grow with their number. NULL slot: the sweep falls back to
     *  record_marks. */
    int (*record_marks_after)(ah_store *s, int64_t connection_id, const char *type,
                              const char *after_id, int limit, ah_record_mark_cb cb, void *arg);
    /* --- appended: leases, so that several instances on one store never do
     * the same work twice. A lease is a named row held by one owner until
     * it expires, measured on the database's clock (never the caller's),
     * with a fencing token that grows at every change of holder: work
     * done under a lease commits only if its token still holds it
     * (lease_hold in the same scope). ---------------------------------- */
    /** Claims lease `name` for `owner` for ttl_ms from now: granted when it
     *  is free, expired, or already owner's (then renewed, same token).
     *  *token (may be NULL) receives its fencing token. AH_STORE_EXISTS
     *  when another owner holds it unexpired; then *holder (may be NULL)
     *  receives that owner (malloc'd). ttl_ms 0: expires at once. */
    int (*lease_acquire)(ah_store *s, const char *name, const char *owner, int64_t ttl_ms,
                         int64_t *token, char **holder);
    /** The fence: checks that `token` still holds lease `name` unexpired
     *  and extends it to ttl_ms from now. Inside a scope, the row stays
     *  locked until the scope ends, so the lease cannot be taken before
     *  the scope's work commits. AH_STORE_NOT_FOUND when the lease was
     *  lost (expired, taken over, or released). */
    int (*lease_hold)(ah_store *s, const char *name, int64_t token, int64_t ttl_ms);
    /** Gives lease `name` up (it expires now; its token is kept, so that
     *  tokens never repeat). AH_STORE_NOT_FOUND when `token` no longer
     *  holds it. */
    int (*lease_release)(ah_store *s, const char *name, int64_t token);
    /** Takes lease `name` over from from_owner, expired or not, for `owner`
     *  for ttl_ms: for a caller that knows from_owner is dead (a process of
     *  its own machine that no longer exists), so that a crash does not
     *  hold the work up for a whole lease. Granted only while from_owner
     *  still holds it (else AH_STORE_NOT_FOUND); the token grows. */
    int (*lease_take_over)(ah_store *s, const char *name, const char *from_owner,
                           const char *owner, int64_t ttl_ms, int64_t *token);
    /* --- appended: exactly once (issue 19) ----------------------------- */
    /** Takes back a key whose stored answer was a 502 (an outcome that was
     *  unknown) for a new try of the same request (same body hash), once
     *  that outcome has been settled as "not done": the row becomes a
     *  reservation in progress again (status 0, no answer), as after
     *  idem_reserve. AH_STORE_NOT_FOUND when no such row (another try took
     *  it first, or the answer was not a 502). */
    int (*idem_reopen)(ah_store *s, int64_t tenant_id, const char *key, const char *body_hash);
    /* --- appended: exactly once, the rest of issue 19 ------------------- */
    /** As idem_complete, and the answer's operation (the write kept for
     *  settling: a 502 outcome_unknown) is stored with it, read back as
     *  ah_idem_row.operation. operation NULL: as idem_complete. */
    int (*idem_complete_op)(ah_store *s, int64_t tenant_id, const char *key, int status,
                            const char *response, const char *operation);
    /** As bulk_item_set, with the operation of an item whose write was kept
     *  for settling (read back as ah_bulk_item_row.operation; NULL: none). */
    int (*bulk_item_set_op)(ah_store *s, const char *id, int idx, const char *status,
                            const char *error_code, const char *error_message,
                            const char *operation);
    /** Deletes the records of `type` (of every connection) whose updated_at
     *  is before `before` (canonical ISO time) and whose field `keep_key`
     *  is not `keep_value` (a record with that value is kept, whatever its
     *  age: a write whose outcome is still unknown); *n_out (may be NULL)
     *  receives how many. keep_key matches [A-Za-z0-9_]+. */
    int (*record_prune)(ah_store *s, const char *type, const char *before,
                        const char *keep_key, const char *keep_value, int64_t *n_out);
    /** Sets the outcome of every bulk item whose write `operation` was
     *  unknown (status "failed", error_code "outcome_unknown") once it has
     *  been settled: status ("succeeded" | "failed") and, for a failure, its
     *  error code and message; the operation stays. *n_out (may be NULL)
     *  receives how many items changed (0: none, or already settled). */
    int (*bulk_item_settle)(ah_store *s, const char *operation, const char *status,
                            const char *error_code, const char *error_message, int64_t *n_out);
    /* --- appended: webhook endpoints whole (issue 20) ------------------ */
    /** Changes endpoint id's url, event_types ("" or NULL-as-"*" is not
     *  accepted here: pass "*") and description; a NULL argument keeps that
     *  column. tenant_id 0: any tenant. AH_STORE_NOT_FOUND when there is no
     *  such endpoint (of tenant_id). */
    int (*webhook_update)(ah_store *s, int64_t tenant_id, int64_t id, const char *url,
                          const char *event_types, const char *description);
    /** Deletes endpoint id and its delivery log. tenant_id 0: any tenant.
     *  AH_STORE_NOT_FOUND when there is no such endpoint (of tenant_id). */
    int (*webhook_delete)(ah_store *s, int64_t tenant_id, int64_t id);
    /** Rotates endpoint id's secret: the current one becomes the previous
     *  secret, kept until previous_until (ISO; NULL: dropped at once), and
     *  secret_sealed becomes the secret. tenant_id 0: any tenant.
     *  AH_STORE_NOT_FOUND when there is no such endpoint (of tenant_id). */
    int (*webhook_rotate)(ah_store *s, int64_t tenant_id, int64_t id, const char *secret_sealed,
                          const char *previous_until);
    /* --- appended: claims (issue 14). Work that several instances share
     * (a connection's event deliveries, a webhook endpoint's pass, a bulk
     * job) is claimed as a lease named after it, many at once, without
     * waiting on one another. --------------------------------------------- */
    /** Claims, for `owner` for ttl_ms from now (the database's clock), each
     *  of the n leases names[i] that is free or expired (never held, given
     *  up, or past its expiry): tokens[i] receives its new fencing token
     *  (it grows, as at every change of holder), or 0 when the lease was
     *  not granted: held unexpired (by anyone, owner included: the work is
     *  under way), or its row is locked by another transaction at this
     *  moment (FOR UPDATE SKIP LOCKED on PostgreSQL: a claim never waits
     *  for a holder's commit). Work done under a claim commits through
     *  lease_hold in its scope (the fence, which also renews it), and is
     *  given back with lease_release. n 0: nothing to do. */
    int (*lease_claim)(ah_store *s, const char *const *names, size_t n, const char *owner,
                       int64_t ttl_ms, int64_t *tokens);
    /* --- appended: the change log and the instances (issue 14) -------- */
    /** Appends a change that other instances must act on (kind required;
     *  the others may be NULL). */
    int (*change_add)(ah_store *s, const char *kind, const char *subject, const char *detail,
                      const char *origin);
    /** Changes with id > after_id, oldest first, at most limit (1..1000). */
    int (*change_after)(ah_store *s, int64_t after_id, int limit, ah_change_cb cb, void *arg);
    /** *id_out: the newest change's id (0 when none). */
    int (*change_last)(ah_store *s, int64_t *id_out);
    /** Deletes the changes made before `before` (canonical ISO time). */
    int (*change_prune)(ah_store *s, const char *before, int64_t *n_out);
    /** Registers instance id, or renews its heartbeat (the database's
     *  clock): version, host, pid and started_at are (re)written. */
    int (*instance_beat)(ah_store *s, const char *id, const char *version, const char *host,
                         int64_t pid, const char *started_at);
    /** Instances whose last heartbeat is at most max_age_ms old (0: all),
     *  oldest start first. */
    int (*instance_list)(ah_store *s, int64_t max_age_ms, ah_instance_cb cb, void *arg);
    /** Removes instance id (a clean stop), and the registrations whose
     *  heartbeat is older than stale_ms (0: none of those). */
    int (*instance_remove)(ah_store *s, const char *id, int64_t stale_ms);
    /** Every lease, by name, with its holder and time left. */
    int (*lease_list)(ah_store *s, ah_lease_cb cb, void *arg);
    /** Deletes the leases whose name starts with `prefix` (non-empty) and
     *  that expired more than expired_ms ago; *n_out (may be NULL) receives
     *  how many. Only for names that are never used again (a bulk job's
     *  chunks): a deleted lease's next token would start over. */
    int (*lease_prune)(ah_store *s, const char *prefix, int64_t expired_ms, int64_t *n_out);
    /* --- appended: the engine's group size ------------------------------ */
    /** How long the committer (store/committer.h) lets a group grow at
     *  most, in microseconds; 0: its default (1 ms). An engine whose COMMIT
     *  costs more (PostgreSQL: a round trip and the server's fsync, with
     *  the store's lock held) may prefer larger groups. */
    long group_max_wait_us;
    /* --- appended: two sequences in one exchange ------------------------ */
    /** May be NULL (then: sequence_next of name, and of then_name when that
     *  drew 1). As that pair of calls, in order (name's row written
     *  first), in one exchange with the server: *out receives name's next
     *  value; when it is 1 and then_name is not NULL, *then_out receives
     *  then_name's next value, else 0 (then_name untouched). Fails as
     *  that pair would. What a plugin's store_batch of a title's guard and
     *  a job number (plugins/erp) costs the store's writer. */
    int (*sequence_next_then)(ah_store *s, int64_t tenant_id, const char *name,
                              const char *then_name, int64_t *out, int64_t *then_out);
    /* --- appended: a numbered record in the same exchange ---------------- */
    /** May be NULL (then: sequence_next_then, and the caller puts the
     *  record). sequence_next_then(name, then_name) and, inside a scope, in
     *  the same exchange with the server, the records_upsert of the one
     *  record make(arg, n, &in) builds for then_name drawing n, n being the
     *  number this store expects then_name to draw next (the one after the
     *  last it drew). When then_name drew n and the record was created,
     *  both stay: *put true, *res and *id_out (malloc'd) as records_upsert's
     *  would be. Otherwise (name did not draw 1, another instance drew
     *  numbers meanwhile, the store has no expectation yet, the record
     *  exists) no record is stored, the pair is drawn as
     *  sequence_next_then draws it and *put is false: the caller puts the
     *  record itself. Fails as sequence_next_then, and when the server
     *  refuses the record (its connection removed meanwhile): then
     *  neither is drawn and the scope's writes so far are undone (a
     *  group's request: back to its start, the group's other requests
     *  unharmed; a scope of its own: its commit fails). The strings make
     *  puts in `in` stay the caller's (arg's) and live until this returns. */
    int (*sequence_next_then_put)(ah_store *s, int64_t tenant_id, const char *name,
                                  const char *then_name, int64_t connection_id,
                                  int (*make)(void *arg, int64_t n, ah_record_in *in), void *arg,
                                  int64_t *out, int64_t *then_out, bool *put,
                                  ah_upsert_result *res, char **id_out);
    /* --- appended: a bulk item as it stands ----------------------------- */
    /** Item idx of job id as stored now (another instance may have run it
     *  since the caller listed it); AH_STORE_NOT_FOUND when there is none.
     *  Free with ah_bulk_item_row_free. */
    int (*bulk_item_get)(ah_store *s, const char *id, int idx, ah_bulk_item_row *out);
    /* --- appended: work held back until a group is answered ------------ */
    /** Optional (NULL: nothing to do). Called by whoever called group_commit
     *  with a listener set (store/committer.c), once it has answered that
     *  group's requests: the engine does now what it held back so that the
     *  answers would not wait for it (SQLite: integration-log rows that
     *  other threads' log_add queued while the COMMIT held the writer, which
     *  are no part of any request's acknowledged writes). */
    void (*group_answered)(ah_store *s);
    /* --- appended: commits made durable after they return -------------- */
    /** Optional (NULL: a commit is durable when it returns; PostgreSQL). An
     *  engine whose COMMIT returns once its writes are in the file, their
     *  sync to disk made later for every commit made meanwhile (SQLite's
     *  WAL, sqlite/walsync.c), gives a mark of what is committed by now
     *  (commit_mark), and makes a mark durable (durable: blocks until every
     *  commit up to it is on disk, syncing or waiting for the sync under
     *  way; false when it cannot be: nothing up to it may be acknowledged.
     *  SQLite never answers false: a failed sync stops the process,
     *  sqlite/walsync.c). Its calls from any thread wait for that themselves
     *  before they return, except on a thread that called
     *  defer_durable(true) (until defer_durable(false)): the committer's
     *  (store/committer.c), which calls durable before it answers
     *  anything; a sync run's (engine/sync.c), until its end. All three or
     *  none. */
    uint64_t (*commit_mark)(ah_store *s);
    bool (*durable)(ah_store *s, uint64_t mark);
    void (*defer_durable)(ah_store *s, bool defer);
    /* --- appended: bulk jobs shared fairly, capped and pruned ----------- */
    /** The oldest job that is queued or running of the tenant with the
     *  smallest id above after_tenant_id that has one (the bulk worker's
     *  round robin across tenants: the caller wraps around with 0);
     *  AH_STORE_NOT_FOUND when none. Free with ah_bulk_job_row_free. */
    int (*bulk_next_after)(ah_store *s, int64_t after_tenant_id, ah_bulk_job_row *out);
    /** Up to `limit` items of job id still queued whose idx is from_idx or
     *  more, in idx order (the worker reads a job a slice at a time). */
    int (*bulk_items_queued_from)(ah_store *s, const char *id, int from_idx, int limit,
                                  ah_bulk_item_cb cb, void *arg);
    /** How many items of tenant_id's jobs are still to run: every item of
     *  its queued jobs, and the items still queued of its running ones. */
    int (*bulk_queued_count)(ah_store *s, int64_t tenant_id, int64_t *out);
    /** Deletes at most `limit` jobs (with their items) that finished
     *  ("done" or "failed") before `before` (canonical ISO time; a failed
     *  job without finished_at counts from its created_at); *n_out (may be
     *  NULL) receives how many. */
    int (*bulk_prune)(ah_store *s, const char *before, int limit, int64_t *n_out);
} ah_store_ops;

struct ah_store {
    const ah_store_ops *ops;
    const struct ah_logger *lg; /* may be NULL; set by the opener */
};

/** Opens a store by URL: "sqlite:PATH" (creates the file and its folder) or
 *  "postgresql://..." / "postgres://..." (a libpq URI; the password may come
 *  from the URL, PGPASSWORD or PGPASSFILE). Does not migrate. On failure
 *  returns NULL and writes the reason, which never holds a password. */
ah_store *ah_store_open(const char *url, const struct ah_logger *lg, char *err,
                        size_t errlen);
/** Opens the SQLite engine on `path`. */
ah_store *ah_store_sqlite_open(const char *path, const struct ah_logger *lg,
                               char *err, size_t errlen);
/** Opens the PostgreSQL engine on a libpq URI (postgresql://...). */
ah_store *ah_store_pg_open(const char *url, const struct ah_logger *lg, char *err,
                           size_t errlen);

void ah_tenant_row_free(ah_tenant_row *r);
void ah_connection_row_free(ah_connection_row *r);
void ah_record_row_free(ah_record_row *r);
void ah_delivery_row_free(ah_delivery_row *r);
void ah_idem_row_free(ah_idem_row *r);
void ah_bulk_job_row_free(ah_bulk_job_row *r);
void ah_bulk_item_row_free(ah_bulk_item_row *r);
void ah_log_entry_free(ah_log_entry *e);
void ah_outbox_row_free(ah_outbox_row *r);
/** Wipes the secrets before freeing them. */
void ah_webhook_row_free(ah_webhook_row *r);
void ah_webhook_delivery_row_free(ah_webhook_delivery_row *r);
void ah_record_mark_free(ah_record_mark *r);
void ah_stage_row_free(ah_stage_row *r);

/* For the engines: what both check of a record_query before either builds
 * its statement. Its filters as bits (an engine prepares one statement per
 * combination used), the cut-off in canonical form, the page's size. */
enum {
    AH_RQ_CONN = 1,
    AH_RQ_UPDATED = 2,
    AH_RQ_AFTER = 4,
    AH_RQ_FIELD = 8,
    AH_RQ_NOCASE = 16,
    AH_RQ_DELETED = 32,
    AH_RQ_VARIANTS = 64
};
typedef struct ah_record_query_plan {
    unsigned mask;          /* AH_RQ_* */
    char updated_after[32]; /* canonical (ah_iso_normalize), with AH_RQ_UPDATED */
    int limit;              /* 1..1000 (100 when not given) */
} ah_record_query_plan;
/** AH_STORE_OK and *out, or AH_STORE_ERR (said in the log) when the query
 *  names no type, its updated_after is no ISO-8601 time or its field
 *  filter is not a valid key with a value. */
int ah_record_query_plan_make(const ah_record_query *qy, const struct ah_logger *lg,
                              ah_record_query_plan *out);
/** A normalised field's key as filters may name it: [A-Za-z0-9_]{1,128}
 *  (it goes into a JSON path). */
bool ah_store_field_key_valid(const char *k);


/* ------------------------------------------------------------------------ */
/* Additions (appended after the first version of this header).             */

/** Normalises an ISO-8601 date or date-time into the store's canonical UTC
 *  form "YYYY-MM-DDTHH:MM:SS.mmmZ", the form every timestamp the store
 *  writes has (so that they compare as strings). Accepts "YYYY-MM-DD"
 *  (midnight UTC), "YYYY-MM-DDTHH:MM[:SS[.fff...]]" with 'T' or a space,
 *  followed by "Z", "+HH:MM", "-HH:MM", "+HHMM" or nothing (UTC). Returns 0,
 *  or -1 (out untouched) when `in` is not such a time. Thread-safe. */
int ah_iso_normalize(const char *in, char out[32]);

/* For the engines' prunes of a table whose ids and times rise together
 * (the outbox): the first id at or past `cutoff` (canonical ISO time),
 * found by bisection between lo (the smallest id) and hi (the largest + 1)
 * in a few look-ups however many rows are due. seek(arg, from, &id, at)
 * gives the first row with an id >= from (id 0 when there is none) and its
 * time; it returns AH_STORE_OK or an error, which ends the search. */
typedef int (*ah_store_seek_fn)(void *arg, int64_t from, int64_t *id, char at[32]);
int ah_store_time_bound(int64_t lo, int64_t hi, const char *cutoff, ah_store_seek_fn seek,
                        void *arg, int64_t *bound);

/* For the engines' log_query: gives the entries of n integration-log rows
 * (newest first, as read with the filter's tenant, source, time bounds and
 * its action matching the row's action or, for a row with_request, also
 * "REQUEST") to cb, newest first, each row's answer then its REQUEST entry,
 * those the filter's action and status select, at most limit of them.
 * Entry ids: 2 x the row's id + 1 for its own entry, 2 x the row's id for
 * its REQUEST entry (unique, and in the order the entries were written). */
void ah_log_rows_expand(ah_log_entry *rows, size_t n, const ah_log_filter *f, int limit,
                        ah_log_cb cb, void *arg);

/** The newest schema version the SQLite engine knows (its number of
 *  migration steps). */
int ah_store_sqlite_latest_version(void);

/** TEST HOOK, never used by the daemon: applies the SQLite engine's
 *  migration steps up to `version` only (1 = the first schema), so that a
 *  test can build an "old" database and then migrate it to the newest.
 *  AH_STORE_ERR when `s` is not a SQLite store or version is out of range. */
int ah_store_sqlite_migrate_to(ah_store *s, int version);

/** TEST HOOK, never used by the daemon: makes the NEXT records_upsert on this
 *  SQLite store fail (AH_STORE_ERR, transaction rolled back) after it has
 *  written n records of the page (n == page size: fails just before the
 *  cursor is written; n > page size: that call does not fail). One-shot:
 *  the next call consumes it either way; a negative n cancels it. Ignored
 *  when `s` is not a SQLite store. */
void ah_store_sqlite_fail_after(ah_store *s, int n);
/** TEST HOOK: the next scope_begin of SQLite store s fails, as one whose
 *  BEGIN IMMEDIATE met a busy database past its timeout (ignored for
 *  another engine). */
void ah_store_sqlite_fail_scope(ah_store *s);

/** What the SQLite engine's checkpointer has seen (its WAL hook and its
 *  thread): frames in the WAL at the last commit; frames the last pass
 *  copied when it copied them all (else -1); the WAL's length in frames at
 *  which a commit wakes the checkpointer next, and at which a writer waits
 *  for a pass next (the WAL's bound); passes finished; restarts of the WAL
 *  from its beginning; writers' waits for a pass. */
typedef struct ah_store_sqlite_ckpt {
    int frames, copied, next_at, catchup_at;
    unsigned long passes, restarts, catchups;
} ah_store_sqlite_ckpt;

/** TEST HOOK, never used by the daemon: the checkpointer's counters of a
 *  SQLite store in WAL mode; AH_STORE_ERR for any other store. */
int ah_store_sqlite_ckpt_stats(ah_store *s, ah_store_sqlite_ckpt *out);

/** The SQLite engine's syncs of its WAL (sqlite/walsync.c): commits of the
 *  writer connection so far; writes made to the WAL so far and those the
 *  syncs covered; fdatasync calls made; threads waiting in one for later
 *  writes. */
typedef struct ah_store_sqlite_sync {
    uint64_t commits, written, synced;
    unsigned long syncs, waiting;
} ah_store_sqlite_sync;

/** TEST HOOKS, never used by the daemon, for a SQLite store whose WAL syncs
 *  are taken off its commits (AH_STORE_ERR for any other): the counters;
 *  syncs held back (hold true) until released; the next n syncs failing
 *  as a failing disk's (EIO), which stops the process (exit status 74). */
int ah_store_sqlite_sync_stats(ah_store *s, ah_store_sqlite_sync *out);
int ah_store_sqlite_sync_hold(ah_store *s, bool hold);
int ah_store_sqlite_sync_fail(ah_store *s, int n);

/** Copies a store URL into out (always NUL-terminated) with any password
 *  replaced by "***": the user-info password of a postgresql:// URL and a
 *  password=... query parameter. What every message shows of a URL. */
void ah_store_url_scrub(const char *url, char *out, size_t outlen);

/** The newest schema version the PostgreSQL engine knows. */
int ah_store_pg_latest_version(void);

/** TEST HOOK: as ah_store_sqlite_migrate_to, for a PostgreSQL store. */
int ah_store_pg_migrate_to(ah_store *s, int version);

/** TEST HOOK: as ah_store_sqlite_fail_after, for a PostgreSQL store (ignored
 *  when `s` is not one). */
void ah_store_pg_fail_after(ah_store *s, int n);

/** TEST HOOK: the exchanges a PostgreSQL store has had with its server
 *  (each a round trip: a statement, a pipeline, a COMMIT) since it was
 *  opened; -1 when `s` is not one. */
int64_t ah_store_pg_round_trips(ah_store *s);

/** TEST HOOKS, never used by the daemon: create, rename or drop (forcing
 *  its sessions off) database `name` ([a-z_][a-z0-9_]*) on the server that
 *  server_url (a postgresql:// URL of any database of it, with the rights
 *  to) reaches. create makes an empty UTF-8 database when `template` is
 *  NULL, else a copy of database `template` (which nobody may be connected
 *  to), and writes the URL of the new database into url_out. */
int ah_store_pg_create_database(const char *server_url, const char *name, const char *template,
                                char *url_out, size_t url_len, char *err, size_t errlen);
int ah_store_pg_rename_database(const char *server_url, const char *from, const char *to,
                                char *err, size_t errlen);
int ah_store_pg_drop_database(const char *server_url, const char *name);

#endif
