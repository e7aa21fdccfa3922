"""Two syncs of one Iterable project running at once pace their requests together (issue #5): Iterable's
rate limit is per project, so every run of an account drives one controller in shared memory
(src/shared_pacing.cpp), shown by iterable_audience.rate_controllers().

The emulator holds a hidden leaky bucket of 20 requests/s per API key and endpoint, with 100 ms latency.
Each sync sends 100 subscribe requests (10,000 rows, batch_size 100): about 11 s at 20 requests/s for
both together. The bound on 429s is generous because a run this short is dominated by the start, when
nothing is paced yet (the burst of the bucket is found by its 429s) and retries of 429s are not paced;
simulated with the controller's rules (both runs, start offsets up to 1.5 s, the default backoff), the
share of 429s stays at or below 6% in 400 trials, 2.6% on average.
"""

import math

import psycopg2
import psycopg2.errors
import pytest

from harness import query, scalar
from invariants import check_invariants
from sync_helpers import BackgroundRun, list_id_of, sql, tag

ROWS = 10_000        # per sync
BATCH_SIZE = 100     # -> 100 subscribe requests per sync
LIMIT = 20           # requests/s of the hidden bucket (and its burst)
SYNCS = ("pace_a", "pace_b")


def make_email_sync(db, name, prefix):
    sql(db, "CREATE TABLE " + name + " AS "
            "SELECT %s || '.' || g || '@example.com' AS email FROM generate_series(1, %s) g", (prefix, ROWS))
    sql(db, "SELECT iterable_audience.create_sync(%s, 'email', %s, new_list_name => %s, email_column => 'email')",
        (name, name, name))


def limited_by_the_bucket(emulator):
    """429s the emulator's bucket gave since the fault configuration was set."""
    return sum(limit.get("limited", 0) for limit in emulator.state()["faults"]["rate_limits"])


def test_two_syncs_of_one_account_share_one_pacer(db, emulator, cluster):
    dbname = tag(db)
    for name in SYNCS:
        make_email_sync(db, name, "%s.%s" % (dbname, name))
    emulator.set_faults({"latency_ms": 100,
                         "rate_limits": [{"endpoint": ["subscribe", "unsubscribe"], "rate": LIMIT, "burst": LIMIT}]})

    # Both run_sync() calls at once, each on its own connection; the default retry backoff (500 ms base),
    # not the short one the other tests use.
    runs = [BackgroundRun(cluster, dbname, name, batch_size=BATCH_SIZE, retry_base_delay_ms=500,
                          retry_max_delay_ms=30000) for name in SYNCS]
    try:
        for bg in runs:
            assert bg.join(90), "run_sync() did not return"
    finally:
        for bg in runs:
            bg.close()
    for name, bg in zip(SYNCS, runs):
        assert bg.error is None, "%s: %s" % (name, bg.error)
    results = [bg.result for bg in runs]
    for name, run in zip(SYNCS, results):
        assert (run["status"], run["subscribed"], run["failed"]) == ("succeeded", ROWS, 0), (name, run)

    # The runs overlapped (otherwise this would test nothing about sharing).
    first, second = sorted(results, key=lambda r: r["started_at"])
    assert second["started_at"] < first["finished_at"], results

    # Few 429s over both runs together. api_requests counts every attempt (retries included) and each
    # run's preflight GET /api/lists (not rate limited); rate_limited the 429s among them.
    requests = sum(r["api_requests"] for r in results)
    limited = sum(r["rate_limited"] for r in results)
    assert limited == limited_by_the_bucket(emulator)
    assert limited / requests < 0.10, "%d of %d requests answered 429: %r" % (limited, requests, results)

    # One controller for the account, driven by both runs.
    account_id = scalar(db, "SELECT account_id FROM iterable_audience.account WHERE account_name = 'email'")
    oid = scalar(db, "SELECT oid FROM pg_database WHERE datname = current_database()")
    slots = query(db, "SELECT * FROM iterable_audience.rate_controllers() WHERE database_oid = %s", (oid,))
    assert [s["account_id"] for s in slots] == [account_id], slots
    slot = slots[0]
    assert slot["requests"] == len(SYNCS) * ROWS // BATCH_SIZE, slot            # every batch of both runs
    assert slot["responses"] == requests - len(SYNCS), (slot, results)         # every attempt but the preflights
    assert slot["rate_limited"] == limited, slot
    assert math.isfinite(slot["rate"]) and slot["rate"] > 0, slot              # paced since the first 429
    assert slot["last_used"] is not None

    emulator.clear_faults()
    for name in SYNCS:
        assert len(emulator.members(list_id_of(db, name))) == ROWS
        check_invariants(db, emulator, name)


def test_rate_controllers_is_for_superusers(db):
    role = "pacing_reader_%s" % tag(db)
    sql(db, "CREATE ROLE %s" % role)
    sql(db, "GRANT USAGE ON SCHEMA iterable_audience TO %s" % role)  # so that only EXECUTE is missing
    try:
        with db.cursor() as cur:
            cur.execute("SET ROLE %s" % role)
            with pytest.raises(psycopg2.errors.InsufficientPrivilege) as err:
                cur.execute("SELECT * FROM iterable_audience.rate_controllers()")
            assert "function rate_controllers" in str(err.value)
            cur.execute("RESET ROLE")
    finally:
        sql(db, "RESET ROLE")
        sql(db, "REVOKE USAGE ON SCHEMA iterable_audience FROM %s; DROP ROLE %s" % (role, role))


def test_the_learned_rate_is_remembered_across_a_restart(db, emulator, cluster):
    """A run under a hidden limit writes the rate its pacing measured to iterable_audience.learned_rate
    (issue 18); after a restart (shared memory gone) the next run's slot starts from it."""
    dbname = tag(db)
    for name in ("learn_a", "learn_b"):
        sql(db, "CREATE TABLE " + name + " AS "
                "SELECT %s || '.' || g || '@example.com' AS email FROM generate_series(1, 3000) g", (dbname + name,))
        sql(db, "SELECT iterable_audience.create_sync(%s, 'email', %s, new_list_name => %s, email_column => 'email')",
            (name, name, name))
    emulator.set_faults({"latency_ms": 100,
                         "rate_limits": [{"endpoint": ["subscribe", "unsubscribe"], "rate": LIMIT, "burst": 2}]})
    bg = BackgroundRun(cluster, dbname, "learn_a", batch_size=BATCH_SIZE, retry_base_delay_ms=500,
                       retry_max_delay_ms=30000)
    try:
        assert bg.join(90), "run_sync() did not return"
    finally:
        bg.close()
    assert bg.error is None, bg.error
    assert (bg.result["status"], bg.result["subscribed"], bg.result["failed"]) == ("succeeded", 3000, 0), bg.result
    assert bg.result["rate_limited"] > 0, "a new account meets the hidden limit: %r" % bg.result

    account_id = scalar(db, "SELECT account_id FROM iterable_audience.account WHERE account_name = 'email'")
    learned = query(db, "SELECT * FROM iterable_audience.learned_rate")
    assert [(r["account_id"], r["endpoint"]) for r in learned] == [(account_id, "/api/lists/subscribe")], learned
    remembered = learned[0]["rate"]
    assert LIMIT * 0.5 <= remembered <= LIMIT * 1.25, learned  # measured from the 200s, to within a request or so
    # User state pg_dump keeps.
    assert scalar(db, "SELECT 'iterable_audience.learned_rate'::regclass = ANY (extconfig) FROM pg_extension "
                      "WHERE extname = 'iterable_audience'")

    cluster.restart()
    conn = cluster.connect(dbname=dbname)
    try:
        assert query(conn, "SELECT * FROM iterable_audience.rate_controllers()") == []
        emulator.clear_faults()  # no 429 now: whatever the slot knows, it started with
        bg = BackgroundRun(cluster, dbname, "learn_b", batch_size=BATCH_SIZE)
        try:
            assert bg.join(90), "run_sync() did not return"
        finally:
            bg.close()
        assert bg.error is None, bg.error
        assert bg.result["status"] == "succeeded" and bg.result["rate_limited"] == 0, bg.result
        oid = scalar(conn, "SELECT oid FROM pg_database WHERE datname = current_database()")
        slots = query(conn, "SELECT * FROM iterable_audience.rate_controllers() WHERE database_oid = %s", (oid,))
        assert [s["endpoint"] for s in slots] == ["/api/lists/subscribe"], slots
        # A fresh slot knows no estimate (NULL) and starts by doubling its rate; this one started at
        # just below the remembered rate and only probed above it since.
        assert slots[0]["estimate"] == pytest.approx(remembered), (slots, remembered)
        assert slots[0]["rate"] <= remembered * 1.1, (slots, remembered)
        # No 429, nothing new learned: the row is as the first run left it.
        assert query(conn, "SELECT * FROM iterable_audience.learned_rate") == learned
    finally:
        conn.close()
