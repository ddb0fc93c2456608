"""Catching up on what VideoDB's event socket did not deliver.

VideoDB's socket is best-effort. When a relay's socket is replaced, the running transcripts
and indexes of its sessions still deliver to the old connection id: ``route_operations``
points them at the new one. What the old socket missed, or what could not be stored when it
came (the database was down), is fetched through the API: ``get_transcript(since=…)`` and
the indexes' records. The overlap with what is stored is a no-op in ``ingest``, so nothing
is missing and nothing is doubled.

Several relays split the sessions by ``session id % RELAY_SHARDS``; each recovers only its
own shard's sessions, and the tasks start a session's operations with its shard's socket.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from sessions_app import gateway
from sessions_app.live import broadcast, events, ingest
from sessions_app.models import (
    CaptureSession,
    Insight,
    RTStream,
    StreamOperation,
    TranscriptSegment,
)

logger = logging.getLogger(__name__)

S = CaptureSession.Status
OP = StreamOperation.Kind
# Sessions that ended this recently are still backfilled: their last events may be in flight.
TAIL_AFTER_END = timedelta(minutes=10)
ROUTED_KINDS = (OP.TRANSCRIPT, OP.AUDIO_INDEX, OP.VISUAL_INDEX)


def shard_of(session_id: int) -> str:
    """The relay shard that owns a session."""
    return str(session_id % settings.RELAY_SHARDS)


def sessions_of(shard: str, since: datetime | None = None) -> list[CaptureSession]:
    """The shard's sessions whose events may still come: live, or ended a moment ago; and,
    with ``since`` (when the relay was last seen), those that ended while no relay stored
    their last events, however long ago."""
    recent = timezone.now() - TAIL_AFTER_END
    if since is not None:
        recent = min(recent, since - TAIL_AFTER_END)
    sessions = CaptureSession.objects.filter(
        Q(status__in=[S.STARTING, S.ACTIVE, S.STOPPING])
        | Q(status__in=[S.STOPPED, S.EXPORTED], ended_at__gte=recent)
    ).exclude(videodb_id__isnull=True)
    return [s for s in sessions if shard_of(s.pk) == shard]


def catch_up(shard: str, connection_id: str, since: datetime | None = None) -> set[str]:
    """After a relay (re)connects: its sessions deliver to the new socket, and what the
    old one missed is stored and shown. ``since``: the relay's last heartbeat before, so a
    relay down for longer than the tail still backfills what ended meanwhile. Returns the
    streams VideoDB could not answer for, to try again later."""
    failed: set[str] = set()
    for session in sessions_of(shard, since):
        route_operations(session, connection_id)
        failed |= _backfill(_streams_of(session))[1]
    return failed


def reroute(shard: str, connection_id: str) -> int:
    """Operations started while the socket was being replaced still name the old one."""
    return sum(
        route_operations(session, connection_id)
        for session in sessions_of(shard)
        if session.is_live
    )


def route_operations(session: CaptureSession, connection_id: str) -> int:
    """Point the session's running transcripts and indexes at ``connection_id``."""
    if not session.is_live or not connection_id:
        return 0
    moved = 0
    operations = StreamOperation.objects.filter(
        stream__session=session, state=StreamOperation.State.STARTED, kind__in=ROUTED_KINDS
    ).exclude(ws_connection_id=connection_id)
    for op in operations.select_related("stream"):
        try:
            if op.kind == OP.TRANSCRIPT:
                gateway.start_transcript(op.stream.videodb_id, ws_connection_id=connection_id)
            else:
                gateway.route_index(
                    op.stream.videodb_id, op.remote_id, ws_connection_id=connection_id
                )
        except gateway.GatewayError as exc:
            logger.warning("could not re-route %s: %s", op, exc.message)
            continue
        StreamOperation.objects.filter(pk=op.pk).update(ws_connection_id=connection_id)
        moved += 1
    return moved


def backfill(session: CaptureSession) -> int:
    """Store what the socket missed for ``session`` and show it; how many items changed."""
    updates, _ = _backfill(_streams_of(session))
    return updates


def _streams_of(session: CaptureSession) -> list[RTStream]:
    streams = list(session.streams.all())
    for stream in streams:
        stream.session = session
    return streams


def backfill_streams(rtstream_ids: Iterable[str]) -> set[str]:
    """Backfill the named streams (events of theirs could not be stored); returns the ids
    VideoDB could not answer for, to try again later. Database errors propagate."""
    streams = list(
        RTStream.objects.select_related("session").filter(videodb_id__in=list(rtstream_ids))
    )
    _, failed = _backfill(streams)
    return failed


def ended_streams(rtstream_ids: Iterable[str]) -> list[str]:
    """Those of the streams whose session has ended: no more events are expected."""
    return list(
        RTStream.objects.filter(
            videodb_id__in=list(rtstream_ids), session__status__in=CaptureSession.ENDED_STATUSES
        ).values_list("videodb_id", flat=True)
    )


def _backfill(streams: list[RTStream]) -> tuple[int, set[str]]:
    by_session: dict[int, list[broadcast.LiveUpdate]] = {}
    failed: set[str] = set()
    for stream in streams:
        try:
            updates = _backfill_stream(stream)
        except gateway.GatewayError as exc:
            logger.warning("backfill of %s failed: %s", stream.videodb_id, exc.message)
            failed.add(stream.videodb_id)
            continue
        by_session.setdefault(stream.session_id, []).extend(updates)
    sessions = {stream.session_id: stream.session for stream in streams}
    for session_id, updates in by_session.items():
        if updates:
            updates.sort(key=lambda update: update["seq"])
            broadcast.publish(sessions[session_id], updates)
    return sum(len(updates) for updates in by_session.values()), failed


def _backfill_stream(stream: RTStream) -> list[broadcast.LiveUpdate]:
    updates: list[broadcast.LiveUpdate | None] = []
    ops = {op.kind: op for op in stream.operations.filter(state=StreamOperation.State.STARTED)}
    if OP.TRANSCRIPT in ops:
        since = TranscriptSegment.objects.filter(stream=stream, is_final=True).aggregate(
            last=Max("end_ms")
        )["last"]
        for raw in gateway.transcript_since(stream.videodb_id, since):
            try:
                event = events.transcript_record(raw)
            except events.EventError as exc:
                logger.warning("backfill skipped a transcript segment: %s", exc)
                continue
            updates.append(ingest.store(stream, event))
    for kind, insight_kind in ((OP.AUDIO_INDEX, Insight.Kind.AUDIO),
                               (OP.VISUAL_INDEX, Insight.Kind.VISUAL)):  # fmt: skip
        op = ops.get(kind)
        if op is None or not op.remote_id:
            continue
        for raw in gateway.index_records(stream.videodb_id, op.remote_id):
            try:
                event = events.index_record(raw, insight_kind, op.remote_id)
            except events.EventError as exc:
                logger.warning("backfill skipped an index record: %s", exc)
                continue
            updates.append(ingest.store(stream, event))
    return [update for update in updates if update is not None]
