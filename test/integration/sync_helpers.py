"""Helpers shared by the sync integration tests (test_sync_*.py)."""

import collections
import os
import signal
import threading
import time

import psycopg2

from harness import query, scalar

# Identifiers of the emulator's projects (conftest.py creates one account per project).
KEYS = {"hybrid": "test-key-hybrid", "email": "test-key-email", "userid": "test-key-userid"}


def tag(db):
    """A prefix unique to this test: the emulator's users outlive a test's database."""
    return scalar(db, "SELECT current_database()")


def sql(db, text, params=None):
    with db.cursor() as cur:
        cur.execute(text, params)


def run_sync(db, name, force=False):
    return query(db, "SELECT * FROM iterable_audience.run_sync(%s, force => %s)", (name, force))[0]


def preview(db, name):
    return query(db, "SELECT * FROM iterable_audience.preview_sync(%s)", (name,))


def sync_info(db, name):
    return query(db, "SELECT * FROM iterable_audience.syncs WHERE sync_name = %s", (name,))[0]


def list_id_of(db, name):
    return sync_info(db, name)["list_id"]


def snapshot_table(db, name):
    table = sync_info(db, name)["snapshot_table"]
    return None if table is None else 'iterable_audience_snapshots."%s"' % table


def snapshot_rows(db, name):
    """{record_key: (email, user_id)} of the sync's latest snapshot table."""
    table = snapshot_table(db, name)
    if table is None:
        return {}
    return {r["record_key"]: (r["email"], r["user_id"])
            for r in query(db, "SELECT record_key, email, user_id FROM %s" % table)}


def snapshot_split(db, name):
    """({record_key: (email, user_id)} acknowledged, {...} in doubt) of the sync's latest snapshot
    table, with the batches of a run that ended before recording its snapshot applied as the next run
    will (invariants.effective_snapshot): rows in doubt are records whose last request has no known
    outcome (docs/reliability.md)."""
    from invariants import effective_snapshot
    return effective_snapshot(db, sync_info(db, name)["sync_id"])


def logs(db, run_id):
    return query(db, "SELECT * FROM iterable_audience.sync_logs WHERE run_id = %s ORDER BY record_key", (run_id,))


def log_summary(db, run_id):
    """Counter of (operation, action, status, error_code) over a run's logs."""
    return collections.Counter((r["operation"], r["action"], r["status"], r["error_code"]) for r in logs(db, run_id))


def members(emulator, list_id):
    """{(email, userId)} of an emulator list."""
    return {(m["email"], m["userId"]) for m in emulator.members(list_id)}


def member_users(emulator, list_id):
    return emulator.members(list_id)


def request_counts(emulator):
    """{endpoint: number of requests} the emulator has received so far."""
    by_endpoint = emulator.state()["requests"]["by_endpoint"]
    return collections.Counter({name: sum(counts.values()) for name, counts in by_endpoint.items()})


def invalid_total(emulator):
    return emulator.invalid_received()["total"]


def add_users(emulator, account, users):
    result = emulator.call("POST", "/_emulator/users", {"api_key": KEYS[account], "users": users})
    assert result["failed"] == [], result
    return result


def forget(emulator, account, emails=(), user_ids=()):
    return emulator.call("POST", "/_emulator/forget",
                         {"api_key": KEYS[account], "emails": list(emails), "userIds": list(user_ids)})


def table_counts(db):
    """Row counts of the extension's state tables (to prove a call changed nothing)."""
    out = {}
    for table in ("sync", "sync_runs", "sync_logs", "record_failure", "snapshot", "account"):
        out[table] = scalar(db, "SELECT count(*) FROM iterable_audience.%s" % table)
    out["snapshot_tables"] = scalar(db, "SELECT count(*) FROM pg_tables "
                                        "WHERE schemaname = 'iterable_audience_snapshots'")
    for table in query(db, "SELECT tablename FROM pg_tables WHERE schemaname = 'iterable_audience_snapshots'"):
        name = table["tablename"]
        out["snap:" + name] = scalar(db, 'SELECT count(*) FROM iterable_audience_snapshots."%s"' % name)
    return out


def wait_for(predicate, timeout=20.0, interval=0.05, what="condition"):
    """Polls predicate() until it returns a true value; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def session_settings(conn, **settings):
    """SET iterable_audience.<name> = value for each keyword (also the short retry backoff of conftest)."""
    values = {"retry_base_delay_ms": 10, "retry_max_delay_ms": 200}
    values.update(settings)
    with conn.cursor() as cur:
        for name, value in values.items():
            cur.execute("SET iterable_audience.%s = %s" % (name, int(value)))


class BackgroundRun:
    """run_sync() in a thread on its own connection; keeps the result or the error."""

    def __init__(self, cluster, dbname, name, force=False, **settings):
        self.conn = cluster.connect(dbname=dbname)
        session_settings(self.conn, **settings)
        self.pid = scalar(self.conn, "SELECT pg_backend_pid()")
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(name, force), daemon=True)
        self.thread.start()

    def _run(self, name, force):
        try:
            self.result = run_sync(self.conn, name, force)
        except psycopg2.Error as e:
            self.error = e

    def join(self, timeout):
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def close(self):
        try:
            self.conn.close()
        except psycopg2.Error:
            pass


def worker_pid(db):
    return scalar(db, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'iterable_audience sync'")


def kill9(pid):
    os.kill(pid, signal.SIGKILL)
