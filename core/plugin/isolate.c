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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "httpd.h"
#include "isolate.h"
#include "registry.h"

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
 * read and written only under procs[i].mu. */
typedef struct iso_slot {
    uint64_t epoch;  /* the child that opened it; 0: none */
    char handle[24]; /* the child's context, as it named it */
} iso_slot;

typedef struct iso_ctx {
    int proc;        /* the process slot the connection is pinned to */
    iso_slot at[];   /* ah_isolate.nprocs of them */
} iso_ctx;

/* One plugin process; a plugin has opts.processes of them. */
typedef struct proc {
    pthread_mutex_t mu; /* one call at a time; guards the child and its socket */
    int index;          /* in ah_isolate.procs */
    int fd;             /* -1 when no child runs */
    ah_frame_reader rd; /* frames from the child (fd) */
    uint64_t epoch;     /* the current child's number (unique in the plugin) */
    bool started;       /* a child ran in this slot before */
    bool oom_noted;     /* the child said it died at its memory limit */
    bool recycled;      /* the last child was ended after max_calls */
    unsigned long calls_since_spawn;
    pid_t pid;          /* 0 when no child runs; guarded by ah_isolate.st */
    /* While the child serves an inbound route (ah_isolate_route): its
     * exchange, and the calls its host API calls may name ("c": 0 the
     * route's own, 1.. the connections conn_by_secret gave it). */
    ah_http_exchange *ex;
    ah_call *rcalls[1 + ROUTE_EXTRA_MAX];
    int nrcalls;
} proc;

/* The route this thread is serving in a child, with that child's lock held:
 * a connection conn_by_secret opens meanwhile is opened in the same child
 * (its context must live where the route runs), nested in the route's
 * exchange, without taking the lock again. */
static _Thread_local struct ah_isolate *tl_iso;
static _Thread_local proc *tl_proc;

struct ah_isolate {
    char *path, *name, *prog;
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
    char last_cause[256];
    char last_kind[16];
    char last_signal[16];
    time_t last_at;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

static pid_t get_pid(ah_isolate *iso, proc *p)
{
    pthread_mutex_lock(&iso->st);
    pid_t pid = p->pid;
    pthread_mutex_unlock(&iso->st);
    return pid;
}

/* Reaps the child (killed first unless `gently`: then it gets 2 s to end on
 * its own after its socket closed) and forgets it. Returns its wait status. */
static int reap(ah_isolate *iso, proc *p, bool gently)
{
    pid_t pid = get_pid(iso, p);
    int status = 0;
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    ah_frame_reader_reset(&p->rd, -1); /* nothing of the dead child is read */
    if (pid <= 0)
        return 0;
    if (gently) {
        for (int i = 0; i < 200; i++) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid || (r < 0 && errno != EINTR)) {
                set_pid(iso, p, 0);
                return status;
            }
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    /* SIGKILL does not change how an exiting or dead child ended. */
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    set_pid(iso, p, 0);
    return status;
}

static int exchange(ah_isolate *iso, proc *p, ah_call *call, const cJSON *req,
                    long timeout_ms, cJSON **out);

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

/* Starts a child and reads the descriptor it describes (loading the plugin:
 * its constructors and entry function run there, not here); the child then
 * waits for spawn_init. The first description is kept (iso->desc). */
static int spawn_load(ah_isolate *iso, proc *p, char *err, size_t errlen)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return -1;
    }
    /* The child's end goes to descriptor 3; dup2 onto itself would keep
     * O_CLOEXEC, so make sure it is elsewhere first. */
    int cfd = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
    close(sv[1]);
    if (cfd < 0) {
        snprintf(err, errlen, "fcntl: %s", strerror(errno));
        close(sv[0]);
        return -1;
    }
    char mem[32], fdarg[8] = "3";
    snprintf(mem, sizeof mem, "%" PRIu64, iso->o.memory_max);
    char *argv[] = {iso->prog, "--fd", fdarg, "--plugin", iso->path, "--memory-max", mem,
                    "--name", iso->name, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, cfd, 3);
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
    pid_t pid = 0;
    int rc = posix_spawn(&pid, iso->prog, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(cfd);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start %s: %s", iso->prog, strerror(rc));
        close(sv[0]);
        return -1;
    }
    p->fd = sv[0];
    ah_frame_reader_reset(&p->rd, p->fd);
    p->oom_noted = false;
    p->calls_since_spawn = 0;
    pthread_mutex_lock(&iso->st);
    p->epoch = ++iso->spawns;
    p->pid = pid;
    pthread_mutex_unlock(&iso->st);
    /* The child loads the plugin and describes its descriptor. */
    ah_call_ext ext;
    memset(&ext, 0, sizeof ext);
    ext.call.struct_size = sizeof ext.call;
    ext.call.host = iso->host;
    cJSON *desc = NULL;
    long t = iso->o.call_timeout_ms > INIT_TIMEOUT_MIN_MS ? iso->o.call_timeout_ms
                                                          : INIT_TIMEOUT_MIN_MS;
    int r = exchange(iso, p, &ext.call, NULL, t, &desc);
    if (r != 0) {
        int status = reap(iso, p, false);
        if (r == -2)
            snprintf(err, errlen, "loading the plugin did not finish within %ld ms", t);
        else
            describe_death(status, "while loading the plugin (its constructors or entry "
                                   "function)", err, errlen);
        return -1;
    }
    const char *td = str(desc, "t");
    cJSON *d = cJSON_GetObjectItemCaseSensitive(desc, "d");
    if (td == NULL || strcmp(td, "descriptor") != 0 || !cJSON_IsObject(d)) {
        const char *m = str(desc, "message");
        snprintf(err, errlen, "%s", m != NULL ? m : "the plugin process did not start");
        cJSON_Delete(desc);
        reap(iso, p, true);
        return -1;
    }
    if (iso->desc == NULL)
        iso->desc = cJSON_DetachItemViaPointer(desc, d);
    cJSON_Delete(desc);
    return 0;
}

/* Tells a child spawn_load started to run the plugin's init, and waits for
 * it to say it is ready. */
static int spawn_init(ah_isolate *iso, proc *p, char *err, size_t errlen)
{
    ah_call_ext ext;
    memset(&ext, 0, sizeof ext);
    ext.call.struct_size = sizeof ext.call;
    ext.call.host = iso->host;
    cJSON *go = cJSON_CreateObject(), *ready = NULL;
    if (go == NULL || cJSON_AddStringToObject(go, "t", "init") == NULL) {
        cJSON_Delete(go);
        snprintf(err, errlen, "out of memory");
        reap(iso, p, false);
        return -1;
    }
    long t = iso->o.call_timeout_ms > INIT_TIMEOUT_MIN_MS ? iso->o.call_timeout_ms
                                                          : INIT_TIMEOUT_MIN_MS;
    int r = exchange(iso, p, &ext.call, go, t, &ready);
    cJSON_Delete(go);
    if (r != 0) {
        int status = reap(iso, p, false);
        if (r == -2)
            snprintf(err, errlen, "init did not finish within %ld ms", t);
        else
            describe_death(status, "in init", err, errlen);
        return -1;
    }
    const char *t_ = str(ready, "t");
    if (t_ == NULL || strcmp(t_, "ready") != 0) {
        const char *m = str(ready, "message");
        snprintf(err, errlen, "%s", m != NULL ? m : "the plugin process did not start");
        cJSON_Delete(ready);
        reap(iso, p, true);
        return -1;
    }
    cJSON_Delete(ready);
    return 0;
}

static int spawn_child(ah_isolate *iso, proc *p, char *err, size_t errlen)
{
    if (spawn_load(iso, p, err, errlen) != 0)
        return -1;
    return spawn_init(iso, p, err, errlen);
}

/* ------------------------------------------------------------------------ */
/* Crashes                                                                   */
/* ------------------------------------------------------------------------ */

static void record_crash(ah_isolate *iso, proc *p, const char *kind, const char *sig,
                         const char *cause)
{
    int64_t now = mono_ms();
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

/* The child is gone or must go: reap it, say why, describe it to the call. */
static ah_result child_lost(ah_isolate *iso, proc *p, ah_call *call, bool timed_out)
{
    pid_t pid = get_pid(iso, p);
    int status = reap(iso, p, false);
    char cause[256], signame[16] = "";
    const char *kind;
    if (timed_out) {
        kind = "timeout";
        snprintf(cause, sizeof cause, "timeout: no answer within %ld ms (process %d killed)",
                 iso->o.call_timeout_ms, (int)pid);
    } else {
        if (WIFSIGNALED(status)) {
            const char *ab = sigabbrev_np(WTERMSIG(status));
            snprintf(signame, sizeof signame, "SIG%s", ab != NULL ? ab : "?");
        }
        if (p->oom_noted) {
            kind = "memory";
            snprintf(cause, sizeof cause, "memory: the process reached memory_max (%" PRIu64
                     " MiB)%s%s", iso->o.memory_max >> 20, signame[0] ? ", " : "", signame);
        } else if (WIFSIGNALED(status)) {
            kind = "signal";
            snprintf(cause, sizeof cause, "signal %s", signame);
        } else {
            kind = "exit";
            snprintf(cause, sizeof cause, "exit status %d",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
    }
    record_crash(iso, p, kind, signame[0] ? signame : NULL, cause);
    if (timed_out)
        return call->host->fail(call, AH_E_TIMEOUT, 504, "plugin '%s' did not answer %s "
                                "within %ld ms; its process was killed and restarts",
                                iso->name, call->topic != NULL ? call->topic : "the call",
                                iso->o.call_timeout_ms);
    return call->host->fail(call, AH_E_PLUGIN_CRASHED, 503,
                            "plugin '%s' crashed during %s (%s); it restarts, retry later",
                            iso->name, call->topic != NULL ? call->topic : "the call", cause);
}

/* Makes sure a child runs, or describes why none may now. */
static int ensure_running(ah_isolate *iso, proc *p, ah_call *call)
{
    if (p->fd >= 0)
        return 0;
    int64_t now = mono_ms(), next_start;
    char cause[256];
    bool open;
    pthread_mutex_lock(&iso->st);
    next_start = iso->next_start_ms;
    open = iso->circuit_open;
    snprintf(cause, sizeof cause, "%s", iso->last_cause);
    pthread_mutex_unlock(&iso->st);
    if (now < next_start) {
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
        return -1;
    }
    char err[512];
    if (spawn_child(iso, p, err, sizeof err) != 0) {
        record_crash(iso, p, "start", NULL, err);
        call->host->fail(call, AH_E_PLUGIN_UNAVAILABLE, 503, "plugin '%s' cannot start: %s",
                         iso->name, err);
        return -1;
    }
    pthread_mutex_lock(&iso->st);
    if (p->started && !p->recycled)
        iso->restarts++;
    iso->restarting = false;
    pthread_mutex_unlock(&iso->st);
    p->started = true;
    p->recycled = false;
    return 0;
}

/* A request came back: the child works. Operations (not open) count
 * towards max_calls. */
static void call_returned(ah_isolate *iso, proc *p, bool op)
{
    if (op)
        p->calls_since_spawn++;
    pthread_mutex_lock(&iso->st);
    iso->backoff_ms = iso->o.restart_backoff_ms;
    iso->circuit_open = false;
    iso->calls++;
    pthread_mutex_unlock(&iso->st);
    if (iso->o.max_calls > 0 && p->calls_since_spawn >= (unsigned long)iso->o.max_calls) {
        reap(iso, p, true);
        p->recycled = true;
        pthread_mutex_lock(&iso->st);
        iso->recycles++;
        pthread_mutex_unlock(&iso->st);
    }
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
    cJSON_AddNumberToObject(resp, "status", ext->err_status);
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

/* The records of an emit_records batch, in order; the first refused ends
 * it and is the answer. */
static ah_result serve_emit_records(ah_call *call, const cJSON *m, unsigned char *tail,
                                    size_t tail_len)
{
    const ah_host_api *h = call->host;
    long long n = inum(m, "n", -1, 0, EMIT_RECORDS_MAX);
    if (n < 0 || tail == NULL)
        return h->fail(call, AH_E_INTERNAL, 500, "malformed host call");
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
            return h->fail(call, AH_E_INTERNAL, 500, "malformed host call");
        ah_result r = h->emit_record(call, &rec);
        if (r != AH_OK)
            return r;
    }
    if (at != tail_len)
        return h->fail(call, AH_E_INTERNAL, 500, "malformed host call");
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
    cJSON_AddNumberToObject(resp, "status_code", (double)r.status);
    cJSON_AddNumberToObject(resp, "attempts", r.attempts);
    cJSON_AddNumberToObject(resp, "outcome", r.outcome);
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

static ah_result open_locked(ah_isolate *iso, proc *p, ah_call *call, iso_ctx *ic);

/* The route calls of the exchange: conn_by_secret, the request's parts and
 * the answer. Only while p serves a route (p->ex set). */
static void serve_route_host(ah_isolate *iso, proc *p, ah_call *call, const char *fn,
                             const cJSON *m, cJSON *resp)
{
    const ah_host_api *h = call->host;
    if (strcmp(fn, "http_header") == 0 || strcmp(fn, "http_query") == 0) {
        const char *name = str(m, "name");
        const char *v = name == NULL       ? NULL
                        : fn[5] == 'h' ? h->http_header(p->ex, name)
                                           : h->http_query(p->ex, name);
        cJSON_AddItemToObject(resp, "v", v != NULL ? cJSON_CreateString(v) : cJSON_CreateNull());
    } else if (strcmp(fn, "http_respond_json") == 0) {
        cJSON *body = cJSON_DetachItemFromObjectCaseSensitive((cJSON *)m, "body");
        int status = (int)inum(m, "status", 500, 0, 999);
        cJSON_AddBoolToObject(resp, "ok", h->http_respond_json(p->ex, status, body) == AH_OK);
    } else if (strcmp(fn, "http_respond") == 0) {
        char *body = NULL;
        size_t len = 0;
        if (ah_frame_get_bytes(m, "body", &body, &len) != 0) {
            cJSON_AddBoolToObject(resp, "ok", false);
            return;
        }
        int status = (int)inum(m, "status", 500, 0, 999);
        ah_result r = h->http_respond(p->ex, status, str(m, "content_type"),
                                      body != NULL ? body : "", len);
        free(body);
        cJSON_AddBoolToObject(resp, "ok", r == AH_OK);
    } else { /* conn_by_secret, on the route's own call only */
        ah_call *x = NULL;
        if (call == p->rcalls[0] && p->nrcalls < 1 + ROUTE_EXTRA_MAX)
            x = h->conn_by_secret(call, str(m, "key"), str(m, "presented"));
        const ah_call_ext *ext = (const ah_call_ext *)call;
        /* Why not, as the host wrote it into the route's own call. */
        if (ext->err_code[0]) {
            cJSON *e = cJSON_AddObjectToObject(resp, "route_err");
            cJSON_AddStringToObject(e, "code", ext->err_code);
            cJSON_AddNumberToObject(e, "status", ext->err_status);
            cJSON_AddStringToObject(e, "message", ext->err_msg);
        }
        if (x == NULL) {
            cJSON_AddBoolToObject(resp, "ok", false);
            return;
        }
        int idx = p->nrcalls++;
        p->rcalls[idx] = x;
        cJSON_AddBoolToObject(resp, "ok", true);
        cJSON_AddNumberToObject(resp, "c", idx);
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
        if (ic != NULL && ic->at[p->index].epoch != p->epoch &&
            open_locked(iso, p, x, ic) != AH_OK)
            ic->at[p->index].epoch = 0; /* opened again by its next route here */
        if (ic != NULL && ic->at[p->index].epoch == p->epoch)
            cJSON_AddStringToObject(resp, "ctx", ic->at[p->index].handle);
        add_settings(iso, resp, x);
    }
}

static cJSON *serve_host(ah_isolate *iso, proc *p, ah_call *call, const cJSON *m,
                         unsigned char *tail, size_t tail_len, unsigned char **out_tail,
                         size_t *out_tail_len)
{
    const char *fn = str(m, "fn");
    cJSON *resp = cJSON_CreateObject();
    if (resp == NULL)
        return NULL;
    cJSON_AddStringToObject(resp, "t", "host_reply");
    /* A route's host calls name the call they are made on. */
    int c = (int)inum(m, "c", 0, -1, INT_MAX);
    if (p->ex != NULL && c > 0 && c < p->nrcalls)
        call = p->rcalls[c];
    const ah_host_api *h = call->host;
    if (fn == NULL || (c != 0 && (p->ex == NULL || c < 0 || c >= p->nrcalls))) {
        h->fail(call, AH_E_INTERNAL, 500, "malformed host call");
        add_failure(resp, call);
    } else if (p->ex != NULL &&
               (strncmp(fn, "http_", 5) == 0 || strcmp(fn, "conn_by_secret") == 0) &&
               strcmp(fn, "http") != 0) {
        serve_route_host(iso, p, call, fn, m, resp);
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
            char tok[8192];
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
            cJSON_AddNumberToObject(resp, "changed", changed);
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
        cJSON_AddNumberToObject(resp, "v", (double)v);
    } else if (strcmp(fn, "store_ping") == 0) {
        add_result(resp, call, h->store_ping(call));
    } else if (strcmp(fn, "settings_update") == 0) {
        add_result(resp, call,
                   h->settings_update(call, cJSON_GetObjectItemCaseSensitive(m, "changes")));
    } else if (strcmp(fn, "setting_lists") == 0) {
        cJSON_AddNumberToObject(resp, "v", h->setting_lists(call, str(m, "key"),
                                                            str(m, "value"),
                                                            (unsigned)inum(m, "how", 0, 0, UINT_MAX)));
    } else {
        h->fail(call, AH_E_INTERNAL, 500, "host call '%s' is not served to isolated plugins",
                fn);
        add_failure(resp, call);
    }
    (void)iso;
    return resp;
}

/* Sends `req` (NULL: nothing) and reads frames until the answer, serving the
 * child's host API calls and logs meanwhile. Only the time spent waiting on
 * the child counts against timeout_ms. 0 with *out; -1 the child is gone;
 * -2 it did not answer in time. */
static int exchange(ah_isolate *iso, proc *p, ah_call *call, const cJSON *req,
                    long timeout_ms, cJSON **out)
{
    *out = NULL;
    if (req != NULL && ah_frame_send(p->fd, req) != 0)
        return -1;
    long left = timeout_ms;
    for (;;) {
        struct pollfd pf = {.fd = p->fd, .events = POLLIN};
        int64_t t0 = mono_ms();
        /* A frame already read (the child wrote several at once) needs no
         * wait. */
        int r = ah_frame_buffered(&p->rd) ? 1 : poll(&pf, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r < 0 && errno == EINTR) {
            left -= (long)(mono_ms() - t0);
            continue;
        }
        if (r < 0)
            return -1;
        if (r == 0)
            return -2;
        left -= (long)(mono_ms() - t0);
        if (left < 1)
            left = 1;
        cJSON *m = NULL;
        unsigned char *tail = NULL;
        size_t tail_len = 0;
        if (ah_frame_read_tail(&p->rd, &m, &tail, &tail_len) != 0)
            return -1;
        /* Only a host call carries a tail (emitted records). */
        if (tail != NULL && !(str(m, "t") != NULL && strcmp(str(m, "t"), "host") == 0)) {
            free(tail);
            cJSON_Delete(m);
            return -1;
        }
        const char *t = str(m, "t");
        if (t == NULL) {
            cJSON_Delete(m);
            return -1;
        }
        if (strcmp(t, "oom") == 0) {
            p->oom_noted = true;
            cJSON_Delete(m);
        } else if (strcmp(t, "log") == 0) {
            const char *msg = str(m, "msg");
            int c = (int)inum(m, "c", 0, -1, INT_MAX);
            ah_call *on = p->ex != NULL && c > 0 && c < p->nrcalls ? p->rcalls[c] : call;
            ah_log_level lv =
                (ah_log_level)inum(m, "level", AH_LOG_INFO, AH_LOG_ERROR, AH_LOG_DEBUG);
            on->host->log(on, lv, "%s",
                          msg != NULL ? msg : "");
            cJSON_Delete(m);
        } else if (strcmp(t, "host") == 0) {
            unsigned char *rtail = NULL;
            size_t rtail_len = 0;
            cJSON *resp = serve_host(iso, p, call, m, tail, tail_len, &rtail, &rtail_len);
            free(tail);
            /* A one-way call (the route's answer): the child did not wait. */
            bool oneway = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "nr"));
            cJSON_Delete(m);
            if (oneway) {
                cJSON_Delete(resp);
                free(rtail);
                continue;
            }
            int s = resp != NULL ? ah_frame_send_tail(p->fd, resp, rtail, rtail_len) : -1;
            cJSON_Delete(resp);
            free(rtail);
            if (s != 0)
                return -1;
        } else {
            *out = m;
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

ah_isolate *ah_isolate_start(const char *path, const ah_isolate_opts *opts,
                             const ah_host_api *host, char *err, size_t errlen)
{
    const char *base = strrchr(path, '/');
    const char *name = base != NULL ? base + 1 : path;
    ah_isolate *iso = calloc(1, sizeof *iso);
    if (iso == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
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
        p->index = i;
        p->fd = -1;
        iso->nprocs++;
    }
    if (iso->prog == NULL) {
        snprintf(err, errlen, "%s: isolation = process needs atshub-plugin-host: not found "
                 "(set ATSHUB_PLUGIN_HOST, or install it next to atshub)", path);
        ah_isolate_free(iso);
        return NULL;
    }
    char why[512];
    if (spawn_load(iso, &iso->procs[0], why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s%s", path, start_prefix(why), why);
        ah_isolate_free(iso);
        return NULL;
    }
    iso->procs[0].started = true;
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
        pthread_mutex_lock(&p->mu);
        int r = i == 0 ? spawn_init(iso, p, why, sizeof why) : spawn_child(iso, p, why, sizeof why);
        pthread_mutex_unlock(&p->mu);
        if (r != 0) {
            snprintf(err, errlen, "%s: %s%s", iso->path, start_prefix(why), why);
            return -1;
        }
        p->started = true;
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
        reap(iso, p, true);
        ah_frame_reader_free(&p->rd);
        pthread_mutex_unlock(&p->mu);
        pthread_mutex_destroy(&p->mu);
    }
    pthread_mutex_destroy(&iso->st);
    cJSON_Delete(iso->desc);
    free(iso->procs);
    free(iso->path);
    free(iso->name);
    free(iso->prog);
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

/* Sends one request and reads its answer; a lost child is described.
 * AH_OK with *ans when the child answered (which may be a plugin error). */
static ah_result round_trip(ah_isolate *iso, proc *p, ah_call *call, const cJSON *req, bool op,
                            cJSON **ans)
{
    if (p->fd < 0) /* lost in an exchange nested in this one (already recorded) */
        return call->host->fail(call, AH_E_PLUGIN_CRASHED, 503,
                                "plugin '%s' crashed during %s; it restarts, retry later",
                                iso->name, call->topic != NULL ? call->topic : "the call");
    int r = exchange(iso, p, call, req, iso->o.call_timeout_ms, ans);
    if (r != 0 && p->fd < 0)
        return call->host->fail(call, AH_E_PLUGIN_CRASHED, 503,
                                "plugin '%s' crashed during %s; it restarts, retry later",
                                iso->name, call->topic != NULL ? call->topic : "the call");
    if (r != 0)
        return child_lost(iso, p, call, r == -2);
    call_returned(iso, p, op);
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

/* open() in p's current child; fills ic. p->mu held, child running. */
static ah_result open_locked(ah_isolate *iso, proc *p, ah_call *call, iso_ctx *ic)
{
    cJSON *req = cJSON_CreateObject();
    if (req == NULL)
        return call->host->fail(call, AH_E_INTERNAL, 500, "out of memory");
    cJSON_AddStringToObject(req, "t", "open");
    add_call_fields(req, call);
    cJSON *ans = NULL;
    ah_result r = round_trip(iso, p, call, req, false, &ans);
    cJSON_Delete(req);
    if (r != AH_OK)
        return r;
    if (!answered_ok(ans)) {
        r = plugin_failed(call, ans);
    } else {
        const char *h = str(ans, "ctx");
        snprintf(ic->at[p->index].handle, sizeof ic->at[p->index].handle, "%s",
                 h != NULL ? h : "0");
        ic->at[p->index].epoch = p->epoch;
    }
    cJSON_Delete(ans);
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
    if (tl_iso == iso && tl_proc != NULL) {
        /* conn_by_secret inside a route this thread runs in tl_proc: open
         * it there, nested in the route's exchange (the lock is ours). */
        proc *p = tl_proc;
        ic->proc = p->index;
        r = p->fd >= 0 ? open_locked(iso, p, call, ic)
                       : call->host->fail(call, AH_E_PLUGIN_CRASHED, 503,
                                          "plugin '%s' crashed during the route", iso->name);
    } else {
        proc *p = next_proc(iso);
        ic->proc = p->index;
        pthread_mutex_lock(&p->mu);
        r = ensure_running(iso, p, call) == 0 ? open_locked(iso, p, call, ic) : AH_ERR;
        pthread_mutex_unlock(&p->mu);
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
         * connection conn_by_secret found went away meanwhile): the lock
         * of the route's process is ours and that process waits for a host
         * reply, and taking another process's lock here could wait on a
         * route doing the same there; no close goes now: the contexts are
         * closed when the processes end. */
        free(ic);
        return;
    }
    for (int i = 0; i < iso->nprocs; i++) {
        proc *p = &iso->procs[i];
        pthread_mutex_lock(&p->mu);
        if (ic->at[i].epoch != 0 && p->fd >= 0 && ic->at[i].epoch == p->epoch) {
            cJSON *req = cJSON_CreateObject();
            if (req != NULL) {
                cJSON_AddStringToObject(req, "t", "close");
                cJSON_AddStringToObject(req, "ctx", ic->at[i].handle);
                /* No answer: a close that crashes the child shows at the next call. */
                ah_frame_send(p->fd, req);
                cJSON_Delete(req);
            }
        }
        pthread_mutex_unlock(&p->mu);
    }
    free(ic);
}

/* The connection's process (any for a call without a context), locked,
 * with a child running and the context open in it; NULL (failure
 * described, nothing locked) when there is none. */
static proc *lock_proc_for(ah_isolate *iso, ah_call *call)
{
    iso_ctx *ic = call->conn_ctx;
    proc *p = ic != NULL ? &iso->procs[ic->proc] : next_proc(iso);
    pthread_mutex_lock(&p->mu);
    if (ensure_running(iso, p, call) != 0) {
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    /* A context made by an earlier child died with it: open it again. */
    if (ic != NULL && ic->at[p->index].epoch != p->epoch && open_locked(iso, p, call, ic) != AH_OK) {
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    return p;
}

/* An operation ("call"), the handler of subscription `sub` ("event") or the
 * settle function of write declaration `sub` ("settle") in the connection's
 * process. */
static ah_result run_in_child(ah_isolate *iso, ah_call *call, const char *kind, int sub,
                              const char *event, const cJSON *body, cJSON **reply)
{
    *reply = NULL;
    iso_ctx *ic = call->conn_ctx;
    proc *p = lock_proc_for(iso, call);
    if (p == NULL)
        return AH_ERR;
    cJSON *req = cJSON_CreateObject();
    if (req == NULL) {
        pthread_mutex_unlock(&p->mu);
        return call->host->fail(call, AH_E_INTERNAL, 500, "out of memory");
    }
    cJSON_AddStringToObject(req, "t", kind);
    add_call_fields(req, call);
    if (sub >= 0)
        cJSON_AddNumberToObject(req, "sub", sub);
    if (event != NULL)
        cJSON_AddStringToObject(req, "event", event);
    cJSON_AddStringToObject(req, "ctx", ic != NULL ? ic->at[p->index].handle : "0");
    cJSON_AddItemReferenceToObject(req, "body", (cJSON *)body);
    cJSON *ans = NULL;
    ah_result r = round_trip(iso, p, call, req, true, &ans);
    cJSON_Delete(req);
    pthread_mutex_unlock(&p->mu);
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
    iso_ctx *ic = call->conn_ctx;
    proc *p = lock_proc_for(iso, call);
    if (p == NULL)
        return AH_ERR;
    cJSON *req = cJSON_CreateObject();
    if (req == NULL) {
        pthread_mutex_unlock(&p->mu);
        return h->fail(call, AH_E_INTERNAL, 500, "out of memory");
    }
    /* The request goes with the call: its line, the caller, the headers,
     * the query parameters (both in the order received: the child looks
     * them up as the server does, first match, names case-insensitive)
     * and the body. It is the plugin's own route's request, all of which
     * the handler could read in process. */
    cJSON_AddStringToObject(req, "t", "route");
    add_call_fields(req, call);
    cJSON_AddNumberToObject(req, "route", index);
    cJSON_AddStringToObject(req, "ctx", ic != NULL ? ic->at[p->index].handle : "0");
    add_settings(iso, req, call);
    const char *v;
    if ((v = h->http_method(ex)) != NULL)
        cJSON_AddStringToObject(req, "method", v);
    if ((v = h->http_path(ex)) != NULL)
        cJSON_AddStringToObject(req, "path", v);
    if ((v = h->http_client_ip(ex)) != NULL)
        cJSON_AddStringToObject(req, "client_ip", v);
    cJSON *hdr = cJSON_AddArrayToObject(req, "hdr"), *qry = cJSON_AddArrayToObject(req, "qry");
    if (hdr != NULL)
        ah_ex_each(ex, false, add_pair, hdr);
    if (qry != NULL)
        ah_ex_each(ex, true, add_pair, qry);
    size_t blen = 0;
    const char *body = h->http_body(ex, &blen);
    if (body != NULL && ah_frame_put_bytes(req, "body", body, blen) != 0) {
        cJSON_Delete(req);
        pthread_mutex_unlock(&p->mu);
        return h->fail(call, AH_E_INTERNAL, 500, "out of memory");
    }
    p->ex = ex;
    p->rcalls[0] = call;
    p->nrcalls = 1;
    tl_iso = iso;
    tl_proc = p;
    cJSON *ans = NULL;
    ah_result r = round_trip(iso, p, call, req, true, &ans);
    tl_iso = NULL;
    tl_proc = NULL;
    p->ex = NULL;
    p->nrcalls = 0;
    cJSON_Delete(req);
    pthread_mutex_unlock(&p->mu);
    if (r != AH_OK)
        return r;
    if (!answered_ok(ans))
        r = plugin_failed(call, ans);
    cJSON_Delete(ans);
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

void ah_isolate_counts(ah_isolate *iso, unsigned long *crashes, unsigned long *restarts)
{
    pthread_mutex_lock(&iso->st);
    *crashes = iso->crashes;
    *restarts = iso->restarts;
    pthread_mutex_unlock(&iso->st);
}
