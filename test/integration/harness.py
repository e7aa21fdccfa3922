"""Test harness: a temporary PostgreSQL cluster run as the postgres OS user, and the emulator.

Used by the integration tests and the demo. Standard library plus psycopg2 (Debian package).
"""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import psycopg2
import psycopg2.extras

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_OS_USER = os.environ.get("PG_OS_USER", "postgres")


def pg_bindir():
    return subprocess.check_output([os.environ.get("PG_CONFIG", "pg_config"), "--bindir"], text=True).strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_pg_user(cmd):
    """The command, run as the postgres OS user when we are root."""
    return (["runuser", "-u", PG_OS_USER, "--"] + cmd) if os.geteuid() == 0 else cmd


def pg_server_env():
    """IA_PG_ENV="KEY=VALUE ...": extra environment of pg_ctl and the server it starts (whitespace-
    separated pairs, values without whitespace); scripts/sanitized-tests.sh passes LD_PRELOAD and
    ASAN_OPTIONS this way. An `env` prefix for the command, or nothing."""
    pairs = os.environ.get("IA_PG_ENV", "").split()
    return ["env"] + pairs if pairs else []


class Cluster:
    """A throwaway cluster with iterable_audience preloaded, on a free port and a private socket dir."""

    def __init__(self, extra_conf=None):
        self.dir = tempfile.mkdtemp(prefix="ia_cluster_")
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            os.chown(self.dir, pwd.getpwnam(PG_OS_USER).pw_uid, -1)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.port = free_port()
        self.bindir = pg_bindir()
        subprocess.run(as_pg_user([os.path.join(self.bindir, "initdb"), "-D", self.data, "-A", "trust",
                                   "-E", "UTF8", "--locale=C", "--no-sync", "-U", "postgres"]),
                       check=True, stdout=subprocess.DEVNULL)
        conf = {
            "port": str(self.port),
            "listen_addresses": "''",
            "unix_socket_directories": "'%s'" % self.dir,
            "shared_preload_libraries": "'iterable_audience'",
            # The scheduler serves only 'postgres' (where conftest's databases are not), so that no
            # scheduled run starts behind a test's back; test_scheduler_databases.py sets '' (every
            # database, the default of the setting).
            "iterable_audience.database_name": "'postgres'",
            "max_worker_processes": "32",
            "fsync": "off",
            "synchronous_commit": "off",
            "log_min_messages": "info",
            "log_line_prefix": "'%m [%p] %b '",
        }
        conf.update(extra_conf or {})
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            for key, value in conf.items():
                f.write("%s = %s\n" % (key, value))
        self.start()

    def pg_ctl(self, *args, check=True):
        return subprocess.run(as_pg_user(pg_server_env() + [os.path.join(self.bindir, "pg_ctl"), "-D", self.data,
                                                            "-l", self.log, "-w", "-t", "60"] + list(args)),
                              check=check, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self):
        self.pg_ctl("start")

    def stop(self, mode="fast"):
        self.pg_ctl("stop", "-m", mode, check=False)

    def restart(self):
        self.pg_ctl("restart", "-m", "fast")

    def connect(self, dbname="postgres", user="postgres", autocommit=True):
        conn = psycopg2.connect(host=self.dir, port=self.port, dbname=dbname, user=user)
        conn.autocommit = autocommit
        return conn

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def server_log(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def destroy(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class Emulator:
    """The project's Iterable emulator on a free loopback port, with a small admin client."""

    def __init__(self, args=()):
        self.dir = tempfile.mkdtemp(prefix="ia_emulator_")
        port_file = os.path.join(self.dir, "port")
        self.log = open(os.path.join(self.dir, "emulator.log"), "w")
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "emulator", "iterable_emulator.py"),
                                      "--host", "127.0.0.1", "--port", "0", "--port-file", port_file] + list(args),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            if os.path.exists(port_file) and os.path.getsize(port_file) > 0:
                break
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port

    def call(self, method, path, body=None, api_key=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if api_key:
            req.add_header("Api-Key", api_key)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise AssertionError("emulator %s %s -> %d %s" % (method, path, e.code, e.read()[:500]))
        ctype = resp.headers.get("Content-Type", "")
        return json.loads(raw) if "json" in ctype else raw.decode()

    def state(self):
        return self.call("GET", "/_emulator/state")

    def members(self, list_id):
        return self.call("GET", "/_emulator/lists/%d/members" % list_id)

    def member_keys(self, list_id, key="email"):
        return {m.get(key) for m in self.members(list_id)}

    def set_faults(self, faults):
        return self.call("POST", "/_emulator/faults", faults)

    def clear_faults(self):
        return self.set_faults({})

    def reset(self):
        return self.call("POST", "/_emulator/reset", {})

    def requests(self, endpoint=None, limit=1000):
        query = "?limit=%d" % limit + ("&endpoint=%s" % endpoint if endpoint else "")
        return self.call("GET", "/_emulator/requests" + query)["requests"]

    def invalid_received(self):
        return self.call("GET", "/_emulator/invalid_received")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def query(conn, sql, params=None):
    """All rows as dicts."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def scalar(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
        return row[0] if row else None
