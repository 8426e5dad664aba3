/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seed's Candidate Status field table and rules, checked before
 * anything leaves atshub, so that a status CareerBuilder would refuse is
 * refused here with a message naming the field.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cb.h"

const cb_field cb_status_fields[] = {
    {"account", CB_MAX_ACCOUNT, true},
    {"candidate_email", CB_MAX_EMAIL, true},
    {"vendor_key", CB_MAX_VENDOR_KEY, false},
    {"client", CB_MAX_CLIENT, false},
    {"requisition_id", CB_MAX_REQUISITION_ID, false},
    {"requisition_title", CB_MAX_REQUISITION_TITLE, false},
    {"level_id", CB_MAX_LEVEL_ID, false},
    {"status", CB_MAX_STATUS, true},
    {"status_date", 0, true},
    {"status_level", CB_MAX_STATUS_LEVEL, true},
    {"status_detail", CB_MAX_STATUS_DETAIL, false},
};
const size_t cb_status_nfields = sizeof(cb_status_fields) / sizeof(cb_status_fields[0]);

void cb_utf8_truncate(char *s, size_t max_chars)
{
    size_t n = 0;
    for (char *p = s; p != NULL && *p; p++) {
        if (((unsigned char)*p & 0xC0) != 0x80) {
            if (n == max_chars) {
                *p = '\0';
                return;
            }
            n++;
        }
    }
}

/* --- dates ----------------------------------------------------------------- */

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Parses "YYYY-MM-DD?HH:MM:SS" (19 chars, sep one of `seps`) into tm. */
static bool parse_stamp(const char *s, const char *seps, struct tm *tm)
{
    int y, mo, d, h, mi, se;
    if (strlen(s) < 19 || s[4] != '-' || s[7] != '-' || strchr(seps, s[10]) == NULL ||
        s[10] == '\0' || s[13] != ':' || s[16] != ':')
        return false;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
        !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
        return false;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        se > 59)
        return false;
    memset(tm, 0, sizeof(*tm));
    tm->tm_year = y - 1900;
    tm->tm_mon = mo - 1;
    tm->tm_mday = d;
    tm->tm_hour = h;
    tm->tm_min = mi;
    tm->tm_sec = se;
    return true;
}

bool cb_date_parse(const char *s, time_t *out)
{
    struct tm tm;
    if (s == NULL || strlen(s) != 20 || s[19] != 'Z' || !parse_stamp(s, "T", &tm))
        return false;
    if (out != NULL)
        *out = timegm(&tm);
    return true;
}

bool cb_date_to_utc(const char *s, char *out, size_t outlen)
{
    struct tm tm;
    if (s == NULL || outlen < 21 || !parse_stamp(s, "T ", &tm))
        return false;
    const char *p = s + 19;
    if (*p == '.' || *p == ',') { /* a fraction: CareerBuilder keeps whole seconds */
        p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    long offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, hh, mm = 0;
        p++;
        if (!digits(p, 2, &hh))
            return false;
        p += 2;
        if (*p == ':')
            p++;
        if (*p != '\0') {
            if (!digits(p, 2, &mm))
                return false;
            p += 2;
        }
        if (hh > 23 || mm > 59)
            return false;
        offset_s = sign * (hh * 3600L + mm * 60L);
    }
    if (*p != '\0')
        return false;
    time_t t = timegm(&tm) - offset_s;
    return ah_utc_format(t, out, outlen);
}

/* --- collecting violations --------------------------------------------------- */

typedef struct errs {
    char *buf;
    size_t len, used;
    int n;
} errs;

static void add_err(errs *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_err(errs *e, const char *fmt, ...)
{
    e->n++;
    if (e->buf == NULL || e->len == 0 || e->used + 1 >= e->len)
        return;
    if (e->n > 1) {
        int w = snprintf(e->buf + e->used, e->len - e->used, "; ");
        e->used = w > 0 && (size_t)w < e->len - e->used ? e->used + (size_t)w : e->len - 1;
    }
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(e->buf + e->used, e->len - e->used, fmt, ap);
    va_end(ap);
    e->used = w > 0 && (size_t)w < e->len - e->used ? e->used + (size_t)w : e->len - 1;
}

static const cb_field *field_named(const char *name)
{
    for (size_t i = 0; i < cb_status_nfields; i++)
        if (strcmp(cb_status_fields[i].name, name) == 0)
            return &cb_status_fields[i];
    return NULL;
}

/* A present value: a member that is neither absent nor null. */
static const cJSON *present(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v != NULL && !cJSON_IsNull(v) ? v : NULL;
}

int cb_validate_status(const cJSON *st, char *err, size_t errlen)
{
    errs e = {err, errlen, 0, 0};
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (!cJSON_IsObject(st)) {
        add_err(&e, "the status must be a JSON object");
        return e.n;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, st)
    {
        if (m->string == NULL || field_named(m->string) == NULL)
            add_err(&e, "unknown field '%.64s'", m->string != NULL ? m->string : "");
    }
    for (size_t i = 0; i < cb_status_nfields; i++) {
        const cb_field *f = &cb_status_fields[i];
        const cJSON *v = present(st, f->name);
        if (v == NULL) {
            if (f->required)
                add_err(&e, "%s is required", f->name);
            continue;
        }
        if (!cJSON_IsString(v) || v->valuestring == NULL) {
            add_err(&e, "%s must be a string", f->name);
            continue;
        }
        if (f->required && v->valuestring[0] == '\0') {
            add_err(&e, "%s is required", f->name);
            continue;
        }
        if (f->max_len > 0 && ah_utf8_len(v->valuestring) > f->max_len)
            add_err(&e, "%s is longer than %zu characters", f->name, f->max_len);
    }
    const cJSON *date = present(st, "status_date");
    if (cJSON_IsString(date) && date->valuestring[0] != '\0' &&
        !cb_date_parse(date->valuestring, NULL))
        add_err(&e, "status_date must be a UTC date and time as YYYY-MM-DDTHH:MM:SSZ, e.g. "
                    "1776-07-04T19:04:01Z");
    const cJSON *level = present(st, "status_level");
    if (!cJSON_IsString(level) || level->valuestring[0] == '\0')
        return e.n;
    const cJSON *req = present(st, "requisition_id");
    const cJSON *title = present(st, "requisition_title");
    if (strcasecmp(level->valuestring, "application") == 0) {
        if (req == NULL || (cJSON_IsString(req) && req->valuestring[0] == '\0'))
            add_err(&e, "requisition_id is required when status_level is application");
    } else if (strcasecmp(level->valuestring, "candidate") == 0) {
        if (req != NULL)
            add_err(&e, "requisition_id must be left off when status_level is candidate");
        if (title != NULL)
            add_err(&e, "requisition_title must be left off when status_level is candidate");
    } else {
        add_err(&e, "status_level must be candidate or application");
    }
    return e.n;
}

/* --- statuses.query ------------------------------------------------------------- */

static const cJSON *list_member(const cJSON *body, const char *key, const char *alias,
                                const char **name)
{
    const cJSON *a = present(body, key), *b = present(body, alias);
    *name = b != NULL && a == NULL ? alias : key;
    return a != NULL ? a : b;
}

static void check_list(errs *e, const char *name, const cJSON *list, size_t max_len)
{
    if (!cJSON_IsArray(list)) {
        add_err(e, "%s must be a list of strings", name);
        return;
    }
    int n = cJSON_GetArraySize(list);
    if (n == 0)
        add_err(e, "%s must not be empty", name);
    if (n > CB_MAX_QUERY_ITEMS)
        add_err(e, "%s has more than %d items", name, CB_MAX_QUERY_ITEMS);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        if (!cJSON_IsString(it) || it->valuestring[0] == '\0')
            add_err(e, "%s[%d] must be a non-empty string", name, i);
        else if (ah_utf8_len(it->valuestring) > max_len)
            add_err(e, "%s[%d] is longer than %zu characters", name, i, max_len);
        i++;
    }
}

int cb_validate_query(const cJSON *body, const char **list_key, const cJSON **list, char *err,
                      size_t errlen)
{
    errs e = {err, errlen, 0, 0};
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    *list_key = NULL;
    *list = NULL;
    if (!cJSON_IsObject(body)) {
        add_err(&e, "the query must be a JSON object");
        return e.n;
    }
    static const char *const known[] = {"account",         "candidate_email", "emails",
                                        "requisition_id",  "requisition_ids", "status_date"};
    const cJSON *m;
    cJSON_ArrayForEach(m, body)
    {
        bool ok = false;
        for (size_t i = 0; m->string != NULL && i < sizeof(known) / sizeof(known[0]); i++)
            ok = ok || strcmp(m->string, known[i]) == 0;
        if (!ok)
            add_err(&e, "unknown field '%.64s'", m->string != NULL ? m->string : "");
    }
    const char *ename, *rname;
    const cJSON *emails = list_member(body, "candidate_email", "emails", &ename);
    const cJSON *reqs = list_member(body, "requisition_id", "requisition_ids", &rname);
    if ((present(body, "candidate_email") && present(body, "emails")) ||
        (present(body, "requisition_id") && present(body, "requisition_ids")))
        add_err(&e, "give each list once");
    if (emails != NULL && reqs != NULL)
        add_err(&e, "give either candidate_email or requisition_id, not both");
    else if (emails == NULL && reqs == NULL)
        add_err(&e, "candidate_email (a list of emails) or requisition_id (a list of "
                    "requisition ids) is required");
    else if (emails != NULL)
        check_list(&e, ename, emails, CB_MAX_EMAIL);
    else
        check_list(&e, rname, reqs, CB_MAX_REQUISITION_ID);
    const cJSON *acc = present(body, "account");
    if (acc != NULL && (!cJSON_IsString(acc) || acc->valuestring[0] == '\0'))
        add_err(&e, "account must be a non-empty string");
    else if (acc != NULL && ah_utf8_len(acc->valuestring) > CB_MAX_ACCOUNT)
        add_err(&e, "account is longer than %d characters", CB_MAX_ACCOUNT);
    const cJSON *date = present(body, "status_date");
    if (date != NULL && (!cJSON_IsString(date) || !cb_date_parse(date->valuestring, NULL)))
        add_err(&e, "status_date must be a UTC date and time as YYYY-MM-DDTHH:MM:SSZ, e.g. "
                    "1776-07-04T19:04:01Z");
    if (e.n == 0) {
        *list_key = emails != NULL ? "candidate_email" : "requisition_id";
        *list = emails != NULL ? emails : reqs;
    }
    return e.n;
}

/* --- the status map setting --------------------------------------------------------- */

cJSON *cb_parse_status_map(const char *text, char *err, size_t errlen)
{
    cJSON *m = cJSON_Parse(text != NULL && *text ? text : "{}");
    if (!cJSON_IsObject(m)) {
        cJSON_Delete(m);
        snprintf(err, errlen, "status_map must be a JSON object of source status -> "
                              "CareerBuilder status");
        return NULL;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, m)
    {
        if (!cJSON_IsString(v) || v->valuestring[0] == '\0' ||
            ah_utf8_len(v->valuestring) > CB_MAX_STATUS) {
            snprintf(err, errlen,
                     "status_map: the value of '%.64s' must be a non-empty string of at most "
                     "%d characters",
                     v->string != NULL ? v->string : "", CB_MAX_STATUS);
            cJSON_Delete(m);
            return NULL;
        }
    }
    return m;
}
