#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of the provider-answer targets (fuzz_net.h's
format: the first byte chooses the target's operation, the rest is answers
"STATUS BODY" separated by 0x1e, taken in turn by that operation's
requests). The answers are shaped as the simulators of tests/sim/ give them
(careerbuilder.c, linkedin.c, topcv.c), plus refusals, lost answers and
bodies that are not what the plugin expects: one seed per operation and
scenario (see AH_FUZZ_SHOW=1 build/tests/fuzz/replay_<target> FILE).
Run from the repository root: python3 tests/fuzz/api_seeds.py (it replaces
the seeds it writes, and leaves the other files, crash-* ones included)."""
import json
import os

RS = b'\x1e'


def ans(status, body=''):
    """One answer; status None: no answer ('?' as body: after sending)."""
    if status is None:
        return body.encode()
    b = body if isinstance(body, str) else json.dumps(body, separators=(',', ':'))
    return str(status).encode() + b' ' + b.encode()


def write(target, op, name, *answers):
    """A seed of operation number `op` (the harness's enum) of `target`."""
    d = os.path.join('tests/fuzz/corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(bytes([op]) + RS.join(ans(*a) for a in answers))


# --- CareerBuilder: PUT answers a JSON string, GET a JSON array of statuses
# (100 a page), errors {"errors":[{"field","message"}]}.
# Operations (fuzz_careerbuilder_api.c): 0 put (PUT), 1 settle (GET read
# back), 2 get (GET pages of 2), 3 get since, 4 query by emails, 5 query by
# requisition, 6 push (PUT).
st = {"account": "AAAA_1234", "candidate_email": "ann@example.com", "vendor_key": "vk",
      "client": "cl", "requisition_id": "123", "level_id": "5001", "status": "Interviewing",
      "status_date": "2024-05-02T09:00:00Z", "status_level": "application",
      "status_detail": "2: active"}
st2 = {k: v for k, v in st.items() if k != "requisition_id"}
st2.update(status="New", status_level="candidate", level_id="77")
C = 'careerbuilder_api'
OK = (200, '"Created/updated status."')
ERRS = (400, {"errors": [{"field": "status_date", "message": "Invalid date"}]})
write(C, 0, 'put_ok', OK)
write(C, 0, 'put_lost_read_back', (502, ''), (200, [st]))
write(C, 0, 'put_unknown_absent', (504, 'gateway'), (200, []))
write(C, 0, 'put_unknown_unread', (None, '?'), (500, '{}'))
write(C, 0, 'put_refused', ERRS)
write(C, 0, 'put_auth', (401, {"errors": [{"message": "invalid token"}]}), (401, ''))
write(C, 0, 'put_html', (200, '<html>oops</html>'))
write(C, 0, 'put_truncated', (200, '"Created/upd'))
write(C, 1, 'settle_found', (200, [st]))
write(C, 1, 'settle_absent', (200, []))
write(C, 1, 'settle_lost', (None, '?'))
write(C, 1, 'settle_unknown', (500, '{}'))
write(C, 1, 'settle_refused', (422, {"message": "bad status"}))
write(C, 1, 'settle_limited', (429, {"errors": [{"message": "Too many requests"}]}))
write(C, 1, 'settle_bad', (200, [{"status": 1, "status_date": None, "candidate_email": []},
                                 "x", 3]))
write(C, 2, 'get_ok', (200, [st, st2]), (200, [st]))
write(C, 2, 'get_pages', (200, [st] * 2), (200, [st2] * 2), (200, []))
write(C, 2, 'get_empty', (200, []))
write(C, 2, 'get_refused', (400, {"errors": "x"}))
write(C, 2, 'get_down', (503, 'down'))
write(C, 2, 'get_bad', (200, '{"a":'))
write(C, 3, 'since_ok', (200, [st]))
write(C, 3, 'since_other', (200, [st2]))
write(C, 3, 'since_404', (404, ''))
write(C, 3, 'since_lost', (None, ''))
write(C, 3, 'since_empty_body', (200, ''))
write(C, 4, 'query_emails_ok', (200, [st2]), (200, [st]))
write(C, 4, 'query_emails_bad', (200, '"Created/upd'), (200, [st]))
write(C, 4, 'query_emails_lost', (200, [st]), (None, ''))
write(C, 5, 'query_req_ok', (200, [st, st2]))
write(C, 5, 'query_req_bad', (200, {"x": 1}))
write(C, 5, 'query_req_refused', ERRS)
write(C, 6, 'push_ok', OK)
write(C, 6, 'push_refused', ERRS)
write(C, 6, 'push_unknown', (502, ''), (200, [st]))
write(C, 6, 'push_lost', (None, '?'))

# --- LinkedIn (tests/sim/linkedin.c): the customer application with its
# credentials and key, apps by uniqueForeignId as {"elements":[...]},
# batch answers {"errors":{key:...},"results":{key:...},"statuses":{...}}
# keyed by the integration's compound key, errors {"status","message"}.
# Operations (fuzz_linkedin_api.c): 0 provision, 1 its settle, 2 provision
# the domains, 3 request, 4 enable, 5 its settle, 6 enable the requested,
# 7 verify the requested, 8 verify, 9 disable.
app = {"name": "atshub - Acme", "description": "atshub customer application of tenant acme",
       "uniqueForeignId": "acme", "validJsSdkDomains": ["https://ats.example.com"],
       "credentials": {"client_id": "cid-9", "client_secret": "cs-9"},
       "key": {"id": 9, "idUrn": "urn:li:developerApplication:9"}}
k1 = ("integrationContext=urn%3Ali%3Aorganization%3A1&integrationType=APPLY_WITH_LINKEDIN"
      "&tenantType=JOBS&dataProvider=ATS")
k2 = ("integrationContext=urn%3Ali%3Aorganization%3A1"
      "&integrationType=RECRUITER_SYSTEM_CONNECT_COMPANY&tenantType=RECRUITER&dataProvider=ATS")
enabled = (200, {"errors": {}, "results": {k1: {"status": 204}, k2: {"status": 204}}})
got = (200, {"errors": {}, "statuses": {k1: 200, k2: 200},
             "results": {k1: {"integrationName": "Acme jobs", "onboardingStatus": "SUCCESS"},
                         k2: {"integrationName": "Acme jobs",
                              "onboardingStatus": "REQUESTED"}}})
E400 = (400, {"status": 400, "code": "INVALID_INTEGRATION_CONTEXT",
              "message": "Invalid integration context"})
E403 = (403, {"status": 403, "serviceErrorCode": 100,
              "message": "Not enough permissions to access: atsIntegrations"})
E500 = (500, {"status": 500, "message": "Internal Server Error"})
L = 'linkedin_api'
write(L, 0, 'provision_ok', (201, app))
write(L, 0, 'provision_lost_found', (None, '?'), (200, {"elements": [app]}))
write(L, 0, 'provision_lost_absent', (504, ''), (200, {"elements": []}))
write(L, 0, 'provision_refused', (400, {"status": 400, "message": "Invalid validJsSdkDomains"}))
write(L, 0, 'provision_bad', (200, 'oops'), (201, ''))
write(L, 1, 'settle_provision_found', (200, {"elements": [app]}))
write(L, 1, 'settle_provision_none', (200, {"elements": []}))
write(L, 1, 'settle_provision_409', (409, {"status": 409, "message":
                                          "uniqueForeignId already exists",
                                          "serviceErrorCode": 100}))
write(L, 1, 'settle_provision_bad', (200, '{"elements":{}}'))
write(L, 2, 'domains_ok', (200, {}))
write(L, 2, 'domains_204', (204, ''))
write(L, 2, 'domains_401', (401, {"error": "invalid_client",
                                  "error_description": "Client authentication failed"}), (None, ''))
write(L, 2, 'domains_bad', (200, '{"results":[1,2]}'))
write(L, 3, 'request')
write(L, 4, 'enable_ok', enabled)
write(L, 4, 'enable_partial', (200, {"errors": {k1: {"status": 404, "message": "No record found"}},
                                     "results": {k2: {"status": 204}}}))
write(L, 4, 'enable_bad', (200, {"results": {k1: 3}, "errors": {k2: "x"}}))
write(L, 4, 'enable_lost', (None, '?'))
write(L, 4, 'enable_500', E500)
write(L, 5, 'settle_enable_ok', got)
write(L, 5, 'settle_enable_403', (200, {"errors": {k2: {"status": 403,
                                                        "message": "Not enough permissions"}},
                                        "results": {}, "statuses": {k2: 403}}))
write(L, 5, 'settle_enable_bad', (200, {"results": {"a=b": {}}}))
write(L, 6, 'enable_requested_ok', enabled)
write(L, 6, 'enable_requested_400', E400)
write(L, 7, 'verify_requested_ok', got)
write(L, 7, 'verify_requested_403', E403)
write(L, 8, 'verify_ok', got)
write(L, 8, 'verify_500', E500)
write(L, 8, 'verify_bad', (200, '{"results":[1,2]}'))
write(L, 9, 'disable', got)

# --- TopCV (tests/sim/topcv.c): the employer, a job {"job":{...}}, jobs by
# reference {"jobs":[...]}, errors {"error","message"} (422 with "missing").
# Operations (fuzz_topcv_api.c): 0 configure (GET me), 1 link (GET job 42),
# 2 publish (POST), 3 its settle (GET by reference), 4 update (PUT 42),
# 5 its settle (GET 42), 6 list, 7 status (4 to 7 after a link of job 42).
job = {"id": "1001", "state": "pending", "created_at": "2026-01-01T00:00:00Z",
       "updated_at": "2026-01-01T00:00:00Z", "reference": "atshub-1-rec_2",
       "title": "Backend Engineer", "description": "Build APIs", "requirements": "C, SQL",
       "salary": "15M", "location": "Ha Noi", "job_type": "full_time",
       "deadline": "2026-12-31", "quantity": 2}
j42 = dict(job, id="42", state="approved", reference="x")
senior = (200, {"job": dict(j42, title="Senior Backend Engineer")})
# job 42 as the update's form left it (what a settle reads back when it was done)
updated = (200, {"job": dict(j42, title="Senior Backend Engineer", city="Ha Noi",
                             salary="20-30M VND")})
T = 'topcv_api'
write(T, 0, 'configure_ok', (200, {"employer": {"id": "emp-1", "company_name": "Acme"}}))
write(T, 0, 'configure_empty', (200, {"employer": {}}))
write(T, 0, 'configure_refused', (401, {"error": "unauthorized", "message": "invalid api key"}))
write(T, 0, 'configure_limited', (429, {"error": "rate_limited"}))
write(T, 0, 'configure_bad', (200, '[1,2'))
write(T, 1, 'link_ok', (200, {"job": j42}))
write(T, 1, 'link_404', (404, {"error": "not_found", "message": "no such job"}))
write(T, 1, 'link_bad', (200, '{"job":"x"}'))
write(T, 1, 'link_1e87', (200, {"job": {"id": 1e87, "state": [], "title": None}}))
write(T, 2, 'publish_ok', (201, {"job": job}))
write(T, 2, 'publish_missing', (422, {"error": "validation_failed",
                                      "message": "required fields are missing",
                                      "missing": ["salary", "deadline"]}))
write(T, 2, 'publish_lost_found', (None, '?'), (200, {"jobs": [job]}))
write(T, 2, 'publish_lost_bad', (200, '{"jobs":{}}'),
      (200, {"job": {"id": 1e87, "state": [], "title": None}}))
write(T, 2, 'publish_500', (500, ''), (200, {"jobs": []}))
write(T, 3, 'settle_publish_found', (200, {"jobs": [job]}))
write(T, 3, 'settle_publish_none', (200, {"jobs": []}))
write(T, 3, 'settle_publish_504', (504, ''))
write(T, 3, 'settle_publish_bad', (200, {"jobs": [1, "x"]}))
write(T, 4, 'update_ok', senior)
write(T, 4, 'update_rejected', (200, {"job": dict(j42, state="rejected",
                                                   reason="salary missing")}))
write(T, 4, 'update_lost', (None, '?'), updated)
write(T, 4, 'update_lost_before', (502, ''), (200, {"job": j42}))
write(T, 4, 'update_refused', (422, {"error": "validation_failed", "message": "bad title"}))
write(T, 5, 'settle_update_done', updated)
write(T, 5, 'settle_update_before', (200, {"job": j42}))
write(T, 5, 'settle_update_504', (504, ''))
write(T, 6, 'list')
write(T, 7, 'status')
