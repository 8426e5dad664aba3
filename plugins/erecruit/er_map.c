/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ERecruit's field mapping: positions, submissions and contacts to atshub's
 * unified job, application and candidate fields (README.md has the table).
 * Times stay ERecruit's local-time strings: the sync engine compares
 * provider times with provider times, and only ERecruit knows its zone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "er.h"

static const char *const job_statuses[][2] = {
    {"draft", "draft"}, {"open", "open"}, {"closed", "closed"}, {"filled", "filled"}};

static const char *const job_types[][2] = {
    {"full_time", "FULL_TIME"}, {"part_time", "PART_TIME"},   {"contract", "CONTRACT"},
    {"temporary", "TEMPORARY"}, {"internship", "INTERNSHIP"}, {"faculty", "FACULTY"}};

static const char *const entities[][3] = {
    {"application", "submission", "submissions"},
    {"candidate", "contact", "contacts"},
    {"job", "position", "positions"},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

bool er_known_job_status(const char *s)
{
    for (size_t i = 0; s != NULL && i < N_OF(job_statuses); i++)
        if (strcmp(s, job_statuses[i][0]) == 0)
            return true;
    return false;
}

const char *er_map_job_status(const char *status)
{
    for (size_t i = 0; status != NULL && i < N_OF(job_statuses); i++)
        if (strcmp(status, job_statuses[i][0]) == 0)
            return job_statuses[i][1];
    return "other";
}

const char *er_map_job_type(const char *employment_type)
{
    for (size_t i = 0; employment_type != NULL && i < N_OF(job_types); i++)
        if (strcmp(employment_type, job_types[i][0]) == 0)
            return job_types[i][1];
    return "OTHER";
}

const char *er_entity_remote(const char *entity)
{
    for (size_t i = 0; entity != NULL && i < N_OF(entities); i++)
        if (strcmp(entity, entities[i][0]) == 0)
            return entities[i][1];
    return NULL;
}

const char *er_entity_collection(const char *entity)
{
    for (size_t i = 0; entity != NULL && i < N_OF(entities); i++)
        if (strcmp(entity, entities[i][0]) == 0)
            return entities[i][2];
    return NULL;
}

bool er_map_id(const cJSON *obj, const char *key, char out[ER_ID_MAX])
{
    return er_id_value(cJSON_GetObjectItemCaseSensitive(obj, key), out) == ER_ID_OK;
}

/* --- small builders: each records a failed allocation in *ok ------------ */

static void add(cJSON *o, const char *key, cJSON *v, bool *ok)
{
    if (v == NULL || !cJSON_AddItemToObject(o, key, v)) {
        cJSON_Delete(v);
        *ok = false;
    }
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The string member `from` of src as `to` in dst, or null. */
static void copy_str(cJSON *dst, const char *to, const cJSON *src, const char *from, bool *ok)
{
    const char *s = str_of(src, from);
    add(dst, to, s != NULL ? cJSON_CreateString(s) : cJSON_CreateNull(), ok);
}

/* An id member of src as a string under `to`, or null. */
static void copy_id(cJSON *dst, const char *to, const cJSON *src, const char *from, bool *ok)
{
    char id[ER_ID_MAX];
    add(dst, to, er_map_id(src, from, id) ? cJSON_CreateString(id) : cJSON_CreateNull(), ok);
}

static cJSON *finish(cJSON *o, bool ok)
{
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* A new object with "remote_id", or NULL when src has no usable id. */
static cJSON *with_id(const cJSON *src, const char *key, const char *from, bool *ok)
{
    char id[ER_ID_MAX];
    if (!cJSON_IsObject(src) || !er_map_id(src, from, id))
        return NULL;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    *ok = true;
    add(o, key, cJSON_CreateString(id), ok);
    return o;
}

/* --- records ------------------------------------------------------------ */

static void map_location(cJSON *job, const cJSON *position, bool *ok)
{
    const cJSON *loc = cJSON_GetObjectItemCaseSensitive(position, "location");
    cJSON *l = cJSON_CreateObject();
    if (l == NULL) {
        *ok = false;
        return;
    }
    copy_str(l, "city", loc, "city", ok);
    copy_str(l, "state", loc, "state", ok);
    copy_str(l, "country", loc, "country", ok);
    add(job, "location", l, ok);
}

static void map_hiring_team(cJSON *job, const cJSON *position, bool *ok)
{
    cJSON *team = cJSON_CreateArray();
    if (team == NULL) {
        *ok = false;
        return;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(position, "hiring_team"))
    {
        if (!cJSON_IsObject(m))
            continue;
        cJSON *u = cJSON_CreateObject();
        if (u == NULL || !cJSON_AddItemToArray(team, u)) {
            cJSON_Delete(u);
            *ok = false;
            break;
        }
        copy_str(u, "name", m, "name", ok);
        copy_str(u, "role", m, "role", ok);
    }
    add(job, "hiring_team", team, ok);
}

cJSON *er_map_job(const cJSON *position, bool enhanced)
{
    bool ok = false;
    cJSON *j = with_id(position, "remote_id", "id", &ok);
    if (j == NULL)
        return NULL;
    const char *status = str_of(position, "status");
    const char *type = str_of(position, "employment_type");
    copy_str(j, "title", position, "title", &ok);
    add(j, "status", cJSON_CreateString(er_map_job_status(status)), &ok);
    copy_str(j, "remote_status", position, "status", &ok);
    copy_str(j, "department", position, "department", &ok);
    add(j, "job_type", type != NULL ? cJSON_CreateString(er_map_job_type(type)) : cJSON_CreateNull(),
        &ok);
    map_location(j, position, &ok);
    copy_str(j, "description", position, "description", &ok);
    copy_str(j, "created_at", position, "created_at", &ok);
    copy_str(j, "updated_at", position, "updated_at", &ok);
    if (enhanced) {
        const cJSON *cf = cJSON_GetObjectItemCaseSensitive(position, "custom_fields");
        add(j, "custom_fields",
            cJSON_IsObject(cf) ? cJSON_Duplicate(cf, 1) : cJSON_CreateObject(), &ok);
        map_hiring_team(j, position, &ok);
    }
    return finish(j, ok);
}

cJSON *er_map_application(const cJSON *submission, const er_map_opts *o)
{
    bool ok = false;
    cJSON *a = with_id(submission, "remote_id", "id", &ok);
    if (a == NULL)
        return NULL;
    char status_id[ER_ID_MAX], screened[ER_ID_MAX];
    bool has_status = er_map_id(submission, "status_id", status_id);
    snprintf(screened, sizeof screened, "%lld", o != NULL ? o->screened_status_id : 0LL);
    bool is_screened = o != NULL && has_status && strcmp(status_id, screened) == 0;
    bool rejected = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(submission, "rejected"));
    copy_id(a, "job_remote_id", submission, "position_id", &ok);
    copy_id(a, "candidate_remote_id", submission, "contact_id", &ok);
    copy_id(a, "stage_id", submission, "stage_id", &ok);
    copy_id(a, "status_id", submission, "status_id", &ok);
    add(a, "status",
        cJSON_CreateString(rejected ? "rejected" : is_screened ? "screened" : "active"), &ok);
    add(a, "rejected", cJSON_CreateBool(rejected), &ok);
    copy_id(a, "reject_reason_id", submission, "disposition_reason_id", &ok);
    add(a, "screened", cJSON_CreateBool(is_screened), &ok);
    copy_str(a, "created_at", submission, "created_at", &ok);
    copy_str(a, "updated_at", submission, "updated_at", &ok);
    return finish(a, ok);
}

cJSON *er_map_candidate(const cJSON *contact, const er_map_opts *o)
{
    bool ok = false;
    cJSON *c = with_id(contact, "remote_id", "id", &ok);
    if (c == NULL)
        return NULL;
    const char *first = str_of(contact, "first_name"), *last = str_of(contact, "last_name");
    copy_str(c, "first_name", contact, "first_name", &ok);
    copy_str(c, "last_name", contact, "last_name", &ok);
    if (first != NULL || last != NULL) {
        char *name = NULL;
        if (asprintf(&name, "%s%s%s", first != NULL ? first : "",
                     first != NULL && last != NULL && *first && *last ? " " : "",
                     last != NULL ? last : "") < 0)
            ok = false, name = NULL;
        add(c, "name", name != NULL ? cJSON_CreateString(name) : NULL, &ok);
        free(name);
    } else {
        add(c, "name", cJSON_CreateNull(), &ok);
    }
    copy_str(c, "email", contact, "email", &ok);
    copy_str(c, "phone", contact, "phone", &ok);
    char screened[ER_ID_MAX];
    snprintf(screened, sizeof screened, "%lld", o != NULL ? o->screened_tag_id : 0LL);
    bool is_screened = false;
    cJSON *tags = cJSON_CreateArray();
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(contact, "tags"))
    {
        char id[ER_ID_MAX];
        if (tags == NULL || er_id_value(t, id) != ER_ID_OK)
            continue;
        is_screened = is_screened || (o != NULL && strcmp(id, screened) == 0);
        cJSON *s = cJSON_CreateString(id);
        if (s == NULL || !cJSON_AddItemToArray(tags, s)) {
            cJSON_Delete(s);
            ok = false;
        }
    }
    add(c, "tags", tags, &ok);
    add(c, "screened", cJSON_CreateBool(is_screened), &ok);
    copy_str(c, "created_at", contact, "created_at", &ok);
    copy_str(c, "updated_at", contact, "updated_at", &ok);
    return finish(c, ok);
}

/* --- configuration lists ---------------------------------------------- */

cJSON *er_map_stage(const cJSON *stage)
{
    bool ok = false;
    cJSON *s = with_id(stage, "id", "id", &ok);
    if (s == NULL)
        return NULL;
    copy_str(s, "name", stage, "name", &ok);
    const cJSON *order = cJSON_GetObjectItemCaseSensitive(stage, "order");
    add(s, "order",
        cJSON_IsNumber(order) ? cJSON_CreateNumber(order->valuedouble) : cJSON_CreateNull(), &ok);
    return finish(s, ok);
}

cJSON *er_map_reason(const cJSON *reason)
{
    bool ok = false;
    cJSON *r = with_id(reason, "id", "id", &ok);
    if (r == NULL)
        return NULL;
    copy_str(r, "name", reason, "name", &ok);
    return finish(r, ok);
}

cJSON *er_map_field_def(const cJSON *def)
{
    const char *key = str_of(def, "key");
    if (key == NULL)
        return NULL;
    bool ok = true;
    cJSON *f = cJSON_CreateObject();
    if (f == NULL)
        return NULL;
    add(f, "key", cJSON_CreateString(key), &ok);
    copy_str(f, "label", def, "label", &ok);
    copy_str(f, "type", def, "type", &ok);
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(def, "options");
    if (cJSON_IsArray(opts))
        add(f, "options", cJSON_Duplicate(opts, 1), &ok);
    return finish(f, ok);
}

cJSON *er_map_note(const cJSON *note)
{
    bool ok = false;
    cJSON *n = with_id(note, "id", "id", &ok);
    if (n == NULL)
        return NULL;
    copy_str(n, "body_html", note, "body_html", &ok);
    copy_id(n, "note_action_type", note, "action_id", &ok);
    copy_str(n, "created_at", note, "created_at", &ok);
    return finish(n, ok);
}

cJSON *er_map_document(const cJSON *doc)
{
    bool ok = false;
    cJSON *d = with_id(doc, "id", "id", &ok);
    if (d == NULL)
        return NULL;
    copy_str(d, "filename", doc, "filename", &ok);
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(doc, "size");
    add(d, "size", cJSON_IsNumber(size) ? cJSON_CreateNumber(size->valuedouble) : cJSON_CreateNull(),
        &ok);
    return finish(d, ok);
}

/* --- notes ------------------------------------------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool er_note_is_html(const char *note)
{
    if (note == NULL)
        return false;
    while (is_blank(*note))
        note++;
    size_t n = strlen(note);
    while (n > 0 && is_blank(note[n - 1]))
        n--;
    return n >= 3 && note[0] == '<' && note[n - 1] == '>';
}

char *er_note_html(const char *text)
{
    ah_buf b = {0};
    ah_buf_puts(&b, "<p>");
    /* Line by line: carriage returns dropped, newlines as <br>. */
    for (const char *s = text; *s != '\0';) {
        size_t run = strcspn(s, "\r\n");
        ah_buf_html_n(&b, s, run);
        s += run;
        if (*s == '\n')
            ah_buf_puts(&b, "<br>");
        if (*s != '\0')
            s++;
    }
    ah_buf_puts(&b, "</p>");
    if (!ah_buf_ok(&b)) {
        ah_buf_free(&b);
        return NULL;
    }
    return b.s;
}
