"""Past one machine, shown on this one: two Daphne processes, two relay shards and a channel
layer sharded over two Redis servers play several meetings at once for viewers spread over
both web processes, and killing one relay shard (SIGKILL) mid-meeting loses nothing once it
is back.

What it proves, for every meeting:
- the database holds what VideoDB (the emulator) holds: final transcript lines and insights,
  compared as sorted lists, so a line stored twice shows;
- every viewer, on either Daphne, ends with the page a fresh load would show: every stored
  item (final lines, insights, alerts, brief items) at its latest change, the same text;
- the live path sends each change once: on one socket, no pushed fragment (element id and
  sequence number) ever comes twice, and each channel's transcript lines come in order. A
  replay a viewer asked for (on connecting, or for a gap) re-sends what it covers by design
  (static/copilot/live.js ignores a copy it has), so only pushes are counted;
- the outage was real: when the killed shard comes back, VideoDB holds lines of its meetings
  that Copilot does not; its recovery backfills them, connected viewers get them pushed (or
  ask for a gap, as the browser does), and viewers that were away resume and get them.

The viewers are real WebSocket clients that follow the browser's protocol (live.js): resume
on every connect, count sequence numbers, ask again for a gap that stays open for 2 s.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
import requests

from tests.conftest import (
    Process,
    free_port,
    point_at,
    process_env,
    start_relay,
    start_worker,
    wait_for_port,
    wait_until,
)
from tests.redis_shards import RedisServer, redis_servers

pytestmark = [pytest.mark.services, pytest.mark.timeout(180)]

MEETINGS = 4  # two per relay shard (a session belongs to shard id % 2)
VIEWERS_PER_MEETING = 3  # on alternate Daphne processes; the last one goes away and resumes
GAP_SECONDS = 2.0  # live.js: a gap in sequence numbers open this long asks for a resume
OUTAGE_SECONDS = 3.0  # how long the killed relay shard stays down


def scale_script() -> dict:
    """A 20 s meeting: nobody speaks for 2 s (the AI is started meanwhile), then the two
    audio channels take turns, a line ending every 0.7 s or so, on a screen that changes, with
    a pricing objection for the alert rule."""
    utterances, t, channel = [], 2.0, "mic"
    while t + 1.2 <= 19.5:
        speaker = "Ana" if channel == "mic" else "Dana"
        text = f"{speaker} on the pricing page at {t:.1f} seconds, line {len(utterances) + 1}."
        utterances.append(
            {"channel": channel, "speaker": speaker, "start": t, "end": t + 1.2, "text": text}
        )
        t += 0.7
        channel = "system_audio" if channel == "mic" else "mic"
    return {
        "title": "Scale test meeting",
        "duration": 20.0,
        "utterances": utterances,
        "scenes": [
            {"start": 0.0, "end": 5.0, "text": "Pricing page with three tiers."},
            {"start": 5.0, "end": 10.0, "text": "A spreadsheet of discounts."},
            {"start": 10.0, "end": 20.0, "text": "An email draft with the quote."},
        ],
        "insights": [
            {"start": 0.0, "end": 7.0, "text": "The customer finds the top tier expensive."},
            {"start": 7.0, "end": 20.0, "text": "Decision: offer a discount."},
        ],
        "alerts": [
            {"at": 6.0, "start": 5.0, "label": "pricing_objection", "keywords": ["pricing"],
             "confidence": 0.9, "text": "Customer objects to pricing.",
             "channel": "system_audio"},
        ],
    }  # fmt: skip


@pytest.fixture
def channel_shards() -> Iterator[list[RedisServer]]:
    """Two Redis servers for the channel layer (the Celery broker stays on REDIS_URL)."""
    with redis_servers(2) as servers:
        yield servers


# --- where channels-redis puts a group -----------------------------------------------------


def server_of(group: str, urls: list[str]) -> int:
    """The channel-layer server that holds ``group``: channels-redis's own consistent hash
    over the hosts list (a layer object connects to nothing until it is used)."""
    from channels_redis.core import RedisChannelLayer

    return RedisChannelLayer(hosts=urls).consistent_hash(group)


def spread(candidates: list, urls: list[str]) -> list | None:
    """``MEETINGS`` of ``candidates``, half on each relay shard (id % 2), with groups on both
    channel-layer servers; None when they hold no such choice yet. (Groups of consecutive ids
    cluster: "session.1" to "session.7" all hash to the same one of two servers.)"""
    where = {session.pk: server_of(f"session.{session.pk}", urls) for session in candidates}
    for chosen in itertools.combinations(candidates, MEETINGS):
        relay_shards = sorted(session.pk % 2 for session in chosen)
        servers = {where[session.pk] for session in chosen}
        if relay_shards == [0] * (MEETINGS // 2) + [1] * (MEETINGS // 2) and servers == {0, 1}:
            return list(chosen)
    return None


# --- a viewer that follows live.js --------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


class Fragments(HTMLParser):
    """The top-level elements of one frame: their attributes and the text of their line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[dict] = []
        self._depth = 0
        self._text_depth: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if self._depth == 0:
            self.items.append({"attrs": values, "text": ""})
        if tag in VOID:
            return
        self._depth += 1
        if self._text_depth is None and "text" in values.get("class", "").split():
            self._text_depth = self._depth

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if self._text_depth == self._depth:
            self._text_depth = None
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._text_depth is not None and self.items:
            self.items[-1]["text"] += data


def fragments(html: str) -> list[dict]:
    parser = Fragments()
    parser.feed(html)
    parser.close()
    return parser.items


def apply(page: dict[str, tuple[int, str]], item: dict) -> None:
    """What the browser does with a sequenced item: an older copy never replaces a newer."""
    attrs = item["attrs"]
    key, seq = attrs["id"], int(attrs["data-seq"])
    if key in page and page[key][0] > seq:
        return
    if attrs.get("hx-swap-oob") == "delete":
        page.pop(key, None)
    else:
        page[key] = (seq, " ".join(item["text"].split()))


def sequenced(item: dict) -> bool:
    attrs = item["attrs"]
    return (
        "id" in attrs
        and attrs.get("data-seq", "").lstrip("-").isdigit()
        and (int(attrs["data-seq"]) > 0)
    )


@dataclass
class Viewer:
    """One browser watching one session through one Daphne."""

    name: str
    url: str
    origin: str
    cookie: str
    online: bool = True
    complete: int = 0  # every change numbered up to this is on the page
    received: set[int] = field(default_factory=set)
    replaying: bool = False
    page: dict[str, tuple[int, str]] = field(default_factory=dict)
    # (connection, element id, seq, stream, list) of every fragment pushed outside a replay
    pushes: list[tuple[int, str, int, str, str]] = field(default_factory=list)
    connections: int = 0
    synced: bool = False
    closes: list[str] = field(default_factory=list)
    failure: Exception | None = None

    def note(self, seq: int) -> None:
        if seq > self.complete:
            self.received.add(seq)
        while self.complete + 1 in self.received:
            self.received.discard(self.complete + 1)
            self.complete += 1

    def complete_through(self, through: int) -> None:
        if through > self.complete:
            self.complete = through
            self.received = {seq for seq in self.received if seq > through}
        self.note(self.complete)

    async def run(self, stop: threading.Event) -> None:
        headers = {"Cookie": self.cookie, "Origin": self.origin}
        try:
            async with aiohttp.ClientSession(headers=headers) as http:
                while not stop.is_set():
                    if not self.online:
                        await asyncio.sleep(0.05)
                        continue
                    try:
                        async with http.ws_connect(self.url, max_msg_size=0) as ws:
                            await self._connected(ws, stop)
                    except aiohttp.ClientError as error:  # as the browser: try again
                        self.closes.append(repr(error))
                        await asyncio.sleep(0.5)
        except Exception as error:  # a defect of this client: the test must say so
            self.failure = error
            raise

    async def _connected(self, ws: aiohttp.ClientWebSocketResponse, stop: threading.Event) -> None:
        self.connections += 1
        connection = self.connections
        self.replaying = True
        await ws.send_str(json.dumps({"type": "resume", "last_seq": self.complete}))
        gap_since: tuple[float, int] | None = None
        pinged = time.monotonic()
        while not stop.is_set() and self.online:
            try:
                message = await asyncio.wait_for(ws.receive(), timeout=0.1)
            except TimeoutError:
                message = None
            if message is not None:
                if message.type != aiohttp.WSMsgType.TEXT:
                    self.closes.append(f"{message.type.name} {ws.close_code}")
                    return
                if await self._frame(ws, connection, message.data):
                    gap_since = None
            now = time.monotonic()
            if self.replaying or not self.received:
                gap_since = None
            elif gap_since is None or gap_since[1] != self.complete:
                gap_since = (now, self.complete)
            elif now - gap_since[0] >= GAP_SECONDS:
                self.replaying = True
                await ws.send_str(json.dumps({"type": "resume", "last_seq": self.complete}))
                gap_since = None
            if now - pinged > 15:  # the server closes a socket silent for 60 s
                await ws.send_str(json.dumps({"type": "ping"}))
                pinged = now

    async def _frame(self, ws: aiohttp.ClientWebSocketResponse, connection: int, html: str) -> bool:
        """Apply one frame; True when it ended a replay."""
        ended = False
        for item in fragments(html):
            attrs = item["attrs"]
            if attrs.get("id") == "live-synced":
                self.complete_through(int(attrs["data-through"]))
                if "data-more" in attrs:
                    await ws.send_str(json.dumps({"type": "resume", "last_seq": self.complete}))
                else:
                    self.replaying, self.synced, ended = False, True, True
            elif sequenced(item):
                seq = int(attrs["data-seq"])
                if "data-list" in attrs:
                    self.note(seq)
                if not self.replaying:
                    stream, kind = attrs.get("data-stream", ""), attrs.get("data-list", "")
                    self.pushes.append((connection, attrs["id"], seq, stream, kind))
                apply(self.page, item)
        return ended


class Viewers:
    """The viewers' event loop, in a thread of its own (the test drives processes)."""

    def __init__(self, viewers: list[Viewer]) -> None:
        self.viewers = viewers
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            await asyncio.gather(*(viewer.run(self.stop) for viewer in self.viewers))

        asyncio.run(main())

    def __enter__(self) -> Viewers:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)

    def all(self, predicate: Callable[[Viewer], bool], among: list[Viewer] | None = None) -> bool:
        """Whether every viewer (of ``among``) satisfies ``predicate``; raises if one of them
        broke, rather than leave the test waiting for it."""
        for viewer in self.viewers:
            if viewer.failure is not None:
                raise AssertionError(f"{viewer.name} failed") from viewer.failure
        return all(predicate(viewer) for viewer in among or self.viewers)


# --- what each side holds -------------------------------------------------------------------


def stored(session) -> tuple[list, list]:
    """What Copilot stored for the session, as sorted lists: a duplicate would show."""
    from sessions_app.models import Insight, TranscriptSegment

    segments = TranscriptSegment.objects.filter(session=session, is_final=True).values_list(
        "stream__videodb_id", "start_ms", "text"
    )
    insights = Insight.objects.filter(session=session).values_list(
        "stream__videodb_id", "kind", "start_ms", "text"
    )
    return sorted(segments), sorted(insights)


def remote_truth(emulator, session) -> tuple[list, list]:
    """What VideoDB holds for the session's streams: final lines and index records."""
    collection = emulator.connect().get_collection()
    segments, records = [], []
    for stream in session.streams.all():
        remote = collection.get_rtstream(stream.videodb_id)
        for segment in remote.get_transcript(page_size=1000).get("segments", []):
            segments.append((stream.videodb_id, segment["start"], segment["text"]))
        for index in remote.list_scene_indexes():
            kind = "audio" if index.extraction_type == "transcript" else "visual"
            for record in index.get_scenes(page_size=1000)["scenes"]:
                records.append((stream.videodb_id, kind, record["start"], record["text"]))
    return sorted(segments), sorted(records)


def fresh_page(session) -> dict[str, tuple[int, str]]:
    """The page a browser loading now would reach: a replay of everything from 0."""
    from sessions_app.live import broadcast

    updates, more = broadcast.replay_page(session, 0, limit=100_000)
    assert more is None
    page: dict[str, tuple[int, str]] = {}
    for update in updates:
        for item in fragments(update["html"]):
            if sequenced(item):
                apply(page, item)
    return page


def owner_cookie(owner) -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store[SESSION_KEY] = str(owner.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = owner.get_session_auth_hash()
    store.create()
    return f"sessionid={store.session_key}"


def start_daphne(tmp_path: Path, port: int, public: str, env: dict) -> Process:
    return Process(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        process_env(ALLOWED_HOSTS="127.0.0.1,localhost", PUBLIC_BASE_URL=public, **env),
        tmp_path / f"daphne-{port}.log",
    )


# A relay to be, loaded and waiting: Python and Django take seconds to start on a busy 2-core
# machine, and the test wants the killed shard back while its meetings still play. The relay
# itself starts from nothing on SIGUSR1, as ``manage.py relay`` does.
STANDBY = """
import signal, sys
import django
django.setup()
from django.core.management import call_command
import sessions_app.relay  # noqa: F401
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
print("standby ready", flush=True)
signal.sigwait({signal.SIGUSR1})
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
call_command("relay", "--shard", sys.argv[1])
"""


def standby_relay(tmp_path: Path, shard: int, **env: str | None) -> Process:
    return Process(
        [sys.executable, "-c", STANDBY, str(shard)],
        process_env(DJANGO_SETTINGS_MODULE="copilot.settings", **env),
        tmp_path / f"relay-{shard}-standby.log",
    )


# --- the test -----------------------------------------------------------------------------


def test_two_daphnes_two_relays_and_two_redis_shards_lose_nothing_when_a_relay_is_killed(
    channel_shards: list[RedisServer], transactional_db, settings, tmp_path: Path
) -> None:
    from sessions_app.capture import handoff
    from sessions_app.models import (
        Alert,
        AlertRule,
        CaptureSession,
        RelayConnection,
        StreamOperation,
        User,
    )
    from videodb_emulator.testing import running_emulator

    processes: list[Process] = []
    with running_emulator() as emulator:
        env = {
            "VIDEODB_BASE_URL": emulator.base_url,
            "VIDEODB_API_KEY": None,
            "TASK_RETRY_BASE_SECONDS": "0",
            "RELAY_SHARDS": "2",
            "CHANNEL_REDIS_URLS": ",".join(shard.url for shard in channel_shards),
        }
        ports = [free_port(), free_port()]
        public = f"http://127.0.0.1:{ports[0]}"  # VideoDB's webhooks and alert callbacks
        try:
            # Everything at once: on 2 cores their start-ups overlap.
            daphnes = [(f"http://127.0.0.1:{port}", start_daphne(tmp_path, port, public, env))
                       for port in ports]  # fmt: skip
            relays = {k: start_relay(tmp_path, k, PUBLIC_BASE_URL=public, **env) for k in (0, 1)}
            standby = standby_relay(tmp_path, 0, PUBLIC_BASE_URL=public, **env)
            worker = start_worker(tmp_path, PUBLIC_BASE_URL=public, **env)
            processes += [*(server for _, server in daphnes), *relays.values(), standby, worker]
            for port, (_, server) in zip(ports, daphnes, strict=True):
                wait_for_port(port, server.popen, timeout=60)  # six start-ups on two cores
            settings.RELAY_SHARDS = 2
            point_at(settings, emulator, public)
            wait_until(
                lambda: RelayConnection.objects.exclude(connection_id="").count() == 2,
                60,
                "both relay shards to connect",
            )
            for url, _ in daphnes:  # each web process sees both shards of the channel layer
                checks = requests.get(f"{url}/healthz", timeout=10).json()["checks"]
                assert checks == {
                    "database": "ok",
                    "channel_layer.0": "ok",
                    "channel_layer.1": "ok",
                    "channel_layer": "ok",
                }

            owner = User.objects.create_user("ada", password="x", display_name="Ada")
            rule = AlertRule.objects.create(
                owner=owner, name="Pricing objection", label="pricing_objection", prompt="pricing"
            )
            # Meetings on both relay shards, whose groups live on both Redis servers.
            candidates: list[CaptureSession] = []
            sessions: list[CaptureSession] | None = None
            while sessions is None:
                candidates.append(
                    handoff.create_session(
                        owner,
                        title=f"Scale {len(candidates)}",
                        audio_prompt="Decisions",
                        visual_prompt="Screen",
                        alert_rules=[rule],
                    )
                )
                sessions = spread(candidates, [server.url for server in channel_shards])
            cookie = owner_cookie(owner)
            viewers: dict[int, list[Viewer]] = {}
            for n, session in enumerate(sessions):
                viewers[session.pk] = [
                    Viewer(
                        name=f"session {session.pk} viewer {v} on {url}",
                        url=f"{url.replace('http', 'ws')}/ws/sessions/{session.pk}/",
                        origin=url,
                        cookie=cookie,
                    )
                    for v in range(VIEWERS_PER_MEETING)
                    for url, _ in [daphnes[(n + v) % len(daphnes)]]
                ]
            everyone = [viewer for group in viewers.values() for viewer in group]
            assert {v.origin for group in viewers.values() for v in group} == {
                u for u, _ in daphnes
            }

            with Viewers(everyone) as watching:
                wait_until(lambda: watching.all(lambda v: v.synced), 30, "every viewer to sync")
                # Played all but paused (the emulator's clock at 1 %) until every AI
                # operation, the alerts' included, is started: an alert created after its
                # moment would never fire. Then the four meetings play at once, in real time.
                for session in sessions:
                    token = handoff.mint_client_token(session).token
                    emulator.control.simulate(
                        session.videodb_id, scale_script(), speed=0.01, client_token=token
                    )
                # VideoDB's webhooks reach a Daphne, whose task makes the worker start each
                # stream's AI with its shard's socket (RELAY_SHARDS=2 there too).
                operations = StreamOperation.objects.filter(stream__session__in=sessions)

                def every_operation_started() -> bool:
                    return not operations.exclude(
                        state=StreamOperation.State.STARTED
                    ).exists() and all(
                        operations.filter(
                            stream__session=s, kind=StreamOperation.Kind.ALERT
                        ).exists()
                        for s in sessions
                    )

                try:
                    wait_until(every_operation_started, 60, "every AI operation to be started")
                except AssertionError:
                    rows = operations.values_list("stream__videodb_id", "kind", "state")
                    raise AssertionError(f"AI operations: {sorted(rows)}") from None
                for session in sessions:
                    emulator.control.set_speed(session.videodb_id, 1.0)
                wait_until(lambda: "standby ready" in standby.log(), 30, "the standby relay")
                killed = [s for s in sessions if s.pk % 2 == 0]
                wait_until(
                    lambda: all(stored(s)[0] for s in killed),
                    30,
                    "the first lines of shard 0's meetings to be stored",
                )

                # Mid-meeting: shard 0's relay dies without a word, and the last viewer of
                # each of its meetings goes away too.
                relays[0].kill()
                away = [viewers[s.pk][-1] for s in killed]
                for viewer in away:
                    viewer.online = False
                time.sleep(OUTAGE_SECONDS)
                before = RelayConnection.objects.get(shard="0").connection_id
                missed = {
                    s.pk: set(remote_truth(emulator, s)[0]) - set(stored(s)[0]) for s in killed
                }
                standby.popen.send_signal(signal.SIGUSR1)  # shard 0's relay starts afresh
                wait_until(
                    lambda: (
                        RelayConnection.objects.get(shard="0").connection_id not in ("", before)
                    ),
                    30,
                    "shard 0 to reconnect",
                )
                # Back mid-meeting: its meetings' operations are re-routed to the new socket,
                # not only backfilled after the end.
                assert any(
                    emulator.control.meeting(s.videodb_id)["state"] == "playing" for s in killed
                ), "shard 0 came back after its meetings ended"
                for viewer in away:
                    viewer.online = True

                for session in sessions:
                    emulator.control.wait_for_meeting(session.videodb_id, timeout=60)
                truth = {s.pk: remote_truth(emulator, s) for s in sessions}
                for session in sessions:
                    assert truth[session.pk][0] and truth[session.pk][1]
                    wait_until(
                        lambda s=session: stored(s) == truth[s.pk],
                        30,
                        f"session {session.pk} to hold what VideoDB holds",
                    )
                # An alert whose socket copy the outage lost came by callback too: it is
                # shown once VideoDB's index records bear it out (sessions.confirm_alert),
                # which they do when the index's window closes, at the meeting's end here.
                wait_until(
                    lambda: all(Alert.objects.filter(session=s).exists() for s in sessions),
                    60,
                    "every meeting's alert to be confirmed and shown",
                )
                expected: dict[int, dict] = {}

                def shown(session: CaptureSession) -> bool:
                    # Read afresh each time: the worker may still publish a brief.
                    expected[session.pk] = fresh_page(session)
                    return watching.all(
                        lambda v: v.page == expected[session.pk] and not v.received,
                        among=viewers[session.pk],
                    )

                for session in sessions:
                    wait_until(
                        lambda s=session: shown(s),
                        20,
                        f"every viewer of session {session.pk} to show what is stored",
                    )
                # The groups really are spread over both servers.
                held = [shard.keys("asgi:group:session.*") for shard in channel_shards]
                assert all(held), held
                assert set().union(*held) == {f"asgi:group:session.{s.pk}" for s in sessions}

            # The outage was real: VideoDB held lines of shard 0's meetings that Copilot
            # did not while the relay was down; they are stored and shown now. And the relay
            # that came back was sent its meetings' events on its new socket.
            assert any(missed.values()), "the outage missed nothing: the test proved nothing"
            standby.stop()
            heard = re.search(r"stopped cleanly: .*'events': (\d+)", standby.log())
            assert heard and int(heard[1]) > 0, standby.log()[-2000:]
            for session in sessions:
                shown_kinds = Counter(key.split("-")[0] for key in expected[session.pk])
                # Every line on the page is a final one VideoDB holds; insights and the
                # alert are there too.
                assert shown_kinds["seg"] == len(truth[session.pk][0])
                assert shown_kinds["ins"] and shown_kinds["alert"], shown_kinds
                for viewer in viewers[session.pk]:
                    pushed = Counter((c, key, seq) for c, key, seq, _, _ in viewer.pushes)
                    twice = [push for push, count in pushed.items() if count > 1]
                    assert not twice, f"{viewer.name} was pushed a change twice: {twice}"
                    lines: dict[tuple[int, str], list[int]] = {}
                    for c, _, seq, stream, kind in viewer.pushes:
                        if kind == "transcript":
                            lines.setdefault((c, stream), []).append(seq)
                    for (_, stream), seqs in lines.items():
                        assert seqs == sorted(seqs), f"{viewer.name}: stream {stream} out of order"
            sent_away = {id(viewer) for viewer in away}
            for viewer in everyone:  # one socket throughout, but for those sent away
                assert viewer.connections == (2 if id(viewer) in sent_away else 1), viewer.closes
        except BaseException:
            for process in processes:
                sys.stderr.write(f"--- {process.log_path.name}\n{process.log()[-15_000:]}")
            raise
        finally:
            for process in processes:
                process.stop()
