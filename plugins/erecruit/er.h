/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ERecruit plugin's internal interface, shared by its source files (and
 * by tests/unit/check_erecruit_map.c, which compiles them in). Nothing here
 * is exported from the .so: only the entry symbol is visible.
 *
 * Every function that takes an ah_call runs inside a capability callback on
 * a host worker thread, with call->conn_ctx the er_conn made by open().
 */
#ifndef ER_H
#define ER_H

#include <stdbool.h>
#include <stddef.h>

#include <atshub/plugin.h>
#include <atshub/util.h>

#define ER_VERSION "1.0.0"
/** Longest id (remote id, stage id, ...) accepted, in bytes. */
#define ER_ID_MAX 128
/** Longest cursor taken back ("cursor" of the streams and the enhanced
 *  batch), in bytes. ERecruit's next_cursor is opaque, of no documented
 *  length: one longer than this is refused when it arrives, never passed on
 *  to be saved and then refused as an argument. */
#define ER_CURSOR_MAX 8192
/** Paths of the ERecruit API, relative to base_url. */
#define ER_API "/api/v2"

/** Per-connection context made by open(): parsed, validated settings. The
 *  plugin changes nothing in it after open(), so calls need no lock. */
typedef struct er_conn {
    char token_url[2048];
    char client_id[512];
    char client_secret[1024];
    int per_page;              /**< 1..500 */
    char job_statuses[128];    /**< comma-separated, each a known status */
    long long note_action_id;  /**< default action of notes (seed: 496) */
    long long screened_tag_id; /**< tag of screened contacts (seed: 65880) */
    long long screened_status_id; /**< status of screened submissions (seed: 101) */
} er_conn;

/* ------------------------------------------------------------------ */
/* er_http.c: authenticated requests and error mapping                 */
/* ------------------------------------------------------------------ */

/** Why a request failed, in atshub's terms. */
typedef struct er_error {
    char code[48];     /**< stable atshub code (not_found, invalid_request, ...) */
    int http_status;   /**< status the REST API should answer */
    long upstream;     /**< ERecruit's HTTP status, 0 when none */
    char message[512];
    /** The host already described the failure with fail() (no response,
     *  no token): its message is more precise than ours, keep it. */
    bool host_failed;
    /** What the request did at ERecruit, as the host tells it (an
     *  ah_http_outcome; AH_OUTCOME_NONE from a host that has none). A
     *  write's failure with DONE or UNKNOWN may have changed ERecruit:
     *  read it back rather than send it again. */
    int outcome;
} er_error;

/**
 * One call to ERecruit: `method` on `path` (relative to base_url, already
 * escaped, e.g. "/api/v2/positions/12"), with `body` sent as JSON when not
 * NULL (borrowed). The host authorises it with the connection's OAuth2
 * client (token cache, one renewal after a 401). On success *out is the
 * parsed reply (transferred; NULL for an empty body). On failure fills *err
 * and returns AH_ERR without calling fail() itself.
 */
ah_result er_call(ah_call *call, const char *method, const char *path, const cJSON *body,
                  cJSON **out, er_error *err);
/** er_call, describing a failure with host->fail(). */
ah_result er_do(ah_call *call, const char *method, const char *path, const cJSON *body,
                cJSON **out);
/** Describes *err with host->fail() (unless the host already did). */
ah_result er_fail(ah_call *call, const er_error *err);
/** Maps an ERecruit HTTP status and error body to *err (exposed for tests). */
void er_map_error(long status, const cJSON *body, int attempts, er_error *err);

/* ------------------------------------------------------------------ */
/* er_args.c: request validation and path building                     */
/* ------------------------------------------------------------------ */

/** Result of reading an id member. */
typedef enum er_id_rc { ER_ID_OK = 0, ER_ID_ABSENT = -1, ER_ID_BAD = -2 } er_id_rc;

/** Reads an id: a non-empty string of at most ER_ID_MAX-1 bytes without
 *  control characters, or an integral number (written in decimal). */
er_id_rc er_id_value(const cJSON *v, char out[ER_ID_MAX]);
/** The id member `key` of `body`; fails invalid_request ("field 'KEY'
 *  must be a non-empty string (at most N bytes) or an integer") otherwise. */
ah_result er_require_id(ah_call *call, const cJSON *body, const char *key,
                        char out[ER_ID_MAX]);
/** Like er_require_id but an absent member is fine (*present = false). */
ah_result er_optional_id(ah_call *call, const cJSON *body, const char *key,
                         char out[ER_ID_MAX], bool *present);
/** The JSON ERecruit wants for an id: a number when it is a decimal
 *  integer that fits a double exactly, else the string. NULL on ENOMEM. */
cJSON *er_id_json(const char *id);
/* Strings, integers, booleans and arrays are read with <atshub/util.h>
 * (ah_arg_*), paths and queries built in an ah_buf. */

/** "/api/v2/<collection>/<escaped id><suffix>" into *b. */
void er_path_id(const ah_call *call, ah_buf *b, const char *collection, const char *id, const char *suffix);

/* ------------------------------------------------------------------ */
/* er_map.c: ERecruit <-> unified fields                               */
/* ------------------------------------------------------------------ */

/** The setting-dependent part of the mapping (screened markers). */
typedef struct er_map_opts {
    long long screened_tag_id;
    long long screened_status_id;
} er_map_opts;

/** A scalar id member as a string ("123"), or NULL when absent/null/other. */
bool er_map_id(const cJSON *obj, const char *key, char out[ER_ID_MAX]);
/** Position -> unified job fields; NULL when it has no id or on ENOMEM.
 *  With `enhanced`, custom_fields and hiring_team are mapped too. */
cJSON *er_map_job(const cJSON *position, bool enhanced);
/** Submission -> unified application fields (NULL as above). */
cJSON *er_map_application(const cJSON *submission, const er_map_opts *o);
/** Contact -> unified candidate fields (NULL as above). */
cJSON *er_map_candidate(const cJSON *contact, const er_map_opts *o);
/** Unified job status of an ERecruit position status ("other" if unknown). */
const char *er_map_job_status(const char *status);
/** Unified job_type of an ERecruit employment_type ("OTHER" if unknown). */
const char *er_map_job_type(const char *employment_type);
/** True when `s` is one of ERecruit's position statuses. */
bool er_known_job_status(const char *s);
/** {"id","name","order"} of a stage; NULL when it has no id. */
cJSON *er_map_stage(const cJSON *stage);
/** {"id","name"} of a disposition reason; NULL when it has no id. */
cJSON *er_map_reason(const cJSON *reason);
/** {"key","label","type","options"?} of a custom field definition. */
cJSON *er_map_field_def(const cJSON *def);
/** {"id","body_html","note_action_type","created_at"} of a created note. */
cJSON *er_map_note(const cJSON *note);
/** {"id","filename","size"} of an uploaded document. */
cJSON *er_map_document(const cJSON *doc);

/** ERecruit's word for a unified entity ("application" -> "submission"),
 *  and its collection ("submissions"); NULL for an unknown entity. */
const char *er_entity_remote(const char *entity);
const char *er_entity_collection(const char *entity);

/** True when `note` is already HTML (it starts with '<' and ends with '>'
 *  once blanks are trimmed). */
bool er_note_is_html(const char *note);
/** Plain text -> "<p>escaped</p>", newlines as <br>. Caller frees. */
char *er_note_html(const char *text);

/* ------------------------------------------------------------------ */
/* er_http.c: requests on built paths, and their replies               */
/* ------------------------------------------------------------------ */

/** er_do on path->s, failing internal_error instead when building the path
 *  ran out of memory. Frees *path in every case. */
ah_result er_send(ah_call *call, const char *method, ah_buf *path, const cJSON *body,
                  cJSON **out);
/** er_send GET that also gives the reply's text (*text, NUL-terminated,
 *  caller frees; NULL for an empty body): a streamed page's records are
 *  stored as the provider's bytes, not printed again. */
ah_result er_get_page(ah_call *call, ah_buf *path, cJSON **out, char **text, size_t *text_len);
/** er_send GET whose reply must carry a "data" array: on success *resp is
 *  the reply (transferred) and *data its array; a reply without one fails
 *  upstream 502 "ERecruit sent <what> without a data array". */
ah_result er_get_data(ah_call *call, ah_buf *path, const char *what, cJSON **resp,
                      const cJSON **data);
/** GET "/api/v2/<collection>/<id><suffix>" where id is the required id
 *  member `key` of `body` (see er_require_id); *out as er_do. */
ah_result er_get_by_id(ah_call *call, const cJSON *body, const char *key,
                       const char *collection, const char *suffix, cJSON **out);
/** Replies `mapped` (transferred), the unified form of `resp`. A NULL
 *  `mapped` fails: out of memory when resp has an id, else upstream 502
 *  "ERecruit sent a <what> without an id". */
ah_result er_reply_mapped(ah_call *call, const cJSON *resp, cJSON *mapped, const char *what,
                          cJSON **reply);
/** Maps one ERecruit item to unified fields (NULL on ENOMEM). */
typedef cJSON *(*er_map_fn)(const cJSON *item, const er_map_opts *o);
/** Appends map(item, o) to `arr` for each item of `data` that has an id
 *  (see er_map_id; the others are skipped). False when arr is NULL or
 *  memory ran out. */
bool er_map_items(cJSON *arr, const cJSON *data, er_map_fn map, const er_map_opts *o);
/** The "data" array and "next_cursor" (absent, null or a string of at most
 *  ER_CURSOR_MAX bytes) of a page; false when the page does not have that
 *  shape. */
bool er_page_parts(const cJSON *page, const cJSON **data, const cJSON **next);
/** AH_OK when `data` (a page's array) holds at most `per_page` items, the
 *  most the request asked for; else fails the call upstream_error (502)
 *  naming both numbers. */
ah_result er_page_size_ok(ah_call *call, const cJSON *data, long long per_page);

/* ------------------------------------------------------------------ */
/* er_settle.c: writes whose outcome is unknown (WIRE.md, Exactly once) */
/* ------------------------------------------------------------------ */

/** Longest external_ref atshub sends, with its NUL. */
#define ER_REF_MAX 48

/** What ERecruit turned out to have done with a write. */
typedef enum er_settled {
    ER_SETTLED_DONE = 0,     /**< carried out: answer as if it had answered */
    ER_SETTLED_NOT_DONE = 1, /**< certainly not carried out: safe to send again */
    ER_SETTLED_UNKNOWN = 2,  /**< cannot tell: outcome_unknown, never re-sent */
} er_settled;

/** True when a write's failure may have changed ERecruit (the host's
 *  outcome is DONE or UNKNOWN): settle it, never send it again. */
bool er_maybe_done(const er_error *err);
/** The external_ref of the call's write into out: "atshub-<correlation
 *  id>" (the same when the host settles the call later), or "atshub-<n>"
 *  from a per-tenant sequence for a call without one. AH_ERR (described)
 *  when the store cannot give one. */
ah_result er_marker(ah_call *call, char out[ER_REF_MAX]);
/** What a write that is not where it should be means: NOT_DONE after an
 *  unknown outcome, UNKNOWN after a 2xx. */
er_settled er_absent(const er_error *sent);
/** GETs `list_path` ({"data":[...]}) and finds the item whose external_ref is
 *  `marker`: DONE with *found (transferred), er_absent(sent) when none is,
 *  UNKNOWN when the list cannot be read. */
er_settled er_find_marked(ah_call *call, const char *list_path, const char *marker,
                          const er_error *sent, cJSON **found);
/** GETs the object at `path`: DONE with *cur (transferred), or UNKNOWN. */
er_settled er_read_back(ah_call *call, const char *path, cJSON **cur);
/** Describes a write that was not settled DONE: NOT_DONE is 503
 *  upstream_unavailable ("safe to send again"), UNKNOWN 502 outcome_unknown;
 *  `what` says which write, `marker` (may be NULL) its external_ref. */
ah_result er_fail_unsettled(ah_call *call, er_settled s, const char *what, const char *marker);

/** What a write whose answer was lost looks like, for settle functions
 *  (the host calls them later, for a call that answered outcome_unknown). */
er_error er_unknown_outcome(void);

/* Settle functions (ah_op_write.settle): read ERecruit back, never send. */
ah_result er_settle_move(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_settle_create(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_settle_custom(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_settle_reject(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_settle_note_app(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_settle_note_cand(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_settle_doc_app(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_settle_doc_cand(ah_call *call, const cJSON *body, cJSON **reply);

/* ------------------------------------------------------------------ */
/* Capability operations (ah_op_fn)                                    */
/* ------------------------------------------------------------------ */

/* er_stream.c */
ah_result er_stream_jobs(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_stream_applications(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_stream_candidates(ah_call *call, const cJSON *body, cJSON **reply);
/* er_apps.c */
ah_result er_app_move_to_stage(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_app_reject(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_app_bulk_reject(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_app_create(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_app_list_stages(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_dispositions_list(ah_call *call, const cJSON *body, cJSON **reply);
/* er_jobs.c */
ah_result er_job_get(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_job_get_enhanced(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_job_enhanced_batch(ah_call *call, const cJSON *body, cJSON **reply);
/* er_candidates.c */
ah_result er_cand_get(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_cand_find(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_cand_resume(ah_call *call, const cJSON *body, cJSON **reply);
/* er_notes.c */
ah_result er_note_to_application(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_note_to_candidate(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_attach_to_application(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_attach_to_candidate(ah_call *call, const cJSON *body, cJSON **reply);
/* er_custom.c */
ah_result er_custom_list(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_custom_values(ah_call *call, const cJSON *body, cJSON **reply);
ah_result er_custom_update(ah_call *call, const cJSON *body, cJSON **reply);

/** The mapping options of the call's connection. */
er_map_opts er_opts(const ah_call *call);
/** fail(internal_error, "out of memory") */
ah_result er_oom(ah_call *call);

#endif
