/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stores that tests start from, migrated to the newest schema once per test
 * executable build and copied for each test: migrating a new store was over
 * half the instructions of a test's set-up (SQLite re-reads its whole
 * schema after each ALTER TABLE; PostgreSQL runs every migration's DDL),
 * which valgrind and the sanitizers multiplied. Only the migration tests of
 * check_store still migrate from nothing.
 */
#ifndef AH_TEST_STORE_TPL_H
#define AH_TEST_STORE_TPL_H

#include <stddef.h>

/* Makes the SQLite database `path` (which must not exist; its folder must)
 * a copy of the migrated template. 0, or -1 with nothing left at `path`. */
int ah_t_sqlite_migrated(const char *path);

/* Creates the database `name` on the PostgreSQL server `server_url` as a
 * copy of the migrated template of this executable (made on first use),
 * or, when there can be none, empty (migrate() then does the work). Its URL
 * goes to url. 0, or -1 with err ("already exists" when it does). */
int ah_t_pg_create_migrated(const char *server_url, const char *name, char *url, size_t url_len,
                            char *err, size_t errlen);

#endif
