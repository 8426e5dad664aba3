/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A plugin's descriptor as data (mirror.h).
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mirror.h"
#include "router.h"

/* As the loader: a longer list is refused there. */
#define LIST_MAX 1024
#define TABLE_SIZE_MAX 4096u
/* Field tables nest this deep at most (the check allows fewer). */
#define FIELDS_DEPTH 8

#define HAS(d, m) ((size_t)(d)->struct_size >= offsetof(ah_plugin_descriptor, m) + sizeof((d)->m))

/* ------------------------------------------------------------------------ */
/* Describing (the plugin host process)                                      */
/* ------------------------------------------------------------------------ */

static void add_str(cJSON *o, const char *k, const char *v)
{
    if (v != NULL)
        cJSON_AddStringToObject(o, k, v);
}

static cJSON *describe_fields(const ah_field_spec *f, int depth)
{
    cJSON *a = cJSON_CreateArray();
    if (a == NULL || f == NULL)
        return a;
    for (int i = 0; i <= LIST_MAX; i++, f++) {
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(a, o))
            break;
        if (f->name == NULL)
            break; /* the terminator, as an empty object */
        cJSON_AddStringToObject(o, "name", f->name);
        cJSON_AddNumberToObject(o, "type", f->type);
        cJSON_AddNumberToObject(o, "flags", f->flags);
        cJSON_AddNumberToObject(o, "min_size", f->min_size);
        cJSON_AddNumberToObject(o, "max_size", f->max_size);
        cJSON_AddNumberToObject(o, "max_item", f->max_item);
        cJSON_AddNumberToObject(o, "min", f->min);
        cJSON_AddNumberToObject(o, "max", f->max);
        add_str(o, "one_of", f->one_of);
        add_str(o, "help", f->help);
        if (f->fields != NULL) {
            if (depth >= FIELDS_DEPTH)
                cJSON_AddTrueToObject(o, "too_deep");
            else
                cJSON_AddItemToObject(o, "fields", describe_fields(f->fields, depth + 1));
        }
    }
    return a;
}

/* A table's bytes as hex, each operation slot replaced by 0 or 1. */
static cJSON *describe_table(const unsigned char *t, size_t table_offset)
{
    uint32_t size;
    memcpy(&size, t, sizeof size);
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddNumberToObject(o, "off", (double)table_offset);
    cJSON_AddNumberToObject(o, "size", size);
    if (size > TABLE_SIZE_MAX || size < sizeof(uint32_t))
        return o; /* the check refuses it; no bytes */
    unsigned char *b = malloc(size);
    char *hex = malloc((size_t)size * 2 + 1);
    if (b == NULL || hex == NULL) {
        free(b);
        free(hex);
        cJSON_Delete(o);
        return NULL;
    }
    memcpy(b, t, size);
    size_t n = 0;
    const ah_topic *topics = ah_router_topics(&n);
    for (size_t i = 0; i < n; i++) {
        if (topics[i].table_offset != table_offset ||
            topics[i].slot_offset + sizeof(ah_op_fn) > size)
            continue;
        ah_op_fn fn;
        memcpy(&fn, b + topics[i].slot_offset, sizeof fn);
        uintptr_t mark = fn != NULL;
        memset(b + topics[i].slot_offset, 0, sizeof fn);
        memcpy(b + topics[i].slot_offset, &mark, sizeof mark);
    }
    for (uint32_t i = 0; i < size; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
    cJSON_AddStringToObject(o, "bytes", hex);
    free(b);
    free(hex);
    return o;
}

cJSON *ah_mirror_describe(const ah_plugin_descriptor *d)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || d == NULL)
        return o;
    cJSON_AddNumberToObject(o, "struct_size", d->struct_size);
    if (!HAS(d, abi_minor))
        return o;
    cJSON_AddNumberToObject(o, "abi_major", d->abi_major);
    cJSON_AddNumberToObject(o, "abi_minor", d->abi_minor);
    if (!HAS(d, subscriptions))
        return o; /* shorter than ABI 1.0: the check refuses it */
    add_str(o, "name", d->name);
    add_str(o, "version", d->version);
    add_str(o, "description", d->description);
    cJSON *fns = cJSON_AddObjectToObject(o, "fns");
    cJSON_AddBoolToObject(fns, "init", d->init != NULL);
    cJSON_AddBoolToObject(fns, "fini", d->fini != NULL);
    cJSON_AddBoolToObject(fns, "open", d->open != NULL);
    cJSON_AddBoolToObject(fns, "close", d->close != NULL);
    if (d->settings != NULL) {
        cJSON *a = cJSON_AddArrayToObject(o, "settings");
        const ah_setting_spec *s = d->settings;
        for (int i = 0; i <= LIST_MAX && s[i].key != NULL; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddItemToArray(a, e);
            cJSON_AddStringToObject(e, "key", s[i].key);
            cJSON_AddNumberToObject(e, "type", s[i].type);
            add_str(e, "default", s[i].default_value);
            cJSON_AddNumberToObject(e, "flags", s[i].flags);
            add_str(e, "help", s[i].help);
        }
    }
    cJSON *tables = cJSON_AddArrayToObject(o, "tables");
    size_t n = 0;
    const ah_topic *topics = ah_router_topics(&n);
    for (size_t i = 0; i < n; i++) {
        size_t off = topics[i].table_offset;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = topics[j].table_offset == off;
        if (seen || off + sizeof(void *) > d->struct_size)
            continue;
        const unsigned char *t;
        memcpy(&t, (const unsigned char *)d + off, sizeof t);
        if (t != NULL)
            cJSON_AddItemToArray(tables, describe_table(t, off));
    }
    if (d->routes != NULL) {
        cJSON *a = cJSON_AddArrayToObject(o, "routes");
        const ah_route *r = d->routes;
        for (int i = 0; i <= LIST_MAX && r[i].method != NULL; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddItemToArray(a, e);
            cJSON_AddStringToObject(e, "method", r[i].method);
            add_str(e, "path", r[i].path);
            cJSON_AddBoolToObject(e, "handler", r[i].handler != NULL);
            cJSON_AddNumberToObject(e, "flags", r[i].flags);
            add_str(e, "action", r[i].action);
        }
    }
    if (d->subscriptions != NULL) {
        cJSON *a = cJSON_AddArrayToObject(o, "subscriptions");
        const ah_subscription *s = d->subscriptions;
        for (int i = 0; i <= LIST_MAX && s[i].pattern != NULL; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddItemToArray(a, e);
            cJSON_AddStringToObject(e, "pattern", s[i].pattern);
            cJSON_AddBoolToObject(e, "handler", s[i].handler != NULL);
        }
    }
    if (HAS(d, rate_limit_rps))
        cJSON_AddNumberToObject(o, "rate_limit_rps", d->rate_limit_rps);
    if (HAS(d, needs_abi_minor))
        cJSON_AddNumberToObject(o, "needs_abi_minor", d->needs_abi_minor);
    if (HAS(d, op_fields) && d->op_fields != NULL) {
        cJSON *a = cJSON_AddArrayToObject(o, "op_fields");
        const ah_op_fields *f = d->op_fields;
        for (int i = 0; i <= LIST_MAX && f[i].topic != NULL; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddItemToArray(a, e);
            cJSON_AddStringToObject(e, "topic", f[i].topic);
            if (f[i].fields != NULL)
                cJSON_AddItemToObject(e, "fields", describe_fields(f[i].fields, 0));
        }
    }
    if (HAS(d, op_writes) && d->op_writes != NULL) {
        cJSON *a = cJSON_AddArrayToObject(o, "op_writes");
        const ah_op_write *w = d->op_writes;
        for (int i = 0; i <= LIST_MAX && w[i].topic != NULL; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddItemToArray(a, e);
            cJSON_AddStringToObject(e, "topic", w[i].topic);
            cJSON_AddNumberToObject(e, "reconcile", w[i].reconcile);
            add_str(e, "how", w[i].how);
            cJSON_AddBoolToObject(e, "settle", w[i].settle != NULL);
        }
    }
    return o;
}

/* ------------------------------------------------------------------------ */
/* Rebuilding (the daemon)                                                   */
/* ------------------------------------------------------------------------ */

typedef struct mirror {
    ah_plugin_descriptor d; /* first: the descriptor handed out */
    cJSON *json;            /* a copy; every string points into it */
    void **allocs;
    size_t nallocs, capallocs;
} mirror;

/* The stubs: never called (the daemon sends these calls to the process). */
static ah_result stub_call(ah_call *call)
{
    return call->host->fail(call, AH_E_INTERNAL, 500,
                            "an isolated plugin's function was called in the daemon");
}
static ah_result stub_init(ah_call *call, void **state)
{
    (void)state;
    return stub_call(call);
}
static void stub_fini(void *state)
{
    (void)state;
}
static ah_result stub_open(ah_call *call, void **ctx)
{
    (void)ctx;
    return stub_call(call);
}
static void stub_close(void *state, void *ctx)
{
    (void)state;
    (void)ctx;
}
static ah_result stub_op(ah_call *call, const cJSON *body, cJSON **reply)
{
    (void)body;
    *reply = NULL;
    return stub_call(call);
}
static ah_result stub_route(ah_call *call, ah_http_exchange *ex)
{
    (void)ex;
    return stub_call(call);
}
static ah_result stub_event(ah_call *call, const char *topic, const cJSON *body)
{
    (void)topic;
    (void)body;
    return stub_call(call);
}

static void *m_alloc(mirror *m, size_t size)
{
    if (m->nallocs == m->capallocs) {
        size_t cap = m->capallocs ? m->capallocs * 2 : 16;
        void **n = realloc(m->allocs, cap * sizeof *n);
        if (n == NULL)
            return NULL;
        m->allocs = n;
        m->capallocs = cap;
    }
    void *p = calloc(1, size);
    if (p != NULL)
        m->allocs[m->nallocs++] = p;
    return p;
}

static const char *s_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double n_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) && v->valuedouble == v->valuedouble ? v->valuedouble : 0;
}

/* A whole number in 0..max (the process is not trusted: anything else,
 * NaN, negative or past max, is clamped rather than cast). */
static uint64_t u_of(const cJSON *o, const char *k, uint64_t max)
{
    double v = n_of(o, k);
    if (!(v > 0))
        return 0;
    if (v >= (double)max)
        return max;
    return (uint64_t)v;
}

static bool b_of(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* A JSON array of at most LIST_MAX + 1 entries, or NULL (absent, or not an
 * array: *bad set). */
static const cJSON *list_of(const cJSON *o, const char *k, int *n, bool *bad)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k);
    *n = 0;
    if (a == NULL)
        return NULL;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > LIST_MAX + 2) {
        *bad = true;
        return NULL;
    }
    *n = cJSON_GetArraySize(a);
    return a;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static const ah_field_spec *build_fields(mirror *m, const cJSON *a, int depth, bool *bad)
{
    if (!cJSON_IsArray(a) || depth > FIELDS_DEPTH || cJSON_GetArraySize(a) > LIST_MAX + 2) {
        *bad = true;
        return NULL;
    }
    int n = cJSON_GetArraySize(a);
    ah_field_spec *f = m_alloc(m, ((size_t)n + 1) * sizeof *f);
    if (f == NULL) {
        *bad = true;
        return NULL;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        const char *name = s_of(e, "name");
        if (name == NULL)
            break; /* the terminator */
        f[i].name = name;
        f[i].type = (ah_field_type)(int)u_of(e, "type", INT_MAX);
        f[i].flags = (unsigned)u_of(e, "flags", UINT_MAX);
        f[i].min_size = (uint32_t)u_of(e, "min_size", UINT32_MAX);
        f[i].max_size = (uint32_t)u_of(e, "max_size", UINT32_MAX);
        f[i].max_item = (uint32_t)u_of(e, "max_item", UINT32_MAX);
        f[i].min = n_of(e, "min");
        f[i].max = n_of(e, "max");
        f[i].one_of = s_of(e, "one_of");
        f[i].help = s_of(e, "help");
        if (b_of(e, "too_deep"))
            *bad = true;
        const cJSON *sub = cJSON_GetObjectItemCaseSensitive(e, "fields");
        if (sub != NULL)
            f[i].fields = build_fields(m, sub, depth + 1, bad);
        i++;
    }
    return f;
}

static bool build_table(mirror *m, const cJSON *t)
{
    size_t off = (size_t)u_of(t, "off", sizeof(ah_plugin_descriptor));
    uint32_t size = (uint32_t)u_of(t, "size", UINT32_MAX);
    const char *hex = s_of(t, "bytes");
    /* A table the plugin declared with an impossible size: a stand-in of
     * that size only, for the loader's check to refuse. */
    size_t have = hex != NULL ? strlen(hex) / 2 : 0;
    /* Only a capability table's pointer may be set this way (anything else
     * would point the daemon at bytes the process chose). */
    size_t n = 0;
    const ah_topic *topics = ah_router_topics(&n);
    bool known = false;
    for (size_t i = 0; i < n && !known; i++)
        known = topics[i].table_offset == off;
    const unsigned char *already;
    memcpy(&already, (const unsigned char *)&m->d + (known ? off : 0), sizeof already);
    if (!known || already != NULL)
        return false;
    size_t alloc = size <= TABLE_SIZE_MAX && size >= sizeof(uint32_t) ? size : sizeof(uint32_t);
    if (hex != NULL && (strlen(hex) % 2 != 0 || have != alloc))
        return false;
    /* Room for every known slot, so that reading one is never past it. */
    unsigned char *b = m_alloc(m, alloc + sizeof(void *) * 8);
    if (b == NULL)
        return false;
    for (size_t i = 0; i < have; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        b[i] = (unsigned char)(hi * 16 + lo);
    }
    memcpy(b, &size, sizeof size);
    for (size_t i = 0; i < n; i++) {
        if (topics[i].table_offset != off || topics[i].slot_offset + sizeof(ah_op_fn) > alloc)
            continue;
        uintptr_t mark;
        memcpy(&mark, b + topics[i].slot_offset, sizeof mark);
        ah_op_fn fn = mark != 0 ? stub_op : NULL;
        memcpy(b + topics[i].slot_offset, &fn, sizeof fn);
    }
    memcpy((unsigned char *)&m->d + off, &b, sizeof b);
    return true;
}

const ah_plugin_descriptor *ah_mirror_build(const cJSON *desc, char *err, size_t errlen)
{
    mirror *m = calloc(1, sizeof *m);
    if (m == NULL || (m->json = cJSON_Duplicate(desc, 1)) == NULL) {
        free(m);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const cJSON *j = m->json;
    ah_plugin_descriptor *d = &m->d;
    bool bad = !cJSON_IsObject(j);
    /* A newer plugin's members past ours are unknown here: ours end it. */
    d->struct_size = (uint32_t)u_of(j, "struct_size", sizeof *d);
    d->abi_major = (uint16_t)u_of(j, "abi_major", UINT16_MAX);
    d->abi_minor = (uint16_t)u_of(j, "abi_minor", UINT16_MAX);
    d->name = s_of(j, "name");
    d->version = s_of(j, "version");
    d->description = s_of(j, "description");
    const cJSON *fns = cJSON_GetObjectItemCaseSensitive(j, "fns");
    if (b_of(fns, "init"))
        d->init = stub_init;
    if (b_of(fns, "fini"))
        d->fini = stub_fini;
    if (b_of(fns, "open"))
        d->open = stub_open;
    if (b_of(fns, "close"))
        d->close = stub_close;
    int n;
    const cJSON *a, *e;
    if ((a = list_of(j, "settings", &n, &bad)) != NULL) {
        ah_setting_spec *s = m_alloc(m, ((size_t)n + 1) * sizeof *s);
        int i = 0;
        if (s == NULL)
            bad = true;
        else
            cJSON_ArrayForEach(e, a)
            {
                s[i].key = s_of(e, "key");
                if (s[i].key == NULL) {
                    bad = true;
                    break;
                }
                s[i].type = (ah_setting_type)(int)u_of(e, "type", INT_MAX);
                s[i].default_value = s_of(e, "default");
                s[i].flags = (unsigned)u_of(e, "flags", UINT_MAX);
                s[i].help = s_of(e, "help");
                i++;
            }
        d->settings = s;
    }
    const cJSON *tables = cJSON_GetObjectItemCaseSensitive(j, "tables");
    cJSON_ArrayForEach(e, tables) if (!build_table(m, e)) bad = true;
    if ((a = list_of(j, "routes", &n, &bad)) != NULL) {
        ah_route *r = m_alloc(m, ((size_t)n + 1) * sizeof *r);
        int i = 0;
        if (r == NULL)
            bad = true;
        else
            cJSON_ArrayForEach(e, a)
            {
                r[i].method = s_of(e, "method");
                if (r[i].method == NULL) {
                    bad = true;
                    break;
                }
                r[i].path = s_of(e, "path");
                r[i].handler = b_of(e, "handler") ? stub_route : NULL;
                r[i].flags = (unsigned)u_of(e, "flags", UINT_MAX);
                r[i].action = s_of(e, "action");
                i++;
            }
        d->routes = r;
    }
    if ((a = list_of(j, "subscriptions", &n, &bad)) != NULL) {
        ah_subscription *s = m_alloc(m, ((size_t)n + 1) * sizeof *s);
        int i = 0;
        if (s == NULL)
            bad = true;
        else
            cJSON_ArrayForEach(e, a)
            {
                s[i].pattern = s_of(e, "pattern");
                if (s[i].pattern == NULL) {
                    bad = true;
                    break;
                }
                s[i].handler = b_of(e, "handler") ? stub_event : NULL;
                i++;
            }
        d->subscriptions = s;
    }
    if (HAS(d, rate_limit_rps))
        d->rate_limit_rps = (uint32_t)u_of(j, "rate_limit_rps", UINT32_MAX);
    if (HAS(d, needs_abi_minor))
        d->needs_abi_minor = (uint16_t)u_of(j, "needs_abi_minor", UINT16_MAX);
    if (HAS(d, op_fields) && (a = list_of(j, "op_fields", &n, &bad)) != NULL) {
        ah_op_fields *f = m_alloc(m, ((size_t)n + 1) * sizeof *f);
        int i = 0;
        if (f == NULL)
            bad = true;
        else
            cJSON_ArrayForEach(e, a)
            {
                f[i].topic = s_of(e, "topic");
                const cJSON *fs = cJSON_GetObjectItemCaseSensitive(e, "fields");
                if (f[i].topic == NULL) {
                    bad = true;
                    break;
                }
                f[i].fields = fs != NULL ? build_fields(m, fs, 0, &bad) : NULL;
                i++;
            }
        d->op_fields = f;
    }
    if (HAS(d, op_writes) && (a = list_of(j, "op_writes", &n, &bad)) != NULL) {
        ah_op_write *w = m_alloc(m, ((size_t)n + 1) * sizeof *w);
        int i = 0;
        if (w == NULL)
            bad = true;
        else
            cJSON_ArrayForEach(e, a)
            {
                w[i].topic = s_of(e, "topic");
                if (w[i].topic == NULL) {
                    bad = true;
                    break;
                }
                w[i].reconcile = (ah_reconcile)(int)u_of(e, "reconcile", INT_MAX);
                w[i].how = s_of(e, "how");
                w[i].settle = b_of(e, "settle") ? stub_op : NULL;
                i++;
            }
        d->op_writes = w;
    }
    if (bad) {
        snprintf(err, errlen, "the plugin process described its descriptor in a form the "
                              "daemon cannot read");
        ah_mirror_free(d);
        return NULL;
    }
    return d;
}

void ah_mirror_free(const ah_plugin_descriptor *d)
{
    if (d == NULL)
        return;
    mirror *m = (mirror *)d;
    for (size_t i = 0; i < m->nallocs; i++)
        free(m->allocs[i]);
    free(m->allocs);
    cJSON_Delete(m->json);
    free(m);
}
