"""Idle runs and continuous syncs (issue 18, README "Idle runs and continuous syncs").

An unchanged source is known to be unchanged without reading it: a statement-level trigger on each
table the source reads logs the writing transaction, and a run records the MVCC snapshot its read
started from. These tests check that an unchanged source's run reads and sends nothing, that every
kind of change (each DML form, a late commit, DDL, a disabled trigger, a new partition) makes the next
run read and send, and that a continuous sync runs by itself after a committed change. Nothing here
asserts a wall-clock duration: waits are polls with generous timeouts.
"""

import time

import psycopg2
import pytest

from harness import Cluster, query, scalar
from sync_helpers import list_id_of, members, request_counts, run_sync, sql, tag, wait_for

def is_idle(run):
    """An idle run: succeeded without reading its source (sync_runs.source_read false)."""
    if run["source_read"] is False:
        assert run["status"] == "succeeded" and run["error"] is None and run["failed"] == 0, run
        assert (run["planned_subscribes"], run["planned_unsubscribes"], run["api_requests"]) == (0, 0, 0), run
        return True
    assert run["source_read"] is True or run["status"] != "succeeded", run
    return False


def make_table(db, table="people", rows=50):
    t = tag(db)
    sql(db, "CREATE TABLE %s (id integer PRIMARY KEY, email text, score integer)" % table)
    sql(db, "INSERT INTO %s SELECT g, %%s || '.%s.' || g || '@example.com', g FROM generate_series(1, %%s) g"
        % (table, table), (t, rows))
    return t


def create_sync(db, name, source, **extra):
    args = dict({"email_column": "email"}, **extra)
    named = "".join(", %s => %%(%s)s" % (k, k) for k in args)
    sql(db, "SELECT iterable_audience.create_sync(%%(name)s, 'email', %%(source)s, new_list_name => %%(name)s%s)"
        % named, dict(args, name=name, source=source))


def emails(emulator, db, name):
    return {m[0] for m in members(emulator, list_id_of(db, name))}


def wait_for_worker_exit(db, name):
    """The run's worker has exited (its table statistics are flushed at exit)."""
    wait_for(lambda: scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            ("iterable_audience sync " + name,)) == 0, timeout=60, what="the run's worker to exit")


def table_reads(db, table):
    sql(db, "SELECT pg_stat_clear_snapshot()")
    return scalar(db, "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                      "WHERE relid = %s::regclass", (table,))


def test_unchanged_table_source_is_not_read_and_nothing_is_sent(db, emulator):
    make_table(db)
    create_sync(db, "idle_sync", "people")
    first = run_sync(db, "idle_sync")
    assert first["status"] == "succeeded" and first["subscribed"] == 50, first
    wait_for_worker_exit(db, "idle_sync")
    reads_after_first = table_reads(db, "people")
    assert reads_after_first > 0  # the first run read the table: the counter works
    before = request_counts(emulator)

    second = run_sync(db, "idle_sync")

    assert is_idle(second), second
    assert second["subscribed"] == 0 and second["unsubscribed"] == 0 and second["api_requests"] == 0
    assert request_counts(emulator) - before == {}  # not even the preflight
    wait_for_worker_exit(db, "idle_sync")
    assert table_reads(db, "people") == reads_after_first  # the source was not read
    # force => true always reads
    forced = run_sync(db, "idle_sync", force=True)
    assert forced["status"] == "succeeded" and not is_idle(forced), forced
    assert forced["planned_subscribes"] == 0


def test_each_dml_form_makes_the_next_run_send_it(db, emulator):
    t = make_table(db, rows=10)
    create_sync(db, "dml_sync", "people", max_removal_fraction=1.0)
    run_sync(db, "dml_sync")
    assert is_idle(run_sync(db, "dml_sync"))

    sql(db, "INSERT INTO people VALUES (100, %s || '.new@example.com', 1)", (t,))
    run = run_sync(db, "dml_sync")
    assert run["subscribed"] == 1 and not is_idle(run), run
    assert is_idle(run_sync(db, "dml_sync"))

    sql(db, "UPDATE people SET email = %s || '.changed@example.com' WHERE id = 1", (t,))
    run = run_sync(db, "dml_sync")
    assert run["subscribed"] == 1 and run["unsubscribed"] == 1, run
    assert is_idle(run_sync(db, "dml_sync"))

    sql(db, "DELETE FROM people WHERE id = 2")
    run = run_sync(db, "dml_sync")
    assert run["unsubscribed"] == 1, run
    assert is_idle(run_sync(db, "dml_sync"))

    sql(db, "TRUNCATE people")
    run = run_sync(db, "dml_sync")
    assert run["status"] == "succeeded" and run["unsubscribed"] == 10, run
    assert emails(emulator, db, "dml_sync") == set()
    assert is_idle(run_sync(db, "dml_sync"))

    # COPY is a write too
    with db.cursor() as cur:
        import io
        cur.copy_expert("COPY people FROM STDIN", io.StringIO("7\t%s.copied@example.com\t7\n" % t))
    run = run_sync(db, "dml_sync")
    assert run["subscribed"] == 1, run


def test_late_commit_is_seen_by_the_next_run(db, cluster, emulator):
    """A transaction that wrote before a run and commits after it: its id is older than the run's
    snapshot, so "newest id seen" would miss it; the snapshot's in-progress list does not."""
    t = make_table(db, rows=5)
    create_sync(db, "late_sync", "people")
    run_sync(db, "late_sync")
    writer = cluster.connect(dbname=scalar(db, "SELECT current_database()"), autocommit=False)
    other = cluster.connect(dbname=scalar(db, "SELECT current_database()"))
    try:
        with writer.cursor() as cur:
            cur.execute("INSERT INTO people VALUES (50, %s || '.late@example.com', 50)", (t,))
        # A run while the writer is open: idle (its log row is not committed yet).
        assert is_idle(run_sync(db, "late_sync"))
        # Another change commits: a full run, whose snapshot has the writer in progress.
        sql(other, "INSERT INTO people VALUES (51, %s || '.other@example.com', 51)", (t,))
        run = run_sync(db, "late_sync")
        assert run["subscribed"] == 1 and not is_idle(run), run
        writer.commit()
        run = run_sync(db, "late_sync")
        assert run["subscribed"] == 1 and not is_idle(run), run
        assert "%s.late@example.com" % t in emails(emulator, db, "late_sync")
        assert is_idle(run_sync(db, "late_sync"))
    finally:
        writer.close()
        other.close()


def test_view_over_tables(db, emulator):
    t = make_table(db, rows=5)
    sql(db, "CREATE TABLE plans (id integer PRIMARY KEY, active boolean)")
    sql(db, "INSERT INTO plans SELECT g, true FROM generate_series(1, 5) g")
    sql(db, "CREATE VIEW active_people AS SELECT p.email FROM people p JOIN plans USING (id) WHERE plans.active")
    sql(db, "CREATE VIEW active_people_outer AS SELECT * FROM active_people")  # a view over a view
    create_sync(db, "view_sync", "active_people_outer", max_removal_fraction=1.0)
    assert run_sync(db, "view_sync")["subscribed"] == 5
    assert is_idle(run_sync(db, "view_sync"))
    sql(db, "UPDATE plans SET active = false WHERE id = 3")  # the second table of the view
    run = run_sync(db, "view_sync")
    assert run["unsubscribed"] == 1, run
    assert is_idle(run_sync(db, "view_sync"))
    # The view redefined: read again.
    sql(db, "CREATE OR REPLACE VIEW active_people AS SELECT p.email FROM people p JOIN plans USING (id)")
    run = run_sync(db, "view_sync")
    assert not is_idle(run) and run["subscribed"] == 1, run
    assert emails(emulator, db, "view_sync") == {"%s.people.%d@example.com" % (t, g) for g in range(1, 6)}


def test_view_that_is_not_deterministic_always_reads(db):
    make_table(db, rows=3)
    sql(db, "CREATE VIEW recent AS SELECT email FROM people WHERE now() > '2000-01-01'")
    create_sync(db, "now_sync", "recent")
    run_sync(db, "now_sync")
    run = run_sync(db, "now_sync")
    assert run["status"] == "succeeded" and not is_idle(run), run
    assert scalar(db, "SELECT read_tracked FROM iterable_audience.source_watch") is False


def test_query_source(db):
    t = make_table(db, rows=4)
    create_sync(db, "query_sync", "SELECT email FROM people WHERE score > 1")
    assert run_sync(db, "query_sync")["subscribed"] == 3
    assert is_idle(run_sync(db, "query_sync"))
    sql(db, "INSERT INTO people VALUES (9, %s || '.q@example.com', 9)", (t,))
    run = run_sync(db, "query_sync")
    assert run["subscribed"] == 1 and not is_idle(run), run
    assert is_idle(run_sync(db, "query_sync"))
    # The probe view used to resolve the query is gone.
    assert scalar(db, "SELECT count(*) FROM pg_class WHERE relname = 'iterable_audience_source_probe'") == 0


def test_ddl_and_disabled_trigger_are_changes(db):
    t = make_table(db, rows=4)
    create_sync(db, "ddl_sync", "people", data_fields='{"score": "score"}')
    run_sync(db, "ddl_sync")
    assert is_idle(run_sync(db, "ddl_sync"))
    sql(db, "ALTER TABLE people ALTER COLUMN score TYPE bigint")
    run = run_sync(db, "ddl_sync")
    assert run["status"] == "succeeded" and not is_idle(run), run
    assert is_idle(run_sync(db, "ddl_sync"))
    # Writes while the trigger is disabled are not logged: the trigger's change is.
    sql(db, "ALTER TABLE people DISABLE TRIGGER ALL")
    sql(db, "INSERT INTO people VALUES (20, %s || '.unlogged@example.com', 20)", (t,))
    sql(db, "ALTER TABLE people ENABLE TRIGGER ALL")
    run = run_sync(db, "ddl_sync")
    assert run["subscribed"] == 1 and not is_idle(run), run
    # Dropped and recreated under the same name: read again.
    sql(db, "DROP TABLE people")
    make_table(db, rows=4)
    run = run_sync(db, "ddl_sync")
    assert run["status"] == "succeeded" and not is_idle(run), run
    assert is_idle(run_sync(db, "ddl_sync"))


def test_partitions(db):
    t = tag(db)
    sql(db, "CREATE TABLE parts (id integer, email text) PARTITION BY RANGE (id)")
    sql(db, "CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (100)")
    sql(db, "INSERT INTO parts SELECT g, %s || '.part.' || g || '@example.com' FROM generate_series(1, 5) g", (t,))
    create_sync(db, "part_sync", "parts")
    assert run_sync(db, "part_sync")["subscribed"] == 5
    assert is_idle(run_sync(db, "part_sync"))
    sql(db, "INSERT INTO parts_1 VALUES (6, %s || '.direct@example.com')", (t,))  # into the partition itself
    assert run_sync(db, "part_sync")["subscribed"] == 1
    assert is_idle(run_sync(db, "part_sync"))
    sql(db, "CREATE TABLE parts_2 (id integer, email text)")
    sql(db, "INSERT INTO parts_2 VALUES (150, %s || '.attached@example.com')", (t,))
    sql(db, "ALTER TABLE parts ATTACH PARTITION parts_2 FOR VALUES FROM (100) TO (200)")
    run = run_sync(db, "part_sync")
    assert run["subscribed"] == 1 and not is_idle(run), run
    assert is_idle(run_sync(db, "part_sync"))


def test_failures_to_retry_and_alter_prevent_idle(db, emulator):
    make_table(db, rows=3)
    create_sync(db, "retry_sync", "people")
    emulator.set_faults({"rules": [{"kind": "error_500", "endpoint": "subscribe"}]})
    first = run_sync(db, "retry_sync")
    emulator.clear_faults()
    assert first["failed"] == 3, first
    second = run_sync(db, "retry_sync")
    assert not is_idle(second) and second["subscribed"] == 3, second
    assert is_idle(run_sync(db, "retry_sync"))
    sql(db, "SELECT iterable_audience.alter_sync('retry_sync', data_fields => '{\"score\": \"score\"}')")
    run = run_sync(db, "retry_sync")
    assert not is_idle(run) and run["subscribed"] == 3, run
    sql(db, "SELECT iterable_audience.reset_sync('retry_sync')")
    assert not is_idle(run_sync(db, "retry_sync"))


def test_change_log_is_pruned_and_triggers_dropped_with_the_sync(db):
    t = make_table(db, rows=3)
    create_sync(db, "prune_sync", "people")
    run_sync(db, "prune_sync")
    for i in range(5):
        sql(db, "INSERT INTO people VALUES (%s, %s || '.p' || %s || '@example.com', 1)", (100 + i, t, i))
    assert scalar(db, "SELECT count(*) FROM iterable_audience.source_change") == 5
    run_sync(db, "prune_sync")
    assert scalar(db, "SELECT count(*) FROM iterable_audience.source_change") == 0
    assert scalar(db, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'people'::regclass "
                      "AND tgname = 'iterable_audience_source_change'") == 1
    sql(db, "SELECT iterable_audience.drop_sync('prune_sync')")
    assert scalar(db, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'people'::regclass "
                      "AND tgname = 'iterable_audience_source_change'") == 0


def test_writer_without_rights_on_the_log_still_writes(db, cluster):
    t = make_table(db, rows=2)
    create_sync(db, "rights_sync", "people")
    run_sync(db, "rights_sync")
    sql(db, "DROP ROLE IF EXISTS ia_cont_writer")
    sql(db, "CREATE ROLE ia_cont_writer LOGIN")
    sql(db, "GRANT INSERT ON people TO ia_cont_writer")
    try:
        w = cluster.connect(dbname=scalar(db, "SELECT current_database()"), user="ia_cont_writer")
        sql(w, "INSERT INTO people VALUES (30, %s || '.w@example.com', 1)", (t,))
        w.close()
        assert run_sync(db, "rights_sync")["subscribed"] == 1
    finally:
        sql(db, "DROP OWNED BY ia_cont_writer")
        sql(db, "DROP ROLE ia_cont_writer")


# --------------------------------------------------------------------------------------------------
# continuous schedules (a cluster whose scheduler serves the postgres database)
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cont(emulator):
    c = Cluster(extra_conf={"iterable_audience.database_name": "'postgres'",
                            "iterable_audience.continuous_latency": "2",
                            "iterable_audience.retry_base_delay_ms": "10"})
    conn = c.connect()
    sql(conn, "CREATE EXTENSION iterable_audience")
    sql(conn, "SELECT iterable_audience.create_account('email', 'test-key-email', project_type => 'email', "
              "base_url => %s)", (emulator.url,))
    yield conn
    conn.close()
    c.destroy()


def drop_continuous(conn, name):
    """Paused first: a continuous sync may start a run at any pass."""
    sql(conn, "SELECT iterable_audience.pause_sync(%s)", (name,))
    wait_for(lambda: not query(conn, "SELECT 1 FROM iterable_audience.sync_runs WHERE sync_name = %s "
                                     "AND status = 'running'", (name,)), timeout=60, what="no run going")
    # A worker the scheduler started just before the pause holds the sync's lock before its 'running'
    # row commits: the drop waits for that run as an operator would (it sees the pause and exits).
    deadline = time.monotonic() + 60
    while True:
        try:
            sql(conn, "SELECT iterable_audience.drop_sync(%s)", (name,))
            return
        except psycopg2.errors.LockNotAvailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def finished_runs(conn, name):
    return query(conn, "SELECT * FROM iterable_audience.sync_runs WHERE sync_name = %s AND status <> 'running' "
                       "ORDER BY run_id", (name,))


def test_continuous_sync_picks_up_a_committed_change_and_pause_stops_it(cont, emulator):
    t = make_table(cont, table="cont_people", rows=3)
    create_sync(cont, "cont_sync", "cont_people", schedule="continuous")
    assert scalar(cont, "SELECT next_run_at FROM iterable_audience.sync WHERE sync_name = 'cont_sync'") is None
    wait_for(lambda: emails(emulator, cont, "cont_sync") == {"%s.cont_people.%d@example.com" % (t, g)
                                                             for g in (1, 2, 3)},
             timeout=90, what="the first continuous run")
    first = finished_runs(cont, "cont_sync")[0]
    assert first["trigger"] == "schedule" and first["status"] == "succeeded", first

    sql(cont, "INSERT INTO cont_people VALUES (10, %s || '.cont.new@example.com', 1)", (t,))
    wait_for(lambda: "%s.cont.new@example.com" % t in emails(emulator, cont, "cont_sync"), timeout=90,
             what="the committed change to reach the list")
    # Nothing changes: no run reads the source (idle runs at most, after the hour's safety net).
    wait_for(lambda: not query(cont, "SELECT 1 FROM iterable_audience.sync_runs WHERE sync_name = 'cont_sync' "
                                     "AND status = 'running'"), timeout=60, what="the run that sent it to end")
    runs_now = len(finished_runs(cont, "cont_sync"))
    woke = scalar(cont, "SELECT last_wake_at FROM iterable_audience.scheduler_status()")
    wait_for(lambda: scalar(cont, "SELECT count(*) FROM iterable_audience.scheduler_status() "
                                  "WHERE last_wake_at > %s", (woke,)) == 1, timeout=60, what="a scheduler pass")
    later = finished_runs(cont, "cont_sync")
    assert all(is_idle(r) for r in later[runs_now:]), later[runs_now:]

    sql(cont, "SELECT iterable_audience.pause_sync('cont_sync')")
    wait_for(lambda: not query(cont, "SELECT 1 FROM iterable_audience.sync_runs WHERE sync_name = 'cont_sync' "
                                     "AND status = 'running'"), timeout=60, what="no run going")
    paused_runs = len(finished_runs(cont, "cont_sync"))
    sql(cont, "INSERT INTO cont_people VALUES (11, %s || '.cont.paused@example.com', 1)", (t,))
    for _ in range(3):  # three passes of the scheduler after the change (woken: nothing else is polled)
        woke = scalar(cont, "SELECT last_wake_at FROM iterable_audience.scheduler_status()")
        sql(cont, "SELECT iterable_audience.wake_scheduler()")
        wait_for(lambda: scalar(cont, "SELECT count(*) FROM iterable_audience.scheduler_status() "
                                      "WHERE last_wake_at > %s", (woke,)) == 1, timeout=60, what="a scheduler pass")
    assert len(finished_runs(cont, "cont_sync")) == paused_runs
    assert "%s.cont.paused@example.com" % t not in emails(emulator, cont, "cont_sync")

    sql(cont, "SELECT iterable_audience.resume_sync('cont_sync')")
    wait_for(lambda: "%s.cont.paused@example.com" % t in emails(emulator, cont, "cont_sync"), timeout=90,
             what="the change made while paused to reach the list after resume")
    drop_continuous(cont, "cont_sync")


def test_schedule_continuous_is_accepted_by_alter_sync_and_shown_healthy(cont):
    make_table(cont, table="cont_alter", rows=1)
    create_sync(cont, "cont_alter_sync", "cont_alter")
    sql(cont, "SELECT iterable_audience.alter_sync('cont_alter_sync', schedule => 'CONTINUOUS')")
    assert scalar(cont, "SELECT schedule FROM iterable_audience.sync WHERE sync_name = 'cont_alter_sync'") == \
        "continuous"
    assert scalar(cont, "SELECT overdue FROM iterable_audience.sync_health WHERE sync_name = 'cont_alter_sync'") \
        is False
    wait_for(lambda: finished_runs(cont, "cont_alter_sync"), timeout=90, what="a run of the altered sync")
    drop_continuous(cont, "cont_alter_sync")
