/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Notes (HTML, seed) and attachments on submissions and contacts, and the
 * seed's screening markers: a note sent with "screened": true also sets the
 * submission's status to screened_status_id (101) and tags the contact with
 * screened_tag_id (65880). Those two steps run before the note. Like every
 * write they go out once (flagged AH_HTTP_NOT_IDEMPOTENT) and a lost or cut
 * answer is reconciled, never sent again: the submission's status_id, or
 * the contact's tags, are read back and the step is done when they hold
 * the marker (step_settle). A step that cannot be settled fails the note
 * before it is sent (503 when ERecruit certainly did not act, else 502
 * outcome_unknown); a caller that then retries gets the markers again
 * (harmless: setting a status or a tag twice changes nothing) and the note
 * once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "er.h"

#define ER_NOTE_MAX (256u * 1024u)
#define ER_FILENAME_MAX 255
#define ER_DOC_MAX (64u * 1024u * 1024u)

/* Whether `v` is the id `want` (a number, or a string of digits). */
static bool is_id(const cJSON *v, long long want)
{
    if (cJSON_IsNumber(v))
        return v->valuedouble == (double)want;
    char w[ER_ID_MAX];
    snprintf(w, sizeof w, "%lld", want);
    return cJSON_IsString(v) && strcmp(v->valuestring, w) == 0;
}

/* Whether the object `cur` read back holds marker `value` in `field`: the
 * field itself (a submission's status_id) or one of its items (a contact's
 * tags). */
static bool holds_marker(const cJSON *cur, const char *field, long long value)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(cur, field);
    if (!cJSON_IsArray(f))
        return is_id(f, value);
    const cJSON *it;
    cJSON_ArrayForEach(it, f)
    {
        if (is_id(it, value))
            return true;
        /* Tags may come as objects ({"id": ...}). */
        if (cJSON_IsObject(it) && is_id(cJSON_GetObjectItemCaseSensitive(it, "id"), value))
            return true;
    }
    return false;
}

/* A screening step whose answer did not say what happened (sent: how the
 * POST ended): the object at `back_path` is read back. Done when it holds
 * the marker; not there: er_absent (not done after a lost answer, unknown
 * after a 2xx cut short); unreadable: unknown. */
static er_settled step_settle(ah_call *call, const char *back_path, const char *field,
                              long long value, const er_error *sent)
{
    cJSON *cur = NULL;
    er_settled s = er_read_back(call, back_path, &cur);
    if (s == ER_SETTLED_DONE && !holds_marker(cur, field, value))
        s = er_absent(sent);
    cJSON_Delete(cur);
    return s;
}

/* POST `path` with {"<key>": value} (a screening step), once; when the answer
 * does not say what happened, settled by reading `back_path` back and
 * finding value in its `field` (step_settle), never by sending it again.
 * `what` names the step in messages. */
static ah_result post_step(ah_call *call, const char *path, const char *key, long long value,
                           const char *back_path, const char *field, const char *what)
{
    cJSON *b = cJSON_CreateObject();
    if (b == NULL || cJSON_AddNumberToObject(b, key, (double)value) == NULL) {
        cJSON_Delete(b);
        return er_oom(call);
    }
    cJSON *resp = NULL;
    er_error err;
    ah_result rc = er_call(call, "POST", path, b, &resp, &err);
    cJSON_Delete(b);
    cJSON_Delete(resp);
    if (rc == AH_OK)
        return AH_OK;
    if (!er_maybe_done(&err))
        return er_fail(call, &err);
    call->host->log(call, AH_LOG_WARN,
                    "%s: ERecruit's answer did not say what happened; reading %s back", what,
                    back_path);
    er_settled s = step_settle(call, back_path, field, value, &err);
    if (s == ER_SETTLED_DONE)
        return AH_OK;
    return er_fail_unsettled(call, s, what, NULL);
}

static ah_result tag_contact(ah_call *call, const char *contact_id)
{
    const er_conn *c = call->conn_ctx;
    ah_buf path = {0}, back = {0};
    er_path_id(call, &path, "contacts", contact_id, "/tags");
    er_path_id(call, &back, "contacts", contact_id, NULL);
    ah_result rc = ah_buf_check(call, &path);
    if (rc == AH_OK)
        rc = ah_buf_check(call, &back);
    char what[ER_ID_MAX + 48];
    snprintf(what, sizeof what, "tagging contact %s screened", contact_id);
    if (rc == AH_OK)
        rc = post_step(call, path.s, "tag_id", c->screened_tag_id, back.s, "tags", what);
    ah_buf_free(&path);
    ah_buf_free(&back);
    return rc;
}

/* Sets the screened status of a submission and tags its contact, whose id
 * goes to contact_out. */
static ah_result screen_application(ah_call *call, const char *app_id,
                                    char contact_out[ER_ID_MAX])
{
    const er_conn *c = call->conn_ctx;
    ah_buf path = {0};
    er_path_id(call, &path, "submissions", app_id, NULL);
    if (ah_buf_check(call, &path) != AH_OK) {
        ah_buf_free(&path);
        return AH_ERR;
    }
    char *back = strdup(path.s);
    if (back == NULL) {
        ah_buf_free(&path);
        return er_oom(call);
    }
    cJSON *sub = NULL;
    ah_result rc = er_do(call, "GET", path.s, NULL, &sub);
    if (rc == AH_OK && !er_map_id(sub, "contact_id", contact_out))
        rc = call->host->fail(call, AH_E_UPSTREAM, 502,
                              "ERecruit sent submission %s without a contact_id", app_id);
    cJSON_Delete(sub);
    if (rc == AH_OK) {
        ah_buf_printf(&path, "/status");
        rc = ah_buf_check(call, &path);
    }
    char what[ER_ID_MAX + 48];
    snprintf(what, sizeof what, "marking application %s screened", app_id);
    if (rc == AH_OK)
        rc = post_step(call, path.s, "status_id", c->screened_status_id, back, "status_id",
                       what);
    ah_buf_free(&path);
    free(back);
    if (rc == AH_OK)
        rc = tag_contact(call, contact_out);
    return rc;
}

/* POSTs `body` (which carries external_ref `ref`) to `path`; *resp is the
 * created item. When the answer does not say what happened, the item is
 * looked up by its reference in the list at the same path instead of being
 * sent again (er_settle.c). */
static ah_result send_marked(ah_call *call, const char *path, const cJSON *body,
                             const char *ref, const char *what, bool settle, cJSON **resp)
{
    er_error err;
    *resp = NULL;
    if (settle) {
        /* Settling a call whose outcome stayed unknown: never sent again. */
        err = er_unknown_outcome();
    } else {
        if (er_call(call, "POST", path, body, resp, &err) == AH_OK)
            return AH_OK;
        cJSON_Delete(*resp);
        *resp = NULL;
        if (!er_maybe_done(&err))
            return er_fail(call, &err);
    }
    call->host->log(call, AH_LOG_WARN,
                    "%s: ERecruit's answer did not say what happened; looking for %s at %s",
                    what, ref, path);
    er_settled s = er_find_marked(call, path, ref, &err, resp);
    if (s == ER_SETTLED_DONE)
        return AH_OK;
    return er_fail_unsettled(call, s, what, ref);
}

/* The note as HTML (caller frees), from body.note and body.format. */
static ah_result note_html(ah_call *call, const cJSON *body, char **out)
{
    const char *note = NULL, *format = NULL;
    if (ah_arg_string(call, body, "note", AH_ARG_REQUIRED | AH_ARG_NONEMPTY, ER_NOTE_MAX,
                      &note) != AH_OK ||
        ah_arg_string(call, body, "format", AH_ARG_OPTIONAL, 16, &format) != AH_OK)
        return AH_ERR;
    if (format != NULL && strcmp(format, "html") != 0 && strcmp(format, "text") != 0)
        return ah_arg_fail(call, "format", "html or text");
    bool html = format != NULL ? strcmp(format, "html") == 0 : er_note_is_html(note);
    *out = html ? strdup(note) : er_note_html(note);
    return *out != NULL ? AH_OK : er_oom(call);
}

/* Common part of the two note operations. `collection` is "submissions"
 * or "contacts"; `id_key` the request's id member. */
static ah_result add_note(ah_call *call, const cJSON *body, const char *collection,
                          const char *id_key, bool settle, cJSON **reply)
{
    const er_conn *c = call->conn_ctx;
    char id[ER_ID_MAX], action[ER_ID_MAX], contact[ER_ID_MAX] = "";
    bool has_action = false, screened = false;
    if (er_require_id(call, body, id_key, id) != AH_OK ||
        er_optional_id(call, body, "note_action_type", action, &has_action) != AH_OK ||
        ah_arg_bool(call, body, "screened", AH_ARG_OPTIONAL, &screened) != AH_OK)
        return AH_ERR;
    if (!has_action)
        snprintf(action, sizeof action, "%lld", c->note_action_id);
    char *html = NULL;
    if (note_html(call, body, &html) != AH_OK)
        return AH_ERR;
    bool is_app = strcmp(collection, "submissions") == 0;
    ah_result rc = AH_OK;
    if (screened && !settle) {
        if (is_app) {
            rc = screen_application(call, id, contact);
        } else {
            snprintf(contact, sizeof contact, "%s", id);
            rc = tag_contact(call, id);
        }
    }
    /* The note carries a reference of ours, so that a lost answer is settled
     * by finding the note rather than by adding it again. */
    char ref[ER_REF_MAX];
    if (rc == AH_OK)
        rc = er_marker(call, ref);
    cJSON *b = rc == AH_OK ? cJSON_CreateObject() : NULL;
    if (rc == AH_OK && (b == NULL || cJSON_AddStringToObject(b, "body_html", html) == NULL ||
                        !cJSON_AddItemToObject(b, "action_id", er_id_json(action)) ||
                        cJSON_AddStringToObject(b, "external_ref", ref) == NULL))
        rc = er_oom(call);
    free(html);
    ah_buf path = {0};
    if (rc == AH_OK) {
        er_path_id(call, &path, collection, id, "/notes");
        rc = ah_buf_check(call, &path);
    }
    cJSON *resp = NULL;
    if (rc == AH_OK)
        rc = send_marked(call, path.s, b, ref, "adding the note", settle, &resp);
    ah_buf_free(&path);
    cJSON_Delete(b);
    if (rc != AH_OK) {
        cJSON_Delete(resp);
        return AH_ERR;
    }
    cJSON *note = er_map_note(resp);
    cJSON_Delete(resp);
    if (note == NULL)
        note = cJSON_CreateObject(); /* created, but ERecruit did not echo it */
    bool ok = note != NULL && cJSON_AddStringToObject(note, id_key, id) != NULL &&
              cJSON_AddBoolToObject(note, "screened", screened) != NULL &&
              (!screened || contact[0] == '\0' ||
               cJSON_AddStringToObject(note, "candidate_id", contact) != NULL);
    if (!ok) {
        cJSON_Delete(note);
        return er_oom(call);
    }
    *reply = note;
    return AH_OK;
}

ah_result er_note_to_application(ah_call *call, const cJSON *body, cJSON **reply)
{
    return add_note(call, body, "submissions", "application_id", false, reply);
}

ah_result er_note_to_candidate(ah_call *call, const cJSON *body, cJSON **reply)
{
    return add_note(call, body, "contacts", "candidate_id", false, reply);
}

ah_result er_settle_note_app(ah_call *call, const cJSON *body, cJSON **reply)
{
    return add_note(call, body, "submissions", "application_id", true, reply);
}

ah_result er_settle_note_cand(ah_call *call, const cJSON *body, cJSON **reply)
{
    return add_note(call, body, "contacts", "candidate_id", true, reply);
}

/* --- attachments --------------------------------------------------------- */

static bool good_filename(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ER_FILENAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/' || s[i] == '\\' || (unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static bool good_base64(const char *s)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n";
    return s[0] != '\0' && strspn(s, alphabet) == strlen(s);
}

static bool good_token(const char *s, const char *extra)
{
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr(extra, *s) != NULL))
            return false;
    return true;
}

static ah_result add_document(ah_call *call, const cJSON *body, const char *collection,
                              const char *id_key, bool with_kind, bool settle, cJSON **reply)
{
    const ah_host_api *h = call->host;
    char id[ER_ID_MAX];
    if (settle) {
        /* The host keeps no file: only the target and the marker matter. */
        char ref[ER_REF_MAX];
        if (er_require_id(call, body, id_key, id) != AH_OK || er_marker(call, ref) != AH_OK)
            return AH_ERR;
        ah_buf path = {0};
        er_path_id(call, &path, collection, id, "/documents");
        if (ah_buf_check(call, &path) != AH_OK) {
            ah_buf_free(&path);
            return AH_ERR;
        }
        cJSON *resp = NULL;
        ah_result rc = send_marked(call, path.s, NULL, ref, "adding the document", true, &resp);
        ah_buf_free(&path);
        cJSON *doc = rc == AH_OK ? er_map_document(resp) : NULL;
        cJSON_Delete(resp);
        if (rc != AH_OK)
            return AH_ERR;
        if (doc == NULL || cJSON_AddStringToObject(doc, id_key, id) == NULL) {
            cJSON_Delete(doc);
            return er_oom(call);
        }
        *reply = doc;
        return AH_OK;
    }
    const char *filename = NULL, *data = NULL, *type = NULL, *kind = NULL;
    if (er_require_id(call, body, id_key, id) != AH_OK ||
        ah_arg_string(call, body, "filename", AH_ARG_REQUIRED, ER_FILENAME_MAX, &filename) !=
            AH_OK ||
        ah_arg_string(call, body, "data_base64", AH_ARG_REQUIRED | AH_ARG_NONEMPTY, ER_DOC_MAX,
                      &data) != AH_OK ||
        ah_arg_string(call, body, "content_type", AH_ARG_OPTIONAL, 100, &type) != AH_OK ||
        (with_kind && ah_arg_string(call, body, "kind", AH_ARG_OPTIONAL, 32, &kind) != AH_OK))
        return AH_ERR;
    if (!good_filename(filename)) {
        char what[96];
        snprintf(what, sizeof what,
                 "a name of 1 to %d bytes without '/', '\\' or control characters",
                 ER_FILENAME_MAX);
        return ah_arg_fail(call, "filename", what);
    }
    if (!good_base64(data))
        return h->fail(call, AH_E_INVALID, 400, "data_base64 is not base64");
    if (type != NULL && (strchr(type, '/') == NULL || !good_token(type, "/.+-")))
        return ah_arg_fail(call, "content_type", "a media type");
    if (kind != NULL && (kind[0] == '\0' || !good_token(kind, "_-")))
        return ah_arg_fail(call, "kind", "a word such as resume");
    char ref[ER_REF_MAX];
    if (er_marker(call, ref) != AH_OK)
        return AH_ERR;
    cJSON *b = cJSON_CreateObject();
    bool ok = b != NULL && cJSON_AddStringToObject(b, "external_ref", ref) != NULL &&
              cJSON_AddStringToObject(b, "filename", filename) != NULL &&
              cJSON_AddStringToObject(b, "content_type",
                                      type != NULL ? type : "application/pdf") != NULL &&
              cJSON_AddStringToObject(b, "data_base64", data) != NULL &&
              (kind == NULL || cJSON_AddStringToObject(b, "kind", kind) != NULL);
    ah_buf path = {0};
    if (ok) {
        er_path_id(call, &path, collection, id, "/documents");
        ok = !path.oom;
    }
    if (!ok) {
        cJSON_Delete(b);
        ah_buf_free(&path);
        return er_oom(call);
    }
    cJSON *resp = NULL;
    ah_result rc = send_marked(call, path.s, b, ref, "adding the document", false, &resp);
    ah_buf_free(&path);
    cJSON_Delete(b);
    if (rc != AH_OK)
        return AH_ERR;
    cJSON *doc = er_map_document(resp);
    cJSON_Delete(resp);
    if (doc == NULL)
        doc = cJSON_CreateObject();
    if (doc == NULL || cJSON_AddStringToObject(doc, id_key, id) == NULL) {
        cJSON_Delete(doc);
        return er_oom(call);
    }
    *reply = doc;
    return AH_OK;
}

ah_result er_attach_to_application(ah_call *call, const cJSON *body, cJSON **reply)
{
    return add_document(call, body, "submissions", "application_id", false, false, reply);
}

ah_result er_attach_to_candidate(ah_call *call, const cJSON *body, cJSON **reply)
{
    return add_document(call, body, "contacts", "candidate_id", true, false, reply);
}

ah_result er_settle_doc_app(ah_call *call, const cJSON *body, cJSON **reply)
{
    return add_document(call, body, "submissions", "application_id", false, true, reply);
}

ah_result er_settle_doc_cand(ah_call *call, const cJSON *body, cJSON **reply)
{
    return add_document(call, body, "contacts", "candidate_id", true, true, reply);
}
