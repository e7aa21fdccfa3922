"""Secrets and SQL injection: the API key appears in no log line (at debug1), no relation an ordinary
role can read, no pg_stat_activity entry of the extension; hostile names and sources cannot run SQL."""

import threading
import time

import psycopg2
import pytest

from harness import Cluster, query, scalar

KEY = "sekret-key-for-hybrid-0123456789"


@pytest.fixture
def debug_cluster(emulator):
    c = Cluster(extra_conf={"log_min_messages": "debug1", "log_error_verbosity": "verbose"})
    # The emulator only knows its own keys: register this one as another hybrid project.
    try:
        emulator.call("POST", "/_emulator/projects", {"api_key": KEY, "project_type": "hybrid"})
    except AssertionError as e:  # already there from an earlier run of this module
        assert "409" in str(e)
    yield c
    c.destroy()


def test_the_key_is_in_no_log_line_relation_or_activity(debug_cluster, emulator):
    admin = debug_cluster.connect()
    with admin.cursor() as cur:
        cur.execute("CREATE EXTENSION iterable_audience")
        # The statement itself would log the literal at debug1 ("parse", "bind"): keep it out of the log
        # the way SECURITY.md advises.
        cur.execute("SET log_min_messages = warning")
        cur.execute("SET log_statement = 'none'")
        cur.execute("SELECT iterable_audience.create_account('sec', %s, base_url => %s)", (KEY, emulator.url))
        cur.execute("RESET log_min_messages")
        cur.execute("CREATE ROLE reader LOGIN")
        cur.execute("GRANT USAGE ON SCHEMA iterable_audience, iterable_audience_snapshots TO reader")
        cur.execute("SELECT iterable_audience.grant_account_usage('sec', 'reader')")
        cur.execute("CREATE TABLE people (email text, uid text)")
        cur.execute("INSERT INTO people SELECT 'p' || g || '@example.com', 'p' || g FROM generate_series(1, 300) g")
        cur.execute("INSERT INTO people VALUES ('not-an-email', NULL)")
        cur.execute("GRANT SELECT ON people TO reader")
        cur.execute("SET iterable_audience.batch_size = 50")
        cur.execute("SET iterable_audience.retry_base_delay_ms = 10")
    reader = debug_cluster.connect(user="reader")
    with reader.cursor() as cur:
        cur.execute("SET iterable_audience.batch_size = 50")
        cur.execute("SELECT iterable_audience.create_sync('sec', 'sec', 'people', new_list_name => 'sec', "
                    "email_column => 'email', user_id_column => 'uid')")

    # Runs that succeed, fail per record and fail whole (Iterable errors echo nothing of the key).
    activity = []

    watcher = debug_cluster.connect()

    def watch():
        for _ in range(100):
            activity.extend(row["query"] or "" for row in query(watcher, "SELECT query FROM pg_stat_activity"))
            time.sleep(0.01)

    t = threading.Thread(target=watch)
    t.start()
    assert query(reader, "SELECT status FROM iterable_audience.run_sync('sec')")[0]["status"] == "succeeded_with_failures"
    t.join()
    emulator.set_faults({"rules": [{"kind": "error_500", "endpoint": "subscribe"}]})
    with admin.cursor() as cur:
        cur.execute("UPDATE people SET email = 'q' || email")  # updates of the same keys
    assert query(reader, "SELECT status FROM iterable_audience.run_sync('sec')")[0]["status"] == "succeeded_with_failures"
    emulator.clear_faults()
    with admin.cursor() as cur:
        cur.execute("SET log_min_messages = warning")
        cur.execute("SELECT iterable_audience.alter_account('sec', api_key => 'wrong-key-000000000000')")
        cur.execute("RESET log_min_messages")
    failed = query(reader, "SELECT * FROM iterable_audience.run_sync('sec')")[0]
    assert failed["status"] == "failed" and "BadApiKey" in failed["error"]
    with pytest.raises(psycopg2.Error) as err:
        query(reader, "SELECT * FROM iterable_audience.lists('sec')")
    assert KEY not in str(err.value)

    # No log line, no activity text.
    assert KEY not in debug_cluster.server_log()
    assert all(KEY not in q for q in activity)
    # No relation the ordinary role can read in the extension's schemas holds it.
    relations = query(reader, "SELECT format('%I.%I', n.nspname, c.relname) AS rel FROM pg_class c "
                              "JOIN pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE n.nspname IN ('iterable_audience', 'iterable_audience_snapshots') "
                              "AND c.relkind IN ('r', 'v', 'm', 'p') AND has_table_privilege(c.oid, 'SELECT')")
    assert len(relations) >= 5, relations  # accounts, account_grants, syncs, sync_runs, sync_logs, snapshots
    for rel in relations:
        leaked = scalar(reader, "SELECT count(*) FROM %s t WHERE t::text LIKE %%s" % rel["rel"], ("%" + KEY + "%",))
        assert leaked == 0, rel
    for secret_table in ("iterable_audience.account_secret", "iterable_audience.account"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            query(reader, "SELECT * FROM %s" % secret_table)
    reader.close()
    watcher.close()
    admin.close()


def test_hostile_names_and_sources_cannot_run_sql(db, emulator):
    with db.cursor() as cur:
        cur.execute('CREATE TABLE "odd""table" ("e""mail" text, "x); DROP TABLE canary; --" text)')
        cur.execute('INSERT INTO "odd""table" VALUES (\'odd1@example.com\', \'v\'), (\'odd2@example.com\', \'w\')')
        cur.execute("CREATE TABLE canary (x int)")
        name = 'x"; DROP TABLE canary; --'
        cur.execute("SELECT iterable_audience.create_sync(%s, 'hybrid', %s, new_list_name => %s, "
                    "email_column => %s, data_fields => %s)",
                    (name, '"odd""table"', "list'); DROP TABLE canary; --", 'e"mail',
                    '{"f\\"); DROP TABLE canary; --": "x); DROP TABLE canary; --"}'))
    run = query(db, "SELECT * FROM iterable_audience.run_sync(%s)", (name,))[0]
    assert run["status"] == "succeeded" and run["subscribed"] == 2, run
    snapshot = scalar(db, "SELECT format('iterable_audience_snapshots.%%I', snapshot_table) "
                          "FROM iterable_audience.syncs WHERE sync_name = %s", (name,))
    assert scalar(db, "SELECT count(*) FROM %s" % snapshot) == 2
    assert scalar(db, "SELECT count(*) FROM canary") == 0  # still there
    for source in ("SELECT 1 AS email; DROP TABLE canary", "people) x; DROP TABLE canary; SELECT (1",
                   "SELECT * FROM canary -- ", "WITH d AS (DELETE FROM canary RETURNING 1 AS email) SELECT * FROM d"):
        with pytest.raises(psycopg2.Error):
            with db.cursor() as cur:
                cur.execute("SELECT iterable_audience.create_sync('hostile', 'hybrid', %s, new_list_name => 'h', "
                            "email_column => 'email')", (source,))
    assert scalar(db, "SELECT to_regclass('canary') IS NOT NULL")
    with db.cursor() as cur:
        cur.execute("SELECT iterable_audience.drop_sync(%s)", (name,))
