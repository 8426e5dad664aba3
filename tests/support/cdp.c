/* SPDX-License-Identifier: Apache-2.0 */
/* Headless Chromium over the DevTools pipe (cdp.h). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cdp.h"

const char *chromium_path(void)
{
    const char *const paths[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser", NULL};
    for (size_t i = 0; paths[i] != NULL; i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

void browser_start(browser *b, const char *dir)
{
    memset(b, 0, sizeof *b);
    const char *exe = chromium_path();
    ck_assert_msg(exe != NULL, "chromium is not installed: run scripts/deps (it installs "
                               "Debian's chromium, which the configuration page test needs)");
    ck_assert_int_ne(asprintf(&b->profile, "%s/chromium-profile", dir), -1);
    char *udd = NULL, *log = NULL;
    ck_assert_int_ne(asprintf(&udd, "--user-data-dir=%s", b->profile), -1);
    ck_assert_int_ne(asprintf(&log, "%s/chromium.log", dir), -1);
    int in[2], out[2];
    ck_assert_int_eq(pipe(in), 0);
    ck_assert_int_eq(pipe(out), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Move the child's ends out of the way, then onto 3 and 4. */
        int r = fcntl(in[0], F_DUPFD, 10), w = fcntl(out[1], F_DUPFD, 10);
        if (r < 0 || w < 0 || dup2(r, 3) < 0 || dup2(w, 4) < 0)
            _exit(126);
        int lf = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nul = open("/dev/null", O_RDONLY);
        if (lf >= 0) {
            dup2(lf, 1);
            dup2(lf, 2);
        }
        if (nul >= 0)
            dup2(nul, 0);
        for (int fd = 5; fd < 1024; fd++)
            close(fd);
        execl(exe, exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--disable-extensions",
              "--disable-quic", "--remote-debugging-pipe", udd, "about:blank", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    free(udd);
    free(log);
    b->pid = pid;
    b->to = in[1];
    b->from = out[0];
    b->next_id = 1;
}

/* Sends one command; returns its id. params is JSON text or NULL. */
int cdp_send(browser *b, const char *session, const char *method, const char *params)
{
    int id = b->next_id++;
    char *msg = NULL;
    char sess[160] = "";
    if (session != NULL)
        snprintf(sess, sizeof sess, ",\"sessionId\":\"%s\"", session);
    ck_assert_int_ne(asprintf(&msg, "{\"id\":%d,\"method\":\"%s\",\"params\":%s%s}", id, method,
                              params != NULL ? params : "{}", sess),
                     -1);
    size_t n = strlen(msg) + 1; /* the NUL delimits the message */
    for (size_t off = 0; off < n;) {
        ssize_t w = write(b->to, msg + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        ck_assert_msg(w > 0, "cannot write to chromium: %s", strerror(errno));
        off += (size_t)w;
    }
    free(msg);
    return id;
}

/* Waits for the answer to command `id` (events are skipped); returns its
 * "result" (the whole message kept in *msg_out for freeing). */
const cJSON *cdp_wait(browser *b, int id, int timeout_s, cJSON **msg_out)
{
    return cdp_wait_ex(b, id, timeout_s, msg_out, false);
}

/* may_fail: an error answer returns NULL (message in *msg_out). */
const cJSON *cdp_wait_ex(browser *b, int id, int timeout_s, cJSON **msg_out,
                                bool may_fail)
{
    time_t end = time(NULL) + timeout_s;
    for (;;) {
        char *nul = b->buf != NULL ? memchr(b->buf, '\0', b->len) : NULL;
        if (nul != NULL) {
            cJSON *m = cJSON_Parse(b->buf);
            size_t used = (size_t)(nul - b->buf) + 1;
            memmove(b->buf, nul + 1, b->len - used);
            b->len -= used;
            const cJSON *mid = cJSON_GetObjectItem(m, "id");
            if (cJSON_IsNumber(mid) && mid->valueint == id) {
                const cJSON *err = cJSON_GetObjectItem(m, "error");
                if (err != NULL && may_fail) {
                    *msg_out = m;
                    return NULL;
                }
                if (err != NULL) {
                    char *t = cJSON_PrintUnformatted(err);
                    ck_abort_msg("chromium refused command %d: %s", id, t);
                }
                *msg_out = m;
                return cJSON_GetObjectItem(m, "result");
            }
            cJSON_Delete(m);
            continue;
        }
        int left = (int)(end - time(NULL));
        ck_assert_msg(left > 0, "chromium did not answer command %d in %d s", id, timeout_s);
        struct pollfd p = {b->from, POLLIN, 0};
        int pr = poll(&p, 1, left * 1000);
        if (pr < 0 && errno == EINTR)
            continue;
        ck_assert_msg(pr > 0, "chromium did not answer command %d in %d s", id, timeout_s);
        char tmp[65536];
        ssize_t r = read(b->from, tmp, sizeof tmp);
        ck_assert_msg(r > 0, "chromium closed its DevTools pipe (see chromium.log)");
        char *nb = realloc(b->buf, b->len + (size_t)r + 1);
        ck_assert_ptr_nonnull(nb);
        b->buf = nb;
        memcpy(b->buf + b->len, tmp, (size_t)r);
        b->len += (size_t)r;
        b->buf[b->len] = '\0';
    }
}

/* Runtime.evaluate of a promise in the page; returns its string value
 * (malloc'd); the test fails with the page's exception otherwise. */
char *cdp_eval(browser *b, const char *session, const char *expr, int timeout_s)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "expression", expr);
    cJSON_AddBoolToObject(p, "awaitPromise", true);
    cJSON_AddBoolToObject(p, "returnByValue", true);
    char *params = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    cJSON *m = NULL;
    const cJSON *res = NULL;
    /* The first evaluation may meet about:blank's context going away as
     * the page navigates: try again in the page's own. */
    for (int tries = 0; res == NULL; tries++) {
        res = cdp_wait_ex(b, cdp_send(b, session, "Runtime.evaluate", params), timeout_s, &m,
                          tries < 50);
        if (res == NULL) {
            cJSON_Delete(m);
            m = NULL;
            usleep(100000);
        }
    }
    free(params);
    const cJSON *exc = cJSON_GetObjectItem(res, "exceptionDetails");
    if (exc != NULL) {
        const cJSON *d = cJSON_GetObjectItem(cJSON_GetObjectItem(exc, "exception"), "description");
        ck_abort_msg("in the page: %s", cJSON_IsString(d) ? d->valuestring : "exception");
    }
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(res, "result"), "value");
    char *out = strdup(cJSON_IsString(v) ? v->valuestring : "");
    cJSON_Delete(m);
    return out;
}

/* Opens url in a new tab; returns the session id (malloc'd). */
char *cdp_open(browser *b, const char *url)
{
    char params[1024];
    snprintf(params, sizeof params, "{\"url\":\"%s\"}", url);
    cJSON *m = NULL;
    /* The first command also waits for Chromium to start, which took more
     * than 30 s once on a loaded 2-core CI machine (a safety net, not a
     * timing under test). */
    int first = b->next_id == 1;
    int id = cdp_send(b, NULL, "Target.createTarget", params);
    const cJSON *res = cdp_wait(b, id, first ? 120 : 30, &m);
    snprintf(params, sizeof params, "{\"targetId\":\"%s\",\"flatten\":true}",
             cJSON_GetObjectItem(res, "targetId")->valuestring);
    cJSON_Delete(m);
    res = cdp_wait(b, cdp_send(b, NULL, "Target.attachToTarget", params), 30, &m);
    char *s = strdup(cJSON_GetObjectItem(res, "sessionId")->valuestring);
    cJSON_Delete(m);
    return s;
}

void browser_stop(browser *b)
{
    if (b->pid > 0) {
        cdp_send(b, NULL, "Browser.close", NULL);
        int st;
        for (int i = 0; i < 100 && waitpid(b->pid, &st, WNOHANG) == 0; i++)
            usleep(50000);
        if (waitpid(b->pid, &st, WNOHANG) == 0) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &st, 0);
        }
    }
    close(b->to);
    close(b->from);
    free(b->buf);
    free(b->profile);
}

void click_at(browser *b, const char *session, const char *xy)
{
    cJSON *pos = cJSON_Parse(xy);
    ck_assert_ptr_nonnull(pos);
    double x = cJSON_GetObjectItem(pos, "x")->valuedouble, y = cJSON_GetObjectItem(pos, "y")->valuedouble;
    cJSON_Delete(pos);
    const char *types[] = {"mousePressed", "mouseReleased"};
    for (int i = 0; i < 2; i++) {
        char params[256];
        snprintf(params, sizeof params,
                 "{\"type\":\"%s\",\"x\":%.1f,\"y\":%.1f,\"button\":\"left\",\"clickCount\":1}",
                 types[i], x, y);
        cJSON *m = NULL;
        cdp_wait(b, cdp_send(b, session, "Input.dispatchMouseEvent", params), 30, &m);
        cJSON_Delete(m);
    }
}

