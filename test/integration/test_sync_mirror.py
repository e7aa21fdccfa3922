"""Mirror mode: the first run, churn, an unchanged audience, data-field-only changes."""

import json
import math

from harness import query, scalar
from invariants import check_invariants
from sync_helpers import (logs, log_summary, list_id_of, member_users, members, request_counts, run_sync,
                          snapshot_rows, snapshot_table, sql, sync_info, tag)


def create_people(db, rows, plan="basic"):
    t = tag(db)
    sql(db, "CREATE TABLE people (uid text PRIMARY KEY, email text, first_name text, score integer, plan text)")
    sql(db, "INSERT INTO people SELECT %s || '-u' || g, %s || '.' || g || '@example.com', 'Name ' || g, g, %s "
            "FROM generate_series(1, %s) g", (t, t, plan, rows))
    return t


def create_people_sync(db, name="people_sync", **extra):
    args = {"email_column": "email", "user_id_column": "uid",
            "data_fields": json.dumps({"firstName": "first_name", "score": "score", "plan": "plan"})}
    args.update(extra)
    named = ", ".join("%s => %%(%s)s" % (k, k) for k in args)
    sql(db, "SELECT iterable_audience.create_sync(%%(name)s, 'hybrid', 'people', new_list_name => %%(name)s, %s)"
        % named, dict(args, name=name))


def audience(db):
    return {(r["email"], r["uid"]) for r in query(db, "SELECT email, uid FROM people")}


def test_first_run_mirrors_10k_rows_with_data_fields(db, emulator):
    t = create_people(db, 10000)
    create_people_sync(db)
    before = request_counts(emulator)

    run = run_sync(db, "people_sync")

    assert run["status"] == "succeeded", run
    assert run["error"] is None
    assert run["trigger"] == "manual"
    assert run["audience_rows"] == 10000
    assert run["planned_subscribes"] == 10000
    assert run["planned_unsubscribes"] == 0
    assert run["subscribed"] == 10000
    assert run["unsubscribed"] == 0
    assert run["failed"] == 0
    assert run["api_requests"] == 1 + math.ceil(10000 / 1000)
    assert run["finished_at"] is not None

    sent = request_counts(emulator) - before
    assert sent == {"get_lists": 1, "subscribe": 10}

    list_id = list_id_of(db, "people_sync")
    users = member_users(emulator, list_id)
    assert len(users) == 10000
    assert {(u["email"], u["userId"]) for u in users} == audience(db)
    by_uid = {u["userId"]: u["dataFields"] for u in users}
    for g in (1, 2, 777, 10000):
        assert by_uid["%s-u%d" % (t, g)] == {"firstName": "Name %d" % g, "score": g, "plan": "basic"}
    assert all(set(d) == {"firstName", "score", "plan"} for d in by_uid.values())

    assert run["snapshot_table"] == "iterable_audience_snapshots." + sync_info(db, "people_sync")["snapshot_table"]
    snap = snapshot_rows(db, "people_sync")
    assert len(snap) == 10000
    assert {(email, uid) for email, uid in snap.values()} == audience(db)
    assert set(snap) == {uid for _, uid in audience(db)}  # the record key is the userId

    assert log_summary(db, run["run_id"]) == {("insert", "subscribe", "succeeded", None): 10000}
    assert scalar(db, "SELECT count(DISTINCT record_key) FROM iterable_audience.sync_logs WHERE run_id = %s",
                  (run["run_id"],)) == 10000
    check_invariants(db, emulator, "people_sync")


def test_churn_sends_exactly_the_difference(db, emulator):
    t = create_people(db, 200)
    create_people_sync(db)
    first = run_sync(db, "people_sync")
    assert first["status"] == "succeeded" and first["subscribed"] == 200

    key = lambda g: "%s-u%d" % (t, g)  # noqa: E731
    sql(db, "DELETE FROM people WHERE uid = ANY(%s)", ([key(g) for g in range(1, 21)],))
    sql(db, "INSERT INTO people SELECT %s || '-u' || g, %s || '.' || g || '@example.com', 'Name ' || g, g, 'basic' "
            "FROM generate_series(201, 230) g", (t, t))
    sql(db, "UPDATE people SET plan = 'gold' WHERE uid = ANY(%s)", ([key(g) for g in range(21, 41)],))
    sql(db, "UPDATE people SET email = %s || '.moved.' || score || '@example.org' WHERE uid = ANY(%s)",
        (t, [key(g) for g in range(41, 51)]))
    before = request_counts(emulator)

    run = run_sync(db, "people_sync")

    assert run["status"] == "succeeded", run
    assert run["audience_rows"] == 210
    assert run["planned_unsubscribes"] == 20
    assert run["planned_subscribes"] == 30 + 20 + 10
    assert (run["subscribed"], run["unsubscribed"], run["failed"]) == (60, 20, 0)
    assert run["api_requests"] == 3  # preflight, one unsubscribe batch, one subscribe batch
    assert request_counts(emulator) - before == {"get_lists": 1, "unsubscribe": 1, "subscribe": 1}

    by_key = {r["record_key"]: r for r in logs(db, run["run_id"])}
    assert len(by_key) == 80
    assert {k for k, r in by_key.items() if r["operation"] == "delete"} == {key(g) for g in range(1, 21)}
    assert {k for k, r in by_key.items() if r["operation"] == "insert"} == {key(g) for g in range(201, 231)}
    assert {k for k, r in by_key.items() if r["operation"] == "update"} == {key(g) for g in range(21, 51)}
    assert all(r["action"] == ("unsubscribe" if r["operation"] == "delete" else "subscribe") for r in by_key.values())
    assert all(r["status"] == "succeeded" and r["error_code"] is None for r in by_key.values())
    # An unsubscribe names the user as the list knew it; a moved email is sent as the new one.
    assert by_key[key(5)]["email"] == "%s.5@example.com" % t
    assert by_key[key(45)]["email"] == "%s.moved.45@example.org" % t

    list_id = list_id_of(db, "people_sync")
    users = {u["userId"]: u for u in member_users(emulator, list_id)}
    assert {(u["email"], uid) for uid, u in users.items()} == audience(db)
    assert users[key(45)]["email"] == "%s.moved.45@example.org" % t  # same user, email changed
    assert users[key(30)]["dataFields"]["plan"] == "gold"
    assert users[key(60)]["dataFields"]["plan"] == "basic"
    snap = snapshot_rows(db, "people_sync")
    assert {(email, uid) for email, uid in snap.values()} == audience(db)
    check_invariants(db, emulator, "people_sync")


def test_unchanged_audience_sends_nothing(db, emulator):
    create_people(db, 300)
    create_people_sync(db)
    first = run_sync(db, "people_sync")
    assert first["status"] == "succeeded"
    snap_before = snapshot_rows(db, "people_sync")
    table_before = snapshot_table(db, "people_sync")
    before = request_counts(emulator)

    run = run_sync(db, "people_sync")

    assert run["status"] == "succeeded", run
    assert run["error"] is None
    assert (run["audience_rows"], run["planned_subscribes"], run["planned_unsubscribes"]) == (300, 0, 0)
    assert (run["subscribed"], run["unsubscribed"], run["failed"], run["api_requests"]) == (0, 0, 0, 0)
    assert request_counts(emulator) == before
    assert logs(db, run["run_id"]) == []
    assert snapshot_table(db, "people_sync") == table_before
    assert snapshot_rows(db, "people_sync") == snap_before
    assert members(emulator, list_id_of(db, "people_sync")) == audience(db)
    check_invariants(db, emulator, "people_sync")


def test_data_field_change_is_an_update(db, emulator):
    t = create_people(db, 50)
    create_people_sync(db)
    assert run_sync(db, "people_sync")["status"] == "succeeded"
    changed = ["%s-u%d" % (t, g) for g in (3, 7, 11, 19, 42)]
    sql(db, "UPDATE people SET first_name = 'Renamed ' || score, score = score + 1000 WHERE uid = ANY(%s)", (changed,))
    before = request_counts(emulator)

    run = run_sync(db, "people_sync")

    assert run["status"] == "succeeded", run
    assert (run["planned_subscribes"], run["planned_unsubscribes"], run["subscribed"]) == (5, 0, 5)
    assert run["api_requests"] == 2
    assert request_counts(emulator) - before == {"get_lists": 1, "subscribe": 1}
    assert log_summary(db, run["run_id"]) == {("update", "subscribe", "succeeded", None): 5}
    assert {r["record_key"] for r in logs(db, run["run_id"])} == set(changed)

    body = emulator.requests("subscribe", limit=1)[0]["body"]
    assert body["listId"] == list_id_of(db, "people_sync")
    sent = {s["userId"]: s for s in body["subscribers"]}
    assert set(sent) == set(changed)
    g = 7
    assert sent["%s-u%d" % (t, g)]["email"] == "%s.%d@example.com" % (t, g)
    assert sent["%s-u%d" % (t, g)]["dataFields"] == {"firstName": "Renamed %d" % g, "score": g + 1000, "plan": "basic"}

    users = {u["userId"]: u["dataFields"] for u in member_users(emulator, list_id_of(db, "people_sync"))}
    assert len(users) == 50
    for g in (3, 7, 11, 19, 42):
        assert users["%s-u%d" % (t, g)] == {"firstName": "Renamed %d" % g, "score": g + 1000, "plan": "basic"}
    assert users["%s-u%d" % (t, 4)] == {"firstName": "Name 4", "score": 4, "plan": "basic"}
    check_invariants(db, emulator, "people_sync")
