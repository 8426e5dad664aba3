/* SPDX-License-Identifier: Apache-2.0 */
/*
 * atshub webhook add TENANT URL [--types a,b] | list [TENANT] |
 *               enable ID | disable ID | deliveries ID
 * Works with or without a running daemon: the daemon's ticker reads the
 * endpoints from the store every second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "daemon.h"
#include "sync.h"
#include "webhooks.h"

#define EXIT_USAGE 2

static int wh_fail(bool json, const char *code, const char *msg)
{
    if (json)
        ah_cli_print_error(code, msg);
    else
        fprintf(stderr, "atshub: %s\n", msg);
    return 1;
}

static void wh_print(cJSON *o)
{
    char *t = cJSON_Print(o);
    if (t != NULL)
        puts(t);
    free(t);
}

/* A usage error: on stderr, and under --json also on stdout (as cli.c's). */
static int wh_usage(bool json)
{
    static const char msg[] = "usage: atshub webhook add TENANT URL [--types a,b] | list [TENANT] "
                              "| enable ID | disable ID | deliveries ID";
    fprintf(stderr, "atshub: %s (see: atshub --help)\n", msg);
    if (json)
        ah_cli_print_error("usage", msg);
    return EXIT_USAGE;
}

static bool parse_id(const char *s, int64_t *out)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || v <= 0)
        return false;
    *out = v;
    return true;
}

int ah_cli_webhook(const char *config, bool json, int argc, char **argv, const char *types)
{
    if (argc < 1)
        return wh_usage(json);
    const char *sub = argv[0];
    bool add = strcmp(sub, "add") == 0, list = strcmp(sub, "list") == 0;
    bool en = strcmp(sub, "enable") == 0, dis = strcmp(sub, "disable") == 0;
    bool dl = strcmp(sub, "deliveries") == 0;
    int64_t id = 0;
    if ((add && argc != 3) || (list && argc > 2) || ((en || dis || dl) && argc != 2) ||
        !(add || list || en || dis || dl))
        return wh_usage(json);
    if ((en || dis || dl) && !parse_id(argv[1], &id))
        return wh_usage(json);
    ah_config cfg;
    char err[1024];
    if (ah_config_load(config, &cfg, err, sizeof err) != 0)
        return wh_fail(json, "config_error", err);
    ah_core_opts o = {.load_plugins = false, .start_bus = false};
    ah_core *core = ah_daemon_open(&cfg, &o, err, sizeof err);
    if (core == NULL) {
        ah_config_free(&cfg);
        return wh_fail(json, "startup_error", err);
    }
    int rc = 0;
    int64_t tenant_id = 0;
    if (add || (list && argc == 2)) {
        ah_tenant_row t;
        memset(&t, 0, sizeof t);
        if (core->store->ops->tenant_get(core->store, argv[1], &t) != 0) {
            ah_daemon_close(core);
            return wh_fail(json, "not_found", "no such tenant");
        }
        tenant_id = t.id;
        ah_tenant_row_free(&t);
    }
    if (add) {
        char secret[96];
        if (ah_webhook_add(core, tenant_id, argv[2], types, &id, secret, sizeof secret, err,
                           sizeof err) != 0) {
            rc = wh_fail(json, "invalid_request", err);
        } else if (json) {
            cJSON *out = cJSON_CreateObject();
            cJSON_AddNumberToObject(out, "id", (double)id);
            cJSON_AddStringToObject(out, "url", argv[2]);
            cJSON_AddStringToObject(out, "types", types != NULL && *types ? types : "*");
            cJSON_AddStringToObject(out, "secret", secret);
            wh_print(out);
            cJSON *s = cJSON_GetObjectItem(out, "secret");
            explicit_bzero(s->valuestring, strlen(s->valuestring));
            cJSON_Delete(out);
        } else {
            printf("webhook endpoint %lld added\nsecret: %s\n", (long long)id, secret);
            fprintf(stderr, "The signing secret is shown once: store it now.\n");
        }
        explicit_bzero(secret, sizeof secret);
    } else if (list) {
        cJSON *l = ah_webhook_list(core, tenant_id);
        if (l == NULL) {
            rc = wh_fail(json, "internal_error", "cannot read the store");
        } else if (json) {
            wh_print(l);
        } else {
            printf("%-6s %-8s %-8s %-9s %-24s %s\n", "ID", "TENANT", "ENABLED", "FAILURES",
                   "TYPES", "URL");
            const cJSON *e;
            cJSON_ArrayForEach(e, l)
                printf("%-6d %-8d %-8s %-9d %-24s %s\n", cJSON_GetObjectItem(e, "id")->valueint,
                       cJSON_GetObjectItem(e, "tenant_id")->valueint,
                       cJSON_IsTrue(cJSON_GetObjectItem(e, "enabled")) ? "yes" : "no",
                       cJSON_GetObjectItem(e, "failures")->valueint,
                       cJSON_GetObjectItem(e, "types")->valuestring,
                       cJSON_GetObjectItem(e, "url")->valuestring);
        }
        cJSON_Delete(l);
    } else if (en || dis) {
        int r = ah_webhook_set_enabled(core, 0, id, en);
        if (r == AH_STORE_NOT_FOUND)
            rc = wh_fail(json, "not_found", "no such webhook endpoint");
        else if (r != 0)
            rc = wh_fail(json, "internal_error", "cannot update the store");
        else if (json)
            printf("{\"id\":%lld,\"enabled\":%s}\n", (long long)id, en ? "true" : "false");
        else
            printf("webhook endpoint %lld %s\n", (long long)id, en ? "enabled" : "disabled");
    } else {
        int r = 0;
        cJSON *d = ah_webhook_deliveries_rc(core, 0, id, 100, &r);
        if (d == NULL && r == AH_STORE_NOT_FOUND) {
            rc = wh_fail(json, "not_found", "no such webhook endpoint");
        } else if (d == NULL) {
            rc = wh_fail(json, "internal_error", "cannot read the store");
        } else if (json) {
            wh_print(d);
        } else {
            const cJSON *e;
            cJSON_ArrayForEach(e, d) {
                const cJSON *type = cJSON_GetObjectItem(e, "type");
                const cJSON *why = cJSON_GetObjectItem(e, "last_error");
                printf("%-14s %-32s %-9s attempts=%d status=%d%s%s\n",
                       cJSON_GetObjectItem(e, "event_id")->valuestring,
                       cJSON_IsString(type) ? type->valuestring : "-",
                       cJSON_GetObjectItem(e, "status")->valuestring,
                       cJSON_GetObjectItem(e, "attempts")->valueint,
                       cJSON_GetObjectItem(e, "last_status")->valueint,
                       cJSON_IsString(why) ? " error=" : "",
                       cJSON_IsString(why) ? why->valuestring : "");
            }
        }
        cJSON_Delete(d);
    }
    ah_daemon_close(core);
    return rc;
}
