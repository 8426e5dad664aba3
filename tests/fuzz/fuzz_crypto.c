/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Base64 and the constant-time comparisons of core/base/crypto.c, and
 * sealed-secret parsing: the input as base64 text is decoded (and what
 * decodes must encode back to a text that decodes to the same bytes); the
 * raw bytes are encoded and must decode back exactly; the text is opened as
 * a sealed value under a fixed key (refused, never a crash).
 */
#include <stdio.h>

#include "crypto.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_strndup(data, size);
    size_t n = 0;
    unsigned char *dec = ah_base64_decode(s, &n);
    if (dec != NULL) {
        char *again = ah_base64_encode(dec, n);
        if (again == NULL)
            abort();
        size_t n2 = 0;
        unsigned char *dec2 = ah_base64_decode(again, &n2);
        if (dec2 == NULL || n2 != n || (n > 0 && memcmp(dec, dec2, n) != 0)) {
            fprintf(stderr, "base64: decode(encode(decode(x))) differs\n");
            abort();
        }
        free(dec2);
        free(again);
        free(dec);
    }
    char *enc = ah_base64_encode(data, size);
    if (enc == NULL)
        abort();
    size_t n3 = 0;
    unsigned char *back = ah_base64_decode(enc, &n3);
    if (back == NULL || n3 != size || (size > 0 && memcmp(back, data, size) != 0)) {
        fprintf(stderr, "base64: decode(encode(x)) != x\n");
        abort();
    }
    free(back);
    free(enc);

    char *rest = fuzz_split(s);
    if (ah_ct_equal(s, strlen(s), rest, strlen(rest)) != (strcmp(s, rest) == 0) ||
        ah_ct_streq(s, rest) != (strcmp(s, rest) == 0)) {
        fprintf(stderr, "ct_equal disagrees with strcmp\n");
        abort();
    }
    static const unsigned char key[AH_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
    (void)ah_is_sealed(s);
    char *plain = ah_open_sealed(key, s, NULL);
    free(plain);
    char *plain2 = ah_open_sealed(key, s, rest);
    free(plain2);
    free(s);
    return 0;
}
