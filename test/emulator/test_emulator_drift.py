"""Tests of the emulator's getUsers (format per project type, Iterable's 5 requests a minute) and of
its drift routes (emulator/emu_drift.py), through HTTP only.

Run: /usr/bin/python3 -m pytest -q test/emulator/test_emulator_drift.py
"""

import pytest

from test_emulator import EMAIL, HYBRID, USERID, Emulator


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    e = Emulator(tmp_path_factory.mktemp("emu_drift"))
    yield e
    e.stop()


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    e = Emulator(tmp_path_factory.mktemp("emu_drift_limited"), "--realistic-rate-limits")
    yield e
    e.stop()


def get_users(emu, list_id, key=HYBRID, prefer=None):
    path = "/api/lists/getUsers?listId=%d" % list_id
    if prefer is not None:
        path += "&preferUserId=%s" % ("true" if prefer else "false")
    return emu.api("GET", path, key=key)


def requests_total(emu):
    return emu.admin("GET", "state")[1]["requests"]["total"]


# ----- getUsers ---------------------------------------------------------------------------------
def test_get_users_email_project_gives_emails_and_placeholders(emu):
    list_id = emu.create_list(EMAIL)
    status, reply, _ = emu.subscribe(list_id, [{"email": "Ann@X.io", "userId": "u1"},
                                               {"userId": "u2", "preferUserId": True}], key=EMAIL)
    assert status == 200 and reply["successCount"] == 2, reply
    status, body, headers = get_users(emu, list_id, EMAIL)
    lines = body.split("\n")
    assert status == 200 and headers["Content-Type"] == "text/plain; charset=utf-8"
    assert lines[0] == "ann@x.io" and lines[1].endswith("@placeholder.email") and lines[2:] == [""]
    # Every email-project user has an email: preferUserId gives the userId where there is one.
    assert get_users(emu, list_id, EMAIL, prefer=True)[1] == "u1\nu2\n"


def test_get_users_user_id_project(emu):
    list_id = emu.create_list(USERID)
    emu.subscribe(list_id, [{"userId": "U-1", "email": "a@x.io"}, {"userId": "U-2"}], key=USERID)
    assert get_users(emu, list_id, USERID, prefer=True)[1] == "U-1\nU-2\n"
    assert get_users(emu, list_id, USERID)[1] == "a@x.io\nU-2\n"


def test_get_users_other_projects_list_is_unknown(emu):
    list_id = emu.create_list(HYBRID)
    status, body, _ = get_users(emu, list_id, EMAIL)
    assert status == 400 and body["code"] == "BadParams" and body["msg"] == "Invalid email list id"


def test_get_users_limited_to_five_a_minute_per_project(limited):
    hybrid_list = limited.create_list(HYBRID)
    email_list = limited.create_list(EMAIL)
    for _ in range(5):
        assert get_users(limited, hybrid_list)[0] == 200
    status, body, headers = get_users(limited, hybrid_list)
    assert status == 429 and body == "Rate limit exceeded. Please try again later."
    assert headers["Content-Type"].startswith("text/plain") and "Retry-After" not in headers
    # Another project has its own five; other endpoints of the same project are not limited by it.
    assert get_users(limited, email_list, EMAIL)[0] == 200
    assert limited.api("GET", "/api/lists")[0] == 200
    state = limited.admin("GET", "state")[1]
    assert state["requests"]["by_endpoint"]["get_users"] == {"200": 6, "429": 1}


# ----- drift routes -----------------------------------------------------------------------------
def test_remove_members_behind_the_syncs_back(emu):
    list_id = emu.create_list()
    emu.subscribe(list_id, [{"email": "a@x.io"}, {"email": "b@x.io", "userId": "ub"}, {"userId": "uc"},
                            {"email": "d@x.io"}])
    before = requests_total(emu)
    status, reply = emu.admin("POST", "drift/remove",
                              {"list_id": list_id, "emails": ["A@X.io", "zz@x.io"], "userIds": ["ub", "uc", "nope"]})
    assert status == 200 and reply == {"removed": 3, "not_members": ["zz@x.io", "nope"]}
    assert get_users(emu, list_id)[1] == "d@x.io\n"
    assert requests_total(emu) == before + 1       # only the getUsers above: admin routes are not counted
    # The users stay in the project: a subscribe finds them again.
    users = emu.admin("GET", "users?api_key=%s&userId=ub" % HYBRID)[1]["users"]
    assert users == [{"email": "b@x.io", "userId": "ub", "dataFields": {}}]


def test_add_unexpected_members(emu):
    list_id = emu.create_list()
    emu.subscribe(list_id, [{"email": "a@x.io"}])
    status, reply = emu.admin("POST", "drift/add", {"list_id": list_id, "users": [
        {"email": "New@X.io"}, {"userId": "u-new"}, {"email": "a@x.io"}, {"email": "bad@"}, "x"]})
    assert status == 200
    assert reply["added"] == 3 and [f["index"] for f in reply["failed"]] == [3, 4]
    assert get_users(emu, list_id)[1] == "a@x.io\nnew@x.io\nu-new\n"
    # An unsubscribe through the API removes an added member like any other.
    status, body, _ = emu.unsubscribe(list_id, [{"email": "new@x.io"}])
    assert status == 200 and body["successCount"] == 1
    assert get_users(emu, list_id)[1] == "a@x.io\nu-new\n"


@pytest.mark.parametrize("body,status", [({}, 400), ({"list_id": "1"}, 400), ({"list_id": 999999}, 404),
                                         ({"list_id": True}, 400)])
def test_drift_routes_bad_input(emu, body, status):
    for route in ("drift/remove", "drift/add"):
        got, reply = emu.admin("POST", route, dict(body, users=[]))
        assert got == status and "error" in reply


def test_drift_routes_check_their_lists(emu):
    list_id = emu.create_list()
    assert emu.admin("POST", "drift/remove", {"list_id": list_id, "emails": "a@x.io"})[0] == 400
    assert emu.admin("POST", "drift/add", {"list_id": list_id, "users": {"email": "a@x.io"}})[0] == 400
