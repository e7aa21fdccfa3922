#!/usr/bin/env python3
"""Idle runs and continuous syncs (issue 18 part 3), on a temporary cluster against the emulator.

    bench/continuous_bench.py                  # 1M-row idle run, writer cost, latency, 100 idle syncs
    bench/continuous_bench.py --rows 100000 --syncs 20 --cpu-seconds 20 --quick-writer   # smoke

Figures:
  idle run       a table source of --rows rows, unchanged since the last run: the run's own time
                 (sync_runs.finished_at - started_at) and run_sync()'s round trip (which includes
                 starting the worker process); requests sent
  writer cost    pgbench (unix socket), one client, statements/s into a table with and without the change trigger
                 (single-row INSERT transactions, single-row UPDATE transactions, 100-row INSERTs),
                 with synchronous_commit off (the trigger's CPU, not the disk's fsync, decides)
  latency        continuous sync (continuous_latency 10 s): time from a committed INSERT to the
                 emulator holding the new member (polled every 50 ms)
  idle CPU       --syncs continuous syncs, unchanged, over --cpu-seconds: CPU of every server process
                 (live ones from /proc/<pid>/stat, exited ones through the postmaster's cutime/cstime)
Benchmarks are not tests: nothing here asserts a time.
"""

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "test", "integration"))

from harness import Cluster, Emulator, query, scalar  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def cluster_cpu_seconds(postmaster):
    """utime+stime of the postmaster, of its children that exited (cutime+cstime) and of the live ones."""
    f = stat_fields(postmaster)
    total = sum(int(x) for x in f[11:15])
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            c = stat_fields(int(entry))
        except OSError:
            continue
        if int(c[1]) == postmaster:  # ppid
            total += int(c[11]) + int(c[12])
    return total / TICKS


def postmaster_pid(cluster):
    with open(os.path.join(cluster.data, "postmaster.pid")) as f:
        return int(f.readline())


class Bench:
    def __init__(self):
        self.emulator = Emulator()
        self.cluster = Cluster(extra_conf={
            "shared_buffers": "'1GB'", "max_wal_size": "'8GB'", "checkpoint_timeout": "'30min'",
            "fsync": "on", "synchronous_commit": "on", "max_worker_processes": "16"})
        self.conn = self.cluster.connect()
        self.sql("CREATE EXTENSION iterable_audience")
        self.sql("SELECT iterable_audience.create_account('bench', 'test-key-email', project_type => 'email', "
                 "base_url => %s)", (self.emulator.url,))

    def sql(self, text, params=None):
        with self.conn.cursor() as cur:
            cur.execute(text, params)

    def close(self):
        self.conn.close()
        self.cluster.destroy()
        self.emulator.stop()

    def run(self, name):
        start = time.monotonic()
        row = query(self.conn, "SELECT *, extract(epoch FROM finished_at - started_at) AS took "
                               "FROM iterable_audience.run_sync(%s)", (name,))[0]
        return row, time.monotonic() - start

    # ---- idle run -------------------------------------------------------------------------------
    def idle_run(self, rows):
        self.sql("CREATE TABLE audience (id bigint PRIMARY KEY, email text, plan text)")
        t0 = time.monotonic()
        self.sql("INSERT INTO audience SELECT g, 'idle' || g || '@example.com', "
                 "(ARRAY['free','pro'])[1 + g %% 2] FROM generate_series(1, %d) g" % rows)
        self.sql("VACUUM ANALYZE audience")
        load = time.monotonic() - t0
        self.sql("SELECT iterable_audience.create_sync('idle', 'bench', 'audience', new_list_name => 'idle', "
                 "email_column => 'email', data_fields => '{\"plan\": \"plan\"}')")
        first, first_rt = self.run("idle")
        out = {"rows": rows, "load_s": load, "initial_s": float(first["took"]), "initial_status": first["status"]}
        own, trips, requests = [], [], []
        for _ in range(5):
            before = len(self.emulator.requests(limit=100000))
            row, rt = self.run("idle")
            requests.append(len(self.emulator.requests(limit=100000)) - before)
            assert row["source_read"] is False and row["status"] == "succeeded", row
            own.append(float(row["took"]) * 1000)
            trips.append(rt * 1000)
        with open(self.cluster.log) as f:
            phases = [l for l in f if "phases:" in l]
        out["idle_phases"] = phases[-1].split("iterable_audience: ", 1)[1].strip() if phases else "?"
        # For comparison: the same run made to read (one row changed).
        self.sql("UPDATE audience SET plan = 'pro' WHERE id = 1")
        changed, _ = self.run("idle")
        out.update(idle_run_ms=own, idle_round_trip_ms=trips, idle_requests=requests,
                   one_change_s=float(changed["took"]))
        self.sql("SELECT iterable_audience.drop_sync('idle')")
        self.sql("DROP TABLE audience")
        return out

    # ---- writer cost ----------------------------------------------------------------------------
    def pgbench(self, script, seconds):
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
            f.write(script)
        os.chmod(f.name, 0o644)
        env = dict(os.environ, PGOPTIONS="-c synchronous_commit=off")
        cmd = [os.path.join(self.cluster.bindir, "pgbench"), "-n", "-h", self.cluster.dir, "-p", str(self.cluster.port),
               "-U", "postgres", "-c", "1", "-T", str(seconds), "-f", f.name, "postgres"]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        out = done.stdout
        os.unlink(f.name)
        for line in out.splitlines():
            if line.startswith("tps ="):
                return float(line.split()[2])
        raise RuntimeError(out)

    def writer_cost(self, seconds, rounds=3):
        """Interleaved: the trigger disabled, then enabled, `rounds` times per workload; the best tps of
        each (the machine is shared: the best is the least disturbed)."""
        self.sql("CREATE TABLE w (id bigint PRIMARY KEY, email text)")
        self.sql("CREATE SEQUENCE w_ids START 1000000")
        self.sql("SELECT iterable_audience.create_sync('w', 'bench', 'w', new_list_name => 'w', email_column => 'email')")
        self.run("w")  # installs the trigger
        assert scalar(self.conn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'w'::regclass "
                                 "AND tgname = 'iterable_audience_source_change'") == 1
        self.sql("INSERT INTO w SELECT g, 'w' || g || '@example.com' FROM generate_series(1, 100000) g")
        self.sql("VACUUM ANALYZE w")
        scripts = {
            "1-row INSERT per transaction": "INSERT INTO w VALUES (nextval('w_ids'), 'x@example.com');\n",
            "1-row UPDATE per transaction": "\\set id random(1, 100000)\nUPDATE w SET email = 'y@example.com' WHERE id = :id;\n",
            "100-row INSERT per transaction": "INSERT INTO w SELECT nextval('w_ids'), 'z@example.com' FROM generate_series(1, 100);\n",
            "10 1-row INSERTs per transaction": "BEGIN;\n" + "INSERT INTO w VALUES (nextval('w_ids'), 'x@example.com');\n" * 10 + "COMMIT;\n",
        }
        results = {}
        log_rows = 0
        for label, script in scripts.items():
            best = [0.0, 0.0]
            for _ in range(rounds):
                for i, state in enumerate(("DISABLE", "ENABLE ALWAYS")):
                    self.sql("ALTER TABLE w %s TRIGGER iterable_audience_source_change" % state)
                    best[i] = max(best[i], self.pgbench(script, seconds))
            log_rows = max(log_rows, scalar(self.conn, "SELECT count(*) FROM iterable_audience.source_change"))
            self.sql("DELETE FROM iterable_audience.source_change")
            results[label] = best
        self.sql("SELECT iterable_audience.drop_sync('w')")
        self.sql("DROP TABLE w")
        return results, log_rows

    # ---- continuous: latency and idle CPU -------------------------------------------------------
    def latency(self, trials):
        self.sql("CREATE TABLE c (id bigint PRIMARY KEY, email text)")
        self.sql("INSERT INTO c VALUES (1, 'c1@example.com')")
        self.sql("SELECT iterable_audience.create_sync('c', 'bench', 'c', new_list_name => 'c', email_column => 'email', "
                 "schedule => 'continuous')")
        list_id = scalar(self.conn, "SELECT list_id FROM iterable_audience.sync WHERE sync_name = 'c'")
        wait(lambda: self.emulator.member_keys(list_id) == {"c1@example.com"}, 120)
        out = []
        for i in range(trials):
            time.sleep(random.uniform(1, 6))
            email = "c%d@example.com" % (i + 100)
            self.sql("INSERT INTO c VALUES (%s, %s)", (i + 100, email))
            committed = time.monotonic()
            wait(lambda: email in self.emulator.member_keys(list_id), 120, interval=0.05)
            out.append(time.monotonic() - committed)
        self.sql("SELECT iterable_audience.pause_sync('c')")
        wait(lambda: not scalar(self.conn, "SELECT count(*) FROM iterable_audience.sync_runs WHERE status = 'running'"),
             120)
        self.sql("SELECT iterable_audience.drop_sync('c')")
        return out

    def cpu_percent(self, seconds):
        self.conn.close()  # this session's own CPU is not the server's idle cost
        pm = postmaster_pid(self.cluster)
        cpu0, t0 = cluster_cpu_seconds(pm), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = cluster_cpu_seconds(pm), time.monotonic()
        self.conn = self.cluster.connect()
        return (cpu1 - cpu0) / (t1 - t0) * 100

    def idle_cpu(self, syncs, seconds):
        baseline = self.cpu_percent(seconds)  # the same cluster without continuous syncs
        for i in range(syncs):
            self.sql("CREATE TABLE s%d (id bigint PRIMARY KEY, email text)" % i)
            self.sql("INSERT INTO s%d SELECT g, 's%d.' || g || '@example.com' FROM generate_series(1, 10) g" % (i, i))
            self.sql("SELECT iterable_audience.create_sync(%s, 'bench', %s, new_list_name => %s, "
                     "email_column => 'email', schedule => 'continuous')", ("s%d" % i, "s%d" % i, "s%d" % i))
        wait(lambda: scalar(self.conn, "SELECT count(DISTINCT sync_id) FROM iterable_audience.sync_runs "
                                       "WHERE status = 'succeeded'") >= syncs, 900, interval=1)
        time.sleep(15)  # the last runs' workers exit
        runs_before = scalar(self.conn, "SELECT count(*) FROM iterable_audience.sync_runs")
        pct = self.cpu_percent(seconds)
        runs_after = scalar(self.conn, "SELECT count(*) FROM iterable_audience.sync_runs")
        return baseline, pct, runs_after - runs_before


def wait(predicate, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(interval)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1000000)
    p.add_argument("--syncs", type=int, default=100)
    p.add_argument("--cpu-seconds", type=int, default=60)
    p.add_argument("--latency-trials", type=int, default=5)
    p.add_argument("--writer-seconds", type=int, default=10)
    p.add_argument("--skip", default="", help="comma list of idle,writer,latency,cpu")
    args = p.parse_args()
    skip = set(args.skip.split(","))
    b = Bench()
    try:
        if "idle" not in skip:
            r = b.idle_run(args.rows)
            print("idle run at %d rows: load %.1f s, initial run %.1f s (%s); idle run %s ms (run row), "
                  "round trip %s ms, requests %s; a run after 1 changed row %.2f s" % (
                      r["rows"], r["load_s"], r["initial_s"], r["initial_status"],
                      ", ".join("%.1f" % x for x in r["idle_run_ms"]),
                      ", ".join("%.1f" % x for x in r["idle_round_trip_ms"]), r["idle_requests"], r["one_change_s"]),
                  flush=True)
            print("  last idle run's phases: %s" % r["idle_phases"], flush=True)
        if "writer" not in skip:
            res, log_rows = b.writer_cost(args.writer_seconds)
            for label, (without, with_) in res.items():
                print("writer %s: %.0f tps without the trigger, %.0f with (%.1f%% fewer)" % (
                    label, without, with_, (1 - with_ / without) * 100), flush=True)
            print("change log rows after one workload's runs (not yet pruned): up to %d" % log_rows, flush=True)
        if "latency" not in skip:
            lat = b.latency(args.latency_trials)
            print("commit to subscribe (continuous_latency 10 s): %s s; max %.2f s" % (
                ", ".join("%.2f" % x for x in lat), max(lat)), flush=True)
        if "cpu" not in skip:
            baseline, pct, runs = b.idle_cpu(args.syncs, args.cpu_seconds)
            print("%d idle continuous syncs: server CPU %.2f%% of one core over %d s (%.2f%% with none, same "
                  "cluster); %d runs started meanwhile" % (args.syncs, pct, args.cpu_seconds, baseline, runs), flush=True)
    finally:
        b.close()


if __name__ == "__main__":
    main()
