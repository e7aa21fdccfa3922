#!/usr/bin/env python3
"""Local emulator of Iterable's lists API (standard library only).

    python3 emulator/iterable_emulator.py --host 127.0.0.1 --port 0 --port-file PATH \\
        [--config CONFIG.json] [--tls-cert CERT --tls-key KEY] [fault flags]

See emulator/README.md for the configuration, the admin API and the fault rules.
"""

import argparse
import asyncio
import gc
import json
import os
import signal
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emu_admin import AdminError  # noqa: E402
from emu_app import App  # noqa: E402
from emu_faults import REALISTIC_RATE_LIMITS, FaultConfigError  # noqa: E402
from emu_http import HttpServer  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Local Iterable lists API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--port-file", help="write the bound port here (atomically)")
    parser.add_argument("--config", help="JSON configuration (projects, faults, ...)")
    parser.add_argument("--tls-cert", help="PEM certificate: serve HTTPS")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    parser.add_argument("--recent", type=int, default=200,
                        help="request summaries kept for /_emulator/state (default 200)")
    parser.add_argument("--keep-bodies", type=int, default=100,
                        help="request bodies kept per endpoint (default 100)")
    parser.add_argument("--max-body-bytes", type=int, default=256 * 1024 * 1024)
    faults = parser.add_argument_group("faults (added to the config file's \"faults\")")
    faults.add_argument("--seed", type=int, help="seed of the fault RNG")
    faults.add_argument("--latency-ms", type=float, help="added to every API request")
    faults.add_argument("--jitter-ms", type=float, help="+/- uniform jitter on the latency")
    faults.add_argument("--rate-limit", action="append", default=[],
                        metavar="ENDPOINT=RATE[:BURST]",
                        help="leaky bucket per project and endpoint ('*' = each endpoint); "
                             "repeatable, e.g. subscribe=10:20")
    faults.add_argument("--realistic-rate-limits", action="store_true",
                        help="Iterable's documented limits: GET /api/lists 100/s, "
                             "getUsers 5/min, trackBulk 10/s, track 2000/s, "
                             "registerDeviceToken 500/s")
    faults.add_argument("--rate-limit-body", choices=("text", "json"),
                        help="429 body: Iterable's plain text (default) or JSON")
    faults.add_argument("--retry-after", metavar="SECONDS|auto",
                        help="send Retry-After on 429 (default: not sent, like Iterable)")
    faults.add_argument("--new-list-invalid-seconds", type=float,
                        help="a new list answers invalidListId for this long")
    faults.add_argument("--fault", action="append", default=[], metavar="JSON",
                        help='a fault rule, e.g. \'{"kind":"error_500","rate":0.1}\'; repeatable')
    return parser.parse_args(argv)


def build_config(args):
    config = {}
    if args.config:
        with open(args.config, encoding="utf-8") as handle:
            config = json.load(handle)
        if not isinstance(config, dict):
            raise ValueError("%s: the configuration must be a JSON object" % args.config)
    faults = dict(config.get("faults") or {})
    for flag, key in (("seed", "seed"), ("latency_ms", "latency_ms"), ("jitter_ms", "jitter_ms"),
                      ("rate_limit_body", "rate_limit_body"),
                      ("new_list_invalid_seconds", "new_list_invalid_seconds")):
        if getattr(args, flag) is not None:
            faults[key] = getattr(args, flag)
    if args.retry_after is not None:
        faults["rate_limit_retry_after"] = (
            "auto" if args.retry_after == "auto" else float(args.retry_after))
    limits = list(faults.get("rate_limits") or [])
    if args.realistic_rate_limits:
        limits.extend(dict(limit) for limit in REALISTIC_RATE_LIMITS)
    for text in args.rate_limit:
        endpoint, _, numbers = text.partition("=")
        rate, _, burst = numbers.partition(":")
        limits.append({"endpoint": endpoint or "*", "rate": float(rate),
                       "burst": float(burst) if burst else max(1.0, float(rate))})
    if limits:
        faults["rate_limits"] = limits
    rules = list(faults.get("rules") or [])
    rules.extend(json.loads(text) for text in args.fault)
    if rules:
        faults["rules"] = rules
    config["faults"] = faults
    return config


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="ascii") as handle:
        handle.write("%d\n" % port)
    os.replace(tmp, path)


async def freeze_heap_periodically(interval=0.1):
    """Move everything the cyclic GC tracks into its permanent generation, 10 times a second.

    Millions of stored users would otherwise be rescanned by every full collection (about
    20% of the CPU of a large sync; with a freeze every second, the users created within
    that second still were, by several full collections: about 5%). The model holds no
    reference cycles, so nothing collectable is lost; /_emulator/reset unfreezes and
    collects."""
    while True:
        gc.freeze()
        await asyncio.sleep(interval)


def remove_port_file(path, port):
    """Remove the port file on a clean exit, unless another instance rewrote it."""
    try:
        with open(path, encoding="ascii") as handle:
            if handle.read().strip() == str(port):
                os.remove(path)
    except (OSError, ValueError):
        pass


async def serve(args, app):
    ssl_context = None
    if args.tls_cert:
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    server = HttpServer(app.handle, args.max_body_bytes)
    port = await server.start(args.host, args.port, ssl_context)
    if args.port_file:
        write_port_file(args.port_file, port)
    scheme = "https" if ssl_context else "http"
    host = "[%s]" % args.host if ":" in args.host else args.host
    print("iterable emulator listening on %s://%s:%d" % (scheme, host, port), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    freezer = asyncio.ensure_future(freeze_heap_periodically())
    await stop.wait()
    freezer.cancel()
    await server.stop()
    if args.port_file:
        remove_port_file(args.port_file, port)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        app = App(build_config(args), args.recent, args.keep_bodies)
    except (OSError, ValueError, FaultConfigError, AdminError) as exc:
        print("iterable emulator: bad configuration: %s" % exc, file=sys.stderr)
        return 2
    asyncio.run(serve(args, app))
    return 0


if __name__ == "__main__":
    sys.exit(main())
