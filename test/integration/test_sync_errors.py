"""Definitions refused at create_sync(), and sources that fail at run time (the run fails whole,
nobody is unsubscribed)."""

import psycopg2.errors
import pytest

from harness import scalar

from invariants import check_invariants
from sync_helpers import list_id_of, logs, members, request_counts, run_sync, snapshot_rows, sql, tag


def make_people(db, rows=20):
    t = tag(db)
    sql(db, "CREATE TABLE people AS SELECT g AS n, %s || '.e' || g || '@example.com' AS email, "
            "'Name ' || g AS first_name FROM generate_series(1, %s) g", (t, rows))


def test_misspelled_column_is_named_with_a_suggestion(db, emulator):
    make_people(db)
    before = request_counts(emulator)
    with pytest.raises(psycopg2.errors.UndefinedColumn) as err:
        sql(db, "SELECT iterable_audience.create_sync('typo', 'email', 'people', new_list_name => 'typo', "
                "email_column => 'emial')")
    assert '"emial"' in err.value.diag.message_primary and "email_column" in err.value.diag.message_primary
    assert 'Did you mean "email"?' in err.value.diag.message_hint
    with pytest.raises(psycopg2.errors.UndefinedColumn) as err:
        sql(db, "SELECT iterable_audience.create_sync('typo', 'email', 'people', new_list_name => 'typo', "
                "email_column => 'email', data_fields => '{\"firstName\": \"frist_name\"}')")
    message = err.value.diag.message_primary
    assert '"frist_name"' in message and "data_fields.firstName" in message
    assert 'Did you mean "first_name"?' in err.value.diag.message_hint
    # Refused before any list was created.
    assert request_counts(emulator) == before
    assert scalar(db, "SELECT count(*) FROM iterable_audience.sync") == 0


def test_update_existing_users_only_refused_for_email_projects(db, emulator):
    make_people(db)
    with pytest.raises(psycopg2.errors.InvalidParameterValue) as err:
        sql(db, "SELECT iterable_audience.create_sync('existing', 'email', 'people', new_list_name => 'existing', "
                "email_column => 'email', update_existing_users_only => true)")
    assert "update_existing_users_only" in err.value.diag.message_primary
    assert "email-based" in err.value.diag.message_primary


def assert_failed_whole(db, emulator, run, list_id, audience_members, snapshot):
    assert run["status"] == "failed", run
    assert "nothing was sent and no one was unsubscribed" in run["error"]
    assert (run["subscribed"], run["unsubscribed"], run["api_requests"]) == (0, 0, 0)
    assert logs(db, run["run_id"]) == []
    assert members(emulator, list_id) == audience_members
    assert snapshot_rows(db, "src") == snapshot


def test_dropped_source_table_fails_the_run(db, emulator):
    make_people(db)
    sql(db, "SELECT iterable_audience.create_sync('src', 'email', 'people', new_list_name => 'src', "
            "email_column => 'email')")
    assert run_sync(db, "src")["status"] == "succeeded"
    list_id = list_id_of(db, "src")
    on_list, snapshot = members(emulator, list_id), snapshot_rows(db, "src")
    assert len(on_list) == 20
    sql(db, "DROP TABLE people")
    before = request_counts(emulator)

    run = run_sync(db, "src")

    assert_failed_whole(db, emulator, run, list_id, on_list, snapshot)
    assert "people" in run["error"] and "does not exist" in run["error"]
    assert "alter_sync" in run["error"]
    assert request_counts(emulator) == before
    # Back in place, the next run is a no-op.
    make_people(db)
    again = run_sync(db, "src")
    assert (again["status"], again["api_requests"]) == ("succeeded", 0)
    check_invariants(db, emulator, "src")


def test_source_query_error_fails_the_run(db, emulator):
    make_people(db)
    sql(db, "SELECT iterable_audience.create_sync('src', 'email', "
            "'SELECT email FROM people WHERE 100 / (n - 21) <> 0', new_list_name => 'src', email_column => 'email')")
    assert run_sync(db, "src")["status"] == "succeeded"
    list_id = list_id_of(db, "src")
    on_list, snapshot = members(emulator, list_id), snapshot_rows(db, "src")
    sql(db, "INSERT INTO people VALUES (21, 'x@example.com', 'X')")
    before = request_counts(emulator)

    run = run_sync(db, "src")

    assert_failed_whole(db, emulator, run, list_id, on_list, snapshot)
    assert "division by zero" in run["error"]
    assert request_counts(emulator) == before
    check_invariants(db, emulator, "src")
