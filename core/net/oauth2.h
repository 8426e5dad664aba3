/* SPDX-License-Identifier: Apache-2.0 */
/* OAuth2 token cache: client-credentials and refresh-token grants, cached
 * per (connection, token URL, client id, scope), renewed 5 minutes before
 * expiry (half its life before, for a token living 10 minutes or less), one
 * fetch at a time per key. */
#ifndef AH_OAUTH2_H
#define AH_OAUTH2_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "httpc.h"

#define AH_OAUTH2_REFRESH_MARGIN_S 300
/** The longest access or refresh token kept (bytes, without the NUL): a
 *  longer one is refused as the provider's answer. */
#define AH_OAUTH2_MAX_TOKEN 8192

typedef struct ah_oauth2 ah_oauth2;

/** now_fn (may be NULL: time(NULL)) lets tests move the clock. */
ah_oauth2 *ah_oauth2_new(ah_httpc *httpc, time_t (*now_fn)(void *), void *now_arg);
void ah_oauth2_free(ah_oauth2 *o);

/**
 * Copies a valid access token into out. Fetches one (POST
 * application/x-www-form-urlencoded grant_type=client_credentials, or
 * refresh_token when p->refresh_token is set, with client_id and
 * client_secret) when none is cached or the cached one expires within
 * AH_OAUTH2_REFRESH_MARGIN_S (or half its lifetime, when that is less). An
 * access or refresh token that is not 1 to AH_OAUTH2_MAX_TOKEN visible
 * ASCII bytes is refused. A refresh_token in the answer replaces the
 * one used for later refreshes. 0 on success; -1 with err filled; -2 with
 * err filled when the token endpoint gave no answer (unreachable, timed
 * out, or not sent: the thread's scheduler refused the wait, block.h) or
 * answered 429 or 5xx after the client's retries: a failure of the
 * provider or of the moment rather than of the credentials.
 * Callers waiting on the same fetch get its outcome.
 */
int ah_oauth2_token(ah_oauth2 *o, int64_t conn_id, const ah_oauth2_params *p,
                    const char *base_url, ah_httpc_observer obs, void *obs_arg,
                    char *out, size_t out_len, char *err, size_t errlen);
void ah_oauth2_invalidate(ah_oauth2 *o, int64_t conn_id, const ah_oauth2_params *p);
/** Like ah_oauth2_invalidate, but only while the cached access token is
 *  still `refused` (the one the provider answered 401 to); NULL: always. */
void ah_oauth2_invalidate_token(ah_oauth2 *o, int64_t conn_id, const ah_oauth2_params *p,
                                const char *refused);
/** Forgets every token of a connection (settings changed, disabled). */
void ah_oauth2_forget_conn(ah_oauth2 *o, int64_t conn_id);

#endif
