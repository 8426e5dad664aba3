/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ERecruit responses as the plugin maps them (plugins/erecruit/er_map.c and
 * friends, compiled in on the fake host as tests/unit/check_erecruit_map.c
 * does): the input as a position, a submission, a contact and an error body
 * (with an HTTP status taken from its first byte), and as text through the
 * status and type maps and the note conversion.
 */
#include <stdio.h>

#include "er.h"
#include "fake_host.h"
#include "fuzz.h"

const ah_plugin_descriptor *atshub_plugin_entry_v1(const ah_host_api *host);

static void drop(cJSON *j)
{
    if (j != NULL) {
        char *s = cJSON_PrintUnformatted(j);
        free(s);
        cJSON_Delete(j);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        (void)atshub_plugin_entry_v1(ah_fake_host_api());
        ready = true;
    }
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (j != NULL) {
        er_map_opts o = {.screened_tag_id = 7, .screened_status_id = 3};
        drop(er_map_job(j, false));
        drop(er_map_job(j, true));
        drop(er_map_application(j, &o));
        drop(er_map_candidate(j, &o));
        char id[ER_ID_MAX];
        (void)er_map_id(j, "id", id);
        static const long statuses[] = {0, 200, 400, 401, 403, 404, 409, 422, 429, 500, 503, 999};
        er_error err;
        memset(&err, 0, sizeof err);
        er_map_error(statuses[(size > 0 ? data[0] : 0) % 12], j, 1 + (int)(size % 4), &err);
        if (memchr(err.code, '\0', sizeof err.code) == NULL ||
            memchr(err.message, '\0', sizeof err.message) == NULL)
            abort();
        cJSON_Delete(j);
    }
    char *s = fuzz_strndup(data, size);
    (void)er_map_job_status(s);
    (void)er_map_job_type(s);
    (void)er_note_is_html(s);
    free(er_note_html(s));
    free(s);
    return 0;
}
