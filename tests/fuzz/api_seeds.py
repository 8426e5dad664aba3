#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of the provider-answer targets (fuzz_net.h's
format: answers "STATUS BODY" separated by 0x1e, taken in turn by the
target's requests). The answers are shaped as the simulators of tests/sim/
give them (careerbuilder.c, linkedin.c, topcv.c); each seed is a whole
scenario of the target's operation sequence, in request order (see
AH_FUZZ_SHOW=1 build/tests/fuzz/replay_<target> FILE).
Run from the repository root: python3 tests/fuzz/api_seeds.py"""
import json
import os

RS = b'\x1e'


def ans(status, body=''):
    """One answer; status None: no answer ('?' as body: after sending)."""
    if status is None:
        return body.encode()
    b = body if isinstance(body, str) else json.dumps(body, separators=(',', ':'))
    return str(status).encode() + b' ' + b.encode()


def write(target, name, *answers):
    d = os.path.join('tests/fuzz/corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(RS.join(ans(*a) for a in answers))


# --- CareerBuilder: PUT answers a JSON string, GET a JSON array of statuses
# (100 a page), errors {"errors":[{"field","message"}]}.
# Requests: put (PUT), settle (GET read back), get (GET pages), get since,
# query by emails (GET per email), query by requisition, push (PUT).
st = {"account": "AAAA_1234", "candidate_email": "ann@example.com", "vendor_key": "vk",
      "client": "cl", "requisition_id": "123", "level_id": "5001", "status": "Interviewing",
      "status_date": "2024-05-02T09:00:00Z", "status_level": "application",
      "status_detail": "2: active"}
st2 = {k: v for k, v in st.items() if k != "requisition_id"}
st2.update(status="New", status_level="candidate", level_id="77")
C = 'careerbuilder_api'
OK = (200, '"Created/updated status."')
write(C, 'all_ok', OK, (200, [st]), (200, [st, st2]), (200, [st]), (200, [st]), (200, [st2]),
      (200, [st, st2]), OK)
write(C, 'get_pages', OK, (200, []), (200, [st] * 2), (200, [st2] * 2), (200, []))
write(C, 'put_lost_read_back', (502, ''), (200, [st]), (None, '?'), (200, []))
write(C, 'put_unknown_absent', (504, 'gateway'), (200, []), (500, '{}'), (200, [st2]))
write(C, 'refused', (400, {"errors": [{"field": "status_date", "message": "Invalid date"}]}),
      (422, {"message": "bad status"}), (400, {"errors": "x"}), (404, ''))
write(C, 'auth_and_limits', (401, {"errors": [{"message": "invalid token"}]}), (401, ''),
      (429, {"errors": [{"message": "Too many requests"}]}), (503, 'down'), (None, ''))
write(C, 'bad_bodies', (200, '<html>oops</html>'), (200, [{"status": 1, "status_date": None,
      "candidate_email": []}, "x", 3]), (200, '{"a":'), (200, ''), (200, '"Created/upd'),
      (200, {"x": 1}))

# --- LinkedIn (tests/sim/linkedin.c): the customer application with its
# credentials and key, apps by uniqueForeignId as {"elements":[...]},
# batch answers {"errors":{key:...},"results":{key:...},"statuses":{...}}
# keyed by the integration's compound key, errors {"status","message"}.
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
L = 'linkedin_api'
write(L, 'all_ok', (201, app), (200, {"elements": [app]}), (200, {}), enabled, got, enabled,
      got, got, got)
write(L, 'provision_found', (None, '?'), (200, {"elements": [app]}), (200, {"elements": []}),
      (204, ''))
write(L, 'provision_refused', (400, {"status": 400, "message": "Invalid validJsSdkDomains"}),
      (409, {"status": 409, "message": "uniqueForeignId already exists",
             "serviceErrorCode": 100}),
      (401, {"error": "invalid_client", "error_description": "Client authentication failed"}))
write(L, 'enable_errors', (201, app), (200, {"elements": [app]}), (200, {}),
      (200, {"errors": {k1: {"status": 404, "message": "No record found"}},
             "results": {k2: {"status": 204}}}),
      (200, {"errors": {k2: {"status": 403, "message": "Not enough permissions"}},
             "results": {}, "statuses": {k2: 403}}),
      (400, {"status": 400, "code": "INVALID_INTEGRATION_CONTEXT",
             "message": "Invalid integration context"}),
      (403, {"status": 403, "serviceErrorCode": 100,
             "message": "Not enough permissions to access: atsIntegrations"}),
      (500, {"status": 500, "message": "Internal Server Error"}))
write(L, 'bad_bodies', (200, 'oops'), (201, ''), (200, '{"elements":{}}'),
      (200, '{"results":[1,2]}'), (200, {"results": {k1: 3}, "errors": {k2: "x"}}),
      (200, {"results": {"a=b": {}}}))

# --- TopCV (tests/sim/topcv.c): the employer, a job {"job":{...}}, jobs by
# reference {"jobs":[...]}, errors {"error","message"} (422 with "missing").
# Requests: configure (GET me), link (GET job 42), publish (POST), settle
# (GET by reference), update (PUT 42), settle (GET 42), list, status.
job = {"id": "1001", "state": "pending", "created_at": "2026-01-01T00:00:00Z",
       "updated_at": "2026-01-01T00:00:00Z", "reference": "atshub-1-rec_2",
       "title": "Backend Engineer", "description": "Build APIs", "requirements": "C, SQL",
       "salary": "15M", "location": "Ha Noi", "job_type": "full_time",
       "deadline": "2026-12-31", "quantity": 2}
j42 = dict(job, id="42", state="approved", reference="x")
T = 'topcv_api'
write(T, 'all_ok', (200, {"employer": {"id": "emp-1", "company_name": "Acme"}}),
      (200, {"job": j42}), (201, {"job": job}), (200, {"jobs": [job]}),
      (200, {"job": dict(j42, title="Senior Backend Engineer")}),
      (200, {"job": dict(j42, title="Senior Backend Engineer")}))
write(T, 'refused', (401, {"error": "unauthorized", "message": "invalid api key"}),
      (404, {"error": "not_found", "message": "no such job"}),
      (422, {"error": "validation_failed", "message": "required fields are missing",
             "missing": ["salary", "deadline"]}),
      (429, {"error": "rate_limited"}), (500, ''), (None, ''))
write(T, 'lost_then_found', (200, {"employer": {}}), (200, {"job": j42}), (None, '?'),
      (200, {"jobs": [job]}), (504, ''), (200, {"job": dict(j42, state="rejected",
                                                                reason="salary missing")}))
write(T, 'bad_bodies', (200, '[1,2'), (200, '{"job":"x"}'), (200, '{"jobs":{}}'),
      (200, {"job": {"id": 1e87, "state": [], "title": None}}), (200, {"jobs": [1, "x"]}))
