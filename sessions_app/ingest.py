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

from sessions_app.models import Alert, CaptureSession, RTStream


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
