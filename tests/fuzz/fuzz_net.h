/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A provider's answers from fuzz input, for the targets that drive a
 * plugin's operations on the fake host (tests/support/fake_host.h). An
 * input runs ONE operation of the target's list: its first byte chooses
 * which (modulo the list's length, fuzz_net_begin), and the rest is a list
 * of answers separated by the byte 0x1e (ASCII record separator), each
 * "STATUS BODY" (decimal status, one blank or newline, then the body; no
 * status: no answer at all, a network failure, before anything was sent,
 * or after it when the answer starts with '?'). The operation's n-th
 * outbound request gets the n-th answer; once they run out every request
 * fails as if the network were down, and so does every request past the
 * FUZZ_NET_MAX-th (so that a provider paging forever ends). What an
 * operation needs done before it (a stored posting, a provisioned
 * application) the harness does on answers of its own (fuzz_net_fixed),
 * not the input's.
 * AH_FUZZ_SHOW=1 prints each request and what each operation did.
 */
#ifndef AH_FUZZ_NET_H
#define AH_FUZZ_NET_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atshub/plugin.h>

#include "fake_host.h"

#define FUZZ_NET_SEP '\x1e'
#define FUZZ_NET_MAX 16

typedef struct fuzz_net {
    const uint8_t *data;
    size_t size;
    size_t off;      /* start of the next answer */
    unsigned calls;  /* requests of the current operation */
} fuzz_net;

static inline int fuzz_net_show(void)
{
    static int show = -1;
    if (show < 0)
        show = getenv("AH_FUZZ_SHOW") != NULL;
    return show;
}

/* The next operation may make FUZZ_NET_MAX requests again. */
static inline void fuzz_net_next_op(fuzz_net *n)
{
    n->calls = 0;
}

/* The operation (0 .. nops-1) the input runs, from its first byte; n gets
 * the rest, the answers. An empty input runs operation 0 without answers. */
static inline unsigned fuzz_net_begin(fuzz_net *n, const uint8_t *data, size_t size,
                                      unsigned nops)
{
    *n = (fuzz_net){.data = data, .size = 0};
    if (size == 0)
        return 0;
    n->data = data + 1;
    n->size = size - 1;
    return data[0] % nops;
}

/* Answers the harness gives (a NUL-terminated text), not the input. */
static inline fuzz_net fuzz_net_fixed(const char *answers)
{
    return (fuzz_net){.data = (const uint8_t *)answers, .size = strlen(answers)};
}

/* The outcome the real host works out from an answer (plugin.h). */
static inline int32_t fuzz_net_outcome(long status)
{
    if (status >= 200 && status <= 299)
        return AH_OUTCOME_DONE;
    if (status == 500 || status == 502 || status == 504)
        return AH_OUTCOME_UNKNOWN;
    return AH_OUTCOME_NOT_DONE;
}

static inline ah_result fuzz_net_http(void *arg, const ah_http_request *req,
                                      ah_http_response *resp)
{
    fuzz_net *n = arg;
    if (fuzz_net_show())
        fprintf(stderr, "  %s %s %.*s\n", req->method, req->url,
                req->body != NULL ? (int)req->body_len : 0, req->body != NULL ? req->body : "");
    resp->outcome = AH_OUTCOME_NOT_DONE;
    if (n->off > n->size || n->calls >= FUZZ_NET_MAX)
        return AH_ERR;
    n->calls++;
    const uint8_t *p = n->data + n->off;
    size_t left = n->size - n->off;
    const uint8_t *sep = memchr(p, FUZZ_NET_SEP, left);
    size_t len = sep != NULL ? (size_t)(sep - p) : left;
    n->off += len + 1; /* past the end when it was the last answer */
    long status = 0;
    size_t i = 0;
    while (i < len && i < 3 && p[i] >= '0' && p[i] <= '9')
        status = status * 10 + (p[i++] - '0');
    if (i == 0 || (i < len && p[i] != ' ' && p[i] != '\n')) {
        /* no status: no answer (sent or not) */
        resp->outcome = len > 0 && p[0] == '?' ? AH_OUTCOME_UNKNOWN : AH_OUTCOME_NOT_DONE;
        return AH_ERR;
    }
    if (i < len)
        i++;
    resp->status = status;
    resp->body = malloc(len - i + 1);
    resp->content_type = strdup("application/json");
    if (resp->body == NULL || resp->content_type == NULL)
        abort();
    memcpy(resp->body, p + i, len - i);
    resp->body[len - i] = '\0';
    resp->body_len = len - i;
    resp->outcome = fuzz_net_outcome(status);
    return AH_OK;
}

/* A quiet fake host whose outbound HTTP is answered from n (the input). */
static inline ah_fake_host *fuzz_net_host(fuzz_net *n)
{
    ah_fake_host *fh = ah_fake_host_new();
    if (fh == NULL)
        abort();
    fh->quiet = true;
    fh->http_cb = fuzz_net_http;
    fh->http_arg = n;
    return fh;
}

/* What a fake host's record store and sequences held (fuzz_net_save), to
 * put back after an input that wrote to them (fuzz_net_restore): the inputs
 * of a target share hosts set up once, and none sees another's writes. */
typedef struct fuzz_net_saved {
    cJSON *records, *sequences;
    unsigned long next_record_id;
    unsigned puts;
} fuzz_net_saved;

static inline cJSON *fuzz_net_dup(const cJSON *j)
{
    cJSON *d = j != NULL ? cJSON_Duplicate(j, 1) : NULL;
    if (j != NULL && d == NULL)
        abort();
    return d;
}

static inline void fuzz_net_save(const ah_fake_host *fh, fuzz_net_saved *s)
{
    s->records = fuzz_net_dup(fh->records);
    s->sequences = fuzz_net_dup(fh->sequences);
    s->next_record_id = fh->next_record_id;
    s->puts = fh->record_put_count;
}

static inline void fuzz_net_restore(ah_fake_host *fh, const fuzz_net_saved *s)
{
    if (fh->record_put_count != s->puts) {
        cJSON_Delete(fh->records);
        fh->records = fuzz_net_dup(s->records);
        fh->next_record_id = s->next_record_id;
        fh->record_put_count = s->puts;
    }
    if (fh->sequences != s->sequences &&
        (fh->sequences == NULL || s->sequences == NULL ||
         !cJSON_Compare(fh->sequences, s->sequences, 1))) {
        cJSON_Delete(fh->sequences);
        fh->sequences = fuzz_net_dup(s->sequences);
    }
}

/* Runs one operation of the connection `ctx` of `conn` with the JSON
 * argument `arg` (NULL: none), on the answers of n not yet taken; the reply
 * is printed (every part of it must be valid) and dropped. Returns what the
 * operation returned. */
typedef ah_result (*fuzz_op_fn)(ah_call *call, const cJSON *body, cJSON **reply);

static inline ah_result fuzz_net_op(ah_fake_host *fh, ah_fake_conn *conn, void *ctx,
                                    fuzz_net *n, const char *topic, fuzz_op_fn op,
                                    const char *arg)
{
    if (op == NULL)
        abort(); /* the harness names an operation the plugin does not have */
    fh->http_arg = n;
    fuzz_net_next_op(n);
    cJSON *body = arg != NULL ? cJSON_Parse(arg) : cJSON_CreateObject();
    if (body == NULL)
        abort(); /* the harness's own argument */
    ah_call_ext x;
    ah_fake_call_init(fh, &x, conn);
    x.call.conn_ctx = ctx;
    x.call.topic = topic;
    cJSON *reply = NULL;
    unsigned before = fh->http_count;
    ah_result r = op(&x.call, body, &reply);
    if (fuzz_net_show())
        fprintf(stderr, "%s: %s (%u requests) %s %s\n", topic, r == AH_OK ? "ok" : "failed",
                fh->http_count - before, x.err_code, x.err_msg);
    if (r == AH_OK) {
        char *s = cJSON_PrintUnformatted(reply);
        free(s);
    } else if (reply != NULL) {
        abort(); /* a failure that also answered */
    } else if (x.err_code[0] == '\0') {
        abort(); /* a failure that does not say why */
    }
    cJSON_Delete(reply);
    cJSON_Delete(body);
    return r;
}

#endif
