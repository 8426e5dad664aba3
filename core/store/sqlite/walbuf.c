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
} walbuf_file;

static sqlite3_vfs walbuf_vfs;
static sqlite3_vfs *real_vfs;
static pthread_once_t walbuf_once = PTHREAD_ONCE_INIT;
static int walbuf_rc = SQLITE_ERROR;

static pthread_mutex_t pending_mu = PTHREAD_MUTEX_INITIALIZER;
static walbuf_file *pending; /* the file holding buffered frames, or NULL */
static _Atomic unsigned long long n_writes, n_flushes;

/* Writes f's buffer out (pending_mu held). */
static int flush_locked(walbuf_file *f)
{
    int rc = SQLITE_OK;
    if (f->len > 0) {
        rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->off);
        atomic_fetch_add_explicit(&n_flushes, 1, memory_order_relaxed);
        f->len = 0;
    }
    if (pending == f)
        pending = NULL;
    return rc;
}

/* Writes out whatever any file buffered. */
static int flush_pending(void)
{
    pthread_mutex_lock(&pending_mu);
    int rc = pending != NULL ? flush_locked(pending) : SQLITE_OK;
    pthread_mutex_unlock(&pending_mu);
    return rc;
}

static int flush_file(walbuf_file *f)
{
    if (!f->wal)
        return SQLITE_OK;
    pthread_mutex_lock(&pending_mu);
    int rc = flush_locked(f);
    pthread_mutex_unlock(&pending_mu);
    return rc;
}

static int wb_close(sqlite3_file *pf)
{
    walbuf_file *f = (walbuf_file *)pf;
    int frc = flush_file(f);
    int rc = f->real->pMethods->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return frc != SQLITE_OK ? frc : rc;
}

static int wb_read(sqlite3_file *pf, void *p, int n, sqlite3_int64 off)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush_file(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, p, n, off);
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
        rc = flush_locked(pending);
    if (rc == SQLITE_OK && f->len > 0 &&
        (off != f->off + (sqlite3_int64)f->len || f->len + (size_t)n > WALBUF_CAP))
        rc = flush_locked(f);
    if (rc == SQLITE_OK && f->buf == NULL)
        f->buf = malloc(WALBUF_CAP);
    if (rc != SQLITE_OK)
        return rc;
    if (f->buf == NULL) /* out of memory: written through */
        return f->real->pMethods->xWrite(f->real, p, n, off);
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
 * offsets below) goes straight to the file for the same reason. */
static int wb_write(sqlite3_file *pf, const void *p, int n, sqlite3_int64 off)
{
    walbuf_file *f = (walbuf_file *)pf;
    if (!f->wal || n <= 0 || (size_t)n > WALBUF_CAP) {
        int rc = flush_file(f);
        return rc != SQLITE_OK ? rc : f->real->pMethods->xWrite(f->real, p, n, off);
    }
    atomic_fetch_add_explicit(&n_writes, 1, memory_order_relaxed);
    pthread_mutex_lock(&pending_mu);
    int rc;
    if (f->commit_end > 0 && off < f->commit_end && !(off == 0 && n == WAL_FILE_HDR)) {
        rc = flush_locked(f);
        if (rc == SQLITE_OK)
            rc = f->real->pMethods->xWrite(f->real, p, n, off);
    } else {
        f->commit_end = 0; /* the next transaction's frames, or a new WAL */
        bool commit_page = f->commit_frame;
        f->commit_frame = is_commit_header(p, n);
        rc = append_locked(f, p, n, off);
        if (rc == SQLITE_OK && commit_page) {
            rc = flush_locked(f);
            /* Failed: SQLite rolls back and writes these frames again. */
            f->commit_end = rc == SQLITE_OK ? off + n : 0;
        }
    }
    pthread_mutex_unlock(&pending_mu);
    return rc;
}

static int wb_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush_file(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
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
    int rc = flush_pending(); /* the end of a transaction */
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

static int wb_shm_lock(sqlite3_file *pf, int offset, int n, int flags)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush_pending();
    int lrc = f->real->pMethods->xShmLock(f->real, offset, n, flags);
    return rc != SQLITE_OK ? rc : lrc;
}

/* The writer calls this between the two copies of the WAL index header it
 * publishes a commit with: the frames must be in the file by then. A
 * failure here cannot be reported (void): the file's next operation will
 * meet the same error, and SQLite's reader sees frames whose checksums do
 * not match and treats the WAL as ending before them. */
static void wb_shm_barrier(sqlite3_file *pf)
{
    walbuf_file *f = (walbuf_file *)pf;
    (void)flush_pending();
    f->real->pMethods->xShmBarrier(f->real);
}

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

void ah_sq_walbuf_stats(unsigned long long *writes, unsigned long long *flushes)
{
    if (writes != NULL)
        *writes = atomic_load(&n_writes);
    if (flushes != NULL)
        *flushes = atomic_load(&n_flushes);
}
