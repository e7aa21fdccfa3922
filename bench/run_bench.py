#!/usr/bin/env python3
"""Benchmarks of iterable_audience against the emulator, on a temporary cluster.

    bench/run_bench.py                 # 1M rows (the issue's default), writes bench/RESULTS.md
    bench/run_bench.py --large         # adds the 10M-row figures
    bench/run_bench.py --quick         # small sizes: keeps the script working (CI smoke), no RESULTS.md

Figures (each next to its target in the table it prints):
  initial sync   rows/s end to end; CPU seconds of the run's worker per million rows, next to the
                 CPU of COPY (SELECT json_build_object('email', e, 'userId', u) FROM audience) TO '/dev/null'
                 (the least of 3 runs)
  incremental    1% churn: the plan/diff time of the run next to a bare FULL OUTER JOIN of the
                 audience against the snapshot on the key
  rate limit     emulator leaky bucket of 20 requests/s (not told to the client), 100 ms latency:
                 achieved requests/s / 20, share of requests answered 429
  memory         peak RSS of the run's worker at 1M (and 10M) rows
  idle           unchanged audience: requests sent and time taken

The run worker logs its CPU and peak RSS ("iterable_audience: run N used ...") and its phase
timings; this script reads them from the server log. Tests never assert times; this does not either.
"""

import argparse
import datetime
import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))

from harness import Cluster, Emulator, query, scalar  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def machine():
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "memory_gib": round(mem_kb / 1024 / 1024, 1), "cpu": cpu}


def worker_usage(cluster, run_id):
    """(user+system CPU seconds, peak RSS kB, phase timings dict) the run's worker logged."""
    log = cluster.server_log()
    m = re.search(r"iterable_audience: run %d used ([\d.]+) s user CPU, ([\d.]+) s system CPU, peak RSS (\d+) kB "
                  r"\(shared buffers included\), private memory (\d+) kB at most" % run_id, log)
    phases = {}
    p = re.search(r"iterable_audience: run %d phases: (.*)" % run_id, log)
    if p:
        for name, secs in re.findall(r"(\w+) ([\d.]+) s", p.group(1)):
            phases[name] = float(secs)
    if not m:
        return None, None, phases
    return float(m.group(1)) + float(m.group(2)), (int(m.group(3)), int(m.group(4))), phases


class Bench:
    def __init__(self, args):
        self.args = args
        self.cluster = Cluster(extra_conf={
            "shared_buffers": "'1GB'", "work_mem": "'64MB'", "maintenance_work_mem": "'512MB'",
            "max_wal_size": "'8GB'", "checkpoint_timeout": "'30min'", "log_min_messages": "log",
            # Durable, as in production (the test clusters turn these off to save time).
            "fsync": "on", "synchronous_commit": "on"})
        self.emulator = Emulator()
        self.conn = self.cluster.connect()
        with self.conn.cursor() as cur:
            cur.execute("CREATE EXTENSION iterable_audience")
            cur.execute("SELECT iterable_audience.create_account('bench', 'test-key-userid', project_type => 'user_id', "
                        "base_url => %s)", (self.emulator.url,))
        self.rows = []

    def close(self):
        self.conn.close()
        self.cluster.destroy()
        self.emulator.stop()

    def sql(self, text, params=None):
        with self.conn.cursor() as cur:
            cur.execute(text, params)

    def make_audience(self, table, n):
        self.sql("DROP TABLE IF EXISTS %s" % table)
        self.sql("CREATE TABLE %s (id bigint PRIMARY KEY, email text, user_id text, plan text)" % table)
        self.sql("INSERT INTO %s SELECT g, 'user' || g || '@example.com', 'u' || g, "
                 "(ARRAY['free','pro','enterprise'])[1 + g %% 3] FROM generate_series(1, %d) g" % (table, n))
        self.sql("VACUUM ANALYZE %s" % table)

    def run(self, sync):
        """Runs the sync; also samples the run worker's private memory (RssAnon) every 10 ms while it
        runs, since the worker itself samples only at the end of each phase (self.sampled_peak_kb)."""
        monitor = self.cluster.connect()
        done = threading.Event()
        peak = [0]

        def sample():
            pid = None
            while not done.is_set() and pid is None:
                pid = scalar(monitor, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'iterable_audience sync'")
                if pid is None:
                    time.sleep(0.005)
            while pid is not None and not done.is_set():
                try:
                    with open("/proc/%d/status" % pid) as f:
                        for line in f:
                            if line.startswith("RssAnon:"):
                                peak[0] = max(peak[0], int(line.split()[1]))
                except OSError:
                    break
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        start = time.monotonic()
        try:
            row = query(self.conn, "SELECT * FROM iterable_audience.run_sync(%s)", (sync,))[0]
        finally:
            took = time.monotonic() - start
            done.set()
            sampler.join()
            monitor.close()
        self.sampled_peak_kb = peak[0]
        return row, took

    def copy_floor(self, table):
        """CPU seconds of a backend running the COPY floor over the table: the least of 3 runs (a floor;
        one run on this shared machine varied from 1.0 to 1.8 s per 1M rows)."""
        conn = self.cluster.connect()
        pid = scalar(conn, "SELECT pg_backend_pid()")
        best = None
        for _ in range(3):
            before = proc_cpu_seconds(pid)
            with conn.cursor() as cur:
                cur.execute("COPY (SELECT json_build_object('email', email, 'userId', user_id) FROM %s) "
                            "TO '/dev/null'" % table)
            used = proc_cpu_seconds(pid) - before
            best = used if best is None else min(best, used)
        conn.close()
        return best

    def bare_join_seconds(self, table, snapshot):
        best = None
        for _ in range(3):
            start = time.monotonic()
            scalar(self.conn, "SELECT count(*) FROM %s a FULL OUTER JOIN %s s ON s.record_key = a.user_id "
                              "WHERE a.user_id IS NULL OR s.record_key IS NULL" % (table, snapshot))
            took = time.monotonic() - start
            best = took if best is None else min(best, took)
        return best

    def initial_and_incremental(self, n, label):
        table = "audience_%s" % label
        sync = "bench_%s" % label
        self.make_audience(table, n)
        self.sql("SELECT iterable_audience.create_sync(%s, 'bench', %s, new_list_name => %s, user_id_column => 'user_id', "
                 "email_column => 'email', retain_sync_logs => true)", (sync, table, sync))
        emulator_before = proc_cpu_seconds(self.emulator.proc.pid)
        run, took = self.run(sync)
        emulator_cpu = proc_cpu_seconds(self.emulator.proc.pid) - emulator_before
        assert run["status"] == "succeeded", run
        cpu, rss, phases = worker_usage(self.cluster, run["run_id"])
        floor = self.copy_floor(table)
        self.rows.append(("initial sync %s rows: rows/s end to end" % label, "%.0f" % (n / took), ">= 100000"))
        self.rows.append(("initial sync %s rows: worker CPU s per 1M rows" % label,
                          "%.2f (COPY floor %.2f; ratio %.2f)" % (cpu * 1e6 / n, floor * 1e6 / n, cpu / floor),
                          "<= 3x floor"))
        self.rows.append(("initial sync %s rows: peak memory of the run's worker" % label,
                          self.memory_text(rss), "< 128 MB, flat 1M -> 10M"))
        self.phase_note("initial %s" % label, phases)
        # The emulator runs on the same cores: its CPU is taken from what the run could have used.
        self.rows.append(("  emulator CPU during initial %s (same %d cores)" % (label, os.cpu_count()),
                          "%.2f s (%.0f%% of the run's %.2f s)" % (emulator_cpu, 100 * emulator_cpu / took, took), ""))

        # 1% churn: half of it updates (email changes), a quarter deletes, a quarter inserts.
        churn = max(4, n // 100)
        self.sql("UPDATE %s SET email = 'changed' || id || '@example.com' WHERE id %% 200 = 0" % table)
        self.sql("DELETE FROM %s WHERE id %% 400 = 1" % table)
        self.sql("INSERT INTO %s SELECT %d + g, 'new' || g || '@example.com', 'n' || g, 'free' "
                 "FROM generate_series(1, %d) g" % (table, n, churn // 4))
        self.sql("VACUUM ANALYZE %s" % table)
        run, took = self.run(sync)
        assert run["status"] == "succeeded", run
        cpu, rss, phases = worker_usage(self.cluster, run["run_id"])
        snapshot = scalar(self.conn, "SELECT snapshot_table FROM iterable_audience.sync_runs WHERE run_id = %s",
                          (run["run_id"] - 1,))
        bare = self.bare_join_seconds(table, snapshot)
        plan = phases.get("plan")  # includes "stage": reading the audience and checking its identifiers
        self.rows.append(("incremental 1%% churn on %s: plan/diff vs bare FULL OUTER JOIN" % label,
                          "%.2f s vs %.2f s (ratio %s)" % (plan or float("nan"), bare,
                                                          "%.2f" % (plan / bare) if plan else "n/a"),
                          "<= 1.5x"))
        if rss:
            self.rows.append(("incremental 1%% churn on %s: peak memory of the run's worker" % label,
                              self.memory_text(rss), "< 128 MB, flat 1M -> 10M"))
        self.rows.append(("incremental 1%% churn on %s: whole run" % label,
                          "%.2f s, %d subscribes + %d unsubscribes" % (took, run["subscribed"], run["unsubscribed"]), ""))
        self.phase_note("incremental %s" % label, phases)

        run, took = self.run(sync)
        self.rows.append(("idle run on %s rows (unchanged audience)" % label,
                          "%d requests, %.2f s" % (run["api_requests"], took), "0 requests"))

    def memory_text(self, rss):
        return ("%.0f MB private (RssAnon, sampled every 10 ms); %.0f MB RSS incl. shared buffers touched"
                % (self.sampled_peak_kb / 1024, rss[0] / 1024))

    def phase_note(self, what, phases):
        if phases:
            self.rows.append(("  phases of %s" % what, ", ".join("%s %.2f s" % kv for kv in phases.items()), ""))

    def rate_limit(self, n):
        table = "audience_rl"
        self.make_audience(table, n)
        self.emulator.set_faults({"latency_ms": 100,
                                  "rate_limits": [{"endpoint": ["subscribe", "unsubscribe"], "rate": 20, "burst": 20}]})
        self.sql("SELECT iterable_audience.create_sync('bench_rl', 'bench', %s, new_list_name => 'rl', "
                 "user_id_column => 'user_id')", (table,))
        self.sql("SET iterable_audience.batch_size = 100")
        run, took = self.run("bench_rl")
        self.sql("RESET iterable_audience.batch_size")
        self.emulator.clear_faults()
        cpu, rss, phases = worker_usage(self.cluster, run["run_id"])
        send = phases.get("send", took)
        requests = run["api_requests"] - 1  # the preflight GET /api/lists is not rate limited
        accepted = requests - run["rate_limited"]
        self.rows.append(("rate limit 20 req/s + 100 ms latency: used share of the limit",
                          "%.0f%% (%d accepted requests in %.1f s)" % (100 * accepted / send / 20, accepted, send),
                          ">= 95%"))
        self.rows.append(("rate limit: share of requests answered 429",
                          "%.1f%% (%d of %d)" % (100 * run["rate_limited"] / max(1, requests), run["rate_limited"],
                                                 requests), "< 2%"))
        self.rows.append(("rate limit: run status", "%s, %d subscribed, %d failed" % (run["status"], run["subscribed"],
                                                                                       run["failed"]), ""))


def render(args, info, rows, emulator_line):
    out = []
    out.append("# Benchmark results\n")
    out.append("- date: %s" % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"))
    out.append("- machine: %d cores (`nproc`), %.1f GiB memory, %s" % (info["nproc"], info["memory_gib"], info["cpu"]))
    out.append("- command: `%s`" % " ".join(["bench/run_bench.py"] + sys.argv[1:]))
    out.append("- commit: %s" % subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                               capture_output=True, text=True).stdout.strip())
    out.append("- PostgreSQL: %s; emulator on loopback, no latency unless stated\n" %
               subprocess.check_output(["pg_config", "--version"], text=True).strip())
    out.append("| figure | measured | target |")
    out.append("|---|---|---|")
    for name, value, target in rows:
        out.append("| %s | %s | %s |" % (name, value, target))
    if emulator_line:
        out.append("\nEmulator ceiling (bench/emulator_ceiling.py --seconds 10): %s" % emulator_line)
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--large", action="store_true", help="also 10M rows")
    parser.add_argument("--quick", action="store_true", help="small sizes; do not write RESULTS.md")
    parser.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args()
    rows_n = 10_000 if args.quick else args.rows

    info = machine()
    bench = Bench(args)
    try:
        bench.initial_and_incremental(rows_n, "%dk" % (rows_n // 1000) if rows_n < 1_000_000 else "%dM" % (rows_n // 1_000_000))
        if args.large:
            bench.initial_and_incremental(10_000_000, "10M")
        bench.rate_limit(3_000 if args.quick else 60_000)
    finally:
        bench.close()

    emulator_line = ""
    if not args.quick:
        res = subprocess.run([sys.executable, os.path.join(HERE, "emulator_ceiling.py"), "--seconds", "10"],
                             capture_output=True, text=True)
        lines = [l.strip() for l in res.stdout.splitlines() if "subscribers/second" in l or "requests/second" in l]
        emulator_line = "; ".join(lines) if lines else res.stderr.strip()[-300:]

    text = render(args, info, bench.rows, emulator_line)
    print(text)
    if not args.quick:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
