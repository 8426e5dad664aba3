/* SPDX-License-Identifier: Apache-2.0 */
#include "store_tpl.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "store.h"

static int self_exe(char *exe, size_t n, time_t *mtime)
{
    ssize_t l = readlink("/proc/self/exe", exe, n - 1);
    struct stat se;
    if (l <= 0)
        return -1;
    exe[l] = '\0';
    if (stat(exe, &se) != 0)
        return -1;
    *mtime = se.st_mtime;
    return 0;
}

/* On PostgreSQL, a test's database is a copy (CREATE DATABASE ...
 * TEMPLATE) of one migrated once per server and executable build: this
 * names it, after the executable's path and modification time, or NULL. */
static const char *pg_template_name(void)
{
    static char name[64];
    char exe[4096];
    time_t mtime;
    if (self_exe(exe, sizeof exe, &mtime) != 0)
        return NULL;
    char h[AH_SHA256_HEX_LEN + 1]; /* a short tag for the path */
    ah_sha256_hex(exe, strlen(exe), h);
    snprintf(name, sizeof name, "ah_tpl_%.8s_%lx", h, (unsigned long)mtime);
    return name;
}

/* Makes the template database `tpl`: migrated under a name of its own and
 * renamed, so that a suite running at the same time never copies half of
 * one. 0 when it exists afterwards. */
static int pg_template_make(const char *server, const char *tpl)
{
    char tmp[64], url[512], err[512] = "";
    snprintf(tmp, sizeof tmp, "%.40s_%ld", tpl, (long)getpid());
    (void)ah_store_pg_drop_database(server, tmp);
    if (ah_store_pg_create_database(server, tmp, NULL, url, sizeof url, err, sizeof err) != 0)
        return -1;
    ah_store *st = ah_store_pg_open(url, NULL, err, sizeof err);
    int rc = st != NULL ? st->ops->migrate(st) : -1;
    if (st != NULL)
        st->ops->close(st);
    if (rc == 0 && ah_store_pg_rename_database(server, tmp, tpl, err, sizeof err) == 0)
        return 0;
    (void)ah_store_pg_drop_database(server, tmp);
    /* Another suite may have made it meanwhile. */
    return strstr(err, "already exists") != NULL ? 0 : -1;
}

/* Copies the file `from` to `to` (created, mode 0600). 0 on success. */
static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        close(in);
        return -1;
    }
    char b[1 << 16];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, b, sizeof b)) > 0)
        for (ssize_t off = 0; off < n && rc == 0;) {
            ssize_t w = write(out, b + off, (size_t)(n - off));
            if (w <= 0)
                rc = -1;
            else
                off += w;
        }
    if (n < 0)
        rc = -1;
    close(in);
    if (close(out) != 0)
        rc = -1;
    return rc;
}

/* The SQLite template: an empty database migrated to the newest schema
 * once, beside the test executable. Remade when the executable is newer
 * than it (a rebuild may have changed the migrations); made under a name of
 * its own and renamed, so that suites running at once never see half of
 * one. Returns its path (static), or NULL. */
static const char *store_template(void)
{
    static char tpl[4096];
    char exe[4000];
    time_t mtime;
    if (self_exe(exe, sizeof exe, &mtime) != 0)
        return NULL;
    snprintf(tpl, sizeof tpl, "%s.store-template.db", exe);
    struct stat st;
    if (stat(tpl, &st) == 0 && st.st_mtime > mtime)
        return tpl;
    char tmp[4096 + 16];
    snprintf(tmp, sizeof tmp, "%s.%ld", tpl, (long)getpid());
    unlink(tmp);
    char err[256];
    ah_store *s = ah_store_sqlite_open(tmp, NULL, err, sizeof err);
    if (s == NULL)
        return NULL;
    int rc = s->ops->migrate(s);
    s->ops->close(s);
    char side[4096 + 32];
    snprintf(side, sizeof side, "%s-wal", tmp);
    /* A WAL left behind would hold part of the schema: no template then. */
    if (rc != 0 || access(side, F_OK) == 0 || rename(tmp, tpl) != 0) {
        unlink(tmp);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", tmp);
        unlink(side);
        return NULL;
    }
    snprintf(side, sizeof side, "%s-shm", tmp);
    unlink(side);
    return tpl;
}

int ah_t_sqlite_migrated(const char *path)
{
    const char *tpl = store_template();
    if (tpl != NULL && copy_file(tpl, path) == 0)
        return 0;
    unlink(path);
    return -1;
}

int ah_t_pg_create_migrated(const char *server_url, const char *name, char *url, size_t url_len,
                            char *err, size_t errlen)
{
    const char *tpl = pg_template_name();
    int rc = -1;
    if (tpl != NULL) {
        rc = ah_store_pg_create_database(server_url, name, tpl, url, url_len, err, errlen);
        if (rc != 0 && strstr(err, "does not exist") != NULL &&
            pg_template_make(server_url, tpl) == 0)
            rc = ah_store_pg_create_database(server_url, name, tpl, url, url_len, err, errlen);
    }
    if (rc != 0 && (tpl == NULL || strstr(err, "already exists") == NULL))
        rc = ah_store_pg_create_database(server_url, name, NULL, url, url_len, err, errlen);
    return rc == 0 ? 0 : -1;
}
