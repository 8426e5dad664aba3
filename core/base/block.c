/* SPDX-License-Identifier: Apache-2.0 */
#include "block.h"

#include <stddef.h>

static _Thread_local const ah_block_hooks *tl_hooks;
static _Thread_local unsigned tl_depth;

void ah_block_install(const ah_block_hooks *h)
{
    tl_hooks = h;
    tl_depth = 0;
}

bool ah_block_begin_on(const char *on)
{
    if (tl_depth == 0 && tl_hooks != NULL && tl_hooks->begin != NULL &&
        !tl_hooks->begin(tl_hooks->arg, on))
        return false;
    tl_depth++;
    return true;
}

void ah_block_begin(void)
{
    (void)ah_block_begin_on(NULL);
}

int64_t ah_block_deadline_ms(void)
{
    return tl_hooks != NULL && tl_hooks->deadline != NULL ? tl_hooks->deadline(tl_hooks->arg) : 0;
}

void ah_block_end(void)
{
    if (tl_depth == 0)
        return; /* unpaired: nothing to end */
    if (--tl_depth == 0 && tl_hooks != NULL && tl_hooks->end != NULL)
        tl_hooks->end(tl_hooks->arg);
}
