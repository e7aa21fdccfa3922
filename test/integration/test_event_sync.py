"""Event syncs (create_event_sync): the rows of an append-only table past its cursor become Iterable
events, each exactly once (docs/event-syncs.md): first run sends every row, an idle run nothing, a
row committed late below rows already sent is still sent, a resend after a crash replaces, every
row one sync_logs row with Iterable's own reason, backfill in runs of max_events_per_run, preview.
"""

import collections
import json
import threading

import psycopg2
import pytest

from harness import query, scalar
from sync_helpers import KEYS, BackgroundRun, kill9, request_counts, run_sync, sql, tag, wait_for, worker_pid


def events_of(emulator, account, t):
    """{id: stored event} of the emulator's project whose userId or email carries the test's tag."""
    stored = emulator.call("GET", "/_emulator/events?api_key=%s" % KEYS[account])["events"]
    return {e["id"]: e for e in stored
            if t in str(e.get("userId") or "") + str(e.get("email") or "") + json.dumps(e.get("profile"))}


def make_tracks(db, t, n, table="tracks"):
    sql(db, "CREATE TABLE %s (id bigserial PRIMARY KEY, user_id text, event text, ts timestamptz DEFAULT now(), "
            "properties jsonb, plan text)" % table)
    add_tracks(db, t, 1, n, table)


def add_tracks(db, t, first, last, table="tracks"):
    sql(db, "INSERT INTO " + table + " (user_id, event, properties, plan) SELECT %s || '-u' || g, "
            "'Clicked', jsonb_build_object('n', g), 'pro' FROM generate_series(%s, %s) g", (t, first, last))


def create(db, name="tracks", source="tracks", cursor="id", **options):
    args = {"fields": json.dumps({"eventName": "event", "userId": "user_id", "createdAt": "ts",
                                  "dataFields": "properties"})}
    args.update(options)
    named = "".join(", %s => %%(%s)s" % (k, k) for k in args)
    return scalar(db, "SELECT iterable_audience.create_event_sync(%%(name)s, 'hybrid', %%(source)s, %%(cursor)s%s)"
                  % named, dict(args, name=name, source=source, cursor=cursor))


def logs(db, run_id):
    return query(db, "SELECT * FROM iterable_audience.sync_logs WHERE run_id = %s ORDER BY record_key", (run_id,))


def test_create_event_sync_errors_name_the_fix(db):
    t = tag(db)
    make_tracks(db, t, 1)
    sql(db, "CREATE TABLE texts (k text, user_id text, event text)")
    cases = [
        (dict(kind="pageview"), "unknown event sync kind"),
        (dict(fields=json.dumps({"eventName": "event", "userId": "user_id", "items": "properties"})),
         'field "items" is not valid for kind \'track\''),
        (dict(fields=json.dumps({"userId": "user_id"})), 'needs the field "eventName"'),
        (dict(kind="purchase", fields=json.dumps({"userId": "user_id", "items": "properties"})),
         'needs the field "total"'),
        (dict(kind="device_token", fields=json.dumps({"userId": "user_id", "token": "event"})),
         'needs the field "platform"'),
        (dict(kind="email_change", fields=json.dumps({"currentUserId": "user_id"})), 'needs the field "newEmail"'),
        (dict(cursor="nope"), 'cursor column "nope" does not exist'),
        (dict(cursor="event"), "cannot serve as a cursor"),
        (dict(fields=json.dumps({"eventName": "event", "userId": "missing"})), 'column "missing" (fields.userId)'),
    ]
    for options, message in cases:
        with pytest.raises(psycopg2.Error) as e:
            create(db, **options)
        db.rollback()
        assert message in str(e.value), (options, str(e.value))
        assert e.value.diag.message_hint or "needs the field" not in message
    # eventName may come from event_name instead of a column.
    sync_id = create(db, fields=json.dumps({"userId": "user_id"}), event_name="Fixed")
    info = query(db, "SELECT kind, event_kind, cursor_column, event_name, start_from FROM iterable_audience.syncs "
                     "WHERE sync_id = %s", (sync_id,))[0]
    assert info == {"kind": "events", "event_kind": "track", "cursor_column": "id", "event_name": "Fixed",
                    "start_from": "beginning"}


def test_first_run_sends_every_row_once_then_idle_run_sends_nothing(db, emulator):
    t = tag(db)
    make_tracks(db, t, 25)
    create(db, data_fields=json.dumps({"plan": "plan"}))
    first = run_sync(db, "tracks")
    assert first["status"] == "succeeded", first
    assert (first["kind"], first["planned_events"], first["tracked"], first["failed"]) == ("events", 25, 25, 0)
    assert (first["cursor_from"], first["cursor_to"]) == ("1", "25")
    rows = logs(db, first["run_id"])
    assert len(rows) == 25
    assert {(r["action"], r["operation"], r["status"]) for r in rows} == {("track", "insert", "succeeded")}
    stored = events_of(emulator, "hybrid", t)
    assert set(stored) == {r["record_key"] for r in rows}
    assert all(e["writes"] == 1 for e in stored.values())
    e = next(e for e in stored.values() if e["userId"] == t + "-u3")
    assert e["eventName"] == "Clicked" and e["dataFields"] == {"n": 3, "plan": "pro"}
    assert isinstance(e["createdAt"], int) and e["createdAt"] < 10 ** 11

    before = request_counts(emulator)
    idle = run_sync(db, "tracks")
    assert idle["status"] == "succeeded" and (idle["planned_events"], idle["tracked"]) in ((None, 0), (0, 0)), idle
    assert request_counts(emulator) - before == collections.Counter()

    add_tracks(db, t, 26, 30)
    third = run_sync(db, "tracks")
    assert (third["tracked"], third["cursor_from"], third["cursor_to"]) == (5, "26", "30")
    stored = events_of(emulator, "hybrid", t)
    assert len(stored) == 30 and all(e["writes"] == 1 for e in stored.values())
    # The watermark moved on: the sent set holds only what is above it.
    assert scalar(db, "SELECT watermark FROM iterable_audience.event_sync_state") is not None


def test_a_row_committed_late_below_rows_already_sent_is_still_sent(db, cluster, emulator):
    """Two open transactions: A takes the smaller id and commits after B's larger one was sent."""
    t = tag(db)
    make_tracks(db, t, 3)
    create(db)
    dbname = scalar(db, "SELECT current_database()")
    a = cluster.connect(dbname=dbname)
    a.autocommit = False
    with a.cursor() as cur:
        cur.execute("INSERT INTO tracks (user_id, event, properties) VALUES (%s, 'Late', '{}') RETURNING id",
                    (t + "-late",))
        late_id = cur.fetchone()[0]
    b = cluster.connect(dbname=dbname)
    with b.cursor() as cur:
        cur.execute("INSERT INTO tracks (user_id, event, properties) VALUES (%s, 'Early', '{}') RETURNING id",
                    (t + "-early",))
        assert cur.fetchone()[0] > late_id
    first = run_sync(db, "tracks")
    assert first["tracked"] == 4, first  # 3 + B's row; A's is not visible yet
    assert {e["userId"] for e in events_of(emulator, "hybrid", t).values()} >= {t + "-early"}
    # The watermark cannot have passed A's id while A is open.
    w = scalar(db, "SELECT watermark FROM iterable_audience.event_sync_state")
    assert w is None or int(w) < late_id
    a.commit()
    second = run_sync(db, "tracks")
    assert second["tracked"] == 1 and second["cursor_from"] == str(late_id), second
    stored = events_of(emulator, "hybrid", t)
    assert len(stored) == 5 and all(e["writes"] == 1 for e in stored.values())
    assert t + "-late" in {e["userId"] for e in stored.values()}
    third = run_sync(db, "tracks")
    assert third["tracked"] == 0
    assert int(scalar(db, "SELECT watermark FROM iterable_audience.event_sync_state")) >= late_id + 1
    assert scalar(db, "SELECT count(*) FROM iterable_audience.event_sync_sent") == 0
    a.close()
    b.close()


def test_a_transaction_without_an_xid_yet_holds_a_timestamp_cursor_back(db, cluster, emulator):
    """A reads now() (no xid: invisible to the xid horizon), a later session commits a later row that
    is sent, then A inserts its earlier-stamped row and commits: the next run still sends it."""
    t = tag(db)
    make_tracks(db, t, 2)
    create(db, cursor="ts")
    dbname = scalar(db, "SELECT current_database()")
    a = cluster.connect(dbname=dbname)
    a.autocommit = False
    with a.cursor() as cur:
        cur.execute("SELECT now()")
        assert scalar(a, "SELECT pg_current_xact_id_if_assigned()") is None
    b = cluster.connect(dbname=dbname)
    with b.cursor() as cur:
        cur.execute("INSERT INTO tracks (user_id, event, properties) VALUES (%s, 'B', '{}')", (t + "-b",))
    first = run_sync(db, "tracks")
    assert first["tracked"] == 3, first
    with a.cursor() as cur:
        cur.execute("INSERT INTO tracks (user_id, event, properties) VALUES (%s, 'A', '{}')", (t + "-a",))
    a.commit()
    assert scalar(db, "SELECT (SELECT ts FROM tracks WHERE event = 'A') < (SELECT ts FROM tracks WHERE event = 'B')")
    second = run_sync(db, "tracks")
    assert second["tracked"] == 1, second
    stored = events_of(emulator, "hybrid", t)
    assert {e["userId"] for e in stored.values()} == {t + "-u1", t + "-u2", t + "-a", t + "-b"}
    assert all(e["writes"] == 1 for e in stored.values())
    a.close()
    b.close()


def test_kill9_during_sends_converges_with_every_row_once(db, cluster, emulator):
    t = tag(db)
    n = 400
    make_tracks(db, t, n)
    create(db)
    dbname = scalar(db, "SELECT current_database()")
    emulator.set_faults({"rules": [{"kind": "latency", "endpoint": "track_bulk", "ms": 150}]})
    conn = cluster.connect(dbname=dbname)
    sql(conn, "SET iterable_audience.batch_size = 10")
    runner = threading.Thread(target=lambda: _run_ignoring_errors(conn), daemon=True)
    runner.start()
    wait_for(lambda: scalar(db, "SELECT coalesce(max(tracked), 0) FROM iterable_audience.sync_runs") >= 50,
             timeout=60, interval=0.02, what="some events sent")
    kill9(wait_for(lambda: worker_pid(db), timeout=10, interval=0.01, what="the worker"))
    runner.join(60)
    emulator.clear_faults()
    from test_crash_trials import connect_when_up
    db2 = connect_when_up(cluster, dbname)
    for _ in range(5):
        result = run_sync(db2, "tracks")
        if result["status"] == "succeeded" and result["tracked"] == 0:
            break
    stored = events_of(emulator, "hybrid", t)
    # Every row in Iterable exactly once: one stored event per row (ids are stable: a resend replaced).
    assert sorted(e["userId"] for e in stored.values()) == sorted("%s-u%d" % (t, g) for g in range(1, n + 1))
    assert scalar(db2, "SELECT count(*) FROM iterable_audience.sync_runs WHERE status = 'running'") == 0
    db2.close()


def _run_ignoring_errors(conn):
    try:
        run_sync(conn, "tracks")
    except psycopg2.Error:
        pass


def test_each_failure_lands_on_its_row_and_retries_follow(db, emulator):
    t = tag(db)
    e = t.replace("_", "-")  # an Iterable id has letters, digits and hyphens only
    spam = "Spam-" + t
    sql(db, "CREATE TABLE tracks (id bigserial PRIMARY KEY, eid text, user_id text, event text, "
            "ts timestamptz DEFAULT now(), properties jsonb)")
    rows = [
        (e + "-e1", t + "-u1", "Clicked", {"amount": 1}),
        (e + "-e2", None, "Clicked", {}),                   # no identifier: refused before sending
        (e + "-e3", t + "-u3", spam, {}),                   # disallowedEventNames
        (e + "-e4", t + "-u4", "Clicked", {"amount": "ten"}),  # RequestFieldsTypesMismatched
        (e + "-e5", t + "-u5", "Clicked", {}),              # forgotten user
        (e + "-e6", t + "-u6", "Clicked", {"amount": 2}),
        (e + "-e7", t + "-u7", None, {}),                   # no eventName: refused
        ("bad id " + t, t + "-u8", "Clicked", {}),          # a mapped id Iterable would refuse
    ]
    for eid, uid, event, props in rows:
        sql(db, "INSERT INTO tracks (eid, user_id, event, properties) VALUES (%s, %s, %s, %s)",
            (eid, uid, event, json.dumps(props)))
    emulator.call("POST", "/_emulator/users", {"api_key": KEYS["hybrid"], "users": [{"userId": t + "-u5"}]})
    emulator.call("POST", "/_emulator/forget", {"api_key": KEYS["hybrid"], "emails": [], "userIds": [t + "-u5"]})
    emulator.call("POST", "/_emulator/event_settings", {"api_key": KEYS["hybrid"], "disallowed_event_names": [spam]})
    try:
        create(db, fields=json.dumps({"id": "eid", "eventName": "event", "userId": "user_id", "createdAt": "ts",
                                      "dataFields": "properties"}))
        first = run_sync(db, "tracks")
        assert first["status"] == "succeeded_with_failures", first
        by_key = {r["record_key"]: r for r in logs(db, first["run_id"])}
        assert len(by_key) == 8
        status = {k: (r["status"], r["error_code"]) for k, r in by_key.items()}
        assert status[e + "-e1"] == ("succeeded", None)
        assert status[e + "-e6"] == ("succeeded", None)
        # Refused before an id was settled: the key is the cursor value.
        assert status["2"] == ("failed", "missing_identifier")
        assert status[e + "-e3"] == ("failed", "disallowed_event_name")
        assert status[e + "-e4"] == ("failed", "invalid_data")
        assert "amount" in by_key[e + "-e4"]["error_message"]
        assert status[e + "-e5"] == ("failed", "forgotten")
        assert status[e + "-e7"][1] == "invalid_field"
        assert status["8"] == ("failed", "invalid_field") and "not a valid Iterable id" in by_key["8"]["error_message"]
        assert (first["tracked"], first["failed"]) == (2, 6)
        assert set(events_of(emulator, "hybrid", t)) == {e + "-e1", e + "-e6"}
        # The disallowed name may be allowed later: retry_failed_records sends that row again (only it).
        emulator.call("POST", "/_emulator/event_settings", {"api_key": KEYS["hybrid"], "disallowed_event_names": []})
        second = run_sync(db, "tracks")
        assert [(r["record_key"], r["status"]) for r in logs(db, second["run_id"])] == [(e + "-e3", "succeeded")]
        assert set(events_of(emulator, "hybrid", t)) == {e + "-e1", e + "-e3", e + "-e6"}
        third = run_sync(db, "tracks")
        assert logs(db, third["run_id"]) == []
    finally:
        emulator.call("POST", "/_emulator/event_settings", {"api_key": KEYS["hybrid"], "disallowed_event_names": []})


def test_backfill_in_runs_of_max_events_per_run(db, emulator):
    t = tag(db)
    make_tracks(db, t, 95)
    # Timestamps with ties: the cursor is not unique, rows with one cursor value are told apart.
    sql(db, "UPDATE tracks SET ts = '2024-01-01 00:00:00+00'::timestamptz + (id / 7) * interval '1 second'")
    create(db, cursor="ts", max_events_per_run=20)
    done = []
    for _ in range(5):
        r = run_sync(db, "tracks")
        assert r["status"] == "succeeded", r
        done.append(r["tracked"])
    assert done == [20, 20, 20, 20, 15]
    assert run_sync(db, "tracks")["tracked"] == 0
    stored = events_of(emulator, "hybrid", t)
    assert sorted(e["userId"] for e in stored.values()) == sorted("%s-u%d" % (t, g) for g in range(1, 96))
    assert all(e["writes"] == 1 for e in stored.values())


def test_preview_shows_what_the_next_run_sends_and_changes_nothing(db, emulator):
    t = tag(db)
    make_tracks(db, t, 6)
    sql(db, "UPDATE tracks SET user_id = NULL WHERE id = 4")
    create(db, max_events_per_run=5)
    state = query(db, "SELECT * FROM iterable_audience.event_sync_state")
    before = request_counts(emulator)
    shown = query(db, "SELECT * FROM iterable_audience.preview_sync('tracks')")
    assert request_counts(emulator) - before == collections.Counter()
    assert query(db, "SELECT * FROM iterable_audience.event_sync_state") == state
    assert len(shown) == 5
    assert [(r["operation"], r["action"], r["valid"]) for r in shown] == \
        [("insert", "track", True)] * 3 + [("insert", "track", False), ("insert", "track", True)]
    assert shown[3]["error_code"] == "missing_identifier" and shown[3]["data_fields"] is None
    assert shown[0]["data_fields"]["userId"] == t + "-u1" and shown[0]["data_fields"]["eventName"] == "Clicked"
    run = run_sync(db, "tracks")
    sent = {r["record_key"]: r["status"] for r in logs(db, run["run_id"])}
    assert sent == {r["record_key"]: ("succeeded" if r["valid"] else "failed") for r in shown}
    left = query(db, "SELECT * FROM iterable_audience.preview_sync('tracks')")
    assert [r["data_fields"]["userId"] for r in left] == [t + "-u6"]
    assert run_sync(db, "tracks")["tracked"] == 1
    assert query(db, "SELECT * FROM iterable_audience.preview_sync('tracks')") == []


@pytest.mark.parametrize("kind,fields,check", [
    ("purchase", {"userId": "user_id", "items": "items", "total": "total", "createdAt": "ts"}, "purchases"),
    ("cart", {"userId": "user_id", "items": "items"}, "carts"),
    ("device_token", {"userId": "user_id", "token": "token", "platform": "platform", "applicationName": "app"},
     "tokens"),
    ("browser_token", {"userId": "user_id", "browserToken": "token"}, "tokens"),
])
def test_other_kinds_send_each_row_once_through_their_endpoint(db, emulator, kind, fields, check):
    t = tag(db)
    sql(db, "CREATE TABLE rows (id bigserial PRIMARY KEY, user_id text, items jsonb, total numeric, token text, "
            "platform text, app text DEFAULT 'my-app', ts timestamptz DEFAULT now())")
    sql(db, "INSERT INTO rows (user_id, items, total, token, platform) SELECT %s || '-k' || g, "
            "jsonb_build_array(jsonb_build_object('id', 'sku' || g, 'name', 'Shoe', 'price', 9.5, 'quantity', g)), "
            "9.5 * g, %s || '-tok' || g, CASE WHEN g = 3 THEN 'WINDOWS' ELSE 'GCM' END FROM generate_series(1, 4) g",
        (t, t))
    emulator.call("POST", "/_emulator/users", {"api_key": KEYS["hybrid"],
                                                 "users": [{"userId": "%s-k%d" % (t, g)} for g in range(1, 5)]})
    create(db, name="rows", source="rows", kind=kind, fields=json.dumps(fields))
    first = run_sync(db, "rows")
    rows = logs(db, first["run_id"])
    assert len(rows) == 4
    bad = {r["record_key"] for r in rows if r["status"] == "failed"}
    if kind == "device_token":
        assert [r["error_code"] for r in rows if r["status"] == "failed"] == ["invalid_field"]  # platform WINDOWS
        assert first["tracked"] == 3
    else:
        assert bad == set() and first["tracked"] == 4, rows
    assert {r["action"] for r in rows} == {{"purchase": "track_purchase", "cart": "update_cart",
                                            "device_token": "register_device_token",
                                            "browser_token": "register_browser_token"}[kind]}
    seen = emulator.call("GET", "/_emulator/%s?api_key=%s" % (check, KEYS["hybrid"]))
    if kind == "purchase":
        mine = [p for p in seen["purchases"] if t in json.dumps(p)]
        assert len(mine) == 4 and all(p["writes"] == 1 for p in mine)
        assert {r["record_key"] for r in rows} == {p["id"] for p in mine}
    elif kind == "cart":
        assert len([c for c in seen["carts"] if t in json.dumps(c)]) == 4
    elif kind == "device_token":
        mine = [d for d in seen["devices"] if t in json.dumps(d)]
        assert len(mine) == 3 and all(d["registrations"] == 1 for d in mine)
    else:
        mine = [b for b in seen["browserTokens"] if t in json.dumps(b)]
        assert len(mine) == 4 and all(b["registrations"] == 1 for b in mine)
    before = request_counts(emulator)
    assert run_sync(db, "rows")["tracked"] == 0
    assert request_counts(emulator) - before == collections.Counter()


def test_email_changes_and_a_lost_answer_is_not_a_failure(db, emulator):
    t = tag(db)
    sql(db, "CREATE TABLE aliases (id bigserial PRIMARY KEY, old_email text, new_email text)")
    sql(db, "INSERT INTO aliases (old_email, new_email) SELECT %s || '.old' || g || '@example.com', "
            "%s || '.new' || g || '@example.com' FROM generate_series(1, 3) g", (t, t))
    emulator.call("POST", "/_emulator/users", {"api_key": KEYS["email"], "users": [
        {"email": "%s.old%d@example.com" % (t, g)} for g in range(1, 4)]})
    scalar(db, "SELECT iterable_audience.create_event_sync('aliases', 'email', 'aliases', 'id', kind => 'email_change', "
               "fields => '{\"currentEmail\": \"old_email\", \"newEmail\": \"new_email\"}')")
    # The second change is applied but its answer lost (twice: libcurl itself resends once on a
    # kept-alive connection closed without an answer); the client's retry finds the old email gone:
    # that is the change made, not a failure.
    emulator.set_faults({"rules": [{"kind": "drop_after_apply", "endpoint": "update_email", "skip": 1, "next": 2}]})
    first = run_sync(db, "aliases")
    assert first["tracked"] == 3 and first["failed"] == 0, first
    rows = logs(db, first["run_id"])
    assert {r["action"] for r in rows} == {"update_email"}
    assert "earlier request whose answer was lost" in rows[1]["error_message"] and rows[1]["status"] == "succeeded"
    emulator.clear_faults()
    for g in range(1, 4):
        users = emulator.call("GET", "/_emulator/users?api_key=%s&email=%s.new%d@example.com" % (KEYS["email"], t, g))
        assert len(users["users"]) == 1
    assert run_sync(db, "aliases")["tracked"] == 0


def test_a_restored_database_sends_nothing_twice(db, cluster, emulator):
    """pg_dump keeps the watermark, checkpoints and sent set (pg_extension_config_dump): the restored
    copy's next run sends nothing already sent, and rows added there are sent."""
    from test_backup_restore import dump, restore, state
    t = tag(db)
    make_tracks(db, t, 12)
    create(db)
    assert run_sync(db, "tracks")["tracked"] == 12
    before = state(db)
    assert before["event_state"] and before["event_sent"]
    path = dump(cluster, t)
    dst = restore(cluster, path, t + "_restored")
    try:
        after = state(dst)
        for part in ("event_state", "event_sent", "sync", "runs", "logs"):
            assert after[part] == before[part], part
        requests = request_counts(emulator)
        assert run_sync(dst, "tracks")["tracked"] == 0
        assert request_counts(emulator) - requests == collections.Counter()
        add_tracks(dst, t, 13, 14)
        assert run_sync(dst, "tracks")["tracked"] == 2
        stored = events_of(emulator, "hybrid", t)
        assert len(stored) == 14 and all(e["writes"] == 1 for e in stored.values())
    finally:
        dst.close()
        admin = cluster.connect()
        sql(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % (t + "_restored"))
        admin.close()


def test_a_dump_taken_while_events_are_sent_converges_after_restore(db, cluster, emulator):
    """A dump taken mid-run holds the run as 'running' and a sent set without the batches in flight,
    which Iterable may have stored: the restored copy settles that run, sends every row the dump does
    not show as sent, with the same ids, and so each row ends in Iterable exactly once."""
    from test_backup_restore import dump, restore
    t = tag(db)
    n = 200
    make_tracks(db, t, n)
    create(db)
    dbname = scalar(db, "SELECT current_database()")
    emulator.set_faults({"rules": [{"kind": "latency", "endpoint": "track_bulk", "ms": 200}]})
    bg = BackgroundRun(cluster, dbname, "tracks", batch_size=10)
    try:
        wait_for(lambda: scalar(db, "SELECT coalesce(max(tracked), 0) FROM iterable_audience.sync_runs "
                                    "WHERE status = 'running'") >= 30, timeout=60, interval=0.02,
                 what="some events sent")
        path = dump(cluster, dbname)  # pg_dump's own snapshot, while the run sends
        # The source server is lost: its run ends there, with a batch in flight.
        sql(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE backend_type = 'iterable_audience sync' AND datname = %s", (dbname,))
        assert bg.join(60)
    finally:
        bg.close()
        emulator.clear_faults()
    restored = t + "_restored"
    dst = restore(cluster, path, restored)
    try:
        dumped = query(dst, "SELECT run_id, status, tracked FROM iterable_audience.sync_runs "
                            "ORDER BY run_id DESC LIMIT 1")[0]
        assert dumped["status"] == "running" and 30 <= dumped["tracked"] < n, dumped
        nxt = run_sync(dst, "tracks")
        assert nxt["status"] == "succeeded" and nxt["tracked"] == n - dumped["tracked"], (nxt, dumped)
        settled = query(dst, "SELECT status, error FROM iterable_audience.sync_runs WHERE run_id = %s",
                        (dumped["run_id"],))[0]
        assert settled["status"] == "failed" and "interrupted" in settled["error"], settled
        assert run_sync(dst, "tracks")["tracked"] == 0
        stored = events_of(emulator, "hybrid", t)
        # One stored event per row: what the source sent after the dump was sent again with its ids.
        assert sorted(e["userId"] for e in stored.values()) == sorted("%s-u%d" % (t, g) for g in range(1, n + 1))
    finally:
        dst.close()
        admin = cluster.connect()
        sql(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % restored)
        admin.close()


def test_carts_of_one_user_land_in_cursor_order_with_requests_in_flight(db, emulator):
    t = tag(db)
    sql(db, "CREATE TABLE carts (id bigserial PRIMARY KEY, user_id text, items jsonb)")
    users = ["%s-c%d" % (t, g) for g in range(1, 7)]
    emulator.call("POST", "/_emulator/users", {"api_key": KEYS["hybrid"], "users": [{"userId": u} for u in users]})
    for step in range(1, 4):
        for u in users:
            sql(db, "INSERT INTO carts (user_id, items) VALUES (%s, %s)",
                (u, json.dumps([{"id": "sku", "name": "Shoe", "price": 1, "quantity": step}])))
    emulator.set_faults({"rules": [{"kind": "latency", "endpoint": "update_cart", "ms": 40, "jitter_ms": 30}]})
    sql(db, "SET iterable_audience.max_requests_in_flight = 4")
    create(db, name="carts", source="carts", kind="cart", fields=json.dumps({"userId": "user_id", "items": "items"}))
    r = run_sync(db, "carts")
    emulator.clear_faults()
    assert r["tracked"] == 18 and r["failed"] == 0, r
    seen = emulator.call("GET", "/_emulator/carts?api_key=%s" % KEYS["hybrid"])
    for u in users:
        steps = [x["items"][0]["quantity"] for x in sorted(seen["updates"], key=lambda x: x["seq"]) if x["userId"] == u]
        assert steps == [1, 2, 3], (u, steps)
        assert [c["items"][0]["quantity"] for c in seen["carts"] if c["userId"] == u] == [3]


def test_alter_pause_resume_and_drop_an_event_sync(db, emulator):
    t = tag(db)
    make_tracks(db, t, 3)
    create(db)
    sql(db, "SELECT iterable_audience.alter_sync('tracks', schedule => 'every 1 hour', sync_log_retention_days => 3)")
    info = query(db, "SELECT schedule, kind, event_kind FROM iterable_audience.syncs")[0]
    assert info == {"schedule": "every 1 hour", "kind": "events", "event_kind": "track"}
    with pytest.raises(psycopg2.Error) as e:
        sql(db, "SELECT iterable_audience.alter_sync('tracks', email_column => 'user_id')")
    db.rollback()
    assert "does not apply to event sync" in str(e.value)
    with pytest.raises(psycopg2.Error) as e:
        sql(db, "SELECT iterable_audience.alter_sync('tracks', source => 'SELECT id::text AS id, user_id, event, ts, "
                "properties FROM tracks')")
    db.rollback()
    assert "cannot serve as a cursor" in str(e.value)
    sql(db, "SELECT iterable_audience.alter_sync('tracks', source => 'SELECT * FROM tracks WHERE id > 1')")
    assert run_sync(db, "tracks")["tracked"] == 2
    sql(db, "SELECT iterable_audience.pause_sync('tracks')")
    sql(db, "SELECT iterable_audience.resume_sync('tracks')")
    sql(db, "SELECT iterable_audience.drop_sync('tracks')")
    assert scalar(db, "SELECT count(*) FROM iterable_audience.event_sync_state") == 0
    assert scalar(db, "SELECT count(*) FROM iterable_audience.event_sync_sent") == 0


def test_a_row_with_a_null_cursor_fails_once_and_blocks_nothing(db, emulator):
    t = tag(db)
    make_tracks(db, t, 3)
    sql(db, "UPDATE tracks SET ts = NULL WHERE id = 2")
    create(db, cursor="ts")
    first = run_sync(db, "tracks")
    assert (first["tracked"], first["failed"]) == (2, 1), first
    failed = [r for r in logs(db, first["run_id"]) if r["status"] == "failed"]
    assert [(r["error_code"], "cursor column is NULL" in r["error_message"]) for r in failed] == [("invalid_field", True)]
    add_tracks(db, t, 4, 5)
    second = run_sync(db, "tracks")
    assert (second["tracked"], second["failed"]) == (2, 0), second
    third = run_sync(db, "tracks")
    assert (third["tracked"], third["failed"]) == (0, 0), third


def test_a_413_splits_the_batch_and_an_event_alone_over_the_limit_fails_too_large(db, emulator):
    t = tag(db)
    make_tracks(db, t, 12)
    sql(db, "UPDATE tracks SET properties = jsonb_build_object('blob', repeat('x', 3000)) WHERE id = 7")
    emulator.call("POST", "/_emulator/event_settings", {"api_key": KEYS["hybrid"], "body_limits": {"track_bulk": 2500}})
    try:
        create(db)
        r = run_sync(db, "tracks")
        rows = {r["record_key"]: r for r in logs(db, r["run_id"])}
        failed = [x for x in rows.values() if x["status"] == "failed"]
        assert [x["user_id"] for x in failed] == [t + "-u7"] and failed[0]["error_code"] == "too_large", failed
        assert (r["tracked"], r["failed"]) == (11, 1), r
        stored = events_of(emulator, "hybrid", t)
        assert len(stored) == 11 and all(e["writes"] == 1 for e in stored.values())
    finally:
        emulator.call("POST", "/_emulator/event_settings", {"api_key": KEYS["hybrid"], "body_limits": {}})


def test_a_lost_answer_is_resent_and_replaces(db, emulator):
    """trackBulk applied but its answer lost: the resend carries the same ids, so Iterable holds each
    event once although some ids were written more than once."""
    t = tag(db)
    make_tracks(db, t, 30)
    sql(db, "SET iterable_audience.batch_size = 10")
    emulator.set_faults({"rules": [{"kind": "drop_after_apply", "endpoint": "track_bulk", "skip": 1, "next": 2}]})
    create(db)
    r = run_sync(db, "tracks")
    emulator.clear_faults()
    for _ in range(3):
        if r["status"] == "succeeded":
            break
        r = run_sync(db, "tracks")
    assert r["status"] == "succeeded", r
    stored = events_of(emulator, "hybrid", t)
    assert sorted(e["userId"] for e in stored.values()) == sorted("%s-u%d" % (t, g) for g in range(1, 31))
    writes = collections.Counter(e["writes"] for e in stored.values())
    assert writes[1] == 20 and sum(writes.values()) == 30 and max(writes) > 1, writes
