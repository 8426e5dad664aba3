/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The write path end to end, against `atshub serve` as a child process:
 * group commit answers a request only once its writes are committed (a
 * kill -9 under load loses no acknowledged create), ERP's JOB_EXISTS holds
 * under concurrency across two sources of one tenant, and one source's
 * writes apply in the order it sent them; the daemon runs with the malloc
 * tunable main.c gives it.
 */
#include <check.h>
#include <dirent.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "support/harness.h"

#define ERP "/recruitment/integration/erp/"

typedef struct daemon {
    char *dir, *ini;
    char atshub[512];
    char key[2][128]; /* Main_ERP's and Second_ERP's API keys */
    pid_t pid;
    int errfd;
    int port;
} daemon_t;

static void cli(daemon_t *d, const char *const *args, char **out)
{
    const char *argv[16] = {d->atshub, "-c", d->ini};
    int n = 3;
    for (int i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char *err = NULL;
    int rc = ah_t_run(argv, NULL, out, &err);
    ck_assert_msg(rc == 0, "atshub %s: %s", args[0], err);
    free(err);
}

/* Finds "api_key" anywhere in a JSON document. */
static const char *find_key(const cJSON *j)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        if (it->string != NULL && strcmp(it->string, "api_key") == 0 && cJSON_IsString(it))
            return it->valuestring;
        const char *k = find_key(it);
        if (k != NULL)
            return k;
    }
    return NULL;
}

static void add_source_of(daemon_t *d, const char *tenant, const char *name, char *key,
                          size_t len)
{
    const char *args[] = {"connection", "add", tenant, "erp", name, "--set",
                          "trusted_ips=127.0.0.1", "--json", NULL};
    char *out = NULL;
    cli(d, args, &out);
    cJSON *j = cJSON_Parse(out);
    const char *k = find_key(j);
    ck_assert_msg(k != NULL, "no api_key in %s", out);
    snprintf(key, len, "%s", k);
    cJSON_Delete(j);
    free(out);
}

static void add_source(daemon_t *d, const char *name, char *key, size_t len)
{
    add_source_of(d, "acme", name, key, len);
}

/* env: NAME=VALUE entries added to the daemon's environment, or NULL. */
static void serve_env(daemon_t *d, const char *const *env)
{
    const char *argv[] = {d->atshub, "serve", "-c", d->ini, NULL};
    d->pid = ah_t_spawn(argv, env, &d->errfd);
    ck_assert_int_gt(d->pid, 0);
    char *line = ah_t_wait_line(d->errfd, "listening on", 30);
    if (line == NULL)
        ck_abort_msg("the daemon did not start; it wrote: %s", ah_t_seen(d->errfd));
    d->port = atoi(strstr(line, "127.0.0.1:") + strlen("127.0.0.1:"));
    free(line);
}

static void serve(daemon_t *d)
{
    serve_env(d, NULL);
}

/* url: the store (NULL: SQLite in the folder). */
/* How the erp plugin runs in the next daemon_open: NULL the default (its own
 * process), or an isolation mode. */
static const char *g_erp_isolation;

static void daemon_open_on(daemon_t *d, const char *url)
{
    memset(d, 0, sizeof *d);
    d->dir = ah_t_tmpdir();
    ck_assert_ptr_nonnull(d->dir);
    ck_assert_int_ge(asprintf(&d->ini, "%s/atshub.ini", d->dir), 0);
    char *text = NULL;
    char *own = url == NULL ? NULL : ah_t_store_url(d->dir);
    if (url != NULL)
        ck_assert_ptr_nonnull(own);
    ck_assert_int_ge(asprintf(&text,
                              "[core]\nworkers = 2\nkey_file = host.key\nlog_level = info\n"
                              "[http]\nlisten = 127.0.0.1:0\nthreads = 4\n"
                              "[store]\nurl = %s\n"
                              "[sync]\ninterval_s = 0\n"
                              "[plugins]\nerp = %s/erp.so\n%s%s%s",
                              own != NULL ? own : "sqlite:atshub.db", ah_t_env("AH_PLUGIN_DIR"),
                              g_erp_isolation != NULL ? "[plugin.erp]\nisolation = " : "",
                              g_erp_isolation != NULL ? g_erp_isolation : "",
                              g_erp_isolation != NULL ? "\n" : ""),
                     0);
    g_erp_isolation = NULL;
    free(own);
    ck_assert_int_eq(ah_t_write_file(d->ini, text), 0);
    free(text);
    snprintf(d->atshub, sizeof d->atshub, "%s/atshub", ah_t_env("AH_BUILD_DIR"));
    const char *tenant[] = {"tenant", "add", "acme", "--json", NULL};
    char *out = NULL;
    cli(d, tenant, &out);
    free(out);
    add_source(d, "Main_ERP", d->key[0], sizeof d->key[0]);
    add_source(d, "Second_ERP", d->key[1], sizeof d->key[1]);
    serve(d);
}

static void daemon_open(daemon_t *d)
{
    daemon_open_on(d, NULL);
}

/* A second instance of d on the same store and host key (its own INI in
 * the same folder: only the operators' socket differs). */
static void second_instance(daemon_t *d, daemon_t *b)
{
    memset(b, 0, sizeof *b);
    b->dir = strdup(d->dir);
    ck_assert_int_ge(asprintf(&b->ini, "%s/second.ini", d->dir), 0);
    char *text = ah_t_read_file(d->ini, NULL);
    ck_assert_ptr_nonnull(text);
    char *more = NULL;
    ck_assert_int_ge(asprintf(&more, "%s[admin]\nsocket = %s/second.sock\n", text, d->dir), 0);
    ck_assert_int_eq(ah_t_write_file(b->ini, more), 0);
    free(text);
    free(more);
    snprintf(b->atshub, sizeof b->atshub, "%s", d->atshub);
    memcpy(b->key, d->key, sizeof b->key);
    serve(b);
}

/* Stops a second_instance (its folder is the first's). */
static void second_instance_close(daemon_t *b)
{
    if (b->pid > 0)
        ck_assert_int_eq(ah_t_stop(b->pid, SIGTERM), 0);
    close(b->errfd);
    free(b->dir);
    free(b->ini);
}

static void daemon_close(daemon_t *d)
{
    if (d->pid > 0)
        ck_assert_int_eq(ah_t_stop(d->pid, SIGTERM), 0);
    close(d->errfd);
    ah_t_rmrf(d->dir);
    free(d->dir);
    free(d->ini);
}

/* --- an HTTP client on one kept-alive connection ------------------------ */

typedef struct reply {
    char *p;
    size_t n;
} reply;

static size_t on_data(char *data, size_t sz, size_t nm, void *arg)
{
    reply *r = arg;
    size_t add = sz * nm;
    char *np = realloc(r->p, r->n + add + 1);
    if (np == NULL)
        return 0;
    memcpy(np + r->n, data, add);
    r->n += add;
    np[r->n] = '\0';
    r->p = np;
    return add;
}

/* POSTs an ERP job request; returns the HTTP status (0: no answer) and the
 * parsed body in *out (may be NULL). */
static long erp_post(CURL *h, int port, const char *key, const char *op, const char *source,
                     const char *extra, cJSON **out)
{
    char url[256], hdr[200], body[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d" ERP "%s/", port, op);
    snprintf(hdr, sizeof hdr, "X-API-Key: %s", key);
    snprintf(body, sizeof body,
             "{\"action\":\"%s\",\"source_name\":\"%s\",\"department\":\"IT\","
             "\"job_type\":\"full-time\",\"workplace_type\":\"hybrid\",\"location_city\":\"Riyadh\","
             "\"location_country\":\"Saudi Arabia\","
             "\"application_url\":\"https://careers.example.com/apply\",%s}",
             op[0] == 'c' ? "create_job" : "update_job", source, extra);
    struct curl_slist *hs = curl_slist_append(NULL, hdr);
    hs = curl_slist_append(hs, "Content-Type: application/json");
    reply r = {0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hs);
    if (out != NULL)
        *out = r.p != NULL ? cJSON_Parse(r.p) : NULL;
    free(r.p);
    return status;
}

static const char *job_id_of(const cJSON *j)
{
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "job_id");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* --- a plugin process outlives no daemon ----------------------------------- */

typedef struct hang_req {
    char url[160], auth[160];
    long status;
} hang_req;

static void *hang_req_main(void *arg)
{
    hang_req *h = arg;
    const char *hdr[] = {h->auth, "X-Connection: pit", "Content-Type: application/json", NULL};
    char *out = NULL;
    h->status = ah_t_http("POST", h->url, hdr, "{\"job_id\":\"x\"}", &out);
    free(out);
    return NULL;
}

/* The pid of a process whose parent is `parent` and whose command line
 * holds `needle`, or 0. */
static pid_t child_with(pid_t parent, const char *needle)
{
    DIR *dir = opendir("/proc");
    ck_assert_ptr_nonnull(dir);
    pid_t found = 0;
    struct dirent *e;
    while (found == 0 && (e = readdir(dir)) != NULL) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0)
            continue;
        char path[64], buf[4096];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        int ppid = 0;
        char state = 0;
        int got = fscanf(f, "%*d %*s %c %d", &state, &ppid);
        fclose(f);
        if (got != 2 || ppid != parent)
            continue;
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[n] = '\0';
        if (strstr(buf, needle) != NULL)
            found = pid;
    }
    closedir(dir);
    return found;
}

/* Whether pid has ended (gone, or a zombie nobody has reaped yet). */
static bool ended(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    char state = 0;
    int got = fscanf(f, "%*d %*s %c", &state);
    fclose(f);
    return got == 1 && (state == 'Z' || state == 'X');
}

/* A daemon killed (kill -9) while one of its plugin processes is stuck in a
 * call (the tarpit waits for a file that never comes, reading nothing from
 * the daemon): that process ends too, instead of running on for good with
 * nobody to end it. */
/* d serving (its store as daemon_open makes it) with the tarpit fixture too:
 * tenant globex's connection "pit", whose calls wait for a file that never
 * comes (`never`, in d's folder). core_extra: more lines for [core]. h: a
 * bus call to it (hang_req_main). */
static void tarpit_daemon(daemon_t *d, const char *core_extra, hang_req *h, char *never,
                          size_t nlen)
{
    daemon_open(d);
    ck_assert_int_eq(ah_t_stop(d->pid, SIGTERM), 0);
    close(d->errfd);
    char *text = ah_t_read_file(d->ini, NULL), *more = NULL;
    ck_assert_ptr_nonnull(text);
    const char *core = strstr(text, "[core]\n");
    ck_assert_ptr_nonnull(core);
    core += strlen("[core]\n");
    /* call_timeout_ms: the plugin's own bound, longer than any here. */
    ck_assert_int_ge(asprintf(&more, "%.*s%s%starpit = %s/tarpit.so\n[plugin.tarpit]\n"
                                     "env = AH_TARPIT_RELEASE\ncall_timeout_ms = 600000\n",
                              (int)(core - text), text, core_extra, core,
                              ah_t_env("AH_FIXTURE_DIR")), 0);
    ck_assert_int_eq(ah_t_write_file(d->ini, more), 0);
    free(text);
    free(more);
    const char *tenant[] = {"tenant", "add", "globex", "--json", NULL};
    char *out = NULL;
    cli(d, tenant, &out);
    cJSON *j = cJSON_Parse(out);
    free(out);
    snprintf(h->auth, sizeof h->auth, "Authorization: Bearer %s", find_key(j));
    cJSON_Delete(j);
    const char *conn[] = {"connection", "add", "globex", "tarpit", "pit", NULL};
    cli(d, conn, &out);
    free(out);
    char env_release[1200];
    snprintf(never, nlen, "%s/never", d->dir);
    snprintf(env_release, sizeof env_release, "AH_TARPIT_RELEASE=%s", never);
    const char *env[] = {env_release, NULL};
    serve_env(d, env);
    snprintf(h->url, sizeof h->url, "http://127.0.0.1:%d/v1/bus/jobs.get", d->port);
}

/* A call forwarded to the bus that gets no reply is answered 504 at
 * [core] request_timeout_ms, also when nothing else happens on the daemon
 * (its connection is the only one, and busy): the acceptor, which answers
 * past deadlines, must wake for it although no other event comes. The
 * client waits 30 s (ah_t_http), 60 times the bound; the plugin's own
 * bound is 600 s. */
START_TEST(test_forwarded_call_times_out_on_idle_daemon)
{
    daemon_t d;
    hang_req h;
    char never[1100];
    tarpit_daemon(&d, "request_timeout_ms = 500\n", &h, never, sizeof never);
    const char *hdr[] = {h.auth, "X-Connection: pit", "Content-Type: application/json", NULL};
    char *out = NULL;
    long st = ah_t_http("POST", h.url, hdr, "{\"job_id\":\"x\"}", &out);
    ck_assert_msg(st == 504, "status %ld (%s)", st, out != NULL ? out : "no answer");
    cJSON *j = cJSON_Parse(out);
    const cJSON *code = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code");
    ck_assert_msg(cJSON_IsString(code) && strcmp(code->valuestring, "timeout") == 0, "%s", out);
    cJSON_Delete(j);
    free(out);
    /* The call itself still waits in the plugin: release it, or the stop
     * would wait for it. */
    ck_assert_int_eq(ah_t_write_file(never, "go"), 0);
    daemon_close(&d);
}
END_TEST

START_TEST(test_plugin_process_ends_with_daemon)
{
    daemon_t d;
    hang_req h;
    char never[1100];
    tarpit_daemon(&d, "", &h, never, sizeof never);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, hang_req_main, &h), 0);
    pid_t plugin = 0;
    for (int waited = 0; (plugin = child_with(d.pid, "tarpit")) == 0; waited++) {
        ck_assert_msg(waited < 3000, "no tarpit plugin process under the daemon");
        usleep(10000);
    }
    /* The call reached it: it waits in the plugin's code. */
    char waiting[1200];
    snprintf(waiting, sizeof waiting, "%s.waiting", never);
    for (int waited = 0; access(waiting, F_OK) != 0; waited++) {
        ck_assert_msg(waited < 3000, "the call never reached the tarpit");
        usleep(10000);
    }
    ck_assert_int_eq(kill(d.pid, SIGKILL), 0);
    int status = 0;
    ck_assert_int_eq(waitpid(d.pid, &status, 0), d.pid);
    d.pid = 0;
    pthread_join(th, NULL);
    for (int waited = 0; !ended(plugin); waited++) {
        if (waited >= 3000) {
            kill(plugin, SIGKILL);
            ck_abort_msg("the plugin process %d outlived its daemon by 30 s", (int)plugin);
        }
        usleep(10000);
    }
    daemon_close(&d);
}
END_TEST

/* --- kill -9 under load loses no acknowledged create --------------------- */

#define ACK_MAX 20000

typedef struct acks {
    pthread_mutex_t mu;
    char (*ids)[64];
    atomic_int n;
    atomic_bool stop;
    daemon_t *d;
    atomic_int next; /* client number */
} acks;

static void *create_loop(void *arg)
{
    acks *a = arg;
    int me = atomic_fetch_add(&a->next, 1);
    CURL *h = curl_easy_init();
    for (int i = 0; !atomic_load(&a->stop); i++) {
        char extra[128];
        snprintf(extra, sizeof extra, "\"title\":\"Engineer c%d #%d\"", me, i);
        cJSON *j = NULL;
        long st = erp_post(h, a->d->port, a->d->key[me % 2], "create-job",
                           me % 2 ? "Second_ERP" : "Main_ERP", extra, &j);
        const char *id = job_id_of(j);
        if (st == 200 && id != NULL) {
            pthread_mutex_lock(&a->mu);
            int k = atomic_load(&a->n);
            if (k < ACK_MAX) {
                snprintf(a->ids[k], sizeof a->ids[k], "%s", id);
                atomic_store(&a->n, k + 1);
            }
            pthread_mutex_unlock(&a->mu);
        } else if (st == 0) {
            cJSON_Delete(j);
            break; /* the daemon is gone */
        }
        cJSON_Delete(j);
    }
    curl_easy_cleanup(h);
    return NULL;
}

START_TEST(test_kill9_loses_no_acknowledged_write)
{
    daemon_t d;
    daemon_open(&d);
    acks a = {.d = &d};
    pthread_mutex_init(&a.mu, NULL);
    a.ids = calloc(ACK_MAX, sizeof *a.ids);
    ck_assert_ptr_nonnull(a.ids);
    enum { CLIENTS = 8 };
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, create_loop, &a), 0);
    for (int waited = 0; atomic_load(&a.n) < 400; waited++) {
        ck_assert_msg(waited < 30000, "only %d creates acknowledged in 60 s", atomic_load(&a.n));
        usleep(2000);
    }
    /* Mid-flight: requests are being written, some held for their commit. */
    ck_assert_int_eq(kill(d.pid, SIGKILL), 0);
    int status = 0;
    ck_assert_int_eq(waitpid(d.pid, &status, 0), d.pid);
    d.pid = 0;
    atomic_store(&a.stop, true);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    int acked = atomic_load(&a.n);

    /* The daemon starts again on that store, and every acknowledged job is
     * in it. */
    close(d.errfd);
    serve(&d);
    char db[600];
    snprintf(db, sizeof db, "%s/atshub.db", d.dir);
    sqlite3 *s = NULL;
    ck_assert_int_eq(sqlite3_open_v2(db, &s, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(s, "SELECT count(*) FROM records WHERE type = 'job' "
                                           "AND remote_id = ?1",
                                        -1, &q, NULL),
                     SQLITE_OK);
    int missing = 0;
    const char *first_missing = NULL;
    for (int i = 0; i < acked; i++) {
        sqlite3_bind_text(q, 1, a.ids[i], -1, SQLITE_STATIC);
        ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
        if (sqlite3_column_int(q, 0) != 1) {
            missing++;
            if (first_missing == NULL)
                first_missing = a.ids[i];
        }
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    sqlite3_close(s);
    ck_assert_msg(missing == 0, "%d of %d acknowledged creates lost after kill -9 (first %s)",
                  missing, acked, first_missing);
    /* And it serves writes again. */
    CURL *h = curl_easy_init();
    ck_assert_int_eq(erp_post(h, d.port, d.key[0], "create-job", "Main_ERP",
                              "\"title\":\"After the crash\"", NULL),
                     200);
    curl_easy_cleanup(h);
    free(a.ids);
    pthread_mutex_destroy(&a.mu);
    daemon_close(&d);
}
END_TEST

/* --- JOB_EXISTS under concurrency, across two sources -------------------- */

typedef struct race {
    daemon_t *d;
    daemon_t *d2; /* a second instance on the same store, or NULL */
    const char *title; /* NULL: "The One Open Title" */
    pthread_barrier_t go;
    atomic_int ok, exists, other;
    atomic_int next;
} race;

static void *same_title(void *arg)
{
    race *r = arg;
    int me = atomic_fetch_add(&r->next, 1);
    CURL *h = curl_easy_init();
    int port = r->d2 != NULL && (me / 2) % 2 ? r->d2->port : r->d->port;
    /* Connect first, so that the requests leave together. */
    (void)erp_post(h, port, r->d->key[me % 2], "create-job",
                   me % 2 ? "Second_ERP" : "Main_ERP", "\"title\":\"\"", NULL);
    pthread_barrier_wait(&r->go);
    cJSON *j = NULL;
    char t[128];
    snprintf(t, sizeof t, "\"title\":\"%s\"", r->title != NULL ? r->title : "The One Open Title");
    long st = erp_post(h, port, r->d->key[me % 2], "create-job",
                       me % 2 ? "Second_ERP" : "Main_ERP", t, &j);
    const cJSON *code = cJSON_GetObjectItem(j, "error_code");
    if (st == 200)
        atomic_fetch_add(&r->ok, 1);
    else if (st == 409 && cJSON_IsString(code) && strcmp(code->valuestring, "JOB_EXISTS") == 0)
        atomic_fetch_add(&r->exists, 1);
    else
        atomic_fetch_add(&r->other, 1);
    cJSON_Delete(j);
    curl_easy_cleanup(h);
    return NULL;
}

/* Creates of one title racing from two sources: one job, JOB_EXISTS for the
 * rest, with the erp plugin in its own process (the default here) or in the
 * daemon's (the title's guard and the job number are one store_batch in
 * both since ABI 1.3). */
static void job_exists_race(const char *isolation)
{
    daemon_t d;
    g_erp_isolation = isolation;
    daemon_open(&d);
    const char *pl[] = {"--json", "plugins", NULL};
    char *out = NULL;
    cli(&d, pl, &out);
    cJSON *list = cJSON_Parse(out);
    const cJSON *erp = NULL, *it;
    cJSON_ArrayForEach(it, list)
        if (strcmp(cJSON_GetObjectItem(it, "name")->valuestring, "erp") == 0)
            erp = it;
    ck_assert_msg(erp != NULL, "%s", out);
    ck_assert_str_eq(cJSON_GetObjectItem(erp, "isolation")->valuestring,
                     isolation != NULL ? isolation : "process");
    cJSON_Delete(list);
    free(out);
    enum { N = 24 };
    for (int round = 0; round < 3; round++) {
        race r = {.d = &d};
        pthread_barrier_init(&r.go, NULL, N);
        pthread_t th[N];
        char title[64];
        snprintf(title, sizeof title, "%d", round);
        for (int i = 0; i < N; i++)
            ck_assert_int_eq(pthread_create(&th[i], NULL, same_title, &r), 0);
        for (int i = 0; i < N; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&r.go);
        if (round == 0) {
            ck_assert_msg(atomic_load(&r.ok) == 1 && atomic_load(&r.exists) == N - 1,
                          "%d created, %d JOB_EXISTS, %d other", atomic_load(&r.ok),
                          atomic_load(&r.exists), atomic_load(&r.other));
        } else {
            /* The title stays taken while the first job is open. */
            ck_assert_msg(atomic_load(&r.ok) == 0 && atomic_load(&r.exists) == N,
                          "%d created, %d JOB_EXISTS, %d other", atomic_load(&r.ok),
                          atomic_load(&r.exists), atomic_load(&r.other));
        }
    }
    daemon_close(&d);
}

START_TEST(test_job_exists_holds_under_concurrency)
{
    job_exists_race(NULL);
}
END_TEST

START_TEST(test_job_exists_holds_under_concurrency_in_process)
{
    job_exists_race("in_process");
}
END_TEST

/* Issue 14: two instances on one store (PostgreSQL when the suite runs on
 * it), each receiving half of the concurrent creates of one title from
 * the two sources: one job, JOB_EXISTS for the rest, in every round. */
START_TEST(test_job_exists_across_instances)
{
    daemon_t d, b;
    daemon_open_on(&d, "");
    second_instance(&d, &b);
    enum { N = 24 };
    for (int round = 0; round < 4; round++) {
        char title[64];
        snprintf(title, sizeof title, "Across instances %d", round);
        race r = {.d = &d, .d2 = &b, .title = title};
        pthread_barrier_init(&r.go, NULL, N);
        pthread_t th[N];
        for (int i = 0; i < N; i++)
            ck_assert_int_eq(pthread_create(&th[i], NULL, same_title, &r), 0);
        for (int i = 0; i < N; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&r.go);
        ck_assert_msg(atomic_load(&r.ok) == 1 && atomic_load(&r.exists) == N - 1,
                      "round %d: %d created, %d JOB_EXISTS, %d other", round,
                      atomic_load(&r.ok), atomic_load(&r.exists), atomic_load(&r.other));
    }
    second_instance_close(&b);
    daemon_close(&d);
}
END_TEST

/* Issue 14: two instances both serving two tenants, as behind a load
 * balancer, creates of both tenants at once on both: each instance's
 * group transaction then meets both tenants. On PostgreSQL, groups that
 * waited for each other's tenant rows deadlocked (the server failed one
 * group, every request in it); now a group never waits while it holds a
 * tenant's lock (store.h, group_begin). Every create succeeds, and each
 * tenant's job numbers are drawn once each. */
typedef struct cross {
    daemon_t *d, *d2;
    char keys[2][128]; /* acme's Main_ERP, globex's Other_ERP */
    atomic_int next, ok, bad;
    atomic_int last_status;
    char ids[2][64][32];
    atomic_int nids[2];
} cross;

static void *cross_creates(void *arg)
{
    cross *x = arg;
    int me = atomic_fetch_add(&x->next, 1), t = me % 2;
    int port = (me / 2) % 2 ? x->d2->port : x->d->port;
    CURL *h = curl_easy_init();
    for (int i = 0; i < 12; i++) {
        char extra[96];
        snprintf(extra, sizeof extra, "\"title\":\"Cross %d-%d\"", me, i);
        cJSON *j = NULL;
        long st = erp_post(h, port, x->keys[t], "create-job", t ? "Other_ERP" : "Main_ERP",
                           extra, &j);
        const char *id = job_id_of(j);
        if (st == 200 && id != NULL) {
            int k = atomic_fetch_add(&x->nids[t], 1);
            if (k < 64)
                snprintf(x->ids[t][k], sizeof x->ids[t][k], "%s", id);
            atomic_fetch_add(&x->ok, 1);
        } else {
            atomic_store(&x->last_status, (int)st);
            atomic_fetch_add(&x->bad, 1);
        }
        cJSON_Delete(j);
    }
    curl_easy_cleanup(h);
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

START_TEST(test_two_instances_serve_two_tenants)
{
    daemon_t d, b;
    daemon_open_on(&d, "");
    const char *tenant[] = {"tenant", "add", "globex", "--json", NULL};
    char *out = NULL;
    cli(&d, tenant, &out);
    free(out);
    cross x = {.d = &d, .d2 = &b};
    snprintf(x.keys[0], sizeof x.keys[0], "%s", d.key[0]);
    add_source_of(&d, "globex", "Other_ERP", x.keys[1], sizeof x.keys[1]);
    second_instance(&d, &b);
    /* The first instance picks the new tenant up within a tick or two. */
    for (int i = 0; i < 100; i++) {
        CURL *h = curl_easy_init();
        long st = erp_post(h, d.port, x.keys[1], "create-job", "Other_ERP",
                           "\"title\":\"Warm up\"", NULL);
        curl_easy_cleanup(h);
        if (st == 200)
            break;
        usleep(50000);
    }
    enum { N = 8 };
    pthread_t th[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, cross_creates, &x), 0);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    ck_assert_msg(atomic_load(&x.bad) == 0, "%d of %d creates failed (last status %d)",
                  atomic_load(&x.bad), N * 12, atomic_load(&x.last_status));
    for (int t = 0; t < 2; t++) {
        int n = atomic_load(&x.nids[t]);
        ck_assert_int_eq(n, N / 2 * 12);
        qsort(x.ids[t], (size_t)n, sizeof x.ids[t][0], cmp_str);
        for (int i = 1; i < n; i++)
            ck_assert_str_ne(x.ids[t][i], x.ids[t][i - 1]);
    }
    second_instance_close(&b);
    daemon_close(&d);
}
END_TEST

/* --- one source's writes apply in the order it sent them ---------------- */

START_TEST(test_per_source_order)
{
    daemon_t d;
    daemon_open(&d);
    CURL *h = curl_easy_init();
    char prev[64] = "";
    for (int i = 0; i < 40; i++) {
        char extra[160];
        snprintf(extra, sizeof extra, "\"title\":\"Ordered %d\"", i);
        cJSON *j = NULL;
        ck_assert_int_eq(erp_post(h, d.port, d.key[0], "create-job", "Main_ERP", extra, &j), 200);
        const char *id = job_id_of(j);
        ck_assert_ptr_nonnull(id);
        /* Ids follow the order of the creates. */
        ck_assert_msg(strcmp(prev, id) < 0, "%s after %s", id, prev);
        snprintf(prev, sizeof prev, "%s", id);
        /* The update sent right after the create sees it. */
        snprintf(extra, sizeof extra, "\"job_id\":\"%s\",\"title\":\"Ordered %d renamed\"", id, i);
        cJSON_Delete(j);
        ck_assert_int_eq(erp_post(h, d.port, d.key[0], "update-job", "Main_ERP", extra, &j), 200);
        cJSON_Delete(j);
    }
    curl_easy_cleanup(h);
    daemon_close(&d);
}
END_TEST

/* Whether the process pid was started with `tunable` in its GLIBC_TUNABLES
 * (/proc/PID/environ: the environment as the process's image began; glibc
 * splits that variable at its colons in place as it reads it, so each
 * tunable is one entry or the tail of the variable's). */
static bool started_with_tunable(pid_t pid, const char *tunable)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char env[1 << 16];
    size_t n = fread(env, 1, sizeof env - 1, f);
    fclose(f);
    env[n] = '\0';
    size_t tl = strlen(tunable);
    for (size_t i = 0; i < n; i += strlen(env + i) + 1) {
        const char *e = env + i, *v = e;
        if (strncmp(e, "GLIBC_TUNABLES=", 15) == 0)
            v = e + 15;
        for (const char *p = v; p != NULL; p = strchr(p, ':') != NULL ? strchr(p, ':') + 1 : NULL)
            if (strncmp(p, tunable, tl) == 0 && (p[tl] == '\0' || p[tl] == ':'))
                return true;
    }
    return false;
}

/* `atshub serve` runs with glibc's per-thread cache of freed blocks at 64
 * a size (main.c): it starts itself again with the tunable set, as the
 * same process (the pid the caller holds, which the kill -9 test needs
 * too), and it answers. An operator's own setting is kept. */
START_TEST(test_serve_sets_malloc_tcache)
{
    daemon_t d;
    daemon_open(&d);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)d.pid);
    if (access(path, R_OK) != 0 && errno == EACCES && geteuid() != 0) {
        /* The daemon is not dumpable (harden.h): only root reads it. */
        fprintf(stderr, "not root: %s not readable, skipped\n", path);
        daemon_close(&d);
        return;
    }
    ck_assert(started_with_tunable(d.pid, "glibc.malloc.tcache_count=64"));
    CURL *h = curl_easy_init();
    ck_assert_ptr_nonnull(h);
    cJSON *j = NULL;
    ck_assert_int_eq(erp_post(h, d.port, d.key[0], "create-job", "Main_ERP",
                              "\"title\":\"Tcache one\"", &j), 200);
    cJSON_Delete(j);
    ck_assert_int_eq(ah_t_stop(d.pid, SIGTERM), 0);
    close(d.errfd);
    const char *env[] = {"GLIBC_TUNABLES=glibc.malloc.tcache_count=5", NULL};
    serve_env(&d, env);
    ck_assert(started_with_tunable(d.pid, "glibc.malloc.tcache_count=5"));
    ck_assert(!started_with_tunable(d.pid, "glibc.malloc.tcache_count=64"));
    ck_assert_int_eq(erp_post(h, d.port, d.key[0], "create-job", "Main_ERP",
                              "\"title\":\"Tcache two\"", &j), 200);
    cJSON_Delete(j);
    curl_easy_cleanup(h);
    daemon_close(&d);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("write_path");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_kill9_loses_no_acknowledged_write);
    tcase_add_test(tc, test_plugin_process_ends_with_daemon);
    tcase_add_test(tc, test_forwarded_call_times_out_on_idle_daemon);
    tcase_add_test(tc, test_job_exists_holds_under_concurrency);
    tcase_add_test(tc, test_job_exists_holds_under_concurrency_in_process);
    tcase_add_test(tc, test_job_exists_across_instances);
    tcase_add_test(tc, test_two_instances_serve_two_tenants);
    tcase_add_test(tc, test_per_source_order);
    tcase_add_test(tc, test_serve_sets_malloc_tcache);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
