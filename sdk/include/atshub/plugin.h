/* SPDX-License-Identifier: Apache-2.0 */
/*
 * atshub plugin SDK: the whole contract between the host and a provider plugin.
 *
 * A plugin is a shared object that exports exactly one symbol, AH_ENTRY_SYMBOL
 * (use AH_PLUGIN_ENTRY to define it). The host dlopen()s the file with
 * RTLD_NOW | RTLD_LOCAL, looks the symbol up, calls it with the host API table
 * and reads the constant descriptor it returns. Before it calls anything else
 * it checks the descriptor's ABI: the major must equal AH_ABI_MAJOR of the
 * host, and the minor the plugin NEEDS (descriptor member needs_abi_minor;
 * a 1.0 descriptor, too short to have it, needs 1.0) must not be newer
 * than the host's. A plugin built with a
 * newer SDK that needs nothing newer than the host speaks still loads.
 *
 * Growing the ABI: every struct below starts with `struct_size` (set it with
 * sizeof). New members are only ever appended, with a "@since 1.N" note; a
 * reader checks AH_HAS(ptr, member) before touching a member that may be newer
 * than the peer that filled the struct. Removing or reordering a member is a
 * major version change.
 *
 * Threads: the host calls a plugin from its worker threads. Calls for one
 * connection are serialised (never two at once for the same connection);
 * calls for different connections run concurrently. A plugin therefore keeps
 * its mutable state in the per-connection context made by `open`, never in
 * globals, and never starts threads, opens files or links libcurl: everything
 * that reaches the world goes through the host API.
 *
 * JSON: bodies are cJSON trees (Debian's libcjson). A body handed to a plugin
 * is borrowed for the duration of the call; a reply or event body a plugin
 * hands to the host is transferred (the host frees it).
 */
#ifndef AH_PLUGIN_H
#define AH_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Versions                                                                 */
/* ------------------------------------------------------------------------ */

#define AH_ABI_MAJOR 1
/* 1.0 was the first contract (commit ee915d2); everything appended since
 * says "@since 1.1", "@since 1.2" or "@since 1.3". A plugin that uses a 1.x member
 * without checking AH_HAS (or host->abi_minor) declares needs_abi_minor =
 * x in its descriptor. */
#define AH_ABI_MINOR 4

#define AH_STR_(x) #x
#define AH_STR(x) AH_STR_(x)
#define AH_CAT_(a, b) a##b
#define AH_CAT(a, b) AH_CAT_(a, b)

/** Name of the one exported symbol; it carries the ABI major. */
#define AH_ENTRY_NAME AH_CAT(atshub_plugin_entry_v, AH_ABI_MAJOR)
#define AH_ENTRY_SYMBOL "atshub_plugin_entry_v" AH_STR(AH_ABI_MAJOR)

/** True when the struct at `p` (which starts with struct_size) is large
 *  enough to contain `member`. Use before reading a member that was appended
 *  after the peer that filled the struct was built. */
#define AH_HAS(p, member)                                                      \
    ((p) != NULL &&                                                            \
     (size_t)(p)->struct_size >=                                               \
         offsetof(__typeof__(*(p)), member) + sizeof((p)->member))

#if defined(__GNUC__)
#define AH_EXPORT __attribute__((visibility("default")))
#define AH_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define AH_EXPORT
#define AH_PRINTF(fmt, args)
#endif

/* ------------------------------------------------------------------------ */
/* Results and errors                                                       */
/* ------------------------------------------------------------------------ */

/** What every plugin callback returns. On AH_ERR the callback has described
 *  the failure with ah_host_api.fail(); if it did not, the host reports
 *  `plugin_error`. */
typedef enum ah_result {
    AH_OK = 0,
    AH_ERR = -1,
} ah_result;

/* Stable error codes shared by the host and plugins. Plugins may add their
 * own (lower_snake_case); these are the ones the host itself produces. */
#define AH_E_UNSUPPORTED "unsupported_capability" /* HTTP 501 */
#define AH_E_INVALID "invalid_request"            /* HTTP 400 */
#define AH_E_NOT_FOUND "not_found"                /* HTTP 404 */
#define AH_E_CONFLICT "conflict"                  /* HTTP 409 */
#define AH_E_UPSTREAM "upstream_error"            /* HTTP 502 */
#define AH_E_UNAVAILABLE "upstream_unavailable"   /* HTTP 503 */
#define AH_E_TIMEOUT "timeout"                    /* HTTP 504 */
#define AH_E_INTERNAL "internal_error"            /* HTTP 500 */
#define AH_E_PLUGIN "plugin_error"                /* HTTP 500 */
/** @since 1.1: a write was sent and the provider may or may not have carried
 *  it out (see ah_http_outcome). The host answers it for a request flagged
 *  AH_HTTP_NOT_IDEMPOTENT whose outcome is unknown; a plugin that reconciles
 *  and still cannot tell uses it too. Never settled by sending again. */
#define AH_E_OUTCOME_UNKNOWN "outcome_unknown"    /* HTTP 502 */

/* ------------------------------------------------------------------------ */
/* Opaque host objects                                                      */
/* ------------------------------------------------------------------------ */

typedef struct ah_host_api ah_host_api;
/** A connection as the host sees it: one provider enabled for one tenant.
 *  Owned by the host; valid for the duration of the callback it is passed to. */
typedef struct ah_conn ah_conn;
/** One inbound HTTP request on a plugin route. Owned by the host. */
typedef struct ah_http_exchange ah_http_exchange;

/* ------------------------------------------------------------------------ */
/* The call context handed to every callback                                */
/* ------------------------------------------------------------------------ */

/**
 * Everything a callback needs to know about the call it serves. Filled by
 * the host, read-only for the plugin, valid until the callback returns.
 */
typedef struct ah_call {
    uint32_t struct_size;
    const ah_host_api *host;  /**< the host API (same table as at init) */
    void *plugin_state;       /**< what init() stored, or NULL */
    void *conn_ctx;           /**< what open() stored, or NULL */
    ah_conn *conn;            /**< the connection; NULL in init/fini */
    const char *tenant;       /**< tenant name; NULL in init/fini */
    const char *connection;   /**< connection name; NULL in init/fini */
    const char *topic;        /**< bus topic being served, or NULL */
    const char *correlation_id; /**< request id, for log lines */
} ah_call;

/* ------------------------------------------------------------------------ */
/* Connection settings, declared as data                                    */
/* ------------------------------------------------------------------------ */

typedef enum ah_setting_type {
    AH_SET_STRING = 1,
    AH_SET_INT = 2,
    AH_SET_BOOL = 3, /* true/false, yes/no, on/off, 1/0 */
    AH_SET_URL = 4,  /* http:// or https:// URL */
    AH_SET_LIST = 5, /* comma-separated list */
} ah_setting_type;

enum {
    AH_SETTING_REQUIRED = 1u << 0, /**< must be set for the connection to open */
    AH_SETTING_SECRET = 1u << 1,   /**< encrypted at rest, never printed */
    AH_SETTING_GENERATED = 1u << 2, /**< the host generates a random value when
                                        the connection is created and prints it
                                        once (implies SECRET) */
    AH_SETTING_HASHED = 1u << 3, /**< only a SHA-256 hash is kept; readable by
                                      the plugin only through conn_by_secret()
                                      (implies SECRET) */
};

/** One connection setting. A plugin declares a constant array of these,
 *  terminated by an entry whose key is NULL. The host validates a
 *  connection's settings against it, fills defaults and prints it for
 *  `atshub plugins --settings NAME`. */
typedef struct ah_setting_spec {
    const char *key;           /**< lower_snake_case */
    ah_setting_type type;
    const char *default_value; /**< NULL: no default */
    unsigned flags;            /**< AH_SETTING_* */
    const char *help;          /**< one line for operators */
} ah_setting_spec;

/* ------------------------------------------------------------------------ */
/* Capability tables                                                        */
/* ------------------------------------------------------------------------ */

/**
 * Every capability operation has this shape. `body` is the request body
 * (borrowed, never NULL: an empty object when the caller sent none). On
 * success the plugin stores a new JSON value in *reply (transferred to the
 * host; NULL means `{}`) and returns AH_OK. On failure it calls
 * call->host->fail() and returns AH_ERR.
 * Runs on a host worker thread; calls for one connection are serialised.
 */
typedef ah_result (*ah_op_fn)(ah_call *call, const cJSON *body, cJSON **reply);

/** Streaming: topics jobs.stream, applications.stream, candidates.stream.
 *  Body: {"updated_after": "ISO-8601 UTC" | absent, "cursor": string | absent,
 *  ...type-specific filters}. The plugin fetches one page, hands each record
 *  to host->emit_record() and replies {"next_cursor": string|null}. A null
 *  next_cursor ends the stream. */
typedef struct ah_streaming_ops {
    uint32_t struct_size;
    ah_op_fn jobs;         /**< jobs.stream; filter "statuses": [..] */
    ah_op_fn applications; /**< applications.stream; filter "job_ids": [..] */
    ah_op_fn candidates;   /**< candidates.stream */
    /** Hours the sync engine steps its cursor back so that records stamped
     *  in a provider's local time are not missed (ERecruit: 2). */
    uint32_t backfill_hours;
} ah_streaming_ops;

typedef struct ah_applications_ops {
    uint32_t struct_size;
    ah_op_fn move_to_stage; /**< applications.move_to_stage */
    ah_op_fn reject;        /**< applications.reject */
    ah_op_fn bulk_reject;   /**< applications.bulk_reject */
    ah_op_fn create;        /**< applications.create */
    ah_op_fn list_stages;   /**< applications.list_stages */
} ah_applications_ops;

typedef struct ah_dispositions_ops {
    uint32_t struct_size;
    ah_op_fn list; /**< dispositions.list */
} ah_dispositions_ops;

typedef struct ah_jobs_ops {
    uint32_t struct_size;
    ah_op_fn get;            /**< jobs.get */
    ah_op_fn get_enhanced;   /**< jobs.get_enhanced */
    ah_op_fn enhanced_batch; /**< jobs.enhanced_batch */
    ah_op_fn create_posting; /**< jobs.create_posting */
    ah_op_fn update_posting; /**< jobs.update_posting */
} ah_jobs_ops;

typedef struct ah_candidates_ops {
    uint32_t struct_size;
    ah_op_fn get;    /**< candidates.get */
    ah_op_fn find;   /**< candidates.find */
    ah_op_fn resume; /**< candidates.resume */
} ah_candidates_ops;

typedef struct ah_notes_ops {
    uint32_t struct_size;
    ah_op_fn add_to_application; /**< notes.add_to_application */
    ah_op_fn add_to_candidate;   /**< notes.add_to_candidate */
} ah_notes_ops;

typedef struct ah_attachments_ops {
    uint32_t struct_size;
    ah_op_fn add_to_application; /**< attachments.add_to_application */
    ah_op_fn add_to_candidate;   /**< attachments.add_to_candidate */
} ah_attachments_ops;

/** Custom fields; every body carries "entity": application|candidate|job. */
typedef struct ah_custom_fields_ops {
    uint32_t struct_size;
    ah_op_fn list;   /**< custom_fields.list: definitions */
    ah_op_fn values; /**< custom_fields.values */
    ah_op_fn update; /**< custom_fields.update */
} ah_custom_fields_ops;

/** CareerBuilder-style candidate statuses. */
typedef struct ah_statuses_ops {
    uint32_t struct_size;
    ah_op_fn put;   /**< statuses.put */
    ah_op_fn get;   /**< statuses.get */
    ah_op_fn query; /**< statuses.query */
} ah_statuses_ops;

/** LinkedIn-style customer onboarding. */
typedef struct ah_onboarding_ops {
    uint32_t struct_size;
    ah_op_fn provision; /**< onboarding.provision */
    ah_op_fn request;   /**< onboarding.request */
    ah_op_fn enable;    /**< onboarding.enable */
    ah_op_fn verify;    /**< onboarding.verify */
    ah_op_fn disable;   /**< onboarding.disable */
} ah_onboarding_ops;

/** Job-board postings (TopCV). */
typedef struct ah_postings_ops {
    uint32_t struct_size;
    ah_op_fn publish; /**< postings.publish */
    ah_op_fn update;  /**< postings.update */
    ah_op_fn link;    /**< postings.link */
    ah_op_fn list;    /**< postings.list */
    /* @since 1.1 (appended; the host checks AH_HAS(table, slot)): the
     * job-board connection's life cycle and inbox, for operators and
     * products. */
    ah_op_fn configure;  /**< postings.configure: verify and save credentials */
    ah_op_fn disconnect; /**< postings.disconnect: forget credentials */
    ah_op_fn status;     /**< postings.status: state and webhook URL */
    ah_op_fn notices;    /**< postings.notices: notifications received */
    ah_op_fn pending;    /**< postings.pending: candidates with no job */
    ah_op_fn assign;     /**< postings.assign: pending candidate to a job */
} ah_postings_ops;

/* ------------------------------------------------------------------------ */
/* Inbound routes and event subscriptions                                   */
/* ------------------------------------------------------------------------ */

/**
 * Handler of an inbound HTTP route a plugin declares. `call->conn` is NULL
 * unless the route has AH_ROUTE_CONN_TOKEN (then it is the connection the
 * token in the path names, already checked to be enabled). The handler reads
 * the request and answers through the host API (http_* functions); it must
 * answer exactly once. Runs on one of the host's worker threads (the HTTP
 * server thread serves other requests meanwhile), or on the HTTP server
 * thread itself when the operator sets [http] plugin_routes = inline.
 */
typedef ah_result (*ah_route_fn)(ah_call *call, ah_http_exchange *ex);

enum {
    /** The path ends in "{token}": the host resolves the token (the
     *  connection's `webhook_token` setting, HASHED or sealed) to a
     *  connection. */
    AH_ROUTE_CONN_TOKEN = 1u << 0,
    /** The path is a prefix: every path under it is served. */
    AH_ROUTE_PREFIX = 1u << 1,
    /** @since 1.1: everything the handler writes to the store (records,
     *  sequences, events) and the host's integration-log entries for the
     *  call commit together, and the handler's answer is sent only once they
     *  are committed (the daemon commits many such requests in one
     *  transaction: group commit). For handlers that make no outbound HTTP
     *  calls and wait on nothing: from the handler's first store call until
     *  it returns, other writers wait. */
    AH_ROUTE_ATOMIC = 1u << 2,
};

typedef struct ah_route {
    const char *method; /**< "GET", "POST", ... */
    const char *path;   /**< absolute path, e.g. "/recruitment/integration/erp/create-job/" */
    ah_route_fn handler;
    unsigned flags;     /**< AH_ROUTE_* */
    const char *action; /**< name recorded in the integration log */
} ah_route;

/** Called for every event whose topic matches the subscription, once per
 *  connection of this plugin that belongs to the event's tenant (and is
 *  enabled), with that connection's call context. `body` is borrowed.
 *  Return AH_OK when the event is handled. Return AH_ERR (after
 *  host->fail()) when it could not be handled now — for example the
 *  provider is down: the host then keeps the event for this connection and
 *  delivers it again later, in order (events for one connection are never
 *  delivered out of order: later ones wait behind it). */
typedef ah_result (*ah_event_fn)(ah_call *call, const char *topic, const cJSON *body);

typedef struct ah_subscription {
    /** "event.application.stage_changed", or a prefix ending in ".*" such as
     *  "event.application.*". */
    const char *pattern;
    ah_event_fn handler;
} ah_subscription;

/* ------------------------------------------------------------------------ */
/* Operation fields, declared as data (@since 1.1)                          */
/* ------------------------------------------------------------------------ */

/** The JSON type a request field must have. */
typedef enum ah_field_type {
    AH_FIELD_STRING = 1,  /**< a string */
    AH_FIELD_INTEGER = 2, /**< a number without a fraction (|n| <= 2^53) */
    AH_FIELD_NUMBER = 3,  /**< any number */
    AH_FIELD_BOOLEAN = 4, /**< true or false */
    AH_FIELD_ID = 5,      /**< a provider id: a non-empty string or an integer */
    AH_FIELD_OBJECT = 6,  /**< an object; its members are checked against
                               `fields` when that is not NULL, else free */
    AH_FIELD_STRINGS = 7, /**< an array of strings */
    AH_FIELD_IDS = 8,     /**< an array of ids (AH_FIELD_ID each) */
    AH_FIELD_OBJECTS = 9, /**< an array of objects, each checked against
                               `fields` (NULL: free objects) */
    AH_FIELD_ANY = 10,    /**< any JSON value (the plugin checks it) */
} ah_field_type;

enum {
    /** The field must be present (and not null). */
    AH_FIELD_REQUIRED = 1u << 0,
};

/**
 * One field of an operation's request body. A plugin declares a constant
 * array of these per operation, terminated by an entry whose name is NULL.
 * Before the plugin runs, the host answers `invalid_request` (HTTP 400),
 * naming the field, when the body has a member the table does not list, lacks
 * a REQUIRED one or has one of the wrong type or outside its limits; it
 * checks the members of OBJECT and OBJECTS fields against `fields` the same
 * way. A null member counts as absent. The same table is printed by
 * `atshub plugins --ops NAME` and generates the OpenAPI description.
 * Limits of 0 mean "none"; the plugin may still check more (formats,
 * cross-field rules).
 */
typedef struct ah_field_spec {
    const char *name;   /**< the member's name, exactly as the plugin reads it */
    ah_field_type type;
    unsigned flags;     /**< AH_FIELD_* */
    /** STRING and ID strings: at least this many characters (UTF-8 code
     *  points); arrays: at least this many items; OBJECT: members. */
    uint32_t min_size;
    /** STRING and ID strings: at most this many characters; arrays: at most
     *  this many items; OBJECT: members. */
    uint32_t max_size;
    /** STRINGS and IDS: at most this many characters per item. */
    uint32_t max_item;
    /** INTEGER and NUMBER: the inclusive range, checked when min < max. */
    double min, max;
    /** STRING: the values allowed, separated by '|' ("html|text"); NULL: any. */
    const char *one_of;
    /** OBJECT and OBJECTS: the members of the object(s), terminated by
     *  {NULL}; NULL: not checked. */
    const struct ah_field_spec *fields;
    const char *help; /**< one line for the product's developers */
} ah_field_spec;

/** The fields of one bus topic a plugin serves. A plugin lists these in
 *  ah_plugin_descriptor.op_fields, terminated by {NULL}, each topic once.
 *  A topic served but not listed is not validated by the host (the plugin
 *  checks its body). Constant data with static storage, like the
 *  descriptor: the host reads it from any thread while the plugin is
 *  loaded, and refuses to load a plugin whose tables name a topic it does
 *  not serve, declare a field twice or use an unknown type. */
typedef struct ah_op_fields {
    const char *topic;           /**< "onboarding.enable" */
    const ah_field_spec *fields; /**< terminated by {NULL}; never NULL */
} ah_op_fields;

/* ------------------------------------------------------------------------ */
/* Writes declare how they reconcile (@since 1.1)                           */
/* ------------------------------------------------------------------------ */

/** How a write operation settles an unknown outcome (a write sent, then its
 *  answer lost: see ah_http_outcome) without sending it again. */
typedef enum ah_reconcile {
    /** Nothing declared. `atshub plugin check` fails a plugin that serves a
     *  write topic with this (or with no entry at all). */
    AH_RECONCILE_UNDECLARED = 0,
    /** The operation changes nothing at the provider: it writes atshub's
     *  store only (or only reads), so there is nothing to reconcile. */
    AH_RECONCILE_LOCAL = 1,
    /** Sending it again has no further effect at the provider (a pure set
     *  the provider neither counts nor records as history): the plugin may
     *  leave its requests unflagged and the host may repeat them. */
    AH_RECONCILE_IDEMPOTENT = 2,
    /** Flagged AH_HTTP_NOT_IDEMPOTENT; after an unknown outcome the plugin
     *  reads the state the write sets back from the provider (the stage of
     *  an application, a stored status, a PUT's whole object) and answers
     *  done when it is there, "not done, safe to send again" (503) when an
     *  unknown outcome left it unchanged, AH_E_OUTCOME_UNKNOWN when the
     *  provider cannot be read. */
    AH_RECONCILE_READ_BACK = 3,
    /** Flagged AH_HTTP_NOT_IDEMPOTENT; the write carries a marker the plugin
     *  chose (a reference, an external id) and after an unknown outcome the
     *  plugin looks the provider's objects up by it: found is done, absent
     *  after an unknown outcome is not done, unreadable is
     *  AH_E_OUTCOME_UNKNOWN. For creations (a posting, a note, a file). */
    AH_RECONCILE_MARKER = 4,
} ah_reconcile;

/** One write a plugin performs and how it reconciles. A plugin lists these
 *  in ah_plugin_descriptor.op_writes, terminated by {NULL}. */
typedef struct ah_op_write {
    /** A bus topic the plugin serves ("notes.add_to_application"), or the
     *  pattern of one of its event subscriptions whose handler writes to
     *  the provider ("event.application.*"). */
    const char *topic;
    ah_reconcile reconcile; /**< how an unknown outcome is settled */
    /** One line for operators and `atshub plugin check`: what is read
     *  back or looked up ("the note whose external_ref atshub sent"). */
    const char *how;
    /** Optional (bus topics only): settles, later, a call of this write that
     *  answered AH_E_OUTCOME_UNKNOWN because the provider could not be read
     *  back then. The host keeps such calls and, on the connection's next
     *  sync, calls this with the same request body and the same
     *  call->correlation_id as the original call (derive a marker from the
     *  correlation id to find the write again). It never sends the write:
     *  it reads the provider back and either replies what the write would
     *  have replied (AH_OK: done), or fails AH_E_UNAVAILABLE (the provider
     *  certainly did not act) or AH_E_OUTCOME_UNKNOWN (still cannot tell:
     *  tried again on the next sync). The request body is the original one
     *  without its "data_base64" member (files are not kept). */
    ah_op_fn settle;
} ah_op_write;

/* ------------------------------------------------------------------------ */
/* The descriptor                                                           */
/* ------------------------------------------------------------------------ */

/**
 * What the entry function returns: constant data with static storage, the
 * same on every call. Tables a plugin does not support are NULL; a NULL slot
 * in a present table means that one operation is not supported.
 */
typedef struct ah_plugin_descriptor {
    uint32_t struct_size;
    uint16_t abi_major; /**< AH_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor; /**< AH_ABI_MINOR the plugin was built with */
    const char *name;        /**< [a-z0-9_]+, unique in a host */
    const char *version;     /**< semantic version, "1.4.2" */
    const char *description; /**< one line */

    /** Connection settings, terminated by {NULL}. May be NULL: none. */
    const ah_setting_spec *settings;

    /** Optional. Called once per load, before anything else (after the ABI
     *  check). May store plugin-wide immutable state in *plugin_state.
     *  Return AH_ERR (after host->fail()) to refuse the load. */
    ah_result (*init)(ah_call *call, void **plugin_state);
    /** Optional. Called once when the generation is released, after its last
     *  call returned. */
    void (*fini)(void *plugin_state);

    /** Optional. Called before the first call for a connection (and again
     *  after its settings change or a new generation takes over). Settings
     *  are readable through call->host->setting(). Stores the per-connection
     *  context in *conn_ctx. */
    ah_result (*open)(ah_call *call, void **conn_ctx);
    /** Optional. Frees what open() made. */
    void (*close)(void *plugin_state, void *conn_ctx);

    const ah_streaming_ops *streaming;
    const ah_applications_ops *applications;
    const ah_dispositions_ops *dispositions;
    const ah_jobs_ops *jobs;
    const ah_candidates_ops *candidates;
    const ah_notes_ops *notes;
    const ah_attachments_ops *attachments;
    const ah_custom_fields_ops *custom_fields;
    const ah_statuses_ops *statuses;
    const ah_onboarding_ops *onboarding;
    const ah_postings_ops *postings;

    /** Inbound routes, terminated by {NULL}. May be NULL. */
    const ah_route *routes;
    /** Event subscriptions, terminated by {NULL}. May be NULL. */
    const ah_subscription *subscriptions;

    /** @since 1.1 (appended; the host checks AH_HAS(desc, rate_limit_rps)).
     *  The provider's request limit per connection, in requests per second
     *  (0: none declared). The host paces every outbound request of a
     *  connection (syncs, bulk jobs, writes) under it, slows down after a
     *  429, and lets operators lower it per connection with the setting
     *  `rate_limit_rps`, which a plugin that declares a limit should list
     *  in its settings table (AH_SET_INT, no default). Declared or not, a
     *  429 makes every request of the connection wait out its Retry-After;
     *  declare 0 when the provider documents no limit (a guessed one only
     *  slows the connection down), and list the setting all the same so
     *  that an operator can set one. */
    uint32_t rate_limit_rps;

    /* --- ABI 1.1: the minor a plugin needs (SDK plumbing) ------------- */
    /** @since 1.1 (appended; the loader reads it only when AH_HAS(desc,
     *  needs_abi_minor), else takes abi_minor: 0 for every 1.0 build).
     *  The ABI minor this plugin needs
     *  from the host: the highest "@since 1.N" among the members it uses
     *  without an AH_HAS check (0: 1.0 is enough). The loader refuses a
     *  plugin that needs a newer minor than the host speaks, naming both
     *  versions. abi_minor above is only the SDK it was built with. */
    uint16_t needs_abi_minor;

    /* --- @since 1.1: operations declare their fields ------------------
     * Appended; the host reads it only when AH_HAS(desc, op_fields). */
    /** The request fields of the bus topics this plugin serves, terminated
     *  by {NULL}. May be NULL: no table is known and the host validates
     *  nothing before the plugin runs. */
    const ah_op_fields *op_fields;

    /* --- @since 1.1: writes declare how they reconcile -----------------
     * Appended; the host reads it only when AH_HAS(desc, op_writes). */
    /** Every write operation this plugin serves (bus topics that change
     *  something: see `atshub plugin check`) and every event subscription
     *  that writes to the provider, with how an unknown outcome is settled;
     *  terminated by {NULL}. May be NULL for a plugin that serves no write.
     *  Constant data with static storage. */
    const ah_op_write *op_writes;
} ah_plugin_descriptor;

/** Type of the entry function. It must do nothing but return the descriptor:
 *  the host calls it before it has checked the ABI. */
typedef const ah_plugin_descriptor *(*ah_entry_fn)(const ah_host_api *host);

/** Defines the entry function: AH_PLUGIN_ENTRY { return &my_descriptor; } */
#define AH_PLUGIN_ENTRY                                                        \
    AH_EXPORT const ah_plugin_descriptor *AH_ENTRY_NAME(                       \
        const ah_host_api *host);                                              \
    AH_EXPORT const ah_plugin_descriptor *AH_ENTRY_NAME(                       \
        const ah_host_api *host)

/* ------------------------------------------------------------------------ */
/* Host services                                                            */
/* ------------------------------------------------------------------------ */

typedef enum ah_log_level {
    AH_LOG_ERROR = 0,
    AH_LOG_WARN = 1,
    AH_LOG_INFO = 2,
    AH_LOG_DEBUG = 3,
} ah_log_level;

/** An outbound HTTP request. Strings are borrowed for the call. */
typedef struct ah_http_request {
    uint32_t struct_size;
    const char *method; /**< "GET", "POST", "PUT", ... */
    /** Absolute URL, or a path starting with '/' that the host appends to the
     *  connection's `base_url` setting. Query values must already be
     *  escaped (see host->url_escape). */
    const char *url;
    const char *const *headers; /**< "Name: value" strings, NULL-terminated; may be NULL */
    const char *body;           /**< may be NULL */
    size_t body_len;
    long timeout_ms;  /**< whole-transfer limit per attempt; 0: host default;
                       *   at most 600000 (more is taken as that) */
    int max_attempts; /**< 0: host default; 1: no retries; at most 10 */
    /** Bearer token to send as "Authorization: Bearer ..."; may be NULL.
     *  The host redacts it from the integration log. */
    const char *bearer;
    /** @since 1.1: AH_HTTP_* flags (check with AH_HAS before reading). */
    unsigned flags;

    /* --- ABI 1.1: OAuth2 in the request (SDK plumbing) ----------------- */
    /** @since 1.1 (appended; a 1.0 host ignores it, so declare
     *  needs_abi_minor = 1). When not NULL the host authorises the request
     *  itself: it takes an access token for these parameters from its
     *  per-connection cache (fetching it, or renewing it 5 minutes before
     *  it expires, half its lifetime before when that is shorter), sends it as "Authorization: Bearer ...", and when the
     *  provider answers 401 forgets that token, fetches a new one and
     *  sends the request once more. `bearer` is then ignored. A token that
     *  cannot be had is an AH_ERR with code "auth_failed" (described; the
     *  secret and the token never appear in it). resp->status is that of
     *  the last answer, so a second 401 reaches the plugin. */
    const struct ah_oauth2_params *oauth2;

    /* --- ABI 1.1: exactly once (outcome classes) ------------------------ */
    /** @since 1.1 (appended). sizeof the ah_http_response the plugin hands
     *  to host->http (set it to `sizeof resp`). The host writes no member
     *  of the response beyond it, so a plugin built with an SDK whose
     *  response is shorter is never overwritten; 0 (an older plugin): the
     *  response as it was before `outcome`, which the host then leaves out. */
    uint32_t response_size;
} ah_http_request;

enum {
    /** @since 1.1. The request changes state at the provider and must not be repeated
     *  once the provider may have acted on it (creating a note, posting a
     *  job): the host retries it only when the provider certainly did not
     *  act — the connection was refused, or the answer was 429 or 503 —
     *  and never after a timeout, a dropped connection or another 5xx.
     *  Since this SDK revision such a request also goes on a fresh
     *  connection that is closed after it (see ah_http_outcome). */
    AH_HTTP_NOT_IDEMPOTENT = 1u << 0,
};

/** An outbound HTTP response. Filled by the host; release with
 *  host->http_response_free(). */
typedef struct ah_http_response {
    uint32_t struct_size;
    long status;       /**< HTTP status of the last attempt */
    char *body;        /**< NUL-terminated (body_len excludes the NUL) */
    size_t body_len;
    char *content_type; /**< may be NULL */
    int attempts;       /**< how many attempts were made */

    /* --- @since 1.1 (appended): exactly once ---------------------------- */
    /** What the last attempt did at the provider, an ah_http_outcome,
     *  computed by the host, filled whether http() returned AH_OK or AH_ERR.
     *  Written only when the request's response_size covers it; read it
     *  with AH_HAS(&resp, outcome) (AH_OUTCOME_NONE from an older host). */
    int32_t outcome;
} ah_http_response;

/**
 * @since 1.1. The outcome class of an outbound request, as the host sees it.
 * Plugins never work it out from statuses or error texts themselves:
 *
 *  - DONE: the provider answered 2xx, whatever the body (empty, truncated,
 *    not JSON): it carried the request out. resp->body may be unusable.
 *  - NOT_DONE: the provider certainly did not act: nothing was sent
 *    (connection refused, host not found, TLS failure, connect timeout), or
 *    it answered 429, 503, or another status that is no 2xx and no 500,
 *    502 or 504 (a 4xx it explains, a redirect). Safe to send again.
 *  - UNKNOWN: the request was sent and then came a timeout, a dropped
 *    connection, an answer cut short or malformed before its status, or
 *    500 / 502 / 504 (an error or a gateway after the provider may have
 *    acted). Never settled by sending again: read the provider back, or
 *    answer AH_E_OUTCOME_UNKNOWN.
 *
 * For a request flagged AH_HTTP_NOT_IDEMPOTENT the host never retries after
 * UNKNOWN, sends it on a fresh connection of its own (so that libcurl never
 * re-sends it on a reused connection found dead), returns AH_OK with the
 * status and what arrived of the body after a 2xx cut short, and describes
 * an AH_ERR with UNKNOWN as AH_E_OUTCOME_UNKNOWN (502; NOT_DONE stays
 * AH_E_UNAVAILABLE, 503).
 */
typedef enum ah_http_outcome {
    AH_OUTCOME_NONE = 0,     /**< not computed (older host, short response) */
    AH_OUTCOME_DONE = 1,     /**< the provider acted */
    AH_OUTCOME_NOT_DONE = 2, /**< the provider certainly did not act */
    AH_OUTCOME_UNKNOWN = 3,  /**< sent; whether it acted cannot be told */
} ah_http_outcome;

/** OAuth2 token request, for the host's token cache. Strings borrowed. */
typedef struct ah_oauth2_params {
    uint32_t struct_size;
    const char *token_url;     /**< absolute, or '/'-path under base_url */
    const char *client_id;
    const char *client_secret;
    const char *scope;         /**< may be NULL */
    const char *refresh_token; /**< NULL: client_credentials grant */
} ah_oauth2_params;

/** A streamed record, handed to the host by a streaming operation. */
typedef struct ah_record {
    uint32_t struct_size;
    /** "job", "application", "candidate", ...: 1 to 40 letters, digits,
     *  '_', '.' or '-'; "write_outcome" is the host's own (refused). */
    const char *type;
    /** The provider's id: 1 to 256 bytes of UTF-8 (emit_record), 1 to 4096
     *  (record_put, whose keys plugins may compose). */
    const char *remote_id;
    /** ISO-8601 UTC, as normalised by the plugin (at most 64 bytes). A time
     *  more than a day ahead of the host's clock is stored but does not
     *  move where the next sync starts. */
    const char *updated_at;
    const cJSON *raw;       /**< the provider's payload (borrowed, copied) */
    const cJSON *fields;    /**< normalised unified fields (borrowed, copied) */
    /* @since 1.2 (appended): the same two as JSON text (borrowed, copied),
     * which the host stores as given: no tree is built, printed or parsed
     * for them on the way to the store (a sync's fast path). When set, each
     * takes the place of its cJSON twin, which may then be NULL; it must be
     * exactly one JSON value (the host checks and refuses the record
     * otherwise). A length of 0 means strlen(). A plugin that sets only
     * the text declares needs_abi_minor = 2. */
    const char *raw_json;
    size_t raw_json_len;
    const char *fields_json;
    size_t fields_json_len;
} ah_record;

/** @since 1.3: what one operation of ah_host_api.store_batch does. */
typedef enum ah_store_op_kind {
    AH_STORE_SEQUENCE_NEXT = 1, /**< sequence_next(name): value = the number drawn */
    AH_STORE_RECORD_PUT = 2,    /**< record_put(rec, id_out, id_len): value = changed */
} ah_store_op_kind;

/** @since 1.3: flags of an ah_store_op. */
enum {
    /** Run the operation only when the one before it in the batch ran and
     *  was a sequence_next that drew 1 (the first use of that name: "never
     *  seen before"); otherwise it is skipped (done 0) and the batch goes
     *  on. For a guard sequence whose first value says there is nothing to
     *  check, followed by what the plugin would do in that case (the ERP
     *  plugin's title guard, then the job number). */
    AH_STORE_IF_NEW = 1u << 0,
    /** @since 1.4 (a host older than 1.4 refuses the batch: check
     *  call->host->abi_minor >= 4). RECORD_PUT only: the record's remote id
     *  takes the number drawn by the operation before it, so that a record
     *  named after a number is stored in the same batch (one round trip for
     *  an isolated plugin) as the number is drawn. The operation runs only
     *  when the one before it ran and was a SEQUENCE_NEXT (done 1);
     *  otherwise it is skipped (done 0) and the batch goes on. The remote
     *  id stored is rec->remote_id (a prefix, may be "") followed by that
     *  value in decimal, zero-padded to number_width digits; when
     *  number_field is set, the record's fields (which must be an object)
     *  get that member set to the same text: replaced where it is, or
     *  added at the end. The plugin knows the remote id from the value the
     *  batch gives back. Needs the struct_size of a 1.4 ah_store_op. */
    AH_STORE_NUMBERED = 1u << 1,
};

/** @since 1.3: one operation of a store_batch. The plugin fills kind,
 *  flags and the operation's arguments; the host fills done and value
 *  (and the record's id). Strings and the record are borrowed for the
 *  duration of the call. */
typedef struct ah_store_op {
    uint32_t struct_size;
    uint32_t kind;          /**< ah_store_op_kind */
    uint32_t flags;         /**< AH_STORE_* */
    const char *name;       /**< SEQUENCE_NEXT: the sequence */
    const ah_record *rec;   /**< RECORD_PUT: the record */
    char *id_out;           /**< RECORD_PUT: the atshub id (may be NULL) */
    size_t id_len;
    /* Filled by the host. */
    int32_t done;           /**< 1 ran and succeeded, -1 ran and failed, 0 not run */
    int64_t value;          /**< SEQUENCE_NEXT: the value; RECORD_PUT: changed (0/1/2) */
    /* @since 1.4 (appended; read only with AH_STORE_NUMBERED). */
    const char *number_field; /**< NUMBERED: the fields' member set to the remote id (may be NULL) */
    uint32_t number_width;    /**< NUMBERED: at least so many digits, zero-padded (0..20) */
} ah_store_op;

/**
 * The host API. One constant table, handed to the entry function and
 * reachable as call->host from every callback. All functions are
 * thread-safe. `call` is always the context the host passed to the current
 * callback.
 */
struct ah_host_api {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;

    /* --- logging ------------------------------------------------------- */
    /** Logs a line prefixed with plugin, tenant and connection names. Never
     *  pass a secret: the host redacts known secret values, but only those. */
    void (*log)(const ah_call *call, ah_log_level level, const char *fmt, ...)
        AH_PRINTF(3, 4);

    /* --- errors -------------------------------------------------------- */
    /** Describes why the current callback fails: a stable lower_snake_case
     *  `code`, the HTTP status the REST API should answer (0: derive from
     *  the code) and a message for humans. Returns AH_ERR so that a plugin
     *  can write `return host->fail(call, ...)`. */
    ah_result (*fail)(ah_call *call, const char *code, int http_status,
                      const char *fmt, ...) AH_PRINTF(4, 5);

    /* --- connection settings ------------------------------------------- */
    /** The connection's value for `key` (defaults filled), or NULL when
     *  unset. Secrets come back decrypted. Borrowed: valid until the
     *  callback returns. HASHED settings always return NULL. */
    const char *(*setting)(const ah_call *call, const char *key);

    /* --- outbound HTTP ------------------------------------------------- */
    /** Performs `req` with timeouts, retries with exponential backoff and
     *  jitter on 429, 5xx and connection errors (honouring Retry-After), TLS
     *  verification always on, and records it in the integration log with
     *  secrets redacted. Returns AH_OK when a response was received (any
     *  status: check resp->status); AH_ERR (with the failure described) when
     *  no response could be had. Fill `resp` and free it with
     *  http_response_free either way. @since 1.1: resp->outcome tells
     *  what the request did at the provider (see ah_http_outcome and
     *  ah_http_request.response_size); a request flagged
     *  AH_HTTP_NOT_IDEMPOTENT is never repeated once the provider may
     *  have acted, and an AH_ERR for one whose outcome is unknown is
     *  described as AH_E_OUTCOME_UNKNOWN. */
    ah_result (*http)(ah_call *call, const ah_http_request *req,
                      ah_http_response *resp);
    void (*http_response_free)(ah_http_response *resp);
    /** Percent-escapes `s` for a URL; the result is host-allocated, release
     *  with host->free(). NULL on allocation failure. */
    char *(*url_escape)(const char *s);

    /* --- OAuth2 -------------------------------------------------------- */
    /** Copies a valid access token for `p` into `out` (NUL-terminated).
     *  Tokens are cached per connection and endpoint and renewed 5 minutes
     *  before they expire. Returns AH_ERR when no token could be had (the
     *  call's error: auth_failed 502 when the token endpoint refused the
     *  client, upstream_unavailable 503 when it did not answer) or it
     *  does not fit `out_len`. */
    ah_result (*oauth2_token)(ah_call *call, const ah_oauth2_params *p,
                              char *out, size_t out_len);
    /** Forgets the cached token (after the provider refused it). */
    void (*oauth2_invalidate)(ah_call *call, const ah_oauth2_params *p);

    /* --- JSON helpers --------------------------------------------------- */
    /** Parses `len` bytes as JSON with the host's limits, the same in the
     *  daemon's process and in a plugin process: nesting to 32 levels,
     *  nothing but whitespace after the value, no raw NUL byte. A string's
     *  escaped NUL (\u0000), which a C string cannot hold (cJSON's would
     *  end there, the rest lost), is read as U+FFFD. NULL on error or
     *  refusal. Release with cJSON_Delete. In a plugin process the
     *  tree of a large text (16 KiB on) is carved from blocks of 1 MiB: its
     *  keys and strings are freed by cJSON's functions only (never free()),
     *  and a node kept past the rest keeps its block. */
    cJSON *(*json_parse)(const char *text, size_t len);
    /** The string member `key` of `obj` when it is a string no longer than
     *  max_len bytes; NULL otherwise (absent, wrong type or too long). */
    const char *(*json_string)(const cJSON *obj, const char *key, size_t max_len);

    /* --- events and records --------------------------------------------- */
    /** Publishes an event for the call's tenant. `body` is transferred.
     *  AH_ERR, with the call's error set, for a topic that does not start
     *  with "event." or is longer than 128 bytes, or a call without a
     *  connection. In process a store that cannot keep the event is an
     *  AH_ERR too; in a plugin process the event goes to the daemon without
     *  waiting for it, so that failure is logged on the call by the daemon
     *  and publish has returned AH_OK. */
    ah_result (*publish)(ah_call *call, const char *topic, cJSON *body);
    /** Hands one streamed record to the host (only inside a streaming op).
     *  A record without type or remote_id is refused at once. In a plugin
     *  process records go to the daemon in batches (up to 500), so the
     *  other refusals (a text that is not one JSON value, a call that is
     *  not streaming) come back from a later emit_record of the call, or
     *  fail the call when it returns; in process, from this one. */
    ah_result (*emit_record)(ah_call *call, const ah_record *rec);

    /* --- memory --------------------------------------------------------- */
    /** Frees memory the host allocated for the plugin (url_escape, ...). */
    void (*free)(void *p);

    /* --- inbound HTTP exchanges ---------------------------------------- */
    /** Request line and headers of an inbound exchange. Borrowed. */
    const char *(*http_method)(ah_http_exchange *ex);
    const char *(*http_path)(ah_http_exchange *ex);
    /** Header value (case-insensitive name) or NULL. */
    const char *(*http_header)(ah_http_exchange *ex, const char *name);
    /** Query parameter value (unescaped) or NULL. */
    const char *(*http_query)(ah_http_exchange *ex, const char *name);
    /** The peer's address as text ("127.0.0.1", "::1"). */
    const char *(*http_client_ip)(ah_http_exchange *ex);
    /** The request body (already size-limited by the host) and its length. */
    const char *(*http_body)(ah_http_exchange *ex, size_t *len);
    /** Sends the response: status and a JSON body (transferred). */
    ah_result (*http_respond_json)(ah_http_exchange *ex, int status, cJSON *body);

    /** Finds the enabled connection of this plugin whose HASHED setting
     *  `key` hashes to the hash of `presented` (hashes compared in constant
     *  time), opens it if needed and returns a call context for it: calls on
     *  that connection are serialised with its other calls until the route
     *  handler returns, when the host releases the context. NULL when no
     *  connection matches. NULL too when one matches but cannot be had now
     *  (its open() failed; for an isolated plugin also: busy with another
     *  call past the host's wait of 2 s, where in process the route waits
     *  for it): the host then answers the route itself with that error
     *  (its status, 503 overloaded for the busy one) and refuses the
     *  handler's answer, so that a right secret is never answered as a
     *  wrong one. Only valid inside a route
     *  handler; `route_call` is the handler's own call. */
    ah_call *(*conn_by_secret)(ah_call *route_call, const char *key,
                               const char *presented);

    /* --- the unified record store (for plugins whose provider pushes
     *     records to atshub instead of being streamed) --------------------- */
    /** @since 1.1 (appended after the first contract, like the rest of this
     *  block). Inserts or updates one record of the call's connection, keyed by
     *  (type, remote_id). Copies the record. When id_out is not NULL it
     *  receives the stable atshub id (at least 64 bytes). *changed_out (may
     *  be NULL) is 0 unchanged, 1 created, 2 updated. */
    ah_result (*record_put)(ah_call *call, const ah_record *rec, char *id_out,
                            size_t id_len, int *changed_out);
    /** @since 1.1. The record of the call's connection with that type and remote id, as
     *  {"id","type","remote_id","updated_at","raw","fields","created_at"}
     *  (transferred), or NULL when there is none. */
    cJSON *(*record_get)(ah_call *call, const char *type, const char *remote_id);
    /** @since 1.1. Records of the call's TENANT (all its connections) of `type` whose
     *  normalised field `field` equals `value`, at most `limit` (1..1000), as an
     *  array of the objects record_get returns (transferred). NULL on
     *  error. A field equals `value` by its text: a string by its value, a
     *  boolean by "true" / "false", a number by its JSON text as the record
     *  stored it (1.50 by "1.50", not "1.5"; 1e2 by "1e2", not "100");
     *  null, objects and arrays equal nothing; of a repeated key the first
     *  counts. When nocase, both sides are trimmed of spaces and ASCII
     *  letters compared case-insensitively (only ASCII: "é" is not "É").
     *  The same on either store engine. */
    cJSON *(*record_find)(ah_call *call, const char *type, const char *field,
                          const char *value, int nocase, int limit);
    /** @since 1.1. Next value (1, 2, ...) of the named per-tenant sequence; atomic
     *  across threads and processes sharing the store. */
    ah_result (*sequence_next)(ah_call *call, const char *name, int64_t *out);
    /** @since 1.1. AH_OK when the store answers (health checks). */
    ah_result (*store_ping)(ah_call *call);

    /** @since 1.1 (appended; check AH_HAS(call->host, record_by_id)). The
     *  record of the call's TENANT (any of its connections) with the stable
     *  atshub id `id` (the "id" of the sync engine's change events), as
     *  record_get returns it (transferred), or NULL when there is none. */
    cJSON *(*record_by_id)(ah_call *call, const char *id);

    /** @since 1.1 (appended; check AH_HAS(call->host, hmac_sha256_hex)).
     *  HMAC-SHA256 of `data` keyed with `key`, as 64 lowercase hex digits
     *  and a NUL in `out`. AH_ERR (out "" when given) for a NULL key or
     *  out, NULL data of a non-zero length, a key longer than INT_MAX, or
     *  when the crypto library fails; NULL data of length 0 is the empty
     *  message. */
    ah_result (*hmac_sha256_hex)(const void *key, size_t key_len, const void *data,
                                 size_t len, char out[65]);
    /** @since 1.1 (appended). 1 when the two NUL-terminated strings are
     *  equal, compared in time independent of where they differ (for
     *  signatures and tokens); 0 otherwise or when either is NULL. */
    int (*ct_equal)(const char *a, const char *b);
    /** @since 1.1 (appended). Changes settings of the call's connection, as
     *  `atshub connection set` would: `changes` (borrowed) maps a declared
     *  key to a string (the new value, validated against the plugin's
     *  table; secrets sealed) or to null (removed; a GENERATED setting gets
     *  a fresh random value instead). Stored in one update and applied to
     *  the connection table at once; the current call keeps reading the
     *  old values, the next call on the connection sees the new ones (its
     *  context is reopened). Only from bus operations and event handlers
     *  (not init, not routes). Applied to the settings as stored: a change
     *  stored meanwhile by an operator or another instance is kept (read
     *  again, `changes` applied again). AH_ERR (failure described) when a
     *  key is unknown, a value invalid, the store fails, or the settings
     *  kept changing meanwhile (AH_E_CONFLICT): nothing changes. */
    ah_result (*settings_update)(ah_call *call, const cJSON *changes);
    /** @since 1.1 (appended; check AH_HAS(call->host, http_respond)).
     *  Answers an inbound exchange with `len` raw bytes of `body` (copied)
     *  and `content_type` (e.g. "text/html; charset=utf-8"; NULL: none),
     *  for routes that serve something other than JSON (a page). Exactly
     *  one answer per exchange, as with http_respond_json. */
    ah_result (*http_respond)(ah_http_exchange *ex, int status, const char *content_type,
                              const char *body, size_t len);
    /** @since 1.1 (appended; check AH_HAS(call->host, setting_lists)).
     *  Whether `value` is listed in the AH_SET_LIST setting `key` of at
     *  least one connection of the calling plugin, in ANY tenant: enabled
     *  connections only, unless `how` has AH_LISTED_WITH_DISABLED. Returns
     *  1 listed, 0 not, -1 when the question cannot be asked: `key` is not
     *  a list setting the plugin declares, or is SECRET, GENERATED or
     *  HASHED (never answered about), value is NULL or `how` unknown.
     *  Only that answer reaches the plugin, never a setting, connection or
     *  tenant: it is for routes that turn outsiders away before looking at
     *  what they present (the ERP plugin refuses a caller whose address no
     *  source trusts before it looks up the API key, so that an outsider
     *  cannot tell a valid key from an invalid one). `how` is one of
     *  AH_LISTED_EXACT, AH_LISTED_NETWORK, optionally with
     *  AH_LISTED_WITH_DISABLED. Any callback, any thread; it takes no
     *  connection's call lock. */
    int (*setting_lists)(ah_call *call, const char *key, const char *value, unsigned how);
    /** @since 1.3 (appended; check AH_HAS(call->host, store_batch)).
     *  Runs `n` (1..AH_STORE_BATCH_MAX) store operations of the call, in
     *  order, as if the plugin had called sequence_next / record_put for
     *  each: same checks, same failures, same transaction (an atomic
     *  route's scope). It stops at the first that fails (its failure
     *  described, as that call would have; the ops after it are not run,
     *  done 0) and returns AH_ERR; AH_OK when every op that ran succeeded.
     *  Every element of `ops` has the struct_size of the first (give
     *  sizeof(ah_store_op)). An isolated plugin's batch is one round trip
     *  to the daemon instead of one per operation: an atomic route that
     *  needs several store calls in a row keeps the other writers waiting
     *  for one round trip instead of several. AH_ERR (AH_E_PLUGIN, nothing
     *  run) for an unknown kind or flag, a NULL name or record, or n out of
     *  range. */
    ah_result (*store_batch)(ah_call *call, ah_store_op *ops, size_t n);
};

/** @since 1.3: the most operations one store_batch runs. */
#define AH_STORE_BATCH_MAX 32

/** @since 1.1: what ah_host_api.setting_lists counts as "listed". */
enum {
    /** An entry of the list (blanks around it trimmed) is byte-equal to
     *  the value. */
    AH_LISTED_EXACT = 0,
    /** The value is an IPv4 or IPv6 address and an entry is that address or
     *  a CIDR block holding it ("10.0.0.0/8", "2001:db8::/32"). An IPv4
     *  address written as IPv6 (::ffff:a.b.c.d) is that IPv4 address.
     *  Entries that are not networks are skipped; a value that is not an
     *  address is listed nowhere (0). */
    AH_LISTED_NETWORK = 1,
    /** Flag: count disabled connections too. */
    AH_LISTED_WITH_DISABLED = 1 << 8,
};

#ifdef __cplusplus
}
#endif

#endif /* AH_PLUGIN_H */
