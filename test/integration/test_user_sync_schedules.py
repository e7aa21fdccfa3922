"""User syncs run by the scheduler (a schedule, and the test hook of test_scheduler.py) and from
pg_cron, as list syncs do (docs/scheduler.md)."""

import pytest

from harness import Cluster, query, scalar
from test_scheduler import (BASE_CONF, SCHED_CONF, connect_when_up, install, make_due, sql, sync_row, unique,
                            wait_for, wait_for_finished_run, wait_for_scheduler)


def make_profiles(conn, table, rows):
    """A table of users (userId, email, plan) unique to this table: the emulator outlives clusters."""
    sql(conn, "CREATE TABLE %s (uid text, email text, plan text)" % table)
    sql(conn, "INSERT INTO %s SELECT %%s || '-u' || g, %%s || '.' || g || '@example.com', 'gold' "
              "FROM generate_series(1, %%s) g" % table, (table, table, rows))


def create_user_sync(conn, name, table, schedule="manual"):
    sql(conn, "SELECT iterable_audience.create_user_sync(%s, 'email', %s, email_column => 'email', "
              "user_id_column => 'uid', data_fields => '{\"plan\": \"plan\"}', schedule => %s)",
        (name, table, schedule))


def profile_plans(emulator, table, rows):
    plans = {}
    for g in range(1, rows + 1):
        users = emulator.call("GET", "/_emulator/users?api_key=test-key-email&email=%s.%d@example.com"
                              % (table, g))["users"]
        plans[g] = users[0]["dataFields"].get("plan") if users else None
    return plans


@pytest.fixture(scope="module")
def sched(emulator):
    c = Cluster(extra_conf=SCHED_CONF)
    conn = c.connect()
    install(conn, emulator)
    conn.close()
    yield c
    c.destroy()


def test_scheduled_user_sync_runs_with_trigger_schedule(sched, emulator):
    conn = connect_when_up(sched)
    try:
        wait_for_scheduler(conn)
        table = unique("usched")
        make_profiles(conn, table, 6)
        create_user_sync(conn, table, table, schedule="every 1 hour")
        assert sync_row(conn, table)["next_run_at"] is not None
        make_due(conn, table)
        run = wait_for_finished_run(conn, table)[0]
        assert run["trigger"] == "schedule" and run["status"] == "succeeded", run
        assert run["kind"] == "users" and run["updated"] == 6, run
        assert set(profile_plans(emulator, table, 6).values()) == {"gold"}
        # The next due time follows the schedule again; paused, it has none.
        assert sync_row(conn, table)["next_run_at"] > run["started_at"]
        sql(conn, "SELECT iterable_audience.pause_sync(%s)", (table,))
        assert sync_row(conn, table)["next_run_at"] is None
    finally:
        conn.close()


def test_pg_cron_job_runs_a_user_sync(emulator):
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
        table = unique("ucron")
        make_profiles(conn, table, 4)
        create_user_sync(conn, table, table)
        job = scalar(conn, "SELECT cron.schedule(%s, '* * * * *', format('SELECT iterable_audience.run_sync(%%L)', "
                           "%s::text))", (table, table))
        details = wait_for(lambda: query(conn, "SELECT status, return_message FROM cron.job_run_details "
                                               "WHERE jobid = %s AND status IN ('succeeded', 'failed')", (job,)),
                           timeout=150, interval=1, what="the pg_cron job to run")
        assert details[0]["status"] == "succeeded", details
        run = wait_for_finished_run(conn, table)[0]
        assert run["status"] == "succeeded" and run["kind"] == "users" and run["updated"] == 4, run
        assert set(profile_plans(emulator, table, 4).values()) == {"gold"}
        sql(conn, "SELECT cron.unschedule(%s)", (job,))
        conn.close()
    finally:
        c.destroy()
