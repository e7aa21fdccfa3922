"""Identifier validation before sending, per-record failures reported by Iterable, and retries of
failed records."""

import collections
import json

import pytest

from invariants import check_invariants
from sync_helpers import (add_users, forget, invalid_total, list_id_of, log_summary, logs, member_users, members,
                          preview, request_counts, run_sync, snapshot_rows, sql, tag)


def plan_of(rows):
    """Counter of (operation, action, record_key, valid, error_code)."""
    return collections.Counter((r["operation"], r["action"], r["record_key"], r["valid"], r["error_code"])
                               for r in rows)


def log_plan(db, run_id):
    """The run's logs in preview_sync()'s terms (a refused row is one that failed validation)."""
    return collections.Counter((r["operation"], r["action"], r["record_key"],
                                r["error_code"] not in ("invalid_email", "invalid_user_id", "missing_identifier",
                                                        "duplicate_key"),
                                r["error_code"]) for r in logs(db, run_id))


def test_email_validation(db, emulator):
    t = tag(db)
    invalid_before = invalid_total(emulator)
    sql(db, "CREATE TABLE contacts (id integer, email text)")
    rows = [
        (1, None),                                        # missing
        (2, ""),                                          # missing
        (3, "   "),                                       # missing (blank)
        (4, "  Mixed.Case.%s@Example.COM \t" % t),        # normalized, sent lowercased
        (5, "not-an-email"),                              # invalid
        (6, "two@@%s.example.com" % t),                   # invalid
        (7, "plain.%s@example.com" % t),
        (8, "Dup.%s@example.com" % t),                    # the same address twice
        (9, "dup.%s@EXAMPLE.com " % t),
    ]
    sql(db, "INSERT INTO contacts VALUES " + ", ".join(["(%s, %s)"] * len(rows)), [v for r in rows for v in r])
    sql(db, "SELECT iterable_audience.create_sync('contacts', 'email', 'contacts', new_list_name => 'contacts', "
            "email_column => 'email')")
    mixed = "mixed.case.%s@example.com" % t
    plain = "plain.%s@example.com" % t
    dup = "dup.%s@example.com" % t

    plan = preview(db, "contacts")
    assert plan_of(plan) == collections.Counter({
        ("insert", "subscribe", mixed, True, None): 1,
        ("insert", "subscribe", plain, True, None): 1,
        ("insert", "subscribe", dup, True, None): 1,
        ("insert", "subscribe", dup, False, "duplicate_key"): 1,
        ("insert", "subscribe", None, False, "missing_identifier"): 3,
        ("insert", "subscribe", "not-an-email", False, "invalid_email"): 1,
        ("insert", "subscribe", "two@@%s.example.com" % t, False, "invalid_email"): 1,
    })
    by_key = {r["record_key"]: r for r in plan if r["valid"]}
    assert by_key[mixed]["email"] == mixed
    assert all(r["error_message"] for r in plan if not r["valid"])

    run = run_sync(db, "contacts")
    assert run["status"] == "succeeded_with_failures", run
    assert (run["audience_rows"], run["planned_subscribes"], run["subscribed"], run["failed"]) == (9, 3, 3, 6)
    assert log_plan(db, run["run_id"]) == plan_of(plan)
    assert log_summary(db, run["run_id"]) == {
        ("insert", "subscribe", "succeeded", None): 3,
        ("insert", "subscribe", "failed", "missing_identifier"): 3,
        ("insert", "subscribe", "failed", "invalid_email"): 2,
        ("insert", "subscribe", "failed", "duplicate_key"): 1,
    }
    body = emulator.requests("subscribe", limit=1)[0]["body"]
    assert sorted(s["email"] for s in body["subscribers"]) == sorted([mixed, plain, dup])
    assert members(emulator, list_id_of(db, "contacts")) == {(mixed, None), (plain, None), (dup, None)}
    assert invalid_total(emulator) == invalid_before
    check_invariants(db, emulator, "contacts")


def test_user_id_validation_and_duplicates(db, emulator):
    t = tag(db)
    invalid_before = invalid_total(emulator)
    ok = "ok-%s" % t
    max_len = (t + "-" + "x" * 52)[:52]
    too_long = (t + "-" + "y" * 53)[:53]
    dup = "dup-%s" % t
    sql(db, "CREATE TABLE members (uid text, plan text)")
    rows = [
        (ok, "a"),
        (max_len, "a"),
        (too_long, "a"),              # 53 characters
        (" lead-%s" % t, "a"),        # leading space
        ("trail-%s " % t, "a"),       # trailing space
        ("\u00fcser-%s" % t, "a"),    # non-ASCII
        ("tab\t%s" % t, "a"),         # not printable
        (None, "a"),                  # missing
        ("", "a"),                    # missing
        (dup, "c"),                   # three rows with the same userId
        (dup, "a"),
        (dup, "b"),
    ]
    sql(db, "INSERT INTO members VALUES " + ", ".join(["(%s, %s)"] * len(rows)), [v for r in rows for v in r])
    sql(db, "SELECT iterable_audience.create_sync('members', 'userid', 'members', new_list_name => 'members', "
            "user_id_column => 'uid', data_fields => '{\"plan\": \"plan\"}')")

    plan = preview(db, "members")
    invalid = [too_long, " lead-%s" % t, "trail-%s " % t, "\u00fcser-%s" % t, "tab\t%s" % t]
    expected = collections.Counter({("insert", "subscribe", k, False, "invalid_user_id"): 1 for k in invalid})
    expected.update({("insert", "subscribe", ok, True, None): 1, ("insert", "subscribe", max_len, True, None): 1,
                     ("insert", "subscribe", None, False, "missing_identifier"): 2,
                     ("insert", "subscribe", dup, True, None): 1,
                     ("insert", "subscribe", dup, False, "duplicate_key"): 2})
    assert plan_of(plan) == expected
    sent_dup = [r["data_fields"] for r in plan if r["record_key"] == dup and r["valid"]]
    # Deterministic: every preview picks the same row of the duplicates.
    for _ in range(3):
        assert [r["data_fields"] for r in preview(db, "members") if r["record_key"] == dup and r["valid"]] == sent_dup

    run = run_sync(db, "members")
    assert run["status"] == "succeeded_with_failures", run
    assert (run["planned_subscribes"], run["subscribed"], run["failed"]) == (3, 3, 9)
    assert log_plan(db, run["run_id"]) == plan_of(plan)
    body = emulator.requests("subscribe", limit=1)[0]["body"]
    sent = {s["userId"]: s.get("dataFields") for s in body["subscribers"]}
    assert set(sent) == {ok, max_len, dup}
    assert sent[dup] == sent_dup[0]
    users = {u["userId"]: u["dataFields"] for u in member_users(emulator, list_id_of(db, "members"))}
    assert set(users) == {ok, max_len, dup}
    assert users[dup] == sent_dup[0]
    assert invalid_total(emulator) == invalid_before

    # The next run that reads the source keeps the same row: nothing is sent, the duplicates are
    # reported again (unforced, with the source unchanged, the run would be idle: issue 18).
    before = request_counts(emulator)
    again = run_sync(db, "members", force=True)
    assert (again["planned_subscribes"], again["api_requests"], again["failed"]) == (0, 0, 9)
    assert request_counts(emulator) == before
    assert log_summary(db, again["run_id"])[("update", "subscribe", "failed", "duplicate_key")] == 2
    check_invariants(db, emulator, "members")


def test_non_text_identifier_column(db, emulator):
    base = 1000000 * int(tag(db).split("_")[1])
    sql(db, "CREATE TABLE numbered AS SELECT (%s + g)::integer AS id, g::numeric * 1.5 AS amount "
            "FROM generate_series(1, 20) g", (base,))
    sql(db, "SELECT iterable_audience.create_sync('numbered', 'userid', 'numbered', new_list_name => 'numbered', "
            "user_id_column => 'id', data_fields => '{\"amount\": \"amount\"}')")
    run = run_sync(db, "numbered")
    assert run["status"] == "succeeded", run
    assert run["subscribed"] == 20
    users = {u["userId"]: u["dataFields"] for u in member_users(emulator, list_id_of(db, "numbered"))}
    assert set(users) == {str(base + g) for g in range(1, 21)}
    assert users[str(base + 2)] == {"amount": 3.0}
    assert set(snapshot_rows(db, "numbered")) == set(users)
    check_invariants(db, emulator, "numbered")


def test_hybrid_row_with_one_bad_identifier_is_sent_with_the_other(db, emulator):
    t = tag(db)
    invalid_before = invalid_total(emulator)
    sql(db, "CREATE TABLE mixed (email text, uid text)")
    rows = [
        ("bad-email", "%s-h1" % t),                 # sent by userId only
        ("%s.h2@example.com" % t, " bad-id"),       # sent by email only
        (None, None),                               # missing_identifier
        ("", ""),                                   # missing_identifier
        ("bad-email-2", None),                      # invalid_email
        (None, "bad id %s " % t),                   # invalid_user_id
        ("bad-email-3", "bad id 3 "),               # invalid_user_id (userId checked first)
        ("%s.h8@example.com" % t, "%s-h8" % t),     # both
    ]
    sql(db, "INSERT INTO mixed VALUES " + ", ".join(["(%s, %s)"] * len(rows)), [v for r in rows for v in r])
    sql(db, "SELECT iterable_audience.create_sync('mixed', 'hybrid', 'mixed', new_list_name => 'mixed', "
            "email_column => 'email', user_id_column => 'uid')")
    plan = preview(db, "mixed")
    assert plan_of(plan) == collections.Counter({
        ("insert", "subscribe", "%s-h1" % t, True, None): 1,
        ("insert", "subscribe", "%s.h2@example.com" % t, True, None): 1,
        ("insert", "subscribe", "%s-h8" % t, True, None): 1,
        ("insert", "subscribe", None, False, "missing_identifier"): 2,
        ("insert", "subscribe", "bad-email-2", False, "invalid_email"): 1,
        ("insert", "subscribe", "bad id %s " % t, False, "invalid_user_id"): 1,
        ("insert", "subscribe", "bad id 3 ", False, "invalid_user_id"): 1,
    })
    notes = {r["record_key"]: r["error_message"] for r in plan if r["valid"]}
    assert "was not sent" in notes["%s-h1" % t] and "bad-email" in notes["%s-h1" % t]
    assert "was not sent" in notes["%s.h2@example.com" % t]
    assert notes["%s-h8" % t] is None

    run = run_sync(db, "mixed")
    assert run["status"] == "succeeded_with_failures", run
    assert (run["subscribed"], run["failed"]) == (3, 5)
    body = emulator.requests("subscribe", limit=1)[0]["body"]
    assert sorted(body["subscribers"], key=json.dumps) == sorted([
        {"userId": "%s-h1" % t}, {"email": "%s.h2@example.com" % t},
        {"email": "%s.h8@example.com" % t, "userId": "%s-h8" % t}], key=json.dumps)
    assert members(emulator, list_id_of(db, "mixed")) == {
        (None, "%s-h1" % t), ("%s.h2@example.com" % t, None), ("%s.h8@example.com" % t, "%s-h8" % t)}
    assert invalid_total(emulator) == invalid_before
    check_invariants(db, emulator, "mixed")


def make_user_ids(db, rows):
    t = tag(db)
    sql(db, "CREATE TABLE known_or_not (uid text, plan text)")
    sql(db, "INSERT INTO known_or_not SELECT %s || '-k' || g, 'basic' FROM generate_series(1, %s) g", (t, rows))
    return ["%s-k%d" % (t, g) for g in range(1, rows + 1)]


def test_update_existing_users_only(db, emulator):
    uids = make_user_ids(db, 10)
    known = uids[:6]
    add_users(emulator, "userid", [{"userId": u} for u in known])
    sql(db, "SELECT iterable_audience.create_sync('existing', 'userid', 'known_or_not', new_list_name => 'existing', "
            "user_id_column => 'uid', update_existing_users_only => true)")
    run = run_sync(db, "existing")
    assert run["status"] == "succeeded_with_failures", run
    assert (run["planned_subscribes"], run["subscribed"], run["failed"]) == (10, 6, 4)
    body = emulator.requests("subscribe", limit=1)[0]["body"]
    assert body["updateExistingUsersOnly"] is True
    result = {r["record_key"]: (r["status"], r["error_code"]) for r in logs(db, run["run_id"])}
    assert result == dict({u: ("succeeded", None) for u in known}, **{u: ("failed", "not_found") for u in uids[6:]})
    assert {uid for _, uid in members(emulator, list_id_of(db, "existing"))} == set(known)
    assert set(snapshot_rows(db, "existing")) == set(known)
    # Nobody was created.
    assert emulator.call("GET", "/_emulator/users?api_key=test-key-userid&userId=%s" % uids[8])["users"] == []

    # retry_failed_records (default on): the next run sends the failed ones again, and only them.
    again = run_sync(db, "existing")
    assert (again["planned_subscribes"], again["failed"]) == (4, 4)
    assert {r["record_key"] for r in logs(db, again["run_id"])} == set(uids[6:])
    check_invariants(db, emulator, "existing")


def test_forgotten_users_are_not_resent(db, emulator):
    t = tag(db)
    sql(db, "CREATE TABLE gdpr AS SELECT %s || '.f' || g || '@example.com' AS email "
            "FROM generate_series(1, 10) g", (t,))
    gone = ["%s.f%d@example.com" % (t, g) for g in (2, 5, 9)]
    forget(emulator, "email", emails=gone)
    sql(db, "SELECT iterable_audience.create_sync('gdpr', 'email', 'gdpr', new_list_name => 'gdpr', "
            "email_column => 'email', retry_failed_records => true)")
    run = run_sync(db, "gdpr")
    assert run["status"] == "succeeded_with_failures", run
    assert (run["subscribed"], run["failed"]) == (7, 3)
    failed = {r["record_key"]: r["error_code"] for r in logs(db, run["run_id"]) if r["status"] == "failed"}
    assert failed == {e: "forgotten" for e in gone}
    assert {e for e, _ in members(emulator, list_id_of(db, "gdpr"))} == {
        "%s.f%d@example.com" % (t, g) for g in range(1, 11)} - set(gone)

    before = request_counts(emulator)
    again = run_sync(db, "gdpr")
    assert again["status"] == "succeeded", again
    assert (again["planned_subscribes"], again["api_requests"], again["failed"]) == (0, 0, 0)
    assert request_counts(emulator) == before
    assert logs(db, again["run_id"]) == []
    check_invariants(db, emulator, "gdpr")


def test_retry_failed_records_off_waits_for_a_change(db, emulator):
    uids = make_user_ids(db, 5)
    add_users(emulator, "userid", [{"userId": u} for u in uids[:3]])
    sql(db, "SELECT iterable_audience.create_sync('noretry', 'userid', 'known_or_not', new_list_name => 'noretry', "
            "user_id_column => 'uid', data_fields => '{\"plan\": \"plan\"}', update_existing_users_only => true, "
            "retry_failed_records => false)")
    first = run_sync(db, "noretry")
    assert (first["subscribed"], first["failed"]) == (3, 2)

    # Unchanged failed rows are not sent again, even once the users exist.
    add_users(emulator, "userid", [{"userId": uids[3]}, {"userId": uids[4]}])
    before = request_counts(emulator)
    for _ in range(2):
        run = run_sync(db, "noretry")
        assert run["status"] == "succeeded", run
        assert (run["planned_subscribes"], run["api_requests"], run["failed"]) == (0, 0, 0)
    assert request_counts(emulator) == before
    assert {uid for _, uid in members(emulator, list_id_of(db, "noretry"))} == set(uids[:3])

    # A change of the row sends it.
    sql(db, "UPDATE known_or_not SET plan = 'gold' WHERE uid = %s", (uids[3],))
    run = run_sync(db, "noretry")
    assert run["status"] == "succeeded", run
    assert (run["planned_subscribes"], run["subscribed"]) == (1, 1)
    assert [(r["record_key"], r["operation"], r["status"]) for r in logs(db, run["run_id"])] == [
        (uids[3], "insert", "succeeded")]
    assert {uid for _, uid in members(emulator, list_id_of(db, "noretry"))} == set(uids[:4])
    check_invariants(db, emulator, "noretry")


def test_conflict_and_invalid_data_reported_per_record(db, emulator):
    t = tag(db)
    field = "f_%s" % t
    # The project knows field as a number, and the email of c1 belongs to another userId.
    add_users(emulator, "hybrid", [{"email": "%s.c1@example.com" % t, "userId": "%s-other" % t},
                                   {"email": "%s.typed@example.com" % t, "dataFields": {field: 5}}])
    sql(db, "CREATE TABLE rows3 (uid text, email text, val text)")
    sql(db, "INSERT INTO rows3 VALUES (%s, %s, NULL), (%s, %s, 'a string'), (%s, %s, NULL)",
        ("%s-c1" % t, "%s.c1@example.com" % t, "%s-c2" % t, "%s.c2@example.com" % t,
         "%s-c3" % t, "%s.c3@example.com" % t))
    sql(db, "SELECT iterable_audience.create_sync('rows3', 'hybrid', 'rows3', new_list_name => 'rows3', "
            "email_column => 'email', user_id_column => 'uid', data_fields => %s)", (json.dumps({field: "val"}),))
    run = run_sync(db, "rows3")
    assert run["status"] == "succeeded_with_failures", run
    assert (run["subscribed"], run["failed"]) == (1, 2)
    result = {r["record_key"]: (r["status"], r["error_code"]) for r in logs(db, run["run_id"])}
    assert result == {"%s-c1" % t: ("failed", "conflict"), "%s-c2" % t: ("failed", "invalid_data"),
                      "%s-c3" % t: ("succeeded", None)}
    assert members(emulator, list_id_of(db, "rows3")) == {("%s.c3@example.com" % t, "%s-c3" % t)}
    assert set(snapshot_rows(db, "rows3")) == {"%s-c3" % t}
    check_invariants(db, emulator, "rows3")


def test_conflict_is_attributed_only_to_the_conflicting_row(db, emulator):
    t = tag(db)
    sql(db, "CREATE TABLE shared (uid text, email text)")
    sql(db, "INSERT INTO shared VALUES (%s, %s), (%s, %s)",
        ("%s-a" % t, "%s.shared@example.com" % t, "%s-b" % t, "%s.shared@example.com" % t))
    sql(db, "SELECT iterable_audience.create_sync('shared', 'hybrid', 'shared', new_list_name => 'shared', "
            "email_column => 'email', user_id_column => 'uid')")
    run = run_sync(db, "shared")
    on_list = members(emulator, list_id_of(db, "shared"))
    assert on_list == {("%s.shared@example.com" % t, "%s-a" % t)}  # Iterable took the first row
    # The snapshot must follow what Iterable acknowledged, or the row is never unsubscribed later.
    assert {(e, u) for e, u in snapshot_rows(db, "shared").values()} == on_list
    assert {r["record_key"]: r["error_code"] for r in logs(db, run["run_id"])} == {"%s-a" % t: None,
                                                                                  "%s-b" % t: "conflict"}
