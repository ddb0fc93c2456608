"""Everything stored about one session, in time order: what the history page and the exports
read.

A record holds plain values (frozen dataclasses, in lists), never model instances, so a page
or an export cannot trigger a query while it renders: ``load`` reads the session once, in a
fixed number of queries, however long the meeting was. Only final transcript text is part
of the record; interim text is a live-page artefact that the final replaces.

VideoDB's repetitions are kept as they came (``visual``, ``audio``) and also grouped as the
pages show them (``screens``, ``insights``: sessions_app/history/repeats.py). The record also
holds the session's current brief and its answered questions, each citing moments of the
record (``Cited``): evidence naming something the record does not hold (an interim line,
another session's item) is left out, and a repeated insight or description is cited by its
group's first copy, so every citation resolves to an item of the record as it is shown.

Times are kept as VideoDB sent them (``*_ms``, epoch milliseconds) and also as offsets from
the record's origin (``*offset_ms``), the instant shown as 00:00. The origin is when the
session started; for a session that never recorded a start, the first stored item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Min

from sessions_app.history import repeats
from sessions_app.intelligence import evidence as cites
from sessions_app.models import (
    Alert,
    BriefItem,
    CaptureSession,
    Insight,
    Question,
    RTStream,
    TranscriptSegment,
)

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
    speaker: str  # the stream's label, or its default (Others, Screen, …)
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
    speaker: str  # who its stream is (the owner, Others, Screen, or the name given)


@dataclass(frozen=True)
class Flag(Moment):
    """An alert that VideoDB raised on one of the session's streams."""

    label: str  # VideoDB's id for the rule that fired: pricing_shared
    title: str  # what people read: the rule's name (Alert.title)
    triggered: bool
    confidence: float | None


@dataclass(frozen=True)
class Cited:
    """A moment of the record that a brief item or an answer cites."""

    kind: str  # "transcript", "visual", "audio" or "alert" (the evidence kinds)
    id: int  # the line, the alert, or the first copy of the screen span or insight
    start_ms: int
    offset_ms: int


@dataclass(frozen=True)
class Point:
    """One item of the session's current brief."""

    id: int
    kind: str  # BriefItem.Kind: summary, decision, action or question
    text: str
    owner: str
    due: str
    status: str  # open or done (what counts for action items)
    evidence: tuple[Cited, ...]


@dataclass(frozen=True)
class Answered:
    """A question asked of the meeting that has its answer (or was not discussed)."""

    id: int
    question: str
    answer: str
    outcome: str  # Question.Outcome: answered or not_discussed
    asked_at: datetime
    answered_at: datetime | None
    evidence: tuple[Cited, ...]


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
    screens: list[repeats.Group[Note]] = field(default_factory=list)  # ``visual`` as spans
    insights: list[repeats.Group[Note]] = field(default_factory=list)  # ``audio``, each once
    brief: list[Point] = field(default_factory=list)  # in BRIEF_ORDER, then by position
    questions: list[Answered] = field(default_factory=list)  # oldest first

    @property
    def speakers(self) -> list[str]:
        """Who spoke, each once, in the order they first spoke."""
        return list(dict.fromkeys(line.speaker for line in self.lines))


def epoch_ms(moment: datetime) -> int:
    """An aware datetime as epoch milliseconds, in integer arithmetic (a float product can
    land one millisecond short)."""
    return (moment - _EPOCH) // _ONE_MS


def origins(sessions: Iterable[CaptureSession]) -> dict[int, int]:
    """Each session's origin (epoch ms), by id, by the same rule as :func:`load`: when it
    started, else its first stored item (final line, insight or alert), else 0. No query
    for sessions that started; three for all the others together."""
    found: dict[int, int] = {}
    unstarted = []
    for session in sessions:
        if session.started_at is not None:
            found[session.pk] = epoch_ms(session.started_at)
        else:
            unstarted.append(session.pk)
    if unstarted:
        firsts: list[tuple[int, int | None]] = []
        for model, only in ((TranscriptSegment, {"is_final": True}), (Insight, {}), (Alert, {})):
            firsts += (
                model.objects.filter(session_id__in=unstarted, **only)
                .values_list("session_id")
                .annotate(first=Min("start_ms"))
            )
        for pk in unstarted:
            starts = [first for sid, first in firsts if sid == pk and first is not None]
            found[pk] = min(starts, default=0)
    return found


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


def format_range(start_ms: int, end_ms: int) -> str:
    """Two offsets as ``00:10-01:40`` (joined by an en dash), or one when they read the same."""
    start, end = format_offset(start_ms), format_offset(end_ms)
    return start if end == start else f"{start}\u2013{end}"


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


# The brief's lists in the order pages and exports show them.
BRIEF_ORDER = (
    BriefItem.Kind.SUMMARY,
    BriefItem.Kind.DECISION,
    BriefItem.Kind.ACTION,
    BriefItem.Kind.QUESTION,
)
# Questions with something to say: a pending one has no answer yet and a failed one only an
# error; their rows keep them, the record leaves them out.
ANSWERED = (Question.Outcome.ANSWERED, Question.Outcome.NOT_DISCUSSED)


def _citable(
    lines: list[Line],
    screens: list[repeats.Group[Note]],
    insights: list[repeats.Group[Note]],
    alerts: list[Flag],
) -> dict[tuple[str, int], Cited]:
    """(evidence kind, stored id) -> the moment of the record it resolves to."""
    found: dict[tuple[str, int], Cited] = {}
    for kind, items in (("transcript", lines), ("alert", alerts)):
        for item in items:
            found[(kind, item.id)] = Cited(kind, item.id, item.start_ms, item.offset_ms)
    for kind, groups in (("visual", screens), ("audio", insights)):
        for group in groups:
            offset = min(copy.offset_ms for copy in group.copies)
            cited = Cited(kind, group.id, group.start_ms, offset)
            for copy in group.copies:
                found[(kind, copy.id)] = cited
    return found


def _resolve(evidence: object, citable: dict[tuple[str, int], Cited]) -> tuple[Cited, ...]:
    """The moments stored ``evidence`` cites, each once, in its order; anything malformed or
    not in the record is left out."""
    resolved: dict[tuple[str, int], Cited] = {}
    for pair in cites.pairs(evidence):
        if (cited := citable.get(pair)) is not None:
            resolved.setdefault((cited.kind, cited.id), cited)
    return tuple(resolved.values())


def load(session: CaptureSession) -> SessionRecord:
    """Read everything stored about ``session``: six queries, whatever its length."""
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
        Alert.objects.filter(session=session)
        .select_related("stream", "rule")
        .order_by("start_ms", "id")
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

    notes = [Note(**moment(i), kind=i.kind, speaker=i.stream.speaker) for i in insights]
    lines = [Line(**moment(s), speaker=s.stream.speaker) for s in segments]
    visual = [n for n in notes if n.kind == Insight.Kind.VISUAL]
    audio = [n for n in notes if n.kind == Insight.Kind.AUDIO]
    flags = [
        Flag(
            **moment(a),
            label=a.label,
            title=a.title,
            triggered=a.triggered,
            confidence=a.confidence,
        )
        for a in alerts
    ]
    screens, unique = repeats.screen_spans(visual), repeats.unique_insights(audio)
    citable = _citable(lines, screens, unique, flags)
    rank = {kind: n for n, kind in enumerate(BRIEF_ORDER)}
    brief = sorted(
        BriefItem.objects.filter(session=session, is_current=True),
        key=lambda item: (rank.get(item.kind, len(rank)), item.position, item.pk),
    )
    questions = Question.objects.filter(session=session, outcome__in=ANSWERED).order_by(
        "asked_at", "id"
    )
    return SessionRecord(
        session=_facts(session),
        streams=[_channel(stream) for stream in streams],
        origin_ms=origin,
        duration_ms=max(0, duration),
        lines=lines,
        visual=visual,
        audio=audio,
        alerts=flags,
        screens=screens,
        insights=unique,
        brief=[
            Point(
                id=item.pk,
                kind=item.kind,
                text=item.text,
                owner=item.owner,
                due=item.due,
                status=item.status,
                evidence=_resolve(item.evidence, citable),
            )
            for item in brief
        ],
        questions=[
            Answered(
                id=q.pk,
                question=q.question,
                answer=q.answer,
                outcome=q.outcome,
                asked_at=q.asked_at,
                answered_at=q.answered_at,
                evidence=_resolve(q.evidence, citable),
            )
            for q in questions
        ],
    )
