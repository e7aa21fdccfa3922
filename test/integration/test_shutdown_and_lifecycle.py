"""Shutdown and lifecycle during runs, and the bad inputs of docs/reliability.md not covered elsewhere:
`pg_ctl stop -m fast` during a run, DROP EXTENSION (and ALTER EXTENSION UPDATE) while a run is going,
a role dropped that owns a sync that has run, an email that moves between two userIds, a source
returning many duplicates, a source column renamed between runs."""

import collections
import time

import psycopg2
import psycopg2.errors
import pytest

import invariants
from harness import Cluster, query, scalar
from sync_helpers import (BackgroundRun, list_id_of, logs, members, request_counts, run_sync, session_settings, sql,
                          tag, wait_for)

SCHED_CONF = {
    "iterable_audience.retry_base_delay_ms": "10",
    "iterable_audience.retry_max_delay_ms": "200",
    "iterable_audience.database_name": "'postgres'",
}


@pytest.fixture(scope="module")
def lc(emulator):
    """A cluster of this module's own (it is stopped and restarted); its scheduler serves 'postgres'."""
    c = Cluster(extra_conf=SCHED_CONF)
    yield c
    c.destroy()


def connect_when_up(cluster, dbname, timeout=60):
    def attempt():
        try:
            conn = cluster.connect(dbname=dbname)
            scalar(conn, "SELECT 1")
            return conn
        except psycopg2.OperationalError:
            return None
    conn = wait_for(attempt, timeout=timeout, interval=0.2, what="the server to accept connections")
    session_settings(conn)
    return conn


def fresh_database(cluster, emulator, name):
    admin = connect_when_up(cluster, "postgres")
    sql(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
    sql(admin, "CREATE DATABASE %s" % name)
    admin.close()
    conn = connect_when_up(cluster, name)
    sql(conn, "CREATE EXTENSION iterable_audience")
    sql(conn, "SELECT iterable_audience.create_account('email', 'test-key-email', project_type => 'email', "
              "base_url => %s)", (emulator.url,))
    return conn


def make_slow_sync(conn, emulator, prefix, rows, latency_ms, schedule="manual"):
    sql(conn, "CREATE TABLE audience AS SELECT %s || '.' || g || '@example.com' AS email FROM generate_series(1, %s) g",
        (prefix, rows))
    sql(conn, "SELECT iterable_audience.create_sync('slow', 'email', 'audience', new_list_name => 'slow', "
              "email_column => 'email', schedule => %s)", (schedule,))
    emulator.set_faults({"rules": [{"kind": "latency", "endpoint": "subscribe", "ms": latency_ms}]})


def run_row(conn, run_id):
    rows = query(conn, "SELECT * FROM iterable_audience.sync_runs WHERE run_id = %s", (run_id,))
    return rows[0] if rows else None


def audience_of(conn):
    return {(r["email"], None) for r in query(conn, "SELECT email FROM audience")}


def extension_leftovers(conn):
    """Relations left in the extension's schemas (the schema iterable_audience itself is not a member of
    the extension: CREATE EXTENSION created it for the control file's `schema`, and it stays)."""
    return scalar(conn, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname LIKE 'iterable_audience%%'") + scalar(
        conn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'iterable_audience_snapshots'")


def worker_pids(conn):
    return [r["pid"] for r in query(conn, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'iterable_audience sync'")]


# --------------------------------------------------------------------------------------------------
# item 5: fast shutdown during a run
# --------------------------------------------------------------------------------------------------

def test_fast_shutdown_during_a_run_is_quick_and_recorded_as_interrupted(lc, emulator):
    prefix = "fast%d" % int(time.time())
    conn = fresh_database(lc, emulator, "fastdb")
    make_slow_sync(conn, emulator, prefix, rows=400, latency_ms=200)
    bg = BackgroundRun(lc, "fastdb", "slow", batch_size=10, max_requests_in_flight=1)
    try:
        run_id = wait_for(lambda: scalar(conn, "SELECT max(run_id) FROM iterable_audience.sync_runs"),
                          what="the run to start")
        wait_for(lambda: (run_row(conn, run_id) or {}).get("subscribed", 0) >= 30, what="30 subscribed")
        conn.close()
        started = time.monotonic()
        result = lc.pg_ctl("stop", "-m", "fast", check=False)
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        assert elapsed < 30, "pg_ctl stop -m fast took %.1f s" % elapsed
        print("pg_ctl stop -m fast during a run: %.2f s" % elapsed)
        assert bg.join(30), "run_sync() did not return"
        assert bg.error is not None or bg.result["status"] == "failed", (bg.result, bg.error)
    finally:
        bg.close()
    emulator.clear_faults()
    lc.start()
    conn = connect_when_up(lc, "fastdb")
    try:
        row = run_row(conn, run_id)
        assert row["status"] == "failed", row
        assert row["error"].startswith("interrupted"), row
        assert row["finished_at"] is not None
        assert 30 <= row["subscribed"] < 400
        assert "shutting down" in row["error"] or "server restarted" in row["error"] or "cancelled" in row["error"]
        assert scalar(conn, "SELECT count(*) FROM iterable_audience.sync_runs WHERE status = 'running'") == 0

        run = run_sync(conn, "slow")
        assert run["status"] == "succeeded", run
        assert members(emulator, list_id_of(conn, "slow")) == audience_of(conn)
        invariants.check_invariants(conn, emulator, "slow")
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------------
# DROP EXTENSION / ALTER EXTENSION UPDATE while a run is going
# --------------------------------------------------------------------------------------------------

def test_drop_extension_waits_for_a_manual_run(lc, emulator):
    """run_sync()'s transaction holds a lock on the extension's tables while it waits for its run:
    DROP EXTENSION waits for the run to end, then drops everything."""
    prefix = "dropm%d" % int(time.time())
    conn = fresh_database(lc, emulator, "dropdb")
    make_slow_sync(conn, emulator, prefix, rows=150, latency_ms=150)
    list_id = list_id_of(conn, "slow")
    bg = BackgroundRun(lc, "dropdb", "slow", batch_size=10, max_requests_in_flight=1)
    other = connect_when_up(lc, "dropdb")
    try:
        run_id = wait_for(lambda: scalar(conn, "SELECT max(run_id) FROM iterable_audience.sync_runs"),
                          what="the run to start")
        wait_for(lambda: (run_row(conn, run_id) or {}).get("subscribed", 0) >= 10, what="a first batch")
        # There is no newer version to update to: ALTER EXTENSION UPDATE is a no-op, or refused.
        sql(other, "ALTER EXTENSION iterable_audience UPDATE")
        with pytest.raises(psycopg2.errors.InvalidParameterValue):
            sql(other, "ALTER EXTENSION iterable_audience UPDATE TO '99.0'")
        sql(other, "SET lock_timeout = '60s'")
        sql(other, "DROP EXTENSION iterable_audience CASCADE")
        # It returned only once the run had ended, and the run was not disturbed.
        assert bg.join(5)
        assert bg.error is None and bg.result["status"] == "succeeded", (bg.result, bg.error)
        assert bg.result["subscribed"] == 150
    finally:
        bg.close()
        other.close()
    emulator.clear_faults()
    assert extension_leftovers(conn) == 0
    assert len(members(emulator, list_id)) == 150  # the Iterable list is left as it is
    sql(conn, "CREATE EXTENSION iterable_audience")  # and it can come back, empty
    assert scalar(conn, "SELECT count(*) FROM iterable_audience.sync") == 0
    conn.close()


def test_drop_extension_during_a_scheduled_run(lc, emulator):
    """No session waits for a scheduled run: DROP EXTENSION goes through between two batches; the run's
    worker then finds its tables gone, says so in the server log, and exits. Nothing is left behind."""
    prefix = "drops%d" % int(time.time())
    conn = connect_when_up(lc, "postgres")
    sql(conn, "DROP EXTENSION IF EXISTS iterable_audience CASCADE")
    sql(conn, "DROP TABLE IF EXISTS audience")
    sql(conn, "CREATE EXTENSION iterable_audience")
    sql(conn, "SELECT iterable_audience.create_account('email', 'test-key-email', project_type => 'email', "
              "base_url => %s)", (emulator.url,))
    sql(conn, "ALTER SYSTEM SET iterable_audience.batch_size = 10")
    sql(conn, "ALTER SYSTEM SET iterable_audience.max_requests_in_flight = 1")
    sql(conn, "SELECT pg_reload_conf()")
    try:
        make_slow_sync(conn, emulator, prefix, rows=200, latency_ms=150, schedule="every 12 hours")
        sql(conn, "UPDATE iterable_audience.sync SET next_run_at = now() WHERE sync_name = 'slow'; "
                  "SELECT iterable_audience.wake_scheduler()")
        wait_for(lambda: (scalar(conn, "SELECT max(subscribed) FROM iterable_audience.sync_runs") or 0) >= 10,
                 timeout=60, what="the scheduled run to send a first batch")
        worker = worker_pids(conn)
        assert worker, "no run worker"
        postmaster = lc.postmaster_pid()
        sql(conn, "SET lock_timeout = '30s'")
        started = time.monotonic()
        sql(conn, "DROP EXTENSION iterable_audience CASCADE")
        assert time.monotonic() - started < 30
        wait_for(lambda: not worker_pids(conn), timeout=30, what="the run's worker to exit")
        assert lc.postmaster_pid() == postmaster  # no crash
        assert extension_leftovers(conn) == 0
        assert "could not record the end of run" in lc.server_log()
        sql(conn, "CREATE EXTENSION iterable_audience")
        assert scalar(conn, "SELECT count(*) FROM iterable_audience.sync_runs") == 0
        sql(conn, "DROP EXTENSION iterable_audience")
    finally:
        emulator.clear_faults()
        sql(conn, "RESET lock_timeout")
        sql(conn, "ALTER SYSTEM RESET ALL")
        sql(conn, "SELECT pg_reload_conf()")
        conn.close()


# --------------------------------------------------------------------------------------------------
# bad inputs (docs/reliability.md) not covered by test_sync_*.py / test_scheduler.py
# --------------------------------------------------------------------------------------------------

def test_role_dropped_that_owns_a_sync_that_ran(db, emulator):
    """test_scheduler.py covers a scheduled run of an orphaned sync that never ran; here the sync ran
    (its owner was granted SELECT on the snapshot table), and the run is started by hand."""
    t = tag(db)
    role = "owner_%s" % t
    sql(db, "CREATE ROLE %s" % role)
    sql(db, "GRANT USAGE ON SCHEMA iterable_audience, iterable_audience_snapshots TO %s" % role)
    sql(db, "SELECT iterable_audience.grant_account_usage('email', %s)", (role,))
    sql(db, "CREATE TABLE fans AS SELECT %s || '.f' || g || '@example.com' AS email FROM generate_series(1, 5) g",
        (t,))
    sql(db, "GRANT SELECT ON fans TO %s" % role)
    sql(db, "SET ROLE %s" % role)
    sql(db, "SELECT iterable_audience.create_sync('fans', 'email', 'public.fans', new_list_name => 'fans', "
            "email_column => 'email')")
    assert run_sync(db, "fans")["status"] == "succeeded"
    sql(db, "RESET ROLE")
    list_id = list_id_of(db, "fans")

    # The grant on the snapshot table keeps the role from being dropped by mistake...
    with pytest.raises(psycopg2.errors.DependentObjectsStillExist) as err:
        sql(db, "DROP ROLE %s" % role)
    assert "fans_run_" in err.value.diag.message_detail
    # ...until its privileges are dropped too.
    sql(db, "DROP OWNED BY %s; DROP ROLE %s" % (role, role))
    before = request_counts(emulator)
    # A preview says so too, also when a run is left to settle first (as after a crash): its settled
    # snapshot would be granted to the owner, which must not be what fails.
    sql(db, "UPDATE iterable_audience.sync_runs SET settled = false WHERE sync_name = 'fans'")
    with pytest.raises(psycopg2.errors.UndefinedObject) as err:
        scalar(db, "SELECT count(*) FROM iterable_audience.preview_sync('fans')")
    assert 'the role that owned sync "fans" no longer exists' in err.value.diag.message_primary
    with pytest.raises(psycopg2.errors.UndefinedObject) as err:
        run_sync(db, "fans")
    assert 'the role that owned sync "fans" no longer exists' in err.value.diag.message_primary
    assert "drop_sync" in err.value.diag.message_hint
    assert request_counts(emulator) == before
    assert len(members(emulator, list_id)) == 5  # nobody was unsubscribed
    sql(db, "SELECT iterable_audience.drop_sync('fans')")
    assert scalar(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'iterable_audience_snapshots'") == 0


def make_hybrid_pair(db):
    t = tag(db)
    sql(db, "CREATE TABLE pair (uid text, email text)")
    sql(db, "INSERT INTO pair VALUES (%s, %s), (%s, %s)",
        ("%s-a" % t, "%s.one@example.com" % t, "%s-b" % t, "%s.two@example.com" % t))
    sql(db, "SELECT iterable_audience.create_sync('pair', 'hybrid', 'pair', new_list_name => 'pair', "
            "email_column => 'email', user_id_column => 'uid')")
    assert run_sync(db, "pair")["status"] == "succeeded"
    return t


def pair_members(emulator, db):
    return {m["userId"]: m["email"] for m in emulator.members(list_id_of(db, "pair"))}


def test_email_moves_to_another_user_id_whose_old_holder_gets_a_new_one(db, emulator):
    t = make_hybrid_pair(db)
    # a's email moves to b; a gets a new one. In one run the order of the two updates decides whether
    # b's first try meets the email still on a (conflict); the next run converges either way.
    sql(db, "UPDATE pair SET email = CASE uid WHEN %s THEN %s ELSE %s END",
        ("%s-a" % t, "%s.three@example.com" % t, "%s.one@example.com" % t))
    statuses = []
    for _ in range(2):
        run = run_sync(db, "pair")
        statuses.append(run["status"])
        failed = {r["record_key"]: r["error_code"] for r in logs(db, run["run_id"]) if r["status"] == "failed"}
        assert failed in ({}, {"%s-b" % t: "conflict"}), failed
        if run["status"] == "succeeded":
            break
    assert statuses[-1] == "succeeded", statuses
    assert pair_members(emulator, db) == {"%s-a" % t: "%s.three@example.com" % t, "%s-b" % t: "%s.one@example.com" % t}
    invariants.check_invariants(db, emulator, "pair")


def test_email_moves_to_another_user_id_whose_old_holder_keeps_none(db, emulator):
    t = make_hybrid_pair(db)
    # a loses its email (a userId-only subscribe does not clear Iterable's), b takes it: Iterable keeps
    # the email on a, so b fails with a conflict, every run, until the profiles are reconciled.
    sql(db, "UPDATE pair SET email = CASE uid WHEN %s THEN NULL ELSE %s END",
        ("%s-a" % t, "%s.one@example.com" % t))
    for _ in range(2):
        run = run_sync(db, "pair")
        assert run["status"] == "succeeded_with_failures", run
        failed = [r for r in logs(db, run["run_id"]) if r["status"] == "failed"]
        assert [(r["record_key"], r["error_code"]) for r in failed] == [("%s-b" % t, "conflict")]
    assert pair_members(emulator, db) == {"%s-a" % t: "%s.one@example.com" % t, "%s-b" % t: "%s.two@example.com" % t}
    invariants.check_counters(db, "pair")
    invariants.check_nothing_invalid_sent(emulator)
    # Reconciled in Iterable (the email taken off a): the next run sends b again and converges.
    emulator.call("POST", "/_emulator/users", {"api_key": "test-key-hybrid", "users": [
        {"userId": "%s-a" % t, "email": "%s.elsewhere@example.com" % t}]})
    run = run_sync(db, "pair")
    assert run["status"] == "succeeded", run
    assert pair_members(emulator, db)["%s-b" % t] == "%s.one@example.com" % t


def test_source_with_many_duplicates_sends_one_row(db, emulator):
    t = tag(db)
    rows = 200000
    sql(db, "CREATE TABLE dups AS SELECT %s || '.same@example.com' AS email, g AS n FROM generate_series(1, %s) g",
        (t, rows))
    sql(db, "SELECT iterable_audience.create_sync('dups', 'email', 'SELECT email, n FROM dups', "
            "new_list_name => 'dups', email_column => 'email', data_fields => '{\"n\": \"n\"}')")
    before = request_counts(emulator)
    run = run_sync(db, "dups")
    assert run["status"] == "succeeded_with_failures", run
    assert (run["audience_rows"], run["planned_subscribes"], run["subscribed"], run["failed"]) == (
        rows, 1, 1, rows - 1)
    sent = request_counts(emulator) - before
    # One record was sent; a request may legitimately be retried (idempotent) if a reused connection
    # dropped while the 200k rows were staged, so count what was sent, not how often.
    assert sent["get_lists"] == 1 and sent["subscribe"] >= 1, sent
    list_id = scalar(db, "SELECT list_id FROM iterable_audience.syncs WHERE sync_name = 'dups'")
    bodies = [r["body"] for r in emulator.requests("subscribe", limit=50)
              if isinstance(r.get("body"), dict) and r["body"].get("listId") == list_id]
    assert bodies and all(len(b["subscribers"]) == 1 for b in bodies), bodies
    counts = collections.Counter((r[0], r[1]) for r in query_tuples(
        db, "SELECT status, error_code FROM iterable_audience.sync_logs WHERE run_id = %s", (run["run_id"],)))
    assert counts == {("succeeded", None): 1, ("failed", "duplicate_key"): rows - 1}
    on_list = emulator.members(list_id_of(db, "dups"))
    assert [m["email"] for m in on_list] == ["%s.same@example.com" % t]
    # Deterministic: the next run that reads the source sends nothing and reports the duplicates again.
    again = run_sync(db, "dups", force=True)
    assert (again["planned_subscribes"], again["api_requests"], again["failed"]) == (0, 0, rows - 1)
    # Unforced, with the source unchanged: an idle run (issue 18), which reads and reports nothing.
    idle = run_sync(db, "dups")
    assert (idle["source_read"], idle["status"], idle["api_requests"], idle["failed"]) == (False, "succeeded", 0, 0)
    invariants.check_invariants(db, emulator, "dups")


def query_tuples(db, text, params=None):
    with db.cursor() as cur:
        cur.execute(text, params)
        return cur.fetchall()


def test_source_column_renamed_between_runs(db, emulator):
    t = tag(db)
    sql(db, "CREATE TABLE renamed AS SELECT %s || '.r' || g || '@example.com' AS email FROM generate_series(1, 20) g",
        (t,))
    sql(db, "SELECT iterable_audience.create_sync('renamed', 'email', 'renamed', new_list_name => 'renamed', "
            "email_column => 'email')")
    assert run_sync(db, "renamed")["status"] == "succeeded"
    list_id = list_id_of(db, "renamed")
    sql(db, "ALTER TABLE renamed RENAME COLUMN email TO mail")
    before = request_counts(emulator)

    run = run_sync(db, "renamed")

    assert run["status"] == "failed", run
    assert run["error"].startswith('column "email" (email_column) does not exist in the source; nothing was sent '
                                   'and no one was unsubscribed'), run["error"]
    assert 'Did you mean "mail"?' in run["error"]
    assert (run["api_requests"], run["unsubscribed"]) == (0, 0)
    assert request_counts(emulator) == before
    assert len(members(emulator, list_id)) == 20
    # Following the rename: same identifiers, nothing to send.
    sql(db, "SELECT iterable_audience.alter_sync('renamed', email_column => 'mail')")
    again = run_sync(db, "renamed")
    assert (again["status"], again["planned_subscribes"], again["planned_unsubscribes"]) == ("succeeded", 0, 0)
    invariants.check_invariants(db, emulator, "renamed")
