/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plugin loader: opens a plugin file, checks its ABI and descriptor, runs
 * its init and wraps the result in a generation. Everything a plugin declares
 * is checked here, once, so that the rest of the host can trust a descriptor
 * it got from the registry. Every refusal names the file and what is wrong,
 * and leaves nothing open or allocated behind.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "httpd.h"
#include "registry.h"
#include "isolate.h"
#include "mirror.h"
#include "opfields.h"

/* A table larger than this is a corrupt or foreign struct, not a newer one. */
#define AH_TABLE_SIZE_MAX 4096u
/* Bounds walks over {NULL}-terminated lists, so a missing terminator is an
 * error message rather than a walk through the plugin's data segment. */
#define AH_LIST_MAX 1024u
#define AH_NAME_MAX 64u

/* The smallest table that can hold anything: its size and one slot. */
typedef struct min_table {
    uint32_t struct_size;
    ah_op_fn first;
} min_table;
#define AH_TABLE_SIZE_MIN (offsetof(min_table, first) + sizeof(ah_op_fn))

/* Everything up to the last member that existed in ABI 1.0. */
#define AH_DESC_SIZE_MIN                                                       \
    (offsetof(ah_plugin_descriptor, subscriptions) + sizeof(const ah_subscription *))
#define AH_DESC_ABI_END (offsetof(ah_plugin_descriptor, abi_minor) + sizeof(uint16_t))

typedef struct table_info {
    const char *name;
    size_t offset;   /* of the table pointer in the descriptor */
    size_t size;     /* sizeof the host's struct */
    size_t nslots;
    size_t slots[10]; /* offsets of its ah_op_fn members: every one */
} table_info;

#define T(cap, type) #cap, offsetof(ah_plugin_descriptor, cap), sizeof(type)
#define S(type, m) offsetof(type, m)
static const table_info tables[] = {
    {T(streaming, ah_streaming_ops), 3,
     {S(ah_streaming_ops, jobs), S(ah_streaming_ops, applications),
      S(ah_streaming_ops, candidates)}},
    {T(applications, ah_applications_ops), 5,
     {S(ah_applications_ops, move_to_stage), S(ah_applications_ops, reject),
      S(ah_applications_ops, bulk_reject), S(ah_applications_ops, create),
      S(ah_applications_ops, list_stages)}},
    {T(dispositions, ah_dispositions_ops), 1, {S(ah_dispositions_ops, list)}},
    {T(jobs, ah_jobs_ops), 5,
     {S(ah_jobs_ops, get), S(ah_jobs_ops, get_enhanced), S(ah_jobs_ops, enhanced_batch),
      S(ah_jobs_ops, create_posting), S(ah_jobs_ops, update_posting)}},
    {T(candidates, ah_candidates_ops), 3,
     {S(ah_candidates_ops, get), S(ah_candidates_ops, find), S(ah_candidates_ops, resume)}},
    {T(notes, ah_notes_ops), 2,
     {S(ah_notes_ops, add_to_application), S(ah_notes_ops, add_to_candidate)}},
    {T(attachments, ah_attachments_ops), 2,
     {S(ah_attachments_ops, add_to_application), S(ah_attachments_ops, add_to_candidate)}},
    {T(custom_fields, ah_custom_fields_ops), 3,
     {S(ah_custom_fields_ops, list), S(ah_custom_fields_ops, values),
      S(ah_custom_fields_ops, update)}},
    {T(statuses, ah_statuses_ops), 3,
     {S(ah_statuses_ops, put), S(ah_statuses_ops, get), S(ah_statuses_ops, query)}},
    {T(onboarding, ah_onboarding_ops), 5,
     {S(ah_onboarding_ops, provision), S(ah_onboarding_ops, request),
      S(ah_onboarding_ops, enable), S(ah_onboarding_ops, verify),
      S(ah_onboarding_ops, disable)}},
    {T(postings, ah_postings_ops), 10,
     {S(ah_postings_ops, publish), S(ah_postings_ops, update), S(ah_postings_ops, link),
      S(ah_postings_ops, list), S(ah_postings_ops, configure),
      S(ah_postings_ops, disconnect), S(ah_postings_ops, status),
      S(ah_postings_ops, notices), S(ah_postings_ops, pending),
      S(ah_postings_ops, assign)}},
};
#undef T
#undef S
/* Every slot is listed: a table's last listed slot ends its struct, so a
 * slot appended to the SDK without its line here fails the build
 * (streaming ends in backfill_hours, not a slot: not asserted). */
#define LAST(type, m) \
    _Static_assert(offsetof(type, m) + sizeof(ah_op_fn) == sizeof(type), #type " slots")
LAST(ah_applications_ops, list_stages);
LAST(ah_dispositions_ops, list);
LAST(ah_jobs_ops, update_posting);
LAST(ah_candidates_ops, resume);
LAST(ah_notes_ops, add_to_candidate);
LAST(ah_attachments_ops, add_to_candidate);
LAST(ah_custom_fields_ops, update);
LAST(ah_statuses_ops, query);
LAST(ah_onboarding_ops, disable);
LAST(ah_postings_ops, assign);
#undef LAST

AH_PRINTF(4, 5)
static int refuse(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return -1;
    int n = snprintf(err, errlen, "%s: ", path);
    if (n < 0 || (size_t)n >= errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int copy_fd(int in, int out)
{
    char buf[65536];
    for (;;) {
        ssize_t r = read(in, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return -1;
            off += w;
        }
    }
}

/* dlopen() hands back the handle it already has for a path it has opened,
 * so a second version of a loaded plugin must come from a file of its own,
 * and an isolated plugin's processes load the bytes that were checked
 * whatever happens to the file later. That copy is an anonymous memory
 * file (memfd_create), opened as /proc/self/fd/N: it has no name in any
 * directory, so nothing is left behind however the daemon ends (SIGKILL,
 * a crash), and it is freed with its last descriptor and mapping. Its
 * label, "atshub-<plugin>-<n>", is what /proc/PID/maps shows
 * ("/memfd:atshub-erp-3 (deleted)"). *fd_out: the copy (O_CLOEXEC);
 * *label_out: "/memfd:" and the label, malloc'd. */
static int private_copy(const char *path, int *fd_out, char **label_out, char *err,
                        size_t errlen)
{
    static atomic_uint copies;
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    size_t blen = strlen(base);
    if (blen > 3 && strcmp(base + blen - 3, ".so") == 0)
        blen -= 3;
    if (blen > 64)
        blen = 64;
    char label[96];
    snprintf(label, sizeof label, "atshub-%.*s-%u", (int)blen, base,
             atomic_fetch_add(&copies, 1) + 1);
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        int e = errno;
        return refuse(err, errlen, path,
                      "cannot open: %s (it is loaded already; a second version needs "
                      "a private copy)", strerror(e));
    }
    int fd = memfd_create(label, MFD_CLOEXEC);
    int e = errno;
    if (fd < 0) {
        close(in);
        return refuse(err, errlen, path, "cannot make a private copy in memory: %s",
                      strerror(e));
    }
    int rc = copy_fd(in, fd);
    e = errno;
    close(in);
    if (rc != 0 || asprintf(label_out, "/memfd:%s", label) < 0) {
        if (rc == 0)
            e = ENOMEM;
        close(fd);
        return refuse(err, errlen, path, "cannot make a private copy in memory: %s",
                      strerror(e));
    }
    *fd_out = fd;
    return 0;
}

/* The name under which the process opens descriptor fd. glibc knows an
 * opened library by the name it was opened with: a name that a library
 * still loaded had (its descriptor closed since, the number reused) would
 * hand back that library, so the descriptor moves to a number no loaded
 * library is named after. 0, or -1 when none was found. */
static int fd_path(int *fd, char *out, size_t outlen)
{
    for (int tries = 0; tries < 64; tries++) {
        snprintf(out, outlen, "/proc/self/fd/%d", *fd);
        void *already = dlopen(out, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        if (already == NULL)
            return 0;
        dlclose(already);
        int nfd = fcntl(*fd, F_DUPFD_CLOEXEC, *fd + 1);
        if (nfd < 0)
            return -1;
        close(*fd);
        *fd = nfd;
    }
    return -1;
}

/* An opened, checked plugin file, not yet initialised. */
typedef struct opened {
    void *dl;
    char *copy; /* the private copy's label ("/memfd:..."), or NULL */
    const ah_plugin_descriptor *desc;
} opened;

static void opened_close(opened *o)
{
    if (o->dl != NULL)
        dlclose(o->dl);
    free(o->copy);
    o->dl = NULL;
    o->copy = NULL;
    o->desc = NULL;
}

static int open_file(const char *path, opened *o, char *err, size_t errlen)
{
    /* dlopen() searches the library path for a name without a slash; a
     * configured plugin file is always a file, never a library name. */
    char *dotslash = NULL;
    const char *target = path;
    if (strchr(path, '/') == NULL) {
        if (asprintf(&dotslash, "./%s", path) < 0)
            return refuse(err, errlen, path, "out of memory");
        target = dotslash;
    }
    void *already = dlopen(target, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    int fd = -1;
    char fdname[32];
    if (already != NULL) {
        dlclose(already);
        if (private_copy(target, &fd, &o->copy, err, errlen) != 0) {
            free(dotslash);
            return -1;
        }
        if (fd_path(&fd, fdname, sizeof fdname) != 0) {
            close(fd);
            free(dotslash);
            free(o->copy);
            o->copy = NULL;
            return refuse(err, errlen, path, "cannot name a private copy to load");
        }
        target = fdname;
    }
    o->dl = dlopen(target, RTLD_NOW | RTLD_LOCAL);
    /* Mapped now (or refused): the copy lives as long as the mapping. */
    if (fd >= 0)
        close(fd);
    free(dotslash);
    if (o->dl == NULL) {
        const char *e = dlerror();
        refuse(err, errlen, path,
               "cannot open: %s (check the path; use ldd(1) to find missing libraries)",
               e != NULL ? e : "unknown error");
        opened_close(o);
        return -1;
    }
    return 0;
}

static int find_entry(const char *path, opened *o, ah_entry_fn *entry, char *err,
                      size_t errlen)
{
    dlerror();
    void *sym = dlsym(o->dl, AH_ENTRY_SYMBOL);
    if (sym != NULL) {
        *entry = (ah_entry_fn)sym;
        return 0;
    }
    /* Tell a plugin built for another ABI from a file that is no plugin. */
    for (int v = 0; v <= 9; v++) {
        char name[32];
        if (v == AH_ABI_MAJOR)
            continue;
        snprintf(name, sizeof(name), "atshub_plugin_entry_v%d", v);
        if (dlsym(o->dl, name) != NULL)
            return refuse(err, errlen, path,
                          "built for ABI major %d (exports %s), this host speaks ABI %d.%d",
                          v, name, AH_ABI_MAJOR, AH_ABI_MINOR);
    }
    return refuse(err, errlen, path,
                  "no entry symbol %s: not an atshub plugin, or built without "
                  "AH_PLUGIN_ENTRY",
                  AH_ENTRY_SYMBOL);
}

static int check_abi(const char *path, const ah_plugin_descriptor *d, char *err,
                     size_t errlen)
{
    if (d->struct_size < AH_DESC_ABI_END)
        return refuse(err, errlen, path,
                      "descriptor has struct_size %u; expected at least %zu (built "
                      "against a different SDK?)",
                      (unsigned)d->struct_size, AH_DESC_SIZE_MIN);
    if (d->abi_major != AH_ABI_MAJOR)
        return refuse(err, errlen, path, "built for ABI %u.%u, this host speaks ABI %d.%d",
                      (unsigned)d->abi_major, (unsigned)d->abi_minor, AH_ABI_MAJOR,
                      AH_ABI_MINOR);
    /* What the plugin needs decides, not the SDK it was built with: a
     * plugin built with a newer SDK that uses nothing newer than this host
     * speaks loads. A descriptor too short to say (built before 1.1) needs
     * the minor it was built for. */
    unsigned needs = AH_HAS(d, needs_abi_minor) ? (unsigned)d->needs_abi_minor
                                                : (unsigned)d->abi_minor;
    if (needs > AH_ABI_MINOR)
        return refuse(err, errlen, path,
                      "plugin needs ABI %u.%u, this host speaks ABI %d.%d: upgrade atshub "
                      "to load it",
                      (unsigned)d->abi_major, needs, AH_ABI_MAJOR, AH_ABI_MINOR);
    if (d->struct_size < AH_DESC_SIZE_MIN)
        return refuse(err, errlen, path,
                      "descriptor has struct_size %u; expected at least %zu (built "
                      "against a different SDK?)",
                      (unsigned)d->struct_size, AH_DESC_SIZE_MIN);
    return 0;
}

static int check_name(const char *path, const ah_plugin_descriptor *d, char *err,
                      size_t errlen)
{
    if (d->name == NULL || d->name[0] == '\0')
        return refuse(err, errlen, path, "descriptor has no name");
    size_t len = strnlen(d->name, AH_NAME_MAX + 1);
    if (len > AH_NAME_MAX)
        return refuse(err, errlen, path, "plugin name is longer than %u bytes",
                      AH_NAME_MAX);
    for (size_t i = 0; i < len; i++) {
        char c = d->name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return refuse(err, errlen, path,
                          "plugin name '%s' is not lower_snake_case ([a-z0-9_]+)", d->name);
    }
    if (d->version == NULL || d->version[0] == '\0')
        return refuse(err, errlen, path, "plugin '%s' has no version", d->name);
    return 0;
}

static int check_tables(const char *path, const ah_plugin_descriptor *d, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        const table_info *ti = &tables[i];
        const unsigned char *t;
        memcpy(&t, (const unsigned char *)d + ti->offset, sizeof(t));
        if (t == NULL)
            continue;
        uint32_t size;
        memcpy(&size, t, sizeof(size));
        if (size < AH_TABLE_SIZE_MIN || size > AH_TABLE_SIZE_MAX)
            return refuse(err, errlen, path,
                          "table '%s' has struct_size %u; expected between %zu and %u "
                          "(built against a different SDK?)",
                          ti->name, (unsigned)size, AH_TABLE_SIZE_MIN, AH_TABLE_SIZE_MAX);
        bool any = false;
        for (size_t s = 0; s < ti->nslots && !any; s++) {
            /* An older plugin's table ends early: its missing slots are NULL. */
            if (ti->slots[s] + sizeof(ah_op_fn) > size)
                break;
            ah_op_fn fn;
            memcpy(&fn, t + ti->slots[s], sizeof(fn));
            any = fn != NULL;
        }
        if (!any)
            return refuse(err, errlen, path,
                          "table '%s' is present but has no operation (every slot is "
                          "NULL; leave the table NULL instead)",
                          ti->name);
    }
    return 0;
}

static int check_settings(const char *path, const ah_setting_spec *s, char *err,
                          size_t errlen)
{
    if (s == NULL)
        return 0;
    for (size_t i = 0; i < AH_LIST_MAX; i++) {
        if (s[i].key == NULL)
            return 0;
        if (s[i].key[0] == '\0')
            return refuse(err, errlen, path, "setting #%zu has an empty key", i + 1);
        int type = (int)s[i].type;
        if (type < AH_SET_STRING || type > AH_SET_LIST)
            return refuse(err, errlen, path, "setting '%s' has unknown type %d", s[i].key,
                          type);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s[j].key, s[i].key) == 0)
                return refuse(err, errlen, path, "setting '%s' is declared twice",
                              s[i].key);
    }
    return refuse(err, errlen, path,
                  "settings list has more than %u entries (missing {NULL} terminator?)",
                  AH_LIST_MAX);
}

/* The first path segments the host serves itself: the unified REST API on
 * the public listener (/v1, every route under it), and, on the admin
 * listeners, the admin API, /metrics and the console. A plugin route under
 * one of them would replace the host's route (the server keeps one handler
 * per method and path) or catch its requests (a prefix or a template), and
 * read every tenant's key: refused. */
static const char *const host_roots[] = {"v1", "admin", "console", "metrics"};

/* The host root the route would serve, or NULL. `path` is what the server
 * registers: prefix says it serves everything that starts with it. */
static const char *host_root_of(const char *path, bool prefix)
{
    const char *seg = path + 1, *end = strchr(seg, '/');
    size_t n = end != NULL ? (size_t)(end - seg) : strlen(seg);
    for (size_t i = 0; i < sizeof host_roots / sizeof host_roots[0]; i++) {
        const char *root = host_roots[i];
        size_t rn = strlen(root);
        if (n == rn && memcmp(seg, root, n) == 0)
            return root; /* "/v1", "/v1/...", a prefix "/v1..." too */
        /* A prefix that ends inside the first segment ("/", "/v") serves
         * every root that starts with it. */
        if (prefix && end == NULL && n < rn && memcmp(seg, root, n) == 0)
            return root;
    }
    /* A first segment that is a placeholder ("/{x}/health") matches them all. */
    if (!prefix && n > 0 && seg[0] == '{')
        return host_roots[0];
    return NULL;
}

int ah_route_served(const ah_route *r, char *path, size_t len, bool *prefix)
{
    int n = snprintf(path, len, "%s", r->path);
    if (n < 0 || (size_t)n >= len)
        return -1;
    *prefix = (r->flags & AH_ROUTE_PREFIX) != 0;
    char *tok = strstr(path, "{token}");
    if ((r->flags & AH_ROUTE_CONN_TOKEN) && tok != NULL) {
        *tok = '\0'; /* everything under the prefix; the rest is the token */
        *prefix = true;
    }
    return 0;
}

static int check_routes(const char *path, const ah_route *r, char *err, size_t errlen)
{
    if (r == NULL)
        return 0;
    for (size_t i = 0; i < AH_LIST_MAX; i++) {
        if (r[i].method == NULL)
            return 0;
        if (r[i].method[0] == '\0')
            return refuse(err, errlen, path, "route #%zu has an empty method", i + 1);
        if (r[i].path == NULL || r[i].path[0] != '/')
            return refuse(err, errlen, path,
                          "route %s %s: path must be absolute (start with '/')",
                          r[i].method, r[i].path != NULL ? r[i].path : "(null)");
        if (r[i].handler == NULL)
            return refuse(err, errlen, path, "route %s %s has no handler", r[i].method,
                          r[i].path);
        char served[1024];
        bool prefix;
        if (ah_route_served(&r[i], served, sizeof served, &prefix) != 0)
            return refuse(err, errlen, path, "route %s %.64s...: path too long", r[i].method,
                          r[i].path);
        /* What the HTTP server would refuse at registration: the daemon
         * would not start, a swap would leave the routes unserved. */
        if ((r[i].flags & AH_ROUTE_CONN_TOKEN) &&
            (strstr(r[i].path, "{token}") == NULL ||
             strcmp(strstr(r[i].path, "{token}"), "{token}") != 0))
            return refuse(err, errlen, path,
                          "route %s %s: a connection-token route ends in {token}",
                          r[i].method, r[i].path);
        if (!ah_httpd_route_valid(served, prefix ? AH_HTTPD_PREFIX : 0))
            return refuse(err, errlen, path,
                          "route %s %s%s: a placeholder is a whole segment {name} (letters, "
                          "digits, '_'; each name once), and a prefix route (or the part of a "
                          "connection-token route before {token}) has none",
                          r[i].method, r[i].path, prefix ? " (a prefix)" : "");
        const char *root = host_root_of(served, prefix);
        if (root != NULL)
            return refuse(err, errlen, path,
                          "route %s %s%s would serve the host's own /%s paths; a plugin's "
                          "routes must stay out of /v1, /admin, /console and /metrics "
                          "(see sdk/README.md, \"Inbound routes\")",
                          r[i].method, r[i].path, prefix ? " (a prefix)" : "", root);
        for (size_t j = 0; j < i; j++) {
            char other[1024];
            bool oprefix;
            if (ah_route_served(&r[j], other, sizeof other, &oprefix) == 0 &&
                ah_route_same(r[i].method, served, prefix, r[j].method, other, oprefix))
                return refuse(err, errlen, path, "route %s %s is declared twice",
                              r[i].method, r[i].path);
        }
    }
    return refuse(err, errlen, path,
                  "route list has more than %u entries (missing {NULL} terminator?)",
                  AH_LIST_MAX);
}

bool ah_route_same(const char *m1, const char *p1, bool prefix1, const char *m2,
                   const char *p2, bool prefix2)
{
    if (strcmp(m1, m2) != 0 || prefix1 != prefix2)
        return false;
    /* Segment by segment; two placeholders are the same whatever their
     * names ("/a/{x}" and "/a/{id}" are one pattern to the server). */
    while (*p1 != '\0' && *p2 != '\0') {
        size_t n1 = strcspn(p1 + 1, "/") + 1, n2 = strcspn(p2 + 1, "/") + 1;
        bool ph1 = !prefix1 && n1 > 1 && p1[1] == '{', ph2 = !prefix2 && n2 > 1 && p2[1] == '{';
        if (ph1 != ph2 || (!ph1 && (n1 != n2 || memcmp(p1, p2, n1) != 0)))
            return false;
        p1 += n1;
        p2 += n2;
    }
    return *p1 == *p2;
}

static int check_subscriptions(const char *path, const ah_subscription *s, char *err,
                               size_t errlen)
{
    if (s == NULL)
        return 0;
    for (size_t i = 0; i < AH_LIST_MAX; i++) {
        if (s[i].pattern == NULL)
            return 0;
        if (s[i].pattern[0] == '\0')
            return refuse(err, errlen, path, "subscription #%zu has an empty pattern",
                          i + 1);
        if (s[i].handler == NULL)
            return refuse(err, errlen, path, "subscription '%s' has no handler",
                          s[i].pattern);
    }
    return refuse(err, errlen, path,
                  "subscription list has more than %u entries (missing {NULL} "
                  "terminator?)",
                  AH_LIST_MAX);
}

/* op_writes (@since 1.1): bounded like the other lists, so that a missing
 * terminator is a refusal rather than a walk through the plugin's data
 * (ah_router_write_decl trusts it from here on). Whether each entry names a
 * write the plugin serves is `atshub plugin check`'s. */
static int check_op_writes(const char *path, const ah_plugin_descriptor *d, char *err,
                           size_t errlen)
{
    if (!AH_HAS(d, op_writes) || d->op_writes == NULL)
        return 0;
    const ah_op_write *w = d->op_writes;
    for (size_t i = 0; i < AH_LIST_MAX; i++) {
        if (w[i].topic == NULL)
            return 0;
        if (w[i].topic[0] == '\0')
            return refuse(err, errlen, path, "op_writes #%zu has an empty topic", i + 1);
        int how = (int)w[i].reconcile;
        if (how < AH_RECONCILE_UNDECLARED || how > AH_RECONCILE_MARKER)
            return refuse(err, errlen, path, "op_writes '%s' has unknown reconcile %d",
                          w[i].topic, how);
        for (size_t j = 0; j < i; j++)
            if (strcmp(w[j].topic, w[i].topic) == 0)
                return refuse(err, errlen, path, "op_writes '%s' is declared twice",
                              w[i].topic);
    }
    return refuse(err, errlen, path,
                  "op_writes list has more than %u entries (missing {NULL} terminator?)",
                  AH_LIST_MAX);
}

/* A malformed field table would make the host refuse good requests or
 * read past the plugin's data: refuse the plugin instead. */
static int check_op_fields(const char *path, const ah_plugin_descriptor *d, char *err,
                           size_t errlen)
{
    char why[512];
    if (ah_opfields_check(d, why, sizeof why) != 0)
        return refuse(err, errlen, path, "%s", why);
    return 0;
}

static int check_descriptor(const char *path, const ah_plugin_descriptor *d, char *err,
                            size_t errlen)
{
    if (check_abi(path, d, err, errlen) != 0 || check_name(path, d, err, errlen) != 0 ||
        check_tables(path, d, err, errlen) != 0 ||
        check_settings(path, d->settings, err, errlen) != 0 ||
        check_routes(path, d->routes, err, errlen) != 0 ||
        check_subscriptions(path, d->subscriptions, err, errlen) != 0 ||
        check_op_fields(path, d, err, errlen) != 0 ||
        check_op_writes(path, d, err, errlen) != 0)
        return -1;
    if (d->close != NULL && d->open == NULL)
        return refuse(err, errlen, path,
                      "plugin '%s' sets close but not open (close would have nothing "
                      "to free)",
                      d->name);
    return 0;
}

/* Opens and checks `path`; on failure nothing stays open. */
static int open_checked(const char *path, const ah_host_api *host, opened *o, char *err,
                        size_t errlen)
{
    memset(o, 0, sizeof(*o));
    if (path == NULL || host == NULL)
        return refuse(err, errlen, path != NULL ? path : "(null)",
                      "no path or no host API");
    if (open_file(path, o, err, errlen) != 0)
        return -1;
    ah_entry_fn entry = NULL;
    if (find_entry(path, o, &entry, err, errlen) != 0)
        goto fail;
    o->desc = entry(host);
    if (o->desc == NULL) {
        refuse(err, errlen, path, "entry function %s returned no descriptor",
               AH_ENTRY_SYMBOL);
        goto fail;
    }
    if (check_descriptor(path, o->desc, err, errlen) != 0)
        goto fail;
    return 0;
fail:
    opened_close(o);
    return -1;
}

int ah_plugin_check(const char *path, const ah_host_api *host, char *err, size_t errlen)
{
    opened o;
    if (open_checked(path, host, &o, err, errlen) != 0)
        return -1;
    opened_close(&o);
    return 0;
}

static void gen_free_parts(ah_generation *g)
{
    free(g->name);
    free(g->path);
    free(g->loaded_path);
    free(g);
}

ah_generation *ah_plugin_load_ctx(const char *path, const ah_host_api *host,
                                  void *host_ctx, char *err, size_t errlen)
{
    opened o;
    if (open_checked(path, host, &o, err, errlen) != 0)
        return NULL;
    /* Allocate before init, so that a successful init never needs undoing. */
    ah_generation *g = calloc(1, sizeof(*g));
    if (g == NULL || (g->name = strdup(o.desc->name)) == NULL ||
        (g->path = strdup(path)) == NULL ||
        (g->loaded_path = strdup(o.copy != NULL ? o.copy : path)) == NULL) {
        refuse(err, errlen, path, "out of memory");
        if (g != NULL)
            gen_free_parts(g);
        opened_close(&o);
        return NULL;
    }
    if (o.desc->init != NULL) {
        ah_call_ext ext;
        memset(&ext, 0, sizeof(ext));
        ext.call.struct_size = sizeof(ext.call);
        ext.call.host = host;
        ext.host_ctx = host_ctx;
        void *state = NULL;
        if (o.desc->init(&ext.call, &state) != AH_OK) {
            refuse(err, errlen, path, "init failed: %s",
                   ext.err_msg[0] != '\0' ? ext.err_msg
                                          : "init returned an error without calling "
                                            "host->fail()");
            gen_free_parts(g);
            opened_close(&o);
            return NULL;
        }
        g->plugin_state = state;
    }
    g->dl = o.dl;
    g->desc = o.desc;
    atomic_init(&g->refs, 1);
    atomic_init(&g->inflight, 0);
    free(o.copy); /* its label is in g->loaded_path */
    return g;
}

ah_generation *ah_plugin_load(const char *path, const ah_host_api *host, char *err,
                              size_t errlen)
{
    return ah_plugin_load_ctx(path, host, NULL, err, errlen);
}

ah_generation *ah_plugin_load_isolated(const char *path, const ah_host_api *host,
                                       const ah_isolate_opts *opts, char *err, size_t errlen)
{
    if (path == NULL || host == NULL) {
        refuse(err, errlen, path != NULL ? path : "(null)", "no path or no host API");
        return NULL;
    }
    /* The daemon never opens the file: the plugin host process loads it
     * (constructors and entry function run there) and describes its
     * descriptor, which is checked here as a dlopen()ed one would be.
     * Every process of the generation, restarts included, loads a private
     * copy, so that all run the bytes that were checked whatever happens
     * to the file later (a file that cannot be read is handed over as it
     * is, for the process to say why it cannot open it). */
    char *copy = NULL;
    int fd = -1;
    if (access(path, R_OK) == 0 && private_copy(path, &fd, &copy, err, errlen) != 0)
        return NULL;
    const char *used = copy != NULL ? copy : path;
    ah_generation *g = NULL;
    const ah_plugin_descriptor *d = NULL;
    /* The isolate takes the copy's descriptor over (its processes load it,
     * restarts included), whatever it returns. */
    ah_isolate *iso = ah_isolate_start(path, fd, opts, host, err, errlen);
    if (iso == NULL)
        goto fail;
    char why[512];
    d = ah_mirror_build(ah_isolate_descriptor(iso), why, sizeof why);
    if (d == NULL) {
        refuse(err, errlen, path, "%s", why);
        goto fail;
    }
    if (check_descriptor(path, d, err, errlen) != 0)
        goto fail;
    g = calloc(1, sizeof(*g));
    if (g == NULL || (g->name = strdup(d->name)) == NULL || (g->path = strdup(path)) == NULL ||
        (g->loaded_path = strdup(used)) == NULL) {
        refuse(err, errlen, path, "out of memory");
        goto fail;
    }
    if (ah_isolate_run(iso, d->name, err, errlen) != 0)
        goto fail;
    g->iso = iso;
    g->dl = NULL;
    g->desc = d;
    atomic_init(&g->refs, 1);
    atomic_init(&g->inflight, 0);
    free(copy);
    return g;
fail:
    if (g != NULL)
        gen_free_parts(g);
    ah_isolate_free(iso);
    ah_mirror_free(d);
    free(copy);
    return NULL;
}
