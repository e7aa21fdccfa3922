"""Tests of the emulator's event-sync endpoints (events/track, events/trackBulk,
commerce/trackPurchase, commerce/updateCart, users/registerDeviceToken,
users/registerBrowserToken, users/updateEmail), through HTTP only.

Run: /usr/bin/python3 -m pytest -q test/emulator/test_emulator_events.py
"""

import http.client
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_emulator import EMAIL, HYBRID, USERID, Emulator  # noqa: E402

TRACK_FAILED = ["invalidEmails", "invalidUserIds", "notFoundEmails", "notFoundUserIds",
                "forgottenEmails", "forgottenUserIds"]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    emulator = Emulator(tmp_path_factory.mktemp("emu_events"))
    yield emulator
    assert emulator.stop() == 0


@pytest.fixture(autouse=True)
def clean(emu):
    assert emu.admin("POST", "reset", {"faults": True})[0] == 200


def bulk(emu, events, key=HYBRID):
    return emu.api("POST", "/api/events/trackBulk", {"events": events}, key)


def events_of(emu, key=HYBRID, **query):
    q = "&".join("%s=%s" % kv for kv in dict(api_key=key, **query).items())
    status, body = emu.admin("GET", "events?" + q)
    assert status == 200
    return body["events"]


def writes_of(emu, key=HYBRID):
    status, body = emu.admin("GET", "writes?api_key=" + key)
    assert status == 200
    return body


def settings(emu, **values):
    status, body = emu.admin("POST", "event_settings", dict(api_key=values.pop("key", HYBRID),
                                                             **values))
    assert status == 200, body
    return body["settings"]


def bulk_ok(result, success, fail=0):
    """Assert the SPEC shape of a BulkTrackResponse; return the non-empty failedUpdates."""
    assert set(result) == {"successCount", "failCount", "invalidEmails", "invalidUserIds",
                           "disallowedEventNames", "failedUpdates", "createdFields",
                           "filteredOutFields"}
    assert sorted(result["failedUpdates"]) == sorted(TRACK_FAILED)
    assert (result["successCount"], result["failCount"]) == (success, fail), result
    return {k: v for k, v in result["failedUpdates"].items() if v}


def event(name="signup", email="a@example.com", **extra):
    out = {"eventName": name}
    if email is not None:
        out["email"] = email
    out.update(extra)
    return out


# ----- trackBulk ----------------------------------------------------------------------
def test_track_bulk_stores_events_by_id(emu):
    status, body, _ = bulk(emu, [
        event(id="ev-1", createdAt=1700000000, dataFields={"plan": "pro", "n": 1},
              campaignId=12, templateId=34),
        event("login", email=None, userId="u1", id="ev-2"),
    ])
    assert status == 200
    assert bulk_ok(body, 2) == {}
    assert sorted(body["createdFields"]) == ["n", "plan"]
    stored = {e["id"]: e for e in events_of(emu)}
    assert set(stored) == {"ev-1", "ev-2"}
    first = stored["ev-1"]
    assert (first["eventName"], first["email"], first["createdAt"], first["dataFields"],
            first["campaignId"], first["templateId"], first["writes"], first["endpoint"]) == (
        "signup", "a@example.com", 1700000000, {"plan": "pro", "n": 1}, 12, 34, 1,
        "track_bulk")
    assert stored["ev-2"]["profile"] == {"email": None, "userId": "u1"}
    # the users were created (hybrid project)
    assert emu.admin("GET", "users?api_key=%s&userId=u1" % HYBRID)[1]["users"]


def test_existing_id_is_replaced_and_writes_counted(emu):
    bulk(emu, [event(id="dup-1", dataFields={"v": 1})])
    status, body, _ = bulk(emu, [event("renamed", id="dup-1", dataFields={"v": 2}),
                                 event(id="other")])
    assert status == 200 and bulk_ok(body, 2) == {}
    stored = {e["id"]: e for e in events_of(emu)}
    assert len(stored) == 2
    assert stored["dup-1"]["eventName"] == "renamed"
    assert stored["dup-1"]["dataFields"] == {"v": 2}
    writes = writes_of(emu)
    assert writes["events"] == {"dup-1": 2, "other": 1}
    assert writes["rewritten"]["events"] == ["dup-1"]


def test_ids_are_per_project(emu):
    bulk(emu, [event(id="same")], HYBRID)
    bulk(emu, [event(id="same", email=None, userId="u9")], USERID)
    assert writes_of(emu, HYBRID)["events"] == {"same": 1}
    assert writes_of(emu, USERID)["events"] == {"same": 1}


def test_event_without_id_gets_a_generated_one(emu):
    bulk(emu, [event(), event()])
    stored = events_of(emu)
    assert len(stored) == 2
    for record in stored:
        assert len(record["id"]) == 30 and all(c in "0123456789abcdef" for c in record["id"])
        assert record["createdAt_sent"] is False
        assert abs(record["createdAt"] - time.time()) < 3600


@pytest.mark.parametrize("bad_id", ["has space", "under_score", "dot.ted", "é", "",
                                    "x" * 513])
def test_invalid_event_id_refuses_the_request(emu, bad_id):
    status, body, _ = bulk(emu, [event(id="fine-1"), event(id=bad_id)])
    assert status == 400 and body["code"] == "BadParams"
    assert body["params"] == {"id": bad_id}
    assert events_of(emu) == []
    counts = emu.admin("GET", "invalid_received")[1]["counts"]
    assert counts["invalid_ids"] == 1


def test_longest_id_accepted(emu):
    status, body, _ = bulk(emu, [event(id="A-9" * 170 + "xy")])     # 512 bytes
    assert status == 200 and bulk_ok(body, 1) == {}


def test_per_record_failures(emu):
    emu.admin("POST", "forget", {"api_key": EMAIL, "emails": ["gone@example.com"]})
    status, body, _ = bulk(emu, [
        event(email="ok@example.com", id="r1"),
        event(email="bad@", id="r2"),
        event(email=None, userId="unknown-user", id="r3"),  # email project: no creation
        event(email="gone@example.com", id="r4"),
        event(email=None, userId=" padded", id="r5"),
    ], EMAIL)
    assert status == 200
    assert bulk_ok(body, 1, 4) == {"invalidEmails": ["bad@"],
                                   "notFoundUserIds": ["unknown-user"],
                                   "forgottenEmails": ["gone@example.com"],
                                   "invalidUserIds": [" padded"]}
    assert body["invalidEmails"] == ["bad@"] and body["invalidUserIds"] == [" padded"]
    assert [e["id"] for e in events_of(emu, EMAIL)] == ["r1"]


def test_userid_project_needs_a_known_email_for_email_only_events(emu):
    emu.admin("POST", "users", {"api_key": USERID,
                                "users": [{"userId": "u1", "email": "k@example.com"}]})
    status, body, _ = bulk(emu, [event(email="k@example.com", id="a"),
                                 event(email="new@example.com", id="b")], USERID)
    assert bulk_ok(body, 1, 1) == {"notFoundEmails": ["new@example.com"]}
    assert events_of(emu, USERID)[0]["profile"] == {"email": "k@example.com", "userId": "u1"}


def test_hybrid_event_goes_to_the_emails_user(emu):
    emu.admin("POST", "users", {"api_key": HYBRID, "users": [
        {"email": "one@example.com", "userId": "one"}, {"userId": "two"}]})
    status, body, _ = bulk(emu, [event(email="one@example.com", userId="two", id="h")])
    assert bulk_ok(body, 1) == {}
    assert events_of(emu)[0]["profile"] == {"email": "one@example.com", "userId": "one"}


def test_disallowed_event_names(emu):
    settings(emu, disallowed_event_names=["spam"])
    status, body, _ = bulk(emu, [event("spam", id="s1"), event("ok", id="o1"),
                                 event("spam", id="s2")])
    assert bulk_ok(body, 1, 2) == {}
    assert body["disallowedEventNames"] == ["spam"]
    assert [e["id"] for e in events_of(emu)] == ["o1"]
    # "Allow New Custom Events" off: names never tracked before are refused
    settings(emu, disallowed_event_names=[], allow_new_event_names=False)
    status, body, _ = bulk(emu, [event("ok", id="o2"), event("brand-new", id="n1")])
    assert bulk_ok(body, 1, 1) == {} and body["disallowedEventNames"] == ["brand-new"]


def test_field_type_conflict_refuses_the_whole_request(emu):
    bulk(emu, [event("purchase-like", dataFields={"amount": 10, "meta": {"x": "s"}})])
    status, body, _ = bulk(emu, [event("purchase-like", id="ok-1", dataFields={"amount": 3}),
                                 event("purchase-like", id="bad-1",
                                       dataFields={"amount": "ten"})])
    assert status == 400 and body["code"] == "RequestFieldsTypesMismatched"
    assert body["params"]["validationErrors"] == {"amount": {
        "incomingTypes": ["string"], "expectedType": "number", "category": "event",
        "offendingValue": "ten", "_type": "UnexpectedType"}}
    assert len(events_of(emu)) == 1         # nothing of the refused request was stored
    # nested fields are typed as parent.child; types are per event name
    status, body, _ = bulk(emu, [event("purchase-like", dataFields={"meta": {"x": 1}})])
    assert status == 400 and "meta.x" in body["params"]["validationErrors"]
    status, body, _ = bulk(emu, [event("other-event", dataFields={"amount": "ten"})])
    assert status == 200 and bulk_ok(body, 1) == {}
    # within one request the first value fixes the type
    status, body, _ = bulk(emu, [event("fresh", dataFields={"k": True}),
                                 event("fresh", dataFields={"k": "no"})])
    assert status == 400


@pytest.mark.parametrize("events, path, msg", [
    ([{"email": "a@example.com", "eventName": None}], "obj.events[0].eventName",
     "error.expected.jsstring"),
    ([{"email": "a@example.com"}], "obj.events[0].eventName", "error.path.missing"),
    ([event(createdAt="2024-01-01")], "obj.events[0].createdAt", "error.expected.jsnumber"),
    ([event(createdAt=1.5)], "obj.events[0].createdAt", "error.expected.long"),
    ([event(dataFields=[1])], "obj.events[0].dataFields", "error.expected.jsobject"),
    ([event(id=12)], "obj.events[0].id", "error.expected.jsstring"),
    ([event(), 3], "obj.events[1]", "error.expected.jsobject"),
    ([event(campaignId="1")], "obj.events[0].campaignId", "error.expected.jsnumber"),
])
def test_bad_json_body(emu, events, path, msg):
    status, body, _ = bulk(emu, events)
    assert status == 400 and body["code"] == "BadJsonBody"
    assert body["params"][path] == [{"msg": [msg], "args": []}]
    assert events_of(emu) == []


def test_bad_json_body_echoes_the_api_key(emu):
    # Iterable has echoed request headers, the Api-Key among them (reference 10.8).
    status, body, _ = bulk(emu, [{"eventName": None, "email": "a@example.com"}])
    assert status == 400 and "test-key-hybrid" in body["msg"]


def test_events_key_missing_and_not_json(emu):
    status, body, _ = emu.api("POST", "/api/events/trackBulk", {})
    assert status == 400 and body["params"] == {
        "obj.events": [{"msg": ["error.path.missing"], "args": []}]}
    status, body, _ = emu.api("POST", "/api/events/trackBulk", b"{nope")
    assert status == 400 and body["code"] == "BadJsonBody"


def test_event_without_identifier_refuses_the_request(emu):
    status, body, _ = bulk(emu, [event(), {"eventName": "x"}])
    assert status == 400 and body["code"] == "BadParams"
    assert "events[1]" in body["msg"]
    assert events_of(emu) == []


def test_empty_events(emu):
    status, body, _ = bulk(emu, [])
    assert status == 200 and bulk_ok(body, 0) == {}


def test_recorded_answer_shape(emu):
    settings(emu, track_bulk_shape="recorded")
    status, body, _ = bulk(emu, [event(), event(email="bad@")])
    assert body == {"successCount": 1, "failCount": 1, "invalidEmails": ["bad@"],
                    "invalidUserIds": [], "disallowedEventNames": []}


def test_body_limit_is_413(emu):
    settings(emu, body_limits={"track_bulk": 300})
    status, body, _ = bulk(emu, [event(dataFields={"pad": "x" * 400})])
    assert status == 413 and body["code"] == "BatchTooLarge"
    assert events_of(emu) == []
    status, body, _ = bulk(emu, [event()])
    assert status == 200


def test_milliseconds_created_at_is_noted(emu):
    bulk(emu, [event(id="s", createdAt=1700000000), event(id="ms", createdAt=1700000000000)])
    invalid = emu.admin("GET", "invalid_received")[1]
    assert invalid["counts"]["created_at_ms"] == 1
    assert [s["value"] for s in invalid["samples"] if s["kind"] == "created_at_ms"] == [
        1700000000000]


def test_track_bulk_rate_limit_and_faults(emu):
    emu.set_faults({"rate_limits": [{"endpoint": "track_bulk", "rate": 0.5, "burst": 2}]})
    statuses = [bulk(emu, [event(id="rl-%d" % i)])[0] for i in range(3)]
    assert statuses == [200, 200, 429]
    assert sorted(writes_of(emu)["events"]) == ["rl-0", "rl-1"]     # the 429 changed nothing
    assert emu.api("POST", "/api/events/track", event(id="t"))[0] == 200     # own bucket
    emu.set_faults({"rules": [{"kind": "error_500", "endpoint": "track_bulk", "next": 1},
                              {"kind": "status", "endpoint": "track_purchase", "next": 1,
                               "status": 409, "body": {"msg": "scripted", "code": "X",
                                                       "params": None}}]})
    assert bulk(emu, [event(id="f1")])[0] == 500
    assert "f1" not in writes_of(emu)["events"]
    assert bulk(emu, [event(id="f1")])[0] == 200
    status, body, _ = emu.api("POST", "/api/commerce/trackPurchase", purchase())
    assert status == 409 and body["msg"] == "scripted"
    state = emu.admin("GET", "state")[1]
    assert state["requests"]["by_endpoint"]["track_bulk"] == {"200": 3, "429": 1, "500": 1}


def test_realistic_rate_limits_include_track_bulk(tmp_path):
    emulator = Emulator(tmp_path, "--realistic-rate-limits")
    try:
        limits = emulator.admin("GET", "faults")[1]["rate_limits"]
        assert {"endpoint": "track_bulk", "rate": 10, "burst": 10, "limited": 0} in limits
        statuses = [emulator.api("POST", "/api/events/trackBulk",
                                 {"events": [event()]})[0] for _ in range(12)]
        assert statuses.count(429) >= 1 and statuses[:10] == [200] * 10
    finally:
        assert emulator.stop() == 0


def test_resend_of_the_same_ids_replaces(emu):
    # A resend of the same ids (as after a lost answer) leaves one event per id.
    batch = [event(id="lost-%d" % i) for i in range(5)]
    bulk(emu, batch)
    bulk(emu, batch)
    assert len(events_of(emu)) == 5
    assert set(writes_of(emu)["events"].values()) == {2}


def test_lost_answer_after_apply_then_resend_replaces(emu):
    emu.set_faults({"rules": [{"kind": "drop_after_apply", "endpoint": "track_bulk", "next": 1}]})
    batch = [event(id="la-1"), event(id="la-2")]
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        bulk(emu, batch)
    assert writes_of(emu)["events"] == {"la-1": 1, "la-2": 1}     # applied, answer lost
    status, body, _ = bulk(emu, batch)                              # the client's resend
    assert status == 200 and bulk_ok(body, 2) == {}
    assert len(events_of(emu)) == 2
    assert writes_of(emu)["events"] == {"la-1": 2, "la-2": 2}
    state = emu.admin("GET", "state")[1]
    assert state["requests"]["by_endpoint"]["track_bulk"] == {"0": 1, "200": 1}


def test_lost_answer_after_apply_on_list_subscribe(emu):
    list_id = emu.create_list()
    emu.set_faults({"rules": [{"kind": "drop_after_apply", "endpoint": "subscribe", "next": 1}]})
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        emu.subscribe(list_id, [{"email": "lost@example.com"}])
    assert [m["email"] for m in emu.members(list_id)] == ["lost@example.com"]


# ----- track --------------------------------------------------------------------------
def test_track_single(emu):
    status, body, _ = emu.api("POST", "/api/events/track",
                              event(id="one-1", dataFields={"a": 1}))
    assert status == 200
    assert body == {"msg": "Event with id: one-1 tracked.", "code": "Success",
                    "params": {"id": "one-1"}}
    status, body, _ = emu.api("POST", "/api/events/track", event())
    generated = body["params"]["id"]
    assert len(generated) == 30
    assert sorted(writes_of(emu)["events"]) == sorted(["one-1", generated])


def test_track_single_errors(emu):
    status, body, _ = emu.api("POST", "/api/events/track", event(email="bad@"))
    assert (status, body["code"]) == (400, "InvalidEmailAddressError")
    status, body, _ = emu.api("POST", "/api/events/track", {"eventName": "x"})
    assert (status, body["code"]) == (400, "BadParams")
    status, body, _ = emu.api("POST", "/api/events/track", event(id="a b"))
    assert (status, body["code"]) == (400, "BadParams")
    status, body, _ = emu.api("POST", "/api/events/track", event(email=None, userId="nobody"),
                              EMAIL)
    assert (status, body["code"]) == (400, "UnknownUserIdError")
    settings(emu, disallowed_event_names=["nope"])
    status, body, _ = emu.api("POST", "/api/events/track", event("nope", id="d"))
    assert status == 200 and body["msg"] == "event nope is disallowed from tracking."
    assert writes_of(emu)["events"] == {}


# ----- commerce -----------------------------------------------------------------------
def item(i="sku-1", **extra):
    return dict({"id": i, "name": "Item " + i, "price": 9.5, "quantity": 2}, **extra)


def purchase(**extra):
    body = {"user": {"email": "buyer@example.com"}, "items": [item()], "total": 19.0}
    body.update(extra)
    return body


def test_track_purchase_stores_by_id_and_clears_the_cart(emu):
    status, _, _ = emu.api("POST", "/api/commerce/updateCart",
                           {"user": {"email": "buyer@example.com"}, "items": [item()]})
    assert status == 200
    carts = emu.admin("GET", "carts?api_key=" + HYBRID)[1]
    assert carts["carts"] == [{"email": "buyer@example.com", "userId": None,
                               "items": [item()]}]
    status, body, _ = emu.api("POST", "/api/commerce/trackPurchase", purchase(
        id="order-1", createdAt=1700000000, dataFields={"coupon": "X"},
        user={"email": "buyer@example.com", "dataFields": {"tier": "gold"}}))
    assert (status, body) == (200, {"msg": "", "code": "Success", "params": None})
    emu.api("POST", "/api/commerce/trackPurchase", purchase(id="order-1", total=20.0))
    purchases = emu.admin("GET", "purchases?api_key=" + HYBRID)[1]["purchases"]
    assert len(purchases) == 1
    assert (purchases[0]["id"], purchases[0]["total"], purchases[0]["writes"]) == (
        "order-1", 20.0, 2)
    assert emu.admin("GET", "carts?api_key=" + HYBRID)[1]["carts"][0]["items"] == []
    user = emu.admin("GET", "users?api_key=%s&email=buyer@example.com" % HYBRID)[1]["users"][0]
    assert user["dataFields"]["tier"] == "gold"


@pytest.mark.parametrize("body, path, msg", [
    (purchase(total=""), "obj.total", "error.expected.jsnumber"),
    (purchase(items=None), "obj.items", "error.expected.jsarray"),
    (purchase(items=[{"id": "1", "name": "n", "price": 1}]), "obj.items[0].quantity",
     "error.path.missing"),
    (purchase(items=[item(price="1")]), "obj.items[0].price", "error.expected.jsnumber"),
    (purchase(items=[item(id=7)]), "obj.items[0].id", "error.expected.jsstring"),
    (purchase(items=[item(quantity=1.5)]), "obj.items[0].quantity", "error.expected.long"),
    (purchase(items=[item(categories=["a", 2])]), "obj.items[0].categories[1]",
     "error.expected.jsstring"),
    (purchase(items=["x"]), "obj.items[0]", "error.expected.jsobject"),
    ({"items": [], "total": 1}, "obj.user", "error.path.missing"),
])
def test_track_purchase_bad_json_body(emu, body, path, msg):
    status, answer, _ = emu.api("POST", "/api/commerce/trackPurchase", body)
    assert status == 400 and answer["code"] == "BadJsonBody"
    assert answer["params"][path] == [{"msg": [msg], "args": []}]
    assert emu.admin("GET", "purchases?api_key=" + HYBRID)[1]["purchases"] == []


def test_commerce_identity_errors(emu):
    status, body, _ = emu.api("POST", "/api/commerce/updateCart", {"items": [], "user": {}})
    assert (status, body["msg"]) == (400, "Either email or userId must be set: "
                                          "ApiUserUpdateRequest(None,None,None,None)")
    emu.admin("POST", "users", {"api_key": HYBRID, "users": [
        {"email": "x@example.com", "userId": "x"}, {"userId": "y"}]})
    status, body, _ = emu.api("POST", "/api/commerce/trackPurchase",
                              purchase(user={"email": "x@example.com", "userId": "y"}))
    assert status == 409
    emu.admin("POST", "forget", {"api_key": HYBRID, "emails": ["f@example.com"]})
    status, body, _ = emu.api("POST", "/api/commerce/trackPurchase",
                              purchase(user={"email": "f@example.com"}))
    assert (status, body["code"]) == (409, "ForgottenUserError")
    status, body, _ = emu.api("POST", "/api/commerce/trackPurchase", purchase(id="bad id"))
    assert (status, body["code"]) == (400, "BadParams")
    # email project: userId-only needs preferUserId to create the user
    status, body, _ = emu.api("POST", "/api/commerce/updateCart",
                              {"user": {"userId": "new"}, "items": []}, EMAIL)
    assert status == 400
    status, body, _ = emu.api("POST", "/api/commerce/updateCart",
                              {"user": {"userId": "new", "preferUserId": True}, "items": []},
                              EMAIL)
    assert status == 200
    users = emu.admin("GET", "users?api_key=%s&userId=new" % EMAIL)[1]["users"]
    assert users[0]["email"].endswith("@placeholder.email")
    assert emu.admin("GET", "purchases?api_key=" + HYBRID)[1]["purchases"] == []


def test_purchase_field_type_conflict(emu):
    emu.api("POST", "/api/commerce/trackPurchase", purchase(dataFields={"coupon": "A"}))
    status, body, _ = emu.api("POST", "/api/commerce/trackPurchase",
                              purchase(id="p2", dataFields={"coupon": 5}))
    assert status == 400 and body["code"] == "RequestFieldsTypesMismatched"
    assert body["params"]["validationErrors"]["coupon"]["category"] == "purchase"
    emu.api("POST", "/api/commerce/updateCart",
            {"user": {"email": "u@example.com", "dataFields": {"age": 3}}, "items": []})
    status, body, _ = emu.api("POST", "/api/commerce/updateCart",
                              {"user": {"email": "u@example.com", "dataFields": {"age": "3"}},
                               "items": []})
    assert status == 400
    assert body["params"]["validationErrors"]["age"]["category"] == "user"


def test_update_cart_replaces_and_logs(emu):
    for items in ([item("a")], [item("a"), item("b")], []):
        assert emu.api("POST", "/api/commerce/updateCart",
                       {"user": {"userId": "c1"}, "items": items})[0] == 200
    carts = emu.admin("GET", "carts?api_key=" + HYBRID)[1]
    assert carts["carts"] == [{"email": None, "userId": "c1", "items": []}]
    assert [len(u["items"]) for u in carts["updates"]] == [1, 2, 0]


# ----- tokens -------------------------------------------------------------------------
def device_body(token="tok-1", platform="APNS", **extra):
    body = {"email": "d@example.com",
            "device": {"token": token, "platform": platform, "applicationName": "my-app"}}
    body.update(extra)
    return body


def test_register_device_token(emu):
    for platform in ("APNS", "APNS_SANDBOX", "GCM"):
        status, body, _ = emu.api("POST", "/api/users/registerDeviceToken",
                                  device_body("t-" + platform, platform))
        assert (status, body["code"]) == (200, "Success")
    again = device_body("t-GCM", "GCM")
    again["device"]["dataFields"] = {"os": "14"}
    assert emu.api("POST", "/api/users/registerDeviceToken", again)[0] == 200
    tokens = emu.admin("GET", "tokens?api_key=" + HYBRID)[1]["devices"]
    assert sorted(t["token"] for t in tokens) == ["t-APNS", "t-APNS_SANDBOX", "t-GCM"]
    gcm = next(t for t in tokens if t["token"] == "t-GCM")
    assert (gcm["registrations"], gcm["dataFields"], gcm["email"]) == (2, {"os": "14"},
                                                                       "d@example.com")


def test_register_device_token_errors(emu):
    status, body, _ = emu.api("POST", "/api/users/registerDeviceToken",
                              device_body(platform="FCM"))
    assert status == 400 and body["params"] == {
        "obj.device.platform": [{"msg": ["error.expected.validenumvalue"], "args": []}]}
    body = device_body()
    del body["device"]["applicationName"]
    status, answer, _ = emu.api("POST", "/api/users/registerDeviceToken", body)
    assert status == 400 and "obj.device.applicationName" in answer["params"]
    status, answer, _ = emu.api("POST", "/api/users/registerDeviceToken", device_body(""))
    assert (status, answer["code"]) == (500, "GenericError")
    status, answer, _ = emu.api("POST", "/api/users/registerDeviceToken",
                                device_body(email=""))
    assert (status, answer["code"]) == (400, "InvalidEmailAddressError")
    body = device_body()
    del body["email"]
    assert emu.api("POST", "/api/users/registerDeviceToken", body)[0] == 400
    assert emu.admin("GET", "tokens?api_key=" + HYBRID)[1]["devices"] == []


def test_register_browser_token(emu):
    body = {"userId": "b1", "browserToken": "web-1"}
    assert emu.api("POST", "/api/users/registerBrowserToken", body)[0] == 200
    assert emu.api("POST", "/api/users/registerBrowserToken", body)[0] == 200
    tokens = emu.admin("GET", "tokens?api_key=" + HYBRID)[1]["browserTokens"]
    assert tokens == [{"email": None, "userId": "b1", "browserToken": "web-1",
                       "registrations": 2}]
    status, answer, _ = emu.api("POST", "/api/users/registerBrowserToken",
                                {"email": "", "browserToken": "x"})
    assert (status, answer["msg"]) == (400, "Invalid email: ")
    status, answer, _ = emu.api("POST", "/api/users/registerBrowserToken", {"userId": "b1"})
    assert status == 400 and "obj.browserToken" in answer["params"]


# ----- updateEmail --------------------------------------------------------------------
def test_update_email_moves_profile_and_events(emu):
    emu.admin("POST", "users", {"api_key": EMAIL, "users": [
        {"email": "old@example.com", "userId": "u1", "dataFields": {"k": 1}},
        {"email": "taken@example.com"}]})
    bulk(emu, [event(email="old@example.com", id="e1")], EMAIL)
    status, body, _ = emu.api("POST", "/api/users/updateEmail",
                              {"currentEmail": "old@example.com", "newEmail": "New@example.com"},
                              EMAIL)
    assert (status, body["code"]) == (200, "Success")
    users = emu.admin("GET", "users?api_key=%s&userId=u1" % EMAIL)[1]["users"]
    assert users == [{"email": "new@example.com", "userId": "u1", "dataFields": {"k": 1}}]
    assert events_of(emu, EMAIL)[0]["profile"]["email"] == "new@example.com"
    changes = emu.admin("GET", "email_changes?api_key=" + EMAIL)[1]["changes"]
    assert [(c["oldEmail"], c["newEmail"]) for c in changes] == [
        ("old@example.com", "new@example.com")]
    # a resend: the current email no longer exists
    status, body, _ = emu.api("POST", "/api/users/updateEmail",
                              {"currentEmail": "old@example.com", "newEmail": "new@example.com"},
                              EMAIL)
    assert (status, body["code"]) == (400, "BadParams")
    # by userId; the new email is taken
    status, body, _ = emu.api("POST", "/api/users/updateEmail",
                              {"currentUserId": "u1", "newEmail": "taken@example.com"}, EMAIL)
    assert (status, body["code"], body["msg"]) == (409, "EmailAlreadyExists",
                                                   "New email already exists")
    emu.admin("POST", "forget", {"api_key": EMAIL, "emails": ["forgot@example.com"]})
    status, body, _ = emu.api("POST", "/api/users/updateEmail",
                              {"currentUserId": "u1", "newEmail": "forgot@example.com"}, EMAIL)
    assert (status, body["msg"]) == (409, "New email is on the forgotten list")
    status, body, _ = emu.api("POST", "/api/users/updateEmail",
                              {"currentUserId": "u1", "newEmail": "bad@"}, EMAIL)
    assert (status, body["code"]) == (400, "InvalidEmailAddressError")
    assert len(emu.admin("GET", "email_changes?api_key=" + EMAIL)[1]["changes"]) == 1


@pytest.mark.parametrize("key", [HYBRID, USERID])
def test_update_email_only_in_email_projects(emu, key):
    emu.admin("POST", "users", {"api_key": key, "users": [
        {"email": "old@example.com", "userId": "u1"}]})
    status, body, _ = emu.api("POST", "/api/users/updateEmail",
                              {"currentUserId": "u1", "newEmail": "n@example.com"}, key)
    assert (status, body["code"]) == (400, "BadParams")
    assert "users/update" in body["msg"]


# ----- admin --------------------------------------------------------------------------
def test_event_settings_validation_and_reset(emu):
    assert emu.admin("POST", "event_settings", {"api_key": HYBRID, "bogus": 1})[0] == 400
    assert emu.admin("POST", "event_settings", {"api_key": HYBRID,
                                                "track_bulk_shape": "x"})[0] == 400
    assert emu.admin("POST", "event_settings", {"api_key": "nope"})[0] == 404
    settings(emu, disallowed_event_names=["a"])
    bulk(emu, [event(id="kept")])
    emu.admin("POST", "reset", {})
    assert emu.admin("GET", "event_settings?api_key=" + HYBRID)[1]["settings"][
        "disallowed_event_names"] == []
    assert events_of(emu) == [] and writes_of(emu)["events"] == {}


def test_events_filter(emu):
    bulk(emu, [event("a", id="1"), event("b", id="2", email="z@example.com")])
    assert [e["id"] for e in events_of(emu, eventName="b")] == ["2"]
    assert [e["id"] for e in events_of(emu, email="a@example.com")] == ["1"]


def test_bad_api_key(emu):
    status, body, _ = emu.api("POST", "/api/events/trackBulk", {"events": []}, key="nope")
    assert status == 401 and body["code"] == "BadApiKey"
