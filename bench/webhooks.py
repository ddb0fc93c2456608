"""Webhook receiver benchmark: ack latency and accepted deliveries per second.

Starts a real Daphne (``manage.py serve``) on PostgreSQL + Redis, creates sessions, then
sends every webhook delivery 10 times, concurrently and shuffled, the way an at-least-once
sender that retries aggressively would. Reports ack latency p50/p99 and throughput, and
checks that exactly one row (and one task message) exists per unique delivery: none lost,
none doubled.

    .venv/bin/python bench/webhooks.py                       # defaults below
    .venv/bin/python bench/webhooks.py --unique 3000 --concurrency 64 --servers 2
    .venv/bin/python bench/webhooks.py --unique 300 --rate 100 --concurrency 64  # open loop

The default is a closed loop (the server runs flat out: throughput, and latency that is
mostly queueing); ``--rate`` sends at a fixed pace to measure ack latency below saturation.
It also reports the Daphne processes' CPU time per request, the figure that caps throughput.

The same run measures a bare baseline: bench/bare_webhooks.py, an ASGI endpoint that reads
the body and answers 200, served by the same Daphne server (``copilot.runtime.web_server``),
as many processes, the same requests at the same concurrency; the two take turns, a quarter
of the requests at a time. The last line is
``copilot/bare acks/s: X.XX`` (closed loop: the share of the bare server's throughput Copilot
keeps; with ``--rate`` both follow the rate, so compare their latencies instead).

Needs PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL). Targets: issue 4, ack
p99 <= 20 ms and >= 1,000 deliveries/s accepted, with none lost; issue 15, copilot/bare
acks/s >= 0.5, none lost or doubled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/copilot_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
# Copilot and the bare baseline take turns this many times, each with a slice of the requests.
ROUNDS = 4
EVENTS = [
    "capture_session.created",
    "capture_session.starting",
    "capture_session.active",
    "capture_session.stopping",
    "capture_session.stopped",
    "capture_session.exported",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def prepare_database(database_url: str) -> None:
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "copilot.settings")
    import django

    django.setup()


def make_sessions(count: int) -> list[tuple[str, str]]:
    from sessions_app.models import CaptureSession, User, url_secret

    owner, _ = User.objects.get_or_create(username="bench")
    sessions = CaptureSession.objects.bulk_create(
        CaptureSession(owner=owner, title=f"Bench {n}", videodb_id=f"cap-bench-{n}")
        for n in range(count)
    )
    return [(s.videodb_id, url_secret(s.webhook_secret, "lifecycle")) for s in sessions]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(env: dict[str, str], port: int, *, bare: bool = False) -> subprocess.Popen:
    """Copilot's Daphne (``manage.py serve``), or with ``bare`` the baseline's."""
    argv = ["bench/bare_webhooks.py"] if bare else ["manage.py", "serve"]
    process = subprocess.Popen(
        [sys.executable, *argv, "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
             "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("Daphne did not start")


async def fire(
    urls: list[str],
    requests: list[tuple[int, str, bytes]],
    concurrency: int,
    rate: float | None = None,
) -> tuple[list[float], dict[int, int], float]:
    """Send every request. Closed loop by default: ``concurrency`` senders, each sending its
    next request when the last is answered, so the server runs flat out and latency is
    mostly time spent queueing (about concurrency / throughput). With ``rate``, open loop:
    request i is due at i / rate seconds, and its latency counts from that moment, so time
    spent waiting for a free sender is not hidden (no coordinated omission)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue = asyncio.Queue()
    for index, item in enumerate(requests):
        queue.put_nowait((index, *item))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:
        began = time.perf_counter()

        async def worker() -> None:
            while True:
                try:
                    index, server, path, body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if rate is None:
                    started = time.perf_counter()
                else:
                    started = began + index / rate
                    await asyncio.sleep(started - time.perf_counter())
                async with client.post(
                    urls[server] + path, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    await response.read()
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[response.status] = statuses.get(response.status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return latencies, statuses, elapsed


@dataclass
class Measured:
    latencies: list[float]
    statuses: dict[int, int]
    elapsed: float
    cpu: float  # seconds of CPU the server processes used meanwhile

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed

    def report(self, name: str) -> None:
        count = len(self.latencies)
        print(f"{name}: ack latency ms p50 {percentile(self.latencies, 50):.1f}  "
              f"p99 {percentile(self.latencies, 99):.1f}  max {max(self.latencies):.1f}  "
              f"mean {statistics.fmean(self.latencies):.1f}")  # fmt: skip
        print(f"{name}: throughput {self.throughput:.0f} acks/s in {self.elapsed:.1f} s; "
              f"Daphne CPU {self.cpu * 1000 / count:.2f} ms per request "
              f"({self.cpu / self.elapsed:.2f} cores busy); statuses {self.statuses}")  # fmt: skip


def measure(
    servers: list[subprocess.Popen],
    urls: list[str],
    requests: list[tuple[int, str, bytes]],
    concurrency: int,
    rate: float | None,
    into: Measured,
) -> None:
    """Send ``requests`` and add what they took to ``into``."""
    cpu_before = sum(cpu_seconds(server.pid) for server in servers)
    latencies, statuses, elapsed = asyncio.run(fire(urls, requests, concurrency, rate))
    into.cpu += sum(cpu_seconds(server.pid) for server in servers) - cpu_before
    into.latencies += latencies
    into.elapsed += elapsed
    for status, count in statuses.items():
        into.statuses[status] = into.statuses.get(status, 0) + count


def stop(servers: list[subprocess.Popen]) -> None:
    for server in servers:
        server.terminate()
    for server in servers:
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unique", type=int, default=2000, help="distinct deliveries")
    parser.add_argument("--repeat", type=int, default=10, help="times each is sent")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--servers", type=int, default=1, help="Daphne processes")
    parser.add_argument(
        "--rate", type=float, help="open loop: send this many requests per second instead"
    )
    args = parser.parse_args()

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "bench-only",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    prepare_database(database_url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=ROOT, env={**os.environ, **env}, check=True,
    )  # fmt: skip
    django_setup(env)
    import redis

    from copilot.celery import app as celery_app

    broker = redis.Redis.from_url(redis_url)
    broker.flushdb()
    sessions = make_sessions(args.sessions)

    def delivery(n: int, session_id: str, secret: str) -> tuple[str, bytes]:
        body = json.dumps(
            {
                "version": "2",
                "event": EVENTS[n % len(EVENTS)],
                "event_id": f"evt-{uuid.uuid4().hex}",
                "timestamp": "2026-01-20T12:34:56Z",
                "capture_session_id": session_id,
                "status": EVENTS[n % len(EVENTS)].rsplit(".", 1)[1],
                "data": {},
            }
        ).encode()
        return f"/webhooks/videodb/{secret}/", body

    def made(count: int) -> list[tuple[str, bytes]]:
        """``count`` distinct deliveries, spread over the sessions and the events."""
        return [delivery(n, *sessions[n % len(sessions)]) for n in range(count)]

    def shuffled(deliveries: list[tuple[str, bytes]]) -> list[tuple[int, str, bytes]]:
        """Each delivery ``--repeat`` times, to a random server, in a random order."""
        sent = [
            (random.randrange(args.servers), path, body)
            for path, body in deliveries
            for _ in range(args.repeat)
        ]
        random.shuffle(sent)
        return sent

    requests = shuffled(made(args.unique))
    # Deliveries of their own: a web process remembers what it has seen stored
    # (sessions_app/capture/repeats.py), so the measured ones must be new to it.
    warm_up = shuffled(made(40))

    copilot_ports = [free_port() for _ in range(args.servers)]
    bare_ports = [free_port() for _ in range(args.servers)]
    copilot = [start_server(env, port) for port in copilot_ports]
    bare = []
    try:
        bare = [start_server(env, port, bare=True) for port in bare_ports]
        copilot_urls = [f"http://127.0.0.1:{port}" for port in copilot_ports]
        bare_urls = [f"http://127.0.0.1:{port}" for port in bare_ports]
        # Warm up imports and open as many connections (HTTP, and so PostgreSQL in the pool)
        # as the measured run will use, so it measures the steady state, not start-up.
        asyncio.run(fire(copilot_urls, warm_up, args.concurrency))
        asyncio.run(fire(bare_urls, warm_up, args.concurrency))
        from sessions_app.models import WebhookDelivery

        WebhookDelivery.objects.all().delete()
        broker.flushdb()
        # In turns, a slice of the requests each: on a shared machine the load drifts, and
        # it then weighs on both figures alike instead of on whichever ran at a bad moment.
        ours, baseline = Measured([], {}, 0.0, 0.0), Measured([], {}, 0.0, 0.0)
        size = -(-len(requests) // ROUNDS)
        for start in range(0, len(requests), size):
            part = requests[start : start + size]
            measure(copilot, copilot_urls, part, args.concurrency, args.rate, ours)
            measure(bare, bare_urls, part, args.concurrency, args.rate, baseline)
    finally:
        stop(copilot + bare)

    stored = WebhookDelivery.objects.count()
    # Every queue a task may be routed to: a delivery's task must be on exactly one of them.
    queued = sum(broker.llen(queue.name) for queue in celery_app.amqp.queues.values())
    load = f"open loop at {args.rate:g}/s" if args.rate else f"concurrency {args.concurrency}"
    print(f"{len(requests)} requests ({args.unique} deliveries x {args.repeat}), "
          f"{load}, {args.servers} Daphne process(es) each, "
          f"PostgreSQL + Redis, {os.cpu_count()} cores")  # fmt: skip
    ours.report("copilot")
    baseline.report("bare")
    print(f"stored rows: {stored} (expected {args.unique}); task messages queued: {queued}")
    print(
        f"lost: {args.unique - stored}, doubled: {max(0, stored - args.unique)}, "
        f"task messages missing: {max(0, stored - queued)}, extra: {max(0, queued - stored)}"
    )
    print("rerun: .venv/bin/python bench/webhooks.py " + " ".join(sys.argv[1:]))
    broker.flushdb()
    print(f"copilot/bare acks/s: {ours.throughput / baseline.throughput:.2f}")


if __name__ == "__main__":
    main()
