#!/usr/bin/env python3
"""Pacing bench (issue 18): the issue's three pacing rows against the emulator, on a temporary cluster.

    bench/pacing_bench.py                      # prints the table, draws bench/pacing.png
    bench/pacing_bench.py --chart /tmp/x.png   # elsewhere; --no-chart to skip it

The emulator holds a leaky bucket the client is not told about: 20 requests/s with a burst of 2 per API
key and endpoint, 100 ms latency on every request. Batches of 100 rows, so 1,000 rows are 10 requests.

  new account      one sync, 20 requests, an account that never ran       target >= 80% of the limit
  next run         another sync of the same account, 20 new requests      target >= 95%, no 429
  three at once    three more syncs of that account at once, 10 each      target >= 80%, < 5% answered 429
  (fresh, three)   the same on an account that never ran (not a target: nothing is known to pace by)

"Used" is accepted requests per second over the time the run was sending, as a share of the limit, in
two ways: over the run's send phase as the worker logs it (what a user waits for, database work
included; single runs only), and over the emulator's span from the first request's arrival to the last
answer. The run's retries use the default backoff (500 ms base), as in production.

The chart shows each row's allowed rate (iterable_audience.rate_controllers(), sampled every 20 ms),
the measured estimate of the bucket's rate, and each request as a tick: 200 below, 429 above.
It needs matplotlib: `apt-get install python3-matplotlib` (Debian); without it the table is printed and
the chart skipped. Benchmarks are not tests: nothing here asserts a figure.
"""

import argparse
import os
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))

from harness import Cluster, Emulator, query, scalar  # noqa: E402
from sync_helpers import BackgroundRun  # noqa: E402

LIMIT = 20
BURST = 2
LATENCY_MS = 100
BATCH = 100


class Sampler:
    """Samples the shared pacing slots of the database every 20 ms (bench clock: time.monotonic())."""

    def __init__(self, cluster, dbname):
        self.conn = cluster.connect(dbname=dbname)
        self.samples = []  # (t, account_id, endpoint, rate, estimate, accepted_rate)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop.is_set():
            t = time.monotonic()
            for s in query(self.conn, "SELECT account_id, endpoint, rate, estimate, accepted_rate "
                                      "FROM iterable_audience.rate_controllers()"):
                self.samples.append((t, s["account_id"], s["endpoint"], s["rate"], s["estimate"], s["accepted_rate"]))
            time.sleep(0.02)

    def close(self):
        self.stop.set()
        self.thread.join()
        self.conn.close()


class PacingBench:
    def __init__(self):
        self.cluster = Cluster(extra_conf={"log_min_messages": "log"})
        self.emulator = Emulator()
        self.conn = self.cluster.connect()
        self.dbname = "postgres"
        self.sql("CREATE EXTENSION iterable_audience")
        self.accounts = {}
        for name, key, ptype in (("pace", "test-key-email", "email"), ("fresh", "test-key-hybrid", "hybrid")):
            self.sql("SELECT iterable_audience.create_account(%s, %s, project_type => %s, base_url => %s)",
                     (name, key, ptype, self.emulator.url))
            self.accounts[name] = (scalar(self.conn, "SELECT account_id FROM iterable_audience.account "
                                                     "WHERE account_name = %s", (name,)), key)
        self.emulator.set_faults({"latency_ms": LATENCY_MS,
                                  "rate_limits": [{"endpoint": ["subscribe", "unsubscribe"], "rate": LIMIT,
                                                   "burst": BURST}]})
        # Emulator times are wall clock; the sampler's are monotonic.
        self.wall_minus_mono = time.time() - time.monotonic()
        self.sampler = Sampler(self.cluster, self.dbname)
        self.rows = []    # (figure, measured, target)
        self.panels = []  # (title, t0, t1, account_id, [(t, status)])

    def close(self):
        self.sampler.close()
        self.conn.close()
        self.cluster.destroy()
        self.emulator.stop()

    def sql(self, text, params=None):
        with self.conn.cursor() as cur:
            cur.execute(text, params)

    def make_sync(self, name, account, rows):
        self.sql("CREATE TABLE %s AS SELECT '%s.' || g || '@example.com' AS email FROM generate_series(1, %d) g"
                 % (name, name, rows))
        self.sql("SELECT iterable_audience.create_sync(%s, %s, %s, new_list_name => %s, email_column => 'email')",
                 (name, account, name, name))

    def last_seq(self):
        recent = self.emulator.state()["recent"]
        return max((r["seq"] for r in recent), default=0)

    def requests_since(self, seq, api_key):
        """(arrival, answered, status) of the subscribe requests with this key after seq, wall clock."""
        out = []
        for r in self.emulator.state()["recent"]:
            if r["seq"] > seq and r["endpoint"] == "subscribe" and r["api_key"] == api_key:
                out.append((r["time"] - r["duration_ms"] / 1000.0, r["time"], r["status"]))
        return out

    def send_seconds(self, run_id):
        m = re.search(r"iterable_audience: run %d phases: .*?send ([\d.]+) s" % run_id, self.cluster.server_log())
        return float(m.group(1)) if m else None

    def run_at_once(self, names):
        # The default retry backoff (500 ms base), not the short one of the tests.
        runs = [BackgroundRun(self.cluster, self.dbname, name, batch_size=BATCH, retry_base_delay_ms=500,
                              retry_max_delay_ms=30000) for name in names]
        try:
            for bg in runs:
                assert bg.join(300), "run_sync() did not return"
        finally:
            for bg in runs:
                bg.close()
        for bg in runs:
            assert bg.error is None, bg.error
            assert bg.result["status"] == "succeeded", bg.result
        return [bg.result for bg in runs]

    def row(self, label, account, names, target):
        account_id, api_key = self.accounts[account]
        seq = self.last_seq()
        t0 = time.monotonic()
        results = self.run_at_once(names)
        t1 = time.monotonic()
        reqs = self.requests_since(seq, api_key)
        accepted = sum(1 for r in reqs if r[2] == 200)
        limited = sum(1 for r in reqs if r[2] == 429)
        span = max(r[1] for r in reqs) - min(r[0] for r in reqs)
        used_emulator = accepted / span / LIMIT
        measured = "%.0f%% of the limit over the emulator's span (%d requests accepted in %.2f s)" % (
            100 * used_emulator, accepted, span)
        if len(results) == 1:
            send = self.send_seconds(results[0]["run_id"])
            if send:
                measured = "%.0f%% over the send phase (%.2f s); %s" % (100 * accepted / send / LIMIT, send, measured)
        measured += "; %d of %d requests answered 429 (%.1f%%)" % (limited, accepted + limited,
                                                                 100.0 * limited / max(1, accepted + limited))
        self.rows.append((label, measured, target))
        self.panels.append((label, t0, t1, account_id,
                            [(a - self.wall_minus_mono, s) for a, _, s in reqs]))
        learned = query(self.conn, "SELECT rate, burst FROM iterable_audience.learned_rate l JOIN "
                                   "iterable_audience.account a USING (account_id) WHERE a.account_name = %s", (account,))
        if learned:
            self.rows.append(("  remembered after it", "%.2f requests/s, burst %.0f" % (learned[0]["rate"],
                                                                                     learned[0]["burst"]), ""))

    def chart(self, path):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("(no chart: matplotlib is missing; apt-get install python3-matplotlib)")
            return
        fig, axes = plt.subplots(len(self.panels), 1, figsize=(9, 2.6 * len(self.panels)), squeeze=False)
        for ax, (label, t0, t1, account_id, reqs) in zip(axes[:, 0], self.panels):
            pts = [s for s in self.sampler.samples
                   if s[1] == account_id and s[2] == "/api/lists/subscribe" and t0 - 0.2 <= s[0] <= t1 + 0.2]
            xs = [s[0] - t0 for s in pts]
            ax.step(xs, [s[3] for s in pts], where="post", label="allowed rate")
            ax.plot(xs, [s[4] if s[4] is not None else float("nan") for s in pts], "--", label="estimate of the bucket")
            ax.axhline(LIMIT, color="grey", lw=0.8, ls=":", label="hidden limit (%d/s, burst %d)" % (LIMIT, BURST))
            ok = [a - t0 for a, s in reqs if s == 200]
            bad = [a - t0 for a, s in reqs if s == 429]
            ax.plot(ok, [1] * len(ok), "|", color="green", ms=8, label="request answered 200")
            ax.plot(bad, [LIMIT * 3.8] * len(bad), "|", color="red", ms=8, label="request answered 429")
            ax.set_ylim(0, LIMIT * 4)  # slow start may go above: cut off
            ax.set_title(label, fontsize=9)
            ax.set_ylabel("requests/s")
        axes[-1, 0].set_xlabel("seconds since the row started (its runs plan first, then send)")
        axes[0, 0].legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        print("chart: %s" % path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chart", default=os.path.join(HERE, "pacing.png"))
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args()
    b = PacingBench()
    try:
        for name in ("p_new", "p_next"):
            b.make_sync(name, "pace", 20 * BATCH)
        for name in ("p_three_a", "p_three_b", "p_three_c"):
            b.make_sync(name, "pace", 10 * BATCH)
        for name in ("f_three_a", "f_three_b", "f_three_c"):
            b.make_sync(name, "fresh", 10 * BATCH)
        b.row("short run, new account (20 requests)", "pace", ["p_new"], ">= 80%")
        b.row("next short run of the same account (20 requests)", "pace", ["p_next"], ">= 95%, no 429")
        b.row("three syncs of that account at once (10 requests each)", "pace",
              ["p_three_a", "p_three_b", "p_three_c"], ">= 80%, < 5% 429")
        b.row("(not a target) three syncs at once of an account that never ran", "fresh",
              ["f_three_a", "f_three_b", "f_three_c"], "")
        print("| figure | measured | target |")
        print("|---|---|---|")
        for name, value, target in b.rows:
            print("| %s | %s | %s |" % (name, value, target))
        if not args.no_chart:
            b.chart(args.chart)
    finally:
        b.close()


if __name__ == "__main__":
    main()
