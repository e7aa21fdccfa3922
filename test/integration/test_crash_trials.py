"""Crash trials (issue #6, docs/reliability.md): with audience churn between runs, a run is ended at a
random moment by SIGKILL of its worker or of the backend waiting in run_sync(), or by an immediate
restart of the whole server; the next run must converge.

Seeded and reproducible: IA_CRASH_SEED (default 20240601) fixes every random choice (the churn, the
kind of crash of each trial, the moment); IA_CRASH_TRIALS (default 4, the CI form) is the number of
trials. The long form: IA_CRASH_TRIALS=20 (or more). One trial is one test, run in order on one sync
whose state carries over, so a trial can be rerun alone only with the trials before it.

Each trial: churn; a run slowed down by emulator latency; after a random delay the crash; churn again
(so records whose acknowledgement was lost may leave or rejoin the audience before the next run);
then runs until one succeeds. After it:
  * no run is left 'running', and the crashed run reads 'failed' with an interrupted/restarted error;
  * the list equals the audience, and the snapshot equals the list (invariants.py);
  * every run's counters equal its log rows, and every record a finished run touched has exactly one
    log row.
The test cluster runs with synchronous_commit = off, so a crash may also lose the last few commits.
"""

import os
import random
import time

import psycopg2
import pytest

import invariants
from harness import query, scalar
from sync_helpers import BackgroundRun, run_sync, session_settings, sql, wait_for

SEED = int(os.environ.get("IA_CRASH_SEED", "20240601"))
TRIALS = int(os.environ.get("IA_CRASH_TRIALS", "4"))
KINDS = ("worker", "restart", "worker", "backend")  # trial i crashes the i % 4-th way
INITIAL_ROWS = 1200
SEND_SETTINGS = dict(batch_size=10, max_requests_in_flight=2, max_attempts=2)
LATENCY_MS = 150  # per subscribe/unsubscribe request while a trial's run is going


def connect_when_up(cluster, dbname):
    def attempt():
        try:
            conn = cluster.connect(dbname=dbname)
            scalar(conn, "SELECT 1")
            return conn
        except psycopg2.OperationalError:
            return None
    conn = wait_for(attempt, timeout=90, interval=0.2, what="the server to accept connections again")
    session_settings(conn)
    return conn


class Trials:
    """The database, the sync and the audience shared by the trials."""

    def __init__(self, cluster, emulator):
        self.cluster, self.emulator = cluster, emulator
        self.dbname = "crash_trials"
        self.next_id = 1
        admin = cluster.connect()
        sql(admin, "DROP DATABASE IF EXISTS crash_trials WITH (FORCE)")
        sql(admin, "CREATE DATABASE crash_trials")
        admin.close()
        self.tag = "ct%d" % int(time.time() * 1000 % 1e9)  # the emulator's users outlive a database
        conn = self.connect()
        sql(conn, "CREATE EXTENSION iterable_audience")
        sql(conn, "SELECT iterable_audience.create_account('hybrid', 'test-key-hybrid', project_type => 'hybrid', "
                  "base_url => %s)", (emulator.url,))
        sql(conn, "CREATE TABLE people (id integer PRIMARY KEY, uid text, email text, plan text)")
        self.insert(conn, INITIAL_ROWS)
        sql(conn, "SELECT iterable_audience.create_sync('crashy', 'hybrid', 'people', new_list_name => 'crashy', "
                  "email_column => 'email', user_id_column => 'uid', data_fields => '{\"plan\": \"plan\"}', "
                  "max_removal_fraction => 0.9)")
        session_settings(conn, batch_size=200)
        first = run_sync(conn, "crashy")
        assert first["status"] == "succeeded", first
        self.list_id = scalar(conn, "SELECT list_id FROM iterable_audience.sync WHERE sync_name = 'crashy'")
        conn.close()

    def connect(self):
        return connect_when_up(self.cluster, self.dbname)

    def insert(self, conn, n):
        ids = list(range(self.next_id, self.next_id + n))
        self.next_id += n
        sql(conn, "INSERT INTO people SELECT g, %s || '-u' || g, %s || '.' || g || '@example.com', 'basic' "
                  "FROM unnest(%s::integer[]) g", (self.tag, self.tag, ids))

    def churn(self, conn, rng):
        """Some rows leave, some arrive, some change their data or their email, some come back."""
        ids = [r["id"] for r in query(conn, "SELECT id FROM people")]
        leave = rng.sample(ids, int(len(ids) * rng.uniform(0.03, 0.12)))
        change = rng.sample(ids, int(len(ids) * rng.uniform(0.02, 0.08)))
        move = rng.sample(ids, int(len(ids) * 0.01))
        sql(conn, "UPDATE people SET plan = %s WHERE id = ANY(%s)", ("p%d" % rng.randrange(1000), change))
        sql(conn, "UPDATE people SET email = %s || '.m' || id || '.' || %s || '@example.org' WHERE id = ANY(%s)",
            (self.tag, rng.randrange(10 ** 6), move))
        # Rows that left earlier come back with the values they had (the same record and hash).
        gone = [i for i in range(1, self.next_id) if i not in set(ids)]
        back = rng.sample(gone, min(len(gone), rng.randrange(0, 40)))
        sql(conn, "INSERT INTO people SELECT g, %s || '-u' || g, %s || '.' || g || '@example.com', 'basic' "
                  "FROM unnest(%s::integer[]) g ON CONFLICT DO NOTHING", (self.tag, self.tag, back))
        sql(conn, "DELETE FROM people WHERE id = ANY(%s)", (leave,))
        self.insert(conn, int(INITIAL_ROWS * rng.uniform(0.03, 0.12)))

    def audience(self, conn):
        return {(r["email"], r["uid"]) for r in query(conn, "SELECT email, uid FROM people")}

    def members(self):
        return {(m["email"], m["userId"]) for m in self.emulator.members(self.list_id)}

    def drop(self):
        admin = connect_when_up(self.cluster, "postgres")
        sql(admin, "DROP DATABASE IF EXISTS crash_trials WITH (FORCE)")
        admin.close()


@pytest.fixture(scope="module")
def trials(cluster, emulator):
    t = Trials(cluster, emulator)
    yield t
    emulator.clear_faults()
    t.drop()


def worker_pid(conn):
    return scalar(conn, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'iterable_audience sync'")


@pytest.mark.parametrize("trial", range(TRIALS))
def test_crash_trial(trials, cluster, emulator, trial):
    rng = random.Random("%d-%d" % (SEED, trial))
    kind = KINDS[trial % len(KINDS)]
    delay = rng.uniform(0.0, 1.5)
    conn = trials.connect()
    try:
        trials.churn(conn, rng)
        before = scalar(conn, "SELECT coalesce(max(run_id), 0) FROM iterable_audience.sync_runs")
        emulator.set_faults({"rules": [{"kind": "latency", "endpoint": ["subscribe", "unsubscribe"],
                                        "ms": LATENCY_MS}]})
        bg = BackgroundRun(cluster, trials.dbname, "crashy", **SEND_SETTINGS)
        try:
            pid = wait_for(lambda: worker_pid(conn), timeout=30, interval=0.01, what="the run's worker")
            time.sleep(delay)
            crashed = worker_pid(conn) is not None  # else the run ended first: a trial without a crash
            if crashed:
                if kind in ("worker", "backend"):
                    try:
                        os.kill(pid if kind == "worker" else bg.pid, 9)
                    except ProcessLookupError:
                        crashed = False
                else:
                    cluster.pg_ctl("restart", "-m", "immediate")
            assert bg.join(90), "run_sync() did not return"
        finally:
            bg.close()
        conn.close()
        emulator.clear_faults()
        conn = trials.connect()
        crashed_run = scalar(conn, "SELECT max(run_id) FROM iterable_audience.sync_runs WHERE run_id > %s", (before,))
        # Right after the crash, before any run: what Iterable acknowledged is on the list, and whatever
        # Iterable may have applied unacknowledged is in the snapshot, in doubt (marked before sending).
        invariants.check_snapshot(conn, emulator, "crashy", settled=False)
        acknowledged, in_doubt, on_list = invariants.snapshot_and_list(conn, emulator, "crashy")
        row = query(conn, "SELECT status, subscribed, unsubscribed FROM iterable_audience.sync_runs WHERE run_id = %s",
                    (crashed_run,)) if crashed_run else []
        print("trial %d: seed %d, %s after %.2f s: %s; run %s %s; after it: %d in doubt, %d on the list not "
              "acknowledged, %d acknowledged" % (
                  trial, SEED, kind, delay, "crashed" if crashed else "finished first", crashed_run,
                  dict(row[0]) if row else "(row lost)", len(in_doubt), len(on_list - acknowledged),
                  len(acknowledged)))

        # Churn between the crashed run and the next: records whose answer was lost leave or come back.
        trials.churn(conn, rng)
        statuses = []
        for _ in range(3):
            run = run_sync(conn, "crashy")
            statuses.append(run["status"])
            assert run["status"] in ("succeeded", "succeeded_with_failures"), run
            if run["status"] == "succeeded":
                break
        assert statuses[-1] == "succeeded", statuses
        assert scalar(conn, "SELECT count(*) FROM iterable_audience.sync_runs WHERE status = 'running'") == 0
        if crashed_run is not None and crashed:
            row = query(conn, "SELECT status, error, finished_at FROM iterable_audience.sync_runs WHERE run_id = %s",
                        (crashed_run,))
            if row:  # the run row itself may be lost with the last commits
                assert row[0]["status"] in ("failed", "succeeded", "succeeded_with_failures"), row
                if row[0]["status"] == "failed":
                    assert row[0]["error"].startswith("interrupted") or row[0]["error"] == "server restarted", row
                assert row[0]["finished_at"] is not None, row

        assert trials.members() == trials.audience(conn)
        invariants.check_invariants(conn, emulator, "crashy")
        # Nothing left to send.
        again = run_sync(conn, "crashy")
        assert (again["status"], again["planned_subscribes"], again["planned_unsubscribes"]) == ("succeeded", 0, 0)
    finally:
        conn.close()
