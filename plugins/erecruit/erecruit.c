/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ERecruit provider plugin: ERecruit API 2.0 (WIRE.md) behind every
 * capability table the seed names. This file holds the descriptor, the
 * settings and the per-connection context; the operations live in
 * er_*.c, one file per responsibility.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "er.h"

#define ER_URL_MAX 2048

static const ah_setting_spec er_settings[] = {
    {"base_url", AH_SET_URL, NULL, AH_SETTING_REQUIRED,
     "Customer-specific ERecruit base URL, e.g. https://acme.erecruit.example.com"},
    {"token_url", AH_SET_STRING, "/t/token", 0,
     "OAuth2 token endpoint: a path under base_url or an absolute URL"},
    {"client_id", AH_SET_STRING, NULL, AH_SETTING_REQUIRED, "OAuth2 client id"},
    {"client_secret", AH_SET_STRING, NULL, AH_SETTING_REQUIRED | AH_SETTING_SECRET,
     "OAuth2 client secret"},
    {"per_page", AH_SET_INT, "500", 0, "Records per streamed page (1..500)"},
    {"job_statuses", AH_SET_LIST, "open,closed,draft,filled", 0,
     "Position statuses jobs.stream fetches when the request names none"},
    {"note_action_id", AH_SET_INT, "496", 0,
     "Note action of notes sent without note_action_type (atshub prescreen note)"},
    {"screened_tag_id", AH_SET_INT, "65880", 0, "Tag put on screened contacts"},
    {"screened_status_id", AH_SET_INT, "101", 0, "Status put on screened submissions"},
    {"rate_limit_rps", AH_SET_INT, NULL, 0,
     "Pace the connection's requests (requests/second; none by default: ERecruit "
     "documents no limit, its 429 + Retry-After are honoured)"},
    {NULL, 0, NULL, 0, NULL},
};

static ah_result bad_setting(ah_call *call, er_conn *c, const char *key, const char *why)
{
    free(c);
    return call->host->fail(call, "configuration_error", 500, "setting %s: %s", key, why);
}

static const char *setting_or(const ah_call *call, const char *key, const char *def)
{
    const char *v = call->host->setting(call, key);
    return v != NULL ? v : def;
}

static bool parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    if (s == NULL || *s == '\0')
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool http_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

static bool copy_setting(char *dst, size_t n, const char *v)
{
    if (v == NULL || v[0] == '\0' || strlen(v) >= n)
        return false;
    memcpy(dst, v, strlen(v) + 1);
    return true;
}

/* "open, closed" -> "open,closed"; false on an unknown or empty list. */
static bool parse_statuses(const char *list, char *out, size_t n)
{
    out[0] = '\0';
    size_t w = 0;
    const char *p = list;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        char word[16];
        if (len == 0 || len >= sizeof word)
            return false;
        memcpy(word, p, len);
        word[len] = '\0';
        if (!er_known_job_status(word) || w + len + 2 > n)
            return false;
        w += (size_t)snprintf(out + w, n - w, "%s%s", w > 0 ? "," : "", word);
        if (end == NULL)
            break;
        p = end + 1;
    }
    return w > 0;
}

static ah_result er_open(ah_call *call, void **conn_ctx)
{
    const ah_host_api *h = call->host;
    er_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return er_oom(call);
    const char *base = h->setting(call, "base_url");
    if (base == NULL || base[0] == '\0')
        return bad_setting(call, c, "base_url", "is required (the customer's ERecruit URL)");
    if (strlen(base) >= ER_URL_MAX || !http_url(base))
        return bad_setting(call, c, "base_url", "must be an http(s) URL shorter than 2048 bytes");
    const char *token_url = setting_or(call, "token_url", "/t/token");
    if (!copy_setting(c->token_url, sizeof c->token_url, token_url) ||
        (token_url[0] != '/' && !http_url(token_url)))
        return bad_setting(call, c, "token_url", "must be a /path under base_url or an http(s) URL");
    if (!copy_setting(c->client_id, sizeof c->client_id, h->setting(call, "client_id")))
        return bad_setting(call, c, "client_id", "is required (at most 511 bytes)");
    if (!copy_setting(c->client_secret, sizeof c->client_secret,
                      h->setting(call, "client_secret")))
        return bad_setting(call, c, "client_secret", "is required (at most 1023 bytes)");
    long long per_page = 0;
    /* ERecruit's largest page by default: a sync costs a round trip, a
     * bus call and a store transaction per page, and 500 records still
     * bound its memory (~0.5 MB a page). */
    if (!parse_ll(setting_or(call, "per_page", "500"), 1, 500, &per_page))
        return bad_setting(call, c, "per_page", "must be an integer in 1..500");
    c->per_page = (int)per_page;
    if (!parse_statuses(setting_or(call, "job_statuses", "open,closed,draft,filled"),
                        c->job_statuses, sizeof c->job_statuses))
        return bad_setting(call, c, "job_statuses",
                           "must list some of open, closed, draft, filled");
    static const struct {
        const char *key, *def;
        size_t offset;
    } ids[] = {
        {"note_action_id", "496", offsetof(er_conn, note_action_id)},
        {"screened_tag_id", "65880", offsetof(er_conn, screened_tag_id)},
        {"screened_status_id", "101", offsetof(er_conn, screened_status_id)},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        long long *dst = (long long *)(void *)((char *)c + ids[i].offset);
        if (!parse_ll(setting_or(call, ids[i].key, ids[i].def), 1, 999999999999LL, dst))
            return bad_setting(call, c, ids[i].key, "must be a positive integer");
    }
    *conn_ctx = c;
    return AH_OK;
}

static void er_close(void *plugin_state, void *conn_ctx)
{
    er_conn *c = conn_ctx;
    if (c == NULL)
        return;
    /* The secret should not linger in freed memory. */
    memset(c->client_secret, 0, sizeof c->client_secret);
    free(c);
}

static const ah_streaming_ops er_streaming = {
    .struct_size = sizeof(ah_streaming_ops),
    .jobs = er_stream_jobs,
    .applications = er_stream_applications,
    .candidates = er_stream_candidates,
    .backfill_hours = 2, /* seed: ERecruit stamps records in local time */
};

static const ah_applications_ops er_applications = {
    .struct_size = sizeof(ah_applications_ops),
    .move_to_stage = er_app_move_to_stage,
    .reject = er_app_reject,
    .bulk_reject = er_app_bulk_reject,
    .create = er_app_create,
    .list_stages = er_app_list_stages,
};

static const ah_dispositions_ops er_dispositions = {
    .struct_size = sizeof(ah_dispositions_ops),
    .list = er_dispositions_list,
};

static const ah_jobs_ops er_jobs = {
    .struct_size = sizeof(ah_jobs_ops),
    .get = er_job_get,
    .get_enhanced = er_job_get_enhanced,
    .enhanced_batch = er_job_enhanced_batch,
};

static const ah_candidates_ops er_candidates = {
    .struct_size = sizeof(ah_candidates_ops),
    .get = er_cand_get,
    .find = er_cand_find,
    .resume = er_cand_resume,
};

static const ah_notes_ops er_notes = {
    .struct_size = sizeof(ah_notes_ops),
    .add_to_application = er_note_to_application,
    .add_to_candidate = er_note_to_candidate,
};

static const ah_attachments_ops er_attachments = {
    .struct_size = sizeof(ah_attachments_ops),
    .add_to_application = er_attach_to_application,
    .add_to_candidate = er_attach_to_candidate,
};

static const ah_custom_fields_ops er_custom_fields = {
    .struct_size = sizeof(ah_custom_fields_ops),
    .list = er_custom_list,
    .values = er_custom_values,
    .update = er_custom_update,
};

/* --- the fields each operation takes (SDK @since 1.1) --------------------
 * The host checks a request against these before the operation runs; the
 * operations still check formats (base64, media types, statuses) and say
 * what ERecruit needs. Ids are ERecruit's: a string or an integer. */
#define ER_F_ID(n, req, h)                                                     \
    {.name = n, .type = AH_FIELD_ID, .flags = req, .max_size = ER_ID_MAX - 1, .help = h}
#define ER_F_STR(n, max, h) {.name = n, .type = AH_FIELD_STRING, .max_size = max, .help = h}
#define ER_F_END {.name = NULL}

static const ah_field_spec er_f_none[] = {ER_F_END};

static const ah_field_spec er_f_stream[] = {
    ER_F_STR("updated_after", 64, "ISO-8601 UTC time: records changed after it"),
    ER_F_STR("cursor", ER_CURSOR_MAX, "the next_cursor of the previous page"),
    {.name = "per_page", .type = AH_FIELD_INTEGER, .min = 1, .max = 500,
     .help = "records per page (default: the per_page setting)"},
    ER_F_END,
};

static const ah_field_spec er_f_stream_jobs[] = {
    ER_F_STR("updated_after", 64, "ISO-8601 UTC time: records changed after it"),
    ER_F_STR("cursor", ER_CURSOR_MAX, "the next_cursor of the previous page"),
    {.name = "per_page", .type = AH_FIELD_INTEGER, .min = 1, .max = 500,
     .help = "records per page (default: the per_page setting)"},
    {.name = "statuses", .type = AH_FIELD_STRINGS, .max_item = 15,
     .help = "draft, open, closed, filled (default: the job_statuses setting)"},
    ER_F_END,
};

static const ah_field_spec er_f_stream_apps[] = {
    ER_F_STR("updated_after", 64, "ISO-8601 UTC time: records changed after it"),
    ER_F_STR("cursor", ER_CURSOR_MAX, "the next_cursor of the previous page"),
    {.name = "per_page", .type = AH_FIELD_INTEGER, .min = 1, .max = 500,
     .help = "records per page (default: the per_page setting)"},
    {.name = "job_ids", .type = AH_FIELD_IDS, .max_size = 100, .max_item = ER_ID_MAX - 1,
     .help = "only applications to these jobs"},
    ER_F_END,
};

static const ah_field_spec er_f_move[] = {
    ER_F_ID("application_id", AH_FIELD_REQUIRED, "the ERecruit submission"),
    ER_F_ID("stage_id", AH_FIELD_REQUIRED, "the stage to move it to (applications.list_stages)"),
    ER_F_END,
};

static const ah_field_spec er_f_reject[] = {
    ER_F_ID("application_id", AH_FIELD_REQUIRED, "the ERecruit submission"),
    ER_F_ID("reason_id", AH_FIELD_REQUIRED, "the disposition reason (dispositions.list)"),
    ER_F_END,
};

static const ah_field_spec er_f_bulk_reject[] = {
    {.name = "application_ids", .type = AH_FIELD_IDS, .flags = AH_FIELD_REQUIRED,
     .min_size = 1, .max_size = 500, .max_item = ER_ID_MAX - 1,
     .help = "the ERecruit submissions to reject"},
    ER_F_ID("reason_id", AH_FIELD_REQUIRED, "the disposition reason (dispositions.list)"),
    ER_F_END,
};

static const ah_field_spec er_f_app_create[] = {
    ER_F_ID("candidate_id", AH_FIELD_REQUIRED, "the ERecruit contact"),
    ER_F_ID("job_id", AH_FIELD_REQUIRED, "the ERecruit position"),
    ER_F_ID("stage_id", 0, "the first stage (default: ERecruit's)"),
    ER_F_END,
};

static const ah_field_spec er_f_job[] = {
    ER_F_ID("job_id", AH_FIELD_REQUIRED, "the ERecruit position"),
    ER_F_END,
};

static const ah_field_spec er_f_job_batch[] = {
    {.name = "limit", .type = AH_FIELD_INTEGER, .min = 1, .max = 500,
     .help = "positions per page (default: the per_page setting)"},
    ER_F_STR("cursor", ER_CURSOR_MAX, "the next_cursor of the previous page"),
    ER_F_END,
};

static const ah_field_spec er_f_cand[] = {
    ER_F_ID("candidate_id", AH_FIELD_REQUIRED, "the ERecruit contact"),
    ER_F_END,
};

static const ah_field_spec er_f_cand_find[] = {
    ER_F_STR("first_name", 256, "give at least one of the four"),
    ER_F_STR("last_name", 256, NULL),
    ER_F_STR("email", 256, NULL),
    ER_F_STR("phone", 256, NULL),
    ER_F_END,
};

#define ER_F_NOTE                                                              \
    {.name = "note", .type = AH_FIELD_STRING, .flags = AH_FIELD_REQUIRED, .min_size = 1,   \
     .max_size = 256u * 1024u, .help = "the note, text or HTML"},                          \
        {.name = "format", .type = AH_FIELD_STRING, .one_of = "html|text",                 \
         .help = "how to read note (default: guessed)"},                                   \
        ER_F_ID("note_action_type", 0, "the note action (default: the note_action_id setting)"), \
        {.name = "screened", .type = AH_FIELD_BOOLEAN,                                     \
         .help = "also mark the candidate screened"}

static const ah_field_spec er_f_note_app[] = {
    ER_F_ID("application_id", AH_FIELD_REQUIRED, "the ERecruit submission"),
    ER_F_NOTE,
    ER_F_END,
};

static const ah_field_spec er_f_note_cand[] = {
    ER_F_ID("candidate_id", AH_FIELD_REQUIRED, "the ERecruit contact"),
    ER_F_NOTE,
    ER_F_END,
};

#define ER_F_DOC                                                               \
    {.name = "filename", .type = AH_FIELD_STRING, .flags = AH_FIELD_REQUIRED,              \
     .min_size = 1, .max_size = 255, .help = "a plain file name"},                         \
        {.name = "data_base64", .type = AH_FIELD_STRING, .flags = AH_FIELD_REQUIRED,       \
         .min_size = 1, .help = "the file, base64"},                                       \
        ER_F_STR("content_type", 100, "its media type (default: application/pdf)"),        \
        ER_F_STR("kind", 32, "resume, cover_letter, ... (kept for candidates only)")

static const ah_field_spec er_f_doc_app[] = {
    ER_F_ID("application_id", AH_FIELD_REQUIRED, "the ERecruit submission"),
    ER_F_DOC,
    ER_F_END,
};

static const ah_field_spec er_f_doc_cand[] = {
    ER_F_ID("candidate_id", AH_FIELD_REQUIRED, "the ERecruit contact"),
    ER_F_DOC,
    ER_F_END,
};

#define ER_F_ENTITY                                                            \
    {.name = "entity", .type = AH_FIELD_STRING, .flags = AH_FIELD_REQUIRED,                \
     .one_of = "application|candidate|job", .help = "whose custom fields"}

static const ah_field_spec er_f_cf_list[] = {ER_F_ENTITY, ER_F_END};

static const ah_field_spec er_f_cf_values[] = {
    ER_F_ENTITY,
    ER_F_ID("id", AH_FIELD_REQUIRED, "the ERecruit record"),
    ER_F_END,
};

static const ah_field_spec er_f_cf_update[] = {
    ER_F_ENTITY,
    ER_F_ID("id", AH_FIELD_REQUIRED, "the ERecruit record"),
    {.name = "values", .type = AH_FIELD_OBJECT, .flags = AH_FIELD_REQUIRED, .min_size = 1,
     .max_size = 200, .help = "field key: a string, number, boolean, null or a list of them"},
    ER_F_END,
};

static const ah_op_fields er_op_fields[] = {
    {"applications.bulk_reject", er_f_bulk_reject},
    {"applications.create", er_f_app_create},
    {"applications.list_stages", er_f_none},
    {"applications.move_to_stage", er_f_move},
    {"applications.reject", er_f_reject},
    {"applications.stream", er_f_stream_apps},
    {"attachments.add_to_application", er_f_doc_app},
    {"attachments.add_to_candidate", er_f_doc_cand},
    {"candidates.find", er_f_cand_find},
    {"candidates.get", er_f_cand},
    {"candidates.resume", er_f_cand},
    {"candidates.stream", er_f_stream},
    {"custom_fields.list", er_f_cf_list},
    {"custom_fields.update", er_f_cf_update},
    {"custom_fields.values", er_f_cf_values},
    {"dispositions.list", er_f_none},
    {"jobs.enhanced_batch", er_f_job_batch},
    {"jobs.get", er_f_job},
    {"jobs.get_enhanced", er_f_job},
    {"jobs.stream", er_f_stream_jobs},
    {"notes.add_to_application", er_f_note_app},
    {"notes.add_to_candidate", er_f_note_cand},
    {NULL, NULL},
};

/* How each write settles an answer that was lost, cut short or a 5xx,
 * without sending it again (SDK 1.1; WIRE.md, "Exactly once"). */
static const ah_op_write er_op_writes[] = {
    {"applications.bulk_reject", AH_RECONCILE_READ_BACK,
     "per item, as applications.reject", NULL},
    {"applications.create", AH_RECONCILE_MARKER,
     "the submission whose external_ref atshub sent (GET /submissions?position_id=)",
     er_settle_create},
    {"applications.move_to_stage", AH_RECONCILE_READ_BACK,
     "the submission's stage_id (GET /submissions/{id})", er_settle_move},
    {"applications.reject", AH_RECONCILE_READ_BACK,
     "the submission's rejected flag and reason (GET /submissions/{id})", er_settle_reject},
    {"attachments.add_to_application", AH_RECONCILE_MARKER,
     "the document whose external_ref atshub sent (GET /submissions/{id}/documents)",
     er_settle_doc_app},
    {"attachments.add_to_candidate", AH_RECONCILE_MARKER,
     "the document whose external_ref atshub sent (GET /contacts/{id}/documents)",
     er_settle_doc_cand},
    {"custom_fields.update", AH_RECONCILE_READ_BACK,
     "the values (GET /{collection}/{id}/custom-fields)", er_settle_custom},
    {"notes.add_to_application", AH_RECONCILE_MARKER,
     "the note whose external_ref atshub sent (GET /submissions/{id}/notes); a screened "
     "note's steps by reading the submission's status_id and the contact's tags back",
     er_settle_note_app},
    {"notes.add_to_candidate", AH_RECONCILE_MARKER,
     "the note whose external_ref atshub sent (GET /contacts/{id}/notes); a screened "
     "note's tag by reading the contact's tags back",
     er_settle_note_cand},
    {NULL, AH_RECONCILE_UNDECLARED, NULL, NULL},
};

static const ah_plugin_descriptor er_descriptor = {
    .struct_size = sizeof(ah_plugin_descriptor),
    .abi_major = AH_ABI_MAJOR,
    .abi_minor = AH_ABI_MINOR,
    .name = "erecruit",
    .version = ER_VERSION,
    .description = "ERecruit ATS (API 2.0, OAuth2): jobs, applications, candidates, notes, "
                   "attachments, custom fields",
    .settings = er_settings,
    .open = er_open,
    .close = er_close,
    .streaming = &er_streaming,
    .applications = &er_applications,
    .dispositions = &er_dispositions,
    .jobs = &er_jobs,
    .candidates = &er_candidates,
    .notes = &er_notes,
    .attachments = &er_attachments,
    .custom_fields = &er_custom_fields,
    /* No ceiling declared (0). ERecruit documents no request limit (the
     * provider document in shared/seeds, WIRE.md): it signals one with 429
     * rate_limited and Retry-After, which the host honours (the refused
     * request is sent again after Retry-After, and every request of the
     * connection waits until then). The 200 declared before was our own
     * guess, and with the host's pacing (one token, no bursts) it capped a
     * first sync at 100,000 records/s (500 a page), below a plain script's
     * rate against the same API. An operator who knows the tenant's limit
     * sets the connection's rate_limit_rps. */
    .rate_limit_rps = 0,
    .op_fields = er_op_fields,
    .op_writes = er_op_writes,
    /* OAuth2 in the request (and the other 1.1 members it uses) need
     * ABI 1.1: an older host refuses the plugin at load time. */
    .needs_abi_minor = 2, /* ah_record.raw_json / fields_json */
};

AH_PLUGIN_ENTRY
{
    (void)host;
    return &er_descriptor;
}
