/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The checker a plugin's emitted records pass (core/host/recbuf.c,
 * ah_json_valid: their raw and fields text, stored as given) against cJSON,
 * which reads every stored record back: text the checker accepts must be
 * read by cJSON to its end (whitespace may follow), or the record would be
 * served as null. (cJSON accepts more than the checker: that direction is
 * not asserted.)
 */
#include <stdio.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "recbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *t = (const char *)data;
    if (!ah_json_valid(t, size))
        return 0;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(t, size, &end, 0);
    if (j == NULL) {
        fprintf(stderr, "ah_json_valid accepted what cJSON cannot read\n");
        abort();
    }
    for (; end < t + size; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
            fprintf(stderr, "cJSON stopped at byte %zu of %zu\n", (size_t)(end - t), size);
            abort();
        }
    }
    cJSON_Delete(j);
    return 0;
}
