/* SPDX-License-Identifier: Apache-2.0 */
#include <check.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "log.h"

/* ---- helpers ------------------------------------------------------------- */

typedef struct tmp {
    char dir[256];
} tmp;

static void tmp_make(tmp *t)
{
    const char *base = getenv("TMPDIR");

    /* A short TMPDIR keeps every path of the tests well inside the buffers. */
    if (base == NULL || *base == '\0' || strlen(base) > 128)
        base = "/tmp";
    snprintf(t->dir, sizeof t->dir, "%.128s/ah_config_XXXXXX", base);
    ck_assert_ptr_nonnull(mkdtemp(t->dir));
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tmp_remove(tmp *t)
{
    ck_assert_int_eq(nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Writes `text` to dir/rel (creating folders); returns the path in buf. */
static const char *put_file(const tmp *t, const char *rel, const char *text, char *buf,
                            size_t len)
{
    char *slash;
    FILE *f;

    snprintf(buf, len, "%s/%s", t->dir, rel);
    for (slash = strchr(buf + strlen(t->dir) + 1, '/'); slash != NULL;
         slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        ck_assert_msg(mkdir(buf, 0700) == 0 || errno == EEXIST, "mkdir %s", buf);
        *slash = '/';
    }
    f = fopen(buf, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    return buf;
}

static void clear_env(void)
{
    unsetenv("ATSHUB_LISTEN");
    unsetenv("ATSHUB_STORE");
}

/* Loads `text` as dir/etc/atshub.ini; expects failure with the message
 * "<ini path>:<line>: <why>" (line 0: "<ini path>: <why>"). */
static void expect_error(const char *text, int line, const char *why)
{
    tmp t;
    char ini[512], want[4096], err[4096];
    ah_config cfg;

    clear_env();
    tmp_make(&t);
    put_file(&t, "etc/atshub.ini", text, ini, sizeof ini);
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    if (line > 0)
        snprintf(want, sizeof want, "%s:%d: %s", ini, line, why);
    else
        snprintf(want, sizeof want, "%s: %s", ini, why);
    ck_assert_str_eq(err, want);
    /* A failed load leaves nothing to free. */
    ck_assert_ptr_null(cfg.path);
    ck_assert_ptr_null(cfg.plugins);
    ah_config_free(&cfg);
    tmp_remove(&t);
}

static char *source_dir(char *buf, size_t len)
{
    const char *env = getenv("AH_SOURCE_DIR");
    const char *tail = "/tests/unit/check_config.c";
    size_t flen = strlen(__FILE__);

    if (env != NULL && *env != '\0') {
        snprintf(buf, len, "%s", env);
    } else {
        ck_assert(flen > strlen(tail) && strcmp(__FILE__ + flen - strlen(tail), tail) == 0);
        snprintf(buf, len, "%.*s", (int)(flen - strlen(tail)), __FILE__);
    }
    return buf;
}

/* ---- config: success paths ----------------------------------------------- */

START_TEST(test_defaults_without_file)
{
    ah_config cfg;
    char *cwd = getcwd(NULL, 0), want[1024];

    ck_assert_ptr_nonnull(cwd);
    ah_config_defaults(&cfg);
    ck_assert_str_eq(cfg.dir, cwd);
    ck_assert_ptr_null(cfg.path);
    ck_assert_int_eq(cfg.workers, 2);
    ck_assert_int_eq(cfg.request_timeout_ms, 30000);
    snprintf(want, sizeof want, "%s/var/host.key", strcmp(cwd, "/") == 0 ? "" : cwd);
    ck_assert_str_eq(cfg.key_file, want);
    ck_assert_int_eq(cfg.log_level, AH_LOG_INFO);
    ck_assert(!cfg.log_json);
    ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
    ck_assert_uint_eq(cfg.listen_port, 8080);
    ck_assert_uint_eq(cfg.max_body, 1024 * 1024);
    ck_assert_uint_eq(cfg.http_tenant_rate, 100);
    ck_assert_uint_eq(cfg.http_tenant_burst, 200);
    ck_assert(cfg.http_routes_on_bus);
    ck_assert_int_eq(cfg.http_threads, 2);
    ck_assert_ptr_null(cfg.tls_cert);
    ck_assert_ptr_null(cfg.tls_key);
    snprintf(want, sizeof want, "sqlite:%s/var/atshub.db", strcmp(cwd, "/") == 0 ? "" : cwd);
    ck_assert_str_eq(cfg.store_url, want);
    ck_assert_int_eq(cfg.http_timeout_ms, 10000);
    ck_assert_int_eq(cfg.http_max_attempts, 4);
    ck_assert_int_eq(cfg.http_backoff_ms, 200);
    ck_assert_int_eq(cfg.http_backoff_max_ms, 10000);
    ck_assert_int_eq(cfg.sync_interval_s, 300);
    ck_assert_int_eq(cfg.webhook_workers, 4);
    ck_assert_int_eq(cfg.webhook_max_per_tenant, 2);
    ck_assert_int_eq(cfg.claim_ms, 15000);
    ck_assert_int_eq(cfg.bulk_max_queued_items, 10000);
    ck_assert_int_eq(cfg.bulk_retention_s, 604800);
    ck_assert_uint_eq(cfg.nplugins, 0);
    ah_config_free(&cfg);
    ah_config_free(&cfg); /* freeing twice is harmless: free zeroes */
    free(cwd);
}
END_TEST

START_TEST(test_empty_file_gives_defaults_relative_to_ini)
{
    tmp t;
    char ini[512], want[1024], err[512];
    ah_config cfg;

    clear_env();
    tmp_make(&t);
    put_file(&t, "etc/atshub.ini", "; nothing\n", ini, sizeof ini);
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(cfg.path, ini);
    snprintf(want, sizeof want, "%s/etc", t.dir);
    ck_assert_str_eq(cfg.dir, want);
    snprintf(want, sizeof want, "%s/var/host.key", t.dir);
    ck_assert_str_eq(cfg.key_file, want);
    snprintf(want, sizeof want, "sqlite:%s/var/atshub.db", t.dir);
    ck_assert_str_eq(cfg.store_url, want);
    ck_assert_int_eq(cfg.workers, 2);
    ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
    ck_assert_uint_eq(cfg.listen_port, 8080);
    ck_assert_int_eq(cfg.sync_interval_s, 300);
    ah_config_free(&cfg);
    tmp_remove(&t);
}
END_TEST

START_TEST(test_full_file)
{
    tmp t;
    char ini[512], buf[512], want[1024], err[512];
    ah_config cfg;

    clear_env();
    tmp_make(&t);
    put_file(&t, "tls/cert.pem", "x", buf, sizeof buf);
    put_file(&t, "tls/key.pem", "x", buf, sizeof buf);
    put_file(&t, "plugins/erp.so", "", buf, sizeof buf);
    put_file(&t, "etc/p/ats_2.so", "", buf, sizeof buf);
    put_file(&t, "etc/atshub.ini",
             "[core]\n"
             "workers = 8\n"
             "request_timeout_ms = 600000\n"
             "key_file = ./keys/../secret.key\n"
             "log_level = debug\n"
             "log_format = json\n"
             "\n"
             "[http]\n"
             "listen = [::1]:0\n"
             "max_body = 512K ; inline comment\n"
             "threads = 64\n"
             "max_connections = 100\n"
             "max_connections_per_client = 10\n"
             "header_timeout_ms = 2500\n"
             "min_body_rate = 300\n"
             "tenant_rate = 0\n"
             "tenant_burst = 7\n"
             "plugin_routes = inline\n"
             "tls_cert = ../tls/cert.pem\n"
             "tls_key = ../tls/key.pem\n"
             "[store]\n"
             "url = postgresql://atshub@db/atshub\n"
             "[outbound]\n"
             "timeout_ms = 100\n"
             "max_attempts = 10\n"
             "backoff_ms = 50\n"
             "backoff_max_ms = 50\n"
             "[sync]\n"
             "interval_s = 0\n"
             "[plugins]\n"
             "# a comment\n"
             "erp = ../plugins/erp.so\n"
             "ats_2 = p/ats_2.so\n",
             ini, sizeof ini);
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(cfg.workers, 8);
    ck_assert_int_eq(cfg.request_timeout_ms, 600000);
    snprintf(want, sizeof want, "%s/etc/secret.key", t.dir);
    ck_assert_str_eq(cfg.key_file, want);
    ck_assert_int_eq(cfg.log_level, AH_LOG_DEBUG);
    ck_assert(cfg.log_json);
    ck_assert_str_eq(cfg.listen_host, "::1");
    ck_assert_uint_eq(cfg.listen_port, 0);
    ck_assert_uint_eq(cfg.max_body, 512 * 1024);
    ck_assert_int_eq(cfg.http_threads, 64);
    ck_assert_uint_eq(cfg.http_max_connections, 100);
    ck_assert_uint_eq(cfg.http_max_connections_per_client, 10);
    ck_assert_int_eq(cfg.http_header_timeout_ms, 2500);
    ck_assert_uint_eq(cfg.http_min_body_rate, 300);
    ck_assert_uint_eq(cfg.http_tenant_rate, 0);
    ck_assert_uint_eq(cfg.http_tenant_burst, 7);
    ck_assert(!cfg.http_routes_on_bus);
    snprintf(want, sizeof want, "%s/tls/cert.pem", t.dir);
    ck_assert_str_eq(cfg.tls_cert, want);
    snprintf(want, sizeof want, "%s/tls/key.pem", t.dir);
    ck_assert_str_eq(cfg.tls_key, want);
    ck_assert_str_eq(cfg.store_url, "postgresql://atshub@db/atshub");
    ck_assert_int_eq(cfg.http_timeout_ms, 100);
    ck_assert_int_eq(cfg.http_max_attempts, 10);
    ck_assert_int_eq(cfg.http_backoff_ms, 50);
    ck_assert_int_eq(cfg.http_backoff_max_ms, 50);
    ck_assert_int_eq(cfg.sync_interval_s, 0);
    ck_assert_uint_eq(cfg.nplugins, 2);
    ck_assert_str_eq(cfg.plugins[0].name, "erp");
    snprintf(want, sizeof want, "%s/plugins/erp.so", t.dir);
    ck_assert_str_eq(cfg.plugins[0].path, want);
    ck_assert_int_eq(cfg.plugins[0].line, 32);
    ck_assert_str_eq(cfg.plugins[1].name, "ats_2");
    snprintf(want, sizeof want, "%s/etc/p/ats_2.so", t.dir);
    ck_assert_str_eq(cfg.plugins[1].path, want);
    ck_assert_int_eq(cfg.plugins[1].line, 33);
    ah_config_free(&cfg);
    tmp_remove(&t);
}
END_TEST

START_TEST(test_sqlite_url_relative_and_absolute)
{
    tmp t;
    char ini[512], want[1024], err[512];
    ah_config cfg;

    clear_env();
    tmp_make(&t);
    put_file(&t, "conf/atshub.ini", "[store]\nurl = sqlite:data/./x/../a.db\n", ini,
             sizeof ini);
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    snprintf(want, sizeof want, "sqlite:%s/conf/data/a.db", t.dir);
    ck_assert_str_eq(cfg.store_url, want);
    ah_config_free(&cfg);

    put_file(&t, "conf/atshub.ini", "[store]\nurl = sqlite:/srv//atshub/db.sqlite\n", ini,
             sizeof ini);
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(cfg.store_url, "sqlite:/srv/atshub/db.sqlite");
    ah_config_free(&cfg);
    tmp_remove(&t);
}
END_TEST

/* A path given relative to the working directory still resolves against the
 * INI's folder, made absolute. */
START_TEST(test_relative_ini_path)
{
    tmp t;
    char ini[512], want[1024], err[512];
    char *cwd = getcwd(NULL, 0);
    ah_config cfg;

    ck_assert_ptr_nonnull(cwd);
    clear_env();
    tmp_make(&t);
    put_file(&t, "a/b/atshub.ini", "[core]\nkey_file = k\n", ini, sizeof ini);
    ck_assert_int_eq(chdir(t.dir), 0);
    ck_assert_msg(ah_config_load("a/b/atshub.ini", &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(cfg.path, "a/b/atshub.ini");
    snprintf(want, sizeof want, "%s/a/b", t.dir);
    ck_assert_str_eq(cfg.dir, want);
    snprintf(want, sizeof want, "%s/a/b/k", t.dir);
    ck_assert_str_eq(cfg.key_file, want);
    ah_config_free(&cfg);

    ck_assert_int_eq(chdir("a/b"), 0);
    ck_assert_msg(ah_config_load("atshub.ini", &cfg, err, sizeof err) == 0, "%s", err);
    snprintf(want, sizeof want, "%s/a/b", t.dir);
    ck_assert_str_eq(cfg.dir, want);
    ah_config_free(&cfg);
    ck_assert_int_eq(chdir(cwd), 0);
    free(cwd);
    tmp_remove(&t);
}
END_TEST

START_TEST(test_resolve)
{
    ah_config cfg;
    char *s;

    memset(&cfg, 0, sizeof cfg);
    cfg.dir = strdup("/etc/atshub");
    ck_assert_ptr_nonnull(cfg.dir);
    s = ah_config_resolve(&cfg, "a/b/../c");
    ck_assert_str_eq(s, "/etc/atshub/a/c");
    free(s);
    s = ah_config_resolve(&cfg, "../../../../x");
    ck_assert_str_eq(s, "/x");
    free(s);
    s = ah_config_resolve(&cfg, "/abs//./p/");
    ck_assert_str_eq(s, "/abs/p");
    free(s);
    s = ah_config_resolve(&cfg, ".");
    ck_assert_str_eq(s, "/etc/atshub");
    free(s);
    s = ah_config_resolve(&cfg, "..");
    ck_assert_str_eq(s, "/etc");
    free(s);
    ck_assert_ptr_null(ah_config_resolve(&cfg, NULL));
    ah_config_free(&cfg);
}
END_TEST

START_TEST(test_max_body_suffixes)
{
    static const struct {
        const char *v;
        size_t want;
    } cases[] = {{"1K", 1024}, {"1k", 1024}, {"64M", 64u << 20}, {"2m", 2u << 20},
                 {"4096", 4096}, {"1024", 1024}};
    tmp t;
    char ini[512], text[128], err[512];
    ah_config cfg;

    clear_env();
    tmp_make(&t);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "[http]\nmax_body = %s\n", cases[i].v);
        put_file(&t, "atshub.ini", text, ini, sizeof ini);
        ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
        ck_assert_uint_eq(cfg.max_body, cases[i].want);
        ah_config_free(&cfg);
    }
    tmp_remove(&t);
}
END_TEST


/* ---- [plugin.NAME]: isolation -------------------------------------------- */

START_TEST(test_plugin_isolation)
{
    tmp t;
    char ini[512], so[512], text[1024], err[1024];
    ah_config cfg;

    clear_env();
    tmp_make(&t);
    put_file(&t, "p.so", "x", so, sizeof so);
    /* The section may come before [plugins]; a plugin without one has none. */
    snprintf(text, sizeof text,
             "[plugin.a]\nisolation = process\nmemory_max = 256M\ncall_timeout_ms = 500\n"
             "max_calls = 1000\nrestart_backoff_ms = 20\nprocesses = 4\n"
             "env = HTTPS_PROXY , MY_DEBUG,X_1\n\n[plugins]\na = p.so\nb = p.so\n"
             "c = p.so\nd = p.so\n[plugin.b]\nisolation = in_process\n[plugin.d]\nmemory_max = 64M\n");
    put_file(&t, "atshub.ini", text, ini, sizeof ini);
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(cfg.nplugin_isos, 3);
    const ah_plugin_iso_conf *a = ah_config_plugin_iso(&cfg, "a");
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->isolation, AH_ISOLATION_PROCESS);
    ck_assert_uint_eq(a->memory_max, 256u << 20);
    ck_assert_int_eq(a->call_timeout_ms, 500);
    ck_assert_int_eq(a->max_calls, 1000);
    ck_assert_int_eq(a->restart_backoff_ms, 20);
    ck_assert_int_eq(a->processes, 4);
    ck_assert_str_eq(a->env, "HTTPS_PROXY,MY_DEBUG,X_1");
    ck_assert_int_eq(a->line, 1);
    const ah_plugin_iso_conf *b = ah_config_plugin_iso(&cfg, "b");
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->isolation, AH_ISOLATION_IN_PROCESS);
    ck_assert_uint_eq(b->memory_max, 0);
    ck_assert_int_eq(b->call_timeout_ms, 30000);
    ck_assert_int_eq(b->max_calls, 0);
    ck_assert_int_eq(b->restart_backoff_ms, 1000);
    ck_assert_int_eq(b->processes, 1);
    ck_assert_str_eq(b->env, "");
    ck_assert_ptr_null(ah_config_plugin_iso(&cfg, "c"));
    /* The default is process: for a plugin without a section, and for a
     * section that does not say. */
    ah_plugin_iso_conf r;
    ah_config_plugin_iso_resolve(&cfg, "c", &r);
    ck_assert_int_eq(r.isolation, AH_ISOLATION_PROCESS);
    ck_assert_str_eq(r.name, "c");
    ck_assert_uint_eq(r.memory_max, 0);
    ck_assert_int_eq(r.call_timeout_ms, 30000);
    ck_assert_int_eq(r.max_calls, 0);
    ck_assert_int_eq(r.restart_backoff_ms, 1000);
    ck_assert_int_eq(r.processes, 1);
    ah_config_plugin_iso_resolve(&cfg, "d", &r);
    ck_assert_int_eq(r.isolation, AH_ISOLATION_PROCESS);
    ck_assert_uint_eq(r.memory_max, 64u << 20);
    ah_config_plugin_iso_resolve(&cfg, "b", &r);
    ck_assert_int_eq(r.isolation, AH_ISOLATION_IN_PROCESS);
    ah_config_free(&cfg);
    tmp_remove(&t);
}
END_TEST

START_TEST(test_err_plugin_isolation)
{
    expect_error("[plugin.a]\nisolation = thread\n", 2,
                 "[plugin.a] isolation: expected process or in_process, got 'thread'");
    expect_error("[plugin.a]\nmemory_max = 1M\n", 2,
                 "[plugin.a] memory_max: expected a size between 16M and 64G (suffix K, M "
                 "or G) or off, got '1M'");
    expect_error("[plugin.a]\nmemory_max = 65G\n", 2,
                 "[plugin.a] memory_max: expected a size between 16M and 64G (suffix K, M "
                 "or G) or off, got '65G'");
    expect_error("[plugin.a]\ncall_timeout_ms = 5\n", 2,
                 "[plugin.a] call_timeout_ms: expected an integer between 10 and 600000, "
                 "got '5'");
    expect_error("[plugin.a]\nmax_calls = -1\n", 2,
                 "[plugin.a] max_calls: expected an integer between 0 (never recycle) and "
                 "1000000000, got '-1'");
    expect_error("[plugin.a]\nisolation = process\nisolation = process\n", 3,
                 "duplicate key 'isolation' in [plugin.a] (first at line 2)");
    /* Past 64 keys of [plugin.*] sections, too (a fixed table stopped
     * noting them, and a repeat silently replaced the first). */
    char many[4096];
    size_t n = 0;
    int line = 0;
    for (int p = 0; p < 12; p++) {
        n += (size_t)snprintf(many + n, sizeof many - n,
                              "[plugin.p%d]\nisolation = process\nmemory_max = 256M\n"
                              "call_timeout_ms = 1000\nmax_calls = 10\nrestart_backoff_ms = 100\n"
                              "processes = 1\n",
                              p);
        line += 7;
    }
    snprintf(many + n, sizeof many - n, "max_calls = 20\n");
    char why[128];
    snprintf(why, sizeof why, "duplicate key 'max_calls' in [plugin.p11] (first at line %d)",
             line - 2);
    expect_error(many, line + 1, why);
    expect_error("[plugin.a]\nmemory = 1G\n", 2,
                 "unknown key 'memory' in [plugin.a] (expected isolation, memory_max, "
                 "call_timeout_ms, max_calls, restart_backoff_ms, processes or env)");
    expect_error("[plugin.a]\nenv = A,,B\n", 2,
                 "[plugin.a] env: expected names of environment variables (letters, digits, "
                 "_), comma-separated, at most 255 characters, got 'A,,B'");
    expect_error("[plugin.a]\nenv = 1A\n", 2,
                 "[plugin.a] env: expected names of environment variables (letters, digits, "
                 "_), comma-separated, at most 255 characters, got '1A'");
    expect_error("[plugin.a]\nenv = A=B\n", 2,
                 "[plugin.a] env: expected names of environment variables (letters, digits, "
                 "_), comma-separated, at most 255 characters, got 'A=B'");
    expect_error("[plugin.a]\nprocesses = 0\n", 2,
                 "[plugin.a] processes: expected an integer between 1 and 64, got '0'");
    expect_error("[plugin.A-b]\nisolation = process\n", 2,
                 "[plugin.A-b]: a plugin name is made of a-z, 0-9 and _");
    expect_error("[core]\nworkers = 2\n[plugin.ghost]\nisolation = process\n", 3,
                 "[plugin.ghost]: no plugin 'ghost' in [plugins]");
}
END_TEST

START_TEST(test_shipped_ini)
{
    tmp t;
    char src[512], path[1024], ini[512], buf[512],
        want[1024], err[1024];
    char *text;
    long len;
    FILE *f;
    ah_config cfg;

    clear_env();
    snprintf(path, sizeof path, "%s/etc/atshub.ini", source_dir(src, sizeof src));
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    ck_assert(len > 0);
    rewind(f);
    text = calloc(1, (size_t)len + 1);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(fread(text, 1, (size_t)len, f), (size_t)len);
    fclose(f);

    /* The same layout as the source tree: etc/ next to build/plugins/. */
    tmp_make(&t);
    put_file(&t, "etc/atshub.ini", text, ini, sizeof ini);
    free(text);

    /* Without the built plugin the error says where it is looked for. */
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "': no such file ") != NULL, "%s", err);
    snprintf(want, sizeof want, "%s/build/plugins/", t.dir);
    ck_assert_msg(strstr(err, want) != NULL, "%s", err);
    ck_assert_msg(strstr(err, ".so (build first") != NULL, "%s", err);

    /* Every plugin the shipped file names gets a stand-in file: the
     * config only checks that they exist. */
    bool loaded = false;
    for (int guard = 0; guard < 32 && !loaded; guard++) {
        if (ah_config_load(ini, &cfg, err, sizeof err) == 0) {
            loaded = true;
            break;
        }
        const char *miss = strstr(err, "no such file ");
        ck_assert_msg(miss != NULL, "%s", err);
        char rel[512];
        const char *abs = miss + strlen("no such file ");
        size_t dl = strlen(t.dir);
        ck_assert_msg(strncmp(abs, t.dir, dl) == 0, "%s", err);
        snprintf(rel, sizeof rel, "%.*s", (int)strcspn(abs + dl + 1, " "), abs + dl + 1);
        put_file(&t, rel, "", buf, sizeof buf);
    }
    ck_assert_msg(loaded, "%s", err);
    snprintf(want, sizeof want, "%s/var/host.key", t.dir);
    ck_assert_str_eq(cfg.key_file, want);
    snprintf(want, sizeof want, "sqlite:%s/var/atshub.db", t.dir);
    ck_assert_str_eq(cfg.store_url, want);
    ck_assert_int_eq(cfg.log_level, AH_LOG_INFO);
    ck_assert(!cfg.log_json);
    ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
    ck_assert_uint_eq(cfg.listen_port, 8080);
    ck_assert_uint_eq(cfg.max_body, 1024 * 1024);
    ck_assert_int_eq(cfg.http_max_attempts, 4);
    ck_assert_int_eq(cfg.sync_interval_s, 300);
    ck_assert_ptr_null(cfg.tls_cert);
    ck_assert_uint_ge(cfg.nplugins, 1);
    ck_assert_str_eq(cfg.plugins[0].name, "template");
    snprintf(want, sizeof want, "%s/build/plugins/template.so", t.dir);
    ck_assert_str_eq(cfg.plugins[0].path, want);
    ah_config_free(&cfg);
    tmp_remove(&t);
}
END_TEST

/* [admin] token_file may be missing (the daemon makes it at start), but
 * what is there must be a readable regular file. */
START_TEST(test_admin_token_file)
{
    tmp t;
    char ini[512], dir[512], err[512];
    ah_config cfg;

    clear_env();
    tmp_make(&t);
    put_file(&t, "etc/atshub.ini",
             "[admin]\nlisten = 127.0.0.1:8081\ntoken_file = ../var/admin.token\n", ini,
             sizeof ini);
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(cfg.admin_host, "127.0.0.1");
    ck_assert_uint_eq(cfg.admin_port, 8081);
    ck_assert_ptr_nonnull(strstr(cfg.admin_token_file, "/var/admin.token"));
    ah_config_free(&cfg);

    /* A folder where the file should be is refused. */
    snprintf(dir, sizeof dir, "%s/var", t.dir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(dir, sizeof dir, "%s/var/admin.token", t.dir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "token_file") != NULL && strstr(err, "not a regular file") != NULL,
                  "%s", err);
    tmp_remove(&t);
}
END_TEST

START_TEST(test_env_overrides)
{
    tmp t;
    char ini[512], want[1024], err[512];
    char *cwd = getcwd(NULL, 0);
    ah_config cfg;

    ck_assert_ptr_nonnull(cwd);
    clear_env();
    tmp_make(&t);
    put_file(&t, "etc/atshub.ini", "[http]\nlisten = 127.0.0.1:9000\n[store]\nurl = sqlite:x.db\n",
             ini, sizeof ini);

    ck_assert_int_eq(setenv("ATSHUB_LISTEN", "0.0.0.0:0", 1), 0);
    ck_assert_int_eq(setenv("ATSHUB_STORE", "sqlite:rel/./db.sqlite", 1), 0);
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(cfg.listen_host, "0.0.0.0");
    ck_assert_uint_eq(cfg.listen_port, 0);
    /* Relative to the working directory, not to the INI. */
    snprintf(want, sizeof want, "sqlite:%s/rel/db.sqlite", strcmp(cwd, "/") == 0 ? "" : cwd);
    ck_assert_str_eq(cfg.store_url, want);
    ah_config_free(&cfg);

    ck_assert_int_eq(setenv("ATSHUB_LISTEN", "[::]:443", 1), 0);
    ck_assert_int_eq(setenv("ATSHUB_STORE", "postgresql://u@h:5432/db?sslmode=require", 1), 0);
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(cfg.listen_host, "::");
    ck_assert_uint_eq(cfg.listen_port, 443);
    ck_assert_str_eq(cfg.store_url, "postgresql://u@h:5432/db?sslmode=require");
    ah_config_free(&cfg);

    /* Empty variables are as good as unset. */
    ck_assert_int_eq(setenv("ATSHUB_LISTEN", "", 1), 0);
    ck_assert_int_eq(setenv("ATSHUB_STORE", "", 1), 0);
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(cfg.listen_port, 9000);
    snprintf(want, sizeof want, "sqlite:%s/etc/x.db", t.dir);
    ck_assert_str_eq(cfg.store_url, want);
    ah_config_free(&cfg);

    ck_assert_int_eq(setenv("ATSHUB_LISTEN", "localhost", 1), 0);
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    ck_assert_str_eq(err, "ATSHUB_LISTEN: expected host:port (e.g. 127.0.0.1:8080 or "
                          "[::1]:8080), got 'localhost'");
    ck_assert_int_eq(setenv("ATSHUB_LISTEN", "localhost:70000", 1), 0);
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "ATSHUB_LISTEN: "));
    ck_assert_int_eq(unsetenv("ATSHUB_LISTEN"), 0);

    ck_assert_int_eq(setenv("ATSHUB_STORE", "mysql://root:hunter2@db", 1), 0);
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    ck_assert_str_eq(err, "ATSHUB_STORE: expected 'sqlite:PATH' or a 'postgresql://' URL");
    ck_assert_ptr_null(strstr(err, "hunter2"));

    clear_env();
    free(cwd);
    tmp_remove(&t);
}
END_TEST

/* ---- config: errors ------------------------------------------------------ */

START_TEST(test_missing_file)
{
    tmp t;
    char path[512], want[1024], err[1024];
    ah_config cfg;

    tmp_make(&t);
    snprintf(path, sizeof path, "%s/nope.ini", t.dir);
    ck_assert_int_eq(ah_config_load(path, &cfg, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: cannot open: %s", path, strerror(ENOENT));
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(cfg.path);

    ck_assert_int_eq(ah_config_load(t.dir, &cfg, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: cannot open: not a regular file", t.dir);
    ck_assert_str_eq(err, want);
    tmp_remove(&t);
}
END_TEST

START_TEST(test_err_unknown_section)
{
    expect_error("[core]\nworkers = 2\n\n[croe]\nworkers = 3\n", 4, "unknown section [croe]");
    /* Reported at the header even when the section holds nothing. */
    expect_error("[core]\n[bogus]\n; empty\n", 2, "unknown section [bogus]");
    expect_error("workers = 2\n", 1, "key 'workers' outside any section");
}
END_TEST

START_TEST(test_err_unknown_key)
{
    expect_error("[core]\nworkers = 2\nworker = 3\n", 3, "unknown key 'worker' in [core]");
    expect_error("[http]\n\n\nurl = x\n", 4, "unknown key 'url' in [http]");
}
END_TEST

START_TEST(test_err_bad_integer)
{
    expect_error("[core]\nworkers = abc\n", 2,
                 "[core] workers: expected an integer between 1 and 64, got 'abc'");
    expect_error("[core]\nworkers = 4x\n", 2,
                 "[core] workers: expected an integer between 1 and 64, got '4x'");
    expect_error("[core]\nworkers =\n", 2,
                 "[core] workers: expected an integer between 1 and 64, got ''");
    expect_error("[sync]\ninterval_s = 99999999999999999999999\n", 2,
                 "[sync] interval_s: expected an integer between 0 and 86400, got "
                 "'99999999999999999999999'");
}
END_TEST

/* The delivery pool's size and the per-tenant share (webhooks.c). */
START_TEST(test_webhook_pool_keys)
{
    tmp t;
    char ini[512], err[4096];
    ah_config cfg;

    clear_env();
    tmp_make(&t);
    put_file(&t, "etc/atshub.ini", "[webhooks]\nworkers = 8\nmax_per_tenant = 3\n", ini,
             sizeof ini);
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(cfg.webhook_workers, 8);
    ck_assert_int_eq(cfg.webhook_max_per_tenant, 3);
    ah_config_free(&cfg);
    tmp_remove(&t);
}
END_TEST

/* [store] claim_ms: the claims of shared work (host/claims.h). */
START_TEST(test_claim_ms_key)
{
    tmp t;
    char ini[512], err[4096];
    ah_config cfg;

    clear_env();
    tmp_make(&t);
    put_file(&t, "etc/atshub.ini", "[store]\nurl = sqlite:x.db\nclaim_ms = 3000\n", ini,
             sizeof ini);
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(cfg.claim_ms, 3000);
    ah_config_free(&cfg);
    tmp_remove(&t);
    expect_error("[store]\nclaim_ms = 999\n", 2,
                 "[store] claim_ms: expected an integer between 1000 and 600000, got '999'");
}
END_TEST

/* [core] bulk_max_queued_items and bulk_retention_s (api/bulk.c). */
START_TEST(test_bulk_keys)
{
    tmp t;
    char ini[512], err[4096];
    ah_config cfg;

    clear_env();
    tmp_make(&t);
    put_file(&t, "etc/atshub.ini",
             "[core]\nbulk_max_queued_items = 2500\nbulk_retention_s = 1\n"
             "[store]\nurl = sqlite:x.db\n", ini, sizeof ini);
    ck_assert_msg(ah_config_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(cfg.bulk_max_queued_items, 2500);
    ck_assert_int_eq(cfg.bulk_retention_s, 1);
    ah_config_free(&cfg);
    tmp_remove(&t);
    expect_error("[core]\nbulk_max_queued_items = 999\n", 2,
                 "[core] bulk_max_queued_items: expected an integer between 1000 and "
                 "100000000, got '999'");
    expect_error("[core]\nbulk_retention_s = 0\n", 2,
                 "[core] bulk_retention_s: expected an integer between 1 and 315360000, got '0'");
}
END_TEST

START_TEST(test_err_out_of_range)
{
    expect_error("[core]\nworkers = 0\n", 2,
                 "[core] workers: expected an integer between 1 and 64, got '0'");
    expect_error("[core]\nrequest_timeout_ms = 99\n", 2,
                 "[core] request_timeout_ms: expected an integer between 100 and 600000, got "
                 "'99'");
    expect_error("[http]\nthreads = 65\n", 2,
                 "[http] threads: expected an integer between 1 and 64, got '65'");
    expect_error("[http]\nmax_connections = 15\n", 2,
                 "[http] max_connections: expected an integer between 16 and 1000000, got '15'");
    expect_error("[http]\nmax_connections_per_client = 0\n", 2,
                 "[http] max_connections_per_client: expected an integer between 1 and 1000000, "
                 "got '0'");
    expect_error("[http]\ntenant_rate = -1\n", 2,
                 "[http] tenant_rate: expected an integer between 0 and 1000000, got '-1'");
    expect_error("[http]\ntenant_burst = 0\n", 2,
                 "[http] tenant_burst: expected an integer between 1 and 1000000, got '0'");
    expect_error("[http]\nheader_timeout_ms = 99\n", 2,
                 "[http] header_timeout_ms: expected an integer between 100 and 600000, got '99'");
    expect_error("[outbound]\nmax_attempts = 11\n", 2,
                 "[outbound] max_attempts: expected an integer between 1 and 10, got '11'");
    expect_error("[sync]\ninterval_s = -1\n", 2,
                 "[sync] interval_s: expected an integer between 0 and 86400, got '-1'");
    expect_error("[webhooks]\nworkers = 0\n", 2,
                 "[webhooks] workers: expected an integer between 1 and 64, got '0'");
    expect_error("[webhooks]\nmax_per_tenant = 65\n", 2,
                 "[webhooks] max_per_tenant: expected an integer between 1 and 64, got '65'");
    expect_error("[http]\nmax_body = 65M\n", 2,
                 "[http] max_body: expected a size between 1K and 64M (bytes, or with suffix "
                 "K or M), got '65M'");
    expect_error("[http]\nmax_body = 1023\n", 2,
                 "[http] max_body: expected a size between 1K and 64M (bytes, or with suffix "
                 "K or M), got '1023'");
    expect_error("[http]\nmax_body = 1G\n", 2,
                 "[http] max_body: expected a size between 1K and 64M (bytes, or with suffix "
                 "K or M), got '1G'");
    expect_error("[outbound]\nbackoff_ms = 500\n\nbackoff_max_ms = 400\n", 4,
                 "[outbound] backoff_max_ms (400) must be >= backoff_ms (500)");
    expect_error("[outbound]\nbackoff_ms = 20000\n", 2,
                 "[outbound] backoff_max_ms (10000) must be >= backoff_ms (20000)");
    /* The webhooks' pair too: a cap under the first pause was taken, and
     * every retry waited the cap, shorter than asked. */
    expect_error("[webhooks]\nbackoff_ms = 5000\nbackoff_max_ms = 4000\n", 3,
                 "[webhooks] backoff_max_ms (4000) must be >= backoff_ms (5000)");
}
END_TEST

START_TEST(test_err_enums)
{
    expect_error("[core]\nlog_level = loud\n", 2,
                 "[core] log_level: expected error, warn, info or debug, got 'loud'");
    expect_error("[core]\nlog_format = xml\n", 2,
                 "[core] log_format: expected plain or json, got 'xml'");
    expect_error("[http]\nplugin_routes = threads\n", 2,
                 "[http] plugin_routes: expected workers or inline, got 'threads'");
    expect_error("[core]\nkey_file =\n", 2, "[core] key_file: expected a file path, got ''");
    expect_error("[store]\nurl = mysql://root:pw@x\n", 2,
                 "[store] url: expected 'sqlite:PATH' or a 'postgresql://' URL");
    expect_error("[store]\nurl = sqlite:\n", 2,
                 "[store] url: expected 'sqlite:PATH' or a 'postgresql://' URL");
}
END_TEST

START_TEST(test_err_duplicate_key)
{
    expect_error("[core]\nworkers = 2\nlog_level = info\nworkers = 3\n", 4,
                 "duplicate key 'workers' in [core] (first at line 2)");
    expect_error("[core]\nworkers = 2\n  3\n", 3,
                 "indented line continues 'workers' of line 2: multi-line values are not "
                 "supported");
    expect_error("[core]\nkey_file = a\n\tb\n", 3,
                 "indented line continues 'key_file' of line 2: multi-line values are not "
                 "supported");
    /* Across two [core] sections too. */
    expect_error("[core]\nworkers = 2\n[http]\n[core]\nworkers = 3\n", 5,
                 "duplicate key 'workers' in [core] (first at line 2)");
}
END_TEST

START_TEST(test_err_duplicate_plugin)
{
    tmp t;
    char ini[512], buf[512], want[4096], err[4096];
    ah_config cfg;

    clear_env();
    tmp_make(&t);
    put_file(&t, "p/erp.so", "", buf, sizeof buf);
    put_file(&t, "atshub.ini", "[plugins]\nerp = p/erp.so\n\nerp = p/erp.so\n", ini, sizeof ini);
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:4: plugin 'erp' declared twice (first at line 2)", ini);
    ck_assert_str_eq(err, want);

    put_file(&t, "atshub.ini", "[plugins]\nErp = p/erp.so\n", ini, sizeof ini);
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "%s:2: [plugins] 'Erp': a plugin name is made of a-z, 0-9 and _", ini);
    ck_assert_str_eq(err, want);
    tmp_remove(&t);
}
END_TEST

START_TEST(test_err_plugin_file)
{
    tmp t;
    char ini[512], buf[512], want[4096], err[4096];
    ah_config cfg;

    clear_env();
    tmp_make(&t);
    put_file(&t, "etc/atshub.ini", "[plugins]\n\nerp = ../build/plugins/erp.so\n", ini,
             sizeof ini);
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "%s:3: plugin 'erp': no such file %s/build/plugins/erp.so (build first: cmake "
             "--build build)",
             ini, t.dir);
    ck_assert_str_eq(err, want);

    /* A folder is no plugin. */
    put_file(&t, "build/plugins/erp.so/x", "", buf, sizeof buf);
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:3: plugin 'erp': %s/build/plugins/erp.so is not a regular file",
             ini, t.dir);
    ck_assert_str_eq(err, want);

    put_file(&t, "etc/atshub.ini", "[plugins]\nerp =\n", ini, sizeof ini);
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:2: plugin 'erp': expected the path of a .so file, got ''",
             ini);
    ck_assert_str_eq(err, want);
    tmp_remove(&t);
}
END_TEST

START_TEST(test_err_bad_listen)
{
    static const char *const bad[] = {"127.0.0.1",  "127.0.0.1:",    ":8080",
                                      "host:65536", "host:80x",      "[::1]8080",
                                      "::1:8080",   "[nothex]:8080", "h st:80",
                                      "host:-1",    "host:+80"};
    char text[128], why[256];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "[http]\nlisten = %s\n", bad[i]);
        snprintf(why, sizeof why,
                 "[http] listen: expected host:port (e.g. 127.0.0.1:8080 or [::1]:8080), got "
                 "'%s'",
                 bad[i]);
        expect_error(text, 2, why);
    }
}
END_TEST

START_TEST(test_err_tls)
{
    tmp t;
    char ini[512], buf[512], want[4096], err[4096];
    ah_config cfg;

    clear_env();
    tmp_make(&t);
    put_file(&t, "cert.pem", "x", buf, sizeof buf);
    put_file(&t, "atshub.ini", "[http]\ntls_cert = cert.pem\nthreads = 2\n", ini, sizeof ini);
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s: tls_cert and tls_key must be given together", ini);
    ck_assert_str_eq(err, want);

    put_file(&t, "atshub.ini", "[http]\ntls_key = cert.pem\n", ini, sizeof ini);
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    ck_assert_str_eq(err, want);

    put_file(&t, "atshub.ini", "[http]\ntls_cert = cert.pem\ntls_key = key.pem\n", ini,
             sizeof ini);
    ck_assert_int_eq(ah_config_load(ini, &cfg, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:3: [http] tls_key: %s/key.pem: %s", ini, t.dir,
             strerror(ENOENT));
    ck_assert_str_eq(err, want);
    tmp_remove(&t);
}
END_TEST

START_TEST(test_err_syntax)
{
    expect_error("[core]\nworkers = 2\n[core\n", 3, "syntax error");
    expect_error("[core]\n\ngarbage without equals\nworkers = 2\n", 3, "syntax error");
    /* The first problem wins, whichever kind it is. */
    expect_error("[core]\nworkers = x\ngarbage\n", 2,
                 "[core] workers: expected an integer between 1 and 64, got 'x'");
    expect_error("[core]\ngarbage\nworkers = x\n", 2, "syntax error");
    expect_error("[core]\ngarbage\n[nope]\n", 2, "syntax error");
}
END_TEST

START_TEST(test_err_long_line)
{
    char text[512];

    snprintf(text, sizeof text, "[core]\n; %0300d\n", 0);
    expect_error(text, 2, "line too long (at most 198 characters)");
}
END_TEST

/* ---- log ----------------------------------------------------------------- */

/* Runs fn with stderr redirected; returns what it wrote (malloc'd). */
static char *capture(void (*fn)(void *), void *arg)
{
    FILE *f = tmpfile();
    int saved = dup(STDERR_FILENO);
    long len;
    char *out;

    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fileno(f), STDERR_FILENO), 0);
    fn(arg);
    ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    rewind(f);
    out = calloc(1, (size_t)len + 1);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(fread(out, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return out;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += *s == c;
    return n;
}

/* "2026-11-24T03:31:57.123Z " */
static void assert_timestamp(const char *s)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < sizeof pat - 1; i++) {
        if (pat[i] == 'd')
            ck_assert_msg(s[i] >= '0' && s[i] <= '9', "timestamp: %s", s);
        else
            ck_assert_msg(s[i] == pat[i], "timestamp: %s", s);
    }
}

static void log_plain(void *arg)
{
    (void)arg;
    ah_log(NULL, AH_LOG_INFO, "core", "hello %d", 42);
    ah_log(NULL, AH_LOG_DEBUG, "core", "dropped at info");
    ah_log(NULL, AH_LOG_ERROR, NULL, "no scope");
}

START_TEST(test_log_plain)
{
    char *out = capture(log_plain, NULL);
    char *second;

    ck_assert_uint_eq(count_char(out, '\n'), 2);
    assert_timestamp(out);
    ck_assert(strncmp(out + 24, " INFO  [core] hello 42\n", 23) == 0);
    second = strchr(out, '\n') + 1;
    assert_timestamp(second);
    ck_assert_str_eq(second + 24, " ERROR no scope\n");
    free(out);
}
END_TEST

static void log_levels(void *arg)
{
    ah_logger lg = {AH_LOG_WARN, false};
    (void)arg;
    ah_log(&lg, AH_LOG_INFO, "x", "info dropped");
    ah_log(&lg, AH_LOG_WARN, "x", "warn kept");
    lg.level = AH_LOG_DEBUG;
    ah_log(&lg, AH_LOG_DEBUG, "x", "debug kept");
    AH_LOG(&lg, AH_LOG_DEBUG, "macro %s", "kept");
    lg.level = AH_LOG_ERROR;
    AH_LOG(&lg, AH_LOG_WARN, "macro dropped");
}

START_TEST(test_log_levels)
{
    char *out = capture(log_levels, NULL);

    ck_assert_uint_eq(count_char(out, '\n'), 3);
    ck_assert_ptr_nonnull(strstr(out, " WARN  [x] warn kept\n"));
    ck_assert_ptr_nonnull(strstr(out, " DEBUG [x] debug kept\n"));
    ck_assert_ptr_nonnull(strstr(out, " DEBUG [core] macro kept\n"));
    ck_assert_ptr_null(strstr(out, "dropped"));
    free(out);
}
END_TEST

static void log_hostile(void *arg)
{
    (void)arg;
    ah_log(NULL, AH_LOG_WARN, "plugin\nerp", "user=%s",
           "bob\n2026-01-01T00:00:00.000Z ERROR [core] forged\r\x1b[31mred\t\x7f\xc2\x9b!");
}

START_TEST(test_log_control_chars)
{
    char *out = capture(log_hostile, NULL);

    ck_assert_uint_eq(count_char(out, '\n'), 1);
    ck_assert_ptr_null(strchr(out, '\r'));
    ck_assert_ptr_null(strchr(out, '\x1b'));
    ck_assert_ptr_null(strchr(out, '\x7f'));
    ck_assert_ptr_null(strstr(out, "\xc2\x9b"));
    ck_assert_str_eq(out + 24, " WARN  [plugin\\nerp] user=bob\\n2026-01-01T00:00:00.000Z ERROR "
                               "[core] forged\\r\\x1b[31mred\\t\\x7f\\u009b!\n");
    free(out);
}
END_TEST

static void log_long(void *arg)
{
    const char *msg = arg;
    ah_log(NULL, AH_LOG_INFO, "core", "%s", msg);
    ah_logger lg = {AH_LOG_INFO, true};
    ah_log(&lg, AH_LOG_INFO, "core", "%s", msg);
}

START_TEST(test_log_truncates)
{
    char *msg = malloc(10001);
    char *out, *json;
    size_t first;
    cJSON *o;

    ck_assert_ptr_nonnull(msg);
    /* Control characters grow sixfold in JSON and fourfold in plain. */
    for (int i = 0; i < 10000; i++)
        msg[i] = i % 2 ? 'a' : '\x01';
    msg[10000] = '\0';
    out = capture(log_long, msg);
    ck_assert_uint_eq(count_char(out, '\n'), 2);
    first = (size_t)(strchr(out, '\n') - out) + 1;
    ck_assert_uint_le(first, 4096);
    ck_assert(strncmp(out + first - 4, "...\n", 4) == 0);
    json = out + first;
    ck_assert_uint_le(strlen(json), 4096);
    o = cJSON_Parse(json);
    ck_assert_msg(o != NULL, "not JSON: %.200s", json);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "level")->valuestring, "info");
    {
        const char *m = cJSON_GetObjectItem(o, "msg")->valuestring;
        size_t ml = strlen(m);
        ck_assert_uint_gt(ml, 100);
        ck_assert_str_eq(m + ml - 3, "...");
    }
    cJSON_Delete(o);
    free(out);
    free(msg);
}
END_TEST

static void log_json(void *arg)
{
    ah_logger lg = {AH_LOG_DEBUG, true};
    (void)arg;
    ah_log(&lg, AH_LOG_DEBUG, "plugin erp tenant=acme", "say \"hi\"\n\\ %s", "\x1b[0m");
    ah_log(&lg, AH_LOG_ERROR, NULL, "plain %d", 1);
}

START_TEST(test_log_json)
{
    char *out = capture(log_json, NULL);
    char *nl = strchr(out, '\n');
    cJSON *o;

    ck_assert_uint_eq(count_char(out, '\n'), 2);
    *nl = '\0';
    o = cJSON_Parse(out);
    ck_assert_msg(o != NULL, "not JSON: %s", out);
    assert_timestamp(cJSON_GetObjectItem(o, "ts")->valuestring);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "level")->valuestring, "debug");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "scope")->valuestring, "plugin erp tenant=acme");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "msg")->valuestring, "say \"hi\"\n\\ \x1b[0m");
    cJSON_Delete(o);

    o = cJSON_Parse(nl + 1);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "level")->valuestring, "error");
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "scope"));
    ck_assert_str_eq(cJSON_GetObjectItem(o, "msg")->valuestring, "plain 1");
    cJSON_Delete(o);
    free(out);
}
END_TEST

START_TEST(test_log_level_parse)
{
    ck_assert_int_eq(ah_log_level_parse("error"), AH_LOG_ERROR);
    ck_assert_int_eq(ah_log_level_parse("warn"), AH_LOG_WARN);
    ck_assert_int_eq(ah_log_level_parse("WARNING"), AH_LOG_WARN);
    ck_assert_int_eq(ah_log_level_parse("info"), AH_LOG_INFO);
    ck_assert_int_eq(ah_log_level_parse("Debug"), AH_LOG_DEBUG);
    ck_assert_int_eq(ah_log_level_parse("trace"), -1);
    ck_assert_int_eq(ah_log_level_parse(""), -1);
    ck_assert_int_eq(ah_log_level_parse(NULL), -1);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");

    tcase_add_test(tc, test_defaults_without_file);
    tcase_add_test(tc, test_empty_file_gives_defaults_relative_to_ini);
    tcase_add_test(tc, test_full_file);
    tcase_add_test(tc, test_webhook_pool_keys);
    tcase_add_test(tc, test_claim_ms_key);
    tcase_add_test(tc, test_bulk_keys);
    tcase_add_test(tc, test_sqlite_url_relative_and_absolute);
    tcase_add_test(tc, test_relative_ini_path);
    tcase_add_test(tc, test_resolve);
    tcase_add_test(tc, test_max_body_suffixes);
    tcase_add_test(tc, test_shipped_ini);
    tcase_add_test(tc, test_env_overrides);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_err_unknown_section);
    tcase_add_test(tc, test_err_unknown_key);
    tcase_add_test(tc, test_err_bad_integer);
    tcase_add_test(tc, test_err_out_of_range);
    tcase_add_test(tc, test_err_enums);
    tcase_add_test(tc, test_err_duplicate_key);
    tcase_add_test(tc, test_err_duplicate_plugin);
    tcase_add_test(tc, test_err_plugin_file);
    tcase_add_test(tc, test_err_bad_listen);
    tcase_add_test(tc, test_err_tls);
    tcase_add_test(tc, test_err_syntax);
    tcase_add_test(tc, test_err_long_line);
    tcase_add_test(tc, test_err_plugin_isolation);
    tcase_add_test(tc, test_plugin_isolation);
    suite_add_tcase(s, tc);

    tc = tcase_create("log");
    tcase_add_test(tc, test_log_plain);
    tcase_add_test(tc, test_log_levels);
    tcase_add_test(tc, test_log_control_chars);
    tcase_add_test(tc, test_admin_token_file);
    tcase_add_test(tc, test_log_truncates);
    tcase_add_test(tc, test_log_json);
    tcase_add_test(tc, test_log_level_parse);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
