/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming: one page of positions, submissions or contacts per call, each
 * record handed to host->emit_record() with its unified fields. ERecruit
 * pages by keyset ((updated_at, id) ascending, opaque cursor), so a record
 * updated while the sync engine pages is seen again later, never skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "er.h"

#define ER_TIME_MAX 64
/* Keeps the query string (and ERecruit's IN list) reasonable. */
#define ER_JOB_IDS_MAX 100
/* Room for one record's raw or fields text (cJSON needs 5 bytes more than
 * the text). */
#define ER_TEXT_MAX (64 * 1024)

static cJSON *map_job(const cJSON *item, const er_map_opts *o)
{
    (void)o;
    return er_map_job(item, false);
}

/* 10 to ER_TIME_MAX bytes of the characters of a date-time: what the
 * plugin takes as a time, from the sync engine and from ERecruit alike. */
static bool is_time(const char *s)
{
    size_t n = strlen(s);
    return n >= 10 && n <= ER_TIME_MAX && strspn(s, "0123456789-T:.+Z ") == n;
}

/* updated_after is passed to ERecruit as given (its local time, as the sync
 * engine got it from earlier records): only the characters of a date-time
 * are allowed, so that nothing else travels in the query. */
static ah_result read_time(ah_call *call, const cJSON *body, const char **out)
{
    if (ah_arg_string(call, body, "updated_after", AH_ARG_OPTIONAL, ER_TIME_MAX, out) != AH_OK)
        return AH_ERR;
    if (*out == NULL)
        return AH_OK;
    if (!is_time(*out))
        return ah_arg_fail(call, "updated_after", "a date-time such as 2025-10-06T16:30:00");
    return AH_OK;
}

/* A record's bytes in the page's text. */
typedef struct er_span {
    size_t at, len; /* len 0: none (the record is printed instead) */
} er_span;

static size_t skip_ws(const char *t, size_t n, size_t i)
{
    while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\r' || t[i] == '\n'))
        i++;
    return i;
}

/* Where each item of the page's "data" array is in its text, when "data"
 * is the page's first member (as ERecruit sends it): the items' raw
 * payloads are then the provider's own bytes, stored as sent, instead of
 * being printed again from their parsed trees (a quarter of the plugin's
 * time in a first sync, numbers through printf and sscanf). The text was
 * parsed by cJSON already (it is valid JSON): this only finds the item
 * boundaries, skipping strings. An item with blanks outside its strings
 * gets no span (it is printed compactly, as before). The number of items
 * found, or 0 when the spans cannot be used (the caller prints every item). */
static size_t item_spans(const char *t, size_t n, er_span *out, size_t max)
{
    static const char key[] = "\"data\"";
    size_t i = skip_ws(t, n, 0);
    if (i >= n || t[i] != '{')
        return 0;
    i = skip_ws(t, n, i + 1);
    if (n - i < sizeof key - 1 || memcmp(t + i, key, sizeof key - 1) != 0)
        return 0;
    i = skip_ws(t, n, i + sizeof key - 1);
    if (i >= n || t[i] != ':')
        return 0;
    i = skip_ws(t, n, i + 1);
    if (i >= n || t[i] != '[')
        return 0;
    size_t k = 0;
    i = skip_ws(t, n, i + 1);
    if (i < n && t[i] == ']')
        return 0;
    while (i < n) {
        if (k == max)
            return 0;
        size_t start = i;
        int depth = 0;
        bool blank = false, instr = false;
        for (; i < n; i++) {
            char c = t[i];
            if (instr) {
                if (c == '\\')
                    i++;
                else if (c == '"')
                    instr = false;
            } else if (c == '"') {
                instr = true;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (depth == 0)
                    break; /* the array's end */
                depth--;
            } else if (c == ',' && depth == 0) {
                break;
            } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
                blank = true;
            }
        }
        if (i >= n)
            return 0;
        size_t end = i;
        while (end > start && (t[end - 1] == ' ' || t[end - 1] == '\t' || t[end - 1] == '\r' ||
                               t[end - 1] == '\n'))
            end--;
        /* Blanks only after the item are no reason to print it. */
        bool inner = false;
        if (blank) {
            bool q = false;
            for (size_t j = start; j < end && !inner; j++) {
                if (q) {
                    if (t[j] == '\\')
                        j++;
                    else if (t[j] == '"')
                        q = false;
                } else if (t[j] == '"') {
                    q = true;
                } else if (t[j] == ' ' || t[j] == '\t' || t[j] == '\r' || t[j] == '\n') {
                    inner = true;
                }
            }
        }
        out[k].at = start;
        out[k].len = inner ? 0 : end - start;
        k++;
        if (t[i] == ']')
            return k;
        i = skip_ws(t, n, i + 1);
    }
    return 0;
}

/* Common part of the three streams: query, fetch, emit, reply. `filter`
 * is an already escaped "&name=value" suffix or NULL. */
static ah_result stream_page(ah_call *call, const cJSON *body, const char *collection,
                             const char *type, er_map_fn map, const char *filter,
                             cJSON **reply)
{
    const ah_host_api *h = call->host;
    const er_conn *c = call->conn_ctx;
    const char *after = NULL, *cursor = NULL;
    long long per_page = c->per_page;
    if (read_time(call, body, &after) != AH_OK ||
        ah_arg_string(call, body, "cursor", AH_ARG_OPTIONAL, ER_CURSOR_MAX, &cursor) != AH_OK ||
        ah_arg_int(call, body, "per_page", AH_ARG_OPTIONAL, 1, 500, &per_page) != AH_OK)
        return AH_ERR;
    ah_buf path = {0};
    ah_buf_printf(&path, "%s/%s?per_page=%lld", ER_API, collection, per_page);
    ah_buf_query(&path, call->host, "updated_after", after);
    ah_buf_query(&path, call->host, "cursor", cursor != NULL && *cursor ? cursor : NULL);
    if (filter != NULL)
        ah_buf_printf(&path, "%s", filter);
    cJSON *page = NULL;
    char *text = NULL;
    size_t text_len = 0;
    ah_result rc = er_get_page(call, &path, &page, &text, &text_len);
    if (rc != AH_OK)
        return AH_ERR;

    const cJSON *data, *next;
    if (!er_page_parts(page, &data, &next)) {
        free(text);
        cJSON_Delete(page);
        return h->fail(call, AH_E_UPSTREAM, 502,
                       "ERecruit sent a %s page without a data array, or with a next_cursor "
                       "that is not a string of at most " AH_STR(ER_CURSOR_MAX)
                       " bytes (the most atshub takes back); nothing of it was kept",
                       collection);
    }
    if (er_page_size_ok(call, data, per_page) != AH_OK) {
        free(text);
        cJSON_Delete(page);
        return AH_ERR;
    }
    er_map_opts o = er_opts(call);
    const cJSON *item;
    unsigned skipped = 0, untimed = 0;
    /* The items' bytes, used only when they match the parsed array one for
     * one. */
    size_t nitems = (size_t)cJSON_GetArraySize(data), nspans = 0, idx = 0;
    er_span *spans = text != NULL && nitems > 0 ? calloc(nitems, sizeof *spans) : NULL;
    if (spans != NULL && item_spans(text, text_len, spans, nitems) != nitems) {
        free(spans);
        spans = NULL;
    } else if (spans != NULL) {
        nspans = nitems;
    }
    /* Each record goes to the host as text (ABI 1.2), printed once into
     * these buffers, which serve the whole page. */
    char *rawbuf = malloc(ER_TEXT_MAX), *fieldsbuf = malloc(ER_TEXT_MAX);
    if (rawbuf == NULL || fieldsbuf == NULL) {
        free(rawbuf);
        free(fieldsbuf);
        free(spans);
        free(text);
        cJSON_Delete(page);
        return er_oom(call);
    }
    cJSON_ArrayForEach(item, data)
    {
        const er_span *sp = idx < nspans ? &spans[idx] : NULL;
        idx++;
        char id[ER_ID_MAX];
        if (!cJSON_IsObject(item) || !er_map_id(item, "id", id)) {
            skipped++; /* cannot be stored without an id; one bad record must not stall sync */
            continue;
        }
        cJSON *fields = map(item, &o);
        if (fields == NULL) {
            free(rawbuf);
            free(fieldsbuf);
            free(spans);
            free(text);
            cJSON_Delete(page);
            return er_oom(call);
        }
        /* An updated_at that is no date-time goes as none: the host refuses
         * one over 64 bytes, and with it the page, on every run (one bad
         * record must not stall sync). The record is kept; it only cannot
         * move the sync's window. */
        const cJSON *upd = cJSON_GetObjectItemCaseSensitive(item, "updated_at");
        const char *when = cJSON_IsString(upd) && is_time(upd->valuestring) ? upd->valuestring
                                                                              : NULL;
        if (when == NULL && upd != NULL && !cJSON_IsNull(upd))
            untimed++;
        ah_record rec = {
            .struct_size = sizeof rec,
            .type = type,
            .remote_id = id,
            .updated_at = when,
        };
        /* A record too large for the buffers goes as trees (printed by the
         * host). */
        if (sp != NULL && sp->len > 0) {
            rec.raw_json = text + sp->at;
            rec.raw_json_len = sp->len;
        } else if (cJSON_PrintPreallocated((cJSON *)item, rawbuf, ER_TEXT_MAX, false))
            rec.raw_json = rawbuf;
        else
            rec.raw = item;
        if (cJSON_PrintPreallocated(fields, fieldsbuf, ER_TEXT_MAX, false))
            rec.fields_json = fieldsbuf;
        else
            rec.fields = fields;
        rc = h->emit_record(call, &rec);
        cJSON_Delete(fields);
        if (rc != AH_OK) {
            free(rawbuf);
            free(fieldsbuf);
            free(spans);
            free(text);
            cJSON_Delete(page);
            return AH_ERR;
        }
    }
    free(rawbuf);
    free(fieldsbuf);
    free(spans);
    free(text);
    if (skipped > 0)
        h->log(call, AH_LOG_WARN, "skipped %u %s without an id", skipped, collection);
    if (untimed > 0)
        h->log(call, AH_LOG_WARN,
               "kept %u %s without their updated_at, which was no date-time of at most "
               AH_STR(ER_TIME_MAX) " bytes",
               untimed, collection);
    cJSON *r = cJSON_CreateObject();
    if (r == NULL ||
        !cJSON_AddItemToObject(r, "next_cursor",
                               cJSON_IsString(next) && next->valuestring[0] != '\0'
                                   ? cJSON_CreateString(next->valuestring)
                                   : cJSON_CreateNull())) {
        cJSON_Delete(r);
        cJSON_Delete(page);
        return er_oom(call);
    }
    cJSON_Delete(page);
    *reply = r;
    return AH_OK;
}

ah_result er_stream_jobs(ah_call *call, const cJSON *body, cJSON **reply)
{
    const er_conn *c = call->conn_ctx;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(body, "statuses");
    ah_buf filter = {0};
    ah_buf_printf(&filter, "&status=");
    if (st == NULL || cJSON_IsNull(st) || (cJSON_IsArray(st) && cJSON_GetArraySize(st) == 0)) {
        ah_buf_printf(&filter, "%s", c->job_statuses);
    } else if (cJSON_IsArray(st)) {
        const cJSON *s;
        bool first = true;
        cJSON_ArrayForEach(s, st)
        {
            if (!cJSON_IsString(s) || !er_known_job_status(s->valuestring)) {
                ah_buf_free(&filter);
                return call->host->fail(call, AH_E_INVALID, 400,
                                        "statuses may hold only draft, open, closed, filled");
            }
            ah_buf_printf(&filter, "%s%s", first ? "" : ",", s->valuestring);
            first = false;
        }
    } else {
        ah_buf_free(&filter);
        return ah_arg_fail(call, "statuses", "an array of strings");
    }
    if (ah_buf_check(call, &filter) != AH_OK) {
        ah_buf_free(&filter);
        return AH_ERR;
    }
    ah_result rc = stream_page(call, body, "positions", "job", map_job, filter.s, reply);
    ah_buf_free(&filter);
    return rc;
}

ah_result er_stream_applications(ah_call *call, const cJSON *body, cJSON **reply)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(body, "job_ids");
    ah_buf filter = {0};
    if (ids != NULL && !cJSON_IsNull(ids)) {
        if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) > ER_JOB_IDS_MAX)
            return ah_arg_fail(call, "job_ids",
                               "an array of at most " AH_STR(ER_JOB_IDS_MAX) " ids");
        const cJSON *v;
        bool first = true;
        cJSON_ArrayForEach(v, ids)
        {
            char id[ER_ID_MAX];
            if (er_id_value(v, id) != ER_ID_OK) {
                ah_buf_free(&filter);
                return call->host->fail(call, AH_E_INVALID, 400,
                                        "job_ids must hold strings or integers");
            }
            ah_buf_printf(&filter, "%s", first ? "&position_id=" : ",");
            ah_buf_url(&filter, call->host, id);
            first = false;
        }
        if (!first && ah_buf_check(call, &filter) != AH_OK) {
            ah_buf_free(&filter);
            return AH_ERR;
        }
    }
    ah_result rc = stream_page(call, body, "submissions", "application", er_map_application,
                               filter.s, reply);
    ah_buf_free(&filter);
    return rc;
}

ah_result er_stream_candidates(ah_call *call, const cJSON *body, cJSON **reply)
{
    return stream_page(call, body, "contacts", "candidate", er_map_candidate, NULL, reply);
}
