/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Field validation and normalisation of the ERP guide's create_job and
 * update_job bodies. The field table below is the single description of
 * every field: its JSON type, limit, default and where it is allowed; the
 * README's field table is written from it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atshub/util.h>

#include "erp.h"

const char *const erp_job_types[] = {"FULL_TIME",  "PART_TIME", "CONTRACT", "INTERNSHIP",
                                     "FACULTY",    "TEMPORARY", NULL};
const char *const erp_workplace_types[] = {"ON_SITE", "REMOTE", "HYBRID", NULL};
const char *const erp_statuses[] = {"DRAFT", "PUBLISHED", "CLOSED", "ARCHIVED", NULL};

typedef enum fkind {
    F_TEXT = 1,  /* string, kept as sent */
    F_LINE,      /* string, trimmed */
    F_URL,       /* string, trimmed, erp_url_valid */
    F_DATE,      /* string, trimmed, erp_date_valid */
    F_ENUM,      /* string, erp_enum_normalise against `allowed` */
    F_BOOL,      /* true/false */
} fkind;

enum {
    REQ_CREATE = 1u << 0,  /* required on create */
    REQ_UPDATE = 1u << 1,  /* required on update */
    NO_CREATE = 1u << 2,   /* refused on create (INVALID_FIELD) */
    NO_UPDATE = 1u << 3,   /* refused on update (INVALID_FIELD) */
    NOT_STORED = 1u << 4,  /* checked, not part of the normalised output */
};

typedef struct field_spec {
    const char *name;
    fkind kind;
    size_t max; /* code points; 0: no limit (enums, bools) */
    unsigned flags;
    const char *def; /* default on create ("true"/"false" for bools) */
    const char *const *allowed;
} field_spec;

static const field_spec fields[] = {
    {"action", F_LINE, 32, REQ_CREATE | REQ_UPDATE | NOT_STORED, NULL, NULL},
    {"source_name", F_LINE, 255, REQ_CREATE | REQ_UPDATE | NOT_STORED, NULL, NULL},
    {"job_id", F_LINE, 64, REQ_UPDATE | NO_CREATE, NULL, NULL},
    {"title", F_LINE, 255, REQ_CREATE, NULL, NULL},
    {"department", F_LINE, 255, 0, NULL, NULL},
    {"job_type", F_ENUM, 0, 0, "FULL_TIME", erp_job_types},
    {"workplace_type", F_ENUM, 0, 0, "ON_SITE", erp_workplace_types},
    {"location_city", F_LINE, 128, 0, NULL, NULL},
    {"location_state", F_LINE, 128, 0, NULL, NULL},
    {"location_country", F_LINE, 128, 0, "United States", NULL},
    {"description", F_TEXT, 20000, 0, NULL, NULL},
    {"qualifications", F_TEXT, 20000, 0, NULL, NULL},
    {"salary_range", F_LINE, 255, 0, NULL, NULL},
    {"benefits", F_TEXT, 20000, 0, NULL, NULL},
    {"application_url", F_URL, 2048, REQ_CREATE, NULL, NULL},
    {"application_deadline", F_DATE, 0, 0, NULL, NULL},
    {"application_instructions", F_TEXT, 20000, 0, NULL, NULL},
    {"auto_publish", F_BOOL, 0, NO_UPDATE, "false", NULL},
    {"status", F_ENUM, 0, NO_CREATE, NULL, erp_statuses},
    {NULL, 0, 0, 0, NULL, NULL},
};

int erp_fail(erp_error *err, int status, const char *code, const char *field, const char *fmt,
             ...)
{
    err->status = status;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field != NULL ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Small pure helpers                                                        */
/* ------------------------------------------------------------------------ */

const char *erp_trim(const char *s, size_t *len)
{
    while (*s != '\0' && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    *len = n;
    return s;
}

/* A trimmed copy of s (erp_trim); NULL on OOM. */
static char *trimmed(const char *s)
{
    size_t n;
    const char *t = erp_trim(s, &n);
    return strndup(t, n);
}

const char *erp_enum_normalise(const char *in, const char *const *allowed)
{
    char norm[48], bare[48];
    size_t n = 0, b = 0;
    bool sep = false;
    while (*in != '\0' && isspace((unsigned char)*in))
        in++;
    size_t len = strlen(in);
    while (len > 0 && isspace((unsigned char)in[len - 1]))
        len--;
    if (len == 0 || len >= sizeof norm)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        char u = (c == '-' || c == ' ' || c == '_') ? '_' : (char)toupper(c);
        norm[n++] = u;
        if (u != '_')
            bare[b++] = u;
        else
            sep = true;
    }
    norm[n] = bare[b] = '\0';
    for (size_t i = 0; allowed[i] != NULL; i++)
        if (strcmp(norm, allowed[i]) == 0)
            return allowed[i];
    /* "FULLTIME", "onsite": the same words without any separator. */
    for (size_t i = 0; !sep && allowed[i] != NULL; i++) {
        char a[48];
        size_t k = 0;
        for (const char *p = allowed[i]; *p && k + 1 < sizeof a; p++)
            if (*p != '_')
                a[k++] = *p;
        a[k] = '\0';
        if (strcmp(bare, a) == 0)
            return allowed[i];
    }
    return NULL;
}

static bool host_char(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c >= 0x80;
}

bool erp_url_valid(const char *url)
{
    size_t skip;
    if (strncasecmp(url, "https://", 8) == 0)
        skip = 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        skip = 7;
    else
        return false;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return false; /* blanks and control characters */
    const char *host = url + skip;
    size_t alen = strcspn(host, "/?#");
    if (alen == 0 || memchr(host, '@', alen) != NULL)
        return false; /* no host, or userinfo (a classic phishing disguise) */
    const char *end = host + alen, *port = NULL;
    if (*host == '[') {
        const char *rb = memchr(host, ']', alen);
        if (rb == NULL || rb == host + 1 || (size_t)(rb - host - 1) > 45)
            return false;
        for (const char *p = host + 1; p < rb; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return false;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return false;
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(host, ':', alen);
        const char *hend = colon != NULL ? colon : end;
        if (hend == host || *host == '.' || *host == '-' || hend[-1] == '-')
            return false;
        for (const char *p = host; p < hend; p++) {
            if (!host_char((unsigned char)*p))
                return false;
            if (*p == '.' && p + 1 < hend && p[1] == '.')
                return false;
        }
        if (colon != NULL)
            port = colon + 1;
    }
    if (port != NULL) {
        if (port == end || end - port > 5)
            return false;
        long v = 0;
        for (const char *p = port; p < end; p++) {
            if (!isdigit((unsigned char)*p))
                return false;
            v = v * 10 + (*p - '0');
        }
        if (v < 1 || v > 65535)
            return false;
    }
    return true;
}

bool erp_date_valid(const char *s)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return false;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (y < 1900 || m < 1 || m > 12 || d < 1)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    int max = mdays[m - 1] + (m == 2 && leap ? 1 : 0);
    return d <= max;
}

void erp_title_key(const char *title, char *out, size_t n)
{
    size_t k = 0;
    bool space = false;
    if (n == 0)
        return;
    while (*title != '\0' && isspace((unsigned char)*title))
        title++;
    for (; *title != '\0' && k + 1 < n; title++) {
        unsigned char c = (unsigned char)*title;
        if (isspace(c)) {
            space = true;
            continue;
        }
        if (space && k + 2 < n)
            out[k++] = ' ';
        space = false;
        out[k++] = (char)tolower(c);
    }
    out[k] = '\0';
}

uint64_t erp_fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

bool erp_status_open(const char *status)
{
    return status != NULL && (strcmp(status, "DRAFT") == 0 || strcmp(status, "PUBLISHED") == 0);
}

bool erp_prefix_valid(const char *prefix)
{
    size_t n = prefix != NULL ? strlen(prefix) : 0;
    if (n == 0 || n > 16)
        return false;
    for (; *prefix; prefix++)
        if (!isalnum((unsigned char)*prefix) && *prefix != '_' && *prefix != '-')
            return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* The body                                                                  */
/* ------------------------------------------------------------------------ */

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "null";
}

/* Validates one present, non-null value and adds its normalised form to out. */
static int check_field(const field_spec *f, const cJSON *v, erp_op op, cJSON *out,
                       erp_error *err)
{
    if (f->kind == F_BOOL) {
        if (!cJSON_IsBool(v))
            return erp_fail(err, 400, ERP_E_INVALID_TYPE, f->name,
                            "%s must be a boolean (true or false), not %s", f->name, type_name(v));
        if (!(f->flags & NOT_STORED))
            cJSON_AddBoolToObject(out, f->name, cJSON_IsTrue(v));
        return 0;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL)
        return erp_fail(err, 400, ERP_E_INVALID_TYPE, f->name, "%s must be a string, not %s",
                        f->name, type_name(v));
    bool required = (op == ERP_OP_CREATE && (f->flags & REQ_CREATE)) ||
                    (op == ERP_OP_UPDATE && (f->flags & REQ_UPDATE)) ||
                    strcmp(f->name, "title") == 0 || strcmp(f->name, "application_url") == 0;
    if (f->kind == F_ENUM) {
        const char *e = erp_enum_normalise(v->valuestring, f->allowed);
        if (e == NULL) {
            char list[160] = "";
            for (size_t i = 0; f->allowed[i] != NULL; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                         f->allowed[i]);
            return erp_fail(err, 400, ERP_E_INVALID_TYPE, f->name,
                            "%s must be one of %s", f->name, list);
        }
        if (!(f->flags & NOT_STORED))
            cJSON_AddStringToObject(out, f->name, e);
        return 0;
    }
    if (f->max > 0 && ah_utf8_len(v->valuestring) > f->max)
        return erp_fail(err, 400, ERP_E_FIELD_TOO_LONG, f->name,
                        "%s is longer than %zu characters", f->name, f->max);
    char *s = f->kind == F_TEXT ? strdup(v->valuestring) : trimmed(v->valuestring);
    if (s == NULL)
        return erp_fail(err, 500, ERP_E_INTERNAL, NULL, "out of memory");
    int rc = 0;
    if (*s == '\0' && required)
        rc = erp_fail(err, 400, ERP_E_MISSING_FIELD, f->name, "%s must not be empty", f->name);
    else if (f->kind == F_URL && !erp_url_valid(s))
        rc = erp_fail(err, 400, ERP_E_INVALID_URL, f->name,
                      "%s must be an absolute http:// or https:// URL with a host", f->name);
    else if (f->kind == F_DATE && *s != '\0' && !erp_date_valid(s))
        rc = erp_fail(err, 400, ERP_E_INVALID_DATE, f->name,
                      "%s must be a calendar date written YYYY-MM-DD", f->name);
    if (rc == 0 && !(f->flags & NOT_STORED)) {
        if (*s == '\0')
            cJSON_AddNullToObject(out, f->name); /* "" clears an optional field */
        else
            cJSON_AddStringToObject(out, f->name, s);
    }
    free(s);
    return rc;
}

int erp_validate_job(const cJSON *body, erp_op op, cJSON **out, erp_error *err)
{
    if (!cJSON_IsObject(body))
        return erp_fail(err, 400, ERP_E_INVALID_JSON, NULL, "the request body must be a JSON object");
    const char *want = op == ERP_OP_CREATE ? "create_job" : "update_job";
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return erp_fail(err, 500, ERP_E_INTERNAL, NULL, "out of memory");
    for (const field_spec *f = fields; f->name != NULL; f++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, f->name);
        bool present = v != NULL && !cJSON_IsNull(v);
        unsigned req = op == ERP_OP_CREATE ? REQ_CREATE : REQ_UPDATE;
        unsigned refused = op == ERP_OP_CREATE ? NO_CREATE : NO_UPDATE;
        if (!present) {
            if (f->flags & req) {
                cJSON_Delete(o);
                return erp_fail(err, 400, ERP_E_MISSING_FIELD, f->name,
                                "required field '%s' is missing", f->name);
            }
            if (op == ERP_OP_CREATE && !(f->flags & (NOT_STORED | NO_CREATE))) {
                if (f->kind == F_BOOL)
                    cJSON_AddBoolToObject(o, f->name, f->def != NULL && strcmp(f->def, "true") == 0);
                else if (f->def != NULL)
                    cJSON_AddStringToObject(o, f->name, f->def);
                else
                    cJSON_AddNullToObject(o, f->name);
            }
            continue;
        }
        if (f->flags & refused) {
            cJSON_Delete(o);
            if (strcmp(f->name, "auto_publish") == 0)
                return erp_fail(err, 400, ERP_E_INVALID_FIELD, f->name,
                                "auto_publish is not applicable to updates; set status instead");
            if (strcmp(f->name, "status") == 0)
                return erp_fail(err, 400, ERP_E_INVALID_FIELD, f->name,
                                "status cannot be set on create; use auto_publish");
            return erp_fail(err, 400, ERP_E_INVALID_FIELD, f->name,
                            "%s is not accepted by %s", f->name, want);
        }
        if (check_field(f, v, op, o, err) != 0) {
            cJSON_Delete(o);
            return -1;
        }
        if (strcmp(f->name, "action") == 0) {
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(body, "action");
            char *t = trimmed(a->valuestring);
            bool ok = t != NULL && strcmp(t, want) == 0;
            free(t);
            if (!ok) {
                cJSON_Delete(o);
                return erp_fail(err, 400, ERP_E_INVALID_ACTION, "action",
                                "action must be \"%s\" on this endpoint", want);
            }
        }
    }
    *out = o;
    return 0;
}
