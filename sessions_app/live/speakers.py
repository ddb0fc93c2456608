"""Naming who speaks on each captured channel."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from sessions_app.live import broadcast
from sessions_app.models import CaptureSession, RTStream


def default_label(session: CaptureSession, kind: str) -> str:
    """The name a new stream's lines carry: the owner's on the microphone (what they say is
    theirs, and participants read the same line), the channel's kind otherwise (stored
    blank: RTStream.speaker names it)."""
    if kind == RTStream.Kind.MIC:
        return str(session.owner)
    return ""


def rename(stream: RTStream, label: str) -> RTStream:
    """Set the name shown for ``stream``'s lines ("" goes back to the default: the owner's
    name on a microphone, Others, Screen) and, once that is committed, relabel every line of
    it on every open page."""
    label = " ".join(label.split()) or default_label(stream.session, stream.kind)
    RTStream.objects.filter(pk=stream.pk).update(speaker_label=label, updated_at=timezone.now())
    stream.speaker_label = label
    transaction.on_commit(
        lambda: broadcast.publish(stream.session, [broadcast.speaker_message(stream)])
    )
    return stream
