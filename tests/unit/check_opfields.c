/* SPDX-License-Identifier: Apache-2.0 */
/* The operation field tables: the validator (unknown, missing, mistyped,
 * nested, limits), the load-time table check, and the descriptions. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opfields.h"

static const ah_field_spec integration[] = {
    {.name = "integrationContext", .type = AH_FIELD_STRING, .flags = AH_FIELD_REQUIRED,
     .max_size = 8},
    {.name = "integrationType", .type = AH_FIELD_STRING, .flags = AH_FIELD_REQUIRED},
    {.name = "tenantType", .type = AH_FIELD_STRING, .one_of = "JOBS|RECRUITER"},
    {.name = NULL},
};

static const ah_field_spec enable[] = {
    {.name = "integrationName", .type = AH_FIELD_STRING, .flags = AH_FIELD_REQUIRED,
     .min_size = 1, .max_size = 10},
    {.name = "integrations", .type = AH_FIELD_OBJECTS, .min_size = 1, .max_size = 2,
     .fields = integration},
    {.name = "limit", .type = AH_FIELD_INTEGER, .min = 1, .max = 500},
    {.name = "ratio", .type = AH_FIELD_NUMBER},
    {.name = "screened", .type = AH_FIELD_BOOLEAN},
    {.name = "stage_id", .type = AH_FIELD_ID, .min_size = 2, .max_size = 4},
    {.name = "tags", .type = AH_FIELD_STRINGS, .max_size = 3, .max_item = 5},
    {.name = "ids", .type = AH_FIELD_IDS},
    {.name = "values", .type = AH_FIELD_OBJECT, .min_size = 1},
    {.name = "owner", .type = AH_FIELD_OBJECT, .fields = integration},
    {.name = "anything", .type = AH_FIELD_ANY},
    {.name = NULL},
};

/* The message for `json` against `enable`, or "" when it conforms. */
static const char *check(const char *json)
{
    static char msg[512];
    cJSON *b = cJSON_Parse(json);
    ck_assert_msg(b != NULL, "bad test JSON: %s", json);
    int rc = ah_opfields_validate(enable, "onboarding.enable", b, msg, sizeof msg);
    cJSON_Delete(b);
    ck_assert_int_eq(rc == 0, msg[0] == '\0');
    return msg;
}

#define OK(json) ck_assert_str_eq(check(json), "")
#define BAD(json, want)                                                        \
    do {                                                                       \
        const char *m_ = check(json);                                          \
        ck_assert_msg(strstr(m_, want) != NULL, "%s: got '%s', want '%s'", json, m_, want); \
    } while (0)

START_TEST(test_conforming)
{
    OK("{\"integrationName\":\"x\"}");
    OK("{\"integrationName\":\"0123456789\",\"integrations\":[{\"integrationContext\":\"c\","
       "\"integrationType\":\"t\",\"tenantType\":\"JOBS\"}],\"limit\":500,\"ratio\":0.5,"
       "\"screened\":false,\"stage_id\":12345678,\"tags\":[\"a\",\"bcdef\"],\"ids\":[1,\"x\"],"
       "\"values\":{\"k\":[1]},\"anything\":[{}]}");
    /* null is the same as absent */
    OK("{\"integrationName\":\"x\",\"limit\":null,\"integrations\":null}");
    /* characters, not bytes: five two-byte letters */
    OK("{\"integrationName\":\"x\",\"tags\":[\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"]}");
}
END_TEST

START_TEST(test_unknown)
{
    BAD("{\"integrationName\":\"x\",\"bogus\":1}",
        "field 'bogus' is not a field of onboarding.enable (it takes: integrationName, "
        "integrations,");
    /* the bug of issue 12: one integration flat, not in the list */
    BAD("{\"integrationName\":\"x\",\"integrationContext\":\"c\"}",
        "field 'integrationContext' is not a field of onboarding.enable");
    BAD("{\"integrationName\":\"x\",\"integrations\":[{\"integrationContext\":\"c\","
        "\"integrationType\":\"t\",\"extra\":1}]}",
        "field 'integrations[0].extra' is not a field here (allowed: integrationContext, "
        "integrationType, tenantType)");
    BAD("{\"integrationName\":\"x\",\"integrationName\":\"y\"}", "field 'integrationName' is given twice");
}
END_TEST

START_TEST(test_missing)
{
    BAD("{}", "field 'integrationName' is required");
    BAD("{\"integrationName\":null}", "field 'integrationName' is required");
    BAD("{\"integrationName\":\"x\",\"integrations\":[{\"integrationContext\":\"c\","
        "\"integrationType\":\"t\"},{\"integrationContext\":\"c\"}]}",
        "field 'integrations[1].integrationType' is required");
    BAD("{\"integrationName\":\"x\",\"owner\":{\"integrationType\":\"t\"}}",
        "field 'owner.integrationContext' is required");
    char msg[128];
    ck_assert_int_eq(ah_opfields_validate(enable, "t", NULL, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "field 'integrationName' is required");
}
END_TEST

START_TEST(test_mistyped)
{
    BAD("{\"integrationName\":5}", "field 'integrationName' must be a string");
    BAD("{\"integrationName\":\"x\",\"integrations\":{\"integrationContext\":\"c\"}}",
        "field 'integrations' must be an array");
    BAD("{\"integrationName\":\"x\",\"integrations\":[\"c\"]}",
        "field 'integrations[0]' must be an object");
    BAD("{\"integrationName\":\"x\",\"integrations\":[{\"integrationContext\":1,"
        "\"integrationType\":\"t\"}]}",
        "field 'integrations[0].integrationContext' must be a string");
    BAD("{\"integrationName\":\"x\",\"limit\":\"5\"}", "field 'limit' must be an integer");
    BAD("{\"integrationName\":\"x\",\"limit\":1.5}", "field 'limit' must be an integer");
    BAD("{\"integrationName\":\"x\",\"limit\":1e300}", "field 'limit' must be an integer");
    BAD("{\"integrationName\":\"x\",\"ratio\":true}", "field 'ratio' must be a number");
    BAD("{\"integrationName\":\"x\",\"screened\":\"yes\"}", "field 'screened' must be true or false");
    BAD("{\"integrationName\":\"x\",\"stage_id\":\"\"}",
        "field 'stage_id' must be a non-empty string or an integer");
    BAD("{\"integrationName\":\"x\",\"stage_id\":2.5}",
        "field 'stage_id' must be a non-empty string or an integer");
    BAD("{\"integrationName\":\"x\",\"stage_id\":[1]}",
        "field 'stage_id' must be a non-empty string or an integer");
    BAD("{\"integrationName\":\"x\",\"tags\":\"a\"}", "field 'tags' must be an array");
    BAD("{\"integrationName\":\"x\",\"tags\":[\"a\",1]}", "field 'tags[1]' must be a string");
    BAD("{\"integrationName\":\"x\",\"ids\":[1,true]}",
        "field 'ids[1]' must be a non-empty string or an integer");
    BAD("{\"integrationName\":\"x\",\"values\":[1]}", "field 'values' must be an object");
    BAD("{\"integrationName\":\"x\",\"owner\":[]}", "field 'owner' must be an object");
    char msg[128];
    cJSON *arr = cJSON_CreateArray();
    ck_assert_int_eq(ah_opfields_validate(enable, "t", arr, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "the request body must be a JSON object");
    cJSON_Delete(arr);
}
END_TEST

START_TEST(test_limits)
{
    BAD("{\"integrationName\":\"\"}", "field 'integrationName' must not be empty");
    BAD("{\"integrationName\":\"01234567890\"}",
        "field 'integrationName' must be at most 10 characters");
    BAD("{\"integrationName\":\"x\",\"integrations\":[]}", "field 'integrations' must not be empty");
    BAD("{\"integrationName\":\"x\",\"integrations\":[{},{},{}]}",
        "field 'integrations' must have at most 2 items");
    BAD("{\"integrationName\":\"x\",\"integrations\":[{\"integrationContext\":\"123456789\","
        "\"integrationType\":\"t\"}]}",
        "field 'integrations[0].integrationContext' must be at most 8 characters");
    BAD("{\"integrationName\":\"x\",\"integrations\":[{\"integrationContext\":\"c\","
        "\"integrationType\":\"t\",\"tenantType\":\"BOTH\"}]}",
        "field 'integrations[0].tenantType' must be one of JOBS, RECRUITER");
    BAD("{\"integrationName\":\"x\",\"limit\":0}", "field 'limit' must be an integer from 1 to 500");
    BAD("{\"integrationName\":\"x\",\"limit\":501}", "field 'limit' must be an integer from 1 to 500");
    BAD("{\"integrationName\":\"x\",\"stage_id\":\"12345\"}",
        "field 'stage_id' must be at most 4 characters");
    /* An id's min_size counts as a string's does; an integer has no length. */
    BAD("{\"integrationName\":\"x\",\"stage_id\":\"1\"}",
        "field 'stage_id' must be at least 2 characters");
    OK("{\"integrationName\":\"x\",\"stage_id\":\"12\"}");
    OK("{\"integrationName\":\"x\",\"stage_id\":1}");
    BAD("{\"integrationName\":\"x\",\"tags\":[\"a\",\"b\",\"c\",\"d\"]}",
        "field 'tags' must have at most 3 items");
    BAD("{\"integrationName\":\"x\",\"tags\":[\"abcdef\"]}", "field 'tags[0]' must be at most 5 characters");
    BAD("{\"integrationName\":\"x\",\"values\":{}}", "field 'values' must not be empty");
    /* A message that does not fit is cut, never overrun. */
    char small[16];
    cJSON *b = cJSON_Parse("{}");
    ck_assert_int_eq(ah_opfields_validate(enable, "t", b, small, sizeof small), -1);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    cJSON_Delete(b);
}
END_TEST

/* --- the descriptor side ------------------------------------------------ */

static ah_result op(ah_call *call, const cJSON *body, cJSON **reply)
{
    (void)call;
    (void)body;
    (void)reply;
    return AH_OK;
}

static const ah_onboarding_ops onboarding = {
    .struct_size = sizeof(ah_onboarding_ops),
    .enable = op,
    .request = op,
};

static const ah_field_spec none[] = {{.name = NULL}};

START_TEST(test_find)
{
    ah_op_fields tables[] = {{"onboarding.enable", enable}, {"onboarding.request", none},
                             {NULL, NULL}};
    ah_plugin_descriptor d = {.struct_size = sizeof d, .name = "li", .onboarding = &onboarding,
                              .op_fields = tables};
    ck_assert_ptr_eq(ah_opfields_find(&d, "onboarding.enable"), enable);
    ck_assert_ptr_eq(ah_opfields_find(&d, "onboarding.request"), none);
    ck_assert_ptr_null(ah_opfields_find(&d, "onboarding.verify"));
    ck_assert_ptr_null(ah_opfields_find(&d, NULL));
    char err[256];
    ck_assert_int_eq(ah_opfields_check(&d, err, sizeof err), 0);
    /* A plugin built before op_fields existed: its descriptor ends before
     * the member, which must not be read. */
    d.struct_size = (uint32_t)offsetof(ah_plugin_descriptor, op_fields);
    ck_assert_ptr_null(ah_opfields_find(&d, "onboarding.enable"));
    ck_assert_int_eq(ah_opfields_check(&d, err, sizeof err), 0);
    /* No table: nothing known, nothing validated. */
    d.struct_size = sizeof d;
    d.op_fields = NULL;
    ck_assert_ptr_null(ah_opfields_find(&d, "onboarding.enable"));
    cJSON *j = ah_opfields_json(&d);
    ck_assert_ptr_nonnull(j);
    ck_assert_ptr_null(j->child);
    cJSON_Delete(j);
}
END_TEST

static void refused(ah_op_fields *tables, const char *want)
{
    ah_plugin_descriptor d = {.struct_size = sizeof d, .name = "li", .onboarding = &onboarding,
                              .op_fields = tables};
    char err[256];
    ck_assert_int_eq(ah_opfields_check(&d, err, sizeof err), -1);
    ck_assert_msg(strstr(err, want) != NULL, "got '%s', want '%s'", err, want);
}

START_TEST(test_check_tables)
{
    refused((ah_op_fields[]){{"onboarding.teleport", none}, {NULL, NULL}},
            "no bus topic 'onboarding.teleport'");
    refused((ah_op_fields[]){{"onboarding.verify", none}, {NULL, NULL}},
            "'onboarding.verify' has fields but the plugin does not serve it");
    refused((ah_op_fields[]){{"onboarding.enable", none}, {"onboarding.enable", none},
                             {NULL, NULL}},
            "'onboarding.enable' is listed twice");
    refused((ah_op_fields[]){{"onboarding.enable", NULL}, {NULL, NULL}}, "has no fields table");
    static const ah_field_spec twice[] = {{.name = "a", .type = AH_FIELD_STRING},
                                          {.name = "a", .type = AH_FIELD_INTEGER},
                                          {.name = NULL}};
    refused((ah_op_fields[]){{"onboarding.enable", twice}, {NULL, NULL}},
            "onboarding.enable: field 'a' is declared twice");
    static const ah_field_spec badtype[] = {{.name = "a", .type = (ah_field_type)99},
                                            {.name = NULL}};
    refused((ah_op_fields[]){{"onboarding.enable", badtype}, {NULL, NULL}},
            "field 'a' has unknown type 99");
    static const ah_field_spec empty[] = {{.name = "", .type = AH_FIELD_STRING}, {.name = NULL}};
    refused((ah_op_fields[]){{"onboarding.enable", empty}, {NULL, NULL}}, "empty name");
    static const ah_field_spec subs[] = {
        {.name = "a", .type = AH_FIELD_STRING, .fields = integration}, {.name = NULL}};
    refused((ah_op_fields[]){{"onboarding.enable", subs}, {NULL, NULL}},
            "field 'a' has sub-fields but holds no objects");
    static const ah_field_spec nested_bad[] = {
        {.name = "a", .type = AH_FIELD_OBJECTS, .fields = twice}, {.name = NULL}};
    refused((ah_op_fields[]){{"onboarding.enable", nested_bad}, {NULL, NULL}},
            "field 'a' is declared twice");
}
END_TEST

START_TEST(test_json_and_openapi)
{
    ah_op_fields tables[] = {{"onboarding.enable", enable}, {"onboarding.request", none},
                             {NULL, NULL}};
    ah_plugin_descriptor d = {.struct_size = sizeof d, .name = "li", .onboarding = &onboarding,
                              .op_fields = tables};
    cJSON *j = ah_opfields_json(&d);
    ck_assert_ptr_nonnull(j);
    const cJSON *e = cJSON_GetObjectItem(j, "onboarding.enable");
    ck_assert_int_eq(cJSON_GetArraySize(e), 11);
    const cJSON *in = cJSON_GetArrayItem(e, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(in, "name")->valuestring, "integrations");
    ck_assert_str_eq(cJSON_GetObjectItem(in, "type")->valuestring, "array of objects");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(in, "required")));
    ck_assert_int_eq(cJSON_GetObjectItem(in, "max_size")->valueint, 2);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(in, "fields")), 3);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "onboarding.request")), 0);
    cJSON_Delete(j);

    char *y = NULL;
    size_t n = 0;
    ck_assert_int_eq(ah_opfields_openapi(&d, &y, &n), 0);
    ck_assert_ptr_nonnull(y);
    ck_assert_uint_eq(strlen(y), n);
    ck_assert_ptr_nonnull(strstr(y, "    bus.li.onboarding.enable:\n"));
    ck_assert_ptr_nonnull(strstr(y, "      required: [integrationName]\n"));
    ck_assert_ptr_nonnull(strstr(y, "        integrations:\n"));
    ck_assert_ptr_nonnull(strstr(y, "          type: array\n"
                                    "          minItems: 1\n"
                                    "          maxItems: 2\n"
                                    "          items:\n"
                                    "            type: object\n"
                                    "            additionalProperties: false\n"
                                    "            required: [integrationContext, integrationType]\n"));
    ck_assert_ptr_nonnull(strstr(y, "enum: [JOBS, RECRUITER]"));
    ck_assert_ptr_nonnull(strstr(y, "        stage_id:\n          oneOf: [{type: string, minLength: 2, "
                                    "maxLength: 4}, {type: integer}]\n"));
    ck_assert_ptr_nonnull(strstr(y, "        ids:\n          type: array\n"));
    ck_assert_ptr_nonnull(strstr(y, "    bus.li.onboarding.request:\n"));
    ck_assert_ptr_nonnull(strstr(y, "      properties: {}\n"));
    /* A second plugin appends. */
    d.name = "li2";
    ck_assert_int_eq(ah_opfields_openapi(&d, &y, &n), 0);
    ck_assert_ptr_nonnull(strstr(y, "    bus.li.onboarding.enable:\n"));
    ck_assert_ptr_nonnull(strstr(y, "    bus.li2.onboarding.enable:\n"));
    ck_assert_uint_eq(strlen(y), n);
    free(y);
}
END_TEST

static Suite *opfields_suite(void)
{
    Suite *s = suite_create("opfields");
    TCase *tc = tcase_create("validate");
    tcase_add_test(tc, test_conforming);
    tcase_add_test(tc, test_unknown);
    tcase_add_test(tc, test_missing);
    tcase_add_test(tc, test_mistyped);
    tcase_add_test(tc, test_limits);
    suite_add_tcase(s, tc);
    tc = tcase_create("tables");
    tcase_add_test(tc, test_find);
    tcase_add_test(tc, test_check_tables);
    tcase_add_test(tc, test_json_and_openapi);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(opfields_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
