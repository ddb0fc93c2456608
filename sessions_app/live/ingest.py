"""Storing VideoDB's real-time events exactly once, each with a session sequence number.

Every path that brings an event in (the relay's socket, its backfill, alert callbacks)
stores it through this module, so idempotency is written once: the unique constraints in
models.py turn a repeat into "nothing new", and only a real change takes a sequence number
(which a reconnecting browser uses to ask for what it missed).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from sessions_app.models import Alert, CaptureSession, Insight, RTStream, TranscriptSegment


@dataclass(frozen=True)
class TranscriptInput:
    text: str
    is_final: bool
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class InsightInput:
    kind: str  # Insight.Kind
    text: str
    start_ms: int
    end_ms: int
    index_id: str = ""


@dataclass(frozen=True)
class AlertInput:
    label: str
    start_ms: int
    end_ms: int
    triggered: bool = True
    confidence: float | None = None
    text: str = ""


def next_seq(session_id: int) -> int:
    """Hand out the session's next sequence number. Call inside the storing transaction, so
    the number and the row it labels commit (or roll back) together."""
    CaptureSession.objects.filter(pk=session_id).update(last_seq=F("last_seq") + 1)
    return CaptureSession.objects.values_list("last_seq", flat=True).get(pk=session_id)


def record_alert(stream: RTStream, event: AlertInput) -> tuple[Alert, bool]:
    """Store an alert once, whether it came by callback, by socket, or both."""
    existing = Alert.objects.filter(
        stream=stream, label=event.label, start_ms=event.start_ms
    ).first()
    if existing is not None:
        return existing, False
    rule = stream.session.alert_rules.filter(label=event.label).first()
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                session_id=stream.session_id,
                stream=stream,
                rule=rule,
                label=event.label,
                triggered=event.triggered,
                confidence=event.confidence,
                text=event.text,
                start_ms=event.start_ms,
                end_ms=max(event.end_ms, event.start_ms),
                seq=next_seq(stream.session_id),
            )
    except IntegrityError:  # the other path stored it between our look and our write
        return Alert.objects.get(stream=stream, label=event.label, start_ms=event.start_ms), False
    return alert, True


def touch_stream(stream: RTStream, event_end_ms: int) -> None:
    """Record that the stream is alive: the health panel's "last event" and its age."""
    RTStream.objects.filter(pk=stream.pk).update(
        last_event_ms=event_end_ms, last_event_received_at=timezone.now()
    )


def record_transcript(stream: RTStream, event: TranscriptInput) -> TranscriptSegment | None:
    """Store a transcript event. Returns the segment if this changed it, None otherwise.

    Interim text for a start time updates its row in place; the final replaces it; a late
    interim after the final, or a repeat of what is stored, changes nothing.
    """
    end_ms = max(event.end_ms, event.start_ms)
    with transaction.atomic():
        segment = (
            TranscriptSegment.objects.select_for_update()
            .filter(stream=stream, start_ms=event.start_ms)
            .first()
        )
        if segment is None:
            try:
                with transaction.atomic():
                    return TranscriptSegment.objects.create(
                        session_id=stream.session_id,
                        stream=stream,
                        text=event.text,
                        is_final=event.is_final,
                        start_ms=event.start_ms,
                        end_ms=end_ms,
                        seq=next_seq(stream.session_id),
                    )
            except IntegrityError:  # another path stored the same start a moment ago
                segment = TranscriptSegment.objects.select_for_update().get(
                    stream=stream, start_ms=event.start_ms
                )
        segment.stream = stream  # already loaded: saves a query when search indexes it
        if segment.is_final and not event.is_final:
            return None
        if (segment.text, segment.is_final, segment.end_ms) == (event.text, event.is_final, end_ms):
            return None
        segment.text = event.text
        segment.is_final = event.is_final
        segment.end_ms = end_ms
        segment.seq = next_seq(stream.session_id)
        segment.save(update_fields=["text", "is_final", "end_ms", "seq", "updated_at"])
        return segment


def record_insight(stream: RTStream, event: InsightInput) -> Insight | None:
    """Store a scene or audio index result once. Returns it if new, None for a repeat."""
    lookup = {"stream": stream, "kind": event.kind, "start_ms": event.start_ms}
    if Insight.objects.filter(**lookup).exists():
        return None
    try:
        with transaction.atomic():
            return Insight.objects.create(
                session_id=stream.session_id,
                index_id=event.index_id,
                text=event.text,
                end_ms=max(event.end_ms, event.start_ms),
                seq=next_seq(stream.session_id),
                **lookup,
            )
    except IntegrityError:
        return None
