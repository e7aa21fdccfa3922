"""Event syncs run by the scheduler (a schedule, made due as test_scheduler.py does) and from pg_cron,
as list and user syncs do (docs/scheduler.md)."""

import json

import pytest

from harness import Cluster, query, scalar
from test_scheduler import (BASE_CONF, SCHED_CONF, connect_when_up, install, make_due, sql, sync_row, unique,
                            wait_for, wait_for_finished_run, wait_for_scheduler)


def make_tracks(conn, table, rows):
    """A table of events whose userIds are unique to this table: the emulator outlives clusters."""
    sql(conn, "CREATE TABLE %s (id bigserial PRIMARY KEY, uid text, event text, ts timestamptz DEFAULT now())" % table)
    sql(conn, "INSERT INTO %s (uid, event) SELECT %%s || '-u' || g, 'Viewed' FROM generate_series(1, %%s) g" % table,
        (table, rows))


def create_event_sync(conn, name, table, schedule="manual"):
    sql(conn, "SELECT iterable_audience.create_event_sync(%s, 'hybrid', %s, 'id', "
              "fields => %s, schedule => %s)",
        (name, table, json.dumps({"eventName": "event", "userId": "uid", "createdAt": "ts"}), schedule))


def stored(emulator, table):
    events = emulator.call("GET", "/_emulator/events?api_key=test-key-hybrid")["events"]
    return sorted(e["userId"] for e in events if str(e.get("userId", "")).startswith(table + "-u"))


def install_with_hybrid(conn, emulator):
    install(conn, emulator)
    if not scalar(conn, "SELECT count(*) FROM iterable_audience.accounts WHERE account_name = 'hybrid'"):
        sql(conn, "SELECT iterable_audience.create_account('hybrid', 'test-key-hybrid', project_type => 'hybrid', "
                  "base_url => %s)", (emulator.url,))


@pytest.fixture(scope="module")
def sched(emulator):
    c = Cluster(extra_conf=SCHED_CONF)
    conn = c.connect()
    install_with_hybrid(conn, emulator)
    conn.close()
    yield c
    c.destroy()


def test_scheduled_event_sync_runs_with_trigger_schedule(sched, emulator):
    conn = connect_when_up(sched)
    try:
        wait_for_scheduler(conn)
        table = unique("esched")
        make_tracks(conn, table, 5)
        create_event_sync(conn, table, table, schedule="every 1 hour")
        assert sync_row(conn, table)["next_run_at"] is not None
        make_due(conn, table)
        run = wait_for_finished_run(conn, table)[0]
        assert run["trigger"] == "schedule" and run["status"] == "succeeded", run
        assert run["kind"] == "events" and run["tracked"] == 5, run
        assert stored(emulator, table) == sorted("%s-u%d" % (table, g) for g in range(1, 6))
        assert sync_row(conn, table)["next_run_at"] > run["started_at"]
    finally:
        conn.close()


def test_pg_cron_job_runs_an_event_sync(emulator):
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
        install_with_hybrid(conn, emulator)
        table = unique("ecron")
        make_tracks(conn, table, 3)
        create_event_sync(conn, table, table)
        job = scalar(conn, "SELECT cron.schedule(%s, '* * * * *', format('SELECT iterable_audience.run_sync(%%L)', "
                           "%s::text))", (table, table))
        details = wait_for(lambda: query(conn, "SELECT status, return_message FROM cron.job_run_details "
                                               "WHERE jobid = %s AND status IN ('succeeded', 'failed')", (job,)),
                           timeout=150, interval=1, what="the pg_cron job to run")
        assert details[0]["status"] == "succeeded", details
        run = wait_for_finished_run(conn, table)[0]
        assert run["status"] == "succeeded" and run["kind"] == "events" and run["tracked"] == 3, run
        assert stored(emulator, table) == sorted("%s-u%d" % (table, g) for g in range(1, 4))
        sql(conn, "SELECT cron.unschedule(%s)", (job,))
        conn.close()
    finally:
        c.destroy()
