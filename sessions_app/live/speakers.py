"""Naming who speaks on each captured channel."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from sessions_app.live import broadcast
from sessions_app.models import RTStream


def rename(stream: RTStream, label: str) -> RTStream:
    """Set the name shown for ``stream``'s lines ("" goes back to the default: Me, Others)
    and, once that is committed, relabel every line of it on every open page."""
    label = " ".join(label.split())
    RTStream.objects.filter(pk=stream.pk).update(speaker_label=label, updated_at=timezone.now())
    stream.speaker_label = label
    transaction.on_commit(
        lambda: broadcast.publish(stream.session, [broadcast.speaker_message(stream)])
    )
    return stream
