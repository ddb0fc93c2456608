"""When a session's brief is refreshed, and handing the refresh to a worker.

A brief is due after ``BRIEF_MIN_NEW_CHARS`` of new final speech since the last one, or
``BRIEF_MAX_WAIT_SECONDS`` after it when anything new was said; never while nothing was.
After capture stops, any new speech is due at once (the final pass). Three places ask:
``ingest`` when it stores a final line (two indexed reads; when the brief is due it also
reserves it, so the lines that follow ask nothing until the refresh has run), the reconciler
for the minute-with-some-speech case and for a final pass that never ran, and lifecycle's
follow-up when capture stops. The refresh runs in the Celery task ``REFRESH_TASK``, enqueued
by name on commit: services never import tasks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Length
from django.utils import timezone

from sessions_app.models import Alert, Brief, CaptureSession, Insight, TranscriptSegment

logger = logging.getLogger(__name__)

REFRESH_TASK = "intelligence.refresh_brief"
# The reconciler repairs a final pass that never ran for sessions that ended this recently.
FINAL_REPAIR_WINDOW = timedelta(hours=1)
CANDIDATES = 200  # sessions the reconciler looks at per run


@dataclass(frozen=True)
class Progress:
    """How far the session's last brief got, and what was said since."""

    through_seq: int  # the last brief covered every change numbered up to this
    made_at: datetime | None  # None: no brief yet
    is_final: bool
    new_speech_chars: int  # final speech stored since

    @property
    def has_brief(self) -> bool:
        return self.made_at is not None


def progress(session_id: int) -> Progress:
    last = (
        Brief.objects.filter(session_id=session_id)
        .order_by("-number")
        .values_list("covered_through_seq", "made_at", "is_final")
        .first()
    )
    through, made_at, is_final = last or (0, None, False)
    chars = TranscriptSegment.objects.filter(
        session_id=session_id, is_final=True, seq__gt=through
    ).aggregate(chars=Sum(Length("text")))["chars"]
    return Progress(through, made_at, is_final, chars or 0)


def anything_new(session_id: int, since_seq: int) -> bool:
    """Whether anything the brief reads (speech, screen, insights, alerts) changed after
    ``since_seq``: what the final pass asks."""
    return any(
        model.objects.filter(session_id=session_id, seq__gt=since_seq).exists()
        for model in (TranscriptSegment, Insight, Alert)
    )


# --- the claim: one generation in flight per session ---------------------------------------
#
# ``CaptureSession.brief_claimed_at`` is set while a refresh is enqueued (the trigger's
# reservation) or running, and after a failed attempt (its back-off, ``brief._pause``). A
# claim older than BRIEF_CLAIM_STALE_SECONDS was left by a worker that died, or by a task the
# broker lost: it is free again.


def _free(now: datetime) -> Q:
    stale = now - timedelta(seconds=settings.BRIEF_CLAIM_STALE_SECONDS)
    return Q(brief_claimed_at__isnull=True) | Q(brief_claimed_at__lt=stale)


def claimed(session: CaptureSession, now: datetime) -> bool:
    """Whether a refresh holds the session's brief (as ``session`` was read)."""
    stale = now - timedelta(seconds=settings.BRIEF_CLAIM_STALE_SECONDS)
    return session.brief_claimed_at is not None and session.brief_claimed_at >= stale


def claim(session_id: int, now: datetime, *, reserved: datetime | None = None) -> bool:
    """Take the brief for a refresh (a conditional UPDATE: of two at once, one wins); the
    task enqueued with a reservation takes it over."""
    free = _free(now) | Q(brief_claimed_at=reserved) if reserved else _free(now)
    return CaptureSession.objects.filter(free, pk=session_id).update(brief_claimed_at=now) == 1


def release(session_id: int, taken: datetime) -> None:
    """Give the brief back, unless someone took it over since."""
    CaptureSession.objects.filter(pk=session_id, brief_claimed_at=taken).update(
        brief_claimed_at=None
    )


def due(session: CaptureSession, done: Progress, now: datetime) -> bool:
    if done.new_speech_chars == 0:
        return False
    if session.has_ended or done.new_speech_chars >= settings.BRIEF_MIN_NEW_CHARS:
        return True
    since = done.made_at or session.started_at
    return since is not None and now - since >= timedelta(seconds=settings.BRIEF_MAX_WAIT_SECONDS)


def enqueue(session_id: int, *, final: bool = False, reserved: datetime | None = None) -> None:
    """Hand the refresh to a worker, by the task's name. A reservation the message never
    left with is given back at once (the broker was down), not left to go stale."""
    kwargs = {"final": final, "reserved": reserved.isoformat() if reserved else None}
    try:
        current_app.send_task(REFRESH_TASK, args=(session_id,), kwargs=kwargs)
    except Exception:
        if reserved is not None:
            release(session_id, reserved)
        raise


def after_final_speech(session: CaptureSession) -> None:
    """A final line of ``session`` was just stored: if the brief is due, reserve it and
    enqueue a refresh on commit, so the lines that follow before the refresh runs ask
    nothing. ``session`` as read with the line's stream: no query at all while it is held."""
    now = timezone.now()
    if claimed(session, now) or not due(session, progress(session.pk), now):
        return
    if not CaptureSession.objects.filter(_free(now), pk=session.pk).update(brief_claimed_at=now):
        return  # another line reserved it a moment ago
    session.brief_claimed_at = now
    refresh = partial(enqueue, session.pk, final=session.has_ended, reserved=now)
    transaction.on_commit(refresh, robust=True)


def sessions_due(now: datetime | None = None) -> list[tuple[int, bool]]:
    """(session id, final) of every session whose brief the reconciler should refresh: live
    sessions due by time (no final line came to ask), and sessions ended recently whose
    final pass never ran (its task was lost, or found the brief busy), unless paused."""
    now = now or timezone.now()
    latest = Brief.objects.filter(session=OuterRef("pk")).order_by("-number")
    live = Q(status__in=CaptureSession.LIVE_STATUSES)
    unfinished = (
        Q(status__in=CaptureSession.ENDED_STATUSES, ended_at__gte=now - FINAL_REPAIR_WINDOW)
        & Q(brief_paused="")
        & (Q(latest_is_final__isnull=True) | Q(latest_is_final=False))
    )
    spoken = TranscriptSegment.objects.filter(session=OuterRef("pk"), is_final=True)
    candidates = (
        CaptureSession.objects.annotate(
            latest_is_final=Subquery(latest.values("is_final")[:1]), spoke=Exists(spoken)
        )
        .filter(_free(now), live | unfinished, spoke=True)
        .order_by("pk")[:CANDIDATES]
    )
    found = []
    for session in candidates:
        if session.has_ended:
            found.append((session.pk, True))  # the refresh decides what the final pass needs
        elif due(session, progress(session.pk), now):
            found.append((session.pk, False))
    return found
