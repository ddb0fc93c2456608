"""The relay: VideoDB's event socket in, stored events and live updates out.

One relay process holds one VideoDB WebSocket. Every event is checked (``events``), stored
once and rendered (``ingest``), and sent to the session's group (``live``). Each stream has
a lane (a queue and a task): a stream's events keep their order while streams are stored
side by side. A lane idle for ``LANE_IDLE_SECONDS``, or whose session ended, is retired; a
later event of its stream opens a new one. A store that fails (the database is away) is
retried with backoff in its lane, then left to the next heartbeat's backfill of its stream.

What an event costs is kept to what it changes. Interim transcript text is never stored: the
lane keeps the latest interim of its stream, pushes it at most every
``LIVE_INTERIM_SECONDS`` (the first of a quiet stream at once, the latest text winning) and
leaves it in ``live/interim.py`` for sockets that connect mid-line; the final is stored and
replaces it. A stream's row says it is alive (the health panel's "last event") at most once
per ``LIVENESS_SECONDS``, plus once after the last event of a burst.

When the socket drops the relay reconnects with backoff and jitter (counting failed cycles,
so a database outage does not turn into a tight loop of new sockets), publishes its new
connection id (tasks start operations with it), and ``recovery`` re-routes its sessions'
operations to it and backfills what was missed, back to its last heartbeat however long
ago; a restarted relay does the same, so nothing held only in memory is lost. Database
connections are closed and reopened around each unit of work (``database_sync_to_async``;
the pool checks a connection before lending it), so a restarted database is used again
without a restart of the relay. Relays split the sessions by ``session id % RELAY_SHARDS``:
run one ``manage.py relay --shard K`` per K in 0..RELAY_SHARDS-1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from sessions_app import gateway
from sessions_app.live import broadcast, events, ingest, interim, recovery
from sessions_app.live.events import TranscriptInput
from sessions_app.models import RelayConnection, RTStream, TranscriptSegment

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
STABLE_SECONDS = 60.0  # a socket that caught up and lived this long resets the backoff
DRAIN_SECONDS = 10.0  # what was read is stored before a reconnect, for this long at most
LANE_IDLE_SECONDS = 300.0
STORE_ATTEMPTS = 4
STORE_RETRY_SECONDS = 0.5  # doubled after each failed attempt
# A stream's row is written to say it is alive at most this often (and once after a burst,
# so its last event's time is right): the health panel counts seconds, not events.
LIVENESS_SECONDS = 2.0
_RETIRE = object()  # put on a lane to end it once it has stored what it holds
_TOUCH = object()  # put on a lane when its stream's liveness may be written
_UNKNOWN = object()  # the relay's last heartbeat, not read yet


def store(
    parsed: events.SocketEvent, *, heard_now: bool = True
) -> tuple[RTStream, broadcast.LiveUpdate | None] | None:
    """Store one socket event (not interim text): its stream, freshly read, and the update
    to publish if it changed anything. None for an unknown stream."""
    stream = ingest.find_stream(parsed.rtstream_id)
    if stream is None:
        logger.warning("event for unknown stream %s dropped", parsed.rtstream_id)
        return None
    return stream, ingest.store(stream, parsed.payload, heard_now=heard_now)


def load_stream(rtstream_id: str) -> tuple[RTStream | None, int]:
    """A stream as its lane starts: the stream (with its session, for rendering its interim
    lines) and the start of its newest stored final (an interim at or before it is late)."""
    stream = ingest.find_stream(rtstream_id)
    if stream is None:
        return None, -1
    newest = TranscriptSegment.objects.filter(stream=stream, is_final=True).aggregate(
        newest=Max("start_ms")
    )["newest"]
    return stream, -1 if newest is None else newest


def touch_stream(stream_id: int, event_end_ms: int) -> RTStream | None:
    """Say the stream is alive, and read it again (a renamed speaker, a session that started
    since: what its interim lines show)."""
    ingest.touch_stream(stream_id, event_end_ms)
    return RTStream.objects.select_related("session").filter(pk=stream_id).first()


@dataclass
class _Pace:
    """What a lane knows of its stream between events: the interim waiting to be pushed, and
    when the stream's row last said it was alive. Only its lane reads or writes it."""

    loaded: bool = False
    stream: RTStream | None = None  # with its session; read again at each liveness write
    final_through: int = -1  # start of the newest final stored: earlier interims are late
    waiting: TranscriptInput | None = None  # the latest interim not pushed yet
    pushed_at: float = -math.inf  # loop time of the last interim push
    pushing: bool = False  # an interim push is on its way (one at a time, in order)
    newest: tuple[int, int] = (-1, -1)  # (start, end) of the newest interim taken
    shown: bool | None = None  # an interim is in ``live/interim``; None: maybe (a restart)
    shown_start: int = -1  # the start of the interim line pushed last
    finals_pending: int = 0  # finals read but not yet stored and shown: a later line waits
    flush: asyncio.TimerHandle | None = None
    touched_at: float = -math.inf  # loop time of the last liveness write
    heard_ms: int | None = None  # end of the newest event not written yet (a write is due)
    touch: asyncio.TimerHandle | None = None


class Relay:
    def __init__(self, shard: int = 0) -> None:
        if not 0 <= shard < settings.RELAY_SHARDS:
            raise ValueError(f"shard must be in 0..{settings.RELAY_SHARDS - 1}")
        self.shard = str(shard)
        self.connection_id = ""
        self.stats = {"events": 0, "stored": 0, "invalid": 0, "reconnects": 0, "retries": 0,
                      "unstored": 0, "interims": 0, "interims_shown": 0,
                      "touches": 0}  # fmt: skip
        self._lanes: dict[str, asyncio.Queue] = {}
        self._paces: dict[str, _Pace] = {}
        self._workers: set[asyncio.Task] = set()
        # Streams with an event that could not be stored, for the next heartbeat to backfill.
        self._backfill_due: set[str] = set()
        # Since when this relay has not caught up (its last heartbeat), once read.
        self._unseen_since: Any = _UNKNOWN

    # --- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Hold a socket until ``stop`` is set, reconnecting with backoff and jitter."""
        loop = asyncio.get_running_loop()
        failures = 0
        while not stop.is_set():
            socket: gateway.EventSocket | None = None
            ready_at: float | None = None  # when the socket was open and caught up
            try:
                socket = await gateway.open_event_socket()
                self.connection_id = socket.connection_id
                logger.info("relay %s connected as %s", self.shard, self.connection_id)
                unanswered = await database_sync_to_async(self.on_connected)()
                self._backfill_due |= unanswered
                ready_at = loop.time()
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
            # The backoff counts failed cycles, not failed socket opens: a socket that opened
            # but could not catch up (the database is away) or died soon after is a failure
            # too, or a database outage would have the relay ask VideoDB for a new socket in
            # a tight loop. Only a cycle that held up for STABLE_SECONDS starts afresh.
            if ready_at is not None and loop.time() - ready_at >= STABLE_SECONDS:
                failures = 0
            failures += 1
            self.stats["reconnects"] += 1
            delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (failures - 1))
            delay *= random.uniform(0.5, 1.0)  # noqa: S311 -- jitter, not security
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        for worker in list(self._workers):
            worker.cancel()
        await database_sync_to_async(self.on_stopped)()

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
                parsed = self.parse(event)
                if parsed is not None:
                    self._route(parsed)
        finally:
            # Whatever was read is still stored: the lanes drain before the socket is replaced
            # (bounded, so that a database outage cannot hold a reconnect or a stop forever).
            with contextlib.suppress(TimeoutError):
                lanes = list(self._lanes.values())
                await asyncio.wait_for(
                    asyncio.gather(*(lane.join() for lane in lanes)), DRAIN_SECONDS
                )

    def _route(self, parsed: events.SocketEvent) -> None:
        """Put an event on its stream's lane; except interim text of a stream the lane has
        read already, which is taken at once: it is never stored, so it must not wait
        behind the lane's database writes (a final's store, a liveness write). A final is
        noted as it is read, so that no interim of its line is pushed from then on."""
        lane = self._lane(parsed.rtstream_id)
        pace = self._paces[parsed.rtstream_id]
        payload = parsed.payload
        if isinstance(payload, TranscriptInput):
            if payload.is_final:
                self._final_read(pace, payload)
            elif pace.loaded:
                if self._heard(pace, lane, payload.end_ms):
                    pace.touched_at = asyncio.get_running_loop().time()
                    lane.put_nowait(_TOUCH)
                self._take_interim(pace, payload)
                return
        lane.put_nowait(parsed)

    def parse(self, event: Any) -> events.SocketEvent | None:
        self.stats["events"] += 1
        try:
            return events.parse_socket_event(event)
        except events.EventError as exc:
            self.stats["invalid"] += 1
            logger.warning("relay %s refused an event: %s", self.shard, exc)
            return None

    # --- lanes: one queue and worker per stream -------------------------------------------

    def _lane(self, rtstream_id: str) -> asyncio.Queue:
        """A stream's events are stored in the order they came (an interim never overtakes
        its final), while streams proceed side by side instead of each event waiting for
        every other session's database writes."""
        lane = self._lanes.get(rtstream_id)
        if lane is None:
            lane = self._lanes[rtstream_id] = asyncio.Queue()
            self._paces[rtstream_id] = _Pace()
            self._spawn(self._drain(rtstream_id, lane))
        return lane

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _drain(self, rtstream_id: str, lane: asyncio.Queue) -> None:
        """Store the lane's events until it is idle for ``LANE_IDLE_SECONDS`` or retired with
        nothing left to store."""
        pace = self._paces[rtstream_id]
        try:
            while True:
                try:
                    parsed = await asyncio.wait_for(lane.get(), LANE_IDLE_SECONDS)
                except TimeoutError:
                    if lane.empty():
                        return
                    continue
                try:
                    if parsed is _TOUCH:
                        pace.touch = None
                        await self._touch(pace)
                    elif parsed is not _RETIRE:
                        await self._take(pace, lane, parsed)
                    elif lane.empty():
                        return
                finally:
                    lane.task_done()
        finally:
            # Nothing awaited since the queue was last seen empty: a later event of this stream
            # finds no lane and opens a new one.
            if self._lanes.get(rtstream_id) is lane:
                del self._lanes[rtstream_id]
            if self._paces.get(rtstream_id) is pace:
                del self._paces[rtstream_id]
            for handle in (pace.flush, pace.touch):
                if handle is not None:
                    handle.cancel()
            task = asyncio.current_task()
            if task is None or not task.cancelling():  # the relay stopping: nothing awaited
                await self._close_pace(pace)

    async def _take(self, pace: _Pace, lane: asyncio.Queue, parsed: events.SocketEvent) -> None:
        """One event from the socket, in its stream's order."""
        if not pace.loaded:
            try:
                stream, stored_through = await database_sync_to_async(
                    load_stream, thread_sensitive=False
                )(parsed.rtstream_id)
                # A final read from the socket meanwhile may be newer than what is stored.
                pace.stream, pace.final_through = stream, max(pace.final_through, stored_through)
                pace.loaded = True
            except Exception:  # the database is away: a final is still retried (below)
                logger.warning("relay %s could not read stream %s", self.shard,
                               parsed.rtstream_id, exc_info=True)  # fmt: skip
        payload = parsed.payload
        due = self._heard(pace, lane, payload.end_ms)
        if isinstance(payload, TranscriptInput) and not payload.is_final:
            self._take_interim(pace, payload)
            if due:
                await self._touch(pace)
            return
        try:
            await self.store_and_publish(parsed, heard_now=due, pace=pace)
        finally:
            if isinstance(payload, TranscriptInput):  # a final (_route noted it as read)
                pace.finals_pending -= 1
                if pace.waiting is not None:
                    self._schedule_push(pace)  # the next line's interim, held for this final

    # --- interim text: pushed, never stored ----------------------------------------------

    def _take_interim(self, pace: _Pace, event: TranscriptInput) -> None:
        """Keep the latest interim of the stream; push it now if the stream's last push is
        ``LIVE_INTERIM_SECONDS`` old, else when it will be (whatever is latest by then).
        Never waits: the push runs on its own, one at a time per stream."""
        self.stats["interims"] += 1
        if pace.stream is None:  # unknown, or not readable now: nothing to render it with
            logger.warning("relay %s dropped an interim of a stream it cannot read", self.shard)
            return
        if event.start_ms <= pace.final_through:
            return  # a late interim of a line whose final is here: it must not come back
        if (event.start_ms, event.end_ms) < pace.newest:
            return  # older than one taken already (it waited on the lane while the stream loaded)
        pace.newest = (event.start_ms, event.end_ms)
        pace.waiting = event
        self._schedule_push(pace)

    def _final_read(self, pace: _Pace, event: TranscriptInput) -> None:
        """A final was read: no interim of its line (or an earlier one) is pushed from now on,
        and no interim of a later line until this final is shown (``finals_pending``): a
        page must not see a line begin before the one it follows. Its store, publish and the
        forgetting of the kept interim follow on the lane."""
        pace.final_through = max(pace.final_through, event.start_ms)
        pace.finals_pending += 1
        if pace.waiting is not None and pace.waiting.start_ms <= event.start_ms:
            pace.waiting = None

    def _schedule_push(self, pace: _Pace) -> None:
        if pace.flush is not None or pace.pushing:
            return  # a push is due or on its way: it (or the next) takes what is latest then
        loop = asyncio.get_running_loop()
        wait = pace.pushed_at + settings.LIVE_INTERIM_SECONDS - loop.time()
        if wait <= 0:
            self._start_push(pace)
        else:
            pace.flush = loop.call_later(wait, self._start_push, pace)

    def _start_push(self, pace: _Pace) -> None:
        pace.flush = None
        if pace.waiting is None or pace.pushing or pace.finals_pending:
            return  # (a pending final schedules the push once it is shown)
        pace.pushing = True
        pace.pushed_at = asyncio.get_running_loop().time()
        self._spawn(self._push_interim(pace))

    async def _push_interim(self, pace: _Pace) -> None:
        try:
            event, pace.waiting = pace.waiting, None
            if event is None or pace.stream is None or event.start_ms <= pace.final_through:
                return
            if pace.finals_pending:  # a final was read since this push was started: it first
                pace.waiting = event
                return
            stream = pace.stream
            # Rendered here, on the loop: the stream and its session are in memory, and a
            # template render is shorter than a hop to a thread and back.
            update = broadcast.interim_message(stream, text=event.text, start_ms=event.start_ms)
            try:
                await interim.show(stream.session_id, stream.pk, event.start_ms, update["html"])
                pace.shown, pace.shown_start = True, event.start_ms
            except Exception:  # pages still get the push; only a page opened mid-line misses it
                logger.warning("could not keep the interim of stream %s", stream.pk,
                               exc_info=True)  # fmt: skip
            self.stats["interims_shown"] += 1
            await broadcast.apublish(stream.session_id, [update])
        finally:
            pace.pushing = False
            if pace.waiting is not None:
                self._schedule_push(pace)

    async def _forget_interim(self, pace: _Pace) -> None:
        """The stream's interim line is over (its final is stored, or the lane retires)."""
        if pace.shown is False or pace.stream is None:
            return
        try:
            await interim.forget(pace.stream.session_id, pace.stream.pk)
            pace.shown = False
        except Exception:  # it expires on its own (interim.TTL_SECONDS)
            logger.warning("could not forget the interim of stream %s", pace.stream.pk,
                           exc_info=True)  # fmt: skip

    # --- liveness: the stream's row, at most once per LIVENESS_SECONDS ---------------------

    def _heard(self, pace: _Pace, lane: asyncio.Queue, end_ms: int) -> bool:
        """Note an event heard now; True when the stream's row should say so now, else a
        write is scheduled for the end of the window (so the last event's time is right)."""
        pace.heard_ms = end_ms if pace.heard_ms is None else max(pace.heard_ms, end_ms)
        loop = asyncio.get_running_loop()
        wait = pace.touched_at + LIVENESS_SECONDS - loop.time()
        if wait <= 0:
            return True
        if pace.touch is None:
            pace.touch = loop.call_later(wait, lane.put_nowait, _TOUCH)
        return False

    async def _touch(self, pace: _Pace) -> None:
        if pace.heard_ms is None or pace.stream is None:
            return
        heard_ms, pace.heard_ms = pace.heard_ms, None
        pace.touched_at = asyncio.get_running_loop().time()
        try:
            fresh = await database_sync_to_async(touch_stream, thread_sensitive=False)(
                pace.stream.pk, heard_ms
            )
        except Exception:  # the database is away: the next event tries again
            pace.heard_ms = heard_ms if pace.heard_ms is None else pace.heard_ms
            logger.warning("relay %s could not mark stream %s alive", self.shard,
                           pace.stream.pk, exc_info=True)  # fmt: skip
            return
        self.stats["touches"] += 1
        if fresh is not None:
            pace.stream = fresh

    async def _close_pace(self, pace: _Pace) -> None:
        """A lane retires: its last liveness is written, and its interim line (if the final
        never came) is no longer offered to pages that connect."""
        pace.waiting = None
        with contextlib.suppress(Exception):
            await self._touch(pace)
            await self._forget_interim(pace)

    # --- stored events ----------------------------------------------------------------

    async def store_and_publish(
        self, parsed: events.SocketEvent, *, heard_now: bool = True, pace: _Pace | None = None
    ) -> None:
        """Store one event and show it. A failed store (say, the database is away) is tried
        again with backoff; if it still fails, the stream is marked for backfill. A stream
        already marked gets one try per event: its backfill fetches whatever fails."""
        attempts = 1 if parsed.rtstream_id in self._backfill_due else STORE_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                # Not on the one sync thread (thread_sensitive=False): streams are stored in
                # parallel. Old or broken connections are closed around each call.
                result = await database_sync_to_async(store, thread_sensitive=False)(
                    parsed, heard_now=heard_now
                )
                break
            except Exception as exc:  # any failure: the event must not be lost
                if attempt == attempts:
                    self.stats["unstored"] += 1
                    self._backfill_due.add(parsed.rtstream_id)
                    logger.exception("relay %s will backfill %s", self.shard, parsed.rtstream_id)
                    return
                self.stats["retries"] += 1
                logger.warning("relay %s store failed (try %d): %s", self.shard, attempt, exc)
                await asyncio.sleep(STORE_RETRY_SECONDS * 2 ** (attempt - 1))
        if result is None:
            return
        stream, update = result
        payload = parsed.payload
        if pace is not None:
            pace.stream = stream
            if heard_now:
                pace.touched_at = asyncio.get_running_loop().time()
                pace.heard_ms = None
            if isinstance(payload, TranscriptInput):
                # The final replaces the line's interim: on the pages (live.js) and for a
                # page that connects from now on.
                pace.final_through = max(pace.final_through, payload.start_ms)
                waiting = pace.waiting
                if waiting is not None and waiting.start_ms <= payload.start_ms:
                    pace.waiting = None
                # Unless what is kept is a later line's (an interim that overtook this final).
                if pace.shown is None or pace.shown_start <= payload.start_ms:
                    await self._forget_interim(pace)
        if update is not None:
            self.stats["stored"] += 1
            await broadcast.apublish(stream.session_id, [update])

    # --- heartbeat and bookkeeping -------------------------------------------------------

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self.beat()

    async def beat(self) -> None:
        """One heartbeat. A database that does not answer fails this beat, not the socket."""
        due, self._backfill_due = self._backfill_due, set()
        try:
            still_due, ended = await database_sync_to_async(self.on_heartbeat)(
                due, list(self._lanes)
            )
        except Exception:
            logger.exception("relay %s heartbeat failed", self.shard)
            self._backfill_due |= due
            return
        self._backfill_due |= still_due
        for rtstream_id in ended:  # their session is over: retire their lanes
            if (lane := self._lanes.get(rtstream_id)) is not None:
                lane.put_nowait(_RETIRE)

    def on_connected(self) -> set[str]:
        """Publish the new socket and catch up; returns the streams VideoDB could not answer
        for, to backfill at a later heartbeat."""
        if self._unseen_since is _UNKNOWN:
            # The relay's last heartbeat before this catch-up: sessions that ended since
            # (less the tail) may have lost events while no relay stored them, however long
            # ago that was. Kept until a catch-up succeeds, as a failed one may already have
            # written a fresh heartbeat.
            self._unseen_since = (
                RelayConnection.objects.filter(shard=self.shard)
                .values_list("heartbeat_at", flat=True)
                .first()
            )
        now = timezone.now()
        RelayConnection.objects.update_or_create(
            shard=self.shard,
            defaults={
                "connection_id": self.connection_id,
                "connected_at": now,
                "heartbeat_at": now,
            },
        )
        failed = recovery.catch_up(self.shard, self.connection_id, since=self._unseen_since)
        self._unseen_since = _UNKNOWN
        return failed

    def on_heartbeat(self, due: set[str], lanes: list[str]) -> tuple[set[str], list[str]]:
        """Beat, re-route, backfill the streams in ``due``; returns those still due and the
        lanes whose session has ended."""
        RelayConnection.objects.filter(shard=self.shard).update(heartbeat_at=timezone.now())
        recovery.reroute(self.shard, self.connection_id)
        still_due = recovery.backfill_streams(due) if due else set()
        return still_due, recovery.ended_streams(lanes)

    def on_stopped(self) -> None:
        RelayConnection.objects.filter(shard=self.shard, connection_id=self.connection_id).update(
            connection_id=""
        )
