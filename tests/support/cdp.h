/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Headless Chromium driven through the DevTools pipe (--remote-debugging-pipe:
 * NUL-delimited JSON messages on the browser's fds 3 and 4), for the tests
 * of pages atshub serves (the LinkedIn configuration page, the operator
 * console). Every function fails the running Check test on error.
 */
#ifndef AH_TEST_CDP_H
#define AH_TEST_CDP_H

#include <stdbool.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

typedef struct browser {
    pid_t pid;
    int to, from; /* our ends: commands in (its fd 3), answers out (its fd 4) */
    char *buf;
    size_t len;
    int next_id;
    char *profile;
} browser;

/** Chromium's path, or NULL when it is not installed. */
const char *chromium_path(void);
/** Starts Chromium with a profile under dir (the test fails without it). */
void browser_start(browser *b, const char *dir);
/** Sends one command (params: JSON text or NULL); returns its id. */
int cdp_send(browser *b, const char *session, const char *method, const char *params);
/** Waits for the answer to command `id`, skipping events; returns its
 *  "result" (the whole message in *msg_out, for the caller to free). */
const cJSON *cdp_wait(browser *b, int id, int timeout_s, cJSON **msg_out);
/** The same; may_fail: an error answer returns NULL (message in *msg_out). */
const cJSON *cdp_wait_ex(browser *b, int id, int timeout_s, cJSON **msg_out, bool may_fail);
/** Runtime.evaluate of a promise in the page: its string value (malloc'd);
 *  the test fails with the page's exception otherwise. */
char *cdp_eval(browser *b, const char *session, const char *expr, int timeout_s);
/** Opens url in a new tab; returns the session id (malloc'd). */
char *cdp_open(browser *b, const char *url);
/** Closes Chromium and frees b's buffers. */
void browser_stop(browser *b);
/** A left click at {"x":X,"y":Y} (JSON text). */
void click_at(browser *b, const char *session, const char *xy);

#endif
