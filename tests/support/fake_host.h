/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A fake host API for unit tests of plugins and of the loader, in the spirit
 * of collectd's plugin_mock.c: every member of ah_host_api is implemented,
 * nothing reaches the network, and what a plugin did (events published,
 * records emitted, failures, log lines) is recorded in an ah_fake_host the
 * test inspects.
 *
 * How the fake finds its state: every call context it serves is an
 * ah_call_ext (core/registry.h) whose host_ctx is the ah_fake_host; set one
 * up with ah_fake_call_init(). fail() casts the call to ah_call_ext and
 * records the error there, as the real host does. The loader fills host_ctx
 * for init when given the fake host through ah_plugin_load_ctx() or
 * ah_registry_new_ctx(). A connection is an ah_fake_conn holding the
 * settings setting() returns; it also points back at the fake host, so calls
 * made for a connection find it even when host_ctx is unset.
 *
 * Usage:
 *   ah_fake_host *fh = ah_fake_host_new();
 *   ah_fake_conn *conn = ah_fake_conn_new(fh, "acme", "main");
 *   ah_fake_conn_set(conn, "base_url", "http://127.0.0.1:1");
 *   ah_call_ext x;
 *   ah_fake_call_init(fh, &x, conn);
 *   rc = desc->jobs->get(&x.call, body, &reply);   // x.err_msg on AH_ERR
 *   ... inspect fh->publish_count, fh->last_topic ...
 *   ah_fake_conn_free(conn);
 *   ah_fake_host_free(fh);
 *
 * The record store (record_put, record_get, record_find, sequence_next,
 * store_ping) lives in memory in the fake host, keyed like the real one:
 * records by (tenant, connection, type, remote_id), sequences per tenant.
 *
 * Thread safety: the recorded fields are updated under fh->mu; a test reads
 * them after the plugin calls it made have returned.
 */
#ifndef AH_FAKE_HOST_H
#define AH_FAKE_HOST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <atshub/plugin.h>

#include "registry.h"

/** A canned outbound HTTP answer: fill resp (malloc'd body and
 *  content_type, released by host->http_response_free) and return AH_OK, or
 *  return AH_ERR for "no response". */
typedef ah_result (*ah_fake_http_fn)(void *arg, const ah_http_request *req,
                                     ah_http_response *resp);

typedef struct ah_fake_conn ah_fake_conn;

typedef struct ah_fake_host {
    pthread_mutex_t mu;

    /* --- set by the test --------------------------------------------- */
    bool quiet;              /**< do not print log lines to stderr */
    ah_fake_http_fn http_cb; /**< NULL: http() fails "no network in fake host" */
    void *http_arg;
    /** The connection conn_by_secret() matches against (plain comparison
     *  of its setting; the fake does not hash). NULL: nothing matches. The
     *  call contexts it returns live until ah_fake_host_free().
     *  setting_lists() looks in this connection's list only, comparing
     *  entries with the value as text (no networks). */
    ah_fake_conn *secret_conn;

    /* --- recorded by the fake ---------------------------------------- */
    unsigned log_count;
    char last_log[512];
    unsigned fail_count;
    char last_fail_code[64];
    unsigned http_count;
    unsigned oauth2_count;
    unsigned oauth2_invalidate_count;
    unsigned publish_count;
    char last_topic[128];
    cJSON *last_event; /**< body of the last publish (owned by the fake) */
    unsigned record_count;
    char last_record_type[64];
    char last_record_id[256];
    /** The last emitted record's raw JSON text (its text, or its tree
     *  printed), cut to fit. */
    char last_record_raw[1024];

    unsigned record_put_count; /**< record_put() calls that stored */
    unsigned settings_update_count; /**< settings_update() calls that changed a setting */
    /** The in-memory record store behind record_put/get/find: an array of
     *  record_get() objects plus "tenant" and "connection" (owned). */
    cJSON *records;

    /* --- private ------------------------------------------------------ */
    struct ah_fake_owned_call *owned_calls; /* from conn_by_secret() */
    cJSON *sequences;                       /* "tenant/name" -> last value */
    unsigned long next_record_id;
} ah_fake_host;

/** A new fake host with nothing recorded; NULL on allocation failure. */
ah_fake_host *ah_fake_host_new(void);
void ah_fake_host_free(ah_fake_host *fh);
/** The host API table: one constant table, every member non-NULL. */
const ah_host_api *ah_fake_host_api(void);
/** The access token oauth2_token() hands out. */
#define AH_FAKE_TOKEN "fake-access-token"

/** A connection of tenant `tenant` named `name` with no settings. */
ah_fake_conn *ah_fake_conn_new(ah_fake_host *fh, const char *tenant, const char *name);
/** Sets (or replaces) a setting; value NULL removes it. 0, or -1 (ENOMEM). */
int ah_fake_conn_set(ah_fake_conn *conn, const char *key, const char *value);
void ah_fake_conn_free(ah_fake_conn *conn);

/** Makes *x a fresh call context of the fake host, for connection `conn`
 *  (NULL: a call without a connection, as in init or a route handler). */
void ah_fake_call_init(ah_fake_host *fh, ah_call_ext *x, ah_fake_conn *conn);

/**
 * An inbound HTTP exchange for route handler tests; pass it as
 * AH_FAKE_EXCHANGE(&fx). The request fields are borrowed from the test;
 * the response is recorded: free it with ah_fake_exchange_clear().
 */
typedef struct ah_fake_exchange {
    const char *method;
    const char *path;
    const char *client_ip;
    const char *const *headers; /**< "Name: value", NULL-terminated; may be NULL */
    const char *const *query;   /**< "name=value" (unescaped), NULL-terminated */
    const char *body;
    size_t body_len;

    unsigned responses; /**< how many times the handler answered */
    int status;
    cJSON *response;    /**< the last answer's body (owned) */
} ah_fake_exchange;
#define AH_FAKE_EXCHANGE(fx) ((ah_http_exchange *)(void *)(fx))
void ah_fake_exchange_clear(ah_fake_exchange *fx);

#endif
