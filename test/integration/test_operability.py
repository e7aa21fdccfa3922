"""Operability (issue 19): sync_health (overdue, consecutive failures), NOTIFY alerts per status and
under 8000 bytes, sync_progress during a slowed run, run_sync's progress NOTICEs, the README's
webhook forwarder, META.json, and the demo's output."""

import datetime
import http.server
import json
import math
import os
import re
import select
import subprocess
import sys
import threading
import time

import psycopg2
import pytest

from harness import ROOT, query, scalar
from sync_helpers import BackgroundRun, run_sync, sql, tag, wait_for

PAYLOAD_KEYS = {"sync_name", "run_id", "kind", "status", "failed", "error"}


def daily_schedule_far_from_now():
    """'every 24 hours starting HH:MM' with its due times about 12 h from now: no scheduler (one that
    serves every database included) runs it during the test."""
    anchor = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=12)
    return "every 24 hours starting %02d:%02d" % (anchor.hour, anchor.minute)


def make_people(db, rows, table="people"):
    t = tag(db)
    sql(db, "CREATE TABLE %s (uid text PRIMARY KEY, email text)" % table)
    sql(db, "INSERT INTO " + table + " SELECT %s || '-u' || g, %s || '.' || g || '@example.com' "
            "FROM generate_series(1, %s) g", (t, t, rows))
    return t


def make_sync(db, name, source="people", **extra):
    args = {"email_column": "email", "user_id_column": "uid"}
    args.update(extra)
    named = ", ".join("%s => %%(%s)s" % (k, k) for k in args)
    sql(db, "SELECT iterable_audience.create_sync(%%(name)s, 'hybrid', %%(source)s, new_list_name => %%(name)s, %s)"
        % named, dict(args, name=name, source=source))


def make_broken_sync(db, emulator, name, **extra):
    """A sync of account 'broken', whose key Iterable refuses from now on (every run fails)."""
    if not scalar(db, "SELECT count(*) FROM iterable_audience.accounts WHERE account_name = 'broken'"):
        sql(db, "SELECT iterable_audience.create_account('broken', 'test-key-hybrid', base_url => %s)",
            (emulator.url,))
    sql(db, "SELECT iterable_audience.alter_account('broken', api_key => 'test-key-hybrid')")
    args = {"email_column": "email"}
    args.update(extra)
    named = ", ".join("%s => %%(%s)s" % (k, k) for k in args)
    sql(db, "SELECT iterable_audience.create_sync(%%(name)s, 'broken', 'people', new_list_name => %%(name)s, %s)"
        % named, dict(args, name=name))
    sql(db, "SELECT iterable_audience.alter_account('broken', api_key => 'not-a-key')")


def health(db, name):
    return query(db, "SELECT * FROM iterable_audience.sync_health WHERE sync_name = %s", (name,))[0]


def slow_subscribes(emulator, ms):
    emulator.set_faults({"rules": [{"kind": "latency", "endpoint": "subscribe", "ms": ms}]})


# ---------------------------------------------------------------------------------------------- health

def test_next_due_time_intervals_cron_and_manual(db):
    due = lambda *args: scalar(db, "SELECT iterable_audience.next_due_time(%s, %s::timestamptz, %s)", args)
    utc = datetime.timezone.utc
    assert due("every 24 hours starting 10:00", "2026-01-01 09:00+00", 1) == datetime.datetime(2026, 1, 1, 10, tzinfo=utc)
    assert due("every 24 hours starting 10:00", "2026-01-01 09:00+00", 2) == datetime.datetime(2026, 1, 2, 10, tzinfo=utc)
    # strictly after: a due time equal to the instant is not it; fractions of a second count
    assert due("*/5 * * * *", "2026-01-01 10:05:00+00", 1) == datetime.datetime(2026, 1, 1, 10, 10, tzinfo=utc)
    assert due("*/5 * * * *", "2026-01-01 10:04:59.5+00", 1) == datetime.datetime(2026, 1, 1, 10, 5, tzinfo=utc)
    assert due("0 9 * * MON-FRI", "2026-01-02 09:00+00", 2) == datetime.datetime(2026, 1, 6, 9, tzinfo=utc)  # Fri -> Tue
    assert due("manual", "2026-01-01 09:00+00", 1) is None
    with pytest.raises(psycopg2.errors.InvalidParameterValue):
        due("every 0 minutes", "2026-01-01 09:00+00", 1)


def test_health_counts_failures_since_the_last_success(db, emulator):
    make_people(db, 20)
    make_sync(db, "h", schedule=daily_schedule_far_from_now())
    first = run_sync(db, "h")
    h = health(db, "h")
    assert h["kind"] == "list" and h["paused"] is False
    assert (h["last_run_status"], h["last_success_at"], h["consecutive_failures"], h["overdue"]) == \
        ("succeeded", first["finished_at"], 0, False)
    assert h["last_run_finished_at"] == first["finished_at"] and h["failed_records_last_run"] == 0

    sql(db, "ALTER TABLE people RENAME TO people_gone")  # the source cannot be read: failed
    for _ in range(2):
        assert run_sync(db, "h")["status"] == "failed"
    sql(db, "ALTER TABLE people_gone RENAME TO people")
    sql(db, "DELETE FROM people WHERE uid NOT LIKE '%%-u1'")  # 19 of 20 leave: the removal guard blocks
    blocked = run_sync(db, "h")
    assert blocked["status"] == "blocked"
    h = health(db, "h")
    assert (h["last_run_status"], h["last_run_finished_at"], h["consecutive_failures"]) == \
        ("blocked", blocked["finished_at"], 3)
    assert h["last_success_at"] == first["finished_at"]

    sql(db, "INSERT INTO people VALUES (' bad-1', 'not-an-email')")
    forced = run_sync(db, "h", force=True)
    assert forced["status"] == "succeeded_with_failures" and forced["failed"] == 1
    h = health(db, "h")
    assert (h["last_run_status"], h["last_success_at"], h["consecutive_failures"], h["failed_records_last_run"]) == \
        ("succeeded_with_failures", forced["finished_at"], 0, 1)


def test_overdue_after_two_due_times_without_success(db, emulator):
    make_people(db, 5)
    schedule = daily_schedule_far_from_now()
    make_sync(db, "od", schedule=schedule)
    run = run_sync(db, "od")
    assert health(db, "od")["overdue"] is False
    # The next due time D1 is ~12 h away; D1 - 48 h is the due time before the last one.
    d1 = scalar(db, "SELECT iterable_audience.next_due_time(%s)", (schedule,))
    d_minus_1 = d1 - datetime.timedelta(hours=48)

    def success_at(t):
        sql(db, "UPDATE iterable_audience.sync_runs SET started_at = %s, finished_at = %s WHERE run_id = %s",
            (t, t, run["run_id"]))
        sql(db, "UPDATE iterable_audience.sync SET created_at = %s, updated_at = %s WHERE sync_name = 'od'",
            (t - datetime.timedelta(days=1), t - datetime.timedelta(days=1)))

    # Succeeded just after D-1: its second due time since is D1, still ahead.
    success_at(d_minus_1 + datetime.timedelta(minutes=1))
    assert health(db, "od")["overdue"] is False
    # Succeeded just before D-1: D-1 and D0 (~12 h ago) came and went without a success.
    success_at(d_minus_1 - datetime.timedelta(minutes=1))
    h = health(db, "od")
    assert h["overdue"] is True and h["last_success_at"] == d_minus_1 - datetime.timedelta(minutes=1)
    # A paused sync is not expected to run; resuming it (a change) gives it two due times again.
    sql(db, "SELECT iterable_audience.pause_sync('od')")
    assert health(db, "od")["overdue"] is False
    sql(db, "SELECT iterable_audience.resume_sync('od')")
    assert health(db, "od")["overdue"] is False
    # A manual sync is never overdue.
    make_sync(db, "od_manual")
    sql(db, "UPDATE iterable_audience.sync SET created_at = now() - interval '30 days', "
            "updated_at = now() - interval '30 days' WHERE sync_name = 'od_manual'")
    assert health(db, "od_manual")["overdue"] is False


def test_a_sync_that_never_succeeds_becomes_overdue(db, emulator):
    make_people(db, 5)
    make_broken_sync(db, emulator, "nv", schedule=daily_schedule_far_from_now())
    for _ in range(3):
        assert run_sync(db, "nv")["status"] == "failed"
    h = health(db, "nv")
    assert (h["last_success_at"], h["consecutive_failures"], h["overdue"]) == (None, 3, False)
    sql(db, "UPDATE iterable_audience.sync SET created_at = now() - interval '3 days', "
            "updated_at = now() - interval '3 days' WHERE sync_name = 'nv'")
    assert health(db, "nv")["overdue"] is True


def test_health_follows_the_row_level_rules_of_syncs(db, emulator, cluster):
    make_people(db, 3)
    make_sync(db, "admins")
    sql(db, "CREATE ROLE health_reader LOGIN")
    sql(db, "GRANT USAGE ON SCHEMA iterable_audience TO health_reader")
    sql(db, "SELECT iterable_audience.grant_account_usage('hybrid', 'health_reader')")
    sql(db, "GRANT SELECT ON people TO health_reader")
    reader = cluster.connect(dbname=scalar(db, "SELECT current_database()"), user="health_reader")
    try:
        sql(reader, "SELECT iterable_audience.create_sync('readers', 'hybrid', 'people', new_list_name => 'r', "
                    "email_column => 'email')")
        run_sync(reader, "readers")
        assert [r["sync_name"] for r in query(reader, "SELECT * FROM iterable_audience.sync_health")] == ["readers"]
        assert {r["sync_name"] for r in query(db, "SELECT * FROM iterable_audience.sync_health")} == {"admins", "readers"}
    finally:
        reader.close()
        sql(db, "DROP OWNED BY health_reader CASCADE")
        sql(db, "DROP ROLE health_reader")


# ---------------------------------------------------------------------------------------------- alerts

class Listener:
    """LISTEN iterable_audience on a connection of its own."""

    def __init__(self, cluster, db):
        self.conn = cluster.connect(dbname=scalar(db, "SELECT current_database()"))
        sql(self.conn, "LISTEN iterable_audience")

    def take(self, count, timeout=30.0):
        deadline = time.monotonic() + timeout
        while len(self.conn.notifies) < count and time.monotonic() < deadline:
            select.select([self.conn], [], [], 0.2)
            self.conn.poll()
        got = [n.payload for n in self.conn.notifies]
        assert len(got) >= count, got
        self.conn.notifies.clear()
        return got

    def close(self):
        self.conn.close()


def check_payload(db, payload):
    assert len(payload.encode()) < 8000
    assert "test-key" not in payload and "not-a-key" not in payload  # no API key
    p = json.loads(payload)
    assert set(p) == PAYLOAD_KEYS, p
    row = query(db, "SELECT * FROM iterable_audience.sync_runs WHERE run_id = %s", (p["run_id"],))[0]
    assert (p["sync_name"], p["kind"], p["status"], p["failed"]) == (row["sync_name"], "list", row["status"], row["failed"])
    return p, row


def test_every_finished_run_notifies_with_its_status(db, emulator, cluster):
    make_people(db, 20)
    make_sync(db, "n")
    make_broken_sync(db, emulator, "n_bad")
    listener = Listener(cluster, db)
    try:
        runs = [run_sync(db, "n")]                                       # succeeded
        sql(db, "INSERT INTO people VALUES (' bad-1', 'not-an-email')")
        runs.append(run_sync(db, "n"))                                   # succeeded_with_failures
        runs.append(run_sync(db, "n_bad"))                               # failed (401)
        sql(db, "DELETE FROM people WHERE uid NOT LIKE '%%-u1'")
        runs.append(run_sync(db, "n"))                                   # blocked
        assert [r["status"] for r in runs] == ["succeeded", "succeeded_with_failures", "failed", "blocked"]
        payloads = listener.take(4)
        assert len(payloads) == 4, payloads  # one per run, none while running
        for run, payload in zip(runs, payloads):
            p, row = check_payload(db, payload)
            assert p["run_id"] == run["run_id"] and p["error"] == row["error"]
        assert json.loads(payloads[0])["error"] is None and json.loads(payloads[1])["failed"] == 1
        assert "BadApiKey" in json.loads(payloads[2])["error"]
        assert "removal guard" in json.loads(payloads[3])["error"]
        # A run left 'running' (a crash) is notified when the next run settles it, then that run.
        stale = scalar(db, "INSERT INTO iterable_audience.sync_runs (sync_id, sync_name, trigger, status) "
                           "SELECT sync_id, sync_name, 'manual', 'running' FROM iterable_audience.sync "
                           "WHERE sync_name = 'n' RETURNING run_id")
        time.sleep(0.5)
        listener.conn.poll()
        assert listener.conn.notifies == []  # nothing for a run that starts
        run_sync(db, "n", force=True)
        settled = [json.loads(p) for p in listener.take(2)]
        assert [(p["run_id"], p["status"]) for p in settled][0] == (stale, "failed")
        assert settled[0]["error"].startswith("interrupted")
        assert settled[1]["status"] == "succeeded"
    finally:
        listener.close()


def test_a_run_recorded_already_finished_notifies_but_not_restored_history(db, emulator, cluster):
    make_people(db, 3)
    make_sync(db, "ins")
    listener = Listener(cluster, db)
    try:
        # As the scheduler records a run whose worker could not start (src/scheduler/pass.cpp) ...
        unstarted = scalar(db, "INSERT INTO iterable_audience.sync_runs (sync_id, sync_name, trigger, status, "
                               "finished_at, error) SELECT sync_id, sync_name, 'schedule', 'failed', clock_timestamp(), "
                               "'the scheduler could not start the run: no worker slot' FROM iterable_audience.sync "
                               "WHERE sync_name = 'ins' RETURNING run_id")
        p, _ = check_payload(db, listener.take(1)[0])
        assert (p["run_id"], p["status"], p["error"]) == \
            (unstarted, "failed", "the scheduler could not start the run: no worker slot")
        # ... but rows of an earlier time, as pg_restore loads them, send nothing.
        sql(db, "INSERT INTO iterable_audience.sync_runs (sync_id, sync_name, trigger, status, started_at, "
                "finished_at) SELECT sync_id, sync_name, 'manual', 'succeeded', now() - interval '1 day', "
                "now() - interval '1 day' FROM iterable_audience.sync WHERE sync_name = 'ins'")
        time.sleep(0.5)
        listener.conn.poll()
        assert listener.conn.notifies == []
    finally:
        listener.close()


def test_an_interrupted_run_notifies(db, emulator, cluster):
    make_people(db, 40)
    make_sync(db, "cancelled")
    listener = Listener(cluster, db)
    slow_subscribes(emulator, 3000)
    background = BackgroundRun(cluster, scalar(db, "SELECT current_database()"), "cancelled",
                               batch_size=10, max_requests_in_flight=1)
    try:
        wait_for(lambda: scalar(db, "SELECT phase FROM iterable_audience.sync_progress") == "sending",
                 timeout=60, what="the run to send")
        sql(db, "SELECT pg_cancel_backend(%s)", (background.pid,))
        assert background.join(60)
        p, row = check_payload(db, listener.take(1)[0])
        assert p["status"] == "failed" and p["error"].startswith("interrupted") and row["phase"] == "sending"
    finally:
        emulator.clear_faults()
        background.close()
        listener.close()


def test_payload_stays_under_8000_bytes_whatever_the_error(db, emulator, cluster):
    make_people(db, 3)
    # A source whose reading fails with an error of ~100 kB: multibyte characters and control
    # characters (6 bytes each once escaped in JSON).
    sql(db, "CREATE FUNCTION explode() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION '%', repeat(E'\u00e9\u20ac\\x01\U0001F600', 10000); END $$")
    make_sync(db, "huge", source="SELECT uid, email FROM people WHERE explode()")
    listener = Listener(cluster, db)
    try:
        run = run_sync(db, "huge")
        assert run["status"] == "failed" and len(run["error"].encode()) > 100000
        raw = listener.take(1)[0]
        p, _ = check_payload(db, raw)
        size = len(raw.encode())
        assert 7900 < size < 8000, size  # as much of the error as fits
        assert p["error"].endswith("...") and run["error"].startswith(p["error"][:-3])
    finally:
        listener.close()


# ---------------------------------------------------------------------------------------------- progress

def test_progress_rows_while_a_slowed_run_sends(db, emulator, cluster):
    make_people(db, 60)
    sql(db, "INSERT INTO people VALUES (' bad-1', 'not-an-email')")
    make_sync(db, "slow")
    slow_subscribes(emulator, 700)
    samples = []
    background = BackgroundRun(cluster, scalar(db, "SELECT current_database()"), "slow",
                               batch_size=10, max_requests_in_flight=1)
    try:
        while not background.join(0.1):
            samples.extend(query(db, "SELECT * FROM iterable_audience.sync_progress"))
        assert background.error is None, background.error
    finally:
        emulator.clear_faults()
        background.close()
    run = background.result
    assert run["status"] == "succeeded_with_failures"
    assert samples and {s["run_id"] for s in samples} == {run["run_id"]}
    assert all(s["sync_name"] == "slow" and s["kind"] == "list" for s in samples)
    sending = [s for s in samples if s["phase"] == "sending"]
    assert sending, samples
    assert all(s["records_planned"] == 61 for s in sending)  # 60 to send, 1 refused
    done = [s["records_done"] for s in sending]
    assert done == sorted(done) and len(set(done)) >= 3, done  # updated as batches are answered
    assert any(0 < d < 61 for d in done), done
    assert all(s["api_requests"] >= 1 and s["rate_limited"] == 0 for s in sending)
    assert all(s["started_at"] == run["started_at"] for s in samples)
    assert query(db, "SELECT * FROM iterable_audience.sync_progress") == []
    row = query(db, "SELECT phase, records_planned FROM iterable_audience.sync_runs WHERE run_id = %s",
                (run["run_id"],))[0]
    assert row == {"phase": "finishing", "records_planned": 61}


def test_progress_counts_rate_limited_answers(db, emulator, cluster):
    make_people(db, 30)
    make_sync(db, "limited")
    emulator.set_faults({"rules": [{"kind": "rate_limit", "endpoint": "subscribe", "next": 2},
                                   {"kind": "latency", "endpoint": "subscribe", "ms": 700}]})
    seen = []
    background = BackgroundRun(cluster, scalar(db, "SELECT current_database()"), "limited",
                               batch_size=10, max_requests_in_flight=1)
    try:
        while not background.join(0.1):
            seen.extend(r["rate_limited"] for r in query(db, "SELECT rate_limited FROM iterable_audience.sync_progress"))
    finally:
        emulator.clear_faults()
        background.close()
    assert background.result["status"] == "succeeded" and background.result["rate_limited"] == 2
    assert 2 in seen, seen  # shown while the run still sends


def progress_notices(conn):
    return [n.strip() for n in conn.notices if '", run ' in n]


def timed_run(conn, name):
    del conn.notices[:]
    start = time.monotonic()
    run = run_sync(conn, name)
    return run, time.monotonic() - start


def test_run_sync_raises_a_progress_notice_every_5_seconds(db, emulator):
    make_people(db, 12)
    make_sync(db, "noisy")
    sql(db, "SET iterable_audience.batch_size = 1")
    sql(db, "SET iterable_audience.max_requests_in_flight = 1")
    slow_subscribes(emulator, 1000)  # ~12 s
    run, elapsed = timed_run(db, "noisy")
    notices = progress_notices(db)
    assert run["status"] == "succeeded" and elapsed >= 12
    # one at 5 s, one at 10 s (more only if the loaded machine made the run slower than 15 s)
    assert 2 <= len(notices) <= math.floor(elapsed / 5), (elapsed, notices)
    done = []
    for n in notices:
        m = re.search(r'sync "noisy", run %d, \d+ s in: sending, (\d+) of 12 records done \((\d+)%%\), '
                      r'about \d+ (s|min) left' % run["run_id"], n)
        assert m, n
        done.append(int(m.group(1)))
        assert int(m.group(2)) == round(100 * int(m.group(1)) / 12)
    assert done == sorted(done) and 0 < done[0] < 12

    # client_min_messages silences them as any NOTICE
    sql(db, "INSERT INTO people SELECT 'more-' || g, 'more' || g || '@example.com' FROM generate_series(1, 8) g")
    sql(db, "SET client_min_messages = warning")
    run, elapsed = timed_run(db, "noisy")
    assert run["planned_subscribes"] == 8 and elapsed >= 5
    assert progress_notices(db) == []
    sql(db, "RESET client_min_messages")

    # a run that ends within 5 s raises none
    emulator.clear_faults()
    sql(db, "INSERT INTO people VALUES ('fast-1', 'fast1@example.com')")
    run, elapsed = timed_run(db, "noisy")
    assert run["subscribed"] == 1
    if elapsed < 5:  # (on a machine loaded enough to make it slower, the cadence above applies)
        assert progress_notices(db) == []


# ---------------------------------------------------------------------------------------------- webhook

FORWARDER = os.path.join(ROOT, "scripts", "forward-failures.py")


def test_readme_shows_the_forwarder_script_as_shipped():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    with open(FORWARDER) as f:
        script = f.read()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert script in blocks
    assert len(script.strip().splitlines()) <= 20


def test_forwarder_posts_failed_runs_to_a_webhook(db, emulator, cluster):
    received = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers.get("Content-Type"), json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dbname = scalar(db, "SELECT current_database()")
    make_people(db, 5)
    make_sync(db, "ok")
    make_broken_sync(db, emulator, "bad")
    dsn = "host=%s port=%d dbname=%s user=postgres" % (cluster.dir, cluster.port, dbname)
    url = "http://127.0.0.1:%d/hook" % server.server_address[1]
    proc = subprocess.Popen([sys.executable, FORWARDER, dsn, url], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: scalar(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                    "AND query = 'LISTEN iterable_audience'", (dbname,)),
                 timeout=30, what="the forwarder to listen")
        bad1 = run_sync(db, "bad")
        good = run_sync(db, "ok")
        bad2 = run_sync(db, "bad")
        assert (bad1["status"], good["status"], bad2["status"]) == ("failed", "succeeded", "failed")
        wait_for(lambda: len(received) >= 2, timeout=30, what="two webhook calls")
        time.sleep(0.5)
        assert [r[2]["run_id"] for r in received] == [bad1["run_id"], bad2["run_id"]]
        for path, ctype, body in received:
            assert path == "/hook" and ctype == "application/json"
            assert set(body) == PAYLOAD_KEYS and body["status"] == "failed" and "BadApiKey" in body["error"]
    finally:
        proc.terminate()
        proc.wait(10)
        server.shutdown()


# ---------------------------------------------------------------------------------------------- first run

def test_meta_json_follows_the_pgxn_meta_spec():
    with open(os.path.join(ROOT, "META.json")) as f:
        meta = json.load(f)
    with open(os.path.join(ROOT, "iterable_audience.control")) as f:
        control = f.read()
    version = re.search(r"default_version = '([^']+)'", control).group(1)
    semver = r"^\d+\.\d+\.\d+$"
    for key in ("name", "version", "abstract", "maintainer", "license", "provides", "meta-spec"):
        assert key in meta, key  # mandatory in spec 1.0.0
    assert meta["meta-spec"]["version"] == "1.0.0"
    assert re.match(r"^[^/\\\s]{2,}$", meta["name"])
    assert re.match(semver, meta["version"]) and meta["version"] == version
    assert meta["release_status"] in ("stable", "testing", "unstable")
    assert isinstance(meta["maintainer"], (str, list)) and meta["maintainer"]
    licenses = {"agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd", "gfdl_1_2",
                "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit", "mozilla_1_0", "mozilla_1_1",
                "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay", "sun", "zlib", "open_source", "restricted",
                "unrestricted", "unknown"}
    assert meta["license"] in licenses or isinstance(meta["license"], dict)
    extension = meta["provides"]["iterable_audience"]
    assert extension["version"] == version
    assert os.path.exists(os.path.join(ROOT, extension["file"])) and os.path.exists(os.path.join(ROOT, extension["docfile"]))
    assert set(extension) <= {"file", "version", "abstract", "docfile"}
    for tag_ in meta.get("tags", []):
        assert 2 <= len(tag_) <= 255 and not re.search(r"[/\\\x00-\x1f]", tag_)
    # a version range: comma-separated, each an operator and a semantic version (PostgreSQL 15 only)
    postgres = meta["prereqs"]["runtime"]["requires"]["PostgreSQL"]
    assert all(re.match(r"^(>=|<=|>|<|==|!=)? ?\d+\.\d+\.\d+$", part.strip()) for part in postgres.split(","))
    assert postgres.startswith(">= 15.0.0")


@pytest.mark.skipif(bool(os.environ.get("IA_PG_ENV")), reason="the demo starts a plain cluster")
def test_demo_output_has_no_error_line():
    env = dict(os.environ, IA_DEMO_SKIP_BUILD="1")
    out = subprocess.run([os.path.join(ROOT, "scripts", "demo.sh")], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=600)
    assert out.returncode == 0, out.stdout
    bad = [line for line in out.stdout.splitlines()
           if "ERROR" in line or "FATAL" in line or "unterminated" in line or line.startswith("psql:")]
    assert bad == [], bad
    assert "== 1. the extension, an account (the emulator's hybrid project) and its lists" in out.stdout
    assert "the list mirrors the audience" in out.stdout
