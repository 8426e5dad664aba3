/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CareerBuilder validation (plugins/careerbuilder/cb_validate.c): the input
 * as a status object, a query body and a status_map setting, and as text
 * through the date checks and the UTF-8 truncation.
 */
#include <stdio.h>

#include "cb.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (j != NULL) {
        err[0] = '\0';
        (void)cb_validate_status(j, err, sizeof err);
        const char *key = NULL;
        const cJSON *list = NULL;
        (void)cb_validate_query(j, &key, &list, err, sizeof err);
        cJSON_Delete(j);
    }
    char *s = fuzz_strndup(data, size);
    cJSON *map = cb_parse_status_map(s, err, sizeof err);
    cJSON_Delete(map);
    time_t t;
    (void)cb_date_parse(s, &t);
    char utc[32];
    if (cb_date_to_utc(s, utc, sizeof utc) && !cb_date_parse(utc, NULL)) {
        fprintf(stderr, "cb_date_to_utc(%s) = %s, not a CareerBuilder date\n", s, utc);
        abort();
    }
    char small[8];
    (void)cb_date_to_utc(s, small, sizeof small);
    cb_utf8_truncate(s, size > 0 ? data[0] % 64 : 0);
    free(s);
    return 0;
}
