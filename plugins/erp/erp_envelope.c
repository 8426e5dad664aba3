/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ERP guide's response envelope: {"status","message","data"?,
 * "processing_time"}, plus "error_code" and "field" on errors.
 */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "erp.h"

double erp_env_round(double seconds)
{
    if (!(seconds > 0))
        return 0;
    /* 0.1 ms steps, never below 0.0001: plain decimals as in the guide
     * ("0.32"), never exponent notation ("2.6e-05"). */
    double r = round(seconds * 1e4) / 1e4;
    return r < 1e-4 ? 1e-4 : r;
}

cJSON *erp_env_success(const char *message, cJSON *data, double seconds)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        cJSON_Delete(data);
        return NULL;
    }
    cJSON_AddStringToObject(o, "status", "success");
    cJSON_AddStringToObject(o, "message", message);
    if (data != NULL)
        cJSON_AddItemToObject(o, "data", data);
    cJSON_AddNumberToObject(o, "processing_time", erp_env_round(seconds));
    return o;
}

cJSON *erp_env_error(const char *message, const char *code, const char *field, double seconds)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "status", "error");
    cJSON_AddStringToObject(o, "message", message);
    cJSON_AddStringToObject(o, "error_code", code);
    if (field != NULL && *field != '\0')
        cJSON_AddStringToObject(o, "field", field);
    cJSON_AddNumberToObject(o, "processing_time", erp_env_round(seconds));
    return o;
}

double erp_monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
