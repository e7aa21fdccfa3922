"""The plan: the removal guard and force, preview_sync() as the exact next run, retention."""

import collections

from harness import query, scalar
from invariants import check_invariants
from sync_helpers import (list_id_of, logs, members, preview, request_counts, run_sync, snapshot_rows,
                          snapshot_table, sql, table_counts, tag)


def make_hybrid(db, rows, name="plan_sync", **options):
    t = tag(db)
    sql(db, "CREATE TABLE crowd (uid text, email text, plan text)")
    sql(db, "INSERT INTO crowd SELECT %s || '-c' || g, %s || '.c' || g || '@example.com', 'basic' "
            "FROM generate_series(1, %s) g", (t, t, rows))
    extra = "".join(", %s => %s" % (k, v) for k, v in options.items())
    sql(db, "SELECT iterable_audience.create_sync(%%s, 'hybrid', 'crowd', new_list_name => %%s, "
            "email_column => 'email', user_id_column => 'uid', data_fields => '{\"plan\": \"plan\"}'%s)" % extra,
        (name, name))
    return t


def crowd(db):
    return {(r["email"], r["uid"]) for r in query(db, "SELECT email, uid FROM crowd WHERE uid IS NOT NULL")}


def test_removal_guard_blocks_then_force_sends(db, emulator):
    t = make_hybrid(db, 100)
    assert run_sync(db, "plan_sync")["status"] == "succeeded"
    list_id = list_id_of(db, "plan_sync")
    snap_table, snap = snapshot_table(db, "plan_sync"), snapshot_rows(db, "plan_sync")
    sql(db, "DELETE FROM crowd WHERE split_part(uid, '-c', 2)::int <= 60")
    sql(db, "INSERT INTO crowd SELECT %s || '-c' || g, %s || '.c' || g || '@example.com', 'basic' "
            "FROM generate_series(101, 105) g", (t, t))
    before = request_counts(emulator)

    for _ in range(2):  # stays blocked until forced
        run = run_sync(db, "plan_sync")
        assert run["status"] == "blocked", run
        assert (run["planned_unsubscribes"], run["planned_subscribes"]) == (60, 5)
        assert (run["subscribed"], run["unsubscribed"], run["failed"], run["api_requests"]) == (0, 0, 0, 0)
        assert "60 of the list's 100 members" in run["error"]
        assert "force => true" in run["error"] and "plan_sync" in run["error"]
        assert run["forced"] is False
        assert logs(db, run["run_id"]) == []
    assert request_counts(emulator) == before
    assert snapshot_table(db, "plan_sync") == snap_table and snapshot_rows(db, "plan_sync") == snap
    assert len(members(emulator, list_id)) == 100

    forced = query(db, "SELECT * FROM iterable_audience.run_sync('plan_sync', force => true)")[0]
    assert forced["status"] == "succeeded", forced
    assert forced["forced"] is True
    assert (forced["unsubscribed"], forced["subscribed"]) == (60, 5)
    assert members(emulator, list_id) == crowd(db)

    # Exactly max_removal_fraction (half of the list) is allowed.
    sql(db, "DELETE FROM crowd WHERE split_part(uid, '-c', 2)::int BETWEEN 61 AND 82")
    sql(db, "SELECT iterable_audience.alter_sync('plan_sync', max_removal_fraction => 0.5)")
    run = run_sync(db, "plan_sync")
    assert run["status"] == "succeeded", run
    assert run["unsubscribed"] == 22
    assert members(emulator, list_id) == crowd(db)
    check_invariants(db, emulator, "plan_sync")


def plan_tuples(rows):
    return collections.Counter((r["operation"], r["action"], r["record_key"], r["email"], r["user_id"],
                                r["valid"], r["error_code"]) for r in rows)


def log_tuples(db, run_id):
    refused = ("invalid_email", "invalid_user_id", "missing_identifier", "duplicate_key")
    return collections.Counter((r["operation"], r["action"], r["record_key"], r["email"], r["user_id"],
                                r["error_code"] not in refused, r["error_code"]) for r in logs(db, run_id))


def preview_unchanged(db, emulator, name):
    """preview_sync() rows, checking that it sent nothing and changed no table."""
    tables, requests = table_counts(db), request_counts(emulator)
    rows = preview(db, name)
    assert table_counts(db) == tables
    assert request_counts(emulator) == requests
    assert scalar(db, "SELECT count(*) FROM pg_class WHERE relpersistence = 't'") == 0
    return rows


def test_preview_is_exactly_the_next_run(db, emulator):
    t = make_hybrid(db, 200)
    first_plan = preview_unchanged(db, emulator, "plan_sync")
    assert len(first_plan) == 200
    first = run_sync(db, "plan_sync")
    assert first["status"] == "succeeded"
    assert log_tuples(db, first["run_id"]) == plan_tuples(first_plan)

    # Deletes, inserts, updates, an email change, refused rows and duplicates.
    c = lambda g: "%s-c%d" % (t, g)  # noqa: E731
    sql(db, "DELETE FROM crowd WHERE uid = ANY(%s)", ([c(g) for g in range(1, 16)],))
    sql(db, "UPDATE crowd SET plan = 'gold' WHERE uid = ANY(%s)", ([c(g) for g in range(16, 31)],))
    sql(db, "UPDATE crowd SET email = 'moved.' || email WHERE uid = %s", (c(31),))
    sql(db, "INSERT INTO crowd VALUES (%s, %s, 'new'), (%s, NULL, 'new'), (NULL, NULL, 'x'), "
            "(' padded', 'not-an-email', 'x'), (%s, %s, 'dup-a'), (%s, %s, 'dup-b')",
        (c(301), "%s.c301@example.com" % t, c(302), c(303), "%s.c303@example.com" % t, c(303),
         "%s.c303@example.com" % t))
    plan = preview_unchanged(db, emulator, "plan_sync")
    assert collections.Counter((r["operation"], r["valid"], r["error_code"]) for r in plan) == {
        ("delete", True, None): 15, ("update", True, None): 16, ("insert", True, None): 3,
        ("insert", False, "missing_identifier"): 1, ("insert", False, "invalid_user_id"): 1,
        ("insert", False, "duplicate_key"): 1}
    assert preview_unchanged(db, emulator, "plan_sync") == plan  # stable, in the run's order

    run = run_sync(db, "plan_sync")
    assert run["status"] == "succeeded_with_failures", run
    assert log_tuples(db, run["run_id"]) == plan_tuples(plan)
    assert (run["planned_unsubscribes"], run["planned_subscribes"], run["failed"]) == (15, 19, 3)

    # Once in sync, the preview is the refused rows only, and so is the run.
    plan = preview_unchanged(db, emulator, "plan_sync")
    assert all(not r["valid"] for r in plan) and len(plan) == 3
    run = run_sync(db, "plan_sync")
    assert log_tuples(db, run["run_id"]) == plan_tuples(plan)
    assert run["api_requests"] == 0
    check_invariants(db, emulator, "plan_sync")


def test_snapshot_retention_keeps_the_newest(db, emulator):
    t = make_hybrid(db, 20, snapshot_retention=2)
    runs = []
    for i in range(4):
        sql(db, "UPDATE crowd SET plan = %s WHERE uid = %s", ("p%d" % i, "%s-c%d" % (t, i + 1)))
        run = run_sync(db, "plan_sync")
        assert run["status"] == "succeeded", run
        runs.append(run)
    tables = {r["tablename"] for r in query(db, "SELECT tablename FROM pg_tables "
                                                "WHERE schemaname = 'iterable_audience_snapshots'")}
    assert tables == {"plan_sync_run_%d" % r["run_id"] for r in runs[2:]}
    assert [r["run_id"] for r in query(db, "SELECT run_id FROM iterable_audience.snapshot ORDER BY run_id")] == [
        r["run_id"] for r in runs[2:]]
    assert len(snapshot_rows(db, "plan_sync")) == 20
    # Tied to the extension (auto-extension dependency, not membership: pg_dump must dump them whole):
    # dropping the extension takes them along.
    assert scalar(db, "SELECT count(*) FROM pg_depend d JOIN pg_class c ON c.oid = d.objid "
                      "JOIN pg_namespace n ON n.oid = c.relnamespace "
                      "WHERE n.nspname = 'iterable_audience_snapshots' AND d.deptype = 'x' "
                      "AND d.refclassid = 'pg_extension'::regclass") == 2
    assert scalar(db, "SELECT count(*) FROM pg_depend d JOIN pg_class c ON c.oid = d.objid "
                      "JOIN pg_namespace n ON n.oid = c.relnamespace "
                      "WHERE n.nspname = 'iterable_audience_snapshots' AND d.deptype = 'e'") == 0
    check_invariants(db, emulator, "plan_sync")


def test_log_retention_of_zero_days_keeps_only_the_latest_run(db, emulator):
    t = make_hybrid(db, 10, sync_log_retention_days=0)
    first = run_sync(db, "plan_sync")
    assert len(logs(db, first["run_id"])) == 10
    sql(db, "UPDATE crowd SET plan = 'gold' WHERE uid = %s", ("%s-c1" % t,))
    second = run_sync(db, "plan_sync")
    assert second["status"] == "succeeded"
    assert logs(db, first["run_id"]) == []
    assert [(r["record_key"], r["operation"]) for r in logs(db, second["run_id"])] == [("%s-c1" % t, "update")]
    check_invariants(db, emulator, "plan_sync")


def test_no_logs_when_not_retained(db, emulator):
    t = make_hybrid(db, 10, retain_sync_logs="false")
    sql(db, "INSERT INTO crowd VALUES (NULL, 'broken', 'x')")
    first = run_sync(db, "plan_sync")
    assert (first["status"], first["subscribed"], first["failed"]) == ("succeeded_with_failures", 10, 1)
    sql(db, "DELETE FROM crowd WHERE uid = %s", ("%s-c1" % t,))
    second = run_sync(db, "plan_sync")
    assert second["unsubscribed"] == 1
    assert scalar(db, "SELECT count(*) FROM iterable_audience.sync_logs") == 0
    assert members(emulator, list_id_of(db, "plan_sync")) == crowd(db)
    check_invariants(db, emulator, "plan_sync")


def test_reset_sync_sends_everything_once(db, emulator):
    make_hybrid(db, 30)
    assert run_sync(db, "plan_sync")["subscribed"] == 30
    sql(db, "SELECT iterable_audience.reset_sync('plan_sync')")
    plan = preview(db, "plan_sync")
    assert collections.Counter((r["operation"], r["valid"]) for r in plan) == {("insert", True): 30}
    run = run_sync(db, "plan_sync")
    assert run["status"] == "succeeded", run
    assert (run["planned_subscribes"], run["subscribed"]) == (30, 30)
    assert log_tuples(db, run["run_id"]) == plan_tuples(plan)
    again = run_sync(db, "plan_sync")
    assert (again["planned_subscribes"], again["api_requests"]) == (0, 0)
    assert members(emulator, list_id_of(db, "plan_sync")) == crowd(db)
    check_invariants(db, emulator, "plan_sync")
