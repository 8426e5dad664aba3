/* SPDX-License-Identifier: Apache-2.0 */
#include "harness.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_tpl.h"
#include <cjson/cJSON.h>

const char *ah_t_env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

bool ah_t_browser(const char *suite)
{
    const char *v = ah_t_env("AH_TEST_BROWSER");
    if (v == NULL || strcmp(v, "0") != 0)
        return true;
    fprintf(stderr, "%s: the browser tests are not in this run (AH_TEST_BROWSER=0)\n", suite);
    return false;
}

char *ah_t_tmpdir(void)
{
    char *d = strdup("/tmp/atshub-test-XXXXXX");
    if (d == NULL || mkdtemp(d) == NULL) {
        free(d);
        return NULL;
    }
    return d;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void ah_t_rmrf(const char *dir)
{
    if (dir != NULL)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int ah_t_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int rc = fputs(text, f) < 0 ? -1 : 0;
    return fclose(f) != 0 ? -1 : rc;
}

char *ah_t_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf != NULL && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
        if (len != NULL)
            *len = n;
    }
    return buf;
}

bool ah_t_pg(void)
{
    const char *e = ah_t_env("AH_TEST_ENGINE");
    return e != NULL && strcmp(e, "postgresql") == 0;
}

/* The test executable's path and modification time (0 on failure). */



char *ah_t_store_url(const char *dir)
{
    if (!ah_t_pg())
        return strdup("sqlite:atshub.db");
    const char *server = ah_t_env("AH_TEST_PG_URL");
    const char *suite = ah_t_env("AH_TEST_SUITE");
    if (server == NULL || dir == NULL)
        return NULL;
    if (suite == NULL)
        suite = "check_x";
    if (strncmp(suite, "check_", 6) == 0)
        suite += 6;
    /* ah_<suite>_<hex of the temp folder's name>: unique per test, the
     * same for one folder (a test that rewrites its config keeps its
     * data), and what tests/pg_run.sh drops when the suite ends. */
    char name[64];
    snprintf(name, sizeof name, "ah_%.24s_", suite);
    const char *base = strrchr(dir, '/');
    base = base != NULL ? base + 1 : dir;
    if (strrchr(base, '-') != NULL) /* atshub-test-XXXXXX: the unique part */
        base = strrchr(base, '-') + 1;
    for (const char *p = base; *p && strlen(name) + 3 < sizeof name; p++)
        if (*p != '-' && *p != '_')
            snprintf(name + strlen(name), sizeof name - strlen(name), "%02x", (unsigned char)*p);
    for (char *p = name; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    char url[512], err[512] = "";
    /* Without a template an empty database, which the daemon migrates. */
    int rc = ah_t_pg_create_migrated(server, name, url, sizeof url, err, sizeof err);
    if (rc != 0 && strstr(err, "already exists") == NULL) {
        fprintf(stderr, "harness: create database %s: %s\n", name, err);
        return NULL;
    }
    return strdup(url);
}

char *ah_t_store_dump(const char *dir, size_t *len)
{
    *len = 0;
    if (ah_t_pg()) {
        char *url = ah_t_store_url(dir);
        if (url == NULL)
            return NULL;
        /* pg_dump is found on PATH (postgresql-client); the URL is ours
         * (no quotes in it). */
        char *out = NULL, *cmd = NULL;
        if (asprintf(&cmd, "pg_dump --no-owner '%s' 2>/dev/null", url) < 0)
            cmd = NULL;
        free(url);
        if (cmd == NULL)
            return NULL;
        FILE *p = popen(cmd, "r");
        free(cmd);
        if (p == NULL)
            return NULL;
        size_t cap = 1 << 16, n = 0;
        out = malloc(cap);
        size_t r;
        while (out != NULL && (r = fread(out + n, 1, cap - n - 1, p)) > 0) {
            n += r;
            if (cap - n < 2) {
                char *nb = realloc(out, cap * 2);
                if (nb == NULL) {
                    free(out);
                    out = NULL;
                    break;
                }
                out = nb;
                cap *= 2;
            }
        }
        int st = pclose(p);
        if (out == NULL || st != 0 || n == 0) {
            free(out);
            return NULL;
        }
        out[n] = '\0';
        *len = n;
        return out;
    }
    char *all = NULL;
    size_t total = 0;
    const char *files[] = {"atshub.db", "atshub.db-wal"};
    for (size_t i = 0; i < 2; i++) {
        char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, files[i]) < 0)
            continue;
        size_t l = 0;
        char *data = ah_t_read_file(path, &l);
        free(path);
        if (data == NULL)
            continue;
        char *na = realloc(all, total + l + 1);
        if (na != NULL) {
            memcpy(na + total, data, l);
            total += l;
            na[total] = '\0';
            all = na;
        }
        free(data);
    }
    *len = total;
    return all;
}



char *ah_t_write_ini(const char *dir, const char *extra)
{
    const char *plugins = ah_t_env("AH_PLUGIN_DIR");
    char *path = NULL, *text = NULL;
    char *store = ah_t_store_url(dir);
    if (store == NULL)
        return NULL;
    if (asprintf(&path, "%s/atshub.ini", dir) < 0) {
        free(store);
        return NULL;
    }
    if (asprintf(&text,
                 "[core]\nworkers = 2\nkey_file = host.key\nrequest_timeout_ms = 5000\nlog_level = warn\n"
                 "[http]\nlisten = 127.0.0.1:0\nmax_body = 64K\n"
                 "[store]\nurl = %s\n"
                 "[outbound]\ntimeout_ms = 2000\nmax_attempts = 3\nbackoff_ms = 10\nbackoff_max_ms = 2000\n"
                 "[sync]\ninterval_s = 0\n"
                 "%s[plugins]\ntemplate = %s/template.so\n%s",
                 store,
                 extra != NULL && strstr(extra, "[plugin.template]") != NULL
                     ? ""
                     : "[plugin.template]\nisolation = in_process\n",
                 plugins != NULL ? plugins : "plugins", extra != NULL ? extra : "") < 0) {
        free(store);
        free(path);
        return NULL;
    }
    free(store);
    if (!ah_t_pg()) {
        char db[4096];
        snprintf(db, sizeof db, "%s/atshub.db", dir);
        if (access(db, F_OK) != 0)
            (void)ah_t_sqlite_migrated(db); /* or the daemon makes it */
    }
    int rc = ah_t_write_file(path, text);
    free(text);
    if (rc != 0) {
        free(path);
        return NULL;
    }
    return path;
}

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t on_data(char *d, size_t sz, size_t nm, void *arg)
{
    buf *b = arg;
    size_t add = sz * nm;
    char *np = realloc(b->p, b->n + add + 1);
    if (np == NULL)
        return 0;
    memcpy(np + b->n, d, add);
    b->n += add;
    np[b->n] = '\0';
    b->p = np;
    return add;
}

long ah_t_http(const char *method, const char *url, const char *const *headers,
               const char *body, char **body_out)
{
    return ah_t_http_head(method, url, headers, body, body_out, NULL);
}

/* AH_TEST_TRAFFIC_LOG=FILE: every exchange with the REST API (a path under
 * /v1/) is appended to FILE as one JSON line, {"method", "url" (path and
 * query), "status", "headers" (the answer's, names lowercased), "body"
 * (the answer's)}, for tests/openapi_traffic.js to validate against
 * docs/openapi.yaml. */
static pthread_mutex_t traffic_mu = PTHREAD_MUTEX_INITIALIZER;

void ah_t_record_exchange(const char *method, const char *url, long status, const char *head,
                          const char *body)
{
    const char *file = getenv("AH_TEST_TRAFFIC_LOG");
    if (file == NULL || *file == '\0' || status == 0)
        return;
    const char *p = strstr(url, "://");
    p = p != NULL ? strchr(p + 3, '/') : NULL;
    if (p == NULL || strncmp(p, "/v1/", 4) != 0)
        return;
    cJSON *o = cJSON_CreateObject(), *h = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", method);
    cJSON_AddStringToObject(o, "url", p);
    cJSON_AddNumberToObject(o, "status", (double)status);
    /* The last block of header lines (after a 100 Continue, the final one). */
    const char *last = head, *q = head;
    while ((q = strstr(q, "\r\n\r\n")) != NULL) {
        if (q[4] != '\0')
            last = q + 4;
        q += 4;
    }
    for (const char *line = last; line != NULL && *line != '\0';) {
        const char *eol = strstr(line, "\r\n");
        size_t n = eol != NULL ? (size_t)(eol - line) : strlen(line);
        const char *colon = memchr(line, ':', n);
        if (colon != NULL) {
            char name[128], value[1024];
            size_t kn = (size_t)(colon - line) < sizeof name - 1 ? (size_t)(colon - line)
                                                                 : sizeof name - 1;
            for (size_t i = 0; i < kn; i++)
                name[i] = (char)(line[i] >= 'A' && line[i] <= 'Z' ? line[i] + 32 : line[i]);
            name[kn] = '\0';
            const char *v = colon + 1;
            while (v < line + n && *v == ' ')
                v++;
            snprintf(value, sizeof value, "%.*s", (int)(line + n - v), v);
            cJSON_DeleteItemFromObjectCaseSensitive(h, name);
            cJSON_AddStringToObject(h, name, value);
        }
        line = eol != NULL ? eol + 2 : NULL;
    }
    cJSON_AddItemToObject(o, "headers", h);
    cJSON_AddStringToObject(o, "body", body != NULL ? body : "");
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (line == NULL)
        return;
    pthread_mutex_lock(&traffic_mu);
    FILE *f = fopen(file, "a");
    if (f != NULL) {
        fprintf(f, "%s\n", line);
        fclose(f);
    }
    pthread_mutex_unlock(&traffic_mu);
    free(line);
}

long ah_t_http_head(const char *method, const char *url, const char *const *headers,
                    const char *body, char **body_out, char **head_out)
{
    CURL *c = curl_easy_init();
    if (c == NULL)
        return 0;
    struct curl_slist *h = NULL;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        h = curl_slist_append(h, headers[i]);
    buf b = {NULL, 0}, hb = {NULL, 0};
    const char *traffic = getenv("AH_TEST_TRAFFIC_LOG");
    if (head_out != NULL || (traffic != NULL && *traffic != '\0')) {
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    ah_t_record_exchange(method, url, status, hb.p != NULL ? hb.p : "", b.p);
    if (body_out != NULL)
        *body_out = b.p != NULL ? b.p : strdup("");
    else
        free(b.p);
    if (head_out != NULL)
        *head_out = hb.p != NULL ? hb.p : strdup("");
    else
        free(hb.p);
    return status;
}

static void child_exec(const char *const *argv, const char *const *env)
{
    for (size_t i = 0; env != NULL && env[i] != NULL; i++)
        putenv((char *)env[i]);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

int ah_t_run(const char *const *argv, const char *const *env, char **out, char **err)
{
    int po[2], pe[2];
    if (pipe(po) != 0)
        return -1;
    if (pipe(pe) != 0) {
        close(po[0]);
        close(po[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        child_exec(argv, env);
    }
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(po[0]);
        close(pe[0]);
        return -1;
    }
    /* stderr is small; read stdout fully first, then stderr. A child that
     * fills the stderr pipe first would block, so make stderr non-blocking
     * via poll on both. */
    buf bo = {NULL, 0}, be = {NULL, 0};
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char tmp[4096];
            ssize_t r = read(fds[i].fd, tmp, sizeof tmp);
            if (r > 0) {
                on_data(tmp, 1, (size_t)r, i == 0 ? &bo : &be);
            } else if (r == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (out != NULL)
        *out = bo.p != NULL ? bo.p : strdup("");
    else
        free(bo.p);
    if (err != NULL)
        *err = be.p != NULL ? be.p : strdup("");
    else
        free(be.p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* /proc/PID/stat's command, state and parent; false when it is gone. */
static bool proc_stat(const char *pid, char comm[64], char *state, int *ppid)
{
    char path[300], text[512];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *lp = strchr(text, '('), *rp = strrchr(text, ')');
    if (lp == NULL || rp == NULL || rp < lp || sscanf(rp + 2, "%c %d", state, ppid) != 2)
        return false;
    size_t cl = (size_t)(rp - lp - 1) < 63 ? (size_t)(rp - lp - 1) : 63;
    memcpy(comm, lp + 1, cl);
    comm[cl] = '\0';
    return true;
}

char ah_t_proc_state(pid_t pid)
{
    char id[16], comm[64], state = 0;
    int ppid;
    snprintf(id, sizeof id, "%d", (int)pid);
    return proc_stat(id, comm, &state, &ppid) ? state : 0;
}

int ah_t_children(pid_t parent, const char *comm, pid_t *live, int max, int *zombies)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return -1;
    int n = 0, nl = 0;
    if (zombies != NULL)
        *zombies = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char c[64], state;
        int ppid;
        if (!proc_stat(e->d_name, c, &state, &ppid) || ppid != parent ||
            (comm != NULL && strcmp(c, comm) != 0))
            continue;
        n++;
        if (state == 'Z') {
            if (zombies != NULL)
                (*zombies)++;
        } else if (nl < max) {
            live[nl++] = atoi(e->d_name);
        }
    }
    closedir(d);
    return n;
}

/* What ah_t_wait_line and ah_t_seen read from each spawned process's
 * stderr: the last SEEN_MAX bytes, so that a test that gives up waiting
 * can say what the process wrote instead (the lines passed over while
 * looking for one are gone from the pipe). A slot per descriptor, reset
 * when ah_t_spawn hands the number out again (or ah_t_seen_reset); past
 * SEEN_SLOTS descriptors, slots are shared by number. */
#define SEEN_MAX 4096
#define SEEN_SLOTS 32
typedef struct seen_log {
    int fd;
    size_t len;
    char text[SEEN_MAX];
} seen_log;
static seen_log g_seen[SEEN_SLOTS];
static int g_seen_used; /* slots handed out so far */
static pthread_mutex_t g_seen_mu = PTHREAD_MUTEX_INITIALIZER;

/* g_seen_mu held. The slot of fd (a new one when make), or NULL. */
static seen_log *seen_find(int fd, bool make)
{
    for (int i = 0; i < g_seen_used; i++)
        if (g_seen[i].fd == fd)
            return &g_seen[i];
    if (!make)
        return NULL;
    seen_log *l = &g_seen[g_seen_used < SEEN_SLOTS ? g_seen_used++ : fd % SEEN_SLOTS];
    l->fd = fd;
    l->len = 0;
    return l;
}

void ah_t_seen_reset(int fd)
{
    pthread_mutex_lock(&g_seen_mu);
    seen_find(fd, true)->len = 0;
    pthread_mutex_unlock(&g_seen_mu);
}

static void seen_add(int fd, const char *d, size_t n)
{
    pthread_mutex_lock(&g_seen_mu);
    seen_log *l = seen_find(fd, true);
    if (n >= SEEN_MAX) {
        d += n - SEEN_MAX;
        n = SEEN_MAX;
    }
    if (l->len + n > SEEN_MAX) { /* keep the end */
        size_t drop = l->len + n - SEEN_MAX;
        memmove(l->text, l->text + drop, l->len - drop);
        l->len -= drop;
    }
    memcpy(l->text + l->len, d, n);
    l->len += n;
    pthread_mutex_unlock(&g_seen_mu);
}

pid_t ah_t_spawn(const char *const *argv, const char *const *env, int *err_fd)
{
    int pe[2];
    if (pipe(pe) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pe[1], 2);
        close(pe[0]);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        child_exec(argv, env);
    }
    close(pe[1]);
    if (pid < 0) {
        close(pe[0]);
        return -1;
    }
    *err_fd = pe[0];
    ah_t_seen_reset(pe[0]);
    return pid;
}

char *ah_t_wait_line(int fd, const char *needle, int timeout_s)
{
    buf b = {NULL, 0};
    time_t end = time(NULL) + timeout_s;
    while (time(NULL) < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r <= 0)
            break;
        seen_add(fd, &c, 1);
        if (c != '\n') {
            on_data(&c, 1, 1, &b);
            continue;
        }
        if (b.p != NULL && strstr(b.p, needle) != NULL)
            return b.p;
        free(b.p);
        b.p = NULL;
        b.n = 0;
    }
    free(b.p);
    return NULL;
}

char *ah_t_seen(int fd)
{
    /* What is there now, without waiting for more. */
    char chunk[4096];
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 0) > 0 && (p.revents & POLLIN) != 0) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r <= 0)
            break;
        seen_add(fd, chunk, (size_t)r);
    }
    pthread_mutex_lock(&g_seen_mu);
    seen_log *l = seen_find(fd, false);
    char *out = l != NULL ? strndup(l->text, l->len) : NULL;
    pthread_mutex_unlock(&g_seen_mu);
    return out != NULL ? out : strdup("(nothing)");
}

char *ah_t_read_rest(int fd)
{
    buf b = {NULL, 0};
    char chunk[4096];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0 || (r < 0 && errno == EINTR)) {
        if (r > 0)
            on_data(chunk, 1, (size_t)r, &b);
    }
    if (b.p == NULL)
        return strdup("");
    if (b.n > 8192)
        memmove(b.p, b.p + b.n - 8192, 8193);
    return b.p;
}

int ah_t_stop(pid_t pid, int sig)
{
    int st = 0;
    kill(pid, sig);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
