"""0.1.0 -> 0.2.0 (sql/iterable_audience--0.1.0--0.2.0.sql): an installed 0.1.0 keeps its accounts,
syncs, runs, logs and snapshots; after ALTER EXTENSION ... UPDATE nothing is resent, the list sync
keeps working and user syncs can be made. Until the update, list syncs keep running on the 0.1.0
tables with this library (definitions/sync_definition.hpp: sync_kinds_installed)."""

from harness import query, scalar
from sync_helpers import KEYS, logs, members, request_counts, run_sync, snapshot_rows, sql


def test_upgrade_from_0_1_0_keeps_state_and_resends_nothing(cluster, emulator):
    admin = cluster.connect()
    sql(admin, "CREATE DATABASE upgrade_test")
    admin.close()
    db = cluster.connect(dbname="upgrade_test")
    try:
        sql(db, "CREATE EXTENSION iterable_audience VERSION '0.1.0'")
        assert scalar(db, "SELECT extversion FROM pg_extension WHERE extname = 'iterable_audience'") == "0.1.0"
        sql(db, "SELECT iterable_audience.create_account('hybrid', %s, project_type => 'hybrid', base_url => %s)",
            (KEYS["hybrid"], emulator.url))
        sql(db, "CREATE TABLE people (uid text, email text, plan text)")
        sql(db, "INSERT INTO people SELECT 'upg-u' || g, 'upg.' || g || '@example.com', 'free' "
                "FROM generate_series(1, 30) g")
        sql(db, "SELECT iterable_audience.create_sync('members', 'hybrid', 'people', new_list_name => 'upg members', "
                "email_column => 'email', user_id_column => 'uid', data_fields => '{\"plan\": \"plan\"}')")
        first = run_sync(db, "members")
        assert first["status"] == "succeeded" and first["subscribed"] == 30, first
        list_id = scalar(db, "SELECT list_id FROM iterable_audience.syncs WHERE sync_name = 'members'")
        snapshot_before = snapshot_rows(db, "members")
        logs_before = len(logs(db, first["run_id"]))

        sql(db, "ALTER EXTENSION iterable_audience UPDATE")
        assert scalar(db, "SELECT extversion FROM pg_extension WHERE extname = 'iterable_audience'") == "0.2.0"
        # State intact, and the old sync is a list sync.
        assert query(db, "SELECT kind, list_id FROM iterable_audience.syncs WHERE sync_name = 'members'") == [
            {"kind": "list", "list_id": list_id}]
        assert scalar(db, "SELECT kind FROM iterable_audience.sync_runs WHERE run_id = %s", (first["run_id"],)) == "list"
        assert snapshot_rows(db, "members") == snapshot_before
        assert len(logs(db, first["run_id"])) == logs_before

        # Nothing is resent.
        before = request_counts(emulator)
        second = run_sync(db, "members")
        assert second["status"] == "succeeded", second
        assert (second["planned_subscribes"], second["planned_unsubscribes"]) == (0, 0), second
        assert (request_counts(emulator) - before).get("subscribe", 0) == 0

        # The list sync still works.
        sql(db, "UPDATE people SET plan = 'pro' WHERE uid = 'upg-u1'")
        sql(db, "DELETE FROM people WHERE uid = 'upg-u2'")
        third = run_sync(db, "members")
        assert (third["subscribed"], third["unsubscribed"]) == (1, 1), third
        assert len(members(emulator, list_id)) == 29

        # A user sync works after the upgrade.
        sql(db, "SELECT iterable_audience.create_user_sync('profiles', 'hybrid', 'people', email_column => 'email', "
                "user_id_column => 'uid', data_fields => '{\"plan\": \"plan\"}')")
        users = run_sync(db, "profiles")
        assert users["status"] == "succeeded" and users["updated"] == 29 and users["kind"] == "users", users
        assert run_sync(db, "profiles")["planned_updates"] == 0
    finally:
        db.close()
        admin = cluster.connect()
        sql(admin, "DROP DATABASE upgrade_test WITH (FORCE)")
        admin.close()
