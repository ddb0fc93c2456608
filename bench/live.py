"""Live path benchmark: Copilot beside a bare Channels relay, in the same run, at the same load.

Processes (all real, on PostgreSQL + Redis): the VideoDB emulator, one Copilot relay per
shard (``manage.py relay``), 1 or more Copilot Daphne processes (``manage.py serve``), and the
bare baseline (bench/bare_live.py): as many bare relays and bare Daphne processes, on the
same emulator, the same Redis channel layer (Copilot's ``CHANNEL_LAYERS``) and the same
Daphne. The bare relay reads the emulator's socket and ``group_send``s a pre-rendered
fragment of the size of Copilot's to the viewers' group: no database, no rendering, no
Copilot code. That is the floor for this machine: what a Channels hop costs here, now.

Each trial plays N generated meetings at E events/s each (transcript interims and finals on
mic and system audio, bench/emulator.py). The meetings are independent, so their lines end
at spread-out moments: meeting k of N starts k/N of a line later, its system audio half a
line after its mic. ``--aligned`` plays every meeting and channel in step instead, so that
all 2N streams end a line at the same moment: a burst of 2N finals to store at once, every
line (how this bench ran before; the worst case, not the stated load). The meetings go
to M viewer WebSockets per session spread over the
Daphne processes, first on Copilot (sessions created through its own services, viewers
resuming from 0 and ready once their resume is answered, then the AI started with the
relay's connection id), then on the bare path (capture sessions through the SDK, viewers
connected, then transcripts started with the bare relay's connection id). Trials run one
after the other, so that each has the machine to itself; each path first has a short
unreported warm-up trial (``--warmup``), so that first-use costs are not in its figures.

Latency is per delivered fragment: when a viewer received it minus when the emulator emitted
that event (known from the generated script: utterance start + its share of the words, both
read from the fragment). For Copilot that is emulator -> relay -> database -> Redis ->
Daphne -> viewer; for bare, emulator -> relay -> Redis -> Daphne -> viewer. Deliveries/s
counts the frames holding a transcript line, all viewers together, from the talk's start
until the last one came; "offered" is events/s in x viewers (Copilot shows fewer frames
than events when it coalesces interims). CPU is each process's share of one core over the
same window, the bench's own viewer sockets included.

Checked on every trial, per viewer: every final reaches every viewer, and nothing goes
backwards (an older state of a line after a newer one, a new line older than one already
shown on its stream); on the bare path every interim too (Copilot may coalesce interims:
the latest wins). After the talk the viewers wait for what is missing until nothing came for
3 s (at most 60 s): a final missing then at the requested load, or a disorder at any load,
exits non-zero with what went wrong. A saturation step waits 5 s at most, and a final
missing then only marks its load as not sustained (late, or dropped by a full channel).

Saturation throughput: the highest load each path sustains (every final delivered, nothing
out of order, p99 under 250 ms), in deliveries/s offered (events/s in x viewers), found by
doubling the events/s per session from the requested rate (halving if that fails) at the
same sessions x viewers, then bisecting (``--bisect`` times). A step plays at least
``--step-seconds`` and ``--step-events`` events in (each event is one sample per viewer, so
a short step at a low rate would make one stall of the machine its p99). Copilot's and
bare's steps alternate, so the noise of a shared machine falls on both.

    .venv/bin/python bench/live.py                      # 5 sessions x 10 viewers x 20/s + steps
    .venv/bin/python bench/live.py --no-saturation      # the one point only (~1.5 min)
    .venv/bin/python bench/live.py --sessions 100 --viewers 10 --rate 20 --servers 2 --relays 2
    .venv/bin/python bench/live.py --browser            # + a Chromium viewer's DOM latency

The default run takes about 4 to 5 minutes on 2 cores. It prints both sets of figures (p50/p99
emit -> viewer, deliveries/s, CPU per process), and as its last line
``copilot/bare: p99 X.XX, saturation throughput Y.YY``.

Needs PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL). Targets (issue 15), at
5 x 10 x 20/s: copilot/bare p99 <= 2.0, and saturation throughput >= 0.6 x bare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Imported after the path is set.
from bench.emulator import (  # noqa: E402
    WORDS,
    bench_script,
    cpu_seconds,
    free_port,
    percentile,
    utterance_seconds,
)

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/copilot_livebench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/10"
P99_LIMIT_MS = 250.0
# After the talk ends, the viewers wait for their last finals until nothing came for
# QUIET_SECONDS, at most this long: at the requested load (a final missing then is lost),
# and in a saturation step (one missing then came too late to matter).
DRAIN_SECONDS = 60.0
STEP_DRAIN_SECONDS = 5.0
QUIET_SECONDS = 3.0
SETUP_ATTEMPTS = 3  # a setup longer than its lead-in is tried again with twice the lead-in
# One transcript line in a frame (Copilot's templates/sessions_app/live.html#segment or
# #interim, or the bare relay's copy of their shape): its attributes and its text.
LINE = re.compile(
    r'<li id="(?:seg|interim)-[^"]*"([^>]*)>.*?<span class="text">(.*?)</span>', re.DOTALL
)
ATTRIBUTE = re.compile(r'([\w-]+)="([^"]*)"')
FINAL_MARK = 'class="line"'  # a final line; an interim's class is "line interim"
RESUME = json.dumps({"type": "resume", "last_seq": 0})
# What the page sends every 20 s (static/copilot/live.js); a silent socket is closed as dead.
PING, PING_SECONDS = json.dumps({"type": "ping"}), 20.0


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listened on {port}")


def prepare_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


# --- viewers ---------------------------------------------------------------------------------


@dataclass
class Viewer:
    """One viewer socket: what it received (raw, parsed after the trial so that receiving
    stays cheap) and how many finals so far (to know when a trial has drained)."""

    url: str
    headers: dict[str, str]
    # Ready once a frame holding this came (Copilot's resume reply ends with its synced
    # marker), or once the socket is open (None: the bare consumer has nothing to replay).
    ready_mark: str | None = None
    frames: list[tuple[float, str]] = field(default_factory=list)
    finals: int = 0
    connected: bool = False
    closed: str = ""


async def watch(viewer: Viewer) -> None:
    async with (
        aiohttp.ClientSession(headers=viewer.headers) as client,
        client.ws_connect(viewer.url, max_msg_size=0) as ws,
    ):
        await ws.send_str(RESUME)
        viewer.connected = viewer.ready_mark is None

        async def ping() -> None:
            while True:
                await asyncio.sleep(PING_SECONDS)
                await ws.send_str(PING)

        pinger = asyncio.create_task(ping())
        try:
            while True:
                message = await ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    viewer.closed = f"{message.type.name} {ws.close_code}"
                    return
                viewer.frames.append((time.time() * 1000, message.data))
                if FINAL_MARK in message.data:
                    viewer.finals += 1
                elif not viewer.connected and viewer.ready_mark in message.data:
                    viewer.connected = True
        finally:
            pinger.cancel()


@dataclass
class Check:
    """What the viewers' frames show, all viewers together."""

    latencies: list[float] = field(default_factory=list)
    final_latencies: list[float] = field(default_factory=list)  # stored lines only
    frames: int = 0  # every frame: lines, and Copilot's status/health/synced fragments
    line_frames: int = 0  # frames with a transcript line: the deliveries
    finals_missing: int = 0
    interims_missing: int = 0
    out_of_order: list[str] = field(default_factory=list)
    duplicates: int = 0
    line_bytes: list[int] = field(default_factory=list)


def analyse(viewer: Viewer, check: Check, length_ms: float, utterances: int) -> None:
    """Latency of each new state of a line, and whether any line went backwards; then what
    never arrived (finals, and interims: ``interims_missing``, which only bare must have)."""
    state: dict[tuple[str, int], tuple[int, bool]] = {}
    seen_at: dict[tuple[str, int], float] = {}
    newest_start: dict[str, int] = {}
    interims = 0
    for at, data in viewer.frames:
        check.frames += 1
        lines = LINE.findall(data)
        if lines:
            check.line_frames += 1
            check.line_bytes.append(len(data.encode()))
        for attributes, text in lines:
            attrs = dict(ATTRIBUTE.findall(attributes))
            start, stream = int(attrs["data-order"]), attrs.get("data-stream", "")
            words = len(html.unescape(text).split())
            final = "interim" not in attrs.get("class", "").split()
            key = (stream, start)
            previous = state.get(key)
            if previous == (words, final):
                check.duplicates += 1
                continue
            if previous is None:
                if start < newest_start.get(stream, start):
                    check.out_of_order.append(f"line {key} first seen after a later line")
                newest_start[stream] = max(start, newest_start.get(stream, start))
            elif previous[1] or words < previous[0]:
                check.out_of_order.append(
                    f"line {key} (stream, start): {words} words"
                    f"{' final' if final else ''} {at - seen_at[key]:.0f} ms after "
                    f"{previous[0]}{' final' if previous[1] else ''}, "
                    f"{at - viewer.frames[0][0]:.0f} ms after the viewer's first frame"
                )
                continue
            state[key], seen_at[key] = (words, final), at
            interims += not final
            emitted = start + length_ms * words / len(WORDS)
            if at - emitted > -1000:  # clock skew guard: all clocks are this host's
                check.latencies.append(at - emitted)
                if final:
                    check.final_latencies.append(at - emitted)
    finals = sum(1 for _, final in state.values() if final)
    check.finals_missing += utterances - finals
    check.interims_missing += utterances * (len(WORDS) - 1) - interims


# --- trials ----------------------------------------------------------------------------------


class LateSetup(Exception):
    """The setup was not done when the talk began: the trial's first events were lost."""


@dataclass
class Trial:
    system: str  # "copilot" or "bare"
    rate: float  # events/s per session
    sessions: int
    viewers: int
    seconds: float
    utterances: int  # per session: each is len(WORDS) - 1 interims and a final
    check: Check
    window: float  # talk start -> drained, s
    cpu: dict[str, float]  # share of one core per process over the window
    closed: list[str]

    @property
    def p50(self) -> float:
        return percentile(self.check.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.check.latencies, 99)

    @property
    def offered(self) -> float:
        """Deliveries/s offered: events/s in x viewers."""
        return self.sessions * self.rate * self.viewers

    @property
    def delivered(self) -> float:
        """Frames with a transcript line per second, all viewers together."""
        return self.check.line_frames / self.window

    @property
    def complete(self) -> bool:
        lost_interims = self.system == "bare" and self.check.interims_missing > 0
        return not (self.check.finals_missing > 0 or lost_interims or self.closed)

    @property
    def sustained(self) -> bool:
        return self.complete and not self.check.out_of_order and self.p99 < P99_LIMIT_MS

    def problems(self) -> list[str]:
        out = []
        if self.check.finals_missing:
            out.append(f"{self.check.finals_missing} finals missing at their viewers")
        if self.system == "bare" and self.check.interims_missing:
            out.append(f"{self.check.interims_missing} interims missing at their viewers")
        if self.check.out_of_order:
            out.append(
                f"{len(self.check.out_of_order)} out of order, e.g. {self.check.out_of_order[0]}"
            )
        if self.closed:
            out.append(f"{len(self.closed)} viewer sockets closed early: {self.closed[0]}")
        return out

    def summary(self) -> str:
        verdict = "sustained"
        if not self.sustained:
            verdict = "over: " + ("; ".join(self.problems()) or f"p99 >= {P99_LIMIT_MS:g} ms")
        return (
            f"{self.system} at {self.rate:g} events/s per session: "
            f"{self.offered:.0f} deliveries/s offered, {self.delivered:.0f}/s delivered, "
            f"p50 {self.p50:.1f} ms, p99 {self.p99:.1f} ms -> {verdict}"
        )


class Bench:
    """The processes of both paths, and one trial of either at a given rate."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
        self.redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
        self.logs = Path(tempfile.mkdtemp(prefix="live-bench-"))
        self.children: dict[str, subprocess.Popen] = {}
        self.bare_started = False
        self.trial_number = 0
        self.setup_seconds = {"copilot": 0.0, "bare": 0.0}
        self.captures: list[str] = []  # the capture sessions of the trial being set up

    # --- processes ---------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        kwargs.setdefault("stdout", log)
        child = subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, env=self.env, stderr=log, **kwargs
        )
        self.children[name] = child
        return child

    def start_copilot(self) -> None:
        args = self.args
        self.emulator_port = free_port()
        self.ports = [free_port() for _ in range(args.servers)]
        self.emulator_url = f"http://127.0.0.1:{self.emulator_port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "SECRET_KEY": "bench-only",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.ports[0]}",
            "VIDEODB_BASE_URL": self.emulator_url,
            "RELAY_SHARDS": str(args.relays),
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "copilot.settings",
        }
        self.env.pop("VIDEODB_API_KEY", None)
        prepare_database(self.database_url)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=self.env, check=True
        )
        if args.browser:  # the page's scripts, served by WhiteNoise from STATIC_ROOT
            subprocess.run(
                [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
                cwd=ROOT,
                env=self.env,
                check=True,
            )
        os.environ.update(self.env)
        import django

        django.setup()
        import redis
        from django.conf import settings

        from sessions_app.models import RelayConnection
        from videodb_emulator.control_client import ControlClient

        redis.Redis.from_url(self.redis_url).flushdb()
        self.api_key = settings.VIDEODB_EMULATOR_API_KEY
        # The bare processes use Copilot's channel layer exactly, without importing Copilot.
        self.env["BARE_CHANNEL_LAYERS"] = json.dumps(settings.CHANNEL_LAYERS)
        self.spawn(
            "emulator",
            ["-m", "videodb_emulator", "--port", str(self.emulator_port), "--log-level", "WARNING"],
        )
        wait_port(self.emulator_port)
        self.control = ControlClient(self.emulator_url, self.api_key)
        for k in range(args.relays):
            self.spawn(f"relay{k}", ["manage.py", "relay", "--shard", str(k)])
        for k, port in enumerate(self.ports):
            self.spawn(f"daphne{k}", ["manage.py", "serve", "--port", str(port)])
        for port in self.ports:
            wait_port(port)
        deadline = time.monotonic() + 30
        while RelayConnection.objects.exclude(connection_id="").count() < args.relays:
            if time.monotonic() > deadline:
                raise SystemExit(f"the relays did not connect (logs: {self.logs})")
            time.sleep(0.2)

    def start_bare(self, fragment_bytes: int) -> None:
        """The bare relays and Daphne processes, once Copilot's fragment size is known."""
        from copilot import runtime

        args = self.args
        self.bare_ports = [free_port() for _ in range(args.servers)]
        for k, port in enumerate(self.bare_ports):
            self.spawn(
                f"bare-daphne{k}",
                [
                    "bench/bare_live.py",
                    "serve",
                    "--port",
                    str(port),
                    "--endpoint",
                    runtime.endpoint("127.0.0.1", port),
                    "--max-message",
                    str(runtime.WEBSOCKET_MAX_MESSAGE_BYTES),
                ],
            )
        self.bare_relay_ids = []
        for k in range(args.relays):
            child = self.spawn(
                f"bare-relay{k}",
                [
                    "bench/bare_live.py",
                    "relay",
                    "--emulator",
                    self.emulator_url,
                    "--api-key",
                    self.api_key,
                    "--fragment-bytes",
                    str(fragment_bytes),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            connection_id = child.stdout.readline().strip()
            if not connection_id:
                raise SystemExit(f"bare relay {k} did not connect (logs: {self.logs})")
            self.bare_relay_ids.append(connection_id)
        for port in self.bare_ports:
            wait_port(port)
        self.bare_started = True

    def stop(self) -> None:
        # The emulator last: a relay whose socket closes under it is not a failure to report.
        for child in reversed(self.children.values()):
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()

    def alive(self) -> None:
        dead = [name for name, child in self.children.items() if child.poll() is not None]
        if dead:
            raise SystemExit(f"{', '.join(dead)} exited during the bench (logs: {self.logs})")

    # --- one trial ---------------------------------------------------------------------------

    def trial(
        self,
        system: str,
        rate: float,
        seconds: float,
        *,
        drain: float = DRAIN_SECONDS,
        browser: bool = False,
        warm: bool = False,
    ) -> Trial:
        """One trial; ``drain``: how long its last finals may take after the talk;
        ``browser``: also a Chromium viewer on Copilot's session 0, whose DOM latencies go
        to ``self.dom``; ``warm``: a warm-up (cold processes: a longer lead-in)."""
        self.alive()
        self.trial_number += 1
        # The talk starts a lead-in after the meetings were created: long enough for the
        # setup (sessions, viewers, AI started) on a busy machine, judged by the last one.
        lead_in = self.args.lead_in
        if lead_in is None:
            lead_in = max(3.0 + 0.2 * self.args.sessions, 2 * self.setup_seconds[system])
        if warm:  # cold processes, and no setup measured yet: a longer lead-in
            lead_in *= 2
        for attempt in range(1, SETUP_ATTEMPTS + 1):
            self.captures = []
            try:
                trial = asyncio.run(self._trial(system, rate, seconds, lead_in, drain, browser))
                break
            except LateSetup as late:
                # Nothing was measured yet: stop those meetings, try again with more time.
                from videodb_emulator.control_client import ControlError

                for capture_id in self.captures:
                    with contextlib.suppress(ControlError):
                        self.control.stop_session(capture_id)
                if attempt == SETUP_ATTEMPTS or self.args.lead_in is not None:
                    raise SystemExit(
                        f"{late}: the machine is too busy, or pass --lead-in"
                    ) from None
                lead_in *= 2
                print(f"  ({late}; again with {lead_in:.0f} s)", flush=True)
        self.alive()
        return trial

    async def _trial(
        self,
        system: str,
        rate: float,
        seconds: float,
        lead_in: float,
        drain: float,
        browser: bool,
    ) -> Trial:
        args = self.args
        scripts = self._scripts(seconds, rate, lead_in)
        utterances = len(scripts[0]["utterances"])
        length_ms = utterance_seconds(rate) * 1000
        setup_began = time.monotonic()
        if system == "copilot":
            viewers, start = await asyncio.to_thread(self._copilot_setup, scripts)
        else:
            viewers, start = await asyncio.to_thread(self._bare_setup, scripts)
        talk_at = setup_began + lead_in
        tasks = [asyncio.create_task(watch(viewer)) for viewer in viewers]
        try:

            def late(what: str) -> LateSetup:
                return LateSetup(
                    f"{system} setup ({what}) took {time.monotonic() - setup_began:.1f} s, longer "
                    f"than the lead-in ({lead_in:.1f} s)"
                )

            while not all(viewer.connected for viewer in viewers):
                if any(task.done() for task in tasks):
                    failed = next((t for t in tasks if t.done() and t.exception()), None)
                    reason = repr(failed.exception()) if failed else "closed"
                    raise SystemExit(f"{system} viewers were not all ready: {reason}")
                if time.monotonic() > talk_at:
                    raise late("the viewers' resumes")
                await asyncio.sleep(0.05)
            await asyncio.to_thread(start)
            self.setup_seconds[system] = time.monotonic() - setup_began
            sampler = None
            if browser and system == "copilot":
                sampler = asyncio.get_running_loop().run_in_executor(
                    None,
                    browser_sample,
                    f"http://127.0.0.1:{self.ports[0]}/sessions/{self.copilot_sessions[0].pk}/",
                    self.browser_cookie,
                    talk_at - time.monotonic() + seconds + 1,
                    length_ms,
                )
            if time.monotonic() > talk_at:
                raise late("starting the AI")
            await asyncio.sleep(talk_at - time.monotonic())
            names = self._processes(system)
            cpu0 = {name: cpu_seconds(self.children[name].pid) for name in names}
            own0, began = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            drain_until = time.monotonic() + drain
            received, quiet_since = -1, time.monotonic()
            while time.monotonic() < drain_until and any(
                viewer.finals < utterances for viewer in viewers
            ):
                now_received = sum(len(viewer.frames) for viewer in viewers)
                if now_received != received:
                    received, quiet_since = now_received, time.monotonic()
                elif time.monotonic() - quiet_since > QUIET_SECONDS:
                    break
                await asyncio.sleep(0.05)
            window = time.monotonic() - began
            cpu = {
                name: (cpu_seconds(self.children[name].pid) - cpu0[name]) / window for name in names
            }
            cpu["bench viewers"] = (time.process_time() - own0) / window
            if sampler is not None:
                self.dom = await sampler
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        check = Check()
        for viewer in viewers:
            analyse(viewer, check, length_ms, utterances)
        closed = [viewer.closed for viewer in viewers if viewer.closed]
        return Trial(
            system,
            rate,
            args.sessions,
            args.viewers,
            seconds,
            utterances,
            check,
            window,
            cpu,
            closed,
        )

    def warm_up(self, system: str, rate: float, seconds: float) -> None:
        trial = self.trial(system, rate, seconds, warm=True)
        if trial.problems():
            raise SystemExit(f"FAILED in the {system} warm-up: " + "; ".join(trial.problems()))

    def _processes(self, system: str) -> list[str]:
        prefix = "" if system == "copilot" else "bare-"
        return ["emulator"] + [
            name
            for name in self.children
            if name.removeprefix(prefix).rstrip("0123456789") in {"relay", "daphne"}
            and name.startswith(prefix)
        ]

    def _scripts(self, seconds: float, rate: float, lead_in: float) -> list[dict[str, Any]]:
        """One meeting script per session. Meetings are independent, so their lines end at
        spread-out moments: meeting k of n starts k/n of a line later, and its system audio
        half a line after its mic. With ``--aligned`` every line of every meeting and channel
        ends at the same moment, a burst of 2n finals at once (how the bench ran before)."""
        n = self.args.sessions
        if self.args.aligned:
            return [bench_script(seconds, rate, lead_in)] * n
        length = utterance_seconds(rate)
        return [
            bench_script(seconds, rate, lead_in, shift=(k / n * length, (k / n + 0.5) % 1 * length))
            for k in range(n)
        ]

    def _copilot_setup(
        self, scripts: list[dict[str, Any]]
    ) -> tuple[list[Viewer], Callable[[], None]]:
        """Sessions through Copilot's services, the meetings started; the viewers to connect,
        and what starts the AI once they are in."""
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
        from django.contrib.sessions.backends.db import SessionStore
        from django.db import close_old_connections

        from sessions_app.capture import handoff, lifecycle
        from sessions_app.models import User

        close_old_connections()
        owner, _ = User.objects.get_or_create(username="bench")
        store = SessionStore()
        store[SESSION_KEY] = str(owner.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = owner.get_session_auth_hash()
        store.create()
        self.browser_cookie = store.session_key
        sessions = []
        for n in range(self.args.sessions):
            session = handoff.create_session(
                owner, title=f"Bench {self.trial_number}.{n}", audio_prompt="", visual_prompt=""
            )
            token = handoff.mint_client_token(session).token
            self.control.simulate(session.videodb_id, scripts[n], speed=1, client_token=token)
            self.captures.append(session.videodb_id)
            sessions.append(session)
        self.copilot_sessions = sessions
        viewers = []
        for i, session in enumerate(sessions):
            for v in range(self.args.viewers):
                port = self.ports[(i * self.args.viewers + v) % len(self.ports)]
                headers = {
                    "Cookie": f"sessionid={store.session_key}",
                    "Origin": f"http://127.0.0.1:{port}",
                }
                url = f"ws://127.0.0.1:{port}/ws/sessions/{session.pk}/"
                viewers.append(Viewer(url, headers, ready_mark='id="live-synced"'))

        def start() -> None:
            close_old_connections()
            for session in sessions:
                deadline = time.monotonic() + 20
                while lifecycle.sync_session(session.pk).status != "active":
                    if time.monotonic() > deadline:
                        raise SystemExit("a Copilot session did not go active")
                    time.sleep(0.05)
                lifecycle.start_ai(session.pk)

        return viewers, start

    def _bare_setup(self, scripts: list[dict[str, Any]]) -> tuple[list[Viewer], Callable[[], None]]:
        """Capture sessions through the SDK, the meetings started and active; the viewers of
        their audio streams, and what starts the transcripts on the bare relays' sockets."""
        import videodb

        conn = videodb.connect(api_key=self.api_key, base_url=self.emulator_url)
        collection = conn.get_collection()
        captures = []
        for script in scripts:
            capture = conn.create_capture_session(end_user_id="bench")
            self.control.simulate(capture.id, script, speed=1)
            self.captures.append(capture.id)
            captures.append(capture.id)
        streams: list[list[str]] = []
        for capture_id in captures:
            deadline = time.monotonic() + 20
            while (capture := conn.get_capture_session(capture_id)).status != "active":
                if time.monotonic() > deadline:
                    raise SystemExit("a bare capture session did not go active")
                time.sleep(0.05)
            streams.append([capture.get_rtstream(kind)[0].id for kind in ("mic", "system_audio")])
        viewers = []
        for i, ids in enumerate(streams):
            for v in range(self.args.viewers):
                port = self.bare_ports[(i * self.args.viewers + v) % len(self.bare_ports)]
                url = f"ws://127.0.0.1:{port}/bare/?streams={','.join(ids)}"
                viewers.append(Viewer(url, {"Origin": f"http://127.0.0.1:{port}"}))

        def start() -> None:
            for i, ids in enumerate(streams):
                relay_id = self.bare_relay_ids[i % len(self.bare_relay_ids)]
                for rtstream_id in ids:
                    collection.get_rtstream(rtstream_id).start_transcript(ws_connection_id=relay_id)

        return viewers, start


# --- the saturation search -------------------------------------------------------------------


def saturation(
    rate: float, first: Trial, args: argparse.Namespace
) -> Generator[float, Trial, Trial | None]:
    """Steps of the search, as a generator: it yields the next rate to try and is sent that
    trial; it returns the highest sustained trial (None if even the lowest rate failed)."""
    best = first if first.sustained else None
    low, high = (rate, None) if first.sustained else (None, rate)
    while high is None and low is not None and low * 2 <= args.max_rate:
        trial = yield low * 2
        if trial.sustained:
            low, best = low * 2, trial
        else:
            high = low * 2
    while low is None and high > args.min_rate:
        trial = yield high / 2
        if trial.sustained:
            low, best = high / 2, trial
        else:
            high = high / 2
    for _ in range(args.bisect if low is not None and high is not None else 0):
        middle = round((low + high) / 2, 2)
        trial = yield middle
        if trial.sustained:
            low, best = middle, trial
        else:
            high = middle
    return best


def report(trial: Trial, fragment_bytes: float) -> None:
    check = trial.check
    print(
        f"  emit -> viewer latency ms: p50 {trial.p50:.1f}  p99 {trial.p99:.1f}  "
        f"max {max(check.latencies, default=float('nan')):.1f}  "
        f"({len(check.latencies)} samples)"
    )
    if check.final_latencies:
        print(
            f"    of which finals (the stored lines): p50 "
            f"{percentile(check.final_latencies, 50):.1f}  p99 "
            f"{percentile(check.final_latencies, 99):.1f}  ({len(check.final_latencies)} samples)"
        )
    interims = ""
    if trial.system == "copilot":
        expected = trial.sessions * trial.viewers * trial.utterances * len(WORDS)
        shown = expected - check.finals_missing - check.interims_missing
        interims = f", {shown / expected:.0%} of the events shown as their own frame"
    print(
        f"  delivered {check.line_frames} transcript frames in {trial.window:.1f} s: "
        f"{trial.delivered:.0f}/s ({trial.offered:.0f}/s offered{interims}; "
        f"{check.frames - check.line_frames} other frames); line frame "
        f"{fragment_bytes:.0f} bytes (median); {check.duplicates} duplicate copies"
    )
    print(
        "  CPU (share of one core): "
        + ", ".join(f"{name} {share:.0%}" for name, share in trial.cpu.items())
    )


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
        context.add_cookies(
            [{"name": "sessionid", "value": session_key, "domain": host, "path": "/"}]
        )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--viewers", type=int, default=10, help="per session")
    parser.add_argument("--rate", type=float, default=20.0, help="events/s per session")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured meeting time")
    parser.add_argument("--servers", type=int, default=1, help="Daphne processes (each path)")
    parser.add_argument("--relays", type=int, default=1, help="relay processes (each path)")
    parser.add_argument(
        "--lead-in",
        type=float,
        help="s of setup before the talk starts (default: 3 + 0.2/session, or twice the "
        "last setup's time)",
    )
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="s of unreported meeting per path first"
    )
    parser.add_argument("--no-saturation", action="store_true", help="only the one point")
    parser.add_argument(
        "--aligned",
        action="store_true",
        help="every meeting and channel ends its lines at the same moment (a burst of finals)",
    )
    parser.add_argument(
        "--step-seconds", type=float, default=8.0, help="meeting time of each saturation step"
    )
    parser.add_argument(
        "--step-events",
        type=int,
        default=300,
        help="events in per step at least (a slow step runs longer, so that one stall of the "
        "machine is not its p99 on its own)",
    )
    parser.add_argument("--bisect", type=int, default=2, help="bisections after doubling")
    parser.add_argument("--max-rate", type=float, default=640.0, help="events/s per session")
    parser.add_argument("--min-rate", type=float, default=2.5, help="events/s per session")
    parser.add_argument(
        "--browser",
        action="store_true",
        help="also a Copilot trial with a Chromium viewer (DOM latency)",
    )
    args = parser.parse_args()

    bench = Bench(args)
    started = time.monotonic()
    try:
        bench.start_copilot()
        # Unreported and only checked: first-use costs (connections, template compilation,
        # imports) are not what a live session pays per event.
        if args.warmup:
            bench.warm_up("copilot", args.rate, args.warmup)
        copilot = bench.trial("copilot", args.rate, args.seconds)
        copilot_bytes = statistics.median(copilot.check.line_bytes or [0])
        if not copilot_bytes:
            raise SystemExit("Copilot's viewers received no transcript line at all")
        bench.start_bare(round(copilot_bytes))
        if args.warmup:
            bench.warm_up("bare", args.rate, args.warmup)
        bare = bench.trial("bare", args.rate, args.seconds)
        bare_bytes = statistics.median(bare.check.line_bytes or [0])
        print(
            f"{args.sessions} sessions x {args.viewers} viewers x {args.rate:g} events/s "
            f"({args.sessions * args.rate:g} events/s in, {copilot.offered:.0f} deliveries/s), "
            f"{args.seconds:g} s; each path: {args.servers} Daphne, {args.relays} relay(s); "
            f"Redis, {os.cpu_count()} cores"
        )
        for trial, size in ((copilot, copilot_bytes), (bare, bare_bytes)):
            print(f"{trial.system}:")
            report(trial, size)
        failures = [f"{t.system}: {p}" for t in (copilot, bare) for p in t.problems()]
        if failures:
            raise SystemExit(
                "FAILED at the requested load (missing: not there when nothing had come for "
                f"{QUIET_SECONDS:g} s after the talk): " + "; ".join(failures)
            )
        if args.browser:
            bench.trial("copilot", args.rate, args.seconds, browser=True)
            dom = bench.dom
            print(
                f"copilot, emit -> DOM updated in Chromium (1 viewer of session 0, own trial): "
                f"p50 {percentile(dom, 50):.1f}  p99 {percentile(dom, 99):.1f} ms "
                f"({len(dom)} samples)"
            )

        best = {
            "copilot": copilot if copilot.sustained else None,
            "bare": bare if bare.sustained else None,
        }
        if not args.no_saturation:
            print(
                f"saturation search ({args.sessions} x {args.viewers}; per step at least "
                f"{args.step_seconds:g} s and {args.step_events} events in; sustained: "
                f"p99 < {P99_LIMIT_MS:g} ms, every final, in order):"
            )
            searches = {
                "copilot": saturation(args.rate, copilot, args),
                "bare": saturation(args.rate, bare, args),
            }
            pending = {system: next(search, None) for system, search in searches.items()}
            while any(rate is not None for rate in pending.values()):
                for system, search in searches.items():
                    rate = pending[system]
                    if rate is None:
                        continue
                    seconds = max(args.step_seconds, args.step_events / (args.sessions * rate))
                    trial = bench.trial(system, rate, seconds, drain=STEP_DRAIN_SECONDS)
                    print("  " + trial.summary(), flush=True)
                    if trial.check.out_of_order:
                        raise SystemExit(
                            f"FAILED: {system} delivered out of order at "
                            f"{rate:g} events/s: {trial.check.out_of_order[0]}"
                        )
                    try:
                        pending[system] = search.send(trial)
                    except StopIteration as done:
                        best[system] = done.value
                        pending[system] = None
    except BaseException:
        bench.stop()
        print(f"the processes' logs: {bench.logs}", file=sys.stderr)
        raise
    bench.stop()
    shutil.rmtree(bench.logs, ignore_errors=True)  # kept only when something failed

    throughput = {}
    for system in ("copilot", "bare"):
        trial = best[system]
        throughput[system] = trial.offered if trial else 0.0
        if args.no_saturation:
            continue
        ceiling = (
            " (the --max-rate ceiling: higher not tried)"
            if (trial and trial.rate * 2 > args.max_rate and trial.sustained)
            else ""
        )
        print(
            f"{system} saturation throughput: "
            + (
                f"{trial.offered:.0f} deliveries/s offered ({trial.rate:g} events/s per "
                f"session, {trial.delivered:.0f} frames/s, p99 {trial.p99:.1f} ms){ceiling}"
                if trial
                else f"none sustained down to {args.min_rate:g} events/s per session"
            )
        )
    print(
        f"took {time.monotonic() - started:.0f} s; rerun: "
        + shlex.join([".venv/bin/python", "bench/live.py", *sys.argv[1:]])
    )
    ratio = "n/a (--no-saturation)"
    if not args.no_saturation:
        ratio = f"{throughput['copilot'] / throughput['bare']:.2f}" if throughput["bare"] else "n/a"
    print(f"copilot/bare: p99 {copilot.p99 / bare.p99:.2f}, saturation throughput {ratio}")


if __name__ == "__main__":
    main()
