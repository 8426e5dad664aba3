/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SQLite engine of the store: its lifecycle, scopes, the vtable and
 * the opener. The operations live in the other files of this folder, one
 * per group of tables; sqlite_int.h is what they share.
 *
 * Concurrency: one sqlite3 connection per store, opened SQLITE_OPEN_NOMUTEX
 * and guarded by one mutex in the store struct. Every operation holds the
 * mutex for its whole duration, so the cached prepared statements and the
 * connection's error message are never shared between threads. One
 * writing connection is enough because SQLite serialises writers anyway.
 * The reads a client waits on (record lists and look-ups, whether a record
 * is deleted, the event log, the integration log, webhook endpoints and
 * their deliveries, a bulk job's report) use reader connections of their
 * own (ah_sq_read_lock),
 * which WAL lets run beside the writer: they neither queue behind a long
 * write nor commit the open group transaction early. They see what is
 * committed, which is everything a client has been answered for; a thread
 * that wrote something not yet committed reads through the writer, so it
 * always sees its own writes. Other processes (the CLI next to a running daemon) share the
 * file through WAL mode and a 5 s busy timeout; writes start with BEGIN
 * IMMEDIATE so that two writers queue on the lock instead of failing with
 * SQLITE_BUSY half-way through a transaction.
 *
 * Callbacks of the *_list and *_query operations run AFTER the mutex is
 * released, on copies of the rows, so a callback may call the store again.
 */
#include "clock.h"
#include "sqlite_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define AH_SQ_BUSY_TIMEOUT_MS 5000

/* The checkpointer runs when this many frames were added to the WAL since
 * its last run, and at least every second when the WAL holds any. Under
 * sustained writes the WAL restarts only when a writer waits for a pass at
 * its bound (wal_hook), and that wait is what the checkpointer lags behind:
 * passes every 256 frames (1 MiB) rather than 1,024 cost the checkpointer
 * ~1.5 us more CPU a create and took the ERP benchmark's p99 from 5.1-5.4
 * to 4.3-4.6 ms (bench/README.md, "Night of 2026-12-05"). */
#define AH_SQ_CKPT_FRAMES 256
#define AH_SQ_CKPT_EVERY_MS 1000L
/* The WAL file is trimmed to this size whenever it restarts from its
 * beginning (journal_size_limit). */
#define AH_SQ_WAL_LIMIT_BYTES 134217728
/* A WAL this long makes the committing writer wait for one checkpoint pass
 * (see wal_hook): a bit under the limit in frames of the default 4 KiB page
 * (a frame is the page and a 24-byte header), so that the WAL restarts
 * before it outgrows the file SQLite keeps and a restart never truncates.
 * A restart that trimmed a WAL of 1 GiB (the threshold until 2026-12-05)
 * held the store's lock for 100-200 ms while the kernel dropped the file's
 * pages: the ERP side-by-side's p99 (bench/README.md). */
#define AH_SQ_CKPT_CATCHUP_FRAMES (AH_SQ_WAL_LIMIT_BYTES / (4096 + 24) - 512)
#define AH_SQ_CKPT_CATCHUP_MAX_MS 2000L
/* The checkpointer's nice value (0 .. 19; the other threads keep 0). */
#define AH_SQ_CKPT_NICE 10

struct ah_sq_ckpt {
    sqlite3 *db; /* its own connection */
    _Atomic uint64_t *commits; /* the writer's count of its commits (walsync.c) */
    const struct ah_logger *lg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool due, stop;
    int frames;  /* WAL frames at the last commit (written by the WAL hook only) */
    int copied;  /* frames the last pass copied when it copied them all, else -1 */
    int next_at; /* wake the checkpointer when the WAL reaches this many */
    int catchup_at; /* a writer waits for a pass when the WAL reaches this */
    unsigned long started, finished; /* checkpoint passes (guarded by mu) */
    unsigned long restarts, catchups; /* ah_store_sqlite_ckpt_stats */
    pthread_cond_t done_cv;          /* a pass finished */
};

/* Replaces SQLite's auto-checkpoint, which runs in the committing thread
 * and made a commit now and then wait for a whole checkpoint (an fsync and
 * a copy of up to 64 MiB): the p99 of every write. The connection's lock is
 * held here: only the checkpointer is told. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    struct ah_sq_ckpt *k = arg;
    /* After the commit's frames were written: what a sync from now on
     * covers (walsync.c). */
    atomic_fetch_add_explicit(k->commits, 1, memory_order_release);
    pthread_mutex_lock(&k->mu);
    if (frames < k->frames) { /* the WAL restarted from its beginning */
        k->next_at = AH_SQ_CKPT_FRAMES;
        k->catchup_at = AH_SQ_CKPT_CATCHUP_FRAMES;
        k->restarts++;
    }
    k->frames = frames;
    if (frames >= k->next_at && !k->due) {
        k->due = true;
        pthread_cond_signal(&k->cv);
    }
    /* A PASSIVE checkpoint copies what is in the WAL when it starts; the
     * WAL restarts from its beginning only when a writer finds it all
     * copied. Under a steady stream of group commits the checkpointer
     * rarely wins that race: the sustained run saw the WAL reach 2.2 GB,
     * and the writer that finally restarted it spent a second truncating
     * the file under the store's lock. So once the WAL is this long, the
     * committing writer (it holds the store's lock: nothing is appended
     * meanwhile) waits for one pass that starts after now and copies
     * everything; its next transaction restarts the WAL. The wait is what
     * the checkpointer lagged behind, not the whole WAL. Should a reader
     * still pin the WAL, the next wait comes only after as many frames
     * again, not at every commit. */
    if (frames >= k->catchup_at && !k->stop) {
        unsigned long want = k->started + 1;
        k->catchup_at = frames + AH_SQ_CKPT_CATCHUP_FRAMES;
        k->catchups++;
        k->due = true;
        pthread_cond_signal(&k->cv);
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        t.tv_sec += AH_SQ_CKPT_CATCHUP_MAX_MS / 1000;
        while (k->finished < want && !k->stop)
            if (pthread_cond_timedwait(&k->done_cv, &k->mu, &t) != 0)
                break; /* a stuck checkpoint must not stop the writers */
    }
    pthread_mutex_unlock(&k->mu);
    return SQLITE_OK;
}

static void *ckpt_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-checkpoint"); /* top -H, perf */
    /* Copying the WAL back is never what a request waits for (a writer
     * waits for it only past AH_SQ_CKPT_CATCHUP_FRAMES, and then it
     * sleeps): on a machine the requests keep busy, the request threads
     * come first. Measured on the ERP create-job (bench/README.md). */
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), AH_SQ_CKPT_NICE);
    struct ah_sq_ckpt *k = arg;
    pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        if (!k->due) {
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            t.tv_sec += AH_SQ_CKPT_EVERY_MS / 1000;
            (void)pthread_cond_timedwait(&k->cv, &k->mu, &t);
            if (k->stop)
                break;
            if (!k->due && k->frames == k->copied)
                continue; /* nothing committed since a pass copied it all */
        }
        k->due = false;
        k->started++;
        pthread_mutex_unlock(&k->mu);
        /* PASSIVE: copies what no reader still needs, never blocks a
         * writer; the next writer restarts the WAL from its beginning once
         * it is all copied (journal_size_limit then trims the file). */
        int nlog = 0, ncopied = 0;
        int rc = sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &ncopied);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
            ah_log(k->lg, AH_LOG_WARN, "store", "sqlite: checkpoint: %s", sqlite3_errmsg(k->db));
        pthread_mutex_lock(&k->mu);
        /* Once per AH_SQ_CKPT_FRAMES new frames, not after every commit. */
        k->next_at = (nlog > 0 ? nlog : 0) + AH_SQ_CKPT_FRAMES;
        /* Not k->frames: the hook tells a restarted WAL by its frames
         * falling below the last commit's, and must keep seeing them. */
        k->copied = rc == SQLITE_OK && nlog == ncopied ? nlog : -1;
        k->finished = k->started;
        pthread_cond_broadcast(&k->done_cv);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

static void ckpt_stop(struct ah_sq_ckpt *k)
{
    if (k == NULL)
        return;
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_signal(&k->cv);
    pthread_cond_broadcast(&k->done_cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    sqlite3_close(k->db);
    pthread_cond_destroy(&k->done_cv);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

/* Starts the checkpointer of s (a file in WAL mode). On failure SQLite's
 * own auto-checkpoint stays on: slower tails, nothing lost. */
static void ckpt_start(ah_sq_store *s, const char *path)
{
    struct ah_sq_ckpt *k = calloc(1, sizeof *k);
    if (k == NULL)
        return;
    k->lg = s->base.lg;
    k->commits = &s->commits;
    k->next_at = AH_SQ_CKPT_FRAMES;
    k->catchup_at = AH_SQ_CKPT_CATCHUP_FRAMES;
    bool ok = ah_cond_init_mono(&k->cv) == 0;
    if (ok && ah_cond_init_mono(&k->done_cv) != 0) {
        pthread_cond_destroy(&k->cv);
        ok = false;
    }
    if (!ok) {
        free(k);
        return;
    }
    pthread_mutex_init(&k->mu, NULL);
    if (sqlite3_open_v2(path, &k->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_busy_timeout(k->db, AH_SQ_BUSY_TIMEOUT_MS) != SQLITE_OK ||
        /* A connection learns that the file is in WAL mode when it first
         * reads it; until then a checkpoint does nothing (log -1). */
        sqlite3_exec(k->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
        pthread_create(&k->thread, NULL, ckpt_main, k) != 0) {
        sqlite3_close(k->db);
        pthread_cond_destroy(&k->done_cv);
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        free(k);
        return;
    }
    s->ckpt = k;
    sqlite3_wal_hook(s->db, wal_hook, k); /* replaces the auto-checkpoint */
}

/* This file's statements, by cache slot (sqlite_int.h). */
static const char *const q_sql[Q_COUNT] = {
    [Q_DATA_VERSION] = "PRAGMA data_version",
};

/* Readers: connections for the reads a client waits on (sqlite_int.h). */
#define AH_SQ_READERS 2
/* Their page caches are small: a read touches a few index pages and rows. */
#define AH_SQ_READER_CACHE "PRAGMA cache_size=-2048"

/* What the calling thread has written and not committed: inside a scope of
 * that store (it holds the store's lock), or in a group transaction that
 * had not ended when its scope ended. Its reads go to the writer then. */
static _Thread_local const ah_sq_store *tl_scope_store;
static _Thread_local const ah_sq_store *tl_group_store;
static _Thread_local uint64_t tl_group_id;
static _Thread_local unsigned tl_reader_hint;

static bool own_writes_pending(const ah_sq_store *s)
{
    return tl_scope_store == s ||
           (tl_group_store == s &&
            atomic_load_explicit(&s->group_ended_id, memory_order_acquire) < tl_group_id);
}

/* A reader's PRAGMAs, run on its first read rather than when it opens:
 * they read the schema, which each connection parses whole (a quarter of a
 * test's instructions under valgrind went to four connections parsing it
 * as a store opened), and a reader that never serves a read (a CLI
 * command, a short-lived daemon) need not. query_only is set before any
 * statement of the reader runs. */
#define AH_SQ_READER_SETUP \
    "PRAGMA query_only=1; PRAGMA temp_store=MEMORY; PRAGMA mmap_size=0; " AH_SQ_READER_CACHE

/* Whether the reader r, whose lock the caller holds, can serve: sets it up
 * on its first read; one that cannot be set up serves nothing (its reads
 * go to the writer, as when a reader cannot be opened). */
static bool reader_ready(ah_sq_store *r)
{
    if (r->reader_state == 0) {
        r->reader_state = sqlite3_exec(r->db, AH_SQ_READER_SETUP, NULL, NULL, NULL) == SQLITE_OK
                              ? 1
                              : -1;
        if (r->reader_state < 0)
            ah_log(r->base.lg, AH_LOG_WARN, "store",
                   "sqlite: a reader connection cannot be set up (%s): its reads share the "
                   "writer's",
                   sqlite3_errmsg(r->db));
    }
    return r->reader_state > 0;
}

ah_sq_store *ah_sq_read_lock(ah_sq_store *s)
{
    if (s->nreaders == 0 || own_writes_pending(s)) {
        ah_sq_lock(s);
        return s;
    }
    if (tl_reader_hint == 0)
        tl_reader_hint = (unsigned)((uintptr_t)&tl_reader_hint >> 6) | 1u;
    for (int i = 0; i < s->nreaders; i++) {
        ah_sq_store *r = s->readers[(tl_reader_hint + (unsigned)i) % (unsigned)s->nreaders];
        if (pthread_mutex_trylock(&r->mu) == 0) {
            if (reader_ready(r))
                return r;
            pthread_mutex_unlock(&r->mu);
        }
    }
    ah_sq_store *r = s->readers[tl_reader_hint % (unsigned)s->nreaders];
    pthread_mutex_lock(&r->mu);
    if (reader_ready(r))
        return r;
    pthread_mutex_unlock(&r->mu);
    ah_sq_lock(s);
    return s;
}

void ah_sq_read_unlock(ah_sq_store *r)
{
    if (r->writer != NULL) {
        pthread_mutex_unlock(&r->mu);
        /* What it read may be committed and not yet on disk: nothing of
         * it leaves before it is (walsync.c). */
        ah_sq_durable_after(r->writer);
    } else {
        ah_sq_unlock(r);
    }
}

static void sq_finalize_all(ah_sq_store *s)
{
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->q[i]);
    for (int i = 0; i < RQ_VARIANTS; i++)
        sqlite3_finalize(s->rq[i]);
    for (int i = 0; i < LQ_VARIANTS; i++)
        sqlite3_finalize(s->lq[i]);
    for (int i = 0; i < MQ_COUNT; i++)
        sqlite3_finalize(s->mq[i]);
}

static void reader_close(ah_sq_store *r)
{
    if (r == NULL)
        return;
    sq_finalize_all(r);
    sqlite3_close(r->db);
    pthread_mutex_destroy(&r->mu);
    ah_sq_packer_free(r->packer);
    free(r->scratch);
    free(r);
}

/* A read-only connection to path beside writer w, set up on its first
 * read (reader_ready); NULL when it cannot be had (the writer then serves
 * the reads, as before readers existed). */
static ah_sq_store *reader_open(ah_sq_store *w, const char *path)
{
    ah_sq_store *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->base.ops = &ah_sq_ops;
    r->base.lg = w->base.lg;
    r->fail_after = -1;
    r->writer = w;
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return NULL;
    }
    r->packer = ah_sq_packer_new();
    if (r->packer == NULL ||
        sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_extended_result_codes(r->db, 1) != SQLITE_OK ||
        sqlite3_busy_timeout(r->db, AH_SQ_BUSY_TIMEOUT_MS) != SQLITE_OK ||
        ah_sq_fields_register(r->db, r->packer) != 0) {
        reader_close(r);
        return NULL;
    }
    return r;
}

static void readers_start(ah_sq_store *s, const char *path)
{
    s->readers = calloc(AH_SQ_READERS, sizeof *s->readers);
    if (s->readers == NULL)
        return;
    for (int i = 0; i < AH_SQ_READERS; i++) {
        ah_sq_store *r = reader_open(s, path);
        if (r == NULL) {
            ah_log(s->base.lg, AH_LOG_WARN, "store",
                   "sqlite: no reader connection to %s: reads share the writer's", path);
            break;
        }
        s->readers[s->nreaders++] = r;
    }
}

static int mkdir_parents(const char *path)
{
    char *dup = strdup(path);
    if (dup == NULL)
        return -1;
    char *slash = strrchr(dup, '/');
    if (slash == NULL || slash == dup) {
        free(dup);
        return 0;
    }
    *slash = '\0';
    for (char *p = dup + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(dup, 0750) != 0 && errno != EEXIST) {
                free(dup);
                return -1;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    free(dup);
    return 0;
}

void ah_sq_close(ah_store *st)
{
    if (st == NULL)
        return;
    ah_sq_store *s = ah_sq(st);
    ah_sq_mu_lock(s);
    (void)ah_sq_group_end_locked(s, true);
    if (s->ckpt != NULL)
        sqlite3_wal_hook(s->db, NULL, NULL);
    ah_sq_mu_unlock(s); /* writes the deferred log rows */
    ckpt_stop(s->ckpt);
    s->ckpt = NULL;
    for (int i = 0; i < s->nreaders; i++)
        reader_close(s->readers[i]);
    free(s->readers);
    ah_sq_walsync_stop(s);
    sq_finalize_all(s);
    if (sqlite3_close(s->db) != SQLITE_OK)
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "sqlite: close: %s", sqlite3_errmsg(s->db));
    pthread_mutex_destroy(&s->mu);
    ah_sq_log_pending_free(s);
    pthread_mutex_destroy(&s->log_pending_mu);
    ah_sq_packer_free(s->packer);
    free(s->scratch);
    free(s);
}

int ah_sq_ping(ah_store *st)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    int rc = ah_sq_exec_q(s, Q_PING, "ping");
    ah_sq_unlock(s);
    return rc;
}

int64_t ah_sq_data_version(ah_store *st)
{
    ah_sq_store *s = ah_sq(st);
    int64_t v = -1;
    ah_sq_lock(s);
    sqlite3_stmt *q = AH_SQ_GET(s, Q_DATA_VERSION);
    if (q != NULL) {
        if (sqlite3_step(q) == SQLITE_ROW)
            v = sqlite3_column_int64(q, 0);
        else
            ah_sq_log_db(s, "data_version");
        ah_sq_done(q);
    }
    ah_sq_unlock(s);
    return v;
}

int ah_sq_scope_begin(ah_store *st)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    bool fail = s->fail_scope;
    s->fail_scope = false;
    /* A scope inside another is a savepoint of its transaction, which its
     * scope_end releases or rolls back to. */
    if (fail ||
        ah_sq_exec_q(s, s->scope_depth == 0 ? Q_BEGIN : Q_SCOPE_SAVEPOINT, "scope begin") !=
            AH_STORE_OK) {
        ah_sq_unlock(s);
        return AH_STORE_ERR;
    }
    s->scope_depth++;
    tl_scope_store = s;
    return AH_STORE_OK;
}

int ah_sq_scope_end(ah_store *st, bool commit)
{
    ah_sq_store *s = ah_sq(st);
    int rc = AH_STORE_OK;
    if (s->scope_depth <= 0)
        return AH_STORE_ERR;
    if (s->scope_depth > 1) {
        /* A nested scope: its savepoint's writes stay in the enclosing
         * scope, or leave it. Failing, the transaction is gone (SQLite
         * rolled it back): the enclosing scope fails too. */
        if (!commit && ah_sq_exec_q(s, Q_SCOPE_ROLLBACK_TO, "nested scope rollback") != AH_STORE_OK)
            rc = AH_STORE_ERR;
        if (ah_sq_exec_q(s, Q_SCOPE_RELEASE, "nested scope release") != AH_STORE_OK)
            rc = AH_STORE_ERR;
        s->scope_depth--;
        ah_sq_unlock(s);
        return rc;
    }
    tl_scope_store = NULL;
    if (--s->scope_depth == 0 && s->group_scope) {
        /* The scope's writes stay in the group transaction, or leave it. */
        s->group_scope = false;
        if (!commit && ah_sq_exec_q(s, Q_GROUP_ROLLBACK_TO, "group scope rollback") != AH_STORE_OK)
            rc = AH_STORE_ERR;
        if (rc == AH_STORE_OK &&
            ah_sq_exec_q(s, Q_GROUP_RELEASE, "group scope release") != AH_STORE_OK)
            rc = AH_STORE_ERR;
        /* A savepoint that cannot be released leaves the transaction in an
         * unknown state: none of the group may commit. */
        if (rc != AH_STORE_OK || sqlite3_get_autocommit(s->db))
            (void)ah_sq_group_end_locked(s, false);
        /* Its writes are answered through the committer, after their sync
         * (walsync.c): this release does not wait for one. */
        s->dur_skip = s->mu_depth == 1;
    } else if (s->scope_depth == 0) {
        if (commit && ah_sq_exec_q(s, Q_COMMIT, "scope commit") != AH_STORE_OK)
            rc = AH_STORE_ERR;
        if ((!commit || rc != AH_STORE_OK) && !sqlite3_get_autocommit(s->db))
            ah_sq_exec_q(s, Q_ROLLBACK, "scope rollback");
    }
    ah_sq_unlock(s);
    return rc;
}

int ah_sq_group_end_locked(ah_sq_store *s, bool commit)
{
    if (!s->group_open)
        return AH_STORE_OK;
    s->group_open = false;
    int rc = AH_STORE_OK;
    if (commit && !sqlite3_get_autocommit(s->db) &&
        ah_sq_exec_q(s, Q_COMMIT, "group commit") == AH_STORE_OK) {
        /* committed */
    } else {
        rc = AH_STORE_ERR;
        /* SQLite may have rolled back by itself (SQLITE_FULL, ...). */
        if (!sqlite3_get_autocommit(s->db))
            ah_sq_exec_q(s, Q_ROLLBACK, "group rollback");
    }
    atomic_store_explicit(&s->group_ended_id, s->group_id, memory_order_release);
    if (s->group_ended != NULL)
        s->group_ended(s->group_arg, s->group_id, rc == AH_STORE_OK);
    return rc;
}

int ah_sq_group_begin(ah_store *st, int64_t tenant_id, uint64_t *group_out)
{
    (void)tenant_id; /* one writer: nobody else holds a tenant's rows */
    ah_sq_store *s = ah_sq(st);
    ah_sq_mu_lock(s); /* not ah_sq_lock: that would commit the group */
    if (s->scope_depth > 0) {
        ah_sq_mu_unlock(s);
        return AH_STORE_ERR;
    }
    /* Its transaction rolled back by SQLite between two scopes (a failed
     * flush of log rows, say): the group failed; this scope begins the
     * next one rather than write on its own outside any transaction. */
    if (s->group_open && sqlite3_get_autocommit(s->db))
        (void)ah_sq_group_end_locked(s, false);
    if (!s->group_open) {
        if (ah_sq_exec_q(s, Q_BEGIN, "group begin") != AH_STORE_OK) {
            ah_sq_mu_unlock(s);
            return AH_STORE_ERR;
        }
        s->group_open = true;
        s->group_id++;
    }
    if (ah_sq_exec_q(s, Q_GROUP_SAVEPOINT, "group scope") != AH_STORE_OK) {
        ah_sq_mu_unlock(s);
        return AH_STORE_ERR;
    }
    s->group_scope = true;
    s->scope_depth = 1;
    tl_scope_store = s;
    tl_group_store = s;
    tl_group_id = s->group_id;
    if (group_out != NULL)
        *group_out = s->group_id;
    return AH_STORE_OK; /* mu stays held until scope_end */
}

int ah_sq_group_commit(ah_store *st)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_mu_lock(s);
    int rc = s->scope_depth > 0 ? AH_STORE_ERR : ah_sq_group_end_locked(s, true);
    /* With a listener (the committer), the group's requests are answered
     * once this returns: log rows other threads deferred meanwhile are not
     * written first in a transaction of their own (the answers would wait
     * for its COMMIT) but by group_answered, after them. */
    s->log_hold = s->group_ended != NULL && s->mu_depth == 1;
    ah_sq_mu_unlock(s);
    return rc;
}

void ah_sq_group_answered(ah_store *st)
{
    ah_sq_store *s = ah_sq(st);
    /* mu busy: its holder writes them when it lets go (ah_sq_mu_unlock). */
    if (atomic_load_explicit(&s->log_npending, memory_order_acquire) > 0 && ah_sq_mu_trylock(s)) {
        s->dur_skip = s->mu_depth == 1; /* log rows: nobody's answer waits for them */
        ah_sq_mu_unlock(s); /* writes them: into an open group, or on their own */
    }
}

void ah_sq_group_listen(ah_store *st, void (*ended)(void *arg, uint64_t group, bool ok), void *arg)
{
    ah_sq_store *s = ah_sq(st);
    ah_sq_mu_lock(s);
    s->group_ended = ended;
    s->group_arg = arg;
    ah_sq_mu_unlock(s);
}

const ah_store_ops ah_sq_ops = {
    .name = "sqlite",
    .close = ah_sq_close,
    .migrate = ah_sq_migrate,
    .schema_version = ah_sq_schema_version,
    .ping = ah_sq_ping,
    .data_version = ah_sq_data_version,
    .tenant_add = ah_sq_tenant_add,
    .tenant_get = ah_sq_tenant_get,
    .tenant_by_key_hash = ah_sq_tenant_by_key_hash,
    .tenant_list = ah_sq_tenant_list,
    .tenant_remove = ah_sq_tenant_remove,
    .connection_add = ah_sq_connection_add,
    .connection_get = ah_sq_connection_get,
    .connection_list = ah_sq_connection_list,
    .connection_update = ah_sq_connection_update,
    .connection_set_enabled = ah_sq_connection_set_enabled,
    .connection_remove = ah_sq_connection_remove,
    .records_upsert = ah_sq_records_upsert,
    .fields_prepare = ah_sq_fields_prepare,
    .records_upsert_kept = ah_sq_records_upsert_kept,
    .record_get = ah_sq_record_get,
    .record_get_by_id = ah_sq_record_get_by_id,
    .record_query = ah_sq_record_query,
    .record_count = ah_sq_record_count,
    .cursor_get = ah_sq_cursor_get,
    .cursor_set = ah_sq_cursor_set,
    .sequence_next = ah_sq_sequence_next,
    .outbox_add = ah_sq_outbox_add,
    .outbox_pending = ah_sq_outbox_pending,
    .outbox_done = ah_sq_outbox_done,
    .log_add = ah_sq_log_add,
    .log_query = ah_sq_log_query,
    .outbox_add_batch = ah_sq_outbox_add_batch,
    .delivery_next = ah_sq_delivery_next,
    .delivery_done = ah_sq_delivery_done,
    .delivery_retry = ah_sq_delivery_retry,
    .delivery_due = ah_sq_delivery_due,
    .scope_begin = ah_sq_scope_begin,
    .scope_end = ah_sq_scope_end,
    .outbox_after = ah_sq_outbox_after,
    .outbox_prune = ah_sq_outbox_prune,
    .webhook_add = ah_sq_webhook_add,
    .webhook_list = ah_sq_webhook_list,
    .webhook_set_enabled = ah_sq_webhook_set_enabled,
    .webhook_deliveries = ah_sq_webhook_deliveries,
    .webhook_due = ah_sq_webhook_due,
    .webhook_attempt = ah_sq_webhook_attempt,
    .webhook_advance = ah_sq_webhook_advance,
    .webhook_failed = ah_sq_webhook_failed,
    .idem_reserve = ah_sq_idem_reserve,
    .idem_complete = ah_sq_idem_complete,
    .idem_release = ah_sq_idem_release,
    .bulk_add = ah_sq_bulk_add,
    .bulk_get = ah_sq_bulk_get,
    .bulk_next = ah_sq_bulk_next,
    .bulk_set_status = ah_sq_bulk_set_status,
    .bulk_items = ah_sq_bulk_items,
    .bulk_item_prior = ah_sq_bulk_item_prior,
    .bulk_item_set = ah_sq_bulk_item_set,
    .record_marks = ah_sq_record_marks,
    .record_mark_deleted = ah_sq_record_mark_deleted,
    .record_is_deleted = ah_sq_record_is_deleted,
    .stage_add = ah_sq_stage_add,
    .stage_changed_since = ah_sq_stage_changed_since,
    .stage_history = ah_sq_stage_history,
    .log_prune = ah_sq_log_prune,
    .idem_prune = ah_sq_idem_prune,
    .idem_reopen = ah_sq_idem_reopen,
    .idem_complete_op = ah_sq_idem_complete_op,
    .bulk_item_set_op = ah_sq_bulk_item_set_op,
    .record_prune = ah_sq_record_prune,
    .bulk_item_settle = ah_sq_bulk_item_settle,
    .webhook_due_one = ah_sq_webhook_due_one,
    .webhook_prune = ah_sq_webhook_prune,
    .webhook_update = ah_sq_webhook_update,
    .webhook_delete = ah_sq_webhook_delete,
    .webhook_rotate = ah_sq_webhook_rotate,
    .group_begin = ah_sq_group_begin,
    .group_commit = ah_sq_group_commit,
    .group_listen = ah_sq_group_listen,
    .record_marks_after = ah_sq_record_marks_after,
    .lease_acquire = ah_sq_lease_acquire,
    .lease_hold = ah_sq_lease_hold,
    .lease_release = ah_sq_lease_release,
    .lease_take_over = ah_sq_lease_take_over,
    .lease_claim = ah_sq_lease_claim,
    .change_add = ah_sq_change_add,
    .change_after = ah_sq_change_after,
    .change_last = ah_sq_change_last,
    .change_prune = ah_sq_change_prune,
    .instance_beat = ah_sq_instance_beat,
    .instance_list = ah_sq_instance_list,
    .instance_remove = ah_sq_instance_remove,
    .lease_list = ah_sq_lease_list,
    .lease_prune = ah_sq_lease_prune,
    .bulk_item_get = ah_sq_bulk_item_get,
    .group_answered = ah_sq_group_answered,
    .commit_mark = ah_sq_commit_mark,
    .durable = ah_sq_durable_op,
    .defer_durable = ah_sq_defer_durable,
    .bulk_next_after = ah_sq_bulk_next_after,
    .bulk_items_queued_from = ah_sq_bulk_items_queued_from,
    .bulk_queued_count = ah_sq_bulk_queued_count,
    .bulk_prune = ah_sq_bulk_prune,
};

static int journal_mode_cb(void *arg, int ncol, char **vals, char **names)
{
    char *mode = arg;
    if (ncol > 0 && vals[0] != NULL)
        snprintf(mode, 16, "%s", vals[0]);
    return 0;
}

/* SQLite keeps memory statistics behind one process-wide mutex taken on
 * every allocation it makes (pages, records): off, as nothing reads them.
 * Only possible before SQLite initialises; later it is refused, harmlessly. */
static pthread_once_t sq_config_once = PTHREAD_ONCE_INIT;

static void sq_config(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

ah_store *ah_store_sqlite_open(const char *path, const struct ah_logger *lg, char *err,
                               size_t errlen)
{
    pthread_once(&sq_config_once, sq_config);
    char dummy[1];
    if (err == NULL) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (path == NULL || *path == '\0') {
        snprintf(err, errlen, "no SQLite database path given");
        return NULL;
    }
    if (strcmp(path, ":memory:") != 0 && mkdir_parents(path) != 0) {
        snprintf(err, errlen, "cannot create the folder of %s: %s", path, strerror(errno));
        return NULL;
    }
    ah_sq_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &ah_sq_ops;
    s->base.lg = lg;
    s->fail_after = -1;
    /* Recursive: a scope (scope_begin) holds mu while the operations inside
     * it take it again. */
    pthread_mutexattr_t ma;
    bool mu_ok = pthread_mutexattr_init(&ma) == 0 &&
                 pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE) == 0 &&
                 pthread_mutex_init(&s->mu, &ma) == 0;
    pthread_mutexattr_destroy(&ma);
    if (mu_ok && pthread_mutex_init(&s->log_pending_mu, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        mu_ok = false;
    }
    if (!mu_ok) {
        snprintf(err, errlen, "cannot create a mutex");
        free(s);
        return NULL;
    }
    /* The writer's WAL frames go out gathered, before each commit is
     * published, not two system calls a frame (walbuf.c). */
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX,
                             ah_sq_walbuf_vfs());
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open SQLite database %s: %s", path,
                 s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, AH_SQ_BUSY_TIMEOUT_MS);
    s->packer = ah_sq_packer_new();
    if (s->packer == NULL || ah_sq_fields_register(s->db, s->packer) != 0) {
        snprintf(err, errlen, "cannot set up SQLite database %s: out of memory", path);
        goto fail;
    }
    char mode[16] = "";
    char *msg = NULL;
    /* page_size only applies to a database not created yet. 4 KiB (the
     * default) rather than 8: an atomic route's writes copy every page they
     * touch into the savepoint journal and the WAL, and with half the page
     * an ERP create-job cost 15% less CPU (bench/erp_cpu.sh: 217-220 us
     * against 249-270); a first sync's CPU and store bytes changed by 2-3%
     * (8 KiB had measured ~1.5x faster syncs before records were stored as
     * text and deltas). The page cache is 8 MiB at most (allocated as used):
     * a sync touches the right edges of its b-trees and the part of the
     * (connection, type, remote_id) index its page lands in, which fits;
     * the OS page cache holds the rest. No memory map: every mapped page
     * a query touches counts in the process's resident memory, which
     * then grew with the database (a 90,000-record first sync peaked at
     * 190 MiB with a 64 MiB cache and a 256 MiB map); and with one, every
     * page a transaction changes is first copied out of the map into a
     * fresh allocation (without it the ERP write path measured 1.17x
     * faster). Checkpoints run on their own thread (ckpt_start) instead of
     * wal_autocheckpoint, so no commit waits for one; journal_size_limit
     * trims the WAL when it restarts. temp_store=MEMORY keeps the
     * savepoints' journals (one per store call inside a scope) off disk,
     * however large, in 1 KiB allocations. FILE with a large
     * SQLITE_CONFIG_STMTJRNL_SPILL keeps them in one allocation (-8% of an
     * ERP create's instructions), but with SQLite 3.40.1 a scope whose
     * journal outgrew the spill failed with SQLITE_FULL writing the
     * temporary file (check_store test_group_scope_rollback_past_spill).
     * synchronous=FULL: a commit's WAL frames reach the disk (fdatasync)
     * before the commit returns, so an acknowledged write survives a power
     * loss or an OS crash too, not only a killed process (NORMAL alone,
     * before 2026-12-06, synced only at checkpoints: the last groups
     * answered could be lost). A file database in WAL mode then takes the
     * sync off its commits (walsync.c: NORMAL, the sync made after the
     * commit, outside the lock, for every commit made meanwhile, and
     * nothing answered or read before it; bench/README.md). */
    if (sqlite3_exec(s->db, "PRAGMA page_size=4096", NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", journal_mode_cb, mode, &msg) !=
            SQLITE_OK ||
        sqlite3_exec(s->db,
                     "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; "
                     "PRAGMA cache_size=-8192; PRAGMA mmap_size=0; "
                     "PRAGMA journal_size_limit=" AH_STR(AH_SQ_WAL_LIMIT_BYTES),
                     NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot set up SQLite database %s: %s", path,
                 msg != NULL ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        goto fail;
    }
    if (strcmp(mode, "wal") == 0 && strcmp(path, ":memory:") != 0) {
        ckpt_start(s, path);
        readers_start(s, path);
        /* A read opens the WAL file, which walsync opens too. Its commits
         * counted by the checkpointer's WAL hook only: without one, FULL. */
        if (s->ckpt != NULL &&
            sqlite3_exec(s->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) ==
                SQLITE_OK)
            ah_sq_walsync_start(s);
        if (s->dur == NULL)
            ah_log(lg, AH_LOG_WARN, "store",
                   "SQLite database %s: each commit syncs its WAL itself, holding the writer",
                   path);
    }
    if (strcmp(mode, "wal") != 0 && strcmp(path, ":memory:") != 0)
        ah_log(lg, AH_LOG_WARN, "store",
               "SQLite database %s is not in WAL mode (%s): the CLI and the daemon may "
               "block each other",
               path, mode);
    return &s->base;
fail:
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->log_pending_mu);
    ah_sq_packer_free(s->packer);
    free(s);
    return NULL;
}

int ah_store_sqlite_ckpt_stats(ah_store *st, ah_store_sqlite_ckpt *out)
{
    if (st == NULL || st->ops != &ah_sq_ops || ah_sq(st)->ckpt == NULL)
        return AH_STORE_ERR;
    struct ah_sq_ckpt *k = ah_sq(st)->ckpt;
    pthread_mutex_lock(&k->mu);
    *out = (ah_store_sqlite_ckpt){.frames = k->frames, .copied = k->copied,
                                  .next_at = k->next_at, .catchup_at = k->catchup_at,
                                  .passes = k->finished, .restarts = k->restarts,
                                  .catchups = k->catchups};
    pthread_mutex_unlock(&k->mu);
    return AH_STORE_OK;
}

void ah_store_sqlite_fail_scope(ah_store *st)
{
    if (st == NULL || st->ops != &ah_sq_ops)
        return;
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    s->fail_scope = true;
    ah_sq_unlock(s);
}

void ah_store_sqlite_fail_after(ah_store *st, int n)
{
    if (st == NULL || st->ops != &ah_sq_ops)
        return;
    ah_sq_store *s = ah_sq(st);
    ah_sq_lock(s);
    s->fail_after = n < 0 ? -1 : n;
    ah_sq_unlock(s);
}
