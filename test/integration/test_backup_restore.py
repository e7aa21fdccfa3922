"""Backups (issue 17, README "Backups"): pg_dump -Fc of a database with the extension, pg_restore into
a new database of the same cluster, and the restored database behaving as the original: its accounts,
syncs, runs, logs and snapshot tables are there, ids go on, an unchanged audience sends nothing, a run
that was sending when the dump was taken is settled as after a crash, DROP EXTENSION still removes
everything, and the scheduler picks the restored syncs up.

The tests are parametrized by sync kind (SYNC_KINDS): a kind knows how to make its source and sync,
change its audience, and tell what Iterable should hold. User syncs and event syncs, with their own
tables, are added there as they come."""

import os
import subprocess

import psycopg2
import psycopg2.errors
import pytest

import invariants
from harness import Cluster, as_pg_user, query, scalar
from sync_helpers import BackgroundRun, list_id_of, members, run_sync, session_settings, sql, wait_for

SCHED_CONF = {
    "iterable_audience.retry_base_delay_ms": "10",
    "iterable_audience.retry_max_delay_ms": "200",
    "iterable_audience.database_name": "'postgres'",
}
OWNER = "bk_owner"  # a non-superuser owning the syncs: its grants must come back too


@pytest.fixture(scope="module")
def bc(emulator):
    """A cluster of this module's own; its scheduler serves 'postgres' (the last test restores there)."""
    c = Cluster(extra_conf=SCHED_CONF)
    admin = c.connect()
    sql(admin, "CREATE ROLE %s LOGIN" % OWNER)
    admin.close()
    yield c
    c.destroy()


# --------------------------------------------------------------------------------------------------
# sync kinds
# --------------------------------------------------------------------------------------------------

class ListSyncKind:
    """A list sync (mirror mode) of an email project: the list's members are the audience's emails.

    A kind has: `name` (the test id), `sync` (its sync's name), `endpoints` (the emulator endpoints its
    runs send to, slowed by the mid-run test), and the methods below: create (source and sync, owned by
    OWNER), churn (change the audience), another (a second sync of the kind, for the id check),
    expected (what Iterable should hold) and remote (what the emulator holds). A kind with tables of its
    own adds their queries to STATE_QUERIES."""
    name = "list"
    sync = "bk_list"
    endpoints = ["subscribe", "unsubscribe"]

    def create(self, conn, prefix, rows, schedule="manual"):
        sql(conn, "CREATE TABLE bk_audience (email text, plan text)")
        sql(conn, "INSERT INTO bk_audience SELECT %s || '.' || g || '@example.com', 'p' || g %% 3 "
                  "FROM generate_series(1, %s) g", (prefix, rows))
        sql(conn, "GRANT SELECT ON bk_audience TO %s" % OWNER)
        sql(conn, "SET ROLE %s" % OWNER)
        sql(conn, "SELECT iterable_audience.create_sync(%s, 'email', 'bk_audience', new_list_name => %s, "
                  "email_column => 'email', data_fields => '{\"plan\": \"plan\"}', schedule => %s)",
            (self.sync, prefix + "-list", schedule))
        sql(conn, "RESET ROLE")

    def churn(self, conn, prefix, leave, join, step):
        """`leave` members leave the audience, `join` new ones come, one in ten changes its plan."""
        sql(conn, "DELETE FROM bk_audience WHERE email IN (SELECT email FROM bk_audience ORDER BY email LIMIT %s)",
            (leave,))
        sql(conn, "INSERT INTO bk_audience SELECT %s || '.s' || %s || '-' || g || '@example.com', 'new' "
                  "FROM generate_series(1, %s) g", (prefix, step, join))
        sql(conn, "UPDATE bk_audience SET plan = 'changed' || %s WHERE ctid IN "
                  "(SELECT ctid FROM bk_audience ORDER BY email DESC LIMIT 10)", (step,))

    def another(self, conn, name):
        sql(conn, "SELECT iterable_audience.create_sync(%s, 'email', 'bk_audience', list_id => %s, "
                  "email_column => 'email')", (name, list_id_of(conn, self.sync)))

    def expected(self, conn):
        return {(r["email"], None) for r in query(conn, "SELECT email FROM bk_audience")}

    def remote(self, conn, emulator):
        return members(emulator, list_id_of(conn, self.sync))

    def planned(self, run):
        return run["planned_subscribes"] + run["planned_unsubscribes"]

    def sent_every_operation(self, run):
        return run["subscribed"] > 0 and run["unsubscribed"] > 0

    def check_invariants(self, conn, emulator):
        invariants.check_invariants(conn, emulator, self.sync)


class UserSyncKind(ListSyncKind):
    """A user sync of an email project: each row's plan follows into its profile. A row that leaves the
    source sends nothing (its profile stays); one that joins or changes is sent."""
    name = "users"
    sync = "bk_users"
    endpoints = ["bulk_update_users"]

    def create(self, conn, prefix, rows, schedule="manual"):
        sql(conn, "CREATE TABLE bk_audience (email text, plan text)")
        sql(conn, "INSERT INTO bk_audience SELECT %s || '.' || g || '@example.com', 'p' || g %% 3 "
                  "FROM generate_series(1, %s) g", (prefix, rows))
        sql(conn, "GRANT SELECT ON bk_audience TO %s" % OWNER)
        sql(conn, "SET ROLE %s" % OWNER)
        sql(conn, "SELECT iterable_audience.create_user_sync(%s, 'email', 'bk_audience', email_column => 'email', "
                  "data_fields => '{\"plan\": \"plan\"}', schedule => %s)", (self.sync, schedule))
        sql(conn, "RESET ROLE")

    def another(self, conn, name):
        sql(conn, "SELECT iterable_audience.create_user_sync(%s, 'email', 'bk_audience', email_column => 'email')",
            (name,))

    def expected(self, conn):
        return {(r["email"], r["plan"]) for r in query(conn, "SELECT email, plan FROM bk_audience")}

    def remote(self, conn, emulator):
        """The profiles of the source's users as Iterable has them."""
        emails = {r["email"] for r in query(conn, "SELECT email FROM bk_audience")}
        users = emulator.call("GET", "/_emulator/users?api_key=test-key-email")["users"]
        return {(u["email"], (u.get("dataFields") or {}).get("plan")) for u in users if u["email"] in emails}

    def planned(self, run):
        return run["planned_updates"]

    def sent_every_operation(self, run):
        return run["updated"] > 0

    def check_invariants(self, conn, emulator):
        pass  # the remote profiles equal the source (checked by each test); no list to compare


SYNC_KINDS = [ListSyncKind(), UserSyncKind()]


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------

def connect(cluster, dbname):
    conn = cluster.connect(dbname=dbname)
    session_settings(conn)
    return conn


def fresh_source(cluster, emulator, name):
    admin = cluster.connect()
    sql(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
    sql(admin, "CREATE DATABASE %s" % name)
    admin.close()
    conn = connect(cluster, name)
    sql(conn, "CREATE EXTENSION iterable_audience")
    sql(conn, "SELECT iterable_audience.create_account('email', 'test-key-email', project_type => 'email', "
              "base_url => %s)", (emulator.url,))
    let_owner_use(conn)
    return conn


def let_owner_use(conn):
    sql(conn, "GRANT USAGE ON SCHEMA iterable_audience, iterable_audience_snapshots TO %s" % OWNER)
    sql(conn, "SELECT iterable_audience.grant_account_usage('email', %s)", (OWNER,))


def pg_tool(cluster, tool, *args):
    """Runs pg_dump or pg_restore as the postgres OS user against the cluster, as a superuser."""
    return subprocess.run(as_pg_user([os.path.join(cluster.bindir, tool), "-h", cluster.dir, "-p", str(cluster.port),
                                      "-U", "postgres"] + list(args)), capture_output=True, text=True)


def dump(cluster, dbname):
    path = os.path.join(cluster.dir, dbname + ".dump")
    done = pg_tool(cluster, "pg_dump", "-Fc", "-f", path, dbname)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return path


def restore(cluster, path, dbname, *options, create=True):
    if create:
        admin = cluster.connect()
        sql(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % dbname)
        sql(admin, "CREATE DATABASE %s" % dbname)
        admin.close()
    done = pg_tool(cluster, "pg_restore", "--exit-on-error", "-d", dbname, *options, path)
    assert done.returncode == 0 and done.stderr == "", done.stderr  # no error, no warning
    return connect(cluster, dbname)


# What a user sees of the extension's state, and the rows behind it: (name, query in a stable order).
# Tables that other sync kinds add go here too.
STATE_QUERIES = [
    ("accounts", "SELECT * FROM iterable_audience.accounts ORDER BY account_name"),
    ("account", "SELECT * FROM iterable_audience.account ORDER BY account_id"),
    ("secrets", "SELECT * FROM iterable_audience.account_secret ORDER BY account_id"),
    ("grants", "SELECT account_name, role_name::text, granted_at FROM iterable_audience.account_grants "
               "ORDER BY 1, 2"),
    ("syncs", "SELECT * FROM iterable_audience.syncs ORDER BY sync_id"),
    ("sync", "SELECT * FROM iterable_audience.sync ORDER BY sync_id"),
    ("runs", "SELECT * FROM iterable_audience.sync_runs ORDER BY run_id"),
    ("logs", "SELECT * FROM iterable_audience.sync_logs ORDER BY run_id, record_key, action"),
    ("batches", "SELECT * FROM iterable_audience.sync_batch ORDER BY run_id, batch_no"),
    ("failures", "SELECT * FROM iterable_audience.record_failure ORDER BY sync_id, record_key"),
    ("snapshots", "SELECT * FROM iterable_audience.snapshot ORDER BY sync_id, run_id"),
    # Event syncs (test_event_sync.py restores one).
    ("event_state", "SELECT * FROM iterable_audience.event_sync_state ORDER BY sync_id"),
    ("event_sent", "SELECT * FROM iterable_audience.event_sync_sent ORDER BY sync_id, row_key"),
]


def state(conn):
    """STATE_QUERIES' rows, and those of every registered snapshot table."""
    out = {}
    for name, text in STATE_QUERIES:
        out[name] = [dict(r) for r in query(conn, text)]
    for r in out["snapshots"]:
        out["table " + r["table_name"]] = [dict(row) for row in query(
            conn, 'SELECT * FROM iterable_audience_snapshots."%s" ORDER BY record_key' % r["table_name"])]
    return out


def snapshot_tables(conn):
    """{table name: how it depends on the extension ('x': tied, 'e': member, None: not at all)}."""
    return {r["relname"]: r["deptype"] for r in query(
        conn, "SELECT c.relname, d.deptype FROM pg_class c "
              "LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid "
              "AND d.refclassid = 'pg_extension'::regclass "
              "WHERE c.relnamespace = 'iterable_audience_snapshots'::regnamespace AND c.relkind = 'r'")}


def last_request_seq(emulator):
    latest = emulator.requests(limit=1)
    return latest[-1]["seq"] if latest else 0


def requests_since(emulator, seq):
    return [r for r in emulator.requests(limit=1000) if r["seq"] > seq]


def leftovers(conn):
    """Relations in the extension's schemas, and the snapshot schema itself."""
    return scalar(conn, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname LIKE 'iterable_audience%%'") + scalar(
        conn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'iterable_audience_snapshots'")


# --------------------------------------------------------------------------------------------------
# a database whose syncs have run
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", SYNC_KINDS, ids=lambda k: k.name)
def test_restored_database_has_everything_and_sends_nothing(bc, emulator, kind):
    prefix = "bk1%s%d" % (kind.name, os.getpid())
    src = fresh_source(bc, emulator, "bk_src1")
    kind.create(src, prefix, rows=120)
    assert run_sync(src, kind.sync)["status"] == "succeeded"
    kind.churn(src, prefix, leave=15, join=25, step=1)
    assert run_sync(src, kind.sync)["status"] == "succeeded"
    sql(src, "SELECT iterable_audience.alter_sync(%s, snapshot_retention => 2, sync_log_retention_days => 7)",
        (kind.sync,))
    kind.churn(src, prefix, leave=5, join=5, step=2)
    last = run_sync(src, kind.sync)
    assert last["status"] == "succeeded" and kind.sent_every_operation(last), last
    assert kind.remote(src, emulator) == kind.expected(src)
    before = state(src)
    assert len(before["runs"]) == 3 and len(before["snapshots"]) == 2 and before["logs"] and before["batches"]
    assert before["accounts"] and before["secrets"] and before["grants"] and before["syncs"]
    assert set(snapshot_tables(src).values()) == {"x"}  # tied to the extension, not members

    path = dump(bc, "bk_src1")
    dst = restore(bc, path, "bk_dst1")
    try:
        # Accounts (with their keys), grants, syncs, runs, logs, the ledger, snapshots: all there, equal.
        after = state(dst)
        assert after.keys() == before.keys()
        for part in before:
            assert after[part] == before[part], part
        # The snapshot tables are tied to the extension again, and their grant to the owner is back.
        assert snapshot_tables(dst) == {r["table_name"]: "x" for r in before["snapshots"]}
        for r in before["snapshots"]:
            assert scalar(dst, "SELECT has_table_privilege(%s, %s, 'SELECT')",
                          (OWNER, 'iterable_audience_snapshots."%s"' % r["table_name"]))
        assert scalar(dst, "SELECT iterable_audience.test_account('email')") == "ok"

        # The next run of the unchanged audience plans nothing and sends nothing, not even a preflight.
        seq = last_request_seq(emulator)
        owner = connect(bc, "bk_dst1")
        sql(owner, "SET ROLE %s" % OWNER)
        again = run_sync(owner, kind.sync)
        owner.close()
        assert again["status"] == "succeeded", again
        assert (kind.planned(again), again["api_requests"]) == (0, 0), again
        assert requests_since(emulator, seq) == []
        assert kind.remote(dst, emulator) == kind.expected(dst)

        # Ids go on from the restored ones.
        assert again["run_id"] > max(r["run_id"] for r in before["runs"])
        kind.another(dst, "bk_new")
        assert scalar(dst, "SELECT sync_id FROM iterable_audience.sync WHERE sync_name = 'bk_new'") > max(
            r["sync_id"] for r in before["sync"])
        sql(dst, "SELECT iterable_audience.create_account('email2', 'test-key-email', project_type => 'email', "
                 "base_url => %s)", (emulator.url,))
        assert scalar(dst, "SELECT account_id FROM iterable_audience.account WHERE account_name = 'email2'") > max(
            r["account_id"] for r in before["account"])
        kind.check_invariants(dst, emulator)

        # DROP EXTENSION, without CASCADE, still takes the restored snapshot tables along.
        sql(dst, "DROP EXTENSION iterable_audience")
        assert leftovers(dst) == 0
    finally:
        dst.close()
        src.close()


# --------------------------------------------------------------------------------------------------
# a dump taken while a run was sending
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", SYNC_KINDS, ids=lambda k: k.name)
def test_dump_taken_during_a_run_converges_after_restore(bc, emulator, kind):
    prefix = "bk2%s%d" % (kind.name, os.getpid())
    src = fresh_source(bc, emulator, "bk_src2")
    kind.create(src, prefix, rows=100)
    assert run_sync(src, kind.sync)["status"] == "succeeded"
    kind.churn(src, prefix, leave=40, join=100, step=1)
    emulator.set_faults({"rules": [{"kind": "latency", "endpoint": kind.endpoints, "ms": 250}]})
    bg = BackgroundRun(bc, "bk_src2", kind.sync, batch_size=5, max_requests_in_flight=1)
    dst = None
    try:
        run_id = wait_for(lambda: scalar(src, "SELECT max(run_id) FROM iterable_audience.sync_runs "
                                              "WHERE status = 'running'"), what="the run to start")
        wait_for(lambda: scalar(src, "SELECT count(*) FROM iterable_audience.sync_batch WHERE run_id = %s "
                                     "AND answered_at IS NOT NULL", (run_id,)) >= 3,
                 timeout=60, what="a few answered batches")
        path = dump(bc, "bk_src2")  # pg_dump's own connection, while the run sends
        # The source server is lost: its run ends there and then, with requests in flight.
        sql(src, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE backend_type = 'iterable_audience sync' AND datname = 'bk_src2'")
        assert bg.join(60)
    finally:
        bg.close()
        emulator.clear_faults()
    try:
        dst = restore(bc, path, "bk_dst2")
        dumped = query(dst, "SELECT * FROM iterable_audience.sync_runs WHERE run_id = %s", (run_id,))[0]
        assert dumped["status"] == "running" and not dumped["settled"], dumped  # the dump was taken mid-run
        answered = scalar(dst, "SELECT count(*) FROM iterable_audience.sync_batch WHERE run_id = %s "
                               "AND answered_at IS NOT NULL", (run_id,))
        total = kind.planned(dumped)
        assert 3 <= answered and answered * 5 < total  # some batches answered, not all

        nxt = run_sync(dst, kind.sync)
        assert nxt["status"] == "succeeded", nxt
        # The run of the dump was settled as after a crash: failed, with its snapshot built from its ledger.
        settled = query(dst, "SELECT * FROM iterable_audience.sync_runs WHERE run_id = %s", (run_id,))[0]
        assert settled["status"] == "failed" and settled["settled"] and settled["snapshot_table"], settled
        assert "interrupted" in settled["error"]
        # Nothing lost: Iterable's list is the audience, and the snapshot is the list.
        assert kind.remote(dst, emulator) == kind.expected(dst)
        kind.check_invariants(dst, emulator)
        quiet = run_sync(dst, kind.sync)
        assert (kind.planned(quiet), quiet["api_requests"]) == (0, 0), quiet
    finally:
        if dst is not None:
            dst.close()
        src.close()


# --------------------------------------------------------------------------------------------------
# the scheduler of the restored server
# --------------------------------------------------------------------------------------------------

def test_scheduler_runs_the_restored_syncs(bc, emulator):
    """Restored (in one transaction) into the scheduler's database, whose extension did not exist: the
    scheduler finds it on its own and runs the syncs that are due."""
    kind = ListSyncKind()
    prefix = "bk3%d" % os.getpid()
    src = fresh_source(bc, emulator, "bk_src3")
    kind.create(src, prefix, rows=40, schedule="every 12 hours")
    assert run_sync(src, kind.sync)["status"] == "succeeded"
    kind.churn(src, prefix, leave=4, join=6, step=1)
    sql(src, "UPDATE iterable_audience.sync SET next_run_at = now() - interval '1 hour'")  # overdue
    path = dump(bc, "bk_src3")
    src.close()
    served = connect(bc, "postgres")
    try:
        assert scalar(served, "SELECT count(*) FROM pg_extension WHERE extname = 'iterable_audience'") == 0
        restore(bc, path, "postgres", "--single-transaction", create=False).close()
        run = wait_for(lambda: (query(served, "SELECT * FROM iterable_audience.sync_runs "
                                              "WHERE trigger = 'schedule' AND status <> 'running'") or [None])[0],
                       timeout=150, interval=0.5, what="the scheduler to run the restored sync")
        assert run["status"] == "succeeded", run
        assert run["planned_unsubscribes"] == 4 and run["planned_subscribes"] >= 6  # the churn, no more
        assert kind.remote(served, emulator) == kind.expected(served)
        assert scalar(served, "SELECT next_run_at > now() FROM iterable_audience.sync")
    finally:
        sql(served, "DROP EXTENSION IF EXISTS iterable_audience CASCADE")
        sql(served, "DROP TABLE IF EXISTS bk_audience")
        served.close()


# --------------------------------------------------------------------------------------------------
# an installation made from 0.1.0
# --------------------------------------------------------------------------------------------------

def test_upgrade_from_0_1_0_marks_the_tables_and_releases_the_snapshot_tables(bc, emulator):
    """0.1.0 made its snapshot tables extension members and marked nothing for pg_dump; the update to
    0.2.0 marks the tables and turns the members into tied tables, which then survive a dump."""
    kind = ListSyncKind()
    prefix = "bk4%d" % os.getpid()
    admin = bc.connect()
    sql(admin, "DROP DATABASE IF EXISTS bk_src4 WITH (FORCE)")
    sql(admin, "CREATE DATABASE bk_src4")
    admin.close()
    src = connect(bc, "bk_src4")
    try:
        sql(src, "CREATE EXTENSION iterable_audience VERSION '0.1.0'")
        sql(src, "SELECT iterable_audience.create_account('email', 'test-key-email', project_type => 'email', "
                 "base_url => %s)", (emulator.url,))
        let_owner_use(src)
        kind.create(src, prefix, rows=30)
        assert run_sync(src, kind.sync)["status"] == "succeeded"
        # As 0.1.0's library left it: the snapshot table a member of the extension.
        table = scalar(src, "SELECT table_name FROM iterable_audience.snapshot")
        sql(src, "DELETE FROM pg_depend WHERE classid = 'pg_class'::regclass AND objid = %s::regclass "
                 "AND refclassid = 'pg_extension'::regclass",
            ('iterable_audience_snapshots."%s"' % table,))
        sql(src, 'ALTER EXTENSION iterable_audience ADD TABLE iterable_audience_snapshots."%s"' % table)
        assert snapshot_tables(src) == {table: "e"}
        assert scalar(src, "SELECT extconfig FROM pg_extension WHERE extname = 'iterable_audience'") is None

        sql(src, "ALTER EXTENSION iterable_audience UPDATE TO '0.2.0'")
        assert snapshot_tables(src) == {table: "x"}
        marked = {r["t"] for r in query(src, "SELECT unnest(extconfig)::regclass::text AS t FROM pg_extension "
                                             "WHERE extname = 'iterable_audience'")}
        assert {"iterable_audience.account", "iterable_audience.account_secret", "iterable_audience.sync",
                "iterable_audience.sync_runs", "iterable_audience.snapshot",
                "iterable_audience.sync_runs_run_id_seq"} <= marked
        before = state(src)
        dst = restore(bc, dump(bc, "bk_src4"), "bk_dst4")
        try:
            assert state(dst) == before
            assert snapshot_tables(dst) == {table: "x"}
            seq = last_request_seq(emulator)
            again = run_sync(dst, kind.sync)
            assert (again["planned_subscribes"], again["planned_unsubscribes"], again["api_requests"]) == (0, 0, 0)
            assert requests_since(emulator, seq) == []
        finally:
            dst.close()
    finally:
        src.close()


# --------------------------------------------------------------------------------------------------
# every table of the extension is marked
# --------------------------------------------------------------------------------------------------

# Tables of the extension that hold nothing a restore needs (none so far); everything else is marked.
# The change log of idle runs holds this cluster's transaction ids, which mean nothing in a restored
# copy (it could call a changed source unchanged): left out, so a restored database reads its sources.
NOT_DUMPED = {"iterable_audience.source_change", "iterable_audience.source_watch"}


def test_every_table_and_sequence_of_the_extension_is_marked_for_pg_dump(bc, emulator):
    """A table (or identity sequence) added to the install scripts without pg_extension_config_dump
    would be silently empty after a restore: this fails until it is marked, or listed in NOT_DUMPED."""
    admin = bc.connect()
    sql(admin, "DROP DATABASE IF EXISTS bk_marks WITH (FORCE)")
    sql(admin, "CREATE DATABASE bk_marks")
    admin.close()
    conn = connect(bc, "bk_marks")
    try:
        sql(conn, "CREATE EXTENSION iterable_audience")
        members = {r["t"] for r in query(
            conn, "SELECT c.oid::regclass::text AS t FROM pg_depend d JOIN pg_class c ON c.oid = d.objid "
                  "WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND c.relkind IN ('r', 'p', 'S') "
                  "AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'iterable_audience')")}
        marked = {r["t"] for r in query(conn, "SELECT unnest(extconfig)::regclass::text AS t FROM pg_extension "
                                              "WHERE extname = 'iterable_audience'")}
        assert "iterable_audience.sync" in members
        assert members - NOT_DUMPED == marked
        # The rows the install scripts insert, if any, are left to CREATE EXTENSION by a filter.
        conditions = query(conn, "SELECT unnest(extconfig)::regclass::text AS t, unnest(extcondition) AS c "
                                 "FROM pg_extension WHERE extname = 'iterable_audience'")
        for r in conditions:
            if r["t"].endswith("_seq"):
                continue
            inserted = scalar(conn, "SELECT count(*) FROM %s" % r["t"])
            assert inserted == 0 or r["c"], "%s has %d rows from the install script and no filter" % (r["t"], inserted)
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------------
# snapshot tables that lost their tie (pg_upgrade)
# --------------------------------------------------------------------------------------------------

def untie(conn):
    """Removes the snapshot tables' dependency on the extension, as a pg_upgrade leaves them."""
    sql(conn, "DELETE FROM pg_depend WHERE classid = 'pg_class'::regclass AND refclassid = 'pg_extension'::regclass "
              "AND objid IN (SELECT oid FROM pg_class WHERE relnamespace = 'iterable_audience_snapshots'::regnamespace)")


def test_untied_snapshot_tables_are_tied_again(bc, emulator):
    """pg_upgrade's dump cannot carry the tie: DROP EXTENSION then refuses (the tables depend on its
    schema), until the sync's next run, or _tie_snapshot_tables(), ties them again."""
    kind = ListSyncKind()
    prefix = "bk6%d" % os.getpid()
    conn = fresh_source(bc, emulator, "bk_tie")
    try:
        kind.create(conn, prefix, rows=20)
        assert run_sync(conn, kind.sync)["status"] == "succeeded"
        kind.churn(conn, prefix, leave=2, join=2, step=1)
        assert run_sync(conn, kind.sync)["status"] == "succeeded"
        tables = set(snapshot_tables(conn))
        assert len(tables) == 2
        untie(conn)
        assert snapshot_tables(conn) == {t: None for t in tables}
        with pytest.raises(psycopg2.errors.DependentObjectsStillExist):
            sql(conn, "DROP EXTENSION iterable_audience")
        assert scalar(conn, "SELECT iterable_audience._tie_snapshot_tables()") == 2
        assert snapshot_tables(conn) == {t: "x" for t in tables}
        assert scalar(conn, "SELECT iterable_audience._tie_snapshot_tables()") == 0
        untie(conn)
        run = run_sync(conn, kind.sync)  # nothing to send: the run ties them anyway
        assert run["status"] == "succeeded" and run["api_requests"] == 0
        assert snapshot_tables(conn) == {t: "x" for t in tables}
        sql(conn, "DROP EXTENSION iterable_audience")
        assert leftovers(conn) == 0
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------------
# another cluster, where the roles have other OIDs
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", SYNC_KINDS, ids=lambda k: k.name)
def test_restore_into_another_cluster_finds_the_owners_by_name(bc, emulator, kind):
    prefix = "bk7%s%d" % (kind.name, os.getpid())
    src = fresh_source(bc, emulator, "bk_src7")
    other = Cluster(extra_conf={"iterable_audience.retry_base_delay_ms": "10"})
    dst = None
    try:
        kind.create(src, prefix, rows=30)
        assert run_sync(src, kind.sync)["status"] == "succeeded"
        path = dump(bc, "bk_src7")
        admin = other.connect()
        sql(admin, "CREATE ROLE bk_filler1; CREATE ROLE bk_filler2")
        # Without the owner's role the restore fails, rather than give the sync to whoever has its OID.
        sql(admin, "CREATE DATABASE bk_noroles")
        failed = pg_tool(other, "pg_restore", "--exit-on-error", "-d", "bk_noroles", path)
        assert failed.returncode != 0 and 'role "%s" does not exist' % OWNER in failed.stderr, failed.stderr
        sql(admin, "CREATE ROLE %s LOGIN" % OWNER)
        sql(admin, "CREATE DATABASE bk_dst7")
        admin.close()
        old_oid = scalar(src, "SELECT %s::regrole::oid", (OWNER,))
        dst = restore(other, path, "bk_dst7", create=False)
        new_oid = scalar(dst, "SELECT %s::regrole::oid", (OWNER,))
        assert new_oid != old_oid
        # The sync's owner and the account's grantee are the role of that name here.
        assert scalar(dst, "SELECT owner FROM iterable_audience.sync WHERE sync_name = %s", (kind.sync,)) == new_oid
        assert scalar(dst, "SELECT grantee FROM iterable_audience.account_usage") == new_oid
        before, after = state(src), state(dst)
        for part in ("accounts", "grants", "syncs", "runs", "logs", "snapshots"):
            assert after[part] == before[part], part
        owner = connect(other, "bk_dst7")
        sql(owner, "SET ROLE %s" % OWNER)
        assert query(owner, "SELECT sync_name FROM iterable_audience.syncs") == [{"sync_name": kind.sync}]
        seq = last_request_seq(emulator)
        again = run_sync(owner, kind.sync)
        owner.close()
        assert again["status"] == "succeeded", again
        assert (kind.planned(again), again["api_requests"]) == (0, 0), again
        assert requests_since(emulator, seq) == []
    finally:
        if dst is not None:
            dst.close()
        src.close()
        other.destroy()
