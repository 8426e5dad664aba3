/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon: the top of core, below only the CLI. It opens the host
 * context (host/core.h) together with the state of the layers above the
 * host, starts and stops every surface, and serves until a signal.
 */
#ifndef AH_DAEMON_H
#define AH_DAEMON_H

#include "core.h"

/** ah_core_open, plus the state of the engine and api layers (sync engine,
 *  webhooks, rate budgets, bulk jobs). Every command that may touch those
 *  opens the host this way. NULL with err on failure; takes cfg. */
ah_core *ah_daemon_open(ah_config *cfg, const ah_core_opts *opts, char *err, size_t errlen);
/** Stops what ah_daemon_start started and closes everything. NULL is allowed. */
void ah_daemon_close(ah_core *core);

/** Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and so in every
 *  thread it starts later; ah_daemon_serve then takes them with sigwait.
 *  Call it before ah_daemon_open: a thread started with them unblocked (a
 *  bus worker) would take SIGHUP's default action, ending the process. */
void ah_daemon_block_signals(void);
/** Serves: HTTP listener, admin listener, ticker, sync scheduler; blocks
 *  until SIGINT/SIGTERM (SIGHUP reconciles the plugins with the INI), then
 *  drains: the listeners stop accepting, every accepted request is answered
 *  (up to 10 s), queued bus work finishes. 0 after a clean stop. */
int ah_daemon_serve(ah_core *core);
/** Starts the HTTP server, admin listener, ticker, sync scheduler (when
 *  [sync] interval_s > 0) and bulk worker without blocking (tests). */
int ah_daemon_start(ah_core *core, char *err, size_t errlen);
/** Stops what ah_daemon_start started; safe to call when nothing runs. */
void ah_daemon_stop(ah_core *core);
/** The prune pass the ticker runs every minute: the event log, the
 *  integration log, idempotency keys, settled writes and webhook delivery
 *  logs past their retention. */
void ah_daemon_prune(ah_core *core);

#endif
