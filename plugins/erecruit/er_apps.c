/* SPDX-License-Identifier: Apache-2.0 */
/* Applications (ERecruit submissions): stage moves, rejection, bulk
 * rejection, creation, the stage list, and disposition reasons. */
#include <stdio.h>
#include <string.h>

#include "er.h"

/* One request body is one batch; larger batches are the caller's to split. */
#define ER_BULK_MAX 500

/* The unified application ERecruit answered with, or `fallback` (taken)
 * when its answer carries no submission (an empty 200). */
static ah_result app_reply(ah_call *call, const cJSON *resp, cJSON *fallback, cJSON **reply)
{
    char id[ER_ID_MAX];
    if (cJSON_IsObject(resp) && er_map_id(resp, "id", id)) {
        er_map_opts o = er_opts(call);
        cJSON *a = er_map_application(resp, &o);
        if (a == NULL) {
            cJSON_Delete(fallback);
            return er_oom(call);
        }
        cJSON_Delete(fallback);
        *reply = a;
        return AH_OK;
    }
    if (fallback == NULL)
        return er_oom(call);
    *reply = fallback;
    return AH_OK;
}

/* POST `path` with {"<key>": id}; *resp is ERecruit's answer. */
static ah_result post_id(ah_call *call, const char *path, const char *key, const char *id,
                         cJSON **resp, er_error *err)
{
    cJSON *b = cJSON_CreateObject();
    cJSON *v = er_id_json(id);
    if (b == NULL || v == NULL || !cJSON_AddItemToObject(b, key, v)) {
        cJSON_Delete(b);
        cJSON_Delete(v);
        memset(err, 0, sizeof *err);
        snprintf(err->code, sizeof err->code, "%s", AH_E_INTERNAL);
        err->http_status = 500;
        snprintf(err->message, sizeof err->message, "out of memory");
        return AH_ERR;
    }
    ah_result rc = er_call(call, "POST", path, b, resp, err);
    cJSON_Delete(b);
    return rc;
}

/* POST /submissions/{id}/<suffix> with {"<key>": value}. */
static ah_result post_to_submission(ah_call *call, const char *app_id, const char *suffix,
                                    const char *key, const char *value, cJSON **resp,
                                    er_error *err)
{
    ah_buf path = {0};
    er_path_id(call, &path, "submissions", app_id, suffix);
    if (path.oom) {
        ah_buf_free(&path);
        memset(err, 0, sizeof *err);
        snprintf(err->code, sizeof err->code, "%s", AH_E_INTERNAL);
        err->http_status = 500;
        snprintf(err->message, sizeof err->message, "out of memory");
        return AH_ERR;
    }
    ah_result rc = post_id(call, path.s, key, value, resp, err);
    ah_buf_free(&path);
    return rc;
}

static cJSON *minimal_app(const char *id)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || cJSON_AddStringToObject(o, "remote_id", id) == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* A stage move whose answer did not say what happened (lost, cut short,
 * unreadable, a 5xx): the submission is read back, never moved again. In
 * the stage: done, with the submission read. In another stage after an
 * unknown outcome: not moved (safe to send again). Unreadable: unknown. */
static ah_result reconcile_stage(ah_call *call, const char *app, const char *stage,
                                 const er_error *sent, cJSON **reply)
{
    const ah_host_api *h = call->host;
    h->log(call, AH_LOG_WARN,
           "moving application %s to stage %s: ERecruit's answer did not say what happened; "
           "reading the application back",
           app, stage);
    ah_buf path = {0};
    er_path_id(call, &path, "submissions", app, NULL);
    if (path.oom) {
        ah_buf_free(&path);
        return er_oom(call);
    }
    cJSON *cur = NULL;
    er_error err;
    ah_result rc = er_call(call, "GET", path.s, NULL, &cur, &err);
    ah_buf_free(&path);
    char now[ER_ID_MAX];
    if (rc != AH_OK || !cJSON_IsObject(cur) || !er_map_id(cur, "stage_id", now)) {
        cJSON_Delete(cur);
        return h->fail(call, AH_E_OUTCOME_UNKNOWN, 502,
                       "moving application %s to stage %s: ERecruit may have moved it and "
                       "cannot be read back now; it was not sent again",
                       app, stage);
    }
    if (strcmp(now, stage) == 0) {
        rc = app_reply(call, cur, minimal_app(app), reply);
        cJSON_Delete(cur);
        return rc;
    }
    cJSON_Delete(cur);
    if (sent->outcome == AH_OUTCOME_DONE) /* a 2xx says it moved: no proof it did not */
        return h->fail(call, AH_E_OUTCOME_UNKNOWN, 502,
                       "moving application %s to stage %s: ERecruit accepted the move but the "
                       "application reads stage %s; it was not sent again",
                       app, stage, now);
    return h->fail(call, AH_E_UNAVAILABLE, 503,
                   "moving application %s to stage %s: ERecruit did not move it (it is in "
                   "stage %s); safe to send again",
                   app, stage, now);
}

ah_result er_app_move_to_stage(ah_call *call, const cJSON *body, cJSON **reply)
{
    char app[ER_ID_MAX], stage[ER_ID_MAX];
    if (er_require_id(call, body, "application_id", app) != AH_OK ||
        er_require_id(call, body, "stage_id", stage) != AH_OK)
        return AH_ERR;
    cJSON *resp = NULL;
    er_error err;
    if (post_to_submission(call, app, "/stage", "stage_id", stage, &resp, &err) != AH_OK) {
        if (err.outcome == AH_OUTCOME_UNKNOWN || err.outcome == AH_OUTCOME_DONE)
            return reconcile_stage(call, app, stage, &err, reply);
        return er_fail(call, &err);
    }
    cJSON *fb = minimal_app(app);
    if (fb != NULL && cJSON_AddStringToObject(fb, "stage_id", stage) == NULL) {
        cJSON_Delete(fb);
        fb = NULL;
    }
    ah_result rc = app_reply(call, resp, fb, reply);
    cJSON_Delete(resp);
    return rc;
}

/* A rejection whose answer did not say what happened: the submission is
 * read back. Rejected with that reason: done (*cur is the submission,
 * transferred). Not rejected: er_absent(sent). Unreadable: unknown. */
static er_settled settle_reject(ah_call *call, const char *app, const char *reason,
                                const er_error *sent, cJSON **cur)
{
    call->host->log(call, AH_LOG_WARN,
                    "rejecting application %s: ERecruit's answer did not say what happened; "
                    "reading the application back",
                    app);
    *cur = NULL;
    ah_buf path = {0};
    er_path_id(call, &path, "submissions", app, NULL);
    if (path.oom) {
        ah_buf_free(&path);
        return ER_SETTLED_UNKNOWN;
    }
    er_settled s = er_read_back(call, path.s, cur);
    ah_buf_free(&path);
    if (s != ER_SETTLED_DONE)
        return s;
    char now[ER_ID_MAX];
    const cJSON *rej = cJSON_GetObjectItemCaseSensitive(*cur, "rejected");
    if (cJSON_IsTrue(rej) && er_map_id(*cur, "disposition_reason_id", now) &&
        strcmp(now, reason) == 0)
        return ER_SETTLED_DONE;
    cJSON_Delete(*cur);
    *cur = NULL;
    /* Rejected with another reason: someone else did it, not this write. */
    return er_absent(sent);
}

ah_result er_app_reject(ah_call *call, const cJSON *body, cJSON **reply)
{
    char app[ER_ID_MAX], reason[ER_ID_MAX];
    if (er_require_id(call, body, "application_id", app) != AH_OK ||
        er_require_id(call, body, "reason_id", reason) != AH_OK)
        return AH_ERR;
    cJSON *resp = NULL;
    er_error err;
    if (post_to_submission(call, app, "/reject", "reason_id", reason, &resp, &err) != AH_OK) {
        if (!er_maybe_done(&err))
            return er_fail(call, &err);
        er_settled s = settle_reject(call, app, reason, &err, &resp);
        if (s != ER_SETTLED_DONE) {
            char what[ER_ID_MAX + 40];
            snprintf(what, sizeof what, "rejecting application %s", app);
            return er_fail_unsettled(call, s, what, NULL);
        }
    }
    cJSON *fb = minimal_app(app);
    if (fb != NULL && (cJSON_AddStringToObject(fb, "status", "rejected") == NULL ||
                       cJSON_AddTrueToObject(fb, "rejected") == NULL ||
                       cJSON_AddStringToObject(fb, "reject_reason_id", reason) == NULL)) {
        cJSON_Delete(fb);
        fb = NULL;
    }
    ah_result rc = app_reply(call, resp, fb, reply);
    cJSON_Delete(resp);
    return rc;
}

ah_result er_settle_move(ah_call *call, const cJSON *body, cJSON **reply)
{
    char app[ER_ID_MAX], stage[ER_ID_MAX];
    if (er_require_id(call, body, "application_id", app) != AH_OK ||
        er_require_id(call, body, "stage_id", stage) != AH_OK)
        return AH_ERR;
    er_error sent = er_unknown_outcome();
    return reconcile_stage(call, app, stage, &sent, reply);
}

ah_result er_settle_reject(ah_call *call, const cJSON *body, cJSON **reply)
{
    char app[ER_ID_MAX], reason[ER_ID_MAX];
    if (er_require_id(call, body, "application_id", app) != AH_OK ||
        er_require_id(call, body, "reason_id", reason) != AH_OK)
        return AH_ERR;
    er_error sent = er_unknown_outcome();
    cJSON *cur = NULL;
    er_settled s = settle_reject(call, app, reason, &sent, &cur);
    if (s != ER_SETTLED_DONE) {
        char what[ER_ID_MAX + 40];
        snprintf(what, sizeof what, "rejecting application %s", app);
        return er_fail_unsettled(call, s, what, NULL);
    }
    ah_result rc = app_reply(call, cur, minimal_app(app), reply);
    cJSON_Delete(cur);
    return rc;
}

/* One result of bulk_reject; false on ENOMEM. */
static bool add_result(cJSON *results, const char *id, const er_error *err)
{
    cJSON *r = cJSON_CreateObject();
    if (r == NULL || !cJSON_AddItemToArray(results, r)) {
        cJSON_Delete(r);
        return false;
    }
    if (cJSON_AddStringToObject(r, "application_id", id) == NULL ||
        cJSON_AddBoolToObject(r, "ok", err == NULL) == NULL)
        return false;
    if (err == NULL)
        return true;
    cJSON *e = cJSON_AddObjectToObject(r, "error");
    return e != NULL && cJSON_AddStringToObject(e, "code", err->code) != NULL &&
           cJSON_AddStringToObject(e, "message", err->message) != NULL;
}

ah_result er_app_bulk_reject(ah_call *call, const cJSON *body, cJSON **reply)
{
    const ah_host_api *h = call->host;
    char reason[ER_ID_MAX];
    const cJSON *ids = NULL;
    if (ah_arg_array(call, body, "application_ids", AH_ARG_REQUIRED, 1, ER_BULK_MAX, &ids) !=
            AH_OK ||
        er_require_id(call, body, "reason_id", reason) != AH_OK)
        return AH_ERR;
    /* Check every id before touching ERecruit: malformed input changes nothing. */
    const cJSON *v;
    int i = 0;
    cJSON_ArrayForEach(v, ids)
    {
        char id[ER_ID_MAX];
        if (er_id_value(v, id) != ER_ID_OK) {
            char key[48];
            snprintf(key, sizeof key, "application_ids[%d]", i);
            return ah_arg_fail(call, key, "a non-empty string or an integer");
        }
        i++;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON *results = out != NULL ? cJSON_AddArrayToObject(out, "results") : NULL;
    if (results == NULL) {
        cJSON_Delete(out);
        return er_oom(call);
    }
    int ok = 0, failed = 0;
    cJSON_ArrayForEach(v, ids)
    {
        char id[ER_ID_MAX];
        er_id_value(v, id);
        cJSON *resp = NULL;
        er_error err;
        bool done = post_to_submission(call, id, "/reject", "reason_id", reason, &resp, &err) ==
                    AH_OK;
        cJSON_Delete(resp);
        resp = NULL;
        if (!done && er_maybe_done(&err)) {
            /* Never sent twice: read back, as applications.reject does. */
            er_settled st = settle_reject(call, id, reason, &err, &resp);
            cJSON_Delete(resp);
            done = st == ER_SETTLED_DONE;
            if (!done) {
                snprintf(err.code, sizeof err.code, "%s",
                         st == ER_SETTLED_NOT_DONE ? AH_E_UNAVAILABLE : AH_E_OUTCOME_UNKNOWN);
                snprintf(err.message, sizeof err.message, "%s",
                         st == ER_SETTLED_NOT_DONE
                             ? "ERecruit did not reject it; safe to send again"
                             : "ERecruit may have rejected it and cannot tell now; it was "
                               "not sent again");
            }
        }
        if (!add_result(results, id, done ? NULL : &err)) {
            cJSON_Delete(out);
            return er_oom(call);
        }
        if (done) {
            ok++;
            continue;
        }
        failed++;
        h->log(call, AH_LOG_INFO, "bulk reject: application %s: %s", id, err.message);
    }
    if (cJSON_AddNumberToObject(out, "succeeded", ok) == NULL ||
        cJSON_AddNumberToObject(out, "failed", failed) == NULL) {
        cJSON_Delete(out);
        return er_oom(call);
    }
    *reply = out;
    return AH_OK;
}

static ah_result create_app(ah_call *call, const cJSON *body, bool settle, cJSON **reply)
{
    char cand[ER_ID_MAX], job[ER_ID_MAX], stage[ER_ID_MAX];
    bool has_stage = false;
    if (er_require_id(call, body, "candidate_id", cand) != AH_OK ||
        er_require_id(call, body, "job_id", job) != AH_OK ||
        er_optional_id(call, body, "stage_id", stage, &has_stage) != AH_OK)
        return AH_ERR;
    /* The submission carries a reference of ours, so that a lost answer is
     * settled by finding it among the position's submissions. */
    char ref[ER_REF_MAX];
    if (er_marker(call, ref) != AH_OK)
        return AH_ERR;
    cJSON *b = cJSON_CreateObject();
    if (b == NULL || !cJSON_AddItemToObject(b, "contact_id", er_id_json(cand)) ||
        !cJSON_AddItemToObject(b, "position_id", er_id_json(job)) ||
        (has_stage && !cJSON_AddItemToObject(b, "stage_id", er_id_json(stage))) ||
        cJSON_AddStringToObject(b, "external_ref", ref) == NULL) {
        cJSON_Delete(b);
        return er_oom(call);
    }
    cJSON *resp = NULL;
    er_error err;
    ah_result rc = AH_ERR;
    if (settle) /* the host settles a call whose outcome stayed unknown: never sent again */
        err = er_unknown_outcome();
    else
        rc = er_call(call, "POST", ER_API "/submissions", b, &resp, &err);
    cJSON_Delete(b);
    if (rc != AH_OK) {
        if (!er_maybe_done(&err))
            return er_fail(call, &err);
        ah_buf path = {0};
        const er_conn *c = call->conn_ctx;
        ah_buf_printf(&path, ER_API "/submissions?per_page=%d&position_id=", c->per_page);
        ah_buf_url(&path, call->host, job);
        if (ah_buf_check(call, &path) != AH_OK) {
            ah_buf_free(&path);
            return AH_ERR;
        }
        er_settled s = er_find_marked(call, path.s, ref, &err, &resp);
        ah_buf_free(&path);
        if (s != ER_SETTLED_DONE)
            return er_fail_unsettled(call, s, "creating the application", ref);
    }
    char id[ER_ID_MAX];
    if (!er_map_id(resp, "id", id)) {
        cJSON_Delete(resp);
        return call->host->fail(call, AH_E_UPSTREAM, 502,
                                "ERecruit created a submission but did not return it");
    }
    rc = app_reply(call, resp, NULL, reply);
    cJSON_Delete(resp);
    return rc;
}

ah_result er_app_create(ah_call *call, const cJSON *body, cJSON **reply)
{
    return create_app(call, body, false, reply);
}

ah_result er_settle_create(ah_call *call, const cJSON *body, cJSON **reply)
{
    return create_app(call, body, true, reply);
}

static cJSON *map_stage(const cJSON *item, const er_map_opts *o)
{
    (void)o;
    return er_map_stage(item);
}

static cJSON *map_reason(const cJSON *item, const er_map_opts *o)
{
    (void)o;
    return er_map_reason(item);
}

/* GET `path` ({"data":[...]}) -> {"<key>": [mapped items]}. */
static ah_result list_of(ah_call *call, const char *path, const char *key, er_map_fn map,
                         cJSON **reply)
{
    cJSON *resp = NULL;
    if (er_do(call, "GET", path, NULL, &resp) != AH_OK)
        return AH_ERR;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(resp, "data");
    if (!cJSON_IsArray(data)) {
        cJSON_Delete(resp);
        return call->host->fail(call, AH_E_UPSTREAM, 502, "ERecruit sent no data array for %s",
                                path);
    }
    cJSON *out = cJSON_CreateObject();
    bool ok = out != NULL && er_map_items(cJSON_AddArrayToObject(out, key), data, map, NULL);
    cJSON_Delete(resp);
    if (!ok) {
        cJSON_Delete(out);
        return er_oom(call);
    }
    *reply = out;
    return AH_OK;
}

ah_result er_app_list_stages(ah_call *call, const cJSON *body, cJSON **reply)
{
    return list_of(call, ER_API "/stages", "stages", map_stage, reply);
}

ah_result er_dispositions_list(ah_call *call, const cJSON *body, cJSON **reply)
{
    return list_of(call, ER_API "/disposition-reasons", "reasons", map_reason, reply);
}
