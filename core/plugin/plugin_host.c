/* SPDX-License-Identifier: Apache-2.0 */
/*
 * atshub-plugin-host: the process an isolated plugin runs in (isolate.h).
 *
 *   atshub-plugin-host --fd 3 --plugin FILE.so [--plugin-fd 4] [--memory-max BYTES]
 *                      [--name NAME]
 *
 * Started by the daemon with posix_spawn, with its end of a socket pair as
 * descriptor 3 and nothing else open past stderr. It limits its address
 * space to --memory-max (RLIMIT_AS), loads the unchanged plugin, describes
 * its descriptor to the daemon (which never loads it), waits for "init",
 * runs init and says "ready"; then it serves requests (open, call, settle,
 * event, route, close), several at a time on a small pool of threads (see
 * "Several calls in flight"), until the socket ends, when it runs fini and
 * exits 0. Its host API
 * is local where nothing of the daemon's is needed (fail, JSON helpers,
 * url_escape, free, HMAC, ct_equal) and travels to the daemon over the
 * socket for everything else (log, settings, HTTP, OAuth2, events,
 * records, store). The plugin's functions are called from several threads
 * at once, as the daemon's bus workers call them in process.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "clock.h"
#include "frame.h"
#include "ring.h"
#include "harden.h"
#include "crypto.h"
#include "look.h"
#include "jarena.h"
#include "json.h"
#include "mirror.h"
#include "router.h"

#define SOCK_FD 3

/* The child's call context: the ah_call and what fail() recorded. */
typedef struct child_call {
    ah_call call;
    char err_code[64];
    char err_msg[512];
    int err_status;
    cJSON *keep; /* answers whose strings the plugin holds until the call returns */
    int idx;     /* in a route: 0 the route's own call, 1.. conn_by_secret's */
    /* The connection's plain settings the daemon sent with a route call
     * (or with conn_by_secret's answer), in a kept message: the values as
     * the call started, which is what a call reads in process too (a
     * settings_update shows from the next call on). */
    const cJSON *settings;
    bool emit_failed; /* a batch of its emitted records was refused (emit_flush) */
} child_call;

/* An inbound exchange of a route call: what came with the call; headers,
 * query parameters and the answer go through the daemon. */
struct ah_http_exchange {
    child_call *owner; /* the route's call */
    const char *method, *path, *client_ip;
    char *body;
    size_t body_len;
    bool answered; /* http_respond* was called (the answer is one-way) */
    bool atomic;   /* AH_ROUTE_ATOMIC: the daemon holds the answer until the
                    * route returns, so it leaves with the route's reply */
    const cJSON *hdr, *qry; /* [[name, value | null], ...] as received, or NULL */
    /* setting_lists' answers about client_ip, {key: [enabled only | null,
     * with disabled]} (isolate.c add_listed), or NULL */
    const cJSON *sl;
    /* The connection the daemon found for the secret in header or query
     * parameter cs.h / cs.q under HASHED setting cs.key (isolate.c
     * presolve): {"key", "h" | "q", "ok", "tenant", "connection", "s"}, or
     * NULL. Answers the route's first conn_by_secret when it asks exactly
     * that; used once. */
    const cJSON *cs;
};

/* The exchange of the route this thread serves. */
static _Thread_local struct ah_http_exchange *tl_route_ex;

/* The calls conn_by_secret made for the route being served. */
#define ROUTE_EXTRA_MAX 8
static _Thread_local child_call *g_extra[ROUTE_EXTRA_MAX];
static _Thread_local int g_nextra;

/* AddressSanitizer and ThreadSanitizer (test builds) reserve terabytes of
 * address space for their shadow memory: under them the memory limit
 * cannot be an RLIMIT_AS, and the address space is no measure of use. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define AH_SHADOW_MEMORY 1
#endif

#if defined(__SANITIZE_THREAD__)
/* Under ThreadSanitizer (test builds): this process ends with _exit while
 * its pool's threads may still run (the daemon gone, a plugin's fault), by
 * design; ThreadSanitizer's _exit would report each as a leak and change
 * the exit status the daemon reads. Races are still reported. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "report_thread_leaks=0";
}
#endif

#if defined(__SANITIZE_ADDRESS__)
/* Under AddressSanitizer (test builds) a plugin's fault must still end
 * this process with its own signal, as it does in production, so that the
 * daemon can tell a crash from an exit: leave SEGV, BUS and FPE to us. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:"
           "allow_user_segv_handler=1";
}
#endif

static int g_fd = SOCK_FD;
static uint64_t g_memory_max;
static const ah_plugin_descriptor *g_desc;
static void *g_state;

/* ------------------------------------------------------------------------ */
/* Dying at the memory limit                                                 */
/* ------------------------------------------------------------------------ */

/* A preformatted frame the fault handler can write without allocating.
 * (Written without g_wr: should another thread be in the middle of a frame
 * then, the daemon reads nonsense and records a plain crash, not memory.) */
static const char oom_frame[] = AH_FRAME_OOM;
static char alt_stack[64 * 1024];

/* Address space in use, from /proc/self/statm, with syscalls only. */
static uint64_t vm_size(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    uint64_t pages = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        pages = pages * 10 + (uint64_t)(buf[i] - '0');
    return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* A plugin that runs out of address space dies of whatever its failed
 * allocation leads to (abort, a NULL dereference): when that happens near
 * the limit, tell the daemon it was memory, then die of the same signal. */
static void on_fault(int sig)
{
#if defined(AH_SHADOW_MEMORY)
    /* No RLIMIT_AS under a sanitizer's shadow memory (AH_SHADOW_MEMORY). */
    bool near_limit = false;
    (void)vm_size;
#else
    bool near_limit = g_memory_max > 0 && vm_size() >= g_memory_max / 10 * 9;
#endif
    if (near_limit) {
        ssize_t w = write(g_fd, oom_frame, sizeof oom_frame - 1);
        (void)w;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_fault_handlers(void)
{
    stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof alt_stack};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fault;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

/* ------------------------------------------------------------------------ */
/* Talking to the daemon                                                     */
/* ------------------------------------------------------------------------ */

static ah_frame_reader g_rd; /* frames from the daemon (g_fd) */
/* The rings beside the socket (--ring), once the descriptor said so: every
 * frame after it goes both ways through g_ring (ring.h). Set before the
 * pool's threads start, read-only after. */
static ah_ring *g_ring;
static bool g_ring_on;
static ah_look g_spin; /* the reading thread's look before it sleeps in read() */

static void die_lost(void)
{
    /* The daemon is gone or spoke nonsense: nothing left to serve. */
    _exit(2);
}

/* ------------------------------------------------------------------------ */
/* Several calls in flight                                                   */
/* ------------------------------------------------------------------------ */

/* Once "ready", the daemon may send a request while others are in flight:
 * each carries a call id, and every frame of the call (its host calls,
 * their answers, its logs, its reply) carries it too. Calls run on a small
 * pool of threads, so that one slow call does not hold up the others, and
 * one socket serves them all: whichever thread waits (for the answer to
 * its host call, or for work) reads when nobody else does, keeps what is
 * its own and hands the rest on. A thread that reads a new request while it
 * has no call serves it itself: one call at a time costs no more wake-ups
 * than a single thread did. A thread that leaves the socket to run plugin
 * code leaves it unread; a thread with a call waiting for an answer takes
 * it at once, an idle one once it has been left for READ_TAKEOVER_MS (a
 * call that runs long, or hangs, does not hold up the requests behind it
 * for longer than that, or IDLE_LOOK_MS when the idle thread went to sleep
 * before the call started: idle threads look now and then instead of being
 * woken for every call). Frames out go one at a time (g_wr). */
#define POOL_MAX AH_FRAME_CALLS_MAX
/* A pool thread's stack. glibc's default (RLIMIT_STACK, 8 MiB) is address
 * space, which memory_max (RLIMIT_AS) counts in full: 32 threads' stacks
 * alone were 256 MiB, the default limit, and calls past a few dozen in
 * flight found no thread, or the plugin no memory. 1 MiB a call, as the
 * SDK says (sdk/README.md, "Running in its own process"). */
#define POOL_STACK ((size_t)1 << 20)
#define READ_TAKEOVER_MS 5
#define IDLE_LOOK_MS 50

typedef struct qframe {
    struct qframe *next;
    cJSON *m;
    unsigned char *tail;
    size_t tail_len;
    struct mbox *mb; /* a request: its call's mailbox */
} qframe;

/* A call in flight: the frames read for it (host answers, a nested open). */
typedef struct mbox {
    struct mbox *next;
    uint64_t id;
    qframe *head, *last;
    pthread_cond_t cv; /* a frame came, the socket is free, the end came */
    bool waiting;      /* its thread waits in cv */
} mbox;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;  /* everything below */
static pthread_mutex_t g_wr = PTHREAD_MUTEX_INITIALIZER;  /* frames out */
static pthread_cond_t g_cv;                                /* CLOCK_MONOTONIC */
static bool g_threaded;      /* past the start: the pool serves */
static bool g_reading;       /* a thread reads the socket */
static int64_t g_left_at;    /* when the last reader left it to serve; 0: not left */
static bool g_eof;           /* the daemon closed (or broke the protocol) */
static mbox *g_mboxes;
static qframe *g_work, *g_work_last;
static int g_nthreads, g_idle, g_serving;
static pthread_t g_threads[POOL_MAX];
static pthread_attr_t g_pool_attr; /* POOL_STACK */
static _Thread_local mbox *tl_mb; /* the call this thread serves */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void qframe_free(qframe *f)
{
    if (f == NULL)
        return;
    cJSON_Delete(f->m);
    free(f->tail);
    free(f);
}

static uint64_t id_of(const cJSON *m)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "cid");
    return cJSON_IsString(v) ? strtoull(v->valuestring, NULL, 10) : 0;
}

/* The call id as "cid", a string (isolate.c: add_cid). */
static void add_cid(cJSON *m, uint64_t id)
{
    char b[24];
    snprintf(b, sizeof b, "%" PRIu64, id);
    cJSON_AddStringToObject(m, "cid", b);
}

static uint64_t my_id(void)
{
    return tl_mb != NULL ? tl_mb->id : 0;
}

/* Frames of this thread's call not sent yet: one-way frames that need not
 * leave at once (a publish; an atomic route's answer, which the daemon
 * holds until the route returns anyway) go with the call's next frame, in
 * one write, so that the daemon takes them with one wake-up. */
static _Thread_local unsigned char *tl_out;
static _Thread_local size_t tl_out_len, tl_out_cap;

static void queue_or_die(const cJSON *m, const void *tail, size_t tail_len)
{
    if (ah_frame_append(&tl_out, &tl_out_len, &tl_out_cap, m, tail, tail_len) != 0)
        die_lost();
}

static void send_tail_or_die(const cJSON *m, const void *tail, size_t tail_len)
{
    queue_or_die(m, tail, tail_len);
    pthread_mutex_lock(&g_wr);
    int r = ah_frame_put(g_fd, g_ring_on ? g_ring : NULL, tl_out, tl_out_len);
    pthread_mutex_unlock(&g_wr);
    tl_out_len = 0;
    if (tl_out_cap > 1 << 20) { /* a large frame's buffer is not kept */
        free(tl_out);
        tl_out = NULL;
        tl_out_cap = 0;
    }
    if (r != 0)
        die_lost();
}

static void send_or_die(const cJSON *m)
{
    send_tail_or_die(m, NULL, 0);
}

static void *pool_main(void *arg);

/* One frame read, to its call's mailbox or, a new request, to the work
 * queue (with a mailbox for it). g_mu held. false: a protocol error. */
static bool dispatch(qframe *f)
{
    const cJSON *tv = cJSON_GetObjectItemCaseSensitive(f->m, "t");
    const char *t = cJSON_IsString(tv) ? tv->valuestring : "";
    uint64_t id = id_of(f->m);
    mbox *mb = g_mboxes;
    while (mb != NULL && mb->id != id)
        mb = mb->next;
    bool request = strcmp(t, "call") == 0 || strcmp(t, "settle") == 0 ||
                   strcmp(t, "open") == 0 || strcmp(t, "event") == 0 ||
                   strcmp(t, "route") == 0;
    if (strcmp(t, "close") == 0 || (request && mb == NULL)) {
        if (f->tail != NULL)
            return false;
        if (request) {
            mb = calloc(1, sizeof *mb);
            if (mb == NULL)
                return false;
            pthread_cond_init(&mb->cv, NULL);
            mb->id = id;
            mb->next = g_mboxes;
            g_mboxes = mb;
            f->mb = mb;
        }
        if (g_work_last != NULL)
            g_work_last->next = f;
        else
            g_work = f;
        g_work_last = f;
        return true;
    }
    /* An answer to a host call, or an open nested in a route (same id). */
    if (mb == NULL || (strcmp(t, "host_reply") != 0 && strcmp(t, "open") != 0))
        return false;
    if (mb->last != NULL)
        mb->last->next = f;
    else
        mb->head = f;
    mb->last = f;
    if (mb->waiting)
        pthread_cond_signal(&mb->cv);
    return true;
}

/* The end: every thread is told. g_mu held. */
static void set_eof(void)
{
    g_eof = true;
    pthread_cond_broadcast(&g_cv);
    for (mbox *mb = g_mboxes; mb != NULL; mb = mb->next)
        pthread_cond_signal(&mb->cv);
}

/* Wakes one thread waiting for an answer (not `except`'s), to read. g_mu
 * held. */
static void wake_reader(const mbox *except)
{
    for (mbox *mb = g_mboxes; mb != NULL; mb = mb->next) {
        if (mb != except && mb->waiting) {
            pthread_cond_signal(&mb->cv);
            return;
        }
    }
}

/* Requests queued and not yet taken. g_mu held. */
static int work_queued(void)
{
    int n = 0;
    for (const qframe *f = g_work; f != NULL; f = f->next)
        n++;
    return n;
}

/* Reads a frame, and every frame already buffered after it, and dispatches
 * them. The reading thread only (`idle`: it has no call of its own and will
 * take a request itself); g_mu not held. A request no thread is free for
 * gets a new one (up to POOL_MAX): every thread may be waiting for the
 * daemon, which may be waiting for that request. */
static void read_and_dispatch(bool idle)
{
    if (!ah_frame_buffered(&g_rd)) { /* the read below then may not sleep */
        if (g_ring_on)
            (void)ah_ring_wait(g_ring, &g_spin, 0);
        else
            (void)ah_look_poll(&g_spin, g_fd);
    }
    do {
        qframe *f = calloc(1, sizeof *f);
        if (f == NULL)
            die_lost();
        int r = ah_frame_read_tail(&g_rd, &f->m, &f->tail, &f->tail_len);
        pthread_mutex_lock(&g_mu);
        if (r != 0 || !dispatch(f)) {
            set_eof();
            pthread_mutex_unlock(&g_mu);
            qframe_free(f);
            return;
        }
        int more = g_work != NULL ? work_queued() - (idle ? 1 : 0) : 0;
        if (more > 0 && g_idle > 0)
            pthread_cond_signal(&g_cv); /* a request for an idle thread */
        if (more > g_idle && g_nthreads < POOL_MAX &&
            pthread_create(&g_threads[g_nthreads], &g_pool_attr, pool_main, NULL) == 0)
            g_nthreads++;
        pthread_mutex_unlock(&g_mu);
    } while (ah_frame_buffered(&g_rd));
}

/* Waits for the next frame of call `mine`, or (NULL) for a request to
 * serve. NULL at the end of the stream. */
static qframe *pump(mbox *mine)
{
    pthread_mutex_lock(&g_mu);
    for (;;) {
        if (mine != NULL && mine->head != NULL) {
            qframe *f = mine->head;
            mine->head = f->next;
            if (mine->head == NULL)
                mine->last = NULL;
            f->next = NULL;
            pthread_mutex_unlock(&g_mu);
            return f;
        }
        if (mine == NULL && g_work != NULL) {
            qframe *f = g_work;
            g_work = f->next;
            if (g_work == NULL)
                g_work_last = NULL;
            f->next = NULL;
            g_serving++;
            /* Someone must be able to read while this runs. */
            if (g_idle == 0 && g_nthreads < POOL_MAX &&
                pthread_create(&g_threads[g_nthreads], &g_pool_attr, pool_main, NULL) == 0)
                g_nthreads++;
            pthread_mutex_unlock(&g_mu);
            return f;
        }
        if (g_eof) {
            set_eof();
            pthread_mutex_unlock(&g_mu);
            return NULL;
        }
        int64_t now = now_ms();
        bool take = !g_reading &&
                    (mine != NULL || g_serving == 0 || g_left_at == 0 ||
                     now - g_left_at >= READ_TAKEOVER_MS);
        if (take) {
            g_reading = true;
            g_left_at = 0;
            pthread_mutex_unlock(&g_mu);
            read_and_dispatch(mine == NULL);
            pthread_mutex_lock(&g_mu);
            g_reading = false;
            bool mine_now = (mine != NULL && mine->head != NULL) || (mine == NULL && g_work != NULL);
            if (mine_now) {
                /* Leaving the socket to serve: a call waiting for an
                 * answer takes it now, an idle thread if it stays left. */
                g_left_at = now_ms();
                wake_reader(mine);
            }
            /* (Frames for others: dispatch woke them; this thread reads on.) */
            continue;
        }
        if (mine == NULL) {
            /* Idle: look again when the socket has been left long enough
             * while a call runs, or now and then. */
            g_idle++;
            int64_t at = g_serving > 0 && !g_reading && g_left_at != 0
                             ? g_left_at + READ_TAKEOVER_MS
                             : now + IDLE_LOOK_MS;
            struct timespec until = {.tv_sec = at / 1000, .tv_nsec = (at % 1000) * 1000000L};
            pthread_cond_timedwait(&g_cv, &g_mu, &until);
            g_idle--;
        } else {
            mine->waiting = true;
            pthread_cond_wait(&mine->cv, &g_mu);
            mine->waiting = false;
        }
    }
}

static void serve_request(qframe *f);
static void thread_buffers_free(void);

/* A pool thread: serves requests until the stream ends. */
static void *pool_main(void *arg)
{
    (void)arg;
    for (;;) {
        qframe *f = pump(NULL);
        if (f == NULL) {
            thread_buffers_free();
            return NULL;
        }
        serve_request(f);
    }
}

static void serve_open(const cJSON *m);

/* A host call to the daemon: sends m (consumed) and returns the answer.
 * While it waits, the daemon may ask for an open() first (a connection
 * conn_by_secret opens in this process during a route): served here. */
static void emit_flush_before(void);

/* As rpc, with a tail sent after m's text, and the answer's tail (only an
 * http answer has one: the response body) into *ans_tail when asked for. */
static cJSON *rpc_full(cJSON *m, const void *tail, size_t tail_len, unsigned char **ans_tail,
                       size_t *ans_tail_len)
{
    if (m == NULL)
        die_lost();
    emit_flush_before();
    send_tail_or_die(m, tail, tail_len);
    cJSON_Delete(m);
    for (;;) {
        cJSON *ans = NULL;
        unsigned char *at = NULL;
        size_t al = 0;
        if (!g_threaded) {
            /* Starting (init): one thread, nothing else in flight. */
            if (ah_frame_read_tail(&g_rd, &ans, &at, &al) != 0)
                die_lost();
        } else {
            qframe *f = pump(tl_mb);
            if (f == NULL)
                die_lost();
            ans = f->m;
            at = f->tail;
            al = f->tail_len;
            free(f);
        }
        if (at != NULL && ans_tail == NULL)
            die_lost();
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(ans, "t");
        if (cJSON_IsString(t) && strcmp(t->valuestring, "open") == 0) {
            if (at != NULL)
                die_lost();
            serve_open(ans);
            cJSON_Delete(ans);
            continue;
        }
        if (ans_tail != NULL) {
            *ans_tail = at;
            *ans_tail_len = al;
        }
        return ans;
    }
}

static cJSON *rpc_tail(cJSON *m, const void *tail, size_t tail_len)
{
    return rpc_full(m, tail, tail_len, NULL, NULL);
}

static cJSON *rpc(cJSON *m)
{
    return rpc_full(m, NULL, 0, NULL, NULL);
}

static child_call *cc_of(const ah_call *call)
{
    return (child_call *)call;
}

static cJSON *host_msg(const ah_call *call, const char *fn)
{
    cJSON *m = cJSON_CreateObject();
    if (m == NULL)
        die_lost();
    cJSON_AddStringToObject(m, "t", "host");
    add_cid(m, my_id());
    cJSON_AddStringToObject(m, "fn", fn);
    /* In a route, a connection's call conn_by_secret gave is named. */
    if (call != NULL && cc_of(call)->idx > 0)
        ah_frame_add_int(m, "c", cc_of(call)->idx);
    return m;
}

static void set_fail(child_call *cc, const char *code, int status, const char *msg)
{
    snprintf(cc->err_code, sizeof cc->err_code, "%s", code != NULL ? code : AH_E_PLUGIN);
    cc->err_status = status;
    snprintf(cc->err_msg, sizeof cc->err_msg, "%s", msg != NULL ? msg : "");
}

/* The daemon's answer: AH_OK, or AH_ERR with its failure copied into the
 * call, as the daemon's host API would have recorded it in process. */
static ah_result result_of(ah_call *call, const cJSON *ans)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "ok")))
        return AH_OK;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(ans, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ans, "message");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(ans, "status");
    set_fail(cc_of(call), cJSON_IsString(code) ? code->valuestring : AH_E_INTERNAL,
             cJSON_IsNumber(st) ? st->valueint : 0,
             cJSON_IsString(msg) ? msg->valuestring : "");
    return AH_ERR;
}

/* Keeps `ans` alive until the call returns, for borrowed strings. */
static void keep(ah_call *call, cJSON *ans)
{
    child_call *cc = cc_of(call);
    if (cc->keep == NULL)
        cc->keep = cJSON_CreateArray();
    if (cc->keep == NULL || !cJSON_AddItemToArray(cc->keep, ans))
        cJSON_Delete(ans);
}

/* ------------------------------------------------------------------------ */
/* The host API of the child                                                 */
/* ------------------------------------------------------------------------ */

static void h_log(const ah_call *call, ah_log_level level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *m = cJSON_CreateObject();
    if (m == NULL)
        return;
    cJSON_AddStringToObject(m, "t", "log");
    add_cid(m, my_id());
    ah_frame_add_int(m, "level", level);
    /* In a route, logged under the connection's call it was made on (its
     * scope, its secrets redacted). */
    if (call != NULL && cc_of(call)->idx > 0)
        ah_frame_add_int(m, "c", cc_of(call)->idx);
    cJSON_AddStringToObject(m, "msg", msg);
    send_or_die(m);
    cJSON_Delete(m);
}

static ah_result h_fail(ah_call *call, const char *code, int http_status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    set_fail(cc_of(call), code, http_status, msg);
    return AH_ERR;
}

static const char *h_setting(const ah_call *call, const char *key)
{
    if (key == NULL || call->conn == NULL)
        return NULL;
    const child_call *cc = cc_of(call);
    const cJSON *sv =
        cc->settings != NULL ? cJSON_GetObjectItemCaseSensitive(cc->settings, key) : NULL;
    if (sv != NULL)
        return cJSON_IsString(sv) ? sv->valuestring : NULL;
    cJSON *m = host_msg(call, "setting");
    cJSON_AddStringToObject(m, "key", key);
    cJSON *ans = rpc(m);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ans, "v");
    const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
    keep((ah_call *)call, ans);
    return s;
}

static cJSON *oauth2_json(const ah_oauth2_params *p)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        die_lost();
    const char *k[] = {"token_url", "client_id", "client_secret", "scope", "refresh_token"};
    const char *v[] = {p->token_url, p->client_id, p->client_secret,
                       AH_HAS(p, scope) ? p->scope : NULL,
                       AH_HAS(p, refresh_token) ? p->refresh_token : NULL};
    for (int i = 0; i < 5; i++)
        if (v[i] != NULL)
            cJSON_AddStringToObject(o, k[i], v[i]);
    return o;
}

static ah_result h_http(ah_call *call, const ah_http_request *req, ah_http_response *resp)
{
    size_t v10 = offsetof(ah_http_response, outcome);
    size_t rsz = v10;
    if (req != NULL && AH_HAS(req, response_size) && req->response_size >= v10)
        rsz = req->response_size < sizeof *resp ? req->response_size : sizeof *resp;
    ah_http_response full;
    memset(&full, 0, sizeof full);
    if (req == NULL || req->method == NULL || req->url == NULL) {
        full.struct_size = (uint32_t)rsz;
        memcpy(resp, &full, rsz);
        return h_fail(call, AH_E_INTERNAL, 500, "http: method and url are required");
    }
    cJSON *m = host_msg(call, "http");
    cJSON *q = cJSON_AddObjectToObject(m, "req");
    cJSON_AddStringToObject(q, "method", req->method);
    cJSON_AddStringToObject(q, "url", req->url);
    if (req->headers != NULL) {
        cJSON *hs = cJSON_AddArrayToObject(q, "headers");
        for (const char *const *h = req->headers; *h != NULL; h++)
            cJSON_AddItemToArray(hs, cJSON_CreateString(*h));
    }
    if (req->body != NULL)
        ah_frame_put_bytes(q, "body", req->body, req->body_len);
    ah_frame_add_int(q, "timeout_ms", req->timeout_ms);
    ah_frame_add_int(q, "max_attempts", req->max_attempts);
    if (req->bearer != NULL)
        cJSON_AddStringToObject(q, "bearer", req->bearer);
    if (AH_HAS(req, flags))
        ah_frame_add_int(q, "flags", req->flags);
    if (AH_HAS(req, oauth2) && req->oauth2 != NULL)
        cJSON_AddItemToObject(q, "oauth2", oauth2_json(req->oauth2));
    unsigned char *tail = NULL;
    size_t tail_len = 0;
    cJSON *ans = rpc_full(m, NULL, 0, &tail, &tail_len);
    ah_result r = result_of(call, ans);
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(ans, "status_code")) && cJSON_IsNumber(v))
        full.status = (long)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(ans, "attempts")) && cJSON_IsNumber(v))
        full.attempts = v->valueint;
    if ((v = cJSON_GetObjectItemCaseSensitive(ans, "outcome")) && cJSON_IsNumber(v))
        full.outcome = v->valueint;
    if ((v = cJSON_GetObjectItemCaseSensitive(ans, "content_type")) && cJSON_IsString(v))
        full.content_type = strdup(v->valuestring);
    char *body = NULL;
    size_t blen = 0;
    /* The body came as the frame's tail (NUL-terminated), or, empty, as a
     * member. */
    if (tail != NULL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "body_tail"))) {
        body = (char *)tail;
        blen = tail_len;
        tail = NULL;
    } else {
        ah_frame_get_bytes(ans, "body", &body, &blen);
    }
    free(tail);
    full.body = body;
    full.body_len = blen;
    cJSON_Delete(ans);
    full.struct_size = (uint32_t)rsz;
    memcpy(resp, &full, rsz);
    return r;
}

static void h_http_response_free(ah_http_response *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    free(resp->content_type);
    resp->body = NULL;
    resp->content_type = NULL;
}

static ah_result h_oauth2_token(ah_call *call, const ah_oauth2_params *p, char *out,
                                size_t out_len)
{
    /* The daemon checks the rest (oauth2.c), with the same words. */
    if (p == NULL || out == NULL || out_len == 0)
        return h_fail(call, "auth_failed", 502,
                      "oauth2: token_url, client_id and an output buffer are required");
    cJSON *m = host_msg(call, "oauth2_token");
    cJSON_AddItemToObject(m, "p", oauth2_json(p));
    cJSON *ans = rpc(m);
    ah_result r = result_of(call, ans);
    if (r == AH_OK) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(ans, "token");
        if (!cJSON_IsString(t) || strlen(t->valuestring) >= out_len)
            r = h_fail(call, "auth_failed", 502, "oauth2: the token does not fit");
        else
            memcpy(out, t->valuestring, strlen(t->valuestring) + 1);
    }
    cJSON_Delete(ans);
    return r;
}

static void h_oauth2_invalidate(ah_call *call, const ah_oauth2_params *p)
{
    if (p == NULL)
        return; /* nothing to forget, as in process (oauth2.c) */
    cJSON *m = host_msg(call, "oauth2_invalidate");
    cJSON_AddItemToObject(m, "p", oauth2_json(p));
    cJSON_Delete(rpc(m));
    (void)call;
}

/* Texts from this size on (a provider's page) are parsed into the arena's
 * blocks (jarena.h); smaller ones (a token, a single record), which a
 * plugin is likelier to keep, take malloc's. */
#define JSON_ARENA_MIN ((size_t)16 << 10)
/* The arena's region: 64 MiB, or 1/JSON_ARENA_SHARE of the process's
 * memory limit when that is less (the region counts in RLIMIT_AS). */
#define JSON_ARENA_REGION ((size_t)64 << 20)
#define JSON_ARENA_SHARE 8

/* The daemon's json_parse (hostapi.c) with the same limits (json.h), so
 * that a plugin gets the same tree, or the same refusal, in either mode. */
static cJSON *h_json_parse(const char *text, size_t len)
{
    if (text == NULL || len > AH_FRAME_MAX)
        return NULL;
    if (len < JSON_ARENA_MIN)
        return ah_json_parse_limited(text, len);
    ah_jarena_begin();
    cJSON *j = ah_json_parse_limited(text, len);
    ah_jarena_end();
    return j;
}

static const char *h_json_string(const cJSON *obj, const char *key, size_t max_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v) || v->valuestring == NULL || strlen(v->valuestring) > max_len)
        return NULL;
    return v->valuestring;
}

static void send_oneway(cJSON *m, bool defer);

/* One-way ("nr"): the plugin does not wait a round trip for the daemon,
 * which in an atomic route holds the store's lock meanwhile. What the
 * daemon would refuse at once is refused here first, with its words; a
 * failure only the daemon can meet (its store) is logged there on the
 * call, and the plugin has already gone on (an event that cannot be
 * published is lost, which in process the plugin could only log too). */
static ah_result h_publish(ah_call *call, const char *topic, cJSON *body)
{
    if (topic == NULL || strncmp(topic, "event.", 6) != 0 || strlen(topic) > 128) {
        cJSON_Delete(body);
        return h_fail(call, AH_E_INVALID, 500, "event topics start with 'event.'");
    }
    if (call->conn == NULL) {
        cJSON_Delete(body);
        return h_fail(call, AH_E_INTERNAL, 500, "publish needs a connection (tenant)");
    }
    cJSON *m = host_msg(call, "publish");
    cJSON_AddStringToObject(m, "topic", topic);
    if (body != NULL)
        cJSON_AddItemToObject(m, "body", body);
    send_oneway(m, true);
    return AH_OK;
}

/* A text of `len` bytes (0: up to its NUL) as a string member. */
static void add_text(cJSON *o, const char *key, const char *text, size_t len)
{
    if (len == 0) {
        cJSON_AddStringToObject(o, key, text);
        return;
    }
    char *copy = strndup(text, len);
    if (copy == NULL)
        die_lost();
    cJSON_AddStringToObject(o, key, copy);
    free(copy);
}

/* A record whose text (ABI 1.2) holds a NUL within its given length is
 * refused here, as the daemon's check refuses it in process (hostapi.c,
 * record_text: not one JSON value); sent as a frame's string it would end
 * at the NUL, and what came before it would be stored. AH_OK otherwise. */
static ah_result refuse_text_with_nul(ah_call *call, const ah_record *rec)
{
    if (!AH_HAS(rec, fields_json_len))
        return AH_OK;
    const char *which = NULL;
    if (rec->raw_json != NULL && rec->raw_json_len > 0 &&
        memchr(rec->raw_json, '\0', rec->raw_json_len) != NULL)
        which = "raw_json";
    else if (rec->fields_json != NULL && rec->fields_json_len > 0 &&
             memchr(rec->fields_json, '\0', rec->fields_json_len) != NULL)
        which = "fields_json";
    return which == NULL ? AH_OK
                         : h_fail(call, AH_E_PLUGIN, 500, "emit_record: %s is not one JSON value",
                                  which);
}

static cJSON *record_json(const ah_record *rec)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        die_lost();
    if (rec == NULL)
        return o;
    if (rec->type != NULL)
        cJSON_AddStringToObject(o, "type", rec->type);
    if (rec->remote_id != NULL)
        cJSON_AddStringToObject(o, "remote_id", rec->remote_id);
    if (rec->updated_at != NULL)
        cJSON_AddStringToObject(o, "updated_at", rec->updated_at);
    if (rec->raw != NULL)
        cJSON_AddItemToObject(o, "raw", cJSON_Duplicate(rec->raw, 1));
    if (rec->fields != NULL)
        cJSON_AddItemToObject(o, "fields", cJSON_Duplicate(rec->fields, 1));
    /* ABI 1.2: the two as JSON text, which the host stores as given. */
    if (AH_HAS(rec, fields_json_len)) {
        if (rec->raw_json != NULL)
            add_text(o, "raw_json", rec->raw_json, rec->raw_json_len);
        if (rec->fields_json != NULL)
            add_text(o, "fields_json", rec->fields_json, rec->fields_json_len);
    }
    return o;
}

/* Emitted records travel in batches, not one round trip each: a first sync
 * of 90,000 records took three times as long isolated as in process when
 * every record waited for its answer. A batch goes to the daemon when it is
 * full, before any other host call or answer of this process (so the
 * daemon sees everything in the order the plugin did it), and at the end
 * of the call. What the daemon refuses in a batch fails the emit that sent
 * it, or, sent later, the call itself: its failure is kept on the call and
 * its answer becomes that failure. The checks the daemon would make on the
 * record's identity are made here first, so that they fail the very emit. */
enum { EMIT_BATCH_RECORDS = 500, EMIT_BATCH_BYTES = 1 << 20 };
/* The batch travels as the frame's tail (frame.h), not as JSON: each
 * record is five fields (type, remote id, updated_at, raw and fields as
 * JSON text), each a 4-byte big-endian length, the bytes and a NUL, or
 * the length 0xffffffff alone for none. Records given as text are copied
 * as they are: no string escaped here and unescaped again in the daemon. */
static _Thread_local unsigned char *g_emit_buf; /* one batch per thread (its call) */
static _Thread_local size_t g_emit_len, g_emit_cap;
static _Thread_local ah_call *g_emit_call;
static _Thread_local size_t g_emit_n;
static _Thread_local bool g_emit_flushing;

#define EMIT_NONE 0xffffffffu

static void emit_put(const char *s, size_t len)
{
    size_t need = 4 + (s != NULL ? len + 1 : 0);
    if (s != NULL && len >= EMIT_NONE)
        die_lost();
    if (g_emit_cap - g_emit_len < need) {
        size_t cap = g_emit_cap ? g_emit_cap : 256 * 1024;
        while (cap - g_emit_len < need)
            cap *= 2;
        unsigned char *nb = realloc(g_emit_buf, cap);
        if (nb == NULL)
            die_lost();
        g_emit_buf = nb;
        g_emit_cap = cap;
    }
    uint32_t l = s != NULL ? (uint32_t)len : EMIT_NONE;
    unsigned char *o = g_emit_buf + g_emit_len;
    o[0] = (unsigned char)(l >> 24);
    o[1] = (unsigned char)(l >> 16);
    o[2] = (unsigned char)(l >> 8);
    o[3] = (unsigned char)l;
    if (s != NULL) {
        memcpy(o + 4, s, len);
        o[4 + len] = '\0';
    }
    g_emit_len += need;
}

/* A record's raw or fields: its text, else its tree printed here. */
static void emit_put_json(const char *text, size_t len, const cJSON *tree)
{
    if (text != NULL) {
        emit_put(text, len ? len : strlen(text));
        return;
    }
    if (tree == NULL) {
        emit_put(NULL, 0);
        return;
    }
    char *t = cJSON_PrintUnformatted(tree);
    if (t == NULL)
        die_lost();
    emit_put(t, strlen(t));
    free(t);
}

static ah_result emit_flush(void)
{
    if (g_emit_n == 0)
        return AH_OK;
    ah_call *call = g_emit_call;
    cJSON *m = host_msg(call, "emit_records");
    ah_frame_add_int(m, "n", g_emit_n);
    size_t len = g_emit_len;
    g_emit_call = NULL;
    g_emit_n = 0;
    g_emit_len = 0;
    g_emit_flushing = true;
    cJSON *ans = rpc_tail(m, g_emit_buf, len);
    g_emit_flushing = false;
    /* A large batch's buffer is not kept for the life of the process. */
    if (g_emit_cap > 4 * EMIT_BATCH_BYTES) {
        free(g_emit_buf);
        g_emit_buf = NULL;
        g_emit_cap = 0;
    }
    ah_result r = result_of(call, ans);
    cJSON_Delete(ans);
    if (r != AH_OK)
        cc_of(call)->emit_failed = true;
    return r;
}

/* This thread's buffers, at its end. */
static void thread_buffers_free(void)
{
    free(g_emit_buf);
    g_emit_buf = NULL;
    g_emit_cap = g_emit_len = 0;
    free(tl_out);
    tl_out = NULL;
    tl_out_cap = tl_out_len = 0;
}

static void emit_flush_before(void)
{
    if (!g_emit_flushing)
        (void)emit_flush();
}

static ah_result h_emit_record(ah_call *call, const ah_record *rec)
{
    if (rec == NULL || rec->type == NULL || rec->remote_id == NULL || *rec->remote_id == '\0' ||
        strlen(rec->remote_id) > 256)
        return h_fail(call, AH_E_PLUGIN, 500, "emit_record: type and remote_id are required");
    if (g_emit_call != call && emit_flush() != AH_OK)
        return AH_ERR;
    bool text = AH_HAS(rec, fields_json_len);
    emit_put(rec->type, strlen(rec->type));
    emit_put(rec->remote_id, strlen(rec->remote_id));
    emit_put(rec->updated_at, rec->updated_at != NULL ? strlen(rec->updated_at) : 0);
    emit_put_json(text ? rec->raw_json : NULL, text ? rec->raw_json_len : 0, rec->raw);
    emit_put_json(text ? rec->fields_json : NULL, text ? rec->fields_json_len : 0, rec->fields);
    g_emit_call = call;
    g_emit_n++;
    if (g_emit_n >= EMIT_BATCH_RECORDS || g_emit_len >= EMIT_BATCH_BYTES)
        return emit_flush();
    return AH_OK;
}

static void h_free(void *p)
{
    free(p);
}

/* The inbound exchange of the route being served (see struct
 * ah_http_exchange): request line, caller and body came with the call. */
static const char *h_ex_method(ah_http_exchange *ex) { return ex != NULL ? ex->method : NULL; }
static const char *h_ex_path(ah_http_exchange *ex) { return ex != NULL ? ex->path : NULL; }
static const char *h_ex_client_ip(ah_http_exchange *ex)
{
    return ex != NULL ? ex->client_ip : NULL;
}
static const char *h_ex_body(ah_http_exchange *ex, size_t *len)
{
    if (len != NULL)
        *len = ex != NULL ? ex->body_len : 0;
    return ex != NULL ? (ex->body != NULL ? ex->body : "") : NULL;
}

/* A header or query parameter, asked of the daemon; the answer lives until
 * the route returns. */
static const char *ex_lookup(ah_http_exchange *ex, const char *fn, const char *name)
{
    if (ex == NULL || name == NULL)
        return NULL;
    /* Sent with the call: the first match, names case-insensitive, as the
     * daemon's server looks them up. */
    const cJSON *list = fn[5] == 'h' ? ex->hdr : ex->qry, *pair;
    if (list != NULL) {
        cJSON_ArrayForEach(pair, list) {
            const cJSON *k = cJSON_GetArrayItem(pair, 0), *v = cJSON_GetArrayItem(pair, 1);
            if (cJSON_IsString(k) && strcasecmp(k->valuestring, name) == 0)
                return cJSON_IsString(v) ? v->valuestring : NULL;
        }
        return NULL;
    }
    cJSON *m = host_msg(&ex->owner->call, fn);
    cJSON_AddStringToObject(m, "name", name);
    cJSON *ans = rpc(m);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ans, "v");
    const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
    keep(&ex->owner->call, ans);
    return s;
}
static const char *h_ex_header(ah_http_exchange *ex, const char *n)
{
    return ex_lookup(ex, "http_header", n);
}
static const char *h_ex_query(ah_http_exchange *ex, const char *n)
{
    return ex_lookup(ex, "http_query", n);
}

/* The answer is one-way ("nr": the daemon sends no reply): the handler
 * does not wait a round trip for it. An exchange is answered once; a
 * second answer fails here, as the daemon would refuse it. */
static void send_oneway(cJSON *m, bool defer)
{
    emit_flush_before();
    cJSON_AddTrueToObject(m, "nr");
    if (defer)
        queue_or_die(m, NULL, 0);
    else
        send_or_die(m);
    cJSON_Delete(m);
}
static ah_result h_ex_respond_json(ah_http_exchange *ex, int status, cJSON *body)
{
    if (ex == NULL || ex->answered) {
        cJSON_Delete(body);
        return AH_ERR;
    }
    cJSON *m = host_msg(&ex->owner->call, "http_respond_json");
    ah_frame_add_int(m, "status", status);
    if (body != NULL)
        cJSON_AddItemToObject(m, "body", body);
    ex->answered = true;
    send_oneway(m, ex->atomic);
    return AH_OK;
}
static ah_result h_ex_respond(ah_http_exchange *ex, int status, const char *ct, const char *b,
                              size_t len)
{
    if (ex == NULL || ex->answered)
        return AH_ERR;
    cJSON *m = host_msg(&ex->owner->call, "http_respond");
    ah_frame_add_int(m, "status", status);
    if (ct != NULL)
        cJSON_AddStringToObject(m, "content_type", ct);
    if (b != NULL && len > 0 && ah_frame_put_bytes(m, "body", b, len) != 0)
        die_lost();
    ex->answered = true;
    send_oneway(m, ex->atomic);
    return AH_OK;
}

/* A connection's call for the route, as the daemon described it (a
 * conn_by_secret answer, or the route's "cs"); its strings live in `src`,
 * which outlives the route. */
static child_call *extra_call(ah_call *call, int idx, const cJSON *src)
{
    child_call *x = calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    x->call = *call;
    x->call.conn_ctx = NULL;
    x->call.tenant = x->call.connection = NULL;
    x->idx = idx;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(src, "tenant")) && cJSON_IsString(v))
        x->call.tenant = v->valuestring;
    if ((v = cJSON_GetObjectItemCaseSensitive(src, "connection")) && cJSON_IsString(v))
        x->call.connection = v->valuestring;
    static char conn_token;
    x->call.conn = (ah_conn *)&conn_token;
    if ((v = cJSON_GetObjectItemCaseSensitive(src, "ctx")) && cJSON_IsString(v))
        x->call.conn_ctx = (void *)(uintptr_t)strtoull(v->valuestring, NULL, 16);
    if ((v = cJSON_GetObjectItemCaseSensitive(src, "s")) && cJSON_IsObject(v))
        x->settings = v;
    g_extra[g_nextra++] = x;
    return x;
}

/* The route's first conn_by_secret, when it asks what the daemon resolved
 * before sending the route (ex->cs: the same key, and the very value of the
 * header or query parameter it looked at): answered here. A connection
 * found is still taken by the daemon (locked, as conn_by_secret does),
 * one-way: the frames of this call reach it in order, so it holds the
 * connection before it serves anything the handler does with it. 1
 * answered (*out set, NULL: no connection), 0 not this one. */
static int conn_presolved(ah_call *call, const char *k, const char *p, ah_call **out)
{
    struct ah_http_exchange *ex = tl_route_ex;
    const cJSON *cs = ex != NULL ? ex->cs : NULL;
    if (cs == NULL || g_nextra != 0)
        return 0;
    ex->cs = NULL; /* once */
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(cs, "key");
    const cJSON *hn = cJSON_GetObjectItemCaseSensitive(cs, "h");
    const cJSON *qn = cJSON_GetObjectItemCaseSensitive(cs, "q");
    const cJSON *name = cJSON_IsString(hn) ? hn : qn;
    if (!cJSON_IsString(key) || !cJSON_IsString(name) || strcmp(key->valuestring, k) != 0)
        return 0;
    const char *v = ex_lookup(ex, cJSON_IsString(hn) ? "http_header" : "http_query",
                              name->valuestring);
    if (v == NULL || strcmp(v, p) != 0)
        return 0;
    *out = NULL;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cs, "ok")))
        return 1;
    child_call *x = extra_call(call, 1, cs);
    if (x == NULL)
        die_lost(); /* the daemon is told nothing: it could not tell a
                     * missing take from a late one */
    cJSON *m = host_msg(call, "conn_by_secret");
    cJSON_AddStringToObject(m, "key", k);
    cJSON_AddStringToObject(m, "presented", p);
    ah_frame_add_int(m, "pre", x->idx);
    send_oneway(m, false);
    *out = &x->call;
    return 1;
}

/* Where the handler took p from, when it is a header's or query
 * parameter's value as sent with the route (the same pointer): the daemon
 * learns it and resolves the connection with the next routes. */
static void add_from(cJSON *m, const char *p)
{
    const struct ah_http_exchange *ex = tl_route_ex;
    const cJSON *lists[2] = {ex != NULL ? ex->hdr : NULL, ex != NULL ? ex->qry : NULL};
    for (int i = 0; i < 2; i++) {
        const cJSON *pair;
        cJSON_ArrayForEach(pair, lists[i]) {
            const cJSON *n = cJSON_GetArrayItem(pair, 0), *v = cJSON_GetArrayItem(pair, 1);
            if (cJSON_IsString(n) && cJSON_IsString(v) && v->valuestring == p) {
                cJSON_AddStringToObject(m, i == 0 ? "from_h" : "from_q", n->valuestring);
                return;
            }
        }
    }
}

static ah_call *h_conn_by_secret(ah_call *call, const char *k, const char *p)
{
    if (call == NULL || cc_of(call)->idx != 0 || k == NULL || p == NULL ||
        g_nextra >= ROUTE_EXTRA_MAX)
        return NULL;
    ah_call *pre = NULL;
    if (conn_presolved(call, k, p, &pre))
        return pre;
    cJSON *m = host_msg(call, "conn_by_secret");
    cJSON_AddStringToObject(m, "key", k);
    cJSON_AddStringToObject(m, "presented", p);
    add_from(m, p);
    cJSON *ans = rpc(m);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(ans, "route_err");
    if (cJSON_IsObject(e)) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "status");
        set_fail(cc_of(call), cJSON_IsString(code) ? code->valuestring : AH_E_INTERNAL,
                 cJSON_IsNumber(st) ? st->valueint : 0,
                 cJSON_IsString(msg) ? msg->valuestring : "");
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(ans, "c");
    child_call *x = NULL;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "ok")) && cJSON_IsNumber(c) &&
        c->valueint > 0)
        x = extra_call(call, c->valueint, ans);
    /* Its strings live as long as the route's call. */
    keep(call, ans);
    return x != NULL ? &x->call : NULL;
}

static ah_result h_record_put(ah_call *call, const ah_record *rec, char *id_out, size_t id_len,
                              int *changed_out)
{
    if (refuse_text_with_nul(call, rec) != AH_OK)
        return AH_ERR;
    cJSON *m = host_msg(call, "record_put");
    cJSON_AddItemToObject(m, "rec", record_json(rec));
    cJSON *ans = rpc(m);
    ah_result r = result_of(call, ans);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(ans, "id");
    if (id_out != NULL && id_len > 0)
        snprintf(id_out, id_len, "%s", cJSON_IsString(id) ? id->valuestring : "");
    if (changed_out != NULL) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(ans, "changed");
        *changed_out = cJSON_IsNumber(c) ? c->valueint : 0;
    }
    cJSON_Delete(ans);
    return r;
}

/* The value "v" of an answer, detached (transferred), or NULL. */
static cJSON *take_v(cJSON *ans)
{
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(ans, "v");
    cJSON_Delete(ans);
    if (v != NULL && cJSON_IsNull(v)) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

static cJSON *h_record_get(ah_call *call, const char *type, const char *remote_id)
{
    (void)call;
    cJSON *m = host_msg(call, "record_get");
    if (type != NULL)
        cJSON_AddStringToObject(m, "type", type);
    if (remote_id != NULL)
        cJSON_AddStringToObject(m, "remote_id", remote_id);
    return take_v(rpc(m));
}

static cJSON *h_record_find(ah_call *call, const char *type, const char *field,
                            const char *value, int nocase, int limit)
{
    (void)call;
    cJSON *m = host_msg(call, "record_find");
    if (type != NULL)
        cJSON_AddStringToObject(m, "type", type);
    if (field != NULL)
        cJSON_AddStringToObject(m, "field", field);
    if (value != NULL)
        cJSON_AddStringToObject(m, "value", value);
    ah_frame_add_int(m, "nocase", nocase != 0); /* any non-zero, as in process */
    ah_frame_add_int(m, "limit", limit);
    return take_v(rpc(m));
}

static ah_result h_sequence_next(ah_call *call, const char *name, int64_t *out)
{
    cJSON *m = host_msg(call, "sequence_next");
    if (name != NULL)
        cJSON_AddStringToObject(m, "name", name);
    cJSON *ans = rpc(m);
    ah_result r = result_of(call, ans);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ans, "v");
    if (out != NULL && r == AH_OK) /* as in process: untouched on failure */
        *out = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
    cJSON_Delete(ans);
    return r;
}

static ah_result h_store_ping(ah_call *call)
{
    cJSON *ans = rpc(host_msg(call, "store_ping"));
    ah_result r = result_of(call, ans);
    cJSON_Delete(ans);
    return r;
}

static cJSON *h_record_by_id(ah_call *call, const char *id)
{
    (void)call;
    cJSON *m = host_msg(call, "record_by_id");
    if (id != NULL)
        cJSON_AddStringToObject(m, "id", id);
    return take_v(rpc(m));
}

static ah_result h_hmac(const void *key, size_t key_len, const void *data, size_t len,
                        char out[65])
{
    return ah_hmac_sha256_hex(key, key_len, data, len, out) == 0 ? AH_OK : AH_ERR;
}

static int h_ct_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return 0;
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return 0;
    return CRYPTO_memcmp(a, b, la) == 0;
}

static ah_result h_settings_update(ah_call *call, const cJSON *changes)
{
    cJSON *m = host_msg(call, "settings_update");
    if (changes != NULL)
        cJSON_AddItemToObject(m, "changes", cJSON_Duplicate(changes, 1));
    cJSON *ans = rpc(m);
    ah_result r = result_of(call, ans);
    cJSON_Delete(ans);
    return r;
}

static int h_setting_lists(ah_call *call, const char *key, const char *value, unsigned how)
{
    /* About the caller's address: answered with the route (add_listed). */
    const struct ah_http_exchange *ex = tl_route_ex;
    if (ex != NULL && ex->sl != NULL && key != NULL && value != NULL && ex->client_ip != NULL &&
        strcmp(value, ex->client_ip) == 0 &&
        (how == AH_LISTED_NETWORK || how == (AH_LISTED_NETWORK | AH_LISTED_WITH_DISABLED))) {
        const cJSON *pair = cJSON_GetObjectItemCaseSensitive(ex->sl, key);
        const cJSON *v = cJSON_GetArrayItem(pair, how == AH_LISTED_NETWORK ? 0 : 1);
        if (cJSON_IsNumber(v) && (v->valueint == 0 || v->valueint == 1))
            return v->valueint;
    }
    cJSON *m = host_msg(call, "setting_lists");
    if (key != NULL)
        cJSON_AddStringToObject(m, "key", key);
    if (value != NULL)
        cJSON_AddStringToObject(m, "value", value);
    ah_frame_add_int(m, "how", how);
    cJSON *ans = rpc(m);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ans, "v");
    int r = cJSON_IsNumber(v) ? v->valueint : -1;
    cJSON_Delete(ans);
    return r;
}

/* The whole batch in one frame, one answer: the daemon runs it with its
 * own store_batch (the same checks and failures as in process). */
static ah_result h_store_batch(ah_call *call, ah_store_op *ops, size_t n)
{
    if (ops == NULL || n < 1 || n > AH_STORE_BATCH_MAX ||
        ops[0].struct_size < offsetof(ah_store_op, value) + sizeof ops[0].value)
        return h_fail(call, AH_E_PLUGIN, 500, "store_batch: 1 to %d operations of "
                      "sizeof(ah_store_op) each", AH_STORE_BATCH_MAX);
    size_t stride = ops[0].struct_size;
    cJSON *m = host_msg(call, "store_batch");
    cJSON *a = cJSON_AddArrayToObject(m, "ops");
    if (a == NULL)
        die_lost();
    for (size_t i = 0; i < n; i++) {
        ah_store_op *op = (ah_store_op *)(void *)((char *)ops + i * stride);
        op->done = 0;
        op->value = 0;
        if (op->struct_size != stride) {
            cJSON_Delete(m);
            return h_fail(call, AH_E_PLUGIN, 500, "store_batch: operation %zu is malformed "
                          "(kind, flags, its name or record)", i);
        }
        if (op->kind == AH_STORE_RECORD_PUT && refuse_text_with_nul(call, op->rec) != AH_OK) {
            cJSON_Delete(m);
            return AH_ERR;
        }
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(a, o))
            die_lost();
        ah_frame_add_int(o, "k", op->kind);
        ah_frame_add_int(o, "f", op->flags);
        if (op->kind == AH_STORE_SEQUENCE_NEXT && op->name != NULL)
            cJSON_AddStringToObject(o, "name", op->name);
        else if (op->kind == AH_STORE_RECORD_PUT && op->rec != NULL)
            cJSON_AddItemToObject(o, "rec", record_json(op->rec));
        /* A numbered record's (1.4): the daemon checks the rest. */
        if ((op->flags & AH_STORE_NUMBERED) && AH_HAS(op, number_width)) {
            if (op->number_field != NULL)
                cJSON_AddStringToObject(o, "nf", op->number_field);
            ah_frame_add_int(o, "nw", op->number_width);
        } else if (op->flags & AH_STORE_NUMBERED) {
            ah_frame_add_int(o, "nw", -1); /* too small an op: refused */
        }
    }
    cJSON *ans = rpc(m);
    ah_result r = result_of(call, ans);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(ans, "r");
    const cJSON *e = cJSON_IsArray(res) ? res->child : NULL;
    for (size_t i = 0; i < n && e != NULL; i++, e = e->next) {
        ah_store_op *op = (ah_store_op *)(void *)((char *)ops + i * stride);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(e, "d");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "v");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        op->done = cJSON_IsNumber(d) && d->valueint >= -1 && d->valueint <= 1 ? d->valueint : 0;
        op->value = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
        /* As in process: id_out is written only for a record stored. */
        if (op->kind == AH_STORE_RECORD_PUT && op->id_out != NULL && op->id_len > 0 &&
            cJSON_IsString(id))
            snprintf(op->id_out, op->id_len, "%s", id->valuestring);
    }
    cJSON_Delete(ans);
    return r;
}

/* url_escape: libcurl's, as in the daemon, but loaded on the first call.
 * Linked in, libcurl and the ~30 libraries it needs were most of what it
 * cost to start this process (~10 ms of CPU of ~14 on the 2-core VM, ~20
 * of ~50 under ThreadSanitizer): every plugin's process paid it, and only
 * the plugins that put values in URLs use it (not erp, not template). */
#define LIBCURL_SONAME "libcurl.so.4"

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static char *(*g_curl_escape)(void *handle, const char *s, int len);
static void (*g_curl_free)(void *p);

static void curl_load(void)
{
    void *dl = dlopen(LIBCURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        fprintf(stderr, "atshub-plugin-host: url_escape: %s\n", dlerror());
        return;
    }
    /* POSIX's way to take a function from dlsym (C11 forbids the cast). */
    *(void **)&g_curl_escape = dlsym(dl, "curl_easy_escape");
    *(void **)&g_curl_free = dlsym(dl, "curl_free");
    if (g_curl_escape == NULL || g_curl_free == NULL) {
        g_curl_escape = NULL;
        fprintf(stderr, "atshub-plugin-host: url_escape: %s lacks curl_easy_escape\n",
                LIBCURL_SONAME);
    }
}

/* NULL when libcurl cannot be loaded (the plugin sees it as out of memory). */
static char *h_url_escape(const char *s)
{
    if (s == NULL)
        return NULL;
    pthread_once(&g_curl_once, curl_load);
    if (g_curl_escape == NULL)
        return NULL;
    char *e = g_curl_escape(NULL, s, 0);
    if (e == NULL)
        return NULL;
    char *out = strdup(e);
    g_curl_free(e);
    return out;
}

static const ah_host_api g_host = {
    .struct_size = sizeof(ah_host_api),
    .abi_major = AH_ABI_MAJOR,
    .abi_minor = AH_ABI_MINOR,
    .log = h_log,
    .fail = h_fail,
    .setting = h_setting,
    .http = h_http,
    .http_response_free = h_http_response_free,
    .url_escape = h_url_escape, /* here, no round trip: libcurl's, as the daemon's */
    .oauth2_token = h_oauth2_token,
    .oauth2_invalidate = h_oauth2_invalidate,
    .json_parse = h_json_parse,
    .json_string = h_json_string,
    .publish = h_publish,
    .emit_record = h_emit_record,
    .free = h_free,
    .http_method = h_ex_method,
    .http_path = h_ex_path,
    .http_header = h_ex_header,
    .http_query = h_ex_query,
    .http_client_ip = h_ex_client_ip,
    .http_body = h_ex_body,
    .http_respond_json = h_ex_respond_json,
    .conn_by_secret = h_conn_by_secret,
    .record_put = h_record_put,
    .record_get = h_record_get,
    .record_find = h_record_find,
    .sequence_next = h_sequence_next,
    .store_ping = h_store_ping,
    .record_by_id = h_record_by_id,
    .hmac_sha256_hex = h_hmac,
    .ct_equal = h_ct_equal,
    .settings_update = h_settings_update,
    .http_respond = h_ex_respond,
    .setting_lists = h_setting_lists,
    .store_batch = h_store_batch,
};

/* ------------------------------------------------------------------------ */
/* Serving                                                                   */
/* ------------------------------------------------------------------------ */

/* A non-NULL pointer stands for itself as the connection in the call: the
 * plugin may compare it or pass it back, never look inside (ah_conn is
 * opaque to it). */
static char g_conn_token;

static void call_init(child_call *cc, const cJSON *m, void *conn_ctx)
{
    memset(cc, 0, sizeof *cc);
    cc->call.struct_size = sizeof cc->call;
    cc->call.host = &g_host;
    cc->call.plugin_state = g_state;
    cc->call.conn_ctx = conn_ctx;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "tenant")) && cJSON_IsString(v))
        cc->call.tenant = v->valuestring;
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "connection")) && cJSON_IsString(v)) {
        cc->call.connection = v->valuestring;
        cc->call.conn = (ah_conn *)&g_conn_token;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "topic")) && cJSON_IsString(v))
        cc->call.topic = v->valuestring;
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "correlation_id")) && cJSON_IsString(v))
        cc->call.correlation_id = v->valuestring;
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "s")) && cJSON_IsObject(v))
        cc->settings = v;
}

static void *ctx_of(const cJSON *m)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "ctx");
    if (!cJSON_IsString(v))
        return NULL;
    return (void *)(uintptr_t)strtoull(v->valuestring, NULL, 16);
}

static void answer(child_call *cc, ah_result r, cJSON *body, const char *ctx)
{
    /* The call's last records go before its answer; a batch the daemon
     * refused fails the call, as the emit would have in process. */
    if (emit_flush() != AH_OK || cc->emit_failed)
        r = AH_ERR;
    cJSON *a = cJSON_CreateObject();
    if (a == NULL)
        die_lost();
    cJSON_AddStringToObject(a, "t", "reply");
    add_cid(a, my_id());
    cJSON_AddBoolToObject(a, "ok", r == AH_OK);
    if (r == AH_OK) {
        cJSON_AddItemToObject(a, "body", body != NULL ? body : cJSON_CreateObject());
        if (ctx != NULL)
            cJSON_AddStringToObject(a, "ctx", ctx);
    } else {
        cJSON_Delete(body);
        cJSON_AddStringToObject(a, "code", cc->err_code[0] ? cc->err_code : AH_E_PLUGIN);
        ah_frame_add_int(a, "status", cc->err_status);
        cJSON_AddStringToObject(a, "message", cc->err_msg[0]
                                                  ? cc->err_msg
                                                  : "the plugin failed without a reason");
    }
    send_or_die(a);
    cJSON_Delete(a);
    cJSON_Delete(cc->keep);
    cc->keep = NULL;
}

/* The contexts open() made and close() has not freed: closed at the end, so
 * that a process ended (recycled, swapped, the daemon stopping) still hands
 * each one to the plugin's close. */
static void **g_ctxs;
static size_t g_nctxs, g_capctxs;

static void ctx_add(void *ctx)
{
    if (ctx == NULL)
        return;
    pthread_mutex_lock(&g_mu);
    if (g_nctxs == g_capctxs) {
        size_t cap = g_capctxs ? g_capctxs * 2 : 16;
        void **n = realloc(g_ctxs, cap * sizeof *n);
        if (n == NULL) {
            pthread_mutex_unlock(&g_mu);
            return; /* not closed at the end: the process ends anyway */
        }
        g_ctxs = n;
        g_capctxs = cap;
    }
    g_ctxs[g_nctxs++] = ctx;
    pthread_mutex_unlock(&g_mu);
}

/* Whether ctx is one open() made (a close for anything else is ignored). */
static bool ctx_remove(void *ctx)
{
    bool found = false;
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_nctxs; i++) {
        if (g_ctxs[i] == ctx) {
            g_ctxs[i] = g_ctxs[--g_nctxs];
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return found;
}

static void serve_open(const cJSON *m)
{
    child_call cc;
    call_init(&cc, m, NULL);
    void *ctx = NULL;
    ah_result r = g_desc->open != NULL ? g_desc->open(&cc.call, &ctx) : AH_OK;
    if (r == AH_OK)
        ctx_add(ctx);
    char h[24];
    snprintf(h, sizeof h, "%" PRIxPTR, (uintptr_t)ctx);
    answer(&cc, r, NULL, h);
}

/* An operation ("call": the slot of its topic) or a write's settle function
 * ("settle": declaration number "sub" of op_writes). */
static void serve_call(const cJSON *m, bool settle)
{
    child_call cc;
    call_init(&cc, m, ctx_of(m));
    ah_op_fn fn = NULL;
    if (settle) {
        const cJSON *sub = cJSON_GetObjectItemCaseSensitive(m, "sub");
        int n = 0;
        const ah_op_write *w = AH_HAS(g_desc, op_writes) ? g_desc->op_writes : NULL;
        while (w != NULL && w[n].topic != NULL)
            n++;
        if (cJSON_IsNumber(sub) && sub->valueint >= 0 && sub->valueint < n)
            fn = w[sub->valueint].settle;
    } else {
        const ah_topic *t = cc.call.topic != NULL ? ah_router_topic(cc.call.topic) : NULL;
        fn = t != NULL ? ah_router_resolve(g_desc, t) : NULL;
    }
    if (fn == NULL) {
        h_fail(&cc.call, AH_E_UNSUPPORTED, 501, "plugin does not support %s",
               cc.call.topic != NULL ? cc.call.topic : "(no topic)");
        answer(&cc, AH_ERR, NULL, NULL);
        return;
    }
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(m, "body");
    cJSON *empty = NULL;
    if (body == NULL)
        body = empty = cJSON_CreateObject();
    cJSON *out = NULL;
    ah_result r = fn(&cc.call, body, &out);
    cJSON_Delete(empty);
    answer(&cc, r, out, NULL);
}

static void serve_event(const cJSON *m)
{
    child_call cc;
    call_init(&cc, m, ctx_of(m));
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(m, "sub");
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(m, "event");
    int n = 0;
    while (g_desc->subscriptions != NULL && g_desc->subscriptions[n].pattern != NULL)
        n++;
    if (!cJSON_IsNumber(sub) || sub->valueint < 0 || sub->valueint >= n || !cJSON_IsString(ev)) {
        h_fail(&cc.call, AH_E_INTERNAL, 500, "no such subscription");
        answer(&cc, AH_ERR, NULL, NULL);
        return;
    }
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(m, "body");
    cJSON *empty = NULL;
    if (body == NULL)
        body = empty = cJSON_CreateObject();
    ah_result r = g_desc->subscriptions[sub->valueint].handler(&cc.call, ev->valuestring, body);
    cJSON_Delete(empty);
    answer(&cc, r, NULL, NULL);
}

static void serve_route(const cJSON *m)
{
    child_call cc;
    call_init(&cc, m, ctx_of(m));
    const cJSON *ri = cJSON_GetObjectItemCaseSensitive(m, "route");
    int n = 0;
    while (g_desc->routes != NULL && g_desc->routes[n].method != NULL)
        n++;
    struct ah_http_exchange ex;
    memset(&ex, 0, sizeof ex);
    ex.owner = &cc;
    if (!cJSON_IsNumber(ri) || ri->valueint < 0 || ri->valueint >= n ||
        ah_frame_get_bytes(m, "body", &ex.body, &ex.body_len) != 0) {
        h_fail(&cc.call, AH_E_INTERNAL, 500, "no such route");
        answer(&cc, AH_ERR, NULL, NULL);
        return;
    }
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "method")) && cJSON_IsString(v))
        ex.method = v->valuestring;
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "path")) && cJSON_IsString(v))
        ex.path = v->valuestring;
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "client_ip")) && cJSON_IsString(v))
        ex.client_ip = v->valuestring;
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "hdr")) && cJSON_IsArray(v))
        ex.hdr = v;
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "qry")) && cJSON_IsArray(v))
        ex.qry = v;
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "sl")) && cJSON_IsObject(v))
        ex.sl = v;
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "cs")) && cJSON_IsObject(v))
        ex.cs = v;
    ex.atomic = (g_desc->routes[ri->valueint].flags & AH_ROUTE_ATOMIC) != 0;
    tl_route_ex = &ex;
    ah_result r = g_desc->routes[ri->valueint].handler(&cc.call, &ex);
    tl_route_ex = NULL;
    /* The connections' calls end with the route (the daemon releases them). */
    for (int i = 0; i < g_nextra; i++) {
        cJSON_Delete(g_extra[i]->keep);
        free(g_extra[i]);
    }
    g_nextra = 0;
    free(ex.body);
    answer(&cc, r, NULL, NULL);
}

static void serve_close(const cJSON *m)
{
    void *ctx = ctx_of(m);
    if (ctx != NULL && ctx_remove(ctx) && g_desc->close != NULL)
        g_desc->close(g_state, ctx);
}

/* A request the pool took (pump), served on this thread as its call. */
static void serve_request(qframe *f)
{
    tl_mb = f->mb;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(f->m, "t");
    const char *ts = cJSON_IsString(t) ? t->valuestring : "";
    if (strcmp(ts, "call") == 0)
        serve_call(f->m, false);
    else if (strcmp(ts, "settle") == 0)
        serve_call(f->m, true);
    else if (strcmp(ts, "open") == 0)
        serve_open(f->m);
    else if (strcmp(ts, "event") == 0)
        serve_event(f->m);
    else if (strcmp(ts, "route") == 0)
        serve_route(f->m);
    else if (strcmp(ts, "close") == 0)
        serve_close(f->m);
    pthread_mutex_lock(&g_mu);
    if (f->mb != NULL) {
        for (mbox **pp = &g_mboxes; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == f->mb) {
                *pp = f->mb->next;
                break;
            }
        }
    }
    g_serving--;
    pthread_mutex_unlock(&g_mu);
    if (f->mb != NULL) {
        qframe *q = f->mb->head;
        while (q != NULL) {
            qframe *next = q->next;
            qframe_free(q);
            q = next;
        }
        pthread_cond_destroy(&f->mb->cv);
        free(f->mb);
    }
    tl_mb = NULL;
    qframe_free(f);
}

static void say(const char *t, const char *message)
{
    cJSON *m = cJSON_CreateObject();
    if (m == NULL)
        die_lost();
    cJSON_AddStringToObject(m, "t", t);
    if (message != NULL)
        cJSON_AddStringToObject(m, "message", message);
    send_or_die(m);
    cJSON_Delete(m);
}

/* Every second: once the daemon that started this process is no longer its
 * parent (it ended; the process was given to init or a subreaper), ends. */
static void *parent_watch(void *arg)
{
    pid_t daemon = (pid_t)(intptr_t)arg;
    for (;;) {
        sleep(1);
        if (getppid() != daemon)
            _exit(0);
    }
    return NULL;
}

/* Closes every descriptor above `last`: close_range, or on kernels without
 * it (before 5.9) each one /proc/self/fd lists, or each up to the limit. */
static void close_above(int last)
{
    if (close_range((unsigned)last + 1, ~0U, 0) == 0)
        return;
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            int fd = atoi(e->d_name);
            if (fd > last && fd != dirfd(d))
                close(fd);
        }
        closedir(d);
        return;
    }
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = last + 1; fd < (max > 0 && max < (1L << 20) ? max : 1L << 20); fd++)
        close((int)fd);
}

int main(int argc, char **argv)
{
    const char *plugin = NULL;
    int plugin_fd = -1, ring_fd = -1;
    char plugin_fd_path[32];
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--fd") == 0)
            g_fd = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--plugin") == 0)
            plugin = argv[i + 1];
        else if (strcmp(argv[i], "--plugin-fd") == 0)
            plugin_fd = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--memory-max") == 0)
            g_memory_max = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--ring") == 0)
            ring_fd = atoi(argv[i + 1]);
    }
    if (plugin == NULL || fcntl(g_fd, F_GETFD) < 0 || plugin_fd == g_fd ||
        (plugin_fd >= 0 && (plugin_fd < 3 || fcntl(plugin_fd, F_GETFD) < 0))) {
        fprintf(stderr, "usage: atshub-plugin-host --fd N --plugin FILE.so [--plugin-fd M]\n"
                        "       [--memory-max B] [--ring R]\n"
                        "(started by atshub for plugins with isolation = process; with\n"
                        "--plugin-fd, the plugin is loaded from descriptor M, and FILE.so\n"
                        "only names it; with --ring, frames after the descriptor go\n"
                        "through the shared memory of descriptor R)\n");
        return 64;
    }
    if (plugin_fd >= 0) {
        fcntl(plugin_fd, F_SETFD, FD_CLOEXEC);
        snprintf(plugin_fd_path, sizeof plugin_fd_path, "/proc/self/fd/%d", plugin_fd);
    }
    fcntl(g_fd, F_SETFD, FD_CLOEXEC);
    ah_frame_reader_reset(&g_rd, g_fd);
    /* Mapped (or refused: the socket alone then) and closed before the
     * descriptors are: the descriptor frame tells the daemon which. */
    if (ring_fd >= 3 && ring_fd != g_fd && ring_fd != plugin_fd) {
        g_ring = ah_ring_open(ring_fd, g_fd, false);
        close(ring_fd);
    }
    (void)ah_cond_init_mono(&g_cv);
    /* Nothing of the daemon's but stdio, the socket and the plugin's bytes. */
    close_above(g_fd > plugin_fd ? g_fd : plugin_fd);
    for (int fd = 3; fd < (g_fd > plugin_fd ? g_fd : plugin_fd); fd++)
        if (fd != g_fd && fd != plugin_fd)
            close(fd);
    /* Ends this process once the daemon is gone, even while the plugin is
     * stuck in a call (in its own loop, or waiting on something outside)
     * and nobody reads the socket's end of the stream: a daemon killed
     * (kill -9, a crash) left such processes behind, running for good.
     * Before memory_max's limit, on a small stack. */
    pthread_attr_t wa;
    pthread_t watch;
    pthread_attr_init(&wa);
    pthread_attr_setstacksize(&wa, 64 * 1024);
    if (pthread_create(&watch, &wa, parent_watch, (void *)(intptr_t)getppid()) == 0)
        pthread_detach(watch);
    pthread_attr_destroy(&wa);
    /* The plugin's settings and tokens pass through this process. */
    char harden_err[160];
    if (ah_harden_no_dumps(harden_err, sizeof harden_err) != 0) {
        say("init_failed", harden_err);
        return 1;
    }
#if !defined(AH_SHADOW_MEMORY)
    if (g_memory_max > 0) {
        /* glibc gives each thread that allocates an arena of its own, each
         * reserving 64 MiB of address space: with several calls in flight
         * (a thread each) a 256M limit was spent on reservations, malloc
         * failed and the process ended (exit 2) under a steady load. Two
         * arenas; what the plugin allocates still counts in full. */
        mallopt(M_ARENA_MAX, 2);
        struct rlimit rl = {.rlim_cur = g_memory_max, .rlim_max = g_memory_max};
        if (setrlimit(RLIMIT_AS, &rl) != 0) {
            char m[128];
            snprintf(m, sizeof m, "setrlimit(RLIMIT_AS): %s", strerror(errno));
            say("init_failed", m);
            return 1;
        }
    }
#endif
#if !defined(__SANITIZE_ADDRESS__)
    /* (Under AddressSanitizer the parsed trees stay malloc's, where it
     * sees a plugin's use of a freed node.) Before the plugin is loaded:
     * its constructors may use cJSON. Without the region, malloc's as
     * before. */
    size_t region = JSON_ARENA_REGION;
    if (g_memory_max > 0 && g_memory_max / JSON_ARENA_SHARE < region)
        region = (size_t)(g_memory_max / JSON_ARENA_SHARE) / AH_JARENA_BLOCK * AH_JARENA_BLOCK;
    if (region >= AH_JARENA_BLOCK)
        ah_jarena_install(region);
#endif
    install_fault_handlers();

    /* The daemon never loads the file: its constructors and entry function
     * run here, and the daemon learns the descriptor from us. The messages
     * are the loader's (loader.c). */
    void *dl = dlopen(plugin_fd >= 0 ? plugin_fd_path : plugin, RTLD_NOW | RTLD_LOCAL);
    if (plugin_fd >= 0)
        close(plugin_fd); /* mapped now, or refused */
    if (dl == NULL) {
        char m[1024];
        const char *e = dlerror();
        snprintf(m, sizeof m,
                 "cannot open: %s (check the path; use ldd(1) to find missing libraries)",
                 e != NULL ? e : "unknown error");
        say("init_failed", m);
        return 1;
    }
    ah_entry_fn entry = (ah_entry_fn)dlsym(dl, AH_ENTRY_SYMBOL);
    if (entry == NULL) {
        char m[256];
        snprintf(m, sizeof m, "no entry symbol %s: not an atshub plugin, or built without "
                              "AH_PLUGIN_ENTRY", AH_ENTRY_SYMBOL);
        for (int v = 0; v <= 9; v++) {
            char name[32];
            snprintf(name, sizeof name, "atshub_plugin_entry_v%d", v);
            if (v != AH_ABI_MAJOR && dlsym(dl, name) != NULL) {
                snprintf(m, sizeof m, "built for ABI major %d (exports %s), this host speaks "
                                      "ABI %d.%d", v, name, AH_ABI_MAJOR, AH_ABI_MINOR);
                break;
            }
        }
        say("init_failed", m);
        return 1;
    }
    g_desc = entry(&g_host);
    if (g_desc == NULL) {
        say("init_failed", "entry function " AH_ENTRY_SYMBOL " returned no descriptor");
        return 1;
    }
    {
        cJSON *m = cJSON_CreateObject();
        if (m == NULL)
            die_lost();
        cJSON_AddStringToObject(m, "t", "descriptor");
        cJSON *d = ah_mirror_describe(g_desc);
        /* Everything after it goes through the rings, when it says so
         * (the daemon sent nothing yet: the reader's buffer is empty). */
        bool ring = g_ring != NULL && ah_frame_reader_ring(&g_rd, g_ring);
        if (d == NULL || !cJSON_AddItemToObject(m, "d", d) ||
            (ring && !cJSON_AddTrueToObject(m, "ring")))
            die_lost();
        send_or_die(m);
        cJSON_Delete(m);
        g_ring_on = ring;
        /* The daemon checks it, then says "init" (or ends us). */
        cJSON *go = NULL;
        if (ah_frame_read(&g_rd, &go) != 0)
            return 0;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(go, "t");
        bool init = cJSON_IsString(t) && strcmp(t->valuestring, "init") == 0;
        cJSON_Delete(go);
        if (!init)
            return 0;
    }
    if (g_desc->init != NULL) {
        child_call cc;
        memset(&cc, 0, sizeof cc);
        cc.call.struct_size = sizeof cc.call;
        cc.call.host = &g_host;
        if (g_desc->init(&cc.call, &g_state) != AH_OK) {
            char m[600];
            snprintf(m, sizeof m, "init failed: %s",
                     cc.err_msg[0] ? cc.err_msg
                                   : "init returned an error without calling host->fail()");
            cJSON_Delete(cc.keep);
            say("init_failed", m);
            return 1;
        }
        cJSON_Delete(cc.keep);
    }
    say("ready", NULL);
    /* From now on the pool serves, this thread among it (see "Several
     * calls in flight"), until the daemon closes the socket. */
    pthread_attr_init(&g_pool_attr);
    pthread_attr_setstacksize(&g_pool_attr, POOL_STACK);
    g_threaded = true;
    pool_main(NULL);
    /* A thread still serving may start another before it sees the end:
     * the count is read again after each join. */
    for (int i = 0;; i++) {
        pthread_mutex_lock(&g_mu);
        bool more = i < g_nthreads;
        pthread_t t = more ? g_threads[i] : pthread_self();
        pthread_mutex_unlock(&g_mu);
        if (!more)
            break;
        pthread_join(t, NULL);
    }
    for (size_t i = 0; i < g_nctxs; i++)
        if (g_desc->close != NULL)
            g_desc->close(g_state, g_ctxs[i]);
    free(g_ctxs);
    if (g_desc->fini != NULL)
        g_desc->fini(g_state);
    dlclose(dl);
    ah_frame_reader_free(&g_rd);
    ah_ring_close(g_ring);
    return 0;
}
