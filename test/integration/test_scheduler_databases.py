"""The scheduler in every database (docs/scheduler.md, "One scheduler per database"): a launcher starts a
scheduler in each database where the extension is installed, notices CREATE EXTENSION and DROP DATABASE,
waits for a free background worker slot, and iterable_audience.database_name restricts it to one database.

Nothing here asserts a wall-clock duration: every wait is a poll with a generous timeout.
"""

import pytest

from harness import Cluster, query, scalar
from test_scheduler import (BASE_CONF, create_sync, install, make_due, make_people, runs, scheduler_pids, slow_subscribes,
                            sql, status, sync_row, unique, wait_for, wait_for_finished_run)

# Every database (the setting's default), and one scheduled run at a time in each database.
EVERY_DATABASE = dict(BASE_CONF, **{"iterable_audience.database_name": "''",
                                    "iterable_audience.max_concurrent_syncs": "1"})


def served_pid(conn, timeout=60):
    """The pid of this database's scheduler, once it serves the database."""
    return wait_for(lambda: status(conn)["pid"] if status(conn)["serves_this_database"] else None, timeout,
                    what="a scheduler serving database %s" % conn.info.dbname)


def schedulers_by_database(conn):
    return {r["datname"]: r["pid"] for r in query(conn, "SELECT datname, pid FROM pg_stat_activity "
                                                        "WHERE backend_type = 'iterable_audience scheduler'")}


def new_database(cluster, emulator, name):
    admin = cluster.connect()
    sql(admin, "CREATE DATABASE %s" % name)
    admin.close()
    conn = cluster.connect(dbname=name)
    install(conn, emulator)
    return conn


@pytest.fixture(scope="module")
def multi(emulator):
    """A cluster serving every database, with the extension in databases alpha and beta."""
    c = Cluster(extra_conf=EVERY_DATABASE)
    for name in ("alpha", "beta"):
        new_database(c, emulator, name).close()
    yield c
    c.destroy()


@pytest.fixture
def alpha(multi, emulator):
    emulator.clear_faults()
    conn = multi.connect(dbname="alpha")
    yield conn
    conn.close()
    emulator.clear_faults()


@pytest.fixture
def beta(multi):
    conn = multi.connect(dbname="beta")
    yield conn
    conn.close()


def test_two_databases_run_on_schedule_at_once(multi, alpha, beta, emulator):
    """Each database has its own scheduler, and both start their due syncs at the same due time, although
    max_concurrent_syncs = 1: the limit is per database."""
    pa, pb = served_pid(alpha), served_pid(beta)
    assert pa != pb
    assert status(alpha)["database_name"] == "alpha" and status(beta)["database_name"] == "beta"
    on_server = schedulers_by_database(alpha)
    assert on_server.get("alpha") == pa and on_server.get("beta") == pb, on_server
    assert scalar(alpha, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'iterable_audience launcher' "
                         "AND datname IS NULL") == 1

    name = unique("tick")
    people = {}
    for conn in (alpha, beta):
        people[conn.info.dbname] = make_people(conn, name + "_" + conn.info.dbname, 10)
        create_sync(conn, name, name + "_" + conn.info.dbname, schedule="every 1 minute")
    # Both due at the same minute (if the two create_sync calls straddled a minute, schedule them again).
    for _ in range(5):
        due = [sync_row(conn, name)["next_run_at"] for conn in (alpha, beta)]
        if due[0] == due[1]:
            break
        for conn in (alpha, beta):
            sql(conn, "SELECT iterable_audience.alter_sync(%s, schedule => 'every 1 minute')", (name,))
    assert due[0] == due[1], due
    slow_subscribes(emulator, 4000)  # each run lasts a few seconds: long enough to overlap

    def both_running():
        return all(any(r["status"] == "running" for r in runs(conn, name)) for conn in (alpha, beta))
    wait_for(both_running, timeout=150, interval=0.2, what="a scheduled run going in both databases at once")
    emulator.clear_faults()

    done = {conn.info.dbname: wait_for_finished_run(conn, name, timeout=90)[0] for conn in (alpha, beta)}
    for db, run in done.items():
        assert run["trigger"] == "schedule" and run["status"] == "succeeded", run
        assert run["started_at"] >= due[0], run
    a, b = done["alpha"], done["beta"]
    assert a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"], (a, b)
    for conn in (alpha, beta):
        assert emulator.member_keys(sync_row(conn, name)["list_id"]) == people[conn.info.dbname]
        sql(conn, "SELECT iterable_audience.pause_sync(%s)", (name,))
    assert status(alpha)["runs_started"] >= 1 and status(beta)["runs_started"] >= 1


def test_create_extension_in_a_database_created_after_start_is_served(multi, alpha, emulator):
    gamma = new_database(multi, emulator, "gamma")  # CREATE EXTENSION wakes the launcher at commit
    try:
        pid = served_pid(gamma)
        assert pid != status(alpha)["pid"]
        assert 'iterable_audience scheduler: serving database "gamma"' in multi.server_log()
        assert scalar(gamma, "SELECT iterable_audience.wake_scheduler()") is True
        people = make_people(gamma, "gamma_people", 4)
        create_sync(gamma, "gamma_sync", "gamma_people")
        make_due(gamma, "gamma_sync")
        run = wait_for_finished_run(gamma, "gamma_sync")[0]
        assert run["trigger"] == "schedule" and run["status"] == "succeeded", run
        assert emulator.member_keys(sync_row(gamma, "gamma_sync")["list_id"]) == people
    finally:
        gamma.close()


def test_drop_database_of_a_served_database_is_not_blocked(multi, alpha, beta, emulator):
    delta = new_database(multi, emulator, "delta")
    served_pid(delta)
    delta.close()
    pa, pb = served_pid(alpha), served_pid(beta)

    admin = multi.connect()
    try:
        sql(admin, "SET statement_timeout = '30s'")
        sql(admin, "DROP DATABASE delta")  # no FORCE: its scheduler steps aside
        assert scalar(admin, "SELECT count(*) FROM pg_database WHERE datname = 'delta'") == 0
        assert 'stepping aside: database "delta"' in multi.server_log()
    finally:
        admin.close()

    # The other databases keep their schedulers, and those keep running syncs.
    for conn in (alpha, beta):
        name = unique("after_drop")
        make_people(conn, name, 3)
        create_sync(conn, name, name)
        make_due(conn, name)
        run = wait_for_finished_run(conn, name)[0]
        assert run["trigger"] == "schedule" and run["status"] == "succeeded", run
    assert (status(alpha)["pid"], status(beta)["pid"]) == (pa, pb)
    assert "delta" not in schedulers_by_database(alpha)


def test_database_name_restricts_the_scheduler_to_one_database(emulator):
    c = Cluster(extra_conf=dict(BASE_CONF, **{"iterable_audience.database_name": "'beta'"}))
    try:
        alpha, beta = new_database(c, emulator, "alpha"), new_database(c, emulator, "beta")
        pid = served_pid(beta)
        st = status(alpha)
        assert st["pid"] is None and not st["serves_this_database"] and st["database_name"] == "beta", st
        assert st["state"].startswith("not served here"), st
        assert scalar(alpha, "SELECT iterable_audience.wake_scheduler()") is False

        for conn in (alpha, beta):
            make_people(conn, "people", 3)
            create_sync(conn, "restricted", "people")
        make_due(alpha, "restricted")
        make_due(beta, "restricted")
        run = wait_for_finished_run(beta, "restricted")[0]
        assert run["trigger"] == "schedule" and run["status"] == "succeeded", run
        # Had alpha a scheduler, its due sync would have started as promptly as beta's.
        assert runs(alpha, "restricted") == []
        assert schedulers_by_database(alpha) == {"beta": pid}
        alpha.close()
        beta.close()
    finally:
        c.destroy()


def test_no_free_worker_slot_is_logged_and_retried(emulator):
    """Three worker slots: the launcher, the logical replication launcher and one scheduler."""
    c = Cluster(extra_conf=dict(EVERY_DATABASE, max_worker_processes="3"))
    try:
        first = c.connect()
        install(first, emulator)
        served_pid(first)
        second = new_database(c, emulator, "second")
        wait_for(lambda: "no free background worker slot" in status(second)["state"],
                 what="scheduler_status() to say the scheduler waits for a slot")
        assert status(second)["pid"] is None
        assert ('no free background worker slot for the scheduler of database "second" (max_worker_processes = 3)'
                in c.server_log())

        sql(first, "DROP EXTENSION iterable_audience CASCADE")  # its scheduler exits: a slot is free again
        served_pid(second)
        assert 'started the scheduler of database "second" after waiting for a background worker slot' \
            in c.server_log()
        assert list(schedulers_by_database(first)) == ["second"]
        first.close()
        second.close()
    finally:
        c.destroy()


def test_killed_launcher_is_restarted_and_leaves_the_schedulers_alone(multi, alpha, beta, emulator):
    pa, pb = served_pid(alpha), served_pid(beta)
    launcher = scalar(alpha, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'iterable_audience launcher'")
    assert scalar(alpha, "SELECT pg_terminate_backend(%s)", (launcher,))
    wait_for(lambda: scalar(alpha, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'iterable_audience launcher' "
                                   "AND pid <> %s", (launcher,)), what="the postmaster to start a new launcher")
    # The new launcher serves a new database, and does not start a second scheduler where one runs.
    epsilon = new_database(multi, emulator, "epsilon")
    try:
        served_pid(epsilon)
        counts = query(alpha, "SELECT datname, count(*) AS n FROM pg_stat_activity "
                              "WHERE backend_type = 'iterable_audience scheduler' GROUP BY datname")
        assert all(r["n"] == 1 for r in counts), counts
        assert (status(alpha)["pid"], status(beta)["pid"]) == (pa, pb)
    finally:
        epsilon.close()
