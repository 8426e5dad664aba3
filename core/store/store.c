/* SPDX-License-Identifier: Apache-2.0 */
#include "store.h"

#include "log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

ah_store *ah_store_open(const char *url, const struct ah_logger *lg, char *err,
                        size_t errlen)
{
    char dummy[1];
    if (err == NULL) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (url == NULL || *url == '\0') {
        snprintf(err, errlen, "no store URL given (expected sqlite:PATH or postgresql://...)");
        return NULL;
    }
    if (strncmp(url, "sqlite:", 7) == 0) {
        const char *path = url + 7;
        /* Accept the URL-ish spelling "sqlite://PATH" as well: "sqlite:///abs"
         * is an absolute path, "sqlite://rel" a relative one. */
        if (strncmp(path, "//", 2) == 0)
            path += 2;
        if (*path == '\0') {
            snprintf(err, errlen, "store URL '%s' names no file", url);
            return NULL;
        }
        return ah_store_sqlite_open(path, lg, err, errlen);
    }
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
        return ah_store_pg_open(url, lg, err, errlen);
    }
    /* Scrubbed: a mistyped URL may still carry a password. */
    char safe[256];
    ah_store_url_scrub(url, safe, sizeof safe);
    snprintf(err, errlen, "unknown store URL '%s' (expected sqlite:PATH or postgresql://...)",
             safe);
    return NULL;
}

void ah_store_url_scrub(const char *url, char *out, size_t outlen)
{
    if (out == NULL || outlen == 0)
        return;
    out[0] = '\0';
    if (url == NULL)
        return;
    size_t o = 0;
    const char *p = url;
    const char *hier = strstr(url, "://");
    const char *at = NULL, *colon = NULL;
    if (hier != NULL) {
        hier += 3;
        /* The user info ends at an '@' before the path: libpq looks no
         * further than the first '/' (a '?' or '#' in a password is
         * part of it), and the last such '@' covers any reading. */
        const char *end = hier + strcspn(hier, "/");
        for (const char *q = hier; q < end; q++)
            if (*q == '@')
                at = q;
        if (at != NULL)
            colon = memchr(hier, ':', (size_t)(at - hier));
    }
    bool in_query = false;
    while (*p != '\0' && o + 1 < outlen) {
        if (colon != NULL && p == colon + 1) {
            /* user:PASSWORD@ */
            for (const char *m = "***"; *m && o + 1 < outlen; m++)
                out[o++] = *m;
            p = at;
            continue;
        }
        if (*p == '?')
            in_query = true;
        if (in_query && (*p == '?' || *p == '&') && strncasecmp(p + 1, "password=", 9) == 0) {
            for (size_t k = 0; k < 10 && o + 1 < outlen; k++)
                out[o++] = p[k];
            for (const char *m = "***"; *m && o + 1 < outlen; m++)
                out[o++] = *m;
            p += 10;
            while (*p != '\0' && *p != '&' && *p != '#')
                p++;
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
}

void ah_tenant_row_free(ah_tenant_row *r)
{
    if (r == NULL)
        return;
    free(r->name);
    free(r->key_hash);
    free(r->created_at);
    memset(r, 0, sizeof *r);
}

void ah_connection_row_free(ah_connection_row *r)
{
    if (r == NULL)
        return;
    free(r->tenant);
    free(r->plugin);
    free(r->name);
    free(r->settings);
    free(r->created_at);
    free(r->updated_at);
    memset(r, 0, sizeof *r);
}

void ah_delivery_row_free(ah_delivery_row *r)
{
    if (r == NULL)
        return;
    free(r->topic);
    free(r->body);
    free(r->next_at);
    memset(r, 0, sizeof *r);
}

static bool log_entry_selected(const ah_log_entry *e, const ah_log_filter *f)
{
    if (f->action != NULL && strcmp(e->action != NULL ? e->action : "", f->action) != 0)
        return false;
    return f->status == 0 || e->status == f->status;
}

void ah_log_rows_expand(ah_log_entry *rows, size_t n, const ah_log_filter *f, int limit,
                        ah_log_cb cb, void *arg)
{
    int sent = 0;
    for (size_t i = 0; i < n && sent < limit; i++) {
        ah_log_entry *row = &rows[i];
        int64_t id = row->id;
        bool pair = row->with_request;
        /* The entries are views of the row: no copy, the strings stay the
         * row's (the engine frees them). */
        ah_log_entry own = *row;
        own.id = 2 * id + 1;
        own.with_request = false;
        own.request_body = NULL;
        if (log_entry_selected(&own, f)) {
            cb(arg, &own);
            sent++;
        }
        if (!pair || sent >= limit)
            continue;
        ah_log_entry req = own;
        req.id = 2 * id;
        req.action = (char *)"REQUEST";
        req.status = 0;
        req.duration_s = 0;
        req.body = row->request_body;
        if (log_entry_selected(&req, f)) {
            cb(arg, &req);
            sent++;
        }
    }
}

void ah_record_row_free(ah_record_row *r)
{
    if (r == NULL)
        return;
    free(r->id);
    free(r->type);
    free(r->remote_id);
    free(r->updated_at);
    free(r->raw);
    free(r->fields);
    free(r->created_at);
    free(r->stored_at);
    memset(r, 0, sizeof *r);
}

void ah_idem_row_free(ah_idem_row *r)
{
    if (r == NULL)
        return;
    free(r->body_hash);
    free(r->response);
    free(r->operation);
    free(r->created_at);
    memset(r, 0, sizeof *r);
}

void ah_bulk_job_row_free(ah_bulk_job_row *r)
{
    if (r == NULL)
        return;
    free(r->id);
    free(r->action);
    free(r->params);
    free(r->status);
    free(r->created_at);
    free(r->finished_at);
    memset(r, 0, sizeof *r);
}

void ah_bulk_item_row_free(ah_bulk_item_row *r)
{
    if (r == NULL)
        return;
    free(r->record_id);
    free(r->status);
    free(r->error_code);
    free(r->error_message);
    free(r->operation);
    memset(r, 0, sizeof *r);
}

void ah_log_entry_free(ah_log_entry *e)
{
    if (e == NULL)
        return;
    free(e->at);
    free(e->tenant);
    free(e->source);
    free(e->plugin);
    free(e->action);
    free(e->method);
    free(e->path);
    free(e->body);
    free(e->correlation_id);
    free(e->request_body);
    memset(e, 0, sizeof *e);
}

void ah_outbox_row_free(ah_outbox_row *r)
{
    if (r == NULL)
        return;
    free(r->topic);
    free(r->body);
    free(r->created_at);
    memset(r, 0, sizeof *r);
}

static void free_secret(char *s)
{
    if (s != NULL)
        explicit_bzero(s, strlen(s));
    free(s);
}

void ah_webhook_row_free(ah_webhook_row *r)
{
    if (r == NULL)
        return;
    free(r->url);
    free(r->event_types);
    free_secret(r->secret);
    free(r->disabled_at);
    free(r->created_at);
    free(r->description);
    free_secret(r->previous_secret);
    free(r->previous_until);
    memset(r, 0, sizeof *r);
}

void ah_webhook_delivery_row_free(ah_webhook_delivery_row *r)
{
    if (r == NULL)
        return;
    free(r->topic);
    free(r->status);
    free(r->last_error);
    free(r->next_at);
    free(r->delivered_at);
    memset(r, 0, sizeof *r);
}

void ah_record_mark_free(ah_record_mark *r)
{
    if (r == NULL)
        return;
    free(r->id);
    free(r->remote_id);
    free(r->remote_deleted_at);
    free(r->stored_at);
    memset(r, 0, sizeof *r);
}

void ah_stage_row_free(ah_stage_row *r)
{
    if (r == NULL)
        return;
    free(r->record_id);
    free(r->from_stage);
    free(r->to_stage);
    free(r->changed_at);
    memset(r, 0, sizeof *r);
}

bool ah_store_field_key_valid(const char *k)
{
    if (k == NULL || *k == '\0' || strlen(k) > 128)
        return false;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
              (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

int ah_record_query_plan_make(const ah_record_query *qy, const struct ah_logger *lg,
                              ah_record_query_plan *out)
{
    if (qy == NULL || qy->type == NULL)
        return AH_STORE_ERR;
    memset(out, 0, sizeof *out);
    if (qy->connection_id != 0)
        out->mask |= AH_RQ_CONN;
    if (qy->updated_after != NULL) {
        if (ah_iso_normalize(qy->updated_after, out->updated_after) != 0) {
            ah_log(lg, AH_LOG_ERROR, "store",
                   "record_query: updated_after is not an ISO-8601 time");
            return AH_STORE_ERR;
        }
        out->mask |= AH_RQ_UPDATED;
    }
    if (qy->after_id != NULL)
        out->mask |= AH_RQ_AFTER;
    if (qy->include_deleted)
        out->mask |= AH_RQ_DELETED;
    if (qy->field_key != NULL) {
        if (!ah_store_field_key_valid(qy->field_key) || qy->field_value == NULL) {
            ah_log(lg, AH_LOG_ERROR, "store",
                   "record_query: field filter key must match [A-Za-z0-9_]+ and have a "
                   "value");
            return AH_STORE_ERR;
        }
        out->mask |= AH_RQ_FIELD;
        if (qy->field_nocase)
            out->mask |= AH_RQ_NOCASE;
    }
    out->limit = qy->limit <= 0 ? 100 : qy->limit > 1000 ? 1000 : qy->limit;
    return AH_STORE_OK;
}

/* Reads exactly n decimal digits at *p. */
static bool take_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool take_char(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

int ah_iso_normalize(const char *in, char out[32])
{
    if (in == NULL)
        return -1;
    const char *p = in;
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
    if (!take_digits(&p, 4, &y) || !take_char(&p, '-') || !take_digits(&p, 2, &mo) ||
        !take_char(&p, '-') || !take_digits(&p, 2, &d))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!take_digits(&p, 2, &h) || !take_char(&p, ':') || !take_digits(&p, 2, &mi))
            return -1;
        if (take_char(&p, ':')) {
            if (!take_digits(&p, 2, &sec))
                return -1;
            if (take_char(&p, '.') || take_char(&p, ',')) {
                int ndig = 0;
                while (isdigit((unsigned char)*p)) {
                    if (ndig < 3)
                        ms = ms * 10 + (*p - '0');
                    ndig++;
                    p++;
                }
                if (ndig == 0)
                    return -1;
                for (; ndig < 3; ndig++)
                    ms *= 10;
            }
        }
        if (h > 23 || mi > 59 || sec > 60)
            return -1;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1, oh, om = 0;
            p++;
            if (!take_digits(&p, 2, &oh))
                return -1;
            if (take_char(&p, ':')) {
                if (!take_digits(&p, 2, &om))
                    return -1;
            } else if (isdigit((unsigned char)*p)) {
                if (!take_digits(&p, 2, &om))
                    return -1;
            }
            if (oh > 23 || om > 59)
                return -1;
            off = sign * (oh * 3600 + om * 60);
        }
    }
    if (*p != '\0')
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 && !(y == 1969 && mo == 12 && d == 31))
        return -1;
    t -= off;
    struct tm u;
    if (gmtime_r(&t, &u) == NULL || u.tm_year + 1900 > 9999 || u.tm_year + 1900 < 0)
        return -1;
    char buf[96]; /* ample for any int values, so the compiler sees no truncation */
    int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                     u.tm_year + 1900, u.tm_mon + 1, u.tm_mday, u.tm_hour, u.tm_min,
                     u.tm_sec, ms);
    if (n != 24)
        return -1;
    memcpy(out, buf, 25);
    return 0;
}

int ah_store_time_bound(int64_t lo, int64_t hi, const char *cutoff, ah_store_seek_fn seek,
                        void *arg, int64_t *bound)
{
    /* Every row below lo is older than cutoff; none at or past hi is. */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2, id = 0;
        char at[32] = "";
        int rc = seek(arg, mid, &id, at);
        if (rc != AH_STORE_OK)
            return rc;
        if (id > 0 && id < hi && strcmp(at, cutoff) < 0)
            lo = id + 1;
        else
            hi = mid; /* none in [mid, id), and id is not older, or past hi */
    }
    *bound = lo;
    return AH_STORE_OK;
}
