/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon: opens the host context with the state of the layers above it
 * (sync engine, webhooks and bulk jobs), starts and stops the surfaces
 * (REST and plugin routes, admin listener, ticker, sync scheduler, bulk
 * worker) and runs `atshub serve`: signals, SIGHUP reconcile, SIGTERM drain.
 * It is the only part of core that calls every layer.
 */
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "claims.h"
#include "committer.h"
#include "conns.h"
#include "console.h"
#include "daemon.h"
#include "events.h"
#include "metrics.h"
#include "ops.h"
#include "rest.h"
#include "settle.h"
#include "sync.h"
#include "api.h"
#include "bulk.h"
#include "eventlog.h"
#include "idempotency.h"
#include "intlog.h"
#include "webhooks.h"

ah_core *ah_daemon_open(ah_config *cfg, const ah_core_opts *opts, char *err, size_t errlen)
{
    ah_core *core = ah_core_open(cfg, opts, err, errlen);
    if (core == NULL)
        return NULL;
    core->sync = ah_sync_new();
    core->bulk = ah_bulk_new();
    core->webhooks = ah_webhooks_new(&core->cfg, err, errlen);
    if (core->webhooks == NULL) {
        ah_daemon_close(core);
        return NULL;
    }
    if (core->sync == NULL || core->bulk == NULL) {
        snprintf(err, errlen, "out of memory");
        ah_daemon_close(core);
        return NULL;
    }
    snprintf(core->instance, sizeof core->instance, "%s", ah_sync_owner(core->sync));
    return core;
}

void ah_daemon_close(ah_core *core)
{
    if (core == NULL)
        return;
    ah_daemon_stop(core);
    /* The bus first: its handlers may still reach the engine's state. */
    if (core->bus != NULL) {
        ah_bus_free(core->bus);
        core->bus = NULL;
    }
    /* After the bus: its delivery lanes keep claims until they are done. */
    ah_claims_keeper_free(core);
    ah_sync_free(core->sync);
    core->sync = NULL;
    ah_bulk_free(core->bulk);
    core->bulk = NULL;
    ah_webhooks_free(core->webhooks);
    core->webhooks = NULL;
    ah_core_close(core);
}

/* This instance's registration on the store (issue 14): written at
 * start, renewed by the ticker every third of a claim's lifetime, removed
 * at a clean stop (a killed instance ages out of `atshub instances`).
 * Registrations older than a day are dropped at start. */
static void instance_beat(ah_core *core)
{
    if (core->instance[0] == '\0')
        return;
    char host[128] = "";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    if (core->store->ops->instance_beat(core->store, core->instance, AH_VERSION, host,
                                        (int64_t)getpid(), core->started_at) != 0)
        ah_log(&core->log, AH_LOG_WARN, "core", "cannot renew this instance's heartbeat "
               "(the store failed); retried shortly");
}

/* How often the pruner prunes what is past its retention. */
#define AH_PRUNE_EVERY_S 60

static long mono_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec;
}

void ah_daemon_prune(ah_core *core)
{
    ah_eventlog_prune(core);
    /* The integration log, idempotency keys and settled writes past
     * retention. */
    ah_intlog_prune(core);
    ah_idem_prune(core);
    ah_settle_prune(core);
    ah_webhooks_prune(core);
    /* The change log is read within seconds: an hour is plenty. */
    char before[32];
    ah_iso_in(-3600L * 1000L, before);
    (void)core->store->ops->change_prune(core->store, before, NULL);
    /* A bulk job's chunk claims, a day after their last use (job ids never
     * repeat, so their tokens need not be kept). */
    (void)core->store->ops->lease_prune(core->store, "bulk:", 86400000, NULL);
}

/* Waits a second on the ticks' condition, or until the stop wakes it
 * (caller holds tick_lock). */
static void tick_wait(ah_core *core)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&core->tick_cond, &core->tick_lock, &ts);
}

/* Every minute, on a thread of its own: a prune of a busy store's logs
 * takes seconds (batches of rows), which on the ticker held up following
 * other instances' changes, the heartbeat and the deliveries' kicks. One
 * instance of those on a store at a time (the claim "prune"): the others'
 * batches would only wait on its row locks. */
static void *pruner_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-prune"); /* top -H, perf */
    ah_core *core = arg;
    long next = mono_seconds() + 1; /* the first soon after the start, as before */
    pthread_mutex_lock(&core->tick_lock);
    while (!core->stopping) {
        tick_wait(core);
        if (core->stopping || mono_seconds() < next)
            continue;
        next = mono_seconds() + AH_PRUNE_EVERY_S;
        pthread_mutex_unlock(&core->tick_lock);
        ah_claim cl = {0};
        if (ah_claim_take(core, &cl, "prune")) {
            ah_daemon_prune(core);
            ah_claim_give_back(core, &cl);
        }
        pthread_mutex_lock(&core->tick_lock);
    }
    pthread_mutex_unlock(&core->tick_lock);
    return NULL;
}

/* Every second: picks up changes other processes committed, retires idle
 * contexts of swapped-out generations and kicks due deliveries (to plugins
 * and to the product's webhooks). Nothing here may wait on the network: a
 * removed tenant's key works until the next reload, so webhooks are only
 * handed to their own pool (ah_webhooks_tick returns at once). */
static void *ticker_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "ah-ticker"); /* top -H, perf */
    ah_core *core = arg;
    long beat_every = (long)(ah_claim_ttl(core) / 3000);
    long last_beat = mono_seconds();
    pthread_mutex_lock(&core->tick_lock);
    while (!core->stopping) {
        tick_wait(core);
        if (core->stopping)
            break;
        /* Another process (the CLI) committed: pick up its changes. */
        if (core->store->ops->data_version(core->store) != core->seen_data_version)
            ah_conns_reload(core);
        /* Other instances on the store: their plugin reloads (and, from
         * the log, tenants and connections) within a second or two. */
        ah_ops_follow_changes(core);
        if (mono_seconds() - last_beat >= (beat_every > 0 ? beat_every : 1)) {
            last_beat = mono_seconds();
            instance_beat(core);
        }
        /* Idle connections still holding a context of a swapped-out
         * generation would keep it loaded forever. */
        ah_ops_retire_contexts(core);
        /* Plugin processes that ended between calls: reaped, counted. */
        ah_registry_watch(core->registry);
        ah_events_tick(core);
        ah_webhooks_tick(core);
    }
    pthread_mutex_unlock(&core->tick_lock);
    return NULL;
}

/* Every connection the guard admits is a descriptor: take what the hard
 * limit allows, and say so when even that is short of [http]
 * max_connections (plus the store, the plugins and the outbound calls). */
static void raise_fd_limit(ah_core *core)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t need = (rlim_t)core->cfg.http_max_connections + 256;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        ah_log(&core->log, AH_LOG_WARN, "core",
               "the open-file limit is %llu, below [http] max_connections = %u plus 256 for "
               "the rest: a flood can exhaust descriptors (raise LimitNOFILE / ulimit -n)",
               (unsigned long long)rl.rlim_cur, core->cfg.http_max_connections);
}

int ah_daemon_start(ah_core *core, char *err, size_t errlen)
{
    raise_fd_limit(core);
    char *cert = NULL, *key = NULL;
    if (core->cfg.tls_cert != NULL) {
        FILE *f;
        size_t n;
        cert = calloc(1, 1 << 16);
        key = calloc(1, 1 << 16);
        if (cert == NULL || key == NULL)
            goto tls_fail;
        if ((f = fopen(core->cfg.tls_cert, "r")) == NULL)
            goto tls_fail;
        n = fread(cert, 1, (1 << 16) - 1, f);
        fclose(f);
        if (n == 0 || (f = fopen(core->cfg.tls_key, "r")) == NULL)
            goto tls_fail;
        n = fread(key, 1, (1 << 16) - 1, f);
        fclose(f);
        if (n == 0)
            goto tls_fail;
    }
    ah_httpd_opts o = {
        .host = core->cfg.listen_host,
        .port = core->cfg.listen_port,
        .max_body = core->cfg.max_body,
        .threads = core->cfg.http_threads,
        .max_connections = core->cfg.http_max_connections,
        .max_connections_per_client = core->cfg.http_max_connections_per_client,
        .header_timeout_ms = core->cfg.http_header_timeout_ms,
        .min_body_rate = core->cfg.http_min_body_rate,
        .tls_cert_pem = cert,
        .tls_key_pem = key,
        .on_done = ah_metrics_http_done,
        .on_done_arg = core->metrics,
        /* The console's session (admin listener) is the host's: a browser
         * sends it here too, where plugin routes read headers. */
        .hidden_cookie = AH_CONSOLE_COOKIE,
    };
    core->httpd = ah_httpd_new(&o, err, errlen);
    if (cert != NULL) {
        explicit_bzero(key, 1 << 16);
        free(cert);
        free(key);
    }
    if (core->httpd == NULL)
        return -1;
    /* Before anything that claims work and waits on calls under a claim
     * (the routes' deliveries and settling, the pools below): they read
     * core->keeper from their threads. */
    if (ah_claims_keeper_start(core, err, errlen) != 0)
        return -1;
    /* Before the routes whose answers it sends. */
    core->committer = ah_store_committer_start(core->store, &core->log, err, errlen);
    if (core->committer == NULL)
        return -1;
    if (ah_rest_register(core) != 0 || ah_trust_register(core) != 0) {
        snprintf(err, errlen, "cannot register routes");
        return -1;
    }
    if (ah_httpd_start(core->httpd, err, errlen) != 0)
        return -1;
    if (ah_admin_start(core, err, errlen) != 0)
        return -1;
    /* The pool before the ticker that feeds it. */
    if (ah_webhooks_start(core, err, errlen) != 0)
        return -1;
    core->stopping = false;
    /* Where the change log ends now: the ticker applies what follows. */
    (void)ah_ops_follow_changes(core);
    ah_now_iso(core->started_at);
    (void)core->store->ops->instance_remove(core->store, NULL, 86400000);
    instance_beat(core);
    if (pthread_create(&core->ticker, NULL, ticker_main, core) != 0) {
        snprintf(err, errlen, "cannot start the ticker thread");
        return -1;
    }
    core->ticker_running = true;
    if (pthread_create(&core->pruner, NULL, pruner_main, core) != 0) {
        snprintf(err, errlen, "cannot start the pruner thread");
        return -1;
    }
    core->pruner_running = true;
    if (ah_sync_scheduler_start(core, err, errlen) != 0)
        return -1;
    if (ah_bulk_start(core, err, errlen) != 0)
        return -1;
    return 0;
tls_fail:
    snprintf(err, errlen, "cannot read tls_cert / tls_key");
    free(cert);
    free(key);
    return -1;
}

void ah_daemon_stop(ah_core *core)
{
    /* Operators' requests act on the parts below: they go first. */
    ah_admin_stop(core);
    /* Then: a sync under way ends after its current page. */
    ah_sync_scheduler_stop(core);
    ah_bulk_stop(core);
    if (core->ticker_running) {
        pthread_mutex_lock(&core->tick_lock);
        core->stopping = true;
        pthread_cond_broadcast(&core->tick_cond);
        pthread_mutex_unlock(&core->tick_lock);
        pthread_join(core->ticker, NULL);
        core->ticker_running = false;
        ah_ops_follow_stop(core);
    }
    if (core->pruner_running) { /* woken with the ticker */
        pthread_join(core->pruner, NULL);
        core->pruner_running = false;
    }
    /* After the ticker that feeds it; a delivery under way ends first. */
    ah_webhooks_stop(core);
    if (core->httpd != NULL) {
        ah_httpd_free(core->httpd);
        core->httpd = NULL;
    }
    /* After the server: the answers it held have gone out. */
    ah_store_committer_stop(core->committer);
    core->committer = NULL;
    ah_rest_unregister(core);
    if (core->started_at[0] != '\0' && core->instance[0] != '\0') {
        (void)core->store->ops->instance_remove(core->store, core->instance, 0);
        core->started_at[0] = '\0';
    }
}

/* SIGTERM: stop accepting, let accepted requests and queued bus work finish
 * within AH_DRAIN_MS, then stop everything (the scheduler first, so a sync
 * ends after the page it is committing). */
#define AH_DRAIN_MS 10000L
/* ...and a request that began as the drain ended. */
#define AH_DRAIN_LAST_MS 2000L

static void drain(ah_core *core)
{
    ah_sd_notify("STOPPING=1");
    ah_admin_quiesce(core);
    ah_httpd_quiesce(core->httpd);
    if (!ah_httpd_wait_idle(core->httpd, AH_DRAIN_MS))
        ah_log(&core->log, AH_LOG_WARN, "core", "%ld requests still running after %ld ms: "
               "stopping anyway", ah_httpd_inflight(core->httpd), AH_DRAIN_MS);
    /* Idle clients on kept-alive connections may still send: refused from
     * here on, and one that began meanwhile is waited for (briefly). */
    ah_httpd_refuse_new(core->httpd);
    (void)ah_httpd_wait_idle(core->httpd, AH_DRAIN_LAST_MS);
    ah_daemon_stop(core);
    if (core->bus != NULL)
        ah_bus_drain(core->bus);
}

static void reconcile(ah_core *core)
{
    ah_sd_notify("RELOADING=1");
    ah_ops_err e;
    cJSON *out = NULL;
    int rc = ah_ops_reconcile(core, &out, &e);
    char *text = out != NULL ? cJSON_PrintUnformatted(out) : NULL;
    if (rc == 0)
        ah_log(&core->log, AH_LOG_INFO, "core", "SIGHUP: %s reconciled: %s", core->cfg.path,
               text != NULL ? text : "");
    else
        ah_log(&core->log, AH_LOG_ERROR, "core", "SIGHUP: %s%s%s", e.msg, text ? ": " : "",
               text ? text : "");
    free(text);
    cJSON_Delete(out);
    ah_sd_notify("READY=1");
}

static void serve_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

void ah_daemon_block_signals(void)
{
    sigset_t set;
    serve_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int ah_daemon_serve(ah_core *core)
{
    char err[512];
    sigset_t set;
    serve_signals(&set);
    /* Blocked here too for callers that did not (threads started before
     * this are the caller's to have blocked them: ah_daemon_block_signals). */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (ah_daemon_start(core, err, sizeof err) != 0) {
        ah_log(&core->log, AH_LOG_ERROR, "core", "%s", err);
        ah_daemon_stop(core);
        return 1;
    }
    ah_log(&core->log, AH_LOG_INFO, "core", "atshub %s listening on %s://%s:%u (%zu plugins, store %s)",
           AH_VERSION, core->cfg.tls_cert ? "https" : "http", core->cfg.listen_host,
           (unsigned)ah_httpd_port(core->httpd), ah_registry_count(core->registry),
           core->store->ops->name);
    ah_sd_notify("READY=1");
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reconcile(core);
            continue;
        }
        ah_log(&core->log, AH_LOG_INFO, "core", "signal %d: draining (up to %ld ms), then stopping",
               sig, AH_DRAIN_MS);
        break;
    }
    drain(core);
    return 0;
}

