/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `atshub plugin check FILE.so`: everything the loader checks (ABI both
 * ways, descriptor, settings table, table sizes, every declared callback),
 * then init, then `cycles` rounds of load / open / close / unload on a
 * scratch host (its own key and store in a temporary folder) and a scratch
 * connection whose settings are the table's defaults (placeholders for
 * required settings without one). A plugin that leaks a mapping of its
 * file, a file descriptor or heap per cycle, or crashes, fails here rather
 * than on a production host during a hot swap.
 */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"
#include "opfields.h"
#include "ops.h"

/* Heap growth over all cycles tolerated as allocator noise. */
#define AH_CHECK_HEAP_SLACK (64L * 1024)

static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    long n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* Mappings of the plugin file or of a private copy of it. */
static long count_maps(const char *real, const char *base)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -1;
    char line[4096], copy[128];
    snprintf(copy, sizeof copy, "/memfd:atshub-%.*s-", (int)strcspn(base, "."), base);
    long n = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if ((real != NULL && strstr(line, real) != NULL) || strstr(line, copy) != NULL)
            n++;
    fclose(f);
    return n;
}

/* Heap in use: the arena's chunks and the large ones glibc maps on their
 * own (hblkhd: 128 KiB and more by default), which uordblks leaves out. */
static long heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (long)(mi.uordblks + mi.hblkhd);
}

static const char *placeholder(const ah_setting_spec *s)
{
    switch (s->type) {
    case AH_SET_URL: return "http://127.0.0.1:9";
    case AH_SET_INT: return "1";
    case AH_SET_BOOL: return "false";
    case AH_SET_LIST: return "check";
    case AH_SET_STRING: break;
    }
    return "check";
}

/* A connection that exists only in this process; freed by conn_done. */
static ah_conn *scratch_conn(ah_core *core, const ah_generation *gen)
{
    ah_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->core = core;
    c->id = 1;
    c->tenant_id = 1;
    c->tenant = strdup("plugin-check");
    c->name = strdup("check");
    c->plugin = strdup(gen->name);
    c->enabled = true;
    c->settings_text = strdup("{}");
    c->settings = cJSON_CreateObject();
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->call_lock, NULL);
    for (const ah_setting_spec *s = gen->desc->settings; s != NULL && s->key != NULL; s++) {
        const char *v = s->default_value;
        if (v == NULL && (s->flags & (AH_SETTING_REQUIRED | AH_SETTING_GENERATED)))
            v = placeholder(s);
        if (v != NULL)
            cJSON_AddStringToObject(c->settings, s->key, v);
    }
    return c;
}

static void conn_close_ctx(ah_conn *c)
{
    if (c->ctx_gen != NULL) {
        if (c->ctx != NULL && c->ctx_gen->desc->close != NULL)
            c->ctx_gen->desc->close(c->ctx_gen->plugin_state, c->ctx);
        ah_generation_release(c->ctx_gen);
    }
    c->ctx_gen = NULL;
    c->ctx = NULL;
    c->ctx_failed = false;
}

static void conn_done(ah_conn *c)
{
    if (c == NULL)
        return;
    conn_close_ctx(c);
    pthread_mutex_destroy(&c->call_lock);
    free(c->tenant);
    free(c->name);
    free(c->plugin);
    free(c->settings_text);
    cJSON_Delete(c->settings);
    free(c);
}

/* One load / open / close / unload round. 0, or -1 with err. */
static int one_cycle(ah_core *core, const char *path, bool *opened, char *err, size_t errlen)
{
    ah_generation *gen = ah_plugin_load_ctx(path, &core->host, NULL, err, errlen);
    if (gen == NULL)
        return -1;
    ah_conn *c = scratch_conn(core, gen);
    int rc = 0;
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    } else {
        ah_call_ext ext;
        memset(&ext, 0, sizeof ext);
        if (ah_conn_ensure_open(core, c, gen, &ext) != 0) {
            snprintf(err, errlen, "%s: open() with the default settings failed: %s", path,
                     ext.err_msg);
            rc = -1;
        }
        *opened = gen->desc->open != NULL;
    }
    conn_done(c);
    ah_generation_release(gen);
    return rc;
}

static ah_core *scratch_core(const char *dir, char *err, size_t errlen)
{
    ah_config cfg;
    ah_config_defaults(&cfg);
    free(cfg.key_file);
    free(cfg.store_url);
    cfg.key_file = NULL;
    cfg.store_url = NULL;
    if (asprintf(&cfg.key_file, "%s/host.key", dir) < 0)
        cfg.key_file = NULL;
    if (asprintf(&cfg.store_url, "sqlite:%s/check.db", dir) < 0)
        cfg.store_url = NULL;
    cfg.log_level = AH_LOG_WARN;
    ah_core_opts o = {.load_plugins = false, .start_bus = false};
    ah_core *core = ah_core_open(&cfg, &o, err, errlen);
    ah_config_free(&cfg);
    return core;
}

/* Writes and their reconciliation: each write topic served has a
 * declaration other than UNDECLARED; each declaration names a write topic
 * the plugin serves or one of its subscription patterns, with a known
 * value. Fills report "writes" {topic: how}. 0, or -1 with err. */
static int check_writes(const char *path, const ah_plugin_descriptor *d, cJSON *report,
                        char *err, size_t errlen)
{
    cJSON *writes = cJSON_AddObjectToObject(report, "writes");
    char missing[1024] = "";
    size_t used = 0;
    size_t ntopics = 0;
    const ah_topic *topics = ah_router_topics(&ntopics);
    for (size_t i = 0; i < ntopics; i++) {
        if (ah_router_resolve(d, &topics[i]) == NULL || !ah_router_is_write(topics[i].topic))
            continue;
        const ah_op_write *w = ah_router_write_decl(d, topics[i].topic);
        const char *how = w != NULL ? ah_reconcile_name(w->reconcile) : NULL;
        if (how != NULL) {
            if (writes != NULL)
                cJSON_AddStringToObject(writes, topics[i].topic, how);
            continue;
        }
        int n = snprintf(missing + used, sizeof missing - used, "%s%s", used ? ", " : "",
                         topics[i].topic);
        if (n > 0 && (size_t)n < sizeof missing - used)
            used += (size_t)n;
    }
    if (used > 0) {
        snprintf(err, errlen,
                 "%s: write operations that declare no reconciliation: %s (list each in the "
                 "descriptor's op_writes with how an unknown outcome is settled: see "
                 "sdk/README.md, \"Writes and exactly once\")",
                 path, missing);
        return -1;
    }
    if (!AH_HAS(d, op_writes) || d->op_writes == NULL)
        return 0;
    for (const ah_op_write *w = d->op_writes; w->topic != NULL; w++) {
        bool served = ah_router_is_write(w->topic) &&
                      ah_router_resolve(d, ah_router_topic(w->topic)) != NULL;
        bool subscribed = false;
        for (const ah_subscription *s = d->subscriptions; s != NULL && s->pattern != NULL; s++)
            subscribed = subscribed || strcmp(s->pattern, w->topic) == 0;
        if (!served && !subscribed) {
            snprintf(err, errlen,
                     "%s: op_writes declares '%s', which is neither a write topic the plugin "
                     "serves nor one of its subscriptions",
                     path, w->topic);
            return -1;
        }
        const char *how = ah_reconcile_name(w->reconcile);
        if (how == NULL) {
            snprintf(err, errlen, "%s: op_writes '%s' declares no known reconciliation (%d)",
                     path, w->topic, (int)w->reconcile);
            return -1;
        }
        if (subscribed && writes != NULL && !cJSON_HasObjectItem(writes, w->topic))
            cJSON_AddStringToObject(writes, w->topic, how);
    }
    return 0;
}

/* The check itself, in the child process check_full forks, on the scratch
 * folder dir (the parent removes it). */
static int check_in(const char *dir, const char *path, int cycles, cJSON *report, char *err,
                    size_t errlen)
{
    ah_core *core = scratch_core(dir, err, errlen);
    int rc = -1;
    if (core == NULL)
        goto out;
    /* Static checks, then init once (what a load does). */
    if (ah_plugin_check(path, &core->host, err, errlen) != 0)
        goto out;
    ah_generation *gen = ah_plugin_load_ctx(path, &core->host, NULL, err, errlen);
    if (gen == NULL)
        goto out;
    const ah_plugin_descriptor *d = gen->desc;
    cJSON_AddStringToObject(report, "name", d->name);
    cJSON_AddStringToObject(report, "version", d->version ? d->version : "");
    char abi[32];
    snprintf(abi, sizeof abi, "%u.%u", (unsigned)d->abi_major, (unsigned)d->abi_minor);
    cJSON_AddStringToObject(report, "abi", abi);
    int nset = 0, nroutes = 0, nsubs = 0;
    for (const ah_setting_spec *s = d->settings; s != NULL && s->key != NULL; s++)
        nset++;
    for (const ah_route *r = d->routes; r != NULL && r->method != NULL; r++)
        nroutes++;
    for (const ah_subscription *s = d->subscriptions; s != NULL && s->pattern != NULL; s++)
        nsubs++;
    cJSON_AddNumberToObject(report, "settings", nset);
    cJSON_AddNumberToObject(report, "routes", nroutes);
    cJSON_AddNumberToObject(report, "subscriptions", nsubs);
    /* Operations served without a field table get no host validation: an
     * author should see which before deploying. */
    int ntables = 0;
    cJSON *unchecked = cJSON_AddArrayToObject(report, "unchecked_topics");
    size_t ntopics = 0;
    const ah_topic *topics = ah_router_topics(&ntopics);
    for (size_t i = 0; i < ntopics; i++) {
        if (ah_router_resolve(d, &topics[i]) == NULL)
            continue;
        if (ah_opfields_find(d, topics[i].topic) != NULL)
            ntables++;
        else if (unchecked != NULL)
            cJSON_AddItemToArray(unchecked, cJSON_CreateString(topics[i].topic));
    }
    cJSON_AddNumberToObject(report, "field_tables", ntables);
    /* Exactly once: every write served says how an unknown outcome is
     * settled without sending it again (sdk/README.md). */
    if (check_writes(path, d, report, err, errlen) != 0) {
        ah_generation_release(gen);
        goto out;
    }
    cJSON *cov = cJSON_AddObjectToObject(report, "coverage");
    size_t ncap;
    const char *const *caps = ah_router_capabilities(&ncap);
    for (size_t i = 0; i < ncap; i++) {
        int served, total;
        ah_router_coverage(d, caps[i], &served, &total);
        if (served > 0) {
            char v[16];
            snprintf(v, sizeof v, "%d/%d", served, total);
            cJSON_AddStringToObject(cov, caps[i], v);
        }
    }
    ah_generation_release(gen);

    char *real = realpath(path, NULL);
    const char *base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
    bool opened = false;
    /* Warm-up round: the first dlopen and open allocate once for good
     * (libc, libcurl, the store): not a leak. */
    if (one_cycle(core, path, &opened, err, errlen) != 0) {
        free(real);
        goto out;
    }
    long fds0 = count_fds(), maps0 = count_maps(real, base), heap0 = heap_in_use();
    int done = 0;
    for (; done < cycles; done++)
        if (one_cycle(core, path, &opened, err, errlen) != 0)
            break;
    long fds1 = count_fds(), maps1 = count_maps(real, base), heap1 = heap_in_use();
    free(real);
    cJSON_AddNumberToObject(report, "cycles", done);
    cJSON_AddBoolToObject(report, "open_close", opened);
    cJSON_AddNumberToObject(report, "fd_delta", (double)(fds1 - fds0));
    cJSON_AddNumberToObject(report, "mapping_delta", (double)(maps1 - maps0));
    cJSON_AddNumberToObject(report, "heap_delta", (double)(heap1 - heap0));
    if (done < cycles) {
        char why[1024];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "cycle %d of %d: %.960s", done + 1, cycles, why);
    } else if (fds1 != fds0) {
        snprintf(err, errlen, "%s: %ld file descriptors left open after %d load/open/close/"
                 "unload cycles", path, fds1 - fds0, cycles);
    } else if (maps1 != maps0) {
        snprintf(err, errlen, "%s: still mapped after %d unloads (something keeps the library "
                 "loaded: a thread, a static destructor, RTLD_NODELETE?)", path, cycles);
    } else if (heap1 - heap0 > AH_CHECK_HEAP_SLACK) {
        snprintf(err, errlen, "%s: the heap grew by %ld bytes over %d cycles (about %ld per "
                 "cycle): does fini or close free everything init or open allocated?", path,
                 heap1 - heap0, cycles, (heap1 - heap0) / (cycles > 0 ? cycles : 1));
    } else {
        rc = 0;
    }
out:
    ah_core_close(core);
    return rc;
}

/* The check runs in a child process: a plugin that crashes (in its
 * constructor, init, open, close or fini) is reported as the reason the
 * host would refuse it, instead of killing the command without a word.
 * The child sends {"rc", "err", "report"} back through a pipe. */
int ah_plugin_check_full(const char *path, int cycles, cJSON *report, char *err, size_t errlen)
{
    char dir[] = "/tmp/atshub-check-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        snprintf(err, errlen, "cannot make a scratch folder: %m");
        return -1;
    }
    int rc = -1, fds[2];
    if (pipe(fds) != 0) {
        snprintf(err, errlen, "cannot check %s: pipe: %m", path);
        goto clean;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot check %s: fork: %m", path);
        close(fds[0]);
        close(fds[1]);
        goto clean;
    }
    if (pid == 0) {
        close(fds[0]);
        char cerr[1024] = "";
        cJSON *rep = cJSON_CreateObject(), *out = cJSON_CreateObject();
        int crc = rep != NULL ? check_in(dir, path, cycles, rep, cerr, sizeof cerr) : -1;
        char *text = NULL;
        if (out != NULL && cJSON_AddNumberToObject(out, "rc", crc) != NULL &&
            cJSON_AddStringToObject(out, "err", cerr) != NULL &&
            cJSON_AddItemToObject(out, "report", rep)) {
            rep = NULL;
            text = cJSON_PrintUnformatted(out);
        }
        size_t len = text != NULL ? strlen(text) : 0, off = 0;
        while (off < len) {
            ssize_t n = write(fds[1], text + off, len - off);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        close(fds[1]);
        free(text);
        cJSON_Delete(out);
        cJSON_Delete(rep);
        _exit(off == len && len > 0 ? 0 : 1);
    }
    close(fds[1]);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            char *nb = realloc(buf, cap = cap * 2 + 8192);
            if (nb == NULL)
                break;
            buf = nb;
        }
        ssize_t n = read(fds[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    cJSON *got = buf != NULL && len > 0 ? (buf[len] = '\0', cJSON_Parse(buf)) : NULL;
    free(buf);
    const cJSON *crc = cJSON_GetObjectItemCaseSensitive(got, "rc");
    const cJSON *cerr = cJSON_GetObjectItemCaseSensitive(got, "err");
    cJSON *rep = cJSON_DetachItemFromObjectCaseSensitive(got, "report");
    if (WIFSIGNALED(status)) {
        snprintf(err, errlen, "%s: the plugin crashed while it was checked (%s): the host "
                 "would crash with it", path, strsignal(WTERMSIG(status)));
    } else if (!cJSON_IsNumber(crc) || !cJSON_IsString(cerr) || !cJSON_IsObject(rep)) {
        /* A sanitizer's build reports a crash and exits instead. */
        snprintf(err, errlen, "%s: the plugin crashed or ended the process while it was "
                 "checked (exit status %d): the host would go with it", path,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    } else {
        rc = crc->valueint == 0 ? 0 : -1;
        if (rc != 0)
            snprintf(err, errlen, "%s", cerr->valuestring);
        cJSON *item;
        while (rep->child != NULL) {
            item = cJSON_DetachItemViaPointer(rep, rep->child);
            cJSON_DeleteItemFromObjectCaseSensitive(report, item->string);
            cJSON_AddItemToObject(report, item->string, item);
        }
    }
    cJSON_Delete(rep);
    cJSON_Delete(got);
clean:;
    char file[128];
    static const char *const files[] = {"host.key", "check.db", "check.db-wal", "check.db-shm"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(file, sizeof file, "%s/%s", dir, files[i]);
        unlink(file);
    }
    rmdir(dir);
    return rc;
}
