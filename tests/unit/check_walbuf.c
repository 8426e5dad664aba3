/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SQLite writer's VFS that gathers a transaction's WAL frames into one
 * write (core/store/sqlite/walbuf.c): what a reader on the default VFS sees
 * after each COMMIT (while a checkpointer copies the WAL back and other
 * readers read), transactions larger than the buffer, savepoints rolled
 * back, a page cache small enough that frames are written before the
 * COMMIT, what a kill -9 leaves (every acknowledged transaction, and a
 * database that passes integrity_check), and a COMMIT whose frames cannot
 * be written (it fails, and nobody sees it); a group's transaction that
 * SQLite rolled back by itself (nothing more is written in it); frames
 * that fail to be written before the COMMIT (the transaction cannot
 * commit).
 *
 * A unit test of the engine's internals: it includes sqlite_int.h for the
 * VFS's name, counters and its test hook that fails WAL writes.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sqlite_int.h"

static char dir[64];
static char path[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/ah-walbuf.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.db", dir);
}

static void teardown(void)
{
    char p[160];
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg != NULL ? msg : sqlite3_errmsg(db));
}

/* The writer as the store opens it: through the VFS, WAL, NORMAL. */
static sqlite3 *open_writer(int cache_pages)
{
    const char *vfs = ah_sq_walbuf_vfs();
    ck_assert_ptr_nonnull(vfs);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
                     SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    exec_ok(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA cache_size=%d", cache_pages);
    exec_ok(db, sql);
    exec_ok(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, b BLOB NOT NULL)");
    return db;
}

static sqlite3 *open_plain(void)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* Rows and their bytes, as a connection sees them. */
static void totals(sqlite3 *db, long long *rows, long long *bytes)
{
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(length(b)), 0) FROM t",
                                        -1, &q, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    *rows = sqlite3_column_int64(q, 0);
    *bytes = sqlite3_column_int64(q, 1);
    sqlite3_finalize(q);
}

/* Rows past rowid `after` and their bytes, and the last rowid (`after`
 * when there is none). */
static void since(sqlite3 *db, long long after, long long *rows, long long *bytes,
                  long long *last)
{
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT count(*), coalesce(sum(length(b)), 0), "
                                        "coalesce(max(id), ?1) FROM t WHERE id > ?1",
                                        -1, &q, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_bind_int64(q, 1, after), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    *rows = sqlite3_column_int64(q, 0);
    *bytes = sqlite3_column_int64(q, 1);
    *last = sqlite3_column_int64(q, 2);
    sqlite3_finalize(q);
}

static void insert(sqlite3 *db, sqlite3_stmt *ins, int len, unsigned *seed)
{
    unsigned char b[4096];
    for (int i = 0; i < len; i++) {
        *seed = *seed * 1103515245u + 12345u;
        b[i] = (unsigned char)(*seed >> 16);
    }
    sqlite3_reset(ins);
    ck_assert_int_eq(sqlite3_bind_blob(ins, 1, b, len, SQLITE_TRANSIENT), SQLITE_OK);
    ck_assert_msg(sqlite3_step(ins) == SQLITE_DONE, "%s", sqlite3_errmsg(db));
}

/* PRAGMA integrity_check says "ok" (no Check assertion: children use it). */
static bool integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *q = NULL;
    bool ok = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK &&
              sqlite3_step(q) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0;
    sqlite3_finalize(q);
    return ok;
}

/* The writer of a child process (no Check assertion there, as it would
 * write to the test's own result channel): opened through the VFS, with
 * its insert, checkpointing the WAL itself (SQLite's default) or not;
 * exits 2 when it cannot be. */
static sqlite3 *child_writer(sqlite3_stmt **ins, bool autocheckpoint)
{
    sqlite3 *w = NULL;
    if (sqlite3_open_v2(path, &w, SQLITE_OPEN_READWRITE, ah_sq_walbuf_vfs()) != SQLITE_OK ||
        sqlite3_exec(w,
                     autocheckpoint ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
                                    : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                                      "PRAGMA wal_autocheckpoint=0",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(w, "INSERT INTO t(b) VALUES (?)", -1, ins, NULL) != SQLITE_OK)
        _exit(2);
    return w;
}

typedef struct side {
    atomic_bool stop;
    atomic_long passes;
    bool checkpoint; /* else: a reader whose totals never go down */
    char err[128];
} side;

/* Another connection on the default VFS, while the writer commits. */
static void *side_main(void *arg)
{
    side *sd = arg;
    sqlite3 *db = open_plain();
    long long last = 0;
    while (!atomic_load(&sd->stop)) {
        if (sd->checkpoint) {
            int nlog = 0, ncopied = 0;
            int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &ncopied);
            if (rc != SQLITE_OK && rc != SQLITE_BUSY && sd->err[0] == '\0')
                snprintf(sd->err, sizeof sd->err, "checkpoint: %s", sqlite3_errmsg(db));
        } else {
            long long rows = 0, bytes = 0;
            sqlite3_stmt *q = NULL;
            if (sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(length(b)), 0) FROM t", -1,
                                   &q, NULL) == SQLITE_OK &&
                sqlite3_step(q) == SQLITE_ROW) {
                rows = sqlite3_column_int64(q, 0);
                bytes = sqlite3_column_int64(q, 1);
                (void)bytes;
            } else if (sd->err[0] == '\0') {
                snprintf(sd->err, sizeof sd->err, "read: %s", sqlite3_errmsg(db));
            }
            sqlite3_finalize(q);
            if (rows < last && sd->err[0] == '\0')
                snprintf(sd->err, sizeof sd->err, "rows went from %lld to %lld", last, rows);
            last = rows;
        }
        atomic_fetch_add(&sd->passes, 1);
        /* A pause between passes: without it the two side threads took
         * two CPUs for the whole test (most of the suite's CPU, more under
         * ThreadSanitizer); they still run hundreds of passes beside the
         * writer's 300 transactions. */
        usleep(1000);
    }
    sqlite3_close(db);
    return NULL;
}

/* After each COMMIT a reader on the default VFS sees exactly the rows
 * committed so far, while another reader and a checkpointer run; the
 * transactions run from one row to ~240 KiB (past the buffer), some roll a
 * savepoint back, and with a 16-page cache most write frames before their
 * COMMIT. The WAL's writes were gathered: far fewer writes than SQLite's. */
START_TEST(test_commits_visible_and_gathered)
{
    sqlite3 *w = open_writer(_i == 0 ? 2000 : 16);
    sqlite3 *r = open_plain();
    side ck = {.checkpoint = true}, rd = {.checkpoint = false};
    pthread_t t1, t2;
    ck_assert_int_eq(pthread_create(&t1, NULL, side_main, &ck), 0);
    ck_assert_int_eq(pthread_create(&t2, NULL, side_main, &rd), 0);
    unsigned long long w0 = 0, f0 = 0, w1 = 0, f1 = 0;
    ah_sq_walbuf_stats(&w0, &f0);
    sqlite3_stmt *ins = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(w, "INSERT INTO t(b) VALUES (?)", -1, &ins, NULL), SQLITE_OK);
    unsigned seed = 7;
    long long rows = 0, bytes = 0, last_id = 0;
    for (int tx = 0; tx < 300; tx++) {
        int n = 1 + (tx * 7) % 60;
        int len = 500 + (tx * 131) % 3500;
        exec_ok(w, "BEGIN IMMEDIATE");
        for (int i = 0; i < n; i++)
            insert(w, ins, len, &seed);
        if (tx % 10 == 3) { /* rows written, then undone */
            exec_ok(w, "SAVEPOINT sp");
            for (int i = 0; i < 40; i++)
                insert(w, ins, 4000, &seed);
            exec_ok(w, "ROLLBACK TO sp; RELEASE sp");
        }
        if (tx % 25 == 11) { /* a whole transaction undone */
            exec_ok(w, "ROLLBACK");
            continue;
        }
        exec_ok(w, "COMMIT");
        rows += n;
        bytes += (long long)n * len;
        /* The transaction's rows, whole; every tenth commit, the whole
         * table (reading it all after each commit was most of the suite's
         * time: ~2.7 GB read over the 300). */
        long long got_rows = -1, got_bytes = -1;
        since(r, last_id, &got_rows, &got_bytes, &last_id);
        ck_assert_int_eq(got_rows, n);
        ck_assert_int_eq(got_bytes, (long long)n * len);
        if (tx % 10 == 0 || tx == 299) {
            totals(r, &got_rows, &got_bytes);
            ck_assert_int_eq(got_rows, rows);
            ck_assert_int_eq(got_bytes, bytes);
        }
    }
    sqlite3_finalize(ins);
    ah_sq_walbuf_stats(&w1, &f1);
    atomic_store(&ck.stop, true);
    atomic_store(&rd.stop, true);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    ck_assert_msg(ck.err[0] == '\0', "%s", ck.err);
    ck_assert_msg(rd.err[0] == '\0', "%s", rd.err);
    ck_assert_int_gt(ck.passes, 0);
    ck_assert_int_gt(rd.passes, 0);
    ck_assert_msg(w1 - w0 > 4 * (f1 - f0), "%llu WAL writes became %llu", w1 - w0, f1 - f0);
    ck_assert(integrity_ok(r));
    sqlite3_close(r);
    ck_assert_int_eq(sqlite3_close(w), SQLITE_OK);
    /* Reopened on the default VFS (the WAL recovered from the file alone). */
    sqlite3 *again = open_plain();
    long long got_rows = -1, got_bytes = -1;
    totals(again, &got_rows, &got_bytes);
    ck_assert_int_eq(got_rows, rows);
    ck_assert_int_eq(got_bytes, bytes);
    sqlite3_close(again);
}
END_TEST

/* The killed writer (a child process): no Check assertion here, as it
 * would write to the test's own result channel; a failure exits. Writes
 * each transaction's number to fds[1] once its COMMIT has returned. */
static void writer_child(int fds[2])
{
    close(fds[0]);
    sqlite3_stmt *ins = NULL;
    sqlite3 *w = child_writer(&ins, true);
    static unsigned char b[3000];
    for (int tx = 1;; tx++) {
        if (sqlite3_exec(w, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            _exit(3);
        for (int i = 0; i < 1 + tx % 40; i++) {
            memset(b, tx + i, sizeof b);
            sqlite3_reset(ins);
            if (sqlite3_bind_blob(ins, 1, b, (int)sizeof b, SQLITE_STATIC) != SQLITE_OK ||
                sqlite3_step(ins) != SQLITE_DONE)
                _exit(4);
        }
        if (sqlite3_exec(w, "COMMIT", NULL, NULL, NULL) != SQLITE_OK ||
            write(fds[1], &tx, sizeof tx) != (ssize_t)sizeof tx)
            _exit(5);
    }
}

/* A writer killed (SIGKILL) at an arbitrary point of its stream of
 * commits: every transaction whose COMMIT had returned is in the database,
 * and the database is sound. */
START_TEST(test_kill9_keeps_acknowledged)
{
    sqlite3 *init = open_writer(2000);
    ck_assert_int_eq(sqlite3_close(init), SQLITE_OK);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        writer_child(fds); /* never returns */
    close(fds[1]);
    int acked = 0, tx = 0;
    while (acked < 400 && read(fds[0], &tx, sizeof tx) == (ssize_t)sizeof tx)
        acked = tx;
    ck_assert_int_eq(acked, 400);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFSIGNALED(st));
    /* Acknowledged after our last read, before the kill: count those too. */
    while (read(fds[0], &tx, sizeof tx) == (ssize_t)sizeof tx)
        acked = tx;
    close(fds[0]);
    long long want = 0;
    for (int i = 1; i <= acked; i++)
        want += 1 + i % 40;
    sqlite3 *db = open_plain();
    long long rows = 0, bytes = 0;
    totals(db, &rows, &bytes);
    ck_assert_msg(rows >= want, "%lld rows after kill -9, %lld acknowledged", rows, want);
    long long whole = 0; /* transactions are all or nothing */
    for (int i = 1; whole < rows; i++)
        whole += 1 + i % 40;
    ck_assert_int_eq(whole, rows);
    ck_assert(integrity_ok(db));
    sqlite3_close(db);
}
END_TEST

/* The child of test_commit_fails_cleanly (no Check assertion here). The
 * WAL may not grow past `limit` bytes (RLIMIT_FSIZE, as a full disk would
 * stop it): transactions of ~100 KiB are committed until a COMMIT fails;
 * then a reader on the default VFS must see exactly the acknowledged ones.
 * Exit status: 0 as it should be, 10 no COMMIT failed, 11 the reader saw
 * another count, 12 integrity_check failed, 13 the reader could not read,
 * 2-5 set-up failures. */
static void full_child(rlim_t limit)
{
    struct rlimit rl = {limit, limit};
    signal(SIGXFSZ, SIG_IGN);
    sqlite3_stmt *ins = NULL;
    sqlite3 *w = child_writer(&ins, false);
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        _exit(3);
    static unsigned char b[20000];
    long long acked = 0;
    bool failed = false;
    for (int tx = 1; tx < 1000 && !failed; tx++) {
        if (sqlite3_exec(w, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            _exit(4);
        for (int i = 0; i < 5 && !failed; i++) {
            memset(b, tx * 7 + i, sizeof b);
            sqlite3_reset(ins);
            failed = sqlite3_bind_blob(ins, 1, b, (int)sizeof b, SQLITE_STATIC) != SQLITE_OK ||
                     sqlite3_step(ins) != SQLITE_DONE;
        }
        if (!failed && sqlite3_exec(w, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
            acked += 5;
        else
            failed = true;
        if (failed && !sqlite3_get_autocommit(w))
            (void)sqlite3_exec(w, "ROLLBACK", NULL, NULL, NULL);
    }
    if (!failed)
        _exit(10);
    sqlite3 *r = NULL;
    sqlite3_stmt *q = NULL;
    if (sqlite3_open_v2(path, &r, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(r, "SELECT count(*) FROM t", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW)
        _exit(13);
    long long rows = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (rows != acked)
        _exit(11);
    _exit(integrity_ok(r) ? 0 : 12);
}

/* A COMMIT whose frames cannot be written (the WAL may not grow: a full
 * disk) fails, and nobody sees it: the acknowledged transactions, and only
 * they, are in the database, which stays sound. */
START_TEST(test_commit_fails_cleanly)
{
    sqlite3 *init = open_writer(2000);
    ck_assert_int_eq(sqlite3_close(init), SQLITE_OK);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        full_child((rlim_t)1500 * 1000);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st), "the child died (status %d)", st);
    ck_assert_msg(WEXITSTATUS(st) == 0, "exit status %d (full_child says what it means)",
                  WEXITSTATUS(st));
}
END_TEST

/* SQLite may roll a whole transaction back by itself (SQLITE_FULL,
 * SQLITE_IOERR, SQLITE_NOMEM: "it might be necessary to rollback and cancel
 * the entire transaction"); here a group's transaction is rolled back
 * under the engine, on its own connection, as SQLite would. The scope's
 * next write then ran outside any transaction (its savepoint began one and
 * its release committed it): stored for good while its group failed and its
 * requests were answered failed. It is refused now; the group fails and
 * nothing of it is stored. */
START_TEST(test_group_transaction_lost)
{
    static const ah_logger quiet = {.level = AH_LOG_ERROR, .json = false};
    char url[160], err[256] = "";
    snprintf(url, sizeof url, "sqlite:%s", path);
    ah_store *st = ah_store_open(url, &quiet, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    ck_assert_int_eq(st->ops->migrate(st), AH_STORE_OK);
    int64_t t = 0, v = 0;
    ck_assert_int_eq(st->ops->tenant_add(st, "acme", "00", &t), AH_STORE_OK);
    uint64_t g = 0;
    ck_assert_int_eq(st->ops->group_begin(st, t, &g), AH_STORE_OK);
    ck_assert_int_eq(st->ops->sequence_next(st, t, "a", &v), AH_STORE_OK);
    ck_assert_int_eq(sqlite3_exec(ah_sq(st)->db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(st->ops->sequence_next(st, t, "b", &v), AH_STORE_ERR);
    ck_assert_int_eq(st->ops->scope_end(st, true), AH_STORE_ERR);
    ck_assert_int_eq(st->ops->group_commit(st), AH_STORE_OK); /* nothing open */
    /* Neither draw was stored: each starts at 1 again. */
    ck_assert_int_eq(st->ops->sequence_next(st, t, "b", &v), AH_STORE_OK);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(st->ops->sequence_next(st, t, "a", &v), AH_STORE_OK);
    ck_assert_int_eq(v, 1);
    /* Rolled back between two scopes of a group: the next scope begins a
     * new group, whose writes commit with it; the lost group's do not. */
    uint64_t g2 = 0;
    ck_assert_int_eq(st->ops->group_begin(st, t, &g), AH_STORE_OK);
    ck_assert_int_eq(st->ops->sequence_next(st, t, "c", &v), AH_STORE_OK);
    ck_assert_int_eq(st->ops->scope_end(st, true), AH_STORE_OK);
    ck_assert_int_eq(sqlite3_exec(ah_sq(st)->db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(st->ops->group_begin(st, t, &g2), AH_STORE_OK);
    ck_assert(g2 > g);
    ck_assert_int_eq(st->ops->sequence_next(st, t, "d", &v), AH_STORE_OK);
    ck_assert_int_eq(st->ops->scope_end(st, true), AH_STORE_OK);
    ck_assert_int_eq(st->ops->group_commit(st), AH_STORE_OK);
    ck_assert_int_eq(st->ops->sequence_next(st, t, "c", &v), AH_STORE_OK);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(st->ops->sequence_next(st, t, "d", &v), AH_STORE_OK);
    ck_assert_int_eq(v, 2);
    st->ops->close(st);
}
END_TEST

/* Rows of t, or -1 when they cannot be read (no Check assertion). */
static long long count_rows(sqlite3 *db)
{
    sqlite3_stmt *q = NULL;
    long long n = -1;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

/* Frames buffered before a transaction's COMMIT are written out when SQLite
 * reads the WAL (a page it spilled from its small cache, read back); here
 * that write fails, as on a full disk. SQLite would take SQLITE_FULL from
 * the UPDATE that read as a failed statement, undo it alone and let the
 * transaction COMMIT, its WAL index pointing at frames never written. The
 * WAL is failed instead: the transaction cannot commit, nothing of it is
 * stored, the database stays sound, and the writer commits again after. */
START_TEST(test_failed_flush_fails_transaction)
{
    sqlite3 *w = open_writer(16);
    sqlite3_stmt *ins = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(w, "INSERT INTO t(b) VALUES (?)", -1, &ins, NULL), SQLITE_OK);
    unsigned seed = 11;
    exec_ok(w, "BEGIN IMMEDIATE");
    for (int i = 0; i < 50; i++)
        insert(w, ins, 3000, &seed);
    exec_ok(w, "COMMIT");
    exec_ok(w, "BEGIN IMMEDIATE");
    for (int i = 0; i < 200; i++) /* spilled: frames written, some buffered */
        insert(w, ins, 3000, &seed);
    ah_sq_walbuf_fail_writes(1);
    int rc = sqlite3_exec(w, "UPDATE t SET b = zeroblob(length(b)) WHERE id % 2 = 0", NULL, NULL,
                          NULL);
    ah_sq_walbuf_fail_writes(0);
    ck_assert_int_ne(rc, SQLITE_OK);
    /* SQLite rolled the transaction back; or whatever is run next in it, it
     * does not commit. */
    if (!sqlite3_get_autocommit(w)) {
        for (int i = 0; i < 5; i++) {
            sqlite3_reset(ins);
            unsigned char b[100] = {0};
            sqlite3_bind_blob(ins, 1, b, (int)sizeof b, SQLITE_TRANSIENT);
            (void)sqlite3_step(ins);
        }
        sqlite3_reset(ins);
        rc = sqlite3_exec(w, "COMMIT", NULL, NULL, NULL);
        ck_assert_msg(rc != SQLITE_OK, "the transaction whose frames were lost committed");
        if (!sqlite3_get_autocommit(w))
            (void)sqlite3_exec(w, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3 *r = open_plain();
    ck_assert_int_eq(count_rows(r), 50);
    ck_assert(integrity_ok(r));
    ck_assert_int_eq(count_rows(w), 50);
    /* The writer is sound again: its next transaction commits. */
    exec_ok(w, "BEGIN IMMEDIATE");
    for (int i = 0; i < 100; i++)
        insert(w, ins, 3000, &seed);
    exec_ok(w, "UPDATE t SET b = zeroblob(length(b)) WHERE id % 2 = 0");
    exec_ok(w, "COMMIT");
    ck_assert_int_eq(count_rows(r), 150);
    ck_assert(integrity_ok(r));
    sqlite3_finalize(ins);
    sqlite3_close(r);
    ck_assert_int_eq(sqlite3_close(w), SQLITE_OK);
    sqlite3 *again = open_plain(); /* the WAL recovered from the file alone */
    ck_assert_int_eq(count_rows(again), 150);
    ck_assert(integrity_ok(again));
    sqlite3_close(again);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("walbuf");
    TCase *tc = tcase_create("walbuf");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_commits_visible_and_gathered, 0, 2);
    tcase_add_test(tc, test_kill9_keeps_acknowledged);
    tcase_add_test(tc, test_commit_fails_cleanly);
    tcase_add_test(tc, test_group_transaction_lost);
    tcase_add_test(tc, test_failed_flush_fails_transaction);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
