"""Fixtures for the live view: stored items numbered the way the relay numbers them, a
share link, and hostile text from "VideoDB"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import F
from django.test import Client
from django.utils import timezone

from sessions_app.models import (
    Alert,
    CaptureSession,
    Insight,
    RTStream,
    ShareLink,
    TranscriptSegment,
)

# Markup that must reach the page as text: an image handler, an htmx attribute that would
# fetch on load, and a tag that would close the element it is printed in.
HOSTILE = '<img src=x onerror=alert(1)> <b hx-get="/x" hx-trigger="load">x</b> </div>'


def session_cookie(user) -> str:
    """The session cookie a logged-in browser would send."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def take_seq(session_id: int) -> int:
    """The session's next sequence number, as the relay's ingest hands them out."""
    CaptureSession.objects.filter(pk=session_id).update(last_seq=F("last_seq") + 1)
    return CaptureSession.objects.values_list("last_seq", flat=True).get(pk=session_id)


def say(
    stream: RTStream, text: str, start_ms: int, *, final: bool = False, session_start_ms: int = 0
) -> TranscriptSegment:
    """Store (or update in place) the segment starting at ``start_ms``. ``final=False`` makes
    the interim row an older version stored (interim text is no longer stored: the relay
    pushes it, sessions_app/live/interim.py); pages must still show such rows sensibly."""
    start = session_start_ms + start_ms
    with transaction.atomic():
        segment, _ = TranscriptSegment.objects.update_or_create(
            stream=stream,
            start_ms=start,
            defaults={
                "session_id": stream.session_id,
                "text": text,
                "is_final": final,
                "end_ms": start + 1500,
                "seq": take_seq(stream.session_id),
            },
        )
        RTStream.objects.filter(pk=stream.pk).update(last_event_received_at=timezone.now())
    return TranscriptSegment.objects.select_related("stream", "session").get(pk=segment.pk)


def note(stream: RTStream, text: str, start_ms: int, *, kind: str = "audio") -> Insight:
    with transaction.atomic():
        insight = Insight.objects.create(
            session_id=stream.session_id,
            stream=stream,
            kind=kind,
            text=text,
            start_ms=start_ms,
            end_ms=start_ms + 5000,
            seq=take_seq(stream.session_id),
        )
    return Insight.objects.select_related("stream", "session").get(pk=insight.pk)


def fire(stream: RTStream, label: str, start_ms: int, *, text: str = "", confidence=0.92) -> Alert:
    with transaction.atomic():
        alert = Alert.objects.create(
            session_id=stream.session_id,
            stream=stream,
            label=label,
            text=text,
            confidence=confidence,
            start_ms=start_ms,
            end_ms=start_ms + 1000,
            seq=take_seq(stream.session_id),
        )
    return Alert.objects.select_related("stream", "session").get(pk=alert.pk)


@pytest.fixture
def system_audio(make_stream: Callable[..., RTStream], meeting: CaptureSession) -> RTStream:
    return make_stream(meeting, "system_audio:default")


@pytest.fixture
def screen(make_stream: Callable[..., RTStream], meeting: CaptureSession) -> RTStream:
    return make_stream(meeting, "display:1")


@pytest.fixture
def share_link(meeting: CaptureSession, owner) -> ShareLink:
    return ShareLink.objects.create(session=meeting, created_by=owner)


@pytest.fixture
def expired_link(meeting: CaptureSession, owner) -> ShareLink:
    link = ShareLink.objects.create(session=meeting, created_by=owner)
    ShareLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    link.refresh_from_db()
    return link


@pytest.fixture
def revoked_link(meeting: CaptureSession, owner) -> ShareLink:
    return ShareLink.objects.create(session=meeting, created_by=owner, revoked_at=timezone.now())
