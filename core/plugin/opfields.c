/* SPDX-License-Identifier: Apache-2.0 */
#include "opfields.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

/* Beyond 2^53 a double no longer holds every integer: such a number would
 * reach the plugin rounded, so it is no integer at all. */
#define AH_EXACT_MAX 9007199254740992.0
/* Nesting a table may declare (objects in objects ...): bounds the
 * recursion of the validator and of the table check. */
#define AH_FIELDS_DEPTH 4
/* A table longer than this lacks its {NULL} terminator. */
#define AH_FIELDS_MAX 256
#define AH_PATH_MAX 256

const ah_field_spec *ah_opfields_find(const ah_plugin_descriptor *d, const char *topic)
{
    if (d == NULL || topic == NULL || !AH_HAS(d, op_fields) || d->op_fields == NULL)
        return NULL;
    for (const ah_op_fields *o = d->op_fields; o->topic != NULL; o++)
        if (strcmp(o->topic, topic) == 0)
            return o->fields;
    return NULL;
}

const char *ah_opfields_type_name(ah_field_type t)
{
    switch (t) {
    case AH_FIELD_STRING: return "string";
    case AH_FIELD_INTEGER: return "integer";
    case AH_FIELD_NUMBER: return "number";
    case AH_FIELD_BOOLEAN: return "boolean";
    case AH_FIELD_ID: return "id";
    case AH_FIELD_OBJECT: return "object";
    case AH_FIELD_STRINGS: return "array of strings";
    case AH_FIELD_IDS: return "array of ids";
    case AH_FIELD_OBJECTS: return "array of objects";
    case AH_FIELD_ANY: return "any";
    }
    return "?";
}

/* ------------------------------------------------------------------------ */
/* Validation                                                                */
/* ------------------------------------------------------------------------ */

typedef struct vctx {
    const char *topic;
    char *msg;
    size_t msglen;
} vctx;

/* Where a value is: a chain from the member or item up to the body, built
 * on the stack as the validator descends and printed only for a message
 * (a valid request, the common case, prints nothing). */
typedef struct vpath {
    const struct vpath *up;
    const char *name; /* a member's name, or NULL for an array item */
    int index;
} vpath;

static size_t path_text(const vpath *p, char *out, size_t n)
{
    if (p == NULL || n == 0)
        return 0;
    size_t w = path_text(p->up, out, n);
    if (w >= n)
        return w;
    int k = p->name != NULL ? snprintf(out + w, n - w, "%s%s", w > 0 ? "." : "", p->name)
                            : snprintf(out + w, n - w, "[%d]", p->index);
    return k < 0 ? w : w + (size_t)k;
}

AH_PRINTF(3, 4)
static int bad(vctx *v, const vpath *path, const char *fmt, ...)
{
    if (v->msg == NULL || v->msglen == 0)
        return -1;
    char where[AH_PATH_MAX];
    where[0] = '\0';
    (void)path_text(path, where, sizeof where); /* cut when too long: it still names where */
    int n = snprintf(v->msg, v->msglen, "field '%s' ", where[0] ? where : "(body)");
    if (n < 0 || (size_t)n >= v->msglen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->msg + n, v->msglen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* UTF-8 code points: limits are in characters, as a product counts them. */
static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static bool integral(double d)
{
    /* NaN fails both comparisons, infinities the range. */
    return d >= -AH_EXACT_MAX && d <= AH_EXACT_MAX && d == (double)(long long)d;
}

static bool in_one_of(const char *list, const char *s)
{
    size_t n = strlen(s);
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *bar = strchr(p, '|');
        size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, s, n) == 0)
            return true;
        p = bar != NULL ? bar + 1 : NULL;
    }
    return false;
}

/* "html|text" as "html, text" for messages. */
static void one_of_text(const char *list, char *out, size_t outlen)
{
    size_t w = 0;
    for (const char *p = list; *p != '\0' && w + 3 < outlen; p++) {
        if (*p == '|') {
            out[w++] = ',';
            out[w++] = ' ';
        } else {
            out[w++] = *p;
        }
    }
    out[w] = '\0';
}

static int check_chars(vctx *v, const vpath *path, const char *s, uint32_t min, uint32_t max)
{
    size_t n = chars(s);
    if (min > 0 && n < min)
        return min == 1 ? bad(v, path, "must not be empty")
                        : bad(v, path, "must be at least %u characters", (unsigned)min);
    if (max > 0 && n > max)
        return bad(v, path, "must be at most %u characters", (unsigned)max);
    return 0;
}

/* min: the field's min_size (an id string has at least 1 character
 * whatever it says; an integer has no length). */
static int check_id(vctx *v, const vpath *path, const cJSON *j, uint32_t min, uint32_t max)
{
    if (cJSON_IsNumber(j)) {
        if (!integral(j->valuedouble))
            return bad(v, path, "must be a non-empty string or an integer");
        return 0;
    }
    if (!cJSON_IsString(j) || j->valuestring == NULL || j->valuestring[0] == '\0')
        return bad(v, path, "must be a non-empty string or an integer");
    return check_chars(v, path, j->valuestring, min > 1 ? min : 1, max);
}

static int check_object(vctx *v, const vpath *prefix, const ah_field_spec *fields,
                        const cJSON *obj, int depth);

static int check_array(vctx *v, const vpath *path, const ah_field_spec *f, const cJSON *j,
                       int depth)
{
    if (!cJSON_IsArray(j))
        return bad(v, path, "must be an array");
    int n = cJSON_GetArraySize(j);
    if (f->min_size > 0 && (uint32_t)n < f->min_size)
        return f->min_size == 1 ? bad(v, path, "must not be empty")
                                : bad(v, path, "must have at least %u items", (unsigned)f->min_size);
    if (f->max_size > 0 && (uint32_t)n > f->max_size)
        return bad(v, path, "must have at most %u items", (unsigned)f->max_size);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        const vpath item = {path, NULL, i++};
        const vpath *ip = &item;
        switch (f->type) {
        case AH_FIELD_STRINGS:
            if (!cJSON_IsString(it) || it->valuestring == NULL)
                return bad(v, ip, "must be a string");
            if (check_chars(v, ip, it->valuestring, 0, f->max_item) != 0)
                return -1;
            break;
        case AH_FIELD_IDS:
            if (check_id(v, ip, it, 1, f->max_item) != 0)
                return -1;
            break;
        default: /* AH_FIELD_OBJECTS */
            if (!cJSON_IsObject(it))
                return bad(v, ip, "must be an object");
            if (f->fields != NULL && check_object(v, ip, f->fields, it, depth + 1) != 0)
                return -1;
            break;
        }
    }
    return 0;
}

static int check_value(vctx *v, const vpath *path, const ah_field_spec *f, const cJSON *j,
                       int depth)
{
    switch (f->type) {
    case AH_FIELD_STRING:
        if (!cJSON_IsString(j) || j->valuestring == NULL)
            return bad(v, path, "must be a string");
        if (f->one_of != NULL && !in_one_of(f->one_of, j->valuestring)) {
            char list[256];
            one_of_text(f->one_of, list, sizeof list);
            return bad(v, path, "must be one of %s", list);
        }
        return check_chars(v, path, j->valuestring, f->min_size, f->max_size);
    case AH_FIELD_INTEGER:
    case AH_FIELD_NUMBER: {
        bool integer = f->type == AH_FIELD_INTEGER;
        if (!cJSON_IsNumber(j) || (integer && !integral(j->valuedouble)))
            return bad(v, path, integer ? "must be an integer" : "must be a number");
        if (f->min < f->max && (j->valuedouble < f->min || j->valuedouble > f->max))
            return bad(v, path, "must be %s from %.15g to %.15g", integer ? "an integer" : "a number",
                       f->min, f->max);
        return 0;
    }
    case AH_FIELD_BOOLEAN:
        return cJSON_IsBool(j) ? 0 : bad(v, path, "must be true or false");
    case AH_FIELD_ID:
        return check_id(v, path, j, f->min_size, f->max_size);
    case AH_FIELD_OBJECT:
        if (!cJSON_IsObject(j))
            return bad(v, path, "must be an object");
        if (f->min_size > 0 && cJSON_GetArraySize(j) < (int)f->min_size)
            return f->min_size == 1
                       ? bad(v, path, "must not be empty")
                       : bad(v, path, "must have at least %u members", (unsigned)f->min_size);
        if (f->max_size > 0 && cJSON_GetArraySize(j) > (int)f->max_size)
            return bad(v, path, "must have at most %u members", (unsigned)f->max_size);
        return f->fields != NULL ? check_object(v, path, f->fields, j, depth + 1) : 0;
    case AH_FIELD_STRINGS:
    case AH_FIELD_IDS:
    case AH_FIELD_OBJECTS:
        return check_array(v, path, f, j, depth);
    case AH_FIELD_ANY:
        return 0;
    }
    return bad(v, path, "has a type the host does not know");
}

static const ah_field_spec *spec_named(const ah_field_spec *fields, const char *name)
{
    for (const ah_field_spec *f = fields; f->name != NULL; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

/* "a, b, c": what a table accepts, for the message about an unknown field. */
static void names_text(const ah_field_spec *fields, char *out, size_t outlen)
{
    size_t w = 0;
    out[0] = '\0';
    for (const ah_field_spec *f = fields; f->name != NULL && w < outlen; f++) {
        int n = snprintf(out + w, outlen - w, "%s%s", w > 0 ? ", " : "", f->name);
        if (n < 0)
            break;
        w += (size_t)n;
    }
    if (w >= outlen && outlen > 4)
        memcpy(out + outlen - 4, "...", 4);
}

static int check_object(vctx *v, const vpath *prefix, const ah_field_spec *fields,
                        const cJSON *obj, int depth)
{
    if (depth > AH_FIELDS_DEPTH)
        return bad(v, prefix, "is nested deeper than the host checks");
    const cJSON *m;
    cJSON_ArrayForEach(m, obj) {
        const char *name = m->string != NULL ? m->string : "";
        const vpath member = {prefix, name, 0};
        const ah_field_spec *f = spec_named(fields, name);
        if (f == NULL) {
            char list[512];
            names_text(fields, list, sizeof list);
            if (prefix == NULL && v->topic != NULL)
                return bad(v, &member, "is not a field of %s (it takes: %s)", v->topic,
                           list[0] ? list : "no fields");
            return bad(v, &member, "is not a field here (allowed: %s)", list[0] ? list : "none");
        }
        /* cJSON keeps both copies of a repeated name; the plugin would read
         * only the first, so the second would be silently ignored. */
        for (const cJSON *p = obj->child; p != m; p = p->next)
            if (p->string != NULL && strcmp(p->string, name) == 0)
                return bad(v, &member, "is given twice");
        if (cJSON_IsNull(m))
            continue; /* null is the same as absent */
        if (check_value(v, &member, f, m, depth) != 0)
            return -1;
    }
    for (const ah_field_spec *f = fields; f->name != NULL; f++) {
        if (!(f->flags & AH_FIELD_REQUIRED))
            continue;
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, f->name);
        if (j == NULL || cJSON_IsNull(j)) {
            const vpath member = {prefix, f->name, 0};
            return bad(v, &member, "is required");
        }
    }
    return 0;
}

int ah_opfields_validate(const ah_field_spec *fields, const char *topic, const cJSON *body,
                         char *msg, size_t msglen)
{
    if (msg != NULL && msglen > 0)
        msg[0] = '\0';
    if (fields == NULL)
        return 0;
    vctx v = {topic, msg, msglen};
    cJSON empty;
    memset(&empty, 0, sizeof empty);
    empty.type = cJSON_Object;
    if (body == NULL)
        body = &empty;
    if (!cJSON_IsObject(body)) {
        if (msg != NULL && msglen > 0)
            snprintf(msg, msglen, "the request body must be a JSON object");
        return -1;
    }
    return check_object(&v, NULL, fields, body, 0);
}

/* ------------------------------------------------------------------------ */
/* Checking the tables at load                                               */
/* ------------------------------------------------------------------------ */

AH_PRINTF(3, 4)
static int refuse(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return -1;
    int n = snprintf(err, errlen, "op_fields: ");
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < errlen)
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int check_fields(const char *topic, const ah_field_spec *fields, int depth, char *err,
                        size_t errlen)
{
    if (depth > AH_FIELDS_DEPTH)
        return refuse(err, errlen, "%s: fields nested more than %d deep", topic, AH_FIELDS_DEPTH);
    for (size_t i = 0; i < AH_FIELDS_MAX; i++) {
        const ah_field_spec *f = &fields[i];
        if (f->name == NULL)
            return 0;
        if (f->name[0] == '\0')
            return refuse(err, errlen, "%s: field #%zu has an empty name", topic, i + 1);
        if (f->type < AH_FIELD_STRING || f->type > AH_FIELD_ANY)
            return refuse(err, errlen, "%s: field '%s' has unknown type %d", topic, f->name,
                          (int)f->type);
        for (size_t k = 0; k < i; k++)
            if (strcmp(fields[k].name, f->name) == 0)
                return refuse(err, errlen, "%s: field '%s' is declared twice", topic, f->name);
        if (f->one_of != NULL && f->type != AH_FIELD_STRING)
            return refuse(err, errlen, "%s: field '%s' has one_of but is no string", topic,
                          f->name);
        if (f->fields != NULL && f->type != AH_FIELD_OBJECT && f->type != AH_FIELD_OBJECTS)
            return refuse(err, errlen, "%s: field '%s' has sub-fields but holds no objects",
                          topic, f->name);
        if (f->fields != NULL && check_fields(topic, f->fields, depth + 1, err, errlen) != 0)
            return -1;
    }
    return refuse(err, errlen, "%s: more than %d fields (missing {NULL} terminator?)", topic,
                  AH_FIELDS_MAX);
}

int ah_opfields_check(const ah_plugin_descriptor *d, char *err, size_t errlen)
{
    if (d == NULL || !AH_HAS(d, op_fields) || d->op_fields == NULL)
        return 0;
    size_t ntopics = 0;
    ah_router_topics(&ntopics);
    for (size_t i = 0; i <= ntopics; i++) {
        const ah_op_fields *o = &d->op_fields[i];
        if (o->topic == NULL)
            return 0;
        const ah_topic *t = ah_router_topic(o->topic);
        if (t == NULL)
            return refuse(err, errlen, "no bus topic '%s'", o->topic);
        if (ah_router_resolve(d, t) == NULL)
            return refuse(err, errlen, "'%s' has fields but the plugin does not serve it",
                          o->topic);
        for (size_t k = 0; k < i; k++)
            if (strcmp(d->op_fields[k].topic, o->topic) == 0)
                return refuse(err, errlen, "'%s' is listed twice", o->topic);
        if (o->fields == NULL)
            return refuse(err, errlen, "'%s' has no fields table (give {{NULL}} for none)",
                          o->topic);
        if (check_fields(o->topic, o->fields, 0, err, errlen) != 0)
            return -1;
    }
    /* Each topic at most once, so more entries than topics means the list
     * runs on past its end. */
    return refuse(err, errlen, "more entries than bus topics (missing {NULL} terminator?)");
}

/* ------------------------------------------------------------------------ */
/* Describing the tables                                                     */
/* ------------------------------------------------------------------------ */

static cJSON *fields_json(const ah_field_spec *fields)
{
    cJSON *a = cJSON_CreateArray();
    for (const ah_field_spec *f = fields; a != NULL && f->name != NULL; f++) {
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(a, o)) {
            cJSON_Delete(o);
            cJSON_Delete(a);
            return NULL;
        }
        bool ok = cJSON_AddStringToObject(o, "name", f->name) != NULL &&
                  cJSON_AddStringToObject(o, "type", ah_opfields_type_name(f->type)) != NULL &&
                  cJSON_AddBoolToObject(o, "required", (f->flags & AH_FIELD_REQUIRED) != 0) != NULL;
        if (ok && f->min_size > 0)
            ok = cJSON_AddNumberToObject(o, "min_size", f->min_size) != NULL;
        if (ok && f->max_size > 0)
            ok = cJSON_AddNumberToObject(o, "max_size", f->max_size) != NULL;
        if (ok && f->max_item > 0)
            ok = cJSON_AddNumberToObject(o, "max_item", f->max_item) != NULL;
        if (ok && f->min < f->max)
            ok = cJSON_AddNumberToObject(o, "min", f->min) != NULL &&
                 cJSON_AddNumberToObject(o, "max", f->max) != NULL;
        if (ok && f->one_of != NULL)
            ok = cJSON_AddStringToObject(o, "one_of", f->one_of) != NULL;
        if (ok && f->fields != NULL) {
            cJSON *sub = fields_json(f->fields);
            ok = sub != NULL && cJSON_AddItemToObject(o, "fields", sub);
            if (!ok)
                cJSON_Delete(sub);
        }
        if (ok)
            ok = cJSON_AddStringToObject(o, "help", f->help != NULL ? f->help : "") != NULL;
        if (!ok) {
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

cJSON *ah_opfields_json(const ah_plugin_descriptor *d)
{
    cJSON *o = cJSON_CreateObject();
    size_t n = 0;
    const ah_topic *topics = ah_router_topics(&n);
    for (size_t i = 0; o != NULL && i < n; i++) {
        const ah_field_spec *f = ah_opfields_find(d, topics[i].topic);
        if (f == NULL)
            continue;
        cJSON *a = fields_json(f);
        if (a == NULL || !cJSON_AddItemToObject(o, topics[i].topic, a)) {
            cJSON_Delete(a);
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* --- OpenAPI (YAML text) ------------------------------------------------- */

typedef struct ybuf {
    char *s;
    size_t len, cap;
    bool oom;
} ybuf;

AH_PRINTF(3, 4)
static void yput(ybuf *b, int indent, const char *fmt, ...)
{
    if (b->oom)
        return;
    char line[1024];
    int n = snprintf(line, sizeof line, "%*s", indent, "");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) {
        b->oom = true;
        return;
    }
    size_t add = strlen(line);
    if (b->len + add + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + add + 2)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, line, add);
    b->len += add;
    b->s[b->len++] = '\n';
    b->s[b->len] = '\0';
}

/* A double-quoted YAML scalar of `s` (help texts are plain, but quotes and
 * backslashes must not end the scalar). */
static void yquote(const char *s, char *out, size_t outlen)
{
    size_t w = 0;
    out[w++] = '"';
    for (; s != NULL && *s != '\0' && w + 4 < outlen; s++) {
        if (*s == '"' || *s == '\\')
            out[w++] = '\\';
        out[w++] = (unsigned char)*s < 0x20 ? ' ' : *s;
    }
    out[w++] = '"';
    out[w] = '\0';
}

static void yfields(ybuf *b, int indent, const ah_field_spec *fields);

/* The schema of one value of field `f` (its type and limits), at indent. */
static void ytype(ybuf *b, int indent, const ah_field_spec *f, bool item)
{
    ah_field_type t = f->type;
    if (item)
        t = f->type == AH_FIELD_STRINGS ? AH_FIELD_STRING
            : f->type == AH_FIELD_IDS   ? AH_FIELD_ID
                                        : AH_FIELD_OBJECT;
    uint32_t max = item ? f->max_item : f->max_size;
    switch (t) {
    case AH_FIELD_STRING:
        yput(b, indent, "type: string");
        if (!item && f->min_size > 0)
            yput(b, indent, "minLength: %u", (unsigned)f->min_size);
        if (max > 0)
            yput(b, indent, "maxLength: %u", (unsigned)max);
        if (!item && f->one_of != NULL) {
            char list[256];
            one_of_text(f->one_of, list, sizeof list);
            yput(b, indent, "enum: [%s]", list);
        }
        break;
    case AH_FIELD_INTEGER:
    case AH_FIELD_NUMBER:
        yput(b, indent, "type: %s", t == AH_FIELD_INTEGER ? "integer" : "number");
        if (f->min < f->max) {
            yput(b, indent, "minimum: %.15g", f->min);
            yput(b, indent, "maximum: %.15g", f->max);
        }
        break;
    case AH_FIELD_BOOLEAN:
        yput(b, indent, "type: boolean");
        break;
    case AH_FIELD_ID: {
        unsigned min = !item && f->min_size > 1 ? (unsigned)f->min_size : 1u;
        if (max > 0)
            yput(b, indent, "oneOf: [{type: string, minLength: %u, maxLength: %u}, {type: integer}]",
                 min, (unsigned)max);
        else
            yput(b, indent, "oneOf: [{type: string, minLength: %u}, {type: integer}]", min);
        break;
    }
    case AH_FIELD_OBJECT:
        yput(b, indent, "type: object");
        if (!item && f->min_size > 0)
            yput(b, indent, "minProperties: %u", (unsigned)f->min_size);
        if (!item && f->max_size > 0)
            yput(b, indent, "maxProperties: %u", (unsigned)f->max_size);
        if (f->fields != NULL)
            yfields(b, indent, f->fields);
        break;
    case AH_FIELD_STRINGS:
    case AH_FIELD_IDS:
    case AH_FIELD_OBJECTS:
        yput(b, indent, "type: array");
        if (f->min_size > 0)
            yput(b, indent, "minItems: %u", (unsigned)f->min_size);
        if (f->max_size > 0)
            yput(b, indent, "maxItems: %u", (unsigned)f->max_size);
        yput(b, indent, "items:");
        ytype(b, indent + 2, f, true);
        break;
    case AH_FIELD_ANY:
        break;
    }
}

/* properties/required/additionalProperties of an object with `fields`. */
static void yfields(ybuf *b, int indent, const ah_field_spec *fields)
{
    yput(b, indent, "additionalProperties: false");
    char req[1024];
    size_t w = 0;
    req[0] = '\0';
    for (const ah_field_spec *f = fields; f->name != NULL; f++) {
        if (!(f->flags & AH_FIELD_REQUIRED) || w + strlen(f->name) + 3 >= sizeof req)
            continue;
        w += (size_t)snprintf(req + w, sizeof req - w, "%s%s", w > 0 ? ", " : "", f->name);
    }
    if (w > 0)
        yput(b, indent, "required: [%s]", req);
    if (fields->name == NULL) {
        yput(b, indent, "properties: {}");
        return;
    }
    yput(b, indent, "properties:");
    for (const ah_field_spec *f = fields; f->name != NULL; f++) {
        yput(b, indent + 2, "%s:", f->name);
        char help[600];
        yquote(f->help != NULL ? f->help : "", help, sizeof help);
        if (f->help != NULL && f->help[0] != '\0')
            yput(b, indent + 4, "description: %s", help);
        else if (f->type == AH_FIELD_ANY)
            yput(b, indent + 4, "description: \"any JSON value\"");
        ytype(b, indent + 4, f, false);
    }
}

int ah_opfields_openapi(const ah_plugin_descriptor *d, char **buf, size_t *len)
{
    ybuf b = {*buf, *len, *buf != NULL ? *len + 1 : 0, false};
    size_t n = 0;
    const ah_topic *topics = ah_router_topics(&n);
    for (size_t i = 0; i < n; i++) {
        const ah_field_spec *f = ah_opfields_find(d, topics[i].topic);
        if (f == NULL)
            continue;
        yput(&b, 4, "bus.%s.%s:", d->name, topics[i].topic);
        yput(&b, 6, "description: \"%s: the body of POST /v1/bus/%s (null members count as "
                    "absent)\"", d->name, topics[i].topic);
        yput(&b, 6, "type: object");
        yfields(&b, 6, f);
    }
    if (b.oom) {
        free(b.s);
        *buf = NULL;
        *len = 0;
        return -1;
    }
    *buf = b.s;
    *len = b.len;
    return 0;
}
