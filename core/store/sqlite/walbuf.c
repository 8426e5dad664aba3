/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's writer connection opens its files through this VFS, a thin
 * layer over SQLite's default ("unix"), that gathers a transaction's WAL
 * writes into one.
 *
 * SQLite writes each WAL frame with two pwrite() calls (its 24-byte header,
 * then the page), so a group commit of 47 pages (an ERP create-job's group
 * of ~19 requests, bench/README.md) was 94 system calls made while the
 * store's lock is held; on a paravirtualised machine each is costly. Here
 * the frames of a WAL file are appended to a buffer while they follow one
 * another in the file, and the buffer goes to the file in one pwrite():
 *
 *   - with a commit frame's page (the last frame of a transaction): so
 *     that a write that fails (a full disk) fails that xWrite, and SQLite
 *     rolls the commit back before publishing it. What it writes after
 *     (the frames' checksums rewritten) goes straight to the file;
 *   - before the WAL's new length is published to other connections
 *     (nothing is left by then; kept as a safeguard): the writer publishes
 *     it in the shared-memory index, whose header it writes around an
 *     xShmBarrier on the database file; every barrier, shared-memory lock
 *     or unmap, and unlock of a file opened here writes out what is
 *     buffered, so nobody can read a frame that is not in the file;
 *   - before anything else touches the WAL file itself (read, sync,
 *     truncate, size, file control, close), and before a write that does
 *     not follow the buffered ones or would overflow the buffer.
 *
 * What a kill -9 finds is therefore a prefix of what SQLite wrote, as
 * without the buffer; a transaction whose COMMIT returned had its frames
 * written (with its commit frame). Only the writer connection uses it:
 * the readers and the checkpointer never write the WAL.
 *
 * A write of the buffer that fails (a full disk, a short write) loses
 * frames SQLite believes written: its WAL index may already point at them.
 * Through the xWrite that caused it, the error is SQLite's own write error
 * (its pager then rolls the whole transaction back). Anywhere else (a read
 * of the WAL, a sync, a barrier) SQLite may not know a write failed: on
 * SQLITE_FULL from a statement it rolls back only that statement and the
 * transaction may go on to COMMIT with the index pointing at frames never
 * written. So the WAL file is marked failed: that operation and every
 * later write, sync or size of it, and every read reaching the lost bytes,
 * fail with SQLITE_IOERR_WRITE (after which SQLite rolls the whole
 * transaction back), until the write transaction ends (the writer lets the
 * WAL's write lock go, on the database file's shared memory) or the WAL is
 * truncated. Nothing buffered is dropped without that.
 *
 * One file at a time holds buffered frames (SQLite lets one connection
 * write a database's WAL at a time, and the process has few databases):
 * a process-wide mutex guards which, so any thread's barrier can write it
 * out and a closed file is never referenced.
 */
#include "sqlite_int.h"

#include <stdlib.h>
#include <string.h>

/* Bytes buffered for one write: 29 frames of 4 KiB pages (a group commit
 * of the ERP create-job writes ~47: two writes). The default VFS writes at
 * most 0x1ffff bytes a call (unixWrite masks the length to 17 bits: SQLite
 * never writes more than a 64 KiB page itself) and reports a longer write
 * as SQLITE_FULL, so a buffer must stay under 128 KiB. */
#define WALBUF_CAP ((size_t)120 << 10)

typedef struct walbuf_file {
    sqlite3_file base;  /* pMethods: walbuf_io */
    sqlite3_file *real; /* the default VFS's file, right after this struct */
    bool wal;           /* a WAL file: its writes are buffered */
    unsigned char *buf; /* WALBUF_CAP bytes, allocated at the first write */
    size_t len;         /* bytes buffered */
    sqlite3_int64 off;  /* where they go in the file */
    bool commit_frame;  /* the last write was a commit frame's header */
    sqlite3_int64 commit_end; /* > 0: a commit's frames are written, up to here */
    /* The database file's name (a WAL file: of its database); the name
     * SQLite passed to xOpen, valid until xClose. */
    const char *db_name;
    bool main_db;       /* the database file itself */
    bool failed;        /* a WAL whose buffer could not be written */
    /* Writes made to the file so far, counted once each has returned
     * (walsync.c's mark): a commit's frames, its checksums rewritten, are
     * all counted before SQLite publishes it to readers. */
    _Atomic uint64_t written;
    sqlite3_int64 lost; /* failed: from here on the file is not what SQLite wrote */
    struct walbuf_file *next_wal; /* the open WAL files (pending_mu) */
} walbuf_file;

static sqlite3_vfs walbuf_vfs;
static sqlite3_vfs *real_vfs;
static pthread_once_t walbuf_once = PTHREAD_ONCE_INIT;
static int walbuf_rc = SQLITE_ERROR;

static pthread_mutex_t pending_mu = PTHREAD_MUTEX_INITIALIZER;
static walbuf_file *pending; /* the file holding buffered frames, or NULL */
static walbuf_file *wals;    /* the open WAL files, through next_wal */
static _Atomic unsigned long long n_writes, n_flushes;
static atomic_int fail_writes; /* test hook: writes of a WAL still to fail */

/* A WAL's write: the real one, or (test hook) a failure as a full disk's. */
static int wal_write(walbuf_file *f, const void *p, int n, sqlite3_int64 off)
{
    int left = atomic_load_explicit(&fail_writes, memory_order_relaxed);
    while (left > 0 && !atomic_compare_exchange_weak(&fail_writes, &left, left - 1)) {
    }
    if (left > 0)
        return SQLITE_FULL; /* what the default VFS reports for ENOSPC */
    int rc = f->real->pMethods->xWrite(f->real, p, n, off);
    atomic_fetch_add_explicit(&f->written, 1, memory_order_seq_cst);
    return rc;
}

/* f could not be written from `off` on (pending_mu held). */
static void mark_failed(walbuf_file *f, sqlite3_int64 off)
{
    if (!f->failed || off < f->lost)
        f->lost = off;
    f->failed = true;
}

/* Writes f's buffer out (pending_mu held). Failed, the buffer is let go
 * with f marked failed: what SQLite believes written was not. */
static int flush_locked(walbuf_file *f)
{
    int rc = SQLITE_OK;
    if (f->len > 0) {
        rc = wal_write(f, f->buf, (int)f->len, f->off);
        atomic_fetch_add_explicit(&n_flushes, 1, memory_order_relaxed);
        if (rc != SQLITE_OK)
            mark_failed(f, f->off);
        f->len = 0;
    }
    if (pending == f)
        pending = NULL;
    return rc;
}

/* The error of an operation other than xWrite whose flush failed, or of
 * any operation on a failed WAL: an I/O error, which makes SQLite roll the
 * whole transaction back (SQLITE_FULL may make it undo one statement). */
static int io_error(int rc)
{
    return rc == SQLITE_OK ? SQLITE_OK : SQLITE_IOERR_WRITE;
}

/* Writes out whatever any file buffered (the file that failed is marked). */
static int flush_pending(void)
{
    pthread_mutex_lock(&pending_mu);
    int rc = pending != NULL ? flush_locked(pending) : SQLITE_OK;
    pthread_mutex_unlock(&pending_mu);
    return io_error(rc);
}

/* Writes f's buffer out before another operation on it: SQLITE_IOERR_WRITE
 * when that fails or f had failed before. */
static int flush_file(walbuf_file *f)
{
    if (!f->wal)
        return SQLITE_OK;
    pthread_mutex_lock(&pending_mu);
    int rc = flush_locked(f);
    if (f->failed)
        rc = SQLITE_IOERR_WRITE;
    pthread_mutex_unlock(&pending_mu);
    return io_error(rc);
}

/* The database named `db` let its WAL's write lock go: its transaction
 * ended (committed, or rolled back), and with it what a failed write lost. */
static void write_ended(const char *db)
{
    pthread_mutex_lock(&pending_mu);
    for (walbuf_file *w = wals; w != NULL; w = w->next_wal) {
        if (w->failed && w->db_name != NULL && strcmp(w->db_name, db) == 0) {
            if (w->len > 0) /* nothing is buffered in a failed file; kept safe */
                (void)flush_locked(w);
            w->failed = false;
        }
    }
    pthread_mutex_unlock(&pending_mu);
}

static int wb_close(sqlite3_file *pf)
{
    walbuf_file *f = (walbuf_file *)pf;
    int frc = flush_file(f);
    if (f->wal) {
        pthread_mutex_lock(&pending_mu);
        for (walbuf_file **w = &wals; *w != NULL; w = &(*w)->next_wal) {
            if (*w == f) {
                *w = f->next_wal;
                break;
            }
        }
        pthread_mutex_unlock(&pending_mu);
    }
    int rc = f->real->pMethods->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return frc != SQLITE_OK ? frc : rc;
}

/* A failed WAL still reads what lies before the lost bytes (the committed
 * frames SQLite reloads pages from as it rolls back); nothing from there. */
static int wb_read(sqlite3_file *pf, void *p, int n, sqlite3_int64 off)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = SQLITE_OK;
    if (f->wal) {
        pthread_mutex_lock(&pending_mu);
        rc = flush_locked(f);
        if (f->failed && off + n > f->lost)
            rc = SQLITE_IOERR_WRITE;
        pthread_mutex_unlock(&pending_mu);
    }
    return rc != SQLITE_OK ? io_error(rc) : f->real->pMethods->xRead(f->real, p, n, off);
}

/* A WAL frame's header: 24 bytes, the page number, then the database's size
 * in pages after a commit (the commit frame) or 0 (SQLite's file format). */
#define WAL_FRAME_HDR 24
#define WAL_FILE_HDR 32

static bool is_commit_header(const void *p, int n)
{
    const unsigned char *b = p;
    return n == WAL_FRAME_HDR && (b[4] | b[5] | b[6] | b[7]) != 0;
}

/* Appends to f's buffer, written out first when the write does not follow
 * on or does not fit (pending_mu held). */
static int append_locked(walbuf_file *f, const void *p, int n, sqlite3_int64 off)
{
    int rc = SQLITE_OK;
    if (pending != NULL && pending != f)
        rc = io_error(flush_locked(pending)); /* another file's */
    if (rc == SQLITE_OK && f->len > 0 &&
        (off != f->off + (sqlite3_int64)f->len || f->len + (size_t)n > WALBUF_CAP))
        rc = flush_locked(f);
    if (rc == SQLITE_OK && f->buf == NULL)
        f->buf = malloc(WALBUF_CAP);
    if (rc != SQLITE_OK)
        return rc;
    if (f->buf == NULL) { /* out of memory: written through */
        rc = wal_write(f, p, n, off);
        if (rc != SQLITE_OK)
            mark_failed(f, off);
        return rc;
    }
    if (f->len == 0)
        f->off = off;
    memcpy(f->buf + f->len, p, (size_t)n);
    f->len += (size_t)n;
    pending = f;
    return SQLITE_OK;
}

/* A commit's frames are written out with the commit frame's page, so that
 * this write, not the barrier that publishes the commit (it cannot fail),
 * reports an error (a full disk): SQLite then rolls the commit back. What
 * SQLite writes before publishing it (the frames' checksums rewritten, at
 * offsets below) goes straight to the file for the same reason. A write's
 * own failure (its flush's) is SQLite's write error, as without the
 * buffer: its pager then rolls the whole transaction back; a write to a
 * WAL that failed before fails (SQLITE_IOERR_WRITE). */
static int wb_write(sqlite3_file *pf, const void *p, int n, sqlite3_int64 off)
{
    walbuf_file *f = (walbuf_file *)pf;
    if (!f->wal)
        return f->real->pMethods->xWrite(f->real, p, n, off);
    atomic_fetch_add_explicit(&n_writes, 1, memory_order_relaxed);
    pthread_mutex_lock(&pending_mu);
    int rc;
    if (f->failed) {
        rc = SQLITE_IOERR_WRITE;
    } else if (n <= 0 || (size_t)n > WALBUF_CAP ||
               (f->commit_end > 0 && off < f->commit_end && !(off == 0 && n == WAL_FILE_HDR))) {
        rc = flush_locked(f);
        if (rc == SQLITE_OK) {
            rc = wal_write(f, p, n, off);
            if (rc != SQLITE_OK)
                mark_failed(f, off);
        }
    } else {
        f->commit_end = 0; /* the next transaction's frames, or a new WAL */
        bool commit_page = f->commit_frame;
        f->commit_frame = is_commit_header(p, n);
        rc = append_locked(f, p, n, off);
        if (rc == SQLITE_OK && commit_page) {
            rc = flush_locked(f);
            /* Failed: the COMMIT fails, and SQLite rolls the transaction
             * back (the WAL stays failed until it has). */
            f->commit_end = rc == SQLITE_OK ? off + n : 0;
        }
    }
    pthread_mutex_unlock(&pending_mu);
    return rc;
}

/* A truncated WAL holds nothing a failed write lost. */
static int wb_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    walbuf_file *f = (walbuf_file *)pf;
    if (f->wal) {
        pthread_mutex_lock(&pending_mu);
        (void)flush_locked(f);
        f->failed = false;
        pthread_mutex_unlock(&pending_mu);
    }
    return f->real->pMethods->xTruncate(f->real, size);
}

static int wb_sync(sqlite3_file *pf, int flags)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush_file(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wb_file_size(sqlite3_file *pf, sqlite3_int64 *size)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush_file(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int wb_lock(sqlite3_file *pf, int lock)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xLock(f->real, lock);
}

static int wb_unlock(sqlite3_file *pf, int lock)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush_pending(); /* a rollback journal's end of a transaction */
    int urc = f->real->pMethods->xUnlock(f->real, lock);
    return rc != SQLITE_OK ? rc : urc;
}

static int wb_check_reserved(sqlite3_file *pf, int *out)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int wb_file_control(sqlite3_file *pf, int op, void *arg)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush_file(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int wb_sector_size(sqlite3_file *pf)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xSectorSize(f->real);
}

static int wb_device_characteristics(sqlite3_file *pf)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int wb_shm_map(sqlite3_file *pf, int pg, int pgsz, int extend, void volatile **pp)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

/* SQLite's WAL_WRITE_LOCK: the first shared-memory lock (wal.c). */
#define WAL_WRITE_LOCK_SLOT 0

static int wb_shm_lock(sqlite3_file *pf, int offset, int n, int flags)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush_pending();
    int lrc = f->real->pMethods->xShmLock(f->real, offset, n, flags);
    /* The writer lets the write lock go at the end of its transaction,
     * committed or rolled back: a failed WAL of this database is sound
     * again (the next transaction writes from the last commit on). */
    if (f->main_db && offset <= WAL_WRITE_LOCK_SLOT && offset + n > WAL_WRITE_LOCK_SLOT &&
        (flags & (SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE)) ==
            (SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE) &&
        f->db_name != NULL)
        write_ended(f->db_name);
    return rc != SQLITE_OK ? rc : lrc;
}

/* The writer calls this between the two copies of the WAL index header it
 * publishes a commit with: the frames must be in the file by then (they
 * are: the commit frame's xWrite wrote them, and could still fail the
 * COMMIT). A failure here cannot be reported (void): the file that failed
 * is marked, and fails its next operations as above. */
static void wb_shm_barrier(sqlite3_file *pf)
{
    walbuf_file *f = (walbuf_file *)pf;
    (void)flush_pending();
    f->real->pMethods->xShmBarrier(f->real);
}

/* A failure is recorded as the barrier's is (the file that failed is
 * marked); the unmap itself goes on. */
static int wb_shm_unmap(sqlite3_file *pf, int del)
{
    walbuf_file *f = (walbuf_file *)pf;
    (void)flush_pending();
    return f->real->pMethods->xShmUnmap(f->real, del);
}

static int wb_fetch(sqlite3_file *pf, sqlite3_int64 off, int n, void **pp)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush_file(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch(f->real, off, n, pp);
}

static int wb_unfetch(sqlite3_file *pf, sqlite3_int64 off, void *p)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xUnfetch(f->real, off, p);
}

static const sqlite3_io_methods walbuf_io = {
    .iVersion = 3,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_file_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_check_reserved,
    .xFileControl = wb_file_control,
    .xSectorSize = wb_sector_size,
    .xDeviceCharacteristics = wb_device_characteristics,
    .xShmMap = wb_shm_map,
    .xShmLock = wb_shm_lock,
    .xShmBarrier = wb_shm_barrier,
    .xShmUnmap = wb_shm_unmap,
    .xFetch = wb_fetch,
    .xUnfetch = wb_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags,
                   int *out_flags)
{
    (void)vfs;
    walbuf_file *f = (walbuf_file *)pf;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK || f->real->pMethods == NULL) {
        f->base.pMethods = NULL; /* SQLite then does not call xClose */
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    /* Methods of version 3 are called only when the real file has them. */
    if (f->real->pMethods->iVersion < 3) {
        f->real->pMethods->xClose(f->real);
        f->base.pMethods = NULL;
        return SQLITE_CANTOPEN;
    }
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    f->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
    if (name != NULL && f->main_db)
        f->db_name = name;
    else if (name != NULL && f->wal)
        f->db_name = sqlite3_filename_database(name);
    if (f->wal) {
        pthread_mutex_lock(&pending_mu);
        f->next_wal = wals;
        wals = f;
        pthread_mutex_unlock(&pending_mu);
    }
    f->base.pMethods = &walbuf_io;
    return SQLITE_OK;
}

static void walbuf_register(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (real_vfs == NULL)
        return;
    walbuf_vfs = *real_vfs;
    walbuf_vfs.zName = AH_SQ_WALBUF_VFS;
    walbuf_vfs.szOsFile = (int)sizeof(walbuf_file) + real_vfs->szOsFile;
    walbuf_vfs.xOpen = wb_open;
    walbuf_vfs.pNext = NULL;
    walbuf_rc = sqlite3_vfs_register(&walbuf_vfs, 0);
}

const char *ah_sq_walbuf_vfs(void)
{
    pthread_once(&walbuf_once, walbuf_register);
    return walbuf_rc == SQLITE_OK ? AH_SQ_WALBUF_VFS : NULL;
}

int ah_sq_walbuf_written(sqlite3_file *wal, uint64_t *out)
{
    if (wal == NULL || wal->pMethods != &walbuf_io || !((walbuf_file *)wal)->wal)
        return -1;
    *out = atomic_load_explicit(&((walbuf_file *)wal)->written, memory_order_seq_cst);
    return 0;
}

void ah_sq_walbuf_fail_writes(int n)
{
    atomic_store(&fail_writes, n > 0 ? n : 0);
}

void ah_sq_walbuf_stats(unsigned long long *writes, unsigned long long *flushes)
{
    if (writes != NULL)
        *writes = atomic_load(&n_writes);
    if (flushes != NULL)
        *flushes = atomic_load(&n_flushes);
}
