/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Settling writes whose outcome is unknown (WIRE.md, "Exactly once"). Every
 * write goes out flagged AH_HTTP_NOT_IDEMPOTENT (er_call), so the host never
 * sends it twice; when its answer is lost, cut short or a 500/502/504, the
 * operation asks ERecruit what happened instead of sending it again:
 *
 *  - creations (notes, documents, submissions) carry an `external_ref`
 *    atshub chose, and are looked up by it in the list they belong to;
 *  - state changes (stage, reject, custom field values) read the state
 *    back.
 *
 * Found: done. Not found after an unknown outcome: ERecruit did not act
 * (503, safe to send again). Not found after a 2xx whose body was cut
 * short, or ERecruit cannot be read: outcome_unknown (502), never re-sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "er.h"

/* Pages of a list read to find one marked item, at most. */
#define ER_SETTLE_PAGES 200

bool er_maybe_done(const er_error *err)
{
    return err->outcome == AH_OUTCOME_UNKNOWN || err->outcome == AH_OUTCOME_DONE;
}

ah_result er_marker(ah_call *call, char out[ER_REF_MAX])
{
    /* From the call's correlation id when there is one: the host calls a
     * settle function later with the same id, which finds the write again. */
    const char *corr = call->correlation_id;
    if (corr != NULL && corr[0] != '\0' && strlen(corr) + 8 <= ER_REF_MAX) {
        snprintf(out, ER_REF_MAX, "atshub-%s", corr);
        return AH_OK;
    }
    int64_t n = 0;
    if (call->host->sequence_next(call, "erecruit.external_ref", &n) != AH_OK)
        return AH_ERR;
    snprintf(out, ER_REF_MAX, "atshub-%lld", (long long)n);
    return AH_OK;
}

er_settled er_absent(const er_error *sent)
{
    /* A 2xx says ERecruit acted: not seeing it then is no proof it did not. */
    return sent->outcome == AH_OUTCOME_DONE ? ER_SETTLED_UNKNOWN : ER_SETTLED_NOT_DONE;
}

er_settled er_find_marked(ah_call *call, const char *list_path, const char *marker,
                          const er_error *sent, cJSON **found)
{
    *found = NULL;
    char *cursor = NULL;
    /* A list that pages (submissions) is walked to its end. */
    for (int page = 0; page < ER_SETTLE_PAGES; page++) {
        ah_buf path = {0};
        ah_buf_puts(&path, list_path);
        if (cursor != NULL) {
            ah_buf_puts(&path, strchr(list_path, '?') != NULL ? "&cursor=" : "?cursor=");
            ah_buf_url(&path, call->host, cursor);
            free(cursor);
            cursor = NULL;
        }
        cJSON *resp = NULL;
        er_error err;
        ah_result rc = path.oom ? AH_ERR : er_call(call, "GET", path.s, NULL, &resp, &err);
        ah_buf_free(&path);
        cJSON *data = cJSON_GetObjectItemCaseSensitive(resp, "data");
        if (rc != AH_OK || !cJSON_IsArray(data)) {
            cJSON_Delete(resp);
            return ER_SETTLED_UNKNOWN;
        }
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, data)
        {
            const cJSON *ref = cJSON_GetObjectItemCaseSensitive(it, "external_ref");
            if (cJSON_IsString(ref) && strcmp(ref->valuestring, marker) == 0) {
                *found = cJSON_DetachItemFromArray(data, i);
                cJSON_Delete(resp);
                return *found != NULL ? ER_SETTLED_DONE : ER_SETTLED_UNKNOWN;
            }
            i++;
        }
        const cJSON *next = cJSON_GetObjectItemCaseSensitive(resp, "next_cursor");
        if (cJSON_IsString(next) && next->valuestring[0] != '\0')
            cursor = strdup(next->valuestring);
        cJSON_Delete(resp);
        if (cursor == NULL)
            return er_absent(sent);
    }
    free(cursor);
    return ER_SETTLED_UNKNOWN; /* too long a list to say it is not there */
}

er_settled er_read_back(ah_call *call, const char *path, cJSON **cur)
{
    *cur = NULL;
    er_error err;
    if (er_call(call, "GET", path, NULL, cur, &err) != AH_OK || !cJSON_IsObject(*cur)) {
        cJSON_Delete(*cur);
        *cur = NULL;
        return ER_SETTLED_UNKNOWN;
    }
    return ER_SETTLED_DONE;
}

ah_result er_fail_unsettled(ah_call *call, er_settled s, const char *what, const char *marker)
{
    const ah_host_api *h = call->host;
    char ref[ER_REF_MAX + 32] = "";
    if (marker != NULL)
        snprintf(ref, sizeof ref, " (external_ref %s)", marker);
    if (s == ER_SETTLED_NOT_DONE)
        return h->fail(call, AH_E_UNAVAILABLE, 503,
                       "%s: ERecruit did not carry it out%s; safe to send again", what, ref);
    return h->fail(call, AH_E_OUTCOME_UNKNOWN, 502,
                   "%s: ERecruit may have carried it out%s and cannot tell now; it was not sent "
                   "again",
                   what, ref);
}

er_error er_unknown_outcome(void)
{
    er_error e;
    memset(&e, 0, sizeof e);
    e.outcome = AH_OUTCOME_UNKNOWN;
    return e;
}
