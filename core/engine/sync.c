/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sync engine (see sync.h): per (connection, type) a loop of page
 * requests over the bus, each page committed with its cursor in one store
 * transaction before its events go out; and the scheduler thread.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "claims.h"
#include "clock.h"
#include "core.h"
#include "metrics.h"
#include "sync.h"
#include "settle.h"
#include "conns.h"
#include "events.h"
#include "isolate.h"
#include "recbuf.h"
#include "tracking.h"

typedef struct sync_type {
    const char *name;  /* "jobs": --type, cursor key */
    const char *topic; /* bus topic */
} sync_type;

static const sync_type k_types[] = {
    {"jobs", "jobs.stream"},
    {"applications", "applications.stream"},
    {"candidates", "candidates.stream"},
};
#define NTYPES (sizeof k_types / sizeof k_types[0])

typedef struct run_key {
    int64_t conn_id;
    size_t type;
} run_key;

/* A run of a connection's type holds the store lease "sync:<conn id>"
 * (store.h), so that several instances on one store never run two syncs of
 * one connection at once, of one type or two: claimed before the type's
 * run, renewed and checked (the fence) in the transaction of every page,
 * released after. A run whose lease expired
 * and was taken over cannot commit another page. */
#define AH_SYNC_LEASE_MS 300000

/* How far ahead of this host's clock a record's updated_at may be and
 * still move the sync window (s). */
#define AH_SYNC_FUTURE_S 86400

/* The run's lease lifetime: 5 minutes, or longer when [core]
 * request_timeout_ms and [outbound] backoff_max_ms allow a page's attempt
 * and the pause before it to take longer (renewed before each pause, the
 * lease must outlast both with room to spare). */
static int64_t sync_lease_ms(const ah_core *core)
{
    int64_t t = core->cfg.request_timeout_ms > 0 ? core->cfg.request_timeout_ms : 30000;
    int64_t b = core->cfg.http_backoff_max_ms > 0 ? core->cfg.http_backoff_max_ms : 10000;
    int64_t need = 2 * (t + b);
    return need > AH_SYNC_LEASE_MS ? need : AH_SYNC_LEASE_MS;
}

struct ah_sync {
    char here[160];       /* "host|pid namespace|boot id|": this machine, as lease owners name it */
    char owner[200];      /* this instance, as lease owner: here + "pid|random" */
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;  /* signalled on stop */
    bool stopping;
    bool thread_running;
    pthread_t thread;
    run_key *running;
    size_t nrunning, caprunning;
    /* The schedule leader (AH_SCHED_LEASE): scheduled passes run only on
     * the instance that holds it. Guarded by lock. */
    bool leader;
    /* When this instance's hold on the lease may have ended at the latest
     * (monotonic seconds; 0: no lease, a one-shot core): a renewal that
     * hangs (the store's lock, a cut link, a SIGSTOP) past it must not
     * leave the pass believing it still leads while another instance
     * took the lease over. */
    double leader_until;
    bool pass_running;
    bool pass_joinable; /* pass_thread is to be joined */
    pthread_t pass_thread;
    double next_pass; /* monotonic seconds of the next scheduled pass; 0: none */
    ah_sync_observer observer; /* scheduled runs' progress (set before the scheduler) */
    void *observer_arg;
};

/* ------------------------------------------------------------------------ */
/* Provider times                                                            */
/* ------------------------------------------------------------------------ */

typedef struct ptime {
    struct tm tm;   /* the fields as written (no zone applied) */
    char sep;       /* 'T' or ' ' */
    char frac[16];  /* ".123" as written, or "" */
    long frac_ns;
    char zone[8];   /* "Z", "+03:00", or "" */
    long off_s;     /* seconds east of UTC */
} ptime;

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool ptime_parse(const char *s, ptime *p)
{
    if (s == NULL)
        return false;
    memset(p, 0, sizeof *p);
    int y, mo, d, h, mi, se;
    if (strlen(s) < 19 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &se))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return false;
    p->sep = s[10];
    const char *q = s + 19;
    if (*q == '.') {
        size_t n = 1;
        while (q[n] >= '0' && q[n] <= '9')
            n++;
        if (n == 1 || n >= sizeof p->frac)
            return false;
        memcpy(p->frac, q, n);
        p->frac[n] = '\0';
        long ns = 0;
        for (size_t i = 1; i < 10; i++)
            ns = ns * 10 + (i < n ? q[i] - '0' : 0);
        p->frac_ns = ns;
        q += n;
    }
    if (*q == 'Z' && q[1] == '\0') {
        strcpy(p->zone, "Z");
    } else if ((*q == '+' || *q == '-') && strlen(q) == 6 && q[3] == ':') {
        int oh, om;
        if (!digits(q + 1, 2, &oh) || !digits(q + 4, 2, &om) || oh > 23 || om > 59)
            return false;
        p->off_s = (*q == '-' ? -1L : 1L) * (oh * 3600L + om * 60L);
        memcpy(p->zone, q, 7);
    } else if (*q != '\0') {
        return false;
    }
    p->tm.tm_year = y - 1900;
    p->tm.tm_mon = mo - 1;
    p->tm.tm_mday = d;
    p->tm.tm_hour = h;
    p->tm.tm_min = mi;
    p->tm.tm_sec = se;
    return true;
}

/* Days from 1970-01-01 to the civil date y-m-d (proleptic Gregorian; a
 * day past the month's end runs into the next, as timegm normalises it). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* A provider time as an instant: seconds since the epoch and nanoseconds.
 * Arithmetic instead of timegm, which cost a sync's engine thread 4% of its
 * instructions (called four times a record). */
typedef struct pinstant {
    int64_t sec;
    long ns;
} pinstant;

static bool pinstant_parse(const char *s, pinstant *out)
{
    ptime p;
    if (!ptime_parse(s, &p))
        return false;
    out->sec = days_from_civil((int64_t)p.tm.tm_year + 1900, p.tm.tm_mon + 1, p.tm.tm_mday) *
                   86400 +
               p.tm.tm_hour * 3600L + p.tm.tm_min * 60L + p.tm.tm_sec - p.off_s;
    out->ns = p.frac_ns;
    return true;
}

static int pinstant_cmp(const pinstant *a, const pinstant *b)
{
    if (a->sec != b->sec)
        return a->sec < b->sec ? -1 : 1;
    return a->ns < b->ns ? -1 : (a->ns > b->ns ? 1 : 0);
}

int ah_sync_time_cmp(const char *a, const char *b, int *cmp)
{
    pinstant pa, pb;
    if (!pinstant_parse(a, &pa) || !pinstant_parse(b, &pb))
        return -1;
    *cmp = pinstant_cmp(&pa, &pb);
    return 0;
}

int ah_sync_time_minus_hours(const char *t, unsigned hours, char *out, size_t outlen)
{
    ptime p;
    if (!ptime_parse(t, &p))
        return -1;
    /* Arithmetic on the fields as written: the result stays in the
     * provider's own zone (or lack of one). */
    time_t v = timegm(&p.tm) - (time_t)hours * 3600;
    struct tm r;
    if (gmtime_r(&v, &r) == NULL)
        return -1;
    /* Four-digit years only: strftime's %Y writes "242" for the year 242,
     * which shifted the separator into the hours (found by
     * tests/fuzz/fuzz_times). */
    long year = (long)r.tm_year + 1900;
    if (year < 0 || year > 9999)
        return -1;
    int n = snprintf(out, outlen, "%04ld-%02d-%02d%c%02d:%02d:%02d%s%s", year, r.tm_mon + 1,
                     r.tm_mday, p.sep, r.tm_hour, r.tm_min, r.tm_sec, p.frac, p.zone);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Engine state                                                              */
/* ------------------------------------------------------------------------ */

ah_sync *ah_sync_new(void)
{
    ah_sync *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    char host[64] = "host", ns[48] = "";
    unsigned char rnd[6] = {0};
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (*p == '|')
            *p = '_';
    ssize_t nl = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    ns[nl > 0 ? nl : 0] = '\0';
    /* The boot's id besides: the root pid namespace's inode is the same on
     * every Linux machine, and two machines may share a host name (cloned
     * VMs, "localhost"); a process of another machine is not ours to find
     * dead. */
    char boot[40] = "";
    FILE *bf = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (bf != NULL) {
        if (fgets(boot, sizeof boot, bf) == NULL)
            boot[0] = '\0';
        fclose(bf);
    }
    boot[strcspn(boot, "\n|")] = '\0';
    if (ah_random_bytes(rnd, sizeof rnd) != 0) {
        free(s);
        return NULL;
    }
    snprintf(s->here, sizeof s->here, "%s|%s|%s|", host, ns, boot);
    snprintf(s->owner, sizeof s->owner, "%s%ld|%02x%02x%02x%02x%02x%02x", s->here,
             (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return NULL;
    }
    if (ah_cond_init_mono(&s->cond) != 0) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
    }
    return s;
}

void ah_sync_free(ah_sync *s)
{
    if (s == NULL)
        return;
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s->running);
    free(s);
}

/* Whether lease owner `holder` is a process of this machine (same host
 * name and pid namespace) that no longer exists: a crashed run (an
 * `atshub sync` killed mid-run) whose lease need not be waited out. */
static bool holder_dead_here(const ah_sync *s, const char *holder)
{
    size_t hl = strlen(s->here);
    if (strncmp(holder, s->here, hl) != 0)
        return false;
    char *end = NULL;
    long pid = strtol(holder + hl, &end, 10);
    if (end == holder + hl || *end != '|' || pid <= 0 || pid == (long)getpid())
        return false;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

const char *ah_sync_owner(const ah_sync *s)
{
    return s != NULL ? s->owner : "";
}

bool ah_sync_type_valid(const char *type)
{
    for (size_t i = 0; type != NULL && i < NTYPES; i++)
        if (strcmp(k_types[i].name, type) == 0)
            return true;
    return false;
}

const char *ah_sync_code(int rc)
{
    switch (rc) {
    case AH_SYNC_OK: return "ok";
    case AH_SYNC_NOT_FOUND: return "not_found";
    case AH_SYNC_RUNNING: return "sync_running";
    case AH_SYNC_INVALID: return "invalid_request";
    case AH_SYNC_STOPPED: return "shutting_down";
    default: return "sync_failed";
    }
}

static bool claim(ah_sync *s, int64_t conn_id, size_t type)
{
    bool ok = true;
    pthread_mutex_lock(&s->lock);
    /* One run at a time per connection, whatever its type: two would
     * send one provider's connection two streams of requests at once. */
    for (size_t i = 0; i < s->nrunning; i++)
        if (s->running[i].conn_id == conn_id)
            ok = false;
    if (ok && s->nrunning == s->caprunning) {
        size_t nc = s->caprunning ? s->caprunning * 2 : 8;
        run_key *nr = realloc(s->running, nc * sizeof *nr);
        if (nr == NULL) {
            ok = false;
        } else {
            s->running = nr;
            s->caprunning = nc;
        }
    }
    if (ok)
        s->running[s->nrunning++] = (run_key){conn_id, type};
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static void unclaim(ah_sync *s, int64_t conn_id, size_t type)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nrunning; i++)
        if (s->running[i].conn_id == conn_id && s->running[i].type == type) {
            s->running[i] = s->running[--s->nrunning];
            break;
        }
    pthread_mutex_unlock(&s->lock);
}

static bool is_stopping(ah_sync *s)
{
    pthread_mutex_lock(&s->lock);
    bool v = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* Waits ms milliseconds unless the engine stops first; false when it did. */
static bool sleep_unless_stopped(ah_sync *s, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->stopping)
        if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT)
            break;
    bool stopped = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return !stopped;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */
/* One type                                                                  */
/* ------------------------------------------------------------------------ */

static bool retryable(const char *code)
{
    /* An isolated plugin's process that crashed restarts (isolate.h): the
     * page it was serving committed nothing and is asked again once it is
     * back; until then its calls are plugin_unavailable. */
    static const char *const codes[] = {AH_E_UNAVAILABLE,       AH_E_UPSTREAM,
                                        AH_E_TIMEOUT,           "overloaded",
                                        "connection_unavailable", AH_E_PLUGIN_CRASHED,
                                        AH_E_PLUGIN_UNAVAILABLE};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i]) == 0)
            return true;
    return false;
}

/* The cursor state of one (connection, type); strings malloc'd or NULL. */
typedef struct cursor {
    char *updated_after;
    char *page_cursor;
    char *run_max;
} cursor;

static void cursor_clear(cursor *c)
{
    free(c->updated_after);
    free(c->page_cursor);
    free(c->run_max);
    memset(c, 0, sizeof *c);
}

static char *dup_string_member(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

static int cursor_load(ah_core *core, int64_t cid, const char *key, cursor *out)
{
    memset(out, 0, sizeof *out);
    char *text = NULL;
    if (core->store->ops->cursor_get(core->store, cid, key, &text) != 0)
        return -1;
    if (text == NULL)
        return 0;
    cJSON *o = cJSON_Parse(text);
    if (!cJSON_IsObject(o)) {
        /* Not ours to guess at: start over, which duplicates nothing. */
        ah_log(&core->log, AH_LOG_WARN, "sync", "cursor %s of connection %lld is not JSON; "
               "syncing from the start", key, (long long)cid);
    } else {
        out->updated_after = dup_string_member(o, "updated_after");
        out->page_cursor = dup_string_member(o, "page_cursor");
        out->run_max = dup_string_member(o, "run_max");
        /* A time far ahead (saved by a build that let a record's
         * "never" sentinel move it) would skip every change for good:
         * dropped; without it the run reads the whole list. */
        pinstant t, ahead = {(int64_t)time(NULL) + AH_SYNC_FUTURE_S, 0};
        char **times[] = {&out->updated_after, &out->run_max};
        for (size_t i = 0; i < sizeof times / sizeof times[0]; i++)
            if (*times[i] != NULL && pinstant_parse(*times[i], &t) &&
                pinstant_cmp(&t, &ahead) > 0) {
                ah_log(&core->log, AH_LOG_WARN, "sync", "cursor %s of connection %lld: %s lies "
                       "more than a day ahead; dropped (the run reads from further back)",
                       key, (long long)cid, *times[i]);
                free(*times[i]);
                *times[i] = NULL;
                if (i == 0) {
                    /* A page cursor was made for that window's listing:
                     * on the whole list it may skip records. */
                    free(out->page_cursor);
                    out->page_cursor = NULL;
                }
            }
    }
    cJSON_Delete(o);
    free(text);
    return 0;
}

static void add_str_or_null(cJSON *o, const char *key, const char *v)
{
    if (v != NULL)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static char *cursor_text(const char *ua, const char *pc, const char *rmax)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    add_str_or_null(o, "updated_after", ua);
    add_str_or_null(o, "page_cursor", pc);
    add_str_or_null(o, "run_max", rmax);
    char *t = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return t;
}

typedef struct run_ctx {
    ah_core *core;
    ah_conn *conn;
    const sync_type *type;
    unsigned backfill_hours;
    ah_sync_progress cb;
    void *cb_arg;
    ah_sync_stats *st;
    char *err;
    size_t errlen;
    ah_seen *seen; /* a full run: the ids it was given (remote deletions) */
    /* A run that began with none of its type stored, of a type whose stage
     * history is kept: the remote ids it has committed (the only ones that
     * can be stored), so that the stage history looks up only those. */
    ah_run_ids *fresh;
    const char *lease; /* the run's store lease (NULL: the store has none) */
    int64_t token;     /* its fencing token */
} run_ctx;

static cJSON *page_body(const char *updated_after, const char *page_cursor)
{
    cJSON *body = cJSON_CreateObject();
    if (body == NULL ||
        (updated_after != NULL &&
         cJSON_AddStringToObject(body, "updated_after", updated_after) == NULL) ||
        (page_cursor != NULL && cJSON_AddStringToObject(body, "cursor", page_cursor) == NULL)) {
        cJSON_Delete(body);
        return NULL;
    }
    return body;
}

/* ------------------------------------------------------------------------ */
/* The next page, asked for while the current one commits                    */
/* ------------------------------------------------------------------------ */

/* One asynchronous page request. Shared by the engine's thread, which waits
 * for it (or gives up on it), and the bus worker's completion: whichever
 * lets go last frees it, reply included. */
/* A page's fields in the form the store keeps them (store.h,
 * fields_prepare), made on the bus worker that received the page, so that
 * the engine's thread, which writes, does not spend its time on them (a
 * fifth of its instructions on SQLite). for_recs: the page they are for. */
typedef struct page_kept {
    const void *for_recs;
    size_t n;
    ah_fields_kept *kept;
    void *mem;
} page_kept;

static void page_kept_free(page_kept *k)
{
    free(k->kept);
    free(k->mem);
    memset(k, 0, sizeof *k);
}

static void page_kept_make(ah_store *store, const ah_reply *r, page_kept *k)
{
    memset(k, 0, sizeof *k);
    const ah_recbuf *recs = r->ok && r->attachment_free == ah_recbuf_free_v ? r->attachment : NULL;
    size_t n = recs != NULL ? ah_recbuf_count(recs) : 0;
    if (n == 0 || store->ops->fields_prepare == NULL || store->ops->records_upsert_kept == NULL)
        return;
    ah_record_in *in = calloc(n, sizeof *in);
    k->kept = calloc(n, sizeof *k->kept);
    if (in != NULL && k->kept != NULL) {
        for (size_t i = 0; i < n; i++) {
            ah_recbuf_rec rec;
            ah_recbuf_get(recs, i, &rec);
            in[i] = (ah_record_in){rec.type, rec.remote_id, rec.updated_at, rec.raw, rec.fields};
        }
        k->mem = store->ops->fields_prepare(store, in, n, k->kept);
    }
    free(in);
    if (k->mem == NULL) {
        page_kept_free(k); /* the store makes them itself */
        return;
    }
    k->for_recs = recs;
    k->n = n;
}

typedef struct prefetch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    bool done;
    bool waiting; /* the engine's thread waits for it */
    ah_reply reply;
    ah_store *store;
    page_kept kept; /* for reply's page */
} prefetch;

static void prefetch_unref(prefetch *p)
{
    pthread_mutex_lock(&p->mu);
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (!last)
        return;
    if (p->done)
        ah_reply_free(&p->reply);
    page_kept_free(&p->kept);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static void prefetch_done(void *arg, ah_reply *r)
{
    prefetch *p = arg;
    /* Only while the engine's thread is busy (committing the page before):
     * when it already waits for this page, the deltas would lengthen the
     * wait by what they cost (the store then makes them on that thread,
     * which had nothing else to do). */
    pthread_mutex_lock(&p->mu);
    bool engine_idle = p->waiting;
    pthread_mutex_unlock(&p->mu);
    page_kept k = {0};
    if (!engine_idle)
        page_kept_make(p->store, r, &k);
    pthread_mutex_lock(&p->mu);
    p->kept = k;
    p->reply = *r; /* the reply is ours now */
    memset(r, 0, sizeof *r);
    p->done = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    prefetch_unref(p);
}

/* Sends the request for the page after `page_cursor`; NULL when it could
 * not be sent (the page is then asked for the ordinary way). */
static prefetch *prefetch_start(run_ctx *x, const char *updated_after, const char *page_cursor)
{
    prefetch *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    p->refs = 2;
    p->store = x->core->store;
    cJSON *body = page_body(updated_after, page_cursor);
    if (body == NULL) {
        p->refs = 1;
        prefetch_unref(p);
        return NULL;
    }
    /* On refusal the bus calls prefetch_done at once: the waiter then
     * finds that error reply, as it would a late one. */
    ah_bus_request_async_tenant(x->core->bus, (uint64_t)x->conn->tenant_id,
                                (uint64_t)x->conn->id, AH_RECORDS_AS_TEXT, x->type->topic, body,
                                prefetch_done, p);
    return p;
}

/* Waits for the prefetched page (at most the bus's request timeout) and
 * moves its reply into *r; a page that did not come in time is a
 * "timeout" error reply, as a synchronous request's would be. Frees p. */
static void prefetch_wait(run_ctx *x, prefetch *p, ah_reply *r, page_kept *kept)
{
    long ms = x->core->cfg.request_timeout_ms > 0 ? x->core->cfg.request_timeout_ms : 30000;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    p->waiting = true;
    while (!p->done)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT)
            break;
    if (p->done) {
        *r = p->reply;
        memset(&p->reply, 0, sizeof p->reply);
        if (kept != NULL) {
            *kept = p->kept;
            memset(&p->kept, 0, sizeof p->kept);
        }
    } else {
        ah_reply_error(r, AH_E_TIMEOUT, 504, "%s: no reply within %ld ms", x->type->topic, ms);
    }
    pthread_mutex_unlock(&p->mu);
    prefetch_unref(p);
}

/* Asks for one page, retrying retryable failures. `first` (may be NULL) is
 * the reply of a first attempt already made (a prefetch; consumed). 0 with
 * *r ok, or an AH_SYNC_* failure with err filled (r freed). */
static int request_page(run_ctx *x, const cursor *cur, ah_reply *first, ah_reply *r)
{
    ah_core *core = x->core;
    long backoff = core->cfg.http_backoff_ms > 0 ? core->cfg.http_backoff_ms : 200;
    long cap = core->cfg.http_backoff_max_ms > 0 ? core->cfg.http_backoff_max_ms : 10000;
    for (int attempt = 1;; attempt++) {
        if (is_stopping(core->sync)) {
            if (first != NULL)
                ah_reply_free(first);
            snprintf(x->err, x->errlen, "the host is stopping");
            return AH_SYNC_STOPPED;
        }
        if (first != NULL) {
            *r = *first;
            memset(first, 0, sizeof *first);
            first = NULL;
            if (r->ok)
                return 0;
        } else {
            cJSON *body = page_body(cur->updated_after, cur->page_cursor);
            if (body == NULL) {
                snprintf(x->err, x->errlen, "out of memory");
                return AH_SYNC_FAILED;
            }
            memset(r, 0, sizeof *r);
            if (ah_bus_request_tenant(core->bus, (uint64_t)x->conn->tenant_id,
                                      (uint64_t)x->conn->id, AH_RECORDS_AS_TEXT,
                                      x->type->topic, body, 0, r) == 0)
                return 0;
        }
        bool again = retryable(r->code) && attempt < AH_SYNC_PAGE_ATTEMPTS;
        if (!again) {
            snprintf(x->err, x->errlen, "%s: %s%s", r->code, r->message ? r->message : "",
                     retryable(r->code) ? " (gave up after the page's last attempt)" : "");
            ah_reply_free(r);
            return AH_SYNC_FAILED;
        }
        ah_log(&core->log, AH_LOG_DEBUG, "sync", "%s/%s %s: page failed (%s: %s), attempt %d",
               x->conn->tenant, x->conn->name, x->type->name, r->code,
               r->message ? r->message : "", attempt);
        ah_reply_free(r);
        x->st->retries++;
        long delay = backoff;
        for (int i = 1; i < attempt && delay < cap; i++)
            delay *= 2;
        if (delay > cap)
            delay = cap;
        /* Renewed before each pause and retry: a page's attempts and their
         * pauses together could outlast the lease, which only a commit
         * renewed (the fetched page was then refused as lease_lost). */
        if (x->lease != NULL &&
            core->store->ops->lease_hold(core->store, x->lease, x->token,
                                         sync_lease_ms(core)) == AH_STORE_NOT_FOUND) {
            snprintf(x->err, x->errlen, "lease_lost: this run's lease expired while its page "
                     "was retried, and another instance may run it now");
            return AH_SYNC_FAILED;
        }
        if (!sleep_unless_stopped(core->sync, delay)) {
            snprintf(x->err, x->errlen, "the host is stopping");
            return AH_SYNC_STOPPED;
        }
    }
}

/* Appends s as a JSON string (quoted, escaped as cJSON prints it), or
 * null for NULL. false when it does not fit. */
static bool put_json_str(char *buf, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = *len;
    if (s == NULL) {
        if (cap - n < 5)
            return false;
        memcpy(buf + n, "null", 4);
        *len = n + 4;
        return true;
    }
    if (cap - n < 3)
        return false;
    buf[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (cap - n < 8)
            return false;
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c < 0x20) {
            buf[n++] = '\\';
            switch (c) {
            case '\b': buf[n++] = 'b'; break;
            case '\f': buf[n++] = 'f'; break;
            case '\n': buf[n++] = 'n'; break;
            case '\r': buf[n++] = 'r'; break;
            case '\t': buf[n++] = 't'; break;
            default:
                buf[n++] = 'u';
                buf[n++] = '0';
                buf[n++] = '0';
                buf[n++] = hex[c >> 4];
                buf[n++] = hex[c & 0xf];
            }
        } else {
            buf[n++] = (char)c;
        }
    }
    buf[n++] = '"';
    buf[n] = '\0';
    *len = n;
    return true;
}

/* A change event's body, {"id","remote_id","type","connection",
 * "updated_at"}, written as text into buf. false when it does not fit. */
static bool change_body(run_ctx *x, const ah_record_in *in, const char *id, char *buf,
                        size_t cap)
{
    size_t n = 0;
    static const char *const keys[] = {"{\"id\":", ",\"remote_id\":", ",\"type\":",
                                       ",\"connection\":", ",\"updated_at\":"};
    const char *vals[] = {id != NULL ? id : "", in->remote_id, in->type, x->conn->name,
                          in->updated_at};
    for (size_t k = 0; k < 5; k++) {
        size_t kl = strlen(keys[k]);
        if (cap - n <= kl)
            return false;
        memcpy(buf + n, keys[k], kl);
        n += kl;
        if (!put_json_str(buf, cap, &n, vals[k]))
            return false;
    }
    if (cap - n < 2)
        return false;
    buf[n++] = '}';
    buf[n] = '\0';
    return true;
}

/* Publishes a committed page's changes in one transaction. A lost batch is
 * logged by the core; the records themselves are committed. */
static int publish_changes(run_ctx *x, const ah_record_in *in, char **ids,
                           const ah_upsert_result *res, size_t n)
{
    int rc = 0;
    /* The page's bodies, one after the other in one buffer (offsets
     * first: it grows). A body is short: ids, remote ids (<= 256) and
     * times; one that would not fit BODY_MAX is an error. */
    enum { BODY_MAX = 2048 };
    char (*topics)[96] = calloc(n ? n : 1, sizeof *topics);
    const char **tp = calloc(n ? n : 1, sizeof *tp);
    const char **texts = calloc(n ? n : 1, sizeof *texts);
    size_t *offs = calloc(n ? n : 1, sizeof *offs);
    char *bodies = NULL, one[BODY_MAX];
    size_t len = 0, cap = 0, m = 0;
    if (topics == NULL || tp == NULL || texts == NULL || offs == NULL)
        rc = -1;
    for (size_t k = 0; rc == 0 && k < n; k++) {
        if (res[k] != AH_REC_CREATED && res[k] != AH_REC_UPDATED)
            continue;
        snprintf(topics[m], sizeof topics[m], "event.%.40s.%s", in[k].type,
                 res[k] == AH_REC_CREATED ? "created" : "updated");
        tp[m] = topics[m];
        if (!change_body(x, &in[k], ids[k], one, sizeof one)) {
            rc = -1;
            break;
        }
        size_t bl = strlen(one) + 1;
        if (len + bl > cap) {
            size_t nc = cap ? cap * 2 : 64 * 1024;
            while (nc < len + bl)
                nc *= 2;
            char *nb = realloc(bodies, nc);
            if (nb == NULL) {
                rc = -1;
                break;
            }
            bodies = nb;
            cap = nc;
        }
        memcpy(bodies + len, one, bl);
        offs[m++] = len;
        len += bl;
    }
    for (size_t k = 0; rc == 0 && k < m; k++)
        texts[k] = bodies + offs[k];
    if (rc == 0 && m > 0)
        rc = ah_core_publish_batch_text(x->core, x->conn->tenant_id, tp, texts, m);
    free(topics);
    free(tp);
    free(texts);
    free(offs);
    free(bodies);
    return rc;
}

/* Opens the page's scope (*scoped: whether the store has one), renews the
 * run's lease, records the page's stage changes and upserts its records
 * with the cursor that follows. 0; -1 with x->err filled and the scope
 * rolled back. */
static int upsert_page(run_ctx *x, const char *key, const ah_record_in *in,
                       const ah_fields_kept *kept, size_t n, const char *ctext,
                       ah_upsert_result *res, char **ids, bool *scoped)
{
    ah_store *store = x->core->store;
    *scoped = false;
    if (store->ops->scope_begin != NULL) {
        /* A store that has scopes but cannot open one now (SQLite busy
         * past its timeout, a backend gone) fails the page: written
         * without it, its records and cursor would commit apart from the
         * lease's check and from the page's events. */
        if (store->ops->scope_begin(store) != 0) {
            snprintf(x->err, x->errlen,
                     "store_error: cannot open the store's transaction for page %ld",
                     x->st->pages + 1);
            return -1;
        }
        *scoped = true;
    }
    /* The fence: the page commits only while this run still holds its
     * lease (renewed by the same statement). */
    if (x->lease != NULL) {
        int lr = store->ops->lease_hold(store, x->lease, x->token, sync_lease_ms(x->core));
        if (lr != AH_STORE_OK) {
            if (*scoped)
                store->ops->scope_end(store, false);
            snprintf(x->err, x->errlen,
                     lr == AH_STORE_NOT_FOUND
                         ? "lease_lost: this run's lease expired and another instance may "
                           "have taken the sync over; page %ld was not committed"
                         : "store_error: cannot renew the run's lease before page %ld",
                     x->st->pages + 1);
            return -1;
        }
    }
    /* Only the records this run committed can be stored (x->fresh), unless
     * the store could not take the page back should that prove wrong. */
    ah_tracking_stage_changes(x->core, x->conn, in, n, *scoped ? x->fresh : NULL);
    if ((kept != NULL ? store->ops->records_upsert_kept(store, x->conn->id, in, kept, n, key,
                                                        ctext, res, ids)
                      : store->ops->records_upsert(store, x->conn->id, in, n, key, ctext, res,
                                                   ids)) != 0) {
        if (*scoped)
            store->ops->scope_end(store, false);
        snprintf(x->err, x->errlen, "store_error: cannot commit page %ld (see the log)",
                 x->st->pages + 1);
        return -1;
    }
    return 0;
}

/* Whether the upsert found stored a tracked record that x->fresh says the
 * run never committed (so the stage history did not look it up). */
static bool stored_unseen(const run_ctx *x, const ah_record_in *in, const ah_upsert_result *res,
                          size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (res[k] != AH_REC_CREATED && ah_tracking_tracks(in[k].type) &&
            !ah_run_ids_maybe(x->fresh, in[k].remote_id))
            return true;
    return false;
}

/* The first updated_at of in[0..n) later than `ahead` (for the log). */
static const char *first_future(const ah_record_in *in, size_t n, const pinstant *ahead)
{
    for (size_t i = 0; i < n; i++) {
        pinstant t;
        if (in[i].updated_at != NULL && pinstant_parse(in[i].updated_at, &t) &&
            pinstant_cmp(&t, ahead) > 0)
            return in[i].updated_at;
    }
    return "?";
}

/* Commits one page (records + the cursor that follows) and publishes its
 * changes. Advances *cur on success. */
static int commit_page(run_ctx *x, const char *key, cursor *cur, const ah_recbuf *recs,
                       const page_kept *kept, const char *next)
{
    ah_core *core = x->core;
    size_t n = ah_recbuf_count(recs);
    ah_record_in *in = calloc(n ? n : 1, sizeof *in);
    char **ids = calloc(n ? n : 1, sizeof *ids);
    ah_upsert_result *res = calloc(n ? n : 1, sizeof *res);
    char *ctext = NULL, *newmax = cur->run_max != NULL ? strdup(cur->run_max) : NULL;
    int rc = AH_SYNC_FAILED;
    if (in == NULL || ids == NULL || res == NULL || (cur->run_max != NULL && newmax == NULL)) {
        snprintf(x->err, x->errlen, "out of memory");
        goto out;
    }
    /* The newest valid updated_at so far: the saved run_max, then the
     * page's records (maxrec: the newest of them, -1: none newer). */
    pinstant max_at = {0, 0};
    bool max_valid = newmax != NULL && pinstant_parse(newmax, &max_at);
    long maxrec = -1;
    /* A time further ahead than any clock could be wrong by (a provider's
     * "never" sentinel, 9999-12-31) would move the window past every later
     * change for good: it does not move it. */
    pinstant ahead = {(int64_t)time(NULL) + AH_SYNC_FUTURE_S, 0};
    size_t future = 0;
    /* The page's records arrive as text (the host checked each value):
     * they go to the store as they are, no tree per record. */
    for (size_t i = 0; i < n; i++) {
        ah_recbuf_rec rec;
        ah_recbuf_get(recs, i, &rec);
        in[i].type = rec.type;
        in[i].remote_id = rec.remote_id;
        in[i].updated_at = rec.updated_at;
        in[i].raw = rec.raw;
        in[i].fields = rec.fields;
        /* An updated_at that is no provider time cannot move the window.
         * A saved run_max that is no provider time (hand-edited cursor)
         * gives way to any valid one. */
        pinstant t;
        bool valid = in[i].updated_at != NULL && pinstant_parse(in[i].updated_at, &t);
        if (valid && pinstant_cmp(&t, &ahead) > 0) {
            future++;
            valid = false;
        }
        if (valid && (!max_valid || pinstant_cmp(&t, &max_at) > 0)) {
            maxrec = (long)i;
            max_at = t;
            max_valid = true;
        }
    }
    if (future > 0)
        ah_log(&core->log, AH_LOG_WARN, "sync",
               "%s/%s %s: %zu record(s) of this page updated more than a day from now (such as "
               "%s): stored, but they do not move where the next sync starts", x->conn->tenant,
               x->conn->name, x->type->name, future, first_future(in, n, &ahead));
    if (maxrec >= 0) {
        char *m = strdup(in[maxrec].updated_at);
        if (m == NULL) {
            snprintf(x->err, x->errlen, "out of memory");
            goto out;
        }
        free(newmax);
        newmax = m;
    }
    if (next != NULL) {
        ctext = cursor_text(cur->updated_after, next, newmax);
    } else {
        /* The run is complete: the next one starts backfill_hours before
         * the newest record seen, but never before where this one started. */
        char ua[64];
        const char *nua = cur->updated_after;
        int cmp = 0;
        if (newmax != NULL &&
            ah_sync_time_minus_hours(newmax, x->backfill_hours, ua, sizeof ua) == 0 &&
            (nua == NULL || ah_sync_time_cmp(ua, nua, &cmp) != 0 || cmp > 0))
            nua = ua;
        ctext = cursor_text(nua, NULL, NULL);
        if (ctext != NULL) {
            char *keep = nua != NULL ? strdup(nua) : NULL;
            free(cur->updated_after);
            cur->updated_after = keep;
        }
    }
    if (ctext == NULL) {
        snprintf(x->err, x->errlen, "out of memory");
        goto out;
    }
    /* The page, its cursor, its stage transitions and its change events
     * commit in one transaction: a crash loses none of them alone. */
    ah_store *store = core->store;
    bool scoped = false;
    bool use_kept = kept != NULL && kept->for_recs == (const void *)recs && kept->n == n &&
                    n > 0;
    const ah_fields_kept *fk = use_kept ? kept->kept : NULL;
    if (upsert_page(x, key, in, fk, n, ctext, res, ids, &scoped) != 0)
        goto out;
    if (scoped && x->fresh != NULL && stored_unseen(x, in, res, n)) {
        /* A record the run had not committed was there (a write through
         * atshub stored it meanwhile): its stage was not looked up. The
         * page again, and the rest of the run, with every one looked up. */
        store->ops->scope_end(store, false);
        ah_run_ids_free(x->fresh);
        x->fresh = NULL;
        for (size_t k = 0; k < n; k++) {
            free(ids[k]);
            ids[k] = NULL;
        }
        if (upsert_page(x, key, in, fk, n, ctext, res, ids, &scoped) != 0)
            goto out;
    }
    if (publish_changes(x, in, ids, res, n) != 0) {
        if (scoped)
            store->ops->scope_end(store, false);
        snprintf(x->err, x->errlen, "store_error: cannot store the events of page %ld",
                 x->st->pages + 1);
        goto out;
    }
    if (scoped && store->ops->scope_end(store, true) != 0) {
        snprintf(x->err, x->errlen, "store_error: cannot commit page %ld (see the log)",
                 x->st->pages + 1);
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        ah_seen_add(x->seen, ids[k]);
        if (x->fresh != NULL && ah_tracking_tracks(in[k].type))
            ah_run_ids_add(x->fresh, in[k].remote_id);
        if (res[k] == AH_REC_CREATED)
            x->st->created++;
        else if (res[k] == AH_REC_UPDATED)
            x->st->updated++;
        else
            x->st->unchanged++;
    }
    x->st->pages++;
    x->st->records += (long)n;
    ah_metrics_records(x->core->metrics, (long)n);
    snprintf(x->st->last_cursor, sizeof x->st->last_cursor, "%s", next != NULL ? next : "");
    free(cur->page_cursor);
    cur->page_cursor = next != NULL ? strdup(next) : NULL;
    free(cur->run_max);
    cur->run_max = next != NULL ? newmax : NULL;
    if (next == NULL)
        free(newmax);
    newmax = NULL;
    rc = AH_SYNC_OK;
out:
    for (size_t k = 0; ids != NULL && k < n; k++)
        free(ids[k]);
    free(ids);
    free(res);
    free(in);
    free(ctext);
    free(newmax);
    return rc;
}

static void count_mark(void *arg, const ah_record_mark *m)
{
    (void)m;
    (*(long *)arg)++;
}

/* Whether the connection has any record of `type` (true when that cannot
 * be told). One row read, not a count of them all. */
static bool stored_any(ah_core *core, int64_t conn_id, const char *type)
{
    const ah_store_ops *ops = core->store->ops;
    if (ops->record_marks_after != NULL) {
        long n = 0;
        return ops->record_marks_after(core->store, conn_id, type, NULL, 1, count_mark, &n) != 0 ||
               n > 0;
    }
    return ops->record_count(core->store, conn_id, type) != 0;
}

/* The page cursors a run was given, as 64-bit hashes in an open-addressed
 * table (8 bytes a page): a stream whose cursors go round is caught at its
 * first repeat. (Two cursors of one run with one hash would fail the run;
 * at a million pages the odds are below one in ten million.) */
typedef struct cursor_set {
    uint64_t *v; /* 0: free */
    size_t cap, n;
} cursor_set;

static uint64_t cursor_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h != 0 ? h : 1;
}

/* Adds cursor c: false when it was there already. Out of memory: true (the
 * run goes on unguarded rather than fail). */
static bool cursor_set_add(cursor_set *s, const char *c)
{
    if (s->n + 1 > s->cap / 2) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        uint64_t *nv = calloc(nc, sizeof *nv);
        if (nv == NULL)
            return true;
        for (size_t i = 0; i < s->cap; i++)
            if (s->v[i] != 0)
                for (size_t j = s->v[i] & (nc - 1);; j = (j + 1) & (nc - 1))
                    if (nv[j] == 0) {
                        nv[j] = s->v[i];
                        break;
                    }
        free(s->v);
        s->v = nv;
        s->cap = nc;
    }
    uint64_t h = cursor_hash(c);
    for (size_t j = h & (s->cap - 1);; j = (j + 1) & (s->cap - 1)) {
        if (s->v[j] == h)
            return false;
        if (s->v[j] == 0) {
            s->v[j] = h;
            s->n++;
            return true;
        }
    }
}

static int run_type(run_ctx *x)
{
    ah_core *core = x->core;
    char key[64];
    snprintf(key, sizeof key, "sync.%s", x->type->name);
    cursor cur;
    if (cursor_load(core, x->conn->id, key, &cur) != 0) {
        snprintf(x->err, x->errlen, "store_error: cannot read the cursor");
        return AH_SYNC_FAILED;
    }
    double t0 = now_s();
    int rc;
    /* No cursor at all: this run sees the whole list, so it can tell which
     * stored records the provider no longer returns. */
    char rtype[32];
    snprintf(rtype, sizeof rtype, "%s", x->type->name);
    size_t rtl = strlen(rtype);
    if (rtl > 1 && rtype[rtl - 1] == 's')
        rtype[rtl - 1] = '\0'; /* "applications" -> the records' "application" */
    /* With none of this type stored yet (a first sync), no stored record
     * can be missing from the list: no ids to keep, no sweep; and the only
     * records stored are the ones this run commits (a record can come
     * twice, when the provider changed it meanwhile). */
    if (cur.updated_after == NULL && cur.page_cursor == NULL) {
        if (stored_any(core, x->conn->id, rtype))
            x->seen = ah_seen_new();
        else if (ah_tracking_tracks(rtype))
            x->fresh = ah_run_ids_new(); /* NULL (out of memory): every one looked up */
    }
    /* While a page commits, the next one is already asked for (it only
     * needs the page's next_cursor): the provider, the plugin on a bus
     * worker and the store work at the same time. Nothing of it is used
     * unless the page before it committed. */
    prefetch *pf = NULL;
    cursor_set given = {0};
    if (cur.page_cursor != NULL)
        (void)cursor_set_add(&given, cur.page_cursor);
    for (;;) {
        ah_reply r, first;
        ah_reply *fp = NULL;
        page_kept kept = {0};
        if (pf != NULL) {
            prefetch_wait(x, pf, &first, &kept);
            pf = NULL;
            fp = &first;
        }
        rc = request_page(x, &cur, fp, &r);
        if (rc != 0) {
            page_kept_free(&kept);
            break;
        }
        const ah_recbuf *recs = r.attachment_free == ah_recbuf_free_v ? r.attachment : NULL;
        const cJSON *nx = cJSON_GetObjectItemCaseSensitive(r.body, "next_cursor");
        const char *next = cJSON_IsString(nx) ? nx->valuestring : NULL;
        if (nx != NULL && !cJSON_IsNull(nx) && !cJSON_IsString(nx)) {
            snprintf(x->err, x->errlen, "plugin_error: the reply's next_cursor has the wrong "
                     "type");
            rc = AH_SYNC_FAILED;
        } else if (next != NULL && cur.page_cursor != NULL && strcmp(next, cur.page_cursor) == 0) {
            snprintf(x->err, x->errlen, "plugin_error: the stream did not advance "
                     "(next_cursor equals the cursor asked for)");
            rc = AH_SYNC_FAILED;
        } else if (next != NULL && !cursor_set_add(&given, next)) {
            snprintf(x->err, x->errlen, "plugin_error: the stream went round (next_cursor is "
                     "one it gave before in this run)");
            rc = AH_SYNC_FAILED;
        } else {
            if (next != NULL && !is_stopping(core->sync))
                pf = prefetch_start(x, cur.updated_after, next);
            rc = commit_page(x, key, &cur, recs, &kept, next);
        }
        bool last = next == NULL;
        page_kept_free(&kept);
        ah_reply_free(&r);
        if (rc != 0) {
            if (pf != NULL) {
                /* Not used: the page before it did not commit. */
                ah_reply dropped;
                prefetch_wait(x, pf, &dropped, NULL);
                ah_reply_free(&dropped);
                pf = NULL;
            }
            break;
        }
        x->st->seconds = now_s() - t0;
        if (x->cb != NULL)
            x->cb(x->cb_arg, x->type->name, x->st);
        if (last)
            break;
    }
    free(given.v);
    x->st->seconds = now_s() - t0;
    if (rc == AH_SYNC_OK && x->seen != NULL)
        ah_tracking_sweep(core, x->conn, rtype, x->seen);
    ah_seen_free(x->seen);
    x->seen = NULL;
    ah_run_ids_free(x->fresh);
    x->fresh = NULL;
    cursor_clear(&cur);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Runs                                                                      */
/* ------------------------------------------------------------------------ */

static void stats_add(ah_sync_stats *t, const ah_sync_stats *s)
{
    t->pages += s->pages;
    t->records += s->records;
    t->created += s->created;
    t->updated += s->updated;
    t->unchanged += s->unchanged;
    t->retries += s->retries;
    t->seconds += s->seconds;
    snprintf(t->last_cursor, sizeof t->last_cursor, "%s", s->last_cursor);
}

int ah_sync_run(ah_core *core, const char *tenant, const char *connection, const char *type,
                ah_sync_progress cb, void *arg, ah_sync_stats *total, char *err, size_t errlen)
{
    char scratch[8];
    if (err == NULL) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    if (total != NULL)
        memset(total, 0, sizeof *total);
    if (type != NULL && !ah_sync_type_valid(type)) {
        snprintf(err, errlen, "unknown type '%s' (jobs, applications or candidates)", type);
        return AH_SYNC_INVALID;
    }
    if (core->bus == NULL || core->sync == NULL) {
        snprintf(err, errlen, "the core was opened without its bus");
        return AH_SYNC_FAILED;
    }
    ah_conn *c = ah_conn_find(core, tenant, connection);
    if (c == NULL) {
        snprintf(err, errlen, "tenant '%s' has no connection '%s'", tenant, connection);
        return AH_SYNC_NOT_FOUND;
    }
    /* Writes of this connection whose outcome stayed unknown are settled
     * first (settle.h), whatever the sync streams. */
    ah_settle_unknown(core, c);
    ah_generation *gen = ah_registry_acquire(core->registry, c->plugin);
    if (gen == NULL) {
        snprintf(err, errlen, "plugin '%s' is not loaded", c->plugin);
        ah_conn_release(c);
        return AH_SYNC_FAILED;
    }
    bool streams[NTYPES];
    size_t nstreams = 0;
    for (size_t i = 0; i < NTYPES; i++) {
        streams[i] = ah_router_resolve(gen->desc, ah_router_topic(k_types[i].topic)) != NULL &&
                     (type == NULL || strcmp(type, k_types[i].name) == 0);
        nstreams += streams[i];
    }
    const ah_streaming_ops *so = gen->desc->streaming;
    unsigned backfill = AH_HAS(so, backfill_hours) ? so->backfill_hours : 0;
    ah_generation_release(gen);
    if (nstreams == 0) {
        snprintf(err, errlen, "plugin '%s' does not stream %s", c->plugin,
                 type != NULL ? type : "anything");
        ah_conn_release(c);
        return AH_SYNC_INVALID;
    }
    int rc = AH_SYNC_OK;
    for (size_t i = 0; i < NTYPES && rc == AH_SYNC_OK; i++) {
        if (!streams[i])
            continue;
        if (!claim(core->sync, c->id, i)) {
            snprintf(err, errlen, "%s: a sync of %s/%s is already running", k_types[i].name,
                     tenant, connection);
            rc = AH_SYNC_RUNNING;
            break;
        }
        /* Another instance on the same store may be running it. */
        ah_store *store = core->store;
        char lease[96];
        int64_t token = 0;
        bool leased = store->ops->lease_acquire != NULL;
        if (leased) {
            snprintf(lease, sizeof lease, "sync:%lld", (long long)c->id);
            char *holder = NULL;
            int lr = store->ops->lease_acquire(store, lease, core->sync->owner, sync_lease_ms(core),
                                               &token, &holder);
            if (lr == AH_STORE_EXISTS && holder != NULL &&
                holder_dead_here(core->sync, holder)) {
                lr = store->ops->lease_take_over(store, lease, holder, core->sync->owner,
                                                 sync_lease_ms(core), &token);
                if (lr == AH_STORE_OK)
                    ah_log(&core->log, AH_LOG_INFO, "sync",
                           "%s/%s %s: took the lease of a run that died (%s) over", tenant,
                           connection, k_types[i].name, holder);
                else if (lr == AH_STORE_NOT_FOUND)
                    lr = AH_STORE_EXISTS; /* someone else was quicker */
            }
            free(holder);
            if (lr != AH_STORE_OK) {
                unclaim(core->sync, c->id, i);
                if (lr == AH_STORE_EXISTS) {
                    snprintf(err, errlen, "%s: a sync of %s/%s %s is already running on another "
                             "instance", k_types[i].name, tenant, connection, k_types[i].name);
                    rc = AH_SYNC_RUNNING;
                } else {
                    snprintf(err, errlen, "%s: store_error: cannot claim the sync's lease",
                             k_types[i].name);
                    rc = AH_SYNC_FAILED;
                }
                break;
            }
        }
        ah_sync_stats st;
        memset(&st, 0, sizeof st);
        char why[1024] = "";
        run_ctx x = {core, c, &k_types[i], backfill, cb, arg, &st, why, sizeof why, NULL, NULL,
                     leased ? lease : NULL, token};
        /* The run's page commits do not wait for the WAL's sync one by
         * one (store.h, defer_durable): nothing leaves the process from
         * this thread on the strength of a page before the run ends, and
         * the threads that read them (a client, a delivery) wait for it
         * themselves. The run ends with its pages on disk. */
        bool defer = store->ops->defer_durable != NULL;
        if (defer)
            store->ops->defer_durable(store, true);
        rc = run_type(&x);
        if (defer) {
            store->ops->defer_durable(store, false);
            if (!store->ops->durable(store, store->ops->commit_mark(store)) &&
                rc == AH_SYNC_OK) {
                snprintf(why, sizeof why, "store_error: its pages could not be synced to disk");
                rc = AH_SYNC_FAILED;
            }
        }
        if (leased)
            store->ops->lease_release(store, lease, token); /* NOT_FOUND: lost already */
        unclaim(core->sync, c->id, i);
        st.done = true;
        st.failed = rc != AH_SYNC_OK;
        if (rc != AH_SYNC_OK)
            snprintf(err, errlen, "%s: %s; the cursor was kept at the last committed page "
                     "(%ld pages committed in this run)", k_types[i].name, why, st.pages);
        if (cb != NULL)
            cb(arg, k_types[i].name, &st);
        if (total != NULL)
            stats_add(total, &st);
    }
    if (total != NULL) {
        total->done = true;
        total->failed = rc != AH_SYNC_OK;
    }
    ah_conn_release(c);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Scheduler                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct conn_name {
    char *tenant;
    char *name;
} conn_name;

typedef struct conn_list {
    conn_name *v;
    size_t n, cap;
} conn_list;

static void collect_enabled(void *arg, const ah_connection_row *row)
{
    conn_list *l = arg;
    if (!row->enabled || row->tenant == NULL || row->name == NULL)
        return;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        conn_name *nv = realloc(l->v, nc * sizeof *nv);
        if (nv == NULL)
            return;
        l->v = nv;
        l->cap = nc;
    }
    conn_name e = {strdup(row->tenant), strdup(row->name)};
    if (e.tenant == NULL || e.name == NULL) {
        free(e.tenant);
        free(e.name);
        return;
    }
    l->v[l->n++] = e;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Whether this instance still leads the schedule (the pass stops when
 * it no longer does). */
static bool is_leader(ah_sync *s)
{
    pthread_mutex_lock(&s->lock);
    bool l = s->leader && !s->stopping && (s->leader_until == 0 || mono_s() < s->leader_until);
    pthread_mutex_unlock(&s->lock);
    return l;
}

typedef struct sched_run {
    ah_sync *s;
    const char *tenant, *connection;
} sched_run;

static void sched_progress(void *arg, const char *type, const ah_sync_stats *st)
{
    sched_run *r = arg;
    if (r->s->observer != NULL)
        r->s->observer(r->s->observer_arg, r->tenant, r->connection, type, st);
}

void ah_sync_set_observer(ah_sync *s, ah_sync_observer fn, void *arg)
{
    s->observer = fn;
    s->observer_arg = arg;
}

static void sched_pass(ah_core *core)
{
    conn_list l = {NULL, 0, 0};
    if (core->store->ops->connection_list(core->store, NULL, NULL, collect_enabled, &l) != 0)
        ah_log(&core->log, AH_LOG_WARN, "sync", "scheduler: cannot list connections");
    for (size_t i = 0; i < l.n && is_leader(core->sync); i++) {
        /* The in-memory table is what requests are served from: a
         * connection disabled there would only answer connection_disabled. */
        ah_conn *c = ah_conn_find(core, l.v[i].tenant, l.v[i].name);
        bool enabled = c != NULL && c->enabled;
        ah_conn_release(c);
        for (size_t t = 0; enabled && t < NTYPES && is_leader(core->sync); t++) {
            ah_sync_stats st;
            char err[1024];
            sched_run sr = {core->sync, l.v[i].tenant, l.v[i].name};
            int rc = ah_sync_run(core, l.v[i].tenant, l.v[i].name, k_types[t].name,
                                 sched_progress, &sr, &st, err, sizeof err);
            if (rc == AH_SYNC_OK || rc == AH_SYNC_FAILED)
                ah_metrics_sync(core->metrics, l.v[i].tenant, l.v[i].name, k_types[t].name,
                                st.records, rc == AH_SYNC_OK);
            if (rc == AH_SYNC_OK)
                ah_log(&core->log, AH_LOG_INFO, "sync",
                       "%s/%s %s: %ld pages, %ld records (%ld new, %ld updated, %ld unchanged), "
                       "%ld retries, %.2f s", l.v[i].tenant, l.v[i].name, k_types[t].name,
                       st.pages, st.records, st.created, st.updated, st.unchanged, st.retries,
                       st.seconds);
            else if (rc == AH_SYNC_FAILED)
                ah_log(&core->log, AH_LOG_WARN, "sync", "%s/%s %s", l.v[i].tenant,
                       l.v[i].name, err);
            else if (rc == AH_SYNC_RUNNING)
                ah_log(&core->log, AH_LOG_DEBUG, "sync", "%s/%s %s", l.v[i].tenant,
                       l.v[i].name, err);
            /* AH_SYNC_INVALID: the plugin does not stream that type. */
        }
    }
    for (size_t i = 0; i < l.n; i++) {
        free(l.v[i].tenant);
        free(l.v[i].name);
    }
    free(l.v);
}

static void *pass_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-sync-pass"); /* top -H, perf */
    ah_core *core = arg;
    sched_pass(core);
    pthread_mutex_lock(&core->sync->lock);
    core->sync->pass_running = false;
    pthread_mutex_unlock(&core->sync->lock);
    return NULL;
}

/* The scheduler: one leader among the instances on the store. Every third
 * of a claim's lifetime it takes or renews the lease AH_SCHED_LEASE (on
 * the database's clock; taken over by another instance when this one
 * stops renewing it); while it holds it, it starts a pass every interval,
 * on a thread of its own so that renewing goes on while the pass runs (a
 * pass stops between two runs once the lease is lost). */
static void *sched_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-sync-sched"); /* top -H, perf */
    ah_core *core = arg;
    ah_sync *s = core->sync;
    ah_store *st = core->store;
    double interval = (double)core->cfg.sync_interval_s;
    int64_t ttl = ah_claim_ttl(core);
    long slice = (long)(ttl / 3);
    bool lease = core->instance[0] != '\0'; /* a one-shot core: always the leader */
    bool have = !lease;
    int64_t token = 0;
    double last = 0;
    bool ever = false;
    while (!is_stopping(s)) {
        bool ok = have;
        /* Before the store call: the lease it renews or takes lasts ttl
         * from a later time on the database's clock. */
        double asked = mono_s();
        if (lease && have) {
            int rc = st->ops->lease_hold(st, AH_SCHED_LEASE, token, ttl);
            if (rc == AH_STORE_NOT_FOUND) {
                have = false;
                ah_log(&core->log, AH_LOG_WARN, "sync", "this instance lost the schedule "
                       "lease (%s); another instance schedules the syncs", AH_SCHED_LEASE);
            }
            ok = rc == AH_STORE_OK; /* a store error: no pass until it answers */
        }
        if (lease && !have) {
            int rc = st->ops->lease_acquire(st, AH_SCHED_LEASE, core->instance, ttl, &token,
                                            NULL);
            have = ok = rc == AH_STORE_OK;
            if (have)
                ah_log(&core->log, AH_LOG_INFO, "sync", "this instance now schedules the "
                       "syncs (lease %s, token %lld)", AH_SCHED_LEASE, (long long)token);
        }
        pthread_mutex_lock(&s->lock);
        s->leader = ok;
        /* Nine tenths of the lifetime: the two clocks' rates differ a
         * little. */
        s->leader_until = ok && lease ? asked + (double)ttl * 0.9 / 1000.0 : 0;
        bool busy = s->pass_running;
        pthread_mutex_unlock(&s->lock);
        if (!busy && s->pass_joinable) {
            pthread_join(s->pass_thread, NULL);
            s->pass_joinable = false;
        }
        if (ok && !busy && (!ever || mono_s() - last >= interval)) {
            pthread_mutex_lock(&s->lock);
            s->pass_running = true;
            pthread_mutex_unlock(&s->lock);
            if (pthread_create(&s->pass_thread, NULL, pass_main, core) != 0) {
                pthread_mutex_lock(&s->lock);
                s->pass_running = false;
                pthread_mutex_unlock(&s->lock);
            } else {
                s->pass_joinable = true;
                last = mono_s();
                ever = true;
                pthread_mutex_lock(&s->lock);
                s->next_pass = last + interval;
                pthread_mutex_unlock(&s->lock);
            }
        }
        /* Until the next renewal, or the next pass if sooner. */
        long wait = lease ? slice : 200;
        long due = (long)((interval - (mono_s() - last)) * 1000);
        if (ok && ever && due < wait)
            wait = due < 50 ? 50 : due;
        if (!sleep_unless_stopped(s, wait))
            break;
    }
    if (s->pass_joinable) {
        pthread_join(s->pass_thread, NULL);
        s->pass_joinable = false;
    }
    pthread_mutex_lock(&s->lock);
    s->leader = false;
    pthread_mutex_unlock(&s->lock);
    /* Given back, so that another instance leads at once. */
    if (lease && have)
        (void)st->ops->lease_release(st, AH_SCHED_LEASE, token);
    return NULL;
}

int ah_sync_next_pass(ah_sync *s, char out[32])
{
    if (s == NULL)
        return -1;
    pthread_mutex_lock(&s->lock);
    bool known = s->leader && !s->stopping && s->thread_running && s->next_pass > 0;
    double at = s->next_pass;
    pthread_mutex_unlock(&s->lock);
    if (!known)
        return -1;
    double in = at - mono_s();
    ah_iso_in(in > 0 ? (long)(in * 1000) : 0, out);
    return 0;
}

bool ah_sync_is_leader(ah_sync *s)
{
    return s != NULL && is_leader(s);
}

int ah_sync_scheduler_start(ah_core *core, char *err, size_t errlen)
{
    ah_sync *s = core->sync;
    if (s == NULL) {
        snprintf(err, errlen, "the sync engine is not initialised");
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    s->stopping = false;
    bool running = s->thread_running;
    pthread_mutex_unlock(&s->lock);
    if (running || core->cfg.sync_interval_s <= 0)
        return 0;
    if (core->bus == NULL) {
        snprintf(err, errlen, "the sync scheduler needs the bus");
        return -1;
    }
    if (pthread_create(&s->thread, NULL, sched_main, core) != 0) {
        snprintf(err, errlen, "cannot start the sync scheduler thread");
        return -1;
    }
    s->thread_running = true;
    return 0;
}

void ah_sync_scheduler_stop(ah_core *core)
{
    ah_sync *s = core->sync;
    if (s == NULL)
        return;
    /* Stays set until the next start: runs on other threads (admin API)
     * end too, so that the server can stop. */
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (s->thread_running) {
        pthread_join(s->thread, NULL);
        s->thread_running = false;
    }
}
