"""Tests of the Iterable emulator (emulator/iterable_emulator.py), through HTTP only.

Run: /usr/bin/python3 -m pytest -q test/emulator
     (EMULATOR_PYTHON=/path/to/python3 runs the emulator with another interpreter)
"""

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMULATOR = os.path.join(ROOT, "emulator", "iterable_emulator.py")
# The interpreter running the emulator (default: the one running pytest).
PYTHON = os.environ.get("EMULATOR_PYTHON", sys.executable)

HYBRID, EMAIL, USERID = "test-key-hybrid", "test-key-email", "test-key-userid"
FAILED_KEYS = ["invalidEmails", "invalidUserIds", "notFoundEmails", "notFoundUserIds",
               "forgottenEmails", "forgottenUserIds", "conflictEmails", "conflictUserIds",
               "invalidDataEmails", "invalidDataUserIds"]


# ----- harness ------------------------------------------------------------------------
class Emulator:
    def __init__(self, tmp_dir, *args):
        self.port_file = os.path.join(str(tmp_dir), "port")
        self.proc = subprocess.Popen(
            [PYTHON, EMULATOR, "--host", "127.0.0.1", "--port", "0",
             "--port-file", self.port_file] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("emulator did not start: " + self.proc.stderr.read())
            time.sleep(0.02)
        with open(self.port_file) as handle:
            self.port = int(handle.read())
        self.banner = self.proc.stdout.readline().strip()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)

    def request(self, method, path, body=None, key=None, headers=None, timeout=5):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            return send(conn, method, path, body, key, headers)
        finally:
            conn.close()

    def api(self, method, path, body=None, key=HYBRID, **kwargs):
        """(status, decoded JSON or text, headers)."""
        status, headers, raw = self.request(method, path, body, key, **kwargs)
        ctype = headers.get("Content-Type", "")
        return status, (json.loads(raw) if ctype.startswith("application/json")
                        else raw.decode()), headers

    def admin(self, method, path, body=None):
        status, headers, raw = self.request(method, "/_emulator/" + path, body)
        assert headers.get("Content-Type", "").startswith("application/json")
        return status, json.loads(raw)

    # conveniences
    def create_list(self, key=HYBRID, name="audience"):
        status, body, _ = self.api("POST", "/api/lists", {"name": name}, key)
        assert status == 200
        return body["listId"]

    def subscribe(self, list_id, subscribers, key=HYBRID, **extra):
        return self.api("POST", "/api/lists/subscribe",
                        dict({"listId": list_id, "subscribers": subscribers}, **extra), key)

    def unsubscribe(self, list_id, subscribers, key=HYBRID, **extra):
        return self.api("POST", "/api/lists/unsubscribe",
                        dict({"listId": list_id, "subscribers": subscribers}, **extra), key)

    def members(self, list_id):
        status, body = self.admin("GET", "lists/%d/members" % list_id)
        assert status == 200
        return body

    def set_faults(self, faults):
        status, body = self.admin("POST", "faults", faults)
        assert status == 200, body
        return body


def send(conn, method, path, body=None, key=None, headers=None):
    hdrs = dict(headers or {})
    if key is not None:
        hdrs.setdefault("Api-Key", key)
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=body, headers=hdrs)
    response = conn.getresponse()
    return response.status, response.headers, response.read()


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    emulator = Emulator(tmp_path_factory.mktemp("emu"))
    yield emulator
    assert emulator.stop() == 0


@pytest.fixture(autouse=True)
def clean(request):
    if "emu" in request.fixturenames:
        emu = request.getfixturevalue("emu")
        assert emu.admin("POST", "reset", {"faults": True})[0] == 200


def ok_result(result, success, fail=0):
    """Assert the full subscribe/unsubscribe response shape; return failedUpdates."""
    assert set(result) == {"successCount", "failCount", "failedUpdates", "createdFields",
                           "filteredOutFields"}
    assert sorted(result["failedUpdates"]) == sorted(FAILED_KEYS)
    assert (result["successCount"], result["failCount"]) == (success, fail), result
    return {k: v for k, v in result["failedUpdates"].items() if v}


# ----- process, auth, routing ---------------------------------------------------------
def test_port_file_and_banner(emu):
    assert emu.banner == "iterable emulator listening on http://127.0.0.1:%d" % emu.port


@pytest.mark.parametrize("headers", [{}, {"Api-Key": "nope"}])
def test_bad_api_key_is_401(emu, headers):
    status, body, _ = emu.api("GET", "/api/lists", key=None, headers=headers)
    assert status == 401
    assert body == {"msg": "Invalid API key", "code": "BadApiKey",
                    "params": {"ip": "127.0.0.1", "endpoint": "/api/lists"}}


def test_api_underscore_key_header_accepted(emu):
    status, body, _ = emu.api("GET", "/api/lists", key=None, headers={"Api_Key": HYBRID})
    assert (status, body) == (200, {"lists": []})


@pytest.mark.parametrize("method,path", [("GET", "/api/lists/"), ("DELETE", "/api/lists/"),
                                         ("GET", "/api/users/x"), ("PUT", "/api/lists")])
def test_unknown_route_is_404_html(emu, method, path):
    status, headers, raw = emu.request(method, path, key=HYBRID)
    assert status == 404
    assert headers["Content-Type"].startswith("text/html")
    assert b"Action not found" in raw


def test_keep_alive_connection_is_reused(emu):
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    list_id = json.loads(send(conn, "POST", "/api/lists", {"name": "ka"}, HYBRID)[2])["listId"]
    sock = conn.sock
    for i in range(20):
        status, _, raw = send(conn, "POST", "/api/lists/subscribe",
                              {"listId": list_id, "subscribers": [{"email": "k%d@x.com" % i}]},
                              HYBRID)
        assert status == 200 and json.loads(raw)["successCount"] == 1
    assert conn.sock is sock
    conn.close()


def raw_exchange(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_chunked_request_body(emu):
    list_id = emu.create_list()
    body = json.dumps({"listId": list_id, "subscribers": [{"email": "c@x.com"}]}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                      for i in range(0, len(body), 7))
    reply = raw_exchange(emu.port, b"POST /api/lists/subscribe HTTP/1.1\r\nHost: x\r\n"
                         b"Api-Key: test-key-hybrid\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + chunks + b"0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert b'"successCount":1' in reply


def test_expect_100_continue(emu):
    list_id = emu.create_list()
    body = json.dumps({"listId": list_id, "subscribers": [{"email": "e@x.com"}]}).encode()
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
        sock.sendall(b"POST /api/lists/subscribe HTTP/1.1\r\nHost: x\r\n"
                     b"Api-Key: test-key-hybrid\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 ") and b'"successCount":1' in reply


# ----- lists --------------------------------------------------------------------------
def test_create_and_get_lists(emu):
    first = emu.create_list(name="one")
    status, body, _ = emu.api("POST", "/api/lists", {"name": "two", "description": "d"})
    assert status == 200 and body == {"listId": first + 1}
    status, body, headers = emu.api("GET", "/api/lists")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    one, two = body["lists"]
    assert one["id"] == first and one["name"] == "one" and one["listType"] == "Standard"
    assert "description" not in one and two["description"] == "d"
    assert isinstance(one["createdAt"], int) and abs(one["createdAt"] - time.time() * 1000) < 60000
    # lists belong to one project
    assert emu.api("GET", "/api/lists", key=EMAIL)[1] == {"lists": []}


def test_list_ids_are_monotonic_across_projects(emu):
    ids = [emu.create_list(key) for key in (HYBRID, EMAIL, USERID, HYBRID)]
    assert ids == sorted(ids) and len(set(ids)) == 4


@pytest.mark.parametrize("body,error", [({}, "error.path.missing"),
                                        ({"name": None}, "error.expected.jsstring"),
                                        ({"name": 5}, "error.expected.jsstring")])
def test_create_list_bad_name(emu, body, error):
    status, reply, _ = emu.api("POST", "/api/lists", body)
    assert status == 400
    assert reply["code"] == "BadJsonBody" and reply["msg"].startswith("[/api/lists] body: ")
    assert reply["params"] == {"obj.name": [{"msg": error, "args": []}]}


def test_create_list_malformed_json(emu):
    status, reply, _ = emu.api("POST", "/api/lists", b"{nope")
    assert status == 400 and reply["code"] == "BadJsonBody"


def test_delete_list(emu):
    list_id = emu.create_list()
    status, body, _ = emu.api("DELETE", "/api/lists/%d" % list_id)
    assert status == 200
    assert body == {"msg": "List %d in Project 2158 was successfully deleted." % list_id,
                    "code": "Success", "params": None}
    status, body, _ = emu.api("DELETE", "/api/lists/%d" % list_id)
    assert status == 400
    assert body == {"msg": "Unable to delete list %d in Project 2158, which does not exist."
                    % list_id, "code": "BadParams", "params": None}
    # another project's list does not exist here
    other = emu.create_list(EMAIL)
    assert emu.api("DELETE", "/api/lists/%d" % other)[0] == 400


def test_get_users_text(emu):
    list_id = emu.create_list()
    status, body, headers = emu.api("GET", "/api/lists/getUsers?listId=%d" % list_id)
    assert (status, body) == (200, "") and headers["Content-Type"].startswith("text/plain")
    emu.subscribe(list_id, [{"email": "A@x.com"}, {"userId": "u-only"},
                            {"email": "b@x.com", "userId": "ub"}])
    path = "/api/lists/getUsers?listId=%d" % list_id
    assert emu.api("GET", path)[1] == "a@x.com\nu-only\nb@x.com\n"
    assert emu.api("GET", path + "&preferUserId=true")[1] == "a@x.com\nu-only\nub\n"
    assert emu.api("GET", path + "&preferUserId=false")[1] == "a@x.com\nu-only\nb@x.com\n"


def test_get_users_unknown_list(emu):
    status, body, _ = emu.api("GET", "/api/lists/getUsers?listId=42&preferUserId=false")
    assert status == 400
    assert body == {"msg": "Invalid email list id", "code": "BadParams",
                    "params": {"projectId": "2158", "listId": "42"}}


# ----- subscribe: request errors --------------------------------------------------------
@pytest.mark.parametrize("body,path", [
    ({"subscribers": []}, "obj.listId"),
    ({"listId": "1"}, "obj.listId"),
    ({"listId": 1}, "obj.subscribers"),
    ({"listId": 1, "subscribers": {}}, "obj.subscribers"),
    ({"listId": 1, "subscribers": ["a@x.com"]}, "obj.subscribers[0]"),
    ({"listId": 1, "subscribers": [{"email": 5}]}, "obj.subscribers[0].email"),
    ({"listId": 1, "subscribers": [{"userId": 5}]}, "obj.subscribers[0].userId"),
    ({"listId": 1, "subscribers": [{"email": "a@x.com", "dataFields": []}]},
     "obj.subscribers[0].dataFields"),
    ({"listId": 1, "subscribers": [], "updateExistingUsersOnly": "yes"},
     "obj.updateExistingUsersOnly"),
])
def test_subscribe_bad_json_body(emu, body, path):
    status, reply, _ = emu.api("POST", "/api/lists/subscribe", body)
    assert status == 400 and reply["code"] == "BadJsonBody", reply
    assert path in reply["params"]
    assert reply["msg"].startswith("[/api/lists/subscribe]")


@pytest.mark.parametrize("endpoint", ["subscribe", "unsubscribe"])
def test_malformed_json_is_bad_json_body(emu, endpoint):
    for body in (b"", b"{", b"[1]"):
        status, reply, _ = emu.api("POST", "/api/lists/" + endpoint, body)
        assert status == 400 and reply["code"] == "BadJsonBody"
    assert emu.admin("GET", "invalid_received")[1]["counts"]["bad_json_body"] == 3


@pytest.mark.parametrize("endpoint", ["subscribe", "unsubscribe"])
def test_invalid_list_id(emu, endpoint):
    other_project_list = emu.create_list(EMAIL)
    for list_id in (999999, other_project_list):
        status, reply, _ = emu.api("POST", "/api/lists/" + endpoint,
                                   {"listId": list_id, "subscribers": [{"email": "a@x.com"}]})
        assert status == 400
        assert reply["code"] == "BadParams" and "error.lists.invalidListId" in reply["msg"]


def test_subscriber_without_identifier_is_rejected(emu):
    list_id = emu.create_list()
    status, reply, _ = emu.subscribe(list_id, [{"email": "a@x.com"}, {"dataFields": {}}])
    assert status == 400 and reply["code"] == "BadParams"
    assert emu.members(list_id) == []       # nothing applied
    assert emu.admin("GET", "invalid_received")[1]["counts"]["missing_identifier"] == 1


# ----- subscribe: validation -----------------------------------------------------------
BAD_EMAILS = ["user@", "@x.com", "user@x", "us er@x.com", "a@@x.com", "a@x..com",
              "a@.x.com", "a@x.com.", "", " a@x.com", "a@x.com ", "a\t@x.com"]
BAD_USER_IDS = ["", " lead", "trail ", "x" * 53, "n\u00efo", "tab\there", "new\nline", "\x7f"]


@pytest.mark.parametrize("key", [HYBRID, EMAIL, USERID])
def test_invalid_identifiers_are_reported_and_recorded(emu, key):
    list_id = emu.create_list(key)
    subscribers = ([{"email": e} for e in BAD_EMAILS] + [{"userId": u} for u in BAD_USER_IDS]
                   + [{"email": "Good.One+tag@Sub.Example.co.uk"}, {"userId": "x" * 52},
                      {"userId": "in side", "email": "in@x.com"}])
    status, result, _ = emu.subscribe(list_id, subscribers, key)
    assert result["successCount"] + result["failCount"] == len(subscribers)
    failed = result["failedUpdates"]
    assert failed["invalidEmails"] == BAD_EMAILS
    assert failed["invalidUserIds"] == BAD_USER_IDS
    invalid = emu.admin("GET", "invalid_received")[1]
    assert invalid["counts"]["emails"] == len(BAD_EMAILS)
    assert invalid["counts"]["userIds"] == len(BAD_USER_IDS)
    assert [s["value"] for s in invalid["samples"]] == BAD_EMAILS + BAD_USER_IDS
    assert invalid["samples"][0]["endpoint"] == "subscribe"
    assert invalid["samples"][0]["listId"] == list_id


def test_row_with_one_invalid_identifier_fails(emu):
    list_id = emu.create_list()
    _, result, _ = emu.subscribe(list_id, [{"email": "bad@", "userId": "fine"},
                                           {"email": "fine@x.com", "userId": " bad"}])
    assert ok_result(result, 0, 2) == {"invalidEmails": ["bad@"], "invalidUserIds": [" bad"]}
    assert emu.members(list_id) == []


def test_clean_run_records_nothing_invalid(emu):
    list_id = emu.create_list()
    emu.subscribe(list_id, [{"email": "a@x.com"}])
    invalid = emu.admin("GET", "invalid_received")[1]
    assert invalid["total"] == 0 and invalid["samples"] == []


# ----- subscribe: project types ---------------------------------------------------------
def test_empty_subscribers(emu):
    list_id = emu.create_list()
    _, result, _ = emu.subscribe(list_id, [])
    assert ok_result(result, 0) == {}


def test_hybrid_rules(emu):
    list_id = emu.create_list()
    _, result, _ = emu.subscribe(list_id, [
        {"email": "A@X.com", "userId": "ua"}, {"email": "b@x.com", "userId": "ub"},
        {"email": "c@x.com"}, {"userId": "ud"}])
    assert ok_result(result, 4) == {}
    _, result, _ = emu.subscribe(list_id, [
        {"email": "a@x.com", "userId": "ub"},       # two different users: conflict
        {"email": "b@x.com", "userId": "u-new"},    # email's user has another userId
        {"email": "c@x.com", "userId": "uc"},       # email-only user gains a userId
        {"email": "d@x.com", "userId": "ud"},       # userId-only user gains an email
        {"email": "a2@x.com", "userId": "ua"},      # email free: ua's email is updated
    ])
    assert ok_result(result, 3, 2) == {"conflictEmails": ["a@x.com", "b@x.com"],
                                       "conflictUserIds": ["ub", "u-new"]}
    members = {(m["email"], m["userId"]) for m in emu.members(list_id)}
    assert members == {("a2@x.com", "ua"), ("b@x.com", "ub"), ("c@x.com", "uc"),
                       ("d@x.com", "ud")}


def test_hybrid_identifiers_are_unique(emu):
    list_id = emu.create_list()
    emu.subscribe(list_id, [{"email": "Same@x.com"}, {"email": "same@X.COM"},
                            {"userId": "U1"}, {"userId": "u1"}])
    members = emu.members(list_id)
    assert [(m["email"], m["userId"]) for m in members] == [
        ("same@x.com", None), (None, "U1"), (None, "u1")]   # userIds are case-sensitive


@pytest.mark.parametrize("key", [HYBRID, USERID])
def test_update_existing_users_only(emu, key):
    list_id = emu.create_list(key)
    emu.subscribe(list_id, [{"userId": "known", "email": "known@x.com"}], key)
    _, result, _ = emu.subscribe(list_id, [{"userId": "known"}, {"userId": "unknown"},
                                           {"email": "nobody@x.com"}],
                                 key, updateExistingUsersOnly=True)
    assert ok_result(result, 1, 2) == {"notFoundUserIds": ["unknown"],
                                       "notFoundEmails": ["nobody@x.com"]}
    assert [m["userId"] for m in emu.members(list_id)] == ["known"]
    status, state = emu.admin("GET", "state")
    project = next(p for p in state["projects"] if p["api_key"] == key)
    assert project["users"] == 1


def test_email_project_rules(emu):
    list_id = emu.create_list(EMAIL)
    _, result, _ = emu.subscribe(list_id, [
        {"email": "Mixed@Case.com", "userId": "u1"},
        {"email": "mixed@case.com"},                # same user
        {"userId": "ghost"},                        # unknown userId, no preferUserId
        {"userId": "anon", "preferUserId": True},   # created with a placeholder email
        {"userId": "u1"},                           # found by userId
        {"email": "fresh@x.com"},                   # created although...
    ], EMAIL, updateExistingUsersOnly=True)         # ...ignored in email projects
    assert ok_result(result, 5, 1) == {"notFoundUserIds": ["ghost"]}
    members = emu.members(list_id)
    assert [m["email"] for m in members][0] == "mixed@case.com"
    anon = next(m for m in members if m["userId"] == "anon")
    assert anon["email"].endswith("@placeholder.email")
    assert len(members) == 3
    # email wins: sending the email with another userId overwrites the userId
    _, result, _ = emu.subscribe(list_id, [{"email": "mixed@case.com", "userId": "u2"}], EMAIL)
    ok_result(result, 1)
    assert emu.members(list_id)[0]["userId"] == "u2"
    # userIds are not unique: a second user may carry u2
    _, result, _ = emu.subscribe(list_id, [{"email": "other@x.com", "userId": "u2"}], EMAIL)
    ok_result(result, 1)
    assert [m["userId"] for m in emu.members(list_id)].count("u2") == 2


def test_userid_project_rules(emu):
    list_id = emu.create_list(USERID)
    _, result, _ = emu.subscribe(list_id, [
        {"userId": "U1", "email": "shared@x.com"},
        {"userId": "u1", "email": "shared@x.com"},  # distinct user, same email is allowed
        {"email": "SHARED@x.com"},                  # email-only: the first user with it
        {"email": "nobody@x.com"},                  # email-only, unknown
    ], USERID)
    assert ok_result(result, 3, 1) == {"notFoundEmails": ["nobody@x.com"]}
    members = emu.members(list_id)
    assert [(m["userId"], m["email"]) for m in members] == [("U1", "shared@x.com"),
                                                            ("u1", "shared@x.com")]
    # email is just a field: it is updated
    emu.subscribe(list_id, [{"userId": "U1", "email": "new@x.com"}], USERID)
    assert emu.members(list_id)[0]["email"] == "new@x.com"


# ----- subscribe: forgotten and dataFields ----------------------------------------------
def test_forgotten_users(emu):
    list_id = emu.create_list()
    emu.subscribe(list_id, [{"email": "gone@x.com", "userId": "gone"}, {"email": "stay@x.com"}])
    status, reply = emu.admin("POST", "forget", {"api_key": HYBRID, "emails": ["GONE@x.com"],
                                                 "userIds": ["never-seen"]})
    assert status == 200 and reply["deleted_users"] == 1
    assert [m["email"] for m in emu.members(list_id)] == ["stay@x.com"]
    _, result, _ = emu.subscribe(list_id, [{"email": "Gone@x.com"}, {"userId": "gone"},
                                           {"userId": "never-seen"}, {"email": "ok@x.com"}])
    assert ok_result(result, 1, 3) == {"forgottenEmails": ["Gone@x.com"],
                                       "forgottenUserIds": ["gone", "never-seen"]}
    _, result, _ = emu.unsubscribe(list_id, [{"email": "gone@x.com"}, {"userId": "gone"}])
    assert ok_result(result, 0, 2) == {"forgottenEmails": ["gone@x.com"],
                                       "forgottenUserIds": ["gone"]}
    state = emu.admin("GET", "state")[1]
    assert state["projects"][0]["forgotten"] == {"emails": ["gone@x.com"],
                                                 "userIds": ["gone", "never-seen"]}


def test_data_fields_merge_and_type_mismatch(emu):
    list_id = emu.create_list()
    _, result, _ = emu.subscribe(list_id, [
        {"email": "a@x.com", "dataFields": {"plan": "pro", "n": 1, "s": {"m": True}}}])
    ok_result(result, 1)
    assert result["createdFields"] == ["plan", "n", "s", "s.m"]
    _, result, _ = emu.subscribe(list_id, [
        {"email": "a@x.com", "dataFields": {"n": 2.5, "s": {"e": True}},
         "mergeNestedObjects": True},
        {"email": "b@x.com", "userId": "ub", "dataFields": {"plan": 3}},
        {"userId": "uc", "dataFields": {"s": {"m": "no"}}},
        {"email": "d@x.com", "dataFields": {"plan": None}},
    ])
    assert ok_result(result, 2, 2) == {"invalidDataEmails": ["b@x.com"],
                                       "invalidDataUserIds": ["ub", "uc"]}
    assert result["createdFields"] == ["s.e"]
    members = emu.members(list_id)
    assert [m["email"] for m in members] == ["a@x.com", "d@x.com"]   # b and c not added
    assert members[0]["dataFields"] == {"plan": "pro", "n": 2.5, "s": {"m": True, "e": True}}
    _, result, _ = emu.subscribe(list_id, [{"email": "a@x.com", "dataFields": {"s": {"z": 1}}}])
    assert emu.members(list_id)[0]["dataFields"]["s"] == {"z": 1}    # replaced, not merged
    invalid = emu.admin("GET", "invalid_received")[1]
    assert invalid["counts"]["data_type_mismatch"] == 2
    assert invalid["samples"][0]["detail"] == {"field": "plan", "expectedType": "string",
                                               "incomingType": "number"}
    fields = emu.admin("GET", "state")[1]["projects"][0]["field_types"]
    assert fields["plan"] == "string" and fields["s.m"] == "boolean"


# Requests whose subscribers all carry only identifiers (what the extension sends) take the
# emulator's column fast path: bulk format checks, rows looked up once. Same rules.
@pytest.mark.parametrize("key", [HYBRID, EMAIL])
def test_batch_of_emails(emu, key):
    list_id = emu.create_list(key)
    emu.subscribe(list_id, [{"email": "known@x.com"}], key)
    emails = ["e%d@Batch.example" % i for i in range(40)]
    emails[7] = "bad@"                              # one invalid: checked row by row
    emails[9] = "E3@batch.EXAMPLE"                  # repeats a new email of this request
    emails[20] = "KNOWN@x.com"
    compact = json.dumps({"listId": list_id, "subscribers": [{"email": e} for e in emails]},
                         separators=(",", ":")).encode()
    status, headers, raw = emu.request("POST", "/api/lists/subscribe", compact, key)
    assert status == 200
    assert ok_result(json.loads(raw), 39, 1) == {"invalidEmails": ["bad@"]}
    members = [m["email"] for m in emu.members(list_id)]
    assert members == ["known@x.com"] + [e.lower() for e in emails
                                         if e not in ("bad@", "E3@batch.EXAMPLE", "KNOWN@x.com")]
    state = emu.admin("GET", "state")[1]
    project = next(p for p in state["projects"] if p["api_key"] == key)
    assert project["users"] == 38
    assert emu.admin("GET", "invalid_received")[1]["counts"]["emails"] == 1


@pytest.mark.parametrize("key", [HYBRID, USERID, EMAIL])
def test_batch_of_user_ids(emu, key):
    list_id = emu.create_list(key)
    user_ids = ["u%d" % i for i in range(30)] + ["u3", "x" * 53, "U3"]
    _, result, _ = emu.subscribe(list_id, [{"userId": u} for u in user_ids], key)
    if key == EMAIL:                                # unknown userIds are not created
        assert ok_result(result, 0, 33) == {"invalidUserIds": ["x" * 53],
                                            "notFoundUserIds": user_ids[:31] + ["U3"]}
        return
    assert ok_result(result, 32, 1) == {"invalidUserIds": ["x" * 53]}
    assert [m["userId"] for m in emu.members(list_id)] == user_ids[:30] + ["U3"]
    _, result, _ = emu.subscribe(list_id, [{"userId": "u1"}, {"userId": "new"}], key,
                                 updateExistingUsersOnly=True)
    assert ok_result(result, 1, 1) == {"notFoundUserIds": ["new"]}


def test_batch_of_pairs_in_userid_project(emu):
    list_id = emu.create_list(USERID)
    pairs = [{"email": "p%d@x.com" % i, "userId": "p%d" % i} for i in range(20)]
    pairs[5]["email"] = pairs[6]["email"] = "Shared@x.com"
    _, result, _ = emu.subscribe(list_id, pairs, USERID, updateExistingUsersOnly=False)
    assert ok_result(result, 20) == {}
    _, result, _ = emu.subscribe(list_id, [{"email": "shared@X.com"}], USERID)
    ok_result(result, 1)                            # the first user holding it: p5
    _, result, _ = emu.unsubscribe(list_id, [{"email": "SHARED@x.com"}], USERID)
    ok_result(result, 1)
    assert [m["userId"] for m in emu.members(list_id)] == [
        "p%d" % i for i in range(20) if i != 5]
    # p6 moves to another email (and off the shared one); p5 keeps it
    _, result, _ = emu.subscribe(list_id, [{"email": "moved@x.com", "userId": "p6"},
                                           {"email": "p7@x.com", "userId": "p7"},
                                           {"email": "new@x.com", "userId": "p99"}], USERID)
    ok_result(result, 3)
    users = emu.admin("GET", "users?api_key=%s&email=shared@x.com" % USERID)[1]["users"]
    assert [u["userId"] for u in users] == ["p5"]
    users = emu.admin("GET", "users?api_key=%s&email=moved@x.com" % USERID)[1]["users"]
    assert [u["userId"] for u in users] == ["p6"]
    _, result, _ = emu.subscribe(list_id, [{"email": "a@x.com", "userId": "p0"},
                                           {"email": "b@x.com", "userId": "nobody"}], USERID,
                                 updateExistingUsersOnly=True)
    assert ok_result(result, 1, 1) == {"notFoundEmails": ["b@x.com"],
                                       "notFoundUserIds": ["nobody"]}
    assert emu.admin("GET", "state")[1]["projects"][2]["users"] == 21


# ----- unsubscribe ------------------------------------------------------------------------
def test_unsubscribe(emu):
    list_id = emu.create_list()
    other = emu.create_list(name="other")
    emu.subscribe(list_id, [{"email": "a@x.com"}, {"email": "b@x.com", "userId": "ub"}])
    emu.subscribe(other, [{"email": "elsewhere@x.com"}])
    _, result, _ = emu.unsubscribe(list_id, [
        {"email": "A@x.com"}, {"userId": "ub"}, {"email": "a@x.com"},
        {"email": "elsewhere@x.com"}, {"email": "unknown@x.com"}, {"userId": "nope"},
        {"email": "bad@"}], channelUnsubscribe=False)
    assert ok_result(result, 2, 5) == {
        "notFoundEmails": ["a@x.com", "elsewhere@x.com", "unknown@x.com"],
        "notFoundUserIds": ["nope"], "invalidEmails": ["bad@"]}
    assert emu.members(list_id) == []
    assert len(emu.members(other)) == 1
    assert emu.admin("GET", "state")[1]["projects"][0]["users"] == 3   # users are kept


def test_unsubscribe_flags_are_recorded(emu):
    list_id = emu.create_list()
    emu.unsubscribe(list_id, [{"email": "a@x.com"}], channelUnsubscribe=False)
    emu.unsubscribe(list_id, [{"email": "a@x.com"}], channelUnsubscribe=True, campaignId=987)
    emu.unsubscribe(list_id, [{"email": "a@x.com"}])
    flags = emu.admin("GET", "state")[1]["unsubscribe_flags"]
    assert {k: flags[k] for k in ("requests", "channelUnsubscribe_sent",
                                  "channelUnsubscribe_true", "campaignId_sent")} == {
        "requests": 3, "channelUnsubscribe_sent": 2, "channelUnsubscribe_true": 1,
        "campaignId_sent": 1}
    first, second, third = flags["recent"]
    assert first["channelUnsubscribe_sent"] and first["channelUnsubscribe"] is False
    assert second["campaignId"] == 987 and second["channelUnsubscribe"] is True
    assert not third["channelUnsubscribe_sent"] and not third["campaignId_sent"]
    requests = emu.admin("GET", "requests?endpoint=unsubscribe&limit=2")[1]["requests"]
    assert [r["body"].get("channelUnsubscribe", "absent") for r in requests] == [True, "absent"]
    requests = emu.admin("GET", "requests?endpoint=unsubscribe&limit=3")[1]["requests"]
    assert "channelUnsubscribe" in requests[0]["body"]
    assert requests[0]["body"]["channelUnsubscribe"] is False


def test_unsubscribe_hybrid_conflict(emu):
    list_id = emu.create_list()
    emu.subscribe(list_id, [{"email": "a@x.com", "userId": "ua"}, {"email": "b@x.com"}])
    _, result, _ = emu.unsubscribe(list_id, [{"email": "b@x.com", "userId": "ua"}])
    assert ok_result(result, 0, 1) == {"conflictEmails": ["b@x.com"],
                                       "conflictUserIds": ["ua"]}


# ----- faults ---------------------------------------------------------------------------
def subscribe_one(emu, list_id, email="f@x.com", timeout=5):
    return emu.request("POST", "/api/lists/subscribe",
                       {"listId": list_id, "subscribers": [{"email": email}]}, HYBRID,
                       timeout=timeout)


@pytest.mark.parametrize("kind,status,body", [
    ("error_500", 500, {"msg": "Internal server error", "code": "GenericError",
                        "params": None}),
    ("error_503", 503, {"msg": "Request timeout. Try again later.", "code": "GenericError",
                        "params": None}),
])
def test_error_faults_do_not_mutate(emu, kind, status, body):
    list_id = emu.create_list()
    emu.set_faults({"rules": [{"kind": kind, "endpoint": "subscribe", "next": 1}]})
    got, _, raw = subscribe_one(emu, list_id)
    assert (got, json.loads(raw)) == (status, body)
    assert emu.members(list_id) == []
    assert subscribe_one(emu, list_id)[0] == 200        # "next": 1 is used up
    assert len(emu.members(list_id)) == 1
    state = emu.admin("GET", "state")[1]
    assert state["requests"]["by_endpoint"]["subscribe"] == {str(status): 1, "200": 1}
    assert state["faults"]["rules"][0]["fired"] == 1
    assert state["recent"][-2]["fault"] == kind


def test_custom_status_fault(emu):
    emu.set_faults({"rules": [{"kind": "status", "endpoint": "delete_list", "status": 409,
                               "body": {"msg": "List is in use", "code": "BadParams",
                                        "params": None}}]})
    list_id = emu.create_list()
    status, body, _ = emu.api("DELETE", "/api/lists/%d" % list_id)
    assert status == 409 and body["msg"] == "List is in use"
    assert emu.api("GET", "/api/lists")[1]["lists"][0]["id"] == list_id


def test_leaky_bucket_text_429(emu):
    emu.set_faults({"rate_limits": [{"endpoint": "get_lists", "rate": 0.5, "burst": 2}]})
    statuses = [emu.request("GET", "/api/lists", key=HYBRID) for _ in range(3)]
    assert [s[0] for s in statuses] == [200, 200, 429]
    _, headers, raw = statuses[2]
    assert raw == b"Rate limit exceeded. Please try again later."
    assert headers["Content-Type"].startswith("text/plain")
    assert "Retry-After" not in headers
    # per project: another key has its own bucket; other endpoints are not limited
    assert emu.request("GET", "/api/lists", key=EMAIL)[0] == 200
    assert emu.request("GET", "/api/lists/getUsers?listId=1", key=HYBRID)[0] == 400


def test_leaky_bucket_json_body_and_retry_after(emu):
    emu.set_faults({"rate_limits": [{"endpoint": "*", "rate": 0.25, "burst": 1}],
                    "rate_limit_body": "json", "rate_limit_retry_after": "auto"})
    assert emu.request("GET", "/api/lists", key=HYBRID)[0] == 200
    status, headers, raw = emu.request("GET", "/api/lists", key=HYBRID)
    assert status == 429
    assert json.loads(raw) == {"msg": "Rate limit exceeded", "code": "RateLimitExceeded",
                               "params": None}
    assert headers["Retry-After"] in ("3", "4")
    emu.set_faults({"rules": [{"kind": "rate_limit", "next": 1}], "rate_limit_retry_after": 7})
    status, headers, raw = emu.request("GET", "/api/lists", key=HYBRID)
    assert status == 429 and headers["Retry-After"] == "7"
    assert raw == b"Rate limit exceeded. Please try again later."


def test_leaky_bucket_drains(emu):
    emu.set_faults({"rate_limits": [{"endpoint": "get_lists", "rate": 10, "burst": 1}]})
    assert emu.request("GET", "/api/lists", key=HYBRID)[0] == 200
    assert emu.request("GET", "/api/lists", key=HYBRID)[0] == 429
    time.sleep(0.15)
    assert emu.request("GET", "/api/lists", key=HYBRID)[0] == 200


def test_drop_connection(emu):
    list_id = emu.create_list()
    emu.set_faults({"rules": [{"kind": "drop", "endpoint": "subscribe", "next": 1}]})
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        subscribe_one(emu, list_id)
    assert emu.members(list_id) == []
    assert subscribe_one(emu, list_id)[0] == 200


def test_drop_partial_response(emu):
    list_id = emu.create_list()
    emu.set_faults({"rules": [{"kind": "drop", "partial": True, "next": 1}]})
    with pytest.raises(http.client.IncompleteRead):
        subscribe_one(emu, list_id)
    assert emu.members(list_id) == []


def test_hang_forever(emu):
    list_id = emu.create_list()
    emu.set_faults({"rules": [{"kind": "hang", "endpoint": "subscribe", "next": 1}]})
    with pytest.raises(socket.timeout):
        subscribe_one(emu, list_id, timeout=0.5)
    assert emu.members(list_id) == []
    assert subscribe_one(emu, list_id)[0] == 200


def test_hang_then_answer_applies(emu):
    list_id = emu.create_list()
    emu.set_faults({"rules": [{"kind": "hang", "seconds": 0.4, "next": 1}]})
    started = time.time()
    assert subscribe_one(emu, list_id)[0] == 200
    assert time.time() - started >= 0.4
    assert len(emu.members(list_id)) == 1


def test_latency(emu):
    emu.set_faults({"latency_ms": 300, "jitter_ms": 20,
                    "rules": [{"kind": "latency", "endpoint": "get_lists", "ms": 100}]})
    started = time.time()
    assert emu.request("GET", "/api/lists", key=HYBRID)[0] == 200
    assert time.time() - started >= 0.38
    started = time.time()
    assert emu.admin("GET", "health")[0] == 200          # admin calls are never faulted
    assert time.time() - started < 0.25


def test_trickled_body(emu):
    list_id = emu.create_list()
    emu.set_faults({"rules": [{"kind": "trickle", "chunk_bytes": 64, "interval_ms": 30}]})
    started = time.time()
    status, _, raw = subscribe_one(emu, list_id)
    assert status == 200 and json.loads(raw)["successCount"] == 1
    assert time.time() - started >= 0.03 * (len(raw) // 64)
    assert len(emu.members(list_id)) == 1


def test_malformed_and_unexpected_json(emu):
    list_id = emu.create_list()
    emu.set_faults({"rules": [{"kind": "malformed_json", "next": 1},
                              {"kind": "unexpected_shape", "next": 1, "skip": 1}]})
    status, headers, raw = subscribe_one(emu, list_id)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(raw)
    status, _, raw = subscribe_one(emu, list_id)
    assert status == 200 and "successCount" not in json.loads(raw)
    assert emu.members(list_id) == []
    assert subscribe_one(emu, list_id)[0] == 200


def test_huge_body(emu):
    emu.set_faults({"rules": [{"kind": "huge_body", "size_bytes": 5_000_000,
                               "endpoint": "get_lists"}]})
    status, _, raw = emu.request("GET", "/api/lists", key=HYBRID, timeout=20)
    assert status == 200 and len(raw) == 5_000_000
    json.loads(raw)


def test_delete_list_after_n_subscribes(emu):
    list_id = emu.create_list()
    emu.set_faults({"rules": [{"kind": "delete_list_after", "subscribes": 2,
                               "list_id": list_id}]})
    assert subscribe_one(emu, list_id, "a@x.com")[0] == 200
    assert subscribe_one(emu, list_id, "b@x.com")[0] == 200
    status, _, raw = subscribe_one(emu, list_id, "c@x.com")
    assert status == 400 and b"error.lists.invalidListId" in raw
    assert emu.api("GET", "/api/lists")[1] == {"lists": []}


def test_new_list_invalid_for_a_while(emu):
    emu.set_faults({"new_list_invalid_seconds": 0.5})
    list_id = emu.create_list()
    status, _, raw = subscribe_one(emu, list_id)
    assert status == 400 and b"invalidListId" in raw
    time.sleep(0.6)
    assert subscribe_one(emu, list_id)[0] == 200


def test_probabilistic_rules_are_reproducible(emu):
    faults = {"seed": 42, "rules": [{"kind": "error_500", "endpoint": "get_lists",
                                     "rate": 0.5}]}
    emu.set_faults(faults)
    first = [emu.request("GET", "/api/lists", key=HYBRID)[0] for _ in range(30)]
    emu.admin("POST", "reset")                  # keeps the faults, restarts their RNG
    second = [emu.request("GET", "/api/lists", key=HYBRID)[0] for _ in range(30)]
    assert first == second and set(first) == {200, 500}


def test_rule_targets_endpoint_and_key(emu):
    list_id = emu.create_list()
    emu.set_faults({"rules": [{"kind": "error_503", "endpoint": ["unsubscribe"]},
                              {"kind": "error_500", "api_key": EMAIL}]})
    assert subscribe_one(emu, list_id)[0] == 200
    assert emu.unsubscribe(list_id, [{"email": "f@x.com"}])[0] == 503
    assert emu.request("GET", "/api/lists", key=EMAIL)[0] == 500
    assert len(emu.members(list_id)) == 1


@pytest.mark.parametrize("faults", [{"rules": [{"kind": "nope"}]},
                                    {"rules": [{"kind": "error_500", "rate": 2}]},
                                    {"rules": [{"kind": "drop", "endpoint": "x"}]},
                                    {"rate_limits": [{"rate": 0}]}, {"bogus": 1}])
def test_bad_fault_config_is_400(emu, faults):
    status, body = emu.admin("POST", "faults", faults)
    assert status == 400 and body["error"]


# ----- admin API ---------------------------------------------------------------------------
def test_admin_projects_users_lists(emu):
    status, body = emu.admin("POST", "projects", {"api_key": "k2", "project_type": "user_id",
                                                  "project_id": 77})
    assert status == 200 and body["project"]["project_id"] == 77
    assert emu.admin("POST", "projects", {"api_key": "k2", "project_type": "email"})[0] == 409
    assert emu.admin("POST", "projects", {"api_key": "k3", "project_type": "x"})[0] == 400
    status, body = emu.admin("POST", "lists", {"api_key": "k2", "name": "seeded"})
    list_id = body["listId"]
    status, body = emu.admin("POST", "users", {"api_key": "k2", "users": [
        {"userId": "u1", "email": "u1@x.com", "dataFields": {"a": 1}, "listIds": [list_id]},
        {"userId": "u2"}, {"userId": "u1", "dataFields": {"b": "x"}},
        {"email": "no-user-id@x.com"}, {"userId": " bad"}]})
    assert status == 200
    assert (body["created"], body["updated"], [f["index"] for f in body["failed"]]) == (
        2, 1, [3, 4])
    assert emu.members(list_id) == [{"email": "u1@x.com", "userId": "u1",
                                     "dataFields": {"a": 1, "b": "x"}}]
    status, reply, _ = emu.api("GET", "/api/lists/getUsers?listId=%d" % list_id, key="k2")
    assert reply == "u1@x.com\n"
    # the new project's type is applied: unknown userId in updateExistingUsersOnly mode
    _, result, _ = emu.subscribe(list_id, [{"userId": "u2"}, {"userId": "u3"}], "k2",
                                 updateExistingUsersOnly=True)
    assert ok_result(result, 1, 1) == {"notFoundUserIds": ["u3"]}
    users = emu.admin("GET", "users?api_key=k2")[1]["users"]
    assert sorted(u["userId"] for u in users) == ["u1", "u2"]
    users = emu.admin("GET", "users?api_key=k2&email=U1@x.com")[1]["users"]
    assert [u["userId"] for u in users] == ["u1"]
    assert emu.admin("GET", "users?api_key=k2&userId=nobody")[1] == {"users": []}
    assert emu.admin("GET", "lists/999999/members")[0] == 404
    assert emu.admin("POST", "users", {"api_key": "nope", "users": []})[0] == 404


def test_admin_state_and_requests(emu):
    list_id = emu.create_list()
    emu.subscribe(list_id, [{"email": "a@x.com"}, {"email": "bad@"}],
                  updateExistingUsersOnly=False)
    emu.api("GET", "/api/lists", key="wrong")
    state = emu.admin("GET", "state")[1]
    assert {"projects", "requests", "recent", "invalid_received", "unsubscribe_flags",
            "faults", "next_list_id"} <= set(state)
    hybrid = state["projects"][0]
    assert hybrid["api_key"] == HYBRID and hybrid["project_type"] == "hybrid"
    assert hybrid["lists"] == [{"id": list_id, "name": "audience", "listType": "Standard",
                                "createdAt": hybrid["lists"][0]["createdAt"], "members": 1}]
    assert state["requests"]["by_endpoint"] == {"create_list": {"200": 1},
                                                "subscribe": {"200": 1},
                                                "get_lists": {"401": 1}}
    summary = state["recent"][1]
    assert (summary["endpoint"], summary["status"], summary["subscribers"],
            summary["successCount"], summary["failCount"], summary["listId"]) == (
        "subscribe", 200, 2, 1, 1, list_id)
    requests = emu.admin("GET", "requests?endpoint=subscribe")[1]["requests"]
    assert len(requests) == 1
    assert requests[0]["body"] == {"listId": list_id, "updateExistingUsersOnly": False,
                                   "subscribers": [{"email": "a@x.com"}, {"email": "bad@"}]}
    assert requests[0]["api_key"] == HYBRID and requests[0]["status"] == 200
    everything = emu.admin("GET", "requests?limit=10")[1]["requests"]
    assert [r["path"] for r in everything] == ["/api/lists", "/api/lists/subscribe",
                                               "/api/lists"]


def test_admin_reset_keeps_projects(emu):
    emu.admin("POST", "projects", {"api_key": "kept", "project_type": "hybrid"})
    list_id = emu.create_list()
    emu.subscribe(list_id, [{"email": "a@x.com"}])
    emu.set_faults({"latency_ms": 1})
    assert emu.admin("POST", "reset")[1] == {"ok": True}
    state = emu.admin("GET", "state")[1]
    assert all(p["lists"] == [] and p["users"] == 0 for p in state["projects"])
    assert "kept" in [p["api_key"] for p in state["projects"]]
    assert state["requests"]["total"] == 0 and state["faults"]["latency_ms"] == 1
    assert emu.create_list() > list_id      # ids are never reused
    emu.admin("POST", "reset", {"faults": True})
    assert emu.admin("GET", "faults")[1]["latency_ms"] == 0


def test_admin_unknown_route(emu):
    assert emu.admin("GET", "nope")[0] == 404
    assert emu.admin("POST", "users", b"{")[0] == 400


# ----- start-up options ---------------------------------------------------------------------
def test_config_file_and_cli_faults(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "projects": [{"api_key": "only", "project_type": "email", "project_id": 9,
                      "lists": [{"name": "pre", "description": "seeded"}]}],
        "first_list_id": 5000,
        "faults": {"rate_limits": [{"endpoint": "subscribe", "rate": 1, "burst": 5}]}}))
    emulator = Emulator(tmp_path, "--config", str(config), "--rate-limit", "get_lists=0.1:1",
                        "--fault", '{"kind": "error_503", "endpoint": "delete_list"}',
                        "--retry-after", "2")
    try:
        status, body, _ = emulator.api("GET", "/api/lists", key="only")
        assert body["lists"][0]["id"] == 5000 and body["lists"][0]["description"] == "seeded"
        status, _, headers = emulator.api("GET", "/api/lists", key="only")
        assert status == 429 and headers["Retry-After"] == "2"
        assert emulator.api("DELETE", "/api/lists/5000", key="only")[0] == 503
        assert emulator.api("GET", "/api/lists", key=HYBRID)[0] == 401
        faults = emulator.admin("GET", "faults")[1]
        assert [r["endpoint"] for r in faults["rate_limits"]] == ["subscribe", "get_lists"]
    finally:
        assert emulator.stop() == 0


def test_bad_config_exits_2(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"projects": [{"api_key": "k", "project_type": "weird"}]}))
    proc = subprocess.run([PYTHON, EMULATOR, "--config", str(config)],
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2 and "bad configuration" in proc.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls(tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    emulator = Emulator(tmp_path, "--tls-cert", cert, "--tls-key", key)
    try:
        assert emulator.banner.startswith("iterable emulator listening on https://")
        context = ssl.create_default_context(cafile=cert)
        context.check_hostname = False
        conn = http.client.HTTPSConnection("127.0.0.1", emulator.port, context=context,
                                           timeout=5)
        status, _, raw = send(conn, "GET", "/api/lists", key=HYBRID)
        assert (status, json.loads(raw)) == (200, {"lists": []})
        conn.close()
    finally:
        assert emulator.stop() == 0
