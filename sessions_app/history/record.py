"""Everything stored about one session, in time order: what the history page and the exports
read.

A record holds plain values (frozen dataclasses, in lists), never model instances, so a page
or an export cannot trigger a query while it renders: ``load`` reads the session once, in a
fixed number of queries, however long the meeting was. Only final transcript text is part
of the record; interim text is a live-page artefact that the final replaces.

Times are kept as VideoDB sent them (``*_ms``, epoch milliseconds) and also as offsets from
the record's origin (``*offset_ms``), the instant shown as 00:00. The origin is when the
session started; for a session that never recorded a start, the first stored item.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sessions_app.models import Alert, CaptureSession, Insight, RTStream, TranscriptSegment

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class SessionFacts:
    """The session itself, as stored when the record was read."""

    id: int
    uuid: str
    title: str
    status: str
    status_label: str  # the status as pages show it
    videodb_id: str  # "" until VideoDB created the session
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    player_url: str
    exported_video_id: str


@dataclass(frozen=True)
class Channel:
    """One of the session's streams."""

    id: int
    videodb_id: str
    name: str
    kind: str  # RTStream.kind: mic, system_audio, screen or other
    kind_label: str  # the kind as pages show it
    speaker: str  # the stream's label, or its default (Me, Others, …)
    media_types: tuple[str, ...]
    has_audio: bool


@dataclass(frozen=True)
class Moment:
    """What every item of the record has: where it was recorded, what it says, and when."""

    id: int
    stream_id: int
    channel: str  # the stream's kind
    text: str
    start_ms: int
    end_ms: int
    offset_ms: int
    end_offset_ms: int


@dataclass(frozen=True)
class Line(Moment):
    """One final transcript segment."""

    speaker: str


@dataclass(frozen=True)
class Note(Moment):
    """An insight: what was on screen (``visual``) or what was decided (``audio``)."""

    kind: str


@dataclass(frozen=True)
class Flag(Moment):
    """An alert that VideoDB raised on one of the session's streams."""

    label: str
    triggered: bool
    confidence: float | None


@dataclass(frozen=True)
class SessionRecord:
    session: SessionFacts
    streams: list[Channel]
    origin_ms: int
    duration_ms: int
    lines: list[Line]
    visual: list[Note]
    audio: list[Note]
    alerts: list[Flag]

    @property
    def speakers(self) -> list[str]:
        """Who spoke, each once, in the order they first spoke."""
        return list(dict.fromkeys(line.speaker for line in self.lines))


def epoch_ms(moment: datetime) -> int:
    """An aware datetime as epoch milliseconds, in integer arithmetic (a float product can
    land one millisecond short)."""
    return (moment - _EPOCH) // _ONE_MS


def format_offset(ms: int, *, millis: bool = False) -> str:
    """``mm:ss``, or ``h:mm:ss`` from the first hour on; with ``millis``, ``mm:ss.mmm``.

    Negative offsets (an item stamped before the session's start) show as zero.
    """
    ms = max(0, ms)
    seconds, rest_ms = divmod(ms, 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    label = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
    return f"{label}.{rest_ms:03d}" if millis else label


def _facts(session: CaptureSession) -> SessionFacts:
    return SessionFacts(
        id=session.pk,
        uuid=str(session.uuid),
        title=session.title,
        status=session.status,
        status_label=session.get_status_display(),
        videodb_id=session.videodb_id or "",
        created_at=session.created_at,
        started_at=session.started_at,
        ended_at=session.ended_at,
        player_url=session.player_url,
        exported_video_id=session.exported_video_id,
    )


def _channel(stream: RTStream) -> Channel:
    return Channel(
        id=stream.pk,
        videodb_id=stream.videodb_id,
        name=stream.name,
        kind=stream.kind,
        kind_label=stream.get_kind_display(),
        speaker=stream.speaker,
        media_types=tuple(stream.media_types),
        has_audio=stream.has_audio,
    )


def load(session: CaptureSession) -> SessionRecord:
    """Read everything stored about ``session``: four queries, whatever its length."""
    streams = list(session.streams.order_by("name", "id"))
    segments = list(
        TranscriptSegment.objects.filter(session=session, is_final=True)
        .select_related("stream")
        .order_by("start_ms", "id")
    )
    insights = list(
        Insight.objects.filter(session=session).select_related("stream").order_by("start_ms", "id")
    )
    alerts = list(
        Alert.objects.filter(session=session).select_related("stream").order_by("start_ms", "id")
    )

    items: list[TranscriptSegment | Insight | Alert] = [*segments, *insights, *alerts]
    if session.started_at is not None:
        origin = epoch_ms(session.started_at)
    else:
        origin = min((item.start_ms for item in items), default=0)
    if session.started_at is not None and session.ended_at is not None:
        duration = epoch_ms(session.ended_at) - origin
    else:
        duration = max((item.end_ms for item in items), default=origin) - origin

    def moment(item: TranscriptSegment | Insight | Alert) -> dict[str, Any]:
        """The fields of ``Moment`` for a stored item."""
        return {
            "id": item.pk,
            "stream_id": item.stream_id,
            "channel": item.stream.kind,
            "text": item.text,
            "start_ms": item.start_ms,
            "end_ms": item.end_ms,
            "offset_ms": max(0, item.start_ms - origin),
            "end_offset_ms": max(0, item.end_ms - origin),
        }

    notes = [Note(**moment(i), kind=i.kind) for i in insights]
    return SessionRecord(
        session=_facts(session),
        streams=[_channel(stream) for stream in streams],
        origin_ms=origin,
        duration_ms=max(0, duration),
        lines=[Line(**moment(s), speaker=s.stream.speaker) for s in segments],
        visual=[n for n in notes if n.kind == Insight.Kind.VISUAL],
        audio=[n for n in notes if n.kind == Insight.Kind.AUDIO],
        alerts=[
            Flag(**moment(a), label=a.label, triggered=a.triggered, confidence=a.confidence)
            for a in alerts
        ],
    )
