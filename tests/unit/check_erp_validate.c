/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ERP plugin's pure parts, compiled in directly: field validation and
 * normalisation (erp_validate.c), the trusted-IP matcher (erp_ip.c) and the
 * envelope (erp_envelope.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "erp.h"

/* ---- enums ------------------------------------------------------------- */

START_TEST(test_enum_spellings)
{
    static const char *const in[][2] = {
        {"full-time", "FULL_TIME"}, {"Full Time", "FULL_TIME"}, {"FULL_TIME", "FULL_TIME"},
        {"fulltime", "FULL_TIME"},  {"part_time", "PART_TIME"}, {"part-time", "PART_TIME"},
        {" contract ", "CONTRACT"}, {"Internship", "INTERNSHIP"}, {"faculty", "FACULTY"},
        {"temporary", "TEMPORARY"},
    };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        const char *got = erp_enum_normalise(in[i][0], erp_job_types);
        ck_assert_msg(got != NULL && strcmp(got, in[i][1]) == 0, "%s", in[i][0]);
    }
    ck_assert_str_eq(erp_enum_normalise("hybrid", erp_workplace_types), "HYBRID");
    ck_assert_str_eq(erp_enum_normalise("on-site", erp_workplace_types), "ON_SITE");
    ck_assert_str_eq(erp_enum_normalise("On Site", erp_workplace_types), "ON_SITE");
    ck_assert_str_eq(erp_enum_normalise("onsite", erp_workplace_types), "ON_SITE");
    ck_assert_str_eq(erp_enum_normalise("Remote", erp_workplace_types), "REMOTE");
    ck_assert_str_eq(erp_enum_normalise("archived", erp_statuses), "ARCHIVED");
    static const char *const bad[] = {"", "  ", "full", "full--time x", "gig", "FULL_TIME_",
                                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(erp_enum_normalise(bad[i], erp_job_types) == NULL, "%s", bad[i]);
    ck_assert_ptr_null(erp_enum_normalise("DELETED", erp_statuses));
    ck_assert_ptr_null(erp_enum_normalise("remote", erp_job_types));
}
END_TEST

/* ---- URLs, dates, keys ----------------------------------------------- */

START_TEST(test_urls)
{
    static const char *const good[] = {
        "https://careers.yourcompany.com/job/12345", "http://a.b", "HTTPS://EXAMPLE.COM",
        "https://example.com:8443/x?y=1#z", "http://127.0.0.1/", "https://[::1]:8080/apply",
        "https://xn--mgbh0fb.example/", "https://example.com?x", "https://host_name.local/",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(erp_url_valid(good[i]), "%s", good[i]);
    static const char *const bad[] = {
        "", "careers.example.com/job", "ftp://example.com/", "https://", "https:///path",
        "https://exa mple.com/", "https://example.com/a b", "https://user:pw@example.com/",
        "https://example.com:0/", "https://example.com:99999/", "https://example.com:/",
        "https://example.com:8a/", "https://.example.com/", "https://-example.com/",
        "https://exa..mple.com/", "https://[::1/", "https://[]/", "https://[zz]/",
        "javascript:alert(1)", "https://example.com/\t", "mailto:a@b.c",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!erp_url_valid(bad[i]), "%s", bad[i]);
}
END_TEST

START_TEST(test_dates)
{
    ck_assert(erp_date_valid("2025-12-31"));
    ck_assert(erp_date_valid("2024-02-29"));
    ck_assert(erp_date_valid("2000-02-29"));
    ck_assert(!erp_date_valid("1900-02-29"));
    ck_assert(!erp_date_valid("2025-02-29"));
    ck_assert(!erp_date_valid("2025-04-31"));
    ck_assert(!erp_date_valid("2025-13-01"));
    ck_assert(!erp_date_valid("2025-00-10"));
    ck_assert(!erp_date_valid("2025-01-00"));
    ck_assert(!erp_date_valid("2025-1-01"));
    ck_assert(!erp_date_valid("2025/01/01"));
    ck_assert(!erp_date_valid("31-12-2025"));
    ck_assert(!erp_date_valid("2025-12-31T00:00:00Z"));
    ck_assert(!erp_date_valid("+025-12-31"));
    ck_assert(!erp_date_valid(""));
}
END_TEST

START_TEST(test_title_key_and_misc)
{
    char k[64];
    erp_title_key("  Senior   Software\tENGINEER  ", k, sizeof k);
    ck_assert_str_eq(k, "senior software engineer");
    erp_title_key("", k, sizeof k);
    ck_assert_str_eq(k, "");
    erp_title_key("abcdefgh", k, 4);
    ck_assert_str_eq(k, "abc");
    ck_assert(erp_status_open("DRAFT") && erp_status_open("PUBLISHED"));
    ck_assert(!erp_status_open("CLOSED") && !erp_status_open("ARCHIVED") && !erp_status_open(NULL));
    ck_assert(erp_prefix_valid("KAAUH") && erp_prefix_valid("A-1_b"));
    ck_assert(!erp_prefix_valid("") && !erp_prefix_valid(NULL) && !erp_prefix_valid("A B") &&
              !erp_prefix_valid("ABCDEFGHIJKLMNOPQ"));
}
END_TEST

/* ---- bodies -------------------------------------------------------------- */

static cJSON *ok_body(erp_op op, const char *json)
{
    cJSON *b = cJSON_Parse(json), *out = NULL;
    ck_assert_ptr_nonnull(b);
    erp_error e;
    int rc = erp_validate_job(b, op, &out, &e);
    ck_assert_msg(rc == 0, "%s: %s %s", json, e.code, e.message);
    cJSON_Delete(b);
    return out;
}

static void bad_body(erp_op op, const char *json, const char *code, const char *field)
{
    cJSON *b = cJSON_Parse(json), *out = NULL;
    ck_assert_ptr_nonnull(b);
    erp_error e;
    ck_assert_int_eq(erp_validate_job(b, op, &out, &e), -1);
    ck_assert_ptr_null(out);
    ck_assert_msg(strcmp(e.code, code) == 0, "%s: want %s got %s (%s)", json, code, e.code, e.message);
    ck_assert_str_eq(e.field, field);
    ck_assert_int_eq(e.status, 400);
    cJSON_Delete(b);
}

static const char *s(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

START_TEST(test_create_body)
{
    cJSON *o = ok_body(ERP_OP_CREATE,
                       "{\"action\":\"create_job\",\"source_name\":\"Main_ERP\",\"title\":\" T \","
                       "\"application_url\":\" https://a.example/x \",\"job_type\":\"part-time\","
                       "\"description\":\"  keep  \",\"department\":\"\",\"benefits\":null,\"zzz\":1}");
    ck_assert_str_eq(s(o, "title"), "T");
    ck_assert_str_eq(s(o, "application_url"), "https://a.example/x");
    ck_assert_str_eq(s(o, "job_type"), "PART_TIME");
    ck_assert_str_eq(s(o, "workplace_type"), "ON_SITE");
    ck_assert_str_eq(s(o, "location_country"), "United States");
    ck_assert_str_eq(s(o, "description"), "  keep  ");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "department")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "benefits")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(o, "auto_publish")));
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "zzz"));
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "action"));
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "source_name"));
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "status"));
    cJSON_Delete(o);

#define C "\"action\":\"create_job\",\"source_name\":\"S\""
    bad_body(ERP_OP_CREATE, "{\"source_name\":\"S\"}", "MISSING_FIELD", "action");
    bad_body(ERP_OP_CREATE, "{" C ",\"title\":null,\"application_url\":\"http://a.b\"}", "MISSING_FIELD", "title");
    bad_body(ERP_OP_CREATE, "{" C ",\"title\":true,\"application_url\":\"http://a.b\"}", "INVALID_TYPE", "title");
    bad_body(ERP_OP_CREATE, "{" C ",\"title\":\"t\",\"application_url\":\"http://a.b\",\"auto_publish\":\"yes\"}",
             "INVALID_TYPE", "auto_publish");
    bad_body(ERP_OP_CREATE, "{" C ",\"title\":\"t\",\"application_url\":\"http://a.b\",\"location_city\":[]}",
             "INVALID_TYPE", "location_city");
    bad_body(ERP_OP_CREATE, "{" C ",\"title\":\"t\",\"application_url\":\"http://a.b\",\"salary_range\":5}",
             "INVALID_TYPE", "salary_range");
    bad_body(ERP_OP_CREATE, "{\"action\":\"create\",\"source_name\":\"S\"}", "INVALID_ACTION", "action");
#undef C
}
END_TEST

START_TEST(test_update_body)
{
    cJSON *o = ok_body(ERP_OP_UPDATE,
                       "{\"action\":\"update_job\",\"source_name\":\"S\",\"job_id\":\" KAAUH-2025-0001 \","
                       "\"salary_range\":\"SAR 20,000 - 28,000\",\"status\":\"published\"}");
    ck_assert_str_eq(s(o, "job_id"), "KAAUH-2025-0001");
    ck_assert_str_eq(s(o, "status"), "PUBLISHED");
    ck_assert_str_eq(s(o, "salary_range"), "SAR 20,000 - 28,000");
    /* Only what was sent: no defaults on update. */
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "job_type"));
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "title"));
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "auto_publish"));
    cJSON_Delete(o);
    bad_body(ERP_OP_UPDATE, "{\"action\":\"update_job\",\"source_name\":\"S\"}", "MISSING_FIELD", "job_id");
    bad_body(ERP_OP_UPDATE, "{\"action\":\"update_job\",\"source_name\":\"S\",\"job_id\":\"J\",\"auto_publish\":false}",
             "INVALID_FIELD", "auto_publish");
    bad_body(ERP_OP_UPDATE, "{\"action\":\"update_job\",\"source_name\":\"S\",\"job_id\":\"J\",\"status\":\"OPEN\"}",
             "INVALID_TYPE", "status");
    bad_body(ERP_OP_UPDATE, "{\"action\":\"update_job\",\"source_name\":\"S\",\"job_id\":\"J\",\"title\":\"\"}",
             "MISSING_FIELD", "title");
    bad_body(ERP_OP_UPDATE, "{\"action\":\"update_job\",\"source_name\":\"S\",\"job_id\":\"J\",\"application_deadline\":\"2026-02-29\"}",
             "INVALID_DATE", "application_deadline");
    bad_body(ERP_OP_UPDATE, "{\"action\":\"create_job\",\"source_name\":\"S\",\"job_id\":\"J\"}", "INVALID_ACTION", "action");
    erp_error e;
    cJSON *arr = cJSON_Parse("[]"), *out = NULL;
    ck_assert_int_eq(erp_validate_job(arr, ERP_OP_UPDATE, &out, &e), -1);
    ck_assert_str_eq(e.code, "INVALID_JSON");
    cJSON_Delete(arr);
}
END_TEST

/* ---- trusted IPs ----------------------------------------------------------- */

START_TEST(test_ip_matching)
{
    int bad = -1;
    ck_assert(erp_ip_allowed("127.0.0.1", "127.0.0.1", &bad));
    ck_assert_int_eq(bad, 0);
    ck_assert(erp_ip_allowed("192.168.1.100,10.0.0.50", "10.0.0.50", NULL));
    ck_assert(!erp_ip_allowed("192.168.1.100,10.0.0.50", "10.0.0.51", NULL));
    ck_assert(erp_ip_allowed(" 10.0.0.0/8 ", "10.255.1.2", NULL));
    ck_assert(!erp_ip_allowed("10.0.0.0/8", "11.0.0.1", NULL));
    ck_assert(erp_ip_allowed("192.168.1.0/25", "192.168.1.127", NULL));
    ck_assert(!erp_ip_allowed("192.168.1.0/25", "192.168.1.128", NULL));
    ck_assert(erp_ip_allowed("10.1.2.3/8", "10.9.9.9", NULL)); /* host bits ignored */
    ck_assert(erp_ip_allowed("0.0.0.0/0", "8.8.8.8", NULL));
    ck_assert(!erp_ip_allowed("0.0.0.0/0", "::1", NULL));
    ck_assert(erp_ip_allowed("::1", "::1", NULL));
    ck_assert(erp_ip_allowed("2001:db8::/32", "2001:db8:ffff::1", NULL));
    ck_assert(!erp_ip_allowed("2001:db8::/32", "2001:db9::1", NULL));
    ck_assert(erp_ip_allowed("fe80::/10", "febf::1", NULL));
    ck_assert(!erp_ip_allowed("fe80::/10", "fec0::1", NULL));
    ck_assert(erp_ip_allowed("::/0", "2a00::1", NULL));
    ck_assert(!erp_ip_allowed("::/0", "127.0.0.1", NULL));
    /* An IPv4-mapped client is its IPv4 address. */
    ck_assert(erp_ip_allowed("127.0.0.1", "::ffff:127.0.0.1", NULL));
    /* Malformed entries never match and are counted. */
    ck_assert(!erp_ip_allowed("localhost, 300.1.1.1, 10.0.0.0/33, 10.0.0.0/, 10.0.0.0/x, ::1/129",
                              "127.0.0.1", &bad));
    ck_assert_int_eq(bad, 6);
    ck_assert(erp_ip_allowed("garbage,,127.0.0.1, ", "127.0.0.1", &bad));
    ck_assert_int_eq(bad, 1);
    ck_assert(!erp_ip_allowed("", "127.0.0.1", &bad));
    ck_assert(!erp_ip_allowed(NULL, "127.0.0.1", &bad));
    ck_assert(!erp_ip_allowed("127.0.0.1", "", NULL));
    ck_assert(!erp_ip_allowed("127.0.0.1", "not an ip", NULL));
    ck_assert(erp_ip_entry_valid(" 10.0.0.0/8 "));
    ck_assert(erp_ip_entry_valid("::1/128"));
    ck_assert(!erp_ip_entry_valid("10.0.0.0/8/8"));
    ck_assert(!erp_ip_entry_valid("10.0.0.0/0008"));
    ck_assert(!erp_ip_entry_valid(""));
}
END_TEST

/* ---- envelope ------------------------------------------------------------ */

START_TEST(test_envelope)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "job_id", "X");
    cJSON *o = erp_env_success("Job created successfully", d, 0.31996);
    char *t = cJSON_PrintUnformatted(o);
    ck_assert_str_eq(t, "{\"status\":\"success\",\"message\":\"Job created successfully\","
                        "\"data\":{\"job_id\":\"X\"},\"processing_time\":0.32}");
    free(t);
    cJSON_Delete(o);
    o = erp_env_error("bad", "MISSING_FIELD", "title", 0.000001);
    t = cJSON_PrintUnformatted(o);
    ck_assert_str_eq(t, "{\"status\":\"error\",\"message\":\"bad\",\"error_code\":\"MISSING_FIELD\","
                        "\"field\":\"title\",\"processing_time\":0.0001}");
    free(t);
    cJSON_Delete(o);
    o = erp_env_error("bad", "INVALID_JSON", "", 0);
    ck_assert_ptr_null(cJSON_GetObjectItem(o, "field"));
    cJSON_Delete(o);
}
END_TEST

static Suite *erp_validate_suite(void)
{
    Suite *su = suite_create("erp_validate");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, test_enum_spellings);
    tcase_add_test(tc, test_urls);
    tcase_add_test(tc, test_dates);
    tcase_add_test(tc, test_title_key_and_misc);
    tcase_add_test(tc, test_create_body);
    tcase_add_test(tc, test_update_body);
    tcase_add_test(tc, test_ip_matching);
    tcase_add_test(tc, test_envelope);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(erp_validate_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
