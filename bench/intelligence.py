"""Meeting intelligence benchmark: the live brief of each bundled meeting, scored.

One real Copilot process, ``manage.py serve --with-emulator`` (the embedded default: Daphne,
the in-process Celery worker and beat, the relay and the VideoDB emulator), on a throwaway
SQLite database. For each meeting this process creates a session through Copilot's own
service, opens a viewer WebSocket on ``/ws/sessions/<id>/`` (the push the live page gets),
has the emulator play the script as the desktop client would (the "Play a simulated
meeting" service), waits for the final brief and reads the database. It prints:

- recall and precision of the final brief's decisions and action items against the labels
  in the scripts (``videodb_emulator.labels.score``: an item matches a label when one of
  its cited transcript lines is one of the label's utterances);
- the share of evidence references that resolve (the cited row exists, in the same
  session, of the cited kind) and support their item (``SUPPORT_RULE``);
- utterance -> live page: when the viewer first received a matched item's fragment citing
  its label's line, minus that utterance's stored end (``end_ms``);
- ``generate_text`` calls and prompt kilobytes per hour of meeting time.

The meetings play sped up (``--speed``, default 4) and ``BRIEF_MAX_WAIT_SECONDS`` is divided
by the same factor, so the refresh policy sees meeting time; the rates are per hour of
meeting time. Waiting for a refresh to be due scales with the speed, the work after it does
not: the latency is printed as measured and as an estimate in meeting time (``--speed 1``
measures that directly).

With the emulator, generate_text is a deterministic stand-in (videodb_emulator/README.md),
so these figures measure Copilot's pipeline, not a model. With ``VIDEODB_API_KEY`` set the
same measurement would score the real model, but simulated meetings exist only on the
emulator: the script then explains that and exits 2.

    .venv/bin/python bench/intelligence.py
    .venv/bin/python bench/intelligence.py --meetings sales_call --speed 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.live import free_port, percentile  # noqa: E402 -- after the path
from videodb_emulator.control_client import ControlClient  # noqa: E402
from videodb_emulator.labels import Label, score  # noqa: E402
from videodb_emulator.scripts import Script, ScriptLibrary  # noqa: E402

DEFAULT_SPEED = 4.0
REAL_TIME_WAIT_SECONDS = 60  # BRIEF_MAX_WAIT_SECONDS's default, in meeting time
SUPPORT_RULE = (
    "a reference supports its item when the cited row's text shares at least 2 content "
    "words, or at least half of the item's content words, with the item's text "
    "(sessions_app.intelligence.answers.supports, the rule the brief's checker applies)"
)
# The form's defaults (sessions_app/forms.py NewSessionForm): what a user gets by default.
AUDIO_PROMPT = "Extract key decisions and action items"
VISUAL_PROMPT = "Describe what is on screen"
PING_SECONDS = 15  # the server closes a socket silent for LIVE_SOCKET_IDLE_SECONDS (60)
FINAL_GRACE_SECONDS = 120  # after the meeting's end, for the final pass
BRIEF_ITEM = re.compile(r'<li id="brief-(\d+)"([^>]*)>(.*?)</li>', re.DOTALL)
CITED_LINE = re.compile(r'data-moment="seg-(\d+)"')


def wait_port(port: int, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listened on {port} after {timeout:.0f} s")


def seconds(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 50) / 1000:.1f} s / p95 {percentile(values, 95) / 1000:.1f} s"
        f"  ({len(values)} items)"
    )


# --- the viewer: a live page's socket -------------------------------------------------------


@dataclass(frozen=True)
class Push:
    at_ms: float  # when the viewer received it (epoch ms)
    hidden: bool  # the item left the brief
    lines: frozenset[int]  # the transcript lines it cites


class Viewer(threading.Thread):
    """One WebSocket viewer of a session, in a thread with its own event loop, recording
    every brief item fragment it receives."""

    def __init__(self, url: str, cookie: str, origin: str) -> None:
        super().__init__(daemon=True)
        self.url, self.cookie, self.origin = url, cookie, origin
        self.pushes: dict[int, list[Push]] = {}
        self.synced = threading.Event()
        self.stopping = threading.Event()
        self.error = ""

    def run(self) -> None:
        try:
            asyncio.run(self._watch())
        except Exception as exc:  # reported by the main thread, which decides
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.synced.set()

    async def _watch(self) -> None:
        headers = {"Cookie": self.cookie, "Origin": self.origin}
        async with (
            aiohttp.ClientSession(headers=headers) as client,
            client.ws_connect(self.url, max_msg_size=0) as ws,
        ):
            await ws.send_str(json.dumps({"type": "resume", "last_seq": 0}))
            pinged = time.monotonic()
            while not self.stopping.is_set():
                if time.monotonic() - pinged > PING_SECONDS:
                    await ws.send_str(json.dumps({"type": "ping"}))
                    pinged = time.monotonic()
                try:
                    message = await asyncio.wait_for(ws.receive(), timeout=0.5)
                except TimeoutError:
                    continue
                if message.type != aiohttp.WSMsgType.TEXT:
                    self.error = f"the socket closed ({message.type.name}, code {ws.close_code})"
                    return
                now_ms = time.time() * 1000
                if 'id="live-synced"' in message.data:
                    self.synced.set()
                for match in BRIEF_ITEM.finditer(message.data):
                    attributes, body = match.group(2), match.group(3)
                    lines = frozenset(int(n) for n in CITED_LINE.findall(body))
                    push = Push(now_ms, " hidden" in attributes, lines)
                    self.pushes.setdefault(int(match.group(1)), []).append(push)


# --- one meeting ----------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    script: Script
    decisions: tuple[int, int, int] = (0, 0, 0)  # labels, found, matched
    actions: tuple[int, int, int] = (0, 0, 0)
    owners: tuple[int, int] = (0, 0)  # right, matched action items with a labelled owner
    references: int = 0
    resolved: int = 0
    supported: int = 0
    items: int = 0
    items_without_evidence: int = 0
    unsupported: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # ms, wall clock
    pipeline: list[float] = field(default_factory=list)  # ms after the refresh's input arrived
    meeting_time: list[float] = field(default_factory=list)  # ms, estimated at speed 1
    not_pushed: int = 0
    generate_calls: int = 0
    briefs: int = 0
    prompt_bytes: int = 0
    lines_missing: list[float] = field(default_factory=list)  # script seconds never stored
    items_removed: dict[str, int] = field(default_factory=dict)  # kind -> shown, then dropped
    paused: str = ""
    timed_out: bool = False

    @property
    def hours(self) -> float:
        return self.script.duration / 3600


def generate_calls(control: ControlClient) -> int:
    return sum(
        n
        for key, n in control.request_counts().items()
        if key.startswith("POST ") and key.endswith("/generate/text")
    )


def play(
    name: str, script: Script, owner: object, viewer_args: tuple[str, str, str], speed: float,
    control: ControlClient,
) -> Result:  # fmt: skip
    from sessions_app.capture import handoff, simulator
    from sessions_app.models import Brief, CaptureSession

    result = Result(name, script)
    calls_before = generate_calls(control)
    session = handoff.create_session(
        owner, title=script.title, audio_prompt=AUDIO_PROMPT, visual_prompt=VISUAL_PROMPT
    )
    url, cookie, origin = viewer_args
    viewer = Viewer(url.format(pk=session.pk), cookie, origin)
    viewer.start()
    try:
        if not viewer.synced.wait(15) or viewer.error:
            raise SystemExit(f"{name}: the viewer socket did not sync: {viewer.error or 'timeout'}")
        simulator.play(session, script=name)
        deadline = time.monotonic() + script.duration / speed + FINAL_GRACE_SECONDS
        while not Brief.objects.filter(session=session, is_final=True).exists():
            if time.monotonic() > deadline:
                result.timed_out = True
                break
            if viewer.error:
                raise SystemExit(f"{name}: the viewer lost its socket: {viewer.error}")
            time.sleep(0.5)
        time.sleep(1.0)  # the final brief's push follows its commit
    finally:
        viewer.stopping.set()
        viewer.join(10)
    result.generate_calls = generate_calls(control) - calls_before
    session = CaptureSession.objects.get(pk=session.pk)
    result.paused = session.brief_paused
    measure(result, session, viewer.pushes, speed)
    return result


def measure(result: Result, session: object, pushes: dict[int, list[Push]], speed: float) -> None:
    from django.db.models import Sum

    from sessions_app.intelligence import answers
    from sessions_app.models import Alert, Brief, BriefItem, Insight, TranscriptSegment

    script = result.script
    lines = {
        row.pk: row
        for row in TranscriptSegment.objects.filter(session=session, is_final=True).select_related(
            "stream"
        )
    }
    # Where each stored line falls in the script: the emulator stamps a line with the wall
    # clock its utterance played at, so the meeting's start is found from the lines that
    # match one utterance exactly (channel and text), and every line placed from it.
    said: dict[tuple[str, str], list[float]] = {}
    for utterance in script.utterances:
        said.setdefault((utterance.channel, utterance.text), []).append(utterance.start)
    starts = [
        row.start_ms / 1000 - said[key][0] / speed
        for row in lines.values()
        if len(said.get(key := (row.stream.kind, row.text), ())) == 1
    ]
    if not starts:
        raise SystemExit(f"{result.name}: no stored line matches the script; nothing to score")
    began = statistics.median(starts)
    at = {pk: (row.start_ms / 1000 - began) * speed for pk, row in lines.items()}
    stored = {(row.stream.kind, row.text) for row in lines.values()}
    result.lines_missing = [u.start for u in script.utterances if (u.channel, u.text) not in stored]
    # VideoDB's lines carry no names: Copilot labels them by channel (Me, Others) unless the
    # owner renames a stream, so a labelled owner is right when the item names their channel.
    shown_as = {stream.kind: stream.speaker for stream in session.streams.all()}
    channel_of = {u.speaker: u.channel for u in script.utterances}

    briefs = Brief.objects.filter(session=session)
    result.briefs = briefs.count()
    result.prompt_bytes = briefs.aggregate(n=Sum("prompt_bytes"))["n"] or 0
    # Each brief: when it was made, and when its input was complete: its last final line
    # arrived or, for the final pass, the meeting ended (the emulator stops capture then).
    ended_ms = (began + script.duration / speed) * 1000
    made: list[tuple[float, float]] = []
    for made_at, through, is_final in briefs.order_by("number").values_list(
        "made_at", "covered_through_seq", "is_final"
    ):
        covered = [row.updated_at for row in lines.values() if row.seq <= through]
        ready_ms = max(covered).timestamp() * 1000 if covered else 0.0
        made.append((made_at.timestamp() * 1000, max(ready_ms, ended_ms) if is_final else ready_ms))
    current = list(BriefItem.objects.filter(session=session, is_current=True).order_by("pk"))
    result.items = len(current)
    for kind in BriefItem.objects.filter(session=session, is_current=False).values_list(
        "kind", flat=True
    ):
        result.items_removed[kind] = result.items_removed.get(kind, 0) + 1

    def cited_lines(item: BriefItem) -> list[int]:
        return [
            e["id"]
            for e in item.evidence
            if isinstance(e, dict) and e.get("kind") == "transcript" and e.get("id") in at
        ]

    for kind, labels, slot in (
        (BriefItem.Kind.DECISION, script.ground_truth.decisions, "decisions"),
        (BriefItem.Kind.ACTION, script.ground_truth.action_items, "actions"),
    ):
        found = [item for item in current if item.kind == kind]
        scored = score(labels, [[at[pk] for pk in cited_lines(item)] for item in found])
        setattr(result, slot, (scored.labels, scored.found, len(scored.pairs)))
        for label_index, found_index in scored.pairs:
            label, item = labels[label_index], found[found_index]
            if kind == BriefItem.Kind.ACTION and label.owner:
                right = item.owner == shown_as.get(channel_of[label.owner])
                result.owners = (result.owners[0] + right, result.owners[1] + 1)
            timing(result, label, pushes.get(item.pk, []), lines, at, made, speed)

    # Evidence: every reference of every current item (all four lists).
    models = {
        "transcript": TranscriptSegment.objects.filter(is_final=True),
        "visual": Insight.objects.filter(kind=Insight.Kind.VISUAL),
        "audio": Insight.objects.filter(kind=Insight.Kind.AUDIO),
        "alert": Alert.objects.all(),
    }
    for item in current:
        if not item.evidence:
            result.items_without_evidence += 1
        for entry in item.evidence:
            result.references += 1
            rows = models.get(entry.get("kind") if isinstance(entry, dict) else None)
            row = None if rows is None else rows.filter(pk=entry.get("id"), session=session).first()
            if row is None:
                continue
            result.resolved += 1
            text = f"{row.label} {row.text}" if isinstance(row, Alert) else row.text
            if answers.supports(item.text, text):
                result.supported += 1
            elif len(result.unsupported) < 3:
                result.unsupported.append(f"{item.kind} {item.text[:60]!r} <- {text[:60]!r}")


def timing(
    result: Result, label: Label, pushes: list[Push], lines: dict, at: dict,
    made: list[tuple[float, float]], speed: float,
) -> None:  # fmt: skip
    """Utterance -> live page for one matched item: the first push showing it with a line of
    its label, minus the end of the latest such line it cites."""
    on_label = {pk for pk, second in at.items() if label.covers(second)}
    first = next((p for p in pushes if not p.hidden and p.lines & on_label), None)
    if first is None:
        result.not_pushed += 1
        return
    said_ms = max(lines[pk].end_ms for pk in first.lines & on_label)
    result.latencies.append(first.at_ms - said_ms)
    # Split at the moment the input of the brief behind this push was complete: before it,
    # waiting for the brief to be due (meeting time); after it, Copilot's work (wall time).
    behind = [ready_ms for made_ms, ready_ms in made if made_ms <= first.at_ms]
    if not behind or not behind[-1]:
        return
    work = first.at_ms - behind[-1]
    result.pipeline.append(work)
    result.meeting_time.append((behind[-1] - said_ms) * speed + work)


# --- the run --------------------------------------------------------------------------------


def ratio(matched: int, of: int) -> str:
    return f"{matched}/{of} {matched / of:.2f}" if of else "0/0 -"


def report(results: list[Result], speed: float, wait: int, elapsed: float) -> None:
    print(
        "Meeting intelligence on the VideoDB emulator: generate_text is its deterministic "
        "stand-in, not a model, so this measures Copilot's pipeline (prompt, checks, storage, "
        "push)."
    )
    print(
        f"{len(results)} meeting(s) at {speed:g}x (BRIEF_MAX_WAIT_SECONDS={wait}, "
        f"= {wait * speed:g} s of meeting time); embedded default (SQLite, in-process worker), "
        f"{os.cpu_count()} cores; {elapsed:.0f} s"
    )
    print()
    head = (
        f"{'meeting':<18}{'decisions R':>12}{'P':>11}{'actions R':>12}{'P':>11}"
        f"{'owners':>8}{'evidence ok':>13}{'gen/h':>7}{'kB/h':>7}"
    )
    print(head)
    for r in [*results, None]:
        rows = results if r is None else [r]
        if r is None and len(results) < 2:
            break
        d = [sum(x.decisions[i] for x in rows) for i in range(3)]
        a = [sum(x.actions[i] for x in rows) for i in range(3)]
        hours = sum(x.hours for x in rows)
        refs, ok = sum(x.references for x in rows), sum(x.supported for x in rows)
        print(
            f"{'overall' if r is None else r.name:<18}"
            f"{ratio(d[2], d[0]):>12}{ratio(d[2], d[1]):>11}"
            f"{ratio(a[2], a[0]):>12}{ratio(a[2], a[1]):>11}"
            f"{sum(x.owners[0] for x in rows):>4}/{sum(x.owners[1] for x in rows):<3}"
            f"{ratio(ok, refs):>13}"
            f"{sum(x.generate_calls for x in rows) / hours:>7.0f}"
            f"{sum(x.prompt_bytes for x in rows) / 1000 / hours:>7.0f}"
        )
    print()
    print("R recall, P precision of the final brief against the scripts' labels; an item")
    print("matches a label when one of its cited transcript lines is one of the label's lines.")
    refs = sum(r.references for r in results)
    print(
        f"evidence: {sum(r.resolved for r in results)}/{refs} references resolve (the cited "
        "row exists, in the same session, of the cited kind);\n"
        f"  {sum(r.supported for r in results)}/{refs} resolve and support their item; "
        f"{sum(r.items_without_evidence for r in results)} of "
        f"{sum(r.items for r in results)} items in the final briefs cite nothing"
    )
    print(f"  rule: {SUPPORT_RULE}")
    for r in results:
        for example in r.unsupported:
            print(f"  not supported ({r.name}): {example}")
    latencies = [x for r in results for x in r.latencies]
    print(f"utterance -> live page, measured at {speed:g}x: {seconds(latencies)}")
    print(
        "  Copilot's work once the brief's input was complete (its last line, or the stop): "
        + seconds([x for r in results for x in r.pipeline])
    )
    print(
        "  estimated in meeting time (the wait for the refresh x speed, plus that work): "
        + seconds([x for r in results for x in r.meeting_time])
    )
    missing = sum(r.not_pushed for r in results)
    if missing:
        print(f"  {missing} matched item(s) never reached the viewer citing their label's line")
    for r in results:
        notes = [
            f"{r.briefs} briefs",
            f"{r.generate_calls} generate_text calls",
            f"{r.prompt_bytes / 1000:.0f} kB of prompts",
            f"{len(r.script.utterances) - len(r.lines_missing)}/{len(r.script.utterances)} "
            "lines stored"
            + (
                f" (never stored: {', '.join(f'{t:g} s' for t in r.lines_missing)})"
                if r.lines_missing
                else ""
            ),
            "items shown then dropped: "
            + (", ".join(f"{n} {kind}" for kind, n in sorted(r.items_removed.items())) or "none"),
        ]
        if r.paused:
            notes.append(f"brief paused: {r.paused}")
        if r.timed_out:
            notes.append("NO FINAL BRIEF (timed out)")
        print(f"{r.name} ({r.script.duration / 60:.1f} min of meeting): " + ", ".join(notes))
    print(
        "owners: matched action items whose owner is the labelled person's channel as Copilot "
        "names it (VideoDB's lines carry no names: Me / Others unless renamed)."
    )
    print(
        "gen/h and kB/h: generate_text calls (the emulator's request counter) and prompt kB "
        "(Brief.prompt_bytes) per hour of meeting time."
    )


def main() -> None:
    library = ScriptLibrary()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--meetings", default=",".join(library.names()), help="comma-separated script names"
    )
    parser.add_argument(
        "--speed", type=float, default=DEFAULT_SPEED, help="meeting playback speed (1: real time)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if os.environ.get("VIDEODB_API_KEY"):
        print(
            "VIDEODB_API_KEY is set: scoring the real model needs real meetings, and simulated "
            "meetings only exist on the local emulator. Unset it to measure Copilot's pipeline "
            "on the emulator's stand-in.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    names = [n.strip() for n in args.meetings.split(",") if n.strip()]
    unknown = sorted(set(names) - set(library.names()))
    if not names or unknown:
        parser.error(f"--meetings: unknown {unknown or 'none given'}; known: {library.names()}")
    if not 0.1 <= args.speed <= 20:
        parser.error("--speed must be between 0.1 and 20")
    scripts = {name: library.get(name) for name in names}

    var_dir = Path(tempfile.mkdtemp(prefix="copilot-intelligence-bench-"))
    port, emulator_port = free_port(), free_port()
    wait = max(1, round(REAL_TIME_WAIT_SECONDS / args.speed))
    env = {
        **os.environ,
        "COPILOT_VAR_DIR": str(var_dir),
        "SECRET_KEY": "bench-only",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "VIDEODB_BASE_URL": f"http://127.0.0.1:{emulator_port}",
        "SIMULATED_MEETING_SPEED": str(args.speed),
        "BRIEF_MAX_WAIT_SECONDS": str(wait),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "copilot.settings",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "DEBUG", "VIDEODB_API_KEY"):
        env.pop(name, None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT, env=env, check=True, timeout=300,
    )  # fmt: skip
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from sessions_app.models import User

    log_path = var_dir / "serve.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port), "--with-emulator"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    results: list[Result] = []
    try:
        wait_port(port, server)
        wait_port(emulator_port, server)
        control = ControlClient(f"http://127.0.0.1:{emulator_port}", "emulator-dev-key")
        owner, _ = User.objects.get_or_create(username="bench")
        store = SessionStore()
        store[SESSION_KEY] = str(owner.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = owner.get_session_auth_hash()
        store.create()
        viewer_args = (
            f"ws://127.0.0.1:{port}/ws/sessions/{{pk}}/",
            f"sessionid={store.session_key}",
            f"http://127.0.0.1:{port}",
        )
        for name in names:
            print(
                f"playing {name} ({scripts[name].duration / args.speed:.0f} s at "
                f"{args.speed:g}x) ...",
                file=sys.stderr,
                flush=True,
            )
            results.append(play(name, scripts[name], owner, viewer_args, args.speed, control))
    except BaseException:
        print(f"server log: {log_path}", file=sys.stderr)
        args.keep = True
        raise
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)

    report(results, args.speed, wait, time.monotonic() - started)
    print("rerun: " + " ".join([".venv/bin/python bench/intelligence.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
