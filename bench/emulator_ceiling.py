#!/usr/bin/env python3
"""Throughput ceiling of the Iterable emulator on POST /api/lists/subscribe.

Starts emulator/iterable_emulator.py on a free loopback port, creates a list, then drives
subscribe with N-subscriber bodies from several keep-alive connections (raw sockets, one
thread each) for a bounded time, and prints subscribers/second and requests/second.

    python3 bench/emulator_ceiling.py [--seconds 10] [--connections 4] [--batch 1000]
                                      [--mode new|existing] [--project hybrid|email|user_id]

--mode new      every subscriber is a user the emulator has never seen (creation path)
--mode existing bodies cycle over a fixed pool of users (update path after the first pass)
Standard library only.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATOR = os.path.join(ROOT, "emulator", "iterable_emulator.py")
KEYS = {"hybrid": "test-key-hybrid", "email": "test-key-email", "user_id": "test-key-userid"}


def start_emulator(python, extra_args):
    workdir = tempfile.mkdtemp(prefix="emu-bench-")
    port_file = os.path.join(workdir, "port")
    proc = subprocess.Popen([python, EMULATOR, "--host", "127.0.0.1", "--port", "0",
                             "--port-file", port_file] + extra_args,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 15
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise SystemExit("emulator did not start: %s" % proc.stderr.read().decode())
        time.sleep(0.02)
    with open(port_file, encoding="ascii") as handle:
        return proc, int(handle.read())


def cpu_seconds(pid):
    """utime + stime of a process, from /proc (None when unavailable)."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Connection:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, method, path, api_key, body=b""):
        head = ("%s %s HTTP/1.1\r\nHost: bench\r\nApi-Key: %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (method, path, api_key, len(body))).encode("ascii")
        self.sock.sendall(head + body)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, body

    def _fill(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("emulator closed the connection")
        self.buffer += data


def body_template(list_id, field, batch):
    """Pieces of a subscribe body; prefix.join(pieces) gives subscribers whose identifiers
    all start with prefix (built in C, so the client stays cheap)."""
    if field == "email":
        pieces = [('{"listId":%d,"subscribers":[{"email":"' % list_id).encode("ascii")]
        pieces += [('-%d@example.com"},{"email":"' % i).encode("ascii")
                   for i in range(batch - 1)]
        pieces.append(('-%d@example.com"}]}' % (batch - 1)).encode("ascii"))
    else:
        pieces = [('{"listId":%d,"subscribers":[{"userId":"' % list_id).encode("ascii")]
        pieces += [('-%d"},{"userId":"' % i).encode("ascii") for i in range(batch - 1)]
        pieces.append(('-%d"}]}' % (batch - 1)).encode("ascii"))
    return pieces


def worker(index, port, api_key, list_id, args, deadline, results):
    conn = Connection(port)
    field = "userId" if args.project == "user_id" else "email"
    pieces = body_template(list_id, field, args.batch)
    pool = None
    if args.mode == "existing":
        pool = [(b"pool%d-%d" % (index, n)).join(pieces) for n in range(args.pool_bodies)]
    requests = subscribers = failures = 0
    seq = 0
    while time.time() < deadline:
        if pool is None:
            body = (b"w%d-r%d" % (index, seq)).join(pieces)
        else:
            body = pool[seq % len(pool)]
        seq += 1
        status, reply = conn.request("POST", "/api/lists/subscribe", api_key, body)
        if status != 200:
            failures += 1
            continue
        requests += 1
        subscribers += json.loads(reply)["successCount"]
    results[index] = (requests, subscribers, failures)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--mode", choices=("new", "existing"), default="new")
    parser.add_argument("--pool-bodies", type=int, default=20,
                        help="distinct bodies per connection in --mode existing")
    parser.add_argument("--project", choices=sorted(KEYS), default="hybrid")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter that runs the emulator")
    parser.add_argument("--emulator-arg", action="append", default=[],
                        help="extra argument for the emulator (repeatable)")
    args = parser.parse_args()

    proc, port = start_emulator(args.python, args.emulator_arg)
    try:
        api_key = KEYS[args.project]
        status, body = Connection(port).request("POST", "/api/lists", api_key,
                                                b'{"name":"bench"}')
        assert status == 200, (status, body)
        list_id = json.loads(body)["listId"]
        results = [None] * args.connections
        cpu_before = cpu_seconds(proc.pid)
        client_before = os.times()
        started = time.time()
        deadline = started + args.seconds
        threads = [threading.Thread(target=worker, args=(i, port, api_key, list_id, args,
                                                         deadline, results))
                   for i in range(args.connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.time() - started
        cpu_after = cpu_seconds(proc.pid)
        client_after = os.times()
    finally:
        proc.terminate()
        proc.wait(10)
    if any(result is None for result in results):
        raise SystemExit("a worker failed")
    requests = sum(r[0] for r in results)
    subscribers = sum(r[1] for r in results)
    failures = sum(r[2] for r in results)
    print("emulator ceiling: project=%s mode=%s batch=%d connections=%d seconds=%.1f"
          % (args.project, args.mode, args.batch, args.connections, elapsed))
    print("  requests/second:    %10.1f  (%d requests, %d non-200)"
          % (requests / elapsed, requests, failures))
    print("  subscribers/second: %10.0f  (%d subscribers)" % (subscribers / elapsed, subscribers))
    if cpu_before is not None and cpu_after is not None:
        print("  emulator CPU:       %9.0f%% of one core" % (100.0 * (cpu_after - cpu_before)
                                                             / elapsed))
    client_cpu = (client_after.user + client_after.system
                  - client_before.user - client_before.system)
    print("  bench client CPU:   %9.0f%% of one core" % (100.0 * client_cpu / elapsed))
    print("  machine: nproc=%d, python=%s (emulator: %s)"
          % (os.cpu_count(), sys.version.split()[0], args.python))


if __name__ == "__main__":
    main()
