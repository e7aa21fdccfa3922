"""User syncs (create_user_sync): profile fields follow a table through POST /api/users/bulkUpdate.

First run sends every row, later runs only new or changed ones; dataFields keep their JSON types;
Iterable's per-record failures (every failedUpdates array, and a 400 RequestFieldsTypesMismatched
refusing a whole request) land on the right rows; bodies stay under the 4 MB cap; 429s are paced;
a refused key or a persistent 5xx loses nothing; preview, retention, alter/pause/resume/reset/drop.
"""

import collections
import json

import psycopg2
import pytest

from harness import query, scalar
from sync_helpers import KEYS, add_users, forget, logs, preview, request_counts, run_sync, session_settings, sql, tag


def profile(emulator, account, email=None, user_id=None):
    params = "api_key=%s" % KEYS[account]
    if email is not None:
        params += "&email=%s" % email
    if user_id is not None:
        params += "&userId=%s" % user_id
    users = emulator.call("GET", "/_emulator/users?" + params)["users"]
    return users[0] if len(users) == 1 else None


def last_seq(emulator):
    """The emulator's sequence number of its latest bulkUpdate request (0: none yet)."""
    requests = emulator.requests("bulk_update_users", limit=1)
    return requests[-1]["seq"] if requests else 0


def bulk_requests(emulator, after):
    """bulkUpdate requests received after sequence number `after` (the emulator keeps the last 100)."""
    return [r for r in emulator.requests("bulk_update_users") if r["seq"] > after]


def make_users(db, t, n):
    sql(db, "CREATE TABLE app_users (id integer PRIMARY KEY, uid text, email text, plan text, score integer, "
            "vip boolean, prefs jsonb)")
    sql(db, "INSERT INTO app_users SELECT g, %s || '-u' || g, %s || '.' || g || '@example.com', "
            "CASE WHEN g %% 2 = 0 THEN 'pro' ELSE 'free' END, g, g %% 3 = 0, "
            "jsonb_build_object('lang', 'en', 'n', g) FROM generate_series(1, %s) g", (t, t, n))


def create_user_sync(db, name="people", account="hybrid", **options):
    args = {"email_column": "email", "user_id_column": "uid",
            "data_fields": json.dumps({"plan": "plan", "score": "score", "vip": "vip", "prefs": "prefs"})}
    args.update(options)
    named = ", ".join("%s => %%(%s)s" % (k, k) for k in args)
    sql(db, "SELECT iterable_audience.create_user_sync(%%(name)s, %%(account)s, 'app_users', %s)" % named,
        dict(args, name=name, account=account))


def summary(db, run_id):
    return collections.Counter((r["operation"], r["action"], r["status"], r["error_code"]) for r in logs(db, run_id))


def test_first_run_sends_all_then_only_changed_rows(db, emulator):
    t = tag(db)
    make_users(db, t, 50)
    create_user_sync(db)
    info = query(db, "SELECT kind, list_id, merge_nested_objects, prefer_user_id FROM iterable_audience.syncs "
                     "WHERE sync_name = 'people'")[0]
    assert info == {"kind": "users", "list_id": None, "merge_nested_objects": False, "prefer_user_id": False}
    before = request_counts(emulator)

    first = run_sync(db, "people")
    assert first["status"] == "succeeded", first
    assert first["kind"] == "users"
    assert (first["planned_updates"], first["updated"], first["failed"]) == (50, 50, 0)
    assert (first["subscribed"], first["planned_subscribes"]) == (0, None)
    assert summary(db, first["run_id"]) == {("insert", "update_user", "succeeded", None): 50}
    sent = request_counts(emulator) - before
    assert sent["bulk_update_users"] >= 1 and "subscribe" not in sent
    # dataFields keep their JSON types.
    p = profile(emulator, "hybrid", user_id="%s-u3" % t)
    assert p["email"] == "%s.3@example.com" % t
    assert p["dataFields"] == {"plan": "free", "score": 3, "vip": True, "prefs": {"lang": "en", "n": 3}}

    # Second run: nothing changed, nothing sent.
    before = request_counts(emulator)
    second = run_sync(db, "people")
    assert second["status"] == "succeeded" and (second["planned_updates"], second["updated"]) == (0, 0), second
    assert (request_counts(emulator) - before)["bulk_update_users"] == 0

    # Two rows change, one joins, one leaves: only the three are sent.
    sql(db, "UPDATE app_users SET plan = 'enterprise' WHERE id IN (4, 5)")
    sql(db, "INSERT INTO app_users VALUES (51, %s, %s, 'free', 51, false, NULL)", ("%s-u51" % t, "%s.51@example.com" % t))
    sql(db, "DELETE FROM app_users WHERE id = 6")
    mark = last_seq(emulator)
    third = run_sync(db, "people")
    assert third["status"] == "succeeded" and (third["planned_updates"], third["updated"]) == (3, 3), third
    assert summary(db, third["run_id"]) == {("update", "update_user", "succeeded", None): 2,
                                            ("insert", "update_user", "succeeded", None): 1}
    sent_users = [u for r in bulk_requests(emulator, mark) for u in r["body"]["users"]]
    assert sorted(u["userId"] for u in sent_users) == sorted("%s-u%d" % (t, i) for i in (4, 5, 51))
    assert profile(emulator, "hybrid", user_id="%s-u4" % t)["dataFields"]["plan"] == "enterprise"
    # The row that left sends nothing; its profile stays.
    assert profile(emulator, "hybrid", user_id="%s-u6" % t) is not None

    # It comes back unchanged: it is sent again.
    sql(db, "INSERT INTO app_users VALUES (6, %s, %s, 'pro', 6, true, '{\"lang\": \"en\", \"n\": 6}')",
        ("%s-u6" % t, "%s.6@example.com" % t))
    fourth = run_sync(db, "people")
    assert (fourth["planned_updates"], fourth["updated"]) == (1, 1), fourth


def test_flags_are_passed_and_nested_objects_merge(db, emulator):
    t = tag(db)
    make_users(db, t, 3)
    add_users(emulator, "email", [{"email": "%s.1@example.com" % t, "dataFields": {"prefs": {"theme": "dark"}}}])
    create_user_sync(db, account="email", merge_nested_objects=True, prefer_user_id=True)
    mark = last_seq(emulator)
    run = run_sync(db, "people")
    assert run["status"] == "succeeded", run
    body = bulk_requests(emulator, mark)[0]["body"]
    assert all(u["mergeNestedObjects"] is True and u["preferUserId"] is True for u in body["users"]), body
    merged = profile(emulator, "email", email="%s.1@example.com" % t)["dataFields"]["prefs"]
    assert merged == {"theme": "dark", "lang": "en", "n": 1}


def test_every_failed_updates_array_lands_on_its_rows(db, emulator):
    t = tag(db)
    make_users(db, t, 12)
    # Real failures: a forgotten userId; a conflict (the email belongs to a user with another userId).
    forget(emulator, "hybrid", user_ids=["%s-u1" % t])
    add_users(emulator, "hybrid", [{"email": "%s.2@example.com" % t, "userId": "%s-other" % t}])
    create_user_sync(db)
    # A scripted answer naming rows in the other arrays (as Iterable reports them).
    e = lambda i: "%s.%d@example.com" % (t, i)  # noqa: E731
    u = lambda i: "%s-u%d" % (t, i)  # noqa: E731
    scripted = {"successCount": 4, "failCount": 8, "failedUpdates": {
        "invalidEmails": [e(3)], "invalidUserIds": [u(4)], "notFoundEmails": [e(5)], "notFoundUserIds": [u(6)],
        "forgottenEmails": [e(7)], "forgottenUserIds": [], "conflictEmails": [], "conflictUserIds": [u(8)],
        "invalidDataEmails": [e(9)], "invalidDataUserIds": [u(10)]}}
    emulator.set_faults({"rules": [{"kind": "status", "endpoint": "bulk_update_users", "status": 200,
                                    "body": scripted, "next": 1}]})
    session_settings(db, batch_size=100)
    first = run_sync(db, "people")
    codes = {r["record_key"]: (r["error_code"], r["error_message"]) for r in logs(db, first["run_id"])}
    expected = {3: ("invalid_email", "invalidEmails"), 4: ("invalid_user_id", "invalidUserIds"),
                5: ("not_found", "notFoundEmails"), 6: ("not_found", "notFoundUserIds"),
                7: ("forgotten", "forgottenEmails"), 8: ("conflict", "conflictUserIds"),
                9: ("invalid_data", "invalidDataEmails"), 10: ("invalid_data", "invalidDataUserIds")}
    for i, (code, array) in expected.items():
        assert codes[u(i)][0] == code and array in codes[u(i)][1], (i, codes[u(i)])
    for i in (1, 2, 11, 12):
        assert codes[u(i)] == (None, None), (i, codes[u(i)])
    assert first["failed"] == 8 and first["updated"] == 4

    # Now the emulator answers for itself (everything sent again): the forgotten and the conflicting
    # rows fail with Iterable's own arrays, the others succeed.
    emulator.clear_faults()
    sql(db, "SELECT iterable_audience.reset_sync('people')")
    second = run_sync(db, "people")
    codes = {r["record_key"]: (r["error_code"], r["error_message"]) for r in logs(db, second["run_id"])}
    assert codes[u(1)][0] == "forgotten" and "forgottenUserIds" in codes[u(1)][1]
    assert codes[u(2)][0] == "conflict" and "conflict" in codes[u(2)][1]
    assert all(codes[u(i)] == (None, None) for i in range(3, 11)), codes
    # A forgotten record is remembered as not to be retried (reference 2.8: not updated).
    remembered = {r["record_key"]: r["retryable"]
                  for r in query(db, "SELECT record_key, retryable FROM iterable_audience.record_failure")}
    assert remembered == {u(1): False, u(2): True}, remembered


def test_type_mismatch_refusal_is_split_to_the_offending_row(db, emulator):
    t = tag(db)
    sql(db, "CREATE TABLE app_users (uid text, email text, level jsonb)")
    sql(db, "INSERT INTO app_users SELECT %s || '-u' || g, NULL, to_jsonb(g) FROM generate_series(1, 9) g", (t,))
    sql(db, "INSERT INTO app_users VALUES (%s, NULL, '\"high\"')", ("%s-u10" % t,))
    # The project knows "level" as a number already.
    add_users(emulator, "userid", [{"userId": "%s-seed" % t, "dataFields": {"level": 1}}])
    sql(db, "SELECT iterable_audience.create_user_sync('levels', 'userid', 'app_users', user_id_column => 'uid', "
            "data_fields => '{\"level\": \"level\"}')")
    run = run_sync(db, "levels")
    assert run["status"] == "succeeded_with_failures", run
    assert (run["updated"], run["failed"]) == (9, 1), run
    failed = [r for r in logs(db, run["run_id"]) if r["status"] == "failed"]
    assert [r["record_key"] for r in failed] == ["%s-u10" % t]
    assert failed[0]["error_code"] == "invalid_data"
    assert "RequestFieldsTypesMismatched" in failed[0]["error_message"] and "level" in failed[0]["error_message"]
    assert profile(emulator, "userid", user_id="%s-u5" % t)["dataFields"] == {"level": 5}
    assert profile(emulator, "userid", user_id="%s-u10" % t) is None
    # Several requests for one batch, one sync_logs row per record.
    assert run["api_requests"] > 2
    assert len(logs(db, run["run_id"])) == 10


def test_bodies_stay_under_the_cap_and_a_record_over_it_fails_too_large(db, emulator):
    t = tag(db)
    sql(db, "CREATE TABLE app_users (uid text, items jsonb)")
    # About 850 KB of JSON per record: at most four fit in a 4,000,000-byte body.
    sql(db, "INSERT INTO app_users SELECT %s || '-big' || g, (SELECT jsonb_agg(repeat('x', 30) || i) "
            "FROM generate_series(1, 25000) i) FROM generate_series(1, 10) g", (t,))
    sql(db, "INSERT INTO app_users SELECT %s || '-huge', (SELECT jsonb_agg(repeat('y', 30) || i) "
            "FROM generate_series(1, 130000) i)", (t,))
    sql(db, "SELECT iterable_audience.create_user_sync('big', 'userid', 'app_users', user_id_column => 'uid', "
            "data_fields => '{\"items\": \"items\"}')")
    too_large = [r for r in preview(db, "big") if r["error_code"] == "too_large"]
    assert [r["record_key"] for r in too_large] == ["%s-huge" % t]
    mark = last_seq(emulator)
    run = run_sync(db, "big")
    assert run["status"] == "succeeded_with_failures", run
    assert (run["updated"], run["failed"]) == (10, 1), run
    failed = [r for r in logs(db, run["run_id"]) if r["status"] == "failed"]
    assert [(r["record_key"], r["error_code"]) for r in failed] == [("%s-huge" % t, "too_large")]
    requests = bulk_requests(emulator, mark)
    assert len(requests) >= 3
    # The emulator refuses (413) a body over 4,000,000 bytes: none was.
    assert all(r["status"] == 200 for r in requests), [r["status"] for r in requests]
    assert sum(len(r["body"]["users"]) for r in requests) == 10
    assert profile(emulator, "userid", user_id="%s-big7" % t) is not None


def test_429_are_paced_and_retried(db, emulator):
    t = tag(db)
    make_users(db, t, 60)
    create_user_sync(db)
    emulator.set_faults({"rate_limits": [{"endpoint": "bulk_update_users", "rate": 5, "burst": 1}]})
    session_settings(db, batch_size=10, max_requests_in_flight=2, max_attempts=10, retry_max_delay_ms=1000)
    run = run_sync(db, "people")
    assert run["status"] == "succeeded", run
    assert run["updated"] == 60 and run["rate_limited"] > 0, run
    assert summary(db, run["run_id"]) == {("insert", "update_user", "succeeded", None): 60}


def test_refused_key_and_persistent_5xx_lose_nothing(db, emulator):
    t = tag(db)
    make_users(db, t, 20)
    create_user_sync(db)
    sql(db, "SELECT iterable_audience.alter_account('hybrid', api_key => 'wrong-key')")
    before = request_counts(emulator)
    run = run_sync(db, "people")
    assert run["status"] == "failed" and "API key" in run["error"] and "wrong-key" not in run["error"], run
    assert (request_counts(emulator) - before).get("bulk_update_users", 0) == 0
    assert logs(db, run["run_id"]) == []
    sql(db, "SELECT iterable_audience.alter_account('hybrid', api_key => %s)", (KEYS["hybrid"],))

    emulator.set_faults({"rules": [{"kind": "error_500", "endpoint": "bulk_update_users"}]})
    session_settings(db, max_attempts=2)
    run = run_sync(db, "people")
    assert run["status"] == "succeeded_with_failures" and run["updated"] == 0 and run["failed"] == 20, run
    assert set(r["error_code"] for r in logs(db, run["run_id"])) == {"http_error"}
    emulator.clear_faults()
    run = run_sync(db, "people")
    assert run["status"] == "succeeded" and run["updated"] == 20, run
    assert run_sync(db, "people")["planned_updates"] == 0


def test_preview_shows_what_the_next_run_sends(db, emulator):
    t = tag(db)
    make_users(db, t, 5)
    sql(db, "INSERT INTO app_users VALUES (6, NULL, 'not-an-email', 'free', 6, false, NULL)")
    create_user_sync(db)
    plan = preview(db, "people")
    assert collections.Counter((r["operation"], r["action"], r["valid"], r["error_code"]) for r in plan) == {
        ("insert", "update_user", True, None): 5, ("insert", "update_user", False, "invalid_email"): 1}
    row = [r for r in plan if r["record_key"] == "%s-u2" % t][0]
    assert row["data_fields"] == {"plan": "pro", "score": 2, "vip": False, "prefs": {"lang": "en", "n": 2}}
    run = run_sync(db, "people")
    assert (run["updated"], run["failed"]) == (5, 1), run
    sql(db, "DELETE FROM app_users WHERE id = 1")
    sql(db, "UPDATE app_users SET score = 100 WHERE id = 2")
    assert [(r["operation"], r["record_key"]) for r in preview(db, "people") if r["valid"]] == [("update", "%s-u2" % t)]


def test_retention_alter_pause_reset_drop(db, emulator):
    t = tag(db)
    make_users(db, t, 5)
    create_user_sync(db, snapshot_retention=1, sync_log_retention_days=0)
    first = run_sync(db, "people")
    sql(db, "UPDATE app_users SET score = score + 1")
    second = run_sync(db, "people")
    assert second["updated"] == 5
    assert scalar(db, "SELECT count(*) FROM iterable_audience.snapshot s JOIN iterable_audience.sync USING (sync_id) "
                      "WHERE sync_name = 'people'") == 1
    assert logs(db, first["run_id"]) == []       # retention 0 days: only the latest run's logs stay
    assert len(logs(db, second["run_id"])) == 5

    # List-only arguments are refused; the user flags can be altered.
    with pytest.raises(psycopg2.Error) as err:
        sql(db, "SELECT iterable_audience.alter_sync('people', campaign_id => 5)")
    assert "list syncs only" in str(err.value)
    db.rollback() if not db.autocommit else None
    sql(db, "SELECT iterable_audience.alter_sync('people', merge_nested_objects => true, "
            "data_fields => '{\"plan\": \"plan\"}')")
    assert scalar(db, "SELECT merge_nested_objects FROM iterable_audience.syncs WHERE sync_name = 'people'") is True
    run = run_sync(db, "people")
    assert run["updated"] == 5  # the values sent changed

    sql(db, "SELECT iterable_audience.pause_sync('people')")
    assert scalar(db, "SELECT paused FROM iterable_audience.syncs WHERE sync_name = 'people'") is True
    sql(db, "SELECT iterable_audience.resume_sync('people')")
    sql(db, "SELECT iterable_audience.reset_sync('people')")
    run = run_sync(db, "people")
    assert run["updated"] == 5, run  # a reset sends everything again
    sql(db, "SELECT iterable_audience.drop_sync('people')")
    assert scalar(db, "SELECT count(*) FROM iterable_audience.syncs") == 0


@pytest.mark.parametrize("call, message, hint", [
    ("email_column => 'emial', user_id_column => 'uid'", 'column "emial"', 'Did you mean "email"'),
    ("user_id_column => 'uid', data_fields => '{\"plan\": \"plann\"}'", 'column "plann"', 'Did you mean "plan"'),
    ("user_id_column => 'uid', data_fields => '[\"plan\"]'", "data_fields must be a JSON object", "source columns"),
    ("user_id_column => 'uid', data_fields => '{\"plan\": 3}'", "must name a source column", "source columns"),
    ("user_id_column => 'uid', data_fields => '{\"email\": \"email\"}'", 'must not map "email"', "email_column"),
])
def test_create_user_sync_errors(db, emulator, call, message, hint):
    make_users(db, tag(db), 1)
    with pytest.raises(psycopg2.Error) as err:
        sql(db, "SELECT iterable_audience.create_user_sync('bad', 'hybrid', 'app_users', %s)" % call)
    assert message in err.value.diag.message_primary, err.value.diag.message_primary
    assert hint in (err.value.diag.message_hint or ""), err.value.diag.message_hint


def test_create_user_sync_identifier_rules_per_project_type(db, emulator):
    make_users(db, tag(db), 1)

    def error(account, call):
        with pytest.raises(psycopg2.Error) as err:
            sql(db, "SELECT iterable_audience.create_user_sync('bad', %%s, 'app_users', %s)" % call, (account,))
        return err.value.diag.message_primary

    assert "user_id_column is required" in error("userid", "email_column => 'email'")
    assert "email_column is required" in error("email", "user_id_column => 'uid'")
    assert "prefer_user_id is only for email-based projects" in error("hybrid", "email_column => 'email', "
                                                                                "prefer_user_id => true")
    # In an email-based project, preferUserId lets a userId alone identify a user.
    sql(db, "SELECT iterable_audience.create_user_sync('ok', 'email', 'app_users', user_id_column => 'uid', "
            "email_column => 'email', prefer_user_id => true)")


def test_pacing_is_per_project_and_endpoint(db, emulator):
    """A list sync and a user sync of one account pace apart: one shared slot per endpoint."""
    t = tag(db)
    make_users(db, t, 5)
    create_user_sync(db)
    sql(db, "SELECT iterable_audience.create_sync('members', 'hybrid', 'app_users', new_list_name => 'members', "
            "email_column => 'email', user_id_column => 'uid')")
    assert run_sync(db, "people")["updated"] == 5
    assert run_sync(db, "members")["subscribed"] == 5
    slots = query(db, "SELECT count(*) AS n FROM iterable_audience.rate_controllers() c "
                      "JOIN iterable_audience.account a USING (account_id) "
                      "WHERE c.database_oid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                      "AND a.account_name = 'hybrid'")
    assert slots[0]["n"] == 2, slots  # /api/users/bulkUpdate and /api/lists/subscribe


def test_health_and_alerts_name_the_kind(db, emulator):
    t = tag(db)
    make_users(db, t, 3)
    create_user_sync(db)
    sql(db, "LISTEN iterable_audience")
    run = run_sync(db, "people")
    db.poll()
    payloads = [json.loads(n.payload) for n in db.notifies]
    assert [(p["sync_name"], p["kind"], p["status"]) for p in payloads if p["run_id"] == run["run_id"]] == [
        ("people", "users", "succeeded")]
    assert query(db, "SELECT kind, last_run_status FROM iterable_audience.sync_health WHERE sync_name = 'people'") == [
        {"kind": "users", "last_run_status": "succeeded"}]
