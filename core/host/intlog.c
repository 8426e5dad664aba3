/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conns.h"
#include "core.h"
#include "intlog.h"

#define INTLOG_MAX_BODY (64 * 1024)

void ah_intlog_write(ah_core *core, const ah_intlog_rec *r)
{
    char at[32];
    ah_now_iso(at);
    ah_log_entry e = {
        .at = at,
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
    };
    if (core->store->ops->log_add(core->store, &e) != 0)
        ah_log(&core->log, AH_LOG_WARN, "intlog", "cannot write integration log entry (%s %s)",
               r->action, r->path != NULL ? r->path : "");
}

static bool key_is_secret(const char *k)
{
    static const char *const needles[] = {"key", "secret", "password", "passwd", "token",
                                          "authorization", "signature", "credential"};
    if (k == NULL)
        return false;
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
        if (strcasestr(k, needles[i]) != NULL)
            return true;
    return false;
}

static void redact_tree(cJSON *node)
{
    cJSON *it;
    cJSON_ArrayForEach(it, node) {
        if (key_is_secret(it->string) && !cJSON_IsObject(it) && !cJSON_IsArray(it)) {
            cJSON *stars = cJSON_CreateString("***");
            if (stars != NULL)
                cJSON_ReplaceItemViaPointer(node, it, stars);
            /* `it` is gone: restart is not needed, the replacement took its
             * place in the list and the loop continues from it. */
            it = stars != NULL ? stars : it;
        } else if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
            redact_tree(it);
        }
    }
}

char *ah_intlog_redact_json(const cJSON *body)
{
    cJSON *copy = cJSON_Duplicate(body, 1);
    if (copy == NULL)
        return NULL;
    redact_tree(copy);
    char *out = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    if (out != NULL && strlen(out) > INTLOG_MAX_BODY)
        strcpy(out + INTLOG_MAX_BODY - 4, "...");
    return out;
}

char *ah_intlog_redact(const char *text, size_t len)
{
    if (text == NULL || len == 0)
        return NULL;
    cJSON *j = ah_json_parse_limited(text, len);
    if (j == NULL) {
        char *s = NULL;
        if (asprintf(&s, "<%zu bytes, not JSON>", len) < 0)
            return NULL;
        return s;
    }
    char *out = ah_intlog_redact_json(j);
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
