/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers for the integration suites: temp dirs, config files, an HTTP
 * client and child processes. */
#ifndef AH_HARNESS_H
#define AH_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/** Environment set by ctest (see tests/CMakeLists.txt), or NULL. */
const char *ah_t_env(const char *name);
/** Whether this run drives Chromium (the tests of the pages atshub serves,
 *  support/cdp.h): yes unless AH_TEST_BROWSER is "0". scripts/test sets it
 *  for the sanitizer and valgrind runs and tests/pg_run.sh for the
 *  PostgreSQL entries: the browser and the pages are the same there, and
 *  the plain SQLite run drives them. When not, it says so on stderr, naming
 *  `suite`, so that a run's log shows what it left out. */
bool ah_t_browser(const char *suite);
/** Fresh temp dir ("/tmp/atshub-test-XXXXXX"); malloc'd. */
char *ah_t_tmpdir(void);
/** rm -rf dir (best effort). */
void ah_t_rmrf(const char *dir);
/** Whether the suite runs on the PostgreSQL engine (AH_TEST_ENGINE). */
bool ah_t_pg(void);
/** The [store] url of a test whose folder is dir: "sqlite:atshub.db" (in
 *  dir), or on PostgreSQL a database of its own on the server
 *  AH_TEST_PG_URL, created on first use (tests/pg_run.sh drops it). malloc'd;
 *  NULL on error. */
char *ah_t_store_url(const char *dir);
/** Writes dir/atshub.ini: store (ah_t_store_url) and key under dir, listen 127.0.0.1:0, the
 *  template plugin, `extra` appended verbatim (may be NULL). malloc'd path.
 *  The template plugin runs in the daemon's process unless `extra` has a
 *  [plugin.template] section of its own: most suites load it without
 *  calling it, and its process was started (and ended) with every daemon
 *  (the provider suites' plugins, check_isolate's fixtures and the suites
 *  that name the section run in processes of their own). */
char *ah_t_write_ini(const char *dir, const char *extra);
/** Everything the test's store holds, as bytes to search for secrets in
 *  clear: the SQLite file and its WAL, or on PostgreSQL a pg_dump of the
 *  test's database. malloc'd, *len set; NULL when there is nothing. */
char *ah_t_store_dump(const char *dir, size_t *len);
/** Writes `text` to path. 0 on success. */
int ah_t_write_file(const char *path, const char *text);
/** Reads a whole file; malloc'd, *len set. NULL on error. */
char *ah_t_read_file(const char *path, size_t *len);

/** One HTTP request with libcurl. headers NULL-terminated ("Name: v").
 *  Returns the status (0: no response); *body_out (may be NULL) receives
 *  the malloc'd body. */
long ah_t_http(const char *method, const char *url, const char *const *headers,
               const char *body, char **body_out);
/** ah_t_http, also giving the response's header lines (malloc'd) in
 *  *head_out when not NULL. */
long ah_t_http_head(const char *method, const char *url, const char *const *headers,
                    const char *body, char **body_out, char **head_out);
/** With AH_TEST_TRAFFIC_LOG set, records one exchange with the REST API
 *  (url's path under /v1/; head: the answer's header lines) for
 *  tests/openapi_traffic.js, as ah_t_http does for its own; for suites
 *  with a client of their own. */
void ah_t_record_exchange(const char *method, const char *url, long status, const char *head,
                          const char *body);

/** Runs argv (argv[0] a path) with `env` extra "K=V" entries (may be NULL),
 *  waits, captures stdout/stderr (malloc'd, may be NULL). Returns the exit
 *  status, or -1. */
int ah_t_run(const char *const *argv, const char *const *env, char **out, char **err);

/** Starts argv in the background with stderr piped; returns the pid and
 *  the read end of stderr in *err_fd. */
pid_t ah_t_spawn(const char *const *argv, const char *const *env, int *err_fd);
/** Reads from fd until a line contains `needle` (or timeout_s passes);
 *  returns that line malloc'd, or NULL. */
char *ah_t_wait_line(int fd, const char *needle, int timeout_s);
/* Everything left to read on fd up to its end (for a process that has
 * ended, what it wrote last), at most the last 8 KiB; never NULL. */
char *ah_t_read_rest(int fd);
/** What a process started by ah_t_spawn has written on fd as far as
 *  ah_t_wait_line read it, the lines it passed over included, and what
 *  can be read now without waiting: the last 4 KiB, malloc'd, never NULL.
 *  For the message of a test that gave up waiting for a line. */
char *ah_t_seen(int fd);
/** Forgets what was read from fd: for a pipe made otherwise than by
 *  ah_t_spawn (which does it), whose number an earlier one may have had. */
void ah_t_seen_reset(int fd);
/** The state letter of a process (/proc/PID/stat: 'R', 'S', 'Z'...), or
 *  0 when it is gone. */
char ah_t_proc_state(pid_t pid);
/** Children of `parent` (those whose command is `comm`, when not NULL):
 *  how many, zombies included (how many of those in *zombies when not
 *  NULL); the first `max` live ones' pids in live[]. -1 without /proc. */
int ah_t_children(pid_t parent, const char *comm, pid_t *live, int max, int *zombies);
/** Sends sig and waits; returns the exit status (or 128+signal). */
int ah_t_stop(pid_t pid, int sig);

#endif
