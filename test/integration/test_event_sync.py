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
from sync_helpers import KEYS, kill9, request_counts, run_sync, sql, tag, wait_for, worker_pid


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
