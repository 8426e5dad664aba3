/* SPDX-License-Identifier: Apache-2.0 */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "block.h"
#include "bus.h"
#include "clock.h"

/* State shared by the test handlers; one per test, never global. */
typedef struct fx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ah_bus *bus;

    /* ordering */
    long next_seq[16];
    long seen[16];
    int out_of_order;
    long next_of[4][4]; /* "seq_of": per lane and sender */

    /* correlation ids */
    char **corr;
    int ncorr;

    /* gates */
    bool gate_open;
    bool blocked_started;
    bool flag_set;
    bool flag_seen;

    /* counters */
    long handled;
    long late_replies;

    /* events */
    int ev_count[4];
    char ev_log[64][48];
    int ev_n;

    /* tenant shares: handlers of "tarpit" running per tenant, and the most */
    int running[4];
    int most[4];
    int order[32]; /* tenants of "order" requests, as handled */
    int norder;

    /* async completions */
    long replies;
    long failed;
    char last_code[64];
    pthread_t cb_thread;
} fx;

static void fx_init(fx *f)
{
    memset(f, 0, sizeof *f);
    ck_assert_int_eq(pthread_mutex_init(&f->mu, NULL), 0);
    ck_assert_int_eq(pthread_cond_init(&f->cv, NULL), 0);
}

static void fx_destroy(fx *f)
{
    for (int i = 0; i < f->ncorr; i++)
        free(f->corr[i]);
    free(f->corr);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
}

/* A bus for f's test handlers, with a 10 s default timeout. */
static ah_bus *bus_open(fx *f, ah_bus_opts o)
{
    o.handler_arg = f;
    o.default_timeout_ms = 10000;
    ah_bus *b = ah_bus_new(&o);
    ck_assert_ptr_nonnull(b);
    f->bus = b;
    return b;
}

static ah_bus *bus_make(fx *f, int workers, unsigned max_queue, ah_bus_handler h)
{
    return bus_open(f, (ah_bus_opts){.workers = workers, .handler = h, .max_queue = max_queue});
}

/* Waits for `*flag` under f->mu, giving up after 10 s so that a broken bus
 * fails the test instead of hanging it. Returns the flag. */
static bool wait_flag(fx *f, const bool *flag)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    while (!*flag) {
        if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) != 0)
            break;
    }
    return *flag;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* The test router: behaviour chosen by topic. */
static void handler(void *arg, const ah_msg *m, ah_reply *r)
{
    fx *f = arg;
    if (strcmp(m->topic, "echo") == 0) {
        cJSON *o = cJSON_Duplicate(m->body, 1);
        ck_assert_ptr_nonnull(o);
        cJSON_AddStringToObject(o, "topic", m->topic);
        cJSON_AddStringToObject(o, "correlation_id", m->correlation_id);
        cJSON_AddNumberToObject(o, "lane", (double)m->lane);
        r->ok = true;
        r->body = o;
    } else if (strcmp(m->topic, "deadline") == 0) {
        /* What the handler's thread knows of its caller's deadline
         * (block.h), and the time then. */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "deadline", (double)ah_block_deadline_ms());
        cJSON_AddNumberToObject(o, "now", (double)ah_mono_ms());
        r->ok = true;
        r->body = o;
    } else if (strcmp(m->topic, "seq") == 0) {
        long seq = (long)(uintptr_t)m->target;
        pthread_mutex_lock(&f->mu);
        if (seq != f->next_seq[m->lane])
            f->out_of_order++;
        f->next_seq[m->lane] = seq + 1;
        f->seen[m->lane]++;
        pthread_mutex_unlock(&f->mu);
        r->ok = true;
    } else if (strcmp(m->topic, "seq_of") == 0) {
        /* target: sender << 24 | its sequence number on this lane */
        uintptr_t t = (uintptr_t)m->target;
        int sender = (int)(t >> 24);
        long seq = (long)(t & 0xffffff);
        pthread_mutex_lock(&f->mu);
        ck_assert(m->lane < 4 && sender < 4);
        if (seq != f->next_of[m->lane][sender])
            f->out_of_order++;
        f->next_of[m->lane][sender] = seq + 1;
        pthread_mutex_unlock(&f->mu);
        r->ok = true;
    } else if (strcmp(m->topic, "corr") == 0) {
        pthread_mutex_lock(&f->mu);
        f->corr[f->ncorr++] = strdup(m->correlation_id);
        pthread_mutex_unlock(&f->mu);
        r->ok = true;
    } else if (strcmp(m->topic, "wait_flag") == 0) {
        pthread_mutex_lock(&f->mu);
        f->blocked_started = true;
        pthread_cond_broadcast(&f->cv);
        f->flag_seen = wait_flag(f, &f->flag_set);
        pthread_mutex_unlock(&f->mu);
        r->ok = true;
    } else if (strcmp(m->topic, "set_flag") == 0) {
        pthread_mutex_lock(&f->mu);
        f->flag_set = true;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        r->ok = true;
    } else if (strcmp(m->topic, "gate") == 0) {
        pthread_mutex_lock(&f->mu);
        f->blocked_started = true;
        pthread_cond_broadcast(&f->cv);
        wait_flag(f, &f->gate_open);
        pthread_mutex_unlock(&f->mu);
        r->ok = true;
    } else if (strcmp(m->topic, "tarpit") == 0) {
        /* Holds its worker until the gate opens, counting per tenant. */
        pthread_mutex_lock(&f->mu);
        int t = (int)m->tenant;
        ck_assert_int_lt(t, 4);
        if (++f->running[t] > f->most[t])
            f->most[t] = f->running[t];
        pthread_cond_broadcast(&f->cv);
        wait_flag(f, &f->gate_open);
        f->running[t]--;
        pthread_mutex_unlock(&f->mu);
        r->ok = true;
    } else if (strcmp(m->topic, "order") == 0) {
        pthread_mutex_lock(&f->mu);
        if (f->norder < 32)
            f->order[f->norder++] = (int)m->tenant;
        pthread_mutex_unlock(&f->mu);
        r->ok = true;
    } else if (strcmp(m->topic, "slow") == 0) {
        sleep_ms(300);
        pthread_mutex_lock(&f->mu);
        f->late_replies++;
        pthread_mutex_unlock(&f->mu);
        r->ok = true;
        r->body = cJSON_CreateString("too late");
    } else if (strcmp(m->topic, "count") == 0) {
        pthread_mutex_lock(&f->mu);
        f->handled++;
        pthread_mutex_unlock(&f->mu);
        r->ok = true;
    } else if (strcmp(m->topic, "log") == 0) {
        pthread_mutex_lock(&f->mu);
        snprintf(f->ev_log[f->ev_n++], sizeof f->ev_log[0], "req:%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(m->body, "id")));
        pthread_mutex_unlock(&f->mu);
        r->ok = true;
    } else if (strcmp(m->topic, "silent") == 0) {
        /* fills nothing: the bus must answer for it */
    } else {
        ah_reply_error(r, "unknown_topic", 404, "no topic %s", m->topic);
    }
}

static void count_reply(void *arg, ah_reply *r)
{
    fx *f = arg;
    pthread_mutex_lock(&f->mu);
    f->replies++;
    f->failed += !r->ok;
    snprintf(f->last_code, sizeof f->last_code, "%s", r->ok ? "ok" : r->code);
    f->cb_thread = pthread_self();
    pthread_mutex_unlock(&f->mu);
    ah_reply_free(r);
}

/* A bus of `workers` serving handler() whose tenants have at most `cap`
 * requests queued or running each (max_queue_tenant). */
static ah_bus *bus_make_capped(fx *f, int workers, unsigned cap)
{
    return bus_open(f, (ah_bus_opts){.workers = workers, .handler = handler,
                                     .max_queue_tenant = cap});
}

/* ------------------------------------------------------------------------ */

START_TEST(test_reply_helpers)
{
    ah_reply r;
    ah_reply_error(&r, "not_found", 404, "no job %d", 42);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.code, "not_found");
    ck_assert_int_eq(r.http_status, 404);
    ck_assert_str_eq(r.message, "no job 42");
    ah_reply_free(&r);
    ck_assert_ptr_null(r.message);
    ck_assert_ptr_null(r.body);
    ah_reply_free(NULL);
}
END_TEST

START_TEST(test_round_trip)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 2, 0, handler);

    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "hello", "world");
    ah_reply r;
    ck_assert_int_eq(ah_bus_request(b, 7, NULL, "echo", body, 0, &r), 0);
    ck_assert(r.ok);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r.body, "hello")), "world");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r.body, "topic")), "echo");
    ck_assert_int_eq((int)cJSON_GetNumberValue(cJSON_GetObjectItem(r.body, "lane")), 7);
    const char *cid = cJSON_GetStringValue(cJSON_GetObjectItem(r.body, "correlation_id"));
    ck_assert_ptr_nonnull(cid);
    ck_assert_int_gt((int)strlen(cid), 0);
    ah_reply_free(&r);

    /* NULL body reaches the handler as {} */
    ck_assert_int_eq(ah_bus_request(b, 7, NULL, "echo", NULL, 0, &r), 0);
    ck_assert(cJSON_IsObject(r.body));
    ck_assert_int_eq(cJSON_GetArraySize(r.body), 3);
    ah_reply_free(&r);

    /* errors pass through */
    ck_assert_int_eq(ah_bus_request(b, 7, NULL, "nope", NULL, 0, &r), -1);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.code, "unknown_topic");
    ck_assert_int_eq(r.http_status, 404);
    ah_reply_free(&r);

    /* a handler that fills nothing still yields exactly one reply */
    ck_assert_int_eq(ah_bus_request(b, 7, NULL, "silent", NULL, 0, &r), -1);
    ck_assert_str_eq(r.code, "internal_error");
    ah_reply_free(&r);

    /* a topic longer than the inline buffer */
    char longt[200];
    memset(longt, 'x', sizeof longt - 1);
    longt[sizeof longt - 1] = '\0';
    ck_assert_int_eq(ah_bus_request(b, 1, NULL, longt, NULL, 0, &r), -1);
    ck_assert_str_eq(r.code, "unknown_topic");
    ck_assert_ptr_nonnull(strstr(r.message, longt));
    ah_reply_free(&r);

    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(test_correlation_ids_unique)
{
    enum { N = 3000 };
    fx f;
    fx_init(&f);
    f.corr = calloc(N, sizeof *f.corr);
    ck_assert_ptr_nonnull(f.corr);
    ah_bus *b = bus_make(&f, 4, 0, handler);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(ah_bus_request_async(b, (uint64_t)(i % 13), NULL, "corr",
                                              NULL, count_reply, &f), 0);
    ah_bus_drain(b);
    ck_assert_int_eq(f.ncorr, N);
    ck_assert_int_eq(f.replies, N);
    for (int i = 0; i < N; i++)
        ck_assert_int_gt((int)strlen(f.corr[i]), 0);
    qsort(f.corr, N, sizeof *f.corr, cmp_str);
    for (int i = 1; i < N; i++)
        ck_assert_str_ne(f.corr[i - 1], f.corr[i]);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

START_TEST(test_lane_ordering)
{
    enum { LANES = 8, PER = 2000 };
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 4, 0, handler);
    /* interleave lanes so that every lane is queued and re-queued often */
    for (long i = 0; i < PER; i++)
        for (uint64_t l = 0; l < LANES; l++)
            ck_assert_int_eq(ah_bus_request_async(b, l, (void *)(uintptr_t)i, "seq",
                                                  NULL, count_reply, &f), 0);
    ah_bus_drain(b);
    ck_assert_int_eq(ah_bus_depth(b), 0);
    ck_assert_int_eq(f.out_of_order, 0);
    for (int l = 0; l < LANES; l++)
        ck_assert_int_eq(f.seen[l], PER);
    ck_assert_int_eq(f.replies, LANES * PER);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

/* Several threads sending on the same lanes at once: each one's messages
 * on a lane are handled in the order it sent them, whether they went
 * through the intake (every worker busy) or were placed by the sender
 * under the lock (a worker asleep: the senders pause now and then so that
 * both happen), with tenants at their share. */
enum { MS_SENDERS = 4, MS_LANES = 4, MS_PER = 2000 };

typedef struct ms_sender {
    fx *f;
    int id;
    int refused;
} ms_sender;

static void *ms_send(void *arg)
{
    ms_sender *s = arg;
    for (long i = 0; i < MS_PER; i++) {
        for (uint64_t l = 0; l < MS_LANES; l++) {
            uintptr_t target = (uintptr_t)s->id << 24 | (uintptr_t)i;
            if (ah_bus_request_async_tenant(s->f->bus, 1 + l % 2, l, (void *)target, "seq_of",
                                            NULL, count_reply, s->f) != 0)
                s->refused++;
        }
        if (i % 250 == 249)
            sleep_ms(2); /* the workers catch up and sleep */
    }
    return NULL;
}

START_TEST(test_lane_ordering_many_senders)
{
    fx f;
    fx_init(&f);
    bus_make_capped(&f, 2, 1u << 20);
    pthread_t th[MS_SENDERS];
    ms_sender s[MS_SENDERS];
    for (int i = 0; i < MS_SENDERS; i++) {
        s[i] = (ms_sender){.f = &f, .id = i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, ms_send, &s[i]), 0);
    }
    for (int i = 0; i < MS_SENDERS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(s[i].refused, 0);
    }
    ah_bus_drain(f.bus);
    ck_assert_int_eq(ah_bus_depth(f.bus), 0);
    ck_assert_int_eq(f.out_of_order, 0);
    ck_assert_int_eq(f.failed, 0);
    ck_assert_int_eq(f.replies, (long)MS_SENDERS * MS_LANES * MS_PER);
    for (int l = 0; l < MS_LANES; l++)
        for (int i = 0; i < MS_SENDERS; i++)
            ck_assert_int_eq(f.next_of[l][i], MS_PER);
    ah_bus_free(f.bus);
    fx_destroy(&f);
}
END_TEST

START_TEST(test_lanes_run_in_parallel)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 2, 0, handler);
    /* lane 1 blocks until lane 2 sets the flag: only possible when the two
     * lanes run at the same time */
    ck_assert_int_eq(ah_bus_request_async(b, 1, NULL, "wait_flag", NULL, count_reply, &f), 0);
    ah_reply r;
    ck_assert_int_eq(ah_bus_request(b, 2, NULL, "set_flag", NULL, 0, &r), 0);
    ah_reply_free(&r);
    ah_bus_drain(b);
    ck_assert(f.flag_seen);
    ck_assert_int_eq(f.replies, 1);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

START_TEST(test_same_lane_serialized)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 4, 0, handler);
    /* lane 1 holds the gate; lane 1's next message must wait for it even
     * though three workers are idle, while lane 2 is served */
    ck_assert_int_eq(ah_bus_request_async(b, 1, NULL, "gate", NULL, count_reply, &f), 0);
    pthread_mutex_lock(&f.mu);
    ck_assert(wait_flag(&f, &f.blocked_started));
    pthread_mutex_unlock(&f.mu);
    ck_assert_int_eq(ah_bus_request_async(b, 1, NULL, "count", NULL, count_reply, &f), 0);
    ah_reply r;
    ck_assert_int_eq(ah_bus_request(b, 2, NULL, "count", NULL, 0, &r), 0);
    ah_reply_free(&r);
    pthread_mutex_lock(&f.mu);
    ck_assert_int_eq(f.handled, 1); /* lane 2 only */
    f.gate_open = true;
    pthread_cond_broadcast(&f.cv);
    pthread_mutex_unlock(&f.mu);
    ah_bus_drain(b);
    ck_assert_int_eq(f.handled, 2);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

START_TEST(test_timeout)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 2, 0, handler);
    ah_reply r;
    ck_assert_int_eq(ah_bus_request(b, 3, NULL, "slow", NULL, 100, &r), -1);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.code, "timeout");
    ck_assert_int_eq(r.http_status, 504);
    ah_reply_free(&r);
    /* the late reply is dropped by the worker (ASan/LSan check the rest) */
    ah_bus_drain(b);
    ck_assert_int_eq(f.late_replies, 1);

    /* the bus still works afterwards, and a timeout freed on bus free */
    ck_assert_int_eq(ah_bus_request(b, 3, NULL, "echo", NULL, 0, &r), 0);
    ah_reply_free(&r);
    ck_assert_int_eq(ah_bus_request(b, 4, NULL, "slow", NULL, 50, &r), -1);
    ck_assert_str_eq(r.code, "timeout");
    ah_reply_free(&r);
    ah_bus_free(b); /* drains the slow handler, whose reply nobody awaits */
    ck_assert_int_eq(f.late_replies, 2);
    fx_destroy(&f);
}
END_TEST

/* A caller that gives up before a worker took its request (exactly once):
 * the request never runs, and the caller's answer says it was not sent
 * (503 overloaded), unlike one whose handler had started (504 timeout,
 * test_timeout). Synchronous callers, and asynchronous ones with a gate. */
START_TEST(test_timeout_before_start_never_runs)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 1, 0, handler);
    ck_assert_int_eq(ah_bus_request_async(b, 1, NULL, "gate", NULL, count_reply, &f), 0);
    pthread_mutex_lock(&f.mu);
    ck_assert(wait_flag(&f, &f.blocked_started));
    pthread_mutex_unlock(&f.mu);
    /* Queued on the gate's lane: its deadline passes while it waits. */
    ah_reply r;
    ck_assert_int_eq(ah_bus_request(b, 1, NULL, "count", NULL, 20, &r), -1);
    ck_assert_str_eq(r.code, "overloaded");
    ck_assert_int_eq(r.http_status, 503);
    ck_assert_ptr_nonnull(strstr(r.message, "not sent"));
    ah_reply_free(&r);
    /* Gated: abandoned while queued. */
    ah_bus_gate g = {0};
    ck_assert_int_eq(ah_bus_request_async_gated(b, AH_BUS_NO_TENANT, 1, NULL, "count", NULL,
                                                count_reply, &f, &g), 0);
    ck_assert(ah_bus_gate_abandon(&g));
    ck_assert(!ah_bus_gate_abandon(&g)); /* once */
    pthread_mutex_lock(&f.mu);
    f.gate_open = true;
    pthread_cond_broadcast(&f.cv);
    pthread_mutex_unlock(&f.mu);
    ah_bus_drain(b);
    ck_assert_int_eq(f.handled, 0);
    ck_assert_int_eq(f.replies, 2); /* the gate's, and the abandoned one's callback */
    ck_assert_str_eq(f.last_code, "overloaded");
    /* A gate whose request started cannot be abandoned. */
    ah_bus_gate g2 = {0};
    ck_assert_int_eq(ah_bus_request_async_gated(b, AH_BUS_NO_TENANT, 1, NULL, "count", NULL,
                                                count_reply, &f, &g2), 0);
    ah_bus_drain(b);
    ck_assert(!ah_bus_gate_abandon(&g2));
    ck_assert_int_eq(f.handled, 1);
    ck_assert_str_eq(f.last_code, "ok");
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

/* Event subscribers: index in arg. */
typedef struct ev_sub {
    fx *f;
    int idx;
} ev_sub;

static void on_event(void *arg, uint64_t lane, const char *topic, const cJSON *body)
{
    ev_sub *s = arg;
    fx *f = s->f;
    pthread_mutex_lock(&f->mu);
    f->ev_count[s->idx]++;
    if (f->ev_n < 64) {
        const cJSON *id = cJSON_GetObjectItem(body, "id");
        snprintf(f->ev_log[f->ev_n++], sizeof f->ev_log[0], "%d:%s:%s:%llu", s->idx,
                 topic, cJSON_IsString(id) ? id->valuestring : "-",
                 (unsigned long long)lane);
    }
    pthread_mutex_unlock(&f->mu);
}

static cJSON *id_body(const char *id)
{
    cJSON *o = cJSON_CreateObject();
    ck_assert_ptr_nonnull(o);
    ck_assert_ptr_nonnull(cJSON_AddStringToObject(o, "id", id));
    return o;
}

START_TEST(test_event_fanout)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 3, 0, handler);
    ev_sub s[4] = {{&f, 0}, {&f, 1}, {&f, 2}, {&f, 3}};
    ck_assert_int_eq(ah_bus_subscribe(b, "event.application.stage_changed", on_event, &s[0]), 0);
    ck_assert_int_eq(ah_bus_subscribe(b, "event.application.*", on_event, &s[1]), 0);
    ck_assert_int_eq(ah_bus_subscribe(b, "*", on_event, &s[2]), 0);
    ck_assert_int_eq(ah_bus_subscribe(b, "event.*", on_event, &s[3]), 0);
    ck_assert_int_eq(ah_bus_subscribe(b, NULL, on_event, &s[3]), -1);

    ck_assert_int_eq(ah_bus_publish(b, 1, "event.application.stage_changed", id_body("a")), 0);
    ck_assert_int_eq(ah_bus_publish(b, 1, "event.application.created", id_body("b")), 0);
    ck_assert_int_eq(ah_bus_publish(b, 1, "event.applications", id_body("c")), 0);
    ck_assert_int_eq(ah_bus_publish(b, 1, "event.candidate.created", NULL), 0);
    ck_assert_int_eq(ah_bus_publish(b, 1, "other", id_body("e")), 0);
    ah_bus_drain(b);

    ck_assert_int_eq(f.ev_count[0], 1);
    ck_assert_int_eq(f.ev_count[1], 2);
    ck_assert_int_eq(f.ev_count[2], 5);
    ck_assert_int_eq(f.ev_count[3], 4);
    /* one lane: events in publish order, subscribers in subscription order */
    static const char *const want[] = {
        "0:event.application.stage_changed:a:1",
        "1:event.application.stage_changed:a:1",
        "2:event.application.stage_changed:a:1",
        "3:event.application.stage_changed:a:1",
        "1:event.application.created:b:1",
        "2:event.application.created:b:1",
        "3:event.application.created:b:1",
        "2:event.applications:c:1",
        "3:event.applications:c:1",
        "2:event.candidate.created:-:1",
        "3:event.candidate.created:-:1",
        "2:other:e:1",
    };
    ck_assert_int_eq(f.ev_n, (int)(sizeof want / sizeof want[0]));
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_str_eq(f.ev_log[i], want[i]);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

START_TEST(test_events_and_requests_share_lane)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 4, 0, handler);
    ev_sub s = {&f, 0};
    ck_assert_int_eq(ah_bus_subscribe(b, "event.*", on_event, &s), 0);
    char id[16];
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "%d", i);
        if (i % 2 == 0)
            ck_assert_int_eq(ah_bus_publish(b, 9, "event.x", id_body(id)), 0);
        else
            ck_assert_int_eq(ah_bus_request_async(b, 9, NULL, "log", id_body(id),
                                                  count_reply, &f), 0);
    }
    ah_bus_drain(b);
    ck_assert_int_eq(f.ev_n, 20);
    for (int i = 0; i < 20; i++) {
        char want[48];
        if (i % 2 == 0)
            snprintf(want, sizeof want, "0:event.x:%d:9", i);
        else
            snprintf(want, sizeof want, "req:%d", i);
        ck_assert_str_eq(f.ev_log[i], want);
    }
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

/* Work handed to the bus (ah_bus_run_tenant): runs on a worker, in order
 * per lane, and within its tenant's share like requests. */
typedef struct run_item {
    fx *f;
    int i;
    int tenant;    /* > 0: block until the gate opens, counted in running[] */
    int *log;      /* the order items ran in */
    int *nlog;
    pthread_t self; /* the sender's thread */
    bool *other_thread;
} run_item;

static void run_fn(void *arg)
{
    run_item *it = arg;
    fx *f = it->f;
    pthread_mutex_lock(&f->mu);
    if (it->log != NULL) {
        it->log[(*it->nlog)++] = it->i;
        if (pthread_equal(pthread_self(), it->self))
            *it->other_thread = false;
    }
    if (it->tenant > 0) {
        int t = it->tenant;
        if (++f->running[t] > f->most[t])
            f->most[t] = f->running[t];
        pthread_cond_broadcast(&f->cv);
        while (!f->gate_open)
            pthread_cond_wait(&f->cv, &f->mu);
        f->running[t]--;
    }
    pthread_mutex_unlock(&f->mu);
    free(it);
}

START_TEST(test_overload)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 1, 4, handler);
    ck_assert_int_eq(ah_bus_request_async(b, 1, NULL, "gate", NULL, count_reply, &f), 0);
    pthread_mutex_lock(&f.mu);
    ck_assert(wait_flag(&f, &f.blocked_started));
    pthread_mutex_unlock(&f.mu);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ah_bus_request_async(b, 2, NULL, "count", NULL, count_reply, &f), 0);
    ck_assert_int_eq(ah_bus_depth(b), 4);

    /* the refusal runs the callback on this thread */
    ck_assert_int_eq(ah_bus_request_async(b, 2, NULL, "count", cJSON_CreateObject(),
                                          count_reply, &f), -1);
    pthread_mutex_lock(&f.mu);
    ck_assert_int_eq(f.replies, 1);
    ck_assert_str_eq(f.last_code, "overloaded");
    ck_assert(pthread_equal(f.cb_thread, pthread_self()));
    pthread_mutex_unlock(&f.mu);

    ck_assert_int_eq(ah_bus_publish(b, 2, "event.x", cJSON_CreateObject()), -1);
    ah_reply r;
    ck_assert_int_eq(ah_bus_request(b, 2, NULL, "count", NULL, 0, &r), -1);
    ck_assert_str_eq(r.code, "overloaded");
    ck_assert_int_eq(r.http_status, 503);
    ah_reply_free(&r);
    /* Work handed over for what was admitted already (a request's last
     * step) is queued all the same, and runs on a worker; other work is
     * refused. */
    static int log[2];
    int nlog = 0;
    bool other = true;
    run_item *it = calloc(1, sizeof *it);
    ck_assert_ptr_nonnull(it);
    *it = (run_item){&f, 1, 0, log, &nlog, pthread_self(), &other};
    ck_assert_int_eq(ah_bus_run_tenant(b, 2, 9, "work", run_fn, it), -1);
    ck_assert_int_eq(ah_bus_run_admitted(b, 2, 9, "work", run_fn, it), 0);
    ck_assert_int_eq(ah_bus_depth(b), 5);

    pthread_mutex_lock(&f.mu);
    f.gate_open = true;
    pthread_cond_broadcast(&f.cv);
    pthread_mutex_unlock(&f.mu);
    ah_bus_drain(b);
    ck_assert_int_eq(f.handled, 3);
    ck_assert_int_eq(f.replies, 5);
    ck_assert_int_eq(nlog, 1);
    ck_assert(other);
    /* room again */
    ck_assert_int_eq(ah_bus_request(b, 2, NULL, "count", NULL, 0, &r), 0);
    ah_reply_free(&r);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

static void *free_thread(void *arg)
{
    ah_bus_free(arg);
    return NULL;
}

START_TEST(test_free_drains_queue)
{
    enum { N = 200 };
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 1, 0, handler);
    ck_assert_int_eq(ah_bus_request_async(b, 1, NULL, "gate", NULL, count_reply, &f), 0);
    pthread_mutex_lock(&f.mu);
    ck_assert(wait_flag(&f, &f.blocked_started));
    pthread_mutex_unlock(&f.mu);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(ah_bus_request_async(b, (uint64_t)(i % 5), NULL, "count",
                                              NULL, count_reply, &f), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(ah_bus_publish(b, 7, "event.x", NULL), 0);

    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_thread, b), 0);
    /* The gate holds the only worker, so the bus cannot be gone yet: probe
     * until ah_bus_free has stopped accepting. */
    long accepted = 0;
    for (;;) {
        ah_reply r;
        int rc = ah_bus_request(b, 3, NULL, "count", NULL, 1, &r);
        bool stopped = !r.ok && strcmp(r.code, "shutting_down") == 0;
        if (rc != 0 && !stopped)
            ck_assert_str_eq(r.code, "overloaded"); /* queued behind the gate: never run */
        ah_reply_free(&r);
        if (stopped)
            break;
        accepted++;
    }
    ck_assert_int_eq(ah_bus_publish(b, 7, "event.x", NULL), -1);
    long before = f.replies;
    ck_assert_int_eq(ah_bus_request_async(b, 3, NULL, "count", NULL, count_reply, &f), -1);
    ck_assert_str_eq(f.last_code, "shutting_down");
    ck_assert_int_eq(f.replies, before + 1);

    pthread_mutex_lock(&f.mu);
    f.gate_open = true;
    pthread_cond_broadcast(&f.cv);
    pthread_mutex_unlock(&f.mu);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    /* The probes' callers gave up before a worker took them: skipped. */
    ck_assert_int_eq(f.handled, N);
    ck_assert_int_eq(f.replies, 1 + N + 1);
    fx_destroy(&f);
}
END_TEST

START_TEST(test_drain)
{
    enum { N = 500 };
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 3, 0, handler);
    ah_bus_drain(b); /* empty bus: returns at once */
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(ah_bus_request_async(b, (uint64_t)i, NULL, "count", NULL,
                                              count_reply, &f), 0);
    ah_bus_drain(b);
    ck_assert_int_eq(f.handled, N);
    ck_assert_int_eq(f.replies, N);
    ck_assert_int_eq(ah_bus_depth(b), 0);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

START_TEST(test_many_lanes)
{
    enum { N = 50000 };
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 2, 0, handler);
    /* every message on its own lane: lanes are created, grown and recycled */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++)
            ck_assert_int_eq(ah_bus_request_async(b, (uint64_t)i * 7919u + (uint64_t)round,
                                                  NULL, "count", NULL, NULL, NULL), 0);
        ah_bus_drain(b);
    }
    ck_assert_int_eq(f.handled, 2 * N);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

START_TEST(test_bad_args)
{
    ah_bus_opts o = {.workers = 0};
    ck_assert_ptr_null(ah_bus_new(&o));
    ck_assert_ptr_null(ah_bus_new(NULL));
    ah_bus_free(NULL);

    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 1, 0, NULL);
    ah_reply r;
    /* no handler: requests still get one reply */
    ck_assert_int_eq(ah_bus_request(b, 1, NULL, "x", NULL, 0, &r), -1);
    ck_assert_str_eq(r.code, "unsupported_capability");
    ah_reply_free(&r);
    ck_assert_int_eq(ah_bus_request(b, 1, NULL, NULL, cJSON_CreateObject(), 0, &r), -1);
    ck_assert_str_eq(r.code, "invalid_request");
    ah_reply_free(&r);
    ck_assert_int_eq(ah_bus_publish(b, 1, NULL, cJSON_CreateObject()), -1);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST


/* Waits under f->mu until tenant t runs n tarpit handlers (10 s at most, so
 * that a broken bus fails rather than hangs). */
static bool wait_running(fx *f, int t, int n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    while (f->running[t] < n)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) != 0)
            break;
    return f->running[t] >= n;
}

/* Tenant t runs n held handlers; tenant 2 is answered meanwhile (a
 * synchronous request: it would time out with every worker taken) and t
 * still runs n; then the gate opens and the bus drains. */
static void served_beside_held(fx *f, ah_bus *b, int t, int n)
{
    pthread_mutex_lock(&f->mu);
    ck_assert(wait_running(f, t, n));
    pthread_mutex_unlock(&f->mu);
    ah_reply r;
    ck_assert_int_eq(ah_bus_request_tenant(b, 2, 100, NULL, "echo", NULL, 0, &r), 0);
    ck_assert(r.ok);
    ah_reply_free(&r);
    pthread_mutex_lock(&f->mu);
    ck_assert_int_eq(f->running[t], n);
    f->gate_open = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    ah_bus_drain(b);
}

/* One tenant with many blocked lanes holds `share` workers, no more: the
 * other tenants' lanes run meanwhile, and the held-back lanes run once the
 * first ones finish. */
static void check_share(int workers, int share_opt, int share)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_open(&f, (ah_bus_opts){.workers = workers, .handler = handler,
                                           .tenant_share = share_opt});
    /* Tenant 1: six lanes, each with a call that blocks, and a second one
     * behind it on the same lane. */
    for (uint64_t lane = 1; lane <= 6; lane++)
        for (int k = 0; k < 2; k++)
            ck_assert_int_eq(ah_bus_request_async_tenant(b, 1, lane, NULL, "tarpit", NULL,
                                                         count_reply, &f), 0);
    pthread_mutex_lock(&f.mu);
    ck_assert(wait_running(&f, 1, share));
    pthread_mutex_unlock(&f.mu);

    /* Tenant 2 is served while tenant 1 is stuck: a synchronous request
     * (it would time out if every worker were taken) and blocked calls of
     * its own, up to its share as well. */
    ah_reply r;
    ck_assert_int_eq(ah_bus_request_tenant(b, 2, 100, NULL, "echo", NULL, 0, &r), 0);
    ck_assert(r.ok);
    ah_reply_free(&r);
    int share2 = workers - share < share ? workers - share : share;
    for (uint64_t lane = 101; lane <= 104; lane++)
        ck_assert_int_eq(ah_bus_request_async_tenant(b, 2, lane, NULL, "tarpit", NULL,
                                                     count_reply, &f), 0);
    pthread_mutex_lock(&f.mu);
    ck_assert(wait_running(&f, 2, share2));
    /* Tenant 1 still holds exactly its share. */
    ck_assert_int_eq(f.running[1], share);
    f.gate_open = true;
    pthread_cond_broadcast(&f.cv);
    pthread_mutex_unlock(&f.mu);
    ah_bus_drain(b);
    ck_assert_int_eq(f.replies, 12 + 4);
    ck_assert_str_eq(f.last_code, "ok");
    ck_assert_int_eq(f.most[1], share);
    ck_assert_int_le(f.most[2], share);
    ah_bus_free(b);
    fx_destroy(&f);
}

/* A tenant whose requests wait (its provider hangs) fills its own share of
 * the queue, not the bus: past max_queue_tenant its requests are refused
 * "overloaded" (503), other tenants' are served, and once its requests are
 * answered it is served again. */
START_TEST(test_tenant_queue_cap)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make_capped(&f, 2, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(ah_bus_request_async_tenant(b, 1, 1 + (uint64_t)(i % 2), NULL, "tarpit",
                                                     NULL, count_reply, &f), 0);
    pthread_mutex_lock(&f.mu);
    ck_assert(wait_running(&f, 1, 1));
    pthread_mutex_unlock(&f.mu);
    /* The fifth, on a lane of its own: refused, at once on this thread
     * when the other worker sleeps, or by it when it takes the request in
     * (test_tenant_queue_cap_deferred). */
    int rc = ah_bus_request_async_tenant(b, 1, 3, NULL, "count", NULL, count_reply, &f);
    ck_assert(rc == 0 || rc == -1);
    pthread_mutex_lock(&f.mu);
    for (int i = 0; i < 10000 && f.replies < 1; i++) {
        pthread_mutex_unlock(&f.mu);
        sleep_ms(1);
        pthread_mutex_lock(&f.mu);
    }
    ck_assert_int_eq(f.replies, 1);
    ck_assert_str_eq(f.last_code, "overloaded");
    ck_assert(pthread_equal(f.cb_thread, pthread_self()) == (rc == -1));
    pthread_mutex_unlock(&f.mu);
    ah_reply r;
    ck_assert_int_eq(ah_bus_request_tenant(b, 1, 3, NULL, "count", NULL, 0, &r), -1);
    ck_assert_str_eq(r.code, "overloaded");
    ck_assert_int_eq(r.http_status, 503);
    ck_assert_ptr_nonnull(strstr(r.message, "tenant"));
    ah_reply_free(&r);
    /* Another tenant is served meanwhile; events and runs are not counted. */
    ck_assert_int_eq(ah_bus_request_tenant(b, 2, 100, NULL, "echo", NULL, 0, &r), 0);
    ah_reply_free(&r);
    pthread_mutex_lock(&f.mu);
    f.gate_open = true;
    pthread_cond_broadcast(&f.cv);
    pthread_mutex_unlock(&f.mu);
    ah_bus_drain(b);
    ck_assert_int_eq(f.replies, 1 + 4);
    /* Answered: room again. */
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(ah_bus_request_tenant(b, 1, 3, NULL, "count", NULL, 0, &r), 0);
        ah_reply_free(&r);
    }
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

/* Senders do not take the bus's lock while every worker is busy: a
 * tenant's request past max_queue_tenant is then accepted by the send and
 * refused by the worker that takes it in (its callback runs there, with
 * the same 503), in order behind the requests sent before it; a
 * synchronous request is refused the same way and returns -1. */
START_TEST(test_tenant_queue_cap_deferred)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make_capped(&f, 1, 2);
    ck_assert_int_eq(ah_bus_request_async(b, 1, NULL, "gate", NULL, count_reply, &f), 0);
    pthread_mutex_lock(&f.mu);
    ck_assert(wait_flag(&f, &f.blocked_started));
    pthread_mutex_unlock(&f.mu);
    /* The only worker is in "gate": nobody sleeps, these wait unsorted. */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ah_bus_request_async_tenant(b, 5, 10 + (uint64_t)i, NULL, "count", NULL,
                                                     count_reply, &f),
                         0);
    ck_assert_int_eq(ah_bus_depth(b), 4);
    pthread_mutex_lock(&f.mu);
    ck_assert_int_eq(f.replies, 0);
    f.gate_open = true;
    pthread_cond_broadcast(&f.cv);
    pthread_mutex_unlock(&f.mu);
    ah_bus_drain(b);
    pthread_mutex_lock(&f.mu);
    ck_assert_int_eq(f.handled, 2);
    ck_assert_int_eq(f.replies, 1 + 3);
    ck_assert(!pthread_equal(f.cb_thread, pthread_self()));
    pthread_mutex_unlock(&f.mu);
    ck_assert_int_eq(ah_bus_depth(b), 0);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

START_TEST(test_tenant_share_default)
{
    check_share(4, 0, 2); /* max(1, workers / 2) */
}
END_TEST

START_TEST(test_tenant_share_configured)
{
    check_share(4, 1, 1);
    check_share(5, 3, 3);
}
END_TEST

/* Two workers: tenant 1 holds one, the other serves tenant 2. */
START_TEST(test_tenant_share_two_workers)
{
    check_share(2, 0, 1);
}
END_TEST


/* Runnable tenants take turns: a tenant that queued many lanes first does
 * not make a later tenant wait for all of them. */
START_TEST(test_tenants_take_turns)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 1, 0, handler);
    /* The one worker is busy while both tenants queue. */
    ck_assert_int_eq(ah_bus_request_async_tenant(b, 3, 50, NULL, "gate", NULL, count_reply, &f),
                     0);
    pthread_mutex_lock(&f.mu);
    ck_assert(wait_flag(&f, &f.blocked_started));
    pthread_mutex_unlock(&f.mu);
    for (uint64_t lane = 1; lane <= 6; lane++)
        ck_assert_int_eq(ah_bus_request_async_tenant(b, 1, lane, NULL, "order", NULL,
                                                     count_reply, &f), 0);
    ck_assert_int_eq(ah_bus_request_async_tenant(b, 2, 20, NULL, "order", NULL, count_reply, &f),
                     0);
    pthread_mutex_lock(&f.mu);
    f.gate_open = true;
    pthread_cond_broadcast(&f.cv);
    pthread_mutex_unlock(&f.mu);
    ah_bus_drain(b);
    ck_assert_int_eq(f.norder, 7);
    int at = -1;
    for (int i = 0; i < f.norder; i++)
        if (f.order[i] == 2)
            at = i;
    ck_assert_int_le(at, 1); /* after at most one of tenant 1's */
    ck_assert_int_ge(at, 0);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

START_TEST(test_run_tenant)
{
    enum { N = 1000 };
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 4, 0, handler);
    static int log[N];
    int nlog = 0;
    bool other = true;
    for (int i = 0; i < N; i++) {
        run_item *it = calloc(1, sizeof *it);
        ck_assert_ptr_nonnull(it);
        *it = (run_item){&f, i, 0, log, &nlog, pthread_self(), &other};
        ck_assert_int_eq(ah_bus_run_tenant(b, 1, 7, "work", run_fn, it), 0);
    }
    ah_bus_drain(b);
    ck_assert_int_eq(nlog, N);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(log[i], i); /* in order on its lane */
    ck_assert(other);                /* never on the sender's thread */

    /* Tenant 1's blocked work holds its share (2 of 4), no more; tenant 2
     * is served meanwhile. */
    for (uint64_t lane = 1; lane <= 6; lane++) {
        run_item *it = calloc(1, sizeof *it);
        ck_assert_ptr_nonnull(it);
        *it = (run_item){.f = &f, .tenant = 1};
        ck_assert_int_eq(ah_bus_run_tenant(b, 1, lane, "work", run_fn, it), 0);
    }
    served_beside_held(&f, b, 1, 2);
    ck_assert_int_eq(f.most[1], 2);

    /* Refused without a bus or a function (nothing runs). */
    ck_assert_int_eq(ah_bus_run_tenant(NULL, 1, 1, "work", run_fn, NULL), -1);
    ck_assert_int_eq(ah_bus_run_tenant(b, 1, 1, "work", NULL, NULL), -1);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

/* Work that blocks for long and says so (block.h), as a provider call or
 * a retry's sleep does: it waits for the gate (10 s at most: a bus that
 * never lets the opener run fails the test, *timed_out), then logs its i. */
typedef struct block_item {
    fx *f;
    int i;
    int tenant;     /* counted in running[] while blocked */
    bool block;     /* wait for the gate; else open it */
    int *log;
    int *nlog;
    bool *timed_out;
} block_item;

static void block_fn(void *arg)
{
    block_item *it = arg;
    fx *f = it->f;
    if (it->block)
        ah_block_begin();
    pthread_mutex_lock(&f->mu);
    if (it->block) {
        int t = it->tenant;
        if (++f->running[t] > f->most[t])
            f->most[t] = f->running[t];
        pthread_cond_broadcast(&f->cv);
        if (!wait_flag(f, &f->gate_open) && it->timed_out != NULL)
            *it->timed_out = true;
        f->running[t]--;
    } else {
        f->gate_open = true;
        pthread_cond_broadcast(&f->cv);
    }
    if (it->log != NULL)
        it->log[(*it->nlog)++] = it->i;
    pthread_mutex_unlock(&f->mu);
    if (it->block)
        ah_block_end();
    free(it);
}

static void block_run(ah_bus *b, fx *f, int tenant, uint64_t lane, int i, bool block, int *log,
                      int *nlog, bool *timed_out)
{
    block_item *it = calloc(1, sizeof *it);
    ck_assert_ptr_nonnull(it);
    *it = (block_item){f, i, tenant, block, log, nlog, timed_out};
    ck_assert_int_eq(ah_bus_run_tenant(b, (uint64_t)tenant, lane, "work", block_fn, it), 0);
}

/* A handler blocked on a provider (block.h) gives its tenant's share back:
 * with two workers (a share of one), the same tenant's other lane runs
 * meanwhile (here, the one that lets it go on), and the blocked lane's
 * next message still waits for it (per-lane order). */
START_TEST(test_blocked_work_frees_share)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 2, 0, handler);
    int log[8], nlog = 0;
    bool timed_out = false;
    block_run(b, &f, 1, 1, 1, true, log, &nlog, &timed_out);
    pthread_mutex_lock(&f.mu);
    ck_assert(wait_running(&f, 1, 1));
    pthread_mutex_unlock(&f.mu);
    block_run(b, &f, 1, 1, 2, false, log, &nlog, NULL); /* behind it on its lane */
    block_run(b, &f, 1, 2, 3, false, log, &nlog, NULL); /* the opener, another lane */
    ah_bus_drain(b);
    ck_assert(!timed_out);
    ck_assert_int_eq(nlog, 3);
    ck_assert_int_eq(log[0], 3);
    ck_assert_int_eq(log[1], 1);
    ck_assert_int_eq(log[2], 2);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

/* Tenant 1 (a share of one of two workers) sends `lanes` lanes of blocked
 * work: `expect` of them run at once, tenant 2 is answered meanwhile, and
 * every one ends once the gate opens. */
static void check_blocked(uint64_t lanes, int expect)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 2, 0, handler);
    bool timed_out = false;
    for (uint64_t lane = 1; lane <= lanes; lane++)
        block_run(b, &f, 1, lane, (int)lane, true, NULL, NULL, &timed_out);
    served_beside_held(&f, b, 1, expect);
    ck_assert(!timed_out);
    ck_assert_int_eq(f.most[1], expect);
    ah_bus_free(b);
    fx_destroy(&f);
}

/* With every worker's handler blocked, a spare thread serves the rest: two
 * of tenant 1's lanes blocked on the two workers, tenant 2 is still
 * answered. */
START_TEST(test_blocked_work_starts_spares)
{
    check_blocked(2, 2);
}
END_TEST

/* A tenant's handlers in flight, blocked or not, are at most four shares:
 * of six blocked lanes of tenant 1, four run; the other two run when the
 * first ones end. Outside a bus worker, telling does nothing. */
START_TEST(test_blocked_work_capped)
{
    check_blocked(6, 4);
    ah_block_begin();
    ah_block_end();
}
END_TEST

/* Work that waits on a provider by name (ah_block_begin_on): admitted, it
 * waits for the gate; refused, it counts that and ends at once. */
typedef struct wait_on_item {
    fx *f;
    const char *on; /* NULL: an unnamed wait */
    int *admitted, *refused;
    bool *timed_out;
} wait_on_item;

static void wait_on_fn(void *arg)
{
    wait_on_item *it = arg;
    fx *f = it->f;
    bool ok = it->on != NULL ? ah_block_begin_on(it->on) : (ah_block_begin(), true);
    pthread_mutex_lock(&f->mu);
    if (ok) {
        (*it->admitted)++;
        pthread_cond_broadcast(&f->cv);
        if (!wait_flag(f, &f->gate_open))
            *it->timed_out = true;
    } else {
        (*it->refused)++;
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    if (ok)
        ah_block_end();
    free(it);
}

static void wait_on_run(ah_bus *b, fx *f, uint64_t tenant, const char *on, int *admitted,
                        int *refused, bool *timed_out)
{
    wait_on_item *it = malloc(sizeof *it);
    ck_assert_ptr_nonnull(it);
    *it = (wait_on_item){f, on, admitted, refused, timed_out};
    ck_assert_int_eq(ah_bus_run_tenant(b, tenant, tenant, "work", wait_on_fn, it), 0);
}

/* Handlers waiting on one provider are at most provider_threads: with two,
 * of four tenants' waits on "p" two are admitted and two refused (they do
 * not wait: ah_block_begin_on says false), while a wait on "q" and an
 * unnamed one are admitted beside them; once the two end, "p" admits
 * again. The refusals are counted. */
START_TEST(test_waits_per_provider_capped)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_open(&f, (ah_bus_opts){.workers = 2, .handler = handler,
                                           .provider_threads = 2});
    int p_in = 0, p_out = 0, q_in = 0, q_out = 0, u_in = 0, u_out = 0;
    bool timed_out = false;
    for (uint64_t t = 1; t <= 4; t++)
        wait_on_run(b, &f, t, "https://p.example:443", &p_in, &p_out, &timed_out);
    wait_on_run(b, &f, 5, "https://q.example:443", &q_in, &q_out, &timed_out);
    wait_on_run(b, &f, 6, NULL, &u_in, &u_out, &timed_out);
    pthread_mutex_lock(&f.mu);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    while (p_in + p_out < 4 || q_in + u_in < 2)
        if (pthread_cond_timedwait(&f.cv, &f.mu, &dl) != 0)
            break;
    ck_assert_int_eq(p_in, 2);
    ck_assert_int_eq(p_out, 2);
    ck_assert_int_eq(q_in, 1);
    ck_assert_int_eq(u_in, 1);
    ck_assert_int_eq(q_out + u_out, 0);
    f.gate_open = true;
    pthread_cond_broadcast(&f.cv);
    pthread_mutex_unlock(&f.mu);
    ah_bus_drain(b);
    ck_assert(!timed_out);
    ck_assert_uint_eq(ah_bus_waits_refused(b), 2);
    /* Ended: "p" admits again (its slot freed and taken anew). */
    f.gate_open = true;
    wait_on_run(b, &f, 7, "https://p.example:443", &p_in, &p_out, &timed_out);
    ah_bus_drain(b);
    ck_assert_int_eq(p_in, 3);
    ck_assert_int_eq(p_out, 2);
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

/* A handler's thread knows its caller's deadline (block.h), to give up a
 * wait that would only then start its work: a synchronous caller's own
 * timeout from when it sent, else the bus's default (10 s here); none on
 * a thread that is no worker. To the coarse clock's tick. */
START_TEST(test_handler_knows_caller_deadline)
{
    fx f;
    fx_init(&f);
    ah_bus *b = bus_make(&f, 2, 0, handler);
    ck_assert_int_eq(ah_block_deadline_ms(), 0);
    static const int timeouts[] = {3000, 0};
    for (int i = 0; i < 2; i++) {
        int64_t before = ah_mono_ms();
        ah_reply r;
        ck_assert_int_eq(ah_bus_request(b, 1, NULL, "deadline", NULL, timeouts[i], &r), 0);
        int64_t after = ah_mono_ms();
        int64_t dl = (int64_t)cJSON_GetObjectItem(r.body, "deadline")->valuedouble;
        int64_t want = timeouts[i] > 0 ? timeouts[i] : 10000;
        ck_assert_msg(dl >= before + want - 20 && dl <= after + want, "%d: %lld not in %lld..%lld",
                      i, (long long)dl, (long long)(before + want - 20), (long long)(after + want));
        ah_reply_free(&r);
    }
    ah_bus_free(b);
    fx_destroy(&f);
}
END_TEST

static Suite *bus_suite(void)
{
    Suite *s = suite_create("bus");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reply_helpers);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_correlation_ids_unique);
    tcase_add_test(tc, test_lane_ordering);
    tcase_add_test(tc, test_lane_ordering_many_senders);
    tcase_add_test(tc, test_lanes_run_in_parallel);
    tcase_add_test(tc, test_same_lane_serialized);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_timeout_before_start_never_runs);
    tcase_add_test(tc, test_event_fanout);
    tcase_add_test(tc, test_events_and_requests_share_lane);
    tcase_add_test(tc, test_overload);
    tcase_add_test(tc, test_free_drains_queue);
    tcase_add_test(tc, test_drain);
    tcase_add_test(tc, test_many_lanes);
    tcase_add_test(tc, test_bad_args);
    tcase_add_test(tc, test_tenant_queue_cap);
    tcase_add_test(tc, test_tenant_queue_cap_deferred);
    tcase_add_test(tc, test_tenant_share_default);
    tcase_add_test(tc, test_tenant_share_configured);
    tcase_add_test(tc, test_tenant_share_two_workers);
    tcase_add_test(tc, test_tenants_take_turns);
    tcase_add_test(tc, test_run_tenant);
    tcase_add_test(tc, test_blocked_work_frees_share);
    tcase_add_test(tc, test_blocked_work_starts_spares);
    tcase_add_test(tc, test_blocked_work_capped);
    tcase_add_test(tc, test_waits_per_provider_capped);
    tcase_add_test(tc, test_handler_knows_caller_deadline);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(bus_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
