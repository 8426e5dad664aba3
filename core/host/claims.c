/* SPDX-License-Identifier: Apache-2.0 */
/* Claims of shared work as store leases (claims.h). */
#include "claims.h"

#include "core.h"
#include "store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t ah_claim_ttl(const ah_core *core)
{
    return core->cfg.claim_ms > 0 ? core->cfg.claim_ms : AH_CLAIM_MS;
}

static bool claiming(const ah_core *core)
{
    return core->instance[0] != '\0' && core->store->ops->lease_claim != NULL;
}

int ah_claims_take(ah_core *core, ah_claim *c, size_t n)
{
    if (n == 0)
        return 0;
    if (!claiming(core)) {
        for (size_t i = 0; i < n; i++) {
            c[i].token = 0;
            c[i].held = true;
        }
        return 0;
    }
    const char **names = calloc(n, sizeof *names);
    int64_t *tok = calloc(n, sizeof *tok);
    int rc = -1;
    if (names != NULL && tok != NULL) {
        for (size_t i = 0; i < n; i++)
            names[i] = c[i].name;
        rc = core->store->ops->lease_claim(core->store, names, n, core->instance,
                                           ah_claim_ttl(core), tok) == AH_STORE_OK
                 ? 0
                 : -1;
    }
    for (size_t i = 0; i < n; i++) {
        c[i].token = rc == 0 ? tok[i] : 0;
        c[i].held = rc == 0 && tok[i] > 0;
    }
    free(names);
    free(tok);
    return rc;
}

bool ah_claim_take(ah_core *core, ah_claim *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->name, sizeof c->name, fmt, ap);
    va_end(ap);
    return ah_claims_take(core, c, 1) == 0 && c->held;
}

int ah_claim_begin(ah_core *core, ah_claim *c)
{
    if (!c->held)
        return -1;
    if (c->token == 0)
        return 0;
    ah_store *s = core->store;
    if (s->ops->scope_begin(s) != AH_STORE_OK)
        return -1;
    int rc = s->ops->lease_hold(s, c->name, c->token, ah_claim_ttl(core));
    if (rc == AH_STORE_OK)
        return 0;
    s->ops->scope_end(s, false);
    if (rc == AH_STORE_NOT_FOUND) {
        c->held = false;
        ah_log(&core->log, AH_LOG_WARN, "claims",
               "%s: this instance's claim expired and may have been taken over; "
               "its work stops here uncommitted", c->name);
    }
    return -1;
}

int ah_claim_end(ah_core *core, ah_claim *c, bool commit)
{
    if (c->token == 0)
        return 0;
    return core->store->ops->scope_end(core->store, commit) == AH_STORE_OK ? 0 : -1;
}

bool ah_claim_renew(ah_core *core, ah_claim *c)
{
    if (!c->held || c->token == 0)
        return c->held;
    int rc = core->store->ops->lease_hold(core->store, c->name, c->token, ah_claim_ttl(core));
    if (rc == AH_STORE_NOT_FOUND)
        c->held = false;
    return c->held;
}

void ah_claim_give_back(ah_core *core, ah_claim *c)
{
    if (c->held && c->token != 0)
        (void)core->store->ops->lease_release(core->store, c->name, c->token);
    c->held = false;
}
