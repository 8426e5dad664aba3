/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ERP create/update validation (plugins/erp/erp_validate.c) and the trusted-IP
 * matcher (erp_ip.c): the input is parsed as a JSON body and validated for
 * create and for update; the same bytes, as text, go through the field
 * checkers (URL, date, enums, title key, prefix) and, split at the first
 * newline into "list\nclient ip", through the IP allow-list.
 */
#include "erp.h"
#include "fuzz.h"

static void validate(const cJSON *body, erp_op op)
{
    cJSON *out = NULL;
    erp_error err;
    memset(&err, 0, sizeof err);
    if (erp_validate_job(body, op, &out, &err) == 0) {
        char *s = cJSON_PrintUnformatted(out);
        free(s);
        cJSON_Delete(out);
    } else if (err.code == NULL) {
        abort(); /* a refusal always names its code */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *body = cJSON_ParseWithLength((const char *)data, size);
    if (body != NULL) {
        validate(body, ERP_OP_CREATE);
        validate(body, ERP_OP_UPDATE);
        cJSON_Delete(body);
    }
    char *s = fuzz_strndup(data, size);
    (void)erp_url_valid(s);
    (void)erp_date_valid(s);
    (void)erp_enum_normalise(s, erp_job_types);
    (void)erp_enum_normalise(s, erp_workplace_types);
    (void)erp_enum_normalise(s, erp_statuses);
    char key[256];
    erp_title_key(s, key, sizeof key);
    char tiny[4];
    erp_title_key(s, tiny, sizeof tiny);
    (void)erp_fnv1a64(s);
    (void)erp_status_open(s);
    (void)erp_prefix_valid(s);
    (void)erp_ip_entry_valid(s);
    char *ip = fuzz_split(s);
    int bad = 0;
    (void)erp_ip_allowed(s, ip, &bad);
    (void)erp_ip_allowed(s, "127.0.0.1", NULL);
    (void)erp_ip_allowed(s, "::1", NULL);
    free(s);
    return 0;
}
