"""Iterable failing: rate limits, server errors, dropped connections (runs converge once they
clear), a wrong API key and a deleted list (the run fails whole, nothing is sent)."""

import collections

from harness import scalar
from invariants import check_invariants
from sync_helpers import (KEYS, list_id_of, log_summary, logs, members, request_counts, run_sync, session_settings,
                          snapshot_rows, snapshot_split, snapshot_table, sql, tag, wait_for)


def make_audience(db, rows=400, batch_size=100, in_flight=1, max_attempts=2):
    """An email sync over `rows` addresses; batches of batch_size sent one at a time."""
    t = tag(db)
    sql(db, "CREATE TABLE audience AS SELECT %s || '.a' || g || '@example.com' AS email, g AS n "
            "FROM generate_series(1, %s) g", (t, rows))
    sql(db, "SELECT iterable_audience.create_sync('faulty', 'email', 'audience', new_list_name => 'faulty', "
            "email_column => 'email')")
    session_settings(db, batch_size=batch_size, max_requests_in_flight=in_flight, max_attempts=max_attempts)


def audience(db):
    with db.cursor() as cur:
        cur.execute("SELECT email FROM audience")
        return {(r[0], None) for r in cur.fetchall()}


def assert_converged(db, emulator):
    list_id = list_id_of(db, "faulty")
    assert members(emulator, list_id) == audience(db)
    assert {(e, u) for e, u in snapshot_rows(db, "faulty").values()} == audience(db)


def failures(db, run_id):
    return collections.Counter(r["error_code"] for r in logs(db, run_id) if r["status"] == "failed")


def test_429_burst_fails_a_batch_then_converges(db, emulator):
    make_audience(db)
    emulator.set_faults({"seed": 1, "rules": [{"kind": "rate_limit", "endpoint": "subscribe", "next": 3}]})
    first = run_sync(db, "faulty")
    # Batch 1: 429 twice (max_attempts 2) and fails; batch 2: 429 then accepted; batches 3 and 4 accepted.
    assert first["status"] == "succeeded_with_failures", first
    assert (first["planned_subscribes"], first["subscribed"], first["failed"]) == (400, 300, 100)
    assert first["api_requests"] == 1 + 2 + 2 + 1 + 1
    assert first["rate_limited"] == 3
    assert failures(db, first["run_id"]) == {"rate_limited": 100}
    assert all("429" in r["error_message"] for r in logs(db, first["run_id"]) if r["status"] == "failed")
    # The snapshot holds what Iterable acknowledged, which is exactly the list.
    assert {(e, u) for e, u in snapshot_rows(db, "faulty").values()} == members(emulator, list_id_of(db, "faulty"))
    assert len(members(emulator, list_id_of(db, "faulty"))) == 300

    second = run_sync(db, "faulty")  # the rule is spent
    assert second["status"] == "succeeded", second
    assert (second["planned_subscribes"], second["subscribed"], second["failed"]) == (100, 100, 0)
    assert log_summary(db, second["run_id"]) == {("insert", "subscribe", "succeeded", None): 100}
    assert_converged(db, emulator)
    check_invariants(db, emulator, "faulty")


def test_server_errors_fail_batches_then_converge(db, emulator):
    make_audience(db)
    emulator.set_faults({"seed": 2, "rules": [
        {"kind": "error_500", "endpoint": "subscribe", "next": 2},
        {"kind": "error_503", "endpoint": "subscribe", "next": 2, "skip": 2}]})
    first = run_sync(db, "faulty")
    assert first["status"] == "succeeded_with_failures", first
    assert (first["subscribed"], first["failed"]) == (200, 200)
    assert first["api_requests"] == 1 + 2 + 2 + 1 + 1
    assert failures(db, first["run_id"]) == {"http_error": 200}
    messages = collections.Counter(r["error_message"].split(" ")[1] for r in logs(db, first["run_id"])
                                   if r["status"] == "failed")
    assert messages == {"500": 100, "503": 100}
    assert len(members(emulator, list_id_of(db, "faulty"))) == 200

    second = run_sync(db, "faulty")
    assert second["status"] == "succeeded", second
    assert (second["planned_subscribes"], second["subscribed"]) == (200, 200)
    assert_converged(db, emulator)
    check_invariants(db, emulator, "faulty")


def test_dropped_connections_then_converge(db, emulator):
    make_audience(db)
    emulator.set_faults({"seed": 7, "rules": [
        # libcurl itself retries once a request whose reused connection closes before any answer:
        # three drops fail the first batch (drop, curl's retry, the client's second attempt).
        {"kind": "drop", "endpoint": "subscribe", "next": 3},
        {"kind": "drop", "endpoint": "subscribe", "partial": True, "rate": 0.3}]})
    first = run_sync(db, "faulty")
    assert first["status"] == "succeeded_with_failures", first
    assert first["failed"] >= 100  # the first batch at least
    assert first["subscribed"] + first["failed"] == 400
    assert set(failures(db, first["run_id"])) == {"http_error"}
    assert sum(failures(db, first["run_id"]).values()) == first["failed"]
    # A dropped connection tells nothing: the failed records stay in doubt in the snapshot (the emulator
    # applies nothing it drops, so the list is exactly what was acknowledged).
    acknowledged, in_doubt = snapshot_split(db, "faulty")
    assert set(acknowledged.values()) == members(emulator, list_id_of(db, "faulty"))
    assert len(in_doubt) == first["failed"]

    emulator.clear_faults()
    second = run_sync(db, "faulty")
    assert second["status"] == "succeeded", second
    assert second["planned_subscribes"] == first["failed"]
    assert_converged(db, emulator)
    check_invariants(db, emulator, "faulty")


def test_random_faults_on_both_actions_converge_within_a_few_runs(db, emulator):
    make_audience(db, rows=600, max_attempts=3)

    def faults(first_endpoint, seed):
        # A sure failure of the first batch (three 429 or 500 in a row), then seeded random faults.
        kind = "rate_limit" if first_endpoint == "subscribe" else "error_500"
        both = ["subscribe", "unsubscribe"]
        emulator.set_faults({"seed": seed, "rules": [
            {"kind": kind, "endpoint": first_endpoint, "next": 3},
            {"kind": "rate_limit", "endpoint": both, "rate": 0.2},
            {"kind": "error_500", "endpoint": both, "rate": 0.1},
            {"kind": "drop", "endpoint": both, "partial": True, "rate": 0.1}]})

    def converge():
        statuses = []
        for _ in range(8):
            run = run_sync(db, "faulty")
            statuses.append(run["status"])
            assert set(failures(db, run["run_id"])) <= {"rate_limited", "http_error"}
            assert run["subscribed"] + run["unsubscribed"] + run["failed"] == (
                run["planned_subscribes"] + run["planned_unsubscribes"])
            if run["status"] == "succeeded":
                return statuses
            assert run["status"] == "succeeded_with_failures", run
        raise AssertionError("no convergence: %s" % statuses)

    faults("subscribe", 11)
    assert len(converge()) >= 2
    assert_converged(db, emulator)
    # Churn while faults go on: a fifth leaves, new rows arrive.
    sql(db, "DELETE FROM audience WHERE n % 5 = 0")
    sql(db, "INSERT INTO audience SELECT %s || '.b' || g || '@example.com', 1000 + g FROM generate_series(1, 50) g",
        (tag(db),))
    faults("unsubscribe", 12)
    assert len(converge()) >= 2
    assert_converged(db, emulator)
    check_invariants(db, emulator, "faulty")


def test_wrong_api_key_fails_the_run_and_sends_nothing(db, emulator):
    make_audience(db, rows=50)
    first = run_sync(db, "faulty")
    assert first["status"] == "succeeded"
    snap_table, snap = snapshot_table(db, "faulty"), snapshot_rows(db, "faulty")
    sql(db, "INSERT INTO audience VALUES ('late.%s@example.com', 999)" % tag(db))
    sql(db, "SELECT iterable_audience.alter_account('email', api_key => 'not-the-right-key')")
    before = request_counts(emulator)

    run = run_sync(db, "faulty")

    assert run["status"] == "failed", run
    assert "API key" in run["error"] and "alter_account" in run["error"] and '"email"' in run["error"]
    assert "not-the-right-key" not in run["error"]
    assert (run["subscribed"], run["unsubscribed"], run["api_requests"]) == (0, 0, 1)
    assert request_counts(emulator) - before == {"get_lists": 1}
    assert logs(db, run["run_id"]) == []
    assert snapshot_table(db, "faulty") == snap_table and snapshot_rows(db, "faulty") == snap
    assert len(members(emulator, list_id_of(db, "faulty"))) == 50

    # With the key back, the next run sends what was pending.
    sql(db, "SELECT iterable_audience.alter_account('email', api_key => %s)", (KEYS["email"],))
    run = run_sync(db, "faulty")
    assert run["status"] == "succeeded" and run["subscribed"] == 1
    assert_converged(db, emulator)
    check_invariants(db, emulator, "faulty")


def test_deleted_list_fails_the_run(db, emulator):
    make_audience(db, rows=30)
    list_id = list_id_of(db, "faulty")
    emulator.call("DELETE", "/api/lists/%d" % list_id, api_key=KEYS["email"])
    before = request_counts(emulator)

    run = run_sync(db, "faulty")

    assert run["status"] == "failed", run
    assert "list %d no longer exists" % list_id in run["error"]
    assert "alter_sync" in run["error"]
    assert request_counts(emulator) - before == {"get_lists": 1}
    assert snapshot_table(db, "faulty") is None
    assert logs(db, run["run_id"]) == []


def test_list_deleted_during_the_run(db, emulator):
    make_audience(db, rows=400)
    emulator.set_faults({"rules": [{"kind": "delete_list_after", "subscribes": 2}]})
    run = run_sync(db, "faulty")
    assert run["status"] == "failed", run
    assert "deleted during the run" in run["error"]
    assert run["subscribed"] == 200  # what was acknowledged before is kept
    assert len(snapshot_rows(db, "faulty")) == 200
    assert log_summary(db, run["run_id"]) == {("insert", "subscribe", "succeeded", None): 200,
                                              ("insert", "subscribe", "failed", "http_error"): 100}


def test_batches_loaded_ahead_but_never_sent_leave_the_ledger(db, emulator):
    # With 3 requests in flight, batches are written to the ledger 3 at a time before they go out;
    # when the list is deleted mid-run, those never sent must not stay behind as if sent.
    make_audience(db, rows=2000, in_flight=3)
    emulator.set_faults({"rules": [{"kind": "delete_list_after", "subscribes": 4}]})
    before = request_counts(emulator)
    run = run_sync(db, "faulty")
    assert run["status"] == "failed" and "deleted during the run" in run["error"], run
    sent = (request_counts(emulator) - before)["subscribe"]
    assert sent < 20
    ledger = scalar(db, "SELECT count(*) FROM iterable_audience.sync_batch WHERE run_id = %s AND kind = 'sent'",
                    (run["run_id"],))
    assert ledger == sent, (ledger, sent)
    assert run["subscribed"] == 400
    assert len(snapshot_rows(db, "faulty")) == 400
    emulator.clear_faults()
    sql(db, "SELECT iterable_audience.alter_sync('faulty', new_list_name => 'faulty again')")
    assert run_sync(db, "faulty")["status"] == "succeeded"
    assert_converged(db, emulator)
    check_invariants(db, emulator, "faulty")


def test_unreachable_iterable_fails_the_run(db, emulator):
    make_audience(db, rows=10, max_attempts=2)
    sql(db, "SELECT iterable_audience.alter_account('email', base_url => 'http://127.0.0.1:1')")
    run = run_sync(db, "faulty")
    assert run["status"] == "failed", run
    assert "could not reach Iterable" in run["error"] and "nothing was sent" in run["error"]
    assert run["api_requests"] == 2
    assert snapshot_table(db, "faulty") is None
    sql(db, "SELECT iterable_audience.alter_account('email', base_url => %s)", (emulator.url,))
    assert run_sync(db, "faulty")["status"] == "succeeded"
    assert_converged(db, emulator)
    check_invariants(db, emulator, "faulty")


def test_timed_out_batches_applied_late_converge(db, emulator):
    # Iterable applies the first batch after the client gave up on it (twice): the records are
    # logged as failed, the list already has them, and the next run sends them again harmlessly.
    make_audience(db, rows=200, max_attempts=2)
    session_settings(db, batch_size=100, max_requests_in_flight=1, max_attempts=2, request_timeout_ms=300)
    emulator.set_faults({"rules": [{"kind": "hang", "endpoint": "subscribe", "seconds": 0.6, "next": 2}]})
    first = run_sync(db, "faulty")
    assert first["status"] == "succeeded_with_failures", first
    assert (first["subscribed"], first["failed"]) == (100, 100)
    assert failures(db, first["run_id"]) == {"http_error": 100}
    assert all("timed out" in r["error_message"] for r in logs(db, first["run_id"]) if r["status"] == "failed")
    list_id = list_id_of(db, "faulty")
    wait_for(lambda: len(members(emulator, list_id)) == 200, timeout=10, what="the late batch to be applied")
    acknowledged, in_doubt = snapshot_split(db, "faulty")
    assert (len(acknowledged), len(in_doubt)) == (100, 100)  # a timeout tells nothing: in doubt

    second = run_sync(db, "faulty")
    assert second["status"] == "succeeded", second
    assert (second["planned_subscribes"], second["subscribed"]) == (100, 100)
    assert_converged(db, emulator)
    check_invariants(db, emulator, "faulty")
