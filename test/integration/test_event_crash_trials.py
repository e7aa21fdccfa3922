"""Crash trials of event syncs (as test_crash_trials.py does for a list sync and
test_user_crash_trials.py for a user sync), for each of create_event_sync's six kinds: track,
purchase, cart, device_token, browser_token and email_change. A run slowed down by emulator latency
on the kind's endpoint is ended mid-send by SIGKILL of its worker, SIGKILL of the backend waiting in
run_sync(), or an immediate restart of the server; rows are added before the run and after the
crash; then runs until one succeeds with nothing left to send. After it:
  * no run is left 'running', and a crashed run reads 'failed' with an interrupted/restarted error;
  * every source row is in Iterable exactly once: track events and purchases by their ids (one
    stored record per row, with the row's user and values; a resend replaced, so Iterable's count
    equals the row count whatever the per-id write counts), and for the kinds without an id the
    final state is the source's: each user's cart is its last row's, each device or browser token is
    registered once on its row's user, each email change was made once;
  * across all runs every row has exactly one 'succeeded' log row (its event id, or its cursor value
    for the kinds without an id), none failed, and every finished run's counters equal its log rows;
  * nothing is left in flight or to retry in the sent set, and a further run sends nothing (tracked 0
    and no request to the kind's endpoint).
Seeded and reproducible: IA_CRASH_SEED (default 20240601) fixes every random choice (the rows added,
the moment of each crash, which of the three crashes a trial uses); IA_CRASH_TRIALS (default 2) is
the number of trials per kind. One kind's trials run in order on one sync whose state carries over.
"""

import collections
import json
import os
import random
import time
import zlib

import pytest

from harness import query, scalar
from sync_helpers import BackgroundRun, KEYS, request_counts, run_sync, sql, wait_for, worker_pid
from test_crash_trials import connect_when_up

SEED = int(os.environ.get("IA_CRASH_SEED", "20240601"))
TRIALS = int(os.environ.get("IA_CRASH_TRIALS", "2"))
CRASHES = ("worker", "backend", "restart")
INITIAL_ROWS = 300
USERS = 40  # users per kind: carts (a state per user) see several rows of one user
DBNAME = "event_crash_trials"


class Kind:
    """One event kind: its source table, its sync's definition and how Iterable shows its rows."""

    def __init__(self, name, endpoint, account, columns, fields, latency_ms, settings, first_requests):
        self.name, self.endpoint, self.account = name, endpoint, account
        self.columns, self.fields = columns, fields
        self.latency_ms, self.settings, self.first_requests = latency_ms, settings, first_requests


SINGLE = dict(batch_size=10, max_requests_in_flight=2, max_attempts=2)
KINDS = [
    # trackBulk goes one request at a time (10/s): batches of 10 events.
    Kind("track", "track_bulk", "hybrid", "user_id text, event text, ts timestamptz DEFAULT now(), props jsonb",
         {"eventName": "event", "userId": "user_id", "createdAt": "ts", "dataFields": "props"},
         150, dict(batch_size=10, max_requests_in_flight=2, max_attempts=2), (1, 6)),
    # Purchases under a mapped id (track above derives its ids).
    Kind("purchase", "track_purchase", "hybrid",
         "pid text, user_id text, items jsonb, total numeric, ts timestamptz DEFAULT now()",
         {"id": "pid", "userId": "user_id", "items": "items", "total": "total", "createdAt": "ts"},
         30, SINGLE, (2, 50)),
    Kind("cart", "update_cart", "hybrid", "user_id text, items jsonb",
         {"userId": "user_id", "items": "items"}, 30, SINGLE, (2, 50)),
    Kind("device_token", "register_device_token", "hybrid", "user_id text, token text, platform text, app text",
         {"userId": "user_id", "token": "token", "platform": "platform", "applicationName": "app"},
         30, SINGLE, (2, 50)),
    Kind("browser_token", "register_browser_token", "hybrid", "user_id text, token text",
         {"userId": "user_id", "browserToken": "token"}, 30, SINGLE, (2, 50)),
    # users/updateEmail exists in email-based projects only (hybrid ones change it with users/update).
    Kind("email_change", "update_email", "email", "old_email text, new_email text",
         {"currentEmail": "old_email", "newEmail": "new_email"}, 30, SINGLE, (2, 50)),
]
PLATFORMS = ("APNS", "GCM", "APNS_SANDBOX")


def kind_rng(kind_index, trial):
    """The trial's own random sequence: the seed mixed with a hash of the kind's index."""
    salt = zlib.crc32(b"event-kind-%d" % kind_index)
    return random.Random("%d-%d" % (SEED ^ salt, trial))


class EventTrials:
    """The database shared by every kind's trials, and each kind's table, sync and rows."""

    def __init__(self, cluster, emulator):
        self.cluster, self.emulator = cluster, emulator
        admin = cluster.connect()
        sql(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DBNAME)
        sql(admin, "CREATE DATABASE %s" % DBNAME)
        admin.close()
        # The emulator's users, events and tokens outlive a database: letters and digits only, so
        # that it can go into emails, user ids and event ids as it is.
        self.tag = "ect%d" % int(time.time() * 1000 % 1e9)
        self.next_id = {}
        conn = self.connect()
        sql(conn, "CREATE EXTENSION iterable_audience")
        for account in ("hybrid", "email"):
            sql(conn, "SELECT iterable_audience.create_account(%s, %s, project_type => %s, base_url => %s)",
                (account, KEYS[account], account, emulator.url))
        conn.close()

    def connect(self):
        return connect_when_up(self.cluster, DBNAME)

    def table(self, kind):
        return "ev_" + kind.name

    def user(self, kind, n):
        return "%s-%s-u%d" % (self.tag, kind.name.replace("_", ""), n % USERS)

    def old_email(self, n):
        return "%s.old%d@example.com" % (self.tag, n)

    def new_email(self, n):
        return "%s.new%d@example.com" % (self.tag, n)

    def setup(self, conn, kind):
        """The kind's table with its first rows, and its sync (nothing sent yet: trial 0 sends them)."""
        if kind.name in self.next_id:
            return
        self.next_id[kind.name] = 1
        sql(conn, "CREATE TABLE %s (id bigint PRIMARY KEY, %s)" % (self.table(kind), kind.columns))
        self.insert(conn, kind, INITIAL_ROWS)
        scalar(conn, "SELECT iterable_audience.create_event_sync(%s, %s, %s, 'id', kind => %s, fields => %s)",
               (kind.name, kind.account, self.table(kind), kind.name, json.dumps(kind.fields)))

    def insert(self, conn, kind, n):
        """n new rows, above every cursor value so far (ids handed out in commit order)."""
        if n <= 0:
            return
        first = self.next_id[kind.name]
        ids = list(range(first, first + n))
        self.next_id[kind.name] += n
        if kind.account == "email":
            users = [{"email": self.old_email(g)} for g in ids]
        else:
            users = [{"userId": self.user(kind, g)} for g in ids]
        result = self.emulator.call("POST", "/_emulator/users", {"api_key": KEYS[kind.account], "users": users})
        assert result["failed"] == [], result
        t, table = self.tag, self.table(kind)
        uid = "%s || '-' || %s || '-u' || (g %%%% %d)" % ("%(t)s", "%(k)s", USERS)
        params = {"t": t, "k": kind.name.replace("_", ""), "ids": ids, "platforms": list(PLATFORMS)}
        if kind.name == "track":
            sql(conn, "INSERT INTO " + table + " (id, user_id, event, props) SELECT g, " + uid +
                ", 'Clicked', jsonb_build_object('n', g) FROM unnest(%(ids)s::bigint[]) g", params)
        elif kind.name == "purchase":
            sql(conn, "INSERT INTO " + table + " (id, pid, user_id, items, total) SELECT g, %(t)s || '-p' || g, " +
                uid + ", jsonb_build_array(jsonb_build_object('id', 'sku' || g, 'name', 'Shoe', 'price', 2.5, "
                "'quantity', 1 + g %% 3)), 2.5 * (1 + g %% 3) FROM unnest(%(ids)s::bigint[]) g", params)
        elif kind.name == "cart":
            sql(conn, "INSERT INTO " + table + " (id, user_id, items) SELECT g, " + uid +
                ", jsonb_build_array(jsonb_build_object('id', 'sku' || g, 'name', 'Shoe', 'price', 1, "
                "'quantity', 1 + g %% 4)) FROM unnest(%(ids)s::bigint[]) g", params)
        elif kind.name == "device_token":
            sql(conn, "INSERT INTO " + table + " (id, user_id, token, platform, app) SELECT g, " + uid +
                ", %(t)s || '-dtok' || g, (%(platforms)s::text[])[1 + g %% 3], 'app' || (g %% 3) "
                "FROM unnest(%(ids)s::bigint[]) g", params)
        elif kind.name == "browser_token":
            sql(conn, "INSERT INTO " + table + " (id, user_id, token) SELECT g, " + uid +
                ", %(t)s || '-btok' || g FROM unnest(%(ids)s::bigint[]) g", params)
        else:
            sql(conn, "INSERT INTO " + table + " (id, old_email, new_email) SELECT g, %(t)s || '.old' || g || "
                "'@example.com', %(t)s || '.new' || g || '@example.com' FROM unnest(%(ids)s::bigint[]) g", params)

    def rows(self, conn, kind):
        return query(conn, "SELECT * FROM %s ORDER BY id" % self.table(kind))

    # ----- what Iterable holds ------------------------------------------------------------------
    def admin(self, route, kind):
        return self.emulator.call("GET", "/_emulator/%s?api_key=%s" % (route, KEYS[kind.account]))

    def expected_keys(self, kind, rows):
        """The record keys of the rows' sync_logs: the event id where the kind has one, else the cursor
        (track's ids are derived: they are the ids of the events Iterable stored for the rows)."""
        if kind.name == "track":
            return None
        if kind.name == "purchase":
            return {r["pid"] for r in rows}
        return {str(r["id"]) for r in rows}

    def check_iterable(self, kind, rows, seed_note):
        """Every row in Iterable exactly once (the kinds with ids), or Iterable in the rows' state.
        Returns (the ids of the stored events or purchases, the number of ids written more than once)."""
        t = self.tag
        if kind.name == "track":
            mine = {e["id"]: e for e in self.admin("events", kind)["events"]
                    if str(e.get("userId") or "").startswith(t + "-")}
            by_row = collections.Counter(e["dataFields"]["n"] for e in mine.values())
            assert len(mine) == len(rows) and by_row == collections.Counter(r["id"] for r in rows), \
                "%s: %d stored events for %d rows; rows stored twice or missing: %s" % (
                    seed_note, len(mine), len(rows),
                    sorted(set(by_row.items()) ^ {(r["id"], 1) for r in rows})[:20])
            for e in mine.values():
                row = rows[e["dataFields"]["n"] - 1]
                assert (e["userId"], e["eventName"]) == (row["user_id"], "Clicked"), (seed_note, e, row)
            writes = self.admin("writes", kind)["events"]
            return set(mine), sum(1 for i in mine if writes.get(i, 0) > 1)
        if kind.name == "purchase":
            mine = [p for p in self.admin("purchases", kind)["purchases"] if p["id"].startswith(t + "-p")]
            ids = collections.Counter(p["id"] for p in mine)
            assert ids == collections.Counter(r["pid"] for r in rows), \
                "%s: %d stored purchases for %d rows; differing ids: %s" % (
                    seed_note, len(mine), len(rows), sorted(set(ids) ^ {r["pid"] for r in rows})[:20])
            by_id = {r["pid"]: r for r in rows}
            for p in mine:
                row = by_id[p["id"]]
                assert (p["userId"], p["total"], [i["id"] for i in p["items"]]) == \
                    (row["user_id"], float(row["total"]), ["sku%d" % row["id"]]), (seed_note, p, row)
            return set(ids), sum(1 for p in mine if p["writes"] > 1)
        if kind.name == "cart":
            # updateCart replaces the whole cart: each user's cart is its last row's.
            carts = {c["userId"]: c for c in self.admin("carts", kind)["carts"]
                     if str(c.get("userId") or "").startswith(t + "-")}
            last = {}
            for r in rows:
                last[r["user_id"]] = r
            got = {u: [(i["id"], i["quantity"]) for i in c["items"]] for u, c in carts.items()}
            want = {u: [("sku%d" % r["id"], r["items"][0]["quantity"])] for u, r in last.items()}
            assert got == want, "%s: carts differ from each user's last row: %s" % (
                seed_note, {u: (got.get(u), want.get(u)) for u in set(got) | set(want)
                            if got.get(u) != want.get(u)})
            updates = [u for u in self.admin("carts", kind)["updates"]
                       if str(u.get("userId") or "").startswith(t + "-")]
            sent = {int(u["items"][0]["id"][3:]) for u in updates if u["items"]}
            assert sent >= {r["id"] for r in rows}, (seed_note, sorted({r["id"] for r in rows} - sent)[:20])
            return set(), len(updates) - len(rows)
        if kind.name == "device_token":
            devices = [d for d in self.admin("tokens", kind)["devices"] if d["token"].startswith(t + "-dtok")]
            got = collections.Counter((d["token"], d["userId"], d["platform"], d["applicationName"])
                                      for d in devices)
            want = collections.Counter((r["token"], r["user_id"], r["platform"], r["app"]) for r in rows)
            assert got == want, "%s: devices differ from the rows: %s" % (seed_note, sorted(set(got) ^ set(want))[:20])
            return set(), sum(1 for d in devices if d["registrations"] > 1)
        if kind.name == "browser_token":
            tokens = [b for b in self.admin("tokens", kind)["browserTokens"]
                      if b["browserToken"].startswith(t + "-btok")]
            got = collections.Counter((b["browserToken"], b["userId"]) for b in tokens)
            want = collections.Counter((r["token"], r["user_id"]) for r in rows)
            assert got == want, "%s: browser tokens differ from the rows: %s" % (
                seed_note, sorted(set(got) ^ set(want))[:20])
            return set(), sum(1 for b in tokens if b["registrations"] > 1)
        # email_change: each change made once, and the profiles carry the new emails, none the old.
        changes = [c for c in self.admin("email_changes", kind)["changes"] if c["newEmail"].startswith(t + ".new")]
        got = collections.Counter((c["oldEmail"], c["newEmail"]) for c in changes)
        want = collections.Counter((r["old_email"], r["new_email"]) for r in rows)
        assert got == want, "%s: email changes differ from the rows: %s" % (seed_note, sorted(set(got) ^ set(want))[:20])
        emails = {u["email"] for u in self.emulator.call("GET", "/_emulator/users?api_key=%s" % KEYS["email"])["users"]
                  if (u["email"] or "").startswith(t + ".")}
        assert emails == {r["new_email"] for r in rows}, "%s: profiles: %s" % (
            seed_note, sorted(emails ^ {r["new_email"] for r in rows})[:20])
        return set(), 0

    def drop(self):
        admin = connect_when_up(self.cluster, "postgres")
        sql(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % DBNAME)
        admin.close()


@pytest.fixture(scope="module")
def trials(cluster, emulator):
    t = EventTrials(cluster, emulator)
    yield t
    emulator.clear_faults()
    t.drop()


def endpoint_requests(emulator, kind):
    return request_counts(emulator)[kind.endpoint]


def check_logs(conn, kind, expected_keys, seed_note):
    """Each row logged succeeded exactly once over all runs, none failed; every finished run's
    counters equal its log rows."""
    logs = query(conn, "SELECT record_key, status, error_code, run_id FROM iterable_audience.sync_logs l "
                       "JOIN iterable_audience.sync s USING (sync_id) WHERE s.sync_name = %s", (kind.name,))
    failed = [r for r in logs if r["status"] != "succeeded"]
    assert failed == [], "%s: failed log rows: %s" % (seed_note, failed[:10])
    keys = collections.Counter(r["record_key"] for r in logs)
    twice = {k: n for k, n in keys.items() if n > 1}
    assert twice == {}, "%s: rows logged as sent more than once: %s" % (seed_note, dict(list(twice.items())[:10]))
    assert set(keys) == expected_keys, "%s: logged keys differ from the rows': %s" % (
        seed_note, sorted(set(keys) ^ expected_keys)[:20])
    for run in query(conn, "SELECT run_id, status, tracked, failed FROM iterable_audience.sync_runs "
                           "WHERE sync_name = %s AND status <> 'running'", (kind.name,)):
        counts = query(conn, "SELECT count(*) FILTER (WHERE status = 'succeeded') AS tracked, "
                             "count(*) FILTER (WHERE status = 'failed') AS failed FROM iterable_audience.sync_logs "
                             "WHERE run_id = %s", (run["run_id"],))[0]
        assert (run["tracked"], run["failed"]) == (counts["tracked"], counts["failed"]), (seed_note, run, counts)


CASES = [(k, trial) for k in range(len(KINDS)) for trial in range(TRIALS)]


@pytest.mark.parametrize("kind_index,trial", CASES,
                         ids=["%s-%d" % (KINDS[k].name, trial) for k, trial in CASES])
def test_event_sync_crash_trial(trials, cluster, emulator, kind_index, trial):
    kind = KINDS[kind_index]
    rng = kind_rng(kind_index, trial)
    crash = CRASHES[(kind_index + trial + SEED) % len(CRASHES)]
    after_requests = rng.randint(*kind.first_requests)
    delay = rng.uniform(0.0, 0.5)
    note = "IA_CRASH_SEED=%d kind %s trial %d (%s after %d requests + %.2f s)" % (
        SEED, kind.name, trial, crash, after_requests, delay)
    conn = trials.connect()
    try:
        trials.setup(conn, kind)
        if trial > 0:
            trials.insert(conn, kind, rng.randint(150, 250))
        before = scalar(conn, "SELECT coalesce(max(run_id), 0) FROM iterable_audience.sync_runs")
        requests_before = endpoint_requests(emulator, kind)
        emulator.set_faults({"rules": [{"kind": "latency", "endpoint": kind.endpoint, "ms": kind.latency_ms}]})
        bg = BackgroundRun(cluster, DBNAME, kind.name, **kind.settings)
        try:
            pid = wait_for(lambda: worker_pid(conn), timeout=30, interval=0.01, what="the run's worker")
            wait_for(lambda: endpoint_requests(emulator, kind) - requests_before >= after_requests or
                     worker_pid(conn) is None, timeout=60, interval=0.01, what="some rows sent")
            time.sleep(delay)
            crashed = worker_pid(conn) is not None  # else the run ended first: a trial without a crash
            sent_before_crash = endpoint_requests(emulator, kind) - requests_before
            if crashed:
                if crash in ("worker", "backend"):
                    try:
                        os.kill(pid if crash == "worker" else bg.pid, 9)
                    except ProcessLookupError:
                        crashed = False
                else:
                    cluster.pg_ctl("restart", "-m", "immediate")
            assert bg.join(90), "%s: run_sync() did not return" % note
        finally:
            bg.close()
        conn.close()
        emulator.clear_faults()
        conn = trials.connect()
        crashed_run = scalar(conn, "SELECT max(run_id) FROM iterable_audience.sync_runs WHERE run_id > %s", (before,))
        row = query(conn, "SELECT status, tracked, planned_events FROM iterable_audience.sync_runs "
                          "WHERE run_id = %s", (crashed_run,)) if crashed_run else []
        added_after = rng.randint(0, 30)
        trials.insert(conn, kind, added_after)

        statuses = []
        for _ in range(4):
            run = run_sync(conn, kind.name)
            statuses.append((run["status"], run["tracked"], run["failed"]))
            assert run["status"] == "succeeded", (note, run)
            if run["tracked"] == 0:
                break
        assert statuses[-1][1] == 0, (note, statuses)
        assert scalar(conn, "SELECT count(*) FROM iterable_audience.sync_runs WHERE status = 'running'") == 0, note
        if crashed and crashed_run is not None:
            settled = query(conn, "SELECT status, error, finished_at FROM iterable_audience.sync_runs "
                                  "WHERE run_id = %s", (crashed_run,))
            if settled:  # the run row itself may be lost with the last commits (synchronous_commit off)
                s = settled[0]
                assert s["status"] in ("failed", "succeeded"), (note, s)
                if s["status"] == "failed":
                    assert s["error"].startswith("interrupted") or s["error"] == "server restarted", (note, s)
                assert s["finished_at"] is not None, (note, s)

        rows = trials.rows(conn, kind)
        ids, rewritten = trials.check_iterable(kind, rows, note)
        expected = trials.expected_keys(kind, rows)
        check_logs(conn, kind, ids if expected is None else expected, note)
        left = scalar(conn, "SELECT count(*) FROM iterable_audience.event_sync_sent e JOIN iterable_audience.sync s "
                            "USING (sync_id) WHERE s.sync_name = %s AND e.state <> 'done'", (kind.name,))
        assert left == 0, "%s: %d rows left in flight or to retry" % (note, left)

        # Nothing left to send: no request at all to the kind's endpoint.
        requests = endpoint_requests(emulator, kind)
        again = run_sync(conn, kind.name)
        assert (again["status"], again["tracked"], again["failed"]) == ("succeeded", 0, 0), (note, again)
        assert again["planned_events"] in (None, 0), (note, again)
        assert endpoint_requests(emulator, kind) == requests, note
        print("%s: %s, %d requests before; run %s %s; then %d rows added; runs after: %s; %d rows in "
              "Iterable, %d written more than once" % (
                  note, "crashed" if crashed else "finished first", sent_before_crash, crashed_run,
                  dict(row[0]) if row else "(row lost)", added_after, statuses, len(rows), rewritten))
    finally:
        conn.close()
