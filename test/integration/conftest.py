import itertools

import pytest

import invariants
from harness import Cluster, Emulator, query, scalar

_names = itertools.count(1)


@pytest.fixture(scope="session")
def cluster():
    c = Cluster()
    yield c
    c.destroy()


@pytest.fixture(scope="session")
def emulator():
    e = Emulator()
    yield e
    e.stop()


@pytest.fixture(autouse=True)
def invariant_baseline(emulator):
    """The emulator's count of invalid values received when the test begins (invariants.py)."""
    invariants.begin(emulator)


@pytest.fixture
def db(cluster, emulator):
    """A fresh database with the extension and one account per emulator project type."""
    name = "it_%d" % next(_names)
    admin = cluster.connect()
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE %s" % name)
    conn = cluster.connect(dbname=name)
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION iterable_audience")
        for account, key, ptype in (("hybrid", "test-key-hybrid", "hybrid"), ("email", "test-key-email", "email"),
                                    ("userid", "test-key-userid", "user_id")):
            cur.execute("SELECT iterable_audience.create_account(%s, %s, project_type => %s, base_url => %s)",
                        (account, key, ptype, emulator.url))
        cur.execute("SET iterable_audience.retry_base_delay_ms = 10")
        cur.execute("SET iterable_audience.retry_max_delay_ms = 200")
    emulator.clear_faults()
    admin.close()
    yield conn
    conn.close()
    emulator.clear_faults()
    # A fresh connection: a test may have crashed the server (kill -9 of a worker restarts it).
    admin = cluster.connect()
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE %s WITH (FORCE)" % name)
    admin.close()
