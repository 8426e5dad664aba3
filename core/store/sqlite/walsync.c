/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Commits made durable after they return: the WAL's fdatasync taken off
 * the writer's COMMIT (sqlite_int.h, "walsync.c").
 *
 * With synchronous=FULL every COMMIT of the writer connection syncs the
 * WAL before it returns, with the store's lock held: while the disk works
 * (~1 ms on the project's VM under load) no other request writes, and the
 * committer cuts no next group. Here the writer runs with
 * synchronous=NORMAL (a COMMIT writes its WAL frames and returns; SQLite
 * still syncs the WAL before a checkpoint copies it into the database, so
 * what the disk holds is always a prefix of the commits, each whole) and
 * the sync is made afterwards, outside the store's lock, once for every
 * commit made since the last one (PostgreSQL's WAL writer does the same).
 *
 * What is committed but not yet synced could be lost by a power cut or an
 * OS crash (a killed process loses nothing: the frames are in the file).
 * So nothing may leave the process on the strength of it before the sync:
 *
 *   - the committer's answers: its answerer thread (store/committer.c)
 *     calls durable() for the last commit before it answers a group's
 *     requests; a group's commit is never held up by the previous one's
 *     sync, and one fdatasync serves every group committed meanwhile;
 *   - every other thread: when it lets go of the writer connection for
 *     good, or of a reader connection, it waits until what was written to
 *     the WAL by then is synced (ah_sq_durable_after): what it wrote or
 *     read may then be answered or sent. Not when it ends a group scope
 *     (its writes are answered through the committer, after their sync)
 *     or writes a log row, nor on a thread that defers (the committer's,
 *     a sync run's: ah_sq_defer_durable). Without writes since the last
 *     sync this is one atomic load.
 *
 * Marks count the writes made to the WAL file (walbuf.c), not commits: a
 * commit is published to readers after its frames (and any checksums
 * SQLite rewrites) are written, so a reader that saw it finds its writes
 * counted; a count of commits, bumped by the WAL hook after publication,
 * would let a reader answer with a commit not counted yet. Commits made
 * by another process on the same file (the CLI beside the daemon) are
 * that process's to sync.
 *
 * A failed fdatasync (EIO) leaves the kernel free to have dropped the
 * failed pages: what it covered may or may not reach the disk, and a retry
 * cannot tell. Those commits are already published and may have been
 * read; no answer about them can be true (a "failed" would make a client
 * retry a write that may be stored). So the process stops at once (exit
 * status 74, EX_IOERR, logged), as PostgreSQL panics: its clients see
 * their connections drop (an unknown outcome, which their idempotency keys
 * settle), and the restart replays the WAL as the disk holds it.
 *
 * Only a file database in WAL mode whose WAL this file could open
 * (ah_sq_walsync_start) works this way; any other keeps synchronous=FULL.
 */
#include "sqlite_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

struct ah_sq_dur {
    sqlite3_file *wal; /* the writer's WAL (walbuf.c): its write count */
    int fd; /* the WAL file, opened for its fdatasync only */
    char *path; /* its name, to open it again should it be replaced */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t synced;              /* WAL writes on disk (mu) */
    _Atomic uint64_t synced_pub;  /* the same, read without mu */
    bool syncing;                 /* a thread is in fdatasync (mu) */
    unsigned long syncs;          /* fdatasync calls made (mu) */
    unsigned long waiting;        /* threads in durable() for a later mark (mu) */
    /* Test hooks (ah_store_sqlite_sync_hold / _fail). */
    bool hold;
    int fail_next;
};

/* Threads that let nothing out before durable() themselves: the
 * committer's, a sync run's while it runs. */
static _Thread_local bool tl_defer;

void ah_sq_walsync_start(ah_sq_store *w)
{
    const char *wal = sqlite3_filename_wal(sqlite3_db_filename(w->db, "main"));
    sqlite3_file *wf = NULL;
    uint64_t n = 0;
    if (wal == NULL || *wal == '\0' ||
        sqlite3_file_control(w->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wf) != SQLITE_OK ||
        ah_sq_walbuf_written(wf, &n) != 0)
        return; /* not a WAL this engine's VFS writes: no count to go by */
    struct ah_sq_dur *d = calloc(1, sizeof *d);
    if (d == NULL)
        return;
    d->wal = wf;
    /* The WAL exists once the connection has read the file in WAL mode
     * (the caller made sure); O_RDONLY is enough for fdatasync. */
    d->path = strdup(wal);
    d->fd = d->path != NULL ? open(wal, O_RDONLY | O_CLOEXEC) : -1;
    if (d->fd < 0 || pthread_mutex_init(&d->mu, NULL) != 0) {
        if (d->fd >= 0)
            close(d->fd);
        free(d->path);
        free(d);
        return;
    }
    if (pthread_cond_init(&d->cv, NULL) != 0 ||
        sqlite3_exec(w->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
        pthread_mutex_destroy(&d->mu);
        close(d->fd);
        free(d->path);
        free(d);
        return;
    }
    w->dur = d;
}

void ah_sq_walsync_stop(ah_sq_store *w)
{
    struct ah_sq_dur *d = w->dur;
    if (d == NULL)
        return;
    /* What was written is made durable before the WAL is let go (SQLite's
     * close then checkpoints and syncs what comes after). */
    (void)ah_sq_durable(w, ah_sq_commit_mark(&w->base));
    w->dur = NULL;
    close(d->fd);
    free(d->path);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* One fdatasync of the WAL (mu not held). 0, or -1 with errno. */
static int sync_wal(struct ah_sq_dur *d)
{
    pthread_mutex_lock(&d->mu);
    while (d->hold)
        pthread_cond_wait(&d->cv, &d->mu);
    bool fail = d->fail_next > 0;
    if (fail)
        d->fail_next--;
    pthread_mutex_unlock(&d->mu);
    if (fail) {
        errno = EIO;
        return -1;
    }
    /* SQLite deletes the WAL only when its last connection to the file
     * closes, which the daemon's do not before ah_sq_walsync_stop; should
     * another process have replaced it all the same, the new one is
     * synced (one syncer at a time: fd is this thread's here). */
    struct stat st;
    if (fstat(d->fd, &st) == 0 && st.st_nlink == 0) {
        int fd = open(d->path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            close(d->fd);
            d->fd = fd;
        }
    }
    int rc;
    do
        rc = fdatasync(d->fd);
    while (rc != 0 && errno == EINTR);
    return rc;
}

/* What this file counts: the writes made to the WAL so far. */
static uint64_t written(const struct ah_sq_dur *d)
{
    uint64_t n = 0;
    (void)ah_sq_walbuf_written(d->wal, &n);
    return n;
}

bool ah_sq_durable(ah_sq_store *w, uint64_t mark)
{
    struct ah_sq_dur *d = w->dur;
    if (d == NULL)
        return true; /* synchronous=FULL: durable when committed */
    if (atomic_load_explicit(&d->synced_pub, memory_order_acquire) >= mark)
        return true;
    pthread_mutex_lock(&d->mu);
    d->waiting++;
    while (d->synced < mark) {
        if (d->syncing) { /* its sync may not cover mark: wait, then look */
            pthread_cond_wait(&d->cv, &d->mu);
            continue;
        }
        d->syncing = true;
        /* Every write counted by now has returned: this sync covers them. */
        uint64_t upto = written(d);
        pthread_mutex_unlock(&d->mu);
        int rc = sync_wal(d);
        int e = errno;
        pthread_mutex_lock(&d->mu);
        d->syncing = false;
        d->syncs++;
        if (rc != 0) {
            /* See the top of this file: no answer about what it covered
             * can be true. */
            ah_log(w->base.lg, AH_LOG_ERROR, "store",
                   "sqlite: the WAL could not be synced to disk (%s): stopping at once; the "
                   "restart replays what the disk holds",
                   strerror(e));
            _exit(EX_IOERR);
        }
        if (upto > d->synced) {
            d->synced = upto;
            atomic_store_explicit(&d->synced_pub, upto, memory_order_release);
        }
        pthread_cond_broadcast(&d->cv);
    }
    d->waiting--;
    pthread_mutex_unlock(&d->mu);
    return true;
}

void ah_sq_durable_after(ah_sq_store *w)
{
    if (w->dur == NULL || tl_defer)
        return;
    (void)ah_sq_durable(w, written(w->dur));
}

void ah_sq_defer_durable(ah_store *st, bool defer)
{
    (void)st;
    tl_defer = defer;
}

uint64_t ah_sq_commit_mark(ah_store *st)
{
    ah_sq_store *w = ah_sq(st);
    return w->dur != NULL ? written(w->dur) : 0;
}

bool ah_sq_durable_op(ah_store *st, uint64_t mark)
{
    return ah_sq_durable(ah_sq(st), mark);
}

/* ---- test hooks (store.h) ----------------------------------------------- */

static struct ah_sq_dur *dur_of(ah_store *st)
{
    if (st == NULL || st->ops != &ah_sq_ops)
        return NULL;
    return ah_sq(st)->dur;
}

int ah_store_sqlite_sync_hold(ah_store *st, bool hold)
{
    struct ah_sq_dur *d = dur_of(st);
    if (d == NULL)
        return AH_STORE_ERR;
    pthread_mutex_lock(&d->mu);
    d->hold = hold;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return AH_STORE_OK;
}

int ah_store_sqlite_sync_fail(ah_store *st, int n)
{
    struct ah_sq_dur *d = dur_of(st);
    if (d == NULL)
        return AH_STORE_ERR;
    pthread_mutex_lock(&d->mu);
    d->fail_next = n > 0 ? n : 0;
    pthread_mutex_unlock(&d->mu);
    return AH_STORE_OK;
}

int ah_store_sqlite_sync_stats(ah_store *st, ah_store_sqlite_sync *out)
{
    struct ah_sq_dur *d = dur_of(st);
    if (d == NULL)
        return AH_STORE_ERR;
    ah_sq_store *w = ah_sq(st);
    pthread_mutex_lock(&d->mu);
    *out = (ah_store_sqlite_sync){
        .commits = atomic_load_explicit(&w->commits, memory_order_acquire),
        .written = written(d),
        .synced = d->synced,
        .syncs = d->syncs,
        .waiting = d->waiting,
    };
    pthread_mutex_unlock(&d->mu);
    return AH_STORE_OK;
}
