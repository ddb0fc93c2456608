"""The relay: VideoDB's event socket in, stored events and live updates out.

One relay process holds one VideoDB WebSocket. For every event it validates the shape,
stores it through ``ingest`` (idempotent, sequence-numbered) and sends the rendered update
to the session's group (``live``). VideoDB's socket is best-effort, so when it drops the
relay reconnects with backoff and jitter, publishes its new connection id (tasks start new
operations with it), re-routes the running operations of its sessions to the new socket,
and backfills what was missed through ``get_transcript(since=…)`` and the indexes' records.
Repeats from the overlap are no-ops in ``ingest``, so nothing is missing and nothing is
doubled once the dust settles.

Several relays split the sessions by ``session id % RELAY_SHARDS``: run one
``manage.py relay --shard K`` per K in 0..RELAY_SHARDS-1. Each publishes its connection id
under its shard, the tasks start a session's operations with its shard's id, and each relay
re-routes and backfills only its own sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from sessions_app import gateway, ingest, live
from sessions_app.models import (
    CaptureSession,
    Insight,
    RelayConnection,
    RTStream,
    StreamOperation,
    TranscriptSegment,
)

logger = logging.getLogger(__name__)

S = CaptureSession.Status
HEARTBEAT_SECONDS = 10.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
# Sessions that ended this recently are still backfilled: their last events may be in flight.
TAIL_AFTER_END = timedelta(minutes=10)
MAX_TEXT = 20_000
INDEX_CHANNELS = {"audio_index": "audio", "visual_index": "visual", "scene_index": "visual"}


class EventError(ValueError):
    """An event that does not have the documented shape; the message says why."""


@dataclass(frozen=True)
class ParsedEvent:
    channel: str
    rtstream_id: str
    payload: ingest.TranscriptInput | ingest.InsightInput | ingest.AlertInput


def _ms(data: dict[str, Any], name: str, *, default: int | None = None) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EventError(f"data.{name} must be a number of epoch milliseconds")
    return int(value)


def _text(data: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise EventError(f"data.{name} must be a non-empty string")
    return value[:MAX_TEXT]


def parse_event(event: Any) -> ParsedEvent | None:
    """Check one socket message. None for messages the relay does not store (lifecycle
    events, which the webhooks carry durably); EventError for malformed ones."""
    if not isinstance(event, dict):
        raise EventError("the message is not a JSON object")
    channel = event.get("channel")
    if channel == "capture_session" or ("raw" in event and "channel" not in event):
        return None
    if channel not in {"transcript", "alert", *INDEX_CHANNELS}:
        raise EventError(f"unknown channel {channel!r}")
    rtstream_id = event.get("rtstream_id")
    if not isinstance(rtstream_id, str) or not rtstream_id:
        raise EventError("rtstream_id must be a non-empty string")
    data = event.get("data")
    if not isinstance(data, dict):
        raise EventError("data must be an object")
    start = _ms(data, "start")
    end = _ms(data, "end", default=start)
    if channel == "transcript":
        is_final = data.get("is_final", False)
        if not isinstance(is_final, bool):
            raise EventError("data.is_final must be true or false")
        payload: Any = ingest.TranscriptInput(_text(data, "text"), is_final, start, end)
    elif channel in INDEX_CHANNELS:
        index_id = event.get("rtstream_index_id") or event.get("index_id") or ""
        payload = ingest.InsightInput(
            INDEX_CHANNELS[channel], _text(data, "text"), start, end, str(index_id)[:64]
        )
    else:
        label = data.get("label") or data.get("event_label")
        if not isinstance(label, str) or not label.strip():
            raise EventError("data.label must be a non-empty string")
        confidence = data.get("confidence")
        if confidence is not None and (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not 0 <= confidence <= 1
        ):
            raise EventError("data.confidence must be a number between 0 and 1")
        triggered = data.get("triggered", True)
        payload = ingest.AlertInput(
            label=label.strip()[:128],
            start_ms=start,
            end_ms=end,
            triggered=triggered if isinstance(triggered, bool) else True,
            confidence=confidence,
            text=(
                _text(data, "text", required=False) or _text(data, "explanation", required=False)
            )[:2000],
        )
    return ParsedEvent(channel, rtstream_id, payload)


def shard_of(session_id: int) -> str:
    return str(session_id % settings.RELAY_SHARDS)


def store(parsed: ParsedEvent) -> tuple[int, live.LiveUpdate] | None:
    """Store one event; the session and its rendered update if it changed anything."""
    stream = (
        RTStream.objects.select_related("session").filter(videodb_id=parsed.rtstream_id).first()
    )
    if stream is None:
        logger.warning("event for unknown stream %s dropped", parsed.rtstream_id)
        return None
    payload = parsed.payload
    ingest.touch_stream(stream, payload.end_ms)
    if isinstance(payload, ingest.TranscriptInput):
        item = ingest.record_transcript(stream, payload)
    elif isinstance(payload, ingest.InsightInput):
        item = ingest.record_insight(stream, payload)
    else:
        item, created = ingest.record_alert(stream, payload)
        item = item if created else None
    if item is None:
        return None
    item.stream = stream
    return stream.session_id, live.message(item, stream.session)


class Relay:
    def __init__(self, shard: int = 0) -> None:
        if not 0 <= shard < settings.RELAY_SHARDS:
            raise ValueError(f"shard must be in 0..{settings.RELAY_SHARDS - 1}")
        self.shard = str(shard)
        self.connection_id = ""
        self.stats = {"events": 0, "stored": 0, "invalid": 0, "reconnects": 0}
        self._statuses: dict[int, str] = {}
        self._lanes: dict[str, asyncio.Queue] = {}
        self._workers: set[asyncio.Task] = set()

    # --- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Hold a socket until ``stop`` is set, reconnecting with backoff and jitter."""
        failures = 0
        while not stop.is_set():
            socket: gateway.EventSocket | None = None
            try:
                socket = await gateway.open_event_socket()
                failures = 0
                self.connection_id = socket.connection_id
                logger.info("relay %s connected as %s", self.shard, self.connection_id)
                await sync_to_async(self.on_connected)()
                await self._pump(socket, stop)
            except asyncio.CancelledError:
                raise
            except Exception:  # the relay outlives any one failure; it logs and reconnects
                logger.exception("relay %s lost its socket", self.shard)
            finally:
                if socket is not None:
                    await socket.close()
            if stop.is_set():
                break
            failures += 1
            self.stats["reconnects"] += 1
            delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (failures - 1))
            delay *= random.uniform(0.5, 1.0)  # noqa: S311 -- jitter, not security
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        for worker in list(self._workers):
            worker.cancel()
        await sync_to_async(self.on_stopped)()

    async def _pump(self, socket: gateway.EventSocket, stop: asyncio.Event) -> None:
        consume = asyncio.create_task(self._consume(socket))
        beat = asyncio.create_task(self._beat())
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({consume, beat, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (consume, beat, stopped):
                task.cancel()
        for task in (consume, beat):
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()

    async def _consume(self, socket: gateway.EventSocket) -> None:
        try:
            async for event in socket.events():
                if isinstance(event, dict) and event.get("channel") == "capture_session":
                    self._spawn(self._status_soon())
                parsed = self.parse(event)
                if parsed is not None:
                    self._lane(parsed.rtstream_id).put_nowait(parsed)
        finally:
            # Whatever was read is still stored: the lanes drain before the socket is replaced
            # (bounded, so that a database outage cannot hold a reconnect or a stop forever).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(lane.join() for lane in self._lanes.values())), timeout=10
                )

    def parse(self, event: Any) -> ParsedEvent | None:
        self.stats["events"] += 1
        try:
            return parse_event(event)
        except EventError as exc:
            self.stats["invalid"] += 1
            logger.warning("relay %s refused an event: %s", self.shard, exc)
            return None

    def _lane(self, rtstream_id: str) -> asyncio.Queue:
        """One queue and worker per stream: a stream's events are stored in the order they
        came (an interim never overtakes its final), while streams proceed side by side
        instead of each event waiting for every other session's database writes."""
        lane = self._lanes.get(rtstream_id)
        if lane is None:
            lane = self._lanes[rtstream_id] = asyncio.Queue()
            self._spawn(self._drain(lane))
        return lane

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _drain(self, lane: asyncio.Queue) -> None:
        while True:
            parsed = await lane.get()
            try:
                await self.store_and_publish(parsed)
            except Exception:  # one bad write must not stop the stream's lane
                logger.exception("relay %s could not store an event", self.shard)
            finally:
                lane.task_done()

    async def handle(self, event: Any) -> None:
        """Store and publish one event right away (tests and tools; the socket uses lanes)."""
        parsed = self.parse(event)
        if parsed is not None:
            await self.store_and_publish(parsed)

    async def store_and_publish(self, parsed: ParsedEvent) -> None:
        # thread_sensitive=False: the database work of different streams runs in parallel
        # threads; ordering within a stream comes from its lane.
        result = await sync_to_async(store, thread_sensitive=False)(parsed)
        if result is not None:
            self.stats["stored"] += 1
            session_id, update = result
            await live.apublish(session_id, [update])

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await sync_to_async(self.on_heartbeat)()

    # --- bookkeeping (sync, database) ------------------------------------------------------

    def _my_sessions(self) -> list[CaptureSession]:
        recent = timezone.now() - TAIL_AFTER_END
        sessions = CaptureSession.objects.filter(
            Q(status__in=[S.STARTING, S.ACTIVE, S.STOPPING])
            | Q(status__in=[S.STOPPED, S.EXPORTED], ended_at__gte=recent)
        ).exclude(videodb_id__isnull=True)
        return [s for s in sessions if shard_of(s.pk) == self.shard]

    def on_connected(self) -> None:
        now = timezone.now()
        RelayConnection.objects.update_or_create(
            shard=self.shard,
            defaults={
                "connection_id": self.connection_id,
                "connected_at": now,
                "heartbeat_at": now,
            },
        )
        for session in self._my_sessions():
            self.route_operations(session)
            self.backfill(session)

    def on_heartbeat(self) -> None:
        RelayConnection.objects.filter(shard=self.shard).update(heartbeat_at=timezone.now())
        for session in self._my_sessions():
            # Operations started while this socket was being replaced still name the old one.
            if session.is_live:
                self.route_operations(session)
            self.push_status(session)

    def push_status(self, session: CaptureSession) -> None:
        """Show a changed status on every open page (the workers that change it may run in
        another process; the relay is the one that always talks to the pages)."""
        if self._statuses.get(session.pk) == session.status:
            return
        self._statuses[session.pk] = session.status
        # The banner, plus each stream's speaker and health row: a session that just went
        # active has streams the open pages have never seen.
        updates: list[live.LiveUpdate] = [
            {"type": "live.update", "seq": live.UNSEQUENCED, "html": fragment}
            for fragment in live.current_state(session)
        ]
        live.publish(session, updates)

    async def _status_soon(self) -> None:
        # A lifecycle message on the socket: the webhook task is applying that change now.
        await asyncio.sleep(1.5)
        for session in await sync_to_async(self._my_sessions)():
            await sync_to_async(self.push_status)(session)

    def on_stopped(self) -> None:
        RelayConnection.objects.filter(shard=self.shard, connection_id=self.connection_id).update(
            connection_id=""
        )

    def route_operations(self, session: CaptureSession) -> int:
        """Point the session's running transcripts and indexes at this relay's socket."""
        if not session.is_live or not self.connection_id:
            return 0
        moved = 0
        operations = StreamOperation.objects.filter(
            stream__session=session,
            state=StreamOperation.State.STARTED,
            kind__in=[
                StreamOperation.Kind.TRANSCRIPT,
                StreamOperation.Kind.AUDIO_INDEX,
                StreamOperation.Kind.VISUAL_INDEX,
            ],
        ).exclude(ws_connection_id=self.connection_id)
        for op in operations.select_related("stream"):
            try:
                if op.kind == StreamOperation.Kind.TRANSCRIPT:
                    gateway.start_transcript(
                        op.stream.videodb_id, ws_connection_id=self.connection_id
                    )
                else:
                    gateway.route_index(
                        op.stream.videodb_id, op.remote_id, ws_connection_id=self.connection_id
                    )
            except gateway.GatewayError as exc:
                logger.warning("could not re-route %s: %s", op, exc.message)
                continue
            StreamOperation.objects.filter(pk=op.pk).update(ws_connection_id=self.connection_id)
            moved += 1
        return moved

    def backfill(self, session: CaptureSession) -> int:
        """Store what the socket missed for ``session``; returns how many items changed."""
        updates: list[live.LiveUpdate] = []
        for stream in session.streams.all():
            try:
                updates.extend(self._backfill_stream(session, stream))
            except gateway.GatewayError as exc:
                logger.warning("backfill of %s failed: %s", stream.videodb_id, exc.message)
        if updates:
            updates.sort(key=lambda update: update["seq"])
            live.publish(session, updates)
        return len(updates)

    def _backfill_stream(self, session: CaptureSession, stream: RTStream) -> list[live.LiveUpdate]:
        updates: list[live.LiveUpdate] = []
        ops = {op.kind: op for op in stream.operations.filter(state=StreamOperation.State.STARTED)}
        if StreamOperation.Kind.TRANSCRIPT in ops:
            since = TranscriptSegment.objects.filter(stream=stream, is_final=True).aggregate(
                last=Max("end_ms")
            )["last"]
            for raw in gateway.transcript_since(stream.videodb_id, since):
                try:
                    start = _ms(raw, "start")
                    event = ingest.TranscriptInput(
                        _text(raw, "text"), True, start, _ms(raw, "end", default=start)
                    )
                except EventError as exc:
                    logger.warning("backfill skipped a transcript segment: %s", exc)
                    continue
                if (segment := ingest.record_transcript(stream, event)) is not None:
                    updates.append(live.message(segment, session))
        for kind, insight_kind in (
            (StreamOperation.Kind.AUDIO_INDEX, Insight.Kind.AUDIO),
            (StreamOperation.Kind.VISUAL_INDEX, Insight.Kind.VISUAL),
        ):
            op = ops.get(kind)
            if op is None or not op.remote_id:
                continue
            for raw in gateway.index_records(stream.videodb_id, op.remote_id):
                try:
                    start = _ms(raw, "start")
                    event = ingest.InsightInput(
                        insight_kind,
                        _text(raw, "text"),
                        start,
                        _ms(raw, "end", default=start),
                        op.remote_id,
                    )
                except EventError as exc:
                    logger.warning("backfill skipped an index record: %s", exc)
                    continue
                if (insight := ingest.record_insight(stream, event)) is not None:
                    updates.append(live.message(insight, session))
        return updates
