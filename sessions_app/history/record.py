"""Everything stored about one session, in time order: what the history page and the exports
read.

A record holds plain frozen values, not model instances, so a page or an export cannot
trigger a query while it renders: ``load`` reads the session once, in a fixed number of
queries, however long the meeting was. Only final transcript text is part of the record;
interim text is a live-page artefact that the final replaces.

Times are kept as VideoDB sent them (``*_ms``, epoch milliseconds) and also as offsets from
the record's origin (``*offset_ms``), the instant shown as 00:00. The origin is when the
session started; for a session that never recorded a start, the first stored item.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sessions_app.models import Alert, CaptureSession, Insight, RTStream, TranscriptSegment

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Line:
    """One final transcript segment."""

    id: int
    stream_id: int
    channel: str  # RTStream.kind: mic, system_audio, screen or other
    speaker: str  # the stream's label, or its default (Me, Others, …)
    text: str
    start_ms: int
    end_ms: int
    offset_ms: int
    end_offset_ms: int


@dataclass(frozen=True)
class Note:
    """An insight: what was on screen (``visual``) or what was decided (``audio``)."""

    id: int
    kind: str
    stream_id: int
    channel: str
    text: str
    start_ms: int
    end_ms: int
    offset_ms: int
    end_offset_ms: int


@dataclass(frozen=True)
class Flag:
    """An alert that VideoDB raised on one of the session's streams."""

    id: int
    label: str
    triggered: bool
    confidence: float | None
    text: str
    stream_id: int
    channel: str
    start_ms: int
    end_ms: int
    offset_ms: int
    end_offset_ms: int


@dataclass(frozen=True)
class SessionRecord:
    session: CaptureSession
    streams: list[RTStream]
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

    def since(ms: int) -> int:
        return max(0, ms - origin)

    lines = [
        Line(
            id=s.pk,
            stream_id=s.stream_id,
            channel=s.stream.kind,
            speaker=s.stream.speaker,
            text=s.text,
            start_ms=s.start_ms,
            end_ms=s.end_ms,
            offset_ms=since(s.start_ms),
            end_offset_ms=since(s.end_ms),
        )
        for s in segments
    ]
    notes = [
        Note(
            id=i.pk,
            kind=i.kind,
            stream_id=i.stream_id,
            channel=i.stream.kind,
            text=i.text,
            start_ms=i.start_ms,
            end_ms=i.end_ms,
            offset_ms=since(i.start_ms),
            end_offset_ms=since(i.end_ms),
        )
        for i in insights
    ]
    flags = [
        Flag(
            id=a.pk,
            label=a.label,
            triggered=a.triggered,
            confidence=a.confidence,
            text=a.text,
            stream_id=a.stream_id,
            channel=a.stream.kind,
            start_ms=a.start_ms,
            end_ms=a.end_ms,
            offset_ms=since(a.start_ms),
            end_offset_ms=since(a.end_ms),
        )
        for a in alerts
    ]
    return SessionRecord(
        session=session,
        streams=streams,
        origin_ms=origin,
        duration_ms=max(0, duration),
        lines=lines,
        visual=[n for n in notes if n.kind == Insight.Kind.VISUAL],
        audio=[n for n in notes if n.kind == Insight.Kind.AUDIO],
        alerts=flags,
    )
