/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Standard Webhooks signatures (core/api/webhooks.c ah_webhook_sign, on the
 * base64 of core/base/crypto.c): the input is "secret\nmsg_id\nts\nbody".
 * A secret that decodes must sign to "v1," + 44 base64 characters, the same
 * with or without the "whsec_" prefix; a tiny output buffer is refused.
 */
#include <stdio.h>

#include "fuzz.h"
#include "webhooks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *secret = fuzz_strndup(data, size);
    char *id = fuzz_split(secret);
    char *ts = fuzz_split(id);
    char *body = fuzz_split(ts);
    size_t blen = size - (size_t)(body - secret);
    if (body == ts + strlen(ts)) /* fewer than four lines */
        blen = 0;
    char out[128], again[128], tiny[8];
    if (ah_webhook_sign(secret, id, ts, body, blen, out, sizeof out) == 0) {
        if (strncmp(out, "v1,", 3) != 0 || strlen(out) != 3 + 44) {
            fprintf(stderr, "bad signature text '%s'\n", out);
            abort();
        }
        if (strncmp(secret, "whsec_", 6) != 0) {
            size_t n = strlen(secret) + 7;
            char *pre = malloc(n);
            if (pre == NULL)
                abort();
            snprintf(pre, n, "whsec_%s", secret);
            if (ah_webhook_sign(pre, id, ts, body, blen, again, sizeof again) != 0 ||
                strcmp(out, again) != 0) {
                fprintf(stderr, "the whsec_ prefix changed the signature\n");
                abort();
            }
            free(pre);
        }
        if (ah_webhook_sign(secret, id, ts, body, blen, tiny, sizeof tiny) == 0)
            abort();
    }
    free(secret);
    return 0;
}
