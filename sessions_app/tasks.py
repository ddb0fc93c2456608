"""Celery tasks: small, idempotent, ids in, retried with backoff on what may pass.

Each task wraps one lifecycle service call and says what it does when VideoDB fails for
good; the retry itself is the policy every task inherits (copilot/celery.py). Only
``RetryableGatewayError`` (VideoDB unreachable, timing out or answering 5xx) is retried; a
permanent refusal is recorded at once where the user sees it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Task, shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from sessions_app.capture import lifecycle
from sessions_app.gateway import GatewayError, PermanentGatewayError, RetryableGatewayError
from sessions_app.history import search
from sessions_app.intelligence import brief, schedule
from sessions_app.live import broadcast, ingest
from sessions_app.models import Alert, CaptureSession, WebhookDelivery

logger = logging.getLogger(__name__)

# Sessions are only watched for this long after creation.
WATCH_WINDOW = timedelta(days=1)

# Every task below calls VideoDB: its outages may pass, its refusals will not.
VIDEODB_POLICY = {
    "retry_for": (RetryableGatewayError,),
    "give_up_for": (PermanentGatewayError,),
}


def _follow_up(result: lifecycle.SyncResult | None) -> None:
    if result is None:
        return
    if result.start_ai:
        start_session_ai.delay(result.session_id)
    if result.request_export:
        # VideoDB exports by itself: ask only if its `exported` has not come by then.
        request_export.apply_async((result.session_id,), countdown=settings.EXPORT_FALLBACK_SECONDS)
    if result.final_brief:
        refresh_brief.delay(result.session_id, final=True)


def _delivery_failed(task: Task, exc: GatewayError, delivery_id: int) -> str:
    lifecycle.record_delivery_failure(delivery_id, exc.message)
    return "failed"


@shared_task(name="sessions.process_delivery", on_give_up=_delivery_failed, **VIDEODB_POLICY)
def process_delivery(delivery_id: int) -> str:
    result = lifecycle.process_delivery(delivery_id)
    if result is None:
        return "skipped"
    _follow_up(result)
    return result.status


# When to ask VideoDB again whether it shows a held alert: about four minutes in all, past
# the longest index window, whatever TASK_RETRY_BASE_SECONDS says.
CONFIRM_ALERT_DELAYS = (1, 2, 4, 8, 15, 30, 60, 60, 60)


@shared_task(bind=True, name="sessions.confirm_alert", **VIDEODB_POLICY)
def confirm_alert(self: Task, alert_id: int) -> str:
    """Show an alert only a callback reported once VideoDB's records bear it out; asked
    again while they do not (yet), then left unconfirmed and unseen."""
    try:
        update = ingest.confirm_from_videodb(alert_id)
    except ingest.NotConfirmedYet as exc:
        tries = self.request.retries
        if tries >= len(CONFIRM_ALERT_DELAYS):
            logger.info("alert %s stays unconfirmed: %s", alert_id, exc)
            return "unconfirmed"
        raise self.retry(
            exc=exc, countdown=CONFIRM_ALERT_DELAYS[tries], max_retries=len(CONFIRM_ALERT_DELAYS)
        ) from exc
    if update is None:
        return "skipped"
    alert = Alert.objects.select_related("session").get(pk=alert_id)
    broadcast.publish(alert.session, [update])
    return "confirmed"


def _ai_retrying(task: Task, exc: GatewayError, session_id: int) -> None:
    lifecycle.record_ai_failure(session_id, f"retrying: {exc.message}")


def _ai_failed(task: Task, exc: GatewayError, session_id: int) -> list[str]:
    if exc.retryable:
        lifecycle.record_ai_failure(session_id, f"gave up after retries: {exc.message}")
        raise exc
    lifecycle.record_ai_failure(session_id, exc.message)
    return []


@shared_task(
    name="sessions.start_session_ai",
    on_retrying=_ai_retrying,
    on_give_up=_ai_failed,
    **VIDEODB_POLICY,
)
def start_session_ai(session_id: int) -> list[str]:
    return lifecycle.start_ai(session_id)


def _export_failed(task: Task, exc: GatewayError, session_id: int) -> str:
    if exc.retryable:
        return "failed"  # the claim was given back: the reconciler asks again
    logger.warning("export of session %s refused: %s", session_id, exc.message)
    return "refused"


@shared_task(name="sessions.request_export", on_give_up=_export_failed, **VIDEODB_POLICY)
def request_export(session_id: int) -> str:
    return lifecycle.request_export(session_id)


def _sync_failed(task: Task, exc: GatewayError, session_id: int) -> str:
    if exc.retryable:
        return "failed"  # the reconciler tries again while the session is watched
    if exc.status == 404:
        # VideoDB no longer has the session (the local emulator forgets everything on
        # restart): it will never move again, so stop watching it and say why.
        lifecycle.record_lost(session_id, exc.message)
        return "lost"
    logger.warning("re-reading session %s refused: %s", session_id, exc.message)
    return "refused"


@shared_task(name="sessions.sync_session", on_give_up=_sync_failed, **VIDEODB_POLICY)
def sync_session(session_id: int) -> str:
    result = lifecycle.sync_session(session_id)
    _follow_up(result)
    return result.status if result else "skipped"


def _brief_retrying(task: Task, exc: Exception, session_id: int, *_: object, **__: object) -> None:
    if isinstance(exc, GatewayError):
        brief.record_unavailable(session_id, exc.message)


def _brief_failed(task: Task, exc: Exception, session_id: int, *_: object, **__: object) -> str:
    if isinstance(exc, brief.Busy):
        return "busy"  # the reconciler runs the final pass once the brief is free
    brief.record_unavailable(session_id, getattr(exc, "message", str(exc)), gave_up=True)
    return "paused"


@shared_task(
    name=schedule.REFRESH_TASK,
    retry_for=(RetryableGatewayError, brief.Busy),
    give_up_for=(PermanentGatewayError,),
    on_retrying=_brief_retrying,
    on_give_up=_brief_failed,
)
def refresh_brief(session_id: int, final: bool = False, reserved: str | None = None) -> str:
    """Make the session's next live brief if it is due (or its final pass)."""
    taken = parse_datetime(reserved) if reserved else None
    return brief.refresh(session_id, final=final, reserved=taken)


@shared_task(name="search.rebuild_session")
def rebuild_search(session_id: int) -> int:
    """Re-create one session's search entries from what is stored (the admin's "Rebuild the
    search entries"): thousands of rows for a long meeting, so a task on the ``indexing``
    queue rather than work inside a page's request. Returns how many entries it wrote."""
    session = CaptureSession.objects.filter(pk=session_id).first()
    if session is None:
        return 0  # deleted since it was asked for: nothing to index
    return search.rebuild([session])


@shared_task(name="sessions.reconcile")
def reconcile() -> dict[str, int]:
    """Periodic repair, so that an accepted webhook is never lost.

    - deliveries stored but never processed (the broker was down when the receiver tried
      to publish, or a worker died with the message) are enqueued again;
    - sessions that should be moving but have not changed for a while are re-read from
      VideoDB, which also restarts AI operations whose start failed or was abandoned;
    - stopped sessions still without a video EXPORT_FALLBACK_SECONDS after they stopped
      (VideoDB's own export never said so) are asked to export, again after a while;
    - live briefs due by time (some new speech, and a minute since the last brief) are
      refreshed, and a final pass that never ran is run.
    Running it twice is harmless: every task it enqueues is idempotent.
    """
    now = timezone.now()
    # Younger deliveries are probably still on their way through the broker.
    requeue_after = timedelta(seconds=settings.RECONCILE_REQUEUE_AFTER_SECONDS)
    session_lag = timedelta(seconds=settings.RECONCILE_SESSION_LAG_SECONDS)
    pending = list(
        WebhookDelivery.objects.filter(
            processed_at__isnull=True, received_at__lte=now - requeue_after
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:500]
    )
    for delivery_id in pending:
        process_delivery.delay(delivery_id)

    lagging = list(
        CaptureSession.objects.filter(
            status__in=[
                CaptureSession.Status.CREATED,
                CaptureSession.Status.STARTING,
                CaptureSession.Status.ACTIVE,
                CaptureSession.Status.STOPPING,
            ],
            videodb_id__isnull=False,
            updated_at__lte=now - session_lag,
            created_at__gte=now - WATCH_WINDOW,
        ).values_list("pk", flat=True)[:200]
    )
    for session_id in lagging:
        sync_session.delay(session_id)
        CaptureSession.objects.filter(pk=session_id).update(updated_at=now)

    export_due = now - timedelta(seconds=settings.EXPORT_FALLBACK_SECONDS)
    unexported = list(
        CaptureSession.objects.filter(
            Q(ended_at__lte=export_due) | Q(ended_at__isnull=True),
            status=CaptureSession.Status.STOPPED,
            exported_video_id="",
            created_at__gte=now - WATCH_WINDOW,
        )
        .exclude(export_requested_at__gte=now - lifecycle.EXPORT_ASK_AGAIN_AFTER)
        .values_list("pk", flat=True)[:200]
    )
    for session_id in unexported:
        request_export.delay(session_id)

    briefs = schedule.sessions_due(now)
    for session_id, final in briefs:
        refresh_brief.delay(session_id, final=final)
    return {
        "deliveries": len(pending),
        "sessions": len(lagging),
        "exports": len(unexported),
        "briefs": len(briefs),
    }
