/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conns.h"
#include "core.h"
#include "intlog.h"
#include "json.h"

#define INTLOG_MAX_BODY (64 * 1024)

bool ah_intlog_action_valid(const char *action)
{
    static const char *const actions[] = {"REQUEST",  "RESPONSE",         "ERROR",
                                          "ERROR_SUPPRESSED", "OUTBOUND", "OUTBOUND_ERROR"};
    for (size_t i = 0; action != NULL && i < sizeof actions / sizeof actions[0]; i++)
        if (strcmp(action, actions[i]) == 0)
            return true;
    return false;
}

void ah_intlog_write(ah_core *core, const ah_intlog_rec *r)
{
    ah_log_entry e = {
        .at = NULL, /* now, as the store reads its clock */
        .tenant = (char *)r->tenant,
        .source = (char *)(r->source != NULL ? r->source : "core"),
        .plugin = (char *)r->plugin,
        .action = (char *)r->action,
        .method = (char *)r->method,
        .path = (char *)r->path,
        .status = r->status,
        .duration_s = r->duration_s,
        .body = (char *)r->body,
        .correlation_id = (char *)r->correlation_id,
        .with_request = r->with_request,
        .request_body = (char *)r->request_body,
    };
    if (core->store->ops->log_add(core->store, &e) != 0)
        ah_log(&core->log, AH_LOG_WARN, "intlog", "cannot write integration log entry (%s %s)",
               r->action, r->path != NULL ? r->path : "");
}

/* The needles are ASCII: so is their case (tolower() is a call, and reads
 * the locale). */
static inline char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* Whether p starts with rest (lower case), in any case: its first letter
 * checked before the call, which rules out most places. */
static inline bool starts_nocase(const char *p, const char *rest, size_t n)
{
    return ascii_lower(p[0]) == rest[0] && strncasecmp(p, rest, n) == 0;
}

/* Whether a member's name says it holds a secret: it contains one of the
 * needles, in any case. Every request and answer on the write path has its
 * names checked, and names are short and mostly innocent: one pass that
 * stops at a needle's first letter (strcasestr per needle cost more than
 * parsing the body). */
static bool key_is_secret(const char *k)
{
    if (k == NULL)
        return false;
    /* The needles: key, secret, signature, password, passwd, token,
     * authorization, credential; by first letter. */
    for (const char *p = k; *p != '\0'; p++) {
        const char *q = p + 1;
        switch (ascii_lower(*p)) {
        case 'k':
            if (starts_nocase(q, "ey", 2))
                return true;
            break;
        case 's':
            if (starts_nocase(q, "ecret", 5) || starts_nocase(q, "ignature", 8))
                return true;
            break;
        case 'p':
            if (starts_nocase(q, "assword", 7) || starts_nocase(q, "asswd", 5))
                return true;
            break;
        case 't':
            if (starts_nocase(q, "oken", 4))
                return true;
            break;
        case 'a':
            if (starts_nocase(q, "uthorization", 12))
                return true;
            break;
        case 'c':
            if (starts_nocase(q, "redential", 9))
                return true;
            break;
        default:
            break;
        }
    }
    return false;
}

/* Replaces every secret member's value by "***" in place; false when out
 * of memory (then the body must not be logged: a secret may be left). */
static bool redact_tree(cJSON *node)
{
    cJSON *it;
    cJSON_ArrayForEach(it, node) {
        if (key_is_secret(it->string) && !cJSON_IsObject(it) && !cJSON_IsArray(it)) {
            cJSON *stars = cJSON_CreateString("***");
            /* The replacement keeps the member's name (ReplaceItemViaPointer
             * does not carry it over; cJSON frees names with free()). */
            if (stars == NULL || (stars->string = strdup(it->string)) == NULL) {
                cJSON_Delete(stars);
                return false;
            }
            cJSON_ReplaceItemViaPointer(node, it, stars);
            /* `it` is gone: the replacement took its place in the list and
             * the loop continues from it. */
            it = stars;
        } else if ((cJSON_IsObject(it) || cJSON_IsArray(it)) && !redact_tree(it)) {
            return false;
        }
    }
    return true;
}

static bool tree_has_secret(const cJSON *node)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, node) {
        if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
            if (tree_has_secret(it))
                return true;
        } else if (key_is_secret(it->string)) {
            return true;
        }
    }
    return false;
}

/* Ends out, `len` bytes long, with "..." within INTLOG_MAX_BODY bytes when
 * it is longer, never inside a UTF-8 sequence (a PostgreSQL text column
 * refuses the half of one, and with it the group the row was written in). */
static void cut_long(char *out, size_t len)
{
    if (len > INTLOG_MAX_BODY)
        memcpy(out + ah_utf8_cut(out, len, INTLOG_MAX_BODY - 4), "...", 4);
}

/* The log's copy of a body's text: cut at INTLOG_MAX_BODY. */
static char *log_copy(const char *text, size_t len)
{
    size_t n = len > INTLOG_MAX_BODY ? INTLOG_MAX_BODY : len;
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, text, n);
    out[n] = '\0';
    cut_long(out, len);
    return out;
}

char *ah_intlog_redact_json_text(const cJSON *body, const char *printed)
{
    bool secret = tree_has_secret(body);
    if (printed != NULL && !secret)
        /* The common case (the write path logs every request and answer):
         * nothing to hide, and the text is printed already. */
        return log_copy(printed, strlen(printed));
    if (!secret) {
        char *out = cJSON_PrintUnformatted(body);
        if (out != NULL)
            cut_long(out, strlen(out));
        return out;
    }
    cJSON *copy = cJSON_Duplicate(body, 1);
    if (copy == NULL)
        return NULL;
    char *out = redact_tree(copy) ? cJSON_PrintUnformatted(copy) : NULL;
    cJSON_Delete(copy);
    if (out != NULL)
        cut_long(out, strlen(out));
    return out;
}

char *ah_intlog_redact_json(const cJSON *body)
{
    return ah_intlog_redact_json_text(body, NULL);
}

char *ah_intlog_redact(const char *text, size_t len)
{
    return ah_intlog_redact_parsed(text, len, NULL);
}

char *ah_intlog_redact_parsed(const char *text, size_t len, cJSON **tree)
{
    if (tree != NULL)
        *tree = NULL;
    if (text == NULL || len == 0)
        return NULL;
    cJSON *j = ah_json_parse_limited(text, len);
    if (j == NULL) {
        char *s = NULL;
        if (asprintf(&s, "<%zu bytes, not JSON>", len) < 0)
            return NULL;
        return s;
    }
    char *out;
    if (!tree_has_secret(j) && ah_utf8_valid(text, len)) {
        /* The text itself, without the whitespace between tokens: what
         * printing the tree would give, for far less. (Bytes that are no
         * UTF-8, which the tree holds as U+FFFD, are printed from it.) */
        out = malloc(len + 1);
        if (out != NULL) {
            memcpy(out, text, len);
            out[len] = '\0';
            cJSON_Minify(out);
            cut_long(out, strlen(out));
        }
    } else {
        out = ah_intlog_redact_json(j); /* redacts a copy: j stays whole */
    }
    if (tree != NULL)
        *tree = j;
    else
        cJSON_Delete(j);
    return out;
}

void ah_intlog_entry_json(void *arg, const ah_log_entry *e)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return;
    cJSON_AddNumberToObject(o, "id", (double)e->id);
    cJSON_AddStringToObject(o, "at", e->at ? e->at : "");
    if (e->tenant)
        cJSON_AddStringToObject(o, "tenant", e->tenant);
    cJSON_AddStringToObject(o, "source", e->source ? e->source : "");
    if (e->plugin)
        cJSON_AddStringToObject(o, "plugin", e->plugin);
    cJSON_AddStringToObject(o, "action", e->action ? e->action : "");
    if (e->method)
        cJSON_AddStringToObject(o, "method", e->method);
    if (e->path)
        cJSON_AddStringToObject(o, "path", e->path);
    cJSON_AddNumberToObject(o, "status", e->status);
    cJSON_AddNumberToObject(o, "processing_time", e->duration_s);
    if (e->body)
        cJSON_AddStringToObject(o, "body", e->body);
    cJSON_AddItemToArray(arg, o);
}

/* --- requests that failed authentication -------------------------------- */

#define GUARD_SLOTS 512
#define GUARD_WINDOW_S 60

typedef struct guard_slot {
    char ip[64];
    long window_start; /* monotonic seconds; 0: free slot */
    unsigned count;    /* requests seen in the window */
} guard_slot;

struct ah_intlog_guard {
    pthread_mutex_t mu;
    guard_slot all; /* every address together (ip unused) */
    guard_slot slot[GUARD_SLOTS];
};

/* Counts one request in s's window; its rank in the window, saturated. */
static unsigned window_count(guard_slot *s, long now, unsigned limit)
{
    if (s->window_start == 0 || now - s->window_start >= GUARD_WINDOW_S) {
        s->window_start = now;
        s->count = 0;
    }
    unsigned n = ++s->count;
    if (n > limit + 1)
        s->count = limit + 2; /* no wrap-around */
    return n;
}

ah_intlog_guard *ah_intlog_guard_new(void)
{
    ah_intlog_guard *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        free(g);
        return NULL;
    }
    return g;
}

void ah_intlog_guard_free(ah_intlog_guard *g)
{
    if (g == NULL)
        return;
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static long mono_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 1;
    /* Never 0, which marks a free slot. */
    return (long)ts.tv_sec + 1;
}

ah_intlog_unauth ah_intlog_unauth_admit(ah_core *core, const char *ip)
{
    ah_intlog_guard *g = core->intlog_guard;
    if (g == NULL)
        return AH_INTLOG_UNAUTH_DROP; /* no guard: never let them fill the store */
    if (ip == NULL)
        ip = "";
    long now = mono_s();
    pthread_mutex_lock(&g->mu);
    guard_slot *hit = NULL, *victim = &g->slot[0];
    for (size_t i = 0; i < GUARD_SLOTS; i++) {
        guard_slot *s = &g->slot[i];
        if (s->window_start != 0 && strcmp(s->ip, ip) == 0) {
            hit = s;
            break;
        }
        /* A free slot, else the oldest window, makes room. */
        if (victim->window_start != 0 &&
            (s->window_start == 0 || s->window_start < victim->window_start))
            victim = s;
    }
    if (hit == NULL) {
        hit = victim;
        snprintf(hit->ip, sizeof hit->ip, "%s", ip);
        hit->window_start = 0;
    }
    unsigned n = window_count(hit, now, AH_INTLOG_UNAUTH_PER_MIN);
    /* Only requests the address's limit lets through count against the
     * limit of all: one noisy address must not silence the others. */
    unsigned all = n <= AH_INTLOG_UNAUTH_PER_MIN + 1
                       ? window_count(&g->all, now, AH_INTLOG_UNAUTH_ALL_PER_MIN)
                       : 0;
    pthread_mutex_unlock(&g->mu);
    if (all > AH_INTLOG_UNAUTH_ALL_PER_MIN)
        return all == AH_INTLOG_UNAUTH_ALL_PER_MIN + 1 ? AH_INTLOG_UNAUTH_SUMMARY
                                                       : AH_INTLOG_UNAUTH_DROP;
    if (n <= AH_INTLOG_UNAUTH_PER_MIN)
        return AH_INTLOG_UNAUTH_LOG;
    return n == AH_INTLOG_UNAUTH_PER_MIN + 1 ? AH_INTLOG_UNAUTH_SUMMARY : AH_INTLOG_UNAUTH_DROP;
}

void ah_intlog_prune(ah_core *core)
{
    int days = core->cfg.log_retention_days > 0 ? core->cfg.log_retention_days : 30;
    char cutoff[32];
    ah_iso_in(-(long)days * 86400L * 1000L, cutoff);
    int64_t n = 0;
    if (core->store->ops->log_prune(core->store, cutoff, &n) != 0)
        ah_log(&core->log, AH_LOG_WARN, "intlog", "cannot prune the integration log");
    else if (n > 0)
        ah_log(&core->log, AH_LOG_INFO, "intlog",
               "pruned %lld integration log entries older than %d days", (long long)n, days);
}
