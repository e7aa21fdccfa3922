"""Drift check (issue 19): check_list() reads a list back from Iterable (the emulator's getUsers) and
compares it with the sync's latest snapshot; repair_list() makes the next run put the list right.
Drift is made behind the sync's back with the emulator's drift routes (emulator/emu_drift.py)."""

import psycopg2
import pytest

from harness import query, scalar
from sync_helpers import (KEYS, BackgroundRun, kill9, list_id_of, request_counts, run_sync, snapshot_rows,
                          snapshot_split, sql, tag, wait_for, worker_pid)


def create_people(db, rows):
    t = tag(db)
    sql(db, "CREATE TABLE people (uid text PRIMARY KEY, email text)")
    sql(db, "INSERT INTO people SELECT %s || '-u' || g, %s || '.' || g || '@example.com' "
            "FROM generate_series(1, %s) g", (t, t, rows))
    return t


def create_sync(db, name, account="hybrid", email_column="email", user_id_column="uid"):
    sql(db, "SELECT iterable_audience.create_sync(%s, %s, 'people', new_list_name => %s, email_column => %s, "
            "user_id_column => %s)", (name, account, name, email_column, user_id_column))


def check(db, name):
    return query(db, "SELECT * FROM iterable_audience.check_list(%s)", (name,))


def repair(db, name, unsubscribe_unexpected=None):
    if unsubscribe_unexpected is None:
        return query(db, "SELECT * FROM iterable_audience.repair_list(%s)", (name,))
    return query(db, "SELECT * FROM iterable_audience.repair_list(%s, unsubscribe_unexpected => %s)",
                 (name, unsubscribe_unexpected))


def drift_remove(emulator, list_id, emails=(), user_ids=()):
    reply = emulator.call("POST", "/_emulator/drift/remove",
                          {"list_id": list_id, "emails": list(emails), "userIds": list(user_ids)})
    assert reply["not_members"] == [], reply
    return reply


def drift_add(emulator, list_id, users):
    reply = emulator.call("POST", "/_emulator/drift/add", {"list_id": list_id, "users": users})
    assert reply["failed"] == [], reply
    return reply


def list_pairs(emulator, list_id):
    return {(m["email"], m["userId"]) for m in emulator.members(list_id)}


def audience_pairs(db):
    return {(r["email"], r["uid"]) for r in query(db, "SELECT email, uid FROM people")}


def problems(rows):
    return {(r["problem"], r["record_key"], r["email"], r["user_id"]) for r in rows}


def error_of(db, statement, params=None):
    with pytest.raises(psycopg2.Error) as info:
        sql(db, statement, params)
    diag = info.value.diag
    return info.value.pgcode, diag.message_primary, diag.message_hint or ""


def get_users_count(emulator):
    return request_counts(emulator)["get_users"]


# ----- found and repaired -----------------------------------------------------------------------
def test_no_drift_after_a_run(db, emulator):
    create_people(db, 30)
    create_sync(db, "vip")
    assert run_sync(db, "vip")["status"] == "succeeded"
    before = get_users_count(emulator)
    assert check(db, "vip") == []
    assert get_users_count(emulator) == before + 1
    # Read with preferUserId=true: the sync keys its records by userId.
    last = emulator.requests("get_users", 1)[-1]
    assert last["path"] == "/api/lists/getUsers?listId=%d&preferUserId=true" % list_id_of(db, "vip")


def test_removed_members_found_and_resubscribed(db, emulator):
    t = create_people(db, 20)
    create_sync(db, "vip")
    run_sync(db, "vip")
    list_id = list_id_of(db, "vip")
    drift_remove(emulator, list_id, user_ids=["%s-u3" % t, "%s-u7" % t])
    drift_remove(emulator, list_id, emails=["%s.11@example.com" % t])
    outsider = "outsider.%s@example.com" % t
    drift_add(emulator, list_id, [{"email": outsider}, {"userId": "%s-stranger" % t}])

    found = check(db, "vip")
    assert problems(found) == {
        ("missing_in_iterable", "%s-u3" % t, "%s.3@example.com" % t, "%s-u3" % t),
        ("missing_in_iterable", "%s-u7" % t, "%s.7@example.com" % t, "%s-u7" % t),
        ("missing_in_iterable", "%s-u11" % t, "%s.11@example.com" % t, "%s-u11" % t),
        ("unexpected_in_iterable", outsider, outsider, None),
        ("unexpected_in_iterable", "%s-stranger" % t, None, "%s-stranger" % t),
    }
    assert [r["problem"] for r in found] == ["missing_in_iterable"] * 3 + ["unexpected_in_iterable"] * 2

    repaired = repair(db, "vip")
    assert {(r["record_key"], r["repair"]) for r in repaired} == {
        ("%s-u3" % t, "resent by the next run"), ("%s-u7" % t, "resent by the next run"),
        ("%s-u11" % t, "resent by the next run"),
        (outsider, "left alone (unsubscribe_unexpected => false)"),
        ("%s-stranger" % t, "left alone (unsubscribe_unexpected => false)")}
    # Marked in doubt (row_hash 0) in the latest snapshot, nothing else changed there.
    table = query(db, "SELECT snapshot_table FROM iterable_audience.syncs WHERE sync_name = 'vip'")[0]["snapshot_table"]
    doubt = {r["record_key"] for r in query(
        db, 'SELECT record_key FROM iterable_audience_snapshots."%s" WHERE row_hash = 0' % table)}
    assert doubt == {"%s-u3" % t, "%s-u7" % t, "%s-u11" % t}
    assert len(snapshot_rows(db, "vip")) == 20

    run = run_sync(db, "vip")
    assert run["status"] == "succeeded", run
    assert (run["planned_subscribes"], run["planned_unsubscribes"]) == (3, 0)
    assert list_pairs(emulator, list_id) == audience_pairs(db) | {(outsider, None), (None, "%s-stranger" % t)}
    # Only the unexpected ones are left, as the option was off.
    assert {r["problem"] for r in check(db, "vip")} == {"unexpected_in_iterable"}


def test_unexpected_members_unsubscribed_with_the_option(db, emulator):
    t = create_people(db, 20)
    create_sync(db, "vip")
    run_sync(db, "vip")
    list_id = list_id_of(db, "vip")
    drift_remove(emulator, list_id, user_ids=["%s-u5" % t])
    drift_add(emulator, list_id, [{"email": "outsider.%s@example.com" % t}, {"userId": "%s-stranger" % t}])
    # A row joins the audience, and someone adds the same user in Iterable before the next run: it is
    # unexpected (not in the snapshot) but the audience has it, so the next run keeps it subscribed.
    sql(db, "INSERT INTO people VALUES (%s, %s)", ("%s-u21" % t, "%s.21@example.com" % t))
    drift_add(emulator, list_id, [{"email": "%s.21@example.com" % t, "userId": "%s-u21" % t}])

    repaired = repair(db, "vip", unsubscribe_unexpected=True)
    assert {(r["problem"], r["record_key"], r["repair"]) for r in repaired} == {
        ("missing_in_iterable", "%s-u5" % t, "resent by the next run"),
        ("unexpected_in_iterable", "outsider.%s@example.com" % t, "resent by the next run"),
        ("unexpected_in_iterable", "%s-stranger" % t, "resent by the next run"),
        ("unexpected_in_iterable", "%s-u21" % t, "resent by the next run")}
    registered = scalar(db, "SELECT row_count FROM iterable_audience.snapshot ORDER BY run_id DESC LIMIT 1")
    assert registered == 23 == len(snapshot_rows(db, "vip"))

    run = run_sync(db, "vip")
    assert run["status"] == "succeeded", run
    # u5 and u21 subscribed (u21 is in the audience), the outsider and the stranger unsubscribed.
    assert (run["planned_subscribes"], run["planned_unsubscribes"]) == (2, 2)
    assert list_pairs(emulator, list_id) == audience_pairs(db)
    assert check(db, "vip") == []
    assert set(snapshot_rows(db, "vip")) == {r["uid"] for r in query(db, "SELECT uid FROM people")}


@pytest.mark.parametrize("account", ["email", "userid"])
def test_drift_per_project_type(db, emulator, account):
    t = create_people(db, 10)
    if account == "email":
        create_sync(db, "vip", account, email_column="email", user_id_column=None)
        gone, gone_key = {"emails": ["%s.4@example.com" % t]}, "%s.4@example.com" % t
        extra, extra_row = {"email": "x.%s@example.com" % t}, ("x.%s@example.com" % t, "x.%s@example.com" % t, None)
        want_missing = ("missing_in_iterable", gone_key, gone_key, None)
        prefer = "false"
    else:
        create_sync(db, "vip", account, email_column=None, user_id_column="uid")
        gone, gone_key = {"userIds": ["%s-u4" % t]}, "%s-u4" % t
        extra, extra_row = {"userId": "%s-x" % t}, ("%s-x" % t, None, "%s-x" % t)
        want_missing = ("missing_in_iterable", gone_key, None, gone_key)
        prefer = "true"
    run_sync(db, "vip")
    list_id = list_id_of(db, "vip")
    emulator.call("POST", "/_emulator/drift/remove", dict(gone, list_id=list_id))
    drift_add(emulator, list_id, [extra])

    assert problems(check(db, "vip")) == {want_missing, ("unexpected_in_iterable",) + extra_row}
    assert emulator.requests("get_users", 1)[-1]["path"].endswith("preferUserId=" + prefer)
    repair(db, "vip", unsubscribe_unexpected=True)
    run = run_sync(db, "vip")
    assert (run["status"], run["planned_subscribes"], run["planned_unsubscribes"]) == ("succeeded", 1, 1)
    assert check(db, "vip") == []


def test_sync_whose_runs_sent_nothing_compares_with_an_empty_list(db, emulator):
    t = create_people(db, 0)
    create_sync(db, "vip")
    assert run_sync(db, "vip")["status"] == "succeeded"      # nothing to send: no snapshot table
    list_id = list_id_of(db, "vip")
    drift_add(emulator, list_id, [{"email": "x.%s@example.com" % t}])
    assert problems(check(db, "vip")) == {
        ("unexpected_in_iterable", "x.%s@example.com" % t, "x.%s@example.com" % t, None)}
    repair(db, "vip", unsubscribe_unexpected=True)
    # Unsubscribing every member the list has is more than the removal guard lets a run do unforced.
    run = run_sync(db, "vip")
    assert (run["status"], run["planned_unsubscribes"]) == ("blocked", 1)
    assert "force => true" in run["error"]
    assert len(emulator.members(list_id)) == 1
    run = run_sync(db, "vip", force=True)
    assert (run["status"], run["planned_unsubscribes"], run["unsubscribed"]) == ("succeeded", 1, 1)
    assert emulator.members(list_id) == []


# ----- errors -----------------------------------------------------------------------------------
def test_sync_that_never_ran(db, emulator):
    create_people(db, 3)
    create_sync(db, "vip")
    before = get_users_count(emulator)
    for fn in ("check_list", "repair_list"):
        code, message, hint = error_of(db, "SELECT * FROM iterable_audience.%s('vip')" % fn)
        assert code == "55000"
        assert message == 'sync "vip" has not completed a run yet: there is no list to compare with Iterable\'s'
        assert "iterable_audience.run_sync('vip')" in hint
    assert get_users_count(emulator) == before          # nothing asked of Iterable
    code, message, _ = error_of(db, "SELECT * FROM iterable_audience.check_list('nope')")
    assert message == 'sync "nope" does not exist'
    code, message, _ = error_of(db, "SELECT * FROM iterable_audience.check_list(NULL)")
    assert message == "sync_name must not be empty or NULL"


def test_sync_of_another_kind(db, emulator):
    create_people(db, 3)
    create_sync(db, "vip")
    run_sync(db, "vip")
    assert check(db, "vip") == []
    sql(db, "SELECT iterable_audience.create_user_sync('profiles', 'hybrid', 'people', email_column => 'email', "
            "user_id_column => 'uid')")
    run_sync(db, "profiles")
    for fn in ("check_list", "repair_list"):
        code, message, hint = error_of(db, "SELECT * FROM iterable_audience.%s('profiles')" % fn)
        assert code == "42809"
        assert message == ("%s works on list syncs; sync \"profiles\" is a 'users' sync, which keeps no Iterable "
                           "list to compare" % fn)
        assert "create_sync()" in hint


def test_deleted_list(db, emulator):
    create_people(db, 3)
    create_sync(db, "vip")
    run_sync(db, "vip")
    list_id = list_id_of(db, "vip")
    emulator.call("DELETE", "/api/lists/%d" % list_id, api_key=KEYS["hybrid"])
    code, message, hint = error_of(db, "SELECT * FROM iterable_audience.check_list('vip')")
    assert code == "42704"
    assert message.startswith('list %d of sync "vip" no longer exists in the Iterable project of account "hybrid"'
                              % list_id)
    assert "Invalid email list id" in message
    assert "alter_sync('vip', list_id => ...)" in hint


def test_bad_key(db, emulator):
    create_people(db, 3)
    create_sync(db, "vip")
    run_sync(db, "vip")
    sql(db, "SELECT iterable_audience.alter_account('hybrid', api_key => 'not-a-key-s3cr3t')")
    code, message, hint = error_of(db, "SELECT * FROM iterable_audience.check_list('vip')")
    assert code == "28000"
    assert 'account "hybrid"' in message and "HTTP 401 BadApiKey: Invalid API key" in message
    assert "alter_account('hybrid', api_key => ...)" in hint
    assert "s3cr3t" not in message + hint


def test_paced_to_five_a_minute_per_account(db, emulator):
    create_people(db, 3)
    create_sync(db, "vip")
    create_sync(db, "vip2")
    run_sync(db, "vip")
    run_sync(db, "vip2")
    before = get_users_count(emulator)
    for name in ("vip", "vip2", "vip", "vip2", "vip"):
        assert check(db, name) == []
    # The sixth within the minute, from another session of the same account: refused here.
    other = psycopg2.connect(db.dsn)
    other.autocommit = True
    try:
        code, message, hint = error_of(other, "SELECT * FROM iterable_audience.repair_list('vip2')")
    finally:
        other.close()
    assert code == "53400"
    assert message.startswith('Iterable allows 5 getUsers requests a minute per project, and account "hybrid" '
                              "has made them: retry in ")
    assert "UTC)" in message and "nothing was asked of Iterable" in hint
    assert get_users_count(emulator) == before + 5
    # Other accounts (projects) have their own five.
    sql(db, "CREATE TABLE people2 AS SELECT * FROM people")
    sql(db, "SELECT iterable_audience.create_sync('mail', 'email', 'people2', new_list_name => 'mail', "
            "email_column => 'email')")
    run_sync(db, "mail")
    assert check(db, "mail") == []


def test_rate_limited_by_iterable(db, emulator):
    create_people(db, 3)
    create_sync(db, "vip")
    run_sync(db, "vip")
    emulator.set_faults({"rate_limits": [{"endpoint": "get_users", "rate": 5 / 60.0, "burst": 5}]})
    list_id = list_id_of(db, "vip")
    # Another tool of the same Iterable project uses up the five.
    for _ in range(5):
        emulator.call("GET", "/api/lists/getUsers?listId=%d" % list_id, api_key=KEYS["hybrid"])
    before = get_users_count(emulator)
    code, message, hint = error_of(db, "SELECT * FROM iterable_audience.check_list('vip')")
    assert code == "53400"
    assert message.startswith('Iterable refused to read the members of list %d (sync "vip") for account "hybrid" '
                              "(HTTP 429: Rate limit exceeded. Please try again later.)" % list_id)
    assert "this project's are used up; retry in 60 s (after " in message
    assert "Another tool" in hint
    assert get_users_count(emulator) == before + 1           # one attempt, not retried
    # Until then the extension asks no more.
    code, message, _ = error_of(db, "SELECT * FROM iterable_audience.repair_list('vip')")
    assert code == "53400" and "has made them: retry in " in message
    assert get_users_count(emulator) == before + 1


def test_only_who_may_use_the_sync(db, emulator):
    create_people(db, 3)
    create_sync(db, "vip")
    run_sync(db, "vip")
    sql(db, "CREATE ROLE drift_stranger LOGIN")
    sql(db, "GRANT USAGE ON SCHEMA iterable_audience TO drift_stranger")
    sql(db, "SET ROLE drift_stranger")
    try:
        for fn in ("check_list", "repair_list"):
            code, message, hint = error_of(db, "SELECT * FROM iterable_audience.%s('vip')" % fn)
            assert code == "42501" and message == 'permission denied for sync "vip"'
    finally:
        sql(db, "RESET ROLE")
        sql(db, "DROP OWNED BY drift_stranger")
        sql(db, "DROP ROLE drift_stranger")


# ----- runs going, runs that died ---------------------------------------------------------------
def make_slow_sync(db, emulator, rows, latency_ms):
    t = tag(db)
    sql(db, "CREATE TABLE audience AS SELECT %s || '.s' || g || '@example.com' AS email FROM generate_series(1, %s) g",
        (t, rows))
    sql(db, "SELECT iterable_audience.create_sync('slow', 'email', 'audience', new_list_name => 'slow', "
            "email_column => 'email')")
    emulator.set_faults({"rules": [{"kind": "latency", "endpoint": "subscribe", "ms": latency_ms}]})


def test_refused_while_a_run_is_going(db, emulator, cluster):
    make_slow_sync(db, emulator, rows=60, latency_ms=150)
    run_sync(db, "slow")   # a first run, so that the sync has a snapshot
    sql(db, "INSERT INTO audience SELECT 'more' || g || '@example.com' FROM generate_series(1, 60) g")
    bg = BackgroundRun(cluster, tag(db), "slow", batch_size=10, max_requests_in_flight=1)
    try:
        wait_for(lambda: scalar(db, "SELECT count(*) FROM iterable_audience.sync_runs WHERE status = 'running'"),
                 what="the run to start")
        before = get_users_count(emulator)
        code, message, _ = error_of(db, "SELECT * FROM iterable_audience.check_list('slow')")
        assert code == "55P03" and message == 'a run of sync "slow" is going: what it sends is not in its snapshot yet'
        code, message, _ = error_of(db, "SELECT * FROM iterable_audience.repair_list('slow')")
        assert code == "55P03" and message == "cannot repair the sync while a run of it is going"
        assert get_users_count(emulator) == before
        emulator.clear_faults()
        assert bg.join(60) and bg.error is None, bg.error
    finally:
        bg.close()
    assert check(db, "slow") == []


def test_a_run_that_died_is_settled_first(db, emulator, cluster):
    dbname = tag(db)
    make_slow_sync(db, emulator, rows=300, latency_ms=100)
    bg = BackgroundRun(cluster, dbname, "slow", batch_size=10, max_requests_in_flight=1)
    try:
        run_id = wait_for(lambda: scalar(db, "SELECT max(run_id) FROM iterable_audience.sync_runs"),
                          what="the run to start")
        wait_for(lambda: scalar(db, "SELECT subscribed FROM iterable_audience.sync_runs WHERE run_id = %s",
                                (run_id,)) >= 100, what="100 subscribed")
        kill9(worker_pid(db))
        assert bg.join(60)
    finally:
        bg.close()
    emulator.clear_faults()
    conn = reconnect(cluster, dbname)
    try:
        # The killed run's batches are not in a snapshot yet: check_list applies them as the next run
        # will (what Iterable acknowledged, and the batches in doubt), without changing anything.
        snap, in_doubt = snapshot_split(conn, "slow")
        list_id = list_id_of(conn, "slow")
        on_list = {m["email"] for m in emulator.members(list_id)}
        expected_missing = {key for key in list(snap) + list(in_doubt) if key not in on_list}
        found = check(conn, "slow")
        assert {r["record_key"] for r in found if r["problem"] == "missing_in_iterable"} == expected_missing
        assert [r for r in found if r["problem"] == "unexpected_in_iterable"] == []
        assert scalar(conn, "SELECT settled FROM iterable_audience.sync_runs WHERE run_id = %s", (run_id,)) is False
        # repair_list settles it for real, under the lock, as the next run would have.
        drift_remove(emulator, list_id, emails=[sorted(on_list)[0]])
        repaired = repair(conn, "slow")
        assert sorted(on_list)[0] in {r["record_key"] for r in repaired}
        assert scalar(conn, "SELECT settled FROM iterable_audience.sync_runs WHERE run_id = %s", (run_id,)) is True
        run = run_sync(conn, "slow")
        assert run["status"] == "succeeded", run
        assert {m["email"] for m in emulator.members(list_id)} == {
            r["email"] for r in query(conn, "SELECT email FROM audience")}
        assert check(conn, "slow") == []
    finally:
        conn.close()


def reconnect(cluster, dbname):
    def attempt():
        try:
            conn = cluster.connect(dbname=dbname)
            scalar(conn, "SELECT 1")
            return conn
        except psycopg2.OperationalError:
            return None
    return wait_for(attempt, timeout=60, interval=0.2, what="the server to accept connections again")


def test_an_ordinary_owner_checks_and_repairs_its_sync(db, emulator, cluster):
    t = create_people(db, 5)
    sql(db, "CREATE ROLE drift_owner LOGIN")
    sql(db, "GRANT USAGE ON SCHEMA iterable_audience, iterable_audience_snapshots TO drift_owner")
    sql(db, "GRANT SELECT ON people TO drift_owner")
    sql(db, "SELECT iterable_audience.grant_account_usage('hybrid', 'drift_owner')")
    owner = cluster.connect(dbname=tag(db), user="drift_owner")
    try:
        create_sync(owner, "mine")
        assert run_sync(owner, "mine")["status"] == "succeeded"
        list_id = list_id_of(owner, "mine")
        drift_remove(emulator, list_id, user_ids=["%s-u2" % t])
        assert [r["record_key"] for r in check(owner, "mine")] == ["%s-u2" % t]
        assert [r["repair"] for r in repair(owner, "mine")] == ["resent by the next run"]
        assert run_sync(owner, "mine")["planned_subscribes"] == 1
        assert check(owner, "mine") == []
    finally:
        owner.close()
        sql(db, "SELECT iterable_audience.drop_sync('mine')")
        sql(db, "DROP OWNED BY drift_owner")
        sql(db, "DROP ROLE drift_owner")
