"""The relay: VideoDB's event socket in, stored events and live updates out.

One relay process holds one VideoDB WebSocket. Every event is checked (``events``), stored
once and rendered (``ingest``), and sent to the session's group (``live``). Each stream has
a lane (a queue and a task): a stream's events keep their order while streams are stored
side by side. A lane idle for ``LANE_IDLE_SECONDS``, or whose session ended, is retired; a
later event of its stream opens a new one. A store that fails (the database is away) is
retried with backoff in its lane, then left to the next heartbeat's backfill of its stream.

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
import random
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from sessions_app import gateway
from sessions_app.live import broadcast, events, ingest, recovery
from sessions_app.models import RelayConnection

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
STABLE_SECONDS = 60.0  # a socket that caught up and lived this long resets the backoff
DRAIN_SECONDS = 10.0  # what was read is stored before a reconnect, for this long at most
LANE_IDLE_SECONDS = 300.0
STORE_ATTEMPTS = 4
STORE_RETRY_SECONDS = 0.5  # doubled after each failed attempt
_RETIRE = object()  # put on a lane to end it once it has stored what it holds
_UNKNOWN = object()  # the relay's last heartbeat, not read yet


def store(parsed: events.SocketEvent) -> tuple[int, broadcast.LiveUpdate] | None:
    """Store one socket event: the session and update to publish, if it changed anything."""
    stream = ingest.find_stream(parsed.rtstream_id)
    if stream is None:
        logger.warning("event for unknown stream %s dropped", parsed.rtstream_id)
        return None
    update = ingest.store(stream, parsed.payload, heard_now=True)
    return None if update is None else (stream.session_id, update)


class Relay:
    def __init__(self, shard: int = 0) -> None:
        if not 0 <= shard < settings.RELAY_SHARDS:
            raise ValueError(f"shard must be in 0..{settings.RELAY_SHARDS - 1}")
        self.shard = str(shard)
        self.connection_id = ""
        self.stats = {"events": 0, "stored": 0, "invalid": 0, "reconnects": 0, "retries": 0,
                      "unstored": 0}  # fmt: skip
        self._lanes: dict[str, asyncio.Queue] = {}
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
                    self._lane(parsed.rtstream_id).put_nowait(parsed)
        finally:
            # Whatever was read is still stored: the lanes drain before the socket is replaced
            # (bounded, so that a database outage cannot hold a reconnect or a stop forever).
            with contextlib.suppress(TimeoutError):
                lanes = list(self._lanes.values())
                await asyncio.wait_for(
                    asyncio.gather(*(lane.join() for lane in lanes)), DRAIN_SECONDS
                )

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
            self._spawn(self._drain(rtstream_id, lane))
        return lane

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _drain(self, rtstream_id: str, lane: asyncio.Queue) -> None:
        """Store the lane's events until it is idle for ``LANE_IDLE_SECONDS`` or retired with
        nothing left to store."""
        try:
            while True:
                try:
                    parsed = await asyncio.wait_for(lane.get(), LANE_IDLE_SECONDS)
                except TimeoutError:
                    if lane.empty():
                        return
                    continue
                try:
                    if parsed is not _RETIRE:
                        await self.store_and_publish(parsed)
                    elif lane.empty():
                        return
                finally:
                    lane.task_done()
        finally:
            # Nothing awaited since the queue was last seen empty: a later event of this stream
            # finds no lane and opens a new one.
            if self._lanes.get(rtstream_id) is lane:
                del self._lanes[rtstream_id]

    async def store_and_publish(self, parsed: events.SocketEvent) -> None:
        """Store one event and show it. A failed store (say, the database is away) is tried
        again with backoff; if it still fails, the stream is marked for backfill. A stream
        already marked gets one try per event: its backfill fetches whatever fails."""
        attempts = 1 if parsed.rtstream_id in self._backfill_due else STORE_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                # Not on the one sync thread (thread_sensitive=False): streams are stored in
                # parallel. Old or broken connections are closed around each call.
                result = await database_sync_to_async(store, thread_sensitive=False)(parsed)
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
        if result is not None:
            self.stats["stored"] += 1
            session_id, update = result
            await broadcast.apublish(session_id, [update])

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
