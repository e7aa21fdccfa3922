"""The fault matrix (issue #6, docs/reliability.md): for each way Iterable can fail, a run that meets it
ends with a truthful status and error, leaves no invalid state, and the next runs converge.

Every case: a hybrid sync of 600 rows is mirrored cleanly; the audience churns (100 rows leave, 150
arrive, so the run sends two unsubscribe and three subscribe batches of 50); the fault is injected on
subscribe and unsubscribe (or on the preflight, or the list is deleted); the run must say what happened
(status, per-record error codes and messages, counters equal to the logs, snapshot rows that Iterable
may have applied without telling left in doubt and nothing else); then, the fault cleared, runs
converge (list == audience) within three runs and the invariants of invariants.py hold.

Bounded for CI (small audience, short timeouts). Specific counts of single faults (a 429 burst, 500s
and 503s, drops, a hang answered late, a wrong key, a list deleted before or during a run, an
unreachable host) are asserted in test_sync_faults.py; this file checks the same properties for every
fault kind.
"""

import collections

import pytest

import invariants
from harness import query, scalar
from sync_helpers import list_id_of, logs, members, request_counts, run_sync, session_settings, sql, tag

SEND = ["subscribe", "unsubscribe"]
BASE = dict(batch_size=50, max_requests_in_flight=2, max_attempts=2, request_timeout_ms=2000)


def make_sync(db):
    t = tag(db)
    sql(db, "CREATE TABLE people (n integer PRIMARY KEY, uid text, email text, plan text)")
    sql(db, "INSERT INTO people SELECT g, %s || '-m' || g, %s || '.m' || g || '@example.com', 'basic' "
            "FROM generate_series(1, 600) g", (t, t))
    sql(db, "SELECT iterable_audience.create_sync('matrix', 'hybrid', 'people', new_list_name => 'matrix', "
            "email_column => 'email', user_id_column => 'uid', data_fields => '{\"plan\": \"plan\"}')")
    session_settings(db, **BASE)
    first = run_sync(db, "matrix")
    assert first["status"] == "succeeded", first
    sql(db, "DELETE FROM people WHERE n % 6 = 0")
    sql(db, "INSERT INTO people SELECT g, %s || '-m' || g, %s || '.m' || g || '@example.com', 'new' "
            "FROM generate_series(601, 750) g", (t, t))


def audience(db):
    return {(r["email"], r["uid"]) for r in query(db, "SELECT email, uid FROM people")}


def converge(db, emulator, name="matrix"):
    """Runs (faults cleared) until one succeeds; the list then equals the audience."""
    emulator.clear_faults()
    statuses = []
    for _ in range(3):
        run = run_sync(db, name)
        statuses.append(run["status"])
        if run["status"] == "succeeded":
            break
    assert statuses[-1] == "succeeded", statuses
    assert members(emulator, list_id_of(db, name)) == audience(db)
    invariants.check_invariants(db, emulator, name)
    again = run_sync(db, name)
    assert (again["status"], again["planned_subscribes"], again["planned_unsubscribes"]) == ("succeeded", 0, 0)
    return statuses


def assert_truthful_finish(db, emulator, run):
    assert run["finished_at"] is not None
    assert scalar(db, "SELECT count(*) FROM iterable_audience.sync_runs WHERE status = 'running'") == 0
    invariants.check_counters(db, "matrix")
    invariants.check_nothing_invalid_sent(emulator)


# kind -> (rules, settings, error_code of the failed records, fragment of their message, outcome known)
BATCH_FAULTS = {
    "429_storm": ([{"kind": "rate_limit", "endpoint": SEND, "next": 12}], {}, "rate_limited", "HTTP 429", True),
    "error_500": ([{"kind": "error_500", "endpoint": SEND, "next": 6}], {}, "http_error", "HTTP 500", False),
    "error_503": ([{"kind": "error_503", "endpoint": SEND, "next": 6}], {}, "http_error", "HTTP 503", False),
    "dropped_connection": ([{"kind": "drop", "endpoint": SEND, "next": 8}], {}, "http_error", "dropped", False),
    "hang_past_timeout": ([{"kind": "hang", "endpoint": SEND, "next": 4}], {"request_timeout_ms": 400},
                          "http_error", "timed out after 400 ms", False),
    "trickling_body": ([{"kind": "trickle", "endpoint": SEND, "chunk_bytes": 8, "interval_ms": 100, "next": 4}],
                       {"request_timeout_ms": 600}, "http_error", "timed out after 600 ms", False),
    "malformed_json": ([{"kind": "malformed_json", "endpoint": SEND, "next": 3}], {}, "invalid_response",
                       "not a list update result", False),
    "unexpected_shape": ([{"kind": "unexpected_shape", "endpoint": SEND, "next": 3}], {}, "invalid_response",
                         "not a list update result", False),
    "huge_body": ([{"kind": "huge_body", "endpoint": SEND, "size_bytes": 3 * 1024 * 1024, "next": 3}],
                  {"max_response_bytes": 1024 * 1024}, "http_error", "exceeds the limit of 1048576 bytes", False),
}


@pytest.mark.parametrize("kind", list(BATCH_FAULTS))
def test_batch_fault(db, emulator, kind):
    rules, settings, code, fragment, known = BATCH_FAULTS[kind]
    make_sync(db)
    session_settings(db, **dict(BASE, **settings))
    emulator.set_faults({"seed": 6, "rules": rules})

    run = run_sync(db, "matrix")

    # Truthful: some records failed, each with the code and Iterable's (or the transport's) reason;
    # everything else is accounted for.
    assert run["status"] == "succeeded_with_failures", run
    assert run["error"] is None, run
    assert (run["planned_unsubscribes"], run["planned_subscribes"]) == (100, 150)
    assert run["failed"] >= 50  # the first batch at least: every attempt at it met the fault
    assert run["subscribed"] + run["unsubscribed"] + run["failed"] == 250
    failed = [r for r in logs(db, run["run_id"]) if r["status"] == "failed"]
    assert collections.Counter(r["error_code"] for r in failed) == {code: run["failed"]}
    assert all(fragment in r["error_message"] for r in failed), failed[0]["error_message"]
    assert_truthful_finish(db, emulator, run)
    # No invalid state: what Iterable acknowledged is on the list; a record on the list is known to
    # the snapshot; the failed records are in doubt exactly when the answer did not tell.
    acknowledged, in_doubt, on_list = invariants.snapshot_and_list(db, emulator, "matrix")
    assert acknowledged <= on_list <= acknowledged | in_doubt
    failed_records = {(r["email"], r["user_id"]) for r in failed}
    assert in_doubt == (set() if known else failed_records)

    print("%s: %s, %d failed, %d in doubt: %s; converged in %s" % (
        kind, run["status"], run["failed"], len(in_doubt), failed[0]["error_message"], converge(db, emulator)))


def test_list_deleted_mid_run(db, emulator):
    make_sync(db)
    old_list = list_id_of(db, "matrix")
    emulator.set_faults({"rules": [{"kind": "delete_list_after", "subscribes": 1}]})
    run = run_sync(db, "matrix")
    assert run["status"] == "failed", run
    assert "list %d no longer exists in Iterable (it was deleted during the run" % old_list in run["error"]
    assert "records Iterable acknowledged before that are kept" in run["error"]
    assert run["unsubscribed"] == 100 and run["subscribed"] == 50, run
    failed = [r for r in logs(db, run["run_id"]) if r["status"] == "failed"]
    assert len(failed) == run["failed"] and {r["error_code"] for r in failed} <= {"http_error"}
    assert_truthful_finish(db, emulator, run)
    # Every later run fails up front, saying so, and sends nothing.
    before = request_counts(emulator)
    again = run_sync(db, "matrix")
    assert again["status"] == "failed" and "list %d no longer exists" % old_list in again["error"]
    assert request_counts(emulator) - before == {"get_lists": 1}
    # Pointed at a new list, the sync starts it from the whole audience.
    sql(db, "SELECT iterable_audience.alter_sync('matrix', new_list_name => 'matrix again')")
    assert list_id_of(db, "matrix") != old_list
    statuses = converge(db, emulator)
    assert statuses == ["succeeded"]


PREFLIGHT_FAULTS = {
    "preflight_503": ({"kind": "error_503", "endpoint": "get_lists", "next": 2},
                      "could not reach Iterable for account \"hybrid\": HTTP 503"),
    "preflight_hang": ({"kind": "hang", "endpoint": "get_lists", "next": 2},
                       "could not reach Iterable for account \"hybrid\": timed out after 400 ms"),
    "preflight_malformed_json": ({"kind": "malformed_json", "endpoint": "get_lists", "next": 1},
                                 "Iterable's answer to GET /api/lists is not in the documented shape"),
    "preflight_429_storm": ({"kind": "rate_limit", "endpoint": "get_lists", "next": 2},
                            "could not reach Iterable for account \"hybrid\": HTTP 429"),
}


@pytest.mark.parametrize("kind", list(PREFLIGHT_FAULTS))
def test_preflight_fault_fails_the_run_whole(db, emulator, kind):
    rule, error = PREFLIGHT_FAULTS[kind]
    make_sync(db)
    session_settings(db, **dict(BASE, request_timeout_ms=400))
    snapshot_before = invariants.snapshot_and_list(db, emulator, "matrix")
    emulator.set_faults({"rules": [rule]})
    before = request_counts(emulator)

    run = run_sync(db, "matrix")

    assert run["status"] == "failed", run
    assert error in run["error"] and "nothing was sent" in run["error"], run["error"]
    assert (run["subscribed"], run["unsubscribed"], run["failed"]) == (0, 0, 0)
    assert set(request_counts(emulator) - before) == {"get_lists"}
    assert logs(db, run["run_id"]) == []
    assert invariants.snapshot_and_list(db, emulator, "matrix") == snapshot_before
    assert_truthful_finish(db, emulator, run)
    print("%s: %s: %s" % (kind, run["status"], run["error"]))
    assert converge(db, emulator) == ["succeeded"]
