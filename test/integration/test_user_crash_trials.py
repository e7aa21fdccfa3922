"""Crash trials of a user sync (as test_crash_trials.py does for a list sync): with churn between runs
(profiles change, emails move, rows leave and come back, new rows), a run is ended at a random moment
by SIGKILL of its worker or of the waiting backend, or by an immediate restart of the server. The
next runs must converge:
  * no run is left 'running';
  * every source row's profile in Iterable has the row's current values (email and dataFields);
  * the latest snapshot holds exactly the source's records with their current values hashed, none in
    doubt, so a further run sends nothing (every changed row acknowledged once);
  * every finished run's counters equal its log rows, each record logged at most once per run.
IA_CRASH_SEED and IA_CRASH_TRIALS as for test_crash_trials.py.
"""

import os
import random
import time

import pytest

from harness import query, scalar
from sync_helpers import BackgroundRun, KEYS, run_sync, sql, wait_for
from test_crash_trials import connect_when_up, worker_pid

SEED = int(os.environ.get("IA_CRASH_SEED", "20240601"))
TRIALS = int(os.environ.get("IA_CRASH_TRIALS", "4"))
KINDS = ("worker", "restart", "backend", "worker")
INITIAL_ROWS = 1000
SEND_SETTINGS = dict(batch_size=10, max_requests_in_flight=2, max_attempts=2)
LATENCY_MS = 150


class UserTrials:
    def __init__(self, cluster, emulator):
        self.cluster, self.emulator = cluster, emulator
        self.dbname = "user_crash_trials"
        self.next_id = 1
        admin = cluster.connect()
        sql(admin, "DROP DATABASE IF EXISTS user_crash_trials WITH (FORCE)")
        sql(admin, "CREATE DATABASE user_crash_trials")
        admin.close()
        self.tag = "uct%d" % int(time.time() * 1000 % 1e9)
        conn = self.connect()
        sql(conn, "CREATE EXTENSION iterable_audience")
        sql(conn, "SELECT iterable_audience.create_account('hybrid', %s, project_type => 'hybrid', base_url => %s)",
            (KEYS["hybrid"], emulator.url))
        sql(conn, "CREATE TABLE people (id integer PRIMARY KEY, uid text, email text, plan text, visits integer)")
        self.insert(conn, INITIAL_ROWS)
        sql(conn, "SELECT iterable_audience.create_user_sync('profiles', 'hybrid', 'people', email_column => 'email', "
                  "user_id_column => 'uid', data_fields => '{\"plan\": \"plan\", \"visits\": \"visits\"}')")
        first = run_sync(conn, "profiles")
        assert first["status"] == "succeeded" and first["updated"] == INITIAL_ROWS, first
        conn.close()

    def connect(self):
        return connect_when_up(self.cluster, self.dbname)

    def insert(self, conn, n):
        ids = list(range(self.next_id, self.next_id + n))
        self.next_id += n
        sql(conn, "INSERT INTO people SELECT g, %s || '-u' || g, %s || '.' || g || '@example.com', 'basic', 0 "
                  "FROM unnest(%s::integer[]) g", (self.tag, self.tag, ids))

    def churn(self, conn, rng):
        ids = [r["id"] for r in query(conn, "SELECT id FROM people")]
        leave = rng.sample(ids, int(len(ids) * rng.uniform(0.02, 0.08)))
        change = rng.sample(ids, int(len(ids) * rng.uniform(0.05, 0.2)))
        move = rng.sample(ids, int(len(ids) * 0.01))
        sql(conn, "UPDATE people SET plan = %s, visits = visits + 1 WHERE id = ANY(%s)",
            ("p%d" % rng.randrange(1000), change))
        sql(conn, "UPDATE people SET email = %s || '.m' || id || '.' || %s || '@example.org' WHERE id = ANY(%s)",
            (self.tag, rng.randrange(10 ** 6), move))
        gone = [i for i in range(1, self.next_id) if i not in set(ids)]
        back = rng.sample(gone, min(len(gone), rng.randrange(0, 30)))
        sql(conn, "INSERT INTO people SELECT g, %s || '-u' || g, %s || '.' || g || '@example.com', 'basic', 0 "
                  "FROM unnest(%s::integer[]) g ON CONFLICT DO NOTHING", (self.tag, self.tag, back))
        sql(conn, "DELETE FROM people WHERE id = ANY(%s)", (leave,))
        self.insert(conn, int(INITIAL_ROWS * rng.uniform(0.02, 0.08)))

    def profiles(self):
        users = self.emulator.call("GET", "/_emulator/users?api_key=%s" % KEYS["hybrid"])["users"]
        return {u["userId"]: u for u in users if (u["userId"] or "").startswith(self.tag + "-")}

    def check_converged(self, conn):
        profiles = self.profiles()
        for row in query(conn, "SELECT uid, email, plan, visits FROM people"):
            p = profiles.get(row["uid"])
            assert p is not None, "no profile for %s" % row["uid"]
            assert p["email"] == row["email"], (row, p)
            assert p["dataFields"] == {"plan": row["plan"], "visits": row["visits"]}, (row, p)
        snapshot = scalar(conn, "SELECT format('iterable_audience_snapshots.%I', snapshot_table) "
                                "FROM iterable_audience.syncs WHERE sync_name = 'profiles'")
        missing = scalar(conn, "SELECT count(*) FROM people p FULL JOIN %s s ON s.record_key = p.uid "
                               "WHERE p.uid IS NULL OR s.record_key IS NULL OR s.row_hash = 0 OR s.row_hash <> "
                               "iterable_audience.values_hash(p.email, p.uid, jsonb_build_object('plan', p.plan, "
                               "'visits', p.visits))" % snapshot)
        assert missing == 0, "%d records differ between the source and the snapshot" % missing
        for run in query(conn, "SELECT run_id, updated, failed FROM iterable_audience.sync_runs r "
                               "WHERE sync_name = 'profiles' AND status <> 'running'"):
            counts = query(conn, "SELECT count(*) FILTER (WHERE status = 'succeeded') AS updated, "
                                 "count(*) FILTER (WHERE status = 'failed') AS failed, count(*) AS n, "
                                 "count(DISTINCT record_key) AS keys FROM iterable_audience.sync_logs "
                                 "WHERE run_id = %s", (run["run_id"],))[0]
            assert (run["updated"], run["failed"]) == (counts["updated"], counts["failed"]), (run, counts)
            assert counts["n"] == counts["keys"], (run, counts)

    def drop(self):
        admin = connect_when_up(self.cluster, "postgres")
        sql(admin, "DROP DATABASE IF EXISTS user_crash_trials WITH (FORCE)")
        admin.close()


@pytest.fixture(scope="module")
def trials(cluster, emulator):
    t = UserTrials(cluster, emulator)
    yield t
    emulator.clear_faults()
    t.drop()


@pytest.mark.parametrize("trial", range(TRIALS))
def test_user_sync_crash_trial(trials, cluster, emulator, trial):
    rng = random.Random("users-%d-%d" % (SEED, trial))
    kind = KINDS[trial % len(KINDS)]
    delay = rng.uniform(0.0, 1.5)
    conn = trials.connect()
    try:
        trials.churn(conn, rng)
        before = scalar(conn, "SELECT coalesce(max(run_id), 0) FROM iterable_audience.sync_runs")
        emulator.set_faults({"rules": [{"kind": "latency", "endpoint": "bulk_update_users", "ms": LATENCY_MS}]})
        bg = BackgroundRun(cluster, trials.dbname, "profiles", **SEND_SETTINGS)
        try:
            pid = wait_for(lambda: worker_pid(conn), timeout=30, interval=0.01, what="the run's worker")
            time.sleep(delay)
            crashed = worker_pid(conn) is not None
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
        print("user trial %d: %s after %.2f s: %s; run %s" % (trial, kind, delay,
                                                            "crashed" if crashed else "finished first", crashed_run))
        trials.churn(conn, rng)
        statuses = []
        for _ in range(3):
            run = run_sync(conn, "profiles")
            statuses.append(run["status"])
            assert run["status"] in ("succeeded", "succeeded_with_failures"), run
            if run["status"] == "succeeded":
                break
        assert statuses[-1] == "succeeded", statuses
        assert scalar(conn, "SELECT count(*) FROM iterable_audience.sync_runs WHERE status = 'running'") == 0
        trials.check_converged(conn)
        again = run_sync(conn, "profiles")
        assert (again["status"], again["planned_updates"]) == ("succeeded", 0), again
    finally:
        conn.close()
