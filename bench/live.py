"""Live path benchmark: N sessions x M viewers, the emulator sending E events/s per session.

Processes (all real, on PostgreSQL + Redis): the VideoDB emulator, one relay per shard
(``manage.py relay``), and 1 or more Daphne processes (``manage.py serve``). This process
creates the sessions through Copilot's own services, starts the AI on them (with the
relay's connection id), plays generated meetings in the emulator, and holds M viewer
WebSockets per session, spread over the Daphne processes, each resuming from 0.

Latency is measured per delivered fragment: the time a viewer received it minus the
moment the emulator emitted that event. For a transcript fragment that moment is known
from the generated script (utterance start + its share of the words), so the figure is
emulator -> relay -> database -> Redis -> Daphne -> viewer. The emulator's own delivery
adds about 2 ms (bench/emulator.py); the rest is Copilot.

    .venv/bin/python bench/live.py                           # 10 sessions x 10 viewers x 20/s
    .venv/bin/python bench/live.py --sessions 100 --viewers 10 --rate 20 --servers 2 --relays 2

Needs PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL).
Target (issue 5): added latency p99 <= 25 ms at 100 x 10 x 20/s, and throughput that grows
with the number of Daphne processes.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.emulator import WORDS, bench_script  # noqa: E402 -- after the path is set

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/copilot_livebench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/10"
SEGMENT = re.compile(
    r'id="seg-\d+"[^>]*data-order="(\d+)".*?<span class="text">(.*?)</span>', re.DOTALL
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listened on {port}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prepare_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


async def viewer(
    url: str,
    cookie: str,
    origin: str,
    length_ms: float,
    latencies: list[float],
    counts: list[int],
    stop: asyncio.Event,
) -> None:
    async with (
        aiohttp.ClientSession(headers={"Cookie": cookie, "Origin": origin}) as client,
        client.ws_connect(url, max_msg_size=0) as ws,
    ):
        await ws.send_str(json.dumps({"type": "resume", "last_seq": 0}))
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(ws.receive(), timeout=0.5)
            except TimeoutError:
                continue
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            now_ms = time.time() * 1000
            counts[0] += 1
            for start, text in SEGMENT.findall(message.data):
                words = len(html.unescape(text).split())
                emitted = int(start) + length_ms * words / len(WORDS)
                latencies.append(now_ms - emitted)


SAMPLER_SCRIPT = """
window.__samples = [];
new MutationObserver((mutations) => {
  const now = Date.now();
  for (const m of mutations) {
    const nodes = m.type === "childList" ? [...m.addedNodes] : [m.target];
    for (const node of nodes) {
      const host = node.nodeType === 1 ? node : node.parentElement;
      const el = host?.closest("li.line");
      if (!el || !el.dataset.order) continue;
      const text = el.querySelector(".text")?.textContent || "";
      window.__samples.push([now, Number(el.dataset.order), text]);
    }
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def browser_sample(url: str, session_key: str, seconds: float, length_ms: float) -> list[float]:
    """One real Chromium viewer: when did each transcript update reach its DOM?

    The page's CSP forbids injected scripts, so the measuring browser bypasses it (a
    measurement instrument, not a user); the page's own code runs unchanged.
    """
    from playwright.sync_api import sync_playwright

    host = urlsplit(url).hostname
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(bypass_csp=True)
        context.add_cookies([{"name": "sessionid", "value": session_key, "domain": host,
                              "path": "/"}])  # fmt: skip
        page = context.new_page()
        page.add_init_script(SAMPLER_SCRIPT)
        page.goto(url)
        page.wait_for_timeout(seconds * 1000)
        samples = page.evaluate("window.__samples")
        browser.close()
    latencies = []
    seen: set[tuple[int, str]] = set()
    for at, start, text in samples:
        # Only a text's first appearance: the page also moves and re-swaps lines it has.
        words = len(text.split())
        if words and (start, text) not in seen:
            seen.add((start, text))
            latencies.append(at - (start + length_ms * words / len(WORDS)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--viewers", type=int, default=10, help="per session")
    parser.add_argument("--rate", type=float, default=20.0, help="events/s per session")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured meeting time")
    parser.add_argument("--servers", type=int, default=1, help="Daphne processes")
    parser.add_argument("--relays", type=int, default=1, help="relay processes (shards)")
    parser.add_argument(
        "--no-browser", action="store_true", help="skip the Chromium DOM sample viewer"
    )
    args = parser.parse_args()

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    emulator_port = free_port()
    ports = [free_port() for _ in range(args.servers)]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "bench-only",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports[0]}",
        "VIDEODB_BASE_URL": f"http://127.0.0.1:{emulator_port}",
        "RELAY_SHARDS": str(args.relays),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "copilot.settings",
    }
    env.pop("VIDEODB_API_KEY", None)
    prepare_database(database_url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    os.environ.update(env)
    import django

    django.setup()
    import redis
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from sessions_app.capture import handoff, lifecycle
    from sessions_app.models import RelayConnection, User
    from videodb_emulator.control_client import ControlClient

    redis.Redis.from_url(redis_url).flushdb()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "videodb_emulator",
                "--port",
                str(emulator_port),
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            **quiet,
        )
    ]
    wait_port(emulator_port)
    control = ControlClient(f"http://127.0.0.1:{emulator_port}", "emulator-dev-key")
    relays = [
        subprocess.Popen(
            [sys.executable, "manage.py", "relay", "--shard", str(k)], cwd=ROOT, env=env, **quiet
        )
        for k in range(args.relays)
    ]
    servers = [
        subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=env, **quiet
        )
        for port in ports
    ]
    children += relays + servers
    try:
        for port in ports:
            wait_port(port)
        deadline = time.monotonic() + 30
        while RelayConnection.objects.exclude(connection_id="").count() < args.relays:
            if time.monotonic() > deadline:
                raise SystemExit("the relays did not connect")
            time.sleep(0.2)

        owner, _ = User.objects.get_or_create(username="bench")
        store = SessionStore()
        store[SESSION_KEY] = str(owner.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = owner.get_session_auth_hash()
        store.create()
        cookie = f"sessionid={store.session_key}"

        lead_in = 3.0 + 0.05 * args.sessions  # time to start every meeting's AI
        script = bench_script(args.seconds, args.rate, lead_in)
        length_ms = len(WORDS) / (args.rate / 2) * 1000
        sessions = []
        for n in range(args.sessions):
            session = handoff.create_session(
                owner, title=f"Bench {n}", audio_prompt="", visual_prompt=""
            )
            token = handoff.mint_client_token(session).token
            control.simulate(session.videodb_id, script, speed=1, client_token=token)
            sessions.append(session)
        for session in sessions:
            deadline = time.monotonic() + 20
            while lifecycle.sync_session(session.pk).status != "active":
                if time.monotonic() > deadline:
                    raise SystemExit("a session did not go active")
                time.sleep(0.05)
            lifecycle.start_ai(session.pk)

        latencies: list[float] = []
        counts = [0]
        cpu_before = {p.pid: cpu_seconds(p.pid) for p in children}

        async def watch() -> float:
            stop = asyncio.Event()
            tasks = []
            for i, session in enumerate(sessions):
                for v in range(args.viewers):
                    port = ports[(i * args.viewers + v) % len(ports)]
                    tasks.append(
                        asyncio.create_task(
                            viewer(
                                f"ws://127.0.0.1:{port}/ws/sessions/{session.pk}/",
                                cookie,
                                f"http://127.0.0.1:{port}",
                                length_ms,
                                latencies,
                                counts,
                                stop,
                            )
                        )
                    )
            sampler = None
            if not args.no_browser:
                sampler = asyncio.get_running_loop().run_in_executor(
                    None,
                    browser_sample,
                    f"http://127.0.0.1:{ports[0]}/sessions/{sessions[0].pk}/",
                    store.session_key,
                    lead_in + args.seconds + 1,
                    length_ms,
                )
            began = time.perf_counter()
            await asyncio.sleep(lead_in + args.seconds + 2)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if sampler is not None:
                dom_latencies.extend(await sampler)
            return time.perf_counter() - began

        dom_latencies: list[float] = []
        elapsed = asyncio.run(watch())
        cpu = {p.pid: cpu_seconds(p.pid) - cpu_before[p.pid] for p in children}
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=15)

    expected_events = args.sessions * args.rate * args.seconds
    live = [x for x in latencies if x > -1000]  # clock skew guard: all clocks are this host's
    print(
        f"{args.sessions} sessions x {args.viewers} viewers x {args.rate:g} events/s "
        f"({expected_events / args.seconds:.0f} events/s in, "
        f"{expected_events * args.viewers / args.seconds:.0f} deliveries/s expected), "
        f"{args.servers} Daphne, {args.relays} relay(s), Redis, {os.cpu_count()} cores"
    )
    if live:
        print(
            f"emit -> viewer latency ms: p50 {percentile(live, 50):.1f}  "
            f"p99 {percentile(live, 99):.1f}  max {max(live):.1f}  ({len(live)} samples)"
        )
    if dom_latencies:
        print(
            f"emit -> DOM updated in Chromium (1 viewer of session 0): "
            f"p50 {percentile(dom_latencies, 50):.1f}  p99 {percentile(dom_latencies, 99):.1f} ms"
            f"  ({len(dom_latencies)} samples)"
        )
    print(f"delivered {counts[0]} fragments in {elapsed:.1f} s: {counts[0] / elapsed:.0f}/s")
    names = (
        ["emulator"]
        + [f"relay{k}" for k in range(args.relays)]
        + [f"daphne{k}" for k in range(args.servers)]
    )
    print(
        "CPU (share of one core): "
        + ", ".join(
            f"{name} {cpu[c.pid] / elapsed:.0%}" for name, c in zip(names, children, strict=True)
        )
    )
    print("rerun: .venv/bin/python bench/live.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
