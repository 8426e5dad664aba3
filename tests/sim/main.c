/* SPDX-License-Identifier: Apache-2.0 */
/*
 * atshub-sim: runs one provider simulator on 127.0.0.1 until SIGINT/SIGTERM
 * or --max-seconds elapse. Providers are entries of a constant table: a name,
 * a one-line description, the credentials it accepts and a registration
 * function that adds its routes. The provider simulators are the libraries in
 * this folder, shared with the test suites.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "careerbuilder.h"
#include "erecruit.h"
#include "linkedin.h"
#include "sim.h"
#include "topcv.h"

/* Settings a provider may use besides the fault options. */
typedef struct sim_cfg {
    uint64_t seed;          /* data generator seed (same as the fault seed) */
    size_t data_size;
    long token_ttl_s;
    int tz_offset_minutes;  /* provider's local zone, for providers with local times */
} sim_cfg;

/* A provider registers its routes on s and may allocate state, released with
 * its free function after the sim stopped. */
typedef struct sim_provider {
    const char *name;
    const char *description;
    const char *credentials;     /* what --help tells an operator to configure */
    const char *no_fault_prefix; /* exempt from faults, e.g. the token endpoint */
    int (*register_routes)(ah_sim *s, const sim_cfg *cfg, void **state);
    void (*free_state)(void *state);
} sim_provider;

/* --- echo: a demo provider -------------------------------------------- */

typedef struct echo_state {
    sim_cfg cfg;
    pthread_mutex_t mu;
    unsigned long tokens_issued;
} echo_state;

static enum MHD_Result add_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    cJSON *obj = cls;
    cJSON_AddItemToObject(obj, key, value ? cJSON_CreateString(value) : cJSON_CreateNull());
    return MHD_YES;
}

static void echo_echo(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *query = cJSON_AddObjectToObject(root, "query");
    cJSON *headers = cJSON_AddObjectToObject(root, "headers");
    cJSON_AddStringToObject(root, "method", req->method);
    cJSON_AddStringToObject(root, "path", req->path);
    cJSON_AddStringToObject(root, "body", req->body);
    if (query && headers) {
        MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND,
                                  add_kv, query);
        MHD_get_connection_values(req->conn, MHD_HEADER_KIND,
                                  add_kv, headers);
    }
    ah_sim_json(resp, 200, root);
}

static long query_long(const ah_sim_req *req, const char *name, long def, long min, long max)
{
    const char *v = ah_sim_query(req, name);
    if (!v || !*v)
        return def;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < min || n > max)
        return -1;
    return n;
}

static void echo_items(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    const echo_state *st = arg;
    long page = query_long(req, "page", 1, 1, LONG_MAX / 1000);
    long per_page = query_long(req, "per_page", 50, 1, 1000);
    if (page < 0 || per_page < 0) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "error", "invalid_page");
        ah_sim_json(resp, 400, e);
        return;
    }
    size_t total = st->cfg.data_size;
    size_t first = (size_t)(page - 1) * (size_t)per_page;
    cJSON *root = cJSON_CreateObject();
    cJSON *items = cJSON_AddArrayToObject(root, "items");
    for (size_t i = first; items && i < total && i < first + (size_t)per_page; i++) {
        cJSON *it = cJSON_CreateObject();
        char name[32];
        snprintf(name, sizeof(name), "item %zu", i + 1);
        cJSON_AddNumberToObject(it, "id", (double)(i + 1));
        cJSON_AddStringToObject(it, "name", name);
        cJSON_AddItemToArray(items, it);
    }
    cJSON_AddNumberToObject(root, "page", (double)page);
    cJSON_AddNumberToObject(root, "per_page", (double)per_page);
    cJSON_AddNumberToObject(root, "total", (double)total);
    if (first + (size_t)per_page < total)
        cJSON_AddNumberToObject(root, "next_page", (double)(page + 1));
    else
        cJSON_AddNullToObject(root, "next_page");
    ah_sim_json(resp, 200, root);
}

static void echo_token(void *arg, const ah_sim_req *req, ah_sim_resp *resp)
{
    echo_state *st = arg;
    pthread_mutex_lock(&st->mu);
    unsigned long n = ++st->tokens_issued;
    pthread_mutex_unlock(&st->mu);
    char tok[32];
    snprintf(tok, sizeof(tok), "tok-%lu", n);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "access_token", tok);
    cJSON_AddStringToObject(root, "token_type", "Bearer");
    cJSON_AddNumberToObject(root, "expires_in", (double)st->cfg.token_ttl_s);
    ah_sim_json(resp, 200, root);
}

static int echo_register(ah_sim *s, const sim_cfg *cfg, void **state)
{
    echo_state *st = calloc(1, sizeof(*st));
    if (!st)
        return -1;
    st->cfg = *cfg;
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        free(st);
        return -1;
    }
    *state = st;
    if (ah_sim_route(s, "GET", "/echo", echo_echo, st) != 0 ||
        ah_sim_route(s, "GET", "/items", echo_items, st) != 0 ||
        ah_sim_route(s, "POST", "/oauth/token", echo_token, st) != 0)
        return -1;
    return 0;
}

static void echo_free(void *state)
{
    echo_state *st = state;
    if (!st)
        return;
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* --- library providers ------------------------------------------------ */

/* The libraries take an int TTL; out-of-range values fall back to their default. */
static int ttl_int(long ttl)
{
    return ttl > 0 && ttl <= INT_MAX ? (int)ttl : 0;
}

static int erecruit_register(ah_sim *s, const sim_cfg *cfg, void **state)
{
    return ah_erecruit_sim_register(s, cfg->seed, cfg->data_size, cfg->token_ttl_s,
                                    cfg->tz_offset_minutes, state);
}

static int cb_register(ah_sim *s, const sim_cfg *cfg, void **state)
{
    ah_cb_sim_opts o = {.token_ttl_s = ttl_int(cfg->token_ttl_s)};
    *state = ah_cb_sim_attach(s, &o);
    return *state ? 0 : -1;
}

static void cb_free(void *state)
{
    ah_cb_sim_free(state);
}

static int li_register(ah_sim *s, const sim_cfg *cfg, void **state)
{
    ah_li_sim_opts o = {.token_ttl_s = ttl_int(cfg->token_ttl_s)};
    *state = ah_li_sim_attach(s, &o);
    return *state ? 0 : -1;
}

static void li_free(void *state)
{
    ah_li_sim_free(state);
}

static int topcv_register(ah_sim *s, const sim_cfg *cfg, void **state)
{
    (void)cfg;
    *state = ah_topcv_sim_attach(s, NULL);
    return *state ? 0 : -1;
}

static void topcv_free(void *state)
{
    ah_topcv_sim_free(state);
}

/* --- provider table ---------------------------------------------------- */

static const sim_provider providers[] = {
    {"echo", "GET /echo, GET /items?page=N&per_page=M, POST /oauth/token",
     "any client; POST /oauth/token always issues a token", "/oauth/token",
     echo_register, echo_free},
    {"erecruit",
     "ERecruit API 2.0: POST /t/token, /api/v2/positions|contacts|submissions "
     "(--data-size of each, local times at --tz-offset-minutes)",
     "OAuth2 client_id \"atshub\", client_secret \"s3cret\" (token_url /t/token)", "/t/token",
     erecruit_register, ah_erecruit_sim_free_state},
    {"careerbuilder",
     "CareerBuilder Candidate Status: POST /oauth/token, PUT|POST /corporate/CandidateStatus, "
     "GET /corporate/CandidateStatus/{account}/{email}",
     "OAuth2 client_id \"atshub\", client_secret \"s3cret\" (token_url /oauth/token); any account",
     "/oauth/token", cb_register, cb_free},
    {"linkedin",
     "LinkedIn Middleware Platform: POST /oauth/v2/accessToken, /v2/provisionedApplications, "
     "/v2/atsIntegrations, GET /uas/in.js, /widget/v1/...",
     "partner client_id \"atshub-partner\", secret \"partner-s3cret\" "
     "(token_url /oauth/v2/accessToken)",
     "/oauth/v2/accessToken", li_register, li_free},
    {"topcv",
     "TopCV employer API: GET /api/employer/me, POST /api/jobs, GET|PUT /api/jobs/{id} "
     "(webhooks are sent only by the test API)",
     "access token \"tcv-access-token\", secret key \"tcv-secret-key\" (HMAC-signed requests)",
     NULL, topcv_register, topcv_free},
};

static const sim_provider *find_provider(const char *name)
{
    for (size_t i = 0; i < sizeof(providers) / sizeof(providers[0]); i++)
        if (strcmp(providers[i].name, name) == 0)
            return &providers[i];
    return NULL;
}

/* --- command line ------------------------------------------------------ */

static void usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s [options]\n"
            "Runs a provider simulator on 127.0.0.1 until SIGINT/SIGTERM or --max-seconds.\n"
            "\n"
            "  --provider NAME     provider to simulate (default echo)\n"
            "  --port N            TCP port (default 0: any free port)\n"
            "  --seed S            PRNG seed for fault injection and generated data (default 1)\n"
            "  --data-size N       records the provider generates (default 100)\n"
            "  --tz-offset-minutes N  provider's UTC offset for local times, -840..840\n"
            "                      (default 180; erecruit)\n"
            "  --fault-429 P       probability of 429 with Retry-After (0..1)\n"
            "  --retry-after S     Retry-After seconds on 429 (default 1)\n"
            "  --fault-5xx P       probability of 500/502/503\n"
            "  --fault-drop P      probability of closing the connection unanswered\n"
            "  --fault-slow P      probability of a delayed response\n"
            "  --slow-ms N         delay of a slow response (default 200)\n"
            "  --fault-truncate P  probability of a body cut in half\n"
            "  --token-ttl S       expires_in of issued OAuth2 tokens (default 3600)\n"
            "  --threads N         server threads (default 2)\n"
            "  --max-seconds N     stop by itself after N seconds (default 600)\n"
            "  --help              this text\n"
            "\n"
            "Prints \"listening on http://127.0.0.1:PORT\" once ready.\n"
            "The token endpoint is exempt from faults.\n"
            "Exit status: 0 after SIGINT/SIGTERM or --max-seconds, 1 on errors, 2 on bad usage.\n"
            "\nproviders:\n",
            argv0);
    for (size_t i = 0; i < sizeof(providers) / sizeof(providers[0]); i++)
        fprintf(f, "  %-13s %s\n  %-13s accepts: %s\n", providers[i].name,
                providers[i].description, "", providers[i].credentials);
}

static int parse_ulong(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_int(const char *s, long min, long max, int *out)
{
    char *end;
    errno = 0;
    if (!s || !*s)
        return -1;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_prob(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= 0.0 && v <= 1.0))
        return -1;
    *out = v;
    return 0;
}

enum {
    OPT_PROVIDER = 1000, OPT_PORT, OPT_SEED, OPT_DATA_SIZE, OPT_F429, OPT_RETRY_AFTER,
    OPT_F5XX, OPT_FDROP, OPT_FSLOW, OPT_SLOW_MS, OPT_FTRUNC, OPT_TOKEN_TTL, OPT_THREADS,
    OPT_MAX_SECONDS, OPT_TZ_OFFSET, OPT_HELP,
};

static const struct option long_opts[] = {
    {"provider", required_argument, NULL, OPT_PROVIDER},
    {"port", required_argument, NULL, OPT_PORT},
    {"seed", required_argument, NULL, OPT_SEED},
    {"data-size", required_argument, NULL, OPT_DATA_SIZE},
    {"fault-429", required_argument, NULL, OPT_F429},
    {"retry-after", required_argument, NULL, OPT_RETRY_AFTER},
    {"fault-5xx", required_argument, NULL, OPT_F5XX},
    {"fault-drop", required_argument, NULL, OPT_FDROP},
    {"fault-slow", required_argument, NULL, OPT_FSLOW},
    {"slow-ms", required_argument, NULL, OPT_SLOW_MS},
    {"fault-truncate", required_argument, NULL, OPT_FTRUNC},
    {"token-ttl", required_argument, NULL, OPT_TOKEN_TTL},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"max-seconds", required_argument, NULL, OPT_MAX_SECONDS},
    {"tz-offset-minutes", required_argument, NULL, OPT_TZ_OFFSET},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
    ah_sim_opts opts = {.seed = 1, .retry_after_s = 1, .slow_ms = 200, .threads = 2};
    sim_cfg cfg = {.seed = 1, .data_size = 100, .token_ttl_s = 3600, .tz_offset_minutes = 180};
    const char *provider_name = "echo";
    unsigned long long max_seconds = 600, v;
    int c;

    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case OPT_PROVIDER: provider_name = optarg; break;
        case OPT_PORT:
            bad = parse_ulong(optarg, 65535, &v);
            opts.port = (uint16_t)v;
            break;
        case OPT_SEED:
            bad = parse_ulong(optarg, UINT64_MAX, &v);
            opts.seed = (uint64_t)v;
            break;
        case OPT_DATA_SIZE:
            bad = parse_ulong(optarg, 100000000ull, &v);
            cfg.data_size = (size_t)v;
            break;
        case OPT_TZ_OFFSET: bad = parse_int(optarg, -840, 840, &cfg.tz_offset_minutes); break;
        case OPT_F429: bad = parse_prob(optarg, &opts.p_429); break;
        case OPT_RETRY_AFTER:
            bad = parse_ulong(optarg, 86400, &v) || v == 0;
            opts.retry_after_s = (int)v;
            break;
        case OPT_F5XX: bad = parse_prob(optarg, &opts.p_5xx); break;
        case OPT_FDROP: bad = parse_prob(optarg, &opts.p_drop); break;
        case OPT_FSLOW: bad = parse_prob(optarg, &opts.p_slow); break;
        case OPT_SLOW_MS:
            bad = parse_ulong(optarg, 600000, &v) || v == 0;
            opts.slow_ms = (int)v;
            break;
        case OPT_FTRUNC: bad = parse_prob(optarg, &opts.p_truncate); break;
        case OPT_TOKEN_TTL:
            bad = parse_ulong(optarg, 10ull * 365 * 86400, &v);
            cfg.token_ttl_s = (long)v;
            break;
        case OPT_THREADS:
            bad = parse_ulong(optarg, 64, &v) || v == 0;
            opts.threads = (int)v;
            break;
        case OPT_MAX_SECONDS:
            bad = parse_ulong(optarg, 7ull * 86400, &v) || v == 0;
            max_seconds = v;
            break;
        case OPT_HELP: usage(stdout, argv[0]); return 0;
        default: usage(stderr, argv[0]); return 2;
        }
        if (bad) {
            fprintf(stderr, "%s: invalid value for %s: %s\n", argv[0], argv[optind - 1],
                    optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument: %s\n", argv[0], argv[optind]);
        return 2;
    }
    const sim_provider *prov = find_provider(provider_name);
    if (!prov) {
        fprintf(stderr, "%s: unknown provider: %s (see --help)\n", argv[0], provider_name);
        return 2;
    }
    cfg.seed = opts.seed;
    opts.data_size = cfg.data_size;
    opts.no_fault_prefix = prov->no_fault_prefix;

    /* Blocked before the server threads start so that they inherit the mask
     * and only sigtimedwait below sees the signals. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc != 0) {
        fprintf(stderr, "%s: pthread_sigmask: %s\n", argv[0], strerror(rc));
        return 1;
    }

    ah_sim *s = ah_sim_new(&opts);
    if (!s) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        return 1;
    }
    void *state = NULL;
    if (prov->register_routes(s, &cfg, &state) != 0) {
        fprintf(stderr, "%s: %s: cannot register routes\n", argv[0], prov->name);
        ah_sim_stop(s);
        prov->free_state(state);
        return 1;
    }
    if (ah_sim_start(s) != 0) {
        fprintf(stderr, "%s: cannot listen on 127.0.0.1:%u\n", argv[0], (unsigned)opts.port);
        ah_sim_stop(s);
        prov->free_state(state);
        return 1;
    }
    printf("listening on %s\n", ah_sim_url(s));
    fflush(stdout);

    struct timespec now, deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)max_seconds;
    int exit_code = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > deadline.tv_sec ||
            (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
            fprintf(stderr, "%s: --max-seconds reached, stopping\n", argv[0]);
            break;
        }
        struct timespec wait = {deadline.tv_sec - now.tv_sec, deadline.tv_nsec - now.tv_nsec};
        if (wait.tv_nsec < 0) {
            wait.tv_sec--;
            wait.tv_nsec += 1000000000L;
        }
        int sig = sigtimedwait(&set, NULL, &wait);
        if (sig == SIGINT || sig == SIGTERM)
            break;
        if (sig < 0 && errno != EAGAIN && errno != EINTR) {
            perror("sigtimedwait");
            exit_code = 1;
            break;
        }
    }
    ah_sim_stop(s);
    prov->free_state(state);
    return exit_code;
}
