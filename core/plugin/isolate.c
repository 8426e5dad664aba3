/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Isolated plugins, the daemon's side (isolate.h): spawning, calls over the
 * socket, host API calls served for the child, crashes, backoff, circuit.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "block.h"
#include "clock.h"
#include "frame.h"
#include "look.h"
#include "httpd.h"
#include "oauth2.h"
#include "isolate.h"
#include "registry.h"
#include "ring.h"

extern char **environ;

#define BACKOFF_MAX_MS 60000L
#define CIRCUIT_CRASHES 5
#define CIRCUIT_WINDOW_MS 60000L
/* The child's init may take longer than one call (it may log, read a file
 * it was given): at least this long. */
#define INIT_TIMEOUT_MIN_MS 10000L
/* Connections one route call may look up (the host keeps as many). */
#define ROUTE_EXTRA_MAX 8
/* Records in one emit_records batch (the plugin process sends 500). */
#define EMIT_RECORDS_MAX 100000

/* A connection's contexts: one per process it was opened in. Its calls go
 * to the process it is pinned to; a route (which learns its connection
 * only through conn_by_secret, in whichever process it runs) opens it once
 * in its own process and keeps that context too, instead of moving the
 * connection from process to process (an open() per request). Slot i is
 * read and written only under procs[i].mu (a connection's calls are one
 * at a time: its call lock). */
typedef struct iso_slot {
    uint64_t epoch;  /* the child that opened it; 0: none */
    char handle[24]; /* the child's context, as it named it */
} iso_slot;

typedef struct iso_ctx {
    int proc;        /* the process slot the connection is pinned to */
    iso_slot at[];   /* ah_isolate.nprocs of them */
} iso_ctx;

/* A frame read for a call in flight, kept until its thread takes it. */
typedef struct qframe {
    struct qframe *next;
    cJSON *m;
    unsigned char *tail;
    size_t tail_len;
    size_t len; /* its weight (wire bytes and tree), counted in its child's `queued` */
} qframe;

/* The most a child's frames may take, on the wire, while they wait for
 * calls that have not taken them yet (a call busy in a host call while
 * another call's thread reads the socket): one largest frame. A call's
 * frames come one after another as it goes, so only a process that writes
 * for a call faster than the call takes them (a flood) reaches it; it is
 * ended as a protocol breach, not left to grow the daemon. */
#define AH_ISOLATE_QUEUED_MAX ((size_t)AH_FRAME_MAX)

/* A call in flight in a child: its id (in every frame of the call, both
 * ways), the frames read for it that its thread has not taken yet, and,
 * while it serves an inbound route (ah_isolate_route), the exchange and
 * the calls its host API calls may name ("c": 0 the route's own, 1.. the
 * connections conn_by_secret gave it). Lives on its thread's stack. */
typedef struct waiter {
    struct waiter *next;
    uint64_t id;
    qframe *head, *last;
    pthread_cond_t cv;  /* a frame came for it, the socket is free, the child died */
    bool waiting;       /* in cv */
    ah_http_exchange *ex;
    ah_call *rcalls[1 + ROUTE_EXTRA_MAX];
    int nrcalls;
    /* The connection sent with the route (presolve), until the route ends;
     * the call the plugin's one-way conn_by_secret takes it as ("pre"),
     * and why that failed (a take_code: the route fails with it). */
    ah_call *peeked;
    int pre_idx;
    char take_code[64];
    char take_msg[512];
    int take_status;
} waiter;

/* One plugin host process, with several calls in flight. Whoever waits for
 * a frame reads the socket when nobody else does (one reader at a time),
 * keeps the frames of its own call and hands the others to their calls'
 * threads; frames go out one at a time under `wr`. Counted references: the
 * slot's own (while it is the slot's current child) and one per call using
 * it; the last one closes the socket (a child that did not die is then
 * ended gently and reaped) and frees it. */
/* A call waiting for room in a child's process (waiter_add). */
typedef struct room_wait {
    pthread_cond_t cv;
    struct room_wait *next;
} room_wait;

typedef struct child {
    int fd;
    pid_t pid;              /* 0 once reaped */
    uint64_t epoch;         /* unique in the plugin */
    ah_frame_reader rd;     /* only the reading thread touches it */
    /* The shared-memory rings beside the socket (ring.h), or NULL; every
     * frame after the descriptor goes through them once ring_on (set
     * before the child is anyone's but its spawner's). */
    ah_ring *ring;
    bool ring_on;
    ah_look spin;     /* read_frames' look before it sleeps (reading thread) */
    pthread_mutex_t wr;     /* one frame at a time on fd */
    /* The rest under the slot's mu. */
    int refs;
    bool reading;           /* a thread reads the socket now */
    bool dead;              /* it died or was killed (and is reaped) */
    bool timed_out;         /* killed because `killer` waited too long */
    bool oom_noted;         /* it said it died at its memory limit */
    const char *broke;      /* how it broke the protocol (p->mu), if it did */
    const waiter *killer;
    char cause[256];        /* why it died, for the calls in flight */
    waiter *waiters;
    int nwaiters;           /* calls in waiters (AH_FRAME_CALLS_MAX at most) */
    /* Calls waiting for room among them, in the order they came: the
     * first is woken when a call leaves (each waits on its own cv), and
     * none is overtaken by a call that came after it. */
    struct room_wait *room_first, *room_last;
    uint64_t next_id;
    size_t queued;          /* bytes of frames in waiters' lists (qframe len) */
    unsigned long calls;    /* operations answered, for max_calls */
    bool handshake;         /* starting: not yet the slot's, not a crash if it dies */
    int status;             /* its wait status once dead */
} child;

/* One plugin process slot; a plugin has opts.processes of them. */
typedef struct proc {
    pthread_mutex_t mu; /* guards cur, the children's shared state, the slots */
    pthread_cond_t cv;  /* a child started (or could not) */
    int index;          /* in ah_isolate.procs */
    child *cur;         /* the running child, or NULL */
    bool spawning;      /* a thread starts a child for the slot */
    bool started;       /* a child ran in this slot before */
    bool recycled;      /* the last child was ended after max_calls */
    pid_t pid;          /* cur's, for operators; guarded by ah_isolate.st */
} proc;

/* The route this thread is serving in a child: a connection conn_by_secret
 * opens meanwhile is opened in the same child (its context must live where
 * the route runs), as part of the route's call (same id). */
static _Thread_local struct ah_isolate *tl_iso;
static _Thread_local proc *tl_proc;
static _Thread_local child *tl_child;
static _Thread_local waiter *tl_waiter;

/* Where a plugin process finds the plugin's bytes when the daemon hands
 * them over as a descriptor (ah_isolate_start's fd). */
#define PLUGIN_FD 4
/* Where it finds the shared memory of its rings (ring.h). */
#define RING_FD 5
#define RING_FD_ARG "5"

struct ah_isolate {
    char *path, *name, *prog;
    int plugin_fd; /* the plugin's bytes (a private copy), or -1 */
    cJSON *desc; /* the descriptor the first child described */
    ah_isolate_opts o;
    const ah_host_api *host;
    proc *procs;
    int nprocs;
    atomic_uint next_proc; /* round robin for new connections */

    pthread_mutex_t st; /* guards the restart policy and what operators see */
    uint64_t spawns;    /* children started so far */
    long backoff_ms;    /* the next restart delay */
    int64_t next_start_ms; /* monotonic: no start before this */
    int64_t crash_at[CIRCUIT_CRASHES]; /* the last crashes, ring */
    unsigned long ncrash_ring;
    bool circuit_open;
    bool restarting;    /* the child crashed; none runs until the next start */
    unsigned long restarts, recycles, crashes, calls;
    /* Host API calls the daemon answered (each a round trip of the plugin
     * process; one-way ones not counted), for operators and tests. */
    atomic_ulong host_round_trips;
    /* Bit i: a route asked setting_lists about its caller's address for
     * the i-th declared setting (add_listed answers it with the next). */
    atomic_ullong listed_asked;
    /* Where the plugin's routes take the secret they give conn_by_secret:
     * HASHED setting hint_key, header ('h') or query parameter ('q')
     * hint_name, as a route's round trip showed (serve_route_host); from
     * then on presolve looks the connection up before the route leaves.
     * Not for a plugin with open(): its context is opened under the
     * connection's lock, which a route sent ahead does not hold. */
    bool has_open;
    pthread_mutex_t hint_mu;
    bool hint_set;
    char hint_where;
    char hint_key[64];
    char hint_name[64];
    char last_cause[256];
    char last_kind[16];
    char last_signal[16];
    time_t last_at;
};


static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* A number the child sent, as an integer in [lo, hi] (clamped: the child is
 * not trusted, and casting a double out of range is undefined). */
static long long inum(const cJSON *o, const char *key, long long dflt, long long lo,
                      long long hi)
{
    double v = num(o, key, (double)dflt);
    if (!(v >= (double)lo)) /* also NaN */
        return lo;
    if (v >= (double)hi)
        return hi;
    return (long long)v;
}

/* ------------------------------------------------------------------------ */
/* Finding and starting the program                                          */
/* ------------------------------------------------------------------------ */

static bool executable(const char *p)
{
    return p != NULL && access(p, X_OK) == 0;
}

static char *find_prog(void)
{
    const char *env = getenv("ATSHUB_PLUGIN_HOST");
    if (env != NULL && *env != '\0')
        return strdup(env);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            char *p = NULL;
            if (asprintf(&p, "%.*s/atshub-plugin-host", (int)(slash - self), self) >= 0) {
                if (executable(p))
                    return p;
                free(p);
            }
        }
    }
#ifdef AH_PLUGIN_HOST_INSTALL
    if (executable(AH_PLUGIN_HOST_INSTALL))
        return strdup(AH_PLUGIN_HOST_INSTALL);
#endif
#ifdef AH_PLUGIN_HOST_BUILD
    if (executable(AH_PLUGIN_HOST_BUILD))
        return strdup(AH_PLUGIN_HOST_BUILD);
#endif
    return NULL;
}


static void set_pid(ah_isolate *iso, proc *p, pid_t pid)
{
    pthread_mutex_lock(&iso->st);
    p->pid = pid;
    pthread_mutex_unlock(&iso->st);
}

/* Waits for a child's end, killed first unless `gently` (then it gets 2 s to
 * end on its own after its socket closed). Its wait status. */
static int reap_pid(pid_t pid, bool gently)
{
    int status = 0;
    if (pid <= 0)
        return 0;
    if (gently) {
        for (int i = 0; i < 200; i++) {
            /* Ended, and not reaped yet (WNOWAIT): its pid, and so its
             * process group's id, cannot be anyone else's yet. */
            siginfo_t si = {0};
            int w = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
            if (w == 0 && si.si_pid == pid)
                break;
            if (w < 0 && errno != EINTR)
                return status;
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    /* SIGKILL does not change how an exiting or dead child ended. Its
     * process group too (its own since posix_spawn): a process the plugin
     * forked keeps the socket and the rings, and would live on. */
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

static void frames_free(qframe *f)
{
    while (f != NULL) {
        qframe *next = f->next;
        cJSON_Delete(f->m);
        free(f->tail);
        free(f);
        f = next;
    }
}

/* The last reference: the socket closes (a child still alive sees the end
 * of its stream, runs fini and exits; killed when it has not within 2 s),
 * the child is reaped, everything freed. */
static void child_free(child *ch)
{
    if (ch->fd >= 0)
        close(ch->fd);
    if (ch->pid > 0)
        reap_pid(ch->pid, true);
    ah_frame_reader_free(&ch->rd);
    ah_ring_close(ch->ring);
    pthread_mutex_destroy(&ch->wr);
    free(ch);
}

/* Drops a reference taken with child_get (p->mu not held). */
static void child_put(proc *p, child *ch)
{
    pthread_mutex_lock(&p->mu);
    bool last = --ch->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (last)
        child_free(ch);
}

/* Notes how the child broke the protocol (the first way counts); the
 * caller then ends it. */
static void broke(proc *p, child *ch, const char *how)
{
    pthread_mutex_lock(&p->mu);
    if (ch->broke == NULL)
        ch->broke = how;
    pthread_mutex_unlock(&p->mu);
}

#define BROKE_RING "an index of its shared memory that it could not have written"
#define BROKE_STALL "a full ring of frames it did not read for call_timeout_ms"

/* One frame out to the child (its socket, or its ring). 0; -1 when it is
 * gone (or broke its ring); AH_FRAME_TOO_LARGE. */
static int send_frame(proc *p, child *ch, const cJSON *m, const void *tail, size_t tail_len)
{
    pthread_mutex_lock(&ch->wr);
    int r = ah_frame_send_via(ch->fd, ch->ring_on ? ch->ring : NULL, m, tail, tail_len);
    pthread_mutex_unlock(&ch->wr);
    if (r == -1 && ch->ring_on && ah_ring_broken(ch->ring))
        broke(p, ch, BROKE_RING);
    else if (r == -1 && ch->ring_on && ah_ring_stalled(ch->ring))
        broke(p, ch, BROKE_STALL);
    return r;
}

/* The child's end, described: how it died (wait status) while `doing`. */
static void describe_death(int status, const char *doing, char *err, size_t errlen)
{
    if (WIFSIGNALED(status))
        snprintf(err, errlen, "the plugin process died %s: signal SIG%s", doing,
                 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
    else
        snprintf(err, errlen, "the plugin process ended %s (exit status %d)", doing,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void record_crash(ah_isolate *iso, proc *p, const char *kind, const char *sig,
                         const char *cause)
{
    int64_t now = ah_mono_ms();
    p->recycled = false;
    pthread_mutex_lock(&iso->st);
    iso->crash_at[iso->ncrash_ring++ % CIRCUIT_CRASHES] = now;
    bool open = iso->ncrash_ring >= CIRCUIT_CRASHES &&
                now - iso->crash_at[iso->ncrash_ring % CIRCUIT_CRASHES] <= CIRCUIT_WINDOW_MS;
    iso->next_start_ms = now + iso->backoff_ms;
    iso->backoff_ms = iso->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : iso->backoff_ms * 2;
    iso->crashes++;
    iso->restarting = true;
    if (open)
        iso->circuit_open = true;
    snprintf(iso->last_kind, sizeof iso->last_kind, "%s", kind);
    snprintf(iso->last_signal, sizeof iso->last_signal, "%s", sig != NULL ? sig : "");
    snprintf(iso->last_cause, sizeof iso->last_cause, "%s", cause);
    iso->last_at = time(NULL);
    pthread_mutex_unlock(&iso->st);
}

/* The child died (its socket ended or failed, or it broke the protocol),
 * or must (`killer` waited past its deadline): killed and reaped once,
 * its cause kept for every call in flight and recorded as the plugin's
 * crash, the slot freed for a new child. p->mu held; the calls in flight
 * are woken and fail. A child still starting (handshake) is only reaped:
 * its starter says why. */
static void child_died(ah_isolate *iso, proc *p, child *ch, const waiter *killer)
{
    if (ch->dead)
        return;
    ch->dead = true;
    ch->timed_out = killer != NULL;
    ch->killer = killer;
    pid_t pid = ch->pid;
    ch->status = reap_pid(pid, false);
    ch->pid = 0;
    /* Our end of the socket shut: a thread of ours asleep on it wakes
     * (its end of stream) even if a process the plugin forked, outside
     * its group, still holds the other end. */
    if (ch->fd >= 0)
        (void)shutdown(ch->fd, SHUT_RDWR);
    pthread_cond_broadcast(&p->cv);
    for (room_wait *r = ch->room_first; r != NULL; r = r->next)
        pthread_cond_signal(&r->cv);
    for (waiter *o = ch->waiters; o != NULL; o = o->next)
        pthread_cond_signal(&o->cv);
    if (ch->handshake)
        return;
    int status = ch->status;
    char signame[16] = "";
    const char *kind;
    if (ch->timed_out) {
        kind = "timeout";
        snprintf(ch->cause, sizeof ch->cause,
                 "timeout: no answer within %ld ms (process %d killed)", iso->o.call_timeout_ms,
                 (int)pid);
    } else {
        if (WIFSIGNALED(status)) {
            const char *ab = sigabbrev_np(WTERMSIG(status));
            snprintf(signame, sizeof signame, "SIG%s", ab != NULL ? ab : "?");
        }
        if (ch->broke != NULL) {
            /* Killed by us (reap_pid), so its status says SIGKILL: the
             * reason is what it sent. */
            kind = "protocol";
            snprintf(ch->cause, sizeof ch->cause,
                     "protocol: the process sent %s (process %d killed)", ch->broke, (int)pid);
            signame[0] = '\0';
        } else if (ch->oom_noted) {
            kind = "memory";
            snprintf(ch->cause, sizeof ch->cause,
                     "memory: the process reached memory_max (%" PRIu64 " MiB)%s%s",
                     iso->o.memory_max >> 20, signame[0] ? ", " : "", signame);
        } else if (WIFSIGNALED(status)) {
            kind = "signal";
            snprintf(ch->cause, sizeof ch->cause, "signal %s", signame);
        } else {
            kind = "exit";
            snprintf(ch->cause, sizeof ch->cause, "exit status %d",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
    }
    record_crash(iso, p, kind, signame[0] ? signame : NULL, ch->cause);
    if (p->cur == ch) {
        p->cur = NULL;
        set_pid(iso, p, 0);
        ch->refs--; /* the slot's; the caller holds one */
    }
}

/* The call id as a string member "cid" (a number would be printed as a
 * double and read back to check it: several times the cost). 0 or -1. */
static int add_cid(cJSON *m, uint64_t id)
{
    char b[24];
    snprintf(b, sizeof b, "%" PRIu64, id);
    return cJSON_AddStringToObject(m, "cid", b) != NULL ? 0 : -1;
}

/* w among ch's calls; p->mu held. */
static void waiter_link(child *ch, waiter *w)
{
    w->id = ch->handshake ? 0 : ch->next_id++;
    w->next = ch->waiters;
    ch->waiters = w;
    ch->nwaiters++;
}

/* Wakes the first call waiting for room, when there is room. p->mu held. */
static void room_wake(child *ch)
{
    if (ch->room_first != NULL && ch->nwaiters < AH_FRAME_CALLS_MAX)
        pthread_cond_signal(&ch->room_first->cv);
}

/* Registers call w with ch, once the child has room for it: its process
 * serves AH_FRAME_CALLS_MAX calls at once, one thread each, and a call sent
 * past them would wait there for a thread while its deadline ran, to be
 * taken for a hung process (and kill the calls in flight with it). So a
 * call that finds them all taken, or others waiting already, waits here,
 * not sent, in line (the first to come is the first sent), telling the bus
 * that it waits on the plugin's process (block.h: [core] provider_threads
 * bounds those waits as a provider's), until it is first and a call ends,
 * or the child dies (the call then fails as the others do). The time it
 * waits does not count against its call_timeout_ms, as the time a call in
 * the process waits for its provider does not: the calls it waits for wait
 * on their providers. It waits at most room_wait_ms (the callers'
 * deadline: a caller gone, a bus request answered 504, must not have its
 * call sent later), then leaves the line, not sent. 0; -1 when the bus
 * refused the wait or it waited too long: w is not registered, nothing was
 * sent, the call's failure is described. */
/* A call that gets no room in its process (why): not sent, its failure
 * described; -1. */
static int room_refused(ah_isolate *iso, waiter *w, ah_call *call, const char *why)
{
    pthread_cond_destroy(&w->cv);
    if (call != NULL)
        call->host->fail(call, "overloaded", 503,
                         "plugin '%s': its process serves %d calls at once and %s; try again "
                         "later (not sent)",
                         iso->name, AH_FRAME_CALLS_MAX, why);
    return -1;
}

static int waiter_add(ah_isolate *iso, proc *p, child *ch, waiter *w, ah_call *call)
{
    (void)ah_cond_init_mono(&w->cv);
    pthread_mutex_lock(&p->mu);
    if (ch->handshake || ch->dead ||
        (ch->room_first == NULL && ch->nwaiters < AH_FRAME_CALLS_MAX)) {
        waiter_link(ch, w);
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    char on[96];
    snprintf(on, sizeof on, "atshub-plugin-host %s/%d", iso->name, p->index);
    pthread_mutex_unlock(&p->mu);
    if (!ah_block_begin_on(on))
        return room_refused(iso, w, call,
                            "as many calls as [core] provider_threads allows wait for it "
                            "already");
    room_wait rw = {.next = NULL};
    (void)ah_cond_init_mono(&rw.cv);
    /* Until the caller's deadline, when this thread's scheduler knows it
     * (a bus worker's message: block.h), and at most room_wait_ms. */
    int64_t until_ms = iso->o.room_wait_ms > 0 ? ah_mono_ms() + iso->o.room_wait_ms : 0;
    int64_t dl = ah_block_deadline_ms();
    if (dl > 0 && (until_ms == 0 || dl < until_ms))
        until_ms = dl;
    struct timespec until = {.tv_sec = (time_t)(until_ms / 1000),
                             .tv_nsec = (long)(until_ms % 1000) * 1000000L};
    bool too_long = false;
    pthread_mutex_lock(&p->mu);
    if (ch->room_last != NULL)
        ch->room_last->next = &rw;
    else
        ch->room_first = &rw;
    ch->room_last = &rw;
    int rc = 0;
    while (!ch->dead && (ch->room_first != &rw || ch->nwaiters >= AH_FRAME_CALLS_MAX)) {
        if (rc == ETIMEDOUT) {
            too_long = true;
            break;
        }
        rc = until_ms > 0 ? pthread_cond_timedwait(&rw.cv, &p->mu, &until)
                          : pthread_cond_wait(&rw.cv, &p->mu);
    }
    /* Out of the line (first, unless the child died), then the next woken
     * if there is room for it too (several calls ended at once). */
    room_wait **pp = &ch->room_first;
    room_wait *prev = NULL;
    while (*pp != &rw) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = rw.next;
    if (ch->room_last == &rw)
        ch->room_last = prev;
    if (!too_long)
        waiter_link(ch, w);
    room_wake(ch);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&rw.cv);
    ah_block_end();
    if (too_long)
        return room_refused(iso, w, call, "this call waited for room until its deadline");
    return 0;
}

static void waiter_remove(proc *p, child *ch, waiter *w)
{
    pthread_mutex_lock(&p->mu);
    for (waiter **pp = &ch->waiters; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            ch->nwaiters--;
            room_wake(ch);
            break;
        }
    }
    for (const qframe *f = w->head; f != NULL; f = f->next)
        ch->queued -= f->len;
    pthread_mutex_unlock(&p->mu);
    frames_free(w->head);
    w->head = w->last = NULL;
    pthread_cond_destroy(&w->cv);
}

/* Wakes one call waiting for the socket (not `except`), to read it. p->mu
 * held. */
static void wake_reader(child *ch, const waiter *except)
{
    for (waiter *o = ch->waiters; o != NULL; o = o->next) {
        if (o != except && o->waiting) {
            pthread_cond_signal(&o->cv);
            return;
        }
    }
}

/* Whether `b` (n bytes the child wrote to its socket) holds the frame its
 * fault handler writes as it dies at its memory limit (AH_FRAME_OOM). */
static bool says_oom(const char *b, size_t n)
{
    static const char oom[] = AH_FRAME_OOM;
    return memmem(b, n, oom, sizeof oom - 1) != NULL;
}

/* A child on the rings writes nothing to its socket but their bells, and
 * the frame of its fault handler: the ring's wait put that aside. The
 * reading thread, at the end of the child's stream. */
static void note_oom(proc *p, child *ch)
{
    char b[64];
    if (!says_oom(b, ah_ring_aside(ch->ring, b, sizeof b)))
        return;
    pthread_mutex_lock(&p->mu);
    ch->oom_noted = true;
    pthread_mutex_unlock(&p->mu);
}

/* Reads what the child wrote (at least one frame; every frame already
 * buffered too) and hands each to the call it names. The reading thread
 * only (ch->reading). 1; 0 nothing came within left_ms; -1 the stream
 * ended or failed, or the child broke the protocol. */
static int read_frames(proc *p, child *ch, long left_ms)
{
    if (!ah_frame_buffered(&ch->rd) && ch->ring_on) {
        int r = ah_ring_wait(ch->ring, &ch->spin, left_ms > INT_MAX ? INT_MAX : (int)left_ms);
        if (r < 0) {
            if (ah_ring_broken(ch->ring))
                broke(p, ch, BROKE_RING);
            else
                note_oom(p, ch);
            return -1;
        }
        if (r == 0)
            return 0;
    } else if (!ah_frame_buffered(&ch->rd)) {
        struct pollfd pf = {.fd = ch->fd, .events = POLLIN};
        int r = ah_look_poll(&ch->spin, ch->fd);
        if (r == 0)
            r = poll(&pf, 1, left_ms > INT_MAX ? INT_MAX : (int)left_ms);
        if (r < 0 && errno == EINTR)
            return 1; /* nothing read: the caller looks again */
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
    }
    do {
        qframe *f = calloc(1, sizeof *f);
        if (f == NULL)
            return -1;
        if (ah_frame_read_tail(&ch->rd, &f->m, &f->tail, &f->tail_len) != 0) {
            free(f);
            if (ch->ring_on && ah_ring_broken(ch->ring))
                broke(p, ch, BROKE_RING);
            else if (ch->ring_on && !ch->rd.broken)
                note_oom(p, ch);
            else if (ch->rd.stalled)
                broke(p, ch, "a frame cut short: the rest did not come");
            else if (ch->rd.broken)
                broke(p, ch, "a frame of a bad length, or one that is no JSON object");
            return -1;
        }
        const char *t = str(f->m, "t");
        /* Only a host call carries a tail (emitted records). */
        if (t == NULL || (f->tail != NULL && strcmp(t, "host") != 0)) {
            frames_free(f);
            broke(p, ch, t == NULL ? "a frame without a type" : "a tail where none may be");
            return -1;
        }
        if (strcmp(t, "oom") == 0) {
            pthread_mutex_lock(&p->mu);
            ch->oom_noted = true;
            pthread_mutex_unlock(&p->mu);
            frames_free(f);
            continue;
        }
        const char *cid = str(f->m, "cid");
        uint64_t id = cid != NULL ? strtoull(cid, NULL, 10) : 0;
        /* Weighed by what it takes here: its text, and its tree. */
        f->len = ch->rd.last_len + ch->rd.last_nodes * AH_FRAME_NODE_BYTES;
        pthread_mutex_lock(&p->mu);
        waiter *w = ch->waiters;
        while (w != NULL && w->id != id)
            w = w->next;
        /* (A first frame may alone be the largest a frame may be, plus
         * its prefix: queued can pass the limit by that much, once.) */
        if (w != NULL && ch->queued > 0 &&
            (ch->queued >= AH_ISOLATE_QUEUED_MAX ||
             f->len > AH_ISOLATE_QUEUED_MAX - ch->queued)) {
            pthread_mutex_unlock(&p->mu);
            frames_free(f);
            broke(p, ch, "more frames than its calls took (over 64 MiB waiting, text and trees)");
            return -1;
        }
        if (w != NULL) {
            ch->queued += f->len;
            if (w->last != NULL)
                w->last->next = f;
            else
                w->head = f;
            w->last = f;
            if (w->waiting)
                pthread_cond_signal(&w->cv);
        }
        pthread_mutex_unlock(&p->mu);
        if (w == NULL) { /* no such call in flight */
            frames_free(f);
            broke(p, ch, "a frame for no call in flight");
            return -1;
        }
    } while (ah_frame_buffered(&ch->rd));
    return 1;
}

/* The next frame for call w: queued for it, or read when nobody else
 * reads, or waited for. 0 with *f; -1 the child died; -2 w's deadline
 * passed first (the child is killed: every call in flight fails).
 * deadline_us: w's deadline (CLOCK_MONOTONIC, microseconds). */
static int next_frame(ah_isolate *iso, proc *p, child *ch, waiter *w, int64_t deadline_us,
                      qframe **f)
{
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (w->head != NULL) {
            *f = w->head;
            w->head = w->head->next;
            if (w->head == NULL)
                w->last = NULL;
            (*f)->next = NULL;
            ch->queued -= (*f)->len;
            /* Leaving with a frame while nobody reads: if another call
             * waits, it reads now. A reader that left woke one waiting call
             * to take the socket over; when that call found a frame of its
             * own, the socket was left unread, and a call that waited for
             * the next frame of the connection's lock holder could wait
             * out its deadline (every call of the connection behind it:
             * conn_by_secret gave up after 2 s, 503). */
            if (!ch->reading)
                wake_reader(ch, w);
            pthread_mutex_unlock(&p->mu);
            return 0;
        }
        if (ch->dead) {
            int r = ch->killer == w ? -2 : -1;
            pthread_mutex_unlock(&p->mu);
            return r;
        }
        /* Counted against the absolute deadline, not by subtracting each
         * wait's whole milliseconds: frames that follow each other within
         * a millisecond (a plugin logging in a loop) would wait 0 ms each
         * and never use the budget up. */
        int64_t left_us = deadline_us - ah_mono_us();
        if (left_us <= 0) {
            child_died(iso, p, ch, w);
            continue;
        }
        if (!ch->reading) {
            ch->reading = true;
            pthread_mutex_unlock(&p->mu);
            int r = read_frames(p, ch, (long)((left_us + 999) / 1000));
            pthread_mutex_lock(&p->mu);
            ch->reading = false;
            /* Leaving with a frame of its own: another call's thread reads
             * now (a reader that got only others' frames reads on). */
            if (w->head != NULL)
                wake_reader(ch, w);
            if (r < 0)
                child_died(iso, p, ch, NULL);
            continue; /* r == 0: the deadline is checked above */
        }
        struct timespec until = {.tv_sec = (time_t)(deadline_us / 1000000),
                                 .tv_nsec = (long)(deadline_us % 1000000) * 1000L};
        w->waiting = true;
        pthread_cond_timedwait(&w->cv, &p->mu, &until);
        w->waiting = false;
    }
}

static int exchange(ah_isolate *iso, proc *p, child *ch, waiter *w, ah_call *call, cJSON *req,
                    long timeout_ms, cJSON **out);

bool ah_isolate_env_kept(const char *entry, const char *extra)
{
    static const char *const names[] = {
        "PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LD_LIBRARY_PATH", "LD_PRELOAD",
        "GLIBC_TUNABLES", "ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS",
        "MSAN_OPTIONS", NULL};
    static const char *const prefixes[] = {"LC_", "VALGRIND_", NULL};
    const char *eq = entry != NULL ? strchr(entry, '=') : NULL;
    if (eq == NULL || eq == entry)
        return false;
    size_t n = (size_t)(eq - entry);
    for (size_t i = 0; names[i] != NULL; i++)
        if (strlen(names[i]) == n && memcmp(entry, names[i], n) == 0)
            return true;
    for (size_t i = 0; prefixes[i] != NULL; i++)
        if (strncmp(entry, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    for (const char *p = extra; p != NULL && *p != '\0';) {
        const char *c = strchr(p, ',');
        size_t len = c != NULL ? (size_t)(c - p) : strlen(p);
        if (len == n && memcmp(entry, p, n) == 0)
            return true;
        p = c != NULL ? c + 1 : NULL;
    }
    return false;
}

/* A child that did not finish starting: reaped (killed unless `gently`). */
static void spawn_abandon(proc *p, child *ch, bool gently)
{
    pthread_mutex_lock(&p->mu);
    pid_t pid = ch->dead ? 0 : ch->pid;
    ch->dead = true;
    ch->pid = 0;
    pthread_mutex_unlock(&p->mu);
    if (ch->fd >= 0) {
        close(ch->fd);
        ch->fd = -1;
    }
    if (pid > 0)
        ch->status = reap_pid(pid, gently);
}

/* One exchange of the start-up (no other call runs in a starting child). */
static int spawn_exchange(ah_isolate *iso, proc *p, child *ch, cJSON *req, long t, cJSON **out)
{
    ah_call_ext ext;
    memset(&ext, 0, sizeof ext);
    ext.call.struct_size = sizeof ext.call;
    ext.call.host = iso->host;
    waiter w;
    memset(&w, 0, sizeof w);
    (void)waiter_add(iso, p, ch, &w, NULL); /* starting: never waits */
    int r = exchange(iso, p, ch, &w, &ext.call, req, t, out);
    waiter_remove(p, ch, &w);
    return r;
}

/* Starts a child and reads the descriptor it describes (loading the plugin:
 * its constructors and entry function run there, not here); the child then
 * waits for spawn_init. The first description is kept (iso->desc). */
static child *spawn_load(ah_isolate *iso, proc *p, char *err, size_t errlen)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return NULL;
    }
    /* The child's end goes to descriptor 3; dup2 onto itself would keep
     * O_CLOEXEC, so make sure it is elsewhere first. */
    int cfd = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
    close(sv[1]);
    if (cfd < 0) {
        snprintf(err, errlen, "fcntl: %s", strerror(errno));
        close(sv[0]);
        return NULL;
    }
    child *ch = calloc(1, sizeof *ch);
    if (ch == NULL) {
        snprintf(err, errlen, "out of memory");
        close(sv[0]);
        close(cfd);
        return NULL;
    }
    ch->fd = sv[0];
    ah_frame_reader_reset(&ch->rd, ch->fd);
    /* The rings, offered: the child says in its descriptor whether it
     * took them (a host of another build, or a relay, may not). Without
     * them, the socket alone, as before. */
    int rfd = ah_ring_make();
    if (rfd >= 0 && (ch->ring = ah_ring_open(rfd, ch->fd, true)) == NULL) {
        close(rfd);
        rfd = -1;
    }
    /* A frame begun and not finished within a call's deadline: the child
     * is stuck or hostile, and no reading thread may wait on it for good.
     * Nor any writing one: a child that takes none of its frames for as
     * long (the ring, or the socket, full) is ended (send_frame). */
    ch->rd.stall_ms = iso->o.call_timeout_ms > INT_MAX ? INT_MAX : (int)iso->o.call_timeout_ms;
    if (ch->ring != NULL)
        ah_ring_set_stall(ch->ring, ch->rd.stall_ms);
    /* Its frames' trees are the daemon's memory: bounded before parsing. */
    ch->rd.nodes_max = AH_FRAME_NODES_MAX;
    struct timeval snd = {.tv_sec = ch->rd.stall_ms / 1000,
                          .tv_usec = (ch->rd.stall_ms % 1000) * 1000};
    (void)setsockopt(ch->fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof snd);
    pthread_mutex_init(&ch->wr, NULL);
    ch->refs = 1;
    ch->next_id = 1;
    ch->handshake = true;
    char mem[32], fdarg[8] = "3";
    snprintf(mem, sizeof mem, "%" PRIu64, iso->o.memory_max);
    char pfdarg[8];
    snprintf(pfdarg, sizeof pfdarg, "%d", iso->plugin_fd >= 0 ? PLUGIN_FD : -1);
    char *argv[] = {iso->prog, "--fd", fdarg, "--plugin", iso->path, "--plugin-fd", pfdarg,
                    "--memory-max", mem, "--name", iso->name,
                    rfd >= 0 ? "--ring" : NULL, RING_FD_ARG, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, cfd, 3);
    if (iso->plugin_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, iso->plugin_fd, PLUGIN_FD);
    if (rfd >= 0)
        posix_spawn_file_actions_adddup2(&fa, rfd, RING_FD);
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    /* A process group of its own: a terminal's Ctrl-C reaches the daemon,
     * which ends its plugin processes itself, not them behind its back. */
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    size_t nenv = 0;
    for (char **e = environ; e != NULL && *e != NULL; e++)
        nenv++;
    char **envp = calloc(nenv + 1, sizeof *envp);
    size_t k = 0;
    for (size_t i = 0; envp != NULL && i < nenv; i++)
        if (ah_isolate_env_kept(environ[i], iso->o.env))
            envp[k++] = environ[i];
    pid_t pid = 0;
    int rc = envp != NULL ? posix_spawn(&pid, iso->prog, &fa, &at, argv, envp) : ENOMEM;
    free(envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(cfd);
    if (rfd >= 0)
        close(rfd); /* mapped here, and in the child */
    if (rc != 0) {
        snprintf(err, errlen, "cannot start %s: %s", iso->prog, strerror(rc));
        child_free(ch);
        return NULL;
    }
    pthread_mutex_lock(&iso->st);
    ch->epoch = ++iso->spawns;
    pthread_mutex_unlock(&iso->st);
    ch->pid = pid;
    /* The child loads the plugin and describes its descriptor. */
    cJSON *desc = NULL;
    long t = iso->o.call_timeout_ms > INIT_TIMEOUT_MIN_MS ? iso->o.call_timeout_ms
                                                          : INIT_TIMEOUT_MIN_MS;
    int r = spawn_exchange(iso, p, ch, NULL, t, &desc);
    if (r != 0) {
        spawn_abandon(p, ch, false);
        if (r == -2)
            snprintf(err, errlen, "loading the plugin did not finish within %ld ms", t);
        else
            describe_death(ch->status, "while loading the plugin (its constructors or entry "
                                       "function)", err, errlen);
        child_free(ch);
        return NULL;
    }
    const char *td = str(desc, "t");
    cJSON *d = cJSON_GetObjectItemCaseSensitive(desc, "d");
    if (td == NULL || strcmp(td, "descriptor") != 0 || !cJSON_IsObject(d)) {
        const char *m = str(desc, "message");
        snprintf(err, errlen, "%s", m != NULL ? m : "the plugin process did not start");
        cJSON_Delete(desc);
        spawn_abandon(p, ch, true);
        child_free(ch);
        return NULL;
    }
    /* The child took the rings: everything after this frame goes through
     * them, both ways. A child that did not: the socket. */
    if (ch->ring != NULL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(desc, "ring"))) {
        if (!ah_frame_reader_ring(&ch->rd, ch->ring)) {
            snprintf(err, errlen, "the plugin process wrote past its descriptor");
            cJSON_Delete(desc);
            spawn_abandon(p, ch, false);
            child_free(ch);
            return NULL;
        }
        ch->ring_on = true;
    } else {
        ah_ring_close(ch->ring);
        ch->ring = NULL;
    }
    if (iso->desc == NULL) {
        iso->desc = cJSON_DetachItemViaPointer(desc, d);
        const cJSON *fns = cJSON_GetObjectItemCaseSensitive(iso->desc, "fns");
        iso->has_open = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(fns, "open"));
    }
    cJSON_Delete(desc);
    return ch;
}

/* Tells a child spawn_load started to run the plugin's init, and waits for
 * it to say it is ready. 0; -1 with err filled and the child freed. */
static int spawn_init(ah_isolate *iso, proc *p, child *ch, char *err, size_t errlen)
{
    cJSON *go = cJSON_CreateObject(), *ready = NULL;
    if (go == NULL || cJSON_AddStringToObject(go, "t", "init") == NULL) {
        cJSON_Delete(go);
        snprintf(err, errlen, "out of memory");
        spawn_abandon(p, ch, false);
        child_free(ch);
        return -1;
    }
    long t = iso->o.call_timeout_ms > INIT_TIMEOUT_MIN_MS ? iso->o.call_timeout_ms
                                                          : INIT_TIMEOUT_MIN_MS;
    int r = spawn_exchange(iso, p, ch, go, t, &ready);
    cJSON_Delete(go);
    if (r != 0) {
        spawn_abandon(p, ch, false);
        if (r == -2)
            snprintf(err, errlen, "init did not finish within %ld ms", t);
        else
            describe_death(ch->status, "in init", err, errlen);
        child_free(ch);
        return -1;
    }
    const char *t_ = str(ready, "t");
    if (t_ == NULL || strcmp(t_, "ready") != 0) {
        const char *m = str(ready, "message");
        snprintf(err, errlen, "%s", m != NULL ? m : "the plugin process did not start");
        cJSON_Delete(ready);
        spawn_abandon(p, ch, true);
        child_free(ch);
        return -1;
    }
    cJSON_Delete(ready);
    pthread_mutex_lock(&p->mu);
    ch->handshake = false;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static child *spawn_child(ah_isolate *iso, proc *p, char *err, size_t errlen)
{
    child *ch = spawn_load(iso, p, err, errlen);
    if (ch == NULL || spawn_init(iso, p, ch, err, errlen) != 0)
        return NULL;
    return ch;
}

/* Makes ch the slot's running child (its reference becomes the slot's).
 * p->mu held. */
static void install(ah_isolate *iso, proc *p, child *ch)
{
    p->cur = ch;
    set_pid(iso, p, ch->pid);
    pthread_mutex_lock(&iso->st);
    if (p->started && !p->recycled)
        iso->restarts++;
    iso->restarting = false;
    pthread_mutex_unlock(&iso->st);
    p->started = true;
    p->recycled = false;
}

/* The slot's running child, with a reference for the caller (child_put),
 * started first when none runs; NULL with the reason described when none
 * may run now (backoff, circuit open, a start that failed). */
static child *child_get(ah_isolate *iso, proc *p, ah_call *call)
{
    pthread_mutex_lock(&p->mu);
    while (p->spawning)
        pthread_cond_wait(&p->cv, &p->mu);
    if (p->cur != NULL) {
        child *ch = p->cur;
        ch->refs++;
        pthread_mutex_unlock(&p->mu);
        return ch;
    }
    int64_t now = ah_mono_ms(), next_start;
    char cause[256];
    bool open;
    pthread_mutex_lock(&iso->st);
    next_start = iso->next_start_ms;
    open = iso->circuit_open;
    snprintf(cause, sizeof cause, "%s", iso->last_cause);
    pthread_mutex_unlock(&iso->st);
    if (now < next_start) {
        pthread_mutex_unlock(&p->mu);
        if (open)
            call->host->fail(call, AH_E_PLUGIN_UNAVAILABLE, 503,
                             "plugin '%s' is unavailable: %d crashes within 60 s (last: %s); "
                             "next try in %" PRId64 " ms",
                             iso->name, CIRCUIT_CRASHES, cause, next_start - now);
        else
            call->host->fail(call, AH_E_PLUGIN_UNAVAILABLE, 503,
                             "plugin '%s' is restarting after a crash (%s); next try in %" PRId64
                             " ms",
                             iso->name, cause, next_start - now);
        return NULL;
    }
    p->spawning = true;
    pthread_mutex_unlock(&p->mu);
    char err[512];
    child *ch = spawn_child(iso, p, err, sizeof err);
    pthread_mutex_lock(&p->mu);
    p->spawning = false;
    pthread_cond_broadcast(&p->cv);
    if (ch == NULL) {
        record_crash(iso, p, "start", NULL, err);
        pthread_mutex_unlock(&p->mu);
        call->host->fail(call, AH_E_PLUGIN_UNAVAILABLE, 503, "plugin '%s' cannot start: %s",
                         iso->name, err);
        return NULL;
    }
    install(iso, p, ch);
    ch->refs++;
    pthread_mutex_unlock(&p->mu);
    return ch;
}

/* A request came back: the child works. Operations (not open) count
 * towards max_calls; the child that reached it leaves the slot (the next
 * call starts a new one) and ends once its last call in flight returned. */
static void call_returned(ah_isolate *iso, proc *p, child *ch, bool op)
{
    pthread_mutex_lock(&iso->st);
    iso->backoff_ms = iso->o.restart_backoff_ms;
    iso->circuit_open = false;
    iso->calls++;
    pthread_mutex_unlock(&iso->st);
    pthread_mutex_lock(&p->mu);
    if (op)
        ch->calls++;
    if (iso->o.max_calls > 0 && ch->calls >= (unsigned long)iso->o.max_calls && p->cur == ch) {
        p->cur = NULL;
        set_pid(iso, p, 0);
        ch->refs--; /* the slot's; the caller holds one */
        p->recycled = true;
        pthread_mutex_lock(&iso->st);
        iso->recycles++;
        pthread_mutex_unlock(&iso->st);
    }
    pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------------------ */
/* The host API, served for the child                                        */
/* ------------------------------------------------------------------------ */

/* The error the daemon's host API described for the call, for the child. */
static void add_failure(cJSON *resp, ah_call *call)
{
    const ah_call_ext *ext = (const ah_call_ext *)call;
    cJSON_AddBoolToObject(resp, "ok", false);
    cJSON_AddStringToObject(resp, "code", ext->err_code[0] ? ext->err_code : AH_E_INTERNAL);
    ah_frame_add_int(resp, "status", ext->err_status);
    cJSON_AddStringToObject(resp, "message", ext->err_msg);
}

static void add_result(cJSON *resp, ah_call *call, ah_result r)
{
    if (r == AH_OK)
        cJSON_AddBoolToObject(resp, "ok", true);
    else
        add_failure(resp, call);
}

static void oauth2_from(const cJSON *o, ah_oauth2_params *p)
{
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->token_url = str(o, "token_url");
    p->client_id = str(o, "client_id");
    p->client_secret = str(o, "client_secret");
    p->scope = str(o, "scope");
    p->refresh_token = str(o, "refresh_token");
}

static void record_from(const cJSON *o, ah_record *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->struct_size = sizeof *rec;
    rec->type = str(o, "type");
    rec->remote_id = str(o, "remote_id");
    rec->updated_at = str(o, "updated_at");
    rec->raw = cJSON_GetObjectItemCaseSensitive(o, "raw");
    rec->fields = cJSON_GetObjectItemCaseSensitive(o, "fields");
    rec->raw_json = str(o, "raw_json");
    rec->fields_json = str(o, "fields_json");
}

/* One field of an emit_records batch's tail (plugin_host.c): a 4-byte
 * big-endian length, the bytes and a NUL; 0xffffffff alone for none. The
 * tail is the plugin process's: every length is checked against what is
 * left, and a field that names a string (type, remote id, time) must hold
 * no NUL. false: malformed. */
static bool tail_field(const unsigned char *t, size_t len, size_t *at, bool string,
                       const char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len - *at < 4)
        return false;
    const unsigned char *h = t + *at;
    uint32_t l = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    *at += 4;
    if (l == 0xffffffffu)
        return true;
    if (len - *at < (size_t)l + 1 || t[*at + l] != '\0')
        return false;
    const char *v = (const char *)t + *at;
    if (string && memchr(v, '\0', l) != NULL)
        return false;
    *out = v;
    *out_len = l;
    *at += (size_t)l + 1;
    return true;
}

/* A host call whose members are not what its function takes: the plugin
 * process's fault, answered to the plugin as its error. */
static ah_result malformed(ah_call *call)
{
    return call->host->fail(call, AH_E_PLUGIN, 500,
                            "the plugin process sent a malformed host call");
}

/* The records of an emit_records batch, in order; the first refused ends
 * it and is the answer. */
static ah_result serve_emit_records(ah_call *call, const cJSON *m, unsigned char *tail,
                                    size_t tail_len)
{
    const ah_host_api *h = call->host;
    long long n = inum(m, "n", -1, 0, EMIT_RECORDS_MAX);
    if (n < 0 || tail == NULL)
        return malformed(call);
    size_t at = 0;
    for (long long i = 0; i < n; i++) {
        ah_record rec;
        memset(&rec, 0, sizeof rec);
        rec.struct_size = sizeof rec;
        size_t skip;
        if (!tail_field(tail, tail_len, &at, true, &rec.type, &skip) ||
            !tail_field(tail, tail_len, &at, true, &rec.remote_id, &skip) ||
            !tail_field(tail, tail_len, &at, true, &rec.updated_at, &skip) ||
            !tail_field(tail, tail_len, &at, false, &rec.raw_json, &rec.raw_json_len) ||
            !tail_field(tail, tail_len, &at, false, &rec.fields_json, &rec.fields_json_len))
            return malformed(call);
        ah_result r = h->emit_record(call, &rec);
        if (r != AH_OK)
            return r;
    }
    if (at != tail_len)
        return malformed(call);
    return AH_OK;
}

/* The response body goes back as the frame's tail (*tail, malloc'd): a
 * page of records is neither escaped into a JSON string here nor
 * unescaped in the plugin process. An empty body stays a member. */
static void serve_http(ah_call *call, const cJSON *m, cJSON *resp, unsigned char **tail,
                       size_t *tail_len)
{
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(m, "req");
    ah_http_request req;
    memset(&req, 0, sizeof req);
    req.struct_size = sizeof req;
    req.method = str(q, "method");
    req.url = str(q, "url");
    req.timeout_ms = (long)inum(q, "timeout_ms", 0, 0, LONG_MAX);
    req.max_attempts = (int)inum(q, "max_attempts", 0, 0, INT_MAX);
    req.bearer = str(q, "bearer");
    req.flags = (unsigned)inum(q, "flags", 0, 0, UINT_MAX);
    req.response_size = sizeof(ah_http_response);
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(q, "headers");
    int nh = cJSON_IsArray(hs) ? cJSON_GetArraySize(hs) : 0;
    const char **headers = nh > 0 ? calloc((size_t)nh + 1, sizeof *headers) : NULL;
    if (headers != NULL) {
        int i = 0;
        const cJSON *h;
        cJSON_ArrayForEach(h, hs) if (cJSON_IsString(h)) headers[i++] = h->valuestring;
        req.headers = headers;
    }
    char *body = NULL;
    size_t blen = 0;
    ah_frame_get_bytes(q, "body", &body, &blen);
    req.body = body;
    req.body_len = blen;
    ah_oauth2_params op;
    const cJSON *o2 = cJSON_GetObjectItemCaseSensitive(q, "oauth2");
    if (cJSON_IsObject(o2)) {
        oauth2_from(o2, &op);
        req.oauth2 = &op;
    }
    ah_http_response r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    ah_result rc = call->host->http(call, &req, &r);
    add_result(resp, call, rc);
    ah_frame_add_int(resp, "status_code", r.status);
    ah_frame_add_int(resp, "attempts", r.attempts);
    ah_frame_add_int(resp, "outcome", r.outcome);
    if (r.content_type != NULL)
        cJSON_AddStringToObject(resp, "content_type", r.content_type);
    if (r.body != NULL && r.body_len > 0 && (*tail = malloc(r.body_len)) != NULL) {
        memcpy(*tail, r.body, r.body_len);
        *tail_len = r.body_len;
        cJSON_AddBoolToObject(resp, "body_tail", true);
    } else if (r.body != NULL) {
        ah_frame_put_bytes(resp, "body", r.body, r.body_len);
    }
    call->host->http_response_free(&r);
    free(headers);
    free(body);
}

/* The connection's plain settings (neither SECRET nor HASHED), as the host
 * API gives them now, as "s": {key: value | null}. They go with a route
 * call and with the connections conn_by_secret gives it, so that the
 * handler's setting() calls for them need no round trip (a route reads
 * several: ERP's create-job three). A call reads its connection's
 * settings as they were when it started in process too (settings_update
 * shows from the next call on, and routes cannot call it). Secret ones
 * still travel only when asked for. */
static void add_settings(const ah_isolate *iso, cJSON *obj, ah_call *call)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(iso->desc, "settings");
    if (call == NULL || call->conn == NULL || !cJSON_IsArray(a))
        return;
    cJSON *s = cJSON_AddObjectToObject(obj, "s");
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        const char *k = str(e, "key");
        long long flags = inum(e, "flags", -1, 0, UINT_MAX);
        if (s == NULL || k == NULL || flags < 0 ||
            ((unsigned)flags & (AH_SETTING_SECRET | AH_SETTING_HASHED)) != 0)
            continue;
        const char *v = call->host->setting(call, k);
        cJSON_AddItemToObject(s, k, v != NULL ? cJSON_CreateString(v) : cJSON_CreateNull());
    }
}

/* The answers setting_lists would give the route about its caller's
 * address, as "sl": {key: [enabled only, with disabled]}, for each list
 * setting it may be asked about (not SECRET, GENERATED or HASHED): the
 * handler's setting_lists(key, its client address, AH_LISTED_NETWORK[ |
 * AH_LISTED_WITH_DISABLED]) is then answered in its process without a
 * round trip (the ERP plugin asks it of every request before it looks at
 * the key). The same answers the daemon would give a moment later; only
 * what the route could ask, about the address it is given anyway. With
 * disabled connections is looked up first: when it is 0 so is the other,
 * else the other stays unknown (null: asked over the socket). Only for the
 * settings a route of the plugin asked about so before (listed_learn): a
 * plugin that never asks costs nothing. */
static void add_listed(ah_isolate *iso, cJSON *req, ah_call *call, const char *ip)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(iso->desc, "settings");
    const ah_host_api *h = call->host;
    unsigned long long asked = atomic_load_explicit(&iso->listed_asked, memory_order_relaxed);
    if (ip == NULL || asked == 0 || !cJSON_IsArray(a) || !AH_HAS(h, setting_lists) ||
        h->setting_lists == NULL)
        return;
    cJSON *sl = NULL;
    const cJSON *e;
    int i = -1;
    cJSON_ArrayForEach(e, a) {
        i++;
        if (i >= 64 || (asked & (1ULL << i)) == 0)
            continue;
        const char *k = str(e, "key");
        long long flags = inum(e, "flags", -1, 0, UINT_MAX);
        if (k == NULL || inum(e, "type", 0, 0, INT_MAX) != AH_SET_LIST || flags < 0 ||
            ((unsigned)flags & (AH_SETTING_SECRET | AH_SETTING_GENERATED | AH_SETTING_HASHED)) != 0)
            continue;
        int with = h->setting_lists(call, k, ip, AH_LISTED_NETWORK | AH_LISTED_WITH_DISABLED);
        if (with < 0)
            continue;
        if (sl == NULL && (sl = cJSON_AddObjectToObject(req, "sl")) == NULL)
            return;
        cJSON *pair = cJSON_CreateArray();
        if (pair == NULL || !cJSON_AddItemToObject(sl, k, pair)) {
            cJSON_Delete(pair);
            return;
        }
        cJSON_AddItemToArray(pair, with == 0 ? ah_frame_int(0) : cJSON_CreateNull());
        cJSON_AddItemToArray(pair, ah_frame_int(with));
    }
}

/* A route asked setting_lists(key, its caller's address, NETWORK[ |
 * WITH_DISABLED]): from now on add_listed answers it with the route. */
static void listed_learn(ah_isolate *iso, const char *key)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(iso->desc, "settings");
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, a) {
        if (i >= 64)
            return;
        const char *k = str(e, "key");
        if (k != NULL && strcmp(k, key) == 0) {
            atomic_fetch_or_explicit(&iso->listed_asked, 1ULL << i, memory_order_relaxed);
            return;
        }
        i++;
    }
}

static ah_result open_in(ah_isolate *iso, proc *p, child *ch, waiter *w, ah_call *call,
                         iso_ctx *ic);

/* A route's round-trip conn_by_secret gave the value of one of the
 * request's headers or query parameters (the plugin's process says which:
 * "from_h" / "from_q"; checked here): the next routes are sent with the
 * connection that header names (presolve). */
static void hint_learn(ah_isolate *iso, const waiter *w, const cJSON *m)
{
    const ah_host_api *h = iso->host;
    const char *key = str(m, "key"), *presented = str(m, "presented");
    const char *name = str(m, "from_h");
    char where = 'h';
    if (name == NULL) {
        name = str(m, "from_q");
        where = 'q';
    }
    if (iso->o.conn_hooks == NULL || iso->has_open || key == NULL || presented == NULL ||
        name == NULL || strlen(key) >= sizeof iso->hint_key ||
        strlen(name) >= sizeof iso->hint_name)
        return;
    const char *v = where == 'h' ? h->http_header(w->ex, name) : h->http_query(w->ex, name);
    if (v == NULL || strcmp(v, presented) != 0)
        return;
    pthread_mutex_lock(&iso->hint_mu);
    iso->hint_set = true;
    iso->hint_where = where;
    snprintf(iso->hint_key, sizeof iso->hint_key, "%s", key);
    snprintf(iso->hint_name, sizeof iso->hint_name, "%s", name);
    pthread_mutex_unlock(&iso->hint_mu);
}

/* Sends the route with the connection its conn_by_secret is expected to
 * name, as "cs" (plugin_host.c conn_presolved): the one the learned header
 * or query parameter's value names now (found: its names and plain
 * settings; none: "ok": false), so that the handler's conn_by_secret
 * is answered in its process. A found connection is kept (w->peeked) until
 * the route ends: the take (conn_take) must find the same. Costs the
 * look-up conn_by_secret makes (a hash of the value, constant-time
 * compare), also for a route that refuses its caller before asking. */
static void presolve(ah_isolate *iso, waiter *w, cJSON *req, ah_call *call,
                     ah_http_exchange *ex)
{
    const ah_isolate_conn_hooks *hk = iso->o.conn_hooks;
    if (hk == NULL || iso->has_open || call->conn != NULL)
        return;
    char key[sizeof iso->hint_key], name[sizeof iso->hint_name], where;
    pthread_mutex_lock(&iso->hint_mu);
    bool set = iso->hint_set;
    where = iso->hint_where;
    memcpy(key, iso->hint_key, sizeof key);
    memcpy(name, iso->hint_name, sizeof name);
    pthread_mutex_unlock(&iso->hint_mu);
    if (!set)
        return;
    const ah_host_api *h = call->host;
    const char *v = where == 'h' ? h->http_header(ex, name) : h->http_query(ex, name);
    if (v == NULL || *v == '\0')
        return;
    cJSON *cs = cJSON_CreateObject();
    if (cs == NULL || !cJSON_AddItemToObject(req, "cs", cs)) {
        cJSON_Delete(cs);
        return;
    }
    cJSON_AddStringToObject(cs, "key", key);
    cJSON_AddStringToObject(cs, where == 'h' ? "h" : "q", name);
    ah_call *x = hk->peek(call, key, v);
    cJSON_AddBoolToObject(cs, "ok", x != NULL);
    if (x == NULL)
        return;
    w->peeked = x;
    if (x->tenant != NULL)
        cJSON_AddStringToObject(cs, "tenant", x->tenant);
    if (x->connection != NULL)
        cJSON_AddStringToObject(cs, "connection", x->connection);
    add_settings(iso, cs, x);
}

/* The plugin's process answered the route's conn_by_secret with the
 * connection sent with the route, and says so one-way ("pre": the call's
 * number it gave it): conn_by_secret runs here as it would have for a
 * round trip (the look-up again, the connection's lock, its open), before
 * anything the handler does with the connection, which comes after in the
 * same stream. It must give the connection peeked: if the connection
 * changed or went away meanwhile, or cannot be had (busy), the route
 * fails with why (503, retryable), its answer and its calls on that
 * connection refused. */
static void conn_take(waiter *w, ah_call *call, const cJSON *m)
{
    const ah_host_api *h = call->host;
    int pre = (int)inum(m, "pre", 0, 0, INT_MAX);
    ah_call *x = NULL;
    bool mine = call == w->rcalls[0] && w->peeked != NULL && w->pre_idx == 0 &&
                pre == w->nrcalls && w->nrcalls < 1 + ROUTE_EXTRA_MAX;
    if (mine) {
        w->pre_idx = pre;
        x = h->conn_by_secret(call, str(m, "key"), str(m, "presented"));
    }
    if (x != NULL)
        w->rcalls[w->nrcalls++] = x; /* released with the route, whatever comes */
    if (x != NULL && x->conn == w->peeked->conn)
        return;
    const ah_call_ext *ext = (const ah_call_ext *)call;
    if (x == NULL && ext->err_code[0]) {
        snprintf(w->take_code, sizeof w->take_code, "%s", ext->err_code);
        snprintf(w->take_msg, sizeof w->take_msg, "%s", ext->err_msg);
        w->take_status = ext->err_status ? ext->err_status : 503;
    } else if (mine) {
        snprintf(w->take_code, sizeof w->take_code, "%s", AH_E_CONNECTION_CHANGED);
        snprintf(w->take_msg, sizeof w->take_msg, "the connection this request's key names "
                 "changed while the request was served; retry");
        w->take_status = 503;
    } else { /* a plugin process that breaks the protocol */
        snprintf(w->take_code, sizeof w->take_code, "%s", AH_E_PLUGIN);
        snprintf(w->take_msg, sizeof w->take_msg, "the plugin took a connection it was not given");
        w->take_status = 500;
    }
    if (w->pre_idx == 0)
        w->pre_idx = pre;
}

/* The route calls of the exchange: conn_by_secret, the request's parts and
 * the answer. Only while w serves a route (w->ex set). */
static void serve_route_host(ah_isolate *iso, proc *p, child *ch, waiter *w, ah_call *call,
                             const char *fn, const cJSON *m, cJSON *resp)
{
    const ah_host_api *h = call->host;
    if (strcmp(fn, "http_header") == 0 || strcmp(fn, "http_query") == 0) {
        const char *name = str(m, "name");
        const char *v = name == NULL       ? NULL
                        : fn[5] == 'h' ? h->http_header(w->ex, name)
                                           : h->http_query(w->ex, name);
        cJSON_AddItemToObject(resp, "v", v != NULL ? cJSON_CreateString(v) : cJSON_CreateNull());
    } else if (w->take_code[0] && strncmp(fn, "http_respond", 12) == 0) {
        /* The route fails with why its connection could not be taken. */
        cJSON_AddBoolToObject(resp, "ok", false);
    } else if (strcmp(fn, "http_respond_json") == 0) {
        cJSON *body = cJSON_DetachItemFromObjectCaseSensitive((cJSON *)m, "body");
        int status = (int)inum(m, "status", 500, 0, 999);
        cJSON_AddBoolToObject(resp, "ok", h->http_respond_json(w->ex, status, body) == AH_OK);
    } else if (strcmp(fn, "http_respond") == 0) {
        char *body = NULL;
        size_t len = 0;
        if (ah_frame_get_bytes(m, "body", &body, &len) != 0) {
            cJSON_AddBoolToObject(resp, "ok", false);
            return;
        }
        int status = (int)inum(m, "status", 500, 0, 999);
        ah_result r = h->http_respond(w->ex, status, str(m, "content_type"),
                                      body != NULL ? body : "", len);
        free(body);
        cJSON_AddBoolToObject(resp, "ok", r == AH_OK);
    } else if (inum(m, "pre", 0, 0, INT_MAX) > 0) {
        conn_take(w, call, m);
    } else { /* conn_by_secret, on the route's own call only */
        ah_call *x = NULL;
        if (call == w->rcalls[0] && w->nrcalls < 1 + ROUTE_EXTRA_MAX) {
            x = h->conn_by_secret(call, str(m, "key"), str(m, "presented"));
            hint_learn(iso, w, m);
        }
        const ah_call_ext *ext = (const ah_call_ext *)call;
        /* Why not, as the host wrote it into the route's own call. */
        if (ext->err_code[0]) {
            cJSON *e = cJSON_AddObjectToObject(resp, "route_err");
            cJSON_AddStringToObject(e, "code", ext->err_code);
            ah_frame_add_int(e, "status", ext->err_status);
            cJSON_AddStringToObject(e, "message", ext->err_msg);
        }
        if (x == NULL) {
            cJSON_AddBoolToObject(resp, "ok", false);
            return;
        }
        int idx = w->nrcalls++;
        w->rcalls[idx] = x;
        cJSON_AddBoolToObject(resp, "ok", true);
        ah_frame_add_int(resp, "c", idx);
        if (x->tenant != NULL)
            cJSON_AddStringToObject(resp, "tenant", x->tenant);
        if (x->connection != NULL)
            cJSON_AddStringToObject(resp, "connection", x->connection);
        /* The connection's context must live in this child: it does when
         * conn_by_secret opened it just now (nested). One an earlier child
         * made, or (processes > 1) another process, is opened again here,
         * nested too (the connection's call lock is held; a context left in
         * another live process is closed when that process ends). */
        iso_ctx *ic = x->conn_ctx;
        pthread_mutex_lock(&p->mu);
        bool stale = ic != NULL && ic->at[p->index].epoch != ch->epoch;
        pthread_mutex_unlock(&p->mu);
        if (stale && open_in(iso, p, ch, w, x, ic) != AH_OK) {
            pthread_mutex_lock(&p->mu);
            ic->at[p->index].epoch = 0; /* opened again by its next route here */
            pthread_mutex_unlock(&p->mu);
        }
        pthread_mutex_lock(&p->mu);
        if (ic != NULL && ic->at[p->index].epoch == ch->epoch)
            cJSON_AddStringToObject(resp, "ctx", ic->at[p->index].handle);
        pthread_mutex_unlock(&p->mu);
        add_settings(iso, resp, x);
    }
}

/* A store_batch: the operations rebuilt from the frame (records as
 * record_put's), run by the daemon's own store_batch, which checks them
 * as it does a plugin's in process; each one's outcome as "r". */
static void serve_store_batch(ah_call *call, const cJSON *m, cJSON *resp)
{
    const ah_host_api *h = call->host;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "ops");
    int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
    if (n < 1 || n > AH_STORE_BATCH_MAX) {
        h->fail(call, AH_E_PLUGIN, 500, "store_batch: 1 to %d operations of "
                "sizeof(ah_store_op) each", AH_STORE_BATCH_MAX);
        add_failure(resp, call);
        return;
    }
    ah_store_op ops[AH_STORE_BATCH_MAX];
    ah_record recs[AH_STORE_BATCH_MAX];
    char ids[AH_STORE_BATCH_MAX][128];
    memset(ops, 0, sizeof ops);
    int i = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, a) {
        ops[i].struct_size = sizeof ops[i];
        ops[i].kind = (uint32_t)inum(o, "k", 0, 0, UINT32_MAX);
        ops[i].flags = (uint32_t)inum(o, "f", 0, 0, UINT32_MAX);
        ops[i].name = str(o, "name");
        ops[i].number_field = str(o, "nf");
        /* Out of range (an op too small for 1.4's fields): refused. */
        ops[i].number_width = (uint32_t)inum(o, "nw", 0, -1, UINT32_MAX);
        const cJSON *rec = cJSON_GetObjectItemCaseSensitive(o, "rec");
        ids[i][0] = '\0';
        if (cJSON_IsObject(rec)) {
            record_from(rec, &recs[i]);
            ops[i].rec = &recs[i];
            ops[i].id_out = ids[i];
            ops[i].id_len = sizeof ids[i];
        }
        i++;
    }
    add_result(resp, call, h->store_batch(call, ops, (size_t)n));
    cJSON *r = cJSON_AddArrayToObject(resp, "r");
    for (i = 0; r != NULL && i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        if (e == NULL || !cJSON_AddItemToArray(r, e)) {
            cJSON_Delete(e);
            break;
        }
        ah_frame_add_int(e, "d", ops[i].done);
        ah_frame_add_int(e, "v", ops[i].value);
        if (ops[i].rec != NULL && ops[i].done == 1)
            cJSON_AddStringToObject(e, "id", ids[i]);
    }
}

/* Serves a host call frame m of call w. iso, p and ch are used for a
 * route's calls only (w->ex set): ah_isolate_serve_host_call passes NULL for
 * them, so keep every use behind that. */
static cJSON *serve_host(ah_isolate *iso, proc *p, child *ch, waiter *w, ah_call *call,
                         const cJSON *m, unsigned char *tail, size_t tail_len,
                         unsigned char **out_tail, size_t *out_tail_len)
{
    const char *fn = str(m, "fn");
    cJSON *resp = cJSON_CreateObject();
    if (resp == NULL)
        return NULL;
    cJSON_AddStringToObject(resp, "t", "host_reply");
    /* A route's host calls name the call they are made on. */
    int c = (int)inum(m, "c", 0, -1, INT_MAX);
    if (w->ex != NULL && w->take_code[0] && c == w->pre_idx) {
        call->host->fail(call, w->take_code, w->take_status, "%s", w->take_msg);
        add_failure(resp, call);
        return resp;
    }
    if (w->ex != NULL && c > 0 && c < w->nrcalls)
        call = w->rcalls[c];
    const ah_host_api *h = call->host;
    if (fn == NULL || (c != 0 && (w->ex == NULL || c < 0 || c >= w->nrcalls))) {
        (void)malformed(call);
        add_failure(resp, call);
    } else if (w->ex != NULL &&
               (strncmp(fn, "http_", 5) == 0 || strcmp(fn, "conn_by_secret") == 0) &&
               strcmp(fn, "http") != 0) {
        serve_route_host(iso, p, ch, w, call, fn, m, resp);
    } else if (strcmp(fn, "setting") == 0) {
        const char *k = str(m, "key");
        const char *v = k != NULL ? h->setting(call, k) : NULL;
        cJSON_AddItemToObject(resp, "v", v != NULL ? cJSON_CreateString(v) : cJSON_CreateNull());
    } else if (strcmp(fn, "http") == 0) {
        serve_http(call, m, resp, out_tail, out_tail_len);
    } else if (strcmp(fn, "oauth2_token") == 0 || strcmp(fn, "oauth2_invalidate") == 0) {
        ah_oauth2_params op;
        oauth2_from(cJSON_GetObjectItemCaseSensitive(m, "p"), &op);
        if (fn[7] == 'i') {
            h->oauth2_invalidate(call, &op);
        } else {
            char tok[AH_OAUTH2_MAX_TOKEN + 1]; /* any token the cache keeps */
            ah_result r = h->oauth2_token(call, &op, tok, sizeof tok);
            add_result(resp, call, r);
            if (r == AH_OK)
                cJSON_AddStringToObject(resp, "token", tok);
            explicit_bzero(tok, sizeof tok);
        }
    } else if (strcmp(fn, "publish") == 0) {
        cJSON *body = cJSON_DetachItemFromObjectCaseSensitive((cJSON *)m, "body");
        const char *topic = str(m, "topic");
        ah_result r = h->publish(call, topic, body);
        add_result(resp, call, r);
        /* One-way (plugin_host.c): the plugin went on without the answer. */
        if (r != AH_OK && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "nr")))
            h->log(call, AH_LOG_WARN, "cannot publish %s: %s (the event is lost)",
                   topic != NULL ? topic : "(no topic)", ((const ah_call_ext *)call)->err_msg);
    } else if (strcmp(fn, "emit_records") == 0) {
        /* A batch of emitted records (plugin_host.c) in the frame's tail. */
        add_result(resp, call, serve_emit_records(call, m, tail, tail_len));
    } else if (strcmp(fn, "emit_record") == 0 || strcmp(fn, "record_put") == 0) {
        ah_record rec;
        record_from(cJSON_GetObjectItemCaseSensitive(m, "rec"), &rec);
        if (fn[0] == 'e') {
            add_result(resp, call, h->emit_record(call, &rec));
        } else {
            char id[128] = "";
            int changed = 0;
            ah_result r = h->record_put(call, &rec, id, sizeof id, &changed);
            add_result(resp, call, r);
            cJSON_AddStringToObject(resp, "id", id);
            ah_frame_add_int(resp, "changed", changed);
        }
    } else if (strcmp(fn, "record_get") == 0 || strcmp(fn, "record_by_id") == 0 ||
               strcmp(fn, "record_find") == 0) {
        cJSON *v;
        if (strcmp(fn, "record_get") == 0)
            v = h->record_get(call, str(m, "type"), str(m, "remote_id"));
        else if (strcmp(fn, "record_by_id") == 0)
            v = h->record_by_id(call, str(m, "id"));
        else
            v = h->record_find(call, str(m, "type"), str(m, "field"), str(m, "value"),
                               (int)inum(m, "nocase", 0, 0, 1), (int)inum(m, "limit", 0, 0, INT_MAX));
        cJSON_AddItemToObject(resp, "v", v != NULL ? v : cJSON_CreateNull());
    } else if (strcmp(fn, "sequence_next") == 0) {
        int64_t v = 0;
        ah_result r = h->sequence_next(call, str(m, "name"), &v);
        add_result(resp, call, r);
        ah_frame_add_int(resp, "v", v);
    } else if (strcmp(fn, "store_batch") == 0) {
        serve_store_batch(call, m, resp);
    } else if (strcmp(fn, "store_ping") == 0) {
        add_result(resp, call, h->store_ping(call));
    } else if (strcmp(fn, "settings_update") == 0) {
        add_result(resp, call,
                   h->settings_update(call, cJSON_GetObjectItemCaseSensitive(m, "changes")));
    } else if (strcmp(fn, "setting_lists") == 0) {
        const char *key = str(m, "key"), *value = str(m, "value");
        unsigned how = (unsigned)inum(m, "how", 0, 0, UINT_MAX);
        int v = h->setting_lists(call, key, value, how);
        ah_frame_add_int(resp, "v", v);
        const char *ip = w->ex != NULL ? h->http_client_ip(w->ex) : NULL;
        if (v >= 0 && key != NULL && value != NULL && ip != NULL && strcmp(ip, value) == 0 &&
            (how & ~(unsigned)AH_LISTED_WITH_DISABLED) == AH_LISTED_NETWORK)
            listed_learn(iso, key);
    } else {
        h->fail(call, AH_E_INTERNAL, 500, "host call '%s' is not served to isolated plugins",
                fn);
        add_failure(resp, call);
    }
    return resp;
}

cJSON *ah_isolate_serve_host_call(ah_call *call, cJSON *m, unsigned char *tail,
                                  size_t tail_len, unsigned char **out_tail,
                                  size_t *out_tail_len)
{
    *out_tail = NULL;
    *out_tail_len = 0;
    /* Not a route's: no exchange, so nothing below touches the process,
     * its child or the plugin's state (serve_route_host, listed_learn). */
    waiter w;
    memset(&w, 0, sizeof w);
    return serve_host(NULL, NULL, NULL, &w, call, m, tail, tail_len, out_tail, out_tail_len);
}

/* In place of a host call's answer no frame can carry (a provider's
 * response of 64 MiB, which the outbound client allows, is one with its
 * members): a failure the plugin is given instead, so that the process and
 * the other calls in it go on. A response's outcome, status and attempts
 * are kept: a write the provider took is still known as sent. */
static cJSON *too_large_reply(const cJSON *resp, bool http, uint64_t id)
{
    cJSON *r = cJSON_CreateObject();
    if (r == NULL || cJSON_AddStringToObject(r, "t", "host_reply") == NULL ||
        add_cid(r, id) != 0) {
        cJSON_Delete(r);
        return NULL;
    }
    cJSON_AddBoolToObject(r, "ok", false);
    cJSON_AddStringToObject(r, "code", http ? AH_E_UPSTREAM : AH_E_INTERNAL);
    ah_frame_add_int(r, "status", http ? 502 : 500);
    cJSON_AddStringToObject(r, "message",
                            http ? "the provider's response is larger than an isolated plugin "
                                   "can be given (64 MiB a frame)"
                                 : "the answer is larger than an isolated plugin can be given "
                                   "(64 MiB a frame)");
    static const char *const kept[] = {"status_code", "attempts", "outcome"};
    for (size_t i = 0; http && i < sizeof kept / sizeof kept[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(resp, kept[i]);
        if (v != NULL)
            cJSON_AddItemToObject(r, kept[i], cJSON_Duplicate(v, false));
    }
    return r;
}

/* Sends `req` (NULL: nothing) as call w's (its id added) and takes w's
 * frames until the answer, serving the child's host API calls and logs of
 * the call meanwhile. The time the child waits for a host call's answer
 * (the daemon serving it: a provider's answer, the store) does not count
 * against timeout_ms; everything else does. 0 with *out; -1 the child is
 * gone; -2 it did not answer in time (it was killed); -3 req is larger than
 * a frame may be (nothing sent, the child goes on). */
static int exchange(ah_isolate *iso, proc *p, child *ch, waiter *w, ah_call *call, cJSON *req,
                    long timeout_ms, cJSON **out)
{
    *out = NULL;
    if (req != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(req, "cid");
        if (add_cid(req, w->id) != 0)
            return -1;
        int s = send_frame(p, ch, req, NULL, 0);
        if (s == AH_FRAME_TOO_LARGE)
            return -3; /* nothing sent: the process goes on */
        if (s != 0) {
            pthread_mutex_lock(&p->mu);
            child_died(iso, p, ch, NULL);
            pthread_mutex_unlock(&p->mu);
            return -1;
        }
    }
    int64_t deadline = ah_mono_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        qframe *f = NULL;
        int r = next_frame(iso, p, ch, w, deadline, &f);
        if (r != 0)
            return r;
        cJSON *m = f->m;
        const char *t = str(m, "t");
        if (strcmp(t, "log") == 0) {
            const char *msg = str(m, "msg");
            int c = (int)inum(m, "c", 0, -1, INT_MAX);
            ah_call *on = w->ex != NULL && c > 0 && c < w->nrcalls ? w->rcalls[c] : call;
            ah_log_level lv =
                (ah_log_level)inum(m, "level", AH_LOG_INFO, AH_LOG_ERROR, AH_LOG_DEBUG);
            on->host->log(on, lv, "%s", msg != NULL ? msg : "");
            frames_free(f);
        } else if (strcmp(t, "host") == 0) {
            unsigned char *rtail = NULL;
            size_t rtail_len = 0;
            int64_t served_from = ah_mono_us();
            cJSON *resp = serve_host(iso, p, ch, w, call, m, f->tail, f->tail_len, &rtail,
                                     &rtail_len);
            /* A one-way call (the route's answer, publish): the child did
             * not wait, and ran on meanwhile. */
            bool oneway = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "nr"));
            const char *fn = str(m, "fn");
            bool http = fn != NULL && strcmp(fn, "http") == 0;
            frames_free(f);
            if (!oneway)
                deadline += ah_mono_us() - served_from;
            if (oneway) {
                cJSON_Delete(resp);
                free(rtail);
                continue;
            }
            int s = resp != NULL && add_cid(resp, w->id) == 0
                        ? send_frame(p, ch, resp, rtail, rtail_len)
                        : -1;
            if (s == AH_FRAME_TOO_LARGE) {
                cJSON *small = too_large_reply(resp, http, w->id);
                s = small != NULL ? send_frame(p, ch, small, NULL, 0) : -1;
                cJSON_Delete(small);
            }
            atomic_fetch_add_explicit(&iso->host_round_trips, 1, memory_order_relaxed);
            cJSON_Delete(resp);
            free(rtail);
            if (s != 0) {
                pthread_mutex_lock(&p->mu);
                child_died(iso, p, ch, NULL);
                pthread_mutex_unlock(&p->mu);
                return -1;
            }
        } else if (!ch->handshake && strcmp(t, "reply") != 0) {
            /* After "ready" a call's frames are logs, host calls and its
             * reply: anything else is no answer to take. */
            frames_free(f);
            broke(p, ch, "a frame of an unknown type");
            pthread_mutex_lock(&p->mu);
            child_died(iso, p, ch, NULL);
            pthread_mutex_unlock(&p->mu);
            return -1;
        } else {
            *out = m;
            f->m = NULL;
            frames_free(f);
            return 0;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The public side                                                           */
/* ------------------------------------------------------------------------ */

/* Messages the child wrote itself (the plugin's, the loader's), given as
 * they are; the daemon's own get "isolated: " before them. */
static const char *start_prefix(const char *why)
{
    static const char *const verbatim[] = {"init failed", "cannot open", "no entry symbol",
                                           "built for ABI", "entry function"};
    for (size_t i = 0; i < sizeof verbatim / sizeof verbatim[0]; i++)
        if (strncmp(why, verbatim[i], strlen(verbatim[i])) == 0)
            return "";
    return "isolated: ";
}


ah_isolate *ah_isolate_start(const char *path, int fd, const ah_isolate_opts *opts,
                             const ah_host_api *host, char *err, size_t errlen)
{
    const char *base = strrchr(path, '/');
    const char *name = base != NULL ? base + 1 : path;
    ah_isolate *iso = calloc(1, sizeof *iso);
    if (iso == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    /* Above the descriptors spawn_load gives the process (3 and
     * PLUGIN_FD), so that its dup2 cannot overwrite the source. */
    iso->plugin_fd = fd < 0 || fd >= 10 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 10);
    if (fd >= 0 && fd < 10)
        close(fd);
    if (fd >= 0 && iso->plugin_fd < 0) {
        snprintf(err, errlen, "%s: fcntl: %s", path, strerror(errno));
        free(iso);
        return NULL;
    }
    iso->o = *opts;
    if (iso->o.call_timeout_ms <= 0)
        iso->o.call_timeout_ms = 30000;
    if (iso->o.restart_backoff_ms <= 0)
        iso->o.restart_backoff_ms = 1000;
    if (iso->o.processes <= 0)
        iso->o.processes = 1;
    iso->backoff_ms = iso->o.restart_backoff_ms;
    iso->host = host;
    atomic_init(&iso->next_proc, 0);
    pthread_mutex_init(&iso->st, NULL);
    pthread_mutex_init(&iso->hint_mu, NULL);
    iso->path = strdup(path);
    iso->name = strdup(name);
    iso->prog = find_prog();
    iso->procs = calloc((size_t)iso->o.processes, sizeof *iso->procs);
    if (iso->path == NULL || iso->name == NULL || iso->procs == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        ah_isolate_free(iso);
        return NULL;
    }
    for (int i = 0; i < iso->o.processes; i++) {
        proc *p = &iso->procs[i];
        pthread_mutex_init(&p->mu, NULL);
        (void)ah_cond_init_mono(&p->cv);
        p->index = i;
        iso->nprocs++;
    }
    if (iso->prog == NULL) {
        snprintf(err, errlen, "%s: isolation = process needs atshub-plugin-host: not found "
                 "(set ATSHUB_PLUGIN_HOST, or install it next to atshub)", path);
        ah_isolate_free(iso);
        return NULL;
    }
    char why[512];
    proc *p0 = &iso->procs[0];
    child *ch = spawn_load(iso, p0, why, sizeof why);
    if (ch == NULL) {
        snprintf(err, errlen, "%s: %s%s", path, start_prefix(why), why);
        ah_isolate_free(iso);
        return NULL;
    }
    /* Loaded, not yet initialised: ah_isolate_run says init. */
    p0->cur = ch;
    set_pid(iso, p0, ch->pid);
    return iso;
}

const cJSON *ah_isolate_descriptor(const ah_isolate *iso)
{
    return iso->desc;
}

int ah_isolate_run(ah_isolate *iso, const char *name, char *err, size_t errlen)
{
    char *n = strdup(name);
    if (n == NULL) {
        snprintf(err, errlen, "%s: out of memory", iso->path);
        return -1;
    }
    free(iso->name);
    iso->name = n;
    for (int i = 0; i < iso->nprocs; i++) {
        char why[512];
        proc *p = &iso->procs[i];
        child *ch = NULL;
        if (i == 0) {
            ch = p->cur;
            p->cur = NULL;
            set_pid(iso, p, 0);
            if (ch == NULL || spawn_init(iso, p, ch, why, sizeof why) != 0)
                ch = NULL;
        } else {
            ch = spawn_child(iso, p, why, sizeof why);
        }
        if (ch == NULL) {
            snprintf(err, errlen, "%s: %s%s", iso->path, start_prefix(why), why);
            return -1;
        }
        pthread_mutex_lock(&p->mu);
        install(iso, p, ch);
        pthread_mutex_unlock(&p->mu);
    }
    return 0;
}

void ah_isolate_free(ah_isolate *iso)
{
    if (iso == NULL)
        return;
    for (int i = 0; i < iso->nprocs; i++) {
        proc *p = &iso->procs[i];
        pthread_mutex_lock(&p->mu);
        child *ch = p->cur;
        p->cur = NULL;
        pthread_mutex_unlock(&p->mu);
        if (ch != NULL)
            child_put(p, ch); /* no call is in flight any more: the last one */
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
    }
    pthread_mutex_destroy(&iso->st);
    pthread_mutex_destroy(&iso->hint_mu);
    cJSON_Delete(iso->desc);
    free(iso->procs);
    free(iso->path);
    free(iso->name);
    free(iso->prog);
    if (iso->plugin_fd >= 0)
        close(iso->plugin_fd);
    free(iso);
}

static void add_call_fields(cJSON *req, const ah_call *call)
{
    if (call->tenant != NULL)
        cJSON_AddStringToObject(req, "tenant", call->tenant);
    if (call->connection != NULL)
        cJSON_AddStringToObject(req, "connection", call->connection);
    if (call->topic != NULL)
        cJSON_AddStringToObject(req, "topic", call->topic);
    if (call->correlation_id != NULL)
        cJSON_AddStringToObject(req, "correlation_id", call->correlation_id);
}

/* Sends one request of call w and reads its answer; a lost child is
 * described. AH_OK with *ans when the child answered (which may be a
 * plugin error). */
static ah_result round_trip(ah_isolate *iso, proc *p, child *ch, waiter *w, ah_call *call,
                            cJSON *req, bool op, cJSON **ans)
{
    int r = exchange(iso, p, ch, w, call, req, iso->o.call_timeout_ms, ans);
    if (r == -3)
        return call->host->fail(call, AH_E_INVALID, 413, "the request for plugin '%s' is larger "
                                "than an isolated plugin can be given (64 MiB a frame)",
                                iso->name);
    if (r == -2)
        return call->host->fail(call, AH_E_TIMEOUT, 504, "plugin '%s' did not answer %s "
                                "within %ld ms; its process was killed and restarts",
                                iso->name, call->topic != NULL ? call->topic : "the call",
                                iso->o.call_timeout_ms);
    if (r != 0) {
        char cause[256];
        pthread_mutex_lock(&p->mu);
        snprintf(cause, sizeof cause, "%s", ch->cause[0] ? ch->cause : "connection lost");
        pthread_mutex_unlock(&p->mu);
        return call->host->fail(call, AH_E_PLUGIN_CRASHED, 503,
                                "plugin '%s' crashed during %s (%s); it restarts, retry later",
                                iso->name, call->topic != NULL ? call->topic : "the call",
                                cause);
    }
    call_returned(iso, p, ch, op);
    return AH_OK;
}

/* The plugin's own failure, as the child reported it. */
static ah_result plugin_failed(ah_call *call, const cJSON *ans)
{
    const char *code = str(ans, "code"), *msg = str(ans, "message");
    int status = (int)inum(ans, "status", 0, 0, 999);
    return call->host->fail(call, code != NULL ? code : AH_E_PLUGIN, status,
                            "%s", msg != NULL ? msg : "the plugin failed without a reason");
}

static bool answered_ok(const cJSON *ans)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "ok"));
}

/* open() in child ch as (part of) call w; fills ic's slot for p. */
static ah_result open_in(ah_isolate *iso, proc *p, child *ch, waiter *w, ah_call *call,
                         iso_ctx *ic)
{
    cJSON *req = cJSON_CreateObject();
    if (req == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 500, "out of memory");
    cJSON_AddStringToObject(req, "t", "open");
    add_call_fields(req, call);
    cJSON *ans = NULL;
    ah_result r = round_trip(iso, p, ch, w, call, req, false, &ans);
    cJSON_Delete(req);
    if (r != AH_OK)
        return r;
    if (!answered_ok(ans)) {
        r = plugin_failed(call, ans);
    } else {
        const char *h = str(ans, "ctx");
        pthread_mutex_lock(&p->mu);
        snprintf(ic->at[p->index].handle, sizeof ic->at[p->index].handle, "%s",
                 h != NULL ? h : "0");
        ic->at[p->index].epoch = ch->epoch;
        pthread_mutex_unlock(&p->mu);
    }
    cJSON_Delete(ans);
    return r;
}

/* open() in ch as a call of its own. */
static ah_result open_call(ah_isolate *iso, proc *p, child *ch, ah_call *call, iso_ctx *ic)
{
    waiter w;
    memset(&w, 0, sizeof w);
    if (waiter_add(iso, p, ch, &w, call) != 0)
        return AH_ERR;
    ah_result r = open_in(iso, p, ch, &w, call, ic);
    waiter_remove(p, ch, &w);
    return r;
}

/* The process for a new connection, or for a call without a context. */
static proc *next_proc(ah_isolate *iso)
{
    unsigned n = atomic_fetch_add(&iso->next_proc, 1);
    return &iso->procs[n % (unsigned)iso->nprocs];
}

ah_result ah_isolate_open(ah_isolate *iso, ah_call *call, void **conn_ctx)
{
    *conn_ctx = NULL;
    iso_ctx *ic = calloc(1, sizeof *ic + (size_t)iso->nprocs * sizeof ic->at[0]);
    if (ic == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 500, "out of memory");
    /* The connection stays with this process: its context lives there. */
    ah_result r;
    if (tl_iso == iso && tl_child != NULL) {
        /* conn_by_secret inside a route this thread runs: open it in the
         * route's child, as part of the route's call. */
        ic->proc = tl_proc->index;
        r = open_in(iso, tl_proc, tl_child, tl_waiter, call, ic);
    } else {
        proc *p = next_proc(iso);
        ic->proc = p->index;
        child *ch = child_get(iso, p, call);
        r = ch != NULL ? open_call(iso, p, ch, call, ic) : AH_ERR;
        if (ch != NULL)
            child_put(p, ch);
    }
    if (r != AH_OK) {
        free(ic);
        return r;
    }
    *conn_ctx = ic;
    return AH_OK;
}

void ah_isolate_close(ah_isolate *iso, void *conn_ctx)
{
    iso_ctx *ic = conn_ctx;
    if (ic == NULL)
        return;
    if (tl_iso == iso) {
        /* Released by this thread in the middle of a route it serves (a
         * connection conn_by_secret found went away meanwhile): the route
         * may still use that context in its process; no close goes now:
         * the contexts are closed when the processes end. */
        free(ic);
        return;
    }
    for (int i = 0; i < iso->nprocs; i++) {
        proc *p = &iso->procs[i];
        pthread_mutex_lock(&p->mu);
        child *ch = p->cur;
        bool send = ch != NULL && !ch->dead && ic->at[i].epoch != 0 &&
                    ic->at[i].epoch == ch->epoch;
        if (send)
            ch->refs++;
        pthread_mutex_unlock(&p->mu);
        if (!send)
            continue;
        cJSON *req = cJSON_CreateObject();
        if (req != NULL) {
            cJSON_AddStringToObject(req, "t", "close");
            cJSON_AddStringToObject(req, "ctx", ic->at[i].handle);
            /* No answer: a close that crashes the child shows at the next
             * call. A send that failed (the child gone, or taking no
             * frames: a frame may be cut short in its stream) ends it. */
            if (send_frame(p, ch, req, NULL, 0) == -1) {
                pthread_mutex_lock(&p->mu);
                child_died(iso, p, ch, NULL);
                pthread_mutex_unlock(&p->mu);
            }
            cJSON_Delete(req);
        }
        child_put(p, ch);
    }
    free(ic);
}

/* The connection's process (any for a call without a context) and its
 * running child (a reference), with the context open in it; NULL (failure
 * described) when there is none. */
static child *child_for(ah_isolate *iso, ah_call *call, proc **pp)
{
    iso_ctx *ic = call->conn_ctx;
    proc *p = ic != NULL ? &iso->procs[ic->proc] : next_proc(iso);
    *pp = p;
    child *ch = child_get(iso, p, call);
    if (ch == NULL)
        return NULL;
    /* A context made by an earlier child died with it: open it again. */
    pthread_mutex_lock(&p->mu);
    bool stale = ic != NULL && ic->at[p->index].epoch != ch->epoch;
    pthread_mutex_unlock(&p->mu);
    if (stale && open_call(iso, p, ch, call, ic) != AH_OK) {
        child_put(p, ch);
        return NULL;
    }
    return ch;
}

/* The context handle of the call's connection in p ("0": none). */
static void add_ctx(cJSON *req, proc *p, const iso_ctx *ic)
{
    char h[24] = "0";
    if (ic != NULL) {
        pthread_mutex_lock(&p->mu);
        snprintf(h, sizeof h, "%s", ic->at[p->index].handle);
        pthread_mutex_unlock(&p->mu);
    }
    cJSON_AddStringToObject(req, "ctx", h);
}

/* An operation ("call"), the handler of subscription `sub` ("event") or the
 * settle function of write declaration `sub` ("settle") in the connection's
 * process. */
static ah_result run_in_child(ah_isolate *iso, ah_call *call, const char *kind, int sub,
                              const char *event, const cJSON *body, cJSON **reply)
{
    *reply = NULL;
    proc *p;
    child *ch = child_for(iso, call, &p);
    if (ch == NULL)
        return AH_ERR;
    cJSON *req = cJSON_CreateObject();
    if (req == NULL) {
        child_put(p, ch);
        return call->host->fail(call, AH_E_INTERNAL, 500, "out of memory");
    }
    cJSON_AddStringToObject(req, "t", kind);
    add_call_fields(req, call);
    if (sub >= 0)
        ah_frame_add_int(req, "sub", sub);
    if (event != NULL)
        cJSON_AddStringToObject(req, "event", event);
    add_ctx(req, p, call->conn_ctx);
    cJSON_AddItemReferenceToObject(req, "body", (cJSON *)body);
    waiter w;
    memset(&w, 0, sizeof w);
    if (waiter_add(iso, p, ch, &w, call) != 0) {
        child_put(p, ch);
        cJSON_Delete(req);
        return AH_ERR;
    }
    cJSON *ans = NULL;
    ah_result r = round_trip(iso, p, ch, &w, call, req, true, &ans);
    waiter_remove(p, ch, &w);
    child_put(p, ch);
    cJSON_Delete(req);
    if (r != AH_OK)
        return r;
    if (answered_ok(ans)) {
        *reply = cJSON_DetachItemFromObjectCaseSensitive(ans, "body");
    } else {
        r = plugin_failed(call, ans);
    }
    cJSON_Delete(ans);
    return r;
}

/* One header or query parameter as [name, value | null]. */
static bool add_pair(void *arg, const char *name, const char *value)
{
    cJSON *pair = cJSON_CreateArray();
    if (pair == NULL || !cJSON_AddItemToArray(arg, pair))
        return cJSON_Delete(pair), false;
    cJSON_AddItemToArray(pair, cJSON_CreateString(name != NULL ? name : ""));
    cJSON_AddItemToArray(pair, value != NULL ? cJSON_CreateString(value) : cJSON_CreateNull());
    return true;
}

ah_result ah_isolate_route(ah_isolate *iso, ah_call *call, int index, ah_http_exchange *ex)
{
    const ah_host_api *h = call->host;
    proc *p;
    child *ch = child_for(iso, call, &p);
    if (ch == NULL)
        return AH_ERR;
    cJSON *req = cJSON_CreateObject();
    if (req == NULL) {
        child_put(p, ch);
        return h->fail(call, AH_E_INTERNAL, 500, "out of memory");
    }
    /* The request goes with the call: its line, the caller, the headers,
     * the query parameters (both in the order received: the child looks
     * them up as the server does, first match, names case-insensitive)
     * and the body. It is the plugin's own route's request, all of which
     * the handler could read in process. */
    cJSON_AddStringToObject(req, "t", "route");
    add_call_fields(req, call);
    ah_frame_add_int(req, "route", index);
    add_ctx(req, p, call->conn_ctx);
    add_settings(iso, req, call);
    const char *v;
    if ((v = h->http_method(ex)) != NULL)
        cJSON_AddStringToObject(req, "method", v);
    if ((v = h->http_path(ex)) != NULL)
        cJSON_AddStringToObject(req, "path", v);
    if ((v = h->http_client_ip(ex)) != NULL)
        cJSON_AddStringToObject(req, "client_ip", v);
    add_listed(iso, req, call, v);
    cJSON *hdr = cJSON_AddArrayToObject(req, "hdr"), *qry = cJSON_AddArrayToObject(req, "qry");
    if (hdr != NULL)
        ah_ex_each(ex, false, add_pair, hdr);
    if (qry != NULL)
        ah_ex_each(ex, true, add_pair, qry);
    waiter w;
    memset(&w, 0, sizeof w);
    presolve(iso, &w, req, call, ex);
    size_t blen = 0;
    const char *body = h->http_body(ex, &blen);
    if (body != NULL && ah_frame_put_bytes(req, "body", body, blen) != 0) {
        cJSON_Delete(req);
        child_put(p, ch);
        if (w.peeked != NULL)
            iso->o.conn_hooks->unpeek(w.peeked);
        return h->fail(call, AH_E_INTERNAL, 500, "out of memory");
    }
    w.ex = ex;
    w.rcalls[0] = call;
    w.nrcalls = 1;
    if (waiter_add(iso, p, ch, &w, call) != 0) {
        cJSON_Delete(req);
        child_put(p, ch);
        if (w.peeked != NULL)
            iso->o.conn_hooks->unpeek(w.peeked);
        return AH_ERR;
    }
    tl_iso = iso;
    tl_proc = p;
    tl_child = ch;
    tl_waiter = &w;
    cJSON *ans = NULL;
    ah_result r = round_trip(iso, p, ch, &w, call, req, true, &ans);
    tl_iso = NULL;
    tl_proc = NULL;
    tl_child = NULL;
    tl_waiter = NULL;
    waiter_remove(p, ch, &w);
    child_put(p, ch);
    cJSON_Delete(req);
    if (w.peeked != NULL)
        iso->o.conn_hooks->unpeek(w.peeked);
    if (r == AH_OK && !answered_ok(ans))
        r = plugin_failed(call, ans);
    cJSON_Delete(ans);
    if (w.take_code[0] && ah_ex_status(ex) == 0)
        r = h->fail(call, w.take_code, w.take_status, "%s", w.take_msg);
    return r;
}

ah_result ah_isolate_op(ah_isolate *iso, ah_call *call, const cJSON *body, cJSON **reply)
{
    return run_in_child(iso, call, "call", -1, NULL, body, reply);
}

ah_result ah_isolate_settle(ah_isolate *iso, ah_call *call, int index, const cJSON *body,
                            cJSON **reply)
{
    return run_in_child(iso, call, "settle", index, NULL, body, reply);
}

ah_result ah_isolate_event(ah_isolate *iso, ah_call *call, int index, const char *topic,
                           const cJSON *body)
{
    cJSON *reply = NULL;
    ah_result r = run_in_child(iso, call, "event", index, topic, body, &reply);
    cJSON_Delete(reply);
    return r;
}

cJSON *ah_isolate_json(ah_isolate *iso)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    pthread_mutex_lock(&iso->st);
    cJSON *pids = cJSON_CreateArray();
    pid_t first = 0;
    for (int i = 0; i < iso->nprocs; i++) {
        if (iso->procs[i].pid > 0) {
            if (first == 0)
                first = iso->procs[i].pid;
            cJSON_AddItemToArray(pids, cJSON_CreateNumber(iso->procs[i].pid));
        }
    }
    const char *state = first > 0           ? "running"
                        : iso->circuit_open ? "circuit_open"
                        : iso->restarting   ? "restarting"
                                            : "stopped";
    if (first > 0)
        cJSON_AddNumberToObject(o, "pid", first);
    else
        cJSON_AddNullToObject(o, "pid");
    cJSON_AddItemToObject(o, "pids", pids);
    cJSON_AddNumberToObject(o, "processes", iso->nprocs);
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddNumberToObject(o, "restarts", (double)iso->restarts);
    cJSON_AddNumberToObject(o, "recycles", (double)iso->recycles);
    cJSON_AddNumberToObject(o, "crashes", (double)iso->crashes);
    cJSON_AddNumberToObject(o, "calls", (double)iso->calls);
    cJSON_AddNumberToObject(o, "host_round_trips",
                            (double)atomic_load_explicit(&iso->host_round_trips,
                                                         memory_order_relaxed));
    cJSON_AddNumberToObject(o, "memory_max", (double)iso->o.memory_max);
    cJSON_AddNumberToObject(o, "call_timeout_ms", (double)iso->o.call_timeout_ms);
    cJSON_AddNumberToObject(o, "max_calls", (double)iso->o.max_calls);
    if (iso->crashes == 0) {
        cJSON_AddNullToObject(o, "last_crash");
    } else {
        cJSON *c = cJSON_AddObjectToObject(o, "last_crash");
        cJSON_AddStringToObject(c, "cause", iso->last_cause);
        cJSON_AddStringToObject(c, "kind", iso->last_kind);
        if (iso->last_signal[0])
            cJSON_AddStringToObject(c, "signal", iso->last_signal);
        else
            cJSON_AddNullToObject(c, "signal");
        cJSON_AddNumberToObject(c, "at", (double)iso->last_at);
    }
    pthread_mutex_unlock(&iso->st);
    return o;
}

void ah_isolate_watch(ah_isolate *iso)
{
    for (int i = 0; iso != NULL && i < iso->nprocs; i++) {
        proc *p = &iso->procs[i];
        /* Under the slot's lock, without a reference of its own (the
         * slot's keeps the child; both looks below never wait): a child
         * recycled meanwhile is never ended on this thread. */
        pthread_mutex_lock(&p->mu);
        child *ch = p->cur;
        bool ended = false;
        if (ch != NULL && !ch->dead && !ch->handshake && !ch->reading && ch->waiters == NULL) {
            /* An idle process sends nothing: its socket readable is its
             * end (or a frame for no call, which the next call's read
             * refuses). */
            struct pollfd pf = {.fd = ch->fd, .events = POLLIN};
            char b;
            ended = poll(&pf, 1, 0) == 1 &&
                    ((pf.revents & (POLLHUP | POLLERR)) != 0 ||
                     recv(ch->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0);
            if (ended) {
                /* A thread of its own that ran out of memory said so
                 * before the process died: read that, the frame alone. */
                char f[64];
                ssize_t n = recv(ch->fd, f, sizeof f, MSG_PEEK | MSG_DONTWAIT);
                /* (On the rings, after the bells it was rung with.) */
                if (ch->ring_on ? n > 0 && says_oom(f, (size_t)n)
                                : n == (ssize_t)sizeof AH_FRAME_OOM - 1 &&
                                      memcmp(f, AH_FRAME_OOM, sizeof AH_FRAME_OOM - 1) == 0)
                    ch->oom_noted = true;
                ch->refs++; /* child_died drops the slot's */
                child_died(iso, p, ch, NULL);
            }
        }
        pthread_mutex_unlock(&p->mu);
        if (ended)
            child_put(p, ch); /* reaped already: its free waits on nothing */
    }
}

void ah_isolate_counts(ah_isolate *iso, unsigned long *crashes, unsigned long *restarts)
{
    pthread_mutex_lock(&iso->st);
    *crashes = iso->crashes;
    *restarts = iso->restarts;
    pthread_mutex_unlock(&iso->st);
}

