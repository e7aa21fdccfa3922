"""Accounts and lists against a failing Iterable: timeouts, 5xx after retries, cancel and terminate
while a request hangs. Error texts name the host, never the key."""

import threading
import time

import psycopg2
import pytest

from harness import query, scalar

HANG = {"rules": [{"kind": "hang", "endpoint": "get_lists", "seconds": None}]}


def fast_failures(conn, timeout_ms=500, attempts=2):
    with conn.cursor() as cur:
        cur.execute("SET iterable_audience.request_timeout_ms = %s", (timeout_ms,))
        cur.execute("SET iterable_audience.max_attempts = %s", (attempts,))


def test_hanging_endpoint_times_out_naming_the_host_not_the_key(db, emulator, cluster):
    emulator.set_faults(HANG)
    fast_failures(db)
    answer = scalar(db, "SELECT iterable_audience.test_account('hybrid')")
    assert "timed out" in answer and "127.0.0.1:%d" % emulator.port in answer, answer
    assert "test-key-hybrid" not in answer
    with pytest.raises(psycopg2.Error) as err:
        query(db, "SELECT * FROM iterable_audience.lists('hybrid')")
    assert "timed out" in str(err.value) and "127.0.0.1:%d" % emulator.port in str(err.value)
    assert "request_timeout_ms" in (err.value.diag.message_hint or "")
    assert "test-key-hybrid" not in str(err.value)
    assert "test-key-hybrid" not in cluster.server_log()


def test_server_errors_after_every_retry_are_reported(db, emulator):
    emulator.set_faults({"rules": [{"kind": "error_503", "endpoint": "get_lists"}]})
    fast_failures(db, attempts=3)
    before = emulator.state()["requests"]["by_endpoint"].get("get_lists", {}).get("503", 0)
    with pytest.raises(psycopg2.Error) as err:
        query(db, "SELECT * FROM iterable_audience.lists('hybrid')")
    assert "HTTP 503" in str(err.value) and "after 3 attempts" in str(err.value), str(err.value)
    assert "try again later" in (err.value.diag.message_hint or "")
    after = emulator.state()["requests"]["by_endpoint"]["get_lists"]["503"]
    assert after - before == 3


def test_400_and_401_are_not_retried(db, emulator):
    with db.cursor() as cur:
        cur.execute("SELECT iterable_audience.create_account('bad_key', 'no-such-key-12345', base_url => %s)",
                    (emulator.url,))
    before = emulator.state()["requests"]["by_endpoint"].get("get_lists", {}).get("401", 0)
    assert scalar(db, "SELECT iterable_audience.test_account('bad_key')") == "HTTP 401 BadApiKey: Invalid API key"
    assert emulator.state()["requests"]["by_endpoint"]["get_lists"]["401"] - before == 1


@pytest.mark.parametrize("how", ["cancel", "terminate"])
def test_cancel_and_terminate_take_effect_while_the_server_hangs(db, emulator, cluster, how):
    emulator.set_faults(HANG)
    fast_failures(db, timeout_ms=60000, attempts=1)  # the request alone would wait a minute
    pid = scalar(db, "SELECT pg_backend_pid()")
    outcome = {}

    def call():
        start = time.monotonic()
        try:
            query(db, "SELECT * FROM iterable_audience.lists('hybrid')")
            outcome["error"] = None
        except psycopg2.Error as e:
            outcome["error"] = e
        outcome["seconds"] = time.monotonic() - start

    t = threading.Thread(target=call)
    t.start()
    admin = cluster.connect()
    for _ in range(100):  # until the backend is inside the call
        if scalar(admin, "SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)) == "active":
            break
        time.sleep(0.05)
    time.sleep(0.5)
    signal_sent = time.monotonic()
    scalar(admin, "SELECT pg_%s_backend(%%s)" % ("cancel" if how == "cancel" else "terminate"), (pid,))
    t.join(30)
    assert not t.is_alive(), "the call did not return after pg_%s_backend" % how
    assert outcome["error"] is not None
    if how == "cancel":
        assert isinstance(outcome["error"], psycopg2.errors.QueryCanceled), outcome["error"]
        assert scalar(db, "SELECT 1") == 1  # the session is usable
    # Far below the one-minute request timeout: the wait honours the interrupt.
    assert time.monotonic() - signal_sent < 10
    admin.close()
    emulator.clear_faults()
