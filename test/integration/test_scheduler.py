"""The scheduler (docs/scheduler.md): syncs running by themselves, and run_sync from pg_cron.

Test hook: to avoid waiting for a sync's next due time, a test sets next_run_at = now() directly in
iterable_audience.sync (as superuser) and calls iterable_audience.wake_scheduler() in the same
transaction; the scheduler wakes at commit and starts the run exactly as it would at the due time.
One test (test_interval_sync_runs_by_itself) waits for a real due time instead (at most a minute).
Nothing here asserts a wall-clock duration: every wait is a poll with a generous timeout.
"""

import time
import uuid

import psycopg2
import pytest

from harness import Cluster, query, scalar

BASE_CONF = {
    "iterable_audience.retry_base_delay_ms": "10",
    "iterable_audience.retry_max_delay_ms": "200",
}
SCHED_CONF = dict(BASE_CONF, **{"iterable_audience.database_name": "'postgres'"})
EMAIL_KEY = "test-key-email"


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------

def wait_for(check, timeout=60, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def sql(conn, text, params=None):
    with conn.cursor() as cur:
        cur.execute(text, params)


def install(conn, emulator):
    sql(conn, "CREATE EXTENSION iterable_audience")
    sql(conn, "SELECT iterable_audience.create_account('email', %s, project_type => 'email', base_url => %s)",
        (EMAIL_KEY, emulator.url))


def unique(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:8])


def make_people(conn, table, rows):
    """A table of `rows` people with emails unique to this table (the emulator outlives clusters)."""
    sql(conn, "CREATE TABLE %s (id integer PRIMARY KEY, email text)" % table)
    sql(conn, "INSERT INTO %s SELECT g, %%s || '.' || g || '@example.com' FROM generate_series(1, %%s) g" % table,
        (table, rows))
    return {"%s.%d@example.com" % (table, g) for g in range(1, rows + 1)}


def create_sync(conn, name, table, schedule="manual"):
    sql(conn, "SELECT iterable_audience.create_sync(%s, 'email', %s, new_list_name => %s, email_column => 'email', "
              "schedule => %s)", (name, table, name, schedule))


def make_due(conn, name):
    """The test hook: due now, and the scheduler woken when this transaction commits."""
    sql(conn, "UPDATE iterable_audience.sync SET next_run_at = now() WHERE sync_name = %s; "
              "SELECT iterable_audience.wake_scheduler()", (name,))


def runs(conn, name):
    return query(conn, "SELECT * FROM iterable_audience.sync_runs WHERE sync_name = %s ORDER BY run_id", (name,))


def wait_for_finished_run(conn, name, count=1, timeout=60):
    def finished():
        rows = runs(conn, name)
        done = [r for r in rows if r["status"] != "running"]
        return done if len(done) >= count else None
    return wait_for(finished, timeout, what="%d finished run(s) of %s" % (count, name))


def wait_for_running(conn, name, timeout=60):
    return wait_for(lambda: [r for r in runs(conn, name) if r["status"] == "running"], timeout,
                    what="a running run of %s" % name)[0]


def sync_row(conn, name):
    return query(conn, "SELECT * FROM iterable_audience.syncs WHERE sync_name = %s", (name,))[0]


def scheduler_pids(conn):
    return [r["pid"] for r in query(conn, "SELECT pid FROM pg_stat_activity "
                                          "WHERE backend_type = 'iterable_audience scheduler'")]


def wait_for_scheduler(conn, timeout=60, other_than=None):
    def up():
        pids = [p for p in scheduler_pids(conn) if p != other_than]
        return pids[0] if pids else None
    return wait_for(up, timeout, what="the scheduler")


def status(conn):
    return query(conn, "SELECT * FROM iterable_audience.scheduler_status()")[0]


def connect_when_up(cluster, dbname="postgres", timeout=60):
    def attempt():
        try:
            return cluster.connect(dbname=dbname)
        except psycopg2.OperationalError:
            return None
    return wait_for(attempt, timeout, what="the server to accept connections")


def slow_subscribes(emulator, ms):
    emulator.set_faults({"rules": [{"kind": "latency", "endpoint": "subscribe", "ms": ms}]})


# --------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sched(emulator):
    """A cluster whose scheduler serves the postgres database, with the extension installed there."""
    c = Cluster(extra_conf=SCHED_CONF)
    conn = c.connect()
    install(conn, emulator)
    conn.close()
    yield c
    c.destroy()


@pytest.fixture
def sdb(sched, emulator):
    emulator.clear_faults()
    conn = connect_when_up(sched)
    wait_for_scheduler(conn)
    yield conn
    conn.close()
    emulator.clear_faults()


# --------------------------------------------------------------------------------------------------
# schedules and next_run_at
# --------------------------------------------------------------------------------------------------

def test_next_run_at_follows_the_schedule(sdb):
    table = unique("nra")
    make_people(sdb, table, 3)
    create_sync(sdb, table, table)
    assert sync_row(sdb, table)["next_run_at"] is None  # 'manual'

    def next_run():
        return query(sdb, "SELECT next_run_at, next_run_at > now() AS future, "
                          "extract(second FROM next_run_at AT TIME ZONE 'UTC') AS second, "
                          "extract(minute FROM next_run_at AT TIME ZONE 'UTC') AS minute, "
                          "next_run_at - now() AS wait FROM iterable_audience.sync WHERE sync_name = %s", (table,))[0]

    woke = status(sdb)["last_wake_at"]
    sql(sdb, "SELECT iterable_audience.alter_sync(%s, schedule => '*/5 * * * *')", (table,))
    wait_for(lambda: status(sdb)["last_wake_at"] > woke, what="alter_sync to wake the scheduler at commit")
    n = next_run()
    assert n["future"] and n["second"] == 0 and n["minute"] % 5 == 0, n
    sql(sdb, "SELECT iterable_audience.alter_sync(%s, schedule => 'every 1 hour starting 00:30')", (table,))
    n = next_run()
    assert n["future"] and n["minute"] == 30 and n["second"] == 0, n
    sql(sdb, "SELECT iterable_audience.pause_sync(%s)", (table,))
    assert next_run()["next_run_at"] is None
    sql(sdb, "SELECT iterable_audience.alter_sync(%s, schedule => 'every 5 minutes')", (table,))
    assert next_run()["next_run_at"] is None  # still paused
    sql(sdb, "SELECT iterable_audience.resume_sync(%s)", (table,))
    n = next_run()
    assert n["future"] and n["minute"] % 5 == 0, n
    sql(sdb, "SELECT iterable_audience.alter_sync(%s, schedule => 'manual')", (table,))
    assert next_run()["next_run_at"] is None


def test_interval_sync_runs_by_itself(sdb, emulator):
    """'every 1 minute', no test hook: the scheduler sleeps until next_run_at and starts the run."""
    table = unique("tick")
    people = make_people(sdb, table, 20)
    create_sync(sdb, table, table, schedule="every 1 minute")
    due = sync_row(sdb, table)["next_run_at"]
    assert due is not None

    run = wait_for_finished_run(sdb, table, timeout=150)[0]
    assert run["trigger"] == "schedule", run
    assert run["status"] == "succeeded", run
    assert run["subscribed"] == 20
    assert run["started_at"] >= due
    assert emulator.member_keys(sync_row(sdb, table)["list_id"]) == people
    assert sync_row(sdb, table)["next_run_at"] > run["started_at"]
    sql(sdb, "SELECT iterable_audience.pause_sync(%s)", (table,))


def test_due_sync_started_on_wake_with_trigger_schedule(sdb, sched, emulator):
    table = unique("wake")
    people = make_people(sdb, table, 5)
    create_sync(sdb, table, table)  # manual: only the test hook makes it due
    make_due(sdb, table)
    run = wait_for_finished_run(sdb, table)[0]
    assert run["trigger"] == "schedule" and run["status"] == "succeeded", run
    assert emulator.member_keys(sync_row(sdb, table)["list_id"]) == people
    assert sync_row(sdb, table)["next_run_at"] is None  # manual again: not due until made due
    assert 'started run %d of sync "%s"' % (run["run_id"], table) in sched.server_log()
    st = status(sdb)
    assert st["serves_this_database"] and st["database_name"] == "postgres" and st["runs_started"] >= 1, st


def test_scheduler_and_runs_show_in_pg_stat_activity_and_overlaps_are_skipped(sdb, sched, emulator):
    table = unique("overlap")
    make_people(sdb, table, 10)
    create_sync(sdb, table, table, schedule="every 6 hours")
    slow_subscribes(emulator, 6000)
    make_due(sdb, table)
    first = wait_for_running(sdb, table)
    assert first["trigger"] == "schedule"

    workers = wait_for(lambda: query(sdb, "SELECT backend_type, application_name FROM pg_stat_activity "
                                          "WHERE application_name = %s", ("iterable_audience sync " + table,)),
                       what="the run worker in pg_stat_activity")
    assert workers[0]["backend_type"] == "iterable_audience sync"
    scheduler = query(sdb, "SELECT application_name, datname FROM pg_stat_activity "
                           "WHERE backend_type = 'iterable_audience scheduler'")
    assert scheduler == [{"application_name": "iterable_audience scheduler", "datname": "postgres"}]

    # Due again while the first run is going: skipped, logged, and next_run_at moved on (no spinning).
    make_due(sdb, table)
    wait_for(lambda: 'run of sync "%s" skipped: still running (run %d)' % (table, first["run_id"])
             in sched.server_log(), what="the skip in the server log")
    # (the LOG line is written just before the scheduler's transaction commits)
    wait_for(lambda: scalar(sdb, "SELECT next_run_at > now() FROM iterable_audience.sync WHERE sync_name = %s",
                            (table,)), what="next_run_at to move on")
    assert len(runs(sdb, table)) == 1
    assert status(sdb)["runs_skipped"] >= 1

    emulator.clear_faults()
    done = wait_for_finished_run(sdb, table)
    assert [r["status"] for r in done] == ["succeeded"]
    assert len(runs(sdb, table)) == 1


def test_max_concurrent_syncs(sdb, emulator):
    sql(sdb, "ALTER SYSTEM SET iterable_audience.max_concurrent_syncs = 1")
    sql(sdb, "SELECT pg_reload_conf()")
    try:
        # SIGHUP sets the scheduler's latch: it reloads, makes a pass and reports the new value.
        wait_for(lambda: status(sdb)["max_concurrent_syncs"] == 1, what="the scheduler to reload its configuration")
        names = [unique("conc") for _ in range(3)]
        for name in names:
            make_people(sdb, name, 3)
            create_sync(sdb, name, name)
        slow_subscribes(emulator, 1500)
        sql(sdb, "UPDATE iterable_audience.sync SET next_run_at = now() WHERE sync_name = ANY(%s); "
                 "SELECT iterable_audience.wake_scheduler()", (names,))
        finished = []
        for name in names:
            finished += wait_for_finished_run(sdb, name, timeout=90)
        assert all(r["status"] == "succeeded" and r["trigger"] == "schedule" for r in finished), finished
        finished.sort(key=lambda r: r["started_at"])
        for earlier, later in zip(finished, finished[1:]):
            assert later["started_at"] >= earlier["finished_at"], (earlier, later)
    finally:
        sql(sdb, "ALTER SYSTEM RESET iterable_audience.max_concurrent_syncs")
        sql(sdb, "SELECT pg_reload_conf()")


# --------------------------------------------------------------------------------------------------
# robustness
# --------------------------------------------------------------------------------------------------

def test_bad_syncs_fail_alone(sdb, emulator):
    """A dropped source and a dropped owner role fail their own runs; the scheduler and the others go on."""
    pid = wait_for_scheduler(sdb)
    broken, orphan, healthy = unique("broken"), unique("orphan"), unique("healthy")
    make_people(sdb, broken, 3)
    create_sync(sdb, broken, broken)
    sql(sdb, "DROP TABLE %s" % broken)

    role = unique("bob")
    make_people(sdb, orphan, 3)
    sql(sdb, "CREATE ROLE %s" % role)
    sql(sdb, "GRANT USAGE ON SCHEMA iterable_audience TO %s; GRANT SELECT ON %s TO %s" % (role, orphan, role))
    account = unique("acct")
    sql(sdb, "SELECT iterable_audience.create_account(%s, %s, project_type => 'email', base_url => %s)",
        (account, EMAIL_KEY, emulator.url))
    sql(sdb, "UPDATE iterable_audience.account SET owner = %s::regrole WHERE account_name = %s", (role, account))
    sql(sdb, "SET ROLE %s" % role)
    sql(sdb, "SELECT iterable_audience.create_sync(%s, %s, %s, new_list_name => %s, email_column => 'email')",
        (orphan, account, orphan, orphan))
    sql(sdb, "RESET ROLE")
    sql(sdb, "REVOKE ALL ON %s FROM %s; REVOKE USAGE ON SCHEMA iterable_audience FROM %s; DROP ROLE %s"
        % (orphan, role, role, role))

    people = make_people(sdb, healthy, 4)
    create_sync(sdb, healthy, healthy)
    sql(sdb, "UPDATE iterable_audience.sync SET next_run_at = now() WHERE sync_name = ANY(%s); "
             "SELECT iterable_audience.wake_scheduler()", ([broken, orphan, healthy],))

    b = wait_for_finished_run(sdb, broken)[0]
    assert b["status"] == "failed" and "audience source" in b["error"], b
    o = wait_for_finished_run(sdb, orphan)[0]
    assert o["status"] == "failed" and "no longer exists" in o["error"], o
    h = wait_for_finished_run(sdb, healthy)[0]
    assert h["status"] == "succeeded", h
    assert emulator.member_keys(sync_row(sdb, healthy)["list_id"]) == people
    assert scheduler_pids(sdb) == [pid]  # never restarted


def test_killed_scheduler_is_restarted(sdb):
    pid = wait_for_scheduler(sdb)
    assert scalar(sdb, "SELECT pg_terminate_backend(%s)", (pid,))
    new_pid = wait_for_scheduler(sdb, other_than=pid)
    assert new_pid != pid
    wait_for(lambda: status(sdb)["pid"] == new_pid, what="the new scheduler in scheduler_status()")
    # And it works: a due sync runs.
    table = unique("after_kill")
    make_people(sdb, table, 2)
    create_sync(sdb, table, table)
    make_due(sdb, table)
    assert wait_for_finished_run(sdb, table)[0]["status"] == "succeeded"


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restart_leaves_no_run_running(sched, emulator, mode):
    emulator.clear_faults()
    conn = connect_when_up(sched)
    wait_for_scheduler(conn)
    table = unique("restart_" + mode)
    people = make_people(conn, table, 5)
    create_sync(conn, table, table, schedule="every 12 hours")
    slow_subscribes(emulator, 60000)
    make_due(conn, table)
    interrupted = wait_for_running(conn, table)
    time.sleep(1.5)  # lets the WAL writer flush the run row (synchronous_commit = off in the harness)
    conn.close()

    if mode == "fast":
        sched.restart()
    else:
        sched.stop("immediate")
        sched.start()
    emulator.clear_faults()
    conn = connect_when_up(sched)
    wait_for_scheduler(conn)
    try:
        wait_for(lambda: scalar(conn, "SELECT count(*) FROM iterable_audience.sync_runs WHERE status = 'running'") == 0,
                 what="no run left running")
        row = [r for r in runs(conn, table) if r["run_id"] == interrupted["run_id"]][0]
        assert row["status"] == "failed", row
        if mode == "immediate":
            assert row["error"] == "server restarted", row
        else:
            assert "interrupted" in row["error"], row
        assert sync_row(conn, table)["next_run_at"] is not None  # runs again at its next due time
        make_due(conn, table)
        wait_for(lambda: [r for r in runs(conn, table) if r["status"] == "succeeded"], what="the next run")
        assert emulator.member_keys(sync_row(conn, table)["list_id"]) == people
    finally:
        conn.close()


def test_drop_database_elsewhere_is_not_blocked(sdb, sched, emulator):
    """DROP DATABASE waits for every backend to absorb a barrier: the sleeping scheduler must answer."""
    other = unique("otherdb")
    sql(sdb, "CREATE DATABASE %s" % other)
    conn = sched.connect(dbname=other)
    install(conn, emulator)
    conn.close()
    sql(sdb, "SET statement_timeout = '30s'")
    sql(sdb, "DROP DATABASE %s" % other)
    sql(sdb, "RESET statement_timeout")
    assert scalar(sdb, "SELECT count(*) FROM pg_database WHERE datname = %s", (other,)) == 0


def test_served_database_drop_extension_and_drop_database(emulator):
    """In the scheduler's own database, neither DROP EXTENSION nor DROP DATABASE is blocked by it."""
    c = Cluster(extra_conf=dict(BASE_CONF, **{"iterable_audience.database_name": "'served'"}))
    try:
        admin = c.connect()
        wait_for(lambda: 'database "served" named by iterable_audience.database_name does not exist' in c.server_log(),
                 what="the launcher to say the database is missing")
        sql(admin, "CREATE DATABASE served")
        served = c.connect(dbname="served")
        install(served, emulator)  # CREATE EXTENSION wakes the launcher at commit
        pid = wait_for(lambda: status(served)["pid"], what="the scheduler of the new database")
        make_people(served, "people", 3)
        create_sync(served, "every_minute", "people", schedule="every 1 minute")
        assert status(served)["serves_this_database"]

        sql(served, "SET lock_timeout = '10s'")
        sql(served, "DROP EXTENSION iterable_audience CASCADE")
        # Woken at commit, the scheduler finds no extension and exits, freeing its worker slot.
        wait_for(lambda: pid not in scheduler_pids(admin), what="the scheduler to exit after DROP EXTENSION")
        assert 'extension iterable_audience was dropped in database "served"' in c.server_log()
        sql(served, "CREATE EXTENSION iterable_audience")
        wait_for(lambda: status(served)["state"] == "waiting for the next due sync", what="a scheduler to serve it again")
        pid = status(served)["pid"]
        served.close()

        sql(admin, "SET statement_timeout = '30s'")
        sql(admin, "DROP DATABASE served")  # no FORCE: the scheduler steps aside
        assert "stepping aside" in c.server_log()
        sql(admin, "CREATE DATABASE served")
        served = c.connect(dbname="served")
        install(served, emulator)
        wait_for(lambda: status(served)["pid"] not in (None, pid), what="a scheduler for the new database")
        served.close()
        admin.close()
    finally:
        c.destroy()


def test_run_that_cannot_start_is_recorded(emulator):
    """No free background worker slot: the scheduled run is recorded as failed, and the scheduler goes on."""
    # Three slots: the launcher, the scheduler and the logical replication launcher. None is left for
    # a run.
    c = Cluster(extra_conf=dict(SCHED_CONF, max_worker_processes="3"))
    try:
        conn = c.connect()
        install(conn, emulator)
        wait_for_scheduler(conn)
        make_people(conn, "noslot", 2)
        create_sync(conn, "noslot", "noslot", schedule="every 1 hour")
        make_due(conn, "noslot")
        run = wait_for_finished_run(conn, "noslot")[0]
        assert run["status"] == "failed" and run["trigger"] == "schedule", run
        assert "no worker slot is free" in run["error"], run
        assert scalar(conn, "SELECT next_run_at > now() FROM iterable_audience.sync WHERE sync_name = 'noslot'")
        conn.close()
    finally:
        c.destroy()


# --------------------------------------------------------------------------------------------------
# privileges
# --------------------------------------------------------------------------------------------------

def test_owner_privileges_apply_to_scheduled_runs(sdb, sched, emulator):
    role = unique("alice")
    sql(sdb, "CREATE ROLE %s LOGIN" % role)
    sql(sdb, "GRANT USAGE ON SCHEMA iterable_audience TO %s" % role)
    account = unique("acct")
    sql(sdb, "SELECT iterable_audience.create_account(%s, %s, project_type => 'email', base_url => %s)",
        (account, EMAIL_KEY, emulator.url))
    sql(sdb, "UPDATE iterable_audience.account SET owner = %s::regrole WHERE account_name = %s", (role, account))
    mine, secret = unique("mine"), unique("secret")
    people = make_people(sdb, mine, 6)
    make_people(sdb, secret, 6)
    sql(sdb, "GRANT SELECT ON %s TO %s" % (mine, role))

    alice = sched.connect(user=role)
    try:
        with pytest.raises(psycopg2.Error) as refused:
            sql(alice, "SELECT iterable_audience.create_sync(%s, %s, %s, new_list_name => %s, email_column => 'email')",
                (secret, account, secret, secret))
        assert "permission denied" in str(refused.value)

        sql(alice, "SELECT iterable_audience.create_sync(%s, %s, %s, new_list_name => %s, email_column => 'email', "
                   "schedule => 'every 12 hours')", (mine, account, mine, mine))
        first = query(alice, "SELECT * FROM iterable_audience.run_sync(%s)", (mine,))[0]
        assert first["status"] == "succeeded" and first["subscribed"] == 6, first
        list_id = sync_row(sdb, mine)["list_id"]
        assert emulator.member_keys(list_id) == people

        sql(sdb, "REVOKE SELECT ON %s FROM %s" % (mine, role))
        unsubscribes_before = emulator.state()["requests"]["by_endpoint"].get("unsubscribe", {})
        make_due(sdb, mine)
        run = wait_for_finished_run(sdb, mine, count=2)[1]
        assert run["trigger"] == "schedule", run
        assert run["status"] == "failed" and "permission denied" in run["error"], run
        assert run["unsubscribed"] == 0
        assert emulator.member_keys(list_id) == people  # no one unsubscribed
        assert emulator.state()["requests"]["by_endpoint"].get("unsubscribe", {}) == unsubscribes_before
        # The owner sees the failure of the scheduled run.
        assert sync_row(alice, mine)["last_run_status"] == "failed"
    finally:
        alice.close()


# --------------------------------------------------------------------------------------------------
# pg_cron
# --------------------------------------------------------------------------------------------------

def test_pg_cron_job_runs_run_sync(emulator):
    """pg_cron 1.4 (Debian's postgresql-15-cron) has minute resolution: the job fires within a minute."""
    conf = dict(BASE_CONF, **{
        "shared_preload_libraries": "'pg_cron,iterable_audience'",
        "cron.database_name": "'postgres'",
        "cron.use_background_workers": "on",
        "iterable_audience.database_name": "'postgres'",
    })
    c = Cluster(extra_conf=conf)
    try:
        conn = c.connect()
        sql(conn, "CREATE EXTENSION pg_cron")
        install(conn, emulator)
        people = make_people(conn, "vip_people", 8)
        create_sync(conn, "vip", "vip_people")
        job = scalar(conn, "SELECT cron.schedule('vip', '* * * * *', $$SELECT iterable_audience.run_sync('vip')$$)")
        details = wait_for(lambda: query(conn, "SELECT status, return_message FROM cron.job_run_details "
                                               "WHERE jobid = %s AND status IN ('succeeded', 'failed')", (job,)),
                           timeout=150, interval=1, what="the pg_cron job to run")
        assert details[0]["status"] == "succeeded", details
        run = wait_for_finished_run(conn, "vip")[0]
        assert run["status"] == "succeeded" and run["trigger"] == "manual", run
        assert emulator.member_keys(sync_row(conn, "vip")["list_id"]) == people
        sql(conn, "SELECT cron.unschedule('vip')")
        conn.close()
    finally:
        c.destroy()


# --------------------------------------------------------------------------------------------------
# without preloading
# --------------------------------------------------------------------------------------------------

def test_without_preloading_there_is_no_scheduler_but_run_sync_works(emulator):
    c = Cluster(extra_conf=dict(BASE_CONF, shared_preload_libraries="''"))
    try:
        conn = c.connect()
        install(conn, emulator)
        people = make_people(conn, "plain", 4)
        create_sync(conn, "plain", "plain", schedule="every 5 minutes")
        assert scheduler_pids(conn) == []
        st = status(conn)
        assert st["pid"] is None and st["state"].startswith("not loaded"), st
        assert scalar(conn, "SELECT iterable_audience.wake_scheduler()") is False
        run = query(conn, "SELECT * FROM iterable_audience.run_sync('plain')")[0]
        assert run["status"] == "succeeded" and run["trigger"] == "manual", run
        assert emulator.member_keys(sync_row(conn, "plain")["list_id"]) == people
        conn.close()
    finally:
        c.destroy()
