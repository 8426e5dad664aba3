/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ERP plugin's internal interfaces, shared by its source files (and by
 * the unit suite tests/unit/check_erp_validate.c, which compiles
 * erp_validate.c and erp_ip.c directly). Nothing here is part of the SDK;
 * nothing here is exported from erp.so (only the entry symbol is visible).
 *
 * The validation, IP matching and envelope code is pure: it uses cJSON and
 * libc only, no host API, so it can be tested without a host.
 */
#ifndef AH_ERP_H
#define AH_ERP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* ------------------------------------------------------------------------ */
/* Error codes of the ERP envelope (see README.md for when each happens)     */
/* ------------------------------------------------------------------------ */

#define ERP_E_MISSING_FIELD "MISSING_FIELD"     /* 400 */
#define ERP_E_INVALID_TYPE "INVALID_TYPE"       /* 400 */
#define ERP_E_INVALID_URL "INVALID_URL"         /* 400 */
#define ERP_E_INVALID_DATE "INVALID_DATE"       /* 400 */
#define ERP_E_FIELD_TOO_LONG "FIELD_TOO_LONG"   /* 400 */
#define ERP_E_INVALID_FIELD "INVALID_FIELD"     /* 400: a field not allowed here */
#define ERP_E_INVALID_ACTION "INVALID_ACTION"   /* 400 */
#define ERP_E_INVALID_JSON "INVALID_JSON"       /* 400 */
#define ERP_E_INVALID_API_KEY "INVALID_API_KEY" /* 401 */
#define ERP_E_IP_NOT_ALLOWED "IP_NOT_ALLOWED"   /* 403 */
#define ERP_E_INVALID_SOURCE "INVALID_SOURCE"   /* 404 */
#define ERP_E_JOB_NOT_FOUND "JOB_NOT_FOUND"     /* 404 */
#define ERP_E_JOB_EXISTS "JOB_EXISTS"           /* 409 */
#define ERP_E_JOB_NOT_OWNED "JOB_NOT_OWNED"     /* 409 */
#define ERP_E_TOO_LARGE "PAYLOAD_TOO_LARGE"     /* 413 */
#define ERP_E_INTERNAL "INTERNAL_ERROR"         /* 500 */
#define ERP_E_UNAVAILABLE "SERVICE_UNAVAILABLE" /* 503 */

/* ------------------------------------------------------------------------ */
/* Validation and normalisation (erp_validate.c)                             */
/* ------------------------------------------------------------------------ */

/** Which request a body is validated for. */
typedef enum erp_op {
    ERP_OP_CREATE = 1,
    ERP_OP_UPDATE = 2,
} erp_op;

/** A refused request: HTTP status, stable code, the offending field (""
 *  when none) and a message for humans. */
typedef struct erp_error {
    int status;
    const char *code; /* one of ERP_E_* (static storage) */
    char field[48];
    char message[320];
} erp_error;

/** Fills *err and returns -1 (so that callers can `return erp_fail(...)`). */
int erp_fail(erp_error *err, int status, const char *code, const char *field,
             const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/**
 * Validates a create_job or update_job request body (a JSON object) and
 * returns its normalised fields as a new object (*out, owned by the caller):
 *   create: every job field, defaults filled ("job_type", "workplace_type",
 *           "location_country", "auto_publish"), absent optional text fields
 *           as JSON null; "title" and "application_url" trimmed and present.
 *   update: only the fields the body sets, plus "job_id"; "status" when
 *           given, normalised.
 * "action" and "source_name" are checked for presence and type here; the
 * caller compares source_name with the authenticated source. Unknown fields
 * are ignored. Returns 0, or -1 with *err filled (*out untouched).
 */
int erp_validate_job(const cJSON *body, erp_op op, cJSON **out, erp_error *err);

/** Normalises an enum spelling ("full-time", "Full Time", "part_time",
 *  "onsite") against `allowed` (NULL-terminated, upper case): case-insensitive,
 *  '-' and ' ' read as '_', surrounding blanks ignored, and the separator may
 *  be left out ("FULLTIME"). Returns the matching entry of `allowed`, or NULL. */
const char *erp_enum_normalise(const char *in, const char *const *allowed);

extern const char *const erp_job_types[];       /* FULL_TIME, PART_TIME, ... */
extern const char *const erp_workplace_types[]; /* ON_SITE, REMOTE, HYBRID */
extern const char *const erp_statuses[];        /* DRAFT, PUBLISHED, CLOSED, ARCHIVED */

/** The span of s without leading and trailing blanks (isspace: space, tab,
 *  CR, LF, VT, FF): the one trim of every trimmed field, so that a value is
 *  compared as it is validated and stored. Returns the start; *len its length. */
const char *erp_trim(const char *s, size_t *len);
/** True for an absolute http:// or https:// URL with a host, an optional
 *  port, no userinfo and no blanks or control characters. */
bool erp_url_valid(const char *url);
/** True for "YYYY-MM-DD" naming a real calendar date (years 1900..9999). */
bool erp_date_valid(const char *s);
/** The duplicate-detection key of a title: trimmed, ASCII lower case, runs of
 *  blanks collapsed to one space. Writes at most n bytes (NUL included). */
void erp_title_key(const char *title, char *out, size_t n);
/** 64-bit FNV-1a of a NUL-terminated string (not cryptographic: used to name
 *  a per-title sequence, where a collision only costs a slower check). */
uint64_t erp_fnv1a64(const char *s);
/** True when a job status counts as open (DRAFT or PUBLISHED): only one open
 *  job per title and tenant. */
bool erp_status_open(const char *status);
/** True for a usable job id prefix: 1..16 of [A-Za-z0-9_-]. */
bool erp_prefix_valid(const char *prefix);

/* ------------------------------------------------------------------------ */
/* Trusted IPs (erp_ip.c)                                                    */
/* ------------------------------------------------------------------------ */

/** True when `entry` is a usable trusted-IP entry: an IPv4 or IPv6 address,
 *  optionally followed by /PREFIX (0..32 or 0..128). Surrounding blanks are
 *  ignored. */
bool erp_ip_entry_valid(const char *entry);

/**
 * Whether `client_ip` (as the host formats it: "127.0.0.1", "::1") matches
 * one entry of `list` (comma-separated entries as above). Malformed entries
 * never match; their number is stored in *bad (may be NULL) so the caller
 * can warn. An empty or NULL list matches nothing. An IPv4-mapped IPv6
 * client address is compared as IPv4.
 */
bool erp_ip_allowed(const char *list, const char *client_ip, int *bad);

/* ------------------------------------------------------------------------ */
/* The response envelope (erp_envelope.c)                                    */
/* ------------------------------------------------------------------------ */

/** {"status":"success","message":...,"data":data,"processing_time":s}.
 *  data is transferred (may be NULL: no "data" member). NULL on OOM. */
cJSON *erp_env_success(const char *message, cJSON *data, double seconds);
/** {"status":"error","message":...,"error_code":code,"field":field?,
 *  "processing_time":s}; field NULL or "" leaves "field" out. */
cJSON *erp_env_error(const char *message, const char *code, const char *field,
                     double seconds);
/** Seconds as the envelope prints them: rounded to 0.1 ms, at least 0.0001
 *  (so that they print as plain decimals); 0 for 0. */
double erp_env_round(double seconds);
/** Monotonic seconds, for processing_time. */
double erp_monotonic_s(void);

#endif
