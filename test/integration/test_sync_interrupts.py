"""Runs that end abruptly: the worker killed with SIGKILL (the server restarts), and run_sync()
cancelled by pg_cancel_backend(). The next runs converge."""

import psycopg2
import psycopg2.errors
import pytest

from harness import query, scalar
from invariants import check_invariants
from sync_helpers import (BackgroundRun, kill9, list_id_of, members, request_counts, run_sync, session_settings,
                          snapshot_rows, snapshot_split, sql, tag, wait_for, worker_pid)


def make_slow_sync(db, emulator, rows, latency_ms):
    """An email sync of `rows` addresses; each subscribe request takes latency_ms at the emulator."""
    t = tag(db)
    sql(db, "CREATE TABLE audience AS SELECT %s || '.s' || g || '@example.com' AS email FROM generate_series(1, %s) g",
        (t, rows))
    sql(db, "SELECT iterable_audience.create_sync('slow', 'email', 'audience', new_list_name => 'slow', "
            "email_column => 'email')")
    emulator.set_faults({"rules": [{"kind": "latency", "endpoint": "subscribe", "ms": latency_ms}]})
    return t


def audience(conn):
    return {(r["email"], None) for r in query(conn, "SELECT email FROM audience")}


def run_progress(db, run_id):
    rows = query(db, "SELECT status, subscribed FROM iterable_audience.sync_runs WHERE run_id = %s", (run_id,))
    return rows[0] if rows else None


def current_run_id(db):
    return scalar(db, "SELECT max(run_id) FROM iterable_audience.sync_runs")


def reconnect(cluster, dbname):
    """A new connection once the server accepts them again (after crash recovery)."""
    def attempt():
        try:
            conn = cluster.connect(dbname=dbname)
            scalar(conn, "SELECT 1")
            return conn
        except psycopg2.OperationalError:
            return None
    conn = wait_for(attempt, timeout=60, interval=0.2, what="the server to accept connections again")
    session_settings(conn)
    return conn


def test_kill_9_of_the_worker_then_the_next_runs_converge(db, emulator, cluster):
    dbname = tag(db)
    make_slow_sync(db, emulator, rows=400, latency_ms=100)
    bg = BackgroundRun(cluster, dbname, "slow", batch_size=10, max_requests_in_flight=1)
    try:
        run_id = wait_for(lambda: current_run_id(db), what="the run to start")
        # Far enough in that the run row and its snapshot table are surely on disk (the test cluster
        # runs with synchronous_commit = off: the last few batch commits may be lost in the crash).
        wait_for(lambda: (run_progress(db, run_id) or {}).get("subscribed", 0) >= 150, what="150 subscribed")
        pid = worker_pid(db)
        assert pid is not None
        kill9(pid)
        assert bg.join(60), "run_sync() did not return after the server restarted"
        assert isinstance(bg.error, psycopg2.OperationalError), bg.error
    finally:
        bg.close()
    emulator.clear_faults()

    conn = reconnect(cluster, dbname)
    try:
        # The killed run is left 'running' until the next run of the sync starts.
        assert run_progress(conn, run_id)["status"] == "running"
        snap, in_doubt = snapshot_split(conn, "slow")
        assert 0 < len(snap) < 400
        list_id = list_id_of(conn, "slow")
        # Iterable may have applied a batch whose answer was lost, never the reverse; and every batch
        # it may have applied was marked in doubt before it was sent.
        assert {(e, u) for e, u in snap.values()} <= members(emulator, list_id)
        assert members(emulator, list_id) <= {(e, u) for e, u in list(snap.values()) + list(in_doubt.values())}

        run = run_sync(conn, "slow")
        assert run["status"] == "succeeded", run
        assert run["planned_subscribes"] == 400 - len(snap)
        killed = query(conn, "SELECT status, error, finished_at FROM iterable_audience.sync_runs WHERE run_id = %s",
                       (run_id,))[0]
        assert killed["status"] == "failed"
        assert killed["error"].startswith("interrupted")
        assert killed["finished_at"] is not None
        assert scalar(conn, "SELECT count(*) FROM iterable_audience.sync_runs WHERE status = 'running'") == 0

        assert members(emulator, list_id) == audience(conn)
        assert {(e, u) for e, u in snapshot_rows(conn, "slow").values()} == members(emulator, list_id)
        again = run_sync(conn, "slow")
        assert (again["status"], again["planned_subscribes"], again["api_requests"]) == ("succeeded", 0, 0)
        check_invariants(conn, emulator, "slow")
    finally:
        conn.close()


def test_cancel_of_run_sync_stops_the_run(db, emulator, cluster):
    dbname = tag(db)
    make_slow_sync(db, emulator, rows=200, latency_ms=200)
    bg = BackgroundRun(cluster, dbname, "slow", batch_size=10, max_requests_in_flight=1)
    try:
        run_id = wait_for(lambda: current_run_id(db), what="the run to start")
        wait_for(lambda: (run_progress(db, run_id) or {}).get("subscribed", 0) >= 10, what="a first batch")
        assert scalar(db, "SELECT pg_cancel_backend(%s)", (bg.pid,)) is True
        assert bg.join(15), "run_sync() did not return after pg_cancel_backend()"
        assert isinstance(bg.error, psycopg2.errors.QueryCanceled), bg.error
        assert bg.result is None
        # The session is usable afterwards.
        assert scalar(bg.conn, "SELECT 1") == 1
    finally:
        bg.close()

    def ended():
        row = query(db, "SELECT status, error FROM iterable_audience.sync_runs WHERE run_id = %s", (run_id,))[0]
        return row if row["status"] != "running" else None
    row = wait_for(ended, timeout=10, what="the run to be recorded as ended")
    assert row["status"] == "failed"
    assert row["error"].startswith("interrupted")
    wait_for(lambda: worker_pid(db) is None, timeout=10, what="the worker to exit")
    progress = run_progress(db, run_id)["subscribed"]
    assert 10 <= progress < 200
    acknowledged, in_doubt = snapshot_split(db, "slow")
    assert len(acknowledged) == progress
    assert len(in_doubt) <= 10  # the batch in flight when the run stopped: its outcome is unknown

    emulator.clear_faults()
    run = run_sync(db, "slow")
    assert run["status"] == "succeeded", run
    assert members(emulator, list_id_of(db, "slow")) == audience(db)
    assert len(snapshot_rows(db, "slow")) == 200
    check_invariants(db, emulator, "slow")


def test_a_second_run_while_one_is_running_is_refused(db, emulator, cluster):
    dbname = tag(db)
    make_slow_sync(db, emulator, rows=100, latency_ms=150)
    bg = BackgroundRun(cluster, dbname, "slow", batch_size=10, max_requests_in_flight=1)
    try:
        run_id = wait_for(lambda: current_run_id(db), what="the run to start")
        with pytest.raises(psycopg2.errors.LockNotAvailable) as err:
            run_sync(db, "slow")
        assert 'sync "slow" is already running (run %d' % run_id in err.value.diag.message_primary
        emulator.clear_faults()
        assert bg.join(30)
        assert bg.error is None and bg.result["status"] == "succeeded", (bg.error, bg.result)
    finally:
        bg.close()
    assert scalar(db, "SELECT count(*) FROM iterable_audience.sync_runs") == 1
    assert members(emulator, list_id_of(db, "slow")) == audience(db)
    check_invariants(db, emulator, "slow")


def worker_activity(db):
    return scalar(db, "SELECT query FROM pg_stat_activity WHERE backend_type = 'iterable_audience sync'")


def wait_run_ended(db, run_id):
    def ended():
        row = query(db, "SELECT * FROM iterable_audience.sync_runs WHERE run_id = %s", (run_id,))[0]
        return row if row["status"] != "running" else None
    return wait_for(ended, timeout=10, what="the run to be recorded as ended")


def test_cancel_while_the_run_reads_the_audience(db, emulator, cluster):
    dbname = tag(db)
    sql(db, "CREATE TABLE audience AS SELECT %s || '.r' || g || '@example.com' AS email FROM generate_series(1, 200) g",
        (dbname,))
    # A source that takes 10 s to read.
    sql(db, "SELECT iterable_audience.create_sync('slow', 'email', "
            "'SELECT email FROM audience WHERE pg_sleep(0.05) IS NOT NULL', new_list_name => 'slow', "
            "email_column => 'email')")
    before = request_counts(emulator)
    bg = BackgroundRun(cluster, dbname, "slow")
    try:
        run_id = wait_for(lambda: current_run_id(db), what="the run to start")
        wait_for(lambda: "reading the audience" in (worker_activity(db) or ""), what="the worker to read the source")
        assert scalar(db, "SELECT pg_cancel_backend(%s)", (bg.pid,)) is True
        assert bg.join(15), "run_sync() did not return after pg_cancel_backend()"
        assert isinstance(bg.error, psycopg2.errors.QueryCanceled), bg.error
    finally:
        bg.close()
    row = wait_run_ended(db, run_id)
    assert row["status"] == "failed"
    assert row["error"].startswith("interrupted")
    wait_for(lambda: worker_pid(db) is None, timeout=10, what="the worker to exit")
    assert request_counts(emulator) == before
    assert snapshot_rows(db, "slow") == {}
    check_invariants(db, emulator, "slow")


def test_terminated_worker_records_the_run_as_interrupted(db, emulator, cluster):
    dbname = tag(db)
    make_slow_sync(db, emulator, rows=200, latency_ms=200)
    bg = BackgroundRun(cluster, dbname, "slow", batch_size=10, max_requests_in_flight=1)
    try:
        run_id = wait_for(lambda: current_run_id(db), what="the run to start")
        wait_for(lambda: (run_progress(db, run_id) or {}).get("subscribed", 0) >= 10, what="a first batch")
        assert scalar(db, "SELECT pg_terminate_backend(%s)", (worker_pid(db),)) is True
        assert bg.join(15), "run_sync() did not return after its worker was terminated"
        # run_sync() returns the run as the worker recorded it.
        assert bg.error is None, bg.error
        assert bg.result["run_id"] == run_id
        assert bg.result["status"] == "failed" and bg.result["error"].startswith("interrupted")
    finally:
        bg.close()
    emulator.clear_faults()
    run = run_sync(db, "slow")
    assert run["status"] == "succeeded", run
    assert members(emulator, list_id_of(db, "slow")) == audience(db)
    check_invariants(db, emulator, "slow")
