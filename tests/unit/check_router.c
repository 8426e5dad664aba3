/* SPDX-License-Identifier: Apache-2.0 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

/* Every topic of DESIGN.md's user-facing contract. */
static const char *const contract[] = {
    "jobs.stream", "applications.stream", "candidates.stream",
    "applications.move_to_stage", "applications.reject", "applications.bulk_reject",
    "applications.create", "applications.list_stages", "dispositions.list",
    "jobs.get", "jobs.get_enhanced", "jobs.enhanced_batch", "jobs.create_posting",
    "jobs.update_posting", "candidates.get", "candidates.find", "candidates.resume",
    "notes.add_to_application", "notes.add_to_candidate",
    "attachments.add_to_application", "attachments.add_to_candidate",
    "custom_fields.list", "custom_fields.values", "custom_fields.update",
    "statuses.put", "statuses.get", "statuses.query", "onboarding.provision",
    "onboarding.request", "onboarding.enable", "onboarding.verify",
    "onboarding.disable", "postings.publish", "postings.update", "postings.link",
    "postings.list", "postings.configure", "postings.disconnect", "postings.status",
    "postings.notices", "postings.pending", "postings.assign",
};
#define NCONTRACT (sizeof contract / sizeof contract[0])

/* Distinct functions, one per topic, so that resolving to the wrong slot is
 * caught: each returns its own index through the reply. */
#define FAKE(n)                                                                \
    static ah_result fake_##n(ah_call *call, const cJSON *body, cJSON **reply) \
    {                                                                          \
        (void)call;                                                            \
        (void)body;                                                            \
        *reply = cJSON_CreateNumber(n);                                        \
        return AH_OK;                                                          \
    }
FAKE(0) FAKE(1) FAKE(2) FAKE(3) FAKE(4) FAKE(5) FAKE(6) FAKE(7) FAKE(8)
FAKE(9) FAKE(10) FAKE(11) FAKE(12) FAKE(13) FAKE(14) FAKE(15) FAKE(16)
FAKE(17) FAKE(18) FAKE(19) FAKE(20) FAKE(21) FAKE(22) FAKE(23) FAKE(24)
FAKE(25) FAKE(26) FAKE(27) FAKE(28) FAKE(29) FAKE(30) FAKE(31) FAKE(32)
FAKE(33) FAKE(34) FAKE(35) FAKE(36) FAKE(37) FAKE(38) FAKE(39) FAKE(40)
FAKE(41)

/* In contract[] order. */
static const ah_op_fn fakes[NCONTRACT] = {
    fake_0, fake_1, fake_2, fake_3, fake_4, fake_5, fake_6, fake_7, fake_8,
    fake_9, fake_10, fake_11, fake_12, fake_13, fake_14, fake_15, fake_16,
    fake_17, fake_18, fake_19, fake_20, fake_21, fake_22, fake_23, fake_24,
    fake_25, fake_26, fake_27, fake_28, fake_29, fake_30, fake_31, fake_32,
    fake_33, fake_34, fake_35, fake_36, fake_37, fake_38, fake_39, fake_40,
    fake_41,
};

/* A plugin that serves everything, filled by name (not through the router)
 * so the test does not trust the router's offsets. */
typedef struct full_plugin {
    ah_streaming_ops streaming;
    ah_applications_ops applications;
    ah_dispositions_ops dispositions;
    ah_jobs_ops jobs;
    ah_candidates_ops candidates;
    ah_notes_ops notes;
    ah_attachments_ops attachments;
    ah_custom_fields_ops custom_fields;
    ah_statuses_ops statuses;
    ah_onboarding_ops onboarding;
    ah_postings_ops postings;
    ah_plugin_descriptor d;
} full_plugin;

static void full_fill(full_plugin *p)
{
    memset(p, 0, sizeof *p);
    p->streaming = (ah_streaming_ops){sizeof p->streaming, fakes[0], fakes[1], fakes[2], 2};
    p->applications = (ah_applications_ops){sizeof p->applications, fakes[3],
                                            fakes[4], fakes[5], fakes[6], fakes[7]};
    p->dispositions = (ah_dispositions_ops){sizeof p->dispositions, fakes[8]};
    p->jobs = (ah_jobs_ops){sizeof p->jobs, fakes[9], fakes[10], fakes[11],
                            fakes[12], fakes[13]};
    p->candidates = (ah_candidates_ops){sizeof p->candidates, fakes[14], fakes[15], fakes[16]};
    p->notes = (ah_notes_ops){sizeof p->notes, fakes[17], fakes[18]};
    p->attachments = (ah_attachments_ops){sizeof p->attachments, fakes[19], fakes[20]};
    p->custom_fields = (ah_custom_fields_ops){sizeof p->custom_fields, fakes[21],
                                              fakes[22], fakes[23]};
    p->statuses = (ah_statuses_ops){sizeof p->statuses, fakes[24], fakes[25], fakes[26]};
    p->onboarding = (ah_onboarding_ops){sizeof p->onboarding, fakes[27], fakes[28],
                                        fakes[29], fakes[30], fakes[31]};
    p->postings = (ah_postings_ops){sizeof p->postings, fakes[32], fakes[33],
                                    fakes[34], fakes[35], fakes[36], fakes[37],
                                    fakes[38], fakes[39], fakes[40], fakes[41]};
    p->d.struct_size = sizeof p->d;
    p->d.abi_major = AH_ABI_MAJOR;
    p->d.abi_minor = AH_ABI_MINOR;
    p->d.name = "full";
    p->d.streaming = &p->streaming;
    p->d.applications = &p->applications;
    p->d.dispositions = &p->dispositions;
    p->d.jobs = &p->jobs;
    p->d.candidates = &p->candidates;
    p->d.notes = &p->notes;
    p->d.attachments = &p->attachments;
    p->d.custom_fields = &p->custom_fields;
    p->d.statuses = &p->statuses;
    p->d.onboarding = &p->onboarding;
    p->d.postings = &p->postings;
}

START_TEST(test_every_topic_resolves)
{
    full_plugin *p = malloc(sizeof *p);
    ck_assert_ptr_nonnull(p);
    full_fill(p);
    for (size_t i = 0; i < NCONTRACT; i++) {
        const ah_topic *t = ah_router_topic(contract[i]);
        ck_assert_msg(t != NULL, "topic %s unknown", contract[i]);
        ck_assert_str_eq(t->topic, contract[i]);
        ah_op_fn fn = ah_router_resolve(&p->d, t);
        ck_assert_msg(fn == fakes[i], "topic %s resolves to the wrong slot", contract[i]);
        cJSON *reply = NULL;
        ck_assert_int_eq(fn(NULL, NULL, &reply), AH_OK);
        ck_assert_int_eq((int)cJSON_GetNumberValue(reply), (int)i);
        cJSON_Delete(reply);
    }
    free(p);
}
END_TEST

START_TEST(test_topic_table)
{
    size_t n = 0;
    const ah_topic *all = ah_router_topics(&n);
    ck_assert_ptr_nonnull(all);
    ck_assert_uint_eq(n, NCONTRACT);
    for (size_t i = 0; i < n; i++) {
        /* sorted and unique: the lookup bisects */
        if (i > 0)
            ck_assert_int_lt(strcmp(all[i - 1].topic, all[i].topic), 0);
        ck_assert_ptr_eq(ah_router_topic(all[i].topic), &all[i]);
        /* "<capability>.<operation>", except streaming's "<slot>.stream" */
        char name[128];
        if (strcmp(all[i].capability, "streaming") == 0)
            snprintf(name, sizeof name, "%s.stream", all[i].operation);
        else
            snprintf(name, sizeof name, "%s.%s", all[i].capability, all[i].operation);
        ck_assert_str_eq(name, all[i].topic);
    }
    ck_assert_ptr_eq(ah_router_topic("jobs.stream")->capability,
                     ah_router_topic("candidates.stream")->capability);
    ck_assert_str_eq(ah_router_topic("jobs.stream")->capability, "streaming");
    ck_assert_uint_eq(ah_router_topic("jobs.stream")->table_offset,
                      offsetof(ah_plugin_descriptor, streaming));
    ck_assert_uint_eq(ah_router_topic("jobs.stream")->slot_offset,
                      offsetof(ah_streaming_ops, jobs));
}
END_TEST

START_TEST(test_unknown_topic)
{
    ck_assert_ptr_null(ah_router_topic("jobs.delete"));
    ck_assert_ptr_null(ah_router_topic(""));
    ck_assert_ptr_null(ah_router_topic("jobs"));
    ck_assert_ptr_null(ah_router_topic("jobs.get "));
    ck_assert_ptr_null(ah_router_topic("JOBS.GET"));
    ck_assert_ptr_null(ah_router_topic("zzz.zzz"));
    ck_assert_ptr_null(ah_router_topic("aaa"));
    ck_assert_ptr_null(ah_router_topic(NULL));
    ck_assert_ptr_null(ah_router_resolve(NULL, ah_router_topic("jobs.get")));
}
END_TEST

START_TEST(test_null_table_and_slot)
{
    full_plugin *p = malloc(sizeof *p);
    ck_assert_ptr_nonnull(p);
    full_fill(p);
    p->d.jobs = NULL;
    p->postings.link = NULL;
    ck_assert_ptr_null(ah_router_resolve(&p->d, ah_router_topic("jobs.get")));
    ck_assert_ptr_null(ah_router_resolve(&p->d, ah_router_topic("jobs.update_posting")));
    ck_assert_ptr_null(ah_router_resolve(&p->d, ah_router_topic("postings.link")));
    ck_assert_ptr_eq(ah_router_resolve(&p->d, ah_router_topic("postings.list")), fakes[35]);
    ck_assert_ptr_eq(ah_router_resolve(&p->d, ah_router_topic("jobs.stream")), fakes[0]);
    ck_assert_ptr_null(ah_router_resolve(&p->d, NULL));
    free(p);
}
END_TEST

START_TEST(test_older_plugin_tables)
{
    full_plugin *p = malloc(sizeof *p);
    ck_assert_ptr_nonnull(p);
    full_fill(p);
    /* an onboarding table built before "verify" and "disable" existed; the
     * memory behind it still holds pointers that must not be used */
    p->onboarding.struct_size = (uint32_t)offsetof(ah_onboarding_ops, verify);
    ck_assert_ptr_eq(ah_router_resolve(&p->d, ah_router_topic("onboarding.enable")), fakes[29]);
    ck_assert_ptr_null(ah_router_resolve(&p->d, ah_router_topic("onboarding.verify")));
    ck_assert_ptr_null(ah_router_resolve(&p->d, ah_router_topic("onboarding.disable")));
    /* a table whose size covers only part of a slot */
    p->jobs.struct_size = (uint32_t)(offsetof(ah_jobs_ops, get) + 1);
    ck_assert_ptr_null(ah_router_resolve(&p->d, ah_router_topic("jobs.get")));
    p->jobs.struct_size = 0;
    ck_assert_ptr_null(ah_router_resolve(&p->d, ah_router_topic("jobs.get")));

    /* a descriptor that ends before the postings table pointer */
    p->d.struct_size = (uint32_t)offsetof(ah_plugin_descriptor, postings);
    ck_assert_ptr_null(ah_router_resolve(&p->d, ah_router_topic("postings.list")));
    ck_assert_ptr_eq(ah_router_resolve(&p->d, ah_router_topic("statuses.put")), fakes[24]);
    free(p);
}
END_TEST

START_TEST(test_coverage)
{
    full_plugin *p = malloc(sizeof *p);
    ck_assert_ptr_nonnull(p);
    full_fill(p);

    size_t ncap = 0;
    const char *const *caps = ah_router_capabilities(&ncap);
    ck_assert_uint_eq(ncap, 11);
    ck_assert_str_eq(caps[0], "streaming");
    ck_assert_str_eq(caps[10], "postings");
    int sum = 0;
    for (size_t i = 0; i < ncap; i++) {
        int served = -1, total = -1;
        ah_router_coverage(&p->d, caps[i], &served, &total);
        ck_assert_int_gt(total, 0);
        ck_assert_int_eq(served, total);
        sum += total;
    }
    ck_assert_int_eq(sum, (int)NCONTRACT);

    int served, total;
    ah_router_coverage(&p->d, "streaming", &served, &total);
    ck_assert_int_eq(total, 3);
    ah_router_coverage(&p->d, "onboarding", &served, &total);
    ck_assert_int_eq(total, 5);

    p->onboarding.disable = NULL;
    p->onboarding.struct_size = (uint32_t)offsetof(ah_onboarding_ops, enable);
    ah_router_coverage(&p->d, "onboarding", &served, &total);
    ck_assert_int_eq(served, 2);
    ck_assert_int_eq(total, 5);

    p->d.custom_fields = NULL;
    ah_router_coverage(&p->d, "custom_fields", &served, &total);
    ck_assert_int_eq(served, 0);
    ck_assert_int_eq(total, 3);

    ah_router_coverage(NULL, "jobs", &served, &total);
    ck_assert_int_eq(served, 0);
    ck_assert_int_eq(total, 5);

    ah_router_coverage(&p->d, "teleportation", &served, &total);
    ck_assert_int_eq(served, 0);
    ck_assert_int_eq(total, 0);
    free(p);
}
END_TEST

static Suite *router_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_every_topic_resolves);
    tcase_add_test(tc, test_topic_table);
    tcase_add_test(tc, test_unknown_topic);
    tcase_add_test(tc, test_null_table_and_slot);
    tcase_add_test(tc, test_older_plugin_tables);
    tcase_add_test(tc, test_coverage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(router_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
