"""Tests of the emulator's users/update and users/bulkUpdate (emulator/emu_users.py), through HTTP.

Run: /usr/bin/python3 -m pytest -q test/emulator
"""

import pytest

from test_emulator import EMAIL, FAILED_KEYS, HYBRID, USERID, Emulator


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    emulator = Emulator(tmp_path_factory.mktemp("emu_users"))
    yield emulator
    assert emulator.stop() == 0


@pytest.fixture(autouse=True)
def clean(emu):
    assert emu.admin("POST", "reset", {"faults": True})[0] == 200


def bulk(emu, users, key=HYBRID, **extra):
    return emu.api("POST", "/api/users/bulkUpdate", dict({"users": users}, **extra), key)


def profile(emu, key, **ident):
    query = "&".join("%s=%s" % kv for kv in ident.items())
    status, body = emu.admin("GET", "users?api_key=%s&%s" % (key, query))
    assert status == 200
    return body["users"]


def failures(result, success, fail):
    assert (result["successCount"], result["failCount"]) == (success, fail), result
    assert sorted(result["failedUpdates"]) == sorted(FAILED_KEYS)
    return {k: v for k, v in result["failedUpdates"].items() if v}


def test_bulk_update_creates_and_merges_profiles(emu):
    status, result, _ = bulk(emu, [{"email": "a@example.com", "userId": "a1",
                                    "dataFields": {"plan": "pro", "n": 1, "prefs": {"x": True}}},
                                   {"userId": "b1", "dataFields": {"plan": "free"}}])
    assert status == 200 and failures(result, 2, 0) == {}
    assert sorted(result["createdFields"]) == ["n", "plan", "prefs", "prefs.x"]
    # Missing fields are kept; an object is replaced unless mergeNestedObjects.
    bulk(emu, [{"userId": "a1", "dataFields": {"n": 2, "prefs": {"y": 1}}}])
    assert profile(emu, HYBRID, userId="a1")[0]["dataFields"] == {"plan": "pro", "n": 2, "prefs": {"y": 1}}
    bulk(emu, [{"userId": "a1", "dataFields": {"prefs": {"z": 2}}, "mergeNestedObjects": True}])
    assert profile(emu, HYBRID, userId="a1")[0]["dataFields"]["prefs"] == {"y": 1, "z": 2}
    assert profile(emu, HYBRID, userId="b1")[0]["email"] is None


def test_identity_per_project_type(emu):
    # Email-based: a userId alone needs an existing user, or preferUserId (a placeholder email).
    status, result, _ = bulk(emu, [{"userId": "solo"}], key=EMAIL)
    assert failures(result, 0, 1) == {"notFoundUserIds": ["solo"]}
    status, result, _ = bulk(emu, [{"userId": "solo", "preferUserId": True}], key=EMAIL)
    assert failures(result, 1, 0) == {}
    assert profile(emu, EMAIL, userId="solo")[0]["email"].endswith("@placeholder.email")
    # Email wins in email-based projects: the userId is overwritten.
    bulk(emu, [{"email": "e@example.com", "userId": "first"}], key=EMAIL)
    bulk(emu, [{"email": "e@example.com", "userId": "second"}], key=EMAIL)
    assert profile(emu, EMAIL, email="e@example.com")[0]["userId"] == "second"
    # Hybrid: an email held by another userId is a conflict.
    bulk(emu, [{"email": "h@example.com", "userId": "h1"}])
    status, result, _ = bulk(emu, [{"email": "h@example.com", "userId": "h2"}])
    assert failures(result, 0, 1) == {"conflictEmails": ["h@example.com"], "conflictUserIds": ["h2"]}
    # UserID-based: the email is a plain field, shared freely.
    bulk(emu, [{"email": "s@example.com", "userId": "u1"}, {"email": "s@example.com", "userId": "u2"}], key=USERID)
    assert len(profile(emu, USERID, email="s@example.com")) == 2


def test_failure_arrays(emu):
    emu.admin("POST", "forget", {"api_key": HYBRID, "emails": ["gone@example.com"], "userIds": ["gone"]})
    status, result, _ = bulk(emu, [
        {"email": "bad@"}, {"userId": "trailing "}, {"email": "gone@example.com"}, {"userId": "gone"},
        {"userId": "long", "dataFields": {"text": "x" * 40000}}, {"email": "fine@example.com"}])
    assert status == 200
    assert failures(result, 1, 5) == {"invalidEmails": ["bad@"], "invalidUserIds": ["trailing "],
                                      "forgottenEmails": ["gone@example.com"], "forgottenUserIds": ["gone"],
                                      "invalidDataUserIds": ["long"]}
    assert profile(emu, HYBRID, userId="long") == []


def test_type_mismatch_refuses_the_whole_request(emu):
    bulk(emu, [{"userId": "t1", "dataFields": {"score": 1}}])
    status, result, _ = bulk(emu, [{"userId": "t2", "dataFields": {"score": 2}},
                                   {"userId": "t3", "dataFields": {"score": "high"}}])
    assert status == 400 and result["code"] == "RequestFieldsTypesMismatched", result
    error = result["params"]["validationErrors"]["score"]
    assert error["expectedType"] == "number" and error["incomingTypes"] == ["string"]
    assert profile(emu, HYBRID, userId="t2") == []      # nothing applied
    # Two rows of one request disagreeing is a mismatch too.
    status, result, _ = bulk(emu, [{"userId": "t4", "dataFields": {"fresh": 1}},
                                   {"userId": "t5", "dataFields": {"fresh": "one"}}])
    assert status == 400 and "fresh" in result["params"]["validationErrors"]
    # users/update refuses the same way.
    status, result, _ = emu.api("POST", "/api/users/update", {"userId": "t1", "dataFields": {"score": "x"}})
    assert status == 400 and result["code"] == "RequestFieldsTypesMismatched"


def test_bad_bodies(emu):
    status, result, _ = bulk(emu, [])
    assert status == 400 and result["code"] == "InvalidEmailAddressError"
    status, result, _ = emu.api("POST", "/api/users/bulkUpdate", {"users": [{"email": 5}]})
    assert status == 400 and result["code"] == "BadJsonBody" and "obj.users[0].email" in result["params"]
    status, result, _ = emu.api("POST", "/api/users/bulkUpdate", {"users": [{"dataFields": {}}]})
    assert status == 400 and result["code"] == "BadParams"
    status, result, _ = emu.api("POST", "/api/users/bulkUpdate", {"users": [{"email": "k@example.com"}]},
                                key="wrong")
    assert status == 401


def test_body_cap(emu):
    big = {"userId": "big", "dataFields": {"items": ["y" * 1000] * 4000}}   # over 4,000,000 bytes
    status, result, _ = bulk(emu, [big])
    assert status == 413 and result["code"] == "BatchTooLarge"
    fits = {"userId": "fits", "dataFields": {"items": ["y" * 1000] * 3900}}
    status, result, _ = bulk(emu, [fits])
    assert status == 200 and result["successCount"] == 1


def test_users_update_single(emu):
    status, result, _ = emu.api("POST", "/api/users/update", {"email": "one@example.com", "dataFields": {"a": 1}})
    assert (status, result) == (200, {"msg": "", "code": "Success", "params": None})
    status, result, _ = emu.api("POST", "/api/users/update", {"email": "bad@"})
    assert status == 400 and result["code"] == "InvalidEmailAddressError"
    emu.admin("POST", "forget", {"api_key": HYBRID, "emails": ["one@example.com"]})
    status, result, _ = emu.api("POST", "/api/users/update", {"email": "one@example.com"})
    assert status == 409


def test_faults_scripted_answers_and_rate_limits(emu):
    emu.set_faults({"rules": [{"kind": "status", "endpoint": "bulk_update_users", "status": 200,
                               "body": {"successCount": 0, "failCount": 1}, "next": 1},
                              {"kind": "error_500", "endpoint": "update_user", "next": 1}]})
    status, result, _ = bulk(emu, [{"email": "s@example.com"}])
    assert (status, result) == (200, {"successCount": 0, "failCount": 1})
    assert profile(emu, HYBRID, email="s@example.com") == []    # the scripted answer touched nothing
    assert emu.api("POST", "/api/users/update", {"email": "s@example.com"})[0] == 500
    emu.set_faults({"rate_limits": [{"endpoint": "bulk_update_users", "rate": 5, "burst": 5}]})
    statuses = [bulk(emu, [{"email": "r%d@example.com" % i}])[0] for i in range(8)]
    assert statuses[:5] == [200] * 5 and 429 in statuses[5:]


def test_realistic_rate_limits_include_bulk_update(tmp_path):
    emulator = Emulator(tmp_path, "--realistic-rate-limits")
    try:
        limits = emulator.admin("GET", "faults")[1]["rate_limits"]
        assert {"endpoint": "bulk_update_users", "rate": 5, "burst": 5, "limited": 0} in limits, limits
    finally:
        assert emulator.stop() == 0
